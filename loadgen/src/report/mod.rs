//! The result of a load run and its three renderings: a table for the terminal, JSON, and a
//! self-contained HTML page with SVG plots.

pub mod html;
pub mod json;
pub mod table;

use serde::{Deserialize, Serialize};

use crate::config::LoadConfig;
use crate::cpu::CpuSummary;
use crate::impair::ImpairCounts;
use crate::pacer::PacerStats;
use crate::quality::{PesqSummary, QualityResult};
use crate::stats::StreamSummary;

/// What happened to the calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    /// Calls the loadgen tried to set up.
    pub attempted: u64,
    /// Calls the target transcoded.
    pub transcoded: u64,
    /// Shared-codec calls answered passthrough (no media through the target).
    pub passthrough: u64,
    /// Shared-codec calls the target relayed (media through it, no transcoding).
    pub relayed: u64,
    /// Shared-codec calls the target transcoded anyway (a negotiation mistake).
    pub passthrough_expected_but_transcoded: u64,
    /// Calls refused (capacity, draining).
    pub refused: u64,
    /// Calls that failed to set up for another reason.
    pub failed: u64,
    /// Releases that failed.
    pub release_errors: u64,
    /// Largest number of calls up at once.
    pub peak_concurrent: u64,
    /// The first few set-up errors, for the reader.
    pub errors: Vec<String>,
}

/// One point of the timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Calls up (all kinds).
    pub calls: u64,
    /// Calls with media through the target.
    pub media_calls: u64,
    /// RTP packets sent in the interval.
    pub sent: u64,
    /// RTP packets received in the interval.
    pub received: u64,
    /// Loss in the interval, percent (sent minus received; edges blur it slightly).
    pub loss_pct: f64,
    /// Latency percentiles in the interval, ms.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// CPU percent of one core per sampled process (in [`Report::cpu`] order).
    pub cpu_pct: Vec<Option<f64>>,
}

/// One step of a ramp.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RampStep {
    /// Calls up during the step.
    pub calls: u64,
    /// Loss over the step, percent.
    pub loss_pct: f64,
    /// p99 latency over the step, ms.
    pub p99_ms: f64,
    /// Calls refused while adding the step's calls.
    pub refused: u64,
    /// PESQ of the calls sampled in this step, G.711 -> Opus (scored after the run).
    #[serde(default)]
    pub pesq_a_to_b: PesqSummary,
    /// PESQ of the calls sampled in this step, Opus -> G.711.
    #[serde(default)]
    pub pesq_b_to_a: PesqSummary,
    /// Whether the step held the service level (the quality floor included, after scoring).
    pub held: bool,
}

/// The outcome of a ramp.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RampOutcome {
    /// The highest number of concurrent calls that held the service level.
    pub highest_held: u64,
    /// Why the ramp stopped.
    pub stopped_because: String,
    /// Each step.
    pub steps: Vec<RampStep>,
}

/// Measurements of one direction through the target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    /// `a_to_b` (G.711 in, Opus out) or `b_to_a` (Opus in, G.711 out).
    pub name: String,
    /// Summed measurement.
    pub summary: StreamSummary,
    /// MOS estimated from loss, jitter and latency (E-model, G.107), not a listening score.
    pub mos: f64,
    /// PESQ of the sampled calls (a listening score).
    #[serde(default)]
    pub pesq: PesqSummary,
}

/// Loss of the calls one host (a worker) held.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLoss {
    /// The host (worker id).
    pub host: String,
    /// Media calls it held.
    pub calls: u64,
    /// Packets that should have arrived, both directions.
    pub expected: u64,
    /// Packets that did not.
    pub lost: u64,
}

impl HostLoss {
    /// Lost over expected, percent.
    pub fn loss_pct(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / self.expected as f64
        }
    }
}

/// A load run's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `bridgepool` or `rtpengine`.
    pub target: String,
    /// Configuration.
    pub config: Option<LoadConfig>,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
    /// Length of the run, s.
    pub duration_s: f64,
    /// What happened to the calls.
    pub calls: CallCounts,
    /// Per direction.
    pub directions: Vec<Direction>,
    /// Both directions summed.
    pub total: StreamSummary,
    /// Loss per host that held calls, when the target names it (bridgepool's workers).
    #[serde(default)]
    pub per_host: Vec<HostLoss>,
    /// MOS estimated from loss, jitter and latency over both directions (E-model).
    pub mos: f64,
    /// What the load was (voices, clients, mix).
    #[serde(default)]
    pub load: String,
    /// What the send-side impairments did.
    #[serde(default)]
    pub impaired_tx: ImpairCounts,
    /// What the receive-side impairments did.
    #[serde(default)]
    pub impaired_rx: ImpairCounts,
    /// Audio quality of the sampled calls.
    pub quality: Vec<QualityResult>,
    /// CPU per sampled process; the loadgen last.
    pub cpu: Vec<CpuSummary>,
    /// Mean CPU of the measured processes per media call, percent of one core (0 when not
    /// measured).
    pub cpu_pct_per_call: f64,
    /// Per interval.
    pub timeline: Vec<TimelinePoint>,
    /// Ramp outcome (ramp mode only).
    pub ramp: Option<RampOutcome>,
    /// The sender's own figures.
    pub pacer: PacerStats,
    /// Whether the run held the service level.
    pub service_level_held: bool,
}
