//! Every refusal by a limit reaches the client as RESOURCE_EXHAUSTED with its
//! message, whether the caller floods over fresh connections or over one,
//! one request after another or many in flight at once.
use std::collections::BTreeMap;

use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

fn search() -> pb::SearchRecordsRequest {
    pb::SearchRecordsRequest {
        reason: "helpline call".into(),
        surname: "Hart".into(),
        date_of_birth: Some(date(today() - Duration::days(2000))),
        ..Default::default()
    }
}

/// Each outcome's code and message, counted.
type Outcomes = BTreeMap<(String, String), usize>;

fn note(outcomes: &mut Outcomes, result: Result<(), tonic::Status>) {
    let key = match result {
        Ok(()) => ("Ok".to_owned(), String::new()),
        Err(status) => (format!("{:?}", status.code()), status.message().to_owned()),
    };
    *outcomes.entry(key).or_default() += 1;
}

/// Refusals are all ResourceExhausted, each saying which limit; some calls
/// were refused and some answered.
fn check(what: &str, outcomes: &Outcomes) {
    let answered = outcomes.get(&("Ok".to_owned(), String::new())).copied();
    assert!(
        answered.is_some_and(|n| n > 0),
        "{what}: none answered: {outcomes:?}"
    );
    let refusals: Vec<_> = outcomes.keys().filter(|(code, _)| code != "Ok").collect();
    assert!(!refusals.is_empty(), "{what}: none refused: {outcomes:?}");
    for (code, message) in refusals {
        assert!(
            code == &format!("{:?}", Code::ResourceExhausted)
                && (message.contains("requests a second per caller")
                    || message.contains("in flight per caller")),
            "{what}: a refusal that is not the limit's: {outcomes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_over_its_limits_is_told_so_every_time() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let gateway_db = TestDb::create().await?;
    let mut config = TestGateway::config(&gateway_db, &pki, &[])?;
    config.limits.per_caller_per_second = 5.0;
    config.limits.per_caller_burst = 5.0;
    config.limits.per_caller_in_flight = 4;
    let gateway = TestGateway::start(config).await?;
    let files = pki.client_files("NSPCC", "Helpline")?;

    // One request on each of many fresh connections, one after another.
    let mut fresh = Outcomes::new();
    for _ in 0..150 {
        let mut client = gateway.client(&files).await?;
        note(&mut fresh, client.search_records(search()).await.map(drop));
    }
    check("fresh connections", &fresh);

    // Over the rate, the refusal says when to try again.
    let refused = gateway
        .client(&files)
        .await?
        .search_records(search())
        .await
        .expect_err("the budget is spent");
    let retry_after: Option<u64> = refused
        .metadata()
        .get("retry-after-ms")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    assert!(
        retry_after.is_some_and(|ms| (1..=200).contains(&ms)),
        "a token every 200 ms: {retry_after:?}"
    );

    // One connection, one request after another, once the bucket refills.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut client = gateway.client(&files).await?;
    let mut sequential = Outcomes::new();
    for _ in 0..150 {
        note(
            &mut sequential,
            client.search_records(search()).await.map(drop),
        );
    }
    check("one connection", &sequential);

    // One connection, 64 at once, in rounds.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut concurrent = Outcomes::new();
    for _ in 0..4 {
        let calls = (0..64).map(|_| {
            let mut client = client.clone();
            async move { client.search_records(search()).await.map(drop) }
        });
        for result in futures_join(calls).await {
            note(&mut concurrent, result);
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    check("many in flight", &concurrent);

    // The health service answers whatever the caller's budget.
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(connect(gateway.address, &files).await?);
    for _ in 0..20 {
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "contactpoint.v1.Gateway".into(),
            })
            .await?;
    }

    // cpctl, one process per search as a script would run it: each refusal
    // is the limit's, and says so (exit 7, "try again"); its probe of
    // whether it speaks to a gateway costs none of the budget (it did, and a
    // refused probe sent the search down the node's path: Unimplemented).
    let helpline = pki.client_files("NSPCC", "Helpline 2")?;
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..30 {
        let output = cpctl_command(&helpline, gateway.address)?
            .args(["search", "--surname", "Hart", "--year", "2020"])
            .args(["--forename", "Amy", "--reason", "helpline call"])
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => answered += 1,
            Some(7) if stderr.contains("refused: ResourceExhausted: rate limit") => refused += 1,
            code => panic!("cpctl exited {code:?}: {stderr}"),
        }
    }
    assert!(
        answered >= 5 && refused > 0,
        "{answered} answered, {refused} refused"
    );
    Ok(())
}

/// Runs every call at once and gathers their results in order.
async fn futures_join<F, T>(calls: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        if let Ok(result) = handle.await {
            results.push(result);
        }
    }
    results
}

