//! End to end against a real rtpengine (userspace, loopback), when the `rtpengine` binary is
//! installed (Debian: rtpengine-daemon); skipped with a printed reason otherwise.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bridgepool_loadgen::config::{LoadConfig, Mode};
use bridgepool_loadgen::media::EncodedMedia;
use bridgepool_loadgen::media::client::ClientMix;
use bridgepool_loadgen::report::table;
use bridgepool_loadgen::run_load;
use bridgepool_loadgen::targets::rtpengine::RtpengineTarget;

/// Kills the daemon this test started, whatever happens.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rtpengine_binary() -> Option<String> {
    let paths = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join("rtpengine"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcoding_calls_through_rtpengine() {
    let Some(binary) = rtpengine_binary() else {
        println!("skipped: rtpengine is not installed (apt-get install rtpengine-daemon)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("loadgen-rtpengine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ng_port = free_udp_port();
    // A port range of its own per test process, away from other users of the machine.
    let port_min = 41_000 + (std::process::id() % 80) as u16 * 100;
    let config_path = dir.join("rtpengine.conf");
    let mut f = std::fs::File::create(&config_path).unwrap();
    write!(
        f,
        "[rtpengine]\ntable = -1\ninterface = 127.0.0.1\nlisten-ng = 127.0.0.1:{ng_port}\nforeground = true\n\
         log-stderr = true\nlog-level = 4\nport-min = {port_min}\nport-max = {}\ntimeout = 60\ndelete-delay = 0\n\
         pidfile = {}\n",
        port_min + 99,
        dir.join("rtpengine.pid").display()
    )
    .unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config-file={}", config_path.display()))
        .arg("--num-threads=1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        println!("skipped: {binary} did not start");
        return;
    };
    let _daemon = Daemon(child);
    let ng: SocketAddr = format!("127.0.0.1:{ng_port}").parse().unwrap();
    let target = RtpengineTarget::new(ng, Duration::from_millis(200), 0);
    let mut up = false;
    for _ in 0..50 {
        if target.ping().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "rtpengine answers ping on {ng}");

    // The client load of one real voice, as the density scripts play it.
    let voice = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/en_female_48k.wav"
    );
    let media = EncodedMedia::client_load(&[voice.into()], ClientMix::default())
        .or_else(|_| EncodedMedia::synthetic(4))
        .unwrap();
    let mut config = LoadConfig::new(Mode::Fixed {
        calls: 2,
        duration: Duration::from_secs(3),
    });
    config.quality_calls = 1;
    config.passthrough_share = 0.0;
    let target = RtpengineTarget::new(ng, Duration::from_secs(1), 2);
    let report = run_load(
        &target,
        Arc::new(media),
        &config,
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    println!("{}", table::render(&report));

    assert_eq!(report.calls.transcoded, 2, "{:?}", report.calls);
    assert_eq!(report.calls.release_errors, 0);
    for d in &report.directions {
        let s = &d.summary;
        assert!(
            s.received > 0,
            "{}: rtpengine sends transcoded media: {s:?}",
            d.name
        );
        assert_eq!(s.violations.ssrc_change, 0, "{}", d.name);
        assert_eq!(s.violations.payload_type, 0, "{}", d.name);
        assert_eq!(s.negative_latency, 0, "{}", d.name);
    }
    for q in &report.quality {
        assert!(
            q.correlation > 0.5,
            "rtpengine's transcoded audio resembles the input: {q:?}"
        );
        // rtpengine 10.5 scores about 3.8-3.9 both ways (issue 10): far above broken audio.
        assert!(
            q.pesq_nb.is_some_and(|p| p > 3.0),
            "rtpengine's transcoded audio scores as speech: {q:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
