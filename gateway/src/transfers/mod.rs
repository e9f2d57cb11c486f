//! Transfers between authorities (RULES.md, Who and what: exactly one local
//! authority is responsible for each record, Schedule 1 para 19, and a record
//! moves to another authority when the child moves, reg 3). The handlers
//! (`StartTransfer`, `GetTransfer`, `ListTransfers`, `CancelTransfer`) find
//! the authority responsible now, journal a transfer and show it; `workflow`
//! drives each transfer through its steps; `store` is the journal's SQL.
//!
//! A transfer may carry a merge (`StartTransferRequest.merge_into`): the
//! record, a duplicate of one held at the destination, is merged into it
//! there after activation, by the destination's management team (who alone
//! may ask), so a child recorded by two authorities becomes one record.
//!
//! A transfer needs the consent of the authority responsible now: its
//! management team's (`Right::ConsentTransfer`), given in asking or later
//! (`ConsentTransfer`). Anyone else's request (the destination's, an
//! operator's, the sender's own practitioners') waits in `awaiting_consent`,
//! nothing moved; refusing is cancelling. The sending node checks the
//! consent again against its own policy before the record leaves it
//! (`node::transfers`), so a gateway cannot move a record on its own word.
//!
//! Invariants: only either authority's own staff, or an operator, may ask
//! for, see or cancel a transfer between them; nothing moves before the
//! sending authority's management consents; a record is in at most one open
//! transfer; a transfer past its cutover cannot be cancelled; every step is
//! journaled after the node's work, so a crash between them repeats it.
mod store;
pub mod workflow;

pub use store::{Merge, TransferRow};
pub use workflow::{requester_name, Transfers};

use contactpoint_policy::{authorize, Right, Role};
use contactpoint_proto::identifier::RecordId;
use contactpoint_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::error::GatewayError;
use crate::service::{Caller, GatewayService, Outcome};

/// `StartTransfer`: journals a transfer of a record from the authority
/// responsible now to `to_authority`, and starts driving it.
pub(crate) async fn start_transfer(
    service: &GatewayService,
    request: Request<pb::StartTransferRequest>,
) -> Result<Response<pb::Transfer>, Status> {
    let caller = service.caller(&request)?;
    let span = tracing::info_span!("StartTransfer", role = %caller.role_name(), authorities = tracing::field::Empty);
    async {
        let mut outcome = Outcome::default();
        let result = async {
            let body = request.get_ref();
            let id = RecordId::parse(&body.id).map_err(|error| GatewayError::Invalid {
                field: "id",
                reason: error.to_string(),
            })?;
            outcome.record_ids.push(id.to_string());
            let to = gss_code(&body.to_authority, "to_authority")?;
            let merge = merge_of(body, &id)?;
            let from = service.locate(&id, &mut outcome).await?;
            let role = may_transfer(&caller, &from, &to)?;
            if from == to {
                return Err(GatewayError::Conflict(format!(
                    "authority {to} is already responsible for record {id}{}",
                    if merge.is_some() {
                        ": merge the two at its node (MergeRecords)"
                    } else {
                        ""
                    }
                )));
            }
            if let Some(merge) = &merge {
                service
                    .check_merge(&caller, merge, &to, &mut outcome)
                    .await?;
            }
            outcome.authorities = vec![from.clone(), to.clone()];
            // The sending authority's management consents in asking.
            let requester = requester_name(&caller.identity);
            let consenting = caller.admitted.is_ok()
                && authorize(
                    caller.role.as_ref(),
                    &caller.identity,
                    Right::ConsentTransfer,
                    Some(&from),
                )
                .is_ok();
            let journaled = service
                .store
                .insert_transfer(
                    id.as_str(),
                    &from,
                    &to,
                    (&requester, &role.to_wire()),
                    consenting.then_some(requester.as_str()),
                    merge.as_ref(),
                )
                .await?;
            let row = journaled.map_err(|open| {
                GatewayError::Conflict(format!(
                    "record {id} is already in transfer {} ({})",
                    open.transfer_id, open.state
                ))
            })?;
            service.drive_in_background(&row.transfer_id);
            Ok(service.encode_transfer(&row))
        }
        .await;
        service
            .finish(&caller, "StartTransfer", outcome, result)
            .await
    }
    .instrument(span)
    .await
}

