//! Set-oriented write transactions (ADR 0009). A [`PgTx`](super::tx::PgTx) keeps what it
//! writes in a [`Buffer`] and what it read in a [`Cache`], and writes the buffer with one
//! multi-row statement per table (`INSERT … SELECT FROM UNNEST(…)`, `UPDATE … FROM
//! UNNEST(…)`) when it commits, when it must read what the buffer holds, or when it grows
//! large. Rows that others refer to (tickets, inbound mail, articles, outbox rows) get
//! their ids from the tables' identity sequences ahead of the write ([`IdPool`]), so the
//! references between the buffered rows hold.
//!
//! A batch's reads may run before its locks are taken (`Store::write_batch`, `locks.rs`):
//! each read made so is recorded in [`Checks`], and checked again under the locks before
//! anything is written; a difference is a conflict (another instance wrote what this batch
//! decided on) and the transaction fails without writing anything.

use super::*;
use chrono::SubsecRound;
pub(super) use std::collections::HashSet;
use std::collections::VecDeque;

/// Rows buffered before a transaction that holds the lock writes them anyway (memory).
pub(super) const FLUSH_ROWS: usize = 20_000;

/// The identity sequences ids are taken from ahead of the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Seq {
    Tickets,
    Inbound,
    Articles,
    Outbox,
}

impl Seq {
    const ALL: [Seq; 4] = [Seq::Tickets, Seq::Inbound, Seq::Articles, Seq::Outbox];

    fn index(self) -> usize {
        self as usize
    }

    /// Ids fetched at once when the pool is empty, for a transaction that already made
    /// `made` rows of this table. Ticket numbers are seen by people: one at a time at
    /// first, more as a transaction makes many (an import), so a process that stops leaves
    /// few unused numbers behind.
    fn block(self, made: usize) -> usize {
        match self {
            Seq::Tickets => made.clamp(1, 1024),
            _ => 256,
        }
    }
}

/// Ids taken from the sequences and not used yet, shared by a store's handles (sequences
/// are not transactional: an id taken stays unused by anyone else, whatever happens to the
/// transaction that took it). Kept in ascending order.
#[derive(Default)]
pub(super) struct IdPool {
    free: [VecDeque<i64>; 4],
}

impl IdPool {
    pub(super) fn take(&mut self, seq: Seq) -> Option<i64> {
        self.free[seq.index()].pop_front()
    }

    pub(super) fn missing(&self, want: [usize; 4]) -> [usize; 4] {
        let mut out = [0; 4];
        for s in Seq::ALL {
            out[s.index()] = want[s.index()].saturating_sub(self.free[s.index()].len());
        }
        out
    }

    pub(super) fn add(&mut self, got: [Vec<i64>; 4]) {
        for (i, ids) in got.into_iter().enumerate() {
            self.free[i].extend(ids);
        }
    }
}

/// Takes `n[s]` more ids from each sequence, in one round trip.
pub(super) async fn reserve(c: &mut PgConnection, n: [usize; 4]) -> Result<[Vec<i64>; 4]> {
    let n: Vec<i64> = n.iter().map(|&k| k as i64).collect();
    let row = sqlx::query(
        "SELECT \
         ARRAY(SELECT nextval(pg_get_serial_sequence('tickets', 'id')) FROM generate_series(1, $1)), \
         ARRAY(SELECT nextval(pg_get_serial_sequence('inbound', 'id')) FROM generate_series(1, $2)), \
         ARRAY(SELECT nextval(pg_get_serial_sequence('articles', 'id')) FROM generate_series(1, $3)), \
         ARRAY(SELECT nextval(pg_get_serial_sequence('outbox', 'id')) FROM generate_series(1, $4))",
    )
    .bind(n[0])
    .bind(n[1])
    .bind(n[2])
    .bind(n[3])
    .fetch_one(&mut *c)
    .await?;
    Ok([
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ])
}

/// The ids to reserve when the pool has none of `seq` left.
pub(super) fn ids_wanted(seq: Seq, made: usize) -> [usize; 4] {
    let mut want = [0; 4];
    want[seq.index()] = seq.block(made);
    want
}

// ---------------------------------------------------------------------------------------
// Buffered rows.

pub(super) struct InboundIns {
    pub id: i64,
    pub dedup_key: String,
    pub message_id: Option<String>,
    pub source: String,
    pub received_at: DateTime<Utc>,
    pub from: Option<String>,
    pub subject: String,
    pub size: i64,
    pub raw: Vec<u8>,
    pub outcome: String,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub ticket_id: Option<i64>,
    pub declared_size: Option<i64>,
    /// The sender's authentication verdict (`auth`): result, method, detail.
    pub auth_result: Option<&'static str>,
    pub auth_method: Option<&'static str>,
    pub auth_detail: Option<String>,
    /// How a follow-up found its ticket when not by its headers (`tag`, `text`).
    pub threaded_by: Option<String>,
}

pub(super) struct ArticleIns {
    pub id: i64,
    pub ticket_id: i64,
    pub inbound_id: Option<i64>,
    pub kind: String,
    pub author: String,
    pub body: String,
    pub quoted: String,
    pub created_at: DateTime<Utc>,
}

pub(super) struct AttachmentIns {
    pub article_id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub data: Option<Vec<u8>>,
}

pub(super) struct OutboxIns {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub inbound_id: Option<i64>,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub automatic: bool,
    pub body: Vec<u8>,
    pub state: &'static str,
    pub note: Option<String>,
    pub now: DateTime<Utc>,
}

pub(super) struct HistoryIns {
    pub ticket_id: i64,
    pub at: DateTime<Utc>,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub reason: Option<String>,
}

pub(super) struct EscalationIns {
    pub ticket_id: i64,
    pub at: DateTime<Utc>,
    pub severity: i16,
    pub due_at: DateTime<Utc>,
    pub target_secs: i64,
}

