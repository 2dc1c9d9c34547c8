//! What the pipeline does with a bounce: recognise it (our signed envelope sender, or the
//! shape of a notice), tie it to the message it is about (a valid VERP signature, or the
//! Message-ID of a message we sent quoted in it), and act: a hard bounce suppresses the
//! address (an internal note on the ticket, the agent team told once, a counter), a soft one
//! adds to the address's score (suppressed after soft bounces on [`SOFT_DAYS`] days, the
//! score forgotten after [`STALE_AFTER`] without one). A bounce never opens a ticket and is
//! never answered; it is kept in quarantine with what was read from it.
//!
//! Nothing a bounce says is trusted for *which* address to suppress: that is the recipient
//! of the outbox row it is tied to. A bounce tied to nothing (no VERP address, no Message-ID
//! of ours) or with a forged signature changes nothing.

use super::{Bounce, SUPPRESSED_PREFIX, Verdict, analyze, verp};
use crate::config::{Config, OutboundConfig, TransportConfig};
use crate::mailer::{Letter, MailError, Mailer, Sent};
use crate::notify::{self, Notice};
use crate::parse::InboundMail;
use crate::registry::Registry;
use crate::store::{self, BounceScore, NewArticle, OutboxTarget, Suppression, WriteTx};
use chrono::{DateTime, Duration, Utc};

/// A soft-bounce score at which an address is suppressed: one point per day with a soft
/// bounce (Mailman's `bounce_score_threshold` with one point per bouncing day).
pub const SOFT_DAYS: f64 = 5.0;
/// A score with no soft bounce for this long starts again from zero (Mailman's
/// `bounce_info_stale_after`).
pub const STALE_AFTER: Duration = Duration::days(7);

/// The address bounces come back to: `outbound.smtp.envelope_from`, else `outbound.from`.
pub fn verp_base(cfg: &OutboundConfig) -> String {
    match &cfg.transport {
        TransportConfig::Smtp(s) if s.envelope_from.is_some() => s
            .envelope_from
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        _ => cfg.from.email.to_string().to_ascii_lowercase(),
    }
}

/// How a bounce is tied to a message of ours.
#[derive(Debug, Clone, PartialEq)]
pub enum Proof {
    /// Our signed envelope sender.
    Verp(OutboxTarget),
    /// The Message-ID of a message we sent (random, so only someone who saw it knows it).
    MessageId(OutboxTarget),
    /// Nothing ties it to a message of ours.
    Unverified,
    /// A VERP address of ours with a wrong signature.
    Forged(String),
}

/// A recognised bounce.
#[derive(Debug, Clone)]
pub struct Found {
    /// What was read from it; `None` when only the envelope said it is one (an automatic
    /// answer to our envelope sender, a notice we cannot read).
    pub bounce: Option<Bounce>,
    pub proof: Proof,
}

impl Found {
    /// The quarantine code and reason the inbound row is kept with.
    pub fn quarantine(&self) -> (&'static str, String) {
        let read = match &self.bounce {
            Some(b) => match b.worst() {
                Some(r) => format!(
                    "{} bounce for {} ({}{}): {}",
                    b.verdict(),
                    if r.address.is_empty() {
                        "an unnamed recipient"
                    } else {
                        &r.address
                    },
                    r.status
                        .as_deref()
                        .map(|s| format!("{s} "))
                        .unwrap_or_default(),
                    r.reason,
                    r.diagnostic.chars().take(200).collect::<String>()
                ),
                None => "a bounce naming no recipient".to_string(),
            },
            None => "mail to our bounce address that is not a delivery report".to_string(),
        };
        match &self.proof {
            Proof::Forged(addr) => (
                "forged_bounce",
                format!(
                    "{read}; sent to {addr}, whose signature is not ours: ignored, nothing suppressed"
                ),
            ),
            Proof::Unverified => (
                "bounce",
                format!(
                    "{read}; not tied to a message we sent (no signed bounce address, no \
                     Message-ID of ours): kept for the operator, nothing suppressed"
                ),
            ),
            Proof::Verp(t) | Proof::MessageId(t) => (
                "bounce",
                format!(
                    "{read}; about outbox #{} ({}) to {}",
                    t.id, t.kind, t.recipient
                ),
            ),
        }
    }
}

/// Whether the raw header section may be a bounce's, cheaply, before the notice is read.
fn candidate(head: &str, mail: &InboundMail) -> bool {
    crate::route::loops::is_bounce(mail)
        || head.contains("multipart/report")
        || head.contains("x-failed-recipients")
        || head.contains("auto-submitted")
        || {
            let s = mail.subject.to_ascii_lowercase();
            super::SUBJECTS.iter().any(|p| s.contains(p))
        }
}

