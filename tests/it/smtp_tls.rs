//! Outbound delivery over SMTP with TLS and AUTH against a real submission server: Dovecot's
//! submission service (STARTTLS on one port, implicit TLS on another, AUTH PLAIN/LOGIN
//! against its passwd-file users, certificate from a test CA made for the run), relaying what
//! it accepts to Postfix's `smtp-sink`. Checks that mail arrives over both kinds of TLS with
//! the test CA trusted, and what the outbox records for an untrusted certificate, a wrong
//! password, and a server that wants STARTTLS before AUTH when TLS is off.
//! Needs `dovecot-submissiond`, `dovecot-core`, `postfix` (smtp-sink) and `openssl`;
//! `scripts/test` installs them.

use crate::common;
use crate::support::dovecot;
use crate::support::smtp_sink;

use common::{Env, env_with, mail, report};
use dovecot::{Dovecot, PASSWORD, SUBMISSION_HOST, USER};
use smtp_sink::SmtpSink;
use std::path::Path;
use ticketgate::pipeline::Outcome;
use ticketgate::store::OutboxRow;

/// A running submission server and the sink it relays to.
struct Servers {
    sink: SmtpSink,
    dovecot: Dovecot,
}

fn servers() -> Servers {
    let sink = SmtpSink::start(&[]);
    let dovecot = Dovecot::start_with_submission(sink.port);
    Servers { sink, dovecot }
}

/// An app sending through [`SUBMISSION_HOST`]:`port` with `tls`, trusting `ca`, logging in as
/// [`USER`] with `password` (from a file).
fn app(s: &Servers, port: u16, tls: &str, ca: &Path, password: &str) -> Env {
    let pw = s.dovecot.password_file(password);
    // No CA without TLS: the configuration refuses that combination.
    let ca = if tls == "none" {
        String::new()
    } else {
        format!("ca_file = \"{}\"\n", ca.display())
    };
    env_with(&format!(
        "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"{SUBMISSION_HOST}\"\nport = {port}\n\
         tls = \"{tls}\"\n{ca}username = \"{USER}\"\npassword_file = \"{}\"\n\
         timeout = \"10s\"\n",
        pw.display()
    ))
}

/// Ingests a new ACME request: one acknowledgement is queued. Returns it.
fn request(e: &mut Env) -> OutboxRow {
    let raw = mail(
        "Jane Doe <jane@acme.example>",
        "Export fails",
        "Support-Key: ACME-0000-0000-0001\nIt fails.",
    )
    .build();
    let outcome = e.ingest(&raw);
    assert!(matches!(outcome, Outcome::Created { .. }), "{outcome:?}");
    only_row(e)
}

fn only_row(e: &mut Env) -> OutboxRow {
    let mut rows = e.outbox();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

/// Delivers `e`'s acknowledgement and checks it went through Dovecot (a TLS login of
/// [`USER`]) to the sink.
async fn delivers(s: &Servers, e: &mut Env) {
    let ack = request(e);
    assert_eq!(
        e.app.deliver().await.unwrap(),
        report(1, 0, 0),
        "{:?}\n{}",
        e.outbox(),
        s.dovecot.log()
    );
    let got = s.sink.wait_for(1);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(
        m.contains(&format!("Message-ID: <{}>", ack.message_id)),
        "{m}"
    );
    assert!(m.contains("X-Rcpt-Args: <jane@acme.example>"), "{m}");
    let row = only_row(e);
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 1));
    assert_eq!(row.last_error, None);
    // Dovecot's record of the session: our user logged in, over TLS.
    let log = s.dovecot.log();
    let login = log
        .lines()
        .find(|l| l.contains("submission-login: Info: Login: ") && l.contains(&format!("<{USER}>")))
        .unwrap_or_else(|| panic!("no submission login of {USER} in Dovecot's log:\n{log}"));
    assert!(login.contains("TLS"), "{login}");
}

#[tokio::test]
async fn starttls_with_the_configured_ca_and_auth_delivers() {
    let s = servers();
    let mut e = app(
        &s,
        s.dovecot.submission_port,
        "starttls",
        &s.dovecot.ca_file(),
        PASSWORD,
    );
    delivers(&s, &mut e).await;
}

#[tokio::test]
async fn implicit_tls_with_the_configured_ca_and_auth_delivers() {
    let s = servers();
    let mut e = app(
        &s,
        s.dovecot.submissions_port,
        "tls",
        &s.dovecot.ca_file(),
        PASSWORD,
    );
    delivers(&s, &mut e).await;
}

/// With `ca` not the one that signed Dovecot's certificate, nothing is sent and the mail
/// waits for a retry, with a reason naming the certificate.
async fn untrusted_certificate_is_retried(s: &Servers, port: u16, tls: &str) {
    let mut e = app(s, port, tls, &s.dovecot.other_ca_file(), PASSWORD);
    request(&mut e);
    assert_eq!(e.app.deliver().await.unwrap(), report(0, 1, 0));
    let row = only_row(&mut e);
    assert_eq!((row.state.as_str(), row.attempts), ("retry", 1));
    let err = row.last_error.unwrap();

    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "{tls}: {err}"
    );
    assert_eq!(s.sink.count(), 0);
}

#[tokio::test]
async fn an_untrusted_server_certificate_means_retry_and_nothing_is_sent() {
    let s = servers();
    untrusted_certificate_is_retried(&s, s.dovecot.submission_port, "starttls").await;
    untrusted_certificate_is_retried(&s, s.dovecot.submissions_port, "tls").await;
    assert!(
        !s.dovecot.log().contains("submission-login: Info: Login: "),
        "{}",
        s.dovecot.log()
    );
}

#[tokio::test]
async fn a_wrong_password_keeps_the_mail_for_a_retry_with_the_servers_answer() {
    // A refused login is a configuration problem, not the message's: every queued mail
    // would otherwise fail for good at once.
    let s = servers();
    let mut e = app(
        &s,
        s.dovecot.submission_port,
        "starttls",
        &s.dovecot.ca_file(),
        "not-the-password",
    );
    request(&mut e);
    assert_eq!(e.app.deliver().await.unwrap(), report(0, 1, 0));
    let row = only_row(&mut e);
    assert_eq!((row.state.as_str(), row.attempts), ("retry", 1));
    let err = row.last_error.unwrap();

    // Dovecot: "535 5.7.8 Authentication failed".
    assert!(
        err.contains("535")
            && err.contains("Authentication failed")
            && err.contains("outbound.smtp.username"),
        "{err}"
    );
    assert_eq!(s.sink.count(), 0);
}

#[tokio::test]
async fn without_tls_a_server_that_wants_starttls_first_refuses_auth_clearly() {
    let s = servers();
    let mut e = app(
        &s,
        s.dovecot.submission_port,
        "none",
        &s.dovecot.ca_file(),
        PASSWORD,
    );
    request(&mut e);
    let r = e.app.deliver().await.unwrap();
    let row = only_row(&mut e);
    let err = row.last_error.clone().unwrap_or_default();

    assert_eq!(r, report(0, 1, 0), "{err}");
    assert_eq!((row.state.as_str(), row.attempts), ("retry", 1));
    assert!(err.contains("TLS") && err.contains("AUTH"), "{err}");
    assert_eq!(s.sink.count(), 0);
}
