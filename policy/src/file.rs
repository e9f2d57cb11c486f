//! The reviewed policy file: which certificate identities hold which role.
//!
//! ```toml
//! [[identity]]
//! organisation = "NSPCC"            # the certificate's O; required
//! role = "national_partner"
//! schedule2 = 3                     # Schedule 2 paragraph
//!
//! [[identity]]
//! organisation = "E06000001"
//! unit = "children's social care"   # the certificate's OU; optional
//! role = "practitioner"
//! schedule3 = "1(2)(a)"             # Schedule 3 paragraph and sub-paragraph
//! authority = "E06000001"           # the authority that gave access
//! ```
//!
//! An entry may also name a `common_name` (the certificate's CN). When several
//! entries match, the most specific wins (CN over OU over O alone); two equally
//! specific matches for one identity are refused when the file is loaded.
use contactpoint_mtls::PeerIdentity;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::roles::{Contributor, Role};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    identity: Vec<IdentityEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityEntry {
    organisation: String,
    unit: Option<String>,
    common_name: Option<String>,
    role: RoleKind,
    schedule2: Option<u8>,
    schedule3: Option<String>,
    schedule4: Option<u8>,
    schedule5: Option<u8>,
    authority: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleKind {
    NationalPartner,
    Practitioner,
    Contributor,
    Management,
    Node,
    Gateway,
    Operator,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("policy {path}, identity {index} ({organisation}): {reason}")]
    Entry {
        path: PathBuf,
        index: usize,
        organisation: String,
        reason: String,
    },
}

/// One identity pattern and its role.
#[derive(Debug, Clone)]
struct Grant {
    organisation: String,
    unit: Option<String>,
    common_name: Option<String>,
    role: Role,
}

impl Grant {
    fn matches(&self, who: &PeerIdentity) -> bool {
        self.organisation == who.organisation
            && self
                .unit
                .as_ref()
                .is_none_or(|unit| Some(unit) == who.unit.as_ref())
            && self
                .common_name
                .as_ref()
                .is_none_or(|name| *name == who.common_name)
    }

    fn specificity(&self) -> u8 {
        u8::from(self.unit.is_some()) + 2 * u8::from(self.common_name.is_some())
    }
}

/// A loaded policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    grants: Vec<Grant>,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses policy text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|source| PolicyError::Parse {
            path: path.into(),
            source,
        })?;
        let mut grants = Vec::new();
        for (index, entry) in file.identity.into_iter().enumerate() {
            let fail = |reason: String| PolicyError::Entry {
                path: path.into(),
                index: index + 1,
                organisation: entry.organisation.clone(),
                reason,
            };
            let role = entry.role().map_err(fail)?;
            let grant = Grant {
                organisation: entry.organisation.clone(),
                unit: entry.unit.clone(),
                common_name: entry.common_name.clone(),
                role,
            };
            let clash = grants.iter().any(|other: &Grant| {
                other.organisation == grant.organisation
                    && other.unit == grant.unit
                    && other.common_name == grant.common_name
            });
            if clash {
                return Err(fail("the same identity is named twice".into()));
            }
            grants.push(grant);
        }
        Ok(Self { grants })
    }

    /// The role of a verified identity, or `None` if the policy does not name it.
    pub fn role_of(&self, who: &PeerIdentity) -> Option<&Role> {
        self.grants
            .iter()
            .filter(|grant| grant.matches(who))
            .max_by_key(|grant| grant.specificity())
            .map(|grant| &grant.role)
    }
}

