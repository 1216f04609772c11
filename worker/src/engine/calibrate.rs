//! Start-up calibration: what one talking session costs on this machine, per direction, measured
//! by running real `Session`s (whatever encoder and decoder they carry) over what real peers
//! send: G.711 from a PSTN gateway on leg A, and 48 kHz fullband Opus from a WebRTC or mobile
//! client on leg B. It seeds the cost model; the live estimate corrects it under load.
//!
//! The input is synthesised, not read from a file: a deployed worker has no test data, and an
//! embedded recording would add hundreds of KB to the binary for a figure within the noise of
//! the live correction. The synthetic talker is built to load the codecs like speech does:
//! a voiced source with a moving pitch through three moving formants, unvoiced noise bursts,
//! and syllables with pauses, at 48 kHz (so the client encoder sees energy up to 20 kHz and
//! produces fullband CELT/hybrid frames as on a real call).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusEncoder};
use bridgepool_codecs::rtp::RtpHeader;

use super::load::DirectionCosts;
use crate::session::{Channel, Leg, MAX_DATAGRAM, Mode, Session, SessionConfig, StreamSeed};

/// Frames of 20 ms per direction in one calibration pass (two seconds of call).
const FRAMES: usize = 100;
/// Samples per 20 ms at 48 kHz.
const FRAME_48K: usize = 960;

/// RTP datagrams of one stream, in order.
type Packets = Vec<Vec<u8>>;

/// Which directions a pass feeds.
#[derive(Clone, Copy)]
enum Feed {
    AToB,
    BToA,
    Both,
    /// Both legs, the session relaying (passthrough).
    Relay,
}

/// Core share of each direction, the best of three passes of each (the least disturbed by the
/// rest of the host). The two one-way figures are scaled so that they add up to the measured
/// two-way session: work both directions share (timers, RTCP) is counted once.
pub(crate) fn direction_costs() -> DirectionCosts {
    let (a, webrtc, mobile) = packets();
    let best = |feed: Feed| {
        (0..3)
            .map(|i| {
                // Alternate the two client profiles: both kinds of caller reach the pool.
                let b = if i % 2 == 0 { &webrtc } else { &mobile };
                one_pass(&a, b, feed)
            })
            .fold(f64::MAX, f64::min)
            .max(1e-5)
    };
    let a_to_b = best(Feed::AToB);
    let b_to_a = best(Feed::BToA);
    let both = best(Feed::Both);
    // A relay costs little (two syscalls and a copy per datagram): cheap to measure too.
    let relay = best(Feed::Relay).min(both);
    let share = a_to_b / (a_to_b + b_to_a);
    DirectionCosts {
        a_to_b: both * share,
        b_to_a: both * (1.0 - share),
        relay,
    }
}

/// Loopback sockets a pass moves its datagrams through, as the media thread does: the kernel's
/// share of a call (a recv and a send per datagram) is about 40 % of the codecs' in release
/// builds, and a calibration without it overstated capacity.
struct Loopback {
    peer: UdpSocket,
    leg_a: UdpSocket,
    leg_b: UdpSocket,
    /// Kept open (a closed port would answer with ICMP); its queue fills and the kernel drops
    /// the rest.
    _sink: UdpSocket,
    sink: SocketAddr,
}

impl Loopback {
    fn new() -> Option<Self> {
        let bind = || UdpSocket::bind("127.0.0.1:0").ok();
        let (peer, leg_a, leg_b) = (bind()?, bind()?, bind()?);
        // Replies go to a port nobody reads: the peer's receive is not the worker's work.
        let sink_socket = bind()?;
        let sink = sink_socket.local_addr().ok()?;
        leg_a.set_nonblocking(true).ok()?;
        leg_b.set_nonblocking(true).ok()?;
        Some(Self {
            peer,
            leg_a,
            leg_b,
            _sink: sink_socket,
            sink,
        })
    }

