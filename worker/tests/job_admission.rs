//! One-way jobs (rtpengine `transform`) on the media shards, on the real worker binary over real
//! gRPC and UDP: jobs reserve the calibrated cost of the one direction they run and fill a core's
//! headroom; jobs and sessions share one core's capacity; a job carries media on its shard and
//! latches its first source; a draining worker refuses new jobs and exits only once its jobs
//! ended. Capacity is made exact with `--session-cost` and `--live-cost false`
//! (0.8 / 0.2 = 4 sessions on the one core; a G.711 -> Opus job costs half a session, a
//! PCMU <-> PCMA job a tenth), so assertions are on counts, never on timings.

// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridgepool_codecs::rtp::{RtpHeader, RtpPacket};
use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;

mod proc;
use proc::{WorkerProcess, addr, client, local, scrape};

/// One worker on one media core with a fixed capacity of 4 two-way sessions.
fn start_worker(rtp_base: u16) -> WorkerProcess {
    start_worker_with(rtp_base, &[])
}

fn start_worker_with(rtp_base: u16, extra: &[&str]) -> WorkerProcess {
    let mut args = vec!["--session-cost", "0.2", "--live-cost", "false"];
    args.extend_from_slice(extra);
    proc::spawn(rtp_base, 200, "w-jobs", &args, &[])
}

fn codec(name: &str, pt: u32, rate: u32) -> v1::Codec {
    v1::Codec {
        name: name.to_owned(),
        payload_type: pt,
        clock_rate: rate,
        channels: 1,
        ..Default::default()
    }
}

/// A PCMU -> Opus job, or PCMU -> PCMA when `recode`.
fn job(call: &str, destination: SocketAddr, recode: bool) -> v1::CreateJobRequest {
    let output = if recode {
        codec("PCMA", 8, 8000)
    } else {
        codec("opus", 111, 48000)
    };
    v1::CreateJobRequest {
        call_id: call.to_owned(),
        from_tag: "tag".to_owned(),
        pairs: vec![v1::JobPair {
            input: Some(codec("PCMU", 0, 8000)),
            output: Some(output),
        }],
        destination: Some(addr(destination)),
        jitter: None,
    }
}

fn job_ref(call: &str) -> v1::JobRef {
    v1::JobRef {
        call_id: call.to_owned(),
        from_tag: "tag".to_owned(),
        any_tag: false,
    }
}

fn session(call: &str) -> v1::CreateSessionRequest {
    v1::CreateSessionRequest {
        call_id: call.to_owned(),
        leg_a: Some(v1::G711Leg {
            law: v1::G711Law::Pcmu as i32,
            payload_type: 0,
            telephone_event_pt: 101,
            ptime_ms: 20,
            remote: None,
            direction: v1::Direction::Sendrecv as i32,
        }),
        leg_b: Some(v1::OpusLeg {
            payload_type: 111,
            telephone_event_pt: 110,
            ptime_ms: 20,
            remote: None,
            direction: v1::Direction::Sendrecv as i32,
            opus: Some(v1::OpusParams::default()),
        }),
        ..Default::default()
    }
}

