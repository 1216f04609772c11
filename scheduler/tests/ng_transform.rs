//! The ng front door end to end over real UDP, playing the relay (rtpengine mr13.3+ `transform`):
//! a scheduler with `--ng-listen` and a worker as real processes; the relay's captured `transform`
//! request (from the peer capture `ng.pcap`, its destination port rewritten to this test's socket)
//! creates a one-way job; PCMU RTP sent to the address in the reply comes back as decodable Opus
//! on a 48 kHz clock; a resend of the same cookie gets the same reply and no second job; the
//! captured `delete` frees the port.
//!
//! The worker binary comes from the same target directory (`cargo build -p bridgepool-worker`).
//! With `RTPENGINE_BIN` set, [`through_a_real_relay`] also runs the peer folder's end-to-end check
//! through a transform-capable rtpengine relay; without it that test says so and is skipped.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{OpusDecoder, SampleRate};
use bridgepool_codecs::rtp::{RtpHeader, RtpPacket};
use bridgepool_ng::{Dict, Message, TransformReply, TransformRequest, Value, client};
use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;
use bridgepool_proto::v1::worker_client::WorkerClient;

mod common;

use common::{Pool, Proc, ask, free_port, free_udp, metrics};

const TRANSFORM: &[u8] = include_bytes!("../../ng/tests/golden/transform_pcmu_opus_request.bin");
const DELETE: &[u8] = include_bytes!("../../ng/tests/golden/delete_pcmu_opus_request.bin");

fn pcmu_packet(seq: u16, ts: u32) -> Vec<u8> {
    let pcm: Vec<i16> = (0..160)
        .map(|i| (((u32::from(seq) * 160 + i) as f32 * 0.05).sin() * 8000.0) as i16)
        .collect();
    let mut payload = [0u8; 160];
    Law::Ulaw.encode(&pcm, &mut payload);
    let mut buf = vec![0u8; 172];
    let h = RtpHeader {
        marker: seq == 1000,
        payload_type: 0,
        sequence_number: seq,
        timestamp: ts,
        ssrc: 0x0123_4567,
    }
    .write(&mut buf)
    .unwrap();
    buf[h..].copy_from_slice(&payload);
    buf
}

