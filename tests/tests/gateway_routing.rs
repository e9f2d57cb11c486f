//! The gateway finds children wherever they are held: searches across every
//! authority, lookups routed to the responsible one, a routing index fed by
//! the nodes' outboxes and repaired when stale.
use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

fn born() -> chrono::NaiveDate {
    today() - Duration::days(3000)
}

/// The NSPCC, through the gateway, finds a child recorded by another region,
/// and the search names no authority as unanswered.
#[tokio::test]
async fn a_national_partner_finds_a_child_held_by_another_region() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001", "E06000002", "E06000003"]).await?;
    let created = federation
        .staff(1)
        .await?
        .create_record(sample::child_request(
            "Maya",
            "Okafor",
            date(born()),
            "TS25 1QP",
        ))
        .await?
        .into_inner();

    let nspcc = federation
        .pki
        .client_files("NSPCC", "Helpline practitioner")?;
    let mut gateway = federation.gateway.client(&nspcc).await?;
    let found = gateway
        .search_records(pb::SearchRecordsRequest {
            reason: "checking the test child's record".into(),
            surname: "okafor".into(),
            date_of_birth: Some(date(born())),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(found.authorities_asked, 3);
    assert!(found.unanswered.is_empty(), "{:?}", found.unanswered);
    assert_eq!(found.matches.len(), 1);
    assert_eq!(found.matches[0].id, created.id);
    assert_eq!(
        found.matches[0]
            .responsible_authority
            .as_ref()
            .unwrap()
            .code,
        "E06000002"
    );

    // Every node heard the search from the NSPCC, through the gateway.
    for db in &federation.node_dbs {
        let row = db.connect().await?.query_one("SELECT caller_organisation, role, via FROM audit_event WHERE method = 'SearchRecords'", &[]).await?;
        assert_eq!(row.get::<_, String>(0), "NSPCC");
        assert_eq!(row.get::<_, String>(1), "schedule2:3");
        assert!(row
            .get::<_, Option<String>>(2)
            .unwrap()
            .starts_with(GATEWAY_ORGANISATION));
    }
    Ok(())
}

/// A search too vague to find one child is refused before any node is asked.
#[tokio::test]
async fn a_search_without_surname_and_date_of_birth_is_refused() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001"]).await?;
    let mut gateway = federation
        .gateway
        .client(&federation.pki.client_files("NSPCC", "Someone")?)
        .await?;
    let status = gateway
        .search_records(pb::SearchRecordsRequest {
            reason: "checking the test child's record".into(),
            surname: "smith".into(),
            postcode: "TS24 8AH".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("date_of_birth:"),
        "{}",
        status.message()
    );
    let status = gateway
        .search_records(pb::SearchRecordsRequest {
            reason: "checking the test child's record".into(),
            date_of_birth: Some(date(born())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("surname:"),
        "{}",
        status.message()
    );
    assert_eq!(
        federation.node_dbs[0].count("audit_event").await?,
        0,
        "no node was asked"
    );
    Ok(())
}

/// A lookup by identifier goes to exactly the responsible node, which the
/// gateway learned of from that node's outbox.
#[tokio::test]
async fn a_lookup_reaches_only_the_responsible_node() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001", "E06000002", "E06000003"]).await?;
    let created = federation
        .staff(2)
        .await?
        .create_record(sample::child_request(
            "Leo",
            "Brand",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    federation
        .wait_until_routed(&created.id, "E06000003")
        .await?;

    let police = federation.pki.client_files("Cleveland Police", "PC 1234")?;
    let record = federation
        .gateway
        .client(&police)
        .await?
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(record, created);

    let lookups = |i: usize| federation.node_audited(i, "GetRecord");
    assert_eq!(lookups(2).await?, 1);
    assert_eq!(lookups(0).await?, 0);
    assert_eq!(lookups(1).await?, 0);
    let row = federation.node_dbs[2].connect().await?.query_one("SELECT caller_organisation, caller_name, role FROM audit_event WHERE method = 'GetRecord'", &[]).await?;
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2)
        ),
        (
            "Cleveland Police".into(),
            "PC 1234".into(),
            "schedule3:3@E06000001".into()
        )
    );
    Ok(())
}

/// A record created while the gateway is down is in its routing index once
/// it is back: the node's outbox kept it.
#[tokio::test]
async fn a_record_created_while_the_gateway_is_down_is_routable_when_it_returns(
) -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001", "E06000002"]).await?;
    let config = federation.gateway.config.clone();
    let Federation {
        pki,
        node_dbs,
        nodes,
        gateway_db,
        gateway,
    } = federation;
    gateway.stop().await?;

    let mut staff = nodes[1]
        .client(&pki.client_files("E06000002", "Social worker")?)
        .await?;
    let created = staff
        .create_record(sample::child_request(
            "Ada",
            "Quinn",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();

    let gateway = TestGateway::start(config).await?;
    let federation = Federation {
        pki,
        node_dbs,
        nodes,
        gateway_db,
        gateway,
    };
    // Learned from the outbox, before anyone asked for it.
    federation
        .wait_until_routed(&created.id, "E06000002")
        .await?;
    let nspcc = federation.pki.client_files("NSPCC", "Someone")?;
    let record = federation
        .gateway
        .client(&nspcc)
        .await?
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(record.id, created.id);
    Ok(())
}

/// A stale index entry is repaired: the node it names answers where the
/// record went, the gateway follows and corrects its index; and an entry
/// naming a node that never held the record falls back to the authority that
/// minted the identifier.
#[tokio::test]
async fn a_stale_index_entry_is_repaired() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001", "E06000002", "E06000003"]).await?;
    let created = federation
        .staff(1)
        .await?
        .create_record(sample::child_request(
            "Ivy",
            "Stone",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    federation
        .wait_until_routed(&created.id, "E06000002")
        .await?;
    let gateway_db = federation.gateway_db.connect().await?;
    let nspcc = federation.pki.client_files("NSPCC", "Someone")?;
    let mut gateway = federation.gateway.client(&nspcc).await?;

    // The index says E06000001, which answers that the record moved to E06000002.
    gateway_db
        .execute(
            "UPDATE routing_index SET authority_code = 'E06000001' WHERE record_id = $1",
            &[&created.id],
        )
        .await?;
    federation.node_dbs[0]
        .connect()
        .await?
        .execute(
            "INSERT INTO record_forwarding (record_id, moved_to_code) VALUES ($1, 'E06000002')",
            &[&created.id],
        )
        .await?;
    // The gateway keeps moved routes in memory and reads the change within
    // a poll; every lookup meanwhile still finds the record (at the minting
    // authority), and the first one after it goes to E06000001, follows the
    // forwarding and corrects the index.
    let read = || {
        let mut gateway = gateway.clone();
        let id = created.id.clone();
        async move {
            gateway
                .get_record(lookup(&id))
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let routed = |code: &'static str| {
        let gateway_db = &gateway_db;
        let id = created.id.clone();
        async move {
            let routed: String = gateway_db
                .query_one(
                    "SELECT authority_code FROM routing_index WHERE record_id = $1",
                    &[&id],
                )
                .await?
                .get(0);
            Ok::<_, anyhow::Error>(routed == code)
        }
    };
    eventually("the index to follow the forwarding", || async {
        assert_eq!(read().await?.id, created.id);
        Ok(routed("E06000002").await?.then_some(()))
    })
    .await?;
    let asked: i64 = federation.node_dbs[0]
        .connect()
        .await?
        .query_one(
            "SELECT count(*) FROM audit_event WHERE method = 'GetRecord' AND outcome = 'not_found'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(asked, 1, "the authority the index named was asked once");
    // The gateway audited the lookup that took two hops as it ended.
    let row = gateway_db
        .query_one(
            "SELECT outcome, authorities FROM gateway_audit WHERE method = 'GetRecord' AND cardinality(authorities) = 2",
            &[],
        )
        .await?;
    assert_eq!(row.get::<_, String>(0), "ok");
    assert_eq!(
        row.get::<_, Vec<String>>(1),
        ["E06000001".to_owned(), "E06000002".to_owned()]
    );

    // The index says E06000003, which never held it: the minting authority answers.
    gateway_db
        .execute(
            "UPDATE routing_index SET authority_code = 'E06000003' WHERE record_id = $1",
            &[&created.id],
        )
        .await?;
    eventually("the index to be corrected again", || async {
        assert_eq!(read().await?.id, created.id);
        let asked = federation.node_audited(2, "GetRecord").await?;
        Ok((asked == 1 && routed("E06000002").await?).then_some(()))
    })
    .await?;
    // A lookup answered by the authority it was routed to is audited, before
    // the answer, as routed there.
    assert_eq!(read().await?.id, created.id);
    let row = gateway_db
        .query_one(
            "SELECT outcome, authorities FROM gateway_audit WHERE method = 'GetRecord' ORDER BY event_id DESC LIMIT 1",
            &[],
        )
        .await?;
    assert_eq!(row.get::<_, String>(0), "routed");
    assert_eq!(row.get::<_, Vec<String>>(1), ["E06000002".to_owned()]);

    // An identifier no authority holds is NotFound, and a mistyped one InvalidArgument.
    let unknown = contactpoint_node::identifier::RecordId::mint("E06000003", 424_242);
    assert_eq!(
        gateway
            .get_record(pb::GetRecordRequest {
                reason: "checking the test child's record".into(),
                id: unknown.to_string(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        gateway
            .get_record(pb::GetRecordRequest {
                reason: "checking the test child's record".into(),
                id: "E06000003-00424242-00".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    Ok(())
}

/// A node that is down and a node that is too slow are named as unanswered;
/// the others' results come back within the search deadline.
#[tokio::test]
async fn down_and_slow_nodes_give_partial_results_naming_them() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let node = TestNode::start(&db, &pki, "E06000001").await?;
    let slow_db = TestDb::create().await?;
    let slow_node = TestNode::start(&slow_db, &pki, "E06000002").await?;
    let slow = slow_proxy(slow_node.address, std::time::Duration::from_secs(10)).await?;
    let down = dead_address().await?;
    let gateway_db = TestDb::create().await?;
    let gateway = TestGateway::start(TestGateway::config(
        &gateway_db,
        &pki,
        &[
            ("E06000001", node.address),
            ("E06000002", slow),
            ("E06000003", down),
        ],
    )?)
    .await?;

    let mut staff = node
        .client(&pki.client_files("E06000001", "Social worker")?)
        .await?;
    let created = staff
        .create_record(sample::child_request(
            "Noor",
            "Ali",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();

    let mut client = gateway
        .client(&pki.client_files("NSPCC", "Someone")?)
        .await?;
    let started = std::time::Instant::now();
    let found = client
        .search_records(pb::SearchRecordsRequest {
            reason: "checking the test child's record".into(),
            surname: "Ali".into(),
            date_of_birth: Some(date(born())),
            ..Default::default()
        })
        .await?
        .into_inner();
    let elapsed = started.elapsed();
    assert_eq!(
        found
            .matches
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        vec![created.id.as_str()]
    );
    let unanswered: Vec<_> = found
        .unanswered
        .iter()
        .map(|u| (u.code.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(
        unanswered,
        vec![
            ("E06000002", "no answer within 1000 ms"),
            ("E06000003", "unavailable")
        ]
    );
    assert!(
        elapsed < std::time::Duration::from_secs(8),
        "the deadline bounds the search, not the slow node ({elapsed:?})"
    );
    Ok(())
}

/// A lookup whose caller gives up before the node answers is audited at the
/// gateway all the same, as cancelled: an entry that says `routed` always
/// means the caller was given the record.
#[tokio::test]
async fn a_lookup_abandoned_by_its_caller_is_audited_as_cancelled() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let node = TestNode::start(&db, &pki, "E06000002").await?;
    let slow = slow_proxy(node.address, std::time::Duration::from_secs(2)).await?;
    let gateway_db = TestDb::create().await?;
    let gateway = TestGateway::start(TestGateway::config(
        &gateway_db,
        &pki,
        &[("E06000002", slow)],
    )?)
    .await?;
    let created = node
        .client(&pki.client_files("E06000002", "Social worker")?)
        .await?
        .create_record(sample::child_request(
            "Rae",
            "Hollis",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let mut request = tonic::Request::new(lookup(&created.id));
    request.set_timeout(std::time::Duration::from_millis(300));
    let refused = gateway
        .client(&pki.client_files("NSPCC", "Someone")?)
        .await?
        .get_record(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Cancelled, "{refused:?}");
    let audit = gateway_db.connect().await?;
    let outcome = eventually("the lookup's audit to be concluded", || async {
        let row = audit
            .query_opt(
                "SELECT outcome FROM gateway_audit WHERE method = 'GetRecord' AND outcome <> 'routed'",
                &[],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, String>(0)))
    })
    .await?;
    assert_eq!(outcome, "cancelled");
    let asked: Vec<String> = audit
        .query_one(
            "SELECT authorities FROM gateway_audit WHERE method = 'GetRecord'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(asked, ["E06000002"], "the authority asked is kept");
    let routed: i64 = audit
        .query_one(
            "SELECT count(*) FROM gateway_audit WHERE outcome = 'routed'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(routed, 0);
    Ok(())
}

/// An index entry naming a node that does not answer does not make the
/// record unreachable: the gateway asks the authority that minted the
/// identifier, finds the record there, and corrects the index.
#[tokio::test]
async fn an_index_entry_naming_a_silent_node_falls_back_to_the_minting_authority(
) -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let node = TestNode::start(&db, &pki, "E06000001").await?;
    let down = dead_address().await?;
    let gateway_db = TestDb::create().await?;
    let gateway = TestGateway::start(TestGateway::config(
        &gateway_db,
        &pki,
        &[("E06000001", node.address), ("E06000002", down)],
    )?)
    .await?;
    let created = node
        .client(&pki.client_files("E06000001", "Social worker")?)
        .await?
        .create_record(sample::child_request(
            "Lia",
            "Penn",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let index = gateway_db.connect().await?;
    // Once the node's feed has been read (so it cannot put the entry back),
    // the index is made to name the silent node.
    eventually("the record in the routing index", || async {
        let rows = index
            .execute(
                "SELECT 1 FROM routing_index WHERE record_id = $1",
                &[&created.id],
            )
            .await?;
        Ok((rows == 1).then_some(()))
    })
    .await?;
    index
        .execute(
            "UPDATE routing_index SET authority_code = 'E06000002' WHERE record_id = $1",
            &[&created.id],
        )
        .await?;
    let mut reader = gateway
        .client(&pki.client_files("NSPCC", "Someone")?)
        .await?;
    // Every lookup is answered, before and after the gateway reads the
    // entry; the one after it corrects the index.
    eventually("the index to name the minting authority again", || {
        let mut reader = reader.clone();
        let (id, index) = (created.id.clone(), &index);
        async move {
            let found = reader.get_record(lookup(&id)).await?.into_inner();
            assert_eq!(found.id, id);
            let routed: String = index
                .query_one(
                    "SELECT authority_code FROM routing_index WHERE record_id = $1",
                    &[&id],
                )
                .await?
                .get(0);
            Ok((routed == "E06000001").then_some(()))
        }
    })
    .await?;
    let hops: Vec<String> = index
        .query_one(
            "SELECT authorities FROM gateway_audit WHERE method = 'GetRecord' AND cardinality(authorities) = 2",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(hops, ["E06000002", "E06000001"]);
    reader.get_record(lookup(&created.id)).await?;
    Ok(())
}
