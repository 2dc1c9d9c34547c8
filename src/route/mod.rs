//! Decides what one parsed mail does: open a ticket, add to one, or be quarantined (with or
//! without a reply). It reads the store through the open write transaction and writes
//! nothing; the pipeline applies the decision.

pub mod loops;

use crate::config::Config;
use crate::parse::InboundMail;
use crate::registry::{Customer, KeyStatus, Registry};
use crate::store::{self, TicketRow, WriteTx};
use chrono::{DateTime, Utc};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Decision {
    NewTicket {
        customer: Arc<Customer>,
        key: String,
        severity: u8,
    },
    FollowUp {
        ticket: Box<TicketRow>,
    },
    /// An agent's mail about a ticket: commands and an answer to relay, or a note.
    AgentMail {
        ticket: Box<TicketRow>,
    },
    Quarantine(Quarantine),
    /// A customer's request for its KPI report (subject `report` / `rapport`, optionally a
    /// period), with an active key from an allowed sender: answered with the report, never
    /// a ticket.
    ReportRequest {
        customer: Arc<Customer>,
        request: crate::services::reports::PeriodRequest,
    },
}

/// Why a mail made no ticket change, and what the sender is told.
#[derive(Debug, Clone)]
pub struct Quarantine {
    /// Stable code for scripts: `no_key`, `unknown_key`, `own_mail`…
    pub code: &'static str,
    /// What an operator reads.
    pub reason: String,
    /// `Some` when the sender is owed a rejection reply.
    pub reply: Option<ReplyInfo>,
}

#[derive(Debug, Clone)]
pub struct ReplyInfo {
    pub key: Option<String>,
    pub language: Option<String>,
}

fn quarantine(code: &'static str, reason: String) -> Decision {
    Decision::Quarantine(Quarantine {
        code,
        reason,
        reply: None,
    })
}

fn rejection(
    code: &'static str,
    reason: String,
    key: Option<String>,
    customer: Option<&Customer>,
) -> Decision {
    Decision::Quarantine(Quarantine {
        code,
        reason,
        reply: Some(ReplyInfo {
            key,
            language: customer.map(|c| c.plan.language.clone()),
        }),
    })
}

/// The rules, in order (SPEC §3, §10):
/// 1. no sender address, our own address, or a bounce → quarantined, no reply;
/// 2. an agent's mail (registry `agents`) about a ticket → `AgentMail`; about none →
///    quarantined;
/// 3. a ticket named by `In-Reply-To`/`References` (first), else by a subject tag, else by a
///    reference in the new text → a follow-up, if the sender is the requester or an allowed
///    sender of the ticket's customer; otherwise quarantined with no reply, so nothing about
///    the ticket leaks;
/// 4. otherwise a new request: the first active key among the candidates opens a ticket
///    when the sender is allowed for that customer (or, when the subject is a report
///    request, asks for the customer's KPI report); a revoked, expired, unknown or missing key
///    is quarantined with a reply that says which.
pub fn route(
    mail: &InboundMail,
    cfg: &Config,
    registry: &Registry,
    tx: &mut dyn WriteTx,
    now: DateTime<Utc>,
) -> store::Result<Decision> {
    let Some(from) = mail.from.as_deref() else {
        return Ok(quarantine(
            "no_sender",
            "the mail has no usable From address".into(),
        ));
    };
    if loops::is_own(mail, &cfg.loops) {
        return Ok(quarantine(
            "own_mail",
            format!("sent from our own address {from}: not processed, to prevent a mail loop"),
        ));
    }
    if loops::is_bounce(mail) {
        return Ok(quarantine(
            "bounce",
            format!(
                "delivery status notification from {from}: kept for the operator, not answered"
            ),
        ));
    }

    if registry.is_agent(from) {
        return Ok(match find_ticket(mail, tx)?.map(|(t, _)| t) {
            Some(t) => Decision::AgentMail {
                ticket: Box::new(t),
            },
            None => quarantine(
                "agent_no_ticket",
                format!(
                    "mail from agent {from} names no ticket: reply to the ticket's mail or keep its [REF] tag in the subject"
                ),
            ),
        });
    }

    if let Some((ticket, by_headers)) = find_ticket(mail, tx)? {
        let customer = registry.customer(&ticket.customer);
        let allowed = ticket.requester == from
            || customer.is_some_and(|c| !c.allowed_senders.is_empty() && c.allows(from));
        if allowed {
            return Ok(Decision::FollowUp {
                ticket: Box::new(ticket),
            });
        }
        // A ticket number merely written in the mail (a pasted or forwarded reference) does
        // not stop a request with its own key from being opened.
        if !by_headers && !mail.key_candidates.is_empty() {
            return new_request(mail, from, registry, now);
        }
        return Ok(quarantine(
            "not_allowed_on_ticket",
            format!(
                "{from} wrote about ticket {} but is neither its requester nor an allowed sender of customer {}",
                ticket.id, ticket.customer
            ),
        ));
    }

    new_request(mail, from, registry, now)
}

