//! The worker as a real process: gRPC on loopback, RTP over real UDP sockets. Speech in both
//! directions, re-INVITE, idempotent delete with ports returned, timeout events, overload refusal
//! without loss on admitted calls, and drain to exit 0.

// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_proto::v1;
use bridgepool_worker::session::{Channel, Leg};
use common::*;

mod proc;
use proc::{WorkerProcess, client, local, request, scrape};

fn start_worker(rtp_base: u16, extra: &[&str]) -> WorkerProcess {
    proc::spawn(rtp_base, 200, "w-test", extra, &[])
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Plays `a_packets` from `a` to `to_a` and `b_packets` from `b` to `to_b`, paced in real time,
/// and returns the RTP each peer received.
fn play_both_ways(
    a: &UdpSocket,
    to_a: SocketAddr,
    a_packets: &[Packet],
    b: &UdpSocket,
    to_b: SocketAddr,
    b_packets: &[Packet],
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let start = Instant::now();
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 1500];
    let mut drain = |got_a: &mut Vec<Vec<u8>>, got_b: &mut Vec<Vec<u8>>| {
        while let Ok((n, _)) = a.recv_from(&mut buf) {
            if !bridgepool_codecs::rtp::is_rtcp(&buf[..n]) {
                got_a.push(buf[..n].to_vec());
            }
        }
        while let Ok((n, _)) = b.recv_from(&mut buf) {
            if !bridgepool_codecs::rtp::is_rtcp(&buf[..n]) {
                got_b.push(buf[..n].to_vec());
            }
        }
    };
    let mut events: Vec<(Duration, bool, &[u8])> = a_packets
        .iter()
        .map(|p| (p.send_at, true, &p.bytes[..]))
        .chain(b_packets.iter().map(|p| (p.send_at, false, &p.bytes[..])))
        .collect();
    events.sort_by_key(|e| e.0);
    for (at, is_a, bytes) in events {
        while start.elapsed() < at {
            drain(&mut got_a, &mut got_b);
            std::thread::sleep(Duration::from_millis(1));
        }
        if is_a {
            a.send_to(bytes, to_a).unwrap();
        } else {
            b.send_to(bytes, to_b).unwrap();
        }
    }
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(400) {
        drain(&mut got_a, &mut got_b);
        std::thread::sleep(Duration::from_millis(2));
    }
    (got_a, got_b)
}

