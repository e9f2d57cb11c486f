//! The node's audit is signed with a key of its own, never the TLS key, and
//! every checkpoint it ever signed still verifies after the key is rotated
//! (issue 19, item 3): the database keeps the key history, each key linked
//! to the one before by both keys' signatures.
use std::sync::Arc;
use std::time::Duration;

use contactpoint_node::audit::{public_key_of, verify, CheckpointSigner};
use contactpoint_node::{NodeConfig, SystemClock};
use contactpoint_tests::*;

/// Starts a node on `config` expecting it to refuse; returns why.
async fn refused_start(config: NodeConfig) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let served = tokio::time::timeout(
        Duration::from_secs(30),
        contactpoint_node::serve_on(
            config,
            listener,
            None,
            Arc::new(SystemClock),
            std::future::pending(),
        ),
    )
    .await?;
    Ok(served
        .expect_err("the node must refuse to start")
        .to_string())
}

/// Signs a checkpoint of the audit's head with the node's audit key now.
async fn checkpoint(node: &NodeConfig, db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let signer = CheckpointSigner::from_pem_file(&node.audit_key).map_err(anyhow::Error::msg)?;
    Ok(signer.checkpoint(db).await?.expect("entries to sign"))
}

/// The node's social worker records a child: an entry in its audit.
async fn record_child(node: &TestNode, pki: &TestPki, forename: &str) -> anyhow::Result<()> {
    node.client(&pki.client_files("E06000001", "Social worker")?)
        .await?
        .create_record(sample::child_request(
            forename,
            "Hart",
            date(today() - chrono::Duration::days(900)),
            "TS24 8AH",
        ))
        .await?;
    Ok(())
}

/// A fresh audit key file in the test CA's directory.
fn new_key(pki: &TestPki, name: &str) -> anyhow::Result<std::path::PathBuf> {
    pki.audit_key(name)
}

/// The TLS key is refused as the audit key (by its path and by its bytes);
/// the audit's checkpoints are signed by the audit key and verify with it;
/// after a rotation (the new key as `audit_key`, the old as
/// `audit_previous_key`) every checkpoint, old and new, verifies trusting
/// either key; a key new to the history without its predecessor, with a
/// predecessor other than the newest, or one retired, is refused at start;
/// and a key a database administrator writes into the history breaks it.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_key_is_its_own_and_every_checkpoint_verifies_after_rotation(
) -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let first = TestNode::config(&db, &pki, "E06000001")?;

    // The TLS key, by another path: refused by its bytes.
    let copy = pki.path("tls-copy.key");
    std::fs::copy(&first.tls.key, &copy)?;
    let refused = refused_start(NodeConfig {
        audit_key: copy,
        ..first.clone()
    })
    .await?;
    assert!(refused.contains("not the TLS key"), "{refused}");

    let node = TestNode::start_config(first.clone(), Arc::new(SystemClock)).await?;
    record_child(&node, &pki, "Amy").await?;
    let admin = db.connect().await?;
    checkpoint(&first, &admin).await?;
    let old_key = public_key_of(&first.audit_key).map_err(anyhow::Error::msg)?;
    let report = verify(&admin, &old_key).await?;
    assert!(report.is_intact(), "{:?}", report.problems);
    let tls_key = contactpoint_mtls::public_key(&first.tls.cert)?;
    let report = verify(&admin, &tls_key).await?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("it was replaced")),
        "the TLS key is no audit key: {:?}",
        report.problems
    );
    node.stop().await?;

    // A new key without its predecessor is refused.
    let rotated = NodeConfig {
        audit_key: new_key(&pki, "rotated")?,
        ..first.clone()
    };
    let refused = refused_start(rotated.clone()).await?;
    assert!(refused.contains("audit_previous_key"), "{refused}");
    // Rotated properly, the old key endorses the new.
    let node = TestNode::start_config(
        NodeConfig {
            audit_previous_key: Some(first.audit_key.clone()),
            ..rotated.clone()
        },
        Arc::new(SystemClock),
    )
    .await?;
    record_child(&node, &pki, "Ben").await?;
    checkpoint(&rotated, &admin).await?;
    node.stop().await?;
    let new_key_public = public_key_of(&rotated.audit_key).map_err(anyhow::Error::msg)?;
    for trusted in [&old_key, &new_key_public] {
        let report = verify(&admin, trusted).await?;
        assert_eq!(report.checkpoints, 2);
        assert!(report.is_intact(), "{:?}", report.problems);
    }

    // The retired key, and a third key naming the retired one, are refused.
    let refused = refused_start(first.clone()).await?;
    assert!(refused.contains("retired"), "{refused}");
    let refused = refused_start(NodeConfig {
        audit_key: new_key(&pki, "third")?,
        audit_previous_key: Some(first.audit_key.clone()),
        ..first.clone()
    })
    .await?;
    assert!(refused.contains("not the key"), "{refused}");

    // A database administrator's own key, written in after the newest with
    // links of its own making.
    let intruder =
        CheckpointSigner::from_pem_file(&new_key(&pki, "intruder")?).map_err(anyhow::Error::msg)?;
    let link = contactpoint_mtls::key_link_message(&new_key_public, &intruder.key().public_key());
    let forged = intruder.key().sign(&link).expect("signs");
    admin
        .execute(
            "INSERT INTO audit_key (key_id, public_key, endorsement, acceptance) VALUES ($1, $2, $3, $3)",
            &[&intruder.key_id(), &intruder.key().public_key(), &forged],
        )
        .await?;
    let report = verify(&admin, &old_key).await?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p == "key 3 of the audit key history is not endorsed by the key before it"),
        "{:?}",
        report.problems
    );
    Ok(())
}

