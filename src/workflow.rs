//! Ticket lifecycle (SPEC §4): canonical statuses, the `exo` and `wso2` workflow profiles
//! (names people see, transitions that exist, what a customer's mail does in each status),
//! and the commands agents write at the top of a reply. Pure: no IO, no clock.

use serde::Serialize;

/// Canonical statuses, stored as their `as_str()` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Open,
    InProgress,
    WaitingOnCustomer,
    WaitingOnSupport,
    Resolved,
    Closed,
    Reopened,
    Deferred,
}

/// Compares with a stored name (`"in_progress"`).
impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::New,
        Status::Open,
        Status::InProgress,
        Status::WaitingOnCustomer,
        Status::WaitingOnSupport,
        Status::Resolved,
        Status::Closed,
        Status::Reopened,
        Status::Deferred,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::WaitingOnCustomer => "waiting_on_customer",
            Status::WaitingOnSupport => "waiting_on_support",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Reopened => "reopened",
            Status::Deferred => "deferred",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Still being worked on (not resolved or closed).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }
}

/// A workflow profile, chosen per plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// eXo: NEW, OPEN, SUSPENDED, IN PROGRESS, RESOLVED, CLOSED; CLOSED is final.
    Exo,
    /// WSO2: Open, In Progress, Waiting on Client, Waiting on WSO2, Resolved, Closed,
    /// Re-opened, Deferred; resolved and closed tickets can be reopened by the client.
    Wso2,
}

/// What a customer's mail does to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerEffect {
    /// Added to the ticket; the status stays.
    Append,
    /// The ticket waited on the customer: work resumes in this status.
    Resume(Status),
    /// An acceptance of the proposed solution: closed with reason `solution accepted`.
    Accept,
    /// The solution is refused: back to this status.
    Refuse(Status),
    /// A closed ticket under a profile where closed is final: a new ticket that refers to it.
    NewLinkedTicket,
    /// A closed ticket reopened.
    Reopen,
    /// A satisfaction score (1–5) answering a resolution or closure notice.
    Survey(u8),
}

/// Compares with a profile's name (`"exo"`).
impl PartialEq<&str> for Profile {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Profile {
    pub fn parse(name: &str) -> Option<Profile> {
        match name.trim().to_ascii_lowercase().as_str() {
            "exo" => Some(Profile::Exo),
            "wso2" => Some(Profile::Wso2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Exo => "exo",
            Profile::Wso2 => "wso2",
        }
    }

    /// The statuses this profile uses.
    pub fn statuses(self) -> &'static [Status] {
        match self {
            Profile::Exo => &[
                Status::New,
                Status::Open,
                Status::WaitingOnCustomer,
                Status::InProgress,
                Status::Resolved,
                Status::Closed,
            ],
            Profile::Wso2 => &[
                Status::New,
                Status::InProgress,
                Status::WaitingOnCustomer,
                Status::WaitingOnSupport,
                Status::Resolved,
                Status::Closed,
                Status::Reopened,
                Status::Deferred,
            ],
        }
    }

    /// The name people see for a status.
    pub fn display(self, s: Status) -> &'static str {
        match (self, s) {
            (Profile::Exo, Status::New) => "NEW",
            (Profile::Exo, Status::Open) => "OPEN",
            (Profile::Exo, Status::WaitingOnCustomer) => "SUSPENDED",
            (Profile::Exo, Status::InProgress) => "IN PROGRESS",
            (Profile::Exo, Status::Resolved) => "RESOLVED",
            (Profile::Exo, Status::Closed) => "CLOSED",
            (Profile::Exo, Status::WaitingOnSupport) => "IN PROGRESS",
            (Profile::Exo, Status::Reopened) => "OPEN",
            (Profile::Exo, Status::Deferred) => "SUSPENDED",
            (Profile::Wso2, Status::New | Status::Open) => "Open",
            (Profile::Wso2, Status::InProgress) => "In Progress",
            (Profile::Wso2, Status::WaitingOnCustomer) => "Waiting on Client",
            (Profile::Wso2, Status::WaitingOnSupport) => "Waiting on WSO2",
            (Profile::Wso2, Status::Resolved) => "Resolved",
            (Profile::Wso2, Status::Closed) => "Closed",
            (Profile::Wso2, Status::Reopened) => "Re-opened",
            (Profile::Wso2, Status::Deferred) => "Deferred",
        }
    }

