//! Delivery benchmark: `cargo bench --bench delivery [-- N] [c=CONCURRENCY] [runs=R]`.
//!
//! Starts one Postfix `smtp-sink` on a loopback port (it accepts and discards), prebuilds N
//! messages (default 3000), then, R times (default 3):
//! - `raw`: lettre alone, `AsyncSmtpTransport::builder_dangerous` with a pool of C
//!   connections and C tasks calling `send_raw` back to back: the best lettre can do here;
//! - `transport`: ticketgate's own SMTP transport alone (`Transport::send`, its connection
//!   pool with TCP_NODELAY), C tasks sending back to back, no store: the ceiling for the
//!   outbox, which adds claiming and recording;
//! - `outbox`: the same N messages enqueued in a fresh SQLite store (a temporary folder, set
//!   up through the public API) and delivered by `outbox::deliver_due` with
//!   `outbound.concurrency = C`, timed from the start until every row is `sent`.
//!
//! All run on a multi-thread Tokio runtime, as the daemon runs. Figures are printed one per
//! line, `name value`; the targets (outbox ≥ 0.80 of raw lettre, and ≥ 0.60 of ticketgate's
//! transport alone) are printed, not asserted.
//! Needs `smtp-sink` (Debian `postfix`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use ticketgate::app::App;
use ticketgate::clock::{Clock, SystemClock};
use ticketgate::config::{Config, ConfigSource};
use ticketgate::outbox::Transport;
use ticketgate::store::{NewOutbound, OutboxMail};

#[path = "support/sink.rs"]
mod sink;
use sink::Sink;

const DEFAULT_MAILS: usize = 3_000;
const DEFAULT_CONCURRENCY: usize = 8;
const DEFAULT_RUNS: usize = 3;
const TARGET_RATIO: f64 = 0.80;
const FROM: &str = "support@support.example.test";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAILS);
    let opt = |key: &str, default: usize| {
        args.iter()
            .find_map(|a| a.strip_prefix(key)?.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let c = opt("c=", DEFAULT_CONCURRENCY);
    let runs = opt("runs=", DEFAULT_RUNS);
    assert!(n > 0 && c > 0 && runs > 0);

    let sink = Sink::start();
    let mails = messages(n);
    println!("mails {n}");
    println!("concurrency {c}");
    println!(
        "mean_mail_bytes {}",
        mails.iter().map(|m| m.body.len()).sum::<usize>() / n
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut ratios = Vec::new();
    let mut transport_ratios = Vec::new();
    for run in 1..=runs {
        let raw = rt.block_on(raw_lettre(sink.port, &mails, c));
        let transport = rt.block_on(raw_transport(sink.port, &mails, c));
        let (outbox, db_us) = rt.block_on(outbox(sink.port, &mails, c));
        let ratio = outbox / raw;
        println!("run{run}_raw_lettre_mails_per_s {raw:.0}");
        println!("run{run}_raw_transport_mails_per_s {transport:.0}");
        println!("run{run}_outbox_mails_per_s {outbox:.0}");
        println!("run{run}_ratio {ratio:.3}");
        println!("run{run}_ratio_vs_transport {:.3}", outbox / transport);
        transport_ratios.push(outbox / transport);
        // The store's share: claiming and marking sent alone, no network (same batch size).
        println!("run{run}_store_claim_and_mark_sent_us_per_mail {db_us:.0}");
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("median_ratio {median:.3}");
    transport_ratios.sort_by(f64::total_cmp);
    let vs_transport = transport_ratios[transport_ratios.len() / 2];
    println!("median_ratio_vs_transport {vs_transport:.3}");
    println!(
        "target_ratio_vs_transport_ge_0.6 {}",
        if vs_transport >= 0.6 { "met" } else { "MISSED" }
    );
    println!(
        "target_ratio_ge_{TARGET_RATIO} {}",
        if median >= TARGET_RATIO {
            "met"
        } else {
            "MISSED"
        }
    );
}

struct Mail {
    to: String,
    subject: String,
    message_id: String,
    body: Vec<u8>,
}

/// N acknowledgement-sized messages, each to its own recipient.
fn messages(n: usize) -> Vec<Mail> {
    (0..n)
        .map(|i| {
            let to = format!("user{i}@cust{:02}.example", i % 50);
            let subject = format!("[TKT-{:06}] Export job fails with timeout", i + 1);
            let message_id = format!("tg.TKT-{:06}.bench{i:08}@support.example.test", i + 1);
            let mut body = format!(
                "From: ACME Support <{FROM}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
                 Message-ID: <{message_id}>\r\nDate: Fri, 20 Nov 2026 16:30:00 -0600\r\n\
                 Auto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All\r\n\
                 MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 7bit\r\n\r\n"
            );
            for l in 0..20 {
                body.push_str(&format!(
                    "Line {l:02} of the acknowledgement: we received your request and a support \
                     engineer will answer within the target of your plan.\r\n"
                ));
            }
            Mail {
                to,
                subject,
                message_id,
                body: body.into_bytes(),
            }
        })
        .collect()
}

/// lettre alone: C tasks sharing one pool of C connections, each sending the next message
/// until none is left. Returns mails per second.
async fn raw_lettre(port: u16, mails: &[Mail], c: usize) -> f64 {
    let mailer: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(c as u32))
            .build();
    let from: Address = FROM.parse().unwrap();
    let jobs: Arc<Vec<(Envelope, Vec<u8>)>> = Arc::new(
        mails
            .iter()
            .map(|m| {
                let env = Envelope::new(Some(from.clone()), vec![m.to.parse().unwrap()]).unwrap();
                (env, m.body.clone())
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (mailer, jobs, next) = (mailer.clone(), jobs.clone(), next.clone());
        tasks.spawn(async move {
            let mut sent = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((env, body)) = jobs.get(i) else {
                    return sent;
                };
                mailer.send_raw(env, body).await.expect("raw send");
                sent += 1;
            }
        });
    }
    let mut sent = 0;
    while let Some(r) = tasks.join_next().await {
        sent += r.expect("send task");
    }
    let elapsed = start.elapsed();
    assert_eq!(sent, mails.len());
    mails.len() as f64 / elapsed.as_secs_f64()
}

/// ticketgate's SMTP transport alone: C tasks sending back to back, nothing stored.
async fn raw_transport(port: u16, mails: &[Mail], c: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), port, c);
    let transport = Transport::from_config(&cfg.outbound).expect("transport");
    let jobs: Vec<OutboxMail> = mails
        .iter()
        .enumerate()
        .map(|(i, m)| OutboxMail {
            id: i as i64 + 1,
            kind: "acknowledgement".into(),
            recipient: m.to.clone(),
            message_id: m.message_id.clone(),
            attempts: 1,
            body: m.body.clone(),
        })
        .collect();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let sent: usize = futures_util::future::join_all((0..c).map(|_| async {
        let mut sent = 0usize;
        while let Some(m) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            transport.send(m).await.expect("transport send");
            sent += 1;
        }
        sent
    }))
    .await
    .into_iter()
    .sum();
    let elapsed = start.elapsed();
    assert_eq!(sent, mails.len());
    mails.len() as f64 / elapsed.as_secs_f64()
}

