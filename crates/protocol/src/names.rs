//! Name rules and derived ids (contract §2.1, §1.5).
//!
//! Northflank derives a resource's id from its name: "Example Service" becomes
//! `example-service`. Ids are therefore lowercase, URL-safe and unique per project.

/// Shortest valid service or volume name.
pub const NAME_MIN: usize = 3;
/// Longest valid service or volume name.
pub const NAME_MAX: usize = 54;
/// Longest valid port name.
pub const PORT_NAME_MAX: usize = 8;

/// Checks a service or volume name against
/// `^[a-zA-Z]((-|\s)?[a-zA-Z0-9]+((-|\s)[a-zA-Z0-9]+)*)?$`, 3–54 characters.
///
/// Returns a sentence that says what is wrong.
pub fn check_resource_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(NAME_MIN..=NAME_MAX).contains(&len) {
        return Err(format!("must be {NAME_MIN} to {NAME_MAX} characters long, got {len}"));
    }
    check_separated(name, &['-', ' '])
}

/// Checks a port name against `^[a-zA-Z](-?[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*)?$`, 1–8 characters.
pub fn check_port_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(1..=PORT_NAME_MAX).contains(&len) {
        return Err(format!("must be 1 to {PORT_NAME_MAX} characters long, got {len}"));
    }
    check_separated(name, &['-'])
}

/// The shared shape of both patterns: a letter first, then ASCII letters and digits in runs
/// joined by single separators, never ending on one.
fn check_separated(name: &str, separators: &[char]) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err("must start with a letter".into()),
    }
    let mut previous_was_separator = false;
    for c in chars {
        if separators.contains(&c) {
            if previous_was_separator {
                return Err("must not contain two separators in a row".into());
            }
            previous_was_separator = true;
        } else if c.is_ascii_alphanumeric() {
            previous_was_separator = false;
        } else {
            return Err(format!(
                "must not contain {c:?}: only letters, digits and single hyphens or spaces"
            ));
        }
    }
    if previous_was_separator {
        return Err("must not end with a separator".into());
    }
    Ok(())
}

/// The id Northflank derives from a valid name: lowercase, with spaces as hyphens.
pub fn derive_id(name: &str) -> String {
    name.chars()
        .map(|c| if c == ' ' { '-' } else { c.to_ascii_lowercase() })
        .collect()
}

/// Whether `id` looks like a derived id (used to reject odd path segments early).
pub fn is_plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_names_the_guide_uses() {
        for name in [
            "sandbox-1a2b3c4d5e6f",
            "data-sandbox-1a2b",
            "Example Service",
            "abc",
            "a-1",
        ] {
            assert_eq!(check_resource_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_bad_names_with_a_reason() {
        let cases = [
            ("ab", "3 to 54"),
            ("1abc", "start with a letter"),
            ("abc-", "end with a separator"),
            ("ab--c", "two separators"),
            ("ab_c", "must not contain '_'"),
            ("äbc", "start with a letter"),
        ];
        for (name, expected) in cases {
            let err = check_resource_name(name).unwrap_err();
            assert!(err.contains(expected), "{name}: {err}");
        }
        assert!(check_resource_name(&"a".repeat(55)).is_err());
    }

    #[test]
    fn port_names_allow_hyphens_but_not_spaces() {
        assert_eq!(check_port_name("p01"), Ok(()));
        assert_eq!(check_port_name("web-1"), Ok(()));
        assert!(check_port_name("web 1").is_err());
        assert!(check_port_name("toolongname").is_err());
        assert!(check_port_name("").is_err());
    }

    #[test]
    fn derives_lowercase_hyphenated_ids() {
        assert_eq!(derive_id("Example Service"), "example-service");
        assert_eq!(derive_id("sandbox-ABC"), "sandbox-abc");
        assert!(is_plausible_id("example-service"));
        assert!(!is_plausible_id("../etc"));
    }
}
