//! The tick: fires every timer due at an instant (reminders, closure warnings, automatic
//! closes, escalations). Timers live in the store with an indexed due time, so a tick reads
//! only what is due, whatever the number of open tickets. A fired timer is re-armed strictly
//! after the instant, so each fires once per tick; with `dry_run` the same work runs in a
//! transaction that is rolled back, so nothing is sent or changed. Like the pipeline, a tick
//! runs without savepoints and is redone with one per timer only when a timer fails.

use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashSet;

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
    // Fast path: no savepoints. Should a timer fail, the tick is done again with one
    // savepoint per timer, so that only the failing one is put off.
    match run(pipeline, store, now, dry_run, false)? {
        Some(fired) => Ok(fired),
        None => Ok(run(pipeline, store, now, dry_run, true)?.unwrap_or_default()),
    }
}

/// One pass; `None` when a timer failed without savepoints (everything rolled back).
fn run(
    pipeline: &Pipeline,
    store: &mut dyn Store,
    now: DateTime<Utc>,
    dry_run: bool,
    savepoints: bool,
) -> Result<Option<Vec<Fired>>, StoreError> {
    let registry = pipeline.registry();
    let engine = pipeline.engine(&registry, now);
    let mut fired = Vec::new();
    let mut seen = HashSet::new();
    // Buffered writes and set reads where the store has them (PostgreSQL: the due timers
    // and their tickets in one call, the writes one statement per table).
    let mut tx = store.write_batch()?;
    loop {
        let due = tx.due_timers(now, CHUNK)?;
        if due.is_empty() {
            break;
        }
        for timer in due {
            if !seen.insert((timer.ticket_id, timer.kind.clone())) {
                // Fired once already and due again: never spin on it.
                tx.clear_timer(timer.ticket_id, &timer.kind)?;
                tracing::error!(ticket = timer.ticket_id, timer = %timer.kind, "timer re-armed in the past; dropped");
                continue;
            }
            if savepoints {
                tx.savepoint()?;
            }
            let action = match engine.fire(tx.as_mut(), &timer) {
                Ok(a) => {
                    if savepoints {
                        tx.release_savepoint()?;
                    }
                    a
                }
                Err(_) if !savepoints => return Ok(None), // dropped: rolled back
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
            fired.push(Fired {
                ticket: pipeline.reference(timer.ticket_id),
                timer: timer.kind.clone(),
                due_at: timer.due_at,
                action,
            });
        }
    }
    // Announcements (issue 10): outage updates, maintenance timers, pending expiries.
    match crate::announce::timers::fire_due(tx.as_mut(), pipeline, &registry, now, savepoints) {
        Ok(f) => fired.extend(f),
        Err(_) if !savepoints => return Ok(None), // dropped: rolled back
        Err(e) => return Err(e),
    }
    if dry_run {
        drop(tx); // rolls back: nothing is sent or changed
    } else {
        tx.commit()?;
        for f in &fired {
            tracing::info!(ticket = %f.ticket, timer = %f.timer, action = %f.action, "timer fired");
        }
    }
    Ok(Some(fired))
}
