//! The roles of the regulations and the rights each has.
use std::fmt;
use std::str::FromStr;

/// A Schedule 3 category: a paragraph, and a sub-paragraph where the
/// schedule divides one ("7(2)", "9(1)(d)").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule3(&'static str);

/// Every Schedule 3 citation a policy may name, with what it covers.
const SCHEDULE_3: &[(&str, &str)] = &[
    ("1(2)(a)", "local authority staff: social services functions"),
    ("1(2)(b)", "local authority staff: special educational needs, school admissions and attendance, welfare of children"),
    ("1(2)(c)", "local authority staff: fire and rescue strategy for children and young people"),
    ("1(2)(d)", "local authority staff: co-operation and safeguarding under sections 10 and 11"),
    ("1(2)(e)", "local authority staff: functions conferred by these Regulations"),
    ("2", "health care professional, or a person assisting one"),
    ("3", "police"),
    ("4", "British Transport Police"),
    ("5", "local probation board"),
    ("6", "youth offending team"),
    ("7(1)", "governor or director of a prison or secure training centre"),
    ("7(2)", "officer of a prison or secure training centre"),
    ("7(3)", "administrator assisting a secure training centre officer"),
    ("8", "Connexions services"),
    ("9(1)(a)", "school head teacher"),
    ("9(1)(b)", "school deputy head teacher"),
    ("9(1)(c)", "school administrator"),
    ("9(1)(d)", "head of year or teacher with pastoral or child protection responsibilities"),
    ("9(1)(e)", "teacher of children with special educational needs"),
    ("9(1)(f)", "special educational needs coordinator"),
    ("10(a)", "further education principal"),
    ("10(b)", "further education deputy principal"),
    ("10(c)", "further education tutor with pastoral, child protection or SEN responsibilities"),
    ("10(d)", "further education administrator"),
    ("11", "voluntary organisation employee"),
    ("12", "registered social care worker"),
    ("13", "CAFCASS officer"),
    ("14(1)", "fire and rescue authority employee"),
    ("15", "Child Exploitation and Online Protection Centre employee"),
];

impl Schedule3 {
    pub fn citation(&self) -> &'static str {
        self.0
    }

    /// Paragraph 1: the authority's own staff.
    pub fn is_local_authority_staff(&self) -> bool {
        self.0.starts_with("1(")
    }
}

impl FromStr for Schedule3 {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        SCHEDULE_3
            .iter()
            .find(|(citation, _)| *citation == text)
            .map(|(citation, _)| Self(citation))
            .ok_or_else(|| {
                let known: Vec<_> = SCHEDULE_3.iter().map(|(c, _)| *c).collect();
                format!(
                    "{text:?} is not a Schedule 3 paragraph; use one of {}",
                    known.join(", ")
                )
            })
    }
}

/// A body that must (Schedule 4) or may (Schedule 5) contribute information (regulation 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contributor {
    /// Schedule 4 paragraph 1 to 3.
    MustDisclose(u8),
    /// Schedule 5 paragraph 1 to 4.
    MayDisclose(u8),
}

/// A role of the regulations, as the policy assigns it to an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// Schedule 2 paragraph 1 to 7: a national partner's staff (regulation 9(1)(b)).
    NationalPartner(u8),
    /// A person an authority has given access (regulation 9(2), Schedule 3).
    Practitioner {
        category: Schedule3,
        authority: String,
    },
    /// A Schedule 4 or 5 body contributing information.
    Contributor(Contributor),
    /// The responsible authority's management team acting for the database
    /// itself: exempt from the limits of regulation 6, and the only role
    /// that shields and unshields its records.
    Management { authority: String },
    /// An authority's node, for node-to-node work (transfers).
    Node { authority: String },
    /// The national gateway, which forwards calls on behalf of others.
    Gateway,
    /// Keeps the service running; sees no personal data.
    Operator,
}

