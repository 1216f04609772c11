//! The little SDP the loadgen writes and reads: one audio stream, RTP/AVP, IPv4.

use std::net::{IpAddr, SocketAddr};

/// One payload format of an `m=audio` line with its `a=rtpmap` and `a=fmtp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpCodec {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`).
    pub name: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels (1 unless the rtpmap says otherwise).
    pub channels: u8,
    /// The `a=fmtp` parameters, empty when none.
    pub fmtp: String,
}

/// The audio stream of a session description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpAudio {
    /// Where the stream's RTP goes: the connection address and the media port.
    pub addr: SocketAddr,
    /// Payload formats in the order of the `m=` line.
    pub codecs: Vec<SdpCodec>,
    /// `a=ptime`, when present.
    pub ptime_ms: Option<u32>,
}

/// Why a session description could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("SDP has no m=audio line")]
    NoAudio,
    /// No usable `c=IN IP4` / `c=IN IP6` line.
    #[error("SDP has no connection address")]
    NoConnection,
    /// A line that does not parse.
    #[error("SDP line {line:?} is malformed")]
    Malformed {
        /// The line.
        line: String,
    },
}

impl SdpCodec {
    /// A codec without fmtp.
    pub fn new(payload_type: u8, name: &str, clock_rate: u32, channels: u8) -> Self {
        Self {
            payload_type,
            name: name.to_owned(),
            clock_rate,
            channels,
            fmtp: String::new(),
        }
    }

    /// The same codec with fmtp parameters.
    pub fn with_fmtp(mut self, fmtp: &str) -> Self {
        self.fmtp = fmtp.to_owned();
        self
    }

    /// Whether this is `name` (case-insensitive) at `clock_rate`.
    pub fn is(&self, name: &str, clock_rate: u32) -> bool {
        self.name.eq_ignore_ascii_case(name) && self.clock_rate == clock_rate
    }
}

impl SdpAudio {
    /// Writes a full session description with `session_id` in the origin line.
    pub fn write(&self, session_id: u64) -> String {
        let ip = self.addr.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let pts: Vec<String> = self
            .codecs
            .iter()
            .map(|c| c.payload_type.to_string())
            .collect();
        let mut s = format!(
            "v=0\r\no=- {session_id} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {}\r\n",
            self.addr.port(),
            pts.join(" ")
        );
        for c in &self.codecs {
            let channels = if c.channels > 1 {
                format!("/{}", c.channels)
            } else {
                String::new()
            };
            s += &format!(
                "a=rtpmap:{} {}/{}{channels}\r\n",
                c.payload_type, c.name, c.clock_rate
            );
            if !c.fmtp.is_empty() {
                s += &format!("a=fmtp:{} {}\r\n", c.payload_type, c.fmtp);
            }
        }
        if let Some(ptime) = self.ptime_ms {
            s += &format!("a=ptime:{ptime}\r\n");
        }
        s += "a=sendrecv\r\n";
        s
    }

    /// Parses the first audio stream; a media-level `c=` overrides the session-level one.
    pub fn parse(sdp: &str) -> Result<Self, SdpError> {
        let mut session_ip = None;
        let mut media_ip = None;
        let mut port = None;
        let mut codecs: Vec<SdpCodec> = Vec::new();
        let mut ptime_ms = None;
        let mut in_audio = false;
        let bad = |line: &str| SdpError::Malformed {
            line: line.to_owned(),
        };
        for line in sdp.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("m=") {
                if port.is_some() {
                    break;
                }
                let mut words = rest.split_whitespace();
                in_audio = words.next() == Some("audio");
                if in_audio {
                    port = Some(
                        words
                            .next()
                            .and_then(|p| p.parse::<u16>().ok())
                            .ok_or_else(|| bad(line))?,
                    );
                    let _proto = words.next();
                    for pt in words {
                        let pt = pt.parse().map_err(|_| bad(line))?;
                        codecs.push(static_codec(pt));
                    }
                }
            } else if let Some(rest) = line.strip_prefix("c=") {
                let ip: Option<IpAddr> = rest
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next()?.parse().ok());
                let ip = ip.ok_or_else(|| bad(line))?;
                if in_audio {
                    media_ip = Some(ip);
                } else if port.is_none() {
                    session_ip = Some(ip);
                }
            } else if !in_audio {
                continue;
            } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                let (pt, enc) = rest.split_once(' ').ok_or_else(|| bad(line))?;
                let pt: u8 = pt.parse().map_err(|_| bad(line))?;
                let mut parts = enc.trim().split('/');
                let name = parts.next().unwrap_or_default();
                let clock_rate = parts
                    .next()
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(|| bad(line))?;
                let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
                if let Some(c) = codecs.iter_mut().find(|c| c.payload_type == pt) {
                    c.name = name.to_owned();
                    c.clock_rate = clock_rate;
                    c.channels = channels;
                }
            } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
                let (pt, params) = rest.split_once(' ').ok_or_else(|| bad(line))?;
                let pt: u8 = pt.parse().map_err(|_| bad(line))?;
                if let Some(c) = codecs.iter_mut().find(|c| c.payload_type == pt) {
                    c.fmtp = params.trim().to_owned();
                }
            } else if let Some(rest) = line.strip_prefix("a=ptime:") {
                ptime_ms = rest.trim().parse().ok();
            }
        }
        let port = port.ok_or(SdpError::NoAudio)?;
        let ip = media_ip.or(session_ip).ok_or(SdpError::NoConnection)?;
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            codecs,
            ptime_ms,
        })
    }

    /// The first codec named `name` at `clock_rate`.
    pub fn codec(&self, name: &str, clock_rate: u32) -> Option<&SdpCodec> {
        self.codecs.iter().find(|c| c.is(name, clock_rate))
    }
}

/// RFC 3551 static payload types the loadgen may meet without an rtpmap.
fn static_codec(pt: u8) -> SdpCodec {
    match pt {
        0 => SdpCodec::new(0, "PCMU", 8000, 1),
        8 => SdpCodec::new(8, "PCMA", 8000, 1),
        _ => SdpCodec::new(pt, "", 0, 1),
    }
}
