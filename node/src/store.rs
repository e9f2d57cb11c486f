//! The authority's PostgreSQL: the only module that speaks SQL.
//!
//! Every write is one transaction, and reads back the record it changed inside
//! that transaction, so a caller never sees a half-written record. Whole-record
//! reads run in a read-only REPEATABLE READ transaction so the paragraphs they
//! gather belong to one moment. All SQL is parameterised; the only text
//! spliced into a statement is a table name chosen from a fixed list.
use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::Json;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use crate::error::{Invalid, NodeError};
use crate::identifier::RecordId;
use crate::model::*;
use crate::wire::{forenames_key, surname_key, RecordFacts, RecordedEntries};

mod embedded {
    refinery::embed_migrations!("migrations");
}

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

/// What one run of archiving and destruction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    pub archived_records: usize,
    pub archived_services: usize,
    pub destroyed_records: usize,
    pub destroyed_services: usize,
}

/// An outbox event: this node became responsible for a record.
#[derive(Debug, Clone)]
pub struct RoutingEvent {
    pub event_id: i64,
    pub record_id: String,
    pub authority_code: String,
    /// Transfers the record had been through when it came here.
    pub moves: u32,
}

/// Who did what, for the audit table.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub organisation: &'a str,
    pub unit: Option<&'a str>,
    pub name: &'a str,
    pub method: &'a str,
    pub record_ids: Vec<String>,
    pub outcome: &'a str,
    /// The reason the caller stated, if any.
    pub reason: Option<&'a str>,
    /// The caller's role, in `Role::to_wire` form.
    pub role: String,
    /// The gateway's identity, when it called on the caller's behalf.
    pub via: Option<String>,
    /// A search's parameters, as JSON.
    pub query: Option<String>,
    /// What to tell the responsible authority about the records accessed,
    /// written with the audit entry.
    pub notifications: Vec<Notify>,
}

/// One audited access to a record.
#[derive(Debug, Clone)]
pub struct RecordAccess {
    pub at: chrono::DateTime<chrono::Utc>,
    pub organisation: String,
    pub unit: Option<String>,
    pub name: String,
    pub role: String,
    pub method: String,
    pub reason: Option<String>,
    pub outcome: String,
    pub via: Option<String>,
}

/// One notification to the responsible authority, as stored.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub notification_id: i64,
    pub kind: String,
    pub record_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub organisation: String,
    pub name: String,
    pub role: String,
    pub reason: Option<String>,
    pub related_record_id: Option<String>,
}

/// Kinds of notification to the responsible authority (table `notification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// A role with child protection functions overrode shielding.
    ShieldOverride,
    /// Someone outside the authority's own staff viewed the record.
    ViewedByOtherOrganisation,
    /// The reader's surname is the child's: perhaps a relative (RULES.md, audit).
    ReaderSharesSurname,
}

impl Notify {
    pub fn as_db(self) -> &'static str {
        match self {
            Self::ShieldOverride => "shield_override",
            Self::ViewedByOtherOrganisation => "viewed_by_other_organisation",
            Self::ReaderSharesSurname => "reader_shares_surname",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("migrations failed: {0}")]
    Migrate(#[from] refinery::Error),
}

/// The node's database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    authority: ResponsibleAuthority,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("authority", &self.authority.code)
            .finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<T, NodeError>;

impl Store {
    /// Connects a pool and brings the schema up to the latest migration.
    pub async fn open(
        database_url: &str,
        pool_size: usize,
        authority: ResponsibleAuthority,
    ) -> std::result::Result<Self, StoreError> {
        let config: tokio_postgres::Config = database_url.parse().map_err(StoreError::Url)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager).max_size(pool_size).build()?;
        let mut client = pool.get().await?;
        let report = embedded::migrations::runner()
            .run_async(&mut **client)
            .await?;
        for migration in report.applied_migrations() {
            tracing::info!(migration = %migration, "applied migration");
        }
        Ok(Self { pool, authority })
    }

