//! Business calendars for SLA clocks (SPEC §5).
//!
//! A [`Calendar`] says which instants count as working time: [`Calendar::Always`] (24/7) or a
//! [`Business`] calendar, i.e. a time zone, working intervals per weekday in local time
//! (`[start, end)`, several per day allowed, an interval may end at 24:00) and holiday dates on
//! which nothing is working time. Customers describe calendars in the registry TOML
//! ([`CalendarSpec`], an enum: `Always` or `Business(BusinessSpec)`), either as the literal
//! `"24/7"` or as a table:
//!
//! ```toml
//! [calendars.dallas]
//! time_zone = "America/Chicago"
//! hours = { mon = "08:00-17:00", fri = "08:00-12:00,13:00-17:00" }   # missing day = closed
//! holidays = ["2026-11-26", "2026-12-25"]
//! day_length = "9h"   # optional; default: the longest day's total hours
//! ```
//!
//! # Semantics
//! - **Local time, real instants.** Each day's intervals are read in that day's local time and
//!   turned into real instants, so a working interval that contains a DST change is one hour
//!   shorter (spring) or longer (autumn). A local time that does not exist (skipped by a
//!   spring-forward gap) means the first instant after the gap; an ambiguous local time
//!   (repeated by a fall-back) means its earlier occurrence. "24:00" is the next day's 00:00.
//!   A holiday removes that date's own intervals, including one ending at 24:00.
//! - **[`Calendar::add`]`(start, work)`** is the instant at which `work` of working time has
//!   elapsed counting from `start`. A start outside working time counts from the next working
//!   instant. Work that runs out exactly at the end of an interval yields that end (Friday
//!   17:00, not Monday 08:00). Zero or negative work returns `start` unchanged, even outside
//!   working hours. On `Always` it is plain addition.
//! - **[`Calendar::working_between`]`(a, b)`** is the working time in `[a, b)`, zero if
//!   `b <= a`. For `work > 0`, `working_between(s, add(s, work)) == work`.
//! - **Targets.** [`Calendar::parse_target`] reads "2h", "90m", "1d", "1h30m": hours and
//!   minutes are working time, and "Nd" is N × [`Calendar::day_length`] of working time (N
//!   *working days*; on `Always` a day is 24h). So with 9h days, 1 working day from Friday
//!   16:30 in a 08:00–17:00 calendar ends Monday 16:30.
//! - **Bounded work.** Computation walks day by day (never minute by minute) and looks at most
//!   [`HORIZON_DAYS`] local days (about 400 years) ahead: `add` that cannot finish within the
//!   horizon returns [`DateTime::<Utc>::MAX_UTC`] ("never"), `working_between` counts at most
//!   the horizon, `next_working_instant` returns `MAX_UTC` if nothing is working in it.
//!   [`Calendar::from_spec`] refuses a week without working hours, so in practice the next
//!   working instant is always days away. Nothing here reads the wall clock or panics.
//! - **Spec errors.** [`CalendarError`] names the field as written (`time_zone`, `hours.tue`,
//!   `holidays[1]`, `day_length`) and says what to write instead; the registry can put the
//!   calendar's own place in front with [`CalendarError::prefixed`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::ControlFlow;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// How many local days ahead of a starting instant the calendar arithmetic looks at most
/// (one Gregorian cycle, about 400 years).
pub const HORIZON_DAYS: i64 = 146_097;

/// The longest target [`Calendar::parse_target`] accepts, in 24-hour days (about 100 years).
const MAX_TARGET_DAYS: i64 = 36_500;

const DAY_SECS: u32 = 86_400;

/// The key under which the `toml` crate hands a TOML date value (`2026-12-25` without quotes)
/// to a deserializer.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Which instants count for an SLA clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Calendar {
    /// Round the clock: every instant is working time.
    Always,
    /// Working hours in a time zone, minus holidays.
    Business(Business),
}

/// A business-hours calendar. Built by [`Calendar::from_spec`], which guarantees at least one
/// working interval in the week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Business {
    tz: Tz,
    /// Working intervals per weekday, Monday first: sorted, non-empty, non-overlapping.
    week: Box<[Vec<Span>; 7]>,
    holidays: BTreeSet<NaiveDate>,
    day_length: Duration,
}

/// A local-time interval `[start, end)` in seconds since midnight; `start < end <= 86_400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: u32,
    end: u32,
}

/// A calendar as written in the registry: the string `"24/7"` or a [`BusinessSpec`] table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarSpec {
    /// `"24/7"`.
    Always,
    /// `{ time_zone = ..., hours = { ... }, holidays = [...], day_length = ... }`.
    Business(BusinessSpec),
}

/// The table form of a calendar. Values stay text here; [`Calendar::from_spec`] checks them
/// and names the offending field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessSpec {
    /// IANA time zone name, e.g. "America/Chicago".
    pub time_zone: String,
    /// Weekday (`mon`..`sun` or `monday`..`sunday`) → "HH:MM-HH:MM[,HH:MM-HH:MM...]".
    /// A missing day, "" or "closed" is a day without working time.
    #[serde(default)]
    pub hours: BTreeMap<String, String>,
    /// Local dates "YYYY-MM-DD" (quoted, or TOML dates) without working time.
    #[serde(default, deserialize_with = "holiday_texts")]
    pub holidays: Vec<String>,
    /// How much working time "1d" means, e.g. "9h" or "7h30m"; default: the longest day.
    #[serde(default)]
    pub day_length: Option<String>,
}

/// A calendar spec that cannot be used: which field, what is wrong, what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct CalendarError {
    /// The field as written in the spec, e.g. `time_zone`, `hours.mon`, `holidays[2]`.
    pub field: String,
    pub problem: String,
}

