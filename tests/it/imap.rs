//! IMAP ingest against a real Dovecot (started per test on its own loopback ports; see
//! `support/dovecot.rs`), with acknowledgements delivered to Postfix's `smtp-sink` where a
//! test needs them to leave. Needs `dovecot-imapd`, `openssl` and `postfix` (Debian).

use crate::common;
use crate::support::dovecot;
use crate::support::smtp_sink;

use common::{Env, env_with, mail};
use dovecot::{Dovecot, OTHER_PASSWORD, OTHER_USER, PASSWORD, USER};
use smtp_sink::SmtpSink;
use std::future::Future;
use std::time::Duration;
use ticketgate::app::RunSummary;
use ticketgate::clock::Clock;
use ticketgate::store::{MailboxState, UidDisposition};

/// `[outbound]` over SMTP to the sink, then the mailbox `support` of [`USER`] on the plain
/// port, with `extra` keys in its table.
fn config(dc: &Dovecot, sink: &SmtpSink, extra: &str) -> String {
    format!(
        "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"10s\"\n{}{extra}\n",
        sink.port,
        dc.mailbox_config("support", USER, &password_file(dc, PASSWORD)),
    )
}

fn password_file(dc: &Dovecot, pw: &str) -> String {
    format!("password_file = \"{}\"", dc.password_file(pw).display())
}

fn request(subject: &str) -> (String, String) {
    let id = format!("{}@client.example", subject.replace(' ', "-"));
    let raw = mail(
        "jane@acme.example",
        subject,
        "Hello, ACME-0000-0000-0001 is broken.",
    )
    .id(&id)
    .build();
    (raw, format!("<{id}>"))
}

async fn once(e: &mut Env) -> RunSummary {
    e.app
        .run(true, std::future::pending())
        .await
        .expect("run --once")
}

/// Runs the daemon while `driver` runs, then shuts it down; returns the driver's value and
/// the daemon's summary.
async fn daemon<T>(e: &mut Env, driver: impl Future<Output = T>) -> (T, RunSummary) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = e.app.run(false, async {
        let _ = stop_rx.await;
    });
    tokio::pin!(run);
    let value = tokio::select! {
        r = &mut run => panic!("the daemon stopped on its own: {r:?}"),
        v = driver => v,
    };
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the daemon stops on shutdown")
        .expect("the daemon ends without error");
    (value, summary)
}

/// Waits (without blocking the daemon) until `check` holds, for at most `secs`.
async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn message_ids(dc: &Dovecot, user: &str, folder: &str) -> Vec<String> {
    dc.list_as(user, folder)
        .into_iter()
        .map(|m| m.message_id)
        .collect()
}

#[tokio::test]
async fn appended_mail_becomes_a_ticket_is_acknowledged_and_moved() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, ""));
    let (raw, id) = request("printer on fire");
    dc.append("INBOX", raw.as_bytes());

    let s = once(&mut e).await;
    assert_eq!((s.inbound.created, s.delivery.sent), (1, 1), "{s:?}");
    let acks = sink.wait_for(1);
    assert!(acks[0].contains("jane@acme.example"), "{}", acks[0]);
    assert!(dc.list("INBOX").is_empty(), "moved out of INBOX");
    assert_eq!(message_ids(&dc, USER, "Processed"), vec![id]);
    let t = e.app.store().unwrap().tickets(10).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].subject, "printer on fire");
    let state = e
        .app
        .store()
        .unwrap()
        .mailbox_state("support")
        .unwrap()
        .unwrap();
    assert_eq!(state.uid_validity, dc.uid_validity("INBOX"));
    assert_eq!(state.last_uid, 1);

    // Nothing new: nothing happens.
    let s = once(&mut e).await;
    assert_eq!(s.inbound.mails(), 0, "{s:?}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn flag_mode_leaves_mail_in_place_as_seen_and_reads_it_once() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "after = \"flag\""));
    let (a, _) = request("a");
    dc.append("INBOX", a.as_bytes());
    let s = once(&mut e).await;
    assert_eq!(s.inbound.created, 1);
    let listed = dc.list("INBOX");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].flags.contains("\\Seen"), "{listed:?}");
    assert!(dc.list("Processed").is_empty(), "no folder made or used");

    let (b, _) = request("b");
    dc.append("INBOX", b.as_bytes());
    let s = once(&mut e).await;
    assert_eq!((s.inbound.created, s.inbound.duplicates), (1, 0), "{s:?}");
    assert!(dc.list("INBOX").iter().all(|m| m.flags.contains("\\Seen")));
    assert_eq!(sink.wait_for(2).len(), 2);
}

