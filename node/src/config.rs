//! The node's configuration: a TOML file, then environment variables
//! `CONTACTPOINT_NODE_<FIELD>` (nested fields with `__`, for example
//! `CONTACTPOINT_NODE_TLS__CA`), checked before anything binds.
use contactpoint_mtls::TlsFiles;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything a node needs to start.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// GSS code of the authority this node serves, as in authorities.csv
    /// (for example "E06000001"). Required. It is the prefix of every
    /// identifier the node mints, so it must never change.
    pub authority_code: String,
    /// The authority's name, as in authorities.csv. Required.
    pub authority_name: String,
    /// Address to listen on. Default: 127.0.0.1:7401.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PostgreSQL connection string of the authority's own database. Required.
    pub database_url: String,
    /// PostgreSQL connection string of the same database as the role that
    /// owns its schema: the node migrates as it, then grants the role of
    /// `database_url` only what serving needs, the audit only read and
    /// append. Default: none (`database_url`'s role owns the schema, and the
    /// audit is append-only by trigger alone; the node warns).
    #[serde(default)]
    pub schema_owner_url: Option<String>,
    /// Largest number of pooled database connections. Default: 16.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Milliseconds a call waits for a free pooled connection before it is
    /// refused as busy (UNAVAILABLE). Default: 2000.
    #[serde(default = "default_pool_wait")]
    pub pool_wait_ms: u64,
    /// Milliseconds any statement on a pooled connection may run before
    /// PostgreSQL cancels it (its `statement_timeout`), so one slow query
    /// cannot hold a connection; maintenance (archiving, republishing keys)
    /// runs without it. Default: 10000.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
    /// Seconds a request may take before it is cancelled. Default: 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Seconds between runs of archiving and destruction. Default: 3600.
    #[serde(default = "default_archive_interval")]
    pub archive_interval_seconds: u64,
    /// Days a notification (what the responsible authority is told) is kept
    /// after it was raised, then deleted by the archiving run; the access it
    /// told of stays in the audit. Default: 730.
    #[serde(default = "default_notification_retention")]
    pub notification_retention_days: u32,
    /// Seconds between signed checkpoints of the audit chain. Default: 60.
    #[serde(default = "default_checkpoint")]
    pub audit_checkpoint_seconds: u64,
    /// Requests served at once on one connection. Default: 64.
    #[serde(default = "default_concurrency")]
    pub concurrency_per_connection: usize,
    /// Mutual TLS: the federation CA, this node's certificate and key, CRLs.
    pub tls: TlsFiles,
    /// The key that signs the audit's checkpoints (ECDSA P-256, PKCS#8 PEM;
    /// `cpctl pki node` makes `audit-<code>.key`): a key of its own, never
    /// the TLS key, kept as secret. Required.
    pub audit_key: PathBuf,
    /// When the audit key has just been rotated: the key it replaces, which
    /// endorses the new one once in the audit's key history (then it may
    /// be removed). Default: none.
    #[serde(default)]
    pub audit_previous_key: Option<PathBuf>,
    /// The access policy: which certificate identities hold which role
    /// (see `contactpoint_policy`). Required. Reloaded when the file changes,
    /// and (with the TLS files and CRLs) on SIGHUP.
    pub policy: PathBuf,
    /// Where Prometheus scrapes `/metrics` over plain HTTP, without
    /// authentication: a loopback address only (a local agent scrapes it).
    /// Default: none (no metrics endpoint).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds between SIGTERM and the server ceasing to take calls, while
    /// its health answers NOT_SERVING so load balancers route elsewhere.
    /// Default: 5.
    #[serde(default = "default_drain")]
    pub drain_seconds: u64,
    /// The federation's matching key file (`ID HEX` lines, the first the one
    /// to hash under): the routing feed then carries each record's keyed
    /// blocking keys, for the gateway's blind index. A secret like the TLS
    /// key. Default: none (the gateway then asks this node every search).
    #[serde(default)]
    pub matching_key: Option<PathBuf>,
    /// "text" (default) or "json" (one object per line).
    #[serde(default)]
    pub log_format: contactpoint_ops::LogFormat,
    /// Each caller's budget and the bound on everything in flight, as at the
    /// gateway: a caller calling this node directly gets no more than
    /// through the gateway, whose forwarded callers draw on their own
    /// budgets here. The policy's `[[limits]]` sizes them per identity.
    #[serde(default)]
    pub limits: contactpoint_ops::limits::Limits,
}

fn default_drain() -> u64 {
    5
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7401))
}
fn default_pool_size() -> usize {
    16
}
fn default_notification_retention() -> u32 {
    730
}
fn default_pool_wait() -> u64 {
    2000
}
fn default_statement_timeout() -> u64 {
    10_000
}
fn default_request_timeout() -> u64 {
    30
}
fn default_archive_interval() -> u64 {
    3600
}
fn default_checkpoint() -> u64 {
    60
}
fn default_concurrency() -> usize {
    64
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("configuration: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl NodeConfig {
    /// Reads `path` (if given) and the environment, then checks the values.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Self = figment
            .merge(Env::prefixed("CONTACTPOINT_NODE_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        let code = self.authority_code.as_bytes();
        if code.len() != 9 || code[0] != b'E' || !code[1..].iter().all(u8::is_ascii_digit) {
            return Err(ConfigError::Invalid {
                field: "authority_code",
                reason: format!(
                    "{:?} is not an English GSS code such as E06000001",
                    self.authority_code
                ),
            });
        }
        if self.authority_name.trim().is_empty() {
            return Err(ConfigError::Invalid {
                field: "authority_name",
                reason: "must not be empty".into(),
            });
        }
        if self.pool_size == 0
            || self.concurrency_per_connection == 0
            || self.request_timeout_seconds == 0
            || self.audit_checkpoint_seconds == 0
            || self.archive_interval_seconds == 0
            || self.pool_wait_ms == 0
            || self.statement_timeout_ms == 0
        {
            return Err(ConfigError::Invalid {
                field: "pool_size",
                reason: "pool_size, pool_wait_ms, statement_timeout_ms, concurrency_per_connection, request_timeout_seconds and the intervals must be at least 1".into(),
            });
        }
        if let Some(address) = self
            .metrics_listen
            .filter(|address| !address.ip().is_loopback())
        {
            return Err(ConfigError::Invalid {
                field: "metrics_listen",
                reason: contactpoint_ops::metrics_not_local(address),
            });
        }
        if self.audit_key == self.tls.key {
            return Err(ConfigError::Invalid {
                field: "audit_key",
                reason: "must be a key of its own, not the TLS key (tls.key)".into(),
            });
        }
        if let Err(reason) = self.limits.check() {
            return Err(ConfigError::Invalid {
                field: "limits",
                reason: reason.into(),
            });
        }
        Ok(())
    }
}
