//! Bounces through the real pipeline: a hard bounce to our signed envelope sender suppresses
//! the address (no more automatic mail to it, a note on the ticket, the agent team told
//! once), soft bounces are scored over days (the test's clock moves), forged and unverified
//! bounces change nothing, and `suppressions remove` lifts a suppression.

use crate::common;
use crate::support::daemon;

use common::{Env, REGISTRY, env_registry, mail};
use ticketgate::bounce::{self, verp};
use ticketgate::pipeline::Outcome;
use ticketgate::services;
use ticketgate::services::tickets::AgentAction;
use ticketgate::store::OutboxState;

const KEY: &str = "bounce-key-for-tests-0123456789";
const BASE: &str = "support@support.example.test";

fn env() -> Env {
    env_with_key(true)
}

fn env_with_key(key: bool) -> Env {
    let registry = format!("agents = [\"mike@support.example.test\"]\n{REGISTRY}");
    let extra = if key {
        format!("[outbound]\nbounce_key = \"{KEY}\"\n")
    } else {
        String::new()
    };
    env_registry(&registry, &extra)
}

fn code(o: &Outcome) -> String {
    match o {
        Outcome::Quarantined { code, .. } => code.clone(),
        other => panic!("expected quarantine, got {other:?}"),
    }
}

/// A new Globex ticket from `from` (premium plan: it has an agent team); returns the id of
/// its acknowledgement in the outbox.
fn open_ticket(e: &mut Env, from: &str) -> i64 {
    let o = e.ingest(
        &mail(
            from,
            "Export fails",
            "Support-Key: GLBX-0000-0000-0002\nIt fails.",
        )
        .build(),
    );
    assert!(matches!(o, Outcome::Created { .. }), "{o:?}");
    let ack = e
        .outbox()
        .into_iter()
        .rev()
        .find(|r| r.kind == "acknowledgement")
        .expect("an acknowledgement");
    ack.id
}

/// An RFC 3464 report from a receiving MTA, as it arrives at `to`.
fn dsn(to: &str, recipient: &str, status: &str, diagnostic: &str, original_id: &str) -> String {
    let n = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.globex.example>\r\n\
         To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Date: Fri, 20 Nov 2026 16:30:00 -0600\r\nMessage-ID: <dsn{n}@mx.globex.example>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.globex.example.\r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.globex.example\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{original_id}>\r\n\
         Subject: [TKT-000001] Export fails\r\n--B--\r\n"
    )
}

static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn verp_to(id: i64) -> String {
    verp::address(BASE, KEY.as_bytes(), id)
}

fn hard_dsn(e: &mut Env, outbox_id: i64, recipient: &str) -> String {
    let mid = e
        .outbox()
        .into_iter()
        .find(|r| r.id == outbox_id)
        .unwrap()
        .message_id;
    dsn(
        &verp_to(outbox_id),
        recipient,
        "5.1.1",
        &format!("550 5.1.1 <{recipient}>: Recipient address rejected: User unknown"),
        &mid,
    )
}

fn suppressions(e: &Env) -> Vec<ticketgate::store::Suppression> {
    e.app.store().unwrap().suppressions().unwrap()
}

#[test]
fn a_hard_bounce_suppresses_the_address_and_the_next_automatic_mail_is_not_sent() {
    let mut e = env();
    let ack = open_ticket(&mut e, "bob@globex.example");
    let before = e.outbox().len();

    let raw = hard_dsn(&mut e, ack, "bob@globex.example");
    assert_eq!(code(&e.ingest(&raw)), "bounce");

    // On the list, tied to the message and its ticket.
    let s = suppressions(&e);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].address, "bob@globex.example");
    assert_eq!(s[0].kind, bounce::Verdict::Hard);
    assert_eq!(s[0].status.as_deref(), Some("5.1.1"));
    assert_eq!((s[0].outbox_id, s[0].ticket_id), (Some(ack), Some(1)));
    // No ticket, no answer to the bounce; one alert to the agent team; an internal note.
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 1);
    let new: Vec<_> = e.outbox().into_iter().skip(before).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].kind, "bounce_alert");
    assert_eq!(new[0].recipient, "agents@support.example.test");
    assert!(e.text(&new[0]).contains("bob@globex.example"));
    let articles = e.articles(1);
    assert!(
        articles
            .iter()
            .any(|a| a.kind == "note" && a.body.contains("suppression list")),
        "{articles:?}"
    );
    let counts = e.app.store().unwrap().bounce_counts().unwrap();
    assert_eq!(
        counts,
        vec![("hard".to_string(), 1), ("suppressed_hard".to_string(), 1)]
    );

    // The next automatic mail to the address is kept, not sent.
    let o = e.ingest(
        &mail(
            "bob@globex.example",
            "Another problem",
            "Support-Key: GLBX-0000-0000-0002\nStill failing.",
        )
        .build(),
    );
    assert!(matches!(o, Outcome::Created { .. }));
    let ack2 = e
        .outbox()
        .into_iter()
        .rev()
        .find(|r| r.kind == "acknowledgement")
        .unwrap();
    assert_eq!(ack2.recipient, "bob@globex.example");
    assert_eq!(ack2.state, OutboxState::Suppressed);
    assert!(
        ack2.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("suppression list"),
        "{ack2:?}"
    );

    // A second hard bounce for the address (of the new ticket's agent copy, say) does not
    // tell the team again.
    let alerts = e.sent("bounce_alert").len();
    let raw = hard_dsn(&mut e, ack2.id, "bob@globex.example");
    assert_eq!(code(&e.ingest(&raw)), "bounce");
    assert_eq!(e.sent("bounce_alert").len(), alerts);
    assert_eq!(suppressions(&e).len(), 1);
}

