//! A one-way job as a sans-IO state machine: one input RTP stream in, one transcoded stream out,
//! for rtpengine's `transform` (the relay hands one direction of a call to the pool).
//!
//! Built from the two-way [`super::Session`]'s direction halves, not a copy: [`G711ToOpus`] for
//! PCMU/PCMA -> Opus, [`OpusToG711`] for Opus -> PCMU/PCMA (FEC/PLC and its playout clock), and
//! [`RtpOut`] for every output (own SSRC and sequence, timestamps on the output clock, marker after
//! silence). PCMU <-> PCMA re-encodes sample by sample. Several pairs can share a job; the input
//! payload type picks the pipeline, and each pipeline has its own output stream.
//!
//! Decisions: the first source latches (the relay sends from its `destination` port) and other
//! sources are dropped and counted; RTCP is neither sent nor expected (the relay sends none over the
//! transform leg; any that arrives, rtcp-muxed, is dropped and counted). Packets are handled in
//! arrival order: the relay sits on the same LAN, so no reordering buffer is used.
//!
//! Driven like `Session`: [`OneWay::handle_datagram`], [`OneWay::handle_timeout`] when
//! [`OneWay::poll_timeout`] says, then [`OneWay::poll_transmit`] until `None`. No clock reads, no
//! sockets, no allocation per packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::EncoderConfig;
use bridgepool_codecs::rtp::{self, RtpPacket};

use super::g711_to_opus::{G711ToOpus, extend_ts};
use super::opus_to_g711::OpusToG711;
use super::rtp_out::{OutPacket, RtpOut};
use super::transmit::Outbox;
use super::{Leg, StreamSeed};

/// Codecs a one-way pipeline reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneWayCodec {
    /// G.711 at 8 kHz.
    G711(Law),
    /// Opus on a 48 kHz RTP clock.
    Opus,
}

/// One `input PT -> output` pair of a job.
#[derive(Clone, Debug)]
pub struct OneWayPair {
    /// Input codec.
    pub input: OneWayCodec,
    /// Input payload type (picks this pair).
    pub input_pt: u8,
    /// Output codec.
    pub output: OneWayCodec,
    /// Output payload type.
    pub output_pt: u8,
    /// Output packet time (10..=60 ms in 10 ms steps for Opus, 10..=60 for G.711).
    pub ptime: Duration,
    /// Opus encoder settings (from the output fmtp), used when the output is Opus.
    pub encoder: EncoderConfig,
    /// Random start of the output stream.
    pub seed: StreamSeed,
}

/// Why a job cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OneWayError {
    /// A pair the pipeline does not run (same codec on both sides).
    #[error("unsupported pair {input:?} -> {output:?}")]
    Unsupported {
        /// Input.
        input: OneWayCodec,
        /// Output.
        output: OneWayCodec,
    },
    /// No pairs.
    #[error("a job needs at least one codec pair")]
    NoPairs,
    /// A ptime the output codec cannot carry.
    #[error("ptime {0:?} is not 10..=60 ms in 10 ms steps")]
    Ptime(Duration),
    /// The Opus codec could not be set up.
    #[error("opus: {0}")]
    Opus(String),
}

/// Counters of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OneWayStats {
    /// Input RTP packets used.
    pub packets_in: u64,
    /// Input payload octets used.
    pub bytes_in: u64,
    /// Output packets sent.
    pub packets_out: u64,
    /// Output payload octets sent.
    pub bytes_out: u64,
    /// Input dropped: malformed, unknown payload type, foreign source, RTCP, undecodable.
    pub errors: u64,
}

enum Direction {
    ToOpus(G711ToOpus),
    ToG711(OpusToG711),
    Recode {
        from: Law,
        to: Law,
        base: Option<u64>,
        in_ref: u64,
    },
}

struct Pipeline {
    input_pt: u8,
    output_pt: u8,
    out: RtpOut,
    direction: Direction,
}

/// One one-way job.
pub struct OneWay {
    pipelines: Vec<Pipeline>,
    outbox: Outbox,
    destination: SocketAddr,
    latched: Option<SocketAddr>,
    last_input: Option<Instant>,
    idle: Duration,
    ended: bool,
    stats: OneWayStats,
    recode: Vec<u8>,
}

/// Samples per 8 kHz frame of `ptime`.
fn frame_8k(ptime: Duration) -> usize {
    (ptime.as_micros() * 8 / 1000) as usize
}

