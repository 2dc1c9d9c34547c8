//! The support processes of the seeds, end to end on a real database, by moving the clock:
//! eXo (suspended, three reminders, closed for no response, a reply opens a linked ticket),
//! XMPro (business-hours SLA in Dallas, escalation, checklist, closure warning), WSO2
//! (resolved, reopened by the client, waiting on WSO2), OX (24/7, phone line), and French.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::{Env, env_registry, mail};
use ticketgate::clock::Clock;
use ticketgate::pipeline::Outcome;

const REGISTRY: &str = r#"
agents = ["mike@support.example.test", "manager@support.example.test"]

[calendars.dallas]
time_zone = "America/Chicago"
hours = { mon = "08:00-17:00", tue = "08:00-17:00", wed = "08:00-17:00", thu = "08:00-17:00", fri = "08:00-17:00" }
holidays = ["2026-11-26"]
day_length = "9h"

[plans.exo]
profile = "exo"
response_targets = { 1 = "4h", 2 = "1d", 3 = "3d" }
reminders = { interval = "3d", count = 3 }

[plans.xmpro]
profile = "exo"
calendar = "dallas"
response_targets = { 1 = "2h", 2 = "1d", 3 = "3d", 4 = "asap" }
managers = ["manager@support.example.test"]
required_information = ["Product version|Version", "Environment"]
reminders = { interval = "2d", count = 1, closure_warning = "2d" }

[plans.xmpro-confirm]
profile = "exo"
calendar = "dallas"
managers = ["manager@support.example.test"]
reminders = { interval = "1d", count = 1, confirm_close = true }

[plans.wso2]
profile = "wso2"
response_targets = { 1 = "1h", 2 = "4h", 3 = "1d", 4 = "2d" }
reminders = { interval = "2d", count = 3 }

[plans.ox]
profile = "exo"
calendar = "24/7"
phone = "+49 2761 8385 0"
response_targets = { 1 = "30m", 2 = "2h", 3 = "8h", 4 = "24h" }

[plans.fr]
language = "fr"
profile = "exo"
required_information = ["Version du produit|Version"]
reminders = { interval = "2d", count = 3 }

[[customers]]
id = "exo-cust"
plan = "exo"
keys = [{ key = "EXOC-0000-0000-0001" }]

[[customers]]
id = "xm-cust"
plan = "xmpro"
keys = [{ key = "XMPR-0000-0000-0002" }]

[[customers]]
id = "xm-confirm"
plan = "xmpro-confirm"
keys = [{ key = "XMCF-0000-0000-0006" }]

[[customers]]
id = "wso2-cust"
plan = "wso2"
keys = [{ key = "WSOT-0000-0000-0003" }]

[[customers]]
id = "ox-cust"
plan = "ox"
keys = [{ key = "OXCU-0000-0000-0004" }]

[[customers]]
id = "fr-cust"
name = "Société Initech"
plan = "fr"
keys = [{ key = "FRCU-0000-0000-0005" }]
"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn env() -> Env {
    env_registry(REGISTRY, "")
}

fn agent(e: &mut Env, reference: &str, body: &str) -> Outcome {
    e.ingest(
        &mail(
            "Mike Chen <mike@support.example.test>",
            &format!("Re: [{reference}] x"),
            body,
        )
        .build(),
    )
}

