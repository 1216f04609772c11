//! The Worker gRPC service: the control plane's face. It validates, then hands sessions to the
//! media engine; it never touches a packet.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_server::Worker;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::convert::{self, Remote};
use crate::drain::Drain;
use crate::engine::{
    CreateError, Engine, Reserve, SessionChange, SessionId, SessionSnapshot, UpdateError,
};
use crate::legs;
use crate::metrics::ControlCounters;
use crate::session::{Mode, SessionConfig, StreamSeed, Timeouts};
use crate::sessions::{SessionRecord, SessionTable};
use bridgepool_proto::telemetry::adopt_remote_parent;

/// State the service, the heartbeats and the drain share.
pub struct WorkerState {
    /// The media engine.
    pub engine: Engine,
    /// Control-plane counters.
    pub counters: ControlCounters,
    /// Drain state.
    pub drain: Drain,
    /// This worker's id.
    pub worker_id: String,
    /// Endpoint schedulers dial.
    pub endpoint: String,
    /// Session silence limits.
    pub timeouts: Timeouts,
    /// Live sessions by id and call (control plane only): FindSessions reads it.
    pub sessions: SessionTable,
    /// Session events for WatchEvents subscribers.
    pub events: broadcast::Sender<v1::SessionEvent>,
    /// One-way jobs (rtpengine `transform`): they run on the engine's media cores.
    pub jobs: crate::job::Jobs,
    /// Turns true once drained: WatchEvents streams end then, or the gRPC server's graceful
    /// shutdown would wait on them (a scheduler keeps one open) and the process never exit.
    stopped: watch::Sender<bool>,
}

impl WorkerState {
    /// Shared state around a started engine.
    pub fn new(
        engine: Engine,
        worker_id: String,
        endpoint: String,
        timeouts: Timeouts,
        drain: Drain,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            engine,
            counters: ControlCounters::default(),
            drain,
            worker_id,
            endpoint,
            timeouts,
            sessions: SessionTable::default(),
            events,
            // A job without input ends after the session timeout.
            jobs: crate::job::Jobs::new(timeouts.media),
            stopped: watch::channel(false).0,
        }
    }

    /// Ends every WatchEvents stream, after the events already sent.
    pub fn stop_event_streams(&self) {
        self.stopped.send_replace(true);
    }

    /// The call id of a live session.
    pub fn call_id(&self, id: SessionId) -> String {
        self.sessions.get(id).map(|r| r.call_id).unwrap_or_default()
    }

    /// Forgets a session (it ended).
    pub fn forget(&self, id: SessionId) -> String {
        self.engine.forget(id);
        self.sessions
            .remove(id)
            .map(|r| r.call_id)
            .unwrap_or_default()
    }

    /// The worker's figures, as GetStats and heartbeats report them.
    pub fn stats(&self) -> v1::WorkerStats {
        let cores = self.engine.cores();
        let draining = self.drain.is_draining();
        v1::WorkerStats {
            worker_id: self.worker_id.clone(),
            endpoint: self.endpoint.clone(),
            capacity_sessions: cores.iter().map(|c| c.capacity).sum(),
            headroom_sessions: if draining {
                0
            } else {
                cores.iter().map(|c| c.headroom).sum()
            },
            live_sessions: self.engine.sessions().len() as u64,
            draining,
            cores: cores
                .iter()
                .map(|c| v1::CoreStats {
                    core: c.core as u32,
                    sessions: c.sessions,
                    busy: c.busy,
                    capacity: c.capacity,
                    headroom: c.headroom,
                    deadline_misses: c.deadline_misses,
                    overloaded: c.overloaded,
                    talking: c.talking,
                    predicted_busy: c.predicted_busy,
                    session_cost: c.session_cost,
                })
                .collect(),
            overloaded: !cores.is_empty() && cores.iter().all(|c| c.overloaded),
        }
    }
}

/// The tonic service.
#[derive(Clone)]
pub struct WorkerService {
    state: Arc<WorkerState>,
}

