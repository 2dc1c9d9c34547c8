//! KPI reports (SPEC §9): per customer and period (at most one year), tickets by severity
//! and by type, first-response compliance per severity, escalations, median and 90th
//! percentile of the time to first response and to resolution in the plan's business time,
//! the reopen rate, and the survey results.
//!
//! [`report`] is the service (CLI, HTTP); [`compute`] is the pure part the pipeline also
//! uses for a report requested by mail ([`subject_request`] reads such a subject), inside the
//! mail's transaction. The store hands over one row per ticket
//! ([`ReportTicket`], one indexed range of `tickets (customer, created_at)`); the business
//! time is counted here with each ticket's plan calendar
//! ([`Calendar::working_between`]).
//!
//! Definitions (also in the README):
//! - the period is `from..=to`, whole days in the time zone of the customer's plan calendar
//!   (UTC for 24/7); a ticket belongs to it by its creation time;
//! - first response: *met* when answered with the clock within its target and no breach
//!   recorded, *breached* when a breach was recorded or the answer came after the target,
//!   *pending* when neither yet; tickets without a target are counted apart; the percentage
//!   is met ÷ (met + breached);
//! - times are working seconds of the ticket's plan calendar from creation to the first
//!   public answer, and to the first time it was resolved or closed; median and 90th
//!   percentile by the nearest-rank method (the smallest value with at least p % of the
//!   values at or below it);
//! - reopen rate: tickets that went from resolved or closed back to an open status ÷ tickets
//!   resolved or closed at least once.

