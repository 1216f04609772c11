//! Opus cost per 20 ms frame of speech, the codec-only ceiling's main terms: encode from 8 kHz at
//! complexity 0, 5 and 10; the same from 48 kHz upsampled (what not to do); decode to 8 kHz;
//! FEC recovery and concealment. Which libopus: see `bridgepool_codecs::opus::BACKEND` (build with
//! `--no-default-features --features audiopus` for libopus 1.3).

use std::hint::black_box;

use bridgepool_codecs::opus::{
    self, Application, EncoderConfig, OpusDecoder, OpusEncoder, SampleRate,
};
use bridgepool_codecs::resample::resample_all;
use criterion::{Criterion, criterion_group, criterion_main};

fn speech() -> Vec<i16> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/speech_8k.wav"
    );
    let mut r = hound::WavReader::open(path).expect("speech sample");
    // Ten seconds of speech: frames cycle so the encoder sees varied audio.
    r.samples::<i16>()
        .take(80_000)
        .map(|s| s.expect("sample"))
        .collect()
}

fn encoder(rate: SampleRate, complexity: u8) -> OpusEncoder {
    encoder_for(rate, complexity, Application::Voip)
}

fn encoder_for(rate: SampleRate, complexity: u8, application: Application) -> OpusEncoder {
    OpusEncoder::new(&EncoderConfig {
        sample_rate: rate,
        complexity,
        application,
        ..EncoderConfig::default()
    })
    .expect("encoder")
}

fn bench(c: &mut Criterion) {
    eprintln!("Opus backend: {}", opus::BACKEND);
    let pcm8 = speech();
    let frames8: Vec<&[i16]> = pcm8.chunks_exact(160).collect();
    let pcm48 = resample_all(&pcm8, 8000, 48_000).expect("upsample");
    let frames48: Vec<&[i16]> = pcm48.chunks_exact(960).collect();
    let mut out = [0u8; 1500];
    for complexity in [0u8, 5, 10] {
        let mut enc = encoder(SampleRate::Hz8000, complexity);
        let mut i = 0;
        c.bench_function(&format!("opus/encode_8k/c{complexity}"), |b| {
            b.iter(|| {
                i = (i + 1) % frames8.len();
                black_box(enc.encode(black_box(frames8[i]), &mut out).expect("encode"))
            })
        });
        // The transcoder's setting: CELT while no loss is reported.
        let mut enc = encoder_for(SampleRate::Hz8000, complexity, Application::Audio);
        let mut i = 0;
        c.bench_function(&format!("opus/encode_8k_audio/c{complexity}"), |b| {
            b.iter(|| {
                i = (i + 1) % frames8.len();
                black_box(enc.encode(black_box(frames8[i]), &mut out).expect("encode"))
            })
        });
        let mut enc = encoder(SampleRate::Hz48000, complexity);
        let mut i = 0;
        c.bench_function(&format!("opus/encode_48k_upsampled/c{complexity}"), |b| {
            b.iter(|| {
                i = (i + 1) % frames48.len();
                black_box(
                    enc.encode(black_box(frames48[i]), &mut out)
                        .expect("encode"),
                )
            })
        });
    }
    // Packets as an Opus peer sends them (FEC on, so recovery has something to use).
    let mut enc = OpusEncoder::new(&EncoderConfig {
        expected_loss_pct: 10,
        ..EncoderConfig::default()
    })
    .expect("encoder");
    let packets: Vec<Vec<u8>> = frames8
        .iter()
        .map(|f| {
            let n = enc.encode(f, &mut out).expect("encode");
            out[..n].to_vec()
        })
        .collect();
    let mut pcm = [0i16; 960];
    let mut dec = OpusDecoder::new(SampleRate::Hz8000).expect("decoder");
    let mut i = 0;
    c.bench_function("opus/decode_8k", |b| {
        b.iter(|| {
            i = (i + 1) % packets.len();
            black_box(
                dec.decode(black_box(&packets[i]), &mut pcm)
                    .expect("decode"),
            )
        })
    });
    let mut i = 0;
    c.bench_function("opus/decode_fec_8k", |b| {
        b.iter(|| {
            i = (i + 1) % packets.len();
            black_box(
                dec.decode_fec(black_box(&packets[i]), &mut pcm[..160])
                    .expect("fec"),
            )
        })
    });
    c.bench_function("opus/conceal_8k", |b| {
        b.iter(|| black_box(dec.conceal(&mut pcm[..160]).expect("plc")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
