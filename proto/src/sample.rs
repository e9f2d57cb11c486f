//! Sample records for the demonstration and the tests: fictional children,
//! with every paragraph of Schedule 1 filled in where the sample says so.
use crate::v1::*;

/// A date for a request.
pub fn date(year: i32, month: u32, day: u32) -> Date {
    Date { year, month, day }
}

fn address(line: &str, town: &str, postcode: &str) -> PostalAddress {
    PostalAddress {
        lines: vec![line.to_owned()],
        town: town.to_owned(),
        postcode: postcode.to_owned(),
    }
}

fn contact(line: &str, town: &str, postcode: &str, telephone: &str) -> Option<ContactDetails> {
    Some(ContactDetails {
        address: Some(address(line, town, postcode)),
        telephone: telephone.to_owned(),
        email: String::new(),
    })
}

/// The details of a child with a current address.
pub fn child(given: &str, family: &str, born: Date, postcode: &str) -> RecordDetails {
    RecordDetails {
        category: PersonCategory::Child as i32,
        name: Some(PersonName {
            given_names: given.to_owned(),
            family_name: family.to_owned(),
        }),
        former_names: vec![],
        whereabouts: Some(Whereabouts {
            state: Some(whereabouts::State::CurrentAddress(address(
                "1 High Street",
                "Hartlepool",
                postcode,
            ))),
        }),
        gender: Gender::NotSpecified as i32,
        date_of_birth: Some(born),
        date_of_death: None,
        consent: None,
        body_identifiers: vec![],
        metadata: vec![],
    }
}

/// A request creating a child with a current address and no entries.
pub fn child_request(given: &str, family: &str, born: Date, postcode: &str) -> CreateRecordRequest {
    CreateRecordRequest {
        details: Some(child(given, family, born, postcode)),
        ..Default::default()
    }
}

/// A child record holding every paragraph of Schedule 1 that a request can
/// carry (5 and 19 are the node's to assign). `born` must be within the last
/// year so that a midwife (para 13) may be recorded; entries start on `born`.
pub fn every_paragraph(born: Date) -> CreateRecordRequest {
    let mut details = child("Amelia Rose", "Hartley", born, "TS24 8AH");
    details.former_names = vec![FormerName {
        name: Some(PersonName {
            given_names: "Amelia".into(),
            family_name: "Baby Hartley".into(),
        }),
        ceased_on: Some(born),
    }];
    details.gender = Gender::Female as i32;
    details.body_identifiers = vec![BodyIdentifier {
        body: "NHS England".into(),
        scheme: "NHS number".into(),
        value: "943 476 5919".into(),
    }];
    details.metadata = vec![MetadataEntry {
        paragraph: 2,
        key: "address_source".into(),
        value: "GP registration".into(),
    }];
    CreateRecordRequest {
        details: Some(details),
        contacts: vec![Contact {
            provenance: None,
            entry_id: 0,
            relationship: contact::Relationship::ParentalResponsibility as i32,
            name: Some(PersonName {
                given_names: "Joanne".into(),
                family_name: "Hartley".into(),
            }),
            contact: contact("1 High Street", "Hartlepool", "TS24 8AH", "01429 000001"),
            started_on: Some(born),
            ended_on: None,
        }],
        education: vec![EducationEntry {
            provenance: None,
            entry_id: 0,
            setting: education_entry::Setting::OtherProvider as i32,
            provider_name: "Little Acorns Nursery".into(),
            provider_contact: contact("5 Park Road", "Hartlepool", "TS26 9HU", "01429 000002"),
            started_on: Some(born),
            ended_on: None,
        }],
        services: vec![
            ServiceInvolvement {
                provenance: None,
                entry_id: 0,
                kind: ServiceKind::PrimaryMedical as i32,
                provider_name: "Headland Medical Practice".into(),
                provider_contact: contact(
                    "2 Marine Drive",
                    "Hartlepool",
                    "TS24 0PB",
                    "01429 000003",
                ),
                sensitive: false,
                sensitive_ground: 0,
                started_on: Some(born),
                ended_on: None,
                archive_after_years: 0,
                archived_on: None,
            },
            ServiceInvolvement {
                provenance: None,
                entry_id: 0,
                kind: ServiceKind::SpecialistOrTargeted as i32,
                provider_name: "Young Minds Service".into(),
                provider_contact: contact(
                    "9 Church Street",
                    "Hartlepool",
                    "TS24 7DJ",
                    "01429 000004",
                ),
                sensitive: true,
                sensitive_ground: SensitiveGround::Consent as i32,
                started_on: Some(born),
                ended_on: Some(born),
                archive_after_years: 3,
                archived_on: None,
            },
            ServiceInvolvement {
                provenance: None,
                entry_id: 0,
                kind: ServiceKind::HealthVisitor as i32,
                provider_name: "Sam Patel".into(),
                provider_contact: contact(
                    "Health Centre, 3 Victoria Road",
                    "Hartlepool",
                    "TS26 8DB",
                    "01429 000005",
                ),
                sensitive: false,
                sensitive_ground: 0,
                started_on: Some(born),
                ended_on: None,
                archive_after_years: 2,
                archived_on: None,
            },
            ServiceInvolvement {
                provenance: None,
                entry_id: 0,
                kind: ServiceKind::SchoolNurse as i32,
                provider_name: "Chris Walker".into(),
                provider_contact: contact(
                    "Health Centre, 3 Victoria Road",
                    "Hartlepool",
                    "TS26 8DB",
                    "01429 000006",
                ),
                sensitive: false,
                sensitive_ground: 0,
                started_on: Some(born),
                ended_on: None,
                archive_after_years: 1,
                archived_on: None,
            },
            ServiceInvolvement {
                provenance: None,
                entry_id: 0,
                kind: ServiceKind::Midwife as i32,
                provider_name: "Morgan Lee".into(),
                provider_contact: contact(
                    "University Hospital, Holdforth Road",
                    "Hartlepool",
                    "TS24 9AH",
                    "01429 000007",
                ),
                sensitive: false,
                sensitive_ground: 0,
                started_on: Some(born),
                ended_on: None,
                archive_after_years: 5,
                archived_on: None,
            },
        ],
        caf_assessments: vec![CafAssessment {
            provenance: None,
            entry_id: 0,
            assessor_name: "Alex Green".into(),
            assessor_contact: contact(
                "Civic Centre, Victoria Road",
                "Hartlepool",
                "TS24 8AY",
                "01429 000008",
            ),
            assessing_body: "Hartlepool Borough Council".into(),
            assessed_on: Some(born),
            actions_completed_on: Some(born),
        }],
        lead_professionals: vec![LeadProfessional {
            provenance: None,
            entry_id: 0,
            capacity: lead_professional::Capacity::HealthVisitorSchoolNurseOrMidwife as i32,
            name: "Sam Patel".into(),
            contact: contact(
                "Health Centre, 3 Victoria Road",
                "Hartlepool",
                "TS26 8DB",
                "01429 000005",
            ),
            started_on: Some(born),
            ended_on: None,
        }],
    }
}
