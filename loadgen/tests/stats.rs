//! The measurement on synthetic packet sequences: each case would fail if the measurement broke.

use bridgepool_loadgen::mos;
use bridgepool_loadgen::stats::{
    LatencySummary, RtpFields, SendTimes, StreamExpectation, StreamStats, StreamSummary, extend,
};

/// Input frame `i` left at `i * 20 ms`.
struct Grid;

impl SendTimes for Grid {
    fn sent_at_us(&self, frame: u64) -> Option<u64> {
        Some(frame * 20_000)
    }
    fn frames_sent(&self) -> u64 {
        u64::MAX
    }
}

const OPUS: StreamExpectation = StreamExpectation {
    payload_type: 96,
    clock_rate: 48_000,
    timestamp_step: 960,
};
const PCMU: StreamExpectation = StreamExpectation {
    payload_type: 0,
    clock_rate: 8000,
    timestamp_step: 160,
};

/// A well-formed output packet for frame `i` of a stream starting at `seq0`/`ts0`.
fn pkt(expect: StreamExpectation, seq0: u16, ts0: u32, i: u32) -> RtpFields<'static> {
    RtpFields {
        marker: i == 0,
        payload_type: expect.payload_type,
        sequence_number: seq0.wrapping_add(i as u16),
        timestamp: ts0.wrapping_add(i * expect.timestamp_step),
        ssrc: 0x1234_5678,
        payload: &[0u8; 20],
    }
}

/// Feeds frames `order` of a stream, each arriving `latency_us` after it was sent (plus `extra`).
fn feed(expect: StreamExpectation, order: &[u32], latency_us: impl Fn(u32) -> u64) -> StreamStats {
    let mut s = StreamStats::new(expect);
    for &i in order {
        let p = pkt(expect, 65_530, u32::MAX - 2000, i);
        s.on_packet(u64::from(i) * 20_000 + latency_us(i), &p, &Grid);
    }
    s
}

#[test]
fn clean_stream_has_no_loss_no_violations_and_constant_latency() {
    let order: Vec<u32> = (0..200).collect();
    let s = feed(OPUS, &order, |_| 3_000);
    let sum = s.summary(200, 0);
    assert_eq!(sum.received, 200);
    assert_eq!(sum.lost, 0);
    assert_eq!(sum.duplicates, 0);
    assert_eq!(sum.reordered, 0);
    assert_eq!(sum.violations.total(), 0, "{:?}", sum.violations);
    assert_eq!(sum.latency.samples, 200);
    assert_eq!(sum.latency.p50_ms, 3.0);
    assert_eq!(sum.latency.max_ms, 3.0);
    assert!(
        sum.jitter_ms_mean.abs() < 1e-9,
        "constant delay has no jitter: {}",
        sum.jitter_ms_mean
    );
}

#[test]
fn gaps_count_as_loss_across_sequence_wrap() {
    // seq0 = 65530: frames 3..=8 cross the 16-bit wrap; drop 5 of 100.
    let order: Vec<u32> = (0..100)
        .filter(|i| ![4, 5, 6, 50, 99].contains(i))
        .collect();
    let s = feed(PCMU, &order, |_| 1_000);
    let sum = s.summary(0, 0);
    // Frame 99 is the last: a tail loss is invisible to sequence numbers alone...
    assert_eq!(sum.lost, 4);
    // ...but not to the count of what was sent.
    let sum = s.summary(100, 0);
    assert_eq!(sum.lost, 5);
    assert_eq!(sum.expected, 100);
    assert!((sum.loss_pct() - 5.0).abs() < 1e-9);
    // Held frames at the end are not loss.
    assert_eq!(s.summary(100, 1).lost, 4);
    assert_eq!(
        sum.violations.timestamp_step, 0,
        "a gap with matching timestamps is loss, not a rule break"
    );
}

