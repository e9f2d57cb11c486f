//! The SQL of a record's own rows: minting and writing a record, finding
//! what this node holds for an identifier, and replacing its details under
//! its row lock.

use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use tokio_postgres::IsolationLevel;

use crate::audit::insert_audit;
use crate::error::{Invalid, NodeError};
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::entries::insert_entry;
use crate::records::read::load;
use crate::records::wire::RecordedEntries;
use crate::search::keys::{forenames_key, surname_key};
use crate::shielding::shield_duplicates;
use crate::store::{forwarding, from_db, lock_record, record_status, AuditEvent, Result, Store};
use crate::wire::RecordFacts;

/// What a node holds for an identifier.
#[derive(Debug)]
pub enum Holding {
    /// This node is responsible and serves the record.
    Live(Box<ChildRecord>),
    /// A transfer in has staged it here, not yet activated.
    Arriving { transfer_id: String },
    /// It moved to this authority (handed over, or released).
    Moved { to: String },
    /// The authority merged it, a duplicate, into this record.
    Merged { into: String },
    /// Never here.
    Absent,
}

impl Store {
    /// Creates a record, minting its identifier.
    /// Every entry recorded with it carries `provenance`.
    pub async fn create(
        &self,
        record: &NewRecord,
        provenance: &Provenance,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let serial: i64 = tx
            .query_one(
                &tx.prepare_cached("SELECT nextval('record_serial_seq')")
                    .await?,
                &[],
            )
            .await?
            .get(0);
        let id = RecordId::mint(&self.authority.code, serial as u64);
        let placed = Placement {
            status: "live",
            transfer_id: None,
            version: 1,
            moves: 0,
            shield_reason: None,
            archived_on: None,
        };
        let provenance = vec![Some(provenance.clone()); record.entries.len()];
        self.insert_record(
            &tx,
            &id,
            &record.details,
            &record.entries,
            &provenance,
            &placed,
        )
        .await?;
        shield_duplicates(&tx, &id, audit).await?;
        self.announce(&tx, &id, 0).await?;
        insert_audit(&tx, audit, &id).await?;
        let stored = load(&tx, &id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// What this node holds for `id`: the live record, a staged copy, or
    /// where the record went.
    pub async fn lookup(&self, id: &RecordId) -> Result<Holding> {
        let mut client = self.pool.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let holding = match record_status(&tx, id).await? {
            Some((status, transfer_id, responsible)) => match status.as_str() {
                "live" => Holding::Live(Box::new(load(&tx, id).await?)),
                "arriving" => Holding::Arriving {
                    transfer_id: transfer_id.unwrap_or_default(),
                },
                _ => Holding::Moved { to: responsible },
            },
            None => match forwarding(&tx, id).await? {
                Some((_, Some(into))) => Holding::Merged { into },
                Some((to, None)) => Holding::Moved { to },
                None => Holding::Absent,
            },
        };
        tx.commit().await?;
        Ok(holding)
    }

    /// Writes a record's rows: the record at `placed`, its lists and entries.
    pub(crate) async fn insert_record(
        &self,
        tx: &Transaction<'_>,
        id: &RecordId,
        details: &RecordDetails,
        entries: &[Entry],
        provenance: &[Option<Provenance>],
        placed: &Placement<'_>,
    ) -> Result<()> {
        let columns = RecordColumns::new(id, details, &self.authority);
        let moves = i32::try_from(placed.moves).unwrap_or(i32::MAX);
        let version = placed.version as i64;
        let mut values = columns.values().to_vec();
        values.extend_from_slice(&[
            &placed.status,
            &placed.transfer_id,
            &version,
            &moves,
            &placed.shield_reason,
            &placed.archived_on,
        ]);
        tx.execute(
            &format!(
                "INSERT INTO child_record ({RECORD_COLUMNS}, status, transfer_id, version, moves, shield_reason, archived_on)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
            ),
            &values,
        )
        .await?;
        write_lists(tx, id, details).await?;
        for (index, entry) in entries.iter().enumerate() {
            let supplied = provenance.get(index).and_then(Option::as_ref);
            insert_entry(tx, id, entry, supplied).await?;
        }
        Ok(())
    }

    /// Replaces the record's details if it is still at `expected_version`.
    /// `check` sees the record as it was and the entries it holds, read under
    /// a row lock, and may refuse the change.
    pub async fn update(
        &self,
        id: &RecordId,
        expected_version: u64,
        details: &RecordDetails,
        check: impl FnOnce(RecordFacts, &RecordedEntries) -> std::result::Result<(), Invalid>,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (facts, current) = lock_record(&tx, id).await?;
        if current != expected_version {
            return Err(NodeError::StaleVersion {
                id: id.to_string(),
                current,
                expected: expected_version,
            });
        }
        let key = id.as_str();
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&key];
        // Prepared once per connection (the statement cache), then pipelined.
        let (statement_0, statement_1) = tokio::try_join!(
            tx.prepare_cached("SELECT relationship FROM contact WHERE record_id = $1"),
            tx.prepare_cached(
                "SELECT started_on FROM service WHERE record_id = $1 AND kind = 'midwife'"
            ),
        )?;
        let (contacts, midwives) = tokio::try_join!(
            tx.query(&statement_0, params),
            tx.query(&statement_1, params),
        )?;
        let entries = RecordedEntries {
            contact_relationships: contacts
                .iter()
                .map(|row| from_db(Relationship::from_db, row.get(0)))
                .collect::<Result<_>>()?,
            midwife_starts: midwives.iter().map(|row| row.get(0)).collect(),
        };
        check(facts, &entries)?;
        tx.execute(
            &tx.prepare_cached(
                "UPDATE child_record SET category = $2, given_names = $3, family_name = $4,
                 given_names_key = $5, family_name_key = $6, whereabouts = $7, postcode = $8,
                 gender = $9, date_of_birth = $10, date_of_death = $11,
                 consent_given_on = $12, consent_recorded_by = $13,
                 version = version + 1, updated_at = now()
             WHERE id = $1",
            )
            .await?,
            &[
                &id.as_str(),
                &details.category.as_db(),
                &details.name.given_names,
                &details.name.family_name,
                &forenames_key(&details.name.given_names),
                &surname_key(&details.name.family_name),
                &Json(&details.whereabouts),
                &details.whereabouts.postcode(),
                &details.gender.as_db(),
                &details.date_of_birth,
                &details.date_of_death,
                &details.consent.as_ref().map(|consent| consent.given_on),
                &details
                    .consent
                    .as_ref()
                    .map(|consent| consent.recorded_by.as_str()),
            ],
        )
        .await?;
        write_lists(&tx, id, details).await?;
        shield_duplicates(&tx, id, audit).await?;
        insert_audit(&tx, audit, id).await?;
        let stored = load(&tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }
}

/// The columns of a record's row that come from its details, as both the
/// COPY of a load and the INSERT of one record name them.
pub(crate) const RECORD_COLUMNS: &str =
    "id, category, given_names, family_name, given_names_key, family_name_key,
     whereabouts, postcode, gender, date_of_birth, date_of_death,
     responsible_authority_code, responsible_authority_name, consent_given_on, consent_recorded_by";

/// Their types, for binary COPY.
pub(crate) const RECORD_COLUMN_TYPES: [tokio_postgres::types::Type; 15] = {
    use tokio_postgres::types::Type;
    [
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::DATE,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::TEXT,
    ]
};

/// The values of `RECORD_COLUMNS` for one record.
pub(crate) struct RecordColumns<'a> {
    id: &'a str,
    details: &'a RecordDetails,
    category: &'static str,
    gender: &'static str,
    given_key: String,
    family_key: String,
    whereabouts: Json<&'a Whereabouts>,
    postcode: Option<&'a str>,
    consent_given_on: Option<NaiveDate>,
    consent_recorded_by: Option<&'a str>,
    authority: &'a ResponsibleAuthority,
}

impl<'a> RecordColumns<'a> {
    pub(crate) fn new(
        id: &'a RecordId,
        details: &'a RecordDetails,
        authority: &'a ResponsibleAuthority,
    ) -> Self {
        Self {
            id: id.as_str(),
            details,
            category: details.category.as_db(),
            gender: details.gender.as_db(),
            given_key: forenames_key(&details.name.given_names),
            family_key: surname_key(&details.name.family_name),
            whereabouts: Json(&details.whereabouts),
            postcode: details.whereabouts.postcode(),
            consent_given_on: details.consent.as_ref().map(|consent| consent.given_on),
            consent_recorded_by: details
                .consent
                .as_ref()
                .map(|consent| consent.recorded_by.as_str()),
            authority,
        }
    }

