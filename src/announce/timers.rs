//! Announcement timers in the tick's transaction: every announcement whose `next_due_at`
//! has come is fired by its kind (an outage's update; maintenance: helper A2's
//! `maintenance::fire`), and pending subscriptions past their expiry are removed. Reads of
//! the due rows take the writer lock first (PostgreSQL), so with several instances each
//! timer fires once.

use super::outage;
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::store::{AnnouncementKind, Result, WriteTx};
use crate::timers::Fired;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

const CHUNK: usize = 100;

/// Fires what is due at `now`. With `savepoints`, a failing announcement is rolled back
/// alone and put off by an hour; without, its error is returned (the tick redoes the
/// whole pass with savepoints).
pub fn fire_due(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    now: DateTime<Utc>,
    savepoints: bool,
) -> Result<Vec<Fired>> {
    let mut fired = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let due = tx.announce().due_announcements(now, CHUNK)?;
        if due.is_empty() {
            break;
        }
        for mut a in due {
            let due_at = a.next_due_at.unwrap_or(now);
            if !seen.insert(a.id) {
                // Re-armed at or before `now`: never spin on it.
                a.next_due_at = None;
                tx.announce().save_announcement(&a)?;
                tracing::error!(announcement = %a.reference(), "announcement timer re-armed in the past; dropped");
                continue;
            }
            if savepoints {
                tx.savepoint()?;
            }
            let r = match a.kind {
                AnnouncementKind::Outage => outage::fire(tx, pipeline, registry, &mut a, now),
                // Helper A2: `AnnouncementKind::Maintenance => super::maintenance::fire(tx,
                // pipeline, registry, &mut a, now)` (-> store::Result<usize>).
                _ => {
                    a.next_due_at = None;
                    tx.announce().save_announcement(&a).map(|()| 0)
                }
            };
            let action = match r {
                Ok(n) => {
                    if savepoints {
                        tx.release_savepoint()?;
                    }
                    format!("{} mail(s) to subscribers", n)
                }
                Err(e) if !savepoints => return Err(e),
                Err(e) => {
                    tx.rollback_to_savepoint()?;
                    let retry = now + chrono::Duration::hours(1);
                    let mut again = a.clone();
                    again.next_due_at = Some(retry);
                    if let Some(stored) = tx.announce().announcement(a.id)? {
                        again = stored;
                        again.next_due_at = Some(retry);
                    }
                    tx.announce().save_announcement(&again)?;
                    tracing::error!(announcement = %a.reference(), error = %e,
                        "announcement timer failed; it will be tried again in an hour");
                    format!("failed ({e}); retried at {}", retry.to_rfc3339())
                }
            };
            fired.push(Fired {
                ticket: a.reference(),
                timer: format!("{}_update", a.kind),
                due_at,
                action,
            });
        }
    }
    let expired = tx.announce().expire_pending(now)?;
    if expired > 0 {
        tracing::info!(expired, "pending subscriptions expired");
    }
    Ok(fired)
}