/// The VERP addresses of ours in the header section (`To`, `Delivered-To`,
/// `X-Original-To`, `Envelope-To`…): the first valid one, else the first forged one.
fn verp_in(head: &str, base: &str, key: Option<&[u8]>) -> Option<(verp::Tag, String)> {
    let local = base.split('@').next()?;
    let needle = format!("{local}+");
    let mut forged = None;
    let mut from = 0;
    while let Some(p) = head[from..].find(&needle) {
        let start = from + p;
        // The address starts at the local part: the character before must not be part of one.
        let ok_start = start == 0
            || !head[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c));
        let end = head[start..]
            .find(|c: char| c.is_whitespace() || "<>,;\"'()".contains(c))
            .map_or(head.len(), |e| start + e);
        from = end.max(start + 1);
        if !ok_start {
            continue;
        }
        let addr = &head[start..end];
        match verp::check(addr, base, key) {
            Some(verp::Tag::Valid(id)) => return Some((verp::Tag::Valid(id), addr.to_string())),
            Some(verp::Tag::Forged) if forged.is_none() => {
                forged = Some((verp::Tag::Forged, addr.to_string()));
            }
            _ => {}
        }
    }
    forged
}

/// Recognises a bounce and ties it to the message it is about; `None` when `raw` is not one.
pub fn recognise(
    raw: &[u8],
    mail: &InboundMail,
    cfg: &Config,
    tx: &mut dyn WriteTx,
) -> store::Result<Option<Found>> {
    let end = header_end(raw).min(256 * 1024);
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let base = verp_base(&cfg.outbound);
    let key = cfg
        .outbound
        .bounce_key
        .as_ref()
        .map(|k| k.expose().as_bytes());
    let tag = verp_in(&head, &base, key);
    let bounce = if tag.is_some() || candidate(&head, mail) {
        analyze(raw)
    } else {
        None
    };
    if tag.is_none() && bounce.is_none() {
        return Ok(None);
    }
    let proof = match tag {
        Some((verp::Tag::Forged, addr)) => Proof::Forged(addr),
        Some((verp::Tag::Valid(id), _)) => match tx.outbox_target(id)? {
            Some(t) => Proof::Verp(t),
            None => Proof::Unverified,
        },
        None => match bounce
            .as_ref()
            .and_then(|b| b.original_message_id.as_deref())
        {
            Some(mid) => match tx.outbox_by_message_id(mid)? {
                Some(t) => Proof::MessageId(t),
                None => Proof::Unverified,
            },
            None => Proof::Unverified,
        },
    };
    Ok(Some(Found { bounce, proof }))
}

fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len())
}

/// What acting on a bounce did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Acted {
    /// The address put on the suppression list by this bounce.
    pub suppressed: Option<String>,
    /// Mail written (the alert to the agent team).
    pub sent: Vec<Sent>,
}