    /// A status as an agent writes it: the display name or the canonical name, any case,
    /// with spaces, dashes or underscores (`suspended`, `in progress`, `waiting_on_client`).
    pub fn status_named(self, text: &str) -> Option<Status> {
        let norm = |s: &str| {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        };
        let want = norm(text);
        if want.is_empty() {
            return None;
        }
        self.statuses()
            .iter()
            .copied()
            .find(|s| norm(self.display(*s)) == want || norm(s.as_str()) == want)
            .or(match (self, want.as_str()) {
                (Profile::Wso2, "waitingonclient" | "waitingoncustomer") => {
                    Some(Status::WaitingOnCustomer)
                }
                (Profile::Wso2, "waitingonwso2" | "waitingonsupport") => {
                    Some(Status::WaitingOnSupport)
                }
                (Profile::Wso2, "open") => Some(Status::New),
                (Profile::Wso2, "reopen") => Some(Status::Reopened),
                _ => None,
            })
    }

    /// Whether an agent may move a ticket from `from` to `to`.
    pub fn can_transition(self, from: Status, to: Status) -> bool {
        if from == to || !self.statuses().contains(&to) || to == Status::New {
            return false;
        }
        match self {
            // CLOSED is final: a problem that remains gets a new ticket.
            Profile::Exo => from != Status::Closed,
            // A closed ticket can only be reopened.
            Profile::Wso2 => from != Status::Closed || to == Status::Reopened,
        }
    }

    /// What a customer's mail (its new text) does to a ticket in `status`.
    pub fn customer_effect(self, status: Status, text: &str) -> CustomerEffect {
        if matches!(status, Status::Resolved | Status::Closed)
            && let Some(score) = survey_score(text)
        {
            return CustomerEffect::Survey(score);
        }
        match status {
            Status::WaitingOnCustomer => CustomerEffect::Resume(match self {
                Profile::Exo => Status::InProgress,
                Profile::Wso2 => Status::WaitingOnSupport,
            }),
            Status::Resolved if is_acceptance(text) => CustomerEffect::Accept,
            Status::Resolved => CustomerEffect::Refuse(match self {
                // eXo §3.2: "If the solution provided does not suit you, set the ticket to OPEN".
                Profile::Exo => Status::Open,
                Profile::Wso2 => Status::Reopened,
            }),
            Status::Closed => match self {
                Profile::Exo => CustomerEffect::NewLinkedTicket,
                Profile::Wso2 => CustomerEffect::Reopen,
            },
            _ => CustomerEffect::Append,
        }
    }
}

/// "accept", "close it", "ok to close", "accepter", "fermer"… starting the first line of the
/// new text (after a greeting), with no negation or question on that line. Anything else is
/// a refusal: a wrong "close" would end a ticket that is not solved.
pub fn is_acceptance(text: &str) -> bool {
    let first: String = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !is_greeting(l))
        .unwrap_or("")
        .to_lowercase()
        .replace('\u{2019}', "'");
    const YES: &[&str] = &[
        "accept",
        "i accept",
        "we accept",
        "accepted",
        "close it",
        "please close",
        "you can close",
        "you may close",
        "ok to close",
        "okay to close",
        "ok, you can close",
        "fine to close",
        "accepter",
        "j'accepte",
        "nous acceptons",
        "accepté",
        "fermer",
        "vous pouvez fermer",
        "merci de fermer",
        "ok pour fermer",
        "ok pour clôturer",
        "vous pouvez clôturer",
    ];
    const NO: &[&str] = &[
        "not ",
        "n't",
        "unable",
        "cannot",
        "impossible",
        "refuse",
        "still",
        "n'",
        "ne ",
        "pas ",
        "toujours",
        "?",
    ];
    YES.iter().any(|y| first.starts_with(y)) && !NO.iter().any(|n| first.contains(n))
}

