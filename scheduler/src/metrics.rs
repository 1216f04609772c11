//! The scheduler's Prometheus metrics (names in docs/architecture.md), rendered in the text
//! exposition format from atomics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::registry::{Registry, WorkerState};

/// Allocate latency bucket bounds, seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

/// Allocation outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// No worker had headroom.
    Refused,
    /// Offers we cannot bridge.
    Invalid,
    /// Workers failed.
    Error,
}

const OUTCOMES: [(&str, Outcome); 4] = [
    ("ok", Outcome::Ok),
    ("refused", Outcome::Refused),
    ("invalid", Outcome::Invalid),
    ("error", Outcome::Error),
];

/// Counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// [passthrough, transcode] x outcomes.
    allocations: [[AtomicU64; 4]; 2],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    /// [sessions, one-way jobs] that were on a worker when it was lost.
    lost: [AtomicU64; 2],
}

impl Metrics {
    /// Counts one session (`true`) or one-way job on a worker that was lost.
    pub fn lost_with_worker(&self, session: bool) {
        self.lost[usize::from(!session)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one Allocate.
    pub fn allocation(&self, transcode: bool, outcome: Outcome, took: Duration) {
        let o = OUTCOMES
            .iter()
            .position(|(_, x)| *x == outcome)
            .unwrap_or(3);
        self.allocations[usize::from(transcode)][o].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let b = LATENCY_BUCKETS
            .iter()
            .position(|x| secs <= *x)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[b].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Text exposition, with the pool figures from the registry.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "bridgepool_scheduler_lost_with_worker_total",
            "counter",
            "Sessions and one-way jobs that were on a worker when it was lost (their media stopped).",
        );
        for (i, kind) in ["session", "job"].iter().enumerate() {
            let _ = writeln!(
                out,
                "bridgepool_scheduler_lost_with_worker_total{{kind=\"{kind}\"}} {}",
                load(&self.lost[i])
            );
        }
        head(
            &mut out,
            "bridgepool_scheduler_allocations_total",
            "counter",
            "Allocate calls by decision and outcome.",
        );
        for (d, decision) in ["passthrough", "transcode"].iter().enumerate() {
            for (o, (outcome, _)) in OUTCOMES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "bridgepool_scheduler_allocations_total{{decision=\"{decision}\",outcome=\"{outcome}\"}} {}",
                    load(&self.allocations[d][o])
                );
            }
        }
        let name = "bridgepool_scheduler_allocate_duration_seconds";
        head(&mut out, name, "histogram", "Allocate latency.");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += load(&self.latency_buckets[i]);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += load(&self.latency_buckets[LATENCY_BUCKETS.len()]);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {cumulative}");

        // Utilization is of ready workers on both sides: draining workers' calls do not use ready
        // capacity and leave by themselves; counting them against it would jump at every
        // scale-in and make an autoscaler add back the worker it just removed.
        let (mut capacity, mut sessions, mut ready_sessions) = (0u64, 0u64, 0u64);
        let mut states = [0u64; 3];
        for (_, w) in registry.iter() {
            let i = match w.state {
                WorkerState::Ready => 0,
                WorkerState::Draining => 1,
                WorkerState::Lost => 2,
            };
            states[i] += 1;
            if w.state == WorkerState::Ready {
                capacity = capacity.saturating_add(w.stats.capacity_sessions);
                ready_sessions = ready_sessions.saturating_add(w.stats.live_sessions);
            }
            if w.state != WorkerState::Lost {
                sessions = sessions.saturating_add(w.stats.live_sessions);
            }
        }
        head(
            &mut out,
            "bridgepool_scheduler_pool_capacity_sessions",
            "gauge",
            "Measured capacity of ready workers.",
        );
        let _ = writeln!(
            out,
            "bridgepool_scheduler_pool_capacity_sessions {capacity}"
        );
        head(
            &mut out,
            "bridgepool_scheduler_pool_sessions",
            "gauge",
            "Live sessions on the pool.",
        );
        let _ = writeln!(out, "bridgepool_scheduler_pool_sessions {sessions}");
        head(
            &mut out,
            "bridgepool_scheduler_pool_utilization",
            "gauge",
            "Sessions on ready workers / their capacity: the autoscaling signal.",
        );
        let utilization = if capacity == 0 {
            0.0
        } else {
            ready_sessions as f64 / capacity as f64
        };
        let _ = writeln!(
            out,
            "bridgepool_scheduler_pool_utilization {utilization:.4}"
        );
        head(
            &mut out,
            "bridgepool_scheduler_workers",
            "gauge",
            "Workers by state.",
        );
        for (i, state) in ["ready", "draining", "lost"].iter().enumerate() {
            let _ = writeln!(
                out,
                "bridgepool_scheduler_workers{{state=\"{state}\"}} {}",
                states[i]
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bridgepool_proto::v1;

    use super::*;

    fn worker(id: &str, live: u64, draining: bool) -> v1::WorkerStatus {
        v1::WorkerStatus {
            stats: Some(v1::WorkerStats {
                worker_id: id.into(),
                endpoint: format!("http://{id}:50061"),
                capacity_sessions: 100,
                headroom_sessions: 100 - live,
                live_sessions: live,
                draining,
                cores: vec![],
                overloaded: false,
            }),
            session_ids: vec![],
        }
    }

    #[test]
    fn utilization_is_of_ready_workers_only() {
        let mut registry = Registry::new(Duration::from_secs(3));
        let now = Instant::now();
        registry.heartbeat(now, worker("ready", 10, false)).unwrap();
        registry
            .heartbeat(now, worker("leaving", 50, true))
            .unwrap();
        let text = Metrics::default().render(&registry);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_owned()
        };
        assert_eq!(
            line("bridgepool_scheduler_pool_utilization "),
            "bridgepool_scheduler_pool_utilization 0.1000"
        );
        assert_eq!(
            line("bridgepool_scheduler_pool_capacity_sessions "),
            "bridgepool_scheduler_pool_capacity_sessions 100"
        );
        assert_eq!(
            line("bridgepool_scheduler_pool_sessions "),
            "bridgepool_scheduler_pool_sessions 60"
        );
    }
}
