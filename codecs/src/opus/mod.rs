//! Opus (RFC 6716) encoder and decoder behind bridgepool's own types.
//!
//! Mono, application VoIP. The worker feeds the encoder the G.711 side's 8 kHz directly and has
//! the decoder produce 8 kHz: libopus resamples internally far cheaper than an external resampler
//! and spends no bits on bands the PSTN side cannot carry.
//!
//! Two backends, chosen by cargo feature because both bundle a static libopus with the same C
//! symbols: `libopus16` (libopus 1.6.1 through the `opus` crate, the default: measured cheaper,
//! see docs/performance.md) and `audiopus` (libopus 1.3 through audiopus). Enable exactly one.

#[cfg(all(feature = "libopus16", feature = "audiopus"))]
compile_error!("enable exactly one Opus backend: `libopus16` or `audiopus` (both bundle libopus)");
#[cfg(not(any(feature = "libopus16", feature = "audiopus")))]
compile_error!("enable one Opus backend: `libopus16` (default) or `audiopus`");

#[cfg(feature = "audiopus")]
mod backend_audiopus;
#[cfg(feature = "libopus16")]
mod backend_libopus16;
mod packet;

#[cfg(feature = "audiopus")]
use backend_audiopus as backend;
#[cfg(feature = "libopus16")]
use backend_libopus16 as backend;

pub use packet::{packet_has_fec, packet_samples};

/// Which libopus this build links.
pub const BACKEND: &str = backend::NAME;

/// A sample rate libopus takes and gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleRate {
    /// 8 kHz (narrowband, the G.711 rate).
    Hz8000,
    /// 12 kHz.
    Hz12000,
    /// 16 kHz (wideband).
    Hz16000,
    /// 24 kHz.
    Hz24000,
    /// 48 kHz (fullband, the Opus RTP clock).
    Hz48000,
}

impl SampleRate {
    /// The rate in Hz.
    pub const fn hz(self) -> u32 {
        match self {
            Self::Hz8000 => 8000,
            Self::Hz12000 => 12_000,
            Self::Hz16000 => 16_000,
            Self::Hz24000 => 24_000,
            Self::Hz48000 => 48_000,
        }
    }
}

impl TryFrom<u32> for SampleRate {
    type Error = OpusError;

    fn try_from(hz: u32) -> Result<Self, OpusError> {
        Ok(match hz {
            8000 => Self::Hz8000,
            12_000 => Self::Hz12000,
            16_000 => Self::Hz16000,
            24_000 => Self::Hz24000,
            48_000 => Self::Hz48000,
            _ => return Err(OpusError::UnsupportedRate { hz }),
        })
    }
}

/// The widest audio band the encoder may code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bandwidth {
    /// 4 kHz audio band.
    Narrowband,
    /// 6 kHz.
    Mediumband,
    /// 8 kHz.
    Wideband,
    /// 12 kHz.
    SuperWideband,
    /// 20 kHz.
    Fullband,
}

/// What the encoder optimises for (libopus' `OPUS_APPLICATION_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Application {
    /// Speech intelligibility: SILK for narrowband speech.
    Voip,
    /// Fidelity to the input: CELT while no loss is expected, SILK with in-band FEC when the
    /// expected loss makes FEC worth it.
    Audio,
}

/// Encoder settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// What the encoder optimises for.
    pub application: Application,
    /// Rate of the PCM fed in (8 kHz for a G.711 peer).
    pub sample_rate: SampleRate,
    /// Target bits per second.
    pub bitrate: i32,
    /// 0 (cheapest) to 10 (best).
    pub complexity: u8,
    /// Carry a low-bitrate copy of the previous frame for loss recovery (RFC 6716 LBRR).
    pub inband_fec: bool,
    /// Stop sending during silence (discontinuous transmission).
    pub dtx: bool,
    /// The loss the receiver sees, 0..=100: tunes how much FEC the encoder spends.
    pub expected_loss_pct: u8,
    /// The widest band coded.
    pub max_bandwidth: Bandwidth,
    /// Constant bitrate (the peer's `cbr=1`): every frame the same size; otherwise VBR.
    pub cbr: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            application: Application::Voip,
            sample_rate: SampleRate::Hz8000,
            bitrate: 24_000,
            complexity: 5,
            inband_fec: true,
            dtx: false,
            expected_loss_pct: 0,
            max_bandwidth: Bandwidth::Narrowband,
            cbr: false,
        }
    }
}

impl EncoderConfig {
    /// What a WebRTC browser sends: libopus at 48 kHz fullband, application VoIP, 32 kbit/s VBR,
    /// complexity 9 (WebRTC's desktop default), in-band FEC negotiated (`useinbandfec=1`), no
    /// DTX. Speech comes out as SILK/CELT hybrid or CELT frames, not narrowband SILK.
    pub fn webrtc_client() -> Self {
        Self {
            application: Application::Voip,
            sample_rate: SampleRate::Hz48000,
            bitrate: 32_000,
            complexity: 9,
            inband_fec: true,
            dtx: false,
            expected_loss_pct: 0,
            max_bandwidth: Bandwidth::Fullband,
            cbr: false,
        }
    }

    /// What a mobile app's libopus sends: 48 kHz, application VoIP, 24 kbit/s VBR, complexity 5
    /// (WebRTC's mobile default), FEC on with the few percent of loss radio links report.
    pub fn mobile_client() -> Self {
        Self {
            bitrate: 24_000,
            complexity: 5,
            expected_loss_pct: 3,
            ..Self::webrtc_client()
        }
    }
}

