//! The web server inside the daemon (axum, `[http] listen`): `/healthz`, `/readyz`,
//! `/metrics` ([`health`]), the JSON API under `/api/v1` ([`api`]), the customer's ticket page
//! `/t/TOKEN` ([`page`]), a watcher's unwatch link `/w/TOKEN` ([`unwatch`]), the public
//! status page `/status` and its Atom feed ([`status`]) and the operators' pages under
//! `/ops/` ([`ops`]).
//!
//! Started as a task of the daemon, stopped by its `CancellationToken` (graceful: requests
//! in flight finish). Request bodies are capped at [`MAX_BODY`], headers at [`MAX_HEADERS`]
//! and [`MAX_HEADER_BYTES`]. Each request is logged in one line with its status and
//! duration; the path is logged without its query and with any token in it masked.

pub mod api;
pub mod health;
pub mod ops;
pub mod page;
pub mod status;
pub mod subscribe;
pub mod unwatch;

use crate::app::App;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Largest request body accepted (forms, API actions).
pub const MAX_BODY: usize = 64 * 1024;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 64;
/// Largest total size of a request's header fields.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What every handler shares.
pub struct Web {
    pub app: App,
    pub templates: minijinja::Environment<'static>,
    /// Random per process: CSRF tokens are derived from it (forms are good until a restart).
    pub secret: String,
    /// Requests per client address on the customer pages.
    pub limiter: RateLimiter,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
}

pub type Shared = Arc<Web>;

impl Web {
    /// A form's CSRF token for `subject` (a ticket's token hash, an ops session).
    pub fn csrf(&self, subject: &str) -> String {
        crate::store::token_hash(&format!("{}:{subject}", self.secret))[..32].to_string()
    }

    pub fn check_csrf(&self, subject: &str, given: &str) -> bool {
        crate::store::constant_time_eq(self.csrf(subject).as_bytes(), given.as_bytes())
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
            }
            Err(e) => {
                tracing::error!(template = name, error = %e, "a web page could not be rendered");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

/// A token bucket per client address: `burst` requests, refilled at `per_minute`.
pub struct RateLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    burst: f64,
    per_sec: f64,
}

impl RateLimiter {
    pub fn new(burst: u32, per_minute: u32) -> RateLimiter {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst),
            per_sec: f64::from(per_minute) / 60.0,
        }
    }

    /// `true` when `ip` may make one more request now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let Ok(mut b) = self.buckets.lock() else {
            return true;
        };
        let now = Instant::now();
        if b.len() > 100_000 {
            // Forget the addresses whose bucket is full again.
            let (burst, rate) = (self.burst, self.per_sec);
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = b.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Names end in .html: minijinja escapes every value for HTML.
    for (name, text) in [
        (
            "layout.html",
            include_str!("../../templates/web/layout.html"),
        ),
        (
            "ticket.html",
            include_str!("../../templates/web/ticket.html"),
        ),
        (
            "status.html",
            include_str!("../../templates/web/status.html"),
        ),
        (
            "status_feed.xml",
            include_str!("../../templates/web/status_feed.xml"),
        ),
        (
            "unwatch.html",
            include_str!("../../templates/web/unwatch.html"),
        ),
        (
            "not_found.html",
            include_str!("../../templates/web/not_found.html"),
        ),
        (
            "ops_login.html",
            include_str!("../../templates/web/ops_login.html"),
        ),
        (
            "ops_outbox.html",
            include_str!("../../templates/web/ops_outbox.html"),
        ),
        (
            "ops_message.html",
            include_str!("../../templates/web/ops_message.html"),
        ),
        (
            "ops_quarantine.html",
            include_str!("../../templates/web/ops_quarantine.html"),
        ),
        (
            "ops_tickets.html",
            include_str!("../../templates/web/ops_tickets.html"),
        ),
        (
            "ops_report.html",
            include_str!("../../templates/web/ops_report.html"),
        ),
        (
            "subscription.html",
            include_str!("../../templates/web/subscription.html"),
        ),
    ] {
        env.add_template(name, text)
            .unwrap_or_else(|e| panic!("built-in web template {name}: {e}"));
    }
    env
}

