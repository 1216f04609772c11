//! Late negotiation: from the two legs' offers, passthrough when they share a codec (no worker
//! touched: transcoding is the exception), transcode for the pairs we bridge (PCMU or PCMA with
//! Opus, either leg order, telephone-event mapped per leg), a clear error for anything else.
//! Pure: offers in, a plan out.

use std::collections::HashMap;

use bridgepool_proto::v1;

/// Which side of a call is the G.711 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The request's leg A is G.711, leg B is Opus.
    G711First,
    /// The request's leg A is Opus, leg B is G.711.
    OpusFirst,
}

/// The decision for a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Both legs share this codec (as offered on leg A, leg B's payload type).
    Passthrough {
        /// The shared codec as leg A offered it.
        leg_a: v1::Codec,
        /// The shared codec as leg B offered it.
        leg_b: v1::Codec,
    },
    /// A worker bridges them.
    Transcode(Box<Transcode>),
}

/// What a worker needs to bridge a call, and what each original leg is answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcode {
    /// Which original leg is G.711.
    pub order: Order,
    /// The worker's G.711 leg.
    pub g711: v1::G711Leg,
    /// The worker's Opus leg.
    pub opus: v1::OpusLeg,
    /// The G.711 codec chosen (answer for the G.711 side).
    pub g711_codec: v1::Codec,
    /// The Opus codec chosen.
    pub opus_codec: v1::Codec,
    /// telephone-event/8000 on the G.711 side, when both sides offered events.
    pub g711_events: Option<v1::Codec>,
    /// telephone-event/48000 on the Opus side.
    pub opus_events: Option<v1::Codec>,
}

