//! Who has looked at a record (RULES.md, Audit: a person may ask the
//! responsible authority who has looked at their record): the audited
//! accesses to a record at this node, newest first. The gateway's
//! `SubjectAccess` asks every node the record has been held by and merges.
//!
//! Invariants: a record held here is answered to this authority's staff and
//! management team; one that left is answered only through the gateway,
//! which checks the caller's authority is now responsible; who wrote to the
//! record (which may name a sensitive service's provider, regulation 6(a))
//! is shown only to management teams.

use contactpoint_policy::{Refusal, Right, Role};
use contactpoint_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::service::{audited_id, Method, NodeService, MAX_LISTED};
use crate::store::{Holding, Result, Store};
use crate::wire::{decode_id, rfc3339};

/// One audited access to a record.
#[derive(Debug, Clone)]
pub struct RecordAccess {
    pub at: chrono::DateTime<chrono::Utc>,
    pub organisation: String,
    pub unit: Option<String>,
    pub name: String,
    pub role: String,
    pub method: String,
    pub reason: Option<String>,
    pub outcome: String,
    pub via: Option<String>,
}

/// What an access list shows, to anyone but a management team, in place of
/// a body that wrote to the record (regulation 6(a)).
const WITHHELD_WRITER: &str =
    "withheld: a body that supplied information (it may provide a sensitive service)";

pub(crate) async fn list_record_accesses(
    node: &NodeService,
    request: Request<pb::ListRecordAccessesRequest>,
) -> Result<Response<pb::ListRecordAccessesResponse>, Status> {
    let mut caller = node.caller(&request)?;
    let body = request.get_ref();
    // The subject access request's reason, when the gateway passes one on.
    let _ = caller.state_reason(&body.reason);
    let here = node.store.authority().code.clone();
    let result = async {
        let role = caller.require_anywhere(Right::ReadAudit)?;
        let id = decode_id(&body.id, "id")?;
        match node.store.lookup(&id).await? {
            // Held here: this authority's staff and management team.
            Holding::Live(_) => {
                node.require(&caller, Right::ReadAudit)?;
            }
            // Merged into another record here: the same.
            Holding::Merged { .. } => {
                node.require(&caller, Right::ReadAudit)?;
            }
            // Moved on: the authority now responsible asks through the
            // gateway, which checks that it is.
            Holding::Moved { .. } => {
                if caller.via.is_none() && !caller.is_own_staff_of(&here) {
                    return Err(NodeError::Forbidden(Refusal {
                        role: caller.role_name(),
                        reason: "the record has left this authority: its responsible authority asks through the gateway".into(),
                    }));
                }
            }
            Holding::Arriving { .. } | Holding::Absent => {
                return Err(NodeError::RecordNotFound(id.to_string()));
            }
        }
        // Regulation 6(a): who wrote to the record may reveal a sensitive
        // service's provider; only a management team sees writers.
        let sees_writers = matches!(role, Role::Management { .. });
        let limit = match body.limit {
            0 => 25,
            n => n.min(MAX_LISTED),
        };
        let accesses = node.store.record_accesses(&id, limit).await?;
        Ok(pb::ListRecordAccessesResponse {
            accesses: accesses
                .into_iter()
                .map(|mut access| {
                    let writer = matches!(
                        access.method.as_str(),
                        "Contribute" | "AddEntry" | "EndEntry"
                    );
                    if writer && !sees_writers {
                        access.organisation = WITHHELD_WRITER.into();
                        access.unit = None;
                        access.name = String::new();
                    }
                    access
                })
                .map(|access| pb::RecordAccess {
                    at: rfc3339(access.at),
                    organisation: access.organisation,
                    unit: access.unit.unwrap_or_default(),
                    name: access.name,
                    role: access.role,
                    method: access.method,
                    reason: access.reason.unwrap_or_default(),
                    outcome: access.outcome,
                    authority_code: here.clone(),
                    via: access.via.unwrap_or_default(),
                })
                .collect(),
        })
    }
    .await;
    node.finish(
        &caller,
        Method::ListRecordAccesses,
        audited_id(&body.id),
        result,
    )
    .await
}

impl Store {
    /// The audited accesses to a record at this node, newest first.
    pub async fn record_accesses(&self, id: &RecordId, limit: u32) -> Result<Vec<RecordAccess>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT at, caller_organisation, caller_unit, caller_name, role, method, reason, outcome, via
                 FROM audit_event WHERE record_ids @> ARRAY[$1::text]
                 ORDER BY event_id DESC LIMIT $2").await?,
                &[&id.as_str(), &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| RecordAccess {
                at: row.get(0),
                organisation: row.get(1),
                unit: row.get(2),
                name: row.get(3),
                role: row.get(4),
                method: row.get(5),
                reason: row.get(6),
                outcome: row.get(7),
                via: row.get(8),
            })
            .collect())
    }
}
