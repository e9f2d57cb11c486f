//! The gateway's handlers: who is calling (certificate and policy), may they
//! (the same `decide` the nodes apply), then route a lookup to the one
//! responsible node or ask every node at once, audit, answer.
use std::sync::Arc;
use std::time::Duration;

use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{authorize, forwarded, PolicyHandle, Right, Role};
use contactpoint_proto::identifier::RecordId;
use contactpoint_proto::v1 as pb;
use pb::authority_node_client::AuthorityNodeClient;
use pb::gateway_server::Gateway;
use prost::bytes::Bytes;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::error::GatewayError;
use crate::nodes::{on_behalf, Directory};
use crate::routes::Routes;
use crate::store::{AuditEntry, Store, TransferRow};
use crate::transfer::{requester_name, Transfers};

/// Most authorities a lookup follows when records have moved on.
const MAX_HOPS: usize = 4;
/// Most contributions in one batch, and how many are in flight at once.
const MAX_BATCH: usize = 1000;
const BATCH_CONCURRENCY: usize = 16;
/// Default and largest number of merged search matches.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

#[derive(Debug, Clone)]
pub struct GatewayService {
    store: Store,
    directory: Directory,
    policy: Arc<PolicyHandle>,
    search_deadline: Duration,
    lookup_timeout: Duration,
    transfers: Arc<Transfers>,
    /// Searches in 24 hours without a view that flag a user; 0 for never.
    flag_searches: u32,
    metrics: Arc<contactpoint_ops::Metrics>,
    /// Where records that left the authority that minted them are.
    routes: Arc<Routes>,
}

/// A caller with a verified certificate and the role the policy gives it.
struct Caller {
    identity: PeerIdentity,
    role: Option<Role>,
    /// Whether a person's access conditions are met today.
    admitted: Result<(), contactpoint_policy::Refusal>,
    /// When the call arrived, for its latency.
    started: std::time::Instant,
}

impl Caller {
    fn role_name(&self) -> String {
        self.role.as_ref().map(Role::to_wire).unwrap_or_default()
    }
}

/// A record a call is routed to, and where the index says it went if it
/// left the authority that minted it (`Routes::moved`, read once a call).
struct Sought<'a> {
    id: &'a RecordId,
    indexed: Option<String>,
}

/// What a handler reports for the audit and the span.
#[derive(Default)]
struct Outcome {
    record_ids: Vec<String>,
    authorities: Vec<String>,
    /// The reason the reader stated.
    reason: Option<String>,
    /// A search's parameters.
    query: Option<String>,
}

/// The reason a read states: required (RULES.md: every access states a reason).
fn stated_reason(reason: &str) -> Result<String, GatewayError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(GatewayError::Invalid {
            field: "reason",
            reason: "is required: say why you are looking (for example the enquiry or referral)"
                .into(),
        });
    }
    Ok(reason.to_owned())
}

impl GatewayService {
    /// The service over its store, nodes, policy and transfer worker, with
    /// the deadlines and thresholds of `config`.
    pub fn new(
        store: Store,
        directory: Directory,
        policy: Arc<PolicyHandle>,
        transfers: Arc<Transfers>,
        metrics: Arc<contactpoint_ops::Metrics>,
        routes: Arc<Routes>,
        config: &crate::GatewayConfig,
    ) -> Self {
        Self {
            store,
            directory,
            policy,
            search_deadline: Duration::from_millis(config.search_deadline_ms),
            lookup_timeout: Duration::from_millis(config.lookup_timeout_ms),
            transfers,
            flag_searches: config.flag_searches_without_view,
            metrics,
            routes,
        }
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let identity = PeerIdentity::from_request(request)
            .ok_or_else(|| GatewayError::Unauthenticated.into_status())?;
        let policy = self.policy.current();
        let role = policy.role_of(&identity).cloned();
        let today = chrono::Utc::now().date_naive();
        let admitted = role
            .as_ref()
            .map_or(Ok(()), |role| policy.admit(&identity, role, today));
        Ok(Caller {
            identity,
            role,
            admitted,
            started: std::time::Instant::now(),
        })
    }