/// An offer pair we cannot serve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// A leg offered no codec at all.
    #[error("{leg} offers no codec")]
    Empty {
        /// "leg_a" or "leg_b".
        leg: &'static str,
    },
    /// Neither a shared codec nor a pair we bridge.
    #[error(
        "cannot bridge leg_a [{leg_a}] with leg_b [{leg_b}]: supported are PCMU/8000 or PCMA/8000 on one leg with opus/48000/2 on the other"
    )]
    Unsupported {
        /// Leg A's audio codecs.
        leg_a: String,
        /// Leg B's audio codecs.
        leg_b: String,
    },
    /// A malformed codec line.
    #[error("{leg}: {problem}")]
    Invalid {
        /// "leg_a" or "leg_b".
        leg: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn is(c: &v1::Codec, name: &str, rate: u32) -> bool {
    c.name.eq_ignore_ascii_case(name) && c.clock_rate == rate
}

fn is_event(c: &v1::Codec) -> bool {
    c.name.eq_ignore_ascii_case("telephone-event")
}

fn same_codec(a: &v1::Codec, b: &v1::Codec) -> bool {
    let opus = a.name.eq_ignore_ascii_case("opus");
    // Opus is always opus/48000/2 in SDP (RFC 7587); for others the channel count must match.
    a.name.eq_ignore_ascii_case(&b.name)
        && a.clock_rate == b.clock_rate
        && (opus || a.channels.max(1) == b.channels.max(1))
}

fn describe(codecs: &[v1::Codec]) -> String {
    let names: Vec<String> = codecs
        .iter()
        .filter(|c| !is_event(c))
        .map(|c| format!("{}/{}", c.name, c.clock_rate))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn check(codecs: &[v1::Codec], leg: &'static str) -> Result<(), NegotiationError> {
    if codecs.iter().all(is_event) {
        return Err(NegotiationError::Empty { leg });
    }
    for c in codecs {
        if c.payload_type > 127 {
            return Err(NegotiationError::Invalid {
                leg,
                problem: format!("payload type {} of {} is above 127", c.payload_type, c.name),
            });
        }
        if c.clock_rate == 0 {
            return Err(NegotiationError::Invalid {
                leg,
                problem: format!("{} has no clock rate", c.name),
            });
        }
    }
    Ok(())
}

/// Decides a call from its two offers.
pub fn negotiate(leg_a: &v1::LegOffer, leg_b: &v1::LegOffer) -> Result<Plan, NegotiationError> {
    check(&leg_a.codecs, "leg_a")?;
    check(&leg_b.codecs, "leg_b")?;
    // Passthrough: the first of leg A's audio codecs (its preference) that leg B also offers.
    for a in leg_a.codecs.iter().filter(|c| !is_event(c)) {
        if let Some(b) = leg_b.codecs.iter().find(|b| same_codec(a, b)) {
            return Ok(Plan::Passthrough {
                leg_a: a.clone(),
                leg_b: b.clone(),
            });
        }
    }
    let g711 = |codecs: &[v1::Codec]| {
        codecs
            .iter()
            .find(|c| is(c, "PCMU", 8000) || is(c, "PCMA", 8000))
            .cloned()
    };
    let opus = |codecs: &[v1::Codec]| codecs.iter().find(|c| is(c, "opus", 48_000)).cloned();
    let (order, g711_offer, opus_offer) = match (
        g711(&leg_a.codecs),
        opus(&leg_b.codecs),
        opus(&leg_a.codecs),
        g711(&leg_b.codecs),
    ) {
        (Some(g), Some(o), _, _) => (Order::G711First, (g, leg_a), (o, leg_b)),
        (_, _, Some(o), Some(g)) => (Order::OpusFirst, (g, leg_b), (o, leg_a)),
        _ => {
            return Err(NegotiationError::Unsupported {
                leg_a: describe(&leg_a.codecs),
                leg_b: describe(&leg_b.codecs),
            });
        }
    };
    let ((g711_codec, g711_side), (opus_codec, opus_side)) = (g711_offer, opus_offer);
    let events = |codecs: &[v1::Codec], rate: u32| {
        codecs
            .iter()
            .find(|c| is_event(c) && c.clock_rate == rate)
            .cloned()
    };
    let (mut g711_events, mut opus_events) = (
        events(&g711_side.codecs, 8000),
        events(&opus_side.codecs, 48_000),
    );
    if g711_events.is_none() || opus_events.is_none() {
        // Events only make sense when both sides can carry them.
        g711_events = None;
        opus_events = None;
    }
    let fmtp = &opus_codec.fmtp;
    let flag = |key: &str| fmtp_value(fmtp, key).is_some_and(|v| v == 1);
    let max_ptime = fmtp_value(fmtp, "maxptime").unwrap_or(60);
    let opus_ptime = [60, 40, 20, 10]
        .into_iter()
        .find(|p| {
            let wanted = fmtp_value(fmtp, "ptime").unwrap_or(if opus_codec.ptime_ms == 0 {
                20
            } else {
                opus_codec.ptime_ms
            });
            *p <= wanted.min(max_ptime)
        })
        .unwrap_or(10);
    let g711_ptime = match g711_codec.ptime_ms {
        0 => 20,
        p => (p / 5 * 5).clamp(10, 60),
    };
    let law = if is(&g711_codec, "PCMU", 8000) {
        v1::G711Law::Pcmu
    } else {
        v1::G711Law::Pcma
    };
    let params = v1::OpusParams {
        max_average_bitrate: fmtp_value(fmtp, "maxaveragebitrate").unwrap_or(0),
        use_inband_fec: flag("useinbandfec"),
        use_dtx: flag("usedtx"),
        max_playback_rate: fmtp_value(fmtp, "maxplaybackrate").unwrap_or(0),
        stereo: flag("stereo"),
        complexity: 0,
        max_ptime_ms: fmtp_value(fmtp, "maxptime").unwrap_or(0),
        cbr: flag("cbr"),
    };
    let plan = Transcode {
        order,
        g711: v1::G711Leg {
            law: law as i32,
            payload_type: g711_codec.payload_type,
            telephone_event_pt: g711_events.as_ref().map_or(0, |e| e.payload_type),
            ptime_ms: g711_ptime,
            remote: g711_side.remote.clone(),
            direction: g711_side.direction,
        },
        opus: v1::OpusLeg {
            payload_type: opus_codec.payload_type,
            telephone_event_pt: opus_events.as_ref().map_or(0, |e| e.payload_type),
            ptime_ms: opus_ptime,
            remote: opus_side.remote.clone(),
            direction: opus_side.direction,
            opus: Some(params),
        },
        g711_codec: v1::Codec {
            ptime_ms: g711_ptime,
            ..g711_codec
        },
        opus_codec: v1::Codec {
            ptime_ms: opus_ptime,
            ..opus_codec
        },
        g711_events,
        opus_events,
    };
    Ok(Plan::Transcode(Box::new(plan)))
}

fn fmtp_value(fmtp: &HashMap<String, String>, key: &str) -> Option<u32> {
    fmtp.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(name: &str, rate: u32, pt: u32, fmtp: &[(&str, &str)]) -> v1::Codec {
        v1::Codec {
            name: name.into(),
            clock_rate: rate,
            channels: if name == "opus" { 2 } else { 1 },
            payload_type: pt,
            fmtp: fmtp
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ptime_ms: 0,
        }
    }

    fn offer(codecs: Vec<v1::Codec>) -> v1::LegOffer {
        v1::LegOffer {
            codecs,
            remote: Some(v1::MediaAddress {
                ip: "192.0.2.1".into(),
                port: 4000,
            }),
            direction: 0,
        }
    }

    fn pstn() -> v1::LegOffer {
        offer(vec![
            codec("PCMU", 8000, 0, &[]),
            codec("PCMA", 8000, 8, &[]),
            codec("telephone-event", 8000, 101, &[("0-16", "")]),
        ])
    }

    fn webrtc() -> v1::LegOffer {
        offer(vec![
            codec(
                "opus",
                48_000,
                111,
                &[
                    ("useinbandfec", "1"),
                    ("usedtx", "1"),
                    ("maxaveragebitrate", "20000"),
                    ("maxptime", "40"),
                    ("maxplaybackrate", "16000"),
                    ("cbr", "1"),
                    ("stereo", "1"),
                    ("sprop-stereo", "1"),
                ],
            ),
            codec("telephone-event", 48_000, 110, &[]),
        ])
    }

    #[test]
    fn shared_codec_is_passthrough() {
        let plan = negotiate(&pstn(), &offer(vec![codec("pcma", 8000, 8, &[])])).unwrap();
        match plan {
            Plan::Passthrough { leg_a, .. } => assert_eq!(leg_a.name, "PCMA"),
            other => panic!("{other:?}"),
        }
        let both_opus = negotiate(&webrtc(), &webrtc()).unwrap();
        assert!(matches!(both_opus, Plan::Passthrough { .. }));
    }

    #[test]
    fn g711_with_opus_transcodes_and_honours_fmtp() {
        let Plan::Transcode(t) = negotiate(&pstn(), &webrtc()).unwrap() else {
            panic!("expected transcode");
        };
        assert_eq!(t.order, Order::G711First);
        assert_eq!(t.g711.law, v1::G711Law::Pcmu as i32);
        assert_eq!(t.g711.telephone_event_pt, 101);
        assert_eq!(t.opus.telephone_event_pt, 110);
        let p = t.opus.opus.unwrap();
        assert!(p.use_inband_fec && p.use_dtx && p.cbr && p.stereo);
        assert_eq!(p.max_average_bitrate, 20_000);
        assert_eq!(p.max_playback_rate, 16_000);
        assert_eq!(t.opus.ptime_ms, 20);
        assert_eq!(t.opus_events.unwrap().clock_rate, 48_000);
    }

    #[test]
    fn opus_first_order_and_maxptime() {
        let mut w = webrtc();
        w.codecs[0].fmtp.insert("ptime".into(), "60".into());
        let Plan::Transcode(t) = negotiate(&w, &pstn()).unwrap() else {
            panic!("expected transcode");
        };
        assert_eq!(t.order, Order::OpusFirst);
        assert_eq!(t.opus.ptime_ms, 40, "maxptime 40 caps ptime 60");
    }

    #[test]
    fn events_only_when_both_sides_offer_them() {
        let plain = offer(vec![codec("opus", 48_000, 96, &[])]);
        let Plan::Transcode(t) = negotiate(&pstn(), &plain).unwrap() else {
            panic!("expected transcode");
        };
        assert_eq!(t.g711.telephone_event_pt, 0);
        assert!(t.g711_events.is_none());
    }

    #[test]
    fn unsupported_pairs_say_why() {
        let g722 = offer(vec![codec("G722", 8000, 9, &[])]);
        let err = negotiate(&g722, &webrtc()).unwrap_err();
        assert!(err.to_string().contains("G722/8000"), "{err}");
        assert!(err.to_string().contains("opus/48000"), "{err}");
        let events_only = offer(vec![codec("telephone-event", 8000, 101, &[])]);
        assert_eq!(
            negotiate(&events_only, &webrtc()).unwrap_err(),
            NegotiationError::Empty { leg: "leg_a" }
        );
    }
}