    /// Sends `datagram` from the peer to a leg's socket and reads it back into `buf`.
    fn carry<'b>(&self, leg: Leg, datagram: &[u8], buf: &'b mut [u8]) -> &'b [u8] {
        let socket = if leg == Leg::A {
            &self.leg_a
        } else {
            &self.leg_b
        };
        let Ok(to) = socket.local_addr() else {
            return &buf[..0];
        };
        if self.peer.send_to(datagram, to).is_err() {
            return &buf[..0];
        }
        // Loopback delivers at once; a few tries cover a preempted sender.
        for _ in 0..1000 {
            if let Ok(n) = socket.recv(buf) {
                return &buf[..n];
            }
            std::hint::spin_loop();
        }
        &buf[..0]
    }
}

fn one_pass(a: &[Vec<u8>], b: &[Vec<u8>], feed: Feed) -> f64 {
    let Some(net) = Loopback::new() else {
        return 0.01;
    };
    let seed = StreamSeed {
        ssrc: 1,
        sequence: 1,
        timestamp: 1,
    };
    let t0 = Instant::now();
    let mut config = SessionConfig::new(Law::Ulaw, seed, seed);
    if matches!(feed, Feed::Relay) {
        config.mode = Mode::Passthrough;
    }
    let Ok(mut session) = Session::new(config, t0) else {
        return 0.01;
    };
    session.answer(t0);
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut input = [0u8; 1500];
    let started = Instant::now();
    let cpu_started = thread_cpu();
    for (i, (pa, pb)) in a.iter().zip(b).enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        if matches!(feed, Feed::AToB | Feed::Both | Feed::Relay) {
            let datagram = net.carry(Leg::A, pa, &mut input);
            session.handle_datagram(now, Leg::A, Channel::Rtp, datagram);
        }
        if matches!(feed, Feed::BToA | Feed::Both | Feed::Relay) {
            let datagram = net.carry(Leg::B, pb, &mut input);
            session.handle_datagram(now, Leg::B, Channel::Rtp, datagram);
        }
        while let Some(t) = session.poll_timeout().filter(|t| *t <= now) {
            session.handle_timeout(t);
        }
        while let Some(t) = session.poll_transmit(&mut buf) {
            let socket = if t.leg == Leg::A {
                &net.leg_a
            } else {
                &net.leg_b
            };
            let _ = socket.send_to(&buf[..t.len], net.sink);
        }
    }
    // CPU time, not wall time: on a shared host the calibrating thread is preempted, and wall
    // time then put the neighbours' work on the session (3x the live figure on a loaded VM).
    let spent = match (cpu_started, thread_cpu()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => started.elapsed(),
    };
    spent.as_secs_f64() / (FRAMES as f64 * 0.020)
}

/// CPU time this thread has run (Linux: `/proc/thread-self/schedstat`, nanoseconds on CPU).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Two seconds of the synthetic talker as PCMU packets (leg A), and as Opus packets from the
/// WebRTC and the mobile client profiles (leg B).
fn packets() -> (Packets, Packets, Packets) {
    let pcm48 = talker(FRAMES * FRAME_48K);
    // 48 kHz to 8 kHz: a 6-tap box filter then decimation, enough to keep the G.711 leg in band.
    let pcm8: Vec<i16> = pcm48
        .chunks_exact(6)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / 6) as i16)
        .collect();
    let header = |i: usize, pt: u8, ts: u32| RtpHeader {
        marker: i == 0,
        payload_type: pt,
        sequence_number: i as u16,
        timestamp: ts,
        ssrc: 9,
    };
    let a = pcm8
        .chunks_exact(160)
        .enumerate()
        .map(|(i, frame)| {
            let mut p = vec![0u8; 12 + 160];
            let _ = header(i, 0, (i * 160) as u32).write(&mut p);
            Law::Ulaw.encode(frame, &mut p[12..]);
            p
        })
        .collect();
    let opus = |config: EncoderConfig| -> Packets {
        let mut encoder = OpusEncoder::new(&config).ok();
        pcm48
            .chunks_exact(FRAME_48K)
            .enumerate()
            .map(|(i, frame)| {
                let mut p = vec![0u8; 12 + 1275];
                let _ = header(i, 111, (i * FRAME_48K) as u32).write(&mut p);
                let n = encoder
                    .as_mut()
                    .and_then(|e| e.encode(frame, &mut p[12..]).ok())
                    .unwrap_or(0);
                p.truncate(12 + n);
                p
            })
            .collect()
    };
    (
        a,
        opus(EncoderConfig::webrtc_client()),
        opus(EncoderConfig::mobile_client()),
    )
}

