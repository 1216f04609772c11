//! What a session holds only while it transcodes: the two codec directions (with their
//! repacketizer and playout clock). Built fresh when a session starts transcoding (at creation
//! or on a switch from passthrough), dropped when it switches to passthrough; the output
//! streams ([`super::rtp_out::RtpOut`]) and the RFC 4733 relays (whose last event bounds where
//! the next may start) live on in the session, so SSRC, sequence and timeline carry over.

use std::time::Instant;

use super::config::{ConfigError, SessionConfig};
use super::g711_to_opus::G711ToOpus;
use super::opus_to_g711::OpusToG711;
use super::rtp_out::RtpOut;

pub(super) struct Transcoder {
    pub(super) a_to_b: G711ToOpus,
    pub(super) b_to_a: OpusToG711,
}

impl Transcoder {
    /// A fresh transcoder for `config`. The G.711 output starts where leg A's stream stands at
    /// `now` (right after what it last sent, plus the time since), so its timestamps go on
    /// from there; the Opus output rebases the same way on its first input.
    pub(super) fn new(
        config: &SessionConfig,
        out_a: &RtpOut,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let codec = |e: bridgepool_codecs::opus::OpusError| ConfigError::Codec(e.to_string());
        let mut b_to_a = OpusToG711::new(
            config.leg_a.law,
            config.frame_a(),
            config.leg_a.ptime,
            config.playout_grace,
            config.jitter,
        )
        .map_err(codec)?;
        b_to_a.start_at(out_a.rebase_point(now, 8000));
        let mut a_to_b = G711ToOpus::new(config.leg_a.law, &config.leg_b.encoder, config.frame_b())
            .map_err(codec)?;
        a_to_b.set_plc(config.g711_plc);
        Ok(Self { a_to_b, b_to_a })
    }
}
