//! Audio quality of sampled calls: the received stream decoded as its receiver would (G.711 with
//! `Law::decode`; Opus with a 48 kHz [`OpusDecoder`], as a WebRTC or mobile client decodes, then
//! converted to 8 and 16 kHz), aligned with the speech that was sent, and scored two ways:
//! normalized correlation ([`bridgepool_codecs::quality`], a shape measure) and PESQ
//! ([`crate::pesq_score`]: P.862.1 MOS-LQO narrowband for both directions, P.862.2 wideband for
//! the Opus output).
//!
//! The run keeps the captured payloads of sampled calls as [`QualityJob`]s and scores them all
//! after the load in parallel ([`score_all`], rayon): PESQ costs tens of milliseconds per second
//! of speech and must not steal the pacer's core during the run.

use bridgepool_codecs::opus::{OpusDecoder, SampleRate};
use bridgepool_codecs::quality;
use bridgepool_codecs::resample::resample_all;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::media::client::ClientProfile;
use crate::media::{EncodedMedia, FRAME_SAMPLES_8K, MediaCodec};
use crate::pesq_score;

/// Lost frames concealed in a row at most; longer gaps become silence (a dead stream).
const MAX_CONCEALED_RUN: u64 = 50;
/// Samples per 20 ms frame at 48 kHz.
const FRAME_SAMPLES_48K: usize = 960;

/// The quality of one received stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityResult {
    /// The call.
    pub call_id: String,
    /// `a_to_b` or `b_to_a`.
    pub direction: String,
    /// Codec received.
    pub codec: String,
    /// The voice sent (the reference).
    #[serde(default)]
    pub voice: String,
    /// The Opus client of the call (`webrtc`, `mobile`, `nb-legacy`).
    #[serde(default)]
    pub client: String,
    /// The ramp step whose new calls this one was sampled from (ramp mode only).
    #[serde(default)]
    pub step: Option<u64>,
    /// Frames compared.
    pub frames: u64,
    /// Frames missing in the capture (concealed or silent).
    pub missing_frames: u64,
    /// Frames that did not decode.
    pub decode_errors: u64,
    /// Normalized correlation with the reference after alignment (1.0 is identical).
    pub correlation: f64,
    /// P.862 raw score.
    #[serde(default)]
    pub pesq_raw: Option<f64>,
    /// P.862.1 MOS-LQO, narrowband.
    #[serde(default)]
    pub pesq_nb: Option<f64>,
    /// P.862.2 MOS-LQO, wideband (Opus output only).
    #[serde(default)]
    pub pesq_wb: Option<f64>,
    /// Why PESQ could not score the stream (too short, no speech found).
    #[serde(default)]
    pub pesq_error: Option<String>,
}

/// A sampled stream kept for scoring after the run.
#[derive(Clone, Debug)]
pub struct QualityJob {
    /// The call.
    pub call_id: String,
    /// `a_to_b` or `b_to_a`.
    pub direction: &'static str,
    /// Codec received.
    pub codec: MediaCodec,
    /// `(extended sequence number, payload)` in arrival order.
    pub captured: Vec<(u64, Vec<u8>)>,
    /// Frames the input stream sent.
    pub frames_sent: u64,
    /// The voice the input played.
    pub voice: usize,
    /// The Opus client of the call.
    pub client: ClientProfile,
    /// The ramp step it was sampled in.
    pub step: Option<u64>,
}

/// A received stream decoded.
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// 8 kHz PCM.
    pub pcm_8k: Vec<i16>,
    /// 16 kHz PCM (Opus only: G.711 carries nothing above 4 kHz).
    pub pcm_16k: Option<Vec<i16>>,
    /// Frames missing in the capture.
    pub missing: u64,
    /// Frames that did not decode.
    pub errors: u64,
}

/// Decodes `captured` (`(extended sequence number, payload)` in arrival order) to 8 kHz PCM.
/// Gaps are concealed (Opus) or filled with silence (G.711). Returns PCM, missing frames and
/// decode errors.
pub fn decode(codec: MediaCodec, captured: &[(u64, Vec<u8>)]) -> (Vec<i16>, u64, u64) {
    let d = decode_received(codec, captured);
    (d.pcm_8k, d.missing, d.errors)
}

