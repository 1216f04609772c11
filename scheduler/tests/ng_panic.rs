//! Panic isolation in the ng server (issue 15), over real UDP against the real scheduler binary:
//! a request whose handling panics gets an rtpengine-form `error` reply (and its resend the same
//! reply, from the cookie cache), the panic is counted, and the server keeps serving. The panic
//! is injected with the debug-only test hook (`BRIDGEPOOL_TEST_PANIC_HOOK` set at start, then the
//! command `bridgepool-test-panic`).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_ng::{Dict, client};

mod common;

use common::{Proc, ask, free_port, metrics as scrape};

#[test]
fn a_panicking_request_gets_an_error_and_the_server_goes_on() {
    let ng_addr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _scheduler = Proc(
        Command::new(env!("CARGO_BIN_EXE_bridgepool-scheduler"))
            .env("BRIDGEPOOL_TEST_PANIC_HOOK", "1")
            .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-listen", &metrics.to_string()])
            .args(["--ng-listen", &ng_addr.to_string(), "--log", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ng = UdpSocket::bind("127.0.0.1:0").unwrap();
    ng.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ng.send_to(b"p d7:command4:pinge", ng_addr).unwrap();
        let mut b = [0u8; 64];
        if ng.recv_from(&mut b).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "ng server never answered");
    }
    ng.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let boom = client::frame(
        "boom1",
        &Dict::new().with("command", "bridgepool-test-panic"),
    );
    let reply = ask(&ng, ng_addr, &boom);
    match client::parse_reply(&reply, "boom1") {
        Err(client::ReplyError::Refused { reason }) => assert_eq!(reason, "Internal error"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    // The relay resends on a lost reply: the same answer, not silence.
    assert_eq!(ask(&ng, ng_addr, &boom), reply);

    // The server goes on: a ping and a second panic, each answered.
    let pong = ask(&ng, ng_addr, &client::frame("p2", &client::ping()));
    client::parse_reply(&pong, "p2").expect("pong after a panic");
    let boom2 = client::frame(
        "boom2",
        &Dict::new().with("command", "bridgepool-test-panic"),
    );
    assert!(client::parse_reply(&ask(&ng, ng_addr, &boom2), "boom2").is_err());
    let pong = ask(&ng, ng_addr, &client::frame("p3", &client::ping()));
    client::parse_reply(&pong, "p3").expect("pong after two panics");

    let text = scrape(metrics);
    assert!(
        text.contains("bridgepool_scheduler_ng_panics_total 2"),
        "panics counted:\n{text}"
    );
}
