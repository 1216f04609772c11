//! One media thread: pinned to a core, it owns its sessions and their sockets for their whole
//! life and shares nothing on the packet path. An epoll loop (mio) wakes on readable sockets,
//! commands and timers; each readable socket is drained in batches with recvmmsg (quinn-udp).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tokio::sync::mpsc::UnboundedSender;

use super::budget::Budget;
use super::command::{
    Command, EngineEvent, EngineEventKind, JobInfo, JobName, SessionChange, SessionId,
    SessionSnapshot, Subject,
};
use super::latch::Latch;
use super::load::{
    CoreFigures, DirectionCosts, JobKind, LoadMeter, MISS_TOLERANCE, Overload, WindowTally,
};
use super::metrics::CoreCounters;
use super::ports::{PortLease, PortPair};
use crate::session::oneway::OneWay;
use crate::session::{Channel, DropReason, Leg, MAX_DATAGRAM, Mode, Session, SessionEvent};

/// The token of the command waker.
pub(super) const WAKER: Token = Token(usize::MAX);
/// Datagrams per recvmmsg call.
const BATCH: usize = 8;
/// Receive buffers for one batch.
type RecvBufs = [[u8; 1500]; BATCH];
/// Readable sockets handled between two looks at the timer heap: a long batch of input (after
/// the thread was descheduled, say) must not hold the G.711 playout ticks behind it all.
const EVENTS_PER_TIMER_CHECK: usize = 16;
/// Longest sleep with nothing scheduled: the load window still rolls.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// At most one overload WARN and one drop summary per core in this long.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Media a single packet stands for when a leg's talk time is tallied (one usual ptime).
const PACKET_TALK: Duration = Duration::from_millis(20);
/// Packet time a one-way job's budget counts (the relay forwards what the client sends).
const JOB_PTIME: Duration = Duration::from_millis(20);

struct LegIo {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    rtp_latch: Latch,
    rtcp_latch: Latch,
    /// The peer sent RTCP on the RTP port (RFC 5761): we answer there too.
    rtcp_mux: bool,
    /// What the latched peer may send, both ports together (a flood costs this call only).
    budget: Budget,
    /// Dropped after the sockets (field order), returning the ports.
    _lease: PortLease,
}

struct Entry {
    id: SessionId,
    session: Session,
    legs: [LegIo; 2],
    /// The deadline queued for this session (stale heap entries are skipped).
    timer: Option<Instant>,
    /// First and last RTP accepted per leg in the current load window: how long it talked.
    talk: [Option<(Instant, Instant)>; 2],
    /// Calibrated cost it holds in `reserved_ppm`, given back when it ends.
    cost: u64,
}

/// Tokens and timer keys with this bit name a job slot; without it, a session slot (shifted by
/// two for leg and channel). Below the waker's `usize::MAX`.
const JOB: usize = 1 << (usize::BITS - 2);

/// A one-way job on this core: its socket, guarded latching and pipeline.
struct JobEntry {
    name: JobName,
    socket: UdpSocket,
    /// Not read: held so the pair's RTCP port stays ours (nothing arrives there from the relay).
    _rtcp: std::net::UdpSocket,
    /// Dropped after the sockets (field order), returning the ports.
    _lease: PortLease,
    local: SocketAddr,
    destination: SocketAddr,
    /// The first source; the relay sends from its destination port.
    latched: Option<SocketAddr>,
    /// Datagrams from other sources, dropped.
    foreign: u64,
    /// What the latched relay may send (the job's input ptime is not signalled: 20 ms counted).
    budget: Budget,
    /// Datagrams from the latched source beyond the budget, dropped.
    over_budget: u64,
    job: Box<OneWay>,
    kind: JobKind,
    /// Calibrated cost it holds in `reserved_ppm`.
    cost: u64,
    timer: Option<Instant>,
    /// First and last RTP accepted in the current load window.
    talk: Option<(Instant, Instant)>,
}

impl JobEntry {
    fn info(&self) -> JobInfo {
        let mut stats = self.job.stats();
        stats.errors += self.foreign + self.over_budget;
        JobInfo {
            name: self.name.clone(),
            local: self.local,
            stats,
        }
    }

    /// Latching, guarded: the first source only, never a switch (no RTP-bleed hijack).
    fn accept(&mut self, from: SocketAddr) -> bool {
        match self.latched {
            None => {
                self.latched = Some(from);
                true
            }
            Some(l) if l == from => true,
            Some(_) => {
                self.foreign += 1;
                false
            }
        }
    }

    /// The input leg in the per-leg counters: G.711 input counts as leg A, Opus as leg B.
    fn input_leg(&self) -> usize {
        match self.kind {
            JobKind::ToG711 => 1,
            JobKind::ToOpus | JobKind::Recode => 0,
        }
    }
}

/// A session or job slot whose handling panicked.
#[derive(Clone, Copy, Debug)]
enum Target {
    Session(usize),
    Job(usize),
}

