//! `bridgepool-scheduler`: decides passthrough or transcode and places sessions on workers.

use std::process::ExitCode;

use bridgepool_proto::telemetry;
use bridgepool_scheduler::config::SchedulerArgs;
use bridgepool_scheduler::server;
use clap::Parser;

fn main() -> ExitCode {
    let config = match SchedulerArgs::parse().validate() {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("bridgepool-scheduler: {} bad option(s):", errors.len());
            for e in errors {
                eprintln!("  {e}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bridgepool-scheduler: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry = match telemetry::init(&config.log, config.otlp_endpoint.as_deref(), "bridgepool-scheduler") {
            Ok(t) => t,
            Err(e) => {
                eprintln!("bridgepool-scheduler: {e}");
                return ExitCode::from(2);
            }
        };
        let (grpc, metrics) = match (
            tokio::net::TcpListener::bind(config.grpc_listen).await,
            tokio::net::TcpListener::bind(config.metrics_listen).await,
        ) {
            (Ok(g), Ok(m)) => (g, m),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(grpc = %config.grpc_listen, metrics = %config.metrics_listen, "scheduler starting");
        match server::serve(config, grpc, Some(metrics), terminate()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "scheduler failed");
                ExitCode::FAILURE
            }
        }
    })
}

async fn terminate() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
