//! Timer tick benchmark: `cargo bench --bench tick [-- OPEN DUE]` (defaults 1,000,000 and
//! 1,000).
//!
//! Issue requirement: with OPEN open tickets and DUE timers due, one tick stays under 100 ms,
//! and its time and memory do not depend on the number of open tickets.
//!
//! For OPEN and then OPEN/10 open tickets, on a fresh SQLite database (WAL,
//! `synchronous = FULL`) in a temporary folder, with a registry of two plans (24/7 with
//! response targets and reminders; a Chicago business calendar with managers and a closure
//! warning):
//! 1. writes the tickets directly through one write transaction (`insert_ticket`,
//!    `set_timer`): every ticket has a timer; all are due in the future except DUE of them,
//!    spread over the id range: half SLA escalations of running clocks already past due,
//!    half follow-up reminders of tickets waiting on the customer. Then checkpoints the WAL
//!    (RESTART), as a running daemon's WAL would be;
//! 2. runs a dry-run tick (rolled back), then the real tick, then a second real tick (nothing
//!    left to fire), each timed. For the real tick it also reports the on-CPU time (the rest
//!    is waiting, mostly for fsync), the pages its commit wrote to the WAL, and memory:
//!    VmRSS / VmHWM (peak reset before the tick), the peak of the Rust heap (mimalloc, the
//!    daemon's allocator, wrapped in a counter) and of SQLite's allocations during the tick.
//!
//! It measures TICKS (5) real ticks per database, 5 minutes apart, each with its own DUE
//! timers, and reports their median: one tick alone says little on a shared machine.
//!
//! Every tick is checked (what fired, and that each fired timer did its work), so the
//! figures cannot come from a tick that did nothing. Figures are printed one per line,
//! `name value`; times are printed, not asserted.
//!
//! With `TICKETGATE_BENCH_DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/postgres` each run
//! uses a fresh PostgreSQL database of its own on that server instead of SQLite (created and
//! dropped with `psql`); the SQLite-only figures (WAL pages, SQLite's memory, the query
//! plan) are then 0 or skipped.

#[path = "support/pgdb.rs"]
mod pgdb;

use std::alloc::{GlobalAlloc, Layout};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use ticketgate::app::App;
use ticketgate::clock::ManualClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::lifecycle::{FOLLOWUP, SLA};
use ticketgate::registry::Plan;
use ticketgate::store::{SlaState, TicketRow};
use ticketgate::timers::{self, Fired};

const DEFAULT_OPEN: usize = 1_000_000;
const DEFAULT_DUE: usize = 1_000;
const TARGET_MS: f64 = 100.0;
/// Real ticks measured per database, each at its own instant with its own DUE timers (the
/// machine may be shared: one tick alone says little). The median is the figure.
const TICKS: usize = 5;
/// Between two measured ticks. Timers of the next tick are due less than this before it,
/// so after its own tick's instant.
const SPACING_MINUTES: i64 = 5;

const REGISTRY: &str = r#"
agents = ["@support.example.test"]

[calendars.chicago]
time_zone = "America/Chicago"
hours = { mon = "08:00-17:00", tue = "08:00-17:00", wed = "08:00-17:00", thu = "08:00-17:00", fri = "08:00-17:00" }
holidays = ["2026-11-26", "2026-12-25"]
day_length = "9h"

[plans.premium]
profile = "exo"
calendar = "24/7"
phone = "+1 214 555 0142"
response_targets = { 1 = "30m", 2 = "2h", 3 = "8h", 4 = "24h" }
reminders = { interval = "2d", count = 3 }

[plans.business]
profile = "exo"
calendar = "chicago"
response_targets = { 1 = "2h", 2 = "1d", 3 = "3d", 4 = "asap" }
managers = ["escalations@support.example.test", "lead@support.example.test"]
required_information = ["Product version|Version", "Environment"]
reminders = { interval = "2d", count = 1, closure_warning = "2d" }

[[customers]]
id = "acme"
name = "ACME Corp"
plan = "premium"
keys = [{ key = "ACME-0000-0000-0001" }]

[[customers]]
id = "globex"
name = "Globex"
plan = "business"
keys = [{ key = "GLBX-0000-0000-0002" }]

[[customers]]
id = "initech"
name = "Initech"
plan = "premium"
keys = [{ key = "INIT-0000-0000-0003" }]

