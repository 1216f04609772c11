//! The receive side: one thread (beside the pacer) owns every leg socket's read side in a mio
//! poll loop, timestamps each datagram on arrival and feeds the stream's [`StreamStats`].
//!
//! One thread for all sockets keeps the loadgen's own cost small and off the async runtime.
//! Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS, through quinn-udp), not
//! the moment this thread got around to reading: under load the loadgen's own scheduling would
//! otherwise be measured as the target's latency.
//!
//! Because of that the thread can read on a 1 ms tick (sleep, then a non-blocking poll) instead
//! of sleeping in `epoll_wait`: nobody waits on the sockets, so the target's sends do not have to
//! wake the loadgen. On loopback the sender pays for the receiver's wake-up (on this kind of VM
//! a cross-core wake is an IPI and a VM exit: about 10 % of a worker's time at 200 calls), a cost
//! a NIC would not put on a transcoder.
//!
//! A stream with a receive-side [`Impairer`] has its datagrams dropped, duplicated or delayed
//! (held here and fed to the measurement with their arrival time moved by the delay, after later
//! ones when the delay reorders them), as a network between the target and its peer would.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bridgepool_codecs::rtp::{RtpPacket, is_rtcp};
use mio::{Events, Interest, Poll, Token};
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};

use crate::impair::{ImpairCounts, Impairer};
use crate::stats::{RtpFields, SendTimes, StreamStats};

/// The measurement of one received stream, shared between the receiver thread and the run.
pub type SharedStats = Arc<Mutex<StreamStats>>;

/// The read tick: datagrams wait in the socket up to this long (their timestamps do not).
const TICK: Duration = Duration::from_millis(1);
/// Datagrams per recvmmsg.
const BATCH: usize = 8;

/// One socket whose datagrams feed `stats`; `input` is the send log of the stream whose
/// transcoded output arrives here.
pub struct Listen {
    /// The leg's socket (a clone of the pacer's, non-blocking).
    pub socket: UdpSocket,
    /// Where the measurement goes.
    pub stats: SharedStats,
    /// Send times of the input this stream carries.
    pub input: Arc<dyn SendTimes + Send + Sync>,
    /// The receive-side impairment schedule, if any.
    pub impair: Option<Impairer>,
}

enum Command {
    Add { call: u64, sockets: Vec<Listen> },
    Remove { call: u64 },
}

/// Handle on the receiver thread.
pub struct Receivers {
    commands: Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<ImpairCounts>>,
}