impl CalendarError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        CalendarError {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Puts the calendar's place in the file in front of the field, e.g. `calendars.dallas`.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

impl Calendar {
    /// Checks a spec and builds the calendar. Every error names the field and says what to
    /// write instead.
    pub fn from_spec(spec: &CalendarSpec) -> Result<Calendar, CalendarError> {
        match spec {
            CalendarSpec::Always => Ok(Calendar::Always),
            CalendarSpec::Business(spec) => Business::from_spec(spec).map(Calendar::Business),
        }
    }

    /// An instant as people of this calendar read it: `Mon 23 Nov 2026 09:30 CST`
    /// (UTC for `Always`).
    pub fn local_text(&self, at: DateTime<Utc>) -> String {
        match self {
            Calendar::Always => at.format("%a %d %b %Y %H:%M UTC").to_string(),
            Calendar::Business(b) => at
                .with_timezone(&b.time_zone())
                .format("%a %d %b %Y %H:%M %Z")
                .to_string(),
        }
    }

    /// How much working time one working day ("1d") is: 24h for `Always`.
    pub fn day_length(&self) -> Duration {
        match self {
            Calendar::Always => Duration::hours(24),
            Calendar::Business(b) => b.day_length,
        }
    }

    /// Whether `at` is working time (inside an interval: start included, end excluded).
    pub fn is_working(&self, at: DateTime<Utc>) -> bool {
        match self {
            Calendar::Always => true,
            Calendar::Business(b) => b
                .walk(at, |start, _| ControlFlow::Break(start == at))
                .unwrap_or(false),
        }
    }

    /// `at` itself if it is working time, otherwise the start of the next working interval
    /// (`MAX_UTC` if there is none within [`HORIZON_DAYS`]).
    pub fn next_working_instant(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Calendar::Always => at,
            Calendar::Business(b) => b
                .walk(at, |start, _| ControlFlow::Break(start))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The instant at which `work` of working time has elapsed counting from `start`.
    /// Zero or negative work returns `start`; otherwise counting begins at the next working
    /// instant, and work ending exactly at an interval's end returns that end. Saturates at
    /// `MAX_UTC`.
    pub fn add(&self, start: DateTime<Utc>, work: Duration) -> DateTime<Utc> {
        if work <= Duration::zero() {
            return start;
        }
        match self {
            Calendar::Always => start
                .checked_add_signed(work)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Calendar::Business(b) => {
                let mut left = work;
                b.walk(start, |from, to| {
                    let here = to - from;
                    if left <= here {
                        ControlFlow::Break(from.checked_add_signed(left).unwrap_or(to))
                    } else {
                        left -= here;
                        ControlFlow::Continue(())
                    }
                })
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        }
    }

    /// Working time in `[a, b)`; zero if `b <= a`.
    pub fn working_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::zero();
        }
        match self {
            Calendar::Always => b - a,
            Calendar::Business(cal) => {
                let mut total = Duration::zero();
                cal.walk(a, |from, to| {
                    if from >= b {
                        return ControlFlow::Break(());
                    }
                    total += to.min(b) - from;
                    ControlFlow::Continue(())
                });
                total
            }
        }
    }

    /// The local date at `at` in this calendar's time zone (UTC for `Always`).
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        match self {
            Calendar::Always => at.date_naive(),
            Calendar::Business(b) => b.local_date(at),
        }
    }

    /// Whether `date` (local) is a business day: not a holiday and with working hours on its
    /// weekday. Every day is one on `Always`.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        match self {
            Calendar::Always => true,
            Calendar::Business(b) => {
                !b.holidays.contains(&date)
                    && !b.week[date.weekday().num_days_from_monday() as usize].is_empty()
            }
        }
    }

    /// The first instant of local `date` (local midnight; after a DST gap at midnight, the
    /// first instant after it). `MAX_UTC` at the end of chrono's range.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        let tz = match self {
            Calendar::Always => chrono_tz::UTC,
            Calendar::Business(b) => b.tz,
        };
        local_instant(tz, date, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Reads an SLA target such as "2h", "90m", "1d", "3d" or "1h30m" as working time:
    /// hours and minutes as they are, "Nd" as N × [`Calendar::day_length`].
    pub fn parse_target(&self, text: &str) -> Result<Duration, String> {
        let parts = parse_amounts(text, true)?;
        let day = self.day_length().num_seconds();
        let mut seconds: i64 = 0;
        for (amount, unit) in parts {
            let per_unit = match unit {
                Unit::Day => day,
                Unit::Hour => 3_600,
                Unit::Minute => 60,
            };
            seconds = amount
                .checked_mul(per_unit)
                .and_then(|s| seconds.checked_add(s))
                .filter(|s| *s <= MAX_TARGET_DAYS * i64::from(DAY_SECS))
                .ok_or_else(|| {
                    format!(
                        "target \"{text}\" is too long: at most {} hours (about 100 years)",
                        MAX_TARGET_DAYS * 24
                    )
                })?;
        }
        Duration::try_seconds(seconds).ok_or_else(|| format!("target \"{text}\" is too long"))
    }
}

