//! The boundary between the wire contract and the node's model.
//!
//! `decode_*` turn requests into model values and are where every rule of the
//! schedules on a single request is checked: each failure names the field (as
//! a path into the request, such as `services[0].archive_after_years`) and
//! says what the rule is. `encode_*` turn model values into responses.
use chrono::{Datelike, NaiveDate};
use contactpoint_policy::Holding;
use contactpoint_proto::v1 as pb;

use crate::error::Invalid;
use crate::identifier::RecordId;
use crate::model::*;

/// Longest name, provider or free text field accepted, in characters.
const MAX_TEXT: usize = 200;
/// Most entries of one kind (former names, identifiers, metadata) in a request.
const MAX_REPEATED: usize = 50;
/// Default and largest number of search matches.
const DEFAULT_SEARCH_LIMIT: u32 = 20;
const MAX_SEARCH_LIMIT: u32 = 100;

/// What the rules need to know beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Today, from the node's clock.
    pub today: NaiveDate,
}

/// What entry rules need to know about the record they join.
#[derive(Debug, Clone, Copy)]
pub struct RecordFacts {
    pub category: PersonCategory,
    pub date_of_birth: NaiveDate,
}

impl From<&RecordDetails> for RecordFacts {
    fn from(details: &RecordDetails) -> Self {
        Self {
            category: details.category,
            date_of_birth: details.date_of_birth,
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn required<'a, T>(value: Option<&'a T>, field: &str) -> Result<&'a T, Invalid> {
    value.ok_or_else(|| Invalid::new(field, "is required"))
}

fn text(value: &str, field: &str) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    optional_text(trimmed, field)
}

