//! What the daemon knows about itself, for `/readyz` and `/metrics`: each IMAP mailbox's
//! state as its task publishes it (a small shared registry, one cell per mailbox), and the
//! counters updated where batches commit and deliveries end. Gauges that come from the
//! store (outbox, timers) are read at scrape time through indexed queries
//! ([`crate::store::Store::web_stats`]), never a full-table count.

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a mailbox task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxPhase {
    /// Not connected yet (or reconnecting).
    Connecting,
    /// Connected, waiting in IDLE.
    Idle,
    /// Connected, polling between passes.
    Polling,
    /// Connected and reading (a pass in progress).
    Syncing,
    /// Another instance holds the lease: this one waits.
    Standby,
}

/// One mailbox's state, as its task last published it.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxStatus {
    pub name: String,
    pub connected: bool,
    pub phase: MailboxPhase,
    pub last_sync: Option<DateTime<Utc>>,
    pub uid_validity: Option<u32>,
    pub last_error: Option<String>,
    /// When the OAuth access token expires, when the task knows it.
    pub token_expiry: Option<DateTime<Utc>>,
}

/// A mailbox task's handle on its cell. Cheap to clone; a poisoned lock is ignored (the
/// status is advisory).
#[derive(Clone)]
pub struct MailboxCell(Arc<Mutex<MailboxStatus>>);

