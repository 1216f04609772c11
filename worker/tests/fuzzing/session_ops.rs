//! Drives one [`Session`] with a script decoded from arbitrary bytes, and checks what it sends.
//!
//! Shared by the bounded property test (`worker/tests/session_fuzz.rs`, in CI on stable) and the
//! cargo-fuzz target (`fuzz/fuzz_targets/session.rs`), so both explore the same operations:
//! valid RTP with hostile fields on both legs (real G.711 and real client Opus payloads, wild
//! sequence numbers, timestamps, SSRCs, payload types, markers), RFC 4733 events, RTCP compounds
//! real and broken, garbage, time steps and jumps, answer, hold and renegotiation, including
//! switches between transcoding and passthrough. The bytes only choose among operations, so
//! every input is a valid script.
//!
//! Checked after every operation, on every datagram the session sends:
//! - it never panics;
//! - every RTP datagram parses, is no larger than a 1500-byte MTU allows, and carries one SSRC
//!   per output leg (the session's own), unless it is the datagram just received, relayed
//!   byte for byte in passthrough;
//! - sequence numbers are continuous per output leg (each packet is the last plus one);
//! - timestamps never go backwards per output leg (repeated event packets may repeat one);
//! - output is bounded by elapsed time: no operation makes the session flood its peers.
// Used from two crates with different lint settings; helpers some scripts never reach.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusEncoder};
use bridgepool_codecs::rtp::{RtpBuilder, RtpHeader, RtpPacket};
use bridgepool_codecs::telephone_event::TelephoneEvent;
use bridgepool_worker::session::{
    Channel, Leg, LegMode, MAX_DATAGRAM, Mode, Session, SessionConfig, StreamSeed,
};

/// Largest UDP payload on a 1500-byte Ethernet MTU (IPv4, no options).
pub const MTU_PAYLOAD: usize = 1500 - 20 - 8;

/// A broken invariant, with the operation that broke it.
#[derive(Debug)]
pub struct Violation {
    pub step: usize,
    pub what: String,
}

/// What a script did, for the test's own sanity checks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub steps: usize,
    pub datagrams_in: u64,
    pub rtp_out: [u64; 2],
    /// Datagrams relayed as they came (passthrough), per output leg.
    pub relayed: [u64; 2],
    pub ended: bool,
}

/// Per output leg: what the last RTP datagrams said.
#[derive(Default, Clone, Copy)]
struct Stream {
    last_seq: Option<u16>,
    /// Last timestamp of an audio packet, and of a telephone-event packet: RFC 4733 events carry
    /// their start time, so they may lie behind audio sent meanwhile; each kind moves forward.
    last_audio_ts: Option<u32>,
    last_event_ts: Option<u32>,
    ssrc: Option<u32>,
}

struct Peer {
    seq: u16,
    ts: u32,
    ssrc: u32,
}

/// Reads choices from the fuzzer's bytes; past the end every choice is 0.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
    fn slice(&mut self, max: usize) -> &[u8] {
        let len = (self.u8() as usize).min(max);
        let start = self.at.min(self.data.len());
        let end = (start + len).min(self.data.len());
        self.at += len;
        &self.data[start..end]
    }
}

/// Real payloads, made once: 20 ms G.711 frames and client Opus frames (48 kHz fullband, FEC).
struct Payloads {
    g711: Vec<Vec<u8>>,
    opus: Vec<Vec<u8>>,
}