#[test]
fn exo_suspended_three_reminders_then_closed_for_no_response_and_a_reply_opens_a_linked_ticket() {
    let mut e = env();
    e.ingest(
        &mail(
            "jane@exo.example",
            "Export fails",
            "EXOC-0000-0000-0001\nSeverity: Major",
        )
        .build(),
    );
    assert_eq!(e.ticket(1).status, "new");

    // The agent asks for logs: SUSPENDED, the customer is told, the first response is made.
    assert_eq!(
        agent(
            &mut e,
            "TKT-000001",
            "#status suspended\nPlease send the export logs."
        ),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
    let t = e.ticket(1);
    assert_eq!(t.status, "waiting_on_customer");
    assert!(
        t.sla.responded_at.is_some(),
        "the agent's answer is the response"
    );
    let notice = e.sent("status_change").remove(0);
    assert_eq!(notice.recipient, "jane@exo.example");
    let text = e.text(&notice);
    assert!(
        text.contains("SUSPENDED") && text.contains("Please send the export logs."),
        "{text}"
    );
    assert!(
        !text.contains("Auto-Submitted"),
        "an agent's words are not automatic mail"
    );

    // Three reminders, three days apart, then closed with reason "no response".
    for n in 1..=3 {
        e.clock.advance(Duration::days(3) - Duration::minutes(1));
        assert!(e.tick().is_empty(), "nothing before the interval");
        e.clock.advance(Duration::minutes(1));
        let fired = e.tick();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!(
            fired[0].action.contains(&format!("reminder {n} of 3")),
            "{fired:?}"
        );
    }
    let reminders = e.sent("reminder");
    assert_eq!(reminders.len(), 3);
    assert!(e.text(&reminders[2]).contains("last reminder"));
    e.clock.advance(Duration::days(3));
    let fired = e.tick();
    assert_eq!(fired[0].action, "closed: no response");
    let t = e.ticket(1);
    assert_eq!(
        (t.status.as_str(), t.reason.as_deref()),
        ("closed", Some("no response"))
    );
    let closure = e.sent("closure").remove(0);
    let text = e.text(&closure);
    assert!(text.contains("no response"), "{text}");
    assert!(e.tick().is_empty(), "nothing left to fire");

    // CLOSED is final: the customer's reply opens a new ticket that refers to it.
    let reply = mail(
        "jane@exo.example",
        "Re: [TKT-000001] Export fails",
        "Here are the logs at last.",
    )
    .build();
    assert_eq!(
        e.ingest(&reply),
        Outcome::Created {
            ticket: "TKT-000002".into()
        }
    );
    assert_eq!(e.ticket(1).status, "closed");
    let t2 = e.ticket(2);
    assert_eq!(
        (t2.parent_id, t2.customer.as_str(), t2.status.as_str()),
        (Some(1), "exo-cust", "new")
    );
    let ack = e.sent("acknowledgement").pop().unwrap();
    assert_eq!(ack.ticket_id, Some(2));
    assert!(
        e.text(&ack)
            .contains("refers to your closed request TKT-000001")
    );
}

#[test]
fn xmpro_severity_1_at_1630_dallas_friday_is_due_monday_0930_and_escalates_when_missed() {
    let mut e = env();
    e.clock.set(at("2026-11-20T16:30:00-06:00"));
    let m = mail(
        "ops@xm.example",
        "Sev1: plant down",
        "XMPR-0000-0000-0002\nProduct version: 7.1\nEnvironment: production",
    )
    .build();
    e.ingest(&m);
    let t = e.ticket(1);
    assert_eq!((t.severity, t.status.as_str()), (1, "new"));
    assert_eq!(
        t.sla.due_at,
        Some(at("2026-11-23T09:30:00-06:00")),
        "30 min on Friday, 90 min on Monday"
    );

    e.clock.set(at("2026-11-23T09:29:00-06:00"));
    assert!(e.tick().is_empty());
    e.clock.set(at("2026-11-23T09:31:00-06:00"));
    let fired = e.tick();
    assert!(fired[0].action.contains("escalated"), "{fired:?}");
    let customer = e.sent("escalation_customer");
    let manager = e.sent("escalation_manager");
    assert_eq!(customer.len(), 1);
    assert_eq!(customer[0].recipient, "ops@xm.example");
    assert_eq!(manager.len(), 1);
    assert_eq!(manager[0].recipient, "manager@support.example.test");
    assert!(
        e.text(&manager[0]).contains("Mon 23 Nov 2026 09:30 CST"),
        "{}",
        e.text(&manager[0])
    );
    assert_eq!(
        e.app.store().unwrap().escalations(1).unwrap().len(),
        1,
        "recorded for reports"
    );
    assert!(e.ticket(1).sla.breached_at.is_some());
    assert!(e.tick().is_empty(), "escalates once");
}

#[test]
fn xmpro_checklist_holds_the_clock_then_warns_and_closes() {
    let mut e = env();
    e.clock.set(at("2026-11-23T10:00:00-06:00")); // Monday
    e.ingest(
        &mail(
            "ops@xm.example",
            "Sev2: reports slow",
            "XMPR-0000-0000-0002\nIt is slow.",
        )
        .build(),
    );
    let t = e.ticket(1);
    assert_eq!(t.status, "waiting_on_customer");
    assert_eq!(t.missing_info, ["Product version", "Environment"]);
    assert_eq!(
        t.sla.started_at, None,
        "the clock starts only when the request is complete"
    );
    let ack = e.sent("acknowledgement").remove(0);
    let text = e.text(&ack);
    assert!(
        text.contains("- Product version") && text.contains("- Environment"),
        "{text}"
    );

    // Half of it arrives: still waiting, reminders start over.
    e.clock.set(at("2026-11-23T11:00:00-06:00"));
    e.ingest(
        &mail(
            "ops@xm.example",
            "Re: [TKT-000001] Sev2: reports slow",
            "Version: 7.1",
        )
        .build(),
    );
    assert_eq!(e.ticket(1).missing_info, ["Environment"]);

    // 2 working days later (9 h days, Thanksgiving on Thursday): one reminder.
    e.clock.set(at("2026-11-25T11:00:00-06:00"));
    let fired = e.tick();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].action.contains("reminder 1 of 1"));
    // 2 more working days (Wed 11:00 → skips Thu holiday → Mon 11:00): the closure warning.
    e.clock.set(at("2026-11-27T11:00:00-06:00"));
    assert!(e.tick().is_empty(), "Thanksgiving is not a working day");
    e.clock.set(at("2026-11-30T11:00:00-06:00"));
    let fired = e.tick();
    assert!(fired[0].action.contains("closure warning"), "{fired:?}");
    let warning = e.sent("closure_warning").remove(0);
    assert!(
        e.text(&warning).contains("2 working days"),
        "{}",
        e.text(&warning)
    );
    // 2 more working days: closed.
    e.clock.set(at("2026-12-02T11:00:00-06:00"));
    let fired = e.tick();
    assert_eq!(fired[0].action, "closed: no response");
}

