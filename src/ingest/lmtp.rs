//! LMTP delivery (RFC 2033): an MTA (Postfix, Exim) hands mail over on a Unix socket or a
//! loopback TCP port, keeping its connection open.
//!
//! - `LHLO` advertises `PIPELINING`, `ENHANCEDSTATUSCODES`, `8BITMIME` and `SIZE`
//!   (`inbound.max_message_size`); `MAIL`, `RCPT`, `DATA`, `RSET`, `NOOP`, `QUIT`.
//! - A recipient that is not one of our addresses (`loops.own_addresses`, which always holds
//!   `outbound.from`) gets `550 5.1.1` at `RCPT`.
//! - After the data, one reply per accepted recipient, sent only once the mail's effects are
//!   committed: `250 2.0.0`; `451 4.3.0` when the store cannot take it (the MTA keeps the mail
//!   and retries); `552 5.3.4` when it is over the size limit.
//! - **Group commit.** Sessions do not write: they hand the mail to one committer
//!   ([`committer`]), which takes everything that arrived while the store's writer was busy
//!   as one [`Pipeline`](crate::pipeline::Pipeline) batch (one transaction, one fsync) on the
//!   [`Db`](crate::store::Db) writer, then answers each session.
//! - Limits, so that a client cannot exhaust memory: command lines of [`MAX_COMMAND_LINE`]
//!   bytes, data kept up to `inbound.max_message_size` (the rest is read and dropped),
//!   [`MAX_RECIPIENTS`] per transaction, `inbound.lmtp.max_connections` sessions, and
//!   [`READ_TIMEOUT`] for each read.
//!
//! At shutdown the listener stops accepting; a session waiting for a command is told `421`,
//! one inside a transaction finishes it (the commit and its replies) first.

use crate::app::App;
use crate::config::{LmtpConfig, LmtpListen};
use crate::pipeline::{Outcome, RawMail, Report};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Longest command line accepted (RFC 5321 asks for 512; addresses may be long).
pub const MAX_COMMAND_LINE: usize = 4096;
/// Longest data line kept (Postfix folds at 2048); longer lines count against the size.
const MAX_DATA_LINE: usize = 1 << 20;
/// Recipients accepted in one transaction; more get `452 4.5.3`.
pub const MAX_RECIPIENTS: usize = 100;
/// Bad commands before a session is closed.
const MAX_ERRORS: usize = 20;
/// Each read (a command, a data line) must arrive within this.
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Mails waiting for the committer; a session waits when it is full.
const QUEUE: usize = 1024;

/// What the listener did, once stopped.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Served {
    pub inbound: Report,
    /// Transactions committed (each holding one or more mails).
    pub batches: usize,
    /// Mails answered `451` because the store could not take them.
    pub deferred: usize,
    /// The sum, over the mails handed to the committer, of the time from the end of their
    /// data to their outcome (their commit's wait and duration), in microseconds. Divided
    /// by the serving time it is the mean number of mails waiting for a commit.
    pub wait_micros: u64,
    /// The most sessions open at once.
    pub peak_sessions: usize,
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

/// A bound listener, ready to [`serve`].
pub struct Bound {
    listener: Listener,
    /// `127.0.0.1:PORT` (the port actually bound) or `unix:PATH`.
    pub address: String,
}

/// Binds the configured address (port 0: any free port; a stale Unix socket file is
/// replaced, and the socket gets `inbound.lmtp.socket_mode`).
pub async fn bind(cfg: &LmtpConfig) -> std::io::Result<Bound> {
    match &cfg.listen {
        LmtpListen::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(addr).await?;
            let address = l.local_addr()?.to_string();
            Ok(Bound {
                listener: Listener::Tcp(l),
                address,
            })
        }
        LmtpListen::Unix(path) => {
            use std::os::unix::fs::{FileTypeExt, PermissionsExt};
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if m.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                } else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", path.display()),
                    ));
                }
            }
            let l = tokio::net::UnixListener::bind(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))?;
            Ok(Bound {
                listener: Listener::Unix(l, path.clone()),
                address: format!("unix:{}", path.display()),
            })
        }
    }
}

