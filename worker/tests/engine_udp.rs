//! The media engine with real UDP sockets on loopback: PCMU speech in, Opus out (and back),
//! guarded latching, ports returned, overload refusal.
// Tests stand outside the session: they may read the clock to get a base instant.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_worker::engine::{
    CreateError, Created, Engine, EngineConfig, Reserve, SessionChange,
};
use bridgepool_worker::session::DropReason;
use common::*;

fn engine(port_min: u16, port_max: u16) -> Engine {
    engine_polling(port_min, port_max, false)
}

fn engine_polling(port_min: u16, port_max: u16, busy_poll: bool) -> Engine {
    let (engine, _events) = Engine::start(&EngineConfig {
        cores: vec![0],
        media_ip: "127.0.0.1".parse().unwrap(),
        advertise_ip: None,
        port_min,
        port_max,
        latch_window: Duration::from_secs(2),
        pin: false,
        target_busy: 0.8,
        session_cost: None,
        live_cost: true,
        busy_poll,
    })
    .expect("engine starts");
    engine
}

/// A PCMU-to-Opus session with both peers known, and the two peers' sockets.
async fn answered_call(engine: &Engine) -> (Created, UdpSocket, UdpSocket) {
    let a = peer();
    let b = peer();
    let created = engine
        .create(
            config(Law::Ulaw),
            Some(a.local_addr().unwrap()),
            Some(b.local_addr().unwrap()),
            Reserve::Transcode,
        )
        .await
        .expect("created");
    (created, a, b)
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Sends `packets` paced at 20 ms from `from` to `to`, collecting what `rx` receives meanwhile.
fn exchange(from: &UdpSocket, to: SocketAddr, packets: &[Packet], rx: &UdpSocket) -> Vec<Vec<u8>> {
    rx.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    for p in packets {
        while start.elapsed() < p.send_at {
            while let Ok((n, _)) = rx.recv_from(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        from.send_to(&p.bytes, to).unwrap();
    }
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(300) {
        while let Ok((n, _)) = rx.recv_from(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn pcmu_in_opus_out_over_loopback_and_ports_come_back() {
    let engine = engine(42_000, 42_099);
    let (created, a, b) = answered_call(&engine).await;
    assert_eq!(engine.ports().in_use(), 2);
    let audio = speech_for(4);
    let input = g711_stream(Law::Ulaw, 0, &audio, 20, 0x77, 1, 0);
    let a2 = a.try_clone().unwrap();
    let local_a = created.local_a;
    let got = tokio::task::spawn_blocking(move || exchange(&a2, local_a, &input, &b))
        .await
        .unwrap();
    let rtp: Vec<&Vec<u8>> = got
        .iter()
        .filter(|d| !bridgepool_codecs::rtp::is_rtcp(d))
        .collect();
    assert!(
        rtp.len() >= 195,
        "{} Opus packets for 200 frames",
        rtp.len()
    );
    let sent: Vec<Sent> = rtp
        .iter()
        .map(|bytes| Sent {
            at: Instant::now(),
            leg: bridgepool_worker::session::Leg::B,
            channel: bridgepool_worker::session::Channel::Rtp,
            bytes: bytes.to_vec(),
        })
        .collect();
    let refs: Vec<&Sent> = sent.iter().collect();
    assert_eq!(check_stream_rules(&refs, 111), vec![960]);
    let decoded = decode_opus_output(&refs, 111);
    let sim = similarity(&audio, &decoded);
    assert!(sim.correlation > 0.85, "{sim:?}");

    let stats = engine.delete(created.id).await.expect("final stats");
    assert!(stats.leg_a.packets_in >= 195);
    assert!(
        engine.delete(created.id).await.is_none(),
        "second delete: already gone"
    );
    assert_eq!(engine.ports().in_use(), 0, "ports released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn busy_polling_core_transcodes_and_counts_only_work_as_busy() {
    let engine = engine_polling(42_400, 42_499, true);
    let (created, a, b) = answered_call(&engine).await;
    let audio = speech_for(2);
    let input = g711_stream(Law::Ulaw, 0, &audio, 20, 0x78, 1, 0);
    let local_a = created.local_a;
    let call = tokio::task::spawn_blocking(move || exchange(&a, local_a, &input, &b));
    // Work is counted: while the call runs, some window reads busy.
    let mut working: f64 = 0.0;
    while !call.is_finished() {
        working = working.max(engine.cores()[0].busy);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = call.await.unwrap();
    assert!(working > 0.0, "a transcoding core read busy {working}");
    let opus = got
        .iter()
        .filter(|d| !bridgepool_codecs::rtp::is_rtcp(d))
        .count();
    assert!(opus >= 95, "{opus} Opus packets for 100 frames");
    engine.delete(created.id).await.expect("deleted");
    // The thread spins through the next windows with nothing to do: that is idle, not load (if
    // empty turns counted, the core would read 20 % busy or more here, every turn's bookkeeping).
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let core = &engine.cores()[0];
    assert!(
        core.busy < 0.05,
        "idle spinning core reads busy {}",
        core.busy
    );
    assert!(core.headroom > 0, "{core:?}");
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn foreign_sources_are_dropped_and_counted() {
    let engine = engine(42_100, 42_199);
    let a = peer();
    let intruder = peer();
    let created = engine
        .create(
            config(Law::Ulaw),
            Some(a.local_addr().unwrap()),
            None,
            Reserve::Transcode,
        )
        .await
        .unwrap();
    let audio = speech_for(1);
    for p in g711_stream(Law::Ulaw, 0, &audio, 20, 5, 1, 0)
        .iter()
        .take(10)
    {
        intruder.send_to(&p.bytes, created.local_a).unwrap();
        a.send_to(&p.bytes, created.local_a).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let snap = engine.query(created.id).await.unwrap();
    assert_eq!(snap.leg_a.drops.get(DropReason::ForeignSource), 10);
    assert_eq!(snap.leg_a.packets_in, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn unknown_peer_latches_first_source_then_update_moves_it() {
    let engine = engine(42_200, 42_299);
    let first = peer();
    let second = peer();
    let created = engine
        .create(config(Law::Ulaw), None, None, Reserve::Transcode)
        .await
        .unwrap();
    let audio = speech_for(1);
    let packets = g711_stream(Law::Ulaw, 0, &audio, 20, 5, 1, 0);
    first.send_to(&packets[0].bytes, created.local_a).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    second.send_to(&packets[1].bytes, created.local_a).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap = engine.query(created.id).await.unwrap();
    assert_eq!(snap.leg_a.packets_in, 1);
    assert_eq!(snap.leg_a.drops.get(DropReason::ForeignSource), 1);
    // Signalling names the second peer: it is accepted from now on.
    let change = SessionChange {
        remote_a: Some(Some(second.local_addr().unwrap())),
        ..SessionChange::default()
    };
    engine.update(created.id, change).await.unwrap().unwrap();
    second.send_to(&packets[2].bytes, created.local_a).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(engine.query(created.id).await.unwrap().leg_a.packets_in, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn exhausted_ports_are_refused_clearly() {
    let engine = engine(42_300, 42_304);
    let _one = engine
        .create(config(Law::Ulaw), None, None, Reserve::Transcode)
        .await
        .unwrap();
    match engine
        .create(config(Law::Ulaw), None, None, Reserve::Transcode)
        .await
    {
        Err(CreateError::Ports(e)) => assert!(e.to_string().contains("no free RTP/RTCP port pair")),
        other => panic!("expected a port refusal, got {other:?}"),
    }
    assert_eq!(
        engine.ports().in_use(),
        2,
        "the half-allocated pair went back"
    );
}
