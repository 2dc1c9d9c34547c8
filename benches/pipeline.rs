//! Throughput benchmark for the inbound pipeline: `cargo bench --bench pipeline [-- N]`.
//!
//! Generates N realistic small mails (default 20000): about 70 % new requests carrying a valid
//! support key of one of 50 generated customers, about 30 % follow-ups to an earlier request
//! of the same sender (by subject tag, by `In-Reply-To`, or both). Then measures:
//! - the parse-only rate (`parse::parse`, one thread);
//! - end to end through `Pipeline::process` on a fresh SQLite database (WAL,
//!   `synchronous = FULL`), in batches of `inbound.batch_size`;
//! - end to end through a Maildir (`App::drain_maildir`) in a fresh setup;
//! - the same end-to-end run with the store wrapped in a timer, to show where the time goes.
//!
//! Every run is checked (tickets, articles, outbox rows), so the figures cannot come from a
//! run that silently did nothing. Figures are printed one per line, `name value`.

use std::collections::{HashMap, HashSet};
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
use ticketgate::store::{
    self, ArticleRow, NewArticle, NewInbound, NewOutbound, NewTicket, OutboxMail, OutboxRow,
    QuarantineRow, Store, TicketRow, WriteTx,
};

const DEFAULT_MAILS: usize = 20_000;
const CUSTOMERS: usize = 50;
const FOLLOWUP_PERCENT: u64 = 30;
const TARGET_RATE: f64 = 10_000.0;
const TARGET_RATIO: f64 = 0.25;

