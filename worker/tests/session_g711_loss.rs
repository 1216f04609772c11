//! Loss on the G.711 leg: concealment before the Opus encoder against leaving the gap to the
//! Opus receiver, judged by PESQ with a receiver that conceals (and uses FEC) as a browser does;
//! and the encoder told about the loss it sees, so FEC goes out when the peer asked for it.

mod common;

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{self, OpusDecoder, SampleRate};

use bridgepool_worker::session::Leg;
use common::*;

const PT_A: u8 = 0;
const PT_B: u8 = 111;

/// Decodes the Opus stream toward leg B as a receiver would: frames by timestamp, a gap filled
/// by the decoder (FEC from the packet after it when present, concealment otherwise).
fn receive(sent: &[&Sent]) -> Vec<i16> {
    let mut dec = OpusDecoder::new(SampleRate::Hz8000).expect("decoder");
    let mut out: Vec<i16> = Vec::new();
    let mut next_ts: Option<u32> = None;
    let mut pcm = [0i16; 960];
    for s in sent {
        let p = s.rtp();
        if p.payload_type() != PT_B {
            continue;
        }
        if let Some(expected) = next_ts {
            let gap = (p.timestamp().wrapping_sub(expected) / 6) as usize;
            if gap > 0 && gap < 8000 {
                let fec = if opus::packet_has_fec(p.payload()) {
                    gap.min(160)
                } else {
                    0
                };
                let mut left = gap - fec;
                while left > 0 {
                    let n = left.min(160);
                    let got = dec.conceal(&mut pcm[..n]).unwrap_or(0);
                    out.extend_from_slice(&pcm[..got.max(n).min(n)]);
                    left -= n;
                }
                if fec > 0 {
                    let got = dec.decode_fec(p.payload(), &mut pcm[..fec]).unwrap_or(0);
                    out.extend_from_slice(&pcm[..got.max(fec).min(fec)]);
                }
            }
        }
        let n = dec.decode(p.payload(), &mut pcm).expect("our Opus decodes");
        out.extend_from_slice(&pcm[..n]);
        next_ts = Some(p.timestamp().wrapping_add((n * 6) as u32));
    }
    out
}

/// PESQ NB MOS-LQO of 12 s of speech sent on the G.711 leg through `loss`, with and without
/// concealment before the encoder.
fn pesq_with_loss(loss: f64, seed: u64, plc: bool) -> f64 {
    let audio: Vec<i16> = speech().into_iter().take(12 * 8000).collect();
    let mut cfg = config(Law::Ulaw);
    cfg.g711_plc = plc;
    let mut h = Harness::new(cfg);
    let input = g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x1111, 1, 0);
    let mut net = Netem::new(seed);
    net.loss = loss;
    net.jitter_ms = 0;
    play(
        &mut h,
        Leg::A,
        &net.apply(&input),
        Duration::from_millis(100),
    );
    let degraded = receive(&h.rtp_to(Leg::B));
    let sim = similarity(&audio, &degraded);
    let lag = sim.lag.max(0) as usize;
    let mut aligned: Vec<i16> = degraded.iter().copied().skip(lag).collect();
    aligned.resize(audio.len(), 0);
    let raw = pesq::pesq_8k(&audio, &aligned).expect("pesq");
    f64::from(pesq::score::mos_lqo(f64::from(raw)))
}

#[test]
fn concealment_before_the_encoder_beats_leaving_the_gap() {
    for (loss, seed) in [(0.05, 3), (0.10, 4)] {
        let with = pesq_with_loss(loss, seed, true);
        let without = pesq_with_loss(loss, seed, false);
        eprintln!(
            "G.711 leg loss {:.0} %: PESQ NB {with:.2} with concealment, {without:.2} gap left",
            loss * 100.0
        );
        assert!(with > without, "{loss}: {with} vs {without}");
    }
}

#[test]
fn loss_seen_on_the_g711_leg_turns_fec_on() {
    let audio = speech_for(20);
    let mut h = Harness::new(config(Law::Ulaw));
    let input = g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x2222, 1, 0);
    let mut net = Netem::new(9);
    net.loss = 0.05;
    play(
        &mut h,
        Leg::A,
        &net.apply(&input),
        Duration::from_millis(100),
    );
    assert!(h.session.encoder_expected_loss() >= 2);
    assert!(h.session.g711_concealed_samples() > 0);
    let sent = h.rtp_to(Leg::B);
    let late = &sent[sent.len() / 2..];
    let with_fec = late
        .iter()
        .filter(|s| opus::packet_has_fec(s.rtp().payload()))
        .count();
    assert!(
        with_fec * 2 > late.len(),
        "FEC in {with_fec} of {} packets",
        late.len()
    );
    // No loss: no FEC spent.
    let mut clean = Harness::new(config(Law::Ulaw));
    play(
        &mut clean,
        Leg::A,
        &no_delay(&input),
        Duration::from_millis(100),
    );
    assert_eq!(clean.session.encoder_expected_loss(), 0);
}
