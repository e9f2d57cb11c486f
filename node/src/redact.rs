//! What each reader sees (regulation 6, and shielding): the one redaction
//! function, applied to every record a node returns to a user.
//!
//! Users may see neither (a) the name and contact details of a provider of a
//! sensitive service (only that one is or was provided), nor (b) paragraphs
//! 15 and 20, nor (c) paragraph 18 identifiers other than their own
//! organisation's. A shielded record shows only paragraphs 1, 3, 4 and 5 and,
//! for a child, the names of those with parental responsibility or care,
//! unless a role with child protection functions overrides it for a stated
//! reason. The responsible authority's management team, acting for the
//! database itself, is exempt from all of it.
use contactpoint_policy::Role;
use contactpoint_proto::v1 as pb;

/// Who is reading, as far as redaction cares.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub role: &'a Role,
    /// The reader's organisation (the certificate's O), for para 18.
    pub organisation: &'a str,
    /// Shielding overridden for this read (already authorised and audited).
    pub override_shielding: bool,
    /// Today, for archived information's first year.
    pub today: chrono::NaiveDate,
    /// The reader stated a child protection enquiry, serious case review or
    /// child death review.
    pub archive_purpose: bool,
}

impl Reader<'_> {
    /// Archived information is hidden from users; the responsible authority's
    /// management team sees it in its first year, afterwards only for a
    /// stated child protection enquiry, serious case review or child death review.
    pub fn may_see_archived(&self, responsible: &str, archived_on: chrono::NaiveDate) -> bool {
        let first_year = archived_on
            .checked_add_months(chrono::Months::new(12))
            .is_some_and(|end| self.today < end);
        self.role.is_management_of(responsible) && (first_year || self.archive_purpose)
    }
}

const ARCHIVED: &str =
    "archived information (regulation 8): shown only to the responsible authority's data managers";

fn date_of(value: &pb::Date) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(value.year, value.month, value.day)
}

const SENSITIVE: &str = "regulation 6(a): the provider of a sensitive service (only that one is or was provided is shown)";
const PARA_15: &str = "regulation 6(b): paragraph 15 archive periods";
const PARA_20: &str = "regulation 6(b): paragraph 20 metadata";
const PARA_18: &str = "regulation 6(c): paragraph 18 identifiers of other organisations";
const SHIELDED: &str = "shielded by the responsible authority: only paragraphs 1, 3, 4 and 5 and the names of those with parental responsibility or care are shown";

/// The record as `reader` may see it, with `withheld` saying what was removed.
pub fn redact(mut record: pb::ChildRecord, reader: &Reader<'_>) -> pb::ChildRecord {
    let responsible = record
        .responsible_authority
        .as_ref()
        .map(|a| a.code.clone())
        .unwrap_or_default();
    let mut withheld = Vec::new();
    let before = record.services.len();
    record.services.retain(|service| {
        service
            .archived_on
            .as_ref()
            .and_then(date_of)
            .is_none_or(|day| reader.may_see_archived(&responsible, day))
    });
    if record.services.len() < before {
        withheld.push(ARCHIVED.to_owned());
    }
    if reader.role.is_management_of(&responsible) {
        record.withheld = withheld;
        return record;
    }
    if record.shielded && !reader.override_shielding {
        let is_child = record.category == pb::PersonCategory::Child as i32;
        record.whereabouts = None;
        record.education.clear();
        record.services.clear();
        record.caf_assessments.clear();
        record.lead_professionals.clear();
        record.date_of_death = None;
        record.body_identifiers.clear();
        record.metadata.clear();
        if is_child {
            for contact in &mut record.contacts {
                contact.contact = None;
                contact.started_on = None;
                contact.ended_on = None;
            }
        } else {
            record.contacts.clear();
        }
        withheld.push(SHIELDED.to_owned());
    }
    let mut sensitive = false;
    for service in &mut record.services {
        if service.sensitive {
            sensitive = true;
            service.provider_name.clear();
            service.provider_contact = None;
            service.sensitive_ground = 0;
            service.started_on = None;
            service.ended_on = None;
        }
        service.archive_after_years = 0;
    }
    if sensitive {
        withheld.push(SENSITIVE.to_owned());
    }
    if !record.services.is_empty() {
        withheld.push(PARA_15.to_owned());
    }
    if !record.metadata.is_empty() | clear_provenance(&mut record) {
        record.metadata.clear();
        withheld.push(PARA_20.to_owned());
    }
    let before = record.body_identifiers.len();
    record
        .body_identifiers
        .retain(|id| id.body == reader.organisation);
    if record.body_identifiers.len() < before {
        withheld.push(PARA_18.to_owned());
    }
    record.withheld = withheld;
    record
}

/// Removes every entry's provenance (paragraph 20 metadata); whether any had one.
fn clear_provenance(record: &mut pb::ChildRecord) -> bool {
    let mut had = false;
    let mut clear = |provenance: &mut Option<pb::Provenance>| had |= provenance.take().is_some();
    record
        .contacts
        .iter_mut()
        .for_each(|e| clear(&mut e.provenance));
    record
        .education
        .iter_mut()
        .for_each(|e| clear(&mut e.provenance));
    record
        .services
        .iter_mut()
        .for_each(|e| clear(&mut e.provenance));
    record
        .caf_assessments
        .iter_mut()
        .for_each(|e| clear(&mut e.provenance));
    record
        .lead_professionals
        .iter_mut()
        .for_each(|e| clear(&mut e.provenance));
    had
}
