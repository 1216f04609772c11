//! A whole session, both directions, per 20 ms frame: one PCMU packet in on leg A (decode,
//! Opus encode at 8 kHz, packetize toward B) and one Opus packet in on leg B (decode to 8 kHz,
//! G.711 encode, packetize toward A), at Opus complexity 0, 5 and 10; and, in the same run, the
//! codec-only work of the same frame (G.711 decode + Opus encode, Opus decode + G.711 encode), so
//! the session's overhead over the codec-only ceiling is a ratio measured on one core at once.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusDecoder, OpusEncoder, SampleRate};
use bridgepool_codecs::rtp::RtpHeader;
use bridgepool_worker::session::{
    Channel, JitterMode, Leg, MAX_DATAGRAM, Session, SessionConfig, StreamSeed,
    TRANSCODER_APPLICATION,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// Codec states cycled through in the density-like codec-only figure.
const CALLS: usize = 200;

fn speech() -> Vec<i16> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/speech_8k.wav"
    );
    let mut r = hound::WavReader::open(path).expect("speech sample");
    r.samples::<i16>()
        .take(80_000)
        .map(|s| s.expect("sample"))
        .collect()
}

fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 12 + payload.len()];
    RtpHeader {
        marker: false,
        payload_type: pt,
        sequence_number: seq,
        timestamp: ts,
        ssrc: 7,
    }
    .write(&mut p)
    .expect("header");
    p[12..].copy_from_slice(payload);
    p
}

/// An encoder with the session's settings and a decoder to 8 kHz.
fn codecs(complexity: u8) -> (OpusEncoder, OpusDecoder) {
    let encoder = OpusEncoder::new(&EncoderConfig {
        complexity,
        application: TRANSCODER_APPLICATION,
        ..EncoderConfig::default()
    })
    .expect("encoder");
    (
        encoder,
        OpusDecoder::new(SampleRate::Hz8000).expect("decoder"),
    )
}

/// Buffers for the codec-only frame.
struct Scratch {
    linear: [i16; 960],
    g711_out: [u8; 160],
    opus_out: [u8; 1500],
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            linear: [0; 960],
            g711_out: [0; 160],
            opus_out: [0; 1500],
        }
    }
}

impl Scratch {
    /// The four codec calls of a two-way frame: G.711 decode + Opus encode, Opus decode +
    /// G.711 encode.
    fn frame(&mut self, enc: &mut OpusEncoder, dec: &mut OpusDecoder, g711: &[u8], opus: &[u8]) {
        Law::Ulaw.decode(black_box(g711), &mut self.linear[..160]);
        let n = enc.encode(&self.linear[..160], &mut self.opus_out);
        black_box(n.expect("encode"));
        let k = dec
            .decode(black_box(opus), &mut self.linear)
            .expect("decode");
        Law::Ulaw.encode(&self.linear[..k], &mut self.g711_out);
        black_box(&self.g711_out);
    }
}

