//! The adaptive playout delay of the Opus -> G.711 direction: how late packets arrive
//! ([`DelayEstimator`]) and how the decoded audio waiting for the G.711 clock is stretched or
//! squeezed toward the delay that covers that lateness ([`adjust`]).
//!
//! The estimate follows NetEq's relative-delay design: each packet's transit time (arrival minus
//! RTP timestamp) is compared with the fastest transit of the last couple of seconds, the excess
//! goes into a histogram that forgets old packets exponentially (the first ones weigh as their
//! average, so it learns within a few packets), and the target delay is its 99th percentile. The sliding minimum makes a drifting sender clock look like no jitter at all, and
//! the forgetting lets the delay fall again when the network calms down.

use std::time::{Duration, Instant};

use bridgepool_codecs::stretch;

use super::g711_to_opus::extend_ts;

/// Histogram bucket width in 48 kHz ticks (2 ms).
const BUCKET_TICKS: i64 = 96;
/// Buckets: relative delays up to 500 ms; anything later lands in the last.
const BUCKETS: usize = 250;
/// Weight kept by the old histogram at each packet: a time constant of 500 packets, 10 s at
/// 20 ms, so a calm network brings the delay down within tens of seconds.
const FORGET: f32 = 0.998;
/// The share of packets the target delay covers. PESQ over seven voices and two seeds at 30 %
/// +5-40 ms: 0.95 left about one packet a second late, each a concealment inserted into the
/// talk; 0.99 costs a few ms more delay and scored higher.
const QUANTILE: f32 = 0.99;
/// Packets per sub-window of the sliding minimum transit; [`SUB_WINDOWS`] of them make the window
/// (about 2 s at 20 ms).
const SUB_WINDOW: u32 = 25;
const SUB_WINDOWS: usize = 4;

/// Inter-arrival delay statistics of one Opus stream.
pub(crate) struct DelayEstimator {
    epoch: Option<Instant>,
    ts_ref: Option<u64>,
    /// Probability mass per bucket of relative delay; sums to about 1.
    histogram: [f32; BUCKETS],
    /// Minimum transit of each finished sub-window, `i64::MAX` when empty.
    window: [i64; SUB_WINDOWS],
    current_min: i64,
    in_current: u32,
    next_slot: usize,
    /// The target in 48 kHz ticks, recomputed at each packet.
    target: i64,
    /// Packets that reached the histogram.
    observed: u32,
}

impl DelayEstimator {
    pub(crate) fn new() -> Self {
        let mut histogram = [0.0; BUCKETS];
        // Until packets say otherwise, assume a clean network.
        histogram[0] = 1.0;
        Self {
            epoch: None,
            ts_ref: None,
            histogram,
            window: [i64::MAX; SUB_WINDOWS],
            current_min: i64::MAX,
            in_current: 0,
            next_slot: 0,
            target: BUCKET_TICKS,
            observed: 0,
        }
    }

    /// A new stream (SSRC change): its timestamps have a new origin, the network stays the same.
    pub(crate) fn new_stream(&mut self) {
        self.ts_ref = None;
        self.window = [i64::MAX; SUB_WINDOWS];
        self.current_min = i64::MAX;
        self.in_current = 0;
    }

