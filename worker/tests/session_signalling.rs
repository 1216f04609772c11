//! Scenario tests on virtual time for everything around the audio: telephone events, RTCP,
//! bad input, timeouts, hold, talkspurts.
// Tests stand outside the session: they may read the clock to get a base instant.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::rtcp::{self, ReportBlock, RtcpPacket};
use bridgepool_codecs::telephone_event::TelephoneEvent;
use bridgepool_worker::session::{
    DropReason, EndReason, Leg, LegMode, Session, SessionEvent, Timeouts,
};
use common::*;
use proptest::prelude::*;

const PT_A: u8 = 0;
const TE_A: u8 = 101;
const PT_B: u8 = 111;
const TE_B: u8 = 110;

fn ev(event: u8, duration: u16, end: bool) -> TelephoneEvent {
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
}

#[test]
fn dtmf_a_to_b_rescaled_one_timestamp_per_event_in_order() {
    let audio = speech_for(2);
    let mut h = Harness::new(config(Law::Ulaw));
    let ssrc = 0x1234;
    let mut arrivals = no_delay(&g711_stream(
        Law::Ulaw,
        PT_A,
        &audio[..8000],
        20,
        ssrc,
        1,
        8000,
    ));
    // Digit 5 at ts 16000 for 200 ms (three end packets), then digit 9 at ts 20000.
    let mut seq = 51u16;
    let mut t = Duration::from_millis(1005);
    for (event, start) in [(5u8, 16_000u32), (9, 20_000)] {
        for (i, dur) in [160u16, 480, 800, 1120, 1600].iter().enumerate() {
            arrivals.push((
                t,
                event_packet(TE_A, seq, start, ssrc, i == 0, ev(event, *dur, false)),
            ));
            seq += 1;
            t += Duration::from_millis(40);
        }
        for _ in 0..3 {
            arrivals.push((
                t,
                event_packet(TE_A, seq, start, ssrc, false, ev(event, 1600, true)),
            ));
            seq += 1;
            t += Duration::from_millis(5);
        }
    }
    play(&mut h, Leg::A, &arrivals, Duration::from_millis(50));
    let out = h.rtp_to(Leg::B);
    check_stream_rules(&out, PT_B);
    let events: Vec<_> = out
        .iter()
        .map(|s| s.rtp())
        .filter(|p| p.payload_type() == TE_B)
        .collect();
    assert_eq!(events.len(), 16, "every event packet relayed");
    for group in events.chunks(8) {
        let ts = group[0].timestamp();
        assert!(
            group.iter().all(|p| p.timestamp() == ts),
            "one timestamp per event"
        );
        assert!(group[0].marker() && group[1..].iter().all(|p| !p.marker()));
        let durations: Vec<u16> = group.iter().map(|p| telephone_event(p).duration).collect();
        assert_eq!(
            durations,
            vec![960, 2880, 4800, 6720, 9600, 9600, 9600, 9600]
        );
        assert!(group[5..].iter().all(|p| telephone_event(p).end));
    }
    let digits: Vec<u8> = events.iter().map(|p| telephone_event(p).event).collect();
    assert_eq!(&digits[..8], &[5; 8]);
    assert_eq!(&digits[8..], &[9; 8]);
    // The event timestamps sit on the audio timeline: 4000 samples after the audio began = 24000.
    let audio_ts = out[0].rtp().timestamp();
    assert_eq!(
        events[0].timestamp().wrapping_sub(audio_ts),
        (16_000 - 8000) * 6
    );
    assert_eq!(
        events[8].timestamp().wrapping_sub(audio_ts),
        (20_000 - 8000) * 6
    );
}

