//! Forename variants: "Alfie" for "Alfred", "Bella" for "Isabella". Two
//! forenames are variants of each other when one is a nickname of the other
//! or both are nicknames of one name.
//!
//! The table is `data/nicknames.csv`, the hand-curated list of English names
//! and nicknames by Carlton Northern and Nick Crews (Apache-2.0, the
//! `nicknames` package 1.0.1 on PyPI, github.com/carltonnorthern/nicknames),
//! with `data/nicknames-uk.csv`, our own additions for forenames common in
//! England that it lacks ("Alfie", "Albie", "Maisie", "Mohammed"), reviewed
//! against the ONS list of popular names. Both are compiled in: the node
//! needs no file at run time to rank a child the same way everywhere.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

static TABLE: LazyLock<Nicknames> = LazyLock::new(|| {
    Nicknames::parse(&[
        include_str!("../../data/nicknames.csv"),
        include_str!("../../data/nicknames-uk.csv"),
    ])
});

/// The nickname table, by name key.
#[derive(Debug, Default)]
pub struct Nicknames {
    /// name → the names it is a nickname of.
    formal: HashMap<String, BTreeSet<String>>,
    /// name → its nicknames.
    nicknames: HashMap<String, BTreeSet<String>>,
}

impl Nicknames {
    /// Reads `name1,has_nickname,name2` lines (a header line and other
    /// relationships are skipped).
    pub fn parse(files: &[&str]) -> Self {
        let mut table = Self::default();
        for line in files.iter().flat_map(|file| file.lines()) {
            let mut columns = line.split(',').map(crate::keys::surname_key);
            let (Some(name), Some(relation), Some(nickname)) =
                (columns.next(), columns.next(), columns.next())
            else {
                continue;
            };
            if relation != "hasnickname" || name.is_empty() || nickname.is_empty() {
                continue;
            }
            table
                .formal
                .entry(nickname.clone())
                .or_default()
                .insert(name.clone());
            table.nicknames.entry(name).or_default().insert(nickname);
        }
        table
    }

    /// The shipped table.
    pub fn shipped() -> &'static Self {
        &TABLE
    }

    /// The name itself and the names it is a nickname of.
    fn roots<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        std::iter::once(name).chain(
            self.formal
                .get(name)
                .into_iter()
                .flatten()
                .map(String::as_str),
        )
    }

    /// Whether two forename keys are variants of each other (a name is not
    /// its own variant: that is an exact match).
    pub fn related(&self, a: &str, b: &str) -> bool {
        a != b
            && self
                .roots(a)
                .any(|root| self.roots(b).any(|other| other == root))
    }

    /// Every variant of a forename key, itself first: its formal names and
    /// their nicknames.
    pub fn variants(&self, name: &str) -> Vec<String> {
        let mut found: BTreeSet<&str> = BTreeSet::new();
        for root in self.roots(name) {
            found.insert(root);
            found.extend(
                self.nicknames
                    .get(root)
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
        }
        found.remove(name);
        std::iter::once(name)
            .chain(found)
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_relate_both_ways_and_through_a_shared_name() {
        let table = Nicknames::shipped();
        assert!(table.related("alfie", "alfred"));
        assert!(table.related("alfred", "alfie"));
        assert!(table.related("alfie", "alf") || table.related("alfie", "fred"));
        assert!(table.related("bella", "isabella"));
        assert!(table.related("mohammed", "muhammad"));
        assert!(
            !table.related("alfie", "alfie"),
            "the same name is exact, not a variant"
        );
        assert!(!table.related("olivia", "amelia"));
        let variants = table.variants("alfie");
        assert_eq!(variants[0], "alfie");
        assert!(variants.contains(&"alfred".to_owned()));
    }
}