/// Rule 4: a new request, decided by its support key.
fn new_request(
    mail: &InboundMail,
    from: &str,
    registry: &Registry,
    now: DateTime<Utc>,
) -> store::Result<Decision> {
    let mut first_inactive: Option<Decision> = None;
    for key in &mail.key_candidates {
        match registry.key_status(key, now) {
            KeyStatus::Active(customer) => {
                if !customer.allows(from) {
                    return Ok(rejection(
                        "sender_not_allowed",
                        format!(
                            "{from} is not an allowed sender for customer {} (key {key})",
                            customer.id
                        ),
                        Some(key.clone()),
                        Some(&customer),
                    ));
                }
                if let Some(request) =
                    crate::services::reports::subject_request(&mail.subject, &mail.key_candidates)
                {
                    return Ok(Decision::ReportRequest { customer, request });
                }
                let severity = mail
                    .severity
                    .as_ref()
                    .map_or(customer.plan.default_severity, |s| s.level);
                return Ok(Decision::NewTicket {
                    customer,
                    key: key.clone(),
                    severity,
                });
            }
            KeyStatus::Revoked(c) if first_inactive.is_none() => {
                first_inactive = Some(rejection(
                    "revoked_key",
                    format!("support key {key} of customer {} is revoked", c.id),
                    Some(key.clone()),
                    Some(&c),
                ));
            }
            KeyStatus::Expired(c) if first_inactive.is_none() => {
                first_inactive = Some(rejection(
                    "expired_key",
                    format!("support key {key} of customer {} has expired", c.id),
                    Some(key.clone()),
                    Some(&c),
                ));
            }
            _ => {}
        }
    }
    if let Some(d) = first_inactive {
        return Ok(d);
    }
    Ok(match mail.key_candidates.first() {
        Some(key) => rejection(
            "unknown_key",
            format!("support key {key} is not in the customer registry"),
            Some(key.clone()),
            None,
        ),
        None => rejection(
            "no_key",
            "no support key and no known ticket reference in the mail".into(),
            None,
            None,
        ),
    })
}

/// The ticket a mail is about, and whether its threading headers (not just a number in the
/// text) said so.
fn find_ticket(
    mail: &InboundMail,
    tx: &mut dyn WriteTx,
) -> store::Result<Option<(TicketRow, bool)>> {
    // Headers win over subject text: the most recent parent first.
    for id in mail.in_reply_to.iter().chain(mail.references.iter().rev()) {
        if let Some(t) = tx.ticket_for_message_id(id)? {
            return Ok(tx.ticket(t)?.map(|t| (t, true)));
        }
    }
    for n in mail.subject_refs.iter().chain(mail.body_refs.iter()) {
        if let Ok(id) = i64::try_from(*n)
            && let Some(t) = tx.ticket(id)?
        {
            return Ok(Some((t, false)));
        }
    }
    Ok(None)
}
