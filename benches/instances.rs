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
//! `[-- N ROUNDS]`: the pair is run ROUNDS times (default 3); each round's figures are
//! printed, and the summary lines are the round with the median ratio, with the lowest and
//! highest ratio beside it.
//!
//! Figures are printed one per line, `name value`.

#[path = "support/workload.rs"]
mod workload;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workload::Workload;

const DEFAULT_MAILS: usize = 5_000;
/// Rounds of one-then-two; the summary is the median round's.
const DEFAULT_ROUNDS: usize = 3;

fn main() {
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let n = numbers.next().unwrap_or(DEFAULT_MAILS);
    let rounds = numbers.next().unwrap_or(DEFAULT_ROUNDS).max(1);
    let Ok(base) = std::env::var("TICKETGATE_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TICKETGATE_TEST_DATABASE_URL"))
    else {
        println!("skipped: set TICKETGATE_BENCH_DATABASE_URL to a PostgreSQL server");
        return;
    };
    println!("mails_per_instance {n}");
    println!("rounds {rounds}");
    let mut ratios = Vec::with_capacity(rounds);
    let mut kept = Kept::default();
    for round in 1..=rounds {
        let one = run(&base, n, 1, round, &mut kept);
        let two = run(&base, n, 2, round, &mut kept);
        let (r1, r2) = (
            n as f64 / one.as_secs_f64(),
            2.0 * n as f64 / two.as_secs_f64(),
        );
        println!(
            "round_{round}_one_instance_seconds {:.3}",
            one.as_secs_f64()
        );
        println!("round_{round}_one_instance_rate_per_s {r1:.0}");
        println!(
            "round_{round}_two_instances_seconds {:.3}",
            two.as_secs_f64()
        );
        println!("round_{round}_two_instances_combined_rate_per_s {r2:.0}");
        println!("round_{round}_two_vs_one_instance_ratio {:.3}", r2 / r1);
        ratios.push((r2 / r1, one, two));
    }
    kept.remove(&base);
    // The round with the median ratio gives the summary lines (the names earlier runs
    // printed), so that one slow start of a process does not decide the figure.
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, one, two) = ratios[ratios.len() / 2];
    println!("one_instance_seconds {:.3}", one.as_secs_f64());
    println!(
        "one_instance_rate_per_s {:.0}",
        n as f64 / one.as_secs_f64()
    );
    println!("two_instances_seconds {:.3}", two.as_secs_f64());
    println!(
        "two_instances_combined_rate_per_s {:.0}",
        2.0 * n as f64 / two.as_secs_f64()
    );
    println!("two_vs_one_instance_ratio {ratio:.3}");
    println!(
        "two_vs_one_instance_ratio_min_max {:.3} {:.3}",
        ratios[0].0,
        ratios[ratios.len() - 1].0
    );
}

/// What the runs leave: Maildirs, outbox folders and databases, removed only after the last
/// round. Deleting tens of thousands of files between runs made the next run's file creation
/// slow (ext4 skips recently deleted inodes when it allocates one: `recently_deleted` was the
/// top of a `perf` profile), and the single instance's time swung 2.7–11.8 s for the same
/// mails.
#[derive(Default)]
struct Kept {
    dirs: Vec<tempfile::TempDir>,
    databases: Vec<String>,
}

impl Kept {
    fn remove(self, base: &str) {
        drop(self.dirs);
        for name in self.databases {
            psql(
                base,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// `instances` daemons, each draining `n` mails of its own, into a fresh database; the time
/// until the last one exits.
fn run(base: &str, n: usize, instances: usize, round: usize, kept: &mut Kept) -> Duration {
    let name = format!("tg_bench_{}_{round}_{instances}", std::process::id());
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
    // The prepared Maildirs, the new database and what the round before deleted are still
    // being written back; without this the first fsync of the file transport waits for all
    // of it, and the single instance's time swung 2.7–8.4 s for the same mails.
    let synced = Command::new("sync").status().expect("sync (coreutils)");
    assert!(synced.success(), "sync failed");
    let busy_before = cpu_jiffies();
    let children_before = children_cpu_ticks();
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
    // How much of the machine the run used (all processes: the daemons and the server), so
    // that a ratio can be read against what was left over.
    if let (Some((b0, t0)), Some((b1, t1))) = (busy_before, cpu_jiffies())
        && t1 > t0
    {
        println!(
            "round_{round}_instances_{instances}_machine_busy_pct {:.0}",
            100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
        );
    }
    // The daemons' own CPU (user + system; waited for, so counted as this process's
    // children's); the rest of the machine's busy share is mostly the server's.
    if let (Some(c0), Some(c1)) = (children_before, children_cpu_ticks()) {
        println!(
            "round_{round}_instances_{instances}_daemon_cpu_us_per_mail {:.0}",
            (c1 - c0) as f64 * 1e6 / ticks_per_second() / (n * instances) as f64
        );
    }
    // Batches a daemon had to do again (a write conflict between the instances, or a batch
    // prepared on one that conflicted, ADRs 0019, 0022), and of those the ones done one
    // savepoint per mail under the writers' lock.
    let logs: Vec<String> = dirs
        .iter()
        .map(|d| std::fs::read_to_string(d.path().join("daemon.log")).unwrap_or_default())
        .collect();
    let count = |what: &str| logs.iter().map(|l| l.matches(what).count()).sum::<usize>();
    println!(
        "round_{round}_instances_{instances}_batches_done_again {}",
        count("doing it again")
    );
    println!(
        "round_{round}_instances_{instances}_batches_done_mail_by_mail {}",
        count("doing the batch mail by mail")
    );
    kept.dirs.extend(dirs);
    kept.databases.push(name);
    took
}

/// (busy, total) jiffies over all CPUs from `/proc/stat` (Linux); `None` elsewhere.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?; // idle + iowait
    Some((total - idle, total))
}

/// User + system CPU of this process's waited-for children, in clock ticks (`/proc/self/stat`
/// fields 16 and 17); `None` off Linux.
fn children_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is f[0], so field k is f[k - 3].
    Some(f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?)
}

/// Clock ticks per second of `/proc` times: 100 on Linux, where `getconf CLK_TCK` says it.
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
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
