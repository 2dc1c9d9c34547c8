//! `/api/v1/lists` (issue 10, admin scope): the same operations as `ticketgate lists`,
//! `subscribers`, `subscribe` and `unsubscribe`, over `services::lists`.

use super::{ApiError, ApiResult, Caller, RouteDoc, bad_query, json};
use crate::http::Shared;
use crate::services::lists;
use crate::store::Scope;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use serde::Deserialize;

pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "get",
        path: "/lists",
        scope: Some(Scope::Admin),
        summary: "Distribution lists with their confirmed and pending subscriber counts",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "get",
        path: "/lists/{list}/subscribers",
        scope: Some(Scope::Admin),
        summary: "A list's subscribers (pending and confirmed)",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "post",
        path: "/lists/{list}/subscribers",
        scope: Some(Scope::Admin),
        summary: "Subscribe an address, confirmed at once: {\"address\", \"customer\", \"shared\"}",
        query: &[],
        body: false,
    },
    RouteDoc {
        method: "delete",
        path: "/lists/{list}/subscribers/{address}",
        scope: Some(Scope::Admin),
        summary: "Remove an address from a list",
        query: &[],
        body: false,
    },
];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/lists", get(all))
        .route(
            "/lists/{list}/subscribers",
            get(subscribers).post(subscribe),
        )
        .route("/lists/{list}/subscribers/{address}", delete(unsubscribe))
}

async fn all(State(web): State<Shared>, caller: Caller) -> ApiResult {
    caller.require(Scope::Admin)?;
    json(lists::lists(&web.app).await?)
}

async fn subscribers(
    State(web): State<Shared>,
    caller: Caller,
    Path(list): Path<String>,
) -> ApiResult {
    caller.require(Scope::Admin)?;
    json(lists::subscribers(&web.app, &list).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    address: String,
    customer: String,
    #[serde(default)]
    shared: bool,
}

async fn subscribe(
    State(web): State<Shared>,
    caller: Caller,
    Path(list): Path<String>,
    body: Result<axum::Json<Subscribe>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    caller.require(Scope::Admin)?;
    let axum::Json(b) = body.map_err(bad_query)?;
    json(lists::subscribe(&web.app, &list, &b.address, &b.customer, b.shared).await?)
}

async fn unsubscribe(
    State(web): State<Shared>,
    caller: Caller,
    Path((list, address)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Scope::Admin)?;
    let r: Result<_, ApiError> = lists::unsubscribe(&web.app, &list, &address)
        .await
        .map_err(Into::into);
    json(r?)
}
