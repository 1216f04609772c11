//! An embedded pool for the demo: a scheduler and one worker (one media thread per core) in this
//! process, on loopback, with real gRPC servers and real RTP sockets. The worker registers with
//! the scheduler by heartbeat exactly as separate processes would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The embedded pool could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A listener could not be bound.
    #[error("cannot listen on loopback: {0}")]
    Listen(#[from] std::io::Error),
    /// The built-in configuration was refused (a bug).
    #[error("embedded configuration: {0}")]
    Config(String),
    /// The worker never registered.
    #[error("the worker did not register with the scheduler within {0:?}")]
    NotReady(Duration),
}

/// A running embedded pool. Dropping it stops both (the worker drains at once).
pub struct EmbeddedPool {
    /// The scheduler's gRPC address.
    pub scheduler: SocketAddr,
    /// The scheduler's /metrics address.
    pub scheduler_metrics: SocketAddr,
    /// The worker's /metrics address.
    pub worker_metrics: SocketAddr,
    stop_scheduler: Option<oneshot::Sender<()>>,
    stop_worker: Option<oneshot::Sender<()>>,
}

impl Drop for EmbeddedPool {
    fn drop(&mut self) {
        if let Some(s) = self.stop_worker.take() {
            let _ = s.send(());
        }
        if let Some(s) = self.stop_scheduler.take() {
            let _ = s.send(());
        }
    }
}

async fn listener() -> Result<(TcpListener, SocketAddr), std::io::Error> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

/// Starts a scheduler and a worker on loopback; RTP ports from `rtp_port_min` (200 pairs).
pub async fn start(rtp_port_min: u16) -> Result<EmbeddedPool, PoolError> {
    start_with_ng(rtp_port_min, None).await
}

/// [`start`], with the scheduler's ng front door on `ng` when given (`--target ng` tests).
pub async fn start_with_ng(
    rtp_port_min: u16,
    ng: Option<SocketAddr>,
) -> Result<EmbeddedPool, PoolError> {
    let (sched_grpc, scheduler) = listener().await?;
    let (sched_metrics, scheduler_metrics) = listener().await?;
    let mut args = vec![
        "bridgepool-scheduler".to_owned(),
        "--grpc-listen".to_owned(),
        scheduler.to_string(),
        "--metrics-listen".to_owned(),
        scheduler_metrics.to_string(),
    ];
    if let Some(ng) = ng {
        args.push("--ng-listen".to_owned());
        args.push(ng.to_string());
    }
    let sched_config = bridgepool_scheduler::config::SchedulerArgs::parse_from(args)
        .validate()
        .map_err(|e| PoolError::Config(format!("{e:?}")))?;
    let (stop_scheduler, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async {
            let _ = stopped.await;
        };
        if let Err(e) =
            bridgepool_scheduler::server::serve(sched_config, sched_grpc, Some(sched_metrics), stop)
                .await
        {
            tracing::error!(error = %e, "embedded scheduler failed");
        }
    });

    let (worker_grpc, worker_addr) = listener().await?;
    let (worker_metrics_listener, worker_metrics) = listener().await?;
    let worker_config = bridgepool_worker::config::WorkerArgs::parse_from([
        "bridgepool-worker",
        "--grpc-listen",
        &worker_addr.to_string(),
        "--metrics-listen",
        &worker_metrics.to_string(),
        "--media-ip",
        "127.0.0.1",
        "--rtp-port-min",
        &rtp_port_min.to_string(),
        "--rtp-port-max",
        &(rtp_port_min.saturating_add(799)).to_string(),
        "--scheduler",
        &format!("http://{scheduler}"),
        "--heartbeat-interval",
        "250ms",
        "--worker-id",
        "demo-worker",
        "--drain-deadline",
        "1s",
    ])
    .validate()
    .map_err(|e| PoolError::Config(format!("{e:?}")))?;
    let (stop_worker, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async {
            let _ = stopped.await;
        };
        if let Err(e) = bridgepool_worker::server::serve(
            worker_config,
            worker_grpc,
            Some(worker_metrics_listener),
            stop,
        )
        .await
        {
            tracing::error!(error = %e, "embedded worker failed");
        }
    });

    let pool = EmbeddedPool {
        scheduler,
        scheduler_metrics,
        worker_metrics,
        stop_scheduler: Some(stop_scheduler),
        stop_worker: Some(stop_worker),
    };
    let limit = Duration::from_secs(20);
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(mut c) = SchedulerClient::connect(format!("http://{scheduler}")).await
            && let Ok(r) = c.list_workers(v1::ListWorkersRequest {}).await
            && r.into_inner()
                .workers
                .iter()
                .any(|w| w.state == v1::WorkerState::Ready as i32)
        {
            return Ok(pool);
        }
        if Instant::now() > deadline {
            return Err(PoolError::NotReady(limit));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
