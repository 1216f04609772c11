//! The pool across hosts: two scheduler replicas (`s1`, `s2`) and three workers (`w1`-`w3`),
//! each a real process in its own namespace; every worker heartbeats to both replicas. The test
//! process is the loadgen host.

use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use tonic::transport::Channel;

use super::Net;
use super::media::Call;
use crate::common::{Proc, codec, worker_binary};

pub const SCHEDULERS: [&str; 2] = ["s1", "s2"];
pub const WORKERS: [&str; 3] = ["w1", "w2", "w3"];
const GRPC_PORT: u16 = 50051;
const WORKER_GRPC_PORT: u16 = 50061;

/// The processes (dropped, so killed, before the network goes: field order).
pub struct Cluster {
    workers: Vec<Option<Proc>>,
    schedulers: Vec<Option<Proc>>,
    worker_args: Vec<String>,
    pub net: Net,
}

/// What a Watch stream delivered: the event and when it arrived.
pub type Events = Arc<Mutex<Vec<(Instant, v1::SessionEvent)>>>;

impl Cluster {
    /// Builds the network and starts everything, ready when both replicas list three Ready
    /// workers. `None` (after a loud SKIPPED line) when namespaces cannot be made here.
    pub async fn start(index: u8, test: &str, worker_args: &[&str]) -> Option<Self> {
        let mut names: Vec<&str> = SCHEDULERS.to_vec();
        names.extend(WORKERS);
        let net = match Net::create(index, &names) {
            Ok(net) => net,
            // With the right to build them (CI runs as root), failing to is a failure: a
            // suite that skips itself there would pass without testing anything.
            Err(e) if super::may_build() => panic!("{test}: cannot build the network: {e}"),
            Err(e) => {
                eprintln!("SKIPPED {test}: cannot build network namespaces here ({e})");
                return None;
            }
        };
        let mut cluster = Self {
            schedulers: Vec::new(),
            workers: Vec::new(),
            worker_args: worker_args.iter().map(|s| (*s).to_owned()).collect(),
            net,
        };
        for i in 0..SCHEDULERS.len() {
            let p = cluster.spawn_scheduler(i);
            cluster.schedulers.push(Some(p));
        }
        for i in 0..WORKERS.len() {
            let p = cluster.spawn_worker(i);
            cluster.workers.push(Some(p));
        }
        for s in SCHEDULERS {
            let mut c = cluster.client(s).await;
            wait_for(&mut c, "three ready workers", |w| ready(w) == 3).await;
        }
        Some(cluster)
    }

    fn spawn_scheduler(&self, i: usize) -> Proc {
        let ip = self.net.host(SCHEDULERS[i]).ip;
        let args = [
            "--grpc-listen".to_owned(),
            format!("{ip}:{GRPC_PORT}"),
            "--metrics-listen".to_owned(),
            format!("{ip}:9101"),
            "--log".to_owned(),
            "warn".to_owned(),
        ];
        let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_bridgepool-scheduler"));
        Proc(self.net.spawn(SCHEDULERS[i], &bin, &args))
    }

    fn spawn_worker(&self, i: usize) -> Proc {
        let ip = self.net.host(WORKERS[i]).ip;
        let mut args = vec![
            "--grpc-listen".to_owned(),
            format!("{ip}:{WORKER_GRPC_PORT}"),
            "--metrics-listen".to_owned(),
            format!("{ip}:9102"),
            "--media-ip".to_owned(),
            ip.to_string(),
            "--rtp-port-min".to_owned(),
            "30000".to_owned(),
            "--rtp-port-max".to_owned(),
            "30399".to_owned(),
            // Three workers on a small machine: spread over the first two cores.
            "--cores".to_owned(),
            (i % 2).to_string(),
            "--worker-id".to_owned(),
            WORKERS[i].to_owned(),
            "--heartbeat-interval".to_owned(),
            "250ms".to_owned(),
            // A given cost (`--session-cost`, from the test): no calibration at start, the
            // same capacity on every host.
            "--live-cost".to_owned(),
            "false".to_owned(),
            "--log".to_owned(),
            "warn".to_owned(),
        ];
        for s in SCHEDULERS {
            let sip = self.net.host(s).ip;
            args.push("--scheduler".to_owned());
            args.push(format!("http://{sip}:{GRPC_PORT}"));
        }
        args.extend(self.worker_args.iter().cloned());
        Proc(self.net.spawn(WORKERS[i], &worker_binary(), &args))
    }

