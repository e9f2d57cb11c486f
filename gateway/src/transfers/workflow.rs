//! Transfers between authorities: a journaled, resumable workflow.
//!
//! A transfer moves through `awaiting_consent → requested → staged →
//! handed_over → activated → completed` (or `awaiting_consent/requested/staged
//! → cancelled`), one step at a time. `awaiting_consent` takes no step: the
//! sending authority's consent (`Store::consent_transfer`) moves it on and
//! starts a driver; every later step names that consent to the sending
//! node, which checks it against its own policy before the record leaves. Each
//! step calls a node, then records the new state in the gateway's journal in
//! one transaction (`Store::advance_transfer`). Every node step is idempotent,
//! so a worker that crashes between the node call and the journal simply
//! repeats the step; a worker that finds the state already moved on leaves it.
//!
//! - `requested → staged`: the old node's record is exported and staged at
//!   the new node, which serves it to no one.
//! - `staged → handed_over` (the cutover): the old node stops being
//!   responsible in one transaction of its own; from then it answers lookups
//!   with where the record went and refuses changes. Changes made before
//!   this moment are in the final content; none after it are accepted.
//! - `handed_over → activated`: the final content goes live at the new node,
//!   and the routing index points at it (same journal transaction).
//! - `activated → completed`: with a merge, the new node first merges the
//!   record into the survivor (`Transfers::merge`); the old node deletes
//!   its copy, keeping the forwarding and its own audit of the record.
//!
//! Between the cutover and activation (normally milliseconds, longer only if
//! a step fails) a lookup reaching the new node is told the record is
//! arriving; the gateway then completes the activation itself before
//! answering, so the record is never unfindable; searches still find it at
//! the old node, which names the new authority.
use std::sync::Arc;
use std::time::Duration;

use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{forwarded, Role};
use contactpoint_proto::identifier::RecordId;
use contactpoint_proto::v1 as pb;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue};
use tonic::Code;

use crate::nodes::{Directory, Node};
use crate::routes::Routes;
use crate::store::{Store, StoreError};
use crate::transfers::TransferRow;

/// Longest pause between retries of a waiting transfer.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one node call in a step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a step did not happen; the transfer waits and retries, and shows this.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("no node is configured for authority {0}")]
    NoNode(String),
    #[error("the node of {name} ({code}) did not answer: {message}")]
    Unreachable {
        code: String,
        name: String,
        message: String,
    },
    #[error("the node of {name} ({code}) refused the step: {message}")]
    Refused {
        code: String,
        name: String,
        message: String,
        grpc_code: Code,
    },
    #[error("gateway database: {0}")]
    Store(#[from] StoreError),
    #[error("no transfer {0}")]
    Unknown(String),
    #[error("the transfer names no consent of authority {0}'s management team, which must consent before the record moves")]
    NoConsent(String),
}

/// Runs transfers. Cheap to clone; every clone shares the same journal.
#[derive(Debug, Clone)]
pub struct Transfers {
    store: Store,
    directory: Directory,
    /// This gateway's moved routes, told of each activation at once.
    routes: Arc<Routes>,
    retry: Duration,
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "completed" | "cancelled")
}

/// A step refused for want of a consent the sending node accepts.
fn refuses_consent(error: &StepError) -> bool {
    match error {
        StepError::NoConsent(_) => true,
        StepError::Refused {
            grpc_code: Code::PermissionDenied,
            message,
            ..
        } => message.contains("consent"),
        _ => false,
    }
}

/// A transfer waiting for the sending authority's consent, with nothing to do.
fn awaits_consent(transfer: &TransferRow) -> bool {
    transfer.state == "awaiting_consent" && !transfer.cancel_requested
}

