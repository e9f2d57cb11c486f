//! Consent (section 12; RULES.md, Who and what): a participating young
//! person (18 to 25) has a record only with their explicit consent, which
//! they can withdraw; withdrawal archives the record at once. Children have no
//! opt-out. The consent itself is part of the record's details
//! (`RecordDetails.consent`, also a CHECK in the schema).

use chrono::NaiveDate;
use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::audit::insert_audit;
use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::read::load;
use crate::service::{audited_change, audited_id, Method, NodeService};
use crate::store::{lock_record, AuditEvent, Result, Store};
use crate::wire::decode_id;

pub(crate) async fn withdraw_consent(
    node: &NodeService,
    request: Request<pb::WithdrawConsentRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let mut caller = node.caller(&request)?;
    let body = request.get_ref();
    caller.reason = Some(body.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
    let result = async {
        node.require(&caller, Right::MaintainRecord)?;
        let id = decode_id(&body.id, "id")?;
        if caller.reason.is_none() {
            return Err(crate::error::Invalid::new(
                "reason",
                "is required: record how the young person withdrew consent",
            )
            .into());
        }
        let audit = audited_change(&caller, Method::WithdrawConsent);
        node.store
            .withdraw_consent(&id, node.context().today, &audit)
            .await
    }
    .await;
    node.finish(
        &caller,
        Method::WithdrawConsent,
        audited_id(&body.id),
        result.map(|record| node.view(&caller, &record)),
    )
    .await
}

impl Store {
    /// A participating young person withdraws consent: the record is
    /// archived at once, and the withdrawal recorded.
    pub async fn withdraw_consent(
        &self,
        id: &RecordId,
        today: NaiveDate,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (facts, _) = lock_record(&tx, id).await?;
        if facts.category != PersonCategory::ParticipatingYoungPerson {
            return Err(NodeError::NotApplicable(format!(
                "record {id} is a child's: consent applies to participating young persons"
            )));
        }
        tx.execute(
            &tx.prepare_cached("UPDATE child_record SET consent_withdrawn_on = $2, archived_on = COALESCE(archived_on, $2),
                 version = version + 1, updated_at = now()
             WHERE id = $1").await?,
            &[&id.as_str(), &today],
        )
        .await?;
        insert_audit(&tx, audit, id).await?;
        let stored = load(&tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }
}