fn payloads() -> &'static Payloads {
    static P: OnceLock<Payloads> = OnceLock::new();
    P.get_or_init(|| {
        // A voiced, modulated signal: enough structure for SILK/CELT to code real frames.
        let voice = |i: usize, rate: f64| {
            let t = i as f64 / rate;
            let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let s = (2.0 * std::f64::consts::PI * 180.0 * t).sin()
                + 0.5 * (2.0 * std::f64::consts::PI * 720.0 * t).sin()
                + 0.25 * (2.0 * std::f64::consts::PI * 2100.0 * t).sin();
            (s * env * 6000.0) as i16
        };
        let g711 = (0..25)
            .map(|f| {
                let pcm: Vec<i16> = (0..160).map(|i| voice(f * 160 + i, 8000.0)).collect();
                let mut out = vec![0u8; 160];
                Law::Ulaw.encode(&pcm, &mut out);
                out
            })
            .collect();
        let mut config = EncoderConfig::webrtc_client();
        config.expected_loss_pct = 10;
        let mut encoder = OpusEncoder::new(&config).expect("client encoder");
        let opus = (0..25)
            .map(|f| {
                let pcm: Vec<i16> = (0..960).map(|i| voice(f * 960 + i, 48_000.0)).collect();
                let mut out = vec![0u8; 1500];
                let n = encoder.encode(&pcm, &mut out).expect("encode");
                out.truncate(n);
                out
            })
            .collect();
        Payloads { g711, opus }
    })
}

fn config(law: Law) -> SessionConfig {
    SessionConfig::new(
        law,
        StreamSeed {
            ssrc: 0xA0A0_0001,
            sequence: 65_530,
            timestamp: 4_294_960_000,
        },
        StreamSeed {
            ssrc: 0xB0B0_0002,
            sequence: 7,
            timestamp: 11,
        },
    )
}

