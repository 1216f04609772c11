//! The per-leg media budget: a peer that floods its (latched) port with valid RTP must cost its
//! own call only, not the other calls on the core. Each leg may send a few times its negotiated
//! packet rate, with a burst allowance so a jitter burst after a stall passes whole; the rest is
//! dropped before the session decodes it. A GCRA (a token bucket kept as one instant): one
//! comparison and one addition per datagram, no allocation, no clock read of its own.

use std::time::{Duration, Instant};

/// Packets a leg may send per negotiated packet time, on average: a 10 ms sender on a 20 ms
/// leg, RFC 4733 events and muxed RTCP fit, a 10x flood does not.
const RATE_FACTOR: u32 = 3;
/// Packet times above this count as this for the rate: a peer may send shorter packets than it
/// negotiated (any input ptime 10-60 ms is repacketized).
const LONGEST_COUNTED_PTIME: Duration = Duration::from_millis(20);
/// Audio that may arrive at once: the packets that waited behind a network stall this long
/// pass whole (75 packets of 20 ms).
const BURST: Duration = Duration::from_millis(1500);

/// One leg's budget.
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    /// Time one datagram costs at the allowed rate.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run: the burst allowance.
    tolerance: Duration,
    /// Theoretical arrival time of the next datagram at the allowed rate (GCRA's TAT).
    next: Instant,
}

impl Budget {
    /// A full budget at `now` for a leg negotiated at `ptime`.
    pub(super) fn new(now: Instant, ptime: Duration) -> Self {
        let interval = interval(ptime);
        Self {
            interval,
            tolerance: tolerance(interval),
            next: now,
        }
    }

    /// New signalling changed the leg's packet time; what was spent stays spent.
    pub(super) fn set_ptime(&mut self, ptime: Duration) {
        self.interval = interval(ptime);
        self.tolerance = tolerance(self.interval);
    }

    /// Whether a datagram arriving at `now` is within budget; spends one datagram's worth if so.
    pub(super) fn spend(&mut self, now: Instant) -> bool {
        if self.next.saturating_duration_since(now) > self.tolerance {
            return false;
        }
        self.next = self.next.max(now) + self.interval;
        true
    }

    /// Datagrams per second allowed once the burst is spent.
    #[cfg(test)]
    fn rate(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }
}

fn interval(ptime: Duration) -> Duration {
    let counted = ptime.clamp(Duration::from_millis(1), LONGEST_COUNTED_PTIME);
    counted / RATE_FACTOR
}

/// Burst allowance: [`BURST`] of audio in packets of the counted ptime (`interval` x
/// [`RATE_FACTOR`]), less the datagram being admitted.
fn tolerance(interval: Duration) -> Duration {
    (BURST / RATE_FACTOR).saturating_sub(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Offers `count` datagrams, one every `every`, from `start`; returns how many passed.
    fn offer(b: &mut Budget, start: Instant, every: Duration, count: u32) -> u32 {
        (0..count).filter(|i| b.spend(start + every * *i)).count() as u32
    }

    #[test]
    fn a_steady_peer_never_loses_a_packet() {
        let t0 = Instant::now();
        for ptime in [10, 20, 30, 60] {
            let mut b = Budget::new(t0, ptime * MS);
            // Ten minutes at the negotiated rate, and a 10 ms sender on a longer negotiation.
            assert_eq!(offer(&mut b, t0, ptime * MS, 30_000), 30_000, "{ptime} ms");
            let mut b = Budget::new(t0, ptime * MS);
            assert_eq!(
                offer(&mut b, t0, 10 * MS, 60_000),
                60_000,
                "10 ms on {ptime}"
            );
        }
    }

    #[test]
    fn a_jitter_burst_passes_whole() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 20 * MS);
        assert_eq!(offer(&mut b, t0, 20 * MS, 500), 500);
        // A 1 s stall, then the 50 packets that waited behind it at once, then steady again.
        let after = t0 + 20 * MS * 500 + Duration::from_secs(1);
        assert_eq!(offer(&mut b, after, Duration::ZERO, 50), 50);
        assert_eq!(offer(&mut b, after + MS, 20 * MS, 500), 500);
    }

    #[test]
    fn a_tenfold_flood_is_held_to_three_times_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 20 * MS);
        // 10 s at ten packets per 20 ms.
        let passed = offer(&mut b, t0, 2 * MS, 5_000);
        let allowed = 10.0 * b.rate() + 75.0;
        assert!((b.rate() - 150.0).abs() < 1.0, "{}", b.rate());
        assert!(
            f64::from(passed) <= allowed + 1.0,
            "{passed} passed, {allowed} allowed"
        );
        assert!(f64::from(passed) >= 10.0 * b.rate(), "{passed} passed");
        // The flood stops: after a quiet packet time the leg has budget again.
        let later = t0 + 2 * MS * 5_000 + 20 * MS;
        assert!(b.spend(later));
    }

    #[test]
    fn the_burst_is_bounded_at_any_idle_time() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 20 * MS);
        // Idle for an hour: the allowance is no larger than after a second.
        let passed = offer(
            &mut b,
            t0 + Duration::from_secs(3600),
            Duration::ZERO,
            1_000,
        );
        assert_eq!(passed, 75);
    }

    #[test]
    fn a_shorter_ptime_raises_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 60 * MS);
        assert!((b.rate() - 150.0).abs() < 1.0);
        b.set_ptime(10 * MS);
        assert!((b.rate() - 300.0).abs() < 1.0);
    }
}
