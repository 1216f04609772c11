//! The worker's gRPC over mutual TLS: a client with a certificate from the configured CA is
//! served; one without a client certificate is refused. Certificates are made here with rcgen.

// Tests stand outside the session: they may read the clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridgepool_proto::v1;
use bridgepool_proto::v1::worker_client::WorkerClient;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca_cert.pem(),
        server: leaf("localhost"),
        client: leaf("scheduler.bridgepool"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_of_the_ca() {
    let pki = pki();
    let dir = std::env::temp_dir().join(format!("bridgepool-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = write(&dir, "server.pem", &pki.server.0);
    let key = write(&dir, "server.key", &pki.server.1);
    let ca = write(&dir, "ca.pem", &pki.ca);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridgepool-worker"))
        .args(["--grpc-listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .args([
            "--rtp-port-min",
            "43800",
            "--rtp-port-max",
            "43899",
            "--cores",
            "0",
        ])
        .args([
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ])
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("https://localhost:{port}");
    let with_identity = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost")
        .identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    let deadline = Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let attempt = async {
            let channel = Channel::from_shared(endpoint.clone())
                .unwrap()
                .tls_config(with_identity.clone())
                .unwrap()
                .connect()
                .await?;
            WorkerClient::new(channel)
                .get_stats(v1::GetStatsRequest {})
                .await
                .map_err(|s| Box::new(s) as Box<dyn std::error::Error>)
                .map(|r| r.into_inner())
                .map_err(|e| e.to_string())
                .map_err(Into::<Box<dyn std::error::Error>>::into)
        };
        match attempt.await {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("mTLS client refused: {e}"),
        }
    };
    assert!(stats.capacity_sessions > 0);

    let without_identity = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    let refused = async {
        let channel = Channel::from_shared(endpoint.clone())
            .unwrap()
            .tls_config(without_identity)
            .unwrap()
            .connect()
            .await?;
        WorkerClient::new(channel)
            .get_stats(v1::GetStatsRequest {})
            .await
            .map(|_| ())
            .map_err(|s| Box::new(s) as Box<dyn std::error::Error>)
    }
    .await;
    assert!(
        refused.is_err(),
        "a client without a certificate must be refused"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
