//! Which writers a transaction keeps out while it writes (ADR 0023).
//!
//! Every writer takes the writers' advisory lock ([`WRITE_LOCK`]). A transaction that
//! reads what it wrote, or writes row by row ([`Store::write`], a tick, a batch done mail by
//! mail) takes it exclusive: no other writer runs until it commits, so it reads without
//! checks. A batch that writes only at its commit knows at that point everything it will
//! write and everything its decisions rest on, so it takes the writers' lock *shared* and,
//! exclusive, one lock for each thing that another batch could change under it:
//!
//! - each existing ticket a row of it changes or refers to (no lost update; a ticket's
//!   timers, history, escalations and outage links are written only with the ticket locked);
//! - each dedup key it inserts (`inbound.dedup_key` is not unique: each mail once rests on
//!   the check under this lock);
//! - each inbound row whose outcome it changes;
//! - each recipient it sends automatic mail to, and each whose count it found below the cap
//!   (the cap: another batch's mail could make that answer wrong). A recipient already at
//!   the cap needs none: other batches only add to the count, and the answer stands;
//!   automatic mail held back by the cap (`suppressed`) counts for nobody.
//!
//! Two batches that share none of these write at the same time; one that shares any waits
//! for the other's commit, then checks its reads again (`batch::check`) as before. New
//! tickets, articles and outbox rows take their ids from sequences and need no lock. Locks
//! are taken in ascending key order, in one statement, after the shared writers' lock:
//! two batches never wait for each other in a cycle.
//!
//! Every lock takes a slot in the server's shared lock table (about
//! `max_locks_per_transaction × max_connections` in all, 64 × 100 by default), so a batch
//! that would need more than [`MAX_KEYS`] takes the writers' lock exclusive instead.

use super::batch::{Buffer, Checks};
use super::*;

/// The most per-item locks one batch takes; beyond, it takes the writers' lock exclusive.
/// A batch of 1,024 mails needs a dedup key a mail, one for each sender below the cap and
/// one for each existing ticket it changes: at most 3,072, fewer when senders write more than
/// once or mostly open new tickets.
pub(super) const MAX_KEYS: usize = 3_000;

/// How a transaction keeps the other writers out while it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Guard {
    /// The writers' lock, exclusive: no other writer runs.
    Exclusive,
    /// The writers' lock shared with other batches, and these keys exclusive (ascending).
    Items(Vec<i64>),
}

/// What a lock is taken on; the kind keeps equal values of different kinds apart.
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    Ticket(i64),
    DedupKey(&'a str),
    Inbound(i64),
    Recipient(&'a str),
}

impl Item<'_> {
    /// The advisory lock key: FNV-1a 64 of the kind and the value, never one of the
    /// store's own keys. Two items with the same key only wait for each other.
    fn key(self) -> i64 {
        let k = match self {
            Item::Ticket(id) => fnv64(&format!("ticket\u{0}{id}")),
            Item::DedupKey(k) => fnv64(&format!("dedup\u{0}{k}")),
            Item::Inbound(id) => fnv64(&format!("inbound\u{0}{id}")),
            Item::Recipient(r) => fnv64(&format!("recipient\u{0}{r}")),
        };
        if k == WRITE_LOCK || k == MIGRATE_LOCK {
            k ^ 1
        } else {
            k
        }
    }
}

/// The guard for a batch that writes `buf` at its commit, having decided on `checks`.
pub(super) fn for_batch(buf: &Buffer, checks: &Checks) -> Guard {
    let mut keys: Vec<i64> = Vec::new();
    let existing = |id: &i64| !buf.new_ticket_ids.contains(id);
    // The tickets checked are those changed (`PgTx::take_checks`).
    let tickets = buf
        .changed_tickets
        .iter()
        .chain(buf.articles.iter().map(|a| &a.ticket_id))
        .chain(buf.history.iter().map(|h| &h.ticket_id))
        .chain(buf.escalations.iter().map(|e| &e.ticket_id))
        .chain(buf.timers.keys().map(|(t, _)| t))
        .chain(buf.outage_links.iter().map(|(t, _, _)| t))
        .chain(buf.inbound.iter().filter_map(|m| m.ticket_id.as_ref()))
        .chain(buf.outbox.iter().filter_map(|m| m.ticket_id.as_ref()))
        .chain(buf.links.iter().map(|(_, t)| t))
        .filter(|id| existing(id));
    keys.extend(tickets.map(|&id| Item::Ticket(id).key()));
    keys.extend(
        buf.inbound
            .iter()
            .map(|m| Item::DedupKey(&m.dedup_key).key()),
    );
    keys.extend(buf.outcomes.iter().map(|o| Item::Inbound(o.0).key()));
    // Without a known cap every change of a count read is a conflict: all are locked.
    let recipients = buf
        .outbox
        .iter()
        .filter(|m| m.automatic && m.state != "suppressed")
        .map(|m| m.recipient.as_str())
        .chain(
            checks
                .counts
                .iter()
                .filter(|(_, (_, below))| checks.limit.is_none() || below.is_some())
                .map(|((r, _), _)| r.as_str()),
        );
    keys.extend(recipients.map(|r| Item::Recipient(r).key()));
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > MAX_KEYS {
        Guard::Exclusive
    } else {
        Guard::Items(keys)
    }
}

