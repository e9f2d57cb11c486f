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
use contactpoint_ops::limits::Charge;
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
            // A search costs the caller one request for every authority it
            // asked: the admission took one; the rest, into debt if need be.
            if let Some(charge) = request.extensions().get::<Charge>() {
                charge.take(f64::from(found.authorities_asked.saturating_sub(1)));
            }
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
        check_search(query)?;
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let asked = self
            .authorities_for(self.matching.as_deref(), query)
            .await?;
        let nodes: Vec<_> = self
            .directory
            .iter()
            .filter(|node| {
                asked
                    .as_ref()
                    .is_none_or(|asked| asked.contains(&node.code))
            })
            .cloned()
            .collect();
        tracing::Span::current().record("authorities", nodes.len());
        let mut asks = tokio::task::JoinSet::new();
        for node in nodes.iter().cloned() {
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
            authorities_asked: nodes.len() as u32,
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

/// What every node would refuse, refused here: the blind index may ask no
/// node at all, and a bad search must still be told what is wrong.
fn check_search(query: &pb::SearchRecordsRequest) -> Result<(), GatewayError> {
    let invalid = |field, reason: &str| GatewayError::Invalid {
        field,
        reason: reason.into(),
    };
    contactpoint_proto::limits::check_search(query)
        .map_err(|(field, reason)| invalid(field, &reason))?;
    let mode = pb::MatchMode::try_from(query.mode)
        .map_err(|_| invalid("mode", "is not a match mode: EXACT or TOLERANT"))?;
    let surname = contactpoint_matching::keys::surname_key(&query.surname);
    if surname.is_empty() {
        return Err(invalid("surname", "is required: a search across authorities names the child's surname and date of birth, to find a child rather than list children"));
    }
    if let Some(date) = &query.date_of_birth {
        if chrono::NaiveDate::from_ymd_opt(date.year, date.month, date.day).is_none() {
            return Err(invalid("date_of_birth", "is not a date"));
        }
    }
    // Only a tolerant search may know just the year (the nodes check its range).
    let year_will_do = mode == pb::MatchMode::Tolerant && query.year_of_birth != 0;
    if query.date_of_birth.is_none() && !year_will_do {
        return Err(invalid("date_of_birth", "is required: a search across authorities names the child's surname and date of birth (a TOLERANT search: or year of birth), to find a child rather than list children"));
    }
    if mode == pb::MatchMode::Tolerant && surname.chars().count() < 2 {
        return Err(invalid("surname", "needs two letters or more: a tolerant search on one letter would list children rather than find one"));
    }
    if query.year_of_birth != 0
        && (query.date_of_birth.is_some() || mode != pb::MatchMode::Tolerant)
    {
        return Err(invalid(
            "year_of_birth",
            "is for a TOLERANT search when the date of birth is not known: give one or the other",
        ));
    }
    let postcode = match mode {
        pb::MatchMode::Tolerant => contactpoint_matching::keys::search_postcode(&query.postcode),
        _ => contactpoint_matching::keys::canonical_postcode(&query.postcode),
    };
    if !query.postcode.trim().is_empty() && postcode.is_none() {
        return Err(invalid("postcode", "is not a UK postcode (for example SW1A 1AA; a TOLERANT search: or its district or sector)"));
    }
    if query.gender != 0 && pb::Gender::try_from(query.gender).is_err() {
        return Err(invalid("gender", "is not a gender this contract knows"));
    }
    Ok(())
}
