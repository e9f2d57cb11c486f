//! The gateway's own PostgreSQL: the routing index (identifier to
//! responsible authority), outbox cursors and the gateway's audit. The only
//! module of the gateway that speaks SQL; every value is a bind parameter.
use contactpoint_proto::audit::Witness;
use contactpoint_proto::v1 as pb;
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
    /// The task writing a statement ended before it answered.
    #[error("a database write did not finish")]
    Lost,
}

/// A transfer as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub transfer_id: String,
    pub record_id: String,
    pub from_code: String,
    pub to_code: String,
    pub state: String,
    pub cancel_requested: bool,
    pub requested_by: String,
    pub requested_role: String,
    pub attempts: i32,
    pub waiting_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const TRANSFER_COLUMNS: &str =
    "transfer_id, record_id, from_code, to_code, state, cancel_requested,
    requested_by, requested_role, attempts, waiting_reason,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

fn transfer_row(row: &tokio_postgres::Row) -> TransferRow {
    TransferRow {
        transfer_id: row.get(0),
        record_id: row.get(1),
        from_code: row.get(2),
        to_code: row.get(3),
        state: row.get(4),
        cancel_requested: row.get(5),
        requested_by: row.get(6),
        requested_role: row.get(7),
        attempts: row.get(8),
        waiting_reason: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
    }
}

/// A node's announcement that it is responsible for a record.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub event_id: i64,
    pub record_id: String,
    pub authority_code: String,
    /// Transfers behind it; a route is only replaced by one with as many or more.
    pub moves: i32,
}

/// One gateway audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub organisation: String,
    pub unit: Option<String>,
    pub name: String,
    pub role: String,
    pub method: &'static str,
    pub record_ids: Vec<String>,
    pub authorities: Vec<String>,
    pub outcome: &'static str,
    /// The reason the reader stated.
    pub reason: Option<String>,
    /// A search's parameters, as JSON.
    pub query: Option<String>,
}

