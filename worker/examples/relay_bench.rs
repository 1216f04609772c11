//! Relay cost benchmark (issue 14): what a passthrough call costs a media core against a
//! transcoded one, measured in one run against a running worker with one media core.
//!
//! Phases alternate (transcode, relay, transcode, relay): each sets up its calls (peers known),
//! plays 20 ms packets both ways on every call (PCMU from the gateway side, 48 kHz WebRTC
//! client Opus from the other; a relay forwards the same bytes), waits for the load windows to
//! settle, then measures for `seconds`: the worker's media busy share (its own `/metrics`,
//! datagram and timer work only) and the process's CPU time (`/proc/<pid>/stat`, everything).
//! It prints per phase the calls, the packets per second into the worker (as many leave it), the
//! core share per call, and the packets per second one core could take in at that cost; then
//! the relay over transcode cost ratio per call, from the same run. The media busy share is
//! wall time of work: on a shared host, time the worker was preempted in the middle of work
//! counts in it; process CPU does not.
//!
//! `relay_bench <grpc url> <metrics host:port> <worker pid> [transcode calls] [relay calls] [seconds]`
//!
//! Pin the worker to one core and this load to the other (docs/performance.md, "Passthrough
//! relay cost").

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod load;

use load::{addr, media, metric, request, scrape};

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::rtp::RtpHeader;
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;

/// Time for the worker's one-second load windows to cover nothing but steady media.
const SETTLE: Duration = Duration::from_millis(2_500);

struct Call {
    id: String,
    gateway: UdpSocket,
    client: UdpSocket,
    to_a: SocketAddr,
    to_b: SocketAddr,
}

/// One phase's figures.
struct Figures {
    calls: usize,
    pps: f64,
    media_busy: f64,
    cpu: f64,
}

impl Figures {
    fn per_call(&self) -> (f64, f64) {
        let n = self.calls.max(1) as f64;
        (self.media_busy / n, self.cpu / n)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:50461".into());
    let metrics = args.get(2).cloned().unwrap_or("127.0.0.1:9461".into());
    let pid: u32 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .expect("the worker's pid");
    let transcode_calls: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100);
    let relay_calls: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(300);
    let seconds: f64 = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let mut c = WorkerClient::connect(url).await.expect("worker reachable");
    let (pcmu, opus) = media();
    println!(
        "phase      calls   pkts_in/s  media_busy  process_cpu  core%/call(media)  core%/call(cpu)  pkts/s/core(media)  pkts/s/core(cpu)"
    );
    let mut results: Vec<(v1::SessionMode, Figures)> = Vec::new();
    for round in 0..2 {
        for (mode, n) in [
            (v1::SessionMode::Transcode, transcode_calls),
            (v1::SessionMode::Passthrough, relay_calls),
        ] {
            let calls = setup(&mut c, mode, n, round).await;
            let f = measure(&calls, &metrics, pid, seconds, &pcmu, &opus).await;
            let (media_call, cpu_call) = f.per_call();
            println!(
                "{:<10} {:>5} {:>11.0} {:>11.3} {:>12.3} {:>18.4} {:>16.4} {:>19.0} {:>17.0}",
                if mode == v1::SessionMode::Transcode {
                    "transcode"
                } else {
                    "relay"
                },
                f.calls,
                f.pps,
                f.media_busy,
                f.cpu,
                media_call * 100.0,
                cpu_call * 100.0,
                f.pps / f.media_busy.max(1e-9),
                f.pps / f.cpu.max(1e-9),
            );
            for call in &calls {
                let _ = c
                    .delete_session(v1::DeleteSessionRequest {
                        session_id: call.id.clone(),
                    })
                    .await;
            }
            results.push((mode, f));
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        }
    }
    let mean = |mode: v1::SessionMode, pick: fn(&Figures) -> f64| {
        let v: Vec<f64> = results
            .iter()
            .filter(|(m, _)| *m == mode)
            .map(|(_, f)| pick(f))
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let t = v1::SessionMode::Transcode;
    let r = v1::SessionMode::Passthrough;
    let media_ratio = mean(r, |f| f.per_call().0) / mean(t, |f| f.per_call().0);
    let cpu_ratio = mean(r, |f| f.per_call().1) / mean(t, |f| f.per_call().1);
    println!(
        "relay / transcode cost per call: {:.3} (media busy), {:.3} (process CPU)",
        media_ratio, cpu_ratio
    );
}

async fn setup(
    c: &mut WorkerClient<tonic::transport::Channel>,
    mode: v1::SessionMode,
    n: usize,
    round: usize,
) -> Vec<Call> {
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let gateway = UdpSocket::bind("127.0.0.1:0").expect("socket");
        let client = UdpSocket::bind("127.0.0.1:0").expect("socket");
        gateway.set_nonblocking(true).expect("nonblocking");
        client.set_nonblocking(true).expect("nonblocking");
        let mut req = request(
            &format!("relay-bench-{round}-{i}"),
            gateway.local_addr().expect("addr"),
            client.local_addr().expect("addr"),
        );
        req.mode = mode as i32;
        match c.create_session(req).await {
            Ok(r) => {
                let r = r.into_inner();
                calls.push(Call {
                    id: r.session_id,
                    gateway,
                    client,
                    to_a: addr(&r.leg_a_local),
                    to_b: addr(&r.leg_b_local),
                });
            }
            Err(s) => panic!("create {i} of {n} ({mode:?}) failed: {s:?}"),
        }
    }
    calls
}

