//! Call figures in rtpengine's reply shape (ng doc `query`; what Kamailio's `$rtpestat` and
//! `mos_*` read): `created`, `last signal`, `tags{tag:{tag, label, created, in dialogue with,
//! medias[{index, type, protocol, streams[{local port, endpoint, stats, SSRC}]}]}}`,
//! `totals{RTP, RTCP}` and `SSRC{n: {average/lowest/highest MOS}}`.

use bridgepool_ng::{Dict, Value};
use bridgepool_proto::v1;

use super::calls::{Found, unix_now};
use super::legs::Leg;

fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// One MOS report as rtpengine writes it (MOS x 10, jitter in ms, loss in percent, RTT in us).
fn mos_report(leg: &v1::LegStats, now: u64) -> Dict {
    let expected = leg.packets_in + leg.packets_lost;
    let loss = (leg.packets_lost * 100).checked_div(expected).unwrap_or(0);
    Dict::new()
        .with("MOS", int((leg.mos * 10.0).round().max(0.0) as u64))
        .with(
            "round-trip time",
            int((leg.rtt_ms * 1000.0).max(0.0) as u64),
        )
        .with("jitter", int(leg.jitter_ms.max(0.0) as u64))
        .with("packet loss", int(loss))
        .with("reported at", int(now))
}

fn stream(port: u32, leg: &v1::LegStats, remote: Option<std::net::SocketAddr>, ssrc: i64) -> Dict {
    let mut s = Dict::new().with("local port", port);
    if let Some(r) = remote {
        let endpoint = Dict::new()
            .with("family", if r.is_ipv4() { "IPv4" } else { "IPv6" })
            .with("address", r.ip().to_string())
            .with("port", r.port());
        s.push("endpoint", endpoint.clone());
        s.push("advertised endpoint", endpoint);
    }
    s.with(
        "stats",
        Dict::new()
            .with("packets", int(leg.packets_in))
            .with("bytes", int(leg.bytes_in))
            .with("errors", int(leg.packets_dropped)),
    )
    .with("SSRC", ssrc)
}

/// The reply body of `query`, or of `delete` with final figures.
pub(super) fn call_figures(found: &[(Found, v1::LegStats, v1::LegStats)]) -> Dict {
    let now = unix_now();
    let mut tags = Dict::new();
    let mut ssrcs = Dict::new();
    let (mut packets, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut created = now;
    let mut last_signal = now;
    for (n, (f, a, b)) in found.iter().enumerate() {
        let call = f.call.as_ref();
        if let Some(c) = call {
            created = c.created;
            last_signal = c.last_signal;
        }
        let from_leg = call.map_or(Leg::A, |c| c.from_leg);
        for (i, tag) in [&f.tags.0, &f.tags.1].into_iter().enumerate() {
            let leg = if i == 0 { from_leg } else { from_leg.other() };
            let (stats, port) = match (leg, call) {
                (Leg::A, Some(c)) => (a, u32::from(c.leg_a_local.port())),
                (Leg::B, Some(c)) => (b, u32::from(c.leg_b_local.port())),
                (Leg::A, None) => (a, 0),
                (Leg::B, None) => (b, 0),
            };
            let ssrc = i64::try_from(2 * n + i + 1).unwrap_or(0);
            let remote = call.and_then(|c| c.remotes[leg as usize]);
            let media = Dict::new()
                .with("index", 1i64)
                .with("type", "audio")
                .with("protocol", "RTP/AVP")
                .with(
                    "streams",
                    vec![Value::Dict(stream(port, stats, remote, ssrc))],
                );
            let label = call
                .and_then(|c| c.labels.iter().find(|(t, _)| t == tag))
                .map(|(_, l)| l.clone())
                .unwrap_or_default();
            let other = if i == 0 { &f.tags.1 } else { &f.tags.0 };
            let mut entry = Dict::new()
                .with("tag", tag.as_str())
                .with("label", label)
                .with("created", int(created));
            if !other.is_empty() {
                entry.push("in dialogue with", other.as_str());
            }
            if !tag.is_empty() {
                tags.push(tag, entry.with("medias", vec![Value::Dict(media)]));
            }
            let report = mos_report(stats, now);
            ssrcs.push(
                &ssrc.to_string(),
                Dict::new()
                    .with("average MOS", report.clone())
                    .with("lowest MOS", report.clone())
                    .with("highest MOS", report),
            );
            packets += stats.packets_in;
            bytes += stats.bytes_in;
            errors += stats.packets_dropped;
        }
    }
    let zero = Dict::new()
        .with("packets", 0i64)
        .with("bytes", 0i64)
        .with("errors", 0i64);
    let rtp = Dict::new()
        .with("packets", int(packets))
        .with("bytes", int(bytes))
        .with("errors", int(errors));
    bridgepool_ng::reply::ok()
        .with("created", int(created))
        .with("last signal", int(last_signal))
        .with("tags", tags)
        .with("totals", Dict::new().with("RTP", rtp).with("RTCP", zero))
        .with("SSRC", ssrcs)
}
