//! Entries of a record (Schedule 1 paras 6 to 14: contacts, education,
//! services, CAF assessments, lead professionals), added and ended by the
//! responsible authority's staff, each with its provenance (who supplied it,
//! when: para 20). A contributing body writes its entries through
//! `contributions` instead, which keeps to what it holds.
//!
//! Invariants: an entry is checked against the record it joins (category,
//! date of birth) read under the record's row lock; a sensitive service
//! (para 12) carries its ground (consent or significant harm); table and
//! column names spliced into SQL come only from `entry_columns` and
//! `entry_subject`.

use chrono::NaiveDate;
use contactpoint_policy::{Refusal, Right, Role};
use contactpoint_proto::v1 as pb;
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::audit::insert_audit;
use crate::error::{Invalid, NodeError};
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::read::load;
use crate::records::wire::{
    decode_contact_details, decode_name, not_before_birth, relationship_allowed,
};
use crate::service::{audited_change, audited_id, supplier, Method, NodeService};
use crate::store::{bump_version, lock_record, AuditEvent, Result, Store};
use crate::wire::WireEnum;
use crate::wire::{
    age_on, date, decode_id, end_date, join, not_future, optional_date, required, text, Context,
    RecordFacts,
};

pub(crate) async fn add_entry(
    node: &NodeService,
    request: Request<pb::AddEntryRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        let role = node.require(&caller, Right::Contribute)?;
        not_a_body(role)?;
        let id = decode_id(&body.id, "id")?;
        let context = node.context();
        let (record, _entry_id) = node
            .store
            .add_entry(
                &id,
                |facts| decode_entry(body.entry.as_ref(), facts, &context),
                &supplier(&caller),
                &audited_change(&caller, Method::AddEntry),
            )
            .await?;
        Ok(record)
    }
    .await;
    node.finish(
        &caller,
        Method::AddEntry,
        audited_id(&body.id),
        result.map(|record| node.view(&caller, &record)),
    )
    .await
}

pub(crate) async fn end_entry(
    node: &NodeService,
    request: Request<pb::EndEntryRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        not_a_body(node.require(&caller, Right::Contribute)?)?;
        let id = decode_id(&body.id, "id")?;
        let kind = decode_entry_kind(body.kind, "kind")?;
        let ended_on = decode_end_date(body.ended_on.as_ref(), &node.context())?;
        node.store
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
    node.finish(
        &caller,
        Method::EndEntry,
        audited_id(&body.id),
        result.map(|record| node.view(&caller, &record)),
    )
    .await
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

impl Store {
    /// Adds an entry. `decode` checks it against the record it joins, read
    /// under a row lock so the facts cannot change before the insert.
    pub async fn add_entry(
        &self,
        id: &RecordId,
        decode: impl FnOnce(RecordFacts) -> std::result::Result<Entry, Invalid>,
        provenance: &Provenance,
        audit: &AuditEvent<'_>,
    ) -> Result<(ChildRecord, i64)> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (facts, _) = lock_record(&tx, id).await?;
        let entry = decode(facts)?;
        let entry_id = insert_entry(&tx, id, &entry, Some(provenance)).await?;
        bump_version(&tx, id).await?;
        insert_audit(&tx, audit, id).await?;
        let stored = load(&tx, id).await?;
        tx.commit().await?;
        Ok((stored, entry_id))
    }

    /// Records the end of an entry (for a CAF assessment, its actions' completion).
    pub async fn end_entry(
        &self,
        id: &RecordId,
        kind: EntryKind,
        entry_id: i64,
        ended_on: NaiveDate,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let (table, start, end) = entry_columns(kind);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_record(&tx, id).await?;
        // Table and column names come from `entry_columns`, never from input.
        let row = tx
            .query_opt(
                &format!("SELECT {start}, {end} FROM {table} WHERE entry_id = $1 AND record_id = $2 FOR UPDATE"),
                &[&entry_id, &id.as_str()],
            )
            .await?
            .ok_or_else(|| NodeError::EntryNotFound { id: id.to_string(), kind: table, entry_id })?;
        let (started_on, already): (Option<NaiveDate>, Option<NaiveDate>) =
            (row.get(0), row.get(1));
        if let Some(ended_on) = already {
            return Err(NodeError::AlreadyEnded {
                kind: table,
                entry_id,
                ended_on,
            });
        }
        if started_on.is_some_and(|start| ended_on < start) {
            return Err(
                Invalid::new("ended_on", "must not be before the entry's start date").into(),
            );
        }
        tx.execute(
            &format!("UPDATE {table} SET {end} = $1 WHERE entry_id = $2"),
            &[&ended_on, &entry_id],
        )
        .await?;
        bump_version(&tx, id).await?;
        insert_audit(&tx, audit, id).await?;
        let stored = load(&tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }
}

pub(crate) fn entry_columns(kind: EntryKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        EntryKind::Contact => ("contact", "started_on", "ended_on"),
        EntryKind::Education => ("education", "started_on", "ended_on"),
        EntryKind::Service => ("service", "started_on", "ended_on"),
        EntryKind::CafAssessment => ("caf_assessment", "assessed_on", "actions_completed_on"),
        EntryKind::LeadProfessional => ("lead_professional", "started_on", "ended_on"),
    }
}

