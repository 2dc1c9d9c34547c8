//! The notice rule for planned maintenance (OX "Maintenance Communication"): a planned
//! maintenance is announced at least [`REQUIRED_BUSINESS_DAYS`] business days ahead, counted
//! in the calendar of the list it is announced on. Pure: the caller gives "now".
//!
//! **How days are counted.** The business days ahead of a start are the business days
//! ([`Calendar::is_business_day`]: not a holiday, with working hours on its weekday) among
//! the local dates after today, up to and including the start's own date. So scheduling on
//! a Friday for the Tuesday after is 2 (Monday, Tuesday) and is refused; for the Wednesday
//! it is 3 and accepted, at any hour of that Wednesday (maintenance usually runs at night,
//! outside working hours). The earliest allowed start is therefore local midnight of the
//! third business day after today, which is what a refusal names.

use chrono::{DateTime, NaiveDate, Utc};

use crate::calendar::{Calendar, HORIZON_DAYS};

/// Business days of notice a planned maintenance needs.
pub const REQUIRED_BUSINESS_DAYS: u32 = 3;

/// A planned start too close to now: how many business days it gave, and the earliest start
/// the rule allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooShortNotice {
    pub business_days: u32,
    pub required: u32,
    pub earliest_start: DateTime<Utc>,
}

/// Accepts `start` (returning its business days of notice, counted up to `required`) or
/// refuses it naming the earliest allowed start.
pub fn check(
    calendar: &Calendar,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    required: u32,
) -> Result<u32, TooShortNotice> {
    let days = business_days_ahead(calendar, now, start, required);
    if days >= required {
        Ok(days)
    } else {
        Err(TooShortNotice {
            business_days: days,
            required,
            earliest_start: earliest_start(calendar, now, required),
        })
    }
}

/// Business days among the local dates after `now`'s, up to and including `start`'s;
/// counting stops at `cap` (so a start years ahead costs no more than one weeks ahead).
pub fn business_days_ahead(
    calendar: &Calendar,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    cap: u32,
) -> u32 {
    let today = calendar.local_date(now);
    let last = calendar.local_date(start);
    let mut count = 0;
    for date in days_after(today).take_while(|d| *d <= last) {
        if count >= cap {
            break;
        }
        if calendar.is_business_day(date) {
            count += 1;
        }
    }
    count
}

/// Local midnight of the `required`-th business day after `now`'s local date (`now`'s own
/// instant when `required` is 0; `MAX_UTC` if the calendar has no such day within
/// [`HORIZON_DAYS`]).
pub fn earliest_start(calendar: &Calendar, now: DateTime<Utc>, required: u32) -> DateTime<Utc> {
    if required == 0 {
        return now;
    }
    let mut count = 0;
    for date in days_after(calendar.local_date(now)) {
        if calendar.is_business_day(date) {
            count += 1;
            if count == required {
                return calendar.start_of_day(date);
            }
        }
    }
    DateTime::<Utc>::MAX_UTC
}

/// The dates after `today`, at most [`HORIZON_DAYS`] of them.
fn days_after(today: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    today
        .iter_days()
        .skip(1)
        .take(usize::try_from(HORIZON_DAYS).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CalendarSpec;

    /// Paris office hours, Monday to Friday, Christmas off.
    fn paris() -> Calendar {
        let spec: CalendarSpec = toml::from_str(
            r#"
            time_zone = "Europe/Paris"
            hours = { mon = "09:00-18:00", tue = "09:00-18:00", wed = "09:00-18:00", thu = "09:00-18:00", fri = "09:00-18:00" }
            holidays = ["2026-12-25"]
            "#,
        )
        .unwrap();
        Calendar::from_spec(&spec).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    // Friday 4 December 2026, 15:00 in Paris.
    const FRIDAY: &str = "2026-12-04T15:00:00+01:00";

    #[test]
    fn friday_for_tuesday_is_two_business_days_and_refused_naming_wednesday_midnight() {
        let cal = paris();
        let tuesday = at("2026-12-08T22:00:00+01:00");
        assert_eq!(business_days_ahead(&cal, at(FRIDAY), tuesday, 3), 2);
        let refused = check(&cal, at(FRIDAY), tuesday, REQUIRED_BUSINESS_DAYS).unwrap_err();
        assert_eq!(refused.business_days, 2);
        assert_eq!(refused.required, 3);
        assert_eq!(refused.earliest_start, at("2026-12-09T00:00:00+01:00"));
    }

    #[test]
    fn friday_for_wednesday_is_three_and_accepted_even_at_night() {
        let cal = paris();
        assert_eq!(
            check(&cal, at(FRIDAY), at("2026-12-09T00:00:00+01:00"), 3),
            Ok(3)
        );
        assert_eq!(
            check(&cal, at(FRIDAY), at("2026-12-09T23:30:00+01:00"), 3),
            Ok(3)
        );
        // One second earlier is still Tuesday: refused.
        assert!(check(&cal, at(FRIDAY), at("2026-12-08T23:59:59+01:00"), 3).is_err());
    }

    #[test]
    fn the_weekend_and_holidays_do_not_count() {
        let cal = paris();
        // Tuesday 22 Dec 2026: Wed 23, Thu 24, (Fri 25 holiday), (Sat, Sun), Mon 28.
        let tuesday = at("2026-12-22T10:00:00+01:00");
        assert_eq!(
            business_days_ahead(&cal, tuesday, at("2026-12-27T10:00:00+01:00"), 9),
            2
        );
        assert_eq!(
            earliest_start(&cal, tuesday, 3),
            at("2026-12-28T00:00:00+01:00")
        );
    }

    #[test]
    fn today_and_the_past_give_no_notice() {
        let cal = paris();
        let now = at(FRIDAY);
        assert_eq!(
            business_days_ahead(&cal, now, at("2026-12-04T23:00:00+01:00"), 3),
            0
        );
        assert_eq!(
            business_days_ahead(&cal, now, at("2026-11-01T10:00:00+01:00"), 3),
            0
        );
    }

    #[test]
    fn days_are_local_to_the_calendar_not_utc() {
        let cal = paris();
        // Thursday 23:30 UTC is already Friday in Paris: the local date decides.
        let thursday_late_utc = at("2026-12-03T23:30:00Z"); // Friday 00:30 in Paris
        assert_eq!(
            earliest_start(&cal, thursday_late_utc, 3),
            at("2026-12-09T00:00:00+01:00")
        );
    }

    #[test]
    fn always_counts_every_day() {
        let cal = Calendar::Always;
        let friday = at("2026-12-04T15:00:00Z");
        assert_eq!(
            business_days_ahead(&cal, friday, at("2026-12-08T01:00:00Z"), 9),
            4
        );
        assert_eq!(earliest_start(&cal, friday, 3), at("2026-12-07T00:00:00Z"));
    }

    #[test]
    fn a_far_start_counts_only_up_to_the_cap() {
        let cal = paris();
        assert_eq!(
            business_days_ahead(&cal, at(FRIDAY), at("2400-01-01T00:00:00Z"), 3),
            3
        );
        assert_eq!(earliest_start(&cal, at(FRIDAY), 0), at(FRIDAY));
    }
}