thread_local! {
    /// Set while a media thread runs session or job code under [`guarded`]: the panic hook then
    /// keeps the panic's location for the shard's rate-limited ERROR line instead of printing.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where the last caught panic happened.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs per-session (or per-job) work so that a panic in it unwinds to here, not through the
/// media thread. `AssertUnwindSafe`: on a panic the shard removes the session concerned, the
/// only state the panic can have left half-updated.
fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    CATCHING.with(|c| c.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(false));
    result
}

/// Installs (once per process) a panic hook that, for panics [`guarded`] catches on a media
/// thread, records the location for the shard's log line instead of printing a report per panic
/// (one a packet would flood stderr); every other panic goes to the previous hook.
pub(super) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let location = info.location().map(ToString::to_string);
                LAST_PANIC.with(|l| *l.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Payload prefix of a datagram that panics its session or job when the test hook is on (see
/// [`ShardConfig::panic_hook`]).
pub(super) const TEST_PANIC_PAYLOAD: &[u8] = b"BRIDGEPOOL-TEST-PANIC";

/// Per-thread configuration.
pub(super) struct ShardConfig {
    pub(super) latch_window: Duration,
    pub(super) target_busy: f64,
    /// Poll without sleeping (see [`super::EngineConfig::busy_poll`]).
    pub(super) busy_poll: bool,
    /// Learn the cost live (off: the calibration is the cost).
    pub(super) live_cost: bool,
    /// Test hook: a datagram whose RTP payload starts with [`TEST_PANIC_PAYLOAD`] panics its
    /// session or job. Only in debug builds, and only when `BRIDGEPOOL_TEST_PANIC_HOOK` was set
    /// at start, so network input alone can never trigger it.
    pub(super) panic_hook: bool,
}

/// Figures the shard keeps between windows to turn its counters into per-window deltas, and its
/// log rate limits.
struct Reporting {
    packets_in: u64,
    drops: [u64; DropReason::ALL.len()],
    /// Drops since the last summary line.
    unlogged: [u64; DropReason::ALL.len()],
    drops_logged: Option<Instant>,
    overload_logged: Option<Instant>,
    /// A WARN said the core is overloaded and no INFO has said it recovered.
    warned: bool,
    panic_logged: Option<Instant>,
    /// Panics since the last ERROR line about one.
    unlogged_panics: u64,
}

pub(super) struct Shard {
    poll: Poll,
    commands: Receiver<Command>,
    events: UnboundedSender<EngineEvent>,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_id: HashMap<SessionId, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    figures: Arc<CoreFigures>,
    counters: Arc<CoreCounters>,
    meter: LoadMeter,
    config: ShardConfig,
    udp: UdpSocketState,
    send_buf: Box<[u8; MAX_DATAGRAM]>,
    live: usize,
    jobs: Vec<Option<JobEntry>>,
    free_jobs: Vec<usize>,
    live_jobs: usize,
    /// Calibrated cost reserved by live sessions and jobs, ppm.
    core: usize,
    reporting: Reporting,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        poll: Poll,
        commands: Receiver<Command>,
        events: UnboundedSender<EngineEvent>,
        figures: Arc<CoreFigures>,
        counters: Arc<CoreCounters>,
        costs: DirectionCosts,
        core: usize,
        config: ShardConfig,
    ) -> io::Result<Self> {
        // quinn-udp's receive path keeps no per-socket state on Linux; the state is built on a
        // throwaway socket so GRO stays off on media sockets (it would need 64 KB buffers, and
        // RTP datagrams of one flow seldom share a size to coalesce).
        let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let udp = UdpSocketState::new(UdpSockRef::from(&probe))?;
        Ok(Self {
            poll,
            commands,
            events,
            entries: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            figures,
            counters,
            meter: LoadMeter::new(Instant::now(), costs, config.target_busy, config.live_cost),
            config,
            udp,
            send_buf: Box::new([0; MAX_DATAGRAM]),
            live: 0,
            jobs: Vec::new(),
            free_jobs: Vec::new(),
            live_jobs: 0,
            core,
            reporting: Reporting {
                packets_in: 0,
                drops: [0; DropReason::ALL.len()],
                unlogged: [0; DropReason::ALL.len()],
                drops_logged: None,
                overload_logged: None,
                warned: false,
                panic_logged: None,
                unlogged_panics: 0,
            },
        })
    }

    /// Runs until a Shutdown command.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut bufs: Box<RecvBufs> = Box::new([[0; 1500]; BATCH]);
        loop {
            let now = Instant::now();
            let next = self.timers.peek().map(|Reverse((t, _))| *t);
            let wait = if self.config.busy_poll {
                Duration::ZERO
            } else {
                next.map_or(IDLE_TICK, |t| {
                    t.saturating_duration_since(now).min(IDLE_TICK)
                })
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media poll failed; thread stops");
                return;
            }
            let woke = Instant::now();
            // A turn that handled no event or due timer did no media work: a spinning core's
            // empty turns are idle time, not load.
            let mut worked = false;
            let mut sockets = 0usize;
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                worked = true;
                // Due ticks go out between sockets. A tick may now run before its own session's
                // socket further down this batch is read: that packet counts as late to the
                // buffer, as it would had it arrived a moment later.
                if sockets > 0 && sockets.is_multiple_of(EVENTS_PER_TIMER_CHECK) {
                    self.run_timers();
                }
                sockets += 1;
                let token = event.token().0;
                let target = if token & JOB != 0 {
                    Target::Job(token & !JOB)
                } else {
                    Target::Session(token >> 2)
                };
                // A panic in one session's datagram costs that session only.
                let handled = guarded(|| match target {
                    Target::Job(slot) => self.on_job_readable(slot, &mut bufs),
                    Target::Session(_) => self.on_readable(event.token(), &mut bufs),
                });
                if let Err(panic) = handled {
                    self.fail(target, "datagram", &*panic);
                }
            }
            // Set-up work is timed apart: a burst of creates is not what talking calls cost.
            let commands = Instant::now();
            match self.drain_commands() {
                Some(true) => self.meter.setup(commands.elapsed()),
                Some(false) => {}
                None => {
                    self.shutdown();
                    return;
                }
            }
            let timers = Instant::now();
            if self.run_timers() {
                self.meter.media(timers.elapsed());
            }
            if worked {
                self.meter.media(commands.saturating_duration_since(woke));
            }
            let now = Instant::now();
            if self.meter.due(now) {
                self.close_window(now);
            }
        }
    }

    /// Tallies the window (who talked, how long; input and late drops), hands it to the meter
    /// and logs overload and drops, both rate-limited.
    fn close_window(&mut self, now: Instant) {
        let mut tally = WindowTally::default();
        for entry in self.entries.iter_mut().flatten() {
            let mut talked = false;
            let relaying = entry.session.mode() == Mode::Passthrough;
            for (i, talk) in entry.talk.iter_mut().enumerate() {
                if let Some((first, last)) = talk.take() {
                    let secs = (last.saturating_duration_since(first) + PACKET_TALK)
                        .min(super::load::WINDOW)
                        .as_secs_f64();
                    if relaying {
                        tally.talk_relay += secs;
                    } else if i == 0 {
                        tally.talk_a += secs;
                    } else {
                        tally.talk_b += secs;
                    }
                    talked = true;
                }
            }
            tally.talking += usize::from(talked);
        }
        for entry in self.jobs.iter_mut().flatten() {
            if let Some((first, last)) = entry.talk.take() {
                let secs = (last.saturating_duration_since(first) + PACKET_TALK)
                    .min(super::load::WINDOW)
                    .as_secs_f64();
                match entry.kind {
                    JobKind::ToOpus => tally.talk_a += secs,
                    JobKind::ToG711 => tally.talk_b += secs,
                    JobKind::Recode => tally.talk_recode += secs,
                }
                tally.talking += 1;
            }
        }
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let packets_in = load(&self.counters.packets_in[0]) + load(&self.counters.packets_in[1]);
        tally.packets_in = packets_in - self.reporting.packets_in;
        self.reporting.packets_in = packets_in;
        let mut dropped = false;
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let total = load(&self.counters.drops[i]);
            let delta = total - self.reporting.drops[i];
            self.reporting.drops[i] = total;
            self.reporting.unlogged[i] += delta;
            dropped |= delta > 0;
            if *reason == DropReason::Late {
                tally.late = delta;
            }
        }
        let state = self.meter.close(now, tally, &self.figures);
        let due = |last: Option<Instant>| last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
        let figures = &self.figures;
        match state {
            Some(Overload::Entered) | Some(Overload::Continues)
                if due(self.reporting.overload_logged) =>
            {
                self.reporting.overload_logged = Some(now);
                self.reporting.warned = true;
                tracing::warn!(
                    core = self.core,
                    sessions = self.live,
                    talking = tally.talking,
                    busy = figures.busy(),
                    capacity = figures.capacity.load(Ordering::Relaxed),
                    misses = figures.recent_misses.load(Ordering::Relaxed),
                    late = tally.late,
                    packets_in = tally.packets_in,
                    "media core overloaded: admission closed on it until it keeps up"
                );
            }
            // Only after a WARN said so: a flapping core logs one pair per LOG_EVERY at most.
            Some(Overload::Cleared) if self.reporting.warned => {
                self.reporting.warned = false;
                tracing::info!(
                    core = self.core,
                    busy = figures.busy(),
                    "media core recovered"
                );
            }
            _ => {}
        }
        if dropped && due(self.reporting.drops_logged) {
            self.reporting.drops_logged = Some(now);
            // Drops are counted in metrics; this line makes them visible in the logs too (at
            // most one line per LOG_EVERY, so its allocation is off the packet path).
            let counts: Vec<String> = DropReason::ALL
                .iter()
                .zip(self.reporting.unlogged)
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| format!("{}={n}", r.as_str()))
                .collect();
            tracing::info!(
                core = self.core,
                drops = %counts.join(" "),
                "input dropped since the last such line"
            );
            self.reporting.unlogged = [0; DropReason::ALL.len()];
        }
    }

    fn on_readable(&mut self, token: Token, bufs: &mut RecvBufs) {
        let slot = token.0 >> 2;
        let leg = if token.0 & 2 == 0 { Leg::A } else { Leg::B };
        let channel = if token.0 & 1 == 0 {
            Channel::Rtp
        } else {
            Channel::Rtcp
        };
        loop {
            let Some(entry) = self.entries.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let io = &entry.legs[leg_index(leg)];
            let socket = match channel {
                Channel::Rtp => &io.rtp,
                Channel::Rtcp => &io.rtcp,
            };
            let mut metas = [RecvMeta::default(); BATCH];
            let n = {
                let mut iovs = bufs.each_mut().map(|b| IoSliceMut::new(&mut b[..]));
                match self
                    .udp
                    .recv(UdpSockRef::from(socket), &mut iovs, &mut metas)
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // ICMP port unreachable from a peer that went away, and the like.
                        tracing::debug!(error = %e, "recv error on a media socket");
                        break;
                    }
                }
            };
            let now = Instant::now();
            for (meta, buf) in metas.iter().zip(bufs.iter()).take(n) {
                let datagram = &buf[..meta.len.min(buf.len())];
                self.on_datagram(now, slot, leg, channel, meta.addr, datagram);
            }
            self.flush(slot);
            self.reschedule(slot);
            if n < BATCH {
                break;
            }
        }
    }

    fn on_datagram(
        &mut self,
        now: Instant,
        slot: usize,
        leg: Leg,
        channel: Channel,
        source: SocketAddr,
        datagram: &[u8],
    ) {
        let Some(entry) = self.entries.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let io = &mut entry.legs[leg_index(leg)];
        let is_rtcp = channel == Channel::Rtcp || bridgepool_codecs::rtp::is_rtcp(datagram);
        let latch = if is_rtcp && channel == Channel::Rtcp {
            &mut io.rtcp_latch
        } else {
            &mut io.rtp_latch
        };
        self.counters.packets_in[leg_index(leg)].fetch_add(1, Ordering::Relaxed);
        if !latch.accept(now, source) {
            entry.session.count_drop(leg, DropReason::ForeignSource);
            self.counters.dropped(DropReason::ForeignSource);
            return;
        }
        // After the latch: a foreign flood must not spend the real peer's budget.
        if !io.budget.spend(now) {
            entry.session.count_drop(leg, DropReason::OverBudget);
            self.counters.dropped(DropReason::OverBudget);
            return;
        }
        if is_rtcp && channel == Channel::Rtp {
            io.rtcp_mux = true;
        }
        if !is_rtcp {
            let talk = &mut entry.talk[leg_index(leg)];
            *talk = Some((talk.map_or(now, |(first, _)| first), now));
        }
        if cfg!(debug_assertions) && self.config.panic_hook {
            test_panic(datagram);
        }
        let before = entry.session.drops(leg);
        let started = Instant::now();
        entry.session.handle_datagram(now, leg, channel, datagram);
        self.counters.observe_processing(started.elapsed());
        let after = entry.session.drops(leg);
        if after != before {
            for (reason, count) in after.iter() {
                for _ in before.get(reason)..count {
                    self.counters.dropped(reason);
                }
            }
        }
    }

    /// Sends what the session queued, passes its events on, and removes it once it ended.
    fn flush(&mut self, slot: usize) {
        self.transmit(slot);
        let Some(entry) = self.entries.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        while let Some(event) = entry.session.poll_event() {
            let kind = match event {
                SessionEvent::Ended(_) => continue,
                SessionEvent::SsrcChanged { .. } => EngineEventKind::SsrcChanged,
                SessionEvent::RemoteBye { .. } => EngineEventKind::RemoteBye,
            };
            let _ = self.events.send(EngineEvent { id: entry.id, kind });
        }
        if entry.session.is_ended() {
            let snapshot = snapshot(&entry.session);
            let id = entry.id;
            self.remove(slot);
            let _ = self.events.send(EngineEvent {
                id,
                kind: EngineEventKind::Ended(Box::new(snapshot)),
            });
        }
    }

    /// Sends the session's queued datagrams to each leg's latched (or signalled) peer.
    fn transmit(&mut self, slot: usize) {
        let Some(entry) = self.entries.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        while let Some(t) = entry.session.poll_transmit(&mut self.send_buf[..]) {
            let io = &entry.legs[leg_index(t.leg)];
            let (socket, dest) = match t.channel {
                Channel::Rtp => (&io.rtp, io.rtp_latch.destination()),
                Channel::Rtcp if io.rtcp_mux => (&io.rtp, io.rtp_latch.destination()),
                Channel::Rtcp => (
                    &io.rtcp,
                    io.rtcp_latch.destination().or_else(|| {
                        io.rtp_latch
                            .destination()
                            .map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)))
                    }),
                ),
            };
            let Some(dest) = dest else {
                // No peer yet (not answered): nothing to send to.
                continue;
            };
            match socket.send_to(&self.send_buf[..t.len], dest) {
                Ok(_) => {
                    self.counters.packets_out[leg_index(t.leg)].fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, %dest, "send failed");
                }
            }
        }
    }

    fn reschedule(&mut self, slot: usize) {
        let Some(entry) = self.entries.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let next = entry.session.poll_timeout();
        if next != entry.timer {
            entry.timer = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, slot)));
            }
        }
    }

    /// Serves the due timers; returns whether any was due.
    fn run_timers(&mut self) -> bool {
        let now = Instant::now();
        let mut ran = false;
        while let Some(Reverse((deadline, key))) = self.timers.peek().copied() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let target = if key & JOB != 0 {
                Target::Job(key & !JOB)
            } else {
                Target::Session(key)
            };
            let timer = match target {
                Target::Job(slot) => self
                    .jobs
                    .get_mut(slot)
                    .and_then(Option::as_mut)
                    .map(|e| &mut e.timer),
                Target::Session(slot) => self
                    .entries
                    .get_mut(slot)
                    .and_then(Option::as_mut)
                    .map(|e| &mut e.timer),
            };
            // Gone, or a stale heap entry (the deadline moved since).
            let Some(timer) = timer.filter(|t| **t == Some(deadline)) else {
                continue;
            };
            *timer = None;
            ran = true;
            self.meter.timer();
            if now.saturating_duration_since(deadline) > MISS_TOLERANCE {
                self.meter.miss(&self.figures);
            }
            let result = guarded(|| match target {
                Target::Job(slot) => self.job_timer(slot, now),
                Target::Session(slot) => self.session_timer(slot, now),
            });
            if let Err(panic) = result {
                self.fail(target, "timer", &*panic);
            }
        }
        ran
    }

    fn session_timer(&mut self, slot: usize, now: Instant) {
        let Some(entry) = self.entries.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let started = Instant::now();
        entry.session.handle_timeout(now);
        self.counters.observe_processing(started.elapsed());
        self.flush(slot);
        self.reschedule(slot);
    }

    fn job_timer(&mut self, slot: usize, now: Instant) {
        let Some(entry) = self.jobs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let started = Instant::now();
        entry.job.handle_timeout(now);
        self.counters.observe_processing(started.elapsed());
        self.flush_job(slot);
    }

    /// Removes a session or job whose handling panicked (its ports freed), tells the control
    /// plane, counts and logs it. The shard's own tables are consistent: panics come from
    /// session and job code, which runs between, never inside, the shard's own updates.
    fn fail(&mut self, target: Target, what: &'static str, panic: &(dyn Any + Send)) {
        self.counters.session_panics.fetch_add(1, Ordering::Relaxed);
        match target {
            Target::Session(slot) => {
                let Some(id) = self
                    .entries
                    .get(slot)
                    .and_then(Option::as_ref)
                    .map(|e| e.id)
                else {
                    return self.log_panic("-", what, panic);
                };
                self.log_panic(&format!("{id:x}"), what, panic);
                // Dropping a broken session may panic too; its sockets and leases drop anyway.
                let _ = guarded(|| self.remove(slot));
                let _ = self.events.send(EngineEvent {
                    id,
                    kind: EngineEventKind::Failed,
                });
            }
            Target::Job(slot) => {
                let Some(name) = self
                    .jobs
                    .get(slot)
                    .and_then(Option::as_ref)
                    .map(|j| format!("job {} {}", j.name.0, j.name.1))
                else {
                    return self.log_panic("-", what, panic);
                };
                self.log_panic(&name, what, panic);
                let _ = guarded(|| self.remove_job(slot));
            }
        }
    }

    /// One ERROR line per panic, at most one per [`LOG_EVERY`] per core; the rest are counted
    /// into the next line.
    fn log_panic(&mut self, who: &str, what: &'static str, panic: &(dyn Any + Send)) {
        let now = Instant::now();
        let r = &mut self.reporting;
        if r.panic_logged
            .is_some_and(|t| now.duration_since(t) < LOG_EVERY)
        {
            r.unlogged_panics += 1;
            return;
        }
        r.panic_logged = Some(now);
        let suppressed = std::mem::take(&mut r.unlogged_panics);
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = LAST_PANIC
            .with(|l| l.borrow_mut().take())
            .unwrap_or_default();
        tracing::error!(
            core = self.core,
            session = who,
            during = what,
            panic = message,
            %location,
            suppressed_since_last = suppressed,
            "panic handling a session: it was removed, the core's other sessions carry on"
        );
    }

    /// Handles the queued commands: whether there were any, or `None` on Shutdown.
    fn drain_commands(&mut self) -> Option<bool> {
        let mut handled = false;
        loop {
            match self.commands.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return None,
                Ok(cmd) => {
                    let subject = cmd.subject();
                    if let Err(panic) = guarded(|| self.on_command(cmd)) {
                        // The reply sender went with the unwind: the control plane sees the
                        // request fail, and the session (or job) is removed.
                        let target = match subject {
                            Subject::Session(id) => {
                                self.by_id.get(&id).map(|s| Target::Session(*s))
                            }
                            Subject::Job(name) => self
                                .jobs
                                .iter()
                                .position(|j| j.as_ref().is_some_and(|j| j.name == name))
                                .map(Target::Job),
                            Subject::None => None,
                        };
                        match target {
                            Some(target) => self.fail(target, "command", &*panic),
                            None => {
                                self.counters.session_panics.fetch_add(1, Ordering::Relaxed);
                                self.log_panic("-", "command", &*panic);
                            }
                        }
                    }
                    handled = true;
                }
                Err(TryRecvError::Empty) => return Some(handled),
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Create {
                id,
                config,
                ports_a,
                ports_b,
                remote_a,
                remote_b,
                ntp_now,
                cost,
                reply,
            } => {
                // The admitted cost is ours now: kept by the session, given back if it is not
                // created (an error, or a panic unwinding through here).
                let held = Held::new(&self.figures, cost);
                let result = self.create(
                    id,
                    *config,
                    [ports_a, ports_b],
                    [remote_a, remote_b],
                    ntp_now,
                    cost,
                );
                if result.is_ok() {
                    held.keep();
                }
                let _ = reply.send(result);
            }
            Command::Update {
                id,
                change,
                cost_delta,
                reply,
            } => {
                let raised = u64::try_from(cost_delta).unwrap_or(0);
                let held = Held::new(&self.figures, raised);
                let result = self.update(id, *change, cost_delta);
                if matches!(result, Some(Ok(()))) {
                    held.keep();
                }
                let _ = reply.send(result);
            }
            Command::Delete { id, reply } => {
                let result = self.by_id.get(&id).copied().map(|slot| {
                    let now = Instant::now();
                    if let Some(entry) = self.entries[slot].as_mut() {
                        entry.session.close(now);
                    }
                    // Send the final reports, then take the figures and free the ports.
                    self.transmit(slot);
                    let snap = self.entries[slot].as_ref().map(|e| snapshot(&e.session));
                    self.remove(slot);
                    snap
                });
                let _ = reply.send(result.flatten());
            }
            Command::Query { id, reply } => {
                let snap = self
                    .by_id
                    .get(&id)
                    .and_then(|slot| self.entries[*slot].as_ref())
                    .map(|e| snapshot(&e.session));
                let _ = reply.send(snap);
            }
            Command::Config { id, reply } => {
                let config = self
                    .by_id
                    .get(&id)
                    .and_then(|slot| self.entries[*slot].as_ref())
                    .map(|e| Box::new(e.session.config().clone()));
                let _ = reply.send(config);
            }
            Command::CreateJob {
                name,
                job,
                ports,
                local,
                destination,
                kind,
                cost,
                reply,
            } => {
                let held = Held::new(&self.figures, cost);
                let result = self.create_job(name, job, ports, local, destination, kind, cost);
                if result.is_ok() {
                    held.keep();
                }
                let _ = reply.send(result);
            }
            Command::DeleteJobs { which, reply } => {
                let mut deleted = Vec::new();
                for slot in 0..self.jobs.len() {
                    if let Some(entry) = self.jobs[slot].as_ref()
                        && which.matches(&entry.name)
                    {
                        deleted.push(entry.info());
                        self.remove_job(slot);
                    }
                }
                let _ = reply.send(deleted);
            }
            Command::QueryJobs { which, reply } => {
                let found = self
                    .jobs
                    .iter()
                    .flatten()
                    .filter(|e| which.matches(&e.name))
                    .map(JobEntry::info)
                    .collect();
                let _ = reply.send(found);
            }
            Command::Shutdown => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_job(
        &mut self,
        name: JobName,
        mut job: Box<OneWay>,
        ports: PortPair,
        local: SocketAddr,
        destination: SocketAddr,
        kind: JobKind,
        cost: u64,
    ) -> Result<(), String> {
        let PortPair { rtp, rtcp, lease } = ports;
        rtp.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut socket = UdpSocket::from_std(rtp);
        let slot = self.free_jobs.pop().unwrap_or_else(|| {
            self.jobs.push(None);
            self.jobs.len() - 1
        });
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut socket, Token(JOB | slot), Interest::READABLE)
        {
            self.free_jobs.push(slot);
            return Err(e.to_string());
        }
        job.arm(Instant::now());
        self.jobs[slot] = Some(JobEntry {
            name,
            socket,
            _rtcp: rtcp,
            _lease: lease,
            local,
            destination,
            latched: None,
            foreign: 0,
            budget: Budget::new(Instant::now(), JOB_PTIME),
            over_budget: 0,
            job,
            kind,
            cost,
            timer: None,
            talk: None,
        });
        self.live_jobs += 1;
        self.figures
            .jobs
            .store(self.live_jobs as u64, Ordering::Relaxed);
        self.reschedule_job(slot);
        Ok(())
    }

    fn remove_job(&mut self, slot: usize) {
        if let Some(mut entry) = self.jobs[slot].take() {
            let _ = self.poll.registry().deregister(&mut entry.socket);
            self.free_jobs.push(slot);
            self.live_jobs -= 1;
            release(&self.figures, entry.cost);
            self.figures
                .jobs
                .store(self.live_jobs as u64, Ordering::Relaxed);
        }
    }

    fn on_job_readable(&mut self, slot: usize, bufs: &mut RecvBufs) {
        loop {
            let Some(entry) = self.jobs.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let mut metas = [RecvMeta::default(); BATCH];
            let n = {
                let mut iovs = bufs.each_mut().map(|b| IoSliceMut::new(&mut b[..]));
                match self
                    .udp
                    .recv(UdpSockRef::from(&entry.socket), &mut iovs, &mut metas)
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "recv error on a job socket");
                        break;
                    }
                }
            };
            let now = Instant::now();
            let leg = entry.input_leg();
            for (meta, buf) in metas.iter().zip(bufs.iter()).take(n) {
                let datagram = &buf[..meta.len.min(buf.len())];
                self.counters.packets_in[leg].fetch_add(1, Ordering::Relaxed);
                if !entry.accept(meta.addr) {
                    self.counters.dropped(DropReason::ForeignSource);
                    continue;
                }
                if !entry.budget.spend(now) {
                    entry.over_budget += 1;
                    self.counters.dropped(DropReason::OverBudget);
                    continue;
                }
                if !bridgepool_codecs::rtp::is_rtcp(datagram) {
                    entry.talk = Some((entry.talk.map_or(now, |(first, _)| first), now));
                }
                if cfg!(debug_assertions) && self.config.panic_hook {
                    test_panic(datagram);
                }
                let started = Instant::now();
                entry.job.handle_datagram(now, datagram);
                self.counters.observe_processing(started.elapsed());
            }
            self.flush_job(slot);
            if n < BATCH {
                break;
            }
        }
    }

    /// Sends what the job queued to the relay, removes it once it ended, else re-arms its timer.
    fn flush_job(&mut self, slot: usize) {
        let Some(entry) = self.jobs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let leg = entry.input_leg() ^ 1;
        while let Some(n) = entry.job.poll_transmit(&mut self.send_buf[..]) {
            match entry.socket.send_to(&self.send_buf[..n], entry.destination) {
                Ok(_) => {
                    self.counters.packets_out[leg].fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, dest = %entry.destination, "job send failed");
                }
            }
        }
        if entry.job.ended() {
            tracing::info!(call_id = %entry.name.0, from_tag = %entry.name.1, "one-way job ended: no input");
            self.remove_job(slot);
            return;
        }
        self.reschedule_job(slot);
    }

    fn reschedule_job(&mut self, slot: usize) {
        let Some(entry) = self.jobs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let next = entry.job.poll_timeout();
        if next != entry.timer {
            entry.timer = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, JOB | slot)));
            }
        }
    }

    fn create(
        &mut self,
        id: SessionId,
        config: crate::session::SessionConfig,
        ports: [PortPair; 2],
        remotes: [Option<SocketAddr>; 2],
        ntp_now: u64,
        cost: u64,
    ) -> Result<(), String> {
        let now = Instant::now();
        let mut config = config;
        config.ntp_at_creation = ntp_now;
        let mut session = Session::new(config, now).map_err(|e| e.to_string())?;
        if remotes.iter().all(Option::is_some) {
            session.answer(now);
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        });
        let window = self.config.latch_window;
        let ptimes = [session.config().leg_a.ptime, session.config().leg_b.ptime];
        let [pa, pb] = ports;
        let mut legs = Vec::with_capacity(2);
        for (i, (pair, remote)) in [(pa, remotes[0]), (pb, remotes[1])].into_iter().enumerate() {
            let PortPair { rtp, rtcp, lease } = pair;
            rtp.set_nonblocking(true).map_err(|e| e.to_string())?;
            rtcp.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut rtp = UdpSocket::from_std(rtp);
            let mut rtcp = UdpSocket::from_std(rtcp);
            let base = (slot << 2) | (i << 1);
            let registry = self.poll.registry();
            registry
                .register(&mut rtp, Token(base), Interest::READABLE)
                .map_err(|e| e.to_string())?;
            registry
                .register(&mut rtcp, Token(base | 1), Interest::READABLE)
                .map_err(|e| e.to_string())?;
            let rtcp_remote = remote.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)));
            legs.push(LegIo {
                rtp,
                rtcp,
                rtp_latch: Latch::new(now, window, remote),
                rtcp_latch: Latch::new(now, window, rtcp_remote),
                rtcp_mux: false,
                budget: Budget::new(now, ptimes[i]),
                _lease: lease,
            });
        }
        let Ok(legs) = <[LegIo; 2]>::try_from(legs) else {
            return Err("internal: two legs expected".to_owned());
        };
        self.entries[slot] = Some(Entry {
            id,
            session,
            legs,
            timer: None,
            talk: [None; 2],
            cost,
        });
        self.by_id.insert(id, slot);
        self.live += 1;
        self.figures
            .sessions
            .store(self.live as u64, Ordering::Relaxed);
        self.count_relaying();
        self.reschedule(slot);
        Ok(())
    }

    /// Publishes how many sessions relay (after a create, a mode switch or a removal: control
    /// work, never per packet).
    fn count_relaying(&self) {
        let n = self
            .entries
            .iter()
            .flatten()
            .filter(|e| e.session.mode() == Mode::Passthrough)
            .count();
        self.figures.relaying.store(n as u64, Ordering::Relaxed);
    }

    fn update(
        &mut self,
        id: SessionId,
        change: SessionChange,
        cost_delta: i64,
    ) -> Option<Result<(), String>> {
        let slot = *self.by_id.get(&id)?;
        let entry = self.entries[slot].as_mut()?;
        let now = Instant::now();
        let window = self.config.latch_window;
        if let Some(config) = change.config
            && let Err(e) = entry.session.update(now, config)
        {
            return Some(Err(e.to_string()));
        }
        let config = entry.session.config();
        let ptimes = [config.leg_a.ptime, config.leg_b.ptime];
        for (io, ptime) in entry.legs.iter_mut().zip(ptimes) {
            io.budget.set_ptime(ptime);
        }
        entry.cost = entry.cost.saturating_add_signed(cost_delta);
        if cost_delta < 0 {
            release(&self.figures, cost_delta.unsigned_abs());
        }

        for (leg, remote) in [(Leg::A, change.remote_a), (Leg::B, change.remote_b)] {
            if let Some(remote) = remote {
                let io = &mut entry.legs[leg_index(leg)];
                io.rtp_latch.resignal(now, window, remote);
                let rtcp = remote.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)));
                io.rtcp_latch.resignal(now, window, rtcp);
            }
        }
        if let Some(mode) = change.mode_a {
            entry.session.set_mode(Leg::A, mode);
        }
        if let Some(mode) = change.mode_b {
            entry.session.set_mode(Leg::B, mode);
        }
        if entry
            .legs
            .iter()
            .all(|l| l.rtp_latch.destination().is_some())
        {
            entry.session.answer(now);
        }
        self.count_relaying();
        self.reschedule(slot);
        Some(Ok(()))
    }

    fn remove(&mut self, slot: usize) {
        if let Some(mut entry) = self.entries[slot].take() {
            let registry = self.poll.registry();
            for io in &mut entry.legs {
                let _ = registry.deregister(&mut io.rtp);
                let _ = registry.deregister(&mut io.rtcp);
            }
            self.by_id.remove(&entry.id);
            self.free.push(slot);
            self.live -= 1;
            release(&self.figures, entry.cost);
            self.figures
                .sessions
                .store(self.live as u64, Ordering::Relaxed);
            self.count_relaying();
        }
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        for slot in 0..self.entries.len() {
            if let Some(entry) = self.entries[slot].as_mut() {
                entry.session.close(now);
                self.transmit(slot);
                self.remove(slot);
            }
        }
        for slot in 0..self.jobs.len() {
            self.remove_job(slot);
        }
    }
}