#[tokio::test]
async fn delete_mode_removes_processed_mail() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "after = \"delete\""));
    for s in ["a", "b", "c"] {
        dc.append("INBOX", request(s).0.as_bytes());
    }
    let s = once(&mut e).await;
    assert_eq!(s.inbound.created, 3);
    assert!(dc.list("INBOX").is_empty());
    assert!(dc.list("Processed").is_empty());
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 3);
}

#[tokio::test]
async fn implicit_tls_and_starttls_with_the_test_ca() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let ca = dc.ca_file().display().to_string();
    let pw = password_file(&dc, PASSWORD);
    let extra = format!(
        "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         [[inbound.imap]]\nname = \"tls\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\nca_file = \"{ca}\"\nusername = \"{USER}\"\n{pw}\nafter = \"flag\"\n\
         [[inbound.imap]]\nname = \"starttls\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{ca}\"\nusername = \"{OTHER_USER}\"\n{}\n",
        sink.port,
        dc.imaps_port,
        dc.imap_port,
        password_file(&dc, OTHER_PASSWORD),
    );
    let mut e = env_with(&extra);
    dc.append("INBOX", request("over tls").0.as_bytes());
    dc.append_as(
        OTHER_USER,
        OTHER_PASSWORD,
        "INBOX",
        request("over starttls").0.as_bytes(),
    );
    let s = once(&mut e).await;
    assert_eq!(s.inbound.created, 2, "{s:?}");
    assert_eq!(message_ids(&dc, OTHER_USER, "Processed").len(), 1);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let extra = format!(
        "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         [[inbound.imap]]\nname = \"tls\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\nusername = \"{USER}\"\n{}\n",
        sink.port,
        dc.imaps_port,
        dc.other_ca_file().display(),
        password_file(&dc, PASSWORD),
    );
    let e = env_with(&extra);
    dc.append("INBOX", request("secret").0.as_bytes());
    let err = e
        .app
        .run(true, std::future::pending())
        .await
        .expect_err("an untrusted certificate must stop the pass")
        .to_string();
    assert!(err.contains("`tls`"), "names the mailbox: {err}");
    assert!(
        err.contains("TLS handshake failed"),
        "says what failed: {err}"
    );
    assert!(
        err.contains("inbound.imap[0].ca_file"),
        "says what to check: {err}"
    );
    assert_eq!(dc.list("INBOX").len(), 1, "nothing read");
    assert!(e.app.store().unwrap().tickets(10).unwrap().is_empty());
}

#[tokio::test]
async fn mail_appended_while_idling_is_processed_and_acknowledged_promptly() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    // Polling only every 10 minutes: only IDLE can make this pass.
    let mut e = env_with(&config(&dc, &sink, "poll_interval = \"10m\""));
    let driver = async {
        dc.append("INBOX", request("first").0.as_bytes());
        eventually(20, "first mail moved", || dc.list("Processed").len() == 1).await;
        // The daemon is idling now (or about to): this mail must wake it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        dc.append("INBOX", request("second").0.as_bytes());
        eventually(20, "second mail moved", || dc.list("Processed").len() == 2).await;
        eventually(20, "both acknowledgements delivered", || {
            sink.messages().len() == 2
        })
        .await;
    };
    let ((), s) = daemon(&mut e, driver).await;
    assert_eq!(s.inbound.created, 2, "{s:?}");
    assert_eq!(s.delivery.sent, 2, "{s:?}");
}