    /// A packet with RTP timestamp `ts` (48 kHz) arrived at `now`, in whatever order.
    pub(crate) fn observe(&mut self, now: Instant, ts: u32) {
        let ext = extend_ts(self.ts_ref.unwrap_or(0), ts);
        if self.ts_ref.is_none_or(|r| ext > r) {
            self.ts_ref = Some(ext);
        }
        let epoch = *self.epoch.get_or_insert(now);
        let transit = ticks_since(epoch, now) - ext as i64;
        self.current_min = self.current_min.min(transit);
        self.in_current += 1;
        if self.in_current >= SUB_WINDOW {
            self.window[self.next_slot] = self.current_min;
            self.next_slot = (self.next_slot + 1) % SUB_WINDOWS;
            self.current_min = i64::MAX;
            self.in_current = 0;
        }
        let Some(base) = self.min_transit() else {
            return;
        };
        let bucket = ((transit - base) / BUCKET_TICKS).clamp(0, BUCKETS as i64 - 1) as usize;
        // The first packets weigh as much as the average of those so far (NetEq's start-up
        // forgetting): the clean-network prior gives way within a few late packets.
        self.observed = self.observed.saturating_add(1);
        let weight = (1.0 - FORGET).max(1.0 / (self.observed as f32 + 1.0));
        for p in &mut self.histogram {
            *p *= 1.0 - weight;
        }
        self.histogram[bucket] += weight;
        let total: f32 = self.histogram.iter().sum();
        let mut above = 0.0;
        let mut quantile_bucket = 0;
        for (i, p) in self.histogram.iter().enumerate().rev() {
            above += p;
            if above > (1.0 - QUANTILE) * total {
                quantile_bucket = i;
                break;
            }
        }
        // The bucket's upper edge: a delay that covers every packet in it.
        self.target = (quantile_bucket as i64 + 1) * BUCKET_TICKS;
    }

    /// The delay that covers [`QUANTILE`] of the packets' lateness.
    pub(crate) fn target(&self) -> Duration {
        ticks_to_duration(self.target)
    }

    /// How long the audio at input timestamp `ts` has been due at `now`: the time since a packet
    /// carrying it would have arrived over the fastest path seen. This is the delay the buffer
    /// adds for a packet that was on time. `None` before the stream's first packet.
    pub(crate) fn delay_of(&self, now: Instant, ts: u64) -> Option<Duration> {
        let base = self.min_transit()?;
        let due = ts as i64 + base;
        Some(ticks_to_duration(ticks_since(self.epoch?, now) - due))
    }

    /// The share of packets that arrived more than `delay` after the fastest path: how likely
    /// a packet still missing that long after it was due is to come at all, if it is not lost.
    pub(crate) fn share_later_than(&self, delay: Duration) -> f32 {
        let ticks = (delay.as_micros() * 48 / 1000) as i64;
        // Bucket i holds relative delays of [i, i + 1) bucket widths: the first wholly above.
        let first = (ticks / BUCKET_TICKS + 1).clamp(0, BUCKETS as i64) as usize;
        let total: f32 = self.histogram.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        self.histogram[first..].iter().sum::<f32>() / total
    }

    fn min_transit(&self) -> Option<i64> {
        let m = self.window.iter().copied().fold(self.current_min, i64::min);
        (m != i64::MAX).then_some(m)
    }
}

fn ticks_since(epoch: Instant, now: Instant) -> i64 {
    (now.saturating_duration_since(epoch).as_micros() * 48 / 1000) as i64
}

fn ticks_to_duration(ticks: i64) -> Duration {
    Duration::from_micros((ticks.max(0) as u64) * 1000 / 48)
}

/// What [`adjust`] did to the waiting audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stretch {
    /// Nothing.
    None,
    /// Removed this many samples (accelerate, or a cut in silence).
    Shortened(usize),
    /// Inserted this many samples (preemptive expand).
    Lengthened(usize),
}

/// Below the target by more than this, the buffer grows (avoids stretching on tick phase noise).
const GROW_BELOW: Duration = Duration::from_millis(5);
/// Above the target by more than this, the buffer shrinks (a band, so it does not hunt).
const SHRINK_ABOVE: Duration = Duration::from_millis(8);
/// Speech is stretched only this far from the target: within it, the delay moves in the pauses
/// (PESQ: stretching speech at every small excess cost more than the delay it saved).
const SPEECH_SHRINK_ABOVE: Duration = Duration::from_millis(60);
const SPEECH_GROW_BELOW: Duration = Duration::from_millis(20);
/// Correlation a speech period needs before it is repeated or removed: lower sounds warbly.
const MIN_CORRELATION: f32 = 0.75;
/// Cross-fade used when cutting or padding silence (5 ms).
const SILENCE_FADE: usize = 40;
/// Silence is cut or padded only once this much of it has been sent (300 ms, 8 kHz samples): a pause
/// between sentences, not a stop inside a word (PESQ reads a cut inside an utterance as a time
/// warp; docs/performance.md has the figures).
const PAUSE: usize = 2400;

