//! The gRPC handlers of `contactpoint.v1.AuthorityNode`: authenticate the
//! caller from the verified certificate, decode and check the request, call
//! the store, audit, encode. Proto types stop here.
use std::sync::Arc;
use tonic::{Request, Response, Status};

use contactpoint_policy::{PolicyHandle, Refusal, Right, Role};
use contactpoint_proto::v1 as pb;
use pb::authority_node_server::AuthorityNode;

use crate::access::Caller;
use crate::clock::Clock;
use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::{Provenance, Snapshot};
use crate::redact::{redact, Reader};
use crate::store::{AuditEvent, Holding, Notify, Store};
use crate::wire::{self, Context};

/// The node's service.
#[derive(Debug, Clone)]
pub struct NodeService {
    store: Store,
    clock: Arc<dyn Clock>,
    policy: Arc<PolicyHandle>,
    metrics: Arc<contactpoint_ops::Metrics>,
}

/// Most routing events returned by one ReadRoutingFeed call.
const MAX_FEED_EVENTS: u32 = 1000;

impl NodeService {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        policy: Arc<PolicyHandle>,
        metrics: Arc<contactpoint_ops::Metrics>,
    ) -> Self {
        Self {
            store,
            clock,
            policy,
            metrics,
        }
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        Caller::of(request, &self.policy.current(), self.clock.today())
            .map_err(NodeError::into_status)
    }

    /// A record as the caller may see it: every record a node returns to a
    /// user, after a read or a change, passes through `redact`.
    fn view(&self, caller: &Caller, record: &crate::model::ChildRecord) -> pb::ChildRecord {
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
        redact(wire::encode_record(record), &reader)
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
            let id = wire::decode_id(&body.id, "id")?;
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
            let id = wire::decode_id(&body.id, "id")?;
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

    /// Refuses unless the caller may exercise `right` at this authority.
    fn require<'c>(
        &self,
        caller: &'c Caller,
        right: Right,
    ) -> Result<&'c contactpoint_policy::Role, NodeError> {
        caller.require(right, &self.store.authority().code)
    }

    /// A contributing body writes only the information the policy says it
    /// holds (regulation 11); the authority's own staff are not limited.
    fn may_write(
        &self,
        caller: &Caller,
        role: &Role,
        entry: &pb::add_entry_request::Entry,
    ) -> Result<(), NodeError> {
        if !matches!(role, Role::Contributor(_)) {
            return Ok(());
        }
        let Some(writing) = wire::entry_holding(entry) else {
            return Ok(()); // an entry of no kind: the decoder names the field
        };
        let policy = self.policy.current();
        let holds = policy.holdings_of(&caller.identity);
        if holds.contains(&writing) {
            return Ok(());
        }
        let held: Vec<String> = holds.iter().map(ToString::to_string).collect();
        Err(NodeError::Forbidden(Refusal {
            role: role.to_string(),
            reason: format!(
                "regulation 11: a body discloses the information it holds; {} holds {}, not {writing}",
                caller.identity.organisation,
                if held.is_empty() { "nothing".to_owned() } else { held.join(", ") }
            ),
        }))
    }

    /// One contribution, audited; the batch calls it for each.
    async fn contribution(
        &self,
        caller: &Caller,
        body: &pb::ContributeRequest,
    ) -> Result<pb::ContributeResponse, Status> {
        let result = async {
            let role = self.require(caller, Right::Contribute)?;
            let id = wire::decode_id(&body.id, "id")?;
            let entry = wire::contributed_entry(body.entry.as_ref())?;
            self.may_write(caller, role, &entry)?;
            let reference = wire::decode_body_reference(
                body.body_identifier.as_ref(),
                &caller.identity.organisation,
            )?;
            let provenance = Provenance {
                body_reference: reference
                    .as_ref()
                    .map(|r| format!("{}:{}", r.scheme, r.value)),
                ..supplier(caller)
            };
            let context = self.context();
            let (entry_id, superseded) = self
                .store
                .contribute(
                    &id,
                    |facts| wire::decode_entry(Some(&entry), facts, &context),
                    &provenance,
                    reference.as_ref(),
                    &audited_change(caller, Method::Contribute),
                )
                .await?;
            Ok(pb::ContributeResponse {
                id: id.to_string(),
                entry_id,
                superseded_entry_id: superseded.unwrap_or_default(),
            })
        }
        .await;
        self.finish(caller, Method::Contribute, audited_id(&body.id), result)
            .await
            .map(Response::into_inner)
    }

    fn context(&self) -> Context {
        Context {
            today: self.clock.today(),
        }
    }

    /// Audits the call and turns its outcome into a response. Reads are only
    /// answered once their audit entry is written. A change that succeeded
    /// was audited in its own transaction (`audited_change`), so is not again.
    async fn finish<T>(
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
enum Method {
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
}

impl Method {
    fn name(self) -> &'static str {
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
        }
    }

    /// Changes write their audit row inside their own transaction when they
    /// succeed; everything else is audited by `finish`.
    fn audits_in_transaction(self) -> bool {
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

/// AddEntry and EndEntry answer with the record, which a contributing body
/// may not read: a body writes, and ends, its entries with Contribute, which
/// keeps to what it holds and returns only identifiers.
fn not_a_body(role: &Role) -> Result<(), NodeError> {
    match role {
        Role::Contributor(_) => Err(NodeError::Forbidden(Refusal {
            role: role.to_string(),
            reason: "a contributing body writes (and ends, with the end date) only through Contribute, which keeps to what it holds and returns nothing of the record".into(),
        })),
        _ => Ok(()),
    }
}

/// Who supplied what a caller writes: its organisation, and unit if any.
fn supplier(caller: &Caller) -> Provenance {
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

/// RFC 3339 in UTC to the microsecond, so listings merged from several
/// nodes sort as text.
fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// What an access list shows, to anyone but a management team, in place of
/// a body that wrote to the record (regulation 6(a)).
const WITHHELD_WRITER: &str =
    "withheld: a body that supplied information (it may provide a sensitive service)";

/// Records written in one transaction of a load.
const LOAD_BATCH: usize = 1000;

/// Most contributions in one batch, and most rows a listing returns.
const MAX_BATCH: usize = 1000;
const MAX_LISTED: u32 = 1000;

/// The audit entry a successful change writes with itself.
fn audited_change(caller: &Caller, method: Method) -> AuditEvent<'_> {
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

/// The identifier to audit: canonical when it parses; nothing when it does
/// not (what was typed may be anything, even a name).
fn audited_id(typed: &str) -> Vec<String> {
    RecordId::parse(typed)
        .map(|id| vec![id.to_string()])
        .unwrap_or_default()
}

/// A short, non-personal name for an outcome, for the audit table.
fn error_kind(error: &NodeError) -> &'static str {
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
        NodeError::AlreadyEnded { .. } | NodeError::StaleVersion { .. } => "failed_precondition",
        NodeError::Unauthenticated => "unauthenticated",
        NodeError::Database(_) | NodeError::Pool(_) => "unavailable",
        NodeError::Corrupt(_) | NodeError::Internal(_) => "internal",
    }
}

