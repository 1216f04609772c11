//! A scheduler and two workers as real processes on loopback: registration, passthrough without a
//! worker, allocate / query / update / release, a full pool, a killed worker (lost, its calls
//! reported, new calls placed elsewhere while the other worker's calls carry on), a restarted
//! scheduler that rebuilds its view, and a drained worker.
//!
//! The worker binary comes from the same target directory; `scripts/test.sh` (cargo nextest
//! --workspace) builds it. Alone: `cargo build -p bridgepool-worker` first.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use tonic::transport::Channel;

mod common;

use common::{Proc, codec, free_port, worker_binary};

fn scheduler(grpc: SocketAddr) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_bridgepool-scheduler"))
            .args(["--grpc-listen", &grpc.to_string()])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--worker-lease", "1500ms", "--log", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn worker(id: &str, scheduler: SocketAddr, rtp_base: u16) -> Proc {
    Proc(
        Command::new(worker_binary())
            .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--scheduler", &format!("http://{scheduler}")])
            .args([
                "--worker-id",
                id,
                "--heartbeat-interval",
                "250ms",
                "--cores",
                "0",
            ])
            .args(["--rtp-port-min", &rtp_base.to_string()])
            .args(["--rtp-port-max", &(rtp_base + 99).to_string()])
            // A low admission ceiling: a handful of sessions fills the pool.
            .args(["--admission-busy", "0.02", "--log", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn connect(addr: SocketAddr) -> SchedulerClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match SchedulerClient::connect(format!("http://{addr}")).await {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("scheduler never answered: {e}"),
        }
    }
}

async fn workers(c: &mut SchedulerClient<Channel>) -> Vec<v1::WorkerInfo> {
    c.list_workers(v1::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers
}

async fn wait_for(
    c: &mut SchedulerClient<Channel>,
    what: &str,
    ok: impl Fn(&[v1::WorkerInfo]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = workers(c).await;
        if ok(&w) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn offer(codecs: Vec<v1::Codec>, port: u32) -> v1::LegOffer {
    v1::LegOffer {
        codecs,
        remote: Some(v1::MediaAddress {
            ip: "127.0.0.1".into(),
            port,
        }),
        direction: 0,
    }
}

fn transcode_call(call: &str) -> v1::AllocateRequest {
    v1::AllocateRequest {
        call_id: call.into(),
        leg_a: Some(offer(
            vec![codec("PCMU", 8000, 0), codec("telephone-event", 8000, 101)],
            20_000,
        )),
        leg_b: Some(offer(
            vec![
                codec("opus", 48_000, 111),
                codec("telephone-event", 48_000, 110),
            ],
            20_002,
        )),
        jitter: None,
    }
}

fn ready(w: &[v1::WorkerInfo]) -> usize {
    w.iter()
        .filter(|w| w.state == v1::WorkerState::Ready as i32)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_with_two_worker_processes() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut sched = scheduler(addr);
    let _w1 = worker("w1", addr, 45_000);
    let mut w2 = Some(worker("w2", addr, 45_200));
    let mut c = connect(addr).await;
    wait_for(&mut c, "two ready workers", |w| ready(w) == 2).await;

    // Passthrough: the legs share PCMU; no worker is touched.
    let pass = c
        .allocate(v1::AllocateRequest {
            call_id: "pass".into(),
            leg_a: Some(offer(vec![codec("PCMU", 8000, 0)], 20_000)),
            leg_b: Some(offer(
                vec![codec("opus", 48_000, 111), codec("PCMU", 8000, 0)],
                20_002,
            )),
            jitter: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pass.decision, v1::Decision::Passthrough as i32);
    assert!(pass.session_id.is_empty());

    // Unsupported: a clear InvalidArgument.
    let bad = c
        .allocate(v1::AllocateRequest {
            call_id: "g722".into(),
            leg_a: Some(offer(vec![codec("G722", 8000, 9)], 20_000)),
            leg_b: Some(offer(vec![codec("opus", 48_000, 111)], 20_002)),
            jitter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("G722/8000"), "{}", bad.message());

    // Transcode until the pool is full; calls land on both workers.
    let mut sessions = Vec::new();
    let full = loop {
        match c
            .allocate(transcode_call(&format!("call-{}", sessions.len())))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                assert_eq!(r.decision, v1::Decision::Transcode as i32);
                let a = r.leg_a.as_ref().unwrap();
                assert_eq!(a.codec.as_ref().unwrap().name, "PCMU");
                assert_eq!(a.telephone_event.as_ref().unwrap().payload_type, 101);
                assert!(a.local.as_ref().unwrap().port > 0);
                sessions.push(r);
            }
            Err(status) => break status,
        }
        assert!(sessions.len() < 200, "the pool never filled");
    };
    assert_eq!(full.code(), tonic::Code::ResourceExhausted);
    assert!(
        full.message().contains("no worker has headroom"),
        "{}",
        full.message()
    );
    assert!(sessions.iter().any(|s| s.worker_id == "w1"));
    assert!(sessions.iter().any(|s| s.worker_id == "w2"));

    // Query and update (re-INVITE to 40 ms on the Opus leg) through the scheduler.
    let first = sessions[0].session_id.clone();
    let q = c
        .query(v1::QueryRequest {
            session_id: first.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.worker_id, sessions[0].worker_id);
    let mut reinvite = transcode_call("call-0");
    if let Some(b) = reinvite.leg_b.as_mut() {
        b.codecs[0].ptime_ms = 40;
    }
    let updated = c
        .update(v1::UpdateRequest {
            session_id: first.clone(),
            leg_a: reinvite.leg_a,
            leg_b: reinvite.leg_b,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.leg_b.unwrap().codec.unwrap().ptime_ms, 40);

    // Release is idempotent.
    let r1 = c
        .release(v1::ReleaseRequest {
            session_id: first.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r1.already_released);
    assert!(r1.leg_a.is_some());
    let r2 = c
        .release(v1::ReleaseRequest { session_id: first })
        .await
        .unwrap()
        .into_inner();
    assert!(r2.already_released);

    // Kill w2: it is lost after the lease, Watch says so, new calls go to w1 only.
    let mut watch = c.watch(v1::WatchRequest {}).await.unwrap().into_inner();
    drop(w2.take());
    wait_for(&mut c, "w2 lost", |w| {
        w.iter()
            .any(|w| w.worker_id == "w2" && w.state == v1::WorkerState::Lost as i32)
    })
    .await;
    let lost = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a Watch event in time")
        .unwrap()
        .unwrap();
    assert_eq!(lost.kind, v1::EventKind::WorkerLost as i32);
    assert_eq!(lost.worker_id, "w2");
    for s in sessions.iter().filter(|s| s.worker_id == "w1").skip(1) {
        c.release(v1::ReleaseRequest {
            session_id: s.session_id.clone(),
        })
        .await
        .unwrap();
    }
    // The next heartbeat reports the freed headroom.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let placed = c
        .allocate(transcode_call("after-kill"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.worker_id, "w1");

    // Restart the scheduler: it rebuilds its view from heartbeats; live calls were never touched.
    let _ = sched.0.kill();
    let _ = sched.0.wait();
    sched = scheduler(addr);
    let mut c = connect(addr).await;
    wait_for(&mut c, "w1 re-registered", |w| ready(w) == 1).await;
    let q = c
        .query(v1::QueryRequest {
            session_id: placed.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.worker_id, "w1");

    // Drain w1: no worker is left to place on.
    c.drain(v1::DrainWorkerRequest {
        worker_id: "w1".into(),
        deadline_seconds: 30,
    })
    .await
    .unwrap();
    wait_for(&mut c, "w1 draining", |w| {
        w.iter()
            .any(|w| w.worker_id == "w1" && w.state == v1::WorkerState::Draining as i32)
    })
    .await;
    let none = c.allocate(transcode_call("nowhere")).await.unwrap_err();
    assert_eq!(none.code(), tonic::Code::ResourceExhausted);
    drop(sched);
}
