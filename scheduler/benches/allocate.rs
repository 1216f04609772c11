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

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use bridgepool_proto::v1::worker_server::{Worker, WorkerServer};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

const WORKERS: usize = 100;
const CALLS: usize = 20_000;
const CONCURRENCY: usize = 64;
/// Open-loop senders (each paced; enough that a slow answer does not delay the next start).
const SENDERS: usize = 32;

#[derive(Default)]
struct FakeWorker {
    next: AtomicU64,
}

type Events = Pin<Box<dyn Stream<Item = Result<v1::SessionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Worker for FakeWorker {
    async fn create_session(
        &self,
        _r: Request<v1::CreateSessionRequest>,
    ) -> Result<Response<v1::CreateSessionResponse>, Status> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let local = Some(v1::MediaAddress {
            ip: "127.0.0.1".into(),
            port: 30_000,
        });
        Ok(Response::new(v1::CreateSessionResponse {
            session_id: format!("{id:x}"),
            leg_a_local: local.clone(),
            leg_b_local: local,
            core: 0,
        }))
    }
    async fn update_session(
        &self,
        _r: Request<v1::UpdateSessionRequest>,
    ) -> Result<Response<v1::UpdateSessionResponse>, Status> {
        Ok(Response::new(v1::UpdateSessionResponse {}))
    }
    async fn delete_session(
        &self,
        _r: Request<v1::DeleteSessionRequest>,
    ) -> Result<Response<v1::DeleteSessionResponse>, Status> {
        Ok(Response::new(v1::DeleteSessionResponse::default()))
    }
    async fn get_session(
        &self,
        _r: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::GetSessionResponse>, Status> {
        Ok(Response::new(v1::GetSessionResponse::default()))
    }
    async fn get_stats(
        &self,
        _r: Request<v1::GetStatsRequest>,
    ) -> Result<Response<v1::WorkerStats>, Status> {
        Ok(Response::new(v1::WorkerStats::default()))
    }
    async fn drain(
        &self,
        _r: Request<v1::DrainRequest>,
    ) -> Result<Response<v1::DrainResponse>, Status> {
        Ok(Response::new(v1::DrainResponse::default()))
    }
    type WatchEventsStream = Events;
    async fn watch_events(
        &self,
        _r: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
    // One-way jobs (ng transform) are not what this bench measures.
    async fn create_job(
        &self,
        _r: Request<v1::CreateJobRequest>,
    ) -> Result<Response<v1::CreateJobResponse>, Status> {
        Err(Status::unimplemented("bench worker"))
    }
    async fn delete_job(
        &self,
        _r: Request<v1::JobRef>,
    ) -> Result<Response<v1::DeleteJobResponse>, Status> {
        Ok(Response::new(v1::DeleteJobResponse::default()))
    }
    async fn get_job(
        &self,
        _r: Request<v1::JobRef>,
    ) -> Result<Response<v1::GetJobResponse>, Status> {
        Ok(Response::new(v1::GetJobResponse::default()))
    }
    async fn list_jobs(
        &self,
        _r: Request<v1::ListJobsRequest>,
    ) -> Result<Response<v1::ListJobsResponse>, Status> {
        Ok(Response::new(v1::ListJobsResponse::default()))
    }
}

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
        // The fleet: 100 gRPC servers that heartbeat every second.
        for i in 0..WORKERS {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(WorkerServer::new(FakeWorker::default()))
                    .serve_with_incoming(
                        tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    ),
            );
            tokio::spawn(async move {
                let mut client = loop {
                    match SchedulerClient::connect(format!("http://{target}")).await {
                        Ok(c) => break c,
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                };
                loop {
                    let status = v1::WorkerStatus {
                        stats: Some(v1::WorkerStats {
                            worker_id: format!("sim-{i}"),
                            endpoint: format!("http://{addr}"),
                            capacity_sessions: 1_000_000,
                            headroom_sessions: 1_000_000,
                            ..Default::default()
                        }),
                        session_ids: vec![],
                    };
                    let _ = client.heartbeat(status).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let client = SchedulerClient::connect(format!("http://{target}")).await.expect("scheduler");
        let registered = client
            .clone()
            .list_workers(v1::ListWorkersRequest {})
            .await
            .expect("list")
            .into_inner()
            .workers
            .len();
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

/// Latency percentiles of one kind of request.
struct Percentiles {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Percentiles {
    fn of(mut l: Vec<Duration>) -> Self {
        l.sort();
        let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
        Self {
            p50: pct(0.50),
            p99: pct(0.99),
            max: l[l.len() - 1],
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
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