impl OneWay {
    /// A job sending to `destination`; it ends after `idle` without input.
    pub fn new(
        pairs: &[OneWayPair],
        destination: SocketAddr,
        idle: Duration,
    ) -> Result<Self, OneWayError> {
        if pairs.is_empty() {
            return Err(OneWayError::NoPairs);
        }
        let mut pipelines = Vec::with_capacity(pairs.len());
        for p in pairs {
            let ms = p.ptime.as_millis();
            if !(10..=60).contains(&ms) || ms % 10 != 0 {
                return Err(OneWayError::Ptime(p.ptime));
            }
            let frame = frame_8k(p.ptime);
            let direction = match (p.input, p.output) {
                (OneWayCodec::G711(law), OneWayCodec::Opus) => Direction::ToOpus(
                    G711ToOpus::new(law, &p.encoder, frame)
                        .map_err(|e| OneWayError::Opus(e.to_string()))?,
                ),
                (OneWayCodec::Opus, OneWayCodec::G711(law)) => Direction::ToG711(
                    OpusToG711::new(law, frame, p.ptime, Duration::from_millis(30))
                        .map_err(|e| OneWayError::Opus(e.to_string()))?,
                ),
                (OneWayCodec::G711(from), OneWayCodec::G711(to)) if from != to => {
                    Direction::Recode {
                        from,
                        to,
                        base: None,
                        in_ref: 0,
                    }
                }
                (input, output) => return Err(OneWayError::Unsupported { input, output }),
            };
            pipelines.push(Pipeline {
                input_pt: p.input_pt,
                output_pt: p.output_pt,
                out: RtpOut::new(Leg::B, p.seed.ssrc, p.seed.sequence, p.seed.timestamp),
                direction,
            });
        }
        Ok(Self {
            pipelines,
            outbox: Outbox::new(),
            destination,
            latched: None,
            last_input: None,
            idle,
            ended: false,
            stats: OneWayStats::default(),
            recode: vec![0; super::MAX_DATAGRAM],
        })
    }

    /// Where the output goes.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// Counters so far.
    pub fn stats(&self) -> OneWayStats {
        let mut s = self.stats;
        for p in &self.pipelines {
            s.packets_out += p.out.packets;
            s.bytes_out += p.out.octets;
        }
        s
    }

    /// Starts the idle clock at creation, so a job the relay never uses (it gave up waiting for
    /// the reply and transcodes locally) still ends.
    pub fn arm(&mut self, now: Instant) {
        self.last_input.get_or_insert(now);
    }

