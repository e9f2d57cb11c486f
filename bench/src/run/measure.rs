//! What every measurement shares: the CPU each group of processes used and
//! the cores' time the hypervisor took (`with_cpu`), totals per path across
//! rounds (`Tally`), and a process's memory, idle or sampled under load.
use std::time::Duration;

use anyhow::{bail, Result};

use crate::load::Outcome;
use crate::procs::{self, Group};

pub(super) fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// What a measurement used: the CPU seconds of each group, and the
/// machine's cores' time meanwhile, with the part the hypervisor took.
pub(super) struct Used {
    pub(super) cpu: Vec<f64>,
    pub(super) cores: procs::CoreTicks,
}

/// Runs `work` and returns what it measured with what it used.
pub(super) async fn with_cpu<Fut>(groups: &[Group], work: Fut) -> (Outcome, Used)
where
    Fut: std::future::Future<Output = Outcome>,
{
    let (before, cores_before) = (procs::snapshot(groups), procs::CoreTicks::read());
    let outcome = work.await;
    let (after, cores_after) = (procs::snapshot(groups), procs::CoreTicks::read());
    let cpu = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let cores = cores_after.since(cores_before);
    (outcome, Used { cpu, cores })
}

/// Per-path totals across rounds.
pub(super) struct Tally {
    pub(super) outcome: Outcome,
    pub(super) cpu: Vec<f64>,
    pub(super) cores: procs::CoreTicks,
}

impl Tally {
    pub(super) fn new(groups: usize) -> Self {
        Self {
            outcome: Outcome::empty(),
            cpu: vec![0.0; groups],
            cores: procs::CoreTicks::default(),
        }
    }

    pub(super) fn add(&mut self, outcome: &Outcome, cpu: &[f64], cores: procs::CoreTicks) {
        self.outcome.merge(outcome);
        for (total, used) in self.cpu.iter_mut().zip(cpu) {
            *total += used;
        }
        self.cores.add(cores);
    }

    /// Milliseconds of CPU per answered request, for each group.
    pub(super) fn cpu_ms_per_request(&self) -> Vec<f64> {
        let count = self.outcome.count().max(1) as f64;
        self.cpu
            .iter()
            .map(|seconds| seconds * 1000.0 / count)
            .collect()
    }

    pub(super) fn check(&self, what: &str) -> Result<()> {
        if self.outcome.errors > 0 {
            bail!(
                "{what}: {} requests failed, the first with {}",
                self.outcome.errors,
                self.outcome.first_error.as_deref().unwrap_or("?")
            );
        }
        if self.outcome.count() == 0 {
            bail!("{what}: no request was answered");
        }
        Ok(())
    }
}

/// A process's memory in KiB: proportional (PSS), private (USS) and the
/// peak resident set (VmHWM).
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Memory {
    pub(super) pss: u64,
    pub(super) private: u64,
    pub(super) peak: u64,
}

impl Memory {
    pub(super) fn read(pid: u32) -> Result<Self> {
        Ok(Self {
            pss: procs::pss_kib(pid)?,
            private: procs::private_kib(pid)?,
            peak: procs::peak_kib(pid)?,
        })
    }

    pub(super) fn max(self, other: Self) -> Self {
        Self {
            pss: self.pss.max(other.pss),
            private: self.private.max(other.private),
            peak: self.peak.max(other.peak),
        }
    }
}

/// Samples a process's memory while `work` runs; returns the largest seen.
pub(super) async fn sampling_memory<T>(
    pid: u32,
    work: impl std::future::Future<Output = T>,
) -> (T, Memory) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut largest = Memory::default();
        loop {
            largest = largest.max(Memory::read(pid).unwrap_or_default());
            tokio::select! {
                _ = &mut stopped => return largest,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    let value = work.await;
    let _ = stop.send(());
    let largest = sampler.await.unwrap_or_default();
    (value, largest.max(Memory::read(pid).unwrap_or_default()))
}

/// Idle memory of a process, after it has settled.
pub(super) async fn idle_memory(pid: u32) -> Result<Memory> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Memory::read(pid)
}
