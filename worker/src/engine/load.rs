//! What a media core measures about itself, and the number of sessions it can carry.
//!
//! The cost model does not depend on who is talking right now:
//! - a talking session costs `scale * (a_to_b + b_to_a)` of a core, where `a_to_b` (G.711 in,
//!   Opus out) and `b_to_a` (Opus in, G.711 out) come from the start-up calibration and `scale`
//!   is learnt live: measured media busy share over the share the calibration predicts for the
//!   directions that actually carried media in the window;
//! - every admitted session reserves that full two-way cost, ringing or not, so capacity is
//!   `target_busy / cost` and headroom is capacity minus admitted sessions;
//! - session set-up (the command queue) is kept out of the media busy time, and windows without
//!   enough media to measure leave `scale` alone: idle sessions cannot raise capacity and set-up
//!   bursts cannot lower it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Default busy share of a core we admit sessions up to; the rest absorbs bursts and control work.
pub const TARGET_BUSY: f64 = 0.80;
/// A timer served this late counts as a missed frame deadline.
pub const MISS_TOLERANCE: Duration = Duration::from_millis(5);
/// Length of one measurement window.
pub(super) const WINDOW: Duration = Duration::from_secs(1);
/// Missed deadlines a window needs to count as missing: at least this many, and at least
/// [`MISS_SHARE`] of the timers served in it. A timer a few milliseconds late costs no audio
/// (the far end's jitter buffer absorbs it); the odd one behind a burst of input is not overload.
const MISS_MIN: u64 = 3;
/// Share of a window's timers that must be missed for the window to count, as late drops
/// count at [`LATE_SHARE`] of the input.
const MISS_SHARE: f64 = 0.01;
/// Windows running with missed deadlines that close admission however lightly loaded the core.
const PERSISTENT_MISS_WINDOWS: u32 = 5;
/// Predicted media share below which a window says too little to correct the model (a couple of
/// talking calls: timer noise and cache effects would dominate the sample).
const MIN_SAMPLE_SHARE: f64 = 0.02;
/// Weight of a new window in the live scale: within ~5 windows of load it holds 80 % of a step.
const SCALE_GAIN: f64 = 0.3;
/// Bounds of the live scale over the calibration: one odd window (a page-fault storm, a
/// neighbour's burst) cannot make capacity explode or vanish.
const SCALE_BOUNDS: (f64, f64) = (0.25, 4.0);
/// Late input drops in one window that, with at least [`LATE_SHARE`] of its input, mean the core
/// is not keeping up.
const LATE_MIN: u64 = 10;
/// See [`LATE_MIN`].
const LATE_SHARE: f64 = 0.01;

/// Calibrated core share of one talking direction (fraction of a core for one call's worth of
/// media in that direction, e.g. 0.002).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirectionCosts {
    /// G.711 in on leg A, Opus out on leg B.
    pub a_to_b: f64,
    /// Opus in on leg B, G.711 out on leg A.
    pub b_to_a: f64,
    /// A passthrough session relaying both ways (the two directions together).
    pub relay: f64,
}

impl DirectionCosts {
    /// A two-way session's cost split evenly (a fixed cost given by the operator); a relay is
    /// put at [`RELAY_SHARE`] of it.
    pub fn even(session: f64) -> Self {
        let session = session.max(1e-5);
        Self {
            a_to_b: session / 2.0,
            b_to_a: session / 2.0,
            relay: session * RELAY_SHARE,
        }
    }

    /// What a session reserves for its life (or until an update changes it).
    pub fn reserve(&self, reserve: Reserve) -> f64 {
        match reserve {
            Reserve::Transcode => self.session().max(2e-5),
            Reserve::Relay => self.relay.max(1e-6),
        }
    }

    /// The cost of a session talking both ways.
    pub fn session(&self) -> f64 {
        self.a_to_b + self.b_to_a
    }

