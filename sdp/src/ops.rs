//! rtpengine's codec operations, from the ng `codec` dictionary or the flat `codec-*` flags.
//!
//! A spec names a codec as rtpengine does: `opus`, `opus/48000`, `opus/48000/2`, with optional
//! `/bitrate/ptime/fmtp` after it (`opus/48000/2///useinbandfec--1;stereo--0`, `--` for `=`
//! because `=` cannot appear in a Kamailio flag); `all` (and `full`) match every codec.

use crate::codec::Codec;

/// One codec named in an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecSpec {
    /// Encoding name, or `all`.
    pub name: String,
    /// Clock rate, when given.
    pub clock_rate: Option<u32>,
    /// Channels, when given.
    pub channels: Option<u8>,
    /// Bitrate (bit/s), when given: what `set` asks our encoder for.
    pub bitrate: Option<u32>,
    /// fmtp parameters, when given (`--` already turned into `=`).
    pub fmtp: Option<String>,
}

impl CodecSpec {
    /// Reads `name[/rate[/channels[/bitrate[/ptime[/fmtp]]]]]`.
    pub fn parse(spec: &str) -> Self {
        let mut parts = spec.trim().split('/');
        let name = parts.next().unwrap_or_default().to_owned();
        let clock_rate = parts.next().and_then(|r| r.parse().ok());
        let channels = parts.next().and_then(|c| c.parse().ok());
        let bitrate = parts.next().and_then(|b| b.parse().ok()).filter(|b| *b > 0);
        let _ptime = parts.next();
        let fmtp = parts
            .next()
            .filter(|f| !f.is_empty())
            .map(|f| f.replace("--", "=").replace(';', "; "));
        Self {
            name,
            clock_rate,
            channels,
            bitrate,
            fmtp,
        }
    }

    /// Whether this spec is `all` or `full`.
    pub fn is_all(&self) -> bool {
        self.name.eq_ignore_ascii_case("all") || self.name.eq_ignore_ascii_case("full")
    }

    /// Whether it names `codec`.
    pub fn matches(&self, codec: &Codec) -> bool {
        self.is_all()
            || (self.name.eq_ignore_ascii_case(&codec.name)
                && self.clock_rate.is_none_or(|r| r == codec.clock_rate))
    }

    /// The codec it names, for adding to an offer (static payload type when there is one).
    pub fn to_codec(&self) -> Option<Codec> {
        let lower = self.name.to_ascii_lowercase();
        let (pt, name, rate, channels) = match lower.as_str() {
            "pcmu" => (0, "PCMU", 8000, 1),
            "pcma" => (8, "PCMA", 8000, 1),
            "opus" => (0, "opus", 48000, 2),
            _ => return None,
        };
        let mut c = Codec::new(pt, name, self.clock_rate.unwrap_or(rate), channels);
        if lower == "opus" {
            c.fmtp = self
                .fmtp
                .clone()
                .unwrap_or_else(|| "useinbandfec=1".to_owned());
        }
        Some(c)
    }
}

/// The codec operations of one offer (rtpengine's `codec` dictionary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecOps {
    /// Removed from the outgoing offer and not accepted from the offerer.
    pub strip: Vec<CodecSpec>,
    /// Removed from the outgoing offer, still accepted from the offerer (and transcoded).
    pub mask: Vec<CodecSpec>,
    /// Like mask (rtpengine also forces its transcoding engine on).
    pub consume: Vec<CodecSpec>,
    /// Added to the outgoing offer when not there.
    pub transcode: Vec<CodecSpec>,
    /// Whitelist and order of the offerer's codecs in the outgoing offer.
    pub offer: Vec<CodecSpec>,
    /// Kept in spite of an `all` strip or mask.
    pub except: Vec<CodecSpec>,
    /// Kept; accepted from the offerer even when the answerer rejects it.
    pub accept: Vec<CodecSpec>,
    /// Parameters for a codec the pool encodes (rtpengine's `set`): a bitrate and fmtp options
    /// for our Opus encoder when the call is transcoded ([`CodecOps::set_on`]).
    pub set: Vec<CodecSpec>,
}

impl CodecOps {
    /// Whether no operation was given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies one operation by rtpengine's name (`strip`, `mask`, `transcode`, ...); `false` for
    /// an unknown operation, which the caller ignores as rtpengine does.
    pub fn push(&mut self, op: &str, spec: &str) -> bool {
        let list = match op.to_ascii_lowercase().as_str() {
            "strip" => &mut self.strip,
            "mask" => &mut self.mask,
            "consume" => &mut self.consume,
            "transcode" => &mut self.transcode,
            "offer" => &mut self.offer,
            "except" => &mut self.except,
            "accept" => &mut self.accept,
            "set" => &mut self.set,
            _ => return false,
        };
        list.push(CodecSpec::parse(spec));
        true
    }

    /// Reads a flat flag: `codec-strip-PCMU`, `codec-mask-all`, `transcode-opus`,
    /// `codec-transcode-opus/48000/2`; `false` when it is not a codec flag.
    pub fn push_flag(&mut self, flag: &str) -> bool {
        let lower = flag.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("codec-")
            .or_else(|| lower.strip_prefix("codec_"))
            .map(|_| &flag[6..]);
        let rest = match rest {
            Some(r) => r,
            None if lower.starts_with("transcode-") || lower.starts_with("transcode_") => flag,
            None => return false,
        };
        let Some(sep) = rest.find(['-', '_']) else {
            return false;
        };
        let (op, spec) = (&rest[..sep], &rest[sep + 1..]);
        !spec.is_empty() && self.push(op, spec)
    }

