//! What announcements read and write (issue 10): subscribers of distribution lists,
//! announcements (outages, maintenance, releases, information) and the mails each sent.
//! Reads through [`Store::announce`](super::Store::announce) ([`AnnounceRead`]); reads and
//! writes inside a transaction through [`WriteTx::announce`](super::WriteTx::announce)
//! ([`AnnounceTx`]), so an announcement and its outbox rows commit together. Implemented
//! per backend in `sqlite/announce.rs` and `postgres/announce.rs`. These tables are never
//! buffered by a PostgreSQL batch transaction (ADR 0009): a write takes the writer lock
//! (and flushes the batch's buffer) first, a read goes to the server.

use super::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// A subscription: `pending` until its address confirms (double opt-in), then `confirmed`.
    SubscriberState { Pending = "pending", Confirmed = "confirmed" }
}

string_enum! {
    /// What an announcement is.
    AnnouncementKind {
        Outage = "outage",
        Maintenance = "maintenance",
        Release = "release",
        Information = "information",
    }
}

string_enum! {
    /// Where an announcement stands. Outages: `draft` (a probe's, waiting for an operator)
    /// → `open` → `restored`, or `draft` → `dismissed`. Maintenance: `scheduled` →
    /// `in_progress` → `completed` | `failed`, or `cancelled`. Releases and information:
    /// `published`.
    AnnouncementState {
        Draft = "draft",
        Open = "open",
        Restored = "restored",
        Dismissed = "dismissed",
        Scheduled = "scheduled",
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Published = "published",
    }
}

impl AnnouncementState {
    /// Whether an announcement of `kind` may be in this state.
    pub fn fits(self, kind: AnnouncementKind) -> bool {
        use AnnouncementKind as K;
        use AnnouncementState as S;
        match kind {
            K::Outage => matches!(self, S::Draft | S::Open | S::Restored | S::Dismissed),
            K::Maintenance => matches!(
                self,
                S::Scheduled | S::InProgress | S::Completed | S::Failed | S::Cancelled
            ),
            K::Release | K::Information => self == S::Published,
        }
    }

    /// Over: no more mail, no timer.
    pub fn is_closed(self) -> bool {
        use AnnouncementState as S;
        matches!(
            self,
            S::Restored | S::Dismissed | S::Completed | S::Failed | S::Cancelled | S::Published
        )
    }
}

