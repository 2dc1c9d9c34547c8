//! What the web layer (and the `api-token` command) needs beyond the other services:
//! paged listings with filters, API tokens, the customer's ticket page, and the customer's
//! answer to a resolution given on that page (processed exactly as the same answer by mail).

use super::{Result, ServiceError, ticket_id};
use crate::app::App;
use crate::pipeline::{Outcome, RawMail};
use crate::store::{
    ApiTokenRow, ArticleRow, OutboxQuery, OutboxRow, Scope, TicketQuery, WebStats,
    constant_time_eq, random_token, token_hash,
};
use crate::workflow::Status;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::outbox::OutboxView;
use super::tickets::TicketView;

/// Longest page a listing returns.
pub const MAX_PAGE: usize = 500;

/// A page of a listing and the cursor of the next one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

fn page<T, R>(
    rows: Vec<R>,
    limit: usize,
    id: impl Fn(&R) -> i64,
    view: impl Fn(R) -> T,
) -> Page<T> {
    let next_cursor = if rows.len() == limit {
        rows.last().map(|r| id(r).to_string())
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

fn cursor(c: Option<&str>) -> Result<Option<i64>> {
    match c {
        None | Some("") => Ok(None),
        Some(c) => c
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ServiceError::Invalid(format!("`{c}` is not a cursor this API gave"))),
    }
}

/// An RFC 3339 instant, or [`ServiceError::Invalid`] naming `what`.
pub fn instant(what: &str, v: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            ServiceError::Invalid(format!(
                "{what}: `{v}` is not an RFC 3339 instant ({e}); write e.g. 2026-11-23T15:30:00Z"
            ))
        })
}

fn limit(l: Option<usize>) -> usize {
    l.unwrap_or(50).clamp(1, MAX_PAGE)
}

/// Ticket filters as written in a query string.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TicketFilter {
    pub status: Option<String>,
    pub customer: Option<String>,
    pub severity: Option<u8>,
    pub updated_since: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// Tickets, newest first, filtered, one page.
pub async fn tickets(app: &App, f: &TicketFilter) -> Result<Page<TicketView>> {
    let status = match f.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "status: `{s}` is not a status; use one of {}",
                Status::ALL.map(|s| s.as_str()).join(", ")
            ))
        })?),
    };
    if let Some(s) = f.severity
        && !(1..=4).contains(&s)
    {
        return Err(ServiceError::Invalid(format!(
            "severity: {s} is not 1 to 4"
        )));
    }
    let q = TicketQuery {
        status,
        customer: f.customer.clone().filter(|c| !c.is_empty()),
        severity: f.severity,
        updated_since: match f.updated_since.as_deref().filter(|s| !s.is_empty()) {
            Some(v) => Some(instant("updated_since", v)?),
            None => None,
        },
        before_id: cursor(f.cursor.as_deref())?,
        limit: limit(f.limit),
    };
    let n = q.limit;
    let rows = app.db.read(move |s| s.web().tickets_page(&q)).await?;
    let prefix = app.cfg.tickets.reference_prefix.clone();
    Ok(page(rows, n, |t| t.id, |t| TicketView::new(&prefix, &t)))
}

/// Outbound-mail filters as written in a query string.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct OutboxFilter {
    pub kind: Option<String>,
    pub recipient: Option<String>,
    pub state: Option<String>,
    pub ticket: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// Outbound mail, newest first, filtered, one page.
pub async fn outbox(app: &App, f: &OutboxFilter) -> Result<Page<OutboxView>> {
    let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
    let state = match nonempty(&f.state) {
        None => None,
        Some(s) => Some(crate::store::OutboxState::parse(&s).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "state: `{s}` is not a state; use one of {}",
                crate::store::OutboxState::ALL
                    .map(|s| s.as_str())
                    .join(", ")
            ))
        })?),
    };
    let q = OutboxQuery {
        kind: nonempty(&f.kind),
        recipient: nonempty(&f.recipient).map(|r| r.trim().to_string()),
        state,
        ticket_id: match nonempty(&f.ticket) {
            Some(r) => Some(ticket_id(app, r.trim())?),
            None => None,
        },
        created_from: match nonempty(&f.from) {
            Some(v) => Some(instant("from", &v)?),
            None => None,
        },
        created_to: match nonempty(&f.to) {
            Some(v) => Some(instant("to", &v)?),
            None => None,
        },
        before_id: cursor(f.cursor.as_deref())?,
        limit: limit(f.limit),
    };
    let n = q.limit;
    let rows = app.db.read(move |s| s.web().outbox_page(&q)).await?;
    let prefix = app.cfg.tickets.reference_prefix.clone();
    Ok(page(rows, n, |o| o.id, |o| OutboxView::new(&prefix, o)))
}

