//! Outbound delivery over real SMTP: the outbox is sent to Postfix's `smtp-sink`, started by
//! each test on its own loopback port. Checks what arrives and what the outbox records for
//! success, a server that is down, 4xx and 5xx answers, running out of attempts (a dead
//! letter) and the operator's retry of it, and the configured HELO name and envelope sender.
//! Needs `smtp-sink` (Debian `postfix`); `scripts/test` installs it.

use crate::common;
use crate::support;

use chrono::Duration;
use common::{REGISTRY, mail, report, start};
use std::sync::Arc;
use support::smtp_sink::{SmtpSink, free_port};
use ticketgate::app::App;
use ticketgate::clock::{Clock, ManualClock};
use ticketgate::config::{Config, ConfigSource};
use ticketgate::outbox::DeliveryReport;
use ticketgate::pipeline::{Outcome, RawMail};
use ticketgate::store::OutboxRow;

struct Env {
    app: App,
    clock: ManualClock,
    /// The PostgreSQL database when the tests run there (dropped after the app).
    _db: Option<common::TestDatabase>,
    _dir: tempfile::TempDir,
}

/// An app on a fresh database that sends through SMTP to 127.0.0.1:`port`; `extra` lines
/// go into `[outbound]`. Must run inside a Tokio runtime (lettre's pool spawns a task).
fn env(port: u16, extra: &str) -> Env {
    env_smtp(port, extra, "")
}

/// [`env`] with `smtp_extra` lines in `[outbound.smtp]`.
fn env_smtp(port: u16, extra: &str, smtp_extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("customers.toml"), REGISTRY).unwrap();
    let (db_url, db) = common::database_url(dir.path());
    let text = format!(
        "[database]\nurl = \"{db_url}\"\n[inbound]\nmaildir = \"inbox\"\n\
         [registry]\npath = \"customers.toml\"\n\
         [outbound]\ntransport = \"smtp\"\n{extra}\n\
         [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"10s\"\n{smtp_extra}"
    );
    let cfg = Config::from_toml(
        &text,
        dir.path(),
        ConfigSource::File(dir.path().join("t.toml")),
    )
    .unwrap();
    let clock = ManualClock::new(start());
    let app = App::open(cfg, Arc::new(clock.clone())).unwrap();
    Env {
        app,
        clock,
        _db: db,
        _dir: dir,
    }
}

impl Env {
    /// A new request from `from` (an ACME address): opens a ticket and queues one
    /// acknowledgement.
    fn request(&mut self, from: &str, subject: &str) {
        let raw = mail(from, subject, "Support-Key: ACME-0000-0000-0001\nIt fails.").build();
        let outcome = self
            .app
            .ingest(RawMail {
                source: "test".into(),
                bytes: raw.into_bytes(),
            })
            .unwrap();
        assert!(matches!(outcome, Outcome::Created { .. }), "{outcome:?}");
    }

    fn outbox(&mut self) -> Vec<OutboxRow> {
        self.app.store().unwrap().outbox(10_000).unwrap()
    }

    fn only_row(&mut self) -> OutboxRow {
        let mut rows = self.outbox();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.remove(0)
    }

    async fn deliver(&mut self) -> DeliveryReport {
        self.app.deliver().await.unwrap()
    }

    /// Moves the clock just past the row's next attempt.
    fn advance_past(&self, row: &OutboxRow) {
        let now = self.clock.now();
        self.clock
            .advance(row.next_attempt_at - now + Duration::seconds(1));
    }
}

