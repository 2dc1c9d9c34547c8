//! Shared test setup: a real database, registry file and outbox folder in a temporary
//! directory, and a clock the test moves. The database is SQLite, or a fresh PostgreSQL
//! database (dropped afterwards) when `TICKETGATE_TEST_DATABASE_URL` names a server, e.g.
//! `postgres://ticketgate:ticketgate@127.0.0.1:5432/postgres`.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ticketgate::app::App;
use ticketgate::clock::ManualClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::pipeline::{Outcome, RawMail};
use ticketgate::store::OutboxRow;

pub const REGISTRY: &str = r#"
[plans.standard]
language = "en"
default_severity = 3

[plans.premium]
language = "en"
phone = "+1 214 555 0142"
agent_team = "agents@support.example.test"

[plans.fr]
language = "fr"
phone = "+33 1 86 95 00 00"

[[customers]]
id = "acme"
name = "ACME"
plan = "standard"
allowed_senders = ["@acme.example"]
keys = [{ key = "ACME-0000-0000-0001" }]

[[customers]]
id = "globex"
name = "Globex"
plan = "premium"
keys = [{ key = "GLBX-0000-0000-0002" }]

[[customers]]
id = "initech"
name = "Société Initech"
plan = "fr"
keys = [{ key = "INIT-0000-0000-0003" }]

[[customers]]
id = "umbrella"
plan = "standard"
keys = [
  { key = "UMBR-0000-0000-0004", revoked = "2026-01-01" },
  { key = "UMBR-0000-0000-0005", expires = "2026-06-30" },
]
"#;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub app: App,
    pub clock: ManualClock,
    /// The PostgreSQL database, dropped after the app (fields drop in order).
    pub db: Option<TestDatabase>,
}

/// The variable naming a PostgreSQL server to test against.
pub const DATABASE_URL_VAR: &str = "TICKETGATE_TEST_DATABASE_URL";

