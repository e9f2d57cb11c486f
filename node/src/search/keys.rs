//! Match keys: the canonical forms a record is stored and searched under
//! (surname and forename keys, canonical postcodes), from
//! `contactpoint_matching::keys`, so that case, spaces and punctuation do not
//! hide a child.

pub use contactpoint_matching::keys::{canonical_postcode, forenames_key, surname_key};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes_are_canonicalised_or_refused() {
        assert_eq!(canonical_postcode("sw1a1aa").as_deref(), Some("SW1A 1AA"));
        assert_eq!(
            canonical_postcode(" TS24 8AH ").as_deref(),
            Some("TS24 8AH")
        );
        assert_eq!(canonical_postcode("M1 1AE").as_deref(), Some("M1 1AE"));
        for bad in ["", "12345", "SW1A", "SW1A 1A1", "ÅB1 2CD", "ABCDE 1AA"] {
            assert_eq!(canonical_postcode(bad), None, "{bad}");
        }
    }

    #[test]
    fn name_keys_ignore_case_and_punctuation() {
        assert_eq!(surname_key("O'Brien"), "obrien");
        assert_eq!(surname_key("Smith-Jones"), surname_key("smith jones"));
        assert_eq!(forenames_key("Mary-Jane  Ann"), "mary jane ann");
    }
}
