//! The final table on stdout.

use std::fmt::Write;

use super::Report;
use crate::stats::StreamSummary;

/// Renders the report as aligned text.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let mode = r.config.as_ref().map_or("?", |c| c.mode.name());
    let _ = writeln!(
        s,
        "bridgepool-loadgen: target {} | mode {mode} | {:.1} s",
        r.target, r.duration_s
    );
    let c = &r.calls;
    let _ = writeln!(
        s,
        "calls: {} attempted, {} transcoded, {} passthrough, {} relayed, {} refused, {} failed, peak {} up",
        c.attempted, c.transcoded, c.passthrough, c.relayed, c.refused, c.failed, c.peak_concurrent
    );
    if c.passthrough_expected_but_transcoded > 0 {
        let _ = writeln!(
            s,
            "  WRONG: {} shared-codec calls were transcoded",
            c.passthrough_expected_but_transcoded
        );
    }
    for e in &c.errors {
        let _ = writeln!(s, "  error: {e}");
    }
    let _ = writeln!(
        s,
        "\n{:<8} {:>7} {:>9} {:>9} {:>8} {:>5} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>4}",
        "dir",
        "streams",
        "sent",
        "recv",
        "loss%",
        "dup",
        "reord",
        "jit ms",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "rule",
        "MOS"
    );
    let row = |s: &mut String, name: &str, t: &StreamSummary, mos: f64| {
        let _ = writeln!(
            s,
            "{:<8} {:>7} {:>9} {:>9} {:>8.3} {:>5} {:>5} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>5} {:>4.2}",
            name,
            t.streams,
            t.sent,
            t.received,
            t.loss_pct(),
            t.duplicates,
            t.reordered,
            t.jitter_ms_mean,
            t.latency.p50_ms,
            t.latency.p95_ms,
            t.latency.p99_ms,
            t.latency.max_ms,
            t.violations.total(),
            mos
        );
    };
    for d in &r.directions {
        row(&mut s, &d.name, &d.summary, d.mos);
    }
    row(&mut s, "total", &r.total, r.mos);
    let v = &r.total.violations;
    if v.total() > 0 || r.total.silent_streams > 0 {
        let _ = writeln!(
            s,
            "rule violations: ts step {}, ts backwards {}, seq jump {}, ssrc change {}, first marker {}, payload type {}; silent streams {}",
            v.timestamp_step,
            v.timestamp_backwards,
            v.sequence_jump,
            v.ssrc_change,
            v.missing_first_marker,
            v.payload_type,
            r.total.silent_streams
        );
    }
    if !r.quality.is_empty() {
        let _ = writeln!(
            s,
            "\naudio quality (correlation with the sent speech after alignment):"
        );
        for q in &r.quality {
            let _ = writeln!(
                s,
                "  {:<16} {:<7} {:<5} {:>5} frames, {:>3} missing, corr {:.3}",
                q.call_id, q.direction, q.codec, q.frames, q.missing_frames, q.correlation
            );
        }
    }
    let _ = writeln!(s, "\ncpu (% of one core):");
    for c in &r.cpu {
        let _ = writeln!(
            s,
            "  {:<8} {:<16} pid {:>7}: mean {:>6.1}  max {:>6.1}",
            c.role, c.name, c.pid, c.mean_pct, c.max_pct
        );
    }
    if r.cpu_pct_per_call > 0.0 {
        let _ = writeln!(
            s,
            "  measured processes per media call: {:.2} %",
            r.cpu_pct_per_call
        );
    }
    let _ = writeln!(
        s,
        "pacer: {} packets, {} send errors, {} late ticks (max {:.2} ms)",
        r.pacer.packets, r.pacer.send_errors, r.pacer.late_ticks, r.pacer.max_late_ms
    );
    if let Some(ramp) = &r.ramp {
        let _ = writeln!(s, "\nramp steps:");
        for st in &ramp.steps {
            let _ = writeln!(
                s,
                "  {:>5} calls  loss {:>7.3} %  p99 {:>7.2} ms  refused {:>3}  {}",
                st.calls,
                st.loss_pct,
                st.p99_ms,
                st.refused,
                if st.held { "held" } else { "BROKE" }
            );
        }
        let _ = writeln!(
            s,
            "highest density held: {} calls ({})",
            ramp.highest_held, ramp.stopped_because
        );
    }
    let _ = writeln!(
        s,
        "service level: {}",
        if r.service_level_held {
            "held"
        } else {
            "NOT held"
        }
    );
    s
}
