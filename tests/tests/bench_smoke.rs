//! The benchmark at a tiny size, so that it cannot rot: `cpbench run` over
//! three node processes, a gateway (and a second one compared with it, here
//! the same build), nginx and the bare tonic server, with a thousand
//! records. It asserts that every table is printed with numbers in it,
//! never how fast anything was (timings belong to scripts/bench).
use std::process::Command;

use contactpoint_tests::*;

/// The numbers in a Markdown table row after its first (label) cell.
fn numbers(row: &str) -> Vec<f64> {
    row.split('|')
        .skip(2)
        .filter_map(|cell| cell.trim().parse().ok())
        .collect()
}

/// The table under the heading that starts with `title`, heading and all.
fn section<'a>(report: &'a str, title: &str) -> &'a str {
    report
        .split("### ")
        .find(|section| section.starts_with(title))
        .unwrap_or_default()
}

/// The rows of the table under the heading that starts with `title`.
fn table<'a>(report: &'a str, title: &str) -> Vec<&'a str> {
    section(report, title)
        .lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("|-"))
        .skip(1)
        .collect()
}

/// The header row of the table under the heading that starts with `title`.
fn header<'a>(report: &'a str, title: &str) -> &'a str {
    section(report, title)
        .lines()
        .find(|line| line.starts_with('|'))
        .unwrap_or_default()
}

#[test]
fn the_benchmark_runs_end_to_end_at_a_tiny_size() -> anyhow::Result<()> {
    let nginx = std::env::var("CONTACTPOINT_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
    anyhow::ensure!(
        std::path::Path::new(&nginx).exists(),
        "{nginx} is missing: scripts/nginx-ensure installs nginx (scripts/test runs it)"
    );
    let dir = tempfile::tempdir()?;
    let authorities = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/authorities.csv");
    let output = Command::new(workspace_binary("cpbench")?)
        .args([
            "run",
            "--records",
            "1000",
            "--nodes",
            "2,3",
            "--seconds",
            "0.3",
        ])
        .args([
            "--rounds",
            "1",
            "--concurrency",
            "4",
            "--database-prefix",
            "cpbench_smoke",
        ])
        .args([
            "--admin-url",
            &admin_url(),
            "--nginx",
            &nginx,
            "--authorities",
            authorities,
        ])
        .arg("--compare-gateway")
        .arg(workspace_binary("contactpoint-gateway")?)
        .arg("--dir")
        .arg(dir.path().join("bench"))
        .output()?;
    let report = String::from_utf8(output.stdout)?;
    anyhow::ensure!(
        output.status.success(),
        "cpbench failed: {}\n{report}",
        String::from_utf8_lossy(&output.stderr)
    );

    let rtt = table(&report, "e. Loopback");
    assert_eq!(rtt.len(), 1, "{report}");
    assert!(numbers(rtt[0])[1] > 0.0, "{report}");

    let bulk = table(&report, "c. Bulk load");
    assert_eq!(bulk.len(), 2, "{report}");
    for row in &bulk {
        assert!(numbers(row)[1] > 0.0, "a load rate: {report}");
    }

    for title in [
        "a. Lookup by identifier",
        "a. Lookup throughput",
        "a. Lookup, open loop",
    ] {
        let rows = table(&report, title);
        assert_eq!(
            rows.len(),
            4,
            "direct, gateway, nginx, the compared gateway under {title}: {report}"
        );
        for row in rows {
            assert!(numbers(row).iter().any(|value| *value > 0.0), "{row}");
        }
    }
    let latency = table(&report, "a. Lookup by identifier");
    assert!(latency.iter().any(|row| row.contains("nginx")), "{report}");
    assert!(
        latency.iter().any(|row| row.contains("compared gateway")),
        "{report}"
    );
    for title in [
        "a. Lookup by identifier",
        "a. Lookup throughput",
        "b. Search",
    ] {
        let header = header(&report, title);
        assert!(
            header.contains("| steal % "),
            "the share of the cores stolen under {title}: {report}"
        );
    }
    assert!(
        header(&report, "a. Lookup by identifier").contains("CPU ms/req compared gateway"),
        "the compared build's CPU in a column of its own: {report}"
    );

    let memory = table(&report, "d. Memory");
    assert!(memory.len() >= 2, "{report}");
    assert!(numbers(memory[0])[0] > 0.0, "the node's PSS: {report}");

    let search = table(&report, "b. Search");
    assert_eq!(search.len(), 3, "direct, then 2 and 3 nodes: {report}");
    assert!(search[1].contains("| 2 "), "{report}");
    assert!(search[2].contains("| 3 "), "{report}");
    Ok(())
}

/// Part f at a tiny size: every kind of error that applied has its row of
/// recall figures between 0 and 1, and each path its latency.
#[test]
fn the_matching_benchmark_runs_end_to_end_at_a_tiny_size() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let authorities = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/authorities.csv");
    let output = Command::new(workspace_binary("cpbench")?)
        .args(["run", "--matching", "--matching-children", "6"])
        .args(["--records", "600", "--nodes", "3"])
        .args(["--database-prefix", "cpbench_matching_smoke"])
        .args(["--admin-url", &admin_url(), "--authorities", authorities])
        .arg("--dir")
        .arg(dir.path().join("bench"))
        .output()?;
    let report = String::from_utf8(output.stdout)?;
    anyhow::ensure!(
        output.status.success(),
        "cpbench failed: {}\n{report}",
        String::from_utf8_lossy(&output.stderr)
    );
    let recall = table(&report, "f. Finding the right child");
    assert!(
        recall.iter().any(|row| row.contains("| as recorded ")),
        "{report}"
    );
    assert!(
        recall
            .iter()
            .any(|row| row.contains("surname: a letter inserted")),
        "{report}"
    );
    for row in &recall {
        let figures = numbers(row);
        assert!(figures[0] >= 1.0, "searches: {row}");
        for share in &figures[1..5] {
            assert!((0.0..=1.0).contains(share), "a share: {row}");
        }
    }
    let latency = table(&report, "f. Tolerant search latency");
    assert_eq!(latency.len(), 3, "one node, routed, everyone: {report}");
    for row in latency {
        assert!(numbers(row)[0] > 0.0, "{row}");
    }
    Ok(())
}