impl WorkerService {
    /// A service over shared state.
    pub fn new(state: Arc<WorkerState>) -> Self {
        Self { state }
    }
}

fn parse_id(id: &str) -> Result<SessionId, Status> {
    // Accept the scheduler's "<worker>/<local>" form as well as the bare local id.
    let local = id.rsplit('/').next().unwrap_or(id);
    u64::from_str_radix(local, 16).map_err(|_| {
        Status::invalid_argument(format!("session id '{id}' is not a bridgepool session id"))
    })
}

/// Ends session `id` `seconds` from now, as DeleteSession would. The timer lives in the worker,
/// not in the scheduler replica that asked: a replica that goes away meanwhile leaves nothing.
fn end_later(state: &Arc<WorkerState>, id: SessionId, seconds: u32) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
        if let Some(snapshot) = state.engine.delete(id).await {
            state.forget(id);
            state.counters.ended(snapshot.ended, &snapshot);
            tracing::info!(session = %format!("{id:x}"), "session ended: its planned end came");
        }
    });
}

/// A scheduler's signalling state is kept in memory for the session's life: bounded.
fn check_signalling(s: &[u8]) -> Result<(), Status> {
    let max = bridgepool_proto::limits::MAX_SIGNALLING;
    if s.len() > max {
        return Err(Status::invalid_argument(format!(
            "signalling state of {} bytes is over the {max}-byte limit",
            s.len()
        )));
    }
    Ok(())
}

fn snapshot_to_wire(s: &SessionSnapshot) -> (v1::LegStats, v1::LegStats) {
    (
        convert::leg_stats(&s.leg_a, s.mos_a),
        convert::leg_stats(&s.leg_b, s.mos_b),
    )
}

fn address(a: std::net::SocketAddr) -> v1::MediaAddress {
    v1::MediaAddress {
        ip: a.ip().to_string(),
        port: u32::from(a.port()),
    }
}

