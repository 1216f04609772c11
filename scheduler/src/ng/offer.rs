//! `offer` and `answer`: bridgepool as an rtpengine set.
//!
//! An offer for a new call-id creates one worker session in PASSTHROUGH mode (reserving the
//! transcoding cost when the answer may need it) and writes the answerer's leg address into the
//! offer; the answer decides: a codec the offerer offered -> passthrough, else transcode with
//! the answer's payload type, ptime and fmtp (`UpdateSession`). Re-offers (hold, codec or ptime
//! change, new ports) update the same session. Only new calls are refused for capacity.
//!
//! Every message of a known call starts from the state its worker holds and leaves the new
//! state there ([`super::state`]): the replica that took the offer need not see the answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bridgepool_ng::reply::{self, reasons};
use bridgepool_ng::{Dict, SdpRequest};
use bridgepool_proto::v1;
use bridgepool_sdp::{
    Audio, Codec, CodecOps, Decision, Description, Family, OfferPlan, Rewrite, SdpError,
    plan_answer, plan_offer,
};

use super::calls::{Call, CallPool, PendingOffer, unix_now_ms};
use super::legs::{Leg, Party, g711_leg, opus_leg};
use super::pool::PlaceError;
use super::state;

/// Refusals of SRTP, DTLS and ICE: the edge relay terminates those.
fn refuse_secure(req: &SdpRequest, audio: &Audio) -> Option<SdpError> {
    let proto = req.transport_protocol.as_deref().unwrap_or_default();
    if audio.dtls || proto.contains("TLS") {
        Some(SdpError::Unsupported("DTLS"))
    } else if audio.srtp || proto.contains("SAVP") {
        Some(SdpError::Unsupported("SRTP"))
    } else if audio.ice && !req.removes_ice() {
        Some(SdpError::Unsupported("ICE (send ICE=remove)"))
    } else {
        None
    }
}

fn parse(req: &SdpRequest) -> Result<(Description, Audio), Dict> {
    let desc = Description::parse(&req.sdp).map_err(|e| reply::error(&e.to_string()))?;
    let audio = desc.audio().map_err(|e| reply::error(&e.to_string()))?;
    if let Some(e) = refuse_secure(req, &audio) {
        return Err(reply::error(&e.to_string()));
    }
    Ok((desc, audio))
}

fn party(audio: &Audio) -> Party {
    Party {
        remote: SocketAddr::new(audio.addr, audio.port),
        direction: audio.direction,
        ptime_ms: audio.ptime_ms,
    }
}

/// The address written into SDP: `media-address` when the request names one.
fn advertised(req: &SdpRequest, local: SocketAddr) -> SocketAddr {
    let ip = req
        .media_address
        .as_deref()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .unwrap_or(local.ip());
    SocketAddr::new(ip, local.port())
}

fn write(
    req: &SdpRequest,
    desc: &Description,
    local: SocketAddr,
    codecs: &[Codec],
) -> Result<String, Dict> {
    Rewrite {
        local: advertised(req, local),
        codecs,
        remove_ice: req.removes_ice(),
        replace_origin: req.replaces("origin"),
        ptime_ms: req.ptime,
    }
    .apply(desc)
    .map_err(|e| reply::error(&e.to_string()))
}

fn find(codecs: &[Codec], family: Family) -> Option<&Codec> {
    codecs.iter().find(|c| c.family() == family)
}

fn dtmf(codecs: &[Codec], rate: u32) -> Option<&Codec> {
    codecs
        .iter()
        .find(|c| c.family() == Family::Dtmf && c.clock_rate == rate)
}

/// The capacity refusal in the form the proxy fails over on.
fn limit(req: &SdpRequest) -> Dict {
    if req.supports_load_limit {
        reply::load_limit(reasons::SESSION_LIMIT)
    } else {
        reply::error(reasons::SESSION_LIMIT)
    }
}

/// `offer`.
pub(super) async fn offer(calls: &CallPool, body: &Dict) -> Dict {
    let req = match SdpRequest::from_body(body) {
        Ok(r) => r,
        Err(reason) => return reply::error(reason),
    };
    let (desc, audio) = match parse(&req) {
        Ok(p) => p,
        Err(e) => return e,
    };
    // A re-offer carries the to-tag (in-dialogue); an initial offer is searched for only where
    // this replica put it, so a new call costs no round trip to every worker.
    // A deleted call kept for its delete delay is not re-offered: the offer starts a new call
    // (an INVITE resent after a 407 has the Call-ID of the one whose failure deleted it).
    let known = calls
        .load(&req.call_id, req.to_tag.is_some())
        .await
        .filter(|c| !c.deleted);
    let result = match known {
        Some(call) => {
            let ops = reoffer_ops(&call, &req);
            let plan = plan_offer(&audio.codecs, &ops);
            reoffer(calls, call, &req, &desc, &audio, plan, ops).await
        }
        None => {
            let plan = plan_offer(&audio.codecs, &req.codec);
            new_call(calls, &req, &desc, &audio, plan).await
        }
    };
    result.unwrap_or_else(|e| e)
}

