//! The control plane's table of live sessions: what a scheduler asks about by call rather than
//! by id (call id, SIP tags), and what the media threads need not know (mode as signalled,
//! local addresses, whether each leg's codec was ever given). Never touched on the packet path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use crate::engine::SessionId;
use crate::session::Mode;

/// One live session as the control plane knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The SIP call id.
    pub call_id: String,
    /// The SIP From tag.
    pub from_tag: String,
    /// The SIP To tag (empty until known).
    pub to_tag: String,
    /// Transcode or passthrough, as last applied.
    pub mode: Mode,
    /// Where leg A's peer sends.
    pub local_a: SocketAddr,
    /// Where leg B's peer sends.
    pub local_b: SocketAddr,
    /// The media core it runs on.
    pub core: usize,
    /// Leg A's codec (a G.711 law and payload type) was given: transcoding can start.
    pub codec_a: bool,
    /// Leg B's codec (the Opus payload type) was given.
    pub codec_b: bool,
    /// The scheduler's signalling state, kept for FindSessions and never read here.
    pub signalling: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<SessionId, SessionRecord>,
    /// Session ids per call id, in creation order.
    by_call: HashMap<String, Vec<SessionId>>,
}

/// Live sessions by id and by call id.
#[derive(Default)]
pub struct SessionTable {
    inner: Mutex<Inner>,
}

impl SessionTable {
    /// Records a created session.
    pub fn insert(&self, id: SessionId, record: SessionRecord) {
        let mut inner = self.lock();
        inner
            .by_call
            .entry(record.call_id.clone())
            .or_default()
            .push(id);
        inner.by_id.insert(id, record);
    }

    /// Forgets a session; what it held.
    pub fn remove(&self, id: SessionId) -> Option<SessionRecord> {
        let mut inner = self.lock();
        let record = inner.by_id.remove(&id)?;
        if let Some(ids) = inner.by_call.get_mut(&record.call_id) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                inner.by_call.remove(&record.call_id);
            }
        }
        Some(record)
    }

    /// A live session's record.
    pub fn get(&self, id: SessionId) -> Option<SessionRecord> {
        self.lock().by_id.get(&id).cloned()
    }

    /// Changes a live session's record; false when it is gone.
    pub fn modify(&self, id: SessionId, change: impl FnOnce(&mut SessionRecord)) -> bool {
        match self.lock().by_id.get_mut(&id) {
            Some(record) => {
                change(record);
                true
            }
            None => false,
        }
    }

    /// The sessions of `call_id` (only those with `from_tag` when it is not empty), oldest
    /// first.
    pub fn find(&self, call_id: &str, from_tag: &str) -> Vec<(SessionId, SessionRecord)> {
        let inner = self.lock();
        let Some(ids) = inner.by_call.get(call_id) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| inner.by_id.get(id).map(|r| (*id, r)))
            .filter(|(_, r)| from_tag.is_empty() || r.from_tag == from_tag)
            .map(|(id, r)| (id, r.clone()))
            .collect()
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call: &str, from: &str) -> SessionRecord {
        SessionRecord {
            call_id: call.to_owned(),
            from_tag: from.to_owned(),
            to_tag: String::new(),
            mode: Mode::Passthrough,
            local_a: "127.0.0.1:4000".parse().unwrap(),
            local_b: "127.0.0.1:4002".parse().unwrap(),
            core: 0,
            codec_a: false,
            codec_b: false,
            signalling: Vec::new(),
        }
    }

    #[test]
    fn found_by_call_and_tag_in_creation_order_and_forgotten() {
        let t = SessionTable::default();
        t.insert(7, record("c1", "f1"));
        t.insert(3, record("c2", "f1"));
        t.insert(9, record("c1", "f2"));
        let ids = |v: Vec<(SessionId, SessionRecord)>| v.into_iter().map(|(i, _)| i).collect();
        let found: Vec<SessionId> = ids(t.find("c1", ""));
        assert_eq!(found, vec![7, 9]);
        let found: Vec<SessionId> = ids(t.find("c1", "f2"));
        assert_eq!(found, vec![9]);
        assert!(t.find("c3", "").is_empty());
        assert!(t.modify(9, |r| r.to_tag = "t".into()));
        assert_eq!(t.get(9).unwrap().to_tag, "t");
        assert_eq!(t.remove(7).unwrap().from_tag, "f1");
        let found: Vec<SessionId> = ids(t.find("c1", ""));
        assert_eq!(found, vec![9]);
        t.remove(9);
        assert!(t.find("c1", "").is_empty());
        assert_eq!(t.len(), 1);
    }
}
