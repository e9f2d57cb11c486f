//! The node's gRPC service (`contactpoint.v1.AuthorityNode`): the
//! [`NodeService`] handle, what every handler shares (the caller from the
//! verified certificate, the right it needs, today, the audit of the call
//! and its answer), and the dispatch of each method to the module of its
//! concern. Proto types stop at the handlers.

use std::sync::Arc;
use tonic::{Request, Response, Status};

use contactpoint_policy::{PolicyHandle, Right, Role};
use contactpoint_proto::v1 as pb;
use pb::authority_node_server::AuthorityNode;

use crate::access::Caller;
use crate::clock::Clock;
use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::Provenance;
use crate::redact::{redact, Reader};
use crate::store::{AuditEvent, Store};
use crate::wire::Context;

/// The node's service.
#[derive(Debug, Clone)]
pub struct NodeService {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: Arc<PolicyHandle>,
    pub(crate) metrics: Arc<contactpoint_ops::Metrics>,
    /// Signs the audit's head for the gateway's witness.
    pub(crate) audit_signer: Arc<crate::audit::CheckpointSigner>,
}

impl NodeService {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        policy: Arc<PolicyHandle>,
        metrics: Arc<contactpoint_ops::Metrics>,
        audit_signer: Arc<crate::audit::CheckpointSigner>,
    ) -> Self {
        Self {
            store,
            clock,
            policy,
            metrics,
            audit_signer,
        }
    }

    pub(crate) fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        Caller::of(request, &self.policy.current(), self.clock.today())
            .map_err(NodeError::into_status)
    }

    /// A record as the caller may see it: every record a node returns to a
    /// user, after a read or a change, passes through `redact`.
    pub(crate) fn view(
        &self,
        caller: &Caller,
        record: &crate::model::ChildRecord,
    ) -> pb::ChildRecord {
        let reader = Reader {
            role: caller
                .role
                .as_ref()
                .unwrap_or(&contactpoint_policy::Role::Operator),
            organisation: &caller.identity.organisation,
            override_shielding: false,
            today: self.context().today,
            archive_purpose: false,
        };
        redact(crate::records::wire::encode_record(record), &reader)
    }

    /// Refuses unless the caller may exercise `right` at this authority.
    pub(crate) fn require<'c>(
        &self,
        caller: &'c Caller,
        right: Right,
    ) -> Result<&'c contactpoint_policy::Role, NodeError> {
        caller.require(right, &self.store.authority().code)
    }

    pub(crate) fn context(&self) -> Context {
        Context {
            today: self.clock.today(),
        }
    }

    /// Audits the call and turns its outcome into a response. Reads are only
    /// answered once their audit entry is written. A change that succeeded
    /// was audited in its own transaction (`audited_change`), so is not again.
    pub(crate) async fn finish<T>(
        &self,
        caller: &Caller,
        method: Method,
        record_ids: Vec<String>,
        result: Result<T, NodeError>,
    ) -> Result<Response<T>, Status> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error_kind(error),
        };
        let role = caller.role.as_ref().map_or("none", Role::kind);
        self.metrics
            .observe_call(method.name(), outcome, role, caller.started);
        if result.is_ok() && method.audits_in_transaction() {
            tracing::debug!(method = method.name(), organisation = %caller.identity.organisation, "handled");
            return result.map(Response::new).map_err(NodeError::into_status);
        }
        let event = AuditEvent {
            record_ids,
            outcome,
            ..audited_change(caller, method)
        };
        if let Err(error) = self.store.audit(&event).await {
            // An access that cannot be audited is not answered.
            return Err(error.into_status());
        }
        tracing::debug!(method = method.name(), organisation = %caller.identity.organisation, outcome, "handled");
        result.map(Response::new).map_err(NodeError::into_status)
    }
}

/// The node's methods, as the audit names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    CreateRecord,
    GetRecord,
    UpdateRecord,
    AddEntry,
    EndEntry,
    SearchRecords,
    ReadRoutingFeed,
    ExportRecord,
    StageTransferIn,
    HandOverRecord,
    ActivateTransferIn,
    ReleaseRecord,
    CancelTransferIn,
    AbortTransferOut,
    ShieldRecord,
    WithdrawConsent,
    Contribute,
    MergeRecords,
    ListRecordAccesses,
    ListNotifications,
    GetAuditCheckpoint,
    LoadRecords,
    NotePossibleDuplicate,
}

