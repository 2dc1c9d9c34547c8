//! Postfix's `smtp-sink` as a real SMTP server for tests: started on a loopback port, one
//! file per accepted message in its own temporary folder, killed when dropped.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the sink may take to accept connections, and a dump file to appear.
const STARTUP: Duration = Duration::from_secs(10);

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A loopback port nothing listens on (the kernel's pick; the listener is dropped at once).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// The `smtp-sink` program, or a failure that says how to get it.
fn program() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("smtp-sink"));
    for p in candidates {
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "smtp-sink (from Debian's `postfix` package) is not installed, and the SMTP delivery \
         tests need it as their server: run `scripts/test`, which installs it, or \
         `apt-get install postfix` yourself"
    );
}

impl SmtpSink {
    /// Starts a sink on a free port. `flags` go to smtp-sink before the address, e.g.
    /// `["-r", "rcpt"]` to soft-reject every RCPT TO.
    pub fn start(flags: &[&str]) -> SmtpSink {
        let mut last = String::new();
        // A port freed by `free_port` can be taken by someone else before the sink binds it:
        // try a few.
        for _ in 0..5 {
            match Self::try_start(free_port(), flags) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("smtp-sink did not start: {last}");
    }

    /// Starts a sink on `port`, which must be free.
    pub fn start_on(port: u16, flags: &[&str]) -> SmtpSink {
        Self::try_start(port, flags).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(port: u16, flags: &[&str]) -> Result<SmtpSink, String> {
        let program = program();
        let dir = tempfile::tempdir().expect("temporary folder for smtp-sink");
        // As root, smtp-sink drops to `nobody` (`-u` is required then), which must be able to
        // write its dump files here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod the smtp-sink folder");
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o777)).unwrap();
        let log = File::create(dir.path().join("smtp-sink.log")).unwrap();

        let mut cmd = Command::new(&program);
        let is_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if is_root {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(flags)
            .arg("-d")
            .arg(format!("{}/%Y%m%d%H%M%S.", mail.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let mut sink = SmtpSink { child, port, dir };
        sink.wait_until_listening()?;
        Ok(sink)
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "smtp-sink on port {} exited ({status}): {}",
                    self.port,
                    self.log()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "smtp-sink does not accept connections on port {} after {STARTUP:?}: {}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What smtp-sink printed (errors, mostly).
    /// Kills the server (every connection cut mid-transaction) and keeps what it received,
    /// for [`SmtpSink::messages`]: what it answered 250 to is on disk once it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtp-sink.log")).unwrap_or_default()
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// How many messages were accepted so far (dump files written).
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.mail_dir()).map_or(0, |d| d.count())
    }

    /// Every message accepted so far, as dumped (smtp-sink's own headers first), in name
    /// order.
    pub fn messages(&self) -> Vec<String> {
        read_dir_sorted(&self.mail_dir())
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }

    /// Whether no message was accepted. smtp-sink opens a transaction's dump file at `MAIL
    /// FROM` and removes it when the transaction ends without `DATA`, which it may do a
    /// moment after the client has its answer: a file that stays (a bounded wait) is a message.
    pub fn accepted_none(&self) -> bool {
        let deadline = Instant::now() + STARTUP;
        while self.count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// The messages once there are at least `n` (or a failure after a bounded wait).
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + STARTUP;
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "smtp-sink got {} messages, expected {n}; log: {}",
                m.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
