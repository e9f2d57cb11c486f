//! The gateway checks a node's audit head before it countersigns it (issue
//! 19, item 3): signed by the newest key of an audit key history holding the
//! keys it pinned, not behind the head it countersigned last, not another
//! hash at that entry, and proved to extend it (the digests of the entries
//! since, linked onto its hash); a head refused is not countersigned, and raises an
//! alarm (an ERROR, a counter, a row). And it witnesses each node's head
//! within its interval.
use contactpoint_gateway::witness::{check_signed, witness};
use contactpoint_node::audit::{public_key_of, CheckpointSigner};
use contactpoint_proto::audit::checkpoint_message;
use contactpoint_tests::*;

/// A federation of one node whose gateway witnesses only when a test asks
/// (`Witnessing::once`), with records written so the audit has entries.
/// (The gateway started first witnesses too, until it is restarted.)
struct Witnessing {
    f: Federation,
    store: contactpoint_gateway::store::Store,
    directory: contactpoint_gateway::nodes::Directory,
    signer: contactpoint_mtls::KeySigner,
    metrics: contactpoint_ops::Metrics,
}

impl Witnessing {
    async fn start() -> anyhow::Result<Self> {
        let mut f = Federation::start(&["E06000001"]).await?;
        f.gateway.config.witness_interval_ms = 3_600_000;
        f.restart_gateway().await?;
        let store = contactpoint_gateway::store::Store::open(&f.gateway_db.url, 2).await?;
        let directory = contactpoint_gateway::nodes::Directory::new(
            &f.gateway.config.nodes,
            &f.gateway.config.tls,
        )?;
        let signer = contactpoint_mtls::KeySigner::from_pem_file(&f.gateway.config.tls.key)
            .map_err(anyhow::Error::msg)?;
        let w = Self {
            f,
            store,
            directory,
            signer,
            metrics: contactpoint_ops::Metrics::new("contactpoint_gateway"),
        };
        for forename in ["Ames", "Bell"] {
            w.record(forename).await?;
        }
        Ok(w)
    }

    /// The node's social worker records a child: entries in its audit.
    async fn record(&self, forename: &str) -> anyhow::Result<()> {
        self.f
            .staff(0)
            .await?
            .create_record(sample::child_request(
                forename,
                "Sam",
                date(today() - chrono::Duration::days(1000)),
                "TS24 8AH",
            ))
            .await?;
        Ok(())
    }

    async fn once(&self) -> Result<Option<i64>, String> {
        let node = self.directory.get("E06000001").expect("configured");
        witness(node, &self.store, &self.signer, &self.metrics).await
    }

    /// The node's database as its administrator, the audit's triggers off.
    async fn administrator(&self) -> anyhow::Result<tokio_postgres::Client> {
        let db = self.f.node_dbs[0].connect().await?;
        db.batch_execute(
            "ALTER TABLE audit_event DISABLE TRIGGER USER;
             ALTER TABLE audit_key DISABLE TRIGGER USER;",
        )
        .await?;
        Ok(db)
    }

