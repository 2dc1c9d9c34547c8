//! The subscriber's pages: `/u/TOKEN`, the one-click unsubscribe of every announcement
//! (RFC 8058: a POST with `List-Unsubscribe=One-Click`, no cookie, no login, unsubscribes; a
//! GET only shows a page with a button, so link scanners unsubscribe nobody), and
//! `/s/TOKEN`, the confirmation of a subscription or a removal (GET shows, POST confirms).
//! No JavaScript; requests are rate-limited per client address like the ticket page; any
//! unknown token gets the same 404 page. Tokens are masked in the request log.

use super::Shared;
use super::page::{client_ip, too_many};
use crate::services;
use crate::services::subscriptions::SubscriptionPage;
use crate::subscriptions::apply::Effect;
use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use std::collections::HashMap;
use std::net::SocketAddr;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/u/{token}", get(unsubscribe_page).post(one_click))
        .route("/s/{token}", get(confirmation_page).post(confirm))
}

/// The pages' words in the list's language.
fn words(lang: &str) -> serde_json::Value {
    if lang == "fr" {
        serde_json::json!({
            "lang": "fr", "title": "Abonnement aux annonces", "list": "Liste", "address": "Adresse",
            "unknown": "Ce lien ne mène à aucun abonnement en cours : il a peut-être déjà servi, ou la demande a expiré.",
            "ask_subscribe": "Confirmez-vous l'abonnement de cette adresse à la liste ?",
            "ask_unsubscribe": "Voulez-vous désabonner cette adresse de la liste ?",
            "ask_unsubscribe_shared": "Cette adresse est une liste de diffusion : un message de confirmation lui sera envoyé.",
            "confirm_subscribe": "Confirmer l'abonnement", "confirm_unsubscribe": "Se désabonner",
            "confirmed": "L'abonnement est confirmé.",
            "already_subscribed": "Cette adresse est déjà abonnée.",
            "removed": "L'adresse est désabonnée de la liste.",
            "removal_pending": "Un message de confirmation a été envoyé à cette adresse de diffusion ; le désabonnement se fera à sa confirmation.",
        })
    } else {
        serde_json::json!({
            "lang": "en", "title": "Announcement subscription", "list": "List", "address": "Address",
            "unknown": "This link leads to no current subscription: it may have been used already, or the request lapsed.",
            "ask_subscribe": "Do you confirm the subscription of this address to the list?",
            "ask_unsubscribe": "Do you want to unsubscribe this address from the list?",
            "ask_unsubscribe_shared": "This address is a distribution address: a confirmation will be sent to it.",
            "confirm_subscribe": "Confirm the subscription", "confirm_unsubscribe": "Unsubscribe",
            "confirmed": "The subscription is confirmed.",
            "already_subscribed": "This address is already subscribed.",
            "removed": "The address is unsubscribed from the list.",
            "removal_pending": "A confirmation was sent to this distribution address; it is unsubscribed once it confirms.",
        })
    }
}

fn done_word(effect: Effect) -> &'static str {
    match effect {
        Effect::Confirmed => "confirmed",
        Effect::AlreadySubscribed => "already_subscribed",
        Effect::RemovalPending => "removal_pending",
        _ => "removed",
    }
}

/// The page: the question and its button (`done` = None), or what was done.
fn render(
    web: &Shared,
    found: services::Result<Option<SubscriptionPage>>,
    action: &str,
    one_click: bool,
    done: Option<Effect>,
) -> Response {
    let p = match found {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "subscription page: the service failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response();
        }
    };
    let lang = p.as_ref().map_or("en", |p| p.language.as_str());
    let w = words(lang);
    let status = if p.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut r = web.render(
        "subscription.html",
        context! {
            w => minijinja::value::Serde(&w),
            p => minijinja::value::Serde(&p),
            action => action,
            one_click => one_click,
            done => done.map(done_word),
        },
    );
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        r.headers_mut()
            .insert(name, header::HeaderValue::from_static(value));
    }
    r
}

/// Tokens are short printable ASCII; anything else is not looked up.
fn plausible(token: &str) -> bool {
    (8..=80).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Which page: the one-click unsubscribe (`/u/`) or a confirmation (`/s/`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    OneClick,
    Confirm,
}

impl Which {
    fn path(self, token: &str) -> String {
        match self {
            Which::OneClick => format!("/u/{token}"),
            Which::Confirm => format!("/s/{token}"),
        }
    }
}

/// A GET: the page with its button; reads only.
async fn show(
    web: Shared,
    peer: SocketAddr,
    headers: HeaderMap,
    token: String,
    which: Which,
) -> Response {
    if !web.limiter.allow(client_ip(peer, &headers)) {
        return too_many();
    }
    let found = match (plausible(&token), which) {
        (false, _) => Ok(None),
        (true, Which::OneClick) => {
            services::subscriptions::unsubscribe_page(&web.app, &token).await
        }
        (true, Which::Confirm) => services::subscriptions::confirmation(&web.app, &token).await,
    };
    render(
        &web,
        found,
        &which.path(&token),
        which == Which::OneClick,
        None,
    )
}

/// A POST: what the button does.
async fn act(
    web: Shared,
    peer: SocketAddr,
    headers: HeaderMap,
    token: String,
    which: Which,
) -> Response {
    if !web.limiter.allow(client_ip(peer, &headers)) {
        return too_many();
    }
    let one_click = which == Which::OneClick;
    let done = match (plausible(&token), which) {
        (false, _) => Ok(None),
        (true, Which::OneClick) => services::subscriptions::one_click(&web.app, &token).await,
        (true, Which::Confirm) => services::subscriptions::confirm(&web.app, &token).await,
    };
    match done {
        Ok(Some((effect, p))) => render(&web, Ok(Some(p)), "", one_click, Some(effect)),
        Ok(None) => render(&web, Ok(None), "", one_click, None),
        Err(e) => render(&web, Err(e), "", one_click, None),
    }
}

async fn unsubscribe_page(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    show(web, peer, headers, token, Which::OneClick).await
}

/// RFC 8058: the body must be `List-Unsubscribe=One-Click`; no cookie, no login, no CSRF
/// token (the signed token in the URL is the proof).
async fn one_click(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let one_click = form
        .ok()
        .and_then(|Form(f)| f.get("List-Unsubscribe").cloned())
        .is_some_and(|v| v == "One-Click");
    if !one_click {
        return (
            StatusCode::BAD_REQUEST,
            "a one-click unsubscribe is a POST with the body List-Unsubscribe=One-Click",
        )
            .into_response();
    }
    act(web, peer, headers, token, Which::OneClick).await
}

async fn confirmation_page(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    show(web, peer, headers, token, Which::Confirm).await
}

async fn confirm(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    act(web, peer, headers, token, Which::Confirm).await
}
