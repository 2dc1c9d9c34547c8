//! The heart: a batch of raw mails → parse → route → apply, in one write transaction. Each
//! mail runs inside a savepoint, so one that fails is quarantined alone and the rest of the
//! batch still commits. Outbound mail is rendered and written to the outbox inside the same
//! transaction, so a ticket change and the mail it owes people commit together or not at all.

use crate::auth::token::ReplyKey;
use crate::auth::{Authenticator, TrustSettings};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::lifecycle::Engine;
use crate::mailer::{Letter, MailError, Mailer, Sent};
use crate::notify::{self, Automatic, Notice, Templates};
use crate::parse::{self, InboundMail, Limits, ParseFailure, Patterns};
use crate::registry::{Customer, KeyStatus};
use crate::registry::{Registry, RegistryFile};
use crate::route::{self, Decision, Quarantine, loops};
use crate::services::reports;
use crate::store::{self, NewArticle, NewInbound, Store, TicketRow, WriteTx};
use crate::workflow::{self, CustomerEffect};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// Mails parsed per hand-over from the parsing thread to the applying one.
const PARSE_CHUNK: usize = 64;
/// Parsed chunks read ahead at most in one [`WriteTx::prefetch`], and how many parsed
/// chunks the parsing thread may be ahead.
const PREFETCH_CHUNKS: usize = 16;
/// Parsed chunks a store that reads ahead waits for before its first prefetch (a round trip
/// per chunk costs more than the overlap it buys). Later groups take every chunk parsed by
/// then, at least this many: waiting for the whole batch left the applying thread idle
/// while the batch was parsed (ADR 0016).
const PREFETCH_MIN_CHUNKS: usize = 4;

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
    /// A customer's report request: answered with its KPI report (or why there is none).
    Report {
        customer: String,
    },
    /// A subscription command or a reply to a subscription's confirmation.
    Subscription {
        effect: crate::subscriptions::apply::Effect,
        list: Option<String>,
    },
}

/// A batch [`Pipeline::next_batch`] began: handed back to it with the next batch, or to
/// [`Pipeline::finish_batch`].
pub struct Pending {
    mails: Vec<RawMail>,
    now: DateTime<Utc>,
    state: PendingState,
}

impl Pending {
    /// The batch's mails, in the order given.
    pub fn mails(&self) -> &[RawMail] {
        &self.mails
    }
}

enum PendingState {
    /// Applied in one transaction, whose commit was started.
    Committing {
        commit: Box<dyn store::Committing>,
        report: Report,
        outcomes: Vec<Outcome>,
    },
    /// Not committed: done again at its finish (whole, then one savepoint per mail).
    Again,
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
    /// Report requests answered (the report, or why there is none).
    pub reports: usize,
    /// Subscription requests and confirmations by mail (refusals count as quarantined).
    pub subscriptions: usize,
}

impl Report {
    pub fn add(&mut self, o: &Report) {
        self.created += o.created;
        self.appended += o.appended;
        self.quarantined += o.quarantined;
        self.duplicates += o.duplicates;
        self.outbound += o.outbound;
        self.suppressed += o.suppressed;
        self.reports += o.reports;
        self.subscriptions += o.subscriptions;
    }

    pub fn mails(&self) -> usize {
        self.created
            + self.appended
            + self.quarantined
            + self.duplicates
            + self.reports
            + self.subscriptions
    }
}

