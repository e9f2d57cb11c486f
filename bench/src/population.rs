//! A synthetic population of England's children, for loading nodes and searching them.
//!
//! Each authority's share of `total` follows its kind (a county council holds far more children
//! than a London borough or a unitary; the City of London and the Isles of Scilly hardly any),
//! spread by a per-authority factor. Each record is a pure function of (seed, authority code,
//! index), so the benchmark can rebuild any record it loaded to search for it. A record is a
//! child aged 0 to 17 on `as_of`: a popular forename, a Zipf-weighted surname (with spelling
//! variants such as Smith and Smyth, and some double-barrelled), a home in the authority's town,
//! parents with parental responsibility, the schools and health services the child's age implies
//! and now and then a targeted or sensitive service, a CAF assessment and a lead professional.
//!
//! Every record passes the node's validation (`wire::decode_create`) on the day `as_of`; on a
//! later day a child who has turned 18, or a midwife entry for a baby who has turned one, would
//! not. Postcodes have real areas and a valid shape (not every district exists); telephone
//! numbers are in Ofcom's drama ranges; NHS numbers start with 9, outside the ranges issued to
//! patients in England, and have a valid check digit; e-mail addresses are at example.com.
use std::path::Path;

use anyhow::{bail, Context as _};
use chrono::{Datelike, Days, Months, NaiveDate};
use contactpoint_proto::v1 as pb;

/// One of England's children's services authorities (../shared/data/authorities.csv: code,name;
/// four names are quoted because they contain commas).
#[derive(Clone, Debug)]
pub struct Authority {
    /// GSS code, for example "E06000001".
    pub code: String,
    /// ONS name, for example "Bristol, City of".
    pub name: String,
}

/// Reads authorities.csv (header `code,name`): each line is `CODE,NAME` or `CODE,"NAME, WITH COMMA"`.
pub fn read_authorities(path: &Path) -> anyhow::Result<Vec<Authority>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines().map(str::trim).enumerate();
    if lines
        .next()
        .map(|(_, header)| header.trim_start_matches('\u{feff}'))
        != Some("code,name")
    {
        bail!("{}: the first line must be `code,name`", path.display());
    }
    let mut authorities = Vec::new();
    for (number, line) in lines.filter(|(_, line)| !line.is_empty()) {
        let location = || format!("{}, line {}", path.display(), number + 1);
        let Some((code, name)) = line.split_once(',') else {
            bail!("{}: expected CODE,NAME", location());
        };
        let name = match name.strip_prefix('"') {
            Some(quoted) => match quoted.strip_suffix('"') {
                Some(inner) => inner.replace("\"\"", "\""),
                None => bail!("{}: the quoted name has no closing quote", location()),
            },
            None => name.to_owned(),
        };
        if code.trim().is_empty() || name.trim().is_empty() {
            bail!("{}: the code and the name must not be empty", location());
        }
        let (code, name) = (code.trim().to_owned(), name.trim().to_owned());
        authorities.push(Authority { code, name });
    }
    Ok(authorities)
}

const CITY_OF_LONDON: &str = "E09000001";
const ISLES_OF_SCILLY: &str = "E06000053";

/// A synthetic population: how many records each authority holds, and each record.
pub struct Population {
    seed: u64,
    as_of: NaiveDate,
    authorities: Vec<Authority>,
    sizes: Vec<u64>,
    /// Each authority's town and postcode area, in the order of `authorities`.
    places: Vec<Place>,
    /// Running totals of the surnames' weights (1 / (rank + 10)), in the order of `SURNAMES`.
    surname_weights: Vec<u64>,
}

struct Place {
    town: String,
    area: &'static str,
}

impl Population {
    /// `total` records over `authorities`, deterministic from `seed`; `as_of` is the reference
    /// date: every child is 0 to 17 on it and every date is on or before it.
    pub fn new(seed: u64, total: u64, as_of: NaiveDate, authorities: Vec<Authority>) -> Self {
        let weights: Vec<u64> = authorities.iter().map(|a| weight(seed, &a.code)).collect();
        let surname_weights = (0..SURNAMES.len() as u64)
            .scan(0, |sum, rank| {
                *sum += 1_000_000 / (rank + 10);
                Some(*sum)
            })
            .collect();
        Self {
            seed,
            as_of,
            sizes: apportion(total, &weights),
            places: authorities.iter().map(place).collect(),
            authorities,
            surname_weights,
        }
    }

