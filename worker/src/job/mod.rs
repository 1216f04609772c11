//! One-way jobs (rtpengine `transform`): the Worker service's CreateJob/DeleteJob/GetJob/ListJobs
//! land here. [`Jobs`] validates and converts the wire request into
//! [`crate::session::oneway::OneWay`] pipelines, binds the job's input socket and hands both to the
//! job thread ([`driver`]).

mod driver;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use tokio::sync::oneshot;
use tonic::Status;

use crate::session::oneway::OneWay;
use driver::{Command, JobInfo, Selector, WAKER};

/// The worker's one-way jobs.
pub struct Jobs {
    commands: Sender<Command>,
    waker: Arc<mio::Waker>,
    bind_ip: IpAddr,
    advertise_ip: IpAddr,
    idle: Duration,
    limit: usize,
    live: Arc<AtomicUsize>,
}

impl Jobs {
    /// Starts the job thread. Sockets bind on `bind_ip` and are advertised as `advertise_ip`; a
    /// job without input for `idle` ends; at most `limit` jobs run at once.
    pub fn start(
        bind_ip: IpAddr,
        advertise_ip: IpAddr,
        idle: Duration,
        limit: usize,
    ) -> std::io::Result<Self> {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (commands, rx) = std::sync::mpsc::channel();
        let live = Arc::new(AtomicUsize::new(0));
        let count = live.clone();
        std::thread::Builder::new()
            .name("bp-jobs".into())
            .spawn(move || driver::run(poll, rx, count))?;
        Ok(Self {
            commands,
            waker,
            bind_ip,
            advertise_ip,
            idle,
            limit,
            live,
        })
    }

    /// Live jobs.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), Status> {
        self.commands
            .send(command)
            .map_err(|_| Status::unavailable("the job thread stopped"))?;
        self.waker
            .wake()
            .map_err(|e| Status::unavailable(format!("job thread: {e}")))
    }

    /// CreateJob.
    pub async fn create(&self, req: v1::CreateJobRequest) -> Result<v1::CreateJobResponse, Status> {
        if self.live() >= self.limit {
            return Err(Status::resource_exhausted(format!(
                "{} one-way jobs: at the limit",
                self.live()
            )));
        }
        let pairs = wire::pairs(&req.pairs).map_err(Status::invalid_argument)?;
        let destination =
            wire::destination(req.destination.as_ref()).map_err(Status::invalid_argument)?;
        let mut job =
            OneWay::new(&pairs, self.idle).map_err(|e| Status::invalid_argument(e.to_string()))?;
        job.arm(Instant::now());
        let socket = std::net::UdpSocket::bind(SocketAddr::new(self.bind_ip, 0))
            .map_err(|e| Status::resource_exhausted(format!("no port: {e}")))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| Status::internal(e.to_string()))?;
        let port = socket
            .local_addr()
            .map_err(|e| Status::internal(e.to_string()))?
            .port();
        let local = SocketAddr::new(self.advertise_ip, port);
        let (done, wait) = oneshot::channel();
        self.send(Command::Create {
            name: (req.call_id.clone(), req.from_tag.clone()),
            job: Box::new(job),
            socket,
            local,
            destination,
            done,
        })?;
        wait.await
            .map_err(|_| Status::unavailable("the job thread stopped"))?
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(call_id = %req.call_id, from_tag = %req.from_tag, %local, %destination, "one-way job created");
        Ok(v1::CreateJobResponse {
            local: Some(v1::MediaAddress {
                ip: local.ip().to_string(),
                port: u32::from(local.port()),
            }),
            core: 0,
        })
    }

    fn selector(job: &v1::JobRef) -> Selector {
        if job.any_tag {
            Selector::Call(job.call_id.clone())
        } else {
            Selector::One((job.call_id.clone(), job.from_tag.clone()))
        }
    }

    /// DeleteJob.
    pub async fn delete(&self, job: &v1::JobRef) -> Result<Vec<v1::JobStats>, Status> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Delete {
            which: Self::selector(job),
            done,
        })?;
        let deleted = wait
            .await
            .map_err(|_| Status::unavailable("the job thread stopped"))?;
        Ok(deleted.iter().map(wire::stats).collect())
    }

    /// GetJob (a selector) or ListJobs (`None`).
    pub async fn get(&self, job: Option<&v1::JobRef>) -> Result<Vec<v1::JobStats>, Status> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Get {
            which: job.map_or(Selector::All, Self::selector),
            done,
        })?;
        let found: Vec<JobInfo> = wait
            .await
            .map_err(|_| Status::unavailable("the job thread stopped"))?;
        Ok(found.iter().map(wire::stats).collect())
    }
}