impl Transfers {
    pub fn new(store: Store, directory: Directory, routes: Arc<Routes>, retry: Duration) -> Self {
        Self {
            store,
            directory,
            routes,
            retry,
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    fn node(&self, code: &str) -> Result<&Node, StepError> {
        self.directory
            .get(code)
            .ok_or_else(|| StepError::NoNode(code.to_owned()))
    }

    /// A step request to a node: from the gateway, naming who asked for the
    /// transfer so the node's audit records it, and who consented to it,
    /// which the sending node checks before the record leaves it.
    fn step_request<T>(transfer: &TransferRow, message: T) -> tonic::Request<T> {
        let mut request = Self::forwarded_request(transfer, message, &Role::Gateway.to_wire());
        if let Some(consent) = &transfer.consented_by {
            request.metadata_mut().insert_bin(
                forwarded::CONSENT_HEADER,
                BinaryMetadataValue::from_bytes(&forwarded::encode_identity(&requester_identity(
                    consent,
                ))),
            );
        }
        request
    }

    /// A request to a node naming who asked for the transfer and the role
    /// asserted for the call.
    fn forwarded_request<T>(transfer: &TransferRow, message: T, role: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(STEP_TIMEOUT);
        let requester = requester_identity(&transfer.requested_by);
        let metadata = request.metadata_mut();
        metadata.insert_bin(
            forwarded::CALLER_HEADER,
            BinaryMetadataValue::from_bytes(&forwarded::encode_identity(&requester)),
        );
        if let Ok(role) = AsciiMetadataValue::try_from(role) {
            metadata.insert(forwarded::ROLE_HEADER, role);
        }
        request
    }

    async fn call<T, F>(node: &Node, step: F) -> Result<T, StepError>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(STEP_TIMEOUT, step).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status))
                if matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
                ) =>
            {
                Err(StepError::Unreachable {
                    code: node.code.clone(),
                    name: node.name.clone(),
                    message: status.message().to_owned(),
                })
            }
            Ok(Err(status)) => Err(StepError::Refused {
                code: node.code.clone(),
                name: node.name.clone(),
                message: status.message().to_owned(),
                grpc_code: status.code(),
            }),
            Err(_) => Err(StepError::Unreachable {
                code: node.code.clone(),
                name: node.name.clone(),
                message: "no answer in time".into(),
            }),
        }
    }

    /// Takes the next step of a transfer and journals it. Returns the state
    /// the transfer is in afterwards.
    pub async fn advance(&self, transfer_id: &str) -> Result<String, StepError> {
        let transfer = self
            .store
            .transfer(transfer_id)
            .await?
            .ok_or_else(|| StepError::Unknown(transfer_id.to_owned()))?;
        if is_terminal(&transfer.state) || awaits_consent(&transfer) {
            return Ok(transfer.state);
        }
        let (next, route) = match self.perform_step(&transfer).await {
            Err(error) if refuses_consent(&error) => {
                // The sending node does not accept the consent (or none was
                // journaled): the transfer waits for one it will.
                self.store
                    .withdraw_consent(&transfer, &error.to_string())
                    .await?;
                return Ok("awaiting_consent".to_owned());
            }
            stepped => stepped?,
        };
        let advanced = self.store.advance_transfer(&transfer, next, route).await?;
        if advanced && route.is_some() {
            if let Ok(id) = RecordId::parse(&transfer.record_id) {
                self.routes.found(&id, &transfer.to_code);
            }
        }
        Ok(self
            .store
            .transfer(transfer_id)
            .await?
            .map_or_else(|| next.to_owned(), |t| t.state))
    }

    /// Calls the node(s) for the step after `transfer.state` without
    /// journaling it: returns the next state and, at activation, the route's
    /// count of transfers for the routing index. Public so tests can stop a transfer between a node's
    /// work and the journal, as a crash would.
    pub async fn perform_step(
        &self,
        transfer: &TransferRow,
    ) -> Result<(&'static str, Option<i32>), StepError> {
        let id = || transfer.record_id.clone();
        let transfer_id = || transfer.transfer_id.clone();
        match (transfer.state.as_str(), transfer.cancel_requested) {
            ("awaiting_consent" | "requested" | "staged", true) => {
                // The old node decides, under its row lock, whether the
                // cutover happened first; only if not is the staged copy dropped.
                let from = self.node(&transfer.from_code)?;
                let to = self.node(&transfer.to_code)?;
                let abort = Self::step_request(
                    transfer,
                    pb::TransferRecordRequest {
                        transfer_id: transfer_id(),
                        id: id(),
                    },
                );
                match Self::call(from, from.client().abort_transfer_out(abort)).await {
                    Ok(_) => {}
                    Err(StepError::Refused {
                        grpc_code: Code::FailedPrecondition,
                        ..
                    }) => {
                        // Handed over already (the journal may lag the node,
                        // after a crash): the cancellation came too late.
                        return Ok(("handed_over", None));
                    }
                    Err(error) => return Err(error),
                }
                let request = Self::step_request(
                    transfer,
                    pb::TransferRecordRequest {
                        transfer_id: transfer_id(),
                        id: id(),
                    },
                );
                Self::call(to, to.client().cancel_transfer_in(request)).await?;
                Ok(("cancelled", None))
            }
            ("awaiting_consent", false) => Ok(("awaiting_consent", None)),
            ("requested", false) => {
                if transfer.consented_by.is_none() {
                    return Err(StepError::NoConsent(transfer.from_code.clone()));
                }
                let (from, to) = (
                    self.node(&transfer.from_code)?,
                    self.node(&transfer.to_code)?,
                );
                let exported = Self::call(
                    from,
                    from.client().export_record(Self::step_request(
                        transfer,
                        pb::ExportRecordRequest { id: id() },
                    )),
                )
                .await?;
                let stage = pb::TransferInRequest {
                    transfer_id: transfer_id(),
                    id: id(),
                    snapshot: exported.snapshot,
                };
                Self::call(
                    to,
                    to.client()
                        .stage_transfer_in(Self::step_request(transfer, stage)),
                )
                .await?;
                Ok(("staged", None))
            }
            ("staged", false) => {
                let from = self.node(&transfer.from_code)?;
                let to = self.node(&transfer.to_code)?;
                let hand_over = pb::HandOverRequest {
                    transfer_id: transfer_id(),
                    id: id(),
                    to: Some(pb::ResponsibleAuthority {
                        code: to.code.clone(),
                        name: to.name.clone(),
                    }),
                };
                Self::call(
                    from,
                    from.client()
                        .hand_over_record(Self::step_request(transfer, hand_over)),
                )
                .await?;
                Ok(("handed_over", None))
            }
            ("handed_over", _) => {
                let from = self.node(&transfer.from_code)?;
                let to = self.node(&transfer.to_code)?;
                // Hand-over is idempotent and returns the final content.
                let hand_over = pb::HandOverRequest {
                    transfer_id: transfer_id(),
                    id: id(),
                    to: Some(pb::ResponsibleAuthority {
                        code: to.code.clone(),
                        name: to.name.clone(),
                    }),
                };
                let last = Self::call(
                    from,
                    from.client()
                        .hand_over_record(Self::step_request(transfer, hand_over)),
                )
                .await?;
                let activate = pb::TransferInRequest {
                    transfer_id: transfer_id(),
                    id: id(),
                    snapshot: last.snapshot,
                };
                let activated = Self::call(
                    to,
                    to.client()
                        .activate_transfer_in(Self::step_request(transfer, activate)),
                )
                .await?;
                Ok((
                    "activated",
                    Some(i32::try_from(activated.moves).unwrap_or(i32::MAX)),
                ))
            }
            ("activated", _) => {
                if transfer.merge.is_some() && transfer.merge_outcome.is_none() {
                    self.merge(transfer).await?;
                }
                let from = self.node(&transfer.from_code)?;
                let release = pb::TransferRecordRequest {
                    transfer_id: transfer_id(),
                    id: id(),
                };
                Self::call(
                    from,
                    from.client()
                        .release_record(Self::step_request(transfer, release)),
                )
                .await?;
                Ok(("completed", None))
            }
            (state, _) => Ok((
                if state == "completed" {
                    "completed"
                } else {
                    "cancelled"
                },
                None,
            )),
        }
    }

    /// A transfer's merge, once its record is live at the destination: asks
    /// the destination's node, as the requester (its management team), to
    /// merge the record into the survivor, and journals the outcome. A
    /// merge done already (a repeat after a crash) is "merged"; a refusal
    /// (the survivor archived, say) is kept as the outcome and the transfer
    /// goes on, the record live and unmerged at its new authority.
    async fn merge(&self, transfer: &TransferRow) -> Result<(), StepError> {
        let Some(merge) = &transfer.merge else {
            return Ok(());
        };
        let to = self.node(&transfer.to_code)?;
        let request = Self::forwarded_request(
            transfer,
            pb::MergeRecordsRequest {
                id: merge.into.clone(),
                duplicate_id: transfer.record_id.clone(),
                reason: merge.reason.clone(),
            },
            &transfer.requested_role,
        );
        let outcome = match tokio::time::timeout(STEP_TIMEOUT, to.client().merge_records(request))
            .await
        {
            Ok(Ok(_)) => "merged".to_owned(),
            Ok(Err(status))
                if status
                    .metadata()
                    .get(forwarded::MERGED_INTO_HEADER)
                    .and_then(|value| value.to_str().ok())
                    == Some(merge.into.as_str()) =>
            {
                "merged".to_owned()
            }
            Ok(Err(status))
                if !matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
                ) =>
            {
                format!("not merged: {}", status.message())
            }
            Ok(Err(status)) => {
                return Err(StepError::Unreachable {
                    code: to.code.clone(),
                    name: to.name.clone(),
                    message: status.message().to_owned(),
                })
            }
            Err(_) => {
                return Err(StepError::Unreachable {
                    code: to.code.clone(),
                    name: to.name.clone(),
                    message: "no answer in time".into(),
                })
            }
        };
        self.store
            .note_merge_outcome(&transfer.transfer_id, &outcome)
            .await?;
        Ok(())
    }

    /// Advances a transfer until it ends, waiting and retrying (with
    /// backoff) while a step cannot be taken, and recording why.
    pub async fn drive(&self, transfer_id: String) {
        let mut backoff = self.retry;
        loop {
            match self.advance(&transfer_id).await {
                Ok(state) if is_terminal(&state) => {
                    tracing::info!(transfer = %transfer_id, state, "transfer ended");
                    return;
                }
                Ok(state) if state == "awaiting_consent" => {
                    // The consent, or a cancellation, starts a driver anew.
                    tracing::info!(transfer = %transfer_id, state, "transfer awaits consent");
                    return;
                }
                Ok(state) => {
                    tracing::info!(transfer = %transfer_id, state, "transfer step taken");
                    backoff = self.retry;
                }
                Err(StepError::Unknown(_)) => return,
                Err(error) => {
                    tracing::warn!(transfer = %transfer_id, %error, "transfer waiting; will retry");
                    if let Err(store_error) = self
                        .store
                        .note_waiting(&transfer_id, &error.to_string())
                        .await
                    {
                        tracing::warn!(%store_error, "cannot record why a transfer waits");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Starts a driver for every transfer the journal holds open: after a
    /// restart, every interrupted transfer resumes from its last step.
    pub async fn resume_all(self: Arc<Self>) -> Result<usize, StoreError> {
        let open = self.store.open_transfers().await?;
        let count = open.len();
        for transfer_id in open {
            tokio::spawn(self.clone().drive_owned(transfer_id));
        }
        Ok(count)
    }

    async fn drive_owned(self: Arc<Self>, transfer_id: String) {
        self.drive(transfer_id).await;
    }

    /// During a cutover, a lookup that reaches the new node before activation:
    /// asks the old node whether it has handed the record over. If it has,
    /// finishes the activation now (the steps are idempotent) so the lookup
    /// can be answered at the new node; if not, the old node still serves
    /// it. Returns the authority responsible now.
    pub async fn settle(&self, record_id: &RecordId) -> Result<Option<String>, StepError> {
        let Some(transfer) = self.store.open_transfer_for(record_id.as_str()).await? else {
            return Ok(None);
        };
        let from = self.node(&transfer.from_code)?;
        let mut request = tonic::Request::new(pb::ExportRecordRequest {
            id: record_id.to_string(),
        });
        request.set_timeout(STEP_TIMEOUT);
        let exported = Self::call(from, from.client().export_record(request)).await?;
        if exported.handed_over_by != transfer.transfer_id {
            return Ok(Some(transfer.from_code));
        }
        let mut state = transfer.state.clone();
        while matches!(state.as_str(), "staged" | "handed_over") {
            state = self.advance(&transfer.transfer_id).await?;
        }
        Ok(Some(transfer.to_code))
    }
}

/// The requester as the journal names them ("organisation/unit/name").
fn requester_identity(requested_by: &str) -> PeerIdentity {
    let mut parts = requested_by.splitn(3, '/');
    let organisation = parts.next().unwrap_or_default().to_owned();
    let unit = parts
        .next()
        .filter(|unit| !unit.is_empty())
        .map(str::to_owned);
    let common_name = parts.next().unwrap_or("unknown").to_owned();
    PeerIdentity {
        organisation,
        unit,
        common_name,
    }
}

/// How the journal names a requester.
pub fn requester_name(who: &PeerIdentity) -> String {
    format!(
        "{}/{}/{}",
        who.organisation,
        who.unit.as_deref().unwrap_or(""),
        who.common_name
    )
}