#[tokio::test]
async fn without_idle_the_mailbox_is_polled() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "idle = false\npoll_interval = \"1s\""));
    let driver = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dc.append("INBOX", request("polled").0.as_bytes());
        eventually(20, "mail moved", || dc.list("Processed").len() == 1).await;
    };
    let ((), s) = daemon(&mut e, driver).await;
    assert_eq!(s.inbound.created, 1);
}

#[tokio::test]
async fn after_a_server_restart_the_daemon_reconnects_and_reads_later_mail() {
    let mut dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "poll_interval = \"10m\""));
    let dc = &mut dc;
    let driver = async move {
        dc.append("INBOX", request("before").0.as_bytes());
        eventually(20, "first mail moved", || dc.list("Processed").len() == 1).await;
        // Cuts the idling connection.
        dc.restart();
        dc.append("INBOX", request("after").0.as_bytes());
        eventually(30, "mail after the restart moved", || {
            dc.list("Processed").len() == 2
        })
        .await;
    };
    let ((), s) = daemon(&mut e, driver).await;
    assert_eq!(s.inbound.created, 2, "{s:?}");
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 2);
}

#[tokio::test]
async fn a_new_uidvalidity_rereads_the_folder_without_duplicates() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "after = \"flag\""));
    dc.append("INBOX", request("a").0.as_bytes());
    assert_eq!(once(&mut e).await.inbound.created, 1);
    let old = dc.uid_validity("INBOX");
    dc.set_uid_validity("INBOX", old + 1000);
    dc.append("INBOX", request("b").0.as_bytes());

    let s = once(&mut e).await;
    // `a` is read again (every UID counts as new) and recognised; `b` is new.
    assert_eq!((s.inbound.created, s.inbound.duplicates), (1, 1), "{s:?}");
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 2);
    assert_eq!(sink.wait_for(2).len(), 2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sink.messages().len(),
        2,
        "no second acknowledgement for `a`"
    );
    let state = e
        .app
        .store()
        .unwrap()
        .mailbox_state("support")
        .unwrap()
        .unwrap();
    assert_eq!(state.uid_validity, old + 1000);
}

#[tokio::test]
async fn oversized_mail_is_quarantined_with_a_reply_without_downloading_its_body() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, ""));
    // Over the default inbound.max_message_size (25 MB).
    let line = "x".repeat(998);
    let body = (0..26 * 1024)
        .map(|_| line.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let raw = mail(
        "jane@acme.example",
        "huge",
        &format!("ACME-0000-0000-0001\n{body}"),
    )
    .id("huge@client.example")
    .build();
    assert!(raw.len() > 25 * 1024 * 1024);
    dc.deliver_many(USER, "INBOX", &[raw.into_bytes()]);

    let s = once(&mut e).await;
    assert_eq!((s.inbound.quarantined, s.inbound.created), (1, 0), "{s:?}");
    let q = e.app.store().unwrap().quarantine(10).unwrap();
    assert_eq!(q[0].reason_code, "too_large");
    assert!(q[0].reason.contains("bytes is over"), "{}", q[0].reason);
    let kept = e
        .app
        .store()
        .unwrap()
        .inbound_raw(q[0].id)
        .unwrap()
        .unwrap()
        .len();
    assert!(
        kept < 64 * 1024,
        "only the header was fetched and kept: {kept} bytes"
    );
    assert!(
        q[0].size > 25 * 1024 * 1024,
        "the quarantine shows the declared size: {}",
        q[0].size
    );
    let replies = sink.wait_for(1);
    assert!(replies[0].contains("jane@acme.example"));
    assert_eq!(
        message_ids(&dc, USER, "Processed"),
        vec!["<huge@client.example>"]
    );
}

