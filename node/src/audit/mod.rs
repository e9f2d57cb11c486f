//! The node's audit as a hash chain, with signed checkpoints, and the
//! verifier that checks it end to end.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the
//! entry's canonical form (its id, time, caller, role, method, records,
//! outcome, route and reason). Altering an entry changes its hash; deleting
//! or reordering entries breaks the link the next entry holds. A checkpoint
//! signs the head (last id and hash) with the node's audit key (`keys`: a
//! key of its own, with its history), so cutting the log back below a
//! checkpoint is detected too. The gateway asks for the head signed as it is
//! now (`GetAuditCheckpoint`) every few seconds and countersigns it.
//!
//! Every access is audited (RULES.md, Audit: promised to Parliament) before
//! it is answered: a change's entry commits with the change (`insert_audit`),
//! a read's or refusal's in a statement of its own (`Store::audit`). One
//! statement appends an entry (migration V13's `audit_append`), which takes
//! the chain's lock, reads the head, hashes and inserts; the lock is never
//! held across a round trip to the node. Who has seen a record is
//! `subject_access`; the gateway countersigns checkpoints (`GetAuditCheckpoint`).

pub mod keys;
pub(crate) mod subject_access;
mod verify;

pub use verify::{check_witnesses, public_key_of, verify, AuditExport, Report};

use chrono::{DateTime, SubsecRound, Utc};
use contactpoint_mtls::{key_id, KeySigner};
use contactpoint_policy::Right;
use contactpoint_proto::audit::{checkpoint_message, MAX_PROOF_ENTRIES};
use contactpoint_proto::v1 as pb;
use deadpool_postgres::Transaction;
use std::time::Duration;
use tokio_postgres::GenericClient;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::notifications::Notify;
use crate::service::{Method, NodeService};
use crate::store::{Result, Store};

/// The fields of an entry its hash covers, besides its id and time.
#[derive(Clone, Copy)]
struct Fields<'a> {
    organisation: &'a str,
    unit: Option<&'a str>,
    name: &'a str,
    method: &'a str,
    record_ids: &'a [String],
    outcome: &'a str,
    role: &'a str,
    via: Option<&'a str>,
    reason: Option<&'a str>,
    /// A search's parameters; entries without one hash as they always have.
    query: Option<&'a str>,
}

/// An entry's canonical form: the bytes its hash covers.
fn canonical(event_id: i64, at: &DateTime<Utc>, f: &Fields<'_>) -> Vec<u8> {
    if let Some(query) = f.query {
        return serde_json::to_vec(&(
            canonical(event_id, at, &Fields { query: None, ..*f }),
            query,
        ))
        .expect("serialising bytes and strings cannot fail");
    }
    serde_json::to_vec(&(
        event_id,
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        f.organisation,
        f.unit,
        f.name,
        f.method,
        f.record_ids,
        f.outcome,
        f.role,
        f.via,
        f.reason,
    ))
    .expect("serialising strings and numbers cannot fail")
}

/// Appends an entry (migration V13's `audit_append`): the server takes the
/// chain's lock, reads the head, completes the canonical form with the id,
/// hashes and inserts, with the entry's notifications.
const APPEND: &str =
    "SELECT audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// An entry's canonical form without its id, which `audit_append` puts in
/// front once it holds the lock: `[` and the id's digits before the plain
/// form's tail; `[[91,` and the digits' codes before a search's, whose form
/// holds the plain one as a JSON array of its bytes.
struct Tail {
    nested: bool,
    bytes: Vec<u8>,
}

impl Tail {
    fn of(at: &DateTime<Utc>, fields: &Fields<'_>) -> Self {
        let nested = fields.query.is_some();
        // Id 0 is `[0` in the plain form, and `[91,48` inside a search's.
        let prefix: &[u8] = if nested { b"[[91,48" } else { b"[0" };
        let whole = canonical(0, at, fields);
        debug_assert!(whole.starts_with(prefix));
        Self {
            nested,
            bytes: whole[prefix.len()..].to_vec(),
        }
    }
}

