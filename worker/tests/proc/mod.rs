//! The real worker binary as a child process, for the tests that drive it over gRPC and UDP:
//! fresh loopback ports, a client that waits for it to listen, and its `/metrics`.
// Each test file uses what it needs.
#![allow(dead_code, unreachable_pub)]
// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use tonic::transport::Channel as GrpcChannel;

/// A running worker, killed when dropped.
pub struct WorkerProcess {
    pub child: Child,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback TCP port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the worker on media core 0 with `ports` RTP ports from `rtp_base`, named `id`, with
/// `extra` flags and `env` variables on top.
pub fn spawn(
    rtp_base: u16,
    ports: u16,
    id: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> WorkerProcess {
    let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_bridgepool-worker"))
        .envs(env.iter().copied())
        .args(["--grpc-listen", &grpc.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(["--media-ip", "127.0.0.1"])
        .args(["--rtp-port-min", &rtp_base.to_string()])
        .args(["--rtp-port-max", &(rtp_base + ports - 1).to_string()])
        .args(["--cores", "0", "--worker-id", id, "--log", "warn"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("worker binary starts");
    WorkerProcess {
        child,
        grpc,
        metrics,
    }
}

/// A gRPC client, once the worker listens (a loaded CI host may take a while).
pub async fn client(w: &WorkerProcess) -> WorkerClient<GrpcChannel> {
    let url = format!("http://{}", w.grpc);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match WorkerClient::connect(url.clone()).await {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("worker never listened: {e}"),
        }
    }
}

/// The proto form of an address.
pub fn addr(a: SocketAddr) -> v1::MediaAddress {
    v1::MediaAddress {
        ip: a.ip().to_string(),
        port: u32::from(a.port()),
    }
}

/// An address the worker gave back.
pub fn local(a: &Option<v1::MediaAddress>) -> SocketAddr {
    let a = a.as_ref().expect("address");
    format!("{}:{}", a.ip, a.port).parse().unwrap()
}

/// One unlabelled sample of `metric` from the worker's `/metrics`.
pub async fn scrape(w: &WorkerProcess, metric: &str) -> f64 {
    let text = tokio::task::spawn_blocking({
        let addr = w.metrics;
        move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        }
    })
    .await
    .unwrap();
    text.lines()
        .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metric} not in /metrics"))
}

/// A PCMU <-> Opus session as the scheduler would ask for it (FEC on the Opus leg).
pub fn request(
    call: &str,
    a: Option<SocketAddr>,
    b: Option<SocketAddr>,
) -> v1::CreateSessionRequest {
    v1::CreateSessionRequest {
        call_id: call.to_owned(),
        leg_a: Some(v1::G711Leg {
            law: v1::G711Law::Pcmu as i32,
            payload_type: 0,
            telephone_event_pt: 101,
            ptime_ms: 20,
            remote: a.map(addr),
            direction: v1::Direction::Sendrecv as i32,
        }),
        leg_b: Some(v1::OpusLeg {
            payload_type: 111,
            telephone_event_pt: 110,
            ptime_ms: 20,
            remote: b.map(addr),
            direction: v1::Direction::Sendrecv as i32,
            opus: Some(v1::OpusParams {
                use_inband_fec: true,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// Reads every Opus packet (payload type 111) waiting on `peer` and checks that at least
/// `at_least` came and that their sequence numbers have no gap; `what` names the call.
pub fn assert_opus_whole(peer: &std::net::UdpSocket, at_least: usize, what: &str) {
    let mut seqs = Vec::new();
    let mut buf = [0u8; 1500];
    while let Ok(len) = peer.recv(&mut buf) {
        if let Ok(p) = bridgepool_codecs::rtp::RtpPacket::parse(&buf[..len])
            && p.payload_type() == 111
        {
            seqs.push(p.sequence_number());
        }
    }
    assert!(seqs.len() >= at_least, "{what}: {} packets", seqs.len());
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1), "{what}: a gap");
    }
}
