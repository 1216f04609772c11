//! SDP from an offer or answer never panics the reader, the planner or the writer, and what we
//! write parses back to the codecs we planned (the same property runs under proptest in
//! `sdp/src/description.rs`).
#![no_main]

use bridgepool_sdp::{CodecOps, Description, Rewrite, plan_answer, plan_offer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(desc) = Description::parse(text) else {
        return;
    };
    let Ok(audio) = desc.audio() else {
        return;
    };
    let mut ops = CodecOps::default();
    ops.push("transcode", "opus");
    ops.push("transcode", "PCMA");
    let plan = plan_offer(&audio.codecs, &ops);
    let _ = plan_answer(&plan.accepted, &audio.codecs, true);
    let rewrite = Rewrite {
        local: "127.0.0.1:30000".parse().expect("literal"),
        codecs: &plan.out,
        remove_ice: true,
        replace_origin: true,
        ptime_ms: Some(20),
    };
    if let Ok(out) = rewrite.apply(&desc) {
        let again = Description::parse(&out).expect("our own SDP parses");
        assert_eq!(again.audio().expect("audio kept").codecs, plan.out);
    }
});
