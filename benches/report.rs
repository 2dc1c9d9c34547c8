//! KPI report benchmark: `cargo bench --bench report [-- TICKETS]` (default 10,000).
//!
//! Issue requirement: a one-year report for one customer with 10,000 tickets in under
//! 200 ms.
//!
//! On a fresh SQLite database (WAL, `synchronous = FULL`) in a temporary folder — and on
//! PostgreSQL too when `TICKETGATE_BENCH_DATABASE_URL` names a server (a database of its own
//! is created there and dropped) — it writes, through the store's write transaction
//! (`insert_ticket`, `insert_history`, `insert_escalation`), TICKETS tickets of the measured
//! customer spread over the year before the report's last day, and as many for each of four
//! other customers (so the customer's rows are a range of the index, not the whole table).
//! Half the customers are on a Chicago business calendar (the measured one too: its
//! business time is the costlier to count), half 24/7. Every ticket has a first response
//! 0–3 days after creation, 80 % a resolution 0–20 days after it (every fifth of those
//! reopened and resolved again), 15 % an escalation, 40 % a survey score.
//!
//! Then it runs the whole service (`services::reports::report`: the indexed query on the
//! store's pool and the figures) RUNS (11) times and prints the median and the slowest, and
//! the query and the computation alone, one figure a line, `name value`. The report's ticket
//! count is checked, so the figure cannot come from an empty report.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ticketgate::app::App;
use ticketgate::clock::ManualClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::registry::Plan;
use ticketgate::services::reports;
use ticketgate::store::{SlaState, TicketRow};
use ticketgate::workflow::{Profile, Status};

const DEFAULT_TICKETS: usize = 10_000;
const RUNS: usize = 11;
const TARGET_MS: f64 = 200.0;

const REGISTRY: &str = r#"
[calendars.chicago]
time_zone = "America/Chicago"
hours = { mon = "08:00-17:00", tue = "08:00-17:00", wed = "08:00-17:00", thu = "08:00-17:00", fri = "08:00-17:00" }
holidays = ["2025-12-25", "2026-01-01", "2026-05-25", "2026-07-03", "2026-09-07", "2026-11-26"]
day_length = "9h"

[plans.business]
profile = "wso2"
calendar = "chicago"
response_targets = { 1 = "2h", 2 = "1d", 3 = "3d", 4 = "5d" }

[plans.premium]
profile = "wso2"
calendar = "24/7"
response_targets = { 1 = "30m", 2 = "2h", 3 = "8h", 4 = "24h" }

[[customers]]
id = "acme"
name = "ACME Corp"
plan = "business"
allowed_senders = ["@acme.example"]
keys = [{ key = "ACME-0000-0000-0001" }]

[[customers]]
id = "globex"
plan = "premium"
keys = [{ key = "GLBX-0000-0000-0002" }]

[[customers]]
id = "initech"
plan = "business"
keys = [{ key = "INIT-0000-0000-0003" }]

[[customers]]
id = "umbrella"
plan = "premium"
keys = [{ key = "UMBR-0000-0000-0004" }]

[[customers]]
id = "hooli"
plan = "premium"
keys = [{ key = "HOOL-0000-0000-0005" }]
"#;

const CUSTOMERS: [(&str, &str); 5] = [
    ("acme", "business"),
    ("globex", "premium"),
    ("initech", "business"),
    ("umbrella", "premium"),
    ("hooli", "premium"),
];

/// xorshift64*: the same data on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn secs_below(&mut self, d: Duration) -> Duration {
        Duration::seconds(self.below(d.num_seconds().max(1) as u64) as i64)
    }
}

fn main() {
    let tickets: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_TICKETS);
    let to = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let from = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap();
    let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();

    println!("report_tickets {tickets}");
    println!(
        "report_build {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("tg.db").display());
    run("sqlite", &url, dir.path(), tickets, from, to, now);
    if let Ok(admin) = std::env::var("TICKETGATE_BENCH_DATABASE_URL")
        && !admin.is_empty()
    {
        let name = format!("tg_bench_report_{}", std::process::id());
        pg_admin(&admin, &format!("CREATE DATABASE {name}"));
        let url = with_database(&admin, &name);
        let pg_dir = tempfile::tempdir().unwrap();
        run("postgres", &url, pg_dir.path(), tickets, from, to, now);
        pg_admin(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
    }
    println!("report_target_ms {TARGET_MS}");
}

fn run(
    backend: &str,
    url: &str,
    dir: &std::path::Path,
    tickets: usize,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) {
    let app = open_app(dir, url, now);
    let t = Instant::now();
    populate(&app, tickets, to);
    println!(
        "report_{backend}_populate_s {:.1}",
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = rt
            .block_on(reports::report(&app, "acme", from, to))
            .unwrap();
        times.push(t.elapsed());
        report = Some(r);
    }
    let r = report.unwrap();
    assert_eq!(
        r.tickets as usize, tickets,
        "every ticket of the year counted"
    );
    assert!(r.time_to_resolution.count > 0 && r.survey.count > 0 && r.escalations.total > 0);

    // The parts: the store's query, then the figures (business time counted per ticket).
    let registry = app.pipeline.registry();
    let customer = registry.customer("acme").unwrap().clone();
    let (start, end) = reports::bounds(reports::time_zone(&customer.plan), from, to);
    let mut query = Vec::new();
    let mut compute = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let rows = app
            .store()
            .unwrap()
            .report_tickets("acme", start, end)
            .unwrap();
        query.push(t.elapsed());
        let t = Instant::now();
        let again = reports::compute(&customer, &registry, from, to, &rows);
        compute.push(t.elapsed());
        assert_eq!(again, r);
    }
    times.sort();
    query.sort();
    compute.sort();
    let ms = |d: StdDuration| d.as_secs_f64() * 1000.0;
    let median = ms(times[RUNS / 2]);
    println!("report_{backend}_median_ms {median:.1}");
    println!("report_{backend}_max_ms {:.1}", ms(times[RUNS - 1]));
    println!(
        "report_{backend}_query_median_ms {:.1}",
        ms(query[RUNS / 2])
    );
    println!(
        "report_{backend}_compute_median_ms {:.1}",
        ms(compute[RUNS / 2])
    );
    println!(
        "report_{backend}_target_met {}",
        if median < TARGET_MS { "yes" } else { "no" }
    );
}

