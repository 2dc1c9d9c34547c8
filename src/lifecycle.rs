//! Runs the support process on a ticket (SPEC §3–§6): creating it with its checklist and SLA
//! clock, what customers' and agents' mail does, status changes with their side effects
//! (clock paused or resumed, reminders reset), and the timers: reminders, closure warnings,
//! automatic closes and escalations. Everything happens inside the caller's transaction and
//! every mail goes through the [`Mailer`].

use crate::config::Config;
use crate::mailer::{Letter, MailError, Mailer};
use crate::notify::{self, Automatic, Kind, Lang, Notice, WaitingFor};
use crate::parse::{Attachment, InboundMail};
use crate::registry::{Customer, Plan, Registry};
use crate::sla;
use crate::store::{self, NewArticle, SlaState, TicketRow, Timer, WriteTx};
use crate::ticket_ref::reference;
use crate::workflow::{AgentMail, Command, CustomerEffect, Profile, Status};
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub type Result<T> = std::result::Result<T, MailError>;

/// Timer kinds.
pub const SLA: &str = "sla";
pub const FOLLOWUP: &str = "followup";

pub struct Engine<'a> {
    pub cfg: &'a Config,
    pub registry: &'a Registry,
    pub mailer: Mailer<'a>,
    pub now: DateTime<Utc>,
}

fn status(t: &TicketRow) -> Status {
    t.status
}

