//! The gateway's own PostgreSQL: the routing index (identifier to
//! responsible authority), outbox cursors and the gateway's audit. The only
//! module of the gateway that speaks SQL; every value is a bind parameter.
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("database pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("database: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] refinery::Error),
}

/// One gateway audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub organisation: &'a str,
    pub unit: Option<&'a str>,
    pub name: &'a str,
    pub role: String,
    pub method: &'a str,
    pub record_ids: Vec<String>,
    pub authorities: Vec<String>,
    pub outcome: &'a str,
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    pub async fn open(database_url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = database_url.parse().map_err(StoreError::Url)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager).max_size(pool_size).build()?;
        let mut client = pool.get().await?;
        embedded::migrations::runner()
            .run_async(&mut **client)
            .await?;
        Ok(Self { pool })
    }

    pub async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    /// The authority the index says is responsible for `record_id`.
    pub async fn route(&self, record_id: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT authority_code FROM routing_index WHERE record_id = $1",
                &[&record_id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Records (or corrects) where a record is.
    pub async fn set_route(&self, record_id: &str, authority_code: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO routing_index (record_id, authority_code) VALUES ($1, $2)
                 ON CONFLICT (record_id) DO UPDATE SET authority_code = EXCLUDED.authority_code, updated_at = now()",
                &[&record_id, &authority_code],
            )
            .await?;
        Ok(())
    }

    /// How far the outbox of `authority_code` has been read.
    pub async fn cursor(&self, authority_code: &str) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT last_event_id FROM feed_cursor WHERE authority_code = $1",
                &[&authority_code],
            )
            .await?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// Applies a batch of outbox events and moves the cursor past them, in
    /// one transaction: a crash leaves either both or neither, and applying a
    /// batch twice changes nothing more.
    pub async fn apply_feed(
        &self,
        authority_code: &str,
        events: &[(i64, String, String)],
    ) -> Result<(), StoreError> {
        let Some(last) = events.iter().map(|(id, _, _)| *id).max() else {
            return Ok(());
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for (_, record_id, code) in events {
            tx.execute(
                "INSERT INTO routing_index (record_id, authority_code) VALUES ($1, $2)
                 ON CONFLICT (record_id) DO UPDATE SET authority_code = EXCLUDED.authority_code, updated_at = now()",
                &[record_id, code],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO feed_cursor (authority_code, last_event_id) VALUES ($1, $2)
             ON CONFLICT (authority_code) DO UPDATE
                 SET last_event_id = GREATEST(feed_cursor.last_event_id, EXCLUDED.last_event_id)",
            &[&authority_code, &last],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO gateway_audit (caller_organisation, caller_unit, caller_name, role, method,
                     record_ids, authorities, outcome)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &entry.organisation,
                    &entry.unit,
                    &entry.name,
                    &entry.role,
                    &entry.method,
                    &entry.record_ids,
                    &entry.authorities,
                    &entry.outcome,
                ],
            )
            .await?;
        Ok(())
    }
}
