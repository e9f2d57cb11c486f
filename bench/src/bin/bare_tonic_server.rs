//! The bare tonic server the benchmark measures a node's memory against:
//! the same tonic, tokio and rustls, the same mutual TLS, serving only the
//! gRPC health service. No database, no policy, no audit.
//!
//! bare-tonic-server LISTEN CA CERT KEY
use std::net::SocketAddr;

use anyhow::{Context, Result};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, ca, cert, key] = args.as_slice() else {
        anyhow::bail!("usage: bare-tonic-server LISTEN CA CERT KEY");
    };
    let listen: SocketAddr = listen.parse().context("LISTEN is not an address")?;
    let read = |path: &String| std::fs::read(path).with_context(|| format!("cannot read {path}"));
    contactpoint_mtls::install_crypto_provider();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .client_ca_root(Certificate::from_pem(read(ca)?));
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    Server::builder()
        .tls_config(tls)?
        .add_service(health)
        .serve_with_shutdown(listen, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