impl Method {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::CreateRecord => "CreateRecord",
            Self::GetRecord => "GetRecord",
            Self::UpdateRecord => "UpdateRecord",
            Self::AddEntry => "AddEntry",
            Self::EndEntry => "EndEntry",
            Self::SearchRecords => "SearchRecords",
            Self::ReadRoutingFeed => "ReadRoutingFeed",
            Self::ExportRecord => "ExportRecord",
            Self::StageTransferIn => "StageTransferIn",
            Self::HandOverRecord => "HandOverRecord",
            Self::ActivateTransferIn => "ActivateTransferIn",
            Self::ReleaseRecord => "ReleaseRecord",
            Self::CancelTransferIn => "CancelTransferIn",
            Self::AbortTransferOut => "AbortTransferOut",
            Self::ShieldRecord => "ShieldRecord",
            Self::WithdrawConsent => "WithdrawConsent",
            Self::Contribute => "Contribute",
            Self::MergeRecords => "MergeRecords",
            Self::ListRecordAccesses => "ListRecordAccesses",
            Self::ListNotifications => "ListNotifications",
            Self::GetAuditCheckpoint => "GetAuditCheckpoint",
            Self::LoadRecords => "LoadRecords",
            Self::NotePossibleDuplicate => "NotePossibleDuplicate",
        }
    }

    /// Changes write their audit row inside their own transaction when they
    /// succeed; everything else is audited by `finish`.
    pub(crate) fn audits_in_transaction(self) -> bool {
        !matches!(
            self,
            Self::GetRecord
                | Self::SearchRecords
                | Self::ReadRoutingFeed
                | Self::ExportRecord
                | Self::ListRecordAccesses
                | Self::ListNotifications
                | Self::GetAuditCheckpoint
        )
    }
}

/// Who supplied what a caller writes: its organisation, and unit if any.
pub(crate) fn supplier(caller: &Caller) -> Provenance {
    let who = &caller.identity;
    Provenance {
        supplied_by: match &who.unit {
            Some(unit) => format!("{}/{unit}", who.organisation),
            None => who.organisation.clone(),
        },
        body_reference: None,
        supplied_at: None,
    }
}

/// Most rows a listing returns.
pub(crate) const MAX_LISTED: u32 = 1000;

/// The audit entry a successful change writes with itself.
pub(crate) fn audited_change(caller: &Caller, method: Method) -> AuditEvent<'_> {
    AuditEvent {
        organisation: &caller.identity.organisation,
        unit: caller.identity.unit.as_deref(),
        name: &caller.identity.common_name,
        method: method.name(),
        record_ids: vec![],
        outcome: "ok",
        reason: caller.reason.as_deref(),
        role: caller.role_name(),
        via: caller.via.as_ref().map(ToString::to_string),
        query: caller.query.clone(),
        notifications: caller.notify.clone(),
    }
}

/// The identifier to audit: canonical when it parses; nothing when it does
/// not (what was typed may be anything, even a name).
pub(crate) fn audited_id(typed: &str) -> Vec<String> {
    RecordId::parse(typed)
        .map(|id| vec![id.to_string()])
        .unwrap_or_default()
}

/// A short, non-personal name for an outcome, for the audit table.
pub(crate) fn error_kind(error: &NodeError) -> &'static str {
    match error {
        NodeError::Invalid(_) => "invalid_argument",
        NodeError::RecordNotFound(_)
        | NodeError::EntryNotFound { .. }
        | NodeError::Moved { .. }
        | NodeError::Merged { .. }
        | NodeError::Arriving { .. }
        | NodeError::Archived(_) => "not_found",
        NodeError::TransferConflict(_) | NodeError::NotApplicable(_) => "failed_precondition",
        NodeError::BadSnapshot(_) => "invalid_argument",
        NodeError::Forbidden(_) => "permission_denied",
        NodeError::RoleDisputed(_) => "role_disputed",
        NodeError::AlreadyEnded { .. } | NodeError::StaleVersion { .. } => "failed_precondition",
        NodeError::Unauthenticated => "unauthenticated",
        NodeError::Database(_) | NodeError::Pool(_) => "unavailable",
        NodeError::Corrupt(_) | NodeError::Internal(_) => "internal",
    }
}

