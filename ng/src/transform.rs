//! The typed `transform` request and reply, exactly as rtpengine (mr13.3.1.1+) sends and reads them.
//!
//! Request (relay -> pool): `{command: transform, call-id, from-tag, media: [{type, codec: [{input:
//! {codec, payload type, clock rate, channels, format, options}, output: {...}}...], destination:
//! {family, address, port}}], interface?, instance}`. Reply (pool -> relay): `{result: ok, call-id,
//! from-tag, media: [{id, family, address, port}]}`; the relay uses the first media entry.

use std::net::{IpAddr, SocketAddr};

use crate::value::{Dict, Value};

/// Why a `transform` request or reply could not be used. The messages go out as `error-reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// No `media` list, or an empty one.
    #[error("No media in message")]
    NoMedia,
    /// A media entry without `codec` pairs.
    #[error("No codecs in media {index}")]
    NoCodecs {
        /// Media index.
        index: usize,
    },
    /// A codec pair missing `input` or `output`, or one of their keys.
    #[error("Invalid codec pair in media {index}: {what}")]
    BadCodec {
        /// Media index.
        index: usize,
        /// What is missing or wrong.
        what: &'static str,
    },
    /// Two pairs of one media share an input payload type.
    #[error("Duplicate input payload type {pt} in media {index}")]
    DuplicatePt {
        /// Media index.
        index: usize,
        /// The payload type.
        pt: u8,
    },
    /// A `destination` (or reply media) without a usable family, address or port.
    #[error("Invalid destination in media {index}: {what}")]
    BadAddress {
        /// Media index.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A `jitter-buffer` other than `adaptive`, `fixed` or `off`, or a `max-delay` or
    /// `fixed-delay` that is not a positive number of milliseconds.
    #[error("Invalid jitter buffer option: {what}")]
    BadJitterBuffer {
        /// What is wrong.
        what: &'static str,
    },
    /// A reply without `call-id` or `from-tag`.
    #[error("Reply did not contain '{key}'")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
}

/// One side of a codec pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecSpec {
    /// Encoding name as in SDP (`PCMU`, `PCMA`, `opus`).
    pub codec: String,
    /// RTP payload type.
    pub payload_type: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels.
    pub channels: u8,
    /// The SDP fmtp string (`useinbandfec=1`), possibly empty.
    pub format: String,
    /// rtpengine's codec options string, possibly empty.
    pub options: String,
}

/// One `input -> output` pair; the input payload type picks the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecPair {
    /// What the relay sends to the pool.
    pub input: CodecSpec,
    /// What the pool must send back to `destination`.
    pub output: CodecSpec,
}

/// One media of a `transform` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformMedia {
    /// `id`, echoed in the reply (rtpengine sends none; the reply then uses the index).
    pub id: Option<String>,
    /// `type`, normally `audio`.
    pub media_type: String,
    /// The codec pairs, one per input payload type.
    pub codecs: Vec<CodecPair>,
    /// Where the transcoded RTP goes; the relay sends the source RTP from there too.
    pub destination: SocketAddr,
}

/// A `transform` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformRequest {
    /// `call-id` (`<8 hex> for <relay call-id>`); rtpengine invents one when missing.
    pub call_id: Option<String>,
    /// `from-tag` (`<8 hex> for <tag>`, the tag possibly empty).
    pub from_tag: Option<String>,
    /// The media.
    pub media: Vec<TransformMedia>,
    /// `interface`, present when the relay's section has `remote-interface`.
    pub interface: Option<String>,
    /// `instance`: the relay's instance id; equal to ours means a loop.
    pub instance: Option<String>,
    /// Our extension: `jitter-buffer` (`adaptive`, `fixed`, `off`) with optional `max-delay` and
    /// `fixed-delay` in ms, for the Opus -> G.711 pairs. A relay that never sends it gets the
    /// pool's default (adaptive).
    pub jitter_buffer: Option<JitterBufferOption>,
}

/// The jitter buffer a `transform` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterBufferOption {
    /// The mode.
    pub mode: JitterBufferMode,
    /// `max-delay`, ms.
    pub max_delay_ms: Option<u32>,
    /// `fixed-delay`, ms.
    pub fixed_delay_ms: Option<u32>,
}

/// `jitter-buffer` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitterBufferMode {
    /// `adaptive`.
    Adaptive,
    /// `fixed`.
    Fixed,
    /// `off`.
    Off,
}

