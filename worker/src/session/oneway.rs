//! A one-way job as a sans-IO state machine: one input RTP stream in, one transcoded stream out,
//! for rtpengine's `transform` (the relay hands one direction of a call to the pool).
//!
//! Built from the two-way [`super::Session`]'s direction halves, not a copy: [`G711ToOpus`] for
//! PCMU/PCMA -> Opus, [`OpusToG711`] for Opus -> PCMU/PCMA (FEC/PLC and its playout clock), and
//! [`RtpOut`] for every output (own SSRC and sequence, timestamps on the output clock, marker after
//! silence). PCMU <-> PCMA re-encodes sample by sample. Several pairs can share a job; the input
//! payload type picks the pipeline, and each pipeline has its own output stream.
//!
//! Decisions: RTCP is neither sent nor expected (the relay sends none over the transform leg; any
//! that arrives, rtcp-muxed, is dropped and counted). Packets are handled in arrival order: the
//! relay sits on the same LAN, so no reordering buffer is used. Addresses are the driver's: it
//! latches the first source (the relay sends from its `destination` port), drops others, and sends
//! the output to the relay's destination.
//!
//! Driven like `Session`: [`OneWay::handle_datagram`], [`OneWay::handle_timeout`] when
//! [`OneWay::poll_timeout`] says, then [`OneWay::poll_transmit`] until `None`. No clock reads, no
//! sockets, no allocation per packet.

use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::EncoderConfig;
use bridgepool_codecs::rtp::{self, RtpPacket};

use super::g711_to_opus::{G711ToOpus, extend_ts};
use super::opus_to_g711::OpusToG711;
use super::rtp_out::{OutPacket, RtpOut};
use super::transmit::Outbox;
use super::{JitterBuffer, Leg, StreamSeed};

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
    /// Jitter buffer of an Opus -> G.711 pair (ignored by the others).
    pub jitter: JitterBuffer,
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
    last_input: Option<Instant>,
    idle: Duration,
    ended: bool,
    stats: OneWayStats,
    recode: Vec<u8>,
}

impl std::fmt::Debug for OneWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneWay")
            .field("stats", &self.stats)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Samples per 8 kHz frame of `ptime`.
fn frame_8k(ptime: Duration) -> usize {
    (ptime.as_micros() * 8 / 1000) as usize
}

impl OneWay {
    /// A job that ends after `idle` without input.
    pub fn new(pairs: &[OneWayPair], idle: Duration) -> Result<Self, OneWayError> {
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
                (OneWayCodec::G711(law), OneWayCodec::Opus) => {
                    let mut to_opus = G711ToOpus::new(law, &p.encoder, frame)
                        .map_err(|e| OneWayError::Opus(e.to_string()))?;
                    to_opus.set_plc(true);
                    Direction::ToOpus(to_opus)
                }
                (OneWayCodec::Opus, OneWayCodec::G711(law)) => {
                    let mut to_g711 =
                        OpusToG711::new(law, frame, p.ptime, Duration::from_millis(30), p.jitter)
                            .map_err(|e| OneWayError::Opus(e.to_string()))?;
                    to_g711.end_with_input();
                    Direction::ToG711(to_g711)
                }
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
            last_input: None,
            idle,
            ended: false,
            stats: OneWayStats::default(),
            recode: vec![0; super::MAX_DATAGRAM],
        })
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

    /// One datagram received from the latched source at `now`.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        if self.ended {
            return;
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
            Direction::ToG711(d) => {
                d.observe(now, ts);
                d.on_packet(now, &mut p.out, &mut self.outbox, p.output_pt, ts, payload)
                    .is_ok()
            }
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

    /// The next datagram to send to the relay's destination, written into `buf`; its length.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.outbox.pop_into(buf).map(|t| t.len)
    }
}