/// What a caller may ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    /// Read one record by its identifier.
    ReadRecord,
    /// Search by name and date of birth.
    Search,
    /// Create a record, or change the details of one (regulation 5).
    MaintainRecord,
    /// Add or end an entry of paragraphs 6 to 16 (regulation 11).
    Contribute,
    /// Read a node's record of created identifiers, to route lookups.
    ReadRoutingFeed,
    /// Call a node on behalf of another caller.
    ForwardOnBehalf,
    /// Ask for the transfer of a record to another authority (Schedule 1 para 19, reg 3).
    StartTransfer,
    /// Consent, as the authority responsible now, to a record's transfer
    /// away: nothing moves without it.
    ConsentTransfer,
    /// Read the audit of who looked at a record (a subject access request).
    ReadAudit,
    /// Carry out the steps of a transfer at the nodes.
    MoveRecord,
    /// Shield or unshield a record (RULES.md, shielding).
    Shield,
    /// See a shielded record for one stated child protection reason.
    OverrideShielding,
    /// Reload the policy, read health and metrics.
    Operate,
    /// Merge a duplicate record into another of the authority's records.
    MergeRecords,
    /// Read a node's signed audit checkpoints, to countersign them.
    WitnessAudit,
    /// Tell an authority that one of its records may be the same child as
    /// another authority's (the national blind index).
    NoteDuplicate,
}

impl Right {
    fn describe(self) -> &'static str {
        match self {
            Self::ReadRecord => "read a record",
            Self::Search => "search for a child",
            Self::MaintainRecord => "create or change a record",
            Self::Contribute => "contribute information to a record",
            Self::ReadRoutingFeed => "read a node's routing feed",
            Self::ForwardOnBehalf => "call on behalf of another caller",
            Self::StartTransfer => "ask for a transfer to another authority",
            Self::ConsentTransfer => {
                "consent to a record's transfer away from the authority responsible for it"
            }
            Self::ReadAudit => "read the audit of a record",
            Self::MoveRecord => "carry out the steps of a transfer",
            Self::Shield => "shield or unshield a record",
            Self::OverrideShielding => "override shielding",
            Self::Operate => "operate the service",
            Self::MergeRecords => "merge duplicate records",
            Self::WitnessAudit => "countersign a node's audit checkpoints",
            Self::NoteDuplicate => "tell an authority of a possible duplicate at another",
        }
    }
}

/// The answer to "may this role do this", with the provision it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub permitted: bool,
    /// The paragraph or regulation the answer rests on.
    pub citation: String,
}

impl Decision {
    fn allow(citation: impl Into<String>) -> Self {
        Self {
            permitted: true,
            citation: citation.into(),
        }
    }
    fn deny(citation: impl Into<String>) -> Self {
        Self {
            permitted: false,
            citation: citation.into(),
        }
    }
}

/// Why a caller was refused, for a PermissionDenied status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied to {role}: {reason}")]
pub struct Refusal {
    /// The role, as people read it, or "no role".
    pub role: String,
    /// The provision the refusal rests on, or why there is no role.
    pub reason: String,
}

/// Whether the verified caller `who`, given `role` by the policy (or none),
/// may exercise `right`: the role if so, otherwise the refusal with its reason.
pub fn authorize<'a>(
    role: Option<&'a Role>,
    who: &contactpoint_mtls::PeerIdentity,
    right: Right,
    at_authority: Option<&str>,
) -> Result<&'a Role, Refusal> {
    let Some(role) = role else {
        return Err(Refusal {
            role: "no role".into(),
            reason: format!("the access policy names no role for {who}"),
        });
    };
    let decision = decide(role, right, at_authority);
    if decision.permitted {
        Ok(role)
    } else {
        Err(Refusal {
            role: role.to_string(),
            reason: decision.citation,
        })
    }
}

