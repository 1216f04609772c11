//! rtpengine's ng control protocol: a UDP datagram holding a cookie, one space and a bencoded
//! dictionary; the reply echoes the cookie. This module builds the three commands the loadgen uses
//! (offer, answer, delete) and reads replies; [`crate::targets::rtpengine`] does the IO.

use crate::bencode::{self, Value};

/// Why an ng reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NgError {
    /// The datagram has no space after the cookie.
    #[error("ng reply has no cookie separator")]
    NoCookie,
    /// The reply answers another request.
    #[error("ng reply cookie {got:?} does not match {expected:?}")]
    CookieMismatch {
        /// Cookie sent.
        expected: String,
        /// Cookie received.
        got: String,
    },
    /// The body is not bencode.
    #[error("ng reply body: {0}")]
    Bencode(#[from] bencode::BencodeError),
    /// The body has no `result`.
    #[error("ng reply has no result")]
    NoResult,
    /// rtpengine answered `result: error`.
    #[error("rtpengine refused: {reason}")]
    Refused {
        /// Its `error-reason`.
        reason: String,
    },
    /// An ok reply without the `sdp` the command needs.
    #[error("ng reply has no sdp (keys: {keys})")]
    NoSdp {
        /// The keys the reply had.
        keys: String,
    },
}

/// Frames `body` as a request datagram under `cookie`.
pub fn frame(cookie: &str, body: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 256);
    out.extend_from_slice(cookie.as_bytes());
    out.push(b' ');
    body.encode_into(&mut out);
    out
}

/// Splits a reply datagram, checks the cookie and the result; returns the dictionary.
pub fn parse_reply(datagram: &[u8], cookie: &str) -> Result<Value, NgError> {
    let space = datagram
        .iter()
        .position(|&b| b == b' ')
        .ok_or(NgError::NoCookie)?;
    let got = String::from_utf8_lossy(&datagram[..space]);
    if got != cookie {
        return Err(NgError::CookieMismatch {
            expected: cookie.to_owned(),
            got: got.into_owned(),
        });
    }
    let body = bencode::decode(&datagram[space + 1..])?;
    match body.get("result").and_then(Value::as_str) {
        // `pong` answers `ping`.
        Some("ok" | "pong") => Ok(body),
        Some(_) => {
            let reason = body
                .get("error-reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            Err(NgError::Refused {
                reason: reason.to_owned(),
            })
        }
        None => Err(NgError::NoResult),
    }
}

/// The `sdp` of an ok reply.
pub fn reply_sdp(reply: &Value) -> Result<&str, NgError> {
    reply
        .get("sdp")
        .and_then(Value::as_str)
        .ok_or_else(|| NgError::NoSdp {
            keys: match reply {
                Value::Dict(map) => map
                    .keys()
                    .map(|k| String::from_utf8_lossy(k))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => String::new(),
            },
        })
}

/// `offer` from leg A. With `transcode`, rtpengine offers B those codecs instead of A's (`mask`
/// hides A's own from B), as in a PCMU gateway calling an Opus client.
pub fn offer(
    call_id: &str,
    from_tag: &str,
    sdp: &str,
    transcode: Option<(&[&str], &[&str])>,
) -> Value {
    let mut pairs = vec![
        ("command", Value::str("offer")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(from_tag)),
        ("ICE", Value::str("remove")),
        (
            "replace",
            Value::str_list(&["origin", "session-connection"]),
        ),
        ("sdp", Value::str(sdp)),
    ];
    if let Some((transcode, mask)) = transcode {
        let codec = Value::dict([
            ("transcode", Value::str_list(transcode)),
            ("mask", Value::str_list(mask)),
        ]);
        pairs.push(("codec", codec));
    }
    Value::dict(pairs)
}

/// `answer` from leg B.
pub fn answer(call_id: &str, from_tag: &str, to_tag: &str, sdp: &str) -> Value {
    Value::dict([
        ("command", Value::str("answer")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(from_tag)),
        ("to-tag", Value::str(to_tag)),
        ("ICE", Value::str("remove")),
        (
            "replace",
            Value::str_list(&["origin", "session-connection"]),
        ),
        ("sdp", Value::str(sdp)),
    ])
}

/// `delete` of the whole call.
pub fn delete(call_id: &str, from_tag: &str) -> Value {
    Value::dict([
        ("command", Value::str("delete")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(from_tag)),
    ])
}

/// `ping`, to check the control socket.
pub fn ping() -> Value {
    Value::dict([("command", Value::str("ping"))])
}
