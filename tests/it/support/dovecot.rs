//! Dovecot as a real IMAP server for tests: started on free loopback ports (plain `imap` and
//! TLS `imaps`) from a private configuration in a temporary folder, with passwd-file users,
//! a test CA and server certificate made with `openssl` for each run, and Maildir storage
//! under the same folder. Stopped when dropped.
//!
//! [`Dovecot::start_with_submission`] also runs Dovecot's SMTP submission service (Debian
//! `dovecot-submissiond`) on two more ports, relaying what it accepts to a plain SMTP server
//! (an smtp-sink) on loopback: the port-587 style one offers STARTTLS and allows AUTH only
//! after it; the port-465 style one is TLS from the first byte.
//!
//! Needs `dovecot` and `doveadm` (Debian `dovecot-imapd`) and `openssl`. Runs as root (the
//! mail is stored as uid 65534, which Dovecot's `first_valid_uid` allows).
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Dovecot may take to accept connections.
const STARTUP: Duration = Duration::from_secs(15);
/// The uid and gid mail is stored as.
const MAIL_UID: u32 = 65534;

/// The user most tests read, and its password.
pub const USER: &str = "support@example.test";
pub const PASSWORD: &str = "secret";
/// A second mailbox owner.
pub const OTHER_USER: &str = "other@example.test";
pub const OTHER_PASSWORD: &str = "secret2";
/// The address the submission listeners are on. Not 127.0.0.1: Linux connects to it from
/// 127.0.0.1, and Dovecot counts a connection whose two ends differ as remote, so it allows
/// AUTH only after STARTTLS there, as a real port 587 does (a connection from its own
/// address would count as secure). The server certificate names it too.
pub const SUBMISSION_HOST: &str = "127.0.0.2";

pub struct Dovecot {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Plain IMAP (STARTTLS offered).
    pub imap_port: u16,
    /// IMAP over TLS from the first byte.
    pub imaps_port: u16,
    /// SMTP submission with STARTTLS (AUTH only after it) on [`SUBMISSION_HOST`]; 0 without
    /// submission.
    pub submission_port: u16,
    /// SMTP submission over TLS from the first byte on [`SUBMISSION_HOST`]; 0 without
    /// submission.
    pub submissions_port: u16,
    /// Where submission relays accepted mail (127.0.0.1), when it runs.
    relay_port: Option<u16>,
    /// The token-introspection URL of the `oauth2` passdb (XOAUTH2 and OAUTHBEARER logins),
    /// when it is on.
    oauth2_url: Option<String>,
}

/// One message in a folder, as `doveadm fetch` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub uid: u32,
    pub flags: String,
    pub message_id: String,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// `name` from PATH or /usr/sbin, or a failure that says how to get it.
fn program(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed, and the IMAP tests need it: install it with \
                 `apt-get install {package}` (as root; Debian/Ubuntu), or run `scripts/test`"
            )
        })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops a server: SIGTERM, then SIGKILL if it is still running after `grace`.
