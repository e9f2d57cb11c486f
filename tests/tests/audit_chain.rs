//! The node's audit is a hash chain with signed checkpoints: the verifier
//! passes an untouched log and names each kind of tampering.
use contactpoint_node::audit::{verify, CheckpointSigner};
use contactpoint_tests::*;

/// A node with some audited calls and a signed checkpoint; returns the
/// fixture, a direct database client and the node's public key.
async fn audited_node() -> anyhow::Result<(Fixture, tokio_postgres::Client, Vec<u8>)> {
    let mut f = Fixture::start().await?;
    let born = date(today() - chrono::Duration::days(1000));
    for surname in ["Ames", "Bell", "Cole"] {
        let record = f
            .client
            .create_record(sample::child_request("Sam", surname, born, "TS24 8AH"))
            .await?
            .into_inner();
        f.client
            .get_record(pb::GetRecordRequest {
                id: record.id,
                reason: "case review".into(),
                ..Default::default()
            })
            .await?;
    }
    let db = f.db.connect().await?;
    as_database_administrator(&db).await?;
    let signer =
        CheckpointSigner::from_pem_file(&f.node.config.audit_key).map_err(anyhow::Error::msg)?;
    assert_eq!(
        signer.checkpoint(&db).await?,
        Some(6),
        "the checkpoint signs the sixth entry"
    );
    let public_key = contactpoint_node::audit::public_key_of(&f.node.config.audit_key)
        .map_err(anyhow::Error::msg)?;
    Ok((f, db, public_key))
}

/// The tampering below is a database administrator's: the audit's owner
/// turns off the triggers that refuse every change to it (migration V17),
/// which the node's own role cannot (tests/tests/audit_append_only.rs). What
/// catches them then is the chain, its checkpoints and the countersignatures.
async fn as_database_administrator(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    db.batch_execute(
        "ALTER TABLE audit_event DISABLE TRIGGER USER;
         ALTER TABLE audit_checkpoint DISABLE TRIGGER USER;
         ALTER TABLE audit_key DISABLE TRIGGER USER;",
    )
    .await?;
    Ok(())
}

async fn problems(db: &tokio_postgres::Client, key: &[u8]) -> anyhow::Result<Vec<String>> {
    let report = verify(db, key).await?;
    assert_eq!(report.checkpoints, 1);
    Ok(report.problems)
}

/// An untouched log verifies, checkpoint included.
#[tokio::test]
async fn an_untouched_log_is_intact() -> anyhow::Result<()> {
    let (_f, db, key) = audited_node().await?;
    let report = verify(&db, &key).await?;
    assert_eq!(report.entries, 6);
    assert!(report.is_intact(), "{:?}", report.problems);
    Ok(())
}

/// Altering an entry's content is caught at that entry.
#[tokio::test]
async fn an_altered_entry_is_caught() -> anyhow::Result<()> {
    let (_f, db, key) = audited_node().await?;
    db.execute(
        "UPDATE audit_event SET caller_name = 'Someone else' WHERE event_id = 2",
        &[],
    )
    .await?;
    let found = problems(&db, &key).await?;
    assert!(
        found
            .iter()
            .any(|p| p == "entry 2 was altered: its content does not match its hash"),
        "{found:?}"
    );
    Ok(())
}

/// Each entry links the digest of its form (migration V19), which is what
/// the gateway's proofs rest on: a digest that is not its form's, or an
/// entry made to look as if written before digests were kept, is caught.
#[tokio::test]
async fn an_entry_linking_a_false_digest_or_none_is_caught() -> anyhow::Result<()> {
    let (_f, db, key) = audited_node().await?;
    let digests: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_event WHERE form_digest = sha256(''::bytea) OR form_digest IS NULL",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(digests, 0, "every entry links its form's digest");
    // A digest of other content, the hash made to match it.
    db.execute(
        "UPDATE audit_event SET form_digest = sha256('other'::bytea),
                entry_hash = sha256(prev_hash || sha256('other'::bytea)) WHERE event_id = 6",
        &[],
    )
    .await?;
    let found = problems(&db, &key).await?;
    assert!(
        found
            .iter()
            .any(|p| p == "entry 6 was altered: its content does not match its hash"),
        "{found:?}"
    );
    db.execute(
        "UPDATE audit_event SET form_digest = NULL WHERE event_id = 6",
        &[],
    )
    .await?;
    let found = problems(&db, &key).await?;
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("entry 6 links its form itself")),
        "{found:?}"
    );
    Ok(())
}

async fn unsigned_age(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one("SELECT audit_unsigned_age()", &[])
        .await?
        .get(0))
}

