//! The fuzz harness (stable Rust, no cargo-fuzz): a mutation loop over seed mails (the golden
//! fixtures, the samples, the bounce corpus) through what untrusted bytes go through —
//! limits → parse → extract → bounce reading → route (a real SQLite store, every
//! transaction rolled back) → render → compose — checking that nothing panics, that no
//! header line of a composed message comes from decoded input (no CR, LF or NUL smuggled
//! into a field: every line break of the header section is CRLF, and no planted field name
//! such as `X-Fuzz-Injected:` or `Bcc:` starts a line), and that memory stays bounded (inputs
//! capped at [`MAX_INPUT`]; the peak RSS is reported). Shared by `examples/fuzz` (the long
//! run) and the integration test (a short run in CI).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ticketgate::app::App;
use ticketgate::clock::ManualClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::notify::{self, Automatic, Notice, Outgoing};
use ticketgate::parse::{self, Limits, Patterns};
use ticketgate::route::{self, Decision};

/// No input grows beyond this: the allocation bound of the harness itself.
pub const MAX_INPUT: usize = 1024 * 1024;

const REGISTRY: &str = r#"
agents = ["mike@support.example.test"]

[plans.premium]
language = "en"
agent_team = "agents@support.example.test"

[[customers]]
id = "acme"
name = "ACME"
plan = "premium"
keys = [{ key = "ACME-0000-0000-0001" }]
"#;

/// Fragments the mutator plants: header injections as raw bytes and as encoded words, NUL,
/// MIME structure, long runs, our own reference and key.
const TOKENS: &[&[u8]] = &[
    b"\r\nBcc: fuzz@evil.example\r\n",
    b"\nX-Fuzz-Injected: 1\n",
    b"\rX-Fuzz-Injected: 1\r",
    b"=?utf-8?q?a=0D=0AX-Fuzz-Injected:_1=0D=0ABcc:_fuzz@evil.example?=",
    b"=?utf-8?b?eA0KWC1GdXp6LUluamVjdGVkOiAxDQpCY2M6IGZ1enpAZXZpbC5leGFtcGxl?=",
    b"=?iso-8859-1?q?=00=0A?=",
    b"\0",
    b"\r\n\r\n",
    b"\r\n ",
    b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\n",
    b"\r\n--zz--\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"filename*0*=utf-8''%0D%0AX-Fuzz-Injected%3A1; filename*1=x",
    b"Support-Key: ACME-0000-0000-0001\r\n",
    b"Subject: [TKT-000001] =?utf-8?b?eA0KWC1GdXp6LUluamVjdGVkOiAxDQpCY2M6IGZ1enpAZXZpbC5leGFtcGxl?=\r\n",
    b"From: \"Eve\r\nX-Fuzz-Injected: 1\" <eve@acme.example>\r\n",
    b"From: =?utf-8?q?Eve=0D=0AX-Fuzz-Injected:_1?= <eve@acme.example>\r\n",
    b"Message-ID: <a\r\nX-Fuzz-Injected: 1@x>\r\n",
    b"In-Reply-To: <tg.TKT-000001.x@support.example.test>\r\n",
    b"References: <a@b> <c\0d@e>\r\n",
    b"\xff\xfe\xc3\x28",
    b"<html><body><p>x</p><br>",
];

/// xorshift64*: deterministic, so a failing input is found again from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// The seed mails: every `.eml` under the given folders.
pub fn seeds(root: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in [
        "tests/fixtures/mail",
        "samples/mail",
        "tests/fixtures/bounces",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "eml")
                && let Ok(b) = std::fs::read(&p)
            {
                out.push(b);
            }
        }
    }
    out
}

