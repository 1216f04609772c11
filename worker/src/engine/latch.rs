//! Guarded latching: symmetric RTP (we send back where the peer sends from), but never to just
//! anyone. A packet is accepted from the signalled peer; when NAT rewrites its port, from the same
//! IP on another port within the latch window; when no peer was signalled, from the first source
//! within the window. After that, other sources are dropped and counted (no RTP-bleed hijack).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The latch of one leg's RTP or RTCP socket.
#[derive(Clone, Copy, Debug)]
pub struct Latch {
    expected: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    window_ends: Instant,
}

impl Latch {
    /// A latch open for `window` from `now`, expecting `expected` if signalled.
    pub fn new(now: Instant, window: Duration, expected: Option<SocketAddr>) -> Self {
        Self {
            expected,
            latched: None,
            window_ends: now + window,
        }
    }

    /// New signalling (answer, re-INVITE): the signalled peer may change, with a fresh window.
    pub fn resignal(&mut self, now: Instant, window: Duration, expected: Option<SocketAddr>) {
        if expected != self.expected {
            self.expected = expected;
            self.latched = None;
            self.window_ends = now + window;
        }
    }

    /// Whether a packet from `source` is accepted; may latch onto it.
    pub fn accept(&mut self, now: Instant, source: SocketAddr) -> bool {
        if self.latched == Some(source) {
            return true;
        }
        let in_window = now < self.window_ends;
        match self.expected {
            Some(expected) if expected == source && self.latched.is_none() => {
                self.latched = Some(source);
                true
            }
            Some(expected) => {
                // NAT: the signalled address, a rewritten port, only until the first latch.
                let same_ip = expected.ip() == source.ip();
                if same_ip && in_window && self.latched.is_none() {
                    self.latched = Some(source);
                    true
                } else {
                    false
                }
            }
            None if in_window && self.latched.is_none() => {
                self.latched = Some(source);
                true
            }
            None => false,
        }
    }

    /// Where to send: the latched source, else the signalled peer.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn signalled_peer_only_then_no_hijack() {
        let t0 = Instant::now();
        let mut l = Latch::new(t0, Duration::from_secs(3), Some(addr("10.0.0.1:4000")));
        assert!(!l.accept(t0, addr("10.9.9.9:4000")), "foreign IP");
        assert!(l.accept(t0, addr("10.0.0.1:4000")));
        assert!(
            !l.accept(t0, addr("10.0.0.1:5000")),
            "no switch after latching"
        );
        assert_eq!(l.destination(), Some(addr("10.0.0.1:4000")));
    }

    #[test]
    fn nat_rewritten_port_latches_in_window() {
        let t0 = Instant::now();
        let mut l = Latch::new(t0, Duration::from_secs(3), Some(addr("10.0.0.1:4000")));
        assert!(l.accept(t0, addr("10.0.0.1:61000")));
        assert_eq!(l.destination(), Some(addr("10.0.0.1:61000")));
        assert!(!l.accept(t0, addr("10.0.0.1:4000")));
    }

    #[test]
    fn unknown_peer_first_source_in_window() {
        let t0 = Instant::now();
        let mut l = Latch::new(t0, Duration::from_secs(3), None);
        assert_eq!(l.destination(), None);
        assert!(l.accept(t0 + Duration::from_secs(1), addr("10.0.0.7:9")));
        assert!(!l.accept(t0 + Duration::from_secs(1), addr("10.0.0.8:9")));
        let mut late = Latch::new(t0, Duration::from_secs(3), None);
        assert!(!late.accept(t0 + Duration::from_secs(4), addr("10.0.0.7:9")));
    }

    #[test]
    fn resignal_moves_the_peer() {
        let t0 = Instant::now();
        let mut l = Latch::new(t0, Duration::from_secs(3), Some(addr("10.0.0.1:4000")));
        assert!(l.accept(t0, addr("10.0.0.1:4000")));
        l.resignal(t0, Duration::from_secs(3), Some(addr("10.0.0.2:4000")));
        assert!(!l.accept(t0, addr("10.0.0.1:4000")));
        assert!(l.accept(t0, addr("10.0.0.2:4000")));
    }
}
