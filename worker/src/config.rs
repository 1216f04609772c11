//! Command line and environment (`BRIDGEPOOL_*`) for the worker. Options arrive as text and are
//! checked together, so an operator sees every bad option in one go, not one per restart.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::engine::EngineConfig;

/// bridgepool worker: transcodes G.711 <-> Opus RTP on pinned media threads.
#[derive(Clone, Debug, Parser)]
#[command(name = "bridgepool-worker", version)]
pub struct WorkerArgs {
    /// gRPC listen address (Worker service, health, reflection); loopback unless given.
    #[arg(
        long,
        env = "BRIDGEPOOL_GRPC_LISTEN",
        default_value = "127.0.0.1:50061"
    )]
    pub grpc_listen: String,
    /// Endpoint schedulers use to reach this worker (default: http://<advertise ip>:<grpc port>).
    #[arg(long, env = "BRIDGEPOOL_GRPC_ADVERTISE")]
    pub grpc_advertise: Option<String>,
    /// Prometheus /metrics listen address; loopback unless given.
    #[arg(
        long,
        env = "BRIDGEPOOL_METRICS_LISTEN",
        default_value = "127.0.0.1:9102"
    )]
    pub metrics_listen: String,
    /// Address RTP sockets bind to.
    #[arg(long, env = "BRIDGEPOOL_MEDIA_IP", default_value = "127.0.0.1")]
    pub media_ip: String,
    /// Address advertised to peers in place of the media IP (behind NAT).
    #[arg(long, env = "BRIDGEPOOL_ADVERTISE_IP")]
    pub advertise_ip: Option<String>,
    /// Lowest RTP port.
    #[arg(long, env = "BRIDGEPOOL_RTP_PORT_MIN", default_value = "30000")]
    pub rtp_port_min: String,
    /// Highest RTP/RTCP port.
    #[arg(long, env = "BRIDGEPOOL_RTP_PORT_MAX", default_value = "39999")]
    pub rtp_port_max: String,
    /// Media cores, comma separated (default: every core).
    #[arg(long, env = "BRIDGEPOOL_CORES", default_value = "")]
    pub cores: String,
    /// Busy share of a media core up to which sessions are admitted (0.05..0.95).
    #[arg(long, env = "BRIDGEPOOL_ADMISSION_BUSY", default_value = "0.8")]
    pub admission_busy: String,
    /// Core share of one talking two-way session (e.g. 0.005), used instead of the start-up
    /// calibration: a known, fixed capacity of admission-busy / session-cost per media core.
    #[arg(long, env = "BRIDGEPOOL_SESSION_COST")]
    pub session_cost: Option<String>,
    /// Correct the session cost live from what talking sessions measure (false: keep the
    /// calibrated or given cost). Takes true/false like --busy-poll.
    #[arg(
        long,
        env = "BRIDGEPOOL_LIVE_COST",
        default_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub live_cost: bool,
    /// Media threads spin on their sockets instead of sleeping: lower latency, but each media
    /// core shows 100 % CPU whatever the load (admission still counts work only).
    /// Needs --cores to leave a core free. The variable takes true/false, yes/no, on/off, y/n,
    /// t/f or 1/0; anything else is an error.
    #[arg(long, env = "BRIDGEPOOL_BUSY_POLL", value_parser = clap::builder::BoolishValueParser::new())]
    pub busy_poll: bool,
    /// Scheduler endpoint to register with; repeat (or comma separate) for every replica.
    #[arg(
        long = "scheduler",
        env = "BRIDGEPOOL_SCHEDULERS",
        value_delimiter = ','
    )]
    pub schedulers: Vec<String>,
    /// Worker id (default: the host name).
    #[arg(long, env = "BRIDGEPOOL_WORKER_ID")]
    pub worker_id: Option<String>,
    /// After a drain starts, sessions still live at this deadline are ended.
    #[arg(long, env = "BRIDGEPOOL_DRAIN_DEADLINE", default_value = "3600s")]
    pub drain_deadline: String,
    /// No RTP on both legs for this long ends a session.
    #[arg(long, env = "BRIDGEPOOL_SESSION_TIMEOUT", default_value = "60s")]
    pub session_timeout: String,
    /// Interval between heartbeats to schedulers.
    #[arg(long, env = "BRIDGEPOOL_HEARTBEAT_INTERVAL", default_value = "1s")]
    pub heartbeat_interval: String,
    /// Server certificate (PEM) to serve gRPC over TLS.
    #[arg(long, env = "BRIDGEPOOL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "BRIDGEPOOL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) whose client certificates are required (mutual TLS).
    #[arg(long, env = "BRIDGEPOOL_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// OTLP/gRPC endpoint for traces (off when unset).
    #[arg(long, env = "BRIDGEPOOL_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "BRIDGEPOOL_LOG", default_value = "info")]
    pub log: String,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// Endpoint schedulers dial.
    pub grpc_advertise: String,
    /// Metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Media engine settings.
    pub engine: EngineConfig,
    /// Scheduler endpoints.
    pub schedulers: Vec<String>,
    /// This worker's id.
    pub worker_id: String,
    /// Drain deadline.
    pub drain_deadline: Duration,
    /// Media timeout.
    pub session_timeout: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// TLS (cert, key, optional client CA).
    pub tls: Option<TlsFiles>,
    /// OTLP endpoint.
    pub otlp_endpoint: Option<String>,
    /// Log filter.
    pub log: String,
}

