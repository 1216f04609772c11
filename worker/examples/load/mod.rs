//! What the worker's load benches share: the talker they play, the session they ask for, and
//! reading the worker's `/metrics`.
#![allow(dead_code)] // each bench uses its own part

use std::net::SocketAddr;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusEncoder};
use bridgepool_proto::v1;

/// Two seconds of a pitched, formant-shaped talker as PCMU payloads and as WebRTC-client Opus
/// payloads (48 kHz fullband), looped by the players.
pub(crate) fn media() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let pcm48: Vec<i16> = (0..48_000 * 2)
        .map(|n| {
            let t = n as f64 / 48_000.0;
            let env = (t * 4.0 * std::f64::consts::PI).sin().abs();
            let f0 = 120.0 + 30.0 * (t * 1.7).sin();
            let v: f64 = (1..30)
                .map(|k| {
                    let f = f0 * k as f64;
                    let formant = (-(f - 700.0).powi(2) / 2e5).exp()
                        + 0.5 * (-(f - 1800.0).powi(2) / 4e5).exp();
                    (t * f * std::f64::consts::TAU).sin() * (0.05 + formant) / k as f64
                })
                .sum();
            (v * env * 9_000.0).clamp(-32_000.0, 32_000.0) as i16
        })
        .collect();
    let pcmu = pcm48
        .chunks_exact(960)
        .map(|f| {
            let pcm8: Vec<i16> = f.chunks_exact(6).map(|c| c[0]).collect();
            let mut out = vec![0u8; 160];
            Law::Ulaw.encode(&pcm8, &mut out);
            out
        })
        .collect();
    let mut enc = OpusEncoder::new(&EncoderConfig::webrtc_client()).expect("encoder");
    let opus = pcm48
        .chunks_exact(960)
        .map(|f| {
            let mut out = vec![0u8; 1275];
            let n = enc.encode(f, &mut out).expect("encode");
            out.truncate(n);
            out
        })
        .collect();
    (pcmu, opus)
}

pub(crate) fn request(call: &str, a: SocketAddr, b: SocketAddr) -> v1::CreateSessionRequest {
    let media = |s: SocketAddr| v1::MediaAddress {
        ip: s.ip().to_string(),
        port: u32::from(s.port()),
    };
    v1::CreateSessionRequest {
        call_id: call.to_owned(),
        leg_a: Some(v1::G711Leg {
            law: v1::G711Law::Pcmu as i32,
            payload_type: 0,
            telephone_event_pt: 101,
            ptime_ms: 20,
            remote: Some(media(a)),
            direction: v1::Direction::Sendrecv as i32,
        }),
        leg_b: Some(v1::OpusLeg {
            payload_type: 111,
            telephone_event_pt: 110,
            ptime_ms: 20,
            remote: Some(media(b)),
            direction: v1::Direction::Sendrecv as i32,
            opus: Some(v1::OpusParams {
                use_inband_fec: true,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

pub(crate) fn addr(a: &Option<v1::MediaAddress>) -> SocketAddr {
    let a = a.as_ref().expect("address");
    format!("{}:{}", a.ip, a.port).parse().expect("address")
}

pub(crate) async fn scrape(addr: &str) -> String {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut out = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
            let _ = s.read_to_string(&mut out);
        }
        out
    })
    .await
    .unwrap_or_default()
}

/// Sum of a gauge over its cores.
pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
