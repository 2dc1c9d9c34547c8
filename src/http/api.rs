//! The JSON API under `/api/v1`: bearer tokens with a scope (`read` < `agent` < `admin`),
//! handlers that only call [`crate::services`], errors as `application/problem+json`
//! (RFC 9457) with the status of the error's kind. `/api/v1/openapi.json` is built from
//! [`ROUTES`], the same table the router is checked against (ADR 0003).

mod lists;

use super::Shared;
use crate::services::tickets::{AgentAction, TicketDetail};
use crate::services::web::{OutboxFilter, TicketFilter};
use crate::services::{self, ErrorKind, ServiceError};
use crate::store::{ApiTokenRow, Scope};
use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// An error as `application/problem+json`.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn boxed(status: StatusCode, detail: impl Into<String>) -> Box<Response> {
    Box::new(problem(status, detail))
}

/// The status of a service error's kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A service error as a response.
pub struct ApiError(pub Box<Response>);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = status_of(e.kind());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "api: a service failed");
        }
        ApiError(boxed(status, e.to_string()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        *self.0
    }
}

type ApiResult = Result<Response, ApiError>;

/// The caller's token, checked: live, and its scope. Taken from `Authorization: Bearer` (or
/// the ops cookie, for the pages).
pub struct Caller(pub ApiTokenRow);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.scope >= scope {
            Ok(())
        } else {
            Err(ApiError(boxed(
                StatusCode::FORBIDDEN,
                format!(
                    "this token's scope is `{}`; this needs `{}`",
                    self.0.scope, scope
                ),
            )))
        }
    }

    /// Who acts, as recorded on the ticket.
    pub fn author(&self) -> String {
        format!("api:{}", self.0.name)
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Looks the token up; a problem response when there is none, it is unknown or revoked.
pub async fn authenticate(web: &Shared, token: Option<String>) -> Result<Caller, ApiError> {
    let unauthorized = || {
        let mut r = problem(
            StatusCode::UNAUTHORIZED,
            "a live API token is needed: Authorization: Bearer TOKEN (ticketgate api-token create)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        ApiError(Box::new(r))
    };
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 200) else {
        return Err(unauthorized());
    };
    match services::web::check_token(&web.app, &token).await? {
        Some(row) => Ok(Caller(row)),
        None => Err(unauthorized()),
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, web: &Shared) -> Result<Self, Self::Rejection> {
        authenticate(web, bearer(&parts.headers)).await
    }
}

/// One route of the API: what the OpenAPI document says about it.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Option<Scope>,
    pub summary: &'static str,
    /// Query parameters (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// Whether it takes a JSON body (the agent action).
    pub body: bool,
}

const TICKET_QUERY: &[(&str, &str)] = &[
    ("status", "canonical status, e.g. open, resolved"),
    ("customer", "customer id"),
    ("severity", "1 to 4"),
    ("updated_since", "RFC 3339 instant"),
    ("cursor", "next_cursor of the previous page"),
    ("limit", "1 to 500, default 50"),
];

const OUTBOX_QUERY: &[(&str, &str)] = &[
    ("kind", "kind of mail, e.g. acknowledgement"),
    ("recipient", "address"),
    (
        "state",
        "pending, sending, retry, sent, failed, dead, suppressed",
    ),
    ("ticket", "ticket reference"),
    ("from", "created at or after (RFC 3339)"),
    ("to", "created before (RFC 3339)"),
    ("cursor", "next_cursor of the previous page"),
    ("limit", "1 to 500, default 50"),
];

