//! The pacing sender and the receivers on real loopback sockets, through a UDP relay of the
//! test's own; then a whole `run_load` against a relaying target.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridgepool_loadgen::config::{LoadConfig, Mode};
use bridgepool_loadgen::media::{EncodedMedia, MediaCodec};
use bridgepool_loadgen::pacer::{OutStream, Pacer, SLOTS, SendLog};
use bridgepool_loadgen::receiver::{Listen, Receivers};
use bridgepool_loadgen::report::{html, json, table};
use bridgepool_loadgen::run_load;
use bridgepool_loadgen::stats::{SendTimes, StreamExpectation, StreamStats};
use bridgepool_loadgen::targets::{
    Allocation, BoxFuture, CallHandle, CallRequest, LegMedia, Target, TargetError,
};
use tokio::task::JoinHandle;

/// Forwards every datagram from `a` to `b` and from `b` to `a`, unchanged.
async fn relay(socket: tokio::net::UdpSocket, a: SocketAddr, b: SocketAddr) {
    relay_after(socket, a, b, None).await;
}

/// Like [`relay`], dropping everything in the `mute` window.
async fn relay_after(
    socket: tokio::net::UdpSocket,
    a: SocketAddr,
    b: SocketAddr,
    mute: Option<(Instant, Instant)>,
) {
    let mut buf = vec![0u8; 2048];
    while let Ok((len, from)) = socket.recv_from(&mut buf).await {
        let now = Instant::now();
        if mute.is_some_and(|(from, to)| from <= now && now < to) {
            continue;
        }
        let to = if from == a {
            b
        } else if from == b {
            a
        } else {
            continue;
        };
        let _ = socket.send_to(&buf[..len], to).await;
    }
}

