//! `cpbench run`: the whole benchmark in one go, printing one table per
//! question. Everything is measured side by side in this one run, and the
//! answers are ratios, because the machine is shared and noisy: paths are
//! interleaved round by round, and CPU is read from /proc for each process
//! involved before and after each measurement.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use contactpoint_proto::v1 as pb;
use pb::authority_node_client::AuthorityNodeClient;
use pb::gateway_client::GatewayClient;
use tonic::transport::Channel;

use crate::fleet::{self, channel, wait_serving, Databases, Server, Workspace};
use crate::load::{self, Outcome};
use crate::population::{read_authorities, Authority, Population};
use crate::procs::{self, Group};

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
}

/// One table of the report.
pub struct Section {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Section {
    fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::ASCII_MARKDOWN)
            .set_header(&self.header);
        for row in &self.rows {
            table.add_row(row);
        }
        format!("### {}\n\n{table}\n", self.title)
    }
}

fn f(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    numerator / denominator.max(1e-12)
}

/// The lookup paths of part a.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Direct,
    Gateway,
    Nginx,
    /// Through the gateway build given by `--compare-gateway`.
    Compared,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Direct => "client -> node",
            Path::Gateway => "client -> gateway -> node",
            Path::Nginx => "client -> nginx -> node",
            Path::Compared => "client -> compared gateway -> node",
        }
    }
}

/// The clients of part a, with the identifiers to look up.
#[derive(Clone)]
struct Lookups {
    direct: AuthorityNodeClient<Channel>,
    gateway: GatewayClient<Channel>,
    nginx: AuthorityNodeClient<Channel>,
    compared: Option<GatewayClient<Channel>>,
    ids: Arc<Vec<String>>,
}

fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl Lookups {
    /// The n-th lookup by `path`: the same request whichever the path.
    fn request(
        &self,
        path: Path,
        n: u64,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let request = pb::GetRecordRequest {
            id: self.ids[n as usize % self.ids.len()].clone(),
            reason: "benchmark lookup".into(),
            ..Default::default()
        };
        let (node, gateway) = match path {
            Path::Direct => (Some(self.direct.clone()), None),
            Path::Nginx => (Some(self.nginx.clone()), None),
            Path::Gateway => (None, Some(self.gateway.clone())),
            Path::Compared => (None, self.compared.clone()),
        };
        async move {
            let answer = match (node, gateway) {
                (Some(mut node), _) => node.get_record(request).await.map(drop),
                (None, Some(mut gateway)) => gateway.get_record(request).await.map(drop),
                (None, None) => unreachable!("a path is measured only with its client"),
            };
            answer.map_err(status_text)
        }
    }
}

/// What a measurement used: the CPU seconds of each group, and the
/// machine's cores' time meanwhile, with the part the hypervisor took.
struct Used {
    cpu: Vec<f64>,
    cores: procs::CoreTicks,
}

/// Runs `work` and returns what it measured with what it used.
async fn with_cpu<Fut>(groups: &[Group], work: Fut) -> (Outcome, Used)
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
struct Tally {
    outcome: Outcome,
    cpu: Vec<f64>,
    cores: procs::CoreTicks,
}

impl Tally {
    fn new(groups: usize) -> Self {
        Self {
            outcome: Outcome::empty(),
            cpu: vec![0.0; groups],
            cores: procs::CoreTicks::default(),
        }
    }

    fn add(&mut self, outcome: &Outcome, cpu: &[f64], cores: procs::CoreTicks) {
        self.outcome.merge(outcome);
        for (total, used) in self.cpu.iter_mut().zip(cpu) {
            *total += used;
        }
        self.cores.add(cores);
    }

    /// Milliseconds of CPU per answered request, for each group.
    fn cpu_ms_per_request(&self) -> Vec<f64> {
        let count = self.outcome.count().max(1) as f64;
        self.cpu
            .iter()
            .map(|seconds| seconds * 1000.0 / count)
            .collect()
    }