#[tokio::test(flavor = "multi_thread")]
async fn transform_pcmu_to_opus_over_udp() {
    let pool = Pool::start(1, &[]).await;
    let ng = UdpSocket::bind("127.0.0.1:0").unwrap();
    ng.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    media
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();

    // Health, an unknown command, garbage.
    let pong = ask(&ng, pool.first().ng, b"12727_1 d7:command4:pinge");
    assert_eq!(pong, b"12727_1 d6:result4:ponge");
    let unknown = ask(&ng, pool.first().ng, b"u1 d7:command15:start recordinge");
    assert_eq!(
        client::parse_reply(&unknown, "u1"),
        Err(client::ReplyError::Refused {
            reason: "Unrecognized command".into()
        })
    );
    let garbage = ask(&ng, pool.first().ng, b"g1 d7:command");
    assert!(client::parse_reply(&garbage, "g1").is_err());

    // The relay's captured request, destination rewritten to our media socket.
    let captured = Message::parse(TRANSFORM).unwrap();
    let mut request = TransformRequest::from_body(&captured.body).unwrap();
    request.media[0].destination = media.local_addr().unwrap();
    let cookie = std::str::from_utf8(&captured.cookie).unwrap().to_owned();
    let datagram = client::frame(&cookie, &request.to_body());
    let raw_reply = ask(&ng, pool.first().ng, &datagram);
    let body = client::parse_reply(&raw_reply, &cookie).expect("transform refused");
    let reply = TransformReply::from_body(&body).expect("reply the relay would reject");
    assert_eq!(reply.call_id, "16072129 for tfm-e2e-1");
    assert_eq!(reply.from_tag, "16072129 for tfm-e2e-1-A");
    let job_addr = reply.media[0].addr;

    // A resend (the relay retries with the same cookie) gets the same bytes, and no second job.
    assert_eq!(ask(&ng, pool.first().ng, &datagram), raw_reply);
    let listed = ask(
        &ng,
        pool.first().ng,
        &client::frame("l1", &bridgepool_ng::Dict::new().with("command", "list")),
    );
    let listed = client::parse_reply(&listed, "l1").unwrap();
    assert_eq!(
        listed
            .get("calls")
            .and_then(|c| c.as_list())
            .map(<[_]>::len),
        Some(1)
    );
    let stats = ask(
        &ng,
        pool.first().ng,
        &client::frame(
            "s1",
            &bridgepool_ng::Dict::new().with("command", "statistics"),
        ),
    );
    let stats = client::parse_reply(&stats, "s1").unwrap();
    let total = stats
        .get("statistics")
        .and_then(|s| s.get("currentstatistics"))
        .and_then(|c| c.get("sessionstotal"))
        .and_then(|t| t.as_int());
    assert_eq!(total, Some(1));

    // Media: 50 PCMU packets, 20 ms apart, from the relay's transform port.
    let mut decoder = OpusDecoder::new(SampleRate::Hz48000).unwrap();
    let mut pcm = vec![0i16; 5760];
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    media.set_nonblocking(true).unwrap();
    for i in 0..50u16 {
        media
            .send_to(&pcmu_packet(1000 + i, 3000 + 160 * u32::from(i)), job_addr)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        while let Ok((n, from)) = media.recv_from(&mut buf) {
            assert_eq!(
                from.port(),
                job_addr.port(),
                "output comes from the advertised port"
            );
            got.push(buf[..n].to_vec());
        }
    }
    media.set_nonblocking(false).unwrap();
    while let Ok((n, _)) = media.recv_from(&mut buf) {
        got.push(buf[..n].to_vec());
        if got.len() >= 50 {
            break;
        }
    }
    assert!(got.len() >= 45, "only {} Opus packets came back", got.len());
    let first = RtpPacket::parse(&got[0]).unwrap();
    for (i, d) in got.iter().enumerate() {
        let p = RtpPacket::parse(d).unwrap();
        assert_eq!(p.payload_type(), 96);
        assert_eq!(p.ssrc(), first.ssrc());
        assert_eq!(
            p.sequence_number(),
            first.sequence_number().wrapping_add(i as u16)
        );
        assert_eq!(
            p.timestamp(),
            first.timestamp().wrapping_add(960 * i as u32),
            "48 kHz clock"
        );
        assert_eq!(decoder.decode(p.payload(), &mut pcm).unwrap(), 960);
    }

    // The relay's captured delete (same call-id/from-tag as the reply), then the port is free.
    let deleted = ask(&ng, pool.first().ng, DELETE);
    let deleted = client::parse_reply(&deleted, "c7805a4ecf1959b7").unwrap();
    assert_eq!(deleted.get("warning"), None);
    assert!(
        UdpSocket::bind(job_addr).is_ok(),
        "the job's port is still bound"
    );
    // Deleting again: ok with rtpengine's warning.
    let again = ask(
        &ng,
        pool.first().ng,
        &client::frame("d2", &client::delete(&reply.call_id, &reply.from_tag)),
    );
    let again = client::parse_reply(&again, "d2").unwrap();
    assert!(again.get("warning").is_some());

    // Counted: one transform handled, its resend answered from the cache, one PCMU -> opus job.
    let text = metrics(pool.first().metrics);
    for line in [
        "bridgepool_scheduler_ng_requests_total{command=\"transform\",outcome=\"ok\"} 1",
        "bridgepool_scheduler_ng_requests_total{command=\"transform\",outcome=\"cached\"} 1",
        "bridgepool_scheduler_ng_requests_total{command=\"malformed\",outcome=\"error\"} 1",
        "bridgepool_scheduler_ng_requests_total{command=\"delete\",outcome=\"ok\"} 2",
        "bridgepool_scheduler_ng_jobs_created_total{input=\"PCMU\",output=\"opus\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_pair_and_no_worker_are_refused_at_once() {
    let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let ng_addr = free_udp();
    let _scheduler = Proc(
        Command::new(env!("CARGO_BIN_EXE_bridgepool-scheduler"))
            .args(["--grpc-listen", &grpc.to_string()])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--ng-listen", &ng_addr.to_string(), "--log", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ng = UdpSocket::bind("127.0.0.1:0").unwrap();
    ng.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ng.send_to(b"p d7:command4:pinge", ng_addr).unwrap();
        let mut b = [0u8; 64];
        if ng.recv_from(&mut b).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "ng server never answered");
    }
    let captured = Message::parse(TRANSFORM).unwrap();
    let started = Instant::now();
    let reply = ask(&ng, ng_addr, TRANSFORM);
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(
        client::parse_reply(&reply, std::str::from_utf8(&captured.cookie).unwrap()),
        Err(client::ReplyError::Refused {
            reason: "Parallel session limit reached".into()
        })
    );
    let mut request = TransformRequest::from_body(&captured.body).unwrap();
    request.media[0].codecs[0].output.codec = "G722".into();
    let reply = ask(&ng, ng_addr, &client::frame("x1", &request.to_body()));
    assert!(matches!(
        client::parse_reply(&reply, "x1"),
        Err(client::ReplyError::Refused { reason }) if reason.starts_with("Unsupported codec pair")
    ));
}

