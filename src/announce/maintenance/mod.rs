//! Maintenance announcements inside one write transaction (issue 10, OX "Maintenance
//! Communication"): schedule (the notice to the platform's maintenance lists), the
//! operator's marks (start, finish, cancel) with their mails, and [`fire`], the tick's
//! timer steps (the subscribers' reminder, the agent team's reminders when the planned start
//! or end passes without a mark). The notice rule is [`notice_rule`], the lifecycle and
//! timer arithmetic [`state`], both pure. `services::maintenance` runs these on the writer.

pub mod notice_rule;
pub mod state;

use crate::announce::ListDef;
use crate::announce::fanout::{self, Mail};
use crate::mailer::Letter;
use crate::notify::{Automatic, Lang, MaintenanceOverdue, Notice};
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::store::{
    AnnouncementKind, AnnouncementRow, AnnouncementState, Result, StoreError, UpdateKind, WriteTx,
};
use chrono::{DateTime, Duration, Utc};
use notice_rule::REQUIRED_BUSINESS_DAYS;
use state::{Action, MaintenanceState, Refused, Schedule, Sent, Step};
use std::sync::Arc;

/// A maintenance to schedule (checked by the caller: end after start, an impact).
#[derive(Debug, Clone)]
pub struct NewMaintenance {
    /// Lower-case.
    pub platform: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub impact: String,
    /// Skips the notice rule; announced at once like every maintenance.
    pub emergency: bool,
    /// Zero: no reminder.
    pub reminder_before: Duration,
}

/// Why `start` is too early for each list whose calendar refuses it (empty: accepted), each
/// naming the earliest allowed start.
pub fn notice_refusals(
    lists: &[Arc<ListDef>],
    now: DateTime<Utc>,
    start: DateTime<Utc>,
) -> Vec<String> {
    lists
        .iter()
        .filter_map(|l| {
            let r = notice_rule::check(&l.calendar, now, start, REQUIRED_BUSINESS_DAYS).err()?;
            Some(format!(
                "planned maintenance needs {} business days of notice in the {} calendar of \
                 list {}: a start on {} gives {}; the earliest allowed start is {} ({}); use \
                 --emergency to skip the rule",
                r.required,
                l.calendar_name,
                l.name,
                l.calendar.local_text(start),
                r.business_days,
                l.calendar.local_text(r.earliest_start),
                r.earliest_start.to_rfc3339(),
            ))
        })
        .collect()
}

/// Writes the maintenance and its notice to every confirmed subscriber of `lists`; returns
/// the saved row and the number of mails written.
pub fn schedule(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    lists: &[Arc<ListDef>],
    m: &NewMaintenance,
    now: DateTime<Utc>,
) -> Result<(AnnouncementRow, usize)> {
    let mut row = AnnouncementRow::new(
        AnnouncementKind::Maintenance,
        AnnouncementState::Scheduled,
        &m.platform,
        now,
    );
    row.lists = lists.iter().map(|l| l.name.clone()).collect();
    row.title = format!("Maintenance on {}", m.platform);
    row.impact = m.impact.clone();
    row.emergency = m.emergency;
    row.starts_at = Some(m.start);
    row.ends_at = Some(m.end);
    row.reminder_before_secs = Some(m.reminder_before.num_seconds());
    row.scheduled_at = Some(now);
    row.id = tx.announce().insert_announcement(&row)?;
    let sent = mail_subscribers(
        tx,
        pipeline,
        registry,
        &mut row,
        UpdateKind::Scheduled,
        None,
        now,
    )?;
    row.next_due_at = schedule_of(&row)
        .and_then(|s| state::next_due(MaintenanceState::Scheduled, &s, Sent::default(), now));
    tx.announce().save_announcement(&row)?;
    Ok((row, sent))
}

/// The maintenance state of a maintenance row; an error naming the row when it is not one.
pub fn state_of(a: &AnnouncementRow) -> Result<MaintenanceState> {
    MaintenanceState::from_stored(a.state)
        .filter(|_| a.kind == AnnouncementKind::Maintenance)
        .ok_or_else(|| {
            StoreError::Other(format!(
                "announcement {} ({}): state `{}` is not a maintenance state",
                a.id, a.kind, a.state
            ))
        })
}

/// An operator's mark: the new state, its mail to the subscribers, the timers recomputed;
/// the row saved. `Err(Refused)` (nothing written) when the state does not allow it.
pub fn mark(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    action: Action,
    text: Option<&str>,
    now: DateTime<Utc>,
) -> Result<std::result::Result<usize, Refused>> {
    let to = match state::apply(state_of(a)?, action) {
        Ok(to) => to,
        Err(refused) => return Ok(Err(refused)),
    };
    a.state = to.stored();
    if !to.is_open() {
        a.closed_at = Some(now);
    }
    let kind = match action {
        Action::Start => UpdateKind::Started,
        Action::Finish { .. } => UpdateKind::Finished,
        Action::Cancel => UpdateKind::Cancelled,
    };
    let sent = mail_subscribers(tx, pipeline, registry, a, kind, text, now)?;
    a.next_due_at = next_due(a, now);
    tx.announce().save_announcement(a)?;
    Ok(Ok(sent))
}

