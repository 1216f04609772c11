//! The speech the loadgen plays, encoded once before the run.
//!
//! The load looks like real clients (issue 10): the G.711 leg is what a PSTN gateway sends
//! (continuous 20 ms PCMU/PCMA of 8 kHz speech); the Opus leg is what browsers and mobile apps
//! send (48 kHz fullband speech through libopus at their settings, [`client::ClientProfile`]), in
//! a stated [`client::ClientMix`]. Several voices are rotated over calls. Each voice is encoded
//! once per codec and client before the run, so the pacer only copies bytes and the loadgen's own
//! CPU stays small. A call longer than its voice loops it; frame `i` of a stream is
//! `frames[i % len]`.

pub mod client;
pub mod voice;

use std::path::{Path, PathBuf};

use bridgepool_codecs::g711::Law;
use serde::{Deserialize, Serialize};

use client::{ClientMix, ClientProfile, OpusTrack};
use voice::VoicePcm;

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
    /// The WAV file is not 8 or 48 kHz mono 16-bit PCM.
    #[error(
        "{path} is {rate} Hz, {channels} channels, {bits} bits: need 8000 or 48000 Hz mono 16-bit"
    )]
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
    /// Resampling a voice failed.
    #[error("resampling: {0}")]
    Resample(String),
    /// No voice to play.
    #[error("no voice given")]
    NoVoice,
    /// The legacy narrowband load takes one 8 kHz voice; a 48 kHz file was given.
    #[error("the legacy narrowband load plays 8 kHz speech: {0} is not")]
    NotNarrowband(String),
}

/// What a stream of a call plays: which voice, and for Opus which client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Track {
    /// Index into the voices.
    pub voice: usize,
    /// The client sending the Opus leg (ignored for G.711).
    pub client: ClientProfile,
}

/// One voice and its pre-encoded 20 ms payloads.
#[derive(Debug)]
struct Voice {
    pcm: VoicePcm,
    pcmu: Vec<Vec<u8>>,
    pcma: Vec<Vec<u8>>,
    opus: Vec<OpusTrack>,
}

/// The voices and their pre-encoded payloads, and which call plays what.
#[derive(Debug)]
pub struct EncodedMedia {
    voices: Vec<Voice>,
    mix: ClientMix,
    legacy: bool,
}

impl EncodedMedia {
    /// Client-like load (issue 10): each voice (8 or 48 kHz mono WAV; 48 kHz is what clients
    /// capture) encoded as G.711 and by both clients of `mix`.
    pub fn client_load(paths: &[PathBuf], mix: ClientMix) -> Result<Self, MediaError> {
        let voices = paths
            .iter()
            .map(|p| VoicePcm::from_wav(p))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_voices(voices, mix)
    }