/// A mail handed to the committer, and where its outcome goes.
struct Job {
    mail: RawMail,
    reply: oneshot::Sender<Result<Outcome, String>>,
}

/// Accepts sessions until `stop`, then waits for the sessions and the committer to finish
/// what is in flight. `deliver` is woken after a commit that queued mail.
pub async fn serve(
    bound: Bound,
    app: App,
    stop: CancellationToken,
    deliver: Arc<Notify>,
) -> Served {
    let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
    let committing = tokio::spawn(committer(app.clone(), queue, deliver));
    let shared = Arc::new(Session {
        app: app.clone(),
        jobs,
        stop: stop.clone(),
        host: hostname(),
        waited: AtomicU64::new(0),
    });
    let limit = app
        .cfg
        .inbound
        .lmtp
        .as_ref()
        .map_or(64, |l| l.max_connections);
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = accept(&bound.listener) => a,
        };
        // Reap finished sessions so the set does not grow.
        while sessions.try_join_next().is_some() {}
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "LMTP: accepting a connection failed");
                // Out of file descriptors, typically: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (s, open, peak) = (shared.clone(), open.clone(), peak.clone());
        sessions.spawn(async move {
            let (r, mut w) = tokio::io::split(stream);
            let before = open.fetch_add(1, Ordering::SeqCst);
            peak.fetch_max(before + 1, Ordering::SeqCst);
            if before >= limit {
                let _ = w
                    .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
                    .await;
            } else if let Err(e) = s.run(BufReader::new(r), w).await {
                tracing::debug!(error = %e, "LMTP session ended");
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    while sessions.join_next().await.is_some() {}
    let waited = shared.waited.load(Ordering::SeqCst);
    drop(shared); // the committer ends once every session has dropped its sender
    if let Listener::Unix(_, path) = &bound.listener {
        let _ = std::fs::remove_file(path);
    }
    let mut served = committing.await.unwrap_or_default();
    served.wait_micros = waited;
    served.peak_sessions = peak.load(Ordering::SeqCst);
    served
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

async fn accept(l: &Listener) -> std::io::Result<Box<dyn Stream>> {
    Ok(match l {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
        Listener::Unix(l, _) => Box::new(l.accept().await?.0),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".into())
}

/// The group committer: takes the first waiting mail and everything queued behind it (up to
/// `inbound.batch_size`) as one batch on the store's writer; while that commits, the next
/// batch gathers in the queue. Ends when every session is gone.
async fn committer(app: App, mut queue: mpsc::Receiver<Job>, deliver: Arc<Notify>) -> Served {
    let mut served = Served::default();
    let max = app.cfg.inbound.batch_size.max(1);
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < max {
            match queue.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (mails, replies): (Vec<RawMail>, Vec<_>) =
            jobs.into_iter().map(|j| (j.mail, j.reply)).unzip();
        let n = mails.len();
        let p = app.pipeline.clone();
        let started = std::time::Instant::now();
        p.prefetch(&mails).await; // DNS (DKIM keys, DMARC) before the transaction
        match app.db.write(move |s| p.process(s, &mails)).await {
            Ok((report, outcomes)) => {
                app.telemetry.batch_committed(&report, started.elapsed());
                served.batches += 1;
                served.inbound.add(&report);
                if report.outbound > 0 {
                    deliver.notify_one();
                }
                tracing::debug!(mails = n, "LMTP: batch committed");
                let mut outcomes = outcomes.into_iter();
                for r in replies {
                    let _ = r.send(Ok(outcomes.next().unwrap_or(Outcome::Duplicate)));
                }
            }
            Err(e) => {
                served.deferred += n;
                tracing::error!(error = %e, mails = n,
                    "LMTP: the store could not take a batch; answered 451, the MTA keeps the mail and retries");
                for r in replies {
                    let _ = r.send(Err(e.to_string()));
                }
            }
        }
    }
    served
}

/// What every session shares.
struct Session {
    app: App,
    jobs: mpsc::Sender<Job>,
    stop: CancellationToken,
    host: String,
    /// [`Served::wait_micros`].
    waited: AtomicU64,
}

/// What one line read gave.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A whole line (with its line ending) was appended.
    Full,
    /// The line was longer than allowed: its first bytes were appended, the rest dropped.
    TooLong,
    /// The peer closed the connection (a partial line is dropped).
    Eof,
}

/// Reads one line into `out`, keeping at most `max` bytes of it and dropping the rest.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    let mut kept = 0usize;
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let take = chunk.len().min(max - kept);
        out.extend_from_slice(&chunk[..take]);
        kept += take;
        if take < chunk.len() {
            too_long = true;
        }
        let used = chunk.len();
        r.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Full });
        }
    }
}

