//! The transfer journal's SQL: a row per transfer, a row per step it took
//! and, at activation in the same transaction, the routing index's new
//! route. A step is journaled only if the row is still in the state the
//! worker read, so several gateways may drive one transfer. Every value is a
//! bind parameter; the only text spliced into a statement is the fixed
//! `TRANSFER_COLUMNS`.
use crate::store::{Store, StoreError};

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
    /// A merge across authorities: the survivor, at `to_code`, and why.
    pub merge: Option<Merge>,
    /// Once the merge was tried: "merged", or why not.
    pub merge_outcome: Option<String>,
    /// Who of the sending authority's management team consented
    /// ("organisation/unit/name"), and when; `None` while it awaits consent.
    pub consented_by: Option<String>,
    pub consented_at: Option<String>,
}

/// What a transfer merges its record into, at its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub into: String,
    pub reason: String,
}

const TRANSFER_COLUMNS: &str =
    "transfer_id, record_id, from_code, to_code, state, cancel_requested,
    requested_by, requested_role, attempts, waiting_reason,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    merge_into, merge_reason, merge_outcome, consented_by,
    to_char(consented_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

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
        merge: row.get::<_, Option<String>>(12).map(|into| Merge {
            into,
            reason: row.get::<_, Option<String>>(13).unwrap_or_default(),
        }),
        merge_outcome: row.get(14),
        consented_by: row.get(15),
        consented_at: row.get(16),
    }
}

impl Store {
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

    /// Journals a new transfer: `requested` when the sending authority's
    /// management consented in asking (`consented_by`), otherwise
    /// `awaiting_consent`. `Ok(Err(open))` when the record is already in an
    /// open transfer, which is returned.
    pub async fn insert_transfer(
        &self,
        record_id: &str,
        from_code: &str,
        to_code: &str,
        requested: (&str, &str),
        consented_by: Option<&str>,
        merge: Option<&Merge>,
    ) -> Result<Result<TransferRow, TransferRow>, StoreError> {
        let (requested_by, requested_role) = requested;
        let client = self.pool.get().await?;
        let inserted = client
            .query_one(
                &format!(
                    "INSERT INTO transfer (record_id, from_code, to_code, requested_by, requested_role,
                                           merge_into, merge_reason, consented_by, consented_at, state)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text,
                             CASE WHEN $8::text IS NULL THEN NULL ELSE now() END,
                             CASE WHEN $8::text IS NULL THEN 'awaiting_consent' ELSE 'requested' END)
                     RETURNING {TRANSFER_COLUMNS}"
                ),
                &[
                    &record_id,
                    &from_code,
                    &to_code,
                    &requested_by,
                    &requested_role,
                    &merge.map(|merge| merge.into.as_str()),
                    &merge.map(|merge| merge.reason.as_str()),
                    &consented_by,
                ],
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

    /// The sending authority's consent to a transfer awaiting it: moves it
    /// to `requested` and journals the step. `false` if it was not awaiting
    /// consent (consented already, or cancelled).
    pub async fn consent_transfer(
        &self,
        transfer_id: &str,
        consented_by: &str,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let consented = tx
            .execute(
                &tx.prepare_cached(
                    "UPDATE transfer SET state = 'requested', consented_by = $2, consented_at = now(),
                                         waiting_reason = NULL, updated_at = now()
                     WHERE transfer_id = $1 AND state = 'awaiting_consent' AND NOT cancel_requested",
                )
                .await?,
                &[&transfer_id, &consented_by],
            )
            .await?;
        if consented == 0 {
            return Ok(false);
        }
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO transfer_step (transfer_id, from_state, to_state)
                 VALUES ($1, 'awaiting_consent', 'requested')",
            )
            .await?,
            &[&transfer_id],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sends a transfer not yet at its cutover back to `awaiting_consent`,
    /// its consent cleared, saying why, and journals the step. `false` if it
    /// had moved on.
    pub async fn withdraw_consent(
        &self,
        transfer: &TransferRow,
        why: &str,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let withdrawn = tx
            .execute(
                &tx.prepare_cached(
                    "UPDATE transfer SET state = 'awaiting_consent', consented_by = NULL,
                                         consented_at = NULL, waiting_reason = $3, updated_at = now()
                     WHERE transfer_id = $1 AND state = $2 AND state IN ('requested', 'staged')",
                )
                .await?,
                &[&transfer.transfer_id, &transfer.state, &why],
            )
            .await?;
        if withdrawn == 0 {
            return Ok(false);
        }
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO transfer_step (transfer_id, from_state, to_state)
                 VALUES ($1, $2, 'awaiting_consent')",
            )
            .await?,
            &[&transfer.transfer_id, &transfer.state],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records how a transfer's merge went: "merged", or why not.
    pub async fn note_merge_outcome(
        &self,
        transfer_id: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE transfer SET merge_outcome = $2, updated_at = now() WHERE transfer_id = $1",
                    )
                    .await?,
                &[&transfer_id, &outcome],
            )
            .await?;
        Ok(())
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
                 WHERE transfer_id = $1 AND state IN ('awaiting_consent', 'requested', 'staged', 'cancelled')",
                    )
                    .await?,
                &[&transfer_id],
            )
            .await?;
        Ok(updated > 0)
    }
}
