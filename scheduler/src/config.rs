//! Command line and environment (`BRIDGEPOOL_*`) for the scheduler, checked together so every bad
//! option is reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// bridgepool scheduler: decides passthrough or transcode and places sessions on workers.
#[derive(Clone, Debug, Parser)]
#[command(name = "bridgepool-scheduler", version)]
pub struct SchedulerArgs {
    /// gRPC listen address (Scheduler service, health, reflection); loopback unless given.
    #[arg(
        long,
        env = "BRIDGEPOOL_GRPC_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub grpc_listen: String,
    /// Prometheus /metrics listen address; loopback unless given.
    #[arg(
        long,
        env = "BRIDGEPOOL_METRICS_LISTEN",
        default_value = "127.0.0.1:9101"
    )]
    pub metrics_listen: String,
    /// A worker silent for this long is lost.
    #[arg(long, env = "BRIDGEPOOL_WORKER_LEASE", default_value = "3s")]
    pub worker_lease: String,
    /// Timeout of a call to a worker (a dead worker must not stall the relay).
    #[arg(long, env = "BRIDGEPOOL_WORKER_TIMEOUT", default_value = "2s")]
    pub worker_timeout: String,
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
    /// UDP address of the ng control protocol (rtpengine `transform`, ping, delete...); off unless set.
    #[arg(long, env = "BRIDGEPOOL_NG_LISTEN")]
    pub ng_listen: Option<String>,
    /// ng datagrams per second accepted from one source IP (excess dropped and counted); 0: no limit.
    #[arg(long, env = "BRIDGEPOOL_NG_RATE_LIMIT", default_value_t = 2000)]
    pub ng_rate_limit: u32,
    /// Seconds an offer/answer call is kept after a `delete` without a `delete delay` key, its
    /// media stopped, so that late signalling still finds it (rtpengine's delete-delay, 30 s).
    #[arg(long, env = "BRIDGEPOOL_NG_DELETE_DELAY", default_value_t = 30)]
    pub ng_delete_delay: u32,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// Metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Worker lease.
    pub worker_lease: Duration,
    /// Worker call timeout.
    pub worker_timeout: Duration,
    /// TLS material: (cert, key, client CA).
    pub tls: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    /// OTLP endpoint.
    pub otlp_endpoint: Option<String>,
    /// Log filter.
    pub log: String,
    /// ng listen address, if the ng server is on.
    pub ng_listen: Option<SocketAddr>,
    /// ng datagrams per second per source IP; 0: no limit.
    pub ng_rate_limit: u32,
    /// Default `delete delay` of offer/answer calls, seconds.
    pub ng_delete_delay: u32,
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

impl SchedulerArgs {
    /// Checks every option; returns all problems at once.
    pub fn validate(&self) -> Result<SchedulerConfig, Vec<OptionError>> {
        let mut errors = Vec::new();
        let mut bad =
            |option: &'static str, problem: String| errors.push(OptionError { option, problem });
        let grpc_listen = self.grpc_listen.parse::<SocketAddr>();
        if let Err(e) = &grpc_listen {
            bad("grpc-listen", format!("'{}': {e}", self.grpc_listen));
        }
        let metrics_listen = self.metrics_listen.parse::<SocketAddr>();
        if let Err(e) = &metrics_listen {
            bad("metrics-listen", format!("'{}': {e}", self.metrics_listen));
        }
        let lease = parse_duration(&self.worker_lease);
        if lease.is_none() {
            bad(
                "worker-lease",
                format!("'{}' is not a duration like 3s", self.worker_lease),
            );
        }
        let timeout = parse_duration(&self.worker_timeout);
        if timeout.is_none() {
            bad(
                "worker-timeout",
                format!("'{}' is not a duration like 2s", self.worker_timeout),
            );
        }
        let ng_listen = match self.ng_listen.as_deref().map(str::parse::<SocketAddr>) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                bad(
                    "ng-listen",
                    format!("'{}': {e}", self.ng_listen.as_deref().unwrap_or_default()),
                );
                None
            }
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone(), self.tls_client_ca.clone())),
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
        match (grpc_listen, metrics_listen, lease, timeout) {
            (Ok(grpc_listen), Ok(metrics_listen), Some(worker_lease), Some(worker_timeout))
                if errors.is_empty() =>
            {
                Ok(SchedulerConfig {
                    grpc_listen,
                    metrics_listen,
                    worker_lease,
                    worker_timeout,
                    tls,
                    otlp_endpoint: self.otlp_endpoint.clone(),
                    log: self.log.clone(),
                    ng_listen,
                    ng_rate_limit: self.ng_rate_limit,
                    ng_delete_delay: self.ng_delete_delay,
                })
            }
            _ => Err(errors),
        }
    }
}

/// Parses `500ms`, `3s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let n: f64 = t[..split].parse().ok()?;
    let secs = match &t[split..] {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_bad_options_at_once() {
        let errors = SchedulerArgs::parse_from([
            "s",
            "--grpc-listen",
            "x",
            "--metrics-listen",
            "y",
            "--worker-lease",
            "soon",
            "--tls-key",
            "/k",
        ])
        .validate()
        .unwrap_err();
        let options: Vec<&str> = errors.iter().map(|e| e.option).collect();
        assert_eq!(
            options,
            vec!["grpc-listen", "metrics-listen", "worker-lease", "tls-cert"]
        );
    }

    #[test]
    fn defaults() {
        let c = SchedulerArgs::parse_from(["s"]).validate().unwrap();
        assert_eq!(c.worker_lease, Duration::from_secs(3));
        assert_eq!(c.grpc_listen.port(), 50051);
        // Nothing is exposed beyond the host unless an address is given.
        assert!(c.grpc_listen.ip().is_loopback() && c.metrics_listen.ip().is_loopback());
        assert_eq!(c.ng_listen, None);
        assert_eq!(c.ng_rate_limit, 2000);
        assert_eq!(c.ng_delete_delay, 30, "rtpengine's delete-delay");
    }
}
