//! The suppression list (bounces): addresses no automatic mail goes to, and lifting one.

use super::{Result, ServiceError};
use crate::app::App;
use crate::store::Suppression;

/// Every suppressed address, by address (`suppressions list --json`).
pub async fn list(app: &App) -> Result<Vec<Suppression>> {
    Ok(app.db.read(|s| s.suppressions()).await?)
}

/// Takes `address` off the list (and forgets its soft-bounce score), so automatic mail goes
/// to it again.
pub async fn remove(app: &App, address: &str) -> Result<()> {
    let address = address.trim().to_ascii_lowercase();
    if !address.contains('@') {
        return Err(ServiceError::Invalid(format!(
            "`{address}` is not an address"
        )));
    }
    let a = address.clone();
    let removed = app
        .db
        .write(move |s| {
            let mut tx = s.write()?;
            let removed = tx.remove_suppression(&a)?;
            tx.commit()?;
            Ok(removed)
        })
        .await?;
    if removed {
        tracing::info!(address = %address, "suppression lifted");
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!(
            "{address} is not on the suppression list"
        )))
    }
}
