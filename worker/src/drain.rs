//! Drain: stop admitting, let live calls finish, end the stragglers at a deadline, then let the
//! process exit. Triggered by SIGTERM (Kubernetes scale-in, a spot reclaim hook) or the Drain call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Whether and until when the worker drains.
#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    default_deadline: Duration,
    started: Notify,
}

impl Drain {
    /// Not draining; a drain without its own deadline uses `default_deadline`.
    pub fn new(default_deadline: Duration) -> Self {
        Self {
            draining: AtomicBool::new(false),
            deadline: Mutex::new(None),
            default_deadline,
            started: Notify::new(),
        }
    }

    /// Starts draining (again: a shorter deadline wins).
    pub fn begin(&self, deadline: Option<Duration>) {
        let at = Instant::now() + deadline.unwrap_or(self.default_deadline);
        {
            let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
            *d = Some(d.map_or(at, |old| old.min(at)));
        }
        self.draining.store(true, Ordering::SeqCst);
        self.started.notify_waiters();
    }

    /// Whether new sessions are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// When stragglers are ended.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once a drain has begun.
    pub async fn started(&self) {
        loop {
            let notified = self.started.notified();
            if self.is_draining() {
                return;
            }
            notified.await;
        }
    }
}
