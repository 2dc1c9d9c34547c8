//! Throughput benchmark for the inbound pipeline:
//! `cargo bench --bench pipeline [-- N] [batch=SIZE] [pipeline] [maildir] [outage]`.
//!
//! Generates N realistic small mails (default 20000): about 70 % new requests carrying a valid
//! support key of one of 50 generated customers, about 30 % follow-ups to an earlier request
//! of the same sender (by subject tag, by `In-Reply-To`, or both). Then measures:
//! - the parse-only rate (`parse::parse`, one thread);
//! - end to end through `Pipeline::process` on a fresh SQLite database (WAL,
//!   `synchronous = FULL`), in batches of `inbound.batch_size`;
//! - end to end through a Maildir (`App::drain_maildir`) in a fresh setup.
//!
//! Next to the rates it prints, per mail, the pipeline's own two-thread parse step alone, the
//! CPU time and the bytes written (Linux `/proc/self`), which stay meaningful when other work
//! shares the machine and the rates swing.
//! Every run is checked (tickets, articles, outbox rows), so the figures cannot come from a
//! run that silently did nothing. Figures are printed one per line, `name value`.
//!
//! With `outage`, every plan is on platform `eu` and an outage of `eu` is declared before the
//! timed part: every new ticket then reads the open outages and is linked to it
//! (incident-aware intake), which the run checks.
//!
//! With `TICKETGATE_BENCH_DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/postgres` each phase
//! runs on a fresh PostgreSQL database of its own on that server instead of SQLite (created
//! and dropped with `psql`, which must be installed).

#[path = "support/workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ticketgate::app::App;
use ticketgate::clock::SystemClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::ingest::Maildir;
use ticketgate::parse::{self, Limits, Patterns};
use ticketgate::pipeline::Report;
use workload::Workload;

const DEFAULT_MAILS: usize = 20_000;
const TARGET_RATE: f64 = 10_000.0;
const TARGET_RATIO: f64 = 0.33;

fn main() {
    // `cargo bench` passes `--bench`; the first plain number is the mail count, `batch=N`
    // overrides inbound.batch_size, and words name the phases to run (`pipeline`, `maildir`;
    // both when none is named). The parse-only rate is always measured: the ratios need it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAILS);
    assert!(n > 0, "the mail count must be at least 1");
    let phases: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| PHASES.contains(a))
        .collect();
    let run = |phase: &str| phases.is_empty() || phases.contains(&phase);
    if args.iter().any(|a| a == "outage") {
        OUTAGE.store(true, std::sync::atomic::Ordering::Relaxed);
        println!("outage_mode 1");
    }
    let batch_size = args.iter().find_map(|a| {
        let b = a.strip_prefix("batch=")?;
        Some(b.parse::<usize>().expect("batch=N takes a number"))
    });

    let mut work = Workload::generate(n, 0x7469_636b_6574_6761);
    work.batch_size = batch_size;
    let total_bytes: usize = work.mails.iter().map(|m| m.bytes.len()).sum();
    println!("mails {n}");
    println!("new_requests {}", work.new_requests);
    println!("followups {}", work.followups);
    println!("mean_mail_bytes {}", total_bytes / n);

    let parse_rate = parse_only(&work);
    let mut rates = Vec::new();
    if run("pipeline") {
        rates.push(("pipeline", pipeline_batches(&work, parse_rate, false)));
    }
    if phases.contains(&"process") {
        rates.push(("process", pipeline_batches(&work, parse_rate, true)));
    }
    if run("maildir") {
        rates.push(("maildir", maildir(&work, parse_rate)));
    }

    // Targets: printed, not asserted (timing depends on the machine).
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    for (name, r) in rates {
        println!(
            "target_{name}_ge_{TARGET_RATE:.0}_per_s {}",
            met(r >= TARGET_RATE)
        );
        println!(
            "target_{name}_ge_{TARGET_RATIO}_of_parse {}",
            met(r / parse_rate >= TARGET_RATIO)
        );
    }
}

/// `process` (each batch through `Pipeline::process`, committed before the next one) runs
/// only when named.
const PHASES: &[&str] = &["pipeline", "maildir", "process"];

