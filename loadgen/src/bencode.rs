//! Bencode (BitTorrent encoding), as rtpengine's ng control protocol uses it.
//!
//! Four kinds of value: integers `i42e`, byte strings `4:spam`, lists `l...e` and dictionaries
//! `d...e` whose keys are byte strings in sorted order. [`Value::encode`] always writes sorted keys;
//! [`decode`] accepts any key order (rtpengine's replies are sorted, other peers' may not be) but
//! rejects trailing bytes, leading zeros and nesting deeper than [`MAX_DEPTH`].

use std::collections::BTreeMap;

/// Deepest nesting [`decode`] accepts; deeper input is refused instead of recursing further.
pub const MAX_DEPTH: usize = 64;

/// A bencoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `i<digits>e`.
    Int(i64),
    /// `<len>:<bytes>`.
    Bytes(Vec<u8>),
    /// `l<values>e`.
    List(Vec<Self>),
    /// `d<key value pairs>e`, keys sorted.
    Dict(BTreeMap<Vec<u8>, Self>),
}

/// Why bytes are not a bencoded value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BencodeError {
    /// The input ended inside a value.
    #[error("bencode: input ends at byte {at} inside a value")]
    UnexpectedEnd {
        /// Offset where more input was needed.
        at: usize,
    },
    /// A byte that cannot start or continue a value here.
    #[error("bencode: unexpected byte {byte:#04x} at {at}")]
    UnexpectedByte {
        /// Offset of the byte.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// An integer or length that is empty, has leading zeros, is `-0` or overflows.
    #[error("bencode: invalid number at {at}")]
    InvalidNumber {
        /// Offset where the number starts.
        at: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("bencode: dictionary key at {at} is not a byte string")]
    KeyNotBytes {
        /// Offset of the key.
        at: usize,
    },
    /// Bytes left after the top-level value.
    #[error("bencode: {extra} trailing bytes after the value")]
    TrailingData {
        /// How many bytes are left.
        extra: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("bencode: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
}

impl Value {
    /// A byte string from text.
    pub fn str(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }

    /// A list of byte strings from text.
    pub fn str_list(items: &[&str]) -> Self {
        Self::List(items.iter().map(|s| Self::str(s)).collect())
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Self)>) -> Self {
        Self::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// The value under `key` when this is a dictionary.
    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Dict(map) => map.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The bytes when this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The text when this is a UTF-8 byte string.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer when this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Appends the encoding of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Self::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Self::Bytes(b) => encode_bytes(b, out),
            Self::List(items) => {
                out.push(b'l');
                items.iter().for_each(|v| v.encode_into(out));
                out.push(b'e');
            }
            Self::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Decodes exactly one value spanning all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, BencodeError> {
    let mut parser = Parser { input, pos: 0 };
    let value = parser.value(0)?;
    match input.len() - parser.pos {
        0 => Ok(value),
        extra => Err(BencodeError::TrailingData { extra }),
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BencodeError::UnexpectedEnd { at: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        if depth > MAX_DEPTH {
            return Err(BencodeError::TooDeep);
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let at = self.pos;
                let digits = self.until(b'e')?;
                parse_int(digits)
                    .map(Value::Int)
                    .ok_or(BencodeError::InvalidNumber { at })
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                while self.peek()? != b'e' {
                    let at = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(BencodeError::KeyNotBytes { at });
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    map.insert(key, value);
                }
                self.pos += 1;
                Ok(Value::Dict(map))
            }
            byte => Err(BencodeError::UnexpectedByte { at: self.pos, byte }),
        }
    }

    /// Reads up to (not including) `end` and skips `end`.
    fn until(&mut self, end: u8) -> Result<&[u8], BencodeError> {
        let start = self.pos;
        let len = self.input[start..].iter().position(|&b| b == end).ok_or(
            BencodeError::UnexpectedEnd {
                at: self.input.len(),
            },
        )?;
        self.pos = start + len + 1;
        Ok(&self.input[start..start + len])
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BencodeError> {
        let at = self.pos;
        let digits = self.until(b':')?;
        let len = parse_int(digits)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(BencodeError::InvalidNumber { at })?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.input.len());
        let end = end.ok_or(BencodeError::UnexpectedEnd {
            at: self.input.len(),
        })?;
        let out = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(out)
    }
}

/// Canonical decimal: no leading zeros, no `-0`, no empty string, no overflow.
fn parse_int(digits: &[u8]) -> Option<i64> {
    let (neg, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    let canonical = match body {
        [] => false,
        [b'0'] => !neg,
        [b'0', ..] => false,
        _ => body.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
