//! Wires the parts together: opens the store, registry, templates and transport from a
//! [`Config`], drains the inbox through the pipeline, delivers the outbox, and runs the
//! daemon loop until shutdown.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::ingest::Maildir;
use crate::ingest::imap::{self, Mailbox, SharedApp};
use crate::notify::Templates;
use crate::outbox::{self, DeliveryReport, Transport};
use crate::pipeline::{Outcome, Pipeline, RawMail, Report};
use crate::registry::RegistryFile;
use crate::store::{self, Store};
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

pub struct App {
    pub cfg: Arc<Config>,
    pub store: Box<dyn Store>,
    pub pipeline: Pipeline,
    pub transport: Arc<Transport>,
    pub clock: SharedClock,
}

/// What a run did, for the summary line.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct RunSummary {
    pub inbound: Report,
    /// Timers fired (reminders, warnings, closes, escalations).
    pub timers: usize,
    pub delivery: DeliveryReport,
}

impl App {
    /// Opens everything the configuration names; every failure says which part and why.
    pub fn open(cfg: Config, clock: SharedClock) -> anyhow::Result<App> {
        let cfg = Arc::new(cfg);
        let registry = RegistryFile::open(&cfg.registry_path)?;
        let templates = Templates::load(cfg.templates_dir.as_deref())
            .context("loading templates (templates.dir)")?;
        let store =
            store::open(&cfg.database_url).context("opening the database (database.url)")?;
        let transport =
            Arc::new(Transport::from_config(&cfg.outbound).map_err(anyhow::Error::msg)?);
        let pipeline = Pipeline::new(cfg.clone(), Arc::new(registry), templates, clock.clone());
        Ok(App {
            cfg,
            store,
            pipeline,
            transport,
            clock,
        })
    }

    /// Processes one message (the `ingest` command and MTA pipes).
    pub fn ingest(&mut self, raw: RawMail) -> Result<Outcome, store::StoreError> {
        let (_, mut outcomes) = self
            .pipeline
            .process(self.store.as_mut(), std::slice::from_ref(&raw))?;
        Ok(outcomes.pop().unwrap_or(Outcome::Duplicate))
    }

    /// Processes everything waiting in the Maildir, batch by batch. A batch's files leave
    /// `new/` only after its transaction committed.
    pub fn drain_maildir(&mut self, md: &Maildir) -> anyhow::Result<Report> {
        let mut total = Report::default();
        // Files this drain cannot read or cannot move: skipped until the next drain.
        let mut unreadable: std::collections::HashSet<std::path::PathBuf> = Default::default();
        loop {
            // List once, then work through the list batch by batch; mail that arrived
            // meanwhile is seen by the next listing.
            let listed: Vec<_> = md
                .pending(usize::MAX)
                .with_context(|| format!("listing {}", md.root().join("new").display()))?
                .into_iter()
                .filter(|p| !unreadable.contains(p))
                .collect();
            if listed.is_empty() {
                return Ok(total);
            }
            for chunk in listed.chunks(self.cfg.inbound.batch_size) {
                let mut mails = Vec::with_capacity(chunk.len());
                let mut done = Vec::with_capacity(chunk.len());
                for p in chunk {
                    match md.read(p) {
                        Ok(m) => {
                            mails.push(m);
                            done.push(p);
                        }
                        Err(e) => {
                            tracing::error!(path = %p.display(), error = %e,
                                "cannot read inbound mail file; left in place: check its permissions");
                            unreadable.insert(p.clone());
                        }
                    }
                }
                if mails.is_empty() {
                    continue;
                }
                let (report, _) = self.pipeline.process(self.store.as_mut(), &mails).context(
                    "storing a batch of inbound mail (nothing from it was committed; it stays in the inbox)",
                )?;
                for p in done {
                    if let Err(e) = md.mark_done(p) {
                        // Committed: a later pass sees it as a duplicate and tries the move
                        // again; this drain skips it so that it cannot spin on it.
                        tracing::error!(path = %p.display(), error = %e,
                            "mail committed but not moved to cur/: check the folder's permissions");
                        unreadable.insert(p.clone());
                    }
                }
                total.add(&report);
            }
        }
    }

    pub async fn deliver(&mut self) -> Result<DeliveryReport, store::StoreError> {
        outbox::deliver_due(
            self.store.as_mut(),
            &self.transport,
            &self.cfg.outbound,
            self.clock.as_ref(),
        )
        .await
    }