/// `outage` was given: customers on platform `eu`, with an open outage there.
static OUTAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn outage_mode() -> bool {
    OUTAGE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Declares the `eu` outage every new ticket is linked to.
fn declare_outage(app: &App) -> i64 {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(ticketgate::services::announce::declare_outage(
        app,
        ticketgate::services::announce::OutageDeclaration {
            platform: "eu".into(),
            services: vec!["IMAP".into()],
            impact: "Mail cannot be read over IMAP.".into(),
            restoration_eta: None,
            update_interval: None,
            draft: false,
            source: "operator".into(),
        },
    ))
    .expect("declare the outage")
    .id
}

/// `parse::parse` over every mail on one thread; returns mails per second.
fn parse_only(work: &Workload) -> f64 {
    let n = work.mails.len();
    let setup = Setup::new(work);
    let cfg = setup.config();
    println!("batch_size {}", cfg.inbound.batch_size);
    let patterns = Patterns::new(
        cfg.tickets.key_pattern.clone(),
        &cfg.tickets.reference_prefix,
    );
    let limits = Limits {
        max_attachment_bytes: cfg.inbound.max_attachment_bytes,
    };
    // Warm-up (page in code, allocator, lazy regex states).
    for m in work.mails.iter().take(1000) {
        black_box(parse::parse(black_box(&m.bytes), &patterns, limits).is_ok());
    }
    let start = Instant::now();
    let mut parsed_ok = 0usize;
    for m in &work.mails {
        let r = parse::parse(black_box(&m.bytes), &patterns, limits);
        parsed_ok += usize::from(r.is_ok());
        black_box(r.ok());
    }
    let elapsed = start.elapsed();
    assert_eq!(parsed_ok, n, "every generated mail must parse");
    let parse_rate = rate(n, elapsed);
    println!("parse_only_seconds {:.3}", elapsed.as_secs_f64());
    println!("parse_only_rate_per_s {parse_rate:.0}");
    parse_rate
}

/// In-memory batches on a fresh database, as a stream (`Pipeline::next_batch`, the last one
/// finished with `finish_batch`), or `one_by_one` through `Pipeline::process`
/// (phase `process`, printed with that prefix); returns mails per second.
fn pipeline_batches(work: &Workload, parse_rate: f64, one_by_one: bool) -> f64 {
    let name = if one_by_one { "process" } else { "pipeline" };
    let n = work.mails.len();
    let setup = Setup::new(work);
    let cfg = setup.config();
    let batch = cfg.inbound.batch_size;
    let app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    let outage = outage_mode().then(|| declare_outage(&app));
    // The pipeline's own parse step (both cores) alone: the part of the run that is parsing.
    let start = Instant::now();
    for chunk in work.mails.chunks(batch) {
        black_box(app.pipeline.parse_all(chunk));
    }
    let parse_all = start.elapsed();
    let io_before = io_counters();
    let cpu_before = cpu_time();
    let start = Instant::now();
    let mut report = Report::default();
    if one_by_one {
        // Each batch committed before the next one starts (`Pipeline::process`).
        for chunk in work.mails.chunks(batch) {
            let (r, _) = app
                .pipeline
                .process(&mut *app.store().unwrap(), chunk)
                .expect("process a batch");
            report.add(&r);
        }
    } else {
        // A stream of batches: each one prepared while the one before commits (ADR 0019).
        let mut store = app.store().unwrap();
        let mut pending: Option<ticketgate::pipeline::Pending> = None;
        for chunk in work.mails.chunks(batch) {
            let (next, done) = app
                .pipeline
                .next_batch(&mut *store, chunk.to_vec(), pending.take());
            pending = Some(next);
            if let Some(done) = done {
                report.add(&done.expect("commit a batch").0);
            }
        }
        if let Some(done) = pending {
            let (r, _) = app
                .pipeline
                .finish_batch(&mut *store, done)
                .expect("commit a batch");
            report.add(&r);
        }
    }
    let elapsed = start.elapsed();
    let io_after = io_counters();
    let cpu_after = cpu_time();
    work.verify(&mut *app.store().unwrap(), &report);
    if let Some(outage) = outage {
        // Every ticket the run opened is linked to the outage.
        let mut store = app.store().unwrap();
        let tickets = store.tickets(report.created + 1).unwrap();
        assert_eq!(tickets.len(), report.created);
        let linked = tickets
            .iter()
            .filter(|t| store.ticket_outages(t.id).unwrap() == [outage])
            .count();
        assert_eq!(linked, report.created, "tickets linked to the outage");
        println!("tickets_linked {linked}");
    }
    let r = rate(n, elapsed);
    println!("{name}_seconds {:.3}", elapsed.as_secs_f64());
    println!("{name}_rate_per_s {r:.0}");
    println!("{name}_vs_parse_ratio {:.3}", r / parse_rate);
    println!(
        "{name}_us_per_mail {:.0}",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "parse_all_us_per_mail {:.0}",
        parse_all.as_secs_f64() * 1e6 / n as f64
    );
    println!("{name}_batches {}", n.div_ceil(batch));
    println!("db_bytes_per_mail {}", setup.db_bytes() / n as u64);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        // CPU time of all threads: steadier than the rate when other work shares the machine.
        println!(
            "{name}_cpu_us_per_mail {:.0}",
            (b - a).as_secs_f64() * 1e6 / n as f64
        );
    }
    if let (Some(a), Some(b)) = (io_before, io_after) {
        // What the run wrote: handed to write(2), and sent on to storage (WAL, checkpoints).
        println!(
            "{name}_write_calls_bytes_per_mail {}",
            (b.0 - a.0) / n as u64
        );
        println!("{name}_storage_bytes_per_mail {}", (b.1 - a.1) / n as u64);
    }
    r
}

