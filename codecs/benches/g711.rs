//! G.711 cost per 20 ms frame (160 samples at 8 kHz): decode then encode, for each law.

use std::hint::black_box;

use bridgepool_codecs::g711::Law;
use criterion::{Criterion, criterion_group, criterion_main};

const FRAME: usize = 160;

fn frame_pcm() -> [i16; FRAME] {
    // A loud 1 kHz tone: every segment is visited over a period.
    std::array::from_fn(|i| {
        let phase = i as f64 * std::f64::consts::TAU * 1000.0 / 8000.0;
        (phase.sin() * 30_000.0) as i16
    })
}

fn g711(c: &mut Criterion) {
    let pcm = frame_pcm();
    for (name, law) in [("ulaw", Law::Ulaw), ("alaw", Law::Alaw)] {
        let mut payload = [0u8; FRAME];
        law.encode(&pcm, &mut payload);
        let mut decoded = [0i16; FRAME];
        let mut encoded = [0u8; FRAME];
        c.bench_function(&format!("g711/{name}/decode+encode_160"), |b| {
            b.iter(|| {
                law.decode(black_box(&payload), &mut decoded);
                law.encode(black_box(&decoded), &mut encoded);
                black_box(&encoded);
            })
        });
        c.bench_function(&format!("g711/{name}/decode_160"), |b| {
            b.iter(|| {
                law.decode(black_box(&payload), &mut decoded);
                black_box(&decoded);
            })
        });
        c.bench_function(&format!("g711/{name}/encode_160"), |b| {
            b.iter(|| {
                law.encode(black_box(&pcm), &mut encoded);
                black_box(&encoded);
            })
        });
    }
}

criterion_group!(benches, g711);
criterion_main!(benches);