/// Decodes `captured` as a receiver does: G.711 at 8 kHz; Opus with a 48 kHz decoder (concealing
/// gaps), then converted to 8 and 16 kHz.
pub fn decode_received(codec: MediaCodec, captured: &[(u64, Vec<u8>)]) -> Decoded {
    let mut frames: Vec<&(u64, Vec<u8>)> = captured.iter().collect();
    frames.sort_by_key(|(seq, _)| *seq);
    frames.dedup_by_key(|(seq, _)| *seq);
    let frame_len = match codec {
        MediaCodec::Opus => FRAME_SAMPLES_48K,
        _ => FRAME_SAMPLES_8K,
    };
    let mut pcm = Vec::with_capacity(frames.len() * frame_len);
    let (mut missing, mut errors) = (0u64, 0u64);
    // Room for a 120 ms Opus packet at 48 kHz.
    let mut frame = vec![0i16; 6 * FRAME_SAMPLES_48K];
    let mut opus = match codec {
        MediaCodec::Opus => OpusDecoder::new(SampleRate::Hz48000).ok(),
        _ => None,
    };
    let mut next_seq = frames.first().map_or(0, |(s, _)| *s);
    for (seq, payload) in frames {
        let gap = seq - next_seq;
        missing += gap;
        for _ in 0..gap {
            let out = &mut frame[..frame_len];
            out.fill(0);
            if gap <= MAX_CONCEALED_RUN
                && let Some(decoder) = opus.as_mut()
            {
                let _ = decoder.conceal(out);
            }
            pcm.extend_from_slice(out);
        }
        next_seq = seq + 1;
        match (codec.law(), opus.as_mut()) {
            (Some(law), _) => {
                let start = pcm.len();
                pcm.resize(start + payload.len(), 0);
                law.decode(payload, &mut pcm[start..]);
            }
            (None, Some(decoder)) => match decoder.decode(payload, &mut frame) {
                Ok(n) => pcm.extend_from_slice(&frame[..n]),
                Err(_) => {
                    errors += 1;
                    pcm.extend(std::iter::repeat_n(0, frame_len));
                }
            },
            (None, None) => errors += 1,
        }
    }
    if codec != MediaCodec::Opus {
        return Decoded {
            pcm_8k: pcm,
            pcm_16k: None,
            missing,
            errors,
        };
    }
    // Both conversions keep the length ratio exactly and remove the resampler's delay.
    let pcm_8k = resample_all(&pcm, 48_000, 8000).unwrap_or_default();
    let pcm_16k = resample_all(&pcm, 48_000, 16_000).ok();
    Decoded {
        pcm_8k,
        pcm_16k,
        missing,
        errors,
    }
}

/// Compares a received stream with voice 0's speech of the `frames_sent` frames its input stream
/// sent (correlation and PESQ).
pub fn assess(
    media: &EncodedMedia,
    call_id: &str,
    direction: &str,
    codec: MediaCodec,
    captured: &[(u64, Vec<u8>)],
    frames_sent: u64,
) -> QualityResult {
    let job = QualityJob {
        call_id: call_id.to_owned(),
        direction: if direction == "a_to_b" {
            "a_to_b"
        } else {
            "b_to_a"
        },
        codec,
        captured: captured.to_vec(),
        frames_sent,
        voice: 0,
        client: media.first_track().client,
        step: None,
    };
    assess_job(media, &job)
}

/// Scores every job in parallel (rayon), in the jobs' order.
/// With `dump` set, each stream's aligned audio is also written there as WAV.
pub fn score_all(
    media: &EncodedMedia,
    jobs: &[QualityJob],
    dump: Option<&std::path::Path>,
) -> Vec<QualityResult> {
    jobs.par_iter()
        .map(|j| assess_scored(media, j, dump))
        .collect()
}

/// Scores one sampled stream.
pub fn assess_job(media: &EncodedMedia, job: &QualityJob) -> QualityResult {
    assess_scored(media, job, None)
}

