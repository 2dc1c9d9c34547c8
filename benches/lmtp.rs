//! LMTP delivery benchmark: Postfix → LMTP → committed ticket with its acknowledgement in the
//! outbox. `cargo bench --bench lmtp [-- N] [pipe=M] [inet]` (as root: Postfix's master needs
//! it). `TICKETGATE_BENCH_POSTFIX`: further `main.cf` lines for an experiment.
//!
//! N new requests (default 10,000; the generated mail of `benches/pipeline.rs`, its new
//! requests only, since concurrent LMTP sessions commit in no fixed order and a follow-up
//! names its ticket by number) are submitted over SMTP to a private Postfix
//! (`tests/it/support/postfix.rs`), which holds them in its queue (a `HOLD` access rule on
//! the recipient). Then, timed: `postsuper -H ALL` and `postqueue -f`, and
//! Postfix delivers them over LMTP (the README's production transport, `ticketgate` in
//! `postfix.rs`: up to 64 sessions, no connection caching; a Unix socket) to
//! ticketgate's listener (`ingest::lmtp::serve`, SQLite with durable commits, group commit),
//! until the last delivery is logged as sent (each `250` comes after its commit). Checked:
//! every mail made one ticket and one acknowledgement in the outbox, nothing quarantined.
//!
//! In the same run, on the same mails and fresh databases:
//! - `pipeline`: `Pipeline::process` over in-memory batches of `inbound.batch_size`, what
//!   `benches/pipeline.rs` reports as its end-to-end rate (target: LMTP ≥ 0.5 × this);
//! - `pipe`: `ticketgate ingest`, one process per mail, M mails (default 200; target:
//!   LMTP ≥ 20 × this).
//!
//! Figures are printed one per line, `name value`; targets are printed, not asserted.

#[path = "support/workload.rs"]
mod workload;

#[path = "../tests/it/support/smtp_sink.rs"]
mod smtp_sink;

#[path = "../tests/it/support/postfix.rs"]
mod postfix;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use postfix::Postfix;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticketgate::app::App;
use ticketgate::clock::SystemClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::ingest::lmtp;
use ticketgate::pipeline::{RawMail, Report};
use workload::Workload;

const DEFAULT_MAILS: usize = 10_000;
const DEFAULT_PIPE_MAILS: usize = 200;
const TARGET_VS_PIPELINE: f64 = 0.5;
const TARGET_VS_PIPE: f64 = 20.0;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAILS);
    let m = args
        .iter()
        .find_map(|a| a.strip_prefix("pipe=")?.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PIPE_MAILS)
        .min(n);
    let (work, mails) = requests(n);
    println!("mails {n}");
    println!(
        "mean_mail_bytes {}",
        mails.iter().map(|m| m.bytes.len()).sum::<usize>() / n.max(1)
    );

    let lmtp_rate = through_postfix(&work, &mails);
    let pipeline_rate = pipeline(&work, &mails);
    let pipe_rate = pipe(&work, &mails[..m]);

    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("lmtp_vs_pipeline_ratio {:.3}", lmtp_rate / pipeline_rate);
    println!("lmtp_vs_pipe_ratio {:.1}", lmtp_rate / pipe_rate);
    println!(
        "target_lmtp_ge_{TARGET_VS_PIPELINE}_of_pipeline {}",
        met(lmtp_rate / pipeline_rate >= TARGET_VS_PIPELINE)
    );
    println!(
        "target_lmtp_ge_{TARGET_VS_PIPE:.0}x_pipe {}",
        met(lmtp_rate / pipe_rate >= TARGET_VS_PIPE)
    );
}

/// `n` new requests from the shared workload (follow-ups left out).
fn requests(n: usize) -> (Workload, Vec<RawMail>) {
    let mut size = n + n / 2 + 16;
    loop {
        let work = Workload::generate(size, 0x6c6d_7470_6265_6e63);
        let mails: Vec<RawMail> = work
            .mails
            .iter()
            .filter(|m| !is_followup(&m.bytes))
            .take(n)
            .cloned()
            .collect();
        if mails.len() == n {
            return (work, mails);
        }
        size *= 2;
    }
}

fn is_followup(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.contains("\r\nIn-Reply-To:")
        || head
            .lines()
            .any(|l| l.starts_with("Subject:") && l.contains("[TKT-"))
}