impl JitterBufferOption {
    fn from_body(body: &Dict) -> Result<Option<Self>, TransformError> {
        let ms = |key: &str, what: &'static str| match body.get(key) {
            None => Ok(None),
            Some(_) => body
                .int(key)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .map(Some)
                .ok_or(TransformError::BadJitterBuffer { what }),
        };
        let max_delay_ms = ms("max-delay", "max-delay")?;
        let fixed_delay_ms = ms("fixed-delay", "fixed-delay")?;
        let mode = match body.get("jitter-buffer") {
            None if max_delay_ms.is_none() && fixed_delay_ms.is_none() => return Ok(None),
            None => JitterBufferMode::Adaptive,
            Some(_) => match body.str("jitter-buffer") {
                Some("adaptive") => JitterBufferMode::Adaptive,
                Some("fixed") => JitterBufferMode::Fixed,
                Some("off") => JitterBufferMode::Off,
                _ => {
                    return Err(TransformError::BadJitterBuffer {
                        what: "jitter-buffer",
                    });
                }
            },
        };
        Ok(Some(Self {
            mode,
            max_delay_ms,
            fixed_delay_ms,
        }))
    }

    fn write(&self, d: &mut Dict) {
        let mode = match self.mode {
            JitterBufferMode::Adaptive => "adaptive",
            JitterBufferMode::Fixed => "fixed",
            JitterBufferMode::Off => "off",
        };
        d.push("jitter-buffer", mode);
        if let Some(v) = self.max_delay_ms {
            d.push("max-delay", i64::from(v));
        }
        if let Some(v) = self.fixed_delay_ms {
            d.push("fixed-delay", i64::from(v));
        }
    }
}

/// Where the relay must send one media's source RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAddress {
    /// `id` (rtpengine answers `"0"`, `"1"`...).
    pub id: String,
    /// The pool's input socket.
    pub addr: SocketAddr,
}

/// The ok reply to `transform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformReply {
    /// `call-id`, which the relay echoes in `delete`.
    pub call_id: String,
    /// `from-tag`, which the relay echoes in `delete`.
    pub from_tag: String,
    /// One per request media, in order.
    pub media: Vec<MediaAddress>,
}

impl CodecSpec {
    fn from_value(v: Option<&Value>, index: usize) -> Result<Self, TransformError> {
        let bad = |what| TransformError::BadCodec { index, what };
        let d = v.and_then(Value::as_dict).ok_or(bad("input/output"))?;
        let codec = d.str("codec").ok_or(bad("codec"))?.to_owned();
        let payload_type = d
            .int("payload type")
            .and_then(|p| u8::try_from(p).ok())
            .filter(|p| *p < 128)
            .ok_or(bad("payload type"))?;
        let clock_rate = d
            .int("clock rate")
            .and_then(|c| u32::try_from(c).ok())
            .filter(|c| *c > 0)
            .ok_or(bad("clock rate"))?;
        let channels = match d.get("channels") {
            None => 1,
            Some(c) => c
                .as_int()
                .and_then(|c| u8::try_from(c).ok())
                .filter(|c| *c > 0)
                .ok_or(bad("channels"))?,
        };
        Ok(Self {
            codec,
            payload_type,
            clock_rate,
            channels,
            format: d.str("format").unwrap_or_default().to_owned(),
            options: d.str("options").unwrap_or_default().to_owned(),
        })
    }

    fn to_dict(&self) -> Dict {
        Dict::new()
            .with("codec", self.codec.as_str())
            .with("payload type", self.payload_type)
            .with("clock rate", self.clock_rate)
            .with("channels", self.channels)
            .with("format", self.format.as_str())
            .with("options", self.options.as_str())
    }

    /// The value of an fmtp parameter in `format` (`useinbandfec=1; stereo=0`), case-insensitive key.
    pub fn fmtp(&self, key: &str) -> Option<&str> {
        self.format.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }
}

/// Reads `{family, address, port}` (the request's `destination` or a reply media entry).
fn endpoint(d: &Dict, index: usize) -> Result<SocketAddr, TransformError> {
    let bad = |what| TransformError::BadAddress { index, what };
    let address: IpAddr = d
        .str("address")
        .and_then(|a| a.parse().ok())
        .ok_or(bad("address"))?;
    match d.str("family") {
        Some(f) if f.eq_ignore_ascii_case("IP4") && address.is_ipv4() => {}
        Some(f) if f.eq_ignore_ascii_case("IP6") && address.is_ipv6() => {}
        None => {}
        Some(_) => return Err(bad("family")),
    }
    let port = d
        .int("port")
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or(bad("port"))?;
    Ok(SocketAddr::new(address, port))
}

fn endpoint_dict(d: Dict, addr: SocketAddr) -> Dict {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    d.with("family", family)
        .with("address", addr.ip().to_string())
        .with("port", addr.port())
}

