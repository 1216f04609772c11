//! What a media core measures about itself: busy time, missed frame deadlines, and from those
//! the number of sessions it can carry. Capacity is measured, not configured: a startup
//! calibration gives the first estimate, live busy time per session replaces it under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default busy share of a core we admit sessions up to; the rest absorbs bursts and control work.
pub const TARGET_BUSY: f64 = 0.80;
/// A timer served this late counts as a missed frame deadline.
pub const MISS_TOLERANCE: Duration = Duration::from_millis(5);
/// Sessions needed before the live per-session cost is trusted over the calibration.
const LIVE_TRUST_SESSIONS: usize = 4;
const WINDOW: Duration = Duration::from_secs(1);
/// Windows running with missed deadlines that close admission however lightly loaded the core.
const PERSISTENT_MISS_WINDOWS: u32 = 5;

/// Figures one media thread publishes for the control plane and metrics. Written by the media
/// thread only, read by anyone; each thread has its own.
#[derive(Debug, Default)]
pub struct CoreFigures {
    /// Live sessions.
    pub sessions: AtomicU64,
    /// Busy share over the last window, in parts per million.
    pub busy_ppm: AtomicU64,
    /// Sessions this core can carry at [`TARGET_BUSY`].
    pub capacity: AtomicU64,
    /// Missed frame deadlines since start.
    pub deadline_misses: AtomicU64,
    /// Misses in the last window when they count as sustained: the window before missed too
    /// and the core is over half its admission target, or misses went on for
    /// `PERSISTENT_MISS_WINDOWS` windows running whatever the load.
    pub recent_misses: AtomicU64,
}

impl CoreFigures {
    /// Sessions it can still admit (0 while misses are sustained, see `recent_misses`).
    pub fn headroom(&self) -> u64 {
        if self.recent_misses.load(Ordering::Relaxed) > 0 {
            return 0;
        }
        let capacity = self.capacity.load(Ordering::Relaxed);
        capacity.saturating_sub(self.sessions.load(Ordering::Relaxed))
    }

    /// Busy share over the last window (0..=1).
    pub fn busy(&self) -> f64 {
        self.busy_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// The media thread's own accounting.
#[derive(Debug)]
pub(super) struct LoadMeter {
    window_start: Instant,
    busy: Duration,
    misses: u64,
    /// Windows running, up to this one's predecessor, that missed a deadline.
    missing_windows: u32,
    /// Session-seconds carried in the window so far, and where that count stands.
    session_time: f64,
    sessions_since: (Instant, usize),
    /// Core share one session costs, from the calibration.
    calibrated_cost: f64,
    /// Smoothed live cost per session.
    live_cost: Option<f64>,
    /// Busy share admission stops at.
    target_busy: f64,
}

impl LoadMeter {
    /// Starts measuring with a calibrated per-session cost (share of a core).
    pub(super) fn new(now: Instant, calibrated_cost: f64, target_busy: f64) -> Self {
        Self {
            target_busy,
            window_start: now,
            busy: Duration::ZERO,
            misses: 0,
            missing_windows: 0,
            session_time: 0.0,
            sessions_since: (now, 0),
            calibrated_cost: calibrated_cost.max(1e-4),
            live_cost: None,
        }
    }

    /// Adds a busy stretch.
    pub(super) fn busy(&mut self, d: Duration) {
        self.busy += d;
    }

    /// Counts a missed deadline.
    pub(super) fn miss(&mut self, figures: &CoreFigures) {
        self.misses += 1;
        figures.deadline_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes the live session count (called every loop turn), closes the window when it is over
    /// and publishes the figures.
    pub(super) fn roll(&mut self, now: Instant, sessions: usize, figures: &CoreFigures) {
        let (since, carried) = self.sessions_since;
        self.session_time += carried as f64 * now.saturating_duration_since(since).as_secs_f64();
        self.sessions_since = (now, sessions);
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        let busy = (self.busy.as_secs_f64() / elapsed.as_secs_f64()).min(1.0);
        // The cost per session is the busy share over the sessions carried on average over the
        // window, not over the count at its end: when calls end (or start) in a burst, the
        // count at the end would put a whole window's work on the few sessions left.
        let carried = self.session_time / elapsed.as_secs_f64();
        if carried >= 1.0 {
            let sample = busy / carried;
            self.live_cost = Some(match self.live_cost {
                Some(c) => c * 0.7 + sample * 0.3,
                None => sample,
            });
        }
        let cost = match self.live_cost {
            // Never below half the calibration: sessions set up but not yet carrying media
            // (ringing) cost almost nothing, and must not make room for twice what fits.
            Some(live) if sessions >= LIVE_TRUST_SESSIONS => live.max(self.calibrated_cost * 0.5),
            Some(live) => live.max(self.calibrated_cost),
            None => self.calibrated_cost,
        };
        figures
            .capacity
            .store((self.target_busy / cost).floor() as u64, Ordering::Relaxed);
        figures
            .busy_ppm
            .store((busy * 1e6) as u64, Ordering::Relaxed);
        // One late stretch (a host stall, a page fault storm) makes every timer due in it late
        // at once: that says nothing about load. Misses in two windows running do, when the
        // core is busy enough for load to explain them. On a core under half its admission
        // target, the odd stalled second is the host's and refusing calls would not help; but
        // misses second after second (CPU quota throttling, steal time, a neighbour) mean the
        // core is not really ours, and new calls belong elsewhere.
        let missing = if self.misses > 0 {
            self.missing_windows + 1
        } else {
            0
        };
        let loaded = busy >= self.target_busy * 0.5;
        let sustained = if (missing >= 2 && loaded) || missing >= PERSISTENT_MISS_WINDOWS {
            self.misses
        } else {
            0
        };
        figures.recent_misses.store(sustained, Ordering::Relaxed);
        self.missing_windows = missing;
        // `sessions` is the shard's; the control plane counts creates in flight on top of it
        // (the shard stores its own count on every insert and removal).
        self.window_start = now;
        self.busy = Duration::ZERO;
        self.misses = 0;
        self.session_time = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_follows_measured_cost() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, 0.01, TARGET_BUSY);
        // The shard keeps the live count itself.
        figures.sessions.store(10, Ordering::Relaxed);
        // No session carried yet: the calibration decides.
        meter.roll(t0 + WINDOW, 10, &figures);
        assert_eq!(figures.capacity.load(Ordering::Relaxed), 80);
        // 10 sessions keep the core 50 % busy: 5 % each, so 16 fit under 80 %.
        meter.busy(Duration::from_millis(500));
        meter.roll(t0 + WINDOW * 2, 10, &figures);
        assert_eq!(figures.capacity.load(Ordering::Relaxed), 16);
        assert_eq!(figures.headroom(), 6);
        meter.miss(&figures);
        meter.busy(Duration::from_millis(500));
        meter.roll(t0 + WINDOW * 3, 10, &figures);
        assert_eq!(
            figures.headroom(),
            6,
            "one late window is a stall, not load"
        );
        meter.miss(&figures);
        meter.busy(Duration::from_millis(500));
        meter.roll(t0 + WINDOW * 4, 10, &figures);
        assert_eq!(
            figures.headroom(),
            0,
            "misses window after window close admission"
        );
        meter.busy(Duration::from_millis(500));
        meter.roll(t0 + WINDOW * 5, 10, &figures);
        assert_eq!(figures.headroom(), 6, "and a clean window opens it again");
    }

    #[test]
    fn misses_on_a_lightly_loaded_core_do_not_close_admission() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, 0.01, TARGET_BUSY);
        figures.sessions.store(10, Ordering::Relaxed);
        meter.roll(t0, 10, &figures);
        // Host stalls in three seconds running while ten calls keep the core 10 % busy.
        for window in 1..=3 {
            meter.miss(&figures);
            meter.busy(Duration::from_millis(100));
            meter.roll(t0 + WINDOW * window, 10, &figures);
        }
        assert_eq!(figures.deadline_misses.load(Ordering::Relaxed), 3);
        assert_eq!(figures.recent_misses.load(Ordering::Relaxed), 0);
        assert_eq!(
            figures.headroom(),
            70,
            "0.8 / 1 % = 80 sessions, 10 carried"
        );
        // The same misses with the core 60 % busy are load's: admission closes.
        meter.miss(&figures);
        meter.busy(Duration::from_millis(600));
        meter.roll(t0 + WINDOW * 4, 10, &figures);
        assert_eq!(figures.headroom(), 0);
    }

