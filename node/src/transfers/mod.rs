//! Transfers (Schedule 1 para 19; regulation 3): when a child moves, the
//! record moves to the new responsible authority, the gateway driving each
//! step (`gateway::transfers`) and this node playing its side: exporting,
//! handing over (the cutover), staging and activating a record coming in,
//! releasing, cancelling or aborting.
//!
//! The record leaves only with this authority's consent: the gateway names
//! who of the management team consented (`forwarded::CONSENT_HEADER`), and
//! this node gives them a role from its own policy before it exports the
//! record's content or hands it over. A gateway cannot move a record on its
//! own word, nor on a consent this node's policy does not recognise.
//!
//! Invariants: every step is idempotent, so a gateway that crashed between a
//! node's work and its journal repeats it safely; the cutover is taken under
//! the record's row lock against an abort, so a cancellation that races it
//! either wins (nothing was handed over) or loses (the transfer completes),
//! and the record is never dropped; at most one node serves a record live;
//! the old node keeps its forwarding and its audit after the move. The
//! record travels as a node-only snapshot, never shown to a user.

mod store;

use chrono::NaiveDate;
use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{authorize, forwarded, Refusal, Right, Role};
use contactpoint_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::access::Caller;
use crate::error::NodeError;
use crate::model::*;
use crate::service::{audited_change, audited_id, Method, NodeService};
use crate::wire::decode_id;

/// A record as it moves from one node to another in a transfer: every
/// paragraph and entry as stored at the old node. The new node gives the
/// entries its own ids; the identifier and version travel unchanged. Only
/// nodes read it (the gateway carries it as opaque bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    /// Transfers the record has been through before this one.
    #[serde(default)]
    pub moves: u32,
    /// Shielding travels with the record.
    #[serde(default)]
    pub shield_reason: Option<String>,
    /// So does archiving.
    #[serde(default)]
    pub archived_on: Option<NaiveDate>,
    pub details: RecordDetails,
    pub entries: Vec<Entry>,
    /// The provenance of each entry, in the order of `entries`.
    #[serde(default)]
    pub provenance: Vec<Option<Provenance>>,
}

impl From<&ChildRecord> for Snapshot {
    fn from(record: &ChildRecord) -> Self {
        let (entries, provenance) = record.entries().unzip();
        Self {
            version: record.version,
            moves: record.moves,
            shield_reason: record.shield_reason.clone(),
            archived_on: record.archived_on,
            details: record.details.clone(),
            entries,
            provenance,
        }
    }
}

/// The record as stored, with its content only under a consent this node
/// accepts; without one, whether it is here and whether it was handed over.
pub(crate) async fn export_record(
    node: &NodeService,
    request: Request<pb::ExportRecordRequest>,
) -> Result<Response<pb::RecordSnapshot>, Status> {
    let mut caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        node.require(&caller, Right::MoveRecord)?;
        let consent = node.consent(&mut caller, &request)?;
        let id = decode_id(&body.id, "id")?;
        let (snapshot, handed_over_by) = node.store.export(&id).await?;
        let mut exported = encode_snapshot(&id, &snapshot)?;
        if consent.is_none() {
            exported.snapshot.clear();
        }
        exported.handed_over_by = handed_over_by.unwrap_or_default();
        Ok(exported)
    }
    .await;
    node.finish(&caller, Method::ExportRecord, audited_id(&body.id), result)
        .await
}

pub(crate) async fn hand_over_record(
    node: &NodeService,
    request: Request<pb::HandOverRequest>,
) -> Result<Response<pb::RecordSnapshot>, Status> {
    let mut caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        node.require(&caller, Right::MoveRecord)?;
        let consent = node.consent(&mut caller, &request)?;
        let id = decode_id(&body.id, "id")?;
        let transfer = transfer_id(&body.transfer_id)?;
        if consent.is_none() {
            // A hand-over made already may be repeated (the consent was
            // given, or not yet required, when it was made); a first one
            // needs the consent.
            let (_, handed_over_by) = node.store.export(&id).await?;
            if handed_over_by.as_deref() != Some(transfer) {
                return Err(NodeError::Forbidden(Refusal {
                    role: Role::Gateway.to_string(),
                    reason: format!(
                        "a record leaves {} only with the consent of its management team, and the hand-over names none",
                        node.store.authority().code
                    ),
                }));
            }
        }
        let to = body
            .to
            .as_ref()
            .ok_or_else(|| crate::error::Invalid::new("to", "is required"))?;
        let to = crate::model::ResponsibleAuthority {
            code: to.code.clone(),
            name: to.name.clone(),
        };
        if to.code == node.store.authority().code {
            return Err(crate::error::Invalid::new(
                "to.code",
                "is this authority: a record is handed over to another",
            )
            .into());
        }
        let audit = audited_change(&caller, Method::HandOverRecord);
        let snapshot = node
            .store
            .hand_over(transfer, &id, &to, &audit)
            .await?;
        encode_snapshot(&id, &snapshot)
    }
    .await;
    node.finish(
        &caller,
        Method::HandOverRecord,
        audited_id(&body.id),
        result,
    )
    .await
}

pub(crate) async fn release_record(
    node: &NodeService,
    request: Request<pb::TransferRecordRequest>,
) -> Result<Response<pb::TransferStepResponse>, Status> {
    node.record_step(request, Method::ReleaseRecord).await
}

