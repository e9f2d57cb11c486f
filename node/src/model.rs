//! The child record as the node holds it: Schedule 1, validated. Values of
//! these types are only made by `wire` (from requests, after every rule of the
//! schedules has been checked) and by `store` (from the database, which holds
//! only what was validated). Proto types never reach below the handlers.
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::identifier::RecordId;

/// Para 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    pub given_names: String,
    pub family_name: String,
}

/// Para 1: a former name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormerName {
    pub name: PersonName,
    pub ceased_on: Option<NaiveDate>,
}

/// A postal address; the postcode is in canonical form ("SW1A 1AA").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    pub lines: Vec<String>,
    pub town: String,
    pub postcode: String,
}

/// Contact details of paragraphs 6 to 13 and 16.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDetails {
    pub address: Option<PostalAddress>,
    pub telephone: String,
    pub email: String,
}

/// Para 2(d)(i) to (iii).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnIntention {
    IntendsToReturnWithinThreeYears,
    DoesNotIntendToReturnWithinThreeYears,
    NoInformation,
}

/// Para 2: exactly one of the four states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Whereabouts {
    CurrentAddress(PostalAddress),
    LastKnownAddress(PostalAddress),
    NoKnownAddress,
    LeftEngland {
        intention: ReturnIntention,
        stated_by_body: String,
        ceased_residence_on: Option<NaiveDate>,
    },
}

impl Whereabouts {
    /// The postcode a search may match: that of a current or last known address.
    pub fn postcode(&self) -> Option<&str> {
        match self {
            Self::CurrentAddress(address) | Self::LastKnownAddress(address) => {
                Some(&address.postcode)
            }
            Self::NoKnownAddress | Self::LeftEngland { .. } => None,
        }
    }
}

/// Defines an enum stored as text in PostgreSQL, with its database spelling.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// The spelling in the database.
            pub fn as_db(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }

            /// Reads the database spelling back; the schema's CHECK constraints
            /// make anything else impossible.
            pub fn from_db(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

stored_enum!(
    /// Para 3.
    Gender {
        Female = "female",
        Male = "male",
        Other = "other",
        /// The statement that the gender has not been specified.
        NotSpecified = "not_specified",
    }
);

stored_enum!(
    /// A child, or a participating young person (18 to 25, with consent).
    PersonCategory {
        Child = "child",
        ParticipatingYoungPerson = "participating_young_person",
    }
);

stored_enum!(
    /// Para 6(a) and (b).
    Relationship {
        ParentalResponsibility = "parental_responsibility",
        HasCareOfChild = "has_care_of_child",
        CarerOfYoungPerson = "carer_of_young_person",
    }
);

stored_enum!(
    /// Para 7(1) or 7(2).
    EducationSetting {
        EducationalInstitution = "educational_institution",
        OtherProvider = "other_provider",
    }
);

stored_enum!(
    /// Paras 8, 9, 11, 12 and 13.
    ServiceKind {
        PrimaryMedical = "primary_medical",
        SpecialistOrTargeted = "specialist_or_targeted",
        HealthVisitor = "health_visitor",
        SchoolNurse = "school_nurse",
        Midwife = "midwife",
    }
);

stored_enum!(
    /// Why a sensitive service may be recorded.
    SensitiveGround {
        Consent = "consent",
        SignificantHarm = "significant_harm",
    }
);

stored_enum!(
    /// Para 16(a) to (d).
    LeadCapacity {
        ServiceProvider = "service_provider",
        CafAssessor = "caf_assessor",
        HealthVisitorSchoolNurseOrMidwife = "health_visitor_school_nurse_or_midwife",
        SchoolStaff = "school_staff",
    }
);

/// Para 6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub relationship: Relationship,
    pub name: PersonName,
    pub details: ContactDetails,
    pub started_on: Option<NaiveDate>,
    pub ended_on: Option<NaiveDate>,
}

/// Para 7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Education {
    pub setting: EducationSetting,
    pub provider_name: String,
    pub details: ContactDetails,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
}

/// Paras 8, 9, 11 to 13, with para 14's dates and para 15's archive period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub kind: ServiceKind,
    pub provider_name: String,
    pub details: ContactDetails,
    /// Para 9(b): `Some` when the service is sensitive, with the ground.
    pub sensitive: Option<SensitiveGround>,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
    /// Para 15: 1 to 5 years; `None` exactly for para 8 services.
    pub archive_after_years: Option<u8>,
    /// When this entry became archived information, if it has.
    #[serde(default)]
    pub archived_on: Option<NaiveDate>,
}

