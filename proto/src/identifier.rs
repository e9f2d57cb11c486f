//! Para 5: the identifier of a record in the database.
//!
//! Shape: `E06000001-00000042-31`: the GSS code of the authority whose node
//! minted it, a serial from that node's PostgreSQL sequence (at least eight
//! digits), and two check digits (ISO 7064 MOD 97-10, as in IBANs).
//!
//! - Unique without coordination: no two authorities share a GSS code, and a
//!   node never draws the same serial twice (sequences do not roll back).
//! - Never reused: the identifier stays with the record through transfers,
//!   and the serial is never drawn again.
//! - A mistyped identifier is rejected: MOD 97-10 catches every single wrong
//!   character and every swap of two neighbouring characters.
use std::fmt;

/// A well-formed identifier whose check digits match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId(String);

/// Why a string is not an identifier. Shown to callers as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is not a record identifier: expected the form E06000001-00000042-31 (authority code, serial, two check digits)")]
    Malformed,
    #[error("check digits do not match: the identifier is mistyped")]
    CheckDigits,
}

impl RecordId {
    /// Mints the identifier for `serial` at the authority `authority_code`.
    pub fn mint(authority_code: &str, serial: u64) -> Self {
        let body = format!("{authority_code}{serial:08}");
        let check = 98 - mod97(&format!("{body}00")).expect("authority codes are alphanumeric");
        Self(format!("{authority_code}-{serial:08}-{check:02}"))
    }

    /// Parses what a person typed: case and hyphens or spaces do not matter.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = compact.as_bytes();
        let well_formed = bytes.len() >= 9 + 8 + 2
            && bytes.len() <= 9 + 18 + 2
            && bytes[0].is_ascii_uppercase()
            && bytes[1..].iter().all(u8::is_ascii_digit);
        if !well_formed {
            return Err(IdError::Malformed);
        }
        if mod97(&compact) != Some(1) {
            return Err(IdError::CheckDigits);
        }
        let (code, rest) = compact.split_at(9);
        let (serial, check) = rest.split_at(rest.len() - 2);
        Ok(Self(format!("{code}-{serial}-{check}")))
    }

    /// The GSS code of the authority whose node minted it (not necessarily the
    /// authority responsible now).
    pub fn minting_authority(&self) -> &str {
        &self.0[..9]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ISO 7064 MOD 97-10 remainder of an alphanumeric string, letters counting
/// A=10 to Z=35. `None` for any other character.
fn mod97(text: &str) -> Option<u32> {
    let mut remainder = 0u32;
    for c in text.chars() {
        let value = c.to_digit(36)?;
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    Some(remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    /// Minted identifiers parse back to themselves, in any case and spacing.
    #[test]
    fn minted_identifiers_round_trip() {
        for serial in [1, 42, 99_999_999, 123_456_789_012] {
            let id = RecordId::mint("E06000001", serial);
            assert_eq!(RecordId::parse(id.as_str()).unwrap(), id);
            let typed = id.as_str().to_lowercase().replace('-', " ");
            assert_eq!(RecordId::parse(&typed).unwrap(), id);
            assert_eq!(id.minting_authority(), "E06000001");
        }
    }

    /// Every single wrong character and every swap of neighbours is caught.
    #[test]
    fn every_single_substitution_and_adjacent_swap_is_rejected() {
        for (code, serial) in [
            ("E06000001", 42),
            ("E09000033", 7_654_321),
            ("E10000034", 10_000_001),
        ] {
            let id = RecordId::mint(code, serial);
            let chars: Vec<char> = id.as_str().chars().collect();
            for i in (0..chars.len()).filter(|&i| chars[i] != '-') {
                for replacement in ALPHABET.chars().filter(|&c| c != chars[i]) {
                    let mut typo = chars.clone();
                    typo[i] = replacement;
                    let typo: String = typo.into_iter().collect();
                    assert!(RecordId::parse(&typo).is_err(), "{typo} accepted for {id}");
                }
            }
            let compact: Vec<char> = chars.iter().copied().filter(|&c| c != '-').collect();
            for i in 0..compact.len() - 1 {
                if compact[i] == compact[i + 1] {
                    continue;
                }
                let mut swapped = compact.clone();
                swapped.swap(i, i + 1);
                let swapped: String = swapped.into_iter().collect();
                assert!(
                    RecordId::parse(&swapped).is_err(),
                    "{swapped} accepted for {id}"
                );
            }
        }
    }

    #[test]
    fn malformed_input_is_named_as_such() {
        for input in [
            "",
            "hello",
            "E06000001-42-00",
            "06000001-00000042-31",
            "E0600000X-00000042-31",
        ] {
            assert_eq!(RecordId::parse(input), Err(IdError::Malformed), "{input}");
        }
    }
}