fn optional_text(value: &str, field: &str) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.chars().count() > MAX_TEXT {
        return Err(Invalid::new(
            field,
            format!("is longer than {MAX_TEXT} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

fn at_most<T>(items: &[T], field: &str) -> Result<(), Invalid> {
    if items.len() > MAX_REPEATED {
        return Err(Invalid::new(
            field,
            format!("has more than {MAX_REPEATED} entries"),
        ));
    }
    Ok(())
}

fn date(value: &pb::Date, field: &str) -> Result<NaiveDate, Invalid> {
    let day = u32::try_from(value.year)
        .ok()
        .filter(|year| (1900..=9999).contains(year))
        .and_then(|_| NaiveDate::from_ymd_opt(value.year, value.month, value.day));
    day.ok_or_else(|| {
        Invalid::new(
            field,
            format!(
                "{}-{:02}-{:02} is not a calendar date from 1900 on",
                value.year, value.month, value.day
            ),
        )
    })
}

fn optional_date(value: Option<&pb::Date>, field: &str) -> Result<Option<NaiveDate>, Invalid> {
    value.map(|value| date(value, field)).transpose()
}

fn not_future(value: NaiveDate, field: &str, context: &Context) -> Result<NaiveDate, Invalid> {
    if value > context.today {
        return Err(Invalid::new(field, "must not be in the future"));
    }
    Ok(value)
}

/// Checks an optional end date: not in the future and not before `start`.
fn end_date(
    value: Option<&pb::Date>,
    start: Option<NaiveDate>,
    field: &str,
    context: &Context,
) -> Result<Option<NaiveDate>, Invalid> {
    let Some(end) = optional_date(value, field)? else {
        return Ok(None);
    };
    not_future(end, field, context)?;
    if let Some(start) = start {
        if end < start {
            return Err(Invalid::new(field, "must not be before the start date"));
        }
    }
    Ok(Some(end))
}

/// A required enum: the zero value means "not sent"; unknown numbers are refused.
fn enum_value<E: TryFrom<i32>>(value: i32, field: &str) -> Result<E, Invalid> {
    if value == 0 {
        return Err(Invalid::new(field, "is required"));
    }
    E::try_from(value)
        .map_err(|_| Invalid::new(field, format!("has no meaning for the value {value}")))
}

/// A model enum with a twin in the contract, variant for variant, beside the
/// contract's zero value that means "not sent".
pub trait WireEnum: Sized {
    /// Reads a required enum field: zero is "not sent", unknown numbers are refused.
    fn decode(value: i32, field: &str) -> Result<Self, Invalid>;
    /// The contract's number for this value.
    fn encode(self) -> i32;
}

/// Implements [`WireEnum`] for a model enum and its contract twin: one list
/// of variants serves both directions.
macro_rules! wire_enum {
    ($model:ident <=> $wire:ty { $($variant:ident),+ $(,)? }) => {
        impl WireEnum for $model {
            fn decode(value: i32, field: &str) -> Result<Self, Invalid> {
                type Wire = $wire;
                match enum_value::<Wire>(value, field)? {
                    $(Wire::$variant => Ok(Self::$variant),)+
                    Wire::Unspecified => Err(Invalid::new(field, "is required")),
                }
            }

            fn encode(self) -> i32 {
                type Wire = $wire;
                match self {
                    $(Self::$variant => Wire::$variant as i32,)+
                }
            }
        }
    };
}

wire_enum!(Gender <=> pb::Gender { Female, Male, Other, NotSpecified });
wire_enum!(PersonCategory <=> pb::PersonCategory { Child, ParticipatingYoungPerson });
wire_enum!(ReturnIntention <=> pb::left_england::ReturnIntention {
    IntendsToReturnWithinThreeYears,
    DoesNotIntendToReturnWithinThreeYears,
    NoInformation,
});
wire_enum!(Relationship <=> pb::contact::Relationship {
    ParentalResponsibility,
    HasCareOfChild,
    CarerOfYoungPerson,
});
wire_enum!(EducationSetting <=> pb::education_entry::Setting { EducationalInstitution, OtherProvider });
wire_enum!(ServiceKind <=> pb::ServiceKind {
    PrimaryMedical,
    SpecialistOrTargeted,
    HealthVisitor,
    SchoolNurse,
    Midwife,
});
wire_enum!(SensitiveGround <=> pb::SensitiveGround { Consent, SignificantHarm });
wire_enum!(LeadCapacity <=> pb::lead_professional::Capacity {
    ServiceProvider,
    CafAssessor,
    HealthVisitorSchoolNurseOrMidwife,
    SchoolStaff,
});
wire_enum!(EntryKind <=> pb::EntryKind { Contact, Education, Service, CafAssessment, LeadProfessional });

/// The search key of a surname: lower case, letters and digits only, so that
/// "O'Brien", "o brien" and "OBRIEN" are the same key.
pub fn surname_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether the last word of a reader's name (their certificate's common
/// name) is the child's current or a former surname: an unusual pattern the
/// responsible authority is told of (a possible look-up of a relative).
pub fn shares_surname(reader: &str, details: &RecordDetails) -> bool {
    let Some(last) = reader.split_whitespace().last().map(surname_key) else {
        return false;
    };
    !last.is_empty()
        && std::iter::once(&details.name)
            .chain(details.former_names.iter().map(|former| &former.name))
            .any(|name| surname_key(&name.family_name) == last)
}

/// The search key of forenames: each forename keyed like a surname, space separated.
pub fn forenames_key(names: &str) -> String {
    names
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(surname_key)
        .filter(|key| !key.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A UK postcode in canonical form ("SW1A 1AA"), or `None` if it cannot be one.
pub fn canonical_postcode(input: &str) -> Option<String> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward: Vec<char> = inward.chars().collect();
    let inward_ok = inward[0].is_ascii_digit() && inward[1..].iter().all(char::is_ascii_alphabetic);
    let outward_ok = outward.starts_with(|c: char| c.is_ascii_alphabetic())
        && outward.chars().all(|c| c.is_ascii_alphanumeric())
        && outward.chars().any(|c| c.is_ascii_digit());
    (inward_ok && outward_ok).then(|| format!("{outward} {}", inward.iter().collect::<String>()))
}

/// Age in whole years on `on`.
pub fn age_on(date_of_birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - date_of_birth.year();
    if (on.month(), on.day()) < (date_of_birth.month(), date_of_birth.day()) {
        age -= 1;
    }
    age
}

fn decode_name(value: Option<&pb::PersonName>, field: &str) -> Result<PersonName, Invalid> {
    let name = required(value, field)?;
    Ok(PersonName {
        given_names: text(&name.given_names, &join(field, "given_names"))?,
        family_name: text(&name.family_name, &join(field, "family_name"))?,
    })
}

fn decode_address(value: &pb::PostalAddress, field: &str) -> Result<PostalAddress, Invalid> {
    let lines_field = join(field, "lines");
    at_most(&value.lines, &lines_field)?;
    let lines = value
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| optional_text(line, &format!("{lines_field}[{i}]")))
        .filter(|line| !matches!(line, Ok(line) if line.is_empty()))
        .collect::<Result<Vec<_>, _>>()?;
    if lines.is_empty() {
        return Err(Invalid::new(&lines_field, "must hold at least one line"));
    }
    let postcode_field = join(field, "postcode");
    let postcode = canonical_postcode(&value.postcode).ok_or_else(|| {
        Invalid::new(
            &postcode_field,
            "is not a UK postcode (for example SW1A 1AA)",
        )
    })?;
    Ok(PostalAddress {
        lines,
        town: optional_text(&value.town, &join(field, "town"))?,
        postcode,
    })
}

fn decode_contact_details(
    value: Option<&pb::ContactDetails>,
    field: &str,
) -> Result<ContactDetails, Invalid> {
    let Some(value) = value else {
        return Ok(ContactDetails::default());
    };
    Ok(ContactDetails {
        address: value
            .address
            .as_ref()
            .map(|a| decode_address(a, &join(field, "address")))
            .transpose()?,
        telephone: optional_text(&value.telephone, &join(field, "telephone"))?,
        email: optional_text(&value.email, &join(field, "email"))?,
    })
}

fn decode_whereabouts(
    value: Option<&pb::Whereabouts>,
    field: &str,
    context: &Context,
) -> Result<Whereabouts, Invalid> {
    use pb::whereabouts::State;
    let state = required(value, field)?.state.as_ref();
    Ok(match required(state, &join(field, "state"))? {
        State::CurrentAddress(address) => {
            Whereabouts::CurrentAddress(decode_address(address, &join(field, "current_address"))?)
        }
        State::LastKnownAddress(address) => Whereabouts::LastKnownAddress(decode_address(
            address,
            &join(field, "last_known_address"),
        )?),
        State::NoKnownAddress(_) => Whereabouts::NoKnownAddress,
        State::LeftEngland(left) => {
            let field = join(field, "left_england");
            let ceased_field = join(&field, "ceased_residence_on");
            let ceased_residence_on =
                optional_date(left.ceased_residence_on.as_ref(), &ceased_field)?
                    .map(|day| not_future(day, &ceased_field, context))
                    .transpose()?;
            let intention = ReturnIntention::decode(left.intention, &join(&field, "intention"))?;
            if ceased_residence_on.is_none() && intention != ReturnIntention::NoInformation {
                return Err(Invalid::new(
                    &ceased_field,
                    "is required for statements (i) and (ii) of para 2(d): their three years run from it",
                ));
            }
            Whereabouts::LeftEngland {
                intention,
                stated_by_body: text(&left.stated_by_body, &join(&field, "stated_by_body"))?,
                ceased_residence_on,
            }
        }
    })
}

/// A child is under 18; a participating young person is 18 to 25. Checked
/// when a record is made, and when an update changes its category or date of birth.
fn check_category_age(
    category: PersonCategory,
    date_of_birth: NaiveDate,
    field: &str,
    context: &Context,
) -> Result<(), Invalid> {
    let age = age_on(date_of_birth, context.today);
    match category {
        PersonCategory::Child if age >= 18 => Err(Invalid::new(field, "a person aged 18 or over is not a child; record a participating young person (18 to 25) instead")),
        PersonCategory::ParticipatingYoungPerson if !(18..=25).contains(&age) => {
            Err(Invalid::new(field, "a participating young person is aged 18 to 25"))
        }
        _ => Ok(()),
    }
}

/// Refuses a date before the person was born.
fn not_before_birth(
    day: NaiveDate,
    date_of_birth: NaiveDate,
    field: &str,
) -> Result<NaiveDate, Invalid> {
    if day < date_of_birth {
        return Err(Invalid::new(field, "must not be before the date of birth"));
    }
    Ok(day)
}

/// Para 6: which contacts a record may hold, by who it is about.
fn relationship_allowed(category: PersonCategory, relationship: Relationship) -> bool {
    match category {
        PersonCategory::Child => relationship != Relationship::CarerOfYoungPerson,
        PersonCategory::ParticipatingYoungPerson => {
            relationship == Relationship::CarerOfYoungPerson
        }
    }
}

/// What an update must stay consistent with: the entries already recorded.
#[derive(Debug, Clone, Default)]
pub struct RecordedEntries {
    /// The relationship of every para 6 contact.
    pub contact_relationships: Vec<Relationship>,
    /// When each para 13 midwife entry started.
    pub midwife_starts: Vec<NaiveDate>,
}

/// The rules an update must keep with what the record already holds: a new
/// category or date of birth obeys the age rule, every contact still fits
/// para 6, and no midwife entry (para 13) began after the first birthday.
pub fn check_update(
    before: RecordFacts,
    after: &RecordDetails,
    entries: &RecordedEntries,
    context: &Context,
) -> Result<(), Invalid> {
    if before.category != after.category || before.date_of_birth != after.date_of_birth {
        check_category_age(
            after.category,
            after.date_of_birth,
            "details.category",
            context,
        )?;
    }
    if !entries
        .contact_relationships
        .iter()
        .all(|&r| relationship_allowed(after.category, r))
    {
        return Err(Invalid::new("details.category", "para 6: the record holds contacts this category cannot have (a child's contacts have parental responsibility or care, a young person's are carers); end and re-record them first"));
    }
    let first_birthday = after
        .date_of_birth
        .checked_add_months(chrono::Months::new(12));
    if entries
        .midwife_starts
        .iter()
        .any(|&start| first_birthday.is_some_and(|birthday| start >= birthday))
    {
        return Err(Invalid::new("details.date_of_birth", "para 13: a midwife entry on the record began after the first birthday this date of birth gives"));
    }
    Ok(())
}

/// Paras 1 to 4, 17, 18 and 20. `creating` adds the age rules that hold when
/// a record is made: a child is under 18, a participating young person 18 to 25.
pub fn decode_details(
    value: Option<&pb::RecordDetails>,
    field: &str,
    creating: bool,
    context: &Context,
) -> Result<RecordDetails, Invalid> {
    let value = required(value, field)?;
    let category_field = join(field, "category");
    let category = PersonCategory::decode(value.category, &category_field)?;
    let dob_field = join(field, "date_of_birth");
    let date_of_birth = not_future(
        date(
            required(value.date_of_birth.as_ref(), &dob_field)?,
            &dob_field,
        )?,
        &dob_field,
        context,
    )?;
    if creating {
        check_category_age(category, date_of_birth, &category_field, context)?;
    }
    let death_field = join(field, "date_of_death");
    let date_of_death = optional_date(value.date_of_death.as_ref(), &death_field)?
        .map(|day| not_future(day, &death_field, context))
        .transpose()?;
    if date_of_death.is_some_and(|death| death < date_of_birth) {
        return Err(Invalid::new(
            &death_field,
            "must not be before the date of birth",
        ));
    }

    let former_field = join(field, "former_names");
    at_most(&value.former_names, &former_field)?;
    let former_names = value
        .former_names
        .iter()
        .enumerate()
        .map(|(i, former)| {
            let field = format!("{former_field}[{i}]");
            let ceased_field = join(&field, "ceased_on");
            Ok(FormerName {
                name: decode_name(former.name.as_ref(), &join(&field, "name"))?,
                ceased_on: optional_date(former.ceased_on.as_ref(), &ceased_field)?
                    .map(|day| not_future(day, &ceased_field, context))
                    .transpose()?
                    .map(|day| not_before_birth(day, date_of_birth, &ceased_field))
                    .transpose()?,
            })
        })
        .collect::<Result<_, Invalid>>()?;

    let ids_field = join(field, "body_identifiers");
    at_most(&value.body_identifiers, &ids_field)?;
    let body_identifiers = value
        .body_identifiers
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let field = format!("{ids_field}[{i}]");
            Ok(BodyIdentifier {
                body: text(&id.body, &join(&field, "body"))?,
                scheme: optional_text(&id.scheme, &join(&field, "scheme"))?,
                value: text(&id.value, &join(&field, "value"))?,
            })
        })
        .collect::<Result<_, Invalid>>()?;

    let metadata_field = join(field, "metadata");
    at_most(&value.metadata, &metadata_field)?;
    let metadata = value
        .metadata
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let field = format!("{metadata_field}[{i}]");
            let paragraph = u8::try_from(entry.paragraph)
                .ok()
                .filter(|p| (1..=19).contains(p))
                .ok_or_else(|| {
                    Invalid::new(
                        &join(&field, "paragraph"),
                        "para 20 metadata relates to one of paragraphs 1 to 19",
                    )
                })?;
            Ok(MetadataEntry {
                paragraph,
                key: text(&entry.key, &join(&field, "key"))?,
                value: optional_text(&entry.value, &join(&field, "value"))?,
            })
        })
        .collect::<Result<_, Invalid>>()?;

    let whereabouts_field = join(field, "whereabouts");
    let whereabouts = decode_whereabouts(value.whereabouts.as_ref(), &whereabouts_field, context)?;
    if let Whereabouts::LeftEngland {
        ceased_residence_on: Some(day),
        ..
    } = &whereabouts
    {
        not_before_birth(
            *day,
            date_of_birth,
            &join(&whereabouts_field, "left_england.ceased_residence_on"),
        )?;
    }
    let consent_field = join(field, "consent");
    let consent = match (category, value.consent.as_ref()) {
        (PersonCategory::ParticipatingYoungPerson, None) => {
            return Err(Invalid::new(&consent_field, "is required: a participating young person's record exists only with their explicit consent"));
        }
        (PersonCategory::Child, Some(_)) => {
            return Err(Invalid::new(
                &consent_field,
                "applies only to a participating young person",
            ));
        }
        (_, None) => None,
        (_, Some(consent)) => {
            let given_field = join(&consent_field, "given_on");
            Some(Consent {
                given_on: not_future(
                    date(
                        required(consent.given_on.as_ref(), &given_field)?,
                        &given_field,
                    )?,
                    &given_field,
                    context,
                )?,
                recorded_by: text(&consent.recorded_by, &join(&consent_field, "recorded_by"))?,
            })
        }
    };
    Ok(RecordDetails {
        consent,
        category,
        name: decode_name(value.name.as_ref(), &join(field, "name"))?,
        former_names,
        whereabouts,
        gender: Gender::decode(value.gender, &join(field, "gender"))?,
        date_of_birth,
        date_of_death,
        body_identifiers,
        metadata,
    })
}

