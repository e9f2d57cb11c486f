//! Following every node's routing outbox into the routing index.
//!
//! Each node writes an outbox event, in the same transaction, for every
//! record it becomes responsible for. The gateway reads each outbox from the
//! cursor it keeps in its own database, applies the events and moves the
//! cursor in one transaction. A gateway that was down catches up from its
//! cursor; applying an event twice changes nothing; several gateways sharing
//! one database share the cursors.
//!
//! The routing index names the one authority responsible for each record
//! (Schedule 1 para 19). The same events carry each record's keyed blocking
//! keys into the blind index (`crate::blind_index`), with whether the node
//! publishes keys at all and whether its outbox was read to the end. Invariants: a route is replaced only by one of as
//! many transfers or more (`FeedEvent::moves`), so outboxes read out of
//! order never point a lookup back; SQL only in `store`.
mod store;

pub use store::{FeedEvent, FeedState};

use std::time::Duration;

use contactpoint_proto::v1 as pb;

use crate::nodes::{Directory, Node};
use crate::store::Store;

/// Events asked for in one read.
const BATCH: u32 = 500;

/// Follows every node's outbox until the task is dropped.
pub async fn follow_all(directory: Directory, store: Store, every: Duration) {
    let mut tasks = tokio::task::JoinSet::new();
    let count = u32::try_from(directory.iter().count())
        .unwrap_or(u32::MAX)
        .max(1);
    for (index, node) in (0u32..).zip(directory.iter().cloned()) {
        // Spread over the interval: with 153 nodes, a read every few
        // milliseconds rather than 153 at once every interval, which
        // would stall whatever else the gateway is doing at that moment.
        let offset = every * index / count;
        let store = store.clone();
        tasks.spawn(async move {
            tokio::time::sleep(offset).await;
            follow(node, store, every).await
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Reads of an outbox that keeps finding nothing new slow down to one in
/// this many intervals; the first event read brings them back to every
/// interval. A stale index costs a hop, never a wrong answer: a record is at
/// the authority that minted it until it moves, and a node asked for a
/// record that moved away says where it went.
const IDLE_BACKOFF: u32 = 8;

async fn follow(node: Node, store: Store, every: Duration) {
    let mut healthy = true;
    let mut pause = every;
    loop {
        match read_once(&node, &store).await {
            // A full batch: there may be more; read again at once.
            Ok(read) if read == BATCH as usize => continue,
            Ok(read) => {
                if !healthy {
                    tracing::info!(authority = %node.code, "routing feed readable again");
                }
                healthy = true;
                pause = if read == 0 {
                    (pause * 2).min(every * IDLE_BACKOFF)
                } else {
                    every
                };
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(authority = %node.code, %error, "cannot read the node's routing feed; will keep trying");
                }
                healthy = false;
                pause = every;
            }
        }
        tokio::time::sleep(pause).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("node: {0}")]
    Node(#[from] tonic::Status),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reads and applies one batch; returns how many events it held.
pub async fn read_once(node: &Node, store: &Store) -> Result<usize, FeedError> {
    let after = store.cursor(&node.code).await?;
    let request = pb::ReadRoutingFeedRequest {
        after_event_id: after,
        limit: BATCH,
    };
    let read = node.client().read_routing_feed(request).await?.into_inner();
    let count = read.events.len();
    let batch: Vec<_> = read
        .events
        .into_iter()
        // A node only speaks for records it is responsible for.
        .filter(|event| event.authority_code == node.code)
        .map(|event| FeedEvent {
            event_id: event.event_id,
            record_id: event.record_id,
            authority_code: event.authority_code,
            moves: i32::try_from(event.moves).unwrap_or(i32::MAX),
            keys_only: event.keys_only,
            // Stored as PostgreSQL's bigint, bit for bit.
            match_keys: event.match_keys.into_iter().map(|key| key as i64).collect(),
            duplicate_keys: event
                .duplicate_keys
                .into_iter()
                .map(|key| key as i64)
                .collect(),
        })
        .collect();
    let state = FeedState {
        keyed: read.keyed,
        caught_up: count < BATCH as usize,
    };
    store.apply_feed(&node.code, &batch, state).await?;
    Ok(count)
}
