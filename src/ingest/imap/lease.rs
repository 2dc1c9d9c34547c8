//! The store lease `imap:<name>` that lets one instance at a time read a mailbox.

use super::*;

/// The store lease `imap:<name>` this instance holds (or tries to).
pub(super) struct Lease {
    pub(super) name: String,
    pub(super) holder: String,
    /// Taken for this long, renewed every third of it.
    pub(super) period: Duration,
    /// When it was last taken or renewed.
    pub(super) held: Option<Instant>,
}

impl Lease {
    pub(super) fn new(mailbox: &str, holder: &str, period: Duration) -> Lease {
        Lease {
            name: format!("imap:{mailbox}"),
            holder: holder.to_string(),
            period,
            held: None,
        }
    }

    /// Takes or renews the lease for its period; `false` when another instance has it.
    pub(super) async fn take(&mut self, mb: &Mailbox) -> Result<bool, Failure> {
        let now = mb.clock.now();
        // Measured before the store call: the lease runs from `now`, however long the call.
        let started = Instant::now();
        let until = now + chrono::Duration::from_std(self.period).unwrap_or_default();
        let ok = {
            let (name, holder) = (self.name.clone(), self.holder.clone());
            mb.db
                .read(move |s| s.try_lease(&name, &holder, now, until))
                .await
                .map_err(|e| mb.store_failure(e))?
        };
        if ok && self.held.is_none() {
            tracing::info!(mailbox = %mb.cfg.name, holder = %self.holder,
                "lease taken on this IMAP mailbox: this instance reads it");
        }
        self.held = ok.then_some(started);
        Ok(ok)
    }

    pub(super) fn next_renewal(&self) -> Instant {
        self.held.map_or_else(Instant::now, |t| t + self.period / 3)
    }

    /// Renews the lease when it is due; `false` when it was lost.
    pub(super) async fn keep(&mut self, mb: &Mailbox) -> Result<bool, Failure> {
        if self.held.is_some() && Instant::now() < self.next_renewal() {
            return Ok(true);
        }
        self.take(mb).await
    }
}
