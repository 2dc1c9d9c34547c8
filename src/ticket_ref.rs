//! Ticket references as people see and write them: the configured prefix, a dash and the
//! id on six digits or more (`TKT-000123`). The one place that knows the format; pure.

/// `TKT-000123`.
pub fn reference(prefix: &str, id: i64) -> String {
    format!("{prefix}-{id:06}")
}

/// Parses `TKT-000123` (any case, any zero padding) to the ticket id.
pub fn parse(prefix: &str, text: &str) -> Option<i64> {
    let t = text.trim();
    let (p, n) = t.split_once('-')?;
    if !p.eq_ignore_ascii_case(prefix) {
        return None;
    }
    n.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_format_and_parse_back() {
        assert_eq!(reference("TKT", 123), "TKT-000123");
        assert_eq!(reference("TKT", 1_234_567), "TKT-1234567");
        assert_eq!(parse("TKT", "tkt-000123"), Some(123));
        assert_eq!(parse("TKT", " TKT-42 "), Some(42));
        assert_eq!(parse("TKT", "ABC-000123"), None);
        assert_eq!(parse("TKT", "TKT-"), None);
    }
}
