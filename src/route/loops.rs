//! Loop rules (RFC 3834 and practice): when ticketgate must not answer a mail automatically.

use crate::config::LoopConfig;
use crate::parse::InboundMail;

/// The mail came from one of our own addresses.
pub fn is_own(mail: &InboundMail, cfg: &LoopConfig) -> bool {
    mail.from
        .as_deref()
        .is_some_and(|f| cfg.own_addresses.iter().any(|o| o == f))
}

/// A delivery status notification: null envelope sender, or MAILER-DAEMON / postmaster.
pub fn is_bounce(mail: &InboundMail) -> bool {
    mail.auto.null_sender
        || mail.from.as_deref().is_some_and(|f| {
            let local = f.split('@').next().unwrap_or("");
            local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
        })
}

/// Why this mail must get no automatic reply, or `None` when one may be sent (subject to the
/// per-recipient cap, which needs the store).
pub fn no_auto_reply(mail: &InboundMail, cfg: &LoopConfig) -> Option<String> {
    if let Some(v) = &mail.auto.auto_submitted {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(v) = &mail.auto.precedence {
        return Some(format!("Precedence: {v}"));
    }
    if mail.auto.list {
        return Some("mailing-list mail (List-Id / List-Unsubscribe)".into());
    }
    if mail.auto.suppress {
        return Some("X-Auto-Response-Suppress asks for no automatic reply".into());
    }
    if is_bounce(mail) {
        return Some("bounce or null sender".into());
    }
    if is_own(mail, cfg) {
        return Some("our own address".into());
    }
    None
}
