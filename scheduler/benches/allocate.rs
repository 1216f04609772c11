//! Allocate + Release throughput and latency against a real scheduler process, with a simulated
//! fleet of 100 workers: in-process gRPC Worker servers that register by heartbeat and answer
//! CreateSession / DeleteSession at once (the scheduler's cost is what is measured, not media).
//!
//! Run (scheduler pinned to core 0, this process to core 1):
//!   cargo build --release -p bridgepool-scheduler
//!   taskset -c 0 target/release/bridgepool-scheduler --grpc-listen 127.0.0.1:50151 \
//!       --metrics-listen 127.0.0.1:9191 --log warn &
//!   taskset -c 1 cargo bench -p bridgepool-scheduler --bench allocate -- 127.0.0.1:50151 5000
//!
//! Open loop: call n starts at n / rate seconds (default 5,000 calls per second), so latency is
//! measured at the offered rate, not inflated by a closed loop's own queue. Then a closed loop
//! with 64 in flight finds the ceiling.
#![allow(clippy::disallowed_methods)]

mod fleet;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use fleet::Percentiles;

const WORKERS: usize = 100;
const CALLS: usize = 20_000;
const CONCURRENCY: usize = 64;
/// Open-loop senders (each paced; enough that a slow answer does not delay the next start).
const SENDERS: usize = 32;

fn codec(name: &str, rate: u32, pt: u32) -> v1::Codec {
    v1::Codec {
        name: name.into(),
        clock_rate: rate,
        channels: 1,
        payload_type: pt,
        fmtp: Default::default(),
        ptime_ms: 20,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let target: SocketAddr = args
        .first()
        .map_or("127.0.0.1:50151", String::as_str)
        .parse()
        .expect("scheduler address");
    let rate: f64 = args.get(1).map_or(5000.0, |r| r.parse().expect("rate"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let registered = fleet::spawn(&[target], WORKERS).await;
        let client = SchedulerClient::connect(format!("http://{target}")).await.expect("scheduler");
        let request = v1::AllocateRequest {
            call_id: String::new(),
            leg_a: Some(v1::LegOffer {
                codecs: vec![codec("PCMU", 8000, 0)],
                ..Default::default()
            }),
            leg_b: Some(v1::LegOffer {
                codecs: vec![codec("opus", 48_000, 111)],
                ..Default::default()
            }),
            jitter: None,
        };
        let open = run(&client, &request, CALLS, SENDERS, Some(rate)).await;
        println!(
            "open loop at {rate:.0}/s offered, {CALLS} calls, {registered} workers: achieved {:.0} calls/s\n  allocate+release {}\n  allocate         {}\n  release          {}",
            open.rate, open.pair, open.allocate, open.release
        );
        let closed = run(&client, &request, CALLS, CONCURRENCY, None).await;
        println!(
            "closed loop, {CONCURRENCY} in flight: {:.0} calls/s\n  allocate+release {}\n  allocate         {}\n  release          {}",
            closed.rate, closed.pair, closed.allocate, closed.release
        );
    });
}

/// What a run measured: calls per second, and latency of the pair, of Allocate, of Release.
struct Outcome {
    rate: f64,
    pair: Percentiles,
    allocate: Percentiles,
    release: Percentiles,
}

/// Runs `calls` Allocate+Release pairs over `tasks` tasks, paced at `rate` per second if given.
async fn run(
    client: &SchedulerClient<tonic::transport::Channel>,
    request: &v1::AllocateRequest,
    calls: usize,
    tasks: usize,
    rate: Option<f64>,
) -> Outcome {
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(calls)));
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let mut client = client.clone();
        let request = request.clone();
        let latencies = latencies.clone();
        handles.push(tokio::spawn(async move {
            for n in (t..calls).step_by(tasks) {
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut r = request.clone();
                r.call_id = format!("bench-{n}");
                let t0 = Instant::now();
                let a = client.allocate(r).await.expect("allocate").into_inner();
                let t1 = Instant::now();
                client
                    .release(v1::ReleaseRequest {
                        session_id: a.session_id,
                    })
                    .await
                    .expect("release");
                let t2 = Instant::now();
                latencies.lock().expect("lock").push((t1 - t0, t2 - t1));
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let took = started.elapsed();
    let l = latencies.lock().expect("lock").clone();
    Outcome {
        rate: calls as f64 / took.as_secs_f64(),
        pair: Percentiles::of(l.iter().map(|(a, r)| *a + *r).collect()),
        allocate: Percentiles::of(l.iter().map(|(a, _)| *a).collect()),
        release: Percentiles::of(l.iter().map(|(_, r)| *r).collect()),
    }
}
