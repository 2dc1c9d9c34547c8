//! The first-response clock (SPEC §5): starts when the request is complete, pauses while the
//! ticket waits on the customer, stops at the first public response, and is counted in the
//! plan's business calendar. These functions change a ticket's [`SlaState`] in memory; the
//! caller saves the ticket and re-arms its timers.

use crate::calendar::Calendar;
use crate::store::SlaState;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Starts the clock (once) when a target exists.
pub fn start(s: &mut SlaState, cal: &Calendar, now: DateTime<Utc>) {
    if s.started_at.is_some() || s.responded_at.is_some() {
        return;
    }
    s.started_at = Some(now);
    if s.target_secs.is_some() {
        s.running_since = Some(now);
        s.due_at = due(s, cal);
    }
}

/// Pauses a running clock (the ticket waits on the customer).
pub fn pause(s: &mut SlaState, cal: &Calendar, now: DateTime<Utc>) {
    if let Some(since) = s.running_since.take() {
        s.elapsed_secs += cal.working_between(since, now).num_seconds();
        s.due_at = None;
    }
}

/// Resumes a paused clock.
pub fn resume(s: &mut SlaState, cal: &Calendar, now: DateTime<Utc>) {
    if s.started_at.is_some()
        && s.responded_at.is_none()
        && s.running_since.is_none()
        && s.target_secs.is_some()
    {
        s.running_since = Some(now);
        s.due_at = due(s, cal);
    }
}

/// Stops the clock at the first public response.
pub fn respond(s: &mut SlaState, cal: &Calendar, now: DateTime<Utc>) {
    if s.responded_at.is_some() {
        return;
    }
    pause(s, cal, now);
    s.responded_at = Some(now);
}

/// A new target (the severity changed): a running clock gets a new due time; a started
/// clock that had no target starts running now unless the ticket waits on the customer.
pub fn retarget(
    s: &mut SlaState,
    cal: &Calendar,
    target_secs: Option<i64>,
    now: DateTime<Utc>,
    waiting: bool,
) {
    let had_target = s.target_secs.is_some();
    s.target_secs = target_secs;
    if s.running_since.is_some() {
        if target_secs.is_none() {
            pause(s, cal, now);
        } else {
            s.due_at = due(s, cal);
        }
    } else if !had_target && !waiting {
        resume(s, cal, now);
    }
}

fn due(s: &SlaState, cal: &Calendar) -> Option<DateTime<Utc>> {
    let since = s.running_since?;
    let left = (s.target_secs? - s.elapsed_secs).max(0);
    Some(cal.add(since, Duration::seconds(left)))
}

/// What `ticketgate sla REF` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaView {
    pub target: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub state: &'static str,
    /// Working time counted so far.
    pub elapsed: String,
    pub elapsed_secs: i64,
    pub due_at: Option<DateTime<Utc>>,
    pub responded_at: Option<DateTime<Utc>>,
    pub breached: bool,
    pub breached_at: Option<DateTime<Utc>>,
}

pub fn view(s: &SlaState, cal: &Calendar, now: DateTime<Utc>) -> SlaView {
    let running = s
        .running_since
        .map_or(0, |since| cal.working_between(since, now).num_seconds());
    let elapsed = s.elapsed_secs + running;
    let state = if s.responded_at.is_some() {
        "stopped (responded)"
    } else if s.started_at.is_none() {
        "not started (request incomplete)"
    } else if s.target_secs.is_none() {
        "no target"
    } else if s.running_since.is_some() {
        "running"
    } else {
        "paused (waiting on the customer)"
    };
    SlaView {
        target: s.target_secs.map(human),
        started_at: s.started_at,
        state,
        elapsed: human(elapsed),
        elapsed_secs: elapsed,
        due_at: s.due_at,
        responded_at: s.responded_at,
        breached: s.breached_at.is_some() || s.due_at.is_some_and(|d| d <= now),
        breached_at: s.breached_at,
    }
}

/// `2h 30m`, `45m`, `3h`.
pub fn human(secs: i64) -> String {
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn pause_and_resume_move_the_due_time_by_the_paused_working_time() {
        let cal = Calendar::Always;
        let mut s = SlaState {
            target_secs: Some(4 * 3600),
            ..Default::default()
        };
        start(&mut s, &cal, at("2026-11-20T10:00:00Z"));
        assert_eq!(s.due_at, Some(at("2026-11-20T14:00:00Z")));
        pause(&mut s, &cal, at("2026-11-20T11:00:00Z"));
        assert_eq!((s.due_at, s.elapsed_secs), (None, 3600));
        resume(&mut s, &cal, at("2026-11-20T13:00:00Z"));
        assert_eq!(
            s.due_at,
            Some(at("2026-11-20T16:00:00Z")),
            "3h left after a 2h pause"
        );
        respond(&mut s, &cal, at("2026-11-20T15:00:00Z"));
        assert_eq!(s.due_at, None);
        assert_eq!(s.elapsed_secs, 3 * 3600);
        resume(&mut s, &cal, at("2026-11-20T16:00:00Z"));
        assert_eq!(s.running_since, None, "a responded clock stays stopped");
    }

    #[test]
    fn no_target_means_no_due_time() {
        let mut s = SlaState::default();
        start(&mut s, &Calendar::Always, at("2026-11-20T10:00:00Z"));
        assert!(s.started_at.is_some() && s.due_at.is_none());
        assert_eq!(
            view(&s, &Calendar::Always, at("2026-11-21T10:00:00Z")).state,
            "no target"
        );
    }
}
