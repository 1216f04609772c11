//! A whole session description, parsed and written by webrtc-rs's `sdp` crate, and the view of
//! its first audio stream.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

use crate::codec::Codec;
use crate::error::SdpError;

/// Largest description accepted; SIP bodies are a few hundred bytes.
const MAX_LEN: usize = 64 * 1024;

/// SDP direction attribute of a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` or none.
    #[default]
    SendRecv,
    /// `a=sendonly` (hold by the sender).
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

/// The first audio stream of a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audio {
    /// Connection address (the media-level `c=` over the session-level one); `0.0.0.0` is hold.
    pub addr: IpAddr,
    /// Media port (0: the stream is rejected).
    pub port: u16,
    /// Transport protocol as written (`RTP/AVP`).
    pub protocol: String,
    /// Payload formats in `m=` order.
    pub codecs: Vec<Codec>,
    /// `a=ptime`, when present.
    pub ptime_ms: Option<u32>,
    /// Direction (media level over session level).
    pub direction: Direction,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// ICE attributes present (`a=ice-ufrag`, `a=candidate`).
    pub ice: bool,
    /// SDES-SRTP: a `SAVP` profile or `a=crypto`.
    pub srtp: bool,
    /// DTLS: a `UDP/TLS` profile or `a=fingerprint`.
    pub dtls: bool,
}

impl Audio {
    /// Whether the peer holds the call (`0.0.0.0`, `sendonly` or `inactive`).
    pub fn on_hold(&self) -> bool {
        self.addr.is_unspecified()
            || matches!(self.direction, Direction::SendOnly | Direction::Inactive)
    }

    /// Where the stream's RTP goes.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// The first codec named `name` at `clock_rate`.
    pub fn codec(&self, name: &str, clock_rate: u32) -> Option<&Codec> {
        self.codecs.iter().find(|c| c.is(name, clock_rate))
    }

    /// The first audio codec (neither DTMF nor CN): what an answerer chose.
    pub fn first_audio(&self) -> Option<&Codec> {
        self.codecs.iter().find(|c| {
            matches!(
                c.family(),
                crate::Family::G711 | crate::Family::Opus | crate::Family::Other
            ) && !c.name.eq_ignore_ascii_case("CN")
        })
    }
}

/// A parsed session description; [`Self::write`] gives it back with every untouched line kept.
#[derive(Clone, Debug)]
pub struct Description {
    pub(crate) inner: SessionDescription,
}

