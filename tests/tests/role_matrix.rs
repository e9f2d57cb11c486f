//! Every role against every kind of record, through the gateway: exactly what
//! each reader sees by lookup and finds by search (regulation 6, shielding,
//! archiving; RULES.md "Reading").
use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

const A: &str = "E06000001";

/// What a reader got for one record: refused, not found, or which of the
/// protected parts they were shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Refused,
    NotFound,
    Shown {
        /// Para 2: the address.
        whereabouts: bool,
        /// Para 9: the name of a sensitive service's provider.
        sensitive_provider: bool,
        /// Para 15 archive periods.
        para_15: bool,
        /// Para 20: metadata and provenance.
        para_20: bool,
        /// Para 18 identifiers shown.
        identifiers: usize,
        /// Para 1, 3, 4, 5 and the names of those with parental responsibility.
        core: bool,
    },
}

fn seen(record: &pb::ChildRecord) -> Seen {
    Seen::Shown {
        whereabouts: record.whereabouts.is_some(),
        sensitive_provider: record
            .services
            .iter()
            .any(|s| s.sensitive && !s.provider_name.is_empty()),
        para_15: record.services.iter().any(|s| s.archive_after_years > 0),
        para_20: !record.metadata.is_empty()
            || record.contacts.iter().any(|c| c.provenance.is_some()),
        identifiers: record.body_identifiers.len(),
        core: record.name.is_some()
            && record.date_of_birth.is_some()
            && !record.id.is_empty()
            && record
                .contacts
                .iter()
                .all(|c| c.name.as_ref().is_some_and(|n| !n.family_name.is_empty())),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    NationalPartner,
    Police,
    OwnStaff,
    OtherAuthority,
    Health,
    School,
    Management,
    Operator,
    Contributor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ordinary,
    SensitiveWithIdentifiers,
    Shielded,
    Archived,
}

/// The rules, written out: what `reader` should see of a `kind` record.
fn expected(reader: Reader, kind: Kind) -> Seen {
    use Reader::*;
    if matches!(reader, Operator | Contributor) {
        return Seen::Refused;
    }
    let management = reader == Management;
    match kind {
        Kind::Archived if !management => Seen::NotFound,
        // These records carry no para 20 information and no contacts.
        Kind::Archived | Kind::Ordinary => Seen::Shown {
            whereabouts: true,
            sensitive_provider: false,
            para_15: false,
            para_20: false,
            identifiers: 0,
            core: true,
        },
        Kind::SensitiveWithIdentifiers => Seen::Shown {
            whereabouts: true,
            sensitive_provider: management,
            para_15: management,
            para_20: management,
            // The NHS number is NHS England's: only it and management see it.
            identifiers: usize::from(management || reader == Health),
            core: true,
        },
        Kind::Shielded => Seen::Shown {
            whereabouts: management,
            sensitive_provider: false,
            para_15: false,
            para_20: false,
            identifiers: 0,
            core: true,
        },
    }
}

#[tokio::test]
async fn each_role_sees_exactly_what_the_rules_allow_of_each_kind_of_record() -> anyhow::Result<()>
{
    let f = Federation::start(&[A, "E06000002"]).await?;
    let pki = &f.pki;
    let mut management_at_node = f.nodes[0]
        .client(&pki.management_files(A, "Data manager")?)
        .await?;
    let born = today() - Duration::days(2000);
    let mut staff = f.staff(0).await?;
    let ordinary = staff
        .create_record(sample::child_request(
            "Olly",
            "Matrix",
            date(born),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let sensitive = staff
        .create_record(sample::every_paragraph(date(today() - Duration::days(100))))
        .await?
        .into_inner();
    let shielded = staff
        .create_record(sample::child_request(
            "Sadie",
            "Matrix",
            date(born),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    management_at_node
        .shield_record(pb::ShieldRecordRequest {
            id: shielded.id.clone(),
            shielded: true,
            reason: "risk of being found".into(),
        })
        .await?;
    let archived = archived_young_person(&mut staff, "Casey", "Matrix").await?;
    for record in [&ordinary, &sensitive, &shielded, &archived] {
        f.wait_until_routed(&record.id, A).await?;
    }
    let records = [
        (Kind::Ordinary, &ordinary),
        (Kind::SensitiveWithIdentifiers, &sensitive),
        (Kind::Shielded, &shielded),
        (Kind::Archived, &archived),
    ];

    let readers = [
        (
            Reader::NationalPartner,
            pki.client_files("NSPCC", "Helpline")?,
        ),
        (
            Reader::Police,
            pki.client_files("Cleveland Police", "PC 1")?,
        ),
        (Reader::OwnStaff, pki.client_files(A, "Social worker")?),
        (
            Reader::OtherAuthority,
            pki.client_files("E06000002", "Social worker")?,
        ),
        (Reader::Health, pki.client_files("NHS England", "GP")?),
        (
            Reader::School,
            pki.client_files("Hartlepool Primary School", "Head")?,
        ),
        (Reader::Management, pki.management_files(A, "Data manager")?),
        (
            Reader::Operator,
            pki.client_files("ContactPoint operations", "On call")?,
        ),
        (
            Reader::Contributor,
            pki.client_files("Hartlepool Academy", "MIS feed")?,
        ),
    ];
    for (reader, files) in &readers {
        let mut client = f.gateway.client(files).await?;
        for (kind, record) in records {
            // By lookup.
            let got = match client
                .get_record(pb::GetRecordRequest {
                    id: record.id.clone(),
                    reason: "role matrix".into(),
                    ..Default::default()
                })
                .await
            {
                Ok(found) => seen(&found.into_inner()),
                Err(status) if status.code() == Code::PermissionDenied => Seen::Refused,
                Err(status) if status.code() == Code::NotFound => Seen::NotFound,
                Err(status) => anyhow::bail!("{reader:?} {kind:?}: {status:?}"),
            };
            assert_eq!(
                got,
                expected(*reader, kind),
                "{reader:?} looking up {kind:?}"
            );

            // By search: by name and date of birth, and with the postcode.
            let name = record.name.as_ref().expect("a name");
            for postcode in ["", "TS24 8AH"] {
                let answer = client
                    .search_records(pb::SearchRecordsRequest {
                        surname: name.family_name.clone(),
                        date_of_birth: record.date_of_birth,
                        postcode: postcode.into(),
                        reason: "role matrix".into(),
                        limit: 100,
                        ..Default::default()
                    })
                    .await;
                let matches = match answer {
                    Ok(found) => found.into_inner().matches,
                    Err(status) => {
                        assert_eq!(status.code(), Code::PermissionDenied);
                        assert_eq!(expected(*reader, kind), Seen::Refused);
                        continue;
                    }
                };
                let hit = matches.iter().find(|m| m.id == record.id);
                let expect_found = match expected(*reader, kind) {
                    Seen::Refused | Seen::NotFound => false,
                    // A hidden postcode never matches.
                    Seen::Shown { whereabouts, .. } => whereabouts || postcode.is_empty(),
                };
                assert_eq!(
                    hit.is_some(),
                    expect_found,
                    "{reader:?} searching for {kind:?} with postcode {postcode:?}"
                );
                if let Some(hit) = hit {
                    let hidden = matches!(
                        expected(*reader, kind),
                        Seen::Shown {
                            whereabouts: false,
                            ..
                        }
                    );
                    assert_eq!(
                        hit.postcode.is_empty(),
                        hidden,
                        "{reader:?} {kind:?}: postcode"
                    );
                }
            }
        }
    }
    Ok(())
}