/// Fires the steps of a maintenance whose timer is due at `now` (the tick's dispatch calls
/// this inside its transaction): the subscribers' reminder, the agent team's reminders when
/// the planned start or end passed without a mark; then sets the next timer and saves the
/// row. Returns the number of mails written.
pub fn fire(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    now: DateTime<Utc>,
) -> Result<usize> {
    let st = state_of(a)?;
    let Some(s) = schedule_of(a) else {
        a.next_due_at = None;
        tx.announce().save_announcement(a)?;
        return Ok(0);
    };
    let mut sent = sent_of(a, &s);
    let mut mails = 0;
    for step in state::due(st, &s, sent, now) {
        mails += match step {
            Step::Reminder => {
                mail_subscribers(tx, pipeline, registry, a, UpdateKind::Reminder, None, now)?
            }
            Step::StartOverdue | Step::EndOverdue => {
                mail_agents(pipeline, registry, tx, a, st, step, now)?
            }
        };
        sent.mark(step);
    }
    a.next_due_at = state::next_due(st, &s, sent, now);
    tx.announce().save_announcement(a)?;
    Ok(mails)
}

/// The lists a maintenance went to, as the registry has them now (a list removed since is
/// left out).
fn lists_of(registry: &Registry, row: &AnnouncementRow) -> Vec<Arc<ListDef>> {
    row.lists
        .iter()
        .filter_map(|name| registry.list(name).cloned())
        .collect()
}

/// The schedule of a maintenance row (`None` without both times).
fn schedule_of(row: &AnnouncementRow) -> Option<Schedule> {
    Some(Schedule {
        start: row.starts_at?,
        end: row.ends_at?,
        reminder_before: Duration::seconds(row.reminder_before_secs.unwrap_or(0)),
        communicated_at: row.communicated_at.unwrap_or(row.created_at),
    })
}

/// Which timer steps already fired: the steps are due in time order and each tick fires
/// every step due, so those before the stored `next_due_at` are done (all, when it is
/// cleared).
fn sent_of(row: &AnnouncementRow, s: &Schedule) -> Sent {
    let done = |at: DateTime<Utc>| row.next_due_at.is_none_or(|next| at < next);
    Sent {
        reminder: s.reminder_at().is_none_or(done),
        start_overdue: done(s.start),
        end_overdue: done(s.end),
    }
}

/// The row's next timer after the steps already fired, as seen at `now`.
fn next_due(row: &AnnouncementRow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = schedule_of(row)?;
    let st = MaintenanceState::from_stored(row.state)?;
    state::next_due(st, &s, sent_of(row, &s), now)
}

/// The agent teams of the platform's customers' plans (each once), or the registry's first
/// agent team when none of them has one.
fn agent_teams(registry: &Registry, platform: &str) -> Vec<String> {
    let mut teams: Vec<String> = registry
        .customers_of(platform)
        .iter()
        .filter_map(|c| c.plan.agent_team.clone())
        .collect();
    teams.sort();
    teams.dedup();
    if teams.is_empty() {
        teams.extend(registry.any_agent_team());
    }
    teams
}

/// The agent team's reminder that a planned start or end passed without a mark.
fn mail_agents(
    pipeline: &Pipeline,
    registry: &Registry,
    tx: &mut dyn WriteTx,
    row: &AnnouncementRow,
    st: MaintenanceState,
    step: Step,
    now: DateTime<Utc>,
) -> Result<usize> {
    let teams = agent_teams(registry, &row.platform);
    if teams.is_empty() {
        tracing::warn!(
            maintenance = %row.reference(),
            "planned {} passed without a mark, and no plan has an agent_team to remind",
            if step == Step::StartOverdue { "start" } else { "end" }
        );
        return Ok(0);
    }
    let calendar = lists_of(registry, row)
        .first()
        .map(|l| l.calendar.clone())
        .unwrap_or_else(|| Arc::new(crate::calendar::Calendar::Always));
    let mailer = pipeline.mailer();
    let when = |at: Option<DateTime<Utc>>| {
        at.map(|t| Lang::En.datetime(&calendar, t))
            .unwrap_or_default()
    };
    let notice = Notice::MaintenanceOverdue(MaintenanceOverdue {
        reference: row.reference(),
        platform: row.platform.clone(),
        impact: row.impact.clone(),
        start: when(row.starts_at),
        end: when(row.ends_at),
        overdue: if step == Step::StartOverdue {
            "start"
        } else {
            "end"
        }
        .into(),
        state: st.as_str().into(),
        support_name: mailer.support_name(),
    });
    for team in &teams {
        mailer
            .send(
                tx,
                Letter {
                    notice: &notice,
                    lang: "en",
                    to: team,
                    to_name: None,
                    ticket: None,
                    inbound_id: None,
                    answers: None,
                    automatic: Automatic::Generated,
                    from_name: None,
                    attachments: &[],
                    to_staff: true,
                },
                now,
            )
            .map_err(store_error)?;
    }
    Ok(teams.len())
}

/// The subscribers' mail of `kind` for this maintenance (one outbox row per confirmed
/// subscriber of its lists, with the list headers and threaded to the first notice), and
/// its `announcement_updates` row; returns how many were written.
fn mail_subscribers(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    kind: UpdateKind,
    text: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mail = Mail {
        kind,
        text: text.unwrap_or_default(),
    };
    fanout::send(tx, pipeline, registry, a, &mail, now)
}

fn store_error(e: crate::mailer::MailError) -> StoreError {
    match e {
        crate::mailer::MailError::Store(e) => e,
        e => StoreError::Other(e.to_string()),
    }
}