#[test]
fn completing_the_checklist_starts_the_clock_in_business_hours() {
    let mut e = env();
    e.clock.set(at("2026-11-23T10:00:00-06:00"));
    e.ingest(&mail("ops@xm.example", "Sev1: down", "XMPR-0000-0000-0002").build());
    e.clock.set(at("2026-11-23T16:00:00-06:00"));
    e.ingest(
        &mail(
            "ops@xm.example",
            "Re: [TKT-000001] Sev1: down",
            "Version: 7.1\nEnvironment: production",
        )
        .build(),
    );
    let t = e.ticket(1);
    assert!(t.missing_info.is_empty());
    assert_eq!(t.status, "open");
    assert_eq!(t.sla.started_at, Some(at("2026-11-23T16:00:00-06:00")));
    assert_eq!(
        t.sla.due_at,
        Some(at("2026-11-24T09:00:00-06:00")),
        "1 h on Monday, 1 h on Tuesday"
    );
}

#[test]
fn an_automatic_close_can_wait_for_a_managers_confirmation() {
    let mut e = env();
    e.clock.set(at("2026-11-23T10:00:00-06:00"));
    e.ingest(&mail("ops@xm.example", "question", "XMCF-0000-0000-0006").build());
    agent(
        &mut e,
        "TKT-000001",
        "#status suspended\nWhich version do you run?",
    );
    e.clock.set(at("2026-11-24T10:00:00-06:00"));
    assert!(e.tick()[0].action.contains("reminder 1 of 1"));
    e.clock.set(at("2026-11-25T10:00:00-06:00"));
    assert!(e.tick()[0].action.contains("manager's confirmation"));
    assert_eq!(
        e.ticket(1).status,
        "waiting_on_customer",
        "not closed without the manager"
    );
    assert_eq!(
        e.sent("close_confirmation")[0].recipient,
        "manager@support.example.test"
    );
    e.clock.set(at("2026-12-25T10:00:00-06:00"));
    assert!(
        e.tick().is_empty(),
        "no more timers while the manager decides"
    );
    let m = mail(
        "manager@support.example.test",
        "Re: [TKT-000001] question",
        "#close no response\nClosing as agreed.",
    )
    .build();
    e.ingest(&m);
    assert_eq!(e.ticket(1).status, "closed");
}

