//! Scenario harness: virtual time, peers that speak real RTP, a small netem, and checks on what
//! comes out of a session.
// Tests stand outside the session: they may read the clock to get a base instant.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusDecoder, OpusEncoder, SampleRate};
use bridgepool_codecs::quality;
use bridgepool_codecs::rtp::{RtpHeader, RtpPacket};
use bridgepool_codecs::telephone_event::TelephoneEvent;
use bridgepool_worker::session::{
    Channel, Leg, MAX_DATAGRAM, Session, SessionConfig, SessionEvent, StreamSeed,
};

/// The project's speech sample, 8 kHz mono.
pub fn speech() -> Vec<i16> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/speech_8k.wav"
    );
    let mut reader = hound::WavReader::open(path).expect("speech sample");
    assert_eq!(reader.spec().sample_rate, 8000);
    reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

/// The speech sample repeated to `seconds`.
pub fn speech_for(seconds: usize) -> Vec<i16> {
    let s = speech();
    s.iter().copied().cycle().take(seconds * 8000).collect()
}

/// One of the 48 kHz test voices (`en_male`, `en_female`, `de_male`, `es_female`, `recorded`),
/// its takes repeated with half a second of silence between to `seconds`, and the same at
/// 8 kHz (the reference for PESQ and correlation).
pub fn voice_48k(name: &str, seconds: usize) -> (Vec<i16>, Vec<i16>) {
    let path = format!(
        "{}/../testdata/speech/{name}_48k.wav",
        env!("CARGO_MANIFEST_DIR")
    );
    let take: Vec<i16> = hound::WavReader::open(&path)
        .expect("voice")
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let len = seconds * 48_000;
    let mut wide = Vec::with_capacity(len);
    while wide.len() < len {
        wide.extend_from_slice(&take);
        wide.resize(wide.len() + 24_000, 0);
    }
    wide.truncate(len);
    let narrow = bridgepool_codecs::resample::resample_all(&wide, 48_000, 8_000).expect("8 kHz");
    (wide, narrow)
}

pub fn seeds() -> (StreamSeed, StreamSeed) {
    (
        StreamSeed {
            ssrc: 0xA0A0_0001,
            sequence: 65_000,
            timestamp: 4_000_000_000,
        },
        StreamSeed {
            ssrc: 0xB0B0_0002,
            sequence: 65_500,
            timestamp: 4_294_000_000,
        },
    )
}

pub fn config(law: Law) -> SessionConfig {
    let (a, b) = seeds();
    SessionConfig::new(law, a, b)
}

/// A datagram that left the session.
#[derive(Clone, Debug)]
pub struct Sent {
    pub at: Instant,
    pub leg: Leg,
    pub channel: Channel,
    pub bytes: Vec<u8>,
}

impl Sent {
    pub fn rtp(&self) -> RtpPacket<'_> {
        RtpPacket::parse(&self.bytes).expect("session sent valid RTP")
    }
}

/// Drives a session on virtual time.
pub struct Harness {
    pub session: Session,
    pub t0: Instant,
    pub now: Instant,
    pub sent: Vec<Sent>,
    pub events: Vec<SessionEvent>,
    buf: Vec<u8>,
}

impl Harness {
    pub fn new(config: SessionConfig) -> Self {
        let t0 = Instant::now();
        let mut session = Session::new(config, t0).expect("valid config");
        session.answer(t0);
        Self {
            session,
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
            buf: vec![0; MAX_DATAGRAM],
        }
    }

    /// Advances virtual time to `until`, running every timer on the way.
    pub fn advance(&mut self, until: Instant) {
        while let Some(deadline) = self.session.poll_timeout() {
            if deadline > until {
                break;
            }
            self.now = self.now.max(deadline);
            self.session.handle_timeout(self.now);
            self.collect();
        }
        self.now = self.now.max(until);
    }

    pub fn feed(&mut self, at: Instant, leg: Leg, datagram: &[u8]) {
        self.advance(at);
        self.session
            .handle_datagram(self.now, leg, Channel::Rtp, datagram);
        self.collect();
    }

    pub fn feed_rtcp(&mut self, at: Instant, leg: Leg, datagram: &[u8]) {
        self.advance(at);
        self.session
            .handle_datagram(self.now, leg, Channel::Rtcp, datagram);
        self.collect();
    }

