//! Adding and ending entries (paras 6 to 16), and the local search.
use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

/// An added service can be ended once, not before it began, and each change
/// moves the version on.
#[tokio::test]
async fn add_and_end_a_service_involvement() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let born = date(today() - Duration::days(3000));
    let record = f
        .client
        .create_record(sample::child_request("Ivy", "Cole", born, "TS24 8AH"))
        .await?
        .into_inner();
    let started = today() - Duration::days(50);
    let service = pb::ServiceInvolvement {
        provenance: None,
        kind: pb::ServiceKind::SchoolNurse as i32,
        provider_name: "Chris Walker".into(),
        started_on: Some(date(started)),
        archive_after_years: 2,
        ..Default::default()
    };
    let added = f
        .client
        .add_entry(pb::AddEntryRequest {
            id: record.id.clone(),
            entry: Some(pb::add_entry_request::Entry::Service(service)),
        })
        .await?
        .into_inner();
    assert_eq!(added.version, 2);
    let entry_id = added.services[0].entry_id;

    let end = |ended: chrono::NaiveDate| pb::EndEntryRequest {
        id: record.id.clone(),
        kind: pb::EntryKind::Service as i32,
        entry_id,
        ended_on: Some(date(ended)),
    };
    let status = f
        .client
        .end_entry(end(started - Duration::days(1)))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "ended before it started"
    );
    let status = f
        .client
        .end_entry(end(today() + Duration::days(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "ended in the future");

    let ended = f.client.end_entry(end(today())).await?.into_inner();
    assert_eq!(ended.services[0].ended_on, Some(date(today())));
    assert_eq!(ended.version, 3);
    let status = f.client.end_entry(end(today())).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "already ended");

    let wrong_kind = pb::EndEntryRequest {
        kind: pb::EntryKind::Contact as i32,
        ..end(today())
    };
    assert_eq!(
        f.client.end_entry(wrong_kind).await.unwrap_err().code(),
        Code::NotFound
    );
    Ok(())
}

/// Every kind of entry can be added and ended.
#[tokio::test]
async fn every_entry_kind_can_be_added_and_ended() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let born = today() - Duration::days(100);
    let record = f
        .client
        .create_record(sample::child_request("Rae", "Moss", date(born), "TS24 8AH"))
        .await?
        .into_inner();
    let full = sample::every_paragraph(date(born));
    use pb::add_entry_request::Entry;
    let entries = [
        (
            pb::EntryKind::Contact,
            Entry::Contact(full.contacts[0].clone()),
        ),
        (
            pb::EntryKind::Education,
            Entry::Education(full.education[0].clone()),
        ),
        (
            pb::EntryKind::Service,
            Entry::Service(full.services[4].clone()),
        ),
        (
            pb::EntryKind::CafAssessment,
            Entry::CafAssessment(pb::CafAssessment {
                provenance: None,
                actions_completed_on: None,
                ..full.caf_assessments[0].clone()
            }),
        ),
        (
            pb::EntryKind::LeadProfessional,
            Entry::LeadProfessional(full.lead_professionals[0].clone()),
        ),
    ];
    for (kind, entry) in entries {
        let added = f
            .client
            .add_entry(pb::AddEntryRequest {
                id: record.id.clone(),
                entry: Some(entry),
            })
            .await?
            .into_inner();
        let entry_id = match kind {
            pb::EntryKind::Contact => added.contacts[0].entry_id,
            pb::EntryKind::Education => added.education[0].entry_id,
            pb::EntryKind::Service => added.services[0].entry_id,
            pb::EntryKind::CafAssessment => added.caf_assessments[0].entry_id,
            _ => added.lead_professionals[0].entry_id,
        };
        let ended = f
            .client
            .end_entry(pb::EndEntryRequest {
                id: record.id.clone(),
                kind: kind as i32,
                entry_id,
                ended_on: Some(date(today())),
            })
            .await?
            .into_inner();
        let end = match kind {
            pb::EntryKind::Contact => ended.contacts[0].ended_on,
            pb::EntryKind::Education => ended.education[0].ended_on,
            pb::EntryKind::Service => ended.services[0].ended_on,
            pb::EntryKind::CafAssessment => ended.caf_assessments[0].actions_completed_on,
            _ => ended.lead_professionals[0].ended_on,
        };
        assert_eq!(end, Some(date(today())), "{kind:?}");
    }
    Ok(())
}

