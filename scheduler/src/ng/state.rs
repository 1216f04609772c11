//! A call's signalling state as its worker keeps it (`bridgepool.v1.NgCall`, opaque bytes on the
//! worker): encoded with every offer and answer, decoded from `FindSessions`, so a replica that
//! never saw the offer answers it exactly as the one that did (pure functions, no IO).

use std::net::SocketAddr;
use std::sync::Arc;

use bridgepool_proto::v1;
use bridgepool_sdp::{Codec, CodecOps, CodecSpec, Direction};
use prost::Message as _;

use super::calls::{Call, PendingOffer};
use super::legs::{Leg, Party};

fn leg_to_wire(leg: Leg) -> i32 {
    (match leg {
        Leg::A => v1::NgLeg::A,
        Leg::B => v1::NgLeg::B,
    }) as i32
}

fn leg_from_wire(leg: i32) -> Option<Leg> {
    match v1::NgLeg::try_from(leg).ok()? {
        v1::NgLeg::A => Some(Leg::A),
        v1::NgLeg::B => Some(Leg::B),
    }
}

fn addr_to_wire(a: SocketAddr) -> v1::MediaAddress {
    v1::MediaAddress {
        ip: a.ip().to_string(),
        port: u32::from(a.port()),
    }
}

fn addr_from_wire(a: &v1::MediaAddress) -> Option<SocketAddr> {
    Some(SocketAddr::new(
        a.ip.parse().ok()?,
        u16::try_from(a.port).ok()?,
    ))
}

fn direction_to_wire(d: Direction) -> i32 {
    (match d {
        Direction::SendRecv => v1::Direction::Sendrecv,
        Direction::SendOnly => v1::Direction::Sendonly,
        Direction::RecvOnly => v1::Direction::Recvonly,
        Direction::Inactive => v1::Direction::Inactive,
    }) as i32
}

fn direction_from_wire(d: i32) -> Direction {
    match v1::Direction::try_from(d) {
        Ok(v1::Direction::Sendonly) => Direction::SendOnly,
        Ok(v1::Direction::Recvonly) => Direction::RecvOnly,
        Ok(v1::Direction::Inactive) => Direction::Inactive,
        _ => Direction::SendRecv,
    }
}

fn codec_to_wire(c: &Codec) -> v1::NgCodec {
    v1::NgCodec {
        payload_type: u32::from(c.payload_type),
        name: c.name.clone(),
        clock_rate: c.clock_rate,
        channels: u32::from(c.channels),
        fmtp: c.fmtp.clone(),
    }
}

fn codec_from_wire(c: &v1::NgCodec) -> Option<Codec> {
    Some(
        Codec::new(
            u8::try_from(c.payload_type).ok()?,
            &c.name,
            c.clock_rate,
            u8::try_from(c.channels).ok()?,
        )
        .with_fmtp(&c.fmtp),
    )
}

fn specs_to_wire(specs: &[CodecSpec]) -> Vec<v1::NgCodecSpec> {
    specs
        .iter()
        .map(|s| v1::NgCodecSpec {
            name: s.name.clone(),
            clock_rate: s.clock_rate,
            channels: s.channels.map(u32::from),
            fmtp: s.fmtp.clone(),
            bitrate: s.bitrate,
        })
        .collect()
}

fn specs_from_wire(specs: &[v1::NgCodecSpec]) -> Vec<CodecSpec> {
    specs
        .iter()
        .map(|s| CodecSpec {
            name: s.name.clone(),
            clock_rate: s.clock_rate,
            channels: s.channels.and_then(|c| u8::try_from(c).ok()),
            bitrate: s.bitrate,
            fmtp: s.fmtp.clone(),
        })
        .collect()
}

fn ops_to_wire(o: &CodecOps) -> v1::NgCodecOps {
    v1::NgCodecOps {
        strip: specs_to_wire(&o.strip),
        mask: specs_to_wire(&o.mask),
        consume: specs_to_wire(&o.consume),
        transcode: specs_to_wire(&o.transcode),
        offer: specs_to_wire(&o.offer),
        except: specs_to_wire(&o.except),
        accept: specs_to_wire(&o.accept),
        set: specs_to_wire(&o.set),
    }
}

fn ops_from_wire(o: &v1::NgCodecOps) -> CodecOps {
    CodecOps {
        strip: specs_from_wire(&o.strip),
        mask: specs_from_wire(&o.mask),
        consume: specs_from_wire(&o.consume),
        transcode: specs_from_wire(&o.transcode),
        offer: specs_from_wire(&o.offer),
        except: specs_from_wire(&o.except),
        accept: specs_from_wire(&o.accept),
        set: specs_from_wire(&o.set),
    }
}

fn offer_to_wire(p: &PendingOffer) -> v1::NgOffer {
    v1::NgOffer {
        offerer_tag: p.offerer_tag.clone(),
        offerer_leg: leg_to_wire(p.offerer_leg),
        remote: Some(addr_to_wire(p.offerer.remote)),
        direction: direction_to_wire(p.offerer.direction),
        ptime_ms: p.offerer.ptime_ms,
        accepted: p.accepted.iter().map(codec_to_wire).collect(),
    }
}

fn offer_from_wire(p: &v1::NgOffer) -> Option<PendingOffer> {
    Some(PendingOffer {
        offerer_tag: p.offerer_tag.clone(),
        offerer_leg: leg_from_wire(p.offerer_leg)?,
        offerer: Party {
            remote: addr_from_wire(p.remote.as_ref()?)?,
            direction: direction_from_wire(p.direction),
            ptime_ms: p.ptime_ms,
        },
        accepted: p
            .accepted
            .iter()
            .map(codec_from_wire)
            .collect::<Option<_>>()?,
    })
}

