//! The only module that speaks SQL. The pipeline and the CLI see the [`Store`] and
//! [`WriteTx`] traits; SQLite (`sqlite.rs`) and PostgreSQL (`postgres.rs`) implement them,
//! each with its own migrations. Times cross this boundary as `DateTime<Utc>`.

mod announce;
mod db;
mod outage_links;
mod postgres;
mod sqlite;
mod web;

pub use announce::*;
pub use db::{Conn, Db};
pub use outage_links::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use web::*;

use crate::workflow::{Profile, Status};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error: {}", postgres::pg_message(.0))]
    Postgres(#[from] sqlx::Error),
    #[error("cannot open the database at {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("{0}")]
    Other(String),
}

/// Opens the store named by a URL (`sqlite:PATH`, creating its folder, or
/// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`) and migrates it.
pub fn open(url: &str) -> Result<Box<dyn Store>> {
    open_as(url, Role::Service, true)
}

/// [`open`] without migrating: another connection of the same process already did.
pub fn connect(url: &str) -> Result<Box<dyn Store>> {
    open_as(url, Role::Service, false)
}

/// What a connection is opened for; it changes only SQLite's tuning, never durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The daemon and the command line: a 64 MB page cache, the WAL checkpointed every
    /// 16,384 pages (the batch path's throughput), and by the last connection at close.
    Service,
    /// A process that commits one mail and exits (`ticketgate ingest`, an MTA pipe): no
    /// checkpoint at close unless the WAL is over [`ONE_SHOT_WAL_PAGES`] (then it is
    /// checkpointed and truncated), so the next process's first open (which rebuilds the WAL
    /// index from the whole WAL) reads a bounded WAL (ADR 0018).
    OneShot,
}

/// The WAL size (pages) over which a [`Role::OneShot`] connection checkpoints and truncates
/// the WAL when it closes (ADR 0018).
pub const ONE_SHOT_WAL_PAGES: u32 = 128;

pub(crate) fn open_as(url: &str, role: Role, migrate: bool) -> Result<Box<dyn Store>> {
    match url.split_once(':') {
        Some(("sqlite", path)) => {
            let mut s = SqliteStore::open_as(std::path::Path::new(path), role)?;
            if migrate {
                s.migrate()?;
            }
            Ok(Box::new(s))
        }
        Some(("postgres" | "postgresql", _)) => {
            let mut s = PgStore::open(url)?;
            if migrate {
                s.migrate()?;
            }
            Ok(Box::new(s))
        }
        // Only the scheme is shown: the rest may hold a password.
        _ => Err(StoreError::Other(format!(
            "unsupported database URL `{}:...`: use sqlite:PATH or postgres://USER:PASSWORD@HOST/DATABASE",
            url.split_once(':').map_or("", |(scheme, _)| scheme)
        ))),
    }
}

/// A ticket: everything the lifecycle, the SLA clock and the timers work on. The pipeline
/// changes it in memory and writes it back whole with [`WriteTx::save_ticket`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketRow {
    pub id: i64,
    pub customer: String,
    pub support_key: String,
    pub plan: String,
    pub language: String,
    pub profile: Profile,
    pub issue_type: String,
    pub status: Status,
    pub severity: u8,
    pub stated_severity: Option<String>,
    pub subject: String,
    pub requester: String,
    pub requester_name: Option<String>,
    /// Reason of the last resolve or close.
    pub reason: Option<String>,
    /// The closed ticket this one continues (eXo: closed is final).
    pub parent_id: Option<i64>,
    /// Required information still missing.
    pub missing_info: Vec<String>,
    /// Start of the current wait on the customer (or of the last reminder).
    pub followup_base_at: Option<DateTime<Utc>>,
    /// Reminders sent in the current wait; beyond the plan's count: warning sent, then
    /// waiting for a manager's confirmation.
    pub followup_stage: i64,
    pub survey_score: Option<u8>,
    pub sla: SlaState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The first-response clock, in working seconds of the plan's calendar.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlaState {
    /// `None`: no target for this severity ("as soon as possible").
    pub target_secs: Option<i64>,
    /// When the request was complete and the clock started.
    pub started_at: Option<DateTime<Utc>>,
    /// Start of the current running segment; `None` while paused or stopped.
    pub running_since: Option<DateTime<Utc>>,
    /// Working seconds counted in finished segments.
    pub elapsed_secs: i64,
    /// When the target is missed, while running.
    pub due_at: Option<DateTime<Utc>>,
    pub responded_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
}

