//! Reading a mailbox: chunks of new UIDs fetched, committed with the mailbox position on
//! the store's writer, and finished, three chunks in flight; failed fetches counted and given
//! up on.

use super::*;

impl Mailbox {
    /// Fetches, commits and finishes `uids` (ascending) chunk by chunk, with three chunks
    /// in flight: while chunk k is committed (on the store's writer), this session applies
    /// the after-action of chunk k−1 and fetches chunk k+1. Commits stay in UID order, and a
    /// chunk is committed only after the one before it committed and lacked nothing, so the
    /// position never passes a UID that was neither stored nor given up on. `Some(end)` when
    /// the task must stop reading (shutdown between chunks, lease lost). UIDs in the range
    /// of a chunk whose fetch failed are fetched one at a time.
    pub(super) async fn process(
        &mut self,
        s: &mut Session,
        uids: &[u32],
        pass: &mut Pass,
        t: &mut Task,
    ) -> Result<Option<End>, Failure> {
        let mut groups: Vec<&[u32]> = Vec::new();
        let mut rest = uids;
        while !rest.is_empty() {
            let one = t
                .mem
                .suspect
                .is_some_and(|(lo, hi)| (lo..=hi).contains(&rest[0]));
            let n = if one {
                1
            } else {
                // A group stops where a suspect range starts.
                rest.iter()
                    .take(self.batch_size.max(1))
                    .take_while(|u| !t.mem.suspect.is_some_and(|(lo, hi)| (lo..=hi).contains(*u)))
                    .count()
                    .max(1)
            };
            groups.push(&rest[..n]);
            rest = &rest[n..];
        }
        // Fetched and not committed yet; committed and not finished yet.
        let mut flight = Flight::default();
        let mut end = None;
        'groups: for group in groups {
            if self.stopped() {
                end = Some(End::Stopped);
                break;
            }
            // A chunk that lacked mail is committed and finished alone: nothing after it is
            // read in this session (the connection may be broken).
            if flight.lacks_mail() {
                break;
            }
            if !t.lease.keep(self).await? {
                return Ok(Some(End::LeaseLost));
            }
            // Mail given up on is not fetched again; the position moves past it.
            let todo: Vec<u32> = group
                .iter()
                .copied()
                .filter(|u| !t.mem.skipped.contains(u))
                .collect();
            let mut sizes: HashMap<u32, usize> = HashMap::with_capacity(todo.len());
            for set in uid_sets(&todo) {
                let fetched = self
                    .fetch(s, &set, "(UID RFC822.SIZE)", COMMAND_TIMEOUT)
                    .await
                    .map_err(|f| self.fetch_failed(f, &todo, &mut t.mem))?;
                for f in fetched {
                    if let (Some(uid), Some(size)) = (f.uid, f.size) {
                        sizes.insert(uid, size as usize);
                    }
                }
            }
            // Chunks of at most CHUNK_BYTES (a larger mail alone).
            let mut start = 0;
            while start < group.len() {
                let mut stop_at = start;
                let mut bytes = 0usize;
                while stop_at < group.len() {
                    let sz = sizes
                        .get(&group[stop_at])
                        .copied()
                        .unwrap_or(0)
                        .min(self.max_message_bytes.saturating_add(1));
                    if stop_at > start && bytes + sz > CHUNK_BYTES {
                        break;
                    }
                    bytes += sz;
                    stop_at += 1;
                }
                let chunk = &group[start..stop_at];
                start = stop_at;
                if self.stopped() {
                    end = Some(End::Stopped);
                    break 'groups;
                }
                if flight.lacks_mail() {
                    break 'groups;
                }
                if let Some(e) = self
                    .step(s, Some((chunk, &sizes)), &mut flight, pass, t)
                    .await?
                {
                    return Ok(Some(e));
                }
            }
        }
        while flight.fetched.is_some() || flight.committed.is_some() {
            if let Some(e) = self.step(s, None, &mut flight, pass, t).await? {
                return Ok(Some(e));
            }
        }
        Ok(end)
    }

    /// One step of [`Mailbox::process`]: commits `flight.fetched` while this session
    /// finishes `flight.committed` and then fetches `next`.
    pub(super) async fn step(
        &mut self,
        s: &mut Session,
        next: Option<(&[u32], &HashMap<u32, usize>)>,
        flight: &mut Flight,
        pass: &mut Pass,
        t: &mut Task,
    ) -> Result<Option<End>, Failure> {
        let mut to_commit = flight.fetched.take();
        let commit = match &mut to_commit {
            Some(f) => {
                // The position: past every UID stored or given up on, up to the first that
                // was not.
                let top = f
                    .chunk
                    .iter()
                    .copied()
                    .take_while(|u| f.fetched.binary_search(u).is_ok() || t.mem.skipped.contains(u))
                    .last()
                    .unwrap_or(0)
                    .max(pass.last);
                f.top = top;
                if f.mails.is_empty() && top <= pass.last {
                    None
                } else {
                    // Renewed right before the commit: a slow fetch may have used up the lease.
                    if !t.lease.keep(self).await? {
                        return Ok(Some(End::LeaseLost));
                    }
                    let state = MailboxState {
                        uid_validity: pass.uid_validity,
                        last_uid: top,
                    };
                    let mails = std::mem::take(&mut f.mails);
                    let declared = std::mem::take(&mut f.declared);
                    // What became of each UID, committed with the mails: only these stored
                    // ones are ever moved or deleted, and given-up ones never.
                    let mut dispositions: Vec<(u32, UidDisposition)> = f
                        .fetched
                        .iter()
                        .map(|u| {
                            if f.header_only.binary_search(u).is_ok() {
                                (*u, UidDisposition::HeaderOnly)
                            } else {
                                (*u, UidDisposition::Stored)
                            }
                        })
                        .collect();
                    dispositions.extend(
                        f.chunk
                            .iter()
                            .filter(|u| **u <= top && t.mem.skipped.contains(u))
                            .map(|u| (*u, UidDisposition::GivenUp)),
                    );
                    let (db, pipeline, name) = (
                        self.db.clone(),
                        self.pipeline.clone(),
                        self.cfg.name.clone(),
                    );
                    let uid_validity = pass.uid_validity;
                    let (telemetry, fetched_at) = (self.telemetry.clone(), Instant::now());
                    Some(async move {
                        pipeline.prefetch(&mails).await; // DNS before the transaction
                        let r = db
                            .write(move |st| {
                                pipeline
                                    .process_declared(st, &mails, &declared, &mut |tx| {
                                        tx.set_uid_dispositions(
                                            &name,
                                            uid_validity,
                                            &dispositions,
                                        )?;
                                        tx.set_mailbox_state(&name, state)
                                    })
                                    .map(|(report, _)| report)
                            })
                            .await;
                        if let Ok(report) = &r {
                            telemetry.batch_committed(report, fetched_at.elapsed());
                        }
                        r
                    })
                }
            }
            None => None,
        };
        let committing = async {
            match commit {
                Some(c) => Some(c.await),
                None => None,
            }
        };
        let finished = flight.committed.take();
        let session = async {
            if let Some(done) = finished {
                self.finish(s, done, pass, &mut t.mem).await?;
            }
            match next {
                Some((chunk, sizes)) => self
                    .fetch_chunk(s, chunk, sizes, pass.uid_validity, &mut t.mem)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (committed, fetched) = tokio::join!(committing, session);
        if let Some(f) = to_commit {
            if let Some(r) = committed {
                let report = r.map_err(|e| self.store_failure(e))?;
                t.out.report.add(&report);
                if report.outbound > 0 {
                    self.deliver.notify_one();
                }
                if f.count > 0 {
                    tracing::info!(mailbox = %self.cfg.name, mails = f.count, created = report.created,
                        appended = report.appended, quarantined = report.quarantined,
                        duplicates = report.duplicates, last_uid = f.top, "IMAP batch committed");
                }
            }
            pass.last = f.top;
            flight.committed = Some(f);
        }
        flight.fetched = fetched?;
        Ok(None)
    }

    /// Fetches one chunk (the mails over the size limit header only).
    pub(super) async fn fetch_chunk(
        &self,
        s: &mut Session,
        chunk: &[u32],
        sizes: &HashMap<u32, usize>,
        uid_validity: u32,
        mem: &mut Memory,
    ) -> Result<Fetched, Failure> {
        let (mut small, mut big) = (Vec::new(), Vec::new());
        for &uid in chunk {
            if mem.skipped.contains(&uid) {
                continue;
            }
            match sizes.get(&uid) {
                None => tracing::warn!(mailbox = %self.cfg.name, uid,
                    "the server gave no size for this mail (deleted by someone else?); not read now, tried again"),
                Some(&sz) if sz > self.max_message_bytes => big.push(uid),
                Some(_) => small.push(uid),
            }
        }
        let mut got: Vec<(u32, Vec<u8>, Option<usize>)> = Vec::with_capacity(chunk.len());
        for (uids, query, header_only) in [
            (&small, "(UID RFC822.SIZE BODY.PEEK[])", false),
            (&big, "(UID RFC822.SIZE BODY.PEEK[HEADER])", true),
        ] {
            for set in uid_sets(uids) {
                let fetched = self
                    .fetch(s, &set, query, FETCH_TIMEOUT)
                    .await
                    .map_err(|f| {
                        let mut all: Vec<u32> = small.iter().chain(&big).copied().collect();
                        all.sort_unstable();
                        self.fetch_failed(f, &all, mem)
                    })?;
                for f in fetched {
                    let Some(uid) = f.uid else { continue };
                    let bytes = if header_only { f.header() } else { f.body() };
                    match bytes {
                        Some(b) => got.push((
                            uid,
                            b.to_vec(),
                            header_only.then(|| sizes.get(&uid).copied()).flatten(),
                        )),
                        None => tracing::error!(mailbox = %self.cfg.name, uid,
                            "the server returned no content for this mail; not read now, tried again"),
                    }
                }
            }
        }
        got.sort_unstable_by_key(|g| g.0);
        got.dedup_by_key(|g| g.0);
        let fetched: Vec<u32> = got.iter().map(|g| g.0).collect();
        let missing: Vec<u32> = chunk
            .iter()
            .copied()
            .filter(|uid| !mem.skipped.contains(uid) && fetched.binary_search(uid).is_err())
            .collect();
        for (uid, _, declared) in &got {
            if let Some(size) = declared {
                tracing::warn!(mailbox = %self.cfg.name, uid, size,
                    limit = self.max_message_bytes,
                    "mail over inbound.max_message_size: header only fetched, quarantined as too large");
            }
        }
        let header_only: Vec<u32> = got.iter().filter(|g| g.2.is_some()).map(|g| g.0).collect();
        let mut declared = Vec::with_capacity(got.len());
        let mails: Vec<RawMail> = got
            .into_iter()
            .map(|(uid, bytes, d)| {
                declared.push(d);
                RawMail {
                    source: format!("imap:{}/{uid_validity}/{uid}", self.cfg.name),
                    bytes,
                }
            })
            .collect();
        Ok(Fetched {
            chunk: chunk.to_vec(),
            count: mails.len(),
            fetched,
            missing,
            header_only,
            mails,
            declared,
            top: 0,
        })
    }

    /// Counts a failed fetch of `uids`: a chunk is fetched one UID at a time next; a UID
    /// that failed alone [`UID_ATTEMPTS`] times is given up on. Returns the failure to end
    /// the session with (the connection may be broken).
    pub(super) fn fetch_failed(&self, f: Failure, uids: &[u32], mem: &mut Memory) -> Failure {
        mem.retry = true;
        match uids {
            [] => f,
            [uid] => {
                self.uid_failed(*uid, mem);
                f
            }
            [lo, .., hi] => {
                mem.suspect = Some((*lo, *hi));
                Failure {
                    what: f.what,
                    hint: format!("{}; UIDs {lo}..{hi} are fetched one at a time next", f.hint),
                }
            }
        }
    }

    /// Counts one failure to get `uid`; gives up on it after [`UID_ATTEMPTS`].
    pub(super) fn uid_failed(&self, uid: u32, mem: &mut Memory) {
        mem.retry = true;
        let n = mem.failures.entry(uid).or_insert(0);
        *n += 1;
        mem.unsaved.push((uid, *n));
        if *n >= UID_ATTEMPTS {
            mem.failures.remove(&uid);
            mem.skipped.insert(uid);
            tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host,
                folder = %self.cfg.folder, uid, attempts = UID_ATTEMPTS,
                "the server could not return this mail: given up on it, it is left in the folder and NOT processed (flagged {SKIPPED_KEYWORD} when the server allows); check the message on the server (damaged or unreadable file?), then copy it back into the folder as a new message to have it read");
        }
    }

    /// `UID FETCH`; the time limit applies to each response (lack of progress), not to the
    /// whole command, so that a chunk of many mails on a slow link is not cut off.
    pub(super) async fn fetch(
        &self,
        s: &mut Session,
        set: &str,
        query: &str,
        limit: Duration,
    ) -> Result<Vec<Fetch>, Failure> {
        async {
            let stream = timed(limit, s.uid_fetch(set, query)).await?;
            tokio::pin!(stream);
            let mut all = Vec::new();
            while let Some(f) = timed(limit, stream.try_next()).await? {
                all.push(f);
            }
            Ok(all)
        }
        .await
        .map_err(|e: async_imap::error::Error| {
            self.fail(
                format!("UID FETCH {set} {query} failed: {e}"),
                "check the server; nothing from this chunk was committed, it is read again",
            )
        })
    }

    /// After a chunk's commit: the after-action, the keyword on mail given up on, and the
    /// failure for UIDs the server did not return (they are read again one at a time).
    pub(super) async fn finish(
        &self,
        s: &mut Session,
        done: Fetched,
        pass: &mut Pass,
        mem: &mut Memory,
    ) -> Result<(), Failure> {
        match self.after(s, &done.fetched, &done.header_only, pass).await {
            Ok(()) => {
                if let (Some(&lo), Some(&hi)) = (done.fetched.first(), done.fetched.last()) {
                    self.forget(pass.uid_validity, lo, hi).await;
                }
            }
            Err(f) => {
                // Committed: new mail goes on; the after-action is retried at the next pass.
                tracing::error!(mailbox = %self.cfg.name, host = %self.cfg.host, "{f}");
                mem.after_pending = true;
            }
        }
        // Mail given up on in this chunk: marked so that no later catch-up (even after a
        // restart, when this memory is gone) moves or deletes it. Best effort, once.
        let unmarked: Vec<u32> = done
            .chunk
            .iter()
            .copied()
            .filter(|u| *u <= pass.last && mem.skipped.contains(u) && mem.marked.insert(*u))
            .collect();
        for set in uid_sets(&unmarked) {
            let r = timed(COMMAND_TIMEOUT, async {
                s.uid_store(&set, format!("+FLAGS.SILENT ({SKIPPED_KEYWORD})"))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(mailbox = %self.cfg.name, uids = %set, error = %e,
                    "could not flag mail given up on with {SKIPPED_KEYWORD}; it is left alone while this process runs");
            }
        }
        let missing = done.missing;
        if !missing.is_empty() {
            // A UID is counted only when it failed alone; in a larger chunk, the missing
            // ones (a broken connection cuts off all that follow) are read one at a time next.
            let asked = done
                .chunk
                .iter()
                .filter(|u| !mem.skipped.contains(u))
                .count();
            if asked > 1 {
                mem.retry = true;
                mem.suspect = Some((missing[0], missing[missing.len() - 1]));
            } else {
                for &uid in &missing {
                    self.uid_failed(uid, mem);
                }
            }
            return Err(self.fail(
                format!(
                    "the server returned no content or no size for UID(s) {}",
                    uid_sets(&missing).join(",")
                ),
                format!(
                    "they stay in the folder and are tried again (given up after {UID_ATTEMPTS} attempts each)"
                ),
            ));
        }
        Ok(())
    }
}

/// One chunk read from the server, on its way to the store and then to its after-action.
pub(super) struct Fetched {
    /// The UIDs the chunk was asked for (ascending).
    chunk: Vec<u32>,
    /// The UIDs the server returned (ascending).
    fetched: Vec<u32>,
    /// Asked for, not given up on, and not returned.
    missing: Vec<u32>,
    /// Stored header only (over `inbound.max_message_size`).
    header_only: Vec<u32>,
    /// The mails, handed to the commit (then empty), with their declared sizes.
    mails: Vec<RawMail>,
    declared: Vec<Option<usize>>,
    count: usize,
    /// The position its commit recorded.
    top: u32,
}

/// The chunks of [`Mailbox::process`] between the session and the store.
#[derive(Default)]
pub(super) struct Flight {
    fetched: Option<Fetched>,
    committed: Option<Fetched>,
}

impl Flight {
    /// The chunk waiting for its commit lacks mail the server did not return.
    fn lacks_mail(&self) -> bool {
        self.fetched.as_ref().is_some_and(|f| !f.missing.is_empty())
    }
}

/// UID sets for commands: runs compressed (`1:5,7`), at most `RANGES_PER_COMMAND` ranges each.
/// `uids` ascending.
pub(super) fn uid_sets(uids: &[u32]) -> Vec<String> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match ranges.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(u) => *hi = u,
            Some((_, hi)) if *hi == u => {}
            _ => ranges.push((u, u)),
        }
    }
    ranges
        .chunks(RANGES_PER_COMMAND)
        .map(|rs| {
            rs.iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}:{hi}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}