/// A job belongs to the worker, not to the replica that placed it: with the placing replica
/// killed, another replica finds it (query), and the killed one, restarted with no memory, deletes
/// it; the worker then holds no job.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_outlives_the_replica_that_placed_it() {
    let mut pool = Pool::start(2, &[]).await;
    let (first, second) = (pool.replicas[0], pool.replicas[1]);
    let ng = UdpSocket::bind("127.0.0.1:0").unwrap();
    ng.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let reply = ask(
        &ng,
        first.ng,
        &client::frame("r1", &Message::parse(TRANSFORM).unwrap().body),
    );
    let placed = TransformReply::from_body(&client::parse_reply(&reply, "r1").unwrap()).unwrap();
    let query = Dict::new()
        .with("command", "query")
        .with("call-id", placed.call_id.as_str())
        .with("from-tag", placed.from_tag.as_str());

    pool.kill(0);
    let found = client::parse_reply(&ask(&ng, second.ng, &client::frame("r2", &query)), "r2")
        .expect("the other replica does not find the job");
    let local_port = found
        .get("tags")
        .and_then(Value::as_dict)
        .and_then(|t| t.get(&placed.from_tag))
        .and_then(Value::as_dict)
        .and_then(|t| t.get("medias"))
        .and_then(|m| match m {
            Value::List(l) => l.first().and_then(Value::as_dict),
            _ => None,
        })
        .and_then(|m| m.get("streams"))
        .and_then(|s| match s {
            Value::List(l) => l.first().and_then(Value::as_dict),
            _ => None,
        })
        .and_then(|s| s.int("local port"));
    assert_eq!(
        local_port,
        Some(i64::from(placed.media[0].addr.port())),
        "{found:?}"
    );

    pool.restart(0);
    first.wait_for_worker().await;
    let delete = client::delete(&placed.call_id, &placed.from_tag);
    let deleted = client::parse_reply(&ask(&ng, first.ng, &client::frame("r3", &delete)), "r3")
        .expect("the restarted replica does not delete the job");
    assert!(
        deleted.get("totals").is_some(),
        "a delete that found the job reports totals: {deleted:?}"
    );
    let mut worker = WorkerClient::connect(format!("http://{}", pool.worker_grpc))
        .await
        .unwrap();
    let left = worker
        .list_jobs(v1::ListJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(left.is_empty(), "jobs left on the worker: {left:?}");
    // Gone for every replica now.
    let again = client::parse_reply(&ask(&ng, second.ng, &client::frame("r4", &query)), "r4");
    assert!(
        matches!(again, Err(client::ReplyError::Refused { .. })),
        "{again:?}"
    );
}

/// A worker lost mid-call: its one-way jobs are reported on Watch by the relay's call-id, and
/// counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_workers_jobs_are_reported() {
    let mut pool = Pool::start(1, &[]).await;
    let replica = pool.first();
    let ng = UdpSocket::bind("127.0.0.1:0").unwrap();
    ng.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let reply = ask(
        &ng,
        replica.ng,
        &client::frame("l1", &Message::parse(TRANSFORM).unwrap().body),
    );
    let placed = TransformReply::from_body(&client::parse_reply(&reply, "l1").unwrap()).unwrap();
    let mut scheduler = SchedulerClient::connect(format!("http://{}", replica.grpc))
        .await
        .unwrap();
    let mut watch = scheduler
        .watch(v1::WatchRequest {})
        .await
        .unwrap()
        .into_inner();
    // Heartbeats every 250 ms carry the job; then the worker dies.
    tokio::time::sleep(Duration::from_millis(800)).await;
    pool.kill_worker();
    let event = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let e = watch.message().await.unwrap().expect("watch ended");
            if e.kind == v1::EventKind::WorkerLost as i32 && !e.call_id.is_empty() {
                return e;
            }
        }
    })
    .await
    .expect("no WorkerLost event naming the job's call");
    assert_eq!(event.call_id, placed.call_id);
    assert!(event.detail.contains(&placed.from_tag), "{}", event.detail);
    let text = metrics(replica.metrics);
    assert!(
        text.contains("bridgepool_scheduler_lost_with_worker_total{kind=\"job\"} 1"),
        "{text}"
    );
}

