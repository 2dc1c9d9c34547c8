//! A watcher's unwatch link, `/w/TOKEN` ([`crate::auth::unwatch`]): the GET shows which
//! ticket and address the link is about, with a button, and changes nothing (link scanners
//! open links); the button's POST removes the watcher. No login and no cookie: the token in
//! the path is the proof (it is signed, and only that watcher's copy carries it), so the
//! form needs no CSRF token of its own. Rate-limited per address like the ticket page; an
//! unknown token gets a 404 page.

use super::Shared;
use super::page::{client_ip, too_many};
use crate::services;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;
use std::net::SocketAddr;

pub fn routes() -> Router<Shared> {
    Router::new().route("/w/{token}", get(show).post(remove))
}

/// The page's words in the plan's language.
fn words(lang: &str) -> serde_json::Value {
    if lang == "fr" {
        serde_json::json!({
            "lang": "fr", "title": "Ne plus suivre cette demande",
            "ask": "Ne plus recevoir les nouvelles de cette demande à l'adresse",
            "button": "Ne plus suivre",
            "done": "C'est fait : cette adresse ne recevra plus les nouvelles de cette demande.",
            "gone": "Ce lien ne correspond à aucune personne en copie de la demande : soit vous ne la suivez déjà plus, soit le lien n'a pas été copié en entier.",
        })
    } else {
        serde_json::json!({
            "lang": "en", "title": "Stop following this request",
            "ask": "Stop receiving the updates of this request at",
            "button": "Stop following",
            "done": "Done: this address no longer receives the updates of this request.",
            "gone": "This link belongs to nobody copied on a request: either you already stopped following it, or the link was not copied whole.",
        })
    }
}

fn page(web: &Shared, found: Option<services::unwatch::Unwatch>, done: bool) -> Response {
    let lang = found.as_ref().map_or("en", |u| u.language.as_str());
    let mut r = web.render(
        "unwatch.html",
        context! {
            w => minijinja::value::Serde(words(lang)),
            u => minijinja::value::Serde(&found),
            done => done,
        },
    );
    if found.is_none() && r.status() == StatusCode::OK {
        *r.status_mut() = StatusCode::NOT_FOUND;
    }
    for (k, v) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        r.headers_mut()
            .insert(k, header::HeaderValue::from_static(v));
    }
    r
}

fn unavailable(e: services::ServiceError) -> Response {
    tracing::error!(error = %e, "unwatch link: the store failed");
    (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response()
}

/// The GET (`remove`: false) and the POST (true): the same limit, lookup and page.
async fn answer(
    web: Shared,
    peer: SocketAddr,
    headers: HeaderMap,
    token: String,
    remove: bool,
) -> Response {
    if !web.limiter.allow(client_ip(peer, &headers)) {
        return too_many();
    }
    let found = if remove {
        services::unwatch::remove(&web.app, &token).await
    } else {
        services::unwatch::show(&web.app, &token).await
    };
    match found {
        Ok(found) => page(&web, found, remove),
        Err(e) => unavailable(e),
    }
}

async fn show(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    answer(web, peer, headers, token, false).await
}

async fn remove(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    answer(web, peer, headers, token, true).await
}