#[tonic::async_trait]
impl AuthorityNode for NodeService {
    async fn create_record(
        &self,
        request: Request<pb::CreateRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let caller = self.caller(&request)?;
        let result = async {
            self.require(&caller, Right::MaintainRecord)?;
            let new = wire::decode_create(request.get_ref(), &self.context())?;
            self.store
                .create(
                    &new,
                    &supplier(&caller),
                    &audited_change(&caller, Method::CreateRecord),
                )
                .await
        }
        .await;
        let ids = result
            .as_ref()
            .map(|record| vec![record.id.to_string()])
            .unwrap_or_default();
        self.finish(
            &caller,
            Method::CreateRecord,
            ids,
            result.map(|record| self.view(&caller, &record)),
        )
        .await
    }

    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let mut caller = self.caller(&request)?;
        let body = request.get_ref();
        let reason_stated = caller.state_reason(&body.reason);
        let result = async {
            let role = self.require(&caller, Right::ReadRecord)?;
            let id = wire::decode_id(&body.id, "id")?;
            reason_stated?;
            if body.override_shielding {
                self.require(&caller, Right::OverrideShielding)?;
            }
            match self.store.lookup(&id).await? {
                Holding::Live(record) => {
                    let overridden = body.override_shielding && record.shield_reason.is_some();
                    let reader = Reader {
                        role,
                        organisation: &caller.identity.organisation,
                        override_shielding: overridden,
                        today: self.context().today,
                        archive_purpose: wire::decode_archive_purpose(body.archive_purpose)?,
                    };
                    if let Some(archived_on) = record.archived_on {
                        if !reader.may_see_archived(&record.responsible_authority.code, archived_on)
                        {
                            return Err(NodeError::Archived(id.to_string()));
                        }
                    }
                    let shares_surname =
                        wire::shares_surname(&caller.identity.common_name, &record.details);
                    Ok((
                        redact(wire::encode_record(&record), &reader),
                        overridden,
                        shares_surname,
                    ))
                }
                Holding::Arriving { transfer_id } => Err(NodeError::Arriving {
                    id: id.to_string(),
                    transfer_id,
                }),
                Holding::Moved { to } => Err(NodeError::Moved {
                    id: id.to_string(),
                    to,
                }),
                Holding::Merged { into } => Err(NodeError::Merged {
                    id: id.to_string(),
                    into,
                }),
                Holding::Absent => Err(NodeError::RecordNotFound(id.to_string())),
            }
        }
        .await;
        // The responsible authority is told, with the audit entry, when
        // shielding was overridden or another organisation viewed its record.
        let result = result.map(|(record, overridden, shares_surname)| {
            if overridden {
                tracing::warn!(authority = %self.store.authority().code, role = %caller.role_name(), "shielding overridden; the responsible authority is alerted");
                caller.notify.push(Notify::ShieldOverride);
            } else if !caller.is_own_staff_of(&self.store.authority().code) {
                caller.notify.push(Notify::ViewedByOtherOrganisation);
            }
            if shares_surname {
                caller.notify.push(Notify::ReaderSharesSurname);
            }
            record
        });
        self.finish(&caller, Method::GetRecord, audited_id(&body.id), result)
            .await
    }

    async fn update_record(
        &self,
        request: Request<pb::UpdateRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            self.require(&caller, Right::MaintainRecord)?;
            let id = wire::decode_id(&body.id, "id")?;
            let context = self.context();
            let details = wire::decode_details(body.details.as_ref(), "details", false, &context)?;
            self.store
                .update(
                    &id,
                    body.expected_version,
                    &details,
                    |before, entries| wire::check_update(before, &details, entries, &context),
                    &audited_change(&caller, Method::UpdateRecord),
                )
                .await
        }
        .await;
        self.finish(
            &caller,
            Method::UpdateRecord,
            audited_id(&body.id),
            result.map(|record| self.view(&caller, &record)),
        )
        .await
    }

    async fn add_entry(
        &self,
        request: Request<pb::AddEntryRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            let role = self.require(&caller, Right::Contribute)?;
            not_a_body(role)?;
            let id = wire::decode_id(&body.id, "id")?;
            let context = self.context();
            let (record, _entry_id) = self
                .store
                .add_entry(
                    &id,
                    |facts| wire::decode_entry(body.entry.as_ref(), facts, &context),
                    &supplier(&caller),
                    &audited_change(&caller, Method::AddEntry),
                )
                .await?;
            Ok(record)
        }
        .await;
        self.finish(
            &caller,
            Method::AddEntry,
            audited_id(&body.id),
            result.map(|record| self.view(&caller, &record)),
        )
        .await
    }

    async fn end_entry(
        &self,
        request: Request<pb::EndEntryRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            not_a_body(self.require(&caller, Right::Contribute)?)?;
            let id = wire::decode_id(&body.id, "id")?;
            let kind = wire::decode_entry_kind(body.kind, "kind")?;
            let ended_on = wire::decode_end_date(body.ended_on.as_ref(), &self.context())?;
            self.store
                .end_entry(
                    &id,
                    kind,
                    body.entry_id,
                    ended_on,
                    &audited_change(&caller, Method::EndEntry),
                )
                .await
        }
        .await;
        self.finish(
            &caller,
            Method::EndEntry,
            audited_id(&body.id),
            result.map(|record| self.view(&caller, &record)),
        )
        .await
    }

    async fn search_records(
        &self,
        request: Request<pb::SearchRecordsRequest>,
    ) -> Result<Response<pb::SearchRecordsResponse>, Status> {
        let mut caller = self.caller(&request)?;
        let reason_stated = caller.state_reason(&request.get_ref().reason);
        caller.query = Some(contactpoint_proto::search_parameters(request.get_ref()));
        let result = async {
            let role = self.require(&caller, Right::Search)?;
            let mut query = wire::decode_search(request.get_ref())?;
            reason_stated?;
            query.reveal_shielded = role.is_management_of(&self.store.authority().code);
            query.include_archived = query.reveal_shielded;
            self.store.search(&query).await
        }
        .await;
        let ids = result
            .as_ref()
            .map(|found| found.iter().map(|m| m.id.to_string()).collect())
            .unwrap_or_default();
        let response = result.map(|found| pb::SearchRecordsResponse {
            matches: found.iter().map(wire::encode_match).collect(),
        });
        self.finish(&caller, Method::SearchRecords, ids, response)
            .await
    }

    async fn read_routing_feed(
        &self,
        request: Request<pb::ReadRoutingFeedRequest>,
    ) -> Result<Response<pb::ReadRoutingFeedResponse>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            self.require(&caller, Right::ReadRoutingFeed)?;
            let limit = match body.limit {
                0 => MAX_FEED_EVENTS,
                n => n.min(MAX_FEED_EVENTS),
            };
            self.store.routing_feed(body.after_event_id, limit).await
        }
        .await;
        let events = match result {
            // Polls that find nothing new are not accesses to any record.
            Ok(events) if events.is_empty() => {
                return Ok(Response::new(pb::ReadRoutingFeedResponse {
                    events: vec![],
                }));
            }
            other => other,
        };
        let ids = events
            .as_ref()
            .map(|events| events.iter().map(|event| event.record_id.clone()).collect())
            .unwrap_or_default();
        let response = events.map(|events| pb::ReadRoutingFeedResponse {
            events: events
                .into_iter()
                .map(|event| pb::RoutingEvent {
                    event_id: event.event_id,
                    record_id: event.record_id,
                    authority_code: event.authority_code,
                    moves: event.moves,
                })
                .collect(),
        });
        self.finish(&caller, Method::ReadRoutingFeed, ids, response)
            .await
    }

    async fn export_record(
        &self,
        request: Request<pb::ExportRecordRequest>,
    ) -> Result<Response<pb::RecordSnapshot>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            self.require(&caller, Right::MoveRecord)?;
            let id = wire::decode_id(&body.id, "id")?;
            let (snapshot, handed_over_by) = self.store.export(&id).await?;
            let mut exported = encode_snapshot(&id, &snapshot)?;
            exported.handed_over_by = handed_over_by.unwrap_or_default();
            Ok(exported)
        }
        .await;
        self.finish(&caller, Method::ExportRecord, audited_id(&body.id), result)
            .await
    }

    async fn hand_over_record(
        &self,
        request: Request<pb::HandOverRequest>,
    ) -> Result<Response<pb::RecordSnapshot>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            self.require(&caller, Right::MoveRecord)?;
            let id = wire::decode_id(&body.id, "id")?;
            let to = body
                .to
                .as_ref()
                .ok_or_else(|| crate::error::Invalid::new("to", "is required"))?;
            let to = crate::model::ResponsibleAuthority {
                code: to.code.clone(),
                name: to.name.clone(),
            };
            if to.code == self.store.authority().code {
                return Err(crate::error::Invalid::new(
                    "to.code",
                    "is this authority: a record is handed over to another",
                )
                .into());
            }
            let audit = audited_change(&caller, Method::HandOverRecord);
            let snapshot = self
                .store
                .hand_over(transfer_id(&body.transfer_id)?, &id, &to, &audit)
                .await?;
            encode_snapshot(&id, &snapshot)
        }
        .await;
        self.finish(
            &caller,
            Method::HandOverRecord,
            audited_id(&body.id),
            result,
        )
        .await
    }

    async fn shield_record(
        &self,
        request: Request<pb::ShieldRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let mut caller = self.caller(&request)?;
        let body = request.get_ref();
        caller.reason = Some(body.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
        let result = async {
            let role = self.require(&caller, Right::Shield)?;
            let id = wire::decode_id(&body.id, "id")?;
            let Some(reason) = caller.reason.as_deref() else {
                return Err(crate::error::Invalid::new(
                    "reason",
                    "is required: say why the record is shielded or no longer shielded",
                )
                .into());
            };
            let audit = audited_change(&caller, Method::ShieldRecord);
            let record = self
                .store
                .shield(&id, body.shielded.then_some(reason), &audit)
                .await?;
            let reader = Reader {
                role,
                organisation: &caller.identity.organisation,
                override_shielding: false,
                today: self.context().today,
                archive_purpose: false,
            };
            Ok(redact(wire::encode_record(&record), &reader))
        }
        .await;
        self.finish(&caller, Method::ShieldRecord, audited_id(&body.id), result)
            .await
    }

    async fn release_record(
        &self,
        request: Request<pb::TransferRecordRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        self.record_step(request, Method::ReleaseRecord).await
    }

    async fn cancel_transfer_in(
        &self,
        request: Request<pb::TransferRecordRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        self.record_step(request, Method::CancelTransferIn).await
    }

    async fn abort_transfer_out(
        &self,
        request: Request<pb::TransferRecordRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        self.record_step(request, Method::AbortTransferOut).await
    }

    async fn stage_transfer_in(
        &self,
        request: Request<pb::TransferInRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        self.transfer_in_step(request, Method::StageTransferIn)
            .await
    }

    async fn activate_transfer_in(
        &self,
        request: Request<pb::TransferInRequest>,
    ) -> Result<Response<pb::TransferStepResponse>, Status> {
        self.transfer_in_step(request, Method::ActivateTransferIn)
            .await
    }

    async fn withdraw_consent(
        &self,
        request: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let mut caller = self.caller(&request)?;
        let body = request.get_ref();
        caller.reason = Some(body.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
        let result = async {
            self.require(&caller, Right::MaintainRecord)?;
            let id = wire::decode_id(&body.id, "id")?;
            if caller.reason.is_none() {
                return Err(crate::error::Invalid::new(
                    "reason",
                    "is required: record how the young person withdrew consent",
                )
                .into());
            }
            let audit = audited_change(&caller, Method::WithdrawConsent);
            self.store
                .withdraw_consent(&id, self.context().today, &audit)
                .await
        }
        .await;
        self.finish(
            &caller,
            Method::WithdrawConsent,
            audited_id(&body.id),
            result.map(|record| self.view(&caller, &record)),
        )
        .await
    }

    async fn contribute(
        &self,
        request: Request<pb::ContributeRequest>,
    ) -> Result<Response<pb::ContributeResponse>, Status> {
        let caller = self.caller(&request)?;
        self.contribution(&caller, request.get_ref())
            .await
            .map(Response::new)
    }

    async fn contribute_batch(
        &self,
        request: Request<pb::ContributeBatchRequest>,
    ) -> Result<Response<pb::ContributeBatchResponse>, Status> {
        let caller = self.caller(&request)?;
        let items = &request.get_ref().contributions;
        if items.len() > MAX_BATCH {
            return Err(NodeError::from(crate::error::Invalid::new(
                "contributions",
                format!(
                    "has {} items; send at most {MAX_BATCH} in one batch",
                    items.len()
                ),
            ))
            .into_status());
        }
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            outcomes.push(match self.contribution(&caller, item).await {
                Ok(accepted) => pb::ContributionOutcome {
                    accepted: Some(accepted),
                    ..Default::default()
                },
                Err(status) => pb::ContributionOutcome {
                    accepted: None,
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                },
            });
        }
        Ok(Response::new(pb::ContributeBatchResponse { outcomes }))
    }

    async fn merge_records(
        &self,
        request: Request<pb::MergeRecordsRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let mut caller = self.caller(&request)?;
        let body = request.get_ref();
        let reason_stated = caller.state_reason(&body.reason);
        let result = async {
            self.require(&caller, Right::MergeRecords)?;
            let keep = wire::decode_id(&body.id, "id")?;
            let duplicate = wire::decode_id(&body.duplicate_id, "duplicate_id")?;
            reason_stated?;
            if keep == duplicate {
                return Err(crate::error::Invalid::new(
                    "duplicate_id",
                    "is the record itself: name the duplicate to merge into it",
                )
                .into());
            }
            self.store
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
        self.finish(
            &caller,
            Method::MergeRecords,
            ids,
            result.map(|record| self.view(&caller, &record)),
        )
        .await
    }

    async fn list_record_accesses(
        &self,
        request: Request<pb::ListRecordAccessesRequest>,
    ) -> Result<Response<pb::ListRecordAccessesResponse>, Status> {
        let mut caller = self.caller(&request)?;
        let body = request.get_ref();
        // The subject access request's reason, when the gateway passes one on.
        let _ = caller.state_reason(&body.reason);
        let here = self.store.authority().code.clone();
        let result = async {
            let role = caller.require_anywhere(Right::ReadAudit)?;
            let id = wire::decode_id(&body.id, "id")?;
            match self.store.lookup(&id).await? {
                // Held here: this authority's staff and management team.
                Holding::Live(_) => {
                    self.require(&caller, Right::ReadAudit)?;
                }
                // Merged into another record here: the same.
                Holding::Merged { .. } => {
                    self.require(&caller, Right::ReadAudit)?;
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
            let accesses = self.store.record_accesses(&id, limit).await?;
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
        self.finish(
            &caller,
            Method::ListRecordAccesses,
            audited_id(&body.id),
            result,
        )
        .await
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let caller = self.caller(&request)?;
        let body = request.get_ref();
        let result = async {
            self.require(&caller, Right::ReadAudit)?;
            let limit = match body.limit {
                0 => MAX_LISTED,
                n => n.min(MAX_LISTED),
            };
            let rows = self.store.notifications(body.after_id, limit).await?;
            Ok(rows
                .into_iter()
                .map(|row| pb::Notification {
                    notification_id: row.notification_id,
                    kind: match row.kind.as_str() {
                        "shield_override" => pb::NotificationKind::ShieldOverride,
                        "viewed_by_other_organisation" => {
                            pb::NotificationKind::ViewedByOtherOrganisation
                        }
                        "possible_duplicate_of_shielded" => {
                            pb::NotificationKind::PossibleDuplicateOfShielded
                        }
                        "reader_shares_surname" => pb::NotificationKind::ReaderSharesSurname,
                        _ => pb::NotificationKind::Unspecified,
                    } as i32,
                    record_id: row.record_id,
                    at: rfc3339(row.at),
                    organisation: row.organisation,
                    name: row.name,
                    role: row.role,
                    reason: row.reason.unwrap_or_default(),
                    related_record_id: row.related_record_id.unwrap_or_default(),
                })
                .collect::<Vec<_>>())
        }
        .await;
        let ids = result
            .as_ref()
            .map(|found| {
                let mut ids: Vec<String> = found.iter().map(|n| n.record_id.clone()).collect();
                ids.sort();
                ids.dedup();
                ids
            })
            .unwrap_or_default();
        let response = result.map(|notifications| pb::ListNotificationsResponse { notifications });
        self.finish(&caller, Method::ListNotifications, ids, response)
            .await
    }

    async fn get_audit_checkpoint(
        &self,
        request: Request<pb::GetAuditCheckpointRequest>,
    ) -> Result<Response<pb::AuditCheckpoint>, Status> {
        let caller = self.caller(&request)?;
        if let Err(refused) = self.require(&caller, Right::WitnessAudit) {
            return self
                .finish(&caller, Method::GetAuditCheckpoint, vec![], Err(refused))
                .await;
        }
        // Reading a checkpoint touches no record: not an access to audit.
        let result: Result<_, NodeError> = async {
            let (last_event_id, head_hash, signature) =
                self.store.latest_checkpoint().await?.ok_or_else(|| {
                    NodeError::NotApplicable("the audit has no signed checkpoint yet".into())
                })?;
            Ok(pb::AuditCheckpoint {
                authority_code: self.store.authority().code.clone(),
                last_event_id,
                head_hash,
                signature,
            })
        }
        .await;
        result.map(Response::new).map_err(NodeError::into_status)
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = self.caller(&request)?;
        Ok(Response::new(pb::WhoAmIResponse {
            organisation: caller.identity.organisation.clone(),
            unit: caller.identity.unit.clone().unwrap_or_default(),
            common_name: caller.identity.common_name.clone(),
            role: caller.role_name(),
            role_description: caller
                .role
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            access_refused: caller.access_refused().unwrap_or_default(),
        }))
    }

    type LoadRecordsStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::LoadRecordsBatch, Status>>;

    async fn load_records(
        &self,
        request: Request<tonic::Streaming<pb::CreateRecordRequest>>,
    ) -> Result<Response<Self::LoadRecordsStream>, Status> {
        let caller = self.caller(&request)?;
        if let Err(refused) = self.require(&caller, Right::MaintainRecord) {
            return self
                .finish(&caller, Method::LoadRecords, vec![], Err(refused))
                .await;
        }
        let mut input = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        // Two stages, so the next batch is read and checked while the one
        // before is written: batches go to the writer in order, one waiting
        // at most.
        let (batches, mut to_write) = tokio::sync::mpsc::channel::<LoadBatch>(1);
        let writer = self.clone();
        tokio::spawn(async move {
            while let Some(batch) = to_write.recv().await {
                let answer = writer.write_batch(&caller, batch).await;
                if sender.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        let service = self.clone();
        tokio::spawn(async move {
            let mut batch = LoadBatch::default();
            let mut index = 0u32;
            loop {
                match input.message().await {
                    Ok(Some(request)) => {
                        match wire::decode_create(&request, &service.context()) {
                            Ok(record) => batch.records.push((index, record)),
                            Err(invalid) => batch.rejected.push(pb::RejectedRecord {
                                index,
                                reason: invalid.to_string(),
                            }),
                        }
                        index += 1;
                        if batch.records.len() + batch.rejected.len() >= LOAD_BATCH
                            && batches.send(std::mem::take(&mut batch)).await.is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => break,
                    // The caller went away or sent garbage: what was written
                    // (or is being written) stays written.
                    Err(status) => {
                        tracing::debug!(code = ?status.code(), "a load stream ended early");
                        return;
                    }
                }
            }
            if !batch.records.is_empty() || !batch.rejected.is_empty() {
                let _ = batches.send(batch).await;
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }
}

/// Records of a load awaiting their batch's transaction.
#[derive(Default)]
struct LoadBatch {
    records: Vec<(u32, crate::model::NewRecord)>,
    rejected: Vec<pb::RejectedRecord>,
}

impl NodeService {
    /// Writes one batch of a load; a batch that cannot be written is
    /// answered as refused, every record of it, and audited as such.
    async fn write_batch(&self, caller: &Caller, batch: LoadBatch) -> pb::LoadRecordsBatch {
        let LoadBatch {
            records,
            mut rejected,
        } = batch;
        if records.is_empty() {
            return pb::LoadRecordsBatch {
                loaded: vec![],
                rejected,
            };
        }
        let (indices, records): (Vec<u32>, Vec<_>) = records.into_iter().unzip();
        let written = self
            .store
            .load(
                &records,
                &supplier(caller),
                &audited_change(caller, Method::LoadRecords),
            )
            .await;
        match written {
            Ok(ids) => pb::LoadRecordsBatch {
                loaded: indices
                    .into_iter()
                    .zip(ids)
                    .map(|(index, id)| pb::LoadedRecord {
                        index,
                        id: id.to_string(),
                    })
                    .collect(),
                rejected,
            },
            Err(error) => {
                // The status's words (never the database's own error text).
                let reason = format!(
                    "not loaded, load it again: {}",
                    error_kind(&error).replace('_', " ")
                );
                let _ = self
                    .finish::<()>(caller, Method::LoadRecords, vec![], Err(error))
                    .await;
                rejected.extend(indices.into_iter().map(|index| pb::RejectedRecord {
                    index,
                    reason: reason.clone(),
                }));
                pb::LoadRecordsBatch {
                    loaded: vec![],
                    rejected,
                }
            }
        }
    }
}
