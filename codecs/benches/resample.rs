//! rubato cost per 20 ms frame, 8 kHz to 48 kHz, and each kind's delay.

use std::hint::black_box;

use bridgepool_codecs::resample::{Resampler, ResamplerKind};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let input: Vec<i16> = (0..160)
        .map(|i| ((f64::from(i) * 0.3).sin() * 10_000.0) as i16)
        .collect();
    for (name, kind) in [
        ("polynomial", ResamplerKind::Polynomial),
        ("sinc256", ResamplerKind::Sinc),
        ("fft", ResamplerKind::Fft),
    ] {
        let mut r = Resampler::new(8000, 48_000, 160, kind).expect("resampler");
        eprintln!(
            "resample 8k->48k {name}: delay {} samples at 48 kHz = {:.2} ms",
            r.delay(),
            r.delay() as f64 / 48.0
        );
        let mut out = vec![0i16; r.frame_out()];
        c.bench_function(&format!("resample/8k_to_48k/{name}"), |b| {
            b.iter(|| black_box(r.process(black_box(&input), &mut out).expect("process")))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
