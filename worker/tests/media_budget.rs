//! The per-leg media budget on the real worker binary over real UDP (issue 15, item 5): one
//! call's latched peer floods its port with valid RTP at ten times the packet rate; the other
//! calls on the same core lose nothing, and the flood beyond the budget is dropped before
//! decoding and counted (`reason="over_budget"`) against that call alone. Waits are bounded
//! polls for a state, never timed assertions.

// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_proto::v1;
use common::*;

mod proc;
use proc::{assert_opus_whole, client, local, request, scrape};

/// Seconds of talk.
const SECONDS: usize = 4;
/// Packets each neighbour sends (20 ms each).
const PACKETS: usize = SECONDS * 50;
/// The flooder's packets per neighbour packet.
const FLOOD: usize = 10;
/// What the budget lets through in `elapsed`: three times the 20 ms rate plus a 75-packet burst,
/// with a little room for timing between this process and the worker's clock.
fn allowed(elapsed: Duration) -> u64 {
    (elapsed.as_secs_f64() * 150.0) as u64 + 75 + 20
}

struct Call {
    id: String,
    peer_a: UdpSocket,
    peer_b: UdpSocket,
    local_a: SocketAddr,
}

/// Both legs' figures of a session.
async fn legs(c: &mut WorkerClient, id: &str) -> (v1::LegStats, v1::LegStats) {
    let s = c
        .get_session(v1::GetSessionRequest {
            session_id: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    (s.leg_a.unwrap(), s.leg_b.unwrap())
}

type WorkerClient = bridgepool_proto::v1::worker_client::WorkerClient<tonic::transport::Channel>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_costs_its_own_call_only() {
    let w = proc::spawn(
        47_800,
        100,
        "w-flood",
        &["--session-cost", "0.05", "--live-cost", "false"],
        &[],
    );
    let mut c = client(&w).await;
    let mut calls = Vec::new();
    for i in 0..3 {
        let peer_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer_b.set_nonblocking(true).unwrap();
        let r = c
            .create_session(request(
                &format!("call-{i}"),
                Some(peer_a.local_addr().unwrap()),
                Some(peer_b.local_addr().unwrap()),
            ))
            .await
            .unwrap()
            .into_inner();
        calls.push(Call {
            id: r.session_id,
            peer_a,
            peer_b,
            local_a: local(&r.leg_a_local),
        });
    }
    let victim = 1;

    // Every 2 ms the victim's own peer sends the next packet of a valid stream (fresh sequence
    // numbers and timestamps, real speech: each would be decoded); every 20 ms the neighbours
    // send theirs.
    let speech = speech_for(SECONDS * FLOOD);
    let flood = g711_stream(Law::Ulaw, 0, &speech, 20, 0xf100d, 1, 160);
    let normal = g711_stream(Law::Ulaw, 0, &speech_for(SECONDS), 20, 0x1111, 1, 160);
    assert_eq!(flood.len(), PACKETS * FLOOD);
    let start = Instant::now();
    for (i, p) in flood.iter().enumerate() {
        let at = Duration::from_micros(2_000 * i as u64);
        while start.elapsed() < at {
            std::thread::sleep(Duration::from_micros(500));
        }
        let v = &calls[victim];
        v.peer_a.send_to(&p.bytes, v.local_a).unwrap();
        if i % FLOOD == 0 {
            for (n, call) in calls.iter().enumerate() {
                if n != victim {
                    call.peer_a
                        .send_to(&normal[i / FLOOD].bytes, call.local_a)
                        .unwrap();
                }
            }
        }
    }
    // How long the flood really lasted (a loaded runner's pacing slips).
    let flood_lasted = start.elapsed();

    // The neighbours: every packet received and used, every output packet in sequence.
    for n in [0, 2] {
        let call = &calls[n];
        let deadline = Instant::now() + Duration::from_secs(10);
        let (a, _) = loop {
            let s = legs(&mut c, &call.id).await;
            if s.0.packets_in >= PACKETS as u64 || Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(a.packets_in, PACKETS as u64, "call {n}: {a:?}");
        assert_eq!(a.packets_dropped, 0, "call {n}: {a:?}");
        assert_eq!(a.packets_lost, 0, "call {n}: {a:?}");
        assert_opus_whole(&call.peer_b, PACKETS - 5, &format!("call {n}"));
    }

    // The victim: held to its budget, the rest dropped and counted against it; not cut off.
    // Judged on what the worker read (a loaded runner's socket buffer may overflow first).
    let sent = (PACKETS * FLOOD) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_read = u64::MAX;
    let (over, a) = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let over = scrape(
            &w,
            "bridgepool_worker_packets_dropped_total{reason=\"over_budget\"}",
        )
        .await as u64;
        let (a, _) = legs(&mut c, &calls[victim].id).await;
        let read = a.packets_in + a.packets_dropped;
        if read >= sent || read == last_read || Instant::now() > deadline {
            break (over, a);
        }
        last_read = read;
    };
    let read = a.packets_in + a.packets_dropped;
    let allowed = allowed(flood_lasted);
    assert!(
        read >= sent / 2,
        "the worker read {read} of {sent}: the flood did not reach it"
    );
    assert!(
        over + allowed >= read,
        "{over} of {read} read over budget ({allowed} allowed)"
    );
    assert!(
        a.packets_dropped >= over,
        "the victim's own stats hold its drops: {a:?}"
    );
    assert!(
        a.packets_in >= (SECONDS * 100) as u64,
        "the flooded call still carries media: {a:?}"
    );
    assert!(a.packets_in <= allowed, "{allowed} allowed: {a:?}");
    println!(
        "FIGURE flood: {sent} packets in {SECONDS} s from the latched peer, {} accepted, {over} \
         dropped over budget; neighbours lost 0 of {}",
        a.packets_in,
        2 * PACKETS
    );
}
