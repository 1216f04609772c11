//! From the wire (bridgepool.v1 messages) to session settings and back. Every check that can
//! fail on a caller's input lives here and says what was wrong.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{Bandwidth, EncoderConfig, SampleRate};
use bridgepool_proto::v1;

use crate::session::{
    G711Leg, JitterBuffer, JitterMode, JitterStats, LegMode, LegStats, Mode, OpusLeg,
    TRANSCODER_APPLICATION, TRANSCODER_BITRATE, TRANSCODER_COMPLEXITY,
};

/// The remote of a leg as signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remote {
    /// Not signalled yet: latch onto the first source.
    Unknown,
    /// Hold: 0.0.0.0 (RFC 3264 section 8.4). Send nothing.
    Hold,
    /// The peer's RTP address.
    At(SocketAddr),
}

impl Remote {
    /// The address to expect media from, if any.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Self::At(a) => Some(a),
            _ => None,
        }
    }
}

/// Reads a MediaAddress.
pub fn remote(address: Option<&v1::MediaAddress>, leg: &str) -> Result<Remote, String> {
    let Some(a) = address else {
        return Ok(Remote::Unknown);
    };
    if a.ip.is_empty() {
        return Ok(Remote::Unknown);
    }
    let ip: IpAddr =
        a.ip.parse()
            .map_err(|_| format!("{leg}.remote.ip '{}' is not an IP address", a.ip))?;
    if ip.is_unspecified() {
        return Ok(Remote::Hold);
    }
    let port = u16::try_from(a.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{leg}.remote.port {} is not a UDP port", a.port))?;
    Ok(Remote::At(SocketAddr::new(ip, port)))
}

/// Send/receive toward a leg from its SDP direction (the peer's view) and hold.
pub fn mode(direction: i32, remote: Remote) -> LegMode {
    let (send, receive) = match v1::Direction::try_from(direction).unwrap_or_default() {
        v1::Direction::Sendonly => (false, true),
        v1::Direction::Recvonly => (true, false),
        v1::Direction::Inactive => (false, false),
        v1::Direction::Unspecified | v1::Direction::Sendrecv => (true, true),
    };
    LegMode {
        send: send && remote != Remote::Hold,
        receive,
    }
}

fn payload_type(pt: u32, what: &str) -> Result<u8, String> {
    u8::try_from(pt)
        .ok()
        .filter(|p| *p <= 127)
        .ok_or_else(|| format!("{what} {pt} is not an RTP payload type (0..127)"))
}

fn optional_pt(pt: u32, what: &str) -> Result<Option<u8>, String> {
    if pt == 0 {
        Ok(None)
    } else {
        payload_type(pt, what).map(Some)
    }
}

fn ptime(ms: u32) -> Duration {
    Duration::from_millis(if ms == 0 { 20 } else { u64::from(ms) })
}

/// Leg A from the wire.
pub fn g711_leg(leg: &v1::G711Leg) -> Result<G711Leg, String> {
    let law = match v1::G711Law::try_from(leg.law) {
        Ok(v1::G711Law::Pcmu) => Law::Ulaw,
        Ok(v1::G711Law::Pcma) => Law::Alaw,
        _ => return Err("leg_a.law must be PCMU or PCMA".to_owned()),
    };
    Ok(G711Leg {
        law,
        payload_type: payload_type(leg.payload_type, "leg_a.payload_type")?,
        telephone_event_pt: optional_pt(leg.telephone_event_pt, "leg_a.telephone_event_pt")?,
        ptime: ptime(leg.ptime_ms),
    })
}

/// Leg B from the wire: the Opus peer's fmtp (RFC 7587 section 7) applied to our encoder.
///
/// - `maxaveragebitrate` caps our bitrate (never raises it above [`TRANSCODER_BITRATE`]);
/// - `maxplaybackrate` caps the coded band; our input is 8 kHz G.711, so the band is narrowband
///   whatever the peer allows (no rate it can give is below narrowband);
/// - `cbr=1` switches the encoder to constant bitrate, `usedtx=1` turns DTX on;
/// - `useinbandfec=1` lets the encoder send FEC, which it does once loss is expected (RTCP
///   receiver reports from the Opus peer feed the encoder's expected loss);
/// - `stereo`/`sprop-stereo` change nothing: a mono Opus stream is valid for a stereo receiver;
/// - ptime and maxptime arrive resolved in `ptime_ms`.
pub fn opus_leg(leg: &v1::OpusLeg) -> Result<OpusLeg, String> {
    let params = leg.opus.unwrap_or_default();
    let bitrate = match params.max_average_bitrate {
        0 => TRANSCODER_BITRATE,
        // libopus goes no lower than 6 kbit/s.
        max => i32::try_from(max)
            .unwrap_or(i32::MAX)
            .clamp(6000, TRANSCODER_BITRATE),
    };
    let complexity = match params.complexity {
        0 => TRANSCODER_COMPLEXITY,
        c if c <= 10 => c as u8,
        c => return Err(format!("leg_b.opus.complexity {c} is not 0..10")),
    };
    Ok(OpusLeg {
        payload_type: payload_type(leg.payload_type, "leg_b.payload_type")?,
        telephone_event_pt: optional_pt(leg.telephone_event_pt, "leg_b.telephone_event_pt")?,
        ptime: ptime(leg.ptime_ms),
        encoder: EncoderConfig {
            application: TRANSCODER_APPLICATION,
            sample_rate: SampleRate::Hz8000,
            bitrate,
            complexity,
            inband_fec: params.use_inband_fec,
            dtx: params.use_dtx,
            expected_loss_pct: 0,
            // Any maxplaybackrate (8 kHz at the least) allows narrowband, all 8 kHz input holds.
            max_bandwidth: Bandwidth::Narrowband,
            cbr: params.cbr,
        },
    })
}

/// A session mode from the wire.
pub fn session_mode(mode: i32) -> Result<Mode, String> {
    match v1::SessionMode::try_from(mode) {
        Ok(v1::SessionMode::Transcode) => Ok(Mode::Transcode),
        Ok(v1::SessionMode::Passthrough) => Ok(Mode::Passthrough),
        Err(_) => Err(format!("mode {mode} is not a SessionMode")),
    }
}

/// A session mode to the wire.
pub fn session_mode_to_wire(mode: Mode) -> v1::SessionMode {
    match mode {
        Mode::Transcode => v1::SessionMode::Transcode,
        Mode::Passthrough => v1::SessionMode::Passthrough,
    }
}

/// The jitter buffer from the wire: absent or unspecified is adaptive; zero durations take the
/// defaults (200 ms bound, 60 ms fixed).
pub fn jitter_buffer(wire: Option<&v1::JitterBuffer>) -> Result<JitterBuffer, String> {
    let defaults = JitterBuffer::default();
    let Some(w) = wire else {
        return Ok(defaults);
    };
    let mode = match v1::JitterBufferMode::try_from(w.mode) {
        Ok(v1::JitterBufferMode::Unspecified | v1::JitterBufferMode::Adaptive) => {
            JitterMode::Adaptive
        }
        Ok(v1::JitterBufferMode::Fixed) => JitterMode::Fixed,
        Ok(v1::JitterBufferMode::Off) => JitterMode::Off,
        Err(_) => return Err(format!("jitter.mode {} is not a JitterBufferMode", w.mode)),
    };
    let ms = |v: u32, default: Duration| {
        if v == 0 {
            default
        } else {
            Duration::from_millis(u64::from(v))
        }
    };
    let j = JitterBuffer {
        mode,
        max_delay: ms(w.max_delay_ms, defaults.max_delay),
        fixed_delay: ms(w.fixed_delay_ms, defaults.fixed_delay),
    };
    if j.max_delay > JitterBuffer::MAX_DELAY_LIMIT {
        return Err(format!(
            "jitter.max_delay_ms {} is above 500",
            w.max_delay_ms
        ));
    }
    if j.mode == JitterMode::Fixed && j.fixed_delay > j.max_delay {
        return Err("jitter.fixed_delay_ms is above max_delay_ms".to_owned());
    }
    Ok(j)
}

/// Jitter buffer figures to the wire.
pub fn jitter_stats(s: &JitterStats) -> v1::JitterBufferStats {
    let mode = match s.config.mode {
        JitterMode::Adaptive => v1::JitterBufferMode::Adaptive,
        JitterMode::Fixed => v1::JitterBufferMode::Fixed,
        JitterMode::Off => v1::JitterBufferMode::Off,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    v1::JitterBufferStats {
        mode: mode as i32,
        delay_ms: ms(s.delay),
        target_ms: ms(s.target),
        shortened_ms: s.shortened_samples as f64 / 8.0,
        lengthened_ms: s.lengthened_samples as f64 / 8.0,
        mean_delay_ms: ms(s.mean_delay),
    }
}

/// Session figures to the wire.
pub fn leg_stats(s: &LegStats, mos: f64) -> v1::LegStats {
    v1::LegStats {
        packets_in: s.packets_in,
        packets_out: s.packets_out,
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        packets_lost: s.packets_lost,
        packets_dropped: s.drops.total(),
        jitter_ms: s.jitter.as_secs_f64() * 1000.0,
        rtt_ms: s.rtt.map_or(0.0, |r| r.as_secs_f64() * 1000.0),
        mos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_and_directions() {
        let hold = v1::MediaAddress {
            ip: "0.0.0.0".into(),
            port: 4000,
        };
        assert_eq!(remote(Some(&hold), "leg_a"), Ok(Remote::Hold));
        let m = mode(v1::Direction::Sendrecv as i32, Remote::Hold);
        assert!(!m.send && m.receive);
        let m = mode(v1::Direction::Inactive as i32, Remote::Unknown);
        assert!(!m.send && !m.receive);
        let bad = v1::MediaAddress {
            ip: "10.0.0.1".into(),
            port: 70_000,
        };
        assert!(
            remote(Some(&bad), "leg_b")
                .unwrap_err()
                .contains("leg_b.remote.port")
        );
    }

    #[test]
    fn modes_both_ways() {
        assert_eq!(session_mode(0), Ok(Mode::Transcode));
        assert_eq!(session_mode(1), Ok(Mode::Passthrough));
        assert!(session_mode(7).unwrap_err().contains("mode 7"));
        assert_eq!(
            session_mode_to_wire(Mode::Passthrough),
            v1::SessionMode::Passthrough
        );
    }

    #[test]
    fn legs_with_clear_errors() {
        let mut a = v1::G711Leg {
            law: v1::G711Law::Pcma as i32,
            payload_type: 8,
            ..Default::default()
        };
        let leg = g711_leg(&a).unwrap();
        assert_eq!(leg.law, Law::Alaw);
        assert_eq!(leg.ptime, Duration::from_millis(20));
        assert_eq!(leg.telephone_event_pt, None);
        a.law = 0;
        assert!(g711_leg(&a).unwrap_err().contains("PCMU or PCMA"));
        let b = v1::OpusLeg {
            payload_type: 200,
            ..Default::default()
        };
        assert!(opus_leg(&b).unwrap_err().contains("leg_b.payload_type 200"));
        let b = v1::OpusLeg {
            payload_type: 111,
            opus: Some(v1::OpusParams {
                max_average_bitrate: 16_000,
                use_inband_fec: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let leg = opus_leg(&b).unwrap();
        assert_eq!(leg.encoder.bitrate, 16_000);
        assert!(leg.encoder.inband_fec);
    }
}
