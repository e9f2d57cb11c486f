//! The gateway as witness of every node's audit (issue 19, item 3: an audit
//! no one can quietly rewrite). Every interval it asks each node for its
//! audit's head, signed then with the node's audit key, checks it, and
//! countersigns it with the gateway's own key, keeping it in its database.
//! A node that later cut its log back cannot cut these:
//! `contactpoint-gateway --export-witness CODE` hands them to the node's
//! verifier. So an entry is witnessed within about `witness_interval_ms` of
//! being written.
//!
//! Before it countersigns, the gateway checks:
//! - the node's audit key history: every link signed by both its keys, and
//!   holding a key pinned for that node before (the first seen is pinned);
//! - that the head is signed, by the newest key of that history;
//! - that the head neither goes behind the head countersigned last nor
//!   gives that entry another hash, and extends it: the node sends the
//!   digest of every entry since (no entry's content), which linked onto
//!   the hash countersigned last must give the new head's.
//!
//! A head failing any of them is not countersigned: it is logged as an
//! ERROR, counted (`audit_witness_refusals`) and kept for operators.
//!
//! It serves RULES.md, Audit (practice, promised to Parliament): every access
//! is audited and audits are reviewed, which wants logs no node can cut back
//! unseen. Invariants: a head once countersigned is kept as it was; SQL only
//! in `store`.
mod store;

use std::sync::Arc;
use std::time::Duration;

use contactpoint_mtls::{check_key_history, key_id, verify_signature, KeyLink, KeySigner};
use contactpoint_ops::Metrics;
use contactpoint_proto::audit::{checkpoint_message, witness_message, Witness};
use contactpoint_proto::v1 as pb;

use crate::nodes::{Directory, Node};
use crate::store::Store;
pub use store::{Countersigning, Proof};

/// Witnesses every node's head every `every`, one task per node, until aborted.
pub async fn witness_all(
    directory: Directory,
    store: Store,
    signer: Arc<KeySigner>,
    metrics: Arc<Metrics>,
    every: Duration,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let count = u32::try_from(directory.iter().count())
        .unwrap_or(u32::MAX)
        .max(1);
    for (index, node) in (0u32..).zip(directory.iter().cloned()) {
        // Spread over the interval, as the feed's reads are.
        let offset = every * index / count;
        let (store, signer, metrics) = (store.clone(), signer.clone(), metrics.clone());
        tasks.spawn(async move {
            tokio::time::sleep(offset).await;
            loop {
                match witness(&node, &store, &signer, &metrics).await {
                    Ok(Some(last)) => {
                        tracing::debug!(authority = %node.code, last, "audit head countersigned")
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        tracing::warn!(authority = %node.code, %reason, "audit head not witnessed; trying again next interval")
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A node's audit key history as the wire gives it.
fn key_history(checkpoint: &pb::AuditCheckpoint) -> Vec<KeyLink> {
    let present = |bytes: &Vec<u8>| (!bytes.is_empty()).then(|| bytes.clone());
    checkpoint
        .keys
        .iter()
        .map(|key| KeyLink {
            public_key: key.public_key.clone(),
            endorsement: present(&key.endorsement),
            acceptance: present(&key.acceptance),
        })
        .collect()
}

/// Why a head signed as `checkpoint` may not be countersigned by its keys
/// and signature, given the keys `pinned` for its node (none yet: the first
/// history seen is pinned).
pub fn check_signed(
    checkpoint: &pb::AuditCheckpoint,
    pinned: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, (&'static str, String)> {
    let keys = key_history(checkpoint);
    check_key_history(&keys, pinned).map_err(|problem| ("keys", problem))?;
    let newest = &keys[keys.len() - 1].public_key;
    if key_id(newest) != checkpoint.key_id {
        return Err((
            "keys",
            "its head is signed by a key other than the newest of its audit key history".into(),
        ));
    }
    let message = checkpoint_message(checkpoint.last_event_id, &checkpoint.head_hash);
    if !verify_signature(newest, &message, &checkpoint.signature) {
        return Err((
            "signature",
            "its head's signature does not verify with its audit key".into(),
        ));
    }
    Ok(keys.into_iter().map(|key| key.public_key).collect())
}

/// Asks `node` for its audit's head, checks it and countersigns it; returns
/// its last entry (`None`: the audit is empty), or why it was not witnessed.
pub async fn witness(
    node: &Node,
    store: &Store,
    signer: &KeySigner,
    metrics: &Metrics,
) -> Result<Option<i64>, String> {
    let since = store
        .witnessed_up_to(&node.code)
        .await
        .map_err(|error| error.to_string())?;
    let mut request = tonic::Request::new(pb::GetAuditCheckpointRequest {
        since_event_id: since,
    });
    request.set_timeout(Duration::from_secs(5));
    let checkpoint = match node.client().get_audit_checkpoint(request).await {
        Ok(answer) => answer.into_inner(),
        // An empty audit: nothing to witness.
        Err(status) if status.code() == tonic::Code::FailedPrecondition => return Ok(None),
        Err(status) => return Err(format!("{:?}: {}", status.code(), status.message())),
    };
    if checkpoint.authority_code != node.code {
        return Err(format!(
            "the node configured for {} answered for {}",
            node.code, checkpoint.authority_code
        ));
    }
    let pinned = store
        .pinned_audit_keys(&node.code)
        .await
        .map_err(|error| error.to_string())?;
    let mut witness = Witness {
        authority_code: node.code.clone(),
        last_event_id: checkpoint.last_event_id,
        head_hash: checkpoint.head_hash.clone(),
        node_signature: checkpoint.signature.clone(),
        gateway_signature: vec![],
        witnessed_at: String::new(),
    };
    let keys = match check_signed(&checkpoint, &pinned) {
        Ok(keys) => keys,
        Err((reason, detail)) => return Err(refuse(store, metrics, &witness, reason, detail).await),
    };
    witness.gateway_signature = signer
        .sign(&witness_message(
            &node.code,
            witness.last_event_id,
            &witness.head_hash,
            &witness.node_signature,
        ))
        .ok_or("signing the countersignature failed")?;
    let proof = Proof {
        since,
        digests: &checkpoint.entry_digests,
        unprovable: checkpoint.unprovable,
    };
    match store
        .countersign(&witness, &keys, proof)
        .await
        .map_err(|error| error.to_string())?
    {
        Countersigning::Countersigned | Countersigning::Unchanged => {
            Ok(Some(witness.last_event_id))
        }
        Countersigning::Raced => Ok(None),
        Countersigning::Refused { reason, detail } => {
            Err(refuse(store, metrics, &witness, reason, detail).await)
        }
    }
}

/// Raises the alarm for a head refused: an ERROR, the counter, a row.
async fn refuse(
    store: &Store,
    metrics: &Metrics,
    witness: &Witness,
    reason: &'static str,
    detail: String,
) -> String {
    tracing::error!(authority = %witness.authority_code, reason, %detail, "a node's audit head was refused: its log may have been rewritten or cut, or signed by a key it should not be");
    metrics.count_witness_refusal(&witness.authority_code, reason);
    if let Err(error) = store.record_witness_refusal(witness, reason, &detail).await {
        tracing::warn!(%error, "the refused audit head could not be recorded");
    }
    detail
}