[[customers]]
id = "umbrella"
name = "Umbrella"
plan = "business"
keys = [{ key = "UMBR-0000-0000-0004" }]

[[customers]]
id = "hooli"
name = "Hooli"
plan = "business"
keys = [{ key = "HOOL-0000-0000-0005" }]

[[customers]]
id = "stark"
name = "Stark Industries"
plan = "premium"
keys = [{ key = "STRK-0000-0000-0006" }]
"#;

/// (customer id, support key, plan, mail domain)
const CUSTOMERS: [(&str, &str, &str, &str); 6] = [
    ("acme", "ACME-0000-0000-0001", "premium", "acme.example"),
    (
        "globex",
        "GLBX-0000-0000-0002",
        "business",
        "globex.example",
    ),
    (
        "initech",
        "INIT-0000-0000-0003",
        "premium",
        "initech.example",
    ),
    (
        "umbrella",
        "UMBR-0000-0000-0004",
        "business",
        "umbrella.example",
    ),
    ("hooli", "HOOL-0000-0000-0005", "business", "hooli.example"),
    ("stark", "STRK-0000-0000-0006", "premium", "stark.example"),
];

const SUBJECTS: [&str; 6] = [
    "Export to CSV fails with a timeout",
    "Login page returns 502 after upgrade",
    "Nightly sync job stuck in queue",
    "License server unreachable from node",
    "Dashboard widgets load very slowly",
    "Webhook deliveries are duplicated",
];

fn main() {
    // `cargo bench` passes `--bench`; the plain numbers are OPEN then DUE.
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let open = nums.first().copied().unwrap_or(DEFAULT_OPEN);
    let due = nums.get(1).copied().unwrap_or(DEFAULT_DUE);
    assert!(
        due >= 2 && due * TICKS <= open / 10,
        "need 2 <= DUE and DUE * {TICKS} <= OPEN/10"
    );

    let large = run(open, due, true);
    let small = run(open / 10, due, false);

    println!("tick_open {}", large.open);
    println!("tick_due {}", large.due);
    large.print("");
    println!("tick_open_small {}", small.open);
    small.print("_small");
    let ratio = |a: StdDuration, b: StdDuration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "tick_time_ratio_large_vs_small {:.2}",
        ratio(large.tick, small.tick)
    );
    println!(
        "tick_cpu_ratio_large_vs_small {:.2}",
        ratio(large.cpu, small.cpu)
    );
    println!(
        "tick_heap_peak_diff_kb_large_minus_small {}",
        large.mem.heap_peak_kb - small.mem.heap_peak_kb
    );
    let met = ms(large.tick) < TARGET_MS;
    println!("tick_target_ms {TARGET_MS}");
    println!("tick_target_met {}", if met { "yes" } else { "no" });
}

struct Figures {
    open: usize,
    due: usize,
    populate: StdDuration,
    db_mb: f64,
    dry_run: StdDuration,
    /// Median of the measured ticks; `ticks` has them all, in order.
    tick: StdDuration,
    ticks: Vec<StdDuration>,
    /// On-CPU time (user and kernel), median; the rest of `tick` is waiting (fsync, or a
    /// busy machine).
    cpu: StdDuration,
    /// Per tick (all ticks fire the same number).
    fired: usize,
    mails: usize,
    /// Database pages a tick's commit wrote to the WAL (median).
    wal_pages: i64,
    /// PostgreSQL: the WAL the server wrote during a tick, in kB (median).
    pg_wal_kb: i64,
    /// PostgreSQL on this machine: the CPU time of all its processes during a tick, in ms
    /// (median; others' queries count too on a shared server).
    server_cpu_ms: i64,
    /// The largest of each measure over the ticks.
    mem: MemUse,
    /// The slowest of the second ticks (each fires nothing).
    second: StdDuration,
    second_fired: usize,
}