#[test]
fn dtmf_b_to_a_rescaled_down_with_mapped_payload_type() {
    let mut h = Harness::new(config(Law::Ulaw));
    let audio = speech_for(1);
    let peer = OpusPeer {
        fec: false,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    };
    let mut arrivals = no_delay(&peer.stream(PT_B, &audio, 0x99, 1, 0));
    let mut seq = 51u16;
    let mut t = Duration::from_millis(1005);
    for (i, dur) in [960u16, 2880, 4800].iter().enumerate() {
        arrivals.push((
            t,
            event_packet(TE_B, seq, 48_000, 0x99, i == 0, ev(1, *dur, i == 2)),
        ));
        seq += 1;
        t += Duration::from_millis(20);
    }
    arrivals.push((
        t,
        event_packet(TE_B, seq, 48_000, 0x99, false, ev(1, 4800, true)),
    ));
    play(&mut h, Leg::B, &arrivals, Duration::from_millis(50));
    let out = h.rtp_to(Leg::A);
    check_stream_rules(&out, PT_A);
    let events: Vec<_> = out
        .iter()
        .map(|s| s.rtp())
        .filter(|p| p.payload_type() == TE_A)
        .collect();
    assert_eq!(events.len(), 4);
    let durations: Vec<u16> = events.iter().map(|p| telephone_event(p).duration).collect();
    assert_eq!(durations, vec![160, 480, 800, 800]);
    assert!(
        events
            .iter()
            .all(|p| p.timestamp() == events[0].timestamp())
    );
}

#[test]
fn talkspurt_after_silence_suppression_is_marked() {
    let audio = speech_for(4);
    let mut h = Harness::new(config(Law::Ulaw));
    let first = g711_stream(Law::Ulaw, PT_A, &audio[..8000], 20, 0x42, 1, 0);
    // The sender stops for a second (VAD), then resumes with a marker and a timestamp jump.
    let mut second = g711_stream(
        Law::Ulaw,
        PT_A,
        &audio[16_000..24_000],
        20,
        0x42,
        51,
        16_000,
    );
    for p in &mut second {
        p.send_at += Duration::from_secs(2);
    }
    let mut arrivals = no_delay(&first);
    arrivals.extend(no_delay(&second));
    play(&mut h, Leg::A, &arrivals, Duration::from_millis(50));
    let out = h.rtp_to(Leg::B);
    check_stream_rules(&out, PT_B);
    let marked: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, s)| s.rtp().marker())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(marked, vec![0, 50]);
    assert_eq!(
        out[50]
            .rtp()
            .timestamp()
            .wrapping_sub(out[0].rtp().timestamp()),
        16_000 * 6,
        "the gap stays a gap on the 48 kHz clock"
    );
}