/// Who an entry is about, as SQL over its table: the provider, assessor,
/// lead professional or contact person.
pub(crate) fn entry_subject(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Contact => "given_names || ' ' || family_name",
        EntryKind::Education | EntryKind::Service => "provider_name",
        EntryKind::CafAssessment => "assessor_name",
        EntryKind::LeadProfessional => "name",
    }
}

/// Inserts an entry with its provenance (when `provenance` has no time, now).
pub(crate) async fn insert_entry(
    tx: &Transaction<'_>,
    id: &RecordId,
    entry: &Entry,
    provenance: Option<&Provenance>,
) -> Result<i64> {
    let entry_id = insert_entry_row(tx, id, entry).await?;
    if let Some(p) = provenance {
        let (table, _, _) = entry_columns(entry.kind());
        // The table name comes from `entry_columns`, never from input.
        tx.execute(
            &format!("UPDATE {table} SET supplied_by = $2, supplied_ref = $3, supplied_at = COALESCE($4, now()) WHERE entry_id = $1"),
            &[&entry_id, &p.supplied_by, &p.body_reference, &p.supplied_at],
        )
        .await?;
    }
    Ok(entry_id)
}

async fn insert_entry_row(tx: &Transaction<'_>, id: &RecordId, entry: &Entry) -> Result<i64> {
    let id = id.as_str();
    let row = match entry {
        Entry::Contact(c) => {
            tx.query_one(
                &tx.prepare_cached("INSERT INTO contact (record_id, relationship, given_names, family_name, details, started_on, ended_on)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING entry_id").await?,
                &[&id, &c.relationship.as_db(), &c.name.given_names, &c.name.family_name, &Json(&c.details), &c.started_on, &c.ended_on],
            )
            .await?
        }
        Entry::Education(e) => {
            tx.query_one(
                &tx.prepare_cached("INSERT INTO education (record_id, setting, provider_name, details, started_on, ended_on)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING entry_id").await?,
                &[&id, &e.setting.as_db(), &e.provider_name, &Json(&e.details), &e.started_on, &e.ended_on],
            )
            .await?
        }
        Entry::Service(s) => {
            tx.query_one(
                &tx.prepare_cached("INSERT INTO service (record_id, kind, provider_name, details, sensitive_ground, started_on, ended_on,
                     archive_after_years, archived_on)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING entry_id").await?,
                &[
                    &id,
                    &s.kind.as_db(),
                    &s.provider_name,
                    &Json(&s.details),
                    &s.sensitive.map(SensitiveGround::as_db),
                    &s.started_on,
                    &s.ended_on,
                    &s.archive_after_years.map(i16::from),
                    &s.archived_on,
                ],
            )
            .await?
        }
        Entry::CafAssessment(a) => {
            tx.query_one(
                &tx.prepare_cached("INSERT INTO caf_assessment (record_id, assessor_name, assessing_body, details, assessed_on, actions_completed_on)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING entry_id").await?,
                &[&id, &a.assessor_name, &a.assessing_body, &Json(&a.details), &a.assessed_on, &a.actions_completed_on],
            )
            .await?
        }
        Entry::LeadProfessional(l) => {
            tx.query_one(
                &tx.prepare_cached("INSERT INTO lead_professional (record_id, capacity, name, details, started_on, ended_on)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING entry_id").await?,
                &[&id, &l.capacity.as_db(), &l.name, &Json(&l.details), &l.started_on, &l.ended_on],
            )
            .await?
        }
    };
    Ok(row.get(0))
}