impl Business {
    fn from_spec(spec: &BusinessSpec) -> Result<Business, CalendarError> {
        let tz = parse_time_zone(&spec.time_zone)?;
        let week = parse_week(&spec.hours)?;
        let mut holidays = BTreeSet::new();
        for (i, text) in spec.holidays.iter().enumerate() {
            let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                CalendarError::new(
                    format!("holidays[{i}]"),
                    format!("\"{text}\" is not a date: write YYYY-MM-DD, e.g. \"2026-12-25\""),
                )
            })?;
            holidays.insert(date);
        }
        let longest = week
            .iter()
            .map(|spans| {
                spans
                    .iter()
                    .map(|s| i64::from(s.end - s.start))
                    .sum::<i64>()
            })
            .max()
            .unwrap_or(0);
        let day_length = match &spec.day_length {
            None => Duration::seconds(longest),
            Some(text) => parse_day_length(text)?,
        };
        Ok(Business {
            tz,
            week: Box::new(week),
            holidays,
            day_length,
        })
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Whether `date` (local) is a holiday.
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.contains(&date)
    }

    /// The local date at `at` (the UTC date where the local one would leave chrono's range).
    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        let utc = at.naive_utc();
        let offset = self.tz.offset_from_utc_datetime(&utc).fix();
        utc.checked_add_offset(offset).unwrap_or(utc).date()
    }

    /// Feeds `visit` the working intervals, as real instants in time order, that end after
    /// `from`, the first clipped to start no earlier than `from`. Returns what `visit` breaks
    /// with, or `None` once [`HORIZON_DAYS`] local days (or the end of time) have passed.
    fn walk<B>(
        &self,
        from: DateTime<Utc>,
        mut visit: impl FnMut(DateTime<Utc>, DateTime<Utc>) -> ControlFlow<B>,
    ) -> Option<B> {
        let today = self.local_date(from);
        // After a fall-back across midnight, yesterday's last interval can still be running.
        let mut date = today.pred_opt().unwrap_or(today);
        for _ in 0..=HORIZON_DAYS + 1 {
            if !self.holidays.contains(&date) {
                let weekday = date.weekday().num_days_from_monday() as usize;
                for span in &self.week[weekday] {
                    let (Some(start), Some(end)) = (
                        local_instant(self.tz, date, span.start),
                        local_instant(self.tz, date, span.end),
                    ) else {
                        continue;
                    };
                    // `end <= start` when the whole interval lies in a DST gap.
                    if end <= from || end <= start {
                        continue;
                    }
                    if let ControlFlow::Break(found) = visit(start.max(from), end) {
                        return Some(found);
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// The real instant of local time `secs` after midnight of `date` in `tz` (86 400 = next
/// day's 00:00). Ambiguous → the earlier; skipped by a gap → the first instant after the gap.
fn local_instant(tz: Tz, date: NaiveDate, secs: u32) -> Option<DateTime<Utc>> {
    let (date, secs) = if secs >= DAY_SECS {
        (date.succ_opt()?, secs - DAY_SECS)
    } else {
        (date, secs)
    };
    let mut local = date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)?);
    // Gaps end on a whole minute and last at most a day (Samoa skipped 2011-12-30), so the
    // first existing minute at or after `local` is found within 48 hours of minutes.
    for _ in 0..48 * 60 {
        if let Some(at) = tz.from_local_datetime(&local).earliest() {
            return Some(at.with_timezone(&Utc));
        }
        local = local.checked_add_signed(Duration::minutes(1))?;
    }
    None
}

fn parse_time_zone(text: &str) -> Result<Tz, CalendarError> {
    let name = text.trim();
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let problem = if name.is_empty() {
        "no time zone given: use an IANA name such as America/Chicago".to_owned()
    } else {
        match closest_time_zone(name) {
            Some(near) => format!(
                "unknown time zone \"{name}\": did you mean {near}? Use an IANA name such as \
                 America/Chicago"
            ),
            None => format!(
                "unknown time zone \"{name}\": use an IANA name such as America/Chicago or \
                 Europe/Paris (not an abbreviation like CST)"
            ),
        }
    };
    Err(CalendarError::new("time_zone", problem))
}

/// The IANA name nearest to a misspelt one (at most 3 edits, case ignored).
fn closest_time_zone(name: &str) -> Option<&'static str> {
    if name.chars().count() > 64 {
        return None;
    }
    let wanted: Vec<char> = name.to_lowercase().chars().collect();
    chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            let candidate: Vec<char> = tz.name().to_lowercase().chars().collect();
            (edit_distance(&wanted, &candidate), tz.name())
        })
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

fn parse_week(hours: &BTreeMap<String, String>) -> Result<[Vec<Span>; 7], CalendarError> {
    let mut week: [Vec<Span>; 7] = Default::default();
    let mut seen: [Option<&str>; 7] = [None; 7];
    for (key, text) in hours {
        let field = format!("hours.{key}");
        let lower = key.trim().to_ascii_lowercase();
        let Some(day) = (0..7).find(|&d| lower == WEEKDAYS[d] || lower == WEEKDAY_NAMES[d]) else {
            return Err(CalendarError::new(
                field,
                format!("unknown day \"{key}\": use mon, tue, wed, thu, fri, sat or sun"),
            ));
        };
        if let Some(first) = seen[day] {
            return Err(CalendarError::new(
                field,
                format!(
                    "{} is given twice (as \"{first}\" and \"{key}\"): keep one",
                    WEEKDAYS[day]
                ),
            ));
        }
        seen[day] = Some(key);
        week[day] = parse_day(text).map_err(|problem| CalendarError::new(field, problem))?;
    }
    if week.iter().all(Vec::is_empty) {
        return Err(CalendarError::new(
            "hours",
            "no working hours in the week: give at least one day, e.g. hours = { mon = \
             \"08:00-17:00\" }, or write the calendar as \"24/7\"",
        ));
    }
    Ok(week)
}

/// "08:00-12:00,13:00-17:00" → sorted spans, touching ones merged.
fn parse_day(text: &str) -> Result<Vec<Span>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let how = "write HH:MM-HH:MM in 24-hour time, e.g. \"08:00-17:00\" or \
               \"08:00-12:00,13:00-17:00\"";
    let mut spans = Vec::new();
    for piece in trimmed.split(',').map(str::trim) {
        let Some((from, to)) = piece.split_once('-') else {
            return Err(format!("\"{piece}\" is not an interval: {how}"));
        };
        let (Some(start), Some(end)) = (parse_clock(from.trim()), parse_clock(to.trim())) else {
            return Err(format!("\"{piece}\" is not an interval: {how}"));
        };
        if start == DAY_SECS {
            return Err(format!(
                "\"{piece}\" starts at 24:00: 24:00 can only end an interval"
            ));
        }
        if end <= start {
            return Err(format!(
                "\"{piece}\" does not end after it starts: an interval lies within one day; \
                 split overnight hours, e.g. mon = \"22:00-24:00\" and tue = \"00:00-06:00\""
            ));
        }
        spans.push(Span { start, end });
    }
    spans.sort();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start < last.end => {
                return Err(format!(
                    "intervals {} and {} overlap: list each working period once, e.g. \
                     \"08:00-12:00,13:00-17:00\"",
                    show_span(*last),
                    show_span(span)
                ));
            }
            Some(last) if span.start == last.end => last.end = span.end,
            _ => merged.push(span),
        }
    }
    Ok(merged)
}

