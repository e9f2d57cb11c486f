//! Following every node's routing outbox into the routing index.
//!
//! Each node writes an outbox event, in the same transaction, for every
//! record it becomes responsible for. The gateway reads each outbox from the
//! cursor it keeps in its own database, applies the events and moves the
//! cursor in one transaction. A gateway that was down catches up from its
//! cursor; applying an event twice changes nothing; several gateways sharing
//! one database share the cursors.
use std::time::Duration;

use contactpoint_proto::v1 as pb;

use crate::nodes::{Directory, Node};
use crate::store::{FeedEvent, Store};

/// Events asked for in one read.
const BATCH: u32 = 500;

/// Follows every node's outbox until the task is dropped.
pub async fn follow_all(directory: Directory, store: Store, every: Duration) {
    let mut tasks = tokio::task::JoinSet::new();
    for node in directory.iter().cloned() {
        tasks.spawn(follow(node, store.clone(), every));
    }
    while tasks.join_next().await.is_some() {}
}

async fn follow(node: Node, store: Store, every: Duration) {
    let mut healthy = true;
    loop {
        match read_once(&node, &store).await {
            // A full batch: there may be more; read again at once.
            Ok(read) if read == BATCH as usize => continue,
            Ok(_) => {
                if !healthy {
                    tracing::info!(authority = %node.code, "routing feed readable again");
                }
                healthy = true;
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(authority = %node.code, %error, "cannot read the node's routing feed; will keep trying");
                }
                healthy = false;
            }
        }
        tokio::time::sleep(every).await;
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
    let events = node
        .client()
        .read_routing_feed(request)
        .await?
        .into_inner()
        .events;
    let batch: Vec<_> = events
        .into_iter()
        // A node only speaks for records it is responsible for.
        .filter(|event| event.authority_code == node.code)
        .map(|event| FeedEvent {
            event_id: event.event_id,
            record_id: event.record_id,
            authority_code: event.authority_code,
            moves: i32::try_from(event.moves).unwrap_or(i32::MAX),
        })
        .collect();
    store.apply_feed(&node.code, &batch).await?;
    Ok(batch.len())
}
