//! Panic isolation on the real worker binary over real UDP and gRPC (issue 15): a panic while a
//! media core handles one session's (or one-way job's) datagram removes that session only (its
//! ports freed, a SESSION_FAILED event, `bridgepool_worker_session_panics_total`), and the other
//! sessions on the same core lose no packet. The panic is injected with the debug-only test hook
//! (`BRIDGEPOOL_TEST_PANIC_HOOK` set at start, then an RTP payload starting with
//! `BRIDGEPOOL-TEST-PANIC`). Waits are bounded polls for a state, never timed assertions.

// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::rtp::{RtpHeader, RtpPacket};
use bridgepool_proto::v1;
use common::*;
use tonic::Code;

mod proc;
use proc::{WorkerProcess, addr, assert_opus_whole, client, local, scrape};

const PANIC_PAYLOAD: &[u8] = b"BRIDGEPOOL-TEST-PANIC";
/// Packets each talker sends; the panic goes in after half of them.
const PACKETS: usize = 100;

fn start_worker(rtp_base: u16) -> WorkerProcess {
    proc::spawn(
        rtp_base,
        100,
        "w-panic",
        &["--session-cost", "0.05", "--live-cost", "false"],
        &[("BRIDGEPOOL_TEST_PANIC_HOOK", "1")],
    )
}

fn request(call: &str, a: SocketAddr, b: SocketAddr) -> v1::CreateSessionRequest {
    v1::CreateSessionRequest {
        call_id: call.to_owned(),
        leg_a: Some(v1::G711Leg {
            law: v1::G711Law::Pcmu as i32,
            payload_type: 0,
            telephone_event_pt: 101,
            ptime_ms: 20,
            remote: Some(addr(a)),
            direction: v1::Direction::Sendrecv as i32,
        }),
        leg_b: Some(v1::OpusLeg {
            payload_type: 111,
            telephone_event_pt: 110,
            ptime_ms: 20,
            remote: Some(addr(b)),
            direction: v1::Direction::Sendrecv as i32,
            opus: Some(v1::OpusParams::default()),
        }),
        ..Default::default()
    }
}

/// An RTP packet carrying the test hook's payload.
fn poison(pt: u8, seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 12 + 160];
    RtpHeader {
        marker: false,
        payload_type: pt,
        sequence_number: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: 0x5151,
    }
    .write(&mut buf)
    .unwrap();
    buf[12..12 + PANIC_PAYLOAD.len()].copy_from_slice(PANIC_PAYLOAD);
    buf
}

/// Whether every port of `ports` can be bound again: the worker closed its sockets.
fn ports_free(ports: &[u16]) -> bool {
    ports
        .iter()
        .all(|p| UdpSocket::bind(("127.0.0.1", *p)).is_ok())
}