pub fn terminate(mut child: Child, grace: Duration) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Makes a CA (`NAME.pem`, `NAME.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let openssl = program("openssl", "openssl");
    let (pem, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN=ticketgate test CA {name}"))
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&pem));
    pem
}

impl Dovecot {
    /// Dovecot with the users [`USER`] and [`OTHER_USER`].
    pub fn start() -> Dovecot {
        Self::start_inner(None, None)
    }

    /// [`Dovecot::start`] that also takes `AUTHENTICATE XOAUTH2` (and OAUTHBEARER) through
    /// Dovecot's `oauth2` passdb, which asks the token-introspection endpoint at
    /// `introspection_url` (RFC 7662, `POST` with `token=…`) about each token and lets the
    /// user in when the answer is active and names that user. Passwords still work.
    pub fn start_with_oauth2(introspection_url: &str) -> Dovecot {
        Self::start_inner(None, Some(introspection_url.to_string()))
    }

    /// [`Dovecot::start`] plus the SMTP submission service on [`Dovecot::submission_port`]
    /// (STARTTLS) and [`Dovecot::submissions_port`] (implicit TLS), relaying accepted mail
    /// to a plain SMTP server on 127.0.0.1:`relay_port`. Needs `dovecot-submissiond`.
    pub fn start_with_submission(relay_port: u16) -> Dovecot {
        if !Path::new("/usr/lib/dovecot/submission").exists() {
            panic!(
                "Dovecot's submission service is not installed, and the SMTP TLS tests need \
                 it: install it with `apt-get install dovecot-submissiond` (as root; \
                 Debian/Ubuntu), or run `scripts/test`"
            );
        }
        Self::start_inner(Some(relay_port), None)
    }

    fn start_inner(relay_port: Option<u16>, oauth2_url: Option<String>) -> Dovecot {
        let mut dir = tempfile::tempdir().expect("temporary folder for Dovecot");
        // Dovecot's unprivileged processes (login, the mail user) walk through this folder.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let ca = make_ca(d, "ca");
        let openssl = program("openssl", "openssl");
        run(Command::new(&openssl)
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(d.join("server.key"))
            .arg("-out")
            .arg(d.join("server.csr")));
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new(&openssl)
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(d.join("server.csr"))
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(d.join("ca.key"))
            .args(["-CAcreateserial", "-out"])
            .arg(d.join("server.pem"))
            .arg("-extfile")
            .arg(d.join("server.ext")));
        std::fs::write(
            d.join("users"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}::::::\n{OTHER_USER}:{{PLAIN}}{OTHER_PASSWORD}::::::\n"
            ),
        )
        .unwrap();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        std::os::unix::fs::chown(d.join("mail"), Some(MAIL_UID), Some(MAIL_UID)).unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let (imap_port, imaps_port) = (free_port(), free_port());
            let (submission_port, submissions_port) = match relay_port {
                Some(_) => (free_port(), free_port()),
                None => (0, 0),
            };
            let mut dc = Dovecot {
                child: None,
                dir,
                imap_port,
                imaps_port,
                submission_port,
                submissions_port,
                relay_port,
                oauth2_url: oauth2_url.clone(),
            };
            dc.write_config();
            match dc.launch() {
                Ok(()) => return dc,
                Err(e) => {
                    last = e;
                    dc.stop();
                    dir = std::mem::replace(&mut dc.dir, tempfile::tempdir().unwrap());
                }
            }
        }
        panic!("Dovecot did not start: {last}");
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// The test CA's certificate, for `ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing Dovecot uses, for a `ca_file` that must be refused.
    pub fn other_ca_file(&self) -> PathBuf {
        let p = self.dir.path().join("other.pem");
        if !p.exists() {
            make_ca(self.dir.path(), "other");
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn launch(&mut self) -> Result<(), String> {
        let dovecot = program("dovecot", "dovecot-imapd");
        let out = File::create(self.dir.path().join("dovecot.out")).unwrap();
        let child = Command::new(&dovecot)
            .arg("-F")
            .arg("-c")
            .arg(self.conf())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", dovecot.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        let submission: Ipv4Addr = SUBMISSION_HOST.parse().unwrap();
        let ports = [
            (Ipv4Addr::LOCALHOST, self.imap_port),
            (Ipv4Addr::LOCALHOST, self.imaps_port),
            (submission, self.submission_port),
            (submission, self.submissions_port),
        ];
        for (ip, port) in ports.into_iter().filter(|&(_, p)| p != 0) {
            let addr = SocketAddr::from((ip, port));
            loop {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    self.child = None;
                    return Err(format!(
                        "dovecot exited ({status}): {}{}",
                        std::fs::read_to_string(self.dir.path().join("dovecot.out"))
                            .unwrap_or_default(),
                        self.log()
                    ));
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "dovecot does not accept connections on port {port} after {STARTUP:?}: {}",
                        self.log()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Stops the server (SIGTERM, then SIGKILL): every connection is cut.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(10));
        }
    }

    /// Stops the server and starts it again on the same ports with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        for _ in 0..50 {
            match self.launch() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    self.stop();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!("Dovecot did not start again: {last}");
    }

    fn doveadm(&self, args: &[&str]) -> String {
        let doveadm = program("doveadm", "dovecot-core");
        run(Command::new(doveadm).arg("-c").arg(self.conf()).args(args))
    }

    /// `[[inbound.imap]]` keys for a mailbox of `user` on the plain port (tls = "none").
    pub fn mailbox_config(&self, name: &str, user: &str, password_env_or_file: &str) -> String {
        format!(
            "[[inbound.imap]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             username = \"{user}\"\n{password_env_or_file}\n",
            self.imap_port
        )
    }

    /// A file holding `password`, for `password_file`.
    pub fn password_file(&self, password: &str) -> PathBuf {
        let p = self.dir.path().join(format!("pw-{}", password.len()));
        std::fs::write(&p, format!("{password}\n")).unwrap();
        p
    }

    /// APPENDs `raw` to `folder` of `user` over IMAP, as a mail client does; returns its UID.
    pub fn append_as(&self, user: &str, password: &str, folder: &str, raw: &[u8]) -> u32 {
        let mut c = Imap::login(self.imap_port, user, password);
        let reply = c.command_with_literal(&format!("APPEND \"{folder}\""), raw);
        c.logout();
        // a2 OK [APPENDUID 1700000000 7] Append completed.
        let uid = reply
            .split("APPENDUID ")
            .nth(1)
            .and_then(|r| r.split([' ', ']']).nth(1))
            .and_then(|u| u.parse().ok());
        uid.unwrap_or_else(|| panic!("no APPENDUID in {reply:?}"))
    }

    /// [`Dovecot::append_as`] for [`USER`].
    pub fn append(&self, folder: &str, raw: &[u8]) -> u32 {
        self.append_as(USER, PASSWORD, folder, raw)
    }

    /// Writes mails straight into the user's Maildir (`new/`), as a local delivery agent
    /// would: the fast way to fill a folder (thousands a second). Dovecot gives them UIDs
    /// when it next looks. `folder` "INBOX" or a top-level folder name.
    pub fn deliver_many(&self, user: &str, folder: &str, mails: &[Vec<u8>]) {
        let maildir = self.maildir(user, folder);
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let mut p = maildir.clone();
        // Owner of every folder from the mail root down.
        let root = self.dir.path().join("mail");
        loop {
            let _ = std::os::unix::fs::chown(&p, Some(MAIL_UID), Some(MAIL_UID));
            if p == root || !p.pop() {
                break;
            }
        }
        for sub in ["new", "cur", "tmp"] {
            std::os::unix::fs::chown(maildir.join(sub), Some(MAIL_UID), Some(MAIL_UID)).unwrap();
        }
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        for m in mails {
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("1700000000.M{n}P{}.test,S={}", std::process::id(), m.len());
            let tmp = maildir.join("tmp").join(&name);
            std::fs::write(&tmp, m).unwrap();
            std::os::unix::fs::chown(&tmp, Some(MAIL_UID), Some(MAIL_UID)).unwrap();
            std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
        }
    }

    /// The file in `folder`'s Maildir (`cur/` or `new/`) holding the mail with `message_id`
    /// (with its angle brackets, as in the header).
    pub fn message_file(&self, user: &str, folder: &str, message_id: &str) -> PathBuf {
        let maildir = self.maildir(user, folder);
        ["cur", "new"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(maildir.join(sub)).into_iter().flatten())
            .map(|e| e.unwrap().path())
            .find(|p| {
                std::fs::read(p)
                    .map(|b| String::from_utf8_lossy(&b).contains(message_id))
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| panic!("no file for {message_id} in {}", maildir.display()))
    }

    /// Makes a mail's file unreadable to Dovecot's mail process (which runs as uid 65534,
    /// not root), so that the server can no longer return it; or readable again.
    /// `file` is found again when Dovecot has renamed it since (flags, `new/` to `cur/`).
    pub fn make_unreadable(&self, file: &Path, unreadable: bool) {
        let base = file.file_name().unwrap().to_string_lossy();
        let base = base.split(':').next().unwrap().to_string();
        let maildir = file.parent().unwrap().parent().unwrap();
        let now = ["cur", "new"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(maildir.join(sub)).into_iter().flatten())
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&base))
            .unwrap_or_else(|| panic!("{} is gone", file.display()));
        let mode = if unreadable { 0o000 } else { 0o600 };
        std::fs::set_permissions(now, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Makes `folder` of `user` read-only (or writable again) for Dovecot's mail process:
    /// nothing can be copied or moved into it.
    pub fn set_folder_writable(&self, user: &str, folder: &str, writable: bool) {
        let maildir = self.maildir(user, folder);
        let mode = if writable { 0o700 } else { 0o500 };
        for sub in ["tmp", "new", "cur", ""] {
            let p = maildir.join(sub);
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
    }

    fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let (local, domain) = user.split_once('@').unwrap();
        let base = self
            .dir
            .path()
            .join("mail")
            .join(domain)
            .join(local)
            .join("Maildir");
        if folder == "INBOX" {
            base
        } else {
            base.join(format!(".{folder}"))
        }
    }

    /// The messages in `folder` of `user`, by UID (empty when the folder does not exist).
    pub fn list_as(&self, user: &str, folder: &str) -> Vec<Listed> {
        let exists = self
            .doveadm(&["mailbox", "list", "-u", user])
            .lines()
            .any(|l| l.trim() == folder);
        if !exists {
            return Vec::new();
        }
        let out = self.doveadm(&[
            "-f",
            "tab",
            "fetch",
            "-u",
            user,
            "uid flags hdr.message-id",
            "mailbox",
            folder,
            "all",
        ]);
        let mut v: Vec<Listed> = out
            .lines()
            .skip(1) // the column names
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut f = l.split('\t');
                Listed {
                    uid: f.next().unwrap_or_default().trim().parse().unwrap(),
                    flags: f.next().unwrap_or_default().trim().to_string(),
                    message_id: f.next().unwrap_or_default().trim().to_string(),
                }
            })
            .collect();
        v.sort_by_key(|m| m.uid);
        v
    }

    /// [`Dovecot::list_as`] for [`USER`].
    pub fn list(&self, folder: &str) -> Vec<Listed> {
        self.list_as(USER, folder)
    }

    pub fn uid_validity(&self, folder: &str) -> u32 {
        let out = self.doveadm(&["mailbox", "status", "-u", USER, "uidvalidity", folder]);
        out.split("uidvalidity=")
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("uidvalidity of {folder}: {out:?}"))
    }

    /// Removes a keyword (flag) from one mail, as a server that keeps no keywords would.
    pub fn remove_keyword(&self, folder: &str, uid: u32, keyword: &str) {
        self.doveadm(&[
            "flags",
            "remove",
            "-u",
            USER,
            keyword,
            "mailbox",
            folder,
            "uid",
            &uid.to_string(),
        ]);
    }

    /// Gives `folder` a new UIDVALIDITY, as a server does when a folder is rebuilt.
    pub fn set_uid_validity(&self, folder: &str, value: u32) {
        self.doveadm(&[
            "mailbox",
            "update",
            "-u",
            USER,
            "--uid-validity",
            &value.to_string(),
            folder,
        ]);
    }
}