    pub fn authorities(&self) -> &[Authority] {
        &self.authorities
    }

    /// Records per authority, in the order of [`Population::authorities`], summing exactly to
    /// the total; every authority has at least one if the total allows.
    pub fn sizes(&self) -> &[u64] {
        &self.sizes
    }

    /// The `index`-th record (from 0, below `sizes()[authority]`) of an authority: a pure
    /// function of (seed, authority code, index).
    pub fn record(&self, authority: usize, index: u64) -> pb::CreateRecordRequest {
        let mut rng = Rng(hash(self.seed, &self.authorities[authority].code, index));
        let place = &self.places[authority];
        Draw {
            population: self,
            place,
            as_of: self.as_of,
            rng: &mut rng,
        }
        .record()
    }

    /// All records of one authority, in index order.
    pub fn records(&self, authority: usize) -> impl Iterator<Item = pb::CreateRecordRequest> + '_ {
        (0..self.sizes[authority]).map(move |index| self.record(authority, index))
    }

    fn surname(&self, rng: &mut Rng) -> &'static str {
        let point = rng.below(self.surname_weights.last().copied().unwrap_or(1));
        SURNAMES[self.surname_weights.partition_point(|&sum| sum <= point)]
    }
}

/// An authority's relative size: the children of a typical authority of its kind (from the GSS
/// code's prefix) times a factor of 0.5 to 1.8, skewed like a lognormal about 1: the mean of
/// three uniform draws, stretched more above the middle than below. Integers only, so the sizes
/// are the same on every platform.
fn weight(seed: u64, code: &str) -> u64 {
    let children = match code.get(..3) {
        _ if code == CITY_OF_LONDON || code == ISLES_OF_SCILLY => 500,
        Some("E10") => 240_000, // county councils
        Some("E08") => 72_000,  // metropolitan districts
        Some("E09") => 60_000,  // London boroughs
        _ => 38_000,            // unitary authorities
    };
    let mut rng = Rng(hash(seed, code, u64::MAX));
    let middling = (rng.below(1000) + rng.below(1000) + rng.below(1000)) / 3;
    let permille = if middling < 500 {
        500 + middling
    } else {
        1000 + (middling - 500) * 8 / 5
    };
    children * permille
}

/// Shares `total` in proportion to `weights` by largest remainder (ties to the earlier), then
/// moves one record from the largest to any left with none, if there are enough to go round.
fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum::<u128>().max(1);
    let exact: Vec<u128> = weights
        .iter()
        .map(|&w| u128::from(total) * u128::from(w))
        .collect();
    let mut sizes: Vec<u64> = exact.iter().map(|&e| (e / sum) as u64).collect();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    by_remainder.sort_by(|&a, &b| (exact[b] % sum).cmp(&(exact[a] % sum)).then(a.cmp(&b)));
    let left = total.saturating_sub(sizes.iter().sum());
    for &i in by_remainder.iter().take(left as usize) {
        sizes[i] += 1;
    }
    if total >= sizes.len() as u64 {
        while let Some(empty) = sizes.iter().position(|&size| size == 0) {
            let largest = (0..sizes.len())
                .max_by_key(|&i| (sizes[i], std::cmp::Reverse(i)))
                .expect("an authority");
            sizes[largest] -= 1;
            sizes[empty] += 1;
        }
    }
    sizes
}

