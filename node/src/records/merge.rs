//! Merging a duplicate into a record (management only): the duplicate's
//! entries with their provenance, its names as former names and its body
//! identifiers join the kept record, which is shielded if either was (the
//! 2009 lesson: duplicates of shielded children must not appear
//! unshielded); the duplicate's identifier then answers `NotFound` naming
//! the record it was merged into. Archived records are not merged.

use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::entries::insert_entry;
use crate::records::read::load;
use crate::records::store::write_lists;
use crate::service::{audited_change, audited_id, Method, NodeService};
use crate::store::{bump_version, lock_record, AuditEvent, Result, Store};
use crate::wire::decode_id;

pub(crate) async fn merge_records(
    node: &NodeService,
    request: Request<pb::MergeRecordsRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let mut caller = node.caller(&request)?;
    let body = request.get_ref();
    let reason_stated = caller.state_reason(&body.reason);
    let result = async {
        node.require(&caller, Right::MergeRecords)?;
        let keep = decode_id(&body.id, "id")?;
        let duplicate = decode_id(&body.duplicate_id, "duplicate_id")?;
        reason_stated?;
        if keep == duplicate {
            return Err(crate::error::Invalid::new(
                "duplicate_id",
                "is the record itself: name the duplicate to merge into it",
            )
            .into());
        }
        node.store
            .merge(
                &keep,
                &duplicate,
                &audited_change(&caller, Method::MergeRecords),
            )
            .await
    }
    .await;
    let mut ids = audited_id(&body.id);
    ids.extend(audited_id(&body.duplicate_id));
    node.finish(
        &caller,
        Method::MergeRecords,
        ids,
        result.map(|record| node.view(&caller, &record)),
    )
    .await
}

impl Store {
    /// Merges `duplicate` into `keep`, both live here: the duplicate's
    /// entries (with their provenance), its names as former names, and its
    /// body identifiers join the kept record, which is shielded if either
    /// was; the duplicate's rows go and its identifier then answers with the
    /// record it was merged into.
    pub async fn merge(
        &self,
        keep: &RecordId,
        duplicate: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Lock in identifier order, so two merges of one pair cannot deadlock.
        let (first, second) = if keep.as_str() < duplicate.as_str() {
            (keep, duplicate)
        } else {
            (duplicate, keep)
        };
        lock_record(&tx, first).await?;
        lock_record(&tx, second).await?;
        let kept = load(&tx, keep).await?;
        let gone = load(&tx, duplicate).await?;
        if let Some(archived) = [&kept, &gone].into_iter().find(|r| r.archived_on.is_some()) {
            return Err(NodeError::NotApplicable(format!(
                "record {} is archived information: archived records are not merged",
                archived.id
            )));
        }
        let mut details = kept.details.clone();
        let mut former = gone.details.former_names.clone();
        if gone.details.name != kept.details.name {
            former.push(FormerName {
                name: gone.details.name.clone(),
                ceased_on: None,
            });
        }
        for name in former {
            if name.name != details.name && !details.former_names.contains(&name) {
                details.former_names.push(name);
            }
        }
        for reference in &gone.details.body_identifiers {
            if !details.body_identifiers.contains(reference) {
                details.body_identifiers.push(reference.clone());
            }
        }
        write_lists(&tx, keep, &details).await?;
        for (entry, provenance) in gone.entries() {
            insert_entry(&tx, keep, &entry, provenance.as_ref()).await?;
        }
        let shield = kept.shield_reason.clone().or_else(|| {
            gone.shield_reason.as_ref().map(|reason| {
                format!("{reason} (shielded as {duplicate}, merged into this record)")
            })
        });
        tx.execute(
            &tx.prepare_cached("UPDATE child_record SET shield_reason = $2 WHERE id = $1")
                .await?,
            &[&keep.as_str(), &shield],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached("DELETE FROM child_record WHERE id = $1")
                .await?,
            &[&duplicate.as_str()],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached("INSERT INTO record_forwarding (record_id, moved_to_code, merged_into) VALUES ($1, $2, $3)").await?,
            &[&duplicate.as_str(), &self.authority.code, &keep.as_str()],
        )
        .await?;
        bump_version(&tx, keep).await?;
        crate::audit::append(&tx, audit, &[keep.to_string(), duplicate.to_string()]).await?;
        let stored = load(&tx, keep).await?;
        tx.commit().await?;
        Ok(stored)
    }
}
