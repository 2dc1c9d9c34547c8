//! The SMTP client: lettre's SMTP protocol code over connections this module opens and keeps
//! in a small pool.
//!
//! Why not lettre's own pooled transport: its sockets keep Nagle's algorithm on, and lettre
//! writes the end-of-data `.` separately from the message, so every message waits for the
//! server's delayed ACK (about 40 ms) before its `.` leaves. That caps one connection at
//! about 22 messages a second, and — worse for "nothing happens twice" — the server has the
//! whole message and accepts it the moment the `.` arrives, which a process killed during
//! the wait still sends (the kernel flushes the socket on close): the message was accepted
//! but never recorded as sent, and goes out again after the restart. With `TCP_NODELAY` the
//! `.` leaves at once and the window between the server's acceptance and our record shrinks
//! to one round trip and one commit.

use super::SendError;
use crate::config::{SmtpConfig, SmtpTls};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::{ClientId, Extension};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// An idle connection older than this is closed instead of reused (servers drop idle
/// clients after a few minutes).
const MAX_IDLE: Duration = Duration::from_secs(60);
/// An idle connection older than this is checked with NOOP before it is reused.
const CHECK_AFTER: Duration = Duration::from_secs(2);
/// The AUTH mechanisms used, in order of preference.
const AUTH: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];

/// Why setting up a session failed.
enum Greet {
    Smtp(lettre::transport::smtp::Error),
    /// Credentials are configured but the server offers none of [`AUTH`]; whether it
    /// offers STARTTLS.
    NoAuth(bool),
    /// The server refused our login.
    Auth(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for Greet {
    fn from(e: lettre::transport::smtp::Error) -> Greet {
        Greet::Smtp(e)
    }
}

pub struct SmtpClient {
    host: String,
    port: u16,
    tls: SmtpTls,
    timeout: Duration,
    hello: ClientId,
    credentials: Option<Credentials>,
    /// For STARTTLS (lettre's TLS upgrade).
    starttls: Option<TlsParameters>,
    /// For implicit TLS (our own handshake before the greeting).
    implicit: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl SmtpClient {
    pub fn new(s: &SmtpConfig) -> Result<SmtpClient, String> {
        let starttls = match s.tls {
            SmtpTls::StartTls => {
                // The same trust as implicit TLS and IMAP: `ca_file`, or the system's roots
                // (not lettre's bundled list).
                let certs = crate::tls::ca_certificates(s.ca_file.as_deref())
                    .map_err(|e| format!("outbound.smtp.ca_file: {e}"))?;
                let mut b = TlsParameters::builder(s.host.clone())
                    .certificate_store(lettre::transport::smtp::client::CertificateStore::None);
                for c in certs {
                    match Certificate::from_der(c.to_vec()) {
                        Ok(cert) => b = b.add_root_certificate(cert),
                        Err(e) if s.ca_file.is_some() => {
                            return Err(format!(
                                "outbound.smtp.ca_file: a certificate is not usable: {e}"
                            ));
                        }
                        Err(_) => {} // an odd system root: skipped, as rustls does
                    }
                }
                Some(
                    b.build_rustls()
                        .map_err(|e| format!("outbound.smtp.tls: {e}"))?,
                )
            }
            _ => None,
        };
        let implicit = match s.tls {
            SmtpTls::Implicit => {
                let cfg = crate::tls::client_config(s.ca_file.as_deref())
                    .map_err(|e| format!("outbound.smtp.ca_file: {e}"))?;
                let name = rustls::pki_types::ServerName::try_from(s.host.clone())
                    .map_err(|e| format!("outbound.smtp.host: `{}` {e}", s.host))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
            }
            _ => None,
        };
        Ok(SmtpClient {
            host: s.host.clone(),
            port: s.port,
            tls: s.tls,
            timeout: s.timeout,
            hello: s
                .helo_name
                .clone()
                .map(ClientId::Domain)
                .unwrap_or_default(),
            credentials: match (&s.username, &s.password) {
                (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_string())),
                _ => None,
            },
            starttls,
            implicit,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The longest one attempt can take, connecting included: every attempt is cut off
    /// there, so a claim that has this much time left cannot lapse mid-attempt.
    pub fn attempt_limit(&self) -> Duration {
        self.timeout.saturating_mul(8)
    }

    /// Sends one message over a pooled connection (or a new one). The connection goes back
    /// to the pool only after a clean send.
    pub async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<(), SendError> {
        let limit = self.attempt_limit();
        match tokio::time::timeout(limit, async {
            let mut conn = self.checkout().await?;
            let r = self.transaction(&mut conn, envelope, body).await;
            if r.is_ok() {
                self.checkin(conn);
            }
            // Otherwise dropped: a connection after a refused command is not reused.
            r
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient(format!(
                "SMTP: the attempt with {}:{} did not finish within {limit:?} \
                 (8 × outbound.smtp.timeout)",
                self.host, self.port
            ))),
        }
    }

    /// MAIL, RCPT, DATA and the message, each answer classified by where it came: a refused
    /// sender is our configuration's problem (transient: the mail waits), a refused
    /// recipient or message is this mail's (permanent).
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<(), SendError> {
        use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
        use lettre::transport::smtp::extension::{MailBodyParameter, MailParameter};
        let mut params = Vec::new();
        if !body.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let step = |what: &'static str| move |e: lettre::transport::smtp::Error| (what, e);
        let r = async {
            conn.command(Mail::new(envelope.from().cloned(), params))
                .await
                .map_err(step("sender"))?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), vec![]))
                    .await
                    .map_err(step("recipient"))?;
            }
            conn.command(Data).await.map_err(step("message"))?;
            conn.message(body).await.map_err(step("message"))?;
            Ok::<_, (&str, lettre::transport::smtp::Error)>(())
        }
        .await;
        match r {
            Ok(()) => Ok(()),
            Err(("sender", e)) => Err(SendError::Transient(format!(
                "SMTP: {}:{} refused the envelope sender: {e}; check outbound.smtp.envelope_from \
                 (or outbound.from) and what the server lets this account send as; the mail \
                 waits and is retried",
                self.host, self.port
            ))),
            Err((_, e)) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err((_, e)) => Err(SendError::Transient(format!("SMTP: {e}"))),
        }
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        if !conn.has_broken()
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push((conn, Instant::now()));
        }
    }

