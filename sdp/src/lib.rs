//! SDP for the ng front door (offer/answer as an rtpengine set) and the loadgen, on webrtc-rs's
//! `sdp` crate: it parses and writes every line, and keeps attributes it does not know.
//!
//! - [`Description`]: parse and write a whole session description; [`Description::audio`] is the
//!   view of its first audio stream ([`Audio`]: address, port, protocol, [`Codec`]s, ptime,
//!   direction, and whether it asks for ICE, SDES or DTLS).
//! - [`CodecOps`]: rtpengine's codec operations (strip, mask, transcode, offer, except, accept,
//!   consume, set) as the ng `codec` dictionary and the flat `codec-*` flags give them.
//! - [`plan_offer`] / [`plan_answer`]: the pure negotiation rules (what the outgoing offer lists,
//!   what the answer back to the offerer lists, passthrough or transcode).
//! - [`Rewrite`]: writes our address and ports and the planned codecs into a description, keeping
//!   every line it does not touch.
//!
//! Nothing here does IO; bad input is an [`SdpError`], never a panic.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod codec;
pub mod description;
pub mod error;
pub mod negotiate;
pub mod ops;
pub mod rewrite;

pub use codec::{Codec, Family};
pub use description::{Audio, Description, Direction};
pub use error::SdpError;
pub use negotiate::{AnswerPlan, Decision, OfferPlan, plan_answer, plan_offer};
pub use ops::{CodecOps, CodecSpec};
pub use rewrite::Rewrite;