#[test]
fn rtcp_reports_on_both_legs_and_rtt_from_peer_reports() {
    let audio = speech_for(12);
    let mut h = Harness::new(config(Law::Ulaw));
    let input = no_delay(&g711_stream(Law::Ulaw, PT_A, &audio, 20, 0x51, 1, 0));
    play(&mut h, Leg::A, &input, Duration::from_millis(100));
    let to_a = h.rtcp_to(Leg::A);
    let to_b = h.rtcp_to(Leg::B);
    assert!(
        to_a.len() >= 2 && to_b.len() >= 2,
        "{} {}",
        to_a.len(),
        to_b.len()
    );
    // Toward B we send media: sender reports, carrying a report block? No: B sends us nothing.
    let last_b = to_b.last().unwrap();
    let kinds: Vec<u8> = rtcp::compound(&last_b.bytes)
        .map(|p| match p.expect("valid RTCP") {
            RtcpPacket::SenderReport(sr) => {
                assert_eq!(sr.ssrc(), h.session.ssrc(Leg::B));
                assert!(sr.sender_info().packet_count > 0);
                200
            }
            RtcpPacket::ReceiverReport(_) => 201,
            RtcpPacket::Sdes(_) => 202,
            _ => 0,
        })
        .collect();
    assert_eq!(kinds, vec![200, 202]);
    // Toward A we only receive: a receiver report about the peer's stream.
    let last_a = to_a.last().unwrap();
    let mut saw_block = false;
    for p in rtcp::compound(&last_a.bytes) {
        if let RtcpPacket::ReceiverReport(rr) = p.unwrap() {
            for b in rr.report_blocks() {
                assert_eq!(b.ssrc, 0x51);
                assert_eq!(b.fraction_lost, 0);
                saw_block = true;
            }
        }
    }
    assert!(saw_block);

    // Leg B's peer answers our SR with an RR: LSR from our SR, DLSR of 0.25 s.
    let our_sr = to_b.last().unwrap();
    let (ntp, at) = rtcp::compound(&our_sr.bytes)
        .find_map(|p| match p.unwrap() {
            RtcpPacket::SenderReport(sr) => Some((sr.sender_info().ntp_timestamp, our_sr.at)),
            _ => None,
        })
        .unwrap();
    let mut buf = [0u8; 256];
    // It arrives 100 ms of path after the peer held it for DLSR.
    let arrive = h.now + Duration::from_millis(10);
    let dlsr = arrive - at - Duration::from_millis(100);
    let block = ReportBlock {
        ssrc: h.session.ssrc(Leg::B),
        fraction_lost: 64,
        cumulative_lost: 3,
        highest_seq: 1000,
        jitter: 10,
        last_sr: rtcp::ntp_middle32(ntp),
        delay_since_last_sr: (dlsr.as_secs_f64() * 65_536.0) as u32,
    };
    let n = rtcp::write_receiver_report(&mut buf, 0x77, &[block]).unwrap();
    h.feed_rtcp(arrive, Leg::B, &buf[..n]);
    let stats = h.session.stats(Leg::B);
    let rtt = stats.rtt.expect("RTT measured");
    assert!(
        rtt >= Duration::from_millis(99) && rtt <= Duration::from_millis(101),
        "{rtt:?}"
    );
    assert!((stats.remote_fraction_lost - 0.25).abs() < 1e-6);
    assert_eq!(stats.rtcp_in, 1);
}

#[test]
fn bad_input_is_dropped_and_counted_by_reason() {
    let mut h = Harness::new(config(Law::Ulaw));
    let t = h.t0 + Duration::from_millis(1);
    h.feed(t, Leg::A, &[0x80, 0]); // truncated header
    h.feed(t, Leg::A, &[0x40; 20]); // version 1
    h.feed(t, Leg::A, &rtp_packet(96, 1, 0, 5, false, &[0xFF; 160])); // not negotiated on A
    h.feed(t, Leg::B, &rtp_packet(PT_B, 1, 0, 6, false, &[0xFF; 3])); // garbage Opus
    h.feed(t, Leg::B, &rtp_packet(PT_B, 2, 960, 6, false, &[])); // empty Opus
    h.feed(t, Leg::B, &[0x81, 201, 0, 9, 0, 0]); // truncated RTCP
    let a = h.session.stats(Leg::A).drops;
    let b = h.session.stats(Leg::B).drops;
    assert_eq!(a.get(DropReason::Malformed), 2);
    assert_eq!(a.get(DropReason::PayloadType), 1);
    assert_eq!(b.get(DropReason::DecodeError), 2);
    assert_eq!(b.get(DropReason::RtcpMalformed), 1);
    assert!(h.rtp_to(Leg::A).is_empty() && h.rtp_to(Leg::B).is_empty());
}

#[test]
fn hold_stops_output_and_counts_input() {
    let audio = speech_for(2);
    let mut h = Harness::new(config(Law::Ulaw));
    h.session.set_mode(
        Leg::B,
        LegMode {
            send: false,
            receive: false,
        },
    );
    play(
        &mut h,
        Leg::A,
        &no_delay(&g711_stream(Law::Ulaw, PT_A, &audio, 20, 1, 1, 0)),
        Duration::ZERO,
    );
    assert!(h.rtp_to(Leg::B).is_empty(), "nothing sent to a held leg");
    let peer = OpusPeer {
        fec: false,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    };
    play(
        &mut h,
        Leg::B,
        &no_delay(&peer.stream(PT_B, &audio, 2, 1, 0)),
        Duration::ZERO,
    );
    assert!(h.session.stats(Leg::B).drops.get(DropReason::Inactive) > 0);
}

