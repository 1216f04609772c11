//! `delete` of offer/answer calls as rtpengine does it (issue 14). delete-delay: a `delete`
//! without a `delete delay` key keeps the call for the scheduler's default (`--ng-delete-delay`:
//! 30 s as rtpengine's; 8 s here), its media stopped at once, and late signalling (a query, a
//! second delete) still finds it until its worker ends it; the request's key overrides the
//! default (`0`: gone at once); a late answer is answered without starting the media again, and
//! an offer under a deleted call's Call-ID (an INVITE resent after a 407) is a new call that
//! the old one's end leaves alone. A branch delete (flag `to-tag`) of a forked call's other branch
//! leaves the call alone. Real scheduler and worker processes over UDP on loopback.

mod common;
mod ngpool;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::rtp::{RtpHeader, RtpPacket, is_rtcp};
use bridgepool_ng::{Dict, Value};
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use bridgepool_sdp::Description;
use common::{ng, sdp, udp_socket as socket};
use tonic::transport::Channel;

fn request(command: &str, call: &str) -> Dict {
    Dict::new()
        .with("command", command)
        .with("call-id", call)
        .with("from-tag", "caller")
}

/// The Opus callee's answer.
fn answer(id: &str, b: &UdpSocket) -> Dict {
    let port = b.local_addr().unwrap().port();
    request("answer", id)
        .with("to-tag", "callee")
        .with("sdp", sdp(port, "96", "a=rtpmap:96 opus/48000/2\r\n"))
}

