//! The cookie -> reply cache: a resent request gets the first reply and never runs twice.
//!
//! Like rtpengine's (daemon/cookie_cache.c): two generations swapped every `period`, so an entry
//! lives between one and two periods; a request whose cookie is still being handled waits for that
//! result instead of running again. Sans-IO: the caller passes `now` and sends the datagrams.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What to do with an arriving request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// First sighting: handle it, then call [`CookieCache::complete`].
    New,
    /// Already answered: send these bytes again.
    Cached(Vec<u8>),
    /// Being handled: the sender was queued and gets the reply from [`CookieCache::complete`].
    InFlight,
}

#[derive(Debug)]
enum Entry<A> {
    InFlight(Vec<A>),
    Done(Vec<u8>),
}

/// Cookie cache, generic over the peer address type.
#[derive(Debug)]
pub struct CookieCache<A> {
    current: HashMap<Vec<u8>, Entry<A>>,
    previous: HashMap<Vec<u8>, Entry<A>>,
    period: Duration,
    swapped_at: Instant,
    max_waiters: usize,
}

impl<A> CookieCache<A> {
    /// rtpengine's period: 30 s, so a reply is kept 30 to 60 s.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(30);

    /// A cache whose entries live at least `period`.
    pub fn new(period: Duration, now: Instant) -> Self {
        Self {
            current: HashMap::new(),
            previous: HashMap::new(),
            period,
            swapped_at: now,
            max_waiters: 8,
        }
    }

    fn age(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.swapped_at);
        if elapsed >= self.period * 2 {
            self.previous.clear();
            self.current.clear();
            self.swapped_at = now;
        } else if elapsed >= self.period {
            self.previous = std::mem::take(&mut self.current);
            self.swapped_at = now;
        }
    }

    /// Looks `cookie` up for a request from `from`.
    pub fn lookup(&mut self, cookie: &[u8], from: A, now: Instant) -> Lookup {
        self.age(now);
        if let Some(e) = self.previous.remove(cookie) {
            self.current.insert(cookie.to_vec(), e);
        }
        match self.current.get_mut(cookie) {
            Some(Entry::Done(reply)) => Lookup::Cached(reply.clone()),
            Some(Entry::InFlight(waiters)) => {
                if waiters.len() < self.max_waiters {
                    waiters.push(from);
                }
                Lookup::InFlight
            }
            None => {
                self.current
                    .insert(cookie.to_vec(), Entry::InFlight(Vec::new()));
                Lookup::New
            }
        }
    }

    /// Stores the reply to `cookie`; returns the senders of duplicates that arrived meanwhile.
    pub fn complete(&mut self, cookie: &[u8], reply: Vec<u8>, now: Instant) -> Vec<A> {
        self.age(now);
        let old = self
            .current
            .insert(cookie.to_vec(), Entry::Done(reply))
            .or_else(|| self.previous.remove(cookie));
        match old {
            Some(Entry::InFlight(waiters)) => waiters,
            _ => Vec::new(),
        }
    }

    /// Entries held (in flight and answered).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_gets_the_same_reply() {
        let t0 = Instant::now();
        let mut c = CookieCache::new(Duration::from_secs(30), t0);
        assert_eq!(c.lookup(b"k", 1, t0), Lookup::New);
        assert_eq!(c.lookup(b"k", 2, t0), Lookup::InFlight);
        assert_eq!(c.complete(b"k", b"r".to_vec(), t0), vec![2]);
        let t = t0 + Duration::from_secs(45);
        assert_eq!(c.lookup(b"k", 3, t), Lookup::Cached(b"r".to_vec()));
    }

    #[test]
    fn entries_live_at_least_one_period_and_then_expire() {
        let t0 = Instant::now();
        let mut c = CookieCache::new(Duration::from_secs(30), t0);
        assert_eq!(c.lookup(b"k", (), t0), Lookup::New);
        c.complete(b"k", b"r".to_vec(), t0 + Duration::from_secs(29));
        let t1 = t0 + Duration::from_secs(58);
        assert_eq!(c.lookup(b"k", (), t1), Lookup::Cached(b"r".to_vec()));
        let t2 = t1 + Duration::from_secs(61);
        assert_eq!(c.lookup(b"k", (), t2), Lookup::New);
    }
}
