//! The one-way job pipeline (`session/oneway.rs`, rtpengine `transform`) on virtual time:
//! PCMU -> Opus on the 48 kHz clock and decodable, Opus and PCMU -> PCMA on one job, garbage
//! counted, unsupported pairs refused.

use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusDecoder, SampleRate};
use bridgepool_codecs::rtp::{RtpHeader, RtpPacket};
use bridgepool_worker::session::oneway::{OneWay, OneWayCodec, OneWayPair};
use bridgepool_worker::session::{JitterBuffer, StreamSeed};

/// Any instant will do as the start of virtual time; the job itself never reads a clock.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn seed() -> StreamSeed {
    StreamSeed {
        ssrc: 0x1234_5678,
        sequence: 100,
        timestamp: 5000,
    }
}

fn pair(input: OneWayCodec, input_pt: u8, output: OneWayCodec, output_pt: u8) -> OneWayPair {
    OneWayPair {
        input,
        input_pt,
        output,
        output_pt,
        ptime: Duration::from_millis(20),
        encoder: EncoderConfig::default(),
        seed: seed(),
        jitter: JitterBuffer::default(),
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 12 + payload.len()];
    let h = RtpHeader {
        marker: false,
        payload_type: pt,
        sequence_number: seq,
        timestamp: ts,
        ssrc: 0x0123_4567,
    }
    .write(&mut buf)
    .unwrap();
    buf[h..h + payload.len()].copy_from_slice(payload);
    buf
}

fn tone(n: usize, law: Law) -> Vec<u8> {
    let pcm: Vec<i16> = (0..n)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let mut out = vec![0u8; n];
    law.encode(&pcm, &mut out);
    out
}

fn drain(job: &mut OneWay) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(n) = job.poll_transmit(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn pcmu_to_opus_runs_on_the_48k_clock() {
    let mut job = OneWay::new(
        &[pair(OneWayCodec::G711(Law::Ulaw), 0, OneWayCodec::Opus, 96)],
        Duration::from_secs(30),
    )
    .unwrap();
    let t0 = epoch();
    let payload = tone(160, Law::Ulaw);
    let mut sent = Vec::new();
    for i in 0..50u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        job.handle_datagram(now, &rtp(0, 1000 + i, 3000 + 160 * u32::from(i), &payload));
        sent.extend(drain(&mut job));
    }
    assert_eq!(sent.len(), 50);
    let mut decoder = OpusDecoder::new(SampleRate::Hz48000).unwrap();
    let mut pcm = vec![0i16; 5760];
    for (i, d) in sent.iter().enumerate() {
        let p = RtpPacket::parse(d).unwrap();
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.ssrc(), 0x1234_5678);
        assert_eq!(p.sequence_number(), 100 + i as u16);
        assert_eq!(p.timestamp(), 5000 + 960 * i as u32);
        assert_eq!(decoder.decode(p.payload(), &mut pcm).unwrap(), 960);
    }
    assert_eq!(job.stats().packets_in, 50);
    assert_eq!(job.stats().packets_out, 50);
}

#[test]
fn opus_to_pcma_and_pcmu_to_pcma_on_one_job() {
    let mut job = OneWay::new(
        &[
            pair(
                OneWayCodec::G711(Law::Ulaw),
                0,
                OneWayCodec::G711(Law::Alaw),
                8,
            ),
            pair(OneWayCodec::Opus, 96, OneWayCodec::G711(Law::Alaw), 8),
        ],
        Duration::from_secs(30),
    )
    .unwrap();
    let t0 = epoch();
    job.handle_datagram(t0, &rtp(0, 1, 160, &tone(160, Law::Ulaw)));
    let out = drain(&mut job);
    assert_eq!(out.len(), 1);
    let p = RtpPacket::parse(&out[0]).unwrap();
    assert_eq!(p.payload_type(), 8);
    assert_eq!(p.payload().len(), 160);
    // Opus on the same job: the payload type picks the other pipeline.
    let mut enc = bridgepool_codecs::opus::OpusEncoder::new(&EncoderConfig::default()).unwrap();
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let mut opus = [0u8; 400];
    let n = enc.encode(&pcm, &mut opus).unwrap();
    job.handle_datagram(t0 + Duration::from_millis(1), &rtp(96, 7, 960, &opus[..n]));
    // The jitter buffer holds one packet in hand: the frame leaves on the output clock.
    run_timers(&mut job, t0 + Duration::from_millis(31));
    let out = drain(&mut job);
    assert_eq!(out.len(), 1);
    let p = RtpPacket::parse(&out[0]).unwrap();
    assert_eq!((p.payload_type(), p.payload().len()), (8, 160));
}

