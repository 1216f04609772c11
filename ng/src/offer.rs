//! The typed `offer` / `answer` request, with every key Kamailio's and OpenSIPS's rtpengine
//! modules send (ng doc; Kamailio `rtpp_function_call`). Unknown keys and flags are ignored, as
//! rtpengine ignores them.

use bridgepool_sdp::CodecOps;

use crate::value::{Dict, Value};

/// An `offer` or `answer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdpRequest {
    /// `call-id`.
    pub call_id: String,
    /// `from-tag`: the party that sent the offer (also in an answer).
    pub from_tag: String,
    /// `to-tag`: the answerer; in answers and in-dialogue offers.
    pub to_tag: Option<String>,
    /// `via-branch`.
    pub via_branch: Option<String>,
    /// `sdp`: the whole body.
    pub sdp: String,
    /// `flags` tokens other than codec operations (`single-codec`, `trust-address`...).
    pub flags: Vec<String>,
    /// `replace` tokens (`origin`, `session-connection`...).
    pub replace: Vec<String>,
    /// `ICE` (`remove`, `force`, `default`...).
    pub ice: Option<String>,
    /// `transport-protocol` (`RTP/AVP`...).
    pub transport_protocol: Option<String>,
    /// `ptime`, an integer or a decimal string.
    pub ptime: Option<u32>,
    /// `label`.
    pub label: Option<String>,
    /// `supports` holds `load limit`: refuse with `result: load limit` rather than `error`.
    pub supports_load_limit: bool,
    /// `SDES` tokens (`off`...).
    pub sdes: Vec<String>,
    /// `DTLS` (`off`, `passive`...).
    pub dtls: Option<String>,
    /// `rtcp-mux` tokens (`demux`, `offer`...).
    pub rtcp_mux: Vec<String>,
    /// `direction` interfaces (one pool interface: read, not acted on).
    pub direction: Vec<String>,
    /// `media-address`: the address to write instead of ours (rtpengine's override).
    pub media_address: Option<String>,
    /// The `codec` dictionary and the flat `codec-*` / `transcode-*` flags.
    pub codec: CodecOps,
}

/// The reasons a request is refused, spelled as rtpengine spells them.
pub mod reasons {
    /// No `sdp`.
    pub const NO_SDP: &str = "No SDP body in message";
    /// No `from-tag`.
    pub const NO_FROM_TAG: &str = "No from-tag in message";
    /// No `to-tag` in an answer.
    pub const NO_TO_TAG: &str = "No to-tag in message";
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(v) => v
            .as_str()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

impl SdpRequest {
    /// Reads an offer or answer; `Err` is the error reason (`No call-id in message`...).
    pub fn from_body(body: &Dict) -> Result<Self, &'static str> {
        let call_id = body
            .str("call-id")
            .ok_or(crate::reply::reasons::NO_CALL_ID)?;
        let from_tag = body.str("from-tag").ok_or(reasons::NO_FROM_TAG)?;
        let sdp = body.str("sdp").ok_or(reasons::NO_SDP)?;
        let mut codec = CodecOps::default();
        let mut flags = Vec::new();
        for flag in strings(body.get("flags")) {
            if !codec.push_flag(&flag) {
                flags.push(flag);
            }
        }
        if let Some(dict) = body.get("codec").and_then(Value::as_dict) {
            for (op, specs) in dict.iter() {
                let op = String::from_utf8_lossy(op);
                for spec in strings(Some(specs)) {
                    // An unknown operation is ignored, as rtpengine only warns about it.
                    codec.push(&op, &spec);
                }
            }
        }
        let supports = strings(body.get("supports"));
        Ok(Self {
            call_id: call_id.to_owned(),
            from_tag: from_tag.to_owned(),
            to_tag: body
                .str("to-tag")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            via_branch: body.str("via-branch").map(str::to_owned),
            sdp: sdp.to_owned(),
            flags,
            replace: strings(body.get("replace")),
            ice: body.str("ICE").map(str::to_owned),
            transport_protocol: body.str("transport-protocol").map(str::to_owned),
            ptime: body
                .int("ptime")
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
            label: body.str("label").map(str::to_owned),
            supports_load_limit: supports
                .iter()
                .any(|s| s.eq_ignore_ascii_case("load limit")),
            sdes: strings(body.get("SDES")),
            dtls: body.str("DTLS").map(str::to_owned),
            rtcp_mux: strings(body.get("rtcp-mux")),
            direction: strings(body.get("direction")),
            media_address: body.str("media-address").map(str::to_owned),
            codec,
        })
    }