/// The health loop's question: how long the oldest entry not under a signed
/// checkpoint has waited; nothing once every entry is under one.
#[tokio::test]
async fn the_unsigned_age_counts_from_the_first_entry_after_the_checkpoint() -> anyhow::Result<()> {
    let (f, db, _key) = audited_node().await?;
    assert_eq!(
        unsigned_age(&db).await?,
        0,
        "every entry is under the checkpoint"
    );
    // Entries 7 and 8, after the checkpoint (which signs the sixth).
    let born = date(today() - chrono::Duration::days(1000));
    let mut client = f.client.clone();
    let record = client
        .create_record(sample::child_request("Sam", "Dunn", born, "TS24 8AH"))
        .await?
        .into_inner();
    client.get_record(lookup(&record.id)).await?;
    // The first entry after the checkpoint waited longest.
    db.execute(
        "UPDATE audit_event SET at = now() - interval '100 seconds' WHERE event_id = 7",
        &[],
    )
    .await?;
    let waited = unsigned_age(&db).await?;
    assert!((100..110).contains(&waited), "{waited} seconds");
    Ok(())
}

/// Deleting an entry breaks the next entry's link.
#[tokio::test]
async fn a_deleted_entry_is_caught() -> anyhow::Result<()> {
    let (_f, db, key) = audited_node().await?;
    db.execute("DELETE FROM audit_event WHERE event_id = 3", &[])
        .await?;
    let found = problems(&db, &key).await?;
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("entry 4 does not follow entry 2")),
        "{found:?}"
    );
    Ok(())
}

/// Swapping two entries' places breaks their links.
#[tokio::test]
async fn reordered_entries_are_caught() -> anyhow::Result<()> {
    let (_f, db, key) = audited_node().await?;
    db.batch_execute(
        "UPDATE audit_event SET event_id = -1 WHERE event_id = 2;
         UPDATE audit_event SET event_id = 2 WHERE event_id = 3;
         UPDATE audit_event SET event_id = 3 WHERE event_id = -1;",
    )
    .await?;
    let found = problems(&db, &key).await?;
    assert!(
        found.iter().any(|p| p.contains("does not follow")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("was altered")),
        "the id is part of each hash: {found:?}"
    );
    Ok(())
}

/// Cutting the log back below a checkpoint is caught by the checkpoint, and
/// a checkpoint not signed by the node's audit key is caught too.
#[tokio::test]
async fn a_truncated_log_and_a_forged_checkpoint_are_caught() -> anyhow::Result<()> {
    let (_f, db, key) = audited_node().await?;
    db.execute("DELETE FROM audit_event WHERE event_id >= 5", &[])
        .await?;
    let found = problems(&db, &key).await?;
    assert_eq!(
        found,
        vec!["checkpoint 1: entry 6 is missing: the log was truncated or cut".to_string()]
    );
    db.execute("UPDATE audit_checkpoint SET last_event_id = 4, head_hash = (SELECT entry_hash FROM audit_event WHERE event_id = 4)", &[]).await?;
    let found = problems(&db, &key).await?;
    assert_eq!(
        found,
        vec!["checkpoint 1 is not signed by this node's audit key".to_string()]
    );
    Ok(())
}

/// A node that cuts its log back together with its own checkpoints passes
/// its own verifier; the gateway's countersigned copies catch it.
#[tokio::test]
async fn the_gateways_countersignatures_catch_a_log_cut_with_its_checkpoints() -> anyhow::Result<()>
{
    let f = Federation::start(&["E06000001"]).await?;
    let mut staff = f.staff(0).await?;
    let born = date(today() - chrono::Duration::days(1000));
    for surname in ["Ames", "Bell"] {
        staff
            .create_record(sample::child_request("Sam", surname, born, "TS24 8AH"))
            .await?;
    }
    let node = &f.nodes[0];
    let db = f.node_dbs[0].connect().await?;
    as_database_administrator(&db).await?;
    let signer =
        CheckpointSigner::from_pem_file(&node.config.audit_key).map_err(anyhow::Error::msg)?;
    let signed = signer.checkpoint(&db).await?.expect("entries to sign");
    // The gateway countersigns the head within its interval: this one, or
    // one after it (it asks for the head as it is when it asks).
    let gateway_store = contactpoint_gateway::store::Store::open(&f.gateway_db.url, 1).await?;
    let gateway_db = f.gateway_db.connect().await?;
    let witnesses = eventually("the gateway to countersign the checkpoint", || async {
        // A head the gateway refused would never be countersigned: say why.
        let refused: Vec<String> = gateway_db
            .query(
                "SELECT reason || ': ' || detail FROM audit_witness_refusal",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        anyhow::ensure!(refused.is_empty(), "heads refused: {refused:?}");
        let kept = gateway_store.witnesses("E06000001").await?;
        Ok(kept
            .iter()
            .any(|w| w.last_event_id >= signed)
            .then_some(kept))
    })
    .await?;
    let witnessed = witnesses
        .iter()
        .map(|w| w.last_event_id)
        .max()
        .unwrap_or_default();
    let node_key = contactpoint_node::audit::public_key_of(&node.config.audit_key)
        .map_err(anyhow::Error::msg)?;
    let gateway_key = contactpoint_mtls::public_key(&f.gateway.config.tls.cert)?;
    let check = |report: &mut contactpoint_node::audit::Report, witnesses: &[_]| {
        contactpoint_node::audit::check_witnesses(report, "E06000001", witnesses, &gateway_key)
    };
    let mut report = verify(&db, &node_key).await?;
    check(&mut report, &witnesses);
    assert!(
        report.is_intact() && report.witnessed >= 1,
        "{:?}",
        report.problems
    );

    // Cut the log back, and the node's own checkpoints with it.
    db.batch_execute("DELETE FROM audit_event WHERE event_id >= 2; DELETE FROM audit_checkpoint;")
        .await?;
    let mut report = verify(&db, &node_key).await?;
    assert!(
        report.is_intact(),
        "the node's own evidence is gone with it"
    );
    check(&mut report, &witnesses);
    assert!(
        report.problems.iter().any(|p| p.ends_with(&format!(
            "entry {witnessed} is missing: the log was truncated or cut"
        ))),
        "{:?}",
        report.problems
    );
    // A countersignature the gateway did not make is no evidence either.
    let mut forged = witnesses.clone();
    forged[0].gateway_signature[10] ^= 1;
    let mut report = verify(&db, &node_key).await?;
    check(&mut report, &forged);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.ends_with("is not countersigned by the gateway's key")),
        "{:?}",
        report.problems
    );
    Ok(())
}

