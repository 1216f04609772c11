//! Writes our address, ports and the planned codecs into a description, keeping every line it
//! does not touch.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sdp::description::common::{Address, Attribute, ConnectionInformation};

use crate::codec::Codec;
use crate::description::Description;
use crate::error::SdpError;

/// ICE attributes `ICE=remove` drops (session and media level).
const ICE_KEYS: &[&str] = &[
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "candidate",
    "remote-candidates",
    "end-of-candidates",
];

/// How to rewrite one description on its way through the pool.
#[derive(Clone, Debug)]
pub struct Rewrite<'a> {
    /// Where the receiving party must send RTP (RTCP on port + 1).
    pub local: SocketAddr,
    /// The audio stream's payload formats, in order.
    pub codecs: &'a [Codec],
    /// `ICE=remove`: drop ICE attributes.
    pub remove_ice: bool,
    /// `replace: [origin]`: our address in the `o=` line.
    pub replace_origin: bool,
    /// `ptime` asked for by the request: written as `a=ptime`.
    pub ptime_ms: Option<u32>,
}

impl Rewrite<'_> {
    /// The rewritten description as text. A held stream (`c=` 0.0.0.0) stays held.
    pub fn apply(&self, desc: &Description) -> Result<String, SdpError> {
        let audio = desc.audio()?;
        // An m= line needs at least one format.
        if self.codecs.is_empty() {
            return Err(SdpError::NoCommonCodec);
        }
        let index = desc.audio_index()?;
        let mut d = desc.inner.clone();
        let ip = match (audio.addr.is_unspecified(), self.local.ip()) {
            (false, ip) => ip,
            (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let connection = ConnectionInformation {
            network_type: "IN".to_owned(),
            address_type: family.to_owned(),
            address: Some(Address {
                address: ip.to_string(),
                ttl: None,
                range: None,
            }),
        };
        if d.connection_information.is_some() {
            d.connection_information = Some(connection.clone());
        }
        if self.replace_origin {
            d.origin.address_type = family.to_owned();
            d.origin.unicast_address = self.local.ip().to_string();
        }
        if self.remove_ice {
            d.attributes.retain(|a| !ICE_KEYS.contains(&a.key.as_str()));
        }
        let session_has_c = d.connection_information.is_some();
        for (i, media) in d.media_descriptions.iter_mut().enumerate() {
            if i != index {
                // Only the audio stream is anchored here: the others are declined (port 0).
                media.media_name.port.value = 0;
                continue;
            }
            if media.connection_information.is_some() || !session_has_c {
                media.connection_information = Some(connection.clone());
            }
            media.media_name.port.value = self.local.port() as isize;
            media.media_name.port.range = None;
            media.media_name.formats = self
                .codecs
                .iter()
                .map(|c| c.payload_type.to_string())
                .collect();
            media.attributes = self.attributes(&media.attributes);
        }
        Ok(d.marshal())
    }

    /// The audio section's attributes: codec lines replaced where the first rtpmap was, RTCP
    /// port ours (no rtcp-mux: the pool receives RTCP on port + 1), ICE dropped when asked.
    fn attributes(&self, old: &[Attribute]) -> Vec<Attribute> {
        let mut out = Vec::with_capacity(old.len() + 2 * self.codecs.len());
        let mut codec_at = None;
        let mut ptime_written = false;
        let pts: Vec<String> = self
            .codecs
            .iter()
            .map(|c| c.payload_type.to_string())
            .collect();
        for a in old {
            match a.key.as_str() {
                "rtpmap" | "fmtp" => {
                    codec_at.get_or_insert(out.len());
                }
                "rtcp-fb" => {
                    let pt = a
                        .value
                        .as_deref()
                        .and_then(|v| v.split_whitespace().next())
                        .unwrap_or("*");
                    if pt == "*" || pts.iter().any(|p| p == pt) {
                        out.push(a.clone());
                    }
                }
                "rtcp-mux" => {}
                "rtcp" => out.push(Attribute::new(
                    "rtcp".to_owned(),
                    Some(self.local.port().wrapping_add(1).to_string()),
                )),
                "ptime" if self.ptime_ms.is_some() => {
                    ptime_written = true;
                    out.push(ptime_attr(self.ptime_ms));
                }
                k if self.remove_ice && ICE_KEYS.contains(&k) => {}
                _ => out.push(a.clone()),
            }
        }
        let at = codec_at.unwrap_or(0);
        let mut lines = Vec::with_capacity(2 * self.codecs.len());
        for c in self.codecs {
            lines.push(Attribute::new("rtpmap".to_owned(), Some(c.rtpmap())));
            if !c.fmtp.is_empty() {
                lines.push(Attribute::new(
                    "fmtp".to_owned(),
                    Some(format!("{} {}", c.payload_type, c.fmtp)),
                ));
            }
        }
        out.splice(at..at, lines);
        if self.ptime_ms.is_some() && !ptime_written {
            out.push(ptime_attr(self.ptime_ms));
        }
        out
    }
}

fn ptime_attr(ptime: Option<u32>) -> Attribute {
    Attribute::new("ptime".to_owned(), ptime.map(|p| p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CodecOps, plan_offer};

    const OFFER: &str = "v=0\r\no=- 1545997027 1 IN IP4 198.51.100.1\r\ns=tester\r\n\
        c=IN IP4 198.51.100.1\r\nt=0 0\r\na=ice-lite\r\nm=audio 2000 RTP/AVP 0 101\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
        a=rtcp:2001\r\na=ice-ufrag:abcd\r\na=candidate:1 1 UDP 2130706431 198.51.100.1 2000 typ host\r\n\
        a=x-keep:me\r\na=sendrecv\r\nm=video 3000 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n";

    fn rewrite(codecs: &[Codec], replace_origin: bool, ptime: Option<u32>) -> String {
        let d = Description::parse(OFFER).unwrap();
        Rewrite {
            local: "203.0.113.1:30000".parse().unwrap(),
            codecs,
            remove_ice: true,
            replace_origin,
            ptime_ms: ptime,
        }
        .apply(&d)
        .unwrap()
    }

    #[test]
    fn offer_out_has_our_address_codecs_and_keeps_the_rest() {
        let d = Description::parse(OFFER).unwrap();
        let mut ops = CodecOps::default();
        ops.push("transcode", "opus");
        let plan = plan_offer(&d.audio().unwrap().codecs, &ops);
        let out = rewrite(&plan.out, false, None);
        assert!(out.contains("c=IN IP4 203.0.113.1\r\n"), "{out}");
        assert!(
            out.contains("m=audio 30000 RTP/AVP 0 96 97 101\r\n"),
            "{out}"
        );
        assert!(out.contains("a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n"));
        assert!(out.contains("a=rtpmap:97 telephone-event/48000\r\na=fmtp:97 0-15\r\n"));
        assert!(out.contains("a=rtcp:30001\r\n"));
        assert!(out.contains("a=x-keep:me\r\n") && out.contains("s=tester\r\n"));
        assert!(out.contains("o=- 1545997027 1 IN IP4 198.51.100.1\r\n"));
        assert!(!out.contains("ice") && !out.contains("candidate"), "{out}");
        assert!(out.contains("m=video 0 RTP/AVP 97\r\n"));
        let again = Description::parse(&out).unwrap().audio().unwrap();
        assert_eq!(again.codecs, plan.out);
    }

    #[test]
    fn replace_origin_and_ptime() {
        let out = rewrite(&[Codec::from_static(0)], true, Some(30));
        assert!(
            out.contains("o=- 1545997027 1 IN IP4 203.0.113.1\r\n"),
            "{out}"
        );
        assert!(out.contains("a=ptime:30\r\n"));
        assert!(out.contains("m=audio 30000 RTP/AVP 0\r\n"));
        assert!(!out.contains("telephone-event"));
    }

    #[test]
    fn hold_stays_hold() {
        let held = OFFER.replace("c=IN IP4 198.51.100.1", "c=IN IP4 0.0.0.0");
        let d = Description::parse(&held).unwrap();
        let out = Rewrite {
            local: "203.0.113.1:30000".parse().unwrap(),
            codecs: &[Codec::from_static(0)],
            remove_ice: false,
            replace_origin: false,
            ptime_ms: None,
        }
        .apply(&d)
        .unwrap();
        assert!(out.contains("c=IN IP4 0.0.0.0\r\n"), "{out}");
        assert!(out.contains("a=ice-ufrag:abcd"));
    }
}
