//! Announcement benchmark (issue 10): `cargo bench --bench announce [-- N] [c=CONCURRENCY]`.
//!
//! One announcement (an emergency maintenance, announced at once) to N confirmed subscribers
//! (default 10,000) of one list, on SQLite and, when `TICKETGATE_BENCH_DATABASE_URL` names a
//! PostgreSQL server, on PostgreSQL too. Per backend:
//! - `enqueue`: the service call that writes the announcement and its N outbox rows (each
//!   rendered, composed and DKIM-less) in one transaction, timed end to end;
//! - `transport`: the same N messages, read back from the outbox, sent by ticketgate's SMTP
//!   transport alone (`Transport::send`, C tasks back to back, nothing stored) to smtp-sink:
//!   the ceiling;
//! - `outbox`: the daemon's delivery (`App::deliver`: claim, send, record) of the N rows to
//!   the same smtp-sink, timed until every row is `sent`.
//!
//! The target (outbox ≥ 0.8 of the transport alone, in the same run) is printed, not
//! asserted. Needs `smtp-sink` (Debian `postfix`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/pgdb.rs"]
mod pgdb;
#[path = "support/sink.rs"]
mod sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sink::Sink;
use ticketgate::app::App;
use ticketgate::clock::{Clock, SystemClock};
use ticketgate::config::{Config, ConfigSource};
use ticketgate::outbox::Transport;
use ticketgate::services::maintenance::{self, ScheduleRequest};
use ticketgate::store::{NewSubscriber, OutboxMail, SubscriberState};

const DEFAULT_SUBSCRIBERS: usize = 10_000;
const DEFAULT_CONCURRENCY: usize = 8;
const TARGET_RATIO: f64 = 0.80;

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_SUBSCRIBERS);
    let c = args
        .iter()
        .find_map(|a| a.strip_prefix("c=")?.parse::<usize>().ok())
        .unwrap_or(DEFAULT_CONCURRENCY);
    assert!(n > 0 && c > 0);
    println!("subscribers {n}");
    println!("concurrency {c}");
    let sink = Sink::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite:{}", dir.path().join("bench.db").display());
    rt.block_on(run("sqlite", &sqlite, dir.path(), sink.port, n, c));
    if let Some(pg) = pgdb::PgDatabase::create() {
        let pg_dir = tempfile::tempdir().expect("temp dir");
        rt.block_on(run("postgres", &pg.url, pg_dir.path(), sink.port, n, c));
        println!("postgres_database_mb {:.1}", pg.size_mb());
    } else {
        println!(
            "postgres skipped (set {} to run it)",
            pgdb::BENCH_DATABASE_URL_VAR
        );
    }
}

fn config(d: &std::path::Path, db: &str, port: u16, c: usize) -> Config {
    std::fs::write(d.join("customers.toml"), REGISTRY).unwrap();
    let toml = format!(
        "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"{inbox}\"\n\
         [registry]\npath = \"{registry}\"\n\
         [http]\npublic_url = \"https://status.example.test\"\n\
         [outbound]\ntransport = \"smtp\"\nconcurrency = {c}\n\
         from = \"ACME Support <support@support.example.test>\"\n\
         [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"30s\"\n",
        inbox = d.join("inbox").display(),
        registry = d.join("customers.toml").display(),
    );
    Config::from_toml(&toml, d, ConfigSource::File(d.join("bench.toml"))).expect("bench config")
}

async fn run(backend: &str, db: &str, dir: &std::path::Path, port: u16, n: usize, c: usize) {
    let clock = Arc::new(SystemClock);
    let app = App::open(config(dir, db, port, c), clock.clone()).expect("open app");
    // Setup, not timed: N confirmed subscribers in one transaction.
    {
        let now = clock.now();
        let mut store = app.store().unwrap();
        let mut tx = store.write().expect("write");
        for i in 0..n {
            tx.announce()
                .upsert_subscriber(&NewSubscriber {
                    list: "eu-maintenance",
                    address: &format!("sub{i:05}@cust{:03}.example", i % 500),
                    customer: "acme",
                    state: SubscriberState::Confirmed,
                    shared: false,
                    added_by: "bench",
                    now,
                    expires_at: None,
                })
                .expect("subscriber");
        }
        tx.commit().expect("commit");
    }

    let start = Instant::now();
    let m = maintenance::schedule(
        &app,
        ScheduleRequest {
            platform: "eu".into(),
            start: (clock.now() + chrono::Duration::hours(1)).to_rfc3339(),
            end: (clock.now() + chrono::Duration::hours(2)).to_rfc3339(),
            impact: "Webmail and IMAP unavailable for up to 30 minutes".into(),
            emergency: true,
        },
    )
    .await
    .expect("announce");
    let enqueue = start.elapsed();
    assert_eq!(m.recipients as usize, n);
    println!(
        "{backend}_enqueue_transaction_ms {:.0}",
        enqueue.as_secs_f64() * 1e3
    );
    println!(
        "{backend}_enqueue_us_per_subscriber {:.1}",
        enqueue.as_secs_f64() * 1e6 / n as f64
    );

    // The same messages, sent by the transport alone.
    let mails: Vec<OutboxMail> = {
        let mut store = app.store().unwrap();
        let rows = store.outbox(n + 10).expect("outbox");
        rows.iter()
            .map(|r| OutboxMail {
                id: r.id,
                kind: r.kind.clone(),
                recipient: r.recipient.clone(),
                message_id: r.message_id.clone(),
                attempts: 1,
                body: store.outbox_body(r.id).expect("body").expect("a body"),
            })
            .collect()
    };
    assert_eq!(mails.len(), n);
    println!(
        "{backend}_mean_mail_bytes {}",
        mails.iter().map(|m| m.body.len()).sum::<usize>() / n
    );
    let transport = Transport::from_config(&app.cfg.outbound).expect("transport");
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let sent: usize = futures_util::future::join_all((0..c).map(|_| async {
        let mut sent = 0usize;
        while let Some(m) = mails.get(next.fetch_add(1, Ordering::Relaxed)) {
            transport.send(m).await.expect("transport send");
            sent += 1;
        }
        sent
    }))
    .await
    .into_iter()
    .sum();
    let alone = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(sent, n);

    // The daemon's delivery of the outbox rows.
    let start = Instant::now();
    let mut delivered = 0;
    while delivered < n {
        let report = app.deliver().await.expect("deliver");
        assert_eq!((report.retried, report.failed), (0, 0));
        assert!(report.sent > 0, "delivery made no progress");
        delivered += report.sent;
    }
    let outbox = n as f64 / start.elapsed().as_secs_f64();
    let ratio = outbox / alone;
    println!("{backend}_transport_alone_mails_per_s {alone:.0}");
    println!("{backend}_outbox_delivery_mails_per_s {outbox:.0}");
    println!("{backend}_ratio_vs_transport {ratio:.3}");
    println!(
        "{backend}_target_ratio_ge_{TARGET_RATIO} {}",
        if ratio >= TARGET_RATIO {
            "met"
        } else {
            "MISSED"
        }
    );
}