    /// The calibrated cost of a one-way job running `kind`.
    pub fn job(&self, kind: JobKind) -> f64 {
        match kind {
            JobKind::ToOpus => self.a_to_b,
            JobKind::ToG711 => self.b_to_a,
            JobKind::Recode => self.session() * RECODE_SHARE,
        }
    }
}

/// What an admitted session holds in its core's budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// The calibrated two-way transcoding cost: a transcoding session, or a passthrough one
    /// that may still switch to transcoding (its answer is not known yet) and must not be
    /// refused then.
    Transcode,
    /// The calibrated relay cost: a passthrough session that settled on passthrough.
    Relay,
}

/// Share of a two-way transcoding session's cost a relay is given when the costs are not
/// calibrated (`--session-cost`): the relay over transcode ratio per call measured by
/// `scripts/bench-relay.sh` (0.21-0.23; docs/performance.md, "Passthrough relay cost"),
/// rounded up.
pub const RELAY_SHARE: f64 = 0.25;

/// Share of a two-way session's cost a PCMU <-> PCMA job reserves: a table lookup per sample
/// and the same two syscalls per packet as a direction. An estimate, not calibrated; the live
/// scale corrects it with everything else.
pub const RECODE_SHARE: f64 = 0.1;

/// Which one-way direction a job runs, for its cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// G.711 in, Opus out: a session's `a_to_b`.
    ToOpus,
    /// Opus in, G.711 out: a session's `b_to_a`.
    ToG711,
    /// PCMU <-> PCMA.
    Recode,
}

/// Two-way sessions a budget holds, from the same integers admission compares (the budget and
/// the calibrated session cost in ppm), so the capacity reported is exactly what is admitted: in
/// floating point the two could differ by one at a boundary.
fn capacity_of(budget_ppm: u64, calibrated: DirectionCosts) -> u64 {
    budget_ppm / ppm(calibrated.session().max(2e-5)).max(1)
}

/// A core share as integer parts per million (reservations are summed as integers so a
/// release gives back exactly what was taken).
pub(super) fn ppm(share: f64) -> u64 {
    (share.max(0.0) * 1e6).round() as u64
}

/// Figures one media thread publishes for the control plane and metrics. Written by the media
/// thread only (except `reserved_ppm`, which the control plane bumps for creates it admits), read
/// by anyone; each thread has its own.
#[derive(Debug, Default)]
pub struct CoreFigures {
    /// Admitted sessions, ringing or talking (the media thread's count).
    pub sessions: AtomicU64,
    /// Admitted one-way jobs (the media thread's count).
    pub jobs: AtomicU64,
    /// Admitted sessions relaying now (passthrough), among `sessions`.
    pub relaying: AtomicU64,
    /// Calibrated cost reserved by the admitted sessions and jobs, ppm of a core (unscaled: the
    /// live scale applies to the budget instead). One counter for creates in flight and live
    /// ones: the control plane adds a create's cost when it admits it (under its lock), the media
    /// thread owns it from the moment the command is queued and gives it back when the create
    /// fails or the session ends. Two counters handed over between threads were briefly counted
    /// twice, and a burst of Allocates was refused below capacity in that moment.
    pub reserved_ppm: AtomicU64,
    /// What the core may reserve in calibrated cost, ppm: the admission target over the live
    /// scale.
    pub budget_ppm: AtomicU64,
    /// Calibrated cost of one two-way session, ppm.
    pub session_base_ppm: AtomicU64,
    /// Busy share over the last window, in parts per million (media and set-up work).
    pub busy_ppm: AtomicU64,
    /// Media busy share over the last window (set-up excluded), ppm.
    pub media_busy_ppm: AtomicU64,
    /// Media busy share the model predicted for the last window's talking directions, ppm.
    pub predicted_busy_ppm: AtomicU64,
    /// Sessions that carried media (either direction) in the last window.
    pub talking: AtomicU64,
    /// Sessions this core can carry at its admission target, every one reserving a talking
    /// session's cost.
    pub capacity: AtomicU64,
    /// Core share of one talking two-way session, ppm (calibration times the live scale).
    pub session_cost_ppm: AtomicU64,
    /// Missed frame deadlines since start.
    pub deadline_misses: AtomicU64,
    /// Misses in the last window when they count as sustained: the window before missed too
    /// and the core is over half its admission target, or misses went on for
    /// `PERSISTENT_MISS_WINDOWS` windows running whatever the load.
    pub recent_misses: AtomicU64,
    /// 1 while the core is overloaded: sustained deadline misses or late input drops above
    /// [`LATE_SHARE`] of its input. Admission is closed meanwhile.
    pub overloaded: AtomicU64,
}