fn is_greeting(line: &str) -> bool {
    let l = line.to_lowercase();
    [
        "hi",
        "hello",
        "dear",
        "bonjour",
        "hi,",
        "hello,",
        "bonjour,",
        "thanks",
        "thank you",
        "merci",
    ]
    .iter()
    .any(|g| l == *g || l.starts_with(&format!("{g} ")) || l.starts_with(&format!("{g},")))
        && l.len() < 30
}

/// A reply that is only a score: `4`, `5/5`, `Score: 3`, `Note : 4/5`, at most followed by
/// a short thanks or a name. A number that starts a real message ("2 servers are down",
/// "2, still failing") is not a score.
pub fn survey_score(text: &str) -> Option<u8> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let first = lines.first()?.to_lowercase();
    let rest = first
        .trim_start_matches("score")
        .trim_start_matches("note")
        .trim_start_matches("rating")
        .trim_start_matches("satisfaction")
        .trim_start()
        .trim_start_matches([':', '='])
        .trim();
    let digits = rest.trim_end_matches("/5").trim_end_matches("/ 5").trim();
    let score: u8 = digits.parse().ok()?;
    if !(1..=5).contains(&score) {
        return None;
    }
    // What follows may only be a sign-off: one short line without a digit or a complaint.
    let after = lines[1..].join(" ").to_lowercase();
    const COMPLAINT: &[&str] = &[
        "fail", "still", "not", "n't", "reopen", "broken", "error", "issue", "problem", "pas",
        "toujours", "encore", "erreur", "?",
    ];
    let sign_off = lines.len() <= 2
        && after.chars().count() <= 40
        && !after.chars().any(|c| c.is_ascii_digit())
        && !COMPLAINT.iter().any(|w| after.contains(w));
    sign_off.then_some(score)
}

/// One command an agent wrote at the top of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status(Status),
    Severity(u8),
    Resolve(String),
    Close(String),
    /// `#cc add ADDRESS`: the address (lower-case) becomes a watcher of the ticket.
    CcAdd(String),
    /// `#cc remove ADDRESS`: the address stops watching the ticket.
    CcRemove(String),
}

/// An agent's reply, read: commands, whether it is an internal note, and the text to relay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentMail {
    pub commands: Vec<Command>,
    pub note: bool,
    pub body: String,
    /// Commands that could not be read; when not empty nothing is applied.
    pub errors: Vec<String>,
    /// Files to relay with the answer (the agent's mail's attachments, or `--attach`).
    pub attachments: Vec<crate::parse::Attachment>,
}