/// A missed response target, recorded for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub at: DateTime<Utc>,
    pub severity: u8,
    pub due_at: DateTime<Utc>,
}

/// One ticket as a KPI report reads it (SPEC §9): what it was, how its first response and
/// its resolution went. Read through the `tickets (customer, created_at)` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTicket {
    pub id: i64,
    /// The plan it was opened under (its calendar counts its business time).
    pub plan: String,
    pub severity: u8,
    pub issue_type: String,
    pub created_at: DateTime<Utc>,
    /// The first-response target (working seconds); `None`: no target for its severity.
    pub sla_target_secs: Option<i64>,
    pub responded_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub survey_score: Option<u8>,
    /// Working seconds the first-response clock counted (final once responded).
    pub sla_elapsed_secs: i64,
    /// The first time it was resolved or closed.
    pub resolved_at: Option<DateTime<Utc>>,
    /// It went from resolved or closed back to an open status at least once.
    pub reopened: bool,
    /// Escalations recorded (missed response targets).
    pub escalations: i64,
}

/// An armed timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timer {
    pub ticket_id: i64,
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArticleRow {
    pub id: i64,
    pub kind: String,
    pub author: String,
    pub body: String,
    pub quoted: String,
    pub created_at: DateTime<Utc>,
    pub attachments: Vec<AttachmentInfo>,
    /// The sender-authenticity verdict of the mail the article came from (`None`: not from
    /// a mail, or received before verdicts were kept).
    pub authentication: Option<crate::auth::Verdict>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttachmentInfo {
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub kept: bool,
}

/// Where an outbound mail stands. Stored as its `as_str()` name; an unknown stored name is an
/// error naming the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    /// Claimed by a sender (a lease until `next_attempt_at`).
    Sending,
    Retry,
    Sent,
    /// Refused for good (SMTP 5xx, a recipient that is not an address).
    Failed,
    /// Out of attempts: the dead letters.
    Dead,
    /// Held back by the automatic-reply cap; never sent.
    Suppressed,
}

impl OutboxState {
    pub const ALL: [OutboxState; 7] = [
        OutboxState::Pending,
        OutboxState::Sending,
        OutboxState::Retry,
        OutboxState::Sent,
        OutboxState::Failed,
        OutboxState::Dead,
        OutboxState::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Retry => "retry",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
            OutboxState::Dead => "dead",
            OutboxState::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        OutboxState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with a stored name (`"dead"`).
impl PartialEq<&str> for OutboxState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub state: OutboxState,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Set when the message went to an address on the suppression list anyway.
    pub flag: Option<String>,
}

/// A claimed outbound message, ready to deliver.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub message_id: String,
    pub attempts: i64,
    pub body: Vec<u8>,
}

impl OutboxMail {
    /// This claim, as the fence its outcome is recorded under.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            attempts: self.attempts,
        }
    }
}

/// A claimed outbox row: its id and the attempt number the claim counted. An outcome is
/// recorded only while the row is still `sending` under this attempt: a sender whose claim
/// lapsed and was taken over cannot overwrite the new claimant's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub id: i64,
    pub attempts: i64,
}

/// What one delivery attempt came to, to record under its [`Claim`]
/// ([`Store::mark_outcomes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: `sent` at the recording's time.
    Sent,
    /// Try again at `next_at` (`retry`).
    Retry {
        next_at: DateTime<Utc>,
        error: String,
    },
    /// Refused for good (`failed`).
    Failed(String),
    /// Out of attempts (`dead`).
    Dead(String),
}

impl Outcome {
    /// The state it leaves the row in.
    pub fn state(&self) -> OutboxState {
        match self {
            Outcome::Sent => OutboxState::Sent,
            Outcome::Retry { .. } => OutboxState::Retry,
            Outcome::Failed(_) => OutboxState::Failed,
            Outcome::Dead(_) => OutboxState::Dead,
        }
    }

