//! Searches (`SearchRecords`) across every authority: the gateway asks every
//! node at once, with a deadline, on the caller's behalf; each node matches
//! and redacts for the caller's role (RULES.md, Reading: regulations 6 and 9,
//! and shielding: a search never matches a shielded record on a hidden
//! field, which the node ensures). The gateway merges the matches best
//! first, each record once, and lists each authority that did not answer,
//! so a partial result says it is partial.
//!
//! Invariants: a search names the child's surname and date of birth (a
//! tolerant one: or year of birth), to find a child rather than list
//! children, and states a reason; matches merge by score, then match weight; it is audited with
//! its parameters and the records returned (RULES.md, Audit: "including the
//! query parameters and the results returned"); a user who makes
//! `flag_searches_without_view` searches in a day without viewing a record is
//! flagged for review (RULES.md, Audit: "many searches without a following
//! view").
use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{Right, Role};
use contactpoint_proto::v1 as pb;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::error::GatewayError;
use crate::nodes::on_behalf;
use crate::service::{
    is_unavailable, node_call_outcome, stated_reason, Caller, GatewayService, Outcome,
};

/// Default and largest number of merged search matches.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// `SearchRecords`: every node asked at once; audited with the parameters
/// and the records returned, then the caller checked for searching unseen.
pub(crate) async fn search_records(
    service: &GatewayService,
    request: Request<pb::SearchRecordsRequest>,
) -> Result<Response<pb::GatewaySearchResponse>, Status> {
    let caller = service.caller(&request)?;
    let span = tracing::info_span!("SearchRecords", role = %caller.role_name(), authorities = tracing::field::Empty);
    async {
        let asked = request.get_ref();
        let mut outcome = Outcome {
            query: Some(contactpoint_proto::search_parameters(asked)),
            reason: Some(asked.reason.trim().to_owned()).filter(|reason| !reason.is_empty()),
            ..Outcome::default()
        };
        let result = async {
            let role = GatewayService::require(&caller, Right::Search)?;
            stated_reason(&asked.reason)?;
            service.search(&caller.identity, role, asked).await
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
        let answer = service
            .finish(&caller, "SearchRecords", outcome, result)
            .await;
        if answer.is_ok() && service.flag_searches > 0 {
            service.flag_unusual_searching(&caller).await;
        }
        answer
    }
    .instrument(span)
    .await
}

impl GatewayService {
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
        // Only a tolerant search may know just the year (the nodes check it).
        let year_will_do = query.mode == pb::MatchMode::Tolerant as i32 && query.year_of_birth != 0;
        if query.date_of_birth.is_none() && !year_will_do {
            return Err(GatewayError::Invalid { field: "date_of_birth", reason: "is required: a search across authorities names the child's surname and date of birth (a TOLERANT search: or year of birth), to find a child rather than list children".into() });
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
        response.matches.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| b.match_weight.total_cmp(&a.match_weight))
                .then_with(|| a.id.cmp(&b.id))
        });
        // A record mid-transfer is shown by the old node (naming the new
        // authority) until it is released, and by the new one: show it once.
        let mut seen = std::collections::HashSet::new();
        response.matches.retain(|m| seen.insert(m.id.clone()));
        response.matches.truncate(limit as usize);
        response.unanswered.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(response)
    }

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
}
