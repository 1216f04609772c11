//! Passthrough (relay) mode of the sans-IO session on virtual time: verbatim forwarding both
//! ways (RTP and RTCP, rtcp-mux too) in the same call that received it, the per-leg figures,
//! directions and hold, and live switches passthrough -> transcode -> passthrough with the
//! output streams' continuity checked.

// Tests stand outside the session: they may read the clock to get a base instant.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::Duration;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::rtcp;
use bridgepool_worker::session::{
    Channel, DropReason, Leg, LegMode, Mode, SessionConfig, SessionEvent,
};
use common::*;

const MS: Duration = Duration::from_millis(1);

fn passthrough() -> SessionConfig {
    let mut c = config(Law::Ulaw);
    c.mode = Mode::Passthrough;
    c
}

/// A receiver report from `ssrc` about `about`, with an SDES CNAME: what a peer sends.
fn receiver_report(ssrc: u32, about: u32) -> Vec<u8> {
    let mut buf = [0u8; 200];
    let block = rtcp::ReportBlock {
        ssrc: about,
        fraction_lost: 3,
        cumulative_lost: 7,
        highest_seq: 1234,
        jitter: 40,
        last_sr: 0,
        delay_since_last_sr: 0,
    };
    let mut n = rtcp::write_receiver_report(&mut buf, ssrc, &[block]).unwrap();
    n += rtcp::write_sdes_cname(&mut buf[n..], ssrc, b"peer@example").unwrap();
    buf[..n].to_vec()
}

#[test]
fn relays_rtp_and_rtcp_verbatim_both_ways_without_delay() {
    let mut h = Harness::new(passthrough());
    assert_eq!(h.session.mode(), Mode::Passthrough);
    // Both legs carry Opus (payload type 96 on one, 111 on the other, neither negotiated for
    // leg A): codecs do not matter in passthrough.
    let from_a: Vec<Vec<u8>> = (0..50u16)
        .map(|i| {
            rtp_packet(
                96,
                100 + i,
                960 * u32::from(i),
                0xA1,
                i == 0,
                &[i as u8; 61],
            )
        })
        .collect();
    let from_b: Vec<Vec<u8>> = (0..50u16)
        .map(|i| rtp_packet(0, 7 + i, 160 * u32::from(i), 0xB1, false, &[0xFF; 160]))
        .collect();
    for i in 0..50 {
        let at = h.t0 + MS * 20 * i as u32;
        h.feed(at, Leg::A, &from_a[i]);
        let sent = h.sent.last().expect("relayed at once");
        assert_eq!((sent.leg, sent.channel), (Leg::B, Channel::Rtp));
        assert_eq!(sent.at, at, "a relay adds no delay");
        assert_eq!(sent.bytes, from_a[i], "verbatim");
        h.feed(at + MS * 3, Leg::B, &from_b[i]);
        let sent = h.sent.last().unwrap();
        assert_eq!((sent.leg, sent.at), (Leg::A, at + MS * 3));
        assert_eq!(sent.bytes, from_b[i]);
    }
    // The peers' RTCP, on the RTCP port and multiplexed on the RTP port (RFC 5761).
    let rr_a = receiver_report(0xA1, 0xB1);
    h.feed_rtcp(h.now + MS, Leg::A, &rr_a);
    let sent = h.sent.last().unwrap();
    assert_eq!((sent.leg, sent.channel), (Leg::B, Channel::Rtcp));
    assert_eq!(sent.bytes, rr_a);
    let rr_b = receiver_report(0xB1, 0xA1);
    h.feed(h.now + MS, Leg::B, &rr_b);
    let sent = h.sent.last().unwrap();
    assert_eq!((sent.leg, sent.channel), (Leg::A, Channel::Rtcp));
    assert_eq!(sent.bytes, rr_b);
    // Nothing of our own: every datagram out is one that came in (no reports, no BYE).
    h.advance(h.now + Duration::from_secs(30));
    h.session.close(h.now);
    h.collect();
    assert_eq!(h.rtp_to(Leg::B).len(), 50);
    assert_eq!(h.rtp_to(Leg::A).len(), 50);
    assert_eq!(h.rtcp_to(Leg::A).len(), 1);
    assert_eq!(h.rtcp_to(Leg::B).len(), 1);
    assert!(h.sent.iter().all(|s| {
        from_a.contains(&s.bytes) || from_b.contains(&s.bytes) || s.bytes == rr_a || s.bytes == rr_b
    }));
    let (a, b) = (h.session.stats(Leg::A), h.session.stats(Leg::B));
    assert_eq!((a.packets_in, a.bytes_in), (50, 50 * 61));
    assert_eq!((b.packets_out, b.bytes_out), (50, 50 * 61));
    assert_eq!((b.packets_in, a.packets_out), (50, 50));
    assert_eq!((a.rtcp_in, b.rtcp_out, b.rtcp_in, a.rtcp_out), (1, 1, 1, 1));
    assert_eq!(a.drops.total() + b.drops.total(), 0);
}

