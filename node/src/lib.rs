//! An authority's node: the records of the children the authority is
//! responsible for (Schedule 1 para 19), in its own PostgreSQL, served over
//! gRPC with mutual TLS.
//!
//! `main.rs` only reads configuration and calls [`serve`]; tests call it on a
//! listener bound to port 0, as many nodes as they like in one process.
#![forbid(unsafe_code)]

pub mod access;
pub mod audit;
pub mod clock;
pub mod config;
mod consent;
mod contributions;
mod duplicates;
pub mod error;
/// Para 5 identifiers: their shape is part of the contract.
pub use contactpoint_proto::identifier;
pub mod model;
mod notifications;
mod records;
pub mod redact;
mod retention;
mod routing_feed;
mod search;
mod service;
mod shielding;
pub mod store;
mod transfers;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use contactpoint_ops::health::Health;
use contactpoint_proto::v1::authority_node_server::AuthorityNodeServer;
use tokio::net::TcpListener;

pub use clock::{Clock, FixedClock, SystemClock};
pub use config::NodeConfig;
use model::ResponsibleAuthority;
pub use service::NodeService;
use store::{Store, StoreError};

/// The largest request or response message, in bytes. A whole record is a few
/// kilobytes; a megabyte leaves room without letting one call hog memory.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The longest a client's connection lives before it must handshake again.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(600);

