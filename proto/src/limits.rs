//! The contract's bounds on its text fields, checked alike at the gateway
//! and at every node (each refuses with InvalidArgument naming the field and
//! the bound), so that an oversized or garbled value is refused where it
//! arrives and never sent on to 153 authorities. Lengths are in characters.
//! A record's own fields are bounded by the node's decoders (`NAME_CHARS`
//! for names and other text, at most `MAX_REPEATED` entries of a kind).

/// A name (surname, forenames, a former name), a provider, an address line.
pub const NAME_CHARS: usize = 200;
/// A postcode as typed, spaces included.
pub const POSTCODE_CHARS: usize = 16;
/// A reason stated for an access, a merge or a transfer.
pub const REASON_CHARS: usize = 1000;
/// A record identifier as typed.
pub const IDENTIFIER_CHARS: usize = 64;
/// Entries of one kind in a request (former names, identifiers, metadata).
pub const MAX_REPEATED: usize = 50;

/// Why a text field is refused: too long, or holding control characters
/// (a reason may hold line breaks and tabs; nothing else may).
pub fn check_text(value: &str, bound: usize, multiline: bool) -> Result<(), String> {
    if value.chars().count() > bound {
        return Err(format!("is longer than {bound} characters"));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Each bounded text field of a search, with its bound: the same list at the
/// gateway and at the node.
pub fn check_search(
    request: &crate::v1::SearchRecordsRequest,
) -> Result<(), (&'static str, String)> {
    for (field, value, bound, multiline) in [
        ("surname", &request.surname, NAME_CHARS, false),
        ("forename", &request.forename, NAME_CHARS, false),
        ("postcode", &request.postcode, POSTCODE_CHARS, false),
        ("reason", &request.reason, REASON_CHARS, true),
    ] {
        check_text(value, bound, multiline).map_err(|reason| (field, reason))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_garbled_text_is_refused_saying_why() {
        assert_eq!(check_text("Hartley", NAME_CHARS, false), Ok(()));
        assert_eq!(
            check_text(&"a".repeat(NAME_CHARS + 1), NAME_CHARS, false),
            Err("is longer than 200 characters".into())
        );
        assert!(
            check_text(&"é".repeat(NAME_CHARS), NAME_CHARS, false).is_ok(),
            "characters, not bytes"
        );
        assert!(check_text("Hart\u{0}ley", NAME_CHARS, false).is_err());
        assert!(check_text("a referral\nfrom school", REASON_CHARS, true).is_ok());
        assert!(check_text("a referral\nfrom school", NAME_CHARS, false).is_err());
        let search = crate::v1::SearchRecordsRequest {
            surname: "x".repeat(20_000),
            ..Default::default()
        };
        assert_eq!(
            check_search(&search),
            Err(("surname", "is longer than 200 characters".into()))
        );
    }
}
