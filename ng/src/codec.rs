//! Bodies to and from bytes: bencode through `serde_bencode`, JSON through `serde_json`.
//!
//! `serde_bencode` reads dictionaries in any key order (rtpengine does not sort keys) but recurses
//! without a limit, so [`decode`] first walks the body iteratively and refuses nesting deeper than
//! [`MAX_DEPTH`] before handing it over: a hostile datagram cannot exhaust the stack.

use std::collections::HashMap;

use crate::error::DecodeError;
use crate::value::{Dict, Value};

/// Deepest list/dictionary nesting accepted. A `transform` request needs 6.
pub const MAX_DEPTH: usize = 32;

/// How a body is encoded; a reply uses the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Bencode (`d...e`), what every relay and proxy sends.
    Bencode,
    /// A JSON object (`{...}`), which rtpengine also accepts.
    Json,
}

/// Decodes a body; its first byte picks the encoding.
pub fn decode(body: &[u8]) -> Result<(Encoding, Value), DecodeError> {
    match body.first() {
        Some(b'd') => {
            check_depth(body)?;
            let raw: serde_bencode::value::Value =
                serde_bencode::from_bytes(body).map_err(|e| DecodeError::Bencode(e.to_string()))?;
            Ok((Encoding::Bencode, from_bencode(raw)))
        }
        Some(b'{') => {
            let raw: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
            Ok((Encoding::Json, from_json(raw)))
        }
        _ => Err(DecodeError::NotADict),
    }
}

/// Encodes a body.
pub fn encode(value: &Value, encoding: Encoding) -> Vec<u8> {
    match encoding {
        // Serialising a plain value tree cannot fail; an empty body would be the sign it did.
        Encoding::Bencode => serde_bencode::to_bytes(&to_bencode(value)).unwrap_or_default(),
        Encoding::Json => serde_json::to_vec(&to_json(value)).unwrap_or_default(),
    }
}

/// Walks bencode tokens without recursion and fails on nesting deeper than [`MAX_DEPTH`]. Other
/// malformations are left to the parser.
fn check_depth(body: &[u8]) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < body.len() {
        match body[i] {
            b'd' | b'l' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::TooDeep { max: MAX_DEPTH });
                }
                i += 1;
            }
            b'e' => {
                depth = depth.saturating_sub(1);
                i += 1;
                if depth == 0 {
                    return Ok(());
                }
            }
            b'i' => match body[i..].iter().position(|&b| b == b'e') {
                Some(end) => i += end + 1,
                None => return Ok(()),
            },
            b'0'..=b'9' => {
                let Some(colon) = body[i..].iter().position(|&b| b == b':') else {
                    return Ok(());
                };
                let len = std::str::from_utf8(&body[i..i + colon])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok());
                match len {
                    Some(len) => i = i.saturating_add(colon + 1).saturating_add(len),
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

fn from_bencode(raw: serde_bencode::value::Value) -> Value {
    use serde_bencode::value::Value as B;
    match raw {
        B::Int(i) => Value::Int(i),
        B::Bytes(b) => Value::Bytes(b),
        B::List(l) => Value::List(l.into_iter().map(from_bencode).collect()),
        B::Dict(map) => {
            let mut d = Dict::new();
            for (k, v) in map {
                d.push_raw(k, from_bencode(v));
            }
            Value::Dict(d)
        }
    }
}

fn to_bencode(value: &Value) -> serde_bencode::value::Value {
    use serde_bencode::value::Value as B;
    match value {
        Value::Int(i) => B::Int(*i),
        Value::Bytes(b) => B::Bytes(b.clone()),
        Value::List(l) => B::List(l.iter().map(to_bencode).collect()),
        Value::Dict(d) => B::Dict(
            d.iter()
                .map(|(k, v)| (k.to_vec(), to_bencode(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn from_json(raw: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match raw {
        J::Null => Value::Bytes(Vec::new()),
        J::Bool(b) => Value::Int(b.into()),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::str(&n.to_string()),
        },
        J::String(s) => Value::Bytes(s.into_bytes()),
        J::Array(a) => Value::List(a.into_iter().map(from_json).collect()),
        J::Object(o) => {
            let mut d = Dict::new();
            for (k, v) in o {
                d.push_raw(k.into_bytes(), from_json(v));
            }
            Value::Dict(d)
        }
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Int(i) => J::from(*i),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(l) => J::Array(l.iter().map(to_json).collect()),
        Value::Dict(d) => J::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsorted_keys_are_read() {
        let (enc, v) = decode(b"d7:command4:ping4:abcdi3ee").unwrap();
        assert_eq!(enc, Encoding::Bencode);
        assert_eq!(v.get("command").and_then(Value::as_str), Some("ping"));
        assert_eq!(v.get("abcd").and_then(Value::as_int), Some(3));
    }

    #[test]
    fn json_is_read_and_written() {
        let (enc, v) = decode(br#"{"command":"ping","ptime":"20","n":5}"#).unwrap();
        assert_eq!(enc, Encoding::Json);
        assert_eq!(v.get("ptime").and_then(Value::as_int), Some(20));
        let out = encode(&Value::Dict(Dict::new().with("result", "pong")), enc);
        assert_eq!(out, br#"{"result":"pong"}"#);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut body = b"d1:a".to_vec();
        body.extend(std::iter::repeat_n(b'l', 100_000));
        assert_eq!(decode(&body), Err(DecodeError::TooDeep { max: MAX_DEPTH }));
    }

    #[test]
    fn garbage_is_an_error() {
        for body in [
            &b""[..],
            b"x",
            b"d",
            b"d3:abc",
            b"di1e",
            b"d99999999999999999999999:e",
            b"{",
        ] {
            assert!(decode(body).is_err(), "{body:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode(&body);
            let mut d = b"d".to_vec();
            d.extend(&body);
            let _ = decode(&d);
        }
    }
}
