//! The customer's page of a ticket, `/t/TOKEN`: reference, subject, status (the plan's
//! names), severity, the response target and whether it was met, the public articles, in
//! the plan's language. A GET changes nothing; on a resolved ticket two POST forms (with a
//! CSRF token) accept the solution or say it is not solved, doing what the customer's mail
//! would. Any unknown token gets the same 404 page; requests are rate-limited per address.

use super::Shared;
use crate::services;
use crate::store::token_hash;
use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/t/{token}", get(show))
        .route("/t/{token}/accept", post(accept))
        .route("/t/{token}/reject", post(reject))
}

/// The page's words in the plan's language.
fn words(lang: &str) -> serde_json::Value {
    if lang == "fr" {
        serde_json::json!({
            "lang": "fr", "title": "Votre demande", "reference": "Référence", "subject": "Objet",
            "status": "Statut", "severity": "Sévérité", "target": "Délai de première réponse",
            "met": "respecté", "missed": "dépassé", "pending": "en cours", "none": "aucun",
            "history": "Historique", "you": "Vous", "support": "Support",
            "resolved": "Nous avons proposé une solution. Vous convient-elle ?",
            "accept": "J'accepte la solution", "reject": "Ce n'est pas résolu",
            "done": "Merci, votre réponse a été enregistrée.",
            "stale": "Cette demande n'est plus en attente de votre réponse.",
        })
    } else {
        serde_json::json!({
            "lang": "en", "title": "Your request", "reference": "Reference", "subject": "Subject",
            "status": "Status", "severity": "Severity", "target": "First-response target",
            "met": "met", "missed": "missed", "pending": "running", "none": "none",
            "history": "History", "you": "You", "support": "Support",
            "resolved": "We proposed a solution. Does it solve your problem?",
            "accept": "Accept the solution", "reject": "It is not solved",
            "done": "Thank you, your answer is recorded.",
            "stale": "This request is no longer waiting for your answer.",
        })
    }
}

pub(super) fn too_many() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "60")],
        "too many requests: try again in a minute",
    )
        .into_response()
}

fn not_found(web: &Shared) -> Response {
    let mut r = web.render(
        "not_found.html",
        context! { w => minijinja::value::Serde(words("en")) },
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// Tokens are 32 hex digits; anything else is unknown (after the same lookup).
fn plausible(token: &str) -> bool {
    token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn render(web: &Shared, token: &str, notice: Option<&str>) -> Response {
    // The lookup is done for every token, well-formed or not: the same work, the same 404.
    let found = services::web::ticket_page(&web.app, token).await;
    let found = match found {
        Ok(f) if plausible(token) => f,
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, "ticket page: the store failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response();
        }
    };
    let Some((_, page)) = found else {
        return not_found(web);
    };
    let csrf = web.csrf(&token_hash(token));
    let w = words(&page.language);
    let notice = notice.and_then(|n| w.get(n)).cloned();
    let mut r = web.render(
        "ticket.html",
        context! {
            w => minijinja::value::Serde(&w),
            t => minijinja::value::Serde(&page),
            csrf => csrf,
            token => token,
            notice => minijinja::value::Serde(&notice),
        },
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The client's address for the rate limit: the peer, or — when the peer is a reverse proxy
/// on this host (loopback) — the last address it put in `X-Forwarded-For`. Anyone else's
/// `X-Forwarded-For` is ignored (it could name any address).
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if !peer.ip().is_loopback() {
        return peer.ip();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer.ip())
}

async fn show(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if !web.limiter.allow(client_ip(peer, &headers)) {
        return too_many();
    }
    render(&web, &token, None).await
}

#[derive(Deserialize)]
struct AnswerForm {
    csrf: String,
}

async fn answer(
    web: Shared,
    client: IpAddr,
    token: String,
    form: AnswerForm,
    accept: bool,
) -> Response {
    if !web.limiter.allow(client) {
        return too_many();
    }
    let found = match services::web::ticket_page(&web.app, &token).await {
        Ok(Some((id, _))) if plausible(&token) => id,
        Ok(_) => return not_found(&web),
        Err(e) => {
            tracing::error!(error = %e, "ticket page: the store failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response();
        }
    };
    if !web.check_csrf(&token_hash(&token), &form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "the form is out of date: reload the page",
        )
            .into_response();
    }
    let notice = match services::web::customer_answer(&web.app, found, accept).await {
        Ok(_) => "done",
        Err(services::ServiceError::Conflict(_)) => "stale",
        Err(e) => {
            tracing::error!(error = %e, "ticket page: the answer could not be recorded");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable: try again",
            )
                .into_response();
        }
    };
    let mut r = render(&web, &token, Some(notice)).await;
    if r.status() == StatusCode::OK {
        // Post/redirect/get would lose the notice; the page is shown as of now.
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    r
}

async fn accept(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Response {
    answer(web, client_ip(peer, &headers), token, form, true).await
}

async fn reject(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Response {
    answer(web, client_ip(peer, &headers), token, form, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_a_local_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert_eq!(
            client_ip(local, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(remote, &h), remote.ip());
        assert_eq!(client_ip(local, &HeaderMap::new()), local.ip());
    }
}
