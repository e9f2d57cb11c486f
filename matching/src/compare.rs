//! Comparison levels: how well each field of a record agrees with what the
//! searcher was told, from exact down to "disagrees", and the score they add
//! up to (the Fellegi–Sunter match weight, in bits).
//!
//! Each field's levels are tried best first and the first that holds is
//! taken, so a level's weight is the evidence of that level and no better
//! one. Edit distances are optimal string alignment (an insertion, deletion,
//! substitution or transposition of neighbours is one edit), from `strsim`;
//! whether two names sound alike (Double Metaphone, from PostgreSQL's
//! fuzzystrmatch) is decided at the node and arrives as a flag.

use chrono::{Datelike, NaiveDate};
use strsim::osa_distance;

use crate::keys::{name_parts, surname_key};
use crate::nicknames::Nicknames;
use crate::weights::Weights;

/// A field compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Surname,
    Forename,
    DateOfBirth,
    Postcode,
    Gender,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Field::Surname,
        Field::Forename,
        Field::DateOfBirth,
        Field::Postcode,
        Field::Gender,
    ];

    /// Its name on the wire and in the weights table.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Surname => "surname",
            Field::Forename => "forename",
            Field::DateOfBirth => "date_of_birth",
            Field::Postcode => "postcode",
            Field::Gender => "gender",
        }
    }

    /// Its name for people.
    pub fn label(self) -> &'static str {
        match self {
            Field::DateOfBirth => "date of birth",
            other => other.as_str(),
        }
    }

    /// Its levels, best first: (name, what it means to a person).
    pub fn levels(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Field::Surname => &[
                ("exact", "exact"),
                ("former", "a former surname"),
                ("part", "one part of a double-barrelled surname"),
                ("one_edit", "within one letter"),
                ("phonetic", "sounds alike"),
                ("two_edits", "within two letters"),
                ("disagrees", "different"),
            ],
            Field::Forename => &[
                ("exact", "exact"),
                ("nickname", "a nickname or variant"),
                ("one_edit", "within one letter"),
                ("phonetic", "sounds alike"),
                ("prefix", "initial or first letters"),
                ("disagrees", "different"),
            ],
            Field::DateOfBirth => &[
                ("exact", "exact"),
                ("swapped", "day and month swapped"),
                ("one_digit", "one digit different"),
                ("year", "year of birth"),
                ("disagrees", "different"),
            ],
            Field::Postcode => &[
                ("exact", "exact"),
                ("sector", "same sector"),
                ("district", "same district"),
                ("disagrees", "different"),
            ],
            Field::Gender => &[("same", "same"), ("different", "different")],
        }
    }

    /// What a level means to a person ("day and month swapped").
    pub fn describe(self, level: &str) -> &'static str {
        self.levels()
            .iter()
            .find(|(name, _)| *name == level)
            .map_or("", |(_, description)| description)
    }
}

/// What the searcher was told. Absent fields are not compared.
#[derive(Debug, Clone, Default)]
pub struct Asked<'a> {
    pub surname: &'a str,
    /// The first forename, or its first letters.
    pub forename: Option<&'a str>,
    pub date_of_birth: Option<NaiveDate>,
    /// Only the year of birth is known.
    pub year_of_birth: Option<i32>,
    /// Canonical ("TS24 8AH"), or only its sector ("TS24 8") or district
    /// ("TS24").
    pub postcode: Option<&'a str>,
    /// As stored: "female", "male", "other".
    pub gender: Option<&'a str>,
}

/// A record as the node holds it, and what fuzzystrmatch said of it.
#[derive(Debug, Clone, Default)]
pub struct Candidate<'a> {
    pub family_name: &'a str,
    pub former_family_names: &'a [String],
    pub given_names: &'a str,
    pub date_of_birth: Option<NaiveDate>,
    /// None when unknown or hidden from this reader (shielding).
    pub postcode: Option<&'a str>,
    /// As stored; "not_specified" is not compared.
    pub gender: &'a str,
    /// One of its surnames (current or former, whole or a part) sounds like
    /// the one asked: their Double Metaphone codes agree.
    pub surname_sounds_alike: bool,
    /// One of its forenames sounds like the one asked.
    pub forename_sounds_alike: bool,
}