/// One step toward `target` for audio in `fifo` whose front is `delay` late, keeping at least
/// `frame` samples to send now, after `quiet_run` samples of silence were sent.
///
/// What is steered is the slack: how late the next input packet may arrive and still be in
/// hand when the frame holding its start leaves, which is the delay less the part of a frame the
/// audio ends into (`fifo.len() % frame`, the FIFO ending on a packet boundary). The slack moves
/// only in whole frames: a cut of that part alone lowers the delay and leaves the slack, a cut
/// past it lowers the slack by a frame. Speech moves by one pitch period where it repeats well;
/// silence moves by what takes the slack one frame toward the target, and only inside a pause
/// ([`PAUSE`]).
pub(crate) fn adjust(
    fifo: &mut Vec<i16>,
    frame: usize,
    delay: Duration,
    target: Duration,
    quiet_run: usize,
) -> Stretch {
    let rest = fifo.len() % frame;
    let slack = slack(delay, fifo.len(), frame);
    let window = &fifo[..fifo.len().min(2 * stretch::MAX_PERIOD)];
    if stretch::is_silent(window) {
        // Cuts and pads, too, wait for a pause: inside a word they are a time warp.
        if quiet_run < PAUSE {
            return Stretch::None;
        }
        // The slack moves in frames and stays in [target - GROW_BELOW, target + frame). A frame
        // of slack goes only when the target is kept after it (PESQ: cutting down to the growth
        // threshold let more late packets into the talk, 5-40 ms 0.04-0.06 further from clean);
        // the part of a frame goes whenever the delay is SHRINK_ABOVE over the target: it costs
        // no slack. Both reach past the window checked above (up to two frames and a fade), so
        // what they touch is checked again: a word starting there is left alone.
        let floor = target.saturating_sub(GROW_BELOW);
        if slack < floor {
            // Padding to the next frame boundary adds a frame of slack (with little in hand,
            // part of the way now, the rest at the next ticks).
            let count = (frame - rest).min(fifo.len().saturating_sub(SILENCE_FADE));
            let fade = count.min(SILENCE_FADE);
            if count > 0
                && stretch::is_silent(&fifo[..count + fade])
                && stretch::lengthen(fifo, count, fade)
            {
                return Stretch::Lengthened(count);
            }
            return Stretch::None;
        }
        let cut_frame = slack >= target + samples_to_duration(frame);
        if cut_frame || (rest > 0 && delay > target + SHRINK_ABOVE) {
            let count = if cut_frame { rest + frame } else { rest };
            let spare = fifo.len().saturating_sub(frame);
            let count = count.min(spare.saturating_sub(SILENCE_FADE));
            if count > 0
                && stretch::is_silent(&fifo[..count + SILENCE_FADE])
                && stretch::shorten(fifo, count, SILENCE_FADE)
            {
                return Stretch::Shortened(count);
            }
        }
        return Stretch::None;
    }
    if slack > target + SPEECH_SHRINK_ABOVE {
        let excess = duration_to_samples(slack - target);
        if let Some(p) = stretch::find_period(window)
            && p.correlation >= MIN_CORRELATION
            && p.period <= excess
            && 2 * p.period <= fifo.len()
            && stretch::shorten(fifo, p.period, p.period)
        {
            return Stretch::Shortened(p.period);
        }
    } else if slack + SPEECH_GROW_BELOW < target
        && let Some(p) = stretch::find_period(window)
        && p.correlation >= MIN_CORRELATION
        && stretch::lengthen(fifo, p.period, p.period)
    {
        return Stretch::Lengthened(p.period);
    }
    Stretch::None
}

