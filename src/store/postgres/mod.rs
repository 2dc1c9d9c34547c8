//! The PostgreSQL store: the same [`Store`] / [`WriteTx`] contract as SQLite, for several
//! instances sharing one database, through sqlx.
//!
//! The traits are synchronous and are called from plain threads, from `spawn_blocking`
//! threads and from inside a Tokio runtime (the daemon loop, `#[tokio::test]`s). So every
//! call is a future spawned on one process-wide background runtime owned by this module
//! ([`runtime`]: one worker thread), and the calling thread waits for its answer on a
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
//! Writers that write the same things are serialized across instances: a write transaction
//! takes the writers' transaction-level advisory lock exclusive first, like SQLite's `BEGIN
//! IMMEDIATE`. A batch of mail (`Store::write_batch`) reads without any lock and, to write,
//! takes that lock shared plus a lock per ticket, dedup key and recipient below the cap it writes
//! (`locks.rs`, ADR 0023), after which it checks its reads again (ADR 0009, `batch.rs`); its
//! writes are buffered and written one statement per table. Outbox claims do not take the lock: they use `FOR UPDATE SKIP LOCKED`, so
//! several senders never claim the same row.
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

/// The columns of a ticket after its id, in [`rows::ticket_row`]'s order.
macro_rules! ticket_columns {
    () => {
        "customer, support_key, plan, language, profile, issue_type, status, severity, \
         stated_severity, subject, requester, requester_name, reason, parent_id, missing_info, followup_base_at, \
         followup_stage, survey_score, sla_target_secs, sla_started_at, sla_running_since, sla_elapsed_secs, \
         sla_due_at, responded_at, breached_at, created_at, updated_at"
    };
}

mod announce;
mod batch;
mod locks;
mod outage_links;
mod rows;
mod store;
mod tx;
mod web;

use rows::*;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_declared_size.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_imap_uids.sql"),
    ),
    (4, include_str!("../../../migrations/postgres/0004_web.sql")),
    (
        5,
        include_str!("../../../migrations/postgres/0005_reports.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_auth.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/postgres/0007_bounces.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/postgres/0008_watchers.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/postgres/0009_announce.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/postgres/0010_outage_links.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/postgres/0011_batch_references.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/postgres/0012_tickets_fillfactor.sql"),
    ),
    (
        14,
        include_str!("../../../migrations/postgres/0014_escalations_set_check.sql"),
    ),
];

/// Advisory lock key taken by every write transaction ("tgwriter").
const WRITE_LOCK: i64 = 0x7467_7772_6974_6572;
/// Advisory lock key held while migrating ("tgmigrat").
const MIGRATE_LOCK: i64 = 0x7467_6d69_6772_6174;

/// How long one call may take (including a writer waiting for the lock) before it is given
/// up with an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The runtime every PostgreSQL future runs on, started on first use. One worker: the calls
/// are I/O-bound and each caller waits for its own, so a second worker only adds wake-ups
/// (the pipeline bench measured fewer mails per second with two).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
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
    /// Row ids reserved from the sequences and not used yet ([`batch::IdPool`]).
    ids: std::sync::Mutex<batch::IdPool>,
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
    fn pool(&self) -> std::sync::MutexGuard<'_, batch::IdPool> {
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An error getting a connection: names the server, never the password.
    fn unreachable(&self, e: sqlx::Error) -> StoreError {
        let detail = match &e {
            sqlx::Error::PoolTimedOut => format!(
                "no connection within {} s (the server refuses or does not answer, or all {} connections are busy)",
                CONNECT_TIMEOUT.as_secs(),
                PgStore::POOL_SIZE
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
    /// Connections of one store handle and its clones (one writer and several readers).
    pub const POOL_SIZE: u32 = 8;

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
                .max_connections(PgStore::POOL_SIZE)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(options);
            Ok(PgStore {
                shared: Arc::new(Shared {
                    pool,
                    display,
                    ids: Default::default(),
                }),
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
        if self.is_migrated() {
            return Ok(());
        }
        let shared = self.shared.clone();
        run(async move {
            let mut c = shared
                .pool
                .acquire()
                .await
                .map_err(|e| shared.unreachable(e))?
                .detach();
            let result = async {
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATE_LOCK)
                    .execute(&mut c)
                    .await?;
                let result = migrate_locked(&mut c).await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATE_LOCK)
                    .execute(&mut c)
                    .await;
                result?;
                unlocked?;
                Ok(())
            }
            .await;
            let _ = c.close().await;
            result
        })?
    }

    /// Whether every migration this version knows is recorded: one query on a pooled
    /// connection, no lock (a missing table, or any error, means not migrated).
    pub fn is_migrated(&self) -> bool {
        let known: Vec<i64> = MIGRATIONS.iter().map(|&(v, _)| v).collect();
        let n = self.call(move |c| {
            Box::pin(async move {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM schema_migrations WHERE version = ANY($1)",
                )
                .bind(known)
                .fetch_one(&mut *c)
                .await?;
                Ok(n)
            })
        });
        matches!(n, Ok(n) if n == MIGRATIONS.len() as i64)
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
