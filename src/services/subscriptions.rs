//! The subscriber's web pages (`/s/TOKEN`: confirm a subscription or a removal; `/u/TOKEN`:
//! one-click unsubscribe, RFC 8058): what a GET shows (read only) and what a POST does, in
//! one write transaction with the mail it causes ([`crate::subscriptions::apply`]).

use super::{Result, ServiceError};
use crate::announce::token as unsubscribe_token;
use crate::app::App;
use crate::subscriptions::apply::{Ctx, Effect};
use crate::subscriptions::token::{self, Purpose};
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

fn unavailable(what: &str) -> ServiceError {
    ServiceError::Mail(format!("{what}: no [announcements] key is configured"))
}

/// `GET /s/TOKEN`: the request a confirmation token names, when it is ours and current.
/// Changes nothing.
pub async fn confirmation(app: &App, token: &str) -> Result<Option<SubscriptionPage>> {
    let key = confirm_key(&app.cfg).ok_or_else(|| unavailable("confirmation"))?;
    let Some(claimed) = token::read(token) else {
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

/// `POST /s/TOKEN`: confirms (a pending subscription becomes confirmed, or the subscriber is
/// removed). `None` for a token that names nothing current.
pub async fn confirm(app: &App, token: &str) -> Result<Option<(Effect, SubscriptionPage)>> {
    let key = confirm_key(&app.cfg).ok_or_else(|| unavailable("confirmation"))?;
    let Some(claimed) = token::read(token) else {
        return Ok(None);
    };
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
            let done = ctx.confirm(tx.as_mut(), &claimed);
            match done {
                Ok(d) => {
                    tx.commit()?;
                    Ok(Ok(d))
                }
                Err(e) => Ok(Err(e)),
            }
        })
        .await?
        .map_err(|e| ServiceError::Mail(e.to_string()))?;
    Ok(match (done.effect, done.list, done.address) {
        (Effect::UnknownToken, _, _) | (_, None, _) | (_, _, None) => None,
        (effect, Some(list), Some(address)) => {
            let action = if effect == Effect::Removed {
                Action::Unsubscribe
            } else {
                Action::Subscribe
            };
            Some((effect, page(app, list, address, action, false)))
        }
    })
}

/// `GET /u/TOKEN`: the subscriber an unsubscribe token names. Changes nothing.
pub async fn unsubscribe_page(app: &App, token: &str) -> Result<Option<SubscriptionPage>> {
    let key = unsubscribe_key(app).ok_or_else(|| unavailable("unsubscribe"))?;
    let Some(id) = unsubscribe_token::verify(&key, token) else {
        return Ok(None);
    };
    let row = app.db.read(move |s| s.announce().subscriber(id)).await?;
    Ok(row.map(|r| page(app, r.list, r.address, Action::Unsubscribe, r.shared)))
}

/// `POST /u/TOKEN` (`List-Unsubscribe=One-Click`): removes the subscriber, or — a shared
/// distribution address — sends it a confirmation instead.
pub async fn one_click(app: &App, token: &str) -> Result<Option<(Effect, SubscriptionPage)>> {
    let ukey = unsubscribe_key(app).ok_or_else(|| unavailable("unsubscribe"))?;
    let key = confirm_key(&app.cfg).ok_or_else(|| unavailable("unsubscribe"))?;
    let Some(id) = unsubscribe_token::verify(&ukey, token) else {
        return Ok(None);
    };
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
            match ctx.one_click(tx.as_mut(), id) {
                Ok(d) => {
                    tx.commit()?;
                    Ok(Ok(d))
                }
                Err(e) => Ok(Err(e)),
            }
        })
        .await?
        .map_err(|e| ServiceError::Mail(e.to_string()))?;
    Ok(match (done.effect, done.list, done.address) {
        (Effect::UnknownToken, _, _) | (_, None, _) | (_, _, None) => None,
        (effect, Some(list), Some(address)) => Some((
            effect,
            page(
                app,
                list,
                address,
                Action::Unsubscribe,
                effect == Effect::RemovalPending,
            ),
        )),
    })
}