/// An authority's town (its ONS name up to any comma: "Bristol, City of" is Bristol) and postcode
/// area (a London one for a London borough), fixed by its code alone.
fn place(authority: &Authority) -> Place {
    let areas = if authority.code.starts_with("E09") {
        LONDON_AREAS
    } else {
        AREAS
    };
    let area = match authority.code.as_str() {
        CITY_OF_LONDON => "EC",
        code => areas[(hash(0, code, 0) % areas.len() as u64) as usize],
    };
    let town = authority.name.split(", ").next().unwrap_or(&authority.name);
    Place {
        town: town.to_owned(),
        area,
    }
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijection that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(seed: u64, code: &str, index: u64) -> u64 {
    let h = code
        .bytes()
        .fold(mix(seed.wrapping_add(GOLDEN_GAMMA)), |h, b| {
            mix(h ^ u64::from(b))
        });
    mix(h ^ mix(index.wrapping_add(GOLDEN_GAMMA)))
}

/// SplitMix64 (Steele, Lea and Flood, 2014), written out rather than taken from the `rand`
/// crate, whose generators and distributions may change output between versions: the same seed
/// must give the same population for as long as benchmark results are compared.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0) by multiply and shift; the bias is negligible for small `n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// From a list in order of popularity: the smaller of two draws, so earlier is likelier.
    fn popular<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let n = items.len() as u64;
        items[self.below(n).min(self.below(n)) as usize]
    }

    /// A day from `first` to `last` inclusive (`first` if `last` is earlier).
    fn between(&mut self, first: NaiveDate, last: NaiveDate) -> NaiveDate {
        let span = last.signed_duration_since(first).num_days().max(0) as u64;
        add_days(first, self.below(span + 1))
    }
}

fn add_days(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_add_days(Days::new(days))
        .expect("a date in range")
}

fn years_before(day: NaiveDate, years: u32) -> NaiveDate {
    day.checked_sub_months(Months::new(12 * years))
        .expect("a date in range")
}

/// Age in whole years on `on`, as the node counts it.
fn age_on(born: NaiveDate, on: NaiveDate) -> i32 {
    on.year() - born.year() - i32::from((on.month(), on.day()) < (born.month(), born.day()))
}

/// 1 September of `year`, when school years begin.
fn september(year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, 9, 1).expect("1 September")
}

/// The year a child starts reception: that of the school year in which they turn five.
fn reception_year(born: NaiveDate) -> i32 {
    born.year() + if born.month() >= 9 { 5 } else { 4 }
}

fn date(day: NaiveDate) -> Option<pb::Date> {
    Some(pb::Date {
        year: day.year(),
        month: day.month(),
        day: day.day(),
    })
}

fn person(given_names: &str, family_name: &str) -> Option<pb::PersonName> {
    let (given_names, family_name) = (given_names.to_owned(), family_name.to_owned());
    Some(pb::PersonName {
        given_names,
        family_name,
    })
}

/// An NHS number: nine digits starting with 9 and a modulus 11 check digit, as "9xx xxx xxxx".
fn nhs_number(rng: &mut Rng) -> String {
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
struct Draw<'a> {
    population: &'a Population,
    place: &'a Place,
    as_of: NaiveDate,
    rng: &'a mut Rng,
}

