//! The calls of the offer/answer front door: one worker session per call-id, placed like the
//! Scheduler's sessions. The call's signalling state lives with its session on the worker
//! ([`super::state`]); a replica reads it back with `FindSessions` before every answer, re-offer,
//! query and delete, so any replica serves any call and none serves a stale copy. The local
//! index only remembers where calls this replica touched are, to ask that one worker first.
//!
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bridgepool_proto::v1;
use bridgepool_sdp::{Codec, CodecOps};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tonic::{Code, Request};

use super::legs::{Leg, Party};
use super::place;
use super::pool::PlaceError;
use crate::registry::WorkerState;
use crate::service::SchedulerState;

/// rtpengine's default `delete-delay`: a deleted call is kept this long, its media stopped.
pub const DEFAULT_DELETE_DELAY: u32 = 30;

/// A worker call on the offer/answer path; Kamailio waits 1 s per try and blocks a SIP worker.
const WORKER_TIMEOUT: Duration = Duration::from_millis(500);

/// The offer an answer will answer.
#[derive(Debug, Clone)]
pub struct PendingOffer {
    /// The tag of the party that offered.
    pub offerer_tag: String,
    /// Its leg.
    pub offerer_leg: Leg,
    /// What its SDP said about its end.
    pub offerer: Party,
    /// Codecs it may receive (its offer less the stripped ones).
    pub accepted: Vec<Codec>,
}

/// One call this replica knows.
#[derive(Debug, Clone)]
pub struct Call {
    /// The worker holding its session.
    pub worker: Arc<str>,
    /// The worker-local session id.
    pub session_id: String,
    /// The tag of the party that offered first, and its label.
    pub from_tag: String,
    /// The answerer's tag, once answered.
    pub to_tag: Option<String>,
    /// Labels by tag (`label` of offers and answers).
    pub labels: Vec<(String, String)>,
    /// The codec operations each party's first offer carried, by tag: a re-INVITE sent without
    /// them (the usual proxy script) keeps the call's transcoding.
    pub ops: Vec<(String, CodecOps)>,
    /// The leg of the party with `from_tag`.
    pub from_leg: Leg,
    /// Where leg A's peer sends.
    pub leg_a_local: SocketAddr,
    /// Where leg B's peer sends.
    pub leg_b_local: SocketAddr,
    /// The peers' addresses as signalled.
    pub remotes: [Option<SocketAddr>; 2],
    /// The last offer (kept after its answer: a resent 200 OK carries the answer again).
    pub pending: Option<PendingOffer>,
    /// Transcoding (else passthrough) since the last answer.
    pub transcoding: bool,
    /// Unix seconds of the first offer.
    pub created: u64,
    /// Unix seconds of the last offer or answer.
    pub last_signal: u64,
    /// Unix milliseconds of the same: orders two sessions signalled within one second.
    pub last_signal_ms: u64,
    /// Deleted and kept for its delete delay, media stopped (see [`CallPool::delete`]).
    pub deleted: bool,
}

impl Call {
    /// Where `leg`'s peer sends.
    pub fn local(&self, leg: Leg) -> SocketAddr {
        match leg {
            Leg::A => self.leg_a_local,
            Leg::B => self.leg_b_local,
        }
    }

    /// The leg of the party with `tag` (the first offerer's leg for a tag never seen).
    pub fn leg_of(&self, tag: &str) -> Leg {
        if self.to_tag.as_deref() == Some(tag) && tag != self.from_tag {
            self.from_leg.other()
        } else {
            self.from_leg
        }
    }

