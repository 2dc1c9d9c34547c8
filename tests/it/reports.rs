//! KPI reports (SPEC §9): a small data set built through mail and the moving clock, its
//! figures computed here from the instants the test chose, and compared with the report a
//! customer receives by mail (text and CSV attachment) and with the service's JSON; the
//! refusals (a period over a year or in the future, a customer without allowed senders, a
//! sender who is not allowed); French; the command line.

use crate::common;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::{Env, env_registry, mail};
use mail_parser::MimeHeaders;
use std::collections::BTreeMap;
use std::path::Path;
use ticketgate::pipeline::Outcome;
use ticketgate::services::{ErrorKind, reports};

const REGISTRY: &str = r#"
agents = ["mike@support.example.test"]

[plans.gold]
profile = "wso2"
calendar = "24/7"
response_targets = { 1 = "1h", 2 = "4h", 3 = "1d", 4 = "2d" }
reminders = { interval = "2d", count = 3 }

[plans.or]
language = "fr"
profile = "wso2"
calendar = "24/7"
response_targets = { 1 = "1h", 2 = "4h", 3 = "1d", 4 = "2d" }

[[customers]]
id = "rep"
name = "Reporting Inc"
plan = "gold"
allowed_senders = ["@rep.example"]
keys = [{ key = "REPO-0000-0000-0001" }]

[[customers]]
id = "other"
plan = "gold"
allowed_senders = ["@other.example"]
keys = [{ key = "OTHR-0000-0000-0002" }]

[[customers]]
id = "open"
plan = "gold"
keys = [{ key = "OPEN-0000-0000-0003" }]

[[customers]]
id = "fr"
name = "Société Rapport"
plan = "or"
allowed_senders = ["@fr.example"]
keys = [{ key = "FRRP-0000-0000-0004" }]
"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn env() -> Env {
    env_registry(REGISTRY, "")
}

/// A customer's new request at `when`; returns its reference.
fn open(e: &mut Env, when: DateTime<Utc>, from: &str, subject: &str, body: &str) -> String {
    e.clock.set(when);
    match e.ingest(&mail(from, subject, &format!("REPO-0000-0000-0001\n{body}")).build()) {
        Outcome::Created { ticket } => ticket,
        o => panic!("{o:?}"),
    }
}

fn agent(e: &mut Env, when: DateTime<Utc>, reference: &str, body: &str) {
    e.clock.set(when);
    let o = e.ingest(
        &mail(
            "Mike Chen <mike@support.example.test>",
            &format!("Re: [{reference}] x"),
            body,
        )
        .build(),
    );
    assert!(matches!(o, Outcome::Appended { .. }), "{o:?}");
}

fn customer(e: &mut Env, when: DateTime<Utc>, from: &str, reference: &str, body: &str) {
    e.clock.set(when);
    let o = e.ingest(&mail(from, &format!("Re: [{reference}] x"), body).build());
    assert!(matches!(o, Outcome::Appended { .. }), "{o:?}");
}

/// The nearest-rank percentile, written out: the value at rank ⌈p·n/100⌉.
fn rank(values: &[i64], p: f64) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort();
    if v.is_empty() {
        return None;
    }
    let r = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[r.max(1) - 1])
}

/// `section,key,metric` → value, from a CSV report.
fn csv_map(csv: &str) -> BTreeMap<(String, String, String), String> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("section,key,metric,value"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            (
                (f[0].to_string(), f[1].to_string(), f[2].to_string()),
                f[3].to_string(),
            )
        })
        .collect()
}

/// The text part and the attachments (name, content) of a composed message.
fn parts(raw: &[u8]) -> (String, Vec<(String, String)>) {
    let m = mail_parser::MessageParser::default().parse(raw).unwrap();
    let text = m.body_text(0).unwrap().to_string();
    let atts = m
        .attachments()
        .map(|a| {
            (
                a.attachment_name().unwrap_or_default().to_string(),
                String::from_utf8(a.contents().to_vec()).unwrap(),
            )
        })
        .collect();
    (text, atts)
}

/// What one ticket of the data set went through, as the test scripted it.
struct Scripted {
    severity: u8,
    issue_type: &'static str,
    target_secs: i64,
    created: DateTime<Utc>,
    responded: Option<DateTime<Utc>>,
    resolved: Option<DateTime<Utc>>,
    reopened: bool,
    escalated: bool,
    score: Option<u8>,
}