fn main() {
    // `cargo bench` passes `--bench`; the first plain number is the mail count.
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MAILS);
    assert!(n > 0, "the mail count must be at least 1");

    let work = Workload::generate(n, 0x7469_636b_6574_6761);
    let total_bytes: usize = work.mails.iter().map(|m| m.bytes.len()).sum();
    println!("mails {n}");
    println!("new_requests {}", work.new_requests);
    println!("followups {}", work.followups);
    println!("mean_mail_bytes {}", total_bytes / n);

    // ---- parse only, one thread ------------------------------------------------------------
    let probe = Setup::new(&work);
    let cfg = probe.config();
    println!("batch_size {}", cfg.inbound.batch_size);
    let patterns = Patterns::new(
        cfg.tickets.key_pattern.clone(),
        &cfg.tickets.reference_prefix,
    );
    let limits = Limits {
        max_attachment_bytes: cfg.inbound.max_attachment_bytes,
    };
    // Warm-up (page in code, allocator, regex caches).
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
    let parse_time = start.elapsed();
    assert_eq!(parsed_ok, n, "every generated mail must parse");
    let parse_rate = rate(n, parse_time);
    println!("parse_only_seconds {:.3}", parse_time.as_secs_f64());
    println!("parse_only_rate_per_s {parse_rate:.0}");

    // The pipeline's own parse step (both cores), for the breakdown below.
    let pipeline_parse_time = {
        let app = App::open(probe.config(), Arc::new(SystemClock)).expect("open app");
        let start = Instant::now();
        for chunk in work.mails.chunks(cfg.inbound.batch_size) {
            black_box(app.pipeline.parse_all(chunk));
        }
        start.elapsed()
    };
    println!(
        "parse_all_rate_per_s {:.0}",
        rate(n, pipeline_parse_time)
    );
    drop(probe);

    // ---- end to end, in memory batches -----------------------------------------------------
    let setup = Setup::new(&work);
    let cfg = setup.config();
    let batch = cfg.inbound.batch_size;
    let mut app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    let start = Instant::now();
    let mut report = Report::default();
    for chunk in work.mails.chunks(batch) {
        let (r, _) = app
            .pipeline
            .process(app.store.as_mut(), chunk)
            .expect("process a batch");
        report.add(&r);
    }
    let e2e_time = start.elapsed();
    work.verify(app.store.as_mut(), &report);
    drop(app);
    let e2e_rate = rate(n, e2e_time);
    let ratio = e2e_rate / parse_rate;
    println!("pipeline_seconds {:.3}", e2e_time.as_secs_f64());
    println!("pipeline_rate_per_s {e2e_rate:.0}");
    println!("pipeline_vs_parse_ratio {ratio:.3}");
    println!("pipeline_batches {}", n.div_ceil(batch));
    println!("db_bytes {}", setup.db_bytes());
    drop(setup);

    // ---- end to end through the Maildir ----------------------------------------------------
    let setup = Setup::new(&work);
    let cfg = setup.config();
    let md = Maildir::open(&cfg.inbound.maildir).expect("open maildir");
    for (i, m) in work.mails.iter().enumerate() {
        // Name order is arrival order, as with a real delivery agent.
        md.deliver(&format!("1795344000.M{i:08}P1.bench"), &m.bytes)
            .expect("deliver");
    }
    let mut app = App::open(cfg, Arc::new(SystemClock)).expect("open app");
    let start = Instant::now();
    let report = app.drain_maildir(&md).expect("drain maildir");
    let md_time = start.elapsed();
    work.verify(app.store.as_mut(), &report);
    assert!(
        md.pending(1).expect("list new/").is_empty(),
        "mail left in new/"
    );
    drop(app);
    drop(setup);
    let md_rate = rate(n, md_time);
    println!("maildir_pipeline_seconds {:.3}", md_time.as_secs_f64());
    println!("maildir_pipeline_rate_per_s {md_rate:.0}");
    println!("maildir_vs_parse_ratio {:.3}", md_rate / parse_rate);

    // ---- where the time goes: the same run with every store call timed ---------------------
    let setup = Setup::new(&work);
    let app = App::open(setup.config(), Arc::new(SystemClock)).expect("open app");
    let pipeline = app.pipeline;
    let mut timed = TimedStore {
        inner: app.store,
        stats: OpStats::default(),
    };
    let start = Instant::now();
    let mut report = Report::default();
    for chunk in work.mails.chunks(batch) {
        let (r, _) = pipeline
            .process(&mut timed, chunk)
            .expect("process a batch");
        report.add(&r);
    }
    let timed_total = start.elapsed();
    work.verify(&mut timed, &report);
    let store_time: Duration = timed.stats.ops.values().map(|(d, _)| *d).sum();
    let per_mail = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("breakdown_total_us_per_mail {:.1}", per_mail(timed_total));
    let mut ops: Vec<_> = timed.stats.ops.iter().collect();
    ops.sort_by(|a, b| b.1.0.cmp(&a.1.0));
    for (op, (d, calls)) in ops {
        println!(
            "breakdown_store_{op}_us_per_mail {:.1} calls {calls}",
            per_mail(*d)
        );
    }
    println!("breakdown_store_all_us_per_mail {:.1}", per_mail(store_time));
    println!(
        "breakdown_parse_all_us_per_mail {:.1}",
        per_mail(pipeline_parse_time)
    );
    println!(
        "breakdown_rest_us_per_mail {:.1}",
        per_mail(
            timed_total
                .saturating_sub(store_time)
                .saturating_sub(pipeline_parse_time)
        )
    );
    drop(setup);

    // ---- targets (printed, not asserted: timing depends on the machine) --------------------
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "target_pipeline_ge_{TARGET_RATE:.0}_per_s {}",
        met(e2e_rate >= TARGET_RATE)
    );
    println!(
        "target_pipeline_ge_{TARGET_RATIO}_of_parse {}",
        met(ratio >= TARGET_RATIO)
    );
    println!(
        "target_maildir_ge_{TARGET_RATE:.0}_per_s {}",
        met(md_rate >= TARGET_RATE)
    );
    println!(
        "target_maildir_ge_{TARGET_RATIO}_of_parse {}",
        met(md_rate / parse_rate >= TARGET_RATIO)
    );
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
        let plans = ["standard", "standard", "premium", "entreprise-fr", "standard"];
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
        assert_eq!(report.created, self.new_requests, "tickets created: {report:?}");
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
        assert_eq!(ack_rows, self.new_requests, "one acknowledgement per ticket");
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
}

impl Setup {
    fn new(work: &Workload) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("customers.toml"), work.registry_toml())
            .expect("write customers.toml");
        Setup { dir }
    }

    fn config(&self) -> Config {
        let d = self.dir.path();
        let toml = format!(
            "[database]\nurl = \"sqlite:{db}\"\n\n\
             [inbound]\nmaildir = \"{inbox}\"\n\n\
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

// ---- a store that times every call ---------------------------------------------------------

#[derive(Default)]
struct OpStats {
    ops: HashMap<&'static str, (Duration, u64)>,
}

impl OpStats {
    fn add(&mut self, op: &'static str, d: Duration) {
        let e = self.ops.entry(op).or_default();
        e.0 += d;
        e.1 += 1;
    }
}

struct TimedStore {
    inner: Box<dyn Store>,
    stats: OpStats,
}

struct TimedTx<'a> {
    inner: Box<dyn WriteTx + 'a>,
    stats: &'a mut OpStats,
}

impl TimedTx<'_> {
    fn time<T>(&mut self, op: &'static str, f: impl FnOnce(&mut dyn WriteTx) -> T) -> T {
        let start = Instant::now();
        let r = f(self.inner.as_mut());
        self.stats.add(op, start.elapsed());
        r
    }
}

