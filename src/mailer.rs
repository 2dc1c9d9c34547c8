//! Writes outbound mail into the outbox inside the caller's transaction: renders the
//! template, applies the loop rules and the per-recipient cap to automatic answers, composes
//! the message, enqueues it, and links its Message-ID to the ticket so replies thread back.
//! Every part that sends mail (pipeline, lifecycle, timers) goes through here.

use crate::config::Config;
use crate::notify::{self, Automatic, Notice, NotifyError, Outgoing, Templates};
use crate::parse::{Attachment, InboundMail};
use crate::route::loops;
use crate::store::{self, NewOutbound, OutboxState, TicketRow, WriteTx};
use chrono::{DateTime, Utc};

/// One mail to write.
pub struct Letter<'a> {
    /// What it says: its kind and the context its template renders from.
    pub notice: &'a Notice,
    /// The language code; English when there are no templates in it.
    pub lang: &'a str,
    pub to: &'a str,
    pub to_name: Option<&'a str>,
    pub ticket: Option<&'a TicketRow>,
    pub inbound_id: Option<i64>,
    /// The mail this answers: threading, and the loop rules for automatic answers.
    pub answers: Option<&'a InboundMail>,
    pub automatic: Automatic,
    /// Display name before our address, e.g. "Jane Doe via Support".
    pub from_name: Option<&'a str>,
    pub attachments: &'a [Attachment],
    /// To one of our own people (an agent, a manager, the agent team): not subject to the
    /// customer-facing loop rules and per-recipient cap.
    pub to_staff: bool,
}

impl<'a> Letter<'a> {
    /// An automatic answer to the sender of `mail`, threaded to it.
    pub fn reply(
        notice: &'a Notice,
        lang: &'a str,
        mail: &'a InboundMail,
        ticket: Option<&'a TicketRow>,
        inbound_id: Option<i64>,
    ) -> Self {
        Letter {
            notice,
            lang,
            to: mail.from.as_deref().unwrap_or_default(),
            to_name: mail.from_name.as_deref(),
            ticket,
            inbound_id,
            answers: Some(mail),
            automatic: Automatic::Replied,
            from_name: None,
            attachments: &[],
            to_staff: false,
        }
    }

    /// Generated mail to one of our own people (a manager, an agent) about a ticket.
    pub fn to_staff(notice: &'a Notice, lang: &'a str, to: &'a str, ticket: &'a TicketRow) -> Self {
        Letter {
            notice,
            lang,
            to,
            to_name: None,
            ticket: Some(ticket),
            inbound_id: None,
            answers: None,
            automatic: Automatic::Generated,
            from_name: None,
            attachments: &[],
            to_staff: true,
        }
    }
}

/// What became of a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Pending,
    /// Over the per-recipient cap: kept as `suppressed`.
    Suppressed,
    /// Not written: loop rules, or an address that cannot be written to.
    Skipped,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

pub struct Mailer<'a> {
    pub cfg: &'a Config,
    pub templates: &'a Templates,
    pub prefix: &'a str,
}

