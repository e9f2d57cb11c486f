//! The blind index's SQL: a feed batch's keys applied in the feed's own
//! transaction, the authorities holding any of a search's hashes, and a
//! search's names coded by the same functions as the nodes'. Every value is
//! a bind parameter.
use std::collections::BTreeSet;

use deadpool_postgres::Transaction;

use crate::feed::FeedEvent;
use crate::store::{Store, StoreError};

/// Replaces the keys of each record the batch names at `authority_code` by
/// those the node read (none: the record is gone from the index there).
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    authority_code: &str,
    events: &[FeedEvent],
) -> Result<(), StoreError> {
    // Every event of one record in a batch carries its keys as they were
    // when the batch was read: the last is as good as any.
    let mut latest: std::collections::BTreeMap<&str, &[i64]> = Default::default();
    for event in events {
        latest.insert(&event.record_id, &event.match_keys);
    }
    let records: Vec<&str> = latest.keys().copied().collect();
    let (mut owners, mut keys) = (vec![], vec![]);
    for (record, record_keys) in &latest {
        for key in *record_keys {
            owners.push(*record);
            keys.push(*key);
        }
    }
    tx.execute(
        &tx.prepare_cached(
            "DELETE FROM blind_index WHERE authority_code = $1 AND record_id = ANY ($2)",
        )
        .await?,
        &[&authority_code, &records],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO blind_index (record_id, authority_code, keys)
             SELECT record_id, $1, array_agg(DISTINCT key)
             FROM unnest($2::text[], $3::bigint[]) AS published (record_id, key)
             GROUP BY record_id ORDER BY record_id",
        )
        .await?,
        &[&authority_code, &owners, &keys],
    )
    .await?;
    Ok(())
}

impl Store {
    /// The Double Metaphone codes of a surname, and of any of the forenames
    /// (a forename and its nicknames), as the nodes code their records'.
    pub async fn name_codes(
        &self,
        surname: &str,
        forenames: &[String],
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(
                        "SELECT coalesce(name_codes($1), '{}'),
                            ARRAY(SELECT DISTINCT code FROM unnest($2::text[]) AS name, unnest(name_codes(name)) AS code)",
                    )
                    .await?,
                &[&surname, &forenames],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Of `authorities`, those whose blind index holds one of `hashes`, and
    /// those whose index is not complete (their node publishes no keys, or
    /// its outbox has not been read to the end).
    pub async fn authorities_holding(
        &self,
        hashes: &[i64],
        authorities: &[String],
    ) -> Result<BTreeSet<String>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT DISTINCT authority_code FROM blind_index
                         WHERE keys && $1 AND authority_code = ANY ($2)
                         UNION
                         SELECT code FROM unnest($2::text[]) AS code
                         WHERE NOT EXISTS (SELECT 1 FROM feed_cursor c
                                           WHERE c.authority_code = code AND c.keyed AND c.caught_up)",
                    )
                    .await?,
                &[&hashes, &authorities],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}
