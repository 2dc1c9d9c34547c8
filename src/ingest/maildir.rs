//! A local Maildir as the inbound mailbox (the embedded default). New mail is read from
//! `new/`; after its batch commits, each file is renamed into `cur/` with the Seen flag
//! (`:2,S`), which is how a Maildir marks mail as read. A crash between commit and rename
//! leaves the file in `new/`; the next run sees it as a duplicate and only moves it.

use crate::pipeline::RawMail;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// Opens the Maildir at `root`, creating `new/`, `cur/` and `tmp/` when missing.
    pub fn open(root: &Path) -> io::Result<Maildir> {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", root.join(sub).display()),
                )
            })?;
        }
        Ok(Maildir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Up to `limit` files waiting in `new/`, oldest name first (Maildir names start with the
    /// delivery time, so name order is arrival order).
    pub fn pending(&self, limit: usize) -> io::Result<Vec<PathBuf>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.root.join("new"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        names.sort();
        names.truncate(limit);
        Ok(names)
    }

    pub fn read(&self, path: &Path) -> io::Result<RawMail> {
        let bytes = std::fs::read(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(RawMail {
            source: format!("maildir:new/{name}"),
            bytes,
        })
    }

    /// Moves a processed mail from `new/` to `cur/` with the Seen flag.
    pub fn mark_done(&self, path: &Path) -> io::Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = name.split(":2,").next().unwrap_or(&name);
        std::fs::rename(path, self.root.join("cur").join(format!("{base}:2,S")))
    }

    /// Writes a message into `new/` the way a delivery agent does (via `tmp/`).
    pub fn deliver(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let tmp = self.root.join("tmp").join(name);
        std::fs::write(&tmp, bytes)?;
        let dest = self.root.join("new").join(name);
        std::fs::rename(&tmp, &dest)?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_mail_is_pending_until_marked_done() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(&dir.path().join("inbox")).unwrap();
        md.deliver("2.b", b"two").unwrap();
        md.deliver("1.a", b"one").unwrap();
        std::fs::write(md.root().join("new/.hidden"), b"x").unwrap();
        let p = md.pending(10).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].ends_with("new/1.a"), "oldest first: {p:?}");
        assert_eq!(md.read(&p[0]).unwrap().bytes, b"one");
        md.mark_done(&p[0]).unwrap();
        assert_eq!(md.pending(10).unwrap().len(), 1);
        assert!(md.root().join("cur/1.a:2,S").exists());
    }
}
