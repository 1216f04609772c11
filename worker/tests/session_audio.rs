//! Scenario tests on virtual time: real speech through a Session, both directions, with the
//! network misbehaving, checked for audio and for the RTP rules.
// Tests stand outside the session: they may read the clock to get a base instant.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_worker::session::{DropReason, Leg, SessionEvent};
use common::*;

const PT_A: u8 = 0;
const PT_B: u8 = 111;
const MIN_CORRELATION: f64 = 0.85;

#[test]
fn pcmu_to_opus_keeps_audio_and_48k_timestamps() {
    let audio = speech_for(60);
    let mut h = Harness::new(config(Law::Ulaw));
    let input = g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x1111, 100, 1234);
    play(
        &mut h,
        Leg::A,
        &no_delay(&input),
        Duration::from_millis(100),
    );

    let out = h.rtp_to(Leg::B);
    assert_eq!(out.len(), input.len(), "one Opus packet per 20 ms");
    let steps = check_stream_rules(&out, PT_B);
    assert_eq!(steps, vec![960], "Opus RTP clock is 48 kHz: 960 per 20 ms");
    assert!(
        out[0].rtp().marker(),
        "first packet of the talkspurt is marked"
    );
    assert!(out.iter().skip(1).all(|s| !s.rtp().marker()));
    assert_eq!(out[0].rtp().ssrc(), h.session.ssrc(Leg::B));

    let decoded = decode_opus_output(&out, PT_B);
    let sim = similarity(&audio, &decoded);
    assert!(sim.correlation > MIN_CORRELATION, "{sim:?}");
    let stats = h.session.stats(Leg::A);
    assert_eq!(stats.packets_in, input.len() as u64);
    assert_eq!(stats.packets_lost, 0);
    assert_eq!(h.session.stats(Leg::B).packets_out, out.len() as u64);
}

#[test]
fn opus_to_pcma_is_continuous_and_intelligible() {
    let audio = speech_for(60);
    let mut cfg = config(Law::Alaw);
    cfg.leg_a.payload_type = 8;
    let mut h = Harness::new(cfg);
    let peer = OpusPeer {
        fec: true,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    };
    let input = peer.stream(PT_B, &audio, 0x2222, 65_530, 0xFFFF_0000);
    // The tail lets the jitter buffer's one packet in hand leave.
    play(&mut h, Leg::B, &no_delay(&input), Duration::from_millis(40));

    let out = h.rtp_to(Leg::A);
    let steps = check_stream_rules(&out, 8);
    assert_eq!(steps, vec![160], "G.711 at 8 kHz: 160 per 20 ms");
    assert!(out.len() >= input.len(), "{} < {}", out.len(), input.len());
    let decoded = decode_g711_output(&out, Law::Alaw, 8);
    let sim = similarity(&audio, &decoded);
    assert!(sim.correlation > MIN_CORRELATION, "{sim:?}");
    assert_eq!(h.session.stats(Leg::B).packets_lost, 0);
}

#[test]
fn opus_loss_is_healed_by_fec_then_plc_without_gaps() {
    let audio = speech_for(60);
    let run = |fec: bool| {
        let mut h = Harness::new(config(Law::Ulaw));
        let peer = OpusPeer {
            fec,
            dtx: false,
            loss_pct: 10,
            ptime_ms: 20,
        };
        let input = peer.stream(PT_B, &audio, 0x3333, 1, 0);
        let mut net = Netem::new(7);
        net.loss = 0.05;
        play(
            &mut h,
            Leg::B,
            &net.apply(&input),
            Duration::from_millis(10),
        );
        let out = h.rtp_to(Leg::A);
        // Continuity: every 20 ms of the call has a G.711 packet, loss or not.
        let steps = check_stream_rules(&out, PT_A);
        assert_eq!(steps, vec![160]);
        assert!(
            out.len() as f64 >= input.len() as f64 * 0.995,
            "gaps in the G.711 stream"
        );
        let decoded = decode_g711_output(&out, Law::Ulaw, PT_A);
        let sim = similarity(&audio, &decoded);
        (
            sim.correlation,
            h.session.healing(),
            h.session.stats(Leg::B).packets_lost,
        )
    };
    let (corr_fec, (fec_frames, _, _), lost) = run(true);
    assert!(lost > 0);
    assert!(
        fec_frames > lost / 2,
        "FEC recovered {fec_frames} of {lost}"
    );
    let (corr_plc, (fec_none, concealed, _), _) = run(false);
    assert_eq!(fec_none, 0);
    assert!(concealed > 0);
    assert!(corr_fec > 0.7 && corr_plc > 0.6, "{corr_fec} {corr_plc}");
    assert!(
        corr_fec > corr_plc,
        "FEC {corr_fec} should beat PLC {corr_plc}"
    );
}

