//! Fan-out: one outbox row per confirmed subscriber of an announcement's lists, written in
//! the transaction that makes the announcement, and one `announcement_updates` row saying
//! what went out and to how many.

use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::store::{AnnouncementRow, Result, UpdateKind, WriteTx};
use chrono::{DateTime, Utc};

/// What one mail of an announcement says, besides the announcement itself.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    pub kind: UpdateKind,
    /// The operator's text (an update, a restoration note), or `""`.
    pub text: &'a str,
}

/// Sends `mail` about `a` to the confirmed subscribers of `a.lists` and records it; sets
/// `a.communicated_at` (first mail), `a.last_mail_at` and `a.thread_message_id` (first
/// mail), which the caller saves. Returns the number of outbox rows written.
///
/// Phase 1: records the update and its time only; the mails themselves (templates, list
/// headers, threading) are phase 2.
pub fn send(
    tx: &mut dyn WriteTx,
    _pipeline: &Pipeline,
    _registry: &Registry,
    a: &mut AnnouncementRow,
    mail: &Mail<'_>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let sent = 0usize;
    tx.announce()
        .insert_announcement_update(a.id, now, mail.kind, mail.text, sent as i64)?;
    if a.communicated_at.is_none() {
        a.communicated_at = Some(now);
    }
    a.last_mail_at = Some(now);
    Ok(sent)
}