/// Calls `search` as `files` until refused: how many were answered, and the
/// refusal's message.
async fn answered_before_refusal(
    gateway: &TestGateway,
    files: &contactpoint_mtls::TlsFiles,
) -> anyhow::Result<(usize, String)> {
    let mut client = gateway.client(files).await?;
    for answered in 0..50 {
        if let Err(status) = client.search_records(search()).await {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            return Ok((answered, status.message().to_owned()));
        }
    }
    anyhow::bail!("never refused")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_sizes_a_callers_limits_and_shares_an_organisations() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    pki.write_policy(
        r#"
[[limits]]
organisation = "NSPCC"
burst = 3
shared = true

[[limits]]
organisation = "Cleveland Police"
common_name = "PC 1"
burst = 8
"#,
    )?;
    let gateway_db = TestDb::create().await?;
    let mut config = TestGateway::config(&gateway_db, &pki, &[])?;
    config.limits.per_caller_per_second = 0.01;
    config.limits.per_caller_burst = 2.0;
    let gateway = TestGateway::start(config).await?;

    // Two of the NSPCC's certificates draw on the one budget of three.
    let first = answered_before_refusal(&gateway, &pki.client_files("NSPCC", "Desk 1")?).await?;
    let second = answered_before_refusal(&gateway, &pki.client_files("NSPCC", "Desk 2")?).await?;
    assert_eq!((first.0, second.0), (3, 0), "{first:?} {second:?}");
    assert!(second.1.contains("bursts of 3"), "{}", second.1);

    // An officer the policy sizes gets eight; another, the configured two.
    let sized =
        answered_before_refusal(&gateway, &pki.client_files("Cleveland Police", "PC 1")?).await?;
    let other =
        answered_before_refusal(&gateway, &pki.client_files("Cleveland Police", "PC 2")?).await?;
    assert_eq!((sized.0, other.0), (8, 2), "{sized:?} {other:?}");
    assert!(sized.1.contains("bursts of 8") && other.1.contains("bursts of 2"));
    Ok(())
}

/// Input past the contract's bounds (`contactpoint_proto::limits`) is
/// refused where it arrives, naming the field and the bound: at the gateway
/// before any authority is asked, and at a node called directly.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_or_garbled_input_is_refused_where_it_arrives() -> anyhow::Result<()> {
    let f = Federation::start(&["E06000001", "E06000002"]).await?;
    let nspcc = f.pki.client_files("NSPCC", "Helpline")?;
    let mut gateway = f.gateway.client(&nspcc).await?;
    let mut node = f.nodes[0].client(&nspcc).await?;
    let cases = [
        (
            pb::SearchRecordsRequest {
                surname: "Hart".repeat(5_000),
                ..search()
            },
            "surname: is longer than 200 characters",
        ),
        (
            pb::SearchRecordsRequest {
                forename: "Amy\u{7}".into(),
                ..search()
            },
            "forename: must not contain control characters",
        ),
        (
            pb::SearchRecordsRequest {
                postcode: "TS24 8AH".repeat(3),
                ..search()
            },
            "postcode: is longer than 16 characters",
        ),
        (
            pb::SearchRecordsRequest {
                reason: "x".repeat(1_001),
                ..search()
            },
            "reason: is longer than 1000 characters",
        ),
    ];
    for (request, says) in cases {
        for status in [
            gateway.search_records(request.clone()).await.unwrap_err(),
            node.search_records(request).await.unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(
                status.message().contains(says),
                "{says}: {}",
                status.message()
            );
        }
    }
    // The gateway asked no authority: the one node search audited is the
    // direct one of each case.
    assert_eq!(f.node_audited(0, "SearchRecords").await?, 4);
    assert_eq!(f.node_audited(1, "SearchRecords").await?, 0);

    // A lookup's reason is bounded alike.
    let status = gateway
        .get_record(pb::GetRecordRequest {
            id: "E06000001-00000001-77".into(),
            reason: "a\u{0}b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("reason: must not contain control characters"),
        "{}",
        status.message()
    );
    Ok(())
}

/// A search is charged one request for every authority it asks: with a
/// budget of four and almost no refill, two searches of three authorities
/// spend it (and more), and the third request is refused, where four
/// lookups would all have been answered.
#[tokio::test]
async fn a_search_costs_one_request_for_every_authority_it_asks() -> anyhow::Result<()> {
    let mut f = Federation::start(&["E06000001", "E06000002", "E06000003"]).await?;
    f.gateway.config.limits.per_caller_burst = 4.0;
    f.gateway.config.limits.per_caller_per_second = 0.001;
    // Without the blind index every search asks every authority.
    f.gateway.config.matching_key = None;
    f.restart_gateway().await?;
    let mut nspcc = f
        .gateway
        .client(&f.pki.client_files("NSPCC", "Helpline")?)
        .await?;
    for _ in 0..2 {
        let found = nspcc.search_records(search()).await?.into_inner();
        assert_eq!(found.authorities_asked, 3);
    }
    let refused = nspcc.search_records(search()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("requests a second per caller"),
        "{}",
        refused.message()
    );
    Ok(())
}

