//! Fan-out: one outbox row per confirmed subscriber of an announcement's lists, written in
//! the transaction that makes the announcement, and one `announcement_updates` row saying
//! what went out and to how many.
//!
//! Who gets a copy: every confirmed subscriber of the announcement's lists, once per address
//! (an address on two of its lists gets one copy, from the first list by name). Skipped: a
//! suppressed address (bounces), and a subscriber of a list the registry no longer has.
//! The per-recipient cap and RFC 3834 rules of automatic replies do not apply: no inbound
//! mail triggers these, each subscriber asked for them (double opt-in or an operator), and
//! one announcement is one mail per subscriber; the rows are not `automatic`, so they do
//! not use up a subscriber's automatic-reply budget for their own tickets.

use super::token::{self, UnsubscribeKey};
use crate::lang::Lang;
use crate::notify::{self, Announcement, Kind, ListMail, Notice};
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::store::{
    AnnouncementKind, AnnouncementRow, NewOutbound, OutboxState, Result, StoreError, UpdateKind,
    WriteTx,
};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// What one mail of an announcement says, besides the announcement itself.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    pub kind: UpdateKind,
    /// The operator's text (an update, a restoration note), or `""`.
    pub text: &'a str,
}

/// The template of a mail; `None`: no template for it (yet).
pub fn notice_kind(kind: AnnouncementKind, update: UpdateKind) -> Option<Kind> {
    use AnnouncementKind as A;
    use UpdateKind as U;
    Some(match (kind, update) {
        (A::Outage, U::Declared) => Kind::OutageDeclared,
        (A::Outage, U::Update | U::Ongoing) => Kind::OutageUpdate,
        (A::Outage, U::Restored) => Kind::OutageRestored,
        (A::Release, U::Published) => Kind::ReleaseAnnouncement,
        (A::Information, U::Published) => Kind::InformationAnnouncement,
        _ => return None,
    })
}

fn notice(kind: Kind, a: Announcement) -> Notice {
    match kind {
        Kind::OutageDeclared => Notice::OutageDeclared(a),
        Kind::OutageUpdate => Notice::OutageUpdate(a),
        Kind::OutageRestored => Notice::OutageRestored(a),
        Kind::ReleaseAnnouncement => Notice::ReleaseAnnouncement(a),
        _ => Notice::InformationAnnouncement(a),
    }
}

/// Whether the mail opens the conversation later mails of the announcement refer to.
fn opens_thread(update: UpdateKind) -> bool {
    matches!(update, UpdateKind::Declared | UpdateKind::Scheduled)
}

