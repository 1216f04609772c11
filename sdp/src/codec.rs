//! One payload format of an audio stream.

/// One payload format: the `m=` line's payload type with its `a=rtpmap` and `a=fmtp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`); empty when unknown.
    pub name: String,
    /// RTP clock rate; 0 when unknown.
    pub clock_rate: u32,
    /// Channels (1 unless the rtpmap says otherwise).
    pub channels: u8,
    /// The `a=fmtp` parameters, empty when none.
    pub fmtp: String,
}

/// What the pool can do with a codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// PCMU or PCMA: leg A of a session.
    G711,
    /// Opus: leg B.
    Opus,
    /// RFC 4733 telephone-event (relayed with rescaled timestamps).
    Dtmf,
    /// Anything else (CN, G.722...): relayed in passthrough, dropped when transcoding.
    Other,
}

impl Codec {
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

    /// RFC 3551 static payload types, as an `m=` line without rtpmap means them.
    pub fn from_static(payload_type: u8) -> Self {
        match payload_type {
            0 => Self::new(0, "PCMU", 8000, 1),
            8 => Self::new(8, "PCMA", 8000, 1),
            9 => Self::new(9, "G722", 8000, 1),
            13 => Self::new(13, "CN", 8000, 1),
            18 => Self::new(18, "G729", 8000, 1),
            _ => Self::new(payload_type, "", 0, 1),
        }
    }

    /// Whether this is `name` (case-insensitive) at `clock_rate`.
    pub fn is(&self, name: &str, clock_rate: u32) -> bool {
        self.name.eq_ignore_ascii_case(name) && self.clock_rate == clock_rate
    }

    /// Same encoding and clock rate (Opus's channel count does not matter: RFC 7587 always says 2).
    pub fn same_format(&self, other: &Self) -> bool {
        self.is(&other.name, other.clock_rate)
    }

    /// What the pool can do with it.
    pub fn family(&self) -> Family {
        let name = self.name.to_ascii_lowercase();
        match name.as_str() {
            "pcmu" | "pcma" if self.clock_rate == 8000 => Family::G711,
            "opus" if self.clock_rate == 48000 => Family::Opus,
            "telephone-event" => Family::Dtmf,
            _ => Family::Other,
        }
    }

    /// The `a=rtpmap` value: `96 opus/48000/2`.
    pub fn rtpmap(&self) -> String {
        if self.channels > 1 {
            format!(
                "{} {}/{}/{}",
                self.payload_type, self.name, self.clock_rate, self.channels
            )
        } else {
            format!("{} {}/{}", self.payload_type, self.name, self.clock_rate)
        }
    }

    /// The value of fmtp parameter `key`, if present.
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(Codec::from_static(0).family(), Family::G711);
        assert_eq!(Codec::new(96, "OPUS", 48000, 2).family(), Family::Opus);
        assert_eq!(
            Codec::new(101, "telephone-event", 8000, 1).family(),
            Family::Dtmf
        );
        assert_eq!(Codec::from_static(13).family(), Family::Other);
    }

    #[test]
    fn rtpmap_and_fmtp() {
        let c = Codec::new(96, "opus", 48000, 2).with_fmtp("stereo=0; useinbandfec=1");
        assert_eq!(c.rtpmap(), "96 opus/48000/2");
        assert_eq!(c.fmtp_param("useinbandfec"), Some("1"));
        assert_eq!(c.fmtp_param("cbr"), None);
        assert_eq!(Codec::from_static(8).rtpmap(), "8 PCMA/8000");
    }
}