impl Figures {
    fn print(&self, suffix: &str) {
        let s = suffix;
        println!("tick_populate_s{s} {:.1}", self.populate.as_secs_f64());
        println!("tick_db_mb{s} {:.0}", self.db_mb);
        println!("tick_dry_run_ms{s} {:.1}", ms(self.dry_run));
        println!("tick_ms{s} {:.1}", ms(self.tick));
        let all: Vec<String> = self
            .ticks
            .iter()
            .map(|t| format!("{:.1}", ms(*t)))
            .collect();
        println!("tick_ms_all{s} {}", all.join(" "));
        let min = self.ticks.iter().min().copied().unwrap_or_default();
        println!("tick_ms_min{s} {:.1}", ms(min));
        println!("tick_cpu_ms{s} {:.1}", ms(self.cpu));
        println!("tick_fired{s} {}", self.fired);
        println!("tick_mails{s} {}", self.mails);
        println!("tick_wal_pages{s} {}", self.wal_pages);
        println!("tick_pg_wal_kb{s} {}", self.pg_wal_kb);
        println!("tick_pg_server_cpu_ms{s} {}", self.server_cpu_ms);
        let m = &self.mem;
        println!("tick_rss_before_kb{s} {}", m.rss_before_kb);
        println!("tick_rss_growth_kb{s} {}", m.rss_growth_kb);
        println!("tick_hwm_growth_kb{s} {}", m.hwm_growth_kb);
        println!("tick_heap_peak_kb{s} {}", m.heap_peak_kb);
        println!("tick_heap_retained_kb{s} {}", m.heap_retained_kb);
        println!("tick_sqlite_mem_peak_kb{s} {}", m.sqlite_peak_kb);
        println!("tick_second_ms{s} {:.2}", ms(self.second));
        println!("tick_second_fired{s} {}", self.second_fired);
    }
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The tick instant: Tuesday 24 Nov 2026, 14:00 in Chicago (working time).
fn tick_instant() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T14:00:00-06:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn run(open: usize, due: usize, explain: bool) -> Figures {
    let t0 = tick_instant();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tg.db");
    let pg = pgdb::PgDatabase::create();
    if let Some(pg) = &pg {
        println!("database postgres {}", pg.name);
    }
    let url = pg
        .as_ref()
        .map_or("sqlite:tg.db".to_string(), |p| p.url.clone());
    let sqlite = pg.is_none();
    let mut app = open_app(dir.path(), t0, &url);

    let started = Instant::now();
    populate(&mut app, open, due, t0);
    let populate = started.elapsed();
    // One huge transaction leaves a WAL as big as the database; a running daemon's WAL is
    // checkpointed as it goes. Start the ticks from that steady state.
    if sqlite {
        wal_checkpoint(&db, "RESTART");
    }
    // The same on PostgreSQL: a running daemon's tables are vacuumed and analyzed by
    // autovacuum and its dirty pages written by checkpoints as it goes. Without this the
    // ticks run against the load's leftovers: no statistics, hint bits unset, and a buffer
    // pool full of dirty pages that each tick's reads must write out first.
    if let Some(pg) = &pg {
        let settled = settle_postgres(&pg.url);
        println!("tick_pg_vacuum_analyze_checkpoint {settled}");
    }
    let db_mb = pg.as_ref().map_or_else(|| file_mb(&db), |p| p.size_mb());
    eprintln!("populated {open} open tickets in {populate:.1?}");

    // Dry run first: the same work as the first tick, rolled back.
    let t = Instant::now();
    let dry = timers::tick(&app.pipeline, &mut *app.store().unwrap(), t0, true).unwrap();
    let dry_run = t.elapsed();
    check(&dry, due);
    drop(dry);
    assert!(
        app.store().unwrap().outbox(1).unwrap().is_empty(),
        "a dry run sends nothing"
    );

    let mut ticks = Vec::new();
    let mut cpus = Vec::new();
    let mut wal = Vec::new();
    let mut pg_wal = Vec::new();
    let mut server_cpu = Vec::new();
    let mut mems = Vec::new();
    let mut second = StdDuration::ZERO;
    let mut second_fired = 0;
    for k in 0..TICKS {
        let now = batch_instant(t0, k);
        let lsn0 = pg.as_ref().map(|p| pg_wal_lsn(&p.url));
        let server0 = pg.as_ref().map(|_| server_cpu_ms());
        let mem = MemStart::now();
        let cpu0 = cpu_ns();
        let t = Instant::now();
        let fired = timers::tick(&app.pipeline, &mut *app.store().unwrap(), now, false).unwrap();
        ticks.push(t.elapsed());
        if let Some(s0) = server0 {
            server_cpu.push(server_cpu_ms() - s0);
        }
        cpus.push(StdDuration::from_nanos(cpu_ns().saturating_sub(cpu0)));
        check(&fired, due);
        drop(fired);
        mems.push(mem.finish());
        // The log restarted at this tick's commit (the previous one was checkpointed): its
        // frames are what the commit wrote.
        wal.push(if sqlite {
            wal_checkpoint(&db, "PASSIVE")
        } else {
            0
        });
        if let (Some(p), Some(lsn0)) = (&pg, lsn0) {
            // The server's WAL written while the tick ran (the whole cluster's: on a shared
            // server others' writes count too). The positions, for `pg_waldump`.
            let lsn1 = pg_wal_lsn(&p.url);
            eprintln!("tick_pg_lsn {k} {lsn0} {lsn1}");
            pg_wal.push(lsn1.bytes - lsn0.bytes);
        }

        let t = Instant::now();
        let again = timers::tick(&app.pipeline, &mut *app.store().unwrap(), now, false).unwrap();
        second = second.max(t.elapsed());
        second_fired += again.len();
    }
    assert_eq!(second_fired, 0, "fired timers are re-armed after the tick");

    let mails = app
        .store()
        .unwrap()
        .outbox(100 * TICKS * due)
        .unwrap()
        .len();
    assert!(
        mails >= TICKS * due,
        "every fired timer wrote at least one mail"
    );
    if explain && sqlite {
        explain_due_query(&db, t0);
    }
    drop(app);
    drop(pg);
    Figures {
        open,
        due,
        populate,
        db_mb,
        dry_run,
        tick: median(&ticks),
        ticks,
        cpu: median(&cpus),
        fired: due,
        mails: mails / TICKS,
        wal_pages: median(&wal),
        pg_wal_kb: if pg_wal.is_empty() {
            0
        } else {
            median(&pg_wal) / 1024
        },
        server_cpu_ms: if server_cpu.is_empty() {
            0
        } else {
            median(&server_cpu)
        },
        mem: MemUse::max(&mems),
        second,
        second_fired,
    }
}

/// `VACUUM ANALYZE` and `CHECKPOINT` on the bench's database (the checkpoint needs a
/// superuser or `pg_checkpoint`): what it did.
fn settle_postgres(url: &str) -> &'static str {
    let run = |sql: &str| {
        std::process::Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
            .status()
            .is_ok_and(|s| s.success())
    };
    match (run("VACUUM ANALYZE"), run("CHECKPOINT")) {
        (true, true) => "both",
        (true, false) => "vacuum_analyze_only",
        (false, true) => "checkpoint_only",
        (false, false) => "neither",
    }
}

