//! The maintenance mails (issue 10): samples of the five a list's subscribers receive
//! (notice, reminder, start, end, cancellation; context [`Announcement`], written by
//! `announce::fanout`), and the context of the agent team's reminder when the planned start
//! or end passed without the operator's mark. Times are given already written in the mail's
//! language and the list's calendar ([`Lang::datetime`]).

use super::{Announcement, Kind, Lang, Notice};
use serde::Serialize;

/// To the agent team: a maintenance's planned start (or end) passed without the operator's
/// mark.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceOverdue {
    pub reference: String,
    pub platform: String,
    pub impact: String,
    pub start: String,
    pub end: String,
    /// `start` or `end`: which planned instant passed.
    pub overdue: String,
    /// The stored state, e.g. `scheduled`.
    pub state: String,
    pub support_name: String,
}

/// Samples for the template checks, in `lang`.
pub(super) fn samples(kind: Kind, lang: Lang) -> Vec<Notice> {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("valid literal")
            .with_timezone(&chrono::Utc)
    };
    let calendar = crate::calendar::Calendar::Always;
    let start = lang.datetime(&calendar, at("2026-12-09T22:00:00Z"));
    let end = lang.datetime(&calendar, at("2026-12-10T02:00:00Z"));
    let mail = |emergency: bool, text: Option<&str>, success: bool| Announcement {
        reference: "MNT-000001".into(),
        list_name: "eu-maintenance".into(),
        list_address: "maintenance-eu@lists.example.test".into(),
        platform: "eu".into(),
        title: "Maintenance on eu".into(),
        services: String::new(),
        impact: "Webmail and IMAP unavailable for up to 30 minutes".into(),
        text: text.unwrap_or_default().into(),
        body: String::new(),
        since: start.clone(),
        eta: None,
        duration: String::new(),
        starts: Some(start.clone()),
        ends: Some(end.clone()),
        emergency,
        success,
        unsubscribe_url: Some("https://status.example.test/u/1.0123456789abcdef".into()),
        support_name: "Example Support".into(),
    };
    match kind {
        Kind::MaintenanceNotice => vec![
            Notice::MaintenanceNotice(mail(false, None, false)),
            Notice::MaintenanceNotice(mail(true, None, false)),
        ],
        Kind::MaintenanceReminder => vec![Notice::MaintenanceReminder(mail(false, None, false))],
        Kind::MaintenanceStart => vec![Notice::MaintenanceStart(mail(false, None, false))],
        Kind::MaintenanceEnd => vec![
            Notice::MaintenanceEnd(mail(false, None, true)),
            Notice::MaintenanceEnd(mail(
                false,
                Some("The storage upgrade was rolled back."),
                false,
            )),
        ],
        Kind::MaintenanceCancel => vec![
            Notice::MaintenanceCancel(mail(false, Some("Postponed to January."), false)),
            Notice::MaintenanceCancel(Announcement {
                unsubscribe_url: None,
                ..mail(false, None, false)
            }),
        ],
        Kind::MaintenanceOverdue => ["start", "end"]
            .into_iter()
            .map(|overdue| {
                Notice::MaintenanceOverdue(MaintenanceOverdue {
                    reference: "MNT-000001".into(),
                    platform: "eu".into(),
                    impact: "Webmail and IMAP unavailable for up to 30 minutes".into(),
                    start: start.clone(),
                    end: end.clone(),
                    overdue: overdue.into(),
                    state: "scheduled".into(),
                    support_name: "Example Support".into(),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Templates;

    fn render(n: &Notice, lang: &str) -> (String, String) {
        Templates::load(None).unwrap().render(n, lang).unwrap()
    }

    #[test]
    fn the_end_mail_says_whether_it_succeeded_in_both_languages() {
        let ends = samples(Kind::MaintenanceEnd, Lang::En);
        let (s, b) = render(&ends[0], "en");
        assert!(s.contains("completed successfully"), "{s}");
        assert!(b.contains("succeeded"), "{b}");
        let (s, b) = render(&ends[1], "en");
        assert!(s.contains("ended without success"), "{s}");
        assert!(
            b.contains("did not succeed") && b.contains("rolled back"),
            "{b}"
        );
        let ends = samples(Kind::MaintenanceEnd, Lang::Fr);
        let (s, _) = render(&ends[1], "fr");
        assert!(s.contains("sans succès"), "{s}");
    }

    #[test]
    fn an_emergency_notice_says_so_and_promises_no_reminder() {
        let notices = samples(Kind::MaintenanceNotice, Lang::En);
        let (s, b) = render(&notices[1], "en");
        assert!(
            s.starts_with("[MNT-000001] Emergency maintenance on eu"),
            "{s}"
        );
        assert!(!b.contains("reminder"), "{b}");
        let (s, b) = render(&notices[0], "en");
        assert!(
            s.starts_with("[MNT-000001] Planned maintenance on eu"),
            "{s}"
        );
        assert!(
            b.contains("reminder") && b.contains("Unsubscribe: https://"),
            "{b}"
        );
    }
}