    /// The daemon's main job. With `once`, reads each IMAP mailbox once, processes what is
    /// waiting in the Maildir, delivers what is due, and returns; otherwise runs the IMAP
    /// mailbox tasks alongside the Maildir drain, timers and delivery until `shutdown`
    /// completes, then stops every task after its current batch.
    pub async fn run(
        &mut self,
        once: bool,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<RunSummary> {
        let md = Maildir::open(&self.cfg.inbound.maildir).with_context(|| {
            format!(
                "opening the inbox (inbound.maildir = {})",
                self.cfg.inbound.maildir.display()
            )
        })?;
        let cfg = self.cfg.clone();
        let clock = self.clock.clone();
        let shared: SharedApp<'_> = tokio::sync::Mutex::new(self);
        // Woken by a mailbox task after a commit that queued mail, so that acknowledgements
        // leave at once rather than at the next poll.
        let deliver = Notify::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mailboxes = futures_util::future::join_all(cfg.inbound.imap.iter().enumerate().map(
            |(index, mb)| {
                Mailbox {
                    cfg: mb,
                    index,
                    app: &shared,
                    clock: clock.clone(),
                    batch_size: cfg.inbound.batch_size,
                    max_message_bytes: cfg.inbound.max_message_bytes,
                    deliver: &deliver,
                    stop: stop_rx.clone(),
                    holder: imap::instance_id(),
                }
                .run(once)
            },
        ));
        if once {
            let outcomes = mailboxes.await;
            let mut summary =
                main_loop(&shared, &md, true, &deliver, std::future::pending()).await?;
            let mut failed = Vec::new();
            for o in outcomes {
                summary.inbound.add(&o.report);
                failed.extend(o.error);
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
        // Delivery has its own database connection and runs beside the rest: a slow SMTP
        // server or a backlog never holds the app (mailbox commits, lease renewals) back.
        let mut delivery_store = store::open(&cfg.database_url)
            .context("opening a second database connection for delivery (database.url)")?;
        let transport = shared.lock().await.transport.clone();
        let delivery = delivery_loop(
            delivery_store.as_mut(),
            &transport,
            &cfg,
            &clock,
            &deliver,
            stop_rx.clone(),
        );
        let daemon = async {
            let r = main_loop(&shared, &md, false, &deliver, shutdown).await;
            // Stops the mailbox tasks and delivery after their current batch (also when the
            // loop failed).
            let _ = stop_tx.send(true);
            r
        };
        let (summary, outcomes, delivered) = tokio::join!(daemon, mailboxes, delivery);
        let mut summary = summary?;
        for o in outcomes {
            summary.inbound.add(&o.report);
        }
        summary.delivery.add(&delivered);
        Ok(summary)
    }
}

/// The Maildir drain and timers (and, with `once`, delivery): once, or until `shutdown`
/// completes. Sleeps until the poll interval or the next due timer; wakes the delivery loop
/// after a pass that queued mail.
async fn main_loop(
    shared: &SharedApp<'_>,
    md: &Maildir,
    once: bool,
    deliver: &Notify,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let mut summary = RunSummary::default();
    tokio::pin!(shutdown);
    let mut failures = 0u32;
    loop {
        let pass = async {
            let mut guard = shared.lock().await;
            let app: &mut App = &mut guard;
            let r = app.drain_maildir(md)?;
            // Timers and deliveries take the write lock only when something is due: an
            // idle daemon does not contend with `ingest` once a second.
            let now = app.clock.now();
            let fired = if app.store.next_timer()?.is_some_and(|d| d <= now) {
                crate::timers::tick(&app.pipeline, app.store.as_mut(), now, false)?.len()
            } else {
                0
            };
            // The daemon delivers in its own loop (woken below); `--once` delivers here.
            let d = if once && app.store.next_due()?.is_some_and(|d| d <= now) {
                app.deliver().await?
            } else {
                DeliveryReport::default()
            };
            anyhow::Ok((r, fired, d))
        }
        .await;
        match pass {
            Ok((r, fired, d)) => {
                failures = 0;
                if r.mails() > 0 || fired > 0 {
                    deliver.notify_one();
                }
                summary.timers += fired;
                summary.inbound.add(&r);
                summary.delivery.add(&d);
                if r.mails() > 0 || d.sent + d.retried + d.failed > 0 {
                    tracing::info!(
                        created = r.created,
                        appended = r.appended,
                        quarantined = r.quarantined,
                        duplicates = r.duplicates,
                        sent = d.sent,
                        retried = d.retried,
                        failed = d.failed,
                        "pass done"
                    );
                }
            }
            Err(e) if once => return Err(e),
            Err(e) => {
                failures += 1;
                tracing::error!(error = format!("{e:#}"), failures, "pass failed; retrying");
            }
        }
        if once {
            return Ok(summary);
        }
        let wait = {
            let mut guard = shared.lock().await;
            let app: &mut App = &mut guard;
            let mut wait = app.cfg.inbound.poll_interval;
            if failures > 0 {
                wait = wait.max(after_failures(failures));
            }
            if let Some(due) = app.store.next_timer().ok().flatten() {
                let until = (due - app.clock.now()).to_std().unwrap_or(Duration::ZERO);
                wait = wait.min(until.max(Duration::from_millis(50)));
            }
            wait
        };
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutdown requested; stopping after the last committed batch");
                return Ok(summary);
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The daemon's delivery: sends what is due through its own database connection, then sleeps
/// until the next due message, a wake-up (a commit queued mail), or shutdown. At shutdown it
/// stops claiming and finishes the sends in flight.
async fn delivery_loop(
    store: &mut dyn Store,
    transport: &Transport,
    cfg: &Config,
    clock: &SharedClock,
    wake: &Notify,
    mut stop: watch::Receiver<bool>,
) -> DeliveryReport {
    let mut total = DeliveryReport::default();
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return total;
        }
        let now = clock.now();
        let due = store.next_due();
        let result = match due {
            Ok(Some(d)) if d <= now => {
                let stop_rx = stop.clone();
                outbox::deliver_due_until(store, transport, &cfg.outbound, clock.as_ref(), &|| {
                    *stop_rx.borrow()
                })
                .await
            }
            Ok(_) => Ok(DeliveryReport::default()),
            Err(e) => Err(e),
        };
        match result {
            Ok(d) => {
                failures = 0;
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
        } else if let Ok(Some(due)) = store.next_due() {
            let until = (due - clock.now()).to_std().unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_millis(20)));
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return total,
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

/// The wait after `failures` passes in a row failed: 5 s more for each, up to 30 s.
fn after_failures(failures: u32) -> Duration {
    Duration::from_secs(u64::from(failures.min(6)) * 5)
}
