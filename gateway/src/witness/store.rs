//! The witness's SQL: the newest head countersigned per node, the history
//! of countersigned heads (a minute apart at most), the node keys pinned,
//! and the heads refused. Every value is a bind parameter.
use contactpoint_proto::audit::{extends, Witness};

use crate::store::{Store, StoreError};

/// A countersigned head kept in the history at most this often per node;
/// the newest is always in `audit_witness_head`.
const HISTORY_SECONDS: f64 = 60.0;

/// What became of a head offered for countersigning.
#[derive(Debug, PartialEq, Eq)]
pub enum Countersigning {
    /// Ahead of the last head countersigned: countersigned and kept.
    Countersigned,
    /// The head countersigned last, again: nothing to keep.
    Unchanged,
    /// Another gateway countersigned a head meanwhile: the proof was
    /// against an older one; asked again next interval.
    Raced,
    /// Behind, another hash at the same entry, or not extending the head
    /// countersigned last: refused (`reason`, and what it contradicts).
    Refused {
        reason: &'static str,
        detail: String,
    },
}

/// A head's proof that it extends the head countersigned last.
#[derive(Debug, Clone, Copy)]
pub struct Proof<'a> {
    /// The last entry of the head it starts from (0: none).
    pub since: i64,
    /// The digests of the entries after it, oldest first.
    pub digests: &'a [Vec<u8>],
    /// Entries from before digests were kept are among them: no proof.
    pub unprovable: bool,
}

impl Store {
    /// The last entry of the newest head countersigned for `authority_code`
    /// (0: none yet).
    pub async fn witnessed_up_to(&self, authority_code: &str) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT last_event_id FROM audit_witness_head WHERE authority_code = $1",
                    )
                    .await?,
                &[&authority_code],
            )
            .await?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// The public keys of `authority_code`'s audit this gateway has pinned.
    pub async fn pinned_audit_keys(
        &self,
        authority_code: &str,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT public_key FROM audit_node_key WHERE authority_code = $1",
                    )
                    .await?,
                &[&authority_code],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Keeps `witness` as its node's newest countersigned head, and pins
    /// `keys` (its audit key history, verified), unless it goes behind the
    /// head countersigned last, gives its entry another hash, or `proof`
    /// does not link it to it. In one transaction holding that node's head,
    /// so gateways sharing the database judge each head against the same
    /// last one.
    pub async fn countersign(
        &self,
        witness: &Witness,
        keys: &[Vec<u8>],
        proof: Proof<'_>,
    ) -> Result<Countersigning, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let code = &witness.authority_code;
        let last = tx
            .query_opt(
                &tx.prepare_cached(
                    "SELECT last_event_id, head_hash FROM audit_witness_head
                     WHERE authority_code = $1 FOR UPDATE",
                )
                .await?,
                &[code],
            )
            .await?;
        if let Some(last) = last {
            let (last_id, last_hash): (i64, Vec<u8>) = (last.get(0), last.get(1));
            if witness.last_event_id < last_id {
                return Ok(Countersigning::Refused {
                    reason: "behind",
                    detail: format!(
                        "its head (entry {}) is behind the head already countersigned (entry {last_id}): its log went back",
                        witness.last_event_id
                    ),
                });
            }
            if witness.last_event_id == last_id {
                if witness.head_hash != last_hash {
                    return Ok(Countersigning::Refused {
                        reason: "forked",
                        detail: format!(
                            "entry {last_id} now has another hash than the one countersigned: its log was rewritten"
                        ),
                    });
                }
                return Ok(Countersigning::Unchanged);
            }
            if last_id != proof.since {
                return Ok(Countersigning::Raced);
            }
            if proof.unprovable {
                tracing::warn!(authority = %code, "audit head countersigned without a proof: its entries since the last head predate digests (node migration V19)");
            } else if !extends(&last_hash, proof.digests, &witness.head_hash) {
                return Ok(Countersigning::Refused {
                    reason: "forked",
                    detail: format!(
                        "its head (entry {}) does not extend the head countersigned last (entry {last_id}): its log was rewritten below it",
                        witness.last_event_id
                    ),
                });
            }
        }
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO audit_witness_head (authority_code, last_event_id, head_hash, node_signature, gateway_signature)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (authority_code) DO UPDATE SET last_event_id = EXCLUDED.last_event_id,
                     head_hash = EXCLUDED.head_hash, node_signature = EXCLUDED.node_signature,
                     gateway_signature = EXCLUDED.gateway_signature, witnessed_at = now()",
            )
            .await?,
            &[
                code,
                &witness.last_event_id,
                &witness.head_hash,
                &witness.node_signature,
                &witness.gateway_signature,
            ],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO audit_witness (authority_code, last_event_id, head_hash, node_signature, gateway_signature)
                 SELECT $1, $2, $3, $4, $5
                 WHERE NOT EXISTS (SELECT 1 FROM audit_witness WHERE authority_code = $1
                                   AND witnessed_at > now() - make_interval(secs => $6))
                 ON CONFLICT DO NOTHING",
            )
            .await?,
            &[
                code,
                &witness.last_event_id,
                &witness.head_hash,
                &witness.node_signature,
                &witness.gateway_signature,
                &HISTORY_SECONDS,
            ],
        )
        .await?;
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO audit_node_key (authority_code, public_key)
                 SELECT $1, key FROM unnest($2::bytea[]) AS key ON CONFLICT DO NOTHING",
            )
            .await?,
            &[code, &keys],
        )
        .await?;
        tx.commit().await?;
        Ok(Countersigning::Countersigned)
    }

    /// Keeps a head refused, with why, for operators.
    pub async fn record_witness_refusal(
        &self,
        witness: &Witness,
        reason: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "INSERT INTO audit_witness_refusal (authority_code, reason, detail, last_event_id, head_hash, node_signature)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .await?,
                &[
                    &witness.authority_code,
                    &reason,
                    &detail,
                    &witness.last_event_id,
                    &witness.head_hash,
                    &witness.node_signature,
                ],
            )
            .await?;
        Ok(())
    }

    /// Every countersigned head of an authority's node kept, oldest first:
    /// the history and the newest.
    pub async fn witnesses(&self, authority_code: &str) -> Result<Vec<Witness>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT last_event_id, head_hash, node_signature, gateway_signature,
                                to_char(witnessed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                         FROM (SELECT last_event_id, head_hash, node_signature, gateway_signature, witnessed_at
                               FROM audit_witness WHERE authority_code = $1
                               UNION
                               SELECT last_event_id, head_hash, node_signature, gateway_signature, witnessed_at
                               FROM audit_witness_head h WHERE authority_code = $1
                                 AND NOT EXISTS (SELECT 1 FROM audit_witness w WHERE w.authority_code = $1
                                                 AND w.last_event_id = h.last_event_id)) AS kept
                         ORDER BY last_event_id, witnessed_at",
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