/// `App::drain_maildir` over a Maildir holding every mail, on a fresh database; returns mails
/// per second. Delivering the files is not timed.
fn maildir(work: &Workload, parse_rate: f64) -> f64 {
    let n = work.mails.len();
    let setup = Setup::new(work);
    let cfg = setup.config();
    let md = Maildir::open(&cfg.inbound.maildir).expect("open maildir");
    for (i, m) in work.mails.iter().enumerate() {
        // Name order is arrival order, as with a real delivery agent.
        md.deliver(&format!("1795344000.M{i:08}P1.bench"), &m.bytes)
            .expect("deliver");
    }
    let app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    let cpu_before = cpu_time();
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(app.drain_maildir(&md)).expect("drain maildir");
    let elapsed = start.elapsed();
    let cpu_after = cpu_time();
    work.verify(&mut *app.store().unwrap(), &report);
    assert!(
        md.pending(1).expect("list new/").is_empty(),
        "mail left in new/"
    );
    let r = rate(n, elapsed);
    println!("maildir_pipeline_seconds {:.3}", elapsed.as_secs_f64());
    println!("maildir_pipeline_rate_per_s {r:.0}");
    println!("maildir_vs_parse_ratio {:.3}", r / parse_rate);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        println!(
            "maildir_cpu_us_per_mail {:.0}",
            (b - a).as_secs_f64() * 1e6 / n as f64
        );
    }
    r
}

/// `(wchar, write_bytes)` of this process from `/proc/self/io` (Linux only).
fn io_counters() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    Some((field("wchar:")?, field("write_bytes:")?))
}

/// User + system CPU time of this process, all threads, from `/proc/self/stat` (Linux only;
/// USER_HZ is 100 there).
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let mut f = rest.split(' ').skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

// ---- one fresh installation in a temp dir --------------------------------------------------

struct Setup {
    dir: tempfile::TempDir,
    batch_size: Option<usize>,
    /// A PostgreSQL database of this setup's own, when the bench runs on PostgreSQL.
    pg: Option<PgDatabase>,
}

/// The variable naming a PostgreSQL server to run on (an admin URL, e.g. its `postgres`
/// database); unset: SQLite.
const BENCH_DATABASE_URL_VAR: &str = "TICKETGATE_BENCH_DATABASE_URL";

/// A fresh database on the server, dropped with the setup.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create() -> Option<PgDatabase> {
        let admin_url = std::env::var(BENCH_DATABASE_URL_VAR)
            .ok()
            .filter(|u| !u.is_empty())?;
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).expect("random name");
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("tg_bench_{name}");
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url.as_str(), String::new()),
        };
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = format!("{base}/{name}{query}");
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the server with `psql`.
fn psql(url: &str, sql: &str) {
    let ok = std::process::Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .status()
        .expect("run psql")
        .success();
    assert!(ok, "psql `{sql}` failed");
}

impl Setup {
    fn new(work: &Workload) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut registry = work.registry_toml();
        if outage_mode() {
            registry = registry.replace("]\nlanguage = ", "]\nplatform = \"eu\"\nlanguage = ");
        }
        std::fs::write(dir.path().join("customers.toml"), registry).expect("write customers.toml");
        let pg = PgDatabase::create();
        if let Some(pg) = &pg {
            println!("database postgres {}", pg.name);
        }
        Setup {
            dir,
            batch_size: work.batch_size,
            pg,
        }
    }

    fn config(&self) -> Config {
        let d = self.dir.path();
        let batch = self
            .batch_size
            .map(|b| format!("batch_size = {b}\n"))
            .unwrap_or_default();
        let db = match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite:{}", d.join("bench.db").display()),
        };
        let toml = format!(
            "[database]\nurl = \"{db}\"\n\n\
             [inbound]\nmaildir = \"{inbox}\"\n{batch}\n\
             [outbound]\ntransport = \"file\"\ndir = \"{outbox}\"\n\n\
             [registry]\npath = \"{registry}\"\n",
            inbox = d.join("inbox").display(),
            outbox = d.join("outbox").display(),
            registry = d.join("customers.toml").display(),
        );
        Config::from_toml(&toml, d, ConfigSource::EmbeddedDefault).expect("bench config")
    }

    fn db_bytes(&self) -> u64 {
        ["bench.db", "bench.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.path().join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}
