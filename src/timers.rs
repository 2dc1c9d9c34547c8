//! The tick: fires every timer due at an instant (reminders, closure warnings, automatic
//! closes, escalations). Timers live in the store with an indexed due time, so a tick reads
//! only what is due, whatever the number of open tickets. A fired timer is re-armed strictly
//! after the instant, so each fires once per tick; with `dry_run` the same work runs in a
//! transaction that is rolled back, so nothing is sent or changed.

use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Timers handled per statement; a tick loops until none is due.
const CHUNK: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fired {
    pub ticket: String,
    pub timer: String,
    pub due_at: DateTime<Utc>,
    pub action: String,
}

pub fn tick(
    pipeline: &Pipeline,
    store: &mut dyn Store,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Vec<Fired>, StoreError> {
    let registry = pipeline.registry();
    let engine = pipeline.engine(&registry, now);
    let mut fired = Vec::new();
    let mut tx = store.write()?;
    loop {
        let due = tx.due_timers(now, CHUNK)?;
        if due.is_empty() {
            break;
        }
        for timer in due {
            tx.savepoint()?;
            let action = match engine.fire(tx.as_mut(), &timer) {
                Ok(a) => {
                    tx.release_savepoint()?;
                    a
                }
                Err(e) => {
                    tx.rollback_to_savepoint()?;
                    // Try again in an hour rather than spin on it; the log says why.
                    let retry = now + chrono::Duration::hours(1);
                    tx.set_timer(timer.ticket_id, &timer.kind, retry)?;
                    tracing::error!(ticket = timer.ticket_id, timer = %timer.kind, error = %e,
                        "timer failed; it will be tried again in an hour");
                    format!("failed ({e}); retried at {}", retry.to_rfc3339())
                }
            };
            if !dry_run {
                tracing::info!(ticket = %pipeline.reference(timer.ticket_id), timer = %timer.kind, action = %action, "timer fired");
            }
            fired.push(Fired {
                ticket: pipeline.reference(timer.ticket_id),
                timer: timer.kind.clone(),
                due_at: timer.due_at,
                action,
            });
        }
    }
    if dry_run {
        drop(tx); // rolls back: nothing is sent or changed
    } else {
        tx.commit()?;
    }
    Ok(fired)
}
