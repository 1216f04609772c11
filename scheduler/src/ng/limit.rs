//! Per-source request rate on the ng port: a token bucket per source IP (a relay uses several
//! ports, so the address, not the port, is the peer). A source over its rate has its datagrams
//! dropped and counted; an rtpengine relay resends after its 50 ms timeout and falls back to
//! local transcoding after its tries, so a flood from one source costs that source, not the
//! others. Pure: time comes in as an argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources remembered at most; beyond this the ones idle longest are forgotten (a spoofed-source
/// flood must not grow the map without bound).
const MAX_SOURCES: usize = 4096;
/// A source idle this long has a full bucket anyway: forget it when the map is full.
const IDLE: Duration = Duration::from_secs(10);

/// Token buckets by source.
#[derive(Debug)]
pub struct SourceLimiter {
    per_second: f64,
    burst: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl SourceLimiter {
    /// `per_second` requests per second per source, bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Whether a datagram from `source` at `now` is within its rate (and takes a token if so).
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&source) {
            self.buckets
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < IDLE);
            if self.buckets.len() >= MAX_SOURCES {
                // All busy: a new source shares no bucket, but is not remembered either.
                return true;
            }
        }
        let (tokens, last) = self.buckets.entry(source).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut l = SourceLimiter::new(100, 20);
        let t0 = Instant::now();
        let first: usize = (0..50).filter(|_| l.allow(ip(1), t0)).count();
        assert_eq!(first, 20, "the burst");
        // One second later: 100 more tokens, capped at the burst of 20.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..50).filter(|_| l.allow(ip(1), t1)).count(), 20);
        // At the rate exactly (one per 10 ms), every request passes for a while.
        let passed = (1..=300)
            .filter(|i| l.allow(ip(1), t1 + Duration::from_millis(10 * i)))
            .count();
        assert_eq!(passed, 300);
    }

    #[test]
    fn one_flooding_source_does_not_cost_another() {
        let mut l = SourceLimiter::new(100, 20);
        let t0 = Instant::now();
        let mut other = 0;
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i * 100); // the flood: 10,000 per second
            l.allow(ip(1), now);
            if i % 100 == 0 && l.allow(ip(2), now) {
                other += 1; // the neighbour: 100 per second
            }
        }
        assert_eq!(other, 100);
    }

    #[test]
    fn a_spoofed_source_flood_stays_bounded() {
        let mut l = SourceLimiter::new(100, 20);
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            let source = IpAddr::from(i.to_be_bytes());
            assert!(l.allow(source, t0), "a first sighting always passes");
        }
        assert!(l.buckets.len() <= MAX_SOURCES);
    }
}
