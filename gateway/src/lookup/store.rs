//! The routing index's SQL: the authority responsible for a record
//! (Schedule 1 para 19), for the records the index has learnt of. The
//! routing feed (`feed::store`), a transfer's activation
//! (`transfers::store`) and a lookup's correction (`set_route`) write it;
//! every change is numbered (migration V6), so `moved_routes` reads what
//! changed since a number. Every value is a bind parameter.
use crate::store::{Store, StoreError};

impl Store {
    /// The authority the index says is responsible for `record_id`.
    pub async fn route(&self, record_id: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached("SELECT authority_code FROM routing_index WHERE record_id = $1")
                    .await?,
                &[&record_id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Routes of records held by an authority other than the one that
    /// minted them, changed after `after` (see migration V6), in the order
    /// they changed: (change, record, authority).
    pub async fn moved_routes(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT changed, record_id, authority_code FROM routing_index
                         WHERE changed > $1 AND authority_code <> left(record_id, 9)
                         ORDER BY changed LIMIT $2",
                    )
                    .await?,
                &[&after, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
    }

    /// Records (or corrects) where a lookup found a record, unless the
    /// index has meanwhile named an authority other than `expected` (the
    /// one the lookup started from): a transfer's newer route is never
    /// overwritten by an answer given before it. Whether it was written.
    pub async fn set_route(
        &self,
        record_id: &str,
        authority_code: &str,
        expected: &str,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let written = client
            .execute(
                &client.prepare_cached("INSERT INTO routing_index (record_id, authority_code) VALUES ($1, $2)
                 ON CONFLICT (record_id) DO UPDATE SET authority_code = EXCLUDED.authority_code, updated_at = now()
                 WHERE routing_index.authority_code = $3").await?,
                &[&record_id, &authority_code, &expected],
            )
            .await?;
        Ok(written > 0)
    }
}
