//! Placing one thing (a two-way session, a one-way job) on a worker: the power of two choices
//! over the registry, up to [`TRIES`] workers. A worker that refuses (full, draining) is marked
//! and the next one tried; INVALID_ARGUMENT ends the search, since the request itself is wrong.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bridgepool_proto::v1::worker_client::WorkerClient;
use rand::rngs::StdRng;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::pool::PlaceError;
use crate::placement;
use crate::service::SchedulerState;

/// Workers tried before answering `error`.
pub(super) const TRIES: usize = 3;

/// Asks workers in placement order with `ask` until one accepts; returns it and its answer.
/// `what` names the thing in the log line of a refusal.
pub(super) async fn place<R, F, Fut>(
    state: &SchedulerState,
    rng: &Mutex<StdRng>,
    what: &str,
    mut ask: F,
) -> Result<(Arc<str>, R), PlaceError>
where
    F: FnMut(WorkerClient<Channel>) -> Fut,
    Fut: Future<Output = Result<R, Status>>,
{
    state.expire(Instant::now());
    let (candidates, order) = {
        let candidates = state.registry().candidates();
        let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
        let order = placement::order(&candidates, &mut *rng, TRIES);
        (candidates, order)
    };
    for i in order {
        let worker = candidates[i].id.clone();
        let Some(endpoint) = state.registry().get(&worker).map(|w| w.endpoint.clone()) else {
            continue;
        };
        let Ok(client) = state.client(&endpoint) else {
            continue;
        };
        match ask(client).await {
            Ok(answer) => return Ok((worker, answer)),
            Err(s) if s.code() == Code::InvalidArgument => {
                return Err(PlaceError::Refused(s.message().to_owned()));
            }
            Err(s) => {
                tracing::info!(%worker, code = ?s.code(), message = %s.message(), "worker refused a {what}; trying another");
                state.registry().refused(&worker);
            }
        }
    }
    Err(PlaceError::NoHeadroom {
        workers: candidates.len(),
    })
}
