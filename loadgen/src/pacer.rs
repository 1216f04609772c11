//! The paced sender: one thread plays every active stream on a grid of absolute deadlines.
//!
//! The 20 ms packet time is cut into [`SLOTS`] slots of 100 us; slot `k` is due at
//! `epoch + k * 100 us` and the thread sleeps until that instant (never "100 us from now"), so
//! lateness never accumulates into drift. Each call plays in one slot of every 20 ms (its phase,
//! spread evenly over the calls), as real calls that started at unrelated moments do: sending
//! every call in the same instant would make the system under test see one burst per 20 ms and
//! measure its queueing, not its latency. The slots are short for the same reason: with 1 ms
//! slots, 200 calls arrive as bursts of 20 datagrams every millisecond, and the last of a burst
//! waits for the nineteen before it (measured at 184 calls on one core: p95 0.66 ms with 1 ms
//! slots, 0.15-0.20 ms with 100 us slots). Each call leg owns its socket and sends one datagram
//! per 20 ms, so there is nothing for `sendmmsg` to batch per socket; the pass over a slot's
//! streams is the batch. Payloads were encoded
//! before the run ([`crate::media`]): a tick only writes a 12-byte header and copies bytes.
//!
//! Send times go into a [`SendLog`] per stream, where the receiver of the other leg finds them to
//! compute latency. A frame the client leaves out (Opus DTX) is not sent and takes no sequence
//! number; the next one carries the marker bit. A stream with an [`Impairer`] has its packets
//! dropped, delayed (held in a queue and sent later) or duplicated by that schedule; a dropped or
//! delayed packet is logged at the time its client sent it, so the network's loss and delay are
//! measured as the target's peer would see them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bridgepool_codecs::rtp::{HEADER_LEN, RtpHeader};
use serde::{Deserialize, Serialize};

use crate::impair::{ImpairCounts, Impairer};
use crate::media::{EncodedMedia, MediaCodec, PTIME_MS, Track};
use crate::stats::{DELIVERY_BUCKET_US, SendTimes};

/// Frames of send history kept per stream (20 s): older output cannot be matched for latency.
const LOG_FRAMES: usize = 1024;
/// Send slots per packet time: calls are spread over 200 phases of 100 us.
pub const SLOTS: u64 = 200;

/// When slot `k` (counted from the epoch, across packet times) is due. In nanoseconds on 64
/// bits: a `Duration * u32` slot count would wrap after 5 days of 100 us slots.
pub fn slot_deadline(epoch: Instant, k: u64) -> Instant {
    let slot_ns = PTIME_MS * 1_000_000 / SLOTS;
    epoch + Duration::from_nanos(k.saturating_mul(slot_ns))
}

/// The send times of one stream's frames, written by the pacer, read by a receiver.
#[derive(Debug)]
pub struct SendLog {
    epoch: Instant,
    ring: Mutex<Vec<(u64, u64)>>,
    sent: AtomicU64,
}

impl SendLog {
    /// An empty log whose times count from `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            ring: Mutex::new(vec![(u64::MAX, 0); LOG_FRAMES]),
            sent: AtomicU64::new(0),
        }
    }

    /// Records that frame `frame` left at `at`.
    pub fn record(&self, frame: u64, at: Instant) {
        let us = at.saturating_duration_since(self.epoch).as_micros() as u64;
        if let Ok(mut ring) = self.ring.lock() {
            ring[(frame % LOG_FRAMES as u64) as usize] = (frame, us);
        }
        self.sent.fetch_max(frame + 1, Ordering::Relaxed);
    }
}

impl SendTimes for SendLog {
    fn sent_at_us(&self, frame: u64) -> Option<u64> {
        let ring = self.ring.lock().ok()?;
        let (f, us) = ring[(frame % LOG_FRAMES as u64) as usize];
        (f == frame).then_some(us)
    }

