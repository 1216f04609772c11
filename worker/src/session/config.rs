//! What a session is built from: the two legs' negotiated parameters and the driver's seeds.

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{Application, EncoderConfig, SampleRate};

/// How the transcoder's Opus encoder is tuned: `Voip` (SILK narrowband), chosen by PESQ against
/// cost (docs/performance.md, "Opus encoder chosen by PESQ"). `Audio` codes CELT-only
/// narrowband frames from 8 kHz input: PESQ NB 0.6 lower, and no in-band FEC.
pub const TRANSCODER_APPLICATION: Application = Application::Voip;

/// The transcoder's encoder complexity: 0, the cheapest. At 24 kbit/s it already meets the PESQ
/// goal (NB mean >= 3.9 over six voices, each >= 3.8 or within 0.05 of its G.711-alone ceiling);
/// higher complexities add 0.01-0.05 for up to 3.5x the encode time (docs/performance.md).
pub const TRANSCODER_COMPLEXITY: u8 = 0;

/// The transcoder's target bitrate when the peer's `maxaveragebitrate` allows it: 28 kbit/s
/// (about 24 on the wire with VBR) buys complexity 0 the margin 24 lacks on the hardest voices at
/// no CPU cost, and leaves room for in-band FEC when loss is reported.
pub const TRANSCODER_BITRATE: i32 = 28_000;

/// Leg A: the G.711 side (8 kHz).
#[derive(Clone, Debug, PartialEq)]
pub struct G711Leg {
    /// PCMU or PCMA.
    pub law: Law,
    /// RTP payload type of the audio (0 for PCMU and 8 for PCMA when static).
    pub payload_type: u8,
    /// RTP payload type of telephone-event/8000 on this leg, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Packetization time of what we send on this leg.
    pub ptime: Duration,
}

/// Leg B: the Opus side (48 kHz RTP clock).
#[derive(Clone, Debug, PartialEq)]
pub struct OpusLeg {
    /// RTP payload type of opus/48000/2.
    pub payload_type: u8,
    /// RTP payload type of telephone-event/48000 on this leg, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Packetization time of what we send on this leg (10, 20, 40 or 60 ms).
    pub ptime: Duration,
    /// Encoder settings; its sample rate must be 8 kHz (the G.711 side's rate, no resampling).
    pub encoder: EncoderConfig,
}

/// When a session gives up on silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// No RTP from either leg for this long ends the session.
    pub media: Duration,
    /// No RTP from one leg, while the other still sends, for this long ends the session.
    pub one_sided: Duration,
    /// A session never answered (its peers never set) expires after this long.
    pub unanswered: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            media: Duration::from_secs(60),
            one_sided: Duration::from_secs(120),
            unanswered: Duration::from_secs(60),
        }
    }
}

/// How a session carries media between its legs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Decode and re-encode: leg A is G.711, leg B Opus; our own stream and RTCP on each leg.
    #[default]
    Transcode,
    /// Relay: each leg's RTP and RTCP go to the other leg's peer verbatim, at once, undecoded.
    /// The legs' codec settings are not used (kept for a later switch to [`Mode::Transcode`]).
    Passthrough,
}

/// Everything a [`super::Session`] is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Transcode or relay; [`super::Session::update`] with another mode switches it live.
    pub mode: Mode,
    /// The G.711 leg.
    pub leg_a: G711Leg,
    /// The Opus leg.
    pub leg_b: OpusLeg,
    /// Our SSRC, first sequence number and first timestamp toward leg A (random, from the driver).
    pub seed_a: StreamSeed,
    /// The same toward leg B.
    pub seed_b: StreamSeed,
    /// RTCP CNAME of our streams.
    pub cname: String,
    /// NTP time (RFC 5905 64-bit format) at the `now` the session is created with.
    pub ntp_at_creation: u64,
    /// Silence limits.
    pub timeouts: Timeouts,
    /// How long a packet waits in the reorder buffer for the ones before it.
    pub reorder_wait: Duration,
    /// How late an Opus packet may be before the G.711 output conceals in its place.
    pub playout_grace: Duration,
    /// Mean interval between our RTCP reports on each leg.
    pub rtcp_interval: Duration,
    /// How the Opus -> G.711 direction absorbs arrival jitter.
    pub jitter: JitterBuffer,
    /// Conceal loss on the G.711 leg before the Opus encoder (else the gap is left to the Opus
    /// receiver). On by default: better by PESQ (docs/performance.md).
    pub g711_plc: bool,
}

