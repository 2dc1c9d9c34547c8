//! Delivers the outbox: claims due messages, sends them through the configured transport
//! (SMTP, or `.eml` files on the embedded default), and records each outcome. Transient
//! failures are retried with growing, jittered backoff; permanent ones (SMTP 5xx) end as
//! `failed`, messages out of attempts as `dead` (the dead letters, which `ticketgate outbox
//! retry` puts back to pending), both with the reason. One log line per attempt.

use crate::clock::SharedClock;
use crate::config::{OutboundConfig, TransportConfig};
use crate::store::{Claim, Db, OutboxMail, Outcome, StoreError};
use chrono::{DateTime, Utc};
use lettre::Address;
use lettre::address::Envelope;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

mod file;
mod smtp;

pub use file::FileOutbox;

pub enum Transport {
    /// `.eml` files in a folder (the embedded default).
    File(FileOutbox),
    Smtp {
        client: Box<smtp::SmtpClient>,
        envelope_from: Address,
        /// `outbound.bounce_key`: each message's envelope sender is then its own signed
        /// VERP address (`LOCAL+OUTBOXID.SIGNATURE@DOMAIN` of `envelope_from`).
        verp_key: Option<crate::config::Secret>,
    },
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later (4xx, connection trouble, a full disk).
    Transient(String),
    /// Will never succeed (5xx, a recipient that is not an address).
    Permanent(String),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

impl DeliveryReport {
    pub fn add(&mut self, o: &DeliveryReport) {
        self.sent += o.sent;
        self.retried += o.retried;
        self.failed += o.failed;
    }
}

impl Transport {
    /// The longest one delivery attempt can take.
    pub fn attempt_limit(&self) -> Duration {
        match self {
            Transport::File(_) => Duration::from_secs(30),
            Transport::Smtp { client, .. } => client.attempt_limit(),
        }
    }

    pub fn from_config(cfg: &OutboundConfig) -> Result<Transport, String> {
        match &cfg.transport {
            TransportConfig::File { dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create outbound folder {}: {e}", dir.display()))?;
                Ok(Transport::File(FileOutbox::new(dir.clone())))
            }
            TransportConfig::Smtp(s) => {
                let client = Box::new(smtp::SmtpClient::new(s)?);
                let envelope_from = match &s.envelope_from {
                    Some(a) => a.parse().map_err(|e| {
                        format!("outbound.smtp.envelope_from: `{a}` is not an address ({e})")
                    })?,
                    None => cfg.from.email.clone(),
                };
                Ok(Transport::Smtp {
                    client,
                    envelope_from,
                    verp_key: cfg.bounce_key.clone(),
                })
            }
        }
    }

    pub async fn send(&self, mail: &OutboxMail) -> Result<(), SendError> {
        match self {
            Transport::File(out) => {
                let name = format!("{:08}-{}.eml", mail.id, mail.kind);
                let path = out.dir().join(&name);
                // Counts as sent only once durable (the file, then its name).
                out.write(name, mail.body.clone()).await.map_err(|e| {
                    SendError::Transient(format!("cannot write {}: {e}", path.display()))
                })
            }
            Transport::Smtp {
                client,
                envelope_from,
                verp_key,
            } => {
                let envelope_from = match verp_key {
                    Some(key) => crate::bounce::verp::address(
                        envelope_from.as_ref(),
                        key.expose().as_bytes(),
                        mail.id,
                    )
                    .parse::<Address>()
                    .map_err(|e| SendError::Permanent(format!("VERP envelope sender: {e}")))?,
                    None => envelope_from.clone(),
                };
                let to: Address = mail.recipient.parse().map_err(|e| {
                    SendError::Permanent(format!(
                        "recipient `{}` is not an address: {e}",
                        mail.recipient
                    ))
                })?;
                let envelope = Envelope::new(Some(envelope_from), vec![to])
                    .map_err(|e| SendError::Permanent(format!("envelope: {e}")))?;
                client.send(&envelope, &mail.body).await
            }
        }
    }
}

/// The wait before attempt `attempt + 1`: base × 2^(attempt−1), capped, with ±20 % jitter.
pub fn backoff(cfg: &OutboundConfig, attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 30) as u32 - 1;
    let raw = cfg
        .retry_base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(cfg.retry_max);
    let mut r = [0u8; 2];
    let jitter = if getrandom::fill(&mut r).is_ok() {
        (u16::from_le_bytes(r) as f64 / u16::MAX as f64) * 0.4 - 0.2
    } else {
        0.0
    };
    raw.mul_f64(1.0 + jitter)
}

/// Messages claimed per sending slot at once.
const CLAIM_FACTOR: usize = 8;

