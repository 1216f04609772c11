//! The workers this replica knows, from their heartbeats. A worker silent for the lease is lost;
//! its sessions are reported lost so the relay can act. A worker that comes back re-registers
//! with its live sessions. Time is passed in, so the lease logic runs on virtual time in tests.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridgepool_proto::v1;

use crate::placement::Candidate;

/// A worker's state as this replica sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// Heartbeating and admitting.
    Ready,
    /// Heartbeating, admitting nothing.
    Draining,
    /// Its lease ran out.
    Lost,
}

/// One known worker.
#[derive(Clone, Debug)]
pub struct WorkerEntry {
    /// Its gRPC endpoint.
    pub endpoint: String,
    /// Its last reported figures.
    pub stats: v1::WorkerStats,
    /// Its live sessions (worker-local ids).
    pub sessions: HashSet<String>,
    /// When it last heartbeated.
    pub last_seen: Instant,
    /// Its state.
    pub state: WorkerState,
    /// Headroom placements used since its last heartbeat (so a burst between heartbeats does not
    /// overfill it).
    pub placed_since_heartbeat: u64,
    /// Sessions released through us since its last heartbeat: their headroom is free again
    /// before the worker says so (a relay releasing a burst of calls and placing the next burst
    /// within one heartbeat interval must not see the pool full).
    pub released_since_heartbeat: u64,
}

impl WorkerEntry {
    /// Headroom left by what we know (none while the worker says it is overloaded, whatever
    /// was released since).
    pub fn headroom(&self) -> u64 {
        if self.stats.overloaded {
            return 0;
        }
        // Placements and releases within one heartbeat cancel out before the capacity cap: a
        // call placed and released between two heartbeats leaves the headroom as it was.
        self.stats
            .headroom_sessions
            .saturating_add(self.released_since_heartbeat)
            .saturating_sub(self.placed_since_heartbeat)
            .min(self.stats.capacity_sessions)
    }
}

/// Leases after which a lost worker is forgotten.
const FORGET_AFTER_LEASES: u32 = 20;

/// What a heartbeat changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registered {
    /// A worker we did not know (or had lost): subscribe to its events.
    New,
    /// A known worker.
    Refreshed,
}

/// The pool as one replica sees it.
#[derive(Debug)]
pub struct Registry {
    lease: Duration,
    /// By id, in id order: placement takes them in a stable order without sorting per call.
    workers: BTreeMap<Arc<str>, WorkerEntry>,
}

impl Registry {
    /// An empty registry with a lease.
    pub fn new(lease: Duration) -> Self {
        Self {
            lease,
            workers: BTreeMap::new(),
        }
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Records a heartbeat.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        status: v1::WorkerStatus,
    ) -> Result<Registered, String> {
        let stats = status.stats.ok_or("heartbeat without stats")?;
        if stats.worker_id.is_empty() || stats.worker_id.contains('/') {
            return Err(format!(
                "worker id '{}' must be non-empty without '/'",
                stats.worker_id
            ));
        }
        if !(stats.endpoint.starts_with("http://") || stats.endpoint.starts_with("https://")) {
            return Err(format!(
                "worker endpoint '{}' must be an http(s) URL",
                stats.endpoint
            ));
        }
        let state = if stats.draining {
            WorkerState::Draining
        } else {
            WorkerState::Ready
        };
        let id = stats.worker_id.clone();
        let sessions: HashSet<String> = status.session_ids.into_iter().collect();
        let entry = WorkerEntry {
            endpoint: stats.endpoint.clone(),
            stats,
            sessions,
            last_seen: now,
            state,
            placed_since_heartbeat: 0,
            released_since_heartbeat: 0,
        };
        let endpoint = entry.endpoint.clone();
        let previous = self.workers.insert(Arc::from(id), entry);
        Ok(match previous {
            // A worker back at another address (restarted within the lease) is new: its event
            // stream has to be followed at the new address.
            Some(p) if p.state != WorkerState::Lost && p.endpoint == endpoint => {
                Registered::Refreshed
            }
            _ => Registered::New,
        })
    }

