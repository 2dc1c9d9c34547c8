//! Outbound mail: the log of what went out, and sending again what failed.

use super::{Result, ServiceError};
use crate::app::App;
use crate::store::{OutboxRow, OutboxState};
use serde::Serialize;

/// An outbound mail as operators read it (`outbox list --json`).
#[derive(Debug, Clone, Serialize)]
pub struct OutboxView {
    pub id: i64,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub ticket: Option<String>,
    pub state: OutboxState,
    pub attempts: i64,
    pub message_id: String,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set when the mail went to an address on the suppression list anyway (a person's
    /// answer): `suppressed_recipient: …`.
    pub flag: Option<String>,
}

impl OutboxView {
    pub fn new(prefix: &str, o: OutboxRow) -> OutboxView {
        OutboxView {
            id: o.id,
            kind: o.kind,
            to: o.recipient,
            subject: o.subject,
            ticket: o
                .ticket_id
                .map(|id| crate::ticket_ref::reference(prefix, id)),
            state: o.state,
            attempts: o.attempts,
            message_id: o.message_id,
            last_error: o.last_error,
            created_at: o.created_at,
            next_attempt_at: o.next_attempt_at,
            sent_at: o.sent_at,
            flag: o.flag,
        }
    }
}

/// Outbound mail, oldest first, at most `limit`, only in `state` when given.
pub async fn list(app: &App, state: Option<OutboxState>, limit: usize) -> Result<Vec<OutboxView>> {
    let rows = match state {
        None => app.db.read(move |s| s.outbox(limit)).await?,
        // The store lists by id only: read every row's summary (not the bodies) and keep the
        // first `limit` in the state.
        Some(state) => app
            .db
            .read(move |s| s.outbox(i64::MAX as usize))
            .await?
            .into_iter()
            .filter(|o| o.state == state)
            .take(limit)
            .collect(),
    };
    let prefix = &app.cfg.tickets.reference_prefix;
    Ok(rows
        .into_iter()
        .map(|o| OutboxView::new(prefix, o))
        .collect())
}

/// Puts failed or dead mail back to pending with its attempts reset. Every id is checked
/// first: unless all are failed or dead, nothing changes ([`ServiceError::Rejected`] lists
/// why). Returns each id with the state it had.
pub async fn retry(app: &App, ids: &[i64]) -> Result<Vec<(i64, OutboxState)>> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let rows = app.db.read(|s| s.outbox(i64::MAX as usize)).await?;
    let mut problems = Vec::new();
    let mut was = Vec::with_capacity(ids.len());
    for id in &ids {
        match rows.iter().find(|o| o.id == *id) {
            None => problems.push(format!("outbox {id}: no such mail")),
            Some(o) if !matches!(o.state, OutboxState::Failed | OutboxState::Dead) => problems
                .push(format!(
                    "outbox {id}: is {}, not failed or dead: only those can be retried",
                    o.state
                )),
            Some(o) => was.push((*id, o.state)),
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::Rejected(problems));
    }
    for (id, _) in &was {
        let (id, now) = (*id, app.clock.now());
        if !app.db.read(move |s| s.retry_outbox(id, now)).await? {
            // Changed under us (another `outbox retry`).
            return Err(ServiceError::Conflict(format!(
                "outbox {id}: is no longer failed or dead; not retried"
            )));
        }
    }
    Ok(was)
}