struct Call {
    id: String,
    peer_a: UdpSocket,
    peer_b: UdpSocket,
    local_a: SocketAddr,
    local_b: SocketAddr,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_removes_one_session_and_its_neighbours_lose_nothing() {
    let w = start_worker(47_400);
    let mut c = client(&w).await;
    let mut events = c
        .watch_events(v1::WatchEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut calls = Vec::new();
    for i in 0..3 {
        let peer_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer_b.set_nonblocking(true).unwrap();
        let r = c
            .create_session(request(
                &format!("call-{i}"),
                peer_a.local_addr().unwrap(),
                peer_b.local_addr().unwrap(),
            ))
            .await
            .unwrap()
            .into_inner();
        calls.push(Call {
            id: r.session_id,
            peer_a,
            peer_b,
            local_a: local(&r.leg_a_local),
            local_b: local(&r.leg_b_local),
        });
    }
    let victim = 1;

    // All three talk, paced; half way the victim's own (latched) peer sends the poison.
    let stream = g711_stream(Law::Ulaw, 0, &speech_for(2), 20, 0x1111, 1, 160);
    assert_eq!(stream.len(), PACKETS);
    let start = Instant::now();
    for (i, p) in stream.iter().enumerate() {
        while start.elapsed() < p.send_at {
            std::thread::sleep(Duration::from_millis(1));
        }
        if i == PACKETS / 2 {
            let v = &calls[victim];
            v.peer_a.send_to(&poison(0, 500), v.local_a).unwrap();
        }
        for (n, call) in calls.iter().enumerate() {
            if n == victim && i >= PACKETS / 2 {
                continue;
            }
            call.peer_a.send_to(&p.bytes, call.local_a).unwrap();
        }
    }

    // The victim: a SESSION_FAILED event, gone from the worker, its four ports free.
    let event = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("an event")
        .unwrap()
        .expect("stream open");
    assert_eq!(event.kind, v1::EventKind::SessionFailed as i32, "{event:?}");
    assert_eq!(event.session_id, format!("w-panic/{}", calls[victim].id));
    assert_eq!(event.call_id, "call-1");
    let gone = c
        .get_session(v1::GetSessionRequest {
            session_id: calls[victim].id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let (a, b) = (calls[victim].local_a.port(), calls[victim].local_b.port());
    assert!(
        ports_free(&[a, a + 1, b, b + 1]),
        "the victim's ports are free"
    );
    assert_eq!(
        scrape(&w, "bridgepool_worker_session_panics_total").await,
        1.0
    );

    // The neighbours: every packet received and used, every output packet in sequence.
    for n in [0, 2] {
        let call = &calls[n];
        let deadline = Instant::now() + Duration::from_secs(10);
        let stats = loop {
            let s = c
                .get_session(v1::GetSessionRequest {
                    session_id: call.id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            let a = s.leg_a.unwrap();
            if a.packets_in >= PACKETS as u64 || Instant::now() > deadline {
                break (a, s.leg_b.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(stats.0.packets_in, PACKETS as u64, "call {n}: {stats:?}");
        assert_eq!(stats.0.packets_dropped, 0, "call {n}: {stats:?}");
        assert_eq!(stats.0.packets_lost, 0, "call {n}: {stats:?}");
        // The worker stops sending only when the input stops: what it sent arrived, in order.
        assert_opus_whole(&call.peer_b, PACKETS - 5, &format!("call {n}"));
    }

    // The core still admits: one more session.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    c.create_session(request("call-after", addr, addr))
        .await
        .expect("the core still admits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_removes_one_job_and_frees_its_port() {
    let w = start_worker(47_600);
    let mut c = client(&w).await;
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut locals = Vec::new();
    for call in ["j-victim", "j-other"] {
        let r = c
            .create_job(v1::CreateJobRequest {
                call_id: call.to_owned(),
                from_tag: "t".to_owned(),
                pairs: vec![v1::JobPair {
                    input: Some(v1::Codec {
                        name: "PCMU".to_owned(),
                        payload_type: 0,
                        clock_rate: 8000,
                        channels: 1,
                        ..Default::default()
                    }),
                    output: Some(v1::Codec {
                        name: "PCMA".to_owned(),
                        payload_type: 8,
                        clock_rate: 8000,
                        channels: 1,
                        ..Default::default()
                    }),
                }],
                destination: Some(addr(relay.local_addr().unwrap())),
                jitter: None,
            })
            .await
            .unwrap()
            .into_inner();
        locals.push(local(&r.local));
    }
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    source.send_to(&poison(0, 1), locals[0]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let jobs = loop {
        let jobs = c
            .list_jobs(v1::ListJobsRequest {})
            .await
            .unwrap()
            .into_inner()
            .jobs;
        if jobs.len() < 2 || Instant::now() > deadline {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].call_id, "j-other");
    assert!(ports_free(&[locals[0].port(), locals[0].port() + 1]));
    assert_eq!(
        scrape(&w, "bridgepool_worker_session_panics_total").await,
        1.0
    );
    // The other job still works: PCMU in, PCMA out.
    let stream = g711_stream(Law::Ulaw, 0, &speech_for(1), 20, 0x2222, 1, 160);
    for p in stream.iter().take(5) {
        source.send_to(&p.bytes, locals[1]).unwrap();
    }
    relay
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1500];
    let n = relay.recv(&mut buf).expect("PCMA from the other job");
    assert_eq!(RtpPacket::parse(&buf[..n]).unwrap().payload_type(), 8);
}