impl CoreFigures {
    /// Sessions it can still admit: the budget left after the sessions' and jobs' reservations,
    /// in two-way sessions; 0 while overloaded.
    pub fn headroom(&self) -> u64 {
        self.free_ppm() / self.session_base_ppm.load(Ordering::Relaxed).max(1)
    }

    /// Calibrated cost it can still reserve, ppm; 0 while overloaded.
    pub fn free_ppm(&self) -> u64 {
        if self.is_overloaded() {
            return 0;
        }
        self.budget_ppm
            .load(Ordering::Relaxed)
            .saturating_sub(self.reserved_ppm.load(Ordering::Relaxed))
    }

    /// Whether the core is overloaded.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed) > 0
            || self.recent_misses.load(Ordering::Relaxed) > 0
    }

    /// Busy share over the last window (0..=1).
    pub fn busy(&self) -> f64 {
        self.busy_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// What the shard counted over one window, besides busy time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct WindowTally {
    /// Seconds of media received on leg A (G.711 in) over all sessions in the window.
    pub(super) talk_a: f64,
    /// Seconds of media received on leg B (Opus in).
    pub(super) talk_b: f64,
    /// Seconds of media received by PCMU <-> PCMA jobs.
    pub(super) talk_recode: f64,
    /// Seconds of media received by passthrough sessions, over both legs.
    pub(super) talk_relay: f64,
    /// Sessions that carried media in the window.
    pub(super) talking: usize,
    /// Datagrams received in the window.
    pub(super) packets_in: u64,
    /// Input dropped as too late in the window.
    pub(super) late: u64,
}

/// A change of overload state, for the shard to log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Overload {
    /// The core became overloaded in this window.
    Entered,
    /// Still overloaded.
    Continues,
    /// It recovered.
    Cleared,
}

/// The media thread's own accounting.
#[derive(Debug)]
pub(super) struct LoadMeter {
    window_start: Instant,
    /// Work serving media: datagrams and timers.
    media_busy: Duration,
    /// Work setting sessions up and down (commands).
    setup_busy: Duration,
    misses: u64,
    /// Timers served in this window.
    timers: u64,
    /// Windows running, up to this one's predecessor, that missed a deadline.
    missing_windows: u32,
    calibrated: DirectionCosts,
    /// Measured over predicted, smoothed; 1 until media says otherwise.
    scale: f64,
    /// Whether the live scale is learnt (off: the calibration is the cost, for tests and for an
    /// operator who wants a fixed capacity).
    live: bool,
    /// Busy share admission stops at.
    target_busy: f64,
    overloaded: bool,
}

impl LoadMeter {
    /// Starts measuring with calibrated per-direction costs.
    pub(super) fn new(
        now: Instant,
        calibrated: DirectionCosts,
        target_busy: f64,
        live: bool,
    ) -> Self {
        Self {
            window_start: now,
            media_busy: Duration::ZERO,
            setup_busy: Duration::ZERO,
            misses: 0,
            timers: 0,
            missing_windows: 0,
            calibrated: DirectionCosts {
                a_to_b: calibrated.a_to_b.max(1e-5),
                b_to_a: calibrated.b_to_a.max(1e-5),
                relay: calibrated.relay.max(1e-6),
            },
            scale: 1.0,
            live,
            target_busy,
            overloaded: false,
        }
    }

