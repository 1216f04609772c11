//! `--target ng`: the loadgen's rtpengine client drives the embedded pool's own ng front door
//! (offer/answer as an rtpengine set), half the calls answered with a shared codec: those are
//! passed through by the worker (relayed, not transcoded), the others transcoded; media flows
//! both ways on every call.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use bridgepool_loadgen::config::{LoadConfig, Mode};
use bridgepool_loadgen::media::EncodedMedia;
use bridgepool_loadgen::run_load;
use bridgepool_loadgen::targets::Target;
use bridgepool_loadgen::targets::rtpengine::RtpengineTarget;
use bridgepool_proto::v1;
use bridgepool_proto::v1::scheduler_client::SchedulerClient;

#[tokio::test(flavor = "multi_thread")]
async fn offer_answer_through_the_pools_ng_port() {
    let ng = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = bridgepool_loadgen::pool::start_with_ng(46000, Some(ng))
        .await
        .unwrap();
    let target = RtpengineTarget::new(ng, Duration::from_secs(1), 2).named("bridgepool-ng");
    assert_eq!(target.name(), "bridgepool-ng");
    let mut up = false;
    for _ in 0..100 {
        if target.ping().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the scheduler answers ping on {ng}");
    // The worker registers by heartbeat: wait until the scheduler lists it ready.
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(mut c) = SchedulerClient::connect(format!("http://{}", pool.scheduler)).await
            && let Ok(w) = c.list_workers(v1::ListWorkersRequest {}).await
            && w.into_inner()
                .workers
                .iter()
                .any(|w| w.state == v1::WorkerState::Ready as i32)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the embedded worker never registered");
    let media = EncodedMedia::synthetic(4).unwrap();
    let mut config = LoadConfig::new(Mode::Fixed {
        calls: 4,
        duration: Duration::from_secs(3),
    });
    config.quality_calls = 0;
    config.passthrough_share = 0.5;
    let report = run_load(
        &target,
        Arc::new(media),
        &config,
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    let c = &report.calls;
    assert_eq!(c.refused + c.failed, 0, "{c:?}");
    assert_eq!(c.transcoded, 2, "{c:?}");
    assert_eq!(c.relayed, 2, "the shared-codec calls are relayed: {c:?}");
    assert_eq!(c.release_errors, 0, "{c:?}");
    for d in &report.directions {
        assert!(d.summary.received > 0, "{}: {:?}", d.name, d.summary);
        assert_eq!(d.summary.violations.payload_type, 0, "{}", d.name);
    }
}
