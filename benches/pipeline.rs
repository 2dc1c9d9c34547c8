//! Throughput benchmark for the inbound pipeline:
//! `cargo bench --bench pipeline [-- N] [batch=SIZE] [pipeline] [maildir]`.
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

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ticketgate::app::App;
use ticketgate::clock::SystemClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::ingest::Maildir;
use ticketgate::parse::{self, Limits, Patterns};
use ticketgate::pipeline::{RawMail, Report};
use ticketgate::store::Store;

const DEFAULT_MAILS: usize = 20_000;
const CUSTOMERS: usize = 50;
const FOLLOWUP_PERCENT: u64 = 30;
const TARGET_RATE: f64 = 10_000.0;
const TARGET_RATIO: f64 = 0.25;

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
        rates.push(("pipeline", pipeline_batches(&work, parse_rate)));
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

const PHASES: &[&str] = &["pipeline", "maildir"];

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

/// `Pipeline::process` over in-memory batches on a fresh database; returns mails per second.
fn pipeline_batches(work: &Workload, parse_rate: f64) -> f64 {
    let n = work.mails.len();
    let setup = Setup::new(work);
    let cfg = setup.config();
    let batch = cfg.inbound.batch_size;
    let mut app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
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
    for chunk in work.mails.chunks(batch) {
        let (r, _) = app
            .pipeline
            .process(app.store.as_mut(), chunk)
            .expect("process a batch");
        report.add(&r);
    }
    let elapsed = start.elapsed();
    let io_after = io_counters();
    let cpu_after = cpu_time();
    work.verify(app.store.as_mut(), &report);
    let r = rate(n, elapsed);
    println!("pipeline_seconds {:.3}", elapsed.as_secs_f64());
    println!("pipeline_rate_per_s {r:.0}");
    println!("pipeline_vs_parse_ratio {:.3}", r / parse_rate);
    println!(
        "pipeline_us_per_mail {:.0}",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "parse_all_us_per_mail {:.0}",
        parse_all.as_secs_f64() * 1e6 / n as f64
    );
    println!("pipeline_batches {}", n.div_ceil(batch));
    println!("db_bytes_per_mail {}", setup.db_bytes() / n as u64);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        // CPU time of all threads: steadier than the rate when other work shares the machine.
        println!(
            "pipeline_cpu_us_per_mail {:.0}",
            (b - a).as_secs_f64() * 1e6 / n as f64
        );
    }
    if let (Some(a), Some(b)) = (io_before, io_after) {
        // What the run wrote: handed to write(2), and sent on to storage (WAL, checkpoints).
        println!(
            "pipeline_write_calls_bytes_per_mail {}",
            (b.0 - a.0) / n as u64
        );
        println!("pipeline_storage_bytes_per_mail {}", (b.1 - a.1) / n as u64);
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
    let mut app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    let cpu_before = cpu_time();
    let start = Instant::now();
    let report = app.drain_maildir(&md).expect("drain maildir");
    let elapsed = start.elapsed();
    let cpu_after = cpu_time();
    work.verify(app.store.as_mut(), &report);
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

// ---- workload ------------------------------------------------------------------------------

/// SplitMix64: deterministic and good enough to pick words.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

struct Customer {
    id: String,
    name: String,
    domain: String,
    key: String,
    plan: &'static str,
}

impl Customer {
    fn has_agent_team(&self) -> bool {
        self.plan == "premium"
    }
}

/// One new request, remembered so follow-ups can answer it.
struct Request {
    ticket: usize,
    customer: usize,
    sender: String,
    sender_name: String,
    message_id: String,
    subject: String,
    first_line: String,
}

struct Workload {
    customers: Vec<Customer>,
    mails: Vec<RawMail>,
    new_requests: usize,
    followups: usize,
    /// New requests and follow-ups of customers whose plan copies an agent team.
    agent_copies: usize,
    /// Articles expected per ticket (1-based ticket number → count).
    articles: Vec<usize>,
    /// `inbound.batch_size` for the runs; the configuration's default when `None`.
    batch_size: Option<usize>,
}

const FIRST: &[&str] = &[
    "Jane", "Marc", "Aiko", "Pedro", "Fatima", "Oliver", "Chloé", "Ravi", "Sofia", "Lukas",
    "Amara", "Chen", "Noah", "Ines", "Tomasz", "Leila",
];
const LAST: &[&str] = &[
    "Doe", "Martin", "Tanaka", "Silva", "Khan", "Smith", "Dubois", "Patel", "Rossi", "Weber",
    "Okafor", "Wang", "Brown", "Garcia", "Nowak", "Haddad",
];
const TOPICS: &[&str] = &[
    "Export job fails with timeout",
    "Login page returns HTTP 502 after upgrade",
    "Nightly backup did not run",
    "Dashboard shows stale figures",
    "API rate limit reached unexpectedly",
    "Search index rebuild is very slow",
    "Licence warning after renewal",
    "Report scheduler sends empty attachments",
    "SSO redirect loop for some users",
    "Disk usage alert on node 2",
    "Webhook deliveries delayed by hours",
    "Import rejects UTF-8 file with BOM",
];
const SEVERITY_PREFIX: &[&str] = &["", "", "", "", "Sev2: ", "[Urgent] ", "P3 - ", "Sev1: "];
const SENTENCES: &[&str] = &[
    "Since Friday evening the job fails after roughly thirty minutes.",
    "Nothing was changed on our side as far as we can tell.",
    "Smaller runs still complete, but the full one never finishes.",
    "We already restarted both application nodes, with the same result.",
    "The error in the worker log reads: java.net.SocketTimeoutException: Read timed out.",
    "Our month-end reporting depends on this, so a quick answer would help.",
    "Environment: DataHub Server 4.12.3 on RHEL 9.4, two nodes behind HAProxy.",
    "The database is PostgreSQL 15.6 with about 1.8 million customer records.",
    "It started right after the maintenance window on Tuesday night.",
    "Users in the Paris office are affected; London seems fine so far.",
    "We tried raising the timeout from 1800 to 3600 seconds without success.",
    "Could you tell us whether this is a known issue in this version?",
    "I attached nothing yet, but can send the full logs on request.",
    "The monitoring graph shows CPU at 95 percent during the failure.",
    "A colleague reproduced it on the staging system this morning.",
    "Please let me know if you need remote access to the system.",
];
const FOLLOWUP_SENTENCES: &[&str] = &[
    "Here are the logs you asked for, from last night's run.",
    "The problem happened again this morning at 06:10.",
    "We applied the workaround you suggested and it helps partially.",
    "Is there any update on this? The issue is still open on our side.",
    "Restarting the service fixed it for now, but it came back after two hours.",
    "Our change window is on Thursday; could we schedule the patch then?",
];

impl Workload {
    fn generate(n: usize, seed: u64) -> Workload {
        let mut rng = Rng(seed);
        let plans = [
            "standard",
            "standard",
            "premium",
            "entreprise-fr",
            "standard",
        ];
        let customers: Vec<Customer> = (0..CUSTOMERS)
            .map(|i| Customer {
                id: format!("cust{i:02}"),
                name: format!("Customer {i:02} Ltd"),
                domain: format!("cust{i:02}.example"),
                key: format!("C{i:03}-{:04}-BNCH-{:04}", (i * 37 + 11) % 10_000, i),
                plan: plans[i % plans.len()],
            })
            .collect();
        let mut requests: Vec<Request> = Vec::new();
        let mut mails = Vec::with_capacity(n);
        let mut followups = 0;
        let mut agent_copies = 0;
        let mut articles = vec![0usize]; // index 0 unused: tickets start at 1
        for i in 0..n {
            let followup = !requests.is_empty() && (rng.next() % 100) < FOLLOWUP_PERCENT;
            let bytes = if followup {
                // Mostly recent tickets, sometimes an old one.
                let len = requests.len();
                let j = if rng.below(2) == 0 {
                    len - 1 - rng.below(len.min(256))
                } else {
                    rng.below(len)
                };
                let req = &requests[j];
                followups += 1;
                articles[req.ticket] += 1;
                if customers[req.customer].has_agent_team() {
                    agent_copies += 1;
                }
                followup_mail(&mut rng, i, req, &customers[req.customer])
            } else {
                let c = rng.below(customers.len());
                let req = Request {
                    ticket: requests.len() + 1,
                    customer: c,
                    sender: String::new(),
                    sender_name: String::new(),
                    message_id: String::new(),
                    subject: String::new(),
                    first_line: String::new(),
                };
                let (bytes, req) = new_request_mail(&mut rng, i, req, &customers[c]);
                if customers[c].has_agent_team() {
                    agent_copies += 1;
                }
                articles.push(1);
                requests.push(req);
                bytes
            };
            mails.push(RawMail {
                source: format!("bench:{i}"),
                bytes,
            });
        }
        Workload {
            customers,
            new_requests: requests.len(),
            followups,
            agent_copies,
            articles,
            mails,
            batch_size: None,
        }
    }

    fn registry_toml(&self) -> String {
        let mut s = String::from(
            "[plans.standard]\nlanguage = \"en\"\ndefault_severity = 3\n\
             response_targets = { 1 = \"4h\", 2 = \"1d\", 3 = \"3d\", 4 = \"5d\" }\n\n\
             [plans.premium]\nlanguage = \"en\"\ndefault_severity = 3\n\
             response_targets = { 1 = \"1h\", 2 = \"4h\", 3 = \"1d\", 4 = \"3d\" }\n\
             phone = \"+1 214 555 0142\"\nagent_team = \"agents@support.example.test\"\n\n\
             [plans.entreprise-fr]\nlanguage = \"fr\"\ndefault_severity = 3\n\
             phone = \"+33 1 86 95 00 00\"\n\n",
        );
        for c in &self.customers {
            let _ = write!(
                s,
                "[[customers]]\nid = \"{}\"\nname = \"{}\"\nplan = \"{}\"\n\
                 allowed_senders = [\"@{}\"]\nkeys = [{{ key = \"{}\" }}]\n\n",
                c.id, c.name, c.plan, c.domain, c.key
            );
        }
        s
    }

    /// Checks a finished run against what the workload must have produced.
    fn verify(&self, store: &mut dyn Store, report: &Report) {
        assert_eq!(
            report.created, self.new_requests,
            "tickets created: {report:?}"
        );
        assert_eq!(report.appended, self.followups, "follow-ups: {report:?}");
        assert_eq!(report.quarantined, 0, "quarantined: {report:?}");
        assert_eq!(report.duplicates, 0, "duplicates: {report:?}");
        assert_eq!(report.suppressed, 0, "suppressed: {report:?}");
        assert_eq!(
            report.outbound,
            self.new_requests + self.agent_copies,
            "outbound: {report:?}"
        );

        let tickets = store.tickets(usize::MAX).expect("list tickets");
        assert_eq!(tickets.len(), self.new_requests, "tickets in the store");
        for (i, t) in tickets.iter().enumerate() {
            assert_eq!(t.id, i as i64 + 1, "ticket ids are dense, from 1");
        }

        let outbox = store.outbox(usize::MAX).expect("list outbox");
        let acks: HashSet<i64> = outbox
            .iter()
            .filter(|o| o.kind == "acknowledgement" && o.state == "pending")
            .filter_map(|o| o.ticket_id)
            .collect();
        let ack_rows = outbox
            .iter()
            .filter(|o| o.kind == "acknowledgement")
            .count();
        assert_eq!(
            ack_rows, self.new_requests,
            "one acknowledgement per ticket"
        );
        assert_eq!(acks.len(), self.new_requests, "every ticket acknowledged");
        let agent = outbox
            .iter()
            .filter(|o| o.kind == "agent_notification")
            .count();
        assert_eq!(agent, self.agent_copies, "agent copies");
        assert_eq!(
            outbox.len(),
            self.new_requests + self.agent_copies,
            "no other outbound mail"
        );

        // Follow-ups landed on the ticket they answer.
        for t in tickets.iter().step_by(7) {
            let (_, articles) = store
                .ticket_with_articles(t.id)
                .expect("read ticket")
                .expect("ticket exists");
            assert_eq!(
                articles.len(),
                self.articles[t.id as usize],
                "articles of ticket {}",
                t.id
            );
        }
    }
}

fn date_header(i: usize) -> String {
    let at = DateTime::<Utc>::from_timestamp(1_795_344_000 + i as i64 * 7, 0).unwrap_or_default();
    at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn headers(
    out: &mut String,
    i: usize,
    sender: &str,
    sender_name: &str,
    domain: &str,
    message_id: &str,
    subject: &str,
) {
    let date = date_header(i);
    let _ = write!(
        out,
        "Return-Path: <{sender}>\r\n\
         Delivered-To: support@support.example.test\r\n\
         Received: from mail.{domain} (mail.{domain} [198.51.100.{octet}])\r\n\
         \tby mx1.support.example.test (Postfix) with ESMTPS id 4Ck9L{i:07}\r\n\
         \tfor <support@support.example.test>; {date}\r\n\
         Message-ID: <{message_id}>\r\n\
         Date: {date}\r\n\
         MIME-Version: 1.0\r\n\
         User-Agent: Mozilla Thunderbird\r\n\
         To: support@support.example.test\r\n\
         From: {sender_name} <{sender}>\r\n\
         Subject: {subject}\r\n",
        octet = i % 250 + 1,
    );
}

fn body_lines(rng: &mut Rng, out: &mut String, pool: &[&str], target: usize) {
    let start = out.len();
    while out.len() - start < target {
        let _ = write!(out, "{}\r\n", rng.pick(pool));
        if rng.below(4) == 0 {
            out.push_str("\r\n");
        }
    }
}

fn new_request_mail(
    rng: &mut Rng,
    i: usize,
    mut req: Request,
    customer: &Customer,
) -> (Vec<u8>, Request) {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    // A distinct sender per request: the per-recipient auto-reply cap is not measured here.
    req.sender = format!(
        "{}.{}{i}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        customer.domain
    );
    req.sender_name = format!("{first} {last}");
    req.message_id = format!("{:016x}.{i}@mail.{}", rng.next(), customer.domain);
    let topic = rng.pick(TOPICS);
    req.subject = format!("{topic} (case {i})");
    let subject = format!("{}{}", rng.pick(SEVERITY_PREFIX), req.subject);
    req.first_line = rng.pick(SENTENCES).to_string();

    let mut m = String::with_capacity(2048);
    headers(
        &mut m,
        i,
        &req.sender,
        &req.sender_name,
        &customer.domain,
        &req.message_id,
        &subject,
    );
    m.push_str("Content-Type: text/plain; charset=UTF-8; format=flowed\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str("Hello,\r\n\r\n");
    let _ = write!(m, "{}\r\n", req.first_line);
    let target = 400 + rng.below(700);
    body_lines(rng, &mut m, SENTENCES, target);
    let _ = write!(m, "\r\nSupport-Key: {}\r\n", customer.key);
    if rng.below(5) == 0 {
        m.push_str("Severity: high\r\n");
    }
    let _ = write!(
        m,
        "\r\nThanks,\r\n{first}\r\n\r\n-- \r\n{} {}\r\nIT Operations, {}\r\n+44 20 7946 {:04}\r\n",
        first,
        last,
        customer.name,
        i % 10_000
    );
    (m.into_bytes(), req)
}

fn followup_mail(rng: &mut Rng, i: usize, req: &Request, customer: &Customer) -> Vec<u8> {
    // 0: subject tag only, 1: In-Reply-To only, 2: both.
    let how = rng.below(3);
    let subject = if how == 1 {
        format!("Re: {}", req.subject)
    } else {
        format!("Re: [TKT-{:06}] {}", req.ticket, req.subject)
    };
    let message_id = format!("{:016x}.{i}@mail.{}", rng.next(), customer.domain);
    let mut m = String::with_capacity(2048);
    headers(
        &mut m,
        i,
        &req.sender,
        &req.sender_name,
        &customer.domain,
        &message_id,
        &subject,
    );
    if how != 0 {
        let _ = write!(
            m,
            "In-Reply-To: <{id}>\r\nReferences: <{id}>\r\n",
            id = req.message_id
        );
    }
    m.push_str("Content-Type: text/plain; charset=UTF-8; format=flowed\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str("Hi,\r\n\r\n");
    let target = 200 + rng.below(400);
    body_lines(rng, &mut m, FOLLOWUP_SENTENCES, target);
    let first = req.sender_name.split(' ').next().unwrap_or_default();
    let _ = write!(
        m,
        "\r\nBest,\r\n{first}\r\n\r\nOn {}, {} <{}> wrote:\r\n> Hello,\r\n>\r\n> {}\r\n",
        date_header(i.saturating_sub(100)),
        req.sender_name,
        req.sender,
        req.first_line
    );
    for _ in 0..3 + rng.below(5) {
        let _ = write!(m, "> {}\r\n", rng.pick(SENTENCES));
    }
    let _ = write!(m, ">\r\n> Support-Key: {}\r\n", customer.key);
    m.into_bytes()
}

// ---- one fresh installation in a temp dir --------------------------------------------------

struct Setup {
    dir: tempfile::TempDir,
    batch_size: Option<usize>,
}

impl Setup {
    fn new(work: &Workload) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("customers.toml"), work.registry_toml())
            .expect("write customers.toml");
        Setup {
            dir,
            batch_size: work.batch_size,
        }
    }

    fn config(&self) -> Config {
        let d = self.dir.path();
        let batch = self
            .batch_size
            .map(|b| format!("batch_size = {b}\n"))
            .unwrap_or_default();
        let toml = format!(
            "[database]\nurl = \"sqlite:{db}\"\n\n\
             [inbound]\nmaildir = \"{inbox}\"\n{batch}\n\
             [outbound]\ntransport = \"file\"\ndir = \"{outbox}\"\n\n\
             [registry]\npath = \"{registry}\"\n",
            db = d.join("bench.db").display(),
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
