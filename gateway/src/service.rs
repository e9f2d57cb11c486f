//! The gateway's service and what every handler shares: who is calling
//! (the verified certificate, and the role the policy in force gives it),
//! whether that role holds the right (the same `decide` the nodes apply),
//! and `finish`, which audits a call and then answers it. Each method of
//! [`Gateway`] hands its request to its concern's module: `lookup`
//! (`GetRecord`), `search`, `transfers`, `contributions`, `audit`.
//!
//! Invariants: every call a handler answers (but `WhoAmI`, which reads
//! nothing) is audited before its answer leaves, and an answer whose audit
//! cannot be written is not given (RULES.md, Audit: "every access is
//! audited"); a role without the right is refused, citing why, before any
//! node is called (RULES.md, Reading: regulations 6 and 9); a person's role
//! counts only while their access conditions are met (RULES.md, Reading:
//! training, an enhanced criminal record check, a signed user agreement);
//! errors become statuses only through `GatewayError::into_status`.
use std::sync::Arc;
use std::time::Duration;

use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{authorize, PolicyHandle, Right, Role};
use contactpoint_proto::v1 as pb;
use pb::gateway_server::Gateway;
use tonic::{Code, Request, Response, Status};

use crate::error::GatewayError;
use crate::nodes::Directory;
use crate::routes::Routes;
use crate::store::{AuditEntry, Store};
use crate::transfers::Transfers;

#[derive(Debug, Clone)]
pub struct GatewayService {
    pub(crate) store: Store,
    pub(crate) directory: Directory,
    policy: Arc<PolicyHandle>,
    pub(crate) search_deadline: Duration,
    pub(crate) lookup_timeout: Duration,
    pub(crate) transfers: Arc<Transfers>,
    /// Searches in 24 hours without a view that flag a user; 0 for never.
    pub(crate) flag_searches: u32,
    pub(crate) metrics: Arc<contactpoint_ops::Metrics>,
    /// Where records that left the authority that minted them are.
    pub(crate) routes: Arc<Routes>,
    /// The federation's matching keys: searches then go only where the
    /// blind index says.
    pub(crate) matching: Option<Arc<contactpoint_matching::blocking::MatchingKeys>>,
}

/// A caller with a verified certificate and the role the policy gives it.
pub(crate) struct Caller {
    pub(crate) identity: PeerIdentity,
    pub(crate) role: Option<Role>,
    /// Whether a person's access conditions are met today.
    pub(crate) admitted: Result<(), contactpoint_policy::Refusal>,
    /// When the call arrived, for its latency.
    pub(crate) started: std::time::Instant,
}

impl Caller {
    pub(crate) fn role_name(&self) -> String {
        self.role.as_ref().map(Role::to_wire).unwrap_or_default()
    }
}

/// What a handler reports for the audit and the span.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) record_ids: Vec<String>,
    pub(crate) authorities: Vec<String>,
    /// The reason the reader stated.
    pub(crate) reason: Option<String>,
    /// A search's parameters.
    pub(crate) query: Option<String>,
}

/// The reason a read states: required (RULES.md: every access states a reason).
pub(crate) fn stated_reason(reason: &str) -> Result<String, GatewayError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(GatewayError::Invalid {
            field: "reason",
            reason: "is required: say why you are looking (for example the enquiry or referral)"
                .into(),
        });
    }
    use contactpoint_proto::limits::{check_text, REASON_CHARS};
    check_text(reason, REASON_CHARS, true).map_err(|why| GatewayError::Invalid {
        field: "reason",
        reason: why,
    })?;
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
            matching: None,
        }
    }

    /// Routes tolerant searches by the blind index, hashing under `keys`.
    pub fn with_matching_keys(
        mut self,
        keys: Option<Arc<contactpoint_matching::blocking::MatchingKeys>>,
    ) -> Self {
        self.matching = keys;
        self
    }

    pub(crate) fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
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
    pub(crate) fn require(caller: &Caller, right: Right) -> Result<&Role, GatewayError> {
        caller.admitted.clone()?;
        Ok(authorize(
            caller.role.as_ref(),
            &caller.identity,
            right,
            None,
        )?)
    }

    /// Audits and answers. An answer whose audit cannot be written is not given.
    pub(crate) async fn finish<T>(
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
    pub(crate) fn observe<T>(
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
}

/// The audit entry of `caller`'s call of `method`.
pub(crate) fn audit_entry(
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

/// How a call to a node ended, for the metrics.
pub(crate) fn node_call_outcome<T>(
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
pub(crate) fn is_unavailable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// `WhoAmI`: who the gateway takes the caller to be, and whether their
/// role is refused today; nothing is read, so nothing is audited.
fn who_am_i(
    service: &GatewayService,
    request: Request<pb::WhoAmIRequest>,
) -> Result<Response<pb::WhoAmIResponse>, Status> {
    let caller = service.caller(&request)?;
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

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::ChildRecord>, Status> {
        crate::lookup::get_record(self, request).await
    }

    async fn search_records(
        &self,
        request: Request<pb::SearchRecordsRequest>,
    ) -> Result<Response<pb::GatewaySearchResponse>, Status> {
        crate::search::search_records(self, request).await
    }

    async fn start_transfer(
        &self,
        request: Request<pb::StartTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        crate::transfers::start_transfer(self, request).await
    }

    async fn consent_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        crate::transfers::consent_transfer(self, request).await
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        crate::transfers::get_transfer(self, request).await
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        crate::transfers::list_transfers(self, request).await
    }

    async fn cancel_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        crate::transfers::cancel_transfer(self, request).await
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

    async fn subject_access(
        &self,
        request: Request<pb::SubjectAccessRequest>,
    ) -> Result<Response<pb::SubjectAccessResponse>, Status> {
        crate::audit::subject_access(self, request).await
    }

    async fn list_audit_flags(
        &self,
        request: Request<pb::ListAuditFlagsRequest>,
    ) -> Result<Response<pb::ListAuditFlagsResponse>, Status> {
        crate::audit::list_audit_flags(self, request).await
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        who_am_i(self, request)
    }
}
