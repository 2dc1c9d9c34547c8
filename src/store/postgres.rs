//! The PostgreSQL store: the same [`Store`] / [`WriteTx`] contract as SQLite, for several
//! instances sharing one database, through sqlx.
//!
//! The traits are synchronous and are called from plain threads, from `spawn_blocking`
//! threads and from inside a Tokio runtime (the daemon loop, `#[tokio::test]`s). So every
//! call is a future spawned on one process-wide background runtime owned by this module
//! ([`runtime`]: two worker threads), and the calling thread waits for its answer on a
//! channel ([`run`]). The caller's own runtime, if any, is never used: nothing here needs a
//! runtime in the caller's context, and no sqlx object is ever dropped outside the background
//! runtime. Every call has a deadline ([`CALL_TIMEOUT`]): a vanished server is an error,
//! never a hang.
//!
//! A [`PgStore`] is a cheap handle on one [`PgPool`]; clones share it. A write transaction
//! ([`WriteTx`]) holds a pooled connection inside a `sqlx::Transaction` from call to call;
//! dropped without commit, it is rolled back by a task on the background runtime (the
//! caller's thread does no I/O in `Drop`). A pooled connection is checked before each use,
//! so one that died while idle is replaced at once.
//!
//! Writers are serialized across instances like SQLite's `BEGIN IMMEDIATE`: a write
//! transaction takes a transaction-level advisory lock first. Outbox claims do not take it:
//! they use `FOR UPDATE SKIP LOCKED`, so several senders never claim the same row.
//!
//! Claims and leases are measured on the database's clock (`clock_timestamp()`), not on the
//! callers': a claim or lease lasts the duration the caller asked for (`until - now`) from
//! the server's clock, and is lapsed when the server's clock says so. Hosts whose clocks
//! disagree therefore never both hold one. The due time of a `pending` or `retry` message is
//! the caller's (it was written by a caller's clock too); it decides only when a message is
//! first tried, never who holds it.

use super::sqlite::fnv64;
use super::*;
use futures_util::future::BoxFuture;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgDatabaseError, PgPool, PgPoolOptions, PgRow, PgSeverity,
};
use sqlx::{Connection, Postgres, Row, Transaction};
use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/postgres/0001_init.sql"))];

/// Advisory lock key taken by every write transaction ("tgwriter").
const WRITE_LOCK: i64 = 0x7467_7772_6974_6572;
/// Advisory lock key held while migrating ("tgmigrat").
const MIGRATE_LOCK: i64 = 0x7467_6d69_6772_6174;

/// How long one call may take (including a writer waiting for the lock) before it is given
/// up with an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of one store handle and its clones (one writer and several readers).
pub const POOL_SIZE: u32 = 8;

/// Set on every connection, unless the URL's `options` sets them. A vanished instance must
/// not hold the writer lock for the kernel's default two hours: the server probes an idle
/// client after 30 s (TCP keepalives) and ends a transaction left idle for a minute (ours
/// never pause that long). A silent server is the caller's [`CALL_TIMEOUT`].
const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("idle_in_transaction_session_timeout", "60s"),
    ("tcp_keepalives_idle", "30"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "3"),
];

// ---------------------------------------------------------------------------------------
// The background runtime.

/// The runtime every PostgreSQL future runs on, started on first use.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ticketgate-pg")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StoreError::Other(format!("cannot start the PostgreSQL runtime: {e}")))
}

/// Runs `fut` on the background runtime and waits for its output on this thread, at most
/// [`CALL_TIMEOUT`] (the future is then dropped there, with its connection).
fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(tokio::time::timeout(CALL_TIMEOUT, fut).await);
    });
    match rx.recv_timeout(CALL_TIMEOUT + Duration::from_secs(5)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(StoreError::Other(format!(
                "PostgreSQL did not answer within {} s; the call was given up (its connection is not reused)",
                CALL_TIMEOUT.as_secs()
            )))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Other(
            "a PostgreSQL call stopped without an answer (a panic in the driver)".into(),
        )),
    }
}

/// A call on one connection: a closure that borrows it for the future it returns.
trait Call<T>:
    for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T>> + Send + 'static
{
}
impl<T, F> Call<T> for F where
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T>> + Send + 'static
{
}

// ---------------------------------------------------------------------------------------
// The store.

/// A PostgreSQL database behind the store traits: a cheap handle on a connection pool;
/// clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    /// `postgres://USER@HOST:PORT/DATABASE`, without the password, for messages.
    display: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closes the pool's connections cleanly, on the runtime they belong to.
        let pool = self.pool.clone();
        if let Ok(rt) = runtime() {
            rt.spawn(async move { pool.close().await });
        }
    }
}