    /// Client-like load of voices already read.
    pub fn from_voices(voices: Vec<VoicePcm>, mix: ClientMix) -> Result<Self, MediaError> {
        if voices.is_empty() {
            return Err(MediaError::NoVoice);
        }
        let voices = voices
            .into_iter()
            .map(|pcm| {
                // A voice read at 8 kHz has no fullband to give: clients encode it upsampled.
                let pcm_48k = if pcm.pcm_48k.is_empty() {
                    bridgepool_codecs::resample::resample_all(&pcm.pcm_8k, 8000, 48_000)
                        .map_err(|e| MediaError::Resample(e.to_string()))?
                } else {
                    pcm.pcm_48k.clone()
                };
                let opus = [ClientProfile::Webrtc, ClientProfile::Mobile]
                    .into_iter()
                    .map(|c| OpusTrack::encode(c, mix.dtx, mix.expected_loss_pct, &pcm_48k))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Voice::new(pcm, opus))
            })
            .collect::<Result<Vec<_>, MediaError>>()?;
        Ok(Self {
            voices,
            mix,
            legacy: false,
        })
    }

    /// The load before issue 10, for comparisons: one 8 kHz voice, the Opus leg SILK narrowband
    /// encoded from it ([`ClientProfile::Narrowband`]).
    pub fn legacy(path: &Path) -> Result<Self, MediaError> {
        let pcm = VoicePcm::from_wav(path)?;
        if !pcm.pcm_48k.is_empty() {
            return Err(MediaError::NotNarrowband(path.display().to_string()));
        }
        Self::legacy_from_pcm(pcm)
    }

    /// The legacy load of an 8 kHz voice already read.
    pub fn legacy_from_pcm(pcm: VoicePcm) -> Result<Self, MediaError> {
        let opus = OpusTrack::encode(ClientProfile::Narrowband, false, None, &pcm.pcm_8k)?;
        Ok(Self {
            voices: vec![Voice::new(pcm, vec![opus])],
            mix: ClientMix::default(),
            legacy: true,
        })
    }

    /// Client-like load of one synthetic speech-like voice of `seconds`, for tests and machines
    /// without the samples.
    pub fn synthetic(seconds: u32) -> Result<Self, MediaError> {
        Self::from_voices(vec![VoicePcm::synthetic(seconds)?], ClientMix::default())
    }

    /// One line saying what the load is.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.voices.iter().map(|v| v.pcm.name.as_str()).collect();
        if self.legacy {
            return format!(
                "legacy load: G.711 and SILK narrowband Opus (24 kbit/s, FEC) of {}",
                names.join(", ")
            );
        }
        let fec = match self.mix.expected_loss_pct {
            Some(pct) => format!("FEC on for {pct} % expected loss"),
            None => "FEC on".to_owned(),
        };
        format!(
            "client load: G.711 leg 20 ms continuous (gateway); Opus leg {:.0} % WebRTC \
             (48 kHz, 32 kbit/s, c9) / {:.0} % mobile (48 kHz, 24 kbit/s, c5), {fec}, DTX {}; \
             voices rotated per call: {}",
            self.mix.webrtc_share * 100.0,
            (1.0 - self.mix.webrtc_share) * 100.0,
            if self.mix.dtx { "on" } else { "off" },
            names.join(", ")
        )
    }

    /// The voices' names.
    pub fn voice_names(&self) -> Vec<String> {
        self.voices.iter().map(|v| v.pcm.name.clone()).collect()
    }

    /// What call `id` plays: voices rotated (leg B's voice is `id`'s, leg A's the next one), the
    /// Opus client by the mix.
    pub fn tracks_for_call(&self, id: u64) -> (Track, Track) {
        let n = self.voices.len() as u64;
        let client = if self.legacy {
            ClientProfile::Narrowband
        } else {
            self.mix.profile_of(id)
        };
        let b = (id % n) as usize;
        let a = ((id + 1) % n) as usize;
        (Track { voice: a, client }, Track { voice: b, client })
    }

    /// The first track (voice 0, its first client).
    pub fn first_track(&self) -> Track {
        Track {
            voice: 0,
            client: self.voices[0].opus[0].profile,
        }
    }

    /// Frames in voice 0.
    pub fn frames(&self) -> usize {
        self.voices[0].pcm.frames()
    }

    /// Frames in a voice (0 for an unknown one).
    pub fn voice_frames(&self, voice: usize) -> usize {
        self.voices.get(voice).map_or(0, |v| v.pcm.frames())
    }

    /// The payload of frame `index` (looping) of the first track for `codec` (empty when DTX
    /// leaves it out).
    pub fn payload(&self, codec: MediaCodec, index: u64) -> &[u8] {
        self.packet(self.first_track(), codec, index)
            .map_or(&[], |(p, _)| p)
    }

    /// Frame `frame` of `track` for `codec` and the packets transmitted before it (the RTP
    /// sequence offset); `None` when the frame is not transmitted (DTX) or the track is unknown.
    pub fn packet(&self, track: Track, codec: MediaCodec, frame: u64) -> Option<(&[u8], u64)> {
        let voice = self.voices.get(track.voice)?;
        let frames = voice.pcmu.len() as u64;
        let i = (frame % frames.max(1)) as usize;
        match codec {
            MediaCodec::Pcmu => voice.pcmu.get(i).map(|p| (p.as_slice(), frame)),
            MediaCodec::Pcma => voice.pcma.get(i).map(|p| (p.as_slice(), frame)),
            MediaCodec::Opus => voice
                .opus
                .iter()
                .find(|t| t.profile == track.client)
                .or_else(|| voice.opus.first())?
                .packet(frame),
        }
    }

    /// The 8 kHz reference of voice 0's frames `0..frames` (looping).
    pub fn reference(&self, frames: usize) -> Vec<i16> {
        self.reference_8k(0, frames)
    }

    /// The 8 kHz reference of `voice`'s frames `0..frames` (looping; empty for an unknown voice).
    pub fn reference_8k(&self, voice: usize, frames: usize) -> Vec<i16> {
        self.voices.get(voice).map_or_else(Vec::new, |v| {
            looped(&v.pcm.pcm_8k, frames * FRAME_SAMPLES_8K)
        })
    }

    /// The 16 kHz reference of `voice`'s frames `0..frames` (looping).
    pub fn reference_16k(&self, voice: usize, frames: usize) -> Vec<i16> {
        self.voices.get(voice).map_or_else(Vec::new, |v| {
            looped(&v.pcm.pcm_16k, frames * 2 * FRAME_SAMPLES_8K)
        })
    }

    /// Opus frames of one pass of `track` that DTX leaves out.
    pub fn silent_frames(&self, track: Track) -> usize {
        self.voices.get(track.voice).map_or(0, |v| {
            v.opus
                .iter()
                .find(|t| t.profile == track.client)
                .map_or(0, OpusTrack::silent_frames)
        })
    }
}

impl Voice {
    fn new(pcm: VoicePcm, opus: Vec<OpusTrack>) -> Self {
        let g711 = |law: Law| {
            pcm.pcm_8k
                .chunks_exact(FRAME_SAMPLES_8K)
                .map(|frame| {
                    let mut out = vec![0u8; FRAME_SAMPLES_8K];
                    law.encode(frame, &mut out);
                    out
                })
                .collect::<Vec<_>>()
        };
        Self {
            pcmu: g711(Law::Ulaw),
            pcma: g711(Law::Alaw),
            pcm,
            opus,
        }
    }
}

fn looped(pcm: &[i16], samples: usize) -> Vec<i16> {
    if pcm.is_empty() {
        return Vec::new();
    }
    pcm.iter().copied().cycle().take(samples).collect()
}

/// Deterministic speech-like PCM at 8 kHz.
pub fn synthetic_speech(samples: usize) -> Vec<i16> {
    voice::synthetic_speech_at(8000, samples)
}
