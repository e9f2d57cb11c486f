//! The drawing of one record: a child of the authority's place on the day
//! `as_of`, with their family, schools, health services and, now and then, a
//! targeted or sensitive service, a CAF assessment and a lead professional;
//! every record one the node's validation accepts on that day.
use chrono::{Datelike, Days, Months, NaiveDate};
use contactpoint_proto::v1 as pb;

use super::names::*;
use super::rng::Rng;
use super::{Place, Population};

pub(super) fn add_days(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_add_days(Days::new(days))
        .expect("a date in range")
}

pub(super) fn years_before(day: NaiveDate, years: u32) -> NaiveDate {
    day.checked_sub_months(Months::new(12 * years))
        .expect("a date in range")
}

/// Age in whole years on `on`, as the node counts it.
pub(super) fn age_on(born: NaiveDate, on: NaiveDate) -> i32 {
    on.year() - born.year() - i32::from((on.month(), on.day()) < (born.month(), born.day()))
}

/// 1 September of `year`, when school years begin.
pub(super) fn september(year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, 9, 1).expect("1 September")
}

/// The year a child starts reception: that of the school year in which they turn five.
pub(super) fn reception_year(born: NaiveDate) -> i32 {
    born.year() + if born.month() >= 9 { 5 } else { 4 }
}

pub(super) fn date(day: NaiveDate) -> Option<pb::Date> {
    Some(pb::Date {
        year: day.year(),
        month: day.month(),
        day: day.day(),
    })
}

pub(super) fn person(given_names: &str, family_name: &str) -> Option<pb::PersonName> {
    let (given_names, family_name) = (given_names.to_owned(), family_name.to_owned());
    Some(pb::PersonName {
        given_names,
        family_name,
    })
}

/// An NHS number: nine digits starting with 9 and a modulus 11 check digit, as "9xx xxx xxxx".
pub(super) fn nhs_number(rng: &mut Rng) -> String {
    loop {
        let mut digits = [9u64; 10];
        for digit in &mut digits[1..9] {
            *digit = rng.below(10);
        }
        let sum: u64 = (0..9).map(|i| digits[i] * (10 - i as u64)).sum();
        digits[9] = (11 - sum % 11) % 11;
        if digits[9] == 10 {
            continue; // no number has this stem
        }
        let text: String = digits.iter().map(|&d| char::from(b'0' + d as u8)).collect();
        return format!("{} {} {}", &text[..3], &text[3..6], &text[6..]);
    }
}

/// The drawing of one record: the population's lists, the authority's place, and the generator.
pub(super) struct Draw<'a> {
    pub(super) population: &'a Population,
    pub(super) place: &'a Place,
    pub(super) as_of: NaiveDate,
    pub(super) rng: &'a mut Rng,
}

