//! The ng server's calls to workers: place a one-way job (power of two choices, like sessions), and
//! find jobs by the relay's (call-id, from-tag) on any worker, so any scheduler replica can delete
//! or query a job another one created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridgepool_proto::telemetry::inject_context;
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::place;
use crate::registry::WorkerState;
use crate::service::SchedulerState;

/// A worker call on the ng path must leave the relay time to fall back (it waits 50 ms per try).
const NG_WORKER_TIMEOUT: Duration = Duration::from_millis(250);

/// A live worker: its id and endpoint.
type Target = (Arc<str>, String);

/// Why no job was created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceError {
    /// No worker admitted it (none known, all full, draining or lost).
    #[error("no worker has headroom ({workers} known)")]
    NoHeadroom {
        /// Workers known.
        workers: usize,
    },
    /// A worker refused the job itself (an invalid pair, a bad destination).
    #[error("{0}")]
    Refused(String),
}

/// Worker calls for one-way jobs, with a (call-id, from-tag) -> worker index as a fast path.
pub struct JobPool {
    state: Arc<SchedulerState>,
    rng: Mutex<StdRng>,
    placed: Mutex<HashMap<(String, String), Arc<str>>>,
}

impl JobPool {
    /// Calls over the scheduler's registry and worker channels.
    pub fn new(state: Arc<SchedulerState>) -> Self {
        Self {
            state,
            rng: Mutex::new(StdRng::from_os_rng()),
            placed: Mutex::new(HashMap::new()),
        }
    }

    fn timeout(&self) -> Duration {
        self.state.worker_timeout.min(NG_WORKER_TIMEOUT)
    }

    /// The scheduler's shared state.
    pub fn state(&self) -> &Arc<SchedulerState> {
        &self.state
    }

    /// Places one job; returns the worker id and the worker's answer.
    pub async fn create(
        &self,
        request: v1::CreateJobRequest,
    ) -> Result<(Arc<str>, v1::CreateJobResponse), PlaceError> {
        let timeout = self.timeout();
        let (worker, created) = place::place(&self.state, &self.rng, "job", |mut client| {
            let mut call = Request::new(request.clone());
            call.set_timeout(timeout);
            inject_context(&tracing::Span::current(), call.metadata_mut());
            async move { Ok(client.create_job(call).await?.into_inner()) }
        })
        .await?;
        let key = (request.call_id.clone(), request.from_tag.clone());
        self.state
            .registry()
            .placed(&worker, &bridgepool_proto::job_key(&key.0, &key.1));
        self.index().insert(key, worker.clone());
        Ok((worker, created))
    }

    /// Whether this replica placed a job under `call_id` (a relay's transform, not an
    /// offer/answer call): its delete and query then skip the search for sessions.
    pub fn placed_here(&self, call_id: &str) -> bool {
        self.index().keys().any(|(c, _)| c == call_id)
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<str>>> {
        self.placed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live workers' (id, endpoint), the one indexed for `key` split off first.
    fn targets(&self, key: Option<&(String, String)>) -> (Option<Target>, Vec<Target>) {
        let first = key.and_then(|k| self.index().get(k).cloned());
        let registry = self.state.registry();
        let mut all: Vec<Target> = registry
            .iter()
            .filter(|(_, w)| w.state != WorkerState::Lost)
            .map(|(id, w)| (id.clone(), w.endpoint.clone()))
            .collect();
        let first = first
            .and_then(|first| all.iter().position(|(id, _)| *id == first))
            .map(|pos| all.swap_remove(pos));
        (first, all)
    }

    /// Asks `workers` all at once (one by one, a replica that never saw the job would pay a round
    /// trip per worker); returns the answers that came, with who gave them.
    async fn ask_each<R, F, Fut>(&self, workers: Vec<Target>, ask: F) -> Vec<(Arc<str>, R)>
    where
        F: Fn(WorkerClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<R, Status>> + Send + 'static,
        R: Send + 'static,
    {
        let mut calls = tokio::task::JoinSet::new();
        for (id, endpoint) in workers {
            if let Ok(client) = self.state.client(&endpoint) {
                let call = ask(client, self.timeout());
                calls.spawn(async move { (id, call.await) });
            }
        }
        let mut answers = Vec::new();
        while let Some(joined) = calls.join_next().await {
            if let Ok((id, Ok(answer))) = joined {
                answers.push((id, answer));
            }
        }
        answers
    }

    /// The jobs `job` names: from the indexed worker alone when it has them (the common case: the
    /// relay deletes through the replica that placed the job), else from every live worker.
    async fn find<R, F, Fut>(&self, job: &v1::JobRef, ask: F) -> Vec<(Arc<str>, Vec<R>)>
    where
        F: Fn(WorkerClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<Vec<R>, Status>> + Send + 'static,
        R: Send + 'static,
    {
        let key = (job.call_id.clone(), job.from_tag.clone());
        let (first, rest) = self.targets((!job.any_tag).then_some(&key));
        if let Some(first) = first {
            let found = self.ask_each(vec![first], &ask).await;
            if found.iter().any(|(_, jobs)| !jobs.is_empty()) {
                return found;
            }
        }
        self.ask_each(rest, &ask).await
    }

    /// Deletes the jobs `job` names wherever they are; returns their final figures.
    pub async fn delete(&self, job: v1::JobRef) -> Vec<v1::JobStats> {
        let request = job.clone();
        let answers = self
            .find(&job, move |mut client, timeout| {
                let mut call = Request::new(request.clone());
                call.set_timeout(timeout);
                async move { Ok(client.delete_job(call).await?.into_inner().deleted) }
            })
            .await;
        let mut deleted = Vec::new();
        for (worker, jobs) in answers {
            for j in &jobs {
                self.state
                    .registry()
                    .released(&worker, &bridgepool_proto::job_key(&j.call_id, &j.from_tag));
            }
            deleted.extend(jobs);
        }
        let mut index = self.index();
        if job.any_tag {
            index.retain(|(c, _), _| *c != job.call_id);
        } else {
            index.remove(&(job.call_id.clone(), job.from_tag.clone()));
        }
        deleted
    }

    /// The figures of the jobs `job` names.
    pub async fn query(&self, job: v1::JobRef) -> Vec<v1::JobStats> {
        let request = job.clone();
        self.find(&job, move |mut client, timeout| {
            let mut call = Request::new(request.clone());
            call.set_timeout(timeout);
            async move { Ok(client.get_job(call).await?.into_inner().jobs) }
        })
        .await
        .into_iter()
        .flat_map(|(_, jobs)| jobs)
        .collect()
    }

    /// Every job on every live worker.
    pub async fn list(&self) -> Result<Vec<v1::JobStats>, Status> {
        let (_, all) = self.targets(None);
        Ok(self
            .ask_each(all, |mut client, timeout| {
                let mut call = Request::new(v1::ListJobsRequest {});
                call.set_timeout(timeout);
                async move { Ok(client.list_jobs(call).await?.into_inner().jobs) }
            })
            .await
            .into_iter()
            .flat_map(|(_, jobs)| jobs)
            .collect())
    }

    /// Live two-way sessions the workers last reported.
    pub fn live_sessions(&self) -> u64 {
        self.state
            .registry()
            .iter()
            .filter(|(_, w)| w.state != WorkerState::Lost)
            .map(|(_, w)| w.stats.live_sessions)
            .sum()
    }
}
