//! Memory per session: resident set growth of a running engine while it holds 200 sessions
//! (sockets bound, codecs allocated, after one second of media on each), divided by 200.
//! Run: `cargo bench -p bridgepool-worker --bench memory`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::UdpSocket;
use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::rtp::RtpHeader;
use bridgepool_worker::engine::{Engine, EngineConfig, Reserve};
use bridgepool_worker::session::{SessionConfig, StreamSeed};

const SESSIONS: usize = 200;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("rss");
    pages * 4
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (engine, _events) = Engine::start(&EngineConfig {
            cores: vec![0],
            media_ip: "127.0.0.1".parse().expect("ip"),
            advertise_ip: None,
            port_min: 44_000,
            port_max: 44_999,
            latch_window: Duration::from_secs(3),
            pin: false,
            target_busy: 0.95,
            session_cost: None,
            live_cost: true,
            busy_poll: false,
        })
        .expect("engine");
        let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib();
        let seed = StreamSeed {
            ssrc: 1,
            sequence: 1,
            timestamp: 1,
        };
        let mut locals = Vec::new();
        for _ in 0..SESSIONS {
            let created = engine
                .create(
                    SessionConfig::new(Law::Ulaw, seed, seed),
                    Some(peer.local_addr().expect("addr")),
                    None,
                    Reserve::Transcode,
                )
                .await
                .expect("create");
            locals.push(created.local_a);
        }
        // One second of PCMU into every session so codec state and buffers are touched.
        let mut p = vec![0u8; 172];
        for i in 0..50u16 {
            RtpHeader {
                marker: i == 0,
                payload_type: 0,
                sequence_number: i,
                timestamp: u32::from(i) * 160,
                ssrc: 5,
            }
            .write(&mut p)
            .expect("header");
            for to in &locals {
                let _ = peer.send_to(&p, to);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = rss_kib();
        let per = (after.saturating_sub(before)) as f64 / SESSIONS as f64;
        println!(
            "memory: {SESSIONS} sessions, RSS {before} KiB -> {after} KiB: {per:.1} KiB per session"
        );
        engine.shutdown();
    });
}
