//! The gateway's audit as its readers see it (RULES.md, Audit, practice
//! promised to Parliament). `SubjectAccess`: "a person may ask the
//! responsible authority who has looked at their record", so the responsible
//! authority's staff ask every node the record has been held by (the minting
//! authority and each of its transfers) and get their answers merged, newest
//! first. `ListAuditFlags`: the unusual patterns flagged (RULES.md, Audit:
//! "audits are reviewed, and unusual patterns ... are flagged"), which
//! operators review. Appending an entry is the one `Store::audit` (in
//! `store`), called by `GatewayService::finish` and a lookup's `Opening`.
//!
//! Invariants: a subject access answer is whole or refused (a node that does
//! not answer makes it `Unavailable`, naming it); only the authority
//! responsible now answers for a record; audit flags, which name users of
//! every organisation, are listed to operators only; SQL only in `store`.
mod store;

pub use store::{AuditEntry, ROUTED};

use contactpoint_policy::{authorize, Right, Role};
use contactpoint_proto::identifier::RecordId;
use contactpoint_proto::v1 as pb;
use tonic::{Code, Request, Response, Status};

use crate::error::GatewayError;
use crate::nodes::on_behalf;
use crate::service::{is_unavailable, stated_reason, GatewayService, Outcome};

/// `SubjectAccess`: who has looked at a record, from every node that has
/// held it, newest first.
pub(crate) async fn subject_access(
    service: &GatewayService,
    request: Request<pb::SubjectAccessRequest>,
) -> Result<Response<pb::SubjectAccessResponse>, Status> {
    let caller = service.caller(&request)?;
    let mut outcome = Outcome::default();
    let result = async {
        let body = request.get_ref();
        let role = GatewayService::require(&caller, Right::ReadAudit)?;
        if !matches!(role, Role::Management { .. } | Role::Practitioner { .. }) {
            return Err(GatewayError::Forbidden(contactpoint_policy::Refusal {
                role: role.to_string(),
                reason: "a subject access request is answered by the authority responsible for the record".into(),
            }));
        }
        let id = RecordId::parse(&body.id).map_err(|error| GatewayError::Invalid {
            field: "id",
            reason: error.to_string(),
        })?;
        outcome.record_ids.push(id.to_string());
        let reason = stated_reason(&body.reason)?;
        outcome.reason = Some(reason.clone());
        // Only the authority responsible now answers for the record.
        let responsible = service.locate(&id, &mut outcome).await?;
        authorize(
            Some(role),
            &caller.identity,
            Right::ReadAudit,
            Some(&responsible),
        )?;
        let mut authorities = service.store.transfer_authorities(id.as_str()).await?;
        authorities.push(id.minting_authority().to_owned());
        authorities.push(responsible);
        authorities.sort();
        authorities.dedup();
        outcome.authorities = authorities.clone();
        let mut asks = tokio::task::JoinSet::new();
        for code in &authorities {
            let node = service
                .directory
                .get(code)
                .ok_or_else(|| GatewayError::UnknownAuthority(code.clone()))?
                .clone();
            let request = on_behalf(
                pb::ListRecordAccessesRequest {
                    id: id.to_string(),
                    limit: 1000,
                    reason: reason.clone(),
                },
                &caller.identity,
                role,
                service.lookup_timeout,
            );
            let timeout = service.lookup_timeout;
            asks.spawn(async move {
                let answer =
                    tokio::time::timeout(timeout, node.client().list_record_accesses(request))
                        .await;
                (node, answer)
            });
        }
        let mut accesses = Vec::new();
        let mut unanswered = Vec::new();
        while let Some(joined) = asks.join_next().await {
            let Ok((node, answer)) = joined else { continue };
            match answer {
                Ok(Ok(found)) => accesses.extend(found.into_inner().accesses),
                // Named by a transfer that never reached it: nothing there.
                Ok(Err(status)) if status.code() == Code::NotFound => {}
                Ok(Err(status)) if !is_unavailable(&status) => {
                    return Err(GatewayError::Node(status))
                }
                _ => unanswered.push(format!("{} ({})", node.name, node.code)),
            }
        }
        if !unanswered.is_empty() {
            unanswered.sort();
            return Err(GatewayError::NodesUnavailable(unanswered));
        }
        // RFC 3339 UTC times of one format sort as text.
        accesses.sort_by(|a, b| b.at.cmp(&a.at));
        Ok(pb::SubjectAccessResponse {
            id: id.to_string(),
            authorities,
            accesses,
        })
    }
    .await;
    service
        .finish(&caller, "SubjectAccess", outcome, result)
        .await
}

/// `ListAuditFlags`: the flags after `after_id`, oldest first, to operators.
pub(crate) async fn list_audit_flags(
    service: &GatewayService,
    request: Request<pb::ListAuditFlagsRequest>,
) -> Result<Response<pb::ListAuditFlagsResponse>, Status> {
    let caller = service.caller(&request)?;
    let result = async {
        let role = GatewayService::require(&caller, Right::ReadAudit)?;
        if *role != Role::Operator {
            return Err(GatewayError::Forbidden(contactpoint_policy::Refusal {
                role: role.to_string(),
                reason: "audit flags name users of every organisation: operators review them"
                    .into(),
            }));
        }
        let body = request.get_ref();
        let limit = match body.limit {
            0 => 1000,
            n => n.min(1000),
        };
        let flags = service.store.audit_flags(body.after_id, limit).await?;
        Ok(pb::ListAuditFlagsResponse { flags })
    }
    .await;
    service
        .finish(&caller, "ListAuditFlags", Outcome::default(), result)
        .await
}
