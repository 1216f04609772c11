//! PESQ on known pairs, through the same path the run scores sampled calls with: identical speech
//! scores near the top of the scale, a G.711 round trip near where G.711 is known to score,
//! speech against silence near the bottom (or a clean error), and an Opus stream decoded as a
//! receiver does is scored narrowband and wideband.

use std::path::PathBuf;

use bridgepool_loadgen::media::client::{ClientMix, ClientProfile};
use bridgepool_loadgen::media::{EncodedMedia, MediaCodec, Track};
use bridgepool_loadgen::pesq_score;
use bridgepool_loadgen::quality::{self, PesqSummary, QualityJob};

fn voice(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/speech")
        .join(name)
}

fn speech_8k() -> Vec<i16> {
    let reader = hound::WavReader::open(voice("speech_8k.wav")).unwrap();
    // Ten seconds: P.862 is meant for 8 to 20 s samples.
    reader
        .into_samples::<i16>()
        .take(80_000)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn identical_speech_scores_near_the_top() {
    let s = speech_8k();
    let (raw, mos) = pesq_score::narrowband(&s, &s).unwrap();
    assert!(raw > 4.4, "raw {raw}");
    assert!(mos > 4.4, "MOS-LQO {mos}");
}

#[test]
fn a_g711_round_trip_scores_as_g711_does() {
    // A voice as the G.711 leg sends it, decoded back.
    let media =
        EncodedMedia::client_load(&[voice("en_male_48k.wav")], ClientMix::default()).unwrap();
    let frames = media.voice_frames(0);
    let reference = media.reference_8k(0, frames);
    for codec in [MediaCodec::Pcmu, MediaCodec::Pcma] {
        let captured: Vec<(u64, Vec<u8>)> = (0..frames as u64)
            .map(|f| {
                (
                    f,
                    media
                        .packet(media.first_track(), codec, f)
                        .unwrap()
                        .0
                        .to_vec(),
                )
            })
            .collect();
        let (back, missing, errors) = quality::decode(codec, &captured);
        assert_eq!((missing, errors), (0, 0));
        let (_, mos) = pesq_score::narrowband(&reference, &back).unwrap();
        assert!((3.9..=4.45).contains(&mos), "{codec:?}: MOS-LQO {mos}");
    }
}

#[test]
fn speech_against_silence_scores_near_the_bottom_or_errs_cleanly() {
    let s = speech_8k();
    let silence = vec![0i16; s.len()];
    match pesq_score::narrowband(&s, &silence) {
        Ok((_, mos)) => assert!(mos < 1.5, "MOS-LQO {mos}"),
        Err(e) => assert!(!e.is_empty()),
    }
    // Too short to score: an error, not a panic.
    assert!(pesq_score::narrowband(&s[..100], &s[..100]).is_err());
}

#[test]
fn a_relayed_client_stream_is_scored_narrowband_and_wideband() {
    let media =
        EncodedMedia::client_load(&[voice("en_female_48k.wav")], ClientMix::default()).unwrap();
    let frames = media.voice_frames(0) as u64;
    for client in [ClientProfile::Webrtc, ClientProfile::Mobile] {
        let track = Track { voice: 0, client };
        // What a relay that does not transcode hands the other side: the client's own packets.
        let captured: Vec<(u64, Vec<u8>)> = (0..frames)
            .filter_map(|f| media.packet(track, MediaCodec::Opus, f))
            .map(|(p, seq)| (seq, p.to_vec()))
            .collect();
        let job = QualityJob {
            call_id: "c".into(),
            direction: "b_to_a",
            codec: MediaCodec::Opus,
            captured,
            frames_sent: frames,
            voice: 0,
            client,
            step: None,
        };
        let q = quality::score_all(&media, &[job], None).remove(0);
        let (nb, wb) = (q.pesq_nb.unwrap(), q.pesq_wb.unwrap());
        // Opus at 24-32 kbit/s fullband, decoded at 48 kHz and taken down to 8 / 16 kHz.
        assert!(nb > 3.9, "{client:?}: {q:?}");
        assert!(wb > 3.5, "{client:?}: {q:?}");
        assert!(q.correlation > 0.8, "{client:?}: {q:?}");
        assert_eq!(
            (q.voice.as_str(), q.client.as_str()),
            ("en_female_48k", client.name())
        );
    }
}

#[test]
fn the_floor_judges_the_worst_sampled_stream() {
    let result = |dir: &str, nb: Option<f64>| quality::QualityResult {
        direction: dir.into(),
        pesq_nb: nb,
        ..Default::default()
    };
    let results = [
        result("a_to_b", Some(4.1)),
        result("a_to_b", Some(3.4)),
        result("b_to_a", Some(3.9)),
    ];
    let ab = PesqSummary::of(&results, "a_to_b");
    assert_eq!((ab.streams, ab.nb_min), (2, Some(3.4)));
    assert!((ab.nb_mean.unwrap() - 3.75).abs() < 1e-9);
    assert!(!ab.meets(3.6) && ab.meets(3.4));
    assert!(PesqSummary::of(&results, "b_to_a").meets(3.6));
    // A sampled stream PESQ could not score fails any floor; nothing sampled meets it.
    let unscored = [result("a_to_b", None)];
    assert!(!PesqSummary::of(&unscored, "a_to_b").meets(1.0));
    assert!(PesqSummary::of(&[], "a_to_b").meets(4.0));
}