fn fields<'a>(event: &'a AuditEvent<'a>, record_ids: &'a [String]) -> Fields<'a> {
    Fields {
        organisation: event.organisation,
        unit: event.unit,
        name: event.name,
        method: event.method,
        record_ids,
        outcome: event.outcome,
        role: &event.role,
        via: event.via.as_deref(),
        reason: event.reason,
        query: event.query.as_deref(),
    }
}

/// Appends one entry to the chain inside `tx`, which holds the append lock
/// until it ends.
pub async fn append(
    tx: &Transaction<'_>,
    event: &AuditEvent<'_>,
    record_ids: &[String],
) -> Result<(), NodeError> {
    let statement = tx.prepare_cached(APPEND).await?;
    run_append(&**tx, &statement, &fields(event, record_ids), &[]).await
}

/// Appends one entry, with the notifications it carries, in one statement
/// of its own (its own transaction, which holds the append lock until it
/// commits): for reads and refusals, which change nothing else.
pub async fn append_alone(
    client: deadpool_postgres::Object,
    event: &AuditEvent<'_>,
) -> Result<(), NodeError> {
    let statement = client.prepare_cached(APPEND).await?;
    let notify: Vec<&str> = event
        .notifications
        .iter()
        .map(|kind| kind.as_db())
        .collect();
    run_append(
        &**client,
        &statement,
        &fields(event, &event.record_ids),
        &notify,
    )
    .await
}

/// Runs `APPEND` (prepared as `statement`) for an entry timed now.
async fn run_append(
    client: &impl GenericClient,
    statement: &tokio_postgres::Statement,
    f: &Fields<'_>,
    notify: &[&str],
) -> Result<(), NodeError> {
    let at = Utc::now().trunc_subsecs(6);
    let tail = Tail::of(&at, f);
    client
        .query_one(
            statement,
            &[
                &tail.nested,
                &tail.bytes,
                &at,
                &f.organisation,
                &f.unit,
                &f.name,
                &f.method,
                &f.record_ids,
                &f.outcome,
                &f.role,
                &f.via,
                &f.reason,
                &f.query,
                &notify,
            ],
        )
        .await?;
    Ok(())
}

/// Signs checkpoints with the node's audit key (ECDSA P-256, PKCS#8).
#[derive(Debug)]
pub struct CheckpointSigner {
    key: KeySigner,
    key_id: Vec<u8>,
}

/// The chain's head as it is, signed now.
#[derive(Debug, Clone)]
pub struct SignedHead {
    pub last_event_id: i64,
    pub head_hash: Vec<u8>,
    pub signature: Vec<u8>,
}