fn seed() -> (StreamSeed, StreamSeed) {
    // RFC 3550 wants SSRC, sequence and timestamp random; mix the clock with a counter so two
    // sessions created in the same nanosecond still differ.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x9E37_79B9);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut x = nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut next = || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut stream = || {
        let r = next();
        StreamSeed {
            ssrc: (r >> 32) as u32,
            sequence: (r >> 16) as u16,
            timestamp: r as u32,
        }
    };
    (stream(), stream())
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::SessionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn create_session(
        &self,
        request: Request<v1::CreateSessionRequest>,
    ) -> Result<Response<v1::CreateSessionResponse>, Status> {
        let span = tracing::info_span!("create_session", call_id = %request.get_ref().call_id);
        adopt_remote_parent(&span, request.metadata());
        let state = self.state.clone();
        async move {
            let req = request.into_inner();
            if state.drain.is_draining() {
                state.counters.refused_draining.fetch_add(1, Ordering::Relaxed);
                return Err(Status::unavailable(format!(
                    "worker {} is draining: place the call elsewhere",
                    state.worker_id
                )));
            }
            let mode = convert::session_mode(req.mode).map_err(Status::invalid_argument)?;
            check_signalling(&req.signalling)?;
            let (a, b) = (req.leg_a.as_ref(), req.leg_b.as_ref());
            if mode == Mode::Transcode {
                a.ok_or_else(|| Status::invalid_argument("leg_a (the G.711 leg) is required"))?;
                b.ok_or_else(|| Status::invalid_argument("leg_b (the Opus leg) is required"))?;
            }
            let remote_a = convert::remote(a.and_then(|a| a.remote.as_ref()), "leg_a")
                .map_err(Status::invalid_argument)?;
            let remote_b = convert::remote(b.and_then(|b| b.remote.as_ref()), "leg_b")
                .map_err(Status::invalid_argument)?;
            let (seed_a, seed_b) = seed();
            let mut config = SessionConfig::new(bridgepool_codecs::g711::Law::Ulaw, seed_a, seed_b);
            config.mode = mode;
            config.jitter =
                convert::jitter_buffer(req.jitter.as_ref()).map_err(Status::invalid_argument)?;
            config.timeouts = state.timeouts;
            config.cname = format!("bridgepool@{}", state.worker_id);
            let codecs = legs::apply(&mut config, a, b, legs::Rules::create(mode))?;
            // A passthrough call whose answer may still make it a transcoded one holds the
            // transcoding cost, so that answer cannot be refused.
            let reserve = match mode {
                Mode::Passthrough if !req.may_transcode => Reserve::Relay,
                _ => Reserve::Transcode,
            };
            let created = match state
                .engine
                .create(config, remote_a.addr(), remote_b.addr(), reserve)
                .await
            {
                Ok(c) => c,
                Err(e @ CreateError::NoHeadroom { .. }) => {
                    state.counters.refused_capacity.fetch_add(1, Ordering::Relaxed);
                    return Err(Status::resource_exhausted(e.to_string()));
                }
                Err(e @ CreateError::Ports(_)) => {
                    state.counters.refused_ports.fetch_add(1, Ordering::Relaxed);
                    return Err(Status::resource_exhausted(e.to_string()));
                }
                Err(CreateError::Invalid(e)) => return Err(Status::invalid_argument(e)),
                Err(e) => return Err(Status::unavailable(e.to_string())),
            };
            state.counters.created.fetch_add(1, Ordering::Relaxed);
            state.sessions.insert(
                created.id,
                SessionRecord {
                    call_id: req.call_id.clone(),
                    from_tag: req.from_tag.clone(),
                    to_tag: req.to_tag.clone(),
                    mode,
                    local_a: created.local_a,
                    local_b: created.local_b,
                    core: created.core,
                    codec_a: codecs.a,
                    codec_b: codecs.b,
                    signalling: req.signalling,
                },
            );
            // Directions and hold apply at once.
            let change = SessionChange {
                mode_a: Some(convert::mode(a.map_or(0, |a| a.direction), remote_a)),
                mode_b: Some(convert::mode(b.map_or(0, |b| b.direction), remote_b)),
                ..SessionChange::default()
            };
            let _ = state.engine.update(created.id, change).await;
            tracing::info!(session = %format!("{:x}", created.id), core = created.core, "session created");
            Ok(Response::new(v1::CreateSessionResponse {
                session_id: format!("{:x}", created.id),
                leg_a_local: Some(address(created.local_a)),
                leg_b_local: Some(address(created.local_b)),
                core: created.core as u32,
            }))
        }
        .instrument(span)
        .await
    }

    async fn update_session(
        &self,
        request: Request<v1::UpdateSessionRequest>,
    ) -> Result<Response<v1::UpdateSessionResponse>, Status> {
        let span = tracing::info_span!("update_session", session = %request.get_ref().session_id);
        adopt_remote_parent(&span, request.metadata());
        let state = self.state.clone();
        async move {
            let req = request.into_inner();
            let id = parse_id(&req.session_id)?;
            let not_found = || Status::not_found(format!("no session {}", req.session_id));
            let record = state.sessions.get(id).ok_or_else(not_found)?;
            if let Some(s) = &req.signalling {
                check_signalling(s)?;
            }
            let asked = req
                .mode
                .map(convert::session_mode)
                .transpose()
                .map_err(Status::invalid_argument)?;
            let mode = asked.unwrap_or(record.mode);
            let Some(mut config) = state.engine.config_of(id).await else {
                return Err(not_found());
            };
            let mut change = SessionChange::default();
            let (a, b) = (req.leg_a.as_ref(), req.leg_b.as_ref());
            if let Some(a) = a {
                let remote = convert::remote(a.remote.as_ref(), "leg_a")
                    .map_err(Status::invalid_argument)?;
                if remote != Remote::Unknown {
                    change.remote_a = Some(remote.addr());
                }
                change.mode_a = Some(convert::mode(a.direction, remote));
            }
            if let Some(b) = b {
                let remote = convert::remote(b.remote.as_ref(), "leg_b")
                    .map_err(Status::invalid_argument)?;
                if remote != Remote::Unknown {
                    change.remote_b = Some(remote.addr());
                }
                change.mode_b = Some(convert::mode(b.direction, remote));
            }
            let before = config.clone();
            config.mode = mode;
            let known = legs::Known {
                a: record.codec_a,
                b: record.codec_b,
            };
            let codecs = legs::update(&mut config, a, b, mode, known)?;
            if config != before {
                change.config = Some(config);
            }
            // An asked mode sets the reservation: passthrough settles on the relay cost (the
            // rest goes back), transcoding needs its full cost (admitted now if not held).
            change.reserve = asked.map(|m| match m {
                Mode::Transcode => Reserve::Transcode,
                Mode::Passthrough => Reserve::Relay,
            });
            match state.engine.update(id, change).await {
                Some(Ok(())) => {
                    state.sessions.modify(id, |r| {
                        r.mode = mode;
                        r.codec_a = codecs.a;
                        r.codec_b = codecs.b;
                        if !req.to_tag.is_empty() {
                            r.to_tag = req.to_tag.clone();
                        }
                        if let Some(s) = req.signalling {
                            r.signalling = s;
                        }
                    });
                    if let Some(seconds) = req.end_in_seconds {
                        end_later(&state, id, seconds.min(3600));
                    }
                    Ok(Response::new(v1::UpdateSessionResponse {}))
                }
                Some(Err(e @ UpdateError::NoHeadroom { .. })) => {
                    Err(Status::resource_exhausted(e.to_string()))
                }
                Some(Err(e)) => Err(Status::invalid_argument(e.to_string())),
                None => Err(not_found()),
            }
        }
        .instrument(span)
        .await
    }

    async fn delete_session(
        &self,
        request: Request<v1::DeleteSessionRequest>,
    ) -> Result<Response<v1::DeleteSessionResponse>, Status> {
        let span = tracing::info_span!("delete_session", session = %request.get_ref().session_id);
        adopt_remote_parent(&span, request.metadata());
        let state = self.state.clone();
        async move {
            let id = parse_id(&request.get_ref().session_id)?;
            match state.engine.delete(id).await {
                Some(snapshot) => {
                    state.forget(id);
                    state.counters.ended(snapshot.ended, &snapshot);
                    let (leg_a, leg_b) = snapshot_to_wire(&snapshot);
                    Ok(Response::new(v1::DeleteSessionResponse {
                        already_deleted: false,
                        leg_a: Some(leg_a),
                        leg_b: Some(leg_b),
                    }))
                }
                None => Ok(Response::new(v1::DeleteSessionResponse {
                    already_deleted: true,
                    leg_a: None,
                    leg_b: None,
                })),
            }
        }
        .instrument(span)
        .await
    }

    async fn get_session(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::GetSessionResponse>, Status> {
        let id = parse_id(&request.get_ref().session_id)?;
        let snapshot = self.state.engine.query(id).await.ok_or_else(|| {
            Status::not_found(format!("no session {}", request.get_ref().session_id))
        })?;
        let (leg_a, leg_b) = snapshot_to_wire(&snapshot);
        Ok(Response::new(v1::GetSessionResponse {
            leg_a: Some(leg_a),
            leg_b: Some(leg_b),
            call_id: self.state.call_id(id),
            jitter_buffer: Some(convert::jitter_stats(&snapshot.jitter)),
        }))
    }

    async fn get_stats(
        &self,
        _request: Request<v1::GetStatsRequest>,
    ) -> Result<Response<v1::WorkerStats>, Status> {
        Ok(Response::new(self.state.stats()))
    }

    async fn drain(
        &self,
        request: Request<v1::DrainRequest>,
    ) -> Result<Response<v1::DrainResponse>, Status> {
        let seconds = request.get_ref().deadline_seconds;
        let deadline = (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)));
        self.state.drain.begin(deadline);
        self.state.counters.draining.store(1, Ordering::Relaxed);
        tracing::info!(live = self.state.engine.sessions().len(), "drain requested");
        Ok(Response::new(v1::DrainResponse {
            live_sessions: self.state.engine.sessions().len() as u64,
        }))
    }

    async fn find_sessions(
        &self,
        request: Request<v1::FindSessionsRequest>,
    ) -> Result<Response<v1::FindSessionsResponse>, Status> {
        let req = request.into_inner();
        if req.call_id.is_empty() {
            return Err(Status::invalid_argument("call_id is required"));
        }
        let state = &self.state;
        let found = state.sessions.find(&req.call_id, &req.from_tag);
        let mut sessions = Vec::with_capacity(found.len());
        for (id, r) in found {
            // Only the matches' figures are asked of their media threads, and only when wanted.
            let (leg_a, leg_b) = if req.without_figures {
                (v1::LegStats::default(), v1::LegStats::default())
            } else {
                let Some(snapshot) = state.engine.query(id).await else {
                    continue;
                };
                snapshot_to_wire(&snapshot)
            };
            sessions.push(v1::FoundSession {
                session_id: format!("{id:x}"),
                call_id: r.call_id,
                from_tag: r.from_tag,
                to_tag: r.to_tag,
                mode: convert::session_mode_to_wire(r.mode) as i32,
                leg_a_local: Some(address(r.local_a)),
                leg_b_local: Some(address(r.local_b)),
                core: r.core as u32,
                leg_a: Some(leg_a),
                leg_b: Some(leg_b),
                signalling: r.signalling,
            });
        }
        Ok(Response::new(v1::FindSessionsResponse { sessions }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        _request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let mut events = self.state.events.subscribe();
        let mut stopped = self.state.stopped.subscribe();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // Events first: those sent before the stop still reach the subscriber.
                    biased;
                    event = events.recv() => match event {
                        Ok(e) => {
                            // A subscriber that stopped reading must not hold the stop (and so
                            // the process) hostage: wait for room or the stop, whichever first.
                            tokio::select! {
                                biased;
                                permit = tx.reserve() => match permit {
                                    Ok(p) => p.send(Ok(e)),
                                    Err(_) => return,
                                },
                                () = async { drop(stopped.wait_for(|s| *s).await) } => return,
                            }
                        }
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "a WatchEvents subscriber fell behind");
                        }
                        Err(RecvError::Closed) => return,
                    },
                    () = async { drop(stopped.wait_for(|s| *s).await) } => return,
                    // The subscriber went away.
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn create_job(
        &self,
        request: Request<v1::CreateJobRequest>,
    ) -> Result<Response<v1::CreateJobResponse>, Status> {
        if self.state.drain.is_draining() {
            return Err(Status::unavailable("draining: place the job elsewhere"));
        }
        // Joins the scheduler's `ng` span of the relay's transform (W3C traceparent).
        let span = tracing::info_span!("create_job", call_id = %request.get_ref().call_id);
        adopt_remote_parent(&span, request.metadata());
        let state = &self.state;
        let created = state
            .jobs
            .create(&state.engine, request.into_inner())
            .instrument(span)
            .await?;
        Ok(Response::new(created))
    }

    async fn delete_job(
        &self,
        request: Request<v1::JobRef>,
    ) -> Result<Response<v1::DeleteJobResponse>, Status> {
        let state = &self.state;
        let deleted = state.jobs.delete(&state.engine, request.get_ref()).await;
        Ok(Response::new(v1::DeleteJobResponse { deleted }))
    }

    async fn get_job(
        &self,
        request: Request<v1::JobRef>,
    ) -> Result<Response<v1::GetJobResponse>, Status> {
        let state = &self.state;
        let found = state.jobs.get(&state.engine, Some(request.get_ref())).await;
        Ok(Response::new(v1::GetJobResponse { jobs: found }))
    }

    async fn list_jobs(
        &self,
        _request: Request<v1::ListJobsRequest>,
    ) -> Result<Response<v1::ListJobsResponse>, Status> {
        let state = &self.state;
        Ok(Response::new(v1::ListJobsResponse {
            jobs: state.jobs.get(&state.engine, None).await,
        }))
    }
}
