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
//!
//! A contributing body names the Schedule 1 information it holds, which is
//! all it may write (regulation 11):
//!
//! ```toml
//! [[identity]]
//! organisation = "Hartlepool Primary School"
//! role = "contributor"
//! schedule4 = 1
//! contributes = ["education"]
//! ```
//!
//! Access conditions (RULES.md, practice) are recorded per user, matched the
//! same way (a deployment names each user by common name; an entry without
//! one covers everyone of the organisation or unit who has no entry of their
//! own). A person's access is refused while a condition is missing or lapsed:
//!
//! ```toml
//! [access]
//! conditions_required = true             # the default
//! criminal_record_check_valid_years = 3  # the default
//!
//! [[conditions]]
//! organisation = "NSPCC"
//! common_name = "Jo Smith"
//! training_completed_on = 2026-01-12
//! criminal_record_check_on = 2024-05-01  # enhanced check; lapses after three years
//! user_agreement_signed_on = 2026-01-12
//! ```
//!
//! The gateway's limits (its `[limits]` configuration) are per certificate
//! subject: one person, one budget. Where that does not fit, an entry sizes
//! them for the identities it matches (most specific wins), each setting
//! optional; `shared = true` puts every identity it matches into one budget
//! (an organisation's whole allowance, however many certificates it has):
//!
//! ```toml
//! [[limits]]
//! organisation = "NSPCC"
//! unit = "Helpline"
//! per_second = 400       # sustained requests a second
//! burst = 800            # above that rate, at once
//! in_flight = 128        # requests in flight
//! shared = true          # the whole helpline, one budget
//! ```
use chrono::NaiveDate;
use contactpoint_mtls::PeerIdentity;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::roles::{Contributor, Refusal, Role};
use crate::Holding;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    identity: Vec<IdentityEntry>,
    #[serde(default)]
    access: AccessSettings,
    #[serde(default)]
    conditions: Vec<ConditionsEntry>,
    #[serde(default)]
    limits: Vec<LimitsEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    organisation: String,
    unit: Option<String>,
    common_name: Option<String>,
    per_second: Option<f64>,
    burst: Option<f64>,
    in_flight: Option<usize>,
    #[serde(default)]
    shared: bool,
}

/// The gateway's limits for the identities a `[[limits]]` entry matches;
/// what it leaves out is the gateway's configured default.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerLimits {
    pub per_second: Option<f64>,
    pub burst: Option<f64>,
    pub in_flight: Option<usize>,
    /// Every identity the entry matches draws on this one budget, named
    /// here (the entry's organisation, unit and common name).
    pub shared_as: Option<String>,
}

/// How access conditions are applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSettings {
    /// Refuse people (national partners' staff, practitioners, management
    /// teams) whose conditions are missing or lapsed.
    pub conditions_required: bool,
    /// How long an enhanced criminal record check stays valid.
    pub criminal_record_check_valid_years: u32,
    /// Let a `[[conditions]]` entry without a common name cover everyone of
    /// its organisation or unit (for test and demonstration policies).
    /// Off by default: conditions are recorded per user.
    pub allow_organisation_wide_conditions: bool,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            conditions_required: true,
            criminal_record_check_valid_years: 3,
            allow_organisation_wide_conditions: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionsEntry {
    organisation: String,
    unit: Option<String>,
    common_name: Option<String>,
    training_completed_on: Option<toml::value::Datetime>,
    criminal_record_check_on: Option<toml::value::Datetime>,
    user_agreement_signed_on: Option<toml::value::Datetime>,
}

/// One user's access conditions, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessConditions {
    pub training_completed_on: Option<NaiveDate>,
    pub criminal_record_check_on: Option<NaiveDate>,
    pub user_agreement_signed_on: Option<NaiveDate>,
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
    contributes: Option<Vec<String>>,
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

/// An identity pattern: an organisation, and optionally a unit and a common name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    organisation: String,
    unit: Option<String>,
    common_name: Option<String>,
}

/// One identity pattern and its role.
#[derive(Debug, Clone)]
struct Grant {
    pattern: Pattern,
    role: Role,
    /// For a contributing body: the information it holds.
    holds: Vec<Holding>,
}