/// The one table of rights. `at_authority` is the authority whose node is
/// deciding (`None` at the gateway): an authority's own staff maintain the
/// records of that authority only.
pub fn decide(role: &Role, right: Right, at_authority: Option<&str>) -> Decision {
    use Right::*;
    match (role, right) {
        (Role::NationalPartner(p), ReadRecord | Search) => {
            Decision::allow(format!("regulation 9(1)(b) and Schedule 2 para {p}: national partners may permit their staff access"))
        }
        (Role::Practitioner { category, .. }, ReadRecord | Search) => Decision::allow(format!(
            "regulation 9(2) and Schedule 3 para {}: a local authority may give access",
            category.citation()
        )),
        (Role::Practitioner { category, authority }, MaintainRecord | Contribute | StartTransfer | ReadAudit)
            if category.is_local_authority_staff()
                && at_authority.is_none_or(|here| here == authority) =>
        {
            Decision::allow(format!(
                "regulation 5: the responsible authority keeps its records accurate and complete (Schedule 3 para {})",
                category.citation()
            ))
        }
        (Role::Contributor(body), Contribute) => Decision::allow(match body {
            Contributor::MustDisclose(p) => format!("regulation 11(1)(a) and Schedule 4 para {p}: must disclose"),
            Contributor::MayDisclose(p) => format!("regulation 11(1)(b) and Schedule 5 para {p}: may disclose"),
        }),
        (Role::Operator, StartTransfer) => {
            Decision::allow("Schedule 1 para 19: an operator may ask for a transfer the authorities have agreed; it waits for the sending authority's consent")
        }
        (Role::Management { authority }, ConsentTransfer) if at_authority == Some(authority.as_str()) => {
            Decision::allow("Schedule 1 para 19 and regulation 6: the management team of the authority responsible now consents to the record leaving it")
        }
        (Role::Operator, ReadAudit) => {
            Decision::allow("audits are reviewed for unusual patterns (RULES.md, audit); they hold identifiers, not details")
        }
        (Role::Management { authority }, ReadRecord | Search | MaintainRecord | Contribute | StartTransfer | ReadAudit | Shield | MergeRecords)
            if at_authority.is_none_or(|here| here == authority) =>
        {
            Decision::allow("regulation 6: the responsible authority's management team, acting for the database itself")
        }
        (Role::Management { .. }, ReadRecord | Search) => {
            Decision::allow("regulation 9(2) and Schedule 3 para 1: a local authority's own staff")
        }
        (role, OverrideShielding) if role.has_child_protection_functions() => Decision::allow(format!(
            "{role} has child protection functions: it may see a shielded record for a stated reason, which is audited and reported to the responsible authority"
        )),
        (Role::Gateway, MoveRecord) => {
            Decision::allow("Schedule 1 para 19: the gateway moves a record to the node of the authority now responsible")
        }
        (Role::Gateway, WitnessAudit) => {
            Decision::allow("audits are tamper-evident: the gateway countersigns each node's checkpoints, outside the node's control")
        }
        (Role::Gateway, NoteDuplicate) => {
            Decision::allow("regulation 5: records are kept accurate, and a child recorded by two authorities is one child; the gateway, matching keyed hashes it cannot read, tells both")
        }
        (Role::Gateway, ReadRoutingFeed | ForwardOnBehalf) => {
            Decision::allow("Schedule 1 para 19: the gateway routes each lookup to the responsible authority")
        }
        (Role::Operator, Operate) => Decision::allow("operators keep the service running and see no personal data"),
        (role, right) => Decision::deny(format!("{role} may not {}", right.describe())),
    }
}

impl fmt::Display for Role {
    /// How a role is named in messages and audits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NationalPartner(p) => write!(f, "a national partner (Schedule 2 para {p})"),
            Self::Practitioner {
                category,
                authority,
            } => {
                write!(
                    f,
                    "a practitioner (Schedule 3 para {}) given access by {authority}",
                    category.citation()
                )
            }
            Self::Contributor(Contributor::MustDisclose(p)) => {
                write!(f, "a contributing body (Schedule 4 para {p})")
            }
            Self::Contributor(Contributor::MayDisclose(p)) => {
                write!(f, "a contributing body (Schedule 5 para {p})")
            }
            Self::Management { authority } => write!(f, "the management team of {authority}"),
            Self::Node { authority } => write!(f, "the node of {authority}"),
            Self::Gateway => write!(f, "the gateway"),
            Self::Operator => write!(f, "an operator"),
        }
    }
}