fn start_date(
    value: Option<&pb::Date>,
    field: &str,
    context: &Context,
) -> Result<NaiveDate, Invalid> {
    not_future(date(required(value, field)?, field)?, field, context)
}

fn optional_start_date(
    value: Option<&pb::Date>,
    field: &str,
    context: &Context,
) -> Result<Option<NaiveDate>, Invalid> {
    optional_date(value, field)?
        .map(|day| not_future(day, field, context))
        .transpose()
}

/// Para 6.
pub fn decode_contact(
    value: &pb::Contact,
    field: &str,
    facts: RecordFacts,
    context: &Context,
) -> Result<Contact, Invalid> {
    let relationship_field = join(field, "relationship");
    let relationship = Relationship::decode(value.relationship, &relationship_field)?;
    if !relationship_allowed(facts.category, relationship) {
        return Err(Invalid::new(&relationship_field, "para 6: a child's contacts have parental responsibility or care; a participating young person's contacts are carers"));
    }
    let start_field = join(field, "started_on");
    let started_on = optional_start_date(value.started_on.as_ref(), &start_field, context)?
        .map(|day| not_before_birth(day, facts.date_of_birth, &start_field))
        .transpose()?;
    Ok(Contact {
        relationship,
        name: decode_name(value.name.as_ref(), &join(field, "name"))?,
        details: decode_contact_details(value.contact.as_ref(), &join(field, "contact"))?,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            started_on,
            &join(field, "ended_on"),
            context,
        )?,
    })
}

