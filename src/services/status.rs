//! The public status page (issue 10): per platform, the open outages with their updates,
//! the maintenance scheduled or in progress, and what was announced in the last 90 days;
//! the same as an Atom feed. Drafted and dismissed outages are never shown (a probe's draft
//! waits for an operator). Only what an announcement says to its subscribers is public:
//! not its lists, its source, its pending text or its Message-ID.

use super::Result;
use crate::app::App;
use crate::store::{
    AnnouncementKind, AnnouncementQuery, AnnouncementRow, AnnouncementState, AnnouncementUpdateRow,
    UpdateKind,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far back the page and the feed go.
pub const HISTORY_DAYS: i64 = 90;

/// What the page shows of one announcement.
#[derive(Debug, Clone, Serialize)]
pub struct PublicAnnouncement {
    /// `OUT-000001`, `MNT-000001`…
    pub reference: String,
    pub kind: AnnouncementKind,
    pub state: AnnouncementState,
    /// `""`: sent to named lists, not one platform.
    pub platform: String,
    pub title: String,
    pub services: Vec<String>,
    pub impact: String,
    /// Release notes, an informational announcement's text.
    pub body: String,
    pub emergency: bool,
    /// Outage: since; maintenance: planned start.
    pub starts_at: Option<DateTime<Utc>>,
    /// Outage: restored at; maintenance: planned end.
    pub ends_at: Option<DateTime<Utc>>,
    pub restoration_eta: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Its last mail, else its creation.
    pub updated_at: DateTime<Utc>,
    /// Its mails, oldest first.
    pub updates: Vec<PublicUpdate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublicUpdate {
    pub at: DateTime<Utc>,
    pub kind: UpdateKind,
    pub text: String,
}

/// One platform's part of the page.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformStatus {
    /// `""` for announcements to named lists only.
    pub platform: String,
    pub open_outages: Vec<PublicAnnouncement>,
    /// Scheduled or in progress, soonest first.
    pub maintenance: Vec<PublicAnnouncement>,
    /// Everything else of the last 90 days, newest first.
    pub history: Vec<PublicAnnouncement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusPage {
    pub generated_at: DateTime<Utc>,
    pub platforms: Vec<PlatformStatus>,
}

impl StatusPage {
    /// Every announcement on the page, most recently updated first (the feed's order).
    pub fn entries(&self) -> Vec<&PublicAnnouncement> {
        let mut v: Vec<&PublicAnnouncement> = self
            .platforms
            .iter()
            .flat_map(|p| {
                p.open_outages
                    .iter()
                    .chain(&p.maintenance)
                    .chain(&p.history)
            })
            .collect();
        v.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then(b.reference.cmp(&a.reference))
        });
        v
    }

    /// The newest change on the page (the feed's `updated`), else when it was made.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.entries()
            .first()
            .map_or(self.generated_at, |a| a.updated_at)
    }
}

fn public(a: AnnouncementRow, updates: Vec<AnnouncementUpdateRow>) -> PublicAnnouncement {
    PublicAnnouncement {
        reference: a.reference(),
        kind: a.kind,
        state: a.state,
        platform: a.platform,
        title: a.title,
        services: a.services,
        impact: a.impact,
        body: a.body,
        emergency: a.emergency,
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        restoration_eta: a.restoration_eta,
        created_at: a.created_at,
        updated_at: a.last_mail_at.unwrap_or(a.created_at),
        updates: updates
            .into_iter()
            .map(|u| PublicUpdate {
                at: u.at,
                kind: u.kind,
                text: u.text,
            })
            .collect(),
    }
}

/// Never on the page: an outage not declared (yet, or ever).
fn is_public(a: &AnnouncementRow) -> bool {
    !matches!(
        a.state,
        AnnouncementState::Draft | AnnouncementState::Dismissed
    )
}

