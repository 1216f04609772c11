//! Runs a whole worker: the media engine, the gRPC service (with health and reflection), the
//! metrics endpoint, heartbeats to every scheduler, and the drain that ends it all. Used by the
//! binary and embedded by the loadgen's demo and the tests.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use bridgepool_proto::v1::worker_server::WorkerServer;
use bridgepool_proto::{limits, v1};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tonic::transport::{Channel, Server};

use crate::config::WorkerConfig;
use crate::drain::Drain;
use crate::engine::{Engine, EngineEvent, EngineEventKind, JobSelector};
use crate::service::{WorkerService, WorkerState};
use crate::session::{EndReason, Timeouts};

/// The worker could not start or failed while serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The media engine did not start.
    #[error("media engine: {0}")]
    Engine(#[from] std::io::Error),
    /// TLS material could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// Reflection could not be built.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
}

/// How long open gRPC connections may linger once drained.
const GRPC_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves until `shutdown` resolves (or a Drain call), then drains: new sessions and jobs are
/// refused, live ones run to their end or the drain deadline. Returns when the last is gone.
pub async fn serve(
    config: WorkerConfig,
    grpc: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (engine, engine_events) = Engine::start(&config.engine)?;
    tracing::info!(
        cores = ?engine.cores().iter().map(|c| c.core).collect::<Vec<_>>(),
        session_cost = engine.calibrated_cost(),
        relay_cost = engine.calibrated_directions().relay,
        capacity = engine.cores().iter().map(|c| c.capacity).sum::<u64>(),
        "media engine started"
    );
    let timeouts = Timeouts {
        media: config.session_timeout,
        one_sided: config.session_timeout * 2,
        unanswered: config.session_timeout,
    };
    let state = Arc::new(WorkerState::new(
        engine,
        config.worker_id.clone(),
        config.grpc_advertise.clone(),
        timeouts,
        Drain::new(config.drain_deadline),
    ));
    // Background tasks end with `serve`: an embedded worker (the demo's) must not go on
    // heartbeating as a ghost after it stopped.
    let mut background = Vec::new();
    background.push(tokio::spawn(pump_events(state.clone(), engine_events)));
    for endpoint in &config.schedulers {
        background.push(tokio::spawn(heartbeat(
            state.clone(),
            endpoint.clone(),
            config.heartbeat_interval,
        )));
    }
    if let Some(listener) = metrics {
        background.push(tokio::spawn(serve_metrics(state.clone(), listener)));
    }
    {
        let state = state.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown signal: draining");
            state.drain.begin(None);
            state.counters.draining.store(1, Ordering::Relaxed);
        });
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<WorkerServer<WorkerService>>().await;
    let drained = {
        let state = state.clone();
        async move {
            state.drain.started().await;
            health
                .set_not_serving::<WorkerServer<WorkerService>>()
                .await;
            wait_drained(&state).await;
            state.stop_event_streams();
        }
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let mut builder =
        Server::builder().max_concurrent_streams(Some(limits::STREAMS_PER_CONNECTION));
    if let Some(tls) = &config.tls {
        builder = builder
            .tls_config(server_tls(tls)?)
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let drained = async move {
        drained.await;
        let _ = drained_tx.send(());
    };
    let server = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            WorkerServer::new(WorkerService::new(state.clone()))
                .max_decoding_message_size(limits::MAX_WORKER_REQUEST),
        )
        .serve_with_incoming_shutdown(incoming(grpc), drained);
    // Graceful shutdown waits for open requests and streams; a client that never lets go must
    // not keep a drained worker (and its host's scale-in) alive.
    tokio::select! {
        served = server => served?,
        () = async {
            if drained_rx.await.is_ok() {
                tokio::time::sleep(GRPC_CLOSE_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => tracing::warn!("gRPC connections still open after the drain; closing them"),
    }
    state.engine.shutdown();
    background.iter().for_each(tokio::task::JoinHandle::abort);
    tracing::info!("drained; worker stops");
    Ok(())
}

fn server_tls(
    tls: &crate::config::TlsFiles,
) -> Result<tonic::transport::ServerTlsConfig, ServeError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ServeError::Tls(format!("{}: {e}", p.display())))
    };
    let identity = tonic::transport::Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
    let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// Waits for live sessions and one-way jobs to end; at the deadline ends the rest.
async fn wait_drained(state: &WorkerState) {
    loop {
        let live = state.engine.sessions();
        let jobs = state.engine.job_count();
        if live.is_empty() && jobs == 0 {
            return;
        }
        if state.drain.deadline().is_some_and(|d| Instant::now() >= d) {
            tracing::warn!(
                sessions = live.len(),
                jobs,
                "drain deadline: ending the remaining sessions and jobs"
            );
            // Jobs have no Watch events: as with a lost worker, their direction of the call stops.
            state
                .engine
                .delete_jobs(crate::engine::JobSelector::All)
                .await;
            for id in live {
                if let Some(snapshot) = state.engine.delete(id).await {
                    let call_id = state.forget(id);
                    state
                        .counters
                        .ended_drain_deadline
                        .fetch_add(1, Ordering::Relaxed);
                    let (leg_a, leg_b) = (
                        crate::convert::leg_stats(&snapshot.leg_a, snapshot.mos_a),
                        crate::convert::leg_stats(&snapshot.leg_b, snapshot.mos_b),
                    );
                    let _ = state.events.send(v1::SessionEvent {
                        session_id: format!("{}/{id:x}", state.worker_id),
                        call_id,
                        kind: v1::EventKind::DrainDeadline as i32,
                        detail: "the worker's drain deadline passed".to_owned(),
                        leg_a: Some(leg_a),
                        leg_b: Some(leg_b),
                        worker_id: state.worker_id.clone(),
                    });
                }
            }
            // Sessions that ended by themselves meanwhile leave once their events are out.
            for _ in 0..20 {
                if state.engine.sessions().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Turns what media threads report into events for WatchEvents subscribers.
async fn pump_events(state: Arc<WorkerState>, mut events: UnboundedReceiver<EngineEvent>) {
    while let Some(event) = events.recv().await {
        let session_id = format!("{}/{:x}", state.worker_id, event.id);
        let (kind, detail) = match &event.kind {
            EngineEventKind::Ended(snapshot) => {
                // Forgotten only after the event is out: the drain ends the event streams once
                // no session is left, and this one's end must reach them first.
                let call_id_known = state.call_id(event.id);
                state.counters.ended(snapshot.ended, snapshot);
                let (kind, detail) = match snapshot.ended {
                    Some(EndReason::MediaTimeout) => {
                        (v1::EventKind::SessionTimeout, "no RTP on either leg")
                    }
                    Some(EndReason::OneSidedTimeout { .. }) => {
                        (v1::EventKind::OneSidedTimeout, "no RTP from one leg")
                    }
                    Some(EndReason::NeverAnswered) => {
                        (v1::EventKind::NeverAnswered, "never answered")
                    }
                    _ => (v1::EventKind::SessionTimeout, "ended"),
                };
                let stats = (
                    crate::convert::leg_stats(&snapshot.leg_a, snapshot.mos_a),
                    crate::convert::leg_stats(&snapshot.leg_b, snapshot.mos_b),
                );
                tracing::info!(session = %session_id, call_id = %call_id_known, detail, "session ended by itself");
                let _ = state.events.send(v1::SessionEvent {
                    session_id,
                    call_id: call_id_known,
                    kind: kind as i32,
                    detail: detail.to_owned(),
                    leg_a: Some(stats.0),
                    leg_b: Some(stats.1),
                    worker_id: state.worker_id.clone(),
                });
                state.forget(event.id);
                continue;
            }
            EngineEventKind::Failed => {
                let call_id = state.call_id(event.id);
                let detail = "internal error handling the session: it was removed, ports freed";
                let _ = state.events.send(v1::SessionEvent {
                    session_id,
                    call_id,
                    kind: v1::EventKind::SessionFailed as i32,
                    detail: detail.to_owned(),
                    leg_a: None,
                    leg_b: None,
                    worker_id: state.worker_id.clone(),
                });
                // After the event, like a session that ended by itself (see above).
                state.forget(event.id);
                continue;
            }
            EngineEventKind::SsrcChanged => (v1::EventKind::SsrcChanged, "a peer changed SSRC"),
            EngineEventKind::RemoteBye => (v1::EventKind::RemoteBye, "a peer sent RTCP BYE"),
        };
        let _ = state.events.send(v1::SessionEvent {
            session_id,
            call_id: state.call_id(event.id),
            kind: kind as i32,
            detail: detail.to_owned(),
            leg_a: None,
            leg_b: None,
            worker_id: state.worker_id.clone(),
        });
    }
}

/// Registers with one scheduler replica and keeps the registration alive.
async fn heartbeat(state: Arc<WorkerState>, endpoint: String, interval: Duration) {
    let channel = match Channel::from_shared(endpoint.clone()) {
        Ok(c) => c
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(1))
            .connect_lazy(),
        Err(e) => {
            tracing::error!(%endpoint, error = %e, "bad scheduler endpoint; no heartbeats to it");
            return;
        }
    };
    let mut client = SchedulerClient::new(channel);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let mut session_ids: Vec<String> = state
            .engine
            .sessions()
            .iter()
            .map(|id| format!("{id:x}"))
            .collect();
        // One-way jobs too, so the schedulers can name them if this worker is lost.
        if state.engine.job_count() > 0 {
            let jobs = state.engine.query_jobs(JobSelector::All).await;
            session_ids.extend(
                jobs.iter()
                    .map(|j| bridgepool_proto::job_key(&j.name.0, &j.name.1)),
            );
        }
        let status = v1::WorkerStatus {
            stats: Some(state.stats()),
            session_ids,
        };
        match client.heartbeat(status).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(%endpoint, "scheduler reachable again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                // Logged once per outage, not every second.
                failing = true;
                tracing::warn!(%endpoint, error = %e.message(), "heartbeat failed");
            }
            Err(_) => {}
        }
    }
}

async fn serve_metrics(state: Arc<WorkerState>, listener: TcpListener) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics endpoint stopped");
    }
}

async fn metrics(State(state): State<Arc<WorkerState>>) -> String {
    crate::metrics::render(&state.engine, &state.counters)
}

/// Accepted connections with TCP_NODELAY: tonic applies its own `tcp_nodelay` only to listeners it
/// binds, and a small gRPC answer written in two segments would otherwise wait on Nagle and the
/// peer's delayed ACK (tens of ms on a call that takes a few hundred us).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(30)))
}
