//! IMAP benchmarks against a real Dovecot started on loopback (needs `dovecot-imapd`, and
//! `postfix` for smtp-sink in the latency part):
//! `cargo bench --bench imap [-- N] [latency=M] [throughput] [latency]`.
//!
//! - Throughput: N generated mails (default 10,000; the workload of `benches/pipeline.rs`)
//!   are put in the INBOX. First what the server itself needs for the same mailbox, from a
//!   minimal async-imap client: one `UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])`, then one
//!   `UID MOVE 1:*` of all of it, each timed. The mails are put back, and ticketgate reads
//!   the mailbox (the mailbox task as `run --once` starts it, after-action `move`, SQLite
//!   with durable commits) until every mail is committed with its acknowledgement in the
//!   outbox and moved out of the INBOX. Printed: `imap_vs_raw_fetch_move_ratio` (target
//!   0.7: ticketgate's work has to overlap the server's) and `imap_vs_raw_fetch_ratio`.
//! - Latency: the daemon runs (IDLE, SMTP delivery to smtp-sink); M new requests (default
//!   100) are APPENDed one at a time, 250 ms apart; for each, the time from the start of the
//!   APPEND to the acknowledgement's file written by smtp-sink. p50, p99, max. Target: p99
//!   under 1 s (Dovecot itself delays IDLE notifications by about 0.5 s).
//!
//! Figures are printed one per line, `name value`; targets are printed, not asserted.

#[path = "support/workload.rs"]
mod workload;

#[path = "../tests/it/support/dovecot.rs"]
mod dovecot;

#[path = "../tests/it/support/smtp_sink.rs"]
mod smtp_sink;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use dovecot::{Dovecot, PASSWORD, USER};
use futures_util::TryStreamExt as _;
use smtp_sink::SmtpSink;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticketgate::app::App;
use ticketgate::clock::SystemClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::ingest::imap::{self, Mailbox};
use workload::Workload;

const DEFAULT_MAILS: usize = 10_000;
const DEFAULT_LATENCY_MAILS: usize = 100;
const LATENCY_SPACING: Duration = Duration::from_millis(250);
const TARGET_RATIO: f64 = 0.7;
const TARGET_P99_MS: f64 = 1_000.0;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAILS);
    let m = args
        .iter()
        .find_map(|a| a.strip_prefix("latency=")?.parse::<usize>().ok())
        .unwrap_or(DEFAULT_LATENCY_MAILS);
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["throughput", "latency"].contains(a))
        .collect();
    let run = |p: &str| named.is_empty() || named.contains(&p);
    // As the daemon runs: a multi-thread runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    if run("throughput") {
        throughput(&rt, n);
    }
    if run("latency") {
        latency(&rt, m);
    }
}

/// `after=MODE` and `batch=N` from the command line, as `[[inbound.imap]]` / `[inbound]`
/// keys: the after-action's cost and the chunk size can be measured on their own.
fn extra_mailbox_keys() -> String {
    std::env::args()
        .filter_map(|a| {
            a.strip_prefix("after=")
                .map(|m| format!("after = \"{m}\"\n"))
        })
        .collect()
}

fn batch_size() -> String {
    std::env::args()
        .filter_map(|a| {
            a.strip_prefix("batch=")
                .map(|n| format!("batch_size = {n}\n"))
        })
        .collect()
}

fn config(dir: &Path, work: &Workload, dovecot: &Dovecot, outbound: &str) -> Config {
    std::fs::write(dir.join("customers.toml"), work.registry_toml()).expect("registry");
    let toml = format!(
        "[database]\nurl = \"sqlite:{db}\"\n\n\
         [inbound]\nmaildir = \"{inbox}\"\n{batch}\n\
         {mailbox}password_file = \"{pw}\"\n\n\
         {outbound}\n\
         [registry]\npath = \"{registry}\"\n\n[log]\nlevel = \"warn\"\n",
        db = dir.join("bench.db").display(),
        inbox = dir.join("inbox").display(),
        mailbox = dovecot.mailbox_config("support", USER, &extra_mailbox_keys()),
        pw = dovecot.password_file(PASSWORD).display(),
        registry = dir.join("customers.toml").display(),
        batch = batch_size(),
    );
    Config::from_toml(&toml, dir, ConfigSource::EmbeddedDefault).expect("bench config")
}

