//! A record's details on the wire (Schedule 1 paras 1 to 5, 16 to 18 and
//! 20): decoding a create or update with every rule of the schedules on a
//! record's details (each failure names the field, as a path such as
//! `details.former_names[0].ceased_on`, and says what the rule is), and
//! encoding a stored record for `redact`.

use chrono::NaiveDate;
use contactpoint_proto::v1 as pb;

use crate::error::Invalid;
use crate::model::*;
use crate::records::entries::{
    decode_caf, decode_contact, decode_education, decode_lead, decode_service,
};
use crate::search::keys::canonical_postcode;
use crate::wire::{
    age_on, at_most, date, encode_date, join, not_future, optional_date, optional_text, required,
    text, Context, RecordFacts, WireEnum, MAX_REPEATED,
};

pub(crate) fn decode_name(
    value: Option<&pb::PersonName>,
    field: &str,
) -> Result<PersonName, Invalid> {
    let name = required(value, field)?;
    Ok(PersonName {
        given_names: text(&name.given_names, &join(field, "given_names"))?,
        family_name: text(&name.family_name, &join(field, "family_name"))?,
    })
}

pub(crate) fn decode_address(
    value: &pb::PostalAddress,
    field: &str,
) -> Result<PostalAddress, Invalid> {
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

pub(crate) fn decode_contact_details(
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

pub(crate) fn decode_whereabouts(
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
pub(crate) fn check_category_age(
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
pub(crate) fn not_before_birth(
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
pub(crate) fn relationship_allowed(category: PersonCategory, relationship: Relationship) -> bool {
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

pub(crate) fn encode_name(value: &PersonName) -> pb::PersonName {
    pb::PersonName {
        given_names: value.given_names.clone(),
        family_name: value.family_name.clone(),
    }
}

pub(crate) fn encode_address(value: &PostalAddress) -> pb::PostalAddress {
    pb::PostalAddress {
        lines: value.lines.clone(),
        town: value.town.clone(),
        postcode: value.postcode.clone(),
    }
}

pub(crate) fn encode_details_contact(value: &ContactDetails) -> pb::ContactDetails {
    pb::ContactDetails {
        address: value.address.as_ref().map(encode_address),
        telephone: value.telephone.clone(),
        email: value.email.clone(),
    }
}

pub(crate) fn encode_whereabouts(value: &Whereabouts) -> pb::Whereabouts {
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

pub(crate) fn encode_authority(value: &ResponsibleAuthority) -> pb::ResponsibleAuthority {
    pb::ResponsibleAuthority {
        code: value.code.clone(),
        name: value.name.clone(),
    }
}

pub(crate) fn encode_provenance(value: &Provenance) -> pb::Provenance {
    pb::Provenance {
        supplied_by: value.supplied_by.clone(),
        body_reference: value.body_reference.clone().unwrap_or_default(),
        supplied_at: value
            .supplied_at
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
    }
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
