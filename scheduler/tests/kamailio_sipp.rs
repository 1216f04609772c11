//! The real thing: Kamailio 5.6 (Debian `kamailio`, its rtpengine module) with SIPp placing
//! calls through it. The rtpengine set holds two bridgepool schedulers: the first (weight 100)
//! has no worker and answers `load limit`, so Kamailio asks the second, whose pool carries the
//! call: a PCMU caller (SIPp's RTP stream) and an Opus callee (SIPp echoing what it receives),
//! RTP both ways through the worker, torn down on BYE (`rtpengine_delete`). In the second test
//! both nodes are replicas over one worker, and the replica that took the offer is restarted
//! while the callee rings: Kamailio's answer and BYE reach a process that never saw the offer,
//! which completes the call from the state kept on the worker (issue 14). (Kamailio 5.6 never
//! moves a call's later commands to another node while its call -> node table holds the call:
//! with the offer's node dead they fail, "no available proxies".)
//! Skipped, loudly, when kamailio or sipp is missing (`scripts/setup.sh` installs them).

mod common;
mod ngpool;

use std::net::SocketAddr;
use std::process::Output;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CALLS: u32 = 3;

fn template(path: &str, vars: &[(&str, String)]) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kamailio/");
    let mut text = std::fs::read_to_string(format!("{dir}{path}")).unwrap();
    for (k, v) in vars {
        text = text.replace(k, v);
    }
    text
}