fn config(dir: &Path, work: &Workload, extra: &str) -> Config {
    std::fs::write(dir.join("customers.toml"), work.registry_toml()).expect("registry");
    let toml = format!(
        "[database]\nurl = \"sqlite:{db}\"\n\n\
         [inbound]\nmaildir = \"{inbox}\"\n{extra}\n\
         [outbound]\ntransport = \"file\"\ndir = \"{outbox}\"\n\n\
         [registry]\npath = \"{registry}\"\n\n[log]\nlevel = \"warn\"\n",
        db = dir.join("bench.db").display(),
        inbox = dir.join("inbox").display(),
        outbox = dir.join("outbox").display(),
        registry = dir.join("customers.toml").display(),
    );
    Config::from_toml(&toml, dir, ConfigSource::EmbeddedDefault).expect("bench config")
}

/// Every mail one ticket with one acknowledgement, nothing else.
fn verify(app: &App, n: usize, report: Option<&Report>) {
    let mut s = app.store().expect("store");
    let tickets = s.tickets(usize::MAX / 2).expect("tickets").len();
    assert_eq!(tickets, n, "one ticket per mail");
    let acks = s
        .outbox(usize::MAX / 2)
        .expect("outbox")
        .iter()
        .filter(|o| o.kind == "acknowledgement")
        .count();
    assert_eq!(acks, n, "one acknowledgement per ticket");
    assert!(
        s.quarantine(10).expect("quarantine").is_empty(),
        "nothing quarantined"
    );
    if let Some(r) = report {
        assert_eq!(r.created, n, "{r:?}");
    }
}

fn through_postfix(work: &Workload, mails: &[RawMail]) -> f64 {
    let n = mails.len();
    let dir = tempfile::tempdir().expect("temp dir");
    // The listener on a Unix socket (the README's first example; it cost Postfix less CPU
    // per mail than a loopback port, ADR 0021), or with `inet` among the arguments on a
    // loopback port.
    let listen = if !std::env::args().any(|a| a == "inet") {
        use std::os::unix::fs::PermissionsExt;
        // Postfix's `lmtp` agents (user `postfix`) must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        format!(
            "listen = \"unix:{}\"\nsocket_mode = \"0666\"",
            dir.path().join("lmtp.sock").display()
        )
    } else {
        "listen = \"127.0.0.1:0\"".to_string()
    };
    let cfg = config(
        dir.path(),
        work,
        &format!("[inbound.lmtp]\n{listen}\nmax_connections = 128\n"),
    );
    let app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bound = rt
        .block_on(lmtp::bind(app.cfg.inbound.lmtp.as_ref().expect("lmtp")))
        .expect("bind");
    // Postfix's next-hop syntax: `inet:HOST:PORT` or `unix:PATH`.
    let address = if bound.address.starts_with("unix:") {
        bound.address.clone()
    } else {
        format!("inet:{}", bound.address)
    };
    println!("lmtp_listen {address}");
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = rt.spawn(lmtp::serve(
        bound,
        app.clone(),
        stop.clone(),
        Arc::new(tokio::sync::Notify::new()),
    ));
    // Postfix runs the README's production settings for the transport (`postfix.rs`); here
    // the bench's own lines (hold the mail at submission), then any experiment's lines
    // (`TICKETGATE_BENCH_POSTFIX`, main.cf syntax: a later line overrides an earlier one;
    // `{lmtp}` stands for the listener's address, e.g. to route through the stock `lmtp`
    // transport: `transport_maps = inline:{ support.example.test=lmtp:{lmtp} }`).
    let experiment = std::env::var("TICKETGATE_BENCH_POSTFIX").unwrap_or_default();
    if !experiment.is_empty() {
        println!("postfix_extra {experiment:?}");
    }
    let postfix = Postfix::start(
        &address,
        &format!(
            "smtpd_recipient_restrictions = check_recipient_access inline:{{ support.example.test=HOLD }}, \
             permit_mynetworks, reject\nin_flow_delay = 0s\n{}\n",
            experiment.replace("\\n", "\n").replace("{lmtp}", &address),
        ),
    );
    let start = Instant::now();
    let to = vec!["support@support.example.test"];
    let batch: Vec<(Vec<&str>, String)> = mails
        .iter()
        .map(|m| (to.clone(), String::from_utf8_lossy(&m.bytes).into_owned()))
        .collect();
    for chunk in batch.chunks(1000) {
        postfix.submit(chunk);
    }
    println!(
        "postfix_submit_seconds {:.3}",
        start.elapsed().as_secs_f64()
    );
    // Every mail held in the queue (the cleanup daemon's writes are done).
    let deadline = Instant::now() + Duration::from_secs(600);
    while postfix.queued() < n {
        assert!(Instant::now() < deadline, "mails did not reach the queue");
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu_before = cpu_time();
    let postfix_before = postfix.cpu();
    let start = Instant::now();
    postfix.release_held();
    postfix.flush();
    postfix.wait_log("status=sent", n, Duration::from_secs(3600));
    let elapsed = start.elapsed();
    let cpu_after = cpu_time();
    let postfix_after = postfix.cpu();
    stop.cancel();
    let served = rt.block_on(serving).expect("listener");
    verify(&app, n, Some(&served.inbound));
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("lmtp_end_to_end_seconds {:.3}", elapsed.as_secs_f64());
    println!("lmtp_end_to_end_rate_per_s {rate:.0}");
    println!("lmtp_commits {}", served.batches);
    println!(
        "lmtp_mails_per_commit {:.1}",
        n as f64 / served.batches.max(1) as f64
    );
    // From the end of a mail's data to its outcome (the commit's wait and duration), and by
    // Little's law the mean number of mails waiting for a commit: what Postfix keeps in
    // flight at our end.
    println!(
        "lmtp_commit_wait_us_per_mail {:.0}",
        served.wait_micros as f64 / n as f64
    );
    println!(
        "lmtp_mean_mails_in_flight {:.1}",
        served.wait_micros as f64 / 1e6 / elapsed.as_secs_f64()
    );
    println!("lmtp_peak_sessions {}", served.peak_sessions);
    if let (Some(a), Some(b)) = (postfix_before, postfix_after) {
        // Postfix's side: qmgr, the lmtp agents, trivial-rewrite, the log daemon.
        println!(
            "lmtp_postfix_cpu_us_per_mail {:.0}",
            (b - a).as_secs_f64() * 1e6 / n as f64
        );
    }
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        // This process only (ticketgate's side; Postfix's processes are not counted).
        println!(
            "lmtp_ticketgate_cpu_us_per_mail {:.0}",
            (b - a).as_secs_f64() * 1e6 / n as f64
        );
    }
    rate
}

