//! Inbound mail that made no ticket change.

use super::Result;
use crate::app::App;
use crate::pipeline::Outcome;
use crate::store::QuarantineRow;

pub async fn list(app: &App, limit: usize) -> Result<Vec<QuarantineRow>> {
    Ok(app.db.read(move |s| s.quarantine(limit)).await?)
}

/// Processes quarantined mail `id` again (its cause fixed, e.g. the sender's key added).
pub async fn replay(app: &App, id: i64) -> Result<Outcome> {
    let p = app.pipeline.clone();
    let outcome = app.db.write(move |s| Ok(p.replay(s, id))).await??;
    Ok(outcome)
}
