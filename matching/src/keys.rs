//! Name keys: lower case, letters and digits only, so that case, spaces and
//! punctuation never hide a child ("O'Brien", "o brien" and "OBRIEN" are one
//! key), and the parts of a double-barrelled surname, each keyed alike.

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
}
