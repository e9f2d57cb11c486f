//! The blind index's SQL: a feed batch's keys applied in the feed's own
//! transaction, the authorities holding any of a search's hashes, and a
//! search's names coded by the same functions as the nodes'. Every value is
//! a bind parameter.
use std::collections::BTreeSet;

use deadpool_postgres::Transaction;

use crate::feed::FeedEvent;
use crate::store::{Store, StoreError};

/// Replaces the keys of each record the batch names at `authority_code` by
/// those the node read (none: the record is gone from the index there), and
/// journals a notice for each record of the batch sharing a strong key with
/// another record at another authority (`crate::duplicates`).
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    authority_code: &str,
    events: &[FeedEvent],
) -> Result<(), StoreError> {
    // Every event of one record in a batch carries its keys as they were
    // when the batch was read: the last is as good as any.
    let mut latest: std::collections::BTreeMap<&str, &FeedEvent> = Default::default();
    for event in events {
        latest.insert(&event.record_id, event);
    }
    let records: Vec<&str> = latest.keys().copied().collect();
    let (mut owners, mut keys, mut strong) = (vec![], vec![], vec![]);
    for (record, event) in &latest {
        for key in &event.match_keys {
            owners.push(*record);
            keys.push(*key);
            strong.push(event.duplicate_keys.contains(key));
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
            "INSERT INTO blind_index (record_id, authority_code, keys, strong)
             SELECT record_id, $1, array_agg(DISTINCT key),
                    coalesce(array_agg(DISTINCT key) FILTER (WHERE strong), '{}')
             FROM unnest($2::text[], $3::bigint[], $4::boolean[]) AS published (record_id, key, strong)
             GROUP BY record_id ORDER BY record_id",
        )
        .await?,
        &[&authority_code, &owners, &keys, &strong],
    )
    .await?;
    // Another authority's live record sharing a strong key: perhaps one
    // child recorded twice (the same record at two authorities is a
    // transfer the index has not yet followed, not a duplicate).
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO duplicate_notice (first_record, first_authority, second_record, second_authority)
             SELECT DISTINCT
                 least(mine.record_id, other.record_id),
                 CASE WHEN mine.record_id < other.record_id THEN mine.authority_code ELSE other.authority_code END,
                 greatest(mine.record_id, other.record_id),
                 CASE WHEN mine.record_id < other.record_id THEN other.authority_code ELSE mine.authority_code END
             FROM blind_index mine
             JOIN blind_index other ON other.strong && mine.strong
                 AND other.authority_code <> mine.authority_code AND other.record_id <> mine.record_id
             WHERE mine.authority_code = $1 AND mine.record_id = ANY ($2) AND mine.strong <> '{}'
             ORDER BY 1, 3
             ON CONFLICT (first_record, second_record) DO NOTHING",
        )
        .await?,
        &[&authority_code, &records],
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