/// Para 7.
pub fn decode_education(
    value: &pb::EducationEntry,
    field: &str,
    facts: RecordFacts,
    context: &Context,
) -> Result<Education, Invalid> {
    let start_field = join(field, "started_on");
    let started_on = not_before_birth(
        start_date(value.started_on.as_ref(), &start_field, context)?,
        facts.date_of_birth,
        &start_field,
    )?;
    Ok(Education {
        setting: EducationSetting::decode(value.setting, &join(field, "setting"))?,
        provider_name: text(&value.provider_name, &join(field, "provider_name"))?,
        details: decode_contact_details(
            value.provider_contact.as_ref(),
            &join(field, "provider_contact"),
        )?,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            Some(started_on),
            &join(field, "ended_on"),
            context,
        )?,
    })
}

/// Paras 8, 9, 11 to 15.
pub fn decode_service(
    value: &pb::ServiceInvolvement,
    field: &str,
    facts: RecordFacts,
    context: &Context,
) -> Result<Service, Invalid> {
    let kind_field = join(field, "kind");
    let kind = ServiceKind::decode(value.kind, &kind_field)?;
    if kind == ServiceKind::Midwife && age_on(facts.date_of_birth, context.today) >= 1 {
        return Err(Invalid::new(
            &kind_field,
            "para 13: a midwife is recorded only while the person has not attained the age of one",
        ));
    }
    let ground_field = join(field, "sensitive_ground");
    let sensitive = if value.sensitive {
        if kind == ServiceKind::PrimaryMedical {
            return Err(Invalid::new(&join(field, "sensitive"), "para 8(2): primary medical services comprising only a sensitive service are recorded as a para 9 specialist or targeted service"));
        }
        if kind != ServiceKind::SpecialistOrTargeted {
            return Err(Invalid::new(
                &join(field, "sensitive"),
                "para 9(b): only a specialist or targeted service is recorded as sensitive",
            ));
        }
        Some(SensitiveGround::decode(value.sensitive_ground, &ground_field).map_err(|_| {
            Invalid::new(&ground_field, "a sensitive service is recorded only with consent or for suspected significant harm; say which")
        })?)
    } else {
        if value.sensitive_ground != 0 {
            return Err(Invalid::new(
                &ground_field,
                "applies only to a sensitive service",
            ));
        }
        None
    };
    let archive_field = join(field, "archive_after_years");
    let archive_after_years = match (kind, value.archive_after_years) {
        (ServiceKind::PrimaryMedical, 0) => None,
        (ServiceKind::PrimaryMedical, _) => {
            return Err(Invalid::new(&archive_field, "para 15 applies to paragraphs 9 and 11 to 13, not to primary medical services; send 0"));
        }
        (_, years @ 1..=5) => Some(years as u8),
        (_, years) => {
            return Err(Invalid::new(
                &archive_field,
                format!("para 15: the archive period is 1, 2, 3, 4 or 5 years, not {years}"),
            ));
        }
    };
    let start_field = join(field, "started_on");
    let started_on = start_date(value.started_on.as_ref(), &start_field, context)?;
    // Health visitors and midwives begin before birth (antenatal care); a GP
    // registration, a school nurse or another service cannot.
    if !matches!(
        kind,
        ServiceKind::HealthVisitor | ServiceKind::Midwife | ServiceKind::SpecialistOrTargeted
    ) {
        not_before_birth(started_on, facts.date_of_birth, &start_field)?;
    }
    Ok(Service {
        kind,
        provider_name: text(&value.provider_name, &join(field, "provider_name"))?,
        details: decode_contact_details(
            value.provider_contact.as_ref(),
            &join(field, "provider_contact"),
        )?,
        sensitive,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            Some(started_on),
            &join(field, "ended_on"),
            context,
        )?,
        archive_after_years,
        archived_on: None,
    })
}

