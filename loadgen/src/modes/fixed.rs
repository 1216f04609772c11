//! Fixed: N calls for T seconds.

use std::time::{Duration, Instant};

use crate::run::Run;

impl Run<'_> {
    /// Starts `calls` calls and holds them for `duration`.
    pub(crate) async fn fixed(&mut self, calls: usize, duration: Duration) {
        let end = Instant::now() + duration;
        for _ in 0..calls {
            self.start_call(None).await;
            self.housekeeping().await;
        }
        self.run_until(end, None).await;
    }
}