async fn timed<T>(f: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(READ_TIMEOUT, f)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client idle too long"))?
}

/// The envelope of the transaction under way.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

impl Session {
    async fn run<R, W>(&self, mut r: BufReader<R>, mut w: W) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let max = self.app.cfg.inbound.max_message_bytes;
        let mut out: Vec<u8> = Vec::new();
        out.extend_from_slice(format!("220 {} LMTP ticketgate ready\r\n", self.host).as_bytes());
        let mut greeted = false;
        let mut env = Envelope::default();
        let mut errors = 0usize;
        let mut line = Vec::with_capacity(256);
        loop {
            // Pipelining: replies are written when no further command is already waiting.
            if r.buffer().is_empty() && !out.is_empty() {
                w.write_all(&out).await?;
                w.flush().await?;
                out.clear();
            }
            line.clear();
            let idle = r.buffer().is_empty();
            let read = tokio::select! {
                read = timed(read_line(&mut r, &mut line, MAX_COMMAND_LINE)) => read?,
                _ = self.stop.cancelled(), if idle => {
                    out.extend_from_slice(b"421 4.3.2 Shutting down, try again later\r\n");
                    w.write_all(&out).await?;
                    return w.flush().await;
                }
            };
            match read {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    errors += 1;
                    out.extend_from_slice(b"500 5.5.2 Line too long\r\n");
                    continue;
                }
                Line::Full => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let (verb, arg) = match text.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
                None => (text.to_ascii_uppercase(), ""),
            };
            let reply: String = match verb.as_str() {
                "LHLO" if arg.is_empty() => "501 5.5.4 LHLO needs a domain\r\n".into(),
                "LHLO" => {
                    greeted = true;
                    env = Envelope::default();
                    format!(
                        "250-{}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE {max}\r\n",
                        self.host
                    )
                }
                "HELO" | "EHLO" => "500 5.5.1 This is LMTP: say LHLO\r\n".into(),
                "MAIL" if !greeted => "503 5.5.1 Say LHLO first\r\n".into(),
                "MAIL" if env.from.is_some() => "503 5.5.1 Nested MAIL command\r\n".into(),
                "MAIL" => match path_arg(arg, "FROM:") {
                    None => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".into(),
                    Some((from, params)) => match declared_size(params) {
                        Some(n) if n > max => {
                            format!("552 5.3.4 Message too big: {n} bytes, the limit is {max}\r\n")
                        }
                        _ => {
                            env.from = Some(from);
                            "250 2.1.0 Sender OK\r\n".into()
                        }
                    },
                },
                "RCPT" if env.from.is_none() => "503 5.5.1 MAIL first\r\n".into(),
                "RCPT" => match path_arg(arg, "TO:") {
                    None => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".into(),
                    Some((to, _)) if env.to.len() >= MAX_RECIPIENTS => {
                        format!("452 4.5.3 <{to}>: too many recipients\r\n")
                    }
                    Some((to, _)) => {
                        if self.is_ours(&to) {
                            let r = format!("250 2.1.5 <{to}> OK\r\n");
                            env.to.push(to);
                            r
                        } else {
                            format!("550 5.1.1 <{to}>: no such mailbox here\r\n")
                        }
                    }
                },
                "DATA" if env.from.is_none() => "503 5.5.1 MAIL first\r\n".into(),
                "DATA" if env.to.is_empty() => "503 5.5.1 No valid recipients\r\n".into(),
                "DATA" => {
                    out.extend_from_slice(b"354 2.0.0 End data with <CR><LF>.<CR><LF>\r\n");
                    w.write_all(&out).await?;
                    w.flush().await?;
                    out.clear();
                    let Some(body) = read_data(&mut r, max).await? else {
                        return Ok(()); // closed inside the data: nothing was accepted
                    };
                    let rcpts = std::mem::take(&mut env.to);
                    env = Envelope::default();
                    let answer = match body {
                        Data::TooBig(n) => {
                            format!("552 5.3.4 Message too big: over {max} bytes (at least {n})")
                        }
                        Data::Mail(bytes) => self.commit(bytes, &rcpts).await,
                    };
                    for to in &rcpts {
                        out.extend_from_slice(with_rcpt(&answer, to).as_bytes());
                    }
                    continue;
                }
                "RSET" => {
                    env = Envelope::default();
                    "250 2.0.0 OK\r\n".into()
                }
                "NOOP" => "250 2.0.0 OK\r\n".into(),
                "VRFY" => "252 2.5.0 Cannot verify, send the mail\r\n".into(),
                "QUIT" => {
                    out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                    w.write_all(&out).await?;
                    return w.flush().await;
                }
                _ => {
                    errors += 1;
                    "500 5.5.1 Unknown command\r\n".into()
                }
            };
            if reply.starts_with('5') && !reply.starts_with("550") && !reply.starts_with("552") {
                errors += 1;
            }
            out.extend_from_slice(reply.as_bytes());
            if errors >= MAX_ERRORS {
                out.extend_from_slice(b"421 4.7.0 Too many errors, closing\r\n");
                w.write_all(&out).await?;
                return w.flush().await;
            }
        }
    }

    /// Whether mail to `to` is ours: `loops.own_addresses` (which holds `outbound.from`).
    fn is_ours(&self, to: &str) -> bool {
        let to = to.to_ascii_lowercase();
        self.app.cfg.loops.own_addresses.contains(&to)
    }

    /// Hands the mail to the committer and waits for its outcome; the reply's text, without
    /// the recipient.
    async fn commit(&self, bytes: Vec<u8>, rcpts: &[String]) -> String {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            mail: RawMail {
                source: format!("lmtp:{}", rcpts.join(",")),
                bytes,
            },
            reply: tx,
        };
        let handed = std::time::Instant::now();
        if self.jobs.send(job).await.is_err() {
            return "451 4.3.0 Shutting down, try again later".into();
        }
        let outcome = rx.await;
        let micros = u64::try_from(handed.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.waited.fetch_add(micros, Ordering::SeqCst);
        match outcome {
            Ok(Ok(outcome)) => match outcome {
                Outcome::Created { ticket } => format!("250 2.0.0 OK: created {ticket}"),
                Outcome::Appended { ticket } => format!("250 2.0.0 OK: added to {ticket}"),
                Outcome::Quarantined { code, .. } => {
                    format!("250 2.0.0 OK: kept for review ({code})")
                }
                Outcome::Duplicate => "250 2.0.0 OK: already received".into(),
                Outcome::Report { customer } => {
                    format!("250 2.0.0 OK: report request of {customer} answered")
                }
                Outcome::Subscription { .. } => "250 2.0.0 OK: subscription request".into(),
            },
            Ok(Err(_)) | Err(_) => {
                "451 4.3.0 Temporary failure: cannot store the message now, try again later".into()
            }
        }
    }
}