impl Engine<'_> {
    pub fn plan(&self, t: &TicketRow) -> Arc<Plan> {
        self.registry.plan(&t.plan)
    }

    fn profile(t: &TicketRow) -> Profile {
        t.profile
    }

    pub fn reference(&self, t: &TicketRow) -> String {
        reference(self.mailer.prefix, t.id)
    }

    fn status_name(t: &TicketRow) -> &'static str {
        Self::profile(t).display(status(t))
    }

    /// A new ticket from a customer's first mail: severity (the lowest target for anything
    /// but an incident), the required-information checklist, the SLA clock when complete.
    pub fn new_ticket(
        &self,
        tx: &mut dyn WriteTx,
        customer: &Customer,
        key: &str,
        severity: u8,
        mail: &InboundMail,
        parent_id: Option<i64>,
    ) -> Result<TicketRow> {
        let plan = &customer.plan;
        let issue_type = mail.issue_type.unwrap_or("incident");
        let severity = if matches!(issue_type, "incident" | "hosting_incident") {
            severity
        } else {
            4
        };
        let words = format!("{}\n{}", mail.subject, mail.text);
        let missing: Vec<String> = plan
            .required
            .iter()
            .filter(|i| !i.present_in(&words))
            .map(|i| i.name.clone())
            .collect();
        let waiting = !missing.is_empty();
        let mut t = TicketRow {
            id: 0,
            customer: customer.id.clone(),
            support_key: key.to_string(),
            plan: plan.name.clone(),
            language: plan.language.clone(),
            profile: plan.profile,
            issue_type: issue_type.to_string(),
            status: if waiting {
                Status::WaitingOnCustomer
            } else {
                Status::New
            },
            severity,
            stated_severity: mail.severity.as_ref().map(|s| s.as_written.clone()),
            subject: if mail.subject.is_empty() {
                "(no subject)".into()
            } else {
                mail.subject.clone()
            },
            requester: mail.from.clone().unwrap_or_default(),
            requester_name: mail.from_name.clone(),
            reason: None,
            parent_id,
            missing_info: missing,
            followup_base_at: waiting.then_some(self.now),
            followup_stage: 0,
            survey_score: None,
            sla: SlaState {
                target_secs: plan.target_secs(severity),
                ..SlaState::default()
            },
            created_at: self.now,
            updated_at: self.now,
        };
        if !waiting {
            sla::start(&mut t.sla, &plan.calendar, self.now);
        }
        t.id = tx.insert_ticket(&t)?;
        // A new ticket has no timers to clear: only set the ones it needs.
        if let Some(due) = t.sla.due_at {
            tx.set_timer(t.id, SLA, due)?;
        }
        if let Some(due) = self.followup_due(&t, plan) {
            tx.set_timer(t.id, FOLLOWUP, due)?;
        }
        Ok(t)
    }

    /// Moves a ticket to `to` with its side effects: history, SLA pause/resume, reminders
    /// started or reset.
    pub fn set_status(
        &self,
        tx: &mut dyn WriteTx,
        t: &mut TicketRow,
        plan: &Plan,
        to: Status,
        actor: &str,
        reason: Option<&str>,
    ) -> store::Result<()> {
        let from = status(t);
        if from == to {
            return Ok(());
        }
        tx.insert_history(t.id, self.now, from.as_str(), to.as_str(), actor, reason)?;
        if to == Status::WaitingOnCustomer {
            sla::pause(&mut t.sla, &plan.calendar, self.now);
        } else if from == Status::WaitingOnCustomer {
            sla::resume(&mut t.sla, &plan.calendar, self.now);
        }
        if matches!(to, Status::WaitingOnCustomer | Status::Resolved) {
            t.followup_base_at = Some(self.now);
        } else {
            t.followup_base_at = None;
        }
        t.followup_stage = 0;
        if matches!(to, Status::Resolved | Status::Closed) {
            t.reason = reason.map(str::to_string);
            // A resolution or closure notice answers the customer: the clock stops, and a
            // ticket closed before any reply is never escalated.
            sla::respond(&mut t.sla, &plan.calendar, self.now);
        }
        t.status = to;
        t.updated_at = self.now;
        Ok(())
    }

    /// Arms or clears the ticket's timers to match its state.
    pub fn arm(&self, tx: &mut dyn WriteTx, t: &TicketRow, plan: &Plan) -> store::Result<()> {
        match (t.sla.due_at, t.sla.breached_at) {
            (Some(due), None) => tx.set_timer(t.id, SLA, due)?,
            _ => tx.clear_timer(t.id, SLA)?,
        }
        match self.followup_due(t, plan) {
            Some(due) => tx.set_timer(t.id, FOLLOWUP, due)?,
            None => tx.clear_timer(t.id, FOLLOWUP)?,
        }
        Ok(())
    }

    fn followup_due(&self, t: &TicketRow, plan: &Plan) -> Option<DateTime<Utc>> {
        let base = t.followup_base_at?;
        let r = &plan.reminders;
        let wait = match status(t) {
            Status::WaitingOnCustomer if t.followup_stage <= r.count => r.interval,
            Status::WaitingOnCustomer if t.followup_stage == r.count + 1 => r.closure_warning?,
            Status::Resolved if t.followup_stage <= r.count => r.interval,
            _ => return None,
        };
        Some(plan.calendar.add(base, wait))
    }

    /// A customer's follow-up (its article is already added).
    pub fn customer_update(
        &self,
        tx: &mut dyn WriteTx,
        t: &mut TicketRow,
        mail: &InboundMail,
        inbound_id: i64,
    ) -> Result<()> {
        self.customer_update_as(tx, t, mail, inbound_id, true)
    }

    /// [`Engine::customer_update`]; `decide`: whether the mail may make the customer's
    /// decisions (accept, refuse, reopen, a survey score). An unauthenticated mail without a
    /// reply token may not: it is kept on the ticket and counts as a reply, nothing more.
    pub fn customer_update_as(
        &self,
        tx: &mut dyn WriteTx,
        t: &mut TicketRow,
        mail: &InboundMail,
        inbound_id: i64,
        decide: bool,
    ) -> Result<()> {
        let plan = self.plan(t);
        let actor = mail.from.clone().unwrap_or_default();
        // The checklist: what this mail brings.
        if !t.missing_info.is_empty() {
            let words = format!("{}\n{}", mail.subject, mail.text);
            t.missing_info.retain(|name| {
                plan.required
                    .iter()
                    .find(|i| &i.name == name)
                    .is_none_or(|i| !i.present_in(&words))
            });
            if t.missing_info.is_empty() && t.sla.started_at.is_none() {
                // Correctly logged now (XMPro §2): the clock starts. A ticket an agent has
                // already moved on keeps its status; the mail then counts as usual below.
                sla::start(&mut t.sla, &plan.calendar, self.now);
                if status(t) == Status::WaitingOnCustomer {
                    let to = match Self::profile(t) {
                        Profile::Exo => Status::Open,
                        Profile::Wso2 => Status::WaitingOnSupport,
                    };
                    self.set_status(
                        tx,
                        t,
                        &plan,
                        to,
                        &actor,
                        Some("required information complete"),
                    )?;
                    self.arm(tx, t, &plan)?;
                    tx.save_ticket(t)?;
                    return Ok(());
                }
            }
        }
        let effect = match Self::profile(t).customer_effect(status(t), &mail.text) {
            e @ (CustomerEffect::Accept
            | CustomerEffect::Refuse(_)
            | CustomerEffect::Reopen
            | CustomerEffect::Survey(_))
                if !decide =>
            {
                tracing::warn!(ticket = t.id, from = %actor, effect = ?e,
                    "unauthenticated mail without a reply token: kept on the ticket, its status change not applied");
                CustomerEffect::Append
            }
            e => e,
        };
        match effect {
            CustomerEffect::Resume(to) if t.missing_info.is_empty() => {
                self.set_status(tx, t, &plan, to, &actor, Some("customer replied"))?
            }
            // Kept on the ticket; while it waits for missing items the wait starts again
            // from this mail. (A reply to a closed eXo ticket reaches here only when its key
            // is no longer active: the pipeline opens the linked ticket otherwise.)
            CustomerEffect::Append
            | CustomerEffect::NewLinkedTicket
            | CustomerEffect::Resume(_) => {
                if status(t) == Status::WaitingOnCustomer {
                    t.followup_base_at = Some(self.now);
                    t.followup_stage = 0;
                }
            }
            CustomerEffect::Refuse(to) => {
                self.set_status(tx, t, &plan, to, &actor, Some("solution refused"))?
            }
            CustomerEffect::Reopen => self.set_status(
                tx,
                t,
                &plan,
                Status::Reopened,
                &actor,
                Some("reopened by the customer"),
            )?,
            CustomerEffect::Accept => {
                self.set_status(
                    tx,
                    t,
                    &plan,
                    Status::Closed,
                    &actor,
                    Some("solution accepted"),
                )?;
                self.closure_notice(tx, t, &plan, "", Some(mail), Some(inbound_id))?;
            }
            CustomerEffect::Survey(score) => {
                t.survey_score = Some(score);
                let notice = Notice::SurveyThanks(notify::SurveyThanks {
                    reference: self.reference(t),
                    subject: t.subject.clone(),
                    contact_name: t.requester_name.clone(),
                    score,
                    support_name: self.mailer.support_name(),
                });
                self.mailer.send(
                    tx,
                    self.to_customer(t, &notice, Some(mail), Some(inbound_id), Automatic::Replied),
                    self.now,
                )?;
            }
        }
        t.updated_at = self.now;
        self.arm(tx, t, &plan)?;
        tx.save_ticket(t)?;
        Ok(())
    }

    fn to_customer<'l>(
        &self,
        t: &'l TicketRow,
        notice: &'l Notice,
        answers: Option<&'l InboundMail>,
        inbound_id: Option<i64>,
        automatic: Automatic,
    ) -> Letter<'l> {
        Letter {
            notice,
            lang: &t.language,
            to: &t.requester,
            to_name: t.requester_name.as_deref(),
            ticket: Some(t),
            inbound_id,
            answers,
            automatic,
            from_name: None,
            attachments: &[],
            to_staff: false,
        }
    }

    /// The closure notice's context; `text` is the agent's, or empty.
    fn closure(&self, t: &TicketRow, plan: &Plan, text: &str) -> notify::Closure {
        notify::Closure {
            reference: self.reference(t),
            subject: t.subject.clone(),
            contact_name: t.requester_name.clone(),
            reason: t.reason.clone(),
            text: text.to_string(),
            survey: plan.survey,
            reopen: Self::profile(t) == Profile::Wso2,
            support_name: self.mailer.support_name(),
        }
    }

    /// The customer's name from the registry, or its id.
    fn customer_name(&self, t: &TicketRow) -> String {
        self.registry
            .customer(&t.customer)
            .map_or(t.customer.clone(), |c| c.name.clone())
    }

    fn closure_notice(
        &self,
        tx: &mut dyn WriteTx,
        t: &TicketRow,
        plan: &Plan,
        text: &str,
        answers: Option<&InboundMail>,
        inbound_id: Option<i64>,
    ) -> Result<()> {
        let notice = Notice::Closure(self.closure(t, plan, text));
        let auto = if answers.is_some() {
            Automatic::Replied
        } else {
            Automatic::Generated
        };
        self.mailer.send(
            tx,
            self.to_customer(t, &notice, answers, inbound_id, auto),
            self.now,
        )?;
        Ok(())
    }

    /// An agent's reply or CLI action: all commands are checked first and nothing is applied
    /// when one is wrong (the errors are returned). Otherwise the commands apply in order,
    /// and the text is relayed to the customer (the first public answer stops the SLA clock)
    /// or kept as an internal note.
    #[allow(clippy::too_many_arguments)]
    pub fn agent_update(
        &self,
        tx: &mut dyn WriteTx,
        t: &mut TicketRow,
        am: &AgentMail,
        author: &str,
        author_name: Option<&str>,
        inbound_id: Option<i64>,
    ) -> Result<Vec<String>> {
        let plan = self.plan(t);
        let profile = Self::profile(t);
        // Check every transition against the status it would start from.
        let mut errors = am.errors.clone();
        let mut at = status(t);
        for c in &am.commands {
            let to = match c {
                Command::Status(s) => Some(*s),
                Command::Resolve(_) => Some(Status::Resolved),
                Command::Close(_) => Some(Status::Closed),
                Command::Severity(_) | Command::CcAdd(_) | Command::CcRemove(_) => None,
            };
            match c {
                Command::CcAdd(a) if self.cfg.loops.own_addresses.contains(a) => {
                    errors.push(format!("#cc add {a}: that is one of our own addresses"));
                }
                Command::CcAdd(a) if *a == t.requester => {
                    errors.push(format!(
                        "#cc add {a}: that is the requester, who gets every public update already"
                    ));
                }
                Command::CcAdd(a) if self.registry.is_agent(a) => {
                    errors.push(format!(
                        "#cc add {a}: that is an agent; agents follow tickets through the agent team"
                    ));
                }
                Command::CcRemove(a)
                    if !am.commands.contains(&Command::CcAdd(a.clone()))
                        && !tx.watchers(t.id)?.iter().any(|w| &w.address == a) =>
                {
                    errors.push(format!("#cc remove {a}: not a watcher of this ticket"));
                }
                _ => {}
            }
            if let Some(to) = to {
                if to != at && !profile.can_transition(at, to) {
                    errors.push(format!(
                        "cannot go from {} to {} in the {} workflow",
                        profile.display(at),
                        profile.display(to),
                        profile.name()
                    ));
                }
                at = to;
            }
        }
        if errors.is_empty() && am.commands.is_empty() && am.body.is_empty() {
            errors.push("the mail has neither commands nor text".into());
        }
        if !errors.is_empty() {
            let notice = Notice::CommandError(notify::CommandError {
                reference: self.reference(t),
                subject: t.subject.clone(),
                errors: errors.clone(),
                agent_name: author_name.map(str::to_string),
                support_name: self.mailer.support_name(),
            });
            if author.contains('@') {
                let letter = Letter {
                    notice: &notice,
                    lang: &t.language,
                    to: author,
                    to_name: author_name,
                    ticket: Some(t),
                    inbound_id,
                    answers: None,
                    automatic: Automatic::Replied,
                    from_name: None,
                    attachments: &[],
                    to_staff: true,
                };
                self.mailer.send(tx, letter, self.now)?;
            }
            return Ok(errors);
        }

        let before = status(t);
        let mut notice: Option<Kind> = None;
        for c in &am.commands {
            match c {
                Command::Severity(n) => {
                    t.severity = *n;
                    let waiting = status(t) == Status::WaitingOnCustomer;
                    sla::retarget(
                        &mut t.sla,
                        &plan.calendar,
                        plan.target_secs(*n),
                        self.now,
                        waiting,
                    );
                }
                Command::Status(s) => {
                    self.set_status(tx, t, &plan, *s, author, None)?;
                    notice = notice.or(Some(Kind::StatusChange));
                }
                Command::Resolve(reason) => {
                    self.set_status(tx, t, &plan, Status::Resolved, author, Some(reason))?;
                    notice = Some(Kind::Resolution);
                }
                Command::Close(reason) => {
                    self.set_status(tx, t, &plan, Status::Closed, author, Some(reason))?;
                    notice = Some(Kind::Closure);
                }
                Command::CcAdd(a) => {
                    tx.add_watcher(t.id, a, author, self.now, true)?;
                }
                Command::CcRemove(a) => {
                    tx.remove_watcher(t.id, a, author, self.now)?;
                }
            }
        }
        // Files without text (`#resolve fix` with the patch attached) are kept too.
        if !am.body.is_empty() || !am.attachments.is_empty() {
            let article = tx.insert_article(&NewArticle {
                ticket_id: t.id,
                inbound_id,
                kind: if am.note { "note" } else { "agent" },
                author,
                body: &am.body,
                quoted: "",
                now: self.now,
            })?;
            for a in &am.attachments {
                tx.insert_attachment(
                    article,
                    &a.filename,
                    &a.content_type,
                    a.size,
                    a.data.as_deref(),
                )?;
            }
        }
        let public = !am.note && !am.body.is_empty();
        if public {
            sla::respond(&mut t.sla, &plan.calendar, self.now);
            if status(t) == Status::New {
                self.set_status(tx, t, &plan, Status::InProgress, author, None)?;
            }
        }
        let text = if am.note { "" } else { am.body.as_str() };
        let via = format!(
            "{} via {}",
            author_name.unwrap_or(author),
            self.mailer.support_name()
        );
        let kind = match notice {
            Some(k) => Some(k),
            None if public => Some(Kind::AgentReply),
            None => None,
        };
        if let Some(kind) = kind {
            let agent_name = author_name.unwrap_or(author).to_string();
            let notice = match kind {
                Kind::StatusChange => Notice::StatusChange(notify::StatusChange {
                    reference: self.reference(t),
                    subject: t.subject.clone(),
                    contact_name: t.requester_name.clone(),
                    agent_name,
                    text: text.to_string(),
                    status_name: Self::status_name(t).to_string(),
                    previous_status_name: profile.display(before).to_string(),
                    waiting_on_customer: status(t) == Status::WaitingOnCustomer,
                    support_name: self.mailer.support_name(),
                }),
                Kind::Resolution => Notice::Resolution(notify::Resolution {
                    reference: self.reference(t),
                    subject: t.subject.clone(),
                    contact_name: t.requester_name.clone(),
                    agent_name,
                    text: text.to_string(),
                    status_name: Self::status_name(t).to_string(),
                    reason: t.reason.clone(),
                    support_name: self.mailer.support_name(),
                }),
                Kind::Closure => Notice::Closure(self.closure(t, &plan, text)),
                // Kind::AgentReply, the only other kind set above.
                _ => Notice::AgentReply(notify::AgentReply {
                    reference: self.reference(t),
                    subject: t.subject.clone(),
                    contact_name: t.requester_name.clone(),
                    agent_name,
                    text: text.to_string(),
                    status_name: Self::status_name(t).to_string(),
                    support_name: self.mailer.support_name(),
                }),
            };
            let (relay, omitted) = if am.note {
                (Vec::new(), Vec::new())
            } else {
                relayable(self.cfg, &am.attachments)
            };
            let mut letter = self.to_customer(t, &notice, None, inbound_id, Automatic::Human);
            letter.from_name = Some(&via);
            letter.attachments = &relay;
            self.mailer.send(tx, letter, self.now)?;
            if !omitted.is_empty() {
                self.attachments_omitted(tx, t, &omitted, author, author_name, inbound_id)?;
            }
        }
        t.updated_at = self.now;
        self.arm(tx, t, &plan)?;
        tx.save_ticket(t)?;
        Ok(Vec::new())
    }

    /// Tells the agent which files of their answer were left out: an internal note on the
    /// ticket, and a mail when the agent wrote from an address.
    fn attachments_omitted(
        &self,
        tx: &mut dyn WriteTx,
        t: &TicketRow,
        omitted: &[String],
        author: &str,
        author_name: Option<&str>,
        inbound_id: Option<i64>,
    ) -> Result<()> {
        let text = format!(
            "Not sent to the customer with {author}'s answer:\n{}",
            omitted
                .iter()
                .map(|o| format!("- {o}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tx.insert_article(&NewArticle {
            ticket_id: t.id,
            inbound_id,
            kind: "note",
            author: "system",
            body: &text,
            quoted: "",
            now: self.now,
        })?;
        tracing::warn!(ticket = %self.reference(t), agent = author, omitted = ?omitted,
            "attachments left out of the mail to the customer");
        if author.contains('@') {
            let notice = Notice::AttachmentsOmitted(notify::AttachmentsOmitted {
                reference: self.reference(t),
                subject: t.subject.clone(),
                agent_name: author_name.map(str::to_string),
                omitted: omitted.to_vec(),
                support_name: self.mailer.support_name(),
            });
            let mut letter = Letter::to_staff(&notice, &t.language, author, t);
            letter.to_name = author_name;
            letter.inbound_id = inbound_id;
            self.mailer.send(tx, letter, self.now)?;
        }
        Ok(())
    }

    /// Fires one due timer; returns what it did, for the operator.
    /// The timer is re-armed (or cleared) from the ticket's new state by `arm`: a fired
    /// timer always moves past `now` or goes.
    pub fn fire(&self, tx: &mut dyn WriteTx, timer: &Timer) -> Result<String> {
        let Some(mut t) = tx.ticket(timer.ticket_id)? else {
            tx.clear_timer(timer.ticket_id, &timer.kind)?;
            return Ok("ticket gone: timer dropped".into());
        };
        let plan = self.plan(&t);
        let what = match timer.kind.as_str() {
            SLA => self.escalate(tx, &mut t, &plan)?,
            FOLLOWUP => self.followup(tx, &mut t, &plan)?,
            other => {
                tx.clear_timer(t.id, other)?;
                format!("unknown timer kind `{other}` dropped")
            }
        };
        self.arm(tx, &t, &plan)?;
        tx.save_ticket(&t)?;
        Ok(what)
    }

    fn escalate(&self, tx: &mut dyn WriteTx, t: &mut TicketRow, plan: &Plan) -> Result<String> {
        let (Some(due), None, None) = (t.sla.due_at, t.sla.breached_at, t.sla.responded_at) else {
            return Ok("SLA timer no longer applies".into());
        };
        if due > self.now {
            return Ok("SLA not yet due".into());
        }
        if !status(t).is_open() {
            t.sla.due_at = None;
            return Ok("SLA no longer applies: the ticket is resolved or closed".into());
        }
        t.sla.breached_at = Some(self.now);
        let target = t.sla.target_secs.unwrap_or(0);
        tx.insert_escalation(t.id, self.now, t.severity, due, target)?;
        let target_text = plan.response_targets[usize::from(t.severity.clamp(1, 4)) - 1]
            .clone()
            .unwrap_or_else(|| sla::human(target));
        // The times in the ticket's language: the managers get the same mail in it.
        let lang = Lang::or_english(&t.language);
        let ctx = notify::Escalation {
            reference: self.reference(t),
            subject: t.subject.clone(),
            contact_name: t.requester_name.clone(),
            customer_name: self.customer_name(t),
            requester: t.requester.clone(),
            severity: t.severity,
            target: lang.response_target(&target_text, &plan.calendar_name),
            due_at: lang.datetime(&plan.calendar, due),
            started_at: t.sla.started_at.map(|s| lang.datetime(&plan.calendar, s)),
            status_name: Self::status_name(t).to_string(),
            plan: plan.name.clone(),
            support_name: self.mailer.support_name(),
        };
        let to_managers = Notice::EscalationManager(ctx.clone());
        let notice = Notice::EscalationCustomer(ctx);
        self.mailer.send(
            tx,
            self.to_customer(t, &notice, None, None, Automatic::Generated),
            self.now,
        )?;
        for m in &plan.managers {
            let letter = Letter::to_staff(&to_managers, &t.language, m, t);
            self.mailer.send(tx, letter, self.now)?;
        }
        Ok(format!(
            "response target missed (due {}): escalated to {} manager(s) and the customer",
            due.to_rfc3339(),
            plan.managers.len()
        ))
    }

    fn followup(&self, tx: &mut dyn WriteTx, t: &mut TicketRow, plan: &Plan) -> Result<String> {
        let r = &plan.reminders;
        let st = status(t);
        let waiting_for = match st {
            Status::WaitingOnCustomer => WaitingFor::Information,
            Status::Resolved => WaitingFor::Acceptance,
            _ => return Ok("follow-up timer no longer applies".into()),
        };
        if t.followup_stage < r.count {
            t.followup_stage += 1;
            t.followup_base_at = Some(self.now);
            let last = t.followup_stage == r.count;
            let closes_after = last
                && (st == Status::Resolved || (r.closure_warning.is_none() && !r.confirm_close));
            let notice = Notice::Reminder(notify::Reminder {
                reference: self.reference(t),
                subject: t.subject.clone(),
                contact_name: t.requester_name.clone(),
                number: t.followup_stage,
                total: r.count,
                waiting_for,
                missing: t.missing_info.clone(),
                status_name: Self::status_name(t).to_string(),
                closes_after,
                support_name: self.mailer.support_name(),
            });
            self.mailer.send(
                tx,
                self.to_customer(t, &notice, None, None, Automatic::Generated),
                self.now,
            )?;
            return Ok(format!(
                "reminder {} of {} sent ({})",
                t.followup_stage,
                r.count,
                waiting_for.name()
            ));
        }
        if st == Status::Resolved {
            self.set_status(
                tx,
                t,
                plan,
                Status::Closed,
                "system",
                Some("solution assumed valid"),
            )?;
            self.closure_notice(tx, t, plan, "", None, None)?;
            return Ok("closed: solution assumed valid".into());
        }
        if t.followup_stage == r.count
            && let Some(text) = &r.closure_warning_text
        {
            t.followup_stage += 1;
            t.followup_base_at = Some(self.now);
            let notice = Notice::ClosureWarning(notify::ClosureWarning {
                reference: self.reference(t),
                subject: t.subject.clone(),
                contact_name: t.requester_name.clone(),
                period: Lang::or_english(&t.language).period(text),
                missing: t.missing_info.clone(),
                support_name: self.mailer.support_name(),
            });
            self.mailer.send(
                tx,
                self.to_customer(t, &notice, None, None, Automatic::Generated),
                self.now,
            )?;
            return Ok(format!(
                "closure warning sent: closed within {} without an answer",
                Lang::En.period(text)
            ));
        }
        if r.confirm_close {
            t.followup_stage = r.count + 2;
            let notice = Notice::CloseConfirmation(notify::CloseConfirmation {
                reference: self.reference(t),
                subject: t.subject.clone(),
                customer_name: self.customer_name(t),
                requester: t.requester.clone(),
                reminders: r.count,
                support_name: self.mailer.support_name(),
            });
            for m in &plan.managers {
                let letter = Letter::to_staff(&notice, &t.language, m, t);
                self.mailer.send(tx, letter, self.now)?;
            }
            return Ok("no response: closing needs a manager's confirmation, asked".into());
        }
        self.set_status(tx, t, plan, Status::Closed, "system", Some("no response"))?;
        self.closure_notice(tx, t, plan, "", None, None)?;
        Ok("closed: no response".into())
    }
}

