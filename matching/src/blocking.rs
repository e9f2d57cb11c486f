//! The national blind index's keys. A node publishes, for each live record,
//! keyed hashes of its blocking keys, each a conjunction of coded fields;
//! the gateway hashes a search's keys alike and asks only the authorities
//! holding one of them. The gateway so routes a search by hashes it cannot
//! read: no name or date reaches it, and without the matching key (a file,
//! like a TLS key, never in any database) a hash cannot be tested against a
//! guess.
//!
//! Blocking keys, S a Double Metaphone code of a surname (current or former,
//! whole or a part), F of a forename, D the date of birth:
//!
//! | key | catches an error in |
//! |---|---|
//! | S, F, D | nothing: all three agree as they sound |
//! | S, D | the forename (or none given) |
//! | F, D | the surname |
//! | S, F, year of D | the day or month |
//! | S, F, day and month of D | the year |
//! | S, year of D | the forename, when only the year is known |
//!
//! The first, S F D, with the first forename only, is also a record's
//! *strong* key (`duplicate_keys`):
//! two live records at two authorities sharing one are likely the same
//! child recorded twice, and the gateway tells both authorities.
//!
//! A search adds its date with day and month swapped, and the codes of each
//! nickname and variant of its forename. It uses the last key only when it
//! has neither a forename nor the whole date: a surname and a year are
//! shared by a third of England's authorities' children of any one name. Each key is tagged with its shape,
//! so keys of different shapes never collide.
//!
//! Invariants: the same record gives the same keys at every node, and a
//! search asking what the record holds produces at least one of them; the
//! hash is HMAC-SHA256 under the federation's matching key, cut to 64 bits
//! (a collision only asks one authority more).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use ring::hmac;

/// What a record's keys are made from.
#[derive(Debug, Clone, Default)]
pub struct Coded<'a> {
    /// Double Metaphone codes of its surnames (current and former).
    pub surname_codes: &'a [String],
    /// Double Metaphone codes of its forenames.
    pub forename_codes: &'a [String],
    pub date_of_birth: Option<NaiveDate>,
    /// Only the year of birth is known (a search's).
    pub year_of_birth: Option<i32>,
}

/// A record's blocking keys, before hashing.
pub fn record_keys(record: &Coded<'_>) -> BTreeSet<String> {
    let dates: Vec<NaiveDate> = record.date_of_birth.into_iter().collect();
    keys(record, &dates, false)
}

/// A record's strong keys (surname, first forename and the whole date, each
/// as it sounds): shared by two records, they are likely one child recorded
/// twice. `record.forename_codes` are its first forename's codes only: twins
/// and siblings may share a middle name, never a first one.
pub fn duplicate_keys(record: &Coded<'_>) -> BTreeSet<String> {
    record_keys(record)
        .into_iter()
        .filter(|key| key.starts_with("sfd|"))
        .collect()
}

/// A search's blocking keys: a record holding what was asked has one of
/// them, also with its day and month swapped.
pub fn search_keys(search: &Coded<'_>) -> BTreeSet<String> {
    let mut dates: Vec<NaiveDate> = search.date_of_birth.into_iter().collect();
    if let Some(born) = search.date_of_birth {
        dates.extend(NaiveDate::from_ymd_opt(
            born.year(),
            born.day(),
            born.month(),
        ));
    }
    keys(search, &dates, true)
}

fn keys(coded: &Coded<'_>, dates: &[NaiveDate], searching: bool) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let surnames = coded.surname_codes.iter().filter(|code| !code.is_empty());
    let forenames: Vec<&String> = coded
        .forename_codes
        .iter()
        .filter(|code| !code.is_empty())
        .collect();
    let years: BTreeSet<i32> = dates
        .iter()
        .map(NaiveDate::year)
        .chain(coded.year_of_birth)
        .collect();
    // Surname and year alone are shared by too many children to route by
    // when a search says more: only a search with neither a forename nor the
    // whole date uses them (a record always publishes them).
    let by_surname_and_year = !searching || (forenames.is_empty() && dates.is_empty());
    for s in surnames {
        for year in years.iter().filter(|_| by_surname_and_year) {
            keys.insert(format!("sy|{s}|{year}"));
        }
        for date in dates {
            keys.insert(format!("sd|{s}|{date}"));
        }
        for f in &forenames {
            for date in dates {
                keys.insert(format!("sfd|{s}|{f}|{date}"));
                keys.insert(format!("sfm|{s}|{f}|{:02}-{:02}", date.month(), date.day()));
            }
            for year in &years {
                keys.insert(format!("sfy|{s}|{f}|{year}"));
            }
        }
    }
    for f in &forenames {
        for date in dates {
            keys.insert(format!("fd|{f}|{date}"));
        }
    }
    keys
}

/// The federation's matching keys, from a file of lines `ID HEX` (32 bytes
/// or more of hex each; `#` starts a comment). The first is the one nodes
/// hash under; the gateway hashes a search under each, so that a new key
/// can be brought in while the nodes move to it (ARCHITECTURE.md, "The
/// national blind index": rotation).
pub struct MatchingKeys {
    keys: Vec<(String, hmac::Key)>,
}