#[test]
fn wso2_resolved_the_client_reopens_then_work_waits_on_wso2() {
    let mut e = env();
    e.ingest(
        &mail(
            "dev@wso2c.example",
            "[P2] API gateway 502",
            "WSOT-0000-0000-0003",
        )
        .build(),
    );
    agent(
        &mut e,
        "TKT-000001",
        "#resolve workaround\nRestart the gateway with --safe-mode.",
    );
    let t = e.ticket(1);
    assert_eq!(
        (t.status.as_str(), t.reason.as_deref()),
        ("resolved", Some("workaround"))
    );
    let resolution = e.sent("resolution").remove(0);
    let text = e.text(&resolution);
    assert!(
        text.contains("--safe-mode") && text.contains("from 1"),
        "explanation and survey: {text}"
    );

    e.ingest(
        &mail(
            "dev@wso2c.example",
            "Re: [TKT-000001] API gateway 502",
            "Sorry, it is still failing after the restart.",
        )
        .build(),
    );
    assert_eq!(e.ticket(1).status, "reopened");

    agent(
        &mut e,
        "TKT-000001",
        "#status waiting on client\nPlease send the gateway log.",
    );
    assert_eq!(e.ticket(1).status, "waiting_on_customer");
    let notice = e.sent("status_change").remove(0);
    assert!(e.text(&notice).contains("Waiting on Client"));
    e.ingest(
        &mail(
            "dev@wso2c.example",
            "Re: [TKT-000001] API gateway 502",
            "Log attached below.",
        )
        .build(),
    );
    assert_eq!(e.ticket(1).status, "waiting_on_support");

    // Closed tickets can be reopened by the client under WSO2.
    agent(
        &mut e,
        "TKT-000001",
        "#close fix delivered\nFixed in 4.2.1.",
    );
    e.ingest(
        &mail(
            "dev@wso2c.example",
            "Re: [TKT-000001] API gateway 502",
            "It came back this morning.",
        )
        .build(),
    );
    assert_eq!(e.ticket(1).status, "reopened");
    assert_eq!(
        e.app.store().unwrap().tickets(10).unwrap().len(),
        1,
        "no new ticket under WSO2"
    );
}

#[test]
fn resolved_tickets_are_closed_when_accepted_or_after_three_reminders() {
    let mut e = env();
    e.ingest(&mail("jane@exo.example", "one", "EXOC-0000-0000-0001").build());
    e.ingest(&mail("jane@exo.example", "two", "EXOC-0000-0000-0001").build());
    agent(&mut e, "TKT-000001", "#resolve patch sent\nPatch attached.");
    agent(
        &mut e,
        "TKT-000002",
        "#resolve works as intended\nThat is the documented behaviour.",
    );
    e.ingest(
        &mail(
            "jane@exo.example",
            "Re: [TKT-000001] one",
            "OK to close, thanks!",
        )
        .build(),
    );
    let t = e.ticket(1);
    assert_eq!(
        (t.status.as_str(), t.reason.as_deref()),
        ("closed", Some("solution accepted"))
    );
    for _ in 0..3 {
        e.clock.advance(Duration::days(3));
        assert!(e.tick()[0].action.contains("acceptance"));
    }
    e.clock.advance(Duration::days(3));
    assert_eq!(e.tick()[0].action, "closed: solution assumed valid");
    assert_eq!(
        e.ticket(2).reason.as_deref(),
        Some("solution assumed valid")
    );
}