/// How the Opus -> G.711 direction plays out what arrives with jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JitterMode {
    /// No buffer: audio leaves as it arrives; a packet later than the playout grace is concealed
    /// and then skipped (the behaviour before the jitter buffer).
    Off,
    /// A constant delay ([`JitterBuffer::fixed_delay`]), held by time stretching.
    Fixed,
    /// A delay that follows the measured arrival jitter, up to [`JitterBuffer::max_delay`].
    Adaptive,
}

/// Jitter buffer settings of the Opus -> G.711 direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitterBuffer {
    /// Off, fixed or adaptive.
    pub mode: JitterMode,
    /// The most delay the buffer ever adds; older audio is cut.
    pub max_delay: Duration,
    /// The delay held in [`JitterMode::Fixed`].
    pub fixed_delay: Duration,
}

impl JitterBuffer {
    /// Largest `max_delay` accepted.
    pub const MAX_DELAY_LIMIT: Duration = Duration::from_millis(500);
}

impl Default for JitterBuffer {
    /// Adaptive, at most 200 ms (covers 5-80 ms of jitter with room for reordering), 60 ms when
    /// switched to fixed.
    fn default() -> Self {
        Self {
            mode: JitterMode::Adaptive,
            max_delay: Duration::from_millis(200),
            fixed_delay: Duration::from_millis(60),
        }
    }
}

/// Random starting points for one output stream (RFC 3550 section 5.1: all three random).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSeed {
    /// Our SSRC.
    pub ssrc: u32,
    /// First sequence number.
    pub sequence: u16,
    /// First timestamp.
    pub timestamp: u32,
}

impl SessionConfig {
    /// A configuration with usual defaults: PCMU with telephone-event 101 on leg A, Opus 111 with
    /// telephone-event 110 on leg B, 20 ms both ways, the transcoder's Opus encoder
    /// ([`TRANSCODER_APPLICATION`], [`TRANSCODER_COMPLEXITY`], [`TRANSCODER_BITRATE`]) with in-band FEC.
    pub fn new(law: Law, seed_a: StreamSeed, seed_b: StreamSeed) -> Self {
        Self {
            mode: Mode::Transcode,
            leg_a: G711Leg {
                law,
                payload_type: match law {
                    Law::Ulaw => 0,
                    Law::Alaw => 8,
                },
                telephone_event_pt: Some(101),
                ptime: Duration::from_millis(20),
            },
            leg_b: OpusLeg {
                payload_type: 111,
                telephone_event_pt: Some(110),
                ptime: Duration::from_millis(20),
                encoder: EncoderConfig {
                    application: TRANSCODER_APPLICATION,
                    sample_rate: SampleRate::Hz8000,
                    bitrate: TRANSCODER_BITRATE,
                    complexity: TRANSCODER_COMPLEXITY,
                    inband_fec: true,
                    ..EncoderConfig::default()
                },
            },
            seed_a,
            seed_b,
            cname: "bridgepool".to_owned(),
            ntp_at_creation: 0,
            timeouts: Timeouts::default(),
            reorder_wait: Duration::from_millis(30),
            playout_grace: Duration::from_millis(30),
            rtcp_interval: Duration::from_secs(5),
            jitter: JitterBuffer::default(),
            g711_plc: true,
        }
    }

