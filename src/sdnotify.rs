//! systemd's notification protocol (sd_notify(3)), without libsystemd: one datagram per
//! state (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=…`) to the socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Under `Type=notify` the
//! daemon says `READY=1` once its tasks are running; with `WatchdogSec=` systemd sets
//! `$WATCHDOG_USEC` and the daemon's main loop (the Maildir/timer loop) feeds `WATCHDOG=1`
//! after every pass, sleeping at most half the interval between passes: a loop that is stuck
//! stops feeding it, and systemd kills and restarts the service. Outside systemd (no
//! `$NOTIFY_SOCKET`) every call does nothing.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    /// Linux abstract namespace (`@name` in `$NOTIFY_SOCKET`).
    Abstract(Vec<u8>),
}

/// Where to send notifications, and how often the watchdog wants feeding.
#[derive(Debug, Clone, Default)]
pub struct SdNotify {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

impl SdNotify {
    /// From the environment systemd gives the service.
    pub fn from_env() -> SdNotify {
        SdNotify::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var("WATCHDOG_USEC").ok(),
            std::env::var("WATCHDOG_PID").ok(),
            std::process::id(),
        )
    }

    /// From the variables' values: `$NOTIFY_SOCKET`, `$WATCHDOG_USEC`, `$WATCHDOG_PID` (the
    /// watchdog is ours only when it names `own_pid` or is unset).
    pub fn from_vars(
        socket: Option<OsString>,
        watchdog_usec: Option<String>,
        watchdog_pid: Option<String>,
        own_pid: u32,
    ) -> SdNotify {
        use std::os::unix::ffi::OsStrExt;
        let target = socket.filter(|s| !s.is_empty()).map(|s| {
            let bytes = s.as_bytes();
            match bytes.strip_prefix(b"@") {
                Some(name) => Target::Abstract(name.to_vec()),
                None => Target::Path(PathBuf::from(s)),
            }
        });
        let ours = watchdog_pid
            .as_deref()
            .is_none_or(|p| p.trim().parse::<u32>().ok() == Some(own_pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours && target.is_some())
            .map(Duration::from_micros);
        SdNotify { target, watchdog }
    }

    /// Notifications go nowhere (not under systemd, or `run --once`).
    pub fn disabled() -> SdNotify {
        SdNotify::default()
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often the main loop must feed the watchdog: half of `$WATCHDOG_USEC`, as
    /// sd_watchdog_enabled(3) advises; `None` when there is no watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one notification (`READY=1`, or several lines). `Ok(false)`: no socket to send
    /// to.
    pub fn send(&self, state: &str) -> io::Result<bool> {
        let Some(target) = &self.target else {
            return Ok(false);
        };
        let sock = UnixDatagram::unbound()?;
        match target {
            Target::Path(p) => sock.send_to(state.as_bytes(), p)?,
            Target::Abstract(name) => send_abstract(&sock, name, state.as_bytes())?,
        };
        Ok(true)
    }

    /// `send`, logging a failure (a notification that cannot be sent is not fatal: systemd
    /// then reports the start, or the watchdog, as failed by itself).
    fn say(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!(error = %e, state, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }

    /// The daemon runs: its tasks are started.
    pub fn ready(&self) {
        self.say("READY=1\nSTATUS=running");
    }

    /// The main loop finished a pass.
    pub fn feed_watchdog(&self) {
        if self.watchdog.is_some() {
            self.say("WATCHDOG=1");
        }
    }

    /// Shutting down: finishing what is in flight.
    pub fn stopping(&self) {
        self.say("STOPPING=1\nSTATUS=shutting down");
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], msg: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(msg, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn ready_watchdog_and_stopping_arrive_on_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = SdNotify::from_vars(
            Some(path.clone().into_os_string()),
            Some("10000000".into()),
            Some("4242".into()),
            4242,
        );
        assert!(n.is_enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(5)));
        n.ready();
        assert_eq!(recv(&server), "READY=1\nSTATUS=running");
        n.feed_watchdog();
        assert_eq!(recv(&server), "WATCHDOG=1");
        n.stopping();
        assert_eq!(recv(&server), "STOPPING=1\nSTATUS=shutting down");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_socket_is_written_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ticketgate-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = SdNotify::from_vars(Some(format!("@{name}").into()), None, None, 1);
        assert!(n.send("READY=1").unwrap());
        assert_eq!(recv(&server), "READY=1");
        assert_eq!(n.watchdog_interval(), None, "no WATCHDOG_USEC, no watchdog");
    }

    #[test]
    fn without_a_socket_or_for_another_pid_nothing_is_sent_or_fed() {
        let n = SdNotify::from_vars(None, Some("1000000".into()), None, 1);
        assert!(!n.is_enabled());
        assert!(!n.send("READY=1").unwrap());
        assert_eq!(n.watchdog_interval(), None);
        let other = SdNotify::from_vars(
            Some("/nonexistent/sock".into()),
            Some("1000000".into()),
            Some("7".into()),
            8,
        );
        assert_eq!(
            other.watchdog_interval(),
            None,
            "the watchdog of another process"
        );
        assert!(
            other.send("READY=1").is_err(),
            "a socket that is not there is an error, not a silent success"
        );
    }
}
