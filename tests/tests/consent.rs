//! A participating young person's record exists only with their explicit
//! consent, and withdrawing consent archives it.
use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

fn young_person(consent: Option<pb::YoungPersonConsent>) -> pb::CreateRecordRequest {
    let mut details = sample::child(
        "Casey",
        "Doyle",
        date(today() - Duration::days(365 * 19)),
        "TS24 8AH",
    );
    details.category = pb::PersonCategory::ParticipatingYoungPerson as i32;
    details.consent = consent;
    pb::CreateRecordRequest {
        details: Some(details),
        ..Default::default()
    }
}

fn consent() -> pb::YoungPersonConsent {
    pb::YoungPersonConsent {
        given_on: Some(date(today())),
        recorded_by: "Leaving care team".into(),
    }
}

/// Without consent a young person's record is refused; a child's record
/// cannot carry one.
#[tokio::test]
async fn a_young_persons_record_needs_consent() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let status = f
        .client
        .create_record(young_person(None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("details.consent:"),
        "{}",
        status.message()
    );
    let mut child = sample::child_request(
        "Ann",
        "Doyle",
        date(today() - Duration::days(900)),
        "TS24 8AH",
    );
    child.details.as_mut().unwrap().consent = Some(consent());
    let status = f.client.create_record(child).await.unwrap_err();
    assert!(
        status.message().starts_with("details.consent:"),
        "{}",
        status.message()
    );
    assert_eq!(f.db.count("child_record").await?, 0);
    Ok(())
}

/// Withdrawing consent archives the record at once: users no longer see it,
/// the management team does, and the withdrawal is audited with its reason.
#[tokio::test]
async fn withdrawing_consent_archives_the_record() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let record = f
        .client
        .create_record(young_person(Some(consent())))
        .await?
        .into_inner();
    let withdraw = |reason: &str| pb::WithdrawConsentRequest {
        id: record.id.clone(),
        reason: reason.into(),
    };
    assert_eq!(
        f.client
            .withdraw_consent(withdraw(""))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let withdrawn = f
        .client
        .withdraw_consent(withdraw("asked at review meeting"))
        .await?
        .into_inner();
    assert!(withdrawn.archived_on.is_some());

    let read = pb::GetRecordRequest {
        id: record.id.clone(),
        reason: "check".into(),
        ..Default::default()
    };
    let status = f.client.get_record(read.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("archived"),
        "{}",
        status.message()
    );
    let mut management = f
        .node
        .client(&f.pki.management_files("E06000001", "Data manager")?)
        .await?;
    assert_eq!(
        management.get_record(read).await?.into_inner().id,
        record.id
    );
    let audited: i64 = f
        .db
        .connect()
        .await?
        .query_one("SELECT count(*) FROM audit_event WHERE method = 'WithdrawConsent' AND reason = 'asked at review meeting'", &[])
        .await?
        .get(0);
    assert_eq!(audited, 1);

    let child = f
        .client
        .create_record(sample::child_request(
            "Ann",
            "Doyle",
            date(today() - Duration::days(900)),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let status = f
        .client
        .withdraw_consent(pb::WithdrawConsentRequest {
            id: child.id,
            reason: "no".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "a child's record has no consent to withdraw"
    );
    Ok(())
}
