//! Tolerant matching at a node (MATCH_MODE_TOLERANT): a child found despite
//! each kind of error a telephone call or a memory makes, ranked first and
//! explained; twins kept apart; too vague a search refused; shielding kept.
use contactpoint_tests::*;
use tonic::Code;

const BORN: (i32, u32, u32) = (2015, 3, 4);

fn born() -> pb::Date {
    sample::date(BORN.0, BORN.1, BORN.2)
}

/// A child with these names, born on `born`, living at `postcode`.
fn child(
    given: &str,
    family: &str,
    former: &[&str],
    born: pb::Date,
    postcode: &str,
) -> pb::CreateRecordRequest {
    let mut details = sample::child(given, family, born, postcode);
    details.former_names = former
        .iter()
        .map(|family_name| pb::FormerName {
            name: Some(pb::PersonName {
                given_names: given.into(),
                family_name: (*family_name).into(),
            }),
            ceased_on: None,
        })
        .collect();
    pb::CreateRecordRequest {
        details: Some(details),
        ..Default::default()
    }
}

fn tolerant(surname: &str, forename: &str, born: Option<pb::Date>) -> pb::SearchRecordsRequest {
    pb::SearchRecordsRequest {
        reason: "a health visitor's referral by telephone".into(),
        surname: surname.into(),
        forename: forename.into(),
        date_of_birth: born,
        mode: pb::MatchMode::Tolerant as i32,
        ..Default::default()
    }
}

fn level<'a>(found: &'a pb::SearchMatch, field: &str) -> &'a str {
    found
        .agreements
        .iter()
        .find(|a| a.field == field)
        .map_or("absent", |a| a.level.as_str())
}