/// A mail of `n` bytes or more, over the default inbound.max_message_size (25 MB) for `n`
/// above it.
fn huge(id: &str) -> String {
    let line = "x".repeat(998);
    let body = (0..26 * 1024)
        .map(|_| line.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let raw = mail(
        "jane@acme.example",
        "huge",
        &format!("ACME-0000-0000-0001\n{body}"),
    )
    .id(id)
    .build();
    assert!(raw.len() > 25 * 1024 * 1024);
    raw
}

#[tokio::test]
async fn oversized_mail_in_delete_mode_is_left_in_the_folder_seen_not_deleted() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "after = \"delete\""));
    let (small, _) = request("small");
    dc.append("INBOX", small.as_bytes());
    dc.deliver_many(USER, "INBOX", &[huge("huge@client.example").into_bytes()]);

    let s = once(&mut e).await;
    assert_eq!((s.inbound.created, s.inbound.quarantined), (1, 1), "{s:?}");
    assert_eq!(
        e.app.store().unwrap().quarantine(10).unwrap()[0].reason_code,
        "too_large"
    );
    // Only its header was stored: the mail itself stays on the server, marked as read.
    let left = dc.list("INBOX");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].message_id, "<huge@client.example>");
    assert!(left[0].flags.contains("\\Seen"), "{left:?}");

    // Not fetched again, not deleted later.
    let s = once(&mut e).await;
    assert_eq!(s.inbound.mails(), 0, "{s:?}");
    assert_eq!(dc.list("INBOX"), left);
    let state = e
        .app
        .store()
        .unwrap()
        .mailbox_state("support")
        .unwrap()
        .unwrap();
    assert_eq!(state.last_uid, left[0].uid);
}

#[tokio::test]
async fn a_mail_the_server_cannot_return_is_given_up_on_and_the_others_are_read() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, ""));
    let (a, a_id) = request("first");
    let (b, b_id) = request("unreadable");
    let (c, c_id) = request("third");
    dc.append("INBOX", a.as_bytes());
    let b_uid = dc.append("INBOX", b.as_bytes());
    dc.append("INBOX", c.as_bytes());
    let b_file = dc.message_file(USER, "INBOX", &b_id);
    dc.make_unreadable(&b_file, true);

    // One pass: the chunk fails, is read one mail at a time, the bad one is given up on
    // after a few attempts; the good ones are processed.
    let s = once(&mut e).await;
    assert_eq!(s.inbound.created, 2, "{s:?}");
    assert_eq!(message_ids(&dc, USER, "Processed"), vec![a_id, c_id]);
    // Readable again (for listing, and to show it is not read again by position).
    dc.make_unreadable(&b_file, false);
    let left = dc.list("INBOX");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].uid, b_uid, "left in the folder");
    assert!(left[0].flags.contains("TicketgateSkipped"), "{left:?}");

    // Later mail is read; the bad one is not tried again, nor moved.
    let (d, d_id) = request("fourth");
    dc.append("INBOX", d.as_bytes());
    let s = once(&mut e).await;
    assert_eq!((s.inbound.created, s.inbound.duplicates), (1, 0), "{s:?}");
    assert_eq!(message_ids(&dc, USER, "Processed").last(), Some(&d_id));
    assert_eq!(dc.list("INBOX").len(), 1);
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 3);
}

