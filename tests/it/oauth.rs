//! XOAUTH2 against a real server: Dovecot's `oauth2` passdb asks a token-introspection
//! endpoint (`support/introspect.rs`, RFC 7662) about every token a mailbox logs in with.
//! A granted token reads mail; a token the endpoint rejects is a login failure that shows in
//! the daemon's log, `/readyz` and `/metrics` (and mail flows again once the token file has
//! a good token: it is read at each login); a token about to expire is reported in the same
//! three places while mail still flows.

use crate::common;
use crate::support::daemon::Daemon;
use crate::support::dovecot::{self, Dovecot};
use crate::support::introspect::Introspection;
use crate::support::smtp_sink::SmtpSink;

use common::{env_with, mail};
use dovecot::USER;
use std::path::Path;

fn request(subject: &str) -> String {
    mail(
        "jane@acme.example",
        subject,
        "Hello, ACME-0000-0000-0001 is broken.",
    )
    .id(&format!("{}@client.example", subject.replace(' ', "-")))
    .build()
}

/// The mailbox `support` of [`USER`] logging in with XOAUTH2, its token read from `token`.
fn xoauth2_mailbox(dc: &Dovecot, token: &Path) -> String {
    dc.mailbox_config(
        "support",
        USER,
        &format!(
            "auth = \"xoauth2\"\ntoken_file = \"{}\"\nlease = \"1m\"",
            token.display()
        ),
    )
}

/// The endpoint, Dovecot asking it, and a folder and database for the daemon.
struct Setup {
    idp: Introspection,
    dc: Dovecot,
    dir: tempfile::TempDir,
    db: String,
    _db_guard: Option<common::TestDatabase>,
}

fn setup() -> Setup {
    let idp = Introspection::start();
    let dc = Dovecot::start_with_oauth2(&idp.url());
    let dir = tempfile::tempdir().unwrap();
    let (db, _db_guard) = common::database_url(dir.path());
    Setup {
        idp,
        dc,
        dir,
        db,
        _db_guard,
    }
}

impl Setup {
    /// What the mailbox's token file says.
    fn token_file(&self, text: &str) {
        std::fs::write(self.dir.path().join("token"), text).unwrap();
    }

    /// `ticketgate run` with the mailbox, `.eml` outbound mail and the web server.
    fn daemon(&self) -> Daemon {
        let dir = self.dir.path();
        std::fs::write(dir.join("customers.toml"), common::REGISTRY).unwrap();
        Daemon::start(
            dir,
            &format!(
                "[database]\nurl = \"{}\"\n[registry]\npath = \"customers.toml\"\n\
                 [outbound]\ntransport = \"file\"\ndir = \"outbox\"\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n{}",
                self.db,
                xoauth2_mailbox(&self.dc, &dir.join("token"))
            ),
        )
    }
}

#[tokio::test]
async fn a_mailbox_logs_in_with_xoauth2_through_dovecots_oauth2_passdb_and_ingests_mail() {
    let idp = Introspection::start();
    let dc = Dovecot::start_with_oauth2(&idp.url());
    let sink = SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    // An OAuth token response, as a token helper prints it: an hour left.
    std::fs::write(
        &token,
        r#"{"access_token":"at-7f3a9c-valid","token_type":"Bearer","expires_in":3600}"#,
    )
    .unwrap();
    idp.grant("at-7f3a9c-valid", USER);
    let e = env_with(&format!(
        "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\n\
         tls = \"none\"\ntimeout = \"10s\"\n{}",
        sink.port,
        xoauth2_mailbox(&dc, &token)
    ));
    dc.append("INBOX", request("printer on fire").as_bytes());

    let s = e
        .app
        .run(true, std::future::pending())
        .await
        .expect("one pass logs in with the token");
    assert_eq!((s.inbound.created, s.delivery.sent), (1, 1), "{s:?}");
    assert_eq!(sink.wait_for(1).len(), 1);
    assert_eq!(dc.list("Processed").len(), 1, "moved after the commit");
    // Dovecot asked the endpoint, which accepted the token (the passwd-file passdb does not
    // take XOAUTH2 at all, so nothing else could have let the login in).
    assert!(idp.requests() >= 1 && idp.rejected() == 0);
    let mb = &e.app.telemetry.mailboxes()[0];
    let left = mb.token_expiry.expect("expires_in gives the expiry") - e.app.clock.now();
    assert!(
        left > chrono::Duration::minutes(59) && left <= chrono::Duration::hours(1),
        "{left}"
    );
}

