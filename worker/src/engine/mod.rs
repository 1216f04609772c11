//! The media engine: one pinned thread per media core, each an epoll loop owning its sessions
//! and their sockets. The control plane talks to a thread through a command queue and a waker;
//! nothing on the packet path is shared between threads.

mod budget;
mod calibrate;
mod command;
mod latch;
mod load;
mod metrics;
mod ports;
mod shard;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::{Poll, Waker};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::oneshot;

pub use command::{
    EngineEvent, EngineEventKind, JobInfo, JobName, JobSelector, SessionChange, SessionId,
    SessionSnapshot,
};
pub use latch::Latch;
pub use load::{
    CoreFigures, DirectionCosts, JobKind, MISS_TOLERANCE, RECODE_SHARE, RELAY_SHARE, Reserve,
    TARGET_BUSY,
};
pub use metrics::{CoreCounters, PROCESSING_BUCKETS};
pub use ports::{PortError, PortPool};

use crate::session::oneway::OneWay;
use crate::session::{NTP_UNIX_OFFSET, SessionConfig};
use command::Command;
use shard::{Shard, ShardConfig, WAKER};

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Cores to pin media threads to; empty: every core.
    pub cores: Vec<usize>,
    /// Address RTP sockets bind to.
    pub media_ip: IpAddr,
    /// Address advertised to peers (NAT); defaults to `media_ip`.
    pub advertise_ip: Option<IpAddr>,
    /// Lowest RTP port.
    pub port_min: u16,
    /// Highest port (RTCP of the last pair).
    pub port_max: u16,
    /// How long a leg may latch onto a new source.
    pub latch_window: Duration,
    /// Pin threads (off in tests that start several engines on a small machine).
    pub pin: bool,
    /// Busy share of a core up to which sessions are admitted (default [`TARGET_BUSY`]).
    pub target_busy: f64,
    /// Media threads poll their sockets without ever sleeping: a packet is picked up at once
    /// instead of after the core wakes (an IPI, and a VM exit on a virtual machine), at the price
    /// of the whole core at 100 % CPU whatever the load. Busy time and capacity still count work
    /// only. For cores dedicated to media.
    pub busy_poll: bool,
    /// Core share of one talking two-way session to use instead of the start-up calibration
    /// (a fixed, known capacity: tests, or an operator who measured the host).
    pub session_cost: Option<f64>,
    /// Learn the cost of talking sessions live and correct the calibration with it. Off, the
    /// calibrated (or given) cost is the cost for the process's life.
    pub live_cost: bool,
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Every media core is at its measured capacity.
    #[error(
        "no media core has headroom: {sessions} sessions and {jobs} one-way jobs on {cores} cores at measured capacity {capacity}"
    )]
    NoHeadroom {
        /// Live sessions.
        sessions: u64,
        /// Live one-way jobs.
        jobs: u64,
        /// Media cores.
        cores: usize,
        /// Measured capacity of the worker.
        capacity: u64,
    },
    /// No ports left.
    #[error(transparent)]
    Ports(#[from] PortError),
    /// The session configuration was rejected.
    #[error("invalid session: {0}")]
    Invalid(String),
    /// The media thread is gone (shutting down).
    #[error("media engine is shutting down")]
    Stopped,
}

/// Why an update was refused; the session is as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The switch to transcoding needs more than the session reserved, and its core has not
    /// got it.
    #[error(
        "media core {core} has no headroom to start transcoding this session: it needs {needed:.4} of the core more, {free:.4} is free"
    )]
    NoHeadroom {
        /// The session's core.
        core: usize,
        /// Core share the switch needs beyond the session's reservation.
        needed: f64,
        /// Core share still free there.
        free: f64,
    },
    /// The change was rejected.
    #[error("invalid update: {0}")]
    Invalid(String),
}

/// Where a live session runs and what it holds there (control plane only).
#[derive(Clone, Copy, Debug)]
struct Placed {
    shard: usize,
    /// Calibrated cost it reserved, ppm.
    cost: u64,
}

