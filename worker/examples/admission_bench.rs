//! Admission benchmark (issue 12), driven by `scripts/bench-admission.sh` against a running
//! worker: offered load ramped in steps up to 2x the worker's capacity, every call ringing a
//! random 0..ring-max seconds before it talks both ways (PCMU from the gateway, 48 kHz WebRTC
//! client Opus from the caller). Per step it reports calls offered, admitted and refused, the
//! packets admitted calls lost, and the media busy share the cost model predicted against what
//! the core measured while every admitted call talked.
//!
//! `admission_bench <grpc url> <metrics host:port> [ring-max s] [talk s] [steps, e.g. 0.5,1,1.5,2]`

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod load;

use load::{addr, media, metric, request, scrape};

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bridgepool_codecs::rtp::RtpHeader;
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;

/// One admitted call as the peers see it.
struct Call {
    id: String,
    gateway: UdpSocket,
    client: UdpSocket,
    to_a: SocketAddr,
    to_b: SocketAddr,
    /// When it stops ringing, from the step's start.
    talk_at: Duration,
    sent: [u64; 2],
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:50461".into());
    let metrics = args.get(2).cloned().unwrap_or("127.0.0.1:9461".into());
    let ring_max: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20.0);
    let talk: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(8.0);
    let steps: Vec<f64> = args
        .get(5)
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or(vec![0.5, 1.0, 1.5, 2.0]);
    let mut c = WorkerClient::connect(url).await.expect("worker reachable");
    let capacity = stats(&mut c).await.capacity_sessions;
    let (pcmu, opus) = media();
    println!(
        "capacity at start: {capacity} sessions; ring 0-{ring_max} s, then {talk} s of talk both ways"
    );
    println!(
        "step  capacity_before  offered  admitted  refused  sent_pkts  lost_pkts  capacity_after  predicted_busy  measured_busy  error"
    );
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for factor in steps {
        // Offered against what the worker says it can carry now (the live estimate moves it).
        let capacity_before = stats(&mut c).await.capacity_sessions;
        let offered = (capacity_before as f64 * factor).round() as usize;
        let mut calls = Vec::new();
        let mut refused = 0;
        for i in 0..offered {
            let gateway = UdpSocket::bind("127.0.0.1:0").expect("socket");
            let client = UdpSocket::bind("127.0.0.1:0").expect("socket");
            match c
                .create_session(request(
                    &format!("bench-{factor}-{i}"),
                    gateway.local_addr().expect("addr"),
                    client.local_addr().expect("addr"),
                ))
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let ring = (seed % 10_000) as f64 / 10_000.0 * ring_max;
                    calls.push(Call {
                        id: r.session_id,
                        gateway,
                        client,
                        to_a: addr(&r.leg_a_local),
                        to_b: addr(&r.leg_b_local),
                        talk_at: Duration::from_secs_f64(ring),
                        sent: [0; 2],
                    });
                }
                Err(s) if s.code() == tonic::Code::ResourceExhausted => refused += 1,
                Err(s) => panic!("create failed: {s:?}"),
            }
        }
        let admitted = calls.len();
        let end = Duration::from_secs_f64(ring_max + talk);
        let all_talking = Duration::from_secs_f64(ring_max + 1.5);
        // Sample predicted and measured busy once a second while every admitted call talks.
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                tokio::time::sleep(all_talking).await;
                let mut samples = Vec::new();
                while sampling.load(Ordering::Relaxed) {
                    let text = scrape(&metrics).await;
                    samples.push((
                        metric(&text, "bridgepool_worker_core_predicted_busy_ratio"),
                        metric(&text, "bridgepool_worker_core_media_busy_ratio"),
                    ));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                samples
            })
        };
        let (pcmu, opus) = (pcmu.clone(), opus.clone());
        let calls = tokio::task::spawn_blocking(move || play(calls, end, &pcmu, &opus))
            .await
            .expect("media thread");
        sampling.store(false, Ordering::Relaxed);
        let samples = sampler.await.expect("sampler");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut sent, mut lost) = (0u64, 0u64);
        for call in &calls {
            let s = c
                .get_session(v1::GetSessionRequest {
                    session_id: call.id.clone(),
                })
                .await
                .expect("session")
                .into_inner();
            let (a, b) = (s.leg_a.unwrap_or_default(), s.leg_b.unwrap_or_default());
            sent += call.sent[0] + call.sent[1];
            // Whatever did not arrive, and every sequence gap the worker saw.
            lost += call.sent[0].saturating_sub(a.packets_in)
                + call.sent[1].saturating_sub(b.packets_in);
            lost += a.packets_lost + b.packets_lost;
        }
        let capacity_after = stats(&mut c).await.capacity_sessions;
        for call in &calls {
            let _ = c
                .delete_session(v1::DeleteSessionRequest {
                    session_id: call.id.clone(),
                })
                .await;
        }
        let n = samples.len().max(1) as f64;
        let predicted = samples.iter().map(|s| s.0).sum::<f64>() / n;
        let measured = samples.iter().map(|s| s.1).sum::<f64>() / n;
        println!(
            "{factor:>4}x {capacity_before:>16} {offered:>8} {admitted:>9} {refused:>8} {sent:>10} {lost:>10} {capacity_after:>15} {predicted:>15.3} {measured:>14.3} {:>+6.1}%",
            if measured > 0.0 {
                (predicted - measured) / measured * 100.0
            } else {
                0.0
            }
        );
        // Let the last window close before the next step.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
}

/// Paces every call's media (after its ring) from one thread until `end`; returns the calls
/// with what each sent.
fn play(mut calls: Vec<Call>, end: Duration, pcmu: &[Vec<u8>], opus: &[Vec<u8>]) -> Vec<Call> {
    let start = Instant::now();
    let mut tick = 0u64;
    let mut buf = [0u8; 1500];
    loop {
        let at = Duration::from_millis(20 * tick);
        if at >= end {
            break;
        }
        while start.elapsed() < at {
            std::thread::sleep(Duration::from_micros(500));
        }
        for (i, call) in calls.iter_mut().enumerate() {
            if at < call.talk_at {
                continue;
            }
            for (leg, frames) in [pcmu, opus].into_iter().enumerate() {
                let n = call.sent[leg];
                let frame = &frames[n as usize % frames.len()];
                let header = RtpHeader {
                    marker: n == 0,
                    payload_type: if leg == 0 { 0 } else { 111 },
                    sequence_number: n as u16,
                    timestamp: (n * if leg == 0 { 160 } else { 960 }) as u32,
                    ssrc: 1000 + i as u32 * 2 + leg as u32,
                };
                let Ok(h) = header.write(&mut buf) else {
                    continue;
                };
                buf[h..h + frame.len()].copy_from_slice(frame);
                let (socket, to) = if leg == 0 {
                    (&call.gateway, call.to_a)
                } else {
                    (&call.client, call.to_b)
                };
                if socket.send_to(&buf[..h + frame.len()], to).is_ok() {
                    call.sent[leg] += 1;
                }
            }
        }
        tick += 1;
    }
    calls
}

async fn stats(c: &mut WorkerClient<tonic::transport::Channel>) -> v1::WorkerStats {
    c.get_stats(v1::GetStatsRequest {})
        .await
        .expect("stats")
        .into_inner()
}