    pub fn collect(&mut self) {
        while let Some(t) = self.session.poll_transmit(&mut self.buf) {
            self.sent.push(Sent {
                at: self.now,
                leg: t.leg,
                channel: t.channel,
                bytes: self.buf[..t.len].to_vec(),
            });
        }
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
    }

    /// RTP sent toward `leg`.
    pub fn rtp_to(&self, leg: Leg) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| s.leg == leg && s.channel == Channel::Rtp)
            .collect()
    }

    pub fn rtcp_to(&self, leg: Leg) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| s.leg == leg && s.channel == Channel::Rtcp)
            .collect()
    }
}

/// One packet a peer sends, before the network touches it.
#[derive(Clone, Debug)]
pub struct Packet {
    pub send_at: Duration,
    pub bytes: Vec<u8>,
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 12 + payload.len()];
    let n = RtpHeader {
        marker,
        payload_type: pt,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
    }
    .write(&mut out)
    .expect("header");
    out[n..].copy_from_slice(payload);
    out
}

/// A G.711 peer: `audio` cut into packets of `ptime_ms`, paced in real time.
pub fn g711_stream(
    law: Law,
    pt: u8,
    audio: &[i16],
    ptime_ms: usize,
    ssrc: u32,
    first_seq: u16,
    first_ts: u32,
) -> Vec<Packet> {
    let frame = ptime_ms * 8;
    let mut out = Vec::new();
    for (i, chunk) in audio.chunks_exact(frame).enumerate() {
        let mut payload = vec![0u8; frame];
        law.encode(chunk, &mut payload);
        out.push(Packet {
            send_at: Duration::from_millis((i * ptime_ms) as u64),
            bytes: rtp(
                pt,
                first_seq.wrapping_add(i as u16),
                first_ts.wrapping_add((i * frame) as u32),
                ssrc,
                i == 0,
                &payload,
            ),
        });
    }
    out
}

/// An Opus peer (48 kHz RTP clock), encoding `audio` given at 8 kHz: SILK narrowband, FEC
/// as told. An easy stream (FEC in every packet when `loss_pct` > 0); [`ClientPeer`] sends what
/// browsers and apps send.
pub struct OpusPeer {
    pub fec: bool,
    pub dtx: bool,
    pub loss_pct: u8,
    pub ptime_ms: usize,
}

impl OpusPeer {
    pub fn stream(
        &self,
        pt: u8,
        audio: &[i16],
        ssrc: u32,
        first_seq: u16,
        first_ts: u32,
    ) -> Vec<Packet> {
        let config = EncoderConfig {
            sample_rate: SampleRate::Hz8000,
            bitrate: 24_000,
            inband_fec: self.fec,
            dtx: self.dtx,
            expected_loss_pct: self.loss_pct,
            ..EncoderConfig::default()
        };
        opus_stream(&config, self.ptime_ms, pt, audio, ssrc, first_seq, first_ts)
    }
}

/// A WebRTC browser or mobile app ([`EncoderConfig::webrtc_client`], `mobile_client`): 48 kHz
/// speech, fullband hybrid frames of 20 ms, FEC only as much as the loss it expects (a browser
/// on a clean path expects none, so its packets carry no FEC).
pub struct ClientPeer {
    pub config: EncoderConfig,
}

impl ClientPeer {
    /// `audio` at 48 kHz.
    pub fn stream(&self, pt: u8, audio: &[i16], ssrc: u32) -> Vec<Packet> {
        assert_eq!(self.config.sample_rate, SampleRate::Hz48000);
        opus_stream(&self.config, 20, pt, audio, ssrc, 1, 0)
    }
}