use super::{Result, ServiceError};
use crate::app::App;
use crate::calendar::Calendar;
use crate::lang::Lang;
use crate::registry::{Customer, Plan, Registry};
use crate::store::ReportTicket;
use chrono::{DateTime, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The report period a mail asks for when it names none: the last 30 days, today included.
pub const DEFAULT_DAYS: u64 = 30;

/// A KPI report (the JSON of `ticketgate report --json` and of the API).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub customer: String,
    pub customer_name: String,
    /// First day of the period (inclusive).
    pub from: NaiveDate,
    /// Last day of the period (inclusive).
    pub to: NaiveDate,
    /// The time zone the days are counted in.
    pub time_zone: String,
    /// Tickets created in the period.
    pub tickets: u64,
    /// Severities 1–4, always all four.
    pub by_severity: Vec<SeverityCount>,
    /// Issue types, by name.
    pub by_type: Vec<TypeCount>,
    /// Severities 1–4, always all four.
    pub first_response: Vec<Compliance>,
    pub escalations: Escalations,
    pub time_to_first_response: Times,
    pub time_to_resolution: Times,
    pub reopen: Reopen,
    pub survey: Survey,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityCount {
    pub severity: u8,
    pub tickets: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeCount {
    pub issue_type: String,
    pub tickets: u64,
}

/// First-response compliance of one severity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compliance {
    pub severity: u8,
    pub met: u64,
    pub breached: u64,
    /// Not answered yet, target not missed yet.
    pub pending: u64,
    /// Tickets of this severity without a response target.
    pub no_target: u64,
    /// met ÷ (met + breached), in percent with one decimal; `null` when both are 0.
    pub met_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalations {
    /// Escalations recorded (missed response targets) on the period's tickets.
    pub total: u64,
    /// Tickets escalated at least once.
    pub tickets: u64,
}

/// A distribution of working times, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Times {
    /// Tickets measured (answered, or resolved).
    pub count: u64,
    pub median_secs: Option<i64>,
    pub p90_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reopen {
    /// Tickets resolved or closed at least once.
    pub resolved: u64,
    /// Of those, tickets that went back to an open status.
    pub reopened: u64,
    /// reopened ÷ resolved, in percent with one decimal; `null` when none was resolved.
    pub rate_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Survey {
    pub count: u64,
    /// Mean score (1–5) with two decimals; `null` without scores.
    pub mean: Option<f64>,
    /// Scores 1–5, always all five.
    pub distribution: Vec<ScoreCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreCount {
    pub score: u8,
    pub count: u64,
}

/// One bar of a chart: what an inline SVG needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    pub label: String,
    pub value: u64,
    /// `value` ÷ the largest value of the chart (0 when all are 0): the bar's length.
    pub fraction: f64,
}

/// Why a period is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodError {
    /// `from` is after `to`.
    Reversed,
    /// The period ends after today.
    Future,
    /// Longer than a year.
    TooLong,
    /// Written but not a period (`report 2026-13-01..2026-02-30`).
    Unreadable,
}

impl PeriodError {
    /// A stable code, also what the refusal template branches on.
    pub fn code(self) -> &'static str {
        match self {
            PeriodError::Reversed => "reversed",
            PeriodError::Future => "future",
            PeriodError::TooLong => "too_long",
            PeriodError::Unreadable => "unreadable",
        }
    }
}

/// Checks a period against `today` (in the customer's time zone).
pub fn check_period(
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> std::result::Result<(), PeriodError> {
    if from > to {
        return Err(PeriodError::Reversed);
    }
    if to > today {
        return Err(PeriodError::Future);
    }
    // A year: 2026-01-01..=2026-12-31 (or 2026-03-05..=2027-03-04), not a day more.
    if from
        .checked_add_months(Months::new(12))
        .is_none_or(|end| to >= end)
    {
        return Err(PeriodError::TooLong);
    }
    Ok(())
}

fn period_message(e: PeriodError, from: NaiveDate, to: NaiveDate, today: NaiveDate) -> String {
    match e {
        PeriodError::Reversed => format!("the period starts ({from}) after it ends ({to})"),
        PeriodError::Future => {
            format!(
                "the period ends on {to}, in the future: a report covers days up to today ({today})"
            )
        }
        PeriodError::TooLong => format!(
            "{from}..{to} is longer than a year: a report covers at most one year (e.g. {from}..{})",
            from.checked_add_months(Months::new(12))
                .and_then(|d| d.pred_opt())
                .unwrap_or(from)
        ),
        PeriodError::Unreadable => "the period is not two dates YYYY-MM-DD..YYYY-MM-DD".into(),
    }
}

/// The time zone a customer's days are counted in.
pub fn time_zone(plan: &Plan) -> Tz {
    match &*plan.calendar {
        Calendar::Always => chrono_tz::UTC,
        Calendar::Business(b) => b.time_zone(),
    }
}

/// The date of `now` in `tz`.
pub fn today(tz: Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// The start of `day` in `tz`, as an instant (the first instant of the day when midnight
/// does not exist there).
fn day_start(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        // A DST gap at midnight: the day starts an hour later, at the latest.
        chrono::LocalResult::None => (1..=3)
            .find_map(|h| {
                tz.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                    .earliest()
            })
            .map_or_else(
                || Utc.from_utc_datetime(&midnight),
                |t| t.with_timezone(&Utc),
            ),
    }
}

/// The instants `[start of from, start of the day after to)` in `tz`.
pub fn bounds(tz: Tz, from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let after = to.checked_add_days(Days::new(1)).unwrap_or(to);
    (day_start(tz, from), day_start(tz, after))
}

/// The KPI report of `customer` for `from..=to` (dates in the customer plan's time zone).
/// A period that ends in the future, is longer than a year or is reversed is
/// [`ServiceError::Invalid`]; an unknown customer is [`ServiceError::NotFound`].
pub async fn report(app: &App, customer: &str, from: NaiveDate, to: NaiveDate) -> Result<Report> {
    let registry = app.pipeline.registry();
    let Some(c) = registry.customer(customer).cloned() else {
        return Err(ServiceError::NotFound(format!(
            "no customer `{customer}` in the customer registry"
        )));
    };
    let tz = time_zone(&c.plan);
    let today = today(tz, app.clock.now());
    check_period(from, to, today)
        .map_err(|e| ServiceError::Invalid(period_message(e, from, to, today)))?;
    let (start, end) = bounds(tz, from, to);
    let id = c.id.clone();
    let rows = app
        .db
        .read(move |s| s.report_tickets(&id, start, end))
        .await?;
    Ok(compute(&c, &registry, from, to, &rows))
}

/// The report of `rows` (the customer's tickets of the period, from the store).
pub fn compute(
    customer: &Customer,
    registry: &Registry,
    from: NaiveDate,
    to: NaiveDate,
    rows: &[ReportTicket],
) -> Report {
    let mut plans: HashMap<&str, Arc<Plan>> = HashMap::new();
    let mut by_severity = [0u64; 4];
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    let mut compliance: Vec<Compliance> = (1..=4)
        .map(|severity| Compliance {
            severity,
            met: 0,
            breached: 0,
            pending: 0,
            no_target: 0,
            met_percent: None,
        })
        .collect();
    let mut escalations = Escalations {
        total: 0,
        tickets: 0,
    };
    let mut response = Vec::new();
    let mut resolution = Vec::new();
    let (mut resolved, mut reopened) = (0u64, 0u64);
    let mut scores = [0u64; 5];
    for t in rows {
        let sev = usize::from(t.severity.clamp(1, 4)) - 1;
        by_severity[sev] += 1;
        *by_type.entry(t.issue_type.as_str()).or_default() += 1;
        let c = &mut compliance[sev];
        match t.sla_target_secs {
            None => c.no_target += 1,
            Some(target) => {
                if t.breached_at.is_some()
                    || (t.responded_at.is_some() && t.sla_elapsed_secs > target)
                {
                    c.breached += 1;
                } else if t.responded_at.is_some() {
                    c.met += 1;
                } else {
                    c.pending += 1;
                }
            }
        }
        if t.escalations > 0 {
            escalations.total += u64::try_from(t.escalations).unwrap_or(0);
            escalations.tickets += 1;
        }
        let plan = plans
            .entry(t.plan.as_str())
            .or_insert_with(|| registry.plan(&t.plan));
        if let Some(at) = t.responded_at {
            response.push(
                plan.calendar
                    .working_between(t.created_at, at)
                    .num_seconds(),
            );
        }
        if let Some(at) = t.resolved_at {
            resolution.push(
                plan.calendar
                    .working_between(t.created_at, at)
                    .num_seconds(),
            );
            resolved += 1;
            if t.reopened {
                reopened += 1;
            }
        }
        if let Some(s) = t.survey_score.filter(|s| (1..=5).contains(s)) {
            scores[usize::from(s) - 1] += 1;
        }
    }
    for c in &mut compliance {
        c.met_percent = percent(c.met, c.met + c.breached);
    }
    let count: u64 = scores.iter().sum();
    let total: u64 = scores.iter().zip(1u64..).map(|(n, score)| n * score).sum();
    Report {
        customer: customer.id.clone(),
        customer_name: customer.name.clone(),
        from,
        to,
        time_zone: time_zone(&customer.plan).name().to_string(),
        tickets: rows.len() as u64,
        by_severity: by_severity
            .iter()
            .zip(1u8..)
            .map(|(&tickets, severity)| SeverityCount { severity, tickets })
            .collect(),
        by_type: by_type
            .into_iter()
            .map(|(t, tickets)| TypeCount {
                issue_type: t.to_string(),
                tickets,
            })
            .collect(),
        first_response: compliance,
        escalations,
        time_to_first_response: times(response),
        time_to_resolution: times(resolution),
        reopen: Reopen {
            resolved,
            reopened,
            rate_percent: percent(reopened, resolved),
        },
        survey: Survey {
            count,
            mean: (count > 0).then(|| round(total as f64 / count as f64, 100.0)),
            distribution: scores
                .iter()
                .zip(1u8..)
                .map(|(&count, score)| ScoreCount { score, count })
                .collect(),
        },
    }
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round(part as f64 * 100.0 / whole as f64, 10.0))
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of sorted values: the smallest value with
/// at least p % of the values at or below it.
pub fn nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (n * p as usize).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn times(mut v: Vec<i64>) -> Times {
    v.sort_unstable();
    Times {
        count: v.len() as u64,
        median_secs: nearest_rank(&v, 50),
        p90_secs: nearest_rank(&v, 90),
    }
}

/// What the subject of a customer's mail asks for, when it is a report request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodRequest {
    /// `report`: the last [`DEFAULT_DAYS`] days.
    Default,
    /// `report 2026-01-01..2026-06-30`.
    Period(NaiveDate, NaiveDate),
    /// `report 2026-13-01..2026-06-31`: shaped like a period, but not one.
    Unreadable,
}

/// Reads a report request from a subject: `report` or `rapport` (any case, an optional `:`),
/// then nothing or a period `YYYY-MM-DD..YYYY-MM-DD`; the support keys the mail carries
/// (`keys`) may stand anywhere in it. Anything else (`Report of a crash in the export`) is
/// not a report request: it opens a ticket as usual.
pub fn subject_request(subject: &str, keys: &[String]) -> Option<PeriodRequest> {
    let s = subject.trim();
    let word = s
        .get(..6)
        .filter(|w| w.eq_ignore_ascii_case("report"))
        .map(|_| 6)
        .or_else(|| {
            s.get(..7)
                .filter(|w| w.eq_ignore_ascii_case("rapport"))
                .map(|_| 7)
        })?;
    let mut rest = s[word..].to_string();
    if rest.chars().next().is_some_and(char::is_alphanumeric) {
        return None;
    }
    for k in keys {
        if let Some(i) = rest.to_ascii_uppercase().find(&k.to_ascii_uppercase()) {
            rest.replace_range(i..i + k.len(), " ");
        }
    }
    let rest: String = rest
        .split(|c: char| c.is_whitespace() || "[](),;:".contains(c))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if rest.is_empty() {
        return Some(PeriodRequest::Default);
    }
    let (a, b) = rest.split_once("..")?;
    let (a, b) = (a.trim(), b.trim());
    let shaped = |d: &str| {
        d.len() == 10
            && d.char_indices().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            })
    };
    if !shaped(a) || !shaped(b) {
        return None;
    }
    let parse = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    Some(match (parse(a), parse(b)) {
        (Some(from), Some(to)) => PeriodRequest::Period(from, to),
        _ => PeriodRequest::Unreadable,
    })
}

