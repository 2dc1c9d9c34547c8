//! The subscriber's web pages (`/s/TOKEN`: confirm a subscription or a removal; `/u/TOKEN`:
//! one-click unsubscribe, RFC 8058): what a GET shows (read only) and what a POST does, in
//! one write transaction with the mail it causes ([`crate::subscriptions::apply`]). Without
//! `[announcements] key` no token can be checked: every page is the unknown-token page.

use super::{Result, ServiceError};
use crate::announce::token as unsubscribe_token;
use crate::app::App;
use crate::mailer::MailError;
use crate::store::WriteTx;
use crate::subscriptions::apply::{Ctx, Done, Effect};
use crate::subscriptions::token::{self, ConfirmKey, Purpose};
use crate::subscriptions::{Action, confirm_key};
use serde::Serialize;

/// What a page shows about one subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionPage {
    pub list: String,
    pub address: String,
    /// The page's language: the list's.
    pub language: String,
    /// What the button does.
    pub action: Action,
    /// The words of the question and the button (keys of the page's words).
    pub question: &'static str,
    pub button: &'static str,
}

fn page(
    app: &App,
    list: String,
    address: String,
    action: Action,
    shared: bool,
) -> SubscriptionPage {
    let language = app.pipeline.registry().list(&list).map_or_else(
        || app.cfg.tickets.default_language.clone(),
        |l| l.language.clone(),
    );
    let (question, button) = match (action, shared) {
        (Action::Subscribe, _) => ("ask_subscribe", "confirm_subscribe"),
        (Action::Unsubscribe, false) => ("ask_unsubscribe", "confirm_unsubscribe"),
        (Action::Unsubscribe, true) => ("ask_unsubscribe_shared", "confirm_unsubscribe"),
    };
    SubscriptionPage {
        list,
        address,
        language,
        action,
        question,
        button,
    }
}

/// The key of the one-click links (`[announcements] key`).
fn unsubscribe_key(app: &App) -> Option<unsubscribe_token::UnsubscribeKey> {
    app.cfg
        .announcements
        .key
        .as_ref()
        .map(|k| unsubscribe_token::UnsubscribeKey::new(k.expose().as_bytes()))
}

/// `GET /s/TOKEN`: the request a confirmation token names, when it is ours and current.
/// Changes nothing.
pub async fn confirmation(app: &App, token: &str) -> Result<Option<SubscriptionPage>> {
    let (Some(key), Some(claimed)) = (confirm_key(&app.cfg), token::read(token)) else {
        return Ok(None);
    };
    let now = app.clock.now();
    let id = claimed.subscriber;
    let row = app.db.read(move |s| s.announce().subscriber(id)).await?;
    Ok(row
        .filter(|r| crate::subscriptions::apply::current(&key, &claimed, r, now))
        .map(|r| {
            let action = match claimed.purpose {
                Purpose::Subscribe => Action::Subscribe,
                Purpose::Remove => Action::Unsubscribe,
            };
            page(app, r.list, r.address, action, false)
        }))
}

/// Runs `act` in one write transaction (its mail in the same one), committed when it
/// succeeds; `None` when the token named nothing current.
async fn write(
    app: &App,
    key: ConfirmKey,
    act: impl FnOnce(&Ctx<'_>, &mut dyn WriteTx) -> std::result::Result<Done, MailError>
    + Send
    + 'static,
) -> Result<Option<Done>> {
    let p = app.pipeline.clone();
    let now = app.clock.now();
    let done = app
        .db
        .write(move |s| {
            let registry = p.registry();
            let mailer = p.mailer();
            let mut tx = s.write()?;
            let ctx = Ctx {
                mailer: &mailer,
                registry: &registry,
                key: &key,
                now,
            };
            match act(&ctx, tx.as_mut()) {
                Ok(d) => {
                    tx.commit()?;
                    Ok(Ok(d))
                }
                Err(e) => Ok(Err(e)),
            }
        })
        .await?
        .map_err(|e| ServiceError::Mail(e.to_string()))?;
    Ok(
        (done.effect != Effect::UnknownToken && done.list.is_some() && done.address.is_some())
            .then_some(done),
    )
}

/// `POST /s/TOKEN`: confirms (a pending subscription becomes confirmed, or the subscriber is
/// removed). `None` for a token that names nothing current.
pub async fn confirm(app: &App, token: &str) -> Result<Option<(Effect, SubscriptionPage)>> {
    let (Some(key), Some(claimed)) = (confirm_key(&app.cfg), token::read(token)) else {
        return Ok(None);
    };
    let done = write(app, key, move |ctx, tx| ctx.confirm(tx, &claimed)).await?;
    Ok(done.map(|d| {
        let action = if d.effect == Effect::Removed {
            Action::Unsubscribe
        } else {
            Action::Subscribe
        };
        let (list, address) = (d.list.unwrap_or_default(), d.address.unwrap_or_default());
        (d.effect, page(app, list, address, action, false))
    }))
}

/// `GET /u/TOKEN`: the subscriber an unsubscribe token names. Changes nothing.
pub async fn unsubscribe_page(app: &App, token: &str) -> Result<Option<SubscriptionPage>> {
    let Some(id) = unsubscribe_key(app).and_then(|k| unsubscribe_token::verify(&k, token)) else {
        return Ok(None);
    };
    let row = app.db.read(move |s| s.announce().subscriber(id)).await?;
    Ok(row.map(|r| page(app, r.list, r.address, Action::Unsubscribe, r.shared)))
}

/// `POST /u/TOKEN` (`List-Unsubscribe=One-Click`): removes the subscriber, or — a shared
/// distribution address — sends it a confirmation instead.
pub async fn one_click(app: &App, token: &str) -> Result<Option<(Effect, SubscriptionPage)>> {
    let (Some(ukey), Some(key)) = (unsubscribe_key(app), confirm_key(&app.cfg)) else {
        return Ok(None);
    };
    let Some(id) = unsubscribe_token::verify(&ukey, token) else {
        return Ok(None);
    };
    let done = write(app, key, move |ctx, tx| ctx.one_click(tx, id)).await?;
    Ok(done.map(|d| {
        let shared = d.effect == Effect::RemovalPending;
        let (list, address) = (d.list.unwrap_or_default(), d.address.unwrap_or_default());
        (
            d.effect,
            page(app, list, address, Action::Unsubscribe, shared),
        )
    }))
}
