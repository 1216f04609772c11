//! PESQ of the Opus -> G.711 direction on virtual time under seeded Opus-leg jitter and loss,
//! jitter buffer adaptive against off, and FEC against none: the goals checked where
//! they can be without a network (the loadgen run against rtpengine is in docs/performance.md).
//! Run with `--nocapture` to see the table.

mod common;

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::EncoderConfig;
use bridgepool_worker::session::{DropReason, JitterMode, Leg};

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
    pesq_of(&speech_for(20), net, 21, mode, fec)
}

/// [`pesq`] for any 8 kHz `audio` and jitter seed.
fn pesq_of(audio: &[i16], net: &Net, seed: u64, mode: JitterMode, fec: bool) -> (f64, f64) {
    let peer = OpusPeer {
        fec,
        dtx: false,
        loss_pct: if fec { 10 } else { 0 },
        ptime_ms: 20,
    };
    let input = peer.stream(PT_B, audio, 0x99, 1, 0);
    score(audio, &input, net, seed, mode)
}

/// PESQ NB of `input` (the Opus stream of the 8 kHz `audio`) sent through `net`, and the
/// mean delay the jitter buffer added (ms).
fn score(audio: &[i16], input: &[Packet], net: &Net, seed: u64, mode: JitterMode) -> (f64, f64) {
    let arrivals = match *net {
        Net::Clean => no_delay(input),
        Net::Jitter { hi, reorder } => Jitter::new(seed, 0.3, 5, hi, reorder).apply(input),
        Net::Loss(p) => {
            let mut n = Netem::new(22);
            n.loss = p;
            n.apply(input)
        }
    };
    let mut cfg = config(Law::Ulaw);
    cfg.jitter.mode = mode;
    if let Ok(ms) = std::env::var("JB_FIXED")
        && mode == JitterMode::Adaptive
    {
        cfg.jitter.mode = JitterMode::Fixed;
        cfg.jitter.fixed_delay = Duration::from_millis(ms.parse().expect("ms"));
    }
    let mut h = Harness::new(cfg);
    play(&mut h, Leg::B, &arrivals, Duration::from_millis(300));
    let decoded = decode_g711_output(&h.rtp_to(Leg::A), Law::Ulaw, PT_A);
    let lag = similarity(audio, &decoded).lag.max(0) as usize;
    let mut aligned: Vec<i16> = decoded.into_iter().skip(lag).collect();
    aligned.resize(audio.len(), 0);
    let raw = pesq::pesq_8k(audio, &aligned).expect("pesq");
    if std::env::var_os("JB_DEBUG").is_some() {
        let jb = h.session.jitter_buffer();
        eprintln!(
            "  healing {:?} late {} delay {:?} shortened {} lengthened {}",
            h.session.healing(),
            h.session.drops(Leg::B).get(DropReason::Late),
            jb.mean_delay,
            jb.shortened_samples,
            jb.lengthened_samples
        );
    }
    (
        f64::from(pesq::score::mos_lqo(f64::from(raw))),
        h.session.jitter_buffer().mean_delay.as_secs_f64() * 1000.0,
    )
}