/// The period a request names, checked as of `now` in the customer's time zone.
pub fn requested_period(
    request: PeriodRequest,
    plan: &Plan,
    now: DateTime<Utc>,
) -> std::result::Result<(NaiveDate, NaiveDate), (PeriodError, String)> {
    let today = today(time_zone(plan), now);
    let (from, to) = match request {
        PeriodRequest::Default => (
            today
                .checked_sub_days(Days::new(DEFAULT_DAYS - 1))
                .unwrap_or(today),
            today,
        ),
        PeriodRequest::Period(from, to) => (from, to),
        PeriodRequest::Unreadable => {
            let e = PeriodError::Unreadable;
            return Err((e, period_message(e, today, today, today)));
        }
    };
    check_period(from, to, today).map_err(|e| (e, period_message(e, from, to, today)))?;
    Ok((from, to))
}

/// Text labels in the report's languages.
struct Labels {
    title: &'static str,
    period: &'static str,
    tickets: &'static str,
    by_severity: &'static str,
    severity: &'static str,
    by_type: &'static str,
    first_response: &'static str,
    met: &'static str,
    breached: &'static str,
    pending: &'static str,
    no_target: &'static str,
    escalations: &'static str,
    escalated_tickets: &'static str,
    ttfr: &'static str,
    ttr: &'static str,
    median: &'static str,
    p90: &'static str,
    measured: &'static str,
    business: &'static str,
    reopen: &'static str,
    reopened_of: &'static str,
    survey: &'static str,
    answers: &'static str,
    mean: &'static str,
    none: &'static str,
}

