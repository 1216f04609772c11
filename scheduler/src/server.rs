//! Runs a scheduler: the gRPC service with health and reflection, /metrics, and the lease
//! sweeper. Used by the binary and embedded by the loadgen's demo and the tests.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bridgepool_proto::v1::scheduler_server::SchedulerServer;
use bridgepool_proto::{limits, v1};
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::config::SchedulerConfig;
use crate::service::{SchedulerService, SchedulerState};

/// The scheduler could not start or failed while serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// TLS material could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The ng UDP socket could not be bound.
    #[error("ng listen: {0}")]
    Ng(String),
    /// Reflection could not be built.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: SchedulerConfig,
    grpc: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = Arc::new(SchedulerState::new(
        config.worker_lease,
        config.worker_timeout,
    ));
    {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                state.expire(Instant::now());
            }
        });
    }
    if let Some(addr) = config.ng_listen {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|e| ServeError::Ng(format!("{addr}: {e}")))?;
        let ng = Arc::new(
            crate::ng::NgServer::new(state.clone(), crate::ng::random_instance())
                .with_rate_limit(config.ng_rate_limit)
                .with_delete_delay(config.ng_delete_delay),
        );
        tracing::info!(%addr, "ng server listening");
        tokio::spawn(crate::ng::run(socket, ng));
    }
    if let Some(listener) = metrics {
        let app = Router::new()
            .route("/metrics", get(render))
            .with_state(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<SchedulerServer<SchedulerService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let mut builder =
        Server::builder().max_concurrent_streams(Some(limits::STREAMS_PER_CONNECTION));
    if let Some((cert, key, ca)) = &config.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ServeError::Tls(format!("{}: {e}", p.display())))
        };
        let mut tls = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(read(cert)?, read(key)?),
        );
        if let Some(ca) = ca {
            tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        builder = builder
            .tls_config(tls)
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            SchedulerServer::new(SchedulerService::new(state))
                .max_decoding_message_size(limits::MAX_SCHEDULER_REQUEST),
        )
        .serve_with_incoming_shutdown(incoming(grpc), shutdown)
        .await?;
    Ok(())
}

async fn render(State(state): State<Arc<SchedulerState>>) -> String {
    let mut out = {
        let registry = state.registry();
        state.metrics.render(&registry)
    };
    state.ng.render(&mut out);
    out
}

/// Accepted connections with TCP_NODELAY: tonic applies its own `tcp_nodelay` only to listeners it
/// binds, and a small gRPC answer written in two segments would otherwise wait on Nagle and the
/// peer's delayed ACK (tens of ms on a call that takes a few hundred us).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(30)))
}
