//! Moving a record between authorities when a child moves: journaled,
//! resumable, with exactly one responsible authority throughout.
use chrono::Duration;
use contactpoint_tests::*;
use tonic::Code;

const A: &str = "E06000001";
const B: &str = "E06000002";
const C: &str = "E06000003";

fn born() -> chrono::NaiveDate {
    today() - Duration::days(150)
}

async fn nspcc(
    f: &Federation,
) -> anyhow::Result<pb::gateway_client::GatewayClient<tonic::transport::Channel>> {
    f.gateway
        .client(&f.pki.client_files("NSPCC", "Helpline")?)
        .await
}

async fn staff_at_gateway(
    f: &Federation,
    code: &str,
) -> anyhow::Result<pb::gateway_client::GatewayClient<tonic::transport::Channel>> {
    f.gateway
        .client(&f.pki.client_files(code, "Social worker")?)
        .await
}

/// What must hold at every moment of a transfer: the record is found by a
/// lookup and, once, by a search through the gateway; no two nodes serve it live.
async fn assert_findable(
    f: &Federation,
    record: &pb::ChildRecord,
    moment: &str,
) -> anyhow::Result<()> {
    let mut client = nspcc(f).await?;
    let found = client
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: record.id.clone(),
            ..Default::default()
        })
        .await;
    let found = found
        .map_err(|status| anyhow::anyhow!("{moment}: lookup failed: {status:?}"))?
        .into_inner();
    assert_eq!(found.id, record.id, "{moment}");
    assert_eq!(found.name, record.name, "{moment}: the same child");
    let search = pb::SearchRecordsRequest {
        reason: "checking the test child's record".into(),
        surname: record.name.as_ref().unwrap().family_name.clone(),
        date_of_birth: record.date_of_birth,
        ..Default::default()
    };
    let matches = client.search_records(search).await?.into_inner().matches;
    assert_eq!(
        matches.iter().filter(|m| m.id == record.id).count(),
        1,
        "{moment}: one search match"
    );
    let live = f.live_copies(&record.id).await?;
    assert!(live.len() <= 1, "{moment}: two live copies at {live:?}");
    Ok(())
}

