//! The matching benchmark's error model: what a practitioner is told, or
//! mishears, of a child, one kind at a time, two at once, and mixed as the
//! FEBRL generator mixes them (Christen, "Probabilistic data generation for
//! deduplication and data linkage", 2005: typographical errors in most
//! corrupted fields, phonetic ones in some, whole-value changes in a few).
//! Each kind applies where it can (a double-barrelled surname, a forename
//! with a nickname, a day of 12 or less) and is otherwise not drawn.
use chrono::{Datelike, NaiveDate};
use contactpoint_matching::keys::surname_key;
use contactpoint_matching::nicknames::Nicknames;

use crate::population::rng::Rng;

/// What the searcher asks with.
#[derive(Debug, Clone)]
pub(super) struct Told {
    pub surname: String,
    pub forename: String,
    pub date_of_birth: Option<NaiveDate>,
    pub year_of_birth: Option<i32>,
    pub postcode: String,
}

/// What the record holds that the errors draw on.
pub(super) struct Held<'a> {
    pub former_surnames: &'a [String],
    /// Another child's surname, for a surname got wholly wrong.
    pub other_surname: Option<&'a str>,
    pub postcode: Option<&'a str>,
    pub as_of: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    SurnameInserted,
    SurnameDeleted,
    SurnameChanged,
    SurnameSwapped,
    SurnameSounded,
    SurnameMacOrApostrophe,
    SurnamePart,
    SurnameFormer,
    SurnameOther,
    ForenameNickname,
    ForenameMisspelt,
    DateSwapped,
    DateDigit,
    DateYearOnly,
    YearAndDistrict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Surname,
    Forename,
    Date,
}

