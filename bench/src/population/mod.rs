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
use chrono::NaiveDate;
use contactpoint_proto::v1 as pb;

mod draw;
mod names;
pub mod rng;

use draw::Draw;
use names::{AREAS, BOYS, GIRLS, LONDON_AREAS, SURNAMES};
use rng::{hash, mix, Rng};

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

    /// A twin of `record`: the same surname, date of birth, address and
    /// family, born to the same authority, with another forename of the
    /// same list (a boy's or a girl's), drawn from `salt`.
    pub fn twin(&self, record: &pb::CreateRecordRequest, salt: u64) -> pb::CreateRecordRequest {
        let mut twin = record.clone();
        let mut rng = Rng(mix(salt ^ self.seed));
        if let Some(name) = twin.details.as_mut().and_then(|d| d.name.as_mut()) {
            let first = name.given_names.split(' ').next().unwrap_or("").to_owned();
            let list = if GIRLS.contains(&first.as_str()) {
                GIRLS
            } else {
                BOYS
            };
            let mut other = rng.pick(list);
            while other == first {
                other = rng.pick(list);
            }
            name.given_names = other.to_owned();
        }
        if let Some(details) = twin.details.as_mut() {
            details.former_names.clear();
            details.body_identifiers.clear();
        }
        twin
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

#[cfg(test)]
mod tests {
    use super::draw::nhs_number;
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