#[test]
fn reordered_input_leaves_as_it_came_and_the_figures_count_it() {
    let mut h = Harness::new(passthrough());
    let packet = |seq: u16| rtp_packet(0, seq, 160 * u32::from(seq), 0x51, false, &[0xD5; 160]);
    // 1, 3, 2, 2 again, 6: 2 arrives late, 4 and 5 never do.
    let order = [1u16, 3, 2, 2, 6];
    for (i, seq) in order.iter().enumerate() {
        h.feed(h.t0 + MS * 20 * i as u32, Leg::A, &packet(*seq));
    }
    let out: Vec<u16> = h
        .rtp_to(Leg::B)
        .iter()
        .map(|s| s.rtp().sequence_number())
        .collect();
    assert_eq!(
        out,
        vec![1, 3, 2, 6],
        "arrival order, the duplicate dropped"
    );
    let a = h.session.stats(Leg::A);
    assert_eq!(a.packets_in, 4);
    assert_eq!(a.packets_lost, 2);
    assert_eq!(a.drops.get(DropReason::Duplicate), 1);
    assert!(
        h.session.poll_timeout().unwrap() > h.now + Duration::from_secs(30),
        "nothing waits in a relay: only the media timeout is ahead"
    );
}

#[test]
fn jitter_is_measured_on_each_streams_own_clock() {
    // The same arrival pattern (every fourth packet 8 ms late) on a PCMU stream (8 kHz clock)
    // into leg B, whose description says Opus, and on an Opus stream (48 kHz) into leg A, whose
    // description says PCMU: both figures come out the same in time.
    let mut h = Harness::new(passthrough());
    for i in 0..200u32 {
        let late = if i % 4 == 3 { MS * 8 } else { Duration::ZERO };
        let at = h.t0 + MS * 20 * i + late;
        let seq = i as u16;
        h.feed(
            at,
            Leg::A,
            &rtp_packet(111, seq, 960 * i, 0xA, false, &[1; 40]),
        );
        h.feed(
            at,
            Leg::B,
            &rtp_packet(8, seq, 160 * i, 0xB, false, &[0xD5; 160]),
        );
    }
    let (a, b) = (
        h.session.stats(Leg::A).jitter,
        h.session.stats(Leg::B).jitter,
    );
    assert!(a > Duration::from_millis(2), "{a:?}");
    let diff = a.as_secs_f64() - b.as_secs_f64();
    assert!(diff.abs() < 0.000_5, "A {a:?} B {b:?}");
}

#[test]
fn directions_and_hold_stop_the_right_way() {
    let mut h = Harness::new(passthrough());
    let a = |seq: u16| rtp_packet(0, seq, 160 * u32::from(seq), 0xA, false, &[0xFF; 160]);
    let b = |seq: u16| rtp_packet(111, seq, 960 * u32::from(seq), 0xB, false, &[7; 50]);
    // Leg B on hold (remote 0.0.0.0 or sendonly): we send it nothing, it may still send.
    h.session.set_mode(
        Leg::B,
        LegMode {
            send: false,
            receive: true,
        },
    );
    h.feed(h.t0, Leg::A, &a(1));
    h.feed(h.t0 + MS, Leg::B, &b(1));
    assert!(h.rtp_to(Leg::B).is_empty());
    assert_eq!(h.rtp_to(Leg::A).len(), 1);
    assert_eq!(
        h.session.stats(Leg::A).packets_in,
        1,
        "received, not sent on"
    );
    // Inactive A: what it sends is dropped as such.
    h.session.set_mode(
        Leg::A,
        LegMode {
            send: false,
            receive: false,
        },
    );
    h.feed(h.t0 + MS * 20, Leg::A, &a(2));
    h.feed(h.t0 + MS * 21, Leg::B, &b(2));
    assert_eq!(h.session.drops(Leg::A).get(DropReason::Inactive), 1);
    assert_eq!(h.rtp_to(Leg::A).len(), 1, "nothing to an inactive leg");
    // Off hold: both ways again.
    for leg in [Leg::A, Leg::B] {
        h.session.set_mode(leg, LegMode::default());
    }
    h.feed(h.t0 + MS * 40, Leg::A, &a(3));
    h.feed(h.t0 + MS * 41, Leg::B, &b(3));
    assert_eq!(h.rtp_to(Leg::B).len(), 1);
    assert_eq!(h.rtp_to(Leg::A).len(), 2);
}

