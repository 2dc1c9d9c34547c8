//! Decides what one parsed mail does: open a ticket, add to one, or be quarantined (with or
//! without a reply). It reads the store through the open write transaction and writes
//! nothing; the pipeline applies the decision.

pub mod loops;

use crate::config::Config;
use crate::parse::InboundMail;
use crate::registry::{Authentication, Customer, KeyStatus, Registry};
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
        /// How the mail named the ticket (recorded on its inbound row).
        threaded_by: Threading,
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
    /// A subscription command (`subscribe LIST [ADDRESS]`, `unsubscribe …`) or a reply to a
    /// subscription's confirmation: never a ticket (see [`crate::subscriptions`]).
    Subscription(crate::subscriptions::Request),
}

/// How a mail was found to be about a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// `In-Reply-To` or `References` names a Message-ID of the ticket.
    Headers,
    /// The subject's `[REF]` tag: the headers name no Message-ID we know (a provider such as
    /// Outlook.com or Exchange rewrote ours, or the client dropped them).
    Tag,
    /// A reference written in the new text.
    Text,
}

impl Threading {
    pub fn as_str(self) -> &'static str {
        match self {
            Threading::Headers => "headers",
            Threading::Tag => "tag",
            Threading::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<Threading> {
        [Threading::Headers, Threading::Tag, Threading::Text]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
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

/// The quarantine code of a mail in an agent's name that failed sender authentication.
pub const UNAUTHENTICATED_AGENT: &str = "unauthenticated_agent";

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
/// 2. an agent's mail (registry `agents`) that failed sender authentication → quarantined
///    as `unauthenticated_agent` (no reply; the pipeline alerts the agent team); about a
///    ticket → `AgentMail`; about none → quarantined;
/// 3. a ticket named by `In-Reply-To`/`References` (first), else by our reply address
///    (`support+TKT-000123…@`), else by a subject tag, else by a reference in the new text →
///    a follow-up, if the sender is the requester or an allowed sender of the ticket's
///    customer (and authenticated, under a plan that requires it); otherwise quarantined with
///    no reply, so nothing about the ticket leaks;
/// 4. otherwise a new request: the first active key among the candidates opens a ticket
///    when the sender is allowed for that customer (and authenticated, under a plan that
///    requires it; or, when the subject is a report request, asks for the customer's KPI
///    report); a revoked, expired, unknown or missing key is quarantined with a reply that
///    says which.
///
/// Subscriptions (`crate::subscriptions`): a reply carrying a confirmation token is read
/// right after rule 1 (the token is the proof, whoever sends it); a subject command
/// (`subscribe LIST [ADDRESS]`, `unsubscribe …`) after rule 2, before any ticket is looked
/// for.
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

    // A reply to a subscription's confirmation: its token, not its sender, is the proof.
    if let Some(r) = crate::subscriptions::confirmation(mail) {
        return Ok(Decision::Subscription(r));
    }

    if registry.is_agent(from) {
        // Commands and relayed answers only from an authenticated agent: a forged agent
        // mail changes nothing and relays nothing (the pipeline alerts the agent team).
        if !mail.auth.passed() {
            return Ok(quarantine(
                UNAUTHENTICATED_AGENT,
                format!(
                    "mail in the name of agent {from} failed sender authentication ({}): nothing applied, nothing relayed",
                    mail.auth.detail
                ),
            ));
        }
        return Ok(
            match find_ticket(mail, tx, &cfg.tickets.reference_prefix)?.map(|(t, _)| t) {
                Some(t) => Decision::AgentMail {
                    ticket: Box::new(t),
                },
                None => quarantine(
                    "agent_no_ticket",
                    format!(
                        "mail from agent {from} names no ticket: reply to the ticket's mail or keep its [REF] tag in the subject"
                    ),
                ),
            },
        );
    }

    if let Some(r) = crate::subscriptions::decide(mail, from, registry, now) {
        return Ok(Decision::Subscription(r));
    }

    if let Some((ticket, threaded_by)) = find_ticket(mail, tx, &cfg.tickets.reference_prefix)? {
        let by_headers = threaded_by == Threading::Headers;
        let customer = registry.customer(&ticket.customer);
        let allowed = ticket.requester == from
            || customer.is_some_and(|c| !c.allowed_senders.is_empty() && c.allows(from))
            || crate::watchers::is_watcher(tx, ticket.id, from)?;
        if allowed {
            if let Some(c) = customer
                && c.plan.authentication == Authentication::Require
                && !mail.auth.passed()
            {
                return Ok(unauthenticated(from, mail, c));
            }
            return Ok(Decision::FollowUp {
                ticket: Box::new(ticket),
                threaded_by,
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
                if customer.plan.authentication == Authentication::Require && !mail.auth.passed() {
                    return Ok(unauthenticated(from, mail, &customer));
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

/// A plan under `authentication = "require"` refuses unauthenticated mail, and says why.
fn unauthenticated(from: &str, mail: &InboundMail, customer: &Customer) -> Decision {
    rejection(
        "unauthenticated_sender",
        format!(
            "{from} failed sender authentication ({}) and plan {} requires it",
            mail.auth.detail, customer.plan.name
        ),
        None,
        Some(customer),
    )
}

/// The ticket a mail is about, and how it was named: by its threading headers or a reply
/// address of ours (`support+TKT-000123.SIG@…`, counted as headers), by the subject's tag
/// (when a provider rewrote the Message-ID it answers, the tag still names the ticket), or by
/// a number in the text.
pub fn find_ticket(
    mail: &InboundMail,
    tx: &mut dyn WriteTx,
    prefix: &str,
) -> store::Result<Option<(TicketRow, Threading)>> {
    // Headers win over subject text: the most recent parent first.
    for id in mail.in_reply_to.iter().chain(mail.references.iter().rev()) {
        if let Some(t) = tx.ticket_for_message_id(id)? {
            return Ok(tx.ticket(t)?.map(|t| (t, Threading::Headers)));
        }
    }
    // Our per-ticket reply address (signed or not: the signature only decides what the
    // mail may change, see the pipeline).
    for tag in &mail.plus_tags {
        if let Some((id, _)) = crate::auth::token::split_tag(prefix, tag)
            && let Some(t) = tx.ticket(id)?
        {
            return Ok(Some((t, Threading::Headers)));
        }
    }
    let tagged = mail.subject_refs.iter().map(|n| (n, Threading::Tag));
    for (n, how) in tagged.chain(mail.body_refs.iter().map(|n| (n, Threading::Text))) {
        if let Ok(id) = i64::try_from(*n)
            && let Some(t) = tx.ticket(id)?
        {
            return Ok(Some((t, how)));
        }
    }
    Ok(None)
}