/// Search by surname (current or former, any case and punctuation), with a
/// date of birth or postcode, narrowed by forename; too vague a search is refused.
#[tokio::test]
async fn local_search() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let dob = today() - Duration::days(3000);
    let create = |given: &str,
                  family: &str,
                  born: chrono::NaiveDate,
                  postcode: &str,
                  former: Option<&str>| {
        let mut details = sample::child(given, family, date(born), postcode);
        if let Some(former) = former {
            details.former_names.push(pb::FormerName {
                name: Some(pb::PersonName {
                    given_names: given.into(),
                    family_name: former.into(),
                }),
                ceased_on: None,
            });
        }
        pb::CreateRecordRequest {
            details: Some(details),
            ..Default::default()
        }
    };
    let obrien = f
        .client
        .create_record(create("Sean", "O'Brien", dob, "TS24 8AH", None))
        .await?
        .into_inner();
    let renamed = f
        .client
        .create_record(create("Aoife", "Kelly", dob, "TS25 1QP", Some("OBrien")))
        .await?
        .into_inner();
    f.client
        .create_record(create(
            "Sean",
            "O'Brien",
            dob - Duration::days(1),
            "TS24 8AH",
            None,
        ))
        .await?;

    let search = |surname: &str,
                  forename: &str,
                  born: Option<chrono::NaiveDate>,
                  postcode: &str| pb::SearchRecordsRequest {
        reason: "checking the test child's record".into(),
        surname: surname.into(),
        forename: forename.into(),
        date_of_birth: born.map(date),
        postcode: postcode.into(),
        ..Default::default()
    };
    let found = f
        .client
        .search_records(search("obrien", "", Some(dob), ""))
        .await?
        .into_inner()
        .matches;
    let ids: Vec<_> = found.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![obrien.id.as_str(), renamed.id.as_str()],
        "current surname ranks above former"
    );

    let found = f
        .client
        .search_records(search("O BRIEN", "se", Some(dob), ""))
        .await?
        .into_inner()
        .matches;
    assert_eq!(found.len(), 1, "forename prefix narrows");
    assert_eq!(found[0].id, obrien.id);

    let found = f
        .client
        .search_records(search("Kelly", "", None, "ts251qp"))
        .await?
        .into_inner()
        .matches;
    assert_eq!(found.len(), 1, "surname and postcode");
    assert_eq!(found[0].id, renamed.id);
    assert_eq!(found[0].postcode, "TS25 1QP");

    let found = f
        .client
        .search_records(search("Nobody", "", Some(dob), ""))
        .await?
        .into_inner()
        .matches;
    assert!(found.is_empty());

    let status = f
        .client
        .search_records(search("obrien", "", None, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("date_of_birth:"),
        "{}",
        status.message()
    );
    let status = f
        .client
        .search_records(search("", "", Some(dob), ""))
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("surname:"),
        "{}",
        status.message()
    );
    Ok(())
}

/// Every call is audited with the caller from its certificate, the method,
/// the records involved and the outcome.
#[tokio::test]
async fn every_access_is_audited_with_the_certificate_identity() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let record = f
        .client
        .create_record(sample::child_request(
            "Zoe",
            "Hart",
            date(today() - Duration::days(900)),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    f.client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: record.id.clone(),
            ..Default::default()
        })
        .await?;
    let _ = f
        .client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: "bad".into(),
            ..Default::default()
        })
        .await;
    let db = f.db.connect().await?;
    let rows = db.query("SELECT caller_organisation, caller_name, method, record_ids, outcome FROM audit_event ORDER BY event_id", &[]).await?;
    let events: Vec<(String, String, String, Vec<String>, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0],
        (
            "E06000001".into(),
            "Test practitioner".into(),
            "CreateRecord".into(),
            vec![record.id.clone()],
            "ok".into()
        )
    );
    assert_eq!(events[1].2, "GetRecord");
    assert_eq!(events[1].3, vec![record.id.clone()]);
    assert_eq!(events[2].4, "invalid_argument");
    assert!(
        events[2].3.is_empty(),
        "what was typed as an identifier is not audited unless it is one"
    );
    Ok(())
}

/// A gender in a search narrows it to that gender and to records whose
/// gender is not specified (so no child is missed), the exact match first.
#[tokio::test]
async fn search_by_gender_keeps_records_whose_gender_is_not_specified() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let dob = date(today() - Duration::days(2500));
    let mut ids = Vec::new();
    for (given, gender) in [
        ("Alex", pb::Gender::Female),
        ("Sam", pb::Gender::Male),
        ("Jo", pb::Gender::NotSpecified),
    ] {
        let mut request = sample::child_request(given, "Rowe", dob, "TS24 8AH");
        request.details.as_mut().unwrap().gender = gender as i32;
        ids.push(f.client.create_record(request).await?.into_inner().id);
    }
    let request = pb::SearchRecordsRequest {
        reason: "checking the test child's record".into(),
        surname: "Rowe".into(),
        date_of_birth: Some(dob),
        gender: pb::Gender::Female as i32,
        ..Default::default()
    };
    let found: Vec<String> = f
        .client
        .search_records(request)
        .await?
        .into_inner()
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(found, vec![ids[0].clone(), ids[2].clone()]);
    let unknown = pb::SearchRecordsRequest {
        reason: "checking the test child's record".into(),
        surname: "Rowe".into(),
        date_of_birth: Some(dob),
        gender: 9,
        ..Default::default()
    };
    assert_eq!(
        f.client.search_records(unknown).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    Ok(())
}