/// One field's agreement and the weight it adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub field: Field,
    /// A level of `field.levels()`.
    pub level: &'static str,
    /// log2(m/u), in bits.
    pub weight: f64,
}

/// A candidate's match weight and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The sum of the agreements' weights, in bits: each bit doubles the
    /// odds that this is the child asked about.
    pub weight: f64,
    pub agreements: Vec<Agreement>,
}

impl Scored {
    /// "surname sounds alike, date of birth day and month swapped".
    pub fn explanation(&self) -> String {
        self.agreements
            .iter()
            .map(|a| format!("{} {}", a.field.label(), a.field.describe(a.level)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Compares each field asked and adds up the weights.
pub fn score(asked: &Asked<'_>, candidate: &Candidate<'_>, weights: &Weights) -> Scored {
    let levels = [
        Some((Field::Surname, surname(asked, candidate))),
        asked
            .forename
            .map(|forename| (Field::Forename, forename_level(forename, candidate))),
        candidate
            .date_of_birth
            .and_then(|born| date_level(asked, born))
            .map(|level| (Field::DateOfBirth, level)),
        asked
            .postcode
            .zip(candidate.postcode)
            .map(|(asked, held)| (Field::Postcode, postcode_level(asked, held))),
        asked
            .gender
            .filter(|_| candidate.gender != "not_specified")
            .map(|gender| {
                let level = if gender == candidate.gender {
                    "same"
                } else {
                    "different"
                };
                (Field::Gender, level)
            }),
    ];
    let agreements: Vec<Agreement> = levels
        .into_iter()
        .flatten()
        .map(|(field, level)| Agreement {
            field,
            level,
            weight: weights.weight(field, level),
        })
        .collect();
    Scored {
        weight: agreements.iter().map(|a| a.weight).sum(),
        agreements,
    }
}

/// Within `limit` edits, for names long enough that so many edits still
/// leave most of the name (a one-letter change to "Li" is another name).
fn within(a: &str, b: &str, limit: usize) -> bool {
    a.chars().count().min(b.chars().count()) > 2 * limit && osa_distance(a, b) <= limit
}

fn surname(asked: &Asked<'_>, candidate: &Candidate<'_>) -> &'static str {
    let key = surname_key(asked.surname);
    let current = surname_key(candidate.family_name);
    let former: Vec<String> = candidate
        .former_family_names
        .iter()
        .map(|name| surname_key(name))
        .collect();
    if key == current {
        return "exact";
    }
    if former.contains(&key) {
        return "former";
    }
    let asked_parts = name_parts(asked.surname);
    let held_parts: Vec<String> = std::iter::once(candidate.family_name)
        .chain(candidate.former_family_names.iter().map(String::as_str))
        .flat_map(name_parts)
        .collect();
    if asked_parts.iter().any(|part| held_parts.contains(part)) {
        return "part";
    }
    let held: Vec<&str> = std::iter::once(current.as_str())
        .chain(former.iter().map(String::as_str))
        .chain(held_parts.iter().map(String::as_str))
        .collect();
    if held.iter().any(|name| within(&key, name, 1)) {
        "one_edit"
    } else if candidate.surname_sounds_alike {
        "phonetic"
    } else if held.iter().any(|name| within(&key, name, 2)) {
        "two_edits"
    } else {
        "disagrees"
    }
}

fn forename_level(asked: &str, candidate: &Candidate<'_>) -> &'static str {
    let asked = surname_key(asked);
    let held = name_parts(candidate.given_names);
    let nicknames = Nicknames::shipped();
    if held.contains(&asked) {
        "exact"
    } else if held.iter().any(|name| nicknames.related(&asked, name)) {
        "nickname"
    } else if held.iter().any(|name| within(&asked, name, 1)) {
        "one_edit"
    } else if candidate.forename_sounds_alike {
        "phonetic"
    } else if !asked.is_empty() && held.iter().any(|name| name.starts_with(&asked)) {
        "prefix"
    } else {
        "disagrees"
    }
}

fn date_level(asked: &Asked<'_>, born: NaiveDate) -> Option<&'static str> {
    if let Some(asked) = asked.date_of_birth {
        let swapped = NaiveDate::from_ymd_opt(asked.year(), asked.day(), asked.month());
        let digits = |date: NaiveDate| date.format("%Y%m%d").to_string();
        let differing = digits(asked)
            .bytes()
            .zip(digits(born).bytes())
            .filter(|(a, b)| a != b)
            .count();
        Some(if asked == born {
            "exact"
        } else if swapped == Some(born) {
            "swapped"
        } else if differing == 1 {
            "one_digit"
        } else {
            "disagrees"
        })
    } else {
        asked.year_of_birth.map(|year| {
            if year == born.year() {
                "year"
            } else {
                "disagrees"
            }
        })
    }
}

/// `asked` may be whole, a sector or a district (`keys::search_postcode`):
/// it agrees at the finest level it gives.
fn postcode_level(asked: &str, held: &str) -> &'static str {
    let outward = |postcode: &str| postcode.split(' ').next().unwrap_or("").to_owned();
    fn sector(postcode: &str) -> Option<&str> {
        postcode.get(..postcode.find(' ')? + 2)
    }
    if asked == held {
        "exact"
    } else if sector(asked).is_some() && sector(asked) == sector(held) {
        "sector"
    } else if outward(asked) == outward(held) {
        "district"
    } else {
        "disagrees"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn level(asked: &Asked<'_>, candidate: &Candidate<'_>, field: Field) -> &'static str {
        score(asked, candidate, Weights::shipped())
            .agreements
            .iter()
            .find(|a| a.field == field)
            .map_or("absent", |a| a.level)
    }

    #[test]
    fn each_field_finds_its_level() {
        let held = Candidate {
            family_name: "Smith-Hartley",
            former_family_names: &["MacDonald".to_owned()],
            given_names: "Alfred James",
            date_of_birth: Some(date(2015, 3, 4)),
            postcode: Some("TS24 8AH"),
            gender: "male",
            ..Candidate::default()
        };
        let ask = |surname| Asked {
            surname,
            ..Asked::default()
        };
        assert_eq!(level(&ask("smith hartley"), &held, Field::Surname), "exact");
        assert_eq!(level(&ask("Macdonald"), &held, Field::Surname), "former");
        assert_eq!(level(&ask("Mcdonald"), &held, Field::Surname), "one_edit");
        assert_eq!(level(&ask("Hartley"), &held, Field::Surname), "part");
        assert_eq!(level(&ask("Hartly"), &held, Field::Surname), "one_edit");
        assert_eq!(level(&ask("Smtih"), &held, Field::Surname), "one_edit");
        assert_eq!(level(&ask("Hratlye"), &held, Field::Surname), "two_edits");
        assert_eq!(level(&ask("Jones"), &held, Field::Surname), "disagrees");
        let sounding = Candidate {
            surname_sounds_alike: true,
            ..held.clone()
        };
        assert_eq!(
            level(&ask("Smythe-Hartlee"), &sounding, Field::Surname),
            "phonetic"
        );

        let forename = |forename| Asked {
            surname: "Smith",
            forename: Some(forename),
            ..Asked::default()
        };
        assert_eq!(level(&forename("james"), &held, Field::Forename), "exact");
        assert_eq!(
            level(&forename("Alfie"), &held, Field::Forename),
            "nickname"
        );
        assert_eq!(
            level(&forename("Alfrde"), &held, Field::Forename),
            "one_edit"
        );
        assert_eq!(level(&forename("a"), &held, Field::Forename), "prefix");
        assert_eq!(
            level(&forename("Oscar"), &held, Field::Forename),
            "disagrees"
        );

        let born = |date_of_birth, year_of_birth| Asked {
            surname: "Smith",
            date_of_birth,
            year_of_birth,
            ..Asked::default()
        };
        assert_eq!(
            level(
                &born(Some(date(2015, 3, 4)), None),
                &held,
                Field::DateOfBirth
            ),
            "exact"
        );
        assert_eq!(
            level(
                &born(Some(date(2015, 4, 3)), None),
                &held,
                Field::DateOfBirth
            ),
            "swapped"
        );
        assert_eq!(
            level(
                &born(Some(date(2016, 3, 4)), None),
                &held,
                Field::DateOfBirth
            ),
            "one_digit"
        );
        assert_eq!(
            level(
                &born(Some(date(2016, 4, 3)), None),
                &held,
                Field::DateOfBirth
            ),
            "disagrees"
        );
        assert_eq!(
            level(&born(None, Some(2015)), &held, Field::DateOfBirth),
            "year"
        );
        assert_eq!(
            level(&born(None, Some(2014)), &held, Field::DateOfBirth),
            "disagrees"
        );
        assert_eq!(
            level(&born(None, None), &held, Field::DateOfBirth),
            "absent"
        );

        let postcode = |postcode| Asked {
            surname: "Smith",
            postcode: Some(postcode),
            ..Asked::default()
        };
        assert_eq!(
            level(&postcode("TS24 8AH"), &held, Field::Postcode),
            "exact"
        );
        assert_eq!(
            level(&postcode("TS24 8ZZ"), &held, Field::Postcode),
            "sector"
        );
        assert_eq!(
            level(&postcode("TS24 9AH"), &held, Field::Postcode),
            "district"
        );
        assert_eq!(
            level(&postcode("TS25 8AH"), &held, Field::Postcode),
            "disagrees"
        );
        let hidden = Candidate {
            postcode: None,
            ..held.clone()
        };
        assert_eq!(
            level(&postcode("TS24 8AH"), &hidden, Field::Postcode),
            "absent"
        );
    }

    #[test]
    fn a_twin_never_scores_as_the_child_when_a_forename_is_given() {
        let child = Candidate {
            family_name: "Hartley",
            given_names: "Oliver",
            date_of_birth: Some(date(2019, 6, 1)),
            postcode: Some("TS24 8AH"),
            gender: "male",
            ..Candidate::default()
        };
        let twin = Candidate {
            given_names: "Olivia",
            gender: "female",
            ..child.clone()
        };
        // Given correctly or with one error. (A nickname both could answer
        // to, "Ollie" for Oliver and Olivia, is evidence for both alike.)
        for asked_forename in ["Oliver", "Olliver", "Olvier", "Olive"] {
            let asked = Asked {
                surname: "Hartley",
                forename: Some(asked_forename),
                date_of_birth: Some(date(2019, 6, 1)),
                ..Asked::default()
            };
            let weights = Weights::shipped();
            let (child, twin) = (
                score(&asked, &child, weights),
                score(&asked, &twin, weights),
            );
            assert!(
                child.weight > twin.weight,
                "{asked_forename}: {child:?} against {twin:?}"
            );
        }
    }

    #[test]
    fn absent_fields_add_nothing_and_explanations_read_as_sentences() {
        let held = Candidate {
            family_name: "Hartley",
            given_names: "Oliver",
            date_of_birth: Some(date(2019, 6, 1)),
            ..Candidate::default()
        };
        let asked = Asked {
            surname: "Hartly",
            date_of_birth: Some(date(2019, 1, 6)),
            ..Asked::default()
        };
        let scored = score(&asked, &held, Weights::shipped());
        assert_eq!(scored.agreements.len(), 2);
        assert_eq!(
            scored.explanation(),
            "surname within one letter, date of birth day and month swapped"
        );
        let total: f64 = scored.agreements.iter().map(|a| a.weight).sum();
        assert_eq!(scored.weight, total);
    }
}