    /// Checks what the session cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = self.leg_a.ptime;
        if a < Duration::from_millis(10)
            || a > Duration::from_millis(60)
            || !a.as_micros().is_multiple_of(5000)
        {
            return Err(ConfigError::G711Ptime(a));
        }
        let b = self.leg_b.ptime.as_millis();
        if !matches!(b, 10 | 20 | 40 | 60) || !self.leg_b.ptime.subsec_micros().is_multiple_of(1000)
        {
            return Err(ConfigError::OpusPtime(self.leg_b.ptime));
        }
        if self.leg_b.encoder.sample_rate != SampleRate::Hz8000 {
            return Err(ConfigError::EncoderRate(self.leg_b.encoder.sample_rate));
        }
        for pt in [
            Some(self.leg_a.payload_type),
            self.leg_a.telephone_event_pt,
            Some(self.leg_b.payload_type),
            self.leg_b.telephone_event_pt,
        ]
        .into_iter()
        .flatten()
        {
            // 72..=95 would collide with RTCP packet types under rtcp-mux (RFC 5761).
            if pt > 127 || (72..=95).contains(&pt) {
                return Err(ConfigError::PayloadType(pt));
            }
        }
        if self.leg_a.telephone_event_pt == Some(self.leg_a.payload_type)
            || self.leg_b.telephone_event_pt == Some(self.leg_b.payload_type)
        {
            return Err(ConfigError::PayloadTypeClash);
        }
        if self.cname.is_empty() || self.cname.len() > 255 {
            return Err(ConfigError::Cname);
        }
        let j = self.jitter;
        if j.max_delay > JitterBuffer::MAX_DELAY_LIMIT
            || j.max_delay < self.leg_a.ptime
            || (j.mode == JitterMode::Fixed && j.fixed_delay > j.max_delay)
        {
            return Err(ConfigError::JitterBuffer(j.max_delay, j.fixed_delay));
        }
        Ok(())
    }

    /// Samples per output frame toward leg A (8 kHz).
    pub(crate) fn frame_a(&self) -> usize {
        (self.leg_a.ptime.as_micros() * 8 / 1000) as usize
    }

    /// Samples per output frame toward leg B, counted at the 8 kHz the encoder is fed.
    pub(crate) fn frame_b(&self) -> usize {
        (self.leg_b.ptime.as_micros() * 8 / 1000) as usize
    }
}

/// A session configuration the session cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// G.711 ptime must be 10 to 60 ms in 5 ms steps.
    #[error("G.711 ptime {0:?} is not 10 to 60 ms in 5 ms steps")]
    G711Ptime(Duration),
    /// Opus ptime must be 10, 20, 40 or 60 ms.
    #[error("Opus ptime {0:?} is not 10, 20, 40 or 60 ms")]
    OpusPtime(Duration),
    /// The encoder must be fed at 8 kHz.
    #[error("the Opus encoder must take 8 kHz input from the G.711 leg, not {0:?}")]
    EncoderRate(SampleRate),
    /// Payload types are 0..=127 and may not collide with RTCP types.
    #[error("payload type {0} is outside 0..=127 or collides with RTCP (72..=95)")]
    PayloadType(u8),
    /// The telephone-event payload type equals the audio one on a leg.
    #[error("telephone-event and audio share a payload type on one leg")]
    PayloadTypeClash,
    /// The CNAME must be 1 to 255 bytes.
    #[error("RTCP CNAME must be 1 to 255 bytes")]
    Cname,
    /// The jitter buffer's maximum delay must be one G.711 frame to 500 ms, and a fixed delay
    /// no more than it.
    #[error(
        "jitter buffer: max delay {0:?} not one G.711 frame to 500 ms, or fixed delay {1:?} above it"
    )]
    JitterBuffer(Duration, Duration),
    /// The Opus encoder or decoder refused its settings.
    #[error("Opus codec setup failed: {0}")]
    Codec(String),
}