/// Every route of the API, for the OpenAPI document.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "get",
        path: "/tickets",
        scope: Some(Scope::Read),
        summary: "Tickets, newest first, filtered, paginated by cursor",
        query: TICKET_QUERY,
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/tickets/{reference}",
        scope: Some(Scope::Read),
        summary: "One ticket with its articles (internal notes for agent scope only)",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "post",
        path: "/tickets/{reference}/actions",
        scope: Some(Scope::Agent),
        summary: "An agent's action: {\"action\": status|severity|reply|note|resolve|close, \"value\", \"reason\", \"text\"}",
        query: &[],
        body: true,
    },
    RouteDoc {
        method: "get",
        path: "/tickets/{reference}/sla",
        scope: Some(Scope::Read),
        summary: "The ticket's first-response clock and escalations",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/outbox",
        scope: Some(Scope::Read),
        summary: "Outbound mail, newest first, filtered, paginated by cursor",
        query: OUTBOX_QUERY,
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/outbox/{id}",
        scope: Some(Scope::Read),
        summary: "One outbound mail with its headers, body and attempts",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "post",
        path: "/outbox/{id}/retry",
        scope: Some(Scope::Admin),
        summary: "Send failed or dead mail again",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/quarantine",
        scope: Some(Scope::Read),
        summary: "Inbound mail that made no ticket change, with the reason",
        query: &[("limit", "1 to 500, default 50")],
        body: false,
    },
    RouteDoc {
        method: "post",
        path: "/quarantine/{id}/replay",
        scope: Some(Scope::Admin),
        summary: "Process a quarantined mail again",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/reports/{customer}",
        scope: Some(Scope::Read),
        summary: "A customer's KPI report for a period of at most a year (JSON; CSV with format=csv or Accept: text/csv)",
        query: &[
            (
                "from",
                "first day, YYYY-MM-DD (default: 29 days before `to`)",
            ),
            ("to", "last day, YYYY-MM-DD (default: today)"),
            ("format", "json (default) or csv"),
        ],
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/announcements",
        scope: Some(Scope::Read),
        summary: "Announcements (outages, maintenance, releases, information), newest first, each with its mails; paginated by cursor",
        query: &[
            ("platform", "platform name, e.g. eu"),
            ("kind", "outage, maintenance, release or information"),
            ("state", "e.g. open, restored, scheduled, completed"),
            ("since", "created at or after (RFC 3339)"),
            ("cursor", "next_cursor of the previous page"),
            ("limit", "1 to 500, default 50"),
        ],
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/openapi.json",
        scope: None,
        summary: "This document",
        query: &[],
        body: false,
    },
];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/tickets", get(tickets))
        .route("/tickets/{reference}", get(ticket))
        .route("/tickets/{reference}/actions", post(act))
        .route("/tickets/{reference}/sla", get(sla))
        .route("/outbox", get(outbox))
        .route("/outbox/{id}", get(outbox_message))
        .route("/outbox/{id}/retry", post(outbox_retry))
        .route("/quarantine", get(quarantine))
        .route("/quarantine/{id}/replay", post(replay))
        .route("/reports/{customer}", get(report))
        .route("/announcements", get(announcements))
        .route("/openapi.json", get(openapi))
        .merge(lists::routes())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such API route") })
}

#[derive(Deserialize)]
pub struct ReportQuery {
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    pub format: Option<String>,
}

impl ReportQuery {
    /// The period asked for: `to` defaults to today (UTC), `from` to 29 days before `to`.
    pub fn period(&self, web: &Shared) -> (chrono::NaiveDate, chrono::NaiveDate) {
        let to = self.to.unwrap_or_else(|| web.app.clock.now().date_naive());
        let from = self.from.unwrap_or(to - chrono::Days::new(29));
        (from, to)
    }
}

/// `GET /reports/{customer}`: the KPI report (SPEC §9) as JSON, or CSV.
async fn report(
    State(web): State<Shared>,
    caller: Caller,
    Path(customer): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    caller.require(Scope::Read)?;
    let Query(q) = q.map_err(bad_query)?;
    let accept_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    let csv = match q.format.as_deref() {
        None => accept_csv,
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(bad_query(format!(
                "format `{other}` is not known: use json or csv"
            )));
        }
    };
    let (from, to) = q.period(&web);
    let r = services::reports::report(&web.app, &customer, from, to).await?;
    if csv {
        let disposition = format!("attachment; filename=\"{}\"", r.csv_filename());
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            r.to_csv(),
        )
            .into_response())
    } else {
        json(r)
    }
}

fn json(v: impl serde::Serialize) -> ApiResult {
    Ok(Json(v).into_response())
}

fn bad_query(e: impl std::fmt::Display) -> ApiError {
    ApiError(boxed(StatusCode::BAD_REQUEST, e.to_string()))
}

/// `GET /announcements`: what the status page shows, and more (drafts included), as JSON.
async fn announcements(
    State(web): State<Shared>,
    caller: Caller,
    q: Result<
        Query<services::status::AnnouncementFilter>,
        axum::extract::rejection::QueryRejection,
    >,
) -> ApiResult {
    caller.require(Scope::Read)?;
    let Query(f) = q.map_err(bad_query)?;
    json(services::status::announcements(&web.app, &f).await?)
}

async fn tickets(
    State(web): State<Shared>,
    caller: Caller,
    q: Result<Query<TicketFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    caller.require(Scope::Read)?;
    let Query(f) = q.map_err(bad_query)?;
    json(services::web::tickets(&web.app, &f).await?)
}

