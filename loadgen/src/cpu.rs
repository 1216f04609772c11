//! CPU of processes from `/proc/PID/stat`: utime + stime deltas over wall time.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Linux reports utime and stime in USER_HZ ticks, fixed at 100 per second for user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// Why a process could not be sampled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpuError {
    /// `/proc/PID/stat` could not be read (the process is gone, or not Linux).
    #[error("reading /proc/{pid}/stat: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file does not have the expected fields.
    #[error("/proc/{pid}/stat is not in the expected format")]
    Format {
        /// The process.
        pid: u32,
    },
}

/// Total CPU time (user + system) of `pid` in seconds, and its command name.
pub fn cpu_seconds(pid: u32) -> Result<(f64, String), CpuError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|source| CpuError::Read { pid, source })?;
    parse_stat(&text).ok_or(CpuError::Format { pid })
}

/// Parses a `/proc/PID/stat` line: the command is in parentheses (and may hold spaces or
/// parentheses itself), utime and stime are fields 14 and 15.
pub fn parse_stat(text: &str) -> Option<(f64, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut fields = text.get(close + 1..)?.split_whitespace();
    // After the command: state is field 3, so utime (14) is the 12th word from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(((utime + stime) as f64 / TICKS_PER_SECOND, comm))
}

/// Samples the CPU use of processes, as a percentage of one core, between calls to
/// [`CpuSampler::sample`].
#[derive(Debug)]
pub struct CpuSampler {
    procs: Vec<Tracked>,
}

#[derive(Debug)]
struct Tracked {
    pid: u32,
    name: String,
    label: String,
    last: Option<(Instant, f64)>,
    first: Option<(Instant, f64)>,
}

/// One process's CPU over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSummary {
    /// Process id.
    pub pid: u32,
    /// Command name from /proc.
    pub name: String,
    /// `measured` or `loadgen`.
    pub role: String,
    /// Mean CPU over the run, percent of one core.
    pub mean_pct: f64,
    /// Largest sample, percent of one core.
    pub max_pct: f64,
}

impl CpuSampler {
    /// Tracks `measured` processes and the loadgen itself (listed last, unless it is one of the
    /// measured: the demo's pool runs inside the loadgen).
    pub fn new(measured: &[u32]) -> Self {
        let mut procs: Vec<Tracked> = measured
            .iter()
            .map(|&pid| Tracked::new(pid, "measured"))
            .collect();
        let me = std::process::id();
        if !measured.contains(&me) {
            procs.push(Tracked::new(me, "loadgen"));
        }
        let mut s = Self { procs };
        s.sample();
        s
    }

    /// Labels in the order of [`CpuSampler::sample`]'s values (`name:pid`).
    pub fn labels(&self) -> Vec<String> {
        self.procs
            .iter()
            .map(|p| format!("{}:{}", p.name, p.pid))
            .collect()
    }

    /// CPU percent of one core of each process since the previous sample (`None` when unreadable).
    pub fn sample(&mut self) -> Vec<Option<f64>> {
        let now = Instant::now();
        self.procs.iter_mut().map(|p| p.sample(now)).collect()
    }

    /// Means over the run.
    pub fn summaries(&self, maxima: &[f64]) -> Vec<CpuSummary> {
        self.procs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mean_pct = match (p.first, p.last) {
                    (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                        (c1 - c0) / (t1 - t0).as_secs_f64() * 100.0
                    }
                    _ => 0.0,
                };
                CpuSummary {
                    pid: p.pid,
                    name: p.name.clone(),
                    role: p.label.clone(),
                    mean_pct,
                    max_pct: maxima.get(i).copied().unwrap_or(0.0),
                }
            })
            .collect()
    }
}

impl Tracked {
    fn new(pid: u32, label: &str) -> Self {
        Self {
            pid,
            name: String::from("?"),
            label: label.to_owned(),
            last: None,
            first: None,
        }
    }

    fn sample(&mut self, now: Instant) -> Option<f64> {
        let (cpu, name) = cpu_seconds(self.pid).ok()?;
        self.name = name;
        let pct = self.last.and_then(|(t, c)| {
            let wall = now.saturating_duration_since(t).as_secs_f64();
            (wall > 0.0).then(|| (cpu - c) / wall * 100.0)
        });
        self.first.get_or_insert((now, cpu));
        self.last = Some((now, cpu));
        pct
    }
}