impl Description {
    /// Parses SDP text (CRLF or LF line ends).
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_LEN {
            return Err(SdpError::Parse(format!("{} bytes", text.len())));
        }
        // The parser wants a line end after the last line; SIP bodies sometimes lack it.
        let mut owned;
        let text = if text.ends_with('\n') {
            text
        } else {
            owned = text.to_owned();
            owned.push_str("\r\n");
            &owned
        };
        let inner = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
            .map_err(|e| SdpError::Parse(e.to_string()))?;
        Ok(Self { inner })
    }

    /// A description of one `sendrecv` RTP/AVP audio stream, as an endpoint (the loadgen) offers
    /// or answers it.
    pub fn audio_only(
        session_id: u64,
        addr: SocketAddr,
        codecs: &[Codec],
        ptime_ms: Option<u32>,
    ) -> Self {
        let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let connection = ConnectionInformation {
            network_type: "IN".to_owned(),
            address_type: family.to_owned(),
            address: Some(Address {
                address: addr.ip().to_string(),
                ttl: None,
                range: None,
            }),
        };
        let mut attributes = Vec::with_capacity(2 * codecs.len() + 2);
        for c in codecs {
            attributes.push(Attribute::new("rtpmap".to_owned(), Some(c.rtpmap())));
            if !c.fmtp.is_empty() {
                attributes.push(Attribute::new(
                    "fmtp".to_owned(),
                    Some(format!("{} {}", c.payload_type, c.fmtp)),
                ));
            }
        }
        if let Some(p) = ptime_ms {
            attributes.push(Attribute::new("ptime".to_owned(), Some(p.to_string())));
        }
        attributes.push(Attribute::new("sendrecv".to_owned(), None));
        let media = MediaDescription {
            media_name: MediaName {
                media: "audio".to_owned(),
                port: RangedPort {
                    value: addr.port() as isize,
                    range: None,
                },
                protos: vec!["RTP".to_owned(), "AVP".to_owned()],
                formats: codecs.iter().map(|c| c.payload_type.to_string()).collect(),
            },
            media_title: None,
            connection_information: None,
            bandwidth: Vec::new(),
            encryption_key: None,
            attributes,
        };
        let inner = SessionDescription {
            version: 0,
            origin: Origin {
                username: "-".to_owned(),
                session_id,
                session_version: 1,
                network_type: "IN".to_owned(),
                address_type: family.to_owned(),
                unicast_address: addr.ip().to_string(),
            },
            session_name: "-".to_owned(),
            session_information: None,
            uri: None,
            email_address: None,
            phone_number: None,
            connection_information: Some(connection),
            bandwidth: Vec::new(),
            time_descriptions: vec![TimeDescription {
                timing: Timing {
                    start_time: 0,
                    stop_time: 0,
                },
                repeat_times: Vec::new(),
            }],
            time_zones: Vec::new(),
            encryption_key: None,
            attributes: Vec::new(),
            media_descriptions: vec![media],
        };
        Self { inner }
    }

    /// The description as text, CRLF line ends.
    pub fn write(&self) -> String {
        self.inner.marshal()
    }

    /// Index of the first `m=audio` section.
    pub(crate) fn audio_index(&self) -> Result<usize, SdpError> {
        self.inner
            .media_descriptions
            .iter()
            .position(|m| m.media_name.media == "audio")
            .ok_or(SdpError::NoAudio)
    }

    /// The first audio stream.
    pub fn audio(&self) -> Result<Audio, SdpError> {
        let media = &self.inner.media_descriptions[self.audio_index()?];
        let address = media
            .connection_information
            .as_ref()
            .or(self.inner.connection_information.as_ref())
            .and_then(|c| c.address.as_ref())
            .ok_or(SdpError::NoConnection)?;
        let addr: IpAddr = address
            .address
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or(SdpError::NoConnection)?;
        let port =
            u16::try_from(media.media_name.port.value).map_err(|_| SdpError::NoConnection)?;
        let protocol = media.media_name.protos.join("/");
        let codecs = codecs(media)?;
        let session_dir = direction_of(self.inner.attributes.iter().map(|a| a.key.as_str()));
        let media_dir = direction_of(media.attributes.iter().map(|a| a.key.as_str()));
        let has = |key: &str| {
            media.attributes.iter().any(|a| a.key == key)
                || self.inner.attributes.iter().any(|a| a.key == key)
        };
        Ok(Audio {
            addr,
            port,
            srtp: protocol.contains("SAVP") || has("crypto"),
            dtls: protocol.contains("TLS") || has("fingerprint"),
            ice: has("ice-ufrag") || has("candidate"),
            rtcp_mux: has("rtcp-mux"),
            ptime_ms: media
                .attributes
                .iter()
                .find(|a| a.key == "ptime")
                .and_then(|a| a.value.as_deref()?.trim().parse().ok()),
            direction: media_dir.or(session_dir).unwrap_or_default(),
            protocol,
            codecs,
        })
    }
}

fn direction_of<'a>(mut keys: impl Iterator<Item = &'a str>) -> Option<Direction> {
    keys.find_map(|k| match k {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    })
}

