//! The speech the loadgen plays, encoded once before the run.
//!
//! Every call sends the same frames, so the loadgen encodes the sample once into 20 ms payloads
//! (PCMU, PCMA and Opus at a 48 kHz RTP clock with in-band FEC) and the pacer only copies bytes.
//! A call longer than the sample loops it; frame `i` of every stream is `frames[i % len]`.

use std::path::Path;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusEncoder};
use serde::{Deserialize, Serialize};

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES_8K: usize = 160;
/// Frame duration.
pub const PTIME_MS: u64 = 20;
/// RTP payload type the loadgen uses for Opus (dynamic).
pub const OPUS_PT: u8 = 96;
/// RTP payload type for telephone-event at 8000 Hz.
pub const TELEPHONE_EVENT_8K_PT: u8 = 101;
/// RTP payload type for telephone-event at 48000 Hz.
pub const TELEPHONE_EVENT_48K_PT: u8 = 102;

/// The audio codecs a loadgen stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaCodec {
    /// G.711 mu-law, PT 0.
    Pcmu,
    /// G.711 A-law, PT 8.
    Pcma,
    /// Opus, 48 kHz RTP clock.
    Opus,
}

impl MediaCodec {
    /// The G.711 codec of a law.
    pub fn g711(law: Law) -> Self {
        match law {
            Law::Ulaw => Self::Pcmu,
            Law::Alaw => Self::Pcma,
        }
    }

    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::Opus => 48_000,
        }
    }

    /// RTP timestamp increment per 20 ms frame.
    pub fn timestamp_step(self) -> u32 {
        self.clock_rate() / 50
    }

    /// The static payload type, or the loadgen's dynamic one for Opus.
    pub fn default_payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::Opus => OPUS_PT,
        }
    }

    /// SDP encoding name.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
        }
    }

    /// The G.711 law, when this is G.711.
    pub fn law(self) -> Option<Law> {
        match self {
            Self::Pcmu => Some(Law::Ulaw),
            Self::Pcma => Some(Law::Alaw),
            Self::Opus => None,
        }
    }
}

/// Why the speech sample could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The WAV file could not be read.
    #[error("reading {path}: {source}")]
    Wav {
        /// The file.
        path: String,
        /// What hound said.
        source: hound::Error,
    },
    /// The WAV file is not 8 kHz mono 16-bit PCM.
    #[error("{path} is {rate} Hz, {channels} channels, {bits} bits: need 8000 Hz mono 16-bit")]
    Format {
        /// The file.
        path: String,
        /// Its sample rate.
        rate: u32,
        /// Its channel count.
        channels: u16,
        /// Its bits per sample.
        bits: u16,
    },
    /// Less than one frame of audio.
    #[error("the sample holds {samples} samples: need at least one 20 ms frame")]
    TooShort {
        /// Samples found.
        samples: usize,
    },
    /// The Opus encoder failed.
    #[error("opus encoder: {0}")]
    Opus(String),
}

/// The speech sample and its pre-encoded 20 ms payloads.
#[derive(Debug)]
pub struct EncodedMedia {
    reference: Vec<i16>,
    pcmu: Vec<Vec<u8>>,
    pcma: Vec<Vec<u8>>,
    opus: Vec<Vec<u8>>,
}