/// Para 10.
pub fn decode_caf(
    value: &pb::CafAssessment,
    field: &str,
    context: &Context,
) -> Result<CafAssessment, Invalid> {
    let assessed_on = start_date(
        value.assessed_on.as_ref(),
        &join(field, "assessed_on"),
        context,
    )?;
    Ok(CafAssessment {
        assessor_name: text(&value.assessor_name, &join(field, "assessor_name"))?,
        assessing_body: text(&value.assessing_body, &join(field, "assessing_body"))?,
        details: decode_contact_details(
            value.assessor_contact.as_ref(),
            &join(field, "assessor_contact"),
        )?,
        assessed_on,
        actions_completed_on: end_date(
            value.actions_completed_on.as_ref(),
            Some(assessed_on),
            &join(field, "actions_completed_on"),
            context,
        )?,
    })
}

/// Para 16.
pub fn decode_lead(
    value: &pb::LeadProfessional,
    field: &str,
    context: &Context,
) -> Result<LeadProfessional, Invalid> {
    let started_on = start_date(
        value.started_on.as_ref(),
        &join(field, "started_on"),
        context,
    )?;
    Ok(LeadProfessional {
        capacity: LeadCapacity::decode(value.capacity, &join(field, "capacity"))?,
        name: text(&value.name, &join(field, "name"))?,
        details: decode_contact_details(value.contact.as_ref(), &join(field, "contact"))?,
        started_on,
        ended_on: end_date(
            value.ended_on.as_ref(),
            Some(started_on),
            &join(field, "ended_on"),
            context,
        )?,
    })
}

