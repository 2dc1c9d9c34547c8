//! The SQLite store: the embedded default. WAL journal with `synchronous = FULL`, so a
//! committed batch survives power loss; one write transaction per batch of mails.

use super::*;
use crate::clock::to_rfc3339;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;
use std::sync::OnceLock;

mod announce;
mod outage_links;
mod web;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_lifecycle.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_mailboxes.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_declared_size.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_imap_uids.sql"),
    ),
    (6, include_str!("../../migrations/sqlite/0006_web.sql")),
    (7, include_str!("../../migrations/sqlite/0007_reports.sql")),
    (8, include_str!("../../migrations/sqlite/0008_auth.sql")),
    (9, include_str!("../../migrations/sqlite/0009_bounces.sql")),
    (
        10,
        include_str!("../../migrations/sqlite/0010_watchers.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_announce.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_outage_links.sql"),
    ),
];

pub struct SqliteStore {
    conn: Connection,
    /// For a [`Role::OneShot`] connection: its WAL file, checkpointed at close when over
    /// [`ONE_SHOT_WAL_PAGES`].
    one_shot_wal: Option<std::path::PathBuf>,
}

impl Drop for SqliteStore {
    /// A one-shot connection leaves the WAL to the next process (no checkpoint at close),
    /// unless it is over [`ONE_SHOT_WAL_PAGES`]: then it checkpoints and truncates it.
    /// `TRUNCATE`, not the automatic (passive) checkpoint: the next process to open the
    /// database alone rebuilds the WAL index from the WAL and takes every frame in it as not
    /// yet checkpointed, so only an emptied WAL stops the next processes from reading and
    /// copying it again (ADR 0018). With another connection open (the daemon) the
    /// checkpoint is not waited for: the WAL index is shared then, and the daemon's
    /// connections checkpoint it.
    fn drop(&mut self) {
        let Some(wal) = &self.one_shot_wal else {
            return;
        };
        let frame = 4096 + 24;
        let over = std::fs::metadata(wal)
            .is_ok_and(|m| m.len() > 32 + u64::from(ONE_SHOT_WAL_PAGES) * frame);
        if over {
            let _ = self.conn.busy_timeout(std::time::Duration::ZERO);
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

fn ts(at: DateTime<Utc>) -> String {
    to_rfc3339(at)
}

/// FNV-1a 64: a stable hash for the small integer indexes (`inbound.dedup_hash`,
/// `outbox.recipient_hash`). Stored on disk: never change it.
pub(crate) fn fnv64(text: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

fn opt_ts(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(to_rfc3339)
}

fn parse_opt_ts(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(&s)).transpose()
}

/// A stored name this version must know (a status, a profile): an unknown one is an error
/// naming the ticket, never a silent fallback.
fn known<T>(r: &Row<'_>, col: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let v: String = r.get(col)?;
    parse(&v).ok_or_else(|| {
        let id: i64 = r.get(0).unwrap_or_default();
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            format!("ticket #{id}: `{v}` is not a value this version knows (column {col})").into(),
        )
    })
}

fn parse_ts(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

impl SqliteStore {
    /// `failed` or `dead`, under the claim's fence.
    fn mark_final(&mut self, claim: Claim, state: &str, error: &str) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET state = ?3, last_error = ?4 \
                 WHERE id = ?1 AND state = 'sending' AND attempts = ?2",
            )?
            .execute(params![claim.id, claim.attempts, state, error])?;
        Ok(n == 1)
    }

    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_as(path, Role::Service)
    }

    /// [`SqliteStore::open`] tuned for `role` ([`Role`]); durability is the same for both.
    pub fn open_as(path: &Path, role: Role) -> Result<SqliteStore> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                detail: format!("cannot create folder {}: {e}", dir.display()),
            })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Statement journals and sorts in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        match role {
            Role::Service => {
                // A 64 MB page cache: a batch's index pages are written once, at commit.
                conn.pragma_update(None, "cache_size", -65536)?;
                conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
            }
            Role::OneShot => {
                // The WAL stays at exit (no checkpoint's fsyncs and page writes, no new
                // WAL file and its header sync next time), checkpointed at close only
                // when over ONE_SHOT_WAL_PAGES (`Drop`, ADR 0018).
                conn.set_db_config(
                    rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                    true,
                )?;
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            }
        }
        conn.set_prepared_statement_cache_capacity(64);
        let one_shot_wal = (role == Role::OneShot).then(|| {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            std::path::PathBuf::from(wal)
        });
        Ok(SqliteStore { conn, one_shot_wal })
    }

    /// Whether every migration this version knows is recorded: one query, no write lock.
    pub fn is_migrated(&self) -> bool {
        let known: Vec<String> = MIGRATIONS.iter().map(|(v, _)| v.to_string()).collect();
        let sql = format!(
            "SELECT COUNT(*) FROM schema_migrations WHERE version IN ({})",
            known.join(",")
        );
        // No table yet (a new database) is an error: not migrated.
        self.conn
            .query_row(&sql, [], |r| r.get::<_, i64>(0))
            .is_ok_and(|n| n == MIGRATIONS.len() as i64)
    }

    /// Applies the migrations not yet recorded; when all are (checked with one query,
    /// [`SqliteStore::is_migrated`]), takes no lock and writes nothing.
    pub fn migrate(&mut self) -> Result<()> {
        if self.is_migrated() {
            return Ok(());
        }
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (version, sql) in MIGRATIONS {
            let done: bool = tx
                .query_row(
                    "SELECT 1 FROM schema_migrations WHERE version = ?1",
                    [version],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !done {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, datetime('now'))",
                    [version],
                )?;
                tracing::info!(version, "database migration applied");
            }
        }
        tx.commit()?;
        Ok(())
    }
}

