//! One-off announcements in a transaction: a release to the platform's release lists (or
//! its informational lists when it has none), and an informational announcement to one
//! list. Each is recorded (`published`) and fanned out at once.

use super::fanout::{self, Mail};
use crate::pipeline::Pipeline;
use crate::registry::{ListType, Registry};
use crate::store::{
    AnnouncementKind, AnnouncementRow, AnnouncementState, Result, UpdateKind, WriteTx,
};
use chrono::{DateTime, Utc};

/// The lists a release of `platform` goes to: its release lists, or else its informational
/// ones.
pub fn release_lists(registry: &Registry, platform: &str) -> Vec<String> {
    let mut lists = registry.lists_of(platform, ListType::Release);
    if lists.is_empty() {
        lists = registry.lists_of(platform, ListType::Informational);
    }
    lists.iter().map(|l| l.name.clone()).collect()
}

/// Publishes a release: returns the row and the number of mails written.
pub fn release(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    platform: &str,
    version: &str,
    notes: &str,
    now: DateTime<Utc>,
) -> Result<(AnnouncementRow, usize)> {
    let mut a = AnnouncementRow::new(
        AnnouncementKind::Release,
        AnnouncementState::Published,
        platform,
        now,
    );
    a.lists = release_lists(registry, platform);
    a.title = version.to_string();
    a.body = notes.to_string();
    publish(tx, pipeline, registry, a, now)
}

/// Publishes an informational announcement to one list.
pub fn information(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    list: &str,
    subject: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(AnnouncementRow, usize)> {
    let platform = registry
        .list(list)
        .map(|l| l.platform.clone())
        .unwrap_or_default();
    let mut a = AnnouncementRow::new(
        AnnouncementKind::Information,
        AnnouncementState::Published,
        &platform,
        now,
    );
    a.lists = vec![list.to_string()];
    a.title = subject.to_string();
    a.body = body.to_string();
    publish(tx, pipeline, registry, a, now)
}

fn publish(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    mut a: AnnouncementRow,
    now: DateTime<Utc>,
) -> Result<(AnnouncementRow, usize)> {
    a.scheduled_at = Some(now);
    a.starts_at = Some(now);
    a.closed_at = Some(now);
    a.id = tx.announce().insert_announcement(&a)?;
    let sent = fanout::send(
        tx,
        pipeline,
        registry,
        &mut a,
        &Mail {
            kind: UpdateKind::Published,
            text: "",
        },
        now,
    )?;
    tx.announce().save_announcement(&a)?;
    Ok((a, sent))
}