fn throughput(rt: &tokio::runtime::Runtime, n: usize) {
    let work = Workload::generate(n, 0x696d_6170_6265_6e63);
    let bytes: Vec<Vec<u8>> = work.mails.iter().map(|m| m.bytes.clone()).collect();
    let total: usize = bytes.iter().map(Vec::len).sum();
    println!("mails {n}");
    println!("mean_mail_bytes {}", total / n.max(1));
    let dovecot = Dovecot::start();
    dovecot.deliver_many(USER, "INBOX", &bytes);

    // Raw: what async-imap and Dovecot do alone on the same mailbox. The first pass also
    // makes Dovecot index the new files, which the timed pass then does not pay for.
    let _ = rt.block_on(raw_fetch(dovecot.imap_port, false));
    let (fetched, raw_bytes, raw_time, move_time) = rt.block_on(raw_fetch(dovecot.imap_port, true));
    assert_eq!(fetched, n, "raw fetch returned every mail");
    assert!(raw_bytes >= total, "raw fetch returned the bodies");
    assert!(
        dovecot.list("INBOX").is_empty(),
        "raw move emptied the INBOX"
    );
    // The same mails again for ticketgate, indexed by an untimed pass as before.
    dovecot.deliver_many(USER, "INBOX", &bytes);
    let _ = rt.block_on(raw_fetch(dovecot.imap_port, false));
    let raw_rate = n as f64 / raw_time.as_secs_f64();
    println!("raw_uid_fetch_seconds {:.3}", raw_time.as_secs_f64());
    println!("raw_uid_fetch_rate_per_s {raw_rate:.0}");
    println!("raw_uid_move_seconds {:.3}", move_time.as_secs_f64());
    let raw_fm_rate = n as f64 / (raw_time + move_time).as_secs_f64();
    println!("raw_fetch_move_rate_per_s {raw_fm_rate:.0}");

    let dir = tempfile::tempdir().expect("temp dir");
    let outbound = format!(
        "[outbound]\ntransport = \"file\"\ndir = \"{}\"\n",
        dir.path().join("outbox").display()
    );
    let cfg = config(dir.path(), &work, &dovecot, &outbound);
    let app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    // The mailbox task alone, as `run` starts it: reading, committing (with the outbox rows)
    // and moving. Delivering the outbox is the delivery benchmark's business.
    let mb_cfg = app.cfg.inbound.imap[0].clone();
    let start = Instant::now();
    let outcome = rt.block_on(
        Mailbox {
            cfg: mb_cfg.clone(),
            index: 0,
            db: app.db.clone(),
            pipeline: app.pipeline.clone(),
            clock: app.clock.clone(),
            batch_size: app.cfg.inbound.batch_size,
            max_message_bytes: app.cfg.inbound.max_message_bytes,
            deliver: Arc::new(tokio::sync::Notify::new()),
            stop: tokio_util::sync::CancellationToken::new(),
            holder: imap::instance_id(),
            telemetry: app.telemetry.clone(),
        }
        .run(true),
    );
    let elapsed = start.elapsed();
    assert!(
        outcome.error.is_none(),
        "mailbox pass failed: {:?}",
        outcome.error
    );
    let summary = outcome;
    work.verify(&mut *app.store().unwrap(), &summary.report);
    let inbox = dovecot.list("INBOX");
    match mb_cfg.after {
        ticketgate::config::AfterAction::Flag => assert!(
            inbox.len() == n && inbox.iter().all(|m| m.flags.contains("\\Seen")),
            "every mail flagged \\Seen in the INBOX"
        ),
        ticketgate::config::AfterAction::Move => {
            assert!(inbox.is_empty(), "{} mails left in the INBOX", inbox.len());
            let moved = dovecot.list(&mb_cfg.move_to).len();
            assert_eq!(moved, n, "every mail moved to {}", mb_cfg.move_to);
        }
        ticketgate::config::AfterAction::Delete => {
            assert!(inbox.is_empty(), "{} mails left in the INBOX", inbox.len())
        }
    }
    println!("after_action {:?}", mb_cfg.after);
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("imap_end_to_end_seconds {:.3}", elapsed.as_secs_f64());
    println!("imap_end_to_end_rate_per_s {rate:.0}");
    println!("imap_vs_raw_fetch_move_ratio {:.3}", rate / raw_fm_rate);
    println!("imap_vs_raw_fetch_ratio {:.3}", rate / raw_rate);
    println!(
        "target_imap_ge_{TARGET_RATIO}_of_raw_fetch_move {}",
        if rate / raw_fm_rate >= TARGET_RATIO {
            "met"
        } else {
            "MISSED"
        }
    );
}