/// What a transaction wrote and has not sent to the server yet. A batch commit locks the
/// items of these rows (`locks::for_batch`): a new kind of row adds its items there.
#[derive(Default)]
pub(super) struct Buffer {
    /// New tickets and tickets changed, by id: their rows are in [`Cache::tickets`].
    pub new_tickets: Vec<i64>,
    pub new_ticket_ids: HashSet<i64>,
    pub changed_tickets: Vec<i64>,
    pub changed_ticket_ids: HashSet<i64>,
    pub inbound: Vec<InboundIns>,
    /// Index of `inbound` by id.
    pub inbound_at: HashMap<i64, usize>,
    /// The dedup keys of `inbound`, with the first ticket each names.
    pub inbound_keys: HashMap<String, Option<i64>>,
    /// New outcomes of inbound rows already written.
    pub outcomes: Vec<(i64, String, Option<String>, Option<String>)>,
    pub articles: Vec<ArticleIns>,
    pub attachments: Vec<AttachmentIns>,
    pub outbox: Vec<OutboxIns>,
    /// Message-ID → ticket, first one kept.
    pub links: Vec<(String, i64)>,
    pub link_of: HashMap<String, i64>,
    pub history: Vec<HistoryIns>,
    pub escalations: Vec<EscalationIns>,
    /// The last word on each timer: armed at, or cleared.
    pub timers: HashMap<(i64, String), Option<DateTime<Utc>>>,
    /// Tickets linked to outages: (ticket, outage, at).
    pub outage_links: Vec<(i64, i64, DateTime<Utc>)>,
}

impl Buffer {
    pub fn rows(&self) -> usize {
        self.new_tickets.len()
            + self.changed_tickets.len()
            + self.inbound.len()
            + self.outcomes.len()
            + self.articles.len()
            + self.attachments.len()
            + self.outbox.len()
            + self.links.len()
            + self.history.len()
            + self.escalations.len()
            + self.timers.len()
            + self.outage_links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    pub fn touch_ticket(&mut self, id: i64) {
        if !self.new_ticket_ids.contains(&id) && self.changed_ticket_ids.insert(id) {
            self.changed_tickets.push(id);
        }
    }
}

/// What the transaction read, and knows from its own writes.
#[derive(Default)]
pub(super) struct Cache {
    /// Tickets as this transaction sees them (read, inserted, changed).
    pub tickets: HashMap<i64, TicketRow>,
    /// Tickets known not to exist.
    pub no_ticket: HashSet<i64>,
    /// Dedup keys looked up in `inbound`: `None` absent, `Some(first ticket)` present.
    pub inbound: HashMap<String, Option<Option<i64>>>,
    /// Message-IDs looked up in `message_ids`.
    pub links: HashMap<String, Option<i64>>,
    /// Automatic mails per recipient since each window start asked, this transaction's
    /// own included.
    pub counts: HashMap<String, Vec<(DateTime<Utc>, u32)>>,
    /// The outages open on every platform, read once per transaction (intake).
    pub open_outages: Option<Vec<OpenOutage>>,
    /// Current watchers by ticket, read with a tick's due timers (`ticket_watchers` is
    /// never buffered: dropped when this transaction writes it).
    pub watchers: HashMap<i64, Vec<Watcher>>,
    /// Suppressions by (lower-case) address: `None` known absent. Read with the prefetch
    /// (the senders of the chunk), with a tick's due timers (their requesters) and on a
    /// miss; `suppressions` is only ever written directly, and a write through this
    /// transaction drops the cache.
    pub suppressions: HashMap<String, Option<Suppression>>,
}

/// Reads made before the writers' lock, to check again under it.
#[derive(Default)]
pub(super) struct Checks {
    /// Dedup keys found absent.
    pub absent_keys: Vec<String>,
    /// Message-IDs and what `message_ids` said.
    pub links: Vec<(String, Option<i64>)>,
    /// Tickets read, with their row version (`xmin`).
    pub tickets: HashMap<i64, i64>,
    /// Automatic-mail counts read from the table, by (recipient, since): the count read,
    /// and the largest answer given below the cap (`None`: none). Without a known cap any
    /// change is a conflict.
    pub counts: HashMap<(String, DateTime<Utc>), (i64, Option<u32>)>,
    /// The cap the answers were compared with.
    pub limit: Option<u32>,
    /// The ids of the outages open when intake read them.
    pub open_outages: Option<Vec<i64>>,
    /// Outbox rows of the batch before this one (committing while this one read), left out
    /// of the counts read and checked: this transaction counts them from memory.
    pub exclude_outbox: Vec<i64>,
}

/// The row version recorded for a ticket this transaction took from the batch before it
/// ([`Carry`]): that batch's transaction id, known once it committed ([`Checks::resolve`]).
pub(super) const CARRIED: i64 = -1;

impl Checks {
    /// Tickets taken from the batch before are checked against the version its commit gave
    /// them (`xid`, its transaction id: the `xmin` of every row it wrote).
    pub fn resolve(&mut self, xid: i64) {
        for v in self.tickets.values_mut() {
            if *v == CARRIED {
                *v = xid;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.absent_keys.is_empty()
            && self.links.is_empty()
            && self.tickets.is_empty()
            && self.counts.is_empty()
            && self.open_outages.is_none()
    }
}

/// What a batch transaction whose commit is still running tells the next batch's
/// transaction (ADR 0019): the rows it wrote that the next one's reads could ask for.
pub(super) struct Carry {
    /// Its new and changed tickets, as it wrote them.
    pub tickets: Vec<TicketRow>,
    /// Its inbound mail's dedup keys, with the first ticket each names.
    pub inbound_keys: HashMap<String, Option<i64>>,
    /// The Message-IDs it linked to tickets (those the table did not have already).
    pub links: HashMap<String, i64>,
    /// Its automatic mail that counts against the cap: recipient, time, outbox id.
    pub auto: Vec<(String, DateTime<Utc>, i64)>,
}

impl Carry {
    pub fn of(buf: &Buffer, cache: &Cache) -> Carry {
        let tickets = buf
            .new_tickets
            .iter()
            .chain(&buf.changed_tickets)
            .filter_map(|id| cache.tickets.get(id).cloned())
            .collect();
        let links = buf
            .link_of
            .iter()
            .filter(|(m, _)| !matches!(cache.links.get(*m), Some(Some(_))))
            .map(|(m, t)| (m.clone(), *t))
            .collect();
        let auto = buf
            .outbox
            .iter()
            .filter(|m| m.automatic && m.state != "suppressed")
            .map(|m| (m.recipient.clone(), m.now, m.id))
            .collect();
        Carry {
            tickets,
            inbound_keys: buf.inbound_keys.clone(),
            links,
            auto,
        }
    }
}

/// The outcome of a commit running in the background: its transaction id, or why it failed.
pub(super) type Outcome = std::result::Result<i64, String>;

/// A batch's commit running on the background runtime ([`WriteTx::commit_background`]).
pub(super) struct InFlight {
    pub done: tokio::sync::watch::Receiver<Option<Outcome>>,
    /// The commit's own error, for the first caller that waits.
    pub error: std::sync::Mutex<Option<StoreError>>,
    /// `None`: the transaction wrote before its commit (it took the writers' lock early), so
    /// the next batch reads only after this commit.
    pub carry: Option<Carry>,
    /// The batch before this one, while its commit may still run.
    pub after: Option<std::sync::Weak<InFlight>>,
}

/// Waits for the outcome a commit's watch channel carries.
async fn outcome_of(mut rx: tokio::sync::watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone().unwrap_or_else(|| Err("no outcome".into())),
        Err(_) => Err("the commit stopped without an outcome".into()),
    }
}

impl InFlight {
    pub async fn outcome(&self) -> Outcome {
        outcome_of(self.done.clone()).await
    }

