//! One Prometheus registry per server, and the HTTP endpoint that serves it.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    outcome: String,
    role: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeCallLabels {
    authority: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// A server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    node_calls: Family<NodeCallLabels, Counter>,
    pool: Family<StateLabels, Gauge>,
    transfers: Family<StateLabels, Gauge>,
    checkpoint_age: Gauge,
    witness_refusals: Family<NodeCallLabels, Counter>,
}

impl Metrics {
    /// A registry for one server; `prefix` is `contactpoint_node` or `contactpoint_gateway`.
    pub fn new(prefix: &str) -> Self {
        let mut registry = Registry::with_prefix(prefix);
        let requests = Family::<CallLabels, Counter>::default();
        registry.register(
            "requests",
            "Calls handled, by method, outcome and caller's role",
            requests.clone(),
        );
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to about 8 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 15))
        });
        registry.register(
            "request_duration_seconds",
            "Time from a call's arrival to its answer, by method",
            latency.clone(),
        );
        let node_calls = Family::<NodeCallLabels, Counter>::default();
        registry.register(
            "node_calls",
            "Calls to each authority's node (lookups and every node of a search), by outcome",
            node_calls.clone(),
        );
        let pool = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections: size, available, max",
            pool.clone(),
        );
        let transfers = Family::<StateLabels, Gauge>::default();
        registry.register(
            "transfers",
            "Transfers in the gateway's journal, by state",
            transfers.clone(),
        );
        let checkpoint_age = Gauge::default();
        registry.register(
            "audit_checkpoint_age_seconds",
            "How long the oldest audit entry has waited for a signed checkpoint (0: all are signed)",
            checkpoint_age.clone(),
        );
        let witness_refusals = Family::<NodeCallLabels, Counter>::default();
        registry.register(
            "audit_witness_refusals",
            "Heads of a node's audit the gateway refused to countersign (outcome: behind, forked, keys, signature): each a sign its audit was rewritten, cut or signed by a key it should not be",
            witness_refusals.clone(),
        );
        Self {
            witness_refusals,
            registry,
            requests,
            latency,
            node_calls,
            pool,
            transfers,
            checkpoint_age,
        }
    }

    /// Counts one call and its time since `started`. `role` is a role kind
    /// ("national_partner", ...), never a person.
    pub fn observe_call(&self, method: &str, outcome: &str, role: &str, started: Instant) {
        self.requests
            .get_or_create(&CallLabels {
                method: method.to_owned(),
                outcome: outcome.to_owned(),
                role: role.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts one call to an authority's node and how it ended.
    pub fn observe_node_call(&self, authority: &str, outcome: &str) {
        self.node_calls
            .get_or_create(&NodeCallLabels {
                authority: authority.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a node's audit head the gateway refused to countersign, and why.
    pub fn count_witness_refusal(&self, authority: &str, reason: &str) {
        self.witness_refusals
            .get_or_create(&NodeCallLabels {
                authority: authority.to_owned(),
                outcome: reason.to_owned(),
            })
            .inc();
    }

    /// The database pool: its size, available connections and maximum.
    pub fn set_pool(&self, size: usize, available: usize, max: usize) {
        for (state, value) in [("size", size), ("available", available), ("max", max)] {
            self.pool
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// Transfers by state; a state with none reads 0.
    pub fn set_transfers(&self, by_state: &[(String, i64)]) {
        const STATES: [&str; 6] = [
            "requested",
            "staged",
            "handed_over",
            "activated",
            "completed",
            "cancelled",
        ];
        for state in STATES {
            let count = by_state
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, count)| *count);
            self.transfers
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(count);
        }
    }

    pub fn set_checkpoint_age(&self, seconds: i64) {
        self.checkpoint_age.set(seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1: bind it to an
/// address only operators' scrapers reach). Runs until aborted.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    tracing::info!(address = ?listener.local_addr().ok(), "metrics served at /metrics");
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "metrics accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let response = if request.uri().path() == "/metrics" {
                            Response::builder()
                                .header(
                                    hyper::header::CONTENT_TYPE,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                                .body(Full::new(Bytes::from(metrics.encode())))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(b"metrics are at /metrics\n")))
                        };
                        response
                    }
                });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "metrics connection ended");
            }
        });
    }
}

/// Why `address` may not serve the metrics: they are plain HTTP without
/// authentication, so they are served on this host only.
pub fn metrics_not_local(address: std::net::SocketAddr) -> String {
    format!(
        "{address} is not a loopback address: metrics are served in plain HTTP to whoever asks, so only on this host (127.0.0.1 or ::1); scrape them with a local agent"
    )
}
