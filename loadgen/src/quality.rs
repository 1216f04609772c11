//! Audio quality of sampled calls: the received stream decoded (Opus at 8 kHz with
//! [`OpusDecoder`], G.711 with `Law::decode`) and compared with the speech that was sent, by
//! correlation after alignment ([`bridgepool_codecs::quality`]).

use bridgepool_codecs::opus::{OpusDecoder, SampleRate};
use bridgepool_codecs::quality;
use serde::{Deserialize, Serialize};

use crate::media::{EncodedMedia, FRAME_SAMPLES_8K, MediaCodec};

/// Lost frames concealed in a row at most; longer gaps become silence (a dead stream).
const MAX_CONCEALED_RUN: u64 = 50;

/// The quality of one received stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityResult {
    /// The call.
    pub call_id: String,
    /// `a_to_b` or `b_to_a`.
    pub direction: String,
    /// Codec received.
    pub codec: String,
    /// Frames compared.
    pub frames: u64,
    /// Frames missing in the capture (concealed or silent).
    pub missing_frames: u64,
    /// Frames that did not decode.
    pub decode_errors: u64,
    /// Normalized correlation with the reference after alignment (1.0 is identical).
    pub correlation: f64,
}

/// Decodes `captured` (`(extended sequence number, payload)` in arrival order) to 8 kHz PCM.
/// Gaps are concealed (Opus) or filled with silence (G.711). Returns PCM, missing frames and
/// decode errors.
pub fn decode(codec: MediaCodec, captured: &[(u64, Vec<u8>)]) -> (Vec<i16>, u64, u64) {
    let mut frames: Vec<&(u64, Vec<u8>)> = captured.iter().collect();
    frames.sort_by_key(|(seq, _)| *seq);
    frames.dedup_by_key(|(seq, _)| *seq);
    let mut pcm = Vec::with_capacity(frames.len() * FRAME_SAMPLES_8K);
    let (mut missing, mut errors) = (0u64, 0u64);
    let mut frame = [0i16; 960];
    let mut opus = match codec {
        MediaCodec::Opus => OpusDecoder::new(SampleRate::Hz8000).ok(),
        _ => None,
    };
    let mut next_seq = frames.first().map_or(0, |(s, _)| *s);
    for (seq, payload) in frames {
        let gap = seq - next_seq;
        missing += gap;
        for _ in 0..gap {
            let out = &mut frame[..FRAME_SAMPLES_8K];
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
                    pcm.extend_from_slice(&[0; FRAME_SAMPLES_8K]);
                }
            },
            (None, None) => errors += 1,
        }
    }
    (pcm, missing, errors)
}

/// Compares a received stream with the reference speech of the `frames_sent` frames its input
/// stream sent.
pub fn assess(
    media: &EncodedMedia,
    call_id: &str,
    direction: &str,
    codec: MediaCodec,
    captured: &[(u64, Vec<u8>)],
    frames_sent: u64,
) -> QualityResult {
    let (pcm, missing_frames, decode_errors) = decode(codec, captured);
    let frames = (pcm.len() / FRAME_SAMPLES_8K) as u64;
    // The reference is what was sent, not what came back: a transcoder that keeps its G.711
    // stream continuous sends filler after the input stops, and that filler must not be compared
    // with speech the input never sent. One frame of slack on each side: the transcoder may shift
    // the audio by up to a frame.
    let reference = media.reference(frames.min(frames_sent) as usize + 2);
    let correlation = if pcm.is_empty() {
        0.0
    } else {
        quality::align_and_compare(&reference, &pcm, 8000).correlation
    };
    QualityResult {
        call_id: call_id.to_owned(),
        direction: direction.to_owned(),
        codec: codec.sdp_name().to_owned(),
        frames,
        missing_frames,
        decode_errors,
        correlation,
    }
}
