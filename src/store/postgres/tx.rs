//! Write transactions: one pooled connection inside a `sqlx::Transaction`, held from call
//! to call, rolled back on the background runtime when dropped without commit.

use super::*;

pub(super) struct PgTx {
    /// `None` once a call timed out (the transaction was dropped, so rolled back, with it).
    pub(super) tx: Option<Transaction<'static, Postgres>>,
    /// A statement failed since the last rollback to a savepoint: PostgreSQL has aborted the
    /// transaction, and a COMMIT would silently roll it back.
    pub(super) failed: bool,
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
                .bind(t.profile.name())
                .bind(&t.issue_type)
                .bind(t.status.as_str())
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
                .bind(t.status.as_str())
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
        let declared_size = m.declared_size.map(|d| d as i64);
        self.call(move |c| {
            Box::pin(async move {
                let hash = fnv64(&dedup_key);
                Ok(sqlx::query_scalar(
                    "INSERT INTO inbound (dedup_key, message_id, source, received_at, from_addr, subject, size, raw, \
                     outcome, reason_code, reason, ticket_id, dedup_hash, declared_size) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
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
                .bind(declared_size)
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

    fn inbound_declared_size(&mut self, id: i64) -> Result<Option<usize>> {
        self.call(move |c| {
            Box::pin(async move {
                let size: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT declared_size FROM inbound WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *c)
                        .await?;
                Ok(size.flatten().map(|s| s as usize))
            })
        })
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
        let mailbox = mailbox.to_string();
        let list: Vec<i64> = uids.iter().map(|(u, _)| i64::from(*u)).collect();
        let what: Vec<String> = uids.iter().map(|(_, d)| d.as_str().to_string()).collect();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO imap_uids (mailbox, uid_validity, uid, disposition) \
                     SELECT $1, $2, u, d FROM UNNEST($3::BIGINT[], $4::TEXT[]) AS t(u, d) \
                     ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET disposition = excluded.disposition",
                )
                .bind(mailbox)
                .bind(i64::from(uid_validity))
                .bind(list)
                .bind(what)
                .execute(&mut *c)
                .await?;
                Ok(())
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
        let state = m.state.as_str();
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

    fn outbox_target(&mut self, id: i64) -> Result<Option<OutboxTarget>> {
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT id, ticket_id, recipient, kind, message_id FROM outbox WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *c)
                .await?
                .as_ref()
                .map(outbox_target)
                .transpose()
            })
        })
    }

    fn outbox_by_message_id(&mut self, message_id: &str) -> Result<Option<OutboxTarget>> {
        let message_id = message_id.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT id, ticket_id, recipient, kind, message_id FROM outbox WHERE message_id = $1 \
                     AND (ticket_id IS NULL OR ticket_id = (SELECT ticket_id FROM message_ids WHERE message_id = $1)) \
                     ORDER BY id LIMIT 1",
                )
                .bind(message_id)
                .fetch_optional(&mut *c)
                .await?
                .as_ref()
                .map(outbox_target)
                .transpose()
            })
        })
    }

    fn suppression(&mut self, address: &str) -> Result<Option<Suppression>> {
        let address = address.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT address, kind, reason, status, outbox_id, ticket_id, created_at \
                     FROM suppressions WHERE address = $1",
                )
                .bind(address)
                .fetch_optional(&mut *c)
                .await?
                .as_ref()
                .map(suppression_row)
                .transpose()
            })
        })
    }

    fn insert_suppression(&mut self, s: &Suppression) -> Result<bool> {
        let s = s.clone();
        self.call(move |c| {
            Box::pin(async move {
                let done = sqlx::query(
                    "INSERT INTO suppressions (address, kind, reason, status, outbox_id, ticket_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (address) DO NOTHING",
                )
                .bind(s.address)
                .bind(s.kind.as_str())
                .bind(s.reason)
                .bind(s.status)
                .bind(s.outbox_id)
                .bind(s.ticket_id)
                .bind(s.created_at)
                .execute(&mut *c)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        })
    }

    fn remove_suppression(&mut self, address: &str) -> Result<bool> {
        let address = address.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM bounce_scores WHERE address = $1")
                    .bind(&address)
                    .execute(&mut *c)
                    .await?;
                let done = sqlx::query("DELETE FROM suppressions WHERE address = $1")
                    .bind(&address)
                    .execute(&mut *c)
                    .await?;
                Ok(done.rows_affected() == 1)
            })
        })
    }

    fn bounce_score(&mut self, address: &str) -> Result<Option<BounceScore>> {
        let address = address.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let Some(r) = sqlx::query(
                    "SELECT address, score, bounces, first_at, last_at FROM bounce_scores WHERE address = $1",
                )
                .bind(address)
                .fetch_optional(&mut *c)
                .await?
                else {
                    return Ok(None);
                };
                Ok(Some(BounceScore {
                    address: r.try_get(0)?,
                    score: r.try_get(1)?,
                    bounces: r.try_get(2)?,
                    first_at: r.try_get(3)?,
                    last_at: r.try_get(4)?,
                }))
            })
        })
    }

    fn set_bounce_score(&mut self, b: &BounceScore) -> Result<()> {
        let b = b.clone();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO bounce_scores (address, score, bounces, first_at, last_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (address) DO UPDATE SET score = excluded.score, bounces = excluded.bounces, \
                     first_at = excluded.first_at, last_at = excluded.last_at",
                )
                .bind(b.address)
                .bind(b.score)
                .bind(b.bounces)
                .bind(b.first_at)
                .bind(b.last_at)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn count_bounce(&mut self, kind: &str) -> Result<()> {
        let kind = kind.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO bounce_counts (kind, count) VALUES ($1, 1) \
                     ON CONFLICT (kind) DO UPDATE SET count = bounce_counts.count + 1",
                )
                .bind(kind)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn flag_outbox(&mut self, id: i64, flag: &str) -> Result<()> {
        let flag = flag.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("UPDATE outbox SET flag = $2 WHERE id = $1")
                    .bind(id)
                    .bind(flag)
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