fn config(d: &std::path::Path, port: u16, c: usize) -> Config {
    std::fs::write(
        d.join("customers.toml"),
        "[plans.standard]\nlanguage = \"en\"\n",
    )
    .unwrap();
    let toml = format!(
        "[database]\nurl = \"sqlite:{db}\"\n[inbound]\nmaildir = \"{inbox}\"\n\
         [registry]\npath = \"{registry}\"\n\
         [outbound]\ntransport = \"smtp\"\nconcurrency = {c}\nfrom = \"ACME Support <{FROM}>\"\n\
         [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"30s\"\n",
        db = d.join("bench.db").display(),
        inbox = d.join("inbox").display(),
        registry = d.join("customers.toml").display(),
    );
    Config::from_toml(&toml, d, ConfigSource::File(d.join("bench.toml"))).expect("bench config")
}

/// ticketgate: the messages enqueued in a fresh store, then `deliver_due` until all are sent.
/// Returns mails per second, and the microseconds per mail that the same store takes to
/// claim and mark sent the same number of messages without sending them.
async fn outbox(port: u16, mails: &[Mail], c: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), port, c);
    let clock = Arc::new(SystemClock);
    let mut app = App::open(cfg, clock.clone()).expect("open app");
    let enqueue = |app: &mut App| {
        let now = clock.now();
        let mut conn = app.store().unwrap();
        let mut tx = conn.write().expect("write transaction");
        for m in mails {
            tx.enqueue(&NewOutbound {
                ticket_id: None,
                inbound_id: None,
                kind: "acknowledgement",
                recipient: &m.to,
                subject: &m.subject,
                message_id: &m.message_id,
                automatic: true,
                body: &m.body,
                state: ticketgate::store::OutboxState::Pending,
                note: None,
                now,
            })
            .expect("enqueue");
        }
        tx.commit().expect("commit");
    };
    enqueue(&mut app);
    let start = Instant::now();
    let report = app.deliver().await.expect("deliver");
    let elapsed = start.elapsed();
    assert_eq!(
        (report.sent, report.retried, report.failed),
        (mails.len(), 0, 0)
    );
    let rows = app
        .store()
        .unwrap()
        .outbox(mails.len() + 1)
        .expect("outbox rows");
    assert_eq!(rows.len(), mails.len());
    assert!(rows.iter().all(|r| r.state == "sent"), "every row is sent");
    let rate = mails.len() as f64 / elapsed.as_secs_f64();

    // The store alone, on the same database: a second copy of the messages, claimed and
    // marked sent as `deliver_due` does, without a transport.
    enqueue(&mut app);
    let lease = chrono::Duration::minutes(5);
    let start = Instant::now();
    let mut done = 0;
    loop {
        let now = clock.now();
        let batch = app
            .store()
            .unwrap()
            .claim_due(now, now + lease, c, 8)
            .expect("claim");
        if batch.is_empty() {
            break;
        }
        for m in batch {
            app.store()
                .unwrap()
                .mark_sent(m.claim(), clock.now())
                .expect("mark sent");
            done += 1;
        }
    }
    assert_eq!(done, mails.len());
    let db_us = start.elapsed().as_secs_f64() * 1e6 / done as f64;
    (rate, db_us)
}