#[test]
fn a_score_in_reply_to_a_closure_notice_is_the_survey_answer() {
    let mut e = env();
    e.ingest(&mail("jane@exo.example", "one", "EXOC-0000-0000-0001").build());
    agent(
        &mut e,
        "TKT-000001",
        "#close duplicate\nSame as TKT-000009.",
    );
    let closure = e.sent("closure").remove(0);
    assert!(e.text(&closure).contains("from 1"));
    e.ingest(&mail("jane@exo.example", "Re: [TKT-000001] one", "5").build());
    assert_eq!(e.ticket(1).survey_score, Some(5));
    assert_eq!(
        e.app.store().unwrap().tickets(10).unwrap().len(),
        1,
        "a score opens no new ticket"
    );
    assert_eq!(e.sent("survey_thanks").len(), 1);
}

#[test]
fn ox_24_7_plan_offers_the_phone_line_for_severity_1_and_counts_every_minute() {
    let mut e = env();
    e.clock.set(at("2026-11-21T23:50:00Z")); // a Saturday night
    e.ingest(
        &mail(
            "noc@ox.example",
            "Severity 1: mail platform down",
            "OXCU-0000-0000-0004",
        )
        .build(),
    );
    let t = e.ticket(1);
    assert_eq!(t.sla.due_at, Some(at("2026-11-22T00:20:00Z")));
    let ack = e.sent("acknowledgement").remove(0);
    assert!(e.text(&ack).contains("+49 2761 8385 0"));
}

#[test]
fn a_french_plan_gets_its_lifecycle_mail_in_french() {
    let mut e = env();
    e.ingest(
        &mail(
            "amelie@fr.example",
            "Problème d'export",
            "Clé de support : FRCU-0000-0000-0005",
        )
        .build(),
    );
    let ack = e.sent("acknowledgement").remove(0);
    let text = e.text(&ack);
    assert!(
        text.contains("il nous faut") && text.contains("Version du produit"),
        "{text}"
    );
    e.clock.advance(Duration::days(2));
    e.tick();
    let reminder = e.sent("reminder").remove(0);
    let text = e.text(&reminder);
    assert!(
        text.contains("Bonjour") && text.contains("TKT-000001"),
        "{text}"
    );
    agent(&mut e, "TKT-000001", "#close no response");
    let closure = e.sent("closure").remove(0);
    let text = e.text(&closure);
    assert!(text.contains("Bonjour"), "{text}");
}

/// B6: the French escalation mails said the response time, the due time and the start in
/// English ("2h (working time, paris calendar)", "Mon 23 Nov 2026 10:00 CET").
#[test]
fn a_french_escalation_says_its_times_in_french() {
    let registry = r#"
agents = ["mike@support.example.test"]

[calendars.paris]
time_zone = "Europe/Paris"
hours = { mon = "09:00-18:00", tue = "09:00-18:00", wed = "09:00-18:00", thu = "09:00-18:00", fri = "09:00-18:00" }
day_length = "9h"

[plans.fr-sla]
language = "fr"
profile = "exo"
calendar = "paris"
response_targets = { 1 = "2h", 2 = "1d" }
managers = ["direction@support.example.test"]

[[customers]]
id = "fr-sla"
name = "Société Initech"
plan = "fr-sla"
keys = [{ key = "FRSL-0000-0000-0007" }]
"#;
    let mut e = env_registry(registry, "");
    // Friday 17:00 in Paris: one working hour on Friday, one on Monday.
    e.clock.set(at("2026-11-20T17:00:00+01:00"));
    e.ingest(
        &mail(
            "amelie@initech.example",
            "Production arrêtée",
            "FRSL-0000-0000-0007\nSévérité : critique",
        )
        .build(),
    );
    assert_eq!(e.ticket(1).severity, 1);
    e.clock.set(at("2026-11-23T10:01:00+01:00"));
    let fired = e.tick();
    assert!(fired[0].action.contains("escalated"), "{fired:?}");
    let customer = e.sent("escalation_customer").remove(0);
    let manager = e.sent("escalation_manager").remove(0);
    // The bodies: the headers (Date:) are English by the RFC.
    let texts =
        [e.text(&customer), e.text(&manager)].map(|t| t.split_once("\n\n").unwrap().1.to_string());
    for text in &texts {
        for english in [
            "working", "calendar", "Mon ", "Fri ", " Nov ", "hour", " day",
        ] {
            assert!(!text.contains(english), "English `{english}` in:\n{text}");
        }
        assert!(
            text.contains("2 heures (temps ouvré, calendrier paris)"),
            "{text}"
        );
        assert!(
            text.contains("lundi 23 novembre 2026 à 10:00 CET"),
            "{text}"
        );
    }
    assert!(
        texts[1].contains("Début :        vendredi 20 novembre 2026 à 17:00 CET"),
        "{}",
        texts[1]
    );
}

