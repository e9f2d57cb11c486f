//! The authority's PostgreSQL: the [`Store`] handle (its pool, its
//! migrations, whether it answers) and the few row helpers every concern's
//! SQL shares. Each concern keeps its own statements beside it, as an
//! `impl Store` block in its module (`records::store`, `search::store`,
//! `transfers::store`, `shielding`, `retention`, `consent`, `contributions`,
//! `audit`, `notifications`, `routing_feed`).
//!
//! Invariants for all of them: every write is one transaction, and reads back
//! the record it changed inside that transaction, so a caller never sees a
//! half-written record. Whole-record reads run in a read-only REPEATABLE READ
//! transaction so the paragraphs they gather belong to one moment. All SQL is
//! parameterised; the only text spliced into a statement is a table or column
//! name chosen from a fixed list (`records::entries::entry_columns`).
use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::types::Json;
use tokio_postgres::{NoTls, Row};

use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::*;
use crate::wire::RecordFacts;

pub use crate::audit::subject_access::RecordAccess;
pub use crate::audit::AuditEvent;
pub use crate::notifications::{NotificationRow, Notify};
pub use crate::records::Holding;
pub use crate::retention::ArchiveReport;
pub use crate::routing_feed::RoutingEvent;

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("migrations failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("cannot connect as the schema's owner (schema_owner_url): {0}")]
    Owner(tokio_postgres::Error),
    #[error("cannot grant the application role its rights: {0}")]
    Grant(tokio_postgres::Error),
}

/// The node's database.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) authority: ResponsibleAuthority,
    /// The federation's matching keys, when this node publishes blocking keys.
    pub(crate) matching: Option<std::sync::Arc<contactpoint_matching::blocking::MatchingKeys>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("authority", &self.authority.code)
            .finish_non_exhaustive()
    }
}

/// How the pool treats a database that is slow or busy.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Most pooled connections.
    pub size: usize,
    /// How long a call waits for a free connection before it is refused;
    /// none: as long as the call lasts.
    pub wait: Option<Duration>,
    /// The longest any statement on a pooled connection runs before
    /// PostgreSQL cancels it (`statement_timeout`); none: the server's own.
    pub statement_timeout: Option<Duration>,
}

impl PoolSettings {
    /// `size` connections, waited for as long as a call lasts, with the
    /// server's statement timeout.
    pub fn unbounded(size: usize) -> Self {
        Self {
            size,
            wait: None,
            statement_timeout: None,
        }
    }
}

/// Store methods fail with a [`NodeError`]; the second parameter lets the
/// wire decoders beside them say `Result<T, Invalid>`.
pub(crate) type Result<T, E = NodeError> = std::result::Result<T, E>;

impl Store {
    /// Connects a pool and brings the schema up to the latest migration,
    /// as the pool's own role (which then owns the schema).
    pub async fn open(
        database_url: &str,
        pool_size: usize,
        authority: ResponsibleAuthority,
    ) -> std::result::Result<Self, StoreError> {
        Self::open_as(
            database_url,
            None,
            PoolSettings::unbounded(pool_size),
            authority,
        )
        .await
    }

    /// Connects a pool and brings the schema up to the latest migration.
    /// With `schema_owner_url`, the migrations run as that role, which then
    /// grants the pool's role only what the node needs (migration V17): the
    /// audit it may read and append to, never change. Without one, the
    /// pool's role owns the schema, and the audit is append-only by trigger
    /// alone, which an owner can turn off: the node warns.
    pub async fn open_as(
        database_url: &str,
        schema_owner_url: Option<&str>,
        pool: PoolSettings,
        authority: ResponsibleAuthority,
    ) -> std::result::Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = database_url.parse().map_err(StoreError::Url)?;
        if let Some(timeout) = pool.statement_timeout {
            // Every pooled session starts with it; the URL's own options stay.
            let options = format!(
                "{} -c statement_timeout={}",
                config.get_options().unwrap_or_default(),
                timeout.as_millis()
            );
            config.options(options.trim_start());
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool.size)
            .wait_timeout(pool.wait)
            .runtime(Runtime::Tokio1)
            .build()?;
        let client = pool.get().await?;
        let application_role: String = client
            .query_one("SELECT current_user::text", &[])
            .await
            .map_err(StoreError::Grant)?
            .get(0);
        match schema_owner_url {
            Some(owner_url) => {
                let (mut owner, connection) = tokio_postgres::connect(owner_url, NoTls)
                    .await
                    .map_err(StoreError::Owner)?;
                let connection = tokio::spawn(connection);
                migrate(&mut owner).await?;
                let owner_role: String = owner
                    .query_one("SELECT current_user::text", &[])
                    .await
                    .map_err(StoreError::Grant)?
                    .get(0);
                if owner_role == application_role {
                    tracing::warn!("schema_owner_url names the same role as database_url: the audit is append-only by trigger alone");
                } else {
                    owner
                        .execute(
                            "SELECT contactpoint_grant_application($1)",
                            &[&application_role],
                        )
                        .await
                        .map_err(StoreError::Grant)?;
                }
                drop(owner);
                connection.abort();
            }
            None => {
                let mut client = client;
                migrate(&mut client).await?;
                tracing::warn!("no schema_owner_url: this node's database role owns the audit tables, so the audit is append-only by trigger alone, which an owner can turn off");
            }
        }
        Ok(Self {
            pool,
            authority,
            matching: None,
        })
    }

    /// The pool's size, available connections and maximum.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let status = self.pool.status();
        (status.size, status.available, status.max_size)
    }

    /// Whether the database answers, for the health service.
    pub async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    pub fn authority(&self) -> &ResponsibleAuthority {
        &self.authority
    }
}

