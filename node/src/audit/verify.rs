//! The verifier: a node's whole audit checked end to end (every entry's
//! hash and link, the audit key history against a key trusted, every
//! checkpoint's signature and head, and the gateway's countersigned heads),
//! from the node's database or from an export of it (`AuditExport`, JSON
//! lines), so that the audit can be checked offline, away from the node
//! (`cpctl audit export`, `cpctl audit verify --export`). An export holds what
//! the audit holds (callers, search parameters): it is kept as the audit is.
use std::io::Write;

use chrono::{DateTime, Utc};
use contactpoint_mtls::{check_key_history, key_id, verify_signature, KeyLink, KeySigner};
use contactpoint_proto::audit::{checkpoint_message, form_digest, link, witness_message, Witness};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::{canonical, keys, Fields};
use crate::error::NodeError;

/// What the verifier found.
#[derive(Debug, Default)]
pub struct Report {
    pub entries: u64,
    pub checkpoints: u64,
    /// Countersigned checkpoints checked (see `check_witnesses`).
    pub witnessed: u64,
    /// Every break found, each naming the entry or checkpoint.
    pub problems: Vec<String>,
    /// Each entry's stored hash, by id.
    hashes: std::collections::HashMap<i64, Vec<u8>>,
    /// The public keys of the audit key history, oldest first, once it
    /// verified against the trusted key.
    keys: Vec<Vec<u8>>,
}

impl Report {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The public key of the audit key file at `path`: what a verifier trusts.
pub fn public_key_of(path: &std::path::Path) -> Result<Vec<u8>, String> {
    Ok(KeySigner::from_pem_file(path)?.public_key())
}

/// Bytes as lowercase hex in an export.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(&contactpoint_proto::audit::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(from)?;
        contactpoint_proto::audit::unhex(&text).ok_or_else(|| serde::de::Error::custom("not hex"))
    }

    /// The same, for bytes that may be absent.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, to: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(bytes) => super::serialize(bytes, to),
                None => to.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            from: D,
        ) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(from)?
                .map(|text| {
                    contactpoint_proto::audit::unhex(&text)
                        .ok_or_else(|| serde::de::Error::custom("not hex"))
                })
                .transpose()
        }
    }
}

/// One audit entry, every column its hash covers and the chain's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedEntry {
    pub event_id: i64,
    pub at: DateTime<Utc>,
    pub organisation: String,
    pub unit: Option<String>,
    pub name: String,
    pub method: String,
    pub record_ids: Vec<String>,
    pub outcome: String,
    pub role: String,
    pub via: Option<String>,
    pub reason: Option<String>,
    pub query: Option<String>,
    #[serde(with = "hex::option")]
    pub prev_hash: Option<Vec<u8>>,
    #[serde(with = "hex::option")]
    pub entry_hash: Option<Vec<u8>>,
    #[serde(with = "hex::option")]
    pub form_digest: Option<Vec<u8>>,
}

/// One key of the audit key history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedKey {
    #[serde(with = "hex")]
    pub public_key: Vec<u8>,
    #[serde(with = "hex::option")]
    pub endorsement: Option<Vec<u8>>,
    #[serde(with = "hex::option")]
    pub acceptance: Option<Vec<u8>>,
}

/// One signed checkpoint the node kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedCheckpoint {
    pub checkpoint_id: i64,
    pub last_event_id: i64,
    #[serde(with = "hex")]
    pub head_hash: Vec<u8>,
    #[serde(with = "hex")]
    pub signature: Vec<u8>,
    #[serde(with = "hex::option")]
    pub key_id: Option<Vec<u8>>,
}

/// A line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Audit { authority_code: String },
    Key(ExportedKey),
    Entry(Box<ExportedEntry>),
    Checkpoint(ExportedCheckpoint),
}

/// A node's whole audit: its key history, entries and checkpoints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditExport {
    pub authority_code: String,
    pub keys: Vec<ExportedKey>,
    pub entries: Vec<ExportedEntry>,
    pub checkpoints: Vec<ExportedCheckpoint>,
}

