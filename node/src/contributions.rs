//! Contributions (regulation 11; Schedules 4 and 5): a body that must (or
//! may) disclose the Schedule 1 information it holds writes it to the
//! record, through the gateway or directly.
//!
//! Invariants: a body writes only what the policy says it holds (a school
//! its own attendance, a GP practice its own registration); its entry is
//! checked with every schedule rule (a sensitive service needs its ground),
//! and replaces, in one transaction, the body's own open entry of that kind
//! for the same provider or person (superseded information), recording the
//! body's identifier for the child (para 18); the body reads nothing back.
//! A batch answers each contribution on its own, in order.

use contactpoint_policy::{Refusal, Right, Role};
use contactpoint_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::access::Caller;
use crate::audit::insert_audit;
use crate::error::{Invalid, NodeError};
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::entries;
use crate::records::entries::{entry_columns, entry_subject, insert_entry};
use crate::service::supplier;
use crate::service::{audited_change, audited_id, Method, NodeService};
use crate::store::{bump_version, lock_record, AuditEvent, Result, Store};
use crate::wire::{decode_id, required, RecordFacts};
use contactpoint_policy::Holding;

/// Most contributions in one batch.
const MAX_BATCH: usize = 1000;

pub(crate) async fn contribute(
    node: &NodeService,
    request: Request<pb::ContributeRequest>,
) -> Result<Response<pb::ContributeResponse>, Status> {
    let caller = node.caller(&request)?;
    node.contribution(&caller, request.get_ref())
        .await
        .map(Response::new)
}