/// A WAL position of the server (`pg_current_wal_lsn()`), as text and in bytes.
struct Lsn {
    text: String,
    bytes: i64,
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn pg_wal_lsn(url: &str) -> Lsn {
    let out = std::process::Command::new("psql")
        .args(["-qtA", "-F", " ", url, "-c"])
        .arg("SELECT pg_current_wal_lsn(), pg_current_wal_lsn() - '0/0'")
        .output()
        .expect("run psql");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    Lsn {
        text: it.next().unwrap_or_default().to_string(),
        bytes: it.next().and_then(|b| b.parse().ok()).unwrap_or(0),
    }
}

/// The CPU time (user and system) of every `postgres` process on this machine, in ms: the
/// server's own work when it runs here (0 when it does not).
fn server_cpu_ms() -> i64 {
    let tick = 100; // USER_HZ: clock ticks per second of /proc/PID/stat
    let mut total = 0i64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ... utime(14) stime(15): after the closing parenthesis.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        total += n(11) + n(12);
    }
    total * 1000 / tick
}

fn median<T: Ord + Copy>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// The instant of measured tick `k`.
fn batch_instant(t0: DateTime<Utc>, k: usize) -> DateTime<Utc> {
    t0 + Duration::minutes(SPACING_MINUTES * k as i64)
}

fn open_app(dir: &Path, now: DateTime<Utc>, url: &str) -> App {
    std::fs::write(dir.join("customers.toml"), REGISTRY).unwrap();
    let text = format!(
        "[database]\nurl = \"{url}\"\n[inbound]\nmaildir = \"inbox\"\n\
         [registry]\npath = \"customers.toml\"\n[outbound]\ndir = \"outbox\"\n"
    );
    let cfg =
        Config::from_toml(&text, dir, ConfigSource::File(dir.join("ticketgate.toml"))).unwrap();
    App::open(cfg, Arc::new(ManualClock::new(now))).unwrap()
}

