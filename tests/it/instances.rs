//! Several instances on one database and one mailbox: two real daemon processes read the
//! same Dovecot INBOX and deliver the same outbox to smtp-sink. Every mail is processed once
//! and every acknowledgement sent once; when the instance reading the mailbox dies, the
//! other takes the mailbox over once the lease lapses.
//!
//! On PostgreSQL when `TICKETGATE_TEST_DATABASE_URL` is set (the production setting for
//! several instances), otherwise on one SQLite file shared by both processes.

use crate::common;
use crate::support::dovecot;
use crate::support::smtp_sink;

use dovecot::{Dovecot, PASSWORD, USER};
use smtp_sink::SmtpSink;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn request(i: usize) -> Vec<u8> {
    common::mail(
        &format!("person{i}@acme.example"),
        &format!("Instance test {i}"),
        "Support key: ACME-0000-0000-0001\n\nThe report page is blank.",
    )
    .id(&format!("inst-{i}@client.example"))
    .build()
    .into_bytes()
}

fn start(dir: &Path, cfg: &Path, name: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .current_dir(dir)
        .arg("--config")
        .arg(cfg)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .expect("starting a daemon")
}

/// Waits until the INBOX is empty and nothing is left to deliver.
fn wait_done(dovecot: &Dovecot, store: &mut dyn ticketgate::store::Store, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting = dovecot.list("INBOX").len();
        let undelivered = store
            .outbox(100_000)
            .unwrap()
            .iter()
            .filter(|o| matches!(o.state.as_str(), "pending" | "retry" | "sending"))
            .count();
        if waiting == 0 && undelivered == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not done after 2 minutes: {waiting} waiting, {undelivered} undelivered; logs: {} | {}",
            std::fs::read_to_string(dir.join("a.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("b.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Acknowledgements accepted by the sink, by the request's Message-ID.
fn acks(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut acks = HashMap::new();
    for m in sink.messages() {
        if let Some(id) = m
            .lines()
            .find_map(|l| l.strip_prefix("In-Reply-To: "))
            .map(|v| v.trim().trim_matches(['<', '>']).to_string())
        {
            *acks.entry(id).or_insert(0) += 1;
        }
    }
    acks
}

#[test]
fn two_instances_on_one_mailbox_process_every_mail_once_and_take_over_when_one_dies() {
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (db, _db_guard) = common::database_url(dir.path());
    std::fs::write(dir.path().join("customers.toml"), common::REGISTRY).unwrap();
    let text = format!(
        "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"inbox\"\npoll_interval = \"200ms\"\n\
         batch_size = 32\n\n{mailbox}password_file = \"{pw}\"\nlease = \"3s\"\n\n\
         [registry]\npath = \"customers.toml\"\n\
         [outbound]\ntransport = \"smtp\"\nconcurrency = 4\nretry_base = \"200ms\"\n\
         [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         [log]\nlevel = \"info\"\n",
        mailbox = dovecot.mailbox_config("support", USER, ""),
        pw = dovecot.password_file(PASSWORD).display(),
        port = sink.port,
    );
    let cfg = dir.path().join("ticketgate.toml");
    std::fs::write(&cfg, text).unwrap();
    // Migrates the database before both start.
    let mut store = ticketgate::store::open(&db).unwrap();

    let mut a = start(dir.path(), &cfg, "a");
    let mut b = start(dir.path(), &cfg, "b");
    // Mail arrives in waves while both run.
    let mut sent = 0;
    for wave in 0..4 {
        let mails: Vec<Vec<u8>> = (sent..sent + 75).map(request).collect();
        dovecot.deliver_many(USER, "INBOX", &mails);
        sent += mails.len();
        std::thread::sleep(Duration::from_millis(300 + wave * 100));
    }
    wait_done(&dovecot, store.as_mut(), dir.path());
    assert_eq!(store.tickets(100_000).unwrap().len(), sent);
    let got = acks(&sink);
    for i in 0..sent {
        assert_eq!(
            got.get(&format!("inst-{i}@client.example")),
            Some(&1),
            "acknowledgement of request {i} sent exactly once"
        );
    }

    // The instance holding the mailbox's lease dies; the other takes over.
    let logs = |n: &str| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap();
    let a_reads = logs("a").contains("lease taken");
    let b_reads = logs("b").contains("lease taken");
    assert!(a_reads != b_reads, "exactly one instance took the mailbox");
    let (holder, mut other, other_name) = if a_reads {
        (&mut a, b, "b")
    } else {
        (&mut b, a, "a")
    };
    holder.kill().unwrap();
    holder.wait().unwrap();
    let before_kill = logs(other_name).len();
    let more: Vec<Vec<u8>> = (sent..sent + 50).map(request).collect();
    dovecot.deliver_many(USER, "INBOX", &more);
    sent += more.len();
    wait_done(&dovecot, store.as_mut(), dir.path());
    assert!(
        logs(other_name)[before_kill..].contains("lease taken"),
        "the surviving instance took the mailbox over"
    );
    assert_eq!(store.tickets(100_000).unwrap().len(), sent);
    let got = acks(&sink);
    for i in 0..sent {
        assert_eq!(
            got.get(&format!("inst-{i}@client.example")),
            Some(&1),
            "acknowledgement of request {i} sent exactly once"
        );
    }
    other.kill().unwrap();
    other.wait().unwrap();
}

/// Automatic mail (no reply owed): quarantined, so a batch is all commit and no delivery.
fn automatic(tag: &str, i: usize) -> Vec<u8> {
    common::mail(
        &format!("robot{i}@acme.example"),
        &format!("Nightly report {i}"),
        "All jobs finished.",
    )
    .header("Auto-Submitted: auto-generated")
    .id(&format!("{tag}-{i}@robot.example"))
    .build()
    .into_bytes()
}

/// Lease renewal never waits behind a batch commit: instance B reads the mailbox (lease
/// 2 s, renewed every ⅔ s) while both instances commit large Maildir batches into the same
/// database, so B's own writes keep waiting for A's. A is configured with the same mailbox
/// and takes the lease the moment it lapses; it never gets it.
#[test]
fn a_mailbox_lease_is_kept_while_both_instances_commit_large_batches() {
    let dovecot = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let (db, _db_guard) = common::database_url(dir.path());
    std::fs::write(dir.path().join("customers.toml"), common::REGISTRY).unwrap();
    let config = |name: &str| {
        let text = format!(
            "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"inbox-{name}\"\npoll_interval = \"100ms\"\n\
             batch_size = 1024\n\n{mailbox}password_file = \"{pw}\"\nlease = \"2s\"\n\n\
             [registry]\npath = \"customers.toml\"\n\
             [outbound]\ntransport = \"file\"\ndir = \"outbox\"\n\
             [log]\nlevel = \"info\"\n",
            mailbox = dovecot.mailbox_config("support", USER, ""),
            pw = dovecot.password_file(PASSWORD).display(),
        );
        let cfg = dir.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, text).unwrap();
        cfg
    };
    let (cfg_a, cfg_b) = (config("a"), config("b"));
    let mut store = ticketgate::store::open(&db).unwrap();
    let logs =
        |n: &str| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default();
    let inbox = |n: &str| {
        ticketgate::ingest::Maildir::open(&dir.path().join(format!("inbox-{n}"))).unwrap()
    };
    let (inbox_a, inbox_b) = (inbox("a"), inbox("b"));

    let mut b = start(dir.path(), &cfg_b, "b");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !logs("b").contains("lease taken") {
        assert!(
            Instant::now() < deadline,
            "B never took the lease: {}",
            logs("b")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut a = start(dir.path(), &cfg_a, "a");
    let (waves, per_wave) = (6, 2000);
    let started = Instant::now();
    for wave in 0..waves {
        for i in wave * per_wave..(wave + 1) * per_wave {
            inbox_a
                .deliver(&format!("{i}.a"), &automatic("a", i))
                .unwrap();
            inbox_b
                .deliver(&format!("{i}.b"), &automatic("b", i))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    let total = 2 * waves * per_wave;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stored = store.quarantine(100_000).unwrap().len();
        if stored == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stored} of {total} stored after 5 minutes; logs: {} | {}",
            logs("a"),
            logs("b")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let busy = started.elapsed();
    for p in [&mut a, &mut b] {
        p.kill().unwrap();
        p.wait().unwrap();
    }
    let (log_a, log_b) = (logs("a"), logs("b"));
    let batches = |l: &str| l.matches("inbox pass done").count();
    assert!(
        batches(&log_a) > 0 && batches(&log_b) > 0,
        "both instances committed"
    );
    assert!(
        !log_a.contains("lease taken"),
        "A took the lease from B after {busy:?} of large commits: {log_a}"
    );
    assert_eq!(log_b.matches("lease taken").count(), 1, "{log_b}");
    assert!(!log_b.contains("lost the lease"), "{log_b}");
    eprintln!("{total} mails committed in {busy:?} by two instances; the lease stayed with B");
}