/// Checkpoints signed before the audit had a key of its own (with the TLS
/// key, and naming no key) still verify: the first start with an audit key
/// enters the TLS key as the history's first, linked to the audit key.
#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_signed_with_the_tls_key_before_still_verify() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let config = TestNode::config(&db, &pki, "E06000001")?;
    let node = TestNode::start_config(config.clone(), Arc::new(SystemClock)).await?;
    record_child(&node, &pki, "Amy").await?;
    node.stop().await?;
    // The audit as it was before: a checkpoint by the TLS key, no key history.
    let admin = db.connect().await?;
    admin
        .batch_execute("ALTER TABLE audit_key DISABLE TRIGGER USER; DELETE FROM audit_key;")
        .await?;
    let tls =
        contactpoint_mtls::KeySigner::from_pem_file(&config.tls.key).map_err(anyhow::Error::msg)?;
    let (last, head): (i64, Vec<u8>) = {
        let row = admin
            .query_one(
                "SELECT event_id, entry_hash FROM audit_event ORDER BY event_id DESC LIMIT 1",
                &[],
            )
            .await?;
        (row.get(0), row.get(1))
    };
    let signature = tls
        .sign(&contactpoint_proto::audit::checkpoint_message(last, &head))
        .expect("signs");
    admin
        .execute(
            "INSERT INTO audit_checkpoint (last_event_id, head_hash, signature) VALUES ($1, $2, $3)",
            &[&last, &head, &signature],
        )
        .await?;

    let node = TestNode::start_config(config.clone(), Arc::new(SystemClock)).await?;
    record_child(&node, &pki, "Ben").await?;
    checkpoint(&config, &admin).await?;
    let keys: i64 = admin
        .query_one("SELECT count(*) FROM audit_key", &[])
        .await?
        .get(0);
    assert_eq!(keys, 2, "the TLS key first, then the audit key");
    let trusted = public_key_of(&config.audit_key).map_err(anyhow::Error::msg)?;
    let report = verify(&admin, &trusted).await?;
    assert_eq!(report.checkpoints, 2);
    assert!(report.is_intact(), "{:?}", report.problems);
    Ok(())
}
