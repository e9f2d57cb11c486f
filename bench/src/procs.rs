//! What the kernel says about a process: CPU seconds from `/proc/PID/stat`
//! (user and system time, in the fixed 100 Hz clock ticks of the proc ABI),
//! proportional set size from `smaps_rollup` and peak resident size
//! (`VmHWM`) from `status`. Linux only, as the benchmark is.
use anyhow::{Context, Result};

/// Clock ticks a second in /proc (USER_HZ, fixed at 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of /proc/PID/stat after the command name, which is in
/// parentheses and may itself hold spaces.
fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    let after = text
        .rfind(')')
        .map(|end| &text[end + 1..])
        .context("unreadable /proc stat")?;
    Ok(after.split_whitespace().map(str::to_owned).collect())
}

/// The field numbered `n` in proc(5) (1-based; 3 is the state).
fn field(fields: &[String], n: usize) -> u64 {
    fields
        .get(n - 3)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds a process has used; with `children`, also those of its
/// children that have exited and been waited for (PostgreSQL's backends).
pub fn cpu_seconds(pid: u32, children: bool) -> Result<f64> {
    let fields = stat_fields(pid)?;
    let mut ticks = field(&fields, 14) + field(&fields, 15);
    if children {
        ticks += field(&fields, 16) + field(&fields, 17);
    }
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// The machine's cores' time so far, in ticks summed over every core, from
/// the first line of /proc/stat: all of it, and the part the hypervisor
/// gave to other machines while this one's were ready to run ("steal"),
/// which no process's CPU seconds show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreTicks {
    pub stolen: u64,
    pub total: u64,
}

impl CoreTicks {
    pub fn read() -> Self {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // cpu  user nice system idle iowait irq softirq steal guest guest_nice;
        // a guest's time is counted in user's already.
        let ticks: Vec<u64> = text
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|ticks| ticks.parse().unwrap_or(0))
            .collect();
        Self {
            stolen: ticks.get(7).copied().unwrap_or(0),
            total: ticks.iter().sum(),
        }
    }

    /// The ticks between `earlier` and this reading.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            stolen: self.stolen.saturating_sub(earlier.stolen),
            total: self.total.saturating_sub(earlier.total),
        }
    }

    pub fn add(&mut self, other: Self) {
        self.stolen += other.stolen;
        self.total += other.total;
    }

    /// The share stolen, in percent.
    pub fn stolen_percent(self) -> f64 {
        100.0 * self.stolen as f64 / self.total.max(1) as f64
    }
}

/// The parent of a process.
pub fn parent(pid: u32) -> Result<u32> {
    Ok(field(&stat_fields(pid)?, 4) as u32)
}

/// The processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| parent(*candidate).ok() == Some(pid))
        .collect()
}

/// A `Key: value kB` line of a /proc file, in KiB.
fn kib(path: &str, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no {key} in {path}"))
}

/// Proportional set size: resident memory, shared pages divided among
/// the processes sharing them.
pub fn pss_kib(pid: u32) -> Result<u64> {
    kib(&format!("/proc/{pid}/smaps_rollup"), "Pss")
}

/// Private memory (unique set size): resident pages no other process shares.
pub fn private_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    Ok(kib(&path, "Private_Clean")? + kib(&path, "Private_Dirty")?)
}

/// The largest resident set size the process has had.
pub fn peak_kib(pid: u32) -> Result<u64> {
    kib(&format!("/proc/{pid}/status"), "VmHWM")
}

/// A group of processes whose CPU is counted together: a server, or a
/// server with its worker or backend children.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Counted with the time of children that exited (a PostgreSQL
    /// postmaster, an nginx master); their live children are added.
    pub root: Option<u32>,
    pub pids: Vec<u32>,
}

impl Group {
    pub fn of(name: impl Into<String>, pids: Vec<u32>) -> Self {
        Self {
            name: name.into(),
            root: None,
            pids,
        }
    }

    /// A parent process and, at each reading, every child it has then.
    pub fn tree(name: impl Into<String>, root: u32) -> Self {
        Self {
            name: name.into(),
            root: Some(root),
            pids: Vec::new(),
        }
    }

    /// CPU seconds used so far by the group.
    pub fn cpu_seconds(&self) -> f64 {
        let mut total: f64 = self
            .pids
            .iter()
            .filter_map(|pid| cpu_seconds(*pid, false).ok())
            .sum();
        if let Some(root) = self.root {
            total += cpu_seconds(root, true).unwrap_or(0.0);
            total += children(root)
                .iter()
                .filter_map(|pid| cpu_seconds(*pid, false).ok())
                .sum::<f64>();
        }
        total
    }
}

/// CPU seconds of several groups, read at one moment.
pub fn snapshot(groups: &[Group]) -> Vec<f64> {
    groups.iter().map(Group::cpu_seconds).collect()
}
