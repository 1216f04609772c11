//! The client side, for the loadgen's rtpengine target and for tests that play the relay: build a
//! request datagram, check and decode its reply.

use crate::codec::{self, Encoding};
use crate::error::DecodeError;
use crate::frame::{self, split_cookie};
use crate::value::{Dict, Value};

/// Why a reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The datagram is not `cookie SP dict`.
    #[error("ng reply: {0}")]
    Decode(#[from] DecodeError),
    /// The reply answers another request.
    #[error("ng reply cookie {got:?} does not match {expected:?}")]
    CookieMismatch {
        /// Cookie sent.
        expected: String,
        /// Cookie received.
        got: String,
    },
    /// The body has no `result`.
    #[error("ng reply has no result")]
    NoResult,
    /// `result: error` (or `load limit`).
    #[error("refused: {reason}")]
    Refused {
        /// Its `error-reason` (or `message`).
        reason: String,
    },
    /// An ok reply without the `sdp` the command needs.
    #[error("ng reply has no sdp")]
    NoSdp,
}

/// Frames a bencode request under `cookie`.
pub fn frame(cookie: &str, body: &Dict) -> Vec<u8> {
    frame::frame(cookie.as_bytes(), body, Encoding::Bencode)
}

/// Splits a reply datagram, checks the cookie and that `result` is `ok` or `pong`; returns the body.
pub fn parse_reply(datagram: &[u8], cookie: &str) -> Result<Dict, ReplyError> {
    let (got, body) = split_cookie(datagram)?;
    if got != cookie.as_bytes() {
        return Err(ReplyError::CookieMismatch {
            expected: cookie.to_owned(),
            got: String::from_utf8_lossy(got).into_owned(),
        });
    }
    let body = match codec::decode(body)? {
        (_, Value::Dict(d)) => d,
        _ => return Err(DecodeError::NotADict.into()),
    };
    match body.str("result") {
        Some("ok" | "pong") => Ok(body),
        Some(_) => {
            let reason = body
                .str("error-reason")
                .or_else(|| body.str("message"))
                .unwrap_or("unknown");
            Err(ReplyError::Refused {
                reason: reason.to_owned(),
            })
        }
        None => Err(ReplyError::NoResult),
    }
}

/// The `sdp` of an ok offer/answer reply.
pub fn reply_sdp(reply: &Dict) -> Result<&str, ReplyError> {
    reply.str("sdp").ok_or(ReplyError::NoSdp)
}

/// `offer` from leg A; with `transcode = (add, mask)` the callee is offered `add` instead of `mask`.
pub fn offer(
    call_id: &str,
    from_tag: &str,
    sdp: &str,
    transcode: Option<(&[&str], &[&str])>,
) -> Dict {
    let mut d = Dict::new()
        .with("command", "offer")
        .with("call-id", call_id)
        .with("from-tag", from_tag)
        .with("ICE", "remove")
        .with(
            "replace",
            Value::str_list(&["origin", "session-connection"]),
        )
        .with("sdp", sdp);
    if let Some((add, mask)) = transcode {
        d.push(
            "codec",
            Dict::new()
                .with("transcode", Value::str_list(add))
                .with("mask", Value::str_list(mask)),
        );
    }
    d
}

/// `answer` from leg B.
pub fn answer(call_id: &str, from_tag: &str, to_tag: &str, sdp: &str) -> Dict {
    Dict::new()
        .with("command", "answer")
        .with("call-id", call_id)
        .with("from-tag", from_tag)
        .with("to-tag", to_tag)
        .with("ICE", "remove")
        .with(
            "replace",
            Value::str_list(&["origin", "session-connection"]),
        )
        .with("sdp", sdp)
}

/// `delete` as the relay sends it for a transform session (`delete delay` 0).
pub fn delete(call_id: &str, from_tag: &str) -> Dict {
    Dict::new()
        .with("command", "delete")
        .with("call-id", call_id)
        .with("from-tag", from_tag)
        .with("delete delay", 0i64)
}

/// `ping`.
pub fn ping() -> Dict {
    Dict::new().with("command", "ping")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_checks() {
        assert!(parse_reply(b"a d6:result4:ponge", "a").is_ok());
        assert!(matches!(
            parse_reply(b"b d6:result4:ponge", "a"),
            Err(ReplyError::CookieMismatch { .. })
        ));
        assert_eq!(
            parse_reply(b"a d6:result5:error12:error-reason3:bade", "a"),
            Err(ReplyError::Refused {
                reason: "bad".into()
            })
        );
        assert_eq!(parse_reply(b"a de", "a"), Err(ReplyError::NoResult));
    }
}
