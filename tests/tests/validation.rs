//! Every request that breaks a rule of the schedules gets InvalidArgument
//! naming the field, and changes nothing.
use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

fn baby() -> pb::CreateRecordRequest {
    sample::every_paragraph(date(today() - Duration::days(100)))
}

fn school_child() -> pb::CreateRecordRequest {
    sample::child_request(
        "Mia",
        "Ward",
        date(today() - Duration::days(365 * 8)),
        "TS24 8AH",
    )
}

fn details(request: &mut pb::CreateRecordRequest) -> &mut pb::RecordDetails {
    request.details.as_mut().expect("samples have details")
}

fn service(kind: pb::ServiceKind, archive_after_years: u32) -> pb::ServiceInvolvement {
    pb::ServiceInvolvement {
        provenance: None,
        kind: kind as i32,
        provider_name: "Provider".into(),
        started_on: Some(date(today() - Duration::days(30))),
        archive_after_years,
        ..Default::default()
    }
}

/// (what the case breaks, the field the status must name, the request)
fn cases() -> Vec<(&'static str, &'static str, pb::CreateRecordRequest)> {
    let mut cases = Vec::new();
    let mut case = |what,
                    field,
                    change: &dyn Fn(&mut pb::CreateRecordRequest),
                    base: fn() -> pb::CreateRecordRequest| {
        let mut request = base();
        change(&mut request);
        cases.push((what, field, request));
    };
    case(
        "empty family name",
        "details.name.family_name",
        &|r| details(r).name.as_mut().unwrap().family_name = "  ".into(),
        school_child,
    );
    case(
        "empty given names",
        "details.name.given_names",
        &|r| details(r).name.as_mut().unwrap().given_names = String::new(),
        school_child,
    );
    case(
        "no name",
        "details.name",
        &|r| details(r).name = None,
        school_child,
    );
    case(
        "date of birth in the future",
        "details.date_of_birth",
        &|r| details(r).date_of_birth = Some(date(today() + Duration::days(1))),
        school_child,
    );
    case(
        "impossible date",
        "details.date_of_birth",
        &|r| details(r).date_of_birth = Some(sample::date(2020, 2, 30)),
        school_child,
    );
    case(
        "death before birth",
        "details.date_of_death",
        &|r| {
            let d = details(r);
            d.date_of_death = Some(sample::date(2000, 1, 1));
        },
        school_child,
    );
    case(
        "unknown gender value",
        "details.gender",
        &|r| details(r).gender = 42,
        school_child,
    );
    case(
        "gender not sent",
        "details.gender",
        &|r| details(r).gender = 0,
        school_child,
    );
    case(
        "unknown category",
        "details.category",
        &|r| details(r).category = 7,
        school_child,
    );
    case(
        "a child aged 19",
        "details.category",
        &|r| details(r).date_of_birth = Some(date(today() - Duration::days(365 * 19 + 10))),
        school_child,
    );
    case(
        "bad postcode",
        "details.whereabouts.current_address.postcode",
        &|r| {
            if let Some(pb::whereabouts::State::CurrentAddress(a)) =
                details(r).whereabouts.as_mut().unwrap().state.as_mut()
            {
                a.postcode = "NOT A CODE".into();
            }
        },
        school_child,
    );
    case(
        "no whereabouts",
        "details.whereabouts",
        &|r| details(r).whereabouts = None,
        school_child,
    );
    case(
        "left England without a statement",
        "details.whereabouts.left_england.intention",
        &|r| {
            details(r).whereabouts = Some(pb::Whereabouts {
                state: Some(pb::whereabouts::State::LeftEngland(pb::LeftEngland {
                    intention: 0,
                    stated_by_body: "Body".into(),
                    ceased_residence_on: None,
                })),
            });
        },
        school_child,
    );
    case(
        "metadata on paragraph 20",
        "details.metadata[0].paragraph",
        &|r| {
            details(r).metadata = vec![pb::MetadataEntry {
                paragraph: 20,
                key: "k".into(),
                value: "v".into(),
            }]
        },
        school_child,
    );
    case(
        "midwife for a child over one",
        "services[0].kind",
        &|r| r.services = vec![service(pb::ServiceKind::Midwife, 1)],
        school_child,
    );
    case(
        "archive period of 6 years",
        "services[0].archive_after_years",
        &|r| r.services = vec![service(pb::ServiceKind::HealthVisitor, 6)],
        school_child,
    );
    case(
        "archive period of 0 years on para 9",
        "services[0].archive_after_years",
        &|r| r.services = vec![service(pb::ServiceKind::SpecialistOrTargeted, 0)],
        school_child,
    );
    case(
        "archive period on para 8",
        "services[0].archive_after_years",
        &|r| r.services = vec![service(pb::ServiceKind::PrimaryMedical, 2)],
        school_child,
    );
    case(
        "sensitive primary medical service (8(2))",
        "services[0].sensitive",
        &|r| {
            let mut s = service(pb::ServiceKind::PrimaryMedical, 0);
            s.sensitive = true;
            s.sensitive_ground = pb::SensitiveGround::Consent as i32;
            r.services = vec![s];
        },
        school_child,
    );
    case(
        "sensitive service without a ground",
        "services[0].sensitive_ground",
        &|r| {
            let mut s = service(pb::ServiceKind::SpecialistOrTargeted, 2);
            s.sensitive = true;
            r.services = vec![s];
        },
        school_child,
    );
    case(
        "a sensitive health visitor (only para 9 services are sensitive)",
        "services[0].sensitive",
        &|r| {
            let mut s = service(pb::ServiceKind::HealthVisitor, 2);
            s.sensitive = true;
            s.sensitive_ground = pb::SensitiveGround::Consent as i32;
            r.services = vec![s];
        },
        school_child,
    );
    case(
        "unknown service kind",
        "services[0].kind",
        &|r| {
            r.services = vec![pb::ServiceInvolvement {
                provenance: None,
                kind: 99,
                ..service(pb::ServiceKind::HealthVisitor, 1)
            }]
        },
        school_child,
    );
    case(
        "service ends before it starts",
        "services[0].ended_on",
        &|r| {
            let mut s = service(pb::ServiceKind::SchoolNurse, 1);
            s.ended_on = Some(date(today() - Duration::days(60)));
            r.services = vec![s];
        },
        school_child,
    );
    case(
        "education ends before it starts",
        "education[0].ended_on",
        &|r| {
            r.education = vec![pb::EducationEntry {
                provenance: None,
                setting: pb::education_entry::Setting::EducationalInstitution as i32,
                provider_name: "School".into(),
                started_on: Some(date(today() - Duration::days(10))),
                ended_on: Some(date(today() - Duration::days(20))),
                ..Default::default()
            }]
        },
        school_child,
    );
    case(
        "education without a start date",
        "education[0].started_on",
        &|r| {
            r.education = vec![pb::EducationEntry {
                provenance: None,
                setting: pb::education_entry::Setting::EducationalInstitution as i32,
                provider_name: "School".into(),
                ..Default::default()
            }]
        },
        school_child,
    );
    case(
        "a carer of a young person on a child's record",
        "contacts[0].relationship",
        &|r| {
            r.contacts = vec![pb::Contact {
                provenance: None,
                relationship: pb::contact::Relationship::CarerOfYoungPerson as i32,
                name: Some(pb::PersonName {
                    given_names: "A".into(),
                    family_name: "B".into(),
                }),
                ..Default::default()
            }]
        },
        school_child,
    );
    case(
        "CAF actions completed before the assessment",
        "caf_assessments[0].actions_completed_on",
        &|r| {
            r.caf_assessments[0].actions_completed_on = Some(date(today() - Duration::days(200)));
        },
        baby,
    );
    case(
        "lead professional of unknown capacity",
        "lead_professionals[0].capacity",
        &|r| r.lead_professionals[0].capacity = 17,
        baby,
    );
    case(
        "lead professional ends before starting",
        "lead_professionals[0].ended_on",
        &|r| {
            r.lead_professionals[0].ended_on = Some(date(today() - Duration::days(200)));
        },
        baby,
    );
    case(
        "body identifier without a value",
        "details.body_identifiers[0].value",
        &|r| details(r).body_identifiers[0].value = String::new(),
        baby,
    );
    case(
        "left England intending to return, without the date the three years run from",
        "details.whereabouts.left_england.ceased_residence_on",
        &|r| {
            details(r).whereabouts = Some(pb::Whereabouts {
                state: Some(pb::whereabouts::State::LeftEngland(pb::LeftEngland {
                    intention: pb::left_england::ReturnIntention::IntendsToReturnWithinThreeYears
                        as i32,
                    stated_by_body: "Body".into(),
                    ceased_residence_on: None,
                })),
            })
        },
        school_child,
    );
    case(
        "left England before birth",
        "details.whereabouts.left_england.ceased_residence_on",
        &|r| {
            details(r).whereabouts = Some(pb::Whereabouts {
                state: Some(pb::whereabouts::State::LeftEngland(pb::LeftEngland {
                    intention: pb::left_england::ReturnIntention::NoInformation as i32,
                    stated_by_body: "Body".into(),
                    ceased_residence_on: Some(date(today() - Duration::days(365 * 9))),
                })),
            })
        },
        school_child,
    );
    case(
        "a former name given up before birth",
        "details.former_names[0].ceased_on",
        &|r| details(r).former_names[0].ceased_on = Some(date(today() - Duration::days(200))),
        baby,
    );
    case(
        "education before birth",
        "education[0].started_on",
        &|r| r.education[0].started_on = Some(date(today() - Duration::days(200))),
        baby,
    );
    case(
        "GP registration before birth",
        "services[0].started_on",
        &|r| r.services[0].started_on = Some(date(today() - Duration::days(200))),
        baby,
    );
    cases
}

