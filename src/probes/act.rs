//! What a probe's decision does: declare (or draft) an outage, restore it. Through the
//! announcement services (`services::announce`), idempotently: at most one open
//! probe-declared outage per platform and service, checked in the declaring transaction.

use super::ProbeConfig;
use crate::app::App;

/// An open outage a probe declared (or drafted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOutage {
    pub id: i64,
    /// `OUT-000001`.
    pub reference: String,
}

/// What declaring did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// This call declared (or drafted) it.
    New(OpenOutage),
    /// One was open already (another instance, or before a restart): nothing was done.
    Existing(OpenOutage),
}

impl Declared {
    pub fn outage(&self) -> &OpenOutage {
        match self {
            Declared::New(o) | Declared::Existing(o) => o,
        }
    }
}

/// The open probe outage of the probe's platform and service, if any.
pub async fn open(_app: &App, _p: &ProbeConfig) -> anyhow::Result<Option<OpenOutage>> {
    anyhow::bail!("outages are not available yet (services::announce)")
}

/// Declares (or drafts, per `action`) the outage unless one is open.
pub async fn declare(_app: &App, _p: &ProbeConfig) -> anyhow::Result<Declared> {
    anyhow::bail!("outages are not available yet (services::announce)")
}

/// Restores the open probe outage of the probe's platform and service; `None` when there
/// was none (another instance restored it, or an operator did).
pub async fn restore(_app: &App, _p: &ProbeConfig) -> anyhow::Result<Option<OpenOutage>> {
    anyhow::bail!("outages are not available yet (services::announce)")
}