/// One mutated input from the seeds.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut m = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let at = rng.below(m.len() + 1);
        match rng.below(9) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            1 | 2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                m.splice(at..at, t.iter().copied());
            }
            3 => {
                let len = rng.below(64).min(m.len() - at);
                m.drain(at..at + len);
            }
            4 => {
                // Duplicate a range (repeated headers, parts).
                let len = rng.below(256).min(m.len() - at);
                let chunk = m[at..at + len].to_vec();
                let times = 1 + rng.below(16);
                for _ in 0..times {
                    m.splice(at..at, chunk.iter().copied());
                }
            }
            5 => {
                // Splice from another seed.
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let len = rng.below(512).min(other.len() - from);
                m.splice(at..at, other[from..from + len].iter().copied());
            }
            6 => m.truncate(at),
            7 => {
                let b = [b'\r', b'\n', 0, b'=', b'?', b'-', b':', b' ', 0x80][rng.below(9)];
                let n = 1 + rng.below(4);
                m.splice(at..at, std::iter::repeat_n(b, n));
            }
            _ => {
                // A long run: line-length and decoder stress.
                let n = rng.below(4096);
                m.splice(at..at, std::iter::repeat_n(b'A' + (rng.below(26) as u8), n));
            }
        }
        m.truncate(MAX_INPUT);
    }
    m
}