/// Waits (20 s at most) until the worker holds `n` sessions of `call`.
async fn wait_for_sessions(worker: &mut WorkerClient<Channel>, call: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = worker
            .find_sessions(v1::FindSessionsRequest {
                call_id: call.to_owned(),
                from_tag: String::new(),
                without_figures: false,
            })
            .await
            .unwrap()
            .into_inner()
            .sessions
            .len();
        if found == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{call}: {found} sessions, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets up a transcoded call (a PCMU caller, an Opus callee); returns where the caller sends.
/// Cookies name the caller's port: a second call under one Call-ID is a new request.
fn call(sock: &UdpSocket, ng_at: SocketAddr, id: &str, a: &UdpSocket, b: &UdpSocket) -> SocketAddr {
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    let offer = request("offer", id)
        .with("flags", Value::str_list(&["transcode-opus"]))
        .with("sdp", sdp(port(a), "0", ""));
    ng(sock, ng_at, &format!("{id}-o{}", port(a)), &offer).expect("offer");
    let answered = ng(sock, ng_at, &format!("{id}-a{}", port(a)), &answer(id, b)).expect("answer");
    let text = answered.str("sdp").unwrap();
    Description::parse(text)
        .unwrap()
        .audio()
        .unwrap()
        .socket_addr()
}

/// RTP datagrams `b` receives while `a` sends 15 PCMU packets to `to`, 20 ms apart.
fn relayed(a: &UdpSocket, to: SocketAddr, b: &UdpSocket, first_seq: u16) -> usize {
    b.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1500];
    let mut got = 0;
    let mut count = |b: &UdpSocket| {
        while let Ok(n) = b.recv(&mut buf) {
            if !is_rtcp(&buf[..n]) && RtpPacket::parse(&buf[..n]).is_ok() {
                got += 1;
            }
        }
    };
    for i in 0..15u16 {
        let seq = first_seq + i;
        let mut pkt = vec![0xffu8; 172];
        RtpHeader {
            marker: i == 0,
            payload_type: 0,
            sequence_number: seq,
            timestamp: 160 * u32::from(seq),
            ssrc: 0xA,
        }
        .write(&mut pkt)
        .unwrap();
        a.send_to(&pkt, to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        count(b);
    }
    std::thread::sleep(Duration::from_millis(150));
    count(b);
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_call_is_kept_for_the_delete_delay_with_its_media_stopped() {
    let pool = ngpool::start_with("dd-w1", "0.01", 47400, &["--ng-delete-delay", "8"]).await;
    let sock = socket();
    let (a, b) = (socket(), socket());
    let to_a = call(&sock, pool.ng, "dd-1", &a, &b);
    assert!(relayed(&a, to_a, &b, 0) >= 5, "media before the delete");

    // No `delete delay`: the server's 8 s (room for the late messages below on a busy
    // runner). The reply has the figures; the call stays findable.
    let deleted = ng(&sock, pool.ng, "d1", &request("delete", "dd-1")).unwrap();
    assert!(deleted.get("warning").is_none(), "{deleted:?}");
    assert!(deleted.get("totals").is_some(), "{deleted:?}");
    let kept = ng(&sock, pool.ng, "q1", &request("query", "dd-1"));
    assert!(
        kept.is_ok(),
        "a query right after the delete finds the call: {kept:?}"
    );
    assert_eq!(relayed(&a, to_a, &b, 15), 0, "media stopped at the delete");
    // A late delete (a retransmitted BYE) still finds it, and a late answer (a resent 200 OK)
    // is answered without starting the media again.
    let again = ng(&sock, pool.ng, "d2", &request("delete", "dd-1")).unwrap();
    assert!(again.get("warning").is_none(), "{again:?}");
    let late = answer("dd-1", &b);
    assert!(
        ng(&sock, pool.ng, "a-late", &late)
            .unwrap()
            .str("sdp")
            .is_some()
    );
    assert_eq!(
        relayed(&a, to_a, &b, 30),
        0,
        "still stopped after a late answer"
    );
    // Then the worker ends it.
    let mut worker = WorkerClient::connect(format!("http://{}", pool.worker_grpc))
        .await
        .unwrap();
    wait_for_sessions(&mut worker, "dd-1", 0).await;
    assert_eq!(
        ng(&sock, pool.ng, "q-gone", &request("query", "dd-1")),
        Err("Unknown call-id".to_owned())
    );

    // An INVITE resent after a 407 has the Call-ID whose failure deleted the first try: its
    // offer is a new call, which the old session's end leaves alone.
    let (a, b) = (socket(), socket());
    call(&sock, pool.ng, "dd-3", &a, &b);
    // 5 s: room to see both sessions on a busy machine before the old one ends.
    let later = request("delete", "dd-3").with("delete delay", 5i64);
    ng(&sock, pool.ng, "d4", &later).unwrap();
    let (a, b) = (socket(), socket());
    let to_a = call(&sock, pool.ng, "dd-3", &a, &b);
    assert!(relayed(&a, to_a, &b, 0) >= 5, "the new call's media");
    // Two sessions (the deleted one, stopped, and the new one), then the deleted one ends.
    wait_for_sessions(&mut worker, "dd-3", 2).await;
    wait_for_sessions(&mut worker, "dd-3", 1).await;
    assert!(
        relayed(&a, to_a, &b, 15) >= 5,
        "the new call outlives the old one's end"
    );
    let now = request("delete", "dd-3").with("delete delay", 0i64);
    ng(&sock, pool.ng, "d5", &now).unwrap();
    wait_for_sessions(&mut worker, "dd-3", 0).await;

    // The request's own `delete delay: 0` (what rtpengine's transform client sends): at once.
    let (a, b) = (socket(), socket());
    call(&sock, pool.ng, "dd-2", &a, &b);
    let now = request("delete", "dd-2").with("delete delay", 0i64);
    let deleted = ng(&sock, pool.ng, "d3", &now).unwrap();
    assert!(deleted.get("warning").is_none(), "{deleted:?}");
    assert_eq!(
        ng(&sock, pool.ng, "q2", &request("query", "dd-2")),
        Err("Unknown call-id".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_delete_removes_only_its_own_dialogue() {
    let pool = ngpool::start("br-w1", "0.01", 47500).await;
    let sock = socket();
    let (a, b) = (socket(), socket());
    call(&sock, pool.ng, "br-1", &a, &b);
    let branch = |to: &str| {
        request("delete", "br-1")
            .with("to-tag", to)
            .with("flags", Value::str_list(&["to-tag"]))
    };
    // Another branch of the fork (it never answered through us): nothing of this call goes.
    let other = ng(&sock, pool.ng, "b1", &branch("other-branch")).unwrap();
    assert_eq!(
        other.str("warning"),
        Some("Call-ID not found or tags didn't match"),
        "{other:?}"
    );
    assert!(ng(&sock, pool.ng, "q1", &request("query", "br-1")).is_ok());
    // A fork still ringing: one branch fails (486) before any answered; the call stays for
    // the others.
    let ringing = request("offer", "br-2")
        .with("flags", Value::str_list(&["transcode-opus"]))
        .with("sdp", sdp(a.local_addr().unwrap().port(), "0", ""));
    ng(&sock, pool.ng, "o2", &ringing).expect("offer");
    let failed = request("delete", "br-2")
        .with("to-tag", "failed-branch")
        .with("flags", Value::str_list(&["to-tag"]));
    let failed = ng(&sock, pool.ng, "b3", &failed).unwrap();
    assert_eq!(
        failed.str("warning"),
        Some("Call-ID not found or tags didn't match"),
        "{failed:?}"
    );
    assert!(ng(&sock, pool.ng, "q3", &request("query", "br-2")).is_ok());
    // The answered branch: the call goes.
    let own = ng(&sock, pool.ng, "b2", &branch("callee")).unwrap();
    assert!(own.get("warning").is_none(), "{own:?}");
    assert_eq!(
        ng(&sock, pool.ng, "q2", &request("query", "br-1")),
        Err("Unknown call-id".to_owned())
    );
}
