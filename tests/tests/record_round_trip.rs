//! A record holding every paragraph of Schedule 1 goes in and comes back whole.
use contactpoint_tests::*;

/// Every field sent is stored and returned; the node adds paras 5 and 19 and
/// entry ids; the identifier's check digits hold.
#[tokio::test]
async fn every_paragraph_round_trips() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    // The authority's management team sees every paragraph (regulation 6
    // exempts it); what other readers see is redaction.rs.
    let mut management = f
        .node
        .client(&f.pki.management_files("E06000001", "Data manager")?)
        .await?;
    let born = date(today() - chrono::Duration::days(100));
    let request = sample::every_paragraph(born);
    let created = management
        .create_record(request.clone())
        .await?
        .into_inner();

    assert_eq!(created.version, 1);
    assert!(
        created.id.starts_with("E06000001-"),
        "para 5 identifier minted by this node: {}",
        created.id
    );
    assert_eq!(
        created
            .responsible_authority
            .as_ref()
            .map(|a| a.code.as_str()),
        Some("E06000001"),
        "para 19"
    );

    let fetched = management
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(fetched, created, "a read returns what the create returned");

    let details = request.details.expect("sample has details");
    assert_eq!(fetched.name, details.name, "para 1");
    assert_eq!(
        fetched.former_names, details.former_names,
        "para 1 former names"
    );
    assert_eq!(fetched.whereabouts, details.whereabouts, "para 2");
    assert_eq!(fetched.gender, details.gender, "para 3");
    assert_eq!(fetched.date_of_birth, details.date_of_birth, "para 4");
    assert_eq!(
        fetched.body_identifiers, details.body_identifiers,
        "para 18"
    );
    assert_eq!(fetched.metadata, details.metadata, "para 20");

    // Entries come back as sent, with ids assigned.
    // Each carries its provenance: who recorded it (para 20, management only).
    let suppliers: Vec<_> = fetched
        .contacts
        .iter()
        .map(|e| &e.provenance)
        .chain(fetched.education.iter().map(|e| &e.provenance))
        .chain(fetched.services.iter().map(|e| &e.provenance))
        .chain(fetched.caf_assessments.iter().map(|e| &e.provenance))
        .chain(fetched.lead_professionals.iter().map(|e| &e.provenance))
        .map(|p| p.as_ref().map(|p| p.supplied_by.as_str()))
        .collect();
    assert!(!suppliers.is_empty());
    assert!(
        suppliers.iter().all(|s| *s == Some("E06000001/management")),
        "{suppliers:?}"
    );
    let without_ids = |mut r: pb::ChildRecord| {
        r.contacts
            .iter_mut()
            .for_each(|e| (e.entry_id, e.provenance) = (0, None));
        r.education
            .iter_mut()
            .for_each(|e| (e.entry_id, e.provenance) = (0, None));
        r.services
            .iter_mut()
            .for_each(|e| (e.entry_id, e.provenance) = (0, None));
        r.caf_assessments
            .iter_mut()
            .for_each(|e| (e.entry_id, e.provenance) = (0, None));
        r.lead_professionals
            .iter_mut()
            .for_each(|e| (e.entry_id, e.provenance) = (0, None));
        r
    };
    let plain = without_ids(fetched.clone());
    assert_eq!(plain.contacts, request.contacts, "para 6");
    assert_eq!(plain.education, request.education, "para 7");
    assert_eq!(plain.services, request.services, "paras 8, 9, 11 to 15");
    assert_eq!(plain.caf_assessments, request.caf_assessments, "para 10");
    assert_eq!(
        plain.lead_professionals, request.lead_professionals,
        "para 16"
    );
    assert!(
        fetched.services.iter().all(|s| s.entry_id > 0),
        "entry ids assigned"
    );
    Ok(())
}

/// Each of the four para 2 states, and a date of death (para 17), survive an update.
#[tokio::test]
async fn whereabouts_states_and_death_round_trip() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let born = date(today() - chrono::Duration::days(3000));
    let request = sample::child_request("Leo", "Marsh", born, "TS24 8AH");
    let mut record = f.client.create_record(request).await?.into_inner();
    use pb::whereabouts::State;
    let states = [
        State::LastKnownAddress(pb::PostalAddress {
            lines: vec!["4 Mill Lane".into()],
            town: "Hartlepool".into(),
            postcode: "TS25 1QP".into(),
        }),
        State::NoKnownAddress(pb::NoKnownAddress {}),
        State::LeftEngland(pb::LeftEngland {
            intention: pb::left_england::ReturnIntention::IntendsToReturnWithinThreeYears as i32,
            stated_by_body: "Hartlepool Borough Council".into(),
            ceased_residence_on: Some(date(today() - chrono::Duration::days(10))),
        }),
        State::LeftEngland(pb::LeftEngland {
            intention: pb::left_england::ReturnIntention::DoesNotIntendToReturnWithinThreeYears
                as i32,
            stated_by_body: "Hartlepool Borough Council".into(),
            ceased_residence_on: Some(date(today() - chrono::Duration::days(400))),
        }),
        State::LeftEngland(pb::LeftEngland {
            intention: pb::left_england::ReturnIntention::NoInformation as i32,
            stated_by_body: "NHS England".into(),
            ceased_residence_on: None,
        }),
    ];
    for state in states {
        let mut details = sample::child("Leo", "Marsh", born, "TS24 8AH");
        details.whereabouts = Some(pb::Whereabouts { state: Some(state) });
        details.date_of_death = Some(date(today() - chrono::Duration::days(1)));
        let update = pb::UpdateRecordRequest {
            id: record.id.clone(),
            expected_version: record.version,
            details: Some(details.clone()),
        };
        let updated = f.client.update_record(update).await?.into_inner();
        assert_eq!(updated.version, record.version + 1);
        let fetched = f
            .client
            .get_record(pb::GetRecordRequest {
                reason: "checking the test child's record".into(),
                id: record.id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(fetched.whereabouts, details.whereabouts);
        assert_eq!(fetched.date_of_death, details.date_of_death, "para 17");
        record = fetched;
    }
    Ok(())
}

/// A participating young person (18 to 25) has carers (para 6(b)).
#[tokio::test]
async fn participating_young_person_with_a_carer() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let mut details = sample::child(
        "Jordan",
        "Reid",
        date(today() - chrono::Duration::days(365 * 20)),
        "TS24 8AH",
    );
    details.category = pb::PersonCategory::ParticipatingYoungPerson as i32;
    details.consent = Some(pb::YoungPersonConsent {
        given_on: Some(date(today() - chrono::Duration::days(7))),
        recorded_by: "Leaving care team".into(),
    });
    let carer = pb::Contact {
        provenance: None,
        relationship: pb::contact::Relationship::CarerOfYoungPerson as i32,
        name: Some(pb::PersonName {
            given_names: "Pat".into(),
            family_name: "Reid".into(),
        }),
        ..Default::default()
    };
    let request = pb::CreateRecordRequest {
        details: Some(details),
        contacts: vec![carer.clone()],
        ..Default::default()
    };
    let record = f.client.create_record(request).await?.into_inner();
    assert_eq!(
        record.category,
        pb::PersonCategory::ParticipatingYoungPerson as i32
    );
    assert_eq!(record.contacts.len(), 1);
    assert_eq!(record.contacts[0].relationship, carer.relationship);
    assert_eq!(
        record.consent.as_ref().map(|c| c.recorded_by.as_str()),
        Some("Leaving care team")
    );
    Ok(())
}