impl IdentityEntry {
    fn role(&self) -> Result<Role, String> {
        let authority = || {
            let code = self
                .authority
                .clone()
                .ok_or("needs the authority (its GSS code)")?;
            let bytes = code.as_bytes();
            if bytes.len() == 9 && bytes[0] == b'E' && bytes[1..].iter().all(u8::is_ascii_digit) {
                Ok(code)
            } else {
                Err(format!(
                    "authority {code:?} is not a GSS code such as E06000001"
                ))
            }
        };
        let paragraph = |value: Option<u8>, name: &str, max: u8| {
            value
                .filter(|p| (1..=max).contains(p))
                .ok_or(format!("needs {name} = 1 to {max}"))
        };
        let role = match self.role {
            RoleKind::NationalPartner => {
                Role::NationalPartner(paragraph(self.schedule2, "schedule2", 7)?)
            }
            RoleKind::Practitioner => Role::Practitioner {
                category: self
                    .schedule3
                    .as_deref()
                    .ok_or("needs schedule3, for example \"3\" or \"9(1)(d)\"")?
                    .parse()?,
                authority: authority()?,
            },
            RoleKind::Contributor => match (self.schedule4, self.schedule5) {
                (Some(_), None) => Role::Contributor(Contributor::MustDisclose(paragraph(
                    self.schedule4,
                    "schedule4",
                    3,
                )?)),
                (None, Some(_)) => Role::Contributor(Contributor::MayDisclose(paragraph(
                    self.schedule5,
                    "schedule5",
                    4,
                )?)),
                _ => return Err(
                    "a contributor names exactly one of schedule4 (1 to 3) or schedule5 (1 to 4)"
                        .into(),
                ),
            },
            RoleKind::Node => Role::Node {
                authority: authority()?,
            },
            RoleKind::Gateway => Role::Gateway,
            RoleKind::Operator => Role::Operator,
            RoleKind::Management => Role::Management {
                authority: authority()?,
            },
        };
        Ok(role)
    }
}

/// A policy that can be reloaded while the server runs. A reload that fails
/// keeps the policy in force and reports why.
#[derive(Debug)]
pub struct PolicyHandle {
    path: PathBuf,
    current: RwLock<Arc<Policy>>,
}

impl PolicyHandle {
    pub fn open(path: &Path) -> Result<Self, PolicyError> {
        Ok(Self {
            path: path.into(),
            current: RwLock::new(Arc::new(Policy::load(path)?)),
        })
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the file again; on success the new policy is in force for every later call.
    pub fn reload(&self) -> Result<(), PolicyError> {
        let policy = Arc::new(Policy::load(&self.path)?);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = policy;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads whenever the file's modification time changes, checking every
    /// `every`; a bad new file is reported and the policy in force kept.
    pub async fn watch(self: Arc<Self>, every: std::time::Duration) {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut seen = modified(&self.path);
        loop {
            tokio::time::sleep(every).await;
            let now = modified(&self.path);
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(()) => tracing::info!(path = %self.path.display(), "access policy reloaded"),
                Err(error) => {
                    tracing::error!(%error, "access policy not reloaded; the previous one stays in force")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(organisation: &str, unit: Option<&str>, name: &str) -> PeerIdentity {
        PeerIdentity {
            organisation: organisation.into(),
            unit: unit.map(Into::into),
            common_name: name.into(),
        }
    }

    const POLICY: &str = r#"
        [[identity]]
        organisation = "NSPCC"
        role = "national_partner"
        schedule2 = 3

        [[identity]]
        organisation = "E06000001"
        role = "practitioner"
        schedule3 = "2"
        authority = "E06000001"

        [[identity]]
        organisation = "E06000001"
        unit = "social care"
        role = "practitioner"
        schedule3 = "1(2)(a)"
        authority = "E06000001"
    "#;

    #[test]
    fn the_most_specific_entry_wins_and_strangers_have_no_role() {
        let policy = Policy::parse(POLICY, Path::new("test")).unwrap();
        assert_eq!(
            policy.role_of(&who("NSPCC", None, "A")),
            Some(&Role::NationalPartner(3))
        );
        let social = policy
            .role_of(&who("E06000001", Some("social care"), "B"))
            .unwrap();
        assert!(
            matches!(social, Role::Practitioner { category, .. } if category.citation() == "1(2)(a)")
        );
        let health = policy
            .role_of(&who("E06000001", Some("health"), "C"))
            .unwrap();
        assert!(
            matches!(health, Role::Practitioner { category, .. } if category.citation() == "2")
        );
        assert_eq!(policy.role_of(&who("Barnardo's", None, "D")), None);
    }

    #[test]
    fn bad_entries_are_refused_with_their_place() {
        for (text, expect) in [
            ("[[identity]]\norganisation = \"X\"\nrole = \"national_partner\"\nschedule2 = 8", "schedule2 = 1 to 7"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"practitioner\"\nschedule3 = \"16\"\nauthority = \"E06000001\"", "not a Schedule 3"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"node\"", "needs the authority"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"root\"", "unknown variant"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"operator\"\n[[identity]]\norganisation = \"X\"\nrole = \"gateway\"", "named twice"),
        ] {
            let error = Policy::parse(text, Path::new("p.toml")).unwrap_err().to_string();
            assert!(error.contains(expect), "{error}");
        }
    }
}