/// Sends `mail` about `a` to the confirmed subscribers of `a.lists` and records it; sets
/// `a.communicated_at` (first mail), `a.last_mail_at` and `a.thread_message_id` (first
/// mail), which the caller saves. Returns the number of outbox rows written.
pub fn send(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &mut AnnouncementRow,
    mail: &Mail<'_>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let kind = notice_kind(a.kind, mail.kind).ok_or_else(|| {
        StoreError::Other(format!(
            "{}: no template for a {} mail of a {}",
            a.reference(),
            mail.kind,
            a.kind
        ))
    })?;
    let cfg = pipeline.config();
    let mailer = pipeline.mailer();
    let support_name = mailer.support_name();
    let reference = a.reference();
    let first = opens_thread(mail.kind) && a.thread_message_id.is_none();
    if first {
        a.thread_message_id = Some(notify::thread_root(&reference, &cfg.outbound));
    }
    let root = a.thread_message_id.clone();
    let key = cfg
        .announcements
        .key
        .as_ref()
        .map(|k| UnsubscribeKey::new(k.expose().as_bytes()));
    let public_url = cfg.http.public_url.as_deref();
    let subscribers = tx.announce().confirmed_subscribers(&a.lists)?;
    let mut seen: HashSet<String> = HashSet::with_capacity(subscribers.len());
    let mut sent = 0usize;
    for s in subscribers {
        if !seen.insert(s.address.clone()) {
            continue;
        }
        let Some(list) = registry.list(&s.list) else {
            continue;
        };
        if tx.suppression(&s.address)?.is_some() {
            continue;
        }
        let lang = Lang::or_english(&list.language);
        let time = |t: DateTime<Utc>| lang.datetime(&list.calendar, t);
        let unsubscribe_url = match (&key, public_url) {
            (Some(k), Some(u)) => Some(token::url(u, &token::sign(k, s.id))),
            _ => None,
        };
        let start = a.starts_at.unwrap_or(a.created_at);
        let n = notice(
            kind,
            Announcement {
                reference: reference.clone(),
                list_name: list.name.clone(),
                list_address: list.address.clone(),
                platform: a.platform.clone(),
                title: a.title.clone(),
                services: a.services.join(", "),
                impact: a.impact.clone(),
                text: mail.text.to_string(),
                body: a.body.clone(),
                since: time(start),
                eta: a.restoration_eta.map(time),
                duration: duration_text(lang, a.ends_at.unwrap_or(now) - start),
                starts: a.starts_at.map(time),
                ends: a.ends_at.map(time),
                emergency: a.emergency,
                unsubscribe_url: unsubscribe_url.clone(),
                support_name: support_name.clone(),
            },
        );
        let (subject, body) = mailer
            .templates
            .render(&n, lang.code())
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let own_id = root
            .as_deref()
            .filter(|_| first)
            .map(|r| notify::first_notice_id(r, s.id));
        let thread = root
            .as_deref()
            .filter(|_| !first)
            .map(|r| notify::first_notice_id(r, s.id));
        let mailto = notify::unsubscribe_mailto(&list.address, &list.name);
        let composed = match notify::compose_list(
            &cfg.outbound,
            now,
            &ListMail {
                tag: &reference,
                message_id: own_id.as_deref(),
                to: &s.address,
                list_address: &list.address,
                list_display: &format!("{support_name} ({})", list.name),
                list_id: &list.list_id(),
                unsubscribe_url: unsubscribe_url.as_deref(),
                unsubscribe_mailto: &mailto,
                subject: &subject,
                body: &body,
                thread: thread.as_deref(),
            },
        ) {
            Ok(c) => c,
            Err(notify::NotifyError::BadRecipient(r)) => {
                tracing::warn!(subscriber = s.id, list = %s.list, "not an address lettre can write, skipped: {r}");
                continue;
            }
            Err(e) => return Err(StoreError::Other(e.to_string())),
        };
        tx.enqueue(&NewOutbound {
            ticket_id: None,
            inbound_id: None,
            kind: kind.name(),
            recipient: &s.address,
            subject: &subject,
            message_id: &composed.message_id,
            automatic: false,
            body: &composed.bytes,
            state: OutboxState::Pending,
            note: None,
            now,
        })?;
        sent += 1;
    }
    tx.announce()
        .insert_announcement_update(a.id, now, mail.kind, mail.text, sent as i64)?;
    if a.communicated_at.is_none() {
        a.communicated_at = Some(now);
    }
    a.last_mail_at = Some(now);
    Ok(sent)
}

/// "2 hours 30 minutes" / "2 heures 30 minutes"; "1 day 3 hours"; under a minute: "0 minutes".
pub fn duration_text(lang: Lang, d: chrono::Duration) -> String {
    let mins = d.num_minutes().max(0);
    let (days, hours, minutes) = (mins / 1440, (mins / 60) % 24, mins % 60);
    let unit = |n: i64, en: &str, fr: &str| {
        let s = if n == 1 { "" } else { "s" };
        match lang {
            Lang::En => format!("{n} {en}{s}"),
            Lang::Fr => format!("{n} {fr}{s}"),
        }
    };
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(unit(days, "day", "jour"));
    }
    if hours > 0 {
        parts.push(unit(hours, "hour", "heure"));
    }
    if minutes > 0 || parts.is_empty() {
        parts.push(unit(minutes, "minute", "minute"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_each_language() {
        let d = chrono::Duration::minutes(150);
        assert_eq!(duration_text(Lang::En, d), "2 hours 30 minutes");
        assert_eq!(duration_text(Lang::Fr, d), "2 heures 30 minutes");
        assert_eq!(
            duration_text(Lang::En, chrono::Duration::minutes(1441)),
            "1 day 1 minute"
        );
        assert_eq!(
            duration_text(Lang::En, chrono::Duration::seconds(5)),
            "0 minutes"
        );
    }
}
