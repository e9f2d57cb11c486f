//! The gateway's configuration: a TOML file, then environment variables
//! `CONTACTPOINT_GATEWAY_<FIELD>` (nested fields with `__`), checked before
//! anything binds.
use contactpoint_mtls::TlsFiles;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on. Default: 127.0.0.1:7400.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PostgreSQL connection string of the gateway's own database (routing
    /// index, outbox cursors, audit). Required.
    pub database_url: String,
    /// Largest number of pooled database connections. Default: 8.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// The access policy file. Required. Reloaded when it changes, or on SIGHUP.
    pub policy: PathBuf,
    /// Mutual TLS: the federation CA and CRLs for callers, and the gateway's
    /// own certificate, which it also presents to every node.
    pub tls: TlsFiles,
    /// How long a search waits for the slowest node, in milliseconds; nodes
    /// that have not answered by then are named as unanswered. Default: 2000.
    #[serde(default = "default_search_deadline")]
    pub search_deadline_ms: u64,
    /// How long a lookup waits for the responsible node. Default: 5000.
    #[serde(default = "default_lookup_timeout")]
    pub lookup_timeout_ms: u64,
    /// How often each node's outbox is read (an idle one down to once in
    /// eight intervals). Default: 1000.
    #[serde(default = "default_feed_poll")]
    pub feed_poll_ms: u64,
    /// First pause before a waiting transfer step is retried, in
    /// milliseconds; it doubles up to five seconds. Default: 500.
    #[serde(default = "default_transfer_retry")]
    pub transfer_retry_ms: u64,
    /// How often the gateway asks each node for its audit's head, checks it
    /// and countersigns it, in milliseconds: an audit entry is witnessed
    /// within about this long of being written. Default: 2000.
    #[serde(default = "default_witness_interval")]
    pub witness_interval_ms: u64,
    /// Flag a user who makes this many searches in 24 hours without viewing
    /// any record (RULES.md, audit); 0 turns the flag off. Default: 20.
    #[serde(default = "default_flag_searches")]
    pub flag_searches_without_view: u32,
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
    /// The federation's matching key file, as the nodes hold it (`ID HEX`
    /// lines; during a rotation, the new and the old): a search is then sent
    /// only to the authorities whose blind index holds one of its keys. A
    /// secret like the TLS key. Default: none (every search asks every node).
    #[serde(default)]
    pub matching_key: Option<PathBuf>,
    /// "text" (default) or "json" (one object per line).
    #[serde(default)]
    pub log_format: contactpoint_ops::LogFormat,
    /// Seconds before any request, waiting included, is cancelled. Default: 10.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Limits that keep one caller from starving the others.
    #[serde(default)]
    pub limits: Limits,
    /// Every authority's node.
    pub nodes: Vec<NodeEntry>,
}

pub use contactpoint_ops::limits::Limits;

/// One authority's node.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// GSS code, as in authorities.csv.
    pub code: String,
    /// The authority's name.
    pub name: String,
    /// For example https://node-e06000001.example:7401.
    pub endpoint: String,
    /// The name the node's certificate must carry. Default: the endpoint's host.
    pub server_name: Option<String>,
}

impl NodeEntry {
    pub fn server_name(&self) -> String {
        self.server_name.clone().unwrap_or_else(|| {
            let rest = self.endpoint.split("://").nth(1).unwrap_or(&self.endpoint);
            let host = rest.split(['/', ':']).next().unwrap_or(rest);
            host.to_owned()
        })
    }
}

fn default_drain() -> u64 {
    5
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7400))
}
fn default_pool_size() -> usize {
    8
}
fn default_search_deadline() -> u64 {
    2000
}
fn default_lookup_timeout() -> u64 {
    5000
}
fn default_feed_poll() -> u64 {
    1000
}
fn default_transfer_retry() -> u64 {
    500
}
fn default_flag_searches() -> u32 {
    20
}
fn default_request_timeout() -> u64 {
    10
}
fn default_witness_interval() -> u64 {
    2_000
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("configuration: {field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl GatewayConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Self = figment
            .merge(Env::prefixed("CONTACTPOINT_GATEWAY_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        let mut seen = std::collections::HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let code = node.code.as_bytes();
            if code.len() != 9 || code[0] != b'E' || !code[1..].iter().all(u8::is_ascii_digit) {
                return invalid(
                    format!("nodes[{i}].code"),
                    "is not a GSS code such as E06000001",
                );
            }
            if !seen.insert(&node.code) {
                return invalid(format!("nodes[{i}].code"), "names an authority twice");
            }
            if !node.endpoint.starts_with("https://") {
                return invalid(
                    format!("nodes[{i}].endpoint"),
                    "must be an https:// address: nodes are called over mutual TLS",
                );
            }
        }
        if let Some(address) = self
            .metrics_listen
            .filter(|address| !address.ip().is_loopback())
        {
            return invalid(
                "metrics_listen".into(),
                &contactpoint_ops::metrics_not_local(address),
            );
        }
        if let Err(reason) = self.limits.check() {
            return invalid("limits".into(), reason);
        }
        if self.request_timeout_seconds == 0 {
            return invalid("request_timeout_seconds".into(), "must be at least 1");
        }
        if self.search_deadline_ms == 0
            || self.lookup_timeout_ms == 0
            || self.feed_poll_ms == 0
            || self.transfer_retry_ms == 0
            || self.witness_interval_ms == 0
        {
            return invalid(
                "search_deadline_ms".into(),
                "deadlines and intervals must be positive",
            );
        }
        Ok(())
    }
}
