//! Prometheus text exposition of the worker's figures. Media threads keep their own counters;
//! a scrape sums them, so scraping costs the packet path nothing.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{Engine, PROCESSING_BUCKETS};
use crate::session::{DropReason, EndReason};

/// Jitter histogram bucket bounds (seconds).
pub const JITTER_BUCKETS: [f64; 8] = [0.001, 0.002, 0.005, 0.010, 0.020, 0.040, 0.080, 0.160];

/// Playout delay histogram bucket bounds (seconds): the jitter buffer's mean added delay.
pub const PLAYOUT_DELAY_BUCKETS: [f64; 9] = [0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.5];

/// Counters the control plane keeps.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// Sessions admitted.
    pub created: AtomicU64,
    /// Refused for capacity.
    pub refused_capacity: AtomicU64,
    /// Refused while draining.
    pub refused_draining: AtomicU64,
    /// Refused for lack of ports.
    pub refused_ports: AtomicU64,
    /// Ended by delete.
    pub ended_deleted: AtomicU64,
    /// Ended by a media timeout (any kind).
    pub ended_timeout: AtomicU64,
    /// Ended at the drain deadline.
    pub ended_drain_deadline: AtomicU64,
    /// Input packets lost, per leg, of ended sessions.
    pub lost: [AtomicU64; 2],
    /// Jitter at session end per leg: cumulative bucket counts (+Inf last).
    pub jitter_buckets: [[AtomicU64; JITTER_BUCKETS.len() + 1]; 2],
    /// Sum of jitter per leg, microseconds.
    pub jitter_sum_us: [AtomicU64; 2],
    /// Mean jitter buffer delay (Opus -> G.711) at session end: cumulative bucket counts.
    pub playout_delay_buckets: [AtomicU64; PLAYOUT_DELAY_BUCKETS.len() + 1],
    /// Sum of those means, microseconds.
    pub playout_delay_sum_us: AtomicU64,
    /// 1 while draining.
    pub draining: AtomicU64,
}

