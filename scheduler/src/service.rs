//! The Scheduler gRPC service: negotiation and placement are plain functions; this file only
//! calls them, talks to workers and keeps the registry. No lock is held across an await.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bridgepool_proto::telemetry::{adopt_remote_parent, inject_context};
use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_server::Scheduler;
use bridgepool_proto::v1::worker_client::WorkerClient;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument as _;

use crate::metrics::{Metrics, Outcome};
use crate::negotiate::{Order, Plan, Transcode, negotiate};
use crate::placement;
use crate::registry::{Registered, Registry, WorkerState};

/// Workers tried per Allocate before giving up.
const TRIES: usize = 3;

/// Everything the service shares with its background tasks.
pub struct SchedulerState {
    registry: Mutex<Registry>,
    clients: Mutex<HashMap<String, WorkerClient<Channel>>>,
    rng: Mutex<StdRng>,
    /// Events for Watch subscribers.
    pub events: broadcast::Sender<v1::SessionEvent>,
    /// Prometheus counters.
    pub metrics: Metrics,
    /// ng front-door counters.
    pub ng: crate::ng::metrics::NgMetrics,
    pub(crate) worker_timeout: Duration,
}

impl SchedulerState {
    /// Fresh state.
    pub fn new(lease: Duration, worker_timeout: Duration) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            registry: Mutex::new(Registry::new(lease)),
            clients: Mutex::new(HashMap::new()),
            rng: Mutex::new(StdRng::from_os_rng()),
            events,
            metrics: Metrics::default(),
            ng: Default::default(),
            worker_timeout,
        }
    }

    /// The registry (never hold the guard across an await).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn client(&self, endpoint: &str) -> Result<WorkerClient<Channel>, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(endpoint) {
            return Ok(c.clone());
        }
        let channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| Status::internal(format!("worker endpoint {endpoint}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(self.worker_timeout)
            .connect_lazy();
        let client = WorkerClient::new(channel);
        clients.insert(endpoint.to_owned(), client.clone());
        Ok(client)
    }

    /// Marks silent workers lost and tells Watch subscribers about their sessions.
    pub fn expire(&self, now: Instant) {
        let (lost, known) = {
            let mut registry = self.registry();
            let before = registry.len();
            let lost = registry.expire(now);
            // Workers were forgotten: drop their cached channels too.
            let known = (registry.len() < before).then(|| {
                registry
                    .iter()
                    .map(|(_, w)| w.endpoint.clone())
                    .collect::<std::collections::HashSet<_>>()
            });
            (lost, known)
        };
        if let Some(known) = known {
            self.clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|endpoint, _| known.contains(endpoint));
        }
        for (worker, sessions) in lost {
            tracing::warn!(%worker, sessions = sessions.len(), "worker lost: no heartbeat within the lease");
            let _ = self.events.send(v1::SessionEvent {
                session_id: String::new(),
                call_id: String::new(),
                kind: v1::EventKind::WorkerLost as i32,
                detail: format!("worker {worker} lost"),
                leg_a: None,
                leg_b: None,
                worker_id: worker.clone(),
            });
            for local in sessions {
                // A one-way job is named by the relay's call: say which, and what the relay does
                // not do (it does not offload the direction again by itself).
                let (session_id, call_id, detail) = match bridgepool_proto::parse_job_key(&local) {
                    Some((call_id, from_tag)) => (
                        String::new(),
                        call_id.to_owned(),
                        format!(
                            "worker {worker} lost: the transform job of from-tag {from_tag:?} has no media; the relay keeps sending to it until a re-INVITE or BYE"
                        ),
                    ),
                    None => (
                        format!("{worker}/{local}"),
                        String::new(),
                        format!("worker {worker} lost: the call has no media; re-INVITE or BYE"),
                    ),
                };
                self.metrics.lost_with_worker(call_id.is_empty());
                let _ = self.events.send(v1::SessionEvent {
                    session_id,
                    call_id,
                    kind: v1::EventKind::WorkerLost as i32,
                    detail,
                    leg_a: None,
                    leg_b: None,
                    worker_id: worker.clone(),
                });
            }
        }
    }

    /// Forwards one worker's events to Watch subscribers while it is known and alive.
    pub fn watch_worker(self: &Arc<Self>, worker: String, endpoint: String) {
        let state = self.clone();
        tokio::spawn(async move {
            loop {
                let alive = state
                    .registry()
                    .get(&worker)
                    .is_some_and(|w| w.state != WorkerState::Lost && w.endpoint == endpoint);
                if !alive {
                    return;
                }
                if let Ok(mut client) = state.client(&endpoint) {
                    // A stream lives long: no request timeout on it.
                    let request = Request::new(v1::WatchEventsRequest {});
                    if let Ok(response) = client.watch_events(request).await {
                        let mut stream = response.into_inner();
                        while let Ok(Some(event)) = stream.message().await {
                            let _ = state.events.send(event);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// The tonic service.
#[derive(Clone)]
pub struct SchedulerService {
    state: Arc<SchedulerState>,
}

impl SchedulerService {
    /// A service over shared state.
    pub fn new(state: Arc<SchedulerState>) -> Self {
        Self { state }
    }
}

fn split_id(id: &str) -> Result<(&str, &str), Status> {
    id.split_once('/')
        .filter(|(w, l)| !w.is_empty() && !l.is_empty())
        .ok_or_else(|| {
            Status::invalid_argument(format!("session id '{id}' is not '<worker>/<session>'"))
        })
}

fn answers(t: &Transcode, created: &v1::CreateSessionResponse) -> (v1::LegAnswer, v1::LegAnswer) {
    let g711 = v1::LegAnswer {
        local: created.leg_a_local.clone(),
        codec: Some(t.g711_codec.clone()),
        telephone_event: t.g711_events.clone(),
    };
    let opus = v1::LegAnswer {
        local: created.leg_b_local.clone(),
        codec: Some(t.opus_codec.clone()),
        telephone_event: t.opus_events.clone(),
    };
    match t.order {
        Order::G711First => (g711, opus),
        Order::OpusFirst => (opus, g711),
    }
}

/// Refusals that mean "try another worker".
fn worth_another_worker(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::ResourceExhausted
            | Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
    )
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::SessionEvent, Status>> + Send>>;

impl SchedulerService {
    async fn place(
        &self,
        call_id: &str,
        t: &Transcode,
        jitter: Option<&v1::JitterBuffer>,
        span: &tracing::Span,
    ) -> Result<(String, v1::CreateSessionResponse), Status> {
        let state = &self.state;
        state.expire(Instant::now());
        let (candidates, ids) = {
            let candidates = state.registry().candidates();
            let mut rng = state.rng.lock().unwrap_or_else(|e| e.into_inner());
            let ids = placement::order(&candidates, &mut *rng, TRIES);
            (candidates, ids)
        };
        let mut last_refusal = None;
        for i in ids {
            let worker = candidates[i].id.clone();
            let Some(endpoint) = state.registry().get(&worker).map(|w| w.endpoint.clone()) else {
                continue;
            };
            let mut client = state.client(&endpoint)?;
            let mut request = Request::new(v1::CreateSessionRequest {
                call_id: call_id.to_owned(),
                leg_a: Some(t.g711.clone()),
                leg_b: Some(t.opus.clone()),
                jitter: jitter.copied(),
                ..Default::default()
            });
            request.set_timeout(state.worker_timeout);
            inject_context(span, request.metadata_mut());
            match client.create_session(request).await {
                Ok(response) => {
                    let created = response.into_inner();
                    state.registry().placed(&worker, &created.session_id);
                    return Ok((worker.to_string(), created));
                }
                Err(status) if worth_another_worker(&status) => {
                    tracing::info!(%worker, code = ?status.code(), message = %status.message(), "worker refused; trying another");
                    state.registry().refused(&worker);
                    last_refusal = Some(status);
                }
                Err(status) => return Err(status),
            }
        }
        let (mut ready, mut draining, mut lost) = (0, 0, 0);
        for c in &candidates {
            match (c.lost, c.draining) {
                (true, _) => lost += 1,
                (false, true) => draining += 1,
                _ => ready += 1,
            }
        }
        let last = last_refusal.map_or(String::new(), |s| {
            format!("; last refusal: {}", s.message())
        });
        Err(Status::resource_exhausted(format!(
            "no worker has headroom: {} workers ({ready} ready, {draining} draining, {lost} lost){last}",
            candidates.len()
        )))
    }
}

#[tonic::async_trait]
impl Scheduler for SchedulerService {
    async fn allocate(
        &self,
        request: Request<v1::AllocateRequest>,
    ) -> Result<Response<v1::AllocateResponse>, Status> {
        let started = Instant::now();
        let span = tracing::info_span!("allocate", call_id = %request.get_ref().call_id);
        adopt_remote_parent(&span, request.metadata());
        let req = request.into_inner();
        let (a, b) = (req.leg_a.unwrap_or_default(), req.leg_b.unwrap_or_default());
        let plan = match negotiate(&a, &b) {
            Ok(p) => p,
            Err(e) => {
                self.state
                    .metrics
                    .allocation(false, Outcome::Invalid, started.elapsed());
                return Err(Status::invalid_argument(e.to_string()));
            }
        };
        match plan {
            Plan::Passthrough { leg_a, leg_b } => {
                self.state
                    .metrics
                    .allocation(false, Outcome::Ok, started.elapsed());
                Ok(Response::new(v1::AllocateResponse {
                    decision: v1::Decision::Passthrough as i32,
                    session_id: String::new(),
                    leg_a: Some(v1::LegAnswer {
                        local: None,
                        codec: Some(leg_a),
                        telephone_event: None,
                    }),
                    leg_b: Some(v1::LegAnswer {
                        local: None,
                        codec: Some(leg_b),
                        telephone_event: None,
                    }),
                    worker_id: String::new(),
                }))
            }
            Plan::Transcode(t) => {
                let result = self
                    .place(&req.call_id, &t, req.jitter.as_ref(), &span)
                    .instrument(span.clone())
                    .await;
                let outcome = match &result {
                    Ok(_) => Outcome::Ok,
                    Err(s) if s.code() == Code::ResourceExhausted => Outcome::Refused,
                    Err(s) if s.code() == Code::InvalidArgument => Outcome::Invalid,
                    Err(_) => Outcome::Error,
                };
                self.state
                    .metrics
                    .allocation(true, outcome, started.elapsed());
                let (worker, created) = result?;
                let (leg_a, leg_b) = answers(&t, &created);
                Ok(Response::new(v1::AllocateResponse {
                    decision: v1::Decision::Transcode as i32,
                    session_id: format!("{worker}/{}", created.session_id),
                    leg_a: Some(leg_a),
                    leg_b: Some(leg_b),
                    worker_id: worker,
                }))
            }
        }
    }

    async fn update(
        &self,
        request: Request<v1::UpdateRequest>,
    ) -> Result<Response<v1::UpdateResponse>, Status> {
        let req = request.into_inner();
        let (worker, local) = split_id(&req.session_id)?;
        let (a, b) = match (&req.leg_a, &req.leg_b) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(Status::invalid_argument(
                    "update carries both legs' full offers (codecs and remote), as a re-INVITE's SDP does",
                ));
            }
        };
        let t = match negotiate(a, b).map_err(|e| Status::invalid_argument(e.to_string()))? {
            Plan::Transcode(t) => t,
            Plan::Passthrough { leg_a, .. } => {
                return Err(Status::failed_precondition(format!(
                    "the legs now share {}/{}: release this session and let the relay pass the call through",
                    leg_a.name, leg_a.clock_rate
                )));
            }
        };
        let endpoint = self
            .state
            .registry()
            .get(worker)
            .map(|w| w.endpoint.clone())
            .ok_or_else(|| Status::not_found(format!("worker {worker} is not known")))?;
        let mut client = self.state.client(&endpoint)?;
        client
            .update_session(v1::UpdateSessionRequest {
                session_id: local.to_owned(),
                leg_a: Some(t.g711.clone()),
                leg_b: Some(t.opus.clone()),
                ..Default::default()
            })
            .await?;
        let (leg_a, leg_b) = match t.order {
            Order::G711First => (
                v1::LegAnswer {
                    local: None,
                    codec: Some(t.g711_codec.clone()),
                    telephone_event: t.g711_events.clone(),
                },
                v1::LegAnswer {
                    local: None,
                    codec: Some(t.opus_codec.clone()),
                    telephone_event: t.opus_events.clone(),
                },
            ),
            Order::OpusFirst => (
                v1::LegAnswer {
                    local: None,
                    codec: Some(t.opus_codec.clone()),
                    telephone_event: t.opus_events.clone(),
                },
                v1::LegAnswer {
                    local: None,
                    codec: Some(t.g711_codec.clone()),
                    telephone_event: t.g711_events.clone(),
                },
            ),
        };
        Ok(Response::new(v1::UpdateResponse {
            leg_a: Some(leg_a),
            leg_b: Some(leg_b),
        }))
    }

    async fn release(
        &self,
        request: Request<v1::ReleaseRequest>,
    ) -> Result<Response<v1::ReleaseResponse>, Status> {
        let span = tracing::info_span!("release", session = %request.get_ref().session_id);
        adopt_remote_parent(&span, request.metadata());
        async move {
            let id = request.into_inner().session_id;
            let (worker, local) = split_id(&id)?;
            let endpoint = self
                .state
                .registry()
                .get(worker)
                .filter(|w| w.state != WorkerState::Lost)
                .map(|w| w.endpoint.clone());
            let Some(endpoint) = endpoint else {
                // The worker is gone and its sessions with it: nothing left to release.
                return Ok(Response::new(v1::ReleaseResponse {
                    already_released: true,
                    leg_a: None,
                    leg_b: None,
                }));
            };
            let mut client = self.state.client(&endpoint)?;
            let mut request = Request::new(v1::DeleteSessionRequest {
                session_id: local.to_owned(),
            });
            inject_context(&tracing::Span::current(), request.metadata_mut());
            let deleted = client.delete_session(request).await?.into_inner();
            self.state.registry().released(worker, local);
            Ok(Response::new(v1::ReleaseResponse {
                already_released: deleted.already_deleted,
                leg_a: deleted.leg_a,
                leg_b: deleted.leg_b,
            }))
        }
        .instrument(span)
        .await
    }

    async fn query(
        &self,
        request: Request<v1::QueryRequest>,
    ) -> Result<Response<v1::QueryResponse>, Status> {
        let id = request.into_inner().session_id;
        let (worker, local) = split_id(&id)?;
        let endpoint = self
            .state
            .registry()
            .get(worker)
            .filter(|w| w.state != WorkerState::Lost)
            .map(|w| w.endpoint.clone())
            .ok_or_else(|| Status::not_found(format!("worker {worker} is not known or lost")))?;
        let mut client = self.state.client(&endpoint)?;
        let s = client
            .get_session(v1::GetSessionRequest {
                session_id: local.to_owned(),
            })
            .await?
            .into_inner();
        Ok(Response::new(v1::QueryResponse {
            worker_id: worker.to_owned(),
            leg_a: s.leg_a,
            leg_b: s.leg_b,
        }))
    }

    async fn list_workers(
        &self,
        _request: Request<v1::ListWorkersRequest>,
    ) -> Result<Response<v1::ListWorkersResponse>, Status> {
        self.state.expire(Instant::now());
        let now = Instant::now();
        let mut workers: Vec<v1::WorkerInfo> = self
            .state
            .registry()
            .iter()
            .map(|(id, w)| v1::WorkerInfo {
                worker_id: id.to_string(),
                endpoint: w.endpoint.clone(),
                state: match w.state {
                    WorkerState::Ready => v1::WorkerState::Ready,
                    WorkerState::Draining => v1::WorkerState::Draining,
                    WorkerState::Lost => v1::WorkerState::Lost,
                } as i32,
                capacity_sessions: w.stats.capacity_sessions,
                headroom_sessions: w.headroom(),
                live_sessions: w.stats.live_sessions,
                last_seen_ms: now.saturating_duration_since(w.last_seen).as_millis() as u64,
            })
            .collect();
        workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Ok(Response::new(v1::ListWorkersResponse { workers }))
    }

    async fn drain(
        &self,
        request: Request<v1::DrainWorkerRequest>,
    ) -> Result<Response<v1::DrainWorkerResponse>, Status> {
        let req = request.into_inner();
        let endpoint = self
            .state
            .registry()
            .get(&req.worker_id)
            .map(|w| w.endpoint.clone())
            .ok_or_else(|| Status::not_found(format!("worker {} is not known", req.worker_id)))?;
        let mut client = self.state.client(&endpoint)?;
        let r = client
            .drain(v1::DrainRequest {
                deadline_seconds: req.deadline_seconds,
            })
            .await?
            .into_inner();
        Ok(Response::new(v1::DrainWorkerResponse {
            live_sessions: r.live_sessions,
        }))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        _request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream =
            BroadcastStream::new(self.state.events.subscribe()).filter_map(|e| e.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn heartbeat(
        &self,
        request: Request<v1::WorkerStatus>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let status = request.into_inner();
        let (id, endpoint) = status
            .stats
            .as_ref()
            .map(|s| (s.worker_id.clone(), s.endpoint.clone()))
            .unwrap_or_default();
        let (registered, lease) = {
            let mut registry = self.state.registry();
            let registered = registry
                .heartbeat(Instant::now(), status)
                .map_err(Status::invalid_argument)?;
            (registered, registry.lease())
        };
        if registered == Registered::New {
            tracing::info!(worker = %id, %endpoint, "worker registered");
            self.state.watch_worker(id, endpoint);
        }
        Ok(Response::new(v1::HeartbeatResponse {
            lease_ms: lease.as_millis() as u32,
        }))
    }
}