/// The environment one run uses: a configuration, a SQLite store in a temporary folder,
/// the templates.
pub struct Harness {
    _dir: tempfile::TempDir,
    app: App,
    patterns: Patterns,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::write(dir.path().join("customers.toml"), REGISTRY).expect("registry");
        let text = "[database]\nurl = \"sqlite:fuzz.db\"\n[inbound]\nmaildir = \"inbox\"\n\
                    [registry]\npath = \"customers.toml\"\n[outbound]\ndir = \"outbox\"\n";
        let cfg = Config::from_toml(
            text,
            dir.path(),
            ConfigSource::File(dir.path().join("t.toml")),
        )
        .expect("configuration");
        let patterns = Patterns::new(
            cfg.tickets.key_pattern.clone(),
            &cfg.tickets.reference_prefix,
        );
        let clock = ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2026-11-20T16:00:00Z")
                .expect("literal")
                .with_timezone(&chrono::Utc),
        );
        let app = App::open(cfg, Arc::new(clock)).expect("app");
        Harness {
            _dir: dir,
            app,
            patterns,
        }
    }

    /// One execution. `Err` describes a violated property (a panic is caught and reported
    /// as one too).
    pub fn run(&self, input: &[u8]) -> Result<(), String> {
        match catch_unwind(AssertUnwindSafe(|| self.run_inner(input))) {
            Ok(r) => r,
            Err(p) => Err(format!(
                "panic: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }

    fn run_inner(&self, input: &[u8]) -> Result<(), String> {
        let cfg = &self.app.cfg;
        if parse::limits::check(input, &cfg.inbound.limits).is_err() {
            return Ok(());
        }
        let limits = Limits {
            max_attachment_bytes: cfg.inbound.max_attachment_bytes,
        };
        let Ok(mail) = parse::parse(input, &self.patterns, limits) else {
            return Ok(());
        };
        let _ = ticketgate::bounce::analyze(input);
        let registry = self.app.pipeline.registry();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T16:00:00Z")
            .expect("literal")
            .with_timezone(&chrono::Utc);
        let mut conn = self.app.store().map_err(|e| e.to_string())?;
        let decision = {
            let mut tx = conn.write().map_err(|e| e.to_string())?;
            let d = route::route(&mail, cfg, &registry, tx.as_mut(), now)
                .map_err(|e| format!("route: {e}"))?;
            let _ = ticketgate::bounce::handle::recognise(input, &mail, cfg, tx.as_mut())
                .map_err(|e| format!("bounce: {e}"))?;
            d // dropped: rolled back
        };
        let mailer = self.app.pipeline.mailer();
        let subject = mail.subject.clone();
        let notice = match &decision {
            Decision::Quarantine(q) => Notice::Rejection(notify::Rejection {
                reason: q.code.to_string(),
                key: q.reply.as_ref().and_then(|r| r.key.clone()),
                subject: subject.clone(),
                contact_name: mail.from_name.clone(),
                contact_email: mail.from.clone(),
                key_help: cfg.tickets.key_help.clone(),
                limit: "25 MB".into(),
                support_name: mailer.support_name(),
            }),
            _ => Notice::Acknowledgement(notify::Acknowledgement {
                reference: "TKT-000001".into(),
                subject: subject.clone(),
                severity: mail.severity.as_ref().map_or(3, |s| s.level),
                stated_severity: mail.severity.as_ref().map(|s| s.as_written.clone()),
                phone: None,
                missing: vec![],
                parent_reference: None,
                status_name: "New".into(),
                contact_name: mail.from_name.clone(),
                contact_email: mail.from.clone(),
                customer_name: "ACME".into(),
                support_name: mailer.support_name(),
                ticket_url: None,
                outages: Vec::new(),
            }),
        };
        let (subject, body) = mailer
            .templates
            .render(&notice, "en")
            .map_err(|e| format!("render: {e}"))?;
        let mut references: Vec<String> = mail
            .references
            .iter()
            .rev()
            .take(9)
            .rev()
            .cloned()
            .collect();
        references.extend(mail.message_id.iter().cloned());
        let to = mail.from.clone().unwrap_or_else(|| "x@acme.example".into());
        let from_name = format!(
            "{} via Support",
            mail.from_name.as_deref().unwrap_or(to.as_str())
        );
        let agent_text = format!("{}\n\n{}", mail.text, mail.quoted);
        // Decoded input that reaches our headers: the Cc addresses (watchers), the subject
        // (Thread-Topic) and a Thread-Index to answer.
        let topic = notify::outlook::thread_topic(&mail.subject);
        let index = notify::outlook::thread_index(
            "support.example.test",
            1,
            now,
            now,
            mail.thread_index.as_deref(),
        );
        for (out_to, to_name, fname, text, attachments, automatic) in [
            (
                to.as_str(),
                mail.from_name.as_deref(),
                None,
                body.as_str(),
                &[][..],
                Automatic::Replied,
            ),
            (
                "agents@support.example.test",
                None,
                Some(from_name.as_str()),
                agent_text.as_str(),
                &mail.attachments[..],
                Automatic::Generated,
            ),
        ] {
            let composed = notify::compose(
                &cfg.outbound,
                now,
                &Outgoing {
                    tag: "TKT-000001",
                    to: out_to,
                    to_name,
                    from_name: fname,
                    subject: &subject,
                    body: text,
                    in_reply_to: mail.message_id.as_deref(),
                    references: &references,
                    automatic,
                    attachments,
                    cc: &mail.cc,
                    thread: Some(notify::Thread {
                        topic: &topic,
                        index: &index,
                    }),
                    reply_to: Some("support+TKT-000001.0123456789abcdef@support.example.test"),
                    message_id: None,
                },
            );
            match composed {
                Ok(c) => check_headers(&c.bytes)?,
                Err(notify::NotifyError::BadRecipient(_)) => {}
                Err(e) => return Err(format!("compose: {e}")),
            }
        }
        Ok(())
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// The header section of a composed message: CRLF line breaks only, no NUL, every line a
/// field or a continuation, no planted field name at the start of a line.
pub fn check_headers(msg: &[u8]) -> Result<(), String> {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the header section")?;
    let head = &msg[..end + 2];
    for (i, b) in head.iter().enumerate() {
        match b {
            0 => return Err("NUL in the header section".into()),
            b'\r' if head.get(i + 1) != Some(&b'\n') => {
                return Err("bare CR in the header section".into());
            }
            b'\n' if i == 0 || head[i - 1] != b'\r' => {
                return Err("bare LF in the header section".into());
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return Err(format!("a header line that is no field: {line:?}"));
        };
        let lower = name.to_ascii_lowercase();
        if lower == "x-fuzz-injected" || lower == "bcc" || name.contains(' ') {
            return Err(format!("a header line from decoded input: {line:?}"));
        }
    }
    Ok(())
}

/// Peak resident set size of this process, in KiB (`VmHWM`), when the system reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