    /// The newest head countersigned, as the gateway keeps it.
    async fn head(&self) -> anyhow::Result<(i64, Vec<u8>)> {
        let row = self
            .f
            .gateway_db
            .connect()
            .await?
            .query_one(
                "SELECT last_event_id, head_hash FROM audit_witness_head WHERE authority_code = 'E06000001'",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The reasons of the heads refused, oldest first.
    async fn refusals(&self) -> anyhow::Result<Vec<String>> {
        let rows = self
            .f
            .gateway_db
            .connect()
            .await?
            .query(
                "SELECT reason FROM audit_witness_refusal ORDER BY refusal_id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// A head countersigned pins the node's audit key, and a later head is
/// countersigned with its proof; a head whose entry was given another hash,
/// one that went back, one regrown past the last head from below it, and
/// one whose key history no longer holds the pinned key are each refused,
/// counted and kept, and the head countersigned stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_head_that_forked_went_back_or_changed_keys_is_refused() -> anyhow::Result<()> {
    let w = Witnessing::start().await?;
    let admin = w.administrator().await?;
    let newest = || async {
        anyhow::Ok(
            admin
                .query_one("SELECT max(event_id) FROM audit_event", &[])
                .await?
                .get::<_, i64>(0),
        )
    };
    let first = newest().await?;
    assert_eq!(w.once().await, Ok(Some(first)));
    let pinned = w.store.pinned_audit_keys("E06000001").await?;
    let audit_key = public_key_of(&w.f.nodes[0].config.audit_key).map_err(anyhow::Error::msg)?;
    assert_eq!(pinned, vec![audit_key]);
    // Asked again, the same head: nothing refused.
    assert_eq!(w.once().await, Ok(Some(first)));
    // New entries: the head moves on, proved to extend the last.
    w.record("Cole").await?;
    let newest = newest().await?;
    assert!(newest > first);
    assert_eq!(w.once().await, Ok(Some(newest)));
    let countersigned = w.head().await?;
    assert_eq!(countersigned.0, newest);

    // The same entry with another hash.
    admin
        .execute(
            "UPDATE audit_event SET entry_hash = sha256(entry_hash) WHERE event_id = $1",
            &[&newest],
        )
        .await?;
    let refused = w.once().await.unwrap_err();
    assert!(refused.contains("another hash"), "{refused}");
    admin
        .execute(
            "UPDATE audit_event SET entry_hash = $2 WHERE event_id = $1",
            &[&newest, &countersigned.1],
        )
        .await?;

    // The log cut back.
    admin
        .execute("DELETE FROM audit_event WHERE event_id = $1", &[&newest])
        .await?;
    let refused = w.once().await.unwrap_err();
    assert!(refused.contains("behind"), "{refused}");
    // And regrown past the head countersigned, from below it.
    w.record("Dee").await?;
    let refused = w.once().await.unwrap_err();
    assert!(refused.contains("does not extend"), "{refused}");

    // The key history replaced by one the pinned key is not in.
    admin.execute("DELETE FROM audit_key", &[]).await?;
    let stranger = CheckpointSigner::from_pem_file(&w.f.pki.audit_key("stranger")?)
        .map_err(anyhow::Error::msg)?;
    admin
        .execute(
            "INSERT INTO audit_key (key_id, public_key) VALUES ($1, $2)",
            &[&stranger.key_id(), &stranger.key().public_key()],
        )
        .await?;
    let refused = w.once().await.unwrap_err();
    assert!(refused.contains("replaced"), "{refused}");

    assert_eq!(w.refusals().await?, ["forked", "behind", "forked", "keys"]);
    assert_eq!(w.head().await?, countersigned, "nothing refused was kept");
    let metrics = w.metrics.encode();
    for (reason, count) in [("forked", 2), ("behind", 1), ("keys", 1)] {
        assert!(
            metrics.contains(&format!(
                "contactpoint_gateway_audit_witness_refusals_total{{authority=\"E06000001\",outcome=\"{reason}\"}} {count}"
            )),
            "{metrics}"
        );
    }
    Ok(())
}

/// Only a head signed by the newest key of a history holding a pinned key,
/// with a signature that verifies, may be countersigned.
#[tokio::test]
async fn only_a_head_signed_by_the_newest_audit_key_is_accepted() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let old =
        CheckpointSigner::from_pem_file(&pki.audit_key("old")?).map_err(anyhow::Error::msg)?;
    let new =
        CheckpointSigner::from_pem_file(&pki.audit_key("new")?).map_err(anyhow::Error::msg)?;
    let link =
        contactpoint_mtls::key_link_message(&old.key().public_key(), &new.key().public_key());
    let keys = vec![
        pb::AuditKey {
            public_key: old.key().public_key(),
            ..Default::default()
        },
        pb::AuditKey {
            public_key: new.key().public_key(),
            endorsement: old.key().sign(&link).expect("signs"),
            acceptance: new.key().sign(&link).expect("signs"),
        },
    ];
    let head = vec![7; 32];
    let signed_by = |signer: &CheckpointSigner| pb::AuditCheckpoint {
        authority_code: "E06000001".into(),
        last_event_id: 9,
        head_hash: head.clone(),
        signature: signer
            .key()
            .sign(&checkpoint_message(9, &head))
            .expect("signs"),
        key_id: signer.key_id().to_vec(),
        keys: keys.clone(),
        ..Default::default()
    };
    let pinned = [old.key().public_key()];
    assert_eq!(
        check_signed(&signed_by(&new), &pinned),
        Ok(vec![old.key().public_key(), new.key().public_key()])
    );
    // Signed by the retired key.
    let refused = check_signed(&signed_by(&old), &pinned).unwrap_err();
    assert_eq!(refused.0, "keys", "{refused:?}");
    // A signature that does not verify.
    let mut tampered = signed_by(&new);
    tampered.head_hash[0] ^= 1;
    assert_eq!(check_signed(&tampered, &pinned).unwrap_err().0, "signature");
    // A history without its links.
    let mut unlinked = signed_by(&new);
    unlinked.keys[1].endorsement.clear();
    assert_eq!(check_signed(&unlinked, &pinned).unwrap_err().0, "keys");
    Ok(())
}

/// The running gateway countersigns each node's head within its interval
/// (200 ms in tests): the newest entry is witnessed without anyone asking.
#[tokio::test]
async fn every_head_is_witnessed_within_the_interval() -> anyhow::Result<()> {
    let f = Federation::start(&["E06000001"]).await?;
    f.staff(0)
        .await?
        .create_record(sample::child_request(
            "Sam",
            "Ames",
            date(today() - chrono::Duration::days(1000)),
            "TS24 8AH",
        ))
        .await?;
    let node_db = f.node_dbs[0].connect().await?;
    let newest: i64 = node_db
        .query_one("SELECT max(event_id) FROM audit_event", &[])
        .await?
        .get(0);
    let gateway_db = f.gateway_db.connect().await?;
    eventually("the gateway to countersign the newest entry", || async {
        let row = gateway_db
            .query_opt(
                "SELECT last_event_id FROM audit_witness_head WHERE authority_code = 'E06000001'",
                &[],
            )
            .await?;
        Ok(row.filter(|row| row.get::<_, i64>(0) >= newest).map(|_| ()))
    })
    .await?;
    Ok(())
}
