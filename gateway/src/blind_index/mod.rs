//! The national blind index: which authorities a search need ask. Each
//! node publishes, through its routing feed, the keyed hashes of every live
//! record's blocking keys (`contactpoint_matching::blocking`); the gateway
//! keeps them beside the authority and the record's identifier, never a
//! name or a date. A search's own blocking keys are coded and hashed alike
//! (its surname's and forenames' Double Metaphone codes from the gateway's
//! database, the same functions as the nodes'; its forename's nicknames; its
//! date with day and month swapped), under every matching key the gateway
//! holds, and the search is sent to the authorities holding one of them.
//!
//! Only a tolerant search is narrowed: the index knows a record once the
//! gateway has read its node's feed (within `feed_poll_ms`, up to eight
//! times that when the feed has been idle), and an exact search, as before,
//! asks every node and finds a record the moment it is made.
//!
//! Invariants: an authority whose index is not complete (its node publishes
//! no keys, or its outbox has not been read to the end) is always asked, so
//! the index narrows a search only where it knows; the index follows the
//! feed (transfers, archiving, merges, destruction: a record no longer live
//! at a node has no keys there); the matching key is read from its file,
//! like a TLS key, and never written to the database or a log; SQL only in
//! `store`.
pub(crate) mod store;

use std::collections::BTreeSet;

use contactpoint_matching::blocking::{search_keys, Coded, MatchingKeys};
use contactpoint_matching::keys::forenames_key;
use contactpoint_matching::nicknames::Nicknames;
use contactpoint_proto::v1 as pb;

use crate::error::GatewayError;
use crate::service::GatewayService;

impl GatewayService {
    /// The authorities a tolerant search must ask, or `None` for every one
    /// (an exact search, no matching key, or the caller asked for all).
    pub(crate) async fn authorities_for(
        &self,
        matching: Option<&MatchingKeys>,
        query: &pb::SearchRecordsRequest,
    ) -> Result<Option<BTreeSet<String>>, GatewayError> {
        let tolerant = query.mode == pb::MatchMode::Tolerant as i32;
        let Some(matching) = matching.filter(|_| tolerant && !query.all_authorities) else {
            return Ok(None);
        };
        let forename = forenames_key(&query.forename);
        let variants = forename
            .split(' ')
            .next()
            .filter(|first| !first.is_empty())
            .map_or_else(Vec::new, |first| Nicknames::shipped().variants(first));
        let (surname_codes, forename_codes) =
            self.store.name_codes(&query.surname, &variants).await?;
        let keys = search_keys(&Coded {
            surname_codes: &surname_codes,
            forename_codes: &forename_codes,
            // Checked by `search::check_search`.
            date_of_birth: query
                .date_of_birth
                .as_ref()
                .and_then(|date| chrono::NaiveDate::from_ymd_opt(date.year, date.month, date.day)),
            year_of_birth: i32::try_from(query.year_of_birth)
                .ok()
                .filter(|year| *year > 0),
        });
        let hashes: Vec<i64> = matching
            .hash_all(&keys)
            .into_iter()
            // PostgreSQL's bigint, bit for bit.
            .map(|hash| hash as i64)
            .collect();
        let every: Vec<String> = self
            .directory
            .iter()
            .map(|node| node.code.clone())
            .collect();
        Ok(Some(self.store.authorities_holding(&hashes, &every).await?))
    }
}
