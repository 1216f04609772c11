//! Offer/answer latency of a running scheduler's ng front door, as Kamailio sees it: a bounded
//! loop of `offer` (PCMU + `transcode-opus`), `answer` (opus: transcoded) or, for every second
//! call with `--mix`, a PCMU answer (passthrough), and `delete`, one request at a time from one
//! UDP socket; prints percentiles per command.
//!
//! `cargo run --release -p bridgepool-scheduler --example ng_offer_bench -- 127.0.0.1:2223 500`

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_ng::client;
use bridgepool_ng::{Dict, Value};

fn ask(sock: &UdpSocket, to: SocketAddr, n: u64, body: &Dict) -> Duration {
    let cookie = format!("bench-{}-{n}", std::process::id());
    let started = Instant::now();
    sock.send_to(&client::frame(&cookie, body), to)
        .expect("send");
    let mut buf = vec![0u8; 65_536];
    let (len, _) = sock.recv_from(&mut buf).expect("no reply within 2 s");
    let took = started.elapsed();
    client::parse_reply(&buf[..len], &cookie).expect("refused");
    took
}

fn sdp(port: u16, codecs: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {codecs}\r\na=rtpmap:96 opus/48000/2\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{name:8} n={:5} p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        v.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let to: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:2223".into())
        .parse()
        .expect("ng address");
    let calls: u64 = args.next().map_or(200, |n| n.parse().expect("call count"));
    let mix = args.next().as_deref() == Some("--mix");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let (mut offers, mut answers, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..calls {
        let call_id = format!("bench-{}-{n}", std::process::id());
        let offer = Dict::new()
            .with("command", "offer")
            .with("call-id", call_id.as_str())
            .with("from-tag", "a")
            .with("supports", Value::str_list(&["load limit"]))
            .with("flags", Value::str_list(&["transcode-opus"]))
            .with("ICE", "remove")
            .with("sdp", sdp(40_000, "0"));
        offers.push(ask(&sock, to, 3 * n, &offer));
        let passthrough = mix && n % 2 == 1;
        let answer = Dict::new()
            .with("command", "answer")
            .with("call-id", call_id.as_str())
            .with("from-tag", "a")
            .with("to-tag", "b")
            .with("sdp", sdp(40_002, if passthrough { "0" } else { "96" }));
        answers.push(ask(&sock, to, 3 * n + 1, &answer));
        // Ended at once: the scheduler's default delete-delay (30 s) would keep every call's
        // session, and a long run would fill the worker with deleted calls.
        let delete = Dict::new()
            .with("command", "delete")
            .with("call-id", call_id.as_str())
            .with("from-tag", "a")
            .with("delete delay", 0i64);
        deletes.push(ask(&sock, to, 3 * n + 2, &delete));
    }
    report("offer", offers);
    report("answer", answers);
    report("delete", deletes);
}
