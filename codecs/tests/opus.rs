//! Opus through our types, on the project's speech sample: round trip quality, FEC against PLC,
//! DTX, durations, and garbage that must be an error rather than a panic.

use bridgepool_codecs::opus::{
    self, Application, EncoderConfig, OpusDecoder, OpusEncoder, SampleRate, packet_has_fec,
    packet_samples,
};
use bridgepool_codecs::quality::align_and_compare;
use proptest::prelude::*;

fn speech() -> Vec<i16> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/speech_8k.wav"
    );
    let mut r = hound::WavReader::open(path).expect("speech sample");
    r.samples::<i16>()
        .take(8000 * 12)
        .map(|s| s.expect("sample"))
        .collect()
}

fn encode_all(pcm: &[i16], config: &EncoderConfig) -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder::new(config).expect("encoder");
    let mut out = [0u8; 1500];
    pcm.chunks_exact(160)
        .map(|f| {
            let n = enc.encode(f, &mut out).expect("encode");
            out[..n].to_vec()
        })
        .collect()
}

#[test]
fn speech_round_trip_at_8k() {
    let pcm = speech();
    for complexity in [0, 5, 10] {
        let packets = encode_all(
            &pcm,
            &EncoderConfig {
                complexity,
                ..EncoderConfig::default()
            },
        );
        let mut dec = OpusDecoder::new(SampleRate::Hz8000).unwrap();
        let mut decoded = Vec::new();
        let mut buf = [0i16; 960];
        for p in &packets {
            assert_eq!(packet_samples(p, SampleRate::Hz8000).unwrap(), 160);
            assert_eq!(packet_samples(p, SampleRate::Hz48000).unwrap(), 960);
            let n = dec.decode(p, &mut buf).unwrap();
            decoded.extend_from_slice(&buf[..n]);
        }
        let s = align_and_compare(&pcm, &decoded, 800);
        assert!(s.correlation > 0.9, "complexity {complexity}: {s:?}");
    }
    assert!(!opus::BACKEND.is_empty());
}

#[test]
fn fec_recovers_a_lost_frame_better_than_concealment() {
    let pcm = speech();
    let packets = encode_all(
        &pcm,
        &EncoderConfig {
            inband_fec: true,
            expected_loss_pct: 20,
            ..EncoderConfig::default()
        },
    );
    assert!(
        packets.iter().filter(|p| packet_has_fec(p)).count() > packets.len() / 2,
        "FEC should be in most packets"
    );
    // Lose every 10th packet; heal once with FEC from the next packet, once with PLC.
    let heal = |use_fec: bool| {
        let mut dec = OpusDecoder::new(SampleRate::Hz8000).unwrap();
        let mut out = Vec::new();
        let mut buf = [0i16; 960];
        for (i, p) in packets.iter().enumerate() {
            if i % 10 == 5 {
                continue;
            }
            if i % 10 == 6 {
                let mut lost = [0i16; 160];
                let n = if use_fec {
                    dec.decode_fec(p, &mut lost).unwrap()
                } else {
                    dec.conceal(&mut lost).unwrap()
                };
                assert_eq!(n, 160);
                out.extend_from_slice(&lost);
            }
            let n = dec.decode(p, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        align_and_compare(&pcm, &out, 800)
    };
    let (fec, plc) = (heal(true), heal(false));
    assert!(fec.snr_db > plc.snr_db, "FEC {fec:?} vs PLC {plc:?}");
}

/// Decodes `packets` at 8 kHz and correlates the result with `pcm`.
fn correlation(pcm: &[i16], packets: &[Vec<u8>]) -> f64 {
    let mut dec = OpusDecoder::new(SampleRate::Hz8000).expect("decoder");
    let mut frame = [0i16; 960];
    let mut out = Vec::new();
    for p in packets {
        let n = dec.decode(p, &mut frame).expect("decode");
        out.extend_from_slice(&frame[..n]);
    }
    align_and_compare(pcm, &out, 800).correlation
}

#[test]
fn audio_application_is_closer_to_the_input_and_still_carries_fec_under_loss() {
    let pcm = speech();
    let config = |application, expected_loss_pct| EncoderConfig {
        application,
        expected_loss_pct,
        ..EncoderConfig::default()
    };
    let voip = encode_all(&pcm, &config(Application::Voip, 0));
    let audio = encode_all(&pcm, &config(Application::Audio, 0));
    let (c_voip, c_audio) = (correlation(&pcm, &voip), correlation(&pcm, &audio));
    // The figures docs/performance.md quotes (run with --nocapture).
    println!("correlation with the input: voip {c_voip:.4}, audio {c_audio:.4}");
    assert!(
        c_audio > c_voip + 0.01,
        "audio {c_audio:.4} against voip {c_voip:.4}"
    );
    // TOC configurations 16..=31 are CELT-only: no room for in-band FEC.
    let celt = |p: &Vec<u8>| p[0] >> 3 >= 16;
    assert!(audio.iter().all(celt), "no loss expected: CELT");
    assert!(!audio.iter().any(|p| packet_has_fec(p)));
    // Loss reported: the encoder moves to SILK and carries the previous frame.
    let lossy = encode_all(&pcm, &config(Application::Audio, 15));
    assert!(!lossy.iter().any(celt), "loss expected: SILK");
    let with_fec = lossy.iter().filter(|p| packet_has_fec(p)).count();
    assert!(
        with_fec > lossy.len() / 2,
        "{with_fec} of {} carry FEC",
        lossy.len()
    );
}

#[test]
fn dtx_silence_is_at_most_two_bytes() {
    let mut enc = OpusEncoder::new(&EncoderConfig {
        dtx: true,
        ..EncoderConfig::default()
    })
    .unwrap();
    let silence = [0i16; 160];
    let mut out = [0u8; 1500];
    let sizes: Vec<usize> = (0..50)
        .map(|_| enc.encode(&silence, &mut out).unwrap())
        .collect();
    assert!(
        sizes[20..].iter().filter(|n| **n <= 2).count() > 20,
        "{sizes:?}"
    );
}

#[test]
fn frame_sizes_are_checked() {
    let mut enc = OpusEncoder::new(&EncoderConfig::default()).unwrap();
    let mut out = [0u8; 1500];
    for ms in [10usize, 20, 40, 60] {
        assert!(enc.encode(&vec![0; ms * 8], &mut out).is_ok(), "{ms} ms");
    }
    assert!(enc.encode(&[0; 150], &mut out).is_err());
    let mut dec = OpusDecoder::new(SampleRate::Hz8000).unwrap();
    assert!(dec.conceal(&mut [0; 150]).is_err());
    assert!(dec.decode(&[], &mut [0; 160]).is_err());
}

proptest! {
    #[test]
    fn garbage_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut dec = OpusDecoder::new(SampleRate::Hz8000).unwrap();
        let mut buf = [0i16; 960];
        let _ = dec.decode(&bytes, &mut buf);
        let _ = dec.decode_fec(&bytes, &mut buf[..160]);
        let _ = packet_samples(&bytes, SampleRate::Hz8000);
        let _ = packet_has_fec(&bytes);
    }
}