#[test]
fn a_report_requested_by_mail_arrives_with_the_figures_of_the_period() {
    let mut e = env();
    let t0 = at("2026-11-02T09:00:00Z");
    let h = |n: i64| t0 + Duration::minutes(n);
    let mut script = Vec::new();

    // Before the period: not counted.
    open(
        &mut e,
        at("2026-10-30T12:00:00Z"),
        "old@rep.example",
        "[P1] old",
        "",
    );
    // Another customer, in the period: not counted.
    e.clock.set(h(5));
    e.ingest(&mail("x@other.example", "[P1] theirs", "OTHR-0000-0000-0002").build());

    // T1, severity 1: answered after 30 min, resolved at 2 h, refused (reopened), resolved
    // again at 5 h, scored 5.
    let t1 = open(&mut e, h(0), "a@rep.example", "[P1] gateway down", "");
    agent(&mut e, h(30), &t1, "Looking at it now.");
    agent(&mut e, h(120), &t1, "#resolve workaround\nRestart it.");
    customer(&mut e, h(150), "a@rep.example", &t1, "Still failing.");
    agent(&mut e, h(300), &t1, "#resolve fix\nPatched.");
    customer(&mut e, h(310), "a@rep.example", &t1, "5");
    script.push(Scripted {
        severity: 1,
        issue_type: "incident",
        target_secs: 3600,
        created: h(0),
        responded: Some(h(30)),
        resolved: Some(h(120)),
        reopened: true,
        escalated: false,
        score: Some(5),
    });

    // T2, severity 1 at 1 h: nobody answers within the hour, the tick escalates it; answered
    // at 3 h, closed at 5 h, scored 2.
    let t2 = open(&mut e, h(60), "b@rep.example", "[P1] data loss", "");
    e.clock.set(h(121));
    let fired = e.tick();
    assert!(
        fired.iter().any(|f| f.action.contains("escalated")),
        "{fired:?}"
    );
    agent(&mut e, h(180), &t2, "We are restoring the backup.");
    agent(&mut e, h(300), &t2, "#close fix delivered\nRestored.");
    customer(&mut e, h(320), "b@rep.example", &t2, "2");
    script.push(Scripted {
        severity: 1,
        issue_type: "incident",
        target_secs: 3600,
        created: h(60),
        responded: Some(h(180)),
        resolved: Some(h(300)),
        reopened: false,
        escalated: true,
        score: Some(2),
    });

    // T3, severity 3 at 1 h 30: answered at 2 h 30, resolved at 4 h 30, accepted, scored 4.
    let t3 = open(&mut e, h(90), "c@rep.example", "[P3] slow report", "");
    agent(&mut e, h(150), &t3, "Which version?");
    agent(
        &mut e,
        h(270),
        &t3,
        "#resolve configuration\nRaise the cache.",
    );
    customer(&mut e, h(280), "c@rep.example", &t3, "OK to close, thanks");
    customer(&mut e, h(290), "c@rep.example", &t3, "4");
    script.push(Scripted {
        severity: 3,
        issue_type: "incident",
        target_secs: 86_400,
        created: h(90),
        responded: Some(h(150)),
        resolved: Some(h(270)),
        reopened: false,
        escalated: false,
        score: Some(4),
    });

    // T4, severity 3 at 4 h: no answer yet (pending).
    open(&mut e, h(240), "d@rep.example", "[P3] typo", "");
    script.push(Scripted {
        severity: 3,
        issue_type: "incident",
        target_secs: 86_400,
        created: h(240),
        responded: None,
        resolved: None,
        reopened: false,
        escalated: false,
        score: None,
    });

    // T5, a query (severity 4 by rule) at 4 h 10, answered at 6 h.
    let t5 = open(
        &mut e,
        h(250),
        "a@rep.example",
        "How to export",
        "Type: Query",
    );
    agent(&mut e, h(360), &t5, "Use the export menu.");
    script.push(Scripted {
        severity: 4,
        issue_type: "query",
        target_secs: 2 * 86_400,
        created: h(250),
        responded: Some(h(360)),
        resolved: None,
        reopened: false,
        escalated: false,
        score: None,
    });
    for (i, s) in script.iter().enumerate() {
        let t = e.ticket(i as i64 + 3);
        assert_eq!(
            (t.severity, t.issue_type.as_str()),
            (s.severity, s.issue_type),
            "T{}",
            i + 1
        );
    }

    // The figures, from the script (24/7 calendar: business time is wall time).
    let mut expect: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut put = |s: &str, k: &str, m: &str, v: String| {
        expect.insert((s.into(), k.into(), m.into()), v);
    };
    put("tickets", "all", "count", script.len().to_string());
    for sev in 1..=4u8 {
        let of: Vec<&Scripted> = script.iter().filter(|s| s.severity == sev).collect();
        put(
            "by_severity",
            &sev.to_string(),
            "tickets",
            of.len().to_string(),
        );
        let met = of
            .iter()
            .filter(|s| {
                s.responded
                    .is_some_and(|r| (r - s.created).num_seconds() <= s.target_secs)
            })
            .count();
        let breached = of.iter().filter(|s| s.escalated).count();
        let pending = of.len() - met - breached;
        let k = sev.to_string();
        put("first_response", &k, "met", met.to_string());
        put("first_response", &k, "breached", breached.to_string());
        put("first_response", &k, "pending", pending.to_string());
        put(
            "first_response",
            &k,
            "met_percent",
            Some(met + breached)
                .filter(|&all| all > 0)
                .map_or(String::new(), |all| {
                    ((met as f64 * 100.0 / all as f64 * 10.0).round() / 10.0).to_string()
                }),
        );
    }
    put("by_type", "incident", "tickets", "4".into());
    put("by_type", "query", "tickets", "1".into());
    let escalated = script.iter().filter(|s| s.escalated).count();
    put("escalations", "all", "total", escalated.to_string());
    let response: Vec<i64> = script
        .iter()
        .filter_map(|s| s.responded.map(|r| (r - s.created).num_seconds()))
        .collect();
    let resolution: Vec<i64> = script
        .iter()
        .filter_map(|s| s.resolved.map(|r| (r - s.created).num_seconds()))
        .collect();
    let s = |v: Option<i64>| v.unwrap().to_string();
    put(
        "time_to_first_response",
        "all",
        "count",
        response.len().to_string(),
    );
    put(
        "time_to_first_response",
        "all",
        "median_secs",
        s(rank(&response, 50.0)),
    );
    put(
        "time_to_first_response",
        "all",
        "p90_secs",
        s(rank(&response, 90.0)),
    );
    put(
        "time_to_resolution",
        "all",
        "median_secs",
        s(rank(&resolution, 50.0)),
    );
    put(
        "time_to_resolution",
        "all",
        "p90_secs",
        s(rank(&resolution, 90.0)),
    );
    let resolved = script.iter().filter(|s| s.resolved.is_some()).count();
    let reopened = script.iter().filter(|s| s.reopened).count();
    put("reopen", "all", "resolved", resolved.to_string());
    put("reopen", "all", "reopened", reopened.to_string());
    put(
        "reopen",
        "all",
        "rate_percent",
        ((reopened as f64 * 100.0 / resolved as f64 * 10.0).round() / 10.0).to_string(),
    );
    let scores: Vec<u8> = script.iter().filter_map(|s| s.score).collect();
    put("survey", "all", "count", scores.len().to_string());
    let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len() as f64;
    put(
        "survey",
        "all",
        "mean",
        ((mean * 100.0).round() / 100.0).to_string(),
    );
    for score in 1..=5u8 {
        put(
            "survey",
            &score.to_string(),
            "count",
            scores.iter().filter(|&&s| s == score).count().to_string(),
        );
    }
    // The figures this data set was built to show, spelled out once.
    assert_eq!(
        expect[&("first_response".into(), "1".into(), "met_percent".into())],
        "50"
    );
    assert_eq!(
        expect[&(
            "time_to_first_response".into(),
            "all".into(),
            "median_secs".into()
        )],
        "3600"
    );
    assert_eq!(
        expect[&("reopen".into(), "all".into(), "rate_percent".into())],
        "33.3"
    );

    // The request, from an allowed sender, at the end of the day.
    e.clock.set(at("2026-11-02T20:00:00Z"));
    let o = e.ingest(
        &mail(
            "Boss <boss@rep.example>",
            "Report 2026-11-01..2026-11-02",
            "REPO-0000-0000-0001",
        )
        .build(),
    );
    assert_eq!(
        o,
        Outcome::Report {
            customer: "rep".into()
        }
    );
    assert_eq!(
        e.app.store().unwrap().tickets(100).unwrap().len(),
        7,
        "a report request opens no ticket"
    );
    let sent = e.sent("report");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].recipient, "boss@rep.example");
    assert_eq!(
        sent[0].subject,
        "Support report Reporting Inc: 2026-11-01 to 2026-11-02"
    );
    let raw = e
        .app
        .store()
        .unwrap()
        .outbox_body(sent[0].id)
        .unwrap()
        .unwrap();
    let (text, atts) = parts(&raw);
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0].0, "report-rep-2026-11-01-2026-11-02.csv");
    let got = csv_map(&atts[0].1);
    for (k, v) in &expect {
        assert_eq!(got.get(k), Some(v), "{k:?} in\n{}", atts[0].1);
    }
    assert!(text.contains("Tickets: 5"), "{text}");
    assert!(
        text.contains("Severity 1: 1 met, 1 breached, 0 pending, 0 no target — 50 %"),
        "{text}"
    );
    assert!(
        text.contains("Reopen rate: 33.3 % (1 reopened of 3)"),
        "{text}"
    );
    assert!(text.contains("median 1h"), "{text}");

    // The service gives the same figures as JSON.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(reports::report(
            &e.app,
            "rep",
            day("2026-11-01"),
            day("2026-11-02"),
        ))
        .unwrap();
    assert_eq!(csv_map(&r.to_csv()), got);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["tickets"], 5);
    assert_eq!(json["first_response"][0]["met_percent"], 50.0);
    assert_eq!(json["time_to_resolution"]["p90_secs"], 4 * 3600);
    assert_eq!(json["survey"]["distribution"][4]["count"], 1);
    let bars = r.severity_chart();
    assert_eq!(
        bars.iter().map(|b| b.value).collect::<Vec<_>>(),
        vec![2, 0, 2, 1]
    );
}

