//! A private Postfix (Debian's package) for tests and benches: its own `config_directory`,
//! `queue_directory` and `data_directory` in a temporary folder, `smtpd` on a free loopback
//! port, every mail for `support.example.test` relayed over LMTP (`transport_maps` →
//! `lmtp:TARGET`), its log in `maillog` (`maillog_file = /dev/stdout` of `master -d`). The
//! system's `/etc/postfix` is never read or written: `master` is started directly (not
//! through `postfix start`, whose checks read `/etc/postfix/main.cf`). Postfix's master
//! must run as root (it drops to `mail_owner = postfix` for its daemons). Stopped (SIGTERM
//! to its master) when dropped.
#![allow(dead_code)]

use super::smtp_sink::free_port;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MASTER: &str = "/usr/lib/postfix/sbin/master";

/// The `main.cf` lines for the transport to ticketgate that the README recommends for
/// production (its "LMTP delivery" section; ADR 0021): a transport of its own, `ticketgate`
/// ([`LMTP_PRODUCTION_MASTER`]), with all its sessions opened at once. `benches/lmtp.rs` and
/// the Postfix tests run with them.
pub const LMTP_PRODUCTION: &str = "ticketgate_destination_concurrency_limit = 64
ticketgate_initial_destination_concurrency = 64
";

/// The `master.cf` service of that transport: Postfix's `lmtp` client without connection
/// caching (`lmtp_connection_cache_on_demand=no`: a cached connection goes through `scache`
/// and back for every mail, which cost more of Postfix's CPU per mail than a new connection
/// to the local listener; ADR 0021).
pub const LMTP_PRODUCTION_MASTER: &str = "ticketgate unix - - n - - lmtp
  -o lmtp_connection_cache_on_demand=no
";

pub struct Postfix {
    child: Child,
    pub smtp_port: u16,
    pub dir: tempfile::TempDir,
}

/// The uid or gid of `name` in /etc/passwd or /etc/group.
fn id_of(file: &str, name: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no `{name}` in {file}: is Debian's postfix package installed?"))
}