#[tokio::test]
async fn a_failing_move_does_not_stop_new_mail_and_is_retried_without_downloading_again() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, ""));
    // The folder for processed mail exists but nothing can be moved into it.
    dc.deliver_many(USER, "Processed", &[]);
    dc.set_folder_writable(USER, "Processed", false);
    let (a, a_id) = request("stuck");
    dc.append("INBOX", a.as_bytes());
    let s = once(&mut e).await;
    assert_eq!(s.inbound.created, 1, "{s:?}");
    assert_eq!(message_ids(&dc, USER, "INBOX"), vec![a_id.clone()]);

    // New mail still goes through while the move keeps failing.
    let (b, b_id) = request("next");
    dc.append("INBOX", b.as_bytes());
    let s = once(&mut e).await;
    assert_eq!((s.inbound.created, s.inbound.duplicates), (1, 0), "{s:?}");
    assert_eq!(
        message_ids(&dc, USER, "INBOX"),
        vec![a_id.clone(), b_id.clone()]
    );

    // Once the folder is writable, both are moved, without being downloaded again.
    dc.set_folder_writable(USER, "Processed", true);
    let s = once(&mut e).await;
    assert_eq!(s.inbound.mails(), 0, "{s:?}");
    assert!(dc.list("INBOX").is_empty());
    assert_eq!(message_ids(&dc, USER, "Processed"), vec![a_id, b_id]);
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 2);
}

#[tokio::test]
async fn mail_committed_but_not_moved_before_a_crash_is_moved_and_not_processed_twice() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, ""));
    let (raw, id) = request("interrupted");
    // The state a crash between commit and move leaves: the mail's effects and the mailbox
    // position are committed, the mail is still in the folder.
    let uid = dc.append("INBOX", raw.as_bytes());
    e.ingest(&raw);
    committed_before_a_crash(
        &e,
        dc.uid_validity("INBOX"),
        uid,
        &[(uid, UidDisposition::Stored)],
    );
    let (later, later_id) = request("later");
    dc.append("INBOX", later.as_bytes());

    let s = once(&mut e).await;
    // The committed mail is moved without being downloaded again; `later` is new.
    assert_eq!((s.inbound.created, s.inbound.duplicates), (1, 0), "{s:?}");
    assert!(dc.list("INBOX").is_empty());
    assert_eq!(message_ids(&dc, USER, "Processed"), vec![id, later_id]);
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 2);
    let acks: Vec<_> = e.sent("acknowledgement");
    assert_eq!(acks.len(), 2, "one acknowledgement per mail: {acks:?}");
}

/// Commits what a batch's transaction records for mailbox `support` (its position and what
/// became of each UID) without the after-action: the state a crash right after the commit
/// leaves.
fn committed_before_a_crash(
    e: &Env,
    uid_validity: u32,
    last_uid: u32,
    uids: &[(u32, UidDisposition)],
) {
    let mut conn = e.app.store().unwrap();
    let mut tx = conn.write().unwrap();
    tx.set_mailbox_state(
        "support",
        MailboxState {
            uid_validity,
            last_uid,
        },
    )
    .unwrap();
    tx.set_uid_dispositions("support", uid_validity, uids)
        .unwrap();
    tx.commit().unwrap();
}

/// B1: after a restart, the catch-up moves or deletes only mail recorded as stored. Mail
/// at or below the position that was never stored (given up on before a crash, before its
/// keyword could be set) and mail stored header only are never deleted, whatever happened
/// between the commit and the after-action.
#[tokio::test]
async fn after_a_restart_delete_mode_deletes_only_mail_recorded_as_stored() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "after = \"delete\""));
    let uidv = dc.uid_validity("INBOX");
    let (stored, _) = request("stored");
    let (never, never_id) = request("never stored");
    let big = huge("big@client.example");
    let stored_uid = dc.append("INBOX", stored.as_bytes());
    let never_uid = dc.append("INBOX", never.as_bytes());
    let big_uid = dc.append("INBOX", big.as_bytes());
    e.ingest(&stored);
    // What a crash right after the commit leaves: the position past all three, the records
    // of what became of each, no after-action, no keyword.
    committed_before_a_crash(
        &e,
        uidv,
        big_uid,
        &[
            (stored_uid, UidDisposition::Stored),
            (never_uid, UidDisposition::GivenUp),
            (big_uid, UidDisposition::HeaderOnly),
        ],
    );

    let s = once(&mut e).await;
    assert_eq!(s.inbound.mails(), 0, "nothing is read again: {s:?}");
    let left = dc.list("INBOX");
    let ids: Vec<&str> = left.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![never_id.as_str(), "<big@client.example>"],
        "the stored mail is deleted; the one never stored and the header-only one stay"
    );
    let big_left = left.iter().find(|m| m.uid == big_uid).unwrap();
    assert!(big_left.flags.contains("\\Seen"), "{left:?}");
    // The finished records are dropped; the given-up one stays, so it is never touched.
    let states = e.app.store().unwrap().uid_states("support", uidv).unwrap();
    assert_eq!(
        states
            .iter()
            .map(|s| (s.uid, s.disposition))
            .collect::<Vec<_>>(),
        vec![(never_uid, UidDisposition::GivenUp)]
    );
}