/// The node's methods, each handled in the module of its concern.
#[tonic::async_trait]
impl AuthorityNode for NodeService {
    type LoadRecordsStream = crate::records::load::LoadStream;

    async fn create_record(
        &self,
        request: Request<pb::CreateRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::records::create_record(self, request).await
    }

    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::records::get_record(self, request).await
    }

    async fn update_record(
        &self,
        request: Request<pb::UpdateRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::records::update_record(self, request).await
    }

    async fn add_entry(
        &self,
        request: Request<pb::AddEntryRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::records::entries::add_entry(self, request).await
    }

    async fn end_entry(
        &self,
        request: Request<pb::EndEntryRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::records::entries::end_entry(self, request).await
    }

    async fn search_records(
        &self,
        request: Request<pb::SearchRecordsRequest>,
    ) -> Result<Response<pb::SearchRecordsResponse>, Status> {
        crate::search::search_records(self, request).await
    }

    async fn read_routing_feed(
        &self,
        request: Request<pb::ReadRoutingFeedRequest>,
    ) -> Result<Response<pb::ReadRoutingFeedResponse>, Status> {
        crate::routing_feed::read_routing_feed(self, request).await
    }

    async fn note_possible_duplicate(
        &self,
        request: Request<pb::NotePossibleDuplicateRequest>,
    ) -> Result<Response<pb::NotePossibleDuplicateResponse>, Status> {
        crate::duplicates::note_possible_duplicate(self, request).await
    }

    async fn export_record(
        &self,
        request: Request<pb::ExportRecordRequest>,
    ) -> Result<Response<pb::RecordSnapshot>, Status> {
        crate::transfers::export_record(self, request).await
    }

    async fn hand_over_record(
        &self,
        request: Request<pb::HandOverRequest>,
    ) -> Result<Response<pb::RecordSnapshot>, Status> {
        crate::transfers::hand_over_record(self, request).await
    }

    async fn shield_record(
        &self,
        request: Request<pb::ShieldRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::shielding::shield_record(self, request).await
    }

    async fn release_record(
        &self,
        request: Request<pb::TransferRecordRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        crate::transfers::release_record(self, request).await
    }

    async fn cancel_transfer_in(
        &self,
        request: Request<pb::TransferRecordRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        crate::transfers::cancel_transfer_in(self, request).await
    }

    async fn abort_transfer_out(
        &self,
        request: Request<pb::TransferRecordRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        crate::transfers::abort_transfer_out(self, request).await
    }

    async fn stage_transfer_in(
        &self,
        request: Request<pb::TransferInRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        crate::transfers::stage_transfer_in(self, request).await
    }

    async fn activate_transfer_in(
        &self,
        request: Request<pb::TransferInRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        crate::transfers::activate_transfer_in(self, request).await
    }

    async fn withdraw_consent(
        &self,
        request: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::consent::withdraw_consent(self, request).await
    }

    async fn contribute(
        &self,
        request: Request<pb::ContributeRequest>,
    ) -> Result<Response<pb::ContributeResponse>, Status> {
        crate::contributions::contribute(self, request).await
    }

    async fn contribute_batch(
        &self,
        request: Request<pb::ContributeBatchRequest>,
    ) -> Result<Response<pb::ContributeBatchResponse>, Status> {
        crate::contributions::contribute_batch(self, request).await
    }

    async fn merge_records(
        &self,
        request: Request<pb::MergeRecordsRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::records::merge::merge_records(self, request).await
    }

    async fn list_record_accesses(
        &self,
        request: Request<pb::ListRecordAccessesRequest>,
    ) -> Result<Response<pb::ListRecordAccessesResponse>, Status> {
        crate::audit::subject_access::list_record_accesses(self, request).await
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        crate::notifications::list_notifications(self, request).await
    }

    async fn get_audit_checkpoint(
        &self,
        request: Request<pb::GetAuditCheckpointRequest>,
    ) -> Result<Response<pb::AuditCheckpoint>, Status> {
        crate::audit::get_audit_checkpoint(self, request).await
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        crate::access::who_am_i(self, request).await
    }

    async fn load_records(
        &self,
        request: Request<tonic::Streaming<pb::CreateRecordRequest>>,
    ) -> Result<Response<Self::LoadRecordsStream>, Status> {
        crate::records::load::load_records(self, request).await
    }
}