    /// A client of replica `name` (`s1`, `s2`), once it answers.
    pub async fn client(&self, name: &str) -> SchedulerClient<Channel> {
        let url = format!("http://{}:{GRPC_PORT}", self.net.host(name).ip);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match SchedulerClient::connect(url.clone()).await {
                Ok(c) => return c,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{name} never answered: {e}"),
            }
        }
    }

    /// Collects replica `name`'s Watch events from now on.
    pub async fn watch(&self, name: &str) -> Events {
        let mut c = self.client(name).await;
        let mut stream = c.watch(v1::WatchRequest {}).await.unwrap().into_inner();
        let events: Events = Arc::default();
        let sink = Arc::clone(&events);
        tokio::spawn(async move {
            while let Ok(Some(e)) = stream.message().await {
                sink.lock().unwrap().push((Instant::now(), e));
            }
        });
        events
    }

    /// The worker process `name`, for a kill or a signal.
    pub fn worker(&mut self, name: &str) -> &mut Option<Proc> {
        let i = WORKERS.iter().position(|w| *w == name).expect("a worker");
        &mut self.workers[i]
    }

    /// The worker process `name`'s child, while it runs.
    pub fn worker_child(&mut self, name: &str) -> &mut Child {
        &mut self.worker(name).as_mut().expect("running").0
    }

    /// Starts worker `name` again on the same host and address (a deploy's new version).
    pub fn restart_worker(&mut self, name: &str) {
        let i = WORKERS.iter().position(|w| *w == name).expect("a worker");
        self.workers[i] = Some(self.spawn_worker(i));
    }

    /// Kills replica `name` (SIGKILL).
    pub fn kill_scheduler(&mut self, name: &str) {
        let i = SCHEDULERS
            .iter()
            .position(|s| *s == name)
            .expect("a replica");
        self.schedulers[i] = None;
    }

    /// Starts replica `name` again on the same host and address.
    pub fn restart_scheduler(&mut self, name: &str) {
        let i = SCHEDULERS
            .iter()
            .position(|s| *s == name)
            .expect("a replica");
        self.schedulers[i] = Some(self.spawn_scheduler(i));
    }

    /// Allocates a transcoded call through replica `via` with its media peers on the loadgen
    /// host; the call is not playing yet.
    pub async fn allocate(
        &self,
        c: &mut SchedulerClient<Channel>,
        call_id: &str,
    ) -> Result<Call, tonic::Status> {
        let peers = Call::peers(self.net.loadgen);
        let offer = |addr: SocketAddr, codecs: Vec<v1::Codec>| v1::LegOffer {
            codecs,
            remote: Some(v1::MediaAddress {
                ip: addr.ip().to_string(),
                port: u32::from(addr.port()),
            }),
            direction: 0,
        };
        let r = c
            .allocate(v1::AllocateRequest {
                call_id: call_id.to_owned(),
                leg_a: Some(offer(
                    peers.0.local_addr().unwrap(),
                    vec![codec("PCMU", 8000, 0)],
                )),
                leg_b: Some(offer(
                    peers.1.local_addr().unwrap(),
                    vec![codec("opus", 48_000, 111)],
                )),
                jitter: None,
            })
            .await?
            .into_inner();
        let local = r.leg_a.and_then(|a| a.local).expect("leg A address");
        let to: SocketAddr = format!("{}:{}", local.ip, local.port).parse().unwrap();
        Ok(Call::new(r.session_id, r.worker_id, peers, to))
    }
}

/// Workers listed Ready.
pub fn ready(w: &[v1::WorkerInfo]) -> usize {
    w.iter()
        .filter(|w| w.state == v1::WorkerState::Ready as i32)
        .count()
}

/// The state replica `c` gives worker `id`.
pub fn state_of(w: &[v1::WorkerInfo], id: &str) -> Option<v1::WorkerState> {
    w.iter()
        .find(|w| w.worker_id == id)
        .and_then(|w| v1::WorkerState::try_from(w.state).ok())
}

/// The workers a replica lists (empty while it does not answer).
pub async fn workers(c: &mut SchedulerClient<Channel>) -> Vec<v1::WorkerInfo> {
    c.list_workers(v1::ListWorkersRequest {})
        .await
        .map(|r| r.into_inner().workers)
        .unwrap_or_default()
}

/// Polls a replica's worker list until `ok` (bounded: 30 s); returns when it became true.
pub async fn wait_for(
    c: &mut SchedulerClient<Channel>,
    what: &str,
    ok: impl Fn(&[v1::WorkerInfo]) -> bool,
) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = workers(c).await;
        if ok(&w) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
