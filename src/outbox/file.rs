//! The file transport's writes: each message a `.eml` file that is on disk under its name
//! before the send counts as done, with one folder fsync shared by the sends that finished
//! meanwhile (a group commit) instead of one per message.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The outbound folder, and the state of its group fsync.
pub struct FileOutbox {
    dir: PathBuf,
    /// Files renamed into place so far: a rename takes the next number, its ticket.
    renamed: AtomicU64,
    /// The highest ticket a finished folder fsync covers. Held while one runs, so fsyncs
    /// never overlap and the sends that finish meanwhile wait for the next one.
    synced: tokio::sync::Mutex<u64>,
    /// Folder fsyncs done (each covers every rename before it started).
    syncs: AtomicU64,
}

impl FileOutbox {
    pub fn new(dir: PathBuf) -> FileOutbox {
        FileOutbox {
            dir,
            renamed: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Folder fsyncs done so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Writes `bytes` as `name`; once this returns `Ok`, the whole file is on disk under its
    /// name ([`write_file`], then the folder's fsync). The file's own write and fsync run off
    /// the runtime; the folder fsync is shared: the first send to find none running starts
    /// one covering every rename so far, and a send whose rename an fsync started after
    /// already covers returns without one.
    pub async fn write(&self, name: String, bytes: Vec<u8>) -> io::Result<()> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_file(&dir, &name, &bytes))
            .await
            .map_err(|e| io::Error::other(format!("the write stopped: {e}")))??;
        let ticket = self.renamed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            return Ok(());
        }
        // Every rename counted by now happened before this fsync starts.
        let upto = self.renamed.load(Ordering::SeqCst);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || sync_dir(&dir))
            .await
            .map_err(|e| io::Error::other(format!("the folder fsync stopped: {e}")))??;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = upto;
        Ok(())
    }

    /// Holds the group fsync, as a folder fsync under way does (tests).
    #[cfg(test)]
    async fn hold(&self) -> tokio::sync::MutexGuard<'_, u64> {
        self.synced.lock().await
    }

    /// Renames so far (tests).
    #[cfg(test)]
    fn renamed(&self) -> u64 {
        self.renamed.load(Ordering::SeqCst)
    }
}

/// Writes `bytes` to `dir/name` so that the file's whole content is on disk before it
/// appears under its name: written under a temporary name, fsynced, then renamed. A reader
/// never sees a partial file; on error the temporary file is removed. The rename survives a
/// power loss only once the folder is fsynced ([`FileOutbox::write`] does that).
/// Blocking: run it off the runtime.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(name))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp); // may not exist: nothing else to do
        return Err(e);
    }
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Elsewhere a folder cannot be opened for fsync; the rename is as durable as it gets.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_written_file_is_whole_under_its_name_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![b'x'; 300_000];
        write_file(dir.path(), "00000001-ack.eml", &body).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("00000001-ack.eml")).unwrap(),
            body
        );
        // Written again (a repeated attempt): replaced whole.
        write_file(dir.path(), "00000001-ack.eml", b"second").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("00000001-ack.eml")).unwrap(),
            b"second"
        );
        assert_eq!(
            names(dir.path()),
            ["00000001-ack.eml"],
            "no temporary file left"
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The final name is taken by a folder that is not empty: the rename fails.
        std::fs::create_dir(dir.path().join("00000002-ack.eml")).unwrap();
        std::fs::write(dir.path().join("00000002-ack.eml/keep"), b"k").unwrap();
        assert!(write_file(dir.path(), "00000002-ack.eml", b"body").is_err());
        assert_eq!(
            names(dir.path()),
            ["00000002-ack.eml"],
            "temporary file left behind"
        );
        // A folder that does not exist: an error, nothing created.
        let gone = dir.path().join("gone");
        assert!(write_file(&gone, "x.eml", b"body").is_err());
        assert!(!gone.exists());
    }

    /// Eight sends finish their files while a folder fsync runs: one more fsync covers
    /// all eight, and each send returns only after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_that_finish_while_a_folder_fsync_runs_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = Arc::new(FileOutbox::new(dir.path().to_path_buf()));
        let held = out.hold().await;
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..8u8 {
            let out = out.clone();
            sends.spawn(async move { out.write(format!("{i:08}-ack.eml"), vec![b'a' + i]).await });
        }
        while out.renamed() < 8 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // All eight are renamed and wait for the fsync: none has returned.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(sends.len(), 8);
        assert!(
            sends.try_join_next().is_none(),
            "a send returned before its fsync"
        );
        drop(held);
        while let Some(r) = sends.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(out.syncs(), 1, "one folder fsync for the eight");
        for i in 0..8u8 {
            assert_eq!(
                std::fs::read(dir.path().join(format!("{i:08}-ack.eml"))).unwrap(),
                [b'a' + i]
            );
        }
        // A send after that one needs its own.
        out.write("00000009-ack.eml".into(), b"z".to_vec())
            .await
            .unwrap();
        assert_eq!(out.syncs(), 2);
    }

    /// A send into a folder that is gone fails (a transient outcome for the outbox) and
    /// counts no fsync; once the folder is back, the next one is written and synced.
    #[tokio::test]
    async fn a_send_into_a_missing_folder_fails_and_the_next_one_after_it_is_back_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let out = FileOutbox::new(gone.clone());
        assert!(out.write("x.eml".into(), b"x".to_vec()).await.is_err());
        assert_eq!(out.syncs(), 0);
        std::fs::create_dir(&gone).unwrap();
        out.write("x.eml".into(), b"x".to_vec()).await.unwrap();
        assert_eq!(out.syncs(), 1);
        assert_eq!(names(&gone), ["x.eml"]);
    }
}