impl Draw<'_> {
    pub(super) fn record(&mut self) -> pb::CreateRecordRequest {
        let as_of = self.as_of;
        let girl = self.rng.chance(0.49);
        let forenames = if girl { GIRLS } else { BOYS };
        let mut given_names = self.rng.popular(forenames).to_owned();
        if self.rng.chance(0.3) {
            let middle = self.rng.pick(forenames);
            if middle != given_names {
                given_names = format!("{given_names} {middle}");
            }
        }
        let family_name = self.surname();
        let gender = match (self.rng.chance(0.01), girl) {
            (true, _) => pb::Gender::NotSpecified,
            (false, true) => pb::Gender::Female,
            (false, false) => pb::Gender::Male,
        };
        // From the day after the 18th birthday of a child born 18 years before `as_of` (on a
        // leap day, 28 February): every child is 0 to 17.
        let born = self
            .rng
            .between(add_days(years_before(as_of, 18), 1), as_of);
        let home = self.address();
        use pb::whereabouts::State;
        let (state, household) = match self.rng.below(1000) {
            0..=5 => (State::LastKnownAddress(home), None),
            6..=9 => (State::NoKnownAddress(pb::NoKnownAddress {}), None),
            _ => (State::CurrentAddress(home.clone()), Some(home)),
        };
        let mut former_names = vec![];
        if self.rng.chance(0.03) {
            let mut previous = self.surname();
            if previous == family_name {
                previous = self.surname();
            }
            let ceased_on = self.rng.between(add_days(born, 1).min(as_of), as_of);
            let name = person(&given_names, &previous);
            former_names.push(pb::FormerName {
                name,
                ceased_on: date(ceased_on),
            });
        }
        let mut body_identifiers = vec![];
        if self.rng.chance(0.7) {
            body_identifiers.push(pb::BodyIdentifier {
                body: "NHS England".into(),
                scheme: "NHS number".into(),
                value: nhs_number(self.rng),
            });
        }
        let details = pb::RecordDetails {
            category: pb::PersonCategory::Child as i32,
            name: person(&given_names, &family_name),
            former_names,
            whereabouts: Some(pb::Whereabouts { state: Some(state) }),
            gender: gender as i32,
            date_of_birth: date(born),
            body_identifiers,
            ..Default::default()
        };
        let contacts = self.contacts(&family_name, born, household);
        let education = self.education(born);
        let (services, targeted) = self.services(born);
        let (caf_assessments, lead_professionals) = self.caf(born, targeted);
        pb::CreateRecordRequest {
            details: Some(details),
            contacts,
            education,
            services,
            caf_assessments,
            lead_professionals,
        }
    }

    /// A surname, about one in fifty double-barrelled.
    pub(super) fn surname(&mut self) -> String {
        let first = self.population.surname(self.rng);
        let second = self.population.surname(self.rng);
        if self.rng.chance(0.02) && second != first {
            format!("{first}-{second}")
        } else {
            first.to_owned()
        }
    }

    /// A home: "<number> <street> <suffix>".
    pub(super) fn address(&mut self) -> pb::PostalAddress {
        let number = 1 + self.rng.below(199);
        let street = self.rng.pick(STREETS);
        let suffix = self.rng.pick(STREET_SUFFIXES);
        self.postal_address(format!("{number} {street} {suffix}"))
    }

    /// An address in the authority's town with a postcode in its area: district 1 to 30, then
    /// a digit and two of the letters inward codes use.
    pub(super) fn postal_address(&mut self, line: String) -> pb::PostalAddress {
        let district = 1 + self.rng.below(30);
        let sector = self.rng.below(10);
        let unit: String = (0..2)
            .map(|_| char::from(INWARD_LETTERS[self.rng.below(20) as usize]))
            .collect();
        pb::PostalAddress {
            lines: vec![line],
            town: self.place.town.clone(),
            postcode: format!("{}{district} {sector}{unit}", self.place.area),
        }
    }

    /// An organisation's details: premises on a named street, and a landline.
    pub(super) fn premises(&mut self, name: &str) -> Option<pb::ContactDetails> {
        let line = format!(
            "{name}, {} {}",
            self.rng.pick(STREETS),
            self.rng.pick(STREET_SUFFIXES)
        );
        Some(pb::ContactDetails {
            address: Some(self.postal_address(line)),
            telephone: format!("01632 960{:03}", self.rng.below(1000)),
            email: String::new(),
        })
    }

    /// A practitioner's name: most are women.
    pub(super) fn practitioner(&mut self) -> String {
        let forenames = if self.rng.chance(0.8) { WOMEN } else { MEN };
        let forename = self.rng.pick(forenames);
        format!("{forename} {}", self.population.surname(self.rng))
    }

    /// Para 6: one or two parents with parental responsibility from birth, at the child's home
    /// if it is known, mostly with the child's surname (a double-barrelled child's father has
    /// the first part, its mother the second); now and then someone else with care of the child.
    pub(super) fn contacts(
        &mut self,
        family_name: &str,
        born: NaiveDate,
        home: Option<pb::PostalAddress>,
    ) -> Vec<pb::Contact> {
        use pb::contact::Relationship;
        let (fathers, mothers) = family_name
            .split_once('-')
            .unwrap_or((family_name, family_name));
        let parents: &[bool] = match (self.rng.chance(0.6), self.rng.chance(0.9)) {
            (true, _) => &[true, false][..],
            (false, true) => &[true][..],
            (false, false) => &[false][..],
        };
        let mut contacts = Vec::new();
        for &mother in parents {
            let given = self.rng.pick(if mother { WOMEN } else { MEN });
            let family = if self.rng.chance(0.85) {
                (if mother { mothers } else { fathers }).to_owned()
            } else {
                self.surname()
            };
            let relationship = Relationship::ParentalResponsibility;
            contacts.push(self.contact(relationship, given, &family, born, home.clone()));
        }
        if self.rng.chance(0.03) {
            let (given, family) = (self.rng.pick(WOMEN), self.surname());
            let (since, address) = (self.rng.between(born, self.as_of), self.address());
            let relationship = Relationship::HasCareOfChild;
            contacts.push(self.contact(relationship, given, &family, since, Some(address)));
        }
        contacts
    }

    pub(super) fn contact(
        &mut self,
        relationship: pb::contact::Relationship,
        given: &str,
        family: &str,
        since: NaiveDate,
        address: Option<pb::PostalAddress>,
    ) -> pb::Contact {
        let telephone = if self.rng.chance(0.7) {
            format!("07700 900{:03}", self.rng.below(1000))
        } else {
            format!("01632 960{:03}", self.rng.below(1000))
        };
        let mut email = String::new();
        if self.rng.chance(0.3) {
            let local = format!("{given}.{family}").replace(|c: char| !c.is_alphanumeric(), ".");
            email = format!("{}@example.com", local.to_lowercase());
        }
        pb::Contact {
            relationship: relationship as i32,
            name: person(given, family),
            contact: Some(pb::ContactDetails {
                address,
                telephone,
                email,
            }),
            started_on: date(since),
            ..Default::default()
        }
    }

    /// Para 7: reception from 1 September of the school year in which the child turns five,
    /// secondary school seven years later and (for most) college five years after that, each
    /// earlier one ended on 20 July before the next began.
    pub(super) fn education(&mut self, born: NaiveDate) -> Vec<pb::EducationEntry> {
        let reception = reception_year(born);
        let stages = [
            (reception, PRIMARY_SCHOOLS),
            (reception + 7, SECONDARY_SCHOOLS),
        ];
        let college = (reception + 12, COLLEGES);
        let mut education: Vec<pb::EducationEntry> = Vec::new();
        for (year, kinds) in stages
            .into_iter()
            .chain(self.rng.chance(0.9).then_some(college))
        {
            if september(year) > self.as_of {
                break;
            }
            if let Some(earlier) = education.last_mut() {
                earlier.ended_on = NaiveDate::from_ymd_opt(year, 7, 20).and_then(date);
            }
            let street = self.rng.pick(STREETS);
            let name = format!("{street} {}", self.rng.pick(kinds));
            education.push(pb::EducationEntry {
                setting: pb::education_entry::Setting::EducationalInstitution as i32,
                provider_contact: self.premises(&name),
                provider_name: name,
                started_on: date(september(year)),
                ..Default::default()
            });
        }
        education
    }

    pub(super) fn service(
        &mut self,
        kind: pb::ServiceKind,
        provider_name: String,
        started_on: NaiveDate,
        archive_after_years: u32,
    ) -> pb::ServiceInvolvement {
        use pb::ServiceKind as Kind;
        // A practitioner works from a health centre; a practice or a service from its own premises.
        let premises = match kind {
            Kind::HealthVisitor | Kind::SchoolNurse | Kind::Midwife => {
                format!("{} Health Centre", self.rng.pick(STREETS))
            }
            _ => provider_name.clone(),
        };
        pb::ServiceInvolvement {
            kind: kind as i32,
            provider_contact: self.premises(&premises),
            provider_name,
            started_on: date(started_on),
            archive_after_years,
            ..Default::default()
        }
    }

    /// Paras 8, 9 and 11 to 15: a GP practice from birth for most (no archive period, para 15
    /// does not apply); a midwife from pregnancy for some babies; the health visitor from the
    /// new birth visit under five; a school nurse for some at school; and for about one in
    /// twelve a targeted service of the last three years, sensitive for some over twelve (with
    /// consent or for significant harm). Also says whether a targeted service was recorded.
    pub(super) fn services(&mut self, born: NaiveDate) -> (Vec<pb::ServiceInvolvement>, bool) {
        use pb::ServiceKind as Kind;
        let as_of = self.as_of;
        let age = age_on(born, as_of);
        let mut services = Vec::new();
        if self.rng.chance(0.95) {
            let street = self.rng.pick(STREETS);
            let practice = self
                .rng
                .pick(&["Surgery", "Medical Practice", "Health Centre"]);
            services.push(self.service(
                Kind::PrimaryMedical,
                format!("The {street} {practice}"),
                born,
                0,
            ));
        }
        if age < 1 && self.rng.chance(0.6) {
            let name = self.practitioner();
            let mut midwife =
                self.service(Kind::Midwife, name, add_days(years_before(born, 1), 160), 5);
            let discharged = add_days(born, 28);
            midwife.ended_on = if discharged <= as_of {
                date(discharged)
            } else {
                None
            };
            services.push(midwife);
        }
        if age < 5 && self.rng.chance(0.9) {
            let visited = add_days(born, 10 + self.rng.below(5)).min(as_of);
            let name = self.practitioner();
            services.push(self.service(Kind::HealthVisitor, name, visited, 5));
        }
        let school = september(reception_year(born));
        if school <= as_of && self.rng.chance(0.2) {
            let since = self.rng.between(school, as_of);
            let name = self.practitioner();
            services.push(self.service(Kind::SchoolNurse, name, since, 3));
        }
        let targeted = self.rng.chance(0.08);
        if targeted {
            let sensitive = age >= 12 && self.rng.chance(0.3);
            let name = self.rng.pick(if sensitive {
                SENSITIVE_SERVICES
            } else {
                TARGETED_SERVICES
            });
            let since = self.rng.between(born.max(years_before(as_of, 3)), as_of);
            let years = 1 + self.rng.below(5) as u32;
            let mut service =
                self.service(Kind::SpecialistOrTargeted, name.to_owned(), since, years);
            if sensitive {
                service.sensitive = true;
                service.sensitive_ground = if self.rng.chance(0.75) {
                    pb::SensitiveGround::Consent as i32
                } else {
                    pb::SensitiveGround::SignificantHarm as i32
                };
            }
            if self.rng.chance(0.4) {
                service.ended_on = date(self.rng.between(since, as_of));
            }
            services.push(service);
        }
        (services, targeted)
    }

    /// Paras 10 and 16: a CAF assessment for some children (more often with a targeted
    /// service), its assessor often the lead professional from that day.
    pub(super) fn caf(
        &mut self,
        born: NaiveDate,
        targeted: bool,
    ) -> (Vec<pb::CafAssessment>, Vec<pb::LeadProfessional>) {
        if !self.rng.chance(if targeted { 0.3 } else { 0.01 }) {
            return (vec![], vec![]);
        }
        let assessor = self.practitioner();
        let body = format!("{} Early Help Service", self.place.town);
        let contact = self.premises(&body);
        let assessed_on = self
            .rng
            .between(born.max(years_before(self.as_of, 3)), self.as_of);
        let completed = self
            .rng
            .chance(0.5)
            .then(|| self.rng.between(assessed_on, self.as_of));
        let caf = pb::CafAssessment {
            assessor_name: assessor.clone(),
            assessor_contact: contact.clone(),
            assessing_body: body,
            assessed_on: date(assessed_on),
            actions_completed_on: completed.and_then(date),
            ..Default::default()
        };
        let lead = self.rng.chance(0.7).then(|| pb::LeadProfessional {
            capacity: pb::lead_professional::Capacity::CafAssessor as i32,
            name: assessor,
            contact,
            started_on: date(assessed_on),
            ended_on: completed.and_then(date),
            ..Default::default()
        });
        (vec![caf], lead.into_iter().collect())
    }
}