#[test]
fn periods_over_a_year_or_in_the_future_are_refused_and_reports_go_only_to_allowed_senders() {
    let mut e = env();
    e.clock.set(at("2026-11-02T12:00:00Z"));
    let ask = |e: &mut Env, from: &str, subject: &str, key: &str| {
        e.ingest(&mail(from, subject, key).build())
    };

    ask(
        &mut e,
        "boss@rep.example",
        "report 2025-06-01..2026-06-30",
        "REPO-0000-0000-0001",
    );
    ask(
        &mut e,
        "boss@rep.example",
        "report 2026-10-01..2026-11-03",
        "REPO-0000-0000-0001",
    );
    let refused = e.sent("report_refused");
    assert_eq!(refused.len(), 2);
    assert!(e.text(&refused[0]).contains("longer than a year"));
    assert!(e.text(&refused[1]).contains("ends in the future"));
    assert!(e.sent("report").is_empty());

    // Not an allowed sender: the usual rejection, no figures.
    let o = ask(&mut e, "eve@evil.example", "report", "REPO-0000-0000-0001");
    assert!(
        matches!(&o, Outcome::Quarantined { code, .. } if code == "sender_not_allowed"),
        "{o:?}"
    );
    // A customer without allowed senders: nobody may receive its figures.
    let o = ask(
        &mut e,
        "anyone@open.example",
        "report",
        "OPEN-0000-0000-0003",
    );
    assert_eq!(
        o,
        Outcome::Report {
            customer: "open".into()
        }
    );
    let refused = e.sent("report_refused");
    assert_eq!(refused.len(), 3);
    assert_eq!(refused[2].recipient, "anyone@open.example");
    assert!(e.text(&refused[2]).contains("registered"));
    assert!(e.sent("report").is_empty(), "no report reached anyone");

    // An automatic mail asking for a report (an autoresponder's) is answered with nothing:
    // the loop rules of every automatic reply apply.
    let o = e.ingest(
        &mail("boss@rep.example", "report", "REPO-0000-0000-0001")
            .header("Auto-Submitted: auto-replied")
            .build(),
    );
    assert_eq!(
        o,
        Outcome::Report {
            customer: "rep".into()
        }
    );
    assert!(
        e.sent("report").is_empty(),
        "no report to an automatic mail"
    );

    // A subject that only starts like one opens a ticket.
    let o = ask(
        &mut e,
        "boss@rep.example",
        "Report of a crash",
        "REPO-0000-0000-0001",
    );
    assert!(matches!(o, Outcome::Created { .. }), "{o:?}");

    // The default period: the last 30 days, today included.
    ask(&mut e, "boss@rep.example", "report", "REPO-0000-0000-0001");
    let sent = e.sent("report");
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].subject.ends_with("2026-10-04 to 2026-11-02"),
        "{}",
        sent[0].subject
    );

    // The service refuses the same periods, and unknown customers.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = |from: &str, to: &str, c: &str| {
        rt.block_on(reports::report(&e.app, c, day(from), day(to)))
            .unwrap_err()
    };
    let long = err("2025-06-01", "2026-06-30", "rep");
    assert_eq!(long.kind(), ErrorKind::Invalid);
    assert!(long.to_string().contains("longer than a year"), "{long}");
    let future = err("2026-11-01", "2026-11-03", "rep");
    assert_eq!(future.kind(), ErrorKind::Invalid);
    assert!(future.to_string().contains("future"), "{future}");
    assert_eq!(
        err("2026-11-01", "2026-11-02", "nobody").kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_french_customer_gets_its_report_in_french() {
    let mut e = env();
    e.clock.set(at("2026-11-02T12:00:00Z"));
    e.ingest(&mail("a@fr.example", "[P2] Panne", "FRRP-0000-0000-0004").build());
    e.clock.set(at("2026-11-02T13:00:00Z"));
    let o = e.ingest(
        &mail(
            "chef@fr.example",
            "Rapport 2026-11-01..2026-11-02",
            "FRRP-0000-0000-0004",
        )
        .build(),
    );
    assert_eq!(
        o,
        Outcome::Report {
            customer: "fr".into()
        }
    );
    let sent = e.sent("report");
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]
            .subject
            .starts_with("Rapport de support Société Rapport")
    );
    let raw = e
        .app
        .store()
        .unwrap()
        .outbox_body(sent[0].id)
        .unwrap()
        .unwrap();
    let (text, atts) = parts(&raw);
    assert!(
        text.contains("Demandes : 1") || text.contains("Demandes: 1"),
        "{text}"
    );
    assert!(
        text.contains("Sévérité 2: 0 respecté, 0 dépassé, 1 en attente"),
        "{text}"
    );
    assert_eq!(
        csv_map(&atts[0].1)[&("by_severity".into(), "2".into(), "tickets".into())],
        "1"
    );
}

