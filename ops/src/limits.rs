//! Per-caller limits, as a tower layer, at the gateway and at every node:
//! each caller has its own budget of requests in flight and its own token
//! bucket, so one partner cannot starve the others. The caller is the
//! verified certificate's subject; on the gateway's own connection to a node,
//! the caller it forwards for (`forwarded::CALLER_HEADER`), so a partner's
//! calls to a node directly and through the gateway draw on one budget there,
//! and going around the gateway gets no more. The budget is
//! the configured `[limits]`, unless the policy's `[[limits]]` sizes it for
//! the caller (a helpline's shared certificate; an organisation's whole
//! allowance, `shared`, one budget for every certificate the entry matches). Over either
//! limit a request is refused at once with RESOURCE_EXHAUSTED saying which,
//! and when over the rate, a `retry-after-ms` header saying when a token will
//! be there. So the service stays available to every partner at its planned
//! load (RULES.md, Anchors worth knowing: peaks of 50 transactions a second,
//! 99.9% availability).
//!
//! A request may cost more than one token: a handler charges the rest
//! through the [`Charge`] the layer leaves in its extensions (a search at
//! the gateway costs one for every authority it asks). A charge is never
//! refused once the request is admitted; the caller's bucket goes into debt
//! and its next requests wait for the refill.
//!
//! The health service (`grpc.health.v1.Health`) is outside these budgets:
//! it answers from memory, and a probe (a load balancer's, or cpctl's
//! asking whether it speaks to a gateway) refused for its caller's budget
//! would call a healthy server dead, or send the caller down the wrong path.
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{forwarded, PolicyHandle, Role};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;
use tower::layer::util::{Identity, Stack};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceBuilder};

/// A server's `[limits]`: each caller's budget where the policy's
/// `[[limits]]` does not size it, and the bound on everything in flight.
/// The gateway and every node take the same table, so a caller gets no more
/// at a node it calls directly than through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests one caller may have in flight. Default: 32.
    pub per_caller_in_flight: usize,
    /// Sustained requests a second one caller may make. Default: 50.
    pub per_caller_per_second: f64,
    /// Requests one caller may make in a burst above that rate. Default: 100.
    pub per_caller_burst: f64,
    /// Requests in flight across all callers; more wait. Default: 512.
    pub global_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_caller_in_flight: 32,
            per_caller_per_second: 50.0,
            per_caller_burst: 100.0,
            global_in_flight: 512,
        }
    }
}

/// The layers [`Limits::layers`] builds, outermost first.
pub type LimitLayers =
    ServiceBuilder<Stack<GlobalConcurrencyLimitLayer, Stack<PerCallerLimitLayer, Identity>>>;

impl Limits {
    /// A caller's budget where the policy does not size it.
    pub fn caller_defaults(&self) -> Defaults {
        Defaults {
            in_flight: self.per_caller_in_flight,
            per_second: self.per_caller_per_second,
            burst: self.per_caller_burst,
        }
    }

    /// Why these limits cannot be served with, if they cannot.
    pub fn check(&self) -> Result<(), &'static str> {
        self.caller_defaults().check()?;
        if self.global_in_flight == 0 {
            return Err("every limit must be positive (burst at least 1)");
        }
        Ok(())
    }

    /// The limits as the server's outermost layers.
    pub fn layers(&self, policy: Arc<PolicyHandle>) -> LimitLayers {
        ServiceBuilder::new()
            // Outermost: each caller's own budget, so a flood from one caller
            // is refused before it takes any shared capacity.
            .layer(PerCallerLimitLayer::new(self.caller_defaults(), policy))
            // Then a bound on everything in flight: beyond it requests wait
            // (backpressure) until the server's request timeout cancels them.
            .layer(GlobalConcurrencyLimitLayer::new(self.global_in_flight))
    }
}

/// A caller's budget where the policy's `[[limits]]` does not size it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Requests one caller may have in flight.
    pub in_flight: usize,
    /// Sustained requests a second one caller may make.
    pub per_second: f64,
    /// Requests one caller may make in a burst above that rate.
    pub burst: f64,
}

impl Defaults {
    /// Why this budget cannot be served with, if it cannot.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.in_flight == 0 || self.per_second <= 0.0 || self.burst < 1.0 {
            return Err("every limit must be positive (burst at least 1)");
        }
        Ok(())
    }
}

/// Callers remembered before idle ones are forgotten.
const MAX_TRACKED_CALLERS: usize = 100_000;

/// On a refusal over the rate: milliseconds until the caller's next token.
pub const RETRY_AFTER_HEADER: &str = "retry-after-ms";

/// The health service's path prefix: outside the per-caller budgets.
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

struct Bucket {
    in_flight: Arc<Semaphore>,
    /// The in-flight slots it was made with (a reloaded policy may change it).
    capacity: usize,
    tokens: f64,
    refilled: Instant,
}

struct Budgets {
    defaults: Defaults,
    policy: Arc<PolicyHandle>,
    callers: Mutex<HashMap<String, Bucket>>,
}

/// One caller's budget: where it is kept and how big it is.
struct Budget {
    key: String,
    per_second: f64,
    burst: f64,
    in_flight: usize,
}

