//! Counters a media thread keeps for Prometheus. Each thread has its own set (no sharing on the
//! packet path: relaxed increments on memory only this thread writes); the exporter sums them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::session::DropReason;

/// Upper bounds (seconds) of the processing-time histogram buckets.
pub const PROCESSING_BUCKETS: [f64; 10] = [
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 20e-3,
];

/// One media thread's counters.
#[derive(Debug, Default)]
pub struct CoreCounters {
    /// Datagrams received, per leg (A, B).
    pub packets_in: [AtomicU64; 2],
    /// Datagrams sent, per leg.
    pub packets_out: [AtomicU64; 2],
    /// Drops, indexed like [`DropReason::ALL`].
    pub drops: [AtomicU64; DropReason::ALL.len()],
    /// Failed sends.
    pub send_errors: AtomicU64,
    /// Sessions and jobs removed because handling them panicked.
    pub session_panics: AtomicU64,
    /// Processing time per datagram or timer (decode, resample, encode, packetize), cumulative
    /// bucket counts like Prometheus (`le` = [`PROCESSING_BUCKETS`], then +Inf).
    pub processing_buckets: [AtomicU64; PROCESSING_BUCKETS.len() + 1],
    /// Sum of processing time, nanoseconds.
    pub processing_nanos: AtomicU64,
}

impl CoreCounters {
    /// Counts one drop.
    pub fn dropped(&self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason) {
            self.drops[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one processing time.
    pub fn observe_processing(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = PROCESSING_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(PROCESSING_BUCKETS.len());
        self.processing_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.processing_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
}