impl CheckpointSigner {
    /// From a PKCS#8 DER private key; only ECDSA P-256 keys are supported.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        Ok(Self::new(KeySigner::from_pkcs8(der)?))
    }

    /// From the PKCS#8 PEM file `audit_key` names.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, String> {
        Ok(Self::new(KeySigner::from_pem_file(path)?))
    }

    fn new(key: KeySigner) -> Self {
        let key_id = key_id(&key.public_key());
        Self { key, key_id }
    }

    /// The signing key.
    pub fn key(&self) -> &KeySigner {
        &self.key
    }

    /// SHA-256 of the public key: what each checkpoint names it by.
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// Signs the head `last_event_id` with `head_hash`.
    fn sign_head(&self, last_event_id: i64, head_hash: Vec<u8>) -> Result<SignedHead, NodeError> {
        let signature = self
            .key
            .sign(&checkpoint_message(last_event_id, &head_hash))
            .ok_or_else(|| NodeError::Corrupt("signing the audit's head failed".into()))?;
        Ok(SignedHead {
            last_event_id,
            head_hash,
            signature,
        })
    }

    /// The head of the chain signed as it is now (stored nowhere: the
    /// gateway keeps what it countersigns), with the proof that it extends
    /// the entry `since` (none: 0): the digest of every entry after it,
    /// oldest first, at most [`MAX_PROOF_ENTRIES`] (past them, the head they
    /// reach), and whether an entry among them predates digests, so that
    /// there is no proof. `None` while the audit is empty.
    pub async fn head_since(
        &self,
        client: &impl GenericClient,
        since: i64,
    ) -> Result<Option<(SignedHead, Vec<Vec<u8>>, bool)>, NodeError> {
        if since > 0 {
            let rows = client
                .query(
                    "SELECT event_id, entry_hash, form_digest FROM audit_proof($1, $2)",
                    &[&since, &MAX_PROOF_ENTRIES],
                )
                .await?;
            if let Some(last) = rows.last() {
                let digests: Vec<Option<Vec<u8>>> = rows.iter().map(|row| row.get(2)).collect();
                let unprovable = digests.iter().any(Option::is_none);
                let head = self.sign_head(last.get(0), last.get(1))?;
                return Ok(Some((
                    head,
                    digests.into_iter().flatten().collect(),
                    unprovable,
                )));
            }
        }
        let Some((last_event_id, head_hash)) = newest_entry(client).await? else {
            return Ok(None);
        };
        Ok(Some((
            self.sign_head(last_event_id, head_hash)?,
            vec![],
            false,
        )))
    }

    /// Records a signed checkpoint of the chain's head, if the chain has
    /// grown since the last one. Returns the id of the head it signed.
    pub async fn checkpoint(&self, client: &impl GenericClient) -> Result<Option<i64>, NodeError> {
        let Some((last_event_id, hash)) = newest_entry(client).await? else {
            return Ok(None);
        };
        let signed: Option<i64> = client
            .query_one("SELECT max(last_event_id) FROM audit_checkpoint", &[])
            .await?
            .get(0);
        if signed == Some(last_event_id) {
            return Ok(Some(last_event_id));
        }
        let head = self.sign_head(last_event_id, hash)?;
        client
            .execute(
                "INSERT INTO audit_checkpoint (last_event_id, head_hash, signature, key_id) VALUES ($1, $2, $3, $4)",
                &[&last_event_id, &head.head_hash, &head.signature, &self.key_id],
            )
            .await?;
        Ok(Some(last_event_id))
    }
}

