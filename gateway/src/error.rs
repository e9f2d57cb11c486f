//! The gateway's errors and the one place they become gRPC statuses.
use tonic::Status;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "the caller presented no verified client certificate naming exactly one organisation (O), at most one unit (OU) and exactly one person (CN)"
    )]
    Unauthenticated,
    #[error(transparent)]
    Forbidden(#[from] contactpoint_policy::Refusal),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("no authority holds a record with identifier {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the node of {name} ({code}) did not answer; try again shortly")]
    NodeUnavailable { code: String, name: String },
    #[error("the nodes of {} did not answer, so the answer would be incomplete; try again shortly", .0.join(", "))]
    NodesUnavailable(Vec<String>),
    #[error("no node is configured for authority {0}; the operator has been told")]
    UnknownAuthority(String),
    /// A node's own answer, already written for the caller.
    #[error("{}", .0.message())]
    Node(Status),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GatewayError {
    /// A short, non-personal name for the audit.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(_) => "permission_denied",
            Self::Invalid { .. } => "invalid_argument",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "failed_precondition",
            Self::NodeUnavailable { .. } | Self::NodesUnavailable(_) | Self::Store(_) => {
                "unavailable"
            }
            Self::UnknownAuthority(_) => "internal",
            Self::Node(_) => "node_refused",
        }
    }

    pub fn into_status(self) -> Status {
        match self {
            error @ Self::Unauthenticated => Status::unauthenticated(error.to_string()),
            Self::Forbidden(refusal) => Status::permission_denied(refusal.to_string()),
            error @ Self::Invalid { .. } => Status::invalid_argument(error.to_string()),
            error @ Self::NotFound(_) => Status::not_found(error.to_string()),
            error @ Self::Conflict(_) => Status::failed_precondition(error.to_string()),
            error @ (Self::NodeUnavailable { .. } | Self::NodesUnavailable(_)) => {
                Status::unavailable(error.to_string())
            }
            error @ Self::UnknownAuthority(_) => {
                tracing::error!(%error, "routing names an authority with no configured node");
                Status::internal(error.to_string())
            }
            Self::Node(status) => Status::new(status.code(), status.message()),
            Self::Store(error) => {
                tracing::error!(%error, "gateway database");
                Status::unavailable("the gateway's database is unavailable; try again shortly")
            }
        }
    }
}