#[test]
fn opus_dtx_becomes_a_continuous_g711_stream() {
    // Speech with long pauses: one second of speech, two of silence, repeated.
    let speech = speech_for(10);
    let mut audio = Vec::new();
    for chunk in speech.chunks(8000).take(6) {
        audio.extend_from_slice(chunk);
        audio.extend(std::iter::repeat_n(0i16, 16_000));
    }
    let mut h = Harness::new(config(Law::Ulaw));
    let peer = OpusPeer {
        fec: false,
        dtx: true,
        loss_pct: 0,
        ptime_ms: 20,
    };
    let input = peer.stream(PT_B, &audio, 0x4444, 1, 0);
    let frames = audio.len() / 160;
    assert!(
        input.len() < frames * 3 / 4,
        "DTX should have suppressed frames"
    );
    play(&mut h, Leg::B, &no_delay(&input), Duration::from_millis(10));
    // The call lasts until the peer's last packet (DTX still sends one every 400 ms).
    let frames = (input.last().unwrap().send_at.as_millis() / 20) as usize + 1;
    let out = h.rtp_to(Leg::A);
    check_stream_rules(&out, PT_A);
    // Continuous: the output covers the whole call at one packet per 20 ms.
    let span = out
        .last()
        .unwrap()
        .rtp()
        .timestamp()
        .wrapping_sub(out[0].rtp().timestamp())
        / 160;
    assert_eq!(span as usize + 1, out.len(), "no timestamp gaps");
    assert!(
        out.len() + 3 >= frames,
        "{} packets for {frames} frames",
        out.len()
    );
    let decoded = decode_g711_output(&out, Law::Ulaw, PT_A);
    let sim = similarity(&audio, &decoded);
    assert!(sim.correlation > 0.75, "{sim:?}");
}

#[test]
fn any_input_ptime_is_repacketized_also_mid_call() {
    // 3 x 3.6 s: a whole number of 10, 30 and 60 ms packets each.
    let audio: Vec<i16> = speech_for(11)[..3 * 28_800].to_vec();
    let mut h = Harness::new(config(Law::Ulaw));
    // 10, 30 and 60 ms in turn, on one stream: timestamps and sequence continue.
    let mut arrivals = Vec::new();
    let mut seq = 10u16;
    let mut ts = 0u32;
    let mut t = Duration::ZERO;
    for (part, ptime) in audio.chunks(28_800).zip([10usize, 30, 60]) {
        for p in g711_stream(Law::Ulaw, PT_A, part, ptime, 0x5555, seq, ts) {
            arrivals.push((t + p.send_at + Duration::from_millis(2), p.bytes));
        }
        let n = part.len() / (ptime * 8);
        seq = seq.wrapping_add(n as u16);
        ts = ts.wrapping_add(part.len() as u32);
        t += Duration::from_millis((part.len() / 8) as u64);
    }
    play(&mut h, Leg::A, &arrivals, Duration::from_millis(100));
    let out = h.rtp_to(Leg::B);
    let steps = check_stream_rules(&out, PT_B);
    assert_eq!(steps, vec![960], "always 20 ms Opus packets");
    assert_eq!(out.len(), audio.len() / 160);
    let sim = similarity(&audio, &decode_opus_output(&out, PT_B));
    assert!(sim.correlation > MIN_CORRELATION, "{sim:?}");
}

