//! Issue 10 on virtual time: the G.711 -> Opus encoder's listening quality (PESQ), FEC and the
//! peer's fmtp honoured, a short last G.711 packet leaving on time, and audio kept off the time
//! span of RFC 4733 events relayed to the G.711 leg.
// Tests stand outside the session: they may read the clock to get a base instant.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{self, OpusDecoder, SampleRate};
use bridgepool_codecs::resample::resample_all;
use bridgepool_codecs::rtcp::{self, ReportBlock};
use bridgepool_codecs::telephone_event::TelephoneEvent;
use bridgepool_proto::v1;
use bridgepool_worker::convert;
use bridgepool_worker::session::{Leg, SessionConfig};
use common::*;

const PT_A: u8 = 0;
const TE_A: u8 = 101;
const PT_B: u8 = 111;
const TE_B: u8 = 110;

/// A session whose Opus leg is built from the peer's fmtp as the worker's gRPC service does.
fn config_from_fmtp(params: v1::OpusParams) -> SessionConfig {
    let mut c = config(Law::Ulaw);
    c.leg_b = convert::opus_leg(&v1::OpusLeg {
        payload_type: u32::from(PT_B),
        telephone_event_pt: u32::from(TE_B),
        ptime_ms: 20,
        opus: Some(params),
        ..Default::default()
    })
    .expect("valid Opus leg");
    c
}

/// Speech through leg A in real time, with an RTCP receiver report from the Opus peer claiming
/// 10 % loss at `report_at`; returns the Opus payloads sent before and after it.
fn play_with_loss_report(
    config: SessionConfig,
    report_at: Duration,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let audio = speech_for(4);
    let mut h = Harness::new(config);
    let input = g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x1111, 1, 0);
    let mut reported = false;
    for (at, bytes) in no_delay(&input) {
        if !reported && at >= report_at {
            let block = ReportBlock {
                ssrc: h.session.ssrc(Leg::B),
                fraction_lost: 26,
                cumulative_lost: 5,
                highest_seq: 50,
                jitter: 0,
                last_sr: 0,
                delay_since_last_sr: 0,
            };
            let mut buf = [0u8; 128];
            let n = rtcp::write_receiver_report(&mut buf, 0x77, &[block]).expect("RR");
            h.feed_rtcp(h.t0 + report_at, Leg::B, &buf[..n]);
            reported = true;
        }
        h.feed(h.t0 + at, Leg::A, &bytes);
    }
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for s in h.rtp_to(Leg::B) {
        let p = s.rtp();
        if p.payload_type() != PT_B {
            continue;
        }
        let side = if s.at < h.t0 + report_at {
            &mut before
        } else {
            &mut after
        };
        side.push(p.payload().to_vec());
    }
    (before, after)
}

fn fec_share(packets: &[Vec<u8>]) -> f64 {
    packets.iter().filter(|p| opus::packet_has_fec(p)).count() as f64 / packets.len() as f64
}

#[test]
fn fec_sent_when_the_peer_asked_and_loss_is_reported() {
    let asked = config_from_fmtp(v1::OpusParams {
        use_inband_fec: true,
        ..Default::default()
    });
    let (before, after) = play_with_loss_report(asked, Duration::from_secs(1));
    assert!(before.len() > 40 && after.len() > 100);
    assert_eq!(
        fec_share(&before),
        0.0,
        "no loss reported yet: no FEC spent"
    );
    let share = fec_share(&after);
    assert!(
        share > 0.8,
        "FEC in {:.0} % of packets after a 10 % loss report",
        share * 100.0
    );

    let not_asked = config_from_fmtp(v1::OpusParams::default());
    let (_, after) = play_with_loss_report(not_asked, Duration::from_secs(1));
    assert_eq!(fec_share(&after), 0.0, "useinbandfec absent: no FEC");
}

/// Mean Opus bitrate (payload only) of 5 s of speech sent toward leg B, and the payload sizes.
fn bitrate_with(params: v1::OpusParams) -> (f64, Vec<usize>) {
    let audio = speech_for(5);
    let mut h = Harness::new(config_from_fmtp(params));
    let input = g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x1111, 1, 0);
    play(
        &mut h,
        Leg::A,
        &no_delay(&input),
        Duration::from_millis(100),
    );
    let sizes: Vec<usize> = h
        .rtp_to(Leg::B)
        .iter()
        .map(|s| s.rtp().payload().len())
        .collect();
    let bps = sizes.iter().sum::<usize>() as f64 * 8.0 / (sizes.len() as f64 * 0.02);
    (bps, sizes)
}