/// `ConsentTransfer`: the sending authority's management team consents to
/// a transfer awaiting it, which then starts. A repeat of a consent given
/// is answered with the transfer as it stands; a cancelled one is refused.
pub(crate) async fn consent_transfer(
    service: &GatewayService,
    request: Request<pb::GetTransferRequest>,
) -> Result<Response<pb::Transfer>, Status> {
    let caller = service.caller(&request)?;
    let mut outcome = Outcome::default();
    let result = async {
        let row = service
            .visible_transfer(&caller, &request.get_ref().transfer_id)
            .await?;
        outcome.record_ids.push(row.record_id.clone());
        outcome.authorities = vec![row.from_code.clone(), row.to_code.clone()];
        authorize(
            caller.role.as_ref(),
            &caller.identity,
            Right::ConsentTransfer,
            Some(&row.from_code),
        )?;
        // The sending node checks the consenter's access conditions too.
        caller.admitted.clone()?;
        let consented = service
            .store
            .consent_transfer(&row.transfer_id, &requester_name(&caller.identity))
            .await?;
        let now = service
            .store
            .transfer(&row.transfer_id)
            .await?
            .unwrap_or(row);
        if !consented && now.consented_by.is_none() {
            return Err(GatewayError::Conflict(
                if now.state == "cancelled" || now.cancel_requested {
                    format!(
                        "transfer {} was cancelled before it was consented to",
                        now.transfer_id
                    )
                } else {
                    format!(
                        "transfer {} is {}: it was journaled before consent was required and is past the point a consent could stop",
                        now.transfer_id, now.state
                    )
                },
            ));
        }
        if consented {
            service.drive_in_background(&now.transfer_id);
        }
        Ok(service.encode_transfer(&now))
    }
    .await;
    service
        .finish(&caller, "ConsentTransfer", outcome, result)
        .await
}

/// `GetTransfer`: a transfer the caller may see.
pub(crate) async fn get_transfer(
    service: &GatewayService,
    request: Request<pb::GetTransferRequest>,
) -> Result<Response<pb::Transfer>, Status> {
    let caller = service.caller(&request)?;
    let mut outcome = Outcome::default();
    let result = async {
        let row = service
            .visible_transfer(&caller, &request.get_ref().transfer_id)
            .await?;
        outcome.record_ids.push(row.record_id.clone());
        Ok(service.encode_transfer(&row))
    }
    .await;
    service
        .finish(&caller, "GetTransfer", outcome, result)
        .await
}

/// `ListTransfers`: an authority's transfers in and out, newest first.
pub(crate) async fn list_transfers(
    service: &GatewayService,
    request: Request<pb::ListTransfersRequest>,
) -> Result<Response<pb::ListTransfersResponse>, Status> {
    let caller = service.caller(&request)?;
    let mut outcome = Outcome::default();
    let result = async {
        let authority = gss_code(&request.get_ref().authority, "authority")?;
        authorize(
            caller.role.as_ref(),
            &caller.identity,
            Right::StartTransfer,
            Some(&authority),
        )?;
        outcome.authorities.push(authority.clone());
        let (incoming, outgoing) = service.store.transfers_of(&authority).await?;
        Ok(pb::ListTransfersResponse {
            incoming: incoming
                .iter()
                .map(|row| service.encode_transfer(row))
                .collect(),
            outgoing: outgoing
                .iter()
                .map(|row| service.encode_transfer(row))
                .collect(),
        })
    }
    .await;
    service
        .finish(&caller, "ListTransfers", outcome, result)
        .await
}

/// `CancelTransfer`: asks for a transfer to be cancelled; refused once it
/// is past its cutover.
pub(crate) async fn cancel_transfer(
    service: &GatewayService,
    request: Request<pb::GetTransferRequest>,
) -> Result<Response<pb::Transfer>, Status> {
    let caller = service.caller(&request)?;
    let mut outcome = Outcome::default();
    let result = async {
        let row = service
            .visible_transfer(&caller, &request.get_ref().transfer_id)
            .await?;
        outcome.record_ids.push(row.record_id.clone());
        if !service.store.request_cancel(&row.transfer_id).await? {
            return Err(GatewayError::Conflict(format!(
                "transfer {} is past its cutover ({}) and cannot be cancelled",
                row.transfer_id, row.state
            )));
        }
        service.drive_in_background(&row.transfer_id);
        let row = service
            .store
            .transfer(&row.transfer_id)
            .await?
            .unwrap_or(row);
        Ok(service.encode_transfer(&row))
    }
    .await;
    service
        .finish(&caller, "CancelTransfer", outcome, result)
        .await
}

impl GatewayService {
    /// Drives a transfer on, past whatever step it is at, in the background.
    fn drive_in_background(&self, transfer_id: &str) {
        let transfers = self.transfers.clone();
        let transfer_id = transfer_id.to_owned();
        tokio::spawn(async move { transfers.drive(transfer_id).await });
    }

    /// An authority's code, and its name as the directory knows it.
    fn authority(&self, code: &str) -> pb::ResponsibleAuthority {
        let name = self
            .directory
            .get(code)
            .map(|node| node.name.clone())
            .unwrap_or_default();
        pb::ResponsibleAuthority {
            code: code.to_owned(),
            name,
        }
    }

