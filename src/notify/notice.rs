//! What each kind of mail says: the kinds of outbound mail (one template per language each)
//! and the typed context each kind's template renders from. One table below declares them
//! all: the [`Kind`] enum, the built-in template files and the [`Notice`] enum come from it,
//! so a kind cannot exist without its context and its templates.

use super::Lang;
use super::maintenance_mail::{self, MaintenanceOverdue};
use serde::Serialize;

macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident($ctx:ident) = $file:literal;)*) => {
        /// A kind of outbound mail: one template per language, one context type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($(#[$doc])* $kind,)*
        }

        impl Kind {
            /// Every kind, in the order of the table.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)*];

            /// The template's file name without `.txt`; also the outbox row's `kind`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => $file,)*
                }
            }

            /// The built-in template, `templates/LANG/NAME.txt`.
            pub(crate) fn builtin(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $(
                        (Kind::$kind, Lang::En) => {
                            include_str!(concat!("../../templates/en/", $file, ".txt"))
                        }
                        (Kind::$kind, Lang::Fr) => {
                            include_str!(concat!("../../templates/fr/", $file, ".txt"))
                        }
                    )*
                }
            }
        }

        /// One mail's content: its kind, with the context its template renders from. It
        /// serializes as the context alone: the template's variables are its fields.
        #[derive(Debug, Clone, Serialize)]
        #[serde(untagged)]
        pub enum Notice {
            $($(#[$doc])* $kind($ctx),)*
        }

        impl Notice {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Notice::$kind(_) => Kind::$kind,)*
                }
            }
        }
    };
}

kinds! {
    /// A new ticket, to its requester.
    Acknowledgement(Acknowledgement) = "acknowledgement";
    /// A mail that could not open a ticket, to its sender.
    Rejection(Rejection) = "rejection";
    /// A customer's follow-up was added (when `tickets.acknowledge_followups`).
    FollowupReceived(FollowupReceived) = "followup_received";
    /// A new ticket or a customer update, copied to the plan's agent team.
    AgentNotification(AgentNotification) = "agent_notification";
    /// An agent's answer, relayed to the customer.
    AgentReply(AgentReply) = "agent_reply";
    /// An agent changed the status.
    StatusChange(StatusChange) = "status_change";
    /// A reminder while the ticket waits on the customer.
    Reminder(Reminder) = "reminder";
    /// The last notice before an automatic close.
    ClosureWarning(ClosureWarning) = "closure_warning";
    /// An agent resolved the ticket.
    Resolution(Resolution) = "resolution";
    /// The ticket was closed.
    Closure(Closure) = "closure";
    /// The response target was missed: to the customer.
    EscalationCustomer(Escalation) = "escalation_customer";
    /// The response target was missed: to each of the plan's managers.
    EscalationManager(Escalation) = "escalation_manager";
    /// An agent's commands were refused: to the agent.
    CommandError(CommandError) = "command_error";
    /// An automatic close waits for a manager's confirmation.
    CloseConfirmation(CloseConfirmation) = "close_confirmation";
    /// Thanks for a survey score.
    SurveyThanks(SurveyThanks) = "survey_thanks";
    /// A KPI report a customer asked for by mail (the text; the CSV is attached).
    Report(ReportMail) = "report";
    /// A report request that cannot be answered with a report (the period, the senders).
    ReportRefused(ReportRefused) = "report_refused";
    /// Mail in an agent's name failed authentication: to the agent team (rate-limited).
    SenderAlert(SenderAlert) = "sender_alert";
    /// Files of an agent's answer that were left out of the mail to the customer (over
    /// `outbound.max_attachment_size` or the total): to the agent.
    AttachmentsOmitted(AttachmentsOmitted) = "attachments_omitted";
    /// An address bounced hard and is now suppressed: to the plan's agent team, once.
    BounceAlert(BounceAlert) = "bounce_alert";
    /// A maintenance is announced: to a maintenance list's subscribers.
    MaintenanceNotice(Announcement) = "maintenance_notice";
    /// `reminder_before` its start: to the subscribers.
    MaintenanceReminder(Announcement) = "maintenance_reminder";
    /// The operator marked it started: to the subscribers.
    MaintenanceStart(Announcement) = "maintenance_start";
    /// The operator marked it finished, successfully or not: to the subscribers.
    MaintenanceEnd(Announcement) = "maintenance_end";
    /// It was cancelled: to the subscribers.
    MaintenanceCancel(Announcement) = "maintenance_cancel";
    /// Its planned start or end passed without the operator's mark: to the agent team.
    MaintenanceOverdue(MaintenanceOverdue) = "maintenance_overdue";
    /// An outage was declared: to the platform's incident lists.
    OutageDeclared(Announcement) = "outage_declared";
    /// An outage goes on: the operator's latest text, or that it is still ongoing.
    OutageUpdate(Announcement) = "outage_update";
    /// An outage is over, with its duration.
    OutageRestored(Announcement) = "outage_restored";
    /// A new release: to the platform's release lists.
    ReleaseAnnouncement(Announcement) = "release_announcement";
    /// An informational announcement to one list.
    InformationAnnouncement(Announcement) = "information_announcement";
    /// Double opt-in: to the address being subscribed, or being removed from a list.
    SubscriptionConfirm(SubscriptionConfirm) = "subscription_confirm";
    /// A subscription request by mail that was refused: to its sender.
    SubscriptionRefused(SubscriptionRefused) = "subscription_refused";
    /// The outage a ticket was linked to at intake is over: to the ticket's requester
    /// (incident-aware intake; subscribers get `outage_restored`).
    TicketOutageRestored(TicketOutageRestored) = "ticket_outage_restored";
}

