//! Who is calling, in the regulations' terms, and whether they may.
//!
//! The caller is the subject of the verified client certificate, given a role
//! by the node's policy. When the policy names that certificate as the
//! gateway, the call is on someone else's behalf: the gateway says whom in
//! metadata (bound to its own verified connection: forwarding metadata from
//! any other certificate is not believed), and the node gives that caller
//! the role its own policy gives them, recording the gateway as the way it
//! came. The gateway also says which role it found; where the two disagree
//! (a gateway lying, or a policy out of step) the call is refused, and
//! audited with the outcome `role_disputed`, which operators watch for. The
//! one role the node takes from the gateway is the gateway's own, for the
//! steps of a transfer it carries out at someone's request. The rights
//! themselves are `contactpoint_policy::decide`, the same function the
//! gateway applies.
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
    /// A search's parameters, for its audit entry.
    pub query: Option<String>,
    /// What the responsible authority is told of this access.
    pub notify: Vec<crate::store::Notify>,
    /// When the call arrived, for its latency.
    pub started: std::time::Instant,
    /// Whether the caller's access conditions (training, criminal record
    /// check, user agreement) are met today, as this node's policy records them.
    admitted: Result<(), Refusal>,
    /// The gateway asserted a role this node's policy does not give the caller.
    disputed: Option<Refusal>,
}

impl Caller {
    /// Reads the caller of a request: `Unauthenticated` without a verified
    /// certificate; a gateway call that does not say whom it is for is refused.
    pub fn of<T>(
        request: &Request<T>,
        policy: &Policy,
        today: chrono::NaiveDate,
    ) -> Result<Self, NodeError> {
        let (identity, role, via) = Self::identify(request, policy)?;
        let (role, disputed) = match (via.is_some(), role) {
            (true, Some(asserted)) if asserted != Role::Gateway => {
                let derived = policy.role_of(&identity).cloned();
                let disputed = (derived.as_ref() != Some(&asserted)).then(|| Refusal {
                    role: asserted.to_string(),
                    reason: format!(
                        "the gateway asserted this role for {}, but this node's policy gives {}; refused, and recorded as unusual access",
                        identity.organisation,
                        derived.as_ref().map_or("none".to_owned(), ToString::to_string)
                    ),
                });
                (derived, disputed)
            }
            (_, role) => (role, None),
        };
        if disputed.is_some() {
            tracing::warn!(organisation = %identity.organisation, "a forwarded call's asserted role disagrees with this node's policy");
        }
        let admitted = role
            .as_ref()
            .map_or(Ok(()), |role| policy.admit(&identity, role, today));
        Ok(Self {
            identity,
            role,
            via,
            disputed,
            reason: None,
            query: None,
            notify: Vec::new(),
            started: std::time::Instant::now(),
            admitted,
        })
    }

    /// Who acts, in which role, and the gateway when it acts for them.
    fn identify<T>(
        request: &Request<T>,
        policy: &Policy,
    ) -> Result<(PeerIdentity, Option<Role>, Option<PeerIdentity>), NodeError> {
        let peer = PeerIdentity::from_request(request).ok_or(NodeError::Unauthenticated)?;
        let role = policy.role_of(&peer).cloned();
        if role != Some(Role::Gateway) {
            // Forwarding metadata from anyone but the gateway is not believed.
            return Ok((peer, role, None));
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
            (Some(identity), Some(role)) => Ok((identity, Some(role), Some(peer))),
            // The gateway acting for itself (reading the routing feed).
            _ if !named => Ok((peer, Some(Role::Gateway), None)),
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

    /// As `require`, for a right held at any authority (the caller's own
    /// authority is checked by whoever vouches for it).
    pub fn require_anywhere(&self, right: Right) -> Result<&Role, NodeError> {
        self.undisputed()?;
        self.admitted.clone()?;
        Ok(authorize(self.role.as_ref(), &self.identity, right, None)?)
    }

    /// Refuses the call unless the caller's role holds `right` at `authority`.
    /// A person must also meet their access conditions.
    pub fn require(&self, right: Right, authority: &str) -> Result<&Role, NodeError> {
        self.undisputed()?;
        self.admitted.clone()?;
        Ok(authorize(
            self.role.as_ref(),
            &self.identity,
            right,
            Some(authority),
        )?)
    }

    fn undisputed(&self) -> Result<(), NodeError> {
        match &self.disputed {
            Some(refusal) => Err(NodeError::RoleDisputed(refusal.clone())),
            None => Ok(()),
        }
    }

    /// The reason stated for a read: required of everyone reading records
    /// (RULES.md: every access states a reason).
    /// Records it for the audit; the returned check fails when none was given.
    pub fn state_reason(&mut self, stated: &str) -> Result<(), NodeError> {
        let stated = stated.trim();
        if stated.is_empty() {
            return Err(crate::error::Invalid::new(
                "reason",
                "is required: say why you are looking (for example the enquiry or referral)",
            )
            .into());
        }
        use contactpoint_proto::limits::{check_text, REASON_CHARS};
        check_text(stated, REASON_CHARS, true)
            .map_err(|why| crate::error::Invalid::new("reason", why))?;
        self.reason = Some(stated.to_owned());
        Ok(())
    }

    /// Whether the caller is this authority's own staff or management
    /// team; anyone else's view of a record is reported to the authority.
    pub fn is_own_staff_of(&self, authority: &str) -> bool {
        match &self.role {
            Some(Role::Management { authority: own }) => own == authority,
            Some(Role::Practitioner {
                category,
                authority: own,
            }) => own == authority && category.is_local_authority_staff(),
            _ => false,
        }
    }

    /// Why the caller's access conditions refuse them, if they do.
    pub fn access_refused(&self) -> Option<String> {
        self.admitted.as_ref().err().map(ToString::to_string)
    }

    /// The role as the audit records it.
    pub fn role_name(&self) -> String {
        self.role.as_ref().map(Role::to_wire).unwrap_or_default()
    }
}

use contactpoint_proto::v1 as pb;
use tonic::{Response, Status};

use crate::service::NodeService;

pub(crate) async fn who_am_i(
    node: &NodeService,
    request: Request<pb::WhoAmIRequest>,
) -> Result<Response<pb::WhoAmIResponse>, Status> {
    let caller = node.caller(&request)?;
    Ok(Response::new(pb::WhoAmIResponse {
        organisation: caller.identity.organisation.clone(),
        unit: caller.identity.unit.clone().unwrap_or_default(),
        common_name: caller.identity.common_name.clone(),
        role: caller.role_name(),
        role_description: caller
            .role
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        access_refused: caller.access_refused().unwrap_or_default(),
    }))
}