/// Sends everything due now until nothing due is left, keeping `cfg.concurrency` sends in
/// flight all the time: each finished send is recorded as soon as the store is free and its
/// slot goes to the next claimed message, so one slow server answer does not hold the
/// others back.
///
/// Messages are claimed [`CLAIM_FACTOR`] × `cfg.concurrency` at a time (one statement, one
/// commit for many), the next set while the previous one is still being sent (when fewer
/// than `cfg.concurrency` claimed messages wait to start), so no slot waits for a claim. Once
/// a claim comes back empty no more is claimed; what is still in flight is finished and
/// recorded.
pub async fn deliver_due(
    db: &Db,
    transport: &Arc<Transport>,
    cfg: &OutboundConfig,
    clock: &SharedClock,
) -> Result<DeliveryReport, StoreError> {
    deliver_due_until(db, transport, cfg, clock, &|| false).await
}

/// [`deliver_due`] that stops once `stop()` says so (shutdown): sends not started yet are
/// given back (due again at once), the ones in flight are finished and recorded.
///
/// Each send is a task of its own, so sends go on while a claim or the outcomes are being
/// committed (on a pooled connection: never behind the ingest writer). Outcomes are
/// committed in groups: one recording at a time takes every outcome that finished while
/// the one before it was committing (one statement, one commit), and a sending slot stays
/// taken until its outcome is committed, so a kill repeats at most one accepted message per
/// connection.
///
/// No message is sent twice by this loop: a claimed message is started only while its claim
/// has at least one whole attempt's time left ([`Transport::attempt_limit`]), the next set
/// is claimed ahead only while every claimed message waiting to start has more than that
/// left (so none of them can be due again, and claimed a second time, by that claim), and
/// every outcome is recorded under the claim's fence. A database error mid-pass stops
/// claiming, gives back what was not started, still records what is in flight as far as
/// the database lets it, and is then returned.
pub async fn deliver_due_until(
    db: &Db,
    transport: &Arc<Transport>,
    cfg: &OutboundConfig,
    clock: &SharedClock,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<DeliveryReport, StoreError> {
    // One store call of this pass at a time: claims and recordings take turns instead of
    // meeting in SQLite's busy handler (which sleeps milliseconds).
    let db = &Lane::new(db.clone());
    let lease =
        chrono::Duration::from_std(cfg.claim_timeout).unwrap_or(chrono::Duration::minutes(5));
    let attempt = chrono::Duration::from_std(transport.attempt_limit())
        .unwrap_or(chrono::Duration::minutes(5));
    let slots = cfg.concurrency.max(1);
    let max_attempts = cfg.max_attempts;
    let mut report = DeliveryReport::default();
    // Claimed and not started, with the end of each claim.
    let mut claimed: VecDeque<(OutboxMail, DateTime<Utc>)> = VecDeque::new();
    let mut in_flight: JoinSet<(OutboxMail, Result<(), SendError>)> = JoinSet::new();
    // Finished sends whose outcome is not committed yet: waiting for the recording under
    // way to end (`done`), or in it (`recording`, with its count). Both keep their slots.
    let mut done: Vec<(OutboxMail, Result<(), SendError>)> = Vec::new();
    let mut recording: JoinSet<Recorded> = JoinSet::new();
    let mut recording_n = 0usize;
    // The claim under way (one at a time), with the end of the claims it makes.
    let mut claiming: JoinSet<(crate::store::Result<Vec<OutboxMail>>, DateTime<Utc>)> =
        JoinSet::new();
    let shared_cfg = Arc::new(cfg.clone());
    let mut more_due = true;
    let mut stopped = false;
    let mut failure: Option<StoreError> = None;
    loop {
        if failure.is_none() && !stopped && stop() {
            stopped = true;
            more_due = false;
            give_back(db, &mut claimed, clock, "shutdown").await;
        }
        // Claim the next set while fewer than a slot's worth wait to start, and only while
        // every one waiting has more than an attempt's time left on its claim: the claim
        // cannot then take one of them again (a sender never holds a message twice).
        let now = clock.now();
        if claiming.is_empty()
            && more_due
            && failure.is_none()
            && claimed.len() < slots
            && claimed.iter().all(|(_, until)| now + attempt < *until)
        {
            let limit = slots * CLAIM_FACTOR;
            let lane = db.clone();
            claiming.spawn(async move {
                let r = lane
                    .read(move |s| s.claim_due(now, now + lease, limit, max_attempts))
                    .await;
                (r, now + lease)
            });
        }
        while failure.is_none() && in_flight.len() + done.len() + recording_n < slots {
            let Some((mail, until)) = claimed.pop_front() else {
                break;
            };
            // (Unless no claim could ever be long enough: the configuration check prevents
            // that for SMTP.)
            if attempt < lease && clock.now() + attempt >= until {
                // Its claim could lapse mid-attempt and another sender take it: give it
                // back instead, and claim it afresh.
                claimed.push_front((mail, until));
                give_back(db, &mut claimed, clock, "claim too old to start an attempt").await;
                break;
            }
            let transport = transport.clone();
            in_flight.spawn(async move {
                let result = transport.send(&mail).await;
                (mail, result)
            });
        }
        // One recording at a time, with every outcome that finished meanwhile.
        if recording.is_empty() && !done.is_empty() {
            let batch = std::mem::take(&mut done);
            recording_n = batch.len();
            let (lane, cfg2, now) = (db.clone(), shared_cfg.clone(), clock.now());
            recording.spawn(async move { record_all(&lane, &cfg2, batch, now).await });
        }
        if in_flight.is_empty() && recording.is_empty() && claiming.is_empty() {
            if claimed.is_empty() && (!more_due || failure.is_some()) {
                return match failure {
                    Some(e) => Err(e),
                    None => Ok(report),
                };
            }
            continue; // claim afresh (everything claimed was given back, or more is due)
        }
        tokio::select! {
            Some(first) = in_flight.join_next(), if !in_flight.is_empty() => {
                // Every other send that has finished by now goes with it.
                for joined in std::iter::once(first).chain(std::iter::from_fn(|| in_flight.try_join_next())) {
                    match joined {
                        Ok(d) => done.push(d),
                        // The send panicked: its mail is unknown here; its claim lapses and
                        // it is tried again then.
                        Err(e) => tracing::error!(error = %e,
                            "a delivery attempt panicked; its message is tried again when its claim lapses (outbound.claim_timeout)"),
                    }
                }
            }
            Some(r) = recording.join_next(), if !recording.is_empty() => {
                recording_n = 0;
                absorb(r, &mut report, &mut failure, db, &mut claimed, clock).await;
            }
            Some(c) = claiming.join_next(), if !claiming.is_empty() => {
                match c {
                    Ok((Ok(batch), until)) => {
                        more_due = more_due && !batch.is_empty();
                        // A message claimed again (its earlier claim lapsed after all) is
                        // kept once, under its newest claim.
                        let ids: HashSet<i64> = batch.iter().map(|m| m.id).collect();
                        claimed.retain(|(m, _)| !ids.contains(&m.id));
                        claimed.extend(batch.into_iter().map(|m| (m, until)));
                        if stopped || failure.is_some() {
                            give_back(db, &mut claimed, clock, "shutdown").await;
                        }
                    }
                    Ok((Err(e), _)) => {
                        more_due = false;
                        if failure.is_none() {
                            give_back(db, &mut claimed, clock, "database error").await;
                            failure = Some(e);
                        }
                    }
                    Err(e) => {
                        more_due = false;
                        if failure.is_none() {
                            give_back(db, &mut claimed, clock, "database error").await;
                            failure = Some(StoreError::Other(format!("claiming messages failed: {e}")));
                        }
                    }
                }
            }
        }
    }
}

/// What a recording did: the counts and its failure.
type Recorded = (DeliveryReport, Option<StoreError>);

/// Takes in a finished recording: its counts, and its failure (then what was claimed and not
/// started is given back, and no more is claimed).
async fn absorb(
    joined: Result<Recorded, tokio::task::JoinError>,
    report: &mut DeliveryReport,
    failure: &mut Option<StoreError>,
    db: &Lane,
    claimed: &mut VecDeque<(OutboxMail, DateTime<Utc>)>,
    clock: &SharedClock,
) {
    // A recording that panicked is a failure: no more is sent in this pass.
    let (r, err) = match joined {
        Ok(x) => x,
        Err(e) => (
            DeliveryReport::default(),
            Some(StoreError::Other(format!(
                "recording delivery outcomes failed: {e}"
            ))),
        ),
    };
    report.add(&r);
    if let Some(e) = err
        && failure.is_none()
    {
        give_back(db, claimed, clock, "database error").await;
        *failure = Some(e);
    }
}

/// Records the outcomes of finished sends, all in one commit ([`Store::mark_outcomes`]),
/// then logs each.
///
/// [`Store::mark_outcomes`]: crate::store::Store::mark_outcomes
async fn record_all(
    db: &Lane,
    cfg: &OutboundConfig,
    done: Vec<(OutboxMail, Result<(), SendError>)>,
    now: DateTime<Utc>,
) -> Recorded {
    let mut report = DeliveryReport::default();
    let outcomes: Vec<Outcome> = done
        .iter()
        .map(|(mail, result)| outcome(cfg, mail, result, now))
        .collect();
    let marks: Vec<(Claim, Outcome)> = done
        .iter()
        .zip(&outcomes)
        .map(|((m, _), o)| (m.claim(), o.clone()))
        .collect();
    let n = marks.len();
    let current = match db.read(move |s| s.mark_outcomes(&marks, now)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, messages = n,
                "the outcomes of these attempts could not be recorded: they are tried again when their claims lapse (the sent ones may be sent again)");
            return (report, Some(e));
        }
    };
    for (((mail, _), o), recorded) in done.into_iter().zip(outcomes).zip(current) {
        log_outcome(&mail, &o, recorded, &mut report);
    }
    (report, None)
}

