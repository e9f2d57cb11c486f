//! The federation the benchmark measures: a development CA and policy, one
//! database per authority cloned from a template the node's own migrations
//! made, one node process per authority, the synthetic population spread
//! over them, and gateways over the first N nodes. The largest authority's
//! node is the one measured for bulk load, lookups and memory.
use std::time::Duration;

use anyhow::{bail, Result};
use contactpoint_mtls::TlsFiles;
use contactpoint_proto::v1 as pb;
use pb::authority_node_client::AuthorityNodeClient;

use super::measure::Memory;
use super::RunArgs;
use crate::fleet::{self, channel, wait_serving, Databases, Server, Workspace};
use crate::population::{read_authorities, Authority, Population};

/// The running federation.
pub(super) struct Federation {
    pub(super) work: Workspace,
    pub(super) databases: Databases,
    /// The first `largest_n` authorities of England's list.
    pub(super) authorities: Vec<Authority>,
    pub(super) largest_n: usize,
    pub(super) population: Population,
    /// Records per authority.
    pub(super) sizes: Vec<u64>,
    /// The largest authority's index: its node is the one measured.
    pub(super) largest: usize,
    pub(super) node_urls: Vec<String>,
    pub(super) nodes: Vec<Server>,
    /// Each node's memory once started, empty.
    pub(super) fleet_memory: Vec<Memory>,
}

impl Federation {
    /// Certificates, policy, databases and node processes, every node serving.
    pub(super) async fn start(args: &RunArgs) -> Result<Self> {
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
        Ok(Self {
            work,
            databases,
            authorities,
            largest_n,
            population,
            sizes,
            largest,
            node_urls,
            nodes,
            fleet_memory,
        })
    }

    /// The largest authority's code.
    pub(super) fn code(&self) -> &str {
        &self.authorities[self.largest].code
    }

    /// Loads every authority, the largest first (part f, which has no part c).
    pub(super) async fn load_all(&self) -> Result<()> {
        let largest = self.largest;
        let files = self
            .work
            .files(&format!("loader-{}", self.authorities[largest].code));
        let records: Vec<_> = self.population.records(largest).collect();
        load_records(self.nodes[largest].address, &files, records).await?;
        self.load_the_rest().await
    }

    /// Loads every authority but the largest (loaded by part c), two at a
    /// time, then vacuums and checkpoints as after any bulk load.
    pub(super) async fn load_the_rest(&self) -> Result<()> {
        let (authorities, largest, population, work, nodes, databases) = (
            &self.authorities,
            self.largest,
            &self.population,
            &self.work,
            &self.nodes,
            &self.databases,
        );
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
        for authority in authorities {
            databases.vacuum(&authority.code.to_lowercase()).await?;
        }
        // And a checkpoint, so the load's dirty pages are on disk before the
        // measurements rather than flushed in the middle of them.
        databases.checkpoint().await?;
        Ok(())
    }

    /// A gateway over the first `n` nodes, with a database of its own, serving.
    pub(super) async fn start_gateway(
        &self,
        n: usize,
        reader: &TlsFiles,
    ) -> Result<(usize, Server)> {
        let addresses: Vec<(&Authority, std::net::SocketAddr)> = self
            .authorities
            .iter()
            .zip(&self.nodes)
            .map(|(authority, node)| (authority, node.address))
            .collect();
        let url = self.databases.create(&format!("gateway_{n}"), None).await?;
        let program = self.work.gateway_program();
        let mut gateway =
            fleet::start_gateway(&self.work, &program, &n.to_string(), url, &addresses[..n])?;
        wait_serving(&mut gateway, reader, "contactpoint.v1.Gateway").await?;
        Ok((n, gateway))
    }

    /// Stops every node and drops every database the benchmark made.
    pub(super) async fn stop(self) -> Result<()> {
        drop(self.nodes);
        self.databases.drop_all().await
    }
}

/// Loads `records` at a node through LoadRecords; returns the identifiers.
pub(super) async fn load_records(
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
