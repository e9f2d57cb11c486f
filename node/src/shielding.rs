//! Shielding (RULES.md, Reading): an authority decides, record by record,
//! that users see only paragraphs 1, 3, 4 and 5 and the names of those with
//! parental responsibility or care (what they see is `redact`'s); and
//! shielding holds through duplicates.
//!
//! Invariants: a record that looks like a shielded one here (surname,
//! current or former, first forename and date of birth) is shielded too, and
//! the authority told, until its management team decides: checked when a
//! record is created, loaded, updated, arrives by transfer, or is shielded.
//! A reason is required to shield or unshield, and is audited.

use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use deadpool_postgres::Transaction;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::audit::insert_audit;
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::read::load;
use crate::records::wire::encode_record;
use crate::redact::{redact, Reader};
use crate::service::{audited_change, audited_id, Method, NodeService};
use crate::store::{lock_record, AuditEvent, Result, Store};
use crate::wire::decode_id;

pub(crate) async fn shield_record(
    node: &NodeService,
    request: Request<pb::ShieldRecordRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let mut caller = node.caller(&request)?;
    let body = request.get_ref();
    caller.reason = Some(body.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
    let result = async {
        let role = node.require(&caller, Right::Shield)?;
        let id = decode_id(&body.id, "id")?;
        let Some(reason) = caller.reason.as_deref() else {
            return Err(crate::error::Invalid::new(
                "reason",
                "is required: say why the record is shielded or no longer shielded",
            )
            .into());
        };
        let audit = audited_change(&caller, Method::ShieldRecord);
        let record = node
            .store
            .shield(&id, body.shielded.then_some(reason), &audit)
            .await?;
        let reader = Reader {
            role,
            organisation: &caller.identity.organisation,
            override_shielding: false,
            today: node.context().today,
            archive_purpose: false,
        };
        Ok(redact(encode_record(&record), &reader))
    }
    .await;
    node.finish(&caller, Method::ShieldRecord, audited_id(&body.id), result)
        .await
}

impl Store {
    /// Shields a live record (with the reason) or lifts shielding (`None`).
    pub async fn shield(
        &self,
        id: &RecordId,
        reason: Option<&str>,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_record(&tx, id).await?;
        tx.execute(
            &tx.prepare_cached("UPDATE child_record SET shield_reason = $2, version = version + 1, updated_at = now() WHERE id = $1").await?,
            &[&id.as_str(), &reason],
        )
        .await?;
        if reason.is_some() {
            shield_duplicates(&tx, id, audit).await?;
        }
        insert_audit(&tx, audit, id).await?;
        let stored = load(&tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }
}

/// Live records here that look like the same person as `id` (surname,
/// current or former, first forename and date of birth), shielded or not.
pub(crate) async fn likely_duplicates(
    tx: &Transaction<'_>,
    ids: &[&str],
    shielded: bool,
) -> Result<Vec<(String, String)>> {
    let rows = tx
        .query(
            &tx.prepare_cached("SELECT new.id, other.id FROM child_record new, child_record other
             WHERE new.id = ANY($1) AND other.id <> new.id AND (other.shield_reason IS NOT NULL) = $2
               AND other.status = 'live' AND other.date_of_birth = new.date_of_birth
               AND split_part(other.given_names_key, ' ', 1) = split_part(new.given_names_key, ' ', 1)
               AND (other.family_name_key = new.family_name_key
                    OR EXISTS (SELECT 1 FROM former_name f WHERE f.record_id = other.id AND f.family_name_key = new.family_name_key)
                    OR EXISTS (SELECT 1 FROM former_name f WHERE f.record_id = new.id AND f.family_name_key = other.family_name_key))
             ORDER BY new.id, other.id FOR UPDATE OF other").await?,
            &[&ids, &shielded],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Shields `id` as a possible duplicate of `shielded`, and tells the authority.
pub(crate) async fn shield_as_duplicate(
    tx: &Transaction<'_>,
    id: &str,
    shielded: &str,
    audit: &AuditEvent<'_>,
) -> Result<()> {
    let reason = format!(
        "may duplicate shielded record {shielded}: shielded until the management team decides"
    );
    tx.execute(
        &tx.prepare_cached("UPDATE child_record SET shield_reason = $2, version = version + 1 WHERE id = $1 AND shield_reason IS NULL").await?,
        &[&id, &reason],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("INSERT INTO notification (kind, record_id, caller_organisation, caller_name, role, reason, related_record_id)
         VALUES ('possible_duplicate_of_shielded', $1, $2, $3, $4, $5, $6)").await?,
        &[&id, &audit.organisation, &audit.name, &audit.role, &"the record matches a shielded record's name and date of birth", &shielded],
    )
    .await?;
    tracing::warn!(
        "a record may duplicate a shielded record; it is shielded and the authority told"
    );
    Ok(())
}

/// Shielding holds through duplicates (RULES.md: in 2009 duplicates of
/// shielded children appeared unshielded). Run whenever a record is created,
/// arrives, changes its name or date of birth, or is shielded: an unshielded
/// `id` that matches a shielded record is shielded; a shielded `id` shields
/// the unshielded records that match it. The authority is told of each,
/// until its management team decides (merging, or lifting the shield).
pub(crate) async fn shield_duplicates(
    tx: &Transaction<'_>,
    id: &RecordId,
    audit: &AuditEvent<'_>,
) -> Result<()> {
    let is_shielded: bool = tx
        .query_one(
            &tx.prepare_cached("SELECT shield_reason IS NOT NULL FROM child_record WHERE id = $1")
                .await?,
            &[&id.as_str()],
        )
        .await?
        .get(0);
    if is_shielded {
        for (_, other) in likely_duplicates(tx, &[id.as_str()], false).await? {
            shield_as_duplicate(tx, &other, id.as_str(), audit).await?;
        }
    } else if let Some((_, shielded)) = likely_duplicates(tx, &[id.as_str()], true).await?.first() {
        shield_as_duplicate(tx, id.as_str(), shielded, audit).await?;
    }
    Ok(())
}
