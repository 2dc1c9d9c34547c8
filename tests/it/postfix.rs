//! Delivery through a real Postfix (a private instance, `support/postfix.rs`) over LMTP to
//! the real daemon (`ticketgate run` with `[inbound.lmtp]`): end to end (ticket committed,
//! acknowledgement in the outbox), two recipients in one LMTP transaction, and a store
//! outage during which the mail stays in Postfix's queue and arrives after recovery.

use crate::common::{self, mail};
use crate::lmtp::Outage;
use crate::support::postfix::Postfix;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ticketgate::app::App;
use ticketgate::clock::SystemClock;
use ticketgate::config::Config;

/// The real daemon with an LMTP listener on a free port; its log in `daemon.log`.
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, read from the daemon's log line.
    pub lmtp: String,
    pub db: Option<common::TestDatabase>,
}

impl Daemon {
    pub fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let (url, db) = common::database_url(dir.path());
        std::fs::write(dir.path().join("customers.toml"), common::REGISTRY).unwrap();
        std::fs::write(
            dir.path().join("ticketgate.toml"),
            format!(
                "[database]\nurl = \"{url}\"\n[inbound]\nmaildir = \"inbox\"\n\
                 [inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n\
                 [outbound]\ndir = \"outbox\"\n[registry]\npath = \"customers.toml\"\n\
                 [loops]\nown_addresses = [\"eu-support@support.example.test\"]\n\
                 [log]\nlevel = \"info\"\n{extra}"
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .current_dir(dir.path())
            .arg("--config")
            .arg(dir.path().join("ticketgate.toml"))
            .arg("run")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
            .spawn()
            .expect("starting the daemon");
        let mut d = Daemon {
            child,
            dir,
            lmtp: String::new(),
            db,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        d.lmtp = loop {
            if let Some(a) = lmtp_address(&d.log()) {
                break a;
            }
            if let Ok(Some(s)) = d.child.try_wait() {
                panic!("the daemon exited ({s}): {}", d.log());
            }
            assert!(Instant::now() < deadline, "no LMTP address: {}", d.log());
            std::thread::sleep(Duration::from_millis(50));
        };
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// An app on the daemon's database, for looking at what it committed.
    pub fn app(&self) -> App {
        let cfg = Config::from_file(&self.dir.path().join("ticketgate.toml")).unwrap();
        App::open(cfg, std::sync::Arc::new(SystemClock)).unwrap()
    }

    pub fn sqlite(&self) -> std::path::PathBuf {
        self.dir.path().join("tg.db")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the daemon's `LMTP listener ready lmtp.address=HOST:PORT` line.
pub fn lmtp_address(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("LMTP listener ready"))?;
    let (_, rest) = line.split_once("lmtp.address=")?;
    Some(
        rest.split_whitespace()
            .next()?
            .trim_matches('"')
            .to_string(),
    )
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn acknowledgements(app: &App) -> usize {
    app.store()
        .unwrap()
        .outbox(10_000)
        .unwrap()
        .into_iter()
        .filter(|o| o.kind == "acknowledgement")
        .count()
}

fn tickets(app: &App) -> Vec<ticketgate::store::TicketRow> {
    app.store().unwrap().tickets(100).unwrap()
}

/// One mail to two of our addresses, submitted to Postfix: Postfix hands it over in one
/// LMTP transaction (both replies name the ticket the mail created, so it was committed
/// once, before either reply), the ticket and its acknowledgement are committed.
#[test]
fn postfix_delivers_over_lmtp_two_recipients_in_one_transaction() {
    let daemon = Daemon::start("");
    let postfix = Postfix::start(&format!("inet:{}", daemon.lmtp), "");
    let m = mail(
        "Jane <jane@acme.example>",
        "Through Postfix",
        "Support-Key: ACME-0000-0000-0001\nThe export fails.",
    )
    .build();
    postfix.submit(&[(
        vec![
            "support@support.example.test",
            "eu-support@support.example.test",
        ],
        m,
    )]);
    postfix.wait_log("status=sent", 2, Duration::from_secs(60));
    let log = postfix.log();
    for to in [
        "support@support.example.test",
        "eu-support@support.example.test",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("to=<{to}>")) && l.contains("status=sent"))
            .unwrap_or_else(|| panic!("no delivery to {to}: {log}"));
        assert!(
            line.contains(&format!("250 2.0.0 <{to}> OK: created TKT-000001")),
            "{line}"
        );
    }
    assert_eq!(postfix.queued(), 0);
    let app = daemon.app();
    let t = tickets(&app);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].subject, "Through Postfix");
    assert_eq!(acknowledgements(&app), 1);
}

/// The store goes down: the daemon answers 451, the mail stays in Postfix's queue and
/// nothing is committed. After recovery `postqueue -f` delivers it: the ticket and its
/// acknowledgement are committed and the queue is empty.
#[test]
fn postfix_keeps_the_mail_during_a_store_outage_and_delivers_it_after() {
    let daemon = Daemon::start("");
    let postfix = Postfix::start(&format!("inet:{}", daemon.lmtp), "");
    let outage = Outage::begin_at(daemon.db.as_ref(), &daemon.sqlite());
    postfix.submit(&[(
        vec!["support@support.example.test"],
        mail(
            "jane@acme.example",
            "During the outage",
            "Support-Key: ACME-0000-0000-0001\nStill failing.",
        )
        .build(),
    )]);
    postfix.wait_log("status=deferred", 1, Duration::from_secs(60));
    let log = postfix.log();
    assert!(log.contains("451 4.3.0"), "{log}");
    assert_eq!(postfix.queued(), 1, "the mail stays in Postfix's queue");
    drop(outage);
    let app = daemon.app();
    assert!(
        tickets(&app).is_empty(),
        "nothing committed during the outage"
    );
    postfix.flush();
    postfix.wait_empty(Duration::from_secs(60));
    wait_until("the ticket", Duration::from_secs(10), || {
        tickets(&app).len() == 1
    });
    assert_eq!(tickets(&app)[0].subject, "During the outage");
    assert_eq!(acknowledgements(&app), 1);
    assert!(
        daemon.log().contains("answered 451"),
        "the daemon logged the deferral: {}",
        daemon.log()
    );
}
