//! The routing feed's SQL: how far each node's outbox has been read, and a
//! batch of its events applied to the routing index with the cursor moved
//! past them, in one transaction. Every value is a bind parameter.
use crate::store::{Store, StoreError};

/// A node's announcement that it is responsible for a record.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub event_id: i64,
    pub record_id: String,
    pub authority_code: String,
    /// Transfers behind it; a route is only replaced by one with as many or more.
    pub moves: i32,
    /// Only the record's blocking keys changed: no route in it.
    pub keys_only: bool,
    /// The record's keyed blocking keys as the node read them (none: no
    /// longer live there), when the feed is keyed.
    pub match_keys: Vec<i64>,
    /// Of `match_keys`, the strong ones (`crate::duplicates`).
    pub duplicate_keys: Vec<i64>,
}

/// What a read of a node's outbox said of its blind index.
#[derive(Debug, Clone, Copy)]
pub struct FeedState {
    /// The node publishes blocking keys.
    pub keyed: bool,
    /// The outbox was read to its end.
    pub caught_up: bool,
}

impl Store {
    /// How far the outbox of `authority_code` has been read.
    pub async fn cursor(&self, authority_code: &str) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT last_event_id FROM feed_cursor WHERE authority_code = $1",
                    )
                    .await?,
                &[&authority_code],
            )
            .await?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// Applies a batch of outbox events and moves the cursor past them, in
    /// one transaction: a crash leaves either both or neither, and applying a
    /// batch twice changes nothing more.
    pub async fn apply_feed(
        &self,
        authority_code: &str,
        events: &[FeedEvent],
        state: FeedState,
    ) -> Result<(), StoreError> {
        let Some(last) = events.iter().map(|event| event.event_id).max() else {
            return self.note_feed_state(authority_code, state).await;
        };
        // One statement for the batch. Only a route of as many transfers or
        // more replaces one: events read out of order across nodes never
        // point back to an authority the record has left. A record named
        // twice in the batch (it left and came back) is written once, as its
        // latest event has it, which is what applying them in turn leaves.
        // In record order, so that gateways sharing the database and applying
        // the same batch at once take the rows' locks in the same order.
        let mut latest: std::collections::BTreeMap<&str, &FeedEvent> = Default::default();
        for event in events.iter().filter(|event| !event.keys_only) {
            let kept = latest.entry(&event.record_id).or_insert(event);
            if (event.moves, event.event_id) >= (kept.moves, kept.event_id) {
                *kept = event;
            }
        }
        let (mut records, mut authorities, mut moves) = (vec![], vec![], vec![]);
        for event in latest.values() {
            records.push(event.record_id.as_str());
            authorities.push(event.authority_code.as_str());
            moves.push(event.moves);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if state.keyed {
            crate::blind_index::store::apply(&tx, authority_code, events).await?;
        }
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO routing_index (record_id, authority_code, moves)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int[])
                 ON CONFLICT (record_id) DO UPDATE
                     SET authority_code = EXCLUDED.authority_code, moves = EXCLUDED.moves, updated_at = now()
                     WHERE routing_index.moves <= EXCLUDED.moves",
            )
            .await?,
            &[&records, &authorities, &moves],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO feed_cursor (authority_code, last_event_id, keyed, caught_up) VALUES ($1, $2, $3, $4)
             ON CONFLICT (authority_code) DO UPDATE
                 SET last_event_id = GREATEST(feed_cursor.last_event_id, EXCLUDED.last_event_id),
                     keyed = EXCLUDED.keyed, caught_up = EXCLUDED.caught_up",
            )
            .await?,
            &[&authority_code, &last, &state.keyed, &state.caught_up],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes what a read that found nothing new said: the outbox read to its
    /// end, keyed or not.
    async fn note_feed_state(
        &self,
        authority_code: &str,
        state: FeedState,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "INSERT INTO feed_cursor (authority_code, last_event_id, keyed, caught_up) VALUES ($1, 0, $2, $3)
                 ON CONFLICT (authority_code) DO UPDATE SET keyed = EXCLUDED.keyed, caught_up = EXCLUDED.caught_up
                 WHERE (feed_cursor.keyed, feed_cursor.caught_up) IS DISTINCT FROM (EXCLUDED.keyed, EXCLUDED.caught_up)",
                    )
                    .await?,
                &[&authority_code, &state.keyed, &state.caught_up],
            )
            .await?;
        Ok(())
    }
}