/// `answer` (`CODE X.Y.Z text`) with `<rcpt>` after the enhanced code, CRLF-terminated.
fn with_rcpt(answer: &str, rcpt: &str) -> String {
    let mut parts = answer.splitn(3, ' ');
    let code = parts.next().unwrap_or("451");
    let enhanced = parts.next().unwrap_or("4.3.0");
    let text = parts.next().unwrap_or("");
    format!("{code} {enhanced} <{rcpt}> {text}\r\n")
}

/// The address of `FROM:<a> PARAMS` / `TO:<a> PARAMS` and the parameters; `None` when
/// malformed. The null path `<>` is the empty string.
fn path_arg<'a>(arg: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let mut addr = &rest[..end];
    // A source route (`@a,@b:user@host`) is ignored (RFC 5321, C).
    if addr.starts_with('@')
        && let Some((_, a)) = addr.split_once(':')
    {
        addr = a;
    }
    if addr.chars().any(|c| c.is_control() || c == '<' || c == ' ') {
        return None;
    }
    Some((addr.to_string(), rest[end + 1..].trim()))
}

/// `SIZE=n` among MAIL's parameters.
fn declared_size(params: &str) -> Option<usize> {
    params.split_ascii_whitespace().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.eq_ignore_ascii_case("SIZE") {
            v.parse().ok()
        } else {
            None
        }
    })
}

