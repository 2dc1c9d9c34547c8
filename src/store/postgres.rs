//! The PostgreSQL store: the same [`Store`] / [`WriteTx`] contract as SQLite, for several
//! instances sharing one database.
//!
//! The traits are synchronous and are called from inside a Tokio runtime (the daemon loop),
//! where neither the sync `postgres` crate nor a nested `Runtime::block_on` may run. So each
//! connection gets its own thread with a current-thread runtime that connects and drives the
//! `tokio_postgres::Connection`; the caller's thread only talks to it through the `Client`,
//! whose futures are channel sends and receives, polled here by a small [`block_on`] that
//! parks the thread. Every wait has a deadline: a dead or silent server gives a
//! [`StoreError`], and the next call opens a new connection.
//!
//! Writers are serialized across instances like SQLite's `BEGIN IMMEDIATE`: a write
//! transaction takes a transaction-level advisory lock first. Outbox claims do not take it:
//! they use `FOR UPDATE SKIP LOCKED`, so several senders never claim the same row.

use super::sqlite::fnv64;
use super::*;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio_postgres::error::Severity;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_declared_size.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_imap_uids.sql"),
    ),
];

/// Advisory lock key taken by every write transaction ("tgwriter").
pub const WRITE_LOCK: i64 = 0x7467_7772_6974_6572;
/// Advisory lock key held while migrating ("tgmigrat").
const MIGRATE_LOCK: i64 = 0x7467_6d69_6772_6174;

/// How long one call may wait for the server (including a writer waiting for the lock)
/// before the connection is given up.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Connection timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A PostgreSQL database behind the store traits. Reconnects on the next call after its
/// connection died.
pub struct PgStore {
    config: Config,
    /// `postgres://USER@HOST:PORT/DATABASE`, without the password, for messages.
    display: String,
    conn: Option<Conn>,
}

impl PgStore {
    /// `failed` or `dead`, under the claim's fence.
    fn mark_final(&mut self, claim: Claim, state: &str, error: &str) -> Result<bool> {
        let n = self.conn()?.execute(
            "UPDATE outbox SET state = $3, last_error = $4 \
             WHERE id = $1 AND state = 'sending' AND attempts = $2",
            &[&claim.id, &claim.attempts, &state, &error],
        )?;
        Ok(n == 1)
    }

    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`).
    /// Errors name the host, port, database and user, never the password.
    pub fn open(url: &str) -> Result<PgStore> {
        let mut config: Config = url.parse().map_err(|e| StoreError::Open {
            path: "the PostgreSQL URL in database.url".into(),
            detail: format!(
                "{}: write e.g. postgres://USER:PASSWORD@HOST:5432/DATABASE",
                pg_message(&e)
            ),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ticketgate");
        }
        // A vanished instance must not hold the writer lock for the kernel's default two
        // hours: TCP keepalives find a dead peer within about a minute, and the server ends
        // a transaction left idle (no statement for a minute; ours never pause that long).
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_options().is_none() {
            config.options("-c idle_in_transaction_session_timeout=60s");
        }
        let display = describe(&config);
        let mut store = PgStore {
            config,
            display,
            conn: None,
        };
        store.conn()?;
        Ok(store)
    }

    /// Applies the migrations not yet recorded in `schema_migrations`, each in its own
    /// transaction, under a session advisory lock so that instances starting together do
    /// not migrate twice.
    pub fn migrate(&mut self) -> Result<()> {
        let c = self.conn()?;
        c.batch(&format!("SELECT pg_advisory_lock({MIGRATE_LOCK})"))?;
        let result = migrate_locked(c);
        let unlocked = c.batch(&format!("SELECT pg_advisory_unlock({MIGRATE_LOCK})"));
        result?;
        unlocked
    }

    /// The open connection, or a new one when there is none or it died.
    fn conn(&mut self) -> Result<&mut Conn> {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.broken || c.client.is_closed())
        {
            self.conn = None;
        }
        if self.conn.is_none() {
            let conn = Conn::connect(&self.config).map_err(|detail| StoreError::Open {
                path: self.display.clone(),
                detail: format!(
                    "{detail}. Check that the PostgreSQL server is running and accepts TCP connections \
                     there, and that the user, password and database name in database.url are right"
                ),
            })?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connection just set"))
    }
}

fn migrate_locked(c: &mut Conn) -> Result<()> {
    c.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    for (version, sql) in MIGRATIONS {
        let done = c
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )?
            .is_some();
        if done {
            continue;
        }
        c.batch("BEGIN")?;
        let applied = c.batch(sql).and_then(|()| {
            c.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
        });
        match applied {
            Ok(_) => c.batch("COMMIT")?,
            Err(e) => {
                let _ = c.batch("ROLLBACK");
                return Err(e);
            }
        }
        tracing::info!(version, "database migration applied");
    }
    Ok(())
}

/// `postgres://USER@HOST:PORT/DATABASE` without the password.
fn describe(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("postgres://{at}{}/{db}", hosts.join(","))
}

/// A tokio-postgres error with the server's own message when there is one.
pub(super) fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(d) = db.detail() {
            s.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// Whether `e` means the session is over: the connection closed or failed, or the server
/// ended it (`FATAL`, e.g. terminated by an administrator or shutting down).
fn ends_session(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        return matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        ) || db.code().code().starts_with("57P");
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

// ---------------------------------------------------------------------------------------
// Driving futures from a synchronous caller.

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between wake-ups; `None` when `timeout` passed first.
/// Uses nothing from Tokio, so it works inside a runtime's `block_on` too.
fn block_on<F: Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}

/// One connection: the client, its prepared statements, and the thread driving it.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Tells the driving thread to drop the connection at once (after a timeout).
    abort: Option<tokio::sync::oneshot::Sender<()>>,
    /// A call timed out or found the connection closed: open a new one on the next call.
    broken: bool,
}