#[test]
fn unknown_agent_commands_are_answered_and_nothing_is_applied() {
    let mut e = env();
    e.ingest(&mail("jane@exo.example", "one", "EXOC-0000-0000-0001").build());
    let before = e.ticket(1);
    let out = agent(
        &mut e,
        "TKT-000001",
        "#severity 1\n#stauts open\nWe are on it.",
    );
    assert!(
        matches!(out, Outcome::Quarantined { ref code, .. } if code == "agent_command_error"),
        "{out:?}"
    );
    let t = e.ticket(1);
    assert_eq!(
        (t.severity, t.status),
        (before.severity, before.status),
        "nothing half-applied"
    );
    assert!(t.sla.responded_at.is_none());
    let err = e.sent("command_error").remove(0);
    assert_eq!(err.recipient, "mike@support.example.test");
    assert!(e.text(&err).contains("#stauts"));
    assert!(
        e.sent("agent_reply").is_empty(),
        "nothing reached the customer"
    );

    // A transition the workflow does not have is refused the same way.
    agent(&mut e, "TKT-000001", "#close duplicate");
    let out = agent(&mut e, "TKT-000001", "#status open");
    assert!(matches!(out, Outcome::Quarantined { .. }));
    assert_eq!(e.ticket(1).status, "closed");
}

#[test]
fn an_agent_note_stays_internal_and_a_severity_change_moves_the_due_time() {
    let mut e = env();
    e.ingest(
        &mail(
            "jane@exo.example",
            "one",
            "EXOC-0000-0000-0001\nSeverity: Minor",
        )
        .build(),
    );
    let due3 = e.ticket(1).sla.due_at.unwrap();
    assert_eq!(due3, e.clock.now() + Duration::days(3));
    agent(
        &mut e,
        "TKT-000001",
        "#severity 1\n#note\nCustomer is on an old build.",
    );
    let t = e.ticket(1);
    assert_eq!(t.severity, 1);
    assert_eq!(t.sla.due_at, Some(e.clock.now() + Duration::hours(4)));
    assert!(t.sla.responded_at.is_none(), "a note is not a response");
    assert!(e.sent("agent_reply").is_empty() && e.sent("status_change").is_empty());
    let articles = e.articles(1);
    assert_eq!(articles.last().unwrap().kind, "note");
}

#[test]
fn only_incidents_carry_a_priority() {
    let mut e = env();
    e.ingest(
        &mail(
            "dev@wso2c.example",
            "[P1] how do I rotate keys?",
            "WSOT-0000-0000-0003\nType: Query",
        )
        .build(),
    );
    let t = e.ticket(1);
    assert_eq!((t.issue_type.as_str(), t.severity), ("query", 4));
    assert_eq!(t.sla.target_secs, Some(2 * 86400), "the lowest target");
}

