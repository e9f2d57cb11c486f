//! The SQL of a transfer's steps at this node, each one transaction under
//! the record's row lock.

use deadpool_postgres::Transaction;
use tokio_postgres::IsolationLevel;

use crate::audit::insert_audit;
use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::read::load;
use crate::records::Placement;
use crate::shielding::shield_duplicates;
use crate::store::{absent, forwarding, record_status, AuditEvent, Result, Store};
use crate::transfers::Snapshot;

impl Store {
    /// The record as it would travel in a transfer: live or handed over,
    /// with the transfer that handed it over, if one has.
    pub async fn export(&self, id: &RecordId) -> Result<(Snapshot, Option<String>)> {
        let mut client = self.pool.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let status = record_status(&tx, id).await?;
        let exported = match status {
            Some((status, transfer, _)) if status == "live" || status == "handed_over" => {
                let handed_over_by = transfer.filter(|_| status == "handed_over");
                (Snapshot::from(&load(&tx, id).await?), handed_over_by)
            }
            _ => return Err(absent(&tx, id).await?),
        };
        tx.commit().await?;
        Ok(exported)
    }

    /// Transfer in, first step: a staged copy, served to no one. Repeating it
    /// replaces the staged copy; once the transfer has activated the record
    /// it changes nothing.
    pub async fn stage_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        snapshot: &Snapshot,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        self.transfer_in(transfer_id, id, snapshot, audit, "arriving")
            .await
            .map(|_| ())
    }

    /// Transfer in, last step: the record goes live here with its final
    /// content, any forwarding this node kept for it (a record coming back)
    /// is removed, and the routing feed announces it. Idempotent. Returns the
    /// transfers the record has now been through.
    pub async fn activate_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        snapshot: &Snapshot,
        audit: &AuditEvent<'_>,
    ) -> Result<u32> {
        self.transfer_in(transfer_id, id, snapshot, audit, "live")
            .await
    }

    /// Writes a transferred record at `status` ("arriving" or "live"),
    /// replacing a copy this transfer staged; a record already live for this
    /// transfer is left as it is.
    async fn transfer_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        snapshot: &Snapshot,
        audit: &AuditEvent<'_>,
        status: &'static str,
    ) -> Result<u32> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        match locked_status(&tx, id).await? {
            Some((current, transfer))
                if transfer.as_deref() == Some(transfer_id) && current == "live" =>
            {
                return current_moves(&tx, id).await;
            }
            Some((current, transfer))
                if transfer.as_deref() == Some(transfer_id) && current == "arriving" =>
            {
                tx.execute(
                    &tx.prepare_cached("DELETE FROM child_record WHERE id = $1")
                        .await?,
                    &[&id.as_str()],
                )
                .await?;
            }
            Some(_) => return Err(conflict(id, transfer_id)),
            None => {}
        }
        let placed = Placement {
            status,
            transfer_id: Some(transfer_id),
            version: snapshot.version,
            moves: snapshot.moves + 1,
            shield_reason: snapshot.shield_reason.as_deref(),
            archived_on: snapshot.archived_on,
        };
        self.insert_record(
            &tx,
            id,
            &snapshot.details,
            &snapshot.entries,
            &snapshot.provenance,
            &placed,
        )
        .await?;
        if status == "live" {
            tx.execute(
                &tx.prepare_cached("DELETE FROM record_forwarding WHERE record_id = $1")
                    .await?,
                &[&id.as_str()],
            )
            .await?;
            self.announce(&tx, id, placed.moves).await?;
            shield_duplicates(&tx, id, audit).await?;
        }
        insert_audit(&tx, audit, id).await?;
        tx.commit().await?;
        Ok(placed.moves)
    }

    /// Transfer in, cancelled before hand-over: the staged copy goes. Idempotent.
    pub async fn cancel_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute(
                &tx.prepare_cached("DELETE FROM child_record WHERE id = $1 AND status = 'arriving' AND transfer_id = $2").await?,
                &[&id.as_str(), &transfer_id],
            )
            .await?;
        if deleted > 0 {
            insert_audit(&tx, audit, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Transfer out, the cutover: from this commit the node is no longer
    /// responsible. It answers with where the record went, refuses changes,
    /// and still shows the record in searches (naming the new authority)
    /// until it is released. Returns the final content. Idempotent: a repeat
    /// names the same destination and is audited too.
    pub async fn hand_over(
        &self,
        transfer_id: &str,
        id: &RecordId,
        to: &ResponsibleAuthority,
        audit: &AuditEvent<'_>,
    ) -> Result<Snapshot> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let aborted = tx
            .query_opt(
                &tx.prepare_cached("SELECT 1 FROM transfer_out_abort WHERE transfer_id = $1")
                    .await?,
                &[&transfer_id],
            )
            .await?;
        if aborted.is_some() {
            return Err(NodeError::TransferConflict(format!(
                "transfer {transfer_id} was cancelled here before its cutover"
            )));
        }
        match locked_status(&tx, id).await? {
            Some((status, _)) if status == "live" => {
                tx.execute(
                    &tx.prepare_cached("UPDATE child_record SET status = 'handed_over', transfer_id = $2,
                         responsible_authority_code = $3, responsible_authority_name = $4, updated_at = now()
                     WHERE id = $1").await?,
                    &[&id.as_str(), &transfer_id, &to.code, &to.name],
                )
                .await?;
                tx.execute(
                    &tx.prepare_cached("INSERT INTO record_forwarding (record_id, moved_to_code) VALUES ($1, $2)
                     ON CONFLICT (record_id) DO UPDATE SET moved_to_code = EXCLUDED.moved_to_code, moved_at = now()").await?,
                    &[&id.as_str(), &to.code],
                )
                .await?;
                insert_audit(&tx, audit, id).await?;
            }
            Some((status, transfer))
                if transfer.as_deref() == Some(transfer_id) && status == "handed_over" =>
            {
                // A repeat (the gateway taking the step again): only to the
                // authority it was handed to, and audited like the first.
                let handed_to: String = tx
                    .query_one(
                        &tx.prepare_cached(
                            "SELECT responsible_authority_code FROM child_record WHERE id = $1",
                        )
                        .await?,
                        &[&id.as_str()],
                    )
                    .await?
                    .get(0);
                if handed_to != to.code {
                    return Err(conflict(id, transfer_id));
                }
                insert_audit(&tx, audit, id).await?;
            }
            Some(_) => return Err(conflict(id, transfer_id)),
            None => return Err(absent(&tx, id).await?),
        }
        let snapshot = Snapshot::from(&load(&tx, id).await?);
        tx.commit().await?;
        Ok(snapshot)
    }

    /// Transfer out, cancelled before its cutover: records that `transfer_id`
    /// may never hand the record over. Refused once it has. Idempotent.
    pub async fn abort_out(
        &self,
        transfer_id: &str,
        id: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some((status, transfer)) = locked_status(&tx, id).await? {
            if status == "handed_over" && transfer.as_deref() == Some(transfer_id) {
                return Err(NodeError::TransferConflict(format!(
                    "record {id} was already handed over by transfer {transfer_id}; the cutover has happened"
                )));
            }
        }
        let inserted = tx
            .execute(
                &tx.prepare_cached("INSERT INTO transfer_out_abort (transfer_id, record_id) VALUES ($1, $2) ON CONFLICT DO NOTHING").await?,
                &[&transfer_id, &id.as_str()],
            )
            .await?;
        if inserted > 0 {
            insert_audit(&tx, audit, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Transfer out, last step: the handed-over copy is deleted; the
    /// forwarding and this node's audit of the record stay. Idempotent.
    pub async fn release(
        &self,
        transfer_id: &str,
        id: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        match locked_status(&tx, id).await? {
            Some((status, transfer))
                if transfer.as_deref() == Some(transfer_id) && status == "handed_over" =>
            {
                tx.execute(
                    &tx.prepare_cached("DELETE FROM child_record WHERE id = $1")
                        .await?,
                    &[&id.as_str()],
                )
                .await?;
                insert_audit(&tx, audit, id).await?;
            }
            Some(_) => return Err(conflict(id, transfer_id)),
            None if forwarding(&tx, id).await?.is_some() => {}
            None => return Err(NodeError::RecordNotFound(id.to_string())),
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Status and transfer of a record's row, locking it.
async fn locked_status(
    tx: &Transaction<'_>,
    id: &RecordId,
) -> Result<Option<(String, Option<String>)>> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT status, transfer_id FROM child_record WHERE id = $1 FOR UPDATE",
            )
            .await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// Transfers a record held here has been through.
async fn current_moves(tx: &Transaction<'_>, id: &RecordId) -> Result<u32> {
    let row = tx
        .query_one(
            &tx.prepare_cached("SELECT moves FROM child_record WHERE id = $1")
                .await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or_default())
}

fn conflict(id: &RecordId, transfer_id: &str) -> NodeError {
    NodeError::TransferConflict(format!(
        "record {id} is not in the state transfer {transfer_id} expects here"
    ))
}