struct SqliteTx<'c> {
    tx: rusqlite::Transaction<'c>,
}

const TICKET_COLUMNS: &str = "id, customer, support_key, plan, language, profile, issue_type, status, severity, \
     stated_severity, subject, requester, requester_name, reason, parent_id, missing_info, followup_base_at, \
     followup_stage, survey_score, sla_target_secs, sla_started_at, sla_running_since, sla_elapsed_secs, \
     sla_due_at, responded_at, breached_at, created_at, updated_at";

fn ticket_row(r: &Row<'_>) -> rusqlite::Result<TicketRow> {
    let missing: String = r.get(15)?;
    Ok(TicketRow {
        id: r.get(0)?,
        customer: r.get(1)?,
        support_key: r.get(2)?,
        plan: r.get(3)?,
        language: r.get(4)?,
        profile: known(r, 5, Profile::parse)?,
        issue_type: r.get(6)?,
        status: known(r, 7, Status::parse)?,
        severity: r.get(8)?,
        stated_severity: r.get(9)?,
        subject: r.get(10)?,
        requester: r.get(11)?,
        requester_name: r.get(12)?,
        reason: r.get(13)?,
        parent_id: r.get(14)?,
        missing_info: missing
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        followup_base_at: parse_opt_ts(r.get(16)?)?,
        followup_stage: r.get(17)?,
        survey_score: r.get(18)?,
        sla: SlaState {
            target_secs: r.get(19)?,
            started_at: parse_opt_ts(r.get(20)?)?,
            running_since: parse_opt_ts(r.get(21)?)?,
            elapsed_secs: r.get(22)?,
            due_at: parse_opt_ts(r.get(23)?)?,
            responded_at: parse_opt_ts(r.get(24)?)?,
            breached_at: parse_opt_ts(r.get(25)?)?,
        },
        created_at: parse_ts(&r.get::<_, String>(26)?)?,
        updated_at: parse_ts(&r.get::<_, String>(27)?)?,
    })
}

/// The 27 writable ticket columns in `TICKET_COLUMNS` order (all but `id`).
fn ticket_params(t: &TicketRow) -> [Box<dyn rusqlite::ToSql + '_>; 27] {
    [
        Box::new(&t.customer),
        Box::new(&t.support_key),
        Box::new(&t.plan),
        Box::new(&t.language),
        Box::new(t.profile.name()),
        Box::new(&t.issue_type),
        Box::new(t.status.as_str()),
        Box::new(t.severity),
        Box::new(&t.stated_severity),
        Box::new(&t.subject),
        Box::new(&t.requester),
        Box::new(&t.requester_name),
        Box::new(&t.reason),
        Box::new(t.parent_id),
        Box::new(t.missing_info.join("\n")),
        Box::new(opt_ts(t.followup_base_at)),
        Box::new(t.followup_stage),
        Box::new(t.survey_score),
        Box::new(t.sla.target_secs),
        Box::new(opt_ts(t.sla.started_at)),
        Box::new(opt_ts(t.sla.running_since)),
        Box::new(t.sla.elapsed_secs),
        Box::new(opt_ts(t.sla.due_at)),
        Box::new(opt_ts(t.sla.responded_at)),
        Box::new(opt_ts(t.sla.breached_at)),
        Box::new(ts(t.created_at)),
        Box::new(ts(t.updated_at)),
    ]
}

fn timer_row(r: &Row<'_>) -> rusqlite::Result<Timer> {
    Ok(Timer {
        ticket_id: r.get(0)?,
        kind: r.get(1)?,
        due_at: parse_ts(&r.get::<_, String>(2)?)?,
    })
}

fn ticket(conn: &Connection, id: i64) -> Result<Option<TicketRow>> {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"));
    Ok(conn
        .prepare_cached(sql)?
        .query_row([id], ticket_row)
        .optional()?)
}