/// A ticket as `caller` may see it: internal notes for `agent` and above only.
pub fn visible(mut d: TicketDetail, scope: Scope) -> TicketDetail {
    if scope < Scope::Agent {
        d.articles.retain(|a| a.kind != "note");
    }
    d
}

async fn ticket(
    State(web): State<Shared>,
    caller: Caller,
    Path(reference): Path<String>,
) -> ApiResult {
    caller.require(Scope::Read)?;
    let d = services::tickets::show(&web.app, &reference).await?;
    json(visible(d, caller.0.scope))
}

#[derive(Deserialize)]
struct ActionBody {
    action: String,
    value: Option<String>,
    reason: Option<String>,
    text: Option<String>,
}

async fn act(
    State(web): State<Shared>,
    caller: Caller,
    Path(reference): Path<String>,
    body: Result<Json<ActionBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    caller.require(Scope::Agent)?;
    let Json(b) = body.map_err(|e| ApiError(boxed(StatusCode::BAD_REQUEST, e.body_text())))?;
    let need = |v: Option<String>, what: &str| {
        v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            ApiError(boxed(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("action `{}` needs `{what}`", b.action),
            ))
        })
    };
    let action = match b.action.as_str() {
        "status" => AgentAction::Status(need(b.value.clone(), "value")?),
        "severity" => AgentAction::Severity(need(b.value.clone(), "value")?),
        "reply" => AgentAction::Reply(need(b.text.clone(), "text")?),
        "note" => AgentAction::Note(need(b.text.clone(), "text")?),
        "resolve" => AgentAction::Resolve {
            reason: need(b.reason.clone(), "reason")?,
            text: b.text.clone(),
        },
        "close" => AgentAction::Close {
            reason: need(b.reason.clone(), "reason")?,
            text: b.text.clone(),
        },
        other => {
            return Err(ApiError(boxed(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "`{other}` is not an action: status, severity, reply, note, resolve, close"
                ),
            )));
        }
    };
    let done = services::tickets::act(&web.app, &reference, &caller.author(), &action).await?;
    json(done)
}

async fn sla(
    State(web): State<Shared>,
    caller: Caller,
    Path(reference): Path<String>,
) -> ApiResult {
    caller.require(Scope::Read)?;
    json(services::tickets::sla(&web.app, &reference).await?)
}

async fn outbox(
    State(web): State<Shared>,
    caller: Caller,
    q: Result<Query<OutboxFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    caller.require(Scope::Read)?;
    let Query(f) = q.map_err(bad_query)?;
    json(services::web::outbox(&web.app, &f).await?)
}

fn id_of(s: &str) -> Result<i64, ApiError> {
    s.parse().map_err(|_| {
        ApiError(boxed(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{s}` is not an id"),
        ))
    })
}

async fn outbox_message(
    State(web): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    caller.require(Scope::Read)?;
    json(services::web::outbox_message(&web.app, id_of(&id)?).await?)
}

async fn outbox_retry(
    State(web): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    caller.require(Scope::Admin)?;
    let done = services::outbox::retry(&web.app, &[id_of(&id)?]).await?;
    json(
        done.into_iter()
            .map(|(id, was)| serde_json::json!({ "id": id, "was": was, "now": "pending" }))
            .collect::<Vec<_>>(),
    )
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn quarantine(
    State(web): State<Shared>,
    caller: Caller,
    q: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    caller.require(Scope::Read)?;
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(50).clamp(1, services::web::MAX_PAGE);
    json(services::quarantine::list(&web.app, limit).await?)
}

async fn replay(State(web): State<Shared>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Scope::Admin)?;
    json(services::quarantine::replay(&web.app, id_of(&id)?).await?)
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi_document() -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut paths = Map::new();
    for r in ROUTES.iter().chain(lists::ROUTES) {
        let mut params: Vec<Value> = Vec::new();
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for (name, desc) in r.query {
            params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}}));
        }
        let mut op = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "default": {"description": "An error", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        });
        if let Some(scope) = r.scope {
            op["security"] = json!([{ "bearer": [scope.as_str()] }]);
            op["x-scope"] = json!(scope.as_str());
        }
        if r.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentAction"}}}});
        }
        let entry = paths
            .entry(format!("/api/v1{}", r.path))
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "ticketgate", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {"type": "object", "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"}}},
                "AgentAction": {"type": "object", "required": ["action"], "properties": {
                    "action": {"type": "string", "enum": ["status", "severity", "reply", "note", "resolve", "close"]},
                    "value": {"type": "string"}, "reason": {"type": "string"}, "text": {"type": "string"}}},
            },
        },
    })
}

async fn openapi() -> Response {
    Json(openapi_document()).into_response()
}