#[test]
fn unknown_pts_rtcp_and_garbage_are_counted_and_idle_ends_the_job() {
    let mut job = OneWay::new(
        &[pair(OneWayCodec::Opus, 96, OneWayCodec::G711(Law::Ulaw), 0)],
        Duration::from_secs(1),
    )
    .unwrap();
    let t0 = epoch();
    // No input yet: no timer (the driver arms the idle clock at creation).
    assert!(job.poll_timeout().is_none());
    job.handle_datagram(t0, &rtp(8, 1, 0, &[0; 160]));
    // An rtcp-muxed receiver report.
    job.handle_datagram(t0, &[0x80, 201, 0, 1, 0, 0, 0, 1]);
    job.handle_datagram(t0, &[0x80, 0x60]);
    job.handle_datagram(t0, &rtp(96, 3, 0, &[0xff; 3]));
    assert_eq!(job.stats().errors, 4);
    assert_eq!(job.stats().packets_in, 0);
    assert!(drain(&mut job).is_empty());
    job.arm(t0);
    let idle_at = job.poll_timeout().unwrap();
    assert!(idle_at <= t0 + Duration::from_secs(1));
    job.handle_timeout(t0 + Duration::from_secs(1));
    assert!(job.ended());
    assert!(job.poll_timeout().is_none());
}

#[test]
fn same_codec_pairs_and_bad_ptime_are_refused() {
    let idle = Duration::from_secs(1);
    assert!(OneWay::new(&[pair(OneWayCodec::Opus, 96, OneWayCodec::Opus, 97)], idle).is_err());
    let mut p = pair(OneWayCodec::G711(Law::Ulaw), 0, OneWayCodec::Opus, 96);
    p.ptime = Duration::from_millis(25);
    assert!(OneWay::new(&[p], idle).is_err());
    assert!(OneWay::new(&[], idle).is_err());
}

/// An Opus -> G.711 job's output ends with its input, as a relay transcoding locally would
/// (a two-way session keeps its G.711 stream continuous instead): 50 frames in, at most three
/// frames of concealment tail (a loss burst's worth) beyond them out, however long the clock runs.
#[test]
fn opus_to_g711_output_stops_when_the_input_stops() {
    let mut job = OneWay::new(
        &[pair(OneWayCodec::Opus, 96, OneWayCodec::G711(Law::Ulaw), 0)],
        Duration::from_secs(30),
    )
    .unwrap();
    let mut enc = bridgepool_codecs::opus::OpusEncoder::new(&EncoderConfig::default()).unwrap();
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let mut opus = [0u8; 400];
    let t0 = epoch();
    let mut out = 0;
    let mut now = t0;
    for i in 0..50u16 {
        now = t0 + Duration::from_millis(20 * u64::from(i));
        while let Some(due) = job.poll_timeout().filter(|d| *d <= now) {
            job.handle_timeout(due);
            out += drain(&mut job).len();
        }
        let n = enc.encode(&pcm, &mut opus).unwrap();
        job.handle_datagram(now, &rtp(96, i, 960 * u32::from(i), &opus[..n]));
        out += drain(&mut job).len();
    }
    // The jitter buffer keeps one packet in hand (22 ms): the last frames are still to leave.
    assert!((48..=50).contains(&out), "{out}");
    // Two seconds with no input, timers run as the driver runs them.
    let end = now + Duration::from_secs(2);
    while let Some(due) = job.poll_timeout().filter(|d| *d <= end) {
        job.handle_timeout(due);
        out += drain(&mut job).len();
    }
    assert!((50..=53).contains(&out), "{out} packets out for 50 in");
    // The next packet starts the stream again.
    let n = enc.encode(&pcm, &mut opus).unwrap();
    job.handle_datagram(end, &rtp(96, 50, 960 * 150, &opus[..n]));
    run_timers(&mut job, end + Duration::from_millis(30));
    assert!(!drain(&mut job).is_empty());
}

/// Runs the job's timers due up to `until`, as the driver does.
fn run_timers(job: &mut OneWay, until: Instant) {
    while let Some(due) = job.poll_timeout().filter(|d| *d <= until) {
        job.handle_timeout(due);
    }
}
