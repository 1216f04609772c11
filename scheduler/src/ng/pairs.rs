//! Which `transform` codec pairs the pool runs, and their wire form for the Worker service. Pure.

use bridgepool_ng::{CodecPair, CodecSpec};
use bridgepool_proto::v1;

/// The codecs a one-way job reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobCodec {
    /// G.711 mu-law, 8 kHz mono.
    Pcmu,
    /// G.711 A-law, 8 kHz mono.
    Pcma,
    /// Opus on a 48 kHz RTP clock, 1 or 2 channels in rtpmap.
    Opus,
}

/// Classifies one side of a pair; `None` for a codec, rate or channel count the pool cannot run.
pub fn classify(spec: &CodecSpec) -> Option<JobCodec> {
    let name = spec.codec.to_ascii_lowercase();
    match (name.as_str(), spec.clock_rate, spec.channels) {
        ("pcmu", 8000, 1) => Some(JobCodec::Pcmu),
        ("pcma", 8000, 1) => Some(JobCodec::Pcma),
        ("opus", 48000, 1 | 2) => Some(JobCodec::Opus),
        _ => None,
    }
}

/// Checks a pair: PCMU/PCMA -> Opus, Opus -> PCMU/PCMA, PCMU <-> PCMA. The error names the pair
/// as the `error-reason` the relay logs.
pub fn check(pair: &CodecPair) -> Result<(JobCodec, JobCodec), String> {
    let describe = |s: &CodecSpec| format!("{}/{}/{}", s.codec, s.clock_rate, s.channels);
    let unsupported = || {
        format!(
            "Unsupported codec pair {} -> {}",
            describe(&pair.input),
            describe(&pair.output)
        )
    };
    let (i, o) = (
        classify(&pair.input).ok_or_else(unsupported)?,
        classify(&pair.output).ok_or_else(unsupported)?,
    );
    if i == o {
        return Err(unsupported());
    }
    let ptime = pair.output.fmtp("ptime").map(str::parse::<u32>);
    if let Some(Err(_) | Ok(0 | 61..)) = ptime {
        return Err(format!("Unsupported ptime in '{}'", pair.output.format));
    }
    Ok((i, o))
}

/// The Worker service's form of one side: fmtp as a map; `ptime` from the fmtp (rtpengine's
/// `format` carries `ptime=N` when the output side negotiated one), else 0 (20 ms).
pub fn to_wire(spec: &CodecSpec) -> v1::Codec {
    let fmtp = spec
        .format
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect::<std::collections::HashMap<_, _>>();
    let ptime_ms = fmtp.get("ptime").and_then(|p| p.parse().ok()).unwrap_or(0);
    v1::Codec {
        name: spec.codec.clone(),
        clock_rate: spec.clock_rate,
        channels: u32::from(spec.channels),
        payload_type: u32::from(spec.payload_type),
        fmtp,
        ptime_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(codec: &str, rate: u32, ch: u8, format: &str) -> CodecSpec {
        CodecSpec {
            codec: codec.into(),
            payload_type: 0,
            clock_rate: rate,
            channels: ch,
            format: format.into(),
            options: String::new(),
        }
    }

    #[test]
    fn supported_pairs() {
        let pcmu = spec("PCMU", 8000, 1, "");
        let pcma = spec("PCMA", 8000, 1, "");
        let opus = spec("opus", 48000, 2, "useinbandfec=1");
        let mono = spec("opus", 48000, 1, "");
        for (i, o) in [
            (&pcmu, &opus),
            (&pcma, &mono),
            (&opus, &pcmu),
            (&opus, &pcma),
            (&pcmu, &pcma),
            (&pcma, &pcmu),
        ] {
            let pair = CodecPair {
                input: i.clone(),
                output: o.clone(),
            };
            assert!(check(&pair).is_ok(), "{pair:?}");
        }
        for (i, o) in [
            (&pcmu, &pcmu),
            (&opus, &opus),
            (&spec("G722", 8000, 1, ""), &pcmu),
            (&spec("PCMU", 16000, 1, ""), &opus),
            (&pcmu, &spec("opus", 48000, 2, "ptime=90")),
        ] {
            let pair = CodecPair {
                input: i.clone(),
                output: o.clone(),
            };
            assert!(check(&pair).is_err(), "{pair:?}");
        }
    }

    #[test]
    fn fmtp_goes_to_the_wire() {
        let c = to_wire(&spec(
            "opus",
            48000,
            2,
            "useinbandfec=1; maxaveragebitrate=32000;ptime=40",
        ));
        assert_eq!(c.fmtp.get("useinbandfec").map(String::as_str), Some("1"));
        assert_eq!(
            c.fmtp.get("maxaveragebitrate").map(String::as_str),
            Some("32000")
        );
        assert_eq!(c.ptime_ms, 40);
    }
}