impl Shared {
    /// An error getting a connection: names the server, never the password.
    fn unreachable(&self, e: sqlx::Error) -> StoreError {
        let detail = match &e {
            sqlx::Error::PoolTimedOut => format!(
                "no connection within {} s (the server refuses or does not answer, or all {POOL_SIZE} connections are busy)",
                CONNECT_TIMEOUT.as_secs()
            ),
            _ => pg_message(&e),
        };
        open_error(&self.display, detail)
    }
}

fn open_error(display: &str, detail: String) -> StoreError {
    let lower = detail.to_lowercase();
    let hint = if lower.contains("certificate") || lower.contains("tls") || lower.contains("ssl") {
        "Check sslmode and sslrootcert (the CA file) in database.url, and that the server's \
         certificate names this host"
    } else {
        "Check that the PostgreSQL server is running and accepts TCP connections there, and \
         that the user, password and database name in database.url are right"
    };
    StoreError::Open {
        path: display.to_string(),
        detail: format!("{detail}. {hint}"),
    }
}

/// The connection options of a `postgres://` URL, with ticketgate's defaults: the
/// application name and the [`SESSION_SETTINGS`] not set by the URL. TLS comes from the URL
/// (`sslmode=disable|prefer|require|verify-ca|verify-full`, `sslrootcert=CA-FILE`; the
/// default is `prefer`).
fn connect_options(url: &str) -> Result<PgConnectOptions> {
    let mut options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Open {
        path: "the PostgreSQL URL in database.url".into(),
        detail: format!(
            "{}: write e.g. postgres://USER:PASSWORD@HOST:5432/DATABASE",
            pg_message(&e)
        ),
    })?;
    if options.get_application_name().is_none() {
        options = options.application_name("ticketgate");
    }
    let set = options.get_options().unwrap_or_default().to_string();
    let missing: Vec<(&str, &str)> = SESSION_SETTINGS
        .iter()
        .filter(|(k, _)| !set.contains(k))
        .copied()
        .collect();
    if !missing.is_empty() {
        options = options.options(missing);
    }
    Ok(options)
}