#[tokio::test]
async fn an_acknowledgement_is_delivered_over_smtp_and_marked_sent() {
    let sink = SmtpSink::start(&[]);
    let mut e = env(sink.port, "");
    e.request("Jane Doe <jane@acme.example>", "Export fails");
    let ack = e.only_row();
    assert_eq!(
        (ack.kind.as_str(), ack.state.as_str()),
        ("acknowledgement", "pending")
    );

    assert_eq!(e.deliver().await, report(1, 0, 0));

    let got = sink.wait_for(1);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(
        m.contains(&format!("Message-ID: <{}>", ack.message_id)),
        "{m}"
    );
    assert!(m.contains(&format!("Subject: {}", ack.subject)), "{m}");
    assert!(ack.subject.starts_with("[TKT-000001]"), "{}", ack.subject);
    assert!(m.contains("X-Rcpt-Args: <jane@acme.example>"), "{m}");
    assert!(
        m.contains("X-Mail-Args: <support@support.example.test>"),
        "{m}"
    );

    let row = e.only_row();
    assert_eq!(row.state, "sent");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error, None);
    assert!(row.sent_at.is_some());
    // Nothing is due any more: another pass sends nothing.
    assert_eq!(e.deliver().await, report(0, 0, 0));
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn thirty_mails_go_out_concurrently_in_one_pass() {
    // The sink waits 1 s before answering each DATA: one connection at a time would take
    // 30 s, three at a time 10 s; 15 at a time takes about 2.
    let sink = SmtpSink::start(&["-w", "1"]);
    let mut e = env(sink.port, "concurrency = 15");
    for i in 0..30 {
        e.request(&format!("user{i}@acme.example"), &format!("Problem {i}"));
    }
    assert_eq!(e.outbox().len(), 30);

    let started = std::time::Instant::now();
    assert_eq!(e.deliver().await, report(30, 0, 0));
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(8),
        "30 mails took {took:?}: not sent concurrently"
    );

    let got = sink.wait_for(30);
    assert_eq!(got.len(), 30);
    let rows = e.outbox();
    assert!(
        rows.iter().all(|r| r.state == "sent" && r.attempts == 1),
        "{rows:?}"
    );
    for r in &rows {
        let id = format!("Message-ID: <{}>", r.message_id);
        assert_eq!(
            got.iter().filter(|m| m.contains(&id)).count(),
            1,
            "{} arrived once",
            r.message_id
        );
    }
}

#[tokio::test]
async fn a_server_that_is_down_means_retry_later_and_the_mail_goes_out_once_it_is_back() {
    let port = free_port();
    let mut e = env(port, "");
    e.request("jane@acme.example", "Export fails");

    assert_eq!(e.deliver().await, report(0, 1, 0));
    let row = e.only_row();
    assert_eq!(row.state, "retry");
    assert_eq!(row.attempts, 1);
    let err = row.last_error.clone().unwrap();
    assert!(err.to_lowercase().contains("connection"), "{err}");
    let now = e.clock.now();
    assert!(row.next_attempt_at > now, "{} > {now}", row.next_attempt_at);
    assert_eq!(row.sent_at, None);

    // Not due yet: nothing is tried.
    assert_eq!(e.deliver().await, report(0, 0, 0));

    let sink = SmtpSink::start_on(port, &[]);
    e.advance_past(&row);
    assert_eq!(e.deliver().await, report(1, 0, 0));
    let row = e.only_row();
    assert_eq!(row.state, "sent");
    assert_eq!(row.attempts, 2);
    let got = sink.wait_for(1);
    assert_eq!(got.len(), 1, "exactly one copy");
    assert!(got[0].contains(&format!("Message-ID: <{}>", row.message_id)));

    e.clock.advance(Duration::days(2));
    assert_eq!(e.deliver().await, report(0, 0, 0));
    assert_eq!(sink.messages().len(), 1, "still exactly one copy");
}

#[tokio::test]
async fn a_4xx_answer_is_retried_later() {
    // -r: soft-reject (450 4.3.0) every RCPT TO.
    let sink = SmtpSink::start(&["-r", "rcpt"]);
    let mut e = env(sink.port, "");
    e.request("jane@acme.example", "Export fails");

    assert_eq!(e.deliver().await, report(0, 1, 0));
    let row = e.only_row();
    assert_eq!(row.state, "retry");
    assert_eq!(row.attempts, 1);
    let err = row.last_error.clone().unwrap();
    assert!(err.contains("450"), "{err}");
    assert!(row.next_attempt_at > e.clock.now());

    // Still refused on the next attempt: retried again, not failed.
    e.advance_past(&row);
    assert_eq!(e.deliver().await, report(0, 1, 0));
    let row = e.only_row();
    assert_eq!((row.state.as_str(), row.attempts), ("retry", 2));
    assert!(sink.accepted_none(), "{:?}", sink.messages());
}