/// "HH:MM" (hour may be one digit) → seconds since midnight; "24:00" → 86 400.
fn parse_clock(text: &str) -> Option<u32> {
    let (hour, minute) = text.split_once(':')?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hour, 1..=2) || !digits(minute, 2..=2) {
        return None;
    }
    let (hour, minute): (u32, u32) = (hour.parse().ok()?, minute.parse().ok()?);
    match (hour, minute) {
        (24, 0) => Some(DAY_SECS),
        (0..=23, 0..=59) => Some(hour * 3_600 + minute * 60),
        _ => None,
    }
}

fn show_span(span: Span) -> String {
    let clock = |s: u32| format!("{:02}:{:02}", s / 3_600, s % 3_600 / 60);
    format!("{}-{}", clock(span.start), clock(span.end))
}

fn parse_day_length(text: &str) -> Result<Duration, CalendarError> {
    let problem = |what: String| CalendarError::new("day_length", what);
    let mut seconds: i64 = 0;
    for (amount, unit) in parse_amounts(text, false).map_err(problem)? {
        let per_unit = if unit == Unit::Hour { 3_600 } else { 60 };
        seconds = amount
            .checked_mul(per_unit)
            .and_then(|s| seconds.checked_add(s))
            .unwrap_or(i64::MAX);
    }
    if seconds <= 0 || seconds > i64::from(DAY_SECS) {
        return Err(problem(format!(
            "\"{text}\" is not a working-day length: give more than 0 and at most 24 hours, \
             e.g. \"9h\" or \"7h30m\""
        )));
    }
    Ok(Duration::seconds(seconds))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Day,
    Hour,
    Minute,
}

/// "1d 4h", "1h30m", "90 minutes" → [(amount, unit)]. Whole numbers only.
fn parse_amounts(text: &str, days_allowed: bool) -> Result<Vec<(i64, Unit)>, String> {
    let example = if days_allowed {
        "e.g. \"2h\", \"90m\", \"1d\" or \"1h30m\""
    } else {
        "e.g. \"9h\" or \"7h30m\""
    };
    let units = if days_allowed {
        "d (working days), h (hours) or m (minutes)"
    } else {
        "h (hours) or m (minutes)"
    };
    let mut parts = Vec::new();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!(
            "empty length: write a number and a unit, {example}"
        ));
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!(
                "\"{text}\" is not a length: write a whole number and a unit, {example}"
            ));
        }
        let (number, after) = rest.split_at(digits);
        if after.starts_with(['.', ',']) {
            return Err(format!(
                "\"{text}\": write whole numbers of smaller units instead of fractions, {example}"
            ));
        }
        let amount: i64 = number
            .parse()
            .map_err(|_| format!("\"{text}\" is too long: the number is too large"))?;
        let after = after.trim_start();
        let letters = after.len() - after.trim_start_matches(|c: char| c.is_alphabetic()).len();
        let (word, after) = after.split_at(letters);
        let unit = match word.to_lowercase().as_str() {
            "d" | "day" | "days" if days_allowed => Unit::Day,
            "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hour,
            "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minute,
            "" => {
                return Err(format!(
                    "\"{text}\" has a number without a unit: use {units}, {example}"
                ));
            }
            _ => return Err(format!("\"{text}\": unknown unit \"{word}\"; use {units}")),
        };
        parts.push((amount, unit));
        rest = after.trim_start();
    }
    Ok(parts)
}

impl<'de> Deserialize<'de> for CalendarSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;

        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = CalendarSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"24/7\" or a table with time_zone and hours")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<CalendarSpec, E> {
                if value.trim() == "24/7" {
                    Ok(CalendarSpec::Always)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(value), &self))
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CalendarSpec, A::Error> {
                BusinessSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(CalendarSpec::Business)
            }
        }

        deserializer.deserialize_any(SpecVisitor)
    }
}

