//! Cross-authority duplicates (issue 17): a child recorded by two
//! authorities. Applying a node's feed, the blind index journals a notice
//! for each record sharing a strong blocking key (surname, forename and the
//! whole date of birth, as they sound) with a live record at another
//! authority (`blind_index::store::apply`, in the feed's own transaction);
//! this task tells both authorities' management teams of each notice
//! (`NotePossibleDuplicate`), each of the other's record, and carries
//! shielding across: if either record is shielded, the other authority's is
//! shielded too until its management team decides. To merge them, one
//! authority moves its record to the other's with a merge
//! (`StartTransfer.merge_into`).
//!
//! Invariants: a notice is journaled with the keys that raised it, so none
//! is lost to a crash; telling is retried until both nodes have it, and
//! each node takes a notice once however often it is told (by its id), so
//! gateways sharing a database may both tell it; the gateway never sees a
//! name or a date, only hashes, record identifiers and authority codes;
//! SQL only in `store`.
mod store;

use std::time::Duration;

use contactpoint_proto::v1 as pb;

use crate::nodes::{Directory, Node};
use crate::store::Store;

pub use store::Notice;

/// Notices told in one round.
const BATCH: i64 = 100;
/// How long one node may take to take a notice.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Tells every untold notice, every `every`, until the task is dropped.
pub async fn tell_all(directory: Directory, store: Store, every: Duration) {
    loop {
        if let Err(error) = tell_round(&directory, &store).await {
            tracing::warn!(%error, "cannot read the duplicate notices; will keep trying");
        }
        tokio::time::sleep(every).await;
    }
}

/// Tells the untold notices once; returns how many were told to both.
pub async fn tell_round(
    directory: &Directory,
    store: &Store,
) -> Result<usize, crate::store::StoreError> {
    let mut told = 0;
    for notice in store.untold_notices(BATCH).await? {
        match tell(directory, &notice).await {
            Ok(()) => {
                store.notice_told(notice.notice_id).await?;
                told += 1;
            }
            Err(reason) => {
                tracing::warn!(notice = notice.notice_id, %reason, "a duplicate notice waits; will retry");
                store.notice_waiting(notice.notice_id, &reason).await?;
            }
        }
    }
    Ok(told)
}

/// Tells both authorities of one notice, the second with whether the first
/// is shielded, and the first again if only the second is.
async fn tell(directory: &Directory, notice: &Notice) -> Result<(), String> {
    let first = node(directory, &notice.first_authority)?;
    let second = node(directory, &notice.second_authority)?;
    let one = |here: &Node, id: &str, there: &Node, other: &str, other_shielded: bool| {
        let mut request = tonic::Request::new(pb::NotePossibleDuplicateRequest {
            notice_id: notice.wire_id(),
            id: id.to_owned(),
            other_id: other.to_owned(),
            other_authority: Some(pb::ResponsibleAuthority {
                code: there.code.clone(),
                name: there.name.clone(),
            }),
            other_shielded,
        });
        request.set_timeout(CALL_TIMEOUT);
        let mut client = here.client();
        let code = here.code.clone();
        async move {
            client
                .note_possible_duplicate(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| {
                    format!("the node of {code} did not take it: {}", status.message())
                })
        }
    };
    let (a, b) = (&notice.first_record, &notice.second_record);
    let told_first = one(first, a, second, b, false).await?;
    let told_second = one(second, b, first, a, told_first.shielded).await?;
    if told_second.shielded && !told_first.shielded && told_first.noted {
        one(first, a, second, b, true).await?;
    }
    Ok(())
}

fn node<'d>(directory: &'d Directory, code: &str) -> Result<&'d Node, String> {
    directory
        .get(code)
        .ok_or_else(|| format!("no node is configured for authority {code}"))
}