    /// The caller's role, if it holds `right`; otherwise PermissionDenied
    /// citing why, and no node is called.
    fn require(caller: &Caller, right: Right) -> Result<&Role, GatewayError> {
        caller.admitted.clone()?;
        Ok(authorize(
            caller.role.as_ref(),
            &caller.identity,
            right,
            None,
        )?)
    }

    /// Audits and answers. An answer whose audit cannot be written is not given.
    async fn finish<T>(
        &self,
        caller: &Caller,
        method: &'static str,
        outcome: Outcome,
        result: Result<T, GatewayError>,
    ) -> Result<Response<T>, Status> {
        let outcome_name = self.observe(caller, method, &outcome, &result);
        if let Err(error) = self
            .store
            .audit(&audit_entry(caller, method, outcome, outcome_name))
            .await
        {
            return Err(GatewayError::Store(error).into_status());
        }
        // Per request at debug, as at the node: the audit and the metrics
        // count every call; a log line each would cost more than the routing.
        tracing::debug!(outcome = outcome_name, "handled");
        result.map(Response::new).map_err(GatewayError::into_status)
    }

    /// Counts the call in the metrics and names its outcome for the audit.
    fn observe<T>(
        &self,
        caller: &Caller,
        method: &'static str,
        outcome: &Outcome,
        result: &Result<T, GatewayError>,
    ) -> &'static str {
        let outcome_name = match result {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        let role = caller.role.as_ref().map_or("none", Role::kind);
        self.metrics
            .observe_call(method, outcome_name, role, caller.started);
        let span = tracing::Span::current();
        span.record("authorities", tracing::field::debug(&outcome.authorities));
        outcome_name
    }

    /// Finds the record at the responsible node: the index first, else the
    /// authority that minted the identifier; follows a node's answer that the
    /// record moved, and corrects the index to where it was found.
    async fn lookup(
        &self,
        caller: &PeerIdentity,
        role: &Role,
        id: &RecordId,
        indexed: Option<String>,
        asked: &pb::GetRecordRequest,
        outcome: &mut Outcome,
    ) -> Result<Bytes, GatewayError> {
        let message = pb::GetRecordRequest {
            id: id.to_string(),
            ..asked.clone()
        };
        self.routed(
            caller,
            role,
            Sought { id, indexed },
            &message,
            outcome,
            crate::passthrough::get_record,
        )
        .await
    }