impl ControlCounters {
    /// Records a session's end.
    pub fn ended(&self, reason: Option<EndReason>, snapshot: &crate::engine::SessionSnapshot) {
        let counter = match reason {
            Some(EndReason::MediaTimeout)
            | Some(EndReason::OneSidedTimeout { .. })
            | Some(EndReason::NeverAnswered) => &self.ended_timeout,
            _ => &self.ended_deleted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        for (i, leg) in [&snapshot.leg_a, &snapshot.leg_b].into_iter().enumerate() {
            self.lost[i].fetch_add(leg.packets_lost, Ordering::Relaxed);
            let secs = leg.jitter.as_secs_f64();
            let bucket = JITTER_BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(JITTER_BUCKETS.len());
            self.jitter_buckets[i][bucket].fetch_add(1, Ordering::Relaxed);
            self.jitter_sum_us[i].fetch_add(leg.jitter.as_micros() as u64, Ordering::Relaxed);
        }
        let delay = snapshot.jitter.mean_delay;
        let bucket = PLAYOUT_DELAY_BUCKETS
            .iter()
            .position(|b| delay.as_secs_f64() <= *b)
            .unwrap_or(PLAYOUT_DELAY_BUCKETS.len());
        self.playout_delay_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.playout_delay_sum_us
            .fetch_add(delay.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Renders every metric in the Prometheus text format.
pub fn render(engine: &Engine, control: &ControlCounters) -> String {
    let mut out = String::with_capacity(8192);
    let cores = engine.cores();
    let counters = engine.counters();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

    header(
        &mut out,
        "bridgepool_worker_sessions",
        "gauge",
        "Live sessions per media core.",
    );
    for c in &cores {
        let _ = writeln!(
            out,
            "bridgepool_worker_sessions{{core=\"{}\"}} {}",
            c.core, c.sessions
        );
    }
    header(
        &mut out,
        "bridgepool_worker_jobs",
        "gauge",
        "Live one-way jobs per media core (their cost is in the core's headroom).",
    );
    for c in &cores {
        let _ = writeln!(
            out,
            "bridgepool_worker_jobs{{core=\"{}\"}} {}",
            c.core, c.jobs
        );
    }
    header(
        &mut out,
        "bridgepool_worker_relay_sessions",
        "gauge",
        "Live sessions relaying (passthrough) per media core, among bridgepool_worker_sessions.",
    );
    for c in &cores {
        let _ = writeln!(
            out,
            "bridgepool_worker_relay_sessions{{core=\"{}\"}} {}",
            c.core, c.relaying
        );
    }
    header(
        &mut out,
        "bridgepool_worker_sessions_created_total",
        "counter",
        "Sessions admitted.",
    );
    let _ = writeln!(
        out,
        "bridgepool_worker_sessions_created_total {}",
        load(&control.created)
    );
    header(
        &mut out,
        "bridgepool_worker_sessions_refused_total",
        "counter",
        "Session creates refused, by reason.",
    );
    for (reason, c) in [
        ("capacity", &control.refused_capacity),
        ("draining", &control.refused_draining),
        ("ports", &control.refused_ports),
    ] {
        let _ = writeln!(
            out,
            "bridgepool_worker_sessions_refused_total{{reason=\"{reason}\"}} {}",
            load(c)
        );
    }
    header(
        &mut out,
        "bridgepool_worker_sessions_ended_total",
        "counter",
        "Sessions ended, by reason.",
    );
    for (reason, c) in [
        ("deleted", &control.ended_deleted),
        ("timeout", &control.ended_timeout),
        ("drain_deadline", &control.ended_drain_deadline),
    ] {
        let _ = writeln!(
            out,
            "bridgepool_worker_sessions_ended_total{{reason=\"{reason}\"}} {}",
            load(c)
        );
    }
    for (name, help, pick) in [
        (
            "bridgepool_worker_packets_in_total",
            "Datagrams received, per leg.",
            0,
        ),
        (
            "bridgepool_worker_packets_out_total",
            "Datagrams sent, per leg.",
            1,
        ),
    ] {
        header(&mut out, name, "counter", help);
        for (i, leg) in ["a", "b"].iter().enumerate() {
            let sum: u64 = counters
                .iter()
                .map(|c| {
                    load(if pick == 0 {
                        &c.packets_in[i]
                    } else {
                        &c.packets_out[i]
                    })
                })
                .sum();
            let _ = writeln!(out, "{name}{{leg=\"{leg}\"}} {sum}");
        }
    }
    header(
        &mut out,
        "bridgepool_worker_packets_dropped_total",
        "counter",
        "Input dropped, by reason.",
    );
    for (i, reason) in DropReason::ALL.iter().enumerate() {
        let sum: u64 = counters.iter().map(|c| load(&c.drops[i])).sum();
        let _ = writeln!(
            out,
            "bridgepool_worker_packets_dropped_total{{reason=\"{}\"}} {sum}",
            reason.as_str()
        );
    }
    header(
        &mut out,
        "bridgepool_worker_session_panics_total",
        "counter",
        "Sessions and one-way jobs removed because handling them panicked (the rest of their core \
         carried on).",
    );
    let panics: u64 = counters.iter().map(|c| load(&c.session_panics)).sum();
    let _ = writeln!(out, "bridgepool_worker_session_panics_total {panics}");
    let name = "bridgepool_worker_frame_codec_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "Processing time per datagram or timer: decode, encode, packetize.",
    );
    let mut cumulative = 0;
    for (i, bound) in PROCESSING_BUCKETS.iter().enumerate() {
        cumulative += counters
            .iter()
            .map(|c| load(&c.processing_buckets[i]))
            .sum::<u64>();
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += counters
        .iter()
        .map(|c| load(&c.processing_buckets[PROCESSING_BUCKETS.len()]))
        .sum::<u64>();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let nanos: u64 = counters.iter().map(|c| load(&c.processing_nanos)).sum();
    let _ = writeln!(out, "{name}_sum {}", nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {cumulative}");

    header(
        &mut out,
        "bridgepool_worker_deadline_misses_total",
        "counter",
        "Frames served later than their deadline.",
    );
    for c in &cores {
        let _ = writeln!(
            out,
            "bridgepool_worker_deadline_misses_total{{core=\"{}\"}} {}",
            c.core, c.deadline_misses
        );
    }
    header(
        &mut out,
        "bridgepool_worker_core_busy_ratio",
        "gauge",
        "Busy time over wall time in the last second.",
    );
    for c in &cores {
        let _ = writeln!(
            out,
            "bridgepool_worker_core_busy_ratio{{core=\"{}\"}} {:.4}",
            c.core, c.busy
        );
    }
    for (name, help, pick) in [
        (
            "bridgepool_worker_core_media_busy_ratio",
            "Busy time serving media (set-up excluded) over wall time in the last second.",
            0,
        ),
        (
            "bridgepool_worker_core_predicted_busy_ratio",
            "Media busy share the cost model predicted for the last second's talking sessions.",
            1,
        ),
        (
            "bridgepool_worker_cost_prediction_error_ratio",
            "Predicted minus measured media busy share in the last second (positive: the model \
             overestimates the cost).",
            2,
        ),
        (
            "bridgepool_worker_session_cost_ratio",
            "Core share of one talking session in the cost model; every admitted session reserves it.",
            3,
        ),
    ] {
        header(&mut out, name, "gauge", help);
        for c in &cores {
            let v = match pick {
                0 => c.media_busy,
                1 => c.predicted_busy,
                2 => c.predicted_busy - c.media_busy,
                _ => c.session_cost,
            };
            let _ = writeln!(out, "{name}{{core=\"{}\"}} {v:.6}", c.core);
        }
    }
    header(
        &mut out,
        "bridgepool_worker_talking_sessions",
        "gauge",
        "Sessions that carried media in the last second, per media core.",
    );
    for c in &cores {
        let _ = writeln!(
            out,
            "bridgepool_worker_talking_sessions{{core=\"{}\"}} {}",
            c.core, c.talking
        );
    }
    header(
        &mut out,
        "bridgepool_worker_overloaded",
        "gauge",
        "1 while a media core is overloaded (sustained deadline misses or late drops): it admits nothing.",
    );
    for c in &cores {
        let _ = writeln!(
            out,
            "bridgepool_worker_overloaded{{core=\"{}\"}} {}",
            c.core,
            u8::from(c.overloaded)
        );
    }
    let capacity: u64 = cores.iter().map(|c| c.capacity).sum();
    let headroom: u64 = if load(&control.draining) == 1 {
        0
    } else {
        cores.iter().map(|c| c.headroom).sum()
    };
    header(
        &mut out,
        "bridgepool_worker_capacity_sessions",
        "gauge",
        "Measured session capacity.",
    );
    let _ = writeln!(out, "bridgepool_worker_capacity_sessions {capacity}");
    header(
        &mut out,
        "bridgepool_worker_headroom_sessions",
        "gauge",
        "Sessions this worker can still admit.",
    );
    let _ = writeln!(out, "bridgepool_worker_headroom_sessions {headroom}");
    header(
        &mut out,
        "bridgepool_worker_draining",
        "gauge",
        "1 while draining.",
    );
    let _ = writeln!(
        out,
        "bridgepool_worker_draining {}",
        load(&control.draining)
    );
    header(
        &mut out,
        "bridgepool_worker_rtp_lost_packets_total",
        "counter",
        "Input packets lost (sequence gaps), per leg, of ended sessions.",
    );
    for (i, leg) in ["a", "b"].iter().enumerate() {
        let _ = writeln!(
            out,
            "bridgepool_worker_rtp_lost_packets_total{{leg=\"{leg}\"}} {}",
            load(&control.lost[i])
        );
    }
    let name = "bridgepool_worker_rtp_jitter_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "RFC 3550 interarrival jitter at session end, per leg.",
    );
    for (i, leg) in ["a", "b"].iter().enumerate() {
        let mut cumulative = 0;
        for (b, bound) in JITTER_BUCKETS.iter().enumerate() {
            cumulative += load(&control.jitter_buckets[i][b]);
            let _ = writeln!(
                out,
                "{name}_bucket{{leg=\"{leg}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += load(&control.jitter_buckets[i][JITTER_BUCKETS.len()]);
        let _ = writeln!(
            out,
            "{name}_bucket{{leg=\"{leg}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "{name}_sum{{leg=\"{leg}\"}} {}",
            load(&control.jitter_sum_us[i]) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{leg=\"{leg}\"}} {cumulative}");
    }
    let name = "bridgepool_worker_playout_delay_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "Mean delay the Opus -> G.711 jitter buffer added over each ended session.",
    );
    let mut cumulative = 0;
    for (b, bound) in PLAYOUT_DELAY_BUCKETS.iter().enumerate() {
        cumulative += load(&control.playout_delay_buckets[b]);
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += load(&control.playout_delay_buckets[PLAYOUT_DELAY_BUCKETS.len()]);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "{name}_sum {}",
        load(&control.playout_delay_sum_us) as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count {cumulative}");
    header(
        &mut out,
        "bridgepool_worker_ports_in_use",
        "gauge",
        "RTP/RTCP port pairs held by sessions.",
    );
    let _ = writeln!(
        out,
        "bridgepool_worker_ports_in_use {}",
        engine.ports().in_use()
    );
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
