//! Churn: N calls up at a time, each of random length, so set-up and teardown run under load.

use rand::Rng;

use std::time::{Duration, Instant};

use crate::run::Run;

/// How often churn looks for calls to end and replace.
const CHURN_GRANULARITY: Duration = Duration::from_millis(50);

impl Run<'_> {
    /// Keeps `calls` calls up for `duration`, each lasting `min_call..=max_call`.
    pub(crate) async fn churn(
        &mut self,
        calls: usize,
        duration: Duration,
        min_call: Duration,
        max_call: Duration,
    ) {
        let end = Instant::now() + duration;
        let (lo, hi) = (min_call.min(max_call), min_call.max(max_call));
        while Instant::now() < end {
            let now = Instant::now();
            let due: Vec<usize> = (0..self.active.len())
                .filter(|&i| self.active[i].ends_at.is_some_and(|t| t <= now))
                .collect();
            for i in due.into_iter().rev() {
                let call = self.active.swap_remove(i);
                self.end_call(call);
            }
            // One try per missing call a pass: a refused call is tried again next pass, so a
            // full target never keeps this loop from ending the calls that are due.
            let missing = calls.saturating_sub(self.active.len());
            for _ in 0..missing {
                if Instant::now() >= end {
                    break;
                }
                let length = Duration::from_secs_f64(
                    self.rng.random_range(lo.as_secs_f64()..=hi.as_secs_f64()),
                );
                self.start_call(Some(Instant::now() + length)).await;
                self.housekeeping().await;
            }
            self.run_until((Instant::now() + CHURN_GRANULARITY).min(end), None)
                .await;
        }
    }
}
