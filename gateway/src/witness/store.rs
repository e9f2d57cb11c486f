//! The witnessed checkpoints' SQL: keeping a countersigned checkpoint
//! (and saying what it contradicts), and reading an authority's back for its
//! verifier. Every value is a bind parameter.
use contactpoint_proto::audit::Witness;

use crate::store::{Store, StoreError};

impl Store {
    /// Keeps a countersigned checkpoint; one already kept is left as it was.
    /// Returns what contradicts the checkpoints kept before, if anything: the
    /// same entry with another hash, or a head behind one already witnessed
    /// (both signs that the node's log was rewritten or cut).
    pub async fn record_witness(&self, witness: &Witness) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let before = client
            .query_one(
                &client.prepare_cached("SELECT (SELECT head_hash FROM audit_witness WHERE authority_code = $1 AND last_event_id = $2),
                        (SELECT max(last_event_id) FROM audit_witness WHERE authority_code = $1)").await?,
                &[&witness.authority_code, &witness.last_event_id],
            )
            .await?;
        let (same_entry, highest): (Option<Vec<u8>>, Option<i64>) = (before.get(0), before.get(1));
        if same_entry.is_some_and(|hash| hash != witness.head_hash) {
            return Ok(Some(format!(
                "entry {} now has another hash than the one the gateway countersigned",
                witness.last_event_id
            )));
        }
        client
            .execute(
                &client.prepare_cached("INSERT INTO audit_witness (authority_code, last_event_id, head_hash, node_signature, gateway_signature)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING").await?,
                &[
                    &witness.authority_code,
                    &witness.last_event_id,
                    &witness.head_hash,
                    &witness.node_signature,
                    &witness.gateway_signature,
                ],
            )
            .await?;
        Ok(highest
            .filter(|highest| *highest > witness.last_event_id)
            .map(|highest| {
                format!(
                    "its newest checkpoint (entry {}) is behind one already countersigned (entry {highest})",
                    witness.last_event_id
                )
            }))
    }

    /// Every countersigned checkpoint of an authority's node, oldest first.
    pub async fn witnesses(&self, authority_code: &str) -> Result<Vec<Witness>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT last_event_id, head_hash, node_signature, gateway_signature,
                        to_char(witnessed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM audit_witness WHERE authority_code = $1 ORDER BY last_event_id",
                    )
                    .await?,
                &[&authority_code],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Witness {
                authority_code: authority_code.to_owned(),
                last_event_id: row.get(0),
                head_hash: row.get(1),
                node_signature: row.get(2),
                gateway_signature: row.get(3),
                witnessed_at: row.get(4),
            })
            .collect())
    }
}
