//! What the web layer reads and writes (issue 9): API tokens, ticket-page tokens, filtered
//! and paginated listings, and the counts `/readyz` and `/metrics` need — all through
//! indexes. A separate trait ([`WebStore`]) reached through [`Store::web`](super::Store::web),
//! implemented per backend in `sqlite/web.rs` and `postgres/web.rs`.

use super::{OutboxRow, OutboxState, Result, TicketRow};
use crate::workflow::Status;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What an API token may do: `read` lists and shows; `agent` also acts on tickets and sees
/// internal notes; `admin` also retries outbound mail and replays quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    Agent,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Agent => "agent",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "agent" => Some(Scope::Agent),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiTokenRow {
    pub name: String,
    pub scope: Scope,
    /// SHA-256 of the token, hex.
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Counts read at each scrape and readiness check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebStats {
    /// Unsent outbound mail by state (every state but `sent`).
    pub outbox: Vec<(OutboxState, i64)>,
    /// Creation time of the oldest mail waiting to be sent (pending or retry).
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Timers due at `now`.
    pub timers_overdue: i64,
}

/// A page of tickets, newest first.
#[derive(Debug, Clone, Default)]
pub struct TicketQuery {
    pub status: Option<Status>,
    pub customer: Option<String>,
    pub severity: Option<u8>,
    pub updated_since: Option<DateTime<Utc>>,
    /// Cursor: only tickets with a smaller id.
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// A page of outbound mail, newest first.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    pub kind: Option<String>,
    pub recipient: Option<String>,
    pub state: Option<OutboxState>,
    pub ticket_id: Option<i64>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub before_id: Option<i64>,
    pub limit: usize,
}

pub trait WebStore {
    fn web_stats(&mut self, now: DateTime<Utc>) -> Result<WebStats>;
    /// `false` when the name is taken (by a live or a revoked token).
    fn insert_api_token(
        &mut self,
        name: &str,
        scope: Scope,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    fn api_tokens(&mut self) -> Result<Vec<ApiTokenRow>>;
    /// `false` when there is no live token of that name.
    fn revoke_api_token(&mut self, name: &str, now: DateTime<Utc>) -> Result<bool>;
    fn api_token_by_hash(&mut self, token_hash: &str) -> Result<Option<ApiTokenRow>>;
    fn tickets_page(&mut self, q: &TicketQuery) -> Result<Vec<TicketRow>>;
    fn outbox_page(&mut self, q: &OutboxQuery) -> Result<Vec<OutboxRow>>;
    fn outbox_row(&mut self, id: i64) -> Result<Option<OutboxRow>>;
    /// The ticket whose page token hashes to `token_hash`.
    fn ticket_by_token(&mut self, token_hash: &str) -> Result<Option<i64>>;
}

/// SHA-256 of `secret`, hex: how API and ticket-page tokens are stored and looked up.
pub fn token_hash(secret: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `a == b` in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// A fresh random token: `bytes` random bytes, hex.
pub fn random_token(bytes: usize) -> std::result::Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    let mut s = String::with_capacity(bytes * 2);
    for b in buf {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}