/// The tickets of a KPI report ([`Store::report_tickets`]): one indexed range scan of
/// `tickets_customer_created`, with per-ticket lookups answered from the indexes
/// `status_history_report` and `escalations_ticket` alone. No ORDER BY: the figures do not
/// depend on the order.
fn report_tickets(
    conn: &Connection,
    customer: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ReportTicket>> {
    let mut st = conn.prepare_cached(
        "SELECT t.id, t.plan, t.severity, t.issue_type, t.created_at, t.sla_target_secs, \
         t.responded_at, t.breached_at, t.survey_score, t.sla_elapsed_secs, \
         (SELECT min(h.at) FROM status_history h WHERE h.ticket_id = t.id \
            AND h.to_status IN ('resolved', 'closed')), \
         EXISTS (SELECT 1 FROM status_history h WHERE h.ticket_id = t.id \
            AND h.from_status IN ('resolved', 'closed') \
            AND h.to_status NOT IN ('resolved', 'closed')), \
         (SELECT count(*) FROM escalations e WHERE e.ticket_id = t.id) \
         FROM tickets t WHERE t.customer = ?1 AND t.created_at >= ?2 AND t.created_at < ?3",
    )?;
    let rows = st.query_map(params![customer, ts(from), ts(until)], |r| {
        Ok(ReportTicket {
            id: r.get(0)?,
            plan: r.get(1)?,
            severity: r.get(2)?,
            issue_type: r.get(3)?,
            created_at: parse_ts(&r.get::<_, String>(4)?)?,
            sla_target_secs: r.get(5)?,
            responded_at: parse_opt_ts(r.get(6)?)?,
            breached_at: parse_opt_ts(r.get(7)?)?,
            survey_score: r.get(8)?,
            sla_elapsed_secs: r.get(9)?,
            resolved_at: parse_opt_ts(r.get(10)?)?,
            reopened: r.get(11)?,
            escalations: r.get(12)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl WriteTx for SqliteTx<'_> {
    fn savepoint(&mut self) -> Result<()> {
        self.tx.execute_batch("SAVEPOINT mail")?;
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.tx.execute_batch("RELEASE mail")?;
        Ok(())
    }

    fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.tx.execute_batch("ROLLBACK TO mail; RELEASE mail")?;
        Ok(())
    }

    fn inbound_exists(&mut self, dedup_key: &str) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM inbound WHERE dedup_hash = ?1 AND dedup_key = ?2")?
            .exists(params![fnv64(dedup_key), dedup_key])?)
    }

    fn ticket_for_message_id(&mut self, message_id: &str) -> Result<Option<i64>> {
        let ours: Option<i64> = self
            .tx
            .prepare_cached("SELECT ticket_id FROM message_ids WHERE message_id = ?1")?
            .query_row([message_id], |r| r.get(0))
            .optional()?;
        if ours.is_some() {
            return Ok(ours);
        }
        let key = format!("mid:{message_id}");
        Ok(self
            .tx
            .prepare_cached(
                "SELECT ticket_id FROM inbound WHERE dedup_hash = ?1 AND dedup_key = ?2 AND ticket_id IS NOT NULL",
            )?
            .query_row(params![fnv64(&key), key], |r| r.get(0))
            .optional()?)
    }

    fn ticket(&mut self, id: i64) -> Result<Option<TicketRow>> {
        ticket(&self.tx, id)
    }

    fn automatic_sent_since(&mut self, recipient: &str, since: DateTime<Utc>) -> Result<u32> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT count(*) FROM outbox WHERE recipient_hash = ?1 AND created_at >= ?2 \
                 AND automatic = 1 AND state <> 'suppressed' AND recipient = ?3",
            )?
            .query_row(params![fnv64(recipient), ts(since), recipient], |r| {
                r.get(0)
            })?)
    }

    fn alert_due(&mut self, key: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO alert_throttle (key, last_at) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET last_at = excluded.last_at \
                 WHERE alert_throttle.last_at < ?3",
            )?
            .execute(params![key, ts(now), ts(since)])?;
        Ok(n > 0)
    }

    fn insert_ticket(&mut self, t: &TicketRow) -> Result<i64> {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let cols = TICKET_COLUMNS.trim_start_matches("id, ");
            let marks = (1..=27)
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("INSERT INTO tickets ({cols}) VALUES ({marks})")
        });
        let params = ticket_params(t);
        self.tx
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params.iter()))?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Writes the columns a ticket's life changes. Identity columns (customer, key, plan,
    /// requester, parent, creation) are left alone: rewriting them would rewrite their index
    /// entries and check their foreign keys at every save.
    fn save_ticket(&mut self, t: &TicketRow) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE tickets SET status = ?2, severity = ?3, issue_type = ?4, reason = ?5, missing_info = ?6, \
                 followup_base_at = ?7, followup_stage = ?8, survey_score = ?9, sla_target_secs = ?10, \
                 sla_started_at = ?11, sla_running_since = ?12, sla_elapsed_secs = ?13, sla_due_at = ?14, \
                 responded_at = ?15, breached_at = ?16, updated_at = ?17, language = ?18 WHERE id = ?1",
            )?
            .execute(params![
                t.id,
                t.status.as_str(),
                t.severity,
                t.issue_type,
                t.reason,
                t.missing_info.join("\n"),
                opt_ts(t.followup_base_at),
                t.followup_stage,
                t.survey_score,
                t.sla.target_secs,
                opt_ts(t.sla.started_at),
                opt_ts(t.sla.running_since),
                t.sla.elapsed_secs,
                opt_ts(t.sla.due_at),
                opt_ts(t.sla.responded_at),
                opt_ts(t.sla.breached_at),
                ts(t.updated_at),
                t.language
            ])?;
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
        self.tx
            .prepare_cached(
                "INSERT INTO status_history (ticket_id, at, from_status, to_status, actor, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![ticket_id, ts(at), from, to, actor, reason])?;
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
        self.tx
            .prepare_cached(
                "INSERT INTO escalations (ticket_id, at, severity, due_at, target_secs) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![ticket_id, ts(at), severity, ts(due_at), target_secs])?;
        Ok(())
    }

    fn set_timer(&mut self, ticket_id: i64, kind: &str, due_at: DateTime<Utc>) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO timers (ticket_id, kind, due_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (ticket_id, kind) DO UPDATE SET due_at = excluded.due_at",
            )?
            .execute(params![ticket_id, kind, ts(due_at)])?;
        Ok(())
    }

    fn clear_timer(&mut self, ticket_id: i64, kind: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM timers WHERE ticket_id = ?1 AND kind = ?2")?
            .execute(params![ticket_id, kind])?;
        Ok(())
    }

    fn due_timers(&mut self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT ticket_id, kind, due_at FROM timers WHERE due_at <= ?1 ORDER BY due_at, ticket_id LIMIT ?2")?;
        let rows = st.query_map(params![ts(now), limit as i64], timer_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn touch_ticket(&mut self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE tickets SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![id, ts(now)])?;
        Ok(())
    }

    fn insert_inbound(&mut self, m: &NewInbound<'_>) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO inbound (dedup_key, message_id, source, received_at, from_addr, subject, size, raw, \
                 outcome, reason_code, reason, ticket_id, dedup_hash, declared_size, \
                 auth_result, auth_method, auth_detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?
            .execute(params![
                m.dedup_key,
                m.message_id,
                m.source,
                ts(m.received_at),
                m.from,
                m.subject,
                m.raw.len() as i64,
                m.raw,
                m.outcome,
                m.reason_code,
                m.reason,
                m.ticket_id,
                fnv64(m.dedup_key),
                m.declared_size.map(|d| d as i64),
                m.auth.map(|a| a.result.as_str()),
                m.auth.and_then(|a| a.method).map(|x| x.as_str()),
                m.auth.map(|a| a.detail.as_str())
            ])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn insert_article(&mut self, a: &NewArticle<'_>) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO articles (ticket_id, inbound_id, kind, author, body, quoted, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![a.ticket_id, a.inbound_id, a.kind, a.author, a.body, a.quoted, ts(a.now)])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn take_for_replay(&mut self, id: i64) -> Result<Option<(Vec<u8>, String)>> {
        let row: Option<(Vec<u8>, String, String)> = self
            .tx
            .prepare_cached("SELECT raw, source, dedup_key FROM inbound WHERE id = ?1 AND outcome = 'quarantined'")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((raw, source, key)) = row else {
            return Ok(None);
        };
        let retired = format!("replayed:{id}:{key}");
        self.tx
            .prepare_cached("UPDATE inbound SET outcome = 'replayed', dedup_key = ?2, dedup_hash = ?3 WHERE id = ?1")?
            .execute(params![id, retired, fnv64(&retired)])?;
        Ok(Some((raw, source)))
    }

    fn inbound_declared_size(&mut self, id: i64) -> Result<Option<usize>> {
        let size: Option<Option<i64>> = self
            .tx
            .prepare_cached("SELECT declared_size FROM inbound WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(size.flatten().map(|s| s as usize))
    }

    fn set_inbound_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        reason_code: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE inbound SET outcome = ?2, reason_code = ?3, reason = ?4 WHERE id = ?1",
            )?
            .execute(params![id, outcome, reason_code, reason])?;
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
        self.tx
            .prepare_cached(
                "INSERT INTO attachments (article_id, filename, content_type, size, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![article_id, filename, content_type, size as i64, data])?;
        Ok(())
    }

    fn link_message_id(&mut self, message_id: &str, ticket_id: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO message_ids (message_id, ticket_id) VALUES (?1, ?2)",
            )?
            .execute(params![message_id, ticket_id])?;
        Ok(())
    }

    fn enqueue(&mut self, m: &NewOutbound<'_>) -> Result<i64> {
        let now = ts(m.now);
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (ticket_id, inbound_id, kind, recipient, subject, message_id, automatic, body, \
                 state, next_attempt_at, last_error, created_at, recipient_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?10, ?12)",
            )?
            .execute(params![
                m.ticket_id,
                m.inbound_id,
                m.kind,
                m.recipient,
                m.subject,
                m.message_id,
                m.automatic,
                m.body,
                m.state.as_str(),
                now,
                m.note,
                fnv64(m.recipient)
            ])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn set_mailbox_state(&mut self, mailbox: &str, state: MailboxState) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO mailboxes (name, uid_validity, last_uid) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET last_uid = CASE WHEN mailboxes.uid_validity = excluded.uid_validity \
                 THEN max(mailboxes.last_uid, excluded.last_uid) ELSE excluded.last_uid END, \
                 uid_validity = excluded.uid_validity",
            )?
            .execute(params![mailbox, state.uid_validity, state.last_uid])?;
        Ok(())
    }

    fn set_uid_dispositions(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        uids: &[(u32, UidDisposition)],
    ) -> Result<()> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO imap_uids (mailbox, uid_validity, uid, disposition) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET disposition = excluded.disposition",
        )?;
        for (uid, d) in uids {
            st.execute(params![mailbox, uid_validity, uid, d.as_str()])?;
        }
        Ok(())
    }

    fn watchers(&mut self, ticket_id: i64) -> Result<Vec<Watcher>> {
        watchers(&self.tx, ticket_id)
    }

    fn add_watcher(
        &mut self,
        ticket_id: i64,
        address: &str,
        by: &str,
        now: DateTime<Utc>,
        revive: bool,
    ) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO ticket_watchers (ticket_id, address, added_by, added_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (ticket_id, address) DO UPDATE SET added_by = excluded.added_by, \
                 added_at = excluded.added_at, removed_by = NULL, removed_at = NULL \
                 WHERE ticket_watchers.removed_at IS NOT NULL AND ?5",
            )?
            .execute(params![ticket_id, address, by, ts(now), revive])?;
        Ok(n > 0)
    }

    fn remove_watcher(
        &mut self,
        ticket_id: i64,
        address: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE ticket_watchers SET removed_by = ?3, removed_at = ?4 \
                 WHERE ticket_id = ?1 AND address = ?2 AND removed_at IS NULL",
            )?
            .execute(params![ticket_id, address, by, ts(now)])?;
        Ok(n > 0)
    }

    fn set_inbound_threading(&mut self, inbound_id: i64, threaded_by: &str) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE inbound SET threaded_by = ?2 WHERE id = ?1")?
            .execute(params![inbound_id, threaded_by])?;
        Ok(())
    }

    fn set_ticket_token(&mut self, ticket_id: i64, token_hash: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO ticket_tokens (ticket_id, token_hash) VALUES (?1, ?2) \
                 ON CONFLICT (ticket_id) DO UPDATE SET token_hash = excluded.token_hash",
            )?
            .execute(params![ticket_id, token_hash])?;
        Ok(())
    }

    fn report_tickets(
        &mut self,
        customer: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ReportTicket>> {
        report_tickets(&self.tx, customer, from, until)
    }

    fn outbox_target(&mut self, id: i64) -> Result<Option<OutboxTarget>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT id, ticket_id, recipient, kind, message_id FROM outbox WHERE id = ?1",
            )?
            .query_row([id], outbox_target)
            .optional()?)
    }

    fn outbox_by_message_id(&mut self, message_id: &str) -> Result<Option<OutboxTarget>> {
        // No index on outbox.message_id: a bounce without a VERP address is rare, and the
        // Message-ID is linked to its ticket in message_ids, which narrows the search.
        Ok(self
            .tx
            .prepare_cached(
                "SELECT id, ticket_id, recipient, kind, message_id FROM outbox WHERE message_id = ?1 \
                 AND (ticket_id IS NULL OR ticket_id = (SELECT ticket_id FROM message_ids WHERE message_id = ?1)) \
                 ORDER BY id LIMIT 1",
            )?
            .query_row([message_id], outbox_target)
            .optional()?)
    }

    fn suppression(&mut self, address: &str) -> Result<Option<Suppression>> {
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE address = ?1"
            ))?
            .query_row([address], suppression_row)
            .optional()?)
    }

    fn insert_suppression(&mut self, s: &Suppression) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO suppressions ({SUPPRESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                s.address,
                s.kind.as_str(),
                s.reason,
                s.status,
                s.outbox_id,
                s.ticket_id,
                ts(s.created_at)
            ])?
            == 1)
    }

    fn remove_suppression(&mut self, address: &str) -> Result<bool> {
        self.tx
            .prepare_cached("DELETE FROM bounce_scores WHERE address = ?1")?
            .execute([address])?;
        Ok(self
            .tx
            .prepare_cached("DELETE FROM suppressions WHERE address = ?1")?
            .execute([address])?
            == 1)
    }

    fn bounce_score(&mut self, address: &str) -> Result<Option<BounceScore>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT address, score, bounces, first_at, last_at FROM bounce_scores WHERE address = ?1",
            )?
            .query_row([address], |r| {
                Ok(BounceScore {
                    address: r.get(0)?,
                    score: r.get(1)?,
                    bounces: r.get(2)?,
                    first_at: parse_ts(&r.get::<_, String>(3)?)?,
                    last_at: parse_ts(&r.get::<_, String>(4)?)?,
                })
            })
            .optional()?)
    }

    fn set_bounce_score(&mut self, b: &BounceScore) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO bounce_scores (address, score, bounces, first_at, last_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (address) DO UPDATE SET score = excluded.score, bounces = excluded.bounces, \
                 first_at = excluded.first_at, last_at = excluded.last_at",
            )?
            .execute(params![
                b.address,
                b.score,
                b.bounces,
                ts(b.first_at),
                ts(b.last_at)
            ])?;
        Ok(())
    }

    fn count_bounce(&mut self, kind: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO bounce_counts (kind, count) VALUES (?1, 1) \
                 ON CONFLICT (kind) DO UPDATE SET count = count + 1",
            )?
            .execute([kind])?;
        Ok(())
    }

    fn announce(&mut self) -> &mut dyn AnnounceTx {
        self
    }

    fn flag_outbox(&mut self, id: i64, flag: &str) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE outbox SET flag = ?2 WHERE id = ?1")?
            .execute(params![id, flag])?;
        Ok(())
    }

    fn intake_outages(&mut self) -> Result<Vec<OpenOutage>> {
        outage_links::intake_outages(&self.tx)
    }

    fn link_outage(&mut self, ticket_id: i64, outage_id: i64, now: DateTime<Utc>) -> Result<()> {
        outage_links::link_outage(&self.tx, ticket_id, outage_id, now)
    }

    fn outage_tickets(&mut self, outage_id: i64) -> Result<Vec<i64>> {
        outage_links::outage_tickets(&self.tx, outage_id)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

fn watchers(conn: &Connection, ticket_id: i64) -> Result<Vec<Watcher>> {
    let mut st = conn.prepare_cached(
        "SELECT address, added_by, added_at FROM ticket_watchers \
         WHERE ticket_id = ?1 AND removed_at IS NULL ORDER BY added_at, address",
    )?;
    let rows = st.query_map([ticket_id], |r| {
        Ok(Watcher {
            address: r.get(0)?,
            added_by: r.get(1)?,
            added_at: parse_ts(&r.get::<_, String>(2)?)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

const SUPPRESSION_COLUMNS: &str = "address, kind, reason, status, outbox_id, ticket_id, created_at";

fn suppression_row(r: &Row<'_>) -> rusqlite::Result<Suppression> {
    Ok(Suppression {
        address: r.get(0)?,
        kind: {
            let v: String = r.get(1)?;
            crate::bounce::Verdict::parse(&v).ok_or_else(|| {
                let address: String = r.get(0).unwrap_or_default();
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Text,
                    format!("suppression of {address}: `{v}` is not a kind this version knows")
                        .into(),
                )
            })?
        },
        reason: r.get(2)?,
        status: r.get(3)?,
        outbox_id: r.get(4)?,
        ticket_id: r.get(5)?,
        created_at: parse_ts(&r.get::<_, String>(6)?)?,
    })
}

fn outbox_target(r: &Row<'_>) -> rusqlite::Result<OutboxTarget> {
    Ok(OutboxTarget {
        id: r.get(0)?,
        ticket_id: r.get(1)?,
        recipient: r.get(2)?,
        kind: r.get(3)?,
        message_id: r.get(4)?,
    })
}

impl Store for SqliteStore {
    fn write(&mut self) -> Result<Box<dyn WriteTx + '_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    fn tickets(&mut self, limit: usize) -> Result<Vec<TicketRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets ORDER BY id LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], ticket_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn ticket_with_articles(&mut self, id: i64) -> Result<Option<(TicketRow, Vec<ArticleRow>)>> {
        let Some(t) = ticket(&self.conn, id)? else {
            return Ok(None);
        };
        let mut st = self.conn.prepare_cached(
            "SELECT a.id, a.kind, a.author, a.body, a.quoted, a.created_at, \
             i.auth_result, i.auth_method, i.auth_detail \
             FROM articles a LEFT JOIN inbound i ON i.id = a.inbound_id \
             WHERE a.ticket_id = ?1 ORDER BY a.id",
        )?;
        let mut articles: Vec<ArticleRow> = st
            .query_map([id], |r| {
                Ok(ArticleRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    author: r.get(2)?,
                    body: r.get(3)?,
                    quoted: r.get(4)?,
                    created_at: parse_ts(&r.get::<_, String>(5)?)?,
                    attachments: Vec::new(),
                    authentication: crate::auth::Verdict::from_stored(
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    )
                    .map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            6,
                            rusqlite::types::Type::Text,
                            format!("article {}: {e}", r.get::<_, i64>(0).unwrap_or_default())
                                .into(),
                        )
                    })?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut st = self.conn.prepare_cached(
            "SELECT filename, content_type, size, data IS NOT NULL FROM attachments WHERE article_id = ?1 ORDER BY id",
        )?;
        for a in &mut articles {
            a.attachments = st
                .query_map([a.id], |r| {
                    Ok(AttachmentInfo {
                        filename: r.get(0)?,
                        content_type: r.get(1)?,
                        size: r.get(2)?,
                        kept: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(Some((t, articles)))
    }

    fn outbox(&mut self, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {} FROM outbox ORDER BY id LIMIT ?1",
            web::OUTBOX_COLUMNS
        ))?;
        let rows = st.query_map([limit as i64], web::outbox_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn quarantine(&mut self, limit: usize) -> Result<Vec<QuarantineRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, received_at, source, from_addr, subject, message_id, reason_code, reason, \
             COALESCE(declared_size, size) \
             FROM inbound WHERE outcome = 'quarantined' ORDER BY id LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            Ok(QuarantineRow {
                id: r.get(0)?,
                received_at: parse_ts(&r.get::<_, String>(1)?)?,
                source: r.get(2)?,
                from: r.get(3)?,
                subject: r.get(4)?,
                message_id: r.get(5)?,
                reason_code: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                reason: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                size: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn inbound_raw(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .prepare_cached("SELECT raw FROM inbound WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    fn outbox_body(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .prepare_cached("SELECT body FROM outbox WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        max_attempts: u32,
    ) -> Result<Vec<OutboxMail>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "UPDATE outbox SET state = 'dead', \
             last_error = 'gave up after ' || attempts || ' attempts (outbound.max_attempts): the sender stopped during the last one' \
             WHERE state = 'sending' AND next_attempt_at <= ?1 AND attempts >= ?2",
        )?
        .execute(params![ts(now), max_attempts])?;
        let claimed = {
            let mut st = tx.prepare_cached(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1, next_attempt_at = ?2 \
                 WHERE id IN (SELECT id FROM outbox WHERE state IN ('pending', 'retry', 'sending') \
                              AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?3) \
                 RETURNING id, kind, recipient, message_id, attempts, body",
            )?;
            st.query_map(params![ts(now), ts(lease_until), limit as i64], |r| {
                Ok(OutboxMail {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    recipient: r.get(2)?,
                    message_id: r.get(3)?,
                    attempts: r.get(4)?,
                    body: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(claimed)
    }

    fn mark_sent(&mut self, claim: Claim, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET state = 'sent', sent_at = ?3, last_error = NULL \
                 WHERE id = ?1 AND state = 'sending' AND attempts = ?2",
            )?
            .execute(params![claim.id, claim.attempts, ts(now)])?;
        Ok(n == 1)
    }

    fn mark_outcomes(
        &mut self,
        marks: &[(Claim, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        if marks.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut done = Vec::with_capacity(marks.len());
        {
            // One prepared statement for every kind of outcome, in one commit.
            let mut st = tx.prepare_cached(
                "UPDATE outbox SET state = ?3, \
                 sent_at = CASE WHEN ?3 = 'sent' THEN ?4 ELSE sent_at END, \
                 next_attempt_at = COALESCE(?5, next_attempt_at), last_error = ?6 \
                 WHERE id = ?1 AND state = 'sending' AND attempts = ?2",
            )?;
            let at = ts(now);
            for (c, o) in marks {
                let n = st.execute(params![
                    c.id,
                    c.attempts,
                    o.state().as_str(),
                    at,
                    o.next_at().map(ts),
                    o.error()
                ])?;
                done.push(n == 1);
            }
        }
        tx.commit()?;
        Ok(done)
    }

    fn mark_retry(&mut self, claim: Claim, next_at: DateTime<Utc>, error: &str) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET state = 'retry', next_attempt_at = ?3, last_error = ?4 \
                 WHERE id = ?1 AND state = 'sending' AND attempts = ?2",
            )?
            .execute(params![claim.id, claim.attempts, ts(next_at), error])?;
        Ok(n == 1)
    }

    fn mark_failed(&mut self, claim: Claim, error: &str) -> Result<bool> {
        self.mark_final(claim, "failed", error)
    }

    fn mark_dead(&mut self, claim: Claim, error: &str) -> Result<bool> {
        self.mark_final(claim, "dead", error)
    }

    fn release_claims(&mut self, claims: &[Claim], now: DateTime<Utc>) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE outbox SET attempts = attempts - 1, next_attempt_at = ?3, \
                 state = CASE WHEN attempts > 1 THEN 'retry' ELSE 'pending' END \
                 WHERE id = ?1 AND state = 'sending' AND attempts = ?2",
            )?;
            let at = ts(now);
            for c in claims {
                st.execute(params![c.id, c.attempts, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn next_timer(&mut self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT min(t) FROM (SELECT min(due_at) AS t FROM timers \
                 UNION ALL SELECT min(next_due_at) FROM announcements WHERE next_due_at IS NOT NULL \
                 UNION ALL SELECT min(expires_at) FROM subscribers WHERE state = 'pending')",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(parse_opt_ts(next)?)
    }

    fn timers(&mut self, ticket_id: i64) -> Result<Vec<Timer>> {
        let mut st = self.conn.prepare_cached(
            "SELECT ticket_id, kind, due_at FROM timers WHERE ticket_id = ?1 ORDER BY kind",
        )?;
        let rows = st.query_map([ticket_id], timer_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn report_tickets(
        &mut self,
        customer: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ReportTicket>> {
        report_tickets(&self.conn, customer, from, until)
    }

    fn escalations(&mut self, ticket_id: i64) -> Result<Vec<Escalation>> {
        let mut st = self.conn.prepare_cached(
            "SELECT at, severity, due_at FROM escalations WHERE ticket_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([ticket_id], |r| {
            Ok(Escalation {
                at: parse_ts(&r.get::<_, String>(0)?)?,
                severity: r.get(1)?,
                due_at: parse_ts(&r.get::<_, String>(2)?)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn next_due(&mut self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM outbox WHERE state IN ('pending', 'retry', 'sending')",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(next.map(|s| parse_ts(&s)).transpose()?)
    }

    fn retry_outbox(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2 \
                 WHERE id = ?1 AND state IN ('failed', 'dead')",
            )?
            .execute(params![id, ts(now)])?;
        Ok(n == 1)
    }

    fn mailbox_state(&mut self, mailbox: &str) -> Result<Option<MailboxState>> {
        Ok(self
            .conn
            .prepare_cached("SELECT uid_validity, last_uid FROM mailboxes WHERE name = ?1")?
            .query_row([mailbox], |r| {
                Ok(MailboxState {
                    uid_validity: r.get(0)?,
                    last_uid: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?4) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leases.holder = excluded.holder OR leases.until <= ?3",
            )?
            .execute(params![name, holder, ts(now), ts(until)])?;
        Ok(n == 1)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")?
            .execute(params![name, holder])?;
        Ok(())
    }

    fn uid_states(&mut self, mailbox: &str, uid_validity: u32) -> Result<Vec<UidState>> {
        let mut st = self.conn.prepare_cached(
            "SELECT uid, disposition, failures FROM imap_uids \
             WHERE mailbox = ?1 AND uid_validity = ?2 ORDER BY uid",
        )?;
        let rows = st.query_map(params![mailbox, uid_validity], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (uid, d, failures) = row?;
            out.push(UidState {
                uid,
                disposition: UidDisposition::parse(&d).ok_or_else(|| {
                    StoreError::Other(format!(
                        "imap_uids row ({mailbox}, {uid_validity}, {uid}) has the unknown disposition `{d}`"
                    ))
                })?,
                failures,
            });
        }
        Ok(out)
    }

    fn forget_uids(&mut self, mailbox: &str, uid_validity: u32, lo: u32, hi: u32) -> Result<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM imap_uids WHERE mailbox = ?1 AND (uid_validity <> ?2 OR \
                 (uid BETWEEN ?3 AND ?4 AND disposition IN ('stored', 'header_only')))",
            )?
            .execute(params![mailbox, uid_validity, lo, hi])?;
        Ok(())
    }

    fn set_uid_failures(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        uid: u32,
        failures: u32,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO imap_uids (mailbox, uid_validity, uid, disposition, failures) \
                 VALUES (?1, ?2, ?3, 'failing', ?4) ON CONFLICT (mailbox, uid_validity, uid) \
                 DO UPDATE SET failures = excluded.failures WHERE imap_uids.disposition = 'failing'",
            )?
            .execute(params![mailbox, uid_validity, uid, failures])?;
        Ok(())
    }

    fn ticket_watchers(&mut self, ticket_id: i64) -> Result<Vec<Watcher>> {
        watchers(&self.conn, ticket_id)
    }

    fn ticket_outages(&mut self, ticket_id: i64) -> Result<Vec<i64>> {
        outage_links::ticket_outages(&self.conn, ticket_id)
    }

    fn inbound_threading(&mut self, message_id: &str) -> Result<Option<String>> {
        let key = format!("mid:{message_id}");
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE(threaded_by, CASE WHEN outcome = 'appended' THEN 'headers' END) \
                 FROM inbound WHERE dedup_hash = ?1 AND dedup_key = ?2 ORDER BY id LIMIT 1",
            )?
            .query_row(params![fnv64(&key), key], |r| r.get(0))
            .optional()?
            .flatten())
    }

    fn announce(&mut self) -> &mut dyn AnnounceRead {
        self
    }

    fn web(&mut self) -> &mut dyn WebStore {
        self
    }

    fn suppressions(&mut self) -> Result<Vec<Suppression>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SUPPRESSION_COLUMNS} FROM suppressions ORDER BY address"
        ))?;
        let rows = st.query_map([], suppression_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn bounce_counts(&mut self) -> Result<Vec<(String, i64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT kind, count FROM bounce_counts ORDER BY kind")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema check is one query: false on a new file, true once migrated (and then
    /// `migrate` writes nothing).
    #[test]
    fn schema_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let mut s = SqliteStore::open(&path).unwrap();
        assert!(!s.is_migrated(), "a new database is not migrated");
        s.migrate().unwrap();
        assert!(s.is_migrated());
        let changes = s.conn.total_changes();
        s.migrate().unwrap();
        assert_eq!(
            s.conn.total_changes(),
            changes,
            "nothing written when up to date"
        );
        s.conn
            .execute("DELETE FROM schema_migrations WHERE version = 1", [])
            .unwrap();
        assert!(!s.is_migrated(), "one version missing");
    }
}
