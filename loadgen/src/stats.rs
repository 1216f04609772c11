//! Measurement of one received RTP stream, on plain numbers (arrival times in microseconds since
//! the run's epoch), so it is tested on synthetic packet sequences.
//!
//! Per stream: packets, loss (sequence gaps), duplicates, reordering, RFC 3550 interarrival jitter,
//! added latency and RTP rule violations. Latency matches output to input by media time: the first
//! packet received carries input frame 0 (the stream's first), so output timestamp `ts` carries
//! input frame `(ts - first_ts) / step`; latency is its arrival minus that frame's send time.

use serde::{Deserialize, Serialize};

/// Where the send time of an input frame is found.
pub trait SendTimes {
    /// Microseconds since the epoch at which frame `frame` of the input stream left, if known.
    fn sent_at_us(&self, frame: u64) -> Option<u64>;
    /// Frames sent so far.
    fn frames_sent(&self) -> u64;
}

/// What a received stream must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamExpectation {
    /// Payload type negotiated for the stream.
    pub payload_type: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Timestamp increment per packet (960 for 20 ms Opus, 160 for G.711).
    pub timestamp_step: u32,
}

/// Counts of RTP rule violations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleViolations {
    /// Consecutive packets whose timestamps do not differ by the step (times the sequence gap).
    pub timestamp_step: u64,
    /// Timestamps going backwards between packets in sequence order.
    pub timestamp_backwards: u64,
    /// Sequence jumps too large to be loss (a restarted numbering).
    pub sequence_jump: u64,
    /// Packets with another SSRC than the stream's first.
    pub ssrc_change: u64,
    /// The stream's first packet without the marker bit.
    pub missing_first_marker: u64,
    /// Packets with an unexpected payload type.
    pub payload_type: u64,
}

impl RuleViolations {
    /// All violations.
    pub fn total(&self) -> u64 {
        self.timestamp_step
            + self.timestamp_backwards
            + self.sequence_jump
            + self.ssrc_change
            + self.missing_first_marker
            + self.payload_type
    }

    /// Adds another set.
    pub fn add(&mut self, o: &Self) {
        self.timestamp_step += o.timestamp_step;
        self.timestamp_backwards += o.timestamp_backwards;
        self.sequence_jump += o.sequence_jump;
        self.ssrc_change += o.ssrc_change;
        self.missing_first_marker += o.missing_first_marker;
        self.payload_type += o.payload_type;
    }
}

/// Width of the buckets that count delivered packets by their input's send time, µs.
pub const DELIVERY_BUCKET_US: u64 = 100_000;

/// A sequence gap beyond this is a renumbering, not loss.
pub const MAX_SEQUENCE_GAP: u64 = 200;
/// Window of sequence numbers remembered for duplicate detection.
const SEEN_WINDOW: u64 = 1024;

/// Payloads kept for the audio-quality check: up to `max` `(extended sequence number, payload)`.
#[derive(Clone, Debug)]
struct Capture {
    max: usize,
    frames: Vec<(u64, Vec<u8>)>,
}

/// The running measurement of one received stream.
#[derive(Clone, Debug)]
pub struct StreamStats {
    expect: StreamExpectation,
    received: u64,
    bytes: u64,
    duplicates: u64,
    reordered: u64,
    rtcp: u64,
    malformed: u64,
    first_ext: Option<u64>,
    highest_ext: u64,
    highest_ts: u32,
    seen: Vec<u64>,
    ssrc: Option<u32>,
    first_ts: u32,
    last_transit: Option<f64>,
    jitter: f64,
    latencies_us: Vec<u32>,
    interval_latencies_us: Vec<u32>,
    interval_received: u64,
    delivered: Vec<u32>,
    negative_latency: u64,
    violations: RuleViolations,
    capture: Option<Capture>,
}

impl StreamStats {
    /// A stream that has received nothing yet.
    pub fn new(expect: StreamExpectation) -> Self {
        Self {
            expect,
            received: 0,
            bytes: 0,
            duplicates: 0,
            reordered: 0,
            rtcp: 0,
            malformed: 0,
            first_ext: None,
            highest_ext: 0,
            highest_ts: 0,
            seen: vec![0; (SEEN_WINDOW / 64) as usize],
            ssrc: None,
            first_ts: 0,
            last_transit: None,
            jitter: 0.0,
            latencies_us: Vec::new(),
            interval_latencies_us: Vec::new(),
            interval_received: 0,
            delivered: Vec::new(),
            negative_latency: 0,
            violations: RuleViolations::default(),
            capture: None,
        }
    }