/// Acts on a recognised bounce whose inbound row is `inbound_id`, in the batch's transaction.
pub fn act(
    found: &Found,
    inbound_id: i64,
    mailer: &Mailer<'_>,
    registry: &Registry,
    tx: &mut dyn WriteTx,
    now: DateTime<Utc>,
) -> Result<Acted, MailError> {
    let mut acted = Acted::default();
    let target = match &found.proof {
        Proof::Forged(addr) => {
            tx.count_bounce("forged")?;
            tracing::warn!(to = %addr, metric = "ticketgate_bounces_total", kind = "forged",
                "bounce to a forged VERP address ignored");
            return Ok(acted);
        }
        Proof::Unverified => {
            tx.count_bounce("unverified")?;
            tracing::info!(
                metric = "ticketgate_bounces_total",
                kind = "unverified",
                "bounce not tied to a message of ours: recorded, nothing suppressed"
            );
            return Ok(acted);
        }
        Proof::Verp(t) | Proof::MessageId(t) => t,
    };
    let Some(bounce) = &found.bounce else {
        tracing::info!(
            outbox = target.id,
            "mail to our bounce address that is not a delivery report: recorded"
        );
        return Ok(acted);
    };
    let address = target.recipient.to_ascii_lowercase();
    // The failure of the row's recipient when the bounce names it, else the worst one (a
    // forwarded address bounces under another name).
    let failure = bounce
        .recipients
        .iter()
        .find(|r| r.address == address)
        .or_else(|| bounce.worst());
    let Some(failure) = failure else {
        return Ok(acted);
    };
    let reason = format!(
        "{}{}: {}",
        failure
            .status
            .as_deref()
            .map(|s| format!("{s} "))
            .unwrap_or_default(),
        failure.reason,
        failure.diagnostic.chars().take(200).collect::<String>()
    );
    let suppression = match failure.verdict {
        Verdict::Hard => {
            tx.count_bounce("hard")?;
            tracing::info!(to = %address, outbox = target.id, metric = "ticketgate_bounces_total",
                kind = "hard", reason = %reason, "hard bounce");
            Some(Suppression {
                address: address.clone(),
                kind: Verdict::Hard,
                reason: reason.clone(),
                status: failure.status.clone(),
                outbox_id: Some(target.id),
                ticket_id: target.ticket_id,
                created_at: now,
            })
        }
        Verdict::Soft => {
            tx.count_bounce("soft")?;
            let score = soft_score(tx.bounce_score(&address)?, &address, now);
            tx.set_bounce_score(&score)?;
            tracing::info!(to = %address, outbox = target.id, metric = "ticketgate_bounces_total",
                kind = "soft", score = score.score, reason = %reason, "soft bounce");
            (score.score >= SOFT_DAYS).then(|| Suppression {
                address: address.clone(),
                kind: Verdict::Soft,
                reason: format!(
                    "soft bounces on {} days since {} (last: {reason})",
                    score.score,
                    score.first_at.format("%Y-%m-%d")
                ),
                status: failure.status.clone(),
                outbox_id: Some(target.id),
                ticket_id: target.ticket_id,
                created_at: now,
            })
        }
    };
    let Some(s) = suppression else {
        return Ok(acted);
    };
    if !tx.insert_suppression(&s)? {
        return Ok(acted); // already suppressed: the team was told then
    }
    tx.count_bounce(&format!("{SUPPRESSED_PREFIX}{}", s.kind))?;
    tracing::warn!(to = %address, kind = %s.kind, reason = %s.reason,
        "address suppressed: no more automatic mail to it");
    acted.suppressed = Some(address.clone());
    let Some(ticket_id) = target.ticket_id else {
        return Ok(acted);
    };
    let Some(ticket) = tx.ticket(ticket_id)? else {
        return Ok(acted);
    };
    let body = format!(
        "Mail to {address} (outbox #{}, {}) bounced ({} bounce): {}\n\n{address} is now on the \
         suppression list: no more automatic mail goes to it. `ticketgate suppressions remove \
         {address}` lifts it.",
        target.id, target.kind, s.kind, s.reason
    );
    tx.insert_article(&NewArticle {
        ticket_id,
        inbound_id: Some(inbound_id),
        kind: "note",
        author: "ticketgate",
        body: &body,
        quoted: "",
        now,
    })?;
    tx.touch_ticket(ticket_id, now)?;
    if let Some(team) = registry
        .customer(&ticket.customer)
        .and_then(|c| c.plan.agent_team.clone())
    {
        let notice = Notice::BounceAlert(notify::BounceAlert {
            reference: crate::ticket_ref::reference(mailer.prefix, ticket.id),
            subject: ticket.subject.clone(),
            address: address.clone(),
            kind: s.kind.to_string(),
            reason: s.reason.clone(),
            support_name: mailer.support_name(),
        });
        let sent = mailer.send(
            tx,
            Letter::to_staff(&notice, &ticket.language, &team, &ticket),
            now,
        )?;
        acted.sent.push(sent);
    }
    Ok(acted)
}

/// The score after one more soft bounce at `now`: reset after [`STALE_AFTER`] without one,
/// one point per UTC day that had one.
pub fn soft_score(prev: Option<BounceScore>, address: &str, now: DateTime<Utc>) -> BounceScore {
    let fresh = BounceScore {
        address: address.to_string(),
        score: 1.0,
        bounces: 1,
        first_at: now,
        last_at: now,
    };
    let Some(mut s) = prev else {
        return fresh;
    };
    if now - s.last_at > STALE_AFTER {
        return BounceScore {
            bounces: s.bounces + 1,
            ..fresh
        };
    }
    s.bounces += 1;
    if s.last_at.date_naive() != now.date_naive() {
        s.score += 1.0;
        s.last_at = now;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_soft_score_counts_days_and_goes_stale() {
        let a = "x@y.example";
        let s = soft_score(None, a, at("2026-01-01T10:00:00Z"));
        assert_eq!(s.score, 1.0);
        // The same day again: counted as a bounce, not as a day.
        let s = soft_score(Some(s), a, at("2026-01-01T20:00:00Z"));
        assert_eq!((s.score, s.bounces), (1.0, 2));
        let s = soft_score(Some(s), a, at("2026-01-02T09:00:00Z"));
        assert_eq!(s.score, 2.0);
        // Eight quiet days: forgotten.
        let s = soft_score(Some(s), a, at("2026-01-10T09:00:01Z"));
        assert_eq!((s.score, s.bounces), (1.0, 4));
        assert_eq!(s.first_at, at("2026-01-10T09:00:01Z"));
    }

    #[test]
    fn verp_addresses_are_found_in_the_header_section() {
        let key = b"0123456789abcdef0123456789abcdef";
        let good = verp::address("bounces@example.com", key, 7);
        let head = format!(
            "return-path: <>\r\nx-original-to: {good}\r\nto: <xbounces+1.00@example.com>, bounces+9.0000000000000000@example.com\r\n"
        );
        assert_eq!(
            verp_in(&head, "bounces@example.com", Some(key)),
            Some((verp::Tag::Valid(7), good.clone()))
        );
        let head = "to: bounces+9.0000000000000000@example.com\r\n";
        assert!(matches!(
            verp_in(head, "bounces@example.com", Some(key)),
            Some((verp::Tag::Forged, _))
        ));
        assert_eq!(
            verp_in("to: jane@example.com\r\n", "bounces@example.com", Some(key)),
            None
        );
    }
}
