//! A sandbox's lifetime, as a tag: `flankbox-expires-<unix seconds>`. The client writes it, the
//! edge proxy caps it by its policy, and the local host's reaper deletes what it marks once its
//! time has passed (Northflank keeps it as a plain tag).

/// Prefix of the expiry tag.
pub const EXPIRES_TAG: &str = "flankbox-expires-";

/// The expiry tag for `unix_seconds`.
pub fn expiry_tag(unix_seconds: u64) -> String {
    format!("{EXPIRES_TAG}{unix_seconds}")
}

/// The expiry (Unix seconds) that `tags` carry: the first well-formed expiry tag's.
pub fn expiry_of<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<u64> {
    tags.into_iter()
        .find_map(|t| t.strip_prefix(EXPIRES_TAG)?.parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_reads_back() {
        assert_eq!(expiry_tag(1600), "flankbox-expires-1600");
        assert_eq!(
            expiry_of(["x", "flankbox-expires-nope", "flankbox-expires-1600"]),
            Some(1600)
        );
        assert_eq!(expiry_of(["flankbox-expires-"]), None);
        assert_eq!(expiry_of([]), None);
    }
}