#[test]
fn maxaveragebitrate_caps_the_output_and_cbr_is_honoured() {
    let (default_bps, _) = bitrate_with(v1::OpusParams::default());
    let (capped_bps, _) = bitrate_with(v1::OpusParams {
        max_average_bitrate: 12_000,
        ..Default::default()
    });
    assert!(
        capped_bps <= 12_000.0 * 1.1,
        "capped at 12 kbit/s: {capped_bps:.0}"
    );
    assert!(
        capped_bps < default_bps * 0.7,
        "{capped_bps:.0} against {default_bps:.0}"
    );
    // A maximum above our default does not raise it.
    let (high_bps, _) = bitrate_with(v1::OpusParams {
        max_average_bitrate: 64_000,
        ..Default::default()
    });
    assert!(
        high_bps <= default_bps * 1.05,
        "{high_bps:.0} against {default_bps:.0}"
    );

    let (_, vbr_sizes) = bitrate_with(v1::OpusParams::default());
    let (_, cbr_sizes) = bitrate_with(v1::OpusParams {
        cbr: true,
        ..Default::default()
    });
    let distinct = |s: &[usize]| {
        let mut d = s.to_vec();
        d.sort_unstable();
        d.dedup();
        d.len()
    };
    assert!(distinct(&vbr_sizes) > 10, "VBR varies the frame size");
    assert!(
        distinct(&cbr_sizes) <= 2,
        "cbr=1: one frame size, {cbr_sizes:?}"
    );
}

#[test]
fn g711_to_opus_scores_pesq_nb_at_least_3_8_on_speech() {
    // The twelve seconds of speech the encoder sweep scores (its G.711-alone ceiling is 3.84),
    // decoded as a browser decodes (48 kHz), scored at 8 kHz.
    let audio: Vec<i16> = speech().into_iter().take(12 * 8000).collect();
    let mut h = Harness::new(config(Law::Ulaw));
    let input = g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x1111, 1, 0);
    play(
        &mut h,
        Leg::A,
        &no_delay(&input),
        Duration::from_millis(100),
    );
    let mut dec = OpusDecoder::new(SampleRate::Hz48000).expect("decoder");
    let mut pcm48 = Vec::new();
    let mut frame = [0i16; 960];
    for s in h.rtp_to(Leg::B) {
        let n = dec.decode(s.rtp().payload(), &mut frame).expect("decodes");
        pcm48.extend_from_slice(&frame[..n]);
    }
    let mut degraded = resample_all(&pcm48, 48_000, 8000).expect("to 8 kHz");
    degraded.truncate(audio.len());
    let raw = pesq::pesq_8k(&audio, &degraded).expect("pesq");
    let mos = pesq::score::mos_lqo(f64::from(raw));
    assert!(mos >= 3.8, "PESQ NB MOS-LQO {mos:.3}");
}

#[test]
fn a_short_last_g711_packet_leaves_on_time_not_at_release() {
    let audio = speech_for(1);
    let mut h = Harness::new(config(Law::Ulaw));
    let t0 = h.t0;
    // Ten 20 ms packets, then a short one of 70 samples (a sender's last, like GStreamer's).
    for (i, chunk) in audio.chunks_exact(160).take(10).enumerate() {
        let mut payload = [0u8; 160];
        Law::Ulaw.encode(chunk, &mut payload);
        let packet = rtp_packet(PT_A, i as u16, (i * 160) as u32, 0x1111, i == 0, &payload);
        h.feed(t0 + Duration::from_millis(20 * i as u64), Leg::A, &packet);
    }
    let mut short = [0u8; 70];
    Law::Ulaw.encode(&audio[1600..1670], &mut short);
    let last_at = Duration::from_millis(200);
    h.feed(
        t0 + last_at,
        Leg::A,
        &rtp_packet(PT_A, 10, 1600, 0x1111, false, &short),
    );
    // Nothing more for 2.5 s, then the call is released.
    h.advance(t0 + Duration::from_millis(2700));
    let before_release = h.rtp_to(Leg::B).len();
    h.session.close(h.now);
    h.collect();

    let out = h.rtp_to(Leg::B);
    assert_eq!(out.len(), 11, "ten full frames and the padded partial one");
    assert_eq!(before_release, 11, "nothing left for the release to send");
    assert_eq!(
        h.session.partial_frames(),
        (1, 0),
        "padded on its deadline, none dropped"
    );
    let first_ts = out[0].rtp().timestamp();
    let last = out[10];
    assert_eq!(last.rtp().timestamp().wrapping_sub(first_ts), 10 * 960);
    let sent_after = last.at - t0;
    assert!(
        sent_after <= last_at + Duration::from_millis(60),
        "the partial frame left {sent_after:?} into the call, its input ended at {last_at:?}"
    );

    // The sender resumes late on its old clock: the part of its audio whose time already went
    // out as padding is skipped, timestamps stay unique and increasing.
    let mut h2 = Harness::new(config(Law::Ulaw));
    let t0 = h2.t0;
    for (i, chunk) in audio.chunks_exact(160).take(3).enumerate() {
        let mut payload = [0u8; 160];
        Law::Ulaw.encode(chunk, &mut payload);
        let packet = rtp_packet(PT_A, i as u16, (i * 160) as u32, 0x1111, i == 0, &payload);
        h2.feed(t0 + Duration::from_millis(20 * i as u64), Leg::A, &packet);
    }
    h2.feed(
        t0 + Duration::from_millis(60),
        Leg::A,
        &rtp_packet(PT_A, 3, 480, 0x1111, false, &short),
    );
    for i in 0..5u16 {
        let ts = 550 + u32::from(i) * 160;
        let payload = [0xFFu8; 160];
        h2.feed(
            t0 + Duration::from_millis(200 + 20 * u64::from(i)),
            Leg::A,
            &rtp_packet(PT_A, 4 + i, ts, 0x1111, false, &payload),
        );
    }
    h2.advance(t0 + Duration::from_millis(500));
    let out = h2.rtp_to(Leg::B);
    check_stream_rules(&out, PT_B);
    let ts: Vec<u32> = out
        .iter()
        .map(|s| s.rtp().timestamp().wrapping_sub(first_ts))
        .collect();
    assert!(
        ts.windows(2)
            .all(|w| w[1].wrapping_sub(w[0]) >= 960 && w[1].wrapping_sub(w[0]) < 1 << 31),
        "no timestamp reused or overlapping: {ts:?}"
    );
}