#[test]
fn an_agent_reply_to_a_suppressed_address_is_sent_but_flagged() {
    let mut e = env();
    let ack = open_ticket(&mut e, "bob@globex.example");
    let raw = hard_dsn(&mut e, ack, "bob@globex.example");
    e.ingest(&raw);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(services::tickets::act(
        &e.app,
        "TKT-000001",
        "mike@support.example.test",
        &AgentAction::Reply("Here is the fix.".into()),
    ))
    .unwrap();
    let reply = e.sent("agent_reply").pop().expect("an agent reply");
    assert_eq!(reply.state, OutboxState::Pending);
    assert!(
        reply
            .flag
            .as_deref()
            .is_some_and(|f| f.starts_with("suppressed_recipient:")),
        "{reply:?}"
    );
    let listed = rt
        .block_on(services::outbox::list(&e.app, None, 100))
        .unwrap();
    let view = listed.iter().find(|v| v.id == reply.id).unwrap();
    assert!(view.flag.is_some());
}

/// The tick reads whether its due tickets' requesters are suppressed with the timers (one
/// query on PostgreSQL): a reminder to a suppressed requester is kept, not sent, and one to
/// a requester who is not suppressed goes.
#[test]
fn a_tick_keeps_a_reminder_to_a_suppressed_requester_and_sends_the_others() {
    let mut e = env();
    let ack = open_ticket(&mut e, "bob@globex.example");
    open_ticket(&mut e, "ann@globex.example");
    let raw = hard_dsn(&mut e, ack, "bob@globex.example");
    assert_eq!(code(&e.ingest(&raw)), "bounce");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for t in ["TKT-000001", "TKT-000002"] {
        rt.block_on(services::tickets::act(
            &e.app,
            t,
            "mike@support.example.test",
            &AgentAction::Status("suspended".into()),
        ))
        .unwrap();
    }
    e.clock.advance(chrono::Duration::days(4));
    let fired = e.tick();
    assert!(fired.len() >= 2, "{fired:?}");
    let reminders = e.sent("reminder");
    let state = |who: &str| {
        reminders
            .iter()
            .find(|r| r.recipient == who)
            .map(|r| r.state)
            .unwrap_or_else(|| panic!("no reminder to {who}: {reminders:?}"))
    };
    assert_eq!(state("bob@globex.example"), OutboxState::Suppressed);
    assert_eq!(state("ann@globex.example"), OutboxState::Pending);
}

#[test]
fn a_bounce_with_a_forged_signature_changes_nothing() {
    let mut e = env();
    let ack = open_ticket(&mut e, "bob@globex.example");
    let before = e.outbox().len();
    let good = hard_dsn(&mut e, ack, "bob@globex.example");
    // Same message, another outbox id under the signature: forged.
    let forged = good.replace(&format!("+{ack}."), &format!("+{}.", ack + 1));
    assert_ne!(forged, good);
    assert_eq!(code(&e.ingest(&forged)), "forged_bounce");
    assert!(suppressions(&e).is_empty());
    assert_eq!(e.outbox().len(), before, "nothing sent");
    assert_eq!(
        e.app.store().unwrap().bounce_counts().unwrap(),
        vec![("forged".to_string(), 1)]
    );
}

