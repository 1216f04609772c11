//! Admission as real call arrivals exercise it (issue 12), on the real worker binary over real
//! gRPC and UDP: calls that ring before they talk, bursts of set-ups, and churn. Capacity is made
//! small and exact with `--session-cost` (admission-busy / session-cost sessions on one core) so
//! the assertions are on counts, never on timings.

// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use common::*;
use tonic::transport::Channel as GrpcChannel;

mod proc;
use proc::{WorkerProcess, client, free_port, local, request, scrape};

fn start_worker(rtp_base: u16, ports: u16, extra: &[&str]) -> WorkerProcess {
    proc::spawn(rtp_base, ports, "w-admission", extra, &[])
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

async fn stats(c: &mut WorkerClient<GrpcChannel>) -> v1::WorkerStats {
    c.get_stats(v1::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Sends `packets` from `socket` to `to`, paced in real time; returns how many it sent.
fn pace(socket: &UdpSocket, to: SocketAddr, packets: &[Packet]) -> usize {
    let start = Instant::now();
    let mut buf = [0u8; 1500];
    for p in packets {
        while start.elapsed() < p.send_at {
            // Keep the peer's receive queue short; what comes back is not checked here.
            while socket.recv_from(&mut buf).is_ok() {}
            std::thread::sleep(Duration::from_millis(1));
        }
        socket.send_to(&p.bytes, to).unwrap();
    }
    packets.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_then_talk_admits_only_what_fits_when_all_talk_and_loses_nothing() {
    // 0.8 / 0.1: eight talking sessions fit on the core. The live estimate stays on: ringing
    // sessions must not teach it that sessions are cheap.
    let w = start_worker(45_000, 400, &["--session-cost", "0.1"]);
    let mut c = client(&w).await;
    let capacity = stats(&mut c).await.capacity_sessions as usize;
    assert_eq!(capacity, 8);
    // N = 4x capacity calls set up, peers known, no media yet (ringing).
    let offered = capacity * 4;
    let mut admitted = Vec::new();
    let mut refused = 0;
    let offer = async |c: &mut WorkerClient<GrpcChannel>, i: usize, admitted: &mut Vec<_>| {
        let (a, b) = (peer(), peer());
        let req = request(
            &format!("ring-{i}"),
            Some(a.local_addr().unwrap()),
            Some(b.local_addr().unwrap()),
        );
        match c.create_session(req).await {
            Ok(r) => {
                admitted.push((a, b, r.into_inner()));
                0
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                1
            }
        }
    };
    for i in 0..offered / 2 {
        refused += offer(&mut c, i, &mut admitted).await;
    }
    // Three load windows with a full core of ringing calls: the old model halved its cost
    // estimate here and doubled capacity.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let s = stats(&mut c).await;
    assert_eq!(s.capacity_sessions as usize, capacity, "{s:?}");
    assert_eq!(
        s.headroom_sessions, 0,
        "ringing sessions reserve their cost"
    );
    for i in offered / 2..offered {
        refused += offer(&mut c, i, &mut admitted).await;
    }
    assert_eq!(
        admitted.len(),
        capacity,
        "admits exactly what fits when all talk"
    );
    assert_eq!(refused, offered - capacity);
    assert_eq!(
        scrape(
            &w,
            "bridgepool_worker_sessions_refused_total{reason=\"capacity\"}"
        )
        .await as usize,
        refused
    );

    // Media starts on every admitted call, both ways: G.711 from the gateway, Opus from the
    // client.
    let audio = speech_for(3);
    let opus_peer = OpusPeer {
        fec: true,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    };
    let handles: Vec<_> = admitted
        .into_iter()
        .enumerate()
        .map(|(i, (a, b, created))| {
            let to_a = local(&created.leg_a_local);
            let to_b = local(&created.leg_b_local);
            let g711 = g711_stream(Law::Ulaw, 0, &audio, 20, 100 + i as u32, 1, 0);
            let opus = opus_peer.stream(111, &audio, 200 + i as u32, 1, 0);
            std::thread::spawn(move || {
                let gateway = std::thread::spawn(move || pace(&a, to_a, &g711));
                let sent_b = pace(&b, to_b, &opus);
                let sent_a = gateway.join().unwrap();
                (created.session_id, sent_a as u64, sent_b as u64)
            })
        })
        .collect();
    let sent: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (id, sent_a, sent_b) in sent {
        let s = c
            .get_session(v1::GetSessionRequest { session_id: id })
            .await
            .unwrap()
            .into_inner();
        let (leg_a, leg_b) = (s.leg_a.unwrap(), s.leg_b.unwrap());
        assert_eq!(leg_a.packets_in, sent_a, "{leg_a:?}");
        assert_eq!(leg_b.packets_in, sent_b, "{leg_b:?}");
        assert_eq!(leg_a.packets_lost, 0, "{leg_a:?}");
        assert_eq!(leg_b.packets_lost, 0, "{leg_b:?}");
        assert!(leg_a.packets_out > 0 && leg_b.packets_out > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_allocates_is_refused_only_above_the_measured_capacity() {
    // The real start-up calibration decides capacity here; a ceiling of 300 set-ups would
    // need it above 300 sessions per core.
    let w = start_worker(46_000, 1_400, &["--admission-busy", "0.5"]);
    let mut c = client(&w).await;
    let capacity = stats(&mut c).await.capacity_sessions as usize;
    assert!(capacity >= 1);
    let burst = 300;
    let expected = capacity.min(burst);
    // 300 Allocates at once on an empty worker (no media: they ring).
    let tasks: Vec<_> = (0..burst)
        .map(|i| {
            let mut c = c.clone();
            tokio::spawn(async move {
                c.create_session(request(&format!("burst-{i}"), None, None))
                    .await
                    .map(|_| ())
                    .map_err(|s| s.code())
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(code) => assert_eq!(code, tonic::Code::ResourceExhausted),
        }
    }
    assert_eq!(
        admitted,
        expected,
        "no refusal below capacity {capacity}: {:?}",
        stats(&mut c).await
    );
    // Windows after the burst: the set-up work did not lower capacity.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let s = stats(&mut c).await;
    assert_eq!(s.capacity_sessions as usize, capacity, "{s:?}");
    assert_eq!(s.live_sessions as usize, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_of_set_ups_and_releases_leaves_capacity_where_it_was() {
    // Capacity 40 (0.8 / 0.02), live estimate on; calls come and go in bursts of 15 while some
    // stay up, for six load windows.
    let w = start_worker(48_000, 400, &["--session-cost", "0.02"]);
    let mut c = client(&w).await;
    let capacity = stats(&mut c).await.capacity_sessions;
    assert_eq!(capacity, 40);
    let mut live: Vec<String> = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(6) {
        round += 1;
        for i in 0..15 {
            if (live.len() as u64) < capacity {
                let r = c
                    .create_session(request(&format!("churn-{round}-{i}"), None, None))
                    .await
                    .unwrap_or_else(|s| panic!("refused with {} of {capacity}: {s:?}", live.len()));
                live.push(r.into_inner().session_id);
            }
        }
        for _ in 0..rnd(16) {
            if live.is_empty() {
                break;
            }
            let id = live.swap_remove(rnd(live.len() as u64) as usize);
            c.delete_session(v1::DeleteSessionRequest { session_id: id })
                .await
                .unwrap();
        }
        let s = stats(&mut c).await;
        assert_eq!(s.capacity_sessions, capacity, "round {round}: {s:?}");
        assert_eq!(s.headroom_sessions, capacity - live.len() as u64);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(round >= 10, "{round} rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_worker_says_so_and_runs_on_what_it_has() {
    let allowed = core_affinity::get_core_ids().unwrap_or_default();
    if allowed.len() < 2 || Command::new("taskset").arg("-V").output().is_err() {
        eprintln!("needs two cores and taskset: skipped");
        return;
    }
    let all: Vec<String> = allowed.iter().map(|c| c.id.to_string()).collect();
    let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Asked for every core, confined to one by taskset.
    let child = Command::new("taskset")
        .args(["-c", &all[0], env!("CARGO_BIN_EXE_bridgepool-worker")])
        .args(["--grpc-listen", &grpc.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(["--rtp-port-min", "49000", "--rtp-port-max", "49099"])
        .args(["--cores", &all.join(","), "--worker-id", "w-confined"])
        .args(["--session-cost", "0.1", "--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts");
    let mut w = WorkerProcess {
        child,
        grpc,
        metrics,
    };
    let mut c = client(&w).await;
    let s = stats(&mut c).await;
    assert_eq!(s.cores.len(), 1, "{s:?}");
    assert_eq!(s.cores[0].core.to_string(), all[0]);
    assert_eq!(
        s.capacity_sessions,
        8,
        "one core's capacity, not {}",
        all.len()
    );
    let _ = w.child.kill();
    let out = w.child.wait_with_output_stderr();
    assert!(out.contains("fewer media cores than asked"), "{out}");
}

trait StderrOf {
    fn wait_with_output_stderr(&mut self) -> String;
}

impl StderrOf for Child {
    fn wait_with_output_stderr(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut text = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text
    }
}
