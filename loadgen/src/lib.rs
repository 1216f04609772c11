//! bridgepool-loadgen: density testing, acting as the relay tier.
//!
//! It sets calls up through a [`targets::Target`] (bridgepool's Scheduler over gRPC, or rtpengine
//! over its ng protocol), plays the project's speech sample as paced RTP on both legs of every
//! call from its own UDP sockets on loopback, and measures what comes back: loss, duplicates,
//! reordering, RFC 3550 jitter, added latency, RTP rule violations, audio quality of sampled calls
//! and an E-model MOS; CPU of the measured processes from /proc. Modes: fixed, ramp to the
//! density limit, churn, and a passthrough share (mix).
//!
//! The run loop, for a library caller (the `demo` embeds a pool and calls this):
//!
//! ```no_run
//! # async fn demo(target: &dyn bridgepool_loadgen::targets::Target) -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! use bridgepool_loadgen::{config::{LoadConfig, Mode}, media::EncodedMedia, run_load};
//! let media = Arc::new(EncodedMedia::synthetic(10)?);
//! let config = LoadConfig::new(Mode::Fixed { calls: 10, duration: Duration::from_secs(5) });
//! let report = run_load(target, media, &config, &indicatif::ProgressBar::hidden()).await?;
//! println!("{}", bridgepool_loadgen::report::table::render(&report));
//! # Ok(()) }
//! ```
//!
//! Pieces: [`media`] (pre-encoded payloads), [`pacer`] (the sender thread), [`receiver`] and
//! [`stats`] (measurement), [`quality`] and [`mos`], [`cpu`], [`run`] (modes and the timeline),
//! [`report`] (table, JSON, HTML), [`targets`], [`pool`] (the demo's embedded pool), [`cli`]; SDP is `bridgepool-sdp` and the ng protocol is the
//! workspace's one codec, `bridgepool-ng`, shared with the scheduler's ng server.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod cpu;
pub mod impair;
pub mod media;
pub mod modes;
pub mod mos;
pub mod pacer;
pub mod pesq_score;
pub mod pool;
pub mod quality;
pub mod receiver;
pub mod report;
pub mod run;
pub mod stats;
pub mod targets;

pub use run::run_load;