/// TLS material paths.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// Client CA for mutual TLS.
    pub client_ca: Option<PathBuf>,
}

/// One bad option.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--{option}: {problem}")]
pub struct OptionError {
    /// The flag.
    pub option: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl WorkerArgs {
    /// Checks every option; returns all problems at once.
    pub fn validate(&self) -> Result<WorkerConfig, Vec<OptionError>> {
        let mut errors = Vec::new();
        let mut bad = |option: &'static str, problem: String| {
            errors.push(OptionError { option, problem });
        };
        let grpc_listen = parse::<SocketAddr>(&self.grpc_listen, "grpc-listen", &mut bad);
        let metrics_listen = parse::<SocketAddr>(&self.metrics_listen, "metrics-listen", &mut bad);
        let media_ip = parse::<IpAddr>(&self.media_ip, "media-ip", &mut bad);
        let advertise_ip = self
            .advertise_ip
            .as_deref()
            .and_then(|s| parse::<IpAddr>(s, "advertise-ip", &mut bad));
        let port_min = parse::<u16>(&self.rtp_port_min, "rtp-port-min", &mut bad);
        let port_max = parse::<u16>(&self.rtp_port_max, "rtp-port-max", &mut bad);
        if let (Some(min), Some(max)) = (port_min, port_max)
            && max <= min + 2
        {
            bad(
                "rtp-port-max",
                format!("{max} leaves no RTP/RTCP pair above --rtp-port-min {min}"),
            );
        }
        let mut cores = Vec::new();
        for part in self
            .cores
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match part.parse::<usize>() {
                Ok(c) => cores.push(c),
                Err(_) => bad("cores", format!("'{part}' is not a core number")),
            }
        }
        // A process confined (taskset, cgroup cpuset) to some of the asked cores runs on those
        // and says so at start (see the engine); only none at all is an error.
        if let Some(available) = core_affinity::get_core_ids()
            && !cores.is_empty()
            && !cores.iter().any(|c| available.iter().any(|a| a.id == *c))
        {
            bad(
                "cores",
                format!(
                    "none of {cores:?} is available to this process (it may run on {:?})",
                    available.iter().map(|a| a.id).collect::<Vec<_>>()
                ),
            );
        }
        if self.busy_poll {
            let available = core_affinity::get_core_ids().map_or(0, |a| a.len());
            let media = cores
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            if media == 0 || media >= available {
                bad(
                    "busy-poll",
                    format!(
                        "needs --cores to leave at least one of the {available} cores to the \
                         control threads and the kernel (media threads spinning on every core \
                         starve them)"
                    ),
                );
            }
        }
        for s in &self.schedulers {
            if !(s.starts_with("http://") || s.starts_with("https://")) {
                bad(
                    "scheduler",
                    format!("'{s}' must be an http:// or https:// URL"),
                );
            }
        }
        let target_busy = parse::<f64>(&self.admission_busy, "admission-busy", &mut bad);
        if let Some(b) = target_busy
            && !(0.01..=0.95).contains(&b)
        {
            bad(
                "admission-busy",
                format!("{b} is not between 0.01 and 0.95"),
            );
        }
        let session_cost = self
            .session_cost
            .as_deref()
            .and_then(|s| parse::<f64>(s, "session-cost", &mut bad));
        if let Some(c) = session_cost
            && !(1e-5..=1.0).contains(&c)
        {
            bad(
                "session-cost",
                format!("{c} is not a core share between 0.00001 and 1"),
            );
        }
        let drain_deadline = duration(&self.drain_deadline, "drain-deadline", &mut bad);
        let session_timeout = duration(&self.session_timeout, "session-timeout", &mut bad);
        let heartbeat_interval = duration(&self.heartbeat_interval, "heartbeat-interval", &mut bad);
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                for (opt, p) in [("tls-cert", cert), ("tls-key", key)] {
                    if !p.is_file() {
                        bad(opt, format!("{} is not a readable file", p.display()));
                    }
                }
                Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                })
            }
            (None, None) if self.tls_client_ca.is_some() => {
                bad("tls-client-ca", "needs --tls-cert and --tls-key".to_owned());
                None
            }
            (None, None) => None,
            _ => {
                bad(
                    "tls-cert",
                    "--tls-cert and --tls-key go together".to_owned(),
                );
                None
            }
        };
        let worker_id = self.worker_id.clone().unwrap_or_else(hostname);
        if worker_id.is_empty() || worker_id.contains('/') {
            bad(
                "worker-id",
                format!("'{worker_id}' must be non-empty without '/'"),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (
            Some(grpc_listen),
            Some(metrics_listen),
            Some(media_ip),
            Some(port_min),
            Some(port_max),
            Some(drain_deadline),
            Some(session_timeout),
            Some(heartbeat_interval),
            Some(target_busy),
        ) = (
            grpc_listen,
            metrics_listen,
            media_ip,
            port_min,
            port_max,
            drain_deadline,
            session_timeout,
            heartbeat_interval,
            target_busy,
        )
        else {
            return Err(errors);
        };
        let advertised = advertise_ip.unwrap_or(media_ip);
        let grpc_advertise = self.grpc_advertise.clone().unwrap_or_else(|| {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!(
                "{scheme}://{}",
                SocketAddr::new(advertised, grpc_listen.port())
            )
        });
        Ok(WorkerConfig {
            grpc_listen,
            grpc_advertise,
            metrics_listen,
            engine: EngineConfig {
                cores,
                media_ip,
                advertise_ip,
                port_min,
                port_max,
                latch_window: Duration::from_secs(3),
                pin: true,
                target_busy,
                busy_poll: self.busy_poll,
                session_cost,
                live_cost: self.live_cost,
            },
            schedulers: self.schedulers.clone(),
            worker_id,
            drain_deadline,
            session_timeout,
            heartbeat_interval,
            tls,
            otlp_endpoint: self.otlp_endpoint.clone(),
            log: self.log.clone(),
        })
    }
}