impl TransformRequest {
    /// Parses a request body (keys in any order and spelling; unknown keys ignored).
    pub fn from_body(body: &Dict) -> Result<Self, TransformError> {
        let media_list = body
            .get("media")
            .and_then(Value::as_list)
            .filter(|l| !l.is_empty())
            .ok_or(TransformError::NoMedia)?;
        let mut media = Vec::with_capacity(media_list.len());
        for (index, m) in media_list.iter().enumerate() {
            let m = m.as_dict().ok_or(TransformError::NoMedia)?;
            let pairs = m
                .get("codec")
                .and_then(Value::as_list)
                .filter(|l| !l.is_empty())
                .ok_or(TransformError::NoCodecs { index })?;
            let mut codecs: Vec<CodecPair> = Vec::with_capacity(pairs.len());
            for p in pairs {
                let pair = CodecPair {
                    input: CodecSpec::from_value(p.get("input"), index)?,
                    output: CodecSpec::from_value(p.get("output"), index)?,
                };
                let pt = pair.input.payload_type;
                if codecs.iter().any(|c| c.input.payload_type == pt) {
                    return Err(TransformError::DuplicatePt { index, pt });
                }
                codecs.push(pair);
            }
            let destination = m
                .get("destination")
                .and_then(Value::as_dict)
                .ok_or(TransformError::BadAddress {
                    index,
                    what: "destination",
                })
                .and_then(|d| endpoint(d, index))?;
            media.push(TransformMedia {
                id: m.str("id").map(str::to_owned),
                media_type: m.str("type").unwrap_or("audio").to_owned(),
                codecs,
                destination,
            });
        }
        Ok(Self {
            call_id: body.str("call-id").map(str::to_owned),
            from_tag: body.str("from-tag").map(str::to_owned),
            media,
            interface: body.str("interface").map(str::to_owned),
            instance: body.str("instance").map(str::to_owned),
            jitter_buffer: JitterBufferOption::from_body(body)?,
        })
    }

    /// The body, with keys in the relay's order (`command, call-id, from-tag, media, interface,
    /// instance`). Encoded as bencode the keys come out sorted, which every ng peer accepts.
    pub fn to_body(&self) -> Dict {
        let mut d = Dict::new().with("command", "transform");
        if let Some(c) = &self.call_id {
            d.push("call-id", c.as_str());
        }
        if let Some(t) = &self.from_tag {
            d.push("from-tag", t.as_str());
        }
        let media = self
            .media
            .iter()
            .map(|m| {
                let mut md = Dict::new();
                if let Some(id) = &m.id {
                    md.push("id", id.as_str());
                }
                md.push("type", m.media_type.as_str());
                let codecs = m
                    .codecs
                    .iter()
                    .map(|p| {
                        Value::Dict(
                            Dict::new()
                                .with("input", p.input.to_dict())
                                .with("output", p.output.to_dict()),
                        )
                    })
                    .collect::<Vec<_>>();
                md.push("codec", codecs);
                md.push("destination", endpoint_dict(Dict::new(), m.destination));
                Value::Dict(md)
            })
            .collect::<Vec<_>>();
        d.push("media", media);
        if let Some(i) = &self.interface {
            d.push("interface", i.as_str());
        }
        if let Some(i) = &self.instance {
            d.push("instance", i.as_str());
        }
        if let Some(j) = &self.jitter_buffer {
            j.write(&mut d);
        }
        d
    }
}

impl TransformReply {
    /// The body: `{result: ok, call-id, from-tag, media: [{id, family, address, port}]}`.
    pub fn to_body(&self) -> Dict {
        let media = self
            .media
            .iter()
            .map(|m| Value::Dict(endpoint_dict(Dict::new().with("id", m.id.as_str()), m.addr)))
            .collect::<Vec<_>>();
        Dict::new()
            .with("call-id", self.call_id.as_str())
            .with("from-tag", self.from_tag.as_str())
            .with("media", media)
            .with("result", "ok")
    }