impl Conn {
    fn connect(config: &Config) -> std::result::Result<Conn, String> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<()>();
        let config = config.clone();
        let wait = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT)
            + Duration::from_secs(5);
        std::thread::Builder::new()
            .name("ticketgate-pg".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start the connection's runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let connection = match config.connect(NoTls).await {
                        Ok((client, connection)) => {
                            if ready_tx.send(Ok(client)).is_err() {
                                return; // the caller gave up waiting
                            }
                            connection
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(pg_message(&e)));
                            return;
                        }
                    };
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        r = &mut connection => {
                            if let Err(e) = r {
                                tracing::warn!(error = %pg_message(&e), "PostgreSQL connection lost");
                            }
                        }
                        r = abort_rx => {
                            // Sender dropped without a word: the store let the client go;
                            // finish the connection cleanly (it ends once the client is gone).
                            if r.is_err() {
                                let _ = connection.await;
                            }
                        }
                    }
                });
            })
            .map_err(|e| format!("cannot start the connection's thread: {e}"))?;
        let client = match ready_rx.recv_timeout(wait) {
            Ok(r) => r?,
            Err(_) => return Err(format!("no connection after {} s", wait.as_secs())),
        };
        Ok(Conn {
            client,
            statements: HashMap::new(),
            abort: Some(abort_tx),
            broken: false,
        })
    }

    /// Waits for a client future; a timeout or a closed connection marks it broken.
    fn wait<T>(
        &mut self,
        result: Option<std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        match result {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => {
                if self.client.is_closed() || ends_session(&e) {
                    self.broken = true;
                }
                Err(StoreError::Postgres(e))
            }
            None => {
                self.broken = true;
                if let Some(abort) = self.abort.take() {
                    let _ = abort.send(());
                }
                Err(StoreError::Other(format!(
                    "PostgreSQL did not answer within {} s; the connection was dropped and will be reopened",
                    CALL_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// The prepared statement for `sql`, prepared once per connection.
    fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let r = block_on(self.client.prepare(sql), CALL_TIMEOUT);
        let st = self.wait(r)?;
        self.statements.insert(sql, st.clone());
        Ok(st)
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let st = self.statement(sql)?;
        let r = block_on(self.client.query(&st, params), CALL_TIMEOUT);
        self.wait(r)
    }

    /// The first row, if any (like SQLite's `query_row(..).optional()`).
    fn query_opt(&mut self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Other(format!("no row returned by `{sql}`")))
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        let st = self.statement(sql)?;
        let r = block_on(self.client.execute(&st, params), CALL_TIMEOUT);
        self.wait(r)
    }

    /// Runs statements without parameters through the simple protocol (one round trip).
    fn batch(&mut self, sql: &str) -> Result<()> {
        let r = block_on(self.client.batch_execute(sql), CALL_TIMEOUT);
        self.wait(r)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.broken
            && let Some(abort) = self.abort.take()
        {
            let _ = abort.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rows.

macro_rules! ticket_columns {
    () => {
        "customer, support_key, plan, language, profile, issue_type, status, severity, \
         stated_severity, subject, requester, requester_name, reason, parent_id, missing_info, followup_base_at, \
         followup_stage, survey_score, sla_target_secs, sla_started_at, sla_running_since, sla_elapsed_secs, \
         sla_due_at, responded_at, breached_at, created_at, updated_at"
    };
}

fn small(v: i16) -> std::result::Result<u8, StoreError> {
    u8::try_from(v).map_err(|_| StoreError::Other(format!("value {v} out of range for u8")))
}

/// A stored name this version must know (a status, a profile): an unknown one is an error
/// naming the ticket, never a silent fallback.
fn known<T>(r: &Row, col: usize, parse: fn(&str) -> Option<T>) -> Result<T> {
    let v: String = r.try_get(col)?;
    parse(&v).ok_or_else(|| {
        let id: i64 = r.try_get(0).unwrap_or_default();
        StoreError::Other(format!(
            "ticket #{id}: `{v}` is not a value this version knows (column {col})"
        ))
    })
}

fn ticket_row(r: &Row) -> Result<TicketRow> {
    let missing: String = r.try_get(15)?;
    Ok(TicketRow {
        id: r.try_get(0)?,
        customer: r.try_get(1)?,
        support_key: r.try_get(2)?,
        plan: r.try_get(3)?,
        language: r.try_get(4)?,
        profile: known(r, 5, Profile::parse)?,
        issue_type: r.try_get(6)?,
        status: known(r, 7, Status::parse)?,
        severity: small(r.try_get(8)?)?,
        stated_severity: r.try_get(9)?,
        subject: r.try_get(10)?,
        requester: r.try_get(11)?,
        requester_name: r.try_get(12)?,
        reason: r.try_get(13)?,
        parent_id: r.try_get(14)?,
        missing_info: missing
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        followup_base_at: r.try_get(16)?,
        followup_stage: r.try_get(17)?,
        survey_score: r.try_get::<_, Option<i16>>(18)?.map(small).transpose()?,
        sla: SlaState {
            target_secs: r.try_get(19)?,
            started_at: r.try_get(20)?,
            running_since: r.try_get(21)?,
            elapsed_secs: r.try_get(22)?,
            due_at: r.try_get(23)?,
            responded_at: r.try_get(24)?,
            breached_at: r.try_get(25)?,
        },
        created_at: r.try_get(26)?,
        updated_at: r.try_get(27)?,
    })
}

fn timer_row(r: &Row) -> Result<Timer> {
    Ok(Timer {
        ticket_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        due_at: r.try_get(2)?,
    })
}

fn ticket(c: &mut Conn, id: i64) -> Result<Option<TicketRow>> {
    c.query_opt(
        concat!(
            "SELECT id, ",
            ticket_columns!(),
            " FROM tickets WHERE id = $1"
        ),
        &[&id],
    )?
    .map(|r| ticket_row(&r))
    .transpose()
}

// ---------------------------------------------------------------------------------------
// Write transactions.

struct PgTx<'c> {
    conn: &'c mut Conn,
    /// COMMIT or ROLLBACK was sent.
    done: bool,
    /// A statement failed since the last rollback to a savepoint: PostgreSQL has aborted the
    /// transaction, and a COMMIT would silently roll it back.
    failed: bool,
}

impl PgTx<'_> {
    fn check<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }
    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let r = self.conn.query(sql, params);
        self.check(r)
    }
    fn query_opt(&mut self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        let r = self.conn.query_opt(sql, params);
        self.check(r)
    }
    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        let r = self.conn.query_one(sql, params);
        self.check(r)
    }
    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        let r = self.conn.execute(sql, params);
        self.check(r)
    }
    fn batch(&mut self, sql: &str) -> Result<()> {
        let r = self.conn.batch(sql);
        self.check(r)
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if !self.done && !self.conn.broken && !self.conn.client.is_closed() {
            // Errors are recorded on the connection (broken: reopened on the next call).
            let _ = self.conn.batch("ROLLBACK");
        }
    }
}