const EN: Labels = Labels {
    title: "Support report",
    period: "Period",
    tickets: "Tickets",
    by_severity: "By severity",
    severity: "Severity",
    by_type: "By type",
    first_response: "First response within target",
    met: "met",
    breached: "breached",
    pending: "pending",
    no_target: "no target",
    escalations: "Escalations",
    escalated_tickets: "tickets escalated",
    ttfr: "Time to first response",
    ttr: "Time to resolution",
    median: "median",
    p90: "90th percentile",
    measured: "tickets",
    business: "business time",
    reopen: "Reopen rate",
    reopened_of: "reopened of",
    survey: "Satisfaction survey",
    answers: "answers",
    mean: "mean",
    none: "none",
};

const FR: Labels = Labels {
    title: "Rapport de support",
    period: "Période",
    tickets: "Demandes",
    by_severity: "Par sévérité",
    severity: "Sévérité",
    by_type: "Par type",
    first_response: "Première réponse dans le délai",
    met: "respecté",
    breached: "dépassé",
    pending: "en attente",
    no_target: "sans délai",
    escalations: "Escalades",
    escalated_tickets: "demandes escaladées",
    ttfr: "Délai de première réponse",
    ttr: "Délai de résolution",
    median: "médiane",
    p90: "90e centile",
    measured: "demandes",
    business: "temps ouvré",
    reopen: "Taux de réouverture",
    reopened_of: "rouvertes sur",
    survey: "Enquête de satisfaction",
    answers: "réponses",
    mean: "moyenne",
    none: "aucune",
};

