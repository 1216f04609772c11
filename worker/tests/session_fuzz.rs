//! The session driven end to end by arbitrary scripts (see `fuzzing/session_ops.rs` for the
//! operations and the invariants). Bounded so it runs in CI on stable; the same scripts run
//! unbounded under cargo-fuzz (`fuzz/fuzz_targets/session.rs`).

#[path = "fuzzing/session_ops.rs"]
mod session_ops;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_scripts_keep_every_output_invariant(script in proptest::collection::vec(any::<u8>(), 0..1500)) {
        if let Err(v) = session_ops::run(&script) {
            prop_assert!(false, "step {}: {}", v.step, v.what);
        }
    }
}

/// Mostly well-formed calls, so the scripts reach deep states (talking both ways, events,
/// renegotiation) rather than dying on the first garbage byte: opcodes are biased toward RTP and
/// time steps.
fn call_like_script() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        6 => (0u8..8, any::<u8>(), 2u8..8, any::<u8>(), 2u8..8, any::<[u8; 6]>())
            .prop_map(|(op, leg, shape, pick, pt, rest)| {
                let mut v = vec![op, leg, shape, pt, pick];
                v.extend_from_slice(&rest);
                v
            }),
        3 => (10u8..13, 2u8..8).prop_map(|(op, kind)| vec![op, kind]),
        1 => proptest::collection::vec(any::<u8>(), 1..12),
        // Renegotiation; a quarter of them switch between transcoding and passthrough.
        1 => any::<[u8; 4]>().prop_map(|r| vec![15, r[0], r[1], r[2], r[3]]),
    ];
    proptest::collection::vec(op, 1..400).prop_map(|ops| ops.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn call_like_scripts_keep_every_output_invariant(script in call_like_script()) {
        match session_ops::run(&script) {
            Ok(_) => {}
            Err(v) => prop_assert!(false, "step {}: {}", v.step, v.what),
        }
    }
}

/// The property can fail: a script of plain in-order calls must produce output on both legs
/// (otherwise the checks above would pass vacuously on a session that sends nothing).
#[test]
fn a_plain_call_script_produces_media_both_ways() {
    let mut script = vec![0u8];
    for i in 0..200u8 {
        // RTP on A then B (in-order shape 4, audio payload type), then 20 ms.
        script.extend_from_slice(&[0, 0, 4, 2, i]);
        script.extend_from_slice(&[1, 1, 4, 2, i]);
        script.extend_from_slice(&[10, 2]);
    }
    let outcome = session_ops::run(&script).expect("invariants hold");
    assert!(outcome.rtp_out[0] > 150, "G.711 out: {outcome:?}");
    assert!(outcome.rtp_out[1] > 150, "Opus out: {outcome:?}");
}

/// The same call switching to passthrough for a while and back: relayed datagrams are checked
/// as such, and our own streams stay continuous across both switches.
#[test]
fn a_call_switching_modes_relays_then_transcodes_again() {
    let mut script = vec![0u8];
    let talk = |script: &mut Vec<u8>, from: u8| {
        // Odd picks: a pick that is a multiple of 16 sends garbage.
        for i in from..from + 50 {
            script.extend_from_slice(&[0, 0, 4, 2, i | 1]);
            script.extend_from_slice(&[1, 1, 4, 2, i | 1]);
            script.extend_from_slice(&[10, 2]);
        }
    };
    // Renegotiation with the same ptimes (20 ms), the mode bits set, bitrate byte 110.
    let switch = [15, 1, 1, 0x31, 110];
    talk(&mut script, 0);
    script.extend_from_slice(&switch);
    talk(&mut script, 50);
    script.extend_from_slice(&switch);
    talk(&mut script, 100);
    let outcome = session_ops::run(&script).expect("invariants hold");
    assert!(
        outcome.relayed[0] >= 45 && outcome.relayed[1] >= 45,
        "{outcome:?}"
    );
    assert!(outcome.rtp_out[0] > 80, "G.711 out: {outcome:?}");
    assert!(outcome.rtp_out[1] > 80, "Opus out: {outcome:?}");
}