#[test]
fn timers_survive_a_restart_and_a_dry_run_changes_nothing() {
    let mut e = env();
    e.ingest(&mail("jane@exo.example", "one", "EXOC-0000-0000-0001").build());
    agent(&mut e, "TKT-000001", "#status suspended\nLogs please.");
    let outbox_before = e.outbox().len();
    // A new App on the same database: nothing is kept in memory.
    let cfg = (*e.app.cfg).clone();
    e.app = ticketgate::app::App::open(cfg, std::sync::Arc::new(e.clock.clone())).unwrap();
    let later = e.clock.now() + Duration::days(3);
    let dry = ticketgate::timers::tick(&e.app.pipeline, &mut *e.app.store().unwrap(), later, true)
        .unwrap();
    assert_eq!(dry.len(), 1);
    assert!(dry[0].action.contains("reminder 1 of 3"));
    assert_eq!(e.outbox().len(), outbox_before, "a dry run sends nothing");
    assert_eq!(
        e.app.store().unwrap().timers(1).unwrap().len(),
        1,
        "and keeps the timer"
    );
    let real =
        ticketgate::timers::tick(&e.app.pipeline, &mut *e.app.store().unwrap(), later, false)
            .unwrap();
    assert_eq!(real, dry, "the dry run said what the tick does");
    assert_eq!(e.sent("reminder").len(), 1);
}

/// Two instances on one database tick at the same instant: each due reminder is sent once
/// and its timer re-armed once (PostgreSQL reads the due timers without row locks, under the
/// writers' lock: ADR 0020).
#[test]
fn two_instances_ticking_at_once_fire_each_ticket_timer_once() {
    let mut e = env();
    const N: usize = 6;
    for i in 1..=N {
        e.ingest(
            &mail(
                &format!("user{i}@exo.example"),
                "one",
                "EXOC-0000-0000-0001",
            )
            .build(),
        );
        agent(
            &mut e,
            &format!("TKT-00000{i}"),
            "#status suspended\nLogs please.",
        );
    }
    let reminders = e.sent("reminder").len();
    let when = e.clock.now() + Duration::days(3);
    let fired = e.tick_from_two_instances(when);
    assert_eq!(fired.iter().sum::<usize>(), N, "{fired:?}");
    assert_eq!(e.sent("reminder").len(), reminders + N);
    for i in 1..=N as i64 {
        let timers = e.app.store().unwrap().timers(i).unwrap();
        assert_eq!(timers.len(), 1, "ticket {i}: {timers:?}");
        assert!(
            timers[0].due_at > when,
            "re-armed after the tick: {timers:?}"
        );
        assert_eq!(e.ticket(i).followup_stage, 1);
    }
}

#[test]
fn a_timer_that_fails_is_put_off_alone_and_the_others_fire() {
    let mut e = env_registry(REGISTRY, "[templates]\ndir = \"tpl\"\n");
    std::fs::create_dir_all(e.path("tpl/fr")).unwrap();
    std::fs::write(
        e.path("tpl/fr/reminder.txt"),
        "Subject: x\n\n{{ no_such_function() }}\n",
    )
    .unwrap();
    let cfg = (*e.app.cfg).clone();
    e.app = ticketgate::app::App::open(cfg, std::sync::Arc::new(e.clock.clone())).unwrap();
    e.ingest(&mail("amelie@fr.example", "Problème", "FRCU-0000-0000-0005").build()); // French, waits
    e.ingest(&mail("jane@exo.example", "one", "EXOC-0000-0000-0001").build());
    agent(&mut e, "TKT-000002", "#status suspended\nLogs please.");
    e.clock.advance(Duration::days(3));
    let fired = e.tick();
    assert_eq!(fired.len(), 2, "{fired:?}");
    let french = fired.iter().find(|f| f.ticket == "TKT-000001").unwrap();
    assert!(french.action.starts_with("failed"), "{french:?}");
    let english = fired.iter().find(|f| f.ticket == "TKT-000002").unwrap();
    assert!(english.action.contains("reminder 1 of 3"), "{english:?}");
    assert_eq!(e.sent("reminder").len(), 1);
    let timers = e.app.store().unwrap().timers(1).unwrap();
    assert_eq!(
        timers[0].due_at,
        e.clock.now() + Duration::hours(1),
        "put off by an hour"
    );
}

