//! The routing feed (Schedule 1 para 19): every create, load and transfer
//! in writes an outbox event, in its own transaction, naming this authority
//! as responsible; the gateway reads the outbox from its cursor
//! (`ReadRoutingFeed`, gateway only) into its routing index.
//!
//! The feed also feeds the gateway's national blind index: with the
//! federation's matching key, each event carries the keyed hashes of its
//! record's blocking keys (`contactpoint_matching::blocking`) as the record
//! is when the feed is read, or none when it is no longer live here. A
//! change to what the keys are made of (a name, the date of birth, a former
//! surname; archiving, handing over, merging away, destruction) writes a
//! "keys only" event by trigger (migration V15), so the index follows it.
//!
//! Invariants: an event commits with the change that causes it; each carries
//! how many transfers the record had been through (`moves`), so the index
//! takes only a route with as many or more; the keys are hashed when read,
//! so a reader sees the record's present keys whatever the event's age, and
//! no name or date ever leaves in the clear; polls that find nothing new are
//! not accesses to any record and are not audited.

use std::collections::HashMap;

use chrono::NaiveDate;
use contactpoint_matching::blocking::{duplicate_keys, record_keys, Coded, MatchingKeys};
use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use deadpool_postgres::Transaction;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::identifier::RecordId;
use crate::service::{Method, NodeService};
use crate::store::{Result, Store};

/// Most routing events returned by one ReadRoutingFeed call.
const MAX_FEED_EVENTS: u32 = 1000;

/// An outbox event: this node became responsible for a record.
#[derive(Debug, Clone)]
pub struct RoutingEvent {
    pub event_id: i64,
    pub record_id: String,
    pub authority_code: String,
    /// Transfers the record had been through when it came here.
    pub moves: u32,
    /// Only the record's keys changed: no new responsible authority.
    pub keys_only: bool,
}

pub(crate) async fn read_routing_feed(
    node: &NodeService,
    request: Request<pb::ReadRoutingFeedRequest>,
) -> Result<Response<pb::ReadRoutingFeedResponse>, Status> {
    let caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        node.require(&caller, Right::ReadRoutingFeed)?;
        let limit = match body.limit {
            0 => MAX_FEED_EVENTS,
            n => n.min(MAX_FEED_EVENTS),
        };
        node.store.routing_feed(body.after_event_id, limit).await
    }
    .await;
    let events = match result {
        // Polls that find nothing new are not accesses to any record.
        Ok(events) if events.is_empty() => {
            return Ok(Response::new(pb::ReadRoutingFeedResponse {
                events: vec![],
                keyed: node.store.matching.is_some(),
            }));
        }
        other => other,
    };
    let ids = events
        .as_ref()
        .map(|events| events.iter().map(|event| event.record_id.clone()).collect())
        .unwrap_or_default();
    let response = match events {
        Ok(events) => {
            node.store
                .match_keys(&events)
                .await
                .map(|mut keys| pb::ReadRoutingFeedResponse {
                    keyed: keys.is_some(),
                    events: events
                        .into_iter()
                        .map(|event| {
                            let (match_keys, duplicate_keys) = keys
                                .as_mut()
                                .and_then(|keys| keys.get(&event.record_id).cloned())
                                .unwrap_or_default();
                            pb::RoutingEvent {
                                match_keys,
                                duplicate_keys,
                                event_id: event.event_id,
                                record_id: event.record_id,
                                authority_code: event.authority_code,
                                moves: event.moves,
                                keys_only: event.keys_only,
                            }
                        })
                        .collect(),
                })
        }
        Err(error) => Err(error),
    };
    node.finish(&caller, Method::ReadRoutingFeed, ids, response)
        .await
}