impl Receivers {
    /// Starts the thread; arrival times count from `epoch`.
    pub fn start(epoch: Instant) -> io::Result<Self> {
        let poll = Poll::new()?;
        let (commands, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loadgen-recv".into())
            .spawn(move || run(poll, rx, stop2, epoch))?;
        Ok(Self {
            commands,
            stop,
            thread: Some(thread),
        })
    }

    /// Starts listening on a call's sockets.
    pub fn add(&self, call: u64, sockets: Vec<Listen>) {
        // The thread only ends through `finish` or drop: a failed send has nobody to tell.
        let _ = self.commands.send(Command::Add { call, sockets });
    }

    /// Stops listening on a call's sockets (its stats stay with the caller).
    pub fn remove(&self, call: u64) {
        let _ = self.commands.send(Command::Remove { call });
    }

    /// Stops the thread; returns what the receive-side impairments did.
    pub fn finish(mut self) -> ImpairCounts {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> ImpairCounts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

struct Registered {
    socket: mio::net::UdpSocket,
    /// quinn-udp's view of the socket: it turned SO_TIMESTAMPNS on and parses the cmsgs.
    udp: UdpSocketState,
    stats: SharedStats,
    input: Arc<dyn SendTimes + Send + Sync>,
    impair: Option<Impairer>,
}

/// A datagram an impairment holds back until `due_us` (its new arrival time).
struct Held {
    due_us: u64,
    order: u64,
    stats: SharedStats,
    input: Arc<dyn SendTimes + Send + Sync>,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due_us, self.order) == (o.due_us, o.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due_us, self.order).cmp(&(o.due_us, o.order))
    }
}

fn run(
    mut poll: Poll,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) -> ImpairCounts {
    let mut impaired = ImpairCounts::default();
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut held_order = 0u64;
    let mut events = Events::with_capacity(1024);
    // Sockets by token; tokens are reused through `free`.
    let mut sockets: Vec<Option<Registered>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut calls: HashMap<u64, Vec<usize>> = HashMap::new();
    // quinn-udp turns UDP GRO on: one read may carry up to 64 KiB of coalesced datagrams.
    let Ok(mut bufs): Result<Box<[[u8; 65_536]; BATCH]>, _> =
        vec![[0u8; 65_536]; BATCH].into_boxed_slice().try_into()
    else {
        return impaired;
    };
    // Kernel timestamps are Unix time; the run counts from `epoch`.
    let epoch_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(epoch.elapsed());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        if let Err(e) = poll.poll(&mut events, Some(Duration::ZERO))
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!(error = %e, "loadgen receiver poll failed");
            return impaired;
        }
        let now_us = Instant::now().saturating_duration_since(epoch).as_micros() as u64;
        while held.peek().is_some_and(|h| h.0.due_us <= now_us) {
            let Some(Reverse(h)) = held.pop() else { break };
            on_datagram(&h.stats, &h.bytes, h.due_us, h.input.as_ref());
        }
        for event in events.iter() {
            let Some(Some(r)) = sockets.get_mut(event.token().0) else {
                continue;
            };
            // Edge triggered: read until a batch comes back short.
            loop {
                let mut metas = [RecvMeta::default(); BATCH];
                let mut iovs = bufs.each_mut().map(|b| IoSliceMut::new(&mut b[..]));
                let n = match r
                    .udp
                    .recv(UdpSockRef::from(&r.socket), &mut iovs, &mut metas)
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP port unreachable surfaces as an error on Linux: keep reading.
                    Err(_) => continue,
                };
                let read_at = Instant::now().saturating_duration_since(epoch);
                for (meta, buf) in metas.iter().zip(bufs.iter()).take(n) {
                    let arrival = meta
                        .timestamp
                        .map_or(read_at, |t| t.saturating_sub(epoch_unix));
                    // quinn-udp turns GRO on: one buffer may hold several datagrams of `stride`.
                    let received = &buf[..meta.len.min(buf.len())];
                    for datagram in received.chunks(meta.stride.max(1)) {
                        let at = arrival.as_micros() as u64;
                        let Some(fate) = r.impair.as_mut().map(Impairer::next_fate) else {
                            on_datagram(&r.stats, datagram, at, r.input.as_ref());
                            continue;
                        };
                        impaired.count(fate);
                        if fate.drop {
                            continue;
                        }
                        for _ in 0..1 + usize::from(fate.duplicate) {
                            if fate.delay_us == 0 {
                                on_datagram(&r.stats, datagram, at, r.input.as_ref());
                            } else {
                                held_order += 1;
                                held.push(Reverse(Held {
                                    due_us: at + fate.delay_us,
                                    order: held_order,
                                    stats: r.stats.clone(),
                                    input: r.input.clone(),
                                    bytes: datagram.to_vec(),
                                }));
                            }
                        }
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                Command::Add {
                    call,
                    sockets: listens,
                } => {
                    let mut tokens = Vec::with_capacity(listens.len());
                    for l in listens {
                        let token = free.pop().unwrap_or_else(|| {
                            sockets.push(None);
                            sockets.len() - 1
                        });
                        let udp = match UdpSocketState::new(UdpSockRef::from(&l.socket)) {
                            Ok(u) => u,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot set a leg socket up");
                                free.push(token);
                                continue;
                            }
                        };
                        let mut socket = mio::net::UdpSocket::from_std(l.socket);
                        if let Err(e) =
                            poll.registry()
                                .register(&mut socket, Token(token), Interest::READABLE)
                        {
                            tracing::warn!(error = %e, "cannot watch a leg socket");
                            free.push(token);
                            continue;
                        }
                        sockets[token] = Some(Registered {
                            socket,
                            udp,
                            stats: l.stats,
                            input: l.input,
                            impair: l.impair,
                        });
                        tokens.push(token);
                    }
                    calls.insert(call, tokens);
                }
                Command::Remove { call } => {
                    for token in calls.remove(&call).unwrap_or_default() {
                        if let Some(mut r) = sockets[token].take() {
                            let _ = poll.registry().deregister(&mut r.socket);
                        }
                        free.push(token);
                    }
                }
            }
        }
    }
    // Held datagrams whose time has not come are fed at their due time: their streams are being
    // finalized, and they would have arrived.
    while let Some(Reverse(h)) = held.pop() {
        on_datagram(&h.stats, &h.bytes, h.due_us, h.input.as_ref());
    }
    impaired
}

/// Feeds one datagram: RTP to the measurement, RTCP and garbage only counted.
pub fn on_datagram(stats: &SharedStats, datagram: &[u8], arrival_us: u64, input: &dyn SendTimes) {
    let Ok(mut stats) = stats.lock() else { return };
    if is_rtcp(datagram) {
        stats.on_rtcp();
        return;
    }
    match RtpPacket::parse(datagram) {
        Ok(packet) => stats.on_packet(arrival_us, &RtpFields::from(&packet), input),
        Err(_) => stats.on_malformed(),
    }
}
