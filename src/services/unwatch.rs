//! A watcher leaves a ticket through the link at the end of their copy of its updates
//! (`/w/TOKEN`, [`crate::auth::unwatch`]): the page shows whom and what the link is about
//! (a read), and the form's POST removes the watcher (the same effect as their `#unwatch`
//! reply), checked again on the writer.

use super::Result;
use crate::app::App;
use crate::auth::unwatch::{UnwatchKey, ticket_of};
use serde::Serialize;

/// What an unwatch link is about.
#[derive(Debug, Clone, Serialize)]
pub struct Unwatch {
    pub reference: String,
    pub subject: String,
    /// The watcher the link belongs to.
    pub address: String,
    /// The plan's language (the page's words).
    pub language: String,
}

fn key(app: &App) -> Option<UnwatchKey> {
    app.cfg
        .inbound
        .reply_key
        .as_ref()
        .map(|k| UnwatchKey::new(k.expose().as_bytes()))
}

/// The watcher and ticket `token` names; `None` when it names no current watcher (an
/// unknown or cut token, a watcher who already left, no `inbound.reply_key`). Changes nothing.
pub async fn show(app: &App, token: &str) -> Result<Option<Unwatch>> {
    let (Some(key), Some(id)) = (key(app), ticket_of(token)) else {
        return Ok(None);
    };
    let found = app
        .db
        .read(move |s| {
            let Some((t, _)) = s.ticket_with_articles(id)? else {
                return Ok(None);
            };
            Ok(Some((t, s.ticket_watchers(id)?)))
        })
        .await?;
    let Some((t, watchers)) = found else {
        return Ok(None);
    };
    let Some(address) = key.find(id, token, watchers.iter().map(|w| w.address.as_str())) else {
        return Ok(None);
    };
    Ok(Some(Unwatch {
        reference: app.pipeline.reference(id),
        subject: t.subject.clone(),
        address: address.to_string(),
        language: t.language.clone(),
    }))
}

/// Removes the watcher `token` names from its ticket, as their `#unwatch` reply would:
/// they get none of its mail from now on, and a later Cc does not bring them back. `None`
/// when the token names no current watcher (nothing changed).
pub async fn remove(app: &App, token: &str) -> Result<Option<Unwatch>> {
    let (Some(key), Some(id)) = (key(app), ticket_of(token)) else {
        return Ok(None);
    };
    let token = token.to_string();
    let now = app.clock.now();
    let removed = app
        .db
        .write(move |s| {
            let mut tx = s.write()?;
            let Some(t) = tx.ticket(id)? else {
                return Ok(None);
            };
            let watchers = tx.watchers(id)?;
            let Some(address) = key
                .find(id, &token, watchers.iter().map(|w| w.address.as_str()))
                .map(str::to_string)
            else {
                return Ok(None);
            };
            tx.remove_watcher(id, &address, &address, now)?;
            tx.commit()?;
            Ok(Some((t, address)))
        })
        .await?;
    let Some((t, address)) = removed else {
        return Ok(None);
    };
    let reference = app.pipeline.reference(id);
    tracing::info!(ticket = %reference, watcher = %address, "watcher unsubscribed (link)");
    Ok(Some(Unwatch {
        reference,
        subject: t.subject,
        address,
        language: t.language,
    }))
}
