//! The heart: a batch of raw mails → parse → route → apply, in one write transaction. Each
//! mail runs inside a savepoint, so one that fails is quarantined alone and the rest of the
//! batch still commits. Outbound mail is rendered and written to the outbox inside the same
//! transaction, so a ticket change and the mail it owes people commit together or not at all.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::notify::{self, Automatic, Outgoing, Templates};
use crate::parse::{self, InboundMail, Limits, ParseFailure, Patterns};
use crate::registry::{Registry, RegistryFile};
use crate::route::{self, Decision, Quarantine, loops};
use crate::store::{
    self, NewArticle, NewInbound, NewOutbound, NewTicket, Store, TicketRow, WriteTx,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

/// One inbound message as a source hands it over.
#[derive(Debug, Clone)]
pub struct RawMail {
    /// Where it came from, for the operator: `maildir:new/1700000000.x`, `stdin`…
    pub source: String,
    pub bytes: Vec<u8>,
}

/// What one mail did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Created {
        ticket: String,
    },
    Appended {
        ticket: String,
    },
    Quarantined {
        code: String,
        reason: String,
    },
    /// Seen before (same Message-ID or same bytes): nothing changed.
    Duplicate,
}

/// Counts for one or more batches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Report {
    pub created: usize,
    pub appended: usize,
    pub quarantined: usize,
    pub duplicates: usize,
    /// Outbound mails written to the outbox (pending).
    pub outbound: usize,
    /// Automatic replies not sent because of the per-recipient cap.
    pub suppressed: usize,
}

impl Report {
    pub fn add(&mut self, o: &Report) {
        self.created += o.created;
        self.appended += o.appended;
        self.quarantined += o.quarantined;
        self.duplicates += o.duplicates;
        self.outbound += o.outbound;
        self.suppressed += o.suppressed;
    }

    pub fn mails(&self) -> usize {
        self.created + self.appended + self.quarantined + self.duplicates
    }
}

pub struct Pipeline {
    cfg: Arc<Config>,
    patterns: Patterns,
    registry: Arc<RegistryFile>,
    templates: Templates,
    clock: SharedClock,
}