#[tokio::test]
async fn a_5xx_answer_fails_the_mail_for_good_with_the_servers_words() {
    // -f: hard-reject every RCPT TO, with the reply given by -B.
    let sink = SmtpSink::start(&[
        "-f",
        "rcpt",
        "-B",
        "550 5.1.1 Recipient address rejected: no such user",
    ]);
    let mut e = env(sink.port, "");
    e.request("jane@acme.example", "Export fails");

    assert_eq!(e.deliver().await, report(0, 0, 1));
    let row = e.only_row();
    assert_eq!(row.state, "failed");
    assert_eq!(row.attempts, 1);
    let err = row.last_error.clone().unwrap();
    assert!(err.contains("550"), "{err}");
    assert!(
        err.contains("Recipient address rejected: no such user"),
        "{err}"
    );

    e.clock.advance(Duration::days(7));
    assert_eq!(e.deliver().await, report(0, 0, 0));
    let row = e.only_row();
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 1));
    // smtp-sink keeps a capture file open for a transaction in progress until the client's
    // RSET reaches it: what counts is that no message content was accepted.
    let got = sink.messages();
    assert!(got.iter().all(|m| !m.contains("Subject:")), "{got:?}");
}

#[tokio::test]
async fn a_mail_out_of_attempts_becomes_a_dead_letter_saying_so() {
    let port = free_port();
    let mut e = env(port, "max_attempts = 2");
    e.request("jane@acme.example", "Export fails");

    assert_eq!(e.deliver().await, report(0, 1, 0));
    let row = e.only_row();
    assert_eq!((row.state.as_str(), row.attempts), ("retry", 1));

    e.advance_past(&row);
    assert_eq!(e.deliver().await, report(0, 0, 1));
    let row = e.only_row();
    assert_eq!((row.state.as_str(), row.attempts), ("dead", 2));
    let err = row.last_error.clone().unwrap();
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert!(
        err.to_lowercase().contains("connection"),
        "the last error is kept: {err}"
    );

    e.clock.advance(Duration::days(7));
    assert_eq!(e.deliver().await, report(0, 0, 0));
    assert_eq!(e.only_row().attempts, 2);
}

#[tokio::test]
async fn a_mail_that_keeps_getting_4xx_becomes_dead_and_goes_out_once_retried() {
    // -r: soft-reject (450 4.3.0) every RCPT TO.
    let refusing = SmtpSink::start(&["-r", "rcpt"]);
    let port = refusing.port;
    let mut e = env(port, "max_attempts = 3");
    e.request("jane@acme.example", "Export fails");

    for attempt in 1..=2 {
        assert_eq!(e.deliver().await, report(0, 1, 0), "attempt {attempt}");
        let row = e.only_row();
        assert_eq!((row.state.as_str(), row.attempts), ("retry", attempt));
        e.advance_past(&row);
    }
    assert_eq!(e.deliver().await, report(0, 0, 1));
    let dead = e.only_row();
    assert_eq!((dead.state.as_str(), dead.attempts), ("dead", 3));
    let err = dead.last_error.clone().unwrap();
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(
        err.contains("450"),
        "the server's last answer is kept: {err}"
    );
    assert!(refusing.accepted_none(), "{:?}", refusing.messages());

    // A dead letter is not tried again by itself, even when the server would take it.
    drop(refusing);
    let sink = SmtpSink::start_on(port, &[]);
    e.clock.advance(Duration::days(7));
    assert_eq!(e.deliver().await, report(0, 0, 0));
    assert!(sink.messages().is_empty());

    // The operator retries it: back to pending with its attempts reset, then sent once.
    let now = e.clock.now();
    assert!(e.app.store().unwrap().retry_outbox(dead.id, now).unwrap());
    let row = e.only_row();
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 0));
    assert_eq!(e.deliver().await, report(1, 0, 0));
    let row = e.only_row();
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 1));
    assert_eq!(row.last_error, None);
    let got = sink.wait_for(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].contains(&format!("Message-ID: <{}>", row.message_id)));
    assert!(
        got[0].contains("X-Rcpt-Args: <jane@acme.example>"),
        "{}",
        got[0]
    );

    // Sent is final: it cannot be retried again.
    assert!(!e.app.store().unwrap().retry_outbox(row.id, now).unwrap());
}

