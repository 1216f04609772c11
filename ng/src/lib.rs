//! rtpengine's ng control protocol, as relays (rtpengine's `transform` client), Kamailio, OpenSIPS
//! and jambonz speak it.
//!
//! A message is one UDP datagram, `cookie SP body`; the body is a bencode dictionary (`d...e`) or a
//! JSON object (`{...}`), and the reply echoes the cookie in the request's encoding. This crate is
//! the protocol only, no sockets:
//!
//! - [`Message::parse`] / [`frame()`]: framing; [`codec`]: bencode via `serde_bencode` (keys in any
//!   order, nesting depth bounded before parsing) and JSON via `serde_json`.
//! - [`Dict`]: lenient lookup (`call-id` = `call id` = `call_id`; integers also as strings).
//! - [`Command`], [`CallRef`]: the command and the call keys; [`TransformRequest`] /
//!   [`TransformReply`]: the typed `transform` exchange.
//! - [`SdpRequest`]: the typed `offer`/`answer` (codec operations from the `codec` dictionary
//!   and the flat `codec-*` flags), read with [`bridgepool_sdp`].
//! - [`reply`]: rtpengine-form replies (`result: error`, `error-reason`), bounded to one datagram.
//! - [`CookieCache`]: cookie -> reply for 30-60 s, in-flight requests included.
//! - [`client`]: the requester's side (build requests, check replies).
//!
//! A server's run loop: parse the datagram (answer a decode failure with [`reply::error`] when a
//! cookie was found, else drop and count it); [`CookieCache::lookup`]; on `New` handle the command,
//! [`reply::frame_reply`], [`CookieCache::complete`] and send to the sender and any queued duplicates.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cache;
pub mod client;
pub mod codec;
pub mod command;
pub mod error;
pub mod frame;
pub mod offer;
pub mod reply;
pub mod transform;
pub mod value;

pub use cache::{CookieCache, Lookup};
pub use codec::Encoding;
pub use command::{CallRef, Command};
pub use error::DecodeError;
pub use frame::{Message, frame};
pub use offer::SdpRequest;
pub use transform::{
    CodecPair, CodecSpec, JitterBufferMode, JitterBufferOption, MediaAddress, TransformError,
    TransformMedia, TransformReply, TransformRequest,
};
pub use value::{Dict, Value};