/// `ticketgate report` as an operator runs it, on the embedded default after its sample mail:
/// the JSON counts the customer's tickets, `--csv` and the text carry the same count, and a
/// period in the future is refused with the reason and exit code 1.
#[test]
fn the_report_command_prints_json_csv_and_text_and_refuses_a_future_period() {
    use std::process::Command;
    use ticketgate::clock::{Clock, SystemClock};
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("customers.toml"),
        dir.path().join("customers.toml"),
    )
    .unwrap();
    let tg = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("TICKETGATE_CONFIG")
            .output()
            .unwrap()
    };
    assert!(tg(&["run", "--once"]).status.success());
    let list = tg(&["tickets", "list", "--json"]);
    let tickets: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let acme = tickets
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["customer"] == "acme")
        .count();
    assert!(acme > 0);

    // The acme plan counts 24/7: its days are UTC days.
    let today = SystemClock.now().date_naive();
    let (from, to) = (today.pred_opt().unwrap().to_string(), today.to_string());
    let out = tg(&["report", "acme", "--from", &from, "--to", &to, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tickets"], acme);
    assert_eq!(json["customer"], "acme");
    assert_eq!(json["by_severity"].as_array().unwrap().len(), 4);

    let csv = tg(&["report", "acme", "--from", &from, "--to", &to, "--csv"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(
        csv_map(&csv)[&("tickets".into(), "all".into(), "count".into())],
        acme.to_string()
    );
    let text = tg(&["report", "acme", "--from", &from, "--to", &to]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(&format!("Tickets: {acme}")), "{text}");

    let tomorrow = today.succ_opt().unwrap().to_string();
    let out = tg(&["report", "acme", "--from", &from, "--to", &tomorrow]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in the future"), "{err}");
}