impl MailboxCell {
    fn update(&self, f: impl FnOnce(&mut MailboxStatus)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    pub fn get(&self) -> MailboxStatus {
        match self.0.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// SELECT succeeded.
    pub fn connected(&self, uid_validity: u32) {
        self.update(|s| {
            s.connected = true;
            s.phase = MailboxPhase::Syncing;
            s.uid_validity = Some(uid_validity);
        });
    }

    /// A pass ended: everything up to the server's newest mail is committed.
    pub fn synced(&self, at: DateTime<Utc>, idle: bool) {
        self.update(|s| {
            s.last_sync = Some(at);
            s.last_error = None;
            s.phase = if idle {
                MailboxPhase::Idle
            } else {
                MailboxPhase::Polling
            };
        });
    }

    pub fn failed(&self, error: &str) {
        self.update(|s| {
            s.connected = false;
            s.phase = MailboxPhase::Connecting;
            s.last_error = Some(error.to_string());
        });
    }

    pub fn disconnected(&self, phase: MailboxPhase) {
        self.update(|s| {
            s.connected = false;
            s.phase = phase;
        });
    }

    pub fn token_expiry(&self, at: Option<DateTime<Utc>>) {
        self.update(|s| s.token_expiry = at);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MailboxLabel {
    pub mailbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabel {
    pub probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub version: String,
}

/// The metric families. Counters are updated where things happen; gauges are set just
/// before each scrape is encoded (under `scrape`, so two scrapes do not interleave).
pub struct Metrics {
    pub registry: Registry,
    pub inbound: Family<OutcomeLabel, Counter>,
    pub ingest_seconds: Histogram,
    pub outbox: Family<StateLabel, Gauge>,
    pub outbox_oldest_pending: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub delivery: Family<ResultLabel, Counter>,
    pub sla_breaches: Counter,
    pub timers_overdue: Gauge,
    pub mailbox_connected: Family<MailboxLabel, Gauge>,
    pub mailbox_sync_age: Family<MailboxLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub mailbox_token_expiry: Family<MailboxLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub mailbox_login_failures: Family<MailboxLabel, Counter>,
    pub bounces: Family<KindLabel, Counter>,
    pub suppressions: Family<KindLabel, Counter>,
    /// Set by each probe's task after every check ([`crate::probes`]).
    pub probe_up: Family<ProbeLabel, Gauge>,
    pub probe_duration: Family<ProbeLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub scrape: Mutex<()>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let inbound = Family::<OutcomeLabel, Counter>::default();
        // prometheus-client adds `_total` to counters and `_info` to info metrics.
        registry.register(
            "ticketgate_inbound_mails",
            "Inbound mails committed, by outcome",
            inbound.clone(),
        );
        let ingest_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "ticketgate_ingest_seconds",
            "Time from a mail's arrival (read from the source) to its commit",
            ingest_seconds.clone(),
        );
        let outbox = Family::<StateLabel, Gauge>::default();
        registry.register(
            "ticketgate_outbox_messages",
            "Outbound mails by state (sent mail is counted by ticketgate_delivery_attempts_total)",
            outbox.clone(),
        );
        let outbox_oldest_pending = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "ticketgate_outbox_oldest_pending_seconds",
            "Age of the oldest outbound mail waiting to be sent",
            outbox_oldest_pending.clone(),
        );
        let delivery = Family::<ResultLabel, Counter>::default();
        registry.register(
            "ticketgate_delivery_attempts",
            "Delivery attempts by result (sent, retry, failed)",
            delivery.clone(),
        );
        let sla_breaches = Counter::default();
        registry.register(
            "ticketgate_sla_breaches",
            "Response targets missed (escalations fired)",
            sla_breaches.clone(),
        );
        let timers_overdue = Gauge::default();
        registry.register(
            "ticketgate_timers_overdue",
            "Timers due and not fired yet",
            timers_overdue.clone(),
        );
        let mailbox_connected = Family::<MailboxLabel, Gauge>::default();
        registry.register(
            "ticketgate_mailbox_connected",
            "1 when the IMAP mailbox's session is up",
            mailbox_connected.clone(),
        );
        let mailbox_sync_age = Family::default();
        registry.register(
            "ticketgate_mailbox_last_sync_age_seconds",
            "Seconds since the mailbox's last successful pass",
            mailbox_sync_age.clone(),
        );
        let mailbox_token_expiry = Family::default();
        registry.register(
            "ticketgate_mailbox_token_expiry_seconds",
            "Seconds until the mailbox's OAuth token expires, when known",
            mailbox_token_expiry.clone(),
        );
        let mailbox_login_failures = Family::<MailboxLabel, Counter>::default();
        registry.register(
            "ticketgate_mailbox_login_failures",
            "Logins the IMAP server refused (a wrong password, an expired or revoked token)",
            mailbox_login_failures.clone(),
        );
        let bounces = Family::<KindLabel, Counter>::default();
        registry.register(
            "ticketgate_bounces",
            "Bounces read, by kind (hard, soft, forged: a VERP address with a wrong \
             signature, unverified: tied to no message of ours); the database's count, \
             shared by every instance on it",
            bounces.clone(),
        );
        let suppressions = Family::<KindLabel, Counter>::default();
        registry.register(
            "ticketgate_suppressions",
            "Addresses put on the suppression list, by the kind of bounce that put them \
             there (hard, soft); the database's count, shared by every instance on it",
            suppressions.clone(),
        );
        let probe_up = Family::<ProbeLabel, Gauge>::default();
        registry.register(
            "ticketgate_probe_up",
            "1 when the probe's last check of a customer service answered within its slow threshold",
            probe_up.clone(),
        );
        let probe_duration = Family::default();
        registry.register(
            "ticketgate_probe_duration_seconds",
            "How long the probe's last check took (up to its timeout)",
            probe_duration.clone(),
        );
        registry.register(
            "ticketgate_build",
            "The running version",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        // Every label value from the start: a series that is 0 is shown, not missing.
        for outcome in [
            "created",
            "appended",
            "quarantined",
            "duplicate",
            "subscription",
        ] {
            inbound
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.into(),
                })
                .inc_by(0);
        }
        for result in ["sent", "retry", "failed"] {
            delivery
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc_by(0);
        }
        for kind in crate::bounce::COUNTED {
            bounces
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(0);
        }
        for kind in ["hard", "soft"] {
            suppressions
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(0);
        }
        Metrics {
            registry,
            inbound,
            ingest_seconds,
            outbox,
            outbox_oldest_pending,
            delivery,
            sla_breaches,
            timers_overdue,
            mailbox_connected,
            mailbox_sync_age,
            mailbox_token_expiry,
            mailbox_login_failures,
            bounces,
            suppressions,
            probe_up,
            probe_duration,
            scrape: Mutex::new(()),
        }
    }
}

/// The daemon's view of itself: one per [`App`](crate::app::App).
pub struct Telemetry {
    mailboxes: Vec<MailboxCell>,
    pub metrics: Metrics,
    /// Each probe's state, as its task last published it (`/readyz`).
    pub probes: crate::probes::Board,
}

impl Telemetry {
    /// One cell per configured mailbox, in configuration order.
    pub fn new(mailboxes: &[String]) -> Telemetry {
        let metrics = Metrics::new();
        for name in mailboxes {
            metrics
                .mailbox_login_failures
                .get_or_create(&MailboxLabel {
                    mailbox: name.clone(),
                })
                .inc_by(0);
        }
        Telemetry {
            mailboxes: mailboxes
                .iter()
                .map(|name| {
                    MailboxCell(Arc::new(Mutex::new(MailboxStatus {
                        name: name.clone(),
                        connected: false,
                        phase: MailboxPhase::Connecting,
                        last_sync: None,
                        uid_validity: None,
                        last_error: None,
                        token_expiry: None,
                    })))
                })
                .collect(),
            metrics,
            probes: crate::probes::Board::default(),
        }
    }