/// Holidays as text: quoted strings, or TOML dates which the `toml` crate presents as a map
/// with one private key.
fn holiday_texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct HolidayText(String);

    impl<'de> Deserialize<'de> for HolidayText {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct TextVisitor;

            impl<'de> Visitor<'de> for TextVisitor {
                type Value = HolidayText;

                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a date such as \"2026-12-25\"")
                }

                fn visit_str<E: de::Error>(self, value: &str) -> Result<HolidayText, E> {
                    Ok(HolidayText(value.to_owned()))
                }

                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HolidayText, A::Error> {
                    match map.next_entry::<String, String>()? {
                        Some((key, value))
                            if key == TOML_DATETIME_KEY
                                && map.next_key::<de::IgnoredAny>()?.is_none() =>
                        {
                            Ok(HolidayText(value))
                        }
                        _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
                    }
                }
            }

            deserializer.deserialize_any(TextVisitor)
        }
    }

    Ok(Vec::<HolidayText>::deserialize(deserializer)?
        .into_iter()
        .map(|h| h.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar(toml_text: &str) -> Calendar {
        let spec: CalendarSpec = toml::from_str(toml_text).expect("spec parses");
        Calendar::from_spec(&spec).expect("valid calendar")
    }

    fn spec_error(toml_text: &str) -> CalendarError {
        let spec: CalendarSpec = toml::from_str(toml_text).expect("spec parses");
        Calendar::from_spec(&spec).expect_err("spec should be refused")
    }

    const DALLAS: &str = r#"
        time_zone = "America/Chicago"
        hours = { mon = "08:00-17:00", tue = "08:00-17:00", wed = "08:00-17:00", thu = "08:00-17:00", fri = "08:00-17:00" }
        holidays = ["2026-11-26", "2026-12-25"]
        day_length = "9h"
    "#;

    const LUNCH: &str = r#"
        time_zone = "Europe/Paris"
        hours = { mon = "08:00-12:00,13:00-17:00", tue = "08:00-12:00,13:00-17:00", wed = "13:00-17:00, 08:00-12:00", thu = "08:00-12:00,13:00-17:00", fri = "08:00-12:00,13:00-16:00" }
        holidays = [2026-05-01]
    "#;

    fn tz_of(cal: &Calendar) -> Tz {
        match cal {
            Calendar::Business(b) => b.time_zone(),
            Calendar::Always => Tz::UTC,
        }
    }

    /// "2026-11-20 16:30" local in the calendar's zone (earliest if ambiguous).
    fn local(cal: &Calendar, text: &str) -> DateTime<Utc> {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("time");
        tz_of(cal)
            .from_local_datetime(&naive)
            .earliest()
            .expect("local time exists")
            .with_timezone(&Utc)
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn xmpro_sev1_friday_1630_two_working_hours_is_due_monday_0930() {
        let dallas = calendar(DALLAS);
        let start = local(&dallas, "2026-11-20 16:30");
        let target = dallas.parse_target("2h").expect("target");
        assert_eq!(dallas.add(start, target), utc("2026-11-23T15:30:00Z"));
        assert_eq!(
            dallas.add(start, target),
            local(&dallas, "2026-11-23 09:30")
        );
    }

    #[test]
    fn xmpro_one_working_day_from_friday_1630_is_monday_1630() {
        let dallas = calendar(DALLAS);
        let start = local(&dallas, "2026-11-20 16:30");
        let one_day = dallas.parse_target("1d").expect("target");
        assert_eq!(one_day, Duration::hours(9));
        assert_eq!(dallas.add(start, one_day), utc("2026-11-23T22:30:00Z"));
        // Sev 3: three working days → Wednesday 16:30.
        let three = dallas.parse_target("3d").expect("target");
        assert_eq!(dallas.add(start, three), local(&dallas, "2026-11-25 16:30"));
    }

    #[test]
    fn xmpro_thanksgiving_is_skipped() {
        let dallas = calendar(DALLAS);
        let wednesday = local(&dallas, "2026-11-25 16:30");
        assert_eq!(
            dallas.add(wednesday, Duration::hours(2)),
            local(&dallas, "2026-11-27 09:30")
        );
        assert_eq!(
            dallas.add(wednesday, dallas.day_length()),
            local(&dallas, "2026-11-27 16:30")
        );
        assert!(!dallas.is_working(local(&dallas, "2026-11-26 10:00")));
        assert_eq!(
            dallas.next_working_instant(local(&dallas, "2026-11-26 10:00")),
            local(&dallas, "2026-11-27 08:00")
        );
    }

    #[test]
    fn lunch_break_is_not_working_time() {
        let cal = calendar(LUNCH);
        let start = local(&cal, "2026-06-03 11:00");
        assert_eq!(
            cal.add(start, Duration::hours(2)),
            local(&cal, "2026-06-03 14:00")
        );
        assert!(!cal.is_working(local(&cal, "2026-06-03 12:30")));
        assert_eq!(
            cal.next_working_instant(local(&cal, "2026-06-03 12:30")),
            local(&cal, "2026-06-03 13:00")
        );
        // Default day length: the longest day (8h), not Friday's 7h.
        assert_eq!(cal.day_length(), Duration::hours(8));
        assert_eq!(
            cal.working_between(
                local(&cal, "2026-06-05 00:00"),
                local(&cal, "2026-06-06 00:00")
            ),
            Duration::hours(7)
        );
    }

    #[test]
    fn start_before_opening_counts_from_opening() {
        let dallas = calendar(DALLAS);
        let early = local(&dallas, "2026-11-23 06:10");
        assert_eq!(
            dallas.add(early, Duration::hours(2)),
            local(&dallas, "2026-11-23 10:00")
        );
        assert_eq!(
            dallas.next_working_instant(early),
            local(&dallas, "2026-11-23 08:00")
        );
    }

    #[test]
    fn start_on_sunday_counts_from_monday_opening() {
        let dallas = calendar(DALLAS);
        let sunday = local(&dallas, "2026-11-22 11:00");
        assert_eq!(
            dallas.add(sunday, Duration::minutes(90)),
            local(&dallas, "2026-11-23 09:30")
        );
        assert_eq!(
            dallas.working_between(sunday, local(&dallas, "2026-11-23 08:00")),
            Duration::zero()
        );
    }

    #[test]
    fn zero_or_negative_work_returns_start_even_outside_hours() {
        let dallas = calendar(DALLAS);
        let sunday = local(&dallas, "2026-11-22 11:00");
        assert_eq!(dallas.add(sunday, Duration::zero()), sunday);
        assert_eq!(dallas.add(sunday, Duration::hours(-3)), sunday);
        assert_eq!(Calendar::Always.add(sunday, Duration::hours(-3)), sunday);
    }

    #[test]
    fn work_ending_at_closing_time_is_due_at_closing_not_next_opening() {
        let dallas = calendar(DALLAS);
        let start = local(&dallas, "2026-11-20 16:00");
        assert_eq!(
            dallas.add(start, Duration::hours(1)),
            local(&dallas, "2026-11-20 17:00")
        );
        assert!(dallas.is_working(local(&dallas, "2026-11-20 08:00")));
        assert!(!dallas.is_working(local(&dallas, "2026-11-20 17:00")));
        assert!(dallas.is_working(local(&dallas, "2026-11-20 16:59")));
    }

    #[test]
    fn working_between_across_weekend_and_holiday_is_sum_of_intervals() {
        let dallas = calendar(DALLAS);
        // Wed 10:00 → Mon 10:00: Wed 7h + (Thu holiday) + Fri 9h + Mon 2h.
        let a = local(&dallas, "2026-11-25 10:00");
        let b = local(&dallas, "2026-11-30 10:00");
        assert_eq!(dallas.working_between(a, b), Duration::hours(18));
        assert_eq!(dallas.working_between(b, a), Duration::zero());
        assert_eq!(dallas.working_between(a, a), Duration::zero());

        let lunch = calendar(LUNCH);
        // Thu 2026-04-30 11:30 → Mon 2026-05-04 09:00: Thu 0.5h + 4h, Fri 1 May holiday,
        // Mon 1h.
        let a = local(&lunch, "2026-04-30 11:30");
        let b = local(&lunch, "2026-05-04 09:00");
        assert_eq!(lunch.working_between(a, b), Duration::minutes(330));
    }

    /// xorshift64*: deterministic pseudo-random numbers without extra crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform-ish in `0..n` for `n >= 1`.
        fn below(&mut self, n: i64) -> i64 {
            let n = n.unsigned_abs().max(1);
            i64::try_from(self.next() % n).expect("below n, which came from an i64")
        }
    }

    #[test]
    fn add_and_working_between_are_inverse_over_generated_cases() {
        let calendars = [
            calendar(DALLAS),
            calendar(LUNCH),
            calendar(
                r#"
                time_zone = "Europe/Paris"
                hours = { sat = "20:00-24:00", sun = "00:00-03:30,09:00-09:01", wed = "01:15-02:45" }
                holidays = ["2026-10-25"]
                "#,
            ),
            Calendar::Always,
        ];
        let base = utc("2026-01-01T00:00:00Z");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for cal in &calendars {
            for _ in 0..400 {
                // Starts anywhere in 2026–2027, to the second; work up to ~300 hours.
                let start = base + Duration::seconds(rng.below(2 * 365 * 86_400));
                let work = Duration::seconds(1 + rng.below(300 * 3_600));
                let end = cal.add(start, work);
                assert!(end > start);
                assert_eq!(cal.working_between(start, end), work, "{start} + {work}");
                // Splitting the work anywhere gives the same due time.
                let first = Duration::seconds(1 + rng.below(work.num_seconds()));
                if first < work {
                    assert_eq!(cal.add(cal.add(start, first), work - first), end);
                }
                // Counting back from an arbitrary instant lands at or before it.
                let b = start + Duration::seconds(rng.below(40 * 86_400));
                let worked = cal.working_between(start, b);
                let due = cal.add(start, worked);
                assert!(due <= b || worked.is_zero());
                assert_eq!(cal.working_between(due.min(b), b), Duration::zero());
                // Additivity over a split point.
                let mid = start + (b - start) / 2;
                assert_eq!(
                    cal.working_between(start, mid) + cal.working_between(mid, b),
                    worked
                );
            }
        }
    }

    /// Minute-by-minute count with `is_working`, as an independent check (tests only).
    fn brute_minutes(cal: &Calendar, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        let mut t = a;
        let mut count = 0;
        while t < b {
            if cal.is_working(t) {
                count += 1;
            }
            t += Duration::minutes(1);
        }
        count
    }

    #[test]
    fn working_between_matches_minute_count_across_dst_weeks() {
        let cases = [
            (
                calendar(
                    r#"
                    time_zone = "America/Chicago"
                    hours = { sun = "00:00-06:00,22:30-24:00", mon = "00:00-03:00,08:00-17:00" }
                    "#,
                ),
                ["2026-03-06 12:00", "2026-10-30 12:00"],
            ),
            (
                calendar(
                    r#"
                    time_zone = "Europe/Paris"
                    hours = { sun = "01:30-02:30,02:45-03:15", mon = "08:00-18:00" }
                    "#,
                ),
                ["2026-03-27 12:00", "2026-10-23 12:00"],
            ),
        ];
        for (cal, starts) in &cases {
            for start in starts {
                let a = local(cal, start);
                let b = a + Duration::days(5);
                assert_eq!(
                    cal.working_between(a, b),
                    Duration::minutes(brute_minutes(cal, a, b)),
                    "week from {start}"
                );
            }
        }
    }

    #[test]
    fn paris_monday_after_spring_change_still_has_ten_working_hours() {
        let paris = calendar(
            r#"
            time_zone = "Europe/Paris"
            hours = { mon = "08:00-18:00", sun = "00:00-24:00" }
            "#,
        );
        let monday = local(&paris, "2026-03-30 00:00");
        assert_eq!(
            paris.working_between(monday, monday + Duration::days(1)),
            Duration::hours(10)
        );
        assert_eq!(
            paris.add(local(&paris, "2026-03-30 08:00"), Duration::hours(10)),
            utc("2026-03-30T16:00:00Z")
        );
        // The change day itself (02:00 → 03:00) has 23 real hours; autumn's has 25.
        let spring =
            paris.working_between(utc("2026-03-28T00:00:00Z"), utc("2026-03-30T00:00:00Z"));
        assert_eq!(spring, Duration::hours(23));
        let autumn =
            paris.working_between(utc("2026-10-24T00:00:00Z"), utc("2026-10-26T00:00:00Z"));
        assert_eq!(autumn, Duration::hours(25));
    }

    #[test]
    fn chicago_fall_back_sunday_has_an_extra_hour_and_monday_is_normal() {
        let chicago = calendar(
            r#"
            time_zone = "America/Chicago"
            hours = { sun = "00:00-06:00", mon = "08:00-17:00" }
            "#,
        );
        let sunday = local(&chicago, "2026-11-01 00:00");
        assert_eq!(sunday, utc("2026-11-01T05:00:00Z")); // still CDT
        assert_eq!(
            chicago.working_between(sunday, sunday + Duration::days(2)),
            Duration::hours(7 + 9)
        );
        // Sunday's work ends at 06:00 CST = 12:00Z, 7 real hours after it began.
        assert_eq!(
            chicago.add(sunday, Duration::hours(7)),
            utc("2026-11-01T12:00:00Z")
        );
        // 1 more hour carries over to Monday 08:00 CST.
        assert_eq!(
            chicago.add(sunday, Duration::hours(8)),
            utc("2026-11-02T15:00:00Z")
        );
        // Spring: the Sunday of 2026-03-08 loses an hour.
        let spring = local(&chicago, "2026-03-08 00:00");
        assert_eq!(
            chicago.working_between(spring, spring + Duration::days(1)),
            Duration::hours(5)
        );
    }

    #[test]
    fn nonexistent_local_times_start_after_the_gap_and_ambiguous_ones_at_the_earlier() {
        let chicago = calendar(
            r#"
            time_zone = "America/Chicago"
            hours = { sun = "02:30-04:00" }
            "#,
        );
        // 2026-03-08 02:30 does not exist; work starts at 03:00 CDT = 08:00Z.
        let saturday = utc("2026-03-07T12:00:00Z");
        assert_eq!(
            chicago.next_working_instant(saturday),
            utc("2026-03-08T08:00:00Z")
        );
        assert_eq!(
            chicago.working_between(saturday, saturday + Duration::days(2)),
            Duration::hours(1)
        );

        let ambiguous = calendar(
            r#"
            time_zone = "America/Chicago"
            hours = { sun = "01:30-03:00" }
            "#,
        );
        // 2026-11-01 01:30 happens twice; the earlier (CDT, 06:30Z) counts, until 03:00 CST.
        let saturday = utc("2026-10-31T12:00:00Z");
        assert_eq!(
            ambiguous.next_working_instant(saturday),
            utc("2026-11-01T06:30:00Z")
        );
        assert_eq!(
            ambiguous.working_between(saturday, saturday + Duration::days(2)),
            Duration::minutes(150)
        );

        let in_gap = calendar(
            r#"
            time_zone = "America/Chicago"
            hours = { sun = "02:10-02:50,05:00-06:00" }
            "#,
        );
        // An interval entirely inside the gap has no working time that day.
        let saturday = utc("2026-03-07T12:00:00Z");
        assert_eq!(
            in_gap.next_working_instant(saturday),
            local(&in_gap, "2026-03-08 05:00")
        );
    }

    #[test]
    fn always_add_is_plain_addition() {
        let always =
            Calendar::from_spec(&toml::from_str::<Holder>("c = \"24/7\"").expect("toml").c)
                .expect("valid");
        assert_eq!(always, Calendar::Always);
        let start = utc("2026-11-20T22:30:00Z");
        assert_eq!(
            always.add(start, Duration::minutes(150)),
            start + Duration::minutes(150)
        );
        assert_eq!(
            always.working_between(start, start + Duration::days(3)),
            Duration::days(3)
        );
        assert!(always.is_working(start));
        assert_eq!(always.next_working_instant(start), start);
        assert_eq!(always.day_length(), Duration::hours(24));
        assert_eq!(always.parse_target("1d"), Ok(Duration::hours(24)));
        assert_eq!(
            always.add(DateTime::<Utc>::MAX_UTC, Duration::hours(1)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[derive(Deserialize)]
    struct Holder {
        c: CalendarSpec,
    }

    #[test]
    fn parse_target_reads_working_hours_minutes_and_days() {
        let dallas = calendar(DALLAS);
        assert_eq!(dallas.parse_target("2h"), Ok(Duration::hours(2)));
        assert_eq!(dallas.parse_target("90m"), Ok(Duration::minutes(90)));
        assert_eq!(dallas.parse_target("1d"), Ok(Duration::hours(9)));
        assert_eq!(dallas.parse_target(" 3d "), Ok(Duration::hours(27)));
        assert_eq!(dallas.parse_target("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(
            dallas.parse_target("1 day 4 hours"),
            Ok(Duration::hours(13))
        );
        for bad in [
            "",
            "h",
            "2",
            "1.5h",
            "2w",
            "-1h",
            "99999999999999999999h",
            "876001h",
            "100000d",
            "2h!",
        ] {
            let err = dallas.parse_target(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
        assert!(
            dallas
                .parse_target("1.5h")
                .expect_err("fraction")
                .contains("1h30m")
        );
        assert!(
            dallas
                .parse_target("2w")
                .expect_err("unit")
                .contains("unknown unit")
        );
    }

    #[test]
    fn day_length_defaults_to_longest_day_and_can_be_set() {
        assert_eq!(calendar(DALLAS).day_length(), Duration::hours(9));
        assert_eq!(calendar(LUNCH).day_length(), Duration::hours(8));
        let custom = calendar(
            r#"
            time_zone = "UTC"
            hours = { mon = "08:00-18:00" }
            day_length = "7h30m"
            "#,
        );
        assert_eq!(custom.day_length(), Duration::minutes(450));
        for bad in ["9", "0h", "25h", "1d", "nine hours"] {
            let err = spec_error(&format!(
                "time_zone = \"UTC\"\nhours = {{ mon = \"08:00-17:00\" }}\nday_length = \"{bad}\""
            ));
            assert_eq!(err.field, "day_length", "{bad}");
        }
    }

    #[test]
    fn spec_error_bad_time_zone_names_field_and_suggests() {
        let err = spec_error("time_zone = \"America/Dalas\"\nhours = { mon = \"08:00-17:00\" }");
        assert_eq!(err.field, "time_zone");
        assert!(err.problem.contains("America/Dalas"), "{err}");
        assert!(err.problem.contains("America/Chicago"), "{err}");
        let err = spec_error("time_zone = \"europe/pariss\"\nhours = { mon = \"08:00-17:00\" }");
        assert!(err.problem.contains("did you mean Europe/Paris"), "{err}");
        let err = spec_error("time_zone = \"CST\"\nhours = { mon = \"08:00-17:00\" }");
        assert_eq!(err.field, "time_zone");
    }

    #[test]
    fn spec_error_badly_written_hours_names_the_day() {
        let err =
            spec_error("time_zone = \"UTC\"\nhours = { mon = \"08:00-17:00\", tue = \"8-17\" }");
        assert_eq!(err.field, "hours.tue");
        assert!(err.problem.contains("\"08:00-17:00\""), "{err}");
        for bad in [
            "08:00",
            "08:00-25:00",
            "08:60-17:00",
            "24:00-24:00",
            "17:00-08:00",
            "08:00-08:00",
            "8h-17h",
        ] {
            let err = spec_error(&format!(
                "time_zone = \"UTC\"\nhours = {{ wed = \"{bad}\" }}"
            ));
            assert_eq!(err.field, "hours.wed", "{bad}");
        }
        let err = spec_error("time_zone = \"UTC\"\nhours = { wensday = \"08:00-17:00\" }");
        assert_eq!(err.field, "hours.wensday");
        let err = spec_error(
            "time_zone = \"UTC\"\nhours = { mon = \"08:00-17:00\", monday = \"08:00-17:00\" }",
        );
        assert!(err.field.starts_with("hours.mon"));
        // 24:00 may end an interval, one-digit hours are fine, touching intervals merge.
        let ok = calendar(
            "time_zone = \"UTC\"\nhours = { fri = \"8:00-12:00,12:00-24:00\", sat = \"closed\" }",
        );
        assert_eq!(ok.day_length(), Duration::hours(16));
    }

    #[test]
    fn spec_error_overlapping_intervals_names_the_day() {
        let err = spec_error("time_zone = \"UTC\"\nhours = { thu = \"08:00-12:00,11:00-17:00\" }");
        assert_eq!(err.field, "hours.thu");
        assert!(
            err.problem.contains("08:00-12:00 and 11:00-17:00 overlap"),
            "{err}"
        );
    }

    #[test]
    fn spec_error_empty_week_names_hours() {
        let err = spec_error("time_zone = \"UTC\"\nhours = { sat = \"\" }");
        assert_eq!(err.field, "hours");
        assert!(err.problem.contains("24/7"), "{err}");
        assert_eq!(spec_error("time_zone = \"UTC\"").field, "hours");
    }

    #[test]
    fn spec_error_bad_holiday_date_names_its_index() {
        let err = spec_error(
            "time_zone = \"UTC\"\nhours = { mon = \"08:00-17:00\" }\nholidays = [\"2026-12-25\", \"2026-13-01\"]",
        );
        assert_eq!(err.field, "holidays[1]");
        assert!(err.problem.contains("YYYY-MM-DD"), "{err}");
        assert_eq!(
            err.clone().prefixed("calendars.dallas").to_string(),
            format!("calendars.dallas.holidays[1]: {}", err.problem)
        );
    }

    #[test]
    fn registry_toml_accepts_24_7_tables_and_bare_dates() {
        #[derive(Deserialize)]
        struct Registry {
            calendars: BTreeMap<String, CalendarSpec>,
        }
        let registry: Registry = toml::from_str(
            r#"
            [calendars]
            ox = "24/7"

            [calendars.dallas]
            time_zone = "America/Chicago"
            hours = { mon = "08:00-17:00", fri = "08:00-12:00,13:00-17:00" }
            holidays = [2026-11-26, "2026-12-25"]
            "#,
        )
        .expect("registry parses");
        assert_eq!(registry.calendars["ox"], CalendarSpec::Always);
        let CalendarSpec::Business(dallas) = &registry.calendars["dallas"] else {
            panic!("dallas is a business calendar");
        };
        assert_eq!(dallas.holidays, ["2026-11-26", "2026-12-25"]);
        let cal = Calendar::from_spec(&registry.calendars["dallas"]).expect("valid");
        assert!(
            matches!(&cal, Calendar::Business(b) if b.is_holiday(NaiveDate::from_ymd_opt(2026, 11, 26).expect("date")))
        );

        let typo = toml::from_str::<Registry>("[calendars.x]\ntimezone = \"UTC\"");
        assert!(
            typo.err()
                .expect("unknown field")
                .to_string()
                .contains("timezone")
        );
        let word = toml::from_str::<Registry>("[calendars]\nx = \"9-5\"");
        assert!(word.err().expect("not 24/7").to_string().contains("24/7"));
    }

    #[test]
    fn extreme_inputs_neither_panic_nor_hang() {
        let cals = [
            calendar(DALLAS),
            calendar(LUNCH),
            calendar("time_zone = \"Pacific/Kiritimati\"\nhours = { sun = \"00:00-24:00\" }"),
        ];
        let extremes = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MAX_UTC - Duration::days(3),
            DateTime::<Utc>::MIN_UTC + Duration::days(3),
        ];
        for cal in &cals {
            for &at in &extremes {
                let _ = cal.is_working(at);
                let _ = cal.next_working_instant(at);
                let _ = cal.add(at, Duration::hours(10));
                let _ = cal.working_between(
                    at,
                    at + Duration::days(1).min(DateTime::<Utc>::MAX_UTC - at),
                );
            }
            let start = utc("2026-01-01T00:00:00Z");
            assert_eq!(cal.add(start, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        }
    }

    #[test]
    fn year_long_spans_are_exact() {
        let dallas = calendar(DALLAS);
        let a = local(&dallas, "2026-01-01 00:00");
        let b = local(&dallas, "2028-01-01 00:00");
        let mut expected = Duration::zero();
        let mut day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
        while day.year() < 2028 {
            let holiday = day == NaiveDate::from_ymd_opt(2026, 11, 26).expect("date")
                || day == NaiveDate::from_ymd_opt(2026, 12, 25).expect("date");
            if day.weekday().num_days_from_monday() < 5 && !holiday {
                expected += Duration::hours(9);
            }
            day = day.succ_opt().expect("next day");
        }
        assert_eq!(dallas.working_between(a, b), expected);
        assert_eq!(dallas.add(a, expected), local(&dallas, "2027-12-31 17:00"));
    }
}
