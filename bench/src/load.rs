//! The load generator: closed loop (a fixed number of requests in flight,
//! each sent when the one before it answers) and open loop (requests sent
//! at a fixed rate whatever the answers, each timed from when it was due,
//! so a stall shows in the latencies instead of hiding them). Latencies go
//! into an HDR histogram in microseconds.
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

/// Latencies from one microsecond to a minute, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds")
}

/// What one run measured.
#[derive(Clone)]
pub struct Outcome {
    pub latencies: Histogram<u64>,
    pub errors: u64,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    fn new() -> Self {
        Self {
            latencies: histogram(),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, latency: Duration, result: Result<(), String>) {
        match result {
            Ok(()) => self.latencies.saturating_record(latency.as_micros() as u64),
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }

    /// Requests answered successfully.
    pub fn count(&self) -> u64 {
        self.latencies.len()
    }

    /// Answered requests a second.
    pub fn throughput(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q`, in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latencies.value_at_quantile(q) as f64 / 1000.0
    }

    /// Adds another run's measurements to this one (rounds of one path).
    pub fn merge(&mut self, other: &Outcome) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms share bounds");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.elapsed += other.elapsed;
    }

    pub fn empty() -> Self {
        Self::new()
    }
}

/// Sends requests from `concurrency` workers, each one at a time, for
/// `duration`. `request(n)` makes the n-th request.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Outcome
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut outcome = Outcome::new();
            let mut n = worker as u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let result = request(n).await;
                outcome.record(sent.elapsed(), result);
                n += concurrency as u64;
            }
            outcome
        }));
    }
    let mut total = Outcome::new();
    for worker in workers {
        let outcome = worker.await.expect("load worker panicked");
        total.merge(&outcome);
    }
    total.elapsed = start.elapsed();
    total
}

/// Sends `rate` requests a second for `duration`, each when it is due,
/// however many are still unanswered; each latency runs from when the
/// request was due.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> Outcome
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total_requests = (duration.as_secs_f64() * rate).ceil() as u64;
    let outcome = Arc::new(Mutex::new(Outcome::new()));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total_requests {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let request = request.clone();
        let outcome = outcome.clone();
        tasks.spawn(async move {
            let result = request(n).await;
            let latency = due.elapsed();
            outcome.lock().await.record(latency, result);
        });
        // Reap finished requests as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut total = outcome.lock().await.clone();
    total.elapsed = start.elapsed();
    total
}

/// The loopback round trip of this machine: one byte each way over a TCP
/// connection on 127.0.0.1 with Nagle off, `samples` times.
pub async fn loopback_round_trip(samples: u32) -> anyhow::Result<Histogram<u64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        while socket.read_exact(&mut byte).await.is_ok() {
            socket.write_all(&byte).await?;
        }
        anyhow::Ok(())
    });
    let mut socket = tokio::net::TcpStream::connect(address).await?;
    socket.set_nodelay(true)?;
    let mut latencies = histogram();
    let mut byte = [7u8; 1];
    for _ in 0..samples {
        let sent = Instant::now();
        socket.write_all(&byte).await?;
        socket.read_exact(&mut byte).await?;
        latencies.saturating_record(sent.elapsed().as_nanos().div_ceil(1000) as u64);
    }
    drop(socket);
    echo.await??;
    Ok(latencies)
}
