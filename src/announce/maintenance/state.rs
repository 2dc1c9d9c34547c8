//! A maintenance's lifecycle and its timers, pure.
//!
//! ```text
//! scheduled ──start──► started ──finish --success──► completed
//!     │                   └─────finish --failed───► failed
//!     └──cancel──► cancelled
//! ```
//! Emergency maintenance is a flag on the record, not a state: it skips the notice rule and
//! is announced at once, then follows the same states.
//!
//! Timers ([`next_due`], [`due`]): the subscribers' reminder `reminder_before` the start
//! (none when that is zero, when the notice itself went out later than that, or once the
//! start has passed: a late reminder would announce the past); and the agent team's
//! reminders when the planned start passes while still scheduled, and when the planned end
//! passes while not finished. Each fires once: what was sent is recorded ([`Sent`]).

use crate::store::AnnouncementState;
use chrono::{DateTime, Duration, Utc};
use std::fmt;

/// Where a maintenance is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaintenanceState {
    Scheduled,
    Started,
    Completed,
    Failed,
    Cancelled,
}

impl MaintenanceState {
    pub const ALL: [MaintenanceState; 5] = [
        MaintenanceState::Scheduled,
        MaintenanceState::Started,
        MaintenanceState::Completed,
        MaintenanceState::Failed,
        MaintenanceState::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceState::Scheduled => "scheduled",
            MaintenanceState::Started => "in_progress",
            MaintenanceState::Completed => "completed",
            MaintenanceState::Failed => "failed",
            MaintenanceState::Cancelled => "cancelled",
        }
    }

    /// The state a stored name means; `None` for a name this version does not know (the
    /// caller reports it with the row).
    pub fn parse(text: &str) -> Option<MaintenanceState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The stored state ([`AnnouncementState`]); `Started` is stored as `in_progress`.
    pub fn stored(self) -> AnnouncementState {
        match self {
            MaintenanceState::Scheduled => AnnouncementState::Scheduled,
            MaintenanceState::Started => AnnouncementState::InProgress,
            MaintenanceState::Completed => AnnouncementState::Completed,
            MaintenanceState::Failed => AnnouncementState::Failed,
            MaintenanceState::Cancelled => AnnouncementState::Cancelled,
        }
    }

    /// The maintenance state of a stored one; `None` for a state of another kind.
    pub fn from_stored(s: AnnouncementState) -> Option<MaintenanceState> {
        Self::ALL.into_iter().find(|m| m.stored() == s)
    }

    /// Not yet over: scheduled or started.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            MaintenanceState::Scheduled | MaintenanceState::Started
        )
    }
}

impl fmt::Display for MaintenanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operator does to a maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Finish { success: bool },
    Cancel,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Finish { .. } => "finish",
            Action::Cancel => "cancel",
        }
    }
}

/// An action the current state does not allow, with what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a maintenance that is {from}: {hint}")]
pub struct Refused {
    pub action: &'static str,
    pub from: MaintenanceState,
    pub hint: &'static str,
}

/// The state after `action`, or why it is refused.
pub fn apply(from: MaintenanceState, action: Action) -> Result<MaintenanceState, Refused> {
    use MaintenanceState::*;
    let refuse = |hint| {
        Err(Refused {
            action: action.name(),
            from,
            hint,
        })
    };
    match (from, action) {
        (Scheduled, Action::Start) => Ok(Started),
        (Started, Action::Finish { success: true }) => Ok(Completed),
        (Started, Action::Finish { success: false }) => Ok(Failed),
        (Scheduled, Action::Cancel) => Ok(Cancelled),
        (Started, Action::Start) => refuse("it is already started"),
        (Scheduled, Action::Finish { .. }) => {
            refuse("start it first (`maintenance start ID`), or cancel it")
        }
        (Started, Action::Cancel) => {
            refuse("it has begun; end it with `maintenance finish ID --failed TEXT`")
        }
        (Completed | Failed | Cancelled, _) => refuse("it is over"),
    }
}

/// A timer step of a maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// To the subscribers, `reminder_before` the start.
    Reminder,
    /// To the agent team: the planned start passed while still scheduled.
    StartOverdue,
    /// To the agent team: the planned end passed while not finished.
    EndOverdue,
}

/// When a maintenance runs, and when its notice went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Zero: no reminder.
    pub reminder_before: Duration,
    /// When the first notice was written to the outbox.
    pub communicated_at: DateTime<Utc>,
}

/// Which steps already fired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub reminder: bool,
    pub start_overdue: bool,
    pub end_overdue: bool,
}

impl Sent {
    pub fn mark(&mut self, step: Step) {
        match step {
            Step::Reminder => self.reminder = true,
            Step::StartOverdue => self.start_overdue = true,
            Step::EndOverdue => self.end_overdue = true,
        }
    }
}

impl Schedule {
    /// When the reminder is due, if there is one: `reminder_before` ahead of the start,
    /// and only when that is after the notice went out.
    pub fn reminder_at(&self) -> Option<DateTime<Utc>> {
        if self.reminder_before <= Duration::zero() {
            return None;
        }
        let at = self.start.checked_sub_signed(self.reminder_before)?;
        (at > self.communicated_at).then_some(at)
    }
}