    /// Capacity from the calibration alone, before any window closed.
    pub(super) fn initial_capacity(calibrated: DirectionCosts, target_busy: f64) -> u64 {
        capacity_of(ppm(target_busy), calibrated)
    }

    /// Adds a stretch of media work.
    pub(super) fn media(&mut self, d: Duration) {
        self.media_busy += d;
    }

    /// Adds a stretch of set-up work.
    pub(super) fn setup(&mut self, d: Duration) {
        self.setup_busy += d;
    }

    /// Counts a timer served (late or not).
    pub(super) fn timer(&mut self) {
        self.timers += 1;
    }

    /// Counts a missed deadline.
    pub(super) fn miss(&mut self, figures: &CoreFigures) {
        self.misses += 1;
        figures.deadline_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the window is over (the shard then tallies it and calls [`Self::close`]).
    pub(super) fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.window_start) >= WINDOW
    }

    /// Closes the window: corrects the model from what the talking sessions cost, publishes the
    /// figures and returns the overload state when there is one.
    pub(super) fn close(
        &mut self,
        now: Instant,
        tally: WindowTally,
        figures: &CoreFigures,
    ) -> Option<Overload> {
        let elapsed = now
            .saturating_duration_since(self.window_start)
            .as_secs_f64()
            .max(1e-3);
        let busy = ((self.media_busy + self.setup_busy).as_secs_f64() / elapsed).min(1.0);
        let media = (self.media_busy.as_secs_f64() / elapsed).min(1.0);
        // What the calibration says the media that flowed should have cost, per second of window.
        let base = (tally.talk_a * self.calibrated.a_to_b
            + tally.talk_b * self.calibrated.b_to_a
            + tally.talk_recode * self.calibrated.job(JobKind::Recode)
            // A relay's calibrated cost covers both legs: half per leg that talked.
            + tally.talk_relay * self.calibrated.relay / 2.0)
            / elapsed;
        let predicted = base * self.scale;
        if self.live && base >= MIN_SAMPLE_SHARE {
            let sample = (media / base).clamp(SCALE_BOUNDS.0, SCALE_BOUNDS.1);
            self.scale = self.scale * (1.0 - SCALE_GAIN) + sample * SCALE_GAIN;
        }
        let cost = self.calibrated.session() * self.scale;
        let budget = ppm(self.target_busy / self.scale);
        figures
            .capacity
            .store(capacity_of(budget, self.calibrated), Ordering::Relaxed);
        figures.budget_ppm.store(budget, Ordering::Relaxed);
        figures.session_cost_ppm.store(ppm(cost), Ordering::Relaxed);
        figures.busy_ppm.store(ppm(busy), Ordering::Relaxed);
        figures.media_busy_ppm.store(ppm(media), Ordering::Relaxed);
        figures
            .predicted_busy_ppm
            .store(ppm(predicted), Ordering::Relaxed);
        figures
            .talking
            .store(tally.talking as u64, Ordering::Relaxed);
        // One late stretch (a host stall, a page fault storm) makes every timer due in it late
        // at once: that says nothing about load. Misses in two windows running do, when the
        // core is busy enough for load to explain them. On a core under half its admission
        // target, the odd stalled second is the host's and refusing calls would not help; but
        // misses second after second (CPU quota throttling, steal time, a neighbour) mean the
        // core is not really ours, and new calls belong elsewhere.
        let missed = self.misses >= MISS_MIN
            && self.misses as f64 >= MISS_SHARE * self.timers.max(self.misses) as f64;
        let missing = if missed { self.missing_windows + 1 } else { 0 };
        // Media work only: timers made late by a burst of set-ups on an idle core are not load
        // that refusing calls would relieve.
        let loaded = media >= self.target_busy * 0.5;
        let sustained = if (missing >= 2 && loaded) || missing >= PERSISTENT_MISS_WINDOWS {
            self.misses
        } else {
            0
        };
        figures.recent_misses.store(sustained, Ordering::Relaxed);
        self.missing_windows = missing;
        // Packets that arrive too late to play were lost to the caller all the same.
        let late = tally.late >= LATE_MIN
            && tally.late as f64 >= LATE_SHARE * tally.packets_in.max(1) as f64;
        let overloaded = sustained > 0 || late;
        figures
            .overloaded
            .store(u64::from(overloaded), Ordering::Relaxed);
        let change = match (self.overloaded, overloaded) {
            (false, true) => Some(Overload::Entered),
            (true, true) => Some(Overload::Continues),
            (true, false) => Some(Overload::Cleared),
            (false, false) => None,
        };
        self.overloaded = overloaded;
        self.window_start = now;
        self.media_busy = Duration::ZERO;
        self.setup_busy = Duration::ZERO;
        self.misses = 0;
        self.timers = 0;
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COSTS: DirectionCosts = DirectionCosts {
        a_to_b: 0.006,
        b_to_a: 0.004,
        relay: 0.001,
    };

    fn talking(n: usize) -> WindowTally {
        WindowTally {
            talk_a: n as f64,
            talk_b: n as f64,
            talking: n,
            packets_in: 100 * n as u64,
            ..WindowTally::default()
        }
    }

    /// What the shard publishes with `n` sessions admitted.
    fn admit(f: &CoreFigures, n: u64) {
        f.sessions.store(n, Ordering::Relaxed);
        f.session_base_ppm
            .store(ppm(COSTS.session()), Ordering::Relaxed);
        f.reserved_ppm
            .store(n * ppm(COSTS.session()), Ordering::Relaxed);
    }

    fn capacity(f: &CoreFigures) -> u64 {
        f.capacity.load(Ordering::Relaxed)
    }

    #[test]
    fn capacity_converges_to_the_measured_cost_of_talking_sessions() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, true);
        assert_eq!(LoadMeter::initial_capacity(COSTS, TARGET_BUSY), 80);
        // Ten talking calls really cost 2 % each: 20 % busy, twice the calibration.
        for w in 1..=8 {
            meter.media(Duration::from_millis(200));
            meter.close(t0 + WINDOW * w, talking(10), &figures);
        }
        let c = capacity(&figures);
        assert!((40..=42).contains(&c), "0.8 / 2 % = 40, got {c}");
        let predicted = figures.predicted_busy_ppm.load(Ordering::Relaxed) as f64 / 1e6;
        assert!((predicted - 0.2).abs() < 0.01, "predicted {predicted}");
    }

    #[test]
    fn ringing_sessions_neither_raise_capacity_nor_escape_the_reservation() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, true);
        // 60 sessions ringing for ten seconds: the core only serves their odd timer.
        for w in 1..=10 {
            meter.media(Duration::from_micros(300));
            meter.close(t0 + WINDOW * w, WindowTally::default(), &figures);
        }
        assert_eq!(
            capacity(&figures),
            80,
            "idle sessions teach the model nothing"
        );
        admit(&figures, 60);
        assert_eq!(
            figures.headroom(),
            20,
            "each ringing session reserves a talking one"
        );
    }

    #[test]
    fn jobs_reserve_the_one_direction_they_run() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, false);
        meter.close(t0 + WINDOW, WindowTally::default(), &figures);
        figures
            .session_base_ppm
            .store(ppm(COSTS.session()), Ordering::Relaxed);
        assert_eq!(figures.free_ppm(), 800_000);
        assert_eq!(ppm(COSTS.job(JobKind::ToOpus)), 6_000);
        assert_eq!(ppm(COSTS.job(JobKind::ToG711)), 4_000);
        assert_eq!(ppm(COSTS.job(JobKind::Recode)), 1_000);
        // 50 sessions (500 000) and 40 G.711 -> Opus jobs (240 000) leave 60 000: 6 sessions.
        figures
            .reserved_ppm
            .store(50 * 10_000 + 40 * 6_000, Ordering::Relaxed);
        assert_eq!(figures.headroom(), 6);
    }

    #[test]
    fn relays_reserve_their_own_cost_and_teach_the_model_at_it() {
        assert_eq!(ppm(COSTS.reserve(Reserve::Transcode)), 10_000);
        assert_eq!(ppm(COSTS.reserve(Reserve::Relay)), 1_000);
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, true);
        // 100 relays talking both ways cost what the calibration says (10 % of the core): the
        // scale must not move, as it would if they were taken for transcoding sessions.
        for w in 1..=5 {
            meter.media(Duration::from_millis(100));
            let tally = WindowTally {
                talk_relay: 200.0,
                talking: 100,
                packets_in: 10_000,
                ..WindowTally::default()
            };
            meter.close(t0 + WINDOW * w, tally, &figures);
        }
        assert_eq!(capacity(&figures), 80);
    }

    #[test]
    fn a_setup_burst_does_not_lower_capacity() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, true);
        for w in 1..=5 {
            meter.media(Duration::from_millis(100));
            meter.close(t0 + WINDOW * w, talking(10), &figures);
        }
        let before = capacity(&figures);
        // 300 creates land at the end of a window: 300 ms of socket and encoder set-up.
        meter.media(Duration::from_millis(100));
        meter.setup(Duration::from_millis(300));
        meter.close(t0 + WINDOW * 6, talking(10), &figures);
        assert_eq!(capacity(&figures), before);
        assert!(
            figures.busy() > 0.39,
            "the busy figure still shows the burst"
        );
    }

    #[test]
    fn churn_keeps_capacity_within_ten_percent_of_the_true_value() {
        // Calls arrive and leave at random (a fixed xorshift seed), talk for part of a window,
        // and each create costs set-up time; the true cost of a talking call is 1.5x the
        // calibration (capacity 53).
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, true);
        let truth = COSTS.session() * 1.5;
        let expected = (TARGET_BUSY / truth).floor();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut live = 20usize;
        for w in 1..=60u32 {
            let arrivals = rnd(8) as usize;
            let departures = (rnd(8) as usize).min(live);
            // Arrivals ring first; departures talked part of the window.
            let talk = live as f64 - departures as f64 * 0.5;
            live = live + arrivals - departures;
            meter.media(Duration::from_secs_f64(talk * truth));
            meter.setup(Duration::from_millis(3 * arrivals as u64));
            let tally = WindowTally {
                talk_a: talk,
                talk_b: talk,
                talking: live,
                packets_in: 100,
                ..WindowTally::default()
            };
            meter.close(t0 + WINDOW * w, tally, &figures);
            if w > 8 {
                let c = capacity(&figures) as f64;
                assert!(
                    (c - expected).abs() <= expected * 0.1,
                    "window {w}: capacity {c}, expected {expected}"
                );
            }
        }
    }

    #[test]
    fn a_frozen_model_keeps_the_calibration() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, DirectionCosts::even(0.1), TARGET_BUSY, false);
        meter.media(Duration::from_millis(900));
        meter.close(t0 + WINDOW, talking(5), &figures);
        assert_eq!(capacity(&figures), 8);
    }

    #[test]
    fn sustained_misses_and_late_drops_are_overload() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, false);
        admit(&figures, 10);
        meter.media(Duration::from_millis(500));
        assert_eq!(meter.close(t0 + WINDOW, talking(10), &figures), None);
        assert_eq!(figures.headroom(), 70, "0.8 / 1 % = 80, 10 admitted");
        miss(&mut meter, &figures, MISS_MIN);
        meter.media(Duration::from_millis(500));
        assert_eq!(meter.close(t0 + WINDOW * 2, talking(10), &figures), None);
        assert_eq!(
            figures.headroom(),
            70,
            "one late window is a stall, not load"
        );
        miss(&mut meter, &figures, MISS_MIN);
        meter.media(Duration::from_millis(500));
        let state = meter.close(t0 + WINDOW * 3, talking(10), &figures);
        assert_eq!(state, Some(Overload::Entered));
        assert_eq!(
            figures.headroom(),
            0,
            "misses window after window close admission"
        );
        assert_eq!(figures.overloaded.load(Ordering::Relaxed), 1);
        meter.media(Duration::from_millis(500));
        let state = meter.close(t0 + WINDOW * 4, talking(10), &figures);
        assert_eq!(state, Some(Overload::Cleared));
        assert_eq!(figures.headroom(), 70);
        // 2 % of the input dropped as late.
        meter.media(Duration::from_millis(500));
        let tally = WindowTally {
            late: 20,
            ..talking(10)
        };
        assert_eq!(
            meter.close(t0 + WINDOW * 5, tally, &figures),
            Some(Overload::Entered)
        );
        assert_eq!(figures.headroom(), 0);
        // The odd late packet is jitter, not overload.
        meter.media(Duration::from_millis(500));
        let tally = WindowTally {
            late: 3,
            ..talking(10)
        };
        assert_eq!(
            meter.close(t0 + WINDOW * 6, tally, &figures),
            Some(Overload::Cleared)
        );
    }

    /// `n` timers served late.
    fn miss(meter: &mut LoadMeter, figures: &CoreFigures, n: u64) {
        for _ in 0..n {
            meter.timer();
            meter.miss(figures);
        }
    }

    #[test]
    fn the_odd_late_timer_among_many_is_not_overload() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, false);
        admit(&figures, 10);
        // 90 calls' playout clocks: 4,500 timers a second, 0.5 % of them late behind bursts of
        // input, second after second at 70 % busy.
        for window in 1..=2 * PERSISTENT_MISS_WINDOWS {
            for _ in 0..4_500 - 22 {
                meter.timer();
            }
            miss(&mut meter, &figures, 22);
            meter.media(Duration::from_millis(700));
            assert_eq!(
                meter.close(t0 + WINDOW * window, talking(10), &figures),
                None,
                "window {window}"
            );
        }
        // 2 % late, two windows running: overload.
        for window in 1..=2 {
            for _ in 0..4_500 - 90 {
                meter.timer();
            }
            miss(&mut meter, &figures, 90);
            meter.media(Duration::from_millis(700));
            meter.close(t0 + WINDOW * (20 + window), talking(10), &figures);
        }
        assert_eq!(figures.headroom(), 0);
    }

    #[test]
    fn misses_second_after_second_close_admission_however_light_the_load() {
        let t0 = Instant::now();
        let figures = CoreFigures::default();
        let mut meter = LoadMeter::new(t0, COSTS, TARGET_BUSY, false);
        admit(&figures, 10);
        // A throttled or stolen core: late timers every second at 10 % busy.
        for window in 1..PERSISTENT_MISS_WINDOWS {
            miss(&mut meter, &figures, MISS_MIN);
            meter.media(Duration::from_millis(100));
            meter.close(t0 + WINDOW * window, talking(10), &figures);
            assert_eq!(figures.headroom(), 70, "window {window}");
        }
        miss(&mut meter, &figures, MISS_MIN);
        meter.media(Duration::from_millis(100));
        meter.close(t0 + WINDOW * PERSISTENT_MISS_WINDOWS, talking(10), &figures);
        assert_eq!(figures.headroom(), 0, "five seconds of misses running");
        meter.media(Duration::from_millis(100));
        meter.close(
            t0 + WINDOW * (PERSISTENT_MISS_WINDOWS + 1),
            talking(10),
            &figures,
        );
        assert_eq!(figures.headroom(), 70, "a clean second opens it again");
    }
}