/// One outbound mail with its whole message (headers and body).
#[derive(Debug, Clone, Serialize)]
pub struct OutboxMessage {
    #[serde(flatten)]
    pub view: OutboxView,
    pub headers: String,
    pub body: String,
}

pub async fn outbox_message(app: &App, id: i64) -> Result<OutboxMessage> {
    let found: Option<(OutboxRow, Option<Vec<u8>>)> = app
        .db
        .read(move |s| {
            let Some(row) = s.web().outbox_row(id)? else {
                return Ok(None);
            };
            Ok(Some((row, s.outbox_body(id)?)))
        })
        .await?;
    let Some((row, body)) = found else {
        return Err(ServiceError::NotFound(format!("no outbound mail {id}")));
    };
    let text = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
    let (headers, body) = match text.find("\r\n\r\n") {
        Some(i) => (text[..i].to_string(), text[i + 4..].to_string()),
        None => (text, String::new()),
    };
    Ok(OutboxMessage {
        view: OutboxView::new(&app.cfg.tickets.reference_prefix, row),
        headers,
        body,
    })
}

/// Counts for readiness and metrics.
pub async fn stats(app: &App) -> Result<WebStats> {
    let now = app.clock.now();
    Ok(app.db.read(move |s| s.web().web_stats(now)).await?)
}

/// The bounce and suppression counts (`bounce_counts`: a handful of rows), for metrics.
pub async fn bounce_counts(app: &App) -> Result<Vec<(String, i64)>> {
    Ok(app.db.read(|s| s.bounce_counts()).await?)
}

// ---- API tokens ---------------------------------------------------------------------------

/// Creates a token and returns it: shown once, only its hash is stored.
pub async fn create_token(app: &App, name: &str, scope: Scope) -> Result<String> {
    let name = name.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(ServiceError::Invalid(format!(
            "`{name}` is not a token name: 1 to 64 letters, digits, - _ . @"
        )));
    }
    let secret = format!(
        "tg_{}",
        random_token(32).map_err(|e| ServiceError::Mail(format!("no randomness: {e}")))?
    );
    let (hash, now, n) = (token_hash(&secret), app.clock.now(), name.clone());
    if !app
        .db
        .read(move |s| s.web().insert_api_token(&n, scope, &hash, now))
        .await?
    {
        return Err(ServiceError::Conflict(format!(
            "a token named `{name}` exists already (names are never reused, even revoked)"
        )));
    }
    Ok(secret)
}

pub async fn list_tokens(app: &App) -> Result<Vec<ApiTokenRow>> {
    Ok(app.db.read(|s| s.web().api_tokens()).await?)
}

pub async fn revoke_token(app: &App, name: &str) -> Result<()> {
    let (n, now) = (name.to_string(), app.clock.now());
    if app
        .db
        .read(move |s| s.web().revoke_api_token(&n, now))
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!(
            "no live token named `{name}`"
        )))
    }
}

/// The live token `secret` is, or `None` (unknown or revoked). The stored hash is compared
/// in constant time.
pub async fn check_token(app: &App, secret: &str) -> Result<Option<ApiTokenRow>> {
    let hash = token_hash(secret);
    let h = hash.clone();
    let row = app.db.read(move |s| s.web().api_token_by_hash(&h)).await?;
    Ok(row.filter(|r| {
        constant_time_eq(r.token_hash.as_bytes(), hash.as_bytes()) && r.revoked_at.is_none()
    }))
}

// ---- the customer's ticket page -------------------------------------------------------------

