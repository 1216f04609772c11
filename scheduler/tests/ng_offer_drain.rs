//! A draining worker takes no new offers: with the pool's only worker draining, a new call's
//! offer is answered `load limit` (Kamailio then asks the next node), while before the drain
//! the same offer was served. Real scheduler and worker processes over UDP.

mod common;
mod ngpool;

use std::net::UdpSocket;
use std::time::Duration;

use bridgepool_ng::client;
use bridgepool_ng::{Dict, Value};
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;

fn offer(call_id: &str) -> Dict {
    Dict::new()
        .with("command", "offer")
        .with("call-id", call_id)
        .with("from-tag", "f")
        .with("supports", Value::str_list(&["load limit"]))
        .with("flags", Value::str_list(&["transcode-opus"]))
        .with(
            "sdp",
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\n",
        )
}

fn reply(sock: &UdpSocket, to: std::net::SocketAddr, cookie: &str, body: &Dict) -> Value {
    sock.send_to(&client::frame(cookie, body), to).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = sock.recv_from(&mut buf).expect("no ng reply");
    let (_, raw) = bridgepool_ng::frame::split_cookie(&buf[..n]).unwrap();
    bridgepool_ng::codec::decode(raw).unwrap().1
}

fn result(sock: &UdpSocket, to: std::net::SocketAddr, cookie: &str, body: &Dict) -> String {
    let r = reply(sock, to, cookie, body);
    r.get("result")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_worker_takes_no_new_offers() {
    let pool = ngpool::start("drain-w1", "0.01", 45000).await;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(result(&sock, pool.ng, "d1", &offer("before")), "ok");
    let mut worker = WorkerClient::connect(format!("http://{}", pool.worker_grpc))
        .await
        .unwrap();
    worker
        .drain(v1::DrainRequest {
            deadline_seconds: 30,
        })
        .await
        .unwrap();
    // Whether the scheduler has seen the drain in a heartbeat yet or asks the worker and is
    // refused, the new call is not placed there.
    assert_eq!(result(&sock, pool.ng, "d2", &offer("after")), "load limit");
    // The call admitted before the drain is still the pool's.
    let delete = Dict::new()
        .with("command", "delete")
        .with("call-id", "before")
        .with("from-tag", "f");
    let deleted = reply(&sock, pool.ng, "d3", &delete);
    assert_eq!(deleted.get("result").and_then(Value::as_str), Some("ok"));
    assert!(deleted.get("warning").is_none(), "{deleted:?}");
    assert!(deleted.get("totals").is_some(), "{deleted:?}");
}
