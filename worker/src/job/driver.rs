//! The job thread: owns every one-way job's socket and state machine, polls them with mio, sends
//! each job's output to its relay, and answers the control plane's commands.
//!
//! One thread per worker process for all jobs, apart from the pinned session shards (see
//! docs/architecture.md for why). Steady state allocates nothing: one receive buffer, one send
//! buffer, the jobs' own preallocated outboxes.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use tokio::sync::oneshot;

use crate::session::oneway::{OneWay, OneWayStats};

/// The waker's token.
pub(super) const WAKER: Token = Token(usize::MAX);

/// A job's name: the relay's (call-id, from-tag).
pub(super) type JobName = (String, String);

/// A live job's figures for the control plane.
#[derive(Clone, Debug)]
pub(super) struct JobInfo {
    pub(super) name: JobName,
    pub(super) local: std::net::SocketAddr,
    pub(super) stats: OneWayStats,
}

/// Which jobs a command names.
#[derive(Clone, Debug)]
pub(super) enum Selector {
    One(JobName),
    Call(String),
    All,
}

impl Selector {
    fn matches(&self, name: &JobName) -> bool {
        match self {
            Self::One(n) => n == name,
            Self::Call(c) => &name.0 == c,
            Self::All => true,
        }
    }
}

/// What the control plane asks the job thread.
pub(super) enum Command {
    Create {
        name: JobName,
        job: Box<OneWay>,
        socket: std::net::UdpSocket,
        local: std::net::SocketAddr,
        destination: std::net::SocketAddr,
        done: oneshot::Sender<std::io::Result<()>>,
    },
    Delete {
        which: Selector,
        done: oneshot::Sender<Vec<JobInfo>>,
    },
    Get {
        which: Selector,
        done: oneshot::Sender<Vec<JobInfo>>,
    },
}

struct Live {
    name: JobName,
    socket: UdpSocket,
    local: std::net::SocketAddr,
    destination: std::net::SocketAddr,
    /// The first source; the relay sends from its destination port.
    latched: Option<std::net::SocketAddr>,
    /// Datagrams from other sources, dropped.
    foreign: u64,
    job: Box<OneWay>,
}

impl Live {
    fn info(&self) -> JobInfo {
        let mut stats = self.job.stats();
        stats.errors += self.foreign;
        JobInfo {
            name: self.name.clone(),
            local: self.local,
            stats,
        }
    }

    /// Latching, guarded: the first source only, never a switch (no RTP-bleed hijack).
    fn accept(&mut self, from: std::net::SocketAddr) -> bool {
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

    fn flush(&mut self, buf: &mut [u8]) {
        let to = self.destination;
        while let Some(n) = self.job.poll_transmit(buf) {
            let _ = self.socket.send_to(&buf[..n], to);
        }
    }
}

/// Runs until the command channel closes.
pub(super) fn run(
    mut poll: Poll,
    commands: Receiver<Command>,
    live_count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut events = Events::with_capacity(256);
    let mut jobs: HashMap<usize, Live> = HashMap::new();
    let mut next_token = 0usize;
    let mut rx = vec![0u8; 2048];
    let mut tx = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        let timeout = jobs
            .values()
            .filter_map(|l| l.job.poll_timeout())
            .min()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(1));
        if poll.poll(&mut events, Some(timeout)).is_err() {
            continue;
        }
        let now = Instant::now();
        for event in &events {
            if event.token() == WAKER {
                continue;
            }
            let Some(live) = jobs.get_mut(&event.token().0) else {
                continue;
            };
            while let Ok((n, from)) = live.socket.recv_from(&mut rx) {
                if !live.accept(from) {
                    continue;
                }
                live.job.handle_datagram(now, &rx[..n]);
                live.flush(&mut tx);
            }
        }
        for live in jobs.values_mut() {
            if live.job.poll_timeout().is_some_and(|t| t <= now) {
                live.job.handle_timeout(now);
                live.flush(&mut tx);
            }
        }
        jobs.retain(|_, l| {
            if l.job.ended() {
                tracing::info!(call_id = %l.name.0, from_tag = %l.name.1, "one-way job ended: no input");
                let _ = poll.registry().deregister(&mut l.socket);
                false
            } else {
                true
            }
        });
        loop {
            let command = match commands.try_recv() {
                Ok(c) => c,
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            };
            match command {
                Command::Create {
                    name,
                    job,
                    socket,
                    local,
                    destination,
                    done,
                } => {
                    let token = next_token;
                    next_token = next_token.wrapping_add(1) % (usize::MAX - 1);
                    let mut socket = UdpSocket::from_std(socket);
                    match poll
                        .registry()
                        .register(&mut socket, Token(token), Interest::READABLE)
                    {
                        Ok(()) => {
                            jobs.insert(
                                token,
                                Live {
                                    name,
                                    socket,
                                    local,
                                    destination,
                                    latched: None,
                                    foreign: 0,
                                    job,
                                },
                            );
                            let _ = done.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = done.send(Err(e));
                        }
                    }
                }
                Command::Delete { which, done } => {
                    let mut deleted = Vec::new();
                    jobs.retain(|_, l| {
                        if which.matches(&l.name) {
                            deleted.push(l.info());
                            let _ = poll.registry().deregister(&mut l.socket);
                            false
                        } else {
                            true
                        }
                    });
                    let _ = done.send(deleted);
                }
                Command::Get { which, done } => {
                    let found = jobs
                        .values()
                        .filter(|l| which.matches(&l.name))
                        .map(Live::info)
                        .collect();
                    let _ = done.send(found);
                }
            }
        }
        live_count.store(jobs.len(), std::sync::atomic::Ordering::Relaxed);
    }
}
