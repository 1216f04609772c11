//! ng `transform` round trip against a real scheduler process with the ng server on, and a
//! simulated fleet of 100 workers (in-process gRPC Worker servers answering CreateJob/DeleteJob at
//! once): the relay gives up after 50 ms and transcodes itself, so the pool must answer well
//! inside that at the rate a relay tier sets calls up.
//!
//! Run (scheduler pinned to core 0, this process to core 1):
//!   cargo build --release -p bridgepool-scheduler
//!   taskset -c 0 target/release/bridgepool-scheduler --grpc-listen 127.0.0.1:50151 \
//!       --ng-listen 127.0.0.1:22222 --metrics-listen 127.0.0.1:9191 --log warn &
//!   taskset -c 1 cargo bench -p bridgepool-scheduler --bench transform -- \
//!       127.0.0.1:50151[,SECOND_GRPC] 127.0.0.1:22222 500 10000 [SECOND_NG]
//!
//! Open loop: request n is sent at n / rate seconds, each followed by its `delete`. With a second
//! replica's ng address the deletes go there: that replica never placed the job and has to find it.
#![allow(clippy::disallowed_methods)]

mod fleet;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridgepool_ng::{CodecPair, CodecSpec, Dict, TransformMedia, TransformRequest, client};
use fleet::Percentiles;
use tokio::net::UdpSocket;

const WORKERS: usize = 100;
/// Open-loop senders, each with its own socket (a relay tier is many relays).
const SENDERS: usize = 32;
/// A reply later than this is counted lost (the relay's own 50 ms, with room to see the tail).
const GIVE_UP: Duration = Duration::from_millis(500);

fn spec(codec: &str, payload_type: u8, clock_rate: u32, channels: u8, format: &str) -> CodecSpec {
    CodecSpec {
        codec: codec.into(),
        payload_type,
        clock_rate,
        channels,
        format: format.into(),
        options: String::new(),
    }
}

/// A PCMU -> Opus request shaped like the relay's, named like the relay names them.
fn request(n: usize) -> TransformRequest {
    TransformRequest {
        call_id: Some(format!("{n:08x} for bench-{n}")),
        from_tag: Some(format!("{n:08x} for tag-{n}")),
        media: vec![TransformMedia {
            id: None,
            media_type: "audio".into(),
            codecs: vec![CodecPair {
                input: spec("PCMU", 0, 8000, 1, ""),
                output: spec("opus", 96, 48_000, 2, "useinbandfec=1"),
            }],
            destination: "127.0.0.1:40000".parse().expect("addr"),
        }],
        interface: None,
        instance: Some("bench-relay".into()),
        jitter_buffer: None,
    }
}

/// Sends one request and waits for its reply; the round trip, or `None` when lost or refused.
async fn ask(socket: &UdpSocket, to: SocketAddr, cookie: &str, body: &Dict) -> Option<Duration> {
    let datagram = client::frame(cookie, body);
    let mut buf = vec![0u8; 65_536];
    let t0 = Instant::now();
    socket.send_to(&datagram, to).await.ok()?;
    loop {
        let (n, _) = tokio::time::timeout(
            GIVE_UP.saturating_sub(t0.elapsed()),
            socket.recv_from(&mut buf),
        )
        .await
        .ok()?
        .ok()?;
        match client::parse_reply(&buf[..n], cookie) {
            // A delete that found nothing is `ok` with a warning: not a success here.
            Ok(body) if body.get("warning").is_some() => {
                eprintln!("{cookie}: {:?}", body.str("warning"));
                return None;
            }
            Ok(_) => return Some(t0.elapsed()),
            // A late reply to an earlier request of this socket: keep waiting for ours.
            Err(client::ReplyError::CookieMismatch { .. }) => continue,
            Err(e) => {
                eprintln!("{cookie}: {e}");
                return None;
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let arg = |i: usize, default: &str| args.get(i).map_or(default.to_owned(), Clone::clone);
    // The replicas' gRPC addresses, comma separated: the fleet registers with each.
    let grpc: Vec<SocketAddr> = arg(0, "127.0.0.1:50151")
        .split(',')
        .map(|a| a.parse().expect("scheduler gRPC address"))
        .collect();
    let ng: SocketAddr = arg(1, "127.0.0.1:22222").parse().expect("ng address");
    let rate: f64 = arg(2, "500").parse().expect("rate");
    let calls: usize = arg(3, "10000").parse().expect("calls");
    let delete_at: SocketAddr = args
        .get(4)
        .map_or(ng, |a| a.parse().expect("second ng address"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let registered = fleet::spawn(&grpc, WORKERS).await;
        let transforms = Arc::new(Mutex::new(Vec::with_capacity(calls)));
        let deletes = Arc::new(Mutex::new(Vec::with_capacity(calls)));
        let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..SENDERS {
            let (transforms, deletes, lost) = (transforms.clone(), deletes.clone(), lost.clone());
            tasks.push(tokio::spawn(async move {
                let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                for n in (t..calls).step_by(SENDERS) {
                    let due = started + Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let req = request(n);
                    let Some(took) = ask(&socket, ng, &format!("t{n}"), &req.to_body()).await else {
                        lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    };
                    transforms.lock().expect("lock").push(took);
                    let delete = client::delete(
                        req.call_id.as_deref().unwrap_or_default(),
                        req.from_tag.as_deref().unwrap_or_default(),
                    );
                    match ask(&socket, delete_at, &format!("d{n}"), &delete).await {
                        Some(took) => deletes.lock().expect("lock").push(took),
                        None => {
                            lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("sender");
        }
        let took = started.elapsed().as_secs_f64();
        let transforms = transforms.lock().expect("lock").clone();
        let deletes = deletes.lock().expect("lock").clone();
        let lost = lost.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{calls} transforms offered at {rate:.0}/s to {registered} workers, achieved {:.0}/s, {lost} lost or refused",
            calls as f64 / took
        );
        if !transforms.is_empty() {
            println!("  transform {}", Percentiles::of(transforms));
        }
        if !deletes.is_empty() {
            let via = if delete_at == ng { "same replica" } else { "other replica" };
            println!("  delete ({via}) {}", Percentiles::of(deletes));
        }
    });
}