/// One `UID FETCH 1:*` of every mail's size and body, then (with `and_move`) one
/// `UID MOVE 1:*` of all of it; `(mails, body bytes, fetch time, move time)`.
async fn raw_fetch(port: u16, and_move: bool) -> (usize, usize, Duration, Duration) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to Dovecot");
    let mut client = async_imap::Client::new(tcp);
    let _greeting = client.read_response().await.expect("greeting");
    let mut session = client
        .login(USER, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .expect("login");
    session.select("INBOX").await.expect("select");
    let start = Instant::now();
    let (mut n, mut bytes) = (0, 0);
    {
        let mut fetches = session
            .uid_fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[])")
            .await
            .expect("uid fetch");
        while let Some(f) = fetches.try_next().await.expect("fetch response") {
            n += 1;
            bytes += f.body().map_or(0, <[u8]>::len);
        }
    }
    let elapsed = start.elapsed();
    let mut moved = Duration::ZERO;
    if and_move {
        let _ = session.create("RawMoved").await;
        let start = Instant::now();
        session.uid_mv("1:*", "RawMoved").await.expect("uid move");
        moved = start.elapsed();
    }
    let _ = session.logout().await;
    (n, bytes, elapsed, moved)
}

fn latency(rt: &tokio::runtime::Runtime, m: usize) {
    let work = Workload::generate(1, 0x6c61_7465_6e63_7921);
    let customer = &work.customers[0];
    let dovecot = Dovecot::start();
    let sink = SmtpSink::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let outbound = format!(
        "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        sink.port
    );
    let cfg = config(dir.path(), &work, &dovecot, &outbound);
    let app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut samples = Vec::with_capacity(m);
            // Let the daemon connect and start idling.
            std::thread::sleep(Duration::from_secs(2));
            for i in 0..m {
                let mail = format!(
                    "From: Person {i} <lat{i}@{domain}>\r\nTo: support@support.example.test\r\n\
                     Subject: Latency probe {i}\r\nDate: Fri, 20 Nov 2026 16:30:00 -0600\r\n\
                     Message-ID: <lat-{i}@bench.example>\r\nMIME-Version: 1.0\r\n\
                     Content-Type: text/plain; charset=utf-8\r\n\r\n\
                     Support key: {key}\r\n\r\nThe dashboard does not load.\r\n",
                    domain = customer.domain,
                    key = customer.key,
                );
                let start = Instant::now();
                dovecot.append("INBOX", mail.as_bytes());
                let deadline = start + Duration::from_secs(30);
                while sink.count() <= i {
                    assert!(
                        Instant::now() < deadline,
                        "no acknowledgement for probe {i} after 30 s"
                    );
                    std::thread::sleep(Duration::from_micros(500));
                }
                samples.push(start.elapsed());
                std::thread::sleep(LATENCY_SPACING);
            }
            let _ = stop_tx.send(());
            let _ = done_tx.send(samples);
        });
        rt.block_on(app.run(false, async {
            let _ = stop_rx.await;
        }))
        .expect("daemon");
    });
    let mut samples = done_rx.recv().expect("latency samples");
    samples.sort();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    let (p50, p99) = (pct(0.50), pct(0.99));
    println!("latency_probes {m}");
    println!("latency_p50_ms {p50:.0}");
    println!("latency_p99_ms {p99:.0}");
    println!(
        "latency_max_ms {:.0}",
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    println!(
        "target_latency_p99_lt_{TARGET_P99_MS:.0}_ms {}",
        if p99 < TARGET_P99_MS { "met" } else { "MISSED" }
    );
}