impl Dovecot {
    fn write_config(&self) {
        let (d, imap_port, imaps_port) = (self.dir.path(), self.imap_port, self.imaps_port);
        let p = |s: &str| d.join(s).display().to_string();
        let oauth2 = self.oauth2_url.is_some();
        let mut conf = format!(
            r#"base_dir = {run}
state_dir = {state}
log_path = {log}
info_log_path = {log}
protocols = {protocols}
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = 1000
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_dh = </usr/share/dovecot/dh.pem
passdb {{
  driver = passwd-file
{password_mechanisms}  args = scheme=PLAIN username_format=%u {users}
}}
{oauth2_passdb}userdb {{
  driver = static
  args = {all_users}uid={MAIL_UID} gid={MAIL_UID} home={mail}/%d/%n
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#,
            run = p("run"),
            state = p("state"),
            log = p("dovecot.log"),
            cert = p("server.pem"),
            key = p("server.key"),
            users = p("users"),
            mail = p("mail"),
            mechanisms = if self.oauth2_url.is_some() {
                "plain login xoauth2 oauthbearer"
            } else {
                "plain login"
            },
            // Passwords for PLAIN and LOGIN only, so an XOAUTH2 login can succeed only through
            // the endpoint. doveadm's user lookups would then find no passdb that can say
            // whether the user exists: the static userdb takes every user.
            password_mechanisms = if oauth2 {
                "  mechanisms = plain login\n"
            } else {
                ""
            },
            all_users = if oauth2 { "allow_all_users=yes " } else { "" },
            oauth2_passdb = match &self.oauth2_url {
                Some(_) => format!(
                    "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
                    p("oauth2.conf.ext")
                ),
                None => String::new(),
            },
            protocols = if self.relay_port.is_some() {
                "imap submission"
            } else {
                "imap"
            },
        );
        if let Some(relay_port) = self.relay_port {
            conf.push_str(&format!(
                r#"hostname = submission.example.test
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
submission_relay_ssl = no
submission_relay_trusted = no
protocol submission {{
  # As a real port 587: no AUTH before STARTTLS.
  disable_plaintext_auth = yes
  mail_max_userip_connections = 100
}}
service submission-login {{
  chroot =
  inet_listener submission {{
    address = {SUBMISSION_HOST}
    port = {submission_port}
  }}
  inet_listener submissions {{
    address = {SUBMISSION_HOST}
    port = {submissions_port}
    ssl = yes
  }}
}}
"#,
                submission_port = self.submission_port,
                submissions_port = self.submissions_port,
            ));
        }
        if let Some(url) = &self.oauth2_url {
            // Every login asks the endpoint (no token cache); its answer must be active and
            // name the user who logs in.
            std::fs::write(
                d.join("oauth2.conf.ext"),
                format!(
                    "introspection_mode = post\nintrospection_url = {url}\n\
                     username_attribute = username\nactive_attribute = active\n\
                     active_value = true\n"
                ),
            )
            .unwrap();
        }
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal synchronous IMAP client for the test side (APPEND).
pub struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
    tag: u32,
}

impl Imap {
    pub fn login(port: u16, user: &str, password: &str) -> Imap {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to Dovecot");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Imap {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            tag: 0,
        };
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c.command(&format!("LOGIN \"{user}\" \"{password}\""));
        c
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("reading from Dovecot");
        l
    }

    /// Sends a command and returns its tagged OK line (panics on NO/BAD).
    pub fn command(&mut self, cmd: &str) -> String {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        write!(self.w, "{tag} {cmd}\r\n").unwrap();
        self.done(&tag, cmd)
    }

    fn done(&mut self, tag: &str, cmd: &str) -> String {
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "Dovecot closed the connection during {cmd}");
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{cmd}: {l}");
                return l;
            }
            // A literal in an untagged response: skip its bytes.
            if let Some(n) = l
                .trim_end()
                .strip_suffix('}')
                .and_then(|h| h.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut skip = vec![0; n];
                self.r.read_exact(&mut skip).unwrap();
            }
        }
    }

    /// `cmd {N}` + `data`, for APPEND.
    pub fn command_with_literal(&mut self, cmd: &str, data: &[u8]) -> String {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        write!(self.w, "{tag} {cmd} {{{}}}\r\n", data.len()).unwrap();
        let cont = self.line();
        assert!(cont.starts_with('+'), "{cmd}: {cont}");
        self.w.write_all(data).unwrap();
        self.w.write_all(b"\r\n").unwrap();
        self.done(&tag, cmd)
    }

    pub fn logout(mut self) {
        self.tag += 1;
        let _ = write!(self.w, "t{} LOGOUT\r\n", self.tag);
    }
}