pub(crate) fn start_date(
    value: Option<&pb::Date>,
    field: &str,
    context: &Context,
) -> Result<NaiveDate, Invalid> {
    not_future(date(required(value, field)?, field)?, field, context)
}

pub(crate) fn optional_start_date(
    value: Option<&pb::Date>,
    field: &str,
    context: &Context,
) -> Result<Option<NaiveDate>, Invalid> {
    optional_date(value, field)?
        .map(|day| not_future(day, field, context))
        .transpose()
}

/// Para 6.
pub fn decode_contact(
    value: &pb::Contact,
    field: &str,
    facts: RecordFacts,
    context: &Context,
) -> Result<Contact, Invalid> {
    let relationship_field = join(field, "relationship");
    let relationship = Relationship::decode(value.relationship, &relationship_field)?;
    if !relationship_allowed(facts.category, relationship) {
        return Err(Invalid::new(&relationship_field, "para 6: a child's contacts have parental responsibility or care; a participating young person's contacts are carers"));
    }
    let start_field = join(field, "started_on");
    let started_on = optional_start_date(value.started_on.as_ref(), &start_field, context)?
        .map(|day| not_before_birth(day, facts.date_of_birth, &start_field))
        .transpose()?;
    Ok(Contact {
        relationship,
        name: decode_name(value.name.as_ref(), &join(field, "name"))?,
        details: decode_contact_details(value.contact.as_ref(), &join(field, "contact"))?,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            started_on,
            &join(field, "ended_on"),
            context,
        )?,
    })
}

/// Para 7.
pub fn decode_education(
    value: &pb::EducationEntry,
    field: &str,
    facts: RecordFacts,
    context: &Context,
) -> Result<Education, Invalid> {
    let start_field = join(field, "started_on");
    let started_on = not_before_birth(
        start_date(value.started_on.as_ref(), &start_field, context)?,
        facts.date_of_birth,
        &start_field,
    )?;
    Ok(Education {
        setting: EducationSetting::decode(value.setting, &join(field, "setting"))?,
        provider_name: text(&value.provider_name, &join(field, "provider_name"))?,
        details: decode_contact_details(
            value.provider_contact.as_ref(),
            &join(field, "provider_contact"),
        )?,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            Some(started_on),
            &join(field, "ended_on"),
            context,
        )?,
    })
}

/// Paras 8, 9, 11 to 15.
pub fn decode_service(
    value: &pb::ServiceInvolvement,
    field: &str,
    facts: RecordFacts,
    context: &Context,
) -> Result<Service, Invalid> {
    let kind_field = join(field, "kind");
    let kind = ServiceKind::decode(value.kind, &kind_field)?;
    if kind == ServiceKind::Midwife && age_on(facts.date_of_birth, context.today) >= 1 {
        return Err(Invalid::new(
            &kind_field,
            "para 13: a midwife is recorded only while the person has not attained the age of one",
        ));
    }
    let ground_field = join(field, "sensitive_ground");
    let sensitive = if value.sensitive {
        if kind == ServiceKind::PrimaryMedical {
            return Err(Invalid::new(&join(field, "sensitive"), "para 8(2): primary medical services comprising only a sensitive service are recorded as a para 9 specialist or targeted service"));
        }
        if kind != ServiceKind::SpecialistOrTargeted {
            return Err(Invalid::new(
                &join(field, "sensitive"),
                "para 9(b): only a specialist or targeted service is recorded as sensitive",
            ));
        }
        Some(SensitiveGround::decode(value.sensitive_ground, &ground_field).map_err(|_| {
            Invalid::new(&ground_field, "a sensitive service is recorded only with consent or for suspected significant harm; say which")
        })?)
    } else {
        if value.sensitive_ground != 0 {
            return Err(Invalid::new(
                &ground_field,
                "applies only to a sensitive service",
            ));
        }
        None
    };
    let archive_field = join(field, "archive_after_years");
    let archive_after_years = match (kind, value.archive_after_years) {
        (ServiceKind::PrimaryMedical, 0) => None,
        (ServiceKind::PrimaryMedical, _) => {
            return Err(Invalid::new(&archive_field, "para 15 applies to paragraphs 9 and 11 to 13, not to primary medical services; send 0"));
        }
        (_, years @ 1..=5) => Some(years as u8),
        (_, years) => {
            return Err(Invalid::new(
                &archive_field,
                format!("para 15: the archive period is 1, 2, 3, 4 or 5 years, not {years}"),
            ));
        }
    };
    let start_field = join(field, "started_on");
    let started_on = start_date(value.started_on.as_ref(), &start_field, context)?;
    // Health visitors and midwives begin before birth (antenatal care); a GP
    // registration, a school nurse or another service cannot.
    if !matches!(
        kind,
        ServiceKind::HealthVisitor | ServiceKind::Midwife | ServiceKind::SpecialistOrTargeted
    ) {
        not_before_birth(started_on, facts.date_of_birth, &start_field)?;
    }
    Ok(Service {
        kind,
        provider_name: text(&value.provider_name, &join(field, "provider_name"))?,
        details: decode_contact_details(
            value.provider_contact.as_ref(),
            &join(field, "provider_contact"),
        )?,
        sensitive,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            Some(started_on),
            &join(field, "ended_on"),
            context,
        )?,
        archive_after_years,
        archived_on: None,
    })
}

