//! One check of one probe over a real socket: connect, TLS when configured (implicit, or
//! STARTTLS/STLS after the greeting), the greeting (HTTP: a GET and its status; SMTP: 220 and
//! EHLO; IMAP: `* OK` and LOGIN when an account is given; POP3: `+OK` and USER/PASS), then a
//! polite goodbye. The whole check runs under
//! `timeout`; its duration is measured with a monotonic clock (an elapsed time, not an
//! instant: the injected [`crate::clock::Clock`] says *when* a sample was taken).
//!
//! Errors say what failed, never the password.

use super::config::{ProbeConfig, ProbeKind, ProbeTls};
use super::decide::Verdict;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What one check found and how long it took.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub took: Duration,
    /// `Err` says what failed (no answer within the timeout, refused, a wrong answer).
    pub result: Result<(), String>,
}

impl Outcome {
    /// Healthy within `slow`, slow beyond it, failed on any error.
    pub fn verdict(&self, slow: Duration) -> Verdict {
        match &self.result {
            Err(_) => Verdict::Failed,
            Ok(()) if self.took > slow => Verdict::Slow,
            Ok(()) => Verdict::Healthy,
        }
    }
}

/// What a probe needs to check: its settings and, for TLS, its connector (built once).
pub struct Checker {
    cfg: ProbeConfig,
    tls: Option<tokio_rustls::TlsConnector>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection, plain or TLS, read line by line.
type Conn = BufReader<Box<dyn Io>>;

/// The longest line read from a server: a greeting or status line is far shorter.
const MAX_LINE: u64 = 8192;

impl Checker {
    /// Builds the TLS configuration when the probe uses TLS; the error says why it cannot.
    pub fn new(cfg: ProbeConfig) -> Result<Checker, String> {
        let tls = if cfg.tls != ProbeTls::None {
            let config = crate::tls::client_config(cfg.ca_file.as_deref())?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Checker { cfg, tls })
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.cfg
    }

    /// One check, cut off at `timeout`.
    pub async fn check(&self) -> Outcome {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.cfg.timeout, self.converse()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.cfg.timeout)),
        };
        Outcome {
            took: started.elapsed(),
            result,
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let t = &self.cfg.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", t.host, t.port))?;
        let _ = tcp.set_nodelay(true);
        let conn = BufReader::new(Box::new(tcp) as Box<dyn Io>);
        if self.cfg.tls == ProbeTls::Implicit {
            return self.handshake(conn).await;
        }
        Ok(conn)
    }

    /// TLS over the connection (from the first byte, or after STARTTLS was accepted).
    async fn handshake(&self, conn: Conn) -> Result<Conn, String> {
        let t = &self.cfg.target;
        let Some(connector) = &self.tls else {
            return Ok(conn);
        };
        if !conn.buffer().is_empty() {
            return Err("the server sent data before the TLS handshake".into());
        }
        let name = rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| format!("`{}` is not a TLS server name: {e}", t.host))?;
        let tls = connector
            .connect(name, conn.into_inner())
            .await
            .map_err(|e| format!("TLS handshake with {} failed: {e}", t.host))?;
        Ok(BufReader::new(Box::new(tls) as Box<dyn Io>))
    }

    fn starttls(&self) -> bool {
        self.cfg.tls == ProbeTls::StartTls
    }

    async fn converse(&self) -> Result<(), String> {
        let conn = self.connect().await?;
        match self.cfg.kind {
            ProbeKind::Http => self.http(conn).await,
            ProbeKind::Smtp => self.smtp(conn).await,
            ProbeKind::Imap => self.imap(conn).await,
            ProbeKind::Pop3 => self.pop3(conn).await,
        }
    }

    /// A GET; 2xx and 3xx are answers (a redirect to a login page is a working web
    /// server), 4xx and 5xx are failures (a probe's URL is meant to answer).
    async fn http(&self, mut conn: Conn) -> Result<(), String> {
        let conn = &mut conn;
        let t = &self.cfg.target;
        let host = if t.host.contains(':') {
            format!("[{}]", t.host)
        } else {
            t.host.clone()
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: ticketgate-probe/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            t.path,
            t.port,
            env!("CARGO_PKG_VERSION")
        );
        send(conn, &request).await?;
        let status = line(conn).await?;
        let code = status
            .strip_prefix("HTTP/")
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP status line: {}", clip(&status)))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP status {code}"))
        }
    }

    async fn imap(&self, mut conn: Conn) -> Result<(), String> {
        let greeting = line(&mut conn).await?;
        if greeting.starts_with("* PREAUTH") && !self.starttls() {
            return logout_imap(&mut conn).await;
        }
        if !greeting.starts_with("* OK") {
            return Err(format!("IMAP greeting is not OK: {}", clip(&greeting)));
        }
        if self.starttls() {
            send(&mut conn, "p0 STARTTLS\r\n").await?;
            loop {
                let l = line(&mut conn).await?;
                if l.starts_with("p0 OK") {
                    break;
                }
                if l.starts_with("p0 ") {
                    return Err(format!("IMAP STARTTLS refused: {}", clip(&l)));
                }
            }
            conn = self.handshake(conn).await?;
        }
        let conn = &mut conn;
        if let Some(a) = &self.cfg.account {
            send(
                conn,
                &format!(
                    "p1 LOGIN {} {}\r\n",
                    imap_quote(&a.username),
                    imap_quote(a.password.expose())
                ),
            )
            .await?;
            loop {
                let l = line(conn).await?;
                if l.starts_with("p1 OK") {
                    break;
                }
                if l.starts_with("p1 ") {
                    return Err(format!("IMAP login refused: {}", clip(&l)));
                }
            }
        }
        logout_imap(conn).await
    }

    async fn pop3(&self, mut conn: Conn) -> Result<(), String> {
        let greeting = line(&mut conn).await?;
        if !greeting.starts_with("+OK") {
            return Err(format!("POP3 greeting is not +OK: {}", clip(&greeting)));
        }
        if self.starttls() {
            send(&mut conn, "STLS\r\n").await?;
            let l = line(&mut conn).await?;
            if !l.starts_with("+OK") {
                return Err(format!("POP3 STLS refused: {}", clip(&l)));
            }
            conn = self.handshake(conn).await?;
        }
        let conn = &mut conn;
        if let Some(a) = &self.cfg.account {
            send(conn, &format!("USER {}\r\n", a.username)).await?;
            let l = line(conn).await?;
            if !l.starts_with("+OK") {
                return Err(format!("POP3 USER refused: {}", clip(&l)));
            }
            send(conn, &format!("PASS {}\r\n", a.password.expose())).await?;
            let l = line(conn).await?;
            if !l.starts_with("+OK") {
                return Err(format!("POP3 login refused: {}", clip(&l)));
            }
        }
        send(conn, "QUIT\r\n").await?;
        let _ = line(conn).await;
        Ok(())
    }
}

