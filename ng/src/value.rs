//! The dynamic value an ng message carries, the same for bencode and JSON bodies.
//!
//! Dictionaries keep their keys in the order they arrived (rtpengine and Kamailio do not sort them)
//! and are looked up leniently: `call-id`, `call id`, `call_id` and `Call-ID` are the same key.

/// One bencode (or JSON) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer (`i42e`).
    Int(i64),
    /// A byte string (`3:abc`); usually UTF-8 text.
    Bytes(Vec<u8>),
    /// A list (`l...e`).
    List(Vec<Self>),
    /// A dictionary (`d...e`), in arrival order.
    Dict(Dict),
}

/// A dictionary in arrival order, with lenient key lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dict(Vec<(Vec<u8>, Value)>);

impl Dict {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key: value` (the caller keeps keys unique).
    pub fn push(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.0.push((key.as_bytes().to_vec(), value.into()));
        self
    }

    /// Appends `key: value` and returns the dictionary, for building replies in one expression.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.push(key, value);
        self
    }

    /// Appends an entry with raw key bytes.
    pub(crate) fn push_raw(&mut self, key: Vec<u8>, value: Value) {
        self.0.push((key, value));
    }

    /// The value under `key`, matched leniently (case, `-`, `_` and space do not matter).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| same_key(k, key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The text under `key`, if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The integer under `key`, also when it was sent as a decimal string (`"20"`).
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_int)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value)> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// rtpengine accepts `transport-protocol`, `transport protocol` and (via rtpp-flags) `transport_protocol`
/// as one key; it also matches keys case-insensitively in its flag parser.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let norm = |c: u8| match c {
        b'-' | b'_' | b' ' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| norm(x) == norm(y))
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }

    /// A list of strings.
    pub fn str_list(items: &[&str]) -> Self {
        Self::List(items.iter().map(|s| Self::str(s)).collect())
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[Self]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    /// The raw bytes, if this is a string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The text, if this is a UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer; a string of decimal digits counts too (Kamailio sends `ptime` as `"20"`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Bytes(_) => self.as_str()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// Shorthand for `as_dict()?.get(key)`.
    pub fn get(&self, key: &str) -> Option<&Self> {
        self.as_dict()?.get(key)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Bytes(s.into_bytes())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<u16> for Value {
    fn from(i: u16) -> Self {
        Self::Int(i.into())
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Self::Int(i.into())
    }
}

impl From<u8> for Value {
    fn from(i: u8) -> Self {
        Self::Int(i.into())
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Self::Dict(d)
    }
}

impl From<Vec<Self>> for Value {
    fn from(l: Vec<Self>) -> Self {
        Self::List(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_in_any_spelling() {
        let d = Dict::new().with("delete delay", 0i64).with("call-id", "x");
        assert_eq!(d.int("delete-delay"), Some(0));
        assert_eq!(d.int("delete_delay"), Some(0));
        assert_eq!(d.str("Call ID"), Some("x"));
        assert_eq!(d.get("call-idx"), None);
    }

    #[test]
    fn integers_as_strings() {
        assert_eq!(Value::str("20").as_int(), Some(20));
        assert_eq!(Value::str(" 7 ").as_int(), Some(7));
        assert_eq!(Value::str("x").as_int(), None);
        assert_eq!(Value::List(vec![]).as_int(), None);
    }
}