#[test]
fn bad_input_is_dropped_and_counted_and_a_new_stream_is_reported() {
    let mut h = Harness::new(passthrough());
    h.feed(h.t0, Leg::A, &[0x80, 0]);
    h.feed_rtcp(h.t0, Leg::B, &[0x81, 200, 0, 9]);
    h.feed(h.t0, Leg::A, &vec![0x80; 3000]);
    assert!(h.sent.is_empty());
    assert_eq!(h.session.drops(Leg::A).get(DropReason::Malformed), 2);
    assert_eq!(h.session.drops(Leg::B).get(DropReason::RtcpMalformed), 1);
    h.feed(h.t0, Leg::A, &rtp_packet(0, 1, 0, 0x1, false, &[1; 160]));
    h.feed(
        h.t0 + MS * 20,
        Leg::A,
        &rtp_packet(0, 900, 0, 0x2, false, &[1; 160]),
    );
    assert_eq!(
        h.rtp_to(Leg::B).len(),
        2,
        "the new stream is relayed as it is"
    );
    assert!(h.events.contains(&SessionEvent::SsrcChanged {
        leg: Leg::A,
        ssrc: 0x2
    }));
    // A peer's BYE passes through and is reported.
    let mut buf = [0u8; 64];
    let n = rtcp::write_bye(&mut buf, &[0x2], None).unwrap();
    h.feed_rtcp(h.now, Leg::A, &buf[..n]);
    assert_eq!(h.rtcp_to(Leg::B).len(), 1);
    assert!(h.events.contains(&SessionEvent::RemoteBye { leg: Leg::A }));
}

/// Our stream toward `leg` (its SSRC from the seeds), in order sent.
fn ours(h: &Harness, leg: Leg) -> Vec<(usize, u16, u32, bool)> {
    let (a, b) = seeds();
    let ssrc = if leg == Leg::A { a.ssrc } else { b.ssrc };
    h.sent
        .iter()
        .enumerate()
        .filter(|(_, s)| s.leg == leg && s.channel == Channel::Rtp)
        .filter(|(_, s)| s.rtp().ssrc() == ssrc)
        .map(|(i, s)| {
            let p = s.rtp();
            (i, p.sequence_number(), p.timestamp(), p.marker())
        })
        .collect()
}