#[test]
fn timeouts_end_the_session_with_a_reason() {
    let audio = speech_for(3);
    let short = Timeouts {
        media: Duration::from_secs(5),
        one_sided: Duration::from_secs(8),
        unanswered: Duration::from_secs(4),
    };
    // Never answered.
    let mut cfg = config(Law::Ulaw);
    cfg.timeouts = short;
    let t0 = std::time::Instant::now();
    let mut s = Session::new(cfg.clone(), t0).unwrap();
    let mut now = t0;
    while let Some(d) = s.poll_timeout() {
        now = d;
        s.handle_timeout(now);
        if s.is_ended() {
            break;
        }
    }
    assert_eq!(now - t0, Duration::from_secs(4));
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(e);
    }
    assert_eq!(events, vec![SessionEvent::Ended(EndReason::NeverAnswered)]);

    // Both legs silent.
    let mut h = Harness::new(cfg.clone());
    h.advance(h.t0 + Duration::from_secs(6));
    assert!(
        h.events
            .contains(&SessionEvent::Ended(EndReason::MediaTimeout))
    );
    assert!(h.session.poll_timeout().is_none());

    // Only leg A sends, for longer than the one-sided limit.
    let mut h = Harness::new(cfg);
    let long: Vec<i16> = audio.iter().copied().cycle().take(8000 * 12).collect();
    play(
        &mut h,
        Leg::A,
        &no_delay(&g711_stream(Law::Ulaw, PT_A, &long, 20, 9, 1, 0)),
        Duration::ZERO,
    );
    assert!(
        h.events
            .contains(&SessionEvent::Ended(EndReason::OneSidedTimeout {
                silent: Leg::B
            })),
        "{:?}",
        h.events
    );
    // A final BYE went out on each leg.
    for leg in [Leg::A, Leg::B] {
        let last = h.rtcp_to(leg).last().unwrap().bytes.clone();
        assert!(rtcp::compound(&last).any(|p| matches!(p, Ok(RtcpPacket::Bye(_)))));
    }
}

#[test]
fn sans_io_session_source_reads_no_clock_and_owns_no_socket() {
    // Belt and braces beside clippy's disallowed_methods: the session module's source names no
    // clock read, socket or runtime.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/session");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "Instant::now",
            "SystemTime",
            "UdpSocket",
            "tokio",
            "std::net",
            "thread::sleep",
        ] {
            assert!(
                !text.contains(banned),
                "{} mentions {banned}",
                path.display()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn random_datagrams_never_panic(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
        legs in proptest::collection::vec(any::<bool>(), 20),
    ) {
        let mut h = Harness::new(config(Law::Ulaw));
        for (i, d) in datagrams.iter().enumerate() {
            let leg = if legs[i] { Leg::A } else { Leg::B };
            h.feed(h.t0 + Duration::from_millis(i as u64 * 7), leg, d);
        }
        h.advance(h.t0 + Duration::from_secs(2));
    }

    #[test]
    fn valid_headers_with_random_payloads_never_panic(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..30),
        seqs in proptest::collection::vec(any::<u16>(), 30),
        tss in proptest::collection::vec(any::<u32>(), 30),
    ) {
        let mut h = Harness::new(config(Law::Ulaw));
        for (i, p) in payloads.iter().enumerate() {
            let (leg, pt) = match i % 4 { 0 => (Leg::A, PT_A), 1 => (Leg::B, PT_B), 2 => (Leg::A, TE_A), _ => (Leg::B, TE_B) };
            let bytes = rtp_packet(pt, seqs[i], tss[i], 77, i % 3 == 0, p);
            h.feed(h.t0 + Duration::from_millis(i as u64 * 11), leg, &bytes);
        }
        h.advance(h.t0 + Duration::from_secs(3));
    }
}
