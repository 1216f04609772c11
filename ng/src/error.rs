//! Why an ng datagram could not be read.

/// A datagram or body that is not a well-formed ng message. Peer misbehaviour, never fatal: the
/// server answers it with an rtpengine-form error or drops it, and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No space separates the cookie from the body (or the cookie is empty).
    #[error("no cookie before the body")]
    NoCookie,
    /// The body starts with neither `d` (bencode) nor `{` (JSON).
    #[error("body is neither a bencode nor a JSON dictionary")]
    NotADict,
    /// The bencode body is malformed.
    #[error("bad bencode: {0}")]
    Bencode(String),
    /// The JSON body is malformed.
    #[error("bad JSON: {0}")]
    Json(String),
    /// Lists and dictionaries nested deeper than [`crate::codec::MAX_DEPTH`].
    #[error("nesting deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The datagram is larger than the server reads.
    #[error("datagram of {len} bytes exceeds {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
