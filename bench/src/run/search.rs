//! Part b: a search by surname and date of birth for children spread over
//! the first N authorities, one in flight, through the gateway over each N
//! asked for, rotating, and directly to the largest node; against the floor
//! max(one direct search, total CPU per search over the cores), since no
//! fan-out can answer faster than one node does, nor faster than the machine
//! can do the work.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use contactpoint_proto::v1 as pb;
use pb::authority_node_client::AuthorityNodeClient;
use pb::gateway_client::GatewayClient;
use tonic::transport::Channel;

use super::federation::Federation;
use super::measure::{status_text, with_cpu, Tally};
use super::report::{f, ratio, Section};
use super::RunArgs;
use crate::fleet::{channel, Server};
use crate::load;
use crate::population::Population;
use crate::procs::Group;

/// Measures part b, starting the gateways over the smaller federations
/// beside part a's over them all.
pub(super) async fn measure(
    args: &RunArgs,
    federation: &Federation,
    gateways: &mut Vec<(usize, Server)>,
    report: &mut Vec<Section>,
) -> Result<()> {
    let (rounds, seconds) = (args.rounds(), args.seconds());
    let reader = federation.work.files("reader");
    let Federation {
        databases,
        authorities,
        largest_n,
        largest,
        population,
        nodes,
        ..
    } = federation;
    let (largest, largest_n, code) = (*largest, *largest_n, federation.code());
    // b. Search across N nodes, against the floor.
    eprintln!("cpbench: b. search across {:?} nodes", args.nodes);
    let direct_searches = search_queries_at(population, largest, 1000);
    for n in &args.nodes {
        let n = (*n).clamp(1, largest_n);
        if !gateways.iter().any(|(size, _)| *size == n) {
            gateways.push(federation.start_gateway(n, &reader).await?);
        }
    }
    let direct_client = AuthorityNodeClient::new(channel(nodes[largest].address, &reader).await?);
    let mut search_clients = Vec::new();
    for (n, gateway) in gateways.iter() {
        search_clients.push((
            *n,
            gateway.pid(),
            GatewayClient::new(channel(gateway.address, &reader).await?),
            search_queries(population, *n, 1000),
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
    Ok(())
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
        // Every authority asked, as before the blind index: this part
        // measures a search's fan-out at its widest.
        all_authorities: true,
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