string_enum! {
    /// One mail an announcement sent (a row of `announcement_updates`).
    UpdateKind {
        /// The first notice of an outage.
        Declared = "declared",
        /// An update with the operator's text.
        Update = "update",
        /// An update without new text: the outage goes on.
        Ongoing = "ongoing",
        Restored = "restored",
        /// Maintenance: announced, reminded, started, finished, cancelled.
        Scheduled = "scheduled",
        Reminder = "reminder",
        Started = "started",
        Finished = "finished",
        Cancelled = "cancelled",
        /// A release or an informational announcement.
        Published = "published",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriberRow {
    pub id: i64,
    pub list: String,
    /// Lower-case.
    pub address: String,
    pub customer: String,
    pub state: SubscriberState,
    /// A distribution address the customer maintains: unsubscribing it needs a confirmation.
    pub shared: bool,
    /// `operator`, `mail`, `api`, …
    pub added_by: String,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When a pending request lapses.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A subscription to add or change ([`AnnounceTx::upsert_subscriber`]).
#[derive(Debug, Clone)]
pub struct NewSubscriber<'a> {
    pub list: &'a str,
    /// Lower-cased by the store.
    pub address: &'a str,
    pub customer: &'a str,
    pub state: SubscriberState,
    pub shared: bool,
    pub added_by: &'a str,
    pub now: DateTime<Utc>,
    /// For a pending one: when it lapses (`now` + 3 days).
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnouncementRow {
    pub id: i64,
    pub kind: AnnouncementKind,
    pub state: AnnouncementState,
    /// `""` for an announcement to named lists only.
    pub platform: String,
    /// The lists it went to.
    pub lists: Vec<String>,
    pub services: Vec<String>,
    /// Subject line material: a release's version, an announcement's subject.
    pub title: String,
    pub impact: String,
    /// Release notes, an informational announcement's body.
    pub body: String,
    /// `operator`, or `probe:NAME`.
    pub source: String,
    pub emergency: bool,
    /// Outage: since when; maintenance: planned start.
    pub starts_at: Option<DateTime<Utc>>,
    /// Outage: restored at; maintenance: planned end.
    pub ends_at: Option<DateTime<Utc>>,
    pub restoration_eta: Option<DateTime<Utc>>,
    /// Outage: seconds between updates.
    pub update_interval_secs: Option<i64>,
    /// Maintenance: reminder this many seconds before the start (0 or `None`: none).
    pub reminder_before_secs: Option<i64>,
    /// Operator text given since the last mail, sent with the next update.
    pub pending_text: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was decided (maintenance: scheduled).
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When its first mail went to the outbox.
    pub communicated_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_mail_at: Option<DateTime<Utc>>,
    /// Its timer (indexed): the tick fires it at or after this time.
    pub next_due_at: Option<DateTime<Utc>>,
    /// The first notice's Message-ID (without `<>`): every later mail refers to it.
    pub thread_message_id: Option<String>,
}

impl AnnouncementRow {
    /// A new row of `kind` in `state`, everything else empty; `id` is given by the insert.
    pub fn new(
        kind: AnnouncementKind,
        state: AnnouncementState,
        platform: &str,
        now: DateTime<Utc>,
    ) -> AnnouncementRow {
        AnnouncementRow {
            id: 0,
            kind,
            state,
            platform: platform.to_string(),
            lists: Vec::new(),
            services: Vec::new(),
            title: String::new(),
            impact: String::new(),
            body: String::new(),
            source: "operator".into(),
            emergency: false,
            starts_at: None,
            ends_at: None,
            restoration_eta: None,
            update_interval_secs: None,
            reminder_before_secs: None,
            pending_text: None,
            created_at: now,
            scheduled_at: None,
            communicated_at: None,
            closed_at: None,
            last_mail_at: None,
            next_due_at: None,
            thread_message_id: None,
        }
    }

    /// `OUT-000001`, `MNT-000001`, …
    pub fn reference(&self) -> String {
        crate::announce::reference::reference(self.kind, self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnouncementUpdateRow {
    pub id: i64,
    pub announcement_id: i64,
    pub at: DateTime<Utc>,
    pub kind: UpdateKind,
    pub text: String,
    /// Outbox rows written for it.
    pub recipients: i64,
}

/// Announcements, newest first (by id). Empty filters match everything.
#[derive(Debug, Clone, Default)]
pub struct AnnouncementQuery {
    pub platform: Option<String>,
    pub kinds: Vec<AnnouncementKind>,
    pub states: Vec<AnnouncementState>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Cursor: only ids below.
    pub before_id: Option<i64>,
    /// 0: no limit.
    pub limit: usize,
}

/// Reads (outside a transaction, or inside one through [`AnnounceTx`]).
pub trait AnnounceRead {
    fn subscriber(&mut self, id: i64) -> Result<Option<SubscriberRow>>;
    /// By list and address (the address compared in lower case).
    fn subscriber_by_address(&mut self, list: &str, address: &str)
    -> Result<Option<SubscriberRow>>;
    /// A list's subscribers, pending and confirmed, by address.
    fn subscribers(&mut self, list: &str) -> Result<Vec<SubscriberRow>>;
    /// The confirmed subscribers of any of `lists`, by list then address.
    fn confirmed_subscribers(&mut self, lists: &[String]) -> Result<Vec<SubscriberRow>>;
    /// Subscriptions of one address, on every list.
    fn subscriptions_of(&mut self, address: &str) -> Result<Vec<SubscriberRow>>;
    fn announcement(&mut self, id: i64) -> Result<Option<AnnouncementRow>>;
    fn announcements(&mut self, q: &AnnouncementQuery) -> Result<Vec<AnnouncementRow>>;
    /// The mails one announcement sent, oldest first.
    fn announcement_updates(&mut self, announcement_id: i64) -> Result<Vec<AnnouncementUpdateRow>>;
    /// Outages in state `open` on `platform`, oldest first.
    fn open_outages(&mut self, platform: &str) -> Result<Vec<AnnouncementRow>>;
    /// Announcements whose timer is due at `now`, soonest first.
    fn due_announcements(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AnnouncementRow>>;
    /// The soonest announcement timer (not counting pending expiries).
    fn next_announcement_due(&mut self) -> Result<Option<DateTime<Utc>>>;
}

/// Reads and writes in a write transaction.
pub trait AnnounceTx: AnnounceRead {
    /// Inserts, or changes the row of the same (list, address): state, customer, shared,
    /// added_by, expiry (and `confirmed_at` when it becomes confirmed). A row that was
    /// confirmed stays confirmed when asked to be pending. Returns the row.
    fn upsert_subscriber(&mut self, s: &NewSubscriber<'_>) -> Result<SubscriberRow>;
    /// A pending subscriber becomes confirmed. `false`: no such pending row.
    fn confirm_subscriber(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool>;
    /// `false`: no such row.
    fn remove_subscriber(&mut self, id: i64) -> Result<bool>;
    /// Removes the pending requests whose `expires_at` is at or before `now`; how many. The
    /// tick calls it (its time counts in [`Store::next_timer`](super::Store::next_timer)).
    fn expire_pending(&mut self, now: DateTime<Utc>) -> Result<usize>;
    /// Inserts the row (its `id` ignored); returns its id.
    fn insert_announcement(&mut self, a: &AnnouncementRow) -> Result<i64>;
    /// Writes the row back whole (by `id`).
    fn save_announcement(&mut self, a: &AnnouncementRow) -> Result<()>;
    /// Records one mail of an announcement; returns its id.
    fn insert_announcement_update(
        &mut self,
        announcement_id: i64,
        at: DateTime<Utc>,
        kind: UpdateKind,
        text: &str,
        recipients: i64,
    ) -> Result<i64>;
}

/// Lists and services are stored newline-separated.
pub(crate) fn join_lines(v: &[String]) -> String {
    v.join("\n")
}

pub(crate) fn split_lines(s: &str) -> Vec<String> {
    s.split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
