//! The national blind index: the gateway holds only keyed hashes of each
//! record's blocking keys, sends a search only to the authorities holding
//! one of its own, and follows transfers and destruction.
use chrono::{Duration, Months};
use contactpoint_node::store::Store;
use contactpoint_tests::*;
use tonic::Code;

const A: &str = "E06000001";
const B: &str = "E06000002";
const C: &str = "E06000003";

fn born() -> pb::Date {
    sample::date(2014, 1, 5)
}

fn search(surname: &str, forename: &str, born: pb::Date) -> pb::SearchRecordsRequest {
    pb::SearchRecordsRequest {
        surname: surname.into(),
        forename: forename.into(),
        date_of_birth: Some(born),
        mode: pb::MatchMode::Tolerant as i32,
        reason: "a caller to the helpline worried about a child".into(),
        ..Default::default()
    }
}

/// Noah James Bennett, recorded at node `index`.
async fn record_noah(f: &Federation, index: usize) -> anyhow::Result<pb::ChildRecord> {
    Ok(f.staff(index)
        .await?
        .create_record(sample::child_request(
            "Noah James",
            "Bennett",
            born(),
            "TS5 6QA",
        ))
        .await?
        .into_inner())
}

/// The authorities whose blind index holds `record_id`.
async fn indexed_at(f: &Federation, record_id: &str) -> anyhow::Result<Vec<String>> {
    let db = f.gateway_db.connect().await?;
    let rows = db
        .query(
            "SELECT authority_code FROM blind_index WHERE record_id = $1 AND cardinality(keys) > 0 ORDER BY 1",
            &[&record_id],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

async fn wait_indexed(f: &Federation, record_id: &str, at: &[&str]) -> anyhow::Result<()> {
    eventually(&format!("{record_id} indexed at {at:?}"), || async {
        Ok((indexed_at(f, record_id).await? == at).then_some(()))
    })
    .await
}

/// Until every node's outbox has been read to its end, keyed.
async fn wait_complete(f: &Federation, authorities: usize) -> anyhow::Result<()> {
    let db = f.gateway_db.connect().await?;
    eventually("every authority's index complete", || async {
        let complete: i64 = db
            .query_one(
                "SELECT count(*) FROM feed_cursor WHERE keyed AND caught_up",
                &[],
            )
            .await?
            .get(0);
        Ok((complete as usize == authorities).then_some(()))
    })
    .await
}

/// A tolerant search goes only to the authority holding the child, however
/// the caller misheard the name or the date; with `all_authorities`, and an
/// exact search, to every one; a search nobody's keys answer asks none, and
/// a bad one is still refused with what is wrong.
#[tokio::test]
async fn a_search_asks_only_the_authorities_holding_its_keys() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B, C]).await?;
    let noah = record_noah(&f, 1).await?;
    f.staff(0)
        .await?
        .create_record(sample::child_request(
            "Oliver",
            "Hartley",
            born(),
            "TS24 8AH",
        ))
        .await?;
    f.staff(2)
        .await?
        .create_record(sample::child_request(
            "Jack",
            "Turner",
            sample::date(2016, 2, 3),
            "TS10 1AB",
        ))
        .await?;
    wait_indexed(&f, &noah.id, &[B]).await?;
    wait_complete(&f, 3).await?;

    let mut nspcc = f
        .gateway
        .client(&f.pki.client_files("NSPCC", "Helpline")?)
        .await?;
    for (what, request) in [
        ("as recorded", search("Bennett", "Noah", born())),
        (
            "misheard and swapped",
            search("Bennet", "Noah", sample::date(2014, 5, 1)),
        ),
        (
            "surname misheard past its sound",
            search("Pennock", "Noah", born()),
        ),
        (
            "the year wrong",
            search("Bennett", "Noah", sample::date(2015, 1, 5)),
        ),
    ] {
        let found = nspcc.search_records(request).await?.into_inner();
        assert_eq!(found.authorities_asked, 1, "{what}");
        assert_eq!(
            found.matches.first().map(|m| m.id.as_str()),
            Some(noah.id.as_str()),
            "{what}"
        );
    }
    let everyone = nspcc
        .search_records(pb::SearchRecordsRequest {
            all_authorities: true,
            ..search("Bennet", "Noah", born())
        })
        .await?
        .into_inner();
    assert_eq!(everyone.authorities_asked, 3);
    assert_eq!(everyone.matches[0].id, noah.id);
    // An exact search asks every node, as it always has: a record is found
    // the moment it is made, before the gateway has read of it.
    let exact = nspcc
        .search_records(pb::SearchRecordsRequest {
            mode: pb::MatchMode::Exact as i32,
            ..search("Bennett", "", born())
        })
        .await?
        .into_inner();
    assert_eq!(exact.authorities_asked, 3);
    assert_eq!(exact.matches[0].id, noah.id);

    let nobody = nspcc
        .search_records(search("Okafor", "Zara", sample::date(2009, 9, 9)))
        .await?
        .into_inner();
    assert_eq!(nobody.authorities_asked, 0);
    assert!(nobody.matches.is_empty() && nobody.unanswered.is_empty());
    for (request, field) in [
        (
            pb::SearchRecordsRequest {
                postcode: "not a postcode".into(),
                ..search("Okafor", "Zara", sample::date(2009, 9, 9))
            },
            "postcode",
        ),
        (search("O", "Zara", sample::date(2009, 9, 9)), "surname"),
        (
            search("Okafor", "Zara", sample::date(2009, 2, 30)),
            "date_of_birth",
        ),
    ] {
        let status = nspcc.search_records(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    Ok(())
}

/// Nothing in the gateway's database is a child's name, date of birth or
/// postcode: the blind index is hashes, identifiers and authority codes.
#[tokio::test]
async fn the_gateway_holds_no_name_date_or_postcode() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let children = [
        (
            "Isabella Rose",
            "Smith-Okonkwo",
            sample::date(2013, 7, 21),
            "TS5 6QA",
        ),
        (
            "Muhammad",
            "Chowdhury",
            sample::date(2018, 11, 30),
            "TS24 8AH",
        ),
        (
            "Zebedee",
            "Fairweather",
            sample::date(2011, 2, 14),
            "TS26 9DD",
        ),
    ];
    let mut ids = Vec::new();
    for (index, (given, family, born, postcode)) in children.iter().enumerate() {
        let record = f
            .staff(index % 2)
            .await?
            .create_record(sample::child_request(given, family, *born, postcode))
            .await?
            .into_inner();
        ids.push((record.id, if index % 2 == 0 { A } else { B }));
    }
    for (id, at) in &ids {
        wait_indexed(&f, id, &[at]).await?;
    }
    let db = f.gateway_db.connect().await?;
    let tables: Vec<String> = db
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(tables.contains(&"blind_index".to_owned()));
    let mut everything = String::new();
    for table in &tables {
        // Table names from the catalogue, quoted.
        for row in db
            .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
            .await?
        {
            everything.push_str(&row.get::<_, String>(0).to_lowercase());
            everything.push('\n');
        }
    }
    for (given, family, born, postcode) in children {
        let mut secrets: Vec<String> = given
            .split(' ')
            .chain(family.split('-'))
            .map(str::to_lowercase)
            .collect();
        secrets.push(family.to_lowercase().replace('-', ""));
        secrets.push(format!(
            "{:04}-{:02}-{:02}",
            born.year, born.month, born.day
        ));
        secrets.push(format!(
            "{:02}/{:02}/{:04}",
            born.day, born.month, born.year
        ));
        secrets.push(postcode.to_lowercase());
        for secret in secrets {
            assert!(
                !everything.contains(&secret),
                "the gateway's database holds {secret:?}"
            );
        }
    }
    Ok(())
}