enum Data {
    Mail(Vec<u8>),
    /// Over the limit: read to the end and dropped; the bytes seen.
    TooBig(usize),
}

/// Reads the data up to the lone `.` line, undoing dot-stuffing; keeps at most `max` bytes.
/// `None` when the peer closed before the end.
async fn read_data<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Data>> {
    let mut mail: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        match timed(read_line(r, &mut line, MAX_DATA_LINE)).await? {
            Line::Eof => return Ok(None),
            Line::Full | Line::TooLong => {}
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let body = line.strip_prefix(b".").unwrap_or(&line);
        seen = seen.saturating_add(body.len());
        if seen <= max {
            mail.extend_from_slice(body);
        } else if !mail.is_empty() {
            mail = Vec::new(); // over the limit: free it at once
        }
    }
    Ok(Some(if seen > max {
        Data::TooBig(seen)
    } else {
        Data::Mail(mail)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_line_is_cut_and_the_rest_dropped() {
        let mut r = BufReader::with_capacity(4, &b"abcdefghij\r\nnext\r\n"[..]);
        let mut out = Vec::new();
        assert_eq!(read_line(&mut r, &mut out, 5).await.unwrap(), Line::TooLong);
        assert_eq!(out, b"abcde");
        out.clear();
        // The limit counts the line ending.
        assert_eq!(read_line(&mut r, &mut out, 6).await.unwrap(), Line::Full);
        assert_eq!(out, b"next\r\n");
        out.clear();
        assert_eq!(read_line(&mut r, &mut out, 5).await.unwrap(), Line::Eof);
    }

    #[tokio::test]
    async fn data_is_unstuffed_and_bounded() {
        let mut r = BufReader::new(&b"a\r\n..b\r\n.\r\nMAIL"[..]);
        let Some(Data::Mail(m)) = read_data(&mut r, 100).await.unwrap() else {
            panic!("a mail")
        };
        assert_eq!(m, b"a\r\n.b\r\n");
        let mut r = BufReader::new(&b"0123456789\r\n0123456789\r\n.\r\n"[..]);
        assert!(matches!(
            read_data(&mut r, 15).await.unwrap(),
            Some(Data::TooBig(24))
        ));
        let mut r = BufReader::new(&b"abc\r\n"[..]);
        assert!(read_data(&mut r, 15).await.unwrap().is_none());
    }

    #[test]
    fn paths_and_sizes() {
        assert_eq!(
            path_arg("FROM:<a@b.example> SIZE=12 BODY=8BITMIME", "FROM:"),
            Some(("a@b.example".into(), "SIZE=12 BODY=8BITMIME"))
        );
        assert_eq!(path_arg("from: <>", "FROM:"), Some((String::new(), "")));
        assert_eq!(
            path_arg("TO:<@relay:x@y.example>", "TO:"),
            Some(("x@y.example".into(), ""))
        );
        assert_eq!(path_arg("TO:x@y", "TO:"), None);
        assert_eq!(declared_size("BODY=8BITMIME size=99"), Some(99));
        assert_eq!(
            with_rcpt("451 4.3.0 try later", "s@x"),
            "451 4.3.0 <s@x> try later\r\n"
        );
    }
}