/// Takes `guard`'s locks, then checks what was read before them.
pub(super) async fn lock_and_check(
    c: &mut PgConnection,
    guard: &Guard,
    checks: &Checks,
) -> Result<()> {
    match guard {
        Guard::Exclusive => {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *c)
                .await?;
        }
        Guard::Items(keys) => {
            // In the array's order: the writers' lock shared first, then the keys.
            let mut all = Vec::with_capacity(keys.len() + 1);
            all.push(WRITE_LOCK);
            all.extend_from_slice(keys);
            sqlx::query(
                "SELECT count(CASE WHEN o = 1 THEN pg_advisory_xact_lock_shared(k) \
                 ELSE pg_advisory_xact_lock(k) END) \
                 FROM unnest($1::bigint[]) WITH ORDINALITY AS u(k, o)",
            )
            .bind(all)
            .execute(&mut *c)
            .await?;
        }
    }
    if !checks.is_empty() {
        super::batch::check(c, checks).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::batch::{ArticleIns, InboundIns, OutboxIns};

    fn inbound(key: &str, ticket: Option<i64>) -> InboundIns {
        InboundIns {
            id: 0,
            dedup_key: key.into(),
            message_id: None,
            source: String::new(),
            received_at: DateTime::UNIX_EPOCH,
            from: None,
            subject: String::new(),
            size: 0,
            raw: Vec::new(),
            outcome: "created".into(),
            reason_code: None,
            reason: None,
            ticket_id: ticket,
            declared_size: None,
            auth_result: None,
            auth_method: None,
            auth_detail: None,
            threaded_by: None,
        }
    }

    fn outbox(recipient: &str, automatic: bool) -> OutboxIns {
        OutboxIns {
            id: 0,
            ticket_id: None,
            inbound_id: None,
            kind: "ack".into(),
            recipient: recipient.into(),
            subject: String::new(),
            message_id: String::new(),
            automatic,
            body: Vec::new(),
            state: "pending",
            note: None,
            now: DateTime::UNIX_EPOCH,
        }
    }

    fn keys(g: Guard) -> Vec<i64> {
        match g {
            Guard::Items(k) => k,
            Guard::Exclusive => panic!("expected per-item locks"),
        }
    }

    #[test]
    fn a_batch_locks_the_tickets_it_changes_the_keys_it_inserts_and_the_recipients_below_the_cap() {
        let mut buf = Buffer::default();
        buf.new_tickets.push(7);
        buf.new_ticket_ids.insert(7);
        buf.touch_ticket(3);
        buf.inbound.push(inbound("mid:a@x", Some(7)));
        buf.inbound.push(inbound("mid:b@x", Some(3)));
        buf.articles.push(ArticleIns {
            id: 1,
            ticket_id: 4,
            inbound_id: None,
            kind: "customer".into(),
            author: String::new(),
            body: String::new(),
            quoted: String::new(),
            created_at: DateTime::UNIX_EPOCH,
        });
        buf.outbox.push(outbox("jane@acme.example", true));
        buf.outbox.push(outbox("list@acme.example", false));
        buf.outbox.push(OutboxIns {
            state: "suppressed",
            ..outbox("loop@robot.example", true)
        });
        let mut checks = Checks {
            limit: Some(3),
            ..Checks::default()
        };
        let since = DateTime::UNIX_EPOCH;
        checks
            .counts
            .insert(("below@acme.example".into(), since), (1, Some(1)));
        checks
            .counts
            .insert(("loop@robot.example".into(), since), (3, None));
        let got = keys(for_batch(&buf, &checks));
        let mut want = vec![
            Item::Ticket(3).key(),
            Item::Ticket(4).key(),
            Item::DedupKey("mid:a@x").key(),
            Item::DedupKey("mid:b@x").key(),
            Item::Recipient("jane@acme.example").key(),
            Item::Recipient("below@acme.example").key(),
        ];
        want.sort_unstable();
        assert_eq!(got, want, "ascending, once each; not the new ticket 7");
        assert!(!got.contains(&Item::Ticket(7).key()));
        assert!(!got.contains(&Item::Recipient("list@acme.example").key()));
        // At the cap: more mail from others changes nothing this batch decided.
        assert!(!got.contains(&Item::Recipient("loop@robot.example").key()));
        // Without a known cap, every count read is locked.
        checks.limit = None;
        let got = keys(for_batch(&buf, &checks));
        assert!(got.contains(&Item::Recipient("loop@robot.example").key()));
        // The kind keeps equal values apart.
        assert_ne!(Item::Ticket(3).key(), Item::Inbound(3).key());
        assert!(!got.contains(&WRITE_LOCK));
    }

    #[test]
    fn a_batch_that_would_need_too_many_locks_takes_the_writers_lock_exclusive() {
        let mut buf = Buffer::default();
        for i in 0..MAX_KEYS {
            buf.inbound.push(inbound(&format!("mid:{i}@x"), None));
        }
        assert_eq!(keys(for_batch(&buf, &Checks::default())).len(), MAX_KEYS);
        buf.outbox.push(outbox("jane@acme.example", true));
        assert_eq!(for_batch(&buf, &Checks::default()), Guard::Exclusive);
    }
}