fn assess_scored(
    media: &EncodedMedia,
    job: &QualityJob,
    dump: Option<&std::path::Path>,
) -> QualityResult {
    let decoded = decode_received(job.codec, &job.captured);
    let frames = (decoded.pcm_8k.len() / FRAME_SAMPLES_8K) as u64;
    // The reference is what was sent, not what came back: a transcoder that keeps its G.711
    // stream continuous sends filler after the input stops, and that filler must not be compared
    // with speech the input never sent. One frame of slack on each side: the transcoder may shift
    // the audio by up to a frame.
    let compared = frames.min(job.frames_sent) as usize;
    let reference = media.reference_8k(job.voice, compared + 2);
    let mut result = QualityResult {
        call_id: job.call_id.clone(),
        direction: job.direction.to_owned(),
        codec: job.codec.sdp_name().to_owned(),
        voice: media
            .voice_names()
            .get(job.voice)
            .cloned()
            .unwrap_or_default(),
        client: job.client.name().to_owned(),
        step: job.step,
        frames,
        missing_frames: decoded.missing,
        decode_errors: decoded.errors,
        ..QualityResult::default()
    };
    if decoded.pcm_8k.is_empty() || reference.is_empty() {
        result.pesq_error = Some("nothing received".into());
        return result;
    }
    let similarity = quality::align_and_compare(&reference, &decoded.pcm_8k, 8000);
    result.correlation = similarity.correlation;
    // PESQ over one pass of the voice at most (P.862 is meant for 8 to 20 s samples).
    let span = compared.min(media.voice_frames(job.voice));
    let ref_8k = media.reference_8k(job.voice, span);
    let deg_8k = pesq_score::aligned(&decoded.pcm_8k, similarity.lag, ref_8k.len());
    if let Some(dir) = dump {
        let stem = dir.join(format!("{}-{}", job.call_id, job.direction));
        for (suffix, pcm) in [("ref", &ref_8k), ("deg", &deg_8k)] {
            let path = stem.with_file_name(format!(
                "{}-{suffix}.wav",
                stem.file_name().unwrap_or_default().to_string_lossy()
            ));
            if let Err(e) = write_wav_8k(&path, pcm) {
                tracing::warn!(path = %path.display(), error = %e, "audio dump failed");
            }
        }
    }
    let wide = decoded.pcm_16k.as_ref().map(|pcm_16k| {
        let r = media.reference_16k(job.voice, span);
        let d = pesq_score::aligned(pcm_16k, similarity.lag * 2, r.len());
        (r, d)
    });
    match pesq_score::score(
        &ref_8k,
        &deg_8k,
        wide.as_ref().map(|(r, d)| (r.as_slice(), d.as_slice())),
    ) {
        Ok(s) => {
            result.pesq_raw = Some(s.raw);
            result.pesq_nb = Some(s.nb);
            result.pesq_wb = s.wb;
        }
        Err(e) => result.pesq_error = Some(e),
    }
    result
}

/// PESQ of the sampled streams of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PesqSummary {
    /// Streams sampled.
    pub streams: u64,
    /// Streams PESQ could not score.
    pub unscored: u64,
    /// Mean P.862.1 MOS-LQO NB.
    pub nb_mean: Option<f64>,
    /// Lowest P.862.1 MOS-LQO NB.
    pub nb_min: Option<f64>,
    /// Mean P.862.2 MOS-LQO WB.
    pub wb_mean: Option<f64>,
}

impl PesqSummary {
    /// Summarizes the results of `direction` (all when `step` is `None`, else that step's).
    pub fn of<'a>(results: impl IntoIterator<Item = &'a QualityResult>, direction: &str) -> Self {
        let mut s = Self::default();
        let (mut nb, mut wb) = (Vec::new(), Vec::new());
        for q in results.into_iter().filter(|q| q.direction == direction) {
            s.streams += 1;
            match q.pesq_nb {
                Some(v) => nb.push(v),
                None => s.unscored += 1,
            }
            wb.extend(q.pesq_wb);
        }
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        s.nb_mean = mean(&nb);
        s.nb_min = nb.iter().copied().reduce(f64::min);
        s.wb_mean = mean(&wb);
        s
    }

    /// Whether the direction meets `floor` (MOS-LQO NB): every sampled stream scored and none
    /// below it. Nothing sampled meets any floor.
    pub fn meets(&self, floor: f64) -> bool {
        self.streams == 0 || (self.unscored == 0 && self.nb_min.is_some_and(|m| m >= floor))
    }
}

/// Writes 8 kHz mono 16-bit PCM as a WAV file (creating its folder).
fn write_wav_8k(path: &std::path::Path, pcm: &[i16]) -> Result<(), hound::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &s in pcm {
        writer.write_sample(s)?;
    }
    writer.finalize()
}
