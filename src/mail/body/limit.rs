//! `max_body_size`: a body over the limit is cut and says so.

use super::attachments::human_size;

/// The visible line that ends a cut body.
pub(super) fn marker(over: u64) -> String {
    format!(
        "[… message truncated by thulium-mail-bridge: {} over the limit]",
        human_size(over.max(1))
    )
}

/// The longest prefix of `s` of at most `max` bytes, on a char boundary.
pub(super) fn prefix(s: &str, max: usize) -> &str {
    s.get(..s.floor_char_boundary(max.min(s.len())))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_and_prefix() {
        assert_eq!(
            marker(1_300_000),
            "[… message truncated by thulium-mail-bridge: 1.2 MiB over the limit]"
        );
        assert_eq!(prefix("ażb", 2), "a");
        assert_eq!(prefix("ażb", 3), "aż");
        assert_eq!(prefix("ab", 10), "ab");
    }
}
