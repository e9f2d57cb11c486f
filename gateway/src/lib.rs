//! The national gateway: the one door for national partners (Schedule 2) and
//! practitioners (Schedule 3) to every authority's node.
//!
//! It maps each caller's verified certificate to a role of the regulations,
//! refuses what the role may not do before any node is called, routes a
//! lookup to the node of the authority responsible for the record (Schedule 1
//! para 19) through its routing index, asks every node at once for a search,
//! and audits every call. It holds no child's details: its database is the
//! routing index, outbox cursors and its audit, so gateways can stand side by
//! side on one database.
#![forbid(unsafe_code)]

mod audit;
mod blind_index;
pub mod config;
mod contributions;
pub mod duplicates;
mod error;
pub mod feed;
pub use contactpoint_ops::limits;
mod lookup;
pub mod nodes;
mod passthrough;
pub mod routes;
mod search;
mod service;
pub mod store;
mod transfers;
pub mod witness;

/// The transfer workflow, at the path it has always had.
pub use transfers::workflow as transfer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use contactpoint_ops::health::Health;
use contactpoint_policy::PolicyHandle;
use contactpoint_proto::v1::gateway_server::GatewayServer;
use tokio::net::TcpListener;

pub use config::GatewayConfig;
pub use service::GatewayService;

/// The largest request or response message. Requests are a few hundred
/// bytes; responses hold at most one record or a hundred matches.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The longest a client's connection lives before it must handshake again.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(600);

/// How often the policy file is checked for changes.
const POLICY_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How often health checks the gateway's database.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] contactpoint_mtls::TlsError),
    #[error(transparent)]
    Policy(#[from] contactpoint_policy::PolicyError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Directory(#[from] nodes::DirectoryError),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    MatchingKey(String),
    #[error("the gateway's key cannot countersign audit checkpoints: {0}")]
    Signing(String),
    #[error("cannot listen for metrics on {address}: {source}")]
    Metrics {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Serves the gateway on `listener` until `shutdown` completes; the metrics
/// endpoint (if `metrics_listen` is set) is bound here.
pub async fn serve(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(|source| StartError::Metrics { address, source })?,
        ),
        None => None,
    };
    serve_on(config, listener, metrics_listener, shutdown).await
}

/// As [`serve`], with the metrics endpoint's listener already bound (tests
/// bind port 0).
pub async fn serve_on(
    config: GatewayConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let tls = Arc::new(contactpoint_mtls::ServerTls::open(&config.tls)?);
    let policy = Arc::new(PolicyHandle::open(&config.policy)?);
    let metrics = Arc::new(contactpoint_ops::Metrics::new("contactpoint_gateway"));
    let store = store::Store::open(&config.database_url, config.pool_size).await?;
    let directory = nodes::Directory::new(&config.nodes, &config.tls)?;
    let routes = Arc::new(routes::Routes::load(&store).await?);
    let signer = contactpoint_mtls::KeySigner::from_pkcs8(&contactpoint_mtls::private_key_pkcs8(
        &config.tls.key,
    )?)
    .map_err(StartError::Signing)?;

    let transfers = Arc::new(transfers::Transfers::new(
        store.clone(),
        directory.clone(),
        routes.clone(),
        Duration::from_millis(config.transfer_retry_ms),
    ));
    let resumed = transfers.clone().resume_all().await?;
    if resumed > 0 {
        tracing::info!(resumed, "resuming interrupted transfers");
    }
    let mut background = tokio::task::JoinSet::new();
    background.spawn(feed::follow_all(
        directory.clone(),
        store.clone(),
        Duration::from_millis(config.feed_poll_ms),
    ));
    background.spawn(routes::follow(
        routes.clone(),
        store.clone(),
        Duration::from_millis(config.feed_poll_ms),
    ));
    background.spawn(duplicates::tell_all(
        directory.clone(),
        store.clone(),
        Duration::from_millis(config.feed_poll_ms),
    ));
    background.spawn(witness::witness_all(
        directory.clone(),
        store.clone(),
        Arc::new(signer),
        metrics.clone(),
        Duration::from_millis(config.witness_interval_ms),
    ));
    background.spawn(policy.clone().watch(POLICY_CHECK_INTERVAL));
    background.spawn(contactpoint_ops::reload_on_hangup(
        policy.clone(),
        tls.clone(),
    ));
    if let Some(listener) = metrics_listener {
        background.spawn(contactpoint_ops::serve_metrics(listener, metrics.clone()));
    }
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(
        reporter,
        <GatewayServer<GatewayService> as tonic::server::NamedService>::NAME,
    )
    .await;
    background.spawn(report_health(
        health.clone(),
        store.clone(),
        metrics.clone(),
    ));
    let shutdown = contactpoint_ops::health::drain_after(
        health,
        shutdown,
        Duration::from_secs(config.drain_seconds),
    );

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(contactpoint_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let matching = match &config.matching_key {
        Some(path) => Some(Arc::new(
            contactpoint_matching::blocking::MatchingKeys::load(path)
                .map_err(StartError::MatchingKey)?,
        )),
        None => None,
    };
    let gateway = passthrough::GatewayRoutes::new(
        GatewayService::new(
            store,
            directory,
            policy.clone(),
            transfers,
            metrics,
            routes,
            &config,
        )
        .with_matching_keys(matching),
    );

    let stack = config.limits.layers(policy.clone());

    tracing::info!(address = ?listener.local_addr().ok(), nodes = config.nodes.len(), "gateway serving");
    let served = tonic::transport::Server::builder()
        // Every request, waiting included, ends within this.
        .timeout(Duration::from_secs(config.request_timeout_seconds))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Connections are renewed, so a certificate revoked since (SIGHUP
        // rereads the CRLs) stops working within this time even on a
        // connection it already holds.
        .max_connection_age(MAX_CONNECTION_AGE)
        .layer(stack)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(gateway)
        .serve_with_incoming_shutdown(contactpoint_mtls::accept_tls(listener, tls), shutdown)
        .await;
    // Abort the background work and wait until it is gone (its listeners closed).
    background.shutdown().await;
    tracing::info!("gateway stopped");
    Ok(served?)
}

/// Keeps the health service true, and the pool and transfer metrics current.
async fn report_health(
    health: Arc<Health>,
    store: store::Store,
    metrics: Arc<contactpoint_ops::Metrics>,
) {
    let mut serving = None;
    loop {
        let up = store.ping().await;
        let (size, available, max) = store.pool_status();
        metrics.set_pool(size, available, max);
        if let Ok(by_state) = store.transfers_by_state().await {
            metrics.set_transfers(&by_state);
        }
        if serving != Some(up) {
            if !up {
                tracing::warn!("gateway database not answering: health NOT_SERVING");
            }
            health.set(up).await;
            serving = Some(up);
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}
