//! Opens everything from a [`Config`]: the store handle, the registry, the templates, the
//! pipeline and the transport. The command line and the tests use an [`App`] directly; the
//! daemon ([`crate::daemon`]) gets clones of its handles.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::daemon;
use crate::ingest::Maildir;
use crate::notify::Templates;
use crate::outbox::{self, DeliveryReport, Transport};
use crate::pipeline::{Outcome, Pipeline, RawMail, Report};
use crate::registry::RegistryFile;
use crate::store::{self, Conn, Db};
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;

pub use crate::daemon::RunSummary;

/// Every handle is a cheap clone: the daemon's tasks each own a clone of the `App`.
#[derive(Clone)]
pub struct App {
    pub cfg: Arc<Config>,
    pub db: Db,
    pub pipeline: Arc<Pipeline>,
    pub transport: Arc<Transport>,
    pub clock: SharedClock,
    /// Mailbox states and metrics, for `/readyz` and `/metrics`.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

impl App {
    /// Opens everything the configuration names; every failure says which part and why.
    pub fn open(cfg: Config, clock: SharedClock) -> anyhow::Result<App> {
        let cfg = Arc::new(cfg);
        let registry = RegistryFile::open(&cfg.registry_path)?;
        let templates = Templates::load(cfg.templates_dir.as_deref())
            .context("loading templates (templates.dir)")?;
        let db = Db::open(&cfg.database_url).context("opening the database (database.url)")?;
        let transport =
            Arc::new(Transport::from_config(&cfg.outbound).map_err(anyhow::Error::msg)?);
        let pipeline = Arc::new(Pipeline::new(
            cfg.clone(),
            Arc::new(registry),
            templates,
            clock.clone(),
        ));
        Ok(App {
            cfg: cfg.clone(),
            db,
            pipeline,
            transport,
            clock,
            telemetry: Arc::new(crate::telemetry::Telemetry::new(
                &cfg.inbound
                    .imap
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>(),
            )),
        })
    }

    /// What `ticketgate ingest` needs for its one mail and no more: templates read and
    /// compiled when a kind is first sent ([`Templates::lazy`]), patterns when first used,
    /// and the schema checked with one query (as every open does).
    pub fn open_for_ingest(cfg: Config, clock: SharedClock) -> anyhow::Result<App> {
        let cfg = Arc::new(cfg);
        let registry = RegistryFile::open(&cfg.registry_path)?;
        let templates = Templates::lazy(cfg.templates_dir.as_deref());
        let db =
            Db::open_one_shot(&cfg.database_url).context("opening the database (database.url)")?;
        let transport =
            Arc::new(Transport::from_config(&cfg.outbound).map_err(anyhow::Error::msg)?);
        let pipeline = Arc::new(Pipeline::new(
            cfg.clone(),
            Arc::new(registry),
            templates,
            clock.clone(),
        ));
        Ok(App {
            cfg,
            db,
            pipeline,
            transport,
            clock,
            telemetry: Arc::new(crate::telemetry::Telemetry::new(&[])),
        })
    }

    /// A pooled connection, for synchronous work (the command line).
    pub fn store(&self) -> Result<Conn, store::StoreError> {
        self.db.conn()
    }

    /// Processes one message (MTA pipes; see [`crate::services::intake`]), blocking.
    pub fn ingest(&self, raw: RawMail) -> Result<Outcome, store::StoreError> {
        let p = self.pipeline.clone();
        let (_, mut outcomes) = self
            .db
            .write_blocking(move |s| p.process(s, std::slice::from_ref(&raw)))?;
        Ok(outcomes.pop().unwrap_or(Outcome::Duplicate))
    }

    /// Processes everything waiting in the Maildir, batch by batch. A batch's files leave
    /// `new/` only after its transaction committed.
    pub async fn drain_maildir(&self, md: &Maildir) -> anyhow::Result<Report> {
        daemon::drain_maildir(
            &self.db,
            &self.pipeline,
            self.cfg.inbound.batch_size,
            &Arc::new(md.clone()),
            Some(&self.telemetry),
        )
        .await
    }

    pub async fn deliver(&self) -> Result<DeliveryReport, store::StoreError> {
        outbox::deliver_due(&self.db, &self.transport, &self.cfg.outbound, &self.clock).await
    }

    /// The daemon's main job ([`daemon::run`]).
    pub async fn run(
        &self,
        once: bool,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<RunSummary> {
        daemon::run(self.clone(), once, shutdown).await
    }
}
