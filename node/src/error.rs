//! The node's errors and the one place they become gRPC statuses.
//!
//! What the caller sees is written for the caller: which field, which rule,
//! which record, what to do. What only an operator may see (database errors)
//! is logged here, without personal data, and the caller gets a generic status.
use tonic::{Code, Status};

/// A request breaks a rule: `field` is its path in the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no record with identifier {0} is held by this authority")]
    RecordNotFound(String),
    #[error("record {id} has no {kind} entry {entry_id}")]
    EntryNotFound {
        id: String,
        kind: &'static str,
        entry_id: i64,
    },
    #[error("{kind} entry {entry_id} already ended on {ended_on}")]
    AlreadyEnded {
        kind: &'static str,
        entry_id: i64,
        ended_on: chrono::NaiveDate,
    },
    #[error(
        "record {id} is at version {current}, not {expected}: read it again and reapply the change"
    )]
    StaleVersion {
        id: String,
        current: u64,
        expected: u64,
    },
    #[error(
        "the caller presented no verified client certificate naming exactly one organisation (O), at most one unit (OU) and exactly one person (CN)"
    )]
    Unauthenticated,
    #[error(transparent)]
    Forbidden(#[from] contactpoint_policy::Refusal),
    /// A forwarded call whose asserted role this node's policy does not give.
    #[error(transparent)]
    RoleDisputed(contactpoint_policy::Refusal),
    #[error("record {id} is no longer held here: it moved to authority {to}")]
    Moved { id: String, to: String },
    #[error("record {id} was merged into record {into} by the responsible authority: use {into}")]
    Merged { id: String, into: String },
    #[error("record {id} is arriving here in transfer {transfer_id} and is not yet served")]
    Arriving { id: String, transfer_id: String },
    #[error("record {0} is archived information: only the responsible authority's data managers see it (after its first year, for a stated child protection enquiry, serious case review or child death review)")]
    Archived(String),
    #[error("{0}")]
    NotApplicable(String),
    #[error("transfer step refused: {0}")]
    TransferConflict(String),
    #[error("the transfer snapshot does not read: {0}")]
    BadSnapshot(String),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("stored data does not read back: {0}")]
    Corrupt(String),
    /// A fault of the node itself (a task that did not finish).
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// The one mapping from node errors to statuses.
    pub fn into_status(self) -> Status {
        match self {
            Self::Invalid(invalid) => Status::invalid_argument(invalid.to_string()),
            error @ (Self::RecordNotFound(_) | Self::EntryNotFound { .. }) => {
                Status::not_found(error.to_string())
            }
            error @ (Self::AlreadyEnded { .. } | Self::StaleVersion { .. }) => {
                Status::failed_precondition(error.to_string())
            }
            Self::Unauthenticated => Status::unauthenticated(Self::Unauthenticated.to_string()),
            Self::Forbidden(refusal) | Self::RoleDisputed(refusal) => {
                Status::permission_denied(refusal.to_string())
            }
            Self::Arriving { id, transfer_id } => {
                let mut status = Status::not_found(
                    Self::Arriving {
                        id,
                        transfer_id: transfer_id.clone(),
                    }
                    .to_string(),
                );
                if let Ok(value) = transfer_id.parse() {
                    status
                        .metadata_mut()
                        .insert(contactpoint_policy::forwarded::ARRIVING_HEADER, value);
                }
                status
            }
            error @ Self::Archived(_) => Status::not_found(error.to_string()),
            Self::Merged { id, into } => {
                let mut status = Status::not_found(
                    Self::Merged {
                        id,
                        into: into.clone(),
                    }
                    .to_string(),
                );
                if let Ok(value) = into.parse() {
                    status
                        .metadata_mut()
                        .insert(contactpoint_policy::forwarded::MERGED_INTO_HEADER, value);
                }
                status
            }
            error @ Self::NotApplicable(_) => Status::failed_precondition(error.to_string()),
            error @ Self::TransferConflict(_) => Status::failed_precondition(error.to_string()),
            error @ Self::BadSnapshot(_) => Status::invalid_argument(error.to_string()),
            Self::Moved { id, to } => {
                let mut status = Status::not_found(Self::Moved { id, to: to.clone() }.to_string());
                if let Ok(value) = to.parse() {
                    status
                        .metadata_mut()
                        .insert(contactpoint_policy::forwarded::MOVED_TO_HEADER, value);
                }
                status
            }
            Self::Pool(deadpool_postgres::PoolError::Timeout(_)) => {
                tracing::warn!("every pooled database connection stayed busy past pool_wait_ms");
                Status::unavailable(
                    "the authority's database is busy: no connection came free in time; try again shortly",
                )
            }
            Self::Pool(error) => {
                tracing::warn!(%error, "database pool cannot serve");
                Status::unavailable("the authority's database is unavailable; try again shortly")
            }
            Self::Database(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
            {
                // statement_timeout: the database was too slow, not wrong.
                tracing::warn!("a statement ran past statement_timeout_ms and was cancelled");
                Status::unavailable(
                    "the authority's database did not answer in time; try again shortly",
                )
            }
            Self::Database(error) => {
                // Only the SQLSTATE and the server's message: its detail can
                // quote row values, which may be personal data.
                match error.as_db_error() {
                    Some(db) => tracing::error!(
                        code = db.code().code(),
                        message = db.message(),
                        "database error"
                    ),
                    None if error.is_closed() => tracing::warn!("database connection closed"),
                    None => tracing::error!(%error, "database error"),
                }
                // Data and constraint errors (SQLSTATE classes 22, 23) would fail
                // again: `wire` let something through. Report; invite no retry.
                let class = error.as_db_error().map(|db| &db.code().code()[..2]);
                if matches!(class, Some("22" | "23")) {
                    return Status::internal(
                        "the record could not be stored; the operator has been told",
                    );
                }
                Status::new(
                    Code::Unavailable,
                    "the authority's database failed to answer; try again shortly",
                )
            }
            Self::Corrupt(what) => {
                tracing::error!(what, "stored data does not read back");
                Status::internal("a stored record could not be read; the operator has been told")
            }
            Self::Internal(what) => {
                tracing::error!(what, "node fault");
                Status::internal("the node failed; the operator has been told")
            }
        }
    }
}

impl From<NodeError> for Status {
    fn from(error: NodeError) -> Self {
        error.into_status()
    }
}
