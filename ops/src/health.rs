//! gRPC health (`grpc.health.v1`) as probes and load balancers read it: the
//! server's own service and the server as a whole (the empty service name,
//! which `grpc_health_probe`, Kubernetes gRPC probes and load balancers ask
//! by default) always reported together. Not serving until the database
//! first answers; serving while it does; not serving while it does not, and
//! from the moment a graceful stop begins, for the drain period before the
//! server stops taking calls, so that whatever routes to it stops first.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// The server's health; see the module documentation.
pub struct Health {
    reporter: HealthReporter,
    service: &'static str,
    /// Whether a graceful stop has begun; under the lock, so a database
    /// check finishing late cannot report serving again.
    draining: Mutex<bool>,
}

impl Health {
    /// Both names not serving, until [`Health::set`] says otherwise.
    pub async fn new(reporter: HealthReporter, service: &'static str) -> Arc<Self> {
        let health = Self {
            reporter,
            service,
            draining: Mutex::new(false),
        };
        health.report(ServingStatus::NotServing).await;
        Arc::new(health)
    }

    async fn report(&self, status: ServingStatus) {
        for name in ["", self.service] {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// Serving or not, as the database answers; nothing once draining.
    pub async fn set(&self, up: bool) {
        let draining = self.draining.lock().await;
        if !*draining {
            self.report(if up {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            })
            .await;
        }
    }

    /// Not serving from now on.
    pub async fn drain(&self) {
        let mut draining = self.draining.lock().await;
        *draining = true;
        self.report(ServingStatus::NotServing).await;
    }
}

/// Completes `period` after `shutdown` does, reporting not serving in
/// between: the server's graceful stop, passed to tonic's
/// `serve_with_incoming_shutdown`.
pub async fn drain_after(
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send,
    period: Duration,
) {
    shutdown.await;
    health.drain().await;
    if !period.is_zero() {
        tracing::info!(
            seconds = period.as_secs_f64(),
            "draining: health NOT_SERVING"
        );
        tokio::time::sleep(period).await;
    }
}
