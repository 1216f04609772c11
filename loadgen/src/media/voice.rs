//! A voice: speech as the loadgen's references need it (8 kHz for the G.711 leg and the P.862
//! narrowband reference, 16 kHz for the P.862.2 wideband reference, 48 kHz for the clients'
//! encoders), read from a WAV file or synthesised.

use std::path::Path;

use bridgepool_codecs::resample::resample_all;

use super::{FRAME_SAMPLES_8K, MediaError};

/// Samples per 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES_48K: usize = 960;

/// One voice at the three rates, cut to whole 20 ms frames.
#[derive(Clone, Debug)]
pub struct VoicePcm {
    /// The file stem (`en_male_48k`) or `synthetic`.
    pub name: String,
    /// 8 kHz.
    pub pcm_8k: Vec<i16>,
    /// 16 kHz.
    pub pcm_16k: Vec<i16>,
    /// 48 kHz (empty for an 8 kHz source: only the legacy narrowband client uses those).
    pub pcm_48k: Vec<i16>,
}

impl VoicePcm {
    /// Reads a mono 16-bit WAV at 8 kHz or 48 kHz.
    pub fn from_wav(path: &Path) -> Result<Self, MediaError> {
        let name = path.display().to_string();
        let reader = hound::WavReader::open(path).map_err(|source| MediaError::Wav {
            path: name.clone(),
            source,
        })?;
        let spec = reader.spec();
        if !matches!(spec.sample_rate, 8000 | 48_000)
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
            .map_err(|source| MediaError::Wav {
                path: name.clone(),
                source,
            })?;
        let stem = path
            .file_stem()
            .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
        Self::from_pcm(stem, pcm, spec.sample_rate)
    }

    /// A voice from PCM at 8 or 48 kHz; a trailing partial frame is dropped.
    pub fn from_pcm(name: String, mut pcm: Vec<i16>, rate: u32) -> Result<Self, MediaError> {
        let frame = rate as usize / 50;
        let frames = pcm.len() / frame.max(1);
        if frames == 0 || !matches!(rate, 8000 | 48_000) {
            return Err(MediaError::TooShort { samples: pcm.len() });
        }
        pcm.truncate(frames * frame);
        let resample =
            |to: u32| resample_all(&pcm, rate, to).map_err(|e| MediaError::Resample(e.to_string()));
        let (mut pcm_8k, mut pcm_16k, pcm_48k) = if rate == 8000 {
            (pcm.clone(), resample(16_000)?, Vec::new())
        } else {
            (resample(8000)?, resample(16_000)?, pcm)
        };
        pcm_8k.resize(frames * FRAME_SAMPLES_8K, 0);
        pcm_16k.resize(frames * 2 * FRAME_SAMPLES_8K, 0);
        Ok(Self {
            name,
            pcm_8k,
            pcm_16k,
            pcm_48k,
        })
    }

    /// The built-in speech-like signal of `seconds` at 48 kHz.
    pub fn synthetic(seconds: u32) -> Result<Self, MediaError> {
        let pcm = synthetic_speech_at(48_000, seconds as usize * 48_000);
        Self::from_pcm("synthetic".into(), pcm, 48_000)
    }

    /// Whole 20 ms frames.
    pub fn frames(&self) -> usize {
        self.pcm_8k.len() / FRAME_SAMPLES_8K
    }
}

/// Deterministic speech-like PCM at `rate` (voiced harmonics up to 3.4 kHz under a syllable
/// envelope, with pauses). Not periodic over a frame, so alignment by correlation finds one
/// answer.
pub fn synthetic_speech_at(rate: u32, samples: usize) -> Vec<i16> {
    let rate = f64::from(rate.max(1));
    let mut out = Vec::with_capacity(samples);
    let mut phase = 0.0f64;
    for n in 0..samples {
        let t = n as f64 / rate;
        // Pitch glides between 100 and 220 Hz; syllables of uneven length; a pause every ~1.3 s.
        let f0 = 160.0 + 60.0 * (t * 1.7).sin() + 20.0 * (t * 5.3).sin();
        phase += 2.0 * std::f64::consts::PI * f0 / rate;
        let voiced: f64 = (1..=12).map(|h| (phase * h as f64).sin() / h as f64).sum();
        let syllable = ((t * 4.1).sin() * (t * 2.9 + 0.5).sin()).abs();
        let pause = if (t * 0.77).fract() > 0.85 { 0.0 } else { 1.0 };
        out.push((voiced * syllable * pause * 6000.0) as i16);
    }
    out
}