/// Runs the peer folder's end-to-end check through a transform-capable rtpengine relay that
/// offloads to `pool`; `None` (with a message) when `RTPENGINE_BIN` is not set. Returns whether
/// the check passed and its output.
fn through_relay(test: &str, pool_ng: SocketAddr) -> Option<(bool, String)> {
    let Ok(bin) = std::env::var("RTPENGINE_BIN") else {
        eprintln!(
            "SKIPPED {test}: RTPENGINE_BIN is not set (a transform-capable rtpengine, mr13.3.1.1+, is needed; Debian's 10.5 is too old)"
        );
        return None;
    };
    let peer = PathBuf::from(
        std::env::var("RTPENGINE_PEER_DIR")
            .unwrap_or_else(|_| "/work/shared/peers/rtpengine-transform".into()),
    );
    let conf = std::fs::read_to_string(peer.join("relay.conf")).expect("relay.conf");
    let relay_ng = free_udp();
    let conf = conf
        .replace("@RELAY_IP@", "127.0.0.1")
        .replace("@RELAY_NG_PORT@", &relay_ng.port().to_string())
        .replace("@TRANSFORMER_NG@", &pool_ng.to_string());
    let dir = std::env::temp_dir().join(format!("bp-relay-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf_path = dir.join("R.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let _relay = Proc(
        Command::new(bin)
            .arg(format!("--config-file={}", conf_path.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let run = Command::new("python3")
        .arg(peer.join("transform_e2e.py"))
        .env("R_NG", relay_ng.to_string())
        // Tests run side by side: each call its own id and media ports.
        .env("A_PORT", free_udp().port().to_string())
        .env("B_PORT", free_udp().port().to_string())
        .env("CALLID", test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    eprintln!("{stdout}");
    Some((run.status.success(), stdout))
}

/// Through a transform-capable rtpengine relay (see /work/shared/peers/rtpengine-transform/README.md):
/// needs `RTPENGINE_BIN`; skipped with a message otherwise.
#[test]
fn through_a_real_relay() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = rt.block_on(Pool::start(1, &[]));
    let Some((passed, stdout)) = through_relay("through_a_real_relay", pool.first().ng) else {
        return;
    };
    assert!(passed, "transform_e2e.py failed through the relay");
    // The relay falls back to transcoding locally when the pool fails, and the script passes
    // either way: the pool must have served both directions.
    let text = metrics(pool.first().metrics);
    for pair in [
        "{input=\"PCMU\",output=\"opus\"} 1",
        "{input=\"opus\",output=\"PCMU\"} 1",
    ] {
        let line = format!("bridgepool_scheduler_ng_jobs_created_total{pair}");
        assert!(text.contains(&line), "no {line} in\n{text}");
    }
    // Each direction's output ends with its input, as a relay transcoding locally would:
    // 50 frames in, 50 out, give or take the last partial one; the Opus -> G.711 direction also
    // plays out what its jitter buffer held when the input stopped (a packet or two on loopback)
    // and its 40 ms tail, never a stream that goes on.
    for line in stdout.lines().filter(|l| l.contains("got PTs")) {
        let got: u64 = line
            .rsplit(": ")
            .next()
            .and_then(|v| v.trim_end_matches('}').trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line}"));
        assert!((45..=56).contains(&got), "{line}");
    }
}

/// A full pool refuses at once and the call still carries media both ways: the relay transcodes
/// it itself. The refusals are counted and no job is created.
#[test]
fn a_full_pool_falls_back_to_the_relay() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Half a core per call against a 5 % admission limit: a registered worker that admits nothing.
    let pool = rt.block_on(Pool::start(
        1,
        &["--session-cost", "0.5", "--admission-busy", "0.05"],
    ));
    let Some((passed, _)) = through_relay("a_full_pool_falls_back_to_the_relay", pool.first().ng)
    else {
        return;
    };
    assert!(
        passed,
        "the call failed when the pool was full: the relay did not fall back"
    );
    let text = metrics(pool.first().metrics);
    let refused = text
        .lines()
        .find(|l| {
            l.starts_with(
                "bridgepool_scheduler_ng_requests_total{command=\"transform\",outcome=\"error\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        refused >= 2,
        "both directions' transforms refused and counted:\n{text}"
    );
    assert!(
        !text.lines().any(
            |l| l.starts_with("bridgepool_scheduler_ng_jobs_created_total{") && !l.ends_with(" 0")
        ),
        "a job was created on a full pool:\n{text}"
    );
}