/// A duration in working time: `1d 2h 30m` counted in 24 h days (`2h 30m`, `45m`, `0m`).
fn duration(secs: i64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let hm = crate::sla::human(rest);
    match (d, rest < 60) {
        (0, _) => hm,
        (d, true) => format!("{d}d"),
        (d, false) => format!("{d}d {hm}"),
    }
}

fn number(v: f64, lang: Lang) -> String {
    let s = format!("{v}");
    match lang {
        Lang::Fr => s.replace('.', ","),
        Lang::En => s,
    }
}

/// One CSV field, quoted when it needs to be (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Report {
    /// The report as CSV (RFC 4180, CRLF): one `section,key,metric,value` row per figure.
    /// Empty values (no percentage, no median) are empty fields.
    pub fn to_csv(&self) -> String {
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut row = |section: &str, key: &str, metric: &str, value: String| {
            rows.push([section.into(), key.into(), metric.into(), value]);
        };
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let opt_i = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        row("report", "customer", "id", self.customer.clone());
        row("report", "customer", "name", self.customer_name.clone());
        row("report", "period", "from", self.from.to_string());
        row("report", "period", "to", self.to.to_string());
        row("report", "period", "time_zone", self.time_zone.clone());
        row("tickets", "all", "count", self.tickets.to_string());
        for s in &self.by_severity {
            row(
                "by_severity",
                &s.severity.to_string(),
                "tickets",
                s.tickets.to_string(),
            );
        }
        for t in &self.by_type {
            row("by_type", &t.issue_type, "tickets", t.tickets.to_string());
        }
        for c in &self.first_response {
            let k = c.severity.to_string();
            row("first_response", &k, "met", c.met.to_string());
            row("first_response", &k, "breached", c.breached.to_string());
            row("first_response", &k, "pending", c.pending.to_string());
            row("first_response", &k, "no_target", c.no_target.to_string());
            row("first_response", &k, "met_percent", opt(c.met_percent));
        }
        row(
            "escalations",
            "all",
            "total",
            self.escalations.total.to_string(),
        );
        row(
            "escalations",
            "all",
            "tickets",
            self.escalations.tickets.to_string(),
        );
        for (name, t) in [
            ("time_to_first_response", &self.time_to_first_response),
            ("time_to_resolution", &self.time_to_resolution),
        ] {
            row(name, "all", "count", t.count.to_string());
            row(name, "all", "median_secs", opt_i(t.median_secs));
            row(name, "all", "p90_secs", opt_i(t.p90_secs));
        }
        row(
            "reopen",
            "all",
            "resolved",
            self.reopen.resolved.to_string(),
        );
        row(
            "reopen",
            "all",
            "reopened",
            self.reopen.reopened.to_string(),
        );
        row(
            "reopen",
            "all",
            "rate_percent",
            opt(self.reopen.rate_percent),
        );
        row("survey", "all", "count", self.survey.count.to_string());
        row("survey", "all", "mean", opt(self.survey.mean));
        for s in &self.survey.distribution {
            row("survey", &s.score.to_string(), "count", s.count.to_string());
        }
        let mut out = String::from("section,key,metric,value\r\n");
        for r in rows {
            let line: Vec<String> = r.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// The report as people read it, in `lang`.
    pub fn to_text(&self, lang: Lang) -> String {
        use std::fmt::Write;
        let l = match lang {
            Lang::En => &EN,
            Lang::Fr => &FR,
        };
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{} %", number(v, lang)));
        let dur = |v: Option<i64>| v.map_or("-".to_string(), duration);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} — {} ({})",
            l.title, self.customer_name, self.customer
        );
        let _ = writeln!(
            o,
            "{}: {} .. {} ({})",
            l.period, self.from, self.to, self.time_zone
        );
        let _ = writeln!(o);
        let _ = writeln!(o, "{}: {}", l.tickets, self.tickets);
        let _ = writeln!(o);
        let _ = writeln!(o, "{}:", l.by_severity);
        for s in &self.by_severity {
            let _ = writeln!(o, "  {} {}: {}", l.severity, s.severity, s.tickets);
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "{}:", l.by_type);
        if self.by_type.is_empty() {
            let _ = writeln!(o, "  {}", l.none);
        }
        for t in &self.by_type {
            let _ = writeln!(o, "  {}: {}", t.issue_type, t.tickets);
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "{}:", l.first_response);
        for c in &self.first_response {
            let _ = writeln!(
                o,
                "  {} {}: {} {}, {} {}, {} {}, {} {} — {}",
                l.severity,
                c.severity,
                c.met,
                l.met,
                c.breached,
                l.breached,
                c.pending,
                l.pending,
                c.no_target,
                l.no_target,
                pct(c.met_percent)
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{}: {} ({} {})",
            l.escalations, self.escalations.total, self.escalations.tickets, l.escalated_tickets
        );
        let _ = writeln!(o);
        for (name, t) in [
            (l.ttfr, &self.time_to_first_response),
            (l.ttr, &self.time_to_resolution),
        ] {
            let _ = writeln!(
                o,
                "{name} ({}): {} {}, {} {}, {} {}",
                l.business,
                l.median,
                dur(t.median_secs),
                l.p90,
                dur(t.p90_secs),
                t.count,
                l.measured
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{}: {} ({} {} {})",
            l.reopen,
            pct(self.reopen.rate_percent),
            self.reopen.reopened,
            l.reopened_of,
            self.reopen.resolved
        );
        let _ = writeln!(o);
        let mean = self
            .survey
            .mean
            .map_or("-".to_string(), |m| format!("{}/5", number(m, lang)));
        let _ = writeln!(
            o,
            "{}: {} {}, {} {}",
            l.survey, self.survey.count, l.answers, l.mean, mean
        );
        for s in &self.survey.distribution {
            let _ = writeln!(o, "  {}/5: {}", s.score, s.count);
        }
        o
    }

    /// Tickets per severity, as bars (`S1`…`S4`), for a chart.
    pub fn severity_chart(&self) -> Vec<Bar> {
        bars(
            self.by_severity
                .iter()
                .map(|s| (format!("S{}", s.severity), s.tickets)),
        )
    }

    /// Survey answers per score (`1`…`5`), as bars.
    pub fn survey_chart(&self) -> Vec<Bar> {
        bars(
            self.survey
                .distribution
                .iter()
                .map(|s| (s.score.to_string(), s.count)),
        )
    }

    /// The CSV attachment's file name: `report-CUSTOMER-FROM-TO.csv`.
    pub fn csv_filename(&self) -> String {
        let id: String = self
            .customer
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("report-{id}-{}-{}.csv", self.from, self.to)
    }
}

fn bars(items: impl Iterator<Item = (String, u64)>) -> Vec<Bar> {
    let items: Vec<(String, u64)> = items.collect();
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0);
    items
        .into_iter()
        .map(|(label, value)| Bar {
            label,
            value,
            fraction: if max == 0 {
                0.0
            } else {
                value as f64 / max as f64
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_period_is_at_most_a_year_and_not_in_the_future() {
        let today = d("2026-12-02");
        assert_eq!(
            check_period(d("2026-01-01"), d("2026-06-30"), today),
            Ok(())
        );
        assert_eq!(
            check_period(d("2025-12-03"), d("2026-12-02"), today),
            Ok(())
        );
        assert_eq!(
            check_period(d("2025-12-02"), d("2026-12-02"), today),
            Err(PeriodError::TooLong)
        );
        assert_eq!(
            check_period(d("2026-11-01"), d("2026-12-03"), today),
            Err(PeriodError::Future)
        );
        assert_eq!(
            check_period(d("2026-06-01"), d("2026-05-01"), today),
            Err(PeriodError::Reversed)
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4, 5], 50), Some(3));
        let v: Vec<i64> = (1..=20).collect();
        assert_eq!(nearest_rank(&v, 90), Some(18));
        assert_eq!(nearest_rank(&v[..11], 90), Some(10));
    }

    #[test]
    fn report_subjects() {
        let none: &[String] = &[];
        assert_eq!(
            subject_request("report", none),
            Some(PeriodRequest::Default)
        );
        assert_eq!(
            subject_request("Rapport: ", none),
            Some(PeriodRequest::Default)
        );
        assert_eq!(
            subject_request("REPORT 2026-01-01..2026-06-30", none),
            Some(PeriodRequest::Period(d("2026-01-01"), d("2026-06-30")))
        );
        assert_eq!(
            subject_request(
                "report [ACME-1234] 2026-01-01 .. 2026-06-30",
                &["ACME-1234".to_string()]
            ),
            Some(PeriodRequest::Period(d("2026-01-01"), d("2026-06-30")))
        );
        assert_eq!(
            subject_request("report 2026-02-30..2026-06-30", none),
            Some(PeriodRequest::Unreadable)
        );
        assert_eq!(subject_request("Reporting a crash", none), None);
        assert_eq!(subject_request("Report of a crash in export", none), None);
        assert_eq!(subject_request("Re: report", none), None);
        assert_eq!(subject_request("rep", none), None);
    }

    #[test]
    fn csv_quotes_what_needs_it_and_durations_read_in_days() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(duration(90 * 60), "1h 30m");
        assert_eq!(duration(86_400 + 3600), "1d 1h");
        assert_eq!(duration(2 * 86_400), "2d");
        assert_eq!(duration(0), "0m");
    }

    #[test]
    fn bars_are_scaled_to_the_largest() {
        let b = bars([("a".to_string(), 2), ("b".to_string(), 4)].into_iter());
        assert_eq!(b[0].fraction, 0.5);
        assert_eq!(b[1].fraction, 1.0);
        assert!(
            bars([("a".to_string(), 0)].into_iter())
                .iter()
                .all(|b| b.fraction == 0.0)
        );
    }
}
