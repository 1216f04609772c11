//! bridgepool scheduler: what the relay tier calls for each call that may need transcoding.
//!
//! - [`negotiate`]: late negotiation, pure: passthrough when the legs share a codec, a transcode
//!   plan for PCMU/PCMA with Opus, a clear error otherwise.
//! - [`placement`]: power of two choices weighted by headroom, pure, over a registry snapshot.
//! - [`registry`]: workers from their heartbeats, leases, draining and lost states.
//! - [`service`], [`server`]: the Scheduler gRPC service and the process around it.
//! - [`ng`]: rtpengine's ng protocol over UDP (`--ng-listen`): `transform` one-way jobs and friends.
//!
//! Stateless replicas: session ids are `<worker>/<session>`, so any replica answers Release,
//! Query and Update from the registry its heartbeats built; media never passes through here.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod metrics;
pub mod negotiate;
pub mod ng;
pub mod placement;
pub mod registry;
pub mod server;
pub mod service;
