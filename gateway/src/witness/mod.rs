//! The gateway as witness of every node's audit (issue: an audit no one can
//! quietly rewrite). Each interval it fetches each node's newest signed
//! checkpoint, countersigns it with the gateway's own key, and keeps it in
//! its database. A node that later cut its log back, checkpoints and all,
//! cannot cut these: `contactpoint-gateway --export-witness CODE` hands them
//! to the node's verifier.
//!
//! It serves RULES.md, Audit (practice, promised to Parliament): every access
//! is audited and audits are reviewed, which wants logs no node can cut back
//! unseen. Invariants: a checkpoint once countersigned is kept as it was; a
//! newer one that contradicts it is logged as an error at once; SQL only in
//! `store`.
mod store;

use std::time::Duration;

use contactpoint_mtls::KeySigner;
use contactpoint_proto::audit::{witness_message, Witness};
use contactpoint_proto::v1 as pb;

use crate::nodes::{Directory, Node};
use crate::store::{Store, StoreError};

/// Witnesses every node's newest checkpoint every `every`, until aborted.
pub async fn witness_all(directory: Directory, store: Store, signer: KeySigner, every: Duration) {
    // One node at a time, spread over the interval, so a pass over 153
    // nodes is a trickle rather than a burst.
    let count = u32::try_from(directory.iter().count())
        .unwrap_or(u32::MAX)
        .max(1);
    let pause = every / count;
    loop {
        if directory.iter().next().is_none() {
            tokio::time::sleep(every).await;
        }
        for node in directory.iter() {
            match witness(node, &store, &signer).await {
                Ok(Some(last)) => {
                    tracing::debug!(authority = %node.code, last, "audit checkpoint countersigned")
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(authority = %node.code, %reason, "audit checkpoint not witnessed; trying again next interval")
                }
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// Countersigns `node`'s newest checkpoint if it is new; returns its last entry.
pub async fn witness(
    node: &Node,
    store: &Store,
    signer: &KeySigner,
) -> Result<Option<i64>, String> {
    let mut request = tonic::Request::new(pb::GetAuditCheckpointRequest {});
    request.set_timeout(Duration::from_secs(5));
    let checkpoint = match node.client().get_audit_checkpoint(request).await {
        Ok(answer) => answer.into_inner(),
        // No checkpoint yet: nothing to witness.
        Err(status) if status.code() == tonic::Code::FailedPrecondition => return Ok(None),
        Err(status) => return Err(format!("{:?}: {}", status.code(), status.message())),
    };
    if checkpoint.authority_code != node.code {
        return Err(format!(
            "the node configured for {} answered for {}",
            node.code, checkpoint.authority_code
        ));
    }
    let message = witness_message(
        &node.code,
        checkpoint.last_event_id,
        &checkpoint.head_hash,
        &checkpoint.signature,
    );
    let gateway_signature = signer
        .sign(&message)
        .ok_or("signing the countersignature failed")?;
    let contradiction = store
        .record_witness(&Witness {
            authority_code: node.code.clone(),
            last_event_id: checkpoint.last_event_id,
            head_hash: checkpoint.head_hash,
            node_signature: checkpoint.signature,
            gateway_signature,
            witnessed_at: String::new(),
        })
        .await
        .map_err(|error: StoreError| error.to_string())?;
    if let Some(problem) = contradiction {
        tracing::error!(authority = %node.code, %problem, "a node's audit contradicts what the gateway witnessed: its log may have been rewritten or cut");
        return Err(problem);
    }
    Ok(Some(checkpoint.last_event_id))
}