    /// Reads a reply the way the relay does (codec.c `__make_transform_handler`): non-empty
    /// `call-id` and `from-tag`, a non-empty `media` whose entries have `family`, `address` and a
    /// `port` 1..=65535. `result` is checked by [`crate::client::parse_reply`].
    pub fn from_body(body: &Dict) -> Result<Self, TransformError> {
        let call_id = body
            .str("call-id")
            .filter(|s| !s.is_empty())
            .ok_or(TransformError::MissingKey { key: "call-id" })?;
        let from_tag = body
            .str("from-tag")
            .filter(|s| !s.is_empty())
            .ok_or(TransformError::MissingKey { key: "from-tag" })?;
        let list = body
            .get("media")
            .and_then(Value::as_list)
            .filter(|l| !l.is_empty())
            .ok_or(TransformError::NoMedia)?;
        let mut media = Vec::with_capacity(list.len());
        for (index, m) in list.iter().enumerate() {
            let d = m.as_dict().ok_or(TransformError::NoMedia)?;
            media.push(MediaAddress {
                id: d
                    .get("id")
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .or(v.as_int().map(|i| i.to_string()))
                    })
                    .unwrap_or_else(|| index.to_string()),
                addr: endpoint(d, index)?,
            });
        }
        Ok(Self {
            call_id: call_id.to_owned(),
            from_tag: from_tag.to_owned(),
            media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcmu() -> CodecSpec {
        CodecSpec {
            codec: "PCMU".into(),
            payload_type: 0,
            clock_rate: 8000,
            channels: 1,
            format: String::new(),
            options: String::new(),
        }
    }

    #[test]
    fn request_round_trip() {
        let req = TransformRequest {
            call_id: Some("c".into()),
            from_tag: Some("f".into()),
            media: vec![TransformMedia {
                id: None,
                media_type: "audio".into(),
                codecs: vec![CodecPair {
                    input: pcmu(),
                    output: CodecSpec {
                        codec: "opus".into(),
                        payload_type: 96,
                        clock_rate: 48000,
                        channels: 2,
                        format: "useinbandfec=1; stereo=0".into(),
                        options: String::new(),
                    },
                }],
                destination: "127.0.0.1:40401".parse().unwrap(),
            }],
            interface: None,
            instance: Some("f725e85d996b".into()),
            jitter_buffer: None,
        };
        let back = TransformRequest::from_body(&req.to_body()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.media[0].codecs[0].output.fmtp("STEREO"), Some("0"));
        assert_eq!(
            back.media[0].codecs[0].output.fmtp("maxaveragebitrate"),
            None
        );
    }

    #[test]
    fn duplicate_input_pt_is_refused() {
        let pair = Value::Dict(
            Dict::new()
                .with("input", pcmu().to_dict())
                .with("output", pcmu().to_dict()),
        );
        let media = Dict::new().with("codec", vec![pair.clone(), pair]).with(
            "destination",
            Dict::new().with("address", "127.0.0.1").with("port", 5u16),
        );
        let body = Dict::new().with("media", vec![Value::Dict(media)]);
        assert_eq!(
            TransformRequest::from_body(&body),
            Err(TransformError::DuplicatePt { index: 0, pt: 0 })
        );
    }

    #[test]
    fn reply_checks_like_the_relay() {
        let ok = TransformReply {
            call_id: "c".into(),
            from_tag: "f".into(),
            media: vec![MediaAddress {
                id: "0".into(),
                addr: "[::1]:9".parse().unwrap(),
            }],
        };
        assert_eq!(TransformReply::from_body(&ok.to_body()).unwrap(), ok);
        let no_port = Dict::new().with("call-id", "c").with("from-tag", "f").with(
            "media",
            vec![Value::Dict(
                Dict::new()
                    .with("family", "IP4")
                    .with("address", "1.2.3.4")
                    .with("port", 0i64),
            )],
        );
        assert!(matches!(
            TransformReply::from_body(&no_port),
            Err(TransformError::BadAddress { what: "port", .. })
        ));
        let wrong_family = Dict::new().with("call-id", "c").with("from-tag", "f").with(
            "media",
            vec![Value::Dict(
                Dict::new()
                    .with("family", "IP6")
                    .with("address", "1.2.3.4")
                    .with("port", 4i64),
            )],
        );
        assert!(TransformReply::from_body(&wrong_family).is_err());
    }

    #[test]
    fn jitter_buffer_option_parses_and_round_trips() {
        let mut body = Dict::new().with("command", "transform");
        body.push("jitter-buffer", "fixed");
        body.push("max-delay", "150");
        body.push("fixed-delay", 80i64);
        let j = JitterBufferOption::from_body(&body).unwrap().unwrap();
        assert_eq!(
            j,
            JitterBufferOption {
                mode: JitterBufferMode::Fixed,
                max_delay_ms: Some(150),
                fixed_delay_ms: Some(80),
            }
        );
        let mut out = Dict::new();
        j.write(&mut out);
        assert_eq!(JitterBufferOption::from_body(&out).unwrap(), Some(j));
        assert_eq!(JitterBufferOption::from_body(&Dict::new()).unwrap(), None);
        let mut bad = Dict::new();
        bad.push("jitter-buffer", "huge");
        assert!(JitterBufferOption::from_body(&bad).is_err());
        let mut bad = Dict::new();
        bad.push("max-delay", -5i64);
        assert!(JitterBufferOption::from_body(&bad).is_err());
    }
}
