//! The tick: every timer due at an instant.

use super::{Result, ServiceError};
use crate::app::App;
use crate::timers::Fired;
use chrono::{DateTime, Utc};

/// `at` as an RFC 3339 instant, or now.
pub fn instant(app: &App, at: Option<&str>) -> Result<DateTime<Utc>> {
    match at {
        Some(a) => Ok(DateTime::parse_from_rfc3339(a)
            .map_err(|e| {
                ServiceError::Invalid(format!(
                    "`{a}` is not an RFC 3339 instant ({e}); write e.g. 2026-11-23T15:30:00Z"
                ))
            })?
            .with_timezone(&Utc)),
        None => Ok(app.clock.now()),
    }
}

/// Fires every timer due at `now`; with `dry_run` nothing is changed or sent.
pub async fn tick(app: &App, now: DateTime<Utc>, dry_run: bool) -> Result<Vec<Fired>> {
    let p = app.pipeline.clone();
    Ok(app
        .db
        .write(move |s| crate::timers::tick(&p, s, now, dry_run))
        .await?)
}
