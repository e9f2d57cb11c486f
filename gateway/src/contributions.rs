//! Contributions (`Contribute`, `ContributeBatch`; RULES.md, Contributing
//! information: regulation 11): a Schedule 4 or 5 body's information, routed
//! to its record's node like a lookup. The node checks that the body holds
//! what it writes (a school its own attendance, para 7; a GP practice its own
//! registration, para 8), decodes it with every rule of the schedules (a
//! sensitive service keeps its ground) and replaces the body's superseded
//! entry; the gateway checks the `Contribute` right before any node is asked.
//!
//! Invariants: a batch answers each contribution on its own, in order;
//! contributions to one record are applied one after another; the body reads
//! nothing back; the call is audited once, naming every record and authority.
use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{Right, Role};
use contactpoint_proto::identifier::RecordId;
use contactpoint_proto::v1 as pb;
use pb::authority_node_client::AuthorityNodeClient;
use tonic::{Code, Request, Response, Status};

use crate::error::GatewayError;
use crate::lookup::Sought;
use crate::service::{GatewayService, Outcome};

/// Most contributions in one batch, and how many are in flight at once.
const MAX_BATCH: usize = 1000;
const BATCH_CONCURRENCY: usize = 16;

/// `Contribute`: one contribution, routed to its record's node.
pub(crate) async fn contribute(
    service: &GatewayService,
    request: Request<pb::ContributeRequest>,
) -> Result<Response<pb::ContributeResponse>, Status> {
    let caller = service.caller(&request)?;
    let mut outcome = Outcome::default();
    let result = async {
        let role = GatewayService::require(&caller, Right::Contribute)?;
        service
            .contribute_one(&caller.identity, role, request.get_ref(), &mut outcome)
            .await
    }
    .await;
    service.finish(&caller, "Contribute", outcome, result).await
}

/// `ContributeBatch`: at most `MAX_BATCH` contributions, each answered on
/// its own.
pub(crate) async fn contribute_batch(
    service: &GatewayService,
    request: Request<pb::ContributeBatchRequest>,
) -> Result<Response<pb::ContributeBatchResponse>, Status> {
    let caller = service.caller(&request)?;
    let mut outcome = Outcome::default();
    let result = async {
        let role = GatewayService::require(&caller, Right::Contribute)?.clone();
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
                    (service.clone(), caller.identity.clone(), role.clone());
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
    service
        .finish(&caller, "ContributeBatch", outcome, result)
        .await
}

impl GatewayService {
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
}