    pub(crate) fn values(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 15] {
        let details = self.details;
        [
            &self.id,
            &self.category,
            &details.name.given_names,
            &details.name.family_name,
            &self.given_key,
            &self.family_key,
            &self.whereabouts,
            &self.postcode,
            &self.gender,
            &details.date_of_birth,
            &details.date_of_death,
            &self.authority.code,
            &self.authority.name,
            &self.consent_given_on,
            &self.consent_recorded_by,
        ]
    }
}

/// How a record is placed when its rows are written.
pub(crate) struct Placement<'a> {
    pub(crate) status: &'static str,
    pub(crate) transfer_id: Option<&'a str>,
    pub(crate) version: u64,
    /// Transfers the record has been through.
    pub(crate) moves: u32,
    /// Shielding, which travels with the record.
    pub(crate) shield_reason: Option<&'a str>,
    /// So does archiving.
    pub(crate) archived_on: Option<NaiveDate>,
}

/// Replaces former names (para 1), body identifiers (18) and metadata (20).
pub(crate) async fn write_lists(
    tx: &Transaction<'_>,
    id: &RecordId,
    details: &RecordDetails,
) -> Result<()> {
    let id = id.as_str();
    tx.execute(
        &tx.prepare_cached("DELETE FROM former_name WHERE record_id = $1")
            .await?,
        &[&id],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("DELETE FROM body_identifier WHERE record_id = $1")
            .await?,
        &[&id],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("DELETE FROM record_metadata WHERE record_id = $1")
            .await?,
        &[&id],
    )
    .await?;
    for (position, former) in (0i32..).zip(&details.former_names) {
        tx.execute(
            &tx.prepare_cached("INSERT INTO former_name (record_id, position, given_names, family_name, family_name_key, ceased_on)
             VALUES ($1, $2, $3, $4, $5, $6)").await?,
            &[&id, &position, &former.name.given_names, &former.name.family_name, &surname_key(&former.name.family_name), &former.ceased_on],
        )
        .await?;
    }
    for (position, body_id) in (0i32..).zip(&details.body_identifiers) {
        tx.execute(
            &tx.prepare_cached("INSERT INTO body_identifier (record_id, position, body, scheme, value) VALUES ($1, $2, $3, $4, $5)").await?,
            &[&id, &position, &body_id.body, &body_id.scheme, &body_id.value],
        )
        .await?;
    }
    for (position, entry) in (0i32..).zip(&details.metadata) {
        tx.execute(
            &tx.prepare_cached("INSERT INTO record_metadata (record_id, position, paragraph, key, value) VALUES ($1, $2, $3, $4, $5)").await?,
            &[&id, &position, &i16::from(entry.paragraph), &entry.key, &entry.value],
        )
        .await?;
    }
    Ok(())
}