/// Lifts the pool's statement timeout for the rest of `tx`: for maintenance
/// (archiving a node's records, republishing their keys), whose statements
/// touch every record and must finish, not for answering a call.
pub(crate) async fn without_statement_timeout(tx: &Transaction<'_>) -> Result<()> {
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    Ok(())
}

/// Brings the schema up to the latest migration.
async fn migrate(client: &mut tokio_postgres::Client) -> std::result::Result<(), StoreError> {
    let report = embedded::migrations::runner().run_async(client).await?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    Ok(())
}

/// Locks a live record's row for the rest of the transaction; returns what
/// entry rules need and the version. A record handed over, staged or never
/// here is refused, saying where it went if known.
pub(crate) async fn lock_record(tx: &Transaction<'_>, id: &RecordId) -> Result<(RecordFacts, u64)> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT category, date_of_birth, version, status, responsible_authority_code
             FROM child_record WHERE id = $1 FOR UPDATE",
            )
            .await?,
            &[&id.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Err(absent(tx, id).await?);
    };
    match row.get::<_, &str>(3) {
        "live" => {}
        "arriving" => return Err(NodeError::RecordNotFound(id.to_string())),
        _ => {
            return Err(NodeError::Moved {
                id: id.to_string(),
                to: row.get(4),
            })
        }
    }
    let facts = RecordFacts {
        category: from_db(PersonCategory::from_db, row.get(0))?,
        date_of_birth: row.get(1),
    };
    Ok((facts, row.get::<_, i64>(2) as u64))
}

/// Status, transfer and responsible authority of a record's row, if any.
pub(crate) async fn record_status(
    tx: &Transaction<'_>,
    id: &RecordId,
) -> Result<Option<(String, Option<String>, String)>> {
    let row = tx
        .query_opt(
            &tx.prepare_cached("SELECT status, transfer_id, responsible_authority_code FROM child_record WHERE id = $1").await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
}

/// Where a record that is no longer here went: the authority, and the
/// record it was merged into if the authority merged it.
pub(crate) async fn forwarding(
    tx: &Transaction<'_>,
    id: &RecordId,
) -> Result<Option<(String, Option<String>)>> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT moved_to_code, merged_into FROM record_forwarding WHERE record_id = $1",
            )
            .await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// The error for a record that is not here to act on: moved, or unknown.
pub(crate) async fn absent(tx: &Transaction<'_>, id: &RecordId) -> Result<NodeError> {
    Ok(match forwarding(tx, id).await? {
        Some((_, Some(into))) => NodeError::Merged {
            id: id.to_string(),
            into,
        },
        Some((to, None)) => NodeError::Moved {
            id: id.to_string(),
            to,
        },
        None => NodeError::RecordNotFound(id.to_string()),
    })
}

pub(crate) async fn bump_version(tx: &Transaction<'_>, id: &RecordId) -> Result<()> {
    tx.execute(
        &tx.prepare_cached(
            "UPDATE child_record SET version = version + 1, updated_at = now() WHERE id = $1",
        )
        .await?,
        &[&id.as_str()],
    )
    .await?;
    Ok(())
}

/// Reads a JSONB column; the schema holds only what the model wrote.
pub(crate) fn json<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    row: &Row,
    column: &str,
) -> Result<T> {
    row.try_get::<_, Json<T>>(column)
        .map(|Json(value)| value)
        .map_err(|_| NodeError::Corrupt(format!("column {column} does not hold the expected JSON")))
}

pub(crate) fn from_db<T>(parse: fn(&str) -> Option<T>, text: &str) -> Result<T> {
    parse(text).ok_or_else(|| NodeError::Corrupt(format!("unknown stored value {text:?}")))
}
