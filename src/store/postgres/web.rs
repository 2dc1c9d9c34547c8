//! [`WebStore`] on PostgreSQL: the same queries as SQLite's, with `QueryBuilder` for the
//! filtered listings.

use super::*;
use sqlx::QueryBuilder;

pub(super) const OUTBOX_COLUMNS: &str = "id, ticket_id, kind, recipient, subject, message_id, state, attempts, \
     next_attempt_at, last_error, created_at, sent_at, flag";

pub(super) fn outbox_row(r: &PgRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.try_get(0)?,
        ticket_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        recipient: r.try_get(3)?,
        subject: r.try_get(4)?,
        message_id: r.try_get(5)?,
        state: {
            let v: String = r.try_get(6)?;
            OutboxState::parse(&v).ok_or_else(|| {
                let id: i64 = r.try_get(0).unwrap_or_default();
                StoreError::Other(format!(
                    "outbox #{id}: `{v}` is not a state this version knows"
                ))
            })?
        },
        attempts: r.try_get(7)?,
        next_attempt_at: r.try_get(8)?,
        last_error: r.try_get(9)?,
        created_at: r.try_get(10)?,
        sent_at: r.try_get(11)?,
        flag: r.try_get(12)?,
    })
}

fn token_row(r: &PgRow) -> Result<ApiTokenRow> {
    let scope: String = r.try_get(1)?;
    Ok(ApiTokenRow {
        name: r.try_get(0)?,
        scope: Scope::parse(&scope).ok_or_else(|| {
            StoreError::Other(format!(
                "api token: `{scope}` is not a scope this version knows"
            ))
        })?,
        token_hash: r.try_get(2)?,
        created_at: r.try_get(3)?,
        revoked_at: r.try_get(4)?,
    })
}

const TOKEN_COLUMNS: &str = "name, scope, token_hash, created_at, revoked_at";

impl WebStore for PgStore {
    fn web_stats(&mut self, now: DateTime<Utc>) -> Result<WebStats> {
        self.call(move |c| {
            Box::pin(async move {
                let mut stats = WebStats::default();
                let rows = sqlx::query(
                    "SELECT state, count(*) FROM outbox WHERE state <> 'sent' GROUP BY state",
                )
                .fetch_all(&mut *c)
                .await?;
                for r in rows {
                    let state: String = r.try_get(0)?;
                    let n: i64 = r.try_get(1)?;
                    let state = OutboxState::parse(&state).ok_or_else(|| {
                        StoreError::Other(format!(
                            "outbox: `{state}` is not a state this version knows"
                        ))
                    })?;
                    stats.outbox.push((state, n));
                }
                stats.oldest_pending = sqlx::query_scalar(
                    "SELECT min(created_at) FROM outbox WHERE state IN ('pending', 'retry') AND state <> 'sent'",
                )
                .fetch_one(&mut *c)
                .await?;
                stats.timers_overdue =
                    sqlx::query_scalar("SELECT count(*) FROM timers WHERE due_at <= $1")
                        .bind(now)
                        .fetch_one(&mut *c)
                        .await?;
                Ok(stats)
            })
        })
    }

    fn insert_api_token(
        &mut self,
        name: &str,
        scope: Scope,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (name, hash) = (name.to_string(), token_hash.to_string());
        self.call(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "INSERT INTO api_tokens (name, scope, token_hash, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(scope.as_str())
                .bind(hash)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok(n == 1)
            })
        })
    }

    fn api_tokens(&mut self) -> Result<Vec<ApiTokenRow>> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
                )))
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(token_row)
                .collect()
            })
        })
    }

    fn revoke_api_token(&mut self, name: &str, now: DateTime<Utc>) -> Result<bool> {
        let name = name.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                )
                .bind(name)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok(n == 1)
            })
        })
    }

    fn api_token_by_hash(&mut self, token_hash: &str) -> Result<Option<ApiTokenRow>> {
        let hash = token_hash.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
                )))
                .bind(hash)
                .fetch_optional(&mut *c)
                .await?
                .map(|r| token_row(&r))
                .transpose()
            })
        })
    }

    fn tickets_page(&mut self, q: &TicketQuery) -> Result<Vec<TicketRow>> {
        let q = q.clone();
        self.call(move |c| {
            Box::pin(async move {
                let mut b: QueryBuilder<Postgres> = QueryBuilder::new(concat!(
                    "SELECT id, ",
                    ticket_columns!(),
                    " FROM tickets WHERE true"
                ));
                if let Some(s) = q.status {
                    b.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(cust) = q.customer {
                    b.push(" AND customer = ").push_bind(cust);
                }
                if let Some(s) = q.severity {
                    b.push(" AND severity = ").push_bind(i16::from(s));
                }
                if let Some(t) = q.updated_since {
                    b.push(" AND updated_at >= ").push_bind(t);
                }
                if let Some(id) = q.before_id {
                    b.push(" AND id < ").push_bind(id);
                }
                b.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
                b.build()
                    .fetch_all(&mut *c)
                    .await?
                    .iter()
                    .map(ticket_row)
                    .collect()
            })
        })
    }

    fn outbox_page(&mut self, q: &OutboxQuery) -> Result<Vec<OutboxRow>> {
        let q = q.clone();
        self.call(move |c| {
            Box::pin(async move {
                let mut b: QueryBuilder<Postgres> =
                    QueryBuilder::new(format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE true"));
                if let Some(k) = q.kind {
                    b.push(" AND kind = ").push_bind(k);
                }
                if let Some(r) = q.recipient {
                    b.push(" AND recipient = ").push_bind(r);
                }
                if let Some(s) = q.state {
                    b.push(" AND state = ").push_bind(s.as_str());
                }
                if let Some(t) = q.ticket_id {
                    b.push(" AND ticket_id = ").push_bind(t);
                }
                if let Some(t) = q.created_from {
                    b.push(" AND created_at >= ").push_bind(t);
                }
                if let Some(t) = q.created_to {
                    b.push(" AND created_at < ").push_bind(t);
                }
                if let Some(id) = q.before_id {
                    b.push(" AND id < ").push_bind(id);
                }
                b.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
                b.build()
                    .fetch_all(&mut *c)
                    .await?
                    .iter()
                    .map(outbox_row)
                    .collect()
            })
        })
    }

    fn outbox_row(&mut self, id: i64) -> Result<Option<OutboxRow>> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&mut *c)
                .await?
                .map(|r| outbox_row(&r))
                .transpose()
            })
        })
    }

    fn ticket_by_token(&mut self, token_hash: &str) -> Result<Option<i64>> {
        let hash = token_hash.to_string();
        self.call(move |c| {
            Box::pin(async move {
                Ok(
                    sqlx::query_scalar("SELECT ticket_id FROM ticket_tokens WHERE token_hash = $1")
                        .bind(hash)
                        .fetch_optional(&mut *c)
                        .await?,
                )
            })
        })
    }
}