impl AuditExport {
    /// Reads the whole audit of `authority_code`'s node from its database.
    pub async fn load(
        client: &impl GenericClient,
        authority_code: &str,
    ) -> Result<Self, NodeError> {
        let keys = keys::history(client)
            .await?
            .into_iter()
            .map(|key| ExportedKey {
                public_key: key.public_key,
                endorsement: key.endorsement,
                acceptance: key.acceptance,
            })
            .collect();
        let entries = client
            .query(
                "SELECT event_id, at, caller_organisation, caller_unit, caller_name, method, record_ids, outcome,
                        role, via, reason, query, prev_hash, entry_hash, form_digest
                 FROM audit_event ORDER BY event_id",
                &[],
            )
            .await?
            .iter()
            .map(|row| ExportedEntry {
                event_id: row.get(0),
                at: row.get(1),
                organisation: row.get(2),
                unit: row.get(3),
                name: row.get(4),
                method: row.get(5),
                record_ids: row.get(6),
                outcome: row.get(7),
                role: row.get(8),
                via: row.get(9),
                reason: row.get(10),
                query: row.get(11),
                prev_hash: row.get(12),
                entry_hash: row.get(13),
                form_digest: row.get(14),
            })
            .collect();
        let checkpoints = client
            .query(
                "SELECT checkpoint_id, last_event_id, head_hash, signature, key_id
                 FROM audit_checkpoint ORDER BY checkpoint_id",
                &[],
            )
            .await?
            .iter()
            .map(|row| ExportedCheckpoint {
                checkpoint_id: row.get(0),
                last_event_id: row.get(1),
                head_hash: row.get(2),
                signature: row.get(3),
                key_id: row.get(4),
            })
            .collect();
        Ok(Self {
            authority_code: authority_code.to_owned(),
            keys,
            entries,
            checkpoints,
        })
    }

    /// Writes the export as JSON lines: the authority, then its keys,
    /// entries and checkpoints, one a line.
    pub fn write_lines(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut line = |value: &Line| -> std::io::Result<()> {
            serde_json::to_writer(&mut *out, value)?;
            out.write_all(b"\n")
        };
        line(&Line::Audit {
            authority_code: self.authority_code.clone(),
        })?;
        self.keys
            .iter()
            .try_for_each(|key| line(&Line::Key(key.clone())))?;
        self.entries
            .iter()
            .try_for_each(|entry| line(&Line::Entry(Box::new(entry.clone()))))?;
        self.checkpoints
            .iter()
            .try_for_each(|checkpoint| line(&Line::Checkpoint(checkpoint.clone())))
    }

    /// Reads what [`AuditExport::write_lines`] wrote; an error names the line.
    pub fn read_lines(text: &str) -> Result<Self, String> {
        let mut export = Self::default();
        for (index, text) in text.lines().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(text)
                .map_err(|error| format!("line {}: {error}", index + 1))?;
            match line {
                Line::Audit { authority_code } => export.authority_code = authority_code,
                Line::Key(key) => export.keys.push(key),
                Line::Entry(entry) => export.entries.push(*entry),
                Line::Checkpoint(checkpoint) => export.checkpoints.push(checkpoint),
            }
        }
        if export.authority_code.is_empty() {
            return Err("not an audit export: no line names its authority".into());
        }
        Ok(export)
    }

    /// The public key of the history's key with id `id` (SHA-256 of it).
    pub fn key_with_id(&self, id: &[u8]) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|key| key_id(&key.public_key) == id)
            .map(|key| key.public_key.as_slice())
    }

    /// Checks the whole audit: every entry's hash, every link, the audit key
    /// history (against `trusted`, the public key of an audit key this node
    /// is known to have had, such as its `audit_key`'s), and every
    /// checkpoint's signature, by the key it names, and head.
    pub fn verify(&self, trusted: &[u8]) -> Report {
        let mut report = Report::default();
        let history: Vec<KeyLink> = self
            .keys
            .iter()
            .map(|key| KeyLink {
                public_key: key.public_key.clone(),
                endorsement: key.endorsement.clone(),
                acceptance: key.acceptance.clone(),
            })
            .collect();
        match check_key_history(&history, &[trusted.to_vec()]) {
            Ok(()) => report.keys = history.into_iter().map(|key| key.public_key).collect(),
            Err(problem) => report.problems.push(problem),
        }
        let mut previous: Option<(i64, Vec<u8>)> = None;
        // Whether an entry linking its form's digest (from V19) came before.
        let mut digests_begun = false;
        for entry in &self.entries {
            report.entries += 1;
            let event_id = entry.event_id;
            let (Some(prev), Some(stored)) = (&entry.prev_hash, &entry.entry_hash) else {
                report
                    .problems
                    .push(format!("entry {event_id} is not chained"));
                continue;
            };
            let expected_prev = previous
                .as_ref()
                .map(|(_, hash)| hash.clone())
                .unwrap_or_default();
            if *prev != expected_prev {
                let after = previous
                    .as_ref()
                    .map_or("the start".to_owned(), |(id, _)| format!("entry {id}"));
                report.problems.push(format!("entry {event_id} does not follow {after}: an entry was deleted, inserted or reordered"));
            }
            let fields = Fields {
                organisation: &entry.organisation,
                unit: entry.unit.as_deref(),
                name: &entry.name,
                method: &entry.method,
                record_ids: &entry.record_ids,
                outcome: &entry.outcome,
                role: &entry.role,
                via: entry.via.as_deref(),
                reason: entry.reason.as_deref(),
                query: entry.query.as_deref(),
            };
            let form = canonical(event_id, &entry.at, &fields);
            let intact = match &entry.form_digest {
                Some(digest) => {
                    digests_begun = true;
                    form_digest(&form) == *digest && link(prev, digest) == *stored
                }
                None if digests_begun => {
                    report.problems.push(format!(
                        "entry {event_id} links its form itself, after entries linking their forms' digests: it was written in afterwards"
                    ));
                    true
                }
                None => link(prev, &form) == *stored,
            };
            if !intact {
                report.problems.push(format!(
                    "entry {event_id} was altered: its content does not match its hash"
                ));
            }
            report.hashes.insert(event_id, stored.clone());
            previous = Some((event_id, stored.clone()));
        }
        for checkpoint in &self.checkpoints {
            report.checkpoints += 1;
            let (id, last, head) = (
                checkpoint.checkpoint_id,
                checkpoint.last_event_id,
                &checkpoint.head_hash,
            );
            // Named by its id; none: signed before keys had a history, by the first.
            let key = match &checkpoint.key_id {
                Some(signed_by) => report.keys.iter().find(|key| key_id(key) == *signed_by),
                None => report.keys.first(),
            };
            if !key.is_some_and(|key| {
                verify_signature(key, &checkpoint_message(last, head), &checkpoint.signature)
            }) {
                report.problems.push(format!(
                    "checkpoint {id} is not signed by this node's audit key"
                ));
            }
            match report.hashes.get(&last) {
                Some(hash) if hash == head => {}
                Some(_) => report.problems.push(format!(
                    "checkpoint {id}: entry {last} no longer has the hash it signed"
                )),
                None => report.problems.push(format!(
                    "checkpoint {id}: entry {last} is missing: the log was truncated or cut"
                )),
            }
        }
        report
    }
}