/// The steps still to fire with their due instants, as seen at `now`.
fn pending(
    state: MaintenanceState,
    s: &Schedule,
    sent: Sent,
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Step)> {
    let mut steps = Vec::new();
    if state == MaintenanceState::Scheduled {
        if let Some(at) = s.reminder_at()
            && !sent.reminder
            && now < s.start
        {
            steps.push((at, Step::Reminder));
        }
        if !sent.start_overdue {
            steps.push((s.start, Step::StartOverdue));
        }
    }
    if state.is_open() && !sent.end_overdue {
        steps.push((s.end, Step::EndOverdue));
    }
    steps.sort_by_key(|(at, _)| *at);
    steps
}

/// The steps due at `now`, in time order.
pub fn due(state: MaintenanceState, s: &Schedule, sent: Sent, now: DateTime<Utc>) -> Vec<Step> {
    pending(state, s, sent, now)
        .into_iter()
        .filter(|(at, _)| *at <= now)
        .map(|(_, step)| step)
        .collect()
}

/// When the next step is due, as seen at `now` (which may be in the past: a timer that
/// was due while nothing ran fires at the next tick); `None` when nothing is left.
pub fn next_due(
    state: MaintenanceState,
    s: &Schedule,
    sent: Sent,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    pending(state, s, sent, now).first().map(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MaintenanceState::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn schedule() -> Schedule {
        Schedule {
            start: at("2026-12-09T22:00:00Z"),
            end: at("2026-12-10T02:00:00Z"),
            reminder_before: Duration::hours(24),
            communicated_at: at("2026-12-04T14:00:00Z"),
        }
    }

    #[test]
    fn the_operator_moves_it_scheduled_started_then_completed_or_failed() {
        assert_eq!(apply(Scheduled, Action::Start), Ok(Started));
        assert_eq!(
            apply(Started, Action::Finish { success: true }),
            Ok(Completed)
        );
        assert_eq!(
            apply(Started, Action::Finish { success: false }),
            Ok(Failed)
        );
        assert_eq!(apply(Scheduled, Action::Cancel), Ok(Cancelled));
    }

    #[test]
    fn out_of_order_actions_are_refused_with_what_to_do() {
        let e = apply(Scheduled, Action::Finish { success: true }).unwrap_err();
        assert_eq!(e.from, Scheduled);
        assert!(e.to_string().contains("maintenance start ID"), "{e}");
        let e = apply(Started, Action::Cancel).unwrap_err();
        assert!(e.to_string().contains("--failed"), "{e}");
        for over in [Completed, Failed, Cancelled] {
            for action in [
                Action::Start,
                Action::Cancel,
                Action::Finish { success: true },
            ] {
                assert!(apply(over, action).is_err(), "{over} {action:?}");
            }
        }
    }

    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_none() {
        for s in MaintenanceState::ALL {
            assert_eq!(MaintenanceState::parse(s.as_str()), Some(s));
        }
        assert_eq!(MaintenanceState::parse("done"), None);
        for s in MaintenanceState::ALL {
            assert_eq!(MaintenanceState::from_stored(s.stored()), Some(s));
            assert_eq!(s.stored().as_str(), s.as_str());
        }
        assert_eq!(MaintenanceState::from_stored(AnnouncementState::Open), None);
    }

    #[test]
    fn timers_fire_reminder_then_start_overdue_then_end_overdue() {
        let s = schedule();
        let mut sent = Sent::default();
        let now = at("2026-12-05T09:00:00Z");
        assert_eq!(
            next_due(Scheduled, &s, sent, now),
            Some(at("2026-12-08T22:00:00Z"))
        );
        assert!(due(Scheduled, &s, sent, now).is_empty());

        let now = at("2026-12-08T22:00:00Z");
        assert_eq!(due(Scheduled, &s, sent, now), vec![Step::Reminder]);
        sent.mark(Step::Reminder);
        assert_eq!(next_due(Scheduled, &s, sent, now), Some(s.start));

        assert_eq!(due(Scheduled, &s, sent, s.start), vec![Step::StartOverdue]);
        sent.mark(Step::StartOverdue);
        assert_eq!(next_due(Scheduled, &s, sent, s.start), Some(s.end));
        assert_eq!(due(Scheduled, &s, sent, s.end), vec![Step::EndOverdue]);
        sent.mark(Step::EndOverdue);
        assert_eq!(next_due(Scheduled, &s, sent, s.end), None);
    }

    #[test]
    fn started_in_time_means_no_start_reminder_and_finished_means_none_at_all() {
        let s = schedule();
        let sent = Sent {
            reminder: true,
            ..Sent::default()
        };
        assert_eq!(next_due(Started, &s, sent, s.start), Some(s.end));
        assert!(due(Started, &s, sent, s.start).is_empty());
        for over in [Completed, Failed, Cancelled] {
            assert_eq!(next_due(over, &s, Sent::default(), s.start), None);
        }
    }

    #[test]
    fn a_reminder_is_skipped_when_zero_when_the_notice_was_later_or_the_start_passed() {
        let mut s = schedule();
        s.reminder_before = Duration::zero();
        assert_eq!(s.reminder_at(), None);

        let mut s = schedule();
        s.communicated_at = at("2026-12-09T10:00:00Z"); // 12 h ahead: the notice suffices
        assert_eq!(s.reminder_at(), None);

        // A tick that comes only after the start sends no reminder, just the overdue one.
        let s = schedule();
        let late = at("2026-12-09T23:00:00Z");
        assert_eq!(
            due(Scheduled, &s, Sent::default(), late),
            vec![Step::StartOverdue]
        );
    }
}