    #[test]
    fn misses_second_after_second_close_admission_however_light_the_load() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, 0.01, TARGET_BUSY);
        figures.sessions.store(10, Ordering::Relaxed);
        meter.roll(t0, 10, &figures);
        // A throttled or stolen core: late timers every second at 10 % busy.
        for window in 1..PERSISTENT_MISS_WINDOWS {
            meter.miss(&figures);
            meter.busy(Duration::from_millis(100));
            meter.roll(t0 + WINDOW * window, 10, &figures);
            assert_eq!(figures.headroom(), 70, "window {window}");
        }
        meter.miss(&figures);
        meter.busy(Duration::from_millis(100));
        meter.roll(t0 + WINDOW * PERSISTENT_MISS_WINDOWS, 10, &figures);
        assert_eq!(figures.headroom(), 0, "five seconds of misses running");
        meter.busy(Duration::from_millis(100));
        meter.roll(t0 + WINDOW * (PERSISTENT_MISS_WINDOWS + 1), 10, &figures);
        assert_eq!(figures.headroom(), 70, "a clean second opens it again");
    }

    #[test]
    fn sessions_without_media_do_not_open_unbounded_capacity() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, 0.01, TARGET_BUSY);
        meter.roll(t0, 10, &figures);
        // Ten ringing calls: the core is idle.
        meter.busy(Duration::from_micros(100));
        meter.roll(t0 + WINDOW, 10, &figures);
        assert_eq!(
            figures.capacity.load(Ordering::Relaxed),
            160,
            "0.8 / (0.01 / 2)"
        );
    }

    #[test]
    fn calls_ending_together_do_not_inflate_the_cost() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, 0.01, TARGET_BUSY);
        meter.roll(t0, 10, &figures);
        meter.busy(Duration::from_millis(400));
        meter.roll(t0 + WINDOW, 10, &figures);
        assert_eq!(figures.capacity.load(Ordering::Relaxed), 20);
        // Nine of the ten end 900 ms into the next window, which was as busy as the last.
        meter.busy(Duration::from_millis(400));
        meter.roll(t0 + WINDOW + Duration::from_millis(900), 1, &figures);
        meter.roll(t0 + WINDOW * 2, 1, &figures);
        let capacity = figures.capacity.load(Ordering::Relaxed);
        // 9.1 sessions on average carried 40 %: about 4.4 % each, not 40 % for the one left.
        assert!((18..=20).contains(&capacity), "capacity {capacity}");
    }
}