impl WriteTx for TimedTx<'_> {
    fn savepoint(&mut self) -> store::Result<()> {
        self.time("savepoint", |t| t.savepoint())
    }
    fn release_savepoint(&mut self) -> store::Result<()> {
        self.time("release_savepoint", |t| t.release_savepoint())
    }
    fn rollback_to_savepoint(&mut self) -> store::Result<()> {
        self.time("rollback_to_savepoint", |t| t.rollback_to_savepoint())
    }
    fn inbound_exists(&mut self, dedup_key: &str) -> store::Result<bool> {
        self.time("inbound_exists", |t| t.inbound_exists(dedup_key))
    }
    fn ticket_for_message_id(&mut self, message_id: &str) -> store::Result<Option<i64>> {
        self.time("ticket_for_message_id", |t| {
            t.ticket_for_message_id(message_id)
        })
    }
    fn ticket(&mut self, id: i64) -> store::Result<Option<TicketRow>> {
        self.time("ticket", |t| t.ticket(id))
    }
    fn automatic_sent_since(
        &mut self,
        recipient: &str,
        since: DateTime<Utc>,
    ) -> store::Result<u32> {
        self.time("automatic_sent_since", |t| {
            t.automatic_sent_since(recipient, since)
        })
    }
    fn insert_ticket(&mut self, x: &NewTicket<'_>) -> store::Result<i64> {
        self.time("insert_ticket", |t| t.insert_ticket(x))
    }
    fn touch_ticket(&mut self, id: i64, now: DateTime<Utc>) -> store::Result<()> {
        self.time("touch_ticket", |t| t.touch_ticket(id, now))
    }
    fn insert_inbound(&mut self, m: &NewInbound<'_>) -> store::Result<i64> {
        self.time("insert_inbound", |t| t.insert_inbound(m))
    }
    fn insert_article(&mut self, a: &NewArticle<'_>) -> store::Result<i64> {
        self.time("insert_article", |t| t.insert_article(a))
    }
    fn insert_attachment(
        &mut self,
        article_id: i64,
        filename: &str,
        content_type: &str,
        size: usize,
        data: Option<&[u8]>,
    ) -> store::Result<()> {
        self.time("insert_attachment", |t| {
            t.insert_attachment(article_id, filename, content_type, size, data)
        })
    }
    fn link_message_id(&mut self, message_id: &str, ticket_id: i64) -> store::Result<()> {
        self.time("link_message_id", |t| {
            t.link_message_id(message_id, ticket_id)
        })
    }
    fn enqueue(&mut self, m: &NewOutbound<'_>) -> store::Result<i64> {
        self.time("enqueue", |t| t.enqueue(m))
    }
    fn commit(self: Box<Self>) -> store::Result<()> {
        let TimedTx { inner, stats } = *self;
        let start = Instant::now();
        let r = inner.commit();
        stats.add("commit", start.elapsed());
        r
    }
}

impl Store for TimedStore {
    fn write(&mut self) -> store::Result<Box<dyn WriteTx + '_>> {
        let start = Instant::now();
        let inner = self.inner.write()?;
        self.stats.add("begin", start.elapsed());
        Ok(Box::new(TimedTx {
            inner,
            stats: &mut self.stats,
        }))
    }
    fn tickets(&mut self, limit: usize) -> store::Result<Vec<TicketRow>> {
        self.inner.tickets(limit)
    }
    fn ticket_with_articles(
        &mut self,
        id: i64,
    ) -> store::Result<Option<(TicketRow, Vec<ArticleRow>)>> {
        self.inner.ticket_with_articles(id)
    }
    fn outbox(&mut self, limit: usize) -> store::Result<Vec<OutboxRow>> {
        self.inner.outbox(limit)
    }
    fn quarantine(&mut self, limit: usize) -> store::Result<Vec<QuarantineRow>> {
        self.inner.quarantine(limit)
    }
    fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> store::Result<Vec<OutboxMail>> {
        self.inner.claim_due(now, lease_until, limit)
    }
    fn mark_sent(&mut self, id: i64, now: DateTime<Utc>) -> store::Result<()> {
        self.inner.mark_sent(id, now)
    }
    fn mark_retry(&mut self, id: i64, next_at: DateTime<Utc>, error: &str) -> store::Result<()> {
        self.inner.mark_retry(id, next_at, error)
    }
    fn mark_failed(&mut self, id: i64, error: &str) -> store::Result<()> {
        self.inner.mark_failed(id, error)
    }
    fn next_due(&mut self) -> store::Result<Option<DateTime<Utc>>> {
        self.inner.next_due()
    }
}