/// Runs the script `data` encodes against a fresh session.
pub fn run(data: &[u8]) -> Result<Outcome, Violation> {
    let mut bytes = Bytes { data, at: 0 };
    let law = if bytes.u8() & 1 == 0 {
        Law::Ulaw
    } else {
        Law::Alaw
    };
    let mut cfg = config(law);
    let t0 = Instant::now();
    let mut now = t0;
    let mut session = Session::new(cfg.clone(), now).expect("a valid configuration");
    let mut peers = [
        Peer {
            seq: 100,
            ts: 1000,
            ssrc: 0x1111,
        },
        Peer {
            seq: 60_000,
            ts: 4_294_000_000,
            ssrc: 0x2222,
        },
    ];
    let mut streams = [Stream::default(); 2];
    let mut outcome = Outcome::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut datagram = vec![0u8; 1500];
    let payloads = payloads();
    let mut step = 0;
    // The datagram fed in this step: in passthrough, the only one that may leave unlike ours.
    let mut fed: Vec<u8> = Vec::new();
    while !bytes.done() && step < 2000 {
        step += 1;
        fed.clear();
        let mut advanced = Duration::ZERO;
        match bytes.u8() % 16 {
            // RTP from a leg's peer: mostly in order, sometimes hostile.
            0..=7 => {
                let leg = if bytes.u8() & 1 == 0 { Leg::A } else { Leg::B };
                let peer = &mut peers[leg as usize];
                let shape = bytes.u8();
                let (seq_step, ts_step): (u16, u32) = match shape % 8 {
                    0 => (bytes.u16(), bytes.u32()),
                    1 => (0, 0),
                    2 => (2, 2 * frame_ticks(leg)),
                    3 => (u16::MAX, 0u32.wrapping_sub(frame_ticks(leg))),
                    _ => (1, frame_ticks(leg)),
                };
                peer.seq = peer.seq.wrapping_add(seq_step);
                peer.ts = peer.ts.wrapping_add(ts_step);
                if shape & 0x40 != 0 {
                    peer.ssrc = u32::from(bytes.u8() % 3) + 0x1111;
                }
                let audio_pt = match leg {
                    Leg::A => cfg.leg_a.payload_type,
                    Leg::B => cfg.leg_b.payload_type,
                };
                let pt = match bytes.u8() % 8 {
                    0 => bytes.u8() & 0x7f,
                    1 => match leg {
                        Leg::A => cfg.leg_a.telephone_event_pt.unwrap_or(101),
                        Leg::B => cfg.leg_b.telephone_event_pt.unwrap_or(110),
                    },
                    _ => audio_pt,
                };
                let event;
                let pick = bytes.u8() as usize;
                let payload: &[u8] = if pt != audio_pt {
                    let e = TelephoneEvent {
                        event: bytes.u8() % 17,
                        end: bytes.u8() & 1 == 1,
                        volume: 10,
                        duration: bytes.u16(),
                    };
                    let mut b = [0u8; 4];
                    let _ = e.write(&mut b);
                    event = b;
                    &event
                } else if pick.is_multiple_of(16) {
                    bytes.slice(255)
                } else {
                    match leg {
                        Leg::A => {
                            let p = &payloads.g711[pick % payloads.g711.len()];
                            // 10, 20 ms or a short tail.
                            &p[..[80, 160, 160, 160, 24][pick % 5]]
                        }
                        Leg::B => &payloads.opus[pick % payloads.opus.len()],
                    }
                };
                let n = RtpBuilder::new(RtpHeader {
                    marker: shape & 0x80 != 0,
                    payload_type: pt,
                    sequence_number: peer.seq,
                    timestamp: peer.ts,
                    ssrc: peer.ssrc,
                })
                .payload(payload)
                .write(&mut datagram)
                .expect("fits");
                session.handle_datagram(now, leg, Channel::Rtp, &datagram[..n]);
                fed.extend_from_slice(&datagram[..n]);
                outcome.datagrams_in += 1;
            }
            // RTCP, real-looking or broken, on either channel.
            8 => {
                let leg = if bytes.u8() & 1 == 0 { Leg::A } else { Leg::B };
                let channel = if bytes.u8() & 1 == 0 {
                    Channel::Rtcp
                } else {
                    Channel::Rtp
                };
                let body = bytes.slice(120).to_vec();
                let len = body.len() & !3;
                let mut rtcp = vec![0x81, 200 + bytes.u8() % 5];
                rtcp.extend_from_slice(&((len / 4) as u16).to_be_bytes());
                rtcp.extend_from_slice(&body[..len]);
                session.handle_datagram(now, leg, channel, &rtcp);
                outcome.datagrams_in += 1;
            }
            // Garbage.
            9 => {
                let leg = if bytes.u8() & 1 == 0 { Leg::A } else { Leg::B };
                let garbage = bytes.slice(255).to_vec();
                session.handle_datagram(now, leg, Channel::Rtp, &garbage);
                fed = garbage;
                outcome.datagrams_in += 1;
            }
            // Time: a packet time, a few, or a jump far forward.
            10..=12 => {
                let ms = match bytes.u8() % 8 {
                    0 => u64::from(bytes.u16()) * 10,
                    1 => u64::from(bytes.u8()),
                    _ => 20,
                };
                advanced = Duration::from_millis(ms);
                now += advanced;
            }
            13 => session.answer(now),
            14 => {
                let leg = if bytes.u8() & 1 == 0 { Leg::A } else { Leg::B };
                let m = bytes.u8();
                session.set_mode(
                    leg,
                    LegMode {
                        send: m & 1 == 0,
                        receive: m & 2 == 0,
                    },
                );
            }
            _ => {
                let ptimes = [10, 20, 20, 30, 40, 60];
                let mut next = cfg.clone();
                next.leg_a.ptime = Duration::from_millis(ptimes[bytes.u8() as usize % 6]);
                next.leg_b.ptime = Duration::from_millis(ptimes[bytes.u8() as usize % 6]);
                let flips = bytes.u8();
                if flips & 3 == 0 {
                    next.leg_a.law = match next.leg_a.law {
                        Law::Ulaw => Law::Alaw,
                        Law::Alaw => Law::Ulaw,
                    };
                }
                // The same byte, so scripts found before read as they did when this bit is 0.
                if flips & 0x30 == 0x30 {
                    next.mode = match next.mode {
                        Mode::Transcode => Mode::Passthrough,
                        Mode::Passthrough => Mode::Transcode,
                    };
                }
                next.leg_b.encoder.bitrate = 6000 + i32::from(bytes.u8()) * 200;
                if session.update(now, next.clone()).is_ok() {
                    cfg = next;
                }
            }
        }
        // Timers due by now, as the driver runs them.
        let mut turns = 0;
        while let Some(due) = session.poll_timeout() {
            if due > now || turns > 10_000 {
                break;
            }
            session.handle_timeout(now);
            turns += 1;
        }
        let mut sent_now = 0u64;
        while let Some(t) = session.poll_transmit(&mut buf) {
            sent_now += 1;
            let audio_pt = match t.leg {
                Leg::A => cfg.leg_a.payload_type,
                Leg::B => cfg.leg_b.payload_type,
            };
            if t.channel == Channel::Rtp && buf[..t.len] == fed[..] {
                // Relayed as it came (passthrough): the peer's stream, not ours.
                if session.mode() != Mode::Passthrough {
                    return Err(Violation {
                        step,
                        what: format!("input echoed to {:?} while transcoding", t.leg),
                    });
                }
                outcome.relayed[t.leg as usize] += 1;
                continue;
            }
            check_datagram(
                &session,
                audio_pt,
                &mut streams,
                &mut outcome,
                t.leg,
                t.channel,
                &buf[..t.len],
            )
            .map_err(|what| Violation { step, what })?;
        }
        while session.poll_event().is_some() {}
        // A 10 ms packet per leg per 10 ms, RTCP and events on top: anything far above is a flood.
        let allowed = 64 + 8 * advanced.as_millis() as u64 / 10;
        if sent_now > allowed {
            return Err(Violation {
                step,
                what: format!("{sent_now} datagrams out after {advanced:?}"),
            });
        }
        outcome.ended |= session.is_ended();
    }
    outcome.steps = step;
    Ok(outcome)
}

