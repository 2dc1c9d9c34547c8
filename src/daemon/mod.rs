//! The daemon: spawned tasks that own cheap handles (a clone of the [`App`]: the [`Db`],
//! `Arc`s) and stop on one
//! [`CancellationToken`]. No lock around the application: a task waits only for its own
//! store calls.
//!
//! - one task per IMAP mailbox ([`crate::ingest::imap`]);
//! - the Maildir/timer task ([`maildir_and_timers`]): drains `new/` batch by batch, ticks
//!   the timers when one is due, sleeps until the poll interval or the next timer;
//! - the delivery task ([`delivery`]): sends what is due, woken by a commit that queued
//!   mail;
//! - the LMTP listener ([`crate::ingest::lmtp`]), when `[inbound.lmtp]` is set: sessions
//!   and their group committer.
//!
//! At shutdown the token is cancelled: each task stops taking new work, finishes what is in
//! flight (a commit, its after-action, the sends started), gives back unstarted claims and
//! its leases, and returns; the daemon waits for them up to `daemon.shutdown_timeout`.

use crate::app::App;
use crate::ingest::Maildir;
use crate::ingest::imap::{self, Mailbox, MailboxOutcome};
use crate::outbox::{self, DeliveryReport};
use crate::pipeline::{Pending, Pipeline, RawMail, Report};
use crate::sdnotify::SdNotify;
use crate::store::Db;
use anyhow::Context;
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a run did, for the summary line.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct RunSummary {
    pub inbound: Report,
    /// Timers fired (reminders, warnings, closes, escalations).
    pub timers: usize,
    pub delivery: DeliveryReport,
}

/// What one task hands back when it ends.
enum TaskEnd {
    Mailbox(MailboxOutcome),
    Local(anyhow::Result<RunSummary>),
    Delivery(DeliveryReport),
    Lmtp(crate::ingest::lmtp::Served),
}