/// A node of E06000001 configured as `adjust` says, holding one child its
/// social worker created: its database, the node and the child's id.
async fn node_with_a_child(
    pki: &TestPki,
    adjust: impl FnOnce(&mut contactpoint_node::NodeConfig),
) -> anyhow::Result<(TestDb, TestNode, String)> {
    let node_db = TestDb::create().await?;
    let mut config = TestNode::config(&node_db, pki, "E06000001")?;
    adjust(&mut config);
    let node =
        TestNode::start_config(config, std::sync::Arc::new(contactpoint_node::SystemClock)).await?;
    let id = node
        .client(&pki.client_files("E06000001", "Social worker")?)
        .await?
        .create_record(sample::child_request(
            "Amy",
            "Hart",
            date(today() - Duration::days(2000)),
            "TS24 8AH",
        ))
        .await?
        .into_inner()
        .id;

    Ok((node_db, node, id))
}

/// A node keeps each caller's budget itself (issue 19, item 5): a partner
/// that spends its budget calling a node directly is refused there, and
/// then through the gateway too, since the gateway's call for that partner
/// draws on the partner's own budget at the node; another caller is still
/// answered through the gateway. Every refusal is the limit's.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_limits_each_caller_whether_called_directly_or_through_the_gateway(
) -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let (_node_db, node, id) = node_with_a_child(&pki, |config| {
        config.limits.per_caller_burst = 3.0;
        config.limits.per_caller_per_second = 0.001;
    })
    .await?;
    let gateway_db = TestDb::create().await?;
    let gateway = TestGateway::start(TestGateway::config(
        &gateway_db,
        &pki,
        &[("E06000001", node.address)],
    )?)
    .await?;
    let nspcc = pki.client_files("NSPCC", "Helpline")?;
    let mut direct = node.client(&nspcc).await?;
    for _ in 0..3 {
        direct.get_record(lookup(&id)).await?;
    }
    let refused = direct.get_record(lookup(&id)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("requests a second per caller"),
        "{}",
        refused.message()
    );

    // The gateway's own budget is far from spent; the NSPCC's at the node is.
    let through = gateway
        .client(&nspcc)
        .await?
        .get_record(lookup(&id))
        .await
        .unwrap_err();
    assert_eq!(through.code(), Code::ResourceExhausted, "{through:?}");
    assert!(
        through.message().contains("requests a second per caller"),
        "{}",
        through.message()
    );
    let police = pki.client_files("Cleveland Police", "PC 1")?;
    let record = gateway
        .client(&police)
        .await?
        .get_record(lookup(&id))
        .await?
        .into_inner();
    assert_eq!(record.id, id);
    Ok(())
}

/// A database too slow to answer cannot hold the node (issue 19, item 5):
/// with the records' table locked by someone else, a call whose statement
/// waits past `statement_timeout_ms` is cancelled by PostgreSQL and refused
/// UNAVAILABLE, and a call finding the one pooled connection busy past
/// `pool_wait_ms` is refused UNAVAILABLE as busy, each saying so (the
/// request timeout would have cancelled them, CANCELLED); once the lock
/// goes, the node answers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_database_or_a_busy_pool_is_refused_in_time() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let (node_db, node, id) = node_with_a_child(&pki, |config| {
        config.pool_size = 1;
        config.pool_wait_ms = 300;
        config.statement_timeout_ms = 1_500;
    })
    .await?;

    let mut admin = node_db.connect().await?;
    let lock = admin.transaction().await?;
    lock.batch_execute("LOCK TABLE child_record IN ACCESS EXCLUSIVE MODE")
        .await?;
    let nspcc = pki.client_files("NSPCC", "Helpline")?;
    let mut slow = node.client(&nspcc).await?;
    let slow_id = id.clone();
    let slow_call = tokio::spawn(async move { slow.get_record(lookup(&slow_id)).await });
    // Once the first call holds the one connection, a second finds none.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let busy = node
        .client(&pki.client_files("Cleveland Police", "PC 1")?)
        .await?
        .get_record(lookup(&id))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::Unavailable, "{busy:?}");
    assert!(busy.message().contains("busy"), "{}", busy.message());
    let slow = slow_call.await?.unwrap_err();
    assert_eq!(slow.code(), Code::Unavailable, "{slow:?}");
    assert!(
        slow.message().contains("did not answer in time"),
        "{}",
        slow.message()
    );
    lock.rollback().await?;

    let record = node
        .client(&nspcc)
        .await?
        .get_record(lookup(&id))
        .await?
        .into_inner();
    assert_eq!(record.id, id);
    Ok(())
}