/// A whole new record: details first, then each entry against them.
pub fn decode_create(
    request: &pb::CreateRecordRequest,
    context: &Context,
) -> Result<NewRecord, Invalid> {
    let details = decode_details(request.details.as_ref(), "details", true, context)?;
    let facts = RecordFacts::from(&details);
    let mut entries = Vec::new();
    for (name, len) in [
        ("contacts", request.contacts.len()),
        ("education", request.education.len()),
        ("services", request.services.len()),
        ("caf_assessments", request.caf_assessments.len()),
        ("lead_professionals", request.lead_professionals.len()),
    ] {
        if len > MAX_REPEATED {
            return Err(Invalid::new(
                name,
                format!("has more than {MAX_REPEATED} entries"),
            ));
        }
    }
    for (i, value) in request.contacts.iter().enumerate() {
        entries.push(Entry::Contact(decode_contact(
            value,
            &format!("contacts[{i}]"),
            facts,
            context,
        )?));
    }
    for (i, value) in request.education.iter().enumerate() {
        entries.push(Entry::Education(decode_education(
            value,
            &format!("education[{i}]"),
            facts,
            context,
        )?));
    }
    for (i, value) in request.services.iter().enumerate() {
        entries.push(Entry::Service(decode_service(
            value,
            &format!("services[{i}]"),
            facts,
            context,
        )?));
    }
    for (i, value) in request.caf_assessments.iter().enumerate() {
        entries.push(Entry::CafAssessment(decode_caf(
            value,
            &format!("caf_assessments[{i}]"),
            context,
        )?));
    }
    for (i, value) in request.lead_professionals.iter().enumerate() {
        entries.push(Entry::LeadProfessional(decode_lead(
            value,
            &format!("lead_professionals[{i}]"),
            context,
        )?));
    }
    Ok(NewRecord { details, entries })
}

/// One entry of an AddEntry request, checked against the record it joins.
pub fn decode_entry(
    entry: Option<&pb::add_entry_request::Entry>,
    facts: RecordFacts,
    context: &Context,
) -> Result<Entry, Invalid> {
    use pb::add_entry_request::Entry as E;
    Ok(match required(entry, "entry")? {
        E::Contact(value) => Entry::Contact(decode_contact(value, "contact", facts, context)?),
        E::Education(value) => {
            Entry::Education(decode_education(value, "education", facts, context)?)
        }
        E::Service(value) => Entry::Service(decode_service(value, "service", facts, context)?),
        E::CafAssessment(value) => {
            Entry::CafAssessment(decode_caf(value, "caf_assessment", context)?)
        }
        E::LeadProfessional(value) => {
            Entry::LeadProfessional(decode_lead(value, "lead_professional", context)?)
        }
    })
}

pub fn decode_entry_kind(value: i32, field: &str) -> Result<EntryKind, Invalid> {
    EntryKind::decode(value, field)
}

/// The end date of an EndEntry request (the start is checked against the stored entry).
pub fn decode_end_date(value: Option<&pb::Date>, context: &Context) -> Result<NaiveDate, Invalid> {
    let field = "ended_on";
    not_future(date(required(value, field)?, field)?, field, context)
}

/// Whether a read states a purpose for which archived information may be
/// shown after its first year.
pub fn decode_archive_purpose(value: i32) -> Result<bool, Invalid> {
    if value == 0 {
        return Ok(false);
    }
    pb::ArchivePurpose::try_from(value)
        .map(|_| true)
        .map_err(|_| {
            Invalid::new(
                "archive_purpose",
                format!("has no meaning for the value {value}"),
            )
        })
}

pub fn decode_id(value: &str, field: &str) -> Result<RecordId, Invalid> {
    RecordId::parse(value).map_err(|error| Invalid::new(field, error.to_string()))
}

pub fn decode_search(request: &pb::SearchRecordsRequest) -> Result<SearchQuery, Invalid> {
    let surname_key = surname_key(&request.surname);
    if surname_key.is_empty() {
        return Err(Invalid::new(
            "surname",
            "is required: a search names the child's surname",
        ));
    }
    let date_of_birth = optional_date(request.date_of_birth.as_ref(), "date_of_birth")?;
    let postcode = match request.postcode.trim() {
        "" => None,
        typed => Some(canonical_postcode(typed).ok_or_else(|| {
            Invalid::new("postcode", "is not a UK postcode (for example SW1A 1AA)")
        })?),
    };
    if date_of_birth.is_none() && postcode.is_none() {
        return Err(Invalid::new("date_of_birth", "a search needs a date of birth or a postcode beside the surname, to find a child rather than list children"));
    }
    let forename_key = Some(forenames_key(&request.forename)).filter(|key| !key.is_empty());
    let limit = match request.limit {
        0 => DEFAULT_SEARCH_LIMIT,
        n => n.min(MAX_SEARCH_LIMIT),
    };
    let gender = match request.gender {
        0 => None,
        value => Some(Gender::decode(value, "gender")?),
    };
    Ok(SearchQuery {
        surname_key,
        forename_key,
        gender,
        date_of_birth,
        postcode,
        limit,
        reveal_shielded: false,
        include_archived: false,
    })
}

// ---- model to wire ----

pub fn encode_date(value: NaiveDate) -> pb::Date {
    pb::Date {
        year: value.year(),
        month: value.month(),
        day: value.day(),
    }
}

fn encode_name(value: &PersonName) -> pb::PersonName {
    pb::PersonName {
        given_names: value.given_names.clone(),
        family_name: value.family_name.clone(),
    }
}

fn encode_address(value: &PostalAddress) -> pb::PostalAddress {
    pb::PostalAddress {
        lines: value.lines.clone(),
        town: value.town.clone(),
        postcode: value.postcode.clone(),
    }
}