    /// The pool's size, available connections and maximum.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let status = self.pool.status();
        (status.size, status.available, status.max_size)
    }

    /// How long the oldest audit entry has waited for a signed checkpoint
    /// (0 when every entry is under one): grows only if checkpointing stops.
    pub async fn checkpoint_age_seconds(&self) -> Result<Option<i64>> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &client.prepare_cached("SELECT audit_unsigned_age()").await?,
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Whether the database answers, for the health service.
    pub async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    pub fn authority(&self) -> &ResponsibleAuthority {
        &self.authority
    }

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

    /// Creates many records in one transaction (an authority's initial load,
    /// a national feed): the records' rows and their routing events go in
    /// with PostgreSQL COPY, their lists and entries with prepared inserts,
    /// then likely duplicates of shielded records are shielded, and one audit
    /// entry names every record made. All of them or none. Returns the
    /// identifiers, in order.
    pub async fn load(
        &self,
        records: &[NewRecord],
        provenance: &Provenance,
        audit: &AuditEvent<'_>,
    ) -> Result<Vec<RecordId>> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::Type;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
        let serials: Vec<i64> = tx
            .query(
                &tx.prepare_cached(
                    "SELECT nextval('record_serial_seq') FROM generate_series(1, $1::bigint)",
                )
                .await?,
                &[&count],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let ids: Vec<RecordId> = serials
            .iter()
            .map(|serial| RecordId::mint(&self.authority.code, *serial as u64))
            .collect();

        let sink = tx
            .copy_in(&format!(
                "COPY child_record ({RECORD_COLUMNS}) FROM STDIN BINARY"
            ))
            .await?;
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &RECORD_COLUMN_TYPES));
        for (id, record) in ids.iter().zip(records) {
            let columns = RecordColumns::new(id, &record.details, &self.authority);
            writer.as_mut().write(&columns.values()).await?;
        }
        writer.as_mut().finish().await?;

        let announced = ids
            .iter()
            .map(|id| {
                vec![
                    Box::new(id.as_str()) as CopyValue,
                    Box::new(self.authority.code.as_str()),
                    Box::new(0i32),
                ]
            })
            .collect();
        copy_rows(
            &tx,
            "routing_outbox (record_id, authority_code, moves)",
            &[Type::TEXT, Type::TEXT, Type::INT4],
            announced,
        )
        .await?;

        copy_lists(&tx, &ids, records).await?;
        copy_entries(&tx, &ids, records, provenance).await?;
        // A new record is never shielded itself: it is shielded when it
        // matches a shielded record, looked for once for the whole batch.
        let keys: Vec<&str> = ids.iter().map(RecordId::as_str).collect();
        let mut shielded = std::collections::HashSet::new();
        for (id, other) in likely_duplicates(&tx, &keys, true).await? {
            if shielded.insert(id.clone()) {
                shield_as_duplicate(&tx, &id, &other, audit).await?;
            }
        }
        let audited: Vec<String> = ids.iter().map(ToString::to_string).collect();
        crate::audit::append(&tx, audit, &audited).await?;
        tx.commit().await?;
        Ok(ids)
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
    async fn insert_record(
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

    /// Tells the routing feed this node is now responsible for `id`.
    async fn announce(&self, tx: &Transaction<'_>, id: &RecordId, moves: u32) -> Result<()> {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO routing_outbox (record_id, authority_code, moves) VALUES ($1, $2, $3)",
            )
            .await?,
            &[
                &id.as_str(),
                &self.authority.code,
                &i32::try_from(moves).unwrap_or(i32::MAX),
            ],
        )
        .await?;
        Ok(())
    }

    /// The record as it would travel in a transfer: live or handed over,
    /// with the transfer that handed it over, if one has.
    pub async fn export(&self, id: &RecordId) -> Result<(Snapshot, Option<String>)> {
        let mut client = self.pool.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let status = record_status(&tx, id).await?;
        let exported = match status {
            Some((status, transfer, _)) if status == "live" || status == "handed_over" => {
                let handed_over_by = transfer.filter(|_| status == "handed_over");
                (Snapshot::from(&load(&tx, id).await?), handed_over_by)
            }
            _ => return Err(absent(&tx, id).await?),
        };
        tx.commit().await?;
        Ok(exported)
    }

    /// Transfer in, first step: a staged copy, served to no one. Repeating it
    /// replaces the staged copy; once the transfer has activated the record
    /// it changes nothing.
    pub async fn stage_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        snapshot: &Snapshot,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        self.transfer_in(transfer_id, id, snapshot, audit, "arriving")
            .await
            .map(|_| ())
    }

    /// Transfer in, last step: the record goes live here with its final
    /// content, any forwarding this node kept for it (a record coming back)
    /// is removed, and the routing feed announces it. Idempotent. Returns the
    /// transfers the record has now been through.
    pub async fn activate_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        snapshot: &Snapshot,
        audit: &AuditEvent<'_>,
    ) -> Result<u32> {
        self.transfer_in(transfer_id, id, snapshot, audit, "live")
            .await
    }

    /// Writes a transferred record at `status` ("arriving" or "live"),
    /// replacing a copy this transfer staged; a record already live for this
    /// transfer is left as it is.
    async fn transfer_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        snapshot: &Snapshot,
        audit: &AuditEvent<'_>,
        status: &'static str,
    ) -> Result<u32> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        match locked_status(&tx, id).await? {
            Some((current, transfer))
                if transfer.as_deref() == Some(transfer_id) && current == "live" =>
            {
                return current_moves(&tx, id).await;
            }
            Some((current, transfer))
                if transfer.as_deref() == Some(transfer_id) && current == "arriving" =>
            {
                tx.execute(
                    &tx.prepare_cached("DELETE FROM child_record WHERE id = $1")
                        .await?,
                    &[&id.as_str()],
                )
                .await?;
            }
            Some(_) => return Err(conflict(id, transfer_id)),
            None => {}
        }
        let placed = Placement {
            status,
            transfer_id: Some(transfer_id),
            version: snapshot.version,
            moves: snapshot.moves + 1,
            shield_reason: snapshot.shield_reason.as_deref(),
            archived_on: snapshot.archived_on,
        };
        self.insert_record(
            &tx,
            id,
            &snapshot.details,
            &snapshot.entries,
            &snapshot.provenance,
            &placed,
        )
        .await?;
        if status == "live" {
            tx.execute(
                &tx.prepare_cached("DELETE FROM record_forwarding WHERE record_id = $1")
                    .await?,
                &[&id.as_str()],
            )
            .await?;
            self.announce(&tx, id, placed.moves).await?;
            shield_duplicates(&tx, id, audit).await?;
        }
        insert_audit(&tx, audit, id).await?;
        tx.commit().await?;
        Ok(placed.moves)
    }

    /// Transfer in, cancelled before hand-over: the staged copy goes. Idempotent.
    pub async fn cancel_in(
        &self,
        transfer_id: &str,
        id: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute(
                &tx.prepare_cached("DELETE FROM child_record WHERE id = $1 AND status = 'arriving' AND transfer_id = $2").await?,
                &[&id.as_str(), &transfer_id],
            )
            .await?;
        if deleted > 0 {
            insert_audit(&tx, audit, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Transfer out, the cutover: from this commit the node is no longer
    /// responsible. It answers with where the record went, refuses changes,
    /// and still shows the record in searches (naming the new authority)
    /// until it is released. Returns the final content. Idempotent.
    pub async fn hand_over(
        &self,
        transfer_id: &str,
        id: &RecordId,
        to: &ResponsibleAuthority,
        audit: &AuditEvent<'_>,
    ) -> Result<Snapshot> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let aborted = tx
            .query_opt(
                &tx.prepare_cached("SELECT 1 FROM transfer_out_abort WHERE transfer_id = $1")
                    .await?,
                &[&transfer_id],
            )
            .await?;
        if aborted.is_some() {
            return Err(NodeError::TransferConflict(format!(
                "transfer {transfer_id} was cancelled here before its cutover"
            )));
        }
        match locked_status(&tx, id).await? {
            Some((status, _)) if status == "live" => {
                tx.execute(
                    &tx.prepare_cached("UPDATE child_record SET status = 'handed_over', transfer_id = $2,
                         responsible_authority_code = $3, responsible_authority_name = $4, updated_at = now()
                     WHERE id = $1").await?,
                    &[&id.as_str(), &transfer_id, &to.code, &to.name],
                )
                .await?;
                tx.execute(
                    &tx.prepare_cached("INSERT INTO record_forwarding (record_id, moved_to_code) VALUES ($1, $2)
                     ON CONFLICT (record_id) DO UPDATE SET moved_to_code = EXCLUDED.moved_to_code, moved_at = now()").await?,
                    &[&id.as_str(), &to.code],
                )
                .await?;
                insert_audit(&tx, audit, id).await?;
            }
            Some((status, transfer))
                if transfer.as_deref() == Some(transfer_id) && status == "handed_over" => {}
            Some(_) => return Err(conflict(id, transfer_id)),
            None => return Err(absent(&tx, id).await?),
        }
        let snapshot = Snapshot::from(&load(&tx, id).await?);
        tx.commit().await?;
        Ok(snapshot)
    }

    /// Transfer out, cancelled before its cutover: records that `transfer_id`
    /// may never hand the record over. Refused once it has. Idempotent.
    pub async fn abort_out(
        &self,
        transfer_id: &str,
        id: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some((status, transfer)) = locked_status(&tx, id).await? {
            if status == "handed_over" && transfer.as_deref() == Some(transfer_id) {
                return Err(NodeError::TransferConflict(format!(
                    "record {id} was already handed over by transfer {transfer_id}; the cutover has happened"
                )));
            }
        }
        let inserted = tx
            .execute(
                &tx.prepare_cached("INSERT INTO transfer_out_abort (transfer_id, record_id) VALUES ($1, $2) ON CONFLICT DO NOTHING").await?,
                &[&transfer_id, &id.as_str()],
            )
            .await?;
        if inserted > 0 {
            insert_audit(&tx, audit, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Transfer out, last step: the handed-over copy is deleted; the
    /// forwarding and this node's audit of the record stay. Idempotent.
    pub async fn release(
        &self,
        transfer_id: &str,
        id: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        match locked_status(&tx, id).await? {
            Some((status, transfer))
                if transfer.as_deref() == Some(transfer_id) && status == "handed_over" =>
            {
                tx.execute(
                    &tx.prepare_cached("DELETE FROM child_record WHERE id = $1")
                        .await?,
                    &[&id.as_str()],
                )
                .await?;
                insert_audit(&tx, audit, id).await?;
            }
            Some(_) => return Err(conflict(id, transfer_id)),
            None if forwarding(&tx, id).await?.is_some() => {}
            None => return Err(NodeError::RecordNotFound(id.to_string())),
        }
        tx.commit().await?;
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

    /// Local search; see `SearchQuery`. Ranked best first.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchMatch>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT r.id, r.given_names, r.family_name, r.given_names_key, r.family_name_key,
                        r.gender, r.date_of_birth, r.postcode, r.shield_reason,
                        r.responsible_authority_code, r.responsible_authority_name
                 FROM child_record r
                 WHERE (r.family_name_key = $1
                        OR r.id IN (SELECT f.record_id FROM former_name f WHERE f.family_name_key = $1))
                   AND ($2::date IS NULL OR r.date_of_birth = $2)
                   AND ($3::text IS NULL OR (r.postcode = $3 AND (r.shield_reason IS NULL OR $6)))
                   AND ($4::text IS NULL OR (' ' || r.given_names_key) LIKE ('% ' || $4 || '%'))
                   AND ($5::text IS NULL OR r.gender = $5 OR r.gender = 'not_specified')
                   AND r.status <> 'arriving'
                   AND (r.archived_on IS NULL OR $7)
                 ORDER BY r.id
                 LIMIT 1000").await?,
                &[
                    &query.surname_key,
                    &query.date_of_birth,
                    &query.postcode,
                    &query.forename_key,
                    &query.gender.map(Gender::as_db),
                    &query.reveal_shielded,
                    &query.include_archived,
                ],
            )
            .await?;
        let mut matches = rows
            .iter()
            .map(|row| search_match(row, query))
            .collect::<Result<Vec<_>>>()?;
        matches.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| a.id.as_str().cmp(b.id.as_str()))
        });
        matches.truncate(query.limit as usize);
        Ok(matches)
    }

    /// The routing outbox after `after`, oldest first: (event id, record id, authority).
    pub async fn routing_feed(&self, after: i64, limit: u32) -> Result<Vec<RoutingEvent>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT event_id, record_id, authority_code, moves FROM routing_outbox
                 WHERE event_id > $1 ORDER BY event_id LIMIT $2",
                    )
                    .await?,
                &[&after, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| RoutingEvent {
                event_id: row.get(0),
                record_id: row.get(1),
                authority_code: row.get(2),
                moves: u32::try_from(row.get::<_, i32>(3)).unwrap_or_default(),
            })
            .collect())
    }

    /// The scheduled archiving and destruction (regulation 8), as of `today`,
    /// in one transaction; idempotent. Archives a child's record at 18 and
    /// any record one year after a recorded death, and a service entry of
    /// paras 9 and 11 to 13 its chosen 1 to 5 years after the service ended
    /// (para 15); destroys archived information six years after archiving:
    /// the rows are deleted, and each archiving and destruction is audited.
    pub async fn archive_and_destroy(&self, today: NaiveDate) -> Result<ArchiveReport> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let archived_records: Vec<String> = tx
            .query(
                &tx.prepare_cached("UPDATE child_record SET archived_on = $1::date
                 WHERE archived_on IS NULL AND status = 'live'
                   AND ((category = 'child' AND date_of_birth + interval '18 years' <= $1::date)
                        OR (date_of_death IS NOT NULL AND date_of_death + interval '1 year' <= $1::date))
                 RETURNING id").await?,
                &[&today],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let archived_services: Vec<String> = tx
            .query(
                &tx.prepare_cached("UPDATE service SET archived_on = $1::date
                 WHERE archived_on IS NULL AND archive_after_years IS NOT NULL AND ended_on IS NOT NULL
                   AND ended_on + make_interval(years => archive_after_years) <= $1::date
                 RETURNING record_id").await?,
                &[&today],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let destroyed_records: Vec<String> = tx
            .query(
                &tx.prepare_cached("DELETE FROM child_record WHERE archived_on + interval '6 years' <= $1::date RETURNING id").await?,
                &[&today],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let destroyed_services: Vec<String> = tx
            .query(
                &tx.prepare_cached("DELETE FROM service WHERE archived_on + interval '6 years' <= $1::date RETURNING record_id").await?,
                &[&today],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let code = self.authority.code.clone();
        for (method, ids) in [
            ("ArchiveRecord", &archived_records),
            ("ArchiveService", &archived_services),
            ("DestroyRecord", &destroyed_records),
            ("DestroyService", &destroyed_services),
        ] {
            if ids.is_empty() {
                continue;
            }
            let event = AuditEvent {
                organisation: &code,
                unit: Some("node"),
                name: "archiving job",
                method,
                record_ids: ids.clone(),
                outcome: "ok",
                reason: Some("regulation 8: scheduled archiving and destruction"),
                role: format!("node@{code}"),
                via: None,
                query: None,
                notifications: Vec::new(),
            };
            crate::audit::append(&tx, &event, ids).await?;
        }
        tx.commit().await?;
        Ok(ArchiveReport {
            archived_records: archived_records.len(),
            archived_services: archived_services.len(),
            destroyed_records: destroyed_records.len(),
            destroyed_services: destroyed_services.len(),
        })
    }

    /// A participating young person withdraws consent: the record is
    /// archived at once, and the withdrawal recorded.
    pub async fn withdraw_consent(
        &self,
        id: &RecordId,
        today: NaiveDate,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (facts, _) = lock_record(&tx, id).await?;
        if facts.category != PersonCategory::ParticipatingYoungPerson {
            return Err(NodeError::NotApplicable(format!(
                "record {id} is a child's: consent applies to participating young persons"
            )));
        }
        tx.execute(
            &tx.prepare_cached("UPDATE child_record SET consent_withdrawn_on = $2, archived_on = COALESCE(archived_on, $2),
                 version = version + 1, updated_at = now()
             WHERE id = $1").await?,
            &[&id.as_str(), &today],
        )
        .await?;
        insert_audit(&tx, audit, id).await?;
        let stored = load(&tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Shields a live record (with the reason) or lifts shielding (`None`).
    pub async fn shield(
        &self,
        id: &RecordId,
        reason: Option<&str>,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        lock_record(&tx, id).await?;
        tx.execute(
            &tx.prepare_cached("UPDATE child_record SET shield_reason = $2, version = version + 1, updated_at = now() WHERE id = $1").await?,
            &[&id.as_str(), &reason],
        )
        .await?;
        if reason.is_some() {
            shield_duplicates(&tx, id, audit).await?;
        }
        insert_audit(&tx, audit, id).await?;
        let stored = load(&tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

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

    /// Merges `duplicate` into `keep`, both live here: the duplicate's
    /// entries (with their provenance), its names as former names, and its
    /// body identifiers join the kept record, which is shielded if either
    /// was; the duplicate's rows go and its identifier then answers with the
    /// record it was merged into.
    pub async fn merge(
        &self,
        keep: &RecordId,
        duplicate: &RecordId,
        audit: &AuditEvent<'_>,
    ) -> Result<ChildRecord> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Lock in identifier order, so two merges of one pair cannot deadlock.
        let (first, second) = if keep.as_str() < duplicate.as_str() {
            (keep, duplicate)
        } else {
            (duplicate, keep)
        };
        lock_record(&tx, first).await?;
        lock_record(&tx, second).await?;
        let kept = load(&tx, keep).await?;
        let gone = load(&tx, duplicate).await?;
        if let Some(archived) = [&kept, &gone].into_iter().find(|r| r.archived_on.is_some()) {
            return Err(NodeError::NotApplicable(format!(
                "record {} is archived information: archived records are not merged",
                archived.id
            )));
        }
        let mut details = kept.details.clone();
        let mut former = gone.details.former_names.clone();
        if gone.details.name != kept.details.name {
            former.push(FormerName {
                name: gone.details.name.clone(),
                ceased_on: None,
            });
        }
        for name in former {
            if name.name != details.name && !details.former_names.contains(&name) {
                details.former_names.push(name);
            }
        }
        for reference in &gone.details.body_identifiers {
            if !details.body_identifiers.contains(reference) {
                details.body_identifiers.push(reference.clone());
            }
        }
        write_lists(&tx, keep, &details).await?;
        for (entry, provenance) in gone.entries() {
            insert_entry(&tx, keep, &entry, provenance.as_ref()).await?;
        }
        let shield = kept.shield_reason.clone().or_else(|| {
            gone.shield_reason.as_ref().map(|reason| {
                format!("{reason} (shielded as {duplicate}, merged into this record)")
            })
        });
        tx.execute(
            &tx.prepare_cached("UPDATE child_record SET shield_reason = $2 WHERE id = $1")
                .await?,
            &[&keep.as_str(), &shield],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached("DELETE FROM child_record WHERE id = $1")
                .await?,
            &[&duplicate.as_str()],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached("INSERT INTO record_forwarding (record_id, moved_to_code, merged_into) VALUES ($1, $2, $3)").await?,
            &[&duplicate.as_str(), &self.authority.code, &keep.as_str()],
        )
        .await?;
        bump_version(&tx, keep).await?;
        crate::audit::append(&tx, audit, &[keep.to_string(), duplicate.to_string()]).await?;
        let stored = load(&tx, keep).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// The audited accesses to a record at this node, newest first.
    pub async fn record_accesses(&self, id: &RecordId, limit: u32) -> Result<Vec<RecordAccess>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT at, caller_organisation, caller_unit, caller_name, role, method, reason, outcome, via
                 FROM audit_event WHERE record_ids @> ARRAY[$1::text]
                 ORDER BY event_id DESC LIMIT $2").await?,
                &[&id.as_str(), &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| RecordAccess {
                at: row.get(0),
                organisation: row.get(1),
                unit: row.get(2),
                name: row.get(3),
                role: row.get(4),
                method: row.get(5),
                reason: row.get(6),
                outcome: row.get(7),
                via: row.get(8),
            })
            .collect())
    }

    /// What the responsible authority has been told, oldest first after `after`.
    pub async fn notifications(&self, after: i64, limit: u32) -> Result<Vec<NotificationRow>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT notification_id, kind, record_id, at, caller_organisation, caller_name, role, reason, related_record_id
                 FROM notification WHERE notification_id > $1 ORDER BY notification_id LIMIT $2").await?,
                &[&after, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| NotificationRow {
                notification_id: row.get(0),
                kind: row.get(1),
                record_id: row.get(2),
                at: row.get(3),
                organisation: row.get(4),
                name: row.get(5),
                role: row.get(6),
                reason: row.get(7),
                related_record_id: row.get(8),
            })
            .collect())
    }

    /// The newest signed checkpoint of the audit chain: last entry, head hash, signature.
    pub async fn latest_checkpoint(&self) -> Result<Option<(i64, Vec<u8>, Vec<u8>)>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client.prepare_cached("SELECT last_event_id, head_hash, signature FROM audit_checkpoint ORDER BY checkpoint_id DESC LIMIT 1").await?,
                &[],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
    }

    /// Appends to the audit table a call that changed nothing (reads, and
    /// refused calls), with what the responsible authority is to be told of
    /// it, in one statement (see `audit::append_alone`). Changes are audited
    /// inside their own transaction.
    pub async fn audit(&self, event: &AuditEvent<'_>) -> Result<()> {
        crate::audit::append_alone(self.pool.get().await?, event).await
    }

    /// Signs a checkpoint of the audit chain's head (see `audit`).
    pub async fn checkpoint_audit(
        &self,
        signer: &crate::audit::CheckpointSigner,
    ) -> Result<Option<i64>> {
        let client = self.pool.get().await?;
        signer.checkpoint(&**client).await
    }
}

/// Live records here that look like the same person as `id` (surname,
/// current or former, first forename and date of birth), shielded or not.
async fn likely_duplicates(
    tx: &Transaction<'_>,
    ids: &[&str],
    shielded: bool,
) -> Result<Vec<(String, String)>> {
    let rows = tx
        .query(
            &tx.prepare_cached("SELECT new.id, other.id FROM child_record new, child_record other
             WHERE new.id = ANY($1) AND other.id <> new.id AND (other.shield_reason IS NOT NULL) = $2
               AND other.status = 'live' AND other.date_of_birth = new.date_of_birth
               AND split_part(other.given_names_key, ' ', 1) = split_part(new.given_names_key, ' ', 1)
               AND (other.family_name_key = new.family_name_key
                    OR EXISTS (SELECT 1 FROM former_name f WHERE f.record_id = other.id AND f.family_name_key = new.family_name_key)
                    OR EXISTS (SELECT 1 FROM former_name f WHERE f.record_id = new.id AND f.family_name_key = other.family_name_key))
             ORDER BY new.id, other.id FOR UPDATE OF other").await?,
            &[&ids, &shielded],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Shields `id` as a possible duplicate of `shielded`, and tells the authority.
async fn shield_as_duplicate(
    tx: &Transaction<'_>,
    id: &str,
    shielded: &str,
    audit: &AuditEvent<'_>,
) -> Result<()> {
    let reason = format!(
        "may duplicate shielded record {shielded}: shielded until the management team decides"
    );
    tx.execute(
        &tx.prepare_cached("UPDATE child_record SET shield_reason = $2, version = version + 1 WHERE id = $1 AND shield_reason IS NULL").await?,
        &[&id, &reason],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached("INSERT INTO notification (kind, record_id, caller_organisation, caller_name, role, reason, related_record_id)
         VALUES ('possible_duplicate_of_shielded', $1, $2, $3, $4, $5, $6)").await?,
        &[&id, &audit.organisation, &audit.name, &audit.role, &"the record matches a shielded record's name and date of birth", &shielded],
    )
    .await?;
    tracing::warn!(
        "a record may duplicate a shielded record; it is shielded and the authority told"
    );
    Ok(())
}

/// Shielding holds through duplicates (RULES.md: in 2009 duplicates of
/// shielded children appeared unshielded). Run whenever a record is created,
/// arrives, changes its name or date of birth, or is shielded: an unshielded
/// `id` that matches a shielded record is shielded; a shielded `id` shields
/// the unshielded records that match it. The authority is told of each,
/// until its management team decides (merging, or lifting the shield).
async fn shield_duplicates(
    tx: &Transaction<'_>,
    id: &RecordId,
    audit: &AuditEvent<'_>,
) -> Result<()> {
    let is_shielded: bool = tx
        .query_one(
            &tx.prepare_cached("SELECT shield_reason IS NOT NULL FROM child_record WHERE id = $1")
                .await?,
            &[&id.as_str()],
        )
        .await?
        .get(0);
    if is_shielded {
        for (_, other) in likely_duplicates(tx, &[id.as_str()], false).await? {
            shield_as_duplicate(tx, &other, id.as_str(), audit).await?;
        }
    } else if let Some((_, shielded)) = likely_duplicates(tx, &[id.as_str()], true).await?.first() {
        shield_as_duplicate(tx, id.as_str(), shielded, audit).await?;
    }
    Ok(())
}

/// Audits a change in the transaction that makes it: committed together or not at all.
async fn insert_audit(tx: &Transaction<'_>, event: &AuditEvent<'_>, id: &RecordId) -> Result<()> {
    crate::audit::append(tx, event, &[id.to_string()]).await
}

fn entry_columns(kind: EntryKind) -> (&'static str, &'static str, &'static str) {
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
fn entry_subject(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Contact => "given_names || ' ' || family_name",
        EntryKind::Education | EntryKind::Service => "provider_name",
        EntryKind::CafAssessment => "assessor_name",
        EntryKind::LeadProfessional => "name",
    }
}

/// Locks a live record's row for the rest of the transaction; returns what
/// entry rules need and the version. A record handed over, staged or never
/// here is refused, saying where it went if known.
async fn lock_record(tx: &Transaction<'_>, id: &RecordId) -> Result<(RecordFacts, u64)> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT category, date_of_birth, version, status, responsible_authority_code
             FROM child_record WHERE id = $1 FOR UPDATE",
            )
            .await?,
            &[&id.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Err(absent(tx, id).await?);
    };
    match row.get::<_, &str>(3) {
        "live" => {}
        "arriving" => return Err(NodeError::RecordNotFound(id.to_string())),
        _ => {
            return Err(NodeError::Moved {
                id: id.to_string(),
                to: row.get(4),
            })
        }
    }
    let facts = RecordFacts {
        category: from_db(PersonCategory::from_db, row.get(0))?,
        date_of_birth: row.get(1),
    };
    Ok((facts, row.get::<_, i64>(2) as u64))
}

/// The columns of a record's row that come from its details, as both the
/// COPY of a load and the INSERT of one record name them.
const RECORD_COLUMNS: &str =
    "id, category, given_names, family_name, given_names_key, family_name_key,
     whereabouts, postcode, gender, date_of_birth, date_of_death,
     responsible_authority_code, responsible_authority_name, consent_given_on, consent_recorded_by";

/// Their types, for binary COPY.
const RECORD_COLUMN_TYPES: [tokio_postgres::types::Type; 15] = {
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
struct RecordColumns<'a> {
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
    fn new(
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

    fn values(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 15] {
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
struct Placement<'a> {
    status: &'static str,
    transfer_id: Option<&'a str>,
    version: u64,
    /// Transfers the record has been through.
    moves: u32,
    /// Shielding, which travels with the record.
    shield_reason: Option<&'a str>,
    /// So does archiving.
    archived_on: Option<NaiveDate>,
}

/// Status, transfer and responsible authority of a record's row, if any.
async fn record_status(
    tx: &Transaction<'_>,
    id: &RecordId,
) -> Result<Option<(String, Option<String>, String)>> {
    let row = tx
        .query_opt(
            &tx.prepare_cached("SELECT status, transfer_id, responsible_authority_code FROM child_record WHERE id = $1").await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
}

/// Status and transfer of a record's row, locking it.
async fn locked_status(
    tx: &Transaction<'_>,
    id: &RecordId,
) -> Result<Option<(String, Option<String>)>> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT status, transfer_id FROM child_record WHERE id = $1 FOR UPDATE",
            )
            .await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// Transfers a record held here has been through.
async fn current_moves(tx: &Transaction<'_>, id: &RecordId) -> Result<u32> {
    let row = tx
        .query_one(
            &tx.prepare_cached("SELECT moves FROM child_record WHERE id = $1")
                .await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or_default())
}

/// Where a record that left this node went.
/// Where a record that is no longer here went: the authority, and the
/// record it was merged into if the authority merged it.
async fn forwarding(
    tx: &Transaction<'_>,
    id: &RecordId,
) -> Result<Option<(String, Option<String>)>> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT moved_to_code, merged_into FROM record_forwarding WHERE record_id = $1",
            )
            .await?,
            &[&id.as_str()],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// The error for a record that is not here to act on: moved, or unknown.
async fn absent(tx: &Transaction<'_>, id: &RecordId) -> Result<NodeError> {
    Ok(match forwarding(tx, id).await? {
        Some((_, Some(into))) => NodeError::Merged {
            id: id.to_string(),
            into,
        },
        Some((to, None)) => NodeError::Moved {
            id: id.to_string(),
            to,
        },
        None => NodeError::RecordNotFound(id.to_string()),
    })
}

fn conflict(id: &RecordId, transfer_id: &str) -> NodeError {
    NodeError::TransferConflict(format!(
        "record {id} is not in the state transfer {transfer_id} expects here"
    ))
}

async fn bump_version(tx: &Transaction<'_>, id: &RecordId) -> Result<()> {
    tx.execute(
        &tx.prepare_cached(
            "UPDATE child_record SET version = version + 1, updated_at = now() WHERE id = $1",
        )
        .await?,
        &[&id.as_str()],
    )
    .await?;
    Ok(())
}

/// Replaces former names (para 1), body identifiers (18) and metadata (20).
async fn write_lists(tx: &Transaction<'_>, id: &RecordId, details: &RecordDetails) -> Result<()> {
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

/// A value for a binary COPY row.
type CopyValue<'a> = Box<dyn tokio_postgres::types::ToSql + Sync + Send + 'a>;

/// Writes `rows` into `target` ("table (columns)", from this file, never
/// from input) with one binary COPY.
async fn copy_rows(
    tx: &Transaction<'_>,
    target: &str,
    types: &[tokio_postgres::types::Type],
    rows: Vec<Vec<CopyValue<'_>>>,
) -> Result<()> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    if rows.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in(&format!("COPY {target} FROM STDIN BINARY"))
        .await?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, types));
    for row in &rows {
        let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = row
            .iter()
            .map(|value| &**value as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// The former names, body identifiers and metadata of loaded records
/// (paras 1, 18, 20), a COPY for each table.
async fn copy_lists(tx: &Transaction<'_>, ids: &[RecordId], records: &[NewRecord]) -> Result<()> {
    use tokio_postgres::types::Type;
    let (mut former, mut bodies, mut metadata) = (Vec::new(), Vec::new(), Vec::new());
    for (id, record) in ids.iter().zip(records) {
        let details = &record.details;
        for (position, name) in (0i32..).zip(&details.former_names) {
            former.push(vec![
                Box::new(id.as_str()) as CopyValue,
                Box::new(position),
                Box::new(name.name.given_names.as_str()),
                Box::new(name.name.family_name.as_str()),
                Box::new(surname_key(&name.name.family_name)),
                Box::new(name.ceased_on),
            ]);
        }
        for (position, body) in (0i32..).zip(&details.body_identifiers) {
            bodies.push(vec![
                Box::new(id.as_str()) as CopyValue,
                Box::new(position),
                Box::new(body.body.as_str()),
                Box::new(body.scheme.as_str()),
                Box::new(body.value.as_str()),
            ]);
        }
        for (position, entry) in (0i32..).zip(&details.metadata) {
            metadata.push(vec![
                Box::new(id.as_str()) as CopyValue,
                Box::new(position),
                Box::new(i16::from(entry.paragraph)),
                Box::new(entry.key.as_str()),
                Box::new(entry.value.as_str()),
            ]);
        }
    }
    copy_rows(
        tx,
        "former_name (record_id, position, given_names, family_name, family_name_key, ceased_on)",
        &[
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::DATE,
        ],
        former,
    )
    .await?;
    copy_rows(
        tx,
        "body_identifier (record_id, position, body, scheme, value)",
        &[Type::TEXT, Type::INT4, Type::TEXT, Type::TEXT, Type::TEXT],
        bodies,
    )
    .await?;
    copy_rows(
        tx,
        "record_metadata (record_id, position, paragraph, key, value)",
        &[Type::TEXT, Type::INT4, Type::INT2, Type::TEXT, Type::TEXT],
        metadata,
    )
    .await
}

/// The entries of loaded records with their provenance (para 20), a COPY
/// for each kind; supplied now (the transaction's time) unless the
/// provenance says when.
async fn copy_entries(
    tx: &Transaction<'_>,
    ids: &[RecordId],
    records: &[NewRecord],
    provenance: &Provenance,
) -> Result<()> {
    use tokio_postgres::types::Type;
    let supplied_at: chrono::DateTime<chrono::Utc> = match provenance.supplied_at {
        Some(at) => at,
        None => tx
            .query_one(&tx.prepare_cached("SELECT now()").await?, &[])
            .await?
            .get(0),
    };
    let supplied = || -> [CopyValue; 3] {
        [
            Box::new(provenance.supplied_by.as_str()),
            Box::new(provenance.body_reference.as_deref()),
            Box::new(supplied_at),
        ]
    };
    let mut rows: [Vec<Vec<CopyValue>>; 5] = Default::default();
    for (id, record) in ids.iter().zip(records) {
        let id = id.as_str();
        for entry in &record.entries {
            let (kind, mut row): (usize, Vec<CopyValue>) = match entry {
                Entry::Contact(c) => (
                    0,
                    vec![
                        Box::new(id),
                        Box::new(c.relationship.as_db()),
                        Box::new(c.name.given_names.as_str()),
                        Box::new(c.name.family_name.as_str()),
                        Box::new(Json(&c.details)),
                        Box::new(c.started_on),
                        Box::new(c.ended_on),
                    ],
                ),
                Entry::Education(e) => (
                    1,
                    vec![
                        Box::new(id),
                        Box::new(e.setting.as_db()),
                        Box::new(e.provider_name.as_str()),
                        Box::new(Json(&e.details)),
                        Box::new(e.started_on),
                        Box::new(e.ended_on),
                    ],
                ),
                Entry::Service(v) => (
                    2,
                    vec![
                        Box::new(id),
                        Box::new(v.kind.as_db()),
                        Box::new(v.provider_name.as_str()),
                        Box::new(Json(&v.details)),
                        Box::new(v.sensitive.map(SensitiveGround::as_db)),
                        Box::new(v.started_on),
                        Box::new(v.ended_on),
                        Box::new(v.archive_after_years.map(i16::from)),
                        Box::new(v.archived_on),
                    ],
                ),
                Entry::CafAssessment(a) => (
                    3,
                    vec![
                        Box::new(id),
                        Box::new(a.assessor_name.as_str()),
                        Box::new(a.assessing_body.as_str()),
                        Box::new(Json(&a.details)),
                        Box::new(a.assessed_on),
                        Box::new(a.actions_completed_on),
                    ],
                ),
                Entry::LeadProfessional(l) => (
                    4,
                    vec![
                        Box::new(id),
                        Box::new(l.capacity.as_db()),
                        Box::new(l.name.as_str()),
                        Box::new(Json(&l.details)),
                        Box::new(l.started_on),
                        Box::new(l.ended_on),
                    ],
                ),
            };
            row.extend(supplied());
            rows[kind].push(row);
        }
    }
    let [contacts, education, services, cafs, leads] = rows;
    let provenance_types = [Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ];
    let with_provenance = |types: &[Type]| [types, &provenance_types].concat();
    const PROVENANCE: &str = "supplied_by, supplied_ref, supplied_at";
    copy_rows(
        tx,
        &format!("contact (record_id, relationship, given_names, family_name, details, started_on, ended_on, {PROVENANCE})"),
        &with_provenance(&[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB, Type::DATE, Type::DATE]),
        contacts,
    )
    .await?;
    copy_rows(
        tx,
        &format!("education (record_id, setting, provider_name, details, started_on, ended_on, {PROVENANCE})"),
        &with_provenance(&[Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB, Type::DATE, Type::DATE]),
        education,
    )
    .await?;
    copy_rows(
        tx,
        &format!("service (record_id, kind, provider_name, details, sensitive_ground, started_on, ended_on, archive_after_years, archived_on, {PROVENANCE})"),
        &with_provenance(&[Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB, Type::TEXT, Type::DATE, Type::DATE, Type::INT2, Type::DATE]),
        services,
    )
    .await?;
    copy_rows(
        tx,
        &format!("caf_assessment (record_id, assessor_name, assessing_body, details, assessed_on, actions_completed_on, {PROVENANCE})"),
        &with_provenance(&[Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB, Type::DATE, Type::DATE]),
        cafs,
    )
    .await?;
    copy_rows(
        tx,
        &format!("lead_professional (record_id, capacity, name, details, started_on, ended_on, {PROVENANCE})"),
        &with_provenance(&[Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB, Type::DATE, Type::DATE]),
        leads,
    )
    .await
}

/// Inserts an entry with its provenance (when `provenance` has no time, now).
async fn insert_entry(
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

/// Reads a JSONB column; the schema holds only what the model wrote.
fn json<T: serde::de::DeserializeOwned + std::fmt::Debug>(row: &Row, column: &str) -> Result<T> {
    row.try_get::<_, Json<T>>(column)
        .map(|Json(value)| value)
        .map_err(|_| NodeError::Corrupt(format!("column {column} does not hold the expected JSON")))
}

fn from_db<T>(parse: fn(&str) -> Option<T>, text: &str) -> Result<T> {
    parse(text).ok_or_else(|| NodeError::Corrupt(format!("unknown stored value {text:?}")))
}

async fn load(tx: &Transaction<'_>, id: &RecordId) -> Result<ChildRecord> {
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

fn search_match(row: &Row, query: &SearchQuery) -> Result<SearchMatch> {
    let id: &str = row.get("id");
    let id = RecordId::parse(id)
        .map_err(|_| NodeError::Corrupt("stored identifier does not parse".into()))?;
    let given_key: &str = row.get("given_names_key");
    let family_key: &str = row.get("family_name_key");
    let date_of_birth: NaiveDate = row.get("date_of_birth");
    let shielded = row.get::<_, Option<&str>>("shield_reason").is_some();
    // A shielded record's address is hidden: its postcode neither matches
    // (see the query) nor is shown, but to the responsible authority's managers.
    let postcode: Option<String> = row
        .get::<_, Option<String>>("postcode")
        .filter(|_| !shielded || query.reveal_shielded);
    // Current surname outranks a former one; each further field that agrees adds.
    let mut score = if family_key == query.surname_key {
        50
    } else {
        40
    };
    if query.date_of_birth == Some(date_of_birth) {
        score += 30;
    }
    if query.postcode.is_some() && query.postcode == postcode {
        score += 20;
    }
    let gender = from_db(Gender::from_db, row.get("gender"))?;
    if query.gender == Some(gender) {
        score += 10;
    }
    if let Some(forename) = &query.forename_key {
        score += if given_key.split(' ').any(|name| name == forename) {
            20
        } else {
            10
        };
    }
    Ok(SearchMatch {
        id,
        name: PersonName {
            given_names: row.get("given_names"),
            family_name: row.get("family_name"),
        },
        gender,
        date_of_birth,
        postcode,
        responsible_authority: ResponsibleAuthority {
            code: row.get("responsible_authority_code"),
            name: row.get("responsible_authority_name"),
        },
        shielded,
        score,
    })
}
