//! The Opus -> G.711 jitter buffer on virtual time: it grows under jitter and shrinks when the
//! network calms, keeps its bound, never reorders or repeats audio, rides DTX, talkspurts, an
//! SSRC change and a drifting sender clock, and costs about one packet on a clean network.

mod common;

use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::EncoderConfig;
use bridgepool_codecs::quality;
use bridgepool_worker::session::{
    Channel, DropReason, JitterBuffer, JitterMode, Leg, SessionConfig,
};

use common::*;

const PT_A: u8 = 0;
const PT_B: u8 = 111;

fn peer(fec: bool, dtx: bool) -> OpusPeer {
    OpusPeer {
        fec,
        dtx,
        loss_pct: if fec { 10 } else { 0 },
        ptime_ms: 20,
    }
}

fn session(mode: JitterMode) -> Harness {
    let mut cfg: SessionConfig = config(Law::Ulaw);
    cfg.jitter.mode = mode;
    Harness::new(cfg)
}

/// Feeds arrivals one by one; after each, `probe` sees the harness (to sample the delay).
fn play_probing(
    h: &mut Harness,
    arrivals: &[(Duration, Vec<u8>)],
    tail: Duration,
    mut probe: impl FnMut(&Harness, Duration),
) {
    let t0 = h.t0;
    for (at, bytes) in arrivals {
        h.feed(t0 + *at, Leg::B, bytes);
        probe(h, *at);
    }
    let end = arrivals.last().map_or(Duration::ZERO, |(t, _)| *t) + tail;
    h.advance(t0 + end);
}

