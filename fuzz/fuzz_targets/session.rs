//! The session end to end: any bytes are a script of datagrams on both legs, time steps, hold
//! and renegotiation (see `worker/tests/fuzzing/session_ops.rs`); every datagram the session
//! sends is checked (parses, fits the MTU, one SSRC and continuous sequence per leg, timestamps
//! forward, output bounded by time). The bounded version runs in CI:
//! `cargo test -p bridgepool-worker --test session_fuzz`.
#![no_main]

#[path = "../../worker/tests/fuzzing/session_ops.rs"]
mod session_ops;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = session_ops::run(data) {
        panic!("step {}: {}", v.step, v.what);
    }
});
