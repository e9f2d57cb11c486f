//! Name keys: lower case, letters and digits only, so that case, spaces and
//! punctuation never hide a child ("O'Brien", "o brien" and "OBRIEN" are one
//! key), and the parts of a double-barrelled surname, each keyed alike;
//! postcodes in their canonical form.

/// The key of a surname: lower case, letters and digits only.
pub fn surname_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The key of forenames: each forename keyed like a surname, space separated.
pub fn forenames_key(names: &str) -> String {
    name_parts(names).join(" ")
}

/// The keys of a name's parts, split at spaces and hyphens ("Smith-Jones" is
/// "smith" and "jones"; "O'Brien" is one part, "obrien").
pub fn name_parts(name: &str) -> Vec<String> {
    name.split(|c: char| c.is_whitespace() || c == '-')
        .map(surname_key)
        .filter(|key| !key.is_empty())
        .collect()
}

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

/// A postcode as a tolerant search may give it: whole (canonical), its
/// sector ("TS24 8") or its district ("TS24"); `None` if it is none of them.
pub fn search_postcode(input: &str) -> Option<String> {
    if let Some(whole) = canonical_postcode(input) {
        return Some(whole);
    }
    let mut parts = input.split_whitespace().map(str::to_ascii_uppercase);
    let outward = parts.next()?;
    let sector = parts.next();
    let outward_ok = (2..=4).contains(&outward.len())
        && outward.starts_with(|c: char| c.is_ascii_alphabetic())
        && outward.chars().all(|c| c.is_ascii_alphanumeric())
        && outward.chars().any(|c| c.is_ascii_digit());
    if !outward_ok || parts.next().is_some() {
        return None;
    }
    match sector {
        None => Some(outward),
        Some(digit) if digit.len() == 1 && digit.chars().all(|c| c.is_ascii_digit()) => {
            Some(format!("{outward} {digit}"))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_punctuation_and_parts_split_at_hyphens() {
        assert_eq!(surname_key("O'Brien"), "obrien");
        assert_eq!(surname_key("Smith-Jones"), surname_key("smith jones"));
        assert_eq!(forenames_key("Mary-Jane  Ann"), "mary jane ann");
        assert_eq!(name_parts("Smith-Jones"), ["smith", "jones"]);
        assert_eq!(name_parts("O'Brien"), ["obrien"]);
    }

    #[test]
    fn a_search_may_give_a_postcode_whole_or_its_sector_or_district() {
        assert_eq!(search_postcode("ts248ah").as_deref(), Some("TS24 8AH"));
        assert_eq!(search_postcode("ts24 8").as_deref(), Some("TS24 8"));
        assert_eq!(search_postcode(" TS24 ").as_deref(), Some("TS24"));
        for bad in ["", "TS", "24", "TS24 8A", "TS24 X", "TS24 8 1"] {
            assert_eq!(search_postcode(bad), None, "{bad}");
        }
    }
}