impl EncodedMedia {
    /// Reads an 8 kHz mono 16-bit WAV file and encodes it.
    pub fn from_wav(path: &Path) -> Result<Self, MediaError> {
        let name = path.display().to_string();
        let reader = hound::WavReader::open(path).map_err(|source| MediaError::Wav {
            path: name.clone(),
            source,
        })?;
        let spec = reader.spec();
        if spec.sample_rate != 8000
            || spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
        {
            return Err(MediaError::Format {
                path: name,
                rate: spec.sample_rate,
                channels: spec.channels,
                bits: spec.bits_per_sample,
            });
        }
        let pcm = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| MediaError::Wav { path: name, source })?;
        Self::from_pcm(pcm)
    }

    /// Encodes 8 kHz mono PCM; a trailing partial frame is dropped.
    pub fn from_pcm(mut pcm: Vec<i16>) -> Result<Self, MediaError> {
        let frames = pcm.len() / FRAME_SAMPLES_8K;
        if frames == 0 {
            return Err(MediaError::TooShort { samples: pcm.len() });
        }
        pcm.truncate(frames * FRAME_SAMPLES_8K);
        let g711 = |law: Law| {
            pcm.chunks_exact(FRAME_SAMPLES_8K)
                .map(|frame| {
                    let mut out = vec![0u8; FRAME_SAMPLES_8K];
                    law.encode(frame, &mut out);
                    out
                })
                .collect::<Vec<_>>()
        };
        let pcmu = g711(Law::Ulaw);
        let pcma = g711(Law::Alaw);
        // Expected loss above zero makes libopus actually put LBRR (FEC) data in the packets.
        let config = EncoderConfig {
            inband_fec: true,
            expected_loss_pct: 10,
            ..EncoderConfig::default()
        };
        let mut encoder = OpusEncoder::new(&config).map_err(|e| MediaError::Opus(e.to_string()))?;
        let mut buf = [0u8; 1500];
        let opus = pcm
            .chunks_exact(FRAME_SAMPLES_8K)
            .map(|frame| {
                let n = encoder
                    .encode(frame, &mut buf)
                    .map_err(|e| MediaError::Opus(e.to_string()))?;
                Ok(buf[..n].to_vec())
            })
            .collect::<Result<Vec<_>, MediaError>>()?;
        Ok(Self {
            reference: pcm,
            pcmu,
            pcma,
            opus,
        })
    }

    /// A speech-like test signal of `seconds` (voiced harmonics under a syllable envelope, with
    /// pauses), for tests and for machines without the sample. Not periodic over a frame, so
    /// alignment by correlation finds one answer.
    pub fn synthetic(seconds: u32) -> Result<Self, MediaError> {
        Self::from_pcm(synthetic_speech(seconds as usize * 8000))
    }

    /// Frames in the sample.
    pub fn frames(&self) -> usize {
        self.reference.len() / FRAME_SAMPLES_8K
    }

    /// The payload of frame `index` (looping) for `codec`.
    pub fn payload(&self, codec: MediaCodec, index: u64) -> &[u8] {
        let i = (index % self.frames() as u64) as usize;
        match codec {
            MediaCodec::Pcmu => &self.pcmu[i],
            MediaCodec::Pcma => &self.pcma[i],
            MediaCodec::Opus => &self.opus[i],
        }
    }

    /// The reference PCM of frames `0..frames` (looping), 8 kHz.
    pub fn reference(&self, frames: usize) -> Vec<i16> {
        self.reference
            .iter()
            .copied()
            .cycle()
            .take(frames * FRAME_SAMPLES_8K)
            .collect()
    }
}

/// Deterministic speech-like PCM at 8 kHz.
pub fn synthetic_speech(samples: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(samples);
    let mut phase = 0.0f64;
    for n in 0..samples {
        let t = n as f64 / 8000.0;
        // Pitch glides between 100 and 220 Hz; syllables of uneven length; a pause every ~1.3 s.
        let f0 = 160.0 + 60.0 * (t * 1.7).sin() + 20.0 * (t * 5.3).sin();
        phase += 2.0 * std::f64::consts::PI * f0 / 8000.0;
        let voiced: f64 = (1..=12).map(|h| (phase * h as f64).sin() / h as f64).sum();
        let syllable = ((t * 4.1).sin() * (t * 2.9 + 0.5).sin()).abs();
        let pause = if (t * 0.77).fract() > 0.85 { 0.0 } else { 1.0 };
        out.push((voiced * syllable * pause * 6000.0) as i16);
    }
    out
}
