//! The routing feed (Schedule 1 para 19): every create, load and transfer
//! in writes an outbox event, in its own transaction, naming this authority
//! as responsible; the gateway reads the outbox from its cursor
//! (`ReadRoutingFeed`, gateway only) into its routing index.
//!
//! Invariants: an event commits with the change that causes it; each carries
//! how many transfers the record had been through (`moves`), so the index
//! takes only a route with as many or more; polls that find nothing new are
//! not accesses to any record and are not audited.

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
            }));
        }
        other => other,
    };
    let ids = events
        .as_ref()
        .map(|events| events.iter().map(|event| event.record_id.clone()).collect())
        .unwrap_or_default();
    let response = events.map(|events| pb::ReadRoutingFeedResponse {
        events: events
            .into_iter()
            .map(|event| pb::RoutingEvent {
                event_id: event.event_id,
                record_id: event.record_id,
                authority_code: event.authority_code,
                moves: event.moves,
            })
            .collect(),
    });
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