fn encode_details_contact(value: &ContactDetails) -> pb::ContactDetails {
    pb::ContactDetails {
        address: value.address.as_ref().map(encode_address),
        telephone: value.telephone.clone(),
        email: value.email.clone(),
    }
}

fn encode_whereabouts(value: &Whereabouts) -> pb::Whereabouts {
    use pb::whereabouts::State;
    let state = match value {
        Whereabouts::CurrentAddress(address) => State::CurrentAddress(encode_address(address)),
        Whereabouts::LastKnownAddress(address) => State::LastKnownAddress(encode_address(address)),
        Whereabouts::NoKnownAddress => State::NoKnownAddress(pb::NoKnownAddress {}),
        Whereabouts::LeftEngland {
            intention,
            stated_by_body,
            ceased_residence_on,
        } => State::LeftEngland(pb::LeftEngland {
            intention: intention.encode(),
            stated_by_body: stated_by_body.clone(),
            ceased_residence_on: ceased_residence_on.map(encode_date),
        }),
    };
    pb::Whereabouts { state: Some(state) }
}

fn encode_authority(value: &ResponsibleAuthority) -> pb::ResponsibleAuthority {
    pb::ResponsibleAuthority {
        code: value.code.clone(),
        name: value.name.clone(),
    }
}

fn encode_provenance(value: &Provenance) -> pb::Provenance {
    pb::Provenance {
        supplied_by: value.supplied_by.clone(),
        body_reference: value.body_reference.clone().unwrap_or_default(),
        supplied_at: value
            .supplied_at
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
    }
}

/// Which of the information a body may hold (regulation 11) an entry is;
/// an entry of no kind is left for the decoder to refuse.
pub fn entry_holding(entry: &pb::add_entry_request::Entry) -> Option<Holding> {
    use pb::add_entry_request::Entry as E;
    Some(match entry {
        E::Contact(_) => Holding::Contact,
        E::Education(_) => Holding::Education,
        E::Service(service) => match pb::ServiceKind::try_from(service.kind).ok()? {
            pb::ServiceKind::PrimaryMedical => Holding::PrimaryMedical,
            pb::ServiceKind::SpecialistOrTargeted => Holding::TargetedService,
            pb::ServiceKind::HealthVisitor => Holding::HealthVisitor,
            pb::ServiceKind::SchoolNurse => Holding::SchoolNurse,
            pb::ServiceKind::Midwife => Holding::Midwife,
            pb::ServiceKind::Unspecified => return None,
        },
        E::CafAssessment(_) => Holding::CafAssessment,
        E::LeadProfessional(_) => Holding::LeadProfessional,
    })
}

/// A contribution's entry, as the entry an AddEntry would carry.
pub fn contributed_entry(
    entry: Option<&pb::contribute_request::Entry>,
) -> Result<pb::add_entry_request::Entry, Invalid> {
    use pb::add_entry_request::Entry as A;
    use pb::contribute_request::Entry as C;
    Ok(match required(entry, "entry")? {
        C::Contact(value) => A::Contact(value.clone()),
        C::Education(value) => A::Education(value.clone()),
        C::Service(value) => A::Service(value.clone()),
        C::CafAssessment(value) => A::CafAssessment(value.clone()),
        C::LeadProfessional(value) => A::LeadProfessional(value.clone()),
    })
}

/// The body's identifier for the child a contribution carries (para 18).
pub fn decode_body_reference(
    value: Option<&pb::BodyIdentifier>,
    body: &str,
) -> Result<Option<BodyIdentifier>, Invalid> {
    let Some(value) = value else { return Ok(None) };
    let scheme = value.scheme.trim();
    let number = value.value.trim();
    if scheme.is_empty() || number.is_empty() {
        return Err(Invalid::new(
            "body_identifier",
            "needs both a scheme and a value (for example UPN and the pupil's number)",
        ));
    }
    Ok(Some(BodyIdentifier {
        body: body.to_owned(),
        scheme: scheme.to_owned(),
        value: number.to_owned(),
    }))
}

