//! One raw mail, as an MTA pipe hands it over.

use super::Result;
use crate::app::App;
use crate::pipeline::{Outcome, RawMail};

/// Processes `raw` in a transaction of its own; `Ok` once its effects are committed (or it
/// is quarantined), an error when it could not be stored and must be handed over again.
pub async fn ingest(app: &App, raw: RawMail) -> Result<Outcome> {
    let p = app.pipeline.clone();
    p.prefetch(std::slice::from_ref(&raw)).await; // DNS before the transaction
    let (_, mut outcomes) = app
        .db
        .write(move |s| p.process(s, std::slice::from_ref(&raw)))
        .await?;
    Ok(outcomes.pop().unwrap_or(Outcome::Duplicate))
}
