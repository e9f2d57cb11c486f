//! The audit cannot be rewritten by the application (issue 19, item 3): a
//! test node serves as a database role that does not own the schema (as a
//! deployment's does, with `schema_owner_url`), and that role may read and
//! append to the audit but not change, delete, truncate or drop it, nor turn
//! off the triggers that refuse those to everyone else. The owner is refused
//! by the triggers while they are on.
use contactpoint_node::audit::{verify, CheckpointSigner};
use contactpoint_tests::*;
use tokio_postgres::error::SqlState;

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn audit_entries(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one("SELECT count(*) FROM audit_event", &[])
        .await?
        .get(0))
}

/// Every way of changing the audit once written.
const CHANGES: [&str; 9] = [
    "UPDATE audit_event SET caller_name = 'Someone else'",
    "DELETE FROM audit_event",
    "TRUNCATE audit_event",
    "UPDATE audit_checkpoint SET signature = '\\x00'",
    "DELETE FROM audit_checkpoint",
    "TRUNCATE audit_checkpoint",
    "UPDATE audit_key SET public_key = '\\x00'",
    "DELETE FROM audit_key",
    "TRUNCATE audit_key",
];

#[tokio::test]
async fn the_nodes_database_role_can_only_append_to_the_audit() -> anyhow::Result<()> {
    let mut f = Fixture::start().await?;
    let record = f
        .client
        .create_record(sample::child_request(
            "Rae",
            "Dunn",
            date(today() - chrono::Duration::days(700)),
            "TS24 8AH",
        ))
        .await?
        .into_inner();
    let read = pb::GetRecordRequest {
        id: record.id.clone(),
        reason: "case review".into(),
        ..Default::default()
    };
    f.client.get_record(read.clone()).await?;
    let owner = f.db.connect().await?;
    let signer =
        CheckpointSigner::from_pem_file(&f.node.config.audit_key).map_err(anyhow::Error::msg)?;
    assert!(
        signer.checkpoint(&owner).await?.is_some(),
        "a checkpoint to protect"
    );

    let app = connect(&f.db.app_url).await?;
    let role: String = app
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0);
    assert_eq!(role, APPLICATION_ROLE, "the node's own role, not the owner");
    let before = audit_entries(&app).await?;
    assert!(before >= 2, "the node's role reads the audit");
    let owners_only = [
        "ALTER TABLE audit_event DISABLE TRIGGER USER",
        "DROP TRIGGER audit_event_append_only ON audit_event",
        "DROP TABLE audit_checkpoint",
        "DROP TABLE audit_key",
    ];
    for statement in CHANGES.iter().chain(&owners_only) {
        let error = app.batch_execute(statement).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{statement}: {error:?}"
        );
    }

    // The owner too, while the triggers are on.
    for statement in CHANGES {
        let error = owner.batch_execute(statement).await.unwrap_err();
        let message = error.as_db_error().map(|e| e.message().to_owned());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("the audit is append-only")),
            "{statement}: {error:?}"
        );
    }

    // Nothing changed; the chain verifies; the node serves and appends on.
    assert_eq!(audit_entries(&owner).await?, before);
    let public_key = contactpoint_node::audit::public_key_of(&f.node.config.audit_key)
        .map_err(anyhow::Error::msg)?;
    let report = verify(&owner, &public_key).await?;
    assert!(
        report.is_intact() && report.checkpoints == 1,
        "{:?}",
        report.problems
    );
    f.client.get_record(read).await?;
    assert_eq!(audit_entries(&app).await?, before + 1);
    Ok(())
}