/// Reads (appended outside any transaction, under the chain's lock held by
/// their connection) and writes (appended inside their own transaction)
/// arriving together, some abandoned by their callers half way, still make
/// one intact chain with an entry for every call answered.
#[tokio::test]
async fn concurrent_and_abandoned_calls_keep_the_chain_intact() -> anyhow::Result<()> {
    // One caller sends some 120 calls at once: its budget is not what this
    // test is about.
    let f = Fixture::start_configured(|config| {
        config.limits.per_caller_in_flight = 256;
        config.limits.per_caller_burst = 1000.0;
    })
    .await?;
    let born = date(today() - chrono::Duration::days(1000));
    let record = f
        .client
        .clone()
        .create_record(sample::child_request("Sam", "Dale", born, "TS24 8AH"))
        .await?
        .into_inner();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (mut client, mut writer) = (f.client.clone(), f.client.clone());
        let id = record.id.clone();
        calls.spawn(async move {
            let read = client.get_record(pb::GetRecordRequest {
                id,
                reason: "case review".into(),
                ..Default::default()
            });
            if i % 10 == 9 {
                // Gone before the answer: the node may or may not have audited it.
                let _ = tokio::time::timeout(std::time::Duration::from_micros(300), read).await;
                return Ok(false);
            }
            if i % 7 == 5 {
                // A search: its entry's canonical form nests the plain one.
                let searched = writer.search_records(pb::SearchRecordsRequest {
                    surname: "Dale".into(),
                    date_of_birth: Some(born),
                    reason: "case review".into(),
                    ..Default::default()
                });
                let (read, searched) = tokio::join!(read, searched);
                read?;
                searched?;
                return Ok(true);
            }
            if i % 3 == 0 {
                let (read, created) = tokio::join!(
                    read,
                    writer.create_record(sample::child_request(
                        "Sam",
                        &format!("Dale{i}"),
                        born,
                        "TS24 8AH"
                    ))
                );
                read?;
                created?;
                return Ok(true);
            }
            read.await?;
            anyhow::Ok(true)
        });
    }
    let mut answered = 0;
    while let Some(call) = calls.join_next().await {
        answered += usize::from(call??);
    }
    let db = f.db.connect().await?;
    let reads: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_event WHERE method = 'GetRecord' AND outcome = 'ok'",
            &[],
        )
        .await?
        .get(0);
    assert!(
        reads as usize >= answered,
        "{reads} entries for {answered} answers"
    );
    // The lock is free again: one more read is answered and audited.
    let mut client = f.client.clone();
    let last = client.get_record(pb::GetRecordRequest {
        id: record.id.clone(),
        reason: "case review".into(),
        ..Default::default()
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), last)
        .await
        .map_err(|_| anyhow::anyhow!("the chain's lock was left held"))??;
    let key = contactpoint_node::audit::public_key_of(&f.node.config.audit_key)
        .map_err(anyhow::Error::msg)?;
    let report = verify(&db, &key).await?;
    assert!(report.is_intact(), "{:?}", report.problems);
    // The create, every answered call (a write and its read count as two),
    // and the last read.
    assert!(
        report.entries > answered as u64 + 1,
        "{} entries",
        report.entries
    );
    Ok(())
}
