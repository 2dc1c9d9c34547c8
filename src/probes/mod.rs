//! Service probes (issue 10, "Probes"): `[[probes]]` check a customer-facing service
//! (HTTP, SMTP, IMAP, POP3) every `interval` over a real socket, and declare an outage (or
//! draft one for an operator to confirm) when every sample of the last `window` was slow or
//! failed; they restore it after `recover` healthy.
//!
//! - [`config`]: the `[[probes]]` tables, checked at start (errors name `probes[N].key`).
//! - [`check`]: one check over the network, measured.
//! - [`decide`]: the decision from the samples; pure.
//! - [`act`]: declaring and restoring with the announcement code (`announce::outage`),
//!   idempotently (one open outage per platform and service, checked in the declaring
//!   transaction), so that several instances probing the same service declare it once.
//! - [`task`]: the daemon task (one per probe set: a loop per probe, stopped by the
//!   cancellation token), its [`task::Runner`] (one round = check, record, decide, act) and
//!   what it publishes: the metrics `ticketgate_probe_up{probe}` and
//!   `ticketgate_probe_duration_seconds{probe}`, and the [`Board`] `/readyz` shows.
//!
//! A probe's state on `/readyz` is informational: a customer's service being down does not
//! make ticketgate unready (it is exactly when ticketgate must keep running to announce it).

pub mod act;
pub mod check;
pub mod config;
pub mod decide;
pub mod task;

pub use config::{ProbeAction, ProbeConfig, ProbeKind};
pub use decide::{Decision, Phase, Verdict};
pub use task::{Runner, run};

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Mutex;

/// One probe's state, as its task last published it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeStatus {
    pub name: String,
    pub platform: String,
    pub service: String,
    pub kind: ProbeKind,
    /// `down` once an outage was declared (or drafted) from its samples, until restored.
    pub phase: Phase,
    pub last_check: Option<DateTime<Utc>>,
    pub last_verdict: Option<Verdict>,
    pub last_duration_seconds: Option<f64>,
    pub last_error: Option<String>,
    /// The outage this probe declared or drafted and that is open, e.g. `OUT-000001`.
    pub outage: Option<String>,
}

/// The probes' states, for `/readyz`: a small shared list, one entry per probe task.
/// A poisoned lock is ignored (the states are advisory).
#[derive(Debug, Default)]
pub struct Board(Mutex<Vec<ProbeStatus>>);

impl Board {
    /// Sets (or adds) the state of `status.name`.
    pub fn publish(&self, status: ProbeStatus) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match all.iter_mut().find(|s| s.name == status.name) {
            Some(s) => *s = status,
            None => all.push(status),
        }
    }

    pub fn all(&self) -> Vec<ProbeStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn get(&self, name: &str) -> Option<ProbeStatus> {
        self.all().into_iter().find(|s| s.name == name)
    }
}
