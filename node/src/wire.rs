//! The boundary between the wire contract and the node's model, and what
//! every concern's mapping shares: text, dates and enums read with the
//! field's path in every refusal, `Context` (today, from the node's clock),
//! and the encoding of dates and times.
//!
//! Each concern decodes its own requests beside its handlers
//! (`records::wire` a record's details, `records::entries` its entries,
//! `search`, `contributions`, `transfers`, `retention`), and those decoders are
//! the only place the schedules' rules on a request are checked; proto types
//! stop at the handlers.
use chrono::{Datelike, NaiveDate};
use contactpoint_proto::v1 as pb;

use crate::error::Invalid;
use crate::identifier::RecordId;
use crate::model::*;

pub use crate::records::wire::decode_create;

/// Longest name, provider or free text field accepted, in characters.
pub(crate) const MAX_TEXT: usize = contactpoint_proto::limits::NAME_CHARS;
/// Most entries of one kind (former names, identifiers, metadata) in a request.
pub(crate) const MAX_REPEATED: usize = contactpoint_proto::limits::MAX_REPEATED;

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

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

pub(crate) fn required<'a, T>(value: Option<&'a T>, field: &str) -> Result<&'a T, Invalid> {
    value.ok_or_else(|| Invalid::new(field, "is required"))
}

pub(crate) fn text(value: &str, field: &str) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    optional_text(trimmed, field)
}

pub(crate) fn optional_text(value: &str, field: &str) -> Result<String, Invalid> {
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

pub(crate) fn at_most<T>(items: &[T], field: &str) -> Result<(), Invalid> {
    if items.len() > MAX_REPEATED {
        return Err(Invalid::new(
            field,
            format!("has more than {MAX_REPEATED} entries"),
        ));
    }
    Ok(())
}

pub(crate) fn date(value: &pb::Date, field: &str) -> Result<NaiveDate, Invalid> {
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

pub(crate) fn optional_date(
    value: Option<&pb::Date>,
    field: &str,
) -> Result<Option<NaiveDate>, Invalid> {
    value.map(|value| date(value, field)).transpose()
}

pub(crate) fn not_future(
    value: NaiveDate,
    field: &str,
    context: &Context,
) -> Result<NaiveDate, Invalid> {
    if value > context.today {
        return Err(Invalid::new(field, "must not be in the future"));
    }
    Ok(value)
}

/// Checks an optional end date: not in the future and not before `start`.
pub(crate) fn end_date(
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
pub(crate) fn enum_value<E: TryFrom<i32>>(value: i32, field: &str) -> Result<E, Invalid> {
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

/// Age in whole years on `on`.
pub fn age_on(date_of_birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - date_of_birth.year();
    if (on.month(), on.day()) < (date_of_birth.month(), date_of_birth.day()) {
        age -= 1;
    }
    age
}

pub fn decode_id(value: &str, field: &str) -> Result<RecordId, Invalid> {
    RecordId::parse(value).map_err(|error| Invalid::new(field, error.to_string()))
}

pub fn encode_date(value: NaiveDate) -> pb::Date {
    pb::Date {
        year: value.year(),
        month: value.month(),
        day: value.day(),
    }
}

/// RFC 3339 in UTC to the microsecond, so listings merged from several
/// nodes sort as text.
pub(crate) fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

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