/// Splits an agent's files into those relayed to the customer and, for the others, a line
/// saying why each was left out: not kept when received (over `inbound.max_attachment_size`),
/// over `outbound.max_attachment_size`, or past `outbound.max_total_attachment_size` with the
/// files before it (files are taken in order; a smaller one after a left-out one still goes).
pub fn relayable(cfg: &Config, files: &[Attachment]) -> (Vec<Attachment>, Vec<String>) {
    let (one, all) = (
        cfg.outbound.max_attachment_bytes,
        cfg.outbound.max_total_attachment_bytes,
    );
    let mut total = 0usize;
    let (mut relay, mut omitted) = (Vec::new(), Vec::new());
    for a in files {
        let why = if a.data.is_none() {
            Some(format!(
                "not kept when received: over inbound.max_attachment_size ({})",
                human_size(cfg.inbound.max_attachment_bytes)
            ))
        } else if a.size > one {
            Some(format!(
                "over outbound.max_attachment_size ({})",
                human_size(one)
            ))
        } else if total + a.size > all {
            Some(format!(
                "with the files before it, over outbound.max_total_attachment_size ({})",
                human_size(all)
            ))
        } else {
            None
        };
        match why {
            Some(why) => omitted.push(format!("{} ({}): {why}", a.filename, human_size(a.size))),
            None => {
                total += a.size;
                relay.push(a.clone());
            }
        }
    }
    (relay, omitted)
}

/// A size as people read it: `512 B`, `12.5 KB`, `3.0 MB`.
pub fn human_size(n: usize) -> String {
    const KB: f64 = 1024.0;
    let f = n as f64;
    if f < KB {
        format!("{n} B")
    } else if f < KB * KB {
        format!("{:.1} KB", f / KB)
    } else {
        format!("{:.1} MB", f / (KB * KB))
    }
}