/// Checks the whole audit in the node's database (see [`AuditExport::verify`]).
pub async fn verify(client: &impl GenericClient, trusted: &[u8]) -> Result<Report, NodeError> {
    Ok(AuditExport::load(client, "").await?.verify(trusted))
}

/// Checks the gateway's countersigned checkpoints against the log: each must
/// be countersigned by the gateway's key (`gateway_key`) and signed by one of
/// this node's audit keys (the history [`verify`] checked), and its entry
/// must still be in the log with the hash it had. A node that cut its log
/// back together with its own checkpoints is caught here, because it cannot
/// cut the gateway's copies.
pub fn check_witnesses(
    report: &mut Report,
    authority_code: &str,
    witnesses: &[Witness],
    gateway_key: &[u8],
) {
    if !witnesses.is_empty() && witnesses.iter().all(|w| w.authority_code != authority_code) {
        report.problems.push(format!(
            "the witness file holds no checkpoint of {authority_code}: export the gateway's for this authority"
        ));
    }
    for witness in witnesses {
        if witness.authority_code != authority_code {
            continue;
        }
        report.witnessed += 1;
        let (last, head) = (witness.last_event_id, &witness.head_hash);
        let name = format!(
            "the checkpoint of entry {last} the gateway witnessed at {}",
            witness.witnessed_at
        );
        let message = witness_message(authority_code, last, head, &witness.node_signature);
        if !verify_signature(gateway_key, &message, &witness.gateway_signature) {
            report
                .problems
                .push(format!("{name} is not countersigned by the gateway's key"));
            continue;
        }
        let message = checkpoint_message(last, head);
        if !report
            .keys
            .iter()
            .any(|key| verify_signature(key, &message, &witness.node_signature))
        {
            report
                .problems
                .push(format!("{name} is not signed by this node's audit key"));
            continue;
        }
        match report.hashes.get(&last) {
            Some(hash) if hash == head => {}
            Some(_) => report.problems.push(format!(
                "{name}: entry {last} no longer has the hash the gateway countersigned"
            )),
            None => report.problems.push(format!(
                "{name}: entry {last} is missing: the log was truncated or cut"
            )),
        }
    }
}