impl WriteTx for PgTx<'_> {
    fn savepoint(&mut self) -> Result<()> {
        self.batch("SAVEPOINT mail")
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.batch("RELEASE SAVEPOINT mail")
    }

    fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.batch("ROLLBACK TO SAVEPOINT mail; RELEASE SAVEPOINT mail")?;
        self.failed = false;
        Ok(())
    }

    fn inbound_exists(&mut self, dedup_key: &str) -> Result<bool> {
        let row = self.query_one(
            "SELECT EXISTS (SELECT 1 FROM inbound WHERE dedup_hash = $1 AND dedup_key = $2)",
            &[&fnv64(dedup_key), &dedup_key],
        )?;
        Ok(row.try_get(0)?)
    }

    fn ticket_for_message_id(&mut self, message_id: &str) -> Result<Option<i64>> {
        if let Some(r) = self.query_opt(
            "SELECT ticket_id FROM message_ids WHERE message_id = $1",
            &[&message_id],
        )? {
            return Ok(Some(r.try_get(0)?));
        }
        let key = format!("mid:{message_id}");
        self.query_opt(
            "SELECT ticket_id FROM inbound WHERE dedup_hash = $1 AND dedup_key = $2 \
             AND ticket_id IS NOT NULL ORDER BY id LIMIT 1",
            &[&fnv64(&key), &key],
        )?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(Into::into)
    }

    fn ticket(&mut self, id: i64) -> Result<Option<TicketRow>> {
        let r = ticket(self.conn, id);
        self.check(r)
    }

    fn automatic_sent_since(&mut self, recipient: &str, since: DateTime<Utc>) -> Result<u32> {
        let row = self.query_one(
            "SELECT count(*) FROM outbox WHERE recipient_hash = $1 AND created_at >= $2 \
             AND automatic AND state <> 'suppressed' AND recipient = $3",
            &[&fnv64(recipient), &since, &recipient],
        )?;
        let n: i64 = row.try_get(0)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn insert_ticket(&mut self, t: &TicketRow) -> Result<i64> {
        let missing = t.missing_info.join("\n");
        let severity = i16::from(t.severity);
        let survey = t.survey_score.map(i16::from);
        let row = self.query_one(
            concat!(
                "INSERT INTO tickets (",
                ticket_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24, $25, $26, $27) RETURNING id"
            ),
            &[
                &t.customer,
                &t.support_key,
                &t.plan,
                &t.language,
                &t.profile.name(),
                &t.issue_type,
                &t.status.as_str(),
                &severity,
                &t.stated_severity,
                &t.subject,
                &t.requester,
                &t.requester_name,
                &t.reason,
                &t.parent_id,
                &missing,
                &t.followup_base_at,
                &t.followup_stage,
                &survey,
                &t.sla.target_secs,
                &t.sla.started_at,
                &t.sla.running_since,
                &t.sla.elapsed_secs,
                &t.sla.due_at,
                &t.sla.responded_at,
                &t.sla.breached_at,
                &t.created_at,
                &t.updated_at,
            ],
        )?;
        Ok(row.try_get(0)?)
    }

    fn save_ticket(&mut self, t: &TicketRow) -> Result<()> {
        let missing = t.missing_info.join("\n");
        let severity = i16::from(t.severity);
        let survey = t.survey_score.map(i16::from);
        self.execute(
            "UPDATE tickets SET status = $2, severity = $3, issue_type = $4, reason = $5, missing_info = $6, \
             followup_base_at = $7, followup_stage = $8, survey_score = $9, sla_target_secs = $10, \
             sla_started_at = $11, sla_running_since = $12, sla_elapsed_secs = $13, sla_due_at = $14, \
             responded_at = $15, breached_at = $16, updated_at = $17, language = $18 WHERE id = $1",
            &[
                &t.id,
                &t.status.as_str(),
                &severity,
                &t.issue_type,
                &t.reason,
                &missing,
                &t.followup_base_at,
                &t.followup_stage,
                &survey,
                &t.sla.target_secs,
                &t.sla.started_at,
                &t.sla.running_since,
                &t.sla.elapsed_secs,
                &t.sla.due_at,
                &t.sla.responded_at,
                &t.sla.breached_at,
                &t.updated_at,
                &t.language,
            ],
        )?;
        Ok(())
    }

    fn touch_ticket(&mut self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.execute(
            "UPDATE tickets SET updated_at = $2 WHERE id = $1",
            &[&id, &now],
        )?;
        Ok(())
    }

    fn insert_history(
        &mut self,
        ticket_id: i64,
        at: DateTime<Utc>,
        from: &str,
        to: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO status_history (ticket_id, at, from_status, to_status, actor, reason) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&ticket_id, &at, &from, &to, &actor, &reason],
        )?;
        Ok(())
    }

    fn insert_escalation(
        &mut self,
        ticket_id: i64,
        at: DateTime<Utc>,
        severity: u8,
        due_at: DateTime<Utc>,
        target_secs: i64,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO escalations (ticket_id, at, severity, due_at, target_secs) VALUES ($1, $2, $3, $4, $5)",
            &[&ticket_id, &at, &i16::from(severity), &due_at, &target_secs],
        )?;
        Ok(())
    }

    fn set_timer(&mut self, ticket_id: i64, kind: &str, due_at: DateTime<Utc>) -> Result<()> {
        self.execute(
            "INSERT INTO timers (ticket_id, kind, due_at) VALUES ($1, $2, $3) \
             ON CONFLICT (ticket_id, kind) DO UPDATE SET due_at = excluded.due_at",
            &[&ticket_id, &kind, &due_at],
        )?;
        Ok(())
    }

    fn clear_timer(&mut self, ticket_id: i64, kind: &str) -> Result<()> {
        self.execute(
            "DELETE FROM timers WHERE ticket_id = $1 AND kind = $2",
            &[&ticket_id, &kind],
        )?;
        Ok(())
    }

    fn due_timers(&mut self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>> {
        let limit = limit as i64;
        self.query(
            "SELECT ticket_id, kind, due_at FROM timers WHERE due_at <= $1 \
             ORDER BY due_at, ticket_id LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&now, &limit],
        )?
        .iter()
        .map(timer_row)
        .collect()
    }

    fn insert_inbound(&mut self, m: &NewInbound<'_>) -> Result<i64> {
        let size = m.raw.len() as i64;
        let declared_size = m.declared_size.map(|d| d as i64);
        let row = self.query_one(
            "INSERT INTO inbound (dedup_key, message_id, source, received_at, from_addr, subject, size, raw, \
             outcome, reason_code, reason, ticket_id, dedup_hash, declared_size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
            &[
                &m.dedup_key,
                &m.message_id,
                &m.source,
                &m.received_at,
                &m.from,
                &m.subject,
                &size,
                &m.raw,
                &m.outcome,
                &m.reason_code,
                &m.reason,
                &m.ticket_id,
                &fnv64(m.dedup_key),
                &declared_size,
            ],
        )?;
        Ok(row.try_get(0)?)
    }

    fn insert_article(&mut self, a: &NewArticle<'_>) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO articles (ticket_id, inbound_id, kind, author, body, quoted, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &a.ticket_id,
                &a.inbound_id,
                &a.kind,
                &a.author,
                &a.body,
                &a.quoted,
                &a.now,
            ],
        )?;
        Ok(row.try_get(0)?)
    }

    fn take_for_replay(&mut self, id: i64) -> Result<Option<(Vec<u8>, String)>> {
        let Some(row) = self.query_opt(
            "SELECT raw, source, dedup_key FROM inbound WHERE id = $1 AND outcome = 'quarantined'",
            &[&id],
        )?
        else {
            return Ok(None);
        };
        let raw: Vec<u8> = row.try_get(0)?;
        let source: String = row.try_get(1)?;
        let key: String = row.try_get(2)?;
        let retired = format!("replayed:{id}:{key}");
        self.execute(
            "UPDATE inbound SET outcome = 'replayed', dedup_key = $2, dedup_hash = $3 WHERE id = $1",
            &[&id, &retired, &fnv64(&retired)],
        )?;
        Ok(Some((raw, source)))
    }

    fn inbound_declared_size(&mut self, id: i64) -> Result<Option<usize>> {
        let Some(row) =
            self.query_opt("SELECT declared_size FROM inbound WHERE id = $1", &[&id])?
        else {
            return Ok(None);
        };
        let size: Option<i64> = row.try_get(0)?;
        Ok(size.map(|s| s as usize))
    }

    fn set_inbound_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        reason_code: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "UPDATE inbound SET outcome = $2, reason_code = $3, reason = $4 WHERE id = $1",
            &[&id, &outcome, &reason_code, &reason],
        )?;
        Ok(())
    }

    fn insert_attachment(
        &mut self,
        article_id: i64,
        filename: &str,
        content_type: &str,
        size: usize,
        data: Option<&[u8]>,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO attachments (article_id, filename, content_type, size, data) VALUES ($1, $2, $3, $4, $5)",
            &[&article_id, &filename, &content_type, &(size as i64), &data],
        )?;
        Ok(())
    }

    fn link_message_id(&mut self, message_id: &str, ticket_id: i64) -> Result<()> {
        self.execute(
            "INSERT INTO message_ids (message_id, ticket_id) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING",
            &[&message_id, &ticket_id],
        )?;
        Ok(())
    }

    fn enqueue(&mut self, m: &NewOutbound<'_>) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO outbox (ticket_id, inbound_id, kind, recipient, subject, message_id, automatic, body, \
             state, next_attempt_at, last_error, created_at, recipient_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $12) RETURNING id",
            &[
                &m.ticket_id,
                &m.inbound_id,
                &m.kind,
                &m.recipient,
                &m.subject,
                &m.message_id,
                &m.automatic,
                &m.body,
                &m.state,
                &m.now,
                &m.note,
                &fnv64(m.recipient),
            ],
        )?;
        Ok(row.try_get(0)?)
    }

    fn set_mailbox_state(&mut self, mailbox: &str, state: MailboxState) -> Result<()> {
        self.execute(
            "INSERT INTO mailboxes (name, uid_validity, last_uid) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET last_uid = CASE WHEN mailboxes.uid_validity = excluded.uid_validity \
             THEN GREATEST(mailboxes.last_uid, excluded.last_uid) ELSE excluded.last_uid END, \
             uid_validity = excluded.uid_validity",
            &[
                &mailbox,
                &i64::from(state.uid_validity),
                &i64::from(state.last_uid),
            ],
        )?;
        Ok(())
    }

    fn set_uid_dispositions(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        uids: &[(u32, UidDisposition)],
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let list: Vec<i64> = uids.iter().map(|(u, _)| i64::from(*u)).collect();
        let what: Vec<&str> = uids.iter().map(|(_, d)| d.as_str()).collect();
        self.execute(
            "INSERT INTO imap_uids (mailbox, uid_validity, uid, disposition) \
             SELECT $1, $2, u, d FROM UNNEST($3::BIGINT[], $4::TEXT[]) AS t(u, d) \
             ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET disposition = excluded.disposition",
            &[&mailbox, &i64::from(uid_validity), &list, &what],
        )?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.failed {
            // PostgreSQL answers COMMIT in an aborted transaction with a silent ROLLBACK.
            return Err(StoreError::Other(
                "a statement of this transaction failed, so it was rolled back instead of committed"
                    .into(),
            ));
        }
        self.done = true;
        self.conn.batch("COMMIT")
    }
}