/// How often the access policy file is checked for changes.
const POLICY_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// How often the health service checks the database.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] contactpoint_mtls::TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Policy(#[from] contactpoint_policy::PolicyError),
    #[error("{0}")]
    Signer(String),
    #[error("audit_key: {0}")]
    AuditKey(#[from] audit::keys::AuditKeyError),
    #[error("{0}")]
    MatchingKey(String),
    #[error("cannot publish under the matching key: {0}")]
    Publish(crate::error::NodeError),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot listen for metrics on {address}: {source}")]
    Metrics {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Serves the node on `listener` until `shutdown` completes, with the system clock.
pub async fn serve(
    config: NodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    serve_with_clock(config, listener, Arc::new(SystemClock), shutdown).await
}

/// As [`serve`], with the given clock; the metrics endpoint (if
/// `metrics_listen` is set) is bound here.
pub async fn serve_with_clock(
    config: NodeConfig,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
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
    serve_on(config, listener, metrics_listener, clock, shutdown).await
}

/// As [`serve_with_clock`], with the metrics endpoint's listener already
/// bound (tests bind port 0).
pub async fn serve_on(
    config: NodeConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let tls = Arc::new(contactpoint_mtls::ServerTls::open(&config.tls)?);
    let policy = Arc::new(contactpoint_policy::PolicyHandle::open(&config.policy)?);
    let metrics = Arc::new(contactpoint_ops::Metrics::new("contactpoint_node"));
    let authority = ResponsibleAuthority {
        code: config.authority_code.clone(),
        name: config.authority_name.clone(),
    };
    let signer = audit::CheckpointSigner::from_pem_file(&config.audit_key)
        .map_err(|error| StartError::Signer(format!("audit_key: {error}")))?;
    let tls_key = contactpoint_mtls::KeySigner::from_pkcs8(&contactpoint_mtls::private_key_pkcs8(
        &config.tls.key,
    )?)
    .map_err(StartError::Signer)?;
    if signer.key().public_key() == tls_key.public_key() {
        return Err(StartError::Signer(
            "audit_key must be a key of its own, not the TLS key: a certificate's renewal would break the audit's verification, and a leaked TLS key would forge it".into(),
        ));
    }
    let previous = config
        .audit_previous_key
        .as_deref()
        .map(contactpoint_mtls::KeySigner::from_pem_file)
        .transpose()
        .map_err(|error| StartError::Signer(format!("audit_previous_key: {error}")))?;
    let mut store = Store::open_as(
        &config.database_url,
        config.schema_owner_url.as_deref(),
        store::PoolSettings {
            size: config.pool_size,
            wait: Some(Duration::from_millis(config.pool_wait_ms)),
            statement_timeout: Some(Duration::from_millis(config.statement_timeout_ms)),
        },
        authority,
    )
    .await?;
    store
        .register_audit_key(signer.key(), previous.as_ref(), &tls_key)
        .await?;
    let signer = Arc::new(signer);
    if let Some(path) = &config.matching_key {
        let keys = contactpoint_matching::blocking::MatchingKeys::load(path)
            .map_err(StartError::MatchingKey)?;
        store
            .publish_under(keys)
            .await
            .map_err(StartError::Publish)?;
    }

    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(
        reporter,
        <AuthorityNodeServer<NodeService> as tonic::server::NamedService>::NAME,
    )
    .await;
    let shutdown = contactpoint_ops::health::drain_after(
        health.clone(),
        shutdown,
        Duration::from_secs(config.drain_seconds),
    );
    // Background work; the set aborts it all when dropped, on any early return too.
    let mut background = tokio::task::JoinSet::new();
    background.spawn(report_health(health, store.clone(), metrics.clone()));
    background.spawn(policy.clone().watch(POLICY_CHECK_INTERVAL));
    background.spawn(contactpoint_ops::reload_on_hangup(
        policy.clone(),
        tls.clone(),
    ));
    if let Some(listener) = metrics_listener {
        background.spawn(contactpoint_ops::serve_metrics(listener, metrics.clone()));
    }
    background.spawn(retention::archive_and_destroy_every(
        store.clone(),
        clock.clone(),
        Duration::from_secs(config.archive_interval_seconds),
        config.notification_retention_days,
    ));
    background.spawn(audit::checkpoint_every(
        store.clone(),
        signer.clone(),
        Duration::from_secs(config.audit_checkpoint_seconds),
    ));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(contactpoint_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let stack = config.limits.layers(policy.clone());
    let node = AuthorityNodeServer::new(NodeService::new(store, clock, policy, metrics, signer))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    tracing::info!(authority = %config.authority_code, address = ?listener.local_addr().ok(), "node serving");
    let served = tonic::transport::Server::builder()
        // A request that outlives this is cancelled, releasing its connection
        // from the pool; the caller gets DEADLINE_EXCEEDED-like CANCELLED.
        .timeout(Duration::from_secs(config.request_timeout_seconds))
        // One client cannot occupy every pooled connection through a single
        // HTTP/2 connection; further requests wait (backpressure).
        .concurrency_limit_per_connection(config.concurrency_per_connection)
        // Dead peers are noticed and their connections closed.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Connections are renewed, so a certificate revoked since (SIGHUP
        // rereads the CRLs) stops working within this time even on a
        // connection it already holds.
        .max_connection_age(MAX_CONNECTION_AGE)
        // Each caller's budget (a forwarded caller's own on the gateway's
        // connection), then the bound on everything in flight: the same
        // layers as the gateway's, so going around it gets no more.
        .layer(stack)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(node)
        .serve_with_incoming_shutdown(contactpoint_mtls::accept_tls(listener, tls), shutdown)
        .await;
    // Abort the background work and wait until it is gone (its listeners closed).
    background.shutdown().await;
    tracing::info!(authority = %config.authority_code, "node stopped");
    Ok(served?)
}

/// answer; and the pool and audit checkpoint metrics current.
async fn report_health(health: Arc<Health>, store: Store, metrics: Arc<contactpoint_ops::Metrics>) {
    let mut serving = None;
    loop {
        let up = store.ping().await;
        let (size, available, max) = store.pool_status();
        metrics.set_pool(size, available, max);
        if let Ok(Some(age)) = store.checkpoint_age_seconds().await {
            metrics.set_checkpoint_age(age);
        }
        if serving != Some(up) {
            if !up {
                tracing::warn!("database not answering: health NOT_SERVING");
            }
            health.set(up).await;
            serving = Some(up);
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}