impl Budgets {
    /// The budget of `who`: the configured limits, as the policy sizes them.
    fn budget_of(&self, who: Option<&PeerIdentity>) -> Budget {
        let policy = self.policy.current();
        let sized = who.and_then(|who| policy.limits_of(who));
        let key = match (sized.and_then(|sized| sized.shared_as.as_ref()), who) {
            (Some(shared), _) => format!("shared {shared}"),
            (None, Some(who)) => who.to_string(),
            (None, None) => String::new(),
        };
        Budget {
            key,
            per_second: sized
                .and_then(|sized| sized.per_second)
                .unwrap_or(self.defaults.per_second),
            burst: sized
                .and_then(|sized| sized.burst)
                .unwrap_or(self.defaults.burst),
            in_flight: sized
                .and_then(|sized| sized.in_flight)
                .unwrap_or(self.defaults.in_flight),
        }
    }

    /// Takes a token and an in-flight slot from `budget`, or says which limit it hit.
    fn admit(&self, budget: &Budget) -> Result<OwnedSemaphorePermit, Status> {
        let mut callers = self
            .callers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if callers.len() >= MAX_TRACKED_CALLERS && !callers.contains_key(&budget.key) {
            callers.retain(|_, bucket| bucket.in_flight.available_permits() < bucket.capacity);
        }
        let now = Instant::now();
        let bucket = callers.entry(budget.key.clone()).or_insert_with(|| Bucket {
            in_flight: Arc::new(Semaphore::new(budget.in_flight)),
            capacity: budget.in_flight,
            tokens: budget.burst,
            refilled: now,
        });
        if bucket.capacity != budget.in_flight {
            // Resized by a reloaded policy: calls in flight hold the old slots.
            bucket.in_flight = Arc::new(Semaphore::new(budget.in_flight));
            bucket.capacity = budget.in_flight;
        }
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * budget.per_second).min(budget.burst);
        bucket.refilled = now;
        if bucket.tokens < 1.0 {
            let mut status = Status::resource_exhausted(format!(
                "rate limit: at most {} requests a second per caller (bursts of {}); slow down",
                budget.per_second, budget.burst
            ));
            let wait_ms = ((1.0 - bucket.tokens) / budget.per_second * 1000.0).ceil();
            if let Ok(value) = format!("{}", wait_ms.clamp(1.0, 3_600_000.0) as u64).parse() {
                status.metadata_mut().insert(RETRY_AFTER_HEADER, value);
            }
            return Err(status);
        }
        let permit = bucket.in_flight.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "at most {} requests in flight per caller; wait for answers before sending more",
                budget.in_flight
            ))
        })?;
        bucket.tokens -= 1.0;
        Ok(permit)
    }
}

/// What a handler charges beyond the one token its request cost, on the
/// caller's own budget (see the module documentation).
#[derive(Clone)]
pub struct Charge {
    budgets: Arc<Budgets>,
    key: String,
}

impl Charge {
    /// Takes `tokens` more from the caller's bucket, into debt if need be.
    pub fn take(&self, tokens: f64) {
        let mut callers = self
            .budgets
            .callers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = callers.get_mut(&self.key) {
            bucket.tokens -= tokens.max(0.0);
        }
    }
}

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct PerCallerLimitLayer {
    budgets: Arc<Budgets>,
}

impl PerCallerLimitLayer {
    pub fn new(defaults: Defaults, policy: Arc<PolicyHandle>) -> Self {
        Self {
            budgets: Arc::new(Budgets {
                defaults,
                policy,
                callers: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<S> Layer<S> for PerCallerLimitLayer {
    type Service = PerCallerLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PerCallerLimit {
            inner,
            budgets: self.budgets.clone(),
        }
    }
}

#[derive(Clone)]
pub struct PerCallerLimit<S> {
    inner: S,
    budgets: Arc<Budgets>,
}

/// The verified certificate's subject, from the connection information
/// tonic attaches to every request.
fn peer<B>(request: &http::Request<B>) -> Option<PeerIdentity> {
    request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .and_then(|certs| {
            certs
                .first()
                .and_then(|leaf| PeerIdentity::from_der(leaf.as_ref()))
        })
}

/// Whose budget a request draws on: the certificate's subject or, on the
/// gateway's connection (as the policy names it), whom it calls for.
fn caller<B>(request: &http::Request<B>, policy: &PolicyHandle) -> Option<PeerIdentity> {
    let peer = peer(request)?;
    if policy.current().role_of(&peer) != Some(&Role::Gateway) {
        return Some(peer);
    }
    let mut named = http::HeaderMap::new();
    if let Some(value) = request.headers().get(forwarded::CALLER_HEADER) {
        named.insert(forwarded::CALLER_HEADER, value.clone());
    }
    let forwarded_for = tonic::metadata::MetadataMap::from_headers(named)
        .get_bin(forwarded::CALLER_HEADER)
        .and_then(|value| value.to_bytes().ok())
        .and_then(|bytes| forwarded::decode_identity(&bytes));
    Some(forwarded_for.unwrap_or(peer))
}

impl<S, B> Service<http::Request<B>> for PerCallerLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(HEALTH_PATH) {
            return Box::pin(self.inner.call(request));
        }
        let budget = self
            .budgets
            .budget_of(caller(&request, &self.budgets.policy).as_ref());
        match self.budgets.admit(&budget) {
            Ok(permit) => {
                request.extensions_mut().insert(Charge {
                    budgets: self.budgets.clone(),
                    key: budget.key,
                });
                let future = self.inner.call(request);
                Box::pin(async move {
                    let response = future.await;
                    drop(permit);
                    response
                })
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}