#[test]
fn an_out_of_office_reply_changes_nothing_on_the_ticket() {
    let mut e = env();
    e.ingest(&mail("jane@exo.example", "one", "EXOC-0000-0000-0001").build());
    agent(&mut e, "TKT-000001", "#resolve workaround\nUse the flag.");
    let auto = mail(
        "jane@exo.example",
        "Automatic reply: [TKT-000001] one",
        "I am out of the office until Monday.",
    )
    .header("Auto-Submitted: auto-replied")
    .build();
    assert_eq!(
        e.ingest(&auto),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
    assert_eq!(e.ticket(1).status, "resolved", "not a refusal");
    // An agent's out-of-office is never a command and is not relayed.
    let agent_auto = mail(
        "mike@support.example.test",
        "Re: [TKT-000001] one",
        "#close duplicate\nI am away.",
    )
    .header("Auto-Submitted: auto-replied")
    .build();
    e.ingest(&agent_auto);
    assert_eq!(e.ticket(1).status, "resolved");
    assert!(e.sent("closure").is_empty() && e.sent("agent_reply").is_empty());
    let articles = e.articles(1);
    assert_eq!(articles.last().unwrap().kind, "note");
}

#[test]
fn a_ticket_closed_before_any_reply_is_never_escalated() {
    let mut e = env();
    e.ingest(
        &mail(
            "jane@exo.example",
            "dup",
            "EXOC-0000-0000-0001\nSeverity: Critical",
        )
        .build(),
    );
    agent(&mut e, "TKT-000001", "#close duplicate");
    e.clock.advance(Duration::days(1));
    assert!(e.tick().iter().all(|f| f.timer != "sla"));
    assert!(e.sent("escalation_customer").is_empty());
    assert!(
        e.ticket(1).sla.responded_at.is_some(),
        "the closure notice answered the customer"
    );
}

#[test]
fn completing_the_checklist_keeps_a_status_an_agent_already_set() {
    let mut e = env();
    e.clock.set(at("2026-11-23T10:00:00-06:00"));
    e.ingest(&mail("ops@xm.example", "Sev3: slow", "XMPR-0000-0000-0002").build());
    agent(
        &mut e,
        "TKT-000001",
        "#status in progress\nLooking at it already.",
    );
    e.ingest(
        &mail(
            "ops@xm.example",
            "Re: [TKT-000001] Sev3: slow",
            "Version: 7.1\nEnvironment: test",
        )
        .build(),
    );
    let t = e.ticket(1);
    assert_eq!(t.status, "in_progress");
    assert!(t.missing_info.is_empty());
}

#[test]
fn a_reply_to_a_closed_ticket_whose_key_was_revoked_stays_on_it() {
    let mut e = env();
    e.ingest(&mail("jane@exo.example", "one", "EXOC-0000-0000-0001").build());
    agent(&mut e, "TKT-000001", "#close duplicate");
    let path = e.path("customers.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#"keys = [{ key = "EXOC-0000-0000-0001" }]"#,
        r#"keys = [{ key = "EXOC-0000-0000-0001", revoked = "2026-01-01" }]"#,
    );
    std::fs::write(&path, text).unwrap();
    let reply = mail(
        "jane@exo.example",
        "Re: [TKT-000001] one",
        "It happens again.",
    )
    .build();
    assert_eq!(
        e.ingest(&reply),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
    assert_eq!(
        e.app.store().unwrap().tickets(10).unwrap().len(),
        1,
        "no new ticket without an active key"
    );
    assert_eq!(e.ticket(1).status, "closed");
}