pub(crate) async fn cancel_transfer_in(
    node: &NodeService,
    request: Request<pb::TransferRecordRequest>,
) -> Result<Response<pb::TransferStepResponse>, Status> {
    node.record_step(request, Method::CancelTransferIn).await
}

pub(crate) async fn abort_transfer_out(
    node: &NodeService,
    request: Request<pb::TransferRecordRequest>,
) -> Result<Response<pb::TransferStepResponse>, Status> {
    node.record_step(request, Method::AbortTransferOut).await
}

pub(crate) async fn stage_transfer_in(
    node: &NodeService,
    request: Request<pb::TransferInRequest>,
) -> Result<Response<pb::TransferStepResponse>, Status> {
    node.transfer_in_step(request, Method::StageTransferIn)
        .await
}

pub(crate) async fn activate_transfer_in(
    node: &NodeService,
    request: Request<pb::TransferInRequest>,
) -> Result<Response<pb::TransferStepResponse>, Status> {
    node.transfer_in_step(request, Method::ActivateTransferIn)
        .await
}

impl NodeService {
    /// The consent the gateway names for a step that lets a record leave:
    /// `None` if it names none; the consenting person if this node's own
    /// policy gives them this authority's consent (and their access
    /// conditions are met), which the audit entry then records; otherwise
    /// refused.
    fn consent<T>(
        &self,
        caller: &mut Caller,
        request: &Request<T>,
    ) -> Result<Option<PeerIdentity>, NodeError> {
        let Some(value) = request.metadata().get_bin(forwarded::CONSENT_HEADER) else {
            return Ok(None);
        };
        let refused = |reason: String| {
            NodeError::Forbidden(Refusal {
                role: Role::Gateway.to_string(),
                reason,
            })
        };
        let who = value
            .to_bytes()
            .ok()
            .and_then(|bytes| forwarded::decode_identity(&bytes))
            .ok_or_else(|| refused(format!("{} is not an identity", forwarded::CONSENT_HEADER)))?;
        let here = &self.store.authority().code;
        let policy = self.policy.current();
        let role = policy.role_of(&who);
        let accepted = authorize(role, &who, Right::ConsentTransfer, Some(here))
            .and_then(|role| policy.admit(&who, role, self.clock.today()));
        // The audit names whom the gateway gave as consenting, accepted or not.
        caller.reason = Some(match &accepted {
            Ok(_) => format!("consented to by {who}"),
            Err(_) => format!("consent named {who}, refused"),
        });
        accepted.map_err(|refusal| {
            refused(format!(
                "the consent named for this transfer is not this authority's: {refusal}"
            ))
        })?;
        Ok(Some(who))
    }

    /// The steps of a transfer in, which carry the record: staging it, and
    /// activating it with its final content.
    async fn transfer_in_step(
        &self,
        request: Request<pb::TransferInRequest>,
        method: Method,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            self.require(&caller, Right::MoveRecord)?;
            let id = decode_id(&body.id, "id")?;
            let snapshot = decode_snapshot(&body.snapshot)?;
            let transfer = transfer_id(&body.transfer_id)?;
            let audit = audited_change(&caller, method);
            let moves = if method == Method::ActivateTransferIn {
                self.store
                    .activate_in(transfer, &id, &snapshot, &audit)
                    .await?
            } else {
                self.store
                    .stage_in(transfer, &id, &snapshot, &audit)
                    .await?;
                0
            };
            Ok(pb::TransferStepResponse { moves })
        }
        .await;
        self.finish(&caller, method, audited_id(&body.id), result)
            .await
    }

    /// The transfer steps that name only a transfer and a record: releasing a
    /// handed-over copy, dropping a staged one, aborting a transfer out.
    async fn record_step(
        &self,
        request: Request<pb::TransferRecordRequest>,
        method: Method,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            self.require(&caller, Right::MoveRecord)?;
            let id = decode_id(&body.id, "id")?;
            let transfer = transfer_id(&body.transfer_id)?;
            let audit = audited_change(&caller, method);
            match method {
                Method::ReleaseRecord => self.store.release(transfer, &id, &audit).await?,
                Method::CancelTransferIn => self.store.cancel_in(transfer, &id, &audit).await?,
                _ => self.store.abort_out(transfer, &id, &audit).await?,
            }
            Ok(pb::TransferStepResponse::default())
        }
        .await;
        self.finish(&caller, method, audited_id(&body.id), result)
            .await
    }
}

fn encode_snapshot(
    id: &crate::identifier::RecordId,
    snapshot: &Snapshot,
) -> Result<pb::RecordSnapshot, NodeError> {
    let bytes =
        serde_json::to_vec(snapshot).map_err(|error| NodeError::Corrupt(error.to_string()))?;
    Ok(pb::RecordSnapshot {
        id: id.to_string(),
        version: snapshot.version,
        snapshot: bytes,
        handed_over_by: String::new(),
    })
}

fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, NodeError> {
    serde_json::from_slice(bytes).map_err(|error| NodeError::BadSnapshot(error.to_string()))
}

/// A transfer id as the gateway makes them: letters, digits and hyphens.
fn transfer_id(value: &str) -> Result<&str, NodeError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(value)
    } else {
        Err(
            crate::error::Invalid::new("transfer_id", "is 1 to 64 letters, digits or hyphens")
                .into(),
        )
    }
}