/// The daemon's main job. With `once`, reads each IMAP mailbox once, drains the Maildir,
/// fires the due timers, delivers what is due, and returns. Otherwise spawns the tasks and
/// runs until `shutdown` completes, then stops them (see the module doc).
pub async fn run(
    app: App,
    once: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let cfg = app.cfg.clone();
    let md = Arc::new(Maildir::open(&cfg.inbound.maildir).with_context(|| {
        format!(
            "opening the inbox (inbound.maildir = {})",
            cfg.inbound.maildir.display()
        )
    })?);
    if cfg.inbound.reply_key.is_none() {
        tracing::warn!(
            "inbound.reply_key is not set: ticket mail carries no reply tokens, so an unauthenticated customer mail can never accept, close, reopen or rate a ticket"
        );
    }
    if app.pipeline.registry().lists().next().is_some()
        && (cfg.announcements.key.is_none() || cfg.http.public_url.is_none())
    {
        tracing::warn!(
            "announcements.key or http.public_url is not set: announcement mail offers only the mailto: unsubscribe, no one-click link"
        );
    }
    let stop = CancellationToken::new();
    // Woken after a commit that queued mail, so that acknowledgements leave at once.
    let deliver = Arc::new(Notify::new());
    let mut tasks: JoinSet<TaskEnd> = JoinSet::new();
    for index in 0..cfg.inbound.imap.len() {
        let mb = Mailbox {
            cfg: cfg.inbound.imap[index].clone(),
            index,
            batch_size: cfg.inbound.batch_size,
            max_message_bytes: cfg.inbound.max_message_bytes,
            db: app.db.clone(),
            pipeline: app.pipeline.clone(),
            clock: app.clock.clone(),
            deliver: deliver.clone(),
            stop: stop.clone(),
            holder: imap::instance_id(),
            telemetry: app.telemetry.clone(),
        };
        tasks.spawn(async move { TaskEnd::Mailbox(mb.run(once).await) });
    }
    if once {
        let mut summary = RunSummary::default();
        let mut failed = Vec::new();
        // The mailboxes first, then the Maildir and the timers, then delivery, as one pass.
        while let Some(end) = tasks.join_next().await {
            if let TaskEnd::Mailbox(o) = end.context("an IMAP mailbox task panicked")? {
                summary.inbound.add(&o.report);
                failed.extend(o.error);
            }
        }
        let local = maildir_and_timers(
            app.clone(),
            md,
            true,
            stop.clone(),
            deliver,
            Arc::new(SdNotify::disabled()),
        )
        .await?;
        summary.inbound.add(&local.inbound);
        summary.timers += local.timers;
        let now = app.clock.now();
        let due = app.db.read(|s| s.next_due()).await?;
        if due.is_some_and(|d| d <= now) {
            let d = outbox::deliver_due(&app.db, &app.transport, &cfg.outbound, &app.clock).await?;
            summary.delivery.add(&d);
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{} of {} IMAP mailboxes could not be read (the others were): {}",
                failed.len(),
                cfg.inbound.imap.len(),
                failed.join(" | ")
            );
        }
        return Ok(summary);
    }
    // systemd (Type=notify): READY once the tasks run; the main loop feeds the watchdog.
    let notify = Arc::new(SdNotify::from_env());
    if let Some(lmtp) = &cfg.inbound.lmtp {
        // Bound before anything else runs, so that a taken port stops the start.
        let bound = crate::ingest::lmtp::bind(lmtp).await.with_context(|| {
            format!(
                "binding the LMTP listener (inbound.lmtp.listen = {:?})",
                lmtp.listen
            )
        })?;
        // Parseable: tests and scripts read the address (port 0 picks a free one) from it.
        tracing::info!(lmtp.address = %bound.address, "LMTP listener ready");
        let (app, stop, deliver) = (app.clone(), stop.clone(), deliver.clone());
        tasks.spawn(async move {
            TaskEnd::Lmtp(crate::ingest::lmtp::serve(bound, app, stop, deliver).await)
        });
    }
    tasks.spawn({
        let (app, md, stop, deliver) = (app.clone(), md.clone(), stop.clone(), deliver.clone());
        let notify = notify.clone();
        async move {
            TaskEnd::Local(maildir_and_timers(app, md, false, stop, deliver, notify).await)
        }
    });
    tasks.spawn({
        let (app, stop, deliver) = (app.clone(), stop.clone(), deliver.clone());
        async move { TaskEnd::Delivery(delivery(app, stop, deliver).await) }
    });
    // The web server: health, metrics, the API, the ticket pages (`[http] listen`).
    if let Some(server) = crate::http::bind(&app).await {
        let stop = stop.clone();
        tasks.spawn(async move {
            server.serve(stop).await;
            TaskEnd::Delivery(DeliveryReport::default())
        });
    }
    // Service probes (`[[probes]]`): not in `run --once`, whose pass has no time window.
    if !cfg.probes.is_empty() {
        let (app, stop) = (app.clone(), stop.clone());
        tasks.spawn(async move {
            crate::probes::run(app, stop).await;
            TaskEnd::Delivery(DeliveryReport::default())
        });
    }
    notify.ready();
    let mut summary = RunSummary::default();
    let mut failure = None;
    tokio::pin!(shutdown);
    // Until shutdown, or until a task ends by itself (the Maildir task on a fatal error).
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            end = tasks.join_next() => match end {
                Some(end) => {
                    collect(end, &mut summary, &mut failure);
                    if failure.is_some() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    notify.stopping();
    tracing::info!(
        timeout = ?cfg.daemon.shutdown_timeout,
        "shutting down: finishing the commits and sends in flight"
    );
    stop.cancel();
    let drained = tokio::time::timeout(cfg.daemon.shutdown_timeout, async {
        while let Some(end) = tasks.join_next().await {
            collect(end, &mut summary, &mut failure);
        }
    })
    .await;
    if drained.is_err() {
        tracing::error!(
            tasks = tasks.len(),
            "some tasks did not stop within daemon.shutdown_timeout and were abandoned: their claims and leases lapse by themselves, and mail not yet moved is read again (as a duplicate)"
        );
        tasks.abort_all();
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

fn collect(
    end: Result<TaskEnd, tokio::task::JoinError>,
    summary: &mut RunSummary,
    failure: &mut Option<anyhow::Error>,
) {
    match end {
        Ok(TaskEnd::Mailbox(o)) => summary.inbound.add(&o.report),
        Ok(TaskEnd::Local(Ok(s))) => {
            summary.inbound.add(&s.inbound);
            summary.timers += s.timers;
        }
        Ok(TaskEnd::Local(Err(e))) => {
            failure.get_or_insert(e);
        }
        Ok(TaskEnd::Delivery(d)) => summary.delivery.add(&d),
        Ok(TaskEnd::Lmtp(s)) => summary.inbound.add(&s.inbound),
        Err(e) => {
            tracing::error!(error = %e, "a daemon task panicked");
            failure.get_or_insert(anyhow::anyhow!("a daemon task panicked: {e}"));
        }
    }
}

/// Processes everything waiting in the Maildir, batch by batch. A batch's files leave
/// `new/` only after its transaction committed. File I/O runs on the blocking pool, the
/// batch on the store's writer.
pub async fn drain_maildir(
    db: &Db,
    pipeline: &Arc<Pipeline>,
    batch_size: usize,
    md: &Arc<Maildir>,
    telemetry: Option<&crate::telemetry::Telemetry>,
) -> anyhow::Result<Report> {
    let mut total = Report::default();
    // Files this drain cannot read or cannot move: skipped until the next drain.
    let mut unreadable: HashSet<PathBuf> = HashSet::new();
    loop {
        // List once, then work through the list batch by batch; mail that arrived
        // meanwhile is seen by the next listing.
        let listed: Vec<PathBuf> = {
            let m = md.clone();
            tokio::task::spawn_blocking(move || m.pending(usize::MAX))
                .await
                .context("listing the inbox")?
                .with_context(|| format!("listing {}", md.root().join("new").display()))?
        };
        let listed: Vec<PathBuf> = listed
            .into_iter()
            .filter(|p| !unreadable.contains(p))
            .collect();
        if listed.is_empty() {
            return Ok(total);
        }
        // Batches in flight: while batch k commits (on PostgreSQL in the background, ADR
        // 0019), batch k+1 is parsed and applied on the writer, the files of batch k+2 are
        // read and those of batch k-1 moved to cur/. A batch's files move only once its
        // commit is durable (`finish_batch`).
        let chunks: Vec<Vec<PathBuf>> = listed
            .chunks(batch_size.max(1))
            .map(<[PathBuf]>::to_vec)
            .collect();
        let read = |chunk: Vec<PathBuf>| {
            let md = md.clone();
            tokio::task::spawn_blocking(move || read_files(&md, chunk))
        };
        let mut next = chunks.first().cloned().map(read);
        let mut moving: Option<tokio::task::JoinHandle<Vec<PathBuf>>> = None;
        // The batch begun and not finished: its files and when they were read.
        let mut pending: Option<(Pending, Vec<PathBuf>, std::time::Instant)> = None;
        for i in 0..=chunks.len() {
            let batch = match next.take() {
                Some(reading) => {
                    let (mails, done, bad) = reading.await.context("reading inbound mail files")?;
                    next = chunks.get(i + 1).cloned().map(read);
                    unreadable.extend(bad);
                    if mails.is_empty() {
                        continue;
                    }
                    pipeline.prefetch(&mails).await; // DNS before the transaction
                    Some((mails, done, std::time::Instant::now()))
                }
                None => None,
            };
            if batch.is_none() && pending.is_none() {
                break;
            }
            let p = pipeline.clone();
            let before = pending.take();
            let (begun, finished) = db
                .write(move |s| {
                    let (before, before_files) = match before {
                        Some((b, done, at)) => (Some(b), Some((done, at))),
                        None => (None, None),
                    };
                    Ok(match batch {
                        Some((mails, done, at)) => {
                            let (begun, finished) = p.next_batch(s, mails, before);
                            let finished = finished.zip(before_files).map(|(r, (d, t))| (r, d, t));
                            (Some((begun, done, at)), finished)
                        }
                        None => {
                            let finished = before
                                .map(|b| p.finish_batch(s, b))
                                .zip(before_files)
                                .map(|(r, (d, t))| (r, d, t));
                            (None, finished)
                        }
                    })
                })
                .await?;
            pending = begun;
            let Some((finished, done, read_at)) = finished else {
                continue;
            };
            let (report, _) = finished.context(
                "storing a batch of inbound mail (nothing from it was committed; it stays in the inbox)",
            )?;
            if let Some(t) = telemetry {
                t.batch_committed(&report, read_at.elapsed());
            }
            if let Some(m) = moving.take() {
                unreadable.extend(m.await.context("moving processed mail to cur/")?);
            }
            let md = md.clone();
            moving = Some(tokio::task::spawn_blocking(move || mark_done(&md, done)));
            total.add(&report);
        }
        if let Some(m) = moving.take() {
            unreadable.extend(m.await.context("moving processed mail to cur/")?);
        }
    }
}

/// Reads the files of one batch: the mails, their paths, and the paths that could not be read.
fn read_files(md: &Maildir, chunk: Vec<PathBuf>) -> (Vec<RawMail>, Vec<PathBuf>, Vec<PathBuf>) {
    let (mut mails, mut done, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for p in chunk {
        match md.read(&p) {
            Ok(m) => {
                mails.push(m);
                done.push(p);
            }
            Err(e) => {
                tracing::error!(path = %p.display(), error = %e,
                    "cannot read inbound mail file; left in place: check its permissions");
                bad.push(p);
            }
        }
    }
    (mails, done, bad)
}

/// Moves committed mail to cur/; returns the files that could not be moved.
fn mark_done(md: &Maildir, done: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut stuck = Vec::new();
    for p in done {
        if let Err(e) = md.mark_done(&p) {
            // Committed: a later pass sees it as a duplicate and tries the move again; this
            // drain skips it so that it cannot spin on it.
            tracing::error!(path = %p.display(), error = %e,
                "mail committed but not moved to cur/: check the folder's permissions");
            stuck.push(p);
        }
    }
    stuck
}

/// The Maildir drain and the timers: once, or until `stop`. Wakes the delivery task after a
/// pass that queued mail. The daemon's main loop: it feeds systemd's watchdog after every
/// pass (failed or not) and never sleeps longer than the watchdog allows, so only a pass
/// that does not come back (a stuck store, a stalled runtime) lets the watchdog fire.
async fn maildir_and_timers(
    app: App,
    md: Arc<Maildir>,
    once: bool,
    stop: CancellationToken,
    deliver: Arc<Notify>,
    notify: Arc<SdNotify>,
) -> anyhow::Result<RunSummary> {
    let cfg = app.cfg.clone();
    let mut summary = RunSummary::default();
    let mut failures = 0u32;
    loop {
        let pass = async {
            let r = drain_maildir(
                &app.db,
                &app.pipeline,
                cfg.inbound.batch_size,
                &md,
                Some(&app.telemetry),
            )
            .await?;
            // Timers take the writer only when one is due: an idle daemon does not contend
            // with `ingest` once a second.
            let now = app.clock.now();
            let due = app.db.read(|s| s.next_timer()).await?;
            let fired = if due.is_some_and(|d| d <= now) {
                let p = app.pipeline.clone();
                let fired = app
                    .db
                    .write(move |s| crate::timers::tick(&p, s, now, false))
                    .await?;
                app.telemetry.fired(&fired);
                fired.len()
            } else {
                0
            };
            anyhow::Ok((r, fired))
        }
        .await;
        match pass {
            Ok((r, fired)) => {
                failures = 0;
                if r.outbound > 0 || fired > 0 {
                    deliver.notify_one();
                }
                summary.timers += fired;
                summary.inbound.add(&r);
                if r.mails() > 0 {
                    tracing::info!(
                        created = r.created,
                        appended = r.appended,
                        quarantined = r.quarantined,
                        duplicates = r.duplicates,
                        "inbox pass done"
                    );
                }
            }
            Err(e) if once => return Err(e),
            Err(e) => {
                failures += 1;
                tracing::error!(
                    error = format!("{e:#}"),
                    failures,
                    "inbox pass failed; retrying"
                );
            }
        }
        if once {
            return Ok(summary);
        }
        notify.feed_watchdog();
        let mut wait = cfg.inbound.poll_interval;
        if failures > 0 {
            wait = wait.max(after_failures(failures));
        }
        if let Some(w) = notify.watchdog_interval() {
            wait = wait.min(w);
        }
        if let Ok(Some(due)) = app.db.read(|s| s.next_timer()).await {
            let until = (due - app.clock.now()).to_std().unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_millis(50)));
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(summary),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Delivery: sends what is due, then sleeps until the next due message, a wake-up (a commit
/// queued mail), or shutdown. At shutdown it stops claiming, gives back what it claimed and
/// did not start, and finishes the sends in flight.
async fn delivery(app: App, stop: CancellationToken, wake: Arc<Notify>) -> DeliveryReport {
    let cfg = &app.cfg;
    let mut total = DeliveryReport::default();
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return total;
        }
        let now = app.clock.now();
        let result = match app.db.read(|s| s.next_due()).await {
            Ok(Some(d)) if d <= now => {
                let stopping = stop.clone();
                outbox::deliver_due_until(
                    &app.db,
                    &app.transport,
                    &cfg.outbound,
                    &app.clock,
                    &move || stopping.is_cancelled(),
                )
                .await
            }
            Ok(_) => Ok(DeliveryReport::default()),
            Err(e) => Err(e),
        };
        match result {
            Ok(d) => {
                failures = 0;
                app.telemetry.delivered(&d);
                total.add(&d);
            }
            Err(e) => {
                failures += 1;
                tracing::error!(error = %e, failures,
                    "delivery pass failed (database); retrying: check the database");
            }
        }
        let mut wait = cfg.inbound.poll_interval;
        if failures > 0 {
            wait = wait.max(after_failures(failures));
        } else if let Ok(Some(due)) = app.db.read(|s| s.next_due()).await {
            let until = (due - app.clock.now()).to_std().unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_millis(20)));
        }
        tokio::select! {
            _ = stop.cancelled() => return total,
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

/// The wait after `failures` passes in a row failed: 5 s more for each, up to 30 s.
fn after_failures(failures: u32) -> Duration {
    Duration::from_secs(u64::from(failures.min(6)) * 5)
}