impl std::fmt::Debug for MatchingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("MatchingKeys")
            .field(
                "ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl MatchingKeys {
    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            format!(
                "cannot read the matching key file {}: {error}",
                path.display()
            )
        })?;
        Self::parse(&text)
            .map_err(|error| format!("the matching key file {}: {error}", path.display()))
    }

    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (number, line) in (1..).zip(text.lines()) {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (id, hex) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("line {number}: expected an id and the key in hex"))?;
            let bytes = data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.trim().as_bytes())
                .ok()
                .filter(|bytes| bytes.len() >= 32)
                .ok_or_else(|| format!("line {number}: the key is not 32 bytes or more of hex"))?;
            keys.push((id.to_owned(), hmac::Key::new(hmac::HMAC_SHA256, &bytes)));
        }
        if keys.is_empty() {
            return Err("no key in it".into());
        }
        Ok(Self { keys })
    }

    /// The id of the key nodes hash under.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// The hashes of keys under the current key (a node's).
    pub fn hash_current(&self, keys: &BTreeSet<String>) -> Vec<u64> {
        keys.iter().map(|key| hash(&self.keys[0].1, key)).collect()
    }

    /// The hashes of keys under every key held (a gateway's search).
    pub fn hash_all(&self, keys: &BTreeSet<String>) -> Vec<u64> {
        self.keys
            .iter()
            .flat_map(|(_, secret)| keys.iter().map(move |key| hash(secret, key)))
            .collect()
    }

    /// A new key file's text: `ID HEX`, 32 random bytes.
    pub fn generate(id: &str) -> Result<String, String> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "no randomness".to_owned())?;
        let hex = data_encoding::HEXLOWER.encode(&bytes);
        Ok(format!(
            "# The federation's matching key (ARCHITECTURE.md, \"The national blind index\").\n# Secret: like a TLS key, never in any database or log.\n{id} {hex}\n"
        ))
    }
}

fn hash(secret: &hmac::Key, key: &str) -> u64 {
    let tag = hmac::sign(secret, key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag.as_ref()[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|code| (*code).to_owned()).collect()
    }

    #[test]
    fn a_search_with_one_error_shares_a_key_with_the_record() {
        let born = NaiveDate::from_ymd_opt(2015, 3, 4);
        let (surname, forename) = (codes(&["HRTL"]), codes(&["ALFR"]));
        let record = record_keys(&Coded {
            surname_codes: &surname,
            forename_codes: &forename,
            date_of_birth: born,
            ..Coded::default()
        });
        let searches = [
            ("as held", codes(&["HRTL"]), codes(&["ALFR"]), born, None),
            (
                "another surname",
                codes(&["JNS"]),
                codes(&["ALFR"]),
                born,
                None,
            ),
            (
                "another forename",
                codes(&["HRTL"]),
                codes(&["ALF"]),
                born,
                None,
            ),
            ("no forename", codes(&["HRTL"]), vec![], born, None),
            (
                "day and month swapped",
                codes(&["HRTL"]),
                codes(&["ALFR"]),
                NaiveDate::from_ymd_opt(2015, 4, 3),
                None,
            ),
            (
                "a day wrong",
                codes(&["HRTL"]),
                codes(&["ALFR"]),
                NaiveDate::from_ymd_opt(2015, 3, 7),
                None,
            ),
            (
                "the year wrong",
                codes(&["HRTL"]),
                codes(&["ALFR"]),
                NaiveDate::from_ymd_opt(2016, 3, 4),
                None,
            ),
            ("only the year", codes(&["HRTL"]), vec![], None, Some(2015)),
        ];
        for (what, surname_codes, forename_codes, date_of_birth, year_of_birth) in searches {
            let search = search_keys(&Coded {
                surname_codes: &surname_codes,
                forename_codes: &forename_codes,
                date_of_birth,
                year_of_birth,
            });
            assert!(!search.is_disjoint(&record), "{what}");
        }
        let unrelated = search_keys(&Coded {
            surname_codes: &codes(&["JNS"]),
            forename_codes: &codes(&["OLF"]),
            date_of_birth: NaiveDate::from_ymd_opt(2011, 8, 9),
            ..Coded::default()
        });
        assert!(unrelated.is_disjoint(&record));
    }

    #[test]
    fn one_child_twice_shares_a_strong_key_and_twins_share_none() {
        let born = NaiveDate::from_ymd_opt(2015, 3, 4);
        let strong = |surname: &[&str], forename: &[&str]| {
            duplicate_keys(&Coded {
                surname_codes: &codes(surname),
                forename_codes: &codes(forename),
                date_of_birth: born,
                ..Coded::default()
            })
        };
        let child = strong(&["HRTL"], &["ALFR"]);
        assert_eq!(child.len(), 1);
        assert!(!child.is_disjoint(&strong(&["HRTL", "SMT"], &["ALFR"])));
        assert!(child.is_disjoint(&strong(&["HRTL"], &["ALS"])), "a twin");
    }

    #[test]
    fn hashes_depend_on_the_key_and_the_key_is_never_shown() {
        let one = MatchingKeys::parse(&format!("k1 {}", "ab".repeat(32))).unwrap();
        let two = MatchingKeys::parse(&format!("k2 {}\nk1 {}", "cd".repeat(32), "ab".repeat(32)))
            .unwrap();
        let keys: BTreeSet<String> = ["sd|HRTL|2015-03-04".to_owned()].into();
        assert_ne!(one.hash_current(&keys), two.hash_current(&keys));
        assert!(
            two.hash_all(&keys).contains(&one.hash_current(&keys)[0]),
            "a search finds what the old key hashed"
        );
        assert!(!format!("{two:?}").contains("cdcd"));
        assert!(MatchingKeys::parse("k1 abcd").is_err(), "too short");
        assert!(MatchingKeys::parse("").is_err());
        let generated = MatchingKeys::generate("k3").unwrap();
        assert_eq!(MatchingKeys::parse(&generated).unwrap().current_id(), "k3");
    }
}
