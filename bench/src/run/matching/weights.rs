//! The estimate of the Fellegi–Sunter m and u probabilities from the
//! synthetic population (`--write-weights`): m from children as a
//! practitioner is told of them under the error mix (each told against the
//! child's own record), u from the same told against a child drawn at
//! random, each field's levels counted by `contactpoint_matching::compare`
//! with Double Metaphone codes from the node's own `name_codes`. Counts are
//! smoothed (one pseudo-observation a level for m, as many for u in
//! proportion to its larger sample), so no level is certain or impossible
//! and one seen in neither sample weighs nothing.
use std::collections::{HashMap, HashSet};

use anyhow::Result;
use chrono::NaiveDate;
use contactpoint_matching::compare::{score, Asked, Candidate, Field};
use contactpoint_matching::Weights;

use super::errors::Told;

/// A record as compared: its names, date of birth and postcode.
pub(super) struct Compared {
    pub family_name: String,
    pub former_family_names: Vec<String>,
    pub given_names: String,
    pub date_of_birth: NaiveDate,
    pub postcode: Option<String>,
    pub gender: String,
}

/// Counts of each field's levels, for the child itself and for others.
#[derive(Default)]
pub(super) struct Counts {
    matches: HashMap<(Field, &'static str), u64>,
    others: HashMap<(Field, &'static str), u64>,
    compared: (u64, u64),
}

impl Counts {
    /// Counts the levels of `told` against `record` (`same`: the child's own).
    pub(super) fn add(&mut self, told: &Told, record: &Compared, codes: &Codes, same: bool) {
        let overlap = |a: &[String], b: &str| {
            codes
                .of(b)
                .iter()
                .any(|code| a.iter().any(|name| codes.of(name).contains(code)))
        };
        let surnames: Vec<String> = std::iter::once(record.family_name.clone())
            .chain(record.former_family_names.iter().cloned())
            .collect();
        let scored = score(
            &Asked {
                surname: &told.surname,
                forename: Some(told.forename.as_str()).filter(|f| !f.is_empty()),
                date_of_birth: told.date_of_birth,
                year_of_birth: told.year_of_birth,
                postcode: Some(told.postcode.as_str()).filter(|p| !p.is_empty()),
                gender: None,
            },
            &Candidate {
                family_name: &record.family_name,
                former_family_names: &record.former_family_names,
                given_names: &record.given_names,
                date_of_birth: Some(record.date_of_birth),
                postcode: record.postcode.as_deref(),
                gender: &record.gender,
                surname_sounds_alike: overlap(&surnames, &told.surname),
                forename_sounds_alike: overlap(
                    std::slice::from_ref(&record.given_names),
                    &told.forename,
                ),
            },
            Weights::shipped(),
        );
        let counts = if same {
            &mut self.matches
        } else {
            &mut self.others
        };
        for agreement in scored.agreements {
            *counts
                .entry((agreement.field, agreement.level))
                .or_default() += 1;
        }
        if same {
            self.compared.0 += 1;
        } else {
            self.compared.1 += 1;
        }
    }

    /// (field, level, m, u) for every level, in the weights file's order.
    pub(super) fn estimate(&self) -> Vec<(Field, &'static str, f64, f64)> {
        let mut rows = Vec::new();
        for field in [
            Field::Surname,
            Field::Forename,
            Field::DateOfBirth,
            Field::Postcode,
            Field::Gender,
        ] {
            let levels = field.levels();
            // The same prior for m and u: one pseudo-observation per level
            // for every m-sample's worth of comparisons, so that a level
            // seen in neither sample weighs nothing either way.
            let (m_total, u_total) = (self.compared.0.max(1) as f64, self.compared.1.max(1) as f64);
            let share =
                |counts: &HashMap<(Field, &'static str), u64>, level: &'static str, total: f64| {
                    let prior = total / m_total;
                    let seen: u64 = levels
                        .iter()
                        .map(|(l, _)| counts.get(&(field, *l)).copied().unwrap_or(0))
                        .sum();
                    (counts.get(&(field, level)).copied().unwrap_or(0) as f64 + prior)
                        / (seen as f64 + prior * levels.len() as f64)
                };
            let compared: u64 = levels
                .iter()
                .map(|(l, _)| self.matches.get(&(field, *l)).copied().unwrap_or(0))
                .sum();
            for (level, _) in levels {
                // A field the sample never compared keeps the shipped values.
                let (m, u) = match Weights::shipped().probabilities(field, level) {
                    Some(shipped) if compared == 0 => shipped,
                    _ => (
                        share(&self.matches, level, m_total),
                        share(&self.others, level, u_total),
                    ),
                };
                rows.push((field, *level, m, u));
            }
        }
        rows
    }

    /// The estimate in `data/match-weights.csv`'s form.
    pub(super) fn to_csv(&self, population: &str) -> String {
        let mut text = format!(
            "# The Fellegi-Sunter m and u probability of each comparison level\n\
             # (contactpoint-matching, compare.rs). m: the chance of the level when the\n\
             # record is the child asked about; u: when it is another child. The weight of\n\
             # a level is log2(m/u).\n\
             #\n\
             # Estimated by `cpbench run --matching --write-weights` ({population}):\n\
             # m from {} children as told under the error mix (FEBRL's rates, bench/src/run/\n\
             # matching/errors.rs) against their own records, u from the same against {}\n\
             # children drawn at random; counts smoothed alike. A field the sample never\n\
             # compares (the gender, the postcode: the mix gives neither) keeps the values\n\
             # set by hand before.\n\
             field,level,m,u\n",
            self.compared.0, self.compared.1
        );
        for (field, level, m, u) in self.estimate() {
            text.push_str(&format!("{},{level},{m:.6},{u:.6}\n", field.as_str()));
        }
        text
    }
}

/// Double Metaphone codes of names, from a node's database.
#[derive(Default)]
pub(super) struct Codes(HashMap<String, Vec<String>>);

impl Codes {
    pub(super) async fn fetch(
        client: &tokio_postgres::Client,
        names: HashSet<String>,
    ) -> Result<Self> {
        let names: Vec<String> = names.into_iter().collect();
        let rows = client
            .query(
                "SELECT n, coalesce(name_codes(n), '{}') FROM unnest($1::text[]) AS n",
                &[&names],
            )
            .await?;
        Ok(Self(
            rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
        ))
    }

    fn of(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }
}
