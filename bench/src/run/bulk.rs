//! Part c, bulk load: the largest authority's records through the node's
//! `LoadRecords` stream (mutual TLS, every record validated, batches of
//! 1,000 each one transaction, audited), against `psql \\copy` of the same
//! rows into a fresh database of the same schema, interleaved round by
//! round, each into a fresh database.
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::federation::{load_records, Federation};
use super::report::{f, ratio, Section};
use super::RunArgs;
use crate::fleet::{self, wait_serving};

/// Measures part c; returns the identifiers the node gave the largest
/// authority's records.
pub(super) async fn measure(
    args: &RunArgs,
    federation: &Federation,
    report: &mut Vec<Section>,
) -> Result<Vec<String>> {
    let rounds = args.rounds();
    let Federation {
        work,
        databases,
        authorities,
        population,
        sizes,
        largest,
        node_urls,
        nodes,
        ..
    } = federation;
    let largest = *largest;
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
            work,
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