/// The routes, over the shared state.
pub fn router(app: App) -> Router {
    let secure_cookies = app
        .cfg
        .http
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let secret = crate::store::random_token(32).unwrap_or_else(|_| {
        // Without randomness forms still work, but their tokens are guessable: say so.
        tracing::error!("no randomness for the CSRF secret; forms use a fixed one");
        "ticketgate".into()
    });
    let web: Shared = Arc::new(Web {
        app,
        templates: templates(),
        secret,
        limiter: RateLimiter::new(30, 60),
        secure_cookies,
    });
    Router::new()
        .merge(health::routes())
        .nest("/api/v1", api::routes())
        .merge(page::routes())
        .merge(subscribe::routes())
        .merge(unwatch::routes())
        .merge(status::routes())
        .nest("/ops", ops::routes())
        .fallback(|| async { api::problem(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn(log_and_limit))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(web)
}

/// The path as logged: no query, tokens masked (`/t/…`, the watcher's `/w/…`, and the
/// subscriber's `/u/…`, `/s/…`).
fn loggable(path: &str) -> String {
    for prefix in ["/t/", "/u/", "/s/", "/w/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return match rest.split_once('/') {
                Some((_, tail)) => format!("{prefix}…/{tail}"),
                None => format!("{prefix}…"),
            };
        }
    }
    path.to_string()
}

/// One log line per request; oversized header sections are refused (431).
async fn log_and_limit(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = loggable(req.uri().path());
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let response = if req.headers().len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large",
        )
            .into_response()
    } else {
        next.run(req).await
    };
    let mut response = response;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        ms = format!("{:.1}", start.elapsed().as_secs_f64() * 1000.0),
        "http request"
    );
    response
}

/// A bound listener, ready to serve.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
}

/// Binds `[http] listen` and prints the address it got (port 0 asks for a free one). `None`
/// when the web server is disabled, or when the address cannot be bound (logged: the daemon
/// runs on without it).
pub async fn bind(app: &App) -> Option<Server> {
    let addr = app.cfg.http.listen?;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %addr, error = %e,
                "http: cannot listen (http.listen); the daemon runs without its web server: health checks will fail");
            return None;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "http listening");
    println!("http: listening on http://{local}");
    Some(Server {
        listener,
        router: router(app.clone()),
    })
}

impl Server {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop`; requests in flight are finished.
    pub async fn serve(self, stop: CancellationToken) {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(self.listener, service)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "http server stopped");
        }
    }
}

/// A response with no body and `status`.
pub fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_default()
}

/// Asks the running daemon's `/readyz` (`ticketgate healthcheck`): `Ok(true)` when ready.
pub async fn healthcheck(addr: SocketAddr) -> anyhow::Result<(bool, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = match addr.ip() {
        // A wildcard listen address is reached on loopback.
        IpAddr::V4(v4) if v4.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {addr} within 10 s"))??;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status == 200, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_paths_never_hold_a_page_token() {
        assert_eq!(loggable("/t/0123456789abcdef0123456789abcdef"), "/t/…");
        assert_eq!(
            loggable("/t/0123456789abcdef0123456789abcdef/accept"),
            "/t/…/accept"
        );
        assert_eq!(loggable("/api/v1/tickets"), "/api/v1/tickets");
        assert_eq!(loggable("/u/42.0123456789abcdef"), "/u/…");
        assert_eq!(loggable("/s/c42-0123456789abcdef"), "/s/…");
        assert_eq!(loggable("/w/12.0123456789abcdef0123456789abcdef"), "/w/…");
    }

    #[test]
    fn the_rate_limit_allows_a_burst_per_address_then_refuses() {
        let l = RateLimiter::new(3, 60);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!((0..3).all(|_| l.allow(a)));
        assert!(!l.allow(a));
        assert!(l.allow(b), "another address has its own bucket");
    }

    #[test]
    fn the_openapi_document_lists_every_route_with_its_scope() {
        let doc = api::openapi_document();
        for r in api::ROUTES {
            let op = &doc["paths"][format!("/api/v1{}", r.path)][r.method];
            assert!(op.is_object(), "{} {}", r.method, r.path);
            if let Some(scope) = r.scope {
                assert_eq!(op["x-scope"], scope.as_str());
            }
        }
    }
}
