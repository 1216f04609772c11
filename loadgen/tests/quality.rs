//! The audio-quality measure of sampled calls.

use bridgepool_loadgen::media::{EncodedMedia, MediaCodec};
use bridgepool_loadgen::quality;

/// PCMU frames of the sample, as a transcoder would send them, with sequence numbers.
fn pcmu_frames(media: &EncodedMedia, count: u64) -> Vec<(u64, Vec<u8>)> {
    (0..count)
        .map(|i| (i, media.payload(MediaCodec::Pcmu, i).to_vec()))
        .collect()
}

#[test]
fn filler_after_the_input_ends_is_not_compared_with_speech() {
    let media = EncodedMedia::synthetic(4).unwrap();
    let sent = 150;
    let mut captured = pcmu_frames(&media, sent);
    // A continuous G.711 stream goes on with silence after its input stopped.
    captured.extend((sent..sent + 20).map(|i| (i, vec![0xFF; 160])));
    let q = quality::assess(&media, "c", "b_to_a", MediaCodec::Pcmu, &captured, sent);
    assert_eq!(q.frames, sent + 20);
    assert!(q.correlation > 0.99, "{q:?}");
}

#[test]
fn damaged_audio_scores_lower() {
    let media = EncodedMedia::synthetic(4).unwrap();
    let sent = 150;
    let clean = pcmu_frames(&media, sent);
    // Every other frame silenced: half the speech gone.
    let damaged: Vec<_> = clean
        .iter()
        .map(|(i, p)| {
            (
                *i,
                if i % 2 == 0 {
                    vec![0xFF; 160]
                } else {
                    p.clone()
                },
            )
        })
        .collect();
    let good = quality::assess(&media, "c", "a_to_b", MediaCodec::Pcmu, &clean, sent);
    let bad = quality::assess(&media, "c", "a_to_b", MediaCodec::Pcmu, &damaged, sent);
    assert!(good.correlation > 0.99, "{good:?}");
    assert!(bad.correlation < 0.9, "{bad:?}");
}
