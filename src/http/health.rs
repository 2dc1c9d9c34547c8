//! `/healthz` (the process answers), `/readyz` (each component's state; 503 when one the
//! configuration needs is down) and `/metrics` (Prometheus, through prometheus-client).

use super::Shared;
use crate::store::{OutboxState, WebStats};
use crate::telemetry::{MailboxLabel, MailboxPhase, StateLabel};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

#[derive(Serialize)]
struct StoreState {
    up: bool,
    error: Option<String>,
}

#[derive(Serialize)]
struct MailboxReady {
    name: String,
    up: bool,
    connected: bool,
    state: MailboxPhase,
    last_sync: Option<DateTime<Utc>>,
    last_sync_age_seconds: Option<i64>,
    uid_validity: Option<u32>,
    last_error: Option<String>,
    token_expiry: Option<DateTime<Utc>>,
    /// The XOAUTH2 token expires within `telemetry::TOKEN_WARNING` (or has expired): mail
    /// still flows, but stops at the next login unless the token is refreshed.
    token_expiring: bool,
}

#[derive(Serialize)]
struct OutboxReady {
    pending: i64,
    oldest_pending_age_seconds: Option<i64>,
    dead: i64,
    failed: i64,
}

#[derive(Serialize)]
struct TimersReady {
    overdue: i64,
}

#[derive(Serialize)]
struct Ready {
    status: &'static str,
    store: StoreState,
    mailboxes: Vec<MailboxReady>,
    outbox: Option<OutboxReady>,
    timers: Option<TimersReady>,
    /// Informational: a customer service's probe failing does not make ticketgate unready.
    probes: Vec<crate::probes::ProbeStatus>,
}

fn count(s: &WebStats, states: &[OutboxState]) -> i64 {
    s.outbox
        .iter()
        .filter(|(st, _)| states.contains(st))
        .map(|(_, n)| n)
        .sum()
}

/// The store's counts, within a few seconds, or why not.
async fn stats(web: &Shared) -> Result<WebStats, String> {
    match tokio::time::timeout(
        Duration::from_secs(5),
        crate::services::web::stats(&web.app),
    )
    .await
    {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

async fn readyz(State(web): State<Shared>) -> Response {
    let now = web.app.clock.now();
    let stats = stats(&web).await;
    let mailboxes: Vec<MailboxReady> = web
        .app
        .telemetry
        .mailboxes()
        .into_iter()
        .map(|m| MailboxReady {
            // A mailbox another instance reads (standby) is not down.
            up: m.connected || m.phase == MailboxPhase::Standby,
            name: m.name,
            connected: m.connected,
            state: m.phase,
            last_sync: m.last_sync,
            last_sync_age_seconds: m.last_sync.map(|t| (now - t).num_seconds().max(0)),
            uid_validity: m.uid_validity,
            last_error: m.last_error,
            token_expiring: m
                .token_expiry
                .is_some_and(|at| at - now < crate::telemetry::TOKEN_WARNING),
            token_expiry: m.token_expiry,
        })
        .collect();
    let ready = stats.is_ok() && mailboxes.iter().all(|m| m.up);
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" },
        store: StoreState {
            up: stats.is_ok(),
            error: stats.as_ref().err().cloned(),
        },
        outbox: stats.as_ref().ok().map(|s| OutboxReady {
            pending: count(
                s,
                &[
                    OutboxState::Pending,
                    OutboxState::Retry,
                    OutboxState::Sending,
                ],
            ),
            oldest_pending_age_seconds: s.oldest_pending.map(|t| (now - t).num_seconds().max(0)),
            dead: count(s, &[OutboxState::Dead]),
            failed: count(s, &[OutboxState::Failed]),
        }),
        timers: stats.as_ref().ok().map(|s| TimersReady {
            overdue: s.timers_overdue,
        }),
        mailboxes,
        probes: web.app.telemetry.probes.all(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(web): State<Shared>) -> Response {
    let now = web.app.clock.now();
    let stats = stats(&web).await;
    let bounces = crate::services::web::bounce_counts(&web.app).await;
    let t = &web.app.telemetry;
    let m = &t.metrics;
    let _one_at_a_time = m.scrape.lock();
    match &bounces {
        Ok(counts) => t.bounce_counts(counts),
        Err(e) => tracing::warn!(error = %e, "metrics: the bounce counts could not be read"),
    }
    if let Ok(s) = &stats {
        for st in OutboxState::ALL {
            if st == OutboxState::Sent {
                continue;
            }
            let n = s
                .outbox
                .iter()
                .find(|(x, _)| *x == st)
                .map_or(0, |(_, n)| *n);
            m.outbox
                .get_or_create(&StateLabel {
                    state: st.as_str().into(),
                })
                .set(n);
        }
        m.outbox_oldest_pending.set(
            s.oldest_pending
                .map_or(0.0, |o| (now - o).num_milliseconds().max(0) as f64 / 1000.0),
        );
        m.timers_overdue.set(s.timers_overdue);
    }
    for mb in t.mailboxes() {
        let label = MailboxLabel {
            mailbox: mb.name.clone(),
        };
        m.mailbox_connected
            .get_or_create(&label)
            .set(i64::from(mb.connected));
        if let Some(at) = mb.last_sync {
            m.mailbox_sync_age
                .get_or_create(&label)
                .set((now - at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        if let Some(at) = mb.token_expiry {
            m.mailbox_token_expiry
                .get_or_create(&label)
                .set((at - now).num_milliseconds() as f64 / 1000.0);
        }
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &m.registry) {
        tracing::error!(error = %e, "metrics could not be encoded");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        )
            .into_response();
    }
    let status = if stats.is_ok() {
        StatusCode::OK
    } else {
        // The process metrics are still worth scraping; the store's gauges are stale.
        tracing::warn!(error = ?stats.err(), "metrics: the store did not answer");
        StatusCode::OK
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