#[test]
fn output_ptime_change_by_reinvite() {
    let audio = speech_for(8);
    let mut h = Harness::new(config(Law::Ulaw));
    let input = no_delay(&g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x6666, 1, 0));
    let (first, second) = input.split_at(input.len() / 2);
    play(&mut h, Leg::A, first, Duration::ZERO);
    let before = h.rtp_to(Leg::B).len();
    let mut cfg = h.session.config().clone();
    cfg.leg_b.ptime = Duration::from_millis(60);
    h.session.update(h.now, cfg).expect("update");
    play(&mut h, Leg::A, second, Duration::from_millis(100));
    let out = h.rtp_to(Leg::B);
    check_stream_rules(&out, PT_B);
    let later: Vec<u32> = out[before + 1..]
        .windows(2)
        .map(|w| w[1].rtp().timestamp().wrapping_sub(w[0].rtp().timestamp()))
        .collect();
    assert!(
        later.iter().all(|s| *s == 2880),
        "60 ms at 48 kHz after the change: {later:?}"
    );
}

#[test]
fn ssrc_change_resets_input_not_output() {
    let audio = speech_for(10);
    let mut h = Harness::new(config(Law::Ulaw));
    let half = audio.len() / 2;
    let first = g711_stream(Law::Ulaw, PT_A, &audio[..half], 20, 0xAAAA, 500, 90_000);
    let mut second = g711_stream(Law::Ulaw, PT_A, &audio[half..], 20, 0xBBBB, 7, 12);
    let offset = Duration::from_millis((half / 8) as u64);
    for p in &mut second {
        p.send_at += offset;
    }
    let mut arrivals = no_delay(&first);
    arrivals.extend(no_delay(&second));
    play(&mut h, Leg::A, &arrivals, Duration::from_millis(100));

    let out = h.rtp_to(Leg::B);
    check_stream_rules(&out, PT_B);
    assert!(h.events.contains(&SessionEvent::SsrcChanged {
        leg: Leg::A,
        ssrc: 0xBBBB
    }));
    let sim = similarity(&audio, &decode_opus_output(&out, PT_B));
    assert!(sim.correlation > MIN_CORRELATION, "{sim:?}");
}

#[test]
fn reordering_duplicates_and_wraparound_are_absorbed() {
    let audio = speech_for(30);
    let mut h = Harness::new(config(Law::Ulaw));
    let input = g711_stream(
        Law::Ulaw,
        PT_A,
        &audio,
        20,
        0x7777,
        65_200,
        u32::MAX - 20_000,
    );
    let mut net = Netem::new(11);
    net.jitter_ms = 25;
    net.duplicate = 0.02;
    let arrivals = net.apply(&input);
    play(&mut h, Leg::A, &arrivals, Duration::from_millis(200));
    let out = h.rtp_to(Leg::B);
    let steps = check_stream_rules(&out, PT_B);
    assert_eq!(steps, vec![960]);
    let stats = h.session.stats(Leg::A);
    assert!(stats.drops.get(DropReason::Duplicate) > 0);
    assert!(
        stats.jitter > Duration::from_millis(2),
        "{:?}",
        stats.jitter
    );
    assert_eq!(
        stats.packets_in,
        input.len() as u64,
        "every packet delivered once"
    );
    let sim = similarity(&audio, &decode_opus_output(&out, PT_B));
    assert!(sim.correlation > MIN_CORRELATION, "{sim:?}");
}

#[test]
fn late_opus_packets_are_counted_and_do_not_add_latency() {
    let audio = speech_for(20);
    let mut h = Harness::new(config(Law::Ulaw));
    let peer = OpusPeer {
        fec: false,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    };
    let input = peer.stream(PT_B, &audio, 0x8888, 1, 0);
    // Every 50th packet is 200 ms late: far past the reorder wait and the playout grace.
    let mut arrivals: Vec<(Duration, Vec<u8>)> = input
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let late = if i % 50 == 25 { 200 } else { 0 };
            (p.send_at + Duration::from_millis(5 + late), p.bytes.clone())
        })
        .collect();
    arrivals.sort_by_key(|(t, _)| *t);
    play(&mut h, Leg::B, &arrivals, Duration::from_millis(10));
    let out = h.rtp_to(Leg::A);
    check_stream_rules(&out, PT_A);
    assert!(h.session.stats(Leg::B).drops.get(DropReason::Late) >= 5);
    // Latency stays bounded: the output never runs more than a few frames ahead of real time.
    let expected = audio.len() / 160;
    assert!(
        out.len() <= expected + 5,
        "{} packets for {expected} frames",
        out.len()
    );
}
