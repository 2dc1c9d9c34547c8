//! The decision: from a probe's recent samples, is its service down (declare an outage), up
//! again (restore it), or neither? Pure: time is the samples' and the caller's `now`.
//!
//! - **Down** when every sample of the last `window` was slow or failed, and those samples
//!   *cover* at least 80 % of the window. A sample stands for the interval before it (the
//!   time since the previous check): its cover is `[at − interval, at]`, clipped to the
//!   window; overlapping covers count once. So it is a time window, not a count: checks that
//!   stopped (the daemon was down, a check hung until its timeout) leave holes, and a window
//!   with holes over 20 % decides nothing. With the defaults (60 s, 15 min) that is 12 bad
//!   checks in a row, each 60 s apart, and no good one in the last 15 minutes.
//! - **Up** after `recover` healthy: the same rule over the last `recover` (every sample in it
//!   healthy, covering ≥ 80 % of it).
//! - A single slow sample, or a few, decide nothing.

use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Answered as expected within `slow`.
    Healthy,
    /// Answered as expected, slower than `slow`.
    Slow,
    /// No answer within `timeout`, a refused connection, a wrong answer, a failed login.
    Failed,
}

impl Verdict {
    pub fn is_healthy(self) -> bool {
        self == Verdict::Healthy
    }
}

/// One check: when it started and what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub verdict: Verdict,
}

/// The probe's timing settings the decision uses.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub interval: Duration,
    pub window: Duration,
    pub recover: Duration,
}

impl Rules {
    pub fn from_config(p: &crate::probes::ProbeConfig) -> Rules {
        let d = |d: std::time::Duration| Duration::from_std(d).unwrap_or(Duration::MAX);
        Rules {
            interval: d(p.interval),
            window: d(p.window),
            recover: d(p.recover),
        }
    }

    /// How long samples must be kept for a decision.
    fn keep(&self) -> Duration {
        self.window.max(self.recover) + self.interval
    }
}

/// Where a probe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Up,
    Down,
}

/// What the samples call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Every sample of the window was slow or failed: declare (or draft) the outage.
    Declare,
    /// Healthy for `recover`: restore it.
    Restore,
}

/// The share of a window its samples must cover.
const ENOUGH: f64 = 0.8;

/// The decision for a probe in `phase`, from its samples (any order), at `now`.
pub fn decide(phase: Phase, samples: &[Sample], now: DateTime<Utc>, rules: Rules) -> Decision {
    match phase {
        Phase::Up
            if all_for(samples, now, rules.window, rules.interval, |v| {
                !v.is_healthy()
            }) =>
        {
            Decision::Declare
        }
        Phase::Down
            if all_for(
                samples,
                now,
                rules.recover,
                rules.interval,
                Verdict::is_healthy,
            ) =>
        {
            Decision::Restore
        }
        _ => Decision::Nothing,
    }
}

/// Whether every sample in `(now − span, now]` satisfies `ok` and they cover at least
/// [`ENOUGH`] of the span.
fn all_for(
    samples: &[Sample],
    now: DateTime<Utc>,
    span: Duration,
    interval: Duration,
    ok: impl Fn(Verdict) -> bool,
) -> bool {
    let start = now - span;
    let mut inside: Vec<DateTime<Utc>> = Vec::new();
    for s in samples.iter().filter(|s| s.at > start && s.at <= now) {
        if !ok(s.verdict) {
            return false;
        }
        inside.push(s.at);
    }
    inside.sort_unstable();
    // The union of [at − interval, at] ∩ [start, now], walking in time order.
    let mut covered = Duration::zero();
    let mut reached = start;
    for at in inside {
        let from = (at - interval).max(reached);
        if at > from {
            covered += at - from;
            reached = at;
        }
    }
    let need = span.num_milliseconds() as f64 * ENOUGH;
    covered.num_milliseconds() as f64 >= need
}

