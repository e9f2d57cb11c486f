//! Parts a and d: the same `GetRecord` by three paths (to the node
//! directly, through the gateway, through nginx as an authority would put it
//! in front of its node; with `--compare-gateway`, through another build of
//! the gateway too), closed loop with one and with many in flight, each path
//! in turn and the order rotating each round, then open loop; and the
//! measured node's memory against a bare tonic server's under the same load.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use contactpoint_proto::v1 as pb;
use pb::authority_node_client::AuthorityNodeClient;
use pb::gateway_client::GatewayClient;
use tonic::transport::Channel;

use super::federation::Federation;
use super::measure::{idle_memory, sampling_memory, status_text, with_cpu, Memory, Tally};
use super::report::{f, mib, ratio, Section};
use super::RunArgs;
use crate::fleet::{self, channel, wait_serving, Server};
use crate::load::{self, Outcome};
use crate::population::Authority;
use crate::procs::Group;

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

/// What part a leaves running for part b and the end of the run: the
/// gateways (part b adds its smaller federations'), nginx and the bare
/// server, stopped in that order when the run ends.
pub(super) struct Running {
    _nginx: Server,
    _bare: Server,
    pub(super) gateways: Vec<(usize, Server)>,
}

/// Measures parts a and d over the federation's largest node, which it
/// restarts first so that its memory is measured from a clean start.
pub(super) async fn measure(
    args: &RunArgs,
    federation: &mut Federation,
    ids: &[String],
    rtt_ms: f64,
    report: &mut Vec<Section>,
) -> Result<Running> {
    let (rounds, seconds) = (args.rounds(), args.seconds());
    // The lookup node starts afresh, so its memory is measured from a clean start.
    eprintln!("cpbench: a. and d. lookups and memory");
    let reader = federation.work.files("reader");
    let largest = federation.largest;
    let nodes = &mut federation.nodes;
    drop(nodes.remove(largest));
    let fresh = fleet::start_node(
        &federation.work,
        &federation.authorities[largest],
        "-lookup",
        federation.node_urls[largest].clone(),
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
    let Federation {
        work,
        databases,
        authorities,
        largest_n,
        population,
        sizes,
        nodes,
        fleet_memory,
        ..
    } = &*federation;
    let (largest_n, code) = (*largest_n, federation.code());
    let node_pid = nodes[largest].pid();
    let node_idle = idle_memory(node_pid).await?;

    let mut bare = fleet::start_bare(work)?;
    wait_serving(&mut bare, &reader, "").await?;
    let bare_idle = idle_memory(bare.pid()).await?;

    let addresses: Vec<(&Authority, std::net::SocketAddr)> = authorities
        .iter()
        .zip(nodes)
        .map(|(authority, node)| (authority, node.address))
        .collect();
    // The gateway of the whole federation now; the smaller ones for part b.
    let mut gateways: Vec<(usize, Server)> = Vec::new();
    gateways.push(federation.start_gateway(largest_n, &reader).await?);
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
                fleet::start_gateway(work, program, "compared", url, &addresses[..largest_n])?;
            wait_serving(&mut gateway, &reader, "contactpoint.v1.Gateway").await?;
            Some(gateway)
        }
        None => None,
    };

    let mut nginx = fleet::start_nginx(work, &args.nginx, nodes[largest].address)?;
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
    Ok(Running {
        _nginx: nginx,
        _bare: bare,
        gateways,
    })
}