#[test]
fn duplicates_and_reordering_are_told_apart() {
    let order = [0, 1, 2, 4, 3, 5, 5, 6, 2, 7, 9, 8, 10];
    let s = feed(OPUS, &order, |_| 500);
    let sum = s.summary(11, 0);
    assert_eq!(sum.duplicates, 2, "frames 5 and 2 twice");
    assert_eq!(sum.reordered, 2, "3 after 4, 8 after 9");
    assert_eq!(sum.lost, 0);
    assert_eq!(sum.received, 13);
    assert_eq!(sum.violations.total(), 0, "{:?}", sum.violations);
}

#[test]
fn duplicate_detection_survives_long_runs_with_loss() {
    // Thousands of packets with periodic loss: nothing may be mistaken for a duplicate.
    let order: Vec<u32> = (0..5000).filter(|i| i % 97 != 0 || *i == 0).collect();
    let s = feed(PCMU, &order, |_| 800);
    let sum = s.summary(5000, 0);
    assert_eq!(sum.duplicates, 0);
    assert_eq!(sum.lost, 5000 - order.len() as u64);
}

#[test]
fn jitter_follows_rfc3550() {
    // Alternating 0 / 4 ms extra delay: |D| = 4 ms each step; J converges to 4 ms.
    let order: Vec<u32> = (0..400).collect();
    let s = feed(OPUS, &order, |i| if i % 2 == 0 { 0 } else { 4_000 });
    let j = s.jitter_ms();
    assert!((j - 4.0).abs() < 0.01, "jitter {j}");
    // The first step alone: J = |D| / 16.
    let s = feed(OPUS, &[0, 1], |i| u64::from(i) * 16_000);
    assert!(
        (s.jitter_ms() - 1.0).abs() < 1e-6,
        "jitter {}",
        s.jitter_ms()
    );
}

#[test]
fn latency_matches_output_to_input_by_media_time() {
    // Latency grows by 0.1 ms per frame; frames arrive out of order and one is lost.
    let order: Vec<u32> = vec![0, 1, 3, 2, 5, 6, 7, 8, 9];
    let s = feed(OPUS, &order, |i| 2_000 + u64::from(i) * 100);
    let mut lat = s.latencies_us().to_vec();
    lat.sort_unstable();
    assert_eq!(
        lat,
        vec![
            2_000, 2_100, 2_200, 2_300, 2_500, 2_600, 2_700, 2_800, 2_900
        ]
    );
    let sum = LatencySummary::from_samples(&mut lat);
    assert_eq!(sum.p50_ms, 2.5);
    assert_eq!(sum.max_ms, 2.9);
    assert_eq!(sum.p99_ms, 2.9);
}

#[test]
fn percentiles_use_nearest_rank() {
    let mut samples: Vec<u32> = (1..=100).map(|v| v * 1000).collect();
    let s = LatencySummary::from_samples(&mut samples);
    assert_eq!(
        (s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms),
        (50.0, 95.0, 99.0, 100.0)
    );
    assert_eq!(s.mean_ms, 50.5);
    assert_eq!(
        LatencySummary::from_samples(&mut []),
        LatencySummary::default()
    );
}

#[test]
fn rule_violations_are_counted() {
    let mut s = StreamStats::new(OPUS);
    let mut p = pkt(OPUS, 100, 5000, 0);
    p.marker = false; // first packet without marker
    s.on_packet(0, &p, &Grid);
    let mut p = pkt(OPUS, 100, 5000, 1);
    p.timestamp = 5000 + 480; // half a frame: wrong step
    s.on_packet(20_000, &p, &Grid);
    let mut p = pkt(OPUS, 100, 5000, 2);
    p.timestamp = 5000 + 100; // behind the previous one
    s.on_packet(40_000, &p, &Grid);
    let mut p = pkt(OPUS, 100, 5000, 3);
    p.ssrc = 0xdead_beef; // another source
    s.on_packet(60_000, &p, &Grid);
    let mut p = pkt(OPUS, 100, 5000, 4);
    p.payload_type = 97;
    s.on_packet(80_000, &p, &Grid);
    let p = pkt(OPUS, 30_000, 5000, 5); // renumbered
    s.on_packet(100_000, &p, &Grid);
    let v = s.violations();
    assert_eq!(v.missing_first_marker, 1);
    assert_eq!(v.timestamp_backwards, 1);
    // Frame 1 (480 instead of 960) and frame 3 (7880 after the backwards 5100).
    assert_eq!(v.timestamp_step, 2, "{v:?}");
    assert_eq!(v.ssrc_change, 1);
    assert_eq!(v.payload_type, 1);
    assert_eq!(v.sequence_jump, 1);
    // The renumbering did not turn into thousands of lost packets.
    assert_eq!(s.summary(0, 0).lost, 0, "{:?}", s.summary(0, 0));
}