pub struct Pipeline {
    cfg: Arc<Config>,
    patterns: Patterns,
    registry: Arc<RegistryFile>,
    templates: Templates,
    clock: SharedClock,
    /// Sender authenticity: verdicts, and the DNS cache `prefetch` fills.
    auth: Arc<Authenticator>,
    /// Batches done again ([`Pipeline::batches_done_again`]).
    done_again: std::sync::atomic::AtomicUsize,
    /// Of those, the ones done one savepoint per mail ([`Pipeline::batches_done_mail_by_mail`]).
    mail_by_mail: std::sync::atomic::AtomicUsize,
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
            auth: Arc::new(Authenticator::new(TrustSettings {
                authserv_ids: cfg.inbound.trusted_authserv_ids.clone(),
                sources: cfg.inbound.trusted_sources.clone(),
                dns_timeout: cfg.inbound.dns_timeout,
            })),
            cfg,
            registry,
            templates,
            clock,
            done_again: std::sync::atomic::AtomicUsize::new(0),
            mail_by_mail: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many batches could not be done in one transaction and were done again, one
    /// savepoint per mail (a mail that failed, a write conflict, a batch before that failed).
    pub fn batches_done_again(&self) -> usize {
        self.done_again.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Batches done again one savepoint per mail, under the writers' lock: a mail of the
    /// batch failed, or the batch failed again when done whole.
    pub fn batches_done_mail_by_mail(&self) -> usize {
        self.mail_by_mail.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The sender-authenticity checker (tests pre-fill its DNS cache).
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Looks up the DKIM keys and DMARC records `mails` will be verified with (network I/O),
    /// so that the batch's transaction never waits on DNS. Call it before `process`; a mail
    /// processed without it is verified with what the cache already holds.
    pub async fn prefetch(&self, mails: &[RawMail]) {
        let signed: Vec<&[u8]> = mails
            .iter()
            .filter(|m| self.auth.trusted_source(&m.source).is_none())
            .map(|m| m.bytes.as_slice())
            .collect();
        if !signed.is_empty() {
            self.auth.prefetch(&signed).await;
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn reference(&self, id: i64) -> String {
        reference(&self.cfg.tickets.reference_prefix, id)
    }

    /// Parses mails, on both cores when the batch is large enough to pay for a thread (the
    /// benchmark's measure of the parse step; `process` overlaps parsing with applying).
    pub fn parse_all(&self, mails: &[RawMail]) -> Vec<Result<InboundMail, ParseFailure>> {
        let limits = Limits {
            max_attachment_bytes: self.cfg.inbound.max_attachment_bytes,
        };
        let one = |m: &RawMail| self.parse_one(m, m.bytes.len(), limits);
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

    /// `size`: the mail's whole size, more than `raw.len()` when the source handed over its
    /// header only (see [`Pipeline::process_declared`]).
    fn parse_one(
        &self,
        mail: &RawMail,
        size: usize,
        limits: Limits,
    ) -> Result<InboundMail, ParseFailure> {
        let mut parsed = self.parse_bytes(&mail.bytes, size, limits);
        if let Ok(m) = &mut parsed {
            // Sender authenticity, on the parsing thread: no I/O (DNS answers come from the
            // cache `prefetch` filled before the transaction).
            m.auth = self
                .auth
                .verdict(&mail.bytes, &mail.source, m.from.as_deref());
        }
        parsed
    }

    fn parse_bytes(
        &self,
        raw: &[u8],
        size: usize,
        limits: Limits,
    ) -> Result<InboundMail, ParseFailure> {
        if size > self.cfg.inbound.max_message_bytes {
            // Read the header section only: enough to answer the sender.
            let end = header_end(raw).min(256 * 1024);
            let mut head = raw[..end].to_vec();
            head.extend_from_slice(b"\r\n\r\n");
            return parse::parse(&head, &self.patterns, limits);
        }
        // `[inbound.limits]`: checked on the raw bytes before the MIME parser reads them.
        parse::limits::check(raw, &self.cfg.inbound.limits)?;
        parse::parse(raw, &self.patterns, limits)
    }

    /// Processes a batch in one transaction and commits it. On `Err` nothing was committed and
    /// the caller must leave the mails where they are (or tell the MTA to retry).
    pub fn process(
        &self,
        store: &mut dyn Store,
        mails: &[RawMail],
    ) -> Result<(Report, Vec<Outcome>), store::StoreError> {
        self.process_declared(store, mails, &[], &mut |_| Ok(()))
    }

    /// [`Pipeline::process`] with two additions for sources such as IMAP: `finish` runs in
    /// the batch's transaction just before it commits (IMAP records the mailbox's highest
    /// UID there), and `declared[i]` (when given) is the whole size of `mails[i]`, whose
    /// bytes may then be its header only (`RFC822.SIZE` of a mail over
    /// `inbound.max_message_size`, fetched as `BODY.PEEK[HEADER]`): such a mail is
    /// quarantined as too large, with the reply to its sender, like one handed over whole.
    pub fn process_declared(
        &self,
        store: &mut dyn Store,
        mails: &[RawMail],
        declared: &[Option<usize>],
        finish: &mut dyn FnMut(&mut dyn store::WriteTx) -> store::Result<()>,
    ) -> Result<(Report, Vec<Outcome>), store::StoreError> {
        // The size each mail counts as: the declared one when larger than the bytes.
        let size = |i: usize| {
            let len = mails[i].bytes.len();
            declared
                .get(i)
                .copied()
                .flatten()
                .map_or(len, |d| d.max(len))
        };
        let registry = self.registry.current();
        let now = self.clock.now();
        let (_, fast) = self.prepare(store, mails, &size, None, &registry, now, finish, false);
        if let Some((report, outcomes, _)) = fast? {
            return Ok((report, outcomes));
        }
        self.redo(store, mails, &size, &registry, now, finish)
    }

    /// A batch that could not be committed as it was first prepared (a conflict with
    /// another instance, a batch before it that failed, a mail that failed), done again:
    /// first whole, in one transaction, since a conflict seldom repeats; only when that
    /// fails too, one savepoint per mail under the writers' lock from the start (which
    /// holds the lock for the whole batch's round trips: 1,024 mails took 15 s, ADR 0022).
    #[allow(clippy::too_many_arguments)]
    fn redo(
        &self,
        store: &mut dyn Store,
        mails: &[RawMail],
        size: &(dyn Fn(usize) -> usize + Sync),
        registry: &Registry,
        now: DateTime<Utc>,
        finish: &mut dyn FnMut(&mut dyn store::WriteTx) -> store::Result<()>,
    ) -> Result<(Report, Vec<Outcome>), store::StoreError> {
        self.done_again
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (parsed, fast) = self.prepare(store, mails, size, None, registry, now, finish, false);
        match fast {
            Ok(Some((report, outcomes, _))) => return Ok((report, outcomes)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "batch not done again whole"),
        }
        self.process_again(store, mails, parsed, size, registry, now, finish)
    }

    /// The next batch of a stream of batches (a Maildir drain): parses and applies `mails`
    /// while the batch `before` (the previous call's) commits, starts this batch's own
    /// commit without waiting for it (PostgreSQL; on SQLite the batch is committed here),
    /// then finishes `before` ([`Pipeline::finish_batch`]) and returns its outcome with the
    /// new batch. The last batch is finished with [`Pipeline::finish_batch`]. Nothing may
    /// leave its source before its batch is finished. A batch that could not be done in one
    /// transaction (a mail that fails, a conflict with another instance, a batch before it
    /// that failed) is done again at its finish: whole, and if that fails too, one savepoint
    /// per mail (ADRs 0019, 0022).
    #[allow(clippy::type_complexity)]
    pub fn next_batch(
        &self,
        store: &mut dyn Store,
        mails: Vec<RawMail>,
        before: Option<Pending>,
    ) -> (
        Pending,
        Option<Result<(Report, Vec<Outcome>), store::StoreError>>,
    ) {
        match before {
            Some(b) if matches!(b.state, PendingState::Again) => {
                // It is done again first; this one can only follow it.
                let r = self.finish_batch(store, b);
                let next = if r.is_ok() {
                    self.begin_batch(store, mails, None)
                } else {
                    Pending {
                        mails,
                        now: self.clock.now(),
                        state: PendingState::Again,
                    }
                };
                (next, Some(r))
            }
            before => {
                let next = self.begin_batch(store, mails, before.as_ref());
                let r = before.map(|b| self.finish_batch(store, b));
                (next, r)
            }
        }
    }

    /// Parses and applies `mails` while `before` commits, and starts their commit.
    fn begin_batch(
        &self,
        store: &mut dyn Store,
        mails: Vec<RawMail>,
        before: Option<&Pending>,
    ) -> Pending {
        let registry = self.registry.current();
        let now = self.clock.now();
        let before = match before.map(|b| &b.state) {
            None => None,
            Some(PendingState::Committing { commit, .. }) => Some(commit.as_ref()),
            // Done again at its finish: this one can only follow that.
            Some(PendingState::Again) => {
                return Pending {
                    mails,
                    now,
                    state: PendingState::Again,
                };
            }
        };
        let size = |i: usize| mails[i].bytes.len();
        let (_, fast) = self.prepare(
            store,
            &mails,
            &size,
            before,
            &registry,
            now,
            &mut |_| Ok(()),
            true,
        );
        let state = match fast {
            Ok(Some((report, outcomes, Some(commit)))) => PendingState::Committing {
                commit,
                report,
                outcomes,
            },
            Ok(_) => PendingState::Again,
            Err(e) => {
                tracing::warn!(error = %e, "batch not started; doing it again at its turn");
                PendingState::Again
            }
        };
        Pending { mails, now, state }
    }

    /// Waits until a batch [`Pipeline::next_batch`] began is durable, or does it again
    /// ([`Pipeline::redo`]: whole, then one savepoint per mail) when its transaction could
    /// not commit. On `Err` nothing of
    /// the batch was committed and its mails must stay where they are.
    pub fn finish_batch(
        &self,
        store: &mut dyn Store,
        pending: Pending,
    ) -> Result<(Report, Vec<Outcome>), store::StoreError> {
        let Pending { mails, now, state } = pending;
        if let PendingState::Committing {
            commit,
            report,
            outcomes,
        } = state
        {
            match commit.wait() {
                Ok(()) => return Ok((report, outcomes)),
                Err(e) => {
                    tracing::warn!(error = %e, "batch not committed; doing it again");
                }
            }
        }
        let registry = self.registry.current();
        let size = |i: usize| mails[i].bytes.len();
        self.redo(store, &mails, &size, &registry, now, &mut |_| Ok(()))
    }

    /// The batch in one transaction without savepoints, the next chunk parsed on the other
    /// core while this one is applied. Returns the parsed mails and, when every mail was
    /// applied and the commit went through (or was started: `background`), the batch's
    /// outcome; `None` when it must be done again one savepoint per mail.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn prepare(
        &self,
        store: &mut dyn Store,
        mails: &[RawMail],
        size: &(dyn Fn(usize) -> usize + Sync),
        before: Option<&dyn store::Committing>,
        registry: &Registry,
        now: DateTime<Utc>,
        finish: &mut dyn FnMut(&mut dyn store::WriteTx) -> store::Result<()>,
        background: bool,
    ) -> (
        Vec<Result<InboundMail, ParseFailure>>,
        Result<
            Option<(Report, Vec<Outcome>, Option<Box<dyn store::Committing>>)>,
            store::StoreError,
        >,
    ) {
        let limits = Limits {
            max_attachment_bytes: self.cfg.inbound.max_attachment_bytes,
        };
        std::thread::scope(|s| {
            let (chunks_tx, chunks_rx) = std::sync::mpsc::sync_channel::<Vec<_>>(PREFETCH_CHUNKS);
            if mails.len() >= 2 * PARSE_CHUNK {
                s.spawn(move || {
                    for (c, chunk) in mails.chunks(PARSE_CHUNK).enumerate() {
                        let parsed = chunk
                            .iter()
                            .enumerate()
                            .map(|(j, m)| self.parse_one(m, size(c * PARSE_CHUNK + j), limits))
                            .collect();
                        if chunks_tx.send(parsed).is_err() {
                            return; // the applier stopped early
                        }
                    }
                });
            } else {
                let parsed = mails
                    .iter()
                    .enumerate()
                    .map(|(i, m)| self.parse_one(m, size(i), limits))
                    .collect();
                let _ = chunks_tx.send(parsed); // the receiver is alive: it is below
                drop(chunks_tx);
            }
            let mut all: Vec<Result<InboundMail, ParseFailure>> = Vec::with_capacity(mails.len());
            let fast = (|| {
                // Reads before the writers' lock where the store allows it (PostgreSQL:
                // checked again under it at commit, ADR 0009).
                let mut tx = match before {
                    Some(b) => store.write_batch_after(b)?,
                    None => store.write_batch()?,
                };
                let mut report = Report::default();
                let mut outcomes = Vec::with_capacity(mails.len());
                let mut failed = false;
                // Chunks are read ahead together (one prefetch): as many as are parsed by
                // now, and at least `PREFETCH_MIN_CHUNKS` (or all) when the store reads
                // ahead.
                let wait_for = if tx.prefetches() {
                    PREFETCH_MIN_CHUNKS
                } else {
                    1
                };
                while let Ok(first) = chunks_rx.recv() {
                    let mut group = vec![first];
                    while group.len() < wait_for
                        && let Ok(more) = chunks_rx.recv()
                    {
                        group.push(more);
                    }
                    while group.len() < PREFETCH_CHUNKS
                        && let Ok(more) = chunks_rx.try_recv()
                    {
                        group.push(more);
                    }
                    if !failed
                        && tx
                            .prefetch(&self.store_prefetch(group.iter().flatten(), now))
                            .is_err()
                    {
                        failed = true;
                    }
                    for p in group.into_iter().flatten() {
                        if !failed {
                            let i = all.len();
                            let raw = &mails[i];
                            match self.apply(
                                tx.as_mut(),
                                raw,
                                size(i),
                                &p,
                                registry,
                                now,
                                &mut report,
                            ) {
                                Ok(o) => outcomes.push(o),
                                Err(_) => failed = true,
                            }
                        }
                        all.push(p);
                    }
                }
                if failed || all.len() != mails.len() {
                    return Ok(None); // dropped: rolled back
                }
                // The source's own write takes the writers' lock on PostgreSQL: a write
                // conflict can show here too.
                let committed = finish(tx.as_mut()).and_then(|()| {
                    if background {
                        tx.commit_background().map(Some)
                    } else {
                        tx.commit().map(|()| None)
                    }
                });
                let commit = match committed {
                    Ok(c) => c,
                    Err(e) => {
                        // Nothing was written (a write conflict with another instance, a row
                        // the server refused): done again (`redo`).
                        tracing::warn!(error = %e, "batch not committed; doing it again");
                        return Ok(None);
                    }
                };
                Ok::<_, store::StoreError>(Some((report, outcomes, commit)))
            })();
            (all, fast)
        })
    }

    /// The batch again, one savepoint per mail, so a mail that fails is quarantined alone
    /// and the rest commits; under the writers' lock from the start.
    #[allow(clippy::too_many_arguments)]
    fn process_again(
        &self,
        store: &mut dyn Store,
        mails: &[RawMail],
        parsed: Vec<Result<InboundMail, ParseFailure>>,
        size: &dyn Fn(usize) -> usize,
        registry: &Registry,
        now: DateTime<Utc>,
        finish: &mut dyn FnMut(&mut dyn store::WriteTx) -> store::Result<()>,
    ) -> Result<(Report, Vec<Outcome>), store::StoreError> {
        // Some mail failed, or the whole batch failed twice: one savepoint per mail, so a
        // mail that fails is quarantined alone and the rest commits.
        self.mail_by_mail
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(mails = mails.len(), "doing the batch mail by mail");
        let mut report = Report::default();
        let mut outcomes = Vec::with_capacity(mails.len());
        let mut tx = store.write()?;
        for (i, (raw, parsed)) in mails.iter().zip(parsed).enumerate() {
            tx.savepoint()?;
            let mut r = Report::default();
            let outcome = match self.apply(
                tx.as_mut(),
                raw,
                size(i),
                &parsed,
                registry,
                now,
                &mut r,
            ) {
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
                    let why = Some(("internal_error", reason.as_str()));
                    let kept = self.insert_inbound(
                        tx.as_mut(),
                        raw,
                        size(i),
                        &key,
                        parsed.as_ref().ok(),
                        now,
                        "quarantined",
                        why,
                        None,
                    );
                    if let Err(e2) = kept {
                        // Even the parsed fields cannot be stored: keep the raw bytes under
                        // their content key, so the batch still commits and the mailbox
                        // moves on.
                        tx.rollback_to_savepoint()?;
                        tracing::error!(source = %raw.source, error = %e2,
                            "quarantining with the parsed fields failed; kept with the raw bytes only");
                        let content = crate::parse::content_key(&raw.bytes);
                        self.insert_inbound(
                            tx.as_mut(),
                            raw,
                            size(i),
                            &content,
                            None,
                            now,
                            "quarantined",
                            why,
                            None,
                        )?;
                    }
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
        finish(tx.as_mut())?;
        tx.commit()?;
        Ok((report, outcomes))
    }

    /// What a chunk of parsed mail will read, for [`WriteTx::prefetch`].
    fn store_prefetch<'m>(
        &self,
        chunk: impl Iterator<Item = &'m Result<InboundMail, ParseFailure>>,
        now: DateTime<Utc>,
    ) -> store::Prefetch {
        let window = chrono::Duration::from_std(self.cfg.loops.auto_reply_window)
            .unwrap_or(chrono::Duration::hours(3));
        store::Prefetch {
            mails: chunk
                .map(|p| match p {
                    Ok(m) => store::PrefetchMail {
                        dedup_key: m.dedup_key.clone(),
                        message_ids: m
                            .in_reply_to
                            .iter()
                            .chain(m.references.iter())
                            .cloned()
                            .collect(),
                        ticket_ids: m
                            .subject_refs
                            .iter()
                            .chain(m.body_refs.iter())
                            .filter_map(|n| i64::try_from(*n).ok())
                            .collect(),
                        from: m.from.clone(),
                        may_open: !m.key_candidates.is_empty(),
                    },
                    Err(f) => store::PrefetchMail {
                        dedup_key: f.dedup_key.clone(),
                        ..Default::default()
                    },
                })
                .collect(),
            since: Some(now - window),
            auto_reply_limit: Some(self.cfg.loops.auto_reply_limit),
        }
    }

    pub fn engine<'a>(&'a self, registry: &'a Registry, now: DateTime<Utc>) -> Engine<'a> {
        Engine {
            cfg: &self.cfg,
            registry,
            mailer: self.mailer(),
            now,
        }
    }

    /// An agent's action from the CLI or the API, applied like a reply by mail: all commands
    /// checked first, nothing applied when one is wrong (the errors are returned).
    pub fn agent_action(
        &self,
        store: &mut dyn Store,
        ticket_id: i64,
        action: &workflow::AgentMail,
        author: &str,
    ) -> Result<Result<TicketRow, Vec<String>>, ActionError> {
        let registry = self.registry.current();
        let now = self.clock.now();
        let engine = self.engine(&registry, now);
        let mut tx = store.write()?;
        let Some(mut t) = tx.ticket(ticket_id)? else {
            return Err(ActionError::NoTicket(self.reference(ticket_id)));
        };
        let errors = engine.agent_update(tx.as_mut(), &mut t, action, author, None, None)?;
        if !errors.is_empty() {
            return Ok(Err(errors)); // dropped: rolled back
        }
        tx.commit()?;
        Ok(Ok(t))
    }

    /// Processes a quarantined mail again (after the cause was fixed: a key added, a
    /// template repaired), in one transaction with taking it out of quarantine.
    pub fn replay(&self, store: &mut dyn Store, inbound_id: i64) -> Result<Outcome, ActionError> {
        let registry = self.registry.current();
        let now = self.clock.now();
        let mut tx = store.write()?;
        let Some((bytes, source)) = tx.take_for_replay(inbound_id)? else {
            return Err(ActionError::NotQuarantined(inbound_id));
        };
        let raw = RawMail {
            source: format!("replay of #{inbound_id} ({source})"),
            bytes,
        };
        let limits = Limits {
            max_attachment_bytes: self.cfg.inbound.max_attachment_bytes,
        };
        // A mail stored header-only counts with its declared size: still too large.
        let size = tx
            .inbound_declared_size(inbound_id)?
            .map_or(raw.bytes.len(), |d| d.max(raw.bytes.len()));
        let parsed = self.parse_one(&raw, size, limits);
        let mut report = Report::default();
        let outcome = self
            .apply(
                tx.as_mut(),
                &raw,
                size,
                &parsed,
                &registry,
                now,
                &mut report,
            )
            .map_err(|e| ActionError::Replay(e.to_string()))?;
        tx.commit()?;
        Ok(outcome)
    }

    pub fn mailer(&self) -> Mailer<'_> {
        Mailer {
            cfg: &self.cfg,
            templates: &self.templates,
            prefix: &self.cfg.tickets.reference_prefix,
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.current()
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        size: usize,
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
                    size,
                    &f.dedup_key,
                    None,
                    now,
                    "quarantined",
                    Some((f.code, &f.reason)),
                    None,
                )?;
                report.quarantined += 1;
                tracing::info!(source = %raw.source, code = f.code, reason = %f.reason, "mail quarantined");
                return Ok(Outcome::Quarantined {
                    code: f.code.into(),
                    reason: f.reason.clone(),
                });
            }
        };
        if tx.inbound_exists(&mail.dedup_key)? {
            report.duplicates += 1;
            return Ok(Outcome::Duplicate);
        }

        // A bounce, before anything else: it never opens a ticket and is never answered.
        if let Some(found) = crate::bounce::handle::recognise(&raw.bytes, mail, &self.cfg, tx)? {
            return self.bounce(tx, raw, size, mail, &found, registry, now, report);
        }

        // Over the limit, or stored header-only when it was (a replay after the limit was
        // raised): either way there is no body to open a ticket with.
        let limit = self.cfg.inbound.max_message_bytes;
        if size > limit || size > raw.bytes.len() {
            let reason = if size > limit {
                format!("{size} bytes is over inbound.max_message_size ({limit} bytes)")
            } else {
                format!(
                    "only the header of this {size}-byte mail was kept (it was over \
                     inbound.max_message_size when read): take the whole mail from the mailbox \
                     and hand it to `ticketgate ingest`"
                )
            };
            let q = Quarantine {
                code: "too_large",
                reason,
                reply: Some(route::ReplyInfo {
                    key: None,
                    language: None,
                }),
            };
            return self.quarantine(tx, raw, size, mail, q, now, report);
        }

        let engine = self.engine(registry, now);
        match route::route(mail, &self.cfg, registry, tx, now)? {
            Decision::NewTicket {
                customer,
                key,
                severity,
            } => self.open_ticket(
                tx, raw, mail, &engine, &customer, &key, severity, None, report,
            ),
            Decision::FollowUp {
                ticket,
                threaded_by,
            } => {
                let mut ticket = *ticket;
                if let Some(why) = loops::no_auto_reply(mail, &self.cfg.loops) {
                    return self.keep_without_effect(
                        tx, raw, mail, &ticket, "customer", &why, now, report,
                    );
                }
                if threaded_by != route::Threading::Headers {
                    tracing::info!(source = %raw.source, ticket = %self.reference(ticket.id),
                        threaded_by = threaded_by.as_str(), in_reply_to = ?mail.in_reply_to,
                        "follow-up found by its subject tag or text, not by its headers");
                }
                // A watcher's `#unwatch`: kept on the ticket, nothing else.
                if crate::watchers::unwatch(tx, mail, &ticket, now)? {
                    let reason = format!(
                        "watcher {} unsubscribed",
                        mail.from.as_deref().unwrap_or_default()
                    );
                    return self.keep_without_effect(
                        tx, raw, mail, &ticket, "customer", &reason, now, report,
                    );
                }
                // eXo: a closed ticket stays closed; the customer's mail opens a new one that
                // refers to it, under the key's current state.
                let profile = ticket.profile;
                let status = ticket.status;
                if profile.customer_effect(status, &mail.text) == CustomerEffect::NewLinkedTicket
                    && let KeyStatus::Active(customer) =
                        registry.key_status(&ticket.support_key, now)
                {
                    let severity = mail.severity.as_ref().map_or(ticket.severity, |s| s.level);
                    return self.open_ticket(
                        tx,
                        raw,
                        mail,
                        &engine,
                        &customer,
                        &ticket.support_key,
                        severity,
                        Some(ticket.id),
                        report,
                    );
                }
                let inbound_id = self.insert_appended(tx, raw, mail, ticket.id, now)?;
                if threaded_by != route::Threading::Headers {
                    // By headers is the rule (NULL): only the exceptions cost a write.
                    tx.set_inbound_threading(inbound_id, threaded_by.as_str())?;
                }
                self.add_article(tx, ticket.id, Some(inbound_id), "customer", mail, now)?;
                crate::watchers::add_from_cc(tx, mail, &ticket, &self.cfg, registry, now)?;
                // Status decisions only from an authenticated sender, or one who answered
                // our per-ticket reply address (a reply token).
                let decide = mail.auth.passed() || self.reply_token_for(mail, ticket.id);
                engine.customer_update_as(tx, &mut ticket, mail, inbound_id, decide)?;
                if self.cfg.tickets.acknowledge_followups {
                    let notice = Notice::FollowupReceived(notify::FollowupReceived {
                        reference: self.reference(ticket.id),
                        subject: ticket.subject.clone(),
                        contact_name: mail.from_name.clone(),
                        support_name: engine.mailer.support_name(),
                    });
                    self.count(
                        report,
                        engine.mailer.send(
                            tx,
                            Letter::reply(
                                &notice,
                                &ticket.language,
                                mail,
                                Some(&ticket),
                                Some(inbound_id),
                            ),
                            now,
                        )?,
                    );
                }
                self.agent_copy(
                    tx,
                    mail,
                    &ticket,
                    Some(inbound_id),
                    notify::Update::Update,
                    registry,
                    now,
                    report,
                    Vec::new(),
                )?;
                report.appended += 1;
                let reference = self.reference(ticket.id);
                tracing::info!(source = %raw.source, ticket = %reference, status = %ticket.status, "follow-up added");
                Ok(Outcome::Appended { ticket: reference })
            }
            Decision::AgentMail { ticket } => {
                let mut ticket = *ticket;
                if let Some(why) = loops::no_auto_reply(mail, &self.cfg.loops) {
                    // An agent's out-of-office: never a command, never relayed.
                    return self
                        .keep_without_effect(tx, raw, mail, &ticket, "note", &why, now, report);
                }
                let profile = ticket.profile;
                let mut am = workflow::parse_agent_mail(profile, &mail.text);
                am.attachments = mail.attachments.clone();
                let author = mail.from.as_deref().unwrap_or_default();
                let reference = self.reference(ticket.id);
                // Checked before anything is written, so a bad command applies nothing.
                let inbound_id = self.insert_appended(tx, raw, mail, ticket.id, now)?;
                let errors = engine.agent_update(
                    tx,
                    &mut ticket,
                    &am,
                    author,
                    mail.from_name.as_deref(),
                    Some(inbound_id),
                )?;
                if !errors.is_empty() {
                    let reason = format!("agent commands not applied: {}", errors.join("; "));
                    tx.set_inbound_outcome(
                        inbound_id,
                        "quarantined",
                        Some("agent_command_error"),
                        Some(&reason),
                    )?;
                    report.quarantined += 1;
                    tracing::warn!(source = %raw.source, ticket = %reference, reason = %reason, "agent mail refused");
                    return Ok(Outcome::Quarantined {
                        code: "agent_command_error".into(),
                        reason,
                    });
                }
                report.appended += 1;
                tracing::info!(source = %raw.source, ticket = %reference, agent = author, status = %ticket.status, "agent update applied");
                Ok(Outcome::Appended { ticket: reference })
            }
            Decision::Quarantine(q) => self.quarantine(tx, raw, size, mail, q, now, report),
            Decision::ReportRequest { customer, request } => {
                self.report_request(tx, raw, mail, &customer, request, registry, now, report)
            }
            Decision::Subscription(request) => {
                self.subscription(tx, raw, mail, request, registry, now, report)
            }
        }
    }

    /// A subscription command or a confirmation reply (see [`crate::subscriptions`]): the
    /// subscriber row and its confirmation mail in the batch's transaction. Refusals, stale
    /// tokens and automatic mail are kept as quarantined with their code.
    #[allow(clippy::too_many_arguments)]
    fn subscription(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        mail: &InboundMail,
        request: crate::subscriptions::Request,
        registry: &Registry,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<Outcome, ApplyError> {
        let inbound_id = self.insert_inbound(
            tx,
            raw,
            raw.bytes.len(),
            &mail.dedup_key,
            Some(mail),
            now,
            "subscription",
            None,
            None,
        )?;
        let mailer = self.mailer();
        let Some(key) = crate::subscriptions::confirm_key(&self.cfg) else {
            let reason = "subscriptions need [announcements] key: nothing done".to_string();
            tx.set_inbound_outcome(
                inbound_id,
                "quarantined",
                Some("subscription_no_key_configured"),
                Some(&reason),
            )?;
            report.quarantined += 1;
            tracing::warn!(source = %raw.source, "subscription mail not handled: no [announcements] key");
            return Ok(Outcome::Quarantined {
                code: "subscription_no_key_configured".into(),
                reason,
            });
        };
        let ctx = crate::subscriptions::apply::Ctx {
            mailer: &mailer,
            registry,
            key: &key,
            now,
        };
        let done = ctx.by_mail(tx, mail, request, inbound_id)?;
        for s in &done.sent {
            self.count(report, s.clone());
        }
        let code = done
            .refusal
            .map(|r| r.code())
            .or(done.effect.quarantine_code());
        if let Some(code) = code {
            let reason = format!(
                "subscription request: {:?}{}",
                done.effect,
                done.list
                    .as_deref()
                    .map(|l| format!(" (list {l})"))
                    .unwrap_or_default()
            );
            tx.set_inbound_outcome(inbound_id, "quarantined", Some(code), Some(&reason))?;
            report.quarantined += 1;
            tracing::info!(source = %raw.source, code, reason = %reason, "subscription mail quarantined");
            return Ok(Outcome::Quarantined {
                code: code.into(),
                reason,
            });
        }
        report.subscriptions += 1;
        tracing::info!(source = %raw.source, effect = ?done.effect, list = ?done.list, "subscription mail handled");
        Ok(Outcome::Subscription {
            effect: done.effect,
            list: done.list,
        })
    }

    /// A customer's report request: the report as text with the CSV attached, in the plan's
    /// language, computed in this transaction; or a reply saying why there is none (a period
    /// in the future or over a year, a customer without allowed senders). Only an allowed
    /// sender (route checked it) ever gets the report; the loop rules and the cap apply as
    /// to every automatic reply.
    #[allow(clippy::too_many_arguments)]
    fn report_request(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        mail: &InboundMail,
        customer: &Customer,
        request: reports::PeriodRequest,
        registry: &Registry,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<Outcome, ApplyError> {
        let inbound_id = self.insert_inbound(
            tx,
            raw,
            raw.bytes.len(),
            &mail.dedup_key,
            Some(mail),
            now,
            "report",
            None,
            None,
        )?;
        let plan = &customer.plan;
        let lang = notify::Lang::or_english(&plan.language);
        let mailer = self.mailer();
        let refused = |reason: notify::ReportRefusal| {
            Notice::ReportRefused(notify::ReportRefused {
                reason,
                subject: mail.subject.clone(),
                today: reports::today(reports::time_zone(plan), now).to_string(),
                default_days: reports::DEFAULT_DAYS,
                contact_name: mail.from_name.clone(),
                support_name: mailer.support_name(),
            })
        };
        let mut attachments = Vec::new();
        let notice = if customer.allowed_senders.is_empty() {
            // "Any sender with the key" is not a list of who may read the figures.
            refused(notify::ReportRefusal::NoAllowedSenders)
        } else {
            match reports::requested_period(request, plan, now) {
                Err((e, why)) => {
                    tracing::info!(source = %raw.source, customer = %customer.id, why = %why, "report request refused");
                    refused(match e {
                        reports::PeriodError::Future => notify::ReportRefusal::Future,
                        reports::PeriodError::TooLong => notify::ReportRefusal::TooLong,
                        reports::PeriodError::Reversed => notify::ReportRefusal::Reversed,
                        reports::PeriodError::Unreadable => notify::ReportRefusal::Unreadable,
                    })
                }
                Ok((from, to)) => {
                    let (start, end) = reports::bounds(reports::time_zone(plan), from, to);
                    let rows = tx.report_tickets(&customer.id, start, end)?;
                    let r = reports::compute(customer, registry, from, to, &rows);
                    let csv = r.to_csv().into_bytes();
                    attachments.push(parse::Attachment {
                        filename: r.csv_filename(),
                        content_type: "text/csv; charset=utf-8".into(),
                        size: csv.len(),
                        data: Some(csv),
                        content_id: None,
                        inline: false,
                    });
                    Notice::Report(notify::ReportMail {
                        customer_name: customer.name.clone(),
                        from: from.to_string(),
                        to: to.to_string(),
                        report: r.to_text(lang),
                        csv_filename: r.csv_filename(),
                        contact_name: mail.from_name.clone(),
                        support_name: mailer.support_name(),
                    })
                }
            }
        };
        let letter = Letter {
            attachments: &attachments,
            ..Letter::reply(&notice, &plan.language, mail, None, Some(inbound_id))
        };
        self.count(report, mailer.send(tx, letter, now)?);
        report.reports += 1;
        tracing::info!(source = %raw.source, customer = %customer.id, kind = %notice.kind(), "report request answered");
        Ok(Outcome::Report {
            customer: customer.id.clone(),
        })
    }

    /// Automatic mail about a ticket (an out-of-office, a list copy): kept on the ticket as an
    /// article of `kind`, and nothing else: no status change, no clock, no relay, no reply.
    #[allow(clippy::too_many_arguments)]
    fn keep_without_effect(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        mail: &InboundMail,
        ticket: &TicketRow,
        kind: &str,
        why: &str,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<Outcome, ApplyError> {
        let inbound_id = self.insert_appended(tx, raw, mail, ticket.id, now)?;
        self.add_article(tx, ticket.id, Some(inbound_id), kind, mail, now)?;
        tx.touch_ticket(ticket.id, now)?;
        report.appended += 1;
        let reference = self.reference(ticket.id);
        tracing::info!(source = %raw.source, ticket = %reference, why, "automatic mail kept on the ticket; it changes nothing");
        Ok(Outcome::Appended { ticket: reference })
    }

    #[allow(clippy::too_many_arguments)]
    fn open_ticket(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        mail: &InboundMail,
        engine: &Engine<'_>,
        customer: &Customer,
        key: &str,
        severity: u8,
        parent_id: Option<i64>,
        report: &mut Report,
    ) -> Result<Outcome, ApplyError> {
        let now = engine.now;
        let plan = &customer.plan;
        let ticket = engine.new_ticket(tx, customer, key, severity, mail, parent_id)?;
        let reference = self.reference(ticket.id);
        let inbound_id = Some(self.insert_inbound(
            tx,
            raw,
            raw.bytes.len(),
            &mail.dedup_key,
            Some(mail),
            now,
            "created",
            None,
            Some(ticket.id),
        )?);
        self.add_article(tx, ticket.id, inbound_id, "customer", mail, now)?;
        if let Some(parent) = parent_id {
            crate::watchers::inherit(tx, parent, &ticket, now)?;
        }
        crate::watchers::add_from_cc(tx, mail, &ticket, &self.cfg, engine.registry, now)?;
        // Incident-aware intake: linked to the outage open on the customer's platform.
        let outages = crate::incident_intake::notes(
            &crate::incident_intake::link(tx, engine.registry, &ticket, now)?,
            notify::Lang::or_english(&plan.language),
            &plan.calendar,
            self.cfg.http.public_url.as_deref(),
        );
        let phone = plan.phone.as_deref().filter(|_| ticket.severity <= 2);
        // The customer's page of the ticket: a 128-bit token, stored hashed.
        let ticket_url = match &self.cfg.http.public_url {
            Some(base) => {
                let token = crate::store::random_token(16).map_err(|e| {
                    crate::store::StoreError::Other(format!(
                        "no randomness for a ticket token: {e}"
                    ))
                })?;
                tx.set_ticket_token(ticket.id, &crate::store::token_hash(&token))?;
                Some(format!("{base}/t/{token}"))
            }
            None => None,
        };
        let notice = Notice::Acknowledgement(notify::Acknowledgement {
            reference: reference.clone(),
            subject: ticket.subject.clone(),
            severity: ticket.severity,
            stated_severity: ticket.stated_severity.clone(),
            phone: phone.map(str::to_string),
            missing: ticket.missing_info.clone(),
            parent_reference: parent_id.map(|p| self.reference(p)),
            status_name: plan.profile.display(ticket.status).to_string(),
            contact_name: mail.from_name.clone(),
            contact_email: mail.from.clone(),
            customer_name: customer.name.clone(),
            support_name: engine.mailer.support_name(),
            ticket_url,
            outages: outages.clone(),
        });
        self.count(
            report,
            engine.mailer.send(
                tx,
                Letter::reply(&notice, &plan.language, mail, Some(&ticket), inbound_id),
                now,
            )?,
        );
        self.agent_copy(
            tx,
            mail,
            &ticket,
            inbound_id,
            notify::Update::New,
            engine.registry,
            now,
            report,
            outages,
        )?;
        report.created += 1;
        tracing::info!(source = %raw.source, ticket = %reference, customer = %customer.id, severity = ticket.severity,
            status = %ticket.status, parent = ?parent_id, "ticket created");
        Ok(Outcome::Created { ticket: reference })
    }

    /// Whether `mail` was sent to our signed reply address of ticket `ticket_id`.
    fn reply_token_for(&self, mail: &InboundMail, ticket_id: i64) -> bool {
        let Some(secret) = &self.cfg.inbound.reply_key else {
            return false;
        };
        let key = ReplyKey::new(secret.expose().as_bytes());
        let prefix = &self.cfg.tickets.reference_prefix;
        mail.plus_tags.iter().any(|tag| {
            matches!(crate::auth::token::split_tag(prefix, tag),
                Some((id, Some(sig))) if id == ticket_id && key.verify(&self.reference(id), sig))
        })
    }

    /// Tells the agent team about a forged mail in an agent's name, at most once an hour per
    /// address (through the outbox, in the batch's transaction).
    fn sender_alert(
        &self,
        tx: &mut dyn WriteTx,
        mail: &InboundMail,
        inbound_id: i64,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<(), ApplyError> {
        let from = mail.from.as_deref().unwrap_or_default();
        let registry = self.registry.current();
        let ticket =
            route::find_ticket(mail, tx, &self.cfg.tickets.reference_prefix)?.map(|(t, _)| t);
        // The team of the ticket's plan; else the first team the registry names.
        let team = ticket
            .as_ref()
            .and_then(|t| registry.customer(&t.customer))
            .and_then(|c| c.plan.agent_team.clone())
            .or_else(|| registry.any_agent_team());
        let Some(team) = team else {
            tracing::warn!(
                from,
                inbound_id,
                "forged agent mail quarantined; no agent_team in the registry to alert"
            );
            return Ok(());
        };
        let key = format!("{}:{from}", route::UNAUTHENTICATED_AGENT);
        if !tx.alert_due(&key, now - chrono::Duration::hours(1), now)? {
            tracing::info!(
                from,
                inbound_id,
                "forged agent mail quarantined; the agent team was alerted within the hour"
            );
            return Ok(());
        }
        let mailer = self.mailer();
        let notice = Notice::SenderAlert(notify::SenderAlert {
            address: from.to_string(),
            reference: ticket.as_ref().map(|t| self.reference(t.id)),
            subject: mail.subject.clone(),
            detail: mail.auth.detail.clone(),
            inbound_id,
            support_name: mailer.support_name(),
        });
        let lang = ticket
            .as_ref()
            .map_or(self.cfg.tickets.default_language.as_str(), |t| {
                t.language.as_str()
            });
        let sent = mailer.send(
            tx,
            Letter {
                notice: &notice,
                lang,
                to: &team,
                to_name: None,
                ticket: None,
                inbound_id: Some(inbound_id),
                answers: None,
                automatic: Automatic::Generated,
                from_name: None,
                attachments: &[],
                to_staff: true,
            },
            now,
        )?;
        self.count(report, sent);
        Ok(())
    }

    fn count(&self, report: &mut Report, sent: Sent) {
        match sent {
            Sent::Pending => report.outbound += 1,
            Sent::Suppressed => report.suppressed += 1,
            Sent::Skipped => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn quarantine(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        size: usize,
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
            size,
            &mail.dedup_key,
            Some(mail),
            now,
            "quarantined",
            Some((q.code, &q.reason)),
            None,
        )?;
        if q.code == route::UNAUTHENTICATED_AGENT {
            self.sender_alert(tx, mail, inbound_id, now, report)?;
        }
        if let Some(info) = &q.reply {
            let lang = info
                .language
                .as_deref()
                .unwrap_or(&self.cfg.tickets.default_language);
            let mailer = self.mailer();
            let notice = Notice::Rejection(notify::Rejection {
                reason: q.code.to_string(),
                key: info.key.clone(),
                subject: mail.subject.clone(),
                contact_name: mail.from_name.clone(),
                contact_email: mail.from.clone(),
                key_help: self.cfg.tickets.key_help.clone(),
                limit: format!("{} MB", self.cfg.inbound.max_message_bytes / (1024 * 1024)),
                support_name: mailer.support_name(),
            });
            self.count(
                report,
                mailer.send(
                    tx,
                    Letter::reply(&notice, lang, mail, None, Some(inbound_id)),
                    now,
                )?,
            );
        }
        tracing::info!(source = %raw.source, code = q.code, reason = %q.reason, "mail quarantined");
        report.quarantined += 1;
        Ok(Outcome::Quarantined {
            code: q.code.to_string(),
            reason: q.reason,
        })
    }

    /// A bounce: kept in quarantine with what was read from it, then acted on (see
    /// [`crate::bounce::handle`]).
    #[allow(clippy::too_many_arguments)]
    fn bounce(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        size: usize,
        mail: &InboundMail,
        found: &crate::bounce::handle::Found,
        registry: &Registry,
        now: DateTime<Utc>,
        report: &mut Report,
    ) -> Result<Outcome, ApplyError> {
        let (code, reason) = found.quarantine();
        let inbound_id = self.insert_inbound(
            tx,
            raw,
            size,
            &mail.dedup_key,
            Some(mail),
            now,
            "quarantined",
            Some((code, &reason)),
            None,
        )?;
        let acted =
            crate::bounce::handle::act(found, inbound_id, &self.mailer(), registry, tx, now)?;
        for sent in acted.sent {
            self.count(report, sent);
        }
        tracing::info!(source = %raw.source, code, reason = %reason, "bounce quarantined");
        report.quarantined += 1;
        Ok(Outcome::Quarantined {
            code: code.to_string(),
            reason,
        })
    }

    /// `size`: the mail's whole size, recorded as declared when `raw` is its header only.
    #[allow(clippy::too_many_arguments)]
    fn insert_inbound(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        size: usize,
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
            declared_size: (size > raw.bytes.len()).then_some(size),
            outcome,
            reason_code: reason.map(|r| r.0),
            reason: reason.map(|r| r.1),
            ticket_id,
            auth: mail.map(|m| &m.auth),
        })
    }

    /// The inbound row of a mail added to `ticket_id`.
    fn insert_appended(
        &self,
        tx: &mut dyn WriteTx,
        raw: &RawMail,
        mail: &InboundMail,
        ticket_id: i64,
        now: DateTime<Utc>,
    ) -> store::Result<i64> {
        self.insert_inbound(
            tx,
            raw,
            raw.bytes.len(),
            &mail.dedup_key,
            Some(mail),
            now,
            "appended",
            None,
            Some(ticket_id),
        )
    }

    fn add_article(
        &self,
        tx: &mut dyn WriteTx,
        ticket_id: i64,
        inbound_id: Option<i64>,
        kind: &str,
        mail: &InboundMail,
        now: DateTime<Utc>,
    ) -> store::Result<()> {
        let article = tx.insert_article(&NewArticle {
            ticket_id,
            inbound_id,
            kind,
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
        // The mail's own Message-ID needs no link: its inbound row (dedup key and ticket) is
        // what a reply naming it is found by.
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
        inbound_id: Option<i64>,
        update: notify::Update,
        registry: &Registry,
        now: DateTime<Utc>,
        report: &mut Report,
        outages: Vec<notify::OutageNote>,
    ) -> Result<(), ApplyError> {
        let Some(customer) = registry.customer(&ticket.customer) else {
            return Ok(());
        };
        let Some(team) = customer.plan.agent_team.as_deref() else {
            return Ok(());
        };
        let mailer = self.mailer();
        let contact = match &mail.from_name {
            Some(n) => format!("{n} <{}>", mail.from.as_deref().unwrap_or_default()),
            None => mail.from.clone().unwrap_or_default(),
        };
        let text = if mail.quoted.is_empty() {
            mail.text.clone()
        } else {
            format!("{}\n\n{}", mail.text, mail.quoted)
        };
        let notice = Notice::AgentNotification(notify::AgentNotification {
            reference: self.reference(ticket.id),
            subject: ticket.subject.clone(),
            severity: ticket.severity,
            update,
            contact_display: contact.clone(),
            customer_name: customer.name.clone(),
            plan: customer.plan.name.clone(),
            status: ticket.status.to_string(),
            text,
            outages,
        });
        let from_name = format!(
            "{} via {}",
            mail.from_name.as_deref().unwrap_or(contact.as_str()),
            mailer.support_name()
        );
        self.count(
            report,
            mailer.send(
                tx,
                Letter {
                    notice: &notice,
                    lang: &ticket.language,
                    to: team,
                    to_name: None,
                    ticket: Some(ticket),
                    inbound_id,
                    answers: Some(mail),
                    automatic: Automatic::Generated,
                    from_name: Some(&from_name),
                    attachments: &mail.attachments,
                    to_staff: true,
                },
                now,
            )?,
        );
        Ok(())
    }
}

pub use crate::ticket_ref::{parse as parse_reference, reference};

/// Offset just past the header section (the first empty line), or the whole length.
fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len())
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no ticket {0}")]
    NoTicket(String),
    #[error("inbound mail #{0} is not in quarantine (see `ticketgate quarantine list`)")]
    NotQuarantined(i64),
    #[error("the replay failed and was rolled back; the mail stays in quarantine: {0}")]
    Replay(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}
