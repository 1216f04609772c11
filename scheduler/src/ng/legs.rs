//! SDP codecs to the worker's leg messages (pure functions).

use std::net::SocketAddr;

use bridgepool_proto::v1;
use bridgepool_sdp::{Codec, Direction};

/// A session's legs: A carries G.711, B carries Opus (fixed for the session's life).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The G.711 peer.
    A,
    /// The Opus peer.
    B,
}

impl Leg {
    /// The other leg.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// What one party's SDP says about its end of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Where it receives RTP (`0.0.0.0`: hold).
    pub remote: SocketAddr,
    /// Its direction.
    pub direction: Direction,
    /// Its `a=ptime`, if any.
    pub ptime_ms: Option<u32>,
}

fn wire_remote(addr: SocketAddr) -> v1::MediaAddress {
    v1::MediaAddress {
        ip: addr.ip().to_string(),
        port: u32::from(addr.port()),
    }
}

fn wire_direction(d: Direction) -> i32 {
    (match d {
        Direction::SendRecv => v1::Direction::Sendrecv,
        Direction::SendOnly => v1::Direction::Sendonly,
        Direction::RecvOnly => v1::Direction::Recvonly,
        Direction::Inactive => v1::Direction::Inactive,
    }) as i32
}

/// Leg A; without a codec only remote and direction (law 0 keeps the session's codec).
pub fn g711_leg(party: Option<&Party>, codec: Option<&Codec>, dtmf: Option<&Codec>) -> v1::G711Leg {
    let law = match codec.map(|c| c.name.to_ascii_uppercase()) {
        Some(n) if n == "PCMU" => v1::G711Law::Pcmu,
        Some(n) if n == "PCMA" => v1::G711Law::Pcma,
        _ => v1::G711Law::Unspecified,
    };
    v1::G711Leg {
        law: law as i32,
        payload_type: codec.map_or(0, |c| u32::from(c.payload_type)),
        telephone_event_pt: dtmf.map_or(0, |c| u32::from(c.payload_type)),
        ptime_ms: party
            .and_then(|p| p.ptime_ms)
            .map_or(20, |p| (p / 5 * 5).clamp(10, 60)),
        remote: party.map(|p| wire_remote(p.remote)),
        direction: party.map_or(0, |p| wire_direction(p.direction)),
    }
}

/// Leg B; without a codec only remote and direction (payload type 0 keeps the session's codec).
pub fn opus_leg(party: Option<&Party>, codec: Option<&Codec>, dtmf: Option<&Codec>) -> v1::OpusLeg {
    let num = |k: &str| codec.and_then(|c| c.fmtp_param(k)?.parse::<u32>().ok());
    let flag = |k: &str| num(k) == Some(1);
    let ptime = party.and_then(|p| p.ptime_ms).unwrap_or(20);
    v1::OpusLeg {
        payload_type: codec.map_or(0, |c| u32::from(c.payload_type)),
        telephone_event_pt: dtmf.map_or(0, |c| u32::from(c.payload_type)),
        ptime_ms: [10, 20, 40, 60]
            .into_iter()
            .min_by_key(|p: &u32| p.abs_diff(ptime))
            .unwrap_or(20),
        remote: party.map(|p| wire_remote(p.remote)),
        direction: party.map_or(0, |p| wire_direction(p.direction)),
        opus: codec.map(|_| v1::OpusParams {
            max_average_bitrate: num("maxaveragebitrate").unwrap_or(0),
            use_inband_fec: flag("useinbandfec"),
            use_dtx: flag("usedtx"),
            max_playback_rate: num("maxplaybackrate").unwrap_or(0),
            stereo: flag("stereo"),
            complexity: 0,
            max_ptime_ms: num("maxptime").unwrap_or(0),
            cbr: flag("cbr"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_from_sdp() {
        let party = Party {
            remote: "192.0.2.1:4000".parse().unwrap(),
            direction: Direction::SendOnly,
            ptime_ms: Some(30),
        };
        let a = g711_leg(Some(&party), Some(&Codec::from_static(8)), None);
        assert_eq!(a.law, v1::G711Law::Pcma as i32);
        assert_eq!((a.payload_type, a.ptime_ms), (8, 30));
        assert_eq!(a.direction, v1::Direction::Sendonly as i32);
        let opus =
            Codec::new(111, "opus", 48000, 2).with_fmtp("useinbandfec=1; maxaveragebitrate=20000");
        let b = opus_leg(Some(&party), Some(&opus), None);
        // 30 ms is between 20 and 40: the shorter wins.
        assert_eq!((b.payload_type, b.ptime_ms), (111, 20));
        let params = b.opus.unwrap();
        assert!(params.use_inband_fec && !params.cbr);
        assert_eq!(params.max_average_bitrate, 20000);
        let keep = g711_leg(Some(&party), None, None);
        assert_eq!((keep.law, keep.payload_type), (0, 0));
    }
}