    /// The most recently used idle connection that still works, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let next = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some((mut conn, since)) = next else {
                return self.connect().await;
            };
            let age = since.elapsed();
            if age > MAX_IDLE {
                // Dropped without QUIT: a connection a NAT forgot would make QUIT wait for
                // TCP to give up.
                drop(conn);
                continue;
            }
            if age < CHECK_AFTER {
                return Ok(conn);
            }
            let alive = tokio::time::timeout(self.timeout, conn.test_connected())
                .await
                .unwrap_or(false);
            if alive {
                return Ok(conn);
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let server = format!("{}:{}", self.host, self.port);
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            SendError::Transient(format!("SMTP: {what} {server}: {e}"))
        };
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&server))
            .await
            .map_err(|_| fail("no connection within the timeout to", &"timed out"))?
            .map_err(|e| fail("cannot connect to", &e))?;
        tcp.set_nodelay(true)
            .map_err(|e| fail("cannot set TCP_NODELAY on the connection to", &e))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some((connector, name)) => {
                let tls = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| fail("TLS handshake timed out with", &"timed out"))?
                    .map_err(|e| fail("TLS handshake failed with", &e))?;
                Box::new(TlsConn(tls))
            }
            None => Box::new(tcp),
        };
        let greet = async {
            let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
            if self.tls == SmtpTls::StartTls
                && let Some(params) = &self.starttls
            {
                conn.starttls(params.clone(), &self.hello).await?;
            }
            if let Some(c) = &self.credentials {
                if conn.server_info().get_auth_mechanism(AUTH).is_none() {
                    // lettre would only say "No compatible authentication mechanism": say
                    // what the server offers and, when it wants TLS first, what to change.
                    let starttls = conn.server_info().supports_feature(Extension::StartTls);
                    conn.abort().await;
                    return Err(Greet::NoAuth(starttls));
                }
                conn.auth(AUTH, c).await.map_err(Greet::Auth)?;
            }
            Ok::<_, Greet>(conn)
        };
        match tokio::time::timeout(self.timeout.saturating_mul(2), greet).await {
            Ok(Ok(conn)) => Ok(conn),
            // Even a 5xx here is the server's or our configuration's problem, never this
            // mail's: it waits and is retried.
            Ok(Err(Greet::Smtp(e))) if e.is_permanent() => Err(SendError::Transient(format!(
                "SMTP: {server} refused the session: {e}; check outbound.smtp (host, port, tls, helo_name)"
            ))),
            Ok(Err(Greet::Smtp(e))) => Err(fail("session setup failed with", &e)),
            // A refused login is our configuration's fault, not the message's: the mail waits
            // (retried with backoff) instead of failing for good, and the error says what to
            // check.
            Ok(Err(Greet::Auth(e))) => Err(SendError::Transient(format!(
                "SMTP: {server} refused the login: {e}; check outbound.smtp.username and the \
                 password (outbound.smtp.password_env / password_file); the mail is kept and \
                 retried"
            ))),
            Ok(Err(Greet::NoAuth(starttls))) => {
                let hint = if starttls && self.tls == SmtpTls::None {
                    "; it offers STARTTLS, so it allows AUTH only over TLS: set \
                     outbound.smtp.tls = \"starttls\" (or \"tls\" on its implicit-TLS port)"
                } else {
                    ""
                };
                Err(SendError::Transient(format!(
                    "SMTP: {server} offers no AUTH mechanism ticketgate can use (PLAIN, LOGIN) \
                     on this connection, but a username and password are configured{hint}"
                )))
            }
            Err(_) => Err(fail(
                "no greeting or EHLO answer within the timeout from",
                &"timed out",
            )),
        }
    }
}

/// A TLS stream lettre can speak SMTP over.
#[derive(Debug)]
struct TlsConn(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsConn {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
