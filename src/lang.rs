//! The languages mail is written in, and the values a context gives already written in the
//! mail's language (times, periods, response targets), so that a template needs no
//! per-language variants of a variable.

use crate::calendar::Calendar;
use chrono::{DateTime, Datelike, Utc};

/// Codes of the languages with a full set of templates ([`Lang`]), as the configuration and
/// the registry accept them.
pub const LANGUAGES: &[&str] = &["en", "fr"];

/// A language with a full set of templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    pub const ALL: &'static [Lang] = &[Lang::En, Lang::Fr];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.iter().copied().find(|l| l.code() == code)
    }

    /// `code`'s language, English when there are no templates for it.
    pub fn or_english(code: &str) -> Lang {
        Lang::parse(code).unwrap_or(Lang::En)
    }

    /// The last lines of a watcher's copy of a ticket's update: how to stop receiving it
    /// (`url`: the watcher's unwatch link, [`crate::auth::unwatch`]).
    pub fn unwatch_footer(self, url: &str) -> String {
        match self {
            Lang::En => format!(
                "-- \nYou receive this because you were copied on this request. To stop receiving \
                 its updates, open {url}\n(or reply with #unwatch).\n"
            ),
            Lang::Fr => format!(
                "-- \nVous recevez ce message car vous étiez en copie de cette demande. Pour ne plus \
                 en recevoir les nouvelles, ouvrez {url}\n(ou répondez #unwatch).\n"
            ),
        }
    }

    /// A length of time in whole minutes: "2 h 30 min", "45 min", "3 d 2 h" (the same
    /// abbreviations in French: "3 j 2 h").
    pub fn duration(self, d: chrono::Duration) -> String {
        let m = d.num_minutes().max(0);
        let (days, hours, mins) = (m / 1440, m / 60 % 24, m % 60);
        let day = match self {
            Lang::En => "d",
            Lang::Fr => "j",
        };
        match (days, hours, mins) {
            (0, 0, m) => format!("{m} min"),
            (0, h, 0) => format!("{h} h"),
            (0, h, m) => format!("{h} h {m} min"),
            (d, 0, _) => format!("{d} {day}"),
            (d, h, _) => format!("{d} {day} {h} h"),
        }
    }

    /// An instant in the calendar's time zone: "Mon 23 Nov 2026 09:30 CST",
    /// "lundi 23 novembre 2026 à 09:30 CST".
    pub fn datetime(self, calendar: &Calendar, at: DateTime<Utc>) -> String {
        match self {
            Lang::En => calendar.local_text(at),
            Lang::Fr => {
                let tz = match calendar {
                    Calendar::Always => chrono_tz::UTC,
                    Calendar::Business(b) => b.time_zone(),
                };
                let local = at.with_timezone(&tz);
                const DAYS: [&str; 7] = [
                    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
                ];
                const MONTHS: [&str; 12] = [
                    "janvier",
                    "février",
                    "mars",
                    "avril",
                    "mai",
                    "juin",
                    "juillet",
                    "août",
                    "septembre",
                    "octobre",
                    "novembre",
                    "décembre",
                ];
                format!(
                    "{} {} {} {} à {}",
                    DAYS[local.weekday().num_days_from_monday() as usize],
                    local.day(),
                    MONTHS[local.month0() as usize],
                    local.year(),
                    local.format("%H:%M %Z"),
                )
            }
        }
    }

    /// A configured period of working time: "2d" → "2 working days" / "2 jours ouvrés",
    /// "48h" → "48 working hours" / "48 heures ouvrées"; anything else as written.
    pub fn period(self, text: &str) -> String {
        let t = text.trim();
        let Some((n, unit)) = split_amount(t) else {
            return t.to_string();
        };
        let s = if n == "1" { "" } else { "s" };
        match (self, unit) {
            (Lang::En, "d") => format!("{n} working day{s}"),
            (Lang::En, "h") => format!("{n} working hour{s}"),
            (Lang::Fr, "d") => format!("{n} jour{s} ouvré{s}"),
            (Lang::Fr, "h") => format!("{n} heure{s} ouvrée{s}"),
            _ => t.to_string(),
        }
    }

    /// A response target as configured ("2h", "1d") with how it is counted:
    /// "2h (working time, dallas calendar)" / "2 heures (temps ouvré, calendrier dallas)",
    /// "30m (24/7)" / "30 minutes (24/7)".
    pub fn response_target(self, text: &str, calendar_name: &str) -> String {
        let always = calendar_name == "24/7";
        match self {
            Lang::En if always => format!("{text} (24/7)"),
            Lang::En => format!("{text} (working time, {calendar_name} calendar)"),
            Lang::Fr if always => format!("{} (24/7)", french_duration(text)),
            Lang::Fr => format!(
                "{} (temps ouvré, calendrier {calendar_name})",
                french_duration(text)
            ),
        }
    }
}

/// "48h" → ("48", "h").
fn split_amount(t: &str) -> Option<(&str, &str)> {
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    (!n.is_empty()).then(|| (n, unit.trim()))
}

/// "2h" → "2 heures", "1d" → "1 jour", "2h 30m" → "2 heures 30 minutes", "asap" → "dès que
/// possible"; anything else as written.
fn french_duration(text: &str) -> String {
    let t = text.trim();
    if t.eq_ignore_ascii_case("asap") {
        return "dès que possible".into();
    }
    let mut parts = Vec::new();
    for word in t.split_whitespace() {
        let Some((n, unit)) = split_amount(word) else {
            return t.to_string();
        };
        let s = if n == "1" { "" } else { "s" };
        let unit = match unit {
            "d" => "jour",
            "h" => "heure",
            "m" | "min" => "minute",
            "s" => "seconde",
            _ => return t.to_string(),
        };
        parts.push(format!("{n} {unit}{s}"));
    }
    if parts.is_empty() {
        t.to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_targets_are_written_in_each_language() {
        assert_eq!(Lang::En.period("2d"), "2 working days");
        assert_eq!(Lang::En.period("1h"), "1 working hour");
        assert_eq!(Lang::Fr.period("2d"), "2 jours ouvrés");
        assert_eq!(Lang::Fr.period("48h"), "48 heures ouvrées");
        assert_eq!(Lang::Fr.period("30m"), "30m");
        assert_eq!(
            Lang::En.response_target("2h", "dallas"),
            "2h (working time, dallas calendar)"
        );
        assert_eq!(Lang::En.response_target("30m", "24/7"), "30m (24/7)");
        assert_eq!(
            Lang::Fr.response_target("1d", "paris"),
            "1 jour (temps ouvré, calendrier paris)"
        );
        assert_eq!(
            Lang::Fr.response_target("2h 30m", "24/7"),
            "2 heures 30 minutes (24/7)"
        );
        assert_eq!(Lang::Fr.response_target("soon", "24/7"), "soon (24/7)");
    }

    #[test]
    fn french_times_name_the_day_and_month_in_french() {
        let at = DateTime::parse_from_rfc3339("2026-08-03T07:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Lang::Fr.datetime(&Calendar::Always, at),
            "lundi 3 août 2026 à 07:05 UTC"
        );
        assert_eq!(
            Lang::En.datetime(&Calendar::Always, at),
            "Mon 03 Aug 2026 07:05 UTC"
        );
    }

    #[test]
    fn languages_match_the_codes_the_configuration_accepts() {
        let codes: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
        assert_eq!(codes, super::LANGUAGES);
        assert_eq!(Lang::or_english("de"), Lang::En);
    }
}