    /// The row's `last_error` after it.
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Sent => None,
            Outcome::Retry { error, .. } | Outcome::Failed(error) | Outcome::Dead(error) => {
                Some(error)
            }
        }
    }

    /// The row's next attempt, when it has one.
    pub fn next_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Outcome::Retry { next_at, .. } => Some(*next_at),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineRow {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub from: Option<String>,
    pub subject: String,
    pub message_id: Option<String>,
    pub reason_code: String,
    pub reason: String,
    /// The mail's whole size: the declared one when only its header was stored.
    pub size: i64,
}

pub struct NewInbound<'a> {
    pub dedup_key: &'a str,
    pub message_id: Option<&'a str>,
    pub source: &'a str,
    pub received_at: DateTime<Utc>,
    pub from: Option<&'a str>,
    pub subject: &'a str,
    pub raw: &'a [u8],
    /// The whole size the source declared when `raw` is the mail's header only (IMAP, over
    /// `inbound.max_message_size`); `None` when `raw` is the whole mail.
    pub declared_size: Option<usize>,
    pub outcome: &'a str,
    pub reason_code: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub ticket_id: Option<i64>,
    /// The sender-authenticity verdict; `None` for a mail that could not be parsed.
    pub auth: Option<&'a crate::auth::Verdict>,
}

pub struct NewArticle<'a> {
    pub ticket_id: i64,
    pub inbound_id: Option<i64>,
    pub kind: &'a str,
    pub author: &'a str,
    pub body: &'a str,
    pub quoted: &'a str,
    pub now: DateTime<Utc>,
}

pub struct NewOutbound<'a> {
    pub ticket_id: Option<i64>,
    pub inbound_id: Option<i64>,
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
    pub automatic: bool,
    pub body: &'a [u8],
    /// `Pending`, or `Suppressed` with `note` saying why.
    pub state: OutboxState,
    pub note: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Where the reading of an IMAP mailbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MailboxState {
    /// The mailbox's UIDVALIDITY that `last_uid` belongs to.
    pub uid_validity: u32,
    /// The highest UID whose effects are committed.
    pub last_uid: u32,
}

/// What became of one UID of an IMAP mailbox. Only `Stored` and `HeaderOnly` mail is ever
/// moved, flagged or deleted by a catch-up; the rows are written in the batch's
/// transaction, so no crash window lets a catch-up touch mail that was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UidDisposition {
    /// Committed whole; its after-action is owed.
    Stored,
    /// Committed header only (over `inbound.max_message_size`): never deleted.
    HeaderOnly,
    /// The server could not return it; given up on, never moved or deleted.
    GivenUp,
    /// Its fetch failed (`failures` times); not given up on yet.
    Failing,
}

impl UidDisposition {
    pub fn as_str(self) -> &'static str {
        match self {
            UidDisposition::Stored => "stored",
            UidDisposition::HeaderOnly => "header_only",
            UidDisposition::GivenUp => "given_up",
            UidDisposition::Failing => "failing",
        }
    }

    /// `None` for a value this version does not know (an error for the caller to report).
    pub fn parse(s: &str) -> Option<UidDisposition> {
        Some(match s {
            "stored" => UidDisposition::Stored,
            "header_only" => UidDisposition::HeaderOnly,
            "given_up" => UidDisposition::GivenUp,
            "failing" => UidDisposition::Failing,
            _ => return None,
        })
    }
}

/// A ticket's watcher: gets its public updates in Cc; their replies count like the
/// requester's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watcher {
    /// Lower-case address.
    pub address: String,
    /// `cc` (taken from the Cc of a customer's mail) or the agent who added them.
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

/// Who added a watcher from the Cc of a customer's mail.
pub const WATCHER_FROM_CC: &str = "cc";

/// A recorded UID of an IMAP mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UidState {
    pub uid: u32,
    pub disposition: UidDisposition,
    /// Failed fetches counted so far.
    pub failures: u32,
}

/// What a batch will read, handed to [`WriteTx::prefetch`] before it is applied, so that a
/// store that pays a round trip per statement (PostgreSQL) reads it as sets.
#[derive(Debug, Default, Clone)]
pub struct Prefetch {
    pub mails: Vec<PrefetchMail>,
    /// Start of the automatic-reply window: the senders' counts since then are read.
    pub since: Option<DateTime<Utc>>,
    /// The cap those counts are compared with (`loops.auto_reply_limit`): another writer's
    /// mail to the same sender then conflicts only when it changes a decision.
    pub auto_reply_limit: Option<u32>,
}

