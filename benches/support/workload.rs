//! The generated mail workload shared by the benchmarks (`pipeline`, `imap`): about 70 %
//! new requests carrying a valid support key of one of 50 generated customers, about 30 %
//! follow-ups to an earlier request of the same sender, and the check that a run produced
//! what the workload must produce.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::fmt::Write as _;
use ticketgate::pipeline::{RawMail, Report};
use ticketgate::store::Store;

pub const CUSTOMERS: usize = 50;
pub const FOLLOWUP_PERCENT: u64 = 30;

// ---- workload ------------------------------------------------------------------------------

/// SplitMix64: deterministic and good enough to pick words.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

pub struct Customer {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub key: String,
    pub plan: &'static str,
}

impl Customer {
    pub fn has_agent_team(&self) -> bool {
        self.plan == "premium"
    }
}

/// One new request, remembered so follow-ups can answer it.
pub struct Request {
    pub ticket: usize,
    pub customer: usize,
    pub sender: String,
    pub sender_name: String,
    pub message_id: String,
    pub subject: String,
    pub first_line: String,
}

pub struct Workload {
    pub customers: Vec<Customer>,
    pub mails: Vec<RawMail>,
    pub new_requests: usize,
    pub followups: usize,
    /// New requests and follow-ups of customers whose plan copies an agent team.
    pub agent_copies: usize,
    /// Articles expected per ticket (1-based ticket number → count).
    pub articles: Vec<usize>,
    /// `inbound.batch_size` for the runs; the configuration's default when `None`.
    pub batch_size: Option<usize>,
}

pub const FIRST: &[&str] = &[
    "Jane", "Marc", "Aiko", "Pedro", "Fatima", "Oliver", "Chloé", "Ravi", "Sofia", "Lukas",
    "Amara", "Chen", "Noah", "Ines", "Tomasz", "Leila",
];
pub const LAST: &[&str] = &[
    "Doe", "Martin", "Tanaka", "Silva", "Khan", "Smith", "Dubois", "Patel", "Rossi", "Weber",
    "Okafor", "Wang", "Brown", "Garcia", "Nowak", "Haddad",
];
pub const TOPICS: &[&str] = &[
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
pub const SEVERITY_PREFIX: &[&str] = &["", "", "", "", "Sev2: ", "[Urgent] ", "P3 - ", "Sev1: "];
pub const SENTENCES: &[&str] = &[
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
pub const FOLLOWUP_SENTENCES: &[&str] = &[
    "Here are the logs you asked for, from last night's run.",
    "The problem happened again this morning at 06:10.",
    "We applied the workaround you suggested and it helps partially.",
    "Is there any update on this? The issue is still open on our side.",
    "Restarting the service fixed it for now, but it came back after two hours.",
    "Our change window is on Thursday; could we schedule the patch then?",
];

impl Workload {
    pub fn generate(n: usize, seed: u64) -> Workload {
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

    pub fn registry_toml(&self) -> String {
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
    pub fn verify(&self, store: &mut dyn Store, report: &Report) {
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

        let tickets = store.tickets(i64::MAX as usize).expect("list tickets");
        assert_eq!(tickets.len(), self.new_requests, "tickets in the store");
        for (i, t) in tickets.iter().enumerate() {
            assert_eq!(t.id, i as i64 + 1, "ticket ids are dense, from 1");
        }

        let outbox = store.outbox(i64::MAX as usize).expect("list outbox");
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

pub fn date_header(i: usize) -> String {
    let at = DateTime::<Utc>::from_timestamp(1_795_344_000 + i as i64 * 7, 0).unwrap_or_default();
    at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

pub fn headers(
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

pub fn body_lines(rng: &mut Rng, out: &mut String, pool: &[&str], target: usize) {
    let start = out.len();
    while out.len() - start < target {
        let _ = write!(out, "{}\r\n", rng.pick(pool));
        if rng.below(4) == 0 {
            out.push_str("\r\n");
        }
    }
}

pub fn new_request_mail(
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

pub fn followup_mail(rng: &mut Rng, i: usize, req: &Request, customer: &Customer) -> Vec<u8> {
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
