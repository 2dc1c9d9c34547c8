//! The operators' pages under `/ops/`: a login form takes an API token (scope `read` at
//! least) and keeps it in an HttpOnly, SameSite=Strict cookie; then the outbound log with
//! filters and each message's headers, body and attempts, the quarantine (replay for
//! `admin`, a POST form with a CSRF token), and the tickets.

use super::Shared;
use super::api::{Caller, authenticate};
use crate::services;
use crate::services::web::{OutboxFilter, TicketFilter};
use crate::store::{Scope, token_hash};
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

const COOKIE: &str = "tg_ops";

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ops/outbox") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/outbox", get(outbox))
        .route("/outbox/{id}", get(message))
        .route("/quarantine", get(quarantine))
        .route("/quarantine/{id}/replay", post(replay))
        .route("/tickets", get(tickets))
        .route("/reports", get(report))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The session's caller, or the login page.
async fn session(web: &Shared, headers: &HeaderMap) -> Result<(Caller, String), Response> {
    let token = cookie_token(headers);
    match authenticate(web, token.clone()).await {
        Ok(c) => Ok((c, token.unwrap_or_default())),
        Err(_) => Err(Redirect::to("/ops/login").into_response()),
    }
}

async fn login_form(State(web): State<Shared>) -> Response {
    web.render("ops_login.html", context! { error => false })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    /// Where to go once logged in: an `/ops/` path of ours (default the outbound log).
    next: Option<String>,
}

/// `next` when it is one of our `/ops/` pages (never another site: no open redirect).
fn next_page(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ops/")
                && !n.starts_with("/ops//")
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-.?&=%+".contains(&b)) =>
        {
            n
        }
        _ => "/ops/outbox",
    }
}

async fn login(State(web): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let token = f.token.trim().to_string();
    match authenticate(&web, Some(token.clone())).await {
        Ok(_) => {
            let secure = if web.secure_cookies { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={token}; Path=/ops; HttpOnly; SameSite=Strict{secure}");
            // A page that moves on (rather than a redirect): the next request is made from
            // our own page, so the SameSite=Strict cookie goes with it whatever the form's origin.
            // `next` holds only URL-safe characters (no quote, no `<`): safe in the attributes.
            let next = next_page(f.next.as_deref()).replace('&', "&amp;");
            let mut r = (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!(
                    "<!doctype html><meta http-equiv=\"refresh\" content=\"0;url={next}\">\
                     <title>Logged in</title><p>Logged in: <a href=\"{next}\">continue</a></p>"
                ),
            )
                .into_response();
            if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(_) => {
            let mut r = web.render("ops_login.html", context! { error => true });
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

async fn logout() -> Response {
    let mut r = Redirect::to("/ops/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "tg_ops=; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

fn failed(web: &Shared, e: services::ServiceError) -> Response {
    let status = super::api::status_of(e.kind());
    let mut r = web.render(
        "ops_outbox.html",
        context! { error => e.to_string(), rows => Vec::<()>::new(), f => context!{} },
    );
    *r.status_mut() = status;
    r
}

async fn outbox(
    State(web): State<Shared>,
    headers: HeaderMap,
    Query(f): Query<OutboxFilter>,
) -> Response {
    if let Err(r) = session(&web, &headers).await {
        return r;
    }
    match services::web::outbox(&web.app, &f).await {
        Ok(page) => web.render(
            "ops_outbox.html",
            context! {
                rows => minijinja::value::Serde(&page.items),
                next => page.next_cursor,
                f => context! {
                    kind => f.kind, recipient => f.recipient, state => f.state,
                    ticket => f.ticket, from => f.from, to => f.to,
                },
                error => false,
            },
        ),
        Err(e) => failed(&web, e),
    }
}

async fn message(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = session(&web, &headers).await {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such message").into_response();
    };
    match services::web::outbox_message(&web.app, id).await {
        Ok(m) => web.render(
            "ops_message.html",
            context! { m => minijinja::value::Serde(&m) },
        ),
        Err(e) => failed(&web, e),
    }
}

async fn quarantine(State(web): State<Shared>, headers: HeaderMap) -> Response {
    let (caller, token) = match session(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match services::quarantine::list(&web.app, 500).await {
        Ok(rows) => web.render(
            "ops_quarantine.html",
            context! {
                rows => minijinja::value::Serde(&rows),
                admin => caller.0.scope >= Scope::Admin,
                csrf => web.csrf(&token_hash(&token)),
                done => false,
            },
        ),
        Err(e) => failed(&web, e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn replay(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (caller, token) = match session(&web, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if caller.0.scope < Scope::Admin {
        return (StatusCode::FORBIDDEN, "replay needs an admin token").into_response();
    }
    if !web.check_csrf(&token_hash(&token), &f.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "the form is out of date: reload the page",
        )
            .into_response();
    }
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such mail").into_response();
    };
    match services::quarantine::replay(&web.app, id).await {
        Ok(_) => Redirect::to("/ops/quarantine").into_response(),
        Err(e) => failed(&web, e),
    }
}

async fn tickets(
    State(web): State<Shared>,
    headers: HeaderMap,
    Query(f): Query<TicketFilter>,
) -> Response {
    if let Err(r) = session(&web, &headers).await {
        return r;
    }
    match services::web::tickets(&web.app, &f).await {
        Ok(page) => web.render(
            "ops_tickets.html",
            context! {
                rows => minijinja::value::Serde(&page.items),
                next => page.next_cursor,
                f => context! {
                    status => f.status, customer => f.customer,
                    severity => f.severity, updated_since => f.updated_since,
                },
            },
        ),
        Err(e) => failed(&web, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn login_goes_on_only_to_our_own_ops_pages() {
        use super::next_page;
        assert_eq!(next_page(None), "/ops/outbox");
        assert_eq!(
            next_page(Some("/ops/reports?customer=acme&from=2026-01-01")),
            "/ops/reports?customer=acme&from=2026-01-01"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/ops/",
            "/ops//evil.example",
            "/api/v1/tickets",
            "/ops/x\"><script>",
        ] {
            assert_eq!(next_page(Some(bad)), "/ops/outbox", "{bad}");
        }
    }
}

#[derive(Deserialize)]
struct ReportForm {
    customer: Option<String>,
    #[serde(flatten)]
    period: super::api::ReportQuery,
}

/// A customer's KPI report with an inline SVG chart of tickets by severity; without a
/// customer, the form alone.
async fn report(
    State(web): State<Shared>,
    headers: HeaderMap,
    q: Result<Query<ReportForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = session(&web, &headers).await {
        return r;
    }
    let Ok(Query(q)) = q else {
        return web.render(
            "ops_report.html",
            context! { error => "from and to are days: YYYY-MM-DD" },
        );
    };
    let (from, to) = q.period.period(&web);
    let Some(customer) = q.customer.filter(|c| !c.trim().is_empty()) else {
        return web.render(
            "ops_report.html",
            context! { from => from.to_string(), to => to.to_string() },
        );
    };
    match services::reports::report(&web.app, customer.trim(), from, to).await {
        Ok(r) => web.render(
            "ops_report.html",
            context! {
                customer => customer.trim(),
                from => from.to_string(),
                to => to.to_string(),
                report => minijinja::value::Serde(&r),
                bars => minijinja::value::Serde(&r.severity_chart()),
                survey_bars => minijinja::value::Serde(&r.survey_chart()),
            },
        ),
        Err(e) => web.render(
            "ops_report.html",
            context! {
                customer => customer.trim(),
                from => from.to_string(),
                to => to.to_string(),
                error => e.to_string(),
            },
        ),
    }
}