fn opus_stream(
    config: &EncoderConfig,
    ptime_ms: usize,
    pt: u8,
    audio: &[i16],
    ssrc: u32,
    first_seq: u16,
    first_ts: u32,
) -> Vec<Packet> {
    let mut enc = OpusEncoder::new(config).expect("encoder");
    let frame = ptime_ms * config.sample_rate.hz() as usize / 1000;
    let ticks = ptime_ms * 48;
    let mut out = Vec::new();
    let mut seq = first_seq;
    let mut marker = true;
    let mut buf = [0u8; 1500];
    for (i, chunk) in audio.chunks_exact(frame).enumerate() {
        let n = enc.encode(chunk, &mut buf).expect("encode");
        if config.dtx && n <= 2 {
            marker = true;
            continue;
        }
        out.push(Packet {
            send_at: Duration::from_millis((i * ptime_ms) as u64),
            bytes: rtp(
                pt,
                seq,
                first_ts.wrapping_add((i * ticks) as u32),
                ssrc,
                marker,
                &buf[..n],
            ),
        });
        marker = false;
        seq = seq.wrapping_add(1);
    }
    out
}

/// A deterministic network: drops, delays (jitter) and duplicates by a seeded generator.
pub struct Netem {
    state: u64,
    pub loss: f64,
    pub jitter_ms: u64,
    pub duplicate: f64,
    pub base_delay_ms: u64,
}

impl Netem {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.max(1),
            loss: 0.0,
            jitter_ms: 0,
            duplicate: 0.0,
            base_delay_ms: 5,
        }
    }

    fn next(&mut self) -> f64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Returns (arrival time, bytes) sorted by arrival.
    pub fn apply(&mut self, packets: &[Packet]) -> Vec<(Duration, Vec<u8>)> {
        let mut out = Vec::new();
        for p in packets {
            if self.next() < self.loss {
                continue;
            }
            let delay = self.base_delay_ms + (self.next() * self.jitter_ms as f64) as u64;
            out.push((p.send_at + Duration::from_millis(delay), p.bytes.clone()));
            if self.next() < self.duplicate {
                out.push((
                    p.send_at + Duration::from_millis(delay + 3),
                    p.bytes.clone(),
                ));
            }
        }
        out.sort_by_key(|(t, _)| *t);
        out
    }
}

/// Feeds arrivals (relative to the harness start) into one leg, then runs time on by `tail`.
pub fn play(h: &mut Harness, leg: Leg, arrivals: &[(Duration, Vec<u8>)], tail: Duration) {
    let t0 = h.t0;
    for (at, bytes) in arrivals {
        h.feed(t0 + *at, leg, bytes);
    }
    let end = arrivals.last().map_or(Duration::ZERO, |(t, _)| *t) + tail;
    h.advance(t0 + end);
}

/// Merges two legs' arrivals in time order and plays them.
pub fn play_both(
    h: &mut Harness,
    a: &[(Duration, Vec<u8>)],
    b: &[(Duration, Vec<u8>)],
    tail: Duration,
) {
    let mut all: Vec<(Duration, Leg, &Vec<u8>)> = a
        .iter()
        .map(|(t, p)| (*t, Leg::A, p))
        .chain(b.iter().map(|(t, p)| (*t, Leg::B, p)))
        .collect();
    all.sort_by_key(|(t, l, _)| (*t, *l == Leg::B));
    let t0 = h.t0;
    for (at, leg, bytes) in &all {
        h.feed(t0 + *at, *leg, bytes);
    }
    let end = all.last().map_or(Duration::ZERO, |(t, _, _)| *t) + tail;
    h.advance(t0 + end);
}

pub fn no_delay(packets: &[Packet]) -> Vec<(Duration, Vec<u8>)> {
    packets
        .iter()
        .map(|p| (p.send_at + Duration::from_millis(5), p.bytes.clone()))
        .collect()
}

/// Decodes the Opus stream sent toward leg B to 8 kHz, placing frames by RTP timestamp (gaps
/// become silence), so the result lines up with the input in time.
pub fn decode_opus_output(sent: &[&Sent], audio_pt: u8) -> Vec<i16> {
    let mut dec = OpusDecoder::new(SampleRate::Hz8000).expect("decoder");
    let mut out: Vec<i16> = Vec::new();
    let mut base: Option<u32> = None;
    let mut pcm = [0i16; 960];
    for s in sent {
        let p = s.rtp();
        if p.payload_type() != audio_pt {
            continue;
        }
        let base = *base.get_or_insert(p.timestamp());
        let at = (p.timestamp().wrapping_sub(base) / 6) as usize;
        let n = dec.decode(p.payload(), &mut pcm).expect("our Opus decodes");
        if out.len() < at {
            out.resize(at, 0);
        }
        out.truncate(at);
        out.extend_from_slice(&pcm[..n]);
    }
    out
}