impl Mailer<'_> {
    pub fn support_name(&self) -> String {
        self.cfg
            .outbound
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Support".to_string())
    }

    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.cfg.loops.auto_reply_window)
            .unwrap_or(chrono::Duration::hours(3))
    }

    pub fn send(
        &self,
        tx: &mut dyn WriteTx,
        l: Letter<'_>,
        now: DateTime<Utc>,
    ) -> Result<Sent, MailError> {
        let kind = l.notice.kind().name();
        // Automatic mail to a customer obeys RFC 3834; mail to our own people does not.
        let capped_kind = l.automatic != Automatic::Human && !l.to_staff;
        if capped_kind
            && let Some(m) = l.answers
            && let Some(why) = loops::no_auto_reply(m, &self.cfg.loops)
        {
            tracing::info!(to = l.to, kind, why = %why, "no automatic reply");
            return Ok(Sent::Skipped);
        }
        let mut note = None;
        // The suppression list (bounces): no automatic mail to a dead address; a person's
        // mail still goes, flagged.
        let mut flag = None;
        if let Some(s) = tx.suppression(&l.to.to_ascii_lowercase())? {
            let why = format!(
                "{} is on the suppression list since {} ({} bounce: {})",
                s.address,
                s.created_at.format("%Y-%m-%d"),
                s.kind,
                s.reason
            );
            if l.automatic == Automatic::Human {
                flag = Some(format!("suppressed_recipient: {why}"));
            } else {
                note = Some(format!(
                    "not sent: {why}; `ticketgate suppressions remove {}` lifts it",
                    s.address
                ));
            }
        }
        if capped_kind && note.is_none() {
            let sent = tx.automatic_sent_since(l.to, now - self.window())?;
            if sent >= self.cfg.loops.auto_reply_limit {
                note = Some(format!(
                    "not sent: {sent} automatic mails to {} in the last {:?} reach loops.auto_reply_limit ({})",
                    l.to, self.cfg.loops.auto_reply_window, self.cfg.loops.auto_reply_limit
                ));
            }
        }
        let (subject, body) = self.templates.render(l.notice, l.lang)?;
        let mut references: Vec<String> = Vec::new();
        if let Some(m) = l.answers {
            references.extend(m.references.iter().rev().take(9).rev().cloned());
            references.extend(m.message_id.iter().cloned());
        }
        let tag = l
            .ticket
            .map(|t| crate::ticket_ref::reference(self.prefix, t.id))
            .unwrap_or_else(|| kind.to_string());
        // A public update to a ticket's requester goes to its watchers too, in Cc; each
        // recipient has an outbox row of its own (its own loop rules, cap and delivery).
        let cc: Vec<String> = match l.ticket {
            Some(t) if !l.to_staff && l.notice.kind().to_watchers() && l.to == t.requester => tx
                .watchers(t.id)?
                .into_iter()
                .map(|w| w.address)
                .filter(|a| a != l.to && !self.cfg.loops.own_addresses.contains(a))
                .collect(),
            _ => Vec::new(),
        };
        let (topic, index) = match l.ticket {
            Some(t) => (
                notify::outlook::thread_topic(&t.subject),
                notify::outlook::thread_index(
                    &self.cfg.outbound.message_id_domain,
                    t.id,
                    t.created_at,
                    now,
                    l.answers.and_then(|m| m.thread_index.as_deref()),
                ),
            ),
            None => (String::new(), String::new()),
        };
        // Ticket mail answers to the ticket's signed reply address: a reply to it proves
        // its sender read our mail (auth::token).
        let reply_to = match (&self.cfg.inbound.reply_key, l.ticket) {
            (Some(secret), Some(_)) => Some(
                crate::auth::token::ReplyKey::new(secret.expose().as_bytes())
                    .address(self.cfg.outbound.from.email.as_ref(), &tag),
            ),
            _ => None,
        };
        let outgoing = |body: &'_ str, message_id: Option<&'_ str>| -> Result<_, NotifyError> {
            notify::compose(
                &self.cfg.outbound,
                now,
                &Outgoing {
                    tag: &tag,
                    to: l.to,
                    to_name: l.to_name,
                    from_name: l.from_name,
                    subject: &subject,
                    body,
                    in_reply_to: l.answers.and_then(|m| m.message_id.as_deref()),
                    references: &references,
                    automatic: l.automatic,
                    attachments: l.attachments,
                    cc: &cc,
                    thread: l.ticket.map(|_| notify::Thread {
                        topic: &topic,
                        index: &index,
                    }),
                    reply_to: reply_to.as_deref(),
                    message_id,
                },
            )
        };
        let composed = match outgoing(&body, None) {
            Ok(c) => c,
            Err(NotifyError::BadRecipient(a)) => {
                tracing::warn!(to = %a, kind, "mail not written: the address cannot be written to");
                return Ok(Sent::Skipped);
            }
            Err(e) => return Err(e.into()),
        };
        // Each watcher's copy ends with its own unwatch link when links can be made
        // (`http.public_url` and `inbound.reply_key`): the same message (Message-ID, headers)
        // with that footer; without links every copy is the requester's bytes.
        let unwatch = match (
            l.ticket,
            &self.cfg.http.public_url,
            &self.cfg.inbound.reply_key,
        ) {
            (Some(t), Some(base), Some(secret)) if !cc.is_empty() => Some((
                t.id,
                base,
                crate::auth::unwatch::UnwatchKey::new(secret.expose().as_bytes()),
            )),
            _ => None,
        };
        let lang = notify::Lang::or_english(l.lang);
        let id = tx.enqueue(&NewOutbound {
            ticket_id: l.ticket.map(|t| t.id),
            inbound_id: l.inbound_id,
            kind,
            recipient: l.to,
            subject: &subject,
            message_id: &composed.message_id,
            automatic: capped_kind,
            body: &composed.bytes,
            state: if note.is_some() {
                OutboxState::Suppressed
            } else {
                OutboxState::Pending
            },
            note: note.as_deref(),
            now,
        })?;
        for w in &cc {
            // The same message, delivered to the watcher: the cap counts per recipient.
            let mut w_note = None;
            if capped_kind {
                let sent = tx.automatic_sent_since(w, now - self.window())?;
                if sent >= self.cfg.loops.auto_reply_limit {
                    w_note = Some(format!(
                        "not sent: {sent} automatic mails to {w} in the last {:?} reach loops.auto_reply_limit ({})",
                        self.cfg.loops.auto_reply_window, self.cfg.loops.auto_reply_limit
                    ));
                    tracing::warn!(to = %w, kind, "automatic mail to a watcher suppressed by the per-recipient cap");
                }
            }
            let own = match &unwatch {
                Some((ticket_id, base, key)) => {
                    let url = format!("{base}/w/{}", key.token(*ticket_id, w));
                    let body = format!("{body}\n{}", lang.unwatch_footer(&url));
                    Some(outgoing(&body, Some(&composed.message_id))?.bytes)
                }
                None => None,
            };
            tx.enqueue(&NewOutbound {
                ticket_id: l.ticket.map(|t| t.id),
                inbound_id: l.inbound_id,
                kind,
                recipient: w,
                subject: &subject,
                message_id: &composed.message_id,
                automatic: capped_kind,
                body: own.as_deref().unwrap_or(&composed.bytes),
                state: if w_note.is_some() {
                    OutboxState::Suppressed
                } else {
                    OutboxState::Pending
                },
                note: w_note.as_deref(),
                now,
            })?;
        }
        if let Some(t) = l.ticket {
            tx.link_message_id(&composed.message_id, t.id)?;
        }
        if let Some(f) = &flag {
            tx.flag_outbox(id, f)?;
            tracing::warn!(
                to = l.to,
                kind,
                outbox = id,
                "mail written to a suppressed address: sent anyway, flagged"
            );
        }
        if let Some(n) = &note {
            tracing::warn!(to = l.to, kind, why = %n, "automatic mail not sent");
            Ok(Sent::Suppressed)
        } else {
            Ok(Sent::Pending)
        }
    }
}