/// Reads `#status …`, `#severity N`, `#resolve REASON`, `#close REASON` and `#note` lines
/// at the top of an agent's reply (blank lines between them allowed). The first other line
/// starts the body.
pub fn parse_agent_mail(profile: Profile, text: &str) -> AgentMail {
    let mut out = AgentMail::default();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.peek() {
        let t = line.trim();
        if t.is_empty() {
            lines.next();
            continue;
        }
        let Some(cmd) = t.strip_prefix('#') else {
            break;
        };
        if cmd.is_empty() || cmd.starts_with(['#', ' ']) {
            break; // "# heading" or "##": not a command
        }
        lines.next();
        let (name, arg) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
        let arg = arg.trim();
        match name.to_ascii_lowercase().as_str() {
            "status" => match profile.status_named(arg) {
                Some(s) => out.commands.push(Command::Status(s)),
                None => out.errors.push(format!(
                    "#status {arg}: not a status of the {} workflow; use one of: {}",
                    profile.name(),
                    profile
                        .statuses()
                        .iter()
                        .map(|s| profile.display(*s))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
            "severity" | "sev" | "priority" => match arg.trim_start_matches(['s', 'S', 'p', 'P']).parse::<u8>() {
                Ok(n @ 1..=4) => out.commands.push(Command::Severity(n)),
                _ => out.errors.push(format!("#severity {arg}: write a severity from 1 to 4")),
            },
            "resolve" | "resolved" if !arg.is_empty() => out.commands.push(Command::Resolve(arg.to_string())),
            "close" | "closed" if !arg.is_empty() => out.commands.push(Command::Close(arg.to_string())),
            "resolve" | "resolved" | "close" | "closed" => out.errors.push(format!(
                "#{name} needs a reason, e.g. #{name} workaround, #{name} duplicate, #{name} patch sent"
            )),
            "note" => out.note = true,
            "cc" => {
                let (verb, address) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
                // `ADDRESS`, `<ADDRESS>` or `Name <ADDRESS>`.
                let address = match address.rsplit_once('<') {
                    Some((_, a)) => a.strip_suffix('>').unwrap_or("").trim(),
                    None => address.trim(),
                };
                match (verb.to_ascii_lowercase().as_str(), watcher_address(address)) {
                    ("add", Some(a)) => out.commands.push(Command::CcAdd(a)),
                    ("remove" | "rm" | "del", Some(a)) => out.commands.push(Command::CcRemove(a)),
                    _ => out.errors.push(format!(
                        "#cc {arg}: write #cc add ADDRESS or #cc remove ADDRESS, with one mail address"
                    )),
                }
            }
            other => out.errors.push(format!(
                "#{other}: unknown command; the commands are #status, #severity, #resolve REASON, #close REASON, #cc add|remove ADDRESS and #note"
            )),
        }
    }
    out.body = lines.collect::<Vec<_>>().join("\n").trim().to_string();
    out
}

/// `text` as a watcher's address (lower-case), when it is one mail address.
pub fn watcher_address(text: &str) -> Option<String> {
    let a = text.trim().to_ascii_lowercase();
    let (local, domain) = a.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !a.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
        && a.matches('@').count() == 1
        && a.len() <= 254;
    ok.then_some(a)
}

/// A watcher's reply that asks to stop receiving the ticket: `#unwatch` as the first line of
/// its new text.
pub fn is_unwatch(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.eq_ignore_ascii_case("#unwatch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exo_closed_is_final_and_a_reply_opens_a_linked_ticket() {
        let p = Profile::Exo;
        assert!(!p.can_transition(Status::Closed, Status::Open));
        assert_eq!(
            p.customer_effect(Status::Closed, "it broke again"),
            CustomerEffect::NewLinkedTicket
        );
        assert_eq!(p.display(Status::WaitingOnCustomer), "SUSPENDED");
        assert_eq!(p.status_named("suspended"), Some(Status::WaitingOnCustomer));
        assert_eq!(p.status_named("In Progress"), Some(Status::InProgress));
        assert_eq!(p.status_named("deferred"), None, "not an eXo status");
    }

    #[test]
    fn wso2_reopens_closed_and_resolved_tickets() {
        let p = Profile::Wso2;
        assert!(p.can_transition(Status::Closed, Status::Reopened));
        assert!(!p.can_transition(Status::Closed, Status::InProgress));
        assert_eq!(
            p.customer_effect(Status::Closed, "still broken"),
            CustomerEffect::Reopen
        );
        assert_eq!(
            p.customer_effect(Status::Resolved, "No, this does not fix it"),
            CustomerEffect::Refuse(Status::Reopened)
        );
        assert_eq!(
            p.customer_effect(Status::WaitingOnCustomer, "here are the logs"),
            CustomerEffect::Resume(Status::WaitingOnSupport)
        );
        assert_eq!(
            p.status_named("waiting on client"),
            Some(Status::WaitingOnCustomer)
        );
        assert_eq!(
            p.status_named("Waiting on WSO2"),
            Some(Status::WaitingOnSupport)
        );
    }

    #[test]
    fn acceptance_words_in_english_and_french() {
        for yes in [
            "Accept",
            "Hello,\nyou can close it, thanks",
            "OK to close",
            "Accepter",
            "Bonjour,\nVous pouvez fermer le ticket",
            "fermer",
        ] {
            assert!(is_acceptance(yes), "{yes}");
        }
        for no in [
            "I do not accept this",
            "It still fails",
            "Please don't close it",
            "Please don\u{2019}t close it",
            "Je n'accepte pas",
            "Still unable to close it after the patch",
            "Impossible de fermer l'application, l'erreur persiste",
            "The server refuses to accept connections",
            "Why did you close it? still broken",
        ] {
            assert!(!is_acceptance(no), "{no}");
        }
        assert_eq!(
            Profile::Exo.customer_effect(Status::Resolved, "ok to close"),
            CustomerEffect::Accept
        );
    }

    #[test]
    fn a_bare_score_answers_the_survey() {
        assert_eq!(survey_score("5"), Some(5));
        assert_eq!(survey_score("Score: 4/5\n\nthanks"), Some(4));
        assert_eq!(survey_score("Note : 3"), Some(3));
        assert_eq!(survey_score("6"), None);
        assert_eq!(survey_score("2 servers are down again"), None);
        assert_eq!(
            survey_score("2\nStill failing on node 2\nPlease reopen"),
            None
        );
        assert_eq!(survey_score("4\nThanks, Jane"), Some(4));
        assert_eq!(
            Profile::Exo.customer_effect(Status::Closed, "4"),
            CustomerEffect::Survey(4)
        );
    }

    #[test]
    fn agent_commands_are_read_from_the_top() {
        let m = parse_agent_mail(
            Profile::Exo,
            "#status suspended\n#severity 2\n\nHello Jane,\nplease send the logs.\n#not a command here",
        );
        assert_eq!(
            m.commands,
            vec![
                Command::Status(Status::WaitingOnCustomer),
                Command::Severity(2)
            ]
        );
        assert!(!m.note && m.errors.is_empty());
        assert_eq!(
            m.body,
            "Hello Jane,\nplease send the logs.\n#not a command here"
        );
        let n = parse_agent_mail(Profile::Exo, "#note\nCustomer seems to run an old build.");
        assert!(n.note);
        let r = parse_agent_mail(Profile::Exo, "#resolve workaround\nUse the export flag.");
        assert_eq!(r.commands, vec![Command::Resolve("workaround".into())]);
    }

    #[test]
    fn cc_commands_name_one_address() {
        let m = parse_agent_mail(
            Profile::Exo,
            "#cc add Bob@ACME.example\n#cc remove <carol@acme.example>\nThanks",
        );
        assert_eq!(
            m.commands,
            vec![
                Command::CcAdd("bob@acme.example".into()),
                Command::CcRemove("carol@acme.example".into())
            ]
        );
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        for bad in [
            "#cc add",
            "#cc add not-an-address",
            "#cc invite bob@acme.example",
            "#cc add a@b.example c@d.example",
        ] {
            let m = parse_agent_mail(Profile::Exo, bad);
            assert_eq!(m.errors.len(), 1, "{bad}: {:?}", m);
            assert!(m.commands.is_empty(), "{bad}");
        }
        assert!(is_unwatch("\n  #UNWATCH\nthanks"));
        assert!(!is_unwatch("please keep me\n#unwatch"));
    }

    #[test]
    fn unknown_or_incomplete_commands_are_errors() {
        let m = parse_agent_mail(Profile::Exo, "#stat open\n#close\n#severity 9\nbody");
        assert_eq!(m.errors.len(), 3, "{:?}", m.errors);
        assert!(m.errors[0].contains("unknown command"));
        assert!(m.errors[1].contains("needs a reason"));
        let s = parse_agent_mail(Profile::Exo, "#status deferred");
        assert!(
            s.errors[0].contains("SUSPENDED"),
            "lists the profile's statuses: {:?}",
            s.errors
        );
    }
}