/// The index follows the record: after a transfer only the new authority
/// holds its keys and is asked; archived and then destroyed there, no
/// authority holds them and a search asks none.
#[tokio::test]
async fn the_blind_index_follows_a_transfer_and_a_destruction() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B, C]).await?;
    let noah = record_noah(&f, 0).await?;
    wait_indexed(&f, &noah.id, &[A]).await?;
    let transfer = f
        .gateway
        .client(&f.pki.client_files(A, "Social worker")?)
        .await?
        .start_transfer(pb::StartTransferRequest {
            id: noah.id.clone(),
            to_authority: B.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    f.consent_transfer(&transfer.transfer_id, A).await?;
    f.wait_for_transfer(&transfer.transfer_id, "completed")
        .await?;
    wait_indexed(&f, &noah.id, &[B]).await?;
    wait_complete(&f, 3).await?;
    let mut nspcc = f
        .gateway
        .client(&f.pki.client_files("NSPCC", "Helpline")?)
        .await?;
    let found = nspcc
        .search_records(search("Bennet", "Noah", born()))
        .await?
        .into_inner();
    assert_eq!(found.authorities_asked, 1);
    assert_eq!(found.matches[0].id, noah.id);
    assert_eq!(
        found.matches[0]
            .responsible_authority
            .as_ref()
            .unwrap()
            .code,
        B
    );

    // Archived when the child is grown up, destroyed six years later.
    let store = Store::open(
        &f.node_dbs[1].url,
        2,
        contactpoint_node::model::ResponsibleAuthority {
            code: B.into(),
            name: format!("Authority {B}"),
        },
    )
    .await?;
    let grown = chrono::Utc::now()
        .date_naive()
        .checked_add_months(Months::new(25 * 12))
        .unwrap();
    store.archive_and_destroy(grown).await?;
    wait_indexed(&f, &noah.id, &[]).await?;
    let report = store
        .archive_and_destroy(
            grown.checked_add_months(Months::new(6 * 12)).unwrap() + Duration::days(1),
        )
        .await?;
    assert_eq!(report.destroyed_records, 1);
    let db = f.gateway_db.connect().await?;
    eventually("the destroyed record's keys gone", || async {
        let rows: i64 = db
            .query_one(
                "SELECT count(*) FROM blind_index WHERE record_id = $1",
                &[&noah.id],
            )
            .await?
            .get(0);
        Ok((rows == 0).then_some(()))
    })
    .await?;
    let found = nspcc
        .search_records(search("Bennet", "Noah", born()))
        .await?
        .into_inner();
    assert_eq!(found.authorities_asked, 0);
    assert!(found.matches.is_empty());
    Ok(())
}

/// The notifications of `kind` at node `index`, as (record, related record,
/// related authority).
async fn told(
    f: &Federation,
    index: usize,
    kind: pb::NotificationKind,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let code = f.nodes[index].config.authority_code.clone();
    let notifications = f.nodes[index]
        .client(&f.pki.management_files(&code, "Data manager")?)
        .await?
        .list_notifications(pb::ListNotificationsRequest::default())
        .await?
        .into_inner()
        .notifications;
    Ok(notifications
        .into_iter()
        .filter(|n| n.kind == kind as i32)
        .map(|n| {
            (
                n.record_id,
                n.related_record_id,
                n.related_authority.map(|a| a.code).unwrap_or_default(),
            )
        })
        .collect())
}

/// A child recorded by two authorities: both management teams are told of
/// the other's record (a twin at a third is not a duplicate), shielding at
/// one shields the other, and the second authority's record can be merged
/// into the first's through a transfer, its name joining the survivor.
#[tokio::test]
async fn a_child_recorded_at_two_authorities_is_noticed_and_can_be_merged() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B, C]).await?;
    let noah = record_noah(&f, 0).await?;
    let mut management_a = f.nodes[0]
        .client(&f.pki.management_files(A, "Data manager")?)
        .await?;
    management_a
        .shield_record(pb::ShieldRecordRequest {
            id: noah.id.clone(),
            shielded: true,
            reason: "the child's location must not reach a violent parent".into(),
        })
        .await?;
    // The same child, misspelt, at B; his twin brother at C.
    let again = f
        .staff(1)
        .await?
        .create_record(sample::child_request("Noah", "Benett", born(), "TS1 2AB"))
        .await?
        .into_inner();
    let twin = f
        .staff(2)
        .await?
        .create_record(sample::child_request(
            "Harry James",
            "Bennett",
            born(),
            "TS5 6QA",
        ))
        .await?
        .into_inner();
    assert!(!again.shielded);
    let elsewhere = pb::NotificationKind::PossibleDuplicateElsewhere;
    eventually("both authorities told", || async {
        let (a, b) = (told(&f, 0, elsewhere).await?, told(&f, 1, elsewhere).await?);
        Ok((!a.is_empty() && !b.is_empty()).then_some((a, b)))
    })
    .await
    .map(|(a, b)| {
        assert_eq!(a, [(noah.id.clone(), again.id.clone(), B.to_owned())]);
        assert_eq!(b, [(again.id.clone(), noah.id.clone(), A.to_owned())]);
    })?;
    assert!(
        told(&f, 2, elsewhere).await?.is_empty(),
        "a twin is not a duplicate"
    );
    // Shielding holds through the duplicate at the other authority.
    let shielded_at_b = told(&f, 1, pb::NotificationKind::PossibleDuplicateOfShielded).await?;
    assert_eq!(
        shielded_at_b,
        [(again.id.clone(), noah.id.clone(), A.to_owned())]
    );
    let staff_b = f
        .staff(1)
        .await?
        .get_record(lookup(&again.id))
        .await?
        .into_inner();
    assert!(staff_b.shielded);
    let db = f.gateway_db.connect().await?;
    let untold: i64 = db
        .query_one(
            "SELECT count(*) FROM duplicate_notice WHERE told_at IS NULL",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(untold, 0);

    // A merge across authorities is A's management team's to ask, with a
    // reason, of a record A holds.
    let merge = |merge_into: &str, reason: &str| pb::StartTransferRequest {
        id: again.id.clone(),
        to_authority: A.into(),
        merge_into: merge_into.into(),
        reason: reason.into(),
    };
    let reason = "the same child: his mother confirmed both addresses";
    let mut gateway_b = f
        .gateway
        .client(&f.pki.management_files(B, "Data manager")?)
        .await?;
    let refused = gateway_b
        .start_transfer(merge(&noah.id, reason))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "{}",
        refused.message()
    );
    let mut gateway_a = f
        .gateway
        .client(&f.pki.management_files(A, "Data manager")?)
        .await?;
    for (request, field) in [
        (merge(&noah.id, " "), "reason"),
        (merge(&again.id, reason), "merge_into"),
        (merge(&twin.id, reason), "merge_into"),
    ] {
        let status = gateway_a.start_transfer(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    let transfer = gateway_a
        .start_transfer(merge(&noah.id, reason))
        .await?
        .into_inner();
    assert_eq!(transfer.merge_into, noah.id);
    // The record is B's: B's management team consents to it leaving.
    f.consent_transfer(&transfer.transfer_id, B).await?;
    f.wait_for_transfer(&transfer.transfer_id, "completed")
        .await?;
    let done = gateway_a
        .get_transfer(pb::GetTransferRequest {
            transfer_id: transfer.transfer_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(done.merge_outcome, "merged");
    let gone = f
        .gateway
        .client(&f.pki.client_files(A, "Social worker")?)
        .await?
        .get_record(lookup(&again.id))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(gone.message().contains(&noah.id), "{}", gone.message());
    let survivor = management_a
        .get_record(lookup(&noah.id))
        .await?
        .into_inner();
    assert!(survivor.shielded);
    assert!(
        survivor.former_names.iter().any(|former| former
            .name
            .as_ref()
            .is_some_and(|name| name.family_name == "Benett")),
        "the duplicate's name joins the survivor: {:?}",
        survivor.former_names
    );
    // Noticed once: the merge raises no new notice.
    assert_eq!(told(&f, 0, elsewhere).await?.len(), 1);
    Ok(())
}
