//! The daemon loop: mail that arrives while it runs is processed and delivered without a
//! restart, and a shutdown request stops it cleanly.

use crate::common;
use crate::support::dovecot;

use common::{env, mail};
use dovecot::{Dovecot, PASSWORD, USER};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ticketgate::clock::{Clock, SystemClock};
use ticketgate::ingest::Maildir;

/// The real daemon with `ticketgate.toml` in `dir`, its log in `daemon.log`.
fn start_daemon(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .current_dir(dir)
        .arg("--config")
        .arg(dir.join("ticketgate.toml"))
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .expect("starting the daemon")
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

fn wait_for_log(dir: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log(dir).contains(text) {
        assert!(
            Instant::now() < deadline,
            "no `{text}` in the log: {}",
            log(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// Waits for the process to exit; its status and how long it took.
fn wait_exit(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the daemon did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM: the daemon stops its tasks, gives its IMAP lease back (another instance may
/// take the mailbox at once, not after the lease lapses) and exits 0.
#[test]
fn sigterm_stops_the_daemon_gives_back_its_lease_and_exits_0() {
    let dovecot = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, _db_guard) = common::database_url(dir.path());
    std::fs::write(dir.path().join("customers.toml"), common::REGISTRY).unwrap();
    std::fs::write(
        dir.path().join("ticketgate.toml"),
        format!(
            "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"inbox\"\n\n\
             {mailbox}password_file = \"{pw}\"\nlease = \"10m\"\n\n\
             [registry]\npath = \"customers.toml\"\n[outbound]\ntransport = \"file\"\ndir = \"outbox\"\n",
            mailbox = dovecot.mailbox_config("support", USER, ""),
            pw = dovecot.password_file(PASSWORD).display(),
        ),
    )
    .unwrap();
    let mut store = ticketgate::store::open(&db).unwrap();
    let mut daemon = start_daemon(dir.path());
    wait_for_log(dir.path(), "lease taken");
    let now = SystemClock.now();
    let hour = chrono::Duration::hours(1);
    assert!(
        !store
            .try_lease("imap:support", "other:1:x", now, now + hour)
            .unwrap(),
        "the running daemon holds the lease"
    );
    sigterm(&daemon);
    let (status, took) = wait_exit(&mut daemon, Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        log(dir.path())
    );
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
    assert!(
        log(dir.path()).contains("shutting down"),
        "{}",
        log(dir.path())
    );
    assert!(
        store
            .try_lease("imap:support", "other:1:x", now, now + hour)
            .unwrap(),
        "the lease (10 min) was given back at shutdown"
    );
}

/// A task that cannot finish (an SMTP server that accepts connections and never answers)
/// does not hold the shutdown past `daemon.shutdown_timeout`: the daemon says so and exits 0.
#[test]
fn shutdown_waits_at_most_shutdown_timeout_for_a_stuck_send() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _db_guard) = common::database_url(dir.path());
    std::fs::write(dir.path().join("customers.toml"), common::REGISTRY).unwrap();
    // Accepts and says nothing: the greeting never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in silent.incoming().take(4) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    std::fs::write(
        dir.path().join("ticketgate.toml"),
        format!(
            "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"inbox\"\npoll_interval = \"100ms\"\n\
             [registry]\npath = \"customers.toml\"\n\
             [outbound]\ntransport = \"smtp\"\nclaim_timeout = \"30m\"\n\
             [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"3m\"\n\
             [daemon]\nshutdown_timeout = \"2s\"\n",
        ),
    )
    .unwrap();
    let inbox = Maildir::open(&dir.path().join("inbox")).unwrap();
    inbox
        .deliver(
            "1.a",
            mail("jane@acme.example", "x", "ACME-0000-0000-0001")
                .build()
                .as_bytes(),
        )
        .unwrap();
    let mut daemon = start_daemon(dir.path());
    // The acknowledgement is being sent (to a server that never answers).
    let mut store = ticketgate::store::open(&db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store
        .outbox(10)
        .unwrap()
        .iter()
        .any(|o| o.state == "sending")
    {
        assert!(
            Instant::now() < deadline,
            "nothing is being sent: {}",
            log(dir.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&daemon);
    let (status, took) = wait_exit(&mut daemon, Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        log(dir.path())
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "stopped after {took:?}, with shutdown_timeout = 2s"
    );
    assert!(
        log(dir.path()).contains("did not stop within daemon.shutdown_timeout"),
        "{}",
        log(dir.path())
    );
    drop(held);
}

#[tokio::test]
async fn mail_arriving_while_the_daemon_runs_is_answered_and_shutdown_stops_it() {
    let e = env();
    let inbox = Maildir::open(&e.path("inbox")).unwrap();
    let outbox_dir = e.path("outbox");
    let seen = e.path("inbox/cur/1700000000.M1.test:2,S");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let request = mail("jane@acme.example", "x", "ACME-0000-0000-0001").build();

    let driver = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        inbox
            .deliver("1700000000.M1.test", request.as_bytes())
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let files = std::fs::read_dir(&outbox_dir)
                .map(|d| d.count())
                .unwrap_or(0);
            if files > 0 || tokio::time::Instant::now() > deadline {
                break files;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let shutdown = async {
        let _ = stop_rx.await;
    };
    let run = e.app.run(false, shutdown);
    tokio::pin!(run);
    let files = tokio::select! {
        r = &mut run => panic!("daemon stopped on its own: {r:?}"),
        files = driver => files,
    };
    assert_eq!(files, 1, "acknowledgement written while the daemon runs");
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
    assert_eq!(summary.inbound.created, 1);
    assert_eq!(summary.delivery.sent, 1);
    assert!(seen.exists(), "processed mail is moved to cur/ as Seen");
}

#[tokio::test]
async fn a_mail_that_cannot_be_moved_after_commit_does_not_stall_the_drain() {
    let e = env();
    let inbox = Maildir::open(&e.path("inbox")).unwrap();
    inbox
        .deliver(
            "1.a",
            mail("jane@acme.example", "x", "ACME-0000-0000-0001")
                .build()
                .as_bytes(),
        )
        .unwrap();
    // cur/ is a file: every move fails.
    std::fs::remove_dir(e.path("inbox/cur")).unwrap();
    std::fs::write(e.path("inbox/cur"), b"not a folder").unwrap();
    let r = e.app.drain_maildir(&inbox).await.unwrap();
    assert_eq!(r.created, 1);
    // The next drain sees a duplicate, not a second ticket, and returns.
    let r = e.app.drain_maildir(&inbox).await.unwrap();
    assert_eq!((r.created, r.duplicates), (0, 1));
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 1);
}
