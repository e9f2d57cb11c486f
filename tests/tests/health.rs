//! gRPC health as probes and load balancers ask it: the server as a whole
//! (the empty service name) and each server's own service, at the gateway
//! and at a node; serving once ready, NOT_SERVING from the moment a graceful
//! stop begins until the server stops; `cpctl health` asks for the whole.
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use contactpoint_mtls::TlsFiles;
use contactpoint_tests::*;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn status(health: &mut HealthClient<Channel>, service: &str) -> anyhow::Result<i32> {
    Ok(health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner()
        .status)
}

/// `cpctl health --wait 0` at `address`: its exit code and what it said.
fn cpctl_health(files: &TlsFiles, address: SocketAddr) -> anyhow::Result<(Option<i32>, String)> {
    let output = cpctl_command(files, address)?
        .args(["health", "--wait", "0"])
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.code(), said))
}

/// Serving as a whole and as `service`; then, once `stop` begins, not
/// serving on the connection already open, for both names, while the server
/// drains; then the stop completes.
async fn check_health_through_a_graceful_stop(
    address: SocketAddr,
    files: &TlsFiles,
    service: &str,
    stop: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> anyhow::Result<()> {
    let mut health = HealthClient::new(connect(address, files).await?);
    let serving = ServingStatus::Serving as i32;
    assert_eq!(status(&mut health, "").await?, serving);
    assert_eq!(status(&mut health, service).await?, serving);
    let (code, said) = cpctl_health(files, address)?;
    assert!(
        code == Some(0) && said.contains("is serving"),
        "{code:?}: {said}"
    );

    let stopping = tokio::spawn(stop);
    let not_serving = ServingStatus::NotServing as i32;
    eventually("NOT_SERVING while draining", || {
        let mut health = health.clone();
        async move { Ok((status(&mut health, "").await? == not_serving).then_some(())) }
    })
    .await?;
    assert_eq!(status(&mut health, service).await?, not_serving);
    let (code, said) = cpctl_health(files, address)?;
    assert!(
        code == Some(1) && said.contains("is not serving (status NOT_SERVING)"),
        "{code:?}: {said}"
    );
    assert!(!stopping.is_finished(), "still draining");
    tokio::time::timeout(Duration::from_secs(20), stopping).await???;
    assert!(
        connect(address, files).await.is_err() || status(&mut health, "").await.is_err(),
        "stopped"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_reported_whole_and_not_serving_while_draining() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let probe = pki.client_files("NSPCC", "Probe")?;

    let node_db = TestDb::create().await?;
    let mut config = TestNode::config(&node_db, &pki, "E06000001")?;
    config.drain_seconds = 3;
    let node =
        TestNode::start_config(config, std::sync::Arc::new(contactpoint_node::SystemClock)).await?;
    let address = node.address;
    check_health_through_a_graceful_stop(
        address,
        &probe,
        "contactpoint.v1.AuthorityNode",
        node.stop(),
    )
    .await?;

    let gateway_db = TestDb::create().await?;
    let mut config = TestGateway::config(&gateway_db, &pki, &[])?;
    config.drain_seconds = 3;
    let gateway = TestGateway::start(config).await?;
    let address = gateway.address;
    check_health_through_a_graceful_stop(address, &probe, "contactpoint.v1.Gateway", gateway.stop())
        .await
}
