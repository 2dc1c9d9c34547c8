//! IMAP mailboxes as inbound sources (`[[inbound.imap]]`), one task per mailbox.
//!
//! A pass: `UID SEARCH UID last+1:*`, then chunk by chunk `UID FETCH` the sizes, the mails
//! (`BODY.PEEK[]`, or `BODY.PEEK[HEADER]` for a mail over `inbound.max_message_size`), and
//! hand the chunk to the pipeline, whose transaction also records the mailbox's new highest
//! UID ([`MailboxState`]). Only after that commit is the after-action applied (move, flag or
//! delete; in delete mode a mail stored header only is never deleted, it is left `\Seen`).
//! A crash between the two, or a failed after-action, leaves committed mail in the folder at
//! or below `last_uid`: the catch-up (at the next session, or the next pass after a failure)
//! applies the after-action to it without downloading it again. A chunk whose fetch fails is
//! read again one UID at a time; a UID that fails alone `UID_ATTEMPTS` times (counted in
//! memory, across reconnects) is given up on: left in the folder, flagged
//! `SKIPPED_KEYWORD`, never moved or deleted by a catch-up, and the position moves past
//! it. The position never moves past a UID that was neither stored nor given up on. Between
//! passes the task waits with IDLE (or polls), searching again on a wake-up, or when the
//! server announced a grown message count.
//!
//! Several instances may be configured with the same mailbox: a store lease `imap:<name>`
//! lets one read it at a time. Every failure is logged on one line and retried with jittered
//! exponential backoff; one broken mailbox never stops the others.

use crate::clock::SharedClock;
use crate::config::{AfterAction, ImapAuth, ImapConfig, ImapTls, TokenSource};
use crate::pipeline::{Pipeline, RawMail, Report};
use crate::store::{Db, MailboxState, UidDisposition};
use async_imap::types::{Fetch, UnsolicitedResponse};
use futures_util::TryStreamExt as _;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Connecting (TCP and TLS) and every command but a body fetch.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Waiting for the next message of a `UID FETCH` of bodies (lack of progress, not the
/// whole command).
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// A chunk never holds more than this many bytes of mail (besides one larger mail alone).
const CHUNK_BYTES: usize = 64 * 1024 * 1024;
/// UID ranges per command, keeping command lines well under servers' limits (64 KB).
const RANGES_PER_COMMAND: usize = 500;
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Failed attempts at fetching one UID alone before it is given up on (left in the folder).
const UID_ATTEMPTS: u32 = 3;
/// Keyword set on mail given up on, so that no catch-up moves or deletes it.
const SKIPPED_KEYWORD: &str = "TicketgateSkipped";

/// This process, as a lease holder: `hostname:pid:random`, made once.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        let r = getrandom::u32().unwrap_or(0);
        format!("{host}:{}:{r:08x}", std::process::id())
    })
}

/// What one mailbox task needs.
pub struct Mailbox {
    pub cfg: ImapConfig,
    /// Position in `[[inbound.imap]]`, for naming keys in messages.
    pub index: usize,
    pub db: Db,
    pub pipeline: Arc<Pipeline>,
    pub clock: SharedClock,
    pub batch_size: usize,
    pub max_message_bytes: usize,
    /// Woken after a commit that queued outbound mail.
    pub deliver: Arc<Notify>,
    /// Cancelled at shutdown: the task stops after its current batch.
    pub stop: CancellationToken,
    pub holder: &'static str,
}

/// What a mailbox task did.
#[derive(Debug, Default)]
pub struct MailboxOutcome {
    pub report: Report,
    /// With `once`: the failure that ended the pass.
    pub error: Option<String>,
}

/// One failure, as logged: what failed, against which server, what to check.
#[derive(Debug)]
pub struct Failure {
    what: String,
    hint: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.what, self.hint)
    }
}

impl std::error::Error for Failure {}

/// How a session ended without a failure.
enum End {
    /// `once`: the pass is done.
    Done,
    /// Shutdown requested.
    Stopped,
    /// Another instance took the lease: stop reading, wait to take it again.
    LeaseLost,
}

impl Mailbox {
    fn key(&self, k: &str) -> String {
        format!("inbound.imap[{}].{k}", self.index)
    }

    fn server(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
    }