/// Each kind of error, alone, still finds the child first, and the match
/// says how each field agreed: a surname misspelt by one letter inserted,
/// deleted, changed or swapped with its neighbour, by two letters, spelt as
/// it sounds, Mc for Mac, without its apostrophe, one part of a
/// double-barrelled surname, a former surname; a nickname; a date of birth
/// with day and month swapped or one digit wrong, or only its year; a
/// postcode's sector, or only its district. Around the child are a twin, a sibling, a cousin with
/// the same name and a child with the same birthday.
#[tokio::test]
async fn each_kind_of_error_still_finds_the_child_first() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let mut create = async |request| -> anyhow::Result<String> {
        Ok(f.client.create_record(request).await?.into_inner().id)
    };
    let alfred = create(child(
        "Alfred James",
        "Hartley",
        &["Mcdonald"],
        born(),
        "TS24 8AH",
    ))
    .await?;
    let isabella = create(child(
        "Isabella",
        "Smith-Jones",
        &[],
        sample::date(2016, 7, 20),
        "TS25 1QP",
    ))
    .await?;
    let sean = create(child(
        "Sean",
        "O'Brien",
        &[],
        sample::date(2014, 11, 2),
        "TS26 9DD",
    ))
    .await?;
    // Who else a search might find.
    create(child("Oliver", "Hartley", &[], born(), "TS24 8AH")).await?;
    create(child("Olivia", "Hartley", &[], born(), "TS24 8AH")).await?;
    create(child(
        "Alfred",
        "Hartley",
        &[],
        sample::date(2012, 5, 6),
        "TS27 4RS",
    ))
    .await?;
    create(child(
        "Amelia",
        "Jones",
        &[],
        sample::date(2016, 7, 20),
        "TS25 1QP",
    ))
    .await?;
    create(child("Zara", "Hartman", &[], born(), "TS24 8AH")).await?;

    let cases: Vec<(&str, pb::SearchRecordsRequest, &str, &str, &str)> = vec![
        (
            "substitution",
            tolerant("Hartlay", "Alfred", Some(born())),
            &alfred,
            "surname",
            "one_edit",
        ),
        (
            "insertion",
            tolerant("Harttley", "Alfred", Some(born())),
            &alfred,
            "surname",
            "one_edit",
        ),
        (
            "deletion",
            tolerant("Hartly", "Alfred", Some(born())),
            &alfred,
            "surname",
            "one_edit",
        ),
        (
            "transposition",
            tolerant("Hatrley", "Alfred", Some(born())),
            &alfred,
            "surname",
            "one_edit",
        ),
        (
            "two edits",
            tolerant("Hratly", "Alfred", Some(born())),
            &alfred,
            "surname",
            "two_edits",
        ),
        (
            "spelt as it sounds",
            tolerant("Hartleigh", "Alfred", Some(born())),
            &alfred,
            "surname",
            "phonetic",
        ),
        (
            "Mac for Mc, a former surname",
            tolerant("MacDonald", "Alfred", Some(born())),
            &alfred,
            "surname",
            "one_edit",
        ),
        (
            "a former surname",
            tolerant("McDonald", "Alfred", Some(born())),
            &alfred,
            "surname",
            "former",
        ),
        (
            "no apostrophe",
            tolerant("OBrien", "Sean", Some(sample::date(2014, 11, 2))),
            &sean,
            "surname",
            "exact",
        ),
        (
            "one part of a double-barrelled surname",
            tolerant("Jones", "Isabella", Some(sample::date(2016, 7, 20))),
            &isabella,
            "surname",
            "part",
        ),
        (
            "a nickname",
            tolerant("Hartley", "Alfie", Some(born())),
            &alfred,
            "forename",
            "nickname",
        ),
        (
            "a forename misspelt",
            tolerant("Hartley", "Alfrde", Some(born())),
            &alfred,
            "forename",
            "one_edit",
        ),
        (
            "day and month swapped",
            tolerant("Hartley", "Alfred", Some(sample::date(2015, 4, 3))),
            &alfred,
            "date_of_birth",
            "swapped",
        ),
        (
            "one digit wrong",
            tolerant("Hartley", "Alfred", Some(sample::date(2015, 3, 7))),
            &alfred,
            "date_of_birth",
            "one_digit",
        ),
        (
            "a year wrong by a digit",
            tolerant("Hartley", "Alfred", Some(sample::date(2016, 3, 4))),
            &alfred,
            "date_of_birth",
            "one_digit",
        ),
        (
            "only the year",
            pb::SearchRecordsRequest {
                year_of_birth: 2015,
                ..tolerant("Hartley", "Alfred", None)
            },
            &alfred,
            "date_of_birth",
            "year",
        ),
        (
            "a postcode's sector",
            pb::SearchRecordsRequest {
                postcode: "TS24 8ZZ".into(),
                ..tolerant("Hartley", "Alfred", None)
            },
            &alfred,
            "postcode",
            "sector",
        ),
        (
            "only the postcode's district",
            pb::SearchRecordsRequest {
                postcode: "ts24".into(),
                ..tolerant("Hartley", "Alfred", None)
            },
            &alfred,
            "postcode",
            "district",
        ),
    ];
    for (kind, request, expected, field, expected_level) in cases {
        let found = f.client.search_records(request).await?.into_inner().matches;
        let first = found
            .first()
            .unwrap_or_else(|| panic!("{kind}: nothing found"));
        assert_eq!(&first.id, expected, "{kind}: {found:#?}");
        assert_eq!(
            level(first, field),
            expected_level,
            "{kind}: {:?}",
            first.agreements
        );
        assert!(first.match_weight >= 4.0, "{kind}: {}", first.match_weight);
        let total: f64 = first.agreements.iter().map(|a| a.weight).sum();
        assert!(
            (total - first.match_weight).abs() < 1e-9,
            "{kind}: the weight is the sum of its agreements"
        );
        assert!(
            found.windows(2).all(|pair| pair[0].score >= pair[1].score),
            "{kind}: best first"
        );
    }

    // A child who matches nothing asked is not listed.
    let found = f
        .client
        .search_records(tolerant(
            "Hartley",
            "Alfred",
            Some(sample::date(2009, 10, 30)),
        ))
        .await?
        .into_inner()
        .matches;
    assert!(
        found.iter().all(|m| m.id != isabella && m.id != sean),
        "{found:#?}"
    );
    Ok(())
}

