//! Incident-aware intake (issue 10): while an outage is open on a platform, a new ticket
//! from a customer of that platform is linked to it (`ticket_outages`, in the batch's
//! transaction); its acknowledgement says the outage is known, since when, its last update
//! and the status page, and the agents' copy names it. When the outage is restored, each
//! linked ticket's requester (and its watchers) gets the restoration notice, in the
//! transaction of the restoration ([`notify_restored`], called by
//! [`crate::announce::outage::restore`]).
//!
//! Reads: one `intake_outages` per new ticket of a customer with a platform; on a PostgreSQL
//! batch it is read once per transaction and checked again under the writers' lock, and the
//! links are buffered rows of the batch's flush (ADR 0013).

use crate::calendar::Calendar;
use crate::lang::Lang;
use crate::mailer::{Letter, MailError};
use crate::notify::{Automatic, Notice, OutageNote, TicketOutageRestored};
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::store::{self, AnnouncementRow, OpenOutage, StoreError, TicketRow, WriteTx};
use crate::workflow::Status;
use chrono::{DateTime, Utc};

/// Links a new ticket to the outages open on its customer's platform; returns them, oldest
/// first (none when the customer has no platform).
pub fn link(
    tx: &mut dyn WriteTx,
    registry: &Registry,
    ticket: &TicketRow,
    now: DateTime<Utc>,
) -> store::Result<Vec<OpenOutage>> {
    let Some(platform) = registry.customer_platform(&ticket.customer) else {
        return Ok(Vec::new());
    };
    let open: Vec<OpenOutage> = tx
        .intake_outages()?
        .into_iter()
        .filter(|o| o.platform == platform)
        .collect();
    for o in &open {
        tx.link_outage(ticket.id, o.id, now)?;
    }
    if !open.is_empty() {
        tracing::info!(ticket = ticket.id, platform, outages = ?open.iter().map(|o| o.id).collect::<Vec<_>>(),
            "ticket linked to the open outage of its platform");
    }
    Ok(open)
}

/// `PUBLIC_URL/status`, when the public URL is set.
pub fn status_url(public_url: Option<&str>) -> Option<String> {
    public_url.map(|base| format!("{base}/status"))
}

/// What a ticket's mail says of the outages it was linked to, in `lang` and the plan's
/// time zone.
pub fn notes(
    outages: &[OpenOutage],
    lang: Lang,
    calendar: &Calendar,
    public_url: Option<&str>,
) -> Vec<OutageNote> {
    outages
        .iter()
        .map(|o| OutageNote {
            reference: crate::announce::reference::reference(
                crate::store::AnnouncementKind::Outage,
                o.id,
            ),
            services: o.services.join(", "),
            impact: o.impact.clone(),
            since: lang.datetime(calendar, o.since),
            last_update: o.last_update.as_ref().map(|(_, t)| t.clone()),
            last_update_at: o
                .last_update
                .as_ref()
                .map(|(at, _)| lang.datetime(calendar, *at)),
            restoration_eta: o.restoration_eta.map(|at| lang.datetime(calendar, at)),
            status_url: status_url(public_url),
        })
        .collect()
}

/// The restoration notice to the requester (watchers in Cc) of every ticket linked to the
/// outage `a` that is not closed, in the caller's transaction. Returns the outbox rows
/// written for requesters (suppressed ones included).
pub fn notify_restored(
    tx: &mut dyn WriteTx,
    pipeline: &Pipeline,
    registry: &Registry,
    a: &AnnouncementRow,
    text: &str,
    now: DateTime<Utc>,
) -> store::Result<usize> {
    let mailer = pipeline.mailer();
    let since = a.starts_at.unwrap_or(a.created_at);
    let ended = a.ends_at.unwrap_or(now);
    let public_url = pipeline.config().http.public_url.clone();
    let mut sent = 0;
    for id in tx.outage_tickets(a.id)? {
        let Some(t) = tx.ticket(id)? else {
            continue;
        };
        if t.status == Status::Closed {
            continue;
        }
        let lang = Lang::or_english(&t.language);
        let plan = registry.plan(&t.plan);
        let notice = Notice::TicketOutageRestored(TicketOutageRestored {
            reference: pipeline.reference(t.id),
            subject: t.subject.clone(),
            contact_name: t.requester_name.clone(),
            outage_reference: a.reference(),
            services: a.services.join(", "),
            since: lang.datetime(&plan.calendar, since),
            restored_at: lang.datetime(&plan.calendar, ended),
            duration: lang.duration(ended - since),
            text: text.to_string(),
            status_url: status_url(public_url.as_deref()),
            support_name: mailer.support_name(),
        });
        mailer
            .send(
                tx,
                Letter {
                    notice: &notice,
                    lang: &t.language,
                    to: &t.requester,
                    to_name: t.requester_name.as_deref(),
                    ticket: Some(&t),
                    inbound_id: None,
                    answers: None,
                    automatic: Automatic::Generated,
                    from_name: None,
                    attachments: &[],
                    to_staff: false,
                },
                now,
            )
            .map_err(|e| match e {
                MailError::Store(e) => e,
                MailError::Notify(e) => StoreError::Other(format!(
                    "the restoration notice of {} to ticket #{id}: {e}",
                    a.reference()
                )),
            })?;
        sent += 1;
    }
    if sent > 0 {
        tracing::info!(outage = %a.reference(), tickets = sent, "restoration notice to the linked tickets");
    }
    Ok(sent)
}
