//! Crash test: the real daemon binary is killed with SIGKILL at random moments while it
//! processes 2,500 mails and delivers their acknowledgements to a real SMTP server
//! (smtp-sink), then restarted. Afterwards every mail produced exactly one ticket or one
//! article, no mail is left unprocessed, and no acknowledgement was sent twice except at most
//! one per kill and SMTP connection (the window between the server's 250 and our commit of
//! `sent`). Once through a Maildir, once through IMAP (Dovecot).
//!
//! Runs on SQLite, and on PostgreSQL when `TICKETGATE_TEST_DATABASE_URL` is set. The seed
//! of the kill schedule is printed; `CRASH_SEED=N` repeats a schedule.

use crate::common;
use crate::support::dovecot;
use crate::support::smtp_sink;

use dovecot::{Dovecot, PASSWORD, USER};
use smtp_sink::SmtpSink;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ticketgate::ingest::Maildir;

const NEW: usize = 2000;
const FOLLOWUPS: usize = 500;
const KILLS: usize = 6;
/// SMTP connections. A kill can cut, on each connection, one message the server accepted
/// before we recorded it: that message is sent again after the restart.
const CONCURRENCY: usize = 2;
/// The IMAP mailbox's lease: how long a restarted instance waits for the killed one's.
const LEASE: Duration = Duration::from_secs(2);

pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn seeded() -> Rng {
        let seed = match std::env::var("CRASH_SEED") {
            Ok(s) => s.parse().expect("CRASH_SEED is a number"),
            Err(_) => {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).unwrap();
                u64::from_le_bytes(b) | 1
            }
        };
        eprintln!("crash test seed: CRASH_SEED={seed}");
        Rng(seed)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn original_id(i: usize) -> String {
    format!("crash-{i}@client.example")
}

/// Mail `i`: a new request for `i < NEW`, else a reply to request `i - NEW` from the same
/// person (threaded by In-Reply-To).
fn mail(i: usize) -> String {
    if i < NEW {
        common::mail(
            &format!("user{i}@acme.example"),
            &format!("Request {i}: the export fails"),
            "Support key: ACME-0000-0000-0001\nSeverity: 3\n\nThe nightly export stops with an error.",
        )
        .id(&original_id(i))
        .build()
    } else {
        let j = i - NEW;
        common::mail(
            &format!("user{j}@acme.example"),
            &format!("Re: Request {j}: the export fails"),
            "Here is the log you asked for.",
        )
        .id(&format!("crash-reply-{j}@client.example"))
        .header(&format!("In-Reply-To: <{}>", original_id(j)))
        .build()
    }
}

/// Where the mails wait: a local Maildir, or a Dovecot INBOX read over IMAP.
enum Source {
    Maildir(Maildir),
    Imap(Dovecot),
}

impl Source {
    /// Delivers `mails`, numbered from `first`.
    fn deliver(&self, first: usize, mails: &[Vec<u8>]) {
        match self {
            Source::Maildir(md) => {
                for (i, m) in mails.iter().enumerate() {
                    // Names sort in arrival order: a reply is read after its request.
                    md.deliver(&format!("{:06}.crash", first + i), m).unwrap();
                }
            }
            Source::Imap(d) => d.deliver_many(USER, "INBOX", mails),
        }
    }

    /// Mails not yet taken out of the inbox.
    fn waiting(&self) -> usize {
        match self {
            Source::Maildir(md) => md.pending(usize::MAX).unwrap().len(),
            Source::Imap(d) => d.list("INBOX").len(),
        }
    }

    fn config(&self) -> String {
        match self {
            Source::Maildir(_) => String::new(),
            Source::Imap(d) => format!(
                "{}password_file = \"{}\"\nlease = \"{}s\"\n",
                d.mailbox_config("support", USER, ""),
                d.password_file(PASSWORD).display(),
                LEASE.as_secs()
            ),
        }
    }
}

fn config(dir: &Path, db: &str, smtp_port: u16, source: &Source) -> std::path::PathBuf {
    std::fs::write(dir.join("customers.toml"), common::REGISTRY).unwrap();
    let text = format!(
        r#"
[database]
url = "{db}"
[inbound]
maildir = "inbox"
poll_interval = "200ms"
batch_size = 64
{imap}
[registry]
path = "customers.toml"
{outbound}"#,
        imap = source.config(),
        outbound = outbound_to_sink(CONCURRENCY, smtp_port),
    );
    let path = dir.join("ticketgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `[outbound]` and `[log]` sections of the crash tests: SMTP to a local sink on
/// `smtp_port` with short retries and claims, so a killed daemon's mail is retried quickly.
pub(crate) fn outbound_to_sink(concurrency: usize, smtp_port: u16) -> String {
    format!(
        r#"[outbound]
transport = "smtp"
concurrency = {concurrency}
max_attempts = 50
retry_base = "200ms"
retry_max = "1s"
claim_timeout = "10s"
[outbound.smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
timeout = "1s"
[log]
level = "info"
"#
    )
}

pub(crate) fn start_daemon(dir: &Path, cfg: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .current_dir(dir)
        .arg("--config")
        .arg(cfg)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("daemon.log"))
                .unwrap(),
        )
        .spawn()
        .expect("starting the daemon")
}

#[test]
fn maildir_killed_at_random_moments_every_mail_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Maildir::open(&dir.path().join("inbox")).unwrap();
    crash_run(dir, Source::Maildir(inbox));
}

#[test]
fn imap_killed_at_random_moments_every_mail_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    crash_run(dir, Source::Imap(Dovecot::start()));
}

