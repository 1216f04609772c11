//! A real pool for the ng tests: a scheduler process with `--ng-listen` and one worker process,
//! on loopback, registered before the test goes on. Both end when the value drops.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;

// The process, port and binary helpers are the shared harness's.
pub use super::common::{Proc, free_port, free_udp, worker_binary};

/// A scheduler and its worker.
pub struct Pool {
    /// The scheduler.
    pub scheduler: Proc,
    /// The worker.
    pub worker: Proc,
    /// The ng port.
    pub ng: SocketAddr,
    /// The scheduler's gRPC address.
    pub grpc: SocketAddr,
    /// The scheduler's /metrics address.
    pub scheduler_metrics: SocketAddr,
    /// The worker's /metrics address.
    pub worker_metrics: SocketAddr,
    /// The worker's gRPC address.
    pub worker_grpc: SocketAddr,
}

/// A scheduler without workers: every new call is beyond its headroom.
pub fn start_empty_scheduler() -> (Proc, SocketAddr, SocketAddr) {
    let ng = free_udp();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let p = Proc(
        Command::new(env!("CARGO_BIN_EXE_bridgepool-scheduler"))
            .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-listen", &metrics.to_string()])
            .args(["--ng-listen", &ng.to_string()])
            .args(["--log", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (p, ng, metrics)
}

/// The /metrics text at `addr` (empty while it does not answer yet).
pub fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    text
}

/// The sum of a metric's samples whose line starts with `prefix` (name and label start).
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Starts a pool whose worker has a fixed session cost (`0.01`: plenty of room; `0.5`: one
/// session) and RTP ports from `rtp_min`. Deleted calls end at once (`--ng-delete-delay 0`):
/// the tests look at their teardown.
pub async fn start(name: &str, session_cost: &str, rtp_min: u16) -> Pool {
    start_with(name, session_cost, rtp_min, &["--ng-delete-delay", "0"]).await
}

/// [`start`] with the scheduler's own options.
pub async fn start_with(
    name: &str,
    session_cost: &str,
    rtp_min: u16,
    scheduler_args: &[&str],
) -> Pool {
    let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let ng = free_udp();
    let scheduler_metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let worker_metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let scheduler = Proc(
        Command::new(env!("CARGO_BIN_EXE_bridgepool-scheduler"))
            .args(["--grpc-listen", &grpc.to_string()])
            .args(["--metrics-listen", &scheduler_metrics.to_string()])
            .args(["--ng-listen", &ng.to_string()])
            .args(["--log", "warn"])
            .args(scheduler_args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let worker_grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let worker = Proc(
        Command::new(worker_binary())
            .args(["--grpc-listen", &worker_grpc.to_string()])
            .args(["--metrics-listen", &worker_metrics.to_string()])
            .args(["--scheduler", &format!("http://{grpc}")])
            .args(["--worker-id", name, "--heartbeat-interval", "250ms"])
            .args(["--cores", "0", "--media-ip", "127.0.0.1"])
            .args(["--session-cost", session_cost, "--live-cost", "false"])
            .args(["--rtp-port-min", &rtp_min.to_string()])
            .args(["--rtp-port-max", &(rtp_min + 999).to_string()])
            .args(["--log", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = SchedulerClient::connect(format!("http://{grpc}")).await
            && let Ok(w) = c.list_workers(v1::ListWorkersRequest {}).await
            && w.into_inner()
                .workers
                .iter()
                .any(|w| w.state == v1::WorkerState::Ready as i32)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Pool {
        scheduler,
        worker,
        ng,
        grpc,
        scheduler_metrics,
        worker_metrics,
        worker_grpc,
    }
}

/// Whether `program` runs (`--version` or `-v` answered).
pub fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Says loudly that a test is skipped, and why.
pub fn skip(test: &str, why: &str) {
    eprintln!();
    eprintln!("!!!!!!!! SKIPPED {test}: {why}");
    eprintln!("!!!!!!!! scripts/setup.sh installs it (CI runs it); this run did NOT test {test}");
    eprintln!();
}
