//! Why a session description could not be used. The messages go out as ng `error-reason`s.

/// A session description the front door cannot use: peer input, answered with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The text is not SDP (the parser's reason is kept for logs).
    #[error("Failed to parse SDP: {0}")]
    Parse(String),
    /// No `m=audio` line.
    #[error("Incomplete SDP specification: no audio stream")]
    NoAudio,
    /// No `c=` line for the audio stream, or an address that is not IPv4/IPv6.
    #[error("Incomplete SDP specification: no connection address")]
    NoConnection,
    /// A payload type or rtpmap that does not parse.
    #[error("Failed to parse SDP: bad payload format {0:?}")]
    BadFormat(String),
    /// SRTP (SDES), DTLS or ICE: the edge relay terminates those.
    #[error("Unsupported transport: {0} (plain RTP/AVP only; terminate it at the edge relay)")]
    Unsupported(&'static str),
    /// The answer chose nothing the offerer can receive, directly or through transcoding.
    #[error("No codec in common between offer and answer")]
    NoCommonCodec,
}