    fn frames_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// One direction of a call as the pacer plays it.
#[derive(Debug, Clone)]
pub struct OutStream {
    /// The leg's socket (also read by the leg's receiver).
    pub socket: Arc<UdpSocket>,
    /// Where the target expects this leg's RTP.
    pub dest: SocketAddr,
    /// What to send.
    pub codec: MediaCodec,
    /// Payload type to write.
    pub payload_type: u8,
    /// SSRC.
    pub ssrc: u32,
    /// First sequence number.
    pub first_seq: u16,
    /// First timestamp.
    pub first_timestamp: u32,
    /// Where send times go.
    pub log: Arc<SendLog>,
    /// The voice (and Opus client) played.
    pub track: Track,
    /// The send-side impairment schedule, if any.
    pub impair: Option<Impairer>,
}

/// What the pacer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PacerStats {
    /// Slots run (100 us each).
    pub ticks: u64,
    /// Datagrams sent.
    pub packets: u64,
    /// Sends that failed (a full socket buffer, an unreachable port).
    pub send_errors: u64,
    /// Slots that started more than 2 ms after their deadline (one stall counts once for every
    /// 100 us slot it delayed that much).
    pub late_ticks: u64,
    /// Worst lateness of a slot start, ms.
    pub max_late_ms: f64,
    /// Frames the clients left out (DTX).
    pub dtx_frames: u64,
    /// What the send-side impairments did.
    pub impaired: ImpairCounts,
}

enum Command {
    Add { id: u64, streams: Vec<OutStream> },
    Remove { id: u64 },
}

/// Handle on the pacer thread.
#[derive(Debug)]
pub struct Pacer {
    commands: Sender<Command>,
    stop: Arc<AtomicBool>,
    packets: Arc<AtomicU64>,
    buckets: Arc<Mutex<Vec<u64>>>,
    thread: Option<JoinHandle<PacerStats>>,
}