    /// `codec` (what a peer receives from our encoder) with the matching `set` applied: the
    /// spec's bitrate as `maxaveragebitrate` and its fmtp parameters over the peer's. A codec
    /// no `set` names comes back unchanged.
    pub fn set_on(&self, codec: &Codec) -> Codec {
        let mut out = codec.clone();
        for spec in self.set.iter().filter(|s| !s.is_all() && s.matches(codec)) {
            let mut params: Vec<(String, String)> = out
                .fmtp
                .split(';')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let mut put = |k: &str, v: &str| match params.iter_mut().find(|(pk, _)| pk == k) {
                Some(p) => p.1 = v.to_owned(),
                None => params.push((k.to_owned(), v.to_owned())),
            };
            for (k, v) in spec
                .fmtp
                .iter()
                .flat_map(|f| f.split(';'))
                .filter_map(|p| p.split_once('='))
            {
                put(k.trim(), v.trim());
            }
            if let Some(b) = spec.bitrate {
                put("maxaveragebitrate", &b.to_string());
            }
            out.fmtp = params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
        }
        out
    }

    fn named(list: &[CodecSpec], codec: &Codec) -> bool {
        list.iter().any(|s| s.matches(codec))
    }

    fn excepted(&self, codec: &Codec) -> bool {
        Self::named(&self.except, codec)
    }

    /// Whether the offerer's `codec` is stripped (neither offered on nor accepted).
    pub fn strips(&self, codec: &Codec) -> bool {
        self.strip
            .iter()
            .any(|s| s.matches(codec) && !(s.is_all() && self.excepted(codec)))
    }

    /// Whether the offerer's `codec` is left out of the outgoing offer (stripped, masked,
    /// consumed, or missing from an `offer` whitelist).
    pub fn hides(&self, codec: &Codec) -> bool {
        if self.strips(codec) {
            return true;
        }
        let masked = self
            .mask
            .iter()
            .chain(&self.consume)
            .any(|s| s.matches(codec) && !(s.is_all() && self.excepted(codec)));
        let not_offered = !self.offer.is_empty() && !Self::named(&self.offer, codec);
        (masked || not_offered) && !Self::named(&self.accept, codec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = CodecSpec::parse("opus/48000/2///maxaveragebitrate--40000;stereo--0");
        assert_eq!(s.name, "opus");
        assert_eq!(s.clock_rate, Some(48000));
        assert_eq!(s.channels, Some(2));
        assert_eq!(s.fmtp.as_deref(), Some("maxaveragebitrate=40000; stereo=0"));
        let opus = s.to_codec().unwrap();
        assert_eq!(opus.fmtp, "maxaveragebitrate=40000; stereo=0");
        assert_eq!(
            CodecSpec::parse("opus").to_codec().unwrap().fmtp,
            "useinbandfec=1"
        );
        assert!(CodecSpec::parse("ALL").matches(&Codec::from_static(0)));
        assert!(!CodecSpec::parse("PCMU/16000").matches(&Codec::from_static(0)));
        assert_eq!(CodecSpec::parse("G729").to_codec(), None);
    }

    #[test]
    fn set_gives_our_encoder_a_bitrate_and_options() {
        let mut ops = CodecOps::default();
        assert!(ops.push_flag("codec-set-opus/48000/2/12000"));
        let peer =
            Codec::new(96, "opus", 48000, 2).with_fmtp("useinbandfec=1; maxaveragebitrate=40000");
        assert_eq!(
            ops.set_on(&peer).fmtp,
            "useinbandfec=1; maxaveragebitrate=12000"
        );
        ops.push("set", "opus/48000/2///usedtx--1");
        assert_eq!(
            ops.set_on(&peer).fmtp,
            "useinbandfec=1; maxaveragebitrate=12000; usedtx=1"
        );
        // Other codecs, and no set at all, are left as they are.
        assert_eq!(ops.set_on(&Codec::from_static(0)), Codec::from_static(0));
        assert_eq!(CodecOps::default().set_on(&peer), peer);
    }

    #[test]
    fn flat_flags() {
        let mut ops = CodecOps::default();
        assert!(ops.push_flag("codec-mask-all"));
        assert!(ops.push_flag("transcode-opus"));
        assert!(ops.push_flag("codec-transcode-PCMA"));
        assert!(ops.push_flag("codec-strip-telephone-event"));
        assert!(!ops.push_flag("trust-address"));
        assert!(!ops.push_flag("codec-bogus-PCMU"));
        assert_eq!(ops.mask[0].name, "all");
        assert_eq!(ops.transcode.len(), 2);
        assert_eq!(ops.transcode[1].name, "PCMA");
        assert_eq!(ops.strip[0].name, "telephone-event");
    }

    #[test]
    fn strip_mask_except_accept() {
        let pcmu = Codec::from_static(0);
        let pcma = Codec::from_static(8);
        let mut ops = CodecOps::default();
        ops.push("strip", "all");
        ops.push("except", "PCMA");
        assert!(ops.strips(&pcmu) && !ops.strips(&pcma));
        let mut ops = CodecOps::default();
        ops.push("mask", "PCMU");
        assert!(ops.hides(&pcmu) && !ops.strips(&pcmu) && !ops.hides(&pcma));
        ops.push("accept", "PCMU");
        assert!(!ops.hides(&pcmu));
        let mut ops = CodecOps::default();
        ops.push("offer", "PCMA");
        assert!(ops.hides(&pcmu) && !ops.hides(&pcma));
    }
}
