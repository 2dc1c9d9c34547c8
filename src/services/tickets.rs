//! Tickets: listings, one ticket with its articles, an agent's action, the SLA clock.

use super::{Result, ServiceError, ticket_id};
use crate::app::App;
use crate::parse::Attachment;
use crate::registry::Plan;
use crate::sla::SlaView;
use crate::store::{ArticleRow, Escalation, TicketRow, Watcher};
use crate::workflow;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// A ticket as operators read it (`tickets list --json`).
#[derive(Debug, Clone, Serialize)]
pub struct TicketView {
    pub reference: String,
    pub status: String,
    pub severity: u8,
    pub stated_severity: Option<String>,
    pub customer: String,
    pub plan: String,
    pub language: String,
    pub subject: String,
    pub requester: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TicketView {
    pub fn new(prefix: &str, t: &TicketRow) -> TicketView {
        TicketView {
            reference: crate::ticket_ref::reference(prefix, t.id),
            status: t.status.to_string(),
            severity: t.severity,
            stated_severity: t.stated_severity.clone(),
            customer: t.customer.clone(),
            plan: t.plan.clone(),
            language: t.language.clone(),
            subject: t.subject.clone(),
            requester: t.requester.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// One ticket with its articles (`tickets show --json`).
#[derive(Debug, Clone, Serialize)]
pub struct TicketDetail {
    #[serde(flatten)]
    pub ticket: TicketView,
    pub articles: Vec<ArticleRow>,
    /// Who gets the ticket's public updates in Cc besides the requester.
    pub watchers: Vec<Watcher>,
    /// The outages the ticket was linked to at intake (incident-aware intake).
    pub outages: Vec<LinkedOutage>,
}

/// An outage a ticket is linked to, as `tickets show` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedOutage {
    /// `OUT-000001`.
    pub reference: String,
    pub state: crate::store::AnnouncementState,
    pub platform: String,
    pub services: Vec<String>,
    pub impact: String,
    pub since: Option<DateTime<Utc>>,
    pub restored_at: Option<DateTime<Utc>>,
}

pub async fn list(app: &App, limit: usize) -> Result<Vec<TicketView>> {
    let rows = app.db.read(move |s| s.tickets(limit)).await?;
    let prefix = &app.cfg.tickets.reference_prefix;
    Ok(rows.iter().map(|t| TicketView::new(prefix, t)).collect())
}

pub async fn show(app: &App, reference: &str) -> Result<TicketDetail> {
    let id = ticket_id(app, reference)?;
    let Some((t, articles)) = app.db.read(move |s| s.ticket_with_articles(id)).await? else {
        return Err(ServiceError::NotFound(format!("no ticket {reference}")));
    };
    let (watchers, outages) = app
        .db
        .read(move |s| {
            let watchers = s.ticket_watchers(id)?;
            let mut outages = Vec::new();
            for o in s.ticket_outages(id)? {
                if let Some(a) = s.announce().announcement(o)? {
                    outages.push(LinkedOutage {
                        reference: a.reference(),
                        state: a.state,
                        platform: a.platform,
                        services: a.services,
                        impact: a.impact,
                        since: a.starts_at,
                        restored_at: a.ends_at,
                    });
                }
            }
            Ok((watchers, outages))
        })
        .await?;
    Ok(TicketDetail {
        ticket: TicketView::new(&app.cfg.tickets.reference_prefix, &t),
        articles,
        watchers,
        outages,
    })
}

/// An agent's action: the same as the commands of an agent's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// A status name of the ticket's workflow.
    Status(String),
    /// 1–4.
    Severity(String),
    /// A public answer, relayed to the customer.
    Reply(String),
    /// An internal note.
    Note(String),
    Resolve {
        reason: String,
        text: Option<String>,
    },
    Close {
        reason: String,
        text: Option<String>,
    },
    /// `#cc add ADDRESS`: a watcher of the ticket.
    CcAdd(String),
    /// `#cc remove ADDRESS`.
    CcRemove(String),
}

impl AgentAction {
    /// The command line and text of the equivalent agent mail.
    fn as_mail(&self) -> String {
        let (line, text) = match self {
            AgentAction::Status(s) => (format!("#status {s}"), ""),
            AgentAction::Severity(s) => (format!("#severity {s}"), ""),
            AgentAction::Reply(t) => (String::new(), t.as_str()),
            AgentAction::Note(t) => ("#note".to_string(), t.as_str()),
            AgentAction::Resolve { reason, text } => {
                (format!("#resolve {reason}"), text.as_deref().unwrap_or(""))
            }
            AgentAction::Close { reason, text } => {
                (format!("#close {reason}"), text.as_deref().unwrap_or(""))
            }
            AgentAction::CcAdd(a) => (format!("#cc add {}", crate::parse::one_line(a)), ""),
            AgentAction::CcRemove(a) => (format!("#cc remove {}", crate::parse::one_line(a)), ""),
        };
        format!("{line}\n{text}")
    }
}

/// What an applied action left.
#[derive(Debug, Clone, Serialize)]
pub struct ActionDone {
    pub reference: String,
    /// The status as the ticket's workflow names it.
    pub status: String,
    pub severity: u8,
    /// Files not relayed to the customer, each with the reason (the size limits).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
}

/// Applies `action` by `author` to the ticket, all or nothing: every command is checked
/// first ([`ServiceError::Rejected`] lists what is wrong). The mail it owes people is in the
/// outbox when this returns.
pub async fn act(
    app: &App,
    reference: &str,
    author: &str,
    action: &AgentAction,
) -> Result<ActionDone> {
    act_with(app, reference, author, action, Vec::new()).await
}

/// [`act`] with files relayed to the customer with the answer (`ticket REF reply TEXT
/// --attach FILE`), within `outbound.max_attachment_size` and
/// `outbound.max_total_attachment_size`: the files over them are left out, listed in
/// [`ActionDone::omitted`] and in a note on the ticket.
pub async fn act_with(
    app: &App,
    reference: &str,
    author: &str,
    action: &AgentAction,
    attachments: Vec<Attachment>,
) -> Result<ActionDone> {
    let id = ticket_id(app, reference)?;
    let Some((t, _)) = app.db.read(move |s| s.ticket_with_articles(id)).await? else {
        return Err(ServiceError::NotFound(format!("no ticket {reference}")));
    };
    let profile = t.profile;
    let mut am = workflow::parse_agent_mail(profile, &action.as_mail());
    let omitted = if am.note {
        Vec::new()
    } else {
        crate::lifecycle::relayable(&app.cfg, &attachments).1
    };
    am.attachments = attachments;
    let (p, author) = (app.pipeline.clone(), author.to_string());
    let done = app
        .db
        .write(move |s| Ok(p.agent_action(s, id, &am, &author)))
        .await??;
    let t = done.map_err(ServiceError::Rejected)?;
    Ok(ActionDone {
        reference: app.pipeline.reference(t.id),
        status: profile.display(t.status).to_string(),
        severity: t.severity,
        omitted,
    })
}

/// A ticket's current watchers (`ticket REF watchers list`).
pub async fn watchers(app: &App, reference: &str) -> Result<Vec<Watcher>> {
    let id = ticket_id(app, reference)?;
    if app
        .db
        .read(move |s| s.ticket_with_articles(id))
        .await?
        .is_none()
    {
        return Err(ServiceError::NotFound(format!("no ticket {reference}")));
    }
    Ok(app.db.read(move |s| s.ticket_watchers(id)).await?)
}

/// Reads files to attach to an agent's answer (`--attach FILE`): the name is the file's, the
/// type guessed from its extension.
pub fn read_attachments(paths: &[std::path::PathBuf]) -> Result<Vec<Attachment>> {
    paths
        .iter()
        .map(|p| {
            let data = std::fs::read(p)
                .map_err(|e| ServiceError::Invalid(format!("cannot read {}: {e}", p.display())))?;
            let filename = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            Ok(Attachment {
                content_type: content_type_of(&filename).to_string(),
                filename,
                size: data.len(),
                data: Some(data),
                content_id: None,
                inline: false,
            })
        })
        .collect()
}

/// The MIME type of a file name's extension; `application/octet-stream` for the unknown.
fn content_type_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "patch" | "diff" => "text/plain",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "json" => "application/json",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        _ => "application/octet-stream",
    }
}