/// Para 10.
pub fn decode_caf(
    value: &pb::CafAssessment,
    field: &str,
    context: &Context,
) -> Result<CafAssessment, Invalid> {
    let assessed_on = start_date(
        value.assessed_on.as_ref(),
        &join(field, "assessed_on"),
        context,
    )?;
    Ok(CafAssessment {
        assessor_name: text(&value.assessor_name, &join(field, "assessor_name"))?,
        assessing_body: text(&value.assessing_body, &join(field, "assessing_body"))?,
        details: decode_contact_details(
            value.assessor_contact.as_ref(),
            &join(field, "assessor_contact"),
        )?,
        assessed_on,
        actions_completed_on: end_date(
            value.actions_completed_on.as_ref(),
            Some(assessed_on),
            &join(field, "actions_completed_on"),
            context,
        )?,
    })
}

/// Para 16.
pub fn decode_lead(
    value: &pb::LeadProfessional,
    field: &str,
    context: &Context,
) -> Result<LeadProfessional, Invalid> {
    let started_on = start_date(
        value.started_on.as_ref(),
        &join(field, "started_on"),
        context,
    )?;
    Ok(LeadProfessional {
        capacity: LeadCapacity::decode(value.capacity, &join(field, "capacity"))?,
        name: text(&value.name, &join(field, "name"))?,
        details: decode_contact_details(value.contact.as_ref(), &join(field, "contact"))?,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            Some(started_on),
            &join(field, "ended_on"),
            context,
        )?,
    })
}

/// One entry of an AddEntry request, checked against the record it joins.
pub fn decode_entry(
    entry: Option<&pb::add_entry_request::Entry>,
    facts: RecordFacts,
    context: &Context,
) -> Result<Entry, Invalid> {
    use pb::add_entry_request::Entry as E;
    Ok(match required(entry, "entry")? {
        E::Contact(value) => Entry::Contact(decode_contact(value, "contact", facts, context)?),
        E::Education(value) => {
            Entry::Education(decode_education(value, "education", facts, context)?)
        }
        E::Service(value) => Entry::Service(decode_service(value, "service", facts, context)?),
        E::CafAssessment(value) => {
            Entry::CafAssessment(decode_caf(value, "caf_assessment", context)?)
        }
        E::LeadProfessional(value) => {
            Entry::LeadProfessional(decode_lead(value, "lead_professional", context)?)
        }
    })
}

pub fn decode_entry_kind(value: i32, field: &str) -> Result<EntryKind, Invalid> {
    EntryKind::decode(value, field)
}

/// The end date of an EndEntry request (the start is checked against the stored entry).
pub fn decode_end_date(value: Option<&pb::Date>, context: &Context) -> Result<NaiveDate, Invalid> {
    let field = "ended_on";
    not_future(date(required(value, field)?, field)?, field, context)
}
