//! What a probe's decision does: declare (or draft) an outage, restore it, through the
//! announcement code (`announce::outage`, the same as `services::announce`), each in one
//! write transaction that first looks for an open outage of the probe's platform and
//! service. Writers are serialized (SQLite's single writer, PostgreSQL's advisory lock taken
//! at `BEGIN`), so several instances deciding "down" at once make one outage.
//!
//! - Declaring is skipped when an outage covering the service on the platform is open or
//!   drafted already, whoever declared it (an operator's outage is not announced twice).
//! - Restoring touches only outages a probe declared (`source` `probe:NAME`): an open one is
//!   restored (its notice goes out), a draft nobody confirmed is dismissed (no mail); an
//!   operator's outage is the operator's to restore.

use super::{ProbeAction, ProbeConfig};
use crate::announce::outage::{self, OutageDeclaration};
use crate::app::App;
use crate::store::{
    AnnounceRead, AnnouncementKind, AnnouncementQuery, AnnouncementRow, AnnouncementState, WriteTx,
};
use chrono::{DateTime, Utc};

/// An open outage a probe declared (or drafted), or found open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOutage {
    pub id: i64,
    /// `OUT-000001`.
    pub reference: String,
    pub state: AnnouncementState,
}

impl OpenOutage {
    fn of(a: &AnnouncementRow) -> OpenOutage {
        OpenOutage {
            id: a.id,
            reference: a.reference(),
            state: a.state,
        }
    }
}

/// What declaring did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// This call declared (or drafted) it.
    New(OpenOutage),
    /// One was open already (another instance, an operator, or before a restart): nothing
    /// was done.
    Existing(OpenOutage),
}

impl Declared {
    pub fn outage(&self) -> &OpenOutage {
        match self {
            Declared::New(o) | Declared::Existing(o) => o,
        }
    }
}

/// The `source` of an outage a probe declared.
pub fn source(p: &ProbeConfig) -> String {
    format!("probe:{}", p.name)
}

fn platform(p: &ProbeConfig) -> String {
    p.platform.trim().to_ascii_lowercase()
}

/// Open or drafted outages of `platform` covering `service`, oldest first.
fn covering(
    r: &mut dyn AnnounceRead,
    platform: &str,
    service: &str,
) -> crate::store::Result<Vec<AnnouncementRow>> {
    let mut found: Vec<AnnouncementRow> = r
        .announcements(&AnnouncementQuery {
            platform: Some(platform.to_string()),
            kinds: vec![AnnouncementKind::Outage],
            states: vec![AnnouncementState::Open, AnnouncementState::Draft],
            ..AnnouncementQuery::default()
        })?
        .into_iter()
        .filter(|a| a.services.iter().any(|s| s.eq_ignore_ascii_case(service)))
        .collect();
    found.sort_by_key(|a| a.id);
    Ok(found)
}

/// The open (or drafted) outage covering the probe's service, if any: where a restarted
/// daemon picks up.
pub async fn open(app: &App, p: &ProbeConfig) -> anyhow::Result<Option<OpenOutage>> {
    let (platform, service) = (platform(p), p.service.clone());
    let found = app
        .db
        .read(move |s| covering(s.announce(), &platform, &service))
        .await?;
    Ok(found.first().map(OpenOutage::of))
}

/// Declares (or drafts, per `action`) the outage unless one covering the service is open.
pub async fn declare(app: &App, p: &ProbeConfig) -> anyhow::Result<Declared> {
    let now = app.clock.now();
    let (pipeline, registry) = (app.pipeline.clone(), app.pipeline.registry());
    let d = OutageDeclaration {
        platform: platform(p),
        services: vec![p.service.clone()],
        impact: p.impact.clone(),
        restoration_eta: None,
        update_interval: None,
        draft: p.action == ProbeAction::Draft,
        source: source(p),
    };
    let declared = app
        .db
        .write(move |s| {
            let mut tx = s.write()?;
            if let Some(a) = covering(tx.announce(), &d.platform, &d.services[0])?.first() {
                // Nothing written: the transaction is rolled back when dropped.
                return Ok(Declared::Existing(OpenOutage::of(a)));
            }
            let (a, _) = outage::declare(&mut *tx, &pipeline, &registry, &d, now)?;
            tx.commit()?;
            Ok(Declared::New(OpenOutage::of(&a)))
        })
        .await?;
    Ok(declared)
}

/// Restores (or, a draft, dismisses) the outage a probe declared for the service; `None`
/// when there was none (another instance restored it, or an operator did).
pub async fn restore(app: &App, p: &ProbeConfig) -> anyhow::Result<Option<OpenOutage>> {
    let now = app.clock.now();
    let (pipeline, registry) = (app.pipeline.clone(), app.pipeline.registry());
    let (platform, service) = (platform(p), p.service.clone());
    let text = format!("{} answers normally again (checked by a probe).", p.service);
    let restored = app
        .db
        .write(move |s| {
            let mut tx = s.write()?;
            let mine: Vec<AnnouncementRow> = covering(tx.announce(), &platform, &service)?
                .into_iter()
                .filter(|a| a.source.starts_with("probe:"))
                .collect();
            let mut first = None;
            for mut a in mine {
                match a.state {
                    AnnouncementState::Open => {
                        outage::restore(&mut *tx, &pipeline, &registry, &mut a, Some(&text), now)?;
                    }
                    _ => dismiss_draft(&mut *tx, &mut a, now)?,
                }
                first.get_or_insert(OpenOutage::of(&a));
            }
            tx.commit()?;
            Ok(first)
        })
        .await?;
    Ok(restored)
}

/// A draft nobody confirmed, whose service recovered: dismissed, without mail. (Belongs in
/// `announce::outage` beside `confirm_draft`; kept here until that module offers it.)
fn dismiss_draft(
    tx: &mut dyn WriteTx,
    a: &mut AnnouncementRow,
    now: DateTime<Utc>,
) -> crate::store::Result<()> {
    a.state = AnnouncementState::Dismissed;
    a.closed_at = Some(now);
    a.next_due_at = None;
    tx.announce().save_announcement(a)
}
