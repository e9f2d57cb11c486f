//! Records (Schedule 1; section 12; regulation 5): a child's record made,
//! read and corrected by the responsible authority (para 19), with its
//! entries, bulk loads and merges in the modules below.
//!
//! Invariants: a request is decoded and checked against every rule of the
//! schedules (`wire`) before any transaction starts, so a refused request
//! changes nothing; a change, its audit entry and (for a new record) its
//! routing event commit together; every record returned passes `redact`;
//! a stale version, or an update inconsistent with the record's entries,
//! is refused under the row lock.

pub(crate) mod entries;
pub(crate) mod load;
pub(crate) mod merge;
pub(crate) mod read;
mod store;
pub mod wire;

use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::NodeError;
use crate::notifications::{shares_surname, Notify};
use crate::records::wire::{check_update, decode_details, encode_record};
use crate::redact::{redact, Reader};
use crate::retention::decode_archive_purpose;
use crate::service::{audited_change, audited_id, supplier, Method, NodeService};
use crate::wire::{decode_create, decode_id};

pub use store::Holding;
pub(crate) use store::{Placement, RecordColumns, RECORD_COLUMNS, RECORD_COLUMN_TYPES};

pub(crate) async fn create_record(
    node: &NodeService,
    request: Request<pb::CreateRecordRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let caller = node.caller(&request)?;
    let result = async {
        node.require(&caller, Right::MaintainRecord)?;
        let new = decode_create(request.get_ref(), &node.context())?;
        node.store
            .create(
                &new,
                &supplier(&caller),
                &audited_change(&caller, Method::CreateRecord),
            )
            .await
    }
    .await;
    let ids = result
        .as_ref()
        .map(|record| vec![record.id.to_string()])
        .unwrap_or_default();
    node.finish(
        &caller,
        Method::CreateRecord,
        ids,
        result.map(|record| node.view(&caller, &record)),
    )
    .await
}

pub(crate) async fn get_record(
    node: &NodeService,
    request: Request<pb::GetRecordRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let mut caller = node.caller(&request)?;
    let body = request.get_ref();
    let reason_stated = caller.state_reason(&body.reason);
    let result = async {
        let role = node.require(&caller, Right::ReadRecord)?;
        let id = decode_id(&body.id, "id")?;
        reason_stated?;
        if body.override_shielding {
            node.require(&caller, Right::OverrideShielding)?;
        }
        match node.store.lookup(&id).await? {
            Holding::Live(record) => {
                let overridden = body.override_shielding && record.shield_reason.is_some();
                let reader = Reader {
                    role,
                    organisation: &caller.identity.organisation,
                    override_shielding: overridden,
                    today: node.context().today,
                    archive_purpose: decode_archive_purpose(body.archive_purpose)?,
                };
                if let Some(archived_on) = record.archived_on {
                    if !reader.may_see_archived(&record.responsible_authority.code, archived_on) {
                        return Err(NodeError::Archived(id.to_string()));
                    }
                }
                let shares_surname = shares_surname(&caller.identity.common_name, &record.details);
                Ok((
                    redact(encode_record(&record), &reader),
                    overridden,
                    shares_surname,
                ))
            }
            Holding::Arriving { transfer_id } => Err(NodeError::Arriving {
                id: id.to_string(),
                transfer_id,
            }),
            Holding::Moved { to } => Err(NodeError::Moved {
                id: id.to_string(),
                to,
            }),
            Holding::Merged { into } => Err(NodeError::Merged {
                id: id.to_string(),
                into,
            }),
            Holding::Absent => Err(NodeError::RecordNotFound(id.to_string())),
        }
    }
    .await;
    // The responsible authority is told, with the audit entry, when
    // shielding was overridden or another organisation viewed its record.
    let result = result.map(|(record, overridden, shares_surname)| {
        if overridden {
            tracing::warn!(authority = %node.store.authority().code, role = %caller.role_name(), "shielding overridden; the responsible authority is alerted");
            caller.notify.push(Notify::ShieldOverride);
        } else if !caller.is_own_staff_of(&node.store.authority().code) {
            caller.notify.push(Notify::ViewedByOtherOrganisation);
        }
        if shares_surname {
            caller.notify.push(Notify::ReaderSharesSurname);
        }
        record
    });
    node.finish(&caller, Method::GetRecord, audited_id(&body.id), result)
        .await
}

pub(crate) async fn update_record(
    node: &NodeService,
    request: Request<pb::UpdateRecordRequest>,
) -> Result<Response<pb::ChildRecord>, Status> {
    let caller = node.caller(&request)?;
    let body = request.get_ref();
    let result = async {
        node.require(&caller, Right::MaintainRecord)?;
        let id = decode_id(&body.id, "id")?;
        let context = node.context();
        let details = decode_details(body.details.as_ref(), "details", false, &context)?;
        node.store
            .update(
                &id,
                body.expected_version,
                &details,
                |before, entries| check_update(before, &details, entries, &context),
                &audited_change(&caller, Method::UpdateRecord),
            )
            .await
    }
    .await;
    node.finish(
        &caller,
        Method::UpdateRecord,
        audited_id(&body.id),
        result.map(|record| node.view(&caller, &record)),
    )
    .await
}
