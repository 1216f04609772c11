//! rtpengine's own Perl test harness (`NGCP::Rtpengine::AutoTest`, Debian rtpengine-utils) run
//! by `prove` against real scheduler and worker processes: the codec scenarios A-D of rtpengine's
//! suite with media through `snd`/`rcv`, the capacity cases (`load limit`, `Parallel session
//! limit reached`, answers and re-offers never refused) and the delete cases
//! (`tests/autotest/*.t`). Skipped, loudly, when prove or the harness is missing.

mod common;
mod ngpool;

use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn rtpengine_autotest_scenarios() {
    let harness = Command::new("perl")
        .args(["-MNGCP::Rtpengine::AutoTest", "-e", "1"])
        .output();
    let usable = matches!(&harness, Ok(o) if o.status.success()) && ngpool::have("prove", "-V");
    if !usable {
        ngpool::skip(
            "rtpengine_autotest_scenarios",
            "prove or NGCP::Rtpengine::AutoTest (rtpengine-utils + its undeclared Perl deps) missing",
        );
        return;
    }
    let pool = ngpool::start("at-w1", "0.01", 41000).await;
    let small = ngpool::start("at-small", "0.5", 42000).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/autotest");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("prove")
            .args(["-v", dir])
            .env("RTPENGINE_HOST", "127.0.0.1")
            .env("RTPENGINE_PORT", pool.ng.port().to_string())
            .env("BP_SMALL_NG_PORT", small.ng.port().to_string())
            .env("RTPE_TEST_NO_LAUNCH", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "prove failed:\n{text}");
    assert!(text.contains("Result: PASS"), "{text}");
}
