//! Library configuration of a load run (the CLI maps onto it).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bridgepool_codecs::g711::Law;
use serde::{Deserialize, Serialize};

use crate::impair::Impairments;

/// How calls come and go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Mode {
    /// `calls` calls for `duration`.
    Fixed {
        /// Concurrent calls.
        calls: usize,
        /// Length of the run.
        duration: Duration,
    },
    /// Start with `start_calls`, add `step_calls` every `step_duration` until the service level
    /// breaks or `max_calls` held.
    Ramp {
        /// Calls in the first step.
        start_calls: usize,
        /// Calls added per step.
        step_calls: usize,
        /// Length of a step.
        step_duration: Duration,
        /// Stop after this many calls held.
        max_calls: usize,
    },
    /// Keep `calls` calls up for `duration`, each lasting a random time in
    /// `min_call..=max_call`, so set-up and teardown run under load.
    Churn {
        /// Concurrent calls.
        calls: usize,
        /// Length of the run.
        duration: Duration,
        /// Shortest call.
        min_call: Duration,
        /// Longest call.
        max_call: Duration,
    },
}

impl Mode {
    /// `fixed`, `ramp` or `churn`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fixed { .. } => "fixed",
            Self::Ramp { .. } => "ramp",
            Self::Churn { .. } => "churn",
        }
    }
}

/// The service level a density must hold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceLevel {
    /// Largest acceptable loss, percent.
    pub max_loss_pct: f64,
    /// Largest acceptable p99 added latency, ms.
    pub max_p99_ms: f64,
    /// Largest acceptable number of refused calls.
    pub max_refusals: u64,
    /// Lowest acceptable P.862.1 MOS-LQO NB of a sampled G.711 -> Opus stream (0: no floor).
    #[serde(default)]
    pub min_pesq_a_to_b: f64,
    /// Lowest acceptable P.862.1 MOS-LQO NB of a sampled Opus -> G.711 stream (0: no floor).
    #[serde(default)]
    pub min_pesq_b_to_a: f64,
}

/// The default quality floor per direction (P.862.1 MOS-LQO NB): "good" narrowband speech;
/// G.711 alone scores about 4.1-4.4 on these voices.
pub const DEFAULT_MIN_PESQ: f64 = 3.6;

impl Default for ServiceLevel {
    fn default() -> Self {
        Self {
            max_loss_pct: 0.1,
            max_p99_ms: 40.0,
            max_refusals: 0,
            min_pesq_a_to_b: DEFAULT_MIN_PESQ,
            min_pesq_b_to_a: DEFAULT_MIN_PESQ,
        }
    }
}

/// A load run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// How calls come and go.
    pub mode: Mode,
    /// Leg A's G.711 law.
    #[serde(with = "law_name")]
    pub law: Law,
    /// Share of calls (0..=1) offered with a codec both legs share; they must come back
    /// passthrough from bridgepool (no media sent), and are relayed by rtpengine.
    pub passthrough_share: f64,
    /// Calls whose audio is decoded and compared with the reference.
    pub quality_calls: usize,
    /// Folder for the scored audio as WAV (reference and received, aligned, 8 kHz).
    #[serde(default)]
    pub dump_audio: Option<std::path::PathBuf>,
    /// Processes whose CPU is sampled (the target's).
    pub measure_pids: Vec<u32>,
    /// Timeline resolution.
    pub sample_interval: Duration,
    /// What a density must hold.
    pub service_level: ServiceLevel,
    /// Seed for SSRCs, sequence numbers, timestamps, call durations and impairment schedules.
    pub seed: u64,
    /// Wait after a call's last packet before releasing it, for packets in flight.
    pub drain: Duration,
    /// Seeded network impairments per leg and direction.
    #[serde(default)]
    pub impairments: Impairments,
    /// Address the calls' media sockets bind to (and the target is told to send to).
    #[serde(default = "loopback")]
    pub media_ip: IpAddr,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

impl LoadConfig {
    /// A configuration with defaults around `mode`.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            law: Law::Ulaw,
            passthrough_share: 0.0,
            quality_calls: 2,
            dump_audio: None,
            measure_pids: Vec::new(),
            sample_interval: Duration::from_secs(1),
            service_level: ServiceLevel::default(),
            seed: 1,
            drain: Duration::from_millis(300),
            impairments: Impairments::default(),
            media_ip: loopback(),
        }
    }
}

mod law_name {
    use bridgepool_codecs::g711::Law;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(law: &Law, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match law {
            Law::Ulaw => "pcmu",
            Law::Alaw => "pcma",
        })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Law, D::Error> {
        match String::deserialize(d)?.as_str() {
            "pcma" => Ok(Law::Alaw),
            _ => Ok(Law::Ulaw),
        }
    }
}