fn as_sent(leg: Leg, packets: &[Vec<u8>]) -> Vec<Sent> {
    packets
        .iter()
        .map(|bytes| Sent {
            at: Instant::now(),
            leg,
            channel: Channel::Rtp,
            bytes: bytes.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_both_ways_reinvite_and_idempotent_delete() {
    let w = start_worker(43_000, &[]);
    let mut c = client(&w).await;
    let (a, b) = (peer(), peer());
    let created = c
        .create_session(request(
            "call-1",
            Some(a.local_addr().unwrap()),
            Some(b.local_addr().unwrap()),
        ))
        .await
        .expect("created")
        .into_inner();
    let (to_a, to_b) = (local(&created.leg_a_local), local(&created.leg_b_local));
    assert_eq!(to_a.port() % 2, 0, "RTP on an even port");
    assert_eq!(scrape(&w, "bridgepool_worker_ports_in_use").await, 2.0);

    let audio = speech_for(6);
    let pcmu = g711_stream(Law::Ulaw, 0, &audio, 20, 0x1111, 7, 0);
    let opus = OpusPeer {
        fec: true,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    }
    .stream(111, &audio, 0x2222, 9, 0);
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (got_a, got_b) =
        tokio::task::spawn_blocking(move || play_both_ways(&a2, to_a, &pcmu, &b2, to_b, &opus))
            .await
            .unwrap();

    // Leg B hears Opus at 48 kHz that decodes to the speech leg A sent.
    let sent_b = as_sent(Leg::B, &got_b);
    let refs_b: Vec<&Sent> = sent_b.iter().collect();
    assert!(refs_b.len() >= 290, "{} Opus packets", refs_b.len());
    assert_eq!(check_stream_rules(&refs_b, 111), vec![960]);
    let sim = similarity(&audio, &decode_opus_output(&refs_b, 111));
    assert!(sim.correlation > 0.85, "A->B {sim:?}");
    // Leg A hears PCMU that decodes to the speech leg B sent.
    let sent_a = as_sent(Leg::A, &got_a);
    let refs_a: Vec<&Sent> = sent_a.iter().collect();
    assert_eq!(check_stream_rules(&refs_a, 0), vec![160]);
    let sim = similarity(&audio, &decode_g711_output(&refs_a, Law::Ulaw, 0));
    assert!(sim.correlation > 0.85, "B->A {sim:?}");

    // re-INVITE: the Opus side now wants 40 ms packets.
    let mut update = request("call-1", None, None);
    if let Some(leg_b) = update.leg_b.as_mut() {
        leg_b.ptime_ms = 40;
    }
    update.leg_a = None;
    c.update_session(v1::UpdateSessionRequest {
        session_id: created.session_id.clone(),
        leg_a: None,
        leg_b: update.leg_b,
        ..Default::default()
    })
    .await
    .expect("update");
    let more = g711_stream(Law::Ulaw, 0, &audio[..16_000], 20, 0x1111, 307, 48_000);
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (_, got_b) =
        tokio::task::spawn_blocking(move || play_both_ways(&a2, to_a, &more, &b2, to_b, &[]))
            .await
            .unwrap();
    let sent_b = as_sent(Leg::B, &got_b);
    let steps: Vec<u32> = sent_b
        .windows(2)
        .map(|w| w[1].rtp().timestamp().wrapping_sub(w[0].rtp().timestamp()))
        .collect();
    assert!(
        steps.len() >= 40 && steps.iter().all(|s| *s == 1920),
        "{steps:?}"
    );

    // Delete returns final stats; a second delete is harmless; the ports are back.
    let first = c
        .delete_session(v1::DeleteSessionRequest {
            session_id: created.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.already_deleted);
    let leg_a = first.leg_a.unwrap();
    assert!(leg_a.packets_in >= 390, "{leg_a:?}");
    assert!(leg_a.mos > 4.0, "{leg_a:?}");
    let again = c
        .delete_session(v1::DeleteSessionRequest {
            session_id: created.session_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_deleted);
    assert_eq!(scrape(&w, "bridgepool_worker_ports_in_use").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_session_times_out_with_an_event() {
    let w = start_worker(43_200, &["--session-timeout", "1s"]);
    let mut c = client(&w).await;
    let mut events = c
        .watch_events(v1::WatchEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let (a, b) = (peer(), peer());
    let created = c
        .create_session(request(
            "call-quiet",
            Some(a.local_addr().unwrap()),
            Some(b.local_addr().unwrap()),
        ))
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("an event in time")
        .unwrap()
        .expect("stream open");
    assert_eq!(event.kind, v1::EventKind::SessionTimeout as i32);
    assert_eq!(event.call_id, "call-quiet");
    assert!(event.session_id.ends_with(&created.session_id));
    let gone = c
        .get_session(v1::GetSessionRequest {
            session_id: created.session_id,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_and_admitted_calls_lose_nothing() {
    // A low admission ceiling makes the measured capacity a handful of sessions on one core.
    let w = start_worker(43_400, &["--admission-busy", "0.02"]);
    let mut c = client(&w).await;
    let stats = c
        .get_stats(v1::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let capacity = stats.capacity_sessions as usize;
    assert!(capacity >= 1, "{stats:?}");
    let mut admitted = Vec::new();
    let mut refused = 0;
    for i in 0..capacity * 2 + 2 {
        let (a, b) = (peer(), peer());
        match c
            .create_session(request(
                &format!("call-{i}"),
                Some(a.local_addr().unwrap()),
                Some(b.local_addr().unwrap()),
            ))
            .await
        {
            Ok(r) => admitted.push((a, b, r.into_inner())),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
                assert!(
                    status.message().contains("headroom"),
                    "{}",
                    status.message()
                );
                refused += 1;
            }
        }
    }
    assert_eq!(
        admitted.len(),
        capacity,
        "admits exactly its measured capacity"
    );
    assert!(
        refused >= capacity,
        "twice the capacity offered, the rest refused"
    );
    // Every admitted call carries media without loss.
    let audio = speech_for(2);
    let handles: Vec<_> = admitted
        .into_iter()
        .enumerate()
        .map(|(i, (a, _b, created))| {
            let to_a = local(&created.leg_a_local);
            let packets = g711_stream(Law::Ulaw, 0, &audio, 20, 100 + i as u32, 1, 0);
            std::thread::spawn(move || {
                let start = Instant::now();
                for p in &packets {
                    while start.elapsed() < p.send_at {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    a.send_to(&p.bytes, to_a).unwrap();
                }
                (created.session_id, packets.len())
            })
        })
        .collect();
    let sent: Vec<(String, usize)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (id, count) in sent {
        let s = c
            .get_session(v1::GetSessionRequest { session_id: id })
            .await
            .unwrap()
            .into_inner();
        let leg_a = s.leg_a.unwrap();
        assert_eq!(leg_a.packets_in, count as u64, "{leg_a:?}");
        assert_eq!(leg_a.packets_lost, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_new_sessions_then_exits_zero() {
    let mut w = start_worker(43_600, &["--drain-deadline", "1s"]);
    let mut c = client(&w).await;
    // A scheduler holds an event stream open for as long as the worker lives: the drain must
    // end it, not wait on it.
    let mut events = c
        .watch_events(v1::WatchEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let (a, b) = (peer(), peer());
    let _live = c
        .create_session(request(
            "call-live",
            Some(a.local_addr().unwrap()),
            Some(b.local_addr().unwrap()),
        ))
        .await
        .unwrap();
    let drain = c
        .drain(v1::DrainRequest {
            deadline_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(drain.live_sessions, 1);
    let refused = c
        .create_session(request("call-new", None, None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(
        c.get_stats(v1::GetStatsRequest {})
            .await
            .unwrap()
            .into_inner()
            .draining
    );
    // The live call runs to the 1 s deadline; then the process exits on its own, with 0.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "worker did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let mut kinds = Vec::new();
    while let Ok(Some(event)) = events.message().await {
        kinds.push(event.kind);
    }
    assert_eq!(
        kinds,
        vec![v1::EventKind::DrainDeadline as i32],
        "the deadline's event arrives, then the stream ends"
    );
}