/// A PostgreSQL database of its own for one test, created on the server named by
/// `TICKETGATE_TEST_DATABASE_URL` and dropped (`WITH (FORCE)`) when this is dropped.
pub struct TestDatabase {
    /// URL of the new database.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// A fresh database, or `None` when `TICKETGATE_TEST_DATABASE_URL` is not set (SQLite).
    pub fn create() -> Option<TestDatabase> {
        let admin_url = std::env::var(DATABASE_URL_VAR)
            .ok()
            .filter(|u| !u.is_empty())?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name = format!(
            "tg_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        admin(&admin_url, &format!("CREATE DATABASE {name}"));
        Some(TestDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs `sql` on the server at `url`, from a throwaway runtime on its own thread (the
/// caller may be inside a runtime already).
pub fn admin(url: &str, sql: &str) {
    use sqlx::Connection;
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = plumbing_connection(&url).await;
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

/// A connection of the tests' own (setup, checks, other sessions) to the server at `url`:
/// without TLS unless the URL asks for it, since TLS handshakes are slow in debug builds and
/// only the store's own connections are under test.
pub async fn plumbing_connection(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let url = if url.contains("sslmode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    };
    sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {DATABASE_URL_VAR}: {e:?}"))
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

/// The database URL for one test: a fresh PostgreSQL database when
/// `TICKETGATE_TEST_DATABASE_URL` is set (keep the guard alive while it is used), otherwise
/// SQLite at `dir/tg.db`.
pub fn database_url(dir: &Path) -> (String, Option<TestDatabase>) {
    match TestDatabase::create() {
        Some(db) => (db.url.clone(), Some(db)),
        None => (format!("sqlite:{}", dir.join("tg.db").display()), None),
    }
}

/// Whether the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var(DATABASE_URL_VAR).is_ok_and(|u| !u.is_empty())
}

pub fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T16:30:00-06:00")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn env() -> Env {
    env_with("")
}

/// An app on a fresh database; `extra` is appended to the configuration file.
pub fn env_with(extra: &str) -> Env {
    env_registry(REGISTRY, extra)
}

/// An app on a fresh database with this customer registry.
pub fn env_registry(registry: &str, extra: &str) -> Env {
    env_inbound(registry, "trusted_sources = [\"ingest\"]\n", extra)
}

/// An app whose `[inbound]` table has `inbound` added. The other constructors trust the
/// `ingest` pipe (`Env::ingest` hands mail over as `stdin`): those tests are about what
/// mail does once its sender is known; the sender-authenticity tests build theirs here.
pub fn env_inbound(registry: &str, inbound: &str, extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("customers.toml"), registry).unwrap();
    // A test that sets [outbound] keys gets `dir = "outbox"` inside its own table.
    let extra = if extra.contains("[outbound]\n") {
        extra.replacen("[outbound]\n", "[outbound]\ndir = \"outbox\"\n", 1)
    } else {
        format!("[outbound]\ndir = \"outbox\"\n{extra}")
    };
    let (url, db) = database_url(dir.path());
    let text = format!(
        "[database]\nurl = \"{url}\"\n[inbound]\nmaildir = \"inbox\"\nmax_attachment_size = \"2KB\"\n{inbound}\
         [registry]\npath = \"customers.toml\"\n{extra}"
    );
    let cfg = Config::from_toml(
        &text,
        dir.path(),
        ConfigSource::File(dir.path().join("t.toml")),
    )
    .unwrap();
    let clock = ManualClock::new(start());
    let app = App::open(cfg, Arc::new(clock.clone())).unwrap();
    Env {
        dir,
        app,
        clock,
        db,
    }
}

impl Env {
    pub fn ingest(&mut self, raw: &str) -> Outcome {
        self.app
            .ingest(RawMail {
                source: "stdin".into(),
                bytes: raw.as_bytes().to_vec(),
            })
            .unwrap()
    }

    /// Hands `raw` over as coming from `source` (`maildir:new/x`, `imap:NAME/1/2`…).
    pub fn ingest_from(&mut self, source: &str, raw: &[u8]) -> Outcome {
        self.app
            .ingest(RawMail {
                source: source.into(),
                bytes: raw.to_vec(),
            })
            .unwrap()
    }

    pub fn outbox(&mut self) -> Vec<OutboxRow> {
        self.app.store().unwrap().outbox(10_000).unwrap()
    }

    pub fn body(&mut self, row: &OutboxRow) -> String {
        String::from_utf8(
            self.app
                .store()
                .unwrap()
                .outbox_body(row.id)
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    }

    /// Runs every timer due now (the test's clock); returns what fired.
    pub fn tick(&mut self) -> Vec<ticketgate::timers::Fired> {
        let now = ticketgate::clock::Clock::now(&self.clock);
        ticketgate::timers::tick(
            &self.app.pipeline,
            &mut *self.app.store().unwrap(),
            now,
            false,
        )
        .unwrap()
    }

    pub fn ticket(&mut self, id: i64) -> ticketgate::store::TicketRow {
        self.ticket_with_articles(id).0
    }

    /// The ticket's articles, oldest first.
    pub fn articles(&mut self, id: i64) -> Vec<ticketgate::store::ArticleRow> {
        self.ticket_with_articles(id).1
    }

    fn ticket_with_articles(
        &mut self,
        id: i64,
    ) -> (
        ticketgate::store::TicketRow,
        Vec<ticketgate::store::ArticleRow>,
    ) {
        self.app
            .store()
            .unwrap()
            .ticket_with_articles(id)
            .unwrap()
            .unwrap()
    }

    /// Ticks at `when` from this app and from a second instance opened on the same
    /// configuration and clock, at once (two threads); what each fired.
    pub fn tick_from_two_instances(&self, when: DateTime<Utc>) -> Vec<usize> {
        let other = App::open((*self.app.cfg).clone(), Arc::new(self.clock.clone())).unwrap();
        std::thread::scope(|s| {
            let handles: Vec<_> = [&self.app, &other]
                .into_iter()
                .map(|app| {
                    s.spawn(move || {
                        ticketgate::timers::tick(
                            &app.pipeline,
                            &mut *app.store().unwrap(),
                            when,
                            false,
                        )
                        .unwrap()
                        .len()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    pub fn sent(&mut self, kind: &str) -> Vec<OutboxRow> {
        self.outbox()
            .into_iter()
            .filter(|o| o.kind == kind)
            .collect()
    }

    /// A mail body with quoted-printable soft breaks and common escapes undone, for `contains`.
    pub fn text(&mut self, row: &OutboxRow) -> String {
        let raw = self.body(row).replace("=\r\n", "");
        let mut out = Vec::new();
        let b = raw.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit()
            {
                out.push(u8::from_str_radix(&raw[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).replace("\r\n", "\n")
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// A plain mail as a person's client writes it.
pub fn mail(from: &str, subject: &str, body: &str) -> MailBuilder {
    MailBuilder {
        headers: vec![
            format!("From: {from}"),
            "To: support@support.example.test".into(),
            format!("Subject: {subject}"),
            "Date: Fri, 20 Nov 2026 16:30:00 -0600".into(),
        ],
        body: body.to_string(),
        message_id: Some(format!("<{}@client.example>", unique())),
    }
}

pub struct MailBuilder {
    headers: Vec<String>,
    body: String,
    message_id: Option<String>,
}

impl MailBuilder {
    pub fn header(mut self, h: &str) -> Self {
        self.headers.push(h.to_string());
        self
    }
    pub fn id(mut self, id: &str) -> Self {
        self.message_id = Some(format!("<{id}>"));
        self
    }
    pub fn no_id(mut self) -> Self {
        self.message_id = None;
        self
    }
    pub fn build(&self) -> String {
        let mut s = String::new();
        for h in &self.headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        if let Some(id) = &self.message_id {
            s.push_str(&format!("Message-ID: {id}\r\n"));
        }
        s.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        s.push_str(&self.body.replace('\n', "\r\n"));
        s.push_str("\r\n");
        s
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "m{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What one delivery pass is expected to report.
pub fn report(sent: usize, retried: usize, failed: usize) -> ticketgate::outbox::DeliveryReport {
    ticketgate::outbox::DeliveryReport {
        sent,
        retried,
        failed,
    }
}
