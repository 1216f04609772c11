//! The `command` key, and the lenient keys most commands share.

use crate::value::Dict;

/// An ng command, as named in the `command` key (case and `-`/`_`/space spellings ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `ping`: answered `pong`.
    Ping,
    /// `transform`: a relay hands one direction of a call to this pool.
    Transform,
    /// `delete`: tear a call (or transform session) down.
    Delete,
    /// `query`: state and counters of one call.
    Query,
    /// `list`: call ids.
    List,
    /// `statistics`: pool-wide counters.
    Statistics,
    /// `offer`.
    Offer,
    /// `answer`.
    Answer,
    /// Anything else, kept for logs.
    Other(String),
}

impl Command {
    /// Reads the `command` key; `None` when it is missing or not text.
    pub fn from_body(body: &Dict) -> Option<Self> {
        let raw = body.str("command")?;
        let norm: String = raw
            .chars()
            .map(|c| match c {
                '-' | '_' => ' ',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        Some(match norm.as_str() {
            "ping" => Self::Ping,
            "transform" => Self::Transform,
            "delete" => Self::Delete,
            "query" => Self::Query,
            "list" => Self::List,
            "statistics" => Self::Statistics,
            "offer" => Self::Offer,
            "answer" => Self::Answer,
            _ => Self::Other(raw.to_owned()),
        })
    }

    /// The wire name (the text received for [`Self::Other`]).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ping => "ping",
            Self::Transform => "transform",
            Self::Delete => "delete",
            Self::Query => "query",
            Self::List => "list",
            Self::Statistics => "statistics",
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Other(s) => s,
        }
    }
}

/// The call a `delete` or `query` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRef {
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`, if given.
    pub from_tag: Option<String>,
    /// `to-tag`, if given.
    pub to_tag: Option<String>,
    /// `delete delay` in seconds, if given (an integer or a decimal string).
    pub delete_delay: Option<i64>,
    /// `flags` tokens, such as `fatal` or `fast`.
    pub flags: Vec<String>,
}

impl CallRef {
    /// Reads the call keys; `None` without a `call-id`.
    pub fn from_body(body: &Dict) -> Option<Self> {
        let flags = body
            .get("flags")
            .and_then(|f| f.as_list())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            call_id: body.str("call-id")?.to_owned(),
            from_tag: body.str("from-tag").map(str::to_owned),
            to_tag: body.str("to-tag").map(str::to_owned),
            delete_delay: body.int("delete-delay"),
            flags,
        })
    }

    /// Whether `flags` holds `flag` (any spelling).
    pub fn has_flag(&self, flag: &str) -> bool {
        let norm = |s: &str| s.to_ascii_lowercase().replace(['_', ' '], "-");
        self.flags.iter().any(|f| norm(f) == norm(flag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_in_any_spelling() {
        let cmd = |s: &str| Command::from_body(&Dict::new().with("command", s));
        assert_eq!(cmd("PING"), Some(Command::Ping));
        assert_eq!(cmd("Transform"), Some(Command::Transform));
        assert_eq!(
            cmd("start recording"),
            Some(Command::Other("start recording".into()))
        );
        assert_eq!(Command::from_body(&Dict::new()), None);
    }

    #[test]
    fn delete_keys() {
        let body = Dict::new()
            .with("call_id", "c")
            .with("from tag", "f")
            .with("delete-delay", "0")
            .with("flags", crate::Value::str_list(&["fatal"]));
        let r = CallRef::from_body(&body).unwrap();
        assert_eq!(r.call_id, "c");
        assert_eq!(r.from_tag.as_deref(), Some("f"));
        assert_eq!(r.delete_delay, Some(0));
        assert!(r.has_flag("FATAL"));
    }
}