impl Pattern {
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

/// The most specific of `items` whose pattern matches `who`.
fn most_specific<'a, T>(
    items: &'a [T],
    pattern: impl Fn(&T) -> &Pattern,
    who: &PeerIdentity,
) -> Option<&'a T> {
    items
        .iter()
        .filter(|item| pattern(item).matches(who))
        .max_by_key(|item| pattern(item).specificity())
}

/// A loaded policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    grants: Vec<Grant>,
    access: AccessSettings,
    conditions: Vec<(Pattern, AccessConditions)>,
    limits: Vec<(Pattern, CallerLimits)>,
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
            let holds = entry.holdings(&role).map_err(fail)?;
            let grant = Grant {
                pattern: Pattern {
                    organisation: entry.organisation.clone(),
                    unit: entry.unit.clone(),
                    common_name: entry.common_name.clone(),
                },
                role,
                holds,
            };
            if grants
                .iter()
                .any(|other: &Grant| other.pattern == grant.pattern)
            {
                return Err(fail("the same identity is named twice".into()));
            }
            grants.push(grant);
        }
        let mut conditions = Vec::new();
        for (index, entry) in file.conditions.into_iter().enumerate() {
            let fail = |reason: String| PolicyError::Entry {
                path: path.into(),
                index: index + 1,
                organisation: format!("conditions of {}", entry.organisation),
                reason,
            };
            let date = |value: &Option<toml::value::Datetime>, name: &str| {
                value
                    .as_ref()
                    .map(|datetime| match (datetime.date, datetime.time) {
                        (Some(date), None) => NaiveDate::from_ymd_opt(
                            date.year.into(),
                            date.month.into(),
                            date.day.into(),
                        )
                        .ok_or(format!("{name} is not a date")),
                        _ => Err(format!(
                            "{name} is a date such as 2026-01-12, without a time"
                        )),
                    })
                    .transpose()
            };
            let recorded = AccessConditions {
                training_completed_on: date(&entry.training_completed_on, "training_completed_on")
                    .map_err(fail)?,
                criminal_record_check_on: date(
                    &entry.criminal_record_check_on,
                    "criminal_record_check_on",
                )
                .map_err(fail)?,
                user_agreement_signed_on: date(
                    &entry.user_agreement_signed_on,
                    "user_agreement_signed_on",
                )
                .map_err(fail)?,
            };
            if entry.common_name.is_none() && !file.access.allow_organisation_wide_conditions {
                return Err(fail(
                    "access conditions are recorded per user: name the common_name (or set allow_organisation_wide_conditions = true under [access])".into(),
                ));
            }
            let pattern = Pattern {
                organisation: entry.organisation.clone(),
                unit: entry.unit.clone(),
                common_name: entry.common_name.clone(),
            };
            if conditions.iter().any(|(other, _)| *other == pattern) {
                return Err(fail("the same user is named twice".into()));
            }
            conditions.push((pattern, recorded));
        }
        let mut limits = Vec::new();
        for (index, entry) in file.limits.into_iter().enumerate() {
            let fail = |reason: String| PolicyError::Entry {
                path: path.into(),
                index: index + 1,
                organisation: format!("limits of {}", entry.organisation),
                reason,
            };
            if entry
                .per_second
                .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
            {
                return Err(fail("per_second must be a number above 0".into()));
            }
            if entry
                .burst
                .is_some_and(|burst| !(burst.is_finite() && burst >= 1.0))
            {
                return Err(fail("burst must be a number of at least 1".into()));
            }
            if entry.in_flight == Some(0) {
                return Err(fail("in_flight must be at least 1".into()));
            }
            let pattern = Pattern {
                organisation: entry.organisation.clone(),
                unit: entry.unit.clone(),
                common_name: entry.common_name.clone(),
            };
            if limits.iter().any(|(other, _)| *other == pattern) {
                return Err(fail("the same identity is named twice".into()));
            }
            let shared_as = entry.shared.then(|| {
                format!(
                    "O={}/OU={}/CN={}",
                    entry.organisation,
                    entry.unit.as_deref().unwrap_or("*"),
                    entry.common_name.as_deref().unwrap_or("*")
                )
            });
            limits.push((
                pattern,
                CallerLimits {
                    per_second: entry.per_second,
                    burst: entry.burst,
                    in_flight: entry.in_flight,
                    shared_as,
                },
            ));
        }
        Ok(Self {
            grants,
            access: file.access,
            conditions,
            limits,
        })
    }

    /// The limits the policy sizes for an identity, if it names them.
    pub fn limits_of(&self, who: &PeerIdentity) -> Option<&CallerLimits> {
        most_specific(&self.limits, |(pattern, _)| pattern, who).map(|(_, limits)| limits)
    }

    /// The role of a verified identity, or `None` if the policy does not name it.
    pub fn role_of(&self, who: &PeerIdentity) -> Option<&Role> {
        most_specific(&self.grants, |grant| &grant.pattern, who).map(|grant| &grant.role)
    }

    /// What a contributing body holds, and so may write (empty for anyone else).
    pub fn holdings_of(&self, who: &PeerIdentity) -> &[Holding] {
        most_specific(&self.grants, |grant| &grant.pattern, who)
            .map(|grant| grant.holds.as_slice())
            .unwrap_or_default()
    }

    /// The access conditions recorded for a user, if any.
    pub fn conditions_of(&self, who: &PeerIdentity) -> Option<&AccessConditions> {
        most_specific(&self.conditions, |(pattern, _)| pattern, who).map(|(_, recorded)| recorded)
    }

    /// Whether a person in `role` may use the database today: their training,
    /// enhanced criminal record check (valid for the configured years) and
    /// signed user agreement must all be recorded, and the check current.
    /// Systems (nodes, the gateway, contributing bodies) and operators, who
    /// read no records, are not subject to them.
    pub fn admit(&self, who: &PeerIdentity, role: &Role, today: NaiveDate) -> Result<(), Refusal> {
        if !self.access.conditions_required || !role.is_person_reading_records() {
            return Ok(());
        }
        let recorded = self.conditions_of(who).cloned().unwrap_or_default();
        let mut unmet = Vec::new();
        if recorded.training_completed_on.is_none_or(|on| on > today) {
            unmet.push("no completed training is recorded".to_owned());
        }
        match recorded.criminal_record_check_on {
            Some(on) if on <= today => {
                let years = self.access.criminal_record_check_valid_years;
                let lapses = on
                    .checked_add_months(chrono::Months::new(12 * years))
                    .unwrap_or(NaiveDate::MAX);
                if lapses <= today {
                    unmet.push(format!(
                        "the enhanced criminal record check of {on} lapsed on {lapses} (it is valid for {years} years)"
                    ));
                }
            }
            _ => unmet.push("no enhanced criminal record check is recorded".to_owned()),
        }
        if recorded
            .user_agreement_signed_on
            .is_none_or(|on| on > today)
        {
            unmet.push("no signed user agreement is recorded".to_owned());
        }
        if unmet.is_empty() {
            return Ok(());
        }
        Err(Refusal {
            role: role.to_string(),
            reason: format!("access conditions not met for {who}: {}", unmet.join("; ")),
        })
    }
}

