//! Who is calling, in the regulations' terms, and whether they may.
//!
//! The caller is the subject of the verified client certificate, given a role
//! by the node's policy. When the policy names that certificate as the
//! gateway, the call is on someone else's behalf: the gateway says whom in
//! metadata, and the node then decides for that caller and role, recording
//! the gateway as the way it came. The rights themselves are
//! `contactpoint_policy::decide`, the same function the gateway applies.
use contactpoint_mtls::PeerIdentity;
use contactpoint_policy::{authorize, forwarded, Policy, Refusal, Right, Role};
use tonic::Request;

use crate::error::NodeError;

/// A caller whose certificate has been verified.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who acts: the certificate's subject, or whom the gateway acts for.
    pub identity: PeerIdentity,
    /// Their role, if the policy (or the gateway) names one.
    pub role: Option<Role>,
    /// The gateway's identity when it forwarded the call.
    pub via: Option<PeerIdentity>,
    /// The reason the caller stated for this access, if any.
    pub reason: Option<String>,
}

impl Caller {
    /// Reads the caller of a request: `Unauthenticated` without a verified
    /// certificate; a gateway call that does not say whom it is for is refused.
    pub fn of<T>(request: &Request<T>, policy: &Policy) -> Result<Self, NodeError> {
        let peer = PeerIdentity::from_request(request).ok_or(NodeError::Unauthenticated)?;
        let role = policy.role_of(&peer).cloned();
        if role != Some(Role::Gateway) {
            // Forwarding metadata from anyone but the gateway is not believed.
            return Ok(Self {
                identity: peer,
                role,
                via: None,
                reason: None,
            });
        }
        let metadata = request.metadata();
        let identity = metadata
            .get_bin(forwarded::CALLER_HEADER)
            .and_then(|value| value.to_bytes().ok())
            .and_then(|bytes| forwarded::decode_identity(&bytes));
        let on_behalf_role = metadata
            .get(forwarded::ROLE_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(Role::from_wire);
        let named = metadata.get_bin(forwarded::CALLER_HEADER).is_some()
            || metadata.get(forwarded::ROLE_HEADER).is_some();
        match (identity, on_behalf_role) {
            (Some(identity), Some(role)) => Ok(Self {
                identity,
                role: Some(role),
                via: Some(peer),
                reason: None,
            }),
            // The gateway acting for itself (reading the routing feed).
            _ if !named => Ok(Self {
                identity: peer,
                role: Some(Role::Gateway),
                via: None,
                reason: None,
            }),
            _ => Err(NodeError::Forbidden(Refusal {
                role: Role::Gateway.to_string(),
                reason: format!(
                    "a call from the gateway on someone's behalf must name both the caller ({}) and the role ({})",
                    forwarded::CALLER_HEADER,
                    forwarded::ROLE_HEADER
                ),
            })),
        }
    }

    /// Refuses the call unless the caller's role holds `right` at `authority`.
    pub fn require(&self, right: Right, authority: &str) -> Result<&Role, NodeError> {
        Ok(authorize(
            self.role.as_ref(),
            &self.identity,
            right,
            Some(authority),
        )?)
    }

    /// The role as the audit records it.
    pub fn role_name(&self) -> String {
        self.role.as_ref().map(Role::to_wire).unwrap_or_default()
    }
}
