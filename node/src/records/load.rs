//! Bulk load (`LoadRecords`): an authority's initial load or a national
//! feed, a stream of `CreateRecord` requests. Each record is decoded and
//! checked as `CreateRecord` checks it; the good ones are written in batches,
//! each one transaction (identifiers from the sequence, rows and routing
//! events by binary COPY, duplicate shielding, one audit entry naming the
//! batch's records), answered batch by batch so a client knows what was made
//! even if the stream breaks.

use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::access::Caller;
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::{RecordColumns, RECORD_COLUMNS, RECORD_COLUMN_TYPES};
use crate::search::keys::surname_key;
use crate::service::{audited_change, error_kind, supplier, Method, NodeService};
use crate::shielding::{likely_duplicates, shield_as_duplicate};
use crate::store::{AuditEvent, Result, Store};
use crate::wire::decode_create;

/// Records written in one transaction of a load.
const LOAD_BATCH: usize = 1000;

/// The stream of a load's answers, a batch at a time.
pub(crate) type LoadStream =
    tokio_stream::wrappers::ReceiverStream<Result<pb::LoadRecordsBatch, Status>>;

pub(crate) async fn load_records(
    node: &NodeService,
    request: Request<tonic::Streaming<pb::CreateRecordRequest>>,
) -> Result<Response<LoadStream>, Status> {
    let caller = node.caller(&request)?;
    if let Err(refused) = node.require(&caller, Right::MaintainRecord) {
        return node
            .finish(&caller, Method::LoadRecords, vec![], Err(refused))
            .await;
    }
    let mut input = request.into_inner();
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    // Two stages, so the next batch is read and checked while the one
    // before is written: batches go to the writer in order, one waiting
    // at most.
    let (batches, mut to_write) = tokio::sync::mpsc::channel::<LoadBatch>(1);
    let writer = node.clone();
    tokio::spawn(async move {
        while let Some(batch) = to_write.recv().await {
            let answer = writer.write_batch(&caller, batch).await;
            if sender.send(Ok(answer)).await.is_err() {
                return;
            }
        }
    });
    let service = node.clone();
    tokio::spawn(async move {
        let mut batch = LoadBatch::default();
        let mut index = 0u32;
        loop {
            match input.message().await {
                Ok(Some(request)) => {
                    match decode_create(&request, &service.context()) {
                        Ok(record) => batch.records.push((index, record)),
                        Err(invalid) => batch.rejected.push(pb::RejectedRecord {
                            index,
                            reason: invalid.to_string(),
                        }),
                    }
                    index += 1;
                    if batch.records.len() + batch.rejected.len() >= LOAD_BATCH
                        && batches.send(std::mem::take(&mut batch)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                // The caller went away or sent garbage: what was written
                // (or is being written) stays written.
                Err(status) => {
                    tracing::debug!(code = ?status.code(), "a load stream ended early");
                    return;
                }
            }
        }
        if !batch.records.is_empty() || !batch.rejected.is_empty() {
            let _ = batches.send(batch).await;
        }
    });
    Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
        receiver,
    )))
}

/// Records of a load awaiting their batch's transaction.
#[derive(Default)]
struct LoadBatch {
    records: Vec<(u32, crate::model::NewRecord)>,
    rejected: Vec<pb::RejectedRecord>,
}

impl NodeService {
    /// Writes one batch of a load; a batch that cannot be written is
    /// answered as refused, every record of it, and audited as such.
    async fn write_batch(&self, caller: &Caller, batch: LoadBatch) -> pb::LoadRecordsBatch {
        let LoadBatch {
            records,
            mut rejected,
        } = batch;
        if records.is_empty() {
            return pb::LoadRecordsBatch {
                loaded: vec![],
                rejected,
            };
        }
        let (indices, records): (Vec<u32>, Vec<_>) = records.into_iter().unzip();
        let written = self
            .store
            .load(
                &records,
                &supplier(caller),
                &audited_change(caller, Method::LoadRecords),
            )
            .await;
        match written {
            Ok(ids) => pb::LoadRecordsBatch {
                loaded: indices
                    .into_iter()
                    .zip(ids)
                    .map(|(index, id)| pb::LoadedRecord {
                        index,
                        id: id.to_string(),
                    })
                    .collect(),
                rejected,
            },
            Err(error) => {
                // The status's words (never the database's own error text).
                let reason = format!(
                    "not loaded, load it again: {}",
                    error_kind(&error).replace('_', " ")
                );
                let _ = self
                    .finish::<()>(caller, Method::LoadRecords, vec![], Err(error))
                    .await;
                rejected.extend(indices.into_iter().map(|index| pb::RejectedRecord {
                    index,
                    reason: reason.clone(),
                }));
                pb::LoadRecordsBatch {
                    loaded: vec![],
                    rejected,
                }
            }
        }
    }
}

impl Store {
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