    /// Marks workers whose lease ran out as lost; returns them with the sessions they held.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, Vec<String>)> {
        let mut lost = Vec::new();
        for (id, w) in &mut self.workers {
            if w.state != WorkerState::Lost
                && now.saturating_duration_since(w.last_seen) > self.lease
            {
                w.state = WorkerState::Lost;
                lost.push((id.to_string(), w.sessions.drain().collect()));
            }
        }
        // A worker lost for this long was scaled in or replaced: forget it, so ListWorkers and
        // the metrics describe the pool that exists. Release of its sessions still answers
        // `already_released` (an unknown worker holds nothing).
        let forget = self.lease * FORGET_AFTER_LEASES;
        self.workers.retain(|_, w| {
            w.state != WorkerState::Lost || now.saturating_duration_since(w.last_seen) <= forget
        });
        lost
    }

    /// Placement's view, in id order (a stable order keeps placement deterministic for a given
    /// RNG). Ids are shared, not copied: this runs on every Allocate.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.workers
            .iter()
            .map(|(id, w)| Candidate {
                id: id.clone(),
                headroom: w.headroom(),
                draining: w.state == WorkerState::Draining,
                lost: w.state == WorkerState::Lost,
            })
            .collect()
    }

    /// A worker by id.
    pub fn get(&self, id: &str) -> Option<&WorkerEntry> {
        self.workers.get(id)
    }

    /// Counts a placement against a worker's headroom until its next heartbeat.
    pub fn placed(&mut self, id: &str, local_session: &str) {
        if let Some(w) = self.workers.get_mut(id) {
            w.placed_since_heartbeat += 1;
            w.sessions.insert(local_session.to_owned());
        }
    }

    /// A worker refused: treat it as full until its next heartbeat.
    pub fn refused(&mut self, id: &str) {
        if let Some(w) = self.workers.get_mut(id) {
            w.placed_since_heartbeat = w
                .stats
                .headroom_sessions
                .saturating_add(w.released_since_heartbeat);
        }
    }

    /// Forgets a session (released).
    pub fn released(&mut self, id: &str, local_session: &str) {
        if let Some(w) = self.workers.get_mut(id)
            && w.sessions.remove(local_session)
        {
            w.released_since_heartbeat += 1;
        }
    }

    /// Workers known.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether no worker is known.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Every worker.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &WorkerEntry)> {
        self.workers.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, headroom: u64, draining: bool, sessions: &[&str]) -> v1::WorkerStatus {
        v1::WorkerStatus {
            stats: Some(v1::WorkerStats {
                worker_id: id.into(),
                endpoint: format!("http://{id}:50061"),
                capacity_sessions: 100,
                headroom_sessions: headroom,
                live_sessions: sessions.len() as u64,
                draining,
                cores: vec![],
                overloaded: false,
            }),
            session_ids: sessions.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn lease_expiry_reports_sessions_and_return_re_registers() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        assert_eq!(
            r.heartbeat(t0, status("w1", 10, false, &["a", "b"])),
            Ok(Registered::New)
        );
        assert_eq!(
            r.heartbeat(
                t0 + Duration::from_secs(1),
                status("w1", 10, false, &["a", "b"])
            ),
            Ok(Registered::Refreshed)
        );
        assert!(r.expire(t0 + Duration::from_secs(4)).is_empty());
        let mut lost = r.expire(t0 + Duration::from_millis(4100));
        assert_eq!(lost.len(), 1);
        lost[0].1.sort();
        assert_eq!(
            lost[0],
            ("w1".to_owned(), vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(r.candidates()[0].lost);
        // It comes back with its live sessions.
        assert_eq!(
            r.heartbeat(t0 + Duration::from_secs(5), status("w1", 10, false, &["b"])),
            Ok(Registered::New)
        );
        assert_eq!(r.get("w1").unwrap().sessions.len(), 1);
        assert!(!r.candidates()[0].lost);
        // Lost for good: forgotten after 20 leases, not before.
        r.expire(t0 + Duration::from_secs(5 + 4));
        assert!(r.candidates()[0].lost);
        r.expire(t0 + Duration::from_secs(5 + 60));
        assert_eq!(r.candidates().len(), 1, "20 leases of 3 s: still listed");
        r.expire(t0 + Duration::from_secs(5 + 61));
        assert!(r.candidates().is_empty());
    }

    #[test]
    fn an_overloaded_worker_gets_nothing_until_it_recovers() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        let mut overloaded = status("w1", 0, false, &["x", "y"]);
        if let Some(s) = overloaded.stats.as_mut() {
            s.overloaded = true;
        }
        r.heartbeat(t0, overloaded).unwrap();
        // A release between heartbeats frees a slot on a healthy worker, not on this one.
        r.released("w1", "x");
        assert_eq!(r.candidates()[0].headroom, 0);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        assert!(crate::placement::order(&r.candidates(), &mut rng, 3).is_empty());
        r.heartbeat(t0, status("w1", 3, false, &["y"])).unwrap();
        assert_eq!(r.candidates()[0].headroom, 3);
    }

    #[test]
    fn placements_use_headroom_until_the_next_heartbeat() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        r.heartbeat(t0, status("w1", 2, false, &[])).unwrap();
        r.placed("w1", "x");
        assert_eq!(r.candidates()[0].headroom, 1);
        r.refused("w1");
        assert_eq!(r.candidates()[0].headroom, 0);
        r.heartbeat(t0, status("w1", 5, true, &["x"])).unwrap();
        let c = &r.candidates()[0];
        assert_eq!((c.headroom, c.draining), (5, true));
    }

    #[test]
    fn a_worker_back_at_another_address_is_new() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        let moved = |endpoint: &str| {
            let mut s = status("w1", 10, false, &[]);
            s.stats.as_mut().unwrap().endpoint = endpoint.into();
            s
        };
        assert_eq!(r.heartbeat(t0, moved("http://a:1")), Ok(Registered::New));
        assert_eq!(
            r.heartbeat(t0, moved("http://a:1")),
            Ok(Registered::Refreshed)
        );
        assert_eq!(r.heartbeat(t0, moved("http://b:1")), Ok(Registered::New));
    }

    #[test]
    fn releases_free_headroom_before_the_next_heartbeat() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(3));
        r.heartbeat(t0, status("w1", 0, false, &["a", "b", "c"]))
            .unwrap();
        assert_eq!(r.candidates()[0].headroom, 0, "full");
        r.released("w1", "a");
        r.released("w1", "b");
        r.released("w1", "a");
        r.released("w1", "unknown");
        assert_eq!(r.candidates()[0].headroom, 2, "each known session once");
        r.placed("w1", "d");
        assert_eq!(r.candidates()[0].headroom, 1);
        r.refused("w1");
        assert_eq!(r.candidates()[0].headroom, 0, "a refusal still means full");
        // Never above the worker's capacity.
        let mut r = Registry::new(Duration::from_secs(3));
        r.heartbeat(t0, status("w2", 99, false, &["a", "b"]))
            .unwrap();
        r.released("w2", "a");
        r.released("w2", "b");
        assert_eq!(r.candidates()[0].headroom, 100);
    }

    #[test]
    fn bad_heartbeats_are_refused() {
        let mut r = Registry::new(Duration::from_secs(3));
        assert!(
            r.heartbeat(Instant::now(), status("a/b", 1, false, &[]))
                .is_err()
        );
        let mut s = status("w", 1, false, &[]);
        s.stats.as_mut().unwrap().endpoint = "w:50061".into();
        assert!(r.heartbeat(Instant::now(), s).is_err());
    }
}
