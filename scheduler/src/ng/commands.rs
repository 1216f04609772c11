//! One function per ng command; each returns the reply body.

use bridgepool_ng::reply::{self, reasons};
use bridgepool_ng::{CallRef, Command, Dict, TransformReply, TransformRequest, Value};
use bridgepool_proto::v1;

use super::calls::CallPool;
use super::pool::{JobPool, PlaceError};
use super::{offer, pairs, stats};

/// Answers one request body.
pub(super) async fn dispatch(
    pool: &JobPool,
    calls: &CallPool,
    instance: &str,
    body: &Dict,
) -> Dict {
    match Command::from_body(body) {
        Some(Command::Ping) => reply::pong(),
        Some(Command::Offer) => offer::offer(calls, body).await,
        Some(Command::Answer) => offer::answer(calls, body).await,
        Some(Command::Transform) => transform(pool, instance, body).await,
        Some(Command::Delete) => delete(pool, calls, body).await,
        Some(Command::Query) => query(pool, calls, body).await,
        Some(Command::List) => list(pool, body).await,
        Some(Command::Statistics) => statistics(pool).await,
        _ => reply::error(reasons::UNRECOGNIZED_COMMAND),
    }
}

/// rtpengine invents 64-hex ids when the relay sends none.
fn invent_id() -> String {
    (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect()
}

/// The `transform` jitter buffer option as the Worker API has it.
fn jitter_to_wire(j: bridgepool_ng::JitterBufferOption) -> v1::JitterBuffer {
    let mode = match j.mode {
        bridgepool_ng::JitterBufferMode::Adaptive => v1::JitterBufferMode::Adaptive,
        bridgepool_ng::JitterBufferMode::Fixed => v1::JitterBufferMode::Fixed,
        bridgepool_ng::JitterBufferMode::Off => v1::JitterBufferMode::Off,
    };
    v1::JitterBuffer {
        mode: mode as i32,
        max_delay_ms: j.max_delay_ms.unwrap_or(0),
        fixed_delay_ms: j.fixed_delay_ms.unwrap_or(0),
    }
}

async fn transform(pool: &JobPool, instance: &str, body: &Dict) -> Dict {
    let req = match TransformRequest::from_body(body) {
        Ok(r) => r,
        Err(e) => return reply::error(&e.to_string()),
    };
    if req.instance.as_deref() == Some(instance) {
        return reply::error(reasons::LOOP);
    }
    let mut checked = Vec::new();
    for m in &req.media {
        for pair in &m.codecs {
            match pairs::check(pair) {
                Ok(codecs) => checked.push(codecs),
                Err(reason) => return reply::error(&reason),
            }
        }
    }
    let call_id = req.call_id.clone().unwrap_or_else(invent_id);
    let from_tag = req.from_tag.clone().unwrap_or_else(invent_id);
    let mut media = Vec::with_capacity(req.media.len());
    for (index, m) in req.media.iter().enumerate() {
        let create = v1::CreateJobRequest {
            call_id: call_id.clone(),
            from_tag: from_tag.clone(),
            pairs: m
                .codecs
                .iter()
                .map(|p| v1::JobPair {
                    input: Some(pairs::to_wire(&p.input)),
                    output: Some(pairs::to_wire(&p.output)),
                })
                .collect(),
            destination: Some(v1::MediaAddress {
                ip: m.destination.ip().to_string(),
                port: u32::from(m.destination.port()),
            }),
            jitter: req.jitter_buffer.map(jitter_to_wire),
        };
        let failed = match pool.create(create).await {
            Ok((_, created)) => {
                let local = created.local.and_then(|l| {
                    let ip = l.ip.parse().ok()?;
                    Some(std::net::SocketAddr::new(ip, u16::try_from(l.port).ok()?))
                });
                match local {
                    Some(addr) => {
                        media.push(bridgepool_ng::MediaAddress {
                            id: m.id.clone().unwrap_or_else(|| index.to_string()),
                            addr,
                        });
                        None
                    }
                    None => Some("Worker answered without an address".to_owned()),
                }
            }
            Err(PlaceError::NoHeadroom { .. }) => Some(reasons::SESSION_LIMIT.to_owned()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = failed {
            if !media.is_empty() {
                pool.delete(job_ref(&call_id, Some(&from_tag))).await;
            }
            return reply::error(&reason);
        }
    }
    for (input, output) in checked {
        pool.state().ng.job(input, output);
    }
    TransformReply {
        call_id,
        from_tag,
        media,
    }
    .to_body()
}

fn job_ref(call_id: &str, from_tag: Option<&str>) -> v1::JobRef {
    v1::JobRef {
        call_id: call_id.to_owned(),
        from_tag: from_tag.unwrap_or_default().to_owned(),
        any_tag: from_tag.is_none(),
    }
}

fn totals(jobs: &[v1::JobStats]) -> Dict {
    let (p, b, e) = jobs.iter().fold((0u64, 0u64, 0u64), |(p, b, e), j| {
        (p + j.packets_in, b + j.bytes_in, e + j.errors)
    });
    let int = |v: u64| Value::Int(i64::try_from(v).unwrap_or(i64::MAX));
    let rtp = Dict::new()
        .with("packets", int(p))
        .with("bytes", int(b))
        .with("errors", int(e));
    let rtcp = Dict::new()
        .with("packets", 0i64)
        .with("bytes", 0i64)
        .with("errors", 0i64);
    Dict::new().with("RTP", rtp).with("RTCP", rtcp)
}

async fn delete(pool: &JobPool, calls: &CallPool, body: &Dict) -> Dict {
    let Some(call) = CallRef::from_body(body) else {
        return reply::error(reasons::NO_CALL_ID);
    };
    // rtpengine's `delete delay`: the request's, else the server's (30 s unless configured);
    // at most an hour, whatever a request says.
    let delay = call
        .delete_delay
        .map_or(calls.delete_delay(), |d| d.clamp(0, 3600) as u32);
    // The `to-tag` flag deletes one dialogue only: a forked call's other branch leaves the
    // call alone.
    let branch = call
        .has_flag("to-tag")
        .then_some(call.to_tag.as_deref())
        .flatten()
        .filter(|t| !t.is_empty());
    // An offer/answer call first; then the relay's transform jobs under that name (straight to
    // those when this replica placed them).
    let sessions = if pool.placed_here(&call.call_id) {
        Vec::new()
    } else {
        calls.delete(&call.call_id, delay, branch).await
    };
    if !sessions.is_empty() {
        if call.has_flag("fast") {
            return reply::ok();
        }
        let figures: Vec<_> = sessions
            .into_iter()
            .map(|(f, r)| (f, r.leg_a.unwrap_or_default(), r.leg_b.unwrap_or_default()))
            .collect();
        return stats::call_figures(&figures);
    }
    let deleted = pool
        .delete(job_ref(&call.call_id, call.from_tag.as_deref()))
        .await;
    if deleted.is_empty() {
        return if call.has_flag("fatal") {
            reply::error(reasons::CALL_NOT_FOUND)
        } else {
            reply::ok_with_warning(reasons::CALL_NOT_FOUND)
        };
    }
    if call.has_flag("fast") {
        return reply::ok();
    }
    reply::ok().with("totals", totals(&deleted))
}

async fn query(pool: &JobPool, calls: &CallPool, body: &Dict) -> Dict {
    let Some(call) = CallRef::from_body(body) else {
        return reply::error(reasons::NO_CALL_ID);
    };
    let sessions = if pool.placed_here(&call.call_id) {
        Vec::new()
    } else {
        calls.query(&call.call_id).await
    };
    if !sessions.is_empty() {
        let figures: Vec<_> = sessions
            .into_iter()
            .map(|(f, r)| (f, r.leg_a.unwrap_or_default(), r.leg_b.unwrap_or_default()))
            .collect();
        return stats::call_figures(&figures);
    }
    let jobs = pool
        .query(job_ref(&call.call_id, call.from_tag.as_deref()))
        .await;
    if jobs.is_empty() {
        return reply::error(reasons::UNKNOWN_CALL_ID);
    }
    let mut tags = Dict::new();
    for j in &jobs {
        let local_port = j.local.as_ref().map_or(0, |l| l.port);
        let stream = Dict::new().with("local port", local_port).with(
            "stats",
            Dict::new()
                .with("packets", Value::Int(j.packets_in as i64))
                .with("bytes", Value::Int(j.bytes_in as i64))
                .with("errors", Value::Int(j.errors as i64)),
        );
        let media = Dict::new()
            .with("index", 1i64)
            .with("type", "audio")
            .with("streams", vec![Value::Dict(stream)]);
        tags.push(
            &j.from_tag,
            Dict::new()
                .with("tag", j.from_tag.as_str())
                .with("medias", vec![Value::Dict(media)]),
        );
    }
    reply::ok().with("tags", tags).with("totals", totals(&jobs))
}

async fn list(pool: &JobPool, body: &Dict) -> Dict {
    let limit = body
        .int("limit")
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(32);
    match pool.list().await {
        Ok(jobs) => {
            let mut calls: Vec<&str> = jobs.iter().map(|j| j.call_id.as_str()).collect();
            calls.sort_unstable();
            calls.dedup();
            calls.truncate(limit);
            reply::ok().with("calls", Value::str_list(&calls))
        }
        Err(s) => reply::error(s.message()),
    }
}

/// The `currentstatistics` keys jambonz reads (`sessionstotal` picks the least-loaded engine).
async fn statistics(pool: &JobPool) -> Dict {
    let jobs = pool.list().await.map(|j| j.len() as i64).unwrap_or(0);
    let sessions = i64::try_from(pool.live_sessions()).unwrap_or(i64::MAX);
    let current = Dict::new()
        .with("sessionsown", jobs + sessions)
        .with("sessionsforeign", 0i64)
        .with("sessionstotal", jobs + sessions)
        .with("transcodedmedia", jobs + 2 * sessions)
        .with("packetrate", 0i64)
        .with("byterate", 0i64)
        .with("errorrate", 0i64);
    reply::ok().with(
        "statistics",
        Dict::new()
            .with("currentstatistics", current)
            .with("totalstatistics", Dict::new())
            .with("intervalstatistics", Dict::new())
            .with("controlstatistics", Dict::new()),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::service::SchedulerState;

    const TRANSFORM: &[u8] =
        include_bytes!("../../../ng/tests/golden/transform_pcmu_opus_request.bin");

    fn pool() -> JobPool {
        JobPool::new(Arc::new(SchedulerState::new(
            Duration::from_secs(3),
            Duration::from_secs(2),
        )))
    }

    async fn ask(body: &Dict, instance: &str) -> Dict {
        let pool = pool();
        let calls = CallPool::new(pool.state().clone());
        dispatch(&pool, &calls, instance, body).await
    }

    #[tokio::test]
    async fn our_own_instance_is_a_loop() {
        let m = bridgepool_ng::Message::parse(TRANSFORM).unwrap();
        let r = ask(&m.body, "f725e85d996b").await;
        assert_eq!(r.str("error-reason"), Some(reasons::LOOP));
        // Another instance with no worker: refused at once with a failover string.
        let r = ask(&m.body, "000000000000").await;
        assert_eq!(r.str("error-reason"), Some(reasons::SESSION_LIMIT));
    }

    #[tokio::test]
    async fn commands_without_workers() {
        let cmd = |c: &str| Dict::new().with("command", c);
        assert_eq!(ask(&cmd("ping"), "i").await.str("result"), Some("pong"));
        assert_eq!(
            ask(&cmd("start recording"), "i").await.str("error-reason"),
            Some(reasons::UNRECOGNIZED_COMMAND)
        );
        assert_eq!(ask(&Dict::new(), "i").await.str("result"), Some("error"));
        assert_eq!(
            ask(&cmd("delete"), "i").await.str("error-reason"),
            Some(reasons::NO_CALL_ID)
        );
        let del = cmd("delete").with("call-id", "x").with("from-tag", "y");
        let r = ask(&del, "i").await;
        assert_eq!(
            (r.str("result"), r.str("warning")),
            (Some("ok"), Some(reasons::CALL_NOT_FOUND))
        );
        let fatal = del.with("flags", Value::str_list(&["fatal"]));
        assert_eq!(ask(&fatal, "i").await.str("result"), Some("error"));
        let q = cmd("query").with("call-id", "x");
        assert_eq!(
            ask(&q, "i").await.str("error-reason"),
            Some(reasons::UNKNOWN_CALL_ID)
        );
        let s = ask(&cmd("statistics"), "i").await;
        let total = s
            .get("statistics")
            .and_then(|s| s.get("currentstatistics"))
            .and_then(|c| c.get("sessionstotal"))
            .and_then(Value::as_int);
        assert_eq!(total, Some(0));
        let l = ask(&cmd("list"), "i").await;
        assert_eq!(
            l.get("calls").and_then(Value::as_list).map(<[_]>::len),
            Some(0)
        );
    }

    const PCMU: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                        m=audio 4000 RTP/AVP 0\r\n";

    fn offer(sdp: &str) -> Dict {
        Dict::new()
            .with("command", "offer")
            .with("call-id", "c1")
            .with("from-tag", "f1")
            .with("flags", Value::str_list(&["transcode-opus"]))
            .with("sdp", sdp)
    }

    #[tokio::test]
    async fn offers_without_workers() {
        // No headroom anywhere: load limit for a proxy that supports it, else the failover string.
        let limited = ask(
            &offer(PCMU).with("supports", Value::str_list(&["load limit"])),
            "i",
        )
        .await;
        assert_eq!(limited.str("result"), Some("load limit"));
        assert_eq!(limited.str("message"), Some(reasons::SESSION_LIMIT));
        let refused = ask(&offer(PCMU), "i").await;
        assert_eq!(refused.str("error-reason"), Some(reasons::SESSION_LIMIT));
        // Bad input is refused before any worker is asked, each with its reason.
        let bad = ask(&offer("not sdp"), "i").await;
        assert!(
            bad.str("error-reason")
                .unwrap()
                .starts_with("Failed to parse SDP")
        );
        let srtp = ask(&offer(&PCMU.replace("RTP/AVP", "RTP/SAVP")), "i").await;
        assert!(srtp.str("error-reason").unwrap().contains("SRTP"));
        let ice = ask(&offer(&format!("{PCMU}a=ice-ufrag:x\r\n")), "i").await;
        assert!(ice.str("error-reason").unwrap().contains("ICE"));
        let no_sdp = ask(&offer(PCMU).with("sdp", Value::List(vec![])), "i").await;
        assert_eq!(no_sdp.str("result"), Some("error"));
        // An answer for a call nobody offered: cheap, no state.
        let answer = Dict::new()
            .with("command", "answer")
            .with("call-id", "nobody")
            .with("from-tag", "f")
            .with("to-tag", "t")
            .with("sdp", PCMU);
        assert_eq!(
            ask(&answer, "i").await.str("error-reason"),
            Some(reasons::UNKNOWN_CALL_ID)
        );
        let no_to_tag = answer.clone().with("call-id", "x");
        let mut d = Dict::new();
        for (k, v) in no_to_tag.iter() {
            if k != b"to-tag" {
                d.push(std::str::from_utf8(k).unwrap(), v.clone());
            }
        }
        assert_eq!(
            ask(&d, "i").await.str("error-reason"),
            Some("No to-tag in message")
        );
    }
}