/// The outcome of a lookup's audit entry written as it was routed, before
/// the node answered; it stays so when the caller was given that
/// authority's record. A lookup that ends otherwise is concluded with its
/// outcome (`cancelled` when the caller went away first).
pub const ROUTED: &str = "routed";

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
                &client
                    .prepare_cached("SELECT authority_code FROM routing_index WHERE record_id = $1")
                    .await?,
                &[&record_id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Keeps a countersigned checkpoint; one already kept is left as it was.
    /// Returns what contradicts the checkpoints kept before, if anything: the
    /// same entry with another hash, or a head behind one already witnessed
    /// (both signs that the node's log was rewritten or cut).
    pub async fn record_witness(&self, witness: &Witness) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let before = client
            .query_one(
                &client.prepare_cached("SELECT (SELECT head_hash FROM audit_witness WHERE authority_code = $1 AND last_event_id = $2),
                        (SELECT max(last_event_id) FROM audit_witness WHERE authority_code = $1)").await?,
                &[&witness.authority_code, &witness.last_event_id],
            )
            .await?;
        let (same_entry, highest): (Option<Vec<u8>>, Option<i64>) = (before.get(0), before.get(1));
        if same_entry.is_some_and(|hash| hash != witness.head_hash) {
            return Ok(Some(format!(
                "entry {} now has another hash than the one the gateway countersigned",
                witness.last_event_id
            )));
        }
        client
            .execute(
                &client.prepare_cached("INSERT INTO audit_witness (authority_code, last_event_id, head_hash, node_signature, gateway_signature)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING").await?,
                &[
                    &witness.authority_code,
                    &witness.last_event_id,
                    &witness.head_hash,
                    &witness.node_signature,
                    &witness.gateway_signature,
                ],
            )
            .await?;
        Ok(highest
            .filter(|highest| *highest > witness.last_event_id)
            .map(|highest| {
                format!(
                    "its newest checkpoint (entry {}) is behind one already countersigned (entry {highest})",
                    witness.last_event_id
                )
            }))
    }

    /// Every countersigned checkpoint of an authority's node, oldest first.
    pub async fn witnesses(&self, authority_code: &str) -> Result<Vec<Witness>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT last_event_id, head_hash, node_signature, gateway_signature,
                        to_char(witnessed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM audit_witness WHERE authority_code = $1 ORDER BY last_event_id",
                    )
                    .await?,
                &[&authority_code],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Witness {
                authority_code: authority_code.to_owned(),
                last_event_id: row.get(0),
                head_hash: row.get(1),
                node_signature: row.get(2),
                gateway_signature: row.get(3),
                witnessed_at: row.get(4),
            })
            .collect())
    }

    /// Flags the caller if, in the last 24 hours, they made at least
    /// `threshold` searches and viewed no record, and were not flagged for
    /// it already in that time. Whether a flag was raised.
    pub async fn flag_searches_without_views(
        &self,
        organisation: &str,
        unit: Option<&str>,
        name: &str,
        threshold: u32,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let raised = client
            .execute(
                // Both counts stop early (at the threshold, at the first
                // view), so the check costs the same however much a user
                // has searched or viewed today.
                &client.prepare_cached("INSERT INTO audit_flag (caller_organisation, caller_unit, caller_name, kind, detail)
                 SELECT $1, $2, $3, 'searches_without_views',
                        s.searches || ' searches and no record viewed in 24 hours'
                 FROM (SELECT count(*) AS searches
                       FROM (SELECT 1 FROM gateway_audit
                             WHERE caller_organisation = $1 AND caller_unit IS NOT DISTINCT FROM $2
                               AND caller_name = $3 AND method = 'SearchRecords' AND outcome = 'ok'
                               AND at > now() - interval '24 hours'
                             LIMIT $4) searched) s
                 WHERE s.searches >= $4
                   AND NOT EXISTS (SELECT 1 FROM gateway_audit v
                                   WHERE v.caller_organisation = $1 AND v.caller_unit IS NOT DISTINCT FROM $2
                                     AND v.caller_name = $3 AND v.method = 'GetRecord'
                                     AND v.outcome IN ('ok', 'routed')
                                     AND v.at > now() - interval '24 hours')
                   AND NOT EXISTS (SELECT 1 FROM audit_flag f
                                   WHERE f.caller_organisation = $1 AND f.caller_unit IS NOT DISTINCT FROM $2
                                     AND f.caller_name = $3 AND f.kind = 'searches_without_views'
                                     AND f.at > now() - interval '24 hours')").await?,
                &[&organisation, &unit, &name, &i64::from(threshold)],
            )
            .await?;
        Ok(raised > 0)
    }

    /// Audit flags after `after`, oldest first.
    pub async fn audit_flags(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<pb::AuditFlag>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT flag_id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                        caller_organisation, COALESCE(caller_unit, ''), caller_name, kind, detail
                 FROM audit_flag WHERE flag_id > $1 ORDER BY flag_id LIMIT $2").await?,
                &[&after, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| pb::AuditFlag {
                flag_id: row.get(0),
                at: row.get(1),
                organisation: row.get(2),
                unit: row.get(3),
                name: row.get(4),
                kind: row.get(5),
                detail: row.get(6),
            })
            .collect())
    }

    /// The pool's size, available connections and maximum.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let status = self.pool.status();
        (status.size, status.available, status.max_size)
    }

    /// How many transfers the journal holds in each state.
    pub async fn transfers_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached("SELECT state, count(*) FROM transfer GROUP BY state")
                    .await?,
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Every authority a transfer has named for a record, from or to.
    pub async fn transfer_authorities(&self, record_id: &str) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT from_code FROM transfer WHERE record_id = $1
                 UNION SELECT to_code FROM transfer WHERE record_id = $1",
                    )
                    .await?,
                &[&record_id],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Routes of records held by an authority other than the one that
    /// minted them, changed after `after` (see migration V6), in the order
    /// they changed: (change, record, authority).
    pub async fn moved_routes(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT changed, record_id, authority_code FROM routing_index
                         WHERE changed > $1 AND authority_code <> left(record_id, 9)
                         ORDER BY changed LIMIT $2",
                    )
                    .await?,
                &[&after, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
    }

    /// Records (or corrects) where a lookup found a record, unless the
    /// index has meanwhile named an authority other than `expected` (the
    /// one the lookup started from): a transfer's newer route is never
    /// overwritten by an answer given before it. Whether it was written.
    pub async fn set_route(
        &self,
        record_id: &str,
        authority_code: &str,
        expected: &str,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let written = client
            .execute(
                &client.prepare_cached("INSERT INTO routing_index (record_id, authority_code) VALUES ($1, $2)
                 ON CONFLICT (record_id) DO UPDATE SET authority_code = EXCLUDED.authority_code, updated_at = now()
                 WHERE routing_index.authority_code = $3").await?,
                &[&record_id, &authority_code, &expected],
            )
            .await?;
        Ok(written > 0)
    }

    /// How far the outbox of `authority_code` has been read.
    pub async fn cursor(&self, authority_code: &str) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT last_event_id FROM feed_cursor WHERE authority_code = $1",
                    )
                    .await?,
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
        events: &[FeedEvent],
    ) -> Result<(), StoreError> {
        let Some(last) = events.iter().map(|event| event.event_id).max() else {
            return Ok(());
        };
        // One statement for the batch. Only a route of as many transfers or
        // more replaces one: events read out of order across nodes never
        // point back to an authority the record has left. A record named
        // twice in the batch (it left and came back) is written once, as its
        // latest event has it, which is what applying them in turn leaves.
        // In record order, so that gateways sharing the database and applying
        // the same batch at once take the rows' locks in the same order.
        let mut latest: std::collections::BTreeMap<&str, &FeedEvent> = Default::default();
        for event in events {
            let kept = latest.entry(&event.record_id).or_insert(event);
            if (event.moves, event.event_id) >= (kept.moves, kept.event_id) {
                *kept = event;
            }
        }
        let (mut records, mut authorities, mut moves) = (vec![], vec![], vec![]);
        for event in latest.values() {
            records.push(event.record_id.as_str());
            authorities.push(event.authority_code.as_str());
            moves.push(event.moves);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO routing_index (record_id, authority_code, moves)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int[])
                 ON CONFLICT (record_id) DO UPDATE
                     SET authority_code = EXCLUDED.authority_code, moves = EXCLUDED.moves, updated_at = now()
                     WHERE routing_index.moves <= EXCLUDED.moves",
            )
            .await?,
            &[&records, &authorities, &moves],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO feed_cursor (authority_code, last_event_id) VALUES ($1, $2)
             ON CONFLICT (authority_code) DO UPDATE
                 SET last_event_id = GREATEST(feed_cursor.last_event_id, EXCLUDED.last_event_id)",
            )
            .await?,
            &[&authority_code, &last],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends an entry; returns its id.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &client.prepare_cached("INSERT INTO gateway_audit (caller_organisation, caller_unit, caller_name, role, method,
                     record_ids, authorities, outcome, reason, query)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING event_id").await?,
                &[
                    &entry.organisation,
                    &entry.unit,
                    &entry.name,
                    &entry.role,
                    &entry.method,
                    &entry.record_ids,
                    &entry.authorities,
                    &entry.outcome,
                    &entry.reason,
                    &entry.query,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Records how a lookup audited as [`ROUTED`] ended, when not with the
    /// answer of the authority it was routed to; an entry concluded already
    /// is left as it is.
    pub async fn conclude_audit(
        &self,
        event_id: i64,
        outcome: &str,
        authorities: &[String],
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE gateway_audit SET outcome = $2, authorities = $3
                         WHERE event_id = $1 AND outcome = 'routed'",
                    )
                    .await?,
                &[&event_id, &outcome, &authorities],
            )
            .await?;
        Ok(())
    }

    /// Journals a new transfer. `Ok(Err(open))` when the record is already in
    /// an open transfer, which is returned.
    pub async fn insert_transfer(
        &self,
        record_id: &str,
        from_code: &str,
        to_code: &str,
        requested_by: &str,
        requested_role: &str,
    ) -> Result<Result<TransferRow, TransferRow>, StoreError> {
        let client = self.pool.get().await?;
        let inserted = client
            .query_one(
                &format!(
                    "INSERT INTO transfer (record_id, from_code, to_code, requested_by, requested_role)
                     VALUES ($1, $2, $3, $4, $5) RETURNING {TRANSFER_COLUMNS}"
                ),
                &[&record_id, &from_code, &to_code, &requested_by, &requested_role],
            )
            .await;
        match inserted {
            Ok(row) => Ok(Ok(transfer_row(&row))),
            Err(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                let open = self.open_transfer_for(record_id).await?;
                open.map(Err).ok_or(StoreError::Query(error))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub async fn transfer(&self, transfer_id: &str) -> Result<Option<TransferRow>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {TRANSFER_COLUMNS} FROM transfer WHERE transfer_id = $1"),
                &[&transfer_id],
            )
            .await?;
        Ok(row.as_ref().map(transfer_row))
    }

    /// The transfer a record is in, if any.
    pub async fn open_transfer_for(
        &self,
        record_id: &str,
    ) -> Result<Option<TransferRow>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {TRANSFER_COLUMNS} FROM transfer
                     WHERE record_id = $1 AND state NOT IN ('completed', 'cancelled')"
                ),
                &[&record_id],
            )
            .await?;
        Ok(row.as_ref().map(transfer_row))
    }

    /// Every transfer not yet completed or cancelled, oldest first.
    pub async fn open_transfers(&self) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT transfer_id FROM transfer WHERE state NOT IN ('completed', 'cancelled') ORDER BY created_at").await?,
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Transfers into (`incoming`) and out of an authority, newest first.
    pub async fn transfers_of(
        &self,
        authority_code: &str,
    ) -> Result<(Vec<TransferRow>, Vec<TransferRow>), StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {TRANSFER_COLUMNS} FROM transfer
                     WHERE to_code = $1 OR from_code = $1 ORDER BY created_at DESC, transfer_id DESC LIMIT 1000"
                ),
                &[&authority_code],
            )
            .await?;
        let rows: Vec<TransferRow> = rows.iter().map(transfer_row).collect();
        Ok(rows
            .into_iter()
            .partition(|row| row.to_code == authority_code))
    }

    /// Moves a transfer from one state to the next, journals the step and,
    /// with `route`, points the routing index at the new authority: all in
    /// one transaction. `false` if another worker already moved it on.
    pub async fn advance_transfer(
        &self,
        transfer: &TransferRow,
        to_state: &str,
        route: Option<i32>,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let moved = tx
            .execute(
                &tx.prepare_cached(
                    "UPDATE transfer SET state = $3, waiting_reason = NULL, updated_at = now()
                 WHERE transfer_id = $1 AND state = $2",
                )
                .await?,
                &[&transfer.transfer_id, &transfer.state, &to_state],
            )
            .await?;
        if moved == 0 {
            return Ok(false);
        }
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO transfer_step (transfer_id, from_state, to_state) VALUES ($1, $2, $3)",
            )
            .await?,
            &[&transfer.transfer_id, &transfer.state, &to_state],
        )
        .await?;
        if let Some(moves) = route {
            tx.execute(
                &tx.prepare_cached("INSERT INTO routing_index (record_id, authority_code, moves) VALUES ($1, $2, $3)
                 ON CONFLICT (record_id) DO UPDATE
                     SET authority_code = EXCLUDED.authority_code, moves = EXCLUDED.moves, updated_at = now()
                     WHERE routing_index.moves <= EXCLUDED.moves").await?,
                &[&transfer.record_id, &transfer.to_code, &moves],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records why an attempt did not move the transfer on.
    pub async fn note_waiting(&self, transfer_id: &str, reason: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client.prepare_cached("UPDATE transfer SET attempts = attempts + 1, waiting_reason = $2, updated_at = now()
                 WHERE transfer_id = $1").await?,
                &[&transfer_id, &reason],
            )
            .await?;
        Ok(())
    }

    /// Asks for a transfer to be cancelled; `false` once it is past the cutover.
    pub async fn request_cancel(&self, transfer_id: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let updated = client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE transfer SET cancel_requested = true, updated_at = now()
                 WHERE transfer_id = $1 AND state IN ('requested', 'staged', 'cancelled')",
                    )
                    .await?,
                &[&transfer_id],
            )
            .await?;
        Ok(updated > 0)
    }
}
