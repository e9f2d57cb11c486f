//! Where the records that moved are, in memory.
//!
//! A record is at the authority that minted its identifier until it moves,
//! so a lookup needs the routing index only for records that left it: a
//! small share of the index, which each gateway holds in memory and keeps
//! current from the database (`Store::moved_routes`; every route change is
//! numbered), so a lookup costs no query of its own. A route missing or
//! stale here (a move not yet read, one committed out of order, a return to
//! the minting authority) costs a hop: a node asked for a record that left
//! it says where it went, and the gateway follows and corrects the index;
//! a node named here that does not answer is passed over for the minting
//! authority's. Besides reading the changes, the gateway reads
//! every moved route afresh each `RELOAD_EVERY` intervals, so a change it
//! missed (a route numbered before one already read but committed after
//! it, or a record's return to its minting authority, which leaves the
//! moved routes) is forgotten within that time at most.
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use contactpoint_proto::identifier::RecordId;

use crate::store::{Store, StoreError};

/// Routes read in one statement.
const PAGE: i64 = 10_000;
/// Intervals between readings of every moved route afresh (ten minutes at
/// the default interval): each reads the whole of a set that grows with
/// every move, so not often; what it mends costs a hop meanwhile.
const RELOAD_EVERY: u64 = 600;

#[derive(Debug, Default)]
pub struct Routes {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Record to the authority now responsible, for records not at the
    /// authority that minted them.
    moved: HashMap<String, String>,
    /// The last route change read.
    seen: i64,
}

impl Routes {
    /// Every moved route in the index.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let routes = Self::default();
        while routes.refresh(store).await? == PAGE as usize {}
        Ok(routes)
    }

    /// The authority holding `id`, if the index says it left the one that
    /// minted it.
    pub fn moved(&self, id: &RecordId) -> Option<String> {
        self.read().moved.get(id.as_str()).cloned()
    }

    /// Notes where a lookup found `id`.
    pub fn found(&self, id: &RecordId, authority: &str) {
        let mut state = self.write();
        if authority == id.minting_authority() {
            state.moved.remove(id.as_str());
        } else {
            state
                .moved
                .insert(id.as_str().to_owned(), authority.to_owned());
        }
    }

    /// Replaces what is held with every moved route in the index.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let fresh = Self::load(store).await?.state;
        *self.write() = fresh
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(())
    }

    /// Reads one page of route changes since the last; returns how many.
    pub async fn refresh(&self, store: &Store) -> Result<usize, StoreError> {
        let seen = self.read().seen;
        let changes = store.moved_routes(seen, PAGE).await?;
        let mut state = self.write();
        for (changed, record_id, authority) in &changes {
            state.moved.insert(record_id.clone(), authority.clone());
            state.seen = state.seen.max(*changed);
        }
        Ok(changes.len())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keeps `routes` current until the task is dropped.
pub async fn follow(routes: std::sync::Arc<Routes>, store: Store, every: Duration) {
    let mut healthy = true;
    for interval in 1u64.. {
        let read = if interval % RELOAD_EVERY == 0 {
            routes.reload(&store).await.map(|()| 0)
        } else {
            routes.refresh(&store).await
        };
        match read {
            Ok(read) if read == PAGE as usize => continue,
            Ok(_) => healthy = true,
            Err(error) => {
                if healthy {
                    tracing::warn!(%error, "cannot read moved routes; lookups may take a hop more until it can");
                }
                healthy = false;
            }
        }
        tokio::time::sleep(every).await;
    }
}