fn frame_ticks(leg: Leg) -> u32 {
    match leg {
        Leg::A => 160,
        Leg::B => 960,
    }
}

fn check_datagram(
    session: &Session,
    audio_pt: u8,
    streams: &mut [Stream; 2],
    outcome: &mut Outcome,
    leg: Leg,
    channel: Channel,
    bytes: &[u8],
) -> Result<(), String> {
    if bytes.len() > MTU_PAYLOAD {
        return Err(format!("{} bytes to {leg:?} exceed the MTU", bytes.len()));
    }
    if channel == Channel::Rtcp || bridgepool_codecs::rtp::is_rtcp(bytes) {
        return Ok(());
    }
    let packet = RtpPacket::parse(bytes).map_err(|e| format!("unparsable RTP to {leg:?}: {e}"))?;
    let stream = &mut streams[leg as usize];
    outcome.rtp_out[leg as usize] += 1;
    let ssrc = packet.ssrc();
    if ssrc != session.ssrc(leg) || stream.ssrc.is_some_and(|s| s != ssrc) {
        return Err(format!(
            "SSRC {ssrc:#x} on {leg:?}, stream had {:?}",
            stream.ssrc
        ));
    }
    stream.ssrc = Some(ssrc);
    let (seq, ts) = (packet.sequence_number(), packet.timestamp());
    if let Some(last) = stream.last_seq
        && seq != last.wrapping_add(1)
    {
        return Err(format!("sequence {last} then {seq} on {leg:?}"));
    }
    stream.last_seq = Some(seq);
    let pt = packet.payload_type();
    let is_event = pt != audio_pt;
    let last = if is_event {
        &mut stream.last_event_ts
    } else {
        &mut stream.last_audio_ts
    };
    if let Some(last_ts) = *last {
        let step = ts.wrapping_sub(last_ts) as i32;
        if step < 0 || (step == 0 && !is_event) {
            return Err(format!(
                "timestamp {last_ts} then {ts} on {leg:?} (pt {pt})"
            ));
        }
    }
    *last = Some(ts);
    Ok(())
}