async fn new_call(
    calls: &CallPool,
    req: &SdpRequest,
    desc: &Description,
    audio: &Audio,
    plan: OfferPlan,
) -> Result<Dict, Dict> {
    // The offerer's leg is known whenever transcoding is possible; with both families (or
    // neither) every answer is passed through and leg A is as good as B.
    let offerer_leg = match plan.offerer_family() {
        Some(Family::Opus) => Leg::B,
        _ => Leg::A,
    };
    let offerer = party(audio);
    let (a_codecs, b_codecs) = match offerer_leg {
        Leg::A => (&plan.accepted, &plan.added),
        Leg::B => (&plan.added, &plan.accepted),
    };
    let a_party = (offerer_leg == Leg::A).then_some(&offerer);
    let b_party = (offerer_leg == Leg::B).then_some(&offerer);
    let mut create = v1::CreateSessionRequest {
        call_id: req.call_id.clone(),
        leg_a: Some(g711_leg(
            a_party,
            find(a_codecs, Family::G711),
            dtmf(a_codecs, 8000),
        )),
        leg_b: Some(opus_leg(
            b_party,
            find(b_codecs, Family::Opus),
            dtmf(b_codecs, 48000),
        )),
        mode: v1::SessionMode::Passthrough as i32,
        from_tag: req.from_tag.clone(),
        to_tag: String::new(),
        may_transcode: plan.may_transcode(),
        jitter: None,
        signalling: Vec::new(),
    };
    let now_ms = unix_now_ms();
    let now = now_ms / 1000;
    // The placement is filled in from the worker's answer; the state it keeps holds none of it.
    let unplaced: SocketAddr = (std::net::Ipv4Addr::UNSPECIFIED, 0).into();
    let mut call = Call {
        worker: Arc::from(""),
        session_id: String::new(),
        from_tag: req.from_tag.clone(),
        to_tag: None,
        labels: Vec::new(),
        ops: vec![(req.from_tag.clone(), req.codec.clone())],
        from_leg: offerer_leg,
        leg_a_local: unplaced,
        leg_b_local: unplaced,
        remotes: [None, None],
        pending: None,
        transcoding: false,
        created: now,
        last_signal: now,
        last_signal_ms: now_ms,
        deleted: false,
    };
    let out = plan.out.clone();
    remember_offer(&mut call, req, offerer_leg, offerer, plan);
    create.signalling = state::encode(&call);
    let (worker, created) = match calls.create(create).await {
        Ok(c) => c,
        Err(PlaceError::NoHeadroom { .. }) => return Err(limit(req)),
        Err(PlaceError::Refused(reason)) => return Err(reply::error(&reason)),
    };
    let Some((leg_a_local, leg_b_local)) = CallPool::locals(&created) else {
        return Err(reply::error("Worker answered without addresses"));
    };
    call.worker = worker;
    call.session_id = created.session_id;
    call.leg_a_local = leg_a_local;
    call.leg_b_local = leg_b_local;
    let sdp = write(req, desc, call.local(offerer_leg.other()), &out)?;
    calls.remember(&req.call_id, &call);
    Ok(reply::ok().with("sdp", sdp))
}

fn remember_offer(call: &mut Call, req: &SdpRequest, leg: Leg, offerer: Party, plan: OfferPlan) {
    call.remotes[leg as usize] = Some(offerer.remote);
    if let Some(label) = &req.label {
        call.labels.retain(|(t, _)| *t != req.from_tag);
        call.labels.push((req.from_tag.clone(), label.clone()));
    }
    call.last_signal_ms = unix_now_ms();
    call.last_signal = call.last_signal_ms / 1000;
    call.pending = Some(PendingOffer {
        offerer_tag: req.from_tag.clone(),
        offerer_leg: leg,
        offerer,
        accepted: plan.accepted,
    });
}

/// Only remote and direction of one leg: the codec settings stay (law / payload type 0).
fn remote_only(leg: Leg, party: &Party) -> v1::UpdateSessionRequest {
    let mut update = v1::UpdateSessionRequest::default();
    match leg {
        Leg::A => update.leg_a = Some(g711_leg(Some(party), None, None)),
        Leg::B => update.leg_b = Some(opus_leg(Some(party), None, None)),
    }
    update
}

/// The codec operations of a re-offer: its own, else the ones this party offered with before,
/// else (the answerer re-offering for the first time) transcoding to what the other party takes.
fn reoffer_ops(call: &Call, req: &SdpRequest) -> CodecOps {
    if !req.codec.is_empty() {
        return req.codec.clone();
    }
    if let Some((_, ops)) = call.ops.iter().find(|(t, _)| *t == req.from_tag) {
        return ops.clone();
    }
    let mut ops = CodecOps::default();
    let other_accepts = call
        .pending
        .as_ref()
        .filter(|p| p.offerer_tag != req.from_tag)
        .and_then(|p| {
            p.accepted
                .iter()
                .find(|c| matches!(c.family(), Family::G711 | Family::Opus))
        });
    if let Some(codec) = other_accepts {
        ops.push("transcode", &codec.name);
    }
    ops
}