/// What the customer's page shows: public articles only.
#[derive(Debug, Clone, Serialize)]
pub struct TicketPage {
    pub reference: String,
    pub subject: String,
    /// The status as the plan's workflow names it.
    pub status: String,
    pub resolved: bool,
    pub severity: u8,
    pub language: String,
    /// The response target as the plan writes it (e.g. `4h`), if any.
    pub sla_target: Option<String>,
    /// `Some(true)`: answered in time; `Some(false)`: missed; `None`: still running, or no target.
    pub sla_met: Option<bool>,
    pub articles: Vec<ArticleRow>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Articles a customer may read: theirs and the agents' answers (never internal notes).
pub fn is_public(a: &ArticleRow) -> bool {
    matches!(a.kind.as_str(), "customer" | "agent")
}

/// The ticket whose page token is `token`; `None` for any unknown token.
pub async fn ticket_page(app: &App, token: &str) -> Result<Option<(i64, TicketPage)>> {
    let hash = token_hash(token);
    let found = app
        .db
        .read(move |s| match s.web().ticket_by_token(&hash)? {
            Some(id) => s.ticket_with_articles(id),
            None => Ok(None),
        })
        .await?;
    let Some((t, articles)) = found else {
        return Ok(None);
    };
    let plan = app.pipeline.registry().plan(&t.plan);
    let view = crate::sla::view(&t.sla, &plan.calendar, app.clock.now());
    let sla_target = plan.response_targets[usize::from(t.severity.clamp(1, 4)) - 1].clone();
    let sla_met = if view.breached {
        Some(false)
    } else if view.responded_at.is_some() && t.sla.target_secs.is_some() {
        Some(true)
    } else {
        None
    };
    Ok(Some((
        t.id,
        TicketPage {
            reference: app.pipeline.reference(t.id),
            subject: t.subject.clone(),
            status: t.profile.display(t.status).to_string(),
            resolved: t.status == Status::Resolved,
            severity: t.severity,
            language: plan.language.clone(),
            sla_target,
            sla_met,
            articles: articles.into_iter().filter(is_public).collect(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        },
    )))
}

/// The customer's answer to a resolution, given on the ticket page: processed as the mail
/// the customer would write ("I accept the solution" / a refusal), from the requester, through
/// the pipeline, so it does exactly what that mail does. Only while the ticket is resolved
/// (checked on the writer, with the processing): otherwise [`ServiceError::Conflict`].
pub async fn customer_answer(app: &App, ticket: i64, accept: bool) -> Result<Outcome> {
    let p = app.pipeline.clone();
    let domain = app.cfg.outbound.message_id_domain.clone();
    let support = app.cfg.outbound.from.email.to_string();
    let id = random_token(16).map_err(|e| ServiceError::Mail(format!("no randomness: {e}")))?;
    let now = app.clock.now();
    let outcome = app
        .db
        .write(move |s| {
            let Some((t, _)) = s.ticket_with_articles(ticket)? else {
                return Ok(Err(ServiceError::NotFound("no such ticket".into())));
            };
            if t.status != Status::Resolved {
                return Ok(Err(ServiceError::Conflict(format!(
                    "{} is no longer resolved: nothing was changed",
                    p.reference(t.id)
                ))));
            }
            let fr = t.language == "fr";
            let text = match (accept, fr) {
                (true, false) => "I accept the solution.",
                (true, true) => "J'accepte la solution.",
                (false, false) => "It is not solved: the problem remains.",
                (false, true) => "Ce n'est pas résolu : le problème persiste.",
            };
            let raw = format!(
                "From: <{from}>\r\nTo: <{support}>\r\nSubject: Re: [{reference}]\r\n\
                 Message-ID: <web.{id}@{domain}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n",
                from = t.requester,
                reference = p.reference(t.id),
                date = now.to_rfc2822(),
            );
            let mail = RawMail {
                source: crate::auth::TICKET_PAGE_SOURCE.into(),
                bytes: raw.into_bytes(),
            };
            let (_, mut outcomes) = p.process(s, std::slice::from_ref(&mail))?;
            Ok(Ok(outcomes.pop().unwrap_or(Outcome::Duplicate)))
        })
        .await??;
    Ok(outcome)
}
