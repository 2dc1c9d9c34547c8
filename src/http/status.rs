//! The public status page `/status` and its Atom feed `/status/feed.atom` (issue 10):
//! server-rendered from [`services::status::page`], no JavaScript, no login; a GET reads
//! only. Both may be cached for a minute.

use super::Shared;
use crate::services;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::context;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/status", get(page))
        .route("/status/feed.atom", get(feed))
}

fn unavailable(e: services::ServiceError) -> Response {
    tracing::error!(error = %e, "status page: the store failed");
    (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response()
}

fn cache_a_minute(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=60"),
    );
    r
}

async fn page(State(web): State<Shared>) -> Response {
    match services::status::page(&web.app).await {
        Ok(page) => cache_a_minute(web.render(
            "status.html",
            context! { page => minijinja::value::Serde(&page) },
        )),
        Err(e) => unavailable(e),
    }
}

async fn feed(State(web): State<Shared>) -> Response {
    let page = match services::status::page(&web.app).await {
        Ok(p) => p,
        Err(e) => return unavailable(e),
    };
    let title = format!(
        "{} status",
        web.app
            .cfg
            .outbound
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Service".into())
    );
    let rendered = web.templates.get_template("status_feed.xml").and_then(|t| {
        t.render(context! {
            title => title,
            base => web.app.cfg.http.public_url.clone().unwrap_or_default(),
            updated => minijinja::value::Serde(page.updated_at()),
            entries => minijinja::value::Serde(page.entries()),
        })
    });
    match rendered {
        Ok(xml) => cache_a_minute(
            (
                [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
                xml,
            )
                .into_response(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "the status feed could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
