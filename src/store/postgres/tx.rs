//! Write transactions: one pooled connection inside a `sqlx::Transaction`, held from call
//! to call, rolled back on the background runtime when dropped without commit.
//!
//! Writes are buffered and written as sets ([`batch`](super::batch), ADR 0009); reads are
//! answered from what the transaction read before and wrote itself, or from the server.
//! A transaction from [`Store::write`] holds the writers' lock from its start and writes
//! each row at once (its errors show where they happen: agent actions, replays); one from
//! [`Store::write_batch`] (a batch of mail, a tick) buffers its writes and takes its locks
//! only when it must write, then checks again everything it read without them: at commit,
//! the writers' lock shared and a lock per item it writes (`locks.rs`, ADR 0023); before its
//! commit (at a savepoint, for a write that is not buffered, to read what it buffered: more
//! may follow) the writers' lock exclusive.

use super::batch::*;
use super::locks::{self, Guard, lock_and_check};
use super::*;

pub(super) struct PgTx {
    /// `None` once a call timed out (the transaction was dropped, so rolled back, with it).
    pub(super) tx: Option<Transaction<'static, Postgres>>,
    /// A statement failed since the last rollback to a savepoint: PostgreSQL has aborted the
    /// transaction, and a COMMIT would silently roll it back.
    pub(super) failed: bool,
    pub(super) shared: Arc<Shared>,
    /// The writers' advisory lock is held exclusive: reads need no check.
    pub(super) locked: bool,
    /// Since a savepoint: every write goes to the server at once (a savepoint must cover
    /// exactly what was written before it).
    pub(super) direct: bool,
    pub(super) buf: Buffer,
    pub(super) cache: Cache,
    pub(super) checks: Checks,
    /// Tickets this transaction inserted (how many ticket ids to reserve at once).
    pub(super) tickets_made: usize,
    /// The automatic-reply cap, when a prefetch said it.
    pub(super) limit: Option<u32>,
    /// The batch before this one, whose commit may still run ([`Store::write_batch_after`]):
    /// waited for before this transaction takes the writers' lock.
    pub(super) before: Option<Arc<InFlight>>,
    /// That batch's automatic mail (its times by recipient), counted from memory against
    /// the cap.
    pub(super) carried_auto: HashMap<String, Vec<DateTime<Utc>>>,
    /// Their outbox ids, left out of the counts read from the table until that commit is
    /// known done.
    pub(super) exclude_outbox: Vec<i64>,
}

impl PgTx {
    /// `batch`: reads before the lock, writes buffered ([`Store::write_batch`]); otherwise
    /// the lock is held from the start and every write goes to the server at once, so it
    /// fails where it is made ([`Store::write`]).
    pub(super) fn new(
        tx: Transaction<'static, Postgres>,
        shared: Arc<Shared>,
        batch: bool,
    ) -> PgTx {
        PgTx {
            tx: Some(tx),
            failed: false,
            shared,
            locked: !batch,
            direct: !batch,
            buf: Buffer::default(),
            cache: Cache::default(),
            checks: Checks::default(),
            tickets_made: 0,
            limit: None,
            before: None,
            carried_auto: HashMap::new(),
            exclude_outbox: Vec::new(),
        }
    }

    /// Makes this (new) transaction follow `before`: it reads what that batch wrote as if
    /// it were committed (tickets checked against the version its commit gives them, the
    /// automatic mail counted from memory and left out of the counts read), and waits for
    /// its commit before taking the writers' lock (ADR 0019).
    pub(super) fn follow(&mut self, before: Arc<InFlight>) {
        if let Some(c) = &before.carry {
            for t in &c.tickets {
                self.cache.no_ticket.remove(&t.id);
                self.cache.tickets.insert(t.id, t.clone());
                self.checks.tickets.insert(t.id, CARRIED);
            }
            for (k, t) in &c.inbound_keys {
                self.cache.inbound.insert(k.clone(), Some(*t));
            }
            for (m, t) in &c.links {
                self.cache.links.insert(m.clone(), Some(*t));
            }
            for (r, at, _) in &c.auto {
                self.carried_auto.entry(r.clone()).or_default().push(*at);
            }
            self.exclude_outbox = c.auto.iter().map(|(_, _, id)| *id).collect();
        }
        self.before = Some(before);
    }