    /// Keeps the payloads of the first `max_frames` packets (for audio quality).
    pub fn capture_payloads(&mut self, max_frames: usize) {
        self.capture = Some(Capture {
            max: max_frames,
            frames: Vec::with_capacity(max_frames.min(4096)),
        });
    }

    /// Counts a datagram that is RTCP.
    pub fn on_rtcp(&mut self) {
        self.rtcp += 1;
    }

    /// Counts a datagram that is neither RTP nor RTCP.
    pub fn on_malformed(&mut self) {
        self.malformed += 1;
    }

    /// Feeds one RTP packet that arrived at `arrival_us`; `input` gives the matching input's send
    /// times (the other leg's sender).
    pub fn on_packet(&mut self, arrival_us: u64, packet: &RtpFields<'_>, input: &dyn SendTimes) {
        self.received += 1;
        self.bytes += packet.payload.len() as u64;
        if packet.payload_type != self.expect.payload_type {
            self.violations.payload_type += 1;
        }
        match self.ssrc {
            None => self.ssrc = Some(packet.ssrc),
            Some(s) if s != packet.ssrc => self.violations.ssrc_change += 1,
            Some(_) => {}
        }
        let Some(first) = self.first_ext else {
            self.first_packet(arrival_us, packet, input);
            return;
        };
        let ext = extend(self.highest_ext, packet.sequence_number);
        if ext.abs_diff(self.highest_ext) > MAX_SEQUENCE_GAP || ext < first {
            // A renumbered stream: restart sequence tracking from here instead of counting
            // thousands of phantom losses.
            self.violations.sequence_jump += 1;
            self.restart_sequence(ext, packet.timestamp);
            self.accept(arrival_us, packet, ext, input);
            return;
        }
        if ext <= self.highest_ext && self.seen(ext) {
            self.duplicates += 1;
            return;
        }
        if ext < self.highest_ext {
            self.reordered += 1;
        } else {
            self.check_timestamp(packet, ext - self.highest_ext);
            self.advance(ext);
            self.highest_ext = ext;
            self.highest_ts = packet.timestamp;
        }
        self.accept(arrival_us, packet, ext, input);
    }

    fn first_packet(&mut self, arrival_us: u64, packet: &RtpFields<'_>, input: &dyn SendTimes) {
        if !packet.marker {
            self.violations.missing_first_marker += 1;
        }
        // Extended numbering starts one cycle up, so a reordered earlier packet stays positive.
        let ext = (1u64 << 16) | u64::from(packet.sequence_number);
        self.first_ts = packet.timestamp;
        self.restart_sequence(ext, packet.timestamp);
        self.accept(arrival_us, packet, ext, input);
    }

    fn restart_sequence(&mut self, ext: u64, ts: u32) {
        // Packets counted so far (this one included) stay counted as received, not lost.
        self.first_ext = Some((ext + 1).saturating_sub(self.received_unique()));
        self.highest_ext = ext;
        self.highest_ts = ts;
        self.seen.iter_mut().for_each(|w| *w = 0);
    }

    fn check_timestamp(&mut self, packet: &RtpFields<'_>, seq_delta: u64) {
        let delta = packet.timestamp.wrapping_sub(self.highest_ts) as i32;
        let expected = u64::from(self.expect.timestamp_step) * seq_delta;
        if delta < 0 {
            self.violations.timestamp_backwards += 1;
        } else if delta as u64 != expected {
            // After silence (marker set) the timestamp may jump by whole frames.
            let whole = (delta as u64).is_multiple_of(u64::from(self.expect.timestamp_step));
            if !(packet.marker && whole && delta as u64 > expected) {
                self.violations.timestamp_step += 1;
            }
        }
    }

