//! Unusual patterns in the audit are flagged (RULES.md, audit): a user
//! looking up a child who shares their surname (the responsible authority is
//! told), and a user who searches again and again without viewing a record
//! (flagged at the gateway for operators to review).
use contactpoint_tests::*;
use tonic::Code;

#[tokio::test]
async fn a_reader_sharing_the_childs_surname_is_reported() -> anyhow::Result<()> {
    let f = Federation::start(&["E06000001"]).await?;
    let born = date(today() - chrono::Duration::days(1200));
    let record = f
        .staff(0)
        .await?
        .create_record(sample::child_request("Ruby", "Lane", born, "TS24 8AH"))
        .await?
        .into_inner();
    f.wait_until_routed(&record.id, "E06000001").await?;
    for reader in ["Jo Lane", "Sam Patel"] {
        f.gateway
            .client(&f.pki.client_files("NSPCC", reader)?)
            .await?
            .get_record(pb::GetRecordRequest {
                id: record.id.clone(),
                reason: "helpline call".into(),
                ..Default::default()
            })
            .await?;
    }
    let told = f.nodes[0]
        .client(&f.pki.management_files("E06000001", "Data manager")?)
        .await?
        .list_notifications(pb::ListNotificationsRequest::default())
        .await?
        .into_inner()
        .notifications;
    let flagged: Vec<&str> = told
        .iter()
        .filter(|n| n.kind == pb::NotificationKind::ReaderSharesSurname as i32)
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(flagged, ["Jo Lane"]);
    Ok(())
}

#[tokio::test]
async fn searching_without_viewing_is_flagged_for_operators() -> anyhow::Result<()> {
    // The test gateway flags three searches in 24 hours without a view.
    let f = Federation::start(&["E06000001"]).await?;
    let search = pb::SearchRecordsRequest {
        surname: "Nobody".into(),
        date_of_birth: Some(date(today() - chrono::Duration::days(900))),
        reason: "looking".into(),
        ..Default::default()
    };
    let mut browsing = f
        .gateway
        .client(&f.pki.client_files("NSPCC", "Browser")?)
        .await?;
    let mut operator = f
        .gateway
        .client(&f.pki.client_files("ContactPoint operations", "On call")?)
        .await?;
    let flags = |operator: &mut pb::gateway_client::GatewayClient<_>| {
        let mut operator = operator.clone();
        async move {
            anyhow::Ok(
                operator
                    .list_audit_flags(pb::ListAuditFlagsRequest::default())
                    .await?
                    .into_inner()
                    .flags,
            )
        }
    };
    for _ in 0..2 {
        browsing.search_records(search.clone()).await?;
    }
    assert!(
        flags(&mut operator).await?.is_empty(),
        "two searches are not unusual"
    );
    for _ in 0..3 {
        browsing.search_records(search.clone()).await?;
    }
    let raised = flags(&mut operator).await?;
    assert_eq!(
        raised.len(),
        1,
        "flagged once, not once per search: {raised:?}"
    );
    assert_eq!(
        (raised[0].organisation.as_str(), raised[0].name.as_str()),
        ("NSPCC", "Browser")
    );
    assert!(
        raised[0].detail.starts_with("3 searches"),
        "{}",
        raised[0].detail
    );
    // Only operators review flags.
    let status = browsing
        .list_audit_flags(pb::ListAuditFlagsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    Ok(())
}
