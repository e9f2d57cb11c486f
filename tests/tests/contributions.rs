//! Contributions by Schedule 4 and 5 bodies (regulation 11): each writes only
//! what it holds, superseding its own earlier entry, with provenance; a
//! sensitive service needs its ground; refused contributions change nothing.
use contactpoint_tests::*;
use tonic::Code;

fn school_entry(school: &str, started: chrono::NaiveDate) -> pb::contribute_request::Entry {
    pb::contribute_request::Entry::Education(pb::EducationEntry {
        setting: pb::education_entry::Setting::EducationalInstitution as i32,
        provider_name: school.into(),
        started_on: Some(date(started)),
        ..Default::default()
    })
}

fn service(kind: pb::ServiceKind, sensitive: bool, ground: i32) -> pb::contribute_request::Entry {
    pb::contribute_request::Entry::Service(pb::ServiceInvolvement {
        kind: kind as i32,
        provider_name: "Headland Medical Practice".into(),
        sensitive,
        sensitive_ground: ground,
        started_on: Some(date(today() - chrono::Duration::days(10))),
        archive_after_years: if kind == pb::ServiceKind::PrimaryMedical {
            0
        } else {
            2
        },
        ..Default::default()
    })
}

fn upn(value: &str) -> Option<pb::BodyIdentifier> {
    Some(pb::BodyIdentifier {
        body: String::new(),
        scheme: "UPN".into(),
        value: value.into(),
    })
}

