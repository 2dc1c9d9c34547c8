//! Crash test of an announcement's fan-out (issue 10): one emergency maintenance to 1,500
//! confirmed subscribers, written to the outbox in one transaction, then delivered by the
//! real daemon binary to a real SMTP server (smtp-sink) while it is killed with SIGKILL at
//! random moments and restarted. Afterwards every subscriber received the notice, and no one
//! received it twice except at most one message per kill and SMTP connection (the window
//! between the server's 250 and our commit of `sent`). Before that, the command that makes
//! the announcement is itself killed at random moments: its transaction leaves either
//! nothing or every row.
//!
//! Runs on SQLite, and on PostgreSQL when `TICKETGATE_TEST_DATABASE_URL` is set. The seed
//! of the kill schedule is printed; `CRASH_SEED=N` repeats a schedule.

use crate::common;
use crate::crash::{Rng, outbound_to_sink, start_daemon};
use crate::support::smtp_sink::SmtpSink;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ticketgate::store::{NewSubscriber, SubscriberState};

const SUBSCRIBERS: usize = 1500;
const KILLS: usize = 5;
/// SMTP connections: a kill can repeat one message per connection.
const CONCURRENCY: usize = 2;

const REGISTRY: &str = r#"
[plans.standard]
language = "en"
platform = "eu"

[[customers]]
id = "acme"
name = "ACME"
plan = "standard"
keys = [{ key = "ACME-0000-0000-0001" }]

[lists.eu-maintenance]
type = "maintenance"
platform = "eu"
address = "maintenance-eu@lists.example.test"
"#;

fn config(dir: &Path, db: &str, smtp_port: u16) -> std::path::PathBuf {
    std::fs::write(dir.join("customers.toml"), REGISTRY).unwrap();
    let text = format!(
        r#"
[database]
url = "{db}"
[inbound]
maildir = "inbox"
poll_interval = "200ms"
[registry]
path = "customers.toml"
[http]
public_url = "https://status.example.test"
{outbound}"#,
        outbound = outbound_to_sink(CONCURRENCY, smtp_port),
    );
    let path = dir.join("ticketgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn subscriber(i: usize) -> String {
    format!("sub{i:05}@cust{:02}.example", i % 40)
}

fn notices(db: &str) -> usize {
    ticketgate::store::open(db)
        .unwrap()
        .outbox(1_000_000)
        .unwrap()
        .iter()
        .filter(|o| o.kind == "maintenance_notice")
        .count()
}

#[test]
fn an_announcement_killed_while_written_and_while_delivered_reaches_everyone_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&[]);
    let (db, _db_guard) = common::database_url(dir.path());
    let cfg = config(dir.path(), &db, sink.port);
    {
        let mut store = ticketgate::store::open(&db).unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T14:00:00Z")
            .unwrap()
            .to_utc();
        let mut tx = store.write().unwrap();
        for i in 0..SUBSCRIBERS {
            tx.announce()
                .upsert_subscriber(&NewSubscriber {
                    list: "eu-maintenance",
                    address: &subscriber(i),
                    customer: "acme",
                    state: SubscriberState::Confirmed,
                    shared: false,
                    added_by: "operator",
                    now,
                    expires_at: None,
                })
                .unwrap();
        }
        tx.commit().unwrap();
    }

    let mut rng = Rng::seeded();
    // The announcement: the command is killed while it writes, until one run completes.
    // Each killed run leaves nothing; the completed one leaves every row.
    let mut killed_while_writing = 0;
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .current_dir(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(["maintenance", "schedule", "--platform", "eu", "--emergency"])
            .args([
                "--start",
                "2030-01-01T22:00:00Z",
                "--end",
                "2030-01-01T23:00:00Z",
            ])
            .args(["--impact", "Webmail unavailable"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Short waits first (the fan-out of 1,500 rows takes a few hundred ms in a debug
        // build), longer ones after, so that one run completes.
        let short = if common::on_postgres() { 300 } else { 150 };
        let wait = Duration::from_millis(if killed_while_writing < 4 {
            5 + rng.below(short)
        } else {
            50 + rng.below(5000)
        });
        std::thread::sleep(wait);
        let done = child.try_wait().unwrap();
        if done.is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let rows = notices(&db);
        assert!(
            rows == 0 || rows == SUBSCRIBERS,
            "a killed fan-out left {rows} of {SUBSCRIBERS} rows"
        );
        if rows == SUBSCRIBERS {
            eprintln!("announcement written after {killed_while_writing} kills");
            break;
        }
        assert!(
            done.is_none(),
            "the command exited without writing: {done:?}"
        );
        killed_while_writing += 1;
        assert!(
            killed_while_writing < 30,
            "the announcement was never written"
        );
    }

    // Delivery, killed at random moments.
    let mut mid_work = 0;
    for k in 0..KILLS {
        let mut child = start_daemon(dir.path(), &cfg);
        // SQLite delivers the 1,500 in about a second (debug build), PostgreSQL in a few.
        let wait = if common::on_postgres() {
            Duration::from_millis(300 + rng.below(1500))
        } else {
            Duration::from_millis(100 + rng.below(500))
        };
        std::thread::sleep(wait);
        assert!(
            child.try_wait().unwrap().is_none(),
            "daemon exited by itself"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let accepted = sink.count();
        if accepted < SUBSCRIBERS {
            mid_work += 1;
        }
        eprintln!("kill {k} after {wait:?}: {accepted} accepted by smtp-sink");
    }
    assert!(
        mid_work >= KILLS / 2,
        "only {mid_work} of {KILLS} kills hit the daemon while it delivered"
    );

    let mut child = start_daemon(dir.path(), &cfg);
    let mut store = ticketgate::store::open(&db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let undelivered = store
            .outbox(1_000_000)
            .unwrap()
            .iter()
            .filter(|o| o.state != "sent")
            .count();
        if undelivered == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{undelivered} not delivered after 4 minutes; log: {}",
            std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // What smtp-sink accepted, per recipient (smtp-sink's own headers name it).
    let mut copies: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        let to = m
            .lines()
            .find_map(|l| l.strip_prefix("To: "))
            .map(|v| v.trim().trim_matches(['<', '>']).to_string())
            .expect("a To header");
        *copies.entry(to).or_default() += 1;
    }
    for i in 0..SUBSCRIBERS {
        assert!(
            copies.get(&subscriber(i)).copied().unwrap_or(0) >= 1,
            "{} got the notice",
            subscriber(i)
        );
    }
    assert_eq!(copies.len(), SUBSCRIBERS, "nobody else got it");
    let repeats: usize = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "accepted by smtp-sink: {} notices, {repeats} repeated, {KILLS} kills, {killed_while_writing} kills while writing",
        copies.values().sum::<usize>()
    );
    assert!(
        repeats <= KILLS * CONCURRENCY,
        "{repeats} notices repeated for {KILLS} kills with {CONCURRENCY} connections"
    );
}