pub(crate) async fn contribute_batch(
    node: &NodeService,
    request: Request<pb::ContributeBatchRequest>,
) -> Result<Response<pb::ContributeBatchResponse>, Status> {
    let caller = node.caller(&request)?;
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
        outcomes.push(match node.contribution(&caller, item).await {
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

impl NodeService {
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
        let Some(writing) = entry_holding(entry) else {
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
            let id = decode_id(&body.id, "id")?;
            let entry = contributed_entry(body.entry.as_ref())?;
            self.may_write(caller, role, &entry)?;
            let reference = decode_body_reference(
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
                    |facts| entries::decode_entry(Some(&entry), facts, &context),
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
}

impl Store {
    /// A contribution by a body (regulation 11): the entry `decode` reads,
    /// checked against the record under its row lock, replaces the body's
    /// own open entry of the same kind (its superseded information) if it has
    /// one; the body's identifier for the child (para 18) is recorded or
    /// updated. Returns the new entry's id and the superseded entry's.
    pub async fn contribute(
        &self,
        id: &RecordId,
        decode: impl FnOnce(RecordFacts) -> std::result::Result<Entry, Invalid>,
        provenance: &Provenance,
        reference: Option<&BodyIdentifier>,
        audit: &AuditEvent<'_>,
    ) -> Result<(i64, Option<i64>)> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (facts, _) = lock_record(&tx, id).await?;
        let entry = decode(facts)?;
        let (table, _, end) = entry_columns(entry.kind());
        let (service_kind, who) = match &entry {
            Entry::Service(s) => (Some(s.kind.as_db()), s.provider_name.clone()),
            Entry::Contact(c) => (
                None,
                format!("{} {}", c.name.given_names, c.name.family_name),
            ),
            Entry::Education(e) => (None, e.provider_name.clone()),
            Entry::CafAssessment(a) => (None, a.assessor_name.clone()),
            Entry::LeadProfessional(l) => (None, l.name.clone()),
        };
        // The body's own open entry for the same provider (or person) and,
        // for a service, of the same kind: what this contribution supersedes.
        // Table and column names come from `entry_columns` and
        // `entry_subject`, never from input.
        let subject = entry_subject(entry.kind());
        let same_kind = if service_kind.is_some() {
            "AND kind = $3"
        } else {
            "AND $3::text IS NULL"
        };
        let superseded: Option<i64> = tx
            .query_opt(
                &format!(
                    "SELECT entry_id FROM {table}
                     WHERE record_id = $1 AND supplied_by = $2 AND {end} IS NULL {same_kind}
                       AND {subject} = $4
                     ORDER BY entry_id DESC LIMIT 1 FOR UPDATE"
                ),
                &[&id.as_str(), &provenance.supplied_by, &service_kind, &who],
            )
            .await?
            .map(|row| row.get(0));
        if let Some(old) = superseded {
            tx.execute(&format!("DELETE FROM {table} WHERE entry_id = $1"), &[&old])
                .await?;
        }
        let entry_id = insert_entry(&tx, id, &entry, Some(provenance)).await?;
        if let Some(reference) = reference {
            let updated = tx
                .execute(
                    &tx.prepare_cached("UPDATE body_identifier SET value = $4 WHERE record_id = $1 AND body = $2 AND scheme = $3").await?,
                    &[&id.as_str(), &reference.body, &reference.scheme, &reference.value],
                )
                .await?;
            if updated == 0 {
                tx.execute(
                    &tx.prepare_cached("INSERT INTO body_identifier (record_id, position, body, scheme, value)
                     SELECT $1, COALESCE(max(position) + 1, 0), $2, $3, $4 FROM body_identifier WHERE record_id = $1").await?,
                    &[&id.as_str(), &reference.body, &reference.scheme, &reference.value],
                )
                .await?;
            }
        }
        bump_version(&tx, id).await?;
        insert_audit(&tx, audit, id).await?;
        tx.commit().await?;
        Ok((entry_id, superseded))
    }
}

/// Which of the information a body may hold (regulation 11) an entry is;
/// an entry of no kind is left for the decoder to refuse.
pub fn entry_holding(entry: &pb::add_entry_request::Entry) -> Option<Holding> {
    use pb::add_entry_request::Entry as E;
    Some(match entry {
        E::Contact(_) => Holding::Contact,
        E::Education(_) => Holding::Education,
        E::Service(service) => match pb::ServiceKind::try_from(service.kind).ok()? {
            pb::ServiceKind::PrimaryMedical => Holding::PrimaryMedical,
            pb::ServiceKind::SpecialistOrTargeted => Holding::TargetedService,
            pb::ServiceKind::HealthVisitor => Holding::HealthVisitor,
            pb::ServiceKind::SchoolNurse => Holding::SchoolNurse,
            pb::ServiceKind::Midwife => Holding::Midwife,
            pb::ServiceKind::Unspecified => return None,
        },
        E::CafAssessment(_) => Holding::CafAssessment,
        E::LeadProfessional(_) => Holding::LeadProfessional,
    })
}

/// A contribution's entry, as the entry an AddEntry would carry.
pub fn contributed_entry(
    entry: Option<&pb::contribute_request::Entry>,
) -> Result<pb::add_entry_request::Entry, Invalid> {
    use pb::add_entry_request::Entry as A;
    use pb::contribute_request::Entry as C;
    Ok(match required(entry, "entry")? {
        C::Contact(value) => A::Contact(value.clone()),
        C::Education(value) => A::Education(value.clone()),
        C::Service(value) => A::Service(value.clone()),
        C::CafAssessment(value) => A::CafAssessment(value.clone()),
        C::LeadProfessional(value) => A::LeadProfessional(value.clone()),
    })
}

/// The body's identifier for the child a contribution carries (para 18).
pub fn decode_body_reference(
    value: Option<&pb::BodyIdentifier>,
    body: &str,
) -> Result<Option<BodyIdentifier>, Invalid> {
    let Some(value) = value else { return Ok(None) };
    let scheme = value.scheme.trim();
    let number = value.value.trim();
    if scheme.is_empty() || number.is_empty() {
        return Err(Invalid::new(
            "body_identifier",
            "needs both a scheme and a value (for example UPN and the pupil's number)",
        ));
    }
    Ok(Some(BodyIdentifier {
        body: body.to_owned(),
        scheme: scheme.to_owned(),
        value: number.to_owned(),
    }))
}