    /// Whether `flags` holds `flag` (hyphen, underscore and space spellings alike).
    pub fn has_flag(&self, flag: &str) -> bool {
        let norm = |s: &str| s.to_ascii_lowercase().replace(['_', ' '], "-");
        self.flags.iter().any(|f| norm(f) == norm(flag))
    }

    /// Whether `replace` holds `what` (`origin`, `session-connection`...).
    pub fn replaces(&self, what: &str) -> bool {
        let norm = |s: &str| s.to_ascii_lowercase().replace(['_', ' '], "-");
        self.replace.iter().any(|r| norm(r) == norm(what))
    }

    /// `ICE=remove`.
    pub fn removes_ice(&self) -> bool {
        self.ice
            .as_deref()
            .is_some_and(|i| i.eq_ignore_ascii_case("remove"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body Kamailio 5.6.3 sent in the notes' probe, plus the second offer's extra keys.
    fn kamailio_offer() -> Dict {
        Dict::new()
            .with("supports", Value::str_list(&["load limit"]))
            .with("sdp", "v=0\r\n")
            .with("ICE", "remove")
            .with("label", "caller")
            .with(
                "replace",
                Value::str_list(&["origin", "session-connection"]),
            )
            .with(
                "codec",
                Dict::new()
                    .with("mask", Value::str_list(&["all"]))
                    .with("transcode", Value::str_list(&["opus", "PCMU"]))
                    .with("frobnicate", Value::str_list(&["x"])),
            )
            .with("transport-protocol", "RTP/AVP")
            .with("call-id", "1-14037@127.0.0.1")
            .with("received-from", Value::str_list(&["IP4", "127.0.0.1"]))
            .with("from-tag", "14037SIPpTag001")
            .with("ptime", "20")
            .with("direction", Value::str_list(&["pub", "priv"]))
            .with("rtcp-mux", Value::str_list(&["demux"]))
            .with("SDES", Value::str_list(&["off"]))
            .with(
                "flags",
                Value::str_list(&["always-transcode", "codec-strip-PCMA", "single codec"]),
            )
            .with("sip-message-type", "sip_request")
            .with("command", "offer")
    }

    #[test]
    fn kamailio_keys() {
        let r = SdpRequest::from_body(&kamailio_offer()).unwrap();
        assert_eq!(r.call_id, "1-14037@127.0.0.1");
        assert_eq!(r.from_tag, "14037SIPpTag001");
        assert!(r.supports_load_limit && r.removes_ice());
        assert!(r.replaces("origin") && r.replaces("session connection"));
        assert_eq!(r.ptime, Some(20));
        assert_eq!(r.codec.mask.len(), 1);
        assert_eq!(r.codec.transcode.len(), 2);
        assert_eq!(r.codec.strip[0].name, "PCMA");
        assert!(r.has_flag("single-codec") && r.has_flag("always transcode"));
        assert_eq!(r.label.as_deref(), Some("caller"));
        assert_eq!(r.sdes, ["off"]);
        assert_eq!(r.to_tag, None);
    }

    #[test]
    fn missing_keys_have_rtpengine_reasons() {
        let body = Dict::new().with("command", "offer");
        assert_eq!(
            SdpRequest::from_body(&body),
            Err(crate::reply::reasons::NO_CALL_ID)
        );
        let body = body.with("call-id", "c");
        assert_eq!(SdpRequest::from_body(&body), Err(reasons::NO_FROM_TAG));
        let body = body.with("from-tag", "f");
        assert_eq!(SdpRequest::from_body(&body), Err(reasons::NO_SDP));
        let ok = body.with("sdp", "x").with("ptime", 30i64);
        assert_eq!(SdpRequest::from_body(&ok).unwrap().ptime, Some(30));
    }
}