impl Checker {
    async fn smtp(&self, mut conn: Conn) -> Result<(), String> {
        let greeting = reply(&mut conn).await?;
        if !greeting.starts_with("220") {
            return Err(format!("SMTP greeting is not 220: {}", clip(&greeting)));
        }
        ehlo(&mut conn).await?;
        if self.starttls() {
            send(&mut conn, "STARTTLS\r\n").await?;
            let l = reply(&mut conn).await?;
            if !l.starts_with("220") {
                return Err(format!("SMTP STARTTLS refused: {}", clip(&l)));
            }
            conn = self.handshake(conn).await?;
            ehlo(&mut conn).await?;
        }
        send(&mut conn, "QUIT\r\n").await?;
        let _ = reply(&mut conn).await;
        Ok(())
    }
}

async fn ehlo(conn: &mut Conn) -> Result<(), String> {
    send(conn, "EHLO ticketgate-probe.invalid\r\n").await?;
    let ehlo = reply(conn).await?;
    if !ehlo.starts_with("250") {
        return Err(format!("SMTP EHLO refused: {}", clip(&ehlo)));
    }
    Ok(())
}

async fn logout_imap(conn: &mut Conn) -> Result<(), String> {
    send(conn, "p2 LOGOUT\r\n").await?;
    // The server's BYE and OK are a courtesy: the check has succeeded already.
    let _ = line(conn).await;
    Ok(())
}

/// An SMTP reply: its lines up to the one without `-` after the code; returns the last.
async fn reply(conn: &mut Conn) -> Result<String, String> {
    for _ in 0..100 {
        let l = line(conn).await?;
        if l.as_bytes().get(3) != Some(&b'-') {
            return Ok(l);
        }
    }
    Err("SMTP reply of more than 100 lines".into())
}

async fn send(conn: &mut Conn, text: &str) -> Result<(), String> {
    let w = conn.get_mut();
    w.write_all(text.as_bytes())
        .await
        .map_err(|e| format!("connection lost while writing: {e}"))?;
    w.flush()
        .await
        .map_err(|e| format!("connection lost while writing: {e}"))
}

/// One line, without its end; the connection closing first is an error.
async fn line(conn: &mut Conn) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = (&mut *conn)
        .take(MAX_LINE)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| format!("connection lost while reading: {e}"))?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    if !buf.ends_with(b"\n") {
        return Err(format!("a line longer than {MAX_LINE} bytes"));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
}

/// An IMAP quoted string.
fn imap_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A server's line, shortened for a message.
fn clip(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(120).collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_from_duration_and_result() {
        let slow = Duration::from_millis(100);
        let o = |ms, ok: bool| Outcome {
            took: Duration::from_millis(ms),
            result: if ok { Ok(()) } else { Err("x".into()) },
        };
        assert_eq!(o(50, true).verdict(slow), Verdict::Healthy);
        assert_eq!(o(150, true).verdict(slow), Verdict::Slow);
        assert_eq!(o(5, false).verdict(slow), Verdict::Failed);
    }

    #[test]
    fn imap_quoting_escapes_quotes_and_backslashes() {
        assert_eq!(imap_quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