/// What an announcement mail to a list's subscribers says (outages, maintenance, releases,
/// information). Times are written in the list's calendar's time zone and language.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    /// `OUT-000001`
    pub reference: String,
    pub list_name: String,
    pub list_address: String,
    pub platform: String,
    /// A release's version, an informational announcement's subject; the services for an
    /// outage.
    pub title: String,
    /// `IMAP, Webmail`
    pub services: String,
    pub impact: String,
    /// The operator's text for this mail (an update, a restoration note), or empty.
    pub text: String,
    /// Release notes or an informational body.
    pub body: String,
    /// Since when (an outage's start).
    pub since: String,
    /// The expected time of restoration, when known.
    pub eta: Option<String>,
    /// How long it has lasted ("2 hours 30 minutes").
    pub duration: String,
    /// Maintenance: planned start and end, and whether it is an emergency.
    pub starts: Option<String>,
    pub ends: Option<String>,
    pub emergency: bool,
    /// Maintenance end: whether it succeeded.
    pub success: bool,
    /// The one-click unsubscribe page, when `announcements.key` and `http.public_url` are set.
    pub unsubscribe_url: Option<String>,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionConfirm {
    pub action: crate::subscriptions::Action,
    pub list: String,
    pub address: String,
    /// The sender of the request, when it is not the address itself.
    pub requested_by: Option<String>,
    pub customer_name: Option<String>,
    /// The confirmation token, in the subject: a reply confirms.
    pub token: String,
    /// `PUBLIC_URL/s/TOKEN`, when the web server has a public URL.
    pub confirm_url: Option<String>,
    /// When a pending subscription lapses, in the mail's language.
    pub expires: Option<String>,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionRefused {
    pub reason: crate::subscriptions::Refusal,
    pub action: crate::subscriptions::Action,
    pub list: Option<String>,
    pub key: Option<String>,
    pub subject: String,
    pub contact_name: Option<String>,
    pub support_name: String,
}

impl Kind {
    /// A public update about a ticket: sent to its requester with its watchers in Cc.
    /// Receipts of one person's mail (acknowledgements, rejections, survey thanks) go to
    /// that person alone.
    pub fn to_watchers(self) -> bool {
        matches!(
            self,
            Kind::AgentReply
                | Kind::StatusChange
                | Kind::Reminder
                | Kind::ClosureWarning
                | Kind::Resolution
                | Kind::Closure
                | Kind::EscalationCustomer
                | Kind::TicketOutageRestored
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BounceAlert {
    pub reference: String,
    pub subject: String,
    /// The address that no longer receives automatic mail.
    pub address: String,
    /// `hard`, or `soft` after repeated soft bounces.
    pub kind: String,
    /// Status code and diagnostic, e.g. "5.1.1 user unknown: 550 5.1.1 <x>: User unknown".
    pub reason: String,
    pub support_name: String,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Acknowledgement {
    pub reference: String,
    pub subject: String,
    pub severity: u8,
    /// The severity as the customer wrote it, e.g. "Major".
    pub stated_severity: Option<String>,
    /// The plan's phone line, for severities 1 and 2.
    pub phone: Option<String>,
    /// Required information the first mail lacks.
    pub missing: Vec<String>,
    /// The closed ticket this one refers to.
    pub parent_reference: Option<String>,
    pub status_name: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub customer_name: String,
    pub support_name: String,
    /// `PUBLIC_URL/t/TOKEN`: the customer's page of the ticket (when `http.public_url` is set).
    pub ticket_url: Option<String>,
    /// The outages open on the customer's platform, which the ticket was linked to.
    pub outages: Vec<OutageNote>,
}

/// An open outage as a ticket's mail mentions it (incident-aware intake). Times are
/// written in the mail's language ([`Lang::datetime`]).
#[derive(Debug, Clone, Serialize)]
pub struct OutageNote {
    /// `OUT-000001`.
    pub reference: String,
    /// "IMAP, Webmail".
    pub services: String,
    pub impact: String,
    pub since: String,
    /// The last operator's update sent about it: its text and time.
    pub last_update: Option<String>,
    pub last_update_at: Option<String>,
    pub restoration_eta: Option<String>,
    /// `PUBLIC_URL/status` (when `http.public_url` is set).
    pub status_url: Option<String>,
}

/// The restoration notice to a ticket linked to the outage.
#[derive(Debug, Clone, Serialize)]
pub struct TicketOutageRestored {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub outage_reference: String,
    pub services: String,
    pub since: String,
    pub restored_at: String,
    /// How long it lasted, e.g. "2 h 30 min".
    pub duration: String,
    /// The operator's restoration note, empty when none.
    pub text: String,
    pub status_url: Option<String>,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// The quarantine code: `no_key`, `unknown_key`, `revoked_key`, `expired_key`,
    /// `sender_not_allowed`, `too_large`…
    pub reason: String,
    pub key: Option<String>,
    /// The subject of the mail rejected.
    pub subject: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// `tickets.key_help`.
    pub key_help: String,
    /// The size limit, e.g. "25 MB".
    pub limit: String,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FollowupReceived {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub support_name: String,
}

/// Whether an agent copy is about a new ticket or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    New,
    Update,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentNotification {
    pub reference: String,
    pub subject: String,
    pub severity: u8,
    pub update: Update,
    /// "Name <address>", or the address.
    pub contact_display: String,
    pub customer_name: String,
    pub plan: String,
    /// The canonical status, e.g. `in_progress`.
    pub status: String,
    /// The customer's text, with the quoted history after it.
    pub text: String,
    /// The outages the new ticket was linked to (empty for updates).
    pub outages: Vec<OutageNote>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentReply {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub agent_name: String,
    pub text: String,
    pub status_name: String,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub agent_name: String,
    /// The agent's text, empty when there is none.
    pub text: String,
    pub status_name: String,
    pub previous_status_name: String,
    pub waiting_on_customer: bool,
    pub support_name: String,
}

/// What a reminder waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitingFor {
    /// Missing information (waiting on the customer).
    Information,
    /// The customer's acceptance of a solution (resolved).
    Acceptance,
}

impl WaitingFor {
    pub fn name(self) -> &'static str {
        match self {
            WaitingFor::Information => "information",
            WaitingFor::Acceptance => "acceptance",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Reminder {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub number: i64,
    pub total: i64,
    pub waiting_for: WaitingFor,
    pub missing: Vec<String>,
    pub status_name: String,
    /// The last reminder: the ticket closes after it without an answer.
    pub closes_after: bool,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClosureWarning {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    /// In the mail's language, e.g. "2 working days", "2 jours ouvrés" ([`Lang::period`]).
    pub period: String,
    pub missing: Vec<String>,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub agent_name: String,
    pub text: String,
    pub status_name: String,
    /// `workaround`, `fix`…
    pub reason: Option<String>,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Closure {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    /// `no_response`, `solution_accepted`, `duplicate`…
    pub reason: Option<String>,
    pub text: String,
    /// Ask for a survey score.
    pub survey: bool,
    /// A reply reopens the ticket (WSO2) rather than opening a linked one (eXo).
    pub reopen: bool,
    pub support_name: String,
}

/// Both escalation mails. The times are written in the mail's language ([`Lang::datetime`],
/// [`Lang::response_target`]).
#[derive(Debug, Clone, Serialize)]
pub struct Escalation {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub customer_name: String,
    pub requester: String,
    pub severity: u8,
    /// The response target with how it is counted, e.g. "2h (working time, dallas calendar)".
    pub target: String,
    pub due_at: String,
    pub started_at: Option<String>,
    pub status_name: String,
    pub plan: String,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandError {
    pub reference: String,
    pub subject: String,
    pub errors: Vec<String>,
    pub agent_name: Option<String>,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloseConfirmation {
    pub reference: String,
    pub subject: String,
    pub customer_name: String,
    pub requester: String,
    /// How many reminders went unanswered.
    pub reminders: i64,
    pub support_name: String,
}

/// A forged (unauthenticated) mail in an agent's name was quarantined.
#[derive(Debug, Clone, Serialize)]
pub struct SenderAlert {
    /// The agent address the mail claimed.
    pub address: String,
    /// The ticket it named, if any.
    pub reference: Option<String>,
    /// The forged mail's subject.
    pub subject: String,
    /// Why it did not authenticate (the verdict's detail).
    pub detail: String,
    /// The quarantined inbound mail's id (`ticketgate quarantine list`).
    pub inbound_id: i64,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentsOmitted {
    pub reference: String,
    pub subject: String,
    pub agent_name: Option<String>,
    /// One line per file left out: its name, size and the limit it is over.
    pub omitted: Vec<String>,
    pub support_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SurveyThanks {
    pub reference: String,
    pub subject: String,
    pub contact_name: Option<String>,
    pub score: u8,
    pub support_name: String,
}

/// A KPI report by mail.
#[derive(Debug, Clone, Serialize)]
pub struct ReportMail {
    pub customer_name: String,
    /// First and last day, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    /// The report as text in the mail's language (`Report::to_text`).
    pub report: String,
    /// The CSV attachment's file name.
    pub csv_filename: String,
    pub contact_name: Option<String>,
    pub support_name: String,
}

/// Why a report request gets no report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportRefusal {
    /// The period ends after today.
    Future,
    /// Longer than a year.
    TooLong,
    /// Starts after it ends.
    Reversed,
    /// Shaped like a period but not one (`2026-02-30`).
    Unreadable,
    /// The customer names no allowed senders: nobody may receive its reports.
    NoAllowedSenders,
}

impl ReportRefusal {
    pub const ALL: [ReportRefusal; 5] = [
        ReportRefusal::Future,
        ReportRefusal::TooLong,
        ReportRefusal::Reversed,
        ReportRefusal::Unreadable,
        ReportRefusal::NoAllowedSenders,
    ];
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportRefused {
    pub reason: ReportRefusal,
    /// The subject of the request.
    pub subject: String,
    /// Today in the customer's time zone, `YYYY-MM-DD`.
    pub today: String,
    /// How many days a request without a period covers.
    pub default_days: u64,
    pub contact_name: Option<String>,
    pub support_name: String,
}

impl Kind {
    /// Sample notices of this kind in `lang`, for checking templates: every optional field
    /// set, and one notice per branch a built-in template takes on a code (rejection
    /// reasons, closure reasons, what a reminder waits for…).
    pub fn samples(self, lang: Lang) -> Vec<Notice> {
        let reference = || "TKT-000042".to_string();
        let subject = || "Export fails with error 500".to_string();
        let contact_name = || Some("Jane Doe".to_string());
        let support_name = || "Example Support".to_string();
        let text = || "Please restart the export service.\n".to_string();
        let missing = || vec!["Product version".to_string(), "Environment".to_string()];
        match self {
            Kind::Acknowledgement => vec![Notice::Acknowledgement(Acknowledgement {
                reference: reference(),
                subject: subject(),
                severity: 1,
                stated_severity: Some("Critical".into()),
                phone: Some("+1 214 555 0142".into()),
                missing: missing(),
                parent_reference: Some("TKT-000007".into()),
                status_name: "New".into(),
                contact_name: contact_name(),
                contact_email: Some("jane@acme.example".into()),
                customer_name: "ACME".into(),
                support_name: support_name(),
                ticket_url: Some(
                    "https://support.example.test/t/0123456789abcdef0123456789abcdef".into(),
                ),
                outages: vec![outage_note(lang)],
            })],
            Kind::Rejection => [
                "no_key",
                "unknown_key",
                "revoked_key",
                "expired_key",
                "sender_not_allowed",
                "too_large",
                "unreadable",
                "unauthenticated_sender",
            ]
            .into_iter()
            .map(|reason| {
                Notice::Rejection(Rejection {
                    reason: reason.into(),
                    key: Some("ACME-0000-0000-0001".into()),
                    subject: subject(),
                    contact_name: contact_name(),
                    contact_email: Some("jane@acme.example".into()),
                    key_help: "Your support key is in your welcome mail.".into(),
                    limit: "25 MB".into(),
                    support_name: support_name(),
                })
            })
            .collect(),
            Kind::FollowupReceived => vec![Notice::FollowupReceived(FollowupReceived {
                reference: reference(),
                subject: subject(),
                contact_name: contact_name(),
                support_name: support_name(),
            })],
            Kind::AgentNotification => [Update::New, Update::Update]
                .into_iter()
                .map(|update| {
                    Notice::AgentNotification(AgentNotification {
                        reference: reference(),
                        subject: subject(),
                        severity: 2,
                        update,
                        contact_display: "Jane Doe <jane@acme.example>".into(),
                        customer_name: "ACME".into(),
                        plan: "gold".into(),
                        status: "in_progress".into(),
                        text: text(),
                        outages: vec![outage_note(lang)],
                    })
                })
                .collect(),
            Kind::AgentReply => vec![Notice::AgentReply(AgentReply {
                reference: reference(),
                subject: subject(),
                contact_name: contact_name(),
                agent_name: "Mike Chen".into(),
                text: text(),
                status_name: "In progress".into(),
                support_name: support_name(),
            })],
            Kind::StatusChange => vec![Notice::StatusChange(StatusChange {
                reference: reference(),
                subject: subject(),
                contact_name: contact_name(),
                agent_name: "Mike Chen".into(),
                text: text(),
                status_name: "Waiting on customer".into(),
                previous_status_name: "In progress".into(),
                waiting_on_customer: true,
                support_name: support_name(),
            })],
            Kind::Reminder => [
                (WaitingFor::Information, false),
                (WaitingFor::Information, true),
                (WaitingFor::Acceptance, false),
                (WaitingFor::Acceptance, true),
            ]
            .into_iter()
            .map(|(waiting_for, closes_after)| {
                Notice::Reminder(Reminder {
                    reference: reference(),
                    subject: subject(),
                    contact_name: contact_name(),
                    number: 3,
                    total: 3,
                    waiting_for,
                    missing: missing(),
                    status_name: "Suspended".into(),
                    closes_after,
                    support_name: support_name(),
                })
            })
            .collect(),
            Kind::ClosureWarning => vec![Notice::ClosureWarning(ClosureWarning {
                reference: reference(),
                subject: subject(),
                contact_name: contact_name(),
                period: lang.period("2d"),
                missing: missing(),
                support_name: support_name(),
            })],
            Kind::Resolution => vec![Notice::Resolution(Resolution {
                reference: reference(),
                subject: subject(),
                contact_name: contact_name(),
                agent_name: "Mike Chen".into(),
                text: text(),
                status_name: "Resolved".into(),
                reason: Some("workaround".into()),
                support_name: support_name(),
            })],
            Kind::Closure => [
                ("no_response", false),
                ("solution_assumed_valid", true),
                ("solution_accepted", false),
                ("duplicate", true),
            ]
            .into_iter()
            .map(|(reason, flag)| {
                Notice::Closure(Closure {
                    reference: reference(),
                    subject: subject(),
                    contact_name: contact_name(),
                    reason: Some(reason.into()),
                    text: text(),
                    survey: flag,
                    reopen: flag,
                    support_name: support_name(),
                })
            })
            .collect(),
            Kind::EscalationCustomer | Kind::EscalationManager => {
                let at = |s: &str| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .expect("valid literal")
                        .with_timezone(&chrono::Utc)
                };
                let calendar = crate::calendar::Calendar::Always;
                let ctx = Escalation {
                    reference: reference(),
                    subject: subject(),
                    contact_name: contact_name(),
                    customer_name: "ACME".into(),
                    requester: "jane@acme.example".into(),
                    severity: 1,
                    target: lang.response_target("2h", "24/7"),
                    due_at: lang.datetime(&calendar, at("2026-11-23T15:30:00Z")),
                    started_at: Some(lang.datetime(&calendar, at("2026-11-20T22:30:00Z"))),
                    status_name: "New".into(),
                    plan: "gold".into(),
                    support_name: support_name(),
                };
                vec![if self == Kind::EscalationCustomer {
                    Notice::EscalationCustomer(ctx)
                } else {
                    Notice::EscalationManager(ctx)
                }]
            }
            Kind::SenderAlert => vec![Notice::SenderAlert(SenderAlert {
                address: "mike@support.example.test".into(),
                reference: Some(reference()),
                subject: subject(),
                detail: "dkim=fail d=support.example.test s=tg: no valid signature".into(),
                inbound_id: 17,
                support_name: support_name(),
            })],
            Kind::CommandError => vec![Notice::CommandError(CommandError {
                reference: reference(),
                subject: subject(),
                errors: vec!["unknown command `#stauts`".into()],
                agent_name: Some("Mike Chen".into()),
                support_name: support_name(),
            })],
            Kind::CloseConfirmation => vec![Notice::CloseConfirmation(CloseConfirmation {
                reference: reference(),
                subject: subject(),
                customer_name: "ACME".into(),
                requester: "jane@acme.example".into(),
                reminders: 3,
                support_name: support_name(),
            })],
            Kind::AttachmentsOmitted => vec![Notice::AttachmentsOmitted(AttachmentsOmitted {
                reference: reference(),
                subject: subject(),
                agent_name: Some("Mike Chen".into()),
                omitted: vec![
                    "heap-dump.hprof (48.0 MB): over outbound.max_attachment_size (10.0 MB)".into(),
                ],
                support_name: support_name(),
            })],
            Kind::OutageDeclared
            | Kind::OutageUpdate
            | Kind::OutageRestored
            | Kind::ReleaseAnnouncement
            | Kind::InformationAnnouncement => {
                let full = Announcement {
                    reference: "OUT-000001".into(),
                    list_name: "eu-incidents".into(),
                    list_address: "eu-incidents@lists.example.test".into(),
                    platform: "eu".into(),
                    title: "IMAP, Webmail".into(),
                    services: "IMAP, Webmail".into(),
                    impact: "Mail cannot be read".into(),
                    text: "The storage cluster is being restarted.".into(),
                    body: "Faster search; calendar sharing.\n".into(),
                    since: "Thu 3 Dec 2026 10:00 UTC".into(),
                    eta: Some("Thu 3 Dec 2026 13:00 UTC".into()),
                    duration: match lang {
                        Lang::En => "2 hours 30 minutes".into(),
                        Lang::Fr => "2 heures 30 minutes".into(),
                    },
                    starts: None,
                    ends: None,
                    emergency: false,
                    success: false,
                    unsubscribe_url: Some(
                        "https://support.example.test/u/1.0123456789abcdef".into(),
                    ),
                    support_name: support_name(),
                };
                let bare = Announcement {
                    text: String::new(),
                    eta: None,
                    unsubscribe_url: None,
                    ..full.clone()
                };
                let wrap = |a: Announcement| match self {
                    Kind::OutageDeclared => Notice::OutageDeclared(a),
                    Kind::OutageUpdate => Notice::OutageUpdate(a),
                    Kind::OutageRestored => Notice::OutageRestored(a),
                    Kind::ReleaseAnnouncement => Notice::ReleaseAnnouncement(a),
                    _ => Notice::InformationAnnouncement(a),
                };
                vec![wrap(full), wrap(bare)]
            }
            Kind::BounceAlert => vec![Notice::BounceAlert(BounceAlert {
                reference: reference(),
                subject: subject(),
                address: "jane@acme.example".into(),
                kind: "hard".into(),
                reason: "5.1.1 user_unknown: 550 5.1.1 <jane@acme.example>: User unknown".into(),
                support_name: support_name(),
            })],
            Kind::TicketOutageRestored => {
                vec![Notice::TicketOutageRestored(TicketOutageRestored {
                    reference: reference(),
                    subject: subject(),
                    contact_name: contact_name(),
                    outage_reference: "OUT-000001".into(),
                    services: "IMAP, Webmail".into(),
                    since: lang.datetime(
                        &crate::calendar::Calendar::Always,
                        sample_at("2026-12-03T10:00:00Z"),
                    ),
                    restored_at: lang.datetime(
                        &crate::calendar::Calendar::Always,
                        sample_at("2026-12-03T12:30:00Z"),
                    ),
                    duration: lang.duration(chrono::Duration::minutes(150)),
                    text: "The storage cluster is back.".into(),
                    status_url: Some("https://support.example.test/status".into()),
                    support_name: support_name(),
                })]
            }
            Kind::SurveyThanks => [2, 5]
                .into_iter()
                .map(|score| {
                    Notice::SurveyThanks(SurveyThanks {
                        reference: reference(),
                        subject: subject(),
                        contact_name: contact_name(),
                        score,
                        support_name: support_name(),
                    })
                })
                .collect(),
            Kind::Report => vec![Notice::Report(ReportMail {
                customer_name: "ACME".into(),
                from: "2026-01-01".into(),
                to: "2026-06-30".into(),
                report: "Tickets: 12\n".into(),
                csv_filename: "report-acme-2026-01-01-2026-06-30.csv".into(),
                contact_name: contact_name(),
                support_name: support_name(),
            })],
            Kind::MaintenanceNotice
            | Kind::MaintenanceReminder
            | Kind::MaintenanceStart
            | Kind::MaintenanceEnd
            | Kind::MaintenanceCancel
            | Kind::MaintenanceOverdue => maintenance_mail::samples(self, lang),
            Kind::SubscriptionConfirm => [
                crate::subscriptions::Action::Subscribe,
                crate::subscriptions::Action::Unsubscribe,
            ]
            .into_iter()
            .map(|action| {
                Notice::SubscriptionConfirm(SubscriptionConfirm {
                    action,
                    list: "eu-incidents".into(),
                    address: "ops@acme.example".into(),
                    requested_by: Some("jane@acme.example".into()),
                    customer_name: Some("ACME".into()),
                    token: "c42-0123456789abcdef0123456789abcdef".into(),
                    confirm_url: Some(
                        "https://support.example/s/c42-0123456789abcdef0123456789abcdef".into(),
                    ),
                    expires: Some("2026-12-06 10:00".into()),
                    support_name: support_name(),
                })
            })
            .collect(),
            Kind::SubscriptionRefused => crate::subscriptions::Refusal::ALL
                .into_iter()
                .map(|reason| {
                    Notice::SubscriptionRefused(SubscriptionRefused {
                        reason,
                        action: crate::subscriptions::Action::Subscribe,
                        list: Some("eu-incidents".into()),
                        key: Some("ACME-7Q4P-XK2M".into()),
                        subject: "subscribe eu-incidents".into(),
                        contact_name: contact_name(),
                        support_name: support_name(),
                    })
                })
                .collect(),
            Kind::ReportRefused => ReportRefusal::ALL
                .into_iter()
                .map(|reason| {
                    Notice::ReportRefused(ReportRefused {
                        reason,
                        subject: "report 2026-01-01..2027-06-30".into(),
                        today: "2026-12-02".into(),
                        default_days: 30,
                        contact_name: contact_name(),
                        support_name: support_name(),
                    })
                })
                .collect(),
        }
    }
}

fn sample_at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("valid literal")
        .with_timezone(&chrono::Utc)
}

/// A sample open outage, every optional field set.
fn outage_note(lang: Lang) -> OutageNote {
    let calendar = crate::calendar::Calendar::Always;
    OutageNote {
        reference: "OUT-000001".into(),
        services: "IMAP, Webmail".into(),
        impact: "Mail cannot be read over IMAP.".into(),
        since: lang.datetime(&calendar, sample_at("2026-12-03T10:00:00Z")),
        last_update: Some("The storage cluster is being restarted.".into()),
        last_update_at: Some(lang.datetime(&calendar, sample_at("2026-12-03T11:00:00Z"))),
        restoration_eta: Some(lang.datetime(&calendar, sample_at("2026-12-03T13:00:00Z"))),
        status_url: Some("https://support.example.test/status".into()),
    }
}