    /// Calls the node responsible for the record `sought` with `message` on
    /// the caller's behalf, as `lookup` finds it: where the index says the
    /// record went, if it has left the authority that minted it, else that
    /// authority.
    async fn routed<M, R, F, Fut>(
        &self,
        caller: &PeerIdentity,
        role: &Role,
        sought: Sought<'_>,
        message: &M,
        outcome: &mut Outcome,
        call: F,
    ) -> Result<R, GatewayError>
    where
        M: Clone,
        F: Fn(Channel, Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<R>, Status>>,
    {
        let Sought { id, indexed } = sought;
        let minted = id.minting_authority().to_owned();
        let mut target = indexed.clone().unwrap_or_else(|| minted.clone());
        let first = target.clone();
        let mut asked_minting = indexed.is_none();
        let mut settled = false;
        loop {
            if outcome.authorities.contains(&target) || outcome.authorities.len() >= MAX_HOPS {
                return Err(GatewayError::NotFound(id.to_string()));
            }
            outcome.authorities.push(target.clone());
            let node = self
                .directory
                .get(&target)
                .ok_or_else(|| GatewayError::UnknownAuthority(target.clone()))?;
            let request = on_behalf(message.clone(), caller, role, self.lookup_timeout);
            let answer =
                tokio::time::timeout(self.lookup_timeout, call(node.channel(), request)).await;
            self.metrics
                .observe_node_call(&node.code, node_call_outcome(&answer));
            match answer {
                Ok(Ok(record)) => {
                    if target != first {
                        if self.store.set_route(id.as_str(), &target, &first).await? {
                            tracing::info!(authority = %target, "routing index updated from the node's answer");
                        }
                        // Either way the next lookup starts where this one ended.
                        self.routes.found(id, &target);
                    }
                    return Ok(record.into_inner());
                }
                Ok(Err(status))
                    if status.code() == Code::NotFound
                        && !settled
                        && status.metadata().get(forwarded::ARRIVING_HEADER).is_some() =>
                {
                    // Mid-transfer: finish the activation, then ask whoever is responsible.
                    settled = true;
                    let responsible = self.transfers.settle(id).await.map_err(|error| {
                        tracing::warn!(%error, "could not settle a transfer for a lookup");
                        GatewayError::NodeUnavailable {
                            code: node.code.clone(),
                            name: node.name.clone(),
                        }
                    })?;
                    let Some(code) = responsible else {
                        return Err(GatewayError::NotFound(id.to_string()));
                    };
                    outcome.authorities.retain(|asked| *asked != code);
                    target = code;
                }
                Ok(Err(status)) if status.code() == Code::NotFound => {
                    let moved_to = status
                        .metadata()
                        .get(forwarded::MOVED_TO_HEADER)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned);
                    if let Some(next) = moved_to {
                        target = next;
                    } else if !asked_minting && target != minted {
                        asked_minting = true;
                        target = minted.clone();
                    } else {
                        // The node's own answer, which may say more (merged
                        // into another record, archived).
                        return Err(GatewayError::Node(status));
                    }
                }
                Ok(Err(status)) if !is_unavailable(&status) => {
                    return Err(GatewayError::Node(status))
                }
                // The authority the index named is down; the minting one
                // holds the record or knows where it went.
                _ if !asked_minting && target != minted => {
                    asked_minting = true;
                    target = minted.clone();
                }
                _ => {
                    return Err(GatewayError::NodeUnavailable {
                        code: node.code.clone(),
                        name: node.name.clone(),
                    })
                }
            }
        }
    }

    /// Asks every node at once; merges what comes back within the deadline.
    async fn search(
        &self,
        caller: &PeerIdentity,
        role: &Role,
        query: &pb::SearchRecordsRequest,
    ) -> Result<pb::GatewaySearchResponse, GatewayError> {
        if query.surname.chars().all(|c| !c.is_alphanumeric()) {
            return Err(GatewayError::Invalid { field: "surname", reason: "is required: a search across authorities names the child's surname and date of birth, to find a child rather than list children".into() });
        }
        if query.date_of_birth.is_none() {
            return Err(GatewayError::Invalid { field: "date_of_birth", reason: "is required: a search across authorities names the child's surname and date of birth, to find a child rather than list children".into() });
        }
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let mut asks = tokio::task::JoinSet::new();
        for node in self.directory.iter().cloned() {
            let request = on_behalf(
                pb::SearchRecordsRequest {
                    limit,
                    ..query.clone()
                },
                caller,
                role,
                self.search_deadline,
            );
            let deadline = self.search_deadline;
            asks.spawn(async move {
                let answer =
                    tokio::time::timeout(deadline, node.client().search_records(request)).await;
                (node, answer)
            });
        }
        let mut response = pb::GatewaySearchResponse {
            authorities_asked: self.directory.len() as u32,
            ..Default::default()
        };
        while let Some(joined) = asks.join_next().await {
            let Ok((node, answer)) = joined else { continue };
            self.metrics
                .observe_node_call(&node.code, node_call_outcome(&answer));
            let reason = match answer {
                Ok(Ok(found)) => {
                    response.matches.extend(found.into_inner().matches);
                    continue;
                }
                // The caller's own input, refused by a node: the same everywhere.
                Ok(Err(status)) if status.code() == Code::InvalidArgument => {
                    return Err(GatewayError::Node(status))
                }
                Ok(Err(status)) if is_unavailable(&status) => "unavailable".to_owned(),
                Ok(Err(status)) => format!("{:?}", status.code()),
                Err(_) => format!("no answer within {} ms", self.search_deadline.as_millis()),
            };
            response.unanswered.push(pb::UnansweredAuthority {
                code: node.code.clone(),
                name: node.name.clone(),
                reason,
            });
        }
        response
            .matches
            .sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        // A record mid-transfer is shown by the old node (naming the new
        // authority) until it is released, and by the new one: show it once.
        let mut seen = std::collections::HashSet::new();
        response.matches.retain(|m| seen.insert(m.id.clone()));
        response.matches.truncate(limit as usize);
        response.unanswered.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(response)
    }
}

