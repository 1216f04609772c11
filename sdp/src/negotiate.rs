//! The offer/answer rules, as plain functions over codec lists (rtpengine's behaviour for the
//! scenarios of its own test suite).
//!
//! Offer out: the offerer's codecs less those stripped, masked or left out of an `offer` list;
//! then the `transcode` codecs the pool can produce from what the offerer sends (Opus at the
//! first free dynamic payload type with `useinbandfec=1`, G.711 at its static one); then
//! telephone-event/48000 when Opus was added and telephone-event/8000 is offered on; then the
//! offerer's telephone-events.
//!
//! Answer: when the answerer's first audio codec is one the offerer offered (and did not have
//! stripped), the call is passed through and the answer back lists only offered codecs, with
//! the offerer's payload types. Otherwise the pool transcodes between that codec and the
//! offerer's first codec of the other family, and the answer back lists that one (Opus with the
//! offerer's fmtp reflected).

use crate::codec::{Codec, Family};
use crate::error::SdpError;
use crate::ops::CodecOps;

/// Lowest dynamic payload type (RFC 3551).
const FIRST_DYNAMIC: u8 = 96;

/// What an offer becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferPlan {
    /// The codecs of the outgoing offer, in order.
    pub out: Vec<Codec>,
    /// The offerer's codecs the pool accepts from it (all but the stripped ones).
    pub accepted: Vec<Codec>,
    /// Codecs added for transcoding (empty: the answer can only be passed through).
    pub added: Vec<Codec>,
}

impl OfferPlan {
    /// Which leg the offerer is when the call may be transcoded: G.711 only (leg A) or Opus
    /// only (leg B). `None` when it offers both or neither: every answer is then passthrough.
    pub fn offerer_family(&self) -> Option<Family> {
        family_of(&self.accepted)
    }

    /// Whether an answer may need transcoding.
    pub fn may_transcode(&self) -> bool {
        self.added
            .iter()
            .any(|c| matches!(c.family(), Family::G711 | Family::Opus))
    }
}

/// G.711 only or Opus only; `None` for both or neither.
pub fn family_of(codecs: &[Codec]) -> Option<Family> {
    let g711 = codecs.iter().any(|c| c.family() == Family::G711);
    let opus = codecs.iter().any(|c| c.family() == Family::Opus);
    match (g711, opus) {
        (true, false) => Some(Family::G711),
        (false, true) => Some(Family::Opus),
        _ => None,
    }
}

/// Plans the outgoing offer from the offerer's codecs and the request's codec operations.
pub fn plan_offer(offered: &[Codec], ops: &CodecOps) -> OfferPlan {
    let accepted: Vec<Codec> = offered.iter().filter(|c| !ops.strips(c)).cloned().collect();
    let mut kept: Vec<Codec> = offered.iter().filter(|c| !ops.hides(c)).cloned().collect();
    if !ops.offer.is_empty() {
        // `offer` also orders: its order first, the `accept`ed rest after.
        let rank = |c: &Codec| ops.offer.iter().position(|s| s.matches(c));
        kept.sort_by_key(|c| rank(c).unwrap_or(usize::MAX));
    }
    let offerer = family_of(&accepted);
    let mut used: Vec<u8> = offered.iter().map(|c| c.payload_type).collect();
    let mut added: Vec<Codec> = Vec::new();
    // The transcode codecs in their order: added ones, and masked offerer codecs offered again.
    let mut extra: Vec<Codec> = Vec::new();
    for spec in &ops.transcode {
        let Some(mut codec) = spec.to_codec() else {
            continue;
        };
        if kept.iter().chain(&extra).any(|c| c.same_format(&codec)) {
            continue;
        }
        if let Some(masked) = accepted.iter().find(|c| c.same_format(&codec)) {
            extra.push(masked.clone());
            continue;
        }
        // A session bridges G.711 and Opus: only the other family of a one-family offer helps.
        let useful = matches!(
            (offerer, codec.family()),
            (Some(Family::G711), Family::Opus) | (Some(Family::Opus), Family::G711)
        );
        if !useful {
            continue;
        }
        if codec.family() == Family::Opus {
            codec.payload_type = free_pt(&used);
        }
        used.push(codec.payload_type);
        extra.push(codec.clone());
        added.push(codec);
    }
    let dtmf_kept: Vec<Codec> = kept
        .iter()
        .filter(|c| c.family() == Family::Dtmf)
        .cloned()
        .collect();
    let mut out: Vec<Codec> = kept
        .into_iter()
        .filter(|c| c.family() != Family::Dtmf)
        .collect();
    out.extend(extra);
    // DTMF keeps working across the transcoder: the Opus side gets its own telephone-event.
    let opus_added = added.iter().any(|c| c.family() == Family::Opus);
    if opus_added && let Some(te8) = dtmf_kept.iter().find(|c| c.clock_rate == 8000) {
        let te48 = Codec::new(free_pt(&used), &te8.name, 48000, 1).with_fmtp(&te8.fmtp);
        used.push(te48.payload_type);
        out.push(te48.clone());
        added.push(te48);
    }
    out.extend(dtmf_kept);
    OfferPlan {
        out,
        accepted,
        added,
    }
}