struct ShardHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    figures: Arc<CoreFigures>,
    counters: Arc<CoreCounters>,
    core: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Where a created session listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    /// Its id.
    pub id: SessionId,
    /// Which media core holds it.
    pub core: usize,
    /// Leg A's RTP address (RTCP on the next port).
    pub local_a: SocketAddr,
    /// Leg B's RTP address.
    pub local_b: SocketAddr,
}

/// Figures of one media core.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoreReport {
    /// CPU core id it is pinned to.
    pub core: usize,
    /// Live sessions.
    pub sessions: u64,
    /// Live one-way jobs.
    pub jobs: u64,
    /// Live sessions relaying (passthrough), among `sessions`.
    pub relaying: u64,
    /// Busy share over the last second.
    pub busy: f64,
    /// Measured capacity.
    pub capacity: u64,
    /// Sessions it can still admit.
    pub headroom: u64,
    /// Missed frame deadlines since start.
    pub deadline_misses: u64,
    /// Overloaded: sustained deadline misses or late drops; admission is closed on it.
    pub overloaded: bool,
    /// Sessions that carried media in the last window.
    pub talking: u64,
    /// Media busy share the cost model predicted for the last window.
    pub predicted_busy: f64,
    /// Media busy share measured over the last window (set-up work excluded).
    pub media_busy: f64,
    /// Core share of one talking session the model uses now.
    pub session_cost: f64,
}

/// The running engine.
pub struct Engine {
    shards: Vec<ShardHandle>,
    ports: PortPool,
    advertise_ip: IpAddr,
    next_id: AtomicU64,
    /// Where each live session is and what it reserved (control plane only, never on the
    /// packet path).
    placement: Mutex<std::collections::HashMap<SessionId, Placed>>,
    /// Held while a create picks its core and reserves headroom there, so concurrent creates
    /// cannot both take the last slot.
    admission: Mutex<()>,
    calibrated: DirectionCosts,
}

