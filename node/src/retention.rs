//! Archiving and destruction (regulation 8, as described to Parliament): a
//! child's record is archived at 18 (a participating young person's when
//! participation ends, `consent`), any record one year after a recorded
//! death, and service information (paras 9, 11 to 13) its chosen 1 to 5
//! years after the service ended (para 15); archived information is
//! destroyed six years after archiving, by this automatic purge.
//!
//! What the responsible authority is told (`notifications`) is kept
//! `notification_retention_days` after it was raised, then deleted by the
//! same run (the access it tells of stays in the audit, which is kept for
//! good).
//!
//! Invariants: each run is one transaction, idempotent, audited in the
//! chain, as of the node's injectable clock. Archived information is hidden
//! from users (`redact`): the responsible authority's management team sees
//! it in its first year, afterwards only for a stated child protection
//! enquiry, serious case review or child death review.

use chrono::NaiveDate;
use contactpoint_proto::v1 as pb;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::Invalid;
use crate::store::{AuditEvent, Result, Store};

/// What one run of archiving and destruction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    pub archived_records: usize,
    pub archived_services: usize,
    pub destroyed_records: usize,
    pub destroyed_services: usize,
}

impl Store {
    /// The scheduled archiving and destruction (regulation 8), as of `today`,
    /// in one transaction; idempotent. Archives a child's record at 18 and
    /// any record one year after a recorded death, and a service entry of
    /// paras 9 and 11 to 13 its chosen 1 to 5 years after the service ended
    /// (para 15); destroys archived information six years after archiving:
    /// the rows are deleted, and each archiving and destruction is audited.
    pub async fn archive_and_destroy(&self, today: NaiveDate) -> Result<ArchiveReport> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        crate::store::without_statement_timeout(&tx).await?;
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
}

impl Store {
    /// Deletes the notifications raised more than `keep_days` before
    /// `today`, in one transaction, audited with the records they were of;
    /// returns how many. Idempotent.
    pub async fn purge_notifications(&self, today: NaiveDate, keep_days: u32) -> Result<usize> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        crate::store::without_statement_timeout(&tx).await?;
        let purged: Vec<String> = tx
            .query(
                &tx.prepare_cached(
                    "DELETE FROM notification WHERE at < $1::date - make_interval(days => $2)
                     RETURNING record_id",
                )
                .await?,
                &[&today, &i32::try_from(keep_days).unwrap_or(i32::MAX)],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !purged.is_empty() {
            let mut records = purged.clone();
            records.sort();
            records.dedup();
            let code = self.authority.code.clone();
            let reason = format!("notifications are kept {keep_days} days");
            let event = AuditEvent {
                organisation: &code,
                unit: Some("node"),
                name: "archiving job",
                method: "PurgeNotifications",
                record_ids: records.clone(),
                outcome: "ok",
                reason: Some(&reason),
                role: format!("node@{code}"),
                via: None,
                query: None,
                notifications: Vec::new(),
            };
            crate::audit::append(&tx, &event, &records).await?;
        }
        tx.commit().await?;
        Ok(purged.len())
    }
}

/// Whether a read states a purpose for which archived information may be
/// shown after its first year.
pub fn decode_archive_purpose(value: i32) -> Result<bool, Invalid> {
    if value == 0 {
        return Ok(false);
    }
    pb::ArchivePurpose::try_from(value)
        .map(|_| true)
        .map_err(|_| {
            Invalid::new(
                "archive_purpose",
                format!("has no meaning for the value {value}"),
            )
        })
}

/// Runs archiving and destruction every `every`, as of the node's clock.
pub(crate) async fn archive_and_destroy_every(
    store: Store,
    clock: Arc<dyn Clock>,
    every: Duration,
    notification_retention_days: u32,
) {
    loop {
        match store.archive_and_destroy(clock.today()).await {
            Ok(report) if report != ArchiveReport::default() => {
                tracing::info!(?report, "archiving and destruction")
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "archiving and destruction did not run; will try again")
            }
        }
        match store
            .purge_notifications(clock.today(), notification_retention_days)
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "notifications past their retention deleted"),
            Err(error) => {
                tracing::warn!(%error, "notifications past their retention not deleted; will try again")
            }
        }
        tokio::time::sleep(every).await;
    }
}