/// The payload formats of a media section: static defaults, then its rtpmap and fmtp lines.
fn codecs(media: &MediaDescription) -> Result<Vec<Codec>, SdpError> {
    let mut out = Vec::with_capacity(media.media_name.formats.len());
    for f in &media.media_name.formats {
        let pt: u8 = f
            .parse()
            .ok()
            .filter(|pt| *pt < 128)
            .ok_or_else(|| SdpError::BadFormat(f.clone()))?;
        out.push(Codec::from_static(pt));
    }
    for a in &media.attributes {
        let Some(value) = a.value.as_deref() else {
            continue;
        };
        let Some((pt, rest)) = value.trim().split_once(' ') else {
            continue;
        };
        let Ok(pt) = pt.parse::<u8>() else { continue };
        let Some(codec) = out.iter_mut().find(|c| c.payload_type == pt) else {
            continue;
        };
        match a.key.as_str() {
            "rtpmap" => {
                let mut parts = rest.trim().split('/');
                let name = parts.next().unwrap_or_default();
                let rate = parts
                    .next()
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(|| SdpError::BadFormat(value.to_owned()))?;
                codec.name = name.to_owned();
                codec.clock_rate = rate;
                codec.channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            }
            "fmtp" => codec.fmtp = rest.trim().to_owned(),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const PCMU_TE: &str = "v=0\no=- 1545997027 1 IN IP4 198.51.100.1\ns=tester\n\
        t=0 0\nm=audio 2000 RTP/AVP 0 8 101\nc=IN IP4 198.51.100.1\n\
        a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=ptime:20\na=x-unknown:kept\n\
        a=sendrecv\n";

    #[test]
    fn audio_view() {
        let d = Description::parse(PCMU_TE).unwrap();
        let a = d.audio().unwrap();
        assert_eq!(a.addr.to_string(), "198.51.100.1");
        assert_eq!(a.port, 2000);
        assert_eq!(a.protocol, "RTP/AVP");
        let names: Vec<_> = a.codecs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["PCMU", "PCMA", "telephone-event"]);
        assert_eq!(a.codecs[2].fmtp, "0-15");
        assert_eq!(a.ptime_ms, Some(20));
        assert_eq!(a.direction, Direction::SendRecv);
        assert!(!a.ice && !a.srtp && !a.dtls && !a.on_hold());
    }

    #[test]
    fn unknown_lines_survive_a_round_trip() {
        let d = Description::parse(PCMU_TE).unwrap();
        let out = d.write();
        assert!(out.contains("a=x-unknown:kept\r\n"), "{out}");
        assert!(out.contains("s=tester\r\n"));
        let again = Description::parse(&out).unwrap();
        assert_eq!(again.audio().unwrap(), d.audio().unwrap());
    }

    #[test]
    fn an_endpoint_description_round_trips() {
        let codecs = [
            Codec::from_static(0),
            Codec::new(96, "opus", 48000, 2).with_fmtp("useinbandfec=1"),
        ];
        let addr: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let text = Description::audio_only(7, addr, &codecs, Some(20)).write();
        assert!(
            text.starts_with("v=0\r\no=- 7 1 IN IP4 192.0.2.7\r\n"),
            "{text}"
        );
        let a = Description::parse(&text).unwrap().audio().unwrap();
        assert_eq!(a.socket_addr(), addr);
        assert_eq!(a.codecs, codecs);
        assert_eq!(a.ptime_ms, Some(20));
        assert_eq!(a.codec("OPUS", 48000).map(|c| c.payload_type), Some(96));
    }

    #[test]
    fn hold_and_session_level_connection() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
                   m=audio 4000 RTP/AVP 8\r\na=sendonly\r\n";
        let a = Description::parse(sdp).unwrap().audio().unwrap();
        assert!(a.on_hold());
        assert_eq!(a.direction, Direction::SendOnly);
        assert_eq!(a.codecs[0].name, "PCMA");
    }

    #[test]
    fn secure_offers_are_seen() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                   m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n\
                   a=ice-ufrag:abc\r\n";
        let a = Description::parse(sdp).unwrap().audio().unwrap();
        assert!(a.srtp && a.ice && !a.dtls);
    }

    #[test]
    fn bad_sdp_is_an_error() {
        for bad in [
            "",
            "hello",
            "v=0\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
        ] {
            let r = Description::parse(bad).and_then(|d| d.audio());
            assert!(r.is_err(), "{bad:?}");
        }
        let no_c = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5 RTP/AVP 0\r\n";
        assert_eq!(
            Description::parse(no_c).unwrap().audio(),
            Err(SdpError::NoConnection)
        );
        let bad_pt = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
                      m=audio 5 RTP/AVP 300\r\n";
        assert!(matches!(
            Description::parse(bad_pt).unwrap().audio(),
            Err(SdpError::BadFormat(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}", tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = Description::parse(&text).and_then(|d| d.audio());
            let mut with_head = PCMU_TE.to_owned();
            with_head.push_str(&String::from_utf8_lossy(&tail));
            let _ = Description::parse(&with_head).and_then(|d| d.audio());
        }
    }
}
