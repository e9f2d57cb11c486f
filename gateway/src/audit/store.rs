//! The gateway audit's SQL: appending an entry (who, in which role, the
//! method, records, authorities, outcome, reason and a search's parameters),
//! concluding a lookup's entry written as [`ROUTED`], and raising and listing
//! audit flags. Every value is a bind parameter.
use contactpoint_proto::v1 as pb;

use crate::store::{Store, StoreError};

/// One gateway audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub organisation: String,
    pub unit: Option<String>,
    pub name: String,
    pub role: String,
    pub method: &'static str,
    pub record_ids: Vec<String>,
    pub authorities: Vec<String>,
    pub outcome: &'static str,
    /// The reason the reader stated.
    pub reason: Option<String>,
    /// A search's parameters, as JSON.
    pub query: Option<String>,
}

/// The outcome of a lookup's audit entry written as it was routed, before
/// the node answered; it stays so when the caller was given that
/// authority's record. A lookup that ends otherwise is concluded with its
/// outcome (`cancelled` when the caller went away first).
pub const ROUTED: &str = "routed";

impl Store {
    /// Appends an entry; returns its id.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &client.prepare_cached("INSERT INTO gateway_audit (caller_organisation, caller_unit, caller_name, role, method,
                     record_ids, authorities, outcome, reason, query)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING event_id").await?,
                &[
                    &entry.organisation,
                    &entry.unit,
                    &entry.name,
                    &entry.role,
                    &entry.method,
                    &entry.record_ids,
                    &entry.authorities,
                    &entry.outcome,
                    &entry.reason,
                    &entry.query,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Records how a lookup audited as [`ROUTED`] ended, when not with the
    /// answer of the authority it was routed to; an entry concluded already
    /// is left as it is.
    pub async fn conclude_audit(
        &self,
        event_id: i64,
        outcome: &str,
        authorities: &[String],
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE gateway_audit SET outcome = $2, authorities = $3
                         WHERE event_id = $1 AND outcome = 'routed'",
                    )
                    .await?,
                &[&event_id, &outcome, &authorities],
            )
            .await?;
        Ok(())
    }

    /// Flags the caller if, in the last 24 hours, they made at least
    /// `threshold` searches and viewed no record, and were not flagged for
    /// it already in that time. Whether a flag was raised.
    pub async fn flag_searches_without_views(
        &self,
        organisation: &str,
        unit: Option<&str>,
        name: &str,
        threshold: u32,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let raised = client
            .execute(
                // Both counts stop early (at the threshold, at the first
                // view), so the check costs the same however much a user
                // has searched or viewed today.
                &client.prepare_cached("INSERT INTO audit_flag (caller_organisation, caller_unit, caller_name, kind, detail)
                 SELECT $1, $2, $3, 'searches_without_views',
                        s.searches || ' searches and no record viewed in 24 hours'
                 FROM (SELECT count(*) AS searches
                       FROM (SELECT 1 FROM gateway_audit
                             WHERE caller_organisation = $1 AND caller_unit IS NOT DISTINCT FROM $2
                               AND caller_name = $3 AND method = 'SearchRecords' AND outcome = 'ok'
                               AND at > now() - interval '24 hours'
                             LIMIT $4) searched) s
                 WHERE s.searches >= $4
                   AND NOT EXISTS (SELECT 1 FROM gateway_audit v
                                   WHERE v.caller_organisation = $1 AND v.caller_unit IS NOT DISTINCT FROM $2
                                     AND v.caller_name = $3 AND v.method = 'GetRecord'
                                     AND v.outcome IN ('ok', 'routed')
                                     AND v.at > now() - interval '24 hours')
                   AND NOT EXISTS (SELECT 1 FROM audit_flag f
                                   WHERE f.caller_organisation = $1 AND f.caller_unit IS NOT DISTINCT FROM $2
                                     AND f.caller_name = $3 AND f.kind = 'searches_without_views'
                                     AND f.at > now() - interval '24 hours')").await?,
                &[&organisation, &unit, &name, &i64::from(threshold)],
            )
            .await?;
        Ok(raised > 0)
    }

    /// Audit flags after `after`, oldest first.
    pub async fn audit_flags(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<pb::AuditFlag>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT flag_id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                        caller_organisation, COALESCE(caller_unit, ''), caller_name, kind, detail
                 FROM audit_flag WHERE flag_id > $1 ORDER BY flag_id LIMIT $2").await?,
                &[&after, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| pb::AuditFlag {
                flag_id: row.get(0),
                at: row.get(1),
                organisation: row.get(2),
                unit: row.get(3),
                name: row.get(4),
                kind: row.get(5),
                detail: row.get(6),
            })
            .collect())
    }
}
