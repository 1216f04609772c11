//! Passthrough sessions through the real worker process, over gRPC and real UDP: the offer /
//! answer life of a call (create in passthrough that may transcode, FindSessions by call id,
//! the switch to transcoding at the answer, delete with final figures), the guarded latching of
//! a relay, and the admission rules of the reservations (issue 14). Capacity is made exact with
//! `--session-cost` so the assertions are on counts, never on timings.

// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use common::rtp_packet;
use tonic::transport::Channel as GrpcChannel;

mod proc;
use proc::{WorkerProcess, addr, client, local, scrape};

fn start_worker(rtp_base: u16) -> WorkerProcess {
    // 0.8 / 0.1: eight transcoding sessions per core; a relay reserves a quarter of one.
    proc::spawn(
        rtp_base,
        200,
        "w-relay",
        &["--session-cost", "0.1", "--live-cost", "false"],
        &[],
    )
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A call at offer time: passthrough, the offerer's codecs known, the answerer's address not.
fn offer(
    call: &str,
    from_tag: &str,
    a: Option<SocketAddr>,
    b: Option<SocketAddr>,
    may_transcode: bool,
) -> v1::CreateSessionRequest {
    let mut r = proc::request(call, a, b);
    r.mode = v1::SessionMode::Passthrough as i32;
    r.from_tag = from_tag.to_owned();
    r.may_transcode = may_transcode;
    r
}

fn switch(id: &str, mode: v1::SessionMode) -> v1::UpdateSessionRequest {
    v1::UpdateSessionRequest {
        session_id: id.to_owned(),
        mode: Some(mode as i32),
        ..Default::default()
    }
}

/// The next RTCP datagram `socket` receives (RTP skipped).
fn next_rtcp(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    loop {
        let (n, _) = socket.recv_from(&mut buf).expect("a datagram within 5 s");
        if bridgepool_codecs::rtp::is_rtcp(&buf[..n]) {
            return buf[..n].to_vec();
        }
    }
}

/// A peer's receiver report (with its CNAME).
fn receiver_report(ssrc: u32) -> Vec<u8> {
    let mut buf = [0u8; 100];
    let mut n = bridgepool_codecs::rtcp::write_receiver_report(&mut buf, ssrc, &[]).unwrap();
    n += bridgepool_codecs::rtcp::write_sdes_cname(&mut buf[n..], ssrc, b"peer").unwrap();
    buf[..n].to_vec()
}

/// The next RTP datagram `socket` receives (RTCP skipped).
fn next_rtp(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    loop {
        let (n, _) = socket.recv_from(&mut buf).expect("a datagram within 5 s");
        if !bridgepool_codecs::rtp::is_rtcp(&buf[..n]) {
            return buf[..n].to_vec();
        }
    }
}

async fn find(c: &mut WorkerClient<GrpcChannel>, call: &str, from: &str) -> Vec<v1::FoundSession> {
    c.find_sessions(v1::FindSessionsRequest {
        call_id: call.to_owned(),
        from_tag: from.to_owned(),
        without_figures: false,
    })
    .await
    .unwrap()
    .into_inner()
    .sessions
}

async fn headroom(c: &mut WorkerClient<GrpcChannel>) -> u64 {
    c.get_stats(v1::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .headroom_sessions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_relays_then_answer_transcodes_found_by_call_and_deleted_with_figures() {
    let w = start_worker(49_000);
    let mut c = client(&w).await;
    let (a, b, stranger) = (peer(), peer(), peer());
    let created = c
        .create_session(offer(
            "call-14",
            "from-1",
            Some(a.local_addr().unwrap()),
            None,
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        headroom(&mut c).await,
        7,
        "it may transcode: the full cost is held"
    );
    let (to_a, to_b) = (local(&created.leg_a_local), local(&created.leg_b_local));

    // The answerer is known: its address comes in an update that keeps the mode.
    c.update_session(v1::UpdateSessionRequest {
        session_id: created.session_id.clone(),
        leg_b: Some(v1::OpusLeg {
            remote: Some(addr(b.local_addr().unwrap())),
            ..Default::default()
        }),
        to_tag: "to-1".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // Relayed verbatim both ways: here both ends speak Opus (payload type 111).
    for seq in 0..20u16 {
        let from_a = rtp_packet(
            111,
            seq,
            960 * u32::from(seq),
            0xAAAA,
            false,
            &[seq as u8; 70],
        );
        a.send_to(&from_a, to_a).unwrap();
        assert_eq!(next_rtp(&b), from_a);
        let from_b = rtp_packet(111, 50 + seq, 960 * u32::from(seq), 0xBBBB, false, &[9; 80]);
        b.send_to(&from_b, to_b).unwrap();
        assert_eq!(next_rtp(&a), from_b);
    }
    // RTCP too, here multiplexed on the RTP ports (RFC 5761): B's report goes to A's RTCP
    // address (port + 1, nobody there), then A's, sent on its RTP port, reaches B on its RTP
    // port, where B multiplexes.
    b.send_to(&receiver_report(0xBBBB), to_b).unwrap();
    let rr = receiver_report(0xAAAA);
    a.send_to(&rr, to_a).unwrap();
    assert_eq!(next_rtcp(&b), rr);

    // Guarded latching: a third party's packet to leg A is not relayed; the next one from the
    // peer is what B gets.
    let bleed = rtp_packet(111, 20, 960 * 20, 0xEEEE, false, &[0xEE; 70]);
    stranger.send_to(&bleed, to_a).unwrap();
    let genuine = rtp_packet(111, 20, 960 * 20, 0xAAAA, false, &[20; 70]);
    a.send_to(&genuine, to_a).unwrap();
    assert_eq!(
        next_rtp(&b),
        genuine,
        "the stranger's packet was not relayed"
    );

    // Any replica finds it by call id (with or without the From tag).
    let found = find(&mut c, "call-14", "").await;
    assert_eq!(found.len(), 1);
    let s = &found[0];
    assert_eq!(s.session_id, created.session_id);
    assert_eq!(
        (s.call_id.as_str(), s.from_tag.as_str(), s.to_tag.as_str()),
        ("call-14", "from-1", "to-1")
    );
    assert_eq!(s.mode, v1::SessionMode::Passthrough as i32);
    assert_eq!((local(&s.leg_a_local), local(&s.leg_b_local)), (to_a, to_b));
    assert_eq!(s.core, created.core);
    let leg_a = s.leg_a.unwrap();
    assert_eq!((leg_a.packets_in, leg_a.bytes_in), (21, 21 * 70));
    assert_eq!(leg_a.packets_dropped, 1, "the stranger's packet, counted");
    assert_eq!(s.leg_b.unwrap().packets_out, 21);
    assert_eq!(find(&mut c, "call-14", "from-1").await.len(), 1);
    assert!(find(&mut c, "call-14", "from-2").await.is_empty());
    assert!(find(&mut c, "call-15", "").await.is_empty());
    // Without figures (an ng answer wants the signalling state only): no media-thread figures.
    let bare = c
        .find_sessions(v1::FindSessionsRequest {
            call_id: "call-14".into(),
            from_tag: String::new(),
            without_figures: true,
        })
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(bare.len(), 1);
    assert_eq!(bare[0].leg_a.unwrap_or_default().packets_in, 0);
    assert!(
        find(&mut c, "call-14", "").await[0]
            .leg_a
            .unwrap()
            .packets_in
            > 0
    );
    let e = c
        .find_sessions(v1::FindSessionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let relaying = "bridgepool_worker_relay_sessions{core=\"0\"}";
    assert_eq!(scrape(&w, relaying).await, 1.0);

    // The answer chose codecs the offerer does not share: transcode, same sockets. Leg A is the
    // PCMU side now.
    c.update_session(switch(&created.session_id, v1::SessionMode::Transcode))
        .await
        .unwrap();
    assert_eq!(scrape(&w, relaying).await, 0.0);
    assert_eq!(headroom(&mut c).await, 7);
    let found = find(&mut c, "call-14", "").await;
    assert_eq!(found[0].mode, v1::SessionMode::Transcode as i32);
    let mut opus_out = None;
    for seq in 0..25u16 {
        let pcmu = rtp_packet(
            0,
            100 + seq,
            160 * u32::from(seq),
            0xAAAA,
            seq == 0,
            &[0x55; 160],
        );
        a.send_to(&pcmu, to_a).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while opus_out.is_none() && Instant::now() < deadline {
        let got = next_rtp(&b);
        let p = bridgepool_codecs::rtp::RtpPacket::parse(&got).unwrap();
        if p.ssrc() != 0xAAAA {
            opus_out = Some((p.payload_type(), p.marker(), p.ssrc()));
        }
    }
    let (pt, marker, ssrc) = opus_out.expect("transcoded output toward B");
    assert_eq!(pt, 111, "Opus toward B");
    assert!(marker, "the first transcoded packet is marked");
    assert_ne!(ssrc, 0xAAAA, "our own stream, not the peer's");

    let deleted = c
        .delete_session(v1::DeleteSessionRequest {
            session_id: created.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!deleted.already_deleted);
    let leg_a = deleted.leg_a.unwrap();
    assert!(leg_a.packets_in >= 21 + 20, "{leg_a:?}");
    assert!(deleted.leg_b.unwrap().packets_out >= 21 + 10);
    assert!(find(&mut c, "call-14", "").await.is_empty(), "forgotten");
    assert_eq!(headroom(&mut c).await, 8, "everything given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_known_calls_are_never_refused_and_switches_beyond_the_reservation_need_headroom()
 {
    let w = start_worker(49_400);
    let mut c = client(&w).await;
    let create = async |c: &mut WorkerClient<GrpcChannel>, r: v1::CreateSessionRequest| {
        c.create_session(r).await.map(|r| r.into_inner().session_id)
    };
    // Eight offers that may transcode fill the core; a ninth is refused. Each carries the
    // scheduler's signalling state, which the worker keeps without reading.
    let mut offers = Vec::new();
    for i in 0..8 {
        let mut r = offer(&format!("o{i}"), "f", None, None, true);
        r.signalling = format!("offer {i}").into_bytes();
        offers.push(create(&mut c, r).await.unwrap());
    }
    let signalling = async |c: &mut WorkerClient<GrpcChannel>, call: &str| {
        String::from_utf8(find(c, call, "").await[0].signalling.clone()).unwrap()
    };
    assert_eq!(signalling(&mut c, "o3").await, "offer 3");
    // Bounded: a state over the limit is refused, on create and on update.
    let big = vec![0u8; bridgepool_proto::limits::MAX_SIGNALLING + 1];
    let mut r = offer("big", "f", None, None, false);
    r.signalling.clone_from(&big);
    let e = create(&mut c, r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let mut u = switch(&offers[1], v1::SessionMode::Transcode);
    u.signalling = Some(big);
    let e = c.update_session(u).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(signalling(&mut c, "o1").await, "offer 1");
    assert_eq!(headroom(&mut c).await, 0);
    let e = create(&mut c, offer("o8", "f", None, None, true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    // Every answer is admitted: all eight turn into transcoded calls on a full core.
    for id in &offers {
        let mut u = switch(id, v1::SessionMode::Transcode);
        u.signalling = Some(b"answered".to_vec());
        c.update_session(u).await.unwrap();
    }
    assert_eq!(signalling(&mut c, "o0").await, "answered");
    assert_eq!(headroom(&mut c).await, 0);
    // Four calls settle on passthrough: each gives back 0.075 of the core (a relay reserves a
    // quarter of a transcoded call with --session-cost): 0.3 in all.
    for id in &offers[..4] {
        c.update_session(switch(id, v1::SessionMode::Passthrough))
            .await
            .unwrap();
    }
    assert_eq!(headroom(&mut c).await, 3);
    // Two new transcoded calls and two relays that will never transcode (0.025 each): 0.05
    // left.
    for i in 0..2 {
        create(&mut c, proc::request(&format!("t{i}"), None, None))
            .await
            .unwrap();
    }
    let relay = create(&mut c, offer("r0", "f", None, None, false))
        .await
        .unwrap();
    create(&mut c, offer("r1", "f", None, None, false))
        .await
        .unwrap();
    assert_eq!(headroom(&mut c).await, 0);
    // A settled call switching back to transcoding needs 0.075 more: refused, and unchanged,
    // its signalling state included.
    let mut u = switch(&offers[0], v1::SessionMode::Transcode);
    u.signalling = Some(b"re-offered".to_vec());
    let e = c.update_session(u).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert_eq!(signalling(&mut c, "o0").await, "answered");
    let found = find(&mut c, "o0", "").await;
    assert_eq!(
        found[0].mode,
        v1::SessionMode::Passthrough as i32,
        "as it was"
    );
    // So is the relay that never reserved it.
    let e = c
        .update_session(switch(&relay, v1::SessionMode::Transcode))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    // A transcoded call ends: 0.15 free, enough for two switches, not for a third.
    c.delete_session(v1::DeleteSessionRequest {
        session_id: offers[7].clone(),
    })
    .await
    .unwrap();
    for id in &offers[..2] {
        c.update_session(switch(id, v1::SessionMode::Transcode))
            .await
            .unwrap();
    }
    let e = c
        .update_session(switch(&relay, v1::SessionMode::Transcode))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    // Another transcoded call ends: 0.1 free, and the relay's switch fits.
    c.delete_session(v1::DeleteSessionRequest {
        session_id: offers[6].clone(),
    })
    .await
    .unwrap();
    c.update_session(switch(&relay, v1::SessionMode::Transcode))
        .await
        .unwrap();
    assert_eq!(
        find(&mut c, "r0", "").await[0].mode,
        v1::SessionMode::Transcode as i32
    );
}