impl GatewayService {
    /// Flags a caller searching without ever viewing (RULES.md, audit). A
    /// flag that cannot be written is logged; the search was answered.
    async fn flag_unusual_searching(&self, caller: &Caller) {
        let who = &caller.identity;
        match self
            .store
            .flag_searches_without_views(
                &who.organisation,
                who.unit.as_deref(),
                &who.common_name,
                self.flag_searches,
            )
            .await
        {
            Ok(true) => {
                tracing::warn!(organisation = %who.organisation, "a user searched repeatedly without viewing a record: flagged for review")
            }
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "an audit flag could not be written"),
        }
    }

    /// One contribution, routed to its record's node.
    async fn contribute_one(
        &self,
        caller: &PeerIdentity,
        role: &Role,
        item: &pb::ContributeRequest,
        outcome: &mut Outcome,
    ) -> Result<pb::ContributeResponse, GatewayError> {
        let id = RecordId::parse(&item.id).map_err(|error| GatewayError::Invalid {
            field: "id",
            reason: error.to_string(),
        })?;
        outcome.record_ids.push(id.to_string());
        let message = pb::ContributeRequest {
            id: id.to_string(),
            ..item.clone()
        };
        self.routed(
            caller,
            role,
            Sought {
                id: &id,
                indexed: self.routes.moved(&id),
            },
            &message,
            outcome,
            |channel, request| async move {
                AuthorityNodeClient::new(channel).contribute(request).await
            },
        )
        .await
    }

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

    fn encode_transfer(&self, row: &TransferRow) -> pb::Transfer {
        let state = match row.state.as_str() {
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
        }
    }

    /// The authority responsible for a record now: asks the node the index
    /// (or the identifier) names, following where the record went.
    async fn locate(&self, id: &RecordId, outcome: &mut Outcome) -> Result<String, GatewayError> {
        let minted = id.minting_authority().to_owned();
        let mut target = self
            .store
            .route(id.as_str())
            .await?
            .unwrap_or_else(|| minted.clone());
        loop {
            if outcome.authorities.contains(&target) || outcome.authorities.len() >= MAX_HOPS {
                return Err(GatewayError::NotFound(id.to_string()));
            }
            outcome.authorities.push(target.clone());
            let node = self
                .directory
                .get(&target)
                .ok_or_else(|| GatewayError::UnknownAuthority(target.clone()))?;
            let mut request = tonic::Request::new(pb::ExportRecordRequest { id: id.to_string() });
            request.set_timeout(self.lookup_timeout);
            match node.client().export_record(request).await {
                Ok(_) => return Ok(target),
                Err(status) if status.code() == Code::NotFound => {
                    let moved_to = status
                        .metadata()
                        .get(forwarded::MOVED_TO_HEADER)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned);
                    match moved_to {
                        Some(next) => target = next,
                        None if target != minted => target = minted.clone(),
                        None => return Err(GatewayError::NotFound(id.to_string())),
                    }
                }
                Err(status) if !is_unavailable(&status) => return Err(GatewayError::Node(status)),
                Err(_) => {
                    return Err(GatewayError::NodeUnavailable {
                        code: node.code.clone(),
                        name: node.name.clone(),
                    })
                }
            }
        }
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

/// The audit entry of `caller`'s call of `method`.
fn audit_entry(
    caller: &Caller,
    method: &'static str,
    outcome: Outcome,
    outcome_name: &'static str,
) -> AuditEntry {
    AuditEntry {
        organisation: caller.identity.organisation.clone(),
        unit: caller.identity.unit.clone(),
        name: caller.identity.common_name.clone(),
        role: caller.role_name(),
        method,
        record_ids: outcome.record_ids,
        authorities: outcome.authorities,
        outcome: outcome_name,
        reason: outcome.reason,
        query: outcome.query,
    }
}