/// A mail the server cannot return is given up on in the store, with the position: a new
/// process (no memory of it) neither reads it again nor moves it, even without the keyword.
#[tokio::test]
async fn a_given_up_mail_is_recorded_and_left_alone_by_a_new_process() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let cfg = config(&dc, &sink, "");
    let mut e = env_with(&cfg);
    let (a, _) = request("readable");
    let (b, b_id) = request("unreadable");
    dc.append("INBOX", a.as_bytes());
    let b_uid = dc.append("INBOX", b.as_bytes());
    let b_file = dc.message_file(USER, "INBOX", &b_id);
    dc.make_unreadable(&b_file, true);
    let s = once(&mut e).await;
    assert_eq!(s.inbound.created, 1, "{s:?}");
    dc.make_unreadable(&b_file, false);
    let uidv = dc.uid_validity("INBOX");
    let states = e.app.store().unwrap().uid_states("support", uidv).unwrap();
    assert_eq!(
        states
            .iter()
            .map(|s| (s.uid, s.disposition))
            .collect::<Vec<_>>(),
        vec![(b_uid, UidDisposition::GivenUp)],
        "given up on, in the store"
    );
    // Another process: its memory is empty; the keyword is gone (a server that keeps no
    // keywords). The mail stays where it is and is not read.
    dc.remove_keyword("INBOX", b_uid, "TicketgateSkipped");
    assert!(
        !dc.list("INBOX")[0].flags.contains("TicketgateSkipped"),
        "{:?}",
        dc.list("INBOX")
    );
    let mut again =
        ticketgate::app::App::open(e.app.cfg.as_ref().clone(), e.app.clock.clone()).unwrap();
    std::mem::swap(&mut e.app, &mut again);
    let s = once(&mut e).await;
    assert_eq!(s.inbound.mails(), 0, "{s:?}");
    let left = dc.list("INBOX");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].uid, b_uid);
}

#[tokio::test]
async fn a_mailbox_with_a_wrong_password_does_not_stop_the_others() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let extra = format!(
        "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n{}{}",
        sink.port,
        dc.mailbox_config("bad", USER, &password_file(&dc, "wrong-password")),
        dc.mailbox_config("good", OTHER_USER, &password_file(&dc, OTHER_PASSWORD)),
    );
    let mut e = env_with(&extra);
    dc.append("INBOX", request("to the bad one").0.as_bytes());
    dc.append_as(
        OTHER_USER,
        OTHER_PASSWORD,
        "INBOX",
        request("to the good one").0.as_bytes(),
    );

    // One pass: the good mailbox is read, the failure is reported with what to check.
    let err = e
        .app
        .run(true, std::future::pending())
        .await
        .expect_err("a mailbox failed")
        .to_string();
    assert!(err.contains("`bad`") && err.contains("login as"), "{err}");
    assert!(err.contains("inbound.imap[0].username"), "{err}");
    assert!(
        !err.contains("wrong-password"),
        "no password in messages: {err}"
    );
    assert_eq!(message_ids(&dc, OTHER_USER, "Processed").len(), 1);
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 1);

    // The daemon keeps serving the good mailbox while the bad one keeps failing.
    let driver = async {
        dc.append_as(
            OTHER_USER,
            OTHER_PASSWORD,
            "INBOX",
            request("again to the good one").0.as_bytes(),
        );
        eventually(20, "good mailbox read", || {
            dc.list_as(OTHER_USER, "Processed").len() == 2
        })
        .await;
    };
    let ((), s) = daemon(&mut e, driver).await;
    assert_eq!(s.inbound.created, 1, "{s:?}");
    assert_eq!(dc.list("INBOX").len(), 1, "the bad mailbox was never read");
}

