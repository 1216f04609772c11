//! The `bridgepool-loadgen` binary: parses options, builds the target, runs the load, prints the
//! table and writes the JSON and HTML reports.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bridgepool_loadgen::cli::{Cli, Command, LoadKind, TargetKind};
use bridgepool_loadgen::media::EncodedMedia;
use bridgepool_loadgen::pool;
use bridgepool_loadgen::report::{html, json, table};
use bridgepool_loadgen::run_load;
use bridgepool_loadgen::targets::Target;
use bridgepool_loadgen::targets::bridgepool::BridgepoolTarget;
use bridgepool_loadgen::targets::rtpengine::RtpengineTarget;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bridgepool-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let common = cli.command.common();
    let mut config = cli.command.load_config();
    if !(0.0..=1.0).contains(&common.webrtc_share) {
        return Err(format!("--webrtc-share {} is not in 0..=1", common.webrtc_share).into());
    }
    // Encoded once here, replayed by the pacer: the loadgen's own CPU stays small.
    let media = match (common.synthetic_speech, common.load) {
        (true, _) => EncodedMedia::synthetic(10)?,
        (false, LoadKind::Client) => EncodedMedia::client_load(&common.voices, common.client_mix())
            .map_err(|e| format!("{e} (run from the repository root, or pass --voices)"))?,
        (false, LoadKind::Legacy) => EncodedMedia::legacy(&common.speech)
            .map_err(|e| format!("{e} (run from the repository root, or pass --speech)"))?,
    };
    // The demo's pool lives as long as this function; its reports go to --report-dir.
    let mut _pool = None;
    let mut report_dir = None;
    let target: Box<dyn Target> = match &cli.command {
        Command::Demo {
            rtp_port_min,
            report_dir: dir,
            ..
        } => {
            let _log = bridgepool_proto::telemetry::init("warn", None, "bridgepool-demo");
            eprintln!(
                "demo: starting an embedded pool (scheduler + worker, one media thread per core)"
            );
            let pool = pool::start(*rtp_port_min).await?;
            eprintln!(
                "demo: scheduler on {} (metrics http://{}/metrics), worker metrics http://{}/metrics",
                pool.scheduler, pool.scheduler_metrics, pool.worker_metrics
            );
            let target = BridgepoolTarget::connect(
                &format!("http://{}", pool.scheduler),
                common.control_timeout,
            )
            .await?
            .with_jitter_buffer(common.jitter_buffer());
            // The pool runs in this process: its CPU is ours.
            config.measure_pids = vec![std::process::id()];
            _pool = Some(pool);
            report_dir = Some(dir.clone());
            Box::new(target)
        }
        _ if common.target == TargetKind::Bridgepool => Box::new(
            BridgepoolTarget::connect(&common.scheduler, common.control_timeout)
                .await?
                .with_jitter_buffer(common.jitter_buffer()),
        ),
        _ => {
            // One ng client for rtpengine and for bridgepool's own ng front door.
            let (addr, name) = if common.target == TargetKind::Ng {
                (common.ng, "bridgepool-ng")
            } else {
                (common.rtpengine_ng, "rtpengine")
            };
            let t = RtpengineTarget::new(addr, common.control_timeout, 2).named(name);
            t.ping()
                .await
                .map_err(|e| format!("{name} does not answer ng ping on {addr}: {e}"))?;
            Box::new(t)
        }
    };
    let visible =
        !common.no_progress && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let progress = if visible {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} s  {msg}",
        )?
        .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let report = run_load(target.as_ref(), Arc::new(media), &config, &progress).await?;
    progress.finish_and_clear();
    print!("{}", table::render(&report));
    if report_dir.is_some() {
        println!(
            "(demo: one process holds the scheduler, the worker and the loadgen: its CPU is all three)"
        );
    }
    let (json_path, html_path) = match report_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            (
                Some(
                    common
                        .json
                        .clone()
                        .unwrap_or_else(|| dir.join("report.json")),
                ),
                Some(
                    common
                        .html
                        .clone()
                        .unwrap_or_else(|| dir.join("report.html")),
                ),
            )
        }
        None => (common.json.clone(), common.html.clone()),
    };
    if let Some(path) = &json_path {
        json::write(&report, path)?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = &html_path {
        json::write_file(path, &html::render(&report))?;
        println!("HTML report: {}", path.display());
    }
    // The demo always checks: it is also CI's smoke run.
    let check = common.check || matches!(cli.command, Command::Demo { .. });
    if check && !report.service_level_held {
        eprintln!("bridgepool-loadgen: the service level was not held (see the table above)");
    }
    Ok(if check && !report.service_level_held {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
