//! The store's own calls: `write()`, which begins a transaction under the writer lock, and
//! the reads, outbox claims and outcomes and leases, each on a pooled connection.

use super::tx::PgTx;
use super::*;

impl PgStore {
    /// A transaction on a pooled connection, without the writers' lock.
    fn begin_unlocked(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        let shared = self.shared.clone();
        run(async move {
            shared.pool.begin().await.map_err(|e| match e {
                sqlx::Error::Database(_) => StoreError::Postgres(e),
                e => shared.unreachable(e),
            })
        })?
    }
}

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
        Ok(Box::new(PgTx::new(tx, self.shared.clone(), false)))
    }

    fn write_batch(&mut self) -> Result<Box<dyn WriteTx + '_>> {
        // No lock yet: the batch reads first, and takes it to write (ADR 0009).
        let tx = self.begin_unlocked()?;
        Ok(Box::new(PgTx::new(tx, self.shared.clone(), true)))
    }

    fn write_batch_after(&mut self, before: &dyn Committing) -> Result<Box<dyn WriteTx + '_>> {
        let Some(b) = before.as_any().downcast_ref::<batch::PgCommitting>() else {
            before.wait()?;
            return self.write_batch();
        };
        let state = b.state.clone();
        // Only one commit runs ahead: the one before `before` is done (its rows are in the
        // tables this batch reads), and so is `before` itself when it wrote ahead of its
        // commit (then it hands nothing on).
        if let Some(earlier) = state.after.as_ref().and_then(std::sync::Weak::upgrade) {
            earlier.wait()?;
        }
        if state.carry.is_none() {
            state.wait()?;
        }
        let tx = self.begin_unlocked()?;
        let mut tx = PgTx::new(tx, self.shared.clone(), true);
        tx.follow(state);
        Ok(Box::new(tx))
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
                    "SELECT a.id, a.kind, a.author, a.body, a.quoted, a.created_at, \
                     i.auth_result, i.auth_method, i.auth_detail \
                     FROM articles a LEFT JOIN inbound i ON i.id = a.inbound_id \
                     WHERE a.ticket_id = $1 ORDER BY a.id",
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
                        authentication: crate::auth::Verdict::from_stored(
                            r.try_get(6)?,
                            r.try_get(7)?,
                            r.try_get(8)?,
                        )
                        .map_err(StoreError::Other)?,
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
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM outbox ORDER BY id LIMIT $1",
                    super::web::OUTBOX_COLUMNS
                )))
                .bind(limit)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(super::web::outbox_row)
                .collect()
            })
        })
    }

    fn quarantine(&mut self, limit: usize) -> Result<Vec<QuarantineRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT id, received_at, source, from_addr, subject, message_id, reason_code, reason, \
                     COALESCE(declared_size, size) \
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

    fn mark_outcomes(
        &mut self,
        marks: &[(Claim, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        if marks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = marks.iter().map(|(c, _)| c.id).collect();
        let attempts: Vec<i64> = marks.iter().map(|(c, _)| c.attempts).collect();
        let states: Vec<&'static str> = marks.iter().map(|(_, o)| o.state().as_str()).collect();
        let next: Vec<Option<DateTime<Utc>>> = marks.iter().map(|(_, o)| o.next_at()).collect();
        let errors: Vec<Option<String>> = marks
            .iter()
            .map(|(_, o)| o.error().map(str::to_string))
            .collect();
        let asked = ids.clone();
        let done: Vec<i64> = self.call(move |c| {
            Box::pin(async move {
                // Every outcome in one statement (one commit), each under its claim's fence.
                Ok(sqlx::query_scalar(
                    "UPDATE outbox o SET state = u.state, \
                     sent_at = CASE WHEN u.state = 'sent' THEN $6 ELSE o.sent_at END, \
                     next_attempt_at = COALESCE(u.next, o.next_attempt_at), last_error = u.error \
                     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[]) \
                     AS u(id, attempts, state, next, error) \
                     WHERE o.id = u.id AND o.state = 'sending' AND o.attempts = u.attempts \
                     RETURNING o.id",
                )
                .bind(ids)
                .bind(attempts)
                .bind(states)
                .bind(next)
                .bind(errors)
                .bind(now)
                .fetch_all(&mut *c)
                .await?)
            })
        })?;
        let done: std::collections::HashSet<i64> = done.into_iter().collect();
        Ok(asked.iter().map(|id| done.contains(id)).collect())
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
                Ok(sqlx::query_scalar(
                    "SELECT min(t) FROM (SELECT min(due_at) AS t FROM timers \
                     UNION ALL SELECT min(next_due_at) FROM announcements WHERE next_due_at IS NOT NULL \
                     UNION ALL SELECT min(expires_at) FROM subscribers WHERE state = 'pending') AS n",
                )
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

    fn report_tickets(
        &mut self,
        customer: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ReportTicket>> {
        let customer = customer.to_string();
        self.call(move |c| Box::pin(report_tickets(c, customer, from, until)))
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

    fn uid_states(&mut self, mailbox: &str, uid_validity: u32) -> Result<Vec<UidState>> {
        let mailbox = mailbox.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT uid, disposition, failures FROM imap_uids \
                     WHERE mailbox = $1 AND uid_validity = $2 ORDER BY uid",
                )
                .bind(&mailbox)
                .bind(i64::from(uid_validity))
                .fetch_all(&mut *c)
                .await?
                .iter()
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
            })
        })
    }

    fn forget_uids(&mut self, mailbox: &str, uid_validity: u32, lo: u32, hi: u32) -> Result<()> {
        let mailbox = mailbox.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "DELETE FROM imap_uids WHERE mailbox = $1 AND (uid_validity <> $2 OR \
                     (uid BETWEEN $3 AND $4 AND disposition IN ('stored', 'header_only')))",
                )
                .bind(mailbox)
                .bind(i64::from(uid_validity))
                .bind(i64::from(lo))
                .bind(i64::from(hi))
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn set_uid_failures(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        uid: u32,
        failures: u32,
    ) -> Result<()> {
        let mailbox = mailbox.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO imap_uids (mailbox, uid_validity, uid, disposition, failures) \
                     VALUES ($1, $2, $3, 'failing', $4) ON CONFLICT (mailbox, uid_validity, uid) \
                     DO UPDATE SET failures = excluded.failures WHERE imap_uids.disposition = 'failing'",
                )
                .bind(mailbox)
                .bind(i64::from(uid_validity))
                .bind(i64::from(uid))
                .bind(i32::try_from(failures).unwrap_or(i32::MAX))
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn ticket_watchers(&mut self, ticket_id: i64) -> Result<Vec<Watcher>> {
        self.call(move |c| Box::pin(async move { super::tx::watchers_of(c, ticket_id).await }))
    }

    fn ticket_outages(&mut self, ticket_id: i64) -> Result<Vec<i64>> {
        self.call(move |c| {
            Box::pin(async move { super::outage_links::ticket_outages(c, ticket_id).await })
        })
    }

    fn inbound_threading(&mut self, message_id: &str) -> Result<Option<String>> {
        let key = format!("mid:{message_id}");
        self.call(move |c| {
            Box::pin(async move {
                let v: Option<Option<String>> = sqlx::query_scalar(
                    "SELECT COALESCE(threaded_by, CASE WHEN outcome = 'appended' THEN 'headers' END) \
                     FROM inbound WHERE dedup_hash = $1 AND dedup_key = $2 ORDER BY id LIMIT 1",
                )
                .bind(fnv64(&key))
                .bind(&key)
                .fetch_optional(&mut *c)
                .await?;
                Ok(v.flatten())
            })
        })
    }

    fn suppressions(&mut self) -> Result<Vec<Suppression>> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT address, kind, reason, status, outbox_id, ticket_id, created_at \
                     FROM suppressions ORDER BY address",
                )
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(suppression_row)
                .collect()
            })
        })
    }

    fn announce(&mut self) -> &mut dyn AnnounceRead {
        self
    }

    fn web(&mut self) -> &mut dyn WebStore {
        self
    }

    fn bounce_counts(&mut self) -> Result<Vec<(String, i64)>> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("SELECT kind, count FROM bounce_counts ORDER BY kind")
                    .fetch_all(&mut *c)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            })
        })
    }
}