/// Each broken rule is refused with InvalidArgument naming its field, and no
/// row is written anywhere.
#[tokio::test]
async fn each_rule_is_enforced_and_changes_nothing() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    for (what, field, request) in cases() {
        let status = f.client.create_record(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{what}: expected the field {field}, got {:?}",
            status.message()
        );
    }
    for table in [
        "child_record",
        "former_name",
        "contact",
        "education",
        "service",
        "caf_assessment",
        "lead_professional",
        "body_identifier",
        "record_metadata",
    ] {
        assert_eq!(
            f.db.count(table).await?,
            0,
            "{table} must be empty after refused creates"
        );
    }
    // Both bases are themselves valid, so the cases above failed for their one change.
    f.client.create_record(baby()).await?;
    f.client.create_record(school_child()).await?;
    Ok(())
}

/// An update must stay consistent with the entries the record holds: the age
/// rule for a changed category or date of birth, para 6 contacts, para 13
/// midwives. Each refusal leaves the record as it was.
#[tokio::test]
async fn updates_are_checked_against_the_recorded_entries() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let born = today() - Duration::days(100);
    let record = f.client.create_record(baby()).await?.into_inner();
    let update = |change: &dyn Fn(&mut pb::RecordDetails)| {
        let mut details = baby().details.unwrap();
        change(&mut details);
        pb::UpdateRecordRequest {
            id: record.id.clone(),
            expected_version: 1,
            details: Some(details),
        }
    };
    let cases: [(&str, &str, pb::UpdateRecordRequest); 3] = [
        (
            "a baby recorded as a participating young person",
            "details.category",
            update(&|d| {
                d.category = pb::PersonCategory::ParticipatingYoungPerson as i32;
                d.consent = Some(pb::YoungPersonConsent {
                    given_on: Some(date(today())),
                    recorded_by: "Team".into(),
                });
            }),
        ),
        (
            "a young person's age, but the record holds a parent with parental responsibility",
            "details.category",
            update(&|d| {
                d.category = pb::PersonCategory::ParticipatingYoungPerson as i32;
                d.consent = Some(pb::YoungPersonConsent {
                    given_on: Some(date(today())),
                    recorded_by: "Team".into(),
                });
                d.date_of_birth = Some(date(today() - Duration::days(365 * 20)));
            }),
        ),
        (
            "a date of birth that puts the midwife after the first birthday",
            "details.date_of_birth",
            update(&|d| d.date_of_birth = Some(date(born - Duration::days(2 * 365)))),
        ),
    ];
    for (what, field, request) in cases {
        let status = f.client.update_record(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}");
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{what}: {}",
            status.message()
        );
    }
    let after = f
        .client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: record.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(after, record, "nothing changed");
    // The same update with consistent details is accepted.
    let fine = update(&|d| d.gender = pb::Gender::NotSpecified as i32);
    assert_eq!(f.client.update_record(fine).await?.into_inner().version, 2);
    Ok(())
}

