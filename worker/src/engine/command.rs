//! Messages between the control plane and the media threads.

use std::net::SocketAddr;

use tokio::sync::oneshot;

use super::load::JobKind;
use super::ports::PortPair;
use crate::session::oneway::{OneWay, OneWayStats};
use crate::session::{EndReason, JitterStats, LegMode, LegStats, SessionConfig};

/// A one-way job's name: the relay's (call-id, from-tag).
pub type JobName = (String, String);

/// A live job's figures for the control plane.
#[derive(Clone, Debug)]
pub struct JobInfo {
    /// Its name.
    pub name: JobName,
    /// Where it listens (advertised address).
    pub local: SocketAddr,
    /// Its counters (foreign sources included in `errors`).
    pub stats: OneWayStats,
}

/// Which jobs a command names.
#[derive(Clone, Debug)]
pub enum JobSelector {
    /// One job.
    One(JobName),
    /// Every job of a call (any from-tag).
    Call(String),
    /// Every job.
    All,
}

impl JobSelector {
    pub(super) fn matches(&self, name: &JobName) -> bool {
        match self {
            Self::One(n) => n == name,
            Self::Call(c) => &name.0 == c,
            Self::All => true,
        }
    }
}

/// A worker-local session id.
pub type SessionId = u64;

/// Changes to a session's peers and media (answer, re-INVITE, hold).
#[derive(Clone, Debug, Default)]
pub struct SessionChange {
    /// New negotiated parameters.
    pub config: Option<SessionConfig>,
    /// New remote RTP address per leg (`Some(None)` clears it: hold with 0.0.0.0).
    pub remote_a: Option<Option<SocketAddr>>,
    /// The same for leg B.
    pub remote_b: Option<Option<SocketAddr>>,
    /// Send/receive per leg.
    pub mode_a: Option<LegMode>,
    /// The same for leg B.
    pub mode_b: Option<LegMode>,
    /// What the session is to reserve from now on (a switch of mode, or passthrough settled).
    pub reserve: Option<super::Reserve>,
}

/// A session's figures at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionSnapshot {
    /// Leg A (G.711).
    pub leg_a: LegStats,
    /// Leg B (Opus).
    pub leg_b: LegStats,
    /// MOS estimate of what leg A's peer sends us.
    pub mos_a: f64,
    /// The same for leg B.
    pub mos_b: f64,
    /// Set once the session ended.
    pub ended: Option<EndReason>,
    /// The Opus -> G.711 jitter buffer.
    pub jitter: JitterStats,
}

/// Whom a command concerns, so a panic while handling it removes that one only.
#[derive(Debug)]
pub(super) enum Subject {
    /// A session.
    Session(SessionId),
    /// A one-way job.
    Job(JobName),
    /// Nobody in particular (selectors, shutdown).
    None,
}

impl Command {
    /// Whom this command concerns.
    pub(super) fn subject(&self) -> Subject {
        match self {
            Self::Create { id, .. }
            | Self::Update { id, .. }
            | Self::Delete { id, .. }
            | Self::Query { id, .. }
            | Self::Config { id, .. } => Subject::Session(*id),
            Self::CreateJob { name, .. } => Subject::Job(name.clone()),
            Self::DeleteJobs { .. } | Self::QueryJobs { .. } | Self::Shutdown => Subject::None,
        }
    }
}

/// A request to a media thread.
#[derive(Debug)]
pub(super) enum Command {
    /// Take a new session with its bound sockets.
    Create {
        /// Its id.
        id: SessionId,
        /// The built session config.
        config: Box<SessionConfig>,
        /// Leg A's sockets.
        ports_a: PortPair,
        /// Leg B's sockets.
        ports_b: PortPair,
        /// Leg A's remote, if known at creation.
        remote_a: Option<SocketAddr>,
        /// Leg B's remote, if known at creation.
        remote_b: Option<SocketAddr>,
        /// NTP time now, for RTCP.
        ntp_now: u64,
        /// Calibrated cost admitted for it (ppm): the thread keeps it reserved while the session
        /// lives and gives it back if the create fails.
        cost: u64,
        /// Whether it worked.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Change a session.
    Update {
        /// Which.
        id: SessionId,
        /// What.
        change: Box<SessionChange>,
        /// Change of the session's reservation, ppm: a rise was admitted by the control plane
        /// and is the thread's to keep (or give back if the update fails); a fall is given back
        /// by the thread once the update is applied.
        cost_delta: i64,
        /// `None` if the session is unknown, else the outcome.
        reply: oneshot::Sender<Option<Result<(), String>>>,
    },
    /// End a session and return its final figures (`None`: not here).
    Delete {
        /// Which.
        id: SessionId,
        /// Final figures.
        reply: oneshot::Sender<Option<SessionSnapshot>>,
    },
    /// Read a session's figures.
    Query {
        /// Which.
        id: SessionId,
        /// Figures, if the session lives here.
        reply: oneshot::Sender<Option<SessionSnapshot>>,
    },
    /// Read a session's configuration (to apply a partial change to it).
    Config {
        /// Which.
        id: SessionId,
        /// The configuration, if the session lives here.
        reply: oneshot::Sender<Option<Box<SessionConfig>>>,
    },
    /// Take a new one-way job with its bound socket.
    CreateJob {
        /// Its name.
        name: JobName,
        /// The armed pipeline.
        job: Box<OneWay>,
        /// Its ports (the RTP one receives the relay's stream).
        ports: PortPair,
        /// Advertised address.
        local: SocketAddr,
        /// Where the output goes (the relay).
        destination: SocketAddr,
        /// The direction it runs, for its cost.
        kind: JobKind,
        /// Calibrated cost admitted for it (ppm), owned by the thread from now on.
        cost: u64,
        /// Whether it worked.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// End the named jobs here and return their final figures.
    DeleteJobs {
        /// Which.
        which: JobSelector,
        /// Their final figures.
        reply: oneshot::Sender<Vec<JobInfo>>,
    },
    /// Read the named jobs' figures.
    QueryJobs {
        /// Which.
        which: JobSelector,
        /// Their figures.
        reply: oneshot::Sender<Vec<JobInfo>>,
    },
    /// Stop the thread (after ending every session).
    Shutdown,
}

/// Something a media thread reports on its own.
#[derive(Clone, Debug)]
pub struct EngineEvent {
    /// The session concerned.
    pub id: SessionId,
    /// What happened.
    pub kind: EngineEventKind,
}

/// What happened to a session, seen from the media thread.
#[derive(Clone, Debug)]
pub enum EngineEventKind {
    /// It ended by itself (timeout); these are its final figures.
    Ended(Box<SessionSnapshot>),
    /// A peer changed its SSRC.
    SsrcChanged,
    /// A peer sent RTCP BYE.
    RemoteBye,
    /// Handling it panicked: it was removed (ports freed) and its figures are lost.
    Failed,
}
