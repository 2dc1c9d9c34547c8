//! A ticket's watchers: the customer's people Cc'd on its mail. Who may become one (the
//! rules are here; the rows are in `store`), taking them from a customer's mail, and a
//! watcher's `#unwatch`. Agents add and remove watchers with `#cc add|remove ADDRESS`
//! (`workflow`, `lifecycle`); the [`crate::mailer`] puts them in Cc of public updates.

use crate::config::Config;
use crate::parse::InboundMail;
use crate::registry::Registry;
use crate::store::{self, TicketRow, WATCHER_FROM_CC, WriteTx};
use chrono::{DateTime, Utc};

/// Whether `address` (lower-case) may watch `ticket` because it was Cc'd on a customer's
/// mail: never one of our own addresses, an agent or the requester; and it belongs to the
/// ticket's customer — one of its allowed senders or domains, or, for a customer whose
/// registry entry lists none, the requester's domain.
pub fn may_watch(address: &str, ticket: &TicketRow, cfg: &Config, registry: &Registry) -> bool {
    if cfg.loops.own_addresses.iter().any(|o| o == address)
        || registry.is_agent(address)
        || address == ticket.requester
    {
        return false;
    }
    match registry.customer(&ticket.customer) {
        Some(c) if !c.allowed_senders.is_empty() => c.allows(address),
        // No list: the requester's own domain is the customer's.
        _ => match (address.rsplit_once('@'), ticket.requester.rsplit_once('@')) {
            (Some((_, a)), Some((_, r))) => !a.is_empty() && a.eq_ignore_ascii_case(r),
            _ => false,
        },
    }
}

/// Makes the addresses in `Cc` of a customer's request or follow-up that may watch the ticket
/// its watchers (an address that unwatched or was removed stays removed). Returns the ones
/// newly added.
pub fn add_from_cc(
    tx: &mut dyn WriteTx,
    mail: &InboundMail,
    ticket: &TicketRow,
    cfg: &Config,
    registry: &Registry,
    now: DateTime<Utc>,
) -> store::Result<Vec<String>> {
    let mut added = Vec::new();
    for a in &mail.cc {
        if Some(a.as_str()) == mail.from.as_deref() || !may_watch(a, ticket, cfg, registry) {
            continue;
        }
        if tx.add_watcher(ticket.id, a, WATCHER_FROM_CC, now, false)? {
            added.push(a.clone());
        }
    }
    if !added.is_empty() {
        tracing::info!(ticket = ticket.id, watchers = ?added, "watchers added from Cc");
    }
    Ok(added)
}

/// A ticket opened by a reply to a closed one (eXo: closed is final) keeps the closed
/// ticket's watchers.
pub fn inherit(
    tx: &mut dyn WriteTx,
    parent_id: i64,
    ticket: &TicketRow,
    now: DateTime<Utc>,
) -> store::Result<()> {
    for w in tx.watchers(parent_id)? {
        if w.address != ticket.requester {
            tx.add_watcher(ticket.id, &w.address, &w.added_by, now, false)?;
        }
    }
    Ok(())
}

/// A watcher's `#unwatch` reply: they stop receiving the ticket. `true` when the mail was
/// one (from a current watcher, `#unwatch` on its first line); the caller keeps it on the
/// ticket and does nothing else with it.
pub fn unwatch(
    tx: &mut dyn WriteTx,
    mail: &InboundMail,
    ticket: &TicketRow,
    now: DateTime<Utc>,
) -> store::Result<bool> {
    let Some(from) = mail.from.as_deref() else {
        return Ok(false);
    };
    if from == ticket.requester || !crate::workflow::is_unwatch(&mail.text) {
        return Ok(false);
    }
    let removed = tx.remove_watcher(ticket.id, from, from, now)?;
    if removed {
        tracing::info!(
            ticket = ticket.id,
            watcher = from,
            "watcher unsubscribed (#unwatch)"
        );
    }
    Ok(removed)
}

/// Whether `address` currently watches the ticket.
pub fn is_watcher(tx: &mut dyn WriteTx, ticket_id: i64, address: &str) -> store::Result<bool> {
    Ok(tx.watchers(ticket_id)?.iter().any(|w| w.address == address))
}
