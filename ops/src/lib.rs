//! What operators of a node or the gateway expect, shared by both:
//!
//! - [`Metrics`]: Prometheus metrics (requests by method, outcome and role;
//!   latency histograms; calls to each authority's node; pool usage;
//!   transfers by state; audit checkpoint age), one registry per server,
//!   served over plain HTTP on a separate, operator-only address by
//!   [`serve_metrics`]. They carry no personal data: methods, outcomes, role
//!   kinds and authority codes only.
//! - [`init_logging`]: human-readable or JSON lines.
//! - [`health`]: gRPC health for the server's service and the server as a
//!   whole, and the drain before a graceful stop.
//! - [`limits`]: per-caller budgets of rate and requests in flight, one
//!   layer for the gateway and every node.
//! - [`reload_on_hangup`]: SIGHUP reads the access policy and the TLS files
//!   (with their CRLs) again; a bad file keeps what is in force.
#![forbid(unsafe_code)]

pub mod health;
pub mod limits;
mod metrics;

pub use metrics::{metrics_not_local, serve_metrics, Metrics};

use std::sync::Arc;

use contactpoint_mtls::ServerTls;
use contactpoint_policy::PolicyHandle;
use serde::Deserialize;

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Starts logging to standard output, filtered by `RUST_LOG` (default info).
pub fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Reloads the policy and the server's TLS files (certificate, key, CA and
/// CRLs) on every SIGHUP, for as long as the server runs.
pub async fn reload_on_hangup(policy: Arc<PolicyHandle>, tls: Arc<ServerTls>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP: reload by restarting");
        return;
    };
    while hangups.recv().await.is_some() {
        match policy.reload() {
            Ok(()) => tracing::info!("access policy reloaded on SIGHUP"),
            Err(error) => {
                tracing::error!(%error, "access policy not reloaded; the previous one stays in force")
            }
        }
        match tls.reload() {
            Ok(()) => tracing::info!("TLS files and revocation lists reloaded on SIGHUP"),
            Err(error) => {
                tracing::error!(%error, "TLS files not reloaded; the previous ones stay in force")
            }
        }
    }
}