/// The jitter goals on what a browser sends (48 kHz fullband, no FEC on a path it
/// believes clean): 20 s of one voice, 30 % of packets 5-40 or 5-80 ms late, overtaken or not.
#[test]
fn opus_leg_jitter_keeps_the_audio() {
    let (wide, narrow) = voice_48k("en_female", 20);
    let input = ClientPeer {
        config: EncoderConfig::webrtc_client(),
    }
    .stream(PT_B, &wide, 0x99);
    let run = |net: &Net, mode| score(&narrow, &input, net, 21, mode);
    let (clean, clean_delay) = run(&Net::Clean, JitterMode::Adaptive);
    let (clean_off, _) = run(&Net::Clean, JitterMode::Off);
    eprintln!("clean: adaptive {clean:.2} ({clean_delay:.0} ms), off {clean_off:.2}");
    assert!(clean_delay < 30.0);
    for (hi, reorder) in [(40, true), (40, false), (80, true), (80, false)] {
        let net = Net::Jitter { hi, reorder };
        let (adaptive, delay) = run(&net, JitterMode::Adaptive);
        let (off, _) = run(&net, JitterMode::Off);
        eprintln!(
            "30 % +5-{hi} ms, {}: adaptive {adaptive:.2} ({delay:.0} ms), off {off:.2}",
            if reorder { "reordering" } else { "in order" }
        );
        assert!(adaptive > off, "{hi} {reorder}: {adaptive} vs off {off}");
        // The goal at 5-40 ms: within 0.2 of clean. 5-80 ms (the goal there is
        // rtpengine's score, measured on the loadgen): within 0.3. Before the buffer waited for
        // overtaken packets and steered its slack, 5-80 ms with reordering was 0.98 below clean.
        let bar = if hi == 40 { 0.2 } else { 0.3 };
        assert!(
            adaptive >= clean - bar,
            "5-{hi} ms: {adaptive} vs clean {clean}"
        );
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

/// 20 s of each test voice at 8 kHz: the two halves of `speech_8k` and the 48 kHz fixtures
/// (repeated with half a second of silence between takes).
fn voices() -> Vec<(&'static str, Vec<i16>)> {
    let long = speech_for(40);
    let mut out = vec![
        ("speech_8k a", long[..160_000].to_vec()),
        ("speech_8k b", long[160_000..].to_vec()),
    ];
    for (name, _, narrow) in wide_voices() {
        out.push((name, narrow));
    }
    out
}

/// The 48 kHz test voices, 20 s each, and the same at 8 kHz (the PESQ reference).
fn wide_voices() -> Vec<(&'static str, Vec<i16>, Vec<i16>)> {
    WIDE_VOICES
        .into_iter()
        .map(|name| {
            let (wide, narrow) = voice_48k(name, 20);
            (name, wide, narrow)
        })
        .collect()
}

const WIDE_VOICES: [&str; 5] = ["en_male", "en_female", "de_male", "es_female", "recorded"];

/// The jitter rows over every voice and three seeds (slow: about a hundred PESQ runs), for
/// tuning the buffer: `cargo test -p bridgepool-worker --test session_jitter_pesq -- --ignored
/// --nocapture jitter_matrix`. `JB_SEEDS` (default 3) and `JB_VOICES` (default all) cut it down.
#[test]
#[ignore]
fn jitter_matrix() {
    let nvoices: usize =
        std::env::var("JB_VOICES").map_or(usize::MAX, |s| s.parse().expect("JB_VOICES"));
    let peer = OpusPeer {
        fec: true,
        dtx: false,
        loss_pct: 10,
        ptime_ms: 20,
    };
    matrix(voices().into_iter().take(nvoices).map(|(name, audio)| {
        let input = peer.stream(PT_B, &audio, 0x99, 1, 0);
        (name, audio, input)
    }));
}

fn jitter_nets() -> [(&'static str, Net); 4] {
    [
        (
            "+5-40 reorder",
            Net::Jitter {
                hi: 40,
                reorder: true,
            },
        ),
        (
            "+5-40 in order",
            Net::Jitter {
                hi: 40,
                reorder: false,
            },
        ),
        (
            "+5-80 reorder",
            Net::Jitter {
                hi: 80,
                reorder: true,
            },
        ),
        (
            "+5-80 in order",
            Net::Jitter {
                hi: 80,
                reorder: false,
            },
        ),
    ]
}

/// The jitter rows with the Opus leg sent as real clients send it (48 kHz fullband WebRTC, no
/// FEC on a path it believes clean; the mobile profile with its 3 % FEC), over the 48 kHz
/// voices and `JB_SEEDS` seeds: `cargo test --release -p bridgepool-worker --test
/// session_jitter_pesq -- --ignored --nocapture client_jitter_matrix`.
#[test]
#[ignore]
fn client_jitter_matrix() {
    matrix(
        wide_voices()
            .into_iter()
            .enumerate()
            .map(|(i, (name, wide, narrow))| {
                let config = if i % 3 == 2 {
                    EncoderConfig::mobile_client()
                } else {
                    EncoderConfig::webrtc_client()
                };
                (
                    name,
                    narrow,
                    ClientPeer { config }.stream(PT_B, &wide, 0x99),
                )
            }),
    );
}

/// Scores each `(voice, 8 kHz reference, Opus stream)` clean and through every jitter row on
/// `JB_SEEDS` patterns (default 3), printing a line per voice and the means.
fn matrix(runs: impl Iterator<Item = (&'static str, Vec<i16>, Vec<Packet>)>) {
    let seeds: u64 = std::env::var("JB_SEEDS").map_or(3, |s| s.parse().expect("JB_SEEDS"));
    let nets = jitter_nets();
    let mut sums = vec![(0.0, 0.0, 0.0); nets.len()];
    let mut count = 0.0;
    for (name, narrow, input) in runs {
        let (clean, clean_delay) = score(&narrow, &input, &Net::Clean, 1, JitterMode::Adaptive);
        let mut line = format!("{name:12} clean {clean:.2} ({clean_delay:.0} ms)");
        for seed in 0..seeds {
            for (j, (label, net)) in nets.iter().enumerate() {
                let (q, d) = score(&narrow, &input, net, 21 + seed, JitterMode::Adaptive);
                line += &format!(" | {label} s{seed} {q:.2} ({d:.0})");
                sums[j].0 += q;
                sums[j].1 += q - clean;
                sums[j].2 += d;
            }
            count += 1.0;
        }
        eprintln!("{line}");
    }
    print_means(&nets, &sums, count);
}

fn print_means(nets: &[(&str, Net)], sums: &[(f64, f64, f64)], count: f64) {
    for ((label, _), (q, dq, d)) in nets.iter().zip(sums) {
        eprintln!(
            "mean {label}: {:.3} (vs clean {:+.3}), delay {:.0} ms",
            q / count,
            dq / count,
            d / count
        );
    }
}
