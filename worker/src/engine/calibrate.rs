//! Startup calibration: how much of a core one two-way session costs on this machine, measured by
//! running a real session over a second of synthetic voice-band audio. It is the capacity estimate
//! until live busy time per session replaces it.

use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusEncoder, SampleRate};
use bridgepool_codecs::rtp::RtpHeader;

use crate::session::{Channel, Leg, MAX_DATAGRAM, Session, SessionConfig, StreamSeed};

/// Frames of 20 ms per direction in one calibration pass (one second of call).
const FRAMES: usize = 50;

/// Core share one session costs (e.g. 0.005 = 0.5 % of a core), the best of three passes.
pub(crate) fn session_cost() -> f64 {
    let (a, b) = packets();
    (0..3)
        .map(|_| one_pass(&a, &b))
        .fold(f64::MAX, f64::min)
        .max(1e-4)
}

fn one_pass(a: &[Vec<u8>], b: &[Vec<u8>]) -> f64 {
    let seed = StreamSeed {
        ssrc: 1,
        sequence: 1,
        timestamp: 1,
    };
    let t0 = Instant::now();
    let Ok(mut session) = Session::new(SessionConfig::new(Law::Ulaw, seed, seed), t0) else {
        return 0.01;
    };
    session.answer(t0);
    let mut buf = [0u8; MAX_DATAGRAM];
    let started = Instant::now();
    for (i, (pa, pb)) in a.iter().zip(b).enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        session.handle_datagram(now, Leg::A, Channel::Rtp, pa);
        session.handle_datagram(now, Leg::B, Channel::Rtp, pb);
        if let Some(t) = session.poll_timeout().filter(|t| *t <= now) {
            session.handle_timeout(t);
        }
        while session.poll_transmit(&mut buf).is_some() {}
    }
    started.elapsed().as_secs_f64() / (FRAMES as f64 * 0.020)
}

/// A second of voice-band audio as PCMU packets and as Opus packets.
fn packets() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let pcm: Vec<i16> = (0..FRAMES * 160)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let envelope = 0.5 + 0.5 * (t * 3.0 * std::f64::consts::TAU).sin();
            let voice = (t * 220.0 * std::f64::consts::TAU).sin() * 0.6
                + (t * 660.0 * std::f64::consts::TAU).sin() * 0.3
                + (t * 1870.0 * std::f64::consts::TAU).sin() * 0.1;
            (voice * envelope * 12_000.0) as i16
        })
        .collect();
    let mut encoder = OpusEncoder::new(&EncoderConfig {
        sample_rate: SampleRate::Hz8000,
        ..EncoderConfig::default()
    })
    .ok();
    let mut a = Vec::with_capacity(FRAMES);
    let mut b = Vec::with_capacity(FRAMES);
    for (i, frame) in pcm.chunks_exact(160).enumerate() {
        let header = |pt: u8, ts: u32| RtpHeader {
            marker: i == 0,
            payload_type: pt,
            sequence_number: i as u16,
            timestamp: ts,
            ssrc: 9,
        };
        let mut pa = vec![0u8; 12 + 160];
        let _ = header(0, (i * 160) as u32).write(&mut pa);
        Law::Ulaw.encode(frame, &mut pa[12..]);
        a.push(pa);
        let mut pb = vec![0u8; 12 + 400];
        let _ = header(111, (i * 960) as u32).write(&mut pb);
        let n = encoder
            .as_mut()
            .and_then(|e| e.encode(frame, &mut pb[12..]).ok())
            .unwrap_or(0);
        pb.truncate(12 + n);
        b.push(pb);
    }
    (a, b)
}
