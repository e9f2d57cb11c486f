//! The gateway's own PostgreSQL: the [`Store`] handle (its pool, its
//! migrations, whether it answers) and [`StoreError`]. It holds no child's
//! details: the routing index (identifier to responsible authority), outbox
//! cursors, the blind index's keyed hashes, the journal of duplicate
//! notices, the transfer journal, the gateway's audit and the witnessed
//! checkpoints. Each concern keeps its own statements beside it, as an
//! `impl Store` block in its module: `lookup::store` (the routing index),
//! `feed::store` (outbox cursors), `blind_index::store` (the hashes),
//! `duplicates::store` (the notices), `transfers::store` (the journal),
//! `audit::store` (the audit and its flags), `witness::store` (countersigned
//! checkpoints).
//!
//! Invariants for all of them: only these store modules speak SQL; every
//! value is a bind parameter; what must land whole is one transaction.
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use crate::audit::{AuditEntry, ROUTED};
pub use crate::feed::FeedEvent;
pub use crate::transfers::TransferRow;

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
    /// The task writing a statement ended before it answered.
    #[error("a database write did not finish")]
    Lost,
}

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
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

    /// The pool's size, available connections and maximum.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let status = self.pool.status();
        (status.size, status.available, status.max_size)
    }
}