    /// Waits for the batch before this one to commit (its failure fails this transaction:
    /// it was prepared on that batch's effects).
    fn wait_before(&mut self) -> Result<()> {
        if let Some(b) = self.before.take() {
            match b.wait() {
                Ok(xid) => self.checks.resolve(xid),
                Err(e) => {
                    self.failed = true;
                    return Err(StoreError::Other(format!(
                        "the batch before this one was not committed ({e}), so this one, prepared on its effects, is not either"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on the transaction's connection, on the background runtime.
    pub(super) fn call<T: Send + 'static>(&mut self, f: impl Call<T>) -> Result<T> {
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

    /// Takes the writers' lock, then checks the reads made without it.
    pub(super) fn lock(&mut self) -> Result<()> {
        if self.locked {
            return Ok(());
        }
        self.wait_before()?;
        let checks = self.take_checks();
        // More may follow, written row by row and read back without checks: exclusive.
        self.call(move |c| {
            Box::pin(async move { lock_and_check(c, &Guard::Exclusive, &checks).await })
        })?;
        self.locked = true;
        Ok(())
    }

    /// Takes the lock and writes what is buffered; the cache is then dropped (the tables say
    /// the same, and the lock keeps them so).
    pub(super) fn sync(&mut self) -> Result<()> {
        self.lock()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let f = Flush::take(&mut self.buf, &self.cache)?;
        self.cache = Cache::default();
        self.call(move |c| Box::pin(async move { flush(c, f).await }))?;
        Ok(())
    }

    /// After a buffered write: written at once in direct mode, or when the buffer is large
    /// (memory; the lock is then taken).
    fn wrote(&mut self) -> Result<()> {
        if self.direct || self.buf.rows() >= FLUSH_ROWS {
            self.sync()?;
        }
        Ok(())
    }

    /// A new row's id, from the pool of reserved ids (refilled when empty).
    fn id(&mut self, seq: Seq) -> Result<i64> {
        if let Some(id) = self.shared.pool().take(seq) {
            return Ok(id);
        }
        let want = ids_wanted(
            seq,
            if seq == Seq::Tickets {
                self.tickets_made
            } else {
                0
            },
        );
        let got = self.call(move |c| Box::pin(async move { reserve(c, want).await }))?;
        let mut pool = self.shared.pool();
        pool.add(got);
        pool.take(seq)
            .ok_or_else(|| StoreError::Other("no id was reserved".into()))
    }

    /// Dedup keys looked up on the server, into the cache (and the checks when unlocked).
    fn learn_inbound(&mut self, asked: &[String], found: Vec<(String, Option<i64>)>) {
        let found: HashMap<String, Option<i64>> = found.into_iter().collect();
        for k in asked {
            let v = found.get(k).copied();
            if v.is_none() && !self.locked {
                self.checks.absent_keys.push(k.clone());
            }
            self.cache.inbound.insert(k.clone(), v);
        }
    }

    fn learn_suppressions(&mut self, found: HashMap<String, Option<Suppression>>) {
        self.cache.suppressions.extend(found);
    }

    fn learn_links(&mut self, asked: &[String], found: Vec<(String, i64)>) {
        let found: HashMap<String, i64> = found.into_iter().collect();
        for m in asked {
            let v = found.get(m).copied();
            if !self.locked {
                self.checks.links.push((m.clone(), v));
            }
            self.cache.links.insert(m.clone(), v);
        }
    }

    fn learn_tickets(&mut self, asked: &[i64], found: Vec<(TicketRow, i64)>) {
        let mut missing: HashSet<i64> = asked.iter().copied().collect();
        for (t, version) in found {
            missing.remove(&t.id);
            // A ticket already known is kept as this transaction sees it (it may have
            // changed it), and checked against the version it first read.
            if self.cache.tickets.contains_key(&t.id) {
                continue;
            }
            if !self.locked {
                self.checks.tickets.entry(t.id).or_insert(version);
            }
            self.cache.tickets.insert(t.id, t);
        }
        self.cache.no_ticket.extend(missing);
    }

    /// The buffered automatic mails to `recipient` since `since` (not suppressed).
    /// With the batch before this one's, when its commit was still running.
    fn buffered_auto(&self, recipient: &str, since: DateTime<Utc>) -> u32 {
        let own = self
            .buf
            .outbox
            .iter()
            .filter(|m| {
                m.automatic && m.state != "suppressed" && m.recipient == recipient && m.now >= since
            })
            .count();
        let carried = self
            .carried_auto
            .get(recipient)
            .map_or(0, |v| v.iter().filter(|at| **at >= since).count());
        (own + carried) as u32
    }

    fn learn_counts(&mut self, asked: &[String], since: DateTime<Utc>, found: Vec<(String, i64)>) {
        let found: HashMap<String, i64> = found.into_iter().collect();
        for r in asked {
            let n = found.get(r).copied().unwrap_or(0);
            if !self.locked {
                self.checks
                    .counts
                    .entry((r.clone(), since))
                    .or_insert((n, None));
            }
            let total = u32::try_from(n).unwrap_or(u32::MAX) + self.buffered_auto(r, since);
            self.cache
                .counts
                .entry(r.clone())
                .or_default()
                .push((since, total));
        }
    }

    /// The cached count, or the table's (with those of the held tickets' requesters).
    fn count_since(&mut self, recipient: &str, since: DateTime<Utc>) -> Result<u32> {
        if let Some(v) = self.cache.counts.get(recipient)
            && let Some((_, n)) = v.iter().find(|(s, _)| *s == since)
        {
            return Ok(*n);
        }

        // With the requesters of every ticket this transaction holds (a tick's due
        // tickets): their mail is likely next, and one query answers for all.
        let mut asked = vec![recipient.to_string()];
        let mut seen: HashSet<&str> = HashSet::from([recipient]);
        for t in self.cache.tickets.values() {
            let counted = self
                .cache
                .counts
                .get(&t.requester)
                .is_some_and(|v| v.iter().any(|(s, _)| *s == since));
            if !counted && seen.insert(t.requester.as_str()) {
                asked.push(t.requester.clone());
            }
        }
        let q = asked.clone();
        let exclude = self.exclude_outbox.clone();
        let found =
            self.call(move |c| Box::pin(async move { auto_counts(c, &q, since, &exclude).await }))?;
        self.learn_counts(&asked, since, found);
        Ok(self
            .cache
            .counts
            .get(recipient)
            .and_then(|v| v.iter().find(|(s, _)| *s == since))
            .map_or(0, |(_, n)| *n))
    }

    /// The reads to check as the lock is taken. A ticket matters when this transaction
    /// writes it (no lost update); one it only read is dropped from the cache instead (its
    /// identity, which routing uses, never changes; anything else is read again under the
    /// lock).
    fn take_checks(&mut self) -> Checks {
        let mut checks = std::mem::take(&mut self.checks);
        let buf = &self.buf;
        checks
            .tickets
            .retain(|id, _| buf.changed_ticket_ids.contains(id));
        self.cache
            .tickets
            .retain(|id, _| buf.changed_ticket_ids.contains(id) || buf.new_ticket_ids.contains(id));
        checks.limit = self.limit;
        checks.exclude_outbox = std::mem::take(&mut self.exclude_outbox);
        // Under the lock the batch before is committed: the table counts its mail.
        self.carried_auto.clear();
        checks
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

/// The most outbox ids `due_timers` reserves ahead for the mail of the timers it returns.
const CHUNK_OUTBOX_IDS: usize = 4096;

impl WriteTx for PgTx {
    fn prefetches(&self) -> bool {
        !self.direct
    }

    fn prefetch(&mut self, what: &Prefetch) -> Result<()> {
        if self.direct || what.mails.is_empty() {
            return Ok(());
        }
        self.limit = what.auto_reply_limit;
        let mut keys: Vec<String> = Vec::new();
        let mut mids: Vec<String> = Vec::new();
        let mut ticket_ids: Vec<i64> = Vec::new();
        let mut recipients: Vec<String> = Vec::new();
        let mut seen_keys = HashSet::new();
        let mut seen_mids = HashSet::new();
        let mut seen_recipients = HashSet::new();
        // The senders, who most outbound mail of the chunk goes to (the suppression check).
        let mut addresses: Vec<String> = Vec::new();
        let mut seen_addresses = HashSet::new();
        for m in &what.mails {
            if let Some(from) = &m.from {
                let a = from.to_ascii_lowercase();
                if !self.cache.suppressions.contains_key(&a) && seen_addresses.insert(a.clone()) {
                    addresses.push(a);
                }
            }
            let mut key = |k: String, keys: &mut Vec<String>| {
                if !self.cache.inbound.contains_key(&k) && seen_keys.insert(k.clone()) {
                    keys.push(k);
                }
            };
            key(m.dedup_key.clone(), &mut keys);
            for id in &m.message_ids {
                key(format!("mid:{id}"), &mut keys);
                if !self.cache.links.contains_key(id) && seen_mids.insert(id.clone()) {
                    mids.push(id.clone());
                }
            }
            for &t in &m.ticket_ids {
                if !self.cache.tickets.contains_key(&t) && !self.cache.no_ticket.contains(&t) {
                    ticket_ids.push(t);
                }
            }
            if let (Some(from), Some(since)) = (&m.from, what.since) {
                let known = self
                    .cache
                    .counts
                    .get(from)
                    .is_some_and(|v| v.iter().any(|(s, _)| *s == since));
                if !known && seen_recipients.insert(from.clone()) {
                    recipients.push(from.clone());
                }
            }
        }
        ticket_ids.sort_unstable();
        ticket_ids.dedup();
        let since = what.since;
        // Ids for the rows the chunk will write. A mail that names a key, is new, and refers
        // to no thread or ticket will likely open one (fewer: taken one by one later; more:
        // kept in the pool for the next batch).
        let opening = what
            .mails
            .iter()
            .filter(|m| {
                m.may_open
                    && m.message_ids.is_empty()
                    && m.ticket_ids.is_empty()
                    && !self.buf.inbound_keys.contains_key(&m.dedup_key)
                    && !matches!(self.cache.inbound.get(&m.dedup_key), Some(Some(_)))
            })
            .count();
        let n = what.mails.len();
        let reserve = self.shared.pool().missing([opening, n, n, 2 * n]);
        let (qk, qm, qr) = (keys.clone(), mids.clone(), recipients.clone());
        let qa = addresses.clone();
        let exclude = self.exclude_outbox.clone();
        let (sets, tickets, ticket_asked, suppressed) = self.call(move |c| {
            Box::pin(async move {
                let qr = if since.is_some() { qr } else { Vec::new() };
                let sets = prefetch_sets(c, &qk, &qm, &qr, since, reserve, &exclude).await?;
                // The tickets the threads lead to, with those named by number.
                let mut ids = ticket_ids;
                ids.extend(sets.links.iter().map(|(_, t)| *t));
                ids.extend(sets.inbound.iter().filter_map(|(_, t)| *t));
                ids.sort_unstable();
                ids.dedup();
                let tickets = tickets_by_id(c, &ids).await?;
                let suppressed = suppressions_of(c, &qa).await?;
                Ok((sets, tickets, ids, suppressed))
            })
        })?;
        let Prefetched {
            inbound,
            links,
            counts,
            ids,
        } = sets;
        self.shared.pool().add(ids);
        self.learn_inbound(&keys, inbound);
        self.learn_links(&mids, links);
        self.learn_suppressions(suppressed);
        let known: Vec<i64> = ticket_asked
            .into_iter()
            .filter(|id| !self.cache.tickets.contains_key(id))
            .collect();
        self.learn_tickets(&known, tickets);
        if let Some(s) = since {
            self.learn_counts(&recipients, s, counts);
        }
        Ok(())
    }

    fn savepoint(&mut self) -> Result<()> {
        self.sync()?;
        self.cache = Cache::default();
        self.direct = true;
        self.statement("SAVEPOINT mail")
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.statement("RELEASE SAVEPOINT mail")
    }

    fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.buf = Buffer::default();
        self.cache = Cache::default();
        self.statement("ROLLBACK TO SAVEPOINT mail; RELEASE SAVEPOINT mail")?;
        self.failed = false;
        Ok(())
    }

    fn inbound_exists(&mut self, dedup_key: &str) -> Result<bool> {
        if self.buf.inbound_keys.contains_key(dedup_key) {
            return Ok(true);
        }
        if let Some(v) = self.cache.inbound.get(dedup_key) {
            return Ok(v.is_some());
        }
        let asked = vec![dedup_key.to_string()];
        let q = asked.clone();
        let found = self.call(move |c| Box::pin(async move { inbound_keys(c, &q).await }))?;
        let exists = !found.is_empty();
        self.learn_inbound(&asked, found);
        Ok(exists)
    }

    fn ticket_for_message_id(&mut self, message_id: &str) -> Result<Option<i64>> {
        // As the tables would answer: `message_ids` first, then the first inbound mail with
        // this Message-ID that names a ticket (the stored ones come before this batch's).
        if !self.cache.links.contains_key(message_id) {
            let asked = vec![message_id.to_string()];
            let q = asked.clone();
            let found = self.call(move |c| Box::pin(async move { message_links(c, &q).await }))?;
            self.learn_links(&asked, found);
        }
        if let Some(Some(t)) = self.cache.links.get(message_id) {
            return Ok(Some(*t));
        }
        if let Some(&t) = self.buf.link_of.get(message_id) {
            return Ok(Some(t));
        }
        let key = format!("mid:{message_id}");
        if !self.cache.inbound.contains_key(&key) {
            let asked = vec![key.clone()];
            let q = asked.clone();
            let found = self.call(move |c| Box::pin(async move { inbound_keys(c, &q).await }))?;
            self.learn_inbound(&asked, found);
        }
        if let Some(Some(Some(t))) = self.cache.inbound.get(&key) {
            return Ok(Some(*t));
        }
        Ok(self.buf.inbound_keys.get(&key).copied().flatten())
    }

    fn ticket(&mut self, id: i64) -> Result<Option<TicketRow>> {
        if let Some(t) = self.cache.tickets.get(&id) {
            return Ok(Some(t.clone()));
        }
        if self.cache.no_ticket.contains(&id) {
            return Ok(None);
        }
        let found = self.call(move |c| Box::pin(async move { tickets_by_id(c, &[id]).await }))?;
        self.learn_tickets(&[id], found);
        Ok(self.cache.tickets.get(&id).cloned())
    }

    fn automatic_sent_since(&mut self, recipient: &str, since: DateTime<Utc>) -> Result<u32> {
        let n = self.count_since(recipient, since)?;
        // An answer below the cap (mail sent) is what another writer's mail could change.
        if !self.locked
            && let Some(limit) = self.limit
            && n < limit
            && let Some(c) = self.checks.counts.get_mut(&(recipient.to_string(), since))
        {
            c.1 = Some(c.1.map_or(n, |b| b.max(n)));
        }
        Ok(n)
    }

    fn alert_due(&mut self, key: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool> {
        self.sync()?;
        let key = key.to_string();
        self.call(move |c| {
            Box::pin(async move {
                let done = sqlx::query(
                    "INSERT INTO alert_throttle (key, last_at) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET last_at = excluded.last_at \
                     WHERE alert_throttle.last_at < $3",
                )
                .bind(&key)
                .bind(now)
                .bind(since)
                .execute(&mut *c)
                .await?;
                Ok(done.rows_affected() > 0)
            })
        })
    }

    fn insert_ticket(&mut self, t: &TicketRow) -> Result<i64> {
        let id = self.id(Seq::Tickets)?;
        self.tickets_made += 1;
        let mut row = micro_ticket(t);
        row.id = id;
        self.cache.no_ticket.remove(&id);
        self.cache.tickets.insert(id, row);
        self.buf.new_tickets.push(id);
        self.buf.new_ticket_ids.insert(id);
        self.wrote()?;
        Ok(id)
    }

    fn save_ticket(&mut self, t: &TicketRow) -> Result<()> {
        self.cache.tickets.insert(t.id, micro_ticket(t));
        self.buf.touch_ticket(t.id);
        self.wrote()
    }

    fn touch_ticket(&mut self, id: i64, now: DateTime<Utc>) -> Result<()> {
        if self.ticket(id)?.is_none() {
            return Ok(());
        }
        if let Some(t) = self.cache.tickets.get_mut(&id) {
            t.updated_at = micro(now);
        }
        self.buf.touch_ticket(id);
        self.wrote()
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
        self.buf.history.push(HistoryIns {
            ticket_id,
            at,
            from: from.to_string(),
            to: to.to_string(),
            actor: actor.to_string(),
            reason: reason.map(str::to_string),
        });
        self.wrote()
    }

    fn insert_escalation(
        &mut self,
        ticket_id: i64,
        at: DateTime<Utc>,
        severity: u8,
        due_at: DateTime<Utc>,
        target_secs: i64,
    ) -> Result<()> {
        self.buf.escalations.push(EscalationIns {
            ticket_id,
            at,
            severity: i16::from(severity),
            due_at,
            target_secs,
        });
        self.wrote()
    }

    fn set_timer(&mut self, ticket_id: i64, kind: &str, due_at: DateTime<Utc>) -> Result<()> {
        self.buf
            .timers
            .insert((ticket_id, kind.to_string()), Some(due_at));
        self.wrote()
    }

    fn clear_timer(&mut self, ticket_id: i64, kind: &str) -> Result<()> {
        self.buf.timers.insert((ticket_id, kind.to_string()), None);
        self.wrote()
    }

    fn due_timers(&mut self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>> {
        self.sync()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The due timers, their tickets, the tickets' watchers and whether their requesters
        // are suppressed, in one call: the tick then reads from memory (the mail a timer
        // writes asks for both; one round trip each per mail was most of a tick).
        //
        // No row locks: `sync` took the writers' lock exclusive, and every writer of
        // `timers` takes it (a batch shared) first, so no other transaction can fire or change these timers before this one
        // commits (and READ COMMITTED shows this statement all the previous holder wrote).
        // `FOR UPDATE` wrote a lock record, and on a page not yet written since the last
        // checkpoint a full-page image, for each due timer (ADR 0020).
        //
        // And outbox ids for the mail they will write (up to two a timer, less what the pool
        // holds), so that the tick does not stop every 256 mails to reserve more.
        let free = CHUNK_OUTBOX_IDS - self.shared.pool().missing([0, 0, 0, CHUNK_OUTBOX_IDS])[3];
        let (timers, tickets, ids, watchers, suppressed, reserved) = self.call(move |c| {
            Box::pin(async move {
                let timers = sqlx::query(
                    "SELECT ticket_id, kind, due_at FROM timers WHERE due_at <= $1 \
                     ORDER BY due_at, ticket_id LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *c)
                .await?
                .iter()
                .map(timer_row)
                .collect::<Result<Vec<_>>>()?;
                let mut ids: Vec<i64> = timers.iter().map(|t| t.ticket_id).collect();
                ids.sort_unstable();
                ids.dedup();
                let tickets = tickets_by_id(c, &ids).await?;
                let watchers = watchers_of_tickets(c, &ids).await?;
                let mut requesters: Vec<String> = tickets
                    .iter()
                    .map(|(t, _)| t.requester.to_ascii_lowercase())
                    .collect();
                requesters.sort_unstable();
                requesters.dedup();
                let suppressed = suppressions_of(c, &requesters).await?;
                let want = (2 * timers.len())
                    .min(CHUNK_OUTBOX_IDS)
                    .saturating_sub(free);
                let reserved = if want > 0 {
                    Some(reserve(c, [0, 0, 0, want]).await?)
                } else {
                    None
                };
                Ok((timers, tickets, ids, watchers, suppressed, reserved))
            })
        })?;
        if let Some(got) = reserved {
            self.shared.pool().add(got);
        }
        self.learn_tickets(&ids, tickets);
        self.cache.watchers.extend(watchers);
        self.learn_suppressions(suppressed);
        Ok(timers)
    }

    fn insert_inbound(&mut self, m: &NewInbound<'_>) -> Result<i64> {
        let id = self.id(Seq::Inbound)?;
        let first = self
            .buf
            .inbound_keys
            .entry(m.dedup_key.to_string())
            .or_insert(None);
        if first.is_none() {
            *first = m.ticket_id;
        }
        self.buf.inbound_at.insert(id, self.buf.inbound.len());
        self.buf.inbound.push(InboundIns {
            id,
            dedup_key: m.dedup_key.to_string(),
            message_id: m.message_id.map(str::to_string),
            source: m.source.to_string(),
            received_at: m.received_at,
            from: m.from.map(str::to_string),
            subject: m.subject.to_string(),
            size: m.raw.len() as i64,
            raw: m.raw.to_vec(),
            outcome: m.outcome.to_string(),
            reason_code: m.reason_code.map(str::to_string),
            reason: m.reason.map(str::to_string),
            ticket_id: m.ticket_id,
            declared_size: m.declared_size.map(|d| d as i64),
            auth_result: m.auth.map(|a| a.result.as_str()),
            auth_method: m.auth.and_then(|a| a.method).map(|x| x.as_str()),
            auth_detail: m.auth.map(|a| a.detail.clone()),
            threaded_by: None,
        });
        self.wrote()?;
        Ok(id)
    }

    fn insert_article(&mut self, a: &NewArticle<'_>) -> Result<i64> {
        let id = self.id(Seq::Articles)?;
        self.buf.articles.push(ArticleIns {
            id,
            ticket_id: a.ticket_id,
            inbound_id: a.inbound_id,
            kind: a.kind.to_string(),
            author: a.author.to_string(),
            body: a.body.to_string(),
            quoted: a.quoted.to_string(),
            created_at: a.now,
        });
        self.wrote()?;
        Ok(id)
    }

    fn take_for_replay(&mut self, id: i64) -> Result<Option<(Vec<u8>, String)>> {
        self.sync()?;
        // It re-keys a row the cache may know.
        self.cache = Cache::default();
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
        self.sync()?;
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
        self.sync()?;
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

    fn set_mailbox_state(&mut self, mailbox: &str, state: MailboxState) -> Result<()> {
        self.sync()?;
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

    fn watchers(&mut self, ticket_id: i64) -> Result<Vec<Watcher>> {
        // ticket_watchers is written directly (never buffered): no flush needed. A tick
        // reads its due tickets' watchers with the timers.
        if let Some(w) = self.cache.watchers.get(&ticket_id) {
            return Ok(w.clone());
        }
        self.call(move |c| Box::pin(async move { watchers_of(c, ticket_id).await }))
    }

    fn add_watcher(
        &mut self,
        ticket_id: i64,
        address: &str,
        by: &str,
        now: DateTime<Utc>,
        revive: bool,
    ) -> Result<bool> {
        self.sync()?;
        self.cache.watchers.remove(&ticket_id);
        let (address, by) = (address.to_string(), by.to_string());
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "INSERT INTO ticket_watchers (ticket_id, address, added_by, added_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (ticket_id, address) DO UPDATE SET added_by = excluded.added_by, \
                     added_at = excluded.added_at, removed_by = NULL, removed_at = NULL \
                     WHERE ticket_watchers.removed_at IS NOT NULL AND $5",
                )
                .bind(ticket_id)
                .bind(address)
                .bind(by)
                .bind(now)
                .bind(revive)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        })
    }

    fn outbox_target(&mut self, id: i64) -> Result<Option<OutboxTarget>> {
        self.sync()?;
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

    fn remove_watcher(
        &mut self,
        ticket_id: i64,
        address: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.sync()?;
        self.cache.watchers.remove(&ticket_id);
        let (address, by) = (address.to_string(), by.to_string());
        self.call(move |c| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE ticket_watchers SET removed_by = $3, removed_at = $4 \
                     WHERE ticket_id = $1 AND address = $2 AND removed_at IS NULL",
                )
                .bind(ticket_id)
                .bind(address)
                .bind(by)
                .bind(now)
                .execute(&mut *c)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        })
    }

    fn outbox_by_message_id(&mut self, message_id: &str) -> Result<Option<OutboxTarget>> {
        self.sync()?;
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

    fn set_inbound_threading(&mut self, inbound_id: i64, threaded_by: &str) -> Result<()> {
        // Usually the row of this very batch, still in the buffer: no flush.
        if let Some(&i) = self.buf.inbound_at.get(&inbound_id) {
            self.buf.inbound[i].threaded_by = Some(threaded_by.to_string());
            return Ok(());
        }
        self.sync()?;
        let threaded_by = threaded_by.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query("UPDATE inbound SET threaded_by = $2 WHERE id = $1")
                    .bind(inbound_id)
                    .bind(threaded_by)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
    }

    fn suppression(&mut self, address: &str) -> Result<Option<Suppression>> {
        // Once per address and transaction (every outbound mail asks: a round trip each
        // cost more than the rest of a mail's work, ADR 0016). Like before, a read that is
        // not checked under the lock: `suppressions` is not part of a batch's decisions
        // that another writer can invalidate (a late suppression stops the next mail).
        if let Some(s) = self.cache.suppressions.get(address) {
            return Ok(s.clone());
        }
        let q = vec![address.to_string()];
        let found = self.call(move |c| Box::pin(async move { suppressions_of(c, &q).await }))?;
        self.learn_suppressions(found);
        Ok(self.cache.suppressions.get(address).cloned().flatten())
    }

    fn insert_suppression(&mut self, s: &Suppression) -> Result<bool> {
        self.sync()?;
        self.cache.suppressions.clear();
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
        self.sync()?;
        self.cache.suppressions.clear();
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
        self.sync()?;
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
        self.sync()?;
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

    fn announce(&mut self) -> &mut dyn AnnounceTx {
        self
    }

    fn flag_outbox(&mut self, id: i64, flag: &str) -> Result<()> {
        self.sync()?;
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

    fn set_ticket_token(&mut self, ticket_id: i64, token_hash: &str) -> Result<()> {
        self.sync()?;
        let token_hash = token_hash.to_string();
        self.call(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO ticket_tokens (ticket_id, token_hash) VALUES ($1, $2) \
                     ON CONFLICT (ticket_id) DO UPDATE SET token_hash = excluded.token_hash",
                )
                .bind(ticket_id)
                .bind(token_hash)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
    }

    fn report_tickets(
        &mut self,
        customer: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ReportTicket>> {
        self.sync()?;
        let customer = customer.to_string();
        self.call(move |c| Box::pin(report_tickets(c, customer, from, until)))
    }

    fn set_inbound_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        reason_code: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        if let Some(&i) = self.buf.inbound_at.get(&id) {
            let m = &mut self.buf.inbound[i];
            m.outcome = outcome.to_string();
            m.reason_code = reason_code.map(str::to_string);
            m.reason = reason.map(str::to_string);
        } else {
            self.buf.outcomes.push((
                id,
                outcome.to_string(),
                reason_code.map(str::to_string),
                reason.map(str::to_string),
            ));
        }
        self.wrote()
    }

    fn insert_attachment(
        &mut self,
        article_id: i64,
        filename: &str,
        content_type: &str,
        size: usize,
        data: Option<&[u8]>,
    ) -> Result<()> {
        self.buf.attachments.push(AttachmentIns {
            article_id,
            filename: filename.to_string(),
            content_type: content_type.to_string(),
            size: size as i64,
            data: data.map(<[u8]>::to_vec),
        });
        self.wrote()
    }

    fn link_message_id(&mut self, message_id: &str, ticket_id: i64) -> Result<()> {
        if !self.buf.link_of.contains_key(message_id) {
            self.buf.link_of.insert(message_id.to_string(), ticket_id);
            self.buf.links.push((message_id.to_string(), ticket_id));
        }
        self.wrote()
    }

    fn enqueue(&mut self, m: &NewOutbound<'_>) -> Result<i64> {
        let id = self.id(Seq::Outbox)?;
        let counted = m.automatic && m.state != OutboxState::Suppressed;
        if counted && let Some(v) = self.cache.counts.get_mut(m.recipient) {
            for (since, n) in v.iter_mut() {
                if m.now >= *since {
                    *n += 1;
                }
            }
        }
        self.buf.outbox.push(OutboxIns {
            id,
            ticket_id: m.ticket_id,
            inbound_id: m.inbound_id,
            kind: m.kind.to_string(),
            recipient: m.recipient.to_string(),
            subject: m.subject.to_string(),
            message_id: m.message_id.to_string(),
            automatic: m.automatic,
            body: m.body.to_vec(),
            state: m.state.as_str(),
            note: m.note.map(str::to_string),
            now: m.now,
        });
        self.wrote()?;
        Ok(id)
    }

    fn intake_outages(&mut self) -> Result<Vec<OpenOutage>> {
        if let Some(v) = &self.cache.open_outages {
            return Ok(v.clone());
        }
        let v =
            self.call(|c| Box::pin(async move { super::outage_links::intake_outages(c).await }))?;
        if !self.locked && self.checks.open_outages.is_none() {
            self.checks.open_outages = Some(v.iter().map(|o| o.id).collect());
        }
        if !self.direct {
            // A batch reads them once; a direct transaction (an operator's, which may declare
            // or restore one) asks each time.
            self.cache.open_outages = Some(v.clone());
        }
        Ok(v)
    }

    fn link_outage(&mut self, ticket_id: i64, outage_id: i64, now: DateTime<Utc>) -> Result<()> {
        self.buf
            .outage_links
            .push((ticket_id, outage_id, micro(now)));
        self.wrote()
    }

    fn outage_tickets(&mut self, outage_id: i64) -> Result<Vec<i64>> {
        self.sync()?;
        self.call(move |c| {
            Box::pin(async move { super::outage_links::outage_tickets(c, outage_id).await })
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
        // The batch before this one first: this one commits only after it did.
        self.wait_before()?;
        // The lock (and the check of what was read without it), the buffered writes and
        // the COMMIT, in one call.
        let checks = (!self.locked).then(|| self.take_checks());
        let guard = checks.as_ref().map(|c| locks::for_batch(&self.buf, c));
        let f = Flush::take(&mut self.buf, &self.cache)?;
        let Some(mut tx) = self.tx.take() else {
            return Err(StoreError::Other(
                "this transaction was rolled back after a call timed out".into(),
            ));
        };
        run(async move {
            if let (Some(checks), Some(guard)) = (checks, guard) {
                lock_and_check(&mut tx, &guard, &checks).await?;
            }
            flush(&mut tx, f).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })??;
        Ok(())
    }

    fn commit_background(mut self: Box<Self>) -> Result<Box<dyn Committing>> {
        if self.failed {
            return Err(StoreError::Other(
                "a statement of this transaction failed, so it was rolled back instead of committed"
                    .into(),
            ));
        }
        // What the next batch may take as written: only when nothing was written yet (a
        // transaction that took the lock early wrote rows the next batch could not see).
        let carry = (!self.locked).then(|| Carry::of(&self.buf, &self.cache));
        let before = self.before.take();
        let mut checks = (!self.locked).then(|| self.take_checks());
        let guard = checks.as_ref().map(|c| locks::for_batch(&self.buf, c));
        let f = Flush::take(&mut self.buf, &self.cache)?;
        let Some(mut tx) = self.tx.take() else {
            return Err(StoreError::Other(
                "this transaction was rolled back after a call timed out".into(),
            ));
        };
        let (done, outcome) = tokio::sync::watch::channel(None);
        let state = Arc::new(InFlight {
            done: outcome,
            error: std::sync::Mutex::new(None),
            carry,
            after: before.as_ref().map(Arc::downgrade),
        });
        let mine = state.clone();
        runtime()?.spawn(async move {
            let work = async move {
                if let Some(b) = before {
                    let xid = b.outcome().await.map_err(|e| {
                        StoreError::Other(format!(
                            "the batch before this one was not committed ({e}), so this one, prepared on its effects, is not either"
                        ))
                    })?;
                    if let Some(c) = checks.as_mut() {
                        c.resolve(xid);
                    }
                }
                if let (Some(checks), Some(guard)) = (checks, guard) {
                    lock_and_check(&mut tx, &guard, &checks).await?;
                }
                let xid = flush(&mut tx, f).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(xid)
            };
            let r = match tokio::time::timeout(CALL_TIMEOUT, work).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Other(format!(
                    "PostgreSQL did not answer within {} s; the commit was given up",
                    CALL_TIMEOUT.as_secs()
                ))),
            };
            let outcome = match r {
                Ok(xid) => Ok(xid),
                Err(e) => {
                    let msg = e.to_string();
                    *mine
                        .error
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    Err(msg)
                }
            };
            let _ = done.send(Some(outcome));
        });
        Ok(Box::new(PgCommitting { state }))
    }
}

/// A ticket's current watchers, in the order they were added.
pub(super) async fn watchers_of(c: &mut PgConnection, ticket_id: i64) -> Result<Vec<Watcher>> {
    sqlx::query(
        "SELECT address, added_by, added_at FROM ticket_watchers \
         WHERE ticket_id = $1 AND removed_at IS NULL ORDER BY added_at, address",
    )
    .bind(ticket_id)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| {
        Ok(Watcher {
            address: r.try_get(0)?,
            added_by: r.try_get(1)?,
            added_at: r.try_get(2)?,
        })
    })
    .collect()
}
