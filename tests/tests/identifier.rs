//! Para 5 identifiers: unique, checked, never reused.
use contactpoint_tests::*;
use tonic::Code;

/// A mistyped identifier is refused as mistyped, not looked up as unknown.
#[tokio::test]
async fn a_mistyped_identifier_is_rejected_by_its_check_digits() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let request = sample::child_request(
        "Ava",
        "Stone",
        date(today() - chrono::Duration::days(2000)),
        "TS24 8AH",
    );
    let record = f.client.create_record(request).await?.into_inner();

    // Swap two neighbouring serial digits, or change one if they are equal.
    let mut chars: Vec<char> = record.id.chars().collect();
    let i = chars.len() - 5;
    if chars[i] == chars[i - 1] {
        chars[i] = if chars[i] == '9' { '0' } else { '9' };
    } else {
        chars.swap(i, i - 1);
    }
    let typo: String = chars.into_iter().collect();
    let status = f
        .client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: typo,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("check digits"),
        "{}",
        status.message()
    );

    // Typed in lower case without hyphens, it is found.
    let typed = record.id.replace('-', "").to_lowercase();
    let found = f
        .client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: typed,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(found.id, record.id);

    // A well-formed identifier this node does not hold is NotFound.
    let other = contactpoint_node::identifier::RecordId::mint("E06000001", 99_999_999);
    let status = f
        .client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: other.to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    Ok(())
}

/// Identifiers stay distinct, and refused creates in between leave nothing.
#[tokio::test]
async fn identifiers_are_never_reused() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let born = date(today() - chrono::Duration::days(2000));
    let mut ids = std::collections::HashSet::new();
    for i in 0..5 {
        let request = sample::child_request("Ava", &format!("Stone{i}"), born, "TS24 8AH");
        assert!(ids.insert(f.client.create_record(request).await?.into_inner().id));
        // A create refused by the rules leaves nothing behind.
        let mut bad = sample::child_request("Ava", "Stone", born, "TS24 8AH");
        bad.services.push(pb::ServiceInvolvement {
            provenance: None,
            kind: 99,
            ..Default::default()
        });
        assert!(f.client.create_record(bad).await.is_err());
    }
    assert_eq!(
        f.db.count("child_record").await?,
        5,
        "failed creates left nothing behind"
    );
    Ok(())
}
