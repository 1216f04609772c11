//! A simulated fleet for the scheduler's benches: in-process gRPC Worker servers that register by
//! heartbeat and answer at once, so what a bench measures is the scheduler, not media.
#![allow(dead_code)] // each bench uses its own part of the fleet

use std::collections::HashSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use bridgepool_proto::v1::worker_server::{Worker, WorkerServer};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// A worker that holds nothing but the names of its jobs (so a delete finds the one that has it).
#[derive(Default)]
struct FakeWorker {
    next: AtomicU64,
    jobs: Mutex<HashSet<(String, String)>>,
}

type Events = Pin<Box<dyn Stream<Item = Result<v1::SessionEvent, Status>> + Send>>;

fn local() -> Option<v1::MediaAddress> {
    Some(v1::MediaAddress {
        ip: "127.0.0.1".into(),
        port: 30_000,
    })
}

impl FakeWorker {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, r: &v1::JobRef) -> Vec<v1::JobStats> {
        let mut jobs = self.jobs();
        let matched: Vec<_> = jobs
            .iter()
            .filter(|(c, f)| *c == r.call_id && (r.any_tag || *f == r.from_tag))
            .cloned()
            .collect();
        matched
            .into_iter()
            .map(|k| {
                jobs.remove(&k);
                v1::JobStats {
                    call_id: k.0,
                    from_tag: k.1,
                    local: local(),
                    ..Default::default()
                }
            })
            .collect()
    }
}

#[tonic::async_trait]
impl Worker for FakeWorker {
    async fn create_session(
        &self,
        _r: Request<v1::CreateSessionRequest>,
    ) -> Result<Response<v1::CreateSessionResponse>, Status> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(v1::CreateSessionResponse {
            session_id: format!("{id:x}"),
            leg_a_local: local(),
            leg_b_local: local(),
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
    async fn find_sessions(
        &self,
        _r: Request<v1::FindSessionsRequest>,
    ) -> Result<Response<v1::FindSessionsResponse>, Status> {
        Ok(Response::new(v1::FindSessionsResponse::default()))
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
    async fn create_job(
        &self,
        r: Request<v1::CreateJobRequest>,
    ) -> Result<Response<v1::CreateJobResponse>, Status> {
        let r = r.into_inner();
        self.jobs().insert((r.call_id, r.from_tag));
        Ok(Response::new(v1::CreateJobResponse {
            local: local(),
            core: 0,
        }))
    }
    async fn delete_job(
        &self,
        r: Request<v1::JobRef>,
    ) -> Result<Response<v1::DeleteJobResponse>, Status> {
        Ok(Response::new(v1::DeleteJobResponse {
            deleted: self.take(r.get_ref()),
        }))
    }
    async fn get_job(
        &self,
        r: Request<v1::JobRef>,
    ) -> Result<Response<v1::GetJobResponse>, Status> {
        let r = r.into_inner();
        let jobs = self
            .jobs()
            .iter()
            .filter(|(c, f)| *c == r.call_id && (r.any_tag || *f == r.from_tag))
            .map(|(c, f)| v1::JobStats {
                call_id: c.clone(),
                from_tag: f.clone(),
                local: local(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(v1::GetJobResponse { jobs }))
    }
    async fn list_jobs(
        &self,
        _r: Request<v1::ListJobsRequest>,
    ) -> Result<Response<v1::ListJobsResponse>, Status> {
        Ok(Response::new(v1::ListJobsResponse::default()))
    }
}

/// Starts `workers` simulated workers that heartbeat every second to every scheduler of
/// `targets`; returns how many the first lists after three seconds.
pub(crate) async fn spawn(targets: &[SocketAddr], workers: usize) -> usize {
    for i in 0..workers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(WorkerServer::new(FakeWorker::default()))
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                ),
        );
        for &target in targets {
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
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut client = SchedulerClient::connect(format!("http://{}", targets[0]))
        .await
        .expect("scheduler");
    client
        .list_workers(v1::ListWorkersRequest {})
        .await
        .expect("list")
        .into_inner()
        .workers
        .len()
}

/// Latency percentiles of one kind of request.
pub(crate) struct Percentiles {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Percentiles {
    /// From a run's latencies (not empty).
    pub(crate) fn of(mut l: Vec<Duration>) -> Self {
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
