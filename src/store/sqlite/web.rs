//! [`WebStore`] on SQLite. Listings build their `WHERE` from the filters given (so each
//! shape uses its index) and page by id, newest first.

use super::*;
use rusqlite::types::Value;

pub(super) const OUTBOX_COLUMNS: &str = "id, ticket_id, kind, recipient, subject, message_id, state, attempts, \
     next_attempt_at, last_error, created_at, sent_at, flag";

pub(super) fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        ticket_id: r.get(1)?,
        kind: r.get(2)?,
        recipient: r.get(3)?,
        subject: r.get(4)?,
        message_id: r.get(5)?,
        state: {
            let v: String = r.get(6)?;
            OutboxState::parse(&v).ok_or_else(|| {
                let id: i64 = r.get(0).unwrap_or_default();
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Text,
                    format!("outbox #{id}: `{v}` is not a state this version knows").into(),
                )
            })?
        },
        attempts: r.get(7)?,
        next_attempt_at: parse_ts(&r.get::<_, String>(8)?)?,
        last_error: r.get(9)?,
        created_at: parse_ts(&r.get::<_, String>(10)?)?,
        sent_at: parse_opt_ts(r.get(11)?)?,
        flag: r.get(12)?,
    })
}

fn token_row(r: &Row<'_>) -> rusqlite::Result<ApiTokenRow> {
    let scope: String = r.get(1)?;
    Ok(ApiTokenRow {
        name: r.get(0)?,
        scope: Scope::parse(&scope).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("api token: `{scope}` is not a scope this version knows").into(),
            )
        })?,
        token_hash: r.get(2)?,
        created_at: parse_ts(&r.get::<_, String>(3)?)?,
        revoked_at: parse_opt_ts(r.get(4)?)?,
    })
}

/// `WHERE` clauses and their values, numbered in order.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    fn add(&mut self, clause: &str, v: Value) {
        self.values.push(v);
        self.clauses
            .push(clause.replace('?', &format!("?{}", self.values.len())));
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

impl WebStore for SqliteStore {
    fn web_stats(&mut self, now: DateTime<Utc>) -> Result<WebStats> {
        let mut stats = WebStats::default();
        {
            let mut st = self.conn.prepare_cached(
                "SELECT state, count(*) FROM outbox WHERE state <> 'sent' GROUP BY state",
            )?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, n) = row?;
                let state = OutboxState::parse(&state).ok_or_else(|| {
                    StoreError::Other(format!(
                        "outbox: `{state}` is not a state this version knows"
                    ))
                })?;
                stats.outbox.push((state, n));
            }
        }
        let oldest: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT min(created_at) FROM outbox WHERE state IN ('pending', 'retry') AND state <> 'sent'",
            )?
            .query_row([], |r| r.get(0))?;
        stats.oldest_pending = parse_opt_ts(oldest)?;
        stats.timers_overdue = self
            .conn
            .prepare_cached("SELECT count(*) FROM timers WHERE due_at <= ?1")?
            .query_row([ts(now)], |r| r.get(0))?;
        Ok(stats)
    }

    fn insert_api_token(
        &mut self,
        name: &str,
        scope: Scope,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO api_tokens (name, scope, token_hash, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, scope.as_str(), token_hash, ts(now)])?;
        Ok(n == 1)
    }

    fn api_tokens(&mut self) -> Result<Vec<ApiTokenRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT name, scope, token_hash, created_at, revoked_at FROM api_tokens ORDER BY name",
        )?;
        let rows = st.query_map([], token_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_api_token(&mut self, name: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![name, ts(now)])?;
        Ok(n == 1)
    }

    fn api_token_by_hash(&mut self, token_hash: &str) -> Result<Option<ApiTokenRow>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name, scope, token_hash, created_at, revoked_at FROM api_tokens WHERE token_hash = ?1",
            )?
            .query_row([token_hash], token_row)
            .optional()?)
    }

    fn tickets_page(&mut self, q: &TicketQuery) -> Result<Vec<TicketRow>> {
        let mut f = Filter::default();
        if let Some(s) = q.status {
            f.add("status = ?", Value::Text(s.as_str().to_string()));
        }
        if let Some(c) = &q.customer {
            f.add("customer = ?", Value::Text(c.clone()));
        }
        if let Some(s) = q.severity {
            f.add("severity = ?", Value::Integer(i64::from(s)));
        }
        if let Some(t) = q.updated_since {
            f.add("updated_at >= ?", Value::Text(ts(t)));
        }
        if let Some(id) = q.before_id {
            f.add("id < ?", Value::Integer(id));
        }
        f.values.push(Value::Integer(q.limit as i64));
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets {} ORDER BY id DESC LIMIT ?{}",
            f.sql(),
            f.values.len()
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(f.values.iter()), ticket_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn outbox_page(&mut self, q: &OutboxQuery) -> Result<Vec<OutboxRow>> {
        let mut f = Filter::default();
        if let Some(k) = &q.kind {
            f.add("kind = ?", Value::Text(k.clone()));
        }
        if let Some(r) = &q.recipient {
            f.add("recipient_hash = ?", Value::Integer(fnv64(r)));
            f.add("recipient = ?", Value::Text(r.clone()));
        }
        if let Some(s) = q.state {
            f.add("state = ?", Value::Text(s.as_str().to_string()));
        }
        if let Some(t) = q.ticket_id {
            f.add("ticket_id = ?", Value::Integer(t));
        }
        if let Some(t) = q.created_from {
            f.add("created_at >= ?", Value::Text(ts(t)));
        }
        if let Some(t) = q.created_to {
            f.add("created_at < ?", Value::Text(ts(t)));
        }
        if let Some(id) = q.before_id {
            f.add("id < ?", Value::Integer(id));
        }
        f.values.push(Value::Integer(q.limit as i64));
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox {} ORDER BY id DESC LIMIT ?{}",
            f.sql(),
            f.values.len()
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(f.values.iter()), outbox_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn outbox_row(&mut self, id: i64) -> Result<Option<OutboxRow>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"
            ))?
            .query_row([id], outbox_row)
            .optional()?)
    }

    fn ticket_by_token(&mut self, token_hash: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT ticket_id FROM ticket_tokens WHERE token_hash = ?1")?
            .query_row([token_hash], |r| r.get(0))
            .optional()?)
    }
}