    /// A journaled transfer as the wire shows it.
    fn encode_transfer(&self, row: &TransferRow) -> pb::Transfer {
        let state = match row.state.as_str() {
            "awaiting_consent" => pb::TransferState::AwaitingConsent,
            "requested" => pb::TransferState::Requested,
            "staged" => pb::TransferState::Staged,
            "handed_over" => pb::TransferState::HandedOver,
            "activated" => pb::TransferState::Activated,
            "completed" => pb::TransferState::Completed,
            "cancelled" => pb::TransferState::Cancelled,
            _ => pb::TransferState::Unspecified,
        };
        pb::Transfer {
            transfer_id: row.transfer_id.clone(),
            record_id: row.record_id.clone(),
            from: Some(self.authority(&row.from_code)),
            to: Some(self.authority(&row.to_code)),
            state: state as i32,
            cancel_requested: row.cancel_requested,
            waiting_reason: row.waiting_reason.clone().unwrap_or_default(),
            attempts: u32::try_from(row.attempts).unwrap_or_default(),
            requested_by: row.requested_by.clone(),
            requested_role: row.requested_role.clone(),
            created_at: row.created_at.clone(),
            updated_at: row.updated_at.clone(),
            merge_into: row
                .merge
                .as_ref()
                .map(|merge| merge.into.clone())
                .unwrap_or_default(),
            merge_outcome: row.merge_outcome.clone().unwrap_or_default(),
            consented_by: row.consented_by.clone().unwrap_or_default(),
            consented_at: row.consented_at.clone().unwrap_or_default(),
        }
    }

    /// A merge across authorities may be asked only by the management team
    /// of the authority that merges, of a record it holds.
    async fn check_merge(
        &self,
        caller: &Caller,
        merge: &Merge,
        to: &str,
        outcome: &mut Outcome,
    ) -> Result<(), GatewayError> {
        authorize(
            caller.role.as_ref(),
            &caller.identity,
            Right::MergeRecords,
            Some(to),
        )?;
        let survivor = RecordId::parse(&merge.into).map_err(|error| GatewayError::Invalid {
            field: "merge_into",
            reason: error.to_string(),
        })?;
        outcome.record_ids.push(survivor.to_string());
        let mut located = Outcome::default();
        let holder = self.locate(&survivor, &mut located).await?;
        if holder != to {
            return Err(GatewayError::Invalid {
                field: "merge_into",
                reason: format!(
                    "record {survivor} is held by authority {holder}, not {to}: a record is merged into one held where it goes"
                ),
            });
        }
        Ok(())
    }

    /// A transfer the caller may see: their authority is one of its two, or
    /// they operate the service.
    async fn visible_transfer(
        &self,
        caller: &Caller,
        transfer_id: &str,
    ) -> Result<TransferRow, GatewayError> {
        let row = self
            .store
            .transfer(transfer_id)
            .await?
            .ok_or_else(|| GatewayError::Invalid {
                field: "transfer_id",
                reason: format!("names no transfer ({transfer_id})"),
            })?;
        may_transfer(caller, &row.from_code, &row.to_code)?;
        Ok(row)
    }
}

/// Either authority's own staff, or an operator, may ask for, see and
/// cancel a transfer between them.
fn may_transfer<'a>(caller: &'a Caller, from: &str, to: &str) -> Result<&'a Role, GatewayError> {
    let role = caller.role.as_ref();
    Ok(
        authorize(role, &caller.identity, Right::StartTransfer, Some(from))
            .or_else(|_| authorize(role, &caller.identity, Right::StartTransfer, Some(to)))?,
    )
}

/// The merge a transfer request asks for, if any: a survivor other than the
/// record itself, and a reason.
fn merge_of(body: &pb::StartTransferRequest, id: &RecordId) -> Result<Option<Merge>, GatewayError> {
    let into = body.merge_into.trim();
    if into.is_empty() {
        return Ok(None);
    }
    if into == id.as_str() {
        return Err(GatewayError::Invalid {
            field: "merge_into",
            reason: "is the record itself: name the record it duplicates".into(),
        });
    }
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(GatewayError::Invalid {
            field: "reason",
            reason: "is required with merge_into: say why the two records are one child".into(),
        });
    }
    use contactpoint_proto::limits::{check_text, REASON_CHARS};
    check_text(reason, REASON_CHARS, true).map_err(|why| GatewayError::Invalid {
        field: "reason",
        reason: why,
    })?;
    Ok(Some(Merge {
        into: into.to_owned(),
        reason: reason.to_owned(),
    }))
}

/// `value` as an English GSS code; otherwise `field` is invalid.
fn gss_code(value: &str, field: &'static str) -> Result<String, GatewayError> {
    let code = value.trim();
    let bytes = code.as_bytes();
    if bytes.len() == 9 && bytes[0] == b'E' && bytes[1..].iter().all(u8::is_ascii_digit) {
        Ok(code.to_owned())
    } else {
        Err(GatewayError::Invalid {
            field,
            reason: "is not an English GSS code such as E06000001".into(),
        })
    }
}
