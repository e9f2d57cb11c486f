//! Access conditions (RULES.md, practice): a person whose training, enhanced
//! criminal record check or signed user agreement is missing or lapsed is
//! refused, at the gateway and at the node, with a status naming which; and
//! every read states a reason, audited with the search's parameters.
use contactpoint_tests::*;
use tonic::Code;

fn search(reason: &str) -> pb::SearchRecordsRequest {
    pb::SearchRecordsRequest {
        surname: "Hartley".into(),
        date_of_birth: Some(date(today() - chrono::Duration::days(400))),
        reason: reason.into(),
        ..Default::default()
    }
}

/// The first PermissionDenied `ask` meets, once the servers have reloaded the policy.
async fn refusal_once_reloaded<F, Fut>(mut ask: F) -> anyhow::Result<tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    eventually("the reloaded policy", || {
        let asked = ask();
        async move {
            Ok(asked
                .await
                .err()
                .filter(|status| status.code() == Code::PermissionDenied))
        }
    })
    .await
}

#[tokio::test]
async fn a_lapsed_condition_is_refused_naming_it() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001"]).await?;
    let four_years_ago = today() - chrono::Duration::days(4 * 365 + 1);
    let last_year = today() - chrono::Duration::days(365);
    federation.pki.write_policy(&format!(
        r#"
[[conditions]]
organisation = "NSPCC"
common_name = "Lapsed check"
training_completed_on = {last_year}
criminal_record_check_on = {four_years_ago}
user_agreement_signed_on = {last_year}

[[conditions]]
organisation = "E06000001"
common_name = "New starter"
criminal_record_check_on = {last_year}
"#
    ))?;
    let lapsed = federation.pki.client_files("NSPCC", "Lapsed check")?;
    let mut through_gateway = federation.gateway.client(&lapsed).await?;
    let at_node = federation.nodes[0].client(&lapsed).await?;
    let check_lapsed = |status: tonic::Status| {
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(
            status.message().contains(&format!(
                "the enhanced criminal record check of {four_years_ago} lapsed"
            )) && !status.message().contains("training"),
            "{}",
            status.message()
        );
    };
    // The policy reloads within a couple of seconds of being written; the
    // node applies the same conditions itself, not relying on the gateway.
    let gateway_search = || {
        let mut client = through_gateway.clone();
        async move { client.search_records(search("referral")).await.map(drop) }
    };
    check_lapsed(refusal_once_reloaded(gateway_search).await?);
    let node_search = || {
        let mut client = at_node.clone();
        async move { client.search_records(search("referral")).await.map(drop) }
    };
    check_lapsed(refusal_once_reloaded(node_search).await?);
    check_lapsed(
        through_gateway
            .get_record(pb::GetRecordRequest {
                id: contactpoint_proto::identifier::RecordId::mint("E06000001", 1).to_string(),
                reason: "referral".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );

    // A new member of staff without training or an agreement cannot even
    // record a child.
    let mut starter = federation.nodes[0]
        .client(&federation.pki.client_files("E06000001", "New starter")?)
        .await?;
    let status = starter
        .create_record(sample::child_request(
            "Amy",
            "Hartley",
            date(today()),
            "TS24 8AH",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("no completed training")
            && status.message().contains("no signed user agreement")
            && !status.message().contains("criminal"),
        "{}",
        status.message()
    );
    assert_eq!(federation.node_dbs[0].count("child_record").await?, 0);
    // Refusals are audited, at the node and at the gateway.
    let node_refusals: i64 = federation.node_dbs[0]
        .connect()
        .await?
        .query_one(
            "SELECT count(*) FROM audit_event WHERE outcome = 'permission_denied' AND method = 'CreateRecord' AND caller_name = 'New starter'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(node_refusals, 1);
    Ok(())
}

#[tokio::test]
async fn every_read_states_a_reason_which_is_audited() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001"]).await?;
    let born = today() - chrono::Duration::days(400);
    let record = federation
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Amy",
            "Hartley",
            date(born),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    federation
        .wait_until_routed(&record.id, "E06000001")
        .await?;
    let nspcc = federation.pki.client_files("NSPCC", "Helpline")?;
    let mut gateway = federation.gateway.client(&nspcc).await?;
    let mut node = federation.nodes[0].client(&nspcc).await?;

    let without_reason = pb::GetRecordRequest {
        id: record.id.clone(),
        reason: "  ".into(),
        ..Default::default()
    };
    for status in [
        gateway
            .get_record(without_reason.clone())
            .await
            .unwrap_err(),
        node.get_record(without_reason).await.unwrap_err(),
        gateway.search_records(search("")).await.unwrap_err(),
        node.search_records(search("")).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with("reason:"),
            "{}",
            status.message()
        );
    }
    let found = gateway
        .search_records(search("call to the helpline about a neighbour's child"))
        .await?
        .into_inner();
    assert_eq!(found.matches.len(), 1);

    // The node's audit holds who, the reason, the parameters and the result.
    let db = federation.node_dbs[0].connect().await?;
    let row = db
        .query_one(
            "SELECT reason, query, record_ids, via IS NOT NULL FROM audit_event
             WHERE method = 'SearchRecords' AND outcome = 'ok'",
            &[],
        )
        .await?;
    let (reason, query, ids, via): (String, String, Vec<String>, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(reason, "call to the helpline about a neighbour's child");
    let query: serde_json::Value = serde_json::from_str(&query)?;
    assert_eq!(query["surname"], "Hartley");
    assert_eq!(query["date_of_birth"], born.to_string());
    assert_eq!(ids, std::slice::from_ref(&record.id));
    assert!(via, "it came through the gateway");
    // And the gateway's own audit too.
    let row = federation
        .gateway_db
        .connect()
        .await?
        .query_one(
            "SELECT reason, query FROM gateway_audit WHERE method = 'SearchRecords' AND outcome = 'ok'",
            &[],
        )
        .await?;
    let (reason, query): (String, String) = (row.get(0), row.get(1));
    assert_eq!(reason, "call to the helpline about a neighbour's child");
    assert!(query.contains("\"surname\":\"Hartley\""), "{query}");
    // The chain still verifies with the parameters in it.
    let key = contactpoint_node::audit::public_key_of(&federation.nodes[0].config.audit_key)
        .map_err(anyhow::Error::msg)?;
    let report = contactpoint_node::audit::verify(&db, &key).await?;
    assert!(report.is_intact(), "{:?}", report.problems);
    Ok(())
}