/// `postgres://USER@HOST:PORT/DATABASE` without the password.
fn describe(o: &PgConnectOptions) -> String {
    let host = match o.get_socket() {
        Some(path) => path.display().to_string(),
        None => o.get_host().to_string(),
    };
    let user = o.get_username();
    let db = o.get_database().unwrap_or(user);
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("postgres://{at}{host}:{}/{db}", o.get_port())
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`,
    /// optionally `?sslmode=verify-full&sslrootcert=CA-FILE`). Errors name the host, port,
    /// database and user, never the password.
    pub fn open(url: &str) -> Result<PgStore> {
        let options = connect_options(url)?;
        let display = describe(&options);
        run(async move {
            // One connection first, for the server's own words when it cannot be had (the
            // pool retries a refused connection until its deadline and says only that).
            let first = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
                .await
                .map_err(|_| {
                    open_error(
                        &display,
                        format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                    )
                })?
                .map_err(|e| open_error(&display, pg_message(&e)))?;
            let _ = first.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(POOL_SIZE)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(options);
            Ok(PgStore {
                shared: Arc::new(Shared { pool, display }),
            })
        })?
    }

    /// Whether `url` is a PostgreSQL URL this store accepts (for configuration checks).
    pub fn check_url(url: &str) -> std::result::Result<(), String> {
        connect_options(url).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Applies the migrations not yet recorded in `schema_migrations`, each in its own
    /// transaction, under a session advisory lock so that instances starting together do
    /// not migrate twice. Runs on a connection taken out of the pool and closed afterwards,
    /// so the session lock never stays with a pooled connection.
    pub fn migrate(&mut self) -> Result<()> {
        self.call(|c| {
            Box::pin(async move {
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATE_LOCK)
                    .execute(&mut *c)
                    .await?;
                let result = migrate_locked(c).await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATE_LOCK)
                    .execute(&mut *c)
                    .await;
                result?;
                unlocked?;
                Ok(())
            })
        })
    }

    /// Runs `f` on a pooled connection, on the background runtime.
    fn call<T: Send + 'static>(&self, f: impl Call<T>) -> Result<T> {
        let shared = self.shared.clone();
        run(async move {
            let mut conn = shared
                .pool
                .acquire()
                .await
                .map_err(|e| shared.unreachable(e))?;
            f(&mut conn).await
        })?
    }

    /// `failed` or `dead`, under the claim's fence.
    fn mark_final(&mut self, claim: Claim, state: &'static str, error: &str) -> Result<bool> {
        let error = error.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE outbox SET state = $3, last_error = $4 \
                     WHERE id = $1 AND state = 'sending' AND attempts = $2",
                )
                .bind(claim.id)
                .bind(claim.attempts)
                .bind(state)
                .bind(error)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
    }
}

async fn migrate_locked(c: &mut PgConnection) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *c)
    .await?;
    for &(version, sql) in MIGRATIONS {
        let done = sqlx::query("SELECT 1 FROM schema_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *c)
            .await?
            .is_some();
        if done {
            continue;
        }
        let mut tx = c.begin().await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "database migration applied");
    }
    Ok(())
}

/// A sqlx error with the server's own message when there is one.
pub(super) fn pg_message(e: &sqlx::Error) -> String {
    if let Some(db) = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<PgDatabaseError>())
    {
        let severity = match db.severity() {
            PgSeverity::Panic => "PANIC",
            PgSeverity::Fatal => "FATAL",
            PgSeverity::Error => "ERROR",
            PgSeverity::Warning => "WARNING",
            PgSeverity::Notice => "NOTICE",
            PgSeverity::Debug => "DEBUG",
            PgSeverity::Info => "INFO",
            PgSeverity::Log => "LOG",
        };
        let mut s = format!("{severity}: {} (SQLSTATE {})", db.message(), db.code());
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
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(&format!(": {c}"));
        }
        source = cause.source();
    }
    s
}

/// The longest claim or lease written: ten years.
const MAX_LEASE_MICROS: i64 = 10 * 366 * 86_400 * 1_000_000;

/// A claim's or lease's duration in microseconds, for
/// `clock_timestamp() + $n * interval '1 microsecond'`: from 0 to [`MAX_LEASE_MICROS`].
fn micros(d: chrono::Duration) -> i64 {
    d.num_microseconds()
        .unwrap_or(if d < chrono::Duration::zero() {
            0
        } else {
            MAX_LEASE_MICROS
        })
        .clamp(0, MAX_LEASE_MICROS)
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

fn ticket_row(r: &PgRow) -> Result<TicketRow> {
    let missing: String = r.try_get(15)?;
    Ok(TicketRow {
        id: r.try_get(0)?,
        customer: r.try_get(1)?,
        support_key: r.try_get(2)?,
        plan: r.try_get(3)?,
        language: r.try_get(4)?,
        profile: r.try_get(5)?,
        issue_type: r.try_get(6)?,
        status: r.try_get(7)?,
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
        survey_score: r.try_get::<Option<i16>, _>(18)?.map(small).transpose()?,
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

fn timer_row(r: &PgRow) -> Result<Timer> {
    Ok(Timer {
        ticket_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        due_at: r.try_get(2)?,
    })
}

fn u32_col(r: &PgRow, i: usize) -> Result<u32> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| StoreError::Other(format!("value {v} out of range for u32")))
}

async fn ticket(c: &mut PgConnection, id: i64) -> Result<Option<TicketRow>> {
    sqlx::query(concat!(
        "SELECT id, ",
        ticket_columns!(),
        " FROM tickets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .map(|r| ticket_row(&r))
    .transpose()
}

/// What a ticket's columns are written from (owned, to move into a future).
struct TicketValues {
    t: TicketRow,
    missing: String,
    severity: i16,
    survey: Option<i16>,
}

impl TicketValues {
    fn new(t: &TicketRow) -> TicketValues {
        TicketValues {
            t: t.clone(),
            missing: t.missing_info.join("\n"),
            severity: i16::from(t.severity),
            survey: t.survey_score.map(i16::from),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Write transactions.

struct PgTx {
    /// `None` once a call timed out (the transaction was dropped, so rolled back, with it).
    tx: Option<Transaction<'static, Postgres>>,
    /// A statement failed since the last rollback to a savepoint: PostgreSQL has aborted the
    /// transaction, and a COMMIT would silently roll it back.
    failed: bool,
}

impl PgTx {
    /// Runs `f` on the transaction's connection, on the background runtime.
    fn call<T: Send + 'static>(&mut self, f: impl Call<T>) -> Result<T> {
        let Some(mut tx) = self.tx.take() else {
            self.failed = true;
            return Err(StoreError::Other(
                "this transaction was rolled back after a call timed out".into(),
            ));
        };
        let r = match run(async move {
            let r = f(&mut tx).await;
            (tx, r)
        }) {
            Ok((tx, r)) => {
                self.tx = Some(tx);
                r
            }
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn statement(&mut self, sql: &'static str) -> Result<()> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::raw_sql(sql).execute(&mut *c).await?;
                Ok(())
            })
        })
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        // Not committed: rolled back on the background runtime, not on the caller's thread.
        if let Some(tx) = self.tx.take()
            && let Ok(rt) = runtime()
        {
            rt.spawn(async move {
                let _ = tokio::time::timeout(CALL_TIMEOUT, tx.rollback()).await;
            });
        }
    }
}

impl WriteTx for PgTx {
    fn savepoint(&mut self) -> Result<()> {
        self.statement("SAVEPOINT mail")
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.statement("RELEASE SAVEPOINT mail")
    }

    fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.statement("ROLLBACK TO SAVEPOINT mail; RELEASE SAVEPOINT mail")?;
        self.failed = false;
        Ok(())
    }

    fn inbound_exists(&mut self, dedup_key: &str) -> Result<bool> {
        let key = dedup_key.to_string();
        self.call(move |c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM inbound WHERE dedup_hash = $1 AND dedup_key = $2)",
                )
                .bind(fnv64(&key))
                .bind(&key)
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }

    fn ticket_for_message_id(&mut self, message_id: &str) -> Result<Option<i64>> {
        let message_id = message_id.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let linked: Option<i64> =
                    sqlx::query_scalar("SELECT ticket_id FROM message_ids WHERE message_id = $1")
                        .bind(&message_id)
                        .fetch_optional(&mut *c)
                        .await?;
                if linked.is_some() {
                    return Ok(linked);
                }
                let key = format!("mid:{message_id}");
                Ok(sqlx::query_scalar(
                    "SELECT ticket_id FROM inbound WHERE dedup_hash = $1 AND dedup_key = $2 \
                     AND ticket_id IS NOT NULL ORDER BY id LIMIT 1",
                )
                .bind(fnv64(&key))
                .bind(&key)
                .fetch_optional(&mut *c)
                .await?)
            })
        })
    }

    fn ticket(&mut self, id: i64) -> Result<Option<TicketRow>> {
        self.call(move |c| Box::pin(ticket(c, id)))
    }

    fn automatic_sent_since(&mut self, recipient: &str, since: DateTime<Utc>) -> Result<u32> {
        let recipient = recipient.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM outbox WHERE recipient_hash = $1 AND created_at >= $2 \
                     AND automatic AND state <> 'suppressed' AND recipient = $3",
                )
                .bind(fnv64(&recipient))
                .bind(since)
                .bind(&recipient)
                .fetch_one(&mut *c)
                .await?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            })
        })
    }

    fn insert_ticket(&mut self, t: &TicketRow) -> Result<i64> {
        let v = TicketValues::new(t);
        self.call(move |c| {
            Box::pin(async move {
                let t = &v.t;
                Ok(sqlx::query_scalar(concat!(
                    "INSERT INTO tickets (",
                    ticket_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19, $20, $21, $22, $23, $24, $25, $26, $27) RETURNING id"
                ))
                .bind(&t.customer)
                .bind(&t.support_key)
                .bind(&t.plan)
                .bind(&t.language)
                .bind(&t.profile)
                .bind(&t.issue_type)
                .bind(&t.status)
                .bind(v.severity)
                .bind(&t.stated_severity)
                .bind(&t.subject)
                .bind(&t.requester)
                .bind(&t.requester_name)
                .bind(&t.reason)
                .bind(t.parent_id)
                .bind(&v.missing)
                .bind(t.followup_base_at)
                .bind(t.followup_stage)
                .bind(v.survey)
                .bind(t.sla.target_secs)
                .bind(t.sla.started_at)
                .bind(t.sla.running_since)
                .bind(t.sla.elapsed_secs)
                .bind(t.sla.due_at)
                .bind(t.sla.responded_at)
                .bind(t.sla.breached_at)
                .bind(t.created_at)
                .bind(t.updated_at)
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }

    fn save_ticket(&mut self, t: &TicketRow) -> Result<()> {
        let v = TicketValues::new(t);
        self.call(move |c| {
            Box::pin(async move {
                let t = &v.t;
                sqlx::query(
                    "UPDATE tickets SET status = $2, severity = $3, issue_type = $4, reason = $5, missing_info = $6, \
                     followup_base_at = $7, followup_stage = $8, survey_score = $9, sla_target_secs = $10, \
                     sla_started_at = $11, sla_running_since = $12, sla_elapsed_secs = $13, sla_due_at = $14, \
                     responded_at = $15, breached_at = $16, updated_at = $17, language = $18 WHERE id = $1",
                )
                .bind(t.id)
                .bind(&t.status)
                .bind(v.severity)
                .bind(&t.issue_type)
                .bind(&t.reason)
                .bind(&v.missing)
                .bind(t.followup_base_at)
                .bind(t.followup_stage)
                .bind(v.survey)
                .bind(t.sla.target_secs)
                .bind(t.sla.started_at)
                .bind(t.sla.running_since)
                .bind(t.sla.elapsed_secs)
                .bind(t.sla.due_at)
                .bind(t.sla.responded_at)
                .bind(t.sla.breached_at)
                .bind(t.updated_at)
                .bind(&t.language)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn touch_ticket(&mut self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("UPDATE tickets SET updated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
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
        let (from, to, actor) = (from.to_string(), to.to_string(), actor.to_string());
        let reason = reason.map(str::to_string);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO status_history (ticket_id, at, from_status, to_status, actor, reason) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(ticket_id)
                .bind(at)
                .bind(from)
                .bind(to)
                .bind(actor)
                .bind(reason)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn insert_escalation(
        &mut self,
        ticket_id: i64,
        at: DateTime<Utc>,
        severity: u8,
        due_at: DateTime<Utc>,
        target_secs: i64,
    ) -> Result<()> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO escalations (ticket_id, at, severity, due_at, target_secs) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(ticket_id)
                .bind(at)
                .bind(i16::from(severity))
                .bind(due_at)
                .bind(target_secs)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn set_timer(&mut self, ticket_id: i64, kind: &str, due_at: DateTime<Utc>) -> Result<()> {
        let kind = kind.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO timers (ticket_id, kind, due_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (ticket_id, kind) DO UPDATE SET due_at = excluded.due_at",
                )
                .bind(ticket_id)
                .bind(kind)
                .bind(due_at)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn clear_timer(&mut self, ticket_id: i64, kind: &str) -> Result<()> {
        let kind = kind.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM timers WHERE ticket_id = $1 AND kind = $2")
                    .bind(ticket_id)
                    .bind(kind)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
    }

    fn due_timers(&mut self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT ticket_id, kind, due_at FROM timers WHERE due_at <= $1 \
                     ORDER BY due_at, ticket_id LIMIT $2 FOR UPDATE SKIP LOCKED",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(timer_row)
                .collect()
            })
        })
    }

    fn insert_inbound(&mut self, m: &NewInbound<'_>) -> Result<i64> {
        let size = m.raw.len() as i64;
        let dedup_key = m.dedup_key.to_string();
        let message_id = m.message_id.map(str::to_string);
        let source = m.source.to_string();
        let received_at = m.received_at;
        let from = m.from.map(str::to_string);
        let subject = m.subject.to_string();
        let raw = m.raw.to_vec();
        let outcome = m.outcome.to_string();
        let reason_code = m.reason_code.map(str::to_string);
        let reason = m.reason.map(str::to_string);
        let ticket_id = m.ticket_id;
        self.call(move |c| {
            Box::pin(async move {
                let hash = fnv64(&dedup_key);
                Ok(sqlx::query_scalar(
                    "INSERT INTO inbound (dedup_key, message_id, source, received_at, from_addr, subject, size, raw, \
                     outcome, reason_code, reason, ticket_id, dedup_hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                )
                .bind(dedup_key)
                .bind(message_id)
                .bind(source)
                .bind(received_at)
                .bind(from)
                .bind(subject)
                .bind(size)
                .bind(raw)
                .bind(outcome)
                .bind(reason_code)
                .bind(reason)
                .bind(ticket_id)
                .bind(hash)
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }

    fn insert_article(&mut self, a: &NewArticle<'_>) -> Result<i64> {
        let (ticket_id, inbound_id, now) = (a.ticket_id, a.inbound_id, a.now);
        let (kind, author) = (a.kind.to_string(), a.author.to_string());
        let (body, quoted) = (a.body.to_string(), a.quoted.to_string());
        self.call(move |c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar(
                    "INSERT INTO articles (ticket_id, inbound_id, kind, author, body, quoted, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(ticket_id)
                .bind(inbound_id)
                .bind(kind)
                .bind(author)
                .bind(body)
                .bind(quoted)
                .bind(now)
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }

    fn take_for_replay(&mut self, id: i64) -> Result<Option<(Vec<u8>, String)>> {
        self.call(move |c| {
            Box::pin(async move {
                let Some(row) = sqlx::query(
                    "SELECT raw, source, dedup_key FROM inbound WHERE id = $1 AND outcome = 'quarantined'",
                )
                .bind(id)
                .fetch_optional(&mut *c)
                .await?
                else {
                    return Ok(None);
                };
                let raw: Vec<u8> = row.try_get(0)?;
                let source: String = row.try_get(1)?;
                let key: String = row.try_get(2)?;
                let retired = format!("replayed:{id}:{key}");
                sqlx::query(
                    "UPDATE inbound SET outcome = 'replayed', dedup_key = $2, dedup_hash = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(&retired)
                .bind(fnv64(&retired))
                .execute(&mut *c)
                .await?;
                Ok(Some((raw, source)))
            })
        })
    }

    fn set_inbound_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        reason_code: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        let outcome = outcome.to_string();
        let reason_code = reason_code.map(str::to_string);
        let reason = reason.map(str::to_string);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE inbound SET outcome = $2, reason_code = $3, reason = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(outcome)
                .bind(reason_code)
                .bind(reason)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn insert_attachment(
        &mut self,
        article_id: i64,
        filename: &str,
        content_type: &str,
        size: usize,
        data: Option<&[u8]>,
    ) -> Result<()> {
        let (filename, content_type) = (filename.to_string(), content_type.to_string());
        let data = data.map(<[u8]>::to_vec);
        let size = size as i64;
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO attachments (article_id, filename, content_type, size, data) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(article_id)
                .bind(filename)
                .bind(content_type)
                .bind(size)
                .bind(data)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn link_message_id(&mut self, message_id: &str, ticket_id: i64) -> Result<()> {
        let message_id = message_id.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO message_ids (message_id, ticket_id) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(message_id)
                .bind(ticket_id)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn enqueue(&mut self, m: &NewOutbound<'_>) -> Result<i64> {
        let (ticket_id, inbound_id, automatic, now) =
            (m.ticket_id, m.inbound_id, m.automatic, m.now);
        let (kind, recipient) = (m.kind.to_string(), m.recipient.to_string());
        let (subject, message_id) = (m.subject.to_string(), m.message_id.to_string());
        let body = m.body.to_vec();
        let state = m.state.to_string();
        let note = m.note.map(str::to_string);
        self.call(move |c| {
            Box::pin(async move {
                let hash = fnv64(&recipient);
                Ok(sqlx::query_scalar(
                    "INSERT INTO outbox (ticket_id, inbound_id, kind, recipient, subject, message_id, automatic, body, \
                     state, next_attempt_at, last_error, created_at, recipient_hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $12) RETURNING id",
                )
                .bind(ticket_id)
                .bind(inbound_id)
                .bind(kind)
                .bind(recipient)
                .bind(subject)
                .bind(message_id)
                .bind(automatic)
                .bind(body)
                .bind(state)
                .bind(now)
                .bind(note)
                .bind(hash)
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }

    fn set_mailbox_state(&mut self, mailbox: &str, state: MailboxState) -> Result<()> {
        let mailbox = mailbox.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO mailboxes (name, uid_validity, last_uid) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET last_uid = CASE WHEN mailboxes.uid_validity = excluded.uid_validity \
                     THEN GREATEST(mailboxes.last_uid, excluded.last_uid) ELSE excluded.last_uid END, \
                     uid_validity = excluded.uid_validity",
                )
                .bind(mailbox)
                .bind(i64::from(state.uid_validity))
                .bind(i64::from(state.last_uid))
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.failed {
            // PostgreSQL answers COMMIT in an aborted transaction with a silent ROLLBACK.
            // Dropping `self` rolls back.
            return Err(StoreError::Other(
                "a statement of this transaction failed, so it was rolled back instead of committed"
                    .into(),
            ));
        }
        let Some(tx) = self.tx.take() else {
            return Err(StoreError::Other(
                "this transaction was rolled back after a call timed out".into(),
            ));
        };
        run(async move { tx.commit().await })??;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The store's own calls.

impl Store for PgStore {
    fn write(&mut self) -> Result<Box<dyn WriteTx + '_>> {
        let shared = self.shared.clone();
        let tx = run(async move {
            shared
                .pool
                // BEGIN and the writer lock in one round trip; READ COMMITTED then sees all
                // the previous writer committed.
                .begin_with(sqlx::AssertSqlSafe(format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                )))
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(_) => StoreError::Postgres(e),
                    e => shared.unreachable(e),
                })
        })??;
        Ok(Box::new(PgTx {
            tx: Some(tx),
            failed: false,
        }))
    }

    fn tickets(&mut self, limit: usize) -> Result<Vec<TicketRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(concat!(
                    "SELECT id, ",
                    ticket_columns!(),
                    " FROM tickets ORDER BY id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(ticket_row)
                .collect()
            })
        })
    }

    fn ticket_with_articles(&mut self, id: i64) -> Result<Option<(TicketRow, Vec<ArticleRow>)>> {
        self.call(move |c| {
            Box::pin(async move {
                let Some(t) = ticket(c, id).await? else {
                    return Ok(None);
                };
                let mut articles = sqlx::query(
                    "SELECT id, kind, author, body, quoted, created_at FROM articles WHERE ticket_id = $1 ORDER BY id",
                )
                .bind(id)
                .fetch_all(&mut *c)
                .await?
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
                    let rows = sqlx::query(
                        "SELECT a.article_id, a.filename, a.content_type, a.size, a.data IS NOT NULL \
                         FROM attachments a JOIN articles r ON r.id = a.article_id \
                         WHERE r.ticket_id = $1 ORDER BY a.id",
                    )
                    .bind(id)
                    .fetch_all(&mut *c)
                    .await?;
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
            })
        })
    }

    fn outbox(&mut self, limit: usize) -> Result<Vec<OutboxRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT id, ticket_id, kind, recipient, subject, message_id, state, attempts, next_attempt_at, \
                     last_error, created_at, sent_at FROM outbox ORDER BY id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&mut *c)
                .await?
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
            })
        })
    }

    fn quarantine(&mut self, limit: usize) -> Result<Vec<QuarantineRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT id, received_at, source, from_addr, subject, message_id, reason_code, reason, size \
                     FROM inbound WHERE outcome = 'quarantined' ORDER BY id LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(|r| {
                    Ok(QuarantineRow {
                        id: r.try_get(0)?,
                        received_at: r.try_get(1)?,
                        source: r.try_get(2)?,
                        from: r.try_get(3)?,
                        subject: r.try_get(4)?,
                        message_id: r.try_get(5)?,
                        reason_code: r.try_get::<Option<String>, _>(6)?.unwrap_or_default(),
                        reason: r.try_get::<Option<String>, _>(7)?.unwrap_or_default(),
                        size: r.try_get(8)?,
                    })
                })
                .collect()
            })
        })
    }

    fn inbound_raw(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        self.call(move |c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar("SELECT raw FROM inbound WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?)
            })
        })
    }

    fn outbox_body(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        self.call(move |c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar("SELECT body FROM outbox WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?)
            })
        })
    }

    /// Two autocommit statements, no writer lock: rows another sender is claiming right now
    /// are skipped (`FOR UPDATE SKIP LOCKED`), so each row is claimed by one sender. A claim
    /// lasts `lease_until - now` from the database's clock, and a claim is lapsed by that
    /// clock; `pending` and `retry` rows are due by the caller's `now`.
    fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        max_attempts: u32,
    ) -> Result<Vec<OutboxMail>> {
        let max_attempts = i64::from(max_attempts);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = micros(lease_until - now);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE outbox SET state = 'dead', \
                     last_error = 'gave up after ' || attempts || ' attempts (outbound.max_attempts): the sender stopped during the last one' \
                     WHERE id IN (SELECT id FROM outbox WHERE state = 'sending' AND next_attempt_at <= clock_timestamp() \
                                  AND attempts >= $1 FOR UPDATE SKIP LOCKED)",
                )
                .bind(max_attempts)
                .execute(&mut *c)
                .await?;
                // The `attempts` condition keeps a spent lapsed claim that another sender is
                // marking dead right now from being claimed here. The first condition is the
                // `outbox_due` index's range.
                let rows = sqlx::query(
                    "WITH due AS (SELECT id, next_attempt_at FROM outbox \
                                  WHERE state IN ('pending', 'retry', 'sending') \
                                  AND next_attempt_at <= GREATEST($1, clock_timestamp()) \
                                  AND CASE WHEN state = 'sending' \
                                      THEN attempts < $4 AND next_attempt_at <= clock_timestamp() \
                                      ELSE next_attempt_at <= $1 END \
                                  ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     UPDATE outbox o SET state = 'sending', attempts = o.attempts + 1, \
                     next_attempt_at = clock_timestamp() + $2 * interval '1 microsecond' \
                     FROM due WHERE o.id = due.id \
                     RETURNING o.id, o.kind, o.recipient, o.message_id, o.attempts, o.body, due.next_attempt_at",
                )
                .bind(now)
                .bind(lease)
                .bind(limit)
                .bind(max_attempts)
                .fetch_all(&mut *c)
                .await?;
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
            })
        })
    }

    fn mark_sent(&mut self, claim: Claim, now: DateTime<Utc>) -> Result<bool> {
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE outbox SET state = 'sent', sent_at = $3, last_error = NULL \
                     WHERE id = $1 AND state = 'sending' AND attempts = $2",
                )
                .bind(claim.id)
                .bind(claim.attempts)
                .bind(now)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
    }

    fn mark_sent_many(&mut self, claims: &[Claim], now: DateTime<Utc>) -> Result<usize> {
        let ids: Vec<i64> = claims.iter().map(|c| c.id).collect();
        let attempts: Vec<i64> = claims.iter().map(|c| c.attempts).collect();
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE outbox o SET state = 'sent', sent_at = $3, last_error = NULL \
                     FROM unnest($1::bigint[], $2::bigint[]) AS c(id, attempts) \
                     WHERE o.id = c.id AND o.state = 'sending' AND o.attempts = c.attempts",
                )
                .bind(ids)
                .bind(attempts)
                .bind(now)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() as usize)
            })
        })
    }

    fn mark_retry(&mut self, claim: Claim, next_at: DateTime<Utc>, error: &str) -> Result<bool> {
        let error = error.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE outbox SET state = 'retry', next_attempt_at = $3, last_error = $4 \
                     WHERE id = $1 AND state = 'sending' AND attempts = $2",
                )
                .bind(claim.id)
                .bind(claim.attempts)
                .bind(next_at)
                .bind(error)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
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
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE outbox o SET attempts = o.attempts - 1, next_attempt_at = $3, \
                     state = CASE WHEN o.attempts > 1 THEN 'retry' ELSE 'pending' END \
                     FROM unnest($1::bigint[], $2::bigint[]) AS c(id, attempts) \
                     WHERE o.id = c.id AND o.state = 'sending' AND o.attempts = c.attempts",
                )
                .bind(ids)
                .bind(attempts)
                .bind(now)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn retry_outbox(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2 \
                     WHERE id = $1 AND state IN ('failed', 'dead')",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
    }

    fn next_due(&mut self) -> Result<Option<DateTime<Utc>>> {
        self.call(|c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar(
                    "SELECT min(next_attempt_at) FROM outbox WHERE state IN ('pending', 'retry', 'sending')",
                )
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }

    fn next_timer(&mut self) -> Result<Option<DateTime<Utc>>> {
        self.call(|c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar("SELECT min(due_at) FROM timers")
                    .fetch_one(&mut *c)
                    .await?)
            })
        })
    }

    fn timers(&mut self, ticket_id: i64) -> Result<Vec<Timer>> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT ticket_id, kind, due_at FROM timers WHERE ticket_id = $1 ORDER BY kind",
                )
                .bind(ticket_id)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(timer_row)
                .collect()
            })
        })
    }

    fn escalations(&mut self, ticket_id: i64) -> Result<Vec<Escalation>> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT at, severity, due_at FROM escalations WHERE ticket_id = $1 ORDER BY id",
                )
                .bind(ticket_id)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(|r| {
                    Ok(Escalation {
                        at: r.try_get(0)?,
                        severity: small(r.try_get(1)?)?,
                        due_at: r.try_get(2)?,
                    })
                })
                .collect()
            })
        })
    }

    fn mailbox_state(&mut self, mailbox: &str) -> Result<Option<MailboxState>> {
        let mailbox = mailbox.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("SELECT uid_validity, last_uid FROM mailboxes WHERE name = $1")
                    .bind(mailbox)
                    .fetch_optional(&mut *c)
                    .await?
                    .map(|r| {
                        Ok(MailboxState {
                            uid_validity: u32_col(&r, 0)?,
                            last_uid: u32_col(&r, 1)?,
                        })
                    })
                    .transpose()
            })
        })
    }

    /// The lease lasts `until - now` from the database's clock, and is lapsed by that clock.
    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let lease = micros(until - now);
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "INSERT INTO leases (name, holder, until) \
                     VALUES ($1, $2, clock_timestamp() + $3 * interval '1 microsecond') \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE leases.holder = excluded.holder OR leases.until <= clock_timestamp()",
                )
                .bind(name)
                .bind(holder)
                .bind(lease)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgSslMode;

    #[test]
    fn tls_settings_come_from_the_url() {
        let o = connect_options(
            "postgres://tg:secret@db.example.test:5433/tickets?sslmode=verify-full&sslrootcert=/etc/ticketgate/ca.pem",
        )
        .unwrap();
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
        let debug = format!("{o:?}");
        assert!(debug.contains("/etc/ticketgate/ca.pem"), "{debug}");
        assert_eq!(describe(&o), "postgres://tg@db.example.test:5433/tickets");

        let o = connect_options("postgres://tg@h/d?sslmode=verify-ca&sslrootcert=ca.crt").unwrap();
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyCa));
        for (mode, want) in [
            ("disable", PgSslMode::Disable),
            ("prefer", PgSslMode::Prefer),
            ("require", PgSslMode::Require),
        ] {
            let o = connect_options(&format!("postgres://tg@h/d?sslmode={mode}")).unwrap();
            assert_eq!(
                std::mem::discriminant(&o.get_ssl_mode()),
                std::mem::discriminant(&want),
                "{mode}"
            );
        }
        assert!(connect_options("postgres://tg@h/d?sslmode=sometimes").is_err());
    }

    #[test]
    fn session_settings_are_added_unless_the_url_sets_them() {
        let o = connect_options("postgres://tg@h/d").unwrap();
        let set = o.get_options().unwrap();
        for (k, v) in SESSION_SETTINGS {
            assert!(set.contains(&format!("{k}={v}")), "{set}");
        }
        assert_eq!(o.get_application_name(), Some("ticketgate"));

        let o = connect_options(
            "postgres://tg@h/d?options=-c%20idle_in_transaction_session_timeout%3D5min&application_name=x",
        )
        .unwrap();
        let set = o.get_options().unwrap();
        assert!(
            set.contains("idle_in_transaction_session_timeout=5min"),
            "{set}"
        );
        assert!(!set.contains("=60s"), "{set}");
        assert!(set.contains("tcp_keepalives_idle=30"), "{set}");
        assert_eq!(o.get_application_name(), Some("x"));
    }

    #[test]
    fn a_bad_url_is_an_error_without_the_password() {
        let err = PgStore::check_url("postgres://tg:s3cret@h:notaport/d").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(PgStore::check_url("postgres://tg:s3cret@h:5432/d?sslmode=verify-full").is_ok());
    }

    #[test]
    fn durations_in_microseconds_never_go_negative() {
        assert_eq!(micros(chrono::Duration::seconds(2)), 2_000_000);
        assert_eq!(micros(chrono::Duration::seconds(-2)), 0);
        assert_eq!(micros(chrono::Duration::MAX), MAX_LEASE_MICROS);
    }
}