#[test]
fn a_bounce_tied_to_no_message_of_ours_changes_nothing_and_gets_no_answer() {
    let mut e = env();
    open_ticket(&mut e, "bob@globex.example");
    let before = e.outbox().len();
    let raw = dsn(
        BASE,
        "bob@globex.example",
        "5.1.1",
        "550 5.1.1 User unknown",
        "not-ours@elsewhere.example",
    );
    assert_eq!(code(&e.ingest(&raw)), "bounce");
    assert!(suppressions(&e).is_empty());
    assert_eq!(e.outbox().len(), before);
    let q = e.app.store().unwrap().quarantine(10).unwrap();
    assert!(
        q[0].reason.contains("not tied to a message we sent"),
        "{q:?}"
    );
}

#[test]
fn without_a_bounce_key_a_bounce_quoting_our_message_id_still_suppresses() {
    let mut e = env_with_key(false);
    let ack = open_ticket(&mut e, "bob@globex.example");
    let mid = e.outbox()[0].message_id.clone();
    assert_eq!(e.outbox()[0].id, ack);
    let raw = dsn(
        BASE,
        "bob@globex.example",
        "5.1.1",
        "550 5.1.1 User unknown",
        &mid,
    );
    assert_eq!(code(&e.ingest(&raw)), "bounce");
    assert_eq!(suppressions(&e)[0].address, "bob@globex.example");
}

#[test]
fn soft_bounces_on_five_days_suppress_the_address_and_a_quiet_week_forgets_them() {
    let mut e = env();
    let ack = open_ticket(&mut e, "bob@globex.example");
    let mid = e.outbox()[0].message_id.clone();
    let soft = |e: &mut Env| {
        let raw = dsn(
            &verp_to(ack),
            "bob@globex.example",
            "4.2.2",
            "452 4.2.2 Mailbox full",
            &mid,
        );
        assert_eq!(code(&e.ingest(&raw)), "bounce");
    };
    let day = chrono::Duration::days(1);
    // Four days with soft bounces (two on the first): not yet.
    soft(&mut e);
    soft(&mut e);
    for _ in 0..3 {
        e.clock.advance(day);
        soft(&mut e);
    }
    assert!(suppressions(&e).is_empty());
    // A quiet week: the score starts again.
    e.clock.advance(chrono::Duration::days(8));
    for _ in 0..4 {
        soft(&mut e);
        e.clock.advance(day);
    }
    assert!(suppressions(&e).is_empty(), "four days since the reset");
    soft(&mut e);
    let s = suppressions(&e);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].kind, bounce::Verdict::Soft);
    assert!(
        s[0].reason.starts_with("soft bounces on 5 days"),
        "{}",
        s[0].reason
    );
    assert_eq!(e.sent("bounce_alert").len(), 1);
}

#[test]
fn suppressions_remove_lifts_it_and_automatic_mail_goes_again() {
    let mut e = env();
    let ack = open_ticket(&mut e, "bob@globex.example");
    let raw = hard_dsn(&mut e, ack, "bob@globex.example");
    e.ingest(&raw);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listed = rt.block_on(services::suppressions::list(&e.app)).unwrap();
    assert_eq!(listed.len(), 1);
    rt.block_on(services::suppressions::remove(&e.app, "Bob@Globex.example"))
        .unwrap();
    assert!(suppressions(&e).is_empty());
    assert!(
        rt.block_on(services::suppressions::remove(&e.app, "bob@globex.example"))
            .is_err(),
        "not on the list any more"
    );
    open_ticket(&mut e, "bob@globex.example");
    let ack2 = e.sent("acknowledgement").pop().unwrap();
    assert_eq!(ack2.state, OutboxState::Pending);
}