/// Every due timer fired exactly once and did its work (an escalation or a reminder), none
/// failed or found itself no longer applicable.
fn check(fired: &[Fired], due: usize) {
    assert_eq!(fired.len(), due, "every due timer fires, and only those");
    let escalations = fired
        .iter()
        .filter(|f| f.timer == SLA && f.action.starts_with("response target missed"))
        .count();
    let reminders = fired
        .iter()
        .filter(|f| f.timer == FOLLOWUP && f.action.starts_with("reminder 1 of"))
        .count();
    assert_eq!(
        (escalations, reminders),
        (due.div_ceil(2), due / 2),
        "unexpected actions: {:?}",
        fired
            .iter()
            .find(|f| !f.action.starts_with("response") && !f.action.starts_with("reminder"))
    );
}

/// A small deterministic generator (SplitMix64): the same database every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn secs_below(&mut self, d: Duration) -> Duration {
        Duration::seconds(self.below(d.num_seconds().max(1) as u64) as i64)
    }
}

/// What a generated ticket is waiting for.
#[derive(Clone, Copy)]
enum Kind {
    /// Status new, clock running, due in the future.
    Running,
    /// Waiting on the customer, next reminder in the future.
    Waiting,
    /// Status new, clock running and already past due: escalates at the tick.
    Overdue,
    /// Waiting on the customer, reminder due: sent at the tick.
    ReminderDue,
}

/// Writes `open` tickets with their timers in one transaction. `TICKS * due` of them (every
/// `open / (TICKS * due)`-th) have a timer due at or before one of the measured ticks'
/// instants (less than the spacing before it): `due` for each tick, alternately an overdue
/// clock and a reminder. All other timers are due after the last measured tick.
fn populate(app: &mut App, open: usize, due: usize, t0: DateTime<Utc>) {
    let registry = app.pipeline.registry();
    let plans: Vec<Arc<Plan>> = CUSTOMERS.iter().map(|c| registry.plan(c.2)).collect();
    let stride = open / (TICKS * due);
    let mut rng = Rng(0x7469_636b);
    let mut conn = app.store().unwrap();
    // A batch transaction: on PostgreSQL its rows are written as sets.
    let mut tx = conn.write_batch().unwrap();
    let mut made = 0;
    for i in 0..open {
        let (kind, now) = if i.is_multiple_of(stride) && made < TICKS * due {
            let k = made;
            made += 1;
            let kind = if (k / TICKS).is_multiple_of(2) {
                Kind::Overdue
            } else {
                Kind::ReminderDue
            };
            (kind, batch_instant(t0, k % TICKS))
        } else if rng.below(10) < 6 {
            (Kind::Running, t0)
        } else {
            (Kind::Waiting, t0)
        };
        let c = rng.below(CUSTOMERS.len() as u64) as usize;
        let (t, timer) = ticket(i, &CUSTOMERS[c], &plans[c], kind, now, &mut rng);
        let later = batch_instant(t0, TICKS);
        match kind {
            Kind::Running | Kind::Waiting => assert!(timer.1 > later, "due after the last tick"),
            _ => assert!(
                timer.1 <= now && timer.1 > now - Duration::minutes(SPACING_MINUTES),
                "due just before its tick"
            ),
        }
        let id = tx.insert_ticket(&t).unwrap();
        tx.set_timer(id, timer.0, timer.1).unwrap();
    }
    assert_eq!(made, TICKS * due);
    tx.commit().unwrap();
}