impl Draw<'_> {
    fn record(&mut self) -> pb::CreateRecordRequest {
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
    fn surname(&mut self) -> String {
        let first = self.population.surname(self.rng);
        let second = self.population.surname(self.rng);
        if self.rng.chance(0.02) && second != first {
            format!("{first}-{second}")
        } else {
            first.to_owned()
        }
    }

    /// A home: "<number> <street> <suffix>".
    fn address(&mut self) -> pb::PostalAddress {
        let number = 1 + self.rng.below(199);
        let street = self.rng.pick(STREETS);
        let suffix = self.rng.pick(STREET_SUFFIXES);
        self.postal_address(format!("{number} {street} {suffix}"))
    }

    /// An address in the authority's town with a postcode in its area: district 1 to 30, then
    /// a digit and two of the letters inward codes use.
    fn postal_address(&mut self, line: String) -> pb::PostalAddress {
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
    fn premises(&mut self, name: &str) -> Option<pb::ContactDetails> {
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
    fn practitioner(&mut self) -> String {
        let forenames = if self.rng.chance(0.8) { WOMEN } else { MEN };
        let forename = self.rng.pick(forenames);
        format!("{forename} {}", self.population.surname(self.rng))
    }

    /// Para 6: one or two parents with parental responsibility from birth, at the child's home
    /// if it is known, mostly with the child's surname (a double-barrelled child's father has
    /// the first part, its mother the second); now and then someone else with care of the child.
    fn contacts(
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

    fn contact(
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
    fn education(&mut self, born: NaiveDate) -> Vec<pb::EducationEntry> {
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

    fn service(
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
    fn services(&mut self, born: NaiveDate) -> (Vec<pb::ServiceInvolvement>, bool) {
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
    fn caf(
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

const INWARD_LETTERS: &[u8; 20] = b"ABDEFGHJLNPQRSTUWXYZ";

#[rustfmt::skip]
const LONDON_AREAS: &[&str] = &[
    "E", "N", "NW", "SE", "SW", "W", "EC", "WC", "BR", "CR", "DA", "EN", "HA", "IG", "KT", "RM",
    "SM", "TW", "UB",
];

#[rustfmt::skip]
const AREAS: &[&str] = &[
    "TS", "NE", "SR", "DH", "DL", "LS", "BD", "HX", "HD", "WF", "S", "DN", "HU", "YO", "M", "OL",
    "BL", "WN", "WA", "L", "CH", "PR", "BB", "LA", "CA", "B", "WV", "WS", "DY", "CV", "ST", "DE",
    "NG", "LE", "LN", "PE", "NN", "MK", "LU", "SG", "AL", "HP", "OX", "RG", "SL", "GU", "BN", "RH",
    "TN", "ME", "CT", "CM", "CO", "IP", "NR", "CB", "SS", "BS", "BA", "GL", "SN", "SP", "SO", "PO",
    "BH", "DT", "EX", "TQ", "PL", "TR", "TA", "HR", "WR", "TF", "SY",
];

/// Popular girls' names (ONS, England and Wales), most popular first.
#[rustfmt::skip]
const GIRLS: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Rosie", "Sophia", "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily", "Ella",
    "Evelyn", "Phoebe", "Sofia", "Evie", "Charlotte", "Harper", "Millie", "Matilda", "Maya",
    "Sophie", "Alice", "Emilia", "Isabelle", "Ruby", "Luna", "Maisie", "Aria", "Penelope", "Mila",
    "Bonnie", "Eva", "Hallie", "Eliza", "Ada", "Violet", "Esme", "Arabella", "Imogen", "Jessica",
    "Delilah", "Thea", "Chloe", "Layla", "Hannah", "Holly", "Ellie", "Lucy", "Amber", "Zara",
    "Aisha", "Maryam", "Fatima",
];

/// Popular boys' names (ONS, England and Wales), most popular first.
#[rustfmt::skip]
const BOYS: &[&str] = &[
    "Muhammad", "Noah", "Oliver", "George", "Leo", "Arthur", "Oscar", "Theodore", "Theo",
    "Freddie", "Henry", "Archie", "Jack", "Alfie", "Charlie", "Thomas", "Jacob", "Teddy", "Finley",
    "Arlo", "Isaac", "Tommy", "Lucas", "Albie", "Harry", "Rory", "Ezra", "Jude", "Edward",
    "Reggie", "Hugo", "Joshua", "William", "Mohammed", "Louie", "Max", "Elijah", "Roman", "Louis",
    "Ronnie", "Jaxon", "Toby", "Ethan", "Harrison", "Sonny", "Frederick", "Dylan", "James",
    "Daniel", "Samuel", "Joseph", "Benjamin", "Logan", "Riley", "Mason", "Adam", "Yusuf",
    "Ibrahim", "Zain", "Kai",
];

/// Forenames of parents and practitioners.
#[rustfmt::skip]
const WOMEN: &[&str] = &[
    "Sarah", "Emma", "Laura", "Rebecca", "Gemma", "Claire", "Rachel", "Hannah", "Amy", "Kelly",
    "Nicola", "Lisa", "Louise", "Victoria", "Stacey", "Jodie", "Natalie", "Samantha", "Katie",
    "Charlotte", "Jennifer", "Zoe", "Nadia", "Priya",
];
#[rustfmt::skip]
const MEN: &[&str] = &[
    "David", "James", "Daniel", "Christopher", "Matthew", "Michael", "Andrew", "Mark", "Paul",
    "Richard", "Stephen", "Thomas", "Robert", "Lee", "Craig", "Ryan", "Adam", "Ben", "Jamie",
    "Liam", "Gareth", "Imran", "Ravi", "Tariq",
];

/// Surnames, commonest first; the rarer spelling of each variant pair (Smyth, Thomson, Browne,
/// Grey, Reed, Read, Philips, Mathews, McDonald, OBrien) comes late.
#[rustfmt::skip]
const SURNAMES: &[&str] = &[
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin",
    "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison",
    "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price",
    "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey",
    "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Khan", "Marshall",
    "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson", "Foster", "Chapman",
    "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain", "Campbell", "Matthews",
    "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd", "Butler", "Russell",
    "Barker", "Fisher", "Stevens", "Jenkins", "Murray", "Dixon", "Harvey", "Graham", "Pearson",
    "Ahmed", "Fletcher", "Walsh", "Kaur", "Gibson", "Howard", "Andrews", "Stewart", "Elliott",
    "Reynolds", "Saunders", "Payne", "Fox", "Ford", "Pearce", "Day", "Brooks", "West", "Lawrence",
    "Cole", "Atkinson", "Bradley", "Spencer", "Gill", "Dawson", "Ball", "Burton", "O'Brien",
    "Watts", "Rose", "Booth", "Perry", "Reid", "Macdonald", "Chowdhury", "Nowak", "Okafor",
    "Smyth", "Thomson", "Browne", "Grey", "Reed", "Read", "Philips", "Mathews", "McDonald",
    "OBrien",
];

/// Street names, also the names of schools, practices and health centres.
#[rustfmt::skip]
const STREETS: &[&str] = &[
    "Church", "Station", "Victoria", "Park", "Mill", "Queen's", "King's", "Albert", "Manor",
    "Grange", "Oakfield", "Meadow", "Highfield", "Springfield", "Greenfield", "Fairfield",
    "Hillside", "Beech", "Elm", "Willow", "Orchard", "Brook", "Woodland", "Ashgrove", "Holly",
    "Cedar", "Chestnut", "Rosewood", "Heather", "Moorland", "Riverside", "Castle", "Abbey",
    "Priory", "Chapel", "Market", "Windmill", "Kingsway", "Northfield", "Westfield",
];

#[rustfmt::skip]
const STREET_SUFFIXES: &[&str] =
    &["Road", "Street", "Close", "Avenue", "Lane", "Drive", "Way", "Crescent", "Gardens"];

#[rustfmt::skip]
const PRIMARY_SCHOOLS: &[&str] = &[
    "Primary School", "Primary Academy", "Community Primary School",
    "Church of England Primary School", "Catholic Primary School", "Infant and Junior School",
];

#[rustfmt::skip]
const SECONDARY_SCHOOLS: &[&str] =
    &["Academy", "High School", "School", "Community College", "Catholic High School"];

#[rustfmt::skip]
const COLLEGES: &[&str] = &["Sixth Form College", "College", "College of Further Education"];

#[rustfmt::skip]
const TARGETED_SERVICES: &[&str] = &[
    "Early Help Family Support", "Speech and Language Therapy", "Youth Justice Service",
    "Special Educational Needs Support Service", "Young Carers Service",
    "Educational Psychology Service", "Children's Occupational Therapy",
];

#[rustfmt::skip]
const SENSITIVE_SERVICES: &[&str] = &[
    "Child and Adolescent Mental Health Service", "Young People's Sexual Health Clinic",
    "Young People's Substance Misuse Service", "Domestic Abuse Support for Young People",
];

#[cfg(test)]
mod tests {
    use super::*;
    use contactpoint_node::wire;

    /// Spellings of one surname that a search must tell apart, or find together.
    #[rustfmt::skip]
    const SPELLING_VARIANTS: &[(&str, &str)] = &[
        ("Smith", "Smyth"), ("Thompson", "Thomson"), ("Clarke", "Clark"), ("Macdonald", "McDonald"),
        ("Phillips", "Philips"), ("Brown", "Browne"), ("Gray", "Grey"), ("Reid", "Reed"),
        ("Reed", "Read"), ("Davies", "Davis"), ("Matthews", "Mathews"), ("O'Brien", "OBrien"),
    ];

    /// Authorities of every kind with more than 250 records in a million.
    #[rustfmt::skip]
    const LARGE: &[&str] = &[
        "E06000001", "E06000010", "E08000003", "E08000035", "E09000030", "E09000033",
        "E10000016", "E10000030",
    ];

    fn authorities() -> Vec<Authority> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/authorities.csv");
        read_authorities(Path::new(path)).expect("the repository's authorities file")
    }

    /// A leap day: 18 years before it there is no 29 February.
    fn as_of() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
    }

    fn position(population: &Population, code: &str) -> usize {
        population
            .authorities()
            .iter()
            .position(|a| a.code == code)
            .expect(code)
    }

    /// The file's 153 authorities are read, quoted names whole; towns drop ", City of".
    #[test]
    fn reads_every_authority_and_quoted_names() {
        let authorities = authorities();
        assert_eq!(authorities.len(), 153);
        let hull = authorities.iter().find(|a| a.code == "E06000010").unwrap();
        assert_eq!(hull.name, "Kingston upon Hull, City of");
        assert_eq!(place(hull).town, "Kingston upon Hull");
    }

    /// The sizes add up to exactly the total asked for, and no authority is left empty.
    #[test]
    fn sizes_sum_exactly_to_the_total() {
        for total in [1_000, 153, 100_000, 11_000_000] {
            let population = Population::new(7, total, as_of(), authorities());
            assert_eq!(population.sizes().len(), 153);
            assert_eq!(population.sizes().iter().sum::<u64>(), total, "{total}");
            assert!(population.sizes().iter().all(|&size| size >= 1), "{total}");
        }
    }

    /// A county like Kent holds far more children than the City of London or Scilly.
    #[test]
    fn counties_are_larger_than_the_tiny_authorities() {
        let population = Population::new(7, 100_000, as_of(), authorities());
        let size = |code: &str| population.sizes()[position(&population, code)];
        assert!(size("E10000016") > 10 * size(CITY_OF_LONDON));
        assert!(size("E10000016") > 10 * size(ISLES_OF_SCILLY));
    }

    /// A record regenerates identically, and differs by index, authority and seed.
    #[test]
    fn records_are_pure_functions_of_seed_authority_and_index() {
        let a = Population::new(42, 10_000, as_of(), authorities());
        let b = Population::new(42, 10_000, as_of(), authorities());
        assert_eq!(a.sizes(), b.sizes());
        for index in [0, 1, 17] {
            assert_eq!(a.record(3, index), b.record(3, index));
        }
        assert_ne!(a.record(3, 0), a.record(3, 1));
        assert_ne!(a.record(3, 0), a.record(4, 0));
        let other_seed = Population::new(43, 10_000, as_of(), authorities());
        assert_ne!(a.record(3, 0), other_seed.record(3, 0));
        assert_eq!(a.records(3).nth(5), Some(a.record(3, 5)));
    }

    /// Records from authorities of every kind pass the node's own validation on `as_of`, are of
    /// children under 18, and among their surnames are two spellings of one name.
    #[test]
    fn records_pass_the_nodes_validation() {
        let population = Population::new(2024, 1_000_000, as_of(), authorities());
        let context = wire::Context { today: as_of() };
        let mut surnames = std::collections::HashSet::new();
        let mut checked = 0;
        for code in LARGE
            .iter()
            .copied()
            .chain([CITY_OF_LONDON, ISLES_OF_SCILLY])
        {
            let authority = position(&population, code);
            for (index, record) in population.records(authority).take(250).enumerate() {
                let decoded = wire::decode_create(&record, &context)
                    .unwrap_or_else(|invalid| panic!("{code} record {index}: {invalid}"));
                assert!(wire::age_on(decoded.details.date_of_birth, as_of()) < 18);
                let family_name = &decoded.details.name.family_name;
                surnames.extend(family_name.split('-').map(str::to_owned));
                checked += 1;
            }
        }
        assert!(checked >= 2_000, "{checked}");
        let both = |(a, b): &(&str, &str)| surnames.contains(*a) && surnames.contains(*b);
        assert!(SPELLING_VARIANTS.iter().any(both), "{surnames:?}");
    }

    /// NHS numbers carry a valid modulus 11 check digit.
    #[test]
    fn nhs_numbers_are_valid() {
        let mut rng = Rng(1);
        for _ in 0..1_000 {
            let number = nhs_number(&mut rng);
            let digits: Vec<u64> = number
                .chars()
                .filter_map(|c| c.to_digit(10))
                .map(u64::from)
                .collect();
            let sum: u64 = (0..9).map(|i| digits[i] * (10 - i as u64)).sum();
            assert_eq!(
                (digits.len(), (11 - sum % 11) % 11),
                (10, digits[9]),
                "{number}"
            );
        }
    }
}
