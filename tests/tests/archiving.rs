//! Archiving and destruction (regulation 8) move with an injected clock:
//! what is archived when, who may then see it, and its destruction six years
//! on, gone from the tables and audited.
use std::sync::{Arc, Mutex};

use chrono::{Duration, Months, NaiveDate};
use contactpoint_node::store::{ArchiveReport, Store};
use contactpoint_node::Clock;
use contactpoint_tests::*;
use tonic::Code;

/// A clock the test moves.
#[derive(Debug, Clone)]
struct MovableClock(Arc<Mutex<NaiveDate>>);

impl Clock for MovableClock {
    fn today(&self) -> NaiveDate {
        *self.0.lock().unwrap()
    }
}

impl MovableClock {
    fn set(&self, day: NaiveDate) {
        *self.0.lock().unwrap() = day;
    }
}

fn read(id: &str, purpose: pb::ArchivePurpose) -> pb::GetRecordRequest {
    pb::GetRecordRequest {
        id: id.into(),
        reason: "review".into(),
        archive_purpose: purpose as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn archiving_and_destruction_follow_the_clock() -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    let clock = MovableClock(Arc::new(Mutex::new(today)));
    let db = TestDb::create().await?;
    let pki = TestPki::new()?;
    // The clock moves seven years on: keep the readers' checks valid.
    pki.write_policy_with("", 20)?;
    let node = TestNode::start_with_clock(&db, &pki, "E06000001", Arc::new(clock.clone())).await?;
    let mut staff = node
        .client(&pki.client_files("E06000001", "Social worker")?)
        .await?;
    let mut management = node
        .client(&pki.management_files("E06000001", "Data manager")?)
        .await?;
    let store = Store::open(
        &db.url,
        2,
        contactpoint_node::model::ResponsibleAuthority {
            code: "E06000001".into(),
            name: "Authority E06000001".into(),
        },
    )
    .await?;

    // Turns 18 in about a month.
    let almost_adult = today.checked_sub_months(Months::new(18 * 12)).unwrap() + Duration::days(30);
    let teen = staff
        .create_record(sample::child_request(
            "Tom",
            "Archer",
            date(almost_adult),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    // A young child whose health visitor stopped a month ago, archived 1 year after.
    let young = staff
        .create_record(sample::child_request(
            "Lily",
            "Archer",
            date(today - Duration::days(900)),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let visitor = pb::ServiceInvolvement {
        provenance: None,
        kind: pb::ServiceKind::HealthVisitor as i32,
        provider_name: "Sam Patel".into(),
        started_on: Some(date(today - Duration::days(800))),
        ended_on: Some(date(today - Duration::days(30))),
        archive_after_years: 1,
        ..Default::default()
    };
    staff
        .add_entry(pb::AddEntryRequest {
            id: young.id.clone(),
            entry: Some(pb::add_entry_request::Entry::Service(visitor)),
        })
        .await?;

    assert_eq!(
        store.archive_and_destroy(today).await?,
        ArchiveReport::default(),
        "nothing is due yet"
    );

    // Forty days on, the teenager is 18: the record is archived, once.
    let adult_day = today + Duration::days(40);
    clock.set(adult_day);
    assert_eq!(
        store.archive_and_destroy(adult_day).await?,
        ArchiveReport {
            archived_records: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        store.archive_and_destroy(adult_day).await?,
        ArchiveReport::default(),
        "the job is idempotent"
    );
    let status = staff
        .get_record(read(&teen.id, pb::ArchivePurpose::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("archived"),
        "{}",
        status.message()
    );
    let seen = management
        .get_record(read(&teen.id, pb::ArchivePurpose::Unspecified))
        .await?
        .into_inner();
    assert!(
        seen.archived_on.is_some(),
        "data managers see it in its first year"
    );
    let search = pb::SearchRecordsRequest {
        reason: "checking the test child's record".into(),
        surname: "Archer".into(),
        date_of_birth: Some(date(almost_adult)),
        ..Default::default()
    };
    assert!(
        staff
            .search_records(search.clone())
            .await?
            .into_inner()
            .matches
            .is_empty(),
        "users do not find archived records"
    );
    assert_eq!(
        management
            .search_records(search)
            .await?
            .into_inner()
            .matches
            .len(),
        1
    );

    // Thirteen months later: data managers need a stated purpose; the health
    // visitor entry (ended over a year ago) is archived too.
    let later = adult_day.checked_add_months(Months::new(13)).unwrap();
    clock.set(later);
    assert_eq!(
        store.archive_and_destroy(later).await?,
        ArchiveReport {
            archived_services: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        management
            .get_record(read(&teen.id, pb::ArchivePurpose::Unspecified))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    management
        .get_record(read(&teen.id, pb::ArchivePurpose::ChildProtectionEnquiry))
        .await?;
    let young_seen = staff
        .get_record(read(&young.id, pb::ArchivePurpose::Unspecified))
        .await?
        .into_inner();
    assert!(
        young_seen.services.is_empty(),
        "the archived service is hidden from users"
    );
    assert!(
        young_seen
            .withheld
            .iter()
            .any(|w| w.starts_with("archived information")),
        "{:?}",
        young_seen.withheld
    );
    let young_managed = management
        .get_record(read(&young.id, pb::ArchivePurpose::Unspecified))
        .await?
        .into_inner();
    assert_eq!(
        young_managed.services.len(),
        1,
        "data managers see it in its first year"
    );

    // Six years after archiving, both are destroyed: gone from the tables, and audited.
    let purge = later.checked_add_months(Months::new(6 * 12)).unwrap();
    clock.set(purge);
    let report = store.archive_and_destroy(purge).await?;
    assert_eq!(
        (report.destroyed_records, report.destroyed_services),
        (1, 1),
        "{report:?}"
    );
    let rows = db.connect().await?;
    let teen_rows: i64 = rows
        .query_one(
            "SELECT count(*) FROM child_record WHERE id = $1",
            &[&teen.id],
        )
        .await?
        .get(0);
    assert_eq!(teen_rows, 0, "the record is gone, not flagged");
    let services: i64 = rows
        .query_one(
            "SELECT count(*) FROM service WHERE record_id = $1",
            &[&young.id],
        )
        .await?
        .get(0);
    assert_eq!(services, 0);
    let destroyed: Vec<String> = rows
        .query_one(
            "SELECT record_ids FROM audit_event WHERE method = 'DestroyRecord'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(destroyed, vec![teen.id.clone()]);
    let key = contactpoint_node::audit::public_key_of(&node.config.audit_key)
        .map_err(anyhow::Error::msg)?;
    assert!(
        contactpoint_node::audit::verify(&rows, &key)
            .await?
            .is_intact(),
        "the destruction is in the unbroken audit chain"
    );
    Ok(())
}

/// Notifications are kept `notification_retention_days`, then deleted by
/// the archiving run, audited with the records they were of; younger ones
/// stay, and the access they told of stays in the audit.
#[tokio::test(flavor = "multi_thread")]
async fn notifications_are_deleted_after_their_retention() -> anyhow::Result<()> {
    let f = Federation::start(&["E06000001"]).await?;
    let record = f
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Ivy",
            "Nash",
            date(today() - chrono::Duration::days(900)),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    // Two views by another organisation: two notifications.
    let mut police = f.nodes[0]
        .client(&f.pki.client_files("Cleveland Police", "PC 1")?)
        .await?;
    for _ in 0..2 {
        police.get_record(lookup(&record.id)).await?;
    }
    let db = f.node_dbs[0].connect().await?;
    let count = |sql: &'static str| {
        let db = &db;
        async move { anyhow::Ok(db.query_one(sql, &[]).await?.get::<_, i64>(0)) }
    };
    assert_eq!(count("SELECT count(*) FROM notification").await?, 2);
    // One raised 731 days ago, one 729.
    db.batch_execute(
        "UPDATE notification SET at = now() - interval '731 days'
           WHERE notification_id = (SELECT min(notification_id) FROM notification);
         UPDATE notification SET at = now() - interval '729 days'
           WHERE notification_id = (SELECT max(notification_id) FROM notification);",
    )
    .await?;
    let store = Store::open(
        &f.node_dbs[0].url,
        1,
        contactpoint_node::model::ResponsibleAuthority {
            code: "E06000001".into(),
            name: "Authority E06000001".into(),
        },
    )
    .await?;
    assert_eq!(store.purge_notifications(today(), 730).await?, 1);
    assert_eq!(
        store.purge_notifications(today(), 730).await?,
        0,
        "idempotent"
    );
    assert_eq!(count("SELECT count(*) FROM notification").await?, 1);
    assert_eq!(
        count("SELECT count(*) FROM audit_event WHERE method = 'PurgeNotifications'").await?,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_event WHERE method = 'GetRecord' AND caller_organisation = 'Cleveland Police'").await?,
        2,
        "the views stay in the audit"
    );
    Ok(())
}
