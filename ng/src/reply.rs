//! Reply bodies in rtpengine's form.

use crate::codec::{self, Encoding};
use crate::frame::{self, MAX_DATAGRAM};
use crate::value::Dict;

/// `{result: pong}`, the answer to `ping`.
pub fn pong() -> Dict {
    Dict::new().with("result", "pong")
}

/// `{result: ok}`.
pub fn ok() -> Dict {
    Dict::new().with("result", "ok")
}

/// `{result: ok, warning}`: rtpengine's answer to a `delete` of an unknown call.
pub fn ok_with_warning(warning: &str) -> Dict {
    ok().with("warning", warning)
}

/// `{result: error, error-reason}` and nothing else, as rtpengine writes errors.
pub fn error(reason: &str) -> Dict {
    Dict::new()
        .with("result", "error")
        .with("error-reason", reason)
}

/// `{result: "load limit", message}`: Kamailio then asks the next node of the set. Only for a
/// request whose `supports` holds `load limit`; others get [`error`] with the same text.
pub fn load_limit(message: &str) -> Dict {
    Dict::new()
        .with("result", "load limit")
        .with("message", message)
}

/// Frames a reply, falling back to an error when it would not fit in one datagram (the ng doc warns
/// that big `list` or `delete` replies can exceed it).
pub fn frame_reply(cookie: &[u8], body: &Dict, encoding: Encoding, max: usize) -> Vec<u8> {
    let out = frame::frame(cookie, body, encoding);
    if out.len() <= max.min(MAX_DATAGRAM) {
        return out;
    }
    let mut small = cookie.to_vec();
    small.push(b' ');
    small.extend(codec::encode(&error("Reply too large").into(), encoding));
    small
}

/// The common error reasons, spelled as rtpengine spells them.
pub mod reasons {
    /// `command` names nothing this server does.
    pub const UNRECOGNIZED_COMMAND: &str = "Unrecognized command";
    /// No `call-id`.
    pub const NO_CALL_ID: &str = "No call-id in message";
    /// `query` of an unknown call.
    pub const UNKNOWN_CALL_ID: &str = "Unknown call-id";
    /// `delete` of an unknown call (a warning on an ok reply, an error with `fatal`).
    pub const CALL_NOT_FOUND: &str = "Call-ID not found or tags didn't match";
    /// The request carries our own `instance`.
    pub const LOOP: &str = "Transform loop detected";
    /// No capacity; one of the strings OpenSIPS and Kamailio fail over on.
    pub const SESSION_LIMIT: &str = "Parallel session limit reached";
    /// The body could not be decoded.
    pub const MALFORMED: &str = "Failed to decode message";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_form() {
        let out = frame::frame(b"c", &error("Unrecognized command"), Encoding::Bencode);
        assert_eq!(
            out,
            b"c d12:error-reason20:Unrecognized command6:result5:errore".to_vec()
        );
    }

    #[test]
    fn oversized_reply_becomes_error() {
        let big = ok().with("pad", "x".repeat(5000));
        let out = frame_reply(b"c", &big, Encoding::Bencode, 4096);
        assert!(out.len() < 100);
        assert!(out.windows(15).any(|w| w == b"Reply too large"));
    }
}