/// A lookup's audit entry, appended in a task of its own while the node is
/// asked. Until the lookup is concluded, dropping this (the caller went
/// away, or the call's deadline passed) records the lookup as `cancelled`
/// once the entry is in: a `routed` entry always means the caller was
/// given that authority's record.
struct Opening {
    store: Store,
    /// The authorities the entry names, kept when it is cancelled.
    authorities: Vec<String>,
    appended: Option<tokio::task::JoinHandle<Result<i64, crate::store::StoreError>>>,
}

impl Opening {
    fn append(store: &Store, entry: AuditEntry) -> Self {
        let writer = store.clone();
        Self {
            store: store.clone(),
            authorities: entry.authorities.clone(),
            appended: Some(tokio::spawn(async move { writer.audit(&entry).await })),
        }
    }

    /// Waits for the entry; then concludes it with `outcome` and
    /// `authorities` unless the lookup was answered as routed. A conclusion
    /// that cannot be written now is retried in the background, and the
    /// caller is told the gateway's database failed.
    async fn conclude(
        mut self,
        routed: bool,
        outcome: &'static str,
        authorities: &[String],
    ) -> Result<(), GatewayError> {
        let appended = self.appended.take().expect("concluded once");
        let event_id = appended
            .await
            .map_err(|_| GatewayError::Store(crate::store::StoreError::Lost))??;
        if routed {
            return Ok(());
        }
        if let Err(error) = self
            .store
            .conclude_audit(event_id, outcome, authorities)
            .await
        {
            tokio::spawn(conclude_later(
                self.store.clone(),
                event_id,
                outcome,
                authorities.to_vec(),
            ));
            return Err(GatewayError::Store(error));
        }
        Ok(())
    }
}

/// Attempts, a second apart, to record a lookup's outcome.
const CONCLUDE_RETRIES: usize = 60;

/// Records a lookup's outcome, trying again a second apart while the
/// gateway's database fails.
async fn conclude_later(
    store: Store,
    event_id: i64,
    outcome: &'static str,
    authorities: Vec<String>,
) {
    for attempt in 0..CONCLUDE_RETRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match store.conclude_audit(event_id, outcome, &authorities).await {
            Ok(()) => return,
            Err(error) if attempt + 1 == CONCLUDE_RETRIES => {
                tracing::error!(%error, event_id, outcome, "a lookup's audit entry still says routed")
            }
            Err(_) => {}
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let Some(appended) = self.appended.take() else {
            return;
        };
        let (store, authorities) = (self.store.clone(), std::mem::take(&mut self.authorities));
        tokio::spawn(async move {
            if let Ok(Ok(event_id)) = appended.await {
                conclude_later(store, event_id, "cancelled", authorities).await;
            }
        });
    }
}

/// Either authority's own staff, or an operator, may start, see and cancel
/// a transfer between them.
fn may_transfer<'a>(caller: &'a Caller, from: &str, to: &str) -> Result<&'a Role, GatewayError> {
    let role = caller.role.as_ref();
    Ok(
        authorize(role, &caller.identity, Right::StartTransfer, Some(from))
            .or_else(|_| authorize(role, &caller.identity, Right::StartTransfer, Some(to)))?,
    )
}

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

/// How a call to a node ended, for the metrics.
fn node_call_outcome<T>(
    answer: &Result<Result<T, Status>, tokio::time::error::Elapsed>,
) -> &'static str {
    match answer {
        Ok(Ok(_)) => "ok",
        Ok(Err(status)) if is_unavailable(status) => "unavailable",
        Ok(Err(_)) => "refused",
        Err(_) => "deadline",
    }
}

/// Statuses that mean the node could not be reached or did not finish.
fn is_unavailable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