#[test]
fn switching_passthrough_transcode_passthrough_transcode_keeps_each_output_stream_whole() {
    let audio = speech_for(8);
    let g711 = g711_stream(Law::Ulaw, 0, &audio, 20, 0xA11CE, 1000, 5000);
    let opus = OpusPeer {
        fec: true,
        dtx: false,
        loss_pct: 0,
        ptime_ms: 20,
    }
    .stream(111, &audio, 0xB0B, 2000, 7000);
    let mut h = Harness::new(config(Law::Ulaw));
    let seconds = |s: u64| Duration::from_secs(s);
    let feed_until = |h: &mut Harness, from: Duration, to: Duration| {
        let mut all: Vec<(Duration, Leg, &Vec<u8>)> = g711
            .iter()
            .map(|p| (p.send_at, Leg::A, &p.bytes))
            .chain(opus.iter().map(|p| (p.send_at + MS * 7, Leg::B, &p.bytes)))
            .filter(|(t, _, _)| *t >= from && *t < to)
            .collect();
        all.sort_by_key(|(t, leg, _)| (*t, *leg == Leg::B));
        for (t, leg, bytes) in all {
            h.feed(h.t0 + t, leg, bytes);
        }
        h.advance(h.t0 + to);
    };
    let switch = |h: &mut Harness, mode: Mode| {
        let mut c = h.session.config().clone();
        c.mode = mode;
        let now = h.now;
        h.session.update(now, c).expect("switch");
        h.collect();
        assert_eq!(h.session.mode(), mode);
    };
    // Transcode 2 s, relay 2 s, transcode 2 s, relay 2 s.
    feed_until(&mut h, seconds(0), seconds(2));
    let first_transcoded = (ours(&h, Leg::A).len(), ours(&h, Leg::B).len());
    assert!(
        first_transcoded.0 > 90 && first_transcoded.1 > 90,
        "{first_transcoded:?}"
    );
    switch(&mut h, Mode::Passthrough);
    let relay_starts = h.sent.len();
    feed_until(&mut h, seconds(2), seconds(4));
    let relayed: Vec<_> = h.sent[relay_starts..].iter().collect();
    assert!(relayed.len() >= 190, "{}", relayed.len());
    for s in &relayed {
        let expected_ssrc = if s.leg == Leg::B { 0xA11CE } else { 0xB0B };
        assert_eq!(
            s.rtp().ssrc(),
            expected_ssrc,
            "the peers' own streams, verbatim"
        );
    }
    switch(&mut h, Mode::Transcode);
    let resumed_at = h.sent.len();
    feed_until(&mut h, seconds(4), seconds(6));
    switch(&mut h, Mode::Passthrough);
    feed_until(&mut h, seconds(6), seconds(8));
    for leg in [Leg::A, Leg::B] {
        let stream = ours(&h, leg);
        // One SSRC, sequence numbers continuous across the pause, timestamps never back.
        for pair in stream.windows(2) {
            let ((_, s0, t0, _), (_, s1, t1, _)) = (pair[0], pair[1]);
            assert_eq!(s1, s0.wrapping_add(1), "{leg:?}: sequence continuous");
            assert!(
                t1.wrapping_sub(t0) < 1 << 31,
                "{leg:?}: timestamp went back"
            );
        }
        // The first transcoded packet after the relay is marked, and its timestamp moved on by
        // about the time spent relaying (2 s), so the receiver does not see a rewind.
        let first = stream
            .iter()
            .find(|(i, ..)| *i >= resumed_at)
            .expect("resumed");
        assert!(first.3, "{leg:?}: marker on the first transcoded packet");
        let before = stream.iter().rev().find(|(i, ..)| *i < resumed_at).unwrap();
        let clock = if leg == Leg::A { 8 } else { 48 };
        let gap_ms = first.2.wrapping_sub(before.2) / clock;
        assert!((1900..=2200).contains(&gap_ms), "{leg:?}: {gap_ms} ms");
        // Transcoded again for the two seconds in between, stopped after the last switch.
        let during = stream.iter().filter(|(i, ..)| *i >= resumed_at).count();
        assert!((90..=110).contains(&during), "{leg:?}: {during}");
    }
    // The audio that came through the fresh transcoder is speech, not noise.
    let to_a: Vec<&Sent> = h.sent[resumed_at..]
        .iter()
        .filter(|s| {
            s.leg == Leg::A && s.channel == Channel::Rtp && s.rtp().ssrc() == seeds().0.ssrc
        })
        .collect();
    let decoded = decode_g711_output(&to_a, Law::Ulaw, 0);
    let reference = &audio[4 * 8000..6 * 8000];
    let sim = similarity(reference, &decoded);
    assert!(sim.correlation > 0.8, "{sim:?}");
}

#[test]
fn a_switch_to_transcode_with_a_bad_config_changes_nothing() {
    let mut h = Harness::new(passthrough());
    let mut c = h.session.config().clone();
    c.mode = Mode::Transcode;
    c.leg_b.ptime = Duration::from_millis(25);
    assert!(h.session.update(h.now, c).is_err());
    assert_eq!(h.session.mode(), Mode::Passthrough);
    h.feed(h.t0, Leg::A, &rtp_packet(0, 1, 0, 0x1, false, &[1; 160]));
    assert_eq!(h.rtp_to(Leg::B).len(), 1, "still relaying");
}