    /// The server refused mailbox `name`'s login (its credentials, not the network).
    pub fn login_failed(&self, name: &str) {
        self.metrics
            .mailbox_login_failures
            .get_or_create(&MailboxLabel {
                mailbox: name.to_string(),
            })
            .inc();
    }

    /// Brings the bounce and suppression counters up to the store's counts (`bounce_counts`,
    /// written in the transaction of each bounce, so a batch done again or rolled back is
    /// not counted twice). Called before a scrape is encoded; the counts only grow.
    pub fn bounce_counts(&self, counts: &[(String, i64)]) {
        let m = &self.metrics;
        for (stored, n) in counts {
            let (family, kind) = match stored.strip_prefix(crate::bounce::SUPPRESSED_PREFIX) {
                Some(kind) => (&m.suppressions, kind),
                None => (&m.bounces, stored.as_str()),
            };
            let c = family.get_or_create(&KindLabel {
                kind: kind.to_string(),
            });
            let (n, had) = (u64::try_from(*n).unwrap_or(0), c.get());
            if n > had {
                c.inc_by(n - had);
            }
        }
    }

    /// The cell of mailbox `index` (configuration order).
    pub fn mailbox(&self, index: usize) -> MailboxCell {
        self.mailboxes.get(index).cloned().unwrap_or_else(|| {
            MailboxCell(Arc::new(Mutex::new(MailboxStatus {
                name: format!("#{index}"),
                connected: false,
                phase: MailboxPhase::Connecting,
                last_sync: None,
                uid_validity: None,
                last_error: None,
                token_expiry: None,
            })))
        })
    }

    pub fn mailboxes(&self) -> Vec<MailboxStatus> {
        self.mailboxes.iter().map(MailboxCell::get).collect()
    }

    /// A batch committed: its outcomes, and the time each of its mails took from being read
    /// to being committed.
    pub fn batch_committed(&self, r: &crate::pipeline::Report, took: Duration) {
        let m = &self.metrics;
        for (outcome, n) in [
            ("created", r.created),
            ("appended", r.appended),
            ("quarantined", r.quarantined),
            ("duplicate", r.duplicates),
            ("subscription", r.subscriptions),
        ] {
            m.inbound
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.into(),
                })
                .inc_by(n as u64);
        }
        let secs = took.as_secs_f64();
        for _ in 0..r.mails() {
            m.ingest_seconds.observe(secs);
        }
    }

    /// A delivery pass ended with these outcomes.
    pub fn delivered(&self, d: &crate::outbox::DeliveryReport) {
        for (result, n) in [("sent", d.sent), ("retry", d.retried), ("failed", d.failed)] {
            self.metrics
                .delivery
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc_by(n as u64);
        }
    }

    /// A tick fired these timers: the escalations are SLA breaches.
    pub fn fired(&self, fired: &[crate::timers::Fired]) {
        let n = fired
            .iter()
            .filter(|f| f.timer == crate::lifecycle::SLA)
            .count();
        self.metrics.sla_breaches.inc_by(n as u64);
    }
}

/// A mailbox whose XOAUTH2 token expires within this is reported: a warning at each login,
/// `token_expiring` in `/readyz`.
pub const TOKEN_WARNING: chrono::Duration = chrono::Duration::minutes(15);

/// When an OAuth access token expires, if it says so: a JWT's `exp` claim (Microsoft's
/// tokens are JWTs; opaque tokens, e.g. Google's, give `None`). Read for display only: the
/// signature is not checked.
pub fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = base64url(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_tells_its_expiry_an_opaque_token_does_not() {
        // {"alg":"none"} . {"exp":1767225600,"sub":"x"} . (no signature)
        let jwt = "eyJhbGciOiJub25lIn0.eyJleHAiOjE3NjcyMjU2MDAsInN1YiI6IngifQ.sig";
        assert_eq!(jwt_expiry(jwt), DateTime::from_timestamp(1_767_225_600, 0));
        assert_eq!(jwt_expiry("ya29.a0AfH6SMBopaque"), None);
        assert_eq!(jwt_expiry("not a token"), None);
    }
}