fn ev(event: u8, duration: u16, end: bool) -> TelephoneEvent {
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
}

#[test]
fn no_g711_audio_inside_an_events_time_span() {
    let audio = speech_for(1);
    let mut h = Harness::new(config(Law::Ulaw));
    let peer = OpusPeer {
        fec: false,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    };
    let ssrc = 0x5555;
    // 400 ms of speech, 200 ms of event 5 with the audio stopped (as a client does), 300 ms more.
    let speech = peer.stream(PT_B, &audio[..3200], ssrc, 0, 0);
    let mut arrivals = no_delay(&speech);
    let event_ts = 20 * 960;
    let mut seq = speech.len() as u16;
    for i in 0..10u16 {
        let at = Duration::from_millis(405 + 20 * u64::from(i));
        let e = ev(5, 960 * (i + 1), false);
        arrivals.push((at, event_packet(TE_B, seq, event_ts, ssrc, i == 0, e)));
        seq += 1;
    }
    for _ in 0..3 {
        let e = ev(5, 9600, true);
        arrivals.push((
            Duration::from_millis(605),
            event_packet(TE_B, seq, event_ts, ssrc, false, e),
        ));
        seq += 1;
    }
    let resumed = peer.stream(PT_B, &audio[4800..7200], ssrc, seq, event_ts + 9600);
    for p in resumed {
        arrivals.push((p.send_at + Duration::from_millis(605), p.bytes));
    }
    play(&mut h, Leg::B, &arrivals, Duration::from_millis(100));

    let out = h.rtp_to(Leg::A);
    check_stream_rules(&out, PT_A);
    let events: Vec<_> = out
        .iter()
        .map(|s| s.rtp())
        .filter(|p| p.payload_type() == TE_A)
        .collect();
    assert_eq!(events.len(), 13, "every event packet relayed");
    let start = events[0].timestamp();
    let span = u32::from(telephone_event(&events[12]).duration);
    assert_eq!(span, 1600, "200 ms at 8 kHz");
    let audio_ts: Vec<u32> = out
        .iter()
        .map(|s| s.rtp())
        .filter(|p| p.payload_type() == PT_A)
        .map(|p| p.timestamp().wrapping_sub(start))
        .collect();
    let inside: Vec<u32> = audio_ts.iter().copied().filter(|t| *t < span).collect();
    assert!(
        inside.is_empty(),
        "audio stamped inside the event: {inside:?}"
    );
    let after = audio_ts
        .iter()
        .filter(|t| **t >= span && **t < 1 << 31)
        .count();
    assert!(
        after >= 10,
        "audio resumes after the event ({after} packets)"
    );
    let suppressed = h.session.event_suppressed_frames();
    // Ten 20 ms frames in the span; the end packet moves the timeline past what was left.
    assert!(suppressed >= 8, "{suppressed} frames suppressed");
    let mut unique = audio_ts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), audio_ts.len(), "no audio timestamp reused");
}