#[test]
fn g711_step_is_160_and_opus_960() {
    // A G.711-stepped stream checked as Opus breaks the step rule on every packet.
    let mut s = StreamStats::new(OPUS);
    for i in 0..10 {
        s.on_packet(u64::from(i) * 20_000, &pkt(PCMU, 1, 1, i), &Grid);
    }
    assert_eq!(s.violations().timestamp_step, 9);
    assert_eq!(s.violations().payload_type, 10);
    let s = feed(PCMU, &(0..10).collect::<Vec<_>>(), |_| 0);
    assert_eq!(s.violations().total(), 0);
}

#[test]
fn marker_after_silence_may_jump_timestamps() {
    let mut s = StreamStats::new(OPUS);
    s.on_packet(0, &pkt(OPUS, 1, 0, 0), &Grid);
    let mut p = pkt(OPUS, 1, 0, 1);
    p.timestamp = 960 * 10; // ten frames of DTX silence, then talk spurt with marker
    p.marker = true;
    s.on_packet(200_000, &p, &Grid);
    assert_eq!(s.violations().total(), 0);
}

#[test]
fn aggregate_sums_streams() {
    let a = feed(PCMU, &(0..50).collect::<Vec<_>>(), |_| 1_000).summary(50, 0);
    let b = feed(PCMU, &(0..48).collect::<Vec<_>>(), |_| 3_000).summary(50, 0);
    let mut lat: Vec<u32> = [vec![1_000u32; 50], vec![3_000u32; 48]].concat();
    let t = StreamSummary::aggregate([&a, &b], &mut lat);
    assert_eq!(t.streams, 2);
    assert_eq!(t.lost, 2);
    assert_eq!(t.expected, 100);
    assert_eq!(t.latency.samples, 98);
    assert_eq!(t.latency.max_ms, 3.0);
}

#[test]
fn silent_stream_is_all_loss() {
    let s = StreamStats::new(OPUS);
    let sum = s.summary(100, 1);
    assert_eq!(sum.silent_streams, 1);
    assert_eq!(sum.lost, 99);
    assert_eq!(sum.loss_pct(), 100.0);
}

#[test]
fn sequence_extension_handles_wrap_both_ways() {
    assert_eq!(extend(65_535, 0), 65_536);
    assert_eq!(extend(65_536, 65_535), 65_535);
    assert_eq!(extend(3 * 65_536 + 10, 5), 3 * 65_536 + 5);
    assert_eq!(extend(100, 99), 99);
}

#[test]
fn e_model_mos() {
    // No impairment: R = 93.2 gives MOS 4.41.
    let best = mos::mos_from_r(mos::r_factor(0.0, 0.0, mos::G711_PLC));
    assert!((best - 4.41).abs() < 0.01, "{best}");
    // Loss and delay each lower it; 5 % loss with PLC is R ~ 77.
    let lossy = mos::r_factor(0.0, 5.0, mos::G711_PLC);
    assert!((lossy - 77.4).abs() < 0.5, "{lossy}");
    assert!(mos::estimate(300.0, 5.0, 0.0) < mos::estimate(10.0, 0.5, 0.0));
    assert_eq!(mos::mos_from_r(-5.0), 1.0);
    assert_eq!(mos::mos_from_r(120.0), 4.5);
}
