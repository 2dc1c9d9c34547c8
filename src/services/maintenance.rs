//! Maintenance announcements (issue 10, OX "Maintenance Communication"): `schedule`
//! (`MNT-000001`; planned maintenance obeys the notice rule in each target list's calendar,
//! emergency maintenance skips it and is announced at once), `start`, `finish` and `cancel`
//! (the operator's marks, each mailed to the subscribers of the platform's maintenance
//! lists). The work inside the transaction is [`crate::announce::maintenance`]; its timers
//! fire from the tick. Every mail is written in the transaction of the change.

use super::{Result, ServiceError};
use crate::announce::ListType;
use crate::announce::maintenance::state::Action;
use crate::announce::maintenance::{self as core, NewMaintenance};
use crate::app::App;
use crate::store::{AnnouncementKind, AnnouncementRow, AnnouncementState};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// What `maintenance schedule` asks for.
#[derive(Debug, Clone)]
pub struct ScheduleRequest {
    pub platform: String,
    /// RFC 3339.
    pub start: String,
    pub end: String,
    pub impact: String,
    pub emergency: bool,
}

/// A maintenance as the commands print it.
#[derive(Debug, Clone, Serialize)]
pub struct Maintenance {
    pub id: i64,
    pub reference: String,
    pub platform: String,
    pub state: AnnouncementState,
    pub emergency: bool,
    pub lists: Vec<String>,
    pub impact: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// When it was scheduled, and when its notice went to the outbox.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub communicated_at: Option<DateTime<Utc>>,
    /// Subscribers the last mail was written for.
    pub recipients: usize,
    /// The next timer (reminder, or the agent team's overdue reminder).
    pub next_due_at: Option<DateTime<Utc>>,
}

impl Maintenance {
    fn of(row: &AnnouncementRow, recipients: usize) -> Maintenance {
        Maintenance {
            id: row.id,
            reference: row.reference(),
            platform: row.platform.clone(),
            state: row.state,
            emergency: row.emergency,
            lists: row.lists.clone(),
            impact: row.impact.clone(),
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            scheduled_at: row.scheduled_at,
            communicated_at: row.communicated_at,
            recipients,
            next_due_at: row.next_due_at,
        }
    }
}

fn rfc3339(field: &str, text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ServiceError::Invalid(format!(
                "--{field} `{text}` is not an RFC 3339 instant ({e}); write e.g. \
                 2026-12-09T22:00:00+01:00"
            ))
        })
}

/// The configured reminder lead (`announcements.reminder_before`, default 24 h; zero: none).
fn reminder_before(app: &App) -> Duration {
    Duration::from_std(app.cfg.announcements.reminder_before).unwrap_or(Duration::hours(24))
}

/// Schedules a maintenance on the platform's maintenance lists and writes its notice to every
/// confirmed subscriber, in one transaction. Planned maintenance is refused (nothing written)
/// unless its start is 3 business days ahead in every list's calendar; the refusal names the
/// earliest allowed start.
pub async fn schedule(app: &App, req: ScheduleRequest) -> Result<Maintenance> {
    let now = app.clock.now();
    let start = rfc3339("start", &req.start)?;
    let end = rfc3339("end", &req.end)?;
    if end <= start {
        return Err(ServiceError::Invalid(format!(
            "--end {} is not after --start {}",
            req.end, req.start
        )));
    }
    let impact = req.impact.trim().to_string();
    if impact.is_empty() {
        return Err(ServiceError::Invalid(
            "--impact is empty: say what the customers will notice".into(),
        ));
    }
    let platform = req.platform.trim().to_ascii_lowercase();
    let lists = app
        .pipeline
        .registry()
        .lists_of(&platform, ListType::Maintenance);
    if lists.is_empty() {
        return Err(ServiceError::Invalid(format!(
            "platform `{platform}` has no maintenance list: add a [lists.NAME] with type = \
             \"maintenance\" and platform = \"{platform}\" to the registry"
        )));
    }
    if !req.emergency {
        let refusals = core::notice_refusals(&lists, now, start);
        if !refusals.is_empty() {
            return Err(ServiceError::Rejected(refusals));
        }
    }
    let m = NewMaintenance {
        platform,
        start,
        end,
        impact,
        emergency: req.emergency,
        reminder_before: reminder_before(app),
    };
    let pipeline = app.pipeline.clone();
    let (row, sent) = app
        .db
        .write(move |s| {
            // A batch: the fan-out's outbox rows go out as one set on PostgreSQL (ADR 0009).
            let mut tx = s.write_batch()?;
            let registry = pipeline.registry();
            let done = core::schedule(tx.as_mut(), &pipeline, &registry, &lists, &m, now)?;
            tx.commit()?;
            Ok(done)
        })
        .await?;
    Ok(Maintenance::of(&row, sent))
}

/// `maintenance start ID`: the start mail to the subscribers.
pub async fn start(app: &App, reference: &str) -> Result<Maintenance> {
    mark(app, reference, Action::Start, None).await
}

/// `maintenance finish ID --success|--failed [TEXT]`: the end mail, saying whether it
/// succeeded.
pub async fn finish(
    app: &App,
    reference: &str,
    success: bool,
    text: Option<String>,
) -> Result<Maintenance> {
    mark(app, reference, Action::Finish { success }, text).await
}

/// `maintenance cancel ID [TEXT]`: the cancellation mail.
pub async fn cancel(app: &App, reference: &str, text: Option<String>) -> Result<Maintenance> {
    mark(app, reference, Action::Cancel, text).await
}

async fn mark(
    app: &App,
    reference: &str,
    action: Action,
    text: Option<String>,
) -> Result<Maintenance> {
    let id = super::announce::announcement_id(reference, AnnouncementKind::Maintenance)?;
    let reference = reference.to_string();
    let now = app.clock.now();
    let pipeline = app.pipeline.clone();
    let text = text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let (row, sent) = app
        .db
        .write(move |s| {
            let mut tx = s.write_batch()?;
            let Some(mut row) = tx.announce().announcement(id)? else {
                return Ok(Err(ServiceError::NotFound(format!(
                    "no maintenance {reference}"
                ))));
            };
            if row.kind != AnnouncementKind::Maintenance {
                return Ok(Err(ServiceError::NotFound(format!(
                    "{reference} is an announcement of kind {}, not a maintenance",
                    row.kind
                ))));
            }
            let registry = pipeline.registry();
            let marked = core::mark(
                tx.as_mut(),
                &pipeline,
                &registry,
                &mut row,
                action,
                text.as_deref(),
                now,
            )?;
            match marked {
                Ok(sent) => {
                    tx.commit()?;
                    Ok(Ok((row, sent)))
                }
                // Dropped: rolled back, nothing written.
                Err(refused) => Ok(Err(ServiceError::Conflict(format!(
                    "{reference}: {refused}"
                )))),
            }
        })
        .await??;
    Ok(Maintenance::of(&row, sent))
}
