//! Optimistic concurrency: of two updates from the same version, one wins.
use contactpoint_tests::*;
use tonic::Code;

/// Two clients update the same version at once: exactly one succeeds, the
/// other gets FailedPrecondition naming the current version, and the record
/// holds the winner's change.
#[tokio::test]
async fn concurrent_updates_one_wins_the_other_is_stale() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let born = date(today() - chrono::Duration::days(4000));
    let mut client = f.client.clone();
    let request = sample::child_request("Ella", "Price", born, "TS24 8AH");
    let record = client.create_record(request).await?.into_inner();

    for round in 0..5u64 {
        let version = record.version + round;
        let update = |surname: &str| pb::UpdateRecordRequest {
            id: record.id.clone(),
            expected_version: version,
            details: Some(sample::child("Ella", surname, born, "TS24 8AH")),
        };
        let (mut a, mut b) = (f.client.clone(), f.client.clone());
        let (first, second) = tokio::join!(
            a.update_record(update("Price-A")),
            b.update_record(update("Price-B"))
        );
        let (winner, loser) = match (first, second) {
            (Ok(w), Err(l)) => (w.into_inner(), l),
            (Err(l), Ok(w)) => (w.into_inner(), l),
            (first, second) => panic!("exactly one update must win: {first:?} / {second:?}"),
        };
        assert_eq!(loser.code(), Code::FailedPrecondition);
        assert!(
            loser
                .message()
                .contains(&format!("version {}", version + 1)),
            "{}",
            loser.message()
        );
        assert_eq!(winner.version, version + 1);
        let stored = client
            .get_record(pb::GetRecordRequest {
                reason: "checking the test child's record".into(),
                id: record.id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(
            stored, winner,
            "the record holds the winner's change and nothing of the loser's"
        );
    }
    Ok(())
}

/// An update from a version read before another change is refused.
#[tokio::test]
async fn a_stale_update_changes_nothing() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let born = date(today() - chrono::Duration::days(4000));
    let record = f
        .client
        .create_record(sample::child_request("Finn", "Hale", born, "TS24 8AH"))
        .await?
        .into_inner();
    let fresh = pb::UpdateRecordRequest {
        id: record.id.clone(),
        expected_version: 1,
        details: Some(sample::child("Finn", "Hale-Ross", born, "TS24 8AH")),
    };
    f.client.update_record(fresh).await?;
    let stale = pb::UpdateRecordRequest {
        id: record.id.clone(),
        expected_version: 1,
        details: Some(sample::child("Finn", "Other", born, "TS24 8AH")),
    };
    let status = f.client.update_record(stale).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let now = f
        .client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: record.id,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(now.name.unwrap().family_name, "Hale-Ross");
    assert_eq!(now.version, 2);
    Ok(())
}