/// Three seconds of a 440 Hz tone in mu-law (raw: SIPp's rtp_stream sends it as PCMU).
fn tone(path: &Path) {
    let bytes: Vec<u8> = (0..24_000)
        .map(|i| {
            let x = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0;
            ulaw(x as i16)
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// G.711 mu-law of one sample (ITU-T G.711), for the test's own audio file.
fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = (s.min(32635) + BIAS) as u32;
    let exponent = (31 - s.leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Kamailio forks its workers: SIGKILL on the main process would leave them running, so it is
/// stopped with SIGTERM (it then ends its children), and killed only if that does not work.
struct Kamailio(std::process::Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_bound(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "kamailio never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Debian's multiarch folder holding rtpengine.so; `None` (the test skipped, loudly) when
/// kamailio, sipp or the module is missing.
fn kamailio_modules(test: &str) -> Option<std::path::PathBuf> {
    if !ngpool::have("kamailio", "-v") || !ngpool::have("sipp", "-v") {
        ngpool::skip(
            test,
            "kamailio or sipp (Debian kamailio, sip-tester) missing",
        );
        return None;
    }
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("kamailio/modules"))
        .find(|p| p.join("rtpengine.so").exists());
    if found.is_none() {
        ngpool::skip(
            test,
            "kamailio's rtpengine.so not found under /usr/lib/*/kamailio/modules",
        );
    }
    found
}

/// The callee's 180 and its pause before the 200 (nothing when it answers at once).
fn ring(ms: u32) -> String {
    if ms == 0 {
        return String::new();
    }
    let ringing = "SIP/2.0 180 Ringing\n[last_Via:]\n[last_From:]\n\
                   [last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n\
                   [last_Record-Route:]\nContact: <sip:opus@[local_ip]:[local_port]>\n\
                   Content-Length: 0\n";
    format!("<send><![CDATA[\n{ringing}\n]]></send>\n  <pause milliseconds=\"{ms}\"/>")
}

/// Kamailio with the set (`first` weight 100, `second` weight 1) and a SIPp Opus callee that
/// rings `answer_delay_ms` before answering; all stopped when dropped.
struct Sip {
    dir: std::path::PathBuf,
    sip_port: u16,
    _kamailio: Kamailio,
    _uas: ngpool::Proc,
}

impl Sip {
    fn start(
        mpath: &Path,
        name: &str,
        first: SocketAddr,
        second: SocketAddr,
        answer_delay_ms: u32,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("bp-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        tone(&dir.join("tone.ulaw"));
        let sip_port = ngpool::free_udp().port();
        let uas_port = ngpool::free_udp().port();
        let vars = [
            ("@SIP_PORT@", sip_port.to_string()),
            ("@UAS_PORT@", uas_port.to_string()),
            ("@NG@", second.to_string()),
            ("@FULL_NG@", first.to_string()),
            ("@AUDIO@", dir.join("tone.ulaw").display().to_string()),
            ("@MPATH@", format!("{}/", mpath.display())),
            ("@RING@", ring(answer_delay_ms)),
        ];
        for f in ["kamailio.cfg.in", "uac_pcmu.xml", "uas_opus.xml"] {
            let out = dir.join(f.trim_end_matches(".in"));
            std::fs::write(out, template(f, &vars)).unwrap();
        }
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        let kamailio = Kamailio(
            Command::new("kamailio")
                .args(["-f", &dir.join("kamailio.cfg").display().to_string()])
                .args(["-DD", "-E", "-w", &dir.display().to_string()])
                .args(["-P", &dir.join("kamailio.pid").display().to_string()])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        wait_bound(sip_port);
        let uas = ngpool::Proc(
            Command::new("sipp")
                .args(["-sf", &dir.join("uas_opus.xml").display().to_string()])
                .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
                .args(["-mp", &ngpool::free_udp().port().to_string(), "-rtp_echo"])
                .args(["-cp", &ngpool::free_udp().port().to_string()])
                .args(["-m", &CALLS.to_string(), "-timeout", "60s", "-nostdin"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        Self {
            dir,
            sip_port,
            _kamailio: kamailio,
            _uas: uas,
        }
    }

    /// The SIPp caller placing `calls` calls (one at a time); its output when it is done.
    fn call(&self, calls: u32) -> tokio::task::JoinHandle<Output> {
        let (dir, sip_port) = (self.dir.clone(), self.sip_port);
        tokio::task::spawn_blocking(move || {
            Command::new("sipp")
                .args(["-sf", &dir.join("uac_pcmu.xml").display().to_string()])
                .arg(format!("127.0.0.1:{sip_port}"))
                .args([
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &ngpool::free_udp().port().to_string(),
                ])
                .args(["-m", &calls.to_string(), "-l", "1", "-r", "1"])
                .args(["-mp", &ngpool::free_udp().port().to_string()])
                .args(["-cp", &ngpool::free_udp().port().to_string()])
                .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
                .args(["-trace_err", "-trace_msg"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    /// Asserts the caller's calls all completed.
    fn assert_completed(&self, uac: &Output) {
        assert!(
            uac.status.success(),
            "SIPp caller failed ({:?}): {}\nkamailio log:\n{}\nfiles in {}",
            uac.status,
            String::from_utf8_lossy(&uac.stderr),
            self.log(),
            self.dir.display()
        );
    }

    /// Waits until the worker behind `metrics` carried RTP both ways for `calls` sessions and
    /// the BYEs removed them all.
    async fn assert_media_and_teardown(&self, metrics: SocketAddr, calls: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let w = ngpool::scrape(metrics);
            let a_in = ngpool::metric(&w, "bridgepool_worker_packets_in_total{leg=\"a\"}");
            let b_in = ngpool::metric(&w, "bridgepool_worker_packets_in_total{leg=\"b\"}");
            let created = ngpool::metric(&w, "bridgepool_worker_sessions_created_total");
            let live = ngpool::metric(&w, "bridgepool_worker_sessions{");
            if a_in >= 50.0 && b_in >= 50.0 && created >= f64::from(calls) && live == 0.0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "a_in {a_in} b_in {b_in} created {created} live {live}; kamailio log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Sip {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn served(metrics: SocketAddr, command: &str) -> f64 {
    ngpool::metric(
        &ngpool::scrape(metrics),
        &format!("bridgepool_scheduler_ng_requests_total{{command=\"{command}\",outcome=\"ok\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn kamailio_sipp_call_through_the_pool_after_a_load_limit() {
    let test = "kamailio_sipp_call_through_the_pool_after_a_load_limit";
    let Some(mpath) = kamailio_modules(test) else {
        return;
    };
    let pool = ngpool::start("ks-w1", "0.01", 43000).await;
    let (_full, full_ng, full_metrics) = ngpool::start_empty_scheduler();
    let sip = Sip::start(&mpath, "kamailio", full_ng, pool.ng, 0);
    let uac = sip.call(CALLS).await.unwrap();
    sip.assert_completed(&uac);
    let full = ngpool::scrape(full_metrics);
    let limited = ngpool::metric(
        &full,
        "bridgepool_scheduler_ng_requests_total{command=\"offer\",outcome=\"load_limit\"}",
    );
    assert!(
        limited >= 1.0,
        "the weight-100 node never answered load limit:\n{full}"
    );
    let offers = served(pool.scheduler_metrics, "offer");
    assert!(
        offers >= f64::from(CALLS),
        "offers served by the pool: {offers}"
    );
    // The worker carried RTP both ways and the BYEs tore the sessions down.
    sip.assert_media_and_teardown(pool.worker_metrics, CALLS)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kamailio_answer_reaches_a_replica_that_never_saw_the_offer() {
    let test = "kamailio_answer_reaches_a_replica_that_never_saw_the_offer";
    let Some(mpath) = kamailio_modules(test) else {
        return;
    };
    let mut pool = common::Pool::start(
        2,
        &[
            "--media-ip",
            "127.0.0.1",
            "--rtp-port-min",
            "47800",
            "--rtp-port-max",
            "47999",
        ],
    )
    .await;
    let replicas = pool.replicas.clone();
    // The callee rings 4 s: time to see which replica served the offer and to restart it.
    let sip = Sip::start(
        &mpath,
        "kamailio-restart",
        replicas[0].ng,
        replicas[1].ng,
        4000,
    );
    let uac = sip.call(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let offered = loop {
        if let Some(i) = (0..2).find(|&i| served(replicas[i].metrics, "offer") >= 1.0) {
            break i;
        }
        assert!(Instant::now() < deadline, "no offer served:\n{}", sip.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Kamailio keeps sending this call to that node (its call -> node table); the process
    // there now is a new one that knows nothing of the call.
    pool.kill(offered);
    pool.restart(offered);
    replicas[offered].wait_for_worker().await;
    let uac = uac.await.unwrap();
    sip.assert_completed(&uac);
    let restarted = replicas[offered].metrics;
    assert_eq!(served(restarted, "offer"), 0.0, "a new process");
    assert!(served(restarted, "answer") >= 1.0, "{}", sip.log());
    assert!(served(restarted, "delete") >= 1.0, "{}", sip.log());
    sip.assert_media_and_teardown(pool.worker_metrics, 1).await;
}
