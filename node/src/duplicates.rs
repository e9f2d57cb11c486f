//! Cross-authority duplicates (issue 17; RULES.md, shielding holds through
//! duplicates): the gateway, finding that a record here and a live record
//! at another authority share a strong blocking key in its blind index
//! (surname, forename and the whole date of birth, as they sound), tells the
//! management team here of the other record (`NotePossibleDuplicate`). It
//! also says whether the other record is shielded: if it is, the record here
//! is shielded too until the management team decides, as a duplicate of a
//! shielded record at this node would be (the 2009 lesson).
//!
//! Invariants: only the gateway may note one; a notice told twice (a retry,
//! two gateways) is one notification, by its gateway identifier; a record no
//! longer live here is not noted; the call and what it wrote are audited in
//! one transaction.

use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::error::Invalid;
use crate::identifier::RecordId;
use crate::service::{audited_change, audited_id, Method, NodeService};
use crate::store::{AuditEvent, Result, Store};
use crate::wire::decode_id;

pub(crate) async fn note_possible_duplicate(
    node: &NodeService,
    request: Request<pb::NotePossibleDuplicateRequest>,
) -> Result<Response<pb::NotePossibleDuplicateResponse>, Status> {
    let caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        node.require(&caller, Right::NoteDuplicate)?;
        let id = decode_id(&body.id, "id")?;
        let other = decode_id(&body.other_id, "other_id")?;
        let elsewhere = body
            .other_authority
            .as_ref()
            .filter(|authority| !authority.code.is_empty())
            .ok_or_else(|| {
                Invalid::new(
                    "other_authority",
                    "is required: the authority holding the other record",
                )
            })?;
        if body.notice_id.is_empty() {
            return Err(Invalid::new(
                "notice_id",
                "is required: the gateway's identifier of the match",
            )
            .into());
        }
        let notice = Notice {
            notice_id: &body.notice_id,
            id: &id,
            other: &other,
            elsewhere,
            other_shielded: body.other_shielded,
        };
        node.store
            .note_possible_duplicate(
                &notice,
                &audited_change(&caller, Method::NotePossibleDuplicate),
            )
            .await
    }
    .await;
    node.finish(
        &caller,
        Method::NotePossibleDuplicate,
        audited_id(&body.id),
        result,
    )
    .await
}

/// What the gateway found.
struct Notice<'a> {
    notice_id: &'a str,
    id: &'a RecordId,
    other: &'a RecordId,
    elsewhere: &'a pb::ResponsibleAuthority,
    other_shielded: bool,
}

impl Store {
    /// Notes `notice` against its record here, shielding the record if the
    /// other is shielded; says whether the record was live to note and
    /// whether it is shielded now.
    async fn note_possible_duplicate(
        &self,
        notice: &Notice<'_>,
        audit: &AuditEvent<'_>,
    ) -> Result<pb::NotePossibleDuplicateResponse> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = notice.id.as_str();
        // Locked, so that a transfer or a merge cannot pass between the
        // check and the notification.
        let shielded_before: Option<bool> = tx
            .query_opt(
                &tx.prepare_cached(
                    "SELECT shield_reason IS NOT NULL FROM child_record
                     WHERE id = $1 AND status = 'live' AND archived_on IS NULL FOR UPDATE",
                )
                .await?,
                &[&id],
            )
            .await?
            .map(|row| row.get(0));
        let live = shielded_before.is_some();
        let authority = format!("{} ({})", notice.elsewhere.name, notice.elsewhere.code);
        if live {
            let reason = format!(
                "may be the same child as record {} at {authority}: the two agree on surname, forename and date of birth as they sound. If they are one child, one authority moves its record to the other's with a merge (cpctl transfer --merge-into)",
                notice.other
            );
            tx.execute(
                &tx.prepare_cached(
                    "INSERT INTO notification (kind, record_id, caller_organisation, caller_name, role, reason,
                                               related_record_id, notice_id, related_authority_code, related_authority_name)
                     VALUES ('possible_duplicate_elsewhere', $1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (notice_id) DO NOTHING",
                )
                .await?,
                &[
                    &id,
                    &audit.organisation,
                    &audit.name,
                    &audit.role,
                    &reason,
                    &notice.other.as_str(),
                    &notice.notice_id,
                    &notice.elsewhere.code,
                    &notice.elsewhere.name,
                ],
            )
            .await?;
        }
        if live && notice.other_shielded {
            let shield = format!(
                "may duplicate shielded record {} at {authority}: shielded until the management team decides",
                notice.other
            );
            let shielded_now = tx
                .execute(
                    &tx.prepare_cached("UPDATE child_record SET shield_reason = $2, version = version + 1 WHERE id = $1 AND shield_reason IS NULL").await?,
                    &[&id, &shield],
                )
                .await?;
            if shielded_now > 0 {
                tx.execute(
                    &tx.prepare_cached(
                        "INSERT INTO notification (kind, record_id, caller_organisation, caller_name, role, reason,
                                                   related_record_id, related_authority_code, related_authority_name)
                         VALUES ('possible_duplicate_of_shielded', $1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .await?,
                    &[
                        &id,
                        &audit.organisation,
                        &audit.name,
                        &audit.role,
                        &"the record matches a shielded record at another authority",
                        &notice.other.as_str(),
                        &notice.elsewhere.code,
                        &notice.elsewhere.name,
                    ],
                )
                .await?;
                tracing::warn!("a record may duplicate a shielded record at another authority; it is shielded and the authority told");
            }
        }
        let shielded = shielded_before == Some(true) || (live && notice.other_shielded);
        crate::audit::append(&tx, audit, &[id.to_owned()]).await?;
        tx.commit().await?;
        Ok(pb::NotePossibleDuplicateResponse {
            noted: live,
            shielded,
        })
    }
}
