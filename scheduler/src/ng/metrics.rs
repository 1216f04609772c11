//! ng front-door counters, rendered into the scheduler's /metrics: requests by command and
//! outcome, reply latency, and jobs created by codec pair.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::pairs::JobCodec;

/// Commands counted apart; anything else is `other`, an undecodable datagram `malformed`.
pub const COMMANDS: [&str; 10] = [
    "ping",
    "transform",
    "delete",
    "query",
    "list",
    "statistics",
    "other",
    "malformed",
    "offer",
    "answer",
];
/// Index of `malformed` in [`COMMANDS`].
pub const MALFORMED: usize = 7;
/// `ok` (also `pong`), `error`, `cached` (a resend answered from the cookie cache), or
/// `load_limit` (a new call refused for capacity with `result: load limit`).
pub const OUTCOMES: [&str; 4] = ["ok", "error", "cached", "load_limit"];
const BUCKETS: [f64; 9] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25];
const CODECS: [JobCodec; 3] = [JobCodec::Pcmu, JobCodec::Pcma, JobCodec::Opus];

/// The counters (lock-free; shared by the ng tasks and the /metrics handler).
#[derive(Debug, Default)]
pub struct NgMetrics {
    requests: [[AtomicU64; 4]; 10],
    latency: [AtomicU64; 10],
    latency_sum_us: AtomicU64,
    jobs: [[AtomicU64; 3]; 3],
    panics: AtomicU64,
    rate_limited: AtomicU64,
}

fn codec_index(c: JobCodec) -> usize {
    CODECS.iter().position(|x| *x == c).unwrap_or(0)
}

fn codec_name(c: JobCodec) -> &'static str {
    match c {
        JobCodec::Pcmu => "PCMU",
        JobCodec::Pcma => "PCMA",
        JobCodec::Opus => "opus",
    }
}

impl NgMetrics {
    /// Index of a command name in [`COMMANDS`].
    pub fn command_index(command: &str) -> usize {
        COMMANDS
            .iter()
            .position(|c| c.eq_ignore_ascii_case(command))
            .unwrap_or(6)
    }

    /// One reply: command index, outcome index, and (for handled requests) how long it took.
    pub fn reply(&self, command: usize, outcome: usize, took: Option<Duration>) {
        self.requests[command.min(COMMANDS.len() - 1)][outcome.min(OUTCOMES.len() - 1)]
            .fetch_add(1, Ordering::Relaxed);
        if let Some(took) = took {
            let secs = took.as_secs_f64();
            let b = BUCKETS
                .iter()
                .position(|x| secs <= *x)
                .unwrap_or(BUCKETS.len());
            self.latency[b].fetch_add(1, Ordering::Relaxed);
            self.latency_sum_us
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// A request whose handling panicked (answered `error`; the server went on).
    pub fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// A datagram dropped because its source was over its rate.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A job created for a pair.
    pub fn job(&self, input: JobCodec, output: JobCodec) {
        self.jobs[codec_index(input)][codec_index(output)].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the text exposition.
    pub fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let name = "bridgepool_scheduler_ng_panics_total";
        let _ = writeln!(
            out,
            "# HELP {name} ng requests whose handling panicked (answered error; the server went on).\n# TYPE {name} counter\n{name} {}",
            load(&self.panics)
        );
        let name = "bridgepool_scheduler_ng_rate_limited_total";
        let _ = writeln!(
            out,
            "# HELP {name} ng datagrams dropped because their source was over --ng-rate-limit.\n# TYPE {name} counter\n{name} {}",
            load(&self.rate_limited)
        );
        let name = "bridgepool_scheduler_ng_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} ng requests by command and outcome.\n# TYPE {name} counter"
        );
        for (c, command) in COMMANDS.iter().enumerate() {
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{command=\"{command}\",outcome=\"{outcome}\"}} {}",
                    load(&self.requests[c][o])
                );
            }
        }
        let name = "bridgepool_scheduler_ng_reply_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} ng reply latency (handled requests).\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += load(&self.latency[i]);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += load(&self.latency[BUCKETS.len()]);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {cumulative}");
        let name = "bridgepool_scheduler_ng_jobs_created_total";
        let _ = writeln!(
            out,
            "# HELP {name} One-way jobs created, by codec pair.\n# TYPE {name} counter"
        );
        for i in CODECS {
            for o in CODECS {
                if i != o {
                    let _ = writeln!(
                        out,
                        "{name}{{input=\"{}\",output=\"{}\"}} {}",
                        codec_name(i),
                        codec_name(o),
                        load(&self.jobs[codec_index(i)][codec_index(o)])
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = NgMetrics::default();
        m.reply(
            NgMetrics::command_index("transform"),
            0,
            Some(Duration::from_micros(800)),
        );
        m.reply(
            NgMetrics::command_index("start recording"),
            1,
            Some(Duration::from_micros(50)),
        );
        m.reply(NgMetrics::command_index("offer"), 3, None);
        m.job(JobCodec::Pcmu, JobCodec::Opus);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "bridgepool_scheduler_ng_requests_total{command=\"transform\",outcome=\"ok\"} 1"
        ));
        assert!(out.contains(
            "bridgepool_scheduler_ng_requests_total{command=\"other\",outcome=\"error\"} 1"
        ));
        assert!(out.contains(
            "bridgepool_scheduler_ng_requests_total{command=\"offer\",outcome=\"load_limit\"} 1"
        ));
        assert!(
            out.contains("bridgepool_scheduler_ng_reply_duration_seconds_bucket{le=\"0.001\"} 2")
        );
        assert!(out.contains(
            "bridgepool_scheduler_ng_jobs_created_total{input=\"PCMU\",output=\"opus\"} 1"
        ));
    }
}