/// One mail of a [`Prefetch`].
#[derive(Debug, Default, Clone)]
pub struct PrefetchMail {
    pub dedup_key: String,
    /// The Message-IDs it refers to (`In-Reply-To`, `References`).
    pub message_ids: Vec<String>,
    /// Tickets it names by number (subject tag, references in the text).
    pub ticket_ids: Vec<i64>,
    pub from: Option<String>,
    /// It names a support key, so it may open a ticket (ids are reserved for it).
    pub may_open: bool,
}

/// One write transaction. Dropped without `commit`, it rolls back.
pub trait WriteTx {
    /// Reads what [`Prefetch`] names in a few set queries, so the batch's own reads are
    /// answered from memory. A hint: a store may do nothing (SQLite, where a read is a
    /// function call).
    fn prefetch(&mut self, what: &Prefetch) -> Result<()> {
        let _ = what;
        Ok(())
    }

    /// Whether [`WriteTx::prefetch`] does anything (the pipeline then hands it larger
    /// groups of mail).
    fn prefetches(&self) -> bool {
        false
    }

    /// Marks a point the pipeline can return to when one mail of a batch fails.
    fn savepoint(&mut self) -> Result<()>;
    fn release_savepoint(&mut self) -> Result<()>;
    fn rollback_to_savepoint(&mut self) -> Result<()>;