fn leg() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_streams_come_back_through_a_relay_complete_and_in_order() {
    let media = Arc::new(EncodedMedia::synthetic(2).unwrap());
    let epoch = Instant::now();
    let pacer = Pacer::start(media.clone(), epoch).unwrap();
    let (sock_a, addr_a) = leg();
    let (sock_b, addr_b) = leg();
    let relay_socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay_socket.local_addr().unwrap();
    let relay_task = tokio::spawn(relay(relay_socket, addr_a, addr_b));

    let (log_a, log_b) = (Arc::new(SendLog::new(epoch)), Arc::new(SendLog::new(epoch)));
    // B hears A's PCMU; A hears B's Opus.
    let pcmu = StreamExpectation {
        payload_type: 0,
        clock_rate: 8000,
        timestamp_step: 160,
    };
    let opus = StreamExpectation {
        payload_type: 96,
        clock_rate: 48_000,
        timestamp_step: 960,
    };
    let rx_b = Arc::new(Mutex::new(StreamStats::new(pcmu)));
    let rx_a = Arc::new(Mutex::new(StreamStats::new(opus)));
    let receivers = Receivers::start(epoch).unwrap();
    receivers.add(
        7,
        vec![
            Listen {
                socket: sock_a.try_clone().unwrap(),
                stats: rx_a.clone(),
                input: log_b.clone(),
                impair: None,
            },
            Listen {
                socket: sock_b.try_clone().unwrap(),
                stats: rx_b.clone(),
                input: log_a.clone(),
                impair: None,
            },
        ],
    );
    let stream = |socket: UdpSocket, codec: MediaCodec, log: &Arc<SendLog>, ssrc: u32| OutStream {
        socket: Arc::new(socket),
        dest: relay_addr,
        codec,
        payload_type: codec.default_payload_type(),
        ssrc,
        first_seq: 65_500,
        first_timestamp: u32::MAX - 10_000,
        log: log.clone(),
        track: media.first_track(),
        impair: None,
    };
    pacer.add(
        7,
        vec![
            stream(sock_a, MediaCodec::Pcmu, &log_a, 1),
            stream(sock_b, MediaCodec::Opus, &log_b, 2),
        ],
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    pacer.remove(7);
    // Let the last packets land, then stop everything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pacer_stats = pacer.finish();
    receivers.finish();
    relay_task.abort();

    let sent_a = log_a.frames_sent();
    let sent_b = log_b.frames_sent();
    assert!(
        sent_a >= 10 && sent_b >= 10,
        "the pacer sent {sent_a} and {sent_b} frames"
    );
    assert_eq!(pacer_stats.packets, sent_a + sent_b);
    assert_eq!(pacer_stats.send_errors, 0);
    for (name, rx, sent) in [("a->b", &rx_b, sent_a), ("b->a", &rx_a, sent_b)] {
        let stats = rx.lock().unwrap();
        let s = stats.summary(sent, 0);
        assert_eq!(
            s.received, sent,
            "{name}: every packet relayed arrives once: {s:?}"
        );
        assert_eq!(s.lost, 0, "{name}");
        assert_eq!(s.duplicates, 0, "{name}");
        assert_eq!(
            s.violations.total(),
            0,
            "{name}: the pacer keeps the RTP rules: {:?}",
            s.violations
        );
        assert_eq!(
            s.latency.samples, sent,
            "{name}: every packet matched to its input"
        );
        assert_eq!(s.negative_latency, 0, "{name}");
        assert!(s.latency.p50_ms >= 0.0 && s.latency.p50_ms <= s.latency.max_ms);
    }
}

/// A target that relays each call through a socket of its own (no transcoding: each leg hears
/// the other's codec) and answers shared-codec calls passthrough.
#[derive(Default)]
struct RelayTarget {
    relays: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Calls it accepts at once (0: no limit).
    capacity: usize,
    /// Drop all media in this window (a stall of the whole target).
    mute: Option<(Instant, Instant)>,
    /// The legs' media addresses it was given.
    peers: Mutex<Vec<SocketAddr>>,
}

impl Target for RelayTarget {
    fn name(&self) -> &str {
        "relay"
    }

    fn allocate<'a>(
        &'a self,
        req: &'a CallRequest,
    ) -> BoxFuture<'a, Result<Allocation, TargetError>> {
        Box::pin(async move {
            let handle = CallHandle(req.call_id.clone());
            self.peers.lock().unwrap().extend([req.leg_a, req.leg_b]);
            if req.shared_codec {
                return Ok(Allocation::Passthrough { handle });
            }
            let full = self.capacity > 0 && self.relays.lock().unwrap().len() >= self.capacity;
            if full {
                return Err(TargetError::Refused {
                    reason: "pool full".into(),
                });
            }
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            let addr = socket.local_addr()?;
            let task = tokio::spawn(relay_after(socket, req.leg_a, req.leg_b, self.mute));
            self.relays
                .lock()
                .unwrap()
                .insert(req.call_id.clone(), task);
            let law = MediaCodec::g711(req.law);
            let opus = MediaCodec::Opus;
            let leg = |send: MediaCodec, recv: MediaCodec| LegMedia {
                send_to: addr,
                send_codec: send,
                send_payload_type: send.default_payload_type(),
                recv_codec: recv,
                recv_payload_type: recv.default_payload_type(),
            };
            Ok(Allocation::Media {
                handle,
                leg_a: leg(law, opus),
                leg_b: leg(opus, law),
                transcoded: true,
            })
        })
    }

    fn release<'a>(&'a self, handle: &'a CallHandle) -> BoxFuture<'a, Result<(), TargetError>> {
        Box::pin(async move {
            if let Some(task) = self.relays.lock().unwrap().remove(&handle.0) {
                task.abort();
            }
            Ok(())
        })
    }

    fn held_frames(&self) -> u64 {
        0
    }

    /// Two pretend hosts, by the call's last digit (0, 1 -> relay-0; 2, 3 -> relay-1; ...).
    fn placement(&self, handle: &CallHandle) -> Option<String> {
        let last = handle.0.bytes().last()?;
        Some(format!("relay-{}", (last / 2) % 2))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_run_measures_media_calls_and_counts_passthrough() {
    let media = Arc::new(EncodedMedia::synthetic(3).unwrap());
    let mut config = LoadConfig::new(Mode::Fixed {
        calls: 6,
        duration: Duration::from_millis(1500),
    });
    config.passthrough_share = 0.5;
    config.quality_calls = 1;
    config.sample_interval = Duration::from_millis(250);
    config.seed = 3;
    // The synthetic signal is not speech: PESQ scores it, but no floor applies to it.
    config.service_level.min_pesq_a_to_b = 0.0;
    config.service_level.min_pesq_b_to_a = 0.0;
    let target = RelayTarget::default();
    let report = run_load(&target, media, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();

    let c = &report.calls;
    assert_eq!(c.attempted, 6);
    assert_eq!(c.transcoded + c.passthrough, 6, "{c:?}");
    assert!(
        c.passthrough > 0 && c.transcoded > 0,
        "the 0.5 share gives both kinds: {c:?}"
    );
    assert_eq!(c.refused + c.failed + c.release_errors, 0, "{c:?}");
    assert!(
        target.relays.lock().unwrap().is_empty(),
        "every call released"
    );

    let t = &report.total;
    assert_eq!(
        t.streams,
        2 * c.transcoded,
        "two measured streams per media call"
    );
    assert!(t.received > 0);
    assert_eq!(t.lost, 0, "{t:?}");
    assert_eq!(t.violations.total(), 0, "{:?}", t.violations);
    assert_eq!(t.latency.samples, t.received);
    // Per host: the media calls split over both, their figures summing to the total.
    assert_eq!(report.per_host.len(), 2, "{:?}", report.per_host);
    let calls: u64 = report.per_host.iter().map(|h| h.calls).sum();
    let expected: u64 = report.per_host.iter().map(|h| h.expected).sum();
    let lost: u64 = report.per_host.iter().map(|h| h.lost).sum();
    assert_eq!((calls, expected, lost), (c.transcoded, t.expected, t.lost));
    assert!(
        report.mos > 4.0,
        "a clean loopback path rates high: {}",
        report.mos
    );
    assert_eq!(
        report.quality.len(),
        2,
        "both directions of one sampled call"
    );
    for q in &report.quality {
        assert!(q.correlation > 0.9, "relayed audio is the reference: {q:?}");
        assert!(q.pesq_nb.is_some(), "every sampled stream scored: {q:?}");
    }
    assert_eq!(report.directions[0].pesq.streams, 1);
    assert_eq!(report.directions[1].pesq.streams, 1);
    assert!(
        report.directions[1].pesq.wb_mean.is_some(),
        "the Opus output has a WB score"
    );
    assert!(!report.timeline.is_empty());
    assert!(report.service_level_held, "{}", table::render(&report));

    let text = json::to_string(&report).unwrap();
    let back = json::from_str(&text).unwrap();
    assert_eq!(
        (&back.calls, back.total.received, back.timeline.len()),
        (&report.calls, report.total.received, report.timeline.len())
    );
    let page = html::render(&report);
    assert!(page.starts_with("<!DOCTYPE html>") && page.matches("<svg").count() >= 4);
    assert!(table::render(&report).contains("total"));
    assert!(table::render(&report).contains("loss per worker: relay-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_binds_to_the_media_ip() {
    let media = Arc::new(EncodedMedia::synthetic(2).unwrap());
    let mut config = LoadConfig::new(Mode::Fixed {
        calls: 2,
        duration: Duration::from_millis(800),
    });
    config.quality_calls = 0;
    // Another loopback address: the target must be told it, and send there.
    config.media_ip = "127.0.0.2".parse().unwrap();
    let target = RelayTarget::default();
    let report = run_load(&target, media, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let peers = target.peers.lock().unwrap().clone();
    assert_eq!(peers.len(), 4);
    assert!(peers.iter().all(|p| p.ip() == config.media_ip), "{peers:?}");
    assert!(report.total.received > 0);
    assert_eq!(report.total.lost, 0, "{:?}", report.total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_replaces_ended_calls() {
    let media = Arc::new(EncodedMedia::synthetic(2).unwrap());
    let mode = Mode::Churn {
        calls: 3,
        duration: Duration::from_millis(1500),
        min_call: Duration::from_millis(200),
        max_call: Duration::from_millis(500),
    };
    let mut config = LoadConfig::new(mode);
    config.quality_calls = 0;
    config.drain = Duration::from_millis(100);
    let target = RelayTarget::default();
    let report = run_load(&target, media, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    // Calls last at most 0.5 s of a 1.5 s run: ended calls were replaced.
    assert!(report.calls.attempted > 3, "{:?}", report.calls);
    assert_eq!(report.calls.peak_concurrent, 3);
    assert_eq!(report.total.violations.total(), 0);
    assert!(target.relays.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_against_a_full_target_still_ends_and_replaces_calls() {
    let media = Arc::new(EncodedMedia::synthetic(2).unwrap());
    let mode = Mode::Churn {
        calls: 3,
        duration: Duration::from_millis(1500),
        min_call: Duration::from_millis(200),
        max_call: Duration::from_millis(400),
    };
    let mut config = LoadConfig::new(mode);
    config.quality_calls = 0;
    config.drain = Duration::from_millis(50);
    // Room for two of the three: the third is refused on every try.
    let target = RelayTarget {
        capacity: 2,
        ..RelayTarget::default()
    };
    let report = run_load(&target, media, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let c = &report.calls;
    assert!(c.refused > 0, "{c:?}");
    // Calls of at most 0.4 s in a 1.5 s run: the admitted ones ended and were replaced.
    assert!(c.transcoded > 2, "{c:?}");
    assert!(target.relays.lock().unwrap().is_empty());
}

/// A ramp of 2 calls more every 600 ms, latency not part of its service level.
fn small_ramp() -> (Arc<EncodedMedia>, LoadConfig) {
    let media = Arc::new(EncodedMedia::synthetic(3).unwrap());
    let mode = Mode::Ramp {
        start_calls: 2,
        step_calls: 2,
        step_duration: Duration::from_millis(600),
        max_calls: 100,
    };
    let mut config = LoadConfig::new(mode);
    config.quality_calls = 0;
    config.sample_interval = Duration::from_millis(200);
    config.service_level.max_p99_ms = f64::INFINITY;
    (media, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_reports_the_highest_density_before_refusals() {
    let (media, mut config) = small_ramp();
    // Only refusals end this ramp: loopback latency is not what is under test.
    config.service_level.max_loss_pct = 100.0;
    let target = RelayTarget {
        capacity: 5,
        ..RelayTarget::default()
    };
    let report = run_load(&target, media, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let ramp = report.ramp.as_ref().expect("a ramp outcome");
    assert_eq!(ramp.highest_held, 4, "{ramp:?}");
    assert_eq!(
        ramp.steps
            .iter()
            .map(|s| (s.calls, s.held))
            .collect::<Vec<_>>(),
        vec![(2, true), (4, true), (5, false)]
    );
    assert!(
        ramp.stopped_because.contains("refused"),
        "{}",
        ramp.stopped_because
    );
    assert_eq!(report.calls.refused, 1);
    assert!(report.service_level_held);
    assert!(html::render(&report).contains("Ramp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_runs_a_broken_step_again_before_it_counts() {
    let (media, mut config) = small_ramp();
    config.service_level.max_loss_pct = 5.0;
    // The target goes deaf in the first step only, once its streams are up, as a host stall
    // would.
    let now = Instant::now();
    let target = RelayTarget {
        capacity: 5,
        mute: Some((
            now + Duration::from_millis(300),
            now + Duration::from_millis(700),
        )),
        ..RelayTarget::default()
    };
    let report = run_load(&target, media, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let ramp = report.ramp.as_ref().expect("a ramp outcome");
    let steps: Vec<_> = ramp.steps.iter().map(|s| (s.calls, s.held)).collect();
    assert_eq!(
        steps,
        vec![(2, false), (2, true), (4, true), (5, false)],
        "{ramp:?}"
    );
    assert_eq!(ramp.highest_held, 4);
    assert!(ramp.stopped_because.contains("refused"), "{ramp:?}");
}

#[test]
fn calls_are_spread_over_the_packet_time() {
    let media = Arc::new(EncodedMedia::synthetic(1).unwrap());
    let epoch = Instant::now();
    let pacer = Pacer::start(media.clone(), epoch).unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = sink.local_addr().unwrap();
    let logs: Vec<Arc<SendLog>> = (0..4).map(|_| Arc::new(SendLog::new(epoch))).collect();
    for (id, log) in logs.iter().enumerate() {
        let (socket, _) = leg();
        let stream = OutStream {
            socket: Arc::new(socket),
            dest,
            codec: MediaCodec::Pcmu,
            payload_type: 0,
            ssrc: id as u32,
            first_seq: 0,
            first_timestamp: 0,
            log: log.clone(),
            track: media.first_track(),
            impair: None,
        };
        // 1 ms of slots apart: wide enough to tell from a timer's slack on this machine.
        pacer.add(id as u64 * (SLOTS / 20), vec![stream]);
    }
    std::thread::sleep(Duration::from_millis(300));
    pacer.finish();
    // Call `id` plays in slot `id % SLOTS` of every 20 ms: each call here 1 ms after the one
    // before, not with it. A late tick only delays a send, so the earliest phase over several
    // frames is the slot's.
    let phase_us = |log: &SendLog| {
        (1..8)
            .map(|f| log.sent_at_us(f).expect("frame sent") % 20_000)
            .min()
            .unwrap_or_default()
    };
    let phases: Vec<u64> = logs.iter().map(|l| phase_us(l)).collect();
    for pair in phases.windows(2) {
        let gap = (pair[1] + 20_000 - pair[0]) % 20_000;
        assert!(
            (700..=1500).contains(&gap),
            "consecutive calls 1 ms apart: phases {phases:?} us"
        );
    }
}

#[test]
fn send_log_keeps_recent_frames_only() {
    let epoch = Instant::now();
    let log = SendLog::new(epoch);
    log.record(0, epoch + Duration::from_millis(5));
    assert_eq!(log.sent_at_us(0), Some(5_000));
    assert_eq!(log.sent_at_us(1), None);
    log.record(1024, epoch + Duration::from_millis(9));
    assert_eq!(
        log.sent_at_us(0),
        None,
        "overwritten by a frame one ring later"
    );
    assert_eq!(log.sent_at_us(1024), Some(9_000));
    assert_eq!(log.frames_sent(), 1025);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impairments_reach_the_wire_and_the_measurement() {
    let media = Arc::new(EncodedMedia::synthetic(2).unwrap());
    let mut config = LoadConfig::new(Mode::Fixed {
        calls: 2,
        duration: Duration::from_millis(1500),
    });
    config.quality_calls = 0;
    config.sample_interval = Duration::from_millis(250);
    // What A sends loses a fifth; what B receives is duplicated a tenth of the time and a tenth
    // is held back past the next packet.
    config.impairments.a_tx = "loss=20".parse().unwrap();
    config.impairments.b_rx = "dup=10,reorder=10".parse().unwrap();
    let target = RelayTarget::default();
    let report = run_load(&target, media, &config, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let (ab, ba) = (&report.directions[0].summary, &report.directions[1].summary);
    assert!(report.impaired_tx.dropped > 0, "{:?}", report.impaired_tx);
    assert!(
        ab.lost > 0,
        "A's dropped packets are lost on the way to B: {ab:?}"
    );
    assert!(report.impaired_rx.duplicated > 0 && report.impaired_rx.delayed > 0);
    // B receives the relayed A stream; A receives B's unimpaired.
    assert!(ab.duplicates > 0 && ab.reordered > 0, "{ab:?}");
    assert_eq!((ba.lost, ba.duplicates, ba.reordered), (0, 0, 0), "{ba:?}");
    assert!(table::render(&report).contains("impairments (seed"));
}
