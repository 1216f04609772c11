//! The whole offer path over mangled SDP: parse, plan, rewrite never panic, and what we write
//! parses back to the codecs we planned (the fuzz target `fuzz/fuzz_targets/sdp.rs` runs the
//! same property).

use bridgepool_sdp::{CodecOps, Description, Rewrite, plan_answer, plan_offer};
use proptest::prelude::*;

const BASE: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 0 8 96 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

fn pipeline(text: &str) {
    let Ok(desc) = Description::parse(text) else {
        return;
    };
    let Ok(audio) = desc.audio() else { return };
    let mut ops = CodecOps::default();
    ops.push("transcode", "opus");
    ops.push("mask", "PCMU");
    let plan = plan_offer(&audio.codecs, &ops);
    let _ = plan_answer(&plan.accepted, &audio.codecs, true);
    let rewrite = Rewrite {
        local: "127.0.0.1:30000".parse().unwrap(),
        codecs: &plan.out,
        remove_ice: true,
        replace_origin: true,
        ptime_ms: Some(20),
    };
    if let Ok(out) = rewrite.apply(&desc) {
        let again = Description::parse(&out).expect("our own SDP parses");
        assert_eq!(again.audio().expect("audio kept").codecs, plan.out);
    }
}

proptest! {
    #[test]
    fn mangled_lines_never_panic(
        cut in 0usize..BASE.len(),
        junk in "[ -~\\r\\n]{0,40}",
        line in 0usize..12,
    ) {
        // Cut, splice junk into one line, or replace a line.
        let mut lines: Vec<String> = BASE.split("\r\n").map(str::to_owned).collect();
        let i = line % lines.len();
        lines[i].push_str(&junk);
        pipeline(&lines.join("\r\n"));
        pipeline(&BASE[..cut]);
        let mut replaced = lines.clone();
        replaced[i] = junk.clone();
        pipeline(&replaced.join("\r\n"));
    }
}

#[test]
fn stripping_everything_is_an_error_not_an_empty_m_line() {
    let desc = Description::parse(BASE).unwrap();
    let rewrite = Rewrite {
        local: "127.0.0.1:30000".parse().unwrap(),
        codecs: &[],
        remove_ice: false,
        replace_origin: false,
        ptime_ms: None,
    };
    assert!(rewrite.apply(&desc).is_err());
}
