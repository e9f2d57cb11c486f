//! What the responsible authority is told, and unusual access (RULES.md,
//! Reading and Audit; CP-IS as the model): a view of its record by anyone
//! but its own staff or management team, a shielding override, a new record
//! that may duplicate a shielded one, and a reader whose surname is the
//! child's (a possible look-up of a relative); and, from the gateway, a
//! record that may be the same child as another authority's (`duplicates`).
//!
//! Invariants: a notification is written with the access's audit entry, in
//! the same statement or transaction, so neither exists without the other;
//! only the authority's own staff list them.

use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::model::*;
use crate::search::keys::surname_key;
use crate::service::{Method, NodeService, MAX_LISTED};
use crate::store::{Result, Store};
use crate::wire::rfc3339;

/// One notification to the responsible authority, as stored.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub notification_id: i64,
    pub kind: String,
    pub record_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub organisation: String,
    pub name: String,
    pub role: String,
    pub reason: Option<String>,
    pub related_record_id: Option<String>,
    /// For a possible duplicate elsewhere: that authority's code and name.
    pub related_authority: Option<(String, String)>,
}

/// Kinds of notification to the responsible authority (table `notification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// A role with child protection functions overrode shielding.
    ShieldOverride,
    /// Someone outside the authority's own staff viewed the record.
    ViewedByOtherOrganisation,
    /// The reader's surname is the child's: perhaps a relative (RULES.md, audit).
    ReaderSharesSurname,
}

impl Notify {
    pub fn as_db(self) -> &'static str {
        match self {
            Self::ShieldOverride => "shield_override",
            Self::ViewedByOtherOrganisation => "viewed_by_other_organisation",
            Self::ReaderSharesSurname => "reader_shares_surname",
        }
    }
}

pub(crate) async fn list_notifications(
    node: &NodeService,
    request: Request<pb::ListNotificationsRequest>,
) -> Result<Response<pb::ListNotificationsResponse>, Status> {
    let caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        node.require(&caller, Right::ReadAudit)?;
        let limit = match body.limit {
            0 => MAX_LISTED,
            n => n.min(MAX_LISTED),
        };
        let rows = node.store.notifications(body.after_id, limit).await?;
        Ok(rows
            .into_iter()
            .map(|row| pb::Notification {
                notification_id: row.notification_id,
                kind: match row.kind.as_str() {
                    "shield_override" => pb::NotificationKind::ShieldOverride,
                    "viewed_by_other_organisation" => {
                        pb::NotificationKind::ViewedByOtherOrganisation
                    }
                    "possible_duplicate_of_shielded" => {
                        pb::NotificationKind::PossibleDuplicateOfShielded
                    }
                    "reader_shares_surname" => pb::NotificationKind::ReaderSharesSurname,
                    "possible_duplicate_elsewhere" => {
                        pb::NotificationKind::PossibleDuplicateElsewhere
                    }
                    _ => pb::NotificationKind::Unspecified,
                } as i32,
                record_id: row.record_id,
                at: rfc3339(row.at),
                organisation: row.organisation,
                name: row.name,
                role: row.role,
                reason: row.reason.unwrap_or_default(),
                related_record_id: row.related_record_id.unwrap_or_default(),
                related_authority: row
                    .related_authority
                    .map(|(code, name)| pb::ResponsibleAuthority { code, name }),
            })
            .collect::<Vec<_>>())
    }
    .await;
    let ids = result
        .as_ref()
        .map(|found| {
            let mut ids: Vec<String> = found.iter().map(|n| n.record_id.clone()).collect();
            ids.sort();
            ids.dedup();
            ids
        })
        .unwrap_or_default();
    let response = result.map(|notifications| pb::ListNotificationsResponse { notifications });
    node.finish(&caller, Method::ListNotifications, ids, response)
        .await
}

impl Store {
    /// What the responsible authority has been told, oldest first after `after`.
    pub async fn notifications(&self, after: i64, limit: u32) -> Result<Vec<NotificationRow>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT notification_id, kind, record_id, at, caller_organisation, caller_name, role, reason, related_record_id,
                    related_authority_code, coalesce(related_authority_name, '')
                 FROM notification WHERE notification_id > $1 ORDER BY notification_id LIMIT $2").await?,
                &[&after, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| NotificationRow {
                notification_id: row.get(0),
                kind: row.get(1),
                record_id: row.get(2),
                at: row.get(3),
                organisation: row.get(4),
                name: row.get(5),
                role: row.get(6),
                reason: row.get(7),
                related_record_id: row.get(8),
                related_authority: row
                    .get::<_, Option<String>>(9)
                    .map(|code| (code, row.get(10))),
            })
            .collect())
    }
}

/// Whether the last word of a reader's name (their certificate's common
/// name) is the child's current or a former surname: an unusual pattern the
/// responsible authority is told of (a possible look-up of a relative).
pub fn shares_surname(reader: &str, details: &RecordDetails) -> bool {
    let Some(last) = reader.split_whitespace().last().map(surname_key) else {
        return false;
    };
    !last.is_empty()
        && std::iter::once(&details.name)
            .chain(details.former_names.iter().map(|former| &former.name))
            .any(|name| surname_key(&name.family_name) == last)
}
