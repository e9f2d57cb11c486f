//! The duplicate notices' SQL: the untold, and each marked told or waiting.
//! (Notices are journaled by `blind_index::store::apply`.) Every value is a
//! bind parameter.
use crate::store::{Store, StoreError};

/// Two live records at two authorities that may be one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub notice_id: i64,
    pub first_record: String,
    pub first_authority: String,
    pub second_record: String,
    pub second_authority: String,
}

impl Notice {
    /// The notice's identifier as the nodes keep it.
    pub fn wire_id(&self) -> String {
        format!("D-{}", self.notice_id)
    }
}

impl Store {
    /// Notices not yet told to both authorities, those tried least first.
    pub async fn untold_notices(&self, limit: i64) -> Result<Vec<Notice>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT notice_id, first_record, first_authority, second_record, second_authority
                         FROM duplicate_notice WHERE told_at IS NULL
                         ORDER BY attempts, notice_id LIMIT $1",
                    )
                    .await?,
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Notice {
                notice_id: row.get(0),
                first_record: row.get(1),
                first_authority: row.get(2),
                second_record: row.get(3),
                second_authority: row.get(4),
            })
            .collect())
    }

    pub async fn notice_told(&self, notice_id: i64) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE duplicate_notice SET told_at = now(), waiting_reason = NULL
                         WHERE notice_id = $1 AND told_at IS NULL",
                    )
                    .await?,
                &[&notice_id],
            )
            .await?;
        Ok(())
    }

    pub async fn notice_waiting(&self, notice_id: i64, reason: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE duplicate_notice SET attempts = attempts + 1, waiting_reason = $2
                         WHERE notice_id = $1",
                    )
                    .await?,
                &[&notice_id, &reason],
            )
            .await?;
        Ok(())
    }
}
