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

mod connect;
mod disposition;
mod fetch;
mod lease;

pub use connect::{Conn, xoauth2_response};
use fetch::*;
use lease::*;

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
    /// Where the task publishes its state (`/readyz`, `/metrics`).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
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
                    let standby = crate::telemetry::MailboxPhase::Standby;
                    self.telemetry.mailbox(self.index).disconnected(standby);
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
        self.telemetry.mailbox(self.index).failed(&f.to_string());
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
        self.telemetry.mailbox(self.index).connected(uid_validity);
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
            let idles = self.cfg.idle && can_idle;
            self.telemetry
                .mailbox(self.index)
                .synced(self.clock.now(), idles);
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

    /// Logs out (best effort) and returns `end`.
    async fn end(&self, mut s: Session, end: End) -> Result<End, Failure> {
        let phase = crate::telemetry::MailboxPhase::Connecting;
        self.telemetry.mailbox(self.index).disconnected(phase);
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

/// `"name"` with `\` and `"` escaped, for a LIST pattern.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The wait after the `n`th failure in a row: 1 s doubling to 60 s, times a jitter factor in
/// [0.5, 1] taken from `random`.
fn backoff(n: u32, random: u32) -> Duration {
    let base = Duration::from_secs(1u64 << n.saturating_sub(1).min(6)).min(BACKOFF_MAX);
    let factor = 0.5 + 0.5 * (f64::from(random) / f64::from(u32::MAX));
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::connect::{XOAuth2, read_token};
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