impl IdentityEntry {
    /// `contributes`: required of a contributing body, refused for anyone else.
    fn holdings(&self, role: &Role) -> Result<Vec<Holding>, String> {
        match (role, &self.contributes) {
            (Role::Contributor(_), Some(names)) if !names.is_empty() => names
                .iter()
                .map(|name| name.parse())
                .collect::<Result<Vec<Holding>, String>>(),
            (Role::Contributor(_), _) => Err(format!(
                "a contributor names the information it holds: contributes = [...], from {}",
                Holding::names()
            )),
            (_, Some(_)) => Err("only a contributor names what it contributes".into()),
            (_, None) => Ok(vec![]),
        }
    }

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
    use crate::Holding;

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
    fn limits_are_sized_per_identity_and_checked() {
        let text = format!(
            "{POLICY}{}",
            r#"
            [[limits]]
            organisation = "NSPCC"
            per_second = 200
            [[limits]]
            organisation = "NSPCC"
            unit = "Helpline"
            per_second = 400
            burst = 800
            in_flight = 128
            shared = true
            "#
        );
        let policy = Policy::parse(&text, Path::new("test")).unwrap();
        let helpline = policy
            .limits_of(&who("NSPCC", Some("Helpline"), "A"))
            .unwrap();
        assert_eq!(
            (helpline.per_second, helpline.burst, helpline.in_flight),
            (Some(400.0), Some(800.0), Some(128))
        );
        assert_eq!(
            policy
                .limits_of(&who("NSPCC", Some("Helpline"), "B"))
                .and_then(|limits| limits.shared_as.clone()),
            helpline.shared_as.clone(),
            "one budget for the whole helpline"
        );
        let other = policy.limits_of(&who("NSPCC", None, "C")).unwrap();
        assert_eq!(
            (other.per_second, other.shared_as.as_ref()),
            (Some(200.0), None)
        );
        assert_eq!(policy.limits_of(&who("E06000001", None, "D")), None);

        for (bad, says) in [
            ("per_second = 0", "per_second must be a number above 0"),
            ("burst = 0.5", "burst must be a number of at least 1"),
            ("in_flight = 0", "in_flight must be at least 1"),
        ] {
            let text = format!("[[limits]]\norganisation = \"NSPCC\"\n{bad}\n");
            let error = Policy::parse(&text, Path::new("test")).unwrap_err();
            assert!(error.to_string().contains(says), "{error}");
        }
    }