#[test]
fn a_token_the_endpoint_rejects_shows_in_the_log_readyz_and_metrics_until_replaced() {
    let s = setup();
    let (idp, dc) = (&s.idp, &s.dc);
    let revoked = "at-0b1d2e-revoked";
    s.token_file(revoked);
    dc.append("INBOX", request("sent while the token is bad").as_bytes());
    let d = s.daemon();
    let failures = "ticketgate_mailbox_login_failures_total{mailbox=\"support\"}";

    d.until(30, "a login failure counted", || {
        d.metric(failures).unwrap_or(0.0) >= 1.0
    });
    assert!(idp.rejected() >= 1, "the endpoint was asked and said no");
    let r = d.get("/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    let j = r.json();
    let mb = &j["mailboxes"][0];
    assert_eq!(mb["connected"], false, "{j}");
    let error = mb["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("login as support@example.test failed") && error.contains("token_file"),
        "{j}"
    );
    assert_eq!(
        d.metric("ticketgate_mailbox_connected{mailbox=\"support\"}"),
        Some(0.0)
    );
    let log = d.log();
    assert!(
        log.contains("login as support@example.test failed") && log.contains("mailbox=support"),
        "{log}"
    );
    assert!(!log.contains(revoked), "a token in the log: {log}");
    assert!(dc.list("Processed").is_empty(), "nothing read");

    // A fresh token in the file: the next login (backoff: seconds) takes it and reads mail.
    idp.grant("at-5c6d7e-fresh", USER);
    s.token_file("at-5c6d7e-fresh");
    d.until(60, "ready with the fresh token", || {
        d.get("/readyz").status == 200
    });
    d.until(30, "the waiting mail read", || {
        dc.list("Processed").len() == 1
    });
    assert_eq!(
        d.metric("ticketgate_mailbox_connected{mailbox=\"support\"}"),
        Some(1.0)
    );
}

#[test]
fn a_token_near_expiry_is_reported_in_the_log_readyz_and_metrics_while_mail_flows() {
    let s = setup();
    let token = "at-91aa02-short";
    s.idp.grant(token, USER);
    s.token_file(&format!(
        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":300}}"#
    ));
    let d = s.daemon();
    let dc = &s.dc;

    d.until(30, "ready", || d.get("/readyz").status == 200);
    let j = d.get("/readyz").json();
    let mb = &j["mailboxes"][0];
    assert_eq!(mb["token_expiring"], true, "{j}");
    assert!(mb["token_expiry"].is_string(), "{j}");
    let left = d
        .metric("ticketgate_mailbox_token_expiry_seconds{mailbox=\"support\"}")
        .expect("the expiry metric");
    assert!(left > 200.0 && left <= 300.0, "{left}");
    let log = d.log();
    assert!(
        log.contains("mailbox=support") && log.contains("the XOAUTH2 token expires in"),
        "{log}"
    );
    assert!(!log.contains(token), "a token in the log: {log}");
    // Still reading mail: the warning comes before fetching stops.
    dc.append("INBOX", request("still flowing").as_bytes());
    d.until(30, "mail read", || dc.list("Processed").len() == 1);
    assert_eq!(
        d.metric("ticketgate_mailbox_login_failures_total{mailbox=\"support\"}"),
        Some(0.0)
    );
}