/// Updates and added entries are held to the same rules, and a refused one
/// leaves the record at its version.
#[tokio::test]
async fn refused_updates_and_entries_leave_the_record_unchanged() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let record = f.client.create_record(school_child()).await?.into_inner();

    let mut bad = school_child().details.unwrap();
    bad.date_of_birth = Some(date(today() + Duration::days(3)));
    let status = f
        .client
        .update_record(pb::UpdateRecordRequest {
            id: record.id.clone(),
            expected_version: 1,
            details: Some(bad),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("details.date_of_birth:"),
        "{}",
        status.message()
    );

    let midwife = pb::AddEntryRequest {
        id: record.id.clone(),
        entry: Some(pb::add_entry_request::Entry::Service(service(
            pb::ServiceKind::Midwife,
            1,
        ))),
    };
    let status = f.client.add_entry(midwife).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("service.kind:"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("age of one"),
        "{}",
        status.message()
    );

    let no_entry = pb::AddEntryRequest {
        id: record.id.clone(),
        entry: None,
    };
    assert_eq!(
        f.client.add_entry(no_entry).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let bad_id = pb::GetRecordRequest {
        reason: "checking the test child's record".into(),
        id: "not-an-id".into(),
        ..Default::default()
    };
    let status = f.client.get_record(bad_id).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("id:"), "{}", status.message());

    let after = f
        .client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: record.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(after, record, "nothing changed");
    assert_eq!(f.db.count("service").await?, 0);
    Ok(())
}
