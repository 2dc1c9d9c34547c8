//! The probes' daemon task: one loop per `[[probes]]` table, each a [`Runner`] doing a round
//! every `interval` until the cancellation token fires. A round checks the service, records
//! the sample (taken at the injected clock's "now"), publishes the metrics and the state for
//! `/readyz`, decides, and acts. Every instance of the daemon probes; declaring and
//! restoring are idempotent ([`super::act`]), so several instances act once.

use super::act::{self, Declared};
use super::check::{Checker, Outcome};
use super::decide::{Decision, History, Phase, Rules, Sample, decide};
use super::{ProbeConfig, ProbeStatus};
use crate::app::App;
use crate::telemetry::ProbeLabel;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What one round did.
#[derive(Debug, Clone)]
pub struct Round {
    pub sample: Sample,
    pub outcome: Outcome,
    pub decision: Decision,
    /// What the action did (declared, found one open, restored), when there was one.
    pub acted: Option<Acted>,
    /// Why the action failed; it is tried again at the next round.
    pub action_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    Declared(Declared),
    /// Restored this outage (`None`: none was open any more).
    Restored(Option<act::OpenOutage>),
}

/// One probe: its checker, its recent samples, and where it stands.
pub struct Runner {
    app: App,
    checker: Checker,
    rules: Rules,
    history: History,
    phase: Phase,
    outage: Option<act::OpenOutage>,
    /// Whether the store was asked for an open outage of this probe yet (at the first round,
    /// so that a restarted daemon knows it declared one).
    resumed: bool,
}

impl Runner {
    /// The runner of `cfg`; fails only when its TLS configuration cannot be built.
    pub fn new(app: App, cfg: ProbeConfig) -> Result<Runner, String> {
        let rules = Rules::from_config(&cfg);
        let checker = Checker::new(cfg)?;
        let runner = Runner {
            app,
            checker,
            rules,
            history: History::default(),
            phase: Phase::Up,
            outage: None,
            resumed: false,
        };
        runner.publish(None, None);
        Ok(runner)
    }

    pub fn config(&self) -> &ProbeConfig {
        self.checker.config()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Check, record, decide, act.
    pub async fn round(&mut self) -> Round {
        if !self.resumed {
            match act::open(&self.app, self.config()).await {
                Ok(found) => {
                    self.resumed = true;
                    if found.is_some() {
                        self.phase = Phase::Down;
                    }
                    self.outage = found;
                }
                Err(e) => tracing::warn!(probe = %self.config().name, error = format!("{e:#}"),
                    "cannot read the open outages yet; trying again at the next check"),
            }
        }
        let at = self.app.clock.now();
        let outcome = self.checker.check().await;
        let sample = Sample {
            at,
            verdict: outcome.verdict(self.config().slow),
        };
        self.history.push(sample, self.rules);
        // Decided at the sample's time: its cover ends there (see `decide`).
        let decision = decide(self.phase, self.history.contiguous(), at, self.rules);
        let (mut acted, mut action_error) = (None, None);
        match decision {
            Decision::Nothing => {}
            Decision::Declare => match act::declare(&self.app, self.config()).await {
                Ok(d) => {
                    let p = self.config();
                    tracing::warn!(probe = %p.name, platform = %p.platform, service = %p.service,
                        outage = %d.outage().reference, new = matches!(d, Declared::New(_)),
                        action = ?p.action, "probe: the service is down");
                    self.phase = Phase::Down;
                    self.outage = Some(d.outage().clone());
                    acted = Some(Acted::Declared(d));
                }
                Err(e) => action_error = Some(format!("{e:#}")),
            },
            Decision::Restore => match act::restore(&self.app, self.config()).await {
                Ok(r) => {
                    let p = self.config();
                    tracing::info!(probe = %p.name, platform = %p.platform, service = %p.service,
                        outage = ?r.as_ref().map(|o| &o.reference), "probe: the service is back");
                    self.phase = Phase::Up;
                    self.outage = None;
                    acted = Some(Acted::Restored(r));
                }
                Err(e) => action_error = Some(format!("{e:#}")),
            },
        }
        if let Some(e) = &action_error {
            tracing::error!(probe = %self.config().name, error = %e, ?decision,
                "probe: the action failed; trying again at the next check");
        }
        self.publish(Some((&sample, &outcome)), action_error.as_deref());
        Round {
            sample,
            outcome,
            decision,
            acted,
            action_error,
        }
    }

    /// The metrics and the `/readyz` entry.
    fn publish(&self, last: Option<(&Sample, &Outcome)>, action_error: Option<&str>) {
        let p = self.config();
        let t = &self.app.telemetry;
        let label = ProbeLabel {
            probe: p.name.clone(),
        };
        let up = last.is_some_and(|(s, _)| s.verdict.is_healthy());
        t.metrics.probe_up.get_or_create(&label).set(i64::from(up));
        if let Some((_, o)) = last {
            t.metrics
                .probe_duration
                .get_or_create(&label)
                .set(o.took.as_secs_f64());
        }
        let last_error = last
            .and_then(|(_, o)| o.result.as_ref().err().cloned())
            .or_else(|| action_error.map(str::to_string));
        t.probes.publish(ProbeStatus {
            name: p.name.clone(),
            platform: p.platform.clone(),
            service: p.service.clone(),
            kind: p.kind,
            phase: self.phase,
            last_check: last.map(|(s, _)| s.at),
            last_verdict: last.map(|(s, _)| s.verdict),
            last_duration_seconds: last.map(|(_, o)| o.took.as_secs_f64()),
            last_error,
            outage: self.outage.as_ref().map(|o| o.reference.clone()),
        });
    }
}

/// The daemon task: every probe of the configuration, each in its own loop, until `stop`.
pub async fn run(app: App, stop: CancellationToken) {
    let mut loops = JoinSet::new();
    for cfg in app.cfg.probes.iter().cloned() {
        let name = cfg.name.clone();
        match Runner::new(app.clone(), cfg) {
            Ok(runner) => {
                loops.spawn(probe_loop(runner, stop.clone()));
            }
            Err(e) => {
                tracing::error!(probe = %name, error = %e, "probe cannot run (TLS configuration): check probes ca_file");
            }
        }
    }
    while let Some(end) = loops.join_next().await {
        if let Err(e) = end {
            tracing::error!(error = %e, "a probe loop panicked");
        }
    }
}

/// Rounds `interval` apart (start to start; a check that takes longer is followed at once).
async fn probe_loop(mut runner: Runner, stop: CancellationToken) {
    let interval = runner.config().interval;
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = runner.round() => {}
        }
        let wait = interval.saturating_sub(started.elapsed());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
        }
    }
}
