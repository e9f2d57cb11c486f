//! Lookups (`GetRecord`) and the routing that contributions and transfers
//! share: a record is at the node of the one authority responsible for it
//! (Schedule 1 para 19), the authority that minted its identifier until it
//! moves. The gateway asks the node the moved routes name (`crate::routes`),
//! else the minting authority's, on the caller's behalf; follows a node's
//! answer that the record went elsewhere (at most `MAX_HOPS` authorities);
//! and corrects the routing index to where it found the record. The node
//! redacts the record for the caller's role (RULES.md, Reading: regulation
//! 6), and the gateway passes it on as the node encoded it
//! (`crate::passthrough`).
//!
//! Invariants: a read states a reason, and one without, or with a refused
//! shielding override, reaches no node (RULES.md, Reading: "every access
//! states a reason"); the lookup's audit entry is appended while the node is
//! asked and committed before any answer leaves, corrected first when the
//! lookup ends other than as routed (`opening`); a transfer's newer route is
//! never overwritten by an answer given before it (`Store::set_route`); SQL
//! only in `store`.
mod opening;
mod store;

use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{forwarded, Right, Role};
use contactpoint_proto::identifier::RecordId;
use contactpoint_proto::v1 as pb;
use prost::bytes::Bytes;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::error::GatewayError;
use crate::nodes::on_behalf;
use crate::service::{
    audit_entry, is_unavailable, node_call_outcome, stated_reason, GatewayService, Outcome,
};
use opening::Opening;

/// Most authorities a lookup follows when records have moved on.
const MAX_HOPS: usize = 4;

/// A record a call is routed to, and where the index says it went if it
/// left the authority that minted it (`Routes::moved`, read once a call).
pub(crate) struct Sought<'a> {
    pub(crate) id: &'a RecordId,
    pub(crate) indexed: Option<String>,
}

/// `GetRecord`, answered with the record as the responsible node encoded
/// it (`passthrough`): the node redacted it for the caller's role.
pub(crate) async fn read_record(
    service: &GatewayService,
    request: Request<pb::GetRecordRequest>,
) -> Result<Response<Bytes>, Status> {
    let caller = service.caller(&request)?;
    let span = tracing::info_span!("GetRecord", role = %caller.role_name(), authorities = tracing::field::Empty);
    async {
        let asked = request.get_ref();
        let mut outcome = Outcome::default();
        let checked = (|| {
            let role = GatewayService::require(&caller, Right::ReadRecord)?;
            let id = RecordId::parse(&asked.id).map_err(|error| GatewayError::Invalid {
                field: "id",
                reason: error.to_string(),
            })?;
            outcome.record_ids.push(id.to_string());
            // Checked here too, so a read without a reason, or a refused
            // override, reaches no node.
            outcome.reason = Some(stated_reason(&asked.reason)?);
            if asked.override_shielding {
                GatewayService::require(&caller, Right::OverrideShielding)?;
            }
            Ok((role, id))
        })();
        let (role, id) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                return service
                    .finish(&caller, "GetRecord", outcome, Err(error))
                    .await
            }
        };
        // The access is audited while the node is asked: the entry,
        // committed before any answer, names the authority asked first
        // and says the lookup was routed there; it is corrected before
        // answering when the lookup ends any other way.
        let indexed = service.routes.moved(&id);
        let first = indexed
            .clone()
            .unwrap_or_else(|| id.minting_authority().to_owned());
        let opening = Opening::append(
            &service.store,
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
        let result = service
            .lookup(&caller.identity, role, &id, indexed, asked, &mut outcome)
            .await;
        let outcome_name = service.observe(&caller, "GetRecord", &outcome, &result);
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

/// Served by `passthrough::GatewayRoutes` without decoding the record;
/// this decodes it, for a `GatewayServer` used on its own.
pub(crate) async fn get_record(
    service: &GatewayService,
    request: Request<pb::GetRecordRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let (metadata, encoded, extensions) = read_record(service, request).await?.into_parts();
    let record = <pb::ChildRecord as prost::Message>::decode(encoded)
        .map_err(|error| Status::internal(format!("a node's record could not be read: {error}")))?;
    Ok(Response::from_parts(metadata, record, extensions))
}

impl GatewayService {
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
    pub(crate) async fn routed<M, R, F, Fut>(
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
                // Merged into another record: the node's answer names it.
                Ok(Err(status)) if merged(&status) => return Err(GatewayError::Node(status)),
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

    /// The authority responsible for a record now: asks the node the index
    /// (or the identifier) names, following where the record went.
    pub(crate) async fn locate(
        &self,
        id: &RecordId,
        outcome: &mut Outcome,
    ) -> Result<String, GatewayError> {
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
                Err(status) if merged(&status) => return Err(GatewayError::Node(status)),
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
}

/// A node's NotFound for a record merged into another there.
fn merged(status: &Status) -> bool {
    status.code() == Code::NotFound
        && status
            .metadata()
            .get(forwarded::MERGED_INTO_HEADER)
            .is_some()
}
