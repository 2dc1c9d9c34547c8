//! The subject commands of a subscription mail: `subscribe LIST [ADDRESS]` and
//! `unsubscribe LIST [ADDRESS]` (French: `abonner` / `désabonner`, also without the accent).
//! LIST may be left out when the mail was written to the list's own address; ADDRESS
//! defaults to the sender. Support keys written in the subject are not words of the command
//! (they are read from the mail like any key). Pure.

/// What the mail asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Subscribe,
    Unsubscribe,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe",
            Action::Unsubscribe => "unsubscribe",
        }
    }
}

/// A subject read as a subscription command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub action: Action,
    /// The list's name as written (lower case), when one was.
    pub list: Option<String>,
    /// The address to (un)subscribe, lower case, when one was written.
    pub address: Option<String>,
}

const WORDS: &[(&str, Action)] = &[
    ("subscribe", Action::Subscribe),
    ("unsubscribe", Action::Unsubscribe),
    ("abonner", Action::Subscribe),
    ("désabonner", Action::Unsubscribe),
    ("desabonner", Action::Unsubscribe),
];

/// Reads `subject` as a command, or `None` when it is not one: the first word must be a
/// command word, and at most one list name and one address may follow (anything more is an
/// ordinary subject, e.g. "Unsubscribe does not work on my account").
pub fn parse(subject: &str, keys: &[String]) -> Option<Command> {
    let mut words = subject
        .split(|c: char| c.is_whitespace() || ",;[]()".contains(c))
        .filter(|w| !w.is_empty());
    let first = words.next()?.to_lowercase();
    let action = WORDS.iter().find(|(w, _)| *w == first).map(|(_, a)| *a)?;
    let mut list = None;
    let mut address = None;
    for w in words {
        if keys.iter().any(|k| k.eq_ignore_ascii_case(w)) {
            continue;
        }
        let w = w.trim_start_matches('<').trim_end_matches('>');
        if w.contains('@') {
            if address.is_some() || !plausible_address(w) {
                return None;
            }
            address = Some(w.to_ascii_lowercase());
        } else {
            if list.is_some() || !plausible_list(w) {
                return None;
            }
            list = Some(w.to_ascii_lowercase());
        }
    }
    Some(Command {
        action,
        list,
        address,
    })
}

/// `local@domain.tld`, printable ASCII, one `@`, a dot in the domain.
pub fn plausible_address(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && a.len() <= 254
        && a.bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"(),;:\\[]".contains(&b))
}

/// A list name as the registry writes them: letters, digits, `-`, `_`, `.`.
fn plausible_list(w: &str) -> bool {
    w.len() <= 64
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(action: Action, list: Option<&str>, address: Option<&str>) -> Option<Command> {
        Some(Command {
            action,
            list: list.map(str::to_string),
            address: address.map(str::to_string),
        })
    }

    #[test]
    fn reads_a_list_and_an_optional_address_in_any_case() {
        assert_eq!(
            parse("subscribe eu-incidents", &[]),
            cmd(Action::Subscribe, Some("eu-incidents"), None)
        );
        assert_eq!(
            parse("  Subscribe EU-Incidents <Ops@Acme.Example> ", &[]),
            cmd(
                Action::Subscribe,
                Some("eu-incidents"),
                Some("ops@acme.example")
            )
        );
        assert_eq!(
            parse("UNSUBSCRIBE eu-incidents ops@acme.example", &[]),
            cmd(
                Action::Unsubscribe,
                Some("eu-incidents"),
                Some("ops@acme.example")
            )
        );
    }

    #[test]
    fn the_list_may_be_left_out_and_the_address_may_come_first() {
        assert_eq!(
            parse("unsubscribe", &[]),
            cmd(Action::Unsubscribe, None, None)
        );
        assert_eq!(
            parse("subscribe ops@acme.example eu-incidents", &[]),
            cmd(
                Action::Subscribe,
                Some("eu-incidents"),
                Some("ops@acme.example")
            )
        );
    }

    #[test]
    fn french_words_are_commands_too() {
        assert_eq!(
            parse("abonner eu-incidents", &[]),
            cmd(Action::Subscribe, Some("eu-incidents"), None)
        );
        assert_eq!(
            parse("Désabonner eu-incidents", &[]),
            cmd(Action::Unsubscribe, Some("eu-incidents"), None)
        );
        assert_eq!(
            parse("desabonner", &[]),
            cmd(Action::Unsubscribe, None, None)
        );
    }

    #[test]
    fn a_support_key_in_the_subject_is_not_a_list_name() {
        let keys = vec!["ACME-7Q4P-XK2M".to_string()];
        assert_eq!(
            parse("subscribe eu-incidents [ACME-7Q4P-XK2M]", &keys),
            cmd(Action::Subscribe, Some("eu-incidents"), None)
        );
    }

    #[test]
    fn ordinary_subjects_are_not_commands() {
        for s in [
            "",
            "Re: subscribe eu-incidents",
            "subscriber list is wrong",
            "Unsubscribe does not work on my account",
            "subscribe a b",
            "subscribe a@x.example b@x.example",
            "subscribe not-an-address@",
            "subscribe eu/incidents",
        ] {
            assert_eq!(parse(s, &[]), None, "{s:?}");
        }
    }

    #[test]
    fn addresses_are_checked_for_shape() {
        assert!(plausible_address("ops@acme.example"));
        assert!(plausible_address("ops+status@acme.example"));
        assert!(!plausible_address("ops@localhost"));
        assert!(!plausible_address("@acme.example"));
        assert!(!plausible_address("a@b@acme.example"));
        assert!(!plausible_address("ops@acme.example\r\nBcc: x@y.example"));
    }
}