/// Real SMTP: with a bounce key, each message's MAIL FROM is its own signed VERP address;
/// a report sent back to exactly that address suppresses the recipient.
#[tokio::test]
async fn the_smtp_envelope_sender_is_the_signed_verp_address_and_a_bounce_to_it_suppresses() {
    use crate::support::smtp_sink::SmtpSink;
    use std::sync::Arc;
    use ticketgate::app::App;
    use ticketgate::clock::ManualClock;
    use ticketgate::config::{Config, ConfigSource};
    use ticketgate::pipeline::RawMail;

    let sink = SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("customers.toml"), REGISTRY).unwrap();
    let (db_url, _db) = common::database_url(dir.path());
    let text = format!(
        "[database]\nurl = \"{db_url}\"\n[inbound]\nmaildir = \"inbox\"\n\
         [registry]\npath = \"customers.toml\"\n\
         [outbound]\ntransport = \"smtp\"\nbounce_key = \"env:TG_TEST_BOUNCE_KEY_UNSET_FALLBACK\"\n\
         [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"10s\"\n\
         envelope_from = \"bounces@support.example.test\"\n",
        sink.port
    );
    // The key from the environment, as an operator would give it (never in the file).
    let cfg = Config::from_toml_with_env(
        &text,
        dir.path(),
        ConfigSource::File(dir.path().join("t.toml")),
        &|name| (name == "TG_TEST_BOUNCE_KEY_UNSET_FALLBACK").then(|| KEY.to_string()),
    )
    .unwrap();
    let app = App::open(cfg, Arc::new(ManualClock::new(common::start()))).unwrap();
    let ingest = |raw: String| {
        app.ingest(RawMail {
            source: "test".into(),
            bytes: raw.into_bytes(),
        })
        .unwrap()
    };
    let o = ingest(
        mail(
            "bob@globex.example",
            "Export fails",
            "Support-Key: GLBX-0000-0000-0002\nIt fails.",
        )
        .build(),
    );
    assert!(matches!(o, Outcome::Created { .. }), "{o:?}");
    app.deliver().await.unwrap();
    let rows = app.store().unwrap().outbox(100).unwrap();
    let ack = rows.iter().find(|r| r.kind == "acknowledgement").unwrap();
    let got = sink.wait_for(rows.len());
    let dumped = got
        .iter()
        .find(|m| m.contains("X-Rcpt-Args: <bob@globex.example>"))
        .expect("the acknowledgement went out");
    let mail_from = dumped
        .lines()
        .find_map(|l| l.strip_prefix("X-Mail-Args: <"))
        .and_then(|l| l.split('>').next())
        .expect("MAIL FROM");
    assert_eq!(
        verp::check(
            mail_from,
            "bounces@support.example.test",
            Some(KEY.as_bytes())
        ),
        Some(verp::Tag::Valid(ack.id)),
        "{mail_from}"
    );
    // Every message has its own envelope sender.
    let senders: std::collections::HashSet<&str> = got
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("X-Mail-Args: ")))
        .collect();
    assert_eq!(senders.len(), got.len());

    let o = ingest(dsn(
        mail_from,
        "bob@globex.example",
        "5.1.1",
        "550 5.1.1 User unknown",
        "quoted-nothing@elsewhere.example",
    ));
    assert_eq!(code(&o), "bounce");
    let s = app.store().unwrap().suppressions().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].outbox_id, Some(ack.id));
}

#[test]
fn a_scrape_after_bounces_counts_them_by_kind_and_the_suppression() {
    let registry = format!("agents = [\"mike@support.example.test\"]\n{REGISTRY}");
    let mut e = env_registry(
        &registry,
        &format!("[outbound]\nbounce_key = \"{KEY}\"\n[http]\nlisten = \"127.0.0.1:0\"\n"),
    );
    // The app's own web server, as the daemon runs it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(ticketgate::http::bind(&e.app))
        .expect("[http] listen");
    let addr = server.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    rt.spawn(server.serve(stop.clone()));
    let scrape = || {
        let r = daemon::get(addr, "/metrics");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    let bounces = |t: &str, kind: &str| {
        daemon::metric(t, &format!("ticketgate_bounces_total{{kind=\"{kind}\"}}"))
    };
    let suppressions = |t: &str, kind: &str| {
        daemon::metric(
            t,
            &format!("ticketgate_suppressions_total{{kind=\"{kind}\"}}"),
        )
    };

    let before = scrape();
    for kind in ["hard", "soft", "forged", "unverified"] {
        assert_eq!(bounces(&before, kind), Some(0.0), "{kind}: {before}");
    }
    assert_eq!(suppressions(&before, "hard"), Some(0.0), "{before}");

    let ack = open_ticket(&mut e, "bob@globex.example");
    let good = hard_dsn(&mut e, ack, "bob@globex.example");
    assert_eq!(code(&e.ingest(&good)), "bounce");
    let forged = good
        .replace(&format!("+{ack}."), &format!("+{}.", ack + 1))
        .replace("Message-ID: <dsn", "Message-ID: <forged-dsn");
    assert_eq!(code(&e.ingest(&forged)), "forged_bounce");

    let after = scrape();
    assert_eq!(bounces(&after, "hard"), Some(1.0), "{after}");
    assert_eq!(bounces(&after, "forged"), Some(1.0), "{after}");
    assert_eq!(bounces(&after, "soft"), Some(0.0), "{after}");
    assert_eq!(suppressions(&after, "hard"), Some(1.0), "{after}");
    // A counter: scraped again, the same (the store's count is not added twice).
    let again = scrape();
    assert_eq!(bounces(&again, "hard"), Some(1.0), "{again}");
    assert_eq!(suppressions(&again, "hard"), Some(1.0), "{again}");
    stop.cancel();
}
