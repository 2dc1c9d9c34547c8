//! Announcements for operators, probes and the status page: declare (or draft), update,
//! restore outages, confirm drafts; read announcements with their mails.

use super::{Result, ServiceError};
use crate::announce::outage;
pub use crate::announce::outage::OutageDeclaration;
use crate::app::App;
use crate::store::{
    AnnouncementKind, AnnouncementQuery, AnnouncementRow, AnnouncementState, AnnouncementUpdateRow,
    WriteTx,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a change made: the announcement and how many mails went to the outbox.
#[derive(Debug, Clone, Serialize)]
pub struct Announced {
    pub id: i64,
    /// `OUT-000001`
    pub reference: String,
    pub state: AnnouncementState,
    /// Outbox rows written by this change.
    pub recipients: usize,
}

impl Announced {
    fn of(a: &AnnouncementRow, recipients: usize) -> Self {
        Announced {
            id: a.id,
            reference: a.reference(),
            state: a.state,
            recipients,
        }
    }
}

/// Runs `f` in one batch transaction on the store's writer and commits when it returns
/// `Ok(Ok(_))`; an `Ok(Err(_))` (the announcement is not in a state for this change) rolls
/// back. A batch: the outbox rows go out as one set on PostgreSQL (ADR 0009).
async fn in_batch<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut dyn WriteTx) -> crate::store::Result<Result<T>> + Send + 'static,
) -> Result<T> {
    app.db
        .write(move |s| {
            let mut tx = s.write_batch()?;
            let r = f(&mut *tx)?;
            if r.is_ok() {
                tx.commit()?;
            }
            Ok(r)
        })
        .await?
}

/// An announcement with the mails it sent, for the status page and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct AnnouncementView {
    pub reference: String,
    #[serde(flatten)]
    pub announcement: AnnouncementRow,
    pub updates: Vec<AnnouncementUpdateRow>,
}

/// Declares an outage (or drafts it, `draft: true`): its notice goes to the platform's
/// incident lists in the same transaction.
pub async fn declare_outage(app: &App, d: OutageDeclaration) -> Result<Announced> {
    let registry = app.pipeline.registry();
    let mut d = d;
    d.platform = d.platform.trim().to_ascii_lowercase();
    d.services = d
        .services
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut problems = Vec::new();
    if !registry.platforms().contains(&d.platform) && registry.customers_of(&d.platform).is_empty()
    {
        problems.push(format!(
            "no list and no customer of the registry is on platform `{}` (platforms: {})",
            d.platform,
            registry.platforms().join(", ")
        ));
    }
    if d.services.is_empty() {
        problems.push("name the affected services (--services \"IMAP,Webmail\")".into());
    }
    if d.impact.trim().is_empty() {
        problems.push("describe the impact (--impact TEXT)".into());
    }
    if d.update_interval
        .is_some_and(|i| i < chrono::Duration::minutes(1))
    {
        problems.push("the update interval must be at least 1 minute".into());
    }
    if !problems.is_empty() {
        return Err(ServiceError::Rejected(problems));
    }
    let now = app.clock.now();
    let pipeline = app.pipeline.clone();
    let (a, recipients) = in_batch(app, move |tx| {
        Ok(Ok(outage::declare(tx, &pipeline, &registry, &d, now)?))
    })
    .await?;
    tracing::info!(outage = %a.reference(), state = %a.state, recipients, "outage declared");
    Ok(Announced::of(&a, recipients))
}