async fn headroom(c: &mut WorkerClient<GrpcChannel>) -> u64 {
    c.get_stats(v1::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .headroom_sessions
}

fn pcmu(seq: u16) -> Vec<u8> {
    let mut buf = vec![0xffu8; 12 + 160];
    RtpHeader {
        marker: seq == 0,
        payload_type: 0,
        sequence_number: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: 0xabcd,
    }
    .write(&mut buf)
    .unwrap();
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_fill_headroom_and_share_a_core_with_sessions() {
    let w = start_worker(46_200);
    let mut c = client(&w).await;
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = relay.local_addr().unwrap();
    assert_eq!(headroom(&mut c).await, 4);

    // 8 G.711 -> Opus jobs at half a session each fill the core; the ninth is refused.
    let mut locals = Vec::new();
    for i in 0..8 {
        let r = c.create_job(job(&format!("j{i}"), dest, false)).await;
        let r = r.unwrap_or_else(|e| panic!("job {i} refused: {e}"));
        locals.push(local(&r.into_inner().local));
    }
    let refused = c.create_job(job("j8", dest, false)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    assert_eq!(
        headroom(&mut c).await,
        0,
        "jobs are in the heartbeat's headroom"
    );
    let refused = c.create_session(session("s-full")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    assert_eq!(scrape(&w, "bridgepool_worker_jobs{core=\"0\"}").await, 8.0);
    assert_eq!(scrape(&w, "bridgepool_worker_headroom_sessions").await, 0.0);

    // A job carries media on its shard: PCMU in, Opus out to the relay, a stranger dropped.
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..10 {
        source.send_to(&pcmu(seq), locals[0]).unwrap();
    }
    relay
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = relay.recv_from(&mut buf).expect("Opus from the job");
    assert_eq!(from.port(), locals[0].port(), "sent from the job's port");
    assert_eq!(RtpPacket::parse(&buf[..n]).unwrap().payload_type(), 111);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(&pcmu(10), locals[0]).unwrap();
    // GetJob goes through the same shard queue after the datagram: wait until it is counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let got = c.get_job(job_ref("j0")).await.unwrap().into_inner().jobs;
        assert_eq!(got.len(), 1);
        if got[0].errors >= 1 || Instant::now() > deadline {
            break got[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats.packets_in, 10, "{stats:?}");
    assert_eq!(stats.errors, 1, "the stranger is dropped: {stats:?}");

    // Two jobs deleted give back one session's worth: a session fits, then nothing more.
    for call in ["j6", "j7"] {
        let gone = c.delete_job(job_ref(call)).await.unwrap().into_inner();
        assert_eq!(gone.deleted.len(), 1);
    }
    assert_eq!(headroom(&mut c).await, 1);
    let s = c.create_session(session("s1")).await.unwrap().into_inner();
    assert_eq!(headroom(&mut c).await, 0);
    let refused = c.create_job(job("j9", dest, false)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");

    // Half a session freed: five PCMU -> PCMA jobs at a tenth of a session each fit, a sixth not.
    c.delete_job(job_ref("j5")).await.unwrap();
    for i in 0..5 {
        let r = c.create_job(job(&format!("r{i}"), dest, true)).await;
        r.unwrap_or_else(|e| panic!("recode job {i} refused: {e}"));
    }
    let refused = c.create_job(job("r5", dest, true)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");

    // The session's release gives its reservation back: two more G.711 -> Opus jobs.
    c.delete_session(v1::DeleteSessionRequest {
        session_id: s.session_id,
    })
    .await
    .unwrap();
    for i in 10..12 {
        let r = c.create_job(job(&format!("j{i}"), dest, false)).await;
        r.unwrap_or_else(|e| panic!("job {i} refused after the release: {e}"));
    }
    let refused = c.create_job(job("j12", dest, false)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    let all = c
        .list_jobs(v1::ListJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(all.len(), 5 + 5 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_refuses_new_jobs_and_waits_for_its_jobs() {
    let mut w = start_worker_with(46_400, &["--drain-deadline", "60s"]);
    let mut c = client(&w).await;
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = relay.local_addr().unwrap();
    c.create_job(job("live", dest, false)).await.unwrap();
    c.drain(v1::DrainRequest {
        deadline_seconds: 0,
    })
    .await
    .unwrap();
    let refused = c.create_job(job("new", dest, false)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused}");
    // The job keeps the worker up: it still answers about it after the drain began.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "exited with a job live"
        );
        let live = c.get_job(job_ref("live")).await.unwrap().into_inner().jobs;
        assert_eq!(live.len(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its end (the relay's delete) lets the drain finish: the process exits with 0.
    c.delete_job(job_ref("live")).await.unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "worker did not exit once its last job ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
}