/// What a finished attempt comes to.
fn outcome(
    cfg: &OutboundConfig,
    mail: &OutboxMail,
    result: &Result<(), SendError>,
    now: DateTime<Utc>,
) -> Outcome {
    match result {
        Ok(()) => Outcome::Sent,
        Err(SendError::Transient(e)) if mail.attempts < cfg.max_attempts as i64 => {
            let wait = backoff(cfg, mail.attempts);
            Outcome::Retry {
                next_at: now
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)),
                error: e.clone(),
            }
        }
        Err(SendError::Transient(e)) => Outcome::Dead(format!(
            "gave up after {} attempts (outbound.max_attempts); last error: {e}",
            mail.attempts
        )),
        Err(SendError::Permanent(e)) => Outcome::Failed(e.clone()),
    }
}

/// The store, for one delivery pass: its calls take turns.
#[derive(Clone)]
struct Lane {
    db: Db,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Lane {
    fn new(db: Db) -> Lane {
        Lane {
            db,
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn crate::store::Store) -> crate::store::Result<T> + Send + 'static,
    ) -> crate::store::Result<T> {
        let _turn = self.turn.lock().await;
        self.db.read(f).await
    }
}

/// Gives back every claimed message that was not started (best effort: if the database
/// refuses, the claims lapse by themselves after `outbound.claim_timeout`).
async fn give_back(
    db: &Lane,
    claimed: &mut VecDeque<(OutboxMail, DateTime<Utc>)>,
    clock: &SharedClock,
    why: &str,
) {
    if claimed.is_empty() {
        return;
    }
    let claims: Vec<Claim> = claimed.drain(..).map(|(m, _)| m.claim()).collect();
    let n = claims.len();
    let now = clock.now();
    match db.read(move |s| s.release_claims(&claims, now)).await {
        Ok(()) => tracing::info!(
            messages = n,
            reason = why,
            "claimed messages given back unsent; due again at once"
        ),
        Err(e) => tracing::warn!(messages = n, reason = why, error = %e,
            "could not give claimed messages back; they are due again when their claim lapses (outbound.claim_timeout)"),
    }
}

/// Logs one recorded attempt (one line each) and counts it. `recorded` is `false` when the
/// claim had lapsed and another sender took the message over: nothing was changed.
fn log_outcome(mail: &OutboxMail, o: &Outcome, recorded: bool, report: &mut DeliveryReport) {
    if !recorded {
        tracing::warn!(
            outbox_id = mail.id,
            attempt = mail.attempts,
            "this attempt's outcome was not recorded: its claim lapsed and another sender took the message over; raise outbound.claim_timeout"
        );
    }
    match o {
        Outcome::Sent => {
            report.sent += 1;
            tracing::info!(outbox_id = mail.id, kind = %mail.kind, to = %mail.recipient, message_id = %mail.message_id,
                attempt = mail.attempts, result = "sent", "delivery attempt");
        }
        Outcome::Retry { next_at, error } => {
            report.retried += 1;
            tracing::warn!(outbox_id = mail.id, kind = %mail.kind, to = %mail.recipient, message_id = %mail.message_id,
                attempt = mail.attempts, result = "retry", error = %error, next_attempt_at = %next_at.to_rfc3339(),
                "delivery attempt failed; will retry");
        }
        Outcome::Dead(e) => {
            report.failed += 1;
            tracing::error!(outbox_id = mail.id, kind = %mail.kind, to = %mail.recipient, message_id = %mail.message_id,
                attempt = mail.attempts, result = "dead", error = %e,
                "delivery gave up; kept as dead letter: `ticketgate outbox retry ID` sends it again");
        }
        Outcome::Failed(e) => {
            report.failed += 1;
            tracing::error!(outbox_id = mail.id, kind = %mail.kind, to = %mail.recipient, message_id = %mail.message_id,
                attempt = mail.attempts, result = "failed", error = %e, "delivery refused by the server; not retried");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file transport writes off the runtime thread and still works on the daemon's
    /// current-thread runtime.
    #[tokio::test]
    async fn the_file_transport_delivers_on_a_current_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::File(FileOutbox::new(dir.path().to_path_buf()));
        let mail = OutboxMail {
            id: 7,
            kind: "acknowledgement".into(),
            recipient: "jane@acme.example".into(),
            message_id: "<m@x>".into(),
            attempts: 1,
            body: b"Subject: s\r\n\r\nbody\r\n".to_vec(),
        };
        t.send(&mail).await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("00000007-acknowledgement.eml")).unwrap(),
            mail.body
        );
    }
}
