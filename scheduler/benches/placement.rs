//! Placement over a simulated fleet of 100 workers: the pure part of Allocate.

use std::hint::black_box;

use bridgepool_scheduler::placement::{Candidate, order};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn bench(c: &mut Criterion) {
    let pool: Vec<Candidate> = (0..100)
        .map(|i| Candidate {
            id: format!("worker-{i}").into(),
            headroom: (i * 37 % 200) as u64,
            draining: i % 17 == 0,
            lost: i % 23 == 0,
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(42);
    c.bench_function("placement/p2c_100_workers", |b| {
        b.iter(|| black_box(order(black_box(&pool), &mut rng, 3)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