/// `Pipeline::process` over in-memory batches, as `benches/pipeline.rs` measures its
/// end-to-end rate.
fn pipeline(work: &Workload, mails: &[RawMail]) -> f64 {
    let n = mails.len();
    let dir = tempfile::tempdir().expect("temp dir");
    let app = App::open(config(dir.path(), work, ""), Arc::new(SystemClock)).expect("open app");
    let batch = app.cfg.inbound.batch_size;
    let start = Instant::now();
    let mut report = Report::default();
    for chunk in mails.chunks(batch) {
        let (r, _) = app
            .pipeline
            .process(&mut *app.store().expect("store"), chunk)
            .expect("process a batch");
        report.add(&r);
    }
    let elapsed = start.elapsed();
    verify(&app, n, Some(&report));
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("pipeline_seconds {:.3}", elapsed.as_secs_f64());
    println!("pipeline_rate_per_s {rate:.0}");
    rate
}

/// `ticketgate ingest`, one process per mail, as an MTA pipe runs it.
fn pipe(work: &Workload, mails: &[RawMail]) -> f64 {
    let n = mails.len();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(dir.path(), work, "");
    let text = format!(
        "[database]\nurl = \"{}\"\n[inbound]\nmaildir = \"inbox\"\n[outbound]\ndir = \"outbox\"\n\
         [registry]\npath = \"customers.toml\"\n[log]\nlevel = \"warn\"\n",
        &*cfg.database_url
    );
    let file = dir.path().join("ticketgate.toml");
    std::fs::write(&file, text).expect("config");
    // Created and migrated before the clock starts, as an installed system's is.
    drop(App::open(cfg, Arc::new(SystemClock)).expect("open app"));
    let start = Instant::now();
    for m in mails {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(&file)
            .arg("ingest")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ticketgate ingest");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &m.bytes)
            .expect("write the mail");
        let status = child.wait().expect("wait");
        assert!(status.success(), "ingest exited {status}");
    }
    let elapsed = start.elapsed();
    let cfg = Config::from_file(&file).expect("config");
    verify(
        &App::open(cfg, Arc::new(SystemClock)).expect("open app"),
        n,
        None,
    );
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("pipe_mails {n}");
    println!("pipe_seconds {:.3}", elapsed.as_secs_f64());
    println!("pipe_rate_per_s {rate:.1}");
    rate
}

/// User + system CPU time of this process, all threads (Linux `/proc/self/stat`).
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = text.get(text.rfind(')')? + 2..)?;
    let mut f = rest.split(' ').skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}