/// A ticket's first-response clock (`ticketgate sla --json`).
#[derive(Debug, Clone, Serialize)]
pub struct SlaReport {
    #[serde(flatten)]
    pub view: SlaView,
    pub reference: String,
    pub calendar: String,
    pub severity: u8,
    pub escalations: Vec<Escalation>,
    /// The target as the plan writes it (e.g. `1d`), when it has one for this severity.
    #[serde(skip)]
    pub target_written: Option<String>,
    /// The plan, for showing times in its calendar.
    #[serde(skip)]
    pub plan: Arc<Plan>,
}

pub async fn sla(app: &App, reference: &str) -> Result<SlaReport> {
    let id = ticket_id(app, reference)?;
    let Some((t, _)) = app.db.read(move |s| s.ticket_with_articles(id)).await? else {
        return Err(ServiceError::NotFound(format!("no ticket {reference}")));
    };
    let plan = app.pipeline.registry().plan(&t.plan);
    let view = crate::sla::view(&t.sla, &plan.calendar, app.clock.now());
    let escalations = app.db.read(move |s| s.escalations(id)).await?;
    Ok(SlaReport {
        view,
        reference: app.pipeline.reference(id),
        calendar: plan.calendar_name.clone(),
        severity: t.severity,
        escalations,
        target_written: plan.response_targets[usize::from(t.severity.clamp(1, 4)) - 1].clone(),
        plan,
    })
}
