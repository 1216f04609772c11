//! Ramp: add calls step by step until the service level breaks; the highest density that held
//! is the answer.

use std::time::{Duration, Instant};

use crate::report::{RampOutcome, RampStep};
use crate::run::Run;
use crate::stats::LatencySummary;

impl Run<'_> {
    /// Ramps from `start` calls by `step` every `step_duration` up to `max`.
    pub(crate) async fn ramp(
        &mut self,
        start: usize,
        step: usize,
        step_duration: Duration,
        max: usize,
    ) -> RampOutcome {
        let mut outcome = RampOutcome::default();
        let mut target_calls = start.max(1);
        // A step broken by loss or latency is run once more before it counts: on a shared host
        // one stall of the whole machine (seen here: 200 ms, once a minute) breaks the p99 of a
        // step that the load itself holds. Refusals are the target's own answer: never retried.
        let mut confirming = false;
        loop {
            if !confirming {
                // A few of this step's new calls are sampled for PESQ over the step's length.
                self.quality_left = self.config.quality_calls;
                self.quality_step = Some(outcome.steps.len() as u64);
                self.quality_frames = crate::run::frames_of(step_duration);
            }
            let refused_before = self.counts.refused + self.counts.failed;
            while self.active.len() < target_calls {
                self.start_call(None).await;
                self.housekeeping().await;
                if self.counts.refused + self.counts.failed > refused_before {
                    break;
                }
            }
            let refused = self.counts.refused + self.counts.failed - refused_before;
            let mut latencies = Vec::new();
            // The first interval holds the set-up transient of the new calls.
            let step_start = Instant::now();
            let window_start = step_start + self.config.sample_interval.min(step_duration / 2);
            let step_end = step_start + step_duration;
            self.run_until(window_start, None).await;
            self.run_until(step_end, Some(&mut latencies)).await;
            // Packets sent at the end of the window land a little later: wait for them.
            self.run_until(step_end + self.config.drain, None).await;
            let loss_pct = self.window_loss_pct(window_start - self.epoch, step_end - self.epoch);
            let p99_ms = LatencySummary::from_samples(&mut latencies).p99_ms;
            let sl = self.config.service_level;
            let held = refused <= sl.max_refusals
                && loss_pct <= sl.max_loss_pct
                && p99_ms <= sl.max_p99_ms;
            let calls = self.active.len() as u64;
            outcome.steps.push(RampStep {
                calls,
                loss_pct,
                p99_ms,
                refused,
                held,
                ..RampStep::default()
            });
            self.progress.set_message(format!(
                "ramp: {calls} calls, loss {loss_pct:.3} %, p99 {p99_ms:.2} ms"
            ));
            if !held && refused <= sl.max_refusals && !confirming {
                confirming = true;
                continue;
            }
            confirming = false;
            if !held {
                outcome.stopped_because = if refused > sl.max_refusals {
                    format!("{refused} calls refused at {calls} calls")
                } else if loss_pct > sl.max_loss_pct {
                    format!(
                        "loss {loss_pct:.3} % > {} % at {calls} calls",
                        sl.max_loss_pct
                    )
                } else {
                    format!(
                        "p99 latency {p99_ms:.2} ms > {} ms at {calls} calls",
                        sl.max_p99_ms
                    )
                };
                break;
            }
            outcome.highest_held = calls;
            if self.active.len() >= max {
                outcome.stopped_because =
                    format!("reached --max-calls {max} with the service level held");
                break;
            }
            target_calls = (self.active.len() + step.max(1)).min(max);
        }
        outcome
    }
}