impl Engine {
    /// Starts one media thread per configured core. Returns the engine and the stream of
    /// events its threads report (sessions that ended by themselves, SSRC changes, BYEs).
    pub fn start(config: &EngineConfig) -> std::io::Result<(Self, UnboundedReceiver<EngineEvent>)> {
        let ports = PortPool::new(config.media_ip, config.port_min, config.port_max)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let cores = media_cores(&config.cores);
        let calibrated = match config.session_cost {
            Some(cost) => DirectionCosts::even(cost),
            None => calibrate::direction_costs(),
        };
        let (events_tx, events_rx) = unbounded_channel();
        shard::install_panic_hook();
        // Test-only: never in release builds, and only when set at start (see ShardConfig).
        let panic_hook =
            cfg!(debug_assertions) && std::env::var_os("BRIDGEPOOL_TEST_PANIC_HOOK").is_some();
        if panic_hook {
            tracing::warn!("BRIDGEPOOL_TEST_PANIC_HOOK is set: datagrams can panic sessions");
        }
        let mut shards = Vec::with_capacity(cores.len());
        for &core in &cores {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = channel();
            let figures = Arc::new(CoreFigures::default());
            figures.capacity.store(
                load::LoadMeter::initial_capacity(calibrated, config.target_busy),
                Ordering::Relaxed,
            );
            figures
                .session_cost_ppm
                .store((calibrated.session() * 1e6) as u64, Ordering::Relaxed);
            figures
                .session_base_ppm
                .store(load::ppm(calibrated.session().max(2e-5)), Ordering::Relaxed);
            figures
                .budget_ppm
                .store(load::ppm(config.target_busy), Ordering::Relaxed);
            let counters = Arc::new(CoreCounters::default());
            let shard = Shard::new(
                poll,
                rx,
                events_tx.clone(),
                figures.clone(),
                counters.clone(),
                calibrated,
                core,
                ShardConfig {
                    latch_window: config.latch_window,
                    target_busy: config.target_busy,
                    busy_poll: config.busy_poll,
                    live_cost: config.live_cost,
                    panic_hook,
                },
            )?;
            let pin = config.pin;
            let thread = std::thread::Builder::new()
                .name(format!("media-{core}"))
                .spawn(move || {
                    if pin && !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        tracing::warn!(core, "could not pin media thread");
                    }
                    shard.run();
                })?;
            shards.push(ShardHandle {
                commands: tx,
                waker,
                figures,
                counters,
                core,
                thread: Mutex::new(Some(thread)),
            });
        }
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Ok((
            Self {
                shards,
                ports,
                advertise_ip: config.advertise_ip.unwrap_or(config.media_ip),
                next_id: AtomicU64::new(seed << 20),
                placement: Mutex::new(std::collections::HashMap::new()),
                admission: Mutex::new(()),
                calibrated,
            },
            events_rx,
        ))
    }

    /// Per-core figures.
    pub fn cores(&self) -> Vec<CoreReport> {
        self.shards
            .iter()
            .map(|s| CoreReport {
                core: s.core,
                sessions: s.figures.sessions.load(Ordering::Relaxed),
                jobs: s.figures.jobs.load(Ordering::Relaxed),
                relaying: s.figures.relaying.load(Ordering::Relaxed),
                busy: s.figures.busy(),
                capacity: s.figures.capacity.load(Ordering::Relaxed),
                headroom: s.figures.headroom(),
                deadline_misses: s.figures.deadline_misses.load(Ordering::Relaxed),
                overloaded: s.figures.is_overloaded(),
                talking: s.figures.talking.load(Ordering::Relaxed),
                predicted_busy: s.figures.predicted_busy_ppm.load(Ordering::Relaxed) as f64 / 1e6,
                media_busy: s.figures.media_busy_ppm.load(Ordering::Relaxed) as f64 / 1e6,
                session_cost: s.figures.session_cost_ppm.load(Ordering::Relaxed) as f64 / 1e6,
            })
            .collect()
    }

    /// Per-core counters, for the metrics exporter.
    pub fn counters(&self) -> Vec<Arc<CoreCounters>> {
        self.shards.iter().map(|s| s.counters.clone()).collect()
    }

    /// Core share one talking session cost in the start-up calibration (or as configured).
    pub fn calibrated_cost(&self) -> f64 {
        self.calibrated.session()
    }

    /// The calibrated cost per direction.
    pub fn calibrated_directions(&self) -> DirectionCosts {
        self.calibrated
    }

    /// The port pool (for leak checks and metrics).
    pub fn ports(&self) -> &PortPool {
        &self.ports
    }

    /// Admits a session on the media core with the most headroom for what it is to reserve,
    /// or refuses.
    pub async fn create(
        &self,
        config: SessionConfig,
        remote_a: Option<SocketAddr>,
        remote_b: Option<SocketAddr>,
        reserve: Reserve,
    ) -> Result<Created, CreateError> {
        config
            .validate()
            .map_err(|e| CreateError::Invalid(e.to_string()))?;
        let cost = load::ppm(self.calibrated.reserve(reserve)).max(1);
        let index = self.admit(cost)?;
        let shard = &self.shards[index];
        // Given back on every way out until the command is queued; the media thread owns it then.
        let reservation = Reservation(&shard.figures.reserved_ppm, cost);
        let (ports_a, ports_b) = match (self.ports.allocate(), self.ports.allocate()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        let local_a = SocketAddr::new(self.advertise_ip, ports_a.lease.port);
        let local_b = SocketAddr::new(self.advertise_ip, ports_b.lease.port);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, wait) = oneshot::channel();
        let sent = shard.commands.send(Command::Create {
            id,
            config: Box::new(config),
            ports_a,
            ports_b,
            remote_a,
            remote_b,
            ntp_now: ntp_now(),
            cost,
            reply,
        });
        if sent.is_err() {
            return Err(CreateError::Stopped);
        }
        reservation.hand_over();
        let _ = shard.waker.wake();
        let answer = wait.await;
        match answer {
            Ok(Ok(())) => {
                self.placement_lock()
                    .insert(id, Placed { shard: index, cost });
                Ok(Created {
                    id,
                    core: shard.core,
                    local_a,
                    local_b,
                })
            }
            Ok(Err(e)) => Err(CreateError::Invalid(e)),
            Err(_) => Err(CreateError::Stopped),
        }
    }

    /// Picks the media core with the most free budget that fits `cost` (calibrated ppm) and
    /// reserves it there (the caller hands the reservation to the media thread with its command).
    fn admit(&self, cost: u64) -> Result<usize, CreateError> {
        let _admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        let best = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.figures.free_ppm()))
            .max_by_key(|(_, free)| *free);
        let Some((index, _)) = best.filter(|(_, free)| *free >= cost) else {
            let cores = self.cores();
            return Err(CreateError::NoHeadroom {
                sessions: cores.iter().map(|c| c.sessions).sum(),
                jobs: cores.iter().map(|c| c.jobs).sum(),
                cores: cores.len(),
                capacity: cores.iter().map(|c| c.capacity).sum(),
            });
        };
        self.shards[index]
            .figures
            .reserved_ppm
            .fetch_add(cost, Ordering::Relaxed);
        Ok(index)
    }

    /// Admits a one-way job on the media core with the most headroom, reserving the calibrated
    /// cost of the direction it runs, or refuses. Returns its advertised address and its core.
    pub async fn create_job(
        &self,
        name: JobName,
        job: Box<OneWay>,
        destination: SocketAddr,
        kind: JobKind,
    ) -> Result<(SocketAddr, usize), CreateError> {
        let cost = load::ppm(self.calibrated.job(kind)).max(1);
        let index = self.admit(cost)?;
        let shard = &self.shards[index];
        let reservation = Reservation(&shard.figures.reserved_ppm, cost);
        let ports = self.ports.allocate()?;
        let local = SocketAddr::new(self.advertise_ip, ports.lease.port);
        let (reply, wait) = oneshot::channel();
        let sent = shard.commands.send(Command::CreateJob {
            name,
            job,
            ports,
            local,
            destination,
            kind,
            cost,
            reply,
        });
        if sent.is_err() {
            return Err(CreateError::Stopped);
        }
        reservation.hand_over();
        let _ = shard.waker.wake();
        let answer = wait.await;
        match answer {
            Ok(Ok(())) => Ok((local, shard.core)),
            Ok(Err(e)) => Err(CreateError::Invalid(e)),
            Err(_) => Err(CreateError::Stopped),
        }
    }

    /// Ends the named jobs on every core; their final figures.
    pub async fn delete_jobs(&self, which: JobSelector) -> Vec<JobInfo> {
        self.ask_jobs(|which, reply| Command::DeleteJobs { which, reply }, which)
            .await
    }

    /// The named jobs' figures, on every core.
    pub async fn query_jobs(&self, which: JobSelector) -> Vec<JobInfo> {
        self.ask_jobs(|which, reply| Command::QueryJobs { which, reply }, which)
            .await
    }

    /// Live one-way jobs.
    pub fn job_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.figures.jobs.load(Ordering::Relaxed))
            .sum()
    }

    async fn ask_jobs(
        &self,
        command: impl Fn(JobSelector, oneshot::Sender<Vec<JobInfo>>) -> Command,
        which: JobSelector,
    ) -> Vec<JobInfo> {
        // A job's name is the relay's, and `Call` names several: every core is asked (control
        // plane only, a few cores).
        let mut waits = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            let (reply, wait) = oneshot::channel();
            if shard.commands.send(command(which.clone(), reply)).is_ok() {
                let _ = shard.waker.wake();
                waits.push(wait);
            }
        }
        let mut found = Vec::new();
        for wait in waits {
            found.extend(wait.await.unwrap_or_default());
        }
        found
    }

    /// Applies a change; `None` if the session is unknown. A change of reservation
    /// ([`SessionChange::reserve`]) that needs more than the session holds is admitted on its
    /// core first, or the whole change is refused; one that needs less gives the rest back.
    pub async fn update(
        &self,
        id: SessionId,
        change: SessionChange,
    ) -> Option<Result<(), UpdateError>> {
        let (shard, delta) = match change.reserve {
            Some(reserve) => match self.rereserve(id, reserve)? {
                Ok(found) => found,
                Err(e) => return Some(Err(e)),
            },
            None => (self.shard_of(id)?, 0),
        };
        let (reply, wait) = oneshot::channel();
        let sent = shard.commands.send(Command::Update {
            id,
            change: Box::new(change),
            cost_delta: delta,
            reply,
        });
        if sent.is_err() {
            self.unreserve(id, shard, delta);
            return None;
        }
        let _ = shard.waker.wake();
        let answer = wait.await.ok().flatten();
        if !matches!(answer, Some(Ok(()))) {
            // The media thread gave back what it was handed; the table follows.
            self.adjust(id, -delta);
        }
        answer.map(|r| r.map_err(UpdateError::Invalid))
    }

    /// Sets what a session reserves to `reserve`'s cost: more is taken from its core's free
    /// budget under the admission lock (refused without it), less is given back by the media
    /// thread when the update is applied. Returns its shard and the change in ppm.
    fn rereserve(
        &self,
        id: SessionId,
        reserve: Reserve,
    ) -> Option<Result<(&ShardHandle, i64), UpdateError>> {
        let target = load::ppm(self.calibrated.reserve(reserve)).max(1);
        let _admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        let mut placement = self.placement_lock();
        let placed = placement.get_mut(&id)?;
        let shard = self.shards.get(placed.shard)?;
        let delta = target as i64 - placed.cost as i64;
        if delta > 0 {
            let free = shard.figures.free_ppm();
            if free < delta as u64 {
                return Some(Err(UpdateError::NoHeadroom {
                    core: shard.core,
                    needed: delta as f64 / 1e6,
                    free: free as f64 / 1e6,
                }));
            }
            // Handed to the media thread with the command, as a create's reservation is.
            shard
                .figures
                .reserved_ppm
                .fetch_add(delta as u64, Ordering::Relaxed);
        }
        placed.cost = target;
        Some(Ok((shard, delta)))
    }

    /// Undoes [`Self::rereserve`] for a command that could not be queued.
    fn unreserve(&self, id: SessionId, shard: &ShardHandle, delta: i64) {
        if delta > 0 {
            drop(Reservation(&shard.figures.reserved_ppm, delta as u64));
        }
        self.adjust(id, -delta);
    }

    fn adjust(&self, id: SessionId, delta: i64) {
        if let Some(placed) = self.placement_lock().get_mut(&id) {
            placed.cost = (placed.cost as i64 + delta).max(0) as u64;
        }
    }

    /// Calibrated cost a live session reserves now, in core share (for tests and figures).
    pub fn reserved(&self, id: SessionId) -> Option<f64> {
        self.placement_lock().get(&id).map(|p| p.cost as f64 / 1e6)
    }

    /// Ends a session; its final figures, or `None` if it is unknown (already gone).
    pub async fn delete(&self, id: SessionId) -> Option<SessionSnapshot> {
        let shard = self.shard_of(id)?;
        let (reply, wait) = oneshot::channel();
        shard.commands.send(Command::Delete { id, reply }).ok()?;
        let _ = shard.waker.wake();
        let result = wait.await.ok().flatten();
        self.forget(id);
        result
    }

    /// A live session's figures.
    pub async fn query(&self, id: SessionId) -> Option<SessionSnapshot> {
        let shard = self.shard_of(id)?;
        let (reply, wait) = oneshot::channel();
        shard.commands.send(Command::Query { id, reply }).ok()?;
        let _ = shard.waker.wake();
        wait.await.ok().flatten()
    }

    /// A live session's configuration.
    pub async fn config_of(&self, id: SessionId) -> Option<SessionConfig> {
        let shard = self.shard_of(id)?;
        let (reply, wait) = oneshot::channel();
        shard.commands.send(Command::Config { id, reply }).ok()?;
        let _ = shard.waker.wake();
        wait.await.ok().flatten().map(|c| *c)
    }

    /// Live session ids.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.placement_lock().keys().copied().collect()
    }

    /// Forgets a session that ended by itself (from its Ended event).
    pub fn forget(&self, id: SessionId) {
        self.placement_lock().remove(&id);
    }

    /// Ends every session (sending BYE) and stops the media threads.
    pub fn shutdown(&self) {
        for s in &self.shards {
            let _ = s.commands.send(Command::Shutdown);
            let _ = s.waker.wake();
        }
        for s in &self.shards {
            let handle = s.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
        self.placement_lock().clear();
    }

    fn shard_of(&self, id: SessionId) -> Option<&ShardHandle> {
        let index = self.placement_lock().get(&id)?.shard;
        self.shards.get(index)
    }

    fn placement_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<SessionId, Placed>> {
        self.placement.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The media cores to run: the configured ones this process may run on, or all it may run on.
/// A process confined (taskset, a cgroup cpuset) to fewer cores than asked says so and uses what
/// it has, rather than pinning threads where the kernel will not let them run.
fn media_cores(asked: &[usize]) -> Vec<usize> {
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| count_cpu_list(s.trim()));
    if let Some(online) = online
        && !allowed.is_empty()
        && allowed.len() < online
    {
        // INFO: a pod given a few cores by the CPU manager is the normal case; asked cores this
        // process may not use are the surprise, and WARN below.
        tracing::info!(
            allowed = ?allowed,
            online,
            "this process is confined to {} of the host's {online} cores (taskset or cgroup \
             cpuset): media threads run on those only",
            allowed.len()
        );
    }
    if let Some(quota) = cgroup_cpu_quota()
        && quota < allowed.len().max(1) as f64
    {
        tracing::warn!(
            quota,
            cores = allowed.len(),
            "the cgroup CPU quota is {quota:.2} cores, less than the cores this process may run \
             on: media threads will be throttled; give the pod whole cores (requests = limits)"
        );
    }
    if asked.is_empty() {
        return if allowed.is_empty() { vec![0] } else { allowed };
    }
    if allowed.is_empty() {
        return asked.to_vec();
    }
    let kept: Vec<usize> = asked
        .iter()
        .copied()
        .filter(|c| allowed.contains(c))
        .collect();
    if kept.len() < asked.len() {
        tracing::warn!(
            asked = ?asked,
            allowed = ?allowed,
            using = ?kept,
            "fewer media cores than asked: this process may not run on some of them"
        );
    }
    if kept.is_empty() {
        // Validation refuses this case; keep one thread on what we have rather than none.
        return vec![allowed[0]];
    }
    kept
}

/// Counts the CPUs in a kernel CPU list such as `0-3,6,8-9`.
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?,
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// The cgroup v2 CPU quota of this process in cores (`cpu.max`), when one is set.
fn cgroup_cpu_quota() -> Option<f64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/cpu.max").ok()?;
    let mut fields = text.split_whitespace();
    let quota = fields.next()?.parse::<f64>().ok()?;
    let period = fields.next()?.parse::<f64>().ok()?;
    (period > 0.0).then_some(quota / period)
}

/// Headroom (calibrated ppm) a create in flight holds on a core until the media thread answers.
/// A cost admitted on a core, given back on drop unless handed to the media thread.
struct Reservation<'a>(&'a AtomicU64, u64);

impl Reservation<'_> {
    /// The command carrying it is queued: the media thread keeps or gives back the cost.
    fn hand_over(self) {
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// NTP time now (RFC 5905 64-bit), for sessions' RTCP.
fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
    }

    #[test]
    fn asked_cores_are_kept_to_the_allowed_ones() {
        let allowed: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .map(|c| c.id)
            .collect();
        let Some(&first) = allowed.first() else {
            return;
        };
        assert_eq!(media_cores(&[first, 100_000]), vec![first]);
        assert_eq!(media_cores(&[]), allowed);
    }
}
