//! `cpbench run`: the whole benchmark in one go, printing one table per
//! question. Everything is measured side by side in this one run, and the
//! answers are ratios, because the machine is shared and noisy: paths are
//! interleaved round by round, and CPU is read from /proc for each process
//! involved before and after each measurement.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::load;

mod bulk;
mod federation;
mod lookups;
mod matching;
mod measure;
mod report;
mod search;

use federation::Federation;
pub use report::Section;

/// What `cpbench run` is asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Superuser URL of the PostgreSQL server (ending in /postgres); every
    /// database the benchmark makes starts with `cpbench_`.
    #[arg(long, env = "CONTACTPOINT_PG_URL")]
    pub admin_url: String,
    /// Working folder for certificates, configuration and logs (cleared first).
    #[arg(long, default_value = ".bench")]
    pub dir: PathBuf,
    /// England's authorities (code,name).
    #[arg(long, default_value = "data/authorities.csv")]
    pub authorities: PathBuf,
    /// Records in the synthetic population, spread over the largest N's authorities.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The federation sizes to search across (one node process each).
    #[arg(long, value_delimiter = ',', default_value = "3,30,153")]
    pub nodes: Vec<usize>,
    /// Seconds of each measurement in a round.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Rounds; each round runs every path once, in a rotating order.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Requests in flight for the throughput measurements.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Worker threads of each node process but the one measured (0: tokio's
    /// default, one per core). One by default: here the other authorities'
    /// nodes share one host, as a hosting provider would run many. The node
    /// measured for bulk load, lookups and memory (the largest authority's)
    /// keeps tokio's default, as an authority's own node would.
    #[arg(long, default_value_t = 1)]
    pub node_threads: usize,
    /// Worker threads of each gateway (0: tokio's default, one per core).
    /// One by default: on this host the gateway shares two cores with every
    /// node and PostgreSQL, and one event loop spends less on waking
    /// threads, as nginx's workers do (gateways scale out side by side).
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
    /// Database connections of each node.
    #[arg(long, default_value_t = 4)]
    pub pool_size: usize,
    /// The prefix of every database the benchmark makes (and drops).
    #[arg(long, default_value = "cpbench")]
    pub database_prefix: String,
    /// nginx, for the plain gRPC proxy path.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx: PathBuf,
    /// Another build of contactpoint-gateway (its binary), measured in part a
    /// beside this one, interleaved, over the same node: before and after a
    /// change to the gateway in one run. It has a database of its own.
    #[arg(long)]
    pub compare_gateway: Option<PathBuf>,
    /// Also write the tables as Markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Instead of the parts above, part f: finding the right child (recall
    /// of tolerant search under errors of each kind, twins, the blind
    /// index's fan-out and latency) across the largest federation.
    #[arg(long)]
    pub matching: bool,
    /// Children drawn for part f (each with a twin recorded beside them).
    #[arg(long, default_value_t = 200)]
    pub matching_children: u64,
    /// With --matching: estimate the m and u probabilities of tolerant
    /// matching from the population (25 children for each drawn) and write
    /// them to this file, in the form of data/match-weights.csv.
    #[arg(long)]
    pub write_weights: Option<PathBuf>,
}

impl RunArgs {
    /// Rounds of each measurement: at least one.
    fn rounds(&self) -> usize {
        self.rounds.max(1)
    }

    /// How long each measurement of a round runs.
    fn seconds(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// Runs the benchmark; returns its tables.
pub async fn run(args: &RunArgs) -> Result<Vec<Section>> {
    let mut report = Vec::new();
    eprintln!("cpbench: e. the loopback round trip");
    let rtt = load::loopback_round_trip(20_000).await?;
    let rtt_ms = rtt.value_at_quantile(0.5) as f64 / 1000.0;
    let mut section = Section::new(
        "e. Loopback round trip (1 byte each way over TCP on 127.0.0.1)",
        &["samples", "p50 µs", "p99 µs", "p99.9 µs"],
    );
    section.row(vec![
        rtt.len().to_string(),
        rtt.value_at_quantile(0.5).to_string(),
        rtt.value_at_quantile(0.99).to_string(),
        rtt.value_at_quantile(0.999).to_string(),
    ]);
    report.push(section);

    let mut federation = Federation::start(args).await?;
    if args.matching {
        federation.load_all().await?;
        matching::measure(args, &federation, &mut report).await?;
        federation.stop().await?;
        return Ok(report);
    }
    let ids = bulk::measure(args, &federation, &mut report).await?;
    federation.load_the_rest().await?;
    let mut running = lookups::measure(args, &mut federation, &ids, rtt_ms, &mut report).await?;
    search::measure(args, &federation, &mut running.gateways, &mut report).await?;

    drop(running);
    federation.stop().await?;
    Ok(report)
}