#[tokio::test]
async fn bodies_write_what_they_hold_with_provenance() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001"]).await?;
    let born = today() - chrono::Duration::days(3000);
    let mut staff = federation.staff(0).await?;
    let record = staff
        .create_record(sample::child_request("Ava", "Cole", date(born), "TS24 8AH"))
        .await?
        .into_inner();
    federation
        .wait_until_routed(&record.id, "E06000001")
        .await?;
    let school_files = federation
        .pki
        .client_files("Hartlepool Academy", "MIS feed")?;
    let mut school = federation.gateway.client(&school_files).await?;
    let mut school_at_node = federation.nodes[0].client(&school_files).await?;
    let gp_files = federation
        .pki
        .client_files("Headland Medical Practice", "Practice system")?;
    let mut gp = federation.gateway.client(&gp_files).await?;
    let mut management = federation.nodes[0]
        .client(
            &federation
                .pki
                .management_files("E06000001", "Data manager")?,
        )
        .await?;
    let read = |id: &str| pb::GetRecordRequest {
        id: id.into(),
        reason: "checking contributions".into(),
        ..Default::default()
    };

    // The school's attendance, through the gateway, with its pupil number.
    let first = school
        .contribute(pb::ContributeRequest {
            id: record.id.clone(),
            body_identifier: upn("H801200001001"),
            entry: Some(school_entry(
                "Hartlepool Academy",
                born + chrono::Duration::days(1500),
            )),
        })
        .await?
        .into_inner();
    assert_eq!(first.superseded_entry_id, 0);
    // Its next return supersedes its own entry rather than adding another.
    let second = school
        .contribute(pb::ContributeRequest {
            id: record.id.clone(),
            body_identifier: upn("H801200001002"),
            entry: Some(school_entry(
                "Hartlepool Academy",
                born + chrono::Duration::days(1600),
            )),
        })
        .await?
        .into_inner();
    assert_eq!(second.superseded_entry_id, first.entry_id);

    let whole = management.get_record(read(&record.id)).await?.into_inner();
    let from_school: Vec<_> = whole
        .education
        .iter()
        .filter(|e| e.provider_name == "Hartlepool Academy")
        .collect();
    assert_eq!(from_school.len(), 1, "superseded, not added");
    assert_eq!(
        from_school[0].started_on,
        Some(date(born + chrono::Duration::days(1600)))
    );
    let provenance = from_school[0].provenance.as_ref().expect("provenance kept");
    assert_eq!(provenance.supplied_by, "Hartlepool Academy");
    assert_eq!(provenance.body_reference, "UPN:H801200001002");
    assert!(!provenance.supplied_at.is_empty());
    // Para 18: the body's identifier, updated in place.
    let upns: Vec<_> = whole
        .body_identifiers
        .iter()
        .filter(|id| id.body == "Hartlepool Academy")
        .map(|id| id.value.as_str())
        .collect();
    assert_eq!(upns, ["H801200001002"]);
    // Staff entries carry their author too; users see no provenance (para 20).
    assert!(whole.contacts.iter().all(|c| c
        .provenance
        .as_ref()
        .is_some_and(|p| p.supplied_by == "E06000001")));
    let as_staff = staff.get_record(read(&record.id)).await?.into_inner();
    assert!(as_staff.education.iter().all(|e| e.provenance.is_none()));
    assert!(as_staff.withheld.iter().any(|w| w.contains("paragraph 20")));

    // A paragraph the school does not hold: refused at the node (the
    // gateway routes it there) naming what it holds; nothing changes.
    let version = whole.version;
    let status = school
        .contribute(pb::ContributeRequest {
            id: record.id.clone(),
            body_identifier: None,
            entry: Some(service(pb::ServiceKind::PrimaryMedical, false, 0)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains(
            "holds education (Schedule 1 para 7), not primary_medical (Schedule 1 para 8)"
        ),
        "{}",
        status.message()
    );
    // AddEntry answers with the record, which a body may not read: refused.
    let status = school_at_node
        .add_entry(pb::AddEntryRequest {
            id: record.id.clone(),
            entry: Some(pb::add_entry_request::Entry::Education(
                pb::EducationEntry {
                    setting: pb::education_entry::Setting::EducationalInstitution as i32,
                    provider_name: "Hartlepool Academy".into(),
                    started_on: Some(date(born + chrono::Duration::days(1500))),
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("only through Contribute"),
        "{}",
        status.message()
    );
    // Its sixth form, a different provider, is an entry of its own.
    let sixth_form = school
        .contribute(pb::ContributeRequest {
            id: record.id.clone(),
            body_identifier: None,
            entry: Some(school_entry(
                "Hartlepool Academy Sixth Form",
                born + chrono::Duration::days(1600),
            )),
        })
        .await?
        .into_inner();
    assert_eq!(
        sixth_form.superseded_entry_id, 0,
        "another provider supersedes nothing"
    );
    // A body ends its entry by contributing it again, not with EndEntry.
    let ended = school_at_node
        .end_entry(pb::EndEntryRequest {
            id: record.id.clone(),
            kind: pb::EntryKind::Education as i32,
            entry_id: second.entry_id,
            ended_on: Some(date(today())),
        })
        .await
        .unwrap_err();
    assert_eq!(ended.code(), Code::PermissionDenied);

    // A sensitive service without its ground is refused; with it, accepted.
    let refused = gp
        .contribute(pb::ContributeRequest {
            id: record.id.clone(),
            body_identifier: None,
            entry: Some(service(pb::ServiceKind::SpecialistOrTargeted, true, 0)),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("sensitive_ground"),
        "{}",
        refused.message()
    );
    let unchanged = management.get_record(read(&record.id)).await?.into_inner();
    assert_eq!(
        unchanged.version,
        version + 1,
        "refused contributions change nothing (the sixth form's was accepted)"
    );

    gp.contribute(pb::ContributeRequest {
        id: record.id.clone(),
        body_identifier: None,
        entry: Some(service(
            pb::ServiceKind::SpecialistOrTargeted,
            true,
            pb::SensitiveGround::SignificantHarm as i32,
        )),
    })
    .await?;
    let whole = management.get_record(read(&record.id)).await?.into_inner();
    let sensitive = whole
        .services
        .iter()
        .find(|s| s.sensitive)
        .expect("recorded");
    assert_eq!(
        sensitive.sensitive_ground,
        pb::SensitiveGround::SignificantHarm as i32
    );
    assert_eq!(
        sensitive
            .provenance
            .as_ref()
            .map(|p| p.supplied_by.as_str()),
        Some("Headland Medical Practice")
    );

    // Shielding holds through contributions.
    management
        .shield_record(pb::ShieldRecordRequest {
            id: record.id.clone(),
            shielded: true,
            reason: "risk from a former partner".into(),
        })
        .await?;
    school
        .contribute(pb::ContributeRequest {
            id: record.id.clone(),
            body_identifier: None,
            entry: Some(school_entry(
                "Hartlepool Academy",
                born + chrono::Duration::days(1700),
            )),
        })
        .await?;
    let after = staff.get_record(read(&record.id)).await?.into_inner();
    assert!(after.shielded && after.education.is_empty() && after.whereabouts.is_none());

    // Every contribution, accepted or refused, is audited at the node.
    let db = federation.node_dbs[0].connect().await?;
    let outcomes: Vec<String> = db
        .query(
            "SELECT outcome FROM audit_event WHERE method = 'Contribute' AND caller_organisation = 'Hartlepool Academy' ORDER BY event_id",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "permission_denied", "ok", "ok"]);
    Ok(())
}

/// A batch through the gateway: each contribution goes to its record's node
/// and is answered on its own, in order.
#[tokio::test]
async fn a_batch_answers_each_contribution_in_order() -> anyhow::Result<()> {
    let federation = Federation::start(&["E06000001", "E06000002"]).await?;
    let born = date(today() - chrono::Duration::days(2000));
    let mut ids = Vec::new();
    for (index, code) in TEST_AUTHORITIES.iter().take(2).enumerate() {
        let record = federation
            .staff(index)
            .await?
            .create_record(sample::child_request("Noah", "Reed", born, "TS1 2AA"))
            .await?
            .into_inner();
        federation.wait_until_routed(&record.id, code).await?;
        ids.push(record.id);
    }
    let mut school = federation
        .gateway
        .client(
            &federation
                .pki
                .client_files("Hartlepool Academy", "MIS feed")?,
        )
        .await?;
    let item = |id: &str, entry| pb::ContributeRequest {
        id: id.into(),
        body_identifier: upn("H1"),
        entry: Some(entry),
    };
    let started = today() - chrono::Duration::days(100);
    let unknown =
        contactpoint_proto::identifier::RecordId::mint("E06000001", 99_999_999).to_string();
    let answer = school
        .contribute_batch(pb::ContributeBatchRequest {
            contributions: vec![
                item(&ids[0], school_entry("Hartlepool Academy", started)),
                item(&ids[1], school_entry("Hartlepool Academy", started)),
                item(&unknown, school_entry("Hartlepool Academy", started)),
                item(&ids[1], service(pb::ServiceKind::PrimaryMedical, false, 0)),
                item("not an id", school_entry("Hartlepool Academy", started)),
            ],
        })
        .await?
        .into_inner();
    let codes: Vec<i32> = answer.outcomes.iter().map(|o| o.code).collect();
    assert_eq!(
        codes,
        [
            0,
            0,
            Code::NotFound as i32,
            Code::PermissionDenied as i32,
            Code::InvalidArgument as i32
        ],
        "{:?}",
        answer.outcomes
    );
    assert_eq!(
        answer.outcomes[1].accepted.as_ref().map(|a| a.id.as_str()),
        Some(ids[1].as_str())
    );
    Ok(())
}