/// A record and its entries move from A to B: B serves it, A keeps only the
/// forwarding and its audit, the index points at B, and both authorities and
/// the gateway audit each step with who asked.
#[tokio::test]
async fn a_normal_transfer_moves_the_whole_record() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B, C]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::every_paragraph(date(born())))
        .await?
        .into_inner();
    let mut a_staff = staff_at_gateway(&f, A).await?;
    let started = a_staff
        .start_transfer(pb::StartTransferRequest {
            id: created.id.clone(),
            to_authority: B.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(started.from.as_ref().unwrap().code, A);
    // A's social worker asks; A's management team consents.
    assert_eq!(started.state, pb::TransferState::AwaitingConsent as i32);
    assert!(started.consented_by.is_empty());
    let consented = f.consent_transfer(&started.transfer_id, A).await?;
    assert_eq!(
        consented.consented_by,
        format!("{A}/management/Data manager")
    );
    f.wait_for_transfer(&started.transfer_id, "completed")
        .await?;

    let moved = f
        .staff(1)
        .await?
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(moved.id, created.id, "the identifier never changes");
    assert_eq!(moved.version, created.version);
    assert_eq!(moved.responsible_authority.as_ref().unwrap().code, B);
    let strip = |mut r: pb::ChildRecord| {
        r.responsible_authority = None;
        for e in &mut r.contacts {
            e.entry_id = 0
        }
        for e in &mut r.education {
            e.entry_id = 0
        }
        for e in &mut r.services {
            e.entry_id = 0
        }
        for e in &mut r.caf_assessments {
            e.entry_id = 0
        }
        for e in &mut r.lead_professionals {
            e.entry_id = 0
        }
        r
    };
    assert_eq!(
        strip(moved),
        strip(created.clone()),
        "every paragraph and entry moved"
    );

    let a_db = f.node_dbs[0].connect().await?;
    assert_eq!(
        f.node_dbs[0].count("child_record").await?,
        0,
        "A keeps no copy"
    );
    assert_eq!(f.node_dbs[0].count("contact").await?, 0);
    let forwarded: String = a_db
        .query_one(
            "SELECT moved_to_code FROM record_forwarding WHERE record_id = $1",
            &[&created.id],
        )
        .await?
        .get(0);
    assert_eq!(forwarded, B);
    let status = f
        .staff(0)
        .await?
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status
            .metadata()
            .get("x-contactpoint-moved-to")
            .unwrap()
            .to_str()?,
        B,
        "A says where it went"
    );

    let record_id = created.id.clone();
    let steps = |db: tokio_postgres::Client| {
        let record_id = record_id.clone();
        async move {
            let rows = db.query("SELECT method, caller_organisation FROM audit_event WHERE $1 = ANY(record_ids) ORDER BY event_id", &[&record_id]).await?;
            Ok::<Vec<(String, String)>, anyhow::Error>(
                rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
            )
        }
    };
    let a_audit = steps(a_db).await?;
    for method in [
        "CreateRecord",
        "ExportRecord",
        "HandOverRecord",
        "ReleaseRecord",
    ] {
        assert!(
            a_audit
                .iter()
                .any(|(m, who)| m == method && (method == "CreateRecord" || who == A)),
            "A audits {method} with who asked: {a_audit:?}"
        );
    }
    let b_audit = steps(f.node_dbs[1].connect().await?).await?;
    for method in ["StageTransferIn", "ActivateTransferIn"] {
        assert!(
            b_audit.iter().any(|(m, who)| m == method && who == A),
            "B audits {method}: {b_audit:?}"
        );
    }
    let gateway_db = f.gateway_db.connect().await?;
    let journal: Vec<String> = gateway_db
        .query(
            "SELECT to_state FROM transfer_step WHERE transfer_id = $1 ORDER BY step_id",
            &[&started.transfer_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        journal,
        [
            "requested",
            "staged",
            "handed_over",
            "activated",
            "completed"
        ],
        "the consent, then each step"
    );
    let routed: String = gateway_db
        .query_one(
            "SELECT authority_code FROM routing_index WHERE record_id = $1",
            &[&created.id],
        )
        .await?
        .get(0);
    assert_eq!(routed, B);
    // The gateway reads A's outbox again from the start (its creation of the
    // record, the oldest announcement): the route stays with B.
    gateway_db
        .execute(
            "UPDATE feed_cursor SET last_event_id = 0 WHERE authority_code = $1",
            &[&A],
        )
        .await?;
    eventually("A's outbox to be read again", || {
        let db = &gateway_db;
        async move {
            let cursor: Option<i64> = db
                .query_opt(
                    "SELECT last_event_id FROM feed_cursor WHERE authority_code = $1",
                    &[&A],
                )
                .await?
                .map(|row| row.get(0));
            Ok(cursor.filter(|c| *c > 0).map(|_| ()))
        }
    })
    .await?;
    let routed: String = gateway_db
        .query_one(
            "SELECT authority_code FROM routing_index WHERE record_id = $1",
            &[&created.id],
        )
        .await?
        .get(0);
    assert_eq!(
        routed, B,
        "an older announcement does not move the route back"
    );
    let asked: i64 = gateway_db.query_one("SELECT count(*) FROM gateway_audit WHERE method = 'StartTransfer' AND caller_organisation = $1", &[&A]).await?.get(0);
    assert_eq!(asked, 1);

    // Both authorities see it, as outgoing and incoming.
    let listed = a_staff
        .list_transfers(pb::ListTransfersRequest {
            authority: A.into(),
        })
        .await?
        .into_inner();
    assert_eq!(listed.outgoing.len(), 1);
    assert_eq!(
        listed.outgoing[0].state,
        pb::TransferState::Completed as i32
    );
    let listed = staff_at_gateway(&f, B)
        .await?
        .list_transfers(pb::ListTransfersRequest {
            authority: B.into(),
        })
        .await?
        .into_inner();
    assert_eq!(listed.incoming.len(), 1);
    // Another authority's staff may not list A's transfers.
    let status = staff_at_gateway(&f, C)
        .await?
        .list_transfers(pb::ListTransfersRequest {
            authority: A.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_findable(&f, &created, "after the transfer").await?;
    Ok(())
}

/// The worker is stopped after each step in turn, once between a node's work
/// and the journal: the record stays findable exactly once, and a restarted
/// gateway resumes the transfer to its end.
#[tokio::test]
async fn a_crash_after_each_step_is_recovered() -> anyhow::Result<()> {
    let mut f = Federation::start(&[A, B]).await?;
    for completed_steps in 0..4 {
        let created = f
            .staff(0)
            .await?
            .create_record(sample::child_request(
                "Kit",
                &format!("Crash{completed_steps}"),
                date(born()),
                "TS24 8AH",
            ))
            .await?
            .into_inner();
        f.wait_until_routed(&created.id, A).await?;
        let transfer_id = f.journal_transfer(&created.id, A, B).await?;
        let worker = f.transfer_worker().await?;
        for _ in 0..completed_steps {
            worker.advance(&transfer_id).await?;
        }
        let moment = format!("after {completed_steps} steps");
        assert_findable(&f, &created, &moment).await?;
        // The next step's node work happens, its journal entry does not: a crash.
        let store = contactpoint_gateway::store::Store::open(&f.gateway_db.url, 1).await?;
        let row = store.transfer(&transfer_id).await?.unwrap();
        worker.perform_step(&row).await?;
        assert_findable(&f, &created, &format!("{moment} and a crash mid-step")).await?;

        f.restart_gateway().await?;
        f.wait_for_transfer(&transfer_id, "completed").await?;
        assert_eq!(
            f.live_copies(&created.id).await?,
            vec![B.to_string()],
            "{moment}: B alone serves it"
        );
        assert_findable(&f, &created, &format!("{moment}, recovered")).await?;
    }
    Ok(())
}

/// Changes at the old node before the cutover arrive at the new one; after
/// it they are refused, saying where the record went; none is lost.
#[tokio::test]
async fn updates_at_the_old_node_during_the_move_are_not_lost() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let mut a = f.staff(0).await?;
    let created = a
        .create_record(sample::child_request(
            "Ola",
            "Mensah",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let transfer_id = f.journal_transfer(&created.id, A, B).await?;
    let worker = f.transfer_worker().await?;
    assert_eq!(worker.advance(&transfer_id).await?, "staged");

    let mut details = sample::child("Ola", "Mensah-Boateng", date(born()), "TS24 8AH");
    details.gender = pb::Gender::Female as i32;
    let updated = a
        .update_record(pb::UpdateRecordRequest {
            id: created.id.clone(),
            expected_version: 1,
            details: Some(details),
        })
        .await?
        .into_inner();
    let nursery = sample::every_paragraph(date(born())).education[0].clone();
    a.add_entry(pb::AddEntryRequest {
        id: created.id.clone(),
        entry: Some(pb::add_entry_request::Entry::Education(nursery)),
    })
    .await?;

    assert_eq!(worker.advance(&transfer_id).await?, "handed_over");
    let status = a
        .add_entry(pb::AddEntryRequest {
            id: created.id.clone(),
            entry: Some(pb::add_entry_request::Entry::Contact(
                sample::every_paragraph(date(born())).contacts[0].clone(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "after the cutover the old node refuses changes"
    );
    assert_eq!(
        status
            .metadata()
            .get("x-contactpoint-moved-to")
            .unwrap()
            .to_str()?,
        B
    );

    worker.drive(transfer_id.clone()).await;
    let moved = f
        .staff(1)
        .await?
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        moved.name, updated.name,
        "the update made during the move arrived"
    );
    assert_eq!(
        moved.education.len(),
        1,
        "the entry added during the move arrived"
    );
    assert_eq!(moved.version, 3);
    assert!(moved.contacts.is_empty(), "the refused change is nowhere");
    Ok(())
}

/// A destination whose node is down: the transfer waits, says why, retries
/// and completes when the node returns. Meanwhile a second transfer of the
/// same record, and one to the authority already responsible, are refused.
#[tokio::test]
async fn a_transfer_to_a_node_that_is_down_waits_and_completes() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B, C]).await?;
    let Federation {
        pki,
        node_dbs,
        mut nodes,
        gateway_db,
        gateway,
    } = f;
    let b_node = nodes.remove(1);
    let mut b_config = b_node.config.clone();
    b_config.listen = b_node.address;
    b_node.stop().await?;
    let mut f = Federation {
        pki,
        node_dbs,
        nodes,
        gateway_db,
        gateway,
    };

    let created = f
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Zac",
            "Hume",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let mut a_staff = staff_at_gateway(&f, A).await?;
    let started = a_staff
        .start_transfer(pb::StartTransferRequest {
            id: created.id.clone(),
            to_authority: B.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    f.consent_transfer(&started.transfer_id, A).await?;
    let waiting = eventually("the transfer to say why it waits", || {
        let mut client = a_staff.clone();
        let transfer_id = started.transfer_id.clone();
        async move {
            let t = client
                .get_transfer(pb::GetTransferRequest { transfer_id })
                .await?
                .into_inner();
            Ok((!t.waiting_reason.is_empty()).then_some(t))
        }
    })
    .await?;
    assert_eq!(waiting.state, pb::TransferState::Requested as i32);
    assert!(
        waiting.waiting_reason.contains(B),
        "{}",
        waiting.waiting_reason
    );

    let twice = a_staff
        .start_transfer(pb::StartTransferRequest {
            id: created.id.clone(),
            to_authority: C.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert!(
        twice.message().contains(&started.transfer_id),
        "{}",
        twice.message()
    );
    let other = f
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Una",
            "Hume",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let same = a_staff
        .start_transfer(pb::StartTransferRequest {
            id: other.id.clone(),
            to_authority: A.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(same.code(), Code::FailedPrecondition);
    assert!(
        same.message().contains("already responsible"),
        "{}",
        same.message()
    );

    // Still A's, and findable, while it waits.
    let found = nspcc(&f)
        .await?
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(found.responsible_authority.unwrap().code, A);

    f.nodes.insert(
        1,
        TestNode::start_config(
            b_config,
            std::sync::Arc::new(contactpoint_node::SystemClock),
        )
        .await?,
    );
    f.wait_for_transfer(&started.transfer_id, "completed")
        .await?;
    assert_eq!(f.live_copies(&created.id).await?, vec![B.to_string()]);
    f.restart_gateway().await?;
    Ok(())
}

/// Cancelled before the cutover, the transfer leaves the record at A and no
/// copy at B; after the cutover it cannot be cancelled.
#[tokio::test]
async fn a_transfer_can_be_cancelled_before_the_cutover_only() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Ria",
            "Shah",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let transfer_id = f.journal_transfer(&created.id, A, B).await?;
    let worker = f.transfer_worker().await?;
    worker.advance(&transfer_id).await?;
    assert_eq!(f.node_dbs[1].count("child_record").await?, 1, "staged at B");

    let mut a_staff = staff_at_gateway(&f, A).await?;
    a_staff
        .cancel_transfer(pb::GetTransferRequest {
            transfer_id: transfer_id.clone(),
        })
        .await?;
    f.wait_for_transfer(&transfer_id, "cancelled").await?;
    assert_eq!(
        f.node_dbs[1].count("child_record").await?,
        0,
        "the staged copy is gone"
    );
    assert_eq!(f.live_copies(&created.id).await?, vec![A.to_string()]);
    assert_findable(&f, &created, "after cancelling").await?;

    let second = f.journal_transfer(&created.id, A, B).await?;
    worker.advance(&second).await?;
    worker.advance(&second).await?;
    let status = a_staff
        .cancel_transfer(pb::GetTransferRequest {
            transfer_id: second.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    worker.drive(second).await;
    assert_eq!(f.live_copies(&created.id).await?, vec![B.to_string()]);
    Ok(())
}

/// A to B to C, then a lookup through an index entry still pointing at A:
/// the gateway follows the forwardings and corrects its index.
#[tokio::test]
async fn a_chain_of_transfers_is_followed_from_a_stale_index() -> anyhow::Result<()> {
    let mut f = Federation::start(&[A, B, C]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Eve",
            "Lund",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let worker = f.transfer_worker().await?;
    for (from, to) in [(A, B), (B, C)] {
        let transfer_id = f.journal_transfer(&created.id, from, to).await?;
        worker.drive(transfer_id).await;
    }
    assert_eq!(f.live_copies(&created.id).await?, vec![C.to_string()]);
    let gateway_db = f.gateway_db.connect().await?;
    gateway_db
        .execute(
            "UPDATE routing_index SET authority_code = $2 WHERE record_id = $1",
            &[&created.id, &A],
        )
        .await?;
    // A gateway that starts over this index asks A, which names B, which names C.
    f.restart_gateway().await?;
    let found = nspcc(&f)
        .await?
        .get_record(pb::GetRecordRequest {
            reason: "checking the test child's record".into(),
            id: created.id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(found.responsible_authority.unwrap().code, C);
    let routed: String = gateway_db
        .query_one(
            "SELECT authority_code FROM routing_index WHERE record_id = $1",
            &[&created.id],
        )
        .await?
        .get(0);
    assert_eq!(routed, C);
    Ok(())
}

/// A cancellation that arrives after the old node has handed over (its
/// journal entry lost in a crash) cannot drop the record: the old node
/// refuses to abort, and the transfer completes.
#[tokio::test]
async fn a_cancel_racing_the_cutover_never_loses_the_record() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Ben",
            "Cole",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let transfer_id = f.journal_transfer(&created.id, A, B).await?;
    let worker = f.transfer_worker().await?;
    assert_eq!(worker.advance(&transfer_id).await?, "staged");
    let store = contactpoint_gateway::store::Store::open(&f.gateway_db.url, 1).await?;
    worker
        .perform_step(&store.transfer(&transfer_id).await?.unwrap())
        .await?;
    // The journal still says staged, so the cancellation is accepted...
    staff_at_gateway(&f, A)
        .await?
        .cancel_transfer(pb::GetTransferRequest {
            transfer_id: transfer_id.clone(),
        })
        .await?;
    worker.drive(transfer_id.clone()).await;
    // ...but the cutover had happened: the transfer completed instead.
    assert_eq!(f.transfer_state(&transfer_id).await?, "completed");
    assert_eq!(f.live_copies(&created.id).await?, vec![B.to_string()]);
    assert_findable(&f, &created, "after a late cancellation").await?;
    Ok(())
}

/// A move made by another gateway (here a transfer worker of its own over
/// the same database) reaches this gateway's routes: once it has read the
/// change, its lookups go straight to the new authority.
#[tokio::test]
async fn a_gateway_learns_of_moves_made_by_another() -> anyhow::Result<()> {
    let f = Federation::start(&[A, B]).await?;
    let created = f
        .staff(0)
        .await?
        .create_record(sample::child_request(
            "Kit",
            "Marsh",
            date(born()),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let other_gateway = f.transfer_worker().await?;
    other_gateway
        .drive(f.journal_transfer(&created.id, A, B).await?)
        .await;
    let old_node_lookups = || f.node_audited(0, "GetRecord");
    // With no lookup to correct it, the gateway reads the move within a
    // few of its feed polls (100 ms here); the first lookup then goes
    // straight to B.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut gateway = nspcc(&f).await?;
    let before = old_node_lookups().await?;
    let found = gateway.get_record(lookup(&created.id)).await?.into_inner();
    assert_eq!(found.responsible_authority.unwrap().code, B);
    assert_eq!(old_node_lookups().await?, before, "A was not asked");
    // And it stays so.
    let before = old_node_lookups().await?;
    for _ in 0..3 {
        gateway.get_record(lookup(&created.id)).await?;
    }
    assert_eq!(old_node_lookups().await?, before);
    Ok(())
}