// ---------------------------------------------------------------------------------------
// The store.

fn u32_col(r: &Row, i: usize) -> Result<u32> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| StoreError::Other(format!("value {v} out of range for u32")))
}

impl Store for PgStore {
    fn write(&mut self) -> Result<Box<dyn WriteTx + '_>> {
        // One round trip; READ COMMITTED then sees all the previous writer committed.
        let begin = format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})");
        let mut result = self.conn()?.batch(&begin);
        if result.is_err()
            && self
                .conn
                .as_ref()
                .is_some_and(|c| c.broken || c.client.is_closed())
        {
            // The connection died while idle, which shows only when it is used: nothing was
            // done yet, so BEGIN once more on a new connection.
            result = self.conn()?.batch(&begin);
        }
        let conn = self.conn.as_mut().expect("connection opened above");
        if let Err(e) = result {
            if !conn.broken && !conn.client.is_closed() {
                let _ = conn.batch("ROLLBACK"); // BEGIN may have run without the lock
            }
            return Err(e);
        }
        Ok(Box::new(PgTx {
            conn,
            done: false,
            failed: false,
        }))
    }

    fn tickets(&mut self, limit: usize) -> Result<Vec<TicketRow>> {
        let limit = limit as i64;
        self.conn()?
            .query(
                concat!(
                    "SELECT id, ",
                    ticket_columns!(),
                    " FROM tickets ORDER BY id LIMIT $1"
                ),
                &[&limit],
            )?
            .iter()
            .map(ticket_row)
            .collect()
    }

    fn ticket_with_articles(&mut self, id: i64) -> Result<Option<(TicketRow, Vec<ArticleRow>)>> {
        let c = self.conn()?;
        let Some(t) = ticket(c, id)? else {
            return Ok(None);
        };
        let mut articles = c
            .query(
                "SELECT id, kind, author, body, quoted, created_at FROM articles WHERE ticket_id = $1 ORDER BY id",
                &[&id],
            )?
            .iter()
            .map(|r| {
                Ok(ArticleRow {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    author: r.try_get(2)?,
                    body: r.try_get(3)?,
                    quoted: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    attachments: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !articles.is_empty() {
            let rows = c.query(
                "SELECT a.article_id, a.filename, a.content_type, a.size, a.data IS NOT NULL \
                 FROM attachments a JOIN articles r ON r.id = a.article_id \
                 WHERE r.ticket_id = $1 ORDER BY a.id",
                &[&id],
            )?;
            let index: HashMap<i64, usize> = articles
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id, i))
                .collect();
            for r in rows {
                let article: i64 = r.try_get(0)?;
                if let Some(&i) = index.get(&article) {
                    articles[i].attachments.push(AttachmentInfo {
                        filename: r.try_get(1)?,
                        content_type: r.try_get(2)?,
                        size: r.try_get(3)?,
                        kept: r.try_get(4)?,
                    });
                }
            }
        }
        Ok(Some((t, articles)))
    }

    fn outbox(&mut self, limit: usize) -> Result<Vec<OutboxRow>> {
        let limit = limit as i64;
        self.conn()?
            .query(
                "SELECT id, ticket_id, kind, recipient, subject, message_id, state, attempts, next_attempt_at, \
                 last_error, created_at, sent_at FROM outbox ORDER BY id LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get(0)?,
                    ticket_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    recipient: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    message_id: r.try_get(5)?,
                    state: r.try_get(6)?,
                    attempts: r.try_get(7)?,
                    next_attempt_at: r.try_get(8)?,
                    last_error: r.try_get(9)?,
                    created_at: r.try_get(10)?,
                    sent_at: r.try_get(11)?,
                })
            })
            .collect()
    }

    fn quarantine(&mut self, limit: usize) -> Result<Vec<QuarantineRow>> {
        let limit = limit as i64;
        self.conn()?
            .query(
                "SELECT id, received_at, source, from_addr, subject, message_id, reason_code, reason, \
                 COALESCE(declared_size, size) \
                 FROM inbound WHERE outcome = 'quarantined' ORDER BY id LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(|r| {
                Ok(QuarantineRow {
                    id: r.try_get(0)?,
                    received_at: r.try_get(1)?,
                    source: r.try_get(2)?,
                    from: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    message_id: r.try_get(5)?,
                    reason_code: r.try_get::<_, Option<String>>(6)?.unwrap_or_default(),
                    reason: r.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
                    size: r.try_get(8)?,
                })
            })
            .collect()
    }

    fn inbound_raw(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        self.conn()?
            .query_opt("SELECT raw FROM inbound WHERE id = $1", &[&id])?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(Into::into)
    }

    fn outbox_body(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        self.conn()?
            .query_opt("SELECT body FROM outbox WHERE id = $1", &[&id])?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(Into::into)
    }

    /// Two autocommit statements, no writer lock: rows another sender is claiming right now
    /// are skipped (`FOR UPDATE SKIP LOCKED`), so each row is claimed by one sender.
    fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        max_attempts: u32,
    ) -> Result<Vec<OutboxMail>> {
        let c = self.conn()?;
        let max_attempts = i64::from(max_attempts);
        let limit = limit as i64;
        c.execute(
            "UPDATE outbox SET state = 'dead', \
             last_error = 'gave up after ' || attempts || ' attempts (outbound.max_attempts): the sender stopped during the last one' \
             WHERE id IN (SELECT id FROM outbox WHERE state = 'sending' AND next_attempt_at <= $1 \
                          AND attempts >= $2 FOR UPDATE SKIP LOCKED)",
            &[&now, &max_attempts],
        )?;
        // The `attempts` condition keeps a spent lapsed claim that another sender is marking
        // dead right now from being claimed here.
        let rows = c.query(
            "WITH due AS (SELECT id, next_attempt_at FROM outbox \
                          WHERE state IN ('pending', 'retry', 'sending') AND next_attempt_at <= $1 \
                          AND NOT (state = 'sending' AND attempts >= $4) \
                          ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE outbox o SET state = 'sending', attempts = o.attempts + 1, next_attempt_at = $2 \
             FROM due WHERE o.id = due.id \
             RETURNING o.id, o.kind, o.recipient, o.message_id, o.attempts, o.body, due.next_attempt_at",
            &[&now, &lease_until, &limit, &max_attempts],
        )?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                let due: DateTime<Utc> = r.try_get(6)?;
                Ok((
                    due,
                    OutboxMail {
                        id: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        recipient: r.try_get(2)?,
                        message_id: r.try_get(3)?,
                        attempts: r.try_get(4)?,
                        body: r.try_get(5)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|(due, m)| (*due, m.id));
        Ok(claimed.into_iter().map(|(_, m)| m).collect())
    }

    fn mark_sent(&mut self, claim: Claim, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn()?.execute(
            "UPDATE outbox SET state = 'sent', sent_at = $3, last_error = NULL \
             WHERE id = $1 AND state = 'sending' AND attempts = $2",
            &[&claim.id, &claim.attempts, &now],
        )?;
        Ok(n == 1)
    }

    fn mark_sent_many(&mut self, claims: &[Claim], now: DateTime<Utc>) -> Result<usize> {
        let ids: Vec<i64> = claims.iter().map(|c| c.id).collect();
        let attempts: Vec<i64> = claims.iter().map(|c| c.attempts).collect();
        let n = self.conn()?.execute(
            "UPDATE outbox o SET state = 'sent', sent_at = $3, last_error = NULL \
             FROM unnest($1::bigint[], $2::bigint[]) AS c(id, attempts) \
             WHERE o.id = c.id AND o.state = 'sending' AND o.attempts = c.attempts",
            &[&ids, &attempts, &now],
        )?;
        Ok(n as usize)
    }

    fn mark_retry(&mut self, claim: Claim, next_at: DateTime<Utc>, error: &str) -> Result<bool> {
        let n = self.conn()?.execute(
            "UPDATE outbox SET state = 'retry', next_attempt_at = $3, last_error = $4 \
             WHERE id = $1 AND state = 'sending' AND attempts = $2",
            &[&claim.id, &claim.attempts, &next_at, &error],
        )?;
        Ok(n == 1)
    }

    fn mark_failed(&mut self, claim: Claim, error: &str) -> Result<bool> {
        self.mark_final(claim, "failed", error)
    }

    fn mark_dead(&mut self, claim: Claim, error: &str) -> Result<bool> {
        self.mark_final(claim, "dead", error)
    }

    fn release_claims(&mut self, claims: &[Claim], now: DateTime<Utc>) -> Result<()> {
        let ids: Vec<i64> = claims.iter().map(|c| c.id).collect();
        let attempts: Vec<i64> = claims.iter().map(|c| c.attempts).collect();
        self.conn()?.execute(
            "UPDATE outbox o SET attempts = o.attempts - 1, next_attempt_at = $3, \
             state = CASE WHEN o.attempts > 1 THEN 'retry' ELSE 'pending' END \
             FROM unnest($1::bigint[], $2::bigint[]) AS c(id, attempts) \
             WHERE o.id = c.id AND o.state = 'sending' AND o.attempts = c.attempts",
            &[&ids, &attempts, &now],
        )?;
        Ok(())
    }

    fn retry_outbox(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn()?.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2 \
             WHERE id = $1 AND state IN ('failed', 'dead')",
            &[&id, &now],
        )?;
        Ok(n == 1)
    }

    fn next_due(&mut self) -> Result<Option<DateTime<Utc>>> {
        let row = self.conn()?.query_one(
            "SELECT min(next_attempt_at) FROM outbox WHERE state IN ('pending', 'retry', 'sending')",
            &[],
        )?;
        Ok(row.try_get(0)?)
    }

    fn next_timer(&mut self) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .conn()?
            .query_one("SELECT min(due_at) FROM timers", &[])?;
        Ok(row.try_get(0)?)
    }

    fn timers(&mut self, ticket_id: i64) -> Result<Vec<Timer>> {
        self.conn()?
            .query(
                "SELECT ticket_id, kind, due_at FROM timers WHERE ticket_id = $1 ORDER BY kind",
                &[&ticket_id],
            )?
            .iter()
            .map(timer_row)
            .collect()
    }

    fn escalations(&mut self, ticket_id: i64) -> Result<Vec<Escalation>> {
        self.conn()?
            .query(
                "SELECT at, severity, due_at FROM escalations WHERE ticket_id = $1 ORDER BY id",
                &[&ticket_id],
            )?
            .iter()
            .map(|r| {
                Ok(Escalation {
                    at: r.try_get(0)?,
                    severity: small(r.try_get(1)?)?,
                    due_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    fn mailbox_state(&mut self, mailbox: &str) -> Result<Option<MailboxState>> {
        self.conn()?
            .query_opt(
                "SELECT uid_validity, last_uid FROM mailboxes WHERE name = $1",
                &[&mailbox],
            )?
            .map(|r| {
                Ok(MailboxState {
                    uid_validity: u32_col(&r, 0)?,
                    last_uid: u32_col(&r, 1)?,
                })
            })
            .transpose()
    }

    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self.conn()?.execute(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.holder = excluded.holder OR leases.until <= $3",
            &[&name, &holder, &now, &until],
        )?;
        Ok(n == 1)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        self.conn()?.execute(
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )?;
        Ok(())
    }

    fn uid_states(&mut self, mailbox: &str, uid_validity: u32) -> Result<Vec<UidState>> {
        let rows = self.conn()?.query(
            "SELECT uid, disposition, failures FROM imap_uids \
             WHERE mailbox = $1 AND uid_validity = $2 ORDER BY uid",
            &[&mailbox, &i64::from(uid_validity)],
        )?;
        rows.iter()
            .map(|r| {
                let uid = u32_col(r, 0)?;
                let d: String = r.try_get(1)?;
                let failures: i32 = r.try_get(2)?;
                Ok(UidState {
                    uid,
                    disposition: UidDisposition::parse(&d).ok_or_else(|| {
                        StoreError::Other(format!(
                            "imap_uids row ({mailbox}, {uid_validity}, {uid}) has the unknown disposition `{d}`"
                        ))
                    })?,
                    failures: u32::try_from(failures).unwrap_or(0),
                })
            })
            .collect()
    }

    fn forget_uids(&mut self, mailbox: &str, uid_validity: u32, lo: u32, hi: u32) -> Result<()> {
        self.conn()?.execute(
            "DELETE FROM imap_uids WHERE mailbox = $1 AND (uid_validity <> $2 OR \
             (uid BETWEEN $3 AND $4 AND disposition IN ('stored', 'header_only')))",
            &[
                &mailbox,
                &i64::from(uid_validity),
                &i64::from(lo),
                &i64::from(hi),
            ],
        )?;
        Ok(())
    }

    fn set_uid_failures(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        uid: u32,
        failures: u32,
    ) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO imap_uids (mailbox, uid_validity, uid, disposition, failures) \
             VALUES ($1, $2, $3, 'failing', $4) ON CONFLICT (mailbox, uid_validity, uid) \
             DO UPDATE SET failures = excluded.failures WHERE imap_uids.disposition = 'failing'",
            &[
                &mailbox,
                &i64::from(uid_validity),
                &i64::from(uid),
                &i32::try_from(failures).unwrap_or(i32::MAX),
            ],
        )?;
        Ok(())
    }
}
