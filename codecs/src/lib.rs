//! Pure signal and packet code for bridgepool.
//!
//! Nothing in this crate does IO, reads a clock or is async: every function maps bytes and samples
//! to bytes and samples, so the worker's `Session` can be tested on virtual time.
//!
//! - [`g711`]: ITU-T G.711 mu-law and A-law, table-driven.
//! - [`opus`]: Opus encoder and decoder behind our own types (FEC, PLC, DTX).
//! - [`plc`]: packet loss concealment for G.711 input (Appendix I style pitch repetition).
//! - [`resample`]: sample-rate conversion with rubato, for rates libopus does not take itself.
//! - [`rtp`], [`rtcp`]: zero-copy views over `&[u8]` and builders into a caller's buffer.
//! - [`stretch`]: pitch-period time stretching of 8 kHz speech (jitter buffer delay changes).
//! - [`telephone_event`]: RFC 4733 DTMF events.
//! - [`quality`]: similarity of two recordings after alignment (tests, loadgen).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod g711;
pub mod opus;
pub mod plc;
pub mod quality;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod stretch;
pub mod telephone_event;
