//! `/api/v1/lists` (admin scope): the registry's distribution lists with their subscriber
//! counts, a list's subscribers, and the operator's subscribe (confirmed at once) and
//! unsubscribe — the same services as `ticketgate lists`, `subscribers`, `subscribe`,
//! `unsubscribe`. Listed in [`super::api::ROUTES`] for the OpenAPI document.

use super::Shared;
use super::api::{ApiError, Caller, problem};
use crate::services;
use crate::store::Scope;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/lists", get(lists))
        .route(
            "/lists/{list}/subscribers",
            get(subscribers).post(subscribe),
        )
        .route("/lists/{list}/subscribers/{address}", delete(unsubscribe))
}

type ApiResult = Result<Response, ApiError>;

async fn lists(State(web): State<Shared>, caller: Caller) -> ApiResult {
    caller.require(Scope::Admin)?;
    Ok(Json(services::lists::lists(&web.app).await?).into_response())
}

async fn subscribers(
    State(web): State<Shared>,
    caller: Caller,
    Path(list): Path<String>,
) -> ApiResult {
    caller.require(Scope::Admin)?;
    Ok(Json(services::lists::subscribers(&web.app, &list).await?).into_response())
}

/// `{"address": "ops@acme.example", "customer": "acme", "shared": false}`.
#[derive(Deserialize)]
struct SubscribeBody {
    address: String,
    customer: String,
    #[serde(default)]
    shared: bool,
}

async fn subscribe(
    State(web): State<Shared>,
    caller: Caller,
    Path(list): Path<String>,
    body: Result<Json<SubscribeBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    caller.require(Scope::Admin)?;
    let Json(b) =
        body.map_err(|e| ApiError(Box::new(problem(StatusCode::BAD_REQUEST, e.body_text()))))?;
    let row =
        services::lists::subscribe(&web.app, &list, &b.address, &b.customer, b.shared).await?;
    tracing::info!(list = %row.list, subscriber = row.id, by = %caller.author(), "subscribed through the API");
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn unsubscribe(
    State(web): State<Shared>,
    caller: Caller,
    Path((list, address)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Scope::Admin)?;
    let row = services::lists::unsubscribe(&web.app, &list, &address).await?;
    tracing::info!(list = %row.list, subscriber = row.id, by = %caller.author(), "unsubscribed through the API");
    Ok(Json(row).into_response())
}