fn bench(c: &mut Criterion) {
    let pcm = speech();
    let mut opus_peer = OpusEncoder::new(&EncoderConfig::default()).expect("encoder");
    let mut buf = [0u8; 1500];
    let (mut a_payloads, mut b_payloads) = (Vec::new(), Vec::new());
    for frame in pcm.chunks_exact(160) {
        let mut g = vec![0u8; 160];
        Law::Ulaw.encode(frame, &mut g);
        a_payloads.push(g);
        let n = opus_peer.encode(frame, &mut buf).expect("encode");
        b_payloads.push(buf[..n].to_vec());
    }
    let seed = StreamSeed {
        ssrc: 1,
        sequence: 1,
        timestamp: 1,
    };
    for complexity in [0u8, 5, 10] {
        let (mut encoder, mut decoder) = codecs(complexity);
        let mut scratch = Scratch::default();
        let mut n: usize = 0;
        c.bench_function(&format!("codec_only/frame_both_ways/c{complexity}"), |b| {
            b.iter(|| {
                let i = n % a_payloads.len();
                scratch.frame(&mut encoder, &mut decoder, &a_payloads[i], &b_payloads[i]);
                n += 1;
            })
        });
        // The same work spread over CALLS codec states in turn, as a core at density runs it,
        // whose states no longer fit the caches: does that cost more than one hot state?
        // (Measured: no, within noise; docs/performance.md.)
        let mut calls: Vec<(OpusEncoder, OpusDecoder)> =
            (0..CALLS).map(|_| codecs(complexity)).collect();
        let mut n: usize = 0;
        c.bench_function(
            &format!("codec_only/frame_both_ways_{CALLS}_calls/c{complexity}"),
            |b| {
                b.iter(|| {
                    let call = n % CALLS;
                    let (encoder, decoder) = &mut calls[call];
                    // Each call at its own place in the speech, as real calls are: the same
                    // frame through 200 codecs in a row would keep branches and data warm.
                    let i = (n / CALLS + call * 37) % a_payloads.len();
                    scratch.frame(encoder, decoder, &a_payloads[i], &b_payloads[i]);
                    n += 1;
                })
            },
        );
        drop(calls);
        let mut config = SessionConfig::new(Law::Ulaw, seed, seed);
        config.leg_b.encoder.complexity = complexity;
        let t0 = Instant::now();
        let mut session = Session::new(config, t0).expect("session");
        session.answer(t0);
        let mut out = [0u8; MAX_DATAGRAM];
        let mut n: u64 = 0;
        c.bench_function(&format!("session/frame_both_ways/c{complexity}"), |b| {
            b.iter(|| {
                let i = (n as usize) % a_payloads.len();
                let now = t0 + Duration::from_millis(20 * n);
                let seq = n as u16;
                let pa = packet(0, seq, (n * 160) as u32, &a_payloads[i]);
                let pb = packet(111, seq, (n * 960) as u32, &b_payloads[i]);
                session.handle_datagram(now, Leg::A, Channel::Rtp, black_box(&pa));
                session.handle_datagram(now, Leg::B, Channel::Rtp, black_box(&pb));
                if session.poll_timeout().is_some_and(|t| t <= now) {
                    session.handle_timeout(now);
                }
                while let Some(t) = session.poll_transmit(&mut out) {
                    black_box(t);
                }
                n += 1;
            })
        });
    }
}

/// The jitter buffer's cost on a clean network: the transcoder's session (complexity 0) with the
/// buffer off (audio leaves as it arrives) and adaptive (a frame per tick, the delay measured and
/// steered), in one run, so the ratio is taken under the same conditions.
fn jitter_buffer_cost(c: &mut Criterion) {
    let pcm = speech();
    let mut opus_peer = OpusEncoder::new(&EncoderConfig::default()).expect("encoder");
    let mut buf = [0u8; 1500];
    let (mut a_payloads, mut b_payloads) = (Vec::new(), Vec::new());
    for frame in pcm.chunks_exact(160) {
        let mut g = vec![0u8; 160];
        Law::Ulaw.encode(frame, &mut g);
        a_payloads.push(g);
        let n = opus_peer.encode(frame, &mut buf).expect("encode");
        b_payloads.push(buf[..n].to_vec());
    }
    let seed = StreamSeed {
        ssrc: 1,
        sequence: 1,
        timestamp: 1,
    };
    for (name, mode) in [("off", JitterMode::Off), ("adaptive", JitterMode::Adaptive)] {
        let mut config = SessionConfig::new(Law::Ulaw, seed, seed);
        config.jitter.mode = mode;
        let t0 = Instant::now();
        let mut session = Session::new(config, t0).expect("session");
        session.answer(t0);
        let mut out = [0u8; MAX_DATAGRAM];
        let mut n: u64 = 0;
        c.bench_function(&format!("session_jitter/{name}/c0"), |b| {
            b.iter(|| {
                let i = (n as usize) % a_payloads.len();
                let now = t0 + Duration::from_millis(20 * n);
                let seq = n as u16;
                let pa = packet(0, seq, (n * 160) as u32, &a_payloads[i]);
                let pb = packet(111, seq, (n * 960) as u32, &b_payloads[i]);
                session.handle_datagram(now, Leg::A, Channel::Rtp, black_box(&pa));
                session.handle_datagram(now, Leg::B, Channel::Rtp, black_box(&pb));
                // Bounded: a timer that did not move would otherwise spin the bench.
                for _ in 0..4 {
                    if session.poll_timeout().is_none_or(|t| t > now) {
                        break;
                    }
                    session.handle_timeout(now);
                }
                while let Some(t) = session.poll_transmit(&mut out) {
                    black_box(t);
                }
                n += 1;
            })
        });
    }
}

criterion_group!(benches, bench, jitter_buffer_cost);
criterion_main!(benches);
