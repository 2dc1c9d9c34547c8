//! `Type=notify` with the real daemon: it says READY=1 on `$NOTIFY_SOCKET` (a real
//! datagram socket here, as systemd's), feeds the watchdog from its main loop, stops feeding
//! it while that loop is stuck (its store writer blocked by another session's lock), feeds it
//! again once the loop moves, and says STOPPING=1 at SIGTERM.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The datagrams that arrive within `window`.
fn received(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return out;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn until(sock: &UnixDatagram, what: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "no `{what}` within {limit:?}");
        sock.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains(what)
        {
            return start.elapsed();
        }
    }
}

/// Holds the store's write lock from another session until dropped.
enum WriteLock {
    Sqlite(rusqlite::Connection),
    Postgres(tokio::runtime::Runtime, sqlx::PgConnection),
}

impl WriteLock {
    fn take(url: &str) -> WriteLock {
        match url.strip_prefix("sqlite:") {
            Some(path) => {
                let c = rusqlite::Connection::open(Path::new(path)).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteLock::Sqlite(c)
            }
            None => {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let mut c = rt.block_on(common::plumbing_connection(url));
                // The writers' advisory lock ("tgwriter").
                rt.block_on(
                    sqlx::query("SELECT pg_advisory_lock(8387804164280051058)").execute(&mut c),
                )
                .unwrap();
                WriteLock::Postgres(rt, c)
            }
        }
    }

    fn release(self) {
        match self {
            WriteLock::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            WriteLock::Postgres(rt, mut c) => {
                rt.block_on(
                    sqlx::query("SELECT pg_advisory_unlock(8387804164280051058)").execute(&mut c),
                )
                .unwrap();
            }
        }
    }
}

#[test]
fn the_daemon_says_ready_and_feeds_the_watchdog_only_while_its_main_loop_moves() {
    assert_eq!(0x7467_7772_6974_6572_i64, 8387804164280051058);
    let dir = tempfile::tempdir().unwrap();
    let (db, _db_guard) = common::database_url(dir.path());
    std::fs::write(dir.path().join("customers.toml"), common::REGISTRY).unwrap();
    std::fs::write(
        dir.path().join("ticketgate.toml"),
        format!(
            "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"inbox\"\npoll_interval = \"30s\"\n\
             [registry]\npath = \"customers.toml\"\n[outbound]\ntransport = \"file\"\ndir = \"outbox\"\n"
        ),
    )
    .unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .current_dir(dir.path())
        .arg("--config")
        .arg(dir.path().join("ticketgate.toml"))
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        // 1 s: fed every 0.5 s, although the poll interval is 30 s.
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();

    until(&sock, "READY=1", Duration::from_secs(30));
    let fed = received(&sock, Duration::from_secs(3));
    let feeds = fed.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(feeds >= 3, "fed every half second: {fed:?}");

    // The loop gets stuck: a mail to store while another session holds the write lock.
    let lock = WriteLock::take(&db);
    let mail = common::mail("jane@acme.example", "Stuck?", "ACME-0000-0000-0001").build();
    let new = dir.path().join("inbox/new");
    std::fs::write(dir.path().join("inbox/tmp/1.stuck"), mail).unwrap();
    std::fs::rename(dir.path().join("inbox/tmp/1.stuck"), new.join("1.stuck")).unwrap();
    // The pass in progress finds it within half a second; from then on, silence.
    std::thread::sleep(Duration::from_millis(1500));
    let _ = received(&sock, Duration::from_millis(10));
    let stuck = received(&sock, Duration::from_secs(3));
    assert!(
        !stuck.iter().any(|m| m == "WATCHDOG=1"),
        "a stuck loop must not feed the watchdog: {stuck:?}\n{}",
        log()
    );

    lock.release();
    until(&sock, "WATCHDOG=1", Duration::from_secs(10));
    assert!(
        std::fs::read_dir(&new).unwrap().next().is_none(),
        "the mail was stored once the loop moved"
    );

    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    until(&sock, "STOPPING=1", Duration::from_secs(10));
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", log());
}