impl Role {
    /// Roles whose functions include child protection, who may override
    /// shielding for one record: children's social care and safeguarding
    /// staff, police, registered social workers, CAFCASS, CEOP, and the NSPCC.
    pub fn has_child_protection_functions(&self) -> bool {
        match self {
            Self::Practitioner { category, .. } => {
                matches!(
                    category.citation(),
                    "1(2)(a)" | "1(2)(d)" | "3" | "4" | "12" | "13" | "15"
                )
            }
            Self::NationalPartner(paragraph) => matches!(paragraph, 3 | 6 | 7),
            Self::Management { .. } => true,
            _ => false,
        }
    }

    /// The role's kind, as the policy file names it: a label for metrics,
    /// which never name a person or an authority.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NationalPartner(_) => "national_partner",
            Self::Practitioner { .. } => "practitioner",
            Self::Contributor(_) => "contributor",
            Self::Management { .. } => "management",
            Self::Node { .. } => "node",
            Self::Gateway => "gateway",
            Self::Operator => "operator",
        }
    }

    /// People who read records, and so are bound by access conditions:
    /// national partners' staff, practitioners and management teams.
    pub fn is_person_reading_records(&self) -> bool {
        matches!(
            self,
            Self::NationalPartner(_) | Self::Practitioner { .. } | Self::Management { .. }
        )
    }

    /// The responsible authority's management team for `authority`: exempt
    /// from regulation 6's limits on what users see.
    pub fn is_management_of(&self, authority: &str) -> bool {
        matches!(self, Self::Management { authority: own } if own == authority)
    }

    /// The compact form the gateway sends to nodes with a forwarded call,
    /// for example `schedule2:3` or `schedule3:9(1)(d)@E06000001`.
    pub fn to_wire(&self) -> String {
        match self {
            Self::NationalPartner(p) => format!("schedule2:{p}"),
            Self::Practitioner {
                category,
                authority,
            } => format!("schedule3:{}@{authority}", category.citation()),
            Self::Contributor(Contributor::MustDisclose(p)) => format!("schedule4:{p}"),
            Self::Contributor(Contributor::MayDisclose(p)) => format!("schedule5:{p}"),
            Self::Management { authority } => format!("management@{authority}"),
            Self::Node { authority } => format!("node@{authority}"),
            Self::Gateway => "gateway".into(),
            Self::Operator => "operator".into(),
        }
    }

    /// Reads [`Role::to_wire`] back; `None` for anything else.
    pub fn from_wire(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        let number = |range: std::ops::RangeInclusive<u8>| {
            rest.parse::<u8>().ok().filter(|p| range.contains(p))
        };
        Some(match kind {
            "schedule2" => Self::NationalPartner(number(1..=7)?),
            "schedule3" => {
                let (citation, authority) = rest.split_once('@')?;
                Self::Practitioner {
                    category: citation.parse().ok()?,
                    authority: authority.to_owned(),
                }
            }
            "schedule4" => Self::Contributor(Contributor::MustDisclose(number(1..=3)?)),
            "schedule5" => Self::Contributor(Contributor::MayDisclose(number(1..=4)?)),
            "gateway" => Self::Gateway,
            "operator" => Self::Operator,
            _ => match text.split_once('@')? {
                ("node", authority) => Self::Node {
                    authority: authority.to_owned(),
                },
                ("management", authority) => Self::Management {
                    authority: authority.to_owned(),
                },
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn practitioner(citation: &str, authority: &str) -> Role {
        Role::Practitioner {
            category: citation.parse().unwrap(),
            authority: authority.into(),
        }
    }

    #[test]
    fn partners_read_and_search_but_do_not_write() {
        let nspcc = Role::NationalPartner(3);
        assert!(decide(&nspcc, Right::Search, None).permitted);
        let read = decide(&nspcc, Right::ReadRecord, None);
        assert!(
            read.permitted && read.citation.contains("Schedule 2 para 3"),
            "{read:?}"
        );
        assert!(!decide(&nspcc, Right::MaintainRecord, None).permitted);
        assert!(!decide(&nspcc, Right::ReadRoutingFeed, None).permitted);
    }

    #[test]
    fn only_an_authoritys_own_staff_maintain_its_records() {
        let social_worker = practitioner("1(2)(a)", "E06000001");
        assert!(decide(&social_worker, Right::MaintainRecord, Some("E06000001")).permitted);
        assert!(!decide(&social_worker, Right::MaintainRecord, Some("E06000002")).permitted);
        let police = practitioner("3", "E06000001");
        assert!(decide(&police, Right::ReadRecord, Some("E06000002")).permitted);
        assert!(!decide(&police, Right::MaintainRecord, Some("E06000001")).permitted);
    }

    #[test]
    fn transfers_and_audit_are_for_the_authority_and_operators() {
        let own_staff = practitioner("1(2)(e)", "E06000001");
        assert!(decide(&own_staff, Right::StartTransfer, Some("E06000001")).permitted);
        assert!(decide(&own_staff, Right::ReadAudit, Some("E06000001")).permitted);
        assert!(!decide(&own_staff, Right::ReadAudit, Some("E06000002")).permitted);
        assert!(!decide(&Role::NationalPartner(3), Right::StartTransfer, None).permitted);
        assert!(!decide(&practitioner("3", "E06000001"), Right::ReadAudit, None).permitted);
        assert!(decide(&Role::Operator, Right::StartTransfer, None).permitted);
        let node = Role::Node {
            authority: "E06000001".into(),
        };
        assert!(!decide(&node, Right::StartTransfer, None).permitted);
    }

    #[test]
    fn only_the_sending_authoritys_management_consents_to_a_transfer() {
        let management = Role::Management {
            authority: "E06000001".into(),
        };
        let at = |code| decide(&management, Right::ConsentTransfer, Some(code)).permitted;
        assert!(at("E06000001"));
        assert!(!at("E06000002"));
        assert!(!decide(&management, Right::ConsentTransfer, None).permitted);
        for other in [
            practitioner("1(2)(a)", "E06000001"),
            Role::Operator,
            Role::Gateway,
            Role::Node {
                authority: "E06000001".into(),
            },
        ] {
            assert!(
                !decide(&other, Right::ConsentTransfer, Some("E06000001")).permitted,
                "{other}"
            );
        }
    }

    #[test]
    fn operators_and_contributors_do_not_read() {
        assert!(!decide(&Role::Operator, Right::ReadRecord, None).permitted);
        let school = Role::Contributor(Contributor::MustDisclose(1));
        assert!(!decide(&school, Right::Search, None).permitted);
        assert!(decide(&school, Right::Contribute, Some("E06000001")).permitted);
    }

    #[test]
    fn roles_round_trip_through_their_wire_form() {
        for role in [
            Role::NationalPartner(7),
            practitioner("9(1)(d)", "E09000033"),
            Role::Contributor(Contributor::MustDisclose(3)),
            Role::Contributor(Contributor::MayDisclose(4)),
            Role::Node {
                authority: "E06000001".into(),
            },
            Role::Management {
                authority: "E06000001".into(),
            },
            Role::Gateway,
            Role::Operator,
        ] {
            assert_eq!(Role::from_wire(&role.to_wire()), Some(role));
        }
        for bad in [
            "schedule2:8",
            "schedule3:99@E06000001",
            "schedule3:3",
            "root",
            "schedule4:x",
        ] {
            assert_eq!(Role::from_wire(bad), None, "{bad}");
        }
    }
}