fn ticket(
    i: usize,
    customer: &(&str, &str, &str, &str),
    plan: &Plan,
    kind: Kind,
    now: DateTime<Utc>,
    rng: &mut Rng,
) -> (TicketRow, (&'static str, DateTime<Utc>)) {
    let (id, key, _, domain) = *customer;
    let cal = &plan.calendar;
    let business = plan.calendar_name != "24/7";
    let interval = plan.reminders.interval;
    let spacing = Duration::minutes(SPACING_MINUTES);
    let mut t = TicketRow {
        id: 0,
        customer: id.to_string(),
        support_key: key.to_string(),
        plan: plan.name.clone(),
        language: plan.language.clone(),
        profile: plan.profile,
        issue_type: "incident".into(),
        status: ticketgate::workflow::Status::New,
        severity: 3,
        stated_severity: None,
        subject: format!("{} (#{})", SUBJECTS[i % SUBJECTS.len()], 1000 + i),
        requester: format!("user{i}@{domain}"),
        requester_name: Some(format!("User {i}")),
        reason: None,
        parent_id: None,
        missing_info: Vec::new(),
        followup_base_at: None,
        followup_stage: 0,
        survey_score: None,
        sla: SlaState::default(),
        created_at: now,
        updated_at: now,
    };
    let timer = match kind {
        Kind::Running | Kind::Overdue => {
            let sev = match kind {
                // Targets of 2h or more: due after the measured ticks.
                Kind::Running => 2 + rng.below(2) as u8,
                _ if business => 1,
                _ => 1 + rng.below(2) as u8,
            };
            let target = plan.target_secs(sev).expect("severities 1-3 have targets");
            let started = match kind {
                // Less than half the target ago (wall time, so also in working time).
                Kind::Running => {
                    now - rng.secs_below(Duration::seconds(target.min(7200) / 2))
                        - Duration::seconds(1)
                }
                // The target plus less than the spacing ago: on the business calendar that
                // is still working time (Tuesday from 11:55 in Chicago for ticks from 14:00).
                _ => now - Duration::seconds(target) - rng.secs_below(spacing),
            };
            let due_at = cal.add(started, Duration::seconds(target));
            match kind {
                Kind::Running => assert!(due_at > now, "a running clock due in the future"),
                _ => assert!(due_at <= now, "an overdue clock"),
            }
            t.severity = sev;
            t.stated_severity =
                (sev <= 2).then(|| ["Critical", "Major"][usize::from(sev) - 1].into());
            t.sla = SlaState {
                target_secs: Some(target),
                started_at: Some(started),
                running_since: Some(started),
                elapsed_secs: 0,
                due_at: Some(due_at),
                responded_at: None,
                breached_at: None,
            };
            t.created_at = started;
            t.updated_at = started;
            (SLA, due_at)
        }
        Kind::Waiting | Kind::ReminderDue => {
            let base = match kind {
                // Waiting for less than half the interval (wall time).
                Kind::Waiting => {
                    now - rng.secs_below(interval.min(Duration::days(1)) / 2) - Duration::seconds(1)
                }
                // Four days before the tick on a business calendar: from Friday 13:55,
                // 18 working hours (2d) later is the Tuesday tick; two days on 24/7; minus
                // less than the spacing.
                _ if business => now - Duration::days(4) - rng.secs_below(spacing),
                _ => now - interval - rng.secs_below(spacing),
            };
            let due_at = cal.add(base, interval);
            match kind {
                Kind::Waiting => assert!(due_at > now, "a reminder due in the future"),
                _ => assert!(due_at <= now, "a reminder due"),
            }
            t.status = ticketgate::workflow::Status::WaitingOnCustomer;
            t.followup_base_at = Some(base);
            t.followup_stage = 0;
            let target = plan.target_secs(t.severity);
            if business && i.is_multiple_of(2) {
                // Incomplete request: the clock has not started.
                t.missing_info = vec!["Product version".into(), "Environment".into()];
                t.sla = SlaState {
                    target_secs: target,
                    ..SlaState::default()
                };
                t.created_at = base;
            } else {
                // The agent answered and asked for logs: clock paused, responded.
                let opened = base - Duration::hours(1);
                t.sla = SlaState {
                    target_secs: target,
                    started_at: Some(opened),
                    running_since: None,
                    elapsed_secs: cal.working_between(opened, base).num_seconds(),
                    due_at: None,
                    responded_at: Some(base),
                    breached_at: None,
                };
                t.created_at = opened;
            }
            t.updated_at = base;
            (FOLLOWUP, due_at)
        }
    };
    (t, timer)
}

/// Live bytes and high-water mark of the Rust heap, counted by [`Counting`].
static HEAP_LIVE: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

/// The daemon's allocator (mimalloc, as in src/main.rs), counting live bytes, so the tick's
/// own peak shows even when the allocator reuses memory freed earlier (which RSS does not
/// see).
struct Counting;

static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn grew(n: usize) {
    let live = HEAP_LIVE.fetch_add(n, Ordering::Relaxed) + n;
    HEAP_PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `INNER`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { INNER.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { INNER.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `INNER`, with `layout`.
        unsafe { INNER.dealloc(ptr, layout) };
        HEAP_LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` obeys the caller's contract.
        let p = unsafe { INNER.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                HEAP_LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// SQLite's own allocations (not Rust's): in use now, and the high-water mark, resetting it
/// to the current use when `reset`.
fn sqlite_mem(reset: bool) -> (i64, i64) {
    // SAFETY: both calls only read (and with 1, reset) SQLite's global memory counters.
    unsafe {
        (
            rusqlite::ffi::sqlite3_memory_used(),
            rusqlite::ffi::sqlite3_memory_highwater(i32::from(reset)),
        )
    }
}

/// Memory before the tick; the peaks are reset so that they are the tick's own.
struct MemStart {
    rss_kb: i64,
    heap: usize,
    sqlite: i64,
}

struct MemUse {
    rss_before_kb: i64,
    /// VmRSS after minus before.
    rss_growth_kb: i64,
    /// Peak VmRSS during the tick minus VmRSS before.
    hwm_growth_kb: i64,
    /// Peak of live Rust heap during the tick, above the level before.
    heap_peak_kb: i64,
    /// Rust heap still live after the tick (its result dropped), above the level before.
    heap_retained_kb: i64,
    /// Peak of SQLite's allocations during the tick, above the level before.
    sqlite_peak_kb: i64,
}

impl MemUse {
    fn max(all: &[MemUse]) -> MemUse {
        let m = |f: fn(&MemUse) -> i64| all.iter().map(f).max().unwrap_or(0);
        MemUse {
            rss_before_kb: m(|u| u.rss_before_kb),
            rss_growth_kb: m(|u| u.rss_growth_kb),
            hwm_growth_kb: m(|u| u.hwm_growth_kb),
            heap_peak_kb: m(|u| u.heap_peak_kb),
            heap_retained_kb: m(|u| u.heap_retained_kb),
            sqlite_peak_kb: m(|u| u.sqlite_peak_kb),
        }
    }
}

impl MemStart {
    fn now() -> MemStart {
        // "5" resets VmHWM to the current VmRSS (Linux 4.0+).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let heap = HEAP_LIVE.load(Ordering::Relaxed);
        HEAP_PEAK.store(heap, Ordering::Relaxed);
        let (sqlite, _) = sqlite_mem(true);
        MemStart {
            rss_kb: proc_status_kb("VmRSS:"),
            heap,
            sqlite,
        }
    }

    fn finish(self) -> MemUse {
        let kb = |bytes: i64| bytes / 1024;
        let heap_peak = HEAP_PEAK.load(Ordering::Relaxed) as i64;
        let heap_live = HEAP_LIVE.load(Ordering::Relaxed) as i64;
        let (_, sqlite_peak) = sqlite_mem(false);
        MemUse {
            rss_before_kb: self.rss_kb,
            rss_growth_kb: proc_status_kb("VmRSS:") - self.rss_kb,
            hwm_growth_kb: proc_status_kb("VmHWM:") - self.rss_kb,
            heap_peak_kb: kb(heap_peak - self.heap as i64),
            heap_retained_kb: kb(heap_live - self.heap as i64),
            sqlite_peak_kb: kb(sqlite_peak - self.sqlite),
        }
    }
}

/// A `kB` field of /proc/self/status (-1 when missing).
fn proc_status_kb(name: &str) -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// Time this thread has spent on a CPU, in ns (0 when the kernel does not say).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn file_mb(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// Runs `PRAGMA wal_checkpoint(MODE)` through a second connection; returns the frames in
/// the WAL. RESTART copies everything back and makes the next writer start the log over.
fn wal_checkpoint(db: &Path, mode: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    let (busy, log, done): (i64, i64, i64) = conn
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((busy, done), (0, log), "the checkpoint ran to the end");
    log
}

/// How SQLite runs the tick's query (the text of `WriteTx::due_timers` in
/// src/store/sqlite.rs): it must search the `timers_due` index, not scan the table.
fn explain_due_query(db: &Path, now: DateTime<Utc>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT ticket_id, kind, due_at FROM timers \
             WHERE due_at <= ?1 ORDER BY due_at, ticket_id LIMIT ?2",
        )
        .unwrap();
    let plan: Vec<String> = st
        .query_map(
            rusqlite::params![ticketgate::clock::to_rfc3339(now), 1000],
            |r| r.get::<_, String>(3),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("; ");
    println!("tick_due_query_plan {plan}");
    println!(
        "tick_due_query_uses_index {}",
        if plan.contains("timers_due") && !plan.contains("SCAN") {
            "yes"
        } else {
            "no"
        }
    );
}