/// Kills the daemon `KILLS` times while it works through the mails, lets a last run finish,
/// then checks every mail counted once and acknowledgements repeated only by the kills.
fn crash_run(dir: tempfile::TempDir, source: Source) {
    let sink = SmtpSink::start(&[]);
    let (db, _db_guard) = common::database_url(dir.path());
    let cfg = config(dir.path(), &db, sink.port, &source);
    // Requests first, replies after: a reply must not be read before its request.
    let mails: Vec<Vec<u8>> = (0..NEW + FOLLOWUPS).map(|i| mail(i).into_bytes()).collect();
    source.deliver(0, &mails[..NEW]);
    assert_eq!(source.waiting(), NEW);
    source.deliver(NEW, &mails[NEW..]);
    assert_eq!(source.waiting(), NEW + FOLLOWUPS);

    let mut rng = Rng::seeded();
    let mut mid_work = 0;
    for k in 0..KILLS {
        let mut child = start_daemon(dir.path(), &cfg);
        // Kill while it works: SQLite drains this in well under a second (debug build);
        // PostgreSQL commits a batch in a second or two.
        let wait = if common::on_postgres() {
            Duration::from_millis(150 + rng.below(2500))
        } else {
            Duration::from_millis(40 + rng.below(360))
        };
        std::thread::sleep(wait);
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "daemon exited by itself ({status}) before kill {k}: {}",
                std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let waiting = source.waiting();
        let unsent = match ticketgate::store::open(&db) {
            Ok(mut s) => s
                .outbox(1_000_000)
                .unwrap()
                .iter()
                .filter(|o| o.state != "sent")
                .count(),
            Err(_) => 0, // killed before it created the database
        };
        if waiting + unsent > 0 {
            mid_work += 1;
        }
        eprintln!("kill {k} after {wait:?}: {waiting} mails waiting, {unsent} not sent");
        if let Source::Imap(_) = source {
            // The killed instance's lease on the mailbox lapses before the next one starts:
            // otherwise the next run only waits for it and the kill lands on an idle daemon.
            std::thread::sleep(LEASE + Duration::from_millis(200));
        }
    }
    // Kills after the work was done would prove nothing.
    assert!(
        mid_work >= KILLS / 2,
        "only {mid_work} of {KILLS} kills hit the daemon while it worked"
    );

    // Last run: let it finish everything.
    let mut child = start_daemon(dir.path(), &cfg);
    let mut store = ticketgate::store::open(&db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let waiting = source.waiting();
        let undelivered = store
            .outbox(1_000_000)
            .unwrap()
            .iter()
            .filter(|o| matches!(o.state.as_str(), "pending" | "retry" | "sending"))
            .count();
        if waiting == 0 && undelivered == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done after 4 minutes: {waiting} mails waiting, {undelivered} undelivered; log: {}",
            std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    if std::env::var_os("CRASH_KEEP").is_some() {
        eprintln!("kept: {}", dir.keep().display());
        return;
    }

    // Every mail made exactly one ticket or one article.
    let tickets = store.tickets(1_000_000).unwrap();
    let quarantined = store.quarantine(1_000_000).unwrap();
    assert!(
        quarantined.is_empty(),
        "{} mails quarantined, e.g. {:?}",
        quarantined.len(),
        quarantined.first()
    );
    assert_eq!(tickets.len(), NEW, "one ticket per new request");
    let mut articles_by_subject: HashMap<String, usize> = HashMap::new();
    for t in &tickets {
        let (_, articles) = store.ticket_with_articles(t.id).unwrap().unwrap();
        let customer = articles.iter().filter(|a| a.kind == "customer").count();
        articles_by_subject.insert(t.subject.clone(), customer);
    }
    for i in 0..NEW {
        let subject = format!("Request {i}: the export fails");
        let expected = if i < FOLLOWUPS { 2 } else { 1 };
        assert_eq!(
            articles_by_subject.get(&subject),
            Some(&expected),
            "customer articles of request {i}"
        );
    }
    let outbox = store.outbox(1_000_000).unwrap();
    let failed: Vec<_> = outbox
        .iter()
        .filter(|o| o.state != "sent" && o.state != "suppressed")
        .collect();
    assert!(failed.is_empty(), "undelivered: {failed:?}");
    let acks_queued = outbox
        .iter()
        .filter(|o| o.kind == "acknowledgement")
        .count();
    assert_eq!(acks_queued, NEW, "one acknowledgement queued per request");

    // What the SMTP server accepted: each request's acknowledgement at least once, and
    // repeats only from the kill window.
    let mut acks: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        let Some(reply_to) = m
            .lines()
            .find_map(|l| l.strip_prefix("In-Reply-To: "))
            .map(|v| v.trim().trim_matches(['<', '>']).to_string())
        else {
            continue;
        };
        if reply_to.starts_with("crash-") && !reply_to.starts_with("crash-reply-") {
            *acks.entry(reply_to).or_default() += 1;
        }
    }
    for i in 0..NEW {
        assert!(
            acks.get(&original_id(i)).copied().unwrap_or(0) >= 1,
            "request {i} was acknowledged"
        );
    }
    let repeats: usize = acks.values().map(|n| n - 1).sum();
    for (id, n) in &acks {
        if *n > 1 {
            let row = outbox.iter().find(|o| {
                o.kind == "acknowledgement"
                    && o.subject.contains(&format!(
                        "Request {}:",
                        id.trim_start_matches("crash-")
                            .trim_end_matches("@client.example")
                    ))
            });
            eprintln!("repeated {id} x{n}: {row:?}");
        }
    }
    eprintln!(
        "accepted by smtp-sink: {} acknowledgements, {repeats} repeated, {KILLS} kills",
        acks.values().sum::<usize>()
    );
    assert!(
        repeats <= KILLS * CONCURRENCY,
        "{repeats} acknowledgements repeated for {KILLS} kills with {CONCURRENCY} connections"
    );
}
