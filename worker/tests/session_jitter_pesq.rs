//! PESQ of the Opus -> G.711 direction on virtual time under seeded Opus-leg jitter and loss,
//! jitter buffer adaptive against off, and FEC against none: the goals checked where
//! they can be without a network (the loadgen run against rtpengine is in docs/performance.md).
//! Run with `--nocapture` to see the table.

mod common;

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_worker::session::{JitterMode, Leg};

use common::*;

const PT_A: u8 = 0;
const PT_B: u8 = 111;

enum Net {
    Clean,
    Jitter { hi: u64, reorder: bool },
    Loss(f64),
}

/// PESQ NB of 20 s of speech sent by an Opus peer through `net`, out of the G.711 leg, and
/// the mean delay the jitter buffer added (ms).
fn pesq(net: &Net, mode: JitterMode, fec: bool) -> (f64, f64) {
    let audio: Vec<i16> = speech_for(20);
    let peer = OpusPeer {
        fec,
        dtx: false,
        loss_pct: if fec { 10 } else { 0 },
        ptime_ms: 20,
    };
    let input = peer.stream(PT_B, &audio, 0x99, 1, 0);
    let arrivals = match *net {
        Net::Clean => no_delay(&input),
        Net::Jitter { hi, reorder } => Jitter::new(21, 0.3, 5, hi, reorder).apply(&input),
        Net::Loss(p) => {
            let mut n = Netem::new(22);
            n.loss = p;
            n.apply(&input)
        }
    };
    let mut cfg = config(Law::Ulaw);
    cfg.jitter.mode = mode;
    let mut h = Harness::new(cfg);
    play(&mut h, Leg::B, &arrivals, Duration::from_millis(300));
    let decoded = decode_g711_output(&h.rtp_to(Leg::A), Law::Ulaw, PT_A);
    let lag = similarity(&audio, &decoded).lag.max(0) as usize;
    let mut aligned: Vec<i16> = decoded.into_iter().skip(lag).collect();
    aligned.resize(audio.len(), 0);
    let raw = pesq::pesq_8k(&audio, &aligned).expect("pesq");
    (
        f64::from(pesq::score::mos_lqo(f64::from(raw))),
        h.session.jitter_buffer().mean_delay.as_secs_f64() * 1000.0,
    )
}

#[test]
fn opus_leg_jitter_keeps_the_audio() {
    let (clean, clean_delay) = pesq(&Net::Clean, JitterMode::Adaptive, true);
    let (clean_off, _) = pesq(&Net::Clean, JitterMode::Off, true);
    eprintln!("clean: adaptive {clean:.2} ({clean_delay:.0} ms), off {clean_off:.2}");
    assert!(clean_delay < 30.0);
    for (hi, reorder) in [(40, true), (40, false), (80, true), (80, false)] {
        let net = Net::Jitter { hi, reorder };
        let (adaptive, delay) = pesq(&net, JitterMode::Adaptive, true);
        let (off, _) = pesq(&net, JitterMode::Off, true);
        eprintln!(
            "30 % +5-{hi} ms, {}: adaptive {adaptive:.2} ({delay:.0} ms), off {off:.2}",
            if reorder { "reordering" } else { "in order" }
        );
        assert!(adaptive > off, "{hi} {reorder}: {adaptive} vs off {off}");
        if hi == 40 && reorder {
            assert!(
                adaptive >= clean - 0.4,
                "5-40 ms: {adaptive} vs clean {clean}"
            );
        }
    }
}

#[test]
fn fec_gain_on_opus_leg_loss() {
    for p in [0.02, 0.05, 0.10] {
        let (with, _) = pesq(&Net::Loss(p), JitterMode::Adaptive, true);
        let (without, _) = pesq(&Net::Loss(p), JitterMode::Adaptive, false);
        eprintln!(
            "Opus leg loss {:.0} %: FEC sender {with:.2}, no FEC {without:.2}",
            p * 100.0
        );
        assert!(with > without, "{p}: FEC {with} vs {without}");
    }
}