/// The page as of now: current outages and maintenance whatever their age, and every
/// announcement created in the last [`HISTORY_DAYS`] days; every platform of the registry
/// (its lists and customers) has its section, announced or not.
pub async fn page(app: &App) -> Result<StatusPage> {
    let now = app.clock.now();
    let since = now - Duration::days(HISTORY_DAYS);
    let rows = app
        .db
        .read(move |s| {
            let current = s.announce().announcements(&AnnouncementQuery {
                states: vec![
                    AnnouncementState::Open,
                    AnnouncementState::Scheduled,
                    AnnouncementState::InProgress,
                ],
                ..AnnouncementQuery::default()
            })?;
            let recent = s.announce().announcements(&AnnouncementQuery {
                since: Some(since),
                ..AnnouncementQuery::default()
            })?;
            let mut by_id = BTreeMap::new();
            for a in current.into_iter().chain(recent).filter(is_public) {
                by_id.entry(a.id).or_insert(a);
            }
            by_id
                .into_values()
                .map(|a| {
                    let updates = s.announce().announcement_updates(a.id)?;
                    Ok(public(a, updates))
                })
                .collect::<crate::store::Result<Vec<_>>>()
        })
        .await?;
    let mut platforms: BTreeMap<String, PlatformStatus> = app
        .pipeline
        .registry()
        .platforms()
        .into_iter()
        .map(|p| {
            (
                p.clone(),
                PlatformStatus {
                    platform: p,
                    open_outages: Vec::new(),
                    maintenance: Vec::new(),
                    history: Vec::new(),
                },
            )
        })
        .collect();
    for a in rows {
        let p = platforms
            .entry(a.platform.clone())
            .or_insert_with(|| PlatformStatus {
                platform: a.platform.clone(),
                open_outages: Vec::new(),
                maintenance: Vec::new(),
                history: Vec::new(),
            });
        match (a.kind, a.state) {
            (AnnouncementKind::Outage, AnnouncementState::Open) => p.open_outages.push(a),
            (
                AnnouncementKind::Maintenance,
                AnnouncementState::Scheduled | AnnouncementState::InProgress,
            ) => p.maintenance.push(a),
            _ => p.history.push(a),
        }
    }
    let mut platforms: Vec<PlatformStatus> = platforms.into_values().collect();
    for p in &mut platforms {
        p.open_outages.sort_by_key(|a| (a.starts_at, a.created_at));
        p.maintenance.sort_by_key(|a| (a.starts_at, a.created_at));
        p.history.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then(b.reference.cmp(&a.reference))
        });
    }
    Ok(StatusPage {
        generated_at: now,
        platforms,
    })
}

/// `GET /api/v1/announcements` filters, as written in a query string.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AnnouncementFilter {
    pub platform: Option<String>,
    /// `outage`, `maintenance`, `release`, `information`.
    pub kind: Option<String>,
    /// `open`, `restored`, `scheduled`…
    pub state: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

fn one_of<T: Copy>(
    what: &str,
    v: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<Vec<T>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Vec::new()),
        Some(s) => parse(s).map(|k| vec![k]).ok_or_else(|| {
            super::ServiceError::Invalid(format!(
                "{what}: `{s}` is not known; use one of {}",
                all.iter().map(|&k| name(k)).collect::<Vec<_>>().join(", ")
            ))
        }),
    }
}

/// Announcements, newest first, filtered, one page (each with its mails), for the API.
pub async fn announcements(
    app: &App,
    f: &AnnouncementFilter,
) -> Result<super::web::Page<super::announce::AnnouncementView>> {
    let limit = f.limit.unwrap_or(50).clamp(1, super::web::MAX_PAGE);
    let q = AnnouncementQuery {
        platform: f
            .platform
            .as_deref()
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty()),
        kinds: one_of(
            "kind",
            f.kind.as_deref(),
            AnnouncementKind::parse,
            AnnouncementKind::ALL,
            AnnouncementKind::as_str,
        )?,
        states: one_of(
            "state",
            f.state.as_deref(),
            AnnouncementState::parse,
            AnnouncementState::ALL,
            AnnouncementState::as_str,
        )?,
        since: match f.since.as_deref().filter(|s| !s.is_empty()) {
            Some(v) => Some(super::web::instant("since", v)?),
            None => None,
        },
        before_id: match f.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                super::ServiceError::Invalid(format!("`{c}` is not a cursor this API gave"))
            })?),
            None => None,
        },
        limit,
    };
    let items = super::announce::announcements(app, q).await?;
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|a| a.announcement.id.to_string()))
        .flatten();
    Ok(super::web::Page { items, next_cursor })
}