impl Store {
    /// The routing outbox after `after`, oldest first: (event id, record id, authority).
    pub async fn routing_feed(&self, after: i64, limit: u32) -> Result<Vec<RoutingEvent>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT event_id, record_id, coalesce(authority_code, $3), moves, keys_only
                 FROM routing_outbox WHERE event_id > $1 ORDER BY event_id LIMIT $2",
                    )
                    .await?,
                &[&after, &i64::from(limit), &self.authority.code],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| RoutingEvent {
                event_id: row.get(0),
                record_id: row.get(1),
                authority_code: row.get(2),
                moves: u32::try_from(row.get::<_, i32>(3)).unwrap_or_default(),
                keys_only: row.get(4),
            })
            .collect())
    }

    /// The keyed blocking keys of the events' records as they are now, and
    /// the strong ones among them, by record (a record no longer live here
    /// has none); `None` without a matching key.
    pub async fn match_keys(
        &self,
        events: &[RoutingEvent],
    ) -> Result<Option<HashMap<String, (Vec<u64>, Vec<u64>)>>> {
        let Some(matching) = &self.matching else {
            return Ok(None);
        };
        let mut ids: Vec<&str> = events
            .iter()
            .map(|event| event.record_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT r.id,
                        r.family_name_codes || coalesce(ARRAY(
                            SELECT code FROM former_name f, unnest(f.family_name_codes) AS code
                            WHERE f.record_id = r.id), '{}') AS surname_codes,
                        r.given_names_codes, name_codes(split_part(r.given_names, ' ', 1)) AS first_forename_codes,
                        r.date_of_birth
                 FROM child_record r
                 WHERE r.id = ANY ($1) AND r.status = 'live' AND r.archived_on IS NULL",
                    )
                    .await?,
                &[&ids],
            )
            .await?;
        Ok(Some(
            rows.iter()
                .map(|row| {
                    let surname_codes: Vec<String> = row.get("surname_codes");
                    let forename_codes: Vec<String> = row.get("given_names_codes");
                    let first_forename_codes: Vec<String> = row.get("first_forename_codes");
                    let coded = Coded {
                        surname_codes: &surname_codes,
                        forename_codes: &forename_codes,
                        date_of_birth: Some(row.get::<_, NaiveDate>("date_of_birth")),
                        year_of_birth: None,
                    };
                    let keys = record_keys(&coded);
                    let strong = matching.hash_current(&duplicate_keys(&Coded {
                        forename_codes: &first_forename_codes,
                        ..coded
                    }));
                    (row.get("id"), (matching.hash_current(&keys), strong))
                })
                .collect(),
        ))
    }

    /// Publishes under `keys` from now on. When the node last published
    /// under another key (or none), every live record's keys are announced
    /// again, in one transaction with the key's id, so that the gateway's
    /// index moves to the new key (a rotation).
    pub async fn publish_under(&mut self, keys: MatchingKeys) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        crate::store::without_statement_timeout(&tx).await?;
        let last: Option<String> = tx
            .query_opt("SELECT key_id FROM matching_key_state FOR UPDATE", &[])
            .await?
            .map(|row| row.get(0));
        if last.as_deref() != Some(keys.current_id()) {
            let announced = tx
                .execute(
                    "INSERT INTO routing_outbox (record_id, authority_code, keys_only)
                     SELECT id, NULL, true FROM child_record WHERE status = 'live' AND archived_on IS NULL
                     ORDER BY id",
                    &[],
                )
                .await?;
            tx.execute(
                "INSERT INTO matching_key_state (key_id) VALUES ($1)
                 ON CONFLICT (only_row) DO UPDATE SET key_id = EXCLUDED.key_id",
                &[&keys.current_id()],
            )
            .await?;
            tracing::info!(key = %keys.current_id(), records = announced, "publishing blocking keys under a new matching key");
        }
        tx.commit().await?;
        self.matching = Some(std::sync::Arc::new(keys));
        Ok(())
    }

    /// Tells the routing feed this node is now responsible for `id`.
    pub(crate) async fn announce(
        &self,
        tx: &Transaction<'_>,
        id: &RecordId,
        moves: u32,
    ) -> Result<()> {
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
}