    /// Whether `ext` was already received; packets older than the window count as new.
    fn seen(&self, ext: u64) -> bool {
        if ext + SEEN_WINDOW <= self.highest_ext {
            return false;
        }
        let slot = ext % SEEN_WINDOW;
        self.seen[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }

    fn mark(&mut self, ext: u64) {
        if ext + SEEN_WINDOW > self.highest_ext {
            let slot = ext % SEEN_WINDOW;
            self.seen[(slot / 64) as usize] |= 1 << (slot % 64);
        }
    }

    /// Slides the window up to `to`: the slots of the new numbers still hold bits from one window
    /// earlier.
    fn advance(&mut self, to: u64) {
        for ext in (self.highest_ext + 1..=to).take(SEEN_WINDOW as usize) {
            let slot = ext % SEEN_WINDOW;
            self.seen[(slot / 64) as usize] &= !(1 << (slot % 64));
        }
    }

    fn accept(&mut self, arrival_us: u64, packet: &RtpFields<'_>, ext: u64, input: &dyn SendTimes) {
        self.mark(ext);
        self.interval_received += 1;
        // RFC 3550 A.8: transit in timestamp units, J += (|D| - J) / 16.
        let arrival_units = arrival_us as f64 * f64::from(self.expect.clock_rate) / 1e6;
        let transit = arrival_units - f64::from(packet.timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // A jump of half the timestamp space is a wrap, not jitter.
            if d < f64::from(u32::MAX / 2) {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
        let rel = packet.timestamp.wrapping_sub(self.first_ts) as i32;
        let step = self.expect.timestamp_step as i32;
        if rel >= 0 {
            let frame = ((rel + step / 2) / step) as u64;
            if let Some(sent) = input.sent_at_us(frame) {
                let bucket = (sent / DELIVERY_BUCKET_US) as usize;
                if self.delivered.len() <= bucket {
                    self.delivered.resize(bucket + 1, 0);
                }
                self.delivered[bucket] += 1;
                match arrival_us.checked_sub(sent) {
                    Some(lat) => {
                        let lat = u32::try_from(lat).unwrap_or(u32::MAX);
                        self.latencies_us.push(lat);
                        self.interval_latencies_us.push(lat);
                    }
                    None => self.negative_latency += 1,
                }
            }
        }
        if let Some(c) = &mut self.capture
            && c.frames.len() < c.max
        {
            c.frames.push((ext, packet.payload.to_vec()));
        }
    }

    /// Distinct packets received.
    pub fn received_unique(&self) -> u64 {
        self.received - self.duplicates
    }

    /// Takes the latencies and packet count since the last call (for the timeline).
    pub fn take_interval(&mut self, latencies: &mut Vec<u32>) -> u64 {
        latencies.append(&mut self.interval_latencies_us);
        std::mem::take(&mut self.interval_received)
    }

    /// Distinct packets received, counted by the send time of the input they carry, in
    /// [`DELIVERY_BUCKET_US`] buckets since the epoch. Unlike arrivals per interval, this does not
    /// depend on what is in flight when an interval closes.
    pub fn delivered(&self) -> &[u32] {
        &self.delivered
    }

    /// Captured `(extended sequence number, payload)` pairs.
    pub fn captured(&self) -> &[(u64, Vec<u8>)] {
        self.capture.as_ref().map_or(&[], |c| c.frames.as_slice())
    }

    /// The summary, with `sent` the packets the input leg sent for this output (0 when unknown).
    /// Loss is the larger of the sequence gaps and the packets missing against what was sent
    /// (less `held`, the frames a transcoder may keep at the end of a stream).
    pub fn summary(&self, sent: u64, held: u64) -> StreamSummary {
        let unique = self.received_unique();
        let expected_seq = self.first_ext.map_or(0, |f| self.highest_ext + 1 - f);
        let gap_lost = expected_seq.saturating_sub(unique);
        let missing = sent.saturating_sub(held).saturating_sub(unique);
        let lost = gap_lost.max(missing);
        let expected = expected_seq.max(sent.saturating_sub(held)).max(unique);
        let mut summary = StreamSummary {
            streams: 1,
            silent_streams: u64::from(self.received == 0 && sent > held),
            sent,
            received: self.received,
            expected,
            lost,
            duplicates: self.duplicates,
            reordered: self.reordered,
            rtcp: self.rtcp,
            malformed: self.malformed,
            jitter_ms_mean: self.jitter_ms(),
            jitter_ms_max: self.jitter_ms(),
            latency: LatencySummary::default(),
            negative_latency: self.negative_latency,
            violations: self.violations,
        };
        summary.latency = LatencySummary::from_samples(&mut self.latencies_us.clone());
        summary
    }

    /// RFC 3550 interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.expect.clock_rate)
    }

    /// All latency samples (microseconds).
    pub fn latencies_us(&self) -> &[u32] {
        &self.latencies_us
    }

    /// Rule violations so far.
    pub fn violations(&self) -> RuleViolations {
        self.violations
    }
}

/// The header fields and payload of a received packet.
#[derive(Clone, Copy, Debug)]
pub struct RtpFields<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload, padding removed.
    pub payload: &'a [u8],
}

impl<'a> From<&bridgepool_codecs::rtp::RtpPacket<'a>> for RtpFields<'a> {
    fn from(p: &bridgepool_codecs::rtp::RtpPacket<'a>) -> Self {
        Self {
            marker: p.marker(),
            payload_type: p.payload_type(),
            sequence_number: p.sequence_number(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            payload: p.payload(),
        }
    }
}

/// Extends a 16-bit sequence number to the 64-bit value nearest `highest`.
pub fn extend(highest: u64, seq: u16) -> u64 {
    let base = highest & !0xFFFF;
    let candidate = base | u64::from(seq);
    let candidates = [
        candidate.wrapping_sub(1 << 16),
        candidate,
        candidate + (1 << 16),
    ];
    candidates
        .into_iter()
        .filter(|&c| c < u64::MAX / 2)
        .min_by_key(|&c| c.abs_diff(highest))
        .unwrap_or(candidate)
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl LatencySummary {
    /// Percentiles of `samples` (microseconds); sorts them.
    pub fn from_samples(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            f64::from(samples[rank - 1]) / 1000.0
        };
        let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
        Self {
            samples: samples.len() as u64,
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: f64::from(samples[samples.len() - 1]) / 1000.0,
            mean_ms: sum as f64 / samples.len() as f64 / 1000.0,
        }
    }
}

/// The measurement of one stream, or the sum over many.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// Streams summed here.
    pub streams: u64,
    /// Streams that received nothing although their input was sent.
    pub silent_streams: u64,
    /// Packets the input leg sent.
    pub sent: u64,
    /// Packets received, duplicates included.
    pub received: u64,
    /// Packets that should have arrived.
    pub expected: u64,
    /// Packets that did not arrive.
    pub lost: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Packets that arrived after a later one.
    pub reordered: u64,
    /// RTCP datagrams received (not counted as RTP).
    pub rtcp: u64,
    /// Datagrams that were neither RTP nor RTCP.
    pub malformed: u64,
    /// Mean RFC 3550 jitter over streams, ms.
    pub jitter_ms_mean: f64,
    /// Largest RFC 3550 jitter of a stream, ms.
    pub jitter_ms_max: f64,
    /// Added latency.
    pub latency: LatencySummary,
    /// Output packets that arrived before their input was sent (a mismatched alignment).
    pub negative_latency: u64,
    /// RTP rule violations.
    pub violations: RuleViolations,
}

impl StreamSummary {
    /// Loss in percent of the expected packets.
    pub fn loss_pct(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.expected as f64
        }
    }

    /// Sums stream summaries; latency percentiles come from `latencies_us` (all samples).
    pub fn aggregate<'a>(
        parts: impl IntoIterator<Item = &'a Self>,
        latencies_us: &mut [u32],
    ) -> Self {
        let mut total = Self::default();
        let mut jitter_sum = 0.0;
        for p in parts {
            total.streams += p.streams;
            total.silent_streams += p.silent_streams;
            total.sent += p.sent;
            total.received += p.received;
            total.expected += p.expected;
            total.lost += p.lost;
            total.duplicates += p.duplicates;
            total.reordered += p.reordered;
            total.rtcp += p.rtcp;
            total.malformed += p.malformed;
            total.negative_latency += p.negative_latency;
            jitter_sum += p.jitter_ms_mean * p.streams as f64;
            total.jitter_ms_max = total.jitter_ms_max.max(p.jitter_ms_max);
            total.violations.add(&p.violations);
        }
        if total.streams > 0 {
            total.jitter_ms_mean = jitter_sum / total.streams as f64;
        }
        total.latency = LatencySummary::from_samples(latencies_us);
        total
    }
}
