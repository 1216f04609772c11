//! The loadgen host's media: every call sends paced PCMU (a tone, 20 ms) to its worker's leg A
//! and records the Opus that comes back on leg B, per call, so loss is counted per call and so
//! per worker. One thread for all calls; calls join while it runs.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::rtp::{RtpHeader, RtpPacket};

const PTIME: Duration = Duration::from_millis(20);
/// The Opus payload type the scheduler answers for leg B.
const OPUS_PT: u8 = 111;

/// One call as the loadgen host plays it.
pub struct Call {
    /// The scheduler's session id.
    pub session_id: String,
    /// The worker that holds it.
    pub worker: String,
    /// Leg A's peer (we send PCMU from it).
    peer_a: UdpSocket,
    /// Leg B's peer (Opus arrives on it).
    peer_b: UdpSocket,
    /// The worker's leg A address.
    to: SocketAddr,
    /// PCMU packets sent.
    pub sent: u64,
    /// Opus packets received: when, and their sequence numbers.
    pub arrivals: Vec<(Instant, u16)>,
    /// Stop sending at this time (a released call), if set.
    pub stop_at: Option<Instant>,
}

impl Call {
    /// Two peer sockets on the loadgen host's `ip`.
    pub fn peers(ip: Ipv4Addr) -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind((ip, 0)).expect("leg A peer");
        let b = UdpSocket::bind((ip, 0)).expect("leg B peer");
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// A call whose leg A the worker answered at `to`.
    pub fn new(
        session_id: String,
        worker: String,
        peers: (UdpSocket, UdpSocket),
        to: SocketAddr,
    ) -> Self {
        Self {
            session_id,
            worker,
            peer_a: peers.0,
            peer_b: peers.1,
            to,
            sent: 0,
            arrivals: Vec::new(),
            stop_at: None,
        }
    }

    /// Opus sequence numbers missing between the first and the last received.
    pub fn gaps(&self) -> u64 {
        self.arrivals
            .windows(2)
            .map(|w| u64::from(w[1].1.wrapping_sub(w[0].1)).saturating_sub(1))
            .sum()
    }

    /// Opus packets received after `t`.
    pub fn received_after(&self, t: Instant) -> usize {
        self.arrivals.iter().filter(|(at, _)| *at > t).count()
    }

    /// The longest time between two Opus packets received, and when it began.
    pub fn longest_silence(&self) -> (Duration, Option<Instant>) {
        self.arrivals
            .windows(2)
            .map(|w| (w[1].0 - w[0].0, Some(w[0].0)))
            .max_by_key(|(d, _)| *d)
            .unwrap_or((Duration::ZERO, None))
    }
}

/// The media thread.
pub struct Media {
    add: Sender<Call>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Call>>>,
}

impl Media {
    /// Starts the thread with no calls.
    pub fn start() -> Self {
        let (add, calls) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || run(calls, &stop)
        });
        Self {
            add,
            stop,
            thread: Some(thread),
        }
    }

    /// Starts playing `call`.
    pub fn add(&self, call: Call) {
        self.add.send(call).expect("media thread runs");
    }

    /// Stops sending, waits for the last replies, and hands back every call's record.
    pub fn finish(mut self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("media thread")
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(new_calls: Receiver<Call>, stop: &AtomicBool) -> Vec<Call> {
    let mut tone = [0i16; 160];
    for (i, s) in tone.iter_mut().enumerate() {
        *s = (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 400.0 / 8000.0).sin()) as i16;
    }
    let mut payload = [0u8; 160];
    Law::Ulaw.encode(&tone, &mut payload);
    let mut packet = [0u8; 12 + 160];
    packet[12..].copy_from_slice(&payload);
    let mut calls: Vec<Call> = Vec::new();
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    let mut tick: u32 = 0;
    let mut stopped: Option<Instant> = None;
    loop {
        calls.extend(new_calls.try_iter());
        let now = Instant::now();
        if stopped.is_none() && stop.load(Ordering::Relaxed) {
            stopped = Some(now);
        }
        // The last replies come within a few packet times.
        if stopped.is_some_and(|t| now - t > Duration::from_millis(300)) {
            return calls;
        }
        if stopped.is_none() && now - start >= PTIME * tick {
            for (n, call) in calls.iter_mut().enumerate() {
                if call.stop_at.is_some_and(|t| now >= t) {
                    continue;
                }
                let seq = call.sent as u16;
                RtpHeader {
                    marker: call.sent == 0,
                    payload_type: 0,
                    sequence_number: seq,
                    timestamp: (call.sent as u32).wrapping_mul(160),
                    ssrc: 0x1000 + n as u32,
                }
                .write(&mut packet)
                .expect("header fits");
                // A send to a host cut off still leaves this host: an error here is ours.
                if call.peer_a.send_to(&packet, call.to).is_ok() {
                    call.sent += 1;
                }
            }
            tick += 1;
        }
        for call in &mut calls {
            while let Ok(n) = call.peer_b.recv(&mut buf) {
                if let Ok(p) = RtpPacket::parse(&buf[..n])
                    && p.payload_type() == OPUS_PT
                {
                    call.arrivals.push((Instant::now(), p.sequence_number()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