async fn reoffer(
    calls: &CallPool,
    mut call: Call,
    req: &SdpRequest,
    desc: &Description,
    audio: &Audio,
    plan: OfferPlan,
    ops: CodecOps,
) -> Result<Dict, Dict> {
    let leg = call.leg_of(&req.from_tag);
    let offerer = party(audio);
    let sdp = write(req, desc, call.local(leg.other()), &plan.out)?;
    if !call.ops.iter().any(|(t, _)| *t == req.from_tag) {
        call.ops.push((req.from_tag.clone(), ops));
    }
    remember_offer(&mut call, req, leg, offerer.clone(), plan);
    if let Err(s) = calls.update(&call, remote_only(leg, &offerer)).await {
        return Err(reply::error(s.message()));
    }
    Ok(reply::ok().with("sdp", sdp))
}

/// The `set` operations an answer applies: those of the offer it answers (where rtpengine's
/// maintainers advise codec options), then its own, which win.
fn settings(call: &Call, pending: &PendingOffer, req: &SdpRequest) -> CodecOps {
    let offered = call
        .ops
        .iter()
        .filter(|(t, _)| *t == pending.offerer_tag)
        .flat_map(|(_, o)| o.set.iter().cloned());
    CodecOps {
        set: offered.chain(req.codec.set.iter().cloned()).collect(),
        ..CodecOps::default()
    }
}

/// `answer`.
pub(super) async fn answer(calls: &CallPool, body: &Dict) -> Dict {
    let req = match SdpRequest::from_body(body) {
        Ok(r) => r,
        Err(reason) => return reply::error(reason),
    };
    let Some(to_tag) = req.to_tag.clone() else {
        return reply::error(bridgepool_ng::offer::reasons::NO_TO_TAG);
    };
    // Any replica: the offer's state is read from the call's worker. A call no worker holds is
    // a cheap refusal that creates no state.
    let Some(mut call) = calls.load(&req.call_id, true).await else {
        return reply::error(reasons::UNKNOWN_CALL_ID);
    };
    let Some(pending) = call.pending.clone() else {
        return reply::error(reasons::UNKNOWN_CALL_ID);
    };
    let (desc, audio) = match parse(&req) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let single = req.has_flag("single-codec");
    let plan = match plan_answer(&pending.accepted, &audio.codecs, single) {
        Ok(p) => p,
        Err(e) => return reply::error(&e.to_string()),
    };
    let answerer_leg = pending.offerer_leg.other();
    let answerer = party(&audio);
    let mut update = match &plan.decision {
        Decision::Passthrough => v1::UpdateSessionRequest {
            mode: Some(v1::SessionMode::Passthrough as i32),
            ..remote_only(answerer_leg, &answerer)
        },
        Decision::Transcode {
            offerer,
            answerer: answered,
            offerer_dtmf,
            answerer_dtmf,
        } => {
            // `set` tunes the Opus we encode.
            let set = settings(&call, &pending, &req);
            let (a, b) = match answerer_leg {
                Leg::A => (
                    g711_leg(Some(&answerer), Some(answered), answerer_dtmf.as_ref()),
                    opus_leg(
                        Some(&pending.offerer),
                        Some(&set.set_on(offerer)),
                        offerer_dtmf.as_ref(),
                    ),
                ),
                Leg::B => (
                    g711_leg(Some(&pending.offerer), Some(offerer), offerer_dtmf.as_ref()),
                    opus_leg(
                        Some(&answerer),
                        Some(&set.set_on(answered)),
                        answerer_dtmf.as_ref(),
                    ),
                ),
            };
            v1::UpdateSessionRequest {
                leg_a: Some(a),
                leg_b: Some(b),
                mode: Some(v1::SessionMode::Transcode as i32),
                ..Default::default()
            }
        }
    };
    let sdp = match write(&req, &desc, call.local(pending.offerer_leg), &plan.out) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if call.to_tag.is_none() && to_tag != call.from_tag {
        call.to_tag = Some(to_tag.clone());
    }
    if let Some(label) = &req.label {
        call.labels.retain(|(t, _)| *t != to_tag);
        call.labels.push((to_tag, label.clone()));
    }
    call.remotes[answerer_leg as usize] = Some(answerer.remote);
    call.transcoding = matches!(plan.decision, Decision::Transcode { .. });
    call.last_signal_ms = unix_now_ms();
    call.last_signal = call.last_signal_ms / 1000;
    if call.deleted {
        // A late answer (a 200 OK resent after the BYE): answered, the session left stopped.
        return reply::ok().with("sdp", sdp);
    }
    // The worker's tags are the dialogue's (the answer to a callee's re-offer comes from the
    // caller: its to-tag is the caller's).
    update.to_tag = call.to_tag.clone().unwrap_or_default();
    if let Err(s) = calls.update(&call, update).await {
        return reply::error(s.message());
    }
    reply::ok().with("sdp", sdp)
}