/// Para 10.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CafAssessment {
    pub assessor_name: String,
    pub assessing_body: String,
    pub details: ContactDetails,
    pub assessed_on: NaiveDate,
    pub actions_completed_on: Option<NaiveDate>,
}

/// Para 16.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadProfessional {
    pub capacity: LeadCapacity,
    pub name: String,
    pub details: ContactDetails,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
}

/// Para 18.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyIdentifier {
    pub body: String,
    pub scheme: String,
    pub value: String,
}

/// Para 20.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataEntry {
    pub paragraph: u8,
    pub key: String,
    pub value: String,
}

/// Para 19.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsibleAuthority {
    pub code: String,
    pub name: String,
}

/// The part of a record an update replaces: paras 1 to 4, 17, 18 and 20.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDetails {
    pub category: PersonCategory,
    pub name: PersonName,
    pub former_names: Vec<FormerName>,
    pub whereabouts: Whereabouts,
    pub gender: Gender,
    pub date_of_birth: NaiveDate,
    pub date_of_death: Option<NaiveDate>,
    pub body_identifiers: Vec<BodyIdentifier>,
    pub metadata: Vec<MetadataEntry>,
    /// A participating young person's consent; `None` for a child.
    #[serde(default)]
    pub consent: Option<Consent>,
}

/// A participating young person's explicit consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub given_on: NaiveDate,
    pub recorded_by: String,
}

/// Any entry of paragraphs 6 to 16.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    Contact(Contact),
    Education(Education),
    Service(Service),
    CafAssessment(CafAssessment),
    LeadProfessional(LeadProfessional),
}

impl Entry {
    pub fn kind(&self) -> EntryKind {
        match self {
            Self::Contact(_) => EntryKind::Contact,
            Self::Education(_) => EntryKind::Education,
            Self::Service(_) => EntryKind::Service,
            Self::CafAssessment(_) => EntryKind::CafAssessment,
            Self::LeadProfessional(_) => EntryKind::LeadProfessional,
        }
    }
}

/// Which table an entry id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    Contact,
    Education,
    Service,
    CafAssessment,
    LeadProfessional,
}

/// An entry as stored, with the id the node gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored<T> {
    pub entry_id: i64,
    pub entry: T,
    /// Who supplied it, if recorded.
    pub provenance: Option<Provenance>,
}

/// Where an entry came from (regulation 11; paragraph 20 metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The supplying body: organisation, and unit after a slash when it has one.
    pub supplied_by: String,
    /// The body's identifier for the child (para 18), "scheme:value".
    pub body_reference: Option<String>,
    /// When it was supplied; `None` until stored (the database's clock).
    pub supplied_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A new record: its details and the entries recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    pub details: RecordDetails,
    pub entries: Vec<Entry>,
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRecord {
    pub id: RecordId,
    pub version: u64,
    /// Transfers the record has been through.
    pub moves: u32,
    /// Why the responsible authority shielded the record, if it has.
    pub shield_reason: Option<String>,
    /// When the record became archived information, if it has.
    pub archived_on: Option<NaiveDate>,
    pub details: RecordDetails,
    pub contacts: Vec<Stored<Contact>>,
    pub education: Vec<Stored<Education>>,
    pub services: Vec<Stored<Service>>,
    pub caf_assessments: Vec<Stored<CafAssessment>>,
    pub lead_professionals: Vec<Stored<LeadProfessional>>,
    pub responsible_authority: ResponsibleAuthority,
}

impl ChildRecord {
    /// Every entry of paragraphs 6 to 16, with its provenance.
    pub fn entries(&self) -> impl Iterator<Item = (Entry, Option<Provenance>)> + '_ {
        fn each<'a, T: Clone>(
            stored: &'a [Stored<T>],
            wrap: fn(T) -> Entry,
        ) -> impl Iterator<Item = (Entry, Option<Provenance>)> + 'a {
            stored
                .iter()
                .map(move |s| (wrap(s.entry.clone()), s.provenance.clone()))
        }
        each(&self.contacts, Entry::Contact)
            .chain(each(&self.education, Entry::Education))
            .chain(each(&self.services, Entry::Service))
            .chain(each(&self.caf_assessments, Entry::CafAssessment))
            .chain(each(&self.lead_professionals, Entry::LeadProfessional))
    }
}

pub use crate::search::{SearchMatch, SearchQuery};
pub use crate::transfers::Snapshot;