impl GatewayService {
    /// `GetRecord`, answered with the record as the responsible node encoded
    /// it (`passthrough`): the node redacted it for the caller's role.
    pub(crate) async fn read_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<Bytes>, Status> {
        let caller = self.caller(&request)?;
        let span = tracing::info_span!("GetRecord", role = %caller.role_name(), authorities = tracing::field::Empty);
        async {
            let asked = request.get_ref();
            let mut outcome = Outcome::default();
            let checked = (|| {
                let role = Self::require(&caller, Right::ReadRecord)?;
                let id = RecordId::parse(&asked.id).map_err(|error| GatewayError::Invalid {
                    field: "id",
                    reason: error.to_string(),
                })?;
                outcome.record_ids.push(id.to_string());
                // Checked here too, so a read without a reason, or a refused
                // override, reaches no node.
                outcome.reason = Some(stated_reason(&asked.reason)?);
                if asked.override_shielding {
                    Self::require(&caller, Right::OverrideShielding)?;
                }
                Ok((role, id))
            })();
            let (role, id) = match checked {
                Ok(checked) => checked,
                Err(error) => return self.finish(&caller, "GetRecord", outcome, Err(error)).await,
            };
            // The access is audited while the node is asked: the entry,
            // committed before any answer, names the authority asked first
            // and says the lookup was routed there; it is corrected before
            // answering when the lookup ends any other way.
            let indexed = self.routes.moved(&id);
            let first = indexed
                .clone()
                .unwrap_or_else(|| id.minting_authority().to_owned());
            let opening = Opening::append(
                &self.store,
                audit_entry(
                    &caller,
                    "GetRecord",
                    Outcome {
                        record_ids: outcome.record_ids.clone(),
                        authorities: vec![first.clone()],
                        reason: outcome.reason.clone(),
                        query: None,
                    },
                    crate::store::ROUTED,
                ),
            );
            let result = self
                .lookup(&caller.identity, role, &id, indexed, asked, &mut outcome)
                .await;
            let outcome_name = self.observe(&caller, "GetRecord", &outcome, &result);
            let routed = result.is_ok() && outcome.authorities == [first];
            opening
                .conclude(routed, outcome_name, &outcome.authorities)
                .await
                .map_err(GatewayError::into_status)?;
            tracing::debug!(outcome = outcome_name, "handled");
            result.map(Response::new).map_err(GatewayError::into_status)
        }
        .instrument(span)
        .await
    }
}