impl Pacer {
    /// Starts the thread; tick 0 is due at `epoch`.
    pub fn start(media: Arc<EncodedMedia>, epoch: Instant) -> std::io::Result<Self> {
        let (commands, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let packets = Arc::new(AtomicU64::new(0));
        let buckets = Arc::new(Mutex::new(Vec::new()));
        let counters = Counters {
            packets: packets.clone(),
            buckets: buckets.clone(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-pacer".into())
            .spawn(move || run(media, epoch, rx, stop2, counters))?;
        Ok(Self {
            commands,
            stop,
            packets,
            buckets,
            thread: Some(thread),
        })
    }

    /// Starts playing the streams of call `id` within the next 20 ms, in phase slot
    /// `id % SLOTS`.
    pub fn add(&self, id: u64, streams: Vec<OutStream>) {
        // The thread only ends through `finish`, which consumes self: the send cannot fail here.
        let _ = self.commands.send(Command::Add { id, streams });
    }

    /// Stops playing call `id`.
    pub fn remove(&self, id: u64) {
        let _ = self.commands.send(Command::Remove { id });
    }

    /// Datagrams sent so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Packets sent, by send time in [`DELIVERY_BUCKET_US`] buckets since the epoch.
    pub fn sent_buckets(&self) -> Vec<u64> {
        self.buckets.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Stops the thread and returns what it did.
    pub fn finish(mut self) -> PacerStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Counters the pacer shares with the run.
struct Counters {
    packets: Arc<AtomicU64>,
    buckets: Arc<Mutex<Vec<u64>>>,
}

struct Playing {
    start_tick: u64,
    streams: Vec<OutStream>,
}

/// A packet an impairment holds back: due time, then what to send where.
struct Delayed {
    due: Instant,
    socket: Arc<UdpSocket>,
    dest: SocketAddr,
    bytes: Vec<u8>,
    /// Counted as a packet sent (a duplicate's copy is not).
    counted: bool,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        self.due == o.due
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.due.cmp(&o.due)
    }
}

fn run(
    media: Arc<EncodedMedia>,
    epoch: Instant,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    counters: Counters,
) -> PacerStats {
    let mut stats = PacerStats::default();
    // Calls by phase slot.
    let mut slots: Vec<HashMap<u64, Playing>> = (0..SLOTS).map(|_| HashMap::new()).collect();
    let mut buf = [0u8; 1500];
    // Packets held back by impairments, earliest first; bounded by the packets of one delay range.
    let mut delayed: BinaryHeap<Reverse<Delayed>> = BinaryHeap::new();
    let mut k: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let deadline = slot_deadline(epoch, k);
        let now = Instant::now();
        if let Some(wait) = deadline.checked_duration_since(now) {
            std::thread::sleep(wait);
        } else {
            let late = now.duration_since(deadline).as_secs_f64() * 1000.0;
            stats.max_late_ms = stats.max_late_ms.max(late);
            if late > 2.0 {
                stats.late_ticks += 1;
            }
        }
        let tick = k / SLOTS;
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                Command::Add { id, streams } => {
                    // Frame 0 goes out in the call's slot of the next packet time.
                    let playing = Playing {
                        start_tick: tick + 1,
                        streams,
                    };
                    slots[(id % SLOTS) as usize].insert(id, playing);
                }
                Command::Remove { id } => {
                    slots[(id % SLOTS) as usize].remove(&id);
                }
            }
        }
        for call in slots[(k % SLOTS) as usize].values_mut() {
            let Some(frame) = tick.checked_sub(call.start_tick) else {
                continue;
            };
            for s in &mut call.streams {
                let Some((payload, seq_offset)) = media.packet(s.track, s.codec, frame) else {
                    stats.dtx_frames += 1;
                    continue;
                };
                // The first packet, and the first after frames left out, carry the marker.
                let after_gap = frame
                    .checked_sub(1)
                    .is_none_or(|prev| media.packet(s.track, s.codec, prev).is_none());
                let header = RtpHeader {
                    marker: after_gap,
                    payload_type: s.payload_type,
                    sequence_number: s.first_seq.wrapping_add(seq_offset as u16),
                    timestamp: s
                        .first_timestamp
                        .wrapping_add((frame as u32).wrapping_mul(s.codec.timestamp_step())),
                    ssrc: s.ssrc,
                };
                let len = HEADER_LEN + payload.len();
                if header.write(&mut buf).is_err() || len > buf.len() {
                    stats.send_errors += 1;
                    continue;
                }
                buf[HEADER_LEN..len].copy_from_slice(payload);
                // Recorded before the send: on loopback the output can come back before the
                // send call returns.
                let now = Instant::now();
                s.log.record(frame, now);
                let fate = s.impair.as_mut().map(Impairer::next_fate);
                if let Some(fate) = fate {
                    stats.impaired.count(fate);
                    if fate.drop {
                        continue;
                    }
                    if fate.delay_us > 0 {
                        let copies = 1 + usize::from(fate.duplicate);
                        for copy in 0..copies {
                            delayed.push(Reverse(Delayed {
                                due: now + Duration::from_micros(fate.delay_us),
                                socket: s.socket.clone(),
                                dest: s.dest,
                                bytes: buf[..len].to_vec(),
                                counted: copy == 0,
                            }));
                        }
                        continue;
                    }
                }
                // A duplicate's copy is not counted as a packet sent: the loss figures compare
                // distinct packets.
                let copies = 1 + usize::from(fate.is_some_and(|f| f.duplicate));
                for copy in 0..copies {
                    match s.socket.send_to(&buf[..len], s.dest) {
                        Ok(_) => stats.packets += u64::from(copy == 0),
                        Err(_) => stats.send_errors += 1,
                    }
                }
            }
        }
        while delayed.peek().is_some_and(|d| d.0.due <= Instant::now()) {
            let Some(Reverse(d)) = delayed.pop() else {
                break;
            };
            match d.socket.send_to(&d.bytes, d.dest) {
                Ok(_) => stats.packets += u64::from(d.counted),
                Err(_) => stats.send_errors += 1,
            }
        }
        let sent_this_slot = stats.packets - counters.packets.load(Ordering::Relaxed);
        if sent_this_slot > 0 {
            let bucket = (deadline.saturating_duration_since(epoch).as_micros() as u64
                / DELIVERY_BUCKET_US) as usize;
            if let Ok(mut b) = counters.buckets.lock() {
                if b.len() <= bucket {
                    b.resize(bucket + 1, 0);
                }
                b[bucket] += sent_this_slot;
            }
        }
        counters.packets.store(stats.packets, Ordering::Relaxed);
        stats.ticks += 1;
        k += 1;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_100_us_apart_and_do_not_wrap() {
        let epoch = Instant::now();
        assert_eq!(
            slot_deadline(epoch, 1) - slot_deadline(epoch, 0),
            Duration::from_micros(100)
        );
        assert_eq!(
            slot_deadline(epoch, SLOTS) - epoch,
            Duration::from_millis(PTIME_MS),
            "one packet time per round of slots"
        );
        // Six days of slots, past where a 32-bit slot count would have wrapped.
        let six_days = 6 * 86_400 * 10_000;
        assert_eq!(
            slot_deadline(epoch, six_days) - epoch,
            Duration::from_secs(6 * 86_400)
        );
    }
}
