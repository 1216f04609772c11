//! The real thing: Kamailio 5.6 (Debian `kamailio`, its rtpengine module) with SIPp placing
//! calls through it. The rtpengine set holds two bridgepool schedulers: the first (weight 100)
//! has no worker and answers `load limit`, so Kamailio asks the second, whose pool carries the
//! call: a PCMU caller (SIPp's RTP stream) and an Opus callee (SIPp echoing what it receives),
//! RTP both ways through the worker, torn down on BYE (`rtpengine_delete`).
//! Skipped, loudly, when kamailio or sipp is missing (`scripts/setup.sh` installs them).

mod common;
mod ngpool;

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

#[tokio::test(flavor = "multi_thread")]
async fn kamailio_sipp_call_through_the_pool_after_a_load_limit() {
    if !ngpool::have("kamailio", "-v") || !ngpool::have("sipp", "-v") {
        ngpool::skip(
            "kamailio_sipp_call_through_the_pool_after_a_load_limit",
            "kamailio or sipp (Debian kamailio, sip-tester) missing",
        );
        return;
    }
    // Debian's multiarch module folder.
    let Some(mpath) = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("kamailio/modules"))
        .find(|p| p.join("rtpengine.so").exists())
    else {
        ngpool::skip(
            "kamailio_sipp_call_through_the_pool_after_a_load_limit",
            "kamailio's rtpengine.so not found under /usr/lib/*/kamailio/modules",
        );
        return;
    };
    let pool = ngpool::start("ks-w1", "0.01", 43000).await;
    let (_full, full_ng, full_metrics) = ngpool::start_empty_scheduler();
    let dir = std::env::temp_dir().join(format!("bp-kamailio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let audio = dir.join("tone.ulaw");
    tone(&audio);
    let sip_port = ngpool::free_udp().port();
    let uas_port = ngpool::free_udp().port();
    let uac_port = ngpool::free_udp().port();
    let echo_port = ngpool::free_udp().port();
    let uac_media = ngpool::free_udp().port();
    let vars = [
        ("@SIP_PORT@", sip_port.to_string()),
        ("@UAS_PORT@", uas_port.to_string()),
        ("@NG@", pool.ng.to_string()),
        ("@FULL_NG@", full_ng.to_string()),
        ("@AUDIO@", audio.display().to_string()),
        ("@MPATH@", format!("{}/", mpath.display())),
    ];
    for f in ["kamailio.cfg.in", "uac_pcmu.xml", "uas_opus.xml"] {
        let out = dir.join(f.trim_end_matches(".in"));
        std::fs::write(out, template(f, &vars)).unwrap();
    }
    let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
    let _kamailio = Kamailio(
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
    let _uas = ngpool::Proc(
        Command::new("sipp")
            .args(["-sf", &dir.join("uas_opus.xml").display().to_string()])
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-mp", &echo_port.to_string(), "-rtp_echo"])
            .args(["-cp", &ngpool::free_udp().port().to_string()])
            .args(["-m", &CALLS.to_string(), "-timeout", "60s", "-nostdin"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let uac_dir = dir.clone();
    let uac = tokio::task::spawn_blocking(move || {
        Command::new("sipp")
            .args(["-sf", &uac_dir.join("uac_pcmu.xml").display().to_string()])
            .arg(format!("127.0.0.1:{sip_port}"))
            .args(["-i", "127.0.0.1", "-p", &uac_port.to_string()])
            .args(["-m", &CALLS.to_string(), "-l", "1", "-r", "1"])
            .args(["-mp", &uac_media.to_string()])
            .args(["-cp", &ngpool::free_udp().port().to_string()])
            .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
            .args(["-trace_err", "-trace_msg"])
            .current_dir(&uac_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let kam_log = std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default();
    assert!(
        uac.status.success(),
        "SIPp caller failed ({:?}): {}\nkamailio log:\n{kam_log}\nfiles in {}",
        uac.status,
        String::from_utf8_lossy(&uac.stderr),
        dir.display()
    );
    let full = ngpool::scrape(full_metrics);
    let limited = ngpool::metric(
        &full,
        "bridgepool_scheduler_ng_requests_total{command=\"offer\",outcome=\"load_limit\"}",
    );
    assert!(
        limited >= 1.0,
        "the weight-100 node never answered load limit:\n{full}"
    );
    let sched = ngpool::scrape(pool.scheduler_metrics);
    let offers = ngpool::metric(
        &sched,
        "bridgepool_scheduler_ng_requests_total{command=\"offer\",outcome=\"ok\"}",
    );
    assert!(
        offers >= f64::from(CALLS),
        "offers served by the pool: {offers}"
    );
    // The worker carried RTP both ways and the BYEs tore the sessions down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let w = ngpool::scrape(pool.worker_metrics);
        let a_in = ngpool::metric(&w, "bridgepool_worker_packets_in_total{leg=\"a\"}");
        let b_in = ngpool::metric(&w, "bridgepool_worker_packets_in_total{leg=\"b\"}");
        let created = ngpool::metric(&w, "bridgepool_worker_sessions_created_total");
        let live = ngpool::metric(&w, "bridgepool_worker_sessions{");
        if a_in >= 50.0 && b_in >= 50.0 && created >= f64::from(CALLS) && live == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a_in {a_in} b_in {b_in} created {created} live {live}; kamailio log:\n{kam_log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