/// A probe's recent samples, oldest first, trimmed to what a decision can use.
#[derive(Debug, Default, Clone)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds a sample and forgets those too old for any decision at its time.
    pub fn push(&mut self, sample: Sample, rules: Rules) {
        self.samples.push_back(sample);
        let oldest = sample.at - rules.keep();
        while self.samples.front().is_some_and(|s| s.at < oldest) {
            self.samples.pop_front();
        }
    }

    /// Contiguous, for [`decide`].
    pub fn contiguous(&mut self) -> &[Sample] {
        self.samples.make_contiguous()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn rules() -> Rules {
        Rules {
            interval: Duration::seconds(60),
            window: Duration::minutes(15),
            recover: Duration::minutes(5),
        }
    }

    /// Feeds one sample a minute from `t0`, returning the decisions after each, with the
    /// phase following them.
    fn run(verdicts: &[Verdict], mut phase: Phase) -> Vec<(i64, Decision)> {
        let mut h = History::default();
        let mut out = Vec::new();
        for (i, v) in verdicts.iter().enumerate() {
            let now = t0() + Duration::minutes(i as i64);
            h.push(
                Sample {
                    at: now,
                    verdict: *v,
                },
                rules(),
            );
            let d = decide(phase, h.contiguous(), now, rules());
            match d {
                Decision::Declare => phase = Phase::Down,
                Decision::Restore => phase = Phase::Up,
                Decision::Nothing => {}
            }
            if d != Decision::Nothing {
                out.push((i as i64, d));
            }
        }
        out
    }

    use Verdict::{Failed as F, Healthy as H, Slow as S};

    #[test]
    fn slow_for_the_window_declares_once() {
        // 12 bad samples a minute apart cover 12 of 15 minutes (80 %): declared at the 12th.
        let d = run(&[S; 20], Phase::Up);
        assert_eq!(d, vec![(11, Decision::Declare)]);
        // Slow and failed mix: still down.
        let mixed: Vec<Verdict> = (0..12).map(|i| if i % 2 == 0 { S } else { F }).collect();
        assert_eq!(run(&mixed, Phase::Up), vec![(11, Decision::Declare)]);
    }

    #[test]
    fn a_single_slow_sample_or_a_short_run_decides_nothing() {
        let mut v = vec![H; 30];
        v[10] = S;
        assert!(run(&v, Phase::Up).is_empty());
        // 11 bad minutes, then healthy: never enough.
        let mut v = vec![S; 11];
        v.extend([H; 20]);
        assert!(run(&v, Phase::Up).is_empty());
    }

    #[test]
    fn one_healthy_sample_in_the_window_keeps_it_up() {
        let mut v = vec![S; 30];
        v[8] = H; // the window holds a good sample until minute 8 + 15
        assert_eq!(run(&v, Phase::Up), vec![(8 + 15, Decision::Declare)]);
    }

    #[test]
    fn holes_in_the_samples_decide_nothing() {
        // Bad samples every third minute: 5 in a 15-minute window cover 5 minutes (33 %).
        let mut h = History::default();
        for i in 0..30 {
            let now = t0() + Duration::minutes(i * 3);
            h.push(
                Sample {
                    at: now,
                    verdict: S,
                },
                rules(),
            );
            assert_eq!(
                decide(Phase::Up, h.contiguous(), now, rules()),
                Decision::Nothing,
                "at minute {}",
                i * 3
            );
        }
        // Bunched samples (several instances, retries) count once for the same minutes.
        let mut h = History::default();
        let now = t0() + Duration::minutes(5);
        for s in 0..60 {
            h.push(
                Sample {
                    at: t0() + Duration::seconds(s * 5),
                    verdict: F,
                },
                rules(),
            );
        }
        assert_eq!(
            decide(Phase::Up, h.contiguous(), now, rules()),
            Decision::Nothing
        );
    }

    #[test]
    fn restored_after_recover_healthy() {
        let mut v = vec![S; 12]; // declared at 11
        v.extend([H; 10]); // healthy from minute 12; the slow one at 11 leaves the 5 min at 16
        let d = run(&v, Phase::Up);
        assert_eq!(d, vec![(11, Decision::Declare), (16, Decision::Restore)]);
        // A relapse inside the recover window starts the count again.
        let mut v = vec![H; 3];
        v.push(S);
        v.extend([H; 6]);
        assert_eq!(run(&v, Phase::Down), vec![(3 + 5, Decision::Restore)]);
    }

    #[test]
    fn moved_time_without_samples_decides_nothing() {
        // A down probe whose checks stopped is not restored by time alone.
        let mut h = History::default();
        for i in 0..12 {
            h.push(
                Sample {
                    at: t0() + Duration::minutes(i),
                    verdict: H,
                },
                rules(),
            );
        }
        let later = t0() + Duration::hours(2);
        assert_eq!(
            decide(Phase::Down, h.contiguous(), later, rules()),
            Decision::Nothing
        );
        assert_eq!(
            decide(Phase::Up, h.contiguous(), later, rules()),
            Decision::Nothing
        );
    }

    #[test]
    fn history_keeps_only_what_a_decision_needs() {
        let mut h = History::default();
        for i in 0..100 {
            h.push(
                Sample {
                    at: t0() + Duration::minutes(i),
                    verdict: H,
                },
                rules(),
            );
        }
        // 15 min window + 1 interval, one a minute: 17 samples (both ends).
        assert_eq!(h.len(), 17);
    }
}