/// How late the next input packet may arrive and still be in hand when the frame holding its
/// start leaves, for `queued` samples in hand whose front is `delay` late (see [`adjust`]).
pub(crate) fn slack(delay: Duration, queued: usize, frame: usize) -> Duration {
    delay.saturating_sub(samples_to_duration(queued % frame))
}

/// 8 kHz samples as time.
pub(crate) fn samples_to_duration(n: usize) -> Duration {
    Duration::from_micros(n as u64 * 125)
}

/// Time as 8 kHz samples (rounded down).
pub(crate) fn duration_to_samples(d: Duration) -> usize {
    (d.as_micros() * 8 / 1000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn clean_stream_targets_one_bucket() {
        let t0 = crate::test_epoch();
        let mut e = DelayEstimator::new();
        for i in 0..500u64 {
            e.observe(at(t0, 20 * i), (i * 960) as u32);
        }
        assert!(e.target() <= Duration::from_millis(2));
        // A packet arriving on time is due now.
        let d = e
            .delay_of(at(t0, 20 * 499), (1 << 32) + 499 * 960)
            .expect("delay");
        assert!(d < Duration::from_millis(1));
    }

    #[test]
    fn jitter_raises_the_target_and_calm_lowers_it() {
        let t0 = crate::test_epoch();
        let mut e = DelayEstimator::new();
        // 30 % of packets 40 ms late.
        for i in 0..1500u64 {
            let late = if i % 10 < 3 { 40 } else { 0 };
            e.observe(at(t0, 20 * i + late), (i * 960) as u32);
        }
        let high = e.target();
        assert!(high >= Duration::from_millis(40), "{high:?}");
        assert!(high <= Duration::from_millis(44), "{high:?}");
        for i in 1500..4000u64 {
            e.observe(at(t0, 20 * i), (i * 960) as u32);
        }
        assert!(e.target() <= Duration::from_millis(4), "{:?}", e.target());
    }

    #[test]
    fn drifting_sender_clock_is_not_jitter() {
        let t0 = crate::test_epoch();
        let mut e = DelayEstimator::new();
        // The sender's clock runs 0.1 % fast for 10 minutes: timestamps gain 600 ms.
        for i in 0..30_000u64 {
            e.observe(at(t0, 20 * i), (i * 961) as u32);
            assert!(
                e.target() <= Duration::from_millis(4),
                "at {i}: {:?}",
                e.target()
            );
        }
        let mut e = DelayEstimator::new();
        for i in 0..30_000u64 {
            e.observe(at(t0, 20 * i), (i * 959) as u32);
        }
        assert!(e.target() <= Duration::from_millis(4), "{:?}", e.target());
    }

    #[test]
    fn reordered_packets_count_as_late() {
        let t0 = crate::test_epoch();
        let mut e = DelayEstimator::new();
        for i in (0..1000u64).step_by(2) {
            // i + 1 overtakes i, which arrives 30 ms late.
            e.observe(at(t0, 20 * (i + 1)), ((i + 1) * 960) as u32);
            e.observe(at(t0, 20 * i + 30), (i * 960) as u32);
        }
        assert!(e.target() >= Duration::from_millis(30), "{:?}", e.target());
    }

    #[test]
    fn tail_share_follows_the_late_packets() {
        let t0 = crate::test_epoch();
        let mut e = DelayEstimator::new();
        // 30 % of packets 40 ms late, the rest on time.
        for i in 0..1500u64 {
            let late = if i % 10 < 3 { 40 } else { 0 };
            e.observe(at(t0, 20 * i + late), (i * 960) as u32);
        }
        let early = e.share_later_than(Duration::from_millis(30));
        assert!((0.25..0.35).contains(&early), "{early}");
        assert!(e.share_later_than(Duration::from_millis(44)) < 0.01);
    }

    #[test]
    fn silence_is_cut_and_padded_by_the_slack_on_the_packet_grid() {
        let ms = Duration::from_millis;
        // 500 samples in hand end 20 samples (2.5 ms) into a frame: slack = delay - 2.5 ms.
        let quiet = || vec![0i16; 500];
        // Slack 49.5 ms against a 40 ms target: above the band, but a frame less would be below
        // the target: only the 20 samples past the frame grid go (the slack stays, the delay
        // falls).
        let mut q = quiet();
        assert_eq!(
            adjust(&mut q, 160, ms(52), ms(40), PAUSE),
            Stretch::Shortened(20)
        );
        assert_eq!(q.len() % 160, 0);
        // Slack 67.5 ms: a whole frame of slack goes, with the part of a frame.
        let mut q = quiet();
        assert_eq!(
            adjust(&mut q, 160, ms(70), ms(40), PAUSE),
            Stretch::Shortened(180)
        );
        assert_eq!(
            slack(ms(70) - ms(180) / 8, q.len(), 160),
            ms(47) + ms(1) / 2
        );
        // Slack 27.5 ms against 40: padding to the next frame boundary adds a frame of slack.
        let mut q = quiet();
        q.reserve(200);
        assert_eq!(
            adjust(&mut q, 160, ms(30), ms(40), PAUSE),
            Stretch::Lengthened(140)
        );
        assert_eq!(q.len() % 160, 0);
        // Within the band, nothing.
        let mut q = quiet();
        assert_eq!(adjust(&mut q, 160, ms(45), ms(40), PAUSE), Stretch::None);
        // A word starting past the window the pause is judged on, inside what a frame cut
        // would take (630 samples end 150 into a frame: the cut would be 310 and its fade 40).
        let mut word: Vec<i16> = vec![0; 260];
        word.extend(
            (0..370)
                .map(|i| (6000.0 * (2.0 * std::f32::consts::PI * i as f32 / 50.0).sin()) as i16),
        );
        let before = word.clone();
        assert_eq!(
            adjust(&mut word, 160, ms(100), ms(40), PAUSE),
            Stretch::None
        );
        assert_eq!(word, before);
    }

    #[test]
    fn adjust_moves_toward_the_target_on_speech_and_silence() {
        let tone: Vec<i16> = (0..480)
            .map(|i| (6000.0 * (2.0 * std::f32::consts::PI * i as f32 / 50.0).sin()) as i16)
            .collect();
        let mut fifo = tone.clone();
        let shrunk = adjust(
            &mut fifo,
            160,
            Duration::from_millis(100),
            Duration::from_millis(10),
            10_000,
        );
        assert_eq!(shrunk, Stretch::Shortened(50));
        assert_eq!(fifo.len(), 430);
        let mut fifo = tone.clone();
        fifo.reserve(200);
        let grown = adjust(&mut fifo, 160, Duration::ZERO, Duration::from_millis(40), 0);
        assert_eq!(grown, Stretch::Lengthened(50));
        let mut quiet = vec![0i16; 480];
        let cut = adjust(
            &mut quiet,
            160,
            Duration::from_millis(60),
            Duration::from_millis(10),
            10_000,
        );
        assert_eq!(cut, Stretch::Shortened(160));
        // Silence just after speech (a stop inside a word) is kept; in a pause it is cut.
        let mut quiet = vec![0i16; 480];
        let kept = adjust(
            &mut quiet,
            160,
            Duration::from_millis(60),
            Duration::from_millis(10),
            PAUSE - 160,
        );
        assert_eq!(kept, Stretch::None);
        assert_eq!(quiet.len(), 480);
        let cut = adjust(
            &mut quiet,
            160,
            Duration::from_millis(60),
            Duration::from_millis(10),
            PAUSE,
        );
        assert_eq!(cut, Stretch::Shortened(160));
        let mut fifo = tone;
        let none = adjust(
            &mut fifo,
            160,
            Duration::from_millis(15),
            Duration::from_millis(10),
            10_000,
        );
        assert_eq!(none, Stretch::None);
    }
}