    fn inbound_exists(&mut self, dedup_key: &str) -> Result<bool>;
    fn ticket_for_message_id(&mut self, message_id: &str) -> Result<Option<i64>>;
    fn ticket(&mut self, id: i64) -> Result<Option<TicketRow>>;
    /// Automatic mails to `recipient` created at or after `since` and not suppressed.
    fn automatic_sent_since(&mut self, recipient: &str, since: DateTime<Utc>) -> Result<u32>;
    /// A throttled alert: `true` (and `now` recorded) when the alert `key` was last raised
    /// before `since` or never; `false` when it was raised since.
    fn alert_due(&mut self, key: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool>;

    /// Inserts `t` (its `id` is ignored) and returns the new id.
    fn insert_ticket(&mut self, t: &TicketRow) -> Result<i64>;
    /// Writes back what a ticket's life changes (status, severity, reason, checklist,
    /// follow-up and SLA state, survey, times); identity fields are never rewritten.
    fn save_ticket(&mut self, t: &TicketRow) -> Result<()>;
    fn touch_ticket(&mut self, id: i64, now: DateTime<Utc>) -> Result<()>;
    fn insert_history(
        &mut self,
        ticket_id: i64,
        at: DateTime<Utc>,
        from: &str,
        to: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<()>;
    fn insert_escalation(
        &mut self,
        ticket_id: i64,
        at: DateTime<Utc>,
        severity: u8,
        due_at: DateTime<Utc>,
        target_secs: i64,
    ) -> Result<()>;
    /// Arms (or moves) the ticket's timer of this kind.
    fn set_timer(&mut self, ticket_id: i64, kind: &str, due_at: DateTime<Utc>) -> Result<()>;
    fn clear_timer(&mut self, ticket_id: i64, kind: &str) -> Result<()>;
    /// Timers due at `now`, earliest first, at most `limit`.
    fn due_timers(&mut self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>>;
    fn insert_inbound(&mut self, m: &NewInbound<'_>) -> Result<i64>;
    fn insert_article(&mut self, a: &NewArticle<'_>) -> Result<i64>;
    /// Takes a quarantined mail out of quarantine for a replay: its row stays (as
    /// `replayed`, with its raw bytes) but no longer counts for de-duplication. Returns the
    /// raw bytes and source, or `None` when the row is not a quarantined mail.
    fn take_for_replay(&mut self, id: i64) -> Result<Option<(Vec<u8>, String)>>;
    /// The whole size declared for an inbound mail stored header-only
    /// ([`NewInbound::declared_size`]); `None` when its raw bytes are the whole mail.
    fn inbound_declared_size(&mut self, id: i64) -> Result<Option<usize>>;
    /// Changes what an inbound mail is recorded to have done.
    fn set_inbound_outcome(
        &mut self,
        id: i64,
        outcome: &str,
        reason_code: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()>;
    fn insert_attachment(
        &mut self,
        article_id: i64,
        filename: &str,
        content_type: &str,
        size: usize,
        data: Option<&[u8]>,
    ) -> Result<()>;
    /// Records that `message_id` belongs to `ticket_id`; a known id keeps its first ticket.
    fn link_message_id(&mut self, message_id: &str, ticket_id: i64) -> Result<()>;
    fn enqueue(&mut self, m: &NewOutbound<'_>) -> Result<i64>;
    /// Records how far a mailbox was read, in the transaction that committed the mails.
    fn set_mailbox_state(&mut self, mailbox: &str, state: MailboxState) -> Result<()>;
    /// Records what became of UIDs of a mailbox, in the transaction that committed them.
    fn set_uid_dispositions(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        uids: &[(u32, UidDisposition)],
    ) -> Result<()>;
    /// Stores the hash of a ticket's page token ([`web::token_hash`]).
    fn set_ticket_token(&mut self, ticket_id: i64, token_hash: &str) -> Result<()>;

    /// The ticket's current watchers, in the order they were added.
    fn watchers(&mut self, ticket_id: i64) -> Result<Vec<Watcher>>;
    /// Makes `address` (lower-case) a watcher of the ticket. A watcher removed before (an
    /// `#unwatch`, an agent) comes back only when `revive` (an agent's `#cc add`), never from
    /// a Cc. `true` when the address was not watching and now is.
    fn add_watcher(
        &mut self,
        ticket_id: i64,
        address: &str,
        by: &str,
        now: DateTime<Utc>,
        revive: bool,
    ) -> Result<bool>;
    /// Stops `address` watching the ticket; `true` when it was watching.
    fn remove_watcher(
        &mut self,
        ticket_id: i64,
        address: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Records how a mail added to a ticket found it when not by its headers (`tag`,
    /// `text`); a mail added without this was found by its headers.
    fn set_inbound_threading(&mut self, inbound_id: i64, threaded_by: &str) -> Result<()>;
    /// [`Store::report_tickets`] inside the transaction (a report requested by mail).
    fn report_tickets(
        &mut self,
        customer: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ReportTicket>>;

    // Bounces (issue 11).
    /// The outbound message `id` (what a VERP address names).
    fn outbox_target(&mut self, id: i64) -> Result<Option<OutboxTarget>>;
    /// The outbound message with this Message-ID (what a bounce quotes).
    fn outbox_by_message_id(&mut self, message_id: &str) -> Result<Option<OutboxTarget>>;
    /// `address` (lower case) on the suppression list.
    fn suppression(&mut self, address: &str) -> Result<Option<Suppression>>;
    /// Puts an address on the list; `false` when it already was (the entry is kept as is).
    fn insert_suppression(&mut self, s: &Suppression) -> Result<bool>;
    /// Takes an address off the list, and forgets its soft-bounce score; `false` when it
    /// was not on it.
    fn remove_suppression(&mut self, address: &str) -> Result<bool>;
    fn bounce_score(&mut self, address: &str) -> Result<Option<BounceScore>>;
    fn set_bounce_score(&mut self, s: &BounceScore) -> Result<()>;
    /// Adds one to the bounce counter `kind` (`hard`, `soft`, `forged`, `unverified`).
    fn count_bounce(&mut self, kind: &str) -> Result<()>;
    /// Marks an outbound message (written to a suppressed address anyway).
    fn flag_outbox(&mut self, id: i64, flag: &str) -> Result<()>;
    /// Subscribers and announcements in this transaction ([`AnnounceTx`]).
    fn announce(&mut self) -> &mut dyn AnnounceTx;
    /// The outages open now on every platform, oldest first, with their last update
    /// ([`OpenOutage`]); intake links new tickets to those of the customer's platform.
    fn intake_outages(&mut self) -> Result<Vec<OpenOutage>>;
    /// Links a ticket to an outage (once; a second link of the same pair does nothing).
    fn link_outage(&mut self, ticket_id: i64, outage_id: i64, now: DateTime<Utc>) -> Result<()>;
    /// The tickets linked to an outage, ascending.
    fn outage_tickets(&mut self, outage_id: i64) -> Result<Vec<i64>>;

    fn commit(self: Box<Self>) -> Result<()>;

    /// Starts the commit and returns before it is durable where the store can: on
    /// PostgreSQL the writers' lock, the check, the buffered writes and the COMMIT of a batch
    /// transaction run in the background while the caller prepares the next batch
    /// ([`Store::write_batch_after`], ADR 0019). The handle says when (and whether) the
    /// commit is durable; nothing may leave its source before [`Committing::wait`] said so.
    /// The default commits here (SQLite: the writer thread does the commit's work itself).
    fn commit_background(self: Box<Self>) -> Result<Box<dyn Committing>> {
        self.commit()?;
        Ok(Box::new(Committed))
    }
}

/// A commit started by [`WriteTx::commit_background`].
pub trait Committing: Send {
    /// Waits until the commit is durable (`Ok`), or failed: then nothing of it was written.
    /// The first failing call returns the commit's own error; later ones describe it.
    fn wait(&self) -> Result<()>;
    /// The store's own type behind the handle ([`Store::write_batch_after`]).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A commit that was done before its handle was returned.
pub struct Committed;

impl Committing for Committed {
    fn wait(&self) -> Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A ticketgate database.
pub trait Store: Send {
    /// Starts a write transaction (SQLite: `BEGIN IMMEDIATE`).
    fn write(&mut self) -> Result<Box<dyn WriteTx + '_>>;

    /// Starts a write transaction for a batch of mail, whose reads may be made before the
    /// writers are serialized and are then checked under the writers' lock (PostgreSQL,
    /// ADR 0009): its commit fails, writing nothing, when another writer changed what it
    /// read. The default is [`Store::write`].
    fn write_batch(&mut self) -> Result<Box<dyn WriteTx + '_>> {
        self.write()
    }

    /// [`Store::write_batch`] for the batch after `before`, whose commit may still be
    /// running. The new transaction reads as if `before` were committed, and its own commit
    /// waits for `before`'s and fails, writing nothing, when that one failed: batches commit
    /// in order, and a batch prepared on the effects of one that was not committed never is
    /// (ADR 0019). The default waits for `before` first.
    fn write_batch_after(&mut self, before: &dyn Committing) -> Result<Box<dyn WriteTx + '_>> {
        before.wait()?;
        self.write_batch()
    }

    fn tickets(&mut self, limit: usize) -> Result<Vec<TicketRow>>;
    fn ticket_with_articles(&mut self, id: i64) -> Result<Option<(TicketRow, Vec<ArticleRow>)>>;
    fn outbox(&mut self, limit: usize) -> Result<Vec<OutboxRow>>;
    fn quarantine(&mut self, limit: usize) -> Result<Vec<QuarantineRow>>;
    /// The raw bytes of an inbound mail, exactly as received.
    fn inbound_raw(&mut self, id: i64) -> Result<Option<Vec<u8>>>;
    /// The whole composed message of an outbox row.
    fn outbox_body(&mut self, id: i64) -> Result<Option<Vec<u8>>>;

    /// Claims up to `limit` messages due at `now` (pending, retry, or a lapsed claim):
    /// marks them `sending` until `lease_until` and counts the attempt before it is made, so a
    /// message that always crashes the sender still runs out of attempts.
    /// A lapsed claim that already used `max_attempts` (the sender died during its last
    /// attempt) is marked `dead` instead of being claimed again.
    fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        max_attempts: u32,
    ) -> Result<Vec<OutboxMail>>;
    /// Records a delivery. Every `mark_*` returns `false` when the claim was no longer
    /// current (it lapsed and another sender took the row over): nothing was changed.
    fn mark_sent(&mut self, claim: Claim, now: DateTime<Utc>) -> Result<bool>;
    fn mark_retry(&mut self, claim: Claim, next_at: DateTime<Utc>, error: &str) -> Result<bool>;
    /// Records several attempts' outcomes in one commit (PostgreSQL: one statement), each
    /// under its claim's fence as the single `mark_*` do: for each, in order, whether its
    /// claim was still current (`false`: nothing changed for it).
    fn mark_outcomes(
        &mut self,
        marks: &[(Claim, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>>;
    /// Refused for good (SMTP 5xx): `failed`.
    fn mark_failed(&mut self, claim: Claim, error: &str) -> Result<bool>;
    /// Out of attempts (kept failing): `dead`, the dead-letter state.
    fn mark_dead(&mut self, claim: Claim, error: &str) -> Result<bool>;
    /// Gives claims back unsent (shutdown, or a database error mid-pass): due again at `now`,
    /// with the attempt the claim counted taken back.
    fn release_claims(&mut self, claims: &[Claim], now: DateTime<Utc>) -> Result<()>;
    /// Puts a `failed` or `dead` message back to `pending` with its attempts reset (the
    /// operator's `outbox retry`). `false` when the row is not in one of those states.
    fn retry_outbox(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool>;
    /// The earliest time any undelivered message is due, for the sender's sleep.
    fn next_due(&mut self) -> Result<Option<DateTime<Utc>>>;
    /// The earliest armed timer: a ticket's, an announcement's, or a pending subscription's
    /// expiry (all fired by the tick).
    fn next_timer(&mut self) -> Result<Option<DateTime<Utc>>>;
    fn timers(&mut self, ticket_id: i64) -> Result<Vec<Timer>>;
    fn escalations(&mut self, ticket_id: i64) -> Result<Vec<Escalation>>;
    /// The customer's tickets created in `[from, until)`, in no particular order, for a KPI
    /// report.
    fn report_tickets(
        &mut self,
        customer: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<ReportTicket>>;

    fn mailbox_state(&mut self, mailbox: &str) -> Result<Option<MailboxState>>;
    /// Takes the lease `name` for `holder` until `until`, or renews it, when it is free,
    /// lapsed (`until <= now`) or already `holder`'s. `false`: another holder has it.
    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Gives the lease up at once (clean shutdown), when `holder` has it.
    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()>;

    /// The recorded UIDs of a mailbox under this UIDVALIDITY, ascending.
    fn uid_states(&mut self, mailbox: &str, uid_validity: u32) -> Result<Vec<UidState>>;
    /// The after-action of the stored UIDs in `lo..=hi` is done (or they are gone): their
    /// rows go, with every row of another UIDVALIDITY. Given-up rows stay.
    fn forget_uids(&mut self, mailbox: &str, uid_validity: u32, lo: u32, hi: u32) -> Result<()>;
    /// Counts failed fetches of `uid` (kept across restarts); no effect on a UID that was
    /// stored or given up on.
    fn set_uid_failures(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        uid: u32,
        failures: u32,
    ) -> Result<()>;

    /// The ticket's current watchers (`tickets show`, `ticket REF watchers list`).
    fn ticket_watchers(&mut self, ticket_id: i64) -> Result<Vec<Watcher>>;
    /// How the inbound mail with this Message-ID found its ticket (`headers`, `tag`,
    /// `text`; `headers` for a mail added to a ticket with nothing else recorded); `None`
    /// when it is not stored or was not added to a ticket.
    fn inbound_threading(&mut self, message_id: &str) -> Result<Option<String>>;
    /// The outages a ticket is linked to (announcement ids), ascending.
    fn ticket_outages(&mut self, ticket_id: i64) -> Result<Vec<i64>>;
    /// What the web layer reads and writes ([`WebStore`]).
    fn web(&mut self) -> &mut dyn WebStore;
    /// Subscribers and announcements ([`AnnounceRead`]).
    fn announce(&mut self) -> &mut dyn AnnounceRead;
    /// The suppression list, by address.
    fn suppressions(&mut self) -> Result<Vec<Suppression>>;
    /// The bounce counters, by kind.
    fn bounce_counts(&mut self) -> Result<Vec<(String, i64)>>;
}

/// An address we no longer write to automatically, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    pub address: String,
    /// `hard`: one hard bounce; `soft`: soft bounces on several days.
    pub kind: crate::bounce::Verdict,
    pub reason: String,
    pub status: Option<String>,
    /// The outbound message whose bounce put it there.
    pub outbox_id: Option<i64>,
    pub ticket_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// The soft-bounce score of an address.
#[derive(Debug, Clone, PartialEq)]
pub struct BounceScore {
    pub address: String,
    pub score: f64,
    pub bounces: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// An outbound message a bounce is about.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxTarget {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub recipient: String,
    pub kind: String,
    pub message_id: String,
}
