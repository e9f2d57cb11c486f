//! The node's audit signing key and its history (issue 19, item 3).
//!
//! The audit is signed with a key of its own (`audit_key`), never the TLS
//! key: a certificate's renewal does not break older checkpoints, and a
//! leaked TLS key does not forge the audit. The database keeps every key
//! the node has signed with (`audit_key`, append-only), each linked to the
//! one before by both keys' signatures (`contactpoint_mtls::KeyLink`), so a
//! verifier trusting any one of them verifies every checkpoint, and a key
//! written in by someone holding neither breaks the history.
//!
//! Rotation: start the node with the new key as `audit_key` and the one it
//! replaces as `audit_previous_key`; the node writes the link once. A key
//! new to the history without its predecessor, or one retired from it, is
//! refused at start.
use contactpoint_mtls::{key_id, key_link_message, KeyLink, KeySigner};
use tokio_postgres::GenericClient;

use crate::error::NodeError;
use crate::store::Store;

/// Why the configured audit key cannot sign for this node.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] NodeError),
}

impl From<tokio_postgres::Error> for AuditKeyError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Store(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for AuditKeyError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Store(error.into())
    }
}

/// The key history, oldest first.
pub async fn history(client: &impl GenericClient) -> Result<Vec<KeyLink>, NodeError> {
    let rows = client
        .query(
            "SELECT public_key, endorsement, acceptance FROM audit_key ORDER BY key_seq",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| KeyLink {
            public_key: row.get(0),
            endorsement: row.get(1),
            acceptance: row.get(2),
        })
        .collect())
}

/// Signs the link from `before` to `key`.
fn link(before: &KeySigner, key: &KeySigner) -> Result<KeyLink, AuditKeyError> {
    let message = key_link_message(&before.public_key(), &key.public_key());
    match (before.sign(&message), key.sign(&message)) {
        (Some(endorsement), Some(acceptance)) => Ok(KeyLink {
            public_key: key.public_key(),
            endorsement: Some(endorsement),
            acceptance: Some(acceptance),
        }),
        _ => Err(AuditKeyError::Refused("signing a key link failed".into())),
    }
}

impl Store {
    /// Makes `current` the newest key of the history, as the module says;
    /// `tls` is the TLS key, which signed the checkpoints written before
    /// keys had a history (they become its first key, linked to `current`).
    pub async fn register_audit_key(
        &self,
        current: &KeySigner,
        previous: Option<&KeySigner>,
        tls: &KeySigner,
    ) -> Result<(), AuditKeyError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // One node process at a time writes the history.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('contactpoint audit_key'))",
            &[],
        )
        .await?;
        let keys = history(&*tx).await?;
        let public = current.public_key();
        let mut links = Vec::new();
        match keys.last() {
            None => {
                let signed_before: bool = tx
                    .query_one("SELECT EXISTS (SELECT 1 FROM audit_checkpoint)", &[])
                    .await?
                    .get(0);
                if signed_before {
                    links.push(KeyLink {
                        public_key: tls.public_key(),
                        endorsement: None,
                        acceptance: None,
                    });
                    links.push(link(tls, current)?);
                } else {
                    links.push(KeyLink {
                        public_key: public,
                        endorsement: None,
                        acceptance: None,
                    });
                }
            }
            Some(newest) if newest.public_key == public => {
                if previous.is_some() {
                    tracing::warn!("audit_previous_key is set but the audit key is already in use: remove audit_previous_key");
                }
            }
            Some(_) if keys.iter().any(|key| key.public_key == public) => {
                return Err(AuditKeyError::Refused(
                    "audit_key is a retired key of this node's audit: sign with the newest".into(),
                ));
            }
            Some(newest) => match previous {
                Some(previous) if previous.public_key() == newest.public_key => {
                    links.push(link(previous, current)?);
                }
                Some(_) => {
                    return Err(AuditKeyError::Refused(
                        "audit_previous_key is not the key this node's audit was last signed with"
                            .into(),
                    ))
                }
                None => {
                    return Err(AuditKeyError::Refused(
                        "audit_key is new to this node's audit: to rotate, name the key it replaces as audit_previous_key".into(),
                    ))
                }
            },
        }
        for key in &links {
            tx.execute(
                "INSERT INTO audit_key (key_id, public_key, endorsement, acceptance) VALUES ($1, $2, $3, $4)",
                &[
                    &key_id(&key.public_key),
                    &key.public_key,
                    &key.endorsement,
                    &key.acceptance,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        if !links.is_empty() {
            tracing::info!(
                keys = keys.len() + links.len(),
                "audit signing key entered in the key history"
            );
        }
        Ok(())
    }

    /// The key history, oldest first.
    pub async fn audit_keys(&self) -> Result<Vec<KeyLink>, NodeError> {
        history(&**self.pool.get().await?).await
    }
}
