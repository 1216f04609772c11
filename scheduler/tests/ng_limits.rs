//! The ng port under a flood from one source: that source is held to `--ng-rate-limit` (excess
//! dropped and counted) while another source on the same port is answered in full.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, free_port, free_udp, metrics};

/// Sends `n` pings from `sock` as fast as it can, then counts the pongs that come back.
fn flood(sock: &UdpSocket, to: SocketAddr, n: usize) -> usize {
    for i in 0..n {
        let _ = sock.send_to(format!("f{i} d7:command4:pinge").as_bytes(), to);
    }
    let mut buf = [0u8; 256];
    let mut pongs = 0;
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        pongs += usize::from(buf[..len].windows(4).any(|w| w == b"pong"));
    }
    pongs
}

#[test]
fn a_flooding_source_is_held_to_its_rate_and_others_are_served() {
    let ng = free_udp();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _scheduler = Proc(
        Command::new(env!("CARGO_BIN_EXE_bridgepool-scheduler"))
            .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-listen", &metrics_addr.to_string()])
            .args(["--ng-listen", &ng.to_string(), "--ng-rate-limit", "100"])
            .args(["--log", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Another loopback address is another source.
    let quiet = UdpSocket::bind("127.0.0.2:0").unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while flood(&quiet, ng, 1) == 0 {
        assert!(Instant::now() < deadline, "the ng server never answered");
    }
    std::thread::sleep(Duration::from_secs(1)); // the quiet source's bucket refills

    let loud = UdpSocket::bind("127.0.0.1:0").unwrap();
    loud.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    let answered = flood(&loud, ng, 2000);
    let took = started.elapsed().as_secs_f64();
    // A burst of 50, then 100 per second while the flood and the wait for replies last.
    let allowed = 50 + (100.0 * took).ceil() as usize;
    assert!(
        answered > 0 && answered <= allowed,
        "{answered} of 2000 answered in {took:.2} s (at most {allowed} allowed)"
    );
    assert_eq!(
        flood(&quiet, ng, 20),
        20,
        "the other source paid for the flood"
    );

    let text = metrics(metrics_addr);
    let limited: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("bridgepool_scheduler_ng_rate_limited_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Some of the flood may die in the kernel's socket buffer before the server reads it; what
    // the server read beyond the rate is dropped and counted.
    assert!(limited >= 300, "{limited} counted\n{text}");
}