#[tonic::async_trait]
impl Gateway for GatewayService {
    /// Served by `passthrough::GatewayRoutes` without decoding the record;
    /// this decodes it, for a `GatewayServer` used on its own.
    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        let (metadata, encoded, extensions) = self.read_record(request).await?.into_parts();
        let record = <pb::ChildRecord as prost::Message>::decode(encoded).map_err(|error| {
            Status::internal(format!("a node's record could not be read: {error}"))
        })?;
        Ok(Response::from_parts(metadata, record, extensions))
    }

    async fn search_records(
        &self,
        request: Request<pb::SearchRecordsRequest>,
    ) -> Result<Response<pb::GatewaySearchResponse>, Status> {
        let caller = self.caller(&request)?;
        let span = tracing::info_span!("SearchRecords", role = %caller.role_name(), authorities = tracing::field::Empty);
        async {
            let asked = request.get_ref();
            let mut outcome = Outcome {
                query: Some(contactpoint_proto::search_parameters(asked)),
                reason: Some(asked.reason.trim().to_owned()).filter(|reason| !reason.is_empty()),
                ..Outcome::default()
            };
            let result = async {
                let role = Self::require(&caller, Right::Search)?;
                stated_reason(&asked.reason)?;
                self.search(&caller.identity, role, asked).await
            }
            .await;
            if let Ok(found) = &result {
                outcome.record_ids = found.matches.iter().map(|m| m.id.clone()).collect();
                outcome.authorities = found
                    .matches
                    .iter()
                    .filter_map(|m| m.responsible_authority.as_ref().map(|a| a.code.clone()))
                    .collect();
                outcome.authorities.sort();
                outcome.authorities.dedup();
                outcome.authorities.extend(
                    found
                        .unanswered
                        .iter()
                        .map(|u| format!("unanswered:{}", u.code)),
                );
            }
            let answer = self.finish(&caller, "SearchRecords", outcome, result).await;
            if answer.is_ok() && self.flag_searches > 0 {
                self.flag_unusual_searching(&caller).await;
            }
            answer
        }
        .instrument(span)
        .await
    }

    async fn start_transfer(
        &self,
        request: Request<pb::StartTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let caller = self.caller(&request)?;
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
                let from = self.locate(&id, &mut outcome).await?;
                let role = may_transfer(&caller, &from, &to)?;
                if from == to {
                    return Err(GatewayError::Conflict(format!(
                        "authority {to} is already responsible for record {id}"
                    )));
                }
                outcome.authorities = vec![from.clone(), to.clone()];
                let journaled = self
                    .store
                    .insert_transfer(
                        id.as_str(),
                        &from,
                        &to,
                        &requester_name(&caller.identity),
                        &role.to_wire(),
                    )
                    .await?;
                let row = journaled.map_err(|open| {
                    GatewayError::Conflict(format!(
                        "record {id} is already in transfer {} ({})",
                        open.transfer_id, open.state
                    ))
                })?;
                let transfers = self.transfers.clone();
                let transfer_id = row.transfer_id.clone();
                tokio::spawn(async move { transfers.drive(transfer_id).await });
                Ok(self.encode_transfer(&row))
            }
            .await;
            self.finish(&caller, "StartTransfer", outcome, result).await
        }
        .instrument(span)
        .await
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let caller = self.caller(&request)?;
        let mut outcome = Outcome::default();
        let result = async {
            let row = self
                .visible_transfer(&caller, &request.get_ref().transfer_id)
                .await?;
            outcome.record_ids.push(row.record_id.clone());
            Ok(self.encode_transfer(&row))
        }
        .await;
        self.finish(&caller, "GetTransfer", outcome, result).await
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let caller = self.caller(&request)?;
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
            let (incoming, outgoing) = self.store.transfers_of(&authority).await?;
            Ok(pb::ListTransfersResponse {
                incoming: incoming
                    .iter()
                    .map(|row| self.encode_transfer(row))
                    .collect(),
                outgoing: outgoing
                    .iter()
                    .map(|row| self.encode_transfer(row))
                    .collect(),
            })
        }
        .await;
        self.finish(&caller, "ListTransfers", outcome, result).await
    }

    async fn cancel_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let caller = self.caller(&request)?;
        let mut outcome = Outcome::default();
        let result = async {
            let row = self
                .visible_transfer(&caller, &request.get_ref().transfer_id)
                .await?;
            outcome.record_ids.push(row.record_id.clone());
            if !self.store.request_cancel(&row.transfer_id).await? {
                return Err(GatewayError::Conflict(format!(
                    "transfer {} is past its cutover ({}) and cannot be cancelled",
                    row.transfer_id, row.state
                )));
            }
            let transfers = self.transfers.clone();
            let transfer_id = row.transfer_id.clone();
            tokio::spawn(async move { transfers.drive(transfer_id).await });
            let row = self.store.transfer(&row.transfer_id).await?.unwrap_or(row);
            Ok(self.encode_transfer(&row))
        }
        .await;
        self.finish(&caller, "CancelTransfer", outcome, result)
            .await
    }

    async fn contribute(
        &self,
        request: Request<pb::ContributeRequest>,
    ) -> Result<Response<pb::ContributeResponse>, Status> {
        let caller = self.caller(&request)?;
        let mut outcome = Outcome::default();
        let result = async {
            let role = Self::require(&caller, Right::Contribute)?;
            self.contribute_one(&caller.identity, role, request.get_ref(), &mut outcome)
                .await
        }
        .await;
        self.finish(&caller, "Contribute", outcome, result).await
    }

    async fn contribute_batch(
        &self,
        request: Request<pb::ContributeBatchRequest>,
    ) -> Result<Response<pb::ContributeBatchResponse>, Status> {
        let caller = self.caller(&request)?;
        let mut outcome = Outcome::default();
        let result = async {
            let role = Self::require(&caller, Right::Contribute)?.clone();
            let items = &request.get_ref().contributions;
            if items.len() > MAX_BATCH {
                return Err(GatewayError::Invalid {
                    field: "contributions",
                    reason: format!(
                        "has {} items; send at most {MAX_BATCH} in one batch",
                        items.len()
                    ),
                });
            }
            // Until answered, each says so (a task that failed leaves it).
            let unanswered = pb::ContributionOutcome {
                accepted: None,
                code: Code::Internal as i32,
                message: "not applied: the gateway could not process it; send it again".into(),
            };
            let mut outcomes = vec![unanswered; items.len()];
            // Contributions to one record go in order, one after another;
            // different records' go to their nodes a few at a time.
            let mut groups: Vec<Vec<usize>> = Vec::new();
            let mut group_of = std::collections::HashMap::new();
            for (index, item) in items.iter().enumerate() {
                let key = RecordId::parse(&item.id)
                    .map(|id| id.to_string())
                    .unwrap_or_else(|_| format!("#{index}"));
                let group = *group_of.entry(key).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[group].push(index);
            }
            for chunk in groups.chunks(BATCH_CONCURRENCY) {
                let mut calls = tokio::task::JoinSet::new();
                for indices in chunk {
                    let (service, identity, role) =
                        (self.clone(), caller.identity.clone(), role.clone());
                    let group: Vec<(usize, pb::ContributeRequest)> =
                        indices.iter().map(|&i| (i, items[i].clone())).collect();
                    calls.spawn(async move {
                        let mut answers = Vec::with_capacity(group.len());
                        for (index, item) in group {
                            let mut outcome = Outcome::default();
                            let answer = service
                                .contribute_one(&identity, &role, &item, &mut outcome)
                                .await;
                            answers.push((index, answer, outcome));
                        }
                        answers
                    });
                }
                while let Some(joined) = calls.join_next().await {
                    let Ok(answers) = joined else { continue };
                    for (index, answer, one) in answers {
                        outcome.record_ids.extend(one.record_ids);
                        outcome.authorities.extend(one.authorities);
                        outcomes[index] = match answer {
                            Ok(accepted) => pb::ContributionOutcome {
                                accepted: Some(accepted),
                                ..Default::default()
                            },
                            Err(error) => {
                                let status = error.into_status();
                                pb::ContributionOutcome {
                                    accepted: None,
                                    code: status.code() as i32,
                                    message: status.message().to_owned(),
                                }
                            }
                        };
                    }
                }
            }
            outcome.authorities.sort();
            outcome.authorities.dedup();
            Ok(pb::ContributeBatchResponse { outcomes })
        }
        .await;
        self.finish(&caller, "ContributeBatch", outcome, result)
            .await
    }

    async fn subject_access(
        &self,
        request: Request<pb::SubjectAccessRequest>,
    ) -> Result<Response<pb::SubjectAccessResponse>, Status> {
        let caller = self.caller(&request)?;
        let mut outcome = Outcome::default();
        let result = async {
            let body = request.get_ref();
            let role = Self::require(&caller, Right::ReadAudit)?;
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
            let responsible = self.locate(&id, &mut outcome).await?;
            authorize(
                Some(role),
                &caller.identity,
                Right::ReadAudit,
                Some(&responsible),
            )?;
            let mut authorities = self.store.transfer_authorities(id.as_str()).await?;
            authorities.push(id.minting_authority().to_owned());
            authorities.push(responsible);
            authorities.sort();
            authorities.dedup();
            outcome.authorities = authorities.clone();
            let mut asks = tokio::task::JoinSet::new();
            for code in &authorities {
                let node = self
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
                    self.lookup_timeout,
                );
                let timeout = self.lookup_timeout;
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
        self.finish(&caller, "SubjectAccess", outcome, result).await
    }

    async fn list_audit_flags(
        &self,
        request: Request<pb::ListAuditFlagsRequest>,
    ) -> Result<Response<pb::ListAuditFlagsResponse>, Status> {
        let caller = self.caller(&request)?;
        let result = async {
            let role = Self::require(&caller, Right::ReadAudit)?;
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
            let flags = self.store.audit_flags(body.after_id, limit).await?;
            Ok(pb::ListAuditFlagsResponse { flags })
        }
        .await;
        self.finish(&caller, "ListAuditFlags", Outcome::default(), result)
            .await
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
            access_refused: caller
                .admitted
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }))
    }
}