impl Kind {
    pub(super) const ALL: [Kind; 15] = [
        Kind::SurnameInserted,
        Kind::SurnameDeleted,
        Kind::SurnameChanged,
        Kind::SurnameSwapped,
        Kind::SurnameSounded,
        Kind::SurnameMacOrApostrophe,
        Kind::SurnamePart,
        Kind::SurnameFormer,
        Kind::SurnameOther,
        Kind::ForenameNickname,
        Kind::ForenameMisspelt,
        Kind::DateSwapped,
        Kind::DateDigit,
        Kind::DateYearOnly,
        Kind::YearAndDistrict,
    ];

    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::SurnameInserted => "surname: a letter inserted",
            Kind::SurnameDeleted => "surname: a letter left out",
            Kind::SurnameChanged => "surname: a letter changed",
            Kind::SurnameSwapped => "surname: two letters swapped",
            Kind::SurnameSounded => "surname: spelt as it sounds",
            Kind::SurnameMacOrApostrophe => "surname: Mc for Mac, or no apostrophe",
            Kind::SurnamePart => "surname: one part of a double-barrelled one",
            Kind::SurnameFormer => "surname: a former one",
            Kind::SurnameOther => "surname: another altogether (a new family's, unrecorded)",
            Kind::ForenameNickname => "forename: a nickname",
            Kind::ForenameMisspelt => "forename: a letter wrong",
            Kind::DateSwapped => "date of birth: day and month swapped",
            Kind::DateDigit => "date of birth: one digit wrong",
            Kind::DateYearOnly => "date of birth: only the year",
            Kind::YearAndDistrict => "only the year, and the postcode's district",
        }
    }

    pub(super) fn field(self) -> Field {
        match self {
            Kind::ForenameNickname | Kind::ForenameMisspelt => Field::Forename,
            Kind::DateSwapped | Kind::DateDigit | Kind::DateYearOnly | Kind::YearAndDistrict => {
                Field::Date
            }
            _ => Field::Surname,
        }
    }

    /// Applies the error to `told`; false (and `told` unchanged) where it
    /// cannot apply.
    pub(super) fn apply(self, told: &mut Told, held: &Held<'_>, rng: &mut Rng) -> bool {
        let mut changed = told.clone();
        let applied = self.change(&mut changed, held, rng).is_some();
        if applied {
            *told = changed;
        }
        applied
    }

    fn change(self, told: &mut Told, held: &Held<'_>, rng: &mut Rng) -> Option<()> {
        match self {
            Kind::SurnameInserted => told.surname = typo(&told.surname, rng, Typo::Insert)?,
            Kind::SurnameDeleted => told.surname = typo(&told.surname, rng, Typo::Delete)?,
            Kind::SurnameChanged => told.surname = typo(&told.surname, rng, Typo::Change)?,
            Kind::SurnameSwapped => told.surname = typo(&told.surname, rng, Typo::Swap)?,
            Kind::SurnameSounded => told.surname = sounded(&told.surname, rng)?,
            Kind::SurnameMacOrApostrophe => told.surname = mac_or_apostrophe(&told.surname)?,
            Kind::SurnamePart => {
                let parts: Vec<&str> = told.surname.split('-').collect();
                if parts.len() < 2 {
                    return None;
                }
                told.surname = parts[rng.below(parts.len() as u64) as usize].to_owned();
            }
            Kind::SurnameFormer => {
                told.surname = held
                    .former_surnames
                    .first()
                    .filter(|former| surname_key(former) != surname_key(&told.surname))?
                    .clone();
            }
            Kind::SurnameOther => {
                let other = held.other_surname?;
                if surname_key(other) == surname_key(&told.surname) {
                    return None;
                }
                told.surname = other.to_owned();
            }
            Kind::ForenameNickname => {
                let variants = Nicknames::shipped().variants(&surname_key(&told.forename));
                if variants.len() < 2 {
                    return None;
                }
                told.forename = variants[1 + rng.below(variants.len() as u64 - 1) as usize].clone();
            }
            Kind::ForenameMisspelt => {
                let kinds = [Typo::Insert, Typo::Delete, Typo::Change, Typo::Swap];
                let kind = kinds[rng.below(4) as usize];
                told.forename = typo(&told.forename, rng, kind)?;
            }
            Kind::DateSwapped => {
                let born = told.date_of_birth?;
                if born.day() == born.month() {
                    return None;
                }
                told.date_of_birth = Some(NaiveDate::from_ymd_opt(
                    born.year(),
                    born.day(),
                    born.month(),
                )?);
            }
            Kind::DateDigit => {
                let born = told.date_of_birth?;
                told.date_of_birth = Some((0..20).find_map(|_| {
                    let mut digits: Vec<u8> = born.format("%Y%m%d").to_string().into_bytes();
                    let at = rng.below(8) as usize;
                    let digit = b'0' + rng.below(10) as u8;
                    if digits[at] == digit {
                        return None;
                    }
                    digits[at] = digit;
                    let wrong =
                        NaiveDate::parse_from_str(std::str::from_utf8(&digits).ok()?, "%Y%m%d")
                            .ok()?;
                    (wrong <= held.as_of && wrong.year() >= held.as_of.year() - 25).then_some(wrong)
                })?);
            }
            Kind::DateYearOnly => {
                told.year_of_birth = Some(told.date_of_birth.take()?.year());
            }
            Kind::YearAndDistrict => {
                told.postcode = held.postcode?.split(' ').next()?.to_owned();
                told.year_of_birth = Some(told.date_of_birth.take()?.year());
            }
        }
        Some(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Typo {
    Insert,
    Delete,
    Change,
    Swap,
}

/// One typing error, never in the first letter (people rarely mishear it,
/// and FEBRL's typos are spread over the rest likewise), on a name of three
/// letters or more.
fn typo(name: &str, rng: &mut Rng, typo: Typo) -> Option<String> {
    let mut letters: Vec<char> = name.chars().collect();
    if letters.len() < 3 {
        return None;
    }
    let at = 1 + rng.below(letters.len() as u64 - 1) as usize;
    let random = (b'a' + rng.below(26) as u8) as char;
    match typo {
        Typo::Insert => letters.insert(at, random),
        Typo::Delete if letters.len() > 3 => {
            letters.remove(at);
        }
        Typo::Delete => return None,
        Typo::Change if !letters[at].eq_ignore_ascii_case(&random) => letters[at] = random,
        Typo::Change => {
            letters[at] = if random == 'z' {
                'a'
            } else {
                (random as u8 + 1) as char
            }
        }
        Typo::Swap => {
            let at = at.min(letters.len() - 2);
            if letters[at] == letters[at + 1] {
                return None;
            }
            letters.swap(at, at + 1);
        }
    }
    Some(letters.into_iter().collect())
}

/// Spellings that sound alike, as a caller's name is written down.
const SOUNDS: &[(&str, &str)] = &[
    ("ph", "f"),
    ("f", "ph"),
    ("ck", "k"),
    ("ey", "y"),
    ("y", "ie"),
    ("ie", "y"),
    ("ou", "ow"),
    ("ee", "ea"),
    ("ea", "ee"),
    ("tt", "t"),
    ("ll", "l"),
    ("nn", "n"),
    ("ss", "s"),
    ("th", "t"),
    ("c", "k"),
    ("i", "y"),
    ("s", "z"),
    ("w", "wh"),
    ("son", "sen"),
    ("er", "a"),
];

fn sounded(name: &str, rng: &mut Rng) -> Option<String> {
    let lower = name.to_lowercase();
    let fitting: Vec<(&str, &str)> = SOUNDS
        .iter()
        .copied()
        .filter(|(from, _)| lower[1..].contains(from))
        .collect();
    if fitting.is_empty() {
        return None;
    }
    let (from, to) = fitting[rng.below(fitting.len() as u64) as usize];
    let at = 1 + lower[1..].find(from)?;
    let mut out = String::new();
    out.push_str(&name[..at]);
    out.push_str(to);
    out.push_str(&name[at + from.len()..]);
    Some(out)
}

fn mac_or_apostrophe(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("Mac") {
        Some(format!("Mc{rest}"))
    } else if let Some(rest) = name.strip_prefix("Mc") {
        Some(format!("Mac{rest}"))
    } else if name.contains('\'') {
        Some(name.replace('\'', ""))
    } else {
        None
    }
}
