//! Outages inside one write transaction: declare (or draft), confirm a draft, record an
//! operator's update, restore, and fire the update timer. Each change and the mail it owes
//! subscribers commit together ([`fanout::send`]). The services and the tick call these.

use super::fanout::{self, Mail};
use crate::pipeline::Pipeline;
use crate::registry::{ListType, Registry};
use crate::store::{
    AnnouncementKind, AnnouncementRow, AnnouncementState, Result, StoreError, UpdateKind, WriteTx,
};
use chrono::{DateTime, Utc};

/// An outage to declare (from an operator, or a probe).
#[derive(Debug, Clone)]
pub struct OutageDeclaration {
    /// Lower-case platform name (`eu`).
    pub platform: String,
    /// `IMAP`, `Webmail`, …
    pub services: Vec<String>,
    pub impact: String,
    pub restoration_eta: Option<DateTime<Utc>>,
    /// Between two updates; `None`: `announcements.update_interval`.
    pub update_interval: Option<chrono::Duration>,
    /// A draft waits for an operator ([`confirm_draft`]): no mail, no timer.
    pub draft: bool,
    /// `operator`, or `probe:NAME`.
    pub source: String,
}

/// Declares (or drafts) an outage: the row, and for a declared one its notice to the
/// platform's incident lists and its first update timer. Returns the saved row and the
/// number of mails written.
pub fn declare(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    d: &OutageDeclaration,
    now: DateTime<Utc>,
) -> Result<(AnnouncementRow, usize)> {
    let state = if d.draft {
        AnnouncementState::Draft
    } else {
        AnnouncementState::Open
    };
    let mut a = AnnouncementRow::new(AnnouncementKind::Outage, state, &d.platform, now);
    a.lists = registry
        .lists_of(&d.platform, ListType::Incident)
        .iter()
        .map(|l| l.name.clone())
        .collect();
    a.services = d.services.clone();
    a.impact = d.impact.clone();
    a.title = d.services.join(", ");
    a.source = d.source.clone();
    a.starts_at = Some(now);
    a.scheduled_at = Some(now);
    a.restoration_eta = d.restoration_eta;
    a.update_interval_secs = Some(
        d.update_interval
            .unwrap_or_else(|| {
                chrono::Duration::from_std(pipeline.config().announcements.update_interval)
                    .unwrap_or(chrono::Duration::hours(1))
            })
            .num_seconds()
            .max(60),
    );
    a.id = tx.announce().insert_announcement(&a)?;
    let sent = if d.draft {
        0
    } else {
        open(tx, pipeline, registry, &mut a, now)?
    };
    Ok((a, sent))
}

/// A draft becomes a declared outage: its notice goes out now, its timer starts. Returns
/// the number of mails written (so do [`fire`] and [`restore`]).
pub fn confirm_draft(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    now: DateTime<Utc>,
) -> Result<usize> {
    expect(a, AnnouncementState::Draft)?;
    a.state = AnnouncementState::Open;
    a.scheduled_at = Some(now);
    open(tx, pipeline, registry, a, now)
}

fn open(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    now: DateTime<Utc>,
) -> Result<usize> {
    let text = a.impact.clone();
    let sent = fanout::send(
        tx,
        pipeline,
        registry,
        a,
        &Mail {
            kind: UpdateKind::Declared,
            text: &text,
        },
        now,
    )?;
    a.next_due_at = Some(now + interval(a));
    tx.announce().save_announcement(a)?;
    Ok(sent)
}

/// Records the operator's text (and a new estimate), sent with the next update.
pub fn note(
    tx: &mut dyn WriteTx,
    a: &mut AnnouncementRow,
    text: &str,
    restoration_eta: Option<DateTime<Utc>>,
) -> Result<()> {
    expect(a, AnnouncementState::Open)?;
    let text = text.trim();
    if !text.is_empty() {
        a.pending_text = Some(text.to_string());
    }
    if restoration_eta.is_some() {
        a.restoration_eta = restoration_eta;
    }
    tx.announce().save_announcement(a)
}

/// The update timer fired: the pending operator text, or "still ongoing"; the next timer.
pub fn fire(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    now: DateTime<Utc>,
) -> Result<usize> {
    if a.state != AnnouncementState::Open {
        a.next_due_at = None;
        tx.announce().save_announcement(a)?;
        return Ok(0);
    }
    let (kind, text) = match a.pending_text.take() {
        Some(t) => (UpdateKind::Update, t),
        None => (UpdateKind::Ongoing, String::new()),
    };
    let sent = fanout::send(tx, pipeline, registry, a, &Mail { kind, text: &text }, now)?;
    // The next one an interval after this one was due (not after a late tick), but never
    // in the past: a tick that was down for hours sends one update, not a burst.
    let base = a.next_due_at.unwrap_or(now);
    let mut next = base + interval(a);
    if next <= now {
        next = now + interval(a);
    }
    a.next_due_at = Some(next);
    tx.announce().save_announcement(a)?;
    Ok(sent)
}

/// Restores an open outage: the restoration notice (with its duration), no more timer.
pub fn restore(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    text: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize> {
    expect(a, AnnouncementState::Open)?;
    a.state = AnnouncementState::Restored;
    a.ends_at = Some(now);
    a.closed_at = Some(now);
    a.next_due_at = None;
    a.pending_text = None;
    let text = text.unwrap_or("").trim().to_string();
    let sent = fanout::send(
        tx,
        pipeline,
        registry,
        a,
        &Mail {
            kind: UpdateKind::Restored,
            text: &text,
        },
        now,
    )?;
    tx.announce().save_announcement(a)?;
    // Tickets linked to it at intake get the restoration notice in this transaction.
    crate::incident_intake::notify_restored(tx, pipeline, registry, a, &text, now)?;
    Ok(sent)
}

/// How long an outage lasted (or has lasted at `now`).
pub fn duration(a: &AnnouncementRow, now: DateTime<Utc>) -> chrono::Duration {
    let start = a.starts_at.unwrap_or(a.created_at);
    a.ends_at.unwrap_or(now) - start
}

fn interval(a: &AnnouncementRow) -> chrono::Duration {
    chrono::Duration::seconds(a.update_interval_secs.unwrap_or(3600).max(60))
}

fn expect(a: &AnnouncementRow, state: AnnouncementState) -> Result<()> {
    if a.kind != AnnouncementKind::Outage || a.state != state {
        return Err(StoreError::Other(format!(
            "{} is {} ({}), not a{} {state} outage",
            a.reference(),
            a.state,
            a.kind,
            if state == AnnouncementState::Open {
                "n"
            } else {
                ""
            }
        )));
    }
    Ok(())
}