fn parse<T: std::str::FromStr>(
    text: &str,
    option: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    match text.trim().parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            bad(option, format!("'{text}': {e}"));
            None
        }
    }
}

fn duration(
    text: &str,
    option: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<Duration> {
    match parse_duration(text) {
        Some(d) => Some(d),
        None => {
            bad(
                option,
                format!("'{text}' is not a duration like 500ms, 60s, 5m or 1h"),
            );
            None
        }
    }
}

/// Parses `500ms`, `60s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_poll_is_off_unless_asked_for_and_leaves_a_core() {
        let validate = |args: &[&str]| {
            let mut argv = vec!["bridgepool-worker", "--scheduler", "http://s:50051"];
            argv.extend_from_slice(args);
            WorkerArgs::parse_from(argv).validate()
        };
        assert!(!validate(&[]).expect("valid").engine.busy_poll);
        // Spinning on every core (the default media set) would starve the control threads.
        let errors = validate(&["--busy-poll"]).unwrap_err();
        assert_eq!(errors[0].option, "busy-poll", "{errors:?}");
        let cores = core_affinity::get_core_ids().map_or(0, |c| c.len());
        if cores > 1 {
            let config = validate(&["--busy-poll", "--cores", "0"]).expect("valid");
            assert!(config.engine.busy_poll);
        }
    }

    #[test]
    fn control_listeners_default_to_loopback() {
        let config = WorkerArgs::parse_from(["bridgepool-worker", "--scheduler", "http://s:50051"])
            .validate()
            .expect("valid");
        assert!(
            config.grpc_listen.ip().is_loopback(),
            "{}",
            config.grpc_listen
        );
        assert!(
            config.metrics_listen.ip().is_loopback(),
            "{}",
            config.metrics_listen
        );
    }

    #[test]
    fn every_bad_option_is_reported_at_once() {
        let args = WorkerArgs::parse_from([
            "bridgepool-worker",
            "--grpc-listen",
            "nowhere",
            "--media-ip",
            "300.1.1.1",
            "--rtp-port-min",
            "40000",
            "--rtp-port-max",
            "40001",
            "--session-timeout",
            "soon",
            "--scheduler",
            "scheduler:50051",
            "--cores",
            "0,x",
        ]);
        let errors = args.validate().unwrap_err();
        let options: Vec<&str> = errors.iter().map(|e| e.option).collect();
        for expected in [
            "grpc-listen",
            "media-ip",
            "rtp-port-max",
            "session-timeout",
            "scheduler",
            "cores",
        ] {
            assert!(
                options.contains(&expected),
                "{expected} missing from {options:?}"
            );
        }
    }

    #[test]
    fn defaults_are_valid() {
        let config = WorkerArgs::parse_from(["bridgepool-worker"])
            .validate()
            .unwrap();
        assert_eq!(config.session_timeout, Duration::from_secs(60));
        assert_eq!(config.grpc_advertise, "http://127.0.0.1:50061");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("1d"), None);
    }
}
