//! What each reader sees (regulation 6) and shielding: a matrix of roles
//! against kinds of record, through lookup and search, at the node and
//! through the gateway.
use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

const A: &str = "E06000001";
const B: &str = "E06000002";

fn born() -> chrono::NaiveDate {
    today() - Duration::days(120)
}

fn get(id: &str) -> pb::GetRecordRequest {
    pb::GetRecordRequest {
        id: id.into(),
        reason: "section 47 enquiry".into(),
        ..Default::default()
    }
}

/// A record with a sensitive service, another body's identifier (the NHS
/// number, NHS England's) and para 15 and 20 information: each reader sees
/// what regulation 6 allows, and is told what was withheld.
#[tokio::test]
async fn each_role_sees_what_regulation_6_allows() -> anyhow::Result<()> {
    let f = Federation::start(&[A]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::every_paragraph(date(born())))
        .await?
        .into_inner();
    let mut management = f.nodes[0]
        .client(&f.pki.management_files(A, "Data manager")?)
        .await?;
    let full = management.get_record(get(&created.id)).await?.into_inner();
    assert!(full.withheld.is_empty(), "{:?}", full.withheld);
    assert_eq!(
        full.services[1].provider_name, "Young Minds Service",
        "management sees the sensitive provider"
    );
    assert_eq!(full.metadata.len(), 1);
    assert_eq!(full.body_identifiers.len(), 1);
    assert!(full
        .services
        .iter()
        .skip(1)
        .all(|s| s.archive_after_years > 0));

    for (organisation, person) in [
        ("NSPCC", "Helpline"),
        ("Cleveland Police", "PC 1"),
        (A, "Social worker"),
        ("NHS England", "GP"),
    ] {
        let client = f.pki.client_files(organisation, person)?;
        let seen = f
            .gateway
            .client(&client)
            .await?
            .get_record(get(&created.id))
            .await?
            .into_inner();
        let sensitive = &seen.services[1];
        assert!(
            sensitive.sensitive,
            "{organisation}: the statement that a sensitive service is provided remains"
        );
        assert!(
            sensitive.provider_name.is_empty() && sensitive.provider_contact.is_none(),
            "{organisation}: sensitive provider hidden"
        );
        assert!(sensitive.started_on.is_none() && sensitive.sensitive_ground == 0);
        assert_eq!(
            seen.services[0].provider_name, "Headland Medical Practice",
            "{organisation}: other providers shown"
        );
        assert!(
            seen.services.iter().all(|s| s.archive_after_years == 0),
            "{organisation}: para 15 hidden"
        );
        assert!(seen.metadata.is_empty(), "{organisation}: para 20 hidden");
        let own_ids = organisation == "NHS England";
        assert_eq!(
            seen.body_identifiers.len(),
            usize::from(own_ids),
            "{organisation}: para 18 only its own"
        );
        assert_eq!(
            seen.withheld.len(),
            if own_ids { 3 } else { 4 },
            "{organisation}: {:?}",
            seen.withheld
        );
        assert_eq!(seen.name, full.name);
        let mut contacts = full.contacts.clone();
        contacts.iter_mut().for_each(|c| c.provenance = None);
        assert_eq!(
            seen.contacts, contacts,
            "{organisation}: provenance is para 20"
        );
    }

    // A contributing body or an operator reads nothing.
    let operator = f.pki.client_files("ContactPoint operations", "On call")?;
    assert_eq!(
        f.gateway
            .client(&operator)
            .await?
            .get_record(get(&created.id))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    Ok(())
}

/// A shielded record shows only paras 1, 3, 4, 5 and the names of those with
/// parental responsibility; its postcode neither shows nor matches; the
/// management team sees it whole; only management may shield.
#[tokio::test]
async fn a_shielded_record_shows_only_what_shielding_allows() -> anyhow::Result<()> {
    let f = Federation::start(&[A]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::every_paragraph(date(born())))
        .await?
        .into_inner();
    let shield = pb::ShieldRecordRequest {
        id: created.id.clone(),
        shielded: true,
        reason: "risk from a family member".into(),
    };
    let status = f
        .staff(0)
        .await?
        .shield_record(shield.clone())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "own staff do not shield; management does"
    );
    let mut management = f.nodes[0]
        .client(&f.pki.management_files(A, "Data manager")?)
        .await?;
    let shielded = management.shield_record(shield).await?.into_inner();
    assert!(shielded.shielded);
    assert!(
        shielded.whereabouts.is_some(),
        "management sees the whole record"
    );

    let nspcc = f.pki.client_files("NSPCC", "Helpline")?;
    let mut gateway = f.gateway.client(&nspcc).await?;
    let seen = gateway.get_record(get(&created.id)).await?.into_inner();
    assert!(seen.shielded);
    assert_eq!(seen.name, created.name, "para 1");
    assert_eq!(seen.gender, created.gender, "para 3");
    assert_eq!(seen.date_of_birth, created.date_of_birth, "para 4");
    assert_eq!(seen.id, created.id, "para 5");
    assert!(seen.whereabouts.is_none(), "para 2 hidden");
    assert!(
        seen.services.is_empty()
            && seen.education.is_empty()
            && seen.caf_assessments.is_empty()
            && seen.lead_professionals.is_empty()
    );
    assert_eq!(seen.contacts.len(), 1);
    assert_eq!(
        seen.contacts[0].name, created.contacts[0].name,
        "the parent's name is shown"
    );
    assert!(
        seen.contacts[0].contact.is_none(),
        "but not their contact details"
    );
    assert!(
        seen.withheld.iter().any(|w| w.starts_with("shielded")),
        "{:?}",
        seen.withheld
    );

    let search = |postcode: &str| pb::SearchRecordsRequest {
        reason: "checking the test child's record".into(),
        surname: "Hartley".into(),
        date_of_birth: Some(date(born())),
        postcode: postcode.into(),
        ..Default::default()
    };
    let by_postcode = gateway
        .search_records(search("TS24 8AH"))
        .await?
        .into_inner();
    assert!(
        by_postcode.matches.is_empty(),
        "a shielded record is not found by its hidden postcode"
    );
    let by_name = gateway.search_records(search("")).await?.into_inner();
    assert_eq!(by_name.matches.len(), 1);
    assert!(by_name.matches[0].shielded && by_name.matches[0].postcode.is_empty());
    let as_management = management
        .search_records(search("TS24 8AH"))
        .await?
        .into_inner();
    assert_eq!(
        as_management.matches.len(),
        1,
        "the management team finds it by postcode"
    );
    assert_eq!(as_management.matches[0].postcode, "TS24 8AH");
    Ok(())
}