fn delay_ms(h: &Harness) -> f64 {
    h.session.jitter_buffer().delay.as_secs_f64() * 1000.0
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

/// Output quality and continuity of the G.711 stream, with the audio sent.
fn g711_similarity(h: &Harness, audio: &[i16]) -> f64 {
    let out = h.rtp_to(Leg::A);
    assert_eq!(
        check_stream_rules(&out, PT_A),
        vec![160],
        "continuous 20 ms frames"
    );
    let decoded = decode_g711_output(&out, Law::Ulaw, PT_A);
    local_similarity(audio, &decoded)
}

/// Median correlation of each 200 ms of speech in `reference` with `degraded`, each aligned on its
/// own: a jitter buffer moves the delay during the call, which a single alignment would read as
/// damage. Audio out of order or repeated still reads as damage within its second.
fn local_similarity(reference: &[i16], degraded: &[i16]) -> f64 {
    let mut all = Vec::new();
    // At a stretch the alignment moves by a pitch period: 200 ms pieces each find their own.
    const PIECE: usize = 1600;
    for start in (0..reference.len()).step_by(PIECE) {
        let seg = &reference[start..(start + PIECE).min(reference.len())];
        let energy: f64 = seg.iter().map(|&x| f64::from(x).powi(2)).sum();
        if energy < 1e5 * seg.len() as f64 || seg.len() < PIECE {
            continue;
        }
        let from = start.saturating_sub(800).min(degraded.len());
        let to = (start + PIECE + 4000).min(degraded.len());
        all.push(quality::align_and_compare(seg, &degraded[from..to], 4000).correlation);
    }
    // The median: a second that is mostly pause aligns by chance.
    all.sort_by(f64::total_cmp);
    all.get(all.len() / 2).copied().unwrap_or(0.0)
}

#[test]
fn clean_network_adds_about_one_packet() {
    let audio = speech_for(30);
    let input = peer(true, false).stream(PT_B, &audio, 0x51, 1, 0);
    let mut h = session(JitterMode::Adaptive);
    let mut delays = Vec::new();
    play_probing(
        &mut h,
        &no_delay(&input),
        Duration::from_millis(30),
        |h, _| {
            delays.push(delay_ms(h));
        },
    );
    let p95 = p95(delays);
    assert!(p95 < 30.0, "clean p95 delay {p95} ms");
    assert!(g711_similarity(&h, &audio) > 0.9);
    let (_, concealed, skipped) = h.session.healing();
    assert_eq!((concealed, skipped), (0, 0), "nothing concealed or skipped");
}

#[test]
fn grows_under_jitter_keeps_the_audio_and_shrinks_when_clean() {
    let audio = speech_for(120);
    let input = peer(true, false).stream(PT_B, &audio, 0x52, 1, 0);
    // The first minute 30 % of packets arrive 5-40 ms late and may be overtaken; then clean.
    let (rough, calm) = input.split_at(input.len() / 2);
    let mut arrivals = Jitter::new(11, 0.3, 5, 40, true).apply(rough);
    arrivals.extend(no_delay(calm));
    let mut off = session(JitterMode::Off);
    play(&mut off, Leg::B, &arrivals, Duration::from_millis(300));
    let mut h = session(JitterMode::Adaptive);
    let (mut late_phase, mut clean_end) = (Vec::new(), Vec::new());
    play_probing(&mut h, &arrivals, Duration::from_millis(300), |h, at| {
        if (Duration::from_secs(30)..Duration::from_secs(60)).contains(&at) {
            late_phase.push(delay_ms(h));
        }
        if at > Duration::from_secs(100) {
            clean_end.push(delay_ms(h));
        }
    });
    let rough_median = late_phase[late_phase.len() / 2];
    assert!(rough_median >= 35.0, "delay under jitter {rough_median} ms");
    let calm_p95 = p95(clean_end);
    assert!(calm_p95 < 30.0, "delay after calm {calm_p95} ms");
    assert!(h.session.jitter_buffer().shortened_samples > 0);
    // Jittered packets are played, not replaced by concealment.
    let lost_audio = |h: &Harness| {
        let (_, concealed, skipped) = h.session.healing();
        concealed + skipped
    };
    assert!(
        lost_audio(&h) * 3 < lost_audio(&off),
        "buffered {} vs off {}",
        lost_audio(&h),
        lost_audio(&off)
    );
    // The target covers 99 % of the lateness: a few packets (and some before the estimate
    // learned the jitter) still come too late.
    let late = h.session.drops(Leg::B).total();
    assert!(late * 50 < input.len() as u64, "{late} packets too late");
    // Order kept: audio reordered or repeated would not line up with what was sent.
    let (buffered, unbuffered) = (g711_similarity(&h, &audio), g711_similarity(&off, &audio));
    assert!(buffered > 0.85, "{buffered}");
    assert!(buffered > unbuffered, "{buffered} vs off {unbuffered}");
}

#[test]
fn in_order_jitter_without_reordering_is_absorbed() {
    let audio = speech_for(40);
    let input = peer(false, false).stream(PT_B, &audio, 0x53, 1, 0);
    let arrivals = Jitter::new(12, 0.3, 5, 80, false).apply(&input);
    let mut h = session(JitterMode::Adaptive);
    play(&mut h, Leg::B, &arrivals, Duration::from_millis(300));
    let jb = h.session.jitter_buffer();
    assert!(jb.target >= Duration::from_millis(50), "{jb:?}");
    assert!(g711_similarity(&h, &audio) > 0.8);
    assert_eq!(h.session.drops(Leg::B).total(), 0);
}

/// 30 % of a browser's packets 5-80 ms late, so that later ones overtake them: a packet missing
/// behind held ones is waited for while the stream's history says it is late rather than lost
/// (its tick concealed, the packet played whole when it comes), as in order; giving it up at
/// the target dropped about 4 % of the packets as too late.
#[test]
fn overtaken_packets_are_waited_for_not_dropped() {
    let (wide, narrow) = voice_48k("en_male", 20);
    let input = ClientPeer {
        config: EncoderConfig::webrtc_client(),
    }
    .stream(PT_B, &wide, 0x58);
    let arrivals = Jitter::new(21, 0.3, 5, 80, true).apply(&input);
    let mut h = session(JitterMode::Adaptive);
    play(&mut h, Leg::B, &arrivals, Duration::from_millis(300));
    let late = h.session.drops(Leg::B).get(DropReason::Late);
    assert!(
        late * 200 < input.len() as u64,
        "{late} of {} packets given up and then dropped as late",
        input.len()
    );
    assert!(g711_similarity(&h, &narrow) > 0.85);
}

/// Loss without jitter: the missing packet is no later than any packet ever was, so it is given
/// up at its tick for the next packet's FEC, and the delay stays at one packet.
#[test]
fn loss_on_a_clean_path_is_given_up_at_once_for_fec() {
    let audio = speech_for(30);
    let input = peer(true, false).stream(PT_B, &audio, 0x59, 1, 0);
    let mut net = Netem::new(23);
    net.loss = 0.05;
    let arrivals = net.apply(&input);
    let lost = (input.len() - arrivals.len()) as u64;
    let mut h = session(JitterMode::Adaptive);
    let mut delays = Vec::new();
    play_probing(&mut h, &arrivals, Duration::from_millis(300), |h, _| {
        delays.push(delay_ms(h));
    });
    let (fec, _, _) = h.session.healing();
    // Not every packet carries FEC (libopus codes it where it pays); waiting first would leave
    // none of it usable.
    assert!(
        fec * 2 >= lost,
        "{fec} of {lost} lost packets recovered by FEC"
    );
    let p95 = p95(delays);
    assert!(p95 < 30.0, "delay p95 {p95} ms under loss alone");
}

#[test]
fn delay_stays_under_the_bound() {
    let audio = speech_for(30);
    let input = peer(true, false).stream(PT_B, &audio, 0x54, 1, 0);
    let arrivals = Jitter::new(13, 0.5, 50, 400, true).apply(&input);
    let mut cfg = config(Law::Ulaw);
    cfg.jitter.max_delay = Duration::from_millis(80);
    let mut h = Harness::new(cfg);
    let mut delays = Vec::new();
    play_probing(&mut h, &arrivals, Duration::from_millis(300), |h, _| {
        delays.push(delay_ms(h));
        assert!(h.session.jitter_buffer().target <= Duration::from_millis(80));
    });
    // A late packet played whole may overshoot for a frame or two (the next tick cuts the
    // excess): the bound holds for 99 % of frames, and no frame is far beyond it.
    let worst = delays.iter().copied().fold(0.0, f64::max);
    let mut sorted = delays.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[sorted.len() * 99 / 100];
    assert!(p99 <= 82.5, "p99 delay {p99} ms over the 80 ms bound");
    assert!(worst <= 130.0, "delay {worst} ms");
    let out = h.rtp_to(Leg::A);
    assert_eq!(check_stream_rules(&out, PT_A), vec![160]);
}

#[test]
fn dtx_talkspurts_keep_a_continuous_stream_at_the_target_delay() {
    // One second of speech, two of silence, repeated; the peer sends nothing in the silence.
    let speech = speech_for(12);
    let mut audio = Vec::new();
    for chunk in speech.chunks(8000).take(12) {
        audio.extend_from_slice(chunk);
        audio.extend(std::iter::repeat_n(0i16, 16_000));
    }
    let input = peer(false, true).stream(PT_B, &audio, 0x55, 1, 0);
    assert!(input.len() < audio.len() / 160, "DTX left gaps");
    let arrivals = Jitter::new(14, 0.3, 5, 40, true).apply(&input);
    let mut h = session(JitterMode::Adaptive);
    let mut delays = Vec::new();
    play_probing(&mut h, &arrivals, Duration::from_millis(300), |h, _| {
        delays.push(delay_ms(h));
    });
    let out = h.rtp_to(Leg::A);
    assert_eq!(check_stream_rules(&out, PT_A), vec![160]);
    // The G.711 side runs through the pauses: one frame every 20 ms.
    let span = out.last().unwrap().at - out[0].at;
    assert!(
        out.len() as u128 >= span.as_millis() / 20,
        "gaps in the output"
    );
    let worst = delays.iter().copied().fold(0.0, f64::max);
    assert!(worst <= 120.0, "talkspurt delay {worst} ms");
    assert!(g711_similarity(&h, &audio) > 0.7);
}

#[test]
fn ssrc_change_carries_on_with_the_same_output_stream() {
    let audio = speech_for(20);
    let (first, second) = audio.split_at(audio.len() / 2);
    let p = peer(true, false);
    let mut input = p.stream(PT_B, first, 0x60, 1, 0);
    let offset = Duration::from_millis((first.len() / 8) as u64);
    for mut pkt in p.stream(PT_B, second, 0x61, 40_000, 123_456_789) {
        pkt.send_at += offset;
        input.push(pkt);
    }
    let arrivals = Jitter::new(15, 0.3, 5, 40, true).apply(&input);
    let mut h = session(JitterMode::Adaptive);
    let mut worst: f64 = 0.0;
    play_probing(&mut h, &arrivals, Duration::from_millis(300), |h, _| {
        worst = worst.max(delay_ms(h));
    });
    assert!(worst <= 200.0, "{worst}");
    assert!(g711_similarity(&h, &audio) > 0.8);
    assert!(h.events.iter().any(|e| matches!(
        e,
        bridgepool_worker::session::SessionEvent::SsrcChanged { leg: Leg::B, .. }
    )));
}

/// The sender's clock runs 0.1 % fast or slow against ours for ten virtual minutes: the buffer
/// neither grows with the drift nor runs dry; it removes or adds the difference.
#[test]
fn sender_clock_drift_over_ten_minutes_stays_bounded() {
    let audio = speech_for(10);
    let payloads: Vec<Vec<u8>> = peer(true, false)
        .stream(PT_B, &audio, 0x70, 0, 0)
        .into_iter()
        .map(|p| p.bytes[12..].to_vec())
        .collect();
    for (ppm, name) in [(1000i64, "fast"), (-1000, "slow")] {
        let mut cfg = config(Law::Ulaw);
        // Only leg B talks here: the one-sided timeout must not end the call.
        cfg.timeouts.one_sided = Duration::from_secs(3600);
        let mut h = Harness::new(cfg);
        let packets = 30_000u64;
        let mut late = Vec::new();
        for i in 0..packets {
            // Sent every 20 ms of the sender's clock, which runs (1 + ppm / 10^6) ours.
            let sent_us = 20_000 * i * 1_000_000 / (1_000_000 + ppm) as u64;
            let at: Instant = h.t0 + Duration::from_micros(sent_us + 5_000);
            let payload = &payloads[i as usize % payloads.len()];
            let bytes = rtp_packet(PT_B, i as u16, (960 * i) as u32, 0x70, false, payload);
            h.feed(at, Leg::B, &bytes);
            if i > packets / 2 {
                late.push(delay_ms(&h));
            }
            if i % 500 == 0 {
                // Keep memory flat over ten minutes.
                h.sent.clear();
            }
        }
        let worst = late.iter().copied().fold(0.0, f64::max);
        // The slack moves in whole frames (it stays under the 22 ms target plus a frame) and
        // the drift, 1 ms a second, adds up between the pauses it is cut in.
        assert!(worst < 50.0, "{name} sender: delay reached {worst} ms");
        let jb = h.session.jitter_buffer();
        let (_, concealed, _) = h.session.healing();
        // 600 ms of drift is taken out (fast) or put in (slow) by stretching, not by
        // concealment runs: at most a few underruns over ten minutes.
        match name {
            "fast" => assert!(jb.shortened_samples >= 4000, "{jb:?}"),
            _ => assert!(
                jb.lengthened_samples + concealed >= 4000 && concealed < 4000,
                "{jb:?} concealed {concealed}"
            ),
        }
    }
}

#[test]
fn fixed_mode_holds_its_delay_and_off_adds_none() {
    let audio = speech_for(20);
    let input = peer(true, false).stream(PT_B, &audio, 0x80, 1, 0);
    let mut cfg = config(Law::Ulaw);
    cfg.jitter = JitterBuffer {
        mode: JitterMode::Fixed,
        max_delay: Duration::from_millis(200),
        fixed_delay: Duration::from_millis(80),
    };
    let mut h = Harness::new(cfg);
    let mut delays = Vec::new();
    play_probing(
        &mut h,
        &no_delay(&input),
        Duration::from_millis(200),
        |h, at| {
            if at > Duration::from_secs(10) {
                delays.push(delay_ms(h));
            }
        },
    );
    let median = delays[delays.len() / 2];
    assert!(
        (60.0..=100.0).contains(&median),
        "fixed 80 ms held at {median}"
    );
    let mut off = session(JitterMode::Off);
    play(
        &mut off,
        Leg::B,
        &no_delay(&input),
        Duration::from_millis(60),
    );
    assert_eq!(off.session.jitter_buffer().delay, Duration::ZERO);
    assert!(g711_similarity(&off, &audio) > 0.9);
}

#[test]
fn a_host_stall_does_not_slow_the_output_clock() {
    let audio = speech_for(4);
    let input = peer(true, false).stream(PT_B, &audio, 0x57, 1, 0);
    let arrivals = no_delay(&input);
    let mut h = session(JitterMode::Adaptive);
    let t0 = h.t0;
    let stall = Duration::from_millis(2000)..Duration::from_millis(2120);
    for (at, bytes) in &arrivals {
        if stall.contains(at) {
            continue;
        }
        if *at >= stall.end && *at < stall.end + Duration::from_millis(20) {
            // The host wakes: the datagrams queued meanwhile are read first, then the timers.
            for (_, queued) in arrivals.iter().filter(|(t, _)| stall.contains(t)) {
                h.session
                    .handle_datagram(t0 + stall.end, Leg::B, Channel::Rtp, queued);
            }
            h.now = t0 + stall.end;
            h.session.handle_timeout(h.now);
            h.collect();
        }
        h.feed(t0 + *at, Leg::B, bytes);
    }
    let end = t0 + Duration::from_millis(3990);
    h.advance(end);
    let out = h.rtp_to(Leg::A);
    let first = out.first().expect("output").at;
    let expected = (end - first).as_millis() as usize / 20 + 1;
    // Before the catch-up the clock sent one frame at the late tick and restarted from there:
    // six frames short for the rest of the call.
    assert!(
        out.len() + 1 >= expected,
        "{} frames sent, {expected} ticks",
        out.len()
    );
}