#[tokio::test]
async fn a_mailbox_leased_by_another_instance_is_left_to_it() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, ""));
    dc.append("INBOX", request("leased").0.as_bytes());
    let now = e.clock.now();
    assert!(
        e.app
            .store()
            .unwrap()
            .try_lease(
                "imap:support",
                "other-host:1:x",
                now,
                now + chrono::Duration::hours(1)
            )
            .unwrap()
    );
    let s = once(&mut e).await;
    assert_eq!(s.inbound.mails(), 0, "{s:?}");
    assert_eq!(dc.list("INBOX").len(), 1);

    e.app
        .store()
        .unwrap()
        .release_lease("imap:support", "other-host:1:x")
        .unwrap();
    let s = once(&mut e).await;
    assert_eq!(s.inbound.created, 1, "{s:?}");
    // Released again after the pass: another instance may take it.
    assert!(
        e.app
            .store()
            .unwrap()
            .try_lease(
                "imap:support",
                "other-host:1:x",
                now,
                now + chrono::Duration::hours(1)
            )
            .unwrap()
    );
}

/// Acknowledgement latency, APPEND to the SMTP server's acceptance, one mail at a time while
/// the daemon idles. A measurement, not a default test (timing depends on the machine):
/// `cargo test --release --test imap ack_latency -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn ack_latency() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, "poll_interval = \"10m\""));
    let n = 40;
    let driver = async {
        let mut lat = Vec::new();
        // Lets the daemon connect and start idling.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..n {
            let t = std::time::Instant::now();
            // A sender per mail: automatic replies are capped per recipient.
            let raw = mail(
                &format!("user{i}@acme.example"),
                "latency",
                "ACME-0000-0000-0001",
            )
            .build();
            dc.append("INBOX", raw.as_bytes());
            eventually(20, &format!("mail {i} acknowledged"), || {
                sink.messages().len() > i
            })
            .await;
            lat.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        lat.sort();
        lat
    };
    let (lat, _) = daemon(&mut e, driver).await;
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    eprintln!(
        "ack latency over {n} mails: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        p(0.5),
        p(0.9),
        p(0.99),
        lat[lat.len() - 1]
    );
    assert!(p(0.99) < Duration::from_secs(1), "p99 over 1 s: {lat:?}");
}

/// Many mails in several batches: every one becomes a ticket once and leaves the folder.
/// Also a rough throughput measurement (`--ignored --nocapture`, best with `--release`).
#[tokio::test]
#[ignore]
async fn bulk_ingest() {
    let dc = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let mut e = env_with(&config(&dc, &sink, ""));
    let n = 3000;
    let mails: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            mail(
                &format!("user{i}@acme.example"),
                "bulk",
                "ACME-0000-0000-0001",
            )
            .build()
            .into_bytes()
        })
        .collect();
    let t = std::time::Instant::now();
    dc.deliver_many(USER, "INBOX", &mails);
    let delivered = t.elapsed();
    let t = std::time::Instant::now();
    let s = once(&mut e).await;
    eprintln!(
        "{n} mails: written to the Maildir in {delivered:?}; read, committed, moved and acknowledged in {:?}",
        t.elapsed()
    );
    assert_eq!((s.inbound.created, s.delivery.sent), (n, n), "{s:?}");
    assert!(dc.list("INBOX").is_empty());
    assert_eq!(dc.list("Processed").len(), n);
}