fn open_app(dir: &std::path::Path, url: &str, now: DateTime<Utc>) -> App {
    std::fs::write(dir.join("customers.toml"), REGISTRY).unwrap();
    let text = format!(
        "[database]\nurl = \"{url}\"\n[inbound]\nmaildir = \"inbox\"\n\
         [registry]\npath = \"customers.toml\"\n[outbound]\ndir = \"outbox\"\n"
    );
    let cfg =
        Config::from_toml(&text, dir, ConfigSource::File(dir.join("ticketgate.toml"))).unwrap();
    App::open(cfg, Arc::new(ManualClock::new(now))).unwrap()
}

/// TICKETS tickets for each customer, created over the year up to `to`, in creation order
/// (as they would be written), in one transaction per 10,000.
fn populate(app: &App, tickets: usize, to: NaiveDate) {
    let registry = app.pipeline.registry();
    let plans: Vec<Arc<Plan>> = CUSTOMERS.iter().map(|c| registry.plan(c.1)).collect();
    let end = to.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let year = Duration::days(364);
    let total = tickets * CUSTOMERS.len();
    let mut rng = Rng(0x7265_706f_7274);
    let mut conn = app.store().unwrap();
    let mut done = 0;
    while done < total {
        let mut tx = conn.write().unwrap();
        for i in done..(done + 10_000).min(total) {
            let c = i % CUSTOMERS.len();
            let plan = &plans[c];
            let cal = &plan.calendar;
            // Spread evenly over the year, oldest first.
            let created = end - year + year * (i as i32) / (total as i32);
            let severity = 1 + rng.below(4) as u8;
            let target = plan.target_secs(severity);
            let responded = cal.add(created, rng.secs_below(Duration::days(3)));
            let elapsed = cal.working_between(created, responded).num_seconds();
            let breached = target.is_some_and(|t| elapsed > t);
            let resolved =
                (rng.below(10) < 8).then(|| responded + rng.secs_below(Duration::days(20)));
            let t = TicketRow {
                id: 0,
                customer: CUSTOMERS[c].0.to_string(),
                support_key: "KEY".into(),
                plan: plan.name.clone(),
                language: "en".into(),
                profile: Profile::Wso2,
                issue_type: ["incident", "incident", "query", "task"][rng.below(4) as usize].into(),
                status: if resolved.is_some() {
                    Status::Closed
                } else {
                    Status::InProgress
                },
                severity,
                stated_severity: None,
                subject: format!("Ticket {i}"),
                requester: format!("user{i}@example.test"),
                requester_name: None,
                reason: None,
                parent_id: None,
                missing_info: Vec::new(),
                followup_base_at: None,
                followup_stage: 0,
                survey_score: (resolved.is_some() && rng.below(10) < 5)
                    .then(|| 1 + rng.below(5) as u8),
                sla: SlaState {
                    target_secs: target,
                    started_at: Some(created),
                    running_since: None,
                    elapsed_secs: elapsed,
                    due_at: None,
                    responded_at: Some(responded),
                    breached_at: breached.then_some(responded),
                },
                created_at: created,
                updated_at: resolved.unwrap_or(responded),
            };
            let id = tx.insert_ticket(&t).unwrap();
            tx.insert_history(id, responded, "new", "in_progress", "agent", None)
                .unwrap();
            if let Some(r) = resolved {
                tx.insert_history(id, r, "in_progress", "resolved", "agent", None)
                    .unwrap();
                if rng.below(5) == 0 {
                    let again = r + Duration::hours(2);
                    tx.insert_history(id, again, "resolved", "reopened", "customer", None)
                        .unwrap();
                    tx.insert_history(
                        id,
                        again + Duration::hours(5),
                        "reopened",
                        "resolved",
                        "agent",
                        None,
                    )
                    .unwrap();
                }
                tx.insert_history(
                    id,
                    r + Duration::days(3),
                    "resolved",
                    "closed",
                    "system",
                    None,
                )
                .unwrap();
            }
            if rng.below(100) < 15 {
                tx.insert_escalation(id, created + Duration::hours(2), severity, created, 3600)
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        done = (done + 10_000).min(total);
    }
}

/// Runs `sql` on the server at `url` (CREATE / DROP DATABASE).
fn pg_admin(url: &str, sql: &str) {
    use sqlx::Connection;
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("`{sql}` failed: {e:?}"));
            let _ = c.close().await;
        });
    })
    .join()
    .unwrap();
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}
