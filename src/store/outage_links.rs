//! Tickets linked to outages (issue 10, incident-aware intake): what intake reads of the
//! outages open now, and the `ticket_outages` rows. The pipeline links a new ticket from a
//! customer of a platform with an open outage to it, in the batch's transaction; the
//! outage's restoration reads its tickets to send them the notice in its own transaction.
//! The methods are on [`WriteTx`](super::WriteTx) and [`Store`](super::Store); on a
//! PostgreSQL batch the open outages are read once per transaction (and checked again under
//! the writers' lock) and the links are buffered like the batch's other rows (ADR 0009).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// An outage open now, as intake tells a new ticket's requester about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenOutage {
    /// The announcement's id (`OUT-…` reference).
    pub id: i64,
    pub platform: String,
    pub services: Vec<String>,
    pub impact: String,
    /// Since when (its start, else when it was declared).
    pub since: DateTime<Utc>,
    pub restoration_eta: Option<DateTime<Utc>>,
    /// Its last update with the operator's text sent to subscribers: when, and the text
    /// (the declaration's text is the impact).
    pub last_update: Option<(DateTime<Utc>, String)>,
}