/// Decodes the G.711 stream sent toward leg A.
pub fn decode_g711_output(sent: &[&Sent], law: Law, audio_pt: u8) -> Vec<i16> {
    let mut out = Vec::new();
    for s in sent {
        let p = s.rtp();
        if p.payload_type() != audio_pt {
            continue;
        }
        let start = out.len();
        out.resize(start + p.payload().len(), 0);
        law.decode(p.payload(), &mut out[start..]);
    }
    out
}

/// Normalized correlation of `degraded` against `reference` after the best alignment.
pub fn similarity(reference: &[i16], degraded: &[i16]) -> quality::Similarity {
    quality::align_and_compare(reference, degraded, 8000)
}

/// The RTP rules every output stream keeps: one SSRC, continuous sequence numbers, audio
/// timestamps that never go backwards (an RFC 4733 event keeps its start timestamp, so event
/// packets may sit behind the audio). Returns the distinct audio timestamp steps seen.
pub fn check_stream_rules(sent: &[&Sent], audio_pt: u8) -> Vec<u32> {
    assert!(!sent.is_empty(), "no packets sent");
    let first = sent[0].rtp();
    let ssrc = first.ssrc();
    let mut last_seq = first.sequence_number();
    let mut last_ts = first.timestamp();
    let mut steps = Vec::new();
    for s in &sent[1..] {
        let p = s.rtp();
        if p.payload_type() != audio_pt {
            assert_eq!(p.ssrc(), ssrc, "one SSRC per output stream");
            assert_eq!(p.sequence_number(), last_seq.wrapping_add(1));
            last_seq = p.sequence_number();
            continue;
        }
        assert_eq!(p.ssrc(), ssrc, "one SSRC per output stream");
        assert_eq!(
            p.sequence_number(),
            last_seq.wrapping_add(1),
            "sequence numbers are continuous"
        );
        let step = p.timestamp().wrapping_sub(last_ts);
        assert!(
            step < 1 << 31,
            "timestamp went backwards: {last_ts} -> {}",
            p.timestamp()
        );
        if p.payload_type() == audio_pt && step != 0 && !steps.contains(&step) {
            steps.push(step);
        }
        last_seq = p.sequence_number();
        last_ts = p.timestamp();
    }
    steps
}

pub fn telephone_event(p: &RtpPacket<'_>) -> TelephoneEvent {
    TelephoneEvent::parse(p.payload()).expect("event payload")
}

pub fn event_packet(
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    e: TelephoneEvent,
) -> Vec<u8> {
    let mut payload = [0u8; 4];
    e.write(&mut payload).expect("event");
    rtp(pt, seq, ts, ssrc, marker, &payload)
}

pub fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    rtp(pt, seq, ts, ssrc, marker, payload)
}

/// A seeded delay pattern: `share` of the packets are held `lo..hi` ms more. Without
/// `reorder` a held packet holds back the ones behind it (a FIFO queue), with it they overtake.
pub struct Jitter {
    state: u64,
    share: f64,
    lo: u64,
    hi: u64,
    reorder: bool,
}

impl Jitter {
    pub fn new(seed: u64, share: f64, lo: u64, hi: u64, reorder: bool) -> Self {
        Self {
            state: seed.max(1),
            share,
            lo,
            hi,
            reorder,
        }
    }

    fn next(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Arrival time of a packet sent at `send_at`, given the previous arrival.
    fn arrival(&mut self, send_at: Duration, previous: Duration) -> Duration {
        let mut at = send_at + Duration::from_millis(5);
        if self.next() < self.share {
            let extra = self.lo + (self.next() * (self.hi - self.lo) as f64) as u64;
            at += Duration::from_millis(extra);
        }
        if self.reorder { at } else { at.max(previous) }
    }

    pub fn apply(&mut self, packets: &[Packet]) -> Vec<(Duration, Vec<u8>)> {
        let mut previous = Duration::ZERO;
        let mut out: Vec<(Duration, Vec<u8>)> = packets
            .iter()
            .map(|p| {
                previous = self.arrival(p.send_at, previous);
                (previous, p.bytes.clone())
            })
            .collect();
        out.sort_by_key(|(t, _)| *t);
        out
    }
}
