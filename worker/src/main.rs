//! `bridgepool-worker`: transcodes G.711 <-> Opus RTP on pinned media threads.

use std::process::ExitCode;

use clap::Parser;

use bridgepool_proto::telemetry;
use bridgepool_worker::config::WorkerArgs;
use bridgepool_worker::server;

fn main() -> ExitCode {
    let args = WorkerArgs::parse();
    let config = match args.validate() {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("bridgepool-worker: {} bad option(s):", errors.len());
            for e in errors {
                eprintln!("  {e}");
            }
            return ExitCode::from(2);
        }
    };
    // The control plane is small: two threads. When --cores leaves some cores out of the media
    // set, the control threads run there, so gRPC, heartbeats and metrics never preempt a media
    // thread; otherwise they float beside the pinned media threads.
    let control_cores = control_cores(&config.engine.cores);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("control")
        .on_thread_start(move || {
            if control_cores.is_empty() {
                return;
            }
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let core = control_cores[i % control_cores.len()];
            if !core_affinity::set_for_current(core) {
                tracing::warn!(core = core.id, "could not pin a control thread");
            }
        })
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bridgepool-worker: cannot start the control runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry = match telemetry::init(&config.log, config.otlp_endpoint.as_deref(), "bridgepool-worker") {
            Ok(t) => t,
            Err(e) => {
                eprintln!("bridgepool-worker: {e}");
                return ExitCode::from(2);
            }
        };
        let grpc = match tokio::net::TcpListener::bind(config.grpc_listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %config.grpc_listen, error = %e, "cannot listen for gRPC");
                return ExitCode::FAILURE;
            }
        };
        let metrics = match tokio::net::TcpListener::bind(config.metrics_listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %config.metrics_listen, error = %e, "cannot listen for metrics");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(grpc = %config.grpc_listen, metrics = %config.metrics_listen, id = %config.worker_id, "worker starting");
        match server::serve(config, grpc, Some(metrics), terminate()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "worker failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// The cores this process may use that are not media cores (none when every core is a media core
/// or the media set is the default, all).
fn control_cores(media: &[usize]) -> Vec<core_affinity::CoreId> {
    if media.is_empty() {
        return Vec::new();
    }
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !media.contains(&c.id))
        .collect()
}

/// SIGTERM (Kubernetes, systemd, an ASG lifecycle hook) or ctrl-c.
async fn terminate() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
