//! What happens to mail once its effects are committed: the after-action (move, flag or
//! delete), the catch-up of mail committed before a crash (only UIDs the store records as
//! stored), and dropping the records of finished mail. The only place that moves or deletes
//! mail.

use super::*;

impl Mailbox {
    /// Applies the after-action to mail at or below the position that is still in the folder
    /// (interrupted after its commit, or its after-action failed). Only UIDs the store
    /// records as stored (whole or header only) are candidates: the record was committed
    /// with the mail, so mail given up on, or never read, is never moved or deleted, whatever
    /// happened between a commit and its after-action. In delete mode mail stored header
    /// only is flagged `\Seen` and left. Not downloaded again.
    pub(super) async fn catch_up(
        &mut self,
        s: &mut Session,
        pass: &mut Pass,
        t: &mut Task,
    ) -> Result<(), Failure> {
        t.mem.after_pending = false;
        let last = pass.last;
        if last == 0 {
            return Ok(());
        }
        let (name, uidv) = (self.cfg.name.clone(), pass.uid_validity);
        let recorded = self
            .db
            .read(move |st| st.uid_states(&name, uidv))
            .await
            .map_err(|e| self.store_failure(e))?;
        let (mut stored, mut header_only) = (Vec::new(), Vec::new());
        for r in recorded.iter().filter(|r| r.uid <= last) {
            match r.disposition {
                UidDisposition::Stored => stored.push(r.uid),
                UidDisposition::HeaderOnly => {
                    stored.push(r.uid);
                    header_only.push(r.uid);
                }
                UidDisposition::GivenUp | UidDisposition::Failing => {}
            }
        }
        let (Some(&lo), Some(&hi)) = (stored.first(), stored.last()) else {
            return Ok(());
        };
        let query = match self.cfg.after {
            AfterAction::Flag | AfterAction::Delete => {
                format!("UID {lo}:{hi} UNSEEN NOT KEYWORD {SKIPPED_KEYWORD}")
            }
            AfterAction::Move => format!("UID {lo}:{hi} NOT KEYWORD {SKIPPED_KEYWORD}"),
        };
        let mut left: Vec<u32> = self
            .search(s, &query)
            .await?
            .into_iter()
            .filter(|u| stored.binary_search(u).is_ok() && !t.mem.skipped.contains(u))
            .collect();
        left.sort_unstable();
        if !left.is_empty() {
            tracing::warn!(mailbox = %self.cfg.name, mails = left.len(),
                "mail committed before but still in the folder (interrupted after commit, or its after-action failed): finishing it");
            let keep: Vec<u32> = header_only
                .into_iter()
                .filter(|u| left.binary_search(u).is_ok())
                .collect();
            if let Err(f) = self.after(s, &left, &keep, pass).await {
                tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host, "{f}");
                t.mem.after_pending = true;
                return Ok(());
            }
        }
        // Done, or no longer in the folder (moved, flagged or deleted before a crash).
        self.forget(pass.uid_validity, lo, hi).await;
        Ok(())
    }

    /// Drops the records of stored UIDs `lo..=hi` once their after-action is done (best
    /// effort: a record left behind only costs a catch-up search).
    pub(super) async fn forget(&self, uid_validity: u32, lo: u32, hi: u32) {
        let name = self.cfg.name.clone();
        if let Err(e) = self
            .db
            .read(move |st| st.forget_uids(&name, uid_validity, lo, hi))
            .await
        {
            tracing::warn!(mailbox = %self.cfg.name, error = %e,
                "could not drop the records of finished mail; the next catch-up looks at it again");
        }
    }

    /// Moves, flags or deletes committed mail (`uids`). In delete mode, mail stored header
    /// only (`header_only`, a subset) is never deleted: it is flagged `\Seen` and left.
    pub(super) async fn after(
        &self,
        s: &mut Session,
        uids: &[u32],
        header_only: &[u32],
        pass: &mut Pass,
    ) -> Result<(), Failure> {
        let to = &self.cfg.move_to;
        let (uids, keep): (Vec<u32>, Vec<u32>) = if self.cfg.after == AfterAction::Delete {
            uids.iter().partition(|u| !header_only.contains(u))
        } else {
            (uids.to_vec(), Vec::new())
        };
        let action = match self.cfg.after {
            AfterAction::Move => format!("moving processed mail to {to}"),
            AfterAction::Flag => "flagging processed mail \\Seen".to_string(),
            AfterAction::Delete => "deleting processed mail".to_string(),
        };
        let folder = &self.cfg.folder;
        let hint = match self.cfg.after {
            AfterAction::Move => format!(
                "its effects are committed; it stays in {folder} and the move is retried at the next pass without downloading it again: check that {to} exists and is writable, and the account's quota ({})",
                self.key("move_to")
            ),
            _ => format!(
                "its effects are committed; it stays in {folder} and this is retried at the next pass without downloading it again: check the folder's permissions and the account's quota"
            ),
        };
        for set in uid_sets(&keep) {
            let r = timed(COMMAND_TIMEOUT, async {
                s.uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await;
            match r {
                Ok(_) => tracing::warn!(mailbox = %self.cfg.name, folder = %folder, uids = %set,
                    "mail over inbound.max_message_size kept only its header here: NOT deleted, left in {folder} flagged \\Seen; delete it there by hand once handled"),
                Err(e) => {
                    return Err(self.fail(
                        format!("flagging too-large mail {set} \\Seen in {folder} failed: {e}"),
                        "it is not deleted (only its header was stored); check the folder's permissions",
                    ));
                }
            }
        }
        for set in uid_sets(&uids) {
            let r = timed(COMMAND_TIMEOUT, async {
                match self.cfg.after {
                    AfterAction::Move if pass.can_move => s.uid_mv(&set, to).await.map(|()| 0),
                    AfterAction::Move => {
                        s.uid_copy(&set, to).await?;
                        delete(s, &set, pass.uidplus).await
                    }
                    AfterAction::Flag => {
                        s.uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                            .await?
                            .try_collect::<Vec<_>>()
                            .await?;
                        Ok(0)
                    }
                    AfterAction::Delete => delete(s, &set, pass.uidplus).await,
                }
            })
            .await;
            match r {
                Ok(expunged) => pass.exists = pass.exists.saturating_sub(expunged),
                Err(e) => {
                    return Err(self.fail(format!("{action} (UIDs {set}) failed: {e}"), hint));
                }
            }
        }
        Ok(())
    }
}

/// Deletes `set`: `\Deleted`, then `UID EXPUNGE` (UIDPLUS) or `EXPUNGE`; the number of
/// messages expunged.
pub(super) async fn delete(
    s: &mut Session,
    set: &str,
    uidplus: bool,
) -> async_imap::error::Result<u32> {
    s.uid_store(set, "+FLAGS.SILENT (\\Deleted)")
        .await?
        .try_collect::<Vec<_>>()
        .await?;
    let gone = if uidplus {
        s.uid_expunge(set).await?.try_collect::<Vec<_>>().await?
    } else {
        s.expunge().await?.try_collect::<Vec<_>>().await?
    };
    Ok(u32::try_from(gone.len()).unwrap_or(u32::MAX))
}