/// An Opus call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpusError {
    /// libopus reported an error.
    #[error("libopus {call}: {message}")]
    Library {
        /// The libopus function.
        call: &'static str,
        /// libopus' description.
        message: String,
    },
    /// A rate libopus does not take.
    #[error("{hz} Hz is not an Opus sample rate (8, 12, 16, 24 or 48 kHz)")]
    UnsupportedRate {
        /// The rate asked for.
        hz: u32,
    },
    /// A PCM frame that is not 2.5, 5, 10, 20, 40 or 60 ms long.
    #[error("{samples} samples is not an Opus frame at {hz} Hz")]
    FrameSize {
        /// Samples given.
        samples: usize,
        /// At this rate.
        hz: u32,
    },
    /// The payload is not a valid Opus packet.
    #[error("invalid Opus packet: {0}")]
    InvalidPacket(&'static str),
    /// A setting out of range.
    #[error("{setting} {value} is out of range")]
    Setting {
        /// Which.
        setting: &'static str,
        /// The value.
        value: i64,
    },
}

/// Mono Opus encoder, application VoIP.
pub struct OpusEncoder {
    inner: backend::Encoder,
    rate: SampleRate,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder with every setting of `config` applied.
    pub fn new(config: &EncoderConfig) -> Result<Self, OpusError> {
        if config.complexity > 10 {
            return Err(OpusError::Setting {
                setting: "complexity",
                value: config.complexity.into(),
            });
        }
        if !(6000..=510_000).contains(&config.bitrate) {
            return Err(OpusError::Setting {
                setting: "bitrate",
                value: config.bitrate.into(),
            });
        }
        let mut inner = backend::Encoder::new(config.sample_rate, config.application)?;
        inner.set_bitrate(config.bitrate)?;
        inner.set_complexity(config.complexity)?;
        inner.set_inband_fec(config.inband_fec)?;
        inner.set_dtx(config.dtx)?;
        inner.set_expected_loss(config.expected_loss_pct.min(100))?;
        inner.set_max_bandwidth(config.max_bandwidth)?;
        inner.set_vbr(!config.cbr)?;
        Ok(Self {
            inner,
            rate: config.sample_rate,
        })
    }

    /// Encodes one frame (2.5 to 60 ms of `pcm` at the configured rate) into `out`; returns the
    /// bytes written. With DTX on, a length of 2 or less means "silence: do not transmit".
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        let hz = self.rate.hz() as usize;
        // 2.5 ms granules, up to 60 ms.
        let granule = hz / 400;
        if pcm.is_empty()
            || !pcm.len().is_multiple_of(granule)
            || !matches!(pcm.len() / granule, 1 | 2 | 4 | 8 | 16 | 24)
        {
            return Err(OpusError::FrameSize {
                samples: pcm.len(),
                hz: self.rate.hz(),
            });
        }
        self.inner.encode(pcm, out)
    }

    /// Tells the encoder how much loss the receiver sees (0..=100 %).
    pub fn set_expected_loss(&mut self, pct: u8) -> Result<(), OpusError> {
        self.inner.set_expected_loss(pct.min(100))
    }

    /// Changes the target bitrate.
    pub fn set_bitrate(&mut self, bps: i32) -> Result<(), OpusError> {
        if !(6000..=510_000).contains(&bps) {
            return Err(OpusError::Setting {
                setting: "bitrate",
                value: bps.into(),
            });
        }
        self.inner.set_bitrate(bps)
    }

    /// Forgets all history (a new stream), keeping the settings.
    pub fn reset(&mut self) -> Result<(), OpusError> {
        self.inner.reset()
    }
}

/// Mono Opus decoder.
pub struct OpusDecoder {
    inner: backend::Decoder,
    rate: SampleRate,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl OpusDecoder {
    /// A decoder producing mono PCM at `rate`.
    pub fn new(rate: SampleRate) -> Result<Self, OpusError> {
        Ok(Self {
            inner: backend::Decoder::new(rate)?,
            rate,
        })
    }

    /// Decodes one packet into `out`; returns samples written. A payload that is not Opus is an
    /// error, never a panic.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, OpusError> {
        if payload.is_empty() {
            return Err(OpusError::InvalidPacket("empty payload"));
        }
        let samples = packet_samples(payload, self.rate)?;
        if samples > out.len() {
            return Err(OpusError::FrameSize {
                samples,
                hz: self.rate.hz(),
            });
        }
        self.inner.decode(payload, &mut out[..samples], false)
    }

    /// Recovers the frame lost just before `next_payload` from the in-band FEC it carries;
    /// `out.len()` is the lost frame's length (a multiple of 2.5 ms). Without FEC in the packet,
    /// libopus conceals instead.
    pub fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, OpusError> {
        if next_payload.is_empty() {
            return Err(OpusError::InvalidPacket("empty payload"));
        }
        self.check_granules(out.len())?;
        self.inner.decode(next_payload, out, true)
    }

    /// Packet loss concealment for a missing frame of `out.len()` samples (a multiple of 2.5 ms).
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, OpusError> {
        self.check_granules(out.len())?;
        self.inner.decode(&[], out, false)
    }

    /// Forgets all history (a new stream).
    pub fn reset(&mut self) -> Result<(), OpusError> {
        self.inner.reset()
    }

    fn check_granules(&self, samples: usize) -> Result<(), OpusError> {
        let granule = self.rate.hz() as usize / 400;
        if samples == 0 || !samples.is_multiple_of(granule) || samples > granule * 48 {
            return Err(OpusError::FrameSize {
                samples,
                hz: self.rate.hz(),
            });
        }
        Ok(())
    }
}