/// Plays media on every call for the settle time plus `seconds`, and measures the last part.
async fn measure(
    calls: &[Call],
    metrics: &str,
    pid: u32,
    seconds: f64,
    pcmu: &[Vec<u8>],
    opus: &[Vec<u8>],
) -> Figures {
    let window = Duration::from_secs_f64(seconds);
    let player = {
        // The sockets move to the pacing thread and back.
        let sockets: Vec<(UdpSocket, UdpSocket, SocketAddr, SocketAddr)> = calls
            .iter()
            .map(|c| {
                (
                    c.gateway.try_clone().expect("socket"),
                    c.client.try_clone().expect("socket"),
                    c.to_a,
                    c.to_b,
                )
            })
            .collect();
        let (pcmu, opus) = (pcmu.to_vec(), opus.to_vec());
        tokio::task::spawn_blocking(move || play(&sockets, SETTLE, window, &pcmu, &opus))
    };
    tokio::time::sleep(SETTLE).await;
    let cpu_start = process_cpu(pid);
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(metric(
            &scrape(metrics).await,
            "bridgepool_worker_core_media_busy_ratio",
        ));
    }
    let cpu = (process_cpu(pid) - cpu_start) / started.elapsed().as_secs_f64();
    let sent = player.await.expect("player");
    Figures {
        calls: calls.len(),
        pps: sent as f64 / window.as_secs_f64(),
        media_busy: samples.iter().sum::<f64>() / samples.len().max(1) as f64,
        cpu,
    }
}

/// Paces 20 ms packets both ways on every call from one thread; returns the packets sent during
/// the measured window (after `settle`).
fn play(
    calls: &[(UdpSocket, UdpSocket, SocketAddr, SocketAddr)],
    settle: Duration,
    window: Duration,
    pcmu: &[Vec<u8>],
    opus: &[Vec<u8>],
) -> u64 {
    let start = Instant::now();
    let mut buf = [0u8; 1500];
    let mut sent_in_window = 0u64;
    let mut tick = 0u64;
    loop {
        let at = Duration::from_millis(20 * tick);
        if at >= settle + window {
            return sent_in_window;
        }
        while start.elapsed() < at {
            std::thread::sleep(Duration::from_micros(200));
        }
        for (i, (gateway, client, to_a, to_b)) in calls.iter().enumerate() {
            for leg in 0..2 {
                let (frame, pt, step, socket, to) = if leg == 0 {
                    (&pcmu[tick as usize % pcmu.len()], 0, 160, gateway, to_a)
                } else {
                    (&opus[tick as usize % opus.len()], 111, 960, client, to_b)
                };
                let header = RtpHeader {
                    marker: tick == 0,
                    payload_type: pt,
                    sequence_number: tick as u16,
                    timestamp: (tick * step) as u32,
                    ssrc: 1000 + i as u32 * 2 + leg,
                };
                let Ok(h) = header.write(&mut buf) else {
                    continue;
                };
                buf[h..h + frame.len()].copy_from_slice(frame);
                if socket.send_to(&buf[..h + frame.len()], *to).is_ok() && at >= settle {
                    sent_in_window += 1;
                }
            }
            // What the worker sends back is not this benchmark's business: drop it here so the
            // peers' queues never make the kernel work harder than a real peer's would.
            while gateway.recv_from(&mut buf).is_ok() {}
            while client.recv_from(&mut buf).is_ok() {}
        }
        tick += 1;
    }
}

/// Seconds of CPU the process has used (user + system), from `/proc/<pid>/stat`.
fn process_cpu(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("worker pid");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = text.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    // USER_HZ is 100 on every Linux this runs on.
    ticks / 100.0
}
