//! A lookup's audit entry, written while the node is asked (RULES.md,
//! Audit: every access is audited, with the results returned). The entry,
//! committed before any answer, names the authority asked first and says the
//! lookup was routed there; it is corrected before answering when the lookup
//! ends any other way, and to `cancelled` when the caller goes away first.
//!
//! Invariant: a `routed` entry always means the caller was given that
//! authority's record. The entry is appended by the one `Store::audit`.
use std::time::Duration;

use crate::error::GatewayError;
use crate::store::{AuditEntry, Store};

/// A lookup's audit entry, appended in a task of its own while the node is
/// asked. Until the lookup is concluded, dropping this (the caller went
/// away, or the call's deadline passed) records the lookup as `cancelled`
/// once the entry is in: a `routed` entry always means the caller was
/// given that authority's record.
pub(super) struct Opening {
    store: Store,
    /// The authorities the entry names, kept when it is cancelled.
    authorities: Vec<String>,
    appended: Option<tokio::task::JoinHandle<Result<i64, crate::store::StoreError>>>,
}

impl Opening {
    pub(super) fn append(store: &Store, entry: AuditEntry) -> Self {
        let writer = store.clone();
        Self {
            store: store.clone(),
            authorities: entry.authorities.clone(),
            appended: Some(tokio::spawn(async move { writer.audit(&entry).await })),
        }
    }

    /// Waits for the entry; then concludes it with `outcome` and
    /// `authorities` unless the lookup was answered as routed. A conclusion
    /// that cannot be written now is retried in the background, and the
    /// caller is told the gateway's database failed.
    pub(super) async fn conclude(
        mut self,
        routed: bool,
        outcome: &'static str,
        authorities: &[String],
    ) -> Result<(), GatewayError> {
        let appended = self.appended.take().expect("concluded once");
        let event_id = appended
            .await
            .map_err(|_| GatewayError::Store(crate::store::StoreError::Lost))??;
        if routed {
            return Ok(());
        }
        if let Err(error) = self
            .store
            .conclude_audit(event_id, outcome, authorities)
            .await
        {
            tokio::spawn(conclude_later(
                self.store.clone(),
                event_id,
                outcome,
                authorities.to_vec(),
            ));
            return Err(GatewayError::Store(error));
        }
        Ok(())
    }
}

/// Attempts, a second apart, to record a lookup's outcome.
const CONCLUDE_RETRIES: usize = 60;

/// Records a lookup's outcome, trying again a second apart while the
/// gateway's database fails.
async fn conclude_later(
    store: Store,
    event_id: i64,
    outcome: &'static str,
    authorities: Vec<String>,
) {
    for attempt in 0..CONCLUDE_RETRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match store.conclude_audit(event_id, outcome, &authorities).await {
            Ok(()) => return,
            Err(error) if attempt + 1 == CONCLUDE_RETRIES => {
                tracing::error!(%error, event_id, outcome, "a lookup's audit entry still says routed")
            }
            Err(_) => {}
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let Some(appended) = self.appended.take() else {
            return;
        };
        let (store, authorities) = (self.store.clone(), std::mem::take(&mut self.authorities));
        tokio::spawn(async move {
            if let Ok(Ok(event_id)) = appended.await {
                conclude_later(store, event_id, "cancelled", authorities).await;
            }
        });
    }
}