/// A role with child protection functions may override shielding for one
/// record with a reason: it sees the record (still within regulation 6), the
/// access is audited with the reason and the responsible authority alerted.
/// Without a reason, or without such functions, the override is refused.
#[tokio::test]
async fn overriding_shielding_is_for_child_protection_audited_and_alerted() -> anyhow::Result<()> {
    let f = Federation::start(&[A]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::every_paragraph(date(born())))
        .await?
        .into_inner();
    let mut management = f.nodes[0]
        .client(&f.pki.management_files(A, "Data manager")?)
        .await?;
    management
        .shield_record(pb::ShieldRecordRequest {
            id: created.id.clone(),
            shielded: true,
            reason: "risk".into(),
        })
        .await?;

    let override_request = |reason: &str| pb::GetRecordRequest {
        id: created.id.clone(),
        reason: reason.into(),
        override_shielding: true,
        ..Default::default()
    };
    let mut police = f
        .gateway
        .client(&f.pki.client_files("Cleveland Police", "DC 77")?)
        .await?;
    let status = police.get_record(override_request(" ")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("reason:"),
        "{}",
        status.message()
    );
    let mut school = f
        .gateway
        .client(&f.pki.client_files("Hartlepool Primary School", "Head")?)
        .await?;
    let status = school
        .get_record(override_request("worried"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("override shielding"),
        "{}",
        status.message()
    );
    let db = f.node_dbs[0].connect().await?;
    let alerts: i64 = db
        .query_one(
            "SELECT count(*) FROM notification WHERE kind = 'shield_override'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(alerts, 0, "refused overrides raise no alert");

    let seen = police
        .get_record(override_request("section 47 enquiry 2026/123"))
        .await?
        .into_inner();
    assert!(seen.whereabouts.is_some(), "the override shows the address");
    assert!(
        seen.services[1].provider_name.is_empty(),
        "regulation 6 still applies"
    );
    let alert = db
        .query_one(
            "SELECT caller_organisation, caller_name, role, reason FROM notification WHERE kind = 'shield_override'",
            &[],
        )
        .await?;
    assert_eq!(alert.get::<_, String>(0), "Cleveland Police");
    assert_eq!(alert.get::<_, String>(1), "DC 77");
    assert_eq!(alert.get::<_, String>(2), "schedule3:3@E06000001");
    assert_eq!(alert.get::<_, String>(3), "section 47 enquiry 2026/123");
    let audited: i64 = db
        .query_one("SELECT count(*) FROM audit_event WHERE method = 'GetRecord' AND reason = 'section 47 enquiry 2026/123'", &[])
        .await?
        .get(0);
    assert_eq!(audited, 1, "the read is audited with its reason");
    Ok(())
}

/// Shielding travels with the record when the child moves.
#[tokio::test]
async fn a_shielded_record_stays_shielded_through_a_transfer() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::every_paragraph(date(born())))
        .await?
        .into_inner();
    let mut management = f.nodes[0]
        .client(&f.pki.management_files(A, "Data manager")?)
        .await?;
    management
        .shield_record(pb::ShieldRecordRequest {
            id: created.id.clone(),
            shielded: true,
            reason: "risk".into(),
        })
        .await?;
    let transfer_id = f.journal_transfer(&created.id, A, B).await?;
    f.transfer_worker().await?.drive(transfer_id).await;

    let seen = f
        .gateway
        .client(&f.pki.client_files("NSPCC", "Helpline")?)
        .await?
        .get_record(get(&created.id))
        .await?
        .into_inner();
    assert_eq!(seen.responsible_authority.as_ref().unwrap().code, B);
    assert!(
        seen.shielded && seen.whereabouts.is_none(),
        "still shielded at the new authority"
    );
    let b_management = f.nodes[1]
        .client(&f.pki.management_files(B, "Data manager")?)
        .await?
        .get_record(get(&created.id))
        .await?
        .into_inner();
    assert!(
        b_management.whereabouts.is_some(),
        "the new authority's management team sees it whole"
    );
    Ok(())
}