    /// Waits (from a plain thread) for the commit; its transaction id when it committed.
    pub fn wait(&self) -> Result<i64> {
        let outcome = run(outcome_of(self.done.clone()))?;
        outcome.map_err(|msg| {
            self.error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or(StoreError::Other(msg))
        })
    }
}

/// The handle [`WriteTx::commit_background`] returns on PostgreSQL.
pub(super) struct PgCommitting {
    pub state: std::sync::Arc<InFlight>,
}

impl Committing for PgCommitting {
    fn wait(&self) -> Result<()> {
        self.state.wait().map(|_| ())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A time as PostgreSQL keeps it (microseconds), so that what a transaction reads back from
/// its cache is what it would read from the table.
pub(super) fn micro(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub(super) fn micro_ticket(t: &TicketRow) -> TicketRow {
    let m = |d: Option<DateTime<Utc>>| d.map(micro);
    let mut t = t.clone();
    t.followup_base_at = m(t.followup_base_at);
    t.sla.started_at = m(t.sla.started_at);
    t.sla.running_since = m(t.sla.running_since);
    t.sla.due_at = m(t.sla.due_at);
    t.sla.responded_at = m(t.sla.responded_at);
    t.sla.breached_at = m(t.sla.breached_at);
    t.created_at = micro(t.created_at);
    t.updated_at = micro(t.updated_at);
    t
}

// ---------------------------------------------------------------------------------------
// Reads as sets.

/// Which of `keys` are in `inbound`, each with the first ticket its rows name.
pub(super) async fn inbound_keys(
    c: &mut PgConnection,
    keys: &[String],
) -> Result<Vec<(String, Option<i64>)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<i64> = keys.iter().map(|k| fnv64(k)).collect();
    let rows = sqlx::query(
        "SELECT dedup_key, (array_agg(ticket_id ORDER BY id) FILTER (WHERE ticket_id IS NOT NULL))[1] \
         FROM inbound WHERE dedup_hash = ANY($1) AND dedup_key = ANY($2) GROUP BY dedup_key",
    )
    .bind(hashes)
    .bind(keys)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub(super) async fn message_links(
    c: &mut PgConnection,
    ids: &[String],
) -> Result<Vec<(String, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows =
        sqlx::query("SELECT message_id, ticket_id FROM message_ids WHERE message_id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *c)
            .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Tickets by id, each with its row version.
pub(super) async fn tickets_by_id(
    c: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<(TicketRow, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(concat!(
        "SELECT id, ",
        ticket_columns!(),
        ", xmin::text::bigint FROM tickets WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| Ok((ticket_row(r)?, r.try_get(28)?)))
        .collect()
}

/// The current watchers of `tickets` (one query; a tick's due tickets), each ticket's in the
/// order [`watchers_of`](super::tx::watchers_of) gives.
pub(super) async fn watchers_of_tickets(
    c: &mut PgConnection,
    tickets: &[i64],
) -> Result<HashMap<i64, Vec<Watcher>>> {
    let mut out: HashMap<i64, Vec<Watcher>> = tickets.iter().map(|&t| (t, Vec::new())).collect();
    if tickets.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query(
        "SELECT ticket_id, address, added_by, added_at FROM ticket_watchers \
         WHERE ticket_id = ANY($1) AND removed_at IS NULL ORDER BY ticket_id, added_at, address",
    )
    .bind(tickets)
    .fetch_all(&mut *c)
    .await?;
    for r in &rows {
        out.entry(r.try_get(0)?).or_default().push(Watcher {
            address: r.try_get(1)?,
            added_by: r.try_get(2)?,
            added_at: r.try_get(3)?,
        });
    }
    Ok(out)
}

/// Which of `addresses` (lower-case) are on the suppression list (one query).
pub(super) async fn suppressions_of(
    c: &mut PgConnection,
    addresses: &[String],
) -> Result<HashMap<String, Option<Suppression>>> {
    let mut out: HashMap<String, Option<Suppression>> =
        addresses.iter().map(|a| (a.clone(), None)).collect();
    if addresses.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query(
        "SELECT address, kind, reason, status, outbox_id, ticket_id, created_at \
         FROM suppressions WHERE address = ANY($1)",
    )
    .bind(addresses)
    .fetch_all(&mut *c)
    .await?;
    for r in &rows {
        let s = suppression_row(r)?;
        out.insert(s.address.clone(), Some(s));
    }
    Ok(out)
}

/// Automatic mails (not suppressed) to each of `recipients` since `since`.
pub(super) async fn auto_counts(
    c: &mut PgConnection,
    recipients: &[String],
    since: DateTime<Utc>,
    exclude: &[i64],
) -> Result<Vec<(String, i64)>> {
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<i64> = recipients.iter().map(|r| fnv64(r)).collect();
    let rows = sqlx::query(
        "SELECT recipient, count(*) FROM outbox WHERE recipient_hash = ANY($1) AND created_at >= $2 \
         AND automatic AND state <> 'suppressed' AND recipient = ANY($3) AND NOT (id >= (SELECT COALESCE(min(x), 9223372036854775807) FROM unnest($4::bigint[]) x) \
         AND id = ANY($4)) \
         GROUP BY recipient",
    )
    .bind(hashes)
    .bind(since)
    .bind(recipients)
    .bind(exclude)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Checks the reads made before the lock against the tables, now that the lock is held, in
/// one statement. `Err` names what changed.
pub(super) async fn check(c: &mut PgConnection, checks: &Checks) -> Result<()> {
    let key_hashes: Vec<i64> = checks.absent_keys.iter().map(|k| fnv64(k)).collect();
    let (link_ids, link_tickets): (Vec<String>, Vec<Option<i64>>) =
        checks.links.iter().cloned().unzip();
    let (ticket_ids, versions): (Vec<i64>, Vec<i64>) =
        checks.tickets.iter().map(|(i, v)| (*i, *v)).unzip();
    let count_recipients: Vec<String> = checks.counts.keys().map(|c| c.0.clone()).collect();
    let count_since: Vec<DateTime<Utc>> = checks.counts.keys().map(|c| c.1).collect();
    let count_hashes: Vec<i64> = checks.counts.keys().map(|c| fnv64(&c.0)).collect();
    let counts: Vec<i64> = checks.counts.values().map(|c| c.0).collect();
    let below: Vec<Option<i64>> = checks.counts.values().map(|c| c.1.map(i64::from)).collect();
    let limit = checks.limit.map(i64::from);
    let row = sqlx::query(
        "SELECT \
         (SELECT min(dedup_key) FROM inbound WHERE dedup_hash = ANY($1) AND dedup_key = ANY($2)), \
         (SELECT min(u.m) FROM UNNEST($3::text[], $4::bigint[]) AS u(m, t) \
          WHERE (SELECT ticket_id FROM message_ids WHERE message_id = u.m) IS DISTINCT FROM u.t), \
         (SELECT min(u.id) FROM UNNEST($5::bigint[], $6::bigint[]) AS u(id, v) \
          WHERE NOT EXISTS (SELECT 1 FROM tickets x WHERE x.id = u.id AND x.xmin::text::bigint = u.v)), \
         (SELECT min(u.r) FROM UNNEST($7::text[], $8::timestamptz[], $9::bigint[], $10::bigint[], $11::bigint[]) \
          AS u(r, s, h, n, b), \
          LATERAL (SELECT count(*) AS now FROM outbox WHERE recipient_hash = u.h AND created_at >= u.s \
                   AND automatic AND state <> 'suppressed' AND recipient = u.r \
                   AND NOT (id >= (SELECT COALESCE(min(e), 9223372036854775807) FROM unnest($14::bigint[]) e) \
                   AND id = ANY($14))) AS x \
          WHERE x.now < u.n OR ($12::bigint IS NULL AND x.now <> u.n) \
             OR (u.b IS NOT NULL AND u.b + (x.now - u.n) >= $12::bigint)), \
         CASE WHEN $13 THEN COALESCE((SELECT array_agg(id ORDER BY id) FROM announcements \
                                      WHERE kind = 'outage' AND state = 'open'), '{}') END",
    )
    .bind(key_hashes)
    .bind(&checks.absent_keys)
    .bind(link_ids)
    .bind(link_tickets)
    .bind(ticket_ids)
    .bind(versions)
    .bind(count_recipients)
    .bind(count_since)
    .bind(count_hashes)
    .bind(counts)
    .bind(below)
    .bind(limit)
    .bind(checks.open_outages.is_some())
    .bind(&checks.exclude_outbox)
    .fetch_one(&mut *c)
    .await?;
    let outages_now: Option<Vec<i64>> = row.try_get(4)?;
    let what = if let Some(k) = row.try_get::<Option<String>, _>(0)? {
        format!("inbound mail `{k}`")
    } else if let Some(m) = row.try_get::<Option<String>, _>(1)? {
        format!("the thread of Message-ID <{m}>")
    } else if let Some(t) = row.try_get::<Option<i64>, _>(2)? {
        format!("ticket #{t}")
    } else if let Some(r) = row.try_get::<Option<String>, _>(3)? {
        format!("the automatic mail count of {r}")
    } else if outages_now.is_some() && outages_now != checks.open_outages {
        "the set of open outages".to_string()
    } else {
        return Ok(());
    };
    Err(StoreError::Other(format!(
        "write conflict: {what} changed between this batch's reads and its writes (another instance wrote it); nothing was written"
    )))
}

/// What the first prefetch query answers.
pub(super) struct Prefetched {
    pub inbound: Vec<(String, Option<i64>)>,
    pub links: Vec<(String, i64)>,
    pub counts: Vec<(String, i64)>,
    pub ids: [Vec<i64>; 4],
}

/// A chunk's dedup keys, thread links and cap counts, and `reserve` new ids, in one
/// statement.
pub(super) async fn prefetch_sets(
    c: &mut PgConnection,
    keys: &[String],
    mids: &[String],
    recipients: &[String],
    since: Option<DateTime<Utc>>,
    reserve: [usize; 4],
    exclude: &[i64],
) -> Result<Prefetched> {
    let key_hashes: Vec<i64> = keys.iter().map(|k| fnv64(k)).collect();
    let recipient_hashes: Vec<i64> = recipients.iter().map(|r| fnv64(r)).collect();
    let n: Vec<i64> = reserve.iter().map(|&k| k as i64).collect();
    let row = sqlx::query(
        "WITH k AS (SELECT dedup_key, \
                    (array_agg(ticket_id ORDER BY id) FILTER (WHERE ticket_id IS NOT NULL))[1] AS t \
                    FROM inbound WHERE dedup_hash = ANY($1) AND dedup_key = ANY($2) GROUP BY dedup_key), \
              l AS (SELECT message_id, ticket_id FROM message_ids WHERE message_id = ANY($3)), \
              c AS (SELECT recipient, count(*) AS n FROM outbox WHERE recipient_hash = ANY($4) \
                    AND created_at >= $5 AND automatic AND state <> 'suppressed' AND recipient = ANY($6) \
                    AND NOT (id >= (SELECT COALESCE(min(x), 9223372036854775807) FROM unnest($11::bigint[]) x) \
                    AND id = ANY($11)) GROUP BY recipient) \
         SELECT (SELECT array_agg(dedup_key ORDER BY dedup_key) FROM k), \
                (SELECT array_agg(t ORDER BY dedup_key) FROM k), \
                (SELECT array_agg(message_id ORDER BY message_id) FROM l), \
                (SELECT array_agg(ticket_id ORDER BY message_id) FROM l), \
                (SELECT array_agg(recipient ORDER BY recipient) FROM c), \
                (SELECT array_agg(n ORDER BY recipient) FROM c), \
                ARRAY(SELECT nextval(pg_get_serial_sequence('tickets', 'id')) FROM generate_series(1, $7)), \
                ARRAY(SELECT nextval(pg_get_serial_sequence('inbound', 'id')) FROM generate_series(1, $8)), \
                ARRAY(SELECT nextval(pg_get_serial_sequence('articles', 'id')) FROM generate_series(1, $9)), \
                ARRAY(SELECT nextval(pg_get_serial_sequence('outbox', 'id')) FROM generate_series(1, $10))",
    )
    .bind(key_hashes)
    .bind(keys)
    .bind(mids)
    .bind(recipient_hashes)
    .bind(since)
    .bind(recipients)
    .bind(n[0])
    .bind(n[1])
    .bind(n[2])
    .bind(n[3])
    .bind(exclude)
    .fetch_one(&mut *c)
    .await?;
    let list = |i: usize| -> Result<Vec<String>> {
        Ok(row
            .try_get::<Option<Vec<String>>, _>(i)?
            .unwrap_or_default())
    };
    let keys_found = list(0)?;
    let key_tickets: Vec<Option<i64>> = row
        .try_get::<Option<Vec<Option<i64>>>, _>(1)?
        .unwrap_or_default();
    let link_ids = list(2)?;
    let link_tickets: Vec<i64> = row.try_get::<Option<Vec<i64>>, _>(3)?.unwrap_or_default();
    let count_r = list(4)?;
    let count_n: Vec<i64> = row.try_get::<Option<Vec<i64>>, _>(5)?.unwrap_or_default();
    Ok(Prefetched {
        inbound: keys_found.into_iter().zip(key_tickets).collect(),
        links: link_ids.into_iter().zip(link_tickets).collect(),
        counts: count_r.into_iter().zip(count_n).collect(),
        ids: [
            row.try_get(6)?,
            row.try_get(7)?,
            row.try_get(8)?,
            row.try_get(9)?,
        ],
    })
}

// ---------------------------------------------------------------------------------------
// Writes as sets.

/// The rows of a flush, taken out of the transaction's buffer and cache.
pub(super) struct Flush {
    pub new_tickets: Vec<TicketRow>,
    pub changed_tickets: Vec<TicketRow>,
    pub buf: Buffer,
}

impl Flush {
    pub fn is_empty(&self) -> bool {
        self.new_tickets.is_empty() && self.changed_tickets.is_empty() && self.buf.is_empty()
    }

    pub fn take(buf: &mut Buffer, cache: &Cache) -> Result<Flush> {
        let buf = std::mem::take(buf);
        let row = |id: &i64| {
            cache
                .tickets
                .get(id)
                .cloned()
                .ok_or_else(|| StoreError::Other(format!("ticket #{id} left the write cache")))
        };
        Ok(Flush {
            new_tickets: buf.new_tickets.iter().map(row).collect::<Result<_>>()?,
            changed_tickets: buf.changed_tickets.iter().map(row).collect::<Result<_>>()?,
            buf,
        })
    }
}

/// Ticket columns as arrays, in [`ticket_columns!`]'s order after the id.
#[derive(Default)]
struct TicketArrays {
    id: Vec<i64>,
    customer: Vec<String>,
    support_key: Vec<String>,
    plan: Vec<String>,
    language: Vec<String>,
    profile: Vec<String>,
    issue_type: Vec<String>,
    status: Vec<String>,
    severity: Vec<i16>,
    stated_severity: Vec<Option<String>>,
    subject: Vec<String>,
    requester: Vec<String>,
    requester_name: Vec<Option<String>>,
    reason: Vec<Option<String>>,
    parent_id: Vec<Option<i64>>,
    missing_info: Vec<String>,
    followup_base_at: Vec<Option<DateTime<Utc>>>,
    followup_stage: Vec<i64>,
    survey_score: Vec<Option<i16>>,
    sla_target_secs: Vec<Option<i64>>,
    sla_started_at: Vec<Option<DateTime<Utc>>>,
    sla_running_since: Vec<Option<DateTime<Utc>>>,
    sla_elapsed_secs: Vec<i64>,
    sla_due_at: Vec<Option<DateTime<Utc>>>,
    responded_at: Vec<Option<DateTime<Utc>>>,
    breached_at: Vec<Option<DateTime<Utc>>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl TicketArrays {
    fn of(rows: Vec<TicketRow>) -> TicketArrays {
        let mut a = TicketArrays::default();
        for t in rows {
            a.id.push(t.id);
            a.profile.push(t.profile.name().to_string());
            a.status.push(t.status.as_str().to_string());
            a.severity.push(i16::from(t.severity));
            a.survey_score.push(t.survey_score.map(i16::from));
            a.missing_info.push(t.missing_info.join("\n"));
            a.customer.push(t.customer);
            a.support_key.push(t.support_key);
            a.plan.push(t.plan);
            a.language.push(t.language);
            a.issue_type.push(t.issue_type);
            a.stated_severity.push(t.stated_severity);
            a.subject.push(t.subject);
            a.requester.push(t.requester);
            a.requester_name.push(t.requester_name);
            a.reason.push(t.reason);
            a.parent_id.push(t.parent_id);
            a.followup_base_at.push(t.followup_base_at);
            a.followup_stage.push(t.followup_stage);
            a.sla_target_secs.push(t.sla.target_secs);
            a.sla_started_at.push(t.sla.started_at);
            a.sla_running_since.push(t.sla.running_since);
            a.sla_elapsed_secs.push(t.sla.elapsed_secs);
            a.sla_due_at.push(t.sla.due_at);
            a.responded_at.push(t.sla.responded_at);
            a.breached_at.push(t.sla.breached_at);
            a.created_at.push(t.created_at);
            a.updated_at.push(t.updated_at);
        }
        a
    }
}

/// The statement that writes a flush: one data-modifying `WITH` part per table (tickets
/// and inbound mail before the rows that refer to them). A part whose arrays are empty
/// writes nothing. It answers how many of the tickets and inbound mails its rows refer to
/// exist neither in the table nor among its own new rows: the check of the references the
/// foreign keys of migrations 0011 and 0014 no longer make row by row (ADRs 0016, 0020);
/// only this statement writes those columns.
const FLUSH_SQL: &str = concat!(
    "WITH t AS (INSERT INTO tickets (id, ",
    ticket_columns!(),
    ") SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::smallint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
     $15::bigint[], $16::text[], $17::timestamptz[], $18::bigint[], $19::smallint[], $20::bigint[], \
     $21::timestamptz[], $22::timestamptz[], $23::bigint[], $24::timestamptz[], $25::timestamptz[], \
     $26::timestamptz[], $27::timestamptz[], $28::timestamptz[])), \
     tu AS (UPDATE tickets x SET status = u.status, severity = u.severity, issue_type = u.issue_type, \
     reason = u.reason, missing_info = u.missing_info, followup_base_at = u.followup_base_at, \
     followup_stage = u.followup_stage, survey_score = u.survey_score, sla_target_secs = u.sla_target_secs, \
     sla_started_at = u.sla_started_at, sla_running_since = u.sla_running_since, \
     sla_elapsed_secs = u.sla_elapsed_secs, sla_due_at = u.sla_due_at, responded_at = u.responded_at, \
     breached_at = u.breached_at, updated_at = u.updated_at, language = u.language \
     FROM UNNEST($29::bigint[], $30::text[], $31::smallint[], $32::text[], $33::text[], $34::text[], \
     $35::timestamptz[], $36::bigint[], $37::smallint[], $38::bigint[], $39::timestamptz[], \
     $40::timestamptz[], $41::bigint[], $42::timestamptz[], $43::timestamptz[], $44::timestamptz[], \
     $45::timestamptz[], $46::text[]) AS u(id, status, severity, issue_type, reason, missing_info, \
     followup_base_at, followup_stage, survey_score, sla_target_secs, sla_started_at, sla_running_since, \
     sla_elapsed_secs, sla_due_at, responded_at, breached_at, updated_at, language) WHERE x.id = u.id), \
     i AS (INSERT INTO inbound (id, dedup_key, dedup_hash, message_id, source, received_at, from_addr, subject, \
     size, raw, outcome, reason_code, reason, ticket_id, declared_size, auth_result, auth_method, auth_detail, threaded_by) \
     SELECT * FROM UNNEST($47::bigint[], $48::text[], $49::bigint[], $50::text[], $51::text[], $52::timestamptz[], \
     $53::text[], $54::text[], $55::bigint[], $56::bytea[], $57::text[], $58::text[], $59::text[], \
     $60::bigint[], $61::bigint[], $62::text[], $63::text[], $64::text[], $65::text[])), \
     io AS (UPDATE inbound x SET outcome = u.outcome, reason_code = u.code, reason = u.reason \
     FROM UNNEST($66::bigint[], $67::text[], $68::text[], $69::text[]) AS u(id, outcome, code, reason) \
     WHERE x.id = u.id), \
     a AS (INSERT INTO articles (id, ticket_id, inbound_id, kind, author, body, quoted, created_at) \
     SELECT * FROM UNNEST($70::bigint[], $71::bigint[], $72::bigint[], $73::text[], $74::text[], $75::text[], \
     $76::text[], $77::timestamptz[])), \
     at AS (INSERT INTO attachments (article_id, filename, content_type, size, data) \
     SELECT * FROM UNNEST($78::bigint[], $79::text[], $80::text[], $81::bigint[], $82::bytea[])), \
     o AS (INSERT INTO outbox (id, ticket_id, inbound_id, kind, recipient, recipient_hash, subject, message_id, \
     automatic, body, state, last_error, next_attempt_at, created_at) \
     SELECT id, t, i, k, r, h, s, m, a, b, st, e, n, n FROM UNNEST($83::bigint[], $84::bigint[], $85::bigint[], \
     $86::text[], $87::text[], $88::bigint[], $89::text[], $90::text[], $91::bool[], $92::bytea[], $93::text[], \
     $94::text[], $95::timestamptz[]) AS u(id, t, i, k, r, h, s, m, a, b, st, e, n)), \
     m AS (INSERT INTO message_ids (message_id, ticket_id) SELECT * FROM UNNEST($96::text[], $97::bigint[]) \
     ON CONFLICT (message_id) DO NOTHING), \
     h AS (INSERT INTO status_history (ticket_id, at, from_status, to_status, actor, reason) \
     SELECT * FROM UNNEST($98::bigint[], $99::timestamptz[], $100::text[], $101::text[], $102::text[], $103::text[])), \
     e AS (INSERT INTO escalations (ticket_id, at, severity, due_at, target_secs) \
     SELECT * FROM UNNEST($104::bigint[], $105::timestamptz[], $106::smallint[], $107::timestamptz[], $108::bigint[])), \
     td AS (DELETE FROM timers x USING UNNEST($109::bigint[], $110::text[]) AS u(ticket_id, kind) \
     WHERE x.ticket_id = u.ticket_id AND x.kind = u.kind), \
     ts AS (INSERT INTO timers (ticket_id, kind, due_at) \
     SELECT * FROM UNNEST($111::bigint[], $112::text[], $113::timestamptz[]) \
     ON CONFLICT (ticket_id, kind) DO UPDATE SET due_at = excluded.due_at), \
     ol AS (INSERT INTO ticket_outages (ticket_id, announcement_id, linked_at) \
     SELECT * FROM UNNEST($114::bigint[], $115::bigint[], $116::timestamptz[]) ON CONFLICT DO NOTHING) \
     SELECT (SELECT count(*) FROM (SELECT unnest($60::bigint[] || $71::bigint[] || $84::bigint[] \
     || $97::bigint[] || $104::bigint[] || $111::bigint[]) EXCEPT SELECT unnest($1::bigint[])) AS d(r) \
     WHERE r IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tickets x WHERE x.id = d.r)) \
     + (SELECT count(*) FROM (SELECT unnest($72::bigint[] || $85::bigint[]) EXCEPT SELECT unnest($47::bigint[])) AS d(r) \
     WHERE r IS NOT NULL AND NOT EXISTS (SELECT 1 FROM inbound x WHERE x.id = d.r)), \
     pg_current_xact_id()::text::bigint % 4294967296"
);

/// Binds a ticket's columns (all of them: `full`; or those an update writes).
fn bind_tickets<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    a: TicketArrays,
    full: bool,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    if full {
        q.bind(a.id)
            .bind(a.customer)
            .bind(a.support_key)
            .bind(a.plan)
            .bind(a.language)
            .bind(a.profile)
            .bind(a.issue_type)
            .bind(a.status)
            .bind(a.severity)
            .bind(a.stated_severity)
            .bind(a.subject)
            .bind(a.requester)
            .bind(a.requester_name)
            .bind(a.reason)
            .bind(a.parent_id)
            .bind(a.missing_info)
            .bind(a.followup_base_at)
            .bind(a.followup_stage)
            .bind(a.survey_score)
            .bind(a.sla_target_secs)
            .bind(a.sla_started_at)
            .bind(a.sla_running_since)
            .bind(a.sla_elapsed_secs)
            .bind(a.sla_due_at)
            .bind(a.responded_at)
            .bind(a.breached_at)
            .bind(a.created_at)
            .bind(a.updated_at)
    } else {
        q.bind(a.id)
            .bind(a.status)
            .bind(a.severity)
            .bind(a.issue_type)
            .bind(a.reason)
            .bind(a.missing_info)
            .bind(a.followup_base_at)
            .bind(a.followup_stage)
            .bind(a.survey_score)
            .bind(a.sla_target_secs)
            .bind(a.sla_started_at)
            .bind(a.sla_running_since)
            .bind(a.sla_elapsed_secs)
            .bind(a.sla_due_at)
            .bind(a.responded_at)
            .bind(a.breached_at)
            .bind(a.updated_at)
            .bind(a.language)
    }
}

/// Writes `f` in one statement ([`FLUSH_SQL`]): one round trip, whatever the batch holds.
/// Returns the transaction's id as `xmin` shows it; an empty flush sends nothing and
/// returns 0.
pub(super) async fn flush(c: &mut PgConnection, f: Flush) -> Result<i64> {
    if f.is_empty() {
        return Ok(0);
    }
    let Flush {
        new_tickets,
        changed_tickets,
        buf,
    } = f;
    let q = sqlx::query(FLUSH_SQL);
    let q = bind_tickets(q, TicketArrays::of(new_tickets), true);
    let q = bind_tickets(q, TicketArrays::of(changed_tickets), false);

    let n = buf.inbound.len();
    let mut id = Vec::with_capacity(n);
    let mut key = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    let mut mid = Vec::with_capacity(n);
    let mut source = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut from = Vec::with_capacity(n);
    let mut subject = Vec::with_capacity(n);
    let mut size = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut code = Vec::with_capacity(n);
    let mut reason = Vec::with_capacity(n);
    let mut ticket = Vec::with_capacity(n);
    let mut declared = Vec::with_capacity(n);
    let mut auth_result = Vec::with_capacity(n);
    let mut auth_method = Vec::with_capacity(n);
    let mut auth_detail = Vec::with_capacity(n);
    let mut threaded_by = Vec::with_capacity(n);
    for m in buf.inbound {
        threaded_by.push(m.threaded_by);
        auth_result.push(m.auth_result);
        auth_method.push(m.auth_method);
        auth_detail.push(m.auth_detail);
        id.push(m.id);
        hash.push(fnv64(&m.dedup_key));
        key.push(m.dedup_key);
        mid.push(m.message_id);
        source.push(m.source);
        at.push(m.received_at);
        from.push(m.from);
        subject.push(m.subject);
        size.push(m.size);
        raw.push(m.raw);
        outcome.push(m.outcome);
        code.push(m.reason_code);
        reason.push(m.reason);
        ticket.push(m.ticket_id);
        declared.push(m.declared_size);
    }
    let q = q
        .bind(id)
        .bind(key)
        .bind(hash)
        .bind(mid)
        .bind(source)
        .bind(at)
        .bind(from)
        .bind(subject)
        .bind(size)
        .bind(raw)
        .bind(outcome)
        .bind(code)
        .bind(reason)
        .bind(ticket)
        .bind(declared)
        .bind(auth_result)
        .bind(auth_method)
        .bind(auth_detail)
        .bind(threaded_by);

    // The last outcome of each row.
    let (mut id, mut outcome, mut code, mut reason) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for (i, o, c, r) in buf.outcomes.into_iter().rev() {
        if seen.insert(i) {
            id.push(i);
            outcome.push(o);
            code.push(c);
            reason.push(r);
        }
    }
    let q = q.bind(id).bind(outcome).bind(code).bind(reason);

    let mut id = Vec::new();
    let mut ticket = Vec::new();
    let mut inbound = Vec::new();
    let mut kind = Vec::new();
    let mut author = Vec::new();
    let mut body = Vec::new();
    let mut quoted = Vec::new();
    let mut at = Vec::new();
    for a in buf.articles {
        id.push(a.id);
        ticket.push(a.ticket_id);
        inbound.push(a.inbound_id);
        kind.push(a.kind);
        author.push(a.author);
        body.push(a.body);
        quoted.push(a.quoted);
        at.push(a.created_at);
    }
    let q = q
        .bind(id)
        .bind(ticket)
        .bind(inbound)
        .bind(kind)
        .bind(author)
        .bind(body)
        .bind(quoted)
        .bind(at);

    let mut article = Vec::new();
    let mut name = Vec::new();
    let mut ctype = Vec::new();
    let mut size = Vec::new();
    let mut data = Vec::new();
    for a in buf.attachments {
        article.push(a.article_id);
        name.push(a.filename);
        ctype.push(a.content_type);
        size.push(a.size);
        data.push(a.data);
    }
    let q = q.bind(article).bind(name).bind(ctype).bind(size).bind(data);

    let n = buf.outbox.len();
    let mut id = Vec::with_capacity(n);
    let mut ticket = Vec::with_capacity(n);
    let mut inbound = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut recipient = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    let mut subject = Vec::with_capacity(n);
    let mut mid = Vec::with_capacity(n);
    let mut automatic = Vec::with_capacity(n);
    let mut body = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut note = Vec::with_capacity(n);
    let mut now = Vec::with_capacity(n);
    for m in buf.outbox {
        id.push(m.id);
        ticket.push(m.ticket_id);
        inbound.push(m.inbound_id);
        kind.push(m.kind);
        hash.push(fnv64(&m.recipient));
        recipient.push(m.recipient);
        subject.push(m.subject);
        mid.push(m.message_id);
        automatic.push(m.automatic);
        body.push(m.body);
        state.push(m.state.to_string());
        note.push(m.note);
        now.push(m.now);
    }
    let q = q
        .bind(id)
        .bind(ticket)
        .bind(inbound)
        .bind(kind)
        .bind(recipient)
        .bind(hash)
        .bind(subject)
        .bind(mid)
        .bind(automatic)
        .bind(body)
        .bind(state)
        .bind(note)
        .bind(now);

    let (mids, tickets): (Vec<String>, Vec<i64>) = buf.links.into_iter().unzip();
    let q = q.bind(mids).bind(tickets);

    let mut ticket = Vec::new();
    let mut at = Vec::new();
    let mut from = Vec::new();
    let mut to = Vec::new();
    let mut actor = Vec::new();
    let mut reason = Vec::new();
    for h in buf.history {
        ticket.push(h.ticket_id);
        at.push(h.at);
        from.push(h.from);
        to.push(h.to);
        actor.push(h.actor);
        reason.push(h.reason);
    }
    let q = q
        .bind(ticket)
        .bind(at)
        .bind(from)
        .bind(to)
        .bind(actor)
        .bind(reason);

    let mut ticket = Vec::new();
    let mut at = Vec::new();
    let mut severity = Vec::new();
    let mut due = Vec::new();
    let mut target = Vec::new();
    for e in buf.escalations {
        ticket.push(e.ticket_id);
        at.push(e.at);
        severity.push(e.severity);
        due.push(e.due_at);
        target.push(e.target_secs);
    }
    let q = q
        .bind(ticket)
        .bind(at)
        .bind(severity)
        .bind(due)
        .bind(target);

    let (mut set_t, mut set_k, mut set_d) = (Vec::new(), Vec::new(), Vec::new());
    let (mut clear_t, mut clear_k) = (Vec::new(), Vec::new());
    for ((t, k), due) in buf.timers {
        match due {
            Some(d) => {
                set_t.push(t);
                set_k.push(k);
                set_d.push(d);
            }
            None => {
                clear_t.push(t);
                clear_k.push(k);
            }
        }
    }
    let (mut link_t, mut link_o, mut link_at) = (Vec::new(), Vec::new(), Vec::new());
    for (t, o, at) in buf.outage_links {
        link_t.push(t);
        link_o.push(o);
        link_at.push(at);
    }
    let q = q
        .bind(clear_t)
        .bind(clear_k)
        .bind(set_t)
        .bind(set_k)
        .bind(set_d)
        .bind(link_t)
        .bind(link_o)
        .bind(link_at);
    // A generic plan: a custom one is planned again for each flush with the batch's arrays
    // as constants (~40 ms of 1,024 mails' raw bytes copied and planned, ADR 0016). For
    // this statement only: the setting is put back before the transaction goes on.
    set_plan_cache_mode(c, "force_generic_plan").await?;
    let row = q.fetch_one(&mut *c).await?;
    let dangling: i64 = row.try_get(0)?;
    let xid: i64 = row.try_get(1)?;
    set_plan_cache_mode(c, "auto").await?;
    if dangling > 0 {
        return Err(StoreError::Other(format!(
            "foreign key check failed: {dangling} rows of this batch refer to a ticket or an inbound mail that does not exist"
        )));
    }
    Ok(xid)
}

async fn set_plan_cache_mode(c: &mut PgConnection, mode: &str) -> Result<()> {
    sqlx::query("SELECT set_config('plan_cache_mode', $1, true)")
        .bind(mode)
        .execute(&mut *c)
        .await?;
    Ok(())
}
