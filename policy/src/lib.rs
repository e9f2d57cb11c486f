//! Who may do what. One place for both halves of access control:
//!
//! - **Identity to role**: a reviewed policy file maps certificate identities
//!   (organisation, and optionally unit and common name) onto the roles the
//!   regulations name: a Schedule 2 national partner, a Schedule 3 category,
//!   a Schedule 4 or 5 contributing body, an authority's node, the gateway,
//!   an operator. An identity the file does not name has no role.
//! - **Role to rights**: [`decide`] says whether a role may exercise a right,
//!   and cites the provision the answer rests on. The gateway and every node
//!   call the same function, so the rule is written once and enforced twice.
#![forbid(unsafe_code)]

mod file;
mod holdings;
mod roles;

pub use file::{AccessConditions, AccessSettings, CallerLimits, Policy, PolicyError, PolicyHandle};
pub use holdings::Holding;
pub use roles::{authorize, decide, Contributor, Decision, Refusal, Right, Role, Schedule3};

/// How the gateway tells a node on whose behalf it calls. A node believes
/// these headers only on a connection whose certificate the policy maps to
/// [`Role::Gateway`].
pub mod forwarded {
    use contactpoint_mtls::PeerIdentity;

    /// The original caller's identity: organisation, unit and common name,
    /// UTF-8, separated by newlines (binary gRPC metadata).
    pub const CALLER_HEADER: &str = "x-contactpoint-caller-bin";
    /// The original caller's role, in [`crate::Role::to_wire`] form.
    pub const ROLE_HEADER: &str = "x-contactpoint-role";
    /// On a transfer's steps at the sending node: who of that authority's
    /// management team consented, encoded as [`CALLER_HEADER`] is. The node
    /// gives them a role from its own policy before any record leaves.
    pub const CONSENT_HEADER: &str = "x-contactpoint-consent-bin";
    /// On a NotFound from a node: the GSS code of the authority the record
    /// moved to, which the gateway follows and writes into its index.
    pub const MOVED_TO_HEADER: &str = "x-contactpoint-moved-to";
    /// On a NotFound from a node: a transfer has staged the record here but
    /// not activated it yet; the value is the transfer's id.
    pub const ARRIVING_HEADER: &str = "x-contactpoint-arriving";
    /// On a NotFound from a node: the record was merged into another here;
    /// the value is that record's identifier.
    pub const MERGED_INTO_HEADER: &str = "x-contactpoint-merged-into";

    pub fn encode_identity(who: &PeerIdentity) -> Vec<u8> {
        format!(
            "{}\n{}\n{}",
            who.organisation,
            who.unit.as_deref().unwrap_or(""),
            who.common_name
        )
        .into_bytes()
    }

    pub fn decode_identity(bytes: &[u8]) -> Option<PeerIdentity> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split('\n');
        let (organisation, unit, common_name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || organisation.is_empty() || common_name.is_empty() {
            return None;
        }
        Some(PeerIdentity {
            organisation: organisation.to_owned(),
            unit: Some(unit.to_owned()).filter(|unit| !unit.is_empty()),
            common_name: common_name.to_owned(),
        })
    }
}