/// The test hook: panics on an RTP datagram whose payload starts with [`TEST_PANIC_PAYLOAD`].
fn test_panic(datagram: &[u8]) {
    if datagram
        .get(12..)
        .is_some_and(|p| p.starts_with(TEST_PANIC_PAYLOAD))
    {
        panic!("test panic injected through BRIDGEPOOL_TEST_PANIC_HOOK");
    }
}

fn leg_index(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

fn snapshot(session: &Session) -> SessionSnapshot {
    SessionSnapshot {
        leg_a: session.stats(Leg::A),
        leg_b: session.stats(Leg::B),
        mos_a: session.mos(Leg::A),
        mos_b: session.mos(Leg::B),
        ended: session.end_reason(),
        jitter: session.jitter_buffer(),
    }
}

/// A cost reserved in `CoreFigures::reserved_ppm`, given back on drop unless kept.
struct Held {
    figures: Arc<CoreFigures>,
    cost: u64,
}

impl Held {
    fn new(figures: &Arc<CoreFigures>, cost: u64) -> Self {
        Self {
            figures: Arc::clone(figures),
            cost,
        }
    }

    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        release(&self.figures, self.cost);
    }
}

/// Gives back a reservation (saturating: a mistake here must not wrap to a full core).
fn release(figures: &CoreFigures, cost: u64) {
    let _ = figures
        .reserved_ppm
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
            Some(r.saturating_sub(cost))
        });
}