    /// The tag on `leg`, if known.
    pub fn tag_of(&self, leg: Leg) -> Option<&str> {
        if leg == self.from_leg {
            Some(&self.from_tag)
        } else {
            self.to_tag.as_deref()
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Unix milliseconds now.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A session found on a worker (`FindSessions`' answer).
#[derive(Debug, Clone)]
pub struct Found {
    /// The call's signalling state (`None` for a session without one: the gRPC Scheduler's).
    pub call: Option<Call>,
    /// The worker and its local session id.
    pub worker: Arc<str>,
    /// The worker-local session id.
    pub session_id: String,
    /// Tags the worker holds.
    pub tags: (String, String),
    /// Leg A's and leg B's figures when it was found.
    pub figures: (v1::LegStats, v1::LegStats),
}

/// How long a call's worker hint is kept. A message of an older call asks every worker: a
/// hint only saves round trips, and the calls that end on their worker (media timeout, a BYE
/// that never reached us) would otherwise stay in the index for good.
const HINT_AGE: Duration = Duration::from_secs(3600);
/// Inserts between two sweeps of hints older than [`HINT_AGE`].
const HINT_SWEEP_EVERY: u32 = 1024;

/// The index of the offer/answer calls: a hint per call-id, swept of old ones now and then.
#[derive(Default)]
struct Hints {
    by_call: HashMap<String, (Arc<str>, Instant)>,
    inserts: u32,
}

impl Hints {
    fn get(&self, call_id: &str) -> Option<Arc<str>> {
        self.by_call.get(call_id).map(|(w, _)| w.clone())
    }

    fn insert(&mut self, call_id: &str, worker: Arc<str>, now: Instant) {
        self.by_call.insert(call_id.to_owned(), (worker, now));
        self.inserts += 1;
        if self.inserts >= HINT_SWEEP_EVERY {
            self.inserts = 0;
            self.by_call
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < HINT_AGE);
        }
    }

    fn remove(&mut self, call_id: &str) {
        self.by_call.remove(call_id);
    }

    fn len(&self) -> usize {
        self.by_call.len()
    }
}

/// Worker calls and the index of the offer/answer calls.
pub struct CallPool {
    state: Arc<SchedulerState>,
    rng: Mutex<StdRng>,
    /// Call-id -> the worker this replica last used for it, and when: a hint, checked at every
    /// use, forgotten after [`HINT_AGE`] (calls that end by timeout are never deleted here).
    calls: Mutex<Hints>,
    /// Seconds a deleted call is kept when the delete names no delay.
    delete_delay: u32,
}

/// The update that stops a deleted call's media (both legs inactive, remotes and codecs kept;
/// relayed, so the session holds only the relay cost) and ends it `delay` seconds later.
fn stopped(session_id: &str, delay: u32) -> v1::UpdateSessionRequest {
    let inactive = v1::Direction::Inactive as i32;
    v1::UpdateSessionRequest {
        session_id: session_id.to_owned(),
        leg_a: Some(v1::G711Leg {
            direction: inactive,
            ..Default::default()
        }),
        leg_b: Some(v1::OpusLeg {
            direction: inactive,
            ..Default::default()
        }),
        mode: Some(v1::SessionMode::Passthrough as i32),
        end_in_seconds: Some(delay),
        ..Default::default()
    }
}

fn address(a: Option<&v1::MediaAddress>) -> Option<SocketAddr> {
    let a = a?;
    Some(SocketAddr::new(
        a.ip.parse().ok()?,
        u16::try_from(a.port).ok()?,
    ))
}

impl CallPool {
    /// Calls over the scheduler's registry and worker channels.
    pub fn new(state: Arc<SchedulerState>) -> Self {
        Self {
            state,
            rng: Mutex::new(StdRng::from_os_rng()),
            calls: Mutex::new(Hints::default()),
            delete_delay: DEFAULT_DELETE_DELAY,
        }
    }

    /// Sets the delay of a delete that names none.
    pub fn set_delete_delay(&mut self, seconds: u32) {
        self.delete_delay = seconds;
    }

    /// The delay of a delete that names none.
    pub fn delete_delay(&self) -> u32 {
        self.delete_delay
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Hints> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timeout(&self) -> Duration {
        self.state.worker_timeout.min(WORKER_TIMEOUT)
    }

    /// The call under `call_id` as its worker holds it now. The worker this replica last used
    /// for it is asked first; every live worker when there is none (`anywhere`) or it no longer
    /// has the call. `None` creates no state anywhere.
    pub async fn load(&self, call_id: &str, anywhere: bool) -> Option<Call> {
        let found = self.find_from(call_id, anywhere, false).await;
        // Two sessions under one call-id (an offer retried on another node after a timeout): the
        // one signalled last carries the call.
        let call = found.into_iter().filter_map(|f| f.call).max_by_key(|c| {
            (
                !c.deleted,
                c.last_signal_ms,
                c.created,
                c.session_id.clone(),
            )
        })?;
        self.remember(call_id, &call);
        Some(call)
    }

    /// Notes where `call` is, for the next message of the call.
    pub fn remember(&self, call_id: &str, call: &Call) {
        self.index()
            .insert(call_id, call.worker.clone(), Instant::now());
    }

    /// Calls this replica knows where to find.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Places a new session (draining, lost and full workers are never chosen); returns the
    /// worker and its answer.
    pub async fn create(
        &self,
        request: v1::CreateSessionRequest,
    ) -> Result<(Arc<str>, v1::CreateSessionResponse), PlaceError> {
        let timeout = self.timeout();
        let (worker, created) = place::place(&self.state, &self.rng, "session", |mut client| {
            let mut call = Request::new(request.clone());
            call.set_timeout(timeout);
            async move { Ok(client.create_session(call).await?.into_inner()) }
        })
        .await?;
        self.state.registry().placed(&worker, &created.session_id);
        Ok((worker, created))
    }

    /// Sends an update to the call's worker, with `call` as the state it keeps from now on.
    pub async fn update(
        &self,
        call: &Call,
        mut request: v1::UpdateSessionRequest,
    ) -> Result<(), tonic::Status> {
        request.session_id.clone_from(&call.session_id);
        request.signalling = Some(super::state::encode(call));
        let endpoint = self
            .state
            .registry()
            .get(&call.worker)
            .map(|w| w.endpoint.clone())
            .ok_or_else(|| tonic::Status::unavailable("the call's worker is gone"))?;
        let mut client = self.state.client(&endpoint)?;
        let mut req = Request::new(request);
        req.set_timeout(self.timeout());
        client.update_session(req).await.map(|_| ())
    }

    /// Live workers' (id, endpoint), `first` first.
    fn targets(&self, first: Option<&Arc<str>>) -> Vec<(Arc<str>, String)> {
        let registry = self.state.registry();
        let mut all: Vec<(Arc<str>, String)> = registry
            .iter()
            .filter(|(_, w)| w.state != WorkerState::Lost)
            .map(|(id, w)| (id.clone(), w.endpoint.clone()))
            .collect();
        if let Some(first) = first
            && let Some(pos) = all.iter().position(|(id, _)| id == first)
        {
            all.swap(0, pos);
        }
        all
    }

    /// The call's sessions: from the worker this replica last used for it, else (or when that
    /// one has none) from every live worker's `FindSessions`. A deleted session kept for its
    /// delete delay is left out when a live one has the call-id (a new call under the same
    /// Call-ID, as after a 407).
    pub async fn find(&self, call_id: &str, figures: bool) -> Vec<Found> {
        let mut found = self.find_from(call_id, true, figures).await;
        let deleted = |f: &Found| f.call.as_ref().is_some_and(|c| c.deleted);
        if found.iter().any(|f| !deleted(f)) {
            found.retain(|f| !deleted(f));
        }
        found
    }

    async fn find_from(&self, call_id: &str, anywhere: bool, figures: bool) -> Vec<Found> {
        let hint = self.index().get(call_id);
        if let Some(worker) = &hint {
            let first: Vec<_> = self
                .targets(Some(worker))
                .into_iter()
                .filter(|(id, _)| id == worker)
                .collect();
            let found = self.ask(call_id, first, figures).await;
            if !found.is_empty() {
                return found;
            }
            // Ended there (timeout, delete by another replica) or the worker is gone.
            self.index().remove(call_id);
        }
        if !anywhere && hint.is_none() {
            return Vec::new();
        }
        self.ask(call_id, self.targets(None), figures).await
    }

    /// `FindSessions` on `targets` at once: one by one, a replica that never saw the call (or a
    /// relay's transform job under the same name) would pay a round trip per worker.
    /// `figures`: with each session's figures (a round trip to its media thread).
    async fn ask(
        &self,
        call_id: &str,
        targets: Vec<(Arc<str>, String)>,
        figures: bool,
    ) -> Vec<Found> {
        let mut asks = tokio::task::JoinSet::new();
        for (worker, endpoint) in targets {
            let Ok(mut client) = self.state.client(&endpoint) else {
                continue;
            };
            let mut req = Request::new(v1::FindSessionsRequest {
                call_id: call_id.to_owned(),
                from_tag: String::new(),
                without_figures: !figures,
            });
            req.set_timeout(self.timeout());
            asks.spawn(async move { (worker, client.find_sessions(req).await) });
        }
        let mut found = Vec::new();
        while let Some(joined) = asks.join_next().await {
            // A worker without FindSessions (older) answers unimplemented: nothing to find there.
            let Ok((worker, Ok(r))) = joined else {
                continue;
            };
            for s in r.into_inner().sessions {
                found.push(Found {
                    call: super::state::decode(worker.clone(), &s),
                    worker: worker.clone(),
                    figures: (s.leg_a.unwrap_or_default(), s.leg_b.unwrap_or_default()),
                    session_id: s.session_id,
                    tags: (s.from_tag, s.to_tag),
                });
            }
        }
        found
    }

    /// Deletes the call's sessions wherever they are; returns them with their figures. With a
    /// `delay` (seconds) each session's media stops now (both legs inactive, relayed, so it
    /// holds only the relay cost) and its worker ends it `delay` seconds later: late signalling
    /// still finds the call meanwhile, as rtpengine's delete-delay keeps it. With a `branch`
    /// (a to-tag) only a call in dialogue with that tag is deleted: another branch of a forked
    /// call, which this call did not take, leaves it alone.
    pub async fn delete(
        &self,
        call_id: &str,
        delay: u32,
        branch: Option<&str>,
    ) -> Vec<(Found, v1::DeleteSessionResponse)> {
        // The figures only when this delete does not end the session (DeleteSession gives them).
        let found = self.find(call_id, delay > 0).await;
        let mut out = Vec::new();
        for f in found {
            // Not this branch's call: unanswered (a branch that failed while another rings) or
            // answered by another branch.
            if let (Some(tag), Some(call)) = (branch, &f.call)
                && call.from_tag != tag
                && call.to_tag.as_deref() != Some(tag)
            {
                continue;
            }
            let Some((_, endpoint)) = self
                .targets(Some(&f.worker))
                .into_iter()
                .find(|(id, _)| *id == f.worker)
            else {
                continue;
            };
            let Ok(mut client) = self.state.client(&endpoint) else {
                continue;
            };
            if delay > 0 {
                // Media stopped now, the end planned on the worker; the figures are those
                // FindSessions just gave.
                let mut stop = stopped(&f.session_id, delay);
                if let Some(call) = &f.call {
                    let mut gone = call.clone();
                    gone.deleted = true;
                    stop.signalling = Some(super::state::encode(&gone));
                }
                let mut stop = Request::new(stop);
                stop.set_timeout(self.timeout());
                if client.update_session(stop).await.is_ok() {
                    let (leg_a, leg_b) = f.figures;
                    let r = v1::DeleteSessionResponse {
                        already_deleted: false,
                        leg_a: Some(leg_a),
                        leg_b: Some(leg_b),
                    };
                    out.push((f, r));
                }
                continue;
            }
            let mut req = Request::new(v1::DeleteSessionRequest {
                session_id: f.session_id.clone(),
            });
            req.set_timeout(self.timeout());
            if let Ok(r) = client.delete_session(req).await {
                let r = r.into_inner();
                self.state.registry().released(&f.worker, &f.session_id);
                if !r.already_deleted {
                    out.push((f, r));
                }
            }
        }
        // Deleted, delayed or not: a late message of the call asks every worker (a delayed
        // call ends on its worker, where nothing would tell this index).
        if !out.is_empty() {
            self.index().remove(call_id);
        }
        out
    }

    /// The figures of the call's sessions.
    pub async fn query(&self, call_id: &str) -> Vec<(Found, v1::GetSessionResponse)> {
        let mut out = Vec::new();
        for f in self.find(call_id, false).await {
            let Some((_, endpoint)) = self
                .targets(Some(&f.worker))
                .into_iter()
                .find(|(id, _)| *id == f.worker)
            else {
                continue;
            };
            let Ok(mut client) = self.state.client(&endpoint) else {
                continue;
            };
            let mut req = Request::new(v1::GetSessionRequest {
                session_id: f.session_id.clone(),
            });
            req.set_timeout(self.timeout());
            match client.get_session(req).await {
                Ok(r) => out.push((f, r.into_inner())),
                Err(s) if s.code() == Code::NotFound => {
                    // Ended on the worker (timeout, BYE): forget it here too.
                    self.index().remove(call_id);
                }
                Err(_) => {}
            }
        }
        out
    }

    /// Remote and local addresses of a created session's legs.
    pub fn locals(created: &v1::CreateSessionResponse) -> Option<(SocketAddr, SocketAddr)> {
        Some((
            address(created.leg_a_local.as_ref())?,
            address(created.leg_b_local.as_ref())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_of_calls_nobody_deleted_are_swept_after_their_age() {
        let t0 = Instant::now();
        let worker: Arc<str> = Arc::from("w1");
        let mut hints = Hints::default();
        // Calls that ended on their worker: never deleted through this replica.
        for i in 0..100 {
            hints.insert(&format!("old-{i}"), worker.clone(), t0);
        }
        let later = t0 + HINT_AGE + Duration::from_secs(1);
        for i in 0..HINT_SWEEP_EVERY {
            hints.insert(&format!("new-{i}"), worker.clone(), later);
        }
        assert_eq!(hints.get("old-0"), None);
        assert_eq!(hints.len(), HINT_SWEEP_EVERY as usize);
        assert_eq!(hints.get("new-0").as_deref(), Some("w1"));
    }

    #[test]
    fn young_hints_survive_a_sweep() {
        let t0 = Instant::now();
        let mut hints = Hints::default();
        for i in 0..HINT_SWEEP_EVERY {
            hints.insert(&format!("c-{i}"), Arc::from("w2"), t0);
        }
        assert_eq!(hints.len(), HINT_SWEEP_EVERY as usize);
    }
}