/// The operator's text for the next update (and a new estimate when given).
pub async fn update_outage(
    app: &App,
    reference: &str,
    text: &str,
    restoration_eta: Option<DateTime<Utc>>,
) -> Result<AnnouncementRow> {
    let id = announcement_id(reference, AnnouncementKind::Outage)?;
    if text.trim().is_empty() && restoration_eta.is_none() {
        return Err(ServiceError::Invalid(
            "give the update's text or a new --restoration-eta".into(),
        ));
    }
    let text = text.to_string();
    let a = app
        .db
        .write(move |s| {
            let mut tx = s.write()?;
            let mut a = match outage_in(&mut *tx, id, AnnouncementState::Open)? {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            outage::note(&mut *tx, &mut a, &text, restoration_eta)?;
            tx.commit()?;
            Ok(Ok(a))
        })
        .await??;
    Ok(a)
}

/// Restores an open outage: the restoration notice, with its duration, goes out.
pub async fn restore_outage(app: &App, reference: &str, text: Option<&str>) -> Result<Announced> {
    let id = announcement_id(reference, AnnouncementKind::Outage)?;
    let text = text.map(str::to_string);
    let now = app.clock.now();
    let (pipeline, registry) = (app.pipeline.clone(), app.pipeline.registry());
    let (a, recipients) = in_batch(app, move |tx| {
        let mut a = match outage_in(tx, id, AnnouncementState::Open)? {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let sent = outage::restore(tx, &pipeline, &registry, &mut a, text.as_deref(), now)?;
        Ok(Ok((a, sent)))
    })
    .await?;
    tracing::info!(outage = %a.reference(), recipients, "outage restored");
    Ok(Announced::of(&a, recipients))
}

/// An operator confirms a drafted outage: it is declared now.
pub async fn confirm_draft(app: &App, reference: &str) -> Result<Announced> {
    let id = announcement_id(reference, AnnouncementKind::Outage)?;
    let now = app.clock.now();
    let (pipeline, registry) = (app.pipeline.clone(), app.pipeline.registry());
    let (a, recipients) = in_batch(app, move |tx| {
        let mut a = match outage_in(tx, id, AnnouncementState::Draft)? {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let sent = outage::confirm_draft(tx, &pipeline, &registry, &mut a, now)?;
        Ok(Ok((a, sent)))
    })
    .await?;
    Ok(Announced::of(&a, recipients))
}

/// Announces release `version` of `platform` to its release lists (or its informational
/// lists when it has none).
pub async fn announce_release(
    app: &App,
    platform: &str,
    version: &str,
    notes: &str,
) -> Result<Announced> {
    let registry = app.pipeline.registry();
    let platform = platform.trim().to_ascii_lowercase();
    let mut problems = Vec::new();
    if crate::announce::publish::release_lists(&registry, &platform).is_empty() {
        problems.push(format!(
            "platform `{platform}` has no release list and no informational list (platforms: {})",
            registry.platforms().join(", ")
        ));
    }
    if version.trim().is_empty() {
        problems.push("name the version (--version V)".into());
    }
    if notes.trim().is_empty() {
        problems.push("the release notes are empty".into());
    }
    if !problems.is_empty() {
        return Err(ServiceError::Rejected(problems));
    }
    let now = app.clock.now();
    let pipeline = app.pipeline.clone();
    let (version, notes) = (version.trim().to_string(), notes.to_string());
    let (a, recipients) = in_batch(app, move |tx| {
        Ok(Ok(crate::announce::publish::release(
            tx, &pipeline, &registry, &platform, &version, &notes, now,
        )?))
    })
    .await?;
    tracing::info!(announcement = %a.reference(), recipients, "release announced");
    Ok(Announced::of(&a, recipients))
}

/// An informational announcement to one list (of any type).
pub async fn announce_information(
    app: &App,
    list: &str,
    subject: &str,
    body: &str,
) -> Result<Announced> {
    super::lists::known_list(app, list)?;
    let mut problems = Vec::new();
    if subject.trim().is_empty() {
        problems.push("the subject is empty (--subject S)".to_string());
    }
    if body.trim().is_empty() {
        problems.push("the body is empty".to_string());
    }
    if !problems.is_empty() {
        return Err(ServiceError::Rejected(problems));
    }
    let now = app.clock.now();
    let (pipeline, registry) = (app.pipeline.clone(), app.pipeline.registry());
    let (list, subject, body) = (
        list.to_string(),
        subject.trim().to_string(),
        body.to_string(),
    );
    let (a, recipients) = in_batch(app, move |tx| {
        Ok(Ok(crate::announce::publish::information(
            tx, &pipeline, &registry, &list, &subject, &body, now,
        )?))
    })
    .await?;
    tracing::info!(announcement = %a.reference(), recipients, "announcement sent");
    Ok(Announced::of(&a, recipients))
}

/// One announcement with its mails.
pub async fn announcement(app: &App, reference: &str) -> Result<AnnouncementView> {
    let (kind, id) = crate::announce::reference::parse(reference).ok_or_else(|| {
        ServiceError::Invalid(format!(
            "`{reference}` is not an announcement reference: write e.g. OUT-000001"
        ))
    })?;
    let v = app
        .db
        .read(move |s| {
            let Some(a) = s.announce().announcement(id)? else {
                return Ok(None);
            };
            let updates = s.announce().announcement_updates(id)?;
            Ok(Some(AnnouncementView {
                reference: a.reference(),
                announcement: a,
                updates,
            }))
        })
        .await?;
    match v {
        Some(v) if kind.is_none_or(|k| k == v.announcement.kind) => Ok(v),
        _ => Err(ServiceError::NotFound(format!(
            "no announcement {reference}"
        ))),
    }
}

/// Announcements matching `q` (newest first), each with its mails: the status page, the
/// feed, `/api/v1/announcements`.
pub async fn announcements(app: &App, q: AnnouncementQuery) -> Result<Vec<AnnouncementView>> {
    Ok(app
        .db
        .read(move |s| {
            let rows = s.announce().announcements(&q)?;
            rows.into_iter()
                .map(|a| {
                    let updates = s.announce().announcement_updates(a.id)?;
                    Ok(AnnouncementView {
                        reference: a.reference(),
                        announcement: a,
                        updates,
                    })
                })
                .collect()
        })
        .await?)
}

/// The open outages of a platform, oldest first, each with its mails.
pub async fn open_outages(app: &App, platform: &str) -> Result<Vec<AnnouncementView>> {
    let platform = platform.trim().to_ascii_lowercase();
    Ok(app
        .db
        .read(move |s| {
            let rows = s.announce().open_outages(&platform)?;
            rows.into_iter()
                .map(|a| {
                    let updates = s.announce().announcement_updates(a.id)?;
                    Ok(AnnouncementView {
                        reference: a.reference(),
                        announcement: a,
                        updates,
                    })
                })
                .collect()
        })
        .await?)
}

/// The id of `OUT-000001` (or `1`); a reference of another kind is invalid here.
pub fn announcement_id(reference: &str, kind: AnnouncementKind) -> Result<i64> {
    match crate::announce::reference::parse(reference) {
        Some((None, id)) => Ok(id),
        Some((Some(k), id)) if k == kind => Ok(id),
        _ => Err(ServiceError::Invalid(format!(
            "`{reference}` is not {} reference: write e.g. {}",
            match kind {
                AnnouncementKind::Outage => "an outage",
                AnnouncementKind::Maintenance => "a maintenance",
                AnnouncementKind::Release => "a release",
                AnnouncementKind::Information => "an information",
            },
            crate::announce::reference::reference(kind, 1)
        ))),
    }
}

/// Outage `id` when it is in `state`: `Ok(Err(_))` says why not (not found, another state).
fn outage_in(
    tx: &mut dyn WriteTx,
    id: i64,
    state: AnnouncementState,
) -> crate::store::Result<Result<AnnouncementRow>> {
    let Some(a) = tx.announce().announcement(id)? else {
        return Ok(Err(not_found(id)));
    };
    Ok(expect(&a, AnnouncementKind::Outage, state).map(|()| a))
}

fn not_found(id: i64) -> ServiceError {
    ServiceError::NotFound(format!(
        "no announcement {}",
        crate::announce::reference::reference(AnnouncementKind::Outage, id)
    ))
}

/// The announcement is of `kind` and in `state`, or a conflict saying where it stands.
pub fn expect(a: &AnnouncementRow, kind: AnnouncementKind, state: AnnouncementState) -> Result<()> {
    if a.kind != kind {
        return Err(ServiceError::NotFound(format!(
            "{} is a {}, not an {kind}",
            a.reference(),
            a.kind
        )));
    }
    if a.state != state {
        return Err(ServiceError::Conflict(format!(
            "{} is {}, not {state}",
            a.reference(),
            a.state
        )));
    }
    Ok(())
}
