//! Several instances on one PostgreSQL: what a second instance adds.
//! `TICKETGATE_BENCH_DATABASE_URL=postgres://… cargo bench --bench instances [-- N]` (the
//! variable the other benches read; `TICKETGATE_TEST_DATABASE_URL`, the tests' one, is taken
//! when it is not set).
//!
//! N generated mails (default 5,000; the workload of `benches/pipeline.rs`: 70 % new
//! requests, 30 % threaded replies) in a Maildir, drained by the real binary
//! (`ticketgate run --once`, file transport) into a fresh database: first one instance with
//! N mails, then two instances at once, each with N other mails in its own Maildir, into
//! another fresh database. Printed: each rate and `two_vs_one_instance_ratio` (combined rate
//! of two over the rate of one). Without a PostgreSQL URL it says so and measures nothing.
//!
//! Figures are printed one per line, `name value`.

#[path = "support/workload.rs"]
mod workload;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workload::Workload;

const DEFAULT_MAILS: usize = 5_000;

fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAILS);
    let Ok(base) = std::env::var("TICKETGATE_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TICKETGATE_TEST_DATABASE_URL"))
    else {
        println!("skipped: set TICKETGATE_BENCH_DATABASE_URL to a PostgreSQL server");
        return;
    };
    println!("mails_per_instance {n}");
    let one = run(&base, n, 1);
    let two = run(&base, n, 2);
    let (r1, r2) = (
        n as f64 / one.as_secs_f64(),
        2.0 * n as f64 / two.as_secs_f64(),
    );
    println!("one_instance_seconds {:.3}", one.as_secs_f64());
    println!("one_instance_rate_per_s {r1:.0}");
    println!("two_instances_seconds {:.3}", two.as_secs_f64());
    println!("two_instances_combined_rate_per_s {r2:.0}");
    println!("two_vs_one_instance_ratio {:.3}", r2 / r1);
}

/// `instances` daemons, each draining `n` mails of its own, into a fresh database; the time
/// until the last one exits.
fn run(base: &str, n: usize, instances: usize) -> Duration {
    let name = format!("tg_bench_{}_{instances}", std::process::id());
    psql(base, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(base, &format!("CREATE DATABASE {name}"));
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("TICKETGATE_TEST_DATABASE_URL has no database part: {base}"),
    };
    let dirs: Vec<tempfile::TempDir> = (0..instances)
        .map(|i| {
            let work = Workload::generate(n, 0x1257_a2ce_0000 + i as u64);
            let dir = tempfile::tempdir().expect("temp dir");
            prepare(dir.path(), &work, &url);
            dir
        })
        .collect();
    // Migrate first, so that the timed runs only ingest.
    ticketgate(dirs[0].path(), &["migrate"]);
    let start = Instant::now();
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            Command::new(env!("CARGO_BIN_EXE_ticketgate"))
                .current_dir(d.path())
                .args(["--config", "ticketgate.toml", "run", "--once"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.path().join("daemon.log")).expect("log file"))
                .spawn()
                .expect("start ticketgate")
        })
        .collect();
    for mut c in children {
        assert!(
            c.wait().expect("wait").success(),
            "ticketgate run --once failed"
        );
    }
    let took = start.elapsed();
    // Batches a daemon had to do again one savepoint per mail (a write conflict between
    // the instances, or a batch prepared on one that conflicted, ADR 0019).
    let again: usize = dirs
        .iter()
        .map(|d| {
            std::fs::read_to_string(d.path().join("daemon.log"))
                .unwrap_or_default()
                .matches("doing it again")
                .count()
        })
        .sum();
    println!("instances_{instances}_batches_done_again {again}");
    drop(dirs);
    psql(
        base,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    took
}

fn prepare(dir: &Path, work: &Workload, url: &str) {
    std::fs::write(dir.join("customers.toml"), work.registry_toml()).expect("registry");
    std::fs::write(
        dir.join("ticketgate.toml"),
        format!(
            "[database]\nurl = \"{url}\"\n[inbound]\nmaildir = \"inbox\"\n\
             [outbound]\ntransport = \"file\"\ndir = \"outbox\"\n\
             [registry]\npath = \"customers.toml\"\n[log]\nlevel = \"warn\"\n"
        ),
    )
    .expect("config");
    let md = ticketgate::ingest::Maildir::open(&dir.join("inbox")).expect("maildir");
    for (i, m) in work.mails.iter().enumerate() {
        md.deliver(&format!("1795344000.M{i:08}P1.bench"), &m.bytes)
            .expect("deliver");
    }
}

fn ticketgate(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .current_dir(dir)
        .args(["--config", "ticketgate.toml"])
        .args(args)
        .output()
        .expect("run ticketgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-q", "-c", sql])
        .output()
        .expect("psql (Debian postgresql-client)");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
