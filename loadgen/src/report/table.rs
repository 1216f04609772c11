//! The final table on stdout.

use std::fmt::Write;

use super::Report;
use crate::quality::PesqSummary;
use crate::run::fmt_score;
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
    if !r.load.is_empty() {
        let _ = writeln!(s, "{}", r.load);
    }
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
        "\n{:<8} {:>7} {:>9} {:>9} {:>8} {:>5} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>8} {:>7} {:>7}",
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
        "MOS est.",
        "PESQ NB",
        "PESQ WB"
    );
    let row = |s: &mut String, name: &str, t: &StreamSummary, mos: f64, p: Option<&PesqSummary>| {
        let _ = writeln!(
            s,
            "{:<8} {:>7} {:>9} {:>9} {:>8.3} {:>5} {:>5} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>5} {:>8.2} {:>7} {:>7}",
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
            mos,
            fmt_score(p.and_then(|p| p.nb_mean)),
            fmt_score(p.and_then(|p| p.wb_mean)),
        );
    };
    for d in &r.directions {
        row(&mut s, &d.name, &d.summary, d.mos, Some(&d.pesq));
    }
    row(&mut s, "total", &r.total, r.mos, None);
    let _ = writeln!(
        s,
        "(MOS est.: E-model estimate from loss, jitter and latency; PESQ: P.862.1 MOS-LQO NB and \
         P.862.2 WB, mean of the sampled calls, scored after the run)"
    );
    if let Some(c) = &r.config {
        let sl = &c.service_level;
        for (d, floor) in r
            .directions
            .iter()
            .zip([sl.min_pesq_a_to_b, sl.min_pesq_b_to_a])
        {
            if d.pesq.streams > 0 && floor > 0.0 {
                let _ = writeln!(
                    s,
                    "quality floor {}: PESQ NB min {} >= {floor:.2}: {}",
                    d.name,
                    fmt_score(d.pesq.nb_min),
                    if d.pesq.meets(floor) {
                        "met"
                    } else {
                        "NOT met"
                    }
                );
            }
        }
        if c.impairments.any() {
            let i = &c.impairments;
            let _ = writeln!(
                s,
                "impairments (seed {}): A tx {}, A rx {}, B tx {}, B rx {}; sent: {} dropped, {} delayed, {} duplicated of {}; received: {} dropped, {} delayed, {} duplicated of {}",
                c.seed,
                i.a_tx,
                i.a_rx,
                i.b_tx,
                i.b_rx,
                r.impaired_tx.dropped,
                r.impaired_tx.delayed,
                r.impaired_tx.duplicated,
                r.impaired_tx.packets,
                r.impaired_rx.dropped,
                r.impaired_rx.delayed,
                r.impaired_rx.duplicated,
                r.impaired_rx.packets
            );
        }
    }
    if !r.per_host.is_empty() {
        let hosts: Vec<String> = r
            .per_host
            .iter()
            .map(|h| {
                format!(
                    "{} {} calls, {} of {} lost ({:.3} %)",
                    h.host,
                    h.calls,
                    h.lost,
                    h.expected,
                    h.loss_pct()
                )
            })
            .collect();
        let _ = writeln!(s, "loss per worker: {}", hosts.join("; "));
    }
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
            "\naudio quality of sampled calls (after alignment with the sent speech):"
        );
        for q in &r.quality {
            let step = q.step.map(|st| format!(" step {st}")).unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<16} {:<7} {:<5} {:<17} {:<9} {:>5} frames, {:>3} missing, corr {:.3}, PESQ NB {} WB {}{}{step}",
                q.call_id,
                q.direction,
                q.codec,
                q.voice,
                q.client,
                q.frames,
                q.missing_frames,
                q.correlation,
                fmt_score(q.pesq_nb),
                fmt_score(q.pesq_wb),
                q.pesq_error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
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
                "  {:>5} calls  loss {:>7.3} %  p99 {:>7.2} ms  refused {:>3}  PESQ NB a->b {:>4} b->a {:>4}  {}",
                st.calls,
                st.loss_pct,
                st.p99_ms,
                st.refused,
                fmt_score(st.pesq_a_to_b.nb_min),
                fmt_score(st.pesq_b_to_a.nb_min),
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