/// The bytes the worker keeps for `call` (its placement, which FindSessions tells, left out).
pub(super) fn encode(call: &Call) -> Vec<u8> {
    v1::NgCall {
        from_tag: call.from_tag.clone(),
        to_tag: call.to_tag.clone().unwrap_or_default(),
        labels: call
            .labels
            .iter()
            .map(|(tag, label)| v1::NgLabel {
                tag: tag.clone(),
                label: label.clone(),
            })
            .collect(),
        ops: call
            .ops
            .iter()
            .map(|(tag, ops)| v1::NgTagOps {
                tag: tag.clone(),
                ops: Some(ops_to_wire(ops)),
            })
            .collect(),
        from_leg: leg_to_wire(call.from_leg),
        remote_a: call.remotes[Leg::A as usize].map(addr_to_wire),
        remote_b: call.remotes[Leg::B as usize].map(addr_to_wire),
        pending: call.pending.as_ref().map(offer_to_wire),
        transcoding: call.transcoding,
        created: call.created,
        last_signal: call.last_signal,
        deleted: call.deleted,
        last_signal_ms: call.last_signal_ms,
    }
    .encode_to_vec()
}

/// The call a worker's session holds; `None` when it holds no ng state (a session the gRPC
/// Scheduler placed) or bytes this version cannot read.
pub(super) fn decode(worker: Arc<str>, found: &v1::FoundSession) -> Option<Call> {
    if found.signalling.is_empty() {
        return None;
    }
    let s = v1::NgCall::decode(found.signalling.as_slice()).ok()?;
    let pending = match &s.pending {
        Some(p) => Some(offer_from_wire(p)?),
        None => None,
    };
    Some(Call {
        worker,
        session_id: found.session_id.clone(),
        from_tag: s.from_tag,
        to_tag: Some(s.to_tag).filter(|t| !t.is_empty()),
        labels: s.labels.into_iter().map(|l| (l.tag, l.label)).collect(),
        ops: s
            .ops
            .into_iter()
            .map(|o| (o.tag, o.ops.as_ref().map(ops_from_wire).unwrap_or_default()))
            .collect(),
        from_leg: leg_from_wire(s.from_leg)?,
        leg_a_local: addr_from_wire(found.leg_a_local.as_ref()?)?,
        leg_b_local: addr_from_wire(found.leg_b_local.as_ref()?)?,
        remotes: [
            s.remote_a.as_ref().and_then(addr_from_wire),
            s.remote_b.as_ref().and_then(addr_from_wire),
        ],
        pending,
        transcoding: s.transcoding,
        created: s.created,
        last_signal: s.last_signal,
        deleted: s.deleted,
        last_signal_ms: s.last_signal_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call {
        let mut ops = CodecOps::default();
        ops.push("mask", "all");
        ops.push("transcode", "opus/48000/2///useinbandfec--1;stereo--0");
        ops.push("strip", "PCMA/8000");
        ops.push("set", "opus/48000/2/12000");
        Call {
            worker: Arc::from("w1"),
            session_id: "1f".into(),
            from_tag: "caller".into(),
            to_tag: Some("callee".into()),
            labels: vec![("caller".into(), "a".into())],
            ops: vec![("caller".into(), ops)],
            from_leg: Leg::A,
            leg_a_local: "127.0.0.1:30000".parse().unwrap(),
            leg_b_local: "127.0.0.1:30002".parse().unwrap(),
            remotes: [Some("192.0.2.1:4000".parse().unwrap()), None],
            pending: Some(PendingOffer {
                offerer_tag: "caller".into(),
                offerer_leg: Leg::A,
                offerer: Party {
                    remote: "192.0.2.1:4000".parse().unwrap(),
                    direction: Direction::SendOnly,
                    ptime_ms: Some(30),
                },
                accepted: vec![
                    Codec::from_static(0),
                    Codec::new(101, "telephone-event", 8000, 1).with_fmtp("0-15"),
                ],
            }),
            transcoding: true,
            created: 1_700_000_000,
            last_signal: 1_700_000_005,
            last_signal_ms: 1_700_000_005_250,
            deleted: true,
        }
    }

    fn found(c: &Call, bytes: Vec<u8>) -> v1::FoundSession {
        v1::FoundSession {
            session_id: c.session_id.clone(),
            leg_a_local: Some(addr_to_wire(c.leg_a_local)),
            leg_b_local: Some(addr_to_wire(c.leg_b_local)),
            signalling: bytes,
            ..Default::default()
        }
    }

    #[test]
    fn what_one_replica_writes_another_reads_the_same() {
        let c = call();
        let back = decode(c.worker.clone(), &found(&c, encode(&c))).unwrap();
        assert_eq!(format!("{back:?}"), format!("{c:?}"));
        // Kept small: a worker holds it for every live call.
        assert!(encode(&c).len() < 400, "{} bytes", encode(&c).len());
    }

    #[test]
    fn no_state_or_unreadable_state_is_no_call() {
        let c = call();
        assert!(decode(c.worker.clone(), &found(&c, Vec::new())).is_none());
        assert!(decode(c.worker.clone(), &found(&c, vec![0xff, 0xff, 0xff])).is_none());
        // A payload type beyond 127 cannot come from SDP we parsed: refused, not truncated.
        let mut wire = v1::NgCall::decode(encode(&c).as_slice()).unwrap();
        wire.pending.as_mut().unwrap().accepted[0].payload_type = 300;
        assert!(decode(c.worker.clone(), &found(&c, wire.encode_to_vec())).is_none());
    }
}