#[tokio::test]
async fn the_configured_helo_name_and_envelope_sender_are_the_ones_used() {
    let sink = SmtpSink::start(&[]);
    let mut e = env_smtp(
        sink.port,
        "",
        "helo_name = \"mx-out.support.example.test\"\n\
         envelope_from = \"bounces+tg@support.example.test\"\n",
    );
    e.request("jane@acme.example", "Export fails");
    assert_eq!(e.deliver().await, report(1, 0, 0));

    let got = sink.wait_for(1);
    let m = &got[0];
    // smtp-sink's own headers: the last EHLO and the MAIL FROM / RCPT TO arguments.
    assert!(
        m.contains("X-Helo-Args: mx-out.support.example.test\n"),
        "{m}"
    );
    assert!(
        m.contains("X-Mail-Args: <bounces+tg@support.example.test>"),
        "{m}"
    );
    assert!(m.contains("X-Rcpt-Args: <jane@acme.example>"), "{m}");
    // The header From is still `outbound.from`: only the envelope changed.
    assert!(
        m.contains("\nFrom: Support <support@support.example.test>\n"),
        "{m}"
    );
    assert!(!m.contains("From: <bounces+tg"), "{m}");
}

#[tokio::test]
async fn without_a_helo_name_the_machine_name_is_sent_and_the_envelope_is_outbound_from() {
    let sink = SmtpSink::start(&[]);
    let mut e = env(sink.port, "");
    e.request("jane@acme.example", "Export fails");
    assert_eq!(e.deliver().await, report(1, 0, 0));
    let got = sink.wait_for(1);
    let helo = got[0]
        .lines()
        .find_map(|l| l.strip_prefix("X-Helo-Args: "))
        .unwrap_or_else(|| panic!("no X-Helo-Args in {}", got[0]));
    assert!(
        !helo.is_empty() && helo != "mx-out.support.example.test",
        "{helo}"
    );
    assert!(
        got[0].contains("X-Mail-Args: <support@support.example.test>"),
        "{}",
        got[0]
    );
}

#[tokio::test]
async fn a_claim_too_old_to_finish_an_attempt_is_given_back_not_sent_twice() {
    // The sink answers each DATA after 1 s while the clock runs 50 s per real second: the
    // 81 s claim on the messages claimed together runs out while the first ones are sent.
    // A message whose claim could lapse mid-attempt (8 × timeout = 80 s) is given back and
    // claimed afresh, never started late, and a lapsed claim still in flight is never
    // claimed again by the same sender; so each arrives exactly once.
    let sink = SmtpSink::start(&["-w", "1"]);
    let mut e = env(sink.port, "concurrency = 1\nclaim_timeout = \"81s\"");
    for i in 0..4 {
        e.request(&format!("user{i}@acme.example"), &format!("Problem {i}"));
    }
    let clock = e.clock.clone();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ticking = async {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            clock.advance(chrono::Duration::seconds(5));
        }
    };
    let delivering = async {
        let r = e.app.deliver().await.unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    };
    let (r, ()) = tokio::join!(delivering, ticking);
    assert_eq!(r.sent, 4, "{r:?}");
    let got = sink.wait_for(4);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(sink.count(), 4, "no message sent twice: {got:?}");
    assert!(e.outbox().iter().all(|o| o.state == "sent"));
}