pub fn encode_record(record: &ChildRecord) -> pb::ChildRecord {
    let details = &record.details;
    pb::ChildRecord {
        id: record.id.to_string(),
        version: record.version,
        category: details.category.encode(),
        name: Some(encode_name(&details.name)),
        former_names: details
            .former_names
            .iter()
            .map(|former| pb::FormerName {
                name: Some(encode_name(&former.name)),
                ceased_on: former.ceased_on.map(encode_date),
            })
            .collect(),
        whereabouts: Some(encode_whereabouts(&details.whereabouts)),
        gender: details.gender.encode(),
        date_of_birth: Some(encode_date(details.date_of_birth)),
        contacts: record
            .contacts
            .iter()
            .map(
                |Stored {
                     entry_id,
                     entry,
                     provenance,
                 }| pb::Contact {
                    entry_id: *entry_id,
                    provenance: provenance.as_ref().map(encode_provenance),
                    relationship: entry.relationship.encode(),
                    name: Some(encode_name(&entry.name)),
                    contact: Some(encode_details_contact(&entry.details)),
                    started_on: entry.started_on.map(encode_date),
                    ended_on: entry.ended_on.map(encode_date),
                },
            )
            .collect(),
        education: record
            .education
            .iter()
            .map(
                |Stored {
                     entry_id,
                     entry,
                     provenance,
                 }| pb::EducationEntry {
                    entry_id: *entry_id,
                    provenance: provenance.as_ref().map(encode_provenance),
                    setting: entry.setting.encode(),
                    provider_name: entry.provider_name.clone(),
                    provider_contact: Some(encode_details_contact(&entry.details)),
                    started_on: Some(encode_date(entry.started_on)),
                    ended_on: entry.ended_on.map(encode_date),
                },
            )
            .collect(),
        services: record
            .services
            .iter()
            .map(
                |Stored {
                     entry_id,
                     entry,
                     provenance,
                 }| pb::ServiceInvolvement {
                    entry_id: *entry_id,
                    provenance: provenance.as_ref().map(encode_provenance),
                    kind: entry.kind.encode(),
                    provider_name: entry.provider_name.clone(),
                    provider_contact: Some(encode_details_contact(&entry.details)),
                    sensitive: entry.sensitive.is_some(),
                    sensitive_ground: entry.sensitive.map_or(0, WireEnum::encode),
                    started_on: Some(encode_date(entry.started_on)),
                    ended_on: entry.ended_on.map(encode_date),
                    archive_after_years: entry.archive_after_years.map_or(0, u32::from),
                    archived_on: entry.archived_on.map(encode_date),
                },
            )
            .collect(),
        caf_assessments: record
            .caf_assessments
            .iter()
            .map(
                |Stored {
                     entry_id,
                     entry,
                     provenance,
                 }| pb::CafAssessment {
                    entry_id: *entry_id,
                    provenance: provenance.as_ref().map(encode_provenance),
                    assessor_name: entry.assessor_name.clone(),
                    assessor_contact: Some(encode_details_contact(&entry.details)),
                    assessing_body: entry.assessing_body.clone(),
                    assessed_on: Some(encode_date(entry.assessed_on)),
                    actions_completed_on: entry.actions_completed_on.map(encode_date),
                },
            )
            .collect(),
        lead_professionals: record
            .lead_professionals
            .iter()
            .map(
                |Stored {
                     entry_id,
                     entry,
                     provenance,
                 }| pb::LeadProfessional {
                    entry_id: *entry_id,
                    provenance: provenance.as_ref().map(encode_provenance),
                    capacity: entry.capacity.encode(),
                    name: entry.name.clone(),
                    contact: Some(encode_details_contact(&entry.details)),
                    started_on: Some(encode_date(entry.started_on)),
                    ended_on: entry.ended_on.map(encode_date),
                },
            )
            .collect(),
        date_of_death: details.date_of_death.map(encode_date),
        body_identifiers: details
            .body_identifiers
            .iter()
            .map(|id| pb::BodyIdentifier {
                body: id.body.clone(),
                scheme: id.scheme.clone(),
                value: id.value.clone(),
            })
            .collect(),
        responsible_authority: Some(encode_authority(&record.responsible_authority)),
        metadata: details
            .metadata
            .iter()
            .map(|entry| pb::MetadataEntry {
                paragraph: entry.paragraph.into(),
                key: entry.key.clone(),
                value: entry.value.clone(),
            })
            .collect(),
        shielded: record.shield_reason.is_some(),
        withheld: vec![],
        archived_on: record.archived_on.map(encode_date),
        consent: details
            .consent
            .as_ref()
            .map(|consent| pb::YoungPersonConsent {
                given_on: Some(encode_date(consent.given_on)),
                recorded_by: consent.recorded_by.clone(),
            }),
    }
}

pub fn encode_match(found: &SearchMatch) -> pb::SearchMatch {
    pb::SearchMatch {
        id: found.id.to_string(),
        name: Some(encode_name(&found.name)),
        gender: found.gender.encode(),
        date_of_birth: Some(encode_date(found.date_of_birth)),
        postcode: found.postcode.clone().unwrap_or_default(),
        responsible_authority: Some(encode_authority(&found.responsible_authority)),
        score: found.score,
        shielded: found.shielded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes_are_canonicalised_or_refused() {
        assert_eq!(canonical_postcode("sw1a1aa").as_deref(), Some("SW1A 1AA"));
        assert_eq!(
            canonical_postcode(" TS24 8AH ").as_deref(),
            Some("TS24 8AH")
        );
        assert_eq!(canonical_postcode("M1 1AE").as_deref(), Some("M1 1AE"));
        for bad in ["", "12345", "SW1A", "SW1A 1A1", "ÅB1 2CD", "ABCDE 1AA"] {
            assert_eq!(canonical_postcode(bad), None, "{bad}");
        }
    }

    #[test]
    fn name_keys_ignore_case_and_punctuation() {
        assert_eq!(surname_key("O'Brien"), "obrien");
        assert_eq!(surname_key("Smith-Jones"), surname_key("smith jones"));
        assert_eq!(forenames_key("Mary-Jane  Ann"), "mary jane ann");
    }

    #[test]
    fn age_counts_whole_years() {
        let dob = NaiveDate::from_ymd_opt(2020, 6, 15).unwrap();
        assert_eq!(
            age_on(dob, NaiveDate::from_ymd_opt(2021, 6, 14).unwrap()),
            0
        );
        assert_eq!(
            age_on(dob, NaiveDate::from_ymd_opt(2021, 6, 15).unwrap()),
            1
        );
    }
}