    fn check(&self, what: &str) -> Result<()> {
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
struct Memory {
    pss: u64,
    private: u64,
    peak: u64,
}

impl Memory {
    fn read(pid: u32) -> Result<Self> {
        Ok(Self {
            pss: procs::pss_kib(pid)?,
            private: procs::private_kib(pid)?,
            peak: procs::peak_kib(pid)?,
        })
    }

    fn max(self, other: Self) -> Self {
        Self {
            pss: self.pss.max(other.pss),
            private: self.private.max(other.private),
            peak: self.peak.max(other.peak),
        }
    }
}

/// The `i`th search of `queries` through `client`, which must have asked
/// every one of the `n` authorities and heard from all of them.
fn search(
    client: &GatewayClient<Channel>,
    queries: &Arc<Vec<pb::SearchRecordsRequest>>,
    n: usize,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
       + Clone
       + Send
       + 'static {
    let (client, queries) = (client.clone(), queries.clone());
    move |i| {
        let mut client = client.clone();
        let request = queries[i as usize % queries.len()].clone();
        Box::pin(async move {
            let answer = client.search_records(request).await.map_err(status_text)?;
            let answer = answer.into_inner();
            if !answer.unanswered.is_empty() || answer.authorities_asked as usize != n {
                return Err(format!(
                    "partial: {} of {n} authorities unanswered",
                    answer.unanswered.len()
                ));
            }
            Ok(())
        })
    }
}

/// Samples a process's memory while `work` runs; returns the largest seen.
async fn sampling_memory<T>(pid: u32, work: impl std::future::Future<Output = T>) -> (T, Memory) {
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
async fn idle_memory(pid: u32) -> Result<Memory> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Memory::read(pid)
}

fn mib(kib: u64) -> String {
    f(kib as f64 / 1024.0, 1)
}

/// Loads `records` at a node through LoadRecords; returns the identifiers.
async fn load_records(
    address: std::net::SocketAddr,
    files: &contactpoint_mtls::TlsFiles,
    records: Vec<pb::CreateRecordRequest>,
) -> Result<Vec<String>> {
    let mut client = AuthorityNodeClient::new(channel(address, files).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut answers = client
        .load_records(tokio_stream::iter(records))
        .await?
        .into_inner();
    let mut ids = Vec::new();
    while let Some(batch) = answers.message().await? {
        if let Some(rejected) = batch.rejected.first() {
            bail!(
                "the node refused generated record {}: {}",
                rejected.index,
                rejected.reason
            );
        }
        ids.extend(batch.loaded.into_iter().map(|loaded| loaded.id));
    }
    Ok(ids)
}

/// The tables a node's load writes, which `psql \copy` writes in turn.
const LOADED_TABLES: [&str; 10] = [
    "child_record",
    "routing_outbox",
    "former_name",
    "body_identifier",
    "record_metadata",
    "contact",
    "education",
    "service",
    "caf_assessment",
    "lead_professional",
];

fn psql(url: &str, args: &[&str]) -> Result<()> {
    let output = std::process::Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .context("cannot run psql")?;
    if !output.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// Runs the benchmark; returns its tables.
pub async fn run(args: &RunArgs) -> Result<Vec<Section>> {
    let mut report = Vec::new();
    let rounds = args.rounds.max(1);
    let seconds = Duration::from_secs_f64(args.seconds);

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

    let all = read_authorities(&args.authorities)?;
    let largest_n = args
        .nodes
        .iter()
        .copied()
        .max()
        .unwrap_or(3)
        .clamp(1, all.len());
    let authorities: Vec<Authority> = all[..largest_n].to_vec();
    let today = chrono::Utc::now().date_naive();
    let population = Population::new(args.seed, args.records, today, authorities.clone());
    // The largest authority's node is the one measured (bulk load, lookups, memory).
    let sizes = population.sizes().to_vec();
    let largest = (0..sizes.len())
        .max_by_key(|index| sizes[*index])
        .unwrap_or(0);

    eprintln!("cpbench: certificates, policy and {largest_n} databases");
    let work = Workspace::new(
        &args.dir,
        Some(args.node_threads).filter(|n| *n > 0),
        Some(args.gateway_threads).filter(|n| *n > 0),
    )?;
    work.issue_certificates(&authorities)?;
    work.write_policy(&authorities)?;
    let databases = Databases::open(&args.admin_url, &args.database_prefix).await?;
    databases.drop_all().await?;
    databases.node_template().await?;
    let mut node_urls = Vec::new();
    for authority in &authorities {
        node_urls.push(
            databases
                .create(&authority.code.to_lowercase(), Some("template"))
                .await?,
        );
    }

    eprintln!("cpbench: starting {largest_n} node processes");
    let mut nodes: Vec<Server> = Vec::new();
    for (index, (authority, url)) in authorities.iter().zip(&node_urls).enumerate() {
        nodes.push(fleet::start_node(
            &work,
            authority,
            "",
            url.clone(),
            args.pool_size,
            index != largest,
        )?);
    }
    for (node, authority) in nodes.iter_mut().zip(&authorities) {
        let files = work.files(&format!("loader-{}", authority.code));
        wait_serving(node, &files, "contactpoint.v1.AuthorityNode").await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fleet_memory: Vec<Memory> = nodes
        .iter()
        .filter_map(|node| Memory::read(node.pid()).ok())
        .collect();

    // c. Bulk load: the largest authority alone and timed, then the rest.
    let code = authorities[largest].code.clone();
    eprintln!(
        "cpbench: c. loading {} records at {} ({}) through LoadRecords",
        sizes[largest], authorities[largest].name, code
    );
    let records: Vec<_> = population.records(largest).collect();
    let loaded_count = records.len();
    let started = Instant::now();
    let ids = load_records(
        nodes[largest].address,
        &work.files(&format!("loader-{code}")),
        records.clone(),
    )
    .await?;
    let node_load = started.elapsed();

    eprintln!("cpbench: c. the same rows with psql \\copy");
    let copies = work.path("copy");
    std::fs::create_dir_all(&copies)?;
    let mut dump = Vec::new();
    let mut restore = String::new();
    for table in LOADED_TABLES {
        let file = copies.join(format!("{table}.tsv"));
        dump.push("-c".to_owned());
        dump.push(format!("\\copy {table} to '{}'", file.display()));
        restore.push_str(&format!("\\copy {table} from '{}'\n", file.display()));
    }
    let dump: Vec<&str> = dump.iter().map(String::as_str).collect();
    psql(&node_urls[largest], &dump)?;
    let script = copies.join("restore.sql");
    std::fs::write(&script, restore)?;
    let target = databases.create("copy_target", Some("template")).await?;
    let started = Instant::now();
    psql(&target, &["-1", "-f", script.to_str().context("path")?])?;
    let psql_load = started.elapsed();

    // More rounds, interleaved, each into a fresh database (and, for the
    // node, a fresh node process on it): one load takes under a second at
    // this size, so one of each would be mostly noise.
    let (mut node_load, mut psql_load) = (node_load, psql_load);
    for round in 1..rounds {
        let name = format!("load_{round}");
        let url = databases.create(&name, Some("template")).await?;
        let mut node = fleet::start_node(
            &work,
            &authorities[largest],
            &format!("-load-{round}"),
            url,
            args.pool_size,
            false,
        )?;
        let loader = work.files(&format!("loader-{code}"));
        wait_serving(&mut node, &loader, "contactpoint.v1.AuthorityNode").await?;
        let started = Instant::now();
        load_records(node.address, &loader, records.clone()).await?;
        node_load += started.elapsed();
        drop(node);
        let target = databases
            .create(&format!("copy_{round}"), Some("template"))
            .await?;
        let started = Instant::now();
        psql(&target, &["-1", "-f", script.to_str().context("path")?])?;
        psql_load += started.elapsed();
    }
    let node_rate = (loaded_count * rounds) as f64 / node_load.as_secs_f64();
    let psql_rate = (loaded_count * rounds) as f64 / psql_load.as_secs_f64();
    let mut section = Section::new(
        format!(
            "c. Bulk load of {} ({loaded_count} records with their entries), {rounds} times each, interleaved, each into a fresh database",
            authorities[largest].name
        ),
        &["path", "seconds in all", "records/s", "ratio to psql \\copy"],
    );
    section.row(vec![
        "cpctl-style LoadRecords stream to the node (mTLS, validated, audited)".into(),
        f(node_load.as_secs_f64(), 2),
        f(node_rate, 0),
        f(ratio(node_rate, psql_rate), 2),
    ]);
    section.row(vec![
        "psql \\copy of the same rows, one transaction".into(),
        f(psql_load.as_secs_f64(), 2),
        f(psql_rate, 0),
        "1.00".into(),
    ]);
    report.push(section);

    eprintln!("cpbench: loading the other authorities");
    let mut loads = tokio::task::JoinSet::new();
    let mut pending: Vec<usize> = (0..authorities.len()).filter(|i| *i != largest).collect();
    pending.reverse();
    loop {
        while loads.len() < 2 {
            let Some(index) = pending.pop() else { break };
            let records: Vec<_> = population.records(index).collect();
            let files = work.files(&format!("loader-{}", authorities[index].code));
            let address = nodes[index].address;
            loads.spawn(async move { load_records(address, &files, records).await });
        }
        match loads.join_next().await {
            Some(done) => {
                done??;
            }
            None => break,
        }
    }

    eprintln!("cpbench: VACUUM (ANALYZE) of every node's database and a CHECKPOINT, as after any bulk load");
    for authority in &authorities {
        databases.vacuum(&authority.code.to_lowercase()).await?;
    }
    // And a checkpoint, so the load's dirty pages are on disk before the
    // measurements rather than flushed in the middle of them.
    databases.checkpoint().await?;

    // The lookup node starts afresh, so its memory is measured from a clean start.
    eprintln!("cpbench: a. and d. lookups and memory");
    let reader = work.files("reader");
    drop(nodes.remove(largest));
    let fresh = fleet::start_node(
        &work,
        &authorities[largest],
        "-lookup",
        node_urls[largest].clone(),
        args.pool_size,
        false,
    )?;
    nodes.insert(largest, fresh);
    wait_serving(
        &mut nodes[largest],
        &reader,
        "contactpoint.v1.AuthorityNode",
    )
    .await?;
    let node_pid = nodes[largest].pid();
    let node_idle = idle_memory(node_pid).await?;

    let mut bare = fleet::start_bare(&work)?;
    wait_serving(&mut bare, &reader, "").await?;
    let bare_idle = idle_memory(bare.pid()).await?;

    let addresses: Vec<(&Authority, std::net::SocketAddr)> = authorities
        .iter()
        .zip(&nodes)
        .map(|(authority, node)| (authority, node.address))
        .collect();
    // The gateway of the whole federation now; the smaller ones for part b.
    let mut gateways: Vec<(usize, Server)> = Vec::new();
    let start_gateway = |n: usize| {
        let databases = &databases;
        let work = &work;
        let reader = &reader;
        let addresses = &addresses;
        async move {
            let url = databases.create(&format!("gateway_{n}"), None).await?;
            let program = work.gateway_program();
            let mut gateway =
                fleet::start_gateway(work, &program, &n.to_string(), url, &addresses[..n])?;
            wait_serving(&mut gateway, reader, "contactpoint.v1.Gateway").await?;
            anyhow::Ok((n, gateway))
        }
    };
    gateways.push(start_gateway(largest_n).await?);
    // Lookups go through the gateway of the whole federation, once its
    // index has caught up with the lookup node's records.
    let gateway_address = gateways
        .iter()
        .find(|(size, _)| *size == largest_n)
        .map(|(_, gateway)| gateway.address)
        .context("no gateway over every node")?;
    let gateway_pid = gateways
        .iter()
        .find(|(size, _)| *size == largest_n)
        .map(|(_, gateway)| gateway.pid())
        .context("no gateway over every node")?;

    // The gateway build compared with this one, over the same nodes.
    let compared = match &args.compare_gateway {
        Some(program) => {
            let url = databases.create("gateway_compared", None).await?;
            let mut gateway =
                fleet::start_gateway(&work, program, "compared", url, &addresses[..largest_n])?;
            wait_serving(&mut gateway, &reader, "contactpoint.v1.Gateway").await?;
            Some(gateway)
        }
        None => None,
    };

    let mut nginx = fleet::start_nginx(&work, &args.nginx, nodes[largest].address)?;
    wait_serving(&mut nginx, &reader, "contactpoint.v1.AuthorityNode").await?;

    let sample: Vec<String> = ids
        .iter()
        .step_by((ids.len() / 1000).max(1))
        .cloned()
        .collect();
    let lookups = Lookups {
        direct: AuthorityNodeClient::new(channel(nodes[largest].address, &reader).await?),
        gateway: GatewayClient::new(channel(gateway_address, &reader).await?),
        nginx: AuthorityNodeClient::new(channel(nginx.address, &reader).await?),
        compared: match &compared {
            Some(gateway) => Some(GatewayClient::new(channel(gateway.address, &reader).await?)),
            None => None,
        },
        ids: Arc::new(sample),
    };
    let mut paths = vec![Path::Direct, Path::Gateway, Path::Nginx];
    let mut gateway_databases = vec![format!("gateway_{largest_n}")];
    if compared.is_some() {
        paths.push(Path::Compared);
        gateway_databases.push("gateway_compared".to_owned());
    }
    // A lookup through the gateway answers before its index has caught up
    // (it falls back to the authority that minted the identifier), so wait
    // on the index itself: catching up is not part of any measurement.
    let routed = Instant::now();
    let loaded: u64 = population.sizes().iter().sum();
    for database in &gateway_databases {
        while (databases.routes(database).await? as u64) < loaded {
            if routed.elapsed() > Duration::from_secs(600) {
                bail!("the gateway did not learn where the loaded records are within ten minutes");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Warm every path (connections, caches) before measuring.
    for path in paths.iter().copied() {
        let lookups = lookups.clone();
        load::closed_loop(4, Duration::from_millis(500), move |n| {
            lookups.request(path, n)
        })
        .await;
    }
    // PostgreSQL's share: the backends serving the node's and the gateway's databases.
    let lookup_databases = [code.to_lowercase(), format!("gateway_{largest_n}")];
    let lookup_databases: Vec<&str> = lookup_databases.iter().map(String::as_str).collect();
    let mut groups = vec![
        Group::of("client", vec![std::process::id()]),
        Group::of("node", vec![node_pid]),
        Group::of("gateway", vec![gateway_pid]),
        Group::tree("nginx", nginx.pid()),
        Group::of("postgres", databases.backends(&lookup_databases).await?),
    ];
    // A compared build in groups of its own: while another path is measured
    // it is not idle (it follows every node's feed, as the other gateway
    // does), and its figures are read from its own row.
    if let Some(gateway) = &compared {
        groups.push(Group::of("compared gateway", vec![gateway.pid()]));
        groups.push(Group::of(
            "postgres of the compared gateway",
            databases.backends(&["gateway_compared"]).await?,
        ));
    }

    let mut latency: Vec<Tally> = paths.iter().map(|_| Tally::new(groups.len())).collect();
    let mut throughput: Vec<Tally> = paths.iter().map(|_| Tally::new(groups.len())).collect();
    let mut node_loaded = Memory::default();
    for round in 0..rounds {
        for k in 0..paths.len() {
            let index = (round + k) % paths.len();
            let path = paths[index];
            let client = lookups.clone();
            let (outcome, used) = with_cpu(
                &groups,
                load::closed_loop(1, seconds, move |n| client.request(path, n)),
            )
            .await;
            latency[index].add(&outcome, &used.cpu, used.cores);
        }
        for k in 0..paths.len() {
            let index = (round + k) % paths.len();
            let path = paths[index];
            let client = lookups.clone();
            let ((outcome, used), memory) = sampling_memory(
                node_pid,
                with_cpu(
                    &groups,
                    load::closed_loop(args.concurrency, seconds, move |n| client.request(path, n)),
                ),
            )
            .await;
            node_loaded = node_loaded.max(memory);
            throughput[index].add(&outcome, &used.cpu, used.cores);
        }
    }
    for (index, path) in paths.iter().enumerate() {
        latency[index].check(path.label())?;
        throughput[index].check(path.label())?;
    }

    // Open loop: every path at half the slowest path's throughput.
    let rate = throughput
        .iter()
        .map(|tally| tally.outcome.throughput())
        .fold(f64::INFINITY, f64::min)
        * 0.5;
    let mut open: Vec<Outcome> = Vec::new();
    for path in paths.iter().copied() {
        let client = lookups.clone();
        let outcome = load::open_loop(rate, seconds.mul_f64(rounds as f64), move |n| {
            client.request(path, n)
        })
        .await;
        open.push(outcome);
    }
    // The compared build is measured in part a only.
    drop(compared);

    // d. The bare server under the same load (health checks).
    let bare_channel = channel(bare.address, &reader).await?;
    let (bare_outcome, bare_loaded) = sampling_memory(
        bare.pid(),
        load::closed_loop(
            args.concurrency,
            seconds.mul_f64(rounds as f64),
            move |_| {
                let mut client =
                    tonic_health::pb::health_client::HealthClient::new(bare_channel.clone());
                async move {
                    client
                        .check(tonic_health::pb::HealthCheckRequest::default())
                        .await
                        .map(drop)
                        .map_err(status_text)
                }
            },
        ),
    )
    .await;

    let group_names: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
    let mut header = vec!["path", "p50 ms", "p99 ms", "p99.9 ms", "p50 in RTTs"];
    let cpu_headers: Vec<String> = group_names
        .iter()
        .map(|name| format!("CPU ms/req {name}"))
        .collect();
    header.extend(cpu_headers.iter().map(String::as_str));
    header.push("CPU ms/req total");
    header.push("steal %");
    let mut section = Section::new(
        format!(
            "a. Lookup by identifier, one request in flight ({} requests a path over {rounds} interleaved rounds)",
            latency[0].outcome.count()
        ),
        &header,
    );
    for (index, path) in paths.iter().enumerate() {
        let tally = &latency[index];
        let cpu = tally.cpu_ms_per_request();
        let mut row = vec![
            path.label().to_owned(),
            f(tally.outcome.ms(0.5), 3),
            f(tally.outcome.ms(0.99), 3),
            f(tally.outcome.ms(0.999), 3),
            f(tally.outcome.ms(0.5) / rtt_ms, 1),
        ];
        row.extend(cpu.iter().map(|ms| f(*ms, 3)));
        row.push(f(cpu.iter().sum(), 3));
        row.push(f(tally.cores.stolen_percent(), 1));
        section.row(row);
    }
    report.push(section);

    let mut section = Section::new(
        format!(
            "a. Lookup throughput, {} requests in flight",
            args.concurrency
        ),
        &[
            "path",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "ratio to direct",
            "CPU ms/req total",
            "steal %",
        ],
    );
    let direct_throughput = throughput[0].outcome.throughput();
    for (index, path) in paths.iter().enumerate() {
        let tally = &throughput[index];
        section.row(vec![
            path.label().to_owned(),
            f(tally.outcome.throughput(), 0),
            f(tally.outcome.ms(0.5), 3),
            f(tally.outcome.ms(0.99), 3),
            f(ratio(tally.outcome.throughput(), direct_throughput), 2),
            f(tally.cpu_ms_per_request().iter().sum(), 3),
            f(tally.cores.stolen_percent(), 1),
        ]);
    }
    report.push(section);

    let mut section = Section::new(
        format!(
            "a. Lookup, open loop at {rate:.0} requests/s (half the slowest path's throughput)"
        ),
        &["path", "answered", "errors", "p50 ms", "p99 ms", "p99.9 ms"],
    );
    for (index, path) in paths.iter().enumerate() {
        let outcome = &open[index];
        section.row(vec![
            path.label().to_owned(),
            outcome.count().to_string(),
            outcome.errors.to_string(),
            f(outcome.ms(0.5), 3),
            f(outcome.ms(0.99), 3),
            f(outcome.ms(0.999), 3),
        ]);
    }
    report.push(section);

    let mut section = Section::new(
        "d. Memory in MiB: PSS (shared pages divided among the processes sharing them), private (USS) and peak resident (VmHWM)",
        &[
            "process",
            "idle PSS",
            "idle private",
            "idle peak",
            "load PSS",
            "load private",
            "load peak",
            "ratio to bare: private idle / load",
            "ratio to bare: peak idle / load",
        ],
    );
    let row = |label: String, idle: Memory, loaded: Memory| {
        vec![
            label,
            mib(idle.pss),
            mib(idle.private),
            mib(idle.peak),
            mib(loaded.pss),
            mib(loaded.private),
            mib(loaded.peak),
            format!(
                "{} / {}",
                f(ratio(idle.private as f64, bare_idle.private as f64), 2),
                f(ratio(loaded.private as f64, bare_loaded.private as f64), 2)
            ),
            format!(
                "{} / {}",
                f(ratio(idle.peak as f64, bare_idle.peak as f64), 2),
                f(ratio(loaded.peak as f64, bare_loaded.peak as f64), 2)
            ),
        ]
    };
    section.row(row(
        format!("node {} ({} records)", code, sizes[largest]),
        node_idle,
        node_loaded,
    ));
    section.row(row(
        format!("bare tonic server ({} health checks)", bare_outcome.count()),
        bare_idle,
        bare_loaded,
    ));
    if !fleet_memory.is_empty() {
        let count = fleet_memory.len() as u64;
        let mean = Memory {
            pss: fleet_memory.iter().map(|m| m.pss).sum::<u64>() / count,
            private: fleet_memory.iter().map(|m| m.private).sum::<u64>() / count,
            peak: fleet_memory.iter().map(|m| m.peak).sum::<u64>() / count,
        };
        let mut cells = row(
            format!("each of {count} nodes started, empty (mean)"),
            mean,
            Memory::default(),
        );
        for cell in &mut cells[4..] {
            cell.clear();
        }
        section.row(cells);
    }
    report.push(section);

    // b. Search across N nodes, against the floor.
    eprintln!("cpbench: b. search across {:?} nodes", args.nodes);
    let direct_searches = search_queries_at(&population, largest, 1000);
    for n in &args.nodes {
        let n = (*n).clamp(1, largest_n);
        if !gateways.iter().any(|(size, _)| *size == n) {
            gateways.push(start_gateway(n).await?);
        }
    }
    let direct_client = AuthorityNodeClient::new(channel(nodes[largest].address, &reader).await?);
    let mut search_clients = Vec::new();
    for (n, gateway) in &gateways {
        search_clients.push((
            *n,
            gateway.pid(),
            GatewayClient::new(channel(gateway.address, &reader).await?),
            search_queries(&population, *n, 1000),
        ));
    }
    let node_pids: Vec<u32> = nodes.iter().map(Server::pid).collect();
    // Warm every federation (each node's database connections and prepared
    // statements, the gateway's channels) before measuring, as for lookups,
    // and with the searches the rounds will make: each round starts again
    // from the first, so a warm-up as long as a round and a half has read
    // the pages they need, as the direct searches (hundreds a second) have
    // after their first milliseconds. A shorter one (a second) left the
    // first round's later searches reading from disk: the slowest of a
    // 153-node run, traced, were those.
    let warm = seconds.mul_f64(1.5).max(Duration::from_secs(1));
    for (n, _, client, searches) in &search_clients {
        load::closed_loop(1, warm, search(client, searches, *n)).await;
    }
    let mut direct_tally = Tally::new(0);
    let mut search_tallies: Vec<Tally> = search_clients.iter().map(|_| Tally::new(1)).collect();
    let mut firsts: Vec<_> = search_clients.iter().map(|_| load::histogram()).collect();
    for round in 0..rounds {
        let client = direct_client.clone();
        let queries = direct_searches.clone();
        let direct = load::closed_loop(1, seconds, move |n| {
            let mut client = client.clone();
            let request = queries[n as usize % queries.len()].clone();
            async move {
                client
                    .search_records(request)
                    .await
                    .map(drop)
                    .map_err(status_text)
            }
        });
        let (outcome, used) = with_cpu(&[], direct).await;
        direct_tally.add(&outcome, &[], used.cores);
        for k in 0..search_clients.len() {
            let index = (round + k) % search_clients.len();
            let (n, gateway_pid, client, searches) = &search_clients[index];
            let mut names: Vec<String> = authorities[..*n]
                .iter()
                .map(|authority| authority.code.to_lowercase())
                .collect();
            names.push(format!("gateway_{n}"));
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let search_groups = vec![
                Group::of("client", vec![std::process::id()]),
                Group::of("gateway", vec![*gateway_pid]),
                Group::of("nodes", node_pids[..*n].to_vec()),
                Group::of("postgres", databases.backends(&names).await?),
            ];
            // The first search after the switch from another federation
            // wakes a gateway and nodes idle for seconds (traced: 1.1 to
            // 1.6 times the round's median): timed on its own, and reported
            // beside the rounds rather than as one in twenty of their samples.
            let sent = Instant::now();
            search(client, searches, *n)(0)
                .await
                .map_err(|error| anyhow::anyhow!("search across {n} nodes: {error}"))?;
            firsts[index].saturating_record(sent.elapsed().as_micros() as u64);
            let (outcome, used) = with_cpu(
                &search_groups,
                load::closed_loop(1, seconds, search(client, searches, *n)),
            )
            .await;
            search_tallies[index].add(&outcome, &[used.cpu.iter().sum()], used.cores);
        }
    }
    direct_tally.check("direct search")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut section = Section::new(
        format!("b. Search by surname and date of birth, one in flight, {cores} cores; floor = max(one direct search, total CPU per search / cores)"),
        &["nodes", "searches", "p50 ms", "p99 ms", "CPU ms/search (all processes)", "floor p50 ms", "floor p99 ms", "p50 / floor", "p99 / floor", "steal %", "first after a switch: median ms (rounds)"],
    );
    section.row(vec![
        format!("1 (direct to {code})"),
        direct_tally.outcome.count().to_string(),
        f(direct_tally.outcome.ms(0.5), 3),
        f(direct_tally.outcome.ms(0.99), 3),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        f(direct_tally.cores.stolen_percent(), 1),
        "".into(),
    ]);
    let mut order: Vec<usize> = (0..search_clients.len()).collect();
    order.sort_by_key(|index| search_clients[*index].0);
    for index in order {
        let tally = &search_tallies[index];
        tally.check(&format!("search across {} nodes", search_clients[index].0))?;
        let cpu_ms = tally.cpu_ms_per_request()[0];
        let floor_50 = direct_tally.outcome.ms(0.5).max(cpu_ms / cores);
        let floor_99 = direct_tally.outcome.ms(0.99).max(cpu_ms / cores);
        section.row(vec![
            search_clients[index].0.to_string(),
            tally.outcome.count().to_string(),
            f(tally.outcome.ms(0.5), 3),
            f(tally.outcome.ms(0.99), 3),
            f(cpu_ms, 3),
            f(floor_50, 3),
            f(floor_99, 3),
            f(ratio(tally.outcome.ms(0.5), floor_50), 2),
            f(ratio(tally.outcome.ms(0.99), floor_99), 2),
            f(tally.cores.stolen_percent(), 1),
            format!(
                "{} ({})",
                f(firsts[index].value_at_quantile(0.5) as f64 / 1000.0, 3),
                firsts[index].len()
            ),
        ]);
    }
    report.push(section);

    drop(nginx);
    drop(bare);
    drop(gateways);
    drop(nodes);
    databases.drop_all().await?;
    Ok(report)
}

/// A search for a surname and date of birth that the population holds.
fn search_for(record: &pb::CreateRecordRequest) -> pb::SearchRecordsRequest {
    let details = record.details.as_ref();
    pb::SearchRecordsRequest {
        surname: details
            .and_then(|details| details.name.as_ref())
            .map(|name| name.family_name.clone())
            .unwrap_or_default(),
        date_of_birth: details.and_then(|details| details.date_of_birth),
        reason: "benchmark search".into(),
        ..Default::default()
    }
}

/// `count` searches for children spread over the first `n` authorities
/// in proportion to their size.
fn search_queries(
    population: &Population,
    n: usize,
    count: u64,
) -> Arc<Vec<pb::SearchRecordsRequest>> {
    let sizes = &population.sizes()[..n];
    let total: u64 = sizes.iter().sum();
    let mut queries = Vec::new();
    for k in 0..count {
        // A deterministic spread: the k-th of `count` evenly spaced records.
        let mut position = (k * total.max(1)) / count.max(1);
        for (authority, size) in sizes.iter().enumerate() {
            if position < *size {
                queries.push(search_for(&population.record(authority, position)));
                break;
            }
            position -= size;
        }
    }
    Arc::new(queries)
}

/// `count` searches for children of one authority.
fn search_queries_at(
    population: &Population,
    authority: usize,
    count: u64,
) -> Arc<Vec<pb::SearchRecordsRequest>> {
    let size = population.sizes()[authority].max(1);
    Arc::new(
        (0..count)
            .map(|k| search_for(&population.record(authority, (k * size) / count % size)))
            .collect(),
    )
}