impl Pipeline {
    pub fn new(
        cfg: Arc<Config>,
        registry: Arc<RegistryFile>,
        templates: Templates,
        clock: SharedClock,
    ) -> Pipeline {
        Pipeline {
            patterns: Patterns::new(
                cfg.tickets.key_pattern.clone(),
                &cfg.tickets.reference_prefix,
            ),
            cfg,
            registry,
            templates,
            clock,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn reference(&self, id: i64) -> String {
        reference(&self.cfg.tickets.reference_prefix, id)
    }

    /// Parses mails, on both cores when the batch is large enough to pay for a thread.
    pub fn parse_all(&self, mails: &[RawMail]) -> Vec<Result<InboundMail, ParseFailure>> {
        let limits = Limits {
            max_attachment_bytes: self.cfg.inbound.max_attachment_bytes,
        };
        let one = |m: &RawMail| self.parse_one(&m.bytes, limits);
        if mails.len() < 64 {
            return mails.iter().map(one).collect();
        }
        let half = mails.len() / 2;
        std::thread::scope(|s| {
            let back = s.spawn(|| mails[half..].iter().map(one).collect::<Vec<_>>());
            let mut out: Vec<_> = mails[..half].iter().map(one).collect();
            match back.join() {
                Ok(rest) => out.extend(rest),
                // parse() catches panics itself; should the thread still die, parse here.
                Err(_) => out.extend(mails[half..].iter().map(one)),
            }
            out
        })
    }

    fn parse_one(&self, raw: &[u8], limits: Limits) -> Result<InboundMail, ParseFailure> {
        if raw.len() > self.cfg.inbound.max_message_bytes {
            // Read the header section only: enough to answer the sender.
            let end = header_end(raw).min(256 * 1024);
            let mut head = raw[..end].to_vec();
            head.extend_from_slice(b"\r\n\r\n");
            return parse::parse(&head, &self.patterns, limits);
        }
        parse::parse(raw, &self.patterns, limits)
    }

    /// Processes a batch in one transaction and commits it. On `Err` nothing was committed and
    /// the caller must leave the mails where they are (or tell the MTA to retry).
    pub fn process(
        &self,
        store: &mut dyn Store,
        mails: &[RawMail],
    ) -> Result<(Report, Vec<Outcome>), store::StoreError> {
        let parsed = self.parse_all(mails);
        let registry = self.registry.current();
        let now = self.clock.now();
        let mut report = Report::default();
        let mut outcomes = Vec::with_capacity(mails.len());
        let mut tx = store.write()?;
        for (raw, parsed) in mails.iter().zip(parsed) {
            tx.savepoint()?;
            let mut r = Report::default();
            let outcome = match self.apply(tx.as_mut(), raw, &parsed, &registry, now, &mut r) {
                Ok(o) => {
                    tx.release_savepoint()?;
                    report.add(&r);
                    o
                }
                Err(e) => {
                    tx.rollback_to_savepoint()?;
                    tracing::error!(source = %raw.source, error = %e, "mail could not be applied; quarantined for replay");
                    let reason = format!(
                        "internal error while applying this mail ({e}); replay it once the cause is fixed"
                    );
                    tx.savepoint()?;
                    let key = match &parsed {
                        Ok(m) => m.dedup_key.clone(),
                        Err(f) => f.dedup_key.clone(),
                    };
                    tx.insert_inbound(&NewInbound {
                        dedup_key: &key,
                        message_id: parsed.as_ref().ok().and_then(|m| m.message_id.as_deref()),
                        source: &raw.source,
                        received_at: now,
                        from: parsed.as_ref().ok().and_then(|m| m.from.as_deref()),
                        subject: parsed.as_ref().map(|m| m.subject.as_str()).unwrap_or(""),
                        raw: &raw.bytes,
                        outcome: "quarantined",
                        reason_code: Some("internal_error"),
                        reason: Some(&reason),
                        ticket_id: None,
                    })?;
                    tx.release_savepoint()?;
                    report.quarantined += 1;
                    Outcome::Quarantined {
                        code: "internal_error".into(),
                        reason,
                    }
                }
            };
            outcomes.push(outcome);
        }
        tx.commit()?;
        Ok((report, outcomes))
    }

    fn apply(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        parsed: &Result<InboundMail, ParseFailure>,
        registry: &Registry,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<Outcome, ApplyError> {
        let mail = match parsed {
            Ok(m) => m,
            Err(f) => {
                if tx.inbound_exists(&f.dedup_key)? {
                    report.duplicates += 1;
                    return Ok(Outcome::Duplicate);
                }
                self.insert_inbound(
                    tx,
                    raw,
                    &f.dedup_key,
                    None,
                    now,
                    "quarantined",
                    Some(("unparseable", &f.reason)),
                    None,
                )?;
                report.quarantined += 1;
                return Ok(Outcome::Quarantined {
                    code: "unparseable".into(),
                    reason: f.reason.clone(),
                });
            }
        };
        if tx.inbound_exists(&mail.dedup_key)? {
            report.duplicates += 1;
            return Ok(Outcome::Duplicate);
        }

        if raw.bytes.len() > self.cfg.inbound.max_message_bytes {
            let q = Quarantine {
                code: "too_large",
                reason: format!(
                    "{} bytes is over inbound.max_message_size ({} bytes)",
                    raw.bytes.len(),
                    self.cfg.inbound.max_message_bytes
                ),
                reply: Some(route::ReplyInfo {
                    key: None,
                    language: None,
                }),
            };
            return self.quarantine(tx, raw, mail, q, now, report);
        }

        match route::route(mail, &self.cfg, registry, tx, now)? {
            Decision::NewTicket {
                customer,
                key,
                severity,
            } => {
                let plan = &customer.plan;
                let from = mail.from.as_deref().unwrap_or_default();
                let subject = if mail.subject.is_empty() {
                    "(no subject)"
                } else {
                    &mail.subject
                };
                let ticket_id = tx.insert_ticket(&NewTicket {
                    customer: &customer.id,
                    support_key: &key,
                    plan: &plan.name,
                    language: &plan.language,
                    status: "new",
                    severity,
                    stated_severity: mail.severity.as_ref().map(|s| s.as_written.as_str()),
                    subject,
                    requester: from,
                    requester_name: mail.from_name.as_deref(),
                    now,
                })?;
                let reference = self.reference(ticket_id);
                let inbound_id = self.insert_inbound(
                    tx,
                    raw,
                    &mail.dedup_key,
                    Some(mail),
                    now,
                    "created",
                    None,
                    Some(ticket_id),
                )?;
                self.add_article(tx, ticket_id, inbound_id, mail, now)?;
                let ticket = tx
                    .ticket(ticket_id)?
                    .ok_or(ApplyError::Vanished(ticket_id))?;
                let phone = plan.phone.as_deref().filter(|_| severity <= 2);
                let ctx = json!({
                    "reference": reference,
                    "subject": ticket.subject,
                    "severity": severity,
                    "stated_severity": ticket.stated_severity,
                    "phone": phone,
                    "contact_name": mail.from_name,
                    "contact_email": from,
                    "customer_name": customer.name,
                    "support_name": self.support_name(),
                });
                self.auto_reply(
                    tx,
                    mail,
                    Some(&ticket),
                    inbound_id,
                    "acknowledgement",
                    &plan.language,
                    &ctx,
                    now,
                    report,
                )?;
                self.agent_copy(tx, mail, &ticket, inbound_id, "new", registry, now, report)?;
                report.created += 1;
                tracing::info!(source = %raw.source, ticket = %reference, customer = %customer.id, severity, "ticket created");
                Ok(Outcome::Created { ticket: reference })
            }
            Decision::FollowUp { ticket } => {
                let inbound_id = self.insert_inbound(
                    tx,
                    raw,
                    &mail.dedup_key,
                    Some(mail),
                    now,
                    "appended",
                    None,
                    Some(ticket.id),
                )?;
                self.add_article(tx, ticket.id, inbound_id, mail, now)?;
                tx.touch_ticket(ticket.id, now)?;
                let reference = self.reference(ticket.id);
                if self.cfg.tickets.acknowledge_followups {
                    let ctx = json!({
                        "reference": reference,
                        "subject": ticket.subject,
                        "contact_name": mail.from_name,
                        "support_name": self.support_name(),
                    });
                    self.auto_reply(
                        tx,
                        mail,
                        Some(&ticket),
                        inbound_id,
                        "followup_received",
                        &ticket.language,
                        &ctx,
                        now,
                        report,
                    )?;
                }
                self.agent_copy(
                    tx, mail, &ticket, inbound_id, "update", registry, now, report,
                )?;
                report.appended += 1;
                tracing::info!(source = %raw.source, ticket = %reference, "follow-up added");
                Ok(Outcome::Appended { ticket: reference })
            }
            Decision::Quarantine(q) => self.quarantine(tx, raw, mail, q, now, report),
        }
    }

    fn quarantine(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        mail: &InboundMail,
        mut q: Quarantine,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<Outcome, ApplyError> {
        if q.reply.is_some()
            && let Some(why) = loops::no_auto_reply(mail, &self.cfg.loops)
        {
            q.reason.push_str(&format!("; not answered: {why}"));
            q.reply = None;
        }
        let inbound_id = self.insert_inbound(
            tx,
            raw,
            &mail.dedup_key,
            Some(mail),
            now,
            "quarantined",
            Some((q.code, &q.reason)),
            None,
        )?;
        if let Some(info) = &q.reply {
            let lang = info
                .language
                .as_deref()
                .unwrap_or(&self.cfg.tickets.default_language);
            let ctx = json!({
                "reason": q.code,
                "key": info.key,
                "subject": mail.subject,
                "contact_name": mail.from_name,
                "contact_email": mail.from,
                "key_help": self.cfg.tickets.key_help,
                "limit": format!("{} MB", self.cfg.inbound.max_message_bytes / (1024 * 1024)),
                "support_name": self.support_name(),
            });
            self.auto_reply(
                tx,
                mail,
                None,
                inbound_id,
                "rejection",
                lang,
                &ctx,
                now,
                report,
            )?;
        }
        tracing::info!(source = %raw.source, code = q.code, reason = %q.reason, "mail quarantined");
        report.quarantined += 1;
        Ok(Outcome::Quarantined {
            code: q.code.to_string(),
            reason: q.reason,
        })
    }

    fn support_name(&self) -> String {
        self.cfg
            .outbound
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Support".to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_inbound(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        dedup_key: &str,
        mail: Option<&InboundMail>,
        now: DateTime<Utc>,
        outcome: &str,
        reason: Option<(&str, &str)>,
        ticket_id: Option<i64>,
    ) -> store::Result<i64> {
        tx.insert_inbound(&NewInbound {
            dedup_key,
            message_id: mail.and_then(|m| m.message_id.as_deref()),
            source: &raw.source,
            received_at: now,
            from: mail.and_then(|m| m.from.as_deref()),
            subject: mail.map_or("", |m| m.subject.as_str()),
            raw: &raw.bytes,
            outcome,
            reason_code: reason.map(|r| r.0),
            reason: reason.map(|r| r.1),
            ticket_id,
        })
    }

    fn add_article(
        &self,
        tx: &mut dyn WriteTx,
        ticket_id: i64,
        inbound_id: i64,
        mail: &InboundMail,
        now: DateTime<Utc>,
    ) -> store::Result<()> {
        let article = tx.insert_article(&NewArticle {
            ticket_id,
            inbound_id: Some(inbound_id),
            kind: "customer",
            author: mail.from.as_deref().unwrap_or_default(),
            body: &mail.text,
            quoted: &mail.quoted,
            now,
        })?;
        for a in &mail.attachments {
            tx.insert_attachment(
                article,
                &a.filename,
                &a.content_type,
                a.size,
                a.data.as_deref(),
            )?;
        }
        if let Some(id) = &mail.message_id {
            tx.link_message_id(id, ticket_id)?;
        }
        Ok(())
    }

    /// Renders and enqueues an automatic answer to the sender of `mail`, unless loop rules
    /// forbid it (then nothing is written) or the per-recipient cap is reached (then the row
    /// is written as `suppressed`, so the operator sees it).
    #[allow(clippy::too_many_arguments)]
    fn auto_reply<S: Serialize>(
        &self,
        tx: &mut dyn WriteTx,
        mail: &InboundMail,
        ticket: Option<&TicketRow>,
        inbound_id: i64,
        kind: &str,
        lang: &str,
        ctx: &S,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<(), ApplyError> {
        let Some(to) = mail.from.as_deref() else {
            return Ok(());
        };
        if let Some(why) = loops::no_auto_reply(mail, &self.cfg.loops) {
            tracing::info!(to, kind, why = %why, "no automatic reply");
            return Ok(());
        }
        let window = chrono::Duration::from_std(self.cfg.loops.auto_reply_window)
            .unwrap_or(chrono::Duration::hours(3));
        let sent = tx.automatic_sent_since(to, now - window)?;
        let capped = sent >= self.cfg.loops.auto_reply_limit;
        let (subject, body) = self.templates.render(kind, lang, ctx)?;
        let mut references: Vec<String> = mail
            .references
            .iter()
            .rev()
            .take(9)
            .rev()
            .cloned()
            .collect();
        if let Some(id) = &mail.message_id {
            references.push(id.clone());
        }
        let tag = ticket
            .map(|t| self.reference(t.id))
            .unwrap_or_else(|| kind.to_string());
        let composed = match notify::compose(
            &self.cfg.outbound,
            now,
            &Outgoing {
                tag: &tag,
                to,
                to_name: mail.from_name.as_deref(),
                from_name: None,
                subject: &subject,
                body: &body,
                in_reply_to: mail.message_id.as_deref(),
                references: &references,
                automatic: Automatic::Replied,
                attachments: &[],
            },
        ) {
            Ok(c) => c,
            Err(notify::NotifyError::BadRecipient(a)) => {
                tracing::warn!(to = %a, kind, "no automatic reply: the sender address cannot be written to");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let note = capped.then(|| {
            format!(
                "not sent: {sent} automatic mails to {to} in the last {:?} reach loops.auto_reply_limit ({})",
                self.cfg.loops.auto_reply_window, self.cfg.loops.auto_reply_limit
            )
        });
        tx.enqueue(&NewOutbound {
            ticket_id: ticket.map(|t| t.id),
            inbound_id: Some(inbound_id),
            kind,
            recipient: to,
            subject: &subject,
            message_id: &composed.message_id,
            automatic: true,
            body: &composed.bytes,
            state: if capped { "suppressed" } else { "pending" },
            note: note.as_deref(),
            now,
        })?;
        if let Some(t) = ticket {
            tx.link_message_id(&composed.message_id, t.id)?;
        }
        if capped {
            tracing::warn!(
                to,
                kind,
                "automatic reply suppressed by the per-recipient cap"
            );
            report.suppressed += 1;
        } else {
            report.outbound += 1;
        }
        Ok(())
    }

    /// Copies a new ticket or a customer update to the plan's agent team, with attachments,
    /// threaded so that an agent's reply comes back to the support mailbox and the ticket.
    #[allow(clippy::too_many_arguments)]
    fn agent_copy(
        &self,
        tx: &mut dyn WriteTx,
        mail: &InboundMail,
        ticket: &TicketRow,
        inbound_id: i64,
        update: &str,
        registry: &Registry,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<(), ApplyError> {
        let Some(customer) = registry.customer(&ticket.customer) else {
            return Ok(());
        };
        let Some(team) = customer.plan.agent_team.as_deref() else {
            return Ok(());
        };
        let reference = self.reference(ticket.id);
        let contact = match &mail.from_name {
            Some(n) => format!("{n} <{}>", mail.from.as_deref().unwrap_or_default()),
            None => mail.from.clone().unwrap_or_default(),
        };
        let text = if mail.quoted.is_empty() {
            mail.text.clone()
        } else {
            format!("{}\n\n{}", mail.text, mail.quoted)
        };
        let ctx = json!({
            "reference": reference,
            "subject": ticket.subject,
            "severity": ticket.severity,
            "update": update,
            "contact_display": contact,
            "customer_name": customer.name,
            "plan": customer.plan.name,
            "text": text,
        });
        let (subject, body) =
            self.templates
                .render("agent_notification", &ticket.language, &ctx)?;
        let from_name = format!(
            "{} via {}",
            mail.from_name.as_deref().unwrap_or(contact.as_str()),
            self.support_name()
        );
        let references: Vec<String> = mail.message_id.iter().cloned().collect();
        let composed = notify::compose(
            &self.cfg.outbound,
            now,
            &Outgoing {
                tag: &reference,
                to: team,
                to_name: None,
                from_name: Some(&from_name),
                subject: &subject,
                body: &body,
                in_reply_to: mail.message_id.as_deref(),
                references: &references,
                automatic: Automatic::Generated,
                attachments: &mail.attachments,
            },
        )?;
        tx.enqueue(&NewOutbound {
            ticket_id: Some(ticket.id),
            inbound_id: Some(inbound_id),
            kind: "agent_notification",
            recipient: team,
            subject: &subject,
            message_id: &composed.message_id,
            automatic: false,
            body: &composed.bytes,
            state: "pending",
            note: None,
            now,
        })?;
        tx.link_message_id(&composed.message_id, ticket.id)?;
        report.outbound += 1;
        Ok(())
    }
}

/// `TKT-000123`.
pub fn reference(prefix: &str, id: i64) -> String {
    format!("{prefix}-{id:06}")
}

/// Parses `TKT-000123` (any case, any zero padding) to the ticket id.
pub fn parse_reference(prefix: &str, text: &str) -> Option<i64> {
    let t = text.trim();
    let (p, n) = t.split_once('-')?;
    if !p.eq_ignore_ascii_case(prefix) {
        return None;
    }
    n.parse().ok().filter(|n| *n > 0)
}

/// Offset just past the header section (the first empty line), or the whole length.
fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len())
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    #[error("ticket {0} vanished inside its own transaction")]
    Vanished(i64),
}
