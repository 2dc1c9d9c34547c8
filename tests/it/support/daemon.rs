//! The real daemon as a child process (`ticketgate run`) from a configuration the test
//! writes in full, with its web server on a free port: start, `kill -9`, start again on the
//! same folder and database, plain HTTP GETs, its log (stderr, kept across restarts) and its
//! resident memory and open file descriptors from `/proc`. Stopped (SIGTERM, then SIGKILL)
//! when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    /// Where the web server listens (from the log line `http listening addr=`).
    pub addr: SocketAddr,
    /// How many times the process was started.
    pub starts: usize,
}

/// An HTTP answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Daemon {
    /// Writes `config` to `DIR/ticketgate.toml` (it must set `[http] listen` to port 0 on
    /// loopback) and starts the daemon in `dir`.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        std::fs::write(dir.join("ticketgate.toml"), config).unwrap();
        let mut d = Daemon {
            child: None,
            dir: dir.to_path_buf(),
            addr: "127.0.0.1:1".parse().unwrap(),
            starts: 0,
        };
        d.launch();
        d
    }

    /// Starts the process again (after [`Daemon::kill9`]); waits for its web server.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the daemon is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .current_dir(&self.dir)
            .args(["--config", "ticketgate.toml", "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the daemon");
        self.child = Some(child);
        self.starts += 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The latest start's line: the log is kept across restarts.
            let log = self.log();
            let lines = log.matches("http listening addr=").count();
            if lines == self.starts {
                let rest = log.rsplit("http listening addr=").next().unwrap();
                let a: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                self.addr = a.parse().unwrap();
                return;
            }
            assert!(Instant::now() < deadline, "no listening line: {log}");
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("the daemon exited ({status}): {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`: no shutdown, nothing flushed.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            super::dovecot::terminate(child, Duration::from_secs(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// `GET path` over a fresh connection.
    pub fn get(&self, path: &str) -> Answer {
        get(self.addr, path)
    }

    /// The value of one series of `/metrics` (`name{labels}` exactly as exported).
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric(&self.get("/metrics").body, series)
    }

    /// Waits until `check` holds, for at most `secs`; the failure shows the log.
    pub fn until(&self, secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check() {
            assert!(Instant::now() < deadline, "{what}: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `GET path` from `addr` over a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        body: body.to_string(),
    }
}

/// One series' value in a Prometheus text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
