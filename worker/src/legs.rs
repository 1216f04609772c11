//! What a create or an update says about the legs' codecs, under the rules of the session's
//! mode. Transcoding needs both legs' codecs and rejects a bad one with the reason. Passthrough
//! uses none: it keeps those that make a valid transcoding leg (for a later switch to
//! transcoding) and ignores the rest, since the peers may have chosen any codec they share.

use bridgepool_proto::v1;
use tonic::Status;

use crate::convert;
use crate::session::{Mode, SessionConfig};

/// Whether each leg's codec was ever given (the session's configuration holds defaults until
/// then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// Leg A's law and payload types.
    pub a: bool,
    /// Leg B's Opus payload type and settings.
    pub b: bool,
}

/// How a request's legs are read.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// A bad leg is an error (transcoding), not ignored (passthrough).
    strict: bool,
    /// A leg given without its codec (`law` or `payload_type` 0) is read as a codec anyway (a
    /// create, where the codec is the leg's point) rather than as a change of remote only.
    always: bool,
}

impl Rules {
    /// The rules of a create in `mode`.
    pub fn create(mode: Mode) -> Self {
        Self {
            strict: mode == Mode::Transcode,
            always: mode == Mode::Transcode,
        }
    }

    /// The rules of an update to `mode`.
    pub fn update(mode: Mode) -> Self {
        Self {
            strict: mode == Mode::Transcode,
            always: false,
        }
    }
}

/// Applies the legs of a create to `config` (defaults until given); which codecs are known.
pub fn apply(
    config: &mut SessionConfig,
    a: Option<&v1::G711Leg>,
    b: Option<&v1::OpusLeg>,
    rules: Rules,
) -> Result<Known, Status> {
    read(config, a, b, rules, Known::default())
}

/// Applies the legs of an update to `config` (the session's, with the mode to be), given what
/// was `known` before; which codecs are known after it.
pub fn update(
    config: &mut SessionConfig,
    a: Option<&v1::G711Leg>,
    b: Option<&v1::OpusLeg>,
    mode: Mode,
    known: Known,
) -> Result<Known, Status> {
    read(config, a, b, Rules::update(mode), known)
}

fn read(
    config: &mut SessionConfig,
    a: Option<&v1::G711Leg>,
    b: Option<&v1::OpusLeg>,
    rules: Rules,
    known: Known,
) -> Result<Known, Status> {
    let invalid = |e: String| Status::invalid_argument(e);
    let before = (config.leg_a.clone(), config.leg_b.clone());
    let mut after = known;
    if let Some(a) = a.filter(|a| rules.always || a.law != 0) {
        match convert::g711_leg(a) {
            Ok(leg) => {
                config.leg_a = leg;
                after.a = true;
            }
            Err(e) if rules.strict => return Err(invalid(e)),
            Err(_) => {}
        }
    }
    if let Some(b) = b.filter(|b| rules.always || b.payload_type != 0) {
        match convert::opus_leg(b) {
            Ok(leg) => {
                config.leg_b = leg;
                after.b = true;
            }
            Err(e) if rules.strict => return Err(invalid(e)),
            Err(_) => {}
        }
    }
    if let Err(e) = config.validate() {
        if rules.strict {
            return Err(invalid(e.to_string()));
        }
        // Together they make no transcoding session (a payload type clash): relaying does not
        // care, a later switch will need valid ones.
        (config.leg_a, config.leg_b) = before;
        return Ok(known);
    }
    if rules.strict && !(after.a && after.b) {
        let missing = match (after.a, after.b) {
            (false, false) => "leg_a.law and leg_b.payload_type",
            (false, true) => "leg_a.law",
            _ => "leg_b.payload_type",
        };
        return Err(invalid(format!(
            "transcoding needs both legs' codecs: {missing} never given"
        )));
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::StreamSeed;

    fn config() -> SessionConfig {
        let seed = StreamSeed {
            ssrc: 1,
            sequence: 1,
            timestamp: 1,
        };
        SessionConfig::new(bridgepool_codecs::g711::Law::Ulaw, seed, seed)
    }

    fn pcma() -> v1::G711Leg {
        v1::G711Leg {
            law: v1::G711Law::Pcma as i32,
            payload_type: 8,
            ..Default::default()
        }
    }

    #[test]
    fn passthrough_keeps_valid_codecs_and_ignores_others() {
        let mut c = config();
        let bad_b = v1::OpusLeg {
            payload_type: 200,
            ..Default::default()
        };
        let known = apply(
            &mut c,
            Some(&pcma()),
            Some(&bad_b),
            Rules::create(Mode::Passthrough),
        )
        .unwrap();
        assert_eq!(known, Known { a: true, b: false });
        assert_eq!(c.leg_a.payload_type, 8);
        assert_eq!(c.leg_b.payload_type, 111, "the default stays");
    }

    #[test]
    fn transcoding_needs_both_codecs_some_time() {
        let mut c = config();
        let e = update(
            &mut c,
            Some(&pcma()),
            None,
            Mode::Transcode,
            Known::default(),
        )
        .unwrap_err();
        assert!(
            e.message().contains("leg_b.payload_type never given"),
            "{e:?}"
        );
        let b = v1::OpusLeg {
            payload_type: 96,
            ..Default::default()
        };
        let known = update(
            &mut c,
            None,
            Some(&b),
            Mode::Transcode,
            Known { a: true, b: false },
        )
        .unwrap();
        assert_eq!(known, Known { a: true, b: true });
        let bad = v1::G711Leg {
            law: v1::G711Law::Pcmu as i32,
            payload_type: 80,
            ..Default::default()
        };
        assert!(update(&mut c, Some(&bad), None, Mode::Transcode, known).is_err());
        assert_eq!(
            update(&mut c, Some(&bad), None, Mode::Passthrough, known).unwrap(),
            known
        );
    }
}
