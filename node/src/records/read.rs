//! Reading every paragraph of one record (Schedule 1) from its rows, in the
//! transaction of the caller; the statements are pipelined on one connection.

use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::*;
use crate::store::{from_db, json, Result};

pub(crate) async fn load(tx: &Transaction<'_>, id: &RecordId) -> Result<ChildRecord> {
    load_optional(tx, id)
        .await?
        .ok_or_else(|| NodeError::RecordNotFound(id.to_string()))
}

/// Reads every paragraph of one record. The queries are pipelined on one connection.
async fn load_optional(tx: &Transaction<'_>, id: &RecordId) -> Result<Option<ChildRecord>> {
    let key = id.as_str();
    let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&key];
    // Prepared once per connection (the statement cache), then pipelined.
    let (statement_0, statement_1, statement_2, statement_3, statement_4, statement_5, statement_6, statement_7, statement_8,) = tokio::try_join!(
        tx.prepare_cached("SELECT version, moves, shield_reason, archived_on, consent_given_on, consent_recorded_by, category, given_names, family_name, whereabouts, gender, date_of_birth,
                    date_of_death, responsible_authority_code, responsible_authority_name
             FROM child_record WHERE id = $1"),
        tx.prepare_cached("SELECT given_names, family_name, ceased_on FROM former_name WHERE record_id = $1 ORDER BY position"),
        tx.prepare_cached("SELECT body, scheme, value FROM body_identifier WHERE record_id = $1 ORDER BY position"),
        tx.prepare_cached("SELECT paragraph, key, value FROM record_metadata WHERE record_id = $1 ORDER BY position"),
        tx.prepare_cached("SELECT entry_id, relationship, given_names, family_name, details, started_on, ended_on, supplied_by, supplied_ref, supplied_at
             FROM contact WHERE record_id = $1 ORDER BY entry_id"),
        tx.prepare_cached("SELECT entry_id, setting, provider_name, details, started_on, ended_on, supplied_by, supplied_ref, supplied_at
             FROM education WHERE record_id = $1 ORDER BY entry_id"),
        tx.prepare_cached("SELECT entry_id, kind, provider_name, details, sensitive_ground, started_on, ended_on, archive_after_years,
                    archived_on, supplied_by, supplied_ref, supplied_at
             FROM service WHERE record_id = $1 ORDER BY entry_id"),
        tx.prepare_cached("SELECT entry_id, assessor_name, assessing_body, details, assessed_on, actions_completed_on, supplied_by, supplied_ref, supplied_at
             FROM caf_assessment WHERE record_id = $1 ORDER BY entry_id"),
        tx.prepare_cached("SELECT entry_id, capacity, name, details, started_on, ended_on, supplied_by, supplied_ref, supplied_at
             FROM lead_professional WHERE record_id = $1 ORDER BY entry_id"),
    )?;
    let (record, former, ids, metadata, contacts, education, services, cafs, leads) = tokio::try_join!(
        tx.query_opt(&statement_0, params),
        tx.query(&statement_1, params),
        tx.query(&statement_2, params),
        tx.query(&statement_3, params),
        tx.query(&statement_4, params),
        tx.query(&statement_5, params),
        tx.query(&statement_6, params),
        tx.query(&statement_7, params),
        tx.query(&statement_8, params),
    )?;
    let Some(record) = record else {
        return Ok(None);
    };
    let whereabouts: Whereabouts = json(&record, "whereabouts")?;
    let consent = match (
        record.get::<_, Option<NaiveDate>>("consent_given_on"),
        record.get::<_, Option<String>>("consent_recorded_by"),
    ) {
        (Some(given_on), Some(recorded_by)) => Some(Consent {
            given_on,
            recorded_by,
        }),
        _ => None,
    };
    let details = RecordDetails {
        consent,
        category: from_db(PersonCategory::from_db, record.get("category"))?,
        name: PersonName {
            given_names: record.get("given_names"),
            family_name: record.get("family_name"),
        },
        former_names: former
            .iter()
            .map(|row| FormerName {
                name: PersonName {
                    given_names: row.get(0),
                    family_name: row.get(1),
                },
                ceased_on: row.get(2),
            })
            .collect(),
        whereabouts,
        gender: from_db(Gender::from_db, record.get("gender"))?,
        date_of_birth: record.get("date_of_birth"),
        date_of_death: record.get("date_of_death"),
        body_identifiers: ids
            .iter()
            .map(|row| BodyIdentifier {
                body: row.get(0),
                scheme: row.get(1),
                value: row.get(2),
            })
            .collect(),
        metadata: metadata
            .iter()
            .map(|row| MetadataEntry {
                paragraph: row.get::<_, i16>(0) as u8,
                key: row.get(1),
                value: row.get(2),
            })
            .collect(),
    };
    Ok(Some(ChildRecord {
        id: id.clone(),
        version: record.get::<_, i64>("version") as u64,
        moves: u32::try_from(record.get::<_, i32>("moves")).unwrap_or_default(),
        shield_reason: record.get("shield_reason"),
        archived_on: record.get("archived_on"),
        details,
        contacts: contacts
            .iter()
            .map(|row| {
                Ok(stored(
                    row,
                    Contact {
                        relationship: from_db(Relationship::from_db, row.get("relationship"))?,
                        name: PersonName {
                            given_names: row.get("given_names"),
                            family_name: row.get("family_name"),
                        },
                        details: json(row, "details")?,
                        started_on: row.get("started_on"),
                        ended_on: row.get("ended_on"),
                    },
                ))
            })
            .collect::<Result<_>>()?,
        education: education
            .iter()
            .map(|row| {
                Ok(stored(
                    row,
                    Education {
                        setting: from_db(EducationSetting::from_db, row.get("setting"))?,
                        provider_name: row.get("provider_name"),
                        details: json(row, "details")?,
                        started_on: row.get("started_on"),
                        ended_on: row.get("ended_on"),
                    },
                ))
            })
            .collect::<Result<_>>()?,
        services: services
            .iter()
            .map(|row| {
                Ok(stored(
                    row,
                    Service {
                        kind: from_db(ServiceKind::from_db, row.get("kind"))?,
                        provider_name: row.get("provider_name"),
                        details: json(row, "details")?,
                        sensitive: row
                            .get::<_, Option<&str>>("sensitive_ground")
                            .map(|ground| from_db(SensitiveGround::from_db, ground))
                            .transpose()?,
                        started_on: row.get("started_on"),
                        ended_on: row.get("ended_on"),
                        archive_after_years: row
                            .get::<_, Option<i16>>("archive_after_years")
                            .map(|years| years as u8),
                        archived_on: row.get("archived_on"),
                    },
                ))
            })
            .collect::<Result<_>>()?,
        caf_assessments: cafs
            .iter()
            .map(|row| {
                Ok(stored(
                    row,
                    CafAssessment {
                        assessor_name: row.get("assessor_name"),
                        assessing_body: row.get("assessing_body"),
                        details: json(row, "details")?,
                        assessed_on: row.get("assessed_on"),
                        actions_completed_on: row.get("actions_completed_on"),
                    },
                ))
            })
            .collect::<Result<_>>()?,
        lead_professionals: leads
            .iter()
            .map(|row| {
                Ok(stored(
                    row,
                    LeadProfessional {
                        capacity: from_db(LeadCapacity::from_db, row.get("capacity"))?,
                        name: row.get("name"),
                        details: json(row, "details")?,
                        started_on: row.get("started_on"),
                        ended_on: row.get("ended_on"),
                    },
                ))
            })
            .collect::<Result<_>>()?,
        responsible_authority: ResponsibleAuthority {
            code: record.get("responsible_authority_code"),
            name: record.get("responsible_authority_name"),
        },
    }))
}

fn stored<T>(row: &Row, entry: T) -> Stored<T> {
    Stored {
        entry_id: row.get("entry_id"),
        entry,
        provenance: row
            .get::<_, Option<String>>("supplied_by")
            .map(|supplied_by| Provenance {
                supplied_by,
                body_reference: row.get("supplied_ref"),
                supplied_at: row.get("supplied_at"),
            }),
    }
}
