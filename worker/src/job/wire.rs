//! Worker-service messages to and from one-way job types.

use std::net::SocketAddr;
use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::EncoderConfig;
use bridgepool_proto::v1;

use crate::engine::JobInfo;
use crate::session::oneway::{OneWayCodec, OneWayPair};
use crate::session::{JitterBuffer, StreamSeed};

fn codec(c: &v1::Codec) -> Result<OneWayCodec, String> {
    match (c.name.to_ascii_lowercase().as_str(), c.clock_rate) {
        ("pcmu", 8000) => Ok(OneWayCodec::G711(Law::Ulaw)),
        ("pcma", 8000) => Ok(OneWayCodec::G711(Law::Alaw)),
        ("opus", 48000) => Ok(OneWayCodec::Opus),
        (name, rate) => Err(format!("codec {name}/{rate} is not supported")),
    }
}

fn pt(c: &v1::Codec) -> Result<u8, String> {
    u8::try_from(c.payload_type)
        .ok()
        .filter(|p| *p < 128)
        .ok_or_else(|| format!("payload type {} is not 0..127", c.payload_type))
}

/// The Opus encoder from the output fmtp: `maxaveragebitrate` (6000..=510000), `useinbandfec`,
/// `usedtx`. `stereo=1` is accepted but the output stays mono: the source is 8 kHz mono G.711.
fn encoder(c: &v1::Codec) -> EncoderConfig {
    let mut e = EncoderConfig::default();
    let get = |k: &str| c.fmtp.get(k).map(String::as_str);
    if let Some(b) = get("maxaveragebitrate").and_then(|b| b.parse::<i32>().ok()) {
        e.bitrate = b.clamp(6000, 510_000);
    }
    if let Some(f) = get("useinbandfec") {
        e.inband_fec = f == "1";
    }
    if let Some(d) = get("usedtx") {
        e.dtx = d == "1";
    }
    e
}

/// A random output stream start (SipHash keyed at random per call: no RNG dependency needed).
fn seed() -> StreamSeed {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    StreamSeed {
        ssrc: (r >> 32) as u32,
        sequence: (r >> 16) as u16,
        timestamp: r as u32 & 0x7fff_ffff,
    }
}

/// The pairs of a CreateJob.
pub(super) fn pairs(wire: &[v1::JobPair], jitter: JitterBuffer) -> Result<Vec<OneWayPair>, String> {
    let mut out = Vec::with_capacity(wire.len());
    for p in wire {
        let (i, o) = match (&p.input, &p.output) {
            (Some(i), Some(o)) => (i, o),
            _ => return Err("a pair needs input and output".to_owned()),
        };
        let ptime_ms = if o.ptime_ms == 0 { 20 } else { o.ptime_ms };
        out.push(OneWayPair {
            input: codec(i)?,
            input_pt: pt(i)?,
            output: codec(o)?,
            output_pt: pt(o)?,
            ptime: Duration::from_millis(u64::from(ptime_ms)),
            encoder: encoder(o),
            seed: seed(),
            jitter,
        });
    }
    Ok(out)
}

/// The relay's destination.
pub(super) fn destination(d: Option<&v1::MediaAddress>) -> Result<SocketAddr, String> {
    let d = d.ok_or("destination is required")?;
    let ip =
        d.ip.parse()
            .map_err(|_| format!("destination ip '{}'", d.ip))?;
    let port = u16::try_from(d.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("destination port {}", d.port))?;
    Ok(SocketAddr::new(ip, port))
}

/// A job's figures on the wire.
pub(super) fn stats(j: &JobInfo) -> v1::JobStats {
    v1::JobStats {
        call_id: j.name.0.clone(),
        from_tag: j.name.1.clone(),
        packets_in: j.stats.packets_in,
        bytes_in: j.stats.bytes_in,
        packets_out: j.stats.packets_out,
        bytes_out: j.stats.bytes_out,
        errors: j.stats.errors,
        local: Some(v1::MediaAddress {
            ip: j.local.ip().to_string(),
            port: u32::from(j.local.port()),
        }),
    }
}
