//! The announcements' timers, fired by the tick inside its transaction: every announcement
//! whose `next_due_at` has come, by kind (an outage's update, a maintenance's reminder or the
//! agent team's overdue reminder). Each handler sets the row's next timer strictly after
//! `now` or clears it, so a tick fires each once; several instances never fire one twice
//! (reading the due rows takes the writer lock on PostgreSQL).

use super::{maintenance, outage};
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::store::{AnnouncementKind, AnnouncementRow, Result, WriteTx};
use chrono::{DateTime, Utc};

/// Due announcements handled per read.
const CHUNK: usize = 200;

/// Fires every announcement timer due at `now`; returns the mails written. `fired` gets
/// each announcement handled (reference and mails).
pub fn fire_due_with(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    now: DateTime<Utc>,
    fired: &mut Vec<(AnnouncementRow, usize)>,
) -> Result<usize> {
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let due = tx.announce().due_announcements(now, CHUNK)?;
        let due: Vec<AnnouncementRow> = due.into_iter().filter(|a| seen.insert(a.id)).collect();
        if due.is_empty() {
            return Ok(total);
        }
        for mut a in due {
            let mails = match a.kind {
                AnnouncementKind::Outage => outage::fire(tx, pipeline, registry, &mut a, now)?,
                AnnouncementKind::Maintenance => {
                    maintenance::fire(tx, pipeline, registry, &mut a, now)?
                }
                AnnouncementKind::Release | AnnouncementKind::Information => {
                    a.next_due_at = None;
                    tx.announce().save_announcement(&a)?;
                    0
                }
            };
            total += mails;
            fired.push((a, mails));
        }
    }
}

/// [`fire_due_with`] without the list of what fired.
pub fn fire_due(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    now: DateTime<Utc>,
) -> Result<usize> {
    fire_due_with(tx, pipeline, registry, now, &mut Vec::new())
}
