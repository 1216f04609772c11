//! UDP framing: `cookie SP body`. A reply echoes the request's cookie.

use crate::codec::{self, Encoding};
use crate::error::DecodeError;
use crate::value::{Dict, Value};

/// Largest datagram the server reads and the largest reply it sends. rtpengine's relay reads at most
/// 4096 bytes of a `transform`/`delete` reply; Kamailio reads up to 256 KiB.
pub const MAX_DATAGRAM: usize = 65_507;

/// The bytes before the first space: any run of bytes without a space.
pub fn split_cookie(datagram: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    match datagram.iter().position(|&b| b == b' ') {
        Some(0) | None => Err(DecodeError::NoCookie),
        Some(space) => Ok((&datagram[..space], &datagram[space + 1..])),
    }
}

/// One decoded ng message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The cookie, echoed in the reply and the key of the reply cache.
    pub cookie: Vec<u8>,
    /// The body's encoding; the reply uses the same.
    pub encoding: Encoding,
    /// The body, a dictionary.
    pub body: Dict,
}

impl Message {
    /// Parses a datagram.
    pub fn parse(datagram: &[u8]) -> Result<Self, DecodeError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(DecodeError::TooLarge {
                len: datagram.len(),
                max: MAX_DATAGRAM,
            });
        }
        let (cookie, body) = split_cookie(datagram)?;
        let (encoding, value) = codec::decode(body)?;
        match value {
            Value::Dict(body) => Ok(Self {
                cookie: cookie.to_vec(),
                encoding,
                body,
            }),
            _ => Err(DecodeError::NotADict),
        }
    }
}

/// Frames `body` under `cookie`: `cookie SP encoded-body`.
pub fn frame(cookie: &[u8], body: &Dict, encoding: Encoding) -> Vec<u8> {
    let encoded = codec::encode(&Value::Dict(body.clone()), encoding);
    let mut out = Vec::with_capacity(cookie.len() + 1 + encoded.len());
    out.extend_from_slice(cookie);
    out.push(b' ');
    out.extend_from_slice(&encoded);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_round_trip() {
        let m = Message::parse(b"0_13491_0 d7:command4:pinge").unwrap();
        assert_eq!(m.cookie, b"0_13491_0");
        assert_eq!(m.body.str("command"), Some("ping"));
        let reply = frame(&m.cookie, &Dict::new().with("result", "pong"), m.encoding);
        assert_eq!(reply, b"0_13491_0 d6:result4:ponge");
    }

    #[test]
    fn no_cookie() {
        assert_eq!(
            Message::parse(b"d7:command4:pinge"),
            Err(DecodeError::NoCookie)
        );
        assert_eq!(
            Message::parse(b" d7:command4:pinge"),
            Err(DecodeError::NoCookie)
        );
        assert_eq!(Message::parse(b"c li1ee"), Err(DecodeError::NotADict));
    }
}