/// Twins (the same surname, date of birth and address) are different
/// people: given a forename, right or with one error, the named twin ranks
/// first with a higher weight, and the other is not merged into it.
#[tokio::test]
async fn twins_rank_as_different_people() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let oliver = f
        .client
        .create_record(child("Oliver", "Hartley", &[], born(), "TS24 8AH"))
        .await?
        .into_inner()
        .id;
    let olivia = f
        .client
        .create_record(child("Olivia", "Hartley", &[], born(), "TS24 8AH"))
        .await?
        .into_inner()
        .id;
    for (forename, named, other) in [
        ("Oliver", &oliver, &olivia),
        ("Olvier", &oliver, &olivia),
        ("Olivia", &olivia, &oliver),
        ("Olivai", &olivia, &oliver),
    ] {
        let found = f
            .client
            .search_records(tolerant("Hartley", forename, Some(born())))
            .await?
            .into_inner()
            .matches;
        assert_eq!(&found[0].id, named, "{forename}");
        if let Some(twin) = found.iter().find(|m| &m.id == other) {
            assert!(
                twin.match_weight < found[0].match_weight,
                "{forename}: never the same score"
            );
        }
    }
    let both = f
        .client
        .search_records(tolerant("Hartley", "", Some(born())))
        .await?
        .into_inner()
        .matches;
    assert_eq!(both.len(), 2, "without a forename, both twins");
    Ok(())
}

/// A tolerant search too vague to find one child is refused with
/// InvalidArgument naming what to add, and so is a year of birth where it
/// cannot serve; an exact search is as before.
#[tokio::test]
async fn too_vague_a_tolerant_search_is_refused_saying_what_to_add() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let refused = [
        (tolerant("Hartley", "", None), "date_of_birth:"),
        (tolerant("Hartley", "A", None), "date_of_birth:"),
        (tolerant("H", "Alfred", Some(born())), "surname:"),
        (tolerant("", "Alfred", Some(born())), "surname:"),
        (
            pb::SearchRecordsRequest {
                year_of_birth: 2015,
                ..tolerant("Hartley", "Alfred", Some(born()))
            },
            "year_of_birth:",
        ),
        (
            pb::SearchRecordsRequest {
                year_of_birth: 1850,
                ..tolerant("Hartley", "Alfred", None)
            },
            "year_of_birth:",
        ),
        (
            pb::SearchRecordsRequest {
                year_of_birth: 2015,
                mode: pb::MatchMode::Exact as i32,
                ..tolerant("Hartley", "Alfred", None)
            },
            "year_of_birth:",
        ),
        (
            pb::SearchRecordsRequest {
                mode: 7,
                ..tolerant("Hartley", "Alfred", Some(born()))
            },
            "mode:",
        ),
    ];
    for (request, field) in refused {
        let status = f.client.search_records(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        assert!(
            status.message().starts_with(field),
            "{field} {}",
            status.message()
        );
    }
    // A forename is enough beside the surname when it says enough.
    f.client
        .search_records(tolerant("Hartley", "Alfred", None))
        .await?;
    Ok(())
}

/// A tolerant search never matches a shielded record on its hidden postcode
/// nor shows it, except to the responsible authority's management team.
#[tokio::test]
async fn a_tolerant_search_keeps_shielding() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let id = f
        .client
        .create_record(child("Alfred", "Hartley", &[], born(), "TS24 8AH"))
        .await?
        .into_inner()
        .id;
    let mut management = f
        .node
        .client(&f.pki.management_files("E06000001", "Data manager")?)
        .await?;
    management
        .shield_record(pb::ShieldRecordRequest {
            id: id.clone(),
            shielded: true,
            reason: "risk from a family member".into(),
        })
        .await?;
    let by_postcode = pb::SearchRecordsRequest {
        postcode: "TS24 8AH".into(),
        ..tolerant("Hartly", "", None)
    };
    let found = f
        .client
        .search_records(by_postcode.clone())
        .await?
        .into_inner()
        .matches;
    assert!(
        found.is_empty(),
        "not found by its hidden postcode: {found:?}"
    );
    let by_name = pb::SearchRecordsRequest {
        postcode: "TS24 8AH".into(),
        ..tolerant("Hartly", "Alfred", Some(born()))
    };
    let found = f
        .client
        .search_records(by_name.clone())
        .await?
        .into_inner()
        .matches;
    assert_eq!(found.len(), 1);
    assert!(found[0].shielded && found[0].postcode.is_empty());
    assert_eq!(
        level(&found[0], "postcode"),
        "absent",
        "the hidden postcode is not compared"
    );
    let found = management
        .search_records(by_postcode)
        .await?
        .into_inner()
        .matches;
    assert_eq!(found.len(), 1, "the management team finds it by postcode");
    assert_eq!(level(&found[0], "postcode"), "exact");
    Ok(())
}
