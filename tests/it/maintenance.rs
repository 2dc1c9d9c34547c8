//! Maintenance announcements (issue 10): the notice rule (refused at 2 business days, Friday
//! for Tuesday; accepted at 3), the reminder `reminder_before` the start, the start and end
//! mails, an emergency announced at once, and the agent team's reminder when the planned
//! start or end passes without a mark. Time moves with the test's clock and `tick`. Runs on
//! SQLite, and on PostgreSQL when `TICKETGATE_TEST_DATABASE_URL` is set.

use crate::common::{self, Env};
use chrono::{DateTime, Utc};
use ticketgate::clock::Clock;
use ticketgate::services::ServiceError;
use ticketgate::services::maintenance::{self, ScheduleRequest};
use ticketgate::store::{
    AnnouncementKind, AnnouncementState, NewSubscriber, SubscriberState, UpdateKind,
};

/// The test registry plus a Paris business calendar, customers on the `eu` and `us`
/// platforms, their maintenance lists, and an agent team.
fn registry() -> String {
    format!(
        r#"{}
[calendars.paris]
time_zone = "Europe/Paris"
hours = {{ mon = "09:00-18:00", tue = "09:00-18:00", wed = "09:00-18:00", thu = "09:00-18:00", fri = "09:00-18:00" }}
holidays = ["2026-12-25"]

[plans.eu]
language = "en"
platform = "eu"
agent_team = "ops@support.example.test"

[[customers]]
id = "hansa"
name = "Hansa"
plan = "eu"
keys = [{{ key = "HANS-0000-0000-0006" }}]

[[customers]]
id = "yankee"
name = "Yankee"
plan = "standard"
platform = "us"
keys = [{{ key = "YANK-0000-0000-0007" }}]

[lists.eu-maintenance]
type = "maintenance"
platform = "eu"
address = "maintenance-eu@lists.example.test"
language = "en"
calendar = "paris"

[lists.us-maintenance]
type = "maintenance"
platform = "us"
address = "maintenance-us@lists.example.test"
"#,
        common::REGISTRY
    )
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// Friday 4 December 2026, 15:00 in Paris.
const FRIDAY: &str = "2026-12-04T15:00:00+01:00";
/// Wednesday 9 December 22:00 to Thursday 02:00, Paris: 3 business days after Friday.
const WEDNESDAY_22: &str = "2026-12-09T22:00:00+01:00";
const THURSDAY_02: &str = "2026-12-10T02:00:00+01:00";

/// An app at Friday 15:00 with two confirmed EU subscribers, a pending EU one and a
/// confirmed US one.
fn setup() -> Env {
    let env = common::env_registry(
        &registry(),
        "[http]\npublic_url = \"https://status.example.test\"\n",
    );
    env.clock.set(at(FRIDAY));
    let now = env.clock.now();
    let mut store = env.app.store().unwrap();
    let mut tx = store.write().unwrap();
    for (list, address, customer, state) in [
        (
            "eu-maintenance",
            "it@hansa.example",
            "hansa",
            SubscriberState::Confirmed,
        ),
        (
            "eu-maintenance",
            "noc@hansa.example",
            "hansa",
            SubscriberState::Confirmed,
        ),
        (
            "eu-maintenance",
            "late@hansa.example",
            "hansa",
            SubscriberState::Pending,
        ),
        (
            "us-maintenance",
            "ops@yankee.example",
            "yankee",
            SubscriberState::Confirmed,
        ),
    ] {
        tx.announce()
            .upsert_subscriber(&NewSubscriber {
                list,
                address,
                customer,
                state,
                shared: false,
                added_by: "operator",
                now,
                expires_at: None,
            })
            .unwrap();
    }
    tx.commit().unwrap();
    drop(store);
    env
}

fn request(start: &str, end: &str, emergency: bool) -> ScheduleRequest {
    ScheduleRequest {
        platform: "eu".into(),
        start: start.into(),
        end: end.into(),
        impact: "Webmail unavailable for up to 30 minutes".into(),
        emergency,
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Recipients of the outbox rows of `kind`, sorted.
fn recipients(env: &mut Env, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = env.sent(kind).into_iter().map(|o| o.recipient).collect();
    v.sort();
    v
}

const EU: [&str; 2] = ["it@hansa.example", "noc@hansa.example"];

#[test]
fn refused_at_two_business_days_friday_for_tuesday_and_accepted_at_three() {
    let mut env = setup();
    // Friday for Tuesday 22:00 is 2 business days (Monday, Tuesday): refused, nothing sent.
    let refused = run(maintenance::schedule(
        &env.app,
        request(
            "2026-12-08T22:00:00+01:00",
            "2026-12-09T02:00:00+01:00",
            false,
        ),
    ))
    .unwrap_err();
    let ServiceError::Rejected(reasons) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    let text = reasons.join("\n");
    assert!(text.contains("gives 2"), "{text}");
    assert!(
        text.contains("Wed 09 Dec 2026 00:00 CET"),
        "earliest allowed start: {text}"
    );
    assert!(text.contains("2026-12-08T23:00:00+00:00"), "{text}");
    assert!(
        env.outbox().is_empty(),
        "a refused maintenance sends nothing"
    );
    let none = env
        .app
        .store()
        .unwrap()
        .announce()
        .announcements(&Default::default())
        .unwrap();
    assert!(none.is_empty(), "a refused maintenance is not stored");

    // Wednesday is 3: accepted, the notice goes to the EU list's confirmed subscribers only.
    let m = run(maintenance::schedule(
        &env.app,
        request(WEDNESDAY_22, THURSDAY_02, false),
    ))
    .unwrap();
    assert_eq!(m.reference, "MNT-000001");
    assert_eq!(m.state, AnnouncementState::Scheduled);
    assert_eq!(m.recipients, 2);
    assert_eq!(recipients(&mut env, "maintenance_notice"), EU);
    let notice = env.sent("maintenance_notice").remove(0);
    assert!(
        notice
            .subject
            .starts_with("[MNT-000001] Planned maintenance on eu"),
        "{}",
        notice.subject
    );
}

#[test]
fn reminder_start_and_end_with_success_reach_the_subscribers_in_one_thread() {
    let mut env = setup();
    let m = run(maintenance::schedule(
        &env.app,
        request(WEDNESDAY_22, THURSDAY_02, false),
    ))
    .unwrap();
    // The reminder is due 24 h before the start (the default reminder_before).
    assert_eq!(m.next_due_at, Some(at("2026-12-08T22:00:00+01:00")));
    env.clock.set(at("2026-12-08T21:59:00+01:00"));
    env.tick();
    assert!(env.sent("maintenance_reminder").is_empty(), "not yet");
    env.clock.set(at("2026-12-08T22:00:00+01:00"));
    env.tick();
    assert_eq!(recipients(&mut env, "maintenance_reminder"), EU);
    env.clock.set(at("2026-12-08T23:00:00+01:00"));
    env.tick();
    assert_eq!(
        env.sent("maintenance_reminder").len(),
        2,
        "the reminder fires once"
    );

    env.clock.set(at("2026-12-09T21:58:00+01:00"));
    let started = run(maintenance::start(&env.app, "MNT-000001")).unwrap();
    assert_eq!(started.state, AnnouncementState::InProgress);
    assert_eq!(recipients(&mut env, "maintenance_start"), EU);

    env.clock.set(at("2026-12-10T01:30:00+01:00"));
    let done = run(maintenance::finish(&env.app, "MNT-000001", true, None)).unwrap();
    assert_eq!(done.state, AnnouncementState::Completed);
    assert_eq!(done.next_due_at, None, "nothing left to fire");
    let ends = env.sent("maintenance_end");
    assert_eq!(ends.len(), 2);
    assert!(
        ends[0].subject.contains("completed successfully"),
        "{}",
        ends[0].subject
    );

    // Every later mail to a subscriber refers to the notice that subscriber received, and
    // carries the list headers.
    let end = ends.iter().find(|o| o.recipient == EU[0]).unwrap().clone();
    let notice = env
        .sent("maintenance_notice")
        .into_iter()
        .find(|o| o.recipient == EU[0])
        .unwrap();
    let text = env.text(&end);
    assert!(
        text.contains(&format!("In-Reply-To: <{}>", notice.message_id)),
        "threaded to the notice: {text}"
    );
    assert!(
        text.contains("List-Id: <eu-maintenance.lists.example.test>"),
        "{text}"
    );
    // The operator's marks came in time: the agent team was never reminded.
    env.clock.set(at("2026-12-11T12:00:00+01:00"));
    env.tick();
    assert!(env.sent("maintenance_overdue").is_empty());
    let updates: Vec<UpdateKind> = env
        .app
        .store()
        .unwrap()
        .announce()
        .announcement_updates(m.id)
        .unwrap()
        .into_iter()
        .map(|u| u.kind)
        .collect();
    assert_eq!(
        updates,
        [
            UpdateKind::Scheduled,
            UpdateKind::Reminder,
            UpdateKind::Started,
            UpdateKind::Finished
        ]
    );
}

#[test]
fn an_emergency_skips_the_rule_and_is_announced_at_once() {
    let mut env = setup();
    let now = env.clock.now();
    // In two hours, on a Friday evening: far below the notice rule.
    let m = run(maintenance::schedule(
        &env.app,
        request(
            "2026-12-04T17:00:00+01:00",
            "2026-12-04T18:00:00+01:00",
            true,
        ),
    ))
    .unwrap();
    assert!(m.emergency);
    assert_eq!(m.scheduled_at, Some(now));
    assert_eq!(m.communicated_at, Some(now), "announced at once");
    assert_eq!(recipients(&mut env, "maintenance_notice"), EU);
    let row = env
        .app
        .store()
        .unwrap()
        .announce()
        .announcement(m.id)
        .unwrap()
        .unwrap();
    assert_eq!(row.kind, AnnouncementKind::Maintenance);
    assert!(row.emergency);
    assert_eq!(
        (row.scheduled_at, row.communicated_at),
        (Some(now), Some(now))
    );
    let subject = &env.sent("maintenance_notice")[0].subject;
    assert!(subject.contains("Emergency maintenance"), "{subject}");
    // Two hours ahead is less than the 24 h reminder lead: no reminder, the notice is it.
    assert_eq!(m.next_due_at, Some(at("2026-12-04T17:00:00+01:00")));
}

#[test]
fn a_planned_start_or_end_passing_without_a_mark_reminds_the_agent_team_only() {
    let mut env = setup();
    run(maintenance::schedule(
        &env.app,
        request(WEDNESDAY_22, THURSDAY_02, false),
    ))
    .unwrap();
    env.clock.set(at("2026-12-08T22:00:00+01:00"));
    env.tick(); // the subscribers' reminder
    let subscriber_mails = env.outbox().len();

    env.clock.set(at(WEDNESDAY_22));
    env.tick();
    let overdue = env.sent("maintenance_overdue");
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].recipient, "ops@support.example.test");
    assert!(
        overdue[0].subject.contains("planned start passed"),
        "{}",
        overdue[0].subject
    );
    env.clock.set(at("2026-12-09T23:00:00+01:00"));
    env.tick();
    assert_eq!(env.sent("maintenance_overdue").len(), 1, "once");

    env.clock.set(at(THURSDAY_02));
    env.tick();
    let overdue = env.sent("maintenance_overdue");
    assert_eq!(overdue.len(), 2);
    assert!(
        overdue[1].subject.contains("planned end passed"),
        "{}",
        overdue[1].subject
    );
    assert!(
        env.text(&overdue[1])
            .contains("maintenance finish MNT-000001 --success")
    );
    assert_eq!(
        env.outbox().len(),
        subscriber_mails + 2,
        "the subscribers were told nothing"
    );
    // It never started, so it can still be cancelled, and the subscribers hear of it.
    run(maintenance::cancel(
        &env.app,
        "MNT-000001",
        Some("Postponed.".into()),
    ))
    .unwrap();
    assert_eq!(recipients(&mut env, "maintenance_cancel"), EU);
}

/// `ticketgate maintenance …` as an operator types it (the real clock: the US list's 24/7
/// calendar makes a start tomorrow 1 business day ahead).
#[test]
fn the_command_line_refuses_short_notice_and_prints_the_id() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let (db, _guard) = common::database_url(dir.path());
    std::fs::write(dir.path().join("customers.toml"), registry()).unwrap();
    let cfg = dir.path().join("ticketgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"inbox\"\n[registry]\n\
             path = \"customers.toml\"\n[outbound]\ndir = \"outbox\"\n"
        ),
    )
    .unwrap();
    let tg = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .current_dir(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    let tomorrow = (ticketgate::clock::SystemClock.now() + chrono::Duration::days(1)).to_rfc3339();
    let later = (ticketgate::clock::SystemClock.now() + chrono::Duration::hours(25)).to_rfc3339();
    let schedule = |emergency: bool| {
        let mut args = vec![
            "maintenance",
            "schedule",
            "--platform",
            "us",
            "--start",
            &tomorrow,
            "--end",
            &later,
            "--impact",
            "API read-only",
        ];
        if emergency {
            args.push("--emergency");
        }
        tg(&args)
    };
    let out = schedule(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("gives 1") && err.contains("earliest allowed start"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = schedule(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "MNT-000001");

    let out = tg(&["maintenance", "finish", "MNT-000001"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--success or --failed is required"
    );
    let out = tg(&["maintenance", "finish", "MNT-000001", "--success"]);
    assert_eq!(out.status.code(), Some(1), "not started yet");
    assert!(String::from_utf8_lossy(&out.stderr).contains("maintenance start ID"));
    assert!(tg(&["maintenance", "start", "MNT-000001"]).status.success());
    let out = tg(&[
        "maintenance",
        "finish",
        "MNT-000001",
        "--failed",
        "Rolled back.",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
