//! The ng server's calls to workers: place a one-way job (power of two choices, like sessions), and
//! find jobs by the relay's (call-id, from-tag) on any worker, so any scheduler replica can delete
//! or query a job another one created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tonic::{Code, Request, Status};

use crate::placement;
use crate::registry::WorkerState;
use crate::service::SchedulerState;

/// Workers tried per job before answering `error`.
const TRIES: usize = 3;
/// A worker call on the ng path must leave the relay time to fall back (it waits 50 ms per try).
const NG_WORKER_TIMEOUT: Duration = Duration::from_millis(250);

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
        self.state.expire(Instant::now());
        let (candidates, order) = {
            let candidates = self.state.registry().candidates();
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let order = placement::order(&candidates, &mut *rng, TRIES);
            (candidates, order)
        };
        for i in order {
            let worker = candidates[i].id.clone();
            let Some(endpoint) = self
                .state
                .registry()
                .get(&worker)
                .map(|w| w.endpoint.clone())
            else {
                continue;
            };
            let Ok(mut client) = self.state.client(&endpoint) else {
                continue;
            };
            let mut call = Request::new(request.clone());
            call.set_timeout(self.timeout());
            match client.create_job(call).await {
                Ok(response) => {
                    let key = (request.call_id.clone(), request.from_tag.clone());
                    self.state
                        .registry()
                        .placed(&worker, &format!("job:{}:{}", key.0, key.1));
                    self.index().insert(key, worker.clone());
                    return Ok((worker, response.into_inner()));
                }
                Err(s) if s.code() == Code::InvalidArgument => {
                    return Err(PlaceError::Refused(s.message().to_owned()));
                }
                Err(s) => {
                    tracing::info!(%worker, code = ?s.code(), message = %s.message(), "worker refused a job; trying another");
                    self.state.registry().refused(&worker);
                }
            }
        }
        Err(PlaceError::NoHeadroom {
            workers: candidates.len(),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<str>>> {
        self.placed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live workers' (id, endpoint), the indexed one for `key` first.
    fn targets(&self, key: Option<&(String, String)>) -> Vec<(Arc<str>, String)> {
        let first = key.and_then(|k| self.index().get(k).cloned());
        let registry = self.state.registry();
        let mut all: Vec<(Arc<str>, String)> = registry
            .iter()
            .filter(|(_, w)| w.state != WorkerState::Lost)
            .map(|(id, w)| (id.clone(), w.endpoint.clone()))
            .collect();
        if let Some(first) = first
            && let Some(pos) = all.iter().position(|(id, _)| *id == first)
        {
            all.swap(0, pos);
        }
        all
    }

    /// Deletes the jobs `job` names wherever they are; returns their final figures.
    pub async fn delete(&self, job: v1::JobRef) -> Vec<v1::JobStats> {
        let key = (job.call_id.clone(), job.from_tag.clone());
        let mut deleted = Vec::new();
        for (worker, endpoint) in self.targets((!job.any_tag).then_some(&key)) {
            let Ok(mut client) = self.state.client(&endpoint) else {
                continue;
            };
            let mut call = Request::new(job.clone());
            call.set_timeout(self.timeout());
            if let Ok(r) = client.delete_job(call).await {
                let jobs = r.into_inner().deleted;
                for j in &jobs {
                    self.state
                        .registry()
                        .released(&worker, &format!("job:{}:{}", j.call_id, j.from_tag));
                }
                let found = !jobs.is_empty();
                deleted.extend(jobs);
                // A job lives on one worker: stop at the first that had it.
                if found && !job.any_tag {
                    break;
                }
            }
        }
        let mut index = self.index();
        if job.any_tag {
            index.retain(|(c, _), _| *c != job.call_id);
        } else {
            index.remove(&key);
        }
        deleted
    }

    /// The figures of the jobs `job` names.
    pub async fn query(&self, job: v1::JobRef) -> Vec<v1::JobStats> {
        let key = (job.call_id.clone(), job.from_tag.clone());
        let mut found = Vec::new();
        for (_, endpoint) in self.targets((!job.any_tag).then_some(&key)) {
            let Ok(mut client) = self.state.client(&endpoint) else {
                continue;
            };
            let mut call = Request::new(job.clone());
            call.set_timeout(self.timeout());
            if let Ok(r) = client.get_job(call).await {
                found.extend(r.into_inner().jobs);
                if !found.is_empty() && !job.any_tag {
                    break;
                }
            }
        }
        found
    }

    /// Every job on every live worker.
    pub async fn list(&self) -> Result<Vec<v1::JobStats>, Status> {
        let mut all = Vec::new();
        for (_, endpoint) in self.targets(None) {
            let mut client = self.state.client(&endpoint)?;
            let mut call = Request::new(v1::ListJobsRequest {});
            call.set_timeout(self.timeout());
            if let Ok(r) = client.list_jobs(call).await {
                all.extend(r.into_inner().jobs);
            }
        }
        Ok(all)
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
