//! The scheduler's real-process test harness: scheduler replicas with the ng server on and
//! workers registered with every replica, as real processes on loopback; helpers to scrape
//! /metrics and to ask the ng server.
#![allow(dead_code, unreachable_pub)] // each test file uses its own part; pub for the files that include it

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_ng::Dict;
use bridgepool_ng::client::{self, ReplyError};
use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free right now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP address free right now on loopback.
pub fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The worker binary of the same target directory.
pub fn worker_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let dir = me.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("bridgepool-worker");
    assert!(
        bin.exists(),
        "{} missing: `cargo build -p bridgepool-worker` first",
        bin.display()
    );
    bin
}

/// A process's /metrics text.
pub fn metrics(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    text
}

/// Sends one ng datagram, returns the reply datagram.
pub fn ask(sock: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> Vec<u8> {
    sock.send_to(datagram, to).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).expect("no ng reply");
    buf.truncate(n);
    buf
}

/// One ng request; the reply body, or the refusal's reason (`error-reason`).
pub fn ng(sock: &UdpSocket, to: SocketAddr, cookie: &str, body: &Dict) -> Result<Dict, String> {
    let raw = ask(sock, to, &client::frame(cookie, body));
    match client::parse_reply(&raw, cookie) {
        Ok(d) => Ok(d),
        Err(ReplyError::Refused { reason }) => Err(reason),
        Err(e) => panic!("{e}"),
    }
}

/// A one-stream audio SDP on loopback: `m` the payload types, `attrs` the attribute lines.
pub fn sdp(port: u16, m: &str, attrs: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {m}\r\n{attrs}"
    )
}

/// A loopback UDP socket that gives up reading after 5 s.
pub fn udp_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// One scheduler replica's addresses; they stay the same across a restart.
#[derive(Clone, Copy, Debug)]
pub struct Replica {
    /// gRPC (workers register here).
    pub grpc: SocketAddr,
    /// The ng server.
    pub ng: SocketAddr,
    /// /metrics.
    pub metrics: SocketAddr,
}

impl Replica {
    fn new() -> Self {
        Self {
            grpc: local(free_port()),
            ng: free_udp(),
            metrics: local(free_port()),
        }
    }

    fn start(&self) -> Proc {
        Proc(
            Command::new(env!("CARGO_BIN_EXE_bridgepool-scheduler"))
                .args(["--grpc-listen", &self.grpc.to_string()])
                .args(["--metrics-listen", &self.metrics.to_string()])
                .args(["--log", "warn"])
                // Deleted calls end at once: the tests look at their teardown.
                .args(["--ng-delete-delay", "0"])
                .env("BRIDGEPOOL_NG_LISTEN", self.ng.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    /// Waits until this replica lists a Ready worker.
    pub async fn wait_for_worker(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = SchedulerClient::connect(format!("http://{}", self.grpc)).await
                && let Ok(w) = c.list_workers(v1::ListWorkersRequest {}).await
                && w.into_inner()
                    .workers
                    .iter()
                    .any(|w| w.state == v1::WorkerState::Ready as i32)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no worker registered with {self:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Scheduler replicas (ng on) and one worker registered with all of them.
pub struct Pool {
    /// The replicas' addresses, by index.
    pub replicas: Vec<Replica>,
    schedulers: Vec<Option<Proc>>,
    worker: Option<Proc>,
    /// The worker's gRPC address.
    pub worker_grpc: SocketAddr,
    /// The worker's /metrics address.
    pub worker_metrics: SocketAddr,
}

impl Pool {
    /// `replicas` schedulers and one worker on core 0 (`worker_args` added to its command line),
    /// ready when every replica lists the worker.
    pub async fn start(replicas: usize, worker_args: &[&str]) -> Self {
        let addrs: Vec<Replica> = (0..replicas).map(|_| Replica::new()).collect();
        let schedulers = addrs.iter().map(|r| Some(r.start())).collect();
        let worker_grpc = local(free_port());
        let worker_metrics = local(free_port());
        let mut worker = Command::new(worker_binary());
        worker
            .args(["--grpc-listen", &worker_grpc.to_string()])
            .args(["--metrics-listen", &worker_metrics.to_string()])
            .args(["--worker-id", "ng-w1", "--heartbeat-interval", "250ms"])
            .args(["--cores", "0", "--log", "warn"])
            .args(worker_args)
            .stdout(Stdio::null());
        for r in &addrs {
            worker.args(["--scheduler", &format!("http://{}", r.grpc)]);
        }
        let pool = Self {
            replicas: addrs,
            schedulers,
            worker: Some(Proc(worker.spawn().unwrap())),
            worker_grpc,
            worker_metrics,
        };
        for r in &pool.replicas {
            r.wait_for_worker().await;
        }
        pool
    }

    /// The first replica.
    pub fn first(&self) -> Replica {
        self.replicas[0]
    }

    /// Kills replica `i` (SIGKILL: no goodbye to anyone).
    pub fn kill(&mut self, i: usize) {
        self.schedulers[i] = None;
    }

    /// Kills the worker (SIGKILL: its calls lose media, the schedulers find out by its silence).
    pub fn kill_worker(&mut self) {
        self.worker = None;
    }

    /// Starts replica `i` again on the same addresses (after [`Pool::kill`]).
    pub fn restart(&mut self, i: usize) {
        self.schedulers[i] = Some(self.replicas[i].start());
    }
}

/// A codec of a gRPC offer: 20 ms, no fmtp, Opus in stereo as its SDP name says.
pub fn codec(name: &str, rate: u32, pt: u32) -> v1::Codec {
    v1::Codec {
        name: name.into(),
        clock_rate: rate,
        channels: if name == "opus" { 2 } else { 1 },
        payload_type: pt,
        fmtp: Default::default(),
        ptime_ms: 20,
    }
}
