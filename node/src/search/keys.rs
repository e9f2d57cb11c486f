//! Match keys: the canonical forms a record is stored and searched under
//! (surname and forename keys, from `contactpoint_matching::keys`, and
//! canonical postcodes), so that case, spaces and punctuation do not hide a
//! child.

pub use contactpoint_matching::keys::{forenames_key, surname_key};

/// A UK postcode in canonical form ("SW1A 1AA"), or `None` if it cannot be one.
pub fn canonical_postcode(input: &str) -> Option<String> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward: Vec<char> = inward.chars().collect();
    let inward_ok = inward[0].is_ascii_digit() && inward[1..].iter().all(char::is_ascii_alphabetic);
    let outward_ok = outward.starts_with(|c: char| c.is_ascii_alphabetic())
        && outward.chars().all(|c| c.is_ascii_alphanumeric())
        && outward.chars().any(|c| c.is_ascii_digit());
    (inward_ok && outward_ok).then(|| format!("{outward} {}", inward.iter().collect::<String>()))
}

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