    /// Whether the job ended (idle timeout).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// One datagram received on the job's socket from `from` at `now`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if self.ended {
            return;
        }
        match self.latched {
            None => self.latched = Some(from),
            Some(l) if l != from => {
                self.stats.errors += 1;
                return;
            }
            Some(_) => {}
        }
        if rtp::is_rtcp(data) {
            self.stats.errors += 1;
            return;
        }
        let Ok(packet) = RtpPacket::parse(data) else {
            self.stats.errors += 1;
            return;
        };
        let pt = packet.payload_type();
        let Some(p) = self.pipelines.iter_mut().find(|p| p.input_pt == pt) else {
            self.stats.errors += 1;
            return;
        };
        let payload = packet.payload();
        let ts = packet.timestamp();
        let used = match &mut p.direction {
            Direction::ToOpus(d) => {
                d.on_packet(
                    now,
                    &mut p.out,
                    &mut self.outbox,
                    p.output_pt,
                    ts,
                    packet.marker(),
                    payload,
                );
                true
            }
            Direction::ToG711(d) => d
                .on_packet(now, &mut p.out, &mut self.outbox, p.output_pt, ts, payload)
                .is_ok(),
            Direction::Recode {
                from,
                to,
                base,
                in_ref,
            } => {
                let ext = extend_ts(*in_ref, ts);
                *in_ref = ext.max(*in_ref);
                let start = *base.get_or_insert(ext);
                let n = payload.len().min(self.recode.len());
                for (o, &i) in self.recode[..n].iter_mut().zip(payload) {
                    *o = to.encode_sample(from.decode_sample(i));
                }
                let marker = packet.marker();
                let recoded = &self.recode[..n];
                p.out.send(
                    &mut self.outbox,
                    now,
                    OutPacket {
                        payload_type: p.output_pt,
                        ts: ext.saturating_sub(start),
                        duration: n as u64,
                        marker,
                    },
                    |buf| {
                        let len = recoded.len().min(buf.len());
                        buf[..len].copy_from_slice(&recoded[..len]);
                        Some(len)
                    },
                )
            }
        };
        if used {
            self.stats.packets_in += 1;
            self.stats.bytes_in += payload.len() as u64;
            self.last_input = Some(now);
        } else {
            self.stats.errors += 1;
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let idle = self.last_input.map(|t| t + self.idle);
        self.pipelines
            .iter()
            .filter_map(|p| match &p.direction {
                Direction::ToG711(d) => d.deadline(),
                _ => None,
            })
            .chain(idle)
            .min()
    }

    /// Timers: the Opus -> G.711 playout clock (concealment keeps the G.711 stream continuous) and
    /// the idle timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if self
            .last_input
            .is_some_and(|t| now.saturating_duration_since(t) >= self.idle)
        {
            self.ended = true;
            return;
        }
        for p in &mut self.pipelines {
            if let Direction::ToG711(d) = &mut p.direction {
                d.on_deadline(now, &mut p.out, &mut self.outbox, p.output_pt);
            }
        }
    }

    /// The next datagram to send to [`Self::destination`], written into `buf`; its length.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.outbox.pop_into(buf).map(|t| t.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridgepool_codecs::opus::{OpusDecoder, SampleRate};
    use bridgepool_codecs::rtp::RtpHeader;

    const RELAY: &str = "127.0.0.1:40401";

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
        let relay: SocketAddr = RELAY.parse().unwrap();
        let mut job = OneWay::new(
            &[pair(OneWayCodec::G711(Law::Ulaw), 0, OneWayCodec::Opus, 96)],
            relay,
            Duration::from_secs(30),
        )
        .unwrap();
        let t0 = epoch();
        let payload = tone(160, Law::Ulaw);
        let mut sent = Vec::new();
        for i in 0..50u16 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            job.handle_datagram(
                now,
                relay,
                &rtp(0, 1000 + i, 3000 + 160 * u32::from(i), &payload),
            );
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
        let relay: SocketAddr = RELAY.parse().unwrap();
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
            relay,
            Duration::from_secs(30),
        )
        .unwrap();
        let t0 = epoch();
        job.handle_datagram(t0, relay, &rtp(0, 1, 160, &tone(160, Law::Ulaw)));
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
        job.handle_datagram(
            t0 + Duration::from_millis(1),
            relay,
            &rtp(96, 7, 960, &opus[..n]),
        );
        let out = drain(&mut job);
        assert_eq!(out.len(), 1);
        let p = RtpPacket::parse(&out[0]).unwrap();
        assert_eq!((p.payload_type(), p.payload().len()), (8, 160));
    }

    #[test]
    fn foreign_sources_unknown_pts_and_garbage_are_counted() {
        let relay: SocketAddr = RELAY.parse().unwrap();
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut job = OneWay::new(
            &[pair(OneWayCodec::Opus, 96, OneWayCodec::G711(Law::Ulaw), 0)],
            relay,
            Duration::from_secs(1),
        )
        .unwrap();
        let t0 = epoch();
        job.handle_datagram(t0, relay, &rtp(8, 1, 0, &[0; 160]));
        job.handle_datagram(t0, other, &rtp(96, 2, 0, &[0; 10]));
        job.handle_datagram(t0, relay, &[0x80, 0x60]);
        job.handle_datagram(t0, relay, &rtp(96, 3, 0, &[0xff; 3]));
        assert_eq!(job.stats().errors, 4);
        assert!(drain(&mut job).is_empty());
        // Idle: no input at all keeps no timer; after input, the idle timeout ends the job.
        assert!(job.poll_timeout().is_none());
        job.handle_datagram(t0, relay, &rtp(0, 4, 0, &[0; 160]));
        assert!(!job.ended());
    }

    #[test]
    fn same_codec_pairs_and_bad_ptime_are_refused() {
        let relay: SocketAddr = RELAY.parse().unwrap();
        let idle = Duration::from_secs(1);
        assert!(
            OneWay::new(
                &[pair(OneWayCodec::Opus, 96, OneWayCodec::Opus, 97)],
                relay,
                idle
            )
            .is_err()
        );
        let mut p = pair(OneWayCodec::G711(Law::Ulaw), 0, OneWayCodec::Opus, 96);
        p.ptime = Duration::from_millis(25);
        assert!(OneWay::new(&[p], relay, idle).is_err());
        assert!(OneWay::new(&[], relay, idle).is_err());
    }
}
