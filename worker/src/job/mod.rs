//! One-way jobs (rtpengine `transform`): the Worker service's CreateJob/DeleteJob/GetJob/ListJobs
//! land here. [`Jobs`] validates and converts the wire request into
//! [`crate::session::oneway::OneWay`] pipelines and hands them to the media engine, which places
//! each on a media core like a session (its socket on that core's poll, its timers on that
//! core's heap) and counts its calibrated cost against the core's headroom.

mod wire;

use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use tonic::Status;

use crate::engine::{CreateError, Engine, JobKind, JobSelector};
use crate::session::oneway::{OneWay, OneWayCodec, OneWayPair};

/// The worker's one-way jobs: conversion and validation in front of the engine.
#[derive(Clone, Copy, Debug)]
pub struct Jobs {
    idle: Duration,
}

impl Jobs {
    /// Jobs without input for `idle` end.
    pub fn new(idle: Duration) -> Self {
        Self { idle }
    }

    /// CreateJob.
    pub async fn create(
        &self,
        engine: &Engine,
        req: v1::CreateJobRequest,
    ) -> Result<v1::CreateJobResponse, Status> {
        let jitter =
            crate::convert::jitter_buffer(req.jitter.as_ref()).map_err(Status::invalid_argument)?;
        let pairs = wire::pairs(&req.pairs, jitter).map_err(Status::invalid_argument)?;
        let destination =
            wire::destination(req.destination.as_ref()).map_err(Status::invalid_argument)?;
        let mut job =
            OneWay::new(&pairs, self.idle).map_err(|e| Status::invalid_argument(e.to_string()))?;
        job.arm(Instant::now());
        let name = (req.call_id.clone(), req.from_tag.clone());
        let (local, core) = engine
            .create_job(name, Box::new(job), destination, kind(&pairs))
            .await
            .map_err(|e| match e {
                CreateError::NoHeadroom { .. } | CreateError::Ports(_) => {
                    Status::resource_exhausted(e.to_string())
                }
                CreateError::Invalid(_) => Status::internal(e.to_string()),
                _ => Status::unavailable(e.to_string()),
            })?;
        tracing::info!(call_id = %req.call_id, from_tag = %req.from_tag, %local, %destination, core, "one-way job created");
        Ok(v1::CreateJobResponse {
            local: Some(v1::MediaAddress {
                ip: local.ip().to_string(),
                port: u32::from(local.port()),
            }),
            core: core as u32,
        })
    }

    fn selector(job: &v1::JobRef) -> JobSelector {
        if job.any_tag {
            JobSelector::Call(job.call_id.clone())
        } else {
            JobSelector::One((job.call_id.clone(), job.from_tag.clone()))
        }
    }

    /// DeleteJob.
    pub async fn delete(&self, engine: &Engine, job: &v1::JobRef) -> Vec<v1::JobStats> {
        let deleted = engine.delete_jobs(Self::selector(job)).await;
        deleted.iter().map(wire::stats).collect()
    }

    /// GetJob (a selector) or ListJobs (`None`).
    pub async fn get(&self, engine: &Engine, job: Option<&v1::JobRef>) -> Vec<v1::JobStats> {
        let found = engine
            .query_jobs(job.map_or(JobSelector::All, Self::selector))
            .await;
        found.iter().map(wire::stats).collect()
    }
}

/// The direction a job's cost is reserved for when its pairs differ (the input payload type
/// picks one per packet, and the relay may switch): the Opus encoder's over the decoder's over a
/// G.711 recode, the usual order of their cost.
fn kind(pairs: &[OneWayPair]) -> JobKind {
    let of = |p: &OneWayPair| match (p.input, p.output) {
        (OneWayCodec::G711(_), OneWayCodec::Opus) => JobKind::ToOpus,
        (OneWayCodec::Opus, _) => JobKind::ToG711,
        (OneWayCodec::G711(_), OneWayCodec::G711(_)) => JobKind::Recode,
    };
    let rank = |k: &JobKind| match k {
        JobKind::Recode => 0,
        JobKind::ToG711 => 1,
        JobKind::ToOpus => 2,
    };
    pairs
        .iter()
        .map(of)
        .max_by_key(rank)
        .unwrap_or(JobKind::ToOpus)
}