    fn fail(&self, what: impl fmt::Display, hint: impl Into<String>) -> Failure {
        Failure {
            what: format!(
                "IMAP mailbox `{}` ({}): {what}",
                self.cfg.name,
                self.server()
            ),
            hint: hint.into(),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Waits `d`, or less when shutdown is requested; `true` when stopped.
    async fn sleep_or_stop(&mut self, d: Duration) -> bool {
        if self.stopped() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopped(),
            _ = self.stop.cancelled() => true,
        }
    }

    /// The task: takes the lease, reads the mailbox session after session, reconnecting with
    /// backoff after a failure, until shutdown (or, with `once`, after one pass).
    pub async fn run(mut self, once: bool) -> MailboxOutcome {
        let mut t = Task {
            lease: Lease::new(&self.cfg.name, self.holder, self.cfg.lease),
            out: MailboxOutcome::default(),
            mem: Memory::default(),
        };
        let mut failures = 0u32;
        let mut waiting_logged = false;
        loop {
            if self.stopped() {
                break;
            }
            match t.lease.take(&self).await {
                Ok(true) => waiting_logged = false,
                Ok(false) => {
                    if once {
                        tracing::info!(mailbox = %self.cfg.name,
                            "another instance is reading this IMAP mailbox; skipped");
                        return t.out;
                    }
                    if !waiting_logged {
                        tracing::info!(mailbox = %self.cfg.name,
                            "another instance is reading this IMAP mailbox; waiting to take over");
                        waiting_logged = true;
                    }
                    // A waiting instance tries to take the lease a few times per lease period.
                    if self.sleep_or_stop(self.cfg.lease / 6).await {
                        break;
                    }
                    continue;
                }
                Err(f) => {
                    failures += 1;
                    if self.failed(f, failures, once, &mut t).await {
                        break;
                    }
                    continue;
                }
            }
            match self.session(once, &mut t, &mut failures).await {
                Ok(End::Done | End::Stopped) => break,
                Ok(End::LeaseLost) => {
                    tracing::warn!(mailbox = %self.cfg.name,
                        "lost the lease on this IMAP mailbox to another instance; stopped reading it");
                    t.lease.held = None;
                }
                Err(f) => {
                    failures += 1;
                    if self.failed(f, failures, once, &mut t).await {
                        break;
                    }
                }
            }
        }
        if t.lease.held.is_some() {
            let (name, holder) = (t.lease.name.clone(), self.holder);
            let released = self.db.read(move |s| s.release_lease(&name, holder)).await;
            if let Err(e) = released {
                tracing::warn!(mailbox = %self.cfg.name, error = %e, "could not release the IMAP mailbox lease; it lapses by itself");
            }
        }
        t.out
    }

    /// Logs a failure and waits the backoff; `true` when the task must end. With `once`, a
    /// pass ends at its first failure, unless a fetch failure was just counted: then it is
    /// tried again (one UID at a time, giving up on a UID after [`UID_ATTEMPTS`]), so that
    /// one unreadable mail does not stop the pass.
    async fn failed(&mut self, f: Failure, failures: u32, once: bool, t: &mut Task) -> bool {
        // Failed fetches are counted in the store, so a restart does not start them over.
        for (uid, n) in std::mem::take(&mut t.mem.unsaved) {
            let (name, uidv) = (self.cfg.name.clone(), t.mem.uid_validity);
            if let Err(e) = self
                .db
                .read(move |st| st.set_uid_failures(&name, uidv, uid, n))
                .await
            {
                tracing::warn!(mailbox = %self.cfg.name, uid, error = %e,
                    "could not record a failed fetch; it is counted in memory only");
            }
        }
        let retry = std::mem::take(&mut t.mem.retry);
        if once && !retry {
            tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host, "{f}");
            t.out.error = Some(f.to_string());
            return true;
        }
        let wait = backoff(failures, getrandom::u32().unwrap_or(u32::MAX / 2));
        tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host, failures,
            retry_in = ?wait, "{f}");
        self.sleep_or_stop(wait).await
    }

    async fn session(
        &mut self,
        once: bool,
        t: &mut Task,
        failures: &mut u32,
    ) -> Result<End, Failure> {
        let stop = self.stop.clone();
        let connected = tokio::select! {
            r = self.connect() => r?,
            _ = stop.cancelled() => return Ok(End::Stopped),
        };
        let mut s = connected;
        let caps = timed(COMMAND_TIMEOUT, s.capabilities())
            .await
            .map_err(|e| self.fail(format!("CAPABILITY failed: {e}"), "check the server"))?;
        let has = |c: &str| caps.has_str(c);
        let (can_idle, can_move, uidplus) = (has("IDLE"), has("MOVE"), has("UIDPLUS"));
        let folder = &self.cfg.folder;
        let mb = timed(COMMAND_TIMEOUT, s.select(folder))
            .await
            .map_err(|e| {
                self.fail(
                    format!("SELECT {folder} failed: {e}"),
                    format!("check that the folder exists ({})", self.key("folder")),
                )
            })?;
        let uid_validity = mb.uid_validity.ok_or_else(|| {
            self.fail(
                format!("SELECT {folder} gave no UIDVALIDITY"),
                "the server does not follow RFC 3501; it cannot be read safely",
            )
        })?;
        if *failures > 0 {
            tracing::info!(mailbox = %self.cfg.name, host = %self.cfg.host, "IMAP mailbox connected again");
        }
        *failures = 0;
        let state = {
            let name = self.cfg.name.clone();
            self.db
                .read(move |s| s.mailbox_state(&name))
                .await
                .map_err(|e| self.store_failure(e))?
        };
        let last = match state {
            Some(st) if st.uid_validity == uid_validity => st.last_uid,
            Some(st) => {
                tracing::warn!(mailbox = %self.cfg.name, folder = %folder,
                    old = st.uid_validity, new = uid_validity,
                    "UIDVALIDITY changed (the folder was recreated or rebuilt): reading it again from the start; mail already processed is recognised as duplicate");
                0
            }
            None => 0,
        };
        if t.mem.uid_validity != uid_validity {
            // What is remembered about UIDs is about another incarnation of the folder (or
            // this process just started): what the store recorded under this UIDVALIDITY.
            t.mem = Memory {
                uid_validity,
                ..Memory::default()
            };
            let name = self.cfg.name.clone();
            let recorded = self
                .db
                .read(move |st| st.uid_states(&name, uid_validity))
                .await
                .map_err(|e| self.store_failure(e))?;
            for r in recorded {
                match r.disposition {
                    UidDisposition::GivenUp => {
                        t.mem.skipped.insert(r.uid);
                    }
                    UidDisposition::Failing if r.failures >= UID_ATTEMPTS => {
                        t.mem.skipped.insert(r.uid);
                    }
                    UidDisposition::Failing => {
                        t.mem.failures.insert(r.uid, r.failures);
                    }
                    UidDisposition::Stored | UidDisposition::HeaderOnly => {}
                }
            }
        }
        if self.cfg.after == AfterAction::Move {
            self.ensure_folder(&mut s).await?;
        }
        let mut pass = Pass {
            uid_validity,
            can_move,
            uidplus,
            last,
            exists: mb.exists,
        };
        // Mail committed but not moved or flagged before a crash or a failure.
        self.catch_up(&mut s, &mut pass, t).await?;
        loop {
            if !t.lease.keep(self).await? {
                return self.end(s, End::LeaseLost).await;
            }
            if t.mem.after_pending {
                self.catch_up(&mut s, &mut pass, t).await?;
            }
            let mut new: Vec<u32> = self
                .search(&mut s, &format!("UID {}:*", pass.last.saturating_add(1)))
                .await?
                .into_iter()
                .filter(|u| *u > pass.last) // `n:*` always matches the highest UID
                .collect();
            new.sort_unstable();
            if let Some(end) = self.process(&mut s, &new, &mut pass, t).await? {
                return self.end(s, end).await;
            }
            if once {
                return self.end(s, End::Done).await;
            }
            if self.stopped() {
                return self.end(s, End::Stopped).await;
            }
            if self.cfg.idle && can_idle {
                // New mail the server already announced during the pass's commands would not
                // be announced again in IDLE: look again first. Only a grown message count
                // is new mail (some servers repeat `* n EXISTS` after every command); our own
                // expunges are counted down. A full channel may have dropped an announcement.
                let mut announced = s.unsolicited_responses.is_full();
                while let Ok(r) = s.unsolicited_responses.try_recv() {
                    match r {
                        UnsolicitedResponse::Exists(n) => {
                            if n > pass.exists {
                                announced = true;
                            }
                            pass.exists = n;
                        }
                        UnsolicitedResponse::Expunge(_) => {
                            pass.exists = pass.exists.saturating_sub(1);
                        }
                        _ => {}
                    }
                }
                if announced {
                    continue;
                }
                let (back, wake) = self.idle(s, &mut t.lease).await?;
                s = back;
                match wake {
                    Wake::Again => {}
                    Wake::End(end) => return self.end(s, end).await,
                }
            } else {
                let deadline = Instant::now() + self.cfg.poll_interval;
                loop {
                    let next = deadline.min(t.lease.next_renewal());
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = stop.cancelled() => return self.end(s, End::Stopped).await,
                    }
                    if !t.lease.keep(self).await? {
                        return self.end(s, End::LeaseLost).await;
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
    }

    /// Applies the after-action to mail at or below the position that is still in the folder
    /// (interrupted after its commit, or its after-action failed). Only UIDs the store
    /// records as stored (whole or header only) are candidates: the record was committed
    /// with the mail, so mail given up on, or never read, is never moved or deleted, whatever
    /// happened between a commit and its after-action. In delete mode mail stored header
    /// only is flagged `\Seen` and left. Not downloaded again.
    async fn catch_up(
        &mut self,
        s: &mut Session,
        pass: &mut Pass,
        t: &mut Task,
    ) -> Result<(), Failure> {
        t.mem.after_pending = false;
        let last = pass.last;
        if last == 0 {
            return Ok(());
        }
        let (name, uidv) = (self.cfg.name.clone(), pass.uid_validity);
        let recorded = self
            .db
            .read(move |st| st.uid_states(&name, uidv))
            .await
            .map_err(|e| self.store_failure(e))?;
        let (mut stored, mut header_only) = (Vec::new(), Vec::new());
        for r in recorded.iter().filter(|r| r.uid <= last) {
            match r.disposition {
                UidDisposition::Stored => stored.push(r.uid),
                UidDisposition::HeaderOnly => {
                    stored.push(r.uid);
                    header_only.push(r.uid);
                }
                UidDisposition::GivenUp | UidDisposition::Failing => {}
            }
        }
        let (Some(&lo), Some(&hi)) = (stored.first(), stored.last()) else {
            return Ok(());
        };
        let query = match self.cfg.after {
            AfterAction::Flag | AfterAction::Delete => {
                format!("UID {lo}:{hi} UNSEEN NOT KEYWORD {SKIPPED_KEYWORD}")
            }
            AfterAction::Move => format!("UID {lo}:{hi} NOT KEYWORD {SKIPPED_KEYWORD}"),
        };
        let mut left: Vec<u32> = self
            .search(s, &query)
            .await?
            .into_iter()
            .filter(|u| stored.binary_search(u).is_ok() && !t.mem.skipped.contains(u))
            .collect();
        left.sort_unstable();
        if !left.is_empty() {
            tracing::warn!(mailbox = %self.cfg.name, mails = left.len(),
                "mail committed before but still in the folder (interrupted after commit, or its after-action failed): finishing it");
            let keep: Vec<u32> = header_only
                .into_iter()
                .filter(|u| left.binary_search(u).is_ok())
                .collect();
            if let Err(f) = self.after(s, &left, &keep, pass).await {
                tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host, "{f}");
                t.mem.after_pending = true;
                return Ok(());
            }
        }
        // Done, or no longer in the folder (moved, flagged or deleted before a crash).
        self.forget(pass.uid_validity, lo, hi).await;
        Ok(())
    }

    /// Drops the records of stored UIDs `lo..=hi` once their after-action is done (best
    /// effort: a record left behind only costs a catch-up search).
    async fn forget(&self, uid_validity: u32, lo: u32, hi: u32) {
        let name = self.cfg.name.clone();
        if let Err(e) = self
            .db
            .read(move |st| st.forget_uids(&name, uid_validity, lo, hi))
            .await
        {
            tracing::warn!(mailbox = %self.cfg.name, error = %e,
                "could not drop the records of finished mail; the next catch-up looks at it again");
        }
    }

    /// Logs out (best effort) and returns `end`.
    async fn end(&self, mut s: Session, end: End) -> Result<End, Failure> {
        let _ = tokio::time::timeout(Duration::from_secs(5), s.logout()).await;
        Ok(end)
    }

    fn store_failure(&self, e: crate::store::StoreError) -> Failure {
        self.fail(
            format!("database error: {e}"),
            "check the database (database.url); nothing from the batch was committed, it is read again",
        )
    }

    /// IDLE until the server announces something, `idle_renew` passes, the lease is lost or
    /// shutdown is requested. The lease is renewed meanwhile.
    async fn idle(&mut self, s: Session, lease: &mut Lease) -> Result<(Session, Wake), Failure> {
        let mut handle = s.idle();
        timed(COMMAND_TIMEOUT, handle.init())
            .await
            .map_err(|e| self.fail(format!("IDLE failed: {e}"), "check the server"))?;
        let renew_at = Instant::now() + self.cfg.idle_renew;
        let stop = self.stop.clone();
        let wake = {
            // `_interrupt` must live while waiting: dropping it ends the wait.
            let (wait, _interrupt) = handle.wait_with_timeout(self.cfg.idle_renew);
            tokio::pin!(wait);
            loop {
                let next = renew_at.min(lease.next_renewal());
                tokio::select! {
                    r = &mut wait => {
                        r.map_err(|e| self.fail(format!("connection lost while idling: {e}"), "check the server and the network"))?;
                        break Wake::Again;
                    }
                    _ = tokio::time::sleep_until(next) => {
                        if !lease.keep(self).await? {
                            break Wake::End(End::LeaseLost);
                        }
                        if Instant::now() >= renew_at {
                            break Wake::Again;
                        }
                    }
                    _ = stop.cancelled() => break Wake::End(End::Stopped),
                }
            }
        };
        let s = timed(COMMAND_TIMEOUT, handle.done())
            .await
            .map_err(|e| self.fail(format!("ending IDLE failed: {e}"), "check the server"))?;
        Ok((s, wake))
    }

    async fn search(&self, s: &mut Session, query: &str) -> Result<Vec<u32>, Failure> {
        let set = timed(COMMAND_TIMEOUT, s.uid_search(query))
            .await
            .map_err(|e| {
                self.fail(
                    format!("UID SEARCH {query} failed: {e}"),
                    "check the server",
                )
            })?;
        Ok(set.into_iter().collect())
    }

    /// Creates `move_to` when the server does not list it.
    async fn ensure_folder(&self, s: &mut Session) -> Result<(), Failure> {
        let to = &self.cfg.move_to;
        let pattern = quote(to);
        let listed = timed(COMMAND_TIMEOUT, async {
            let names: Vec<_> = s
                .list(Some(""), Some(&pattern))
                .await?
                .try_collect()
                .await?;
            Ok(names.iter().any(|n| n.name() == to.as_str()))
        })
        .await
        .map_err(|e| self.fail(format!("LIST {to} failed: {e}"), "check the server"))?;
        if !listed {
            timed(COMMAND_TIMEOUT, s.create(to)).await.map_err(|e| {
                self.fail(
                    format!("cannot create the folder {to}: {e}"),
                    format!("create it on the server or change {}", self.key("move_to")),
                )
            })?;
            tracing::info!(mailbox = %self.cfg.name, folder = %to, "created the folder for processed mail");
        }
        Ok(())
    }

    /// Fetches, commits and finishes `uids` (ascending) chunk by chunk, with three chunks
    /// in flight: while chunk k is committed (on the store's writer), this session applies
    /// the after-action of chunk k−1 and fetches chunk k+1. Commits stay in UID order, and a
    /// chunk is committed only after the one before it committed and lacked nothing, so the
    /// position never passes a UID that was neither stored nor given up on. `Some(end)` when
    /// the task must stop reading (shutdown between chunks, lease lost). UIDs in the range
    /// of a chunk whose fetch failed are fetched one at a time.
    async fn process(
        &mut self,
        s: &mut Session,
        uids: &[u32],
        pass: &mut Pass,
        t: &mut Task,
    ) -> Result<Option<End>, Failure> {
        let mut groups: Vec<&[u32]> = Vec::new();
        let mut rest = uids;
        while !rest.is_empty() {
            let one = t
                .mem
                .suspect
                .is_some_and(|(lo, hi)| (lo..=hi).contains(&rest[0]));
            let n = if one {
                1
            } else {
                // A group stops where a suspect range starts.
                rest.iter()
                    .take(self.batch_size.max(1))
                    .take_while(|u| !t.mem.suspect.is_some_and(|(lo, hi)| (lo..=hi).contains(*u)))
                    .count()
                    .max(1)
            };
            groups.push(&rest[..n]);
            rest = &rest[n..];
        }
        // Fetched and not committed yet; committed and not finished yet.
        let mut flight = Flight::default();
        let mut end = None;
        'groups: for group in groups {
            if self.stopped() {
                end = Some(End::Stopped);
                break;
            }
            // A chunk that lacked mail is committed and finished alone: nothing after it is
            // read in this session (the connection may be broken).
            if flight.lacks_mail() {
                break;
            }
            if !t.lease.keep(self).await? {
                return Ok(Some(End::LeaseLost));
            }
            // Mail given up on is not fetched again; the position moves past it.
            let todo: Vec<u32> = group
                .iter()
                .copied()
                .filter(|u| !t.mem.skipped.contains(u))
                .collect();
            let mut sizes: HashMap<u32, usize> = HashMap::with_capacity(todo.len());
            for set in uid_sets(&todo) {
                let fetched = self
                    .fetch(s, &set, "(UID RFC822.SIZE)", COMMAND_TIMEOUT)
                    .await
                    .map_err(|f| self.fetch_failed(f, &todo, &mut t.mem))?;
                for f in fetched {
                    if let (Some(uid), Some(size)) = (f.uid, f.size) {
                        sizes.insert(uid, size as usize);
                    }
                }
            }
            // Chunks of at most CHUNK_BYTES (a larger mail alone).
            let mut start = 0;
            while start < group.len() {
                let mut stop_at = start;
                let mut bytes = 0usize;
                while stop_at < group.len() {
                    let sz = sizes
                        .get(&group[stop_at])
                        .copied()
                        .unwrap_or(0)
                        .min(self.max_message_bytes.saturating_add(1));
                    if stop_at > start && bytes + sz > CHUNK_BYTES {
                        break;
                    }
                    bytes += sz;
                    stop_at += 1;
                }
                let chunk = &group[start..stop_at];
                start = stop_at;
                if self.stopped() {
                    end = Some(End::Stopped);
                    break 'groups;
                }
                if flight.lacks_mail() {
                    break 'groups;
                }
                if let Some(e) = self
                    .step(s, Some((chunk, &sizes)), &mut flight, pass, t)
                    .await?
                {
                    return Ok(Some(e));
                }
            }
        }
        while flight.fetched.is_some() || flight.committed.is_some() {
            if let Some(e) = self.step(s, None, &mut flight, pass, t).await? {
                return Ok(Some(e));
            }
        }
        Ok(end)
    }

    /// One step of [`Mailbox::process`]: commits `flight.fetched` while this session
    /// finishes `flight.committed` and then fetches `next`.
    async fn step(
        &mut self,
        s: &mut Session,
        next: Option<(&[u32], &HashMap<u32, usize>)>,
        flight: &mut Flight,
        pass: &mut Pass,
        t: &mut Task,
    ) -> Result<Option<End>, Failure> {
        let mut to_commit = flight.fetched.take();
        let commit = match &mut to_commit {
            Some(f) => {
                // The position: past every UID stored or given up on, up to the first that
                // was not.
                let top = f
                    .chunk
                    .iter()
                    .copied()
                    .take_while(|u| f.fetched.binary_search(u).is_ok() || t.mem.skipped.contains(u))
                    .last()
                    .unwrap_or(0)
                    .max(pass.last);
                f.top = top;
                if f.mails.is_empty() && top <= pass.last {
                    None
                } else {
                    // Renewed right before the commit: a slow fetch may have used up the lease.
                    if !t.lease.keep(self).await? {
                        return Ok(Some(End::LeaseLost));
                    }
                    let state = MailboxState {
                        uid_validity: pass.uid_validity,
                        last_uid: top,
                    };
                    let mails = std::mem::take(&mut f.mails);
                    let declared = std::mem::take(&mut f.declared);
                    // What became of each UID, committed with the mails: only these stored
                    // ones are ever moved or deleted, and given-up ones never.
                    let mut dispositions: Vec<(u32, UidDisposition)> = f
                        .fetched
                        .iter()
                        .map(|u| {
                            if f.header_only.binary_search(u).is_ok() {
                                (*u, UidDisposition::HeaderOnly)
                            } else {
                                (*u, UidDisposition::Stored)
                            }
                        })
                        .collect();
                    dispositions.extend(
                        f.chunk
                            .iter()
                            .filter(|u| **u <= top && t.mem.skipped.contains(u))
                            .map(|u| (*u, UidDisposition::GivenUp)),
                    );
                    let (db, pipeline, name) = (
                        self.db.clone(),
                        self.pipeline.clone(),
                        self.cfg.name.clone(),
                    );
                    let uid_validity = pass.uid_validity;
                    Some(async move {
                        db.write(move |st| {
                            pipeline
                                .process_declared(st, &mails, &declared, &mut |tx| {
                                    tx.set_uid_dispositions(&name, uid_validity, &dispositions)?;
                                    tx.set_mailbox_state(&name, state)
                                })
                                .map(|(report, _)| report)
                        })
                        .await
                    })
                }
            }
            None => None,
        };
        let committing = async {
            match commit {
                Some(c) => Some(c.await),
                None => None,
            }
        };
        let finished = flight.committed.take();
        let session = async {
            if let Some(done) = finished {
                self.finish(s, done, pass, &mut t.mem).await?;
            }
            match next {
                Some((chunk, sizes)) => self
                    .fetch_chunk(s, chunk, sizes, pass.uid_validity, &mut t.mem)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (committed, fetched) = tokio::join!(committing, session);
        if let Some(f) = to_commit {
            if let Some(r) = committed {
                let report = r.map_err(|e| self.store_failure(e))?;
                t.out.report.add(&report);
                if report.outbound > 0 {
                    self.deliver.notify_one();
                }
                if f.count > 0 {
                    tracing::info!(mailbox = %self.cfg.name, mails = f.count, created = report.created,
                        appended = report.appended, quarantined = report.quarantined,
                        duplicates = report.duplicates, last_uid = f.top, "IMAP batch committed");
                }
            }
            pass.last = f.top;
            flight.committed = Some(f);
        }
        flight.fetched = fetched?;
        Ok(None)
    }

    /// Fetches one chunk (the mails over the size limit header only).
    async fn fetch_chunk(
        &self,
        s: &mut Session,
        chunk: &[u32],
        sizes: &HashMap<u32, usize>,
        uid_validity: u32,
        mem: &mut Memory,
    ) -> Result<Fetched, Failure> {
        let (mut small, mut big) = (Vec::new(), Vec::new());
        for &uid in chunk {
            if mem.skipped.contains(&uid) {
                continue;
            }
            match sizes.get(&uid) {
                None => tracing::warn!(mailbox = %self.cfg.name, uid,
                    "the server gave no size for this mail (deleted by someone else?); not read now, tried again"),
                Some(&sz) if sz > self.max_message_bytes => big.push(uid),
                Some(_) => small.push(uid),
            }
        }
        let mut got: Vec<(u32, Vec<u8>, Option<usize>)> = Vec::with_capacity(chunk.len());
        for (uids, query, header_only) in [
            (&small, "(UID RFC822.SIZE BODY.PEEK[])", false),
            (&big, "(UID RFC822.SIZE BODY.PEEK[HEADER])", true),
        ] {
            for set in uid_sets(uids) {
                let fetched = self
                    .fetch(s, &set, query, FETCH_TIMEOUT)
                    .await
                    .map_err(|f| {
                        let mut all: Vec<u32> = small.iter().chain(&big).copied().collect();
                        all.sort_unstable();
                        self.fetch_failed(f, &all, mem)
                    })?;
                for f in fetched {
                    let Some(uid) = f.uid else { continue };
                    let bytes = if header_only { f.header() } else { f.body() };
                    match bytes {
                        Some(b) => got.push((
                            uid,
                            b.to_vec(),
                            header_only.then(|| sizes.get(&uid).copied()).flatten(),
                        )),
                        None => tracing::error!(mailbox = %self.cfg.name, uid,
                            "the server returned no content for this mail; not read now, tried again"),
                    }
                }
            }
        }
        got.sort_unstable_by_key(|g| g.0);
        got.dedup_by_key(|g| g.0);
        let fetched: Vec<u32> = got.iter().map(|g| g.0).collect();
        let missing: Vec<u32> = chunk
            .iter()
            .copied()
            .filter(|uid| !mem.skipped.contains(uid) && fetched.binary_search(uid).is_err())
            .collect();
        for (uid, _, declared) in &got {
            if let Some(size) = declared {
                tracing::warn!(mailbox = %self.cfg.name, uid, size,
                    limit = self.max_message_bytes,
                    "mail over inbound.max_message_size: header only fetched, quarantined as too large");
            }
        }
        let header_only: Vec<u32> = got.iter().filter(|g| g.2.is_some()).map(|g| g.0).collect();
        let mut declared = Vec::with_capacity(got.len());
        let mails: Vec<RawMail> = got
            .into_iter()
            .map(|(uid, bytes, d)| {
                declared.push(d);
                RawMail {
                    source: format!("imap:{}/{uid_validity}/{uid}", self.cfg.name),
                    bytes,
                }
            })
            .collect();
        Ok(Fetched {
            chunk: chunk.to_vec(),
            count: mails.len(),
            fetched,
            missing,
            header_only,
            mails,
            declared,
            top: 0,
        })
    }

    /// After a chunk's commit: the after-action, the keyword on mail given up on, and the
    /// failure for UIDs the server did not return (they are read again one at a time).
    async fn finish(
        &self,
        s: &mut Session,
        done: Fetched,
        pass: &mut Pass,
        mem: &mut Memory,
    ) -> Result<(), Failure> {
        match self.after(s, &done.fetched, &done.header_only, pass).await {
            Ok(()) => {
                if let (Some(&lo), Some(&hi)) = (done.fetched.first(), done.fetched.last()) {
                    self.forget(pass.uid_validity, lo, hi).await;
                }
            }
            Err(f) => {
                // Committed: new mail goes on; the after-action is retried at the next pass.
                tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host, "{f}");
                mem.after_pending = true;
            }
        }
        // Mail given up on in this chunk: marked so that no later catch-up (even after a
        // restart, when this memory is gone) moves or deletes it. Best effort, once.
        let unmarked: Vec<u32> = done
            .chunk
            .iter()
            .copied()
            .filter(|u| *u <= pass.last && mem.skipped.contains(u) && mem.marked.insert(*u))
            .collect();
        for set in uid_sets(&unmarked) {
            let r = timed(COMMAND_TIMEOUT, async {
                s.uid_store(&set, format!("+FLAGS.SILENT ({SKIPPED_KEYWORD})"))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(mailbox = %self.cfg.name, uids = %set, error = %e,
                    "could not flag mail given up on with {SKIPPED_KEYWORD}; it is left alone while this process runs");
            }
        }
        let missing = done.missing;
        if !missing.is_empty() {
            // A UID is counted only when it failed alone; in a larger chunk, the missing
            // ones (a broken connection cuts off all that follow) are read one at a time next.
            let asked = done
                .chunk
                .iter()
                .filter(|u| !mem.skipped.contains(u))
                .count();
            if asked > 1 {
                mem.retry = true;
                mem.suspect = Some((missing[0], missing[missing.len() - 1]));
            } else {
                for &uid in &missing {
                    self.uid_failed(uid, mem);
                }
            }
            return Err(self.fail(
                format!(
                    "the server returned no content or no size for UID(s) {}",
                    uid_sets(&missing).join(",")
                ),
                format!(
                    "they stay in the folder and are tried again (given up after {UID_ATTEMPTS} attempts each)"
                ),
            ));
        }
        Ok(())
    }

    /// Counts a failed fetch of `uids`: a chunk is fetched one UID at a time next; a UID
    /// that failed alone [`UID_ATTEMPTS`] times is given up on. Returns the failure to end
    /// the session with (the connection may be broken).
    fn fetch_failed(&self, f: Failure, uids: &[u32], mem: &mut Memory) -> Failure {
        mem.retry = true;
        match uids {
            [] => f,
            [uid] => {
                self.uid_failed(*uid, mem);
                f
            }
            [lo, .., hi] => {
                mem.suspect = Some((*lo, *hi));
                Failure {
                    what: f.what,
                    hint: format!("{}; UIDs {lo}..{hi} are fetched one at a time next", f.hint),
                }
            }
        }
    }

    /// Counts one failure to get `uid`; gives up on it after [`UID_ATTEMPTS`].
    fn uid_failed(&self, uid: u32, mem: &mut Memory) {
        mem.retry = true;
        let n = mem.failures.entry(uid).or_insert(0);
        *n += 1;
        mem.unsaved.push((uid, *n));
        if *n >= UID_ATTEMPTS {
            mem.failures.remove(&uid);
            mem.skipped.insert(uid);
            tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host,
                folder = %self.cfg.folder, uid, attempts = UID_ATTEMPTS,
                "the server could not return this mail: given up on it, it is left in the folder and NOT processed (flagged {SKIPPED_KEYWORD} when the server allows); check the message on the server (damaged or unreadable file?), then copy it back into the folder as a new message to have it read");
        }
    }

    /// `UID FETCH`; the time limit applies to each response (lack of progress), not to the
    /// whole command, so that a chunk of many mails on a slow link is not cut off.
    async fn fetch(
        &self,
        s: &mut Session,
        set: &str,
        query: &str,
        limit: Duration,
    ) -> Result<Vec<Fetch>, Failure> {
        async {
            let stream = timed(limit, s.uid_fetch(set, query)).await?;
            tokio::pin!(stream);
            let mut all = Vec::new();
            while let Some(f) = timed(limit, stream.try_next()).await? {
                all.push(f);
            }
            Ok(all)
        }
        .await
        .map_err(|e: async_imap::error::Error| {
            self.fail(
                format!("UID FETCH {set} {query} failed: {e}"),
                "check the server; nothing from this chunk was committed, it is read again",
            )
        })
    }

    /// Moves, flags or deletes committed mail (`uids`). In delete mode, mail stored header
    /// only (`header_only`, a subset) is never deleted: it is flagged `\Seen` and left.
    async fn after(
        &self,
        s: &mut Session,
        uids: &[u32],
        header_only: &[u32],
        pass: &mut Pass,
    ) -> Result<(), Failure> {
        let to = &self.cfg.move_to;
        let (uids, keep): (Vec<u32>, Vec<u32>) = if self.cfg.after == AfterAction::Delete {
            uids.iter().partition(|u| !header_only.contains(u))
        } else {
            (uids.to_vec(), Vec::new())
        };
        let action = match self.cfg.after {
            AfterAction::Move => format!("moving processed mail to {to}"),
            AfterAction::Flag => "flagging processed mail \\Seen".to_string(),
            AfterAction::Delete => "deleting processed mail".to_string(),
        };
        let folder = &self.cfg.folder;
        let hint = match self.cfg.after {
            AfterAction::Move => format!(
                "its effects are committed; it stays in {folder} and the move is retried at the next pass without downloading it again: check that {to} exists and is writable, and the account's quota ({})",
                self.key("move_to")
            ),
            _ => format!(
                "its effects are committed; it stays in {folder} and this is retried at the next pass without downloading it again: check the folder's permissions and the account's quota"
            ),
        };
        for set in uid_sets(&keep) {
            let r = timed(COMMAND_TIMEOUT, async {
                s.uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await;
            match r {
                Ok(_) => tracing::warn!(mailbox = %self.cfg.name, folder = %folder, uids = %set,
                    "mail over inbound.max_message_size kept only its header here: NOT deleted, left in {folder} flagged \\Seen; delete it there by hand once handled"),
                Err(e) => {
                    return Err(self.fail(
                        format!("flagging too-large mail {set} \\Seen in {folder} failed: {e}"),
                        "it is not deleted (only its header was stored); check the folder's permissions",
                    ));
                }
            }
        }
        for set in uid_sets(&uids) {
            let r = timed(COMMAND_TIMEOUT, async {
                match self.cfg.after {
                    AfterAction::Move if pass.can_move => s.uid_mv(&set, to).await.map(|()| 0),
                    AfterAction::Move => {
                        s.uid_copy(&set, to).await?;
                        delete(s, &set, pass.uidplus).await
                    }
                    AfterAction::Flag => {
                        s.uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                            .await?
                            .try_collect::<Vec<_>>()
                            .await?;
                        Ok(0)
                    }
                    AfterAction::Delete => delete(s, &set, pass.uidplus).await,
                }
            })
            .await;
            match r {
                Ok(expunged) => pass.exists = pass.exists.saturating_sub(expunged),
                Err(e) => {
                    return Err(self.fail(format!("{action} (UIDs {set}) failed: {e}"), hint));
                }
            }
        }
        Ok(())
    }
    /// TCP, then TLS as configured, then login.
    async fn connect(&self) -> Result<Session, Failure> {
        let cfg = &self.cfg;
        let tcp = match tokio::time::timeout(
            COMMAND_TIMEOUT,
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                return Err(self.fail(
                    format!("cannot connect: {e}"),
                    format!(
                        "check {} and {} and that the server is reachable",
                        self.key("host"),
                        self.key("port")
                    ),
                ));
            }
            Err(_) => {
                return Err(self.fail(
                    format!("no answer to connect within {COMMAND_TIMEOUT:?}"),
                    "check the host, the port and any firewall",
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        let client = match cfg.tls {
            ImapTls::None => greet(self, async_imap::Client::new(Conn::Plain(tcp))).await?,
            ImapTls::Implicit => {
                let tls = self.tls(tcp).await?;
                greet(self, async_imap::Client::new(Conn::Tls(Box::new(tls)))).await?
            }
            ImapTls::StartTls => {
                let mut plain = greet(self, async_imap::Client::new(tcp)).await?;
                timed(COMMAND_TIMEOUT, plain.run_command_and_check_ok("STARTTLS", None))
                    .await
                    .map_err(|e| {
                        self.fail(
                            format!("STARTTLS refused: {e}"),
                            format!(
                                "the server may not offer STARTTLS: check {} (\"implicit\" on port 993?)",
                                self.key("tls")
                            ),
                        )
                    })?;
                let tls = self.tls(plain.into_inner()).await?;
                async_imap::Client::new(Conn::Tls(Box::new(tls)))
            }
        };
        let session = match &cfg.auth {
            ImapAuth::Password(pw) => timed_login(client.login(&cfg.username, pw.expose())).await,
            ImapAuth::XOAuth2(source) => {
                let token = read_token(source).await.map_err(|e| {
                    self.fail(
                        format!("cannot get the XOAUTH2 token: {e}"),
                        format!(
                            "check {} / {}",
                            self.key("token_file"),
                            self.key("token_command")
                        ),
                    )
                })?;
                timed_login(client.authenticate(
                    "XOAUTH2",
                    XOAuth2 {
                        response: Some(xoauth2_response(&cfg.username, &token)),
                    },
                ))
                .await
            }
        };
        session.map_err(|e| {
            let creds = match cfg.auth {
                ImapAuth::Password(_) => "password_env / password_file",
                ImapAuth::XOAuth2(_) => "token_file / token_command (is the token expired?)",
            };
            self.fail(
                format!("login as {} failed: {e}", cfg.username),
                format!(
                    "check {} and {} {creds}",
                    self.key("username"),
                    format_args!("inbound.imap[{}]", self.index)
                ),
            )
        })
    }

    async fn tls(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let config = crate::tls::client_config(self.cfg.ca_file.as_deref()).map_err(|e| {
            self.fail(
                format!("cannot set up TLS: {e}"),
                format!("check {}", self.key("ca_file")),
            )
        })?;
        let name = rustls::pki_types::ServerName::try_from(self.cfg.host.clone()).map_err(|e| {
            self.fail(
                format!(
                    "`{}` cannot be checked against a certificate: {e}",
                    self.cfg.host
                ),
                format!("check {}", self.key("host")),
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        match tokio::time::timeout(COMMAND_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => {
                let hint = if self.cfg.ca_file.is_some() {
                    format!(
                        "the server's certificate must be signed by a CA in {} and name {}",
                        self.key("ca_file"),
                        self.cfg.host
                    )
                } else {
                    format!(
                        "the server's certificate must be signed by a CA this system trusts (or set {}) and name {}; check also {}",
                        self.key("ca_file"),
                        self.cfg.host,
                        self.key("tls")
                    )
                };
                Err(self.fail(format!("TLS handshake failed: {e}"), hint))
            }
            Err(_) => Err(self.fail(
                format!("no TLS handshake within {COMMAND_TIMEOUT:?}"),
                format!(
                    "check {}: does the port speak TLS from the start (\"implicit\") or after STARTTLS?",
                    self.key("tls")
                ),
            )),
        }
    }
}

type Session = async_imap::Session<Conn>;

/// Where a pass stands and what the server can do.
struct Pass {
    uid_validity: u32,
    can_move: bool,
    uidplus: bool,
    /// The committed position (highest UID read or given up on).
    last: u32,
    /// The message count as last known (SELECT, `EXISTS`, minus our expunges).
    exists: u32,
}

/// One chunk read from the server, on its way to the store and then to its after-action.
struct Fetched {
    /// The UIDs the chunk was asked for (ascending).
    chunk: Vec<u32>,
    /// The UIDs the server returned (ascending).
    fetched: Vec<u32>,
    /// Asked for, not given up on, and not returned.
    missing: Vec<u32>,
    /// Stored header only (over `inbound.max_message_size`).
    header_only: Vec<u32>,
    /// The mails, handed to the commit (then empty), with their declared sizes.
    mails: Vec<RawMail>,
    declared: Vec<Option<usize>>,
    count: usize,
    /// The position its commit recorded.
    top: u32,
}

/// The chunks of [`Mailbox::process`] between the session and the store.
#[derive(Default)]
struct Flight {
    fetched: Option<Fetched>,
    committed: Option<Fetched>,
}

impl Flight {
    /// The chunk waiting for its commit lacks mail the server did not return.
    fn lacks_mail(&self) -> bool {
        self.fetched.as_ref().is_some_and(|f| !f.missing.is_empty())
    }
}

/// What a mailbox task keeps across its sessions.
struct Task {
    lease: Lease,
    out: MailboxOutcome,
    mem: Memory,
}

/// What the task remembers about UIDs across reconnects (in memory), for one UIDVALIDITY.
#[derive(Default)]
struct Memory {
    uid_validity: u32,
    /// Failed fetches of a UID alone (or missing content), not yet given up on.
    failures: HashMap<u32, u32>,
    /// UIDs given up on: not stored, left in the folder; the position moves past them and
    /// the catch-up never moves or deletes them.
    skipped: BTreeSet<u32>,
    /// Skipped UIDs already flagged (or tried) with [`SKIPPED_KEYWORD`].
    marked: HashSet<u32>,
    /// The UID range of a chunk whose fetch failed: read one UID at a time.
    suspect: Option<(u32, u32)>,
    /// An after-action failed: the catch-up runs again at the next pass.
    after_pending: bool,
    /// A fetch failure was just counted (with `once`, the pass is tried again).
    retry: bool,
    /// Failure counts not yet written to the store: `(uid, failures)`.
    unsaved: Vec<(u32, u32)>,
}

enum Wake {
    /// Search again.
    Again,
    End(End),
}

/// The store lease `imap:<name>` this instance holds (or tries to).
struct Lease {
    name: String,
    holder: String,
    /// Taken for this long, renewed every third of it.
    period: Duration,
    /// When it was last taken or renewed.
    held: Option<Instant>,
}

impl Lease {
    fn new(mailbox: &str, holder: &str, period: Duration) -> Lease {
        Lease {
            name: format!("imap:{mailbox}"),
            holder: holder.to_string(),
            period,
            held: None,
        }
    }

    /// Takes or renews the lease for its period; `false` when another instance has it.
    async fn take(&mut self, mb: &Mailbox) -> Result<bool, Failure> {
        let now = mb.clock.now();
        // Measured before the store call: the lease runs from `now`, however long the call.
        let started = Instant::now();
        let until = now + chrono::Duration::from_std(self.period).unwrap_or_default();
        let ok = {
            let (name, holder) = (self.name.clone(), self.holder.clone());
            mb.db
                .read(move |s| s.try_lease(&name, &holder, now, until))
                .await
                .map_err(|e| mb.store_failure(e))?
        };
        if ok && self.held.is_none() {
            tracing::info!(mailbox = %mb.cfg.name, holder = %self.holder,
                "lease taken on this IMAP mailbox: this instance reads it");
        }
        self.held = ok.then_some(started);
        Ok(ok)
    }

    fn next_renewal(&self) -> Instant {
        self.held.map_or_else(Instant::now, |t| t + self.period / 3)
    }

    /// Renews the lease when it is due; `false` when it was lost.
    async fn keep(&mut self, mb: &Mailbox) -> Result<bool, Failure> {
        if self.held.is_some() && Instant::now() < self.next_renewal() {
            return Ok(true);
        }
        self.take(mb).await
    }
}

/// Runs `f` with a time limit; a timeout is an I/O error.
async fn timed<T>(
    limit: Duration,
    f: impl Future<Output = async_imap::error::Result<T>>,
) -> async_imap::error::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(async_imap::error::Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {limit:?}"),
        ))),
    }
}

async fn timed_login<C>(
    f: impl Future<Output = Result<Session, (async_imap::error::Error, C)>>,
) -> async_imap::error::Result<Session> {
    timed(COMMAND_TIMEOUT, async { f.await.map_err(|(e, _)| e) }).await
}

/// Reads the server's greeting.
async fn greet<T>(
    mb: &Mailbox,
    mut client: async_imap::Client<T>,
) -> Result<async_imap::Client<T>, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(client),
        Ok(Ok(None)) => Err(mb.fail(
            "the server closed the connection before greeting",
            format!("check {} and {}", mb.key("port"), mb.key("tls")),
        )),
        Ok(Err(e)) => Err(mb.fail(
            format!("reading the greeting failed: {e}"),
            format!(
                "check {} and {} (TLS on a plain port, or the reverse?)",
                mb.key("port"),
                mb.key("tls")
            ),
        )),
        Err(_) => Err(mb.fail(
            format!("no greeting within {COMMAND_TIMEOUT:?}"),
            format!(
                "check {}: a TLS port waits for a handshake (\"implicit\")",
                mb.key("tls")
            ),
        )),
    }
}

/// Deletes `set`: `\Deleted`, then `UID EXPUNGE` (UIDPLUS) or `EXPUNGE`; the number of
/// messages expunged.
async fn delete(s: &mut Session, set: &str, uidplus: bool) -> async_imap::error::Result<u32> {
    s.uid_store(set, "+FLAGS.SILENT (\\Deleted)")
        .await?
        .try_collect::<Vec<_>>()
        .await?;
    let gone = if uidplus {
        s.uid_expunge(set).await?.try_collect::<Vec<_>>().await?
    } else {
        s.expunge().await?.try_collect::<Vec<_>>().await?
    };
    Ok(u32::try_from(gone.len()).unwrap_or(u32::MAX))
}

/// The XOAUTH2 SASL initial response.
pub fn xoauth2_response(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

struct XOAuth2 {
    response: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Vec<u8>;

    /// The first challenge (empty) gets the credentials; a second one is the server's error
    /// report, answered empty so that it ends the exchange with `NO`.
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.response
            .take()
            .map(String::into_bytes)
            .unwrap_or_default()
    }
}

/// The access token, read afresh: a file's content, or what a command prints.
async fn read_token(source: &TokenSource) -> Result<String, String> {
    let token = match source {
        TokenSource::File(p) => read_small_file(p.clone())
            .await
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        TokenSource::Command(cmd) => {
            let cmd = cmd.clone();
            let run = tokio::task::spawn_blocking(move || {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .stdin(std::process::Stdio::null())
                    .output()
            });
            let out = match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
                Ok(Ok(Ok(out))) => out,
                Ok(Ok(Err(e))) => return Err(format!("cannot run the command: {e}")),
                Ok(Err(e)) => return Err(format!("the command's task failed: {e}")),
                Err(_) => {
                    return Err(format!(
                        "the command did not finish within {COMMAND_TIMEOUT:?}"
                    ));
                }
            };
            if !out.status.success() {
                return Err(format!(
                    "the command failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            String::from_utf8(out.stdout)
                .map_err(|_| "the command printed no UTF-8 text".to_string())?
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    Ok(token)
}

/// Reads a small file off the runtime's thread.
async fn read_small_file(p: std::path::PathBuf) -> io::Result<String> {
    match tokio::task::spawn_blocking(move || std::fs::read_to_string(p)).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(e)),
    }
}

/// `"name"` with `\` and `"` escaped, for a LIST pattern.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// UID sets for commands: runs compressed (`1:5,7`), at most `RANGES_PER_COMMAND` ranges each.
/// `uids` ascending.
fn uid_sets(uids: &[u32]) -> Vec<String> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match ranges.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(u) => *hi = u,
            Some((_, hi)) if *hi == u => {}
            _ => ranges.push((u, u)),
        }
    }
    ranges
        .chunks(RANGES_PER_COMMAND)
        .map(|rs| {
            rs.iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}:{hi}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// The wait after the `n`th failure in a row: 1 s doubling to 60 s, times a jitter factor in
/// [0.5, 1] taken from `random`.
fn backoff(n: u32, random: u32) -> Duration {
    let base = Duration::from_secs(1u64 << n.saturating_sub(1).min(6)).min(BACKOFF_MAX);
    let factor = 0.5 + 0.5 * (f64::from(random) / f64::from(u32::MAX));
    base.mul_f64(factor)
}

/// A TCP connection, with or without TLS.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs_and_split_long_sets() {
        assert_eq!(uid_sets(&[1, 2, 3, 5, 7, 8]), vec!["1:3,5,7:8"]);
        assert!(uid_sets(&[]).is_empty());
        let sparse: Vec<u32> = (0..1200).map(|i| i * 2 + 1).collect();
        let sets = uid_sets(&sparse);
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[0].split(',').count(), RANGES_PER_COMMAND);
        assert!(sets[2].ends_with(",2399"));
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute_with_jitter() {
        assert_eq!(backoff(1, u32::MAX), Duration::from_secs(1));
        assert_eq!(backoff(1, 0), Duration::from_millis(500));
        assert_eq!(backoff(3, u32::MAX), Duration::from_secs(4));
        assert_eq!(backoff(7, u32::MAX), Duration::from_secs(60));
        assert_eq!(backoff(40, u32::MAX), Duration::from_secs(60));
        assert!(backoff(40, 0) >= Duration::from_secs(30));
    }

    #[test]
    fn xoauth2_answers_the_first_challenge_only() {
        use async_imap::Authenticator as _;
        let mut a = XOAuth2 {
            response: Some(xoauth2_response("me@example.com", "tok")),
        };
        assert_eq!(
            a.process(b""),
            b"user=me@example.com\x01auth=Bearer tok\x01\x01".to_vec()
        );
        assert!(a.process(b"{\"status\":\"401\"}").is_empty());
    }

    #[tokio::test]
    async fn tokens_are_read_from_a_file_or_a_command() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "abc\n").unwrap();
        assert_eq!(read_token(&TokenSource::File(f)).await.unwrap(), "abc");
        let c = TokenSource::Command("printf 'xyz\\n'".into());
        assert_eq!(read_token(&c).await.unwrap(), "xyz");
        let e = read_token(&TokenSource::Command("echo oops >&2; exit 3".into()))
            .await
            .unwrap_err();
        assert!(e.contains("oops"), "{e}");
        assert!(
            read_token(&TokenSource::File(dir.path().join("none")))
                .await
                .is_err()
        );
    }
}