    #[test]
    fn access_conditions_refuse_a_lapsed_or_missing_condition_naming_it() {
        let text = r#"
            [access]
            allow_organisation_wide_conditions = true

            [[identity]]
            organisation = "NSPCC"
            role = "national_partner"
            schedule2 = 3

            [[identity]]
            organisation = "Hartlepool Primary School"
            role = "contributor"
            schedule4 = 1
            contributes = ["education", "school_nurse"]

            [[conditions]]
            organisation = "NSPCC"
            training_completed_on = 2026-01-12
            criminal_record_check_on = 2024-05-01
            user_agreement_signed_on = 2026-01-12

            [[conditions]]
            organisation = "NSPCC"
            common_name = "Lapsed"
            training_completed_on = 2026-01-12
            criminal_record_check_on = 2023-05-01
        "#;
        let policy = Policy::parse(text, Path::new("test")).unwrap();
        let nspcc = Role::NationalPartner(3);
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert!(policy
            .admit(&who("NSPCC", None, "Anyone"), &nspcc, day(2026, 11, 23))
            .is_ok());
        // The check of 2024-05-01 lapses three years on.
        let lapsed = policy
            .admit(&who("NSPCC", None, "Anyone"), &nspcc, day(2027, 5, 1))
            .unwrap_err();
        assert!(lapsed.reason.contains("lapsed on 2027-05-01"), "{lapsed}");
        let both = policy
            .admit(&who("NSPCC", None, "Lapsed"), &nspcc, day(2026, 11, 23))
            .unwrap_err()
            .reason;
        assert!(
            both.contains("criminal record check of 2023-05-01 lapsed"),
            "{both}"
        );
        assert!(both.contains("no signed user agreement"), "{both}");
        assert!(!both.contains("training"), "{both}");
        let school = who("Hartlepool Primary School", None, "Registrar");
        assert_eq!(
            policy.holdings_of(&school),
            &[Holding::Education, Holding::SchoolNurse]
        );
        // A body's systems are not people: no conditions apply.
        let body = policy.role_of(&school).unwrap().clone();
        assert!(policy.admit(&school, &body, day(2026, 11, 23)).is_ok());
    }

    #[test]
    fn bad_entries_are_refused_with_their_place() {
        for (text, expect) in [
            ("[[identity]]\norganisation = \"X\"\nrole = \"national_partner\"\nschedule2 = 8", "schedule2 = 1 to 7"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"practitioner\"\nschedule3 = \"16\"\nauthority = \"E06000001\"", "not a Schedule 3"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"node\"", "needs the authority"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"root\"", "unknown variant"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"operator\"\n[[identity]]\norganisation = \"X\"\nrole = \"gateway\"", "named twice"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"contributor\"\nschedule4 = 1", "contributes = [...]"),
            ("[[identity]]\norganisation = \"X\"\nrole = \"contributor\"\nschedule4 = 1\ncontributes = [\"case_notes\"]", "not information a body contributes"),
            ("[[conditions]]\norganisation = \"X\"\ncommon_name = \"Y\"\ntraining_completed_on = 2026-01-01T10:00:00", "without a time"),
            ("[[conditions]]\norganisation = \"X\"\ntraining_completed_on = 2026-01-01", "recorded per user"),
        ] {
            let error = Policy::parse(text, Path::new("p.toml")).unwrap_err().to_string();
            assert!(error.contains(expect), "{error}");
        }
    }
}