fn free_pt(used: &[u8]) -> u8 {
    (FIRST_DYNAMIC..128)
        .find(|pt| !used.contains(pt))
        .unwrap_or(FIRST_DYNAMIC)
}

/// Passthrough or transcode, decided at the answer.
// Built once per answer and never stored in bulk: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The answerer chose a codec the offerer offered: packets are relayed as they are.
    Passthrough,
    /// The pool transcodes between the two codecs.
    Transcode {
        /// The offerer's codec (payload type and fmtp as it offered them).
        offerer: Codec,
        /// The answerer's codec (its payload type, fmtp).
        answerer: Codec,
        /// The offerer's telephone-event of its codec's clock rate, if offered and answered.
        offerer_dtmf: Option<Codec>,
        /// The answerer's telephone-event of its codec's clock rate, if any.
        answerer_dtmf: Option<Codec>,
    },
}

/// What an answer becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerPlan {
    /// Passthrough or transcode.
    pub decision: Decision,
    /// The codecs of the answer sent back to the offerer, with the offerer's payload types.
    pub out: Vec<Codec>,
}

/// Plans the answer back to the offerer from what it may receive (`accepted`, see
/// [`OfferPlan::accepted`]) and what the answerer answered.
pub fn plan_answer(
    accepted: &[Codec],
    answered: &[Codec],
    single_codec: bool,
) -> Result<AnswerPlan, SdpError> {
    let chosen = answered
        .iter()
        .find(|c| c.family() != Family::Dtmf && !c.name.eq_ignore_ascii_case("CN"))
        .ok_or(SdpError::NoCommonCodec)?;
    let answered_dtmf = answered.iter().any(|c| c.family() == Family::Dtmf);
    if accepted.iter().any(|c| c.same_format(chosen)) {
        let mut out: Vec<Codec> = Vec::new();
        for a in answered {
            let Some(offered) = accepted.iter().find(|c| c.same_format(a)) else {
                continue; // a stray answer codec the offerer never offered
            };
            let is_audio = a.family() != Family::Dtmf;
            if single_codec && is_audio && out.iter().any(|c| c.family() != Family::Dtmf) {
                continue;
            }
            if out.iter().any(|c| c.payload_type == offered.payload_type) {
                continue;
            }
            let mut c = offered.clone();
            c.fmtp.clone_from(&a.fmtp);
            out.push(c);
        }
        return Ok(AnswerPlan {
            decision: Decision::Passthrough,
            out,
        });
    }
    let want = match chosen.family() {
        Family::Opus => Family::G711,
        Family::G711 => Family::Opus,
        _ => return Err(SdpError::NoCommonCodec),
    };
    let mut offerer = accepted
        .iter()
        .find(|c| c.family() == want)
        .cloned()
        .ok_or(SdpError::NoCommonCodec)?;
    if offerer.family() == Family::Opus && offerer.fmtp.is_empty() {
        offerer.fmtp = "stereo=0; useinbandfec=1".to_owned();
    }
    let dtmf_at = |list: &[Codec], rate: u32| {
        list.iter()
            .find(|c| c.family() == Family::Dtmf && c.clock_rate == rate)
            .cloned()
    };
    let offerer_dtmf = answered_dtmf
        .then(|| dtmf_at(accepted, offerer.clock_rate))
        .flatten();
    let answerer_dtmf = dtmf_at(answered, chosen.clock_rate);
    let mut out = vec![offerer.clone()];
    out.extend(offerer_dtmf.clone());
    Ok(AnswerPlan {
        decision: Decision::Transcode {
            offerer,
            answerer: chosen.clone(),
            offerer_dtmf,
            answerer_dtmf,
        },
        out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(pt: u8, rate: u32) -> Codec {
        Codec::new(pt, "telephone-event", rate, 1).with_fmtp("0-15")
    }

    fn opus(pt: u8) -> Codec {
        Codec::new(pt, "opus", 48000, 2)
    }

    fn pts(codecs: &[Codec]) -> Vec<u8> {
        codecs.iter().map(|c| c.payload_type).collect()
    }

    fn ops(list: &[(&str, &str)]) -> CodecOps {
        let mut o = CodecOps::default();
        for (op, spec) in list {
            o.push(op, spec);
        }
        o
    }

    /// Scenario A: PCMU/PCMA/te/CN offer, mask all + transcode opus (with fmtp) and PCMU.
    #[test]
    fn a_mask_all_transcode_opus_and_pcmu() {
        let offered = [
            Codec::from_static(0),
            Codec::from_static(8),
            te(101, 8000),
            Codec::from_static(13),
        ];
        let o = ops(&[
            ("mask", "all"),
            ("transcode", "opus/48000/2///stereo--0;useinbandfec--0"),
            ("transcode", "PCMU"),
        ]);
        let plan = plan_offer(&offered, &o);
        assert_eq!(pts(&plan.out), [96, 0]);
        assert_eq!(plan.out[0].fmtp, "stereo=0; useinbandfec=0");
        assert_eq!(plan.offerer_family(), Some(Family::G711));
        assert!(plan.may_transcode());
        // opus-only answer: transcode, answer back PCMU only (te and CN were masked away).
        let answer = plan_answer(&plan.accepted, &[opus(96)], false).unwrap();
        assert_eq!(pts(&answer.out), [0]);
        assert!(
            matches!(answer.decision, Decision::Transcode { ref offerer, .. } if offerer.payload_type == 0)
        );
    }

    /// Scenario B: a PCMA offer + transcode opus, answered with opus.
    #[test]
    fn b_g711_offer_gets_opus_with_fec() {
        let plan = plan_offer(&[Codec::from_static(8)], &ops(&[("transcode", "opus")]));
        assert_eq!(pts(&plan.out), [8, 96]);
        assert_eq!(plan.out[1].rtpmap(), "96 opus/48000/2");
        assert_eq!(plan.out[1].fmtp, "useinbandfec=1");
        let answer = plan_answer(
            &plan.accepted,
            &[opus(96).with_fmtp("useinbandfec=1")],
            false,
        )
        .unwrap();
        assert_eq!(pts(&answer.out), [8]);
        let Decision::Transcode { answerer, .. } = answer.decision else {
            panic!("transcode expected")
        };
        assert_eq!(answerer.fmtp, "useinbandfec=1");
    }

    /// Scenario C: PCMU/PCMA/te offer + transcode opus; te/48000 added; the answer picks PCMU.
    #[test]
    fn c_answer_with_an_offered_codec_is_passthrough() {
        let offered = [Codec::from_static(0), Codec::from_static(8), te(101, 8000)];
        let plan = plan_offer(&offered, &ops(&[("transcode", "opus")]));
        assert_eq!(pts(&plan.out), [0, 8, 96, 97, 101]);
        assert!(plan.out[3].is("telephone-event", 48000));
        assert_eq!(plan.out[3].fmtp, "0-15");
        let answered = [
            Codec::from_static(0),
            Codec::from_static(8),
            opus(96),
            te(101, 8000),
            te(98, 48000),
        ];
        let single = plan_answer(&plan.accepted, &answered, true).unwrap();
        assert_eq!(single.decision, Decision::Passthrough);
        assert_eq!(pts(&single.out), [0, 101]);
        let all = plan_answer(&plan.accepted, &answered, false).unwrap();
        assert_eq!(pts(&all.out), [0, 8, 101]);
    }

    /// Scenario D: WebRTC opus towards a G.711 trunk (transcode PCMA, mask opus).
    #[test]
    fn d_opus_offer_to_g711() {
        let plan = plan_offer(
            &[opus(96)],
            &ops(&[("transcode", "PCMA"), ("mask", "opus")]),
        );
        assert_eq!(pts(&plan.out), [8]);
        assert_eq!(plan.offerer_family(), Some(Family::Opus));
        let answer = plan_answer(&plan.accepted, &[Codec::from_static(8)], false).unwrap();
        assert_eq!(pts(&answer.out), [96]);
        assert_eq!(answer.out[0].fmtp, "stereo=0; useinbandfec=1");
    }

    #[test]
    fn offered_opus_fmtp_is_reflected() {
        let offered = [opus(111).with_fmtp("minptime=10;useinbandfec=1")];
        let plan = plan_offer(&offered, &ops(&[("transcode", "PCMU"), ("mask", "opus")]));
        let answer = plan_answer(&plan.accepted, &[Codec::from_static(0)], false).unwrap();
        assert_eq!(answer.out[0].payload_type, 111);
        assert_eq!(answer.out[0].fmtp, "minptime=10;useinbandfec=1");
    }

    #[test]
    fn first_free_dynamic_pt_skips_used_ones() {
        let offered = [
            Codec::from_static(0),
            te(96, 8000),
            Codec::new(97, "G726-32", 8000, 1),
        ];
        let plan = plan_offer(&offered, &ops(&[("transcode", "opus")]));
        let opus = plan
            .out
            .iter()
            .find(|c| c.family() == Family::Opus)
            .unwrap();
        assert_eq!(opus.payload_type, 98);
        let te48 = plan
            .out
            .iter()
            .find(|c| c.is("telephone-event", 48000))
            .unwrap();
        assert_eq!(te48.payload_type, 99);
    }

    #[test]
    fn stripped_codecs_are_not_accepted() {
        let offered = [Codec::from_static(0), Codec::from_static(8)];
        let plan = plan_offer(&offered, &ops(&[("strip", "PCMU"), ("transcode", "opus")]));
        assert_eq!(pts(&plan.out), [8, 96]);
        assert_eq!(pts(&plan.accepted), [8]);
        // The answerer picking the stripped PCMU has nothing in common with the offerer.
        let answer = plan_answer(&plan.accepted, &[Codec::from_static(0)], false);
        assert_eq!(answer, Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn no_transcoding_without_flags_or_with_both_families() {
        let plan = plan_offer(&[Codec::from_static(0)], &CodecOps::default());
        assert!(!plan.may_transcode());
        assert_eq!(pts(&plan.out), [0]);
        let both = [Codec::from_static(0), opus(96)];
        let plan = plan_offer(&both, &ops(&[("transcode", "PCMA")]));
        assert!(!plan.may_transcode());
        assert_eq!(plan.offerer_family(), None);
    }

    #[test]
    fn stray_answer_codecs_are_dropped() {
        let plan = plan_offer(&[Codec::from_static(0)], &CodecOps::default());
        let answer = plan_answer(
            &plan.accepted,
            &[Codec::from_static(0), Codec::from_static(9)],
            false,
        )
        .unwrap();
        assert_eq!(pts(&answer.out), [0]);
    }
}
