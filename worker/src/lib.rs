//! bridgepool worker: holds transcoding sessions and moves their packets.
//!
//! - [`session`]: one bridged call as a sans-IO state machine (no clock, no socket, no async).
//! - [`engine`]: the driver: one pinned epoll thread per media core owning sessions and sockets.
//! - [`service`], [`server`]: the Worker gRPC service, heartbeats, metrics and drain.
#![deny(missing_docs)]
// The disallowed clock and socket lints guard the session module only; the driver needs both.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod config;
pub mod convert;
pub mod drain;
pub mod engine;
pub mod job;
pub mod legs;
pub mod metrics;
pub mod server;
pub mod service;
pub mod session;
pub mod sessions;

/// A base instant for unit tests of the sans-IO session, which may not read the clock itself.
#[cfg(test)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
