//! The operations the command line, the daemon and (next) the HTTP API share, as async
//! functions over an [`App`](crate::app::App): typed results to render, and typed errors whose
//! [`ErrorKind`] an HTTP layer maps to a status code. No rendering here, and no SQL.
//!
//! - [`tickets`]: list, show, an agent's action, the SLA view;
//! - [`outbox`]: list (by state), retry failed or dead mail;
//! - [`quarantine`]: list, replay;
//! - [`timers`]: the tick, or its dry run;
//! - [`intake`]: one raw mail (the `ingest` command, MTA pipes);
//! - [`web`]: paged listings, API tokens, the customer's ticket page and answer.
//! - [`reports`]: the KPI report of a customer and period.
//! - [`lists`]: distribution lists and subscribers; [`announce`]: outages and the
//!   announcements the status page reads; [`maintenance`]: schedule, start, finish, cancel.
//! - [`status`]: the public status page and its feed.
//! - [`unwatch`]: a watcher's unwatch link (`/w/TOKEN`).

pub mod announce;
pub mod intake;
pub mod lists;
pub mod maintenance;
pub mod outbox;
pub mod quarantine;
pub mod reports;
pub mod status;
pub mod subscriptions;
pub mod suppressions;
pub mod tickets;
pub mod timers;
pub mod unwatch;
pub mod web;

use crate::pipeline::ActionError;
use crate::store::StoreError;

/// What kind of failure, for a caller that maps it (HTTP: 404, 422, 409, 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Invalid,
    Conflict,
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong as written (a bad reference, a date that is not RFC 3339).
    #[error("{0}")]
    Invalid(String),
    /// Checked and refused, every reason listed; nothing was changed.
    #[error("{}", .0.join("; "))]
    Rejected(Vec<String>),
    /// The state changed under the request (another operator acted first).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Mail(String),
}

impl ServiceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::NotFound(_) => ErrorKind::NotFound,
            ServiceError::Invalid(_) | ServiceError::Rejected(_) => ErrorKind::Invalid,
            ServiceError::Conflict(_) => ErrorKind::Conflict,
            ServiceError::Store(_) | ServiceError::Mail(_) => ErrorKind::Unavailable,
        }
    }
}

impl From<ActionError> for ServiceError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NoTicket(r) => ServiceError::NotFound(format!("no ticket {r}")),
            e @ ActionError::NotQuarantined(_) => ServiceError::NotFound(e.to_string()),
            e @ ActionError::Replay(_) => ServiceError::Conflict(e.to_string()),
            ActionError::Store(e) => ServiceError::Store(e),
            e @ ActionError::Mail(_) => ServiceError::Mail(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// The id of a ticket reference (`TKT-000123`), or [`ServiceError::Invalid`].
pub fn ticket_id(app: &crate::app::App, reference: &str) -> Result<i64> {
    let prefix = &app.cfg.tickets.reference_prefix;
    crate::ticket_ref::parse(prefix, reference).ok_or_else(|| {
        ServiceError::Invalid(format!(
            "`{reference}` is not a ticket reference: write e.g. {prefix}-000123"
        ))
    })
}