impl Postfix {
    /// Starts Postfix relaying `support.example.test` to `lmtp` (`inet:127.0.0.1:PORT` or
    /// `unix:/path`) through the `ticketgate` transport ([`LMTP_PRODUCTION`]). `extra` lines
    /// are appended to main.cf (a later line overrides an earlier one).
    pub fn start(lmtp: &str, extra: &str) -> Postfix {
        assert!(
            Path::new(MASTER).is_file(),
            "{MASTER} missing: install Debian's postfix package (scripts/test does)"
        );
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap();
        assert_eq!(
            uid, "0",
            "Postfix's master must run as root (it switches to mail_owner for its daemons): run the Postfix tests as root, as scripts/test does in CI"
        );
        let dir = tempfile::Builder::new()
            .prefix("tg-postfix")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        let (etc, queue, data) = (d.join("etc"), d.join("queue"), d.join("data"));
        let postfix = id_of("/etc/passwd", "postfix");
        let postdrop = id_of("/etc/group", "postdrop");
        std::fs::create_dir_all(&etc).unwrap();
        // What `postfix set-permissions` would make (postfix-files).
        let own = |p: &Path, mode: u32, group: Option<u32>| {
            std::fs::create_dir_all(p).unwrap();
            std::os::unix::fs::chown(p, Some(postfix), group).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        std::fs::create_dir_all(queue.join("pid")).unwrap();
        for q in [
            "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
            "private", "saved", "trace",
        ] {
            own(&queue.join(q), 0o700, None);
        }
        own(&queue.join("maildrop"), 0o730, Some(postdrop));
        own(&queue.join("public"), 0o710, Some(postdrop));
        own(&data, 0o700, None);
        let smtp_port = free_port();
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.tg-test.example
mydomain = tg-test.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = support.example.test
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = inline:{{ support.example.test=ticketgate:{lmtp} }}
{LMTP_PRODUCTION}
maillog_file = /dev/stdout
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
{extra}
",
                queue = queue.display(),
                data = data.display(),
            ),
        )
        .unwrap();
        std::fs::write(
            etc.join("master.cf"),
            format!(
                "127.0.0.1:{smtp_port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
{LMTP_PRODUCTION_MASTER}"
            ),
        )
        .unwrap();
        let child = Command::new(MASTER)
            .arg("-d")
            .arg("-c")
            .arg(&etc)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("maillog")).unwrap())
            .stderr(std::fs::File::create(d.join("master.err")).unwrap())
            .spawn()
            .expect("starting Postfix's master");
        let mut p = Postfix {
            child,
            smtp_port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", smtp_port)).is_err() {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "Postfix's master exited ({status}): {}{}",
                    p.log(),
                    std::fs::read_to_string(p.dir.path().join("master.err")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Postfix did not start: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Submits mails over SMTP on one connection; each is `(rcpts, message)`.
    pub fn submit(&self, mails: &[(Vec<&str>, String)]) {
        let s = TcpStream::connect(("127.0.0.1", self.smtp_port)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = std::io::BufWriter::new(s);
        let expect = |r: &mut BufReader<TcpStream>, code: &str| loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            assert!(l.starts_with(code), "Postfix said {l:?}, expected {code}");
            if l.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect(&mut r, "220");
        w.write_all(b"EHLO client.example\r\n").unwrap();
        w.flush().unwrap();
        expect(&mut r, "250");
        for (rcpts, msg) in mails {
            // PIPELINING: the envelope in one write.
            let mut cmds = "MAIL FROM:<jane@acme.example>\r\n".to_string();
            for to in rcpts {
                cmds.push_str(&format!("RCPT TO:<{to}>\r\n"));
            }
            cmds.push_str("DATA\r\n");
            w.write_all(cmds.as_bytes()).unwrap();
            w.flush().unwrap();
            expect(&mut r, "250");
            for _ in rcpts {
                expect(&mut r, "250");
            }
            expect(&mut r, "354");
            for l in msg.split_inclusive("\r\n") {
                if l.starts_with('.') {
                    w.write_all(b".").unwrap();
                }
                w.write_all(l.as_bytes()).unwrap();
            }
            w.write_all(b".\r\n").unwrap();
            w.flush().unwrap();
            expect(&mut r, "250");
        }
        w.write_all(b"QUIT\r\n").unwrap();
        w.flush().unwrap();
    }

    fn postqueue(&self, flag: &str) -> String {
        let out = Command::new("postqueue")
            .arg("-c")
            .arg(self.config_dir())
            .arg(flag)
            .output()
            .expect("running postqueue");
        assert!(
            out.status.success(),
            "postqueue {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Messages in Postfix's queue (any state).
    pub fn queued(&self) -> usize {
        // One JSON object per message.
        self.postqueue("-j")
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    }

    /// `postsuper -H ALL`: held messages (e.g. by a `HOLD` access rule) back in the
    /// queue, to be delivered at the next [`Postfix::flush`].
    pub fn release_held(&self) {
        let out = Command::new("postsuper")
            .arg("-c")
            .arg(self.config_dir())
            .args(["-H", "ALL"])
            .output()
            .expect("running postsuper");
        assert!(
            out.status.success(),
            "postsuper -H: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postqueue -f`: attempts to deliver every queued message now.
    pub fn flush(&self) {
        self.postqueue("-f");
    }

    /// Waits until the log has `n` lines containing `text`. The log is read on from where
    /// the last read stopped (a bench's log grows to megabytes: reading it whole every
    /// 50 ms would take the CPU that Postfix and the listener need).
    pub fn wait_log(&self, text: &str, n: usize, limit: Duration) {
        use std::io::{Read, Seek, SeekFrom};
        let deadline = Instant::now() + limit;
        let path = self.dir.path().join("maillog");
        let (mut offset, mut found, mut partial) = (0u64, 0usize, Vec::new());
        loop {
            if let Ok(mut f) = std::fs::File::open(&path) {
                let mut chunk = Vec::new();
                if f.seek(SeekFrom::Start(offset)).is_ok() && f.read_to_end(&mut chunk).is_ok() {
                    offset += chunk.len() as u64;
                    partial.extend_from_slice(&chunk);
                    // Whole lines only; a line being written waits for the next read.
                    if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
                        let lines: Vec<u8> = partial.drain(..=end).collect();
                        found += String::from_utf8_lossy(&lines).matches(text).count();
                    }
                }
            }
            if found >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} `{text}` in Postfix's log ({found}): {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// CPU time (user + system) used so far by Postfix: its master, the daemons it reaped
    /// and the daemons running now (Linux `/proc`).
    pub fn cpu(&self) -> Option<Duration> {
        fn stat(pid: u32) -> Option<(u32, u64, u64)> {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = text.get(text.rfind(')')? + 2..)?;
            let f: Vec<&str> = rest.split(' ').collect();
            let ppid = f.get(1)?.parse().ok()?;
            let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            let reaped = f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?;
            Some((ppid, own, reaped))
        }
        let master = self.child.id();
        let (_, own, reaped) = stat(master)?;
        let mut ticks = own + reaped;
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok())
                && let Some((ppid, own, reaped)) = stat(pid)
                && ppid == master
            {
                ticks += own + reaped;
            }
        }
        // USER_HZ is 100 on Linux.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Waits until the queue is empty.
    pub fn wait_empty(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.queued() > 0 {
            assert!(
                Instant::now() < deadline,
                "Postfix's queue is not empty: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // SIGTERM: the master stops its daemons and exits.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