/// The newest entry of the chain: its id and hash; `None` while it is empty.
async fn newest_entry(client: &impl GenericClient) -> Result<Option<(i64, Vec<u8>)>, NodeError> {
    Ok(client
        .query_opt(
            "SELECT event_id, entry_hash FROM audit_event WHERE entry_hash IS NOT NULL ORDER BY event_id DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Who did what, for the audit table.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub organisation: &'a str,
    pub unit: Option<&'a str>,
    pub name: &'a str,
    pub method: &'a str,
    pub record_ids: Vec<String>,
    pub outcome: &'a str,
    /// The reason the caller stated, if any.
    pub reason: Option<&'a str>,
    /// The caller's role, in `Role::to_wire` form.
    pub role: String,
    /// The gateway's identity, when it called on the caller's behalf.
    pub via: Option<String>,
    /// A search's parameters, as JSON.
    pub query: Option<String>,
    /// What to tell the responsible authority about the records accessed,
    /// written with the audit entry.
    pub notifications: Vec<Notify>,
}

impl Store {
    /// How long the oldest audit entry has waited for a signed checkpoint
    /// (0 when every entry is under one): grows only if checkpointing stops.
    pub async fn checkpoint_age_seconds(&self) -> Result<Option<i64>> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &client.prepare_cached("SELECT audit_unsigned_age()").await?,
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Appends to the audit table a call that changed nothing (reads, and
    /// refused calls), with what the responsible authority is to be told of
    /// it, in one statement (see `audit::append_alone`). Changes are audited
    /// inside their own transaction.
    pub async fn audit(&self, event: &AuditEvent<'_>) -> Result<()> {
        crate::audit::append_alone(self.pool.get().await?, event).await
    }

    /// Signs a checkpoint of the audit chain's head (see `audit`).
    pub async fn checkpoint_audit(
        &self,
        signer: &crate::audit::CheckpointSigner,
    ) -> Result<Option<i64>> {
        let client = self.pool.get().await?;
        signer.checkpoint(&**client).await
    }
}

/// Audits a change in the transaction that makes it: committed together or not at all.
pub(crate) async fn insert_audit(
    tx: &Transaction<'_>,
    event: &AuditEvent<'_>,
    id: &RecordId,
) -> Result<()> {
    crate::audit::append(tx, event, &[id.to_string()]).await
}

pub(crate) async fn get_audit_checkpoint(
    node: &NodeService,
    request: Request<pb::GetAuditCheckpointRequest>,
) -> Result<Response<pb::AuditCheckpoint>, Status> {
    let caller = node.caller(&request)?;
    if let Err(refused) = node.require(&caller, Right::WitnessAudit) {
        return node
            .finish(&caller, Method::GetAuditCheckpoint, vec![], Err(refused))
            .await;
    }
    // Reading the head touches no record: not an access to audit.
    let result: Result<_, NodeError> = async {
        let signer = &node.audit_signer;
        let since = request.get_ref().since_event_id;
        let (head, entry_digests, unprovable) = signer
            .head_since(&**node.store.pool.get().await?, since)
            .await?
            .ok_or_else(|| NodeError::NotApplicable("the audit is empty".into()))?;
        let keys = node.store.audit_keys().await?;
        Ok(pb::AuditCheckpoint {
            authority_code: node.store.authority().code.clone(),
            last_event_id: head.last_event_id,
            head_hash: head.head_hash,
            signature: head.signature,
            key_id: signer.key_id().to_vec(),
            entry_digests,
            unprovable,
            keys: keys
                .into_iter()
                .map(|key| pb::AuditKey {
                    public_key: key.public_key,
                    endorsement: key.endorsement.unwrap_or_default(),
                    acceptance: key.acceptance.unwrap_or_default(),
                })
                .collect(),
        })
    }
    .await;
    result.map(Response::new).map_err(NodeError::into_status)
}

/// Signs a checkpoint of the audit chain every `every`.
pub(crate) async fn checkpoint_every(
    store: Store,
    signer: std::sync::Arc<CheckpointSigner>,
    every: Duration,
) {
    // The first after between half and all of the interval, at random, so
    // that nodes started together (a host's restart) do not all sign and
    // write at once ever after.
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    tokio::time::sleep(every.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)).await;
    loop {
        if let Err(error) = store.checkpoint_audit(&signer).await {
            tracing::warn!(%error, "audit checkpoint not written; will try again");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `audit_append` puts before a tail: the id, or its digits' codes.
    fn completed(event_id: i64, tail: &Tail) -> Vec<u8> {
        let digits = event_id.to_string();
        let mut whole = if tail.nested {
            let codes: Vec<String> = digits.bytes().map(|b| b.to_string()).collect();
            format!("[[91,{}", codes.join(",")).into_bytes()
        } else {
            format!("[{digits}").into_bytes()
        };
        whole.extend_from_slice(&tail.bytes);
        whole
    }

    #[test]
    fn a_tail_completed_with_its_id_is_the_canonical_form() {
        let at = Utc::now().trunc_subsecs(6);
        let records = vec!["E06000001-0000-0001".to_owned()];
        let plain = Fields {
            organisation: "NSPCC",
            unit: None,
            name: "A \"reader\"",
            method: "GetRecord",
            record_ids: &records,
            outcome: "ok",
            role: "schedule2:nspcc",
            via: Some("gateway"),
            reason: Some("case review"),
            query: None,
        };
        let search = Fields {
            query: Some(r#"{"family_name":"O'Brien"}"#),
            ..plain
        };
        for fields in [plain, search] {
            let tail = Tail::of(&at, &fields);
            for event_id in [0, 1, 9, 10, 4711, 1_000_000_007, i64::MAX] {
                assert_eq!(
                    completed(event_id, &tail),
                    canonical(event_id, &at, &fields),
                    "id {event_id}, nested {}",
                    tail.nested
                );
            }
        }
    }
}
