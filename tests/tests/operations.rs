//! What operators expect: metrics after traffic, and a shutdown (SIGTERM)
//! that lets calls in flight finish.
use std::time::Duration;

use contactpoint_tests::*;

/// The value of the sample `name{labels}` in a Prometheus text exposition,
/// where `labels` are some of its labels as `key="value"` pairs.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(key, _)| {
            key.split('{').next() == Some(name) && labels.iter().all(|label| key.contains(label))
        })
        .and_then(|(_, value)| value.parse().ok())
}

#[tokio::test]
async fn metrics_are_served_after_traffic() -> anyhow::Result<()> {
    let f = Federation::start(&["E06000001", "E06000002"]).await?;
    let born = date(today() - chrono::Duration::days(700));
    let record = f
        .staff(0)
        .await?
        .create_record(sample::child_request("Ava", "Metric", born, "TS24 8AH"))
        .await?
        .into_inner();
    f.wait_until_routed(&record.id, "E06000001").await?;
    let mut nspcc = f
        .gateway
        .client(&f.pki.client_files("NSPCC", "Helpline")?)
        .await?;
    nspcc
        .search_records(pb::SearchRecordsRequest {
            surname: "Metric".into(),
            date_of_birth: Some(born),
            reason: "helpline call".into(),
            ..Default::default()
        })
        .await?;
    nspcc
        .get_record(pb::GetRecordRequest {
            id: record.id.clone(),
            reason: "helpline call".into(),
            ..Default::default()
        })
        .await?;
    let _ = nspcc.get_record(pb::GetRecordRequest::default()).await;

    let gateway = scrape(
        f.gateway
            .config
            .metrics_listen
            .expect("test gateways serve metrics"),
    )
    .await?;
    let calls = |method: &str, outcome: &str| {
        sample(
            &gateway,
            "contactpoint_gateway_requests_total",
            &[
                &format!("method=\"{method}\""),
                &format!("outcome=\"{outcome}\""),
                "role=\"national_partner\"",
            ],
        )
    };
    assert_eq!(calls("SearchRecords", "ok"), Some(1.0), "{gateway}");
    assert_eq!(calls("GetRecord", "ok"), Some(1.0));
    assert_eq!(calls("GetRecord", "invalid_argument"), Some(1.0));
    assert_eq!(
        sample(
            &gateway,
            "contactpoint_gateway_request_duration_seconds_count",
            &["method=\"GetRecord\""]
        ),
        Some(2.0)
    );
    // The search asked both authorities; the lookup only the responsible one.
    assert_eq!(
        sample(
            &gateway,
            "contactpoint_gateway_node_calls_total",
            &["authority=\"E06000001\"", "outcome=\"ok\""]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &gateway,
            "contactpoint_gateway_node_calls_total",
            &["authority=\"E06000002\"", "outcome=\"ok\""]
        ),
        Some(1.0)
    );
    let node = eventually("the node's pool gauge", || async {
        let text = scrape(
            f.nodes[0]
                .config
                .metrics_listen
                .expect("test nodes serve metrics"),
        )
        .await?;
        Ok(sample(
            &text,
            "contactpoint_node_db_pool_connections",
            &["state=\"max\""],
        )
        .map(|_| text))
    })
    .await?;
    assert_eq!(
        sample(
            &node,
            "contactpoint_node_db_pool_connections",
            &["state=\"max\""]
        ),
        Some(8.0)
    );
    assert_eq!(
        sample(
            &node,
            "contactpoint_node_requests_total",
            &[
                "method=\"CreateRecord\"",
                "outcome=\"ok\"",
                "role=\"practitioner\""
            ]
        ),
        Some(1.0)
    );
    assert!(!node.contains("Metric"), "no personal data in metrics");
    Ok(())
}

/// SIGTERM to a gateway with a search in flight: the search is answered in
/// full, then the process exits cleanly. Its logs, asked for as JSON, are
/// one JSON object per line, with nothing personal in them.
#[tokio::test]
async fn sigterm_lets_a_call_in_flight_finish() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let node_db = TestDb::create().await?;
    let node = TestNode::start(&node_db, &pki, "E06000001").await?;
    let slow = slow_proxy(node.address, Duration::from_millis(400)).await?;
    let gateway_db = TestDb::create().await?;
    let config = TestGateway::config(&gateway_db, &pki, &[("E06000001", slow)])?;
    let listen = free_port()?;
    let file = pki.dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            r#"listen = "{listen}"
database_url = "{db}"
policy = "{policy}"
search_deadline_ms = 20000
lookup_timeout_ms = 20000
log_format = "json"

[tls]
ca = "{ca}"
cert = "{cert}"
key = "{key}"

[[nodes]]
code = "E06000001"
name = "Hartlepool"
endpoint = "https://localhost:{port}"
"#,
            db = config.database_url,
            policy = config.policy.display(),
            ca = config.tls.ca.display(),
            cert = config.tls.cert.display(),
            key = config.tls.key.display(),
            port = slow.port(),
        ),
    )?;
    let child = tokio::process::Command::new(workspace_binary("contactpoint-gateway")?)
        .arg("--config")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let files = pki.client_files("NSPCC", "Helpline")?;
    let mut client = eventually("the gateway to serve", || {
        let files = files.clone();
        async move {
            Ok(connect(listen, &files)
                .await
                .ok()
                .map(pb::gateway_client::GatewayClient::new))
        }
    })
    .await?;
    let search = tokio::spawn(async move {
        client
            .search_records(pb::SearchRecordsRequest {
                surname: "Hart".into(),
                date_of_birth: Some(date(today() - chrono::Duration::days(700))),
                reason: "helpline call".into(),
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?
        .success());
    let answered = search
        .await?
        .map_err(|status| anyhow::anyhow!("{status:?}"))?
        .into_inner();
    assert!(
        answered.unanswered.is_empty(),
        "the slow node's answer arrived: {answered:?}"
    );
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await??;
    assert!(
        exit.status.success(),
        "a clean exit after SIGTERM: {}",
        exit.status
    );
    let logs = String::from_utf8(exit.stdout)?;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(
        lines.iter().any(|line| line["message"] == "shutting down"),
        "{logs}"
    );
    assert!(!logs.contains("Hart"), "no surname in the logs: {logs}");
    Ok(())
}