/// A speech-like signal at 48 kHz: syllables of about 200 ms with short pauses, voiced
/// stretches (a glottal pulse train at a gliding pitch through three formant resonators) and
/// unvoiced ones (noise through a high formant), deterministic.
fn talker(samples: usize) -> Vec<i16> {
    const RATE: f64 = 48_000.0;
    let mut noise: u32 = 0x1234_5678;
    let mut phase = 0.0f64;
    // Two-pole resonators: (state1, state2) per formant.
    let mut state = [(0.0f64, 0.0f64); 3];
    let mut out = Vec::with_capacity(samples);
    for n in 0..samples {
        let t = n as f64 / RATE;
        let syllable = (t / 0.24).floor() as u64;
        let within = (t / 0.24).fract();
        // One syllable in five is a pause; one in four unvoiced (a fricative).
        let pause = syllable % 5 == 4;
        let unvoiced = syllable % 4 == 1;
        let envelope = if pause {
            0.0
        } else {
            (within * std::f64::consts::PI).sin().powf(0.7)
        };
        let f0 = 110.0 + 40.0 * (t * 1.3).sin() + 15.0 * (syllable % 3) as f64;
        phase += f0 / RATE;
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let white = (noise as f64 / u32::MAX as f64) * 2.0 - 1.0;
        let source = if unvoiced {
            white
        } else {
            // A sharp pulse per pitch period plus breath noise.
            let p = phase.fract();
            (if p < 0.05 { 1.0 - p * 20.0 } else { 0.0 }) * 4.0 + white * 0.05
        };
        let vowel = (syllable % 4) as f64;
        let formants = if unvoiced {
            [(2500.0, 400.0), (4500.0, 800.0), (7000.0, 1500.0)]
        } else {
            [
                (500.0 + 150.0 * vowel, 90.0),
                (1000.0 + 400.0 * vowel, 110.0),
                (2600.0, 160.0),
            ]
        };
        let mut y = 0.0;
        for (s, (f, bw)) in state.iter_mut().zip(formants) {
            let r = (-std::f64::consts::PI * bw / RATE).exp();
            let c = 2.0 * r * (std::f64::consts::TAU * f / RATE).cos();
            let v = source * (1.0 - r) + c * s.0 - r * r * s.1;
            s.1 = s.0;
            s.0 = v;
            y += v;
        }
        out.push((y * envelope * 6_000.0).clamp(-32_000.0, 32_000.0) as i16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_talker_is_loud_with_pauses() {
        let pcm = talker(FRAMES * FRAME_48K);
        let rms = |s: &[i16]| {
            (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        let frames: Vec<f64> = pcm.chunks_exact(FRAME_48K).map(rms).collect();
        let loud = frames.iter().filter(|r| **r > 500.0).count();
        let silent = frames.iter().filter(|r| **r < 1.0).count();
        assert!(loud > FRAMES / 2, "{frames:?}");
        assert!(silent > 0, "pauses between syllables");
        assert!(frames.iter().all(|r| *r < 20_000.0), "no clipping");
    }

    #[test]
    fn both_directions_cost_something() {
        let c = direction_costs();
        assert!(c.a_to_b > 0.0 && c.b_to_a > 0.0, "{c:?}");
        assert!(c.session() < 1.0, "{c:?}");
        assert!(c.relay > 0.0 && c.relay <= c.session(), "{c:?}");
    }
}
