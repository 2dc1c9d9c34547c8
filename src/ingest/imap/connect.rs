//! Connecting to an IMAP server: TCP, implicit TLS or STARTTLS, the greeting, and login
//! by password or XOAUTH2 (the token read fresh at each login).

use super::*;

impl Mailbox {
    /// TCP, then TLS as configured, then login.
    pub(super) async fn connect(&self) -> Result<Session, Failure> {
        let cfg = &self.cfg;
        let tcp = match tokio::time::timeout(
            COMMAND_TIMEOUT,
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                return Err(self.fail(
                    format!("cannot connect: {e}"),
                    format!(
                        "check {} and {} and that the server is reachable",
                        self.key("host"),
                        self.key("port")
                    ),
                ));
            }
            Err(_) => {
                return Err(self.fail(
                    format!("no answer to connect within {COMMAND_TIMEOUT:?}"),
                    "check the host, the port and any firewall",
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        let client = match cfg.tls {
            ImapTls::None => greet(self, async_imap::Client::new(Conn::Plain(tcp))).await?,
            ImapTls::Implicit => {
                let tls = self.tls(tcp).await?;
                greet(self, async_imap::Client::new(Conn::Tls(Box::new(tls)))).await?
            }
            ImapTls::StartTls => {
                let mut plain = greet(self, async_imap::Client::new(tcp)).await?;
                timed(COMMAND_TIMEOUT, plain.run_command_and_check_ok("STARTTLS", None))
                    .await
                    .map_err(|e| {
                        self.fail(
                            format!("STARTTLS refused: {e}"),
                            format!(
                                "the server may not offer STARTTLS: check {} (\"implicit\" on port 993?)",
                                self.key("tls")
                            ),
                        )
                    })?;
                let tls = self.tls(plain.into_inner()).await?;
                async_imap::Client::new(Conn::Tls(Box::new(tls)))
            }
        };
        let session = match &cfg.auth {
            ImapAuth::Password(pw) => timed_login(client.login(&cfg.username, pw.expose())).await,
            ImapAuth::XOAuth2(source) => {
                let (token, expires_in) = read_token_text(source)
                    .await
                    .and_then(|t| token_and_expiry(&t))
                    .map_err(|e| {
                        self.fail(
                            format!("cannot get the XOAUTH2 token: {e}"),
                            format!(
                                "check {} / {}",
                                self.key("token_file"),
                                self.key("token_command")
                            ),
                        )
                    })?;
                // Readiness and metrics: the token's own `exp` (a JWT), else `expires_in`.
                let expiry = crate::telemetry::jwt_expiry(&token).or_else(|| {
                    expires_in.and_then(|s| {
                        Some(self.clock.now() + chrono::Duration::seconds(i64::try_from(s).ok()?))
                    })
                });
                self.telemetry.mailbox(self.index).token_expiry(expiry);
                let left = expiry.map(|at| at - self.clock.now());
                if let Some(left) = left.filter(|l| *l < crate::telemetry::TOKEN_WARNING) {
                    let secs = left.num_seconds();
                    tracing::warn!(mailbox = %cfg.name, expires_in_secs = secs,
                        "the XOAUTH2 token expires in {secs} s: refresh it (token_file / \
                         token_command) or fetching from this mailbox stops");
                }
                timed_login(client.authenticate(
                    "XOAUTH2",
                    XOAuth2 {
                        response: Some(xoauth2_response(&cfg.username, &token)),
                    },
                ))
                .await
            }
        };
        session.map_err(|e| {
            // Refused by the server (NO), as opposed to a connection that broke meanwhile.
            if matches!(e, async_imap::error::Error::No(_)) {
                self.telemetry.login_failed(&cfg.name);
            }
            let creds = match cfg.auth {
                ImapAuth::Password(_) => "password_env / password_file",
                ImapAuth::XOAuth2(_) => "token_file / token_command (is the token expired?)",
            };
            self.fail(
                format!("login as {} failed: {e}", cfg.username),
                format!(
                    "check {} and {} {creds}",
                    self.key("username"),
                    format_args!("inbound.imap[{}]", self.index)
                ),
            )
        })
    }

    pub(super) async fn tls(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let config = crate::tls::client_config(self.cfg.ca_file.as_deref()).map_err(|e| {
            self.fail(
                format!("cannot set up TLS: {e}"),
                format!("check {}", self.key("ca_file")),
            )
        })?;
        let name = rustls::pki_types::ServerName::try_from(self.cfg.host.clone()).map_err(|e| {
            self.fail(
                format!(
                    "`{}` cannot be checked against a certificate: {e}",
                    self.cfg.host
                ),
                format!("check {}", self.key("host")),
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        match tokio::time::timeout(COMMAND_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => {
                let hint = if self.cfg.ca_file.is_some() {
                    format!(
                        "the server's certificate must be signed by a CA in {} and name {}",
                        self.key("ca_file"),
                        self.cfg.host
                    )
                } else {
                    format!(
                        "the server's certificate must be signed by a CA this system trusts (or set {}) and name {}; check also {}",
                        self.key("ca_file"),
                        self.cfg.host,
                        self.key("tls")
                    )
                };
                Err(self.fail(format!("TLS handshake failed: {e}"), hint))
            }
            Err(_) => Err(self.fail(
                format!("no TLS handshake within {COMMAND_TIMEOUT:?}"),
                format!(
                    "check {}: does the port speak TLS from the start (\"implicit\") or after STARTTLS?",
                    self.key("tls")
                ),
            )),
        }
    }
}

pub(super) async fn timed_login<C>(
    f: impl Future<Output = Result<Session, (async_imap::error::Error, C)>>,
) -> async_imap::error::Result<Session> {
    timed(COMMAND_TIMEOUT, async { f.await.map_err(|(e, _)| e) }).await
}

/// Reads the server's greeting.
pub(super) async fn greet<T>(
    mb: &Mailbox,
    mut client: async_imap::Client<T>,
) -> Result<async_imap::Client<T>, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(client),
        Ok(Ok(None)) => Err(mb.fail(
            "the server closed the connection before greeting",
            format!("check {} and {}", mb.key("port"), mb.key("tls")),
        )),
        Ok(Err(e)) => Err(mb.fail(
            format!("reading the greeting failed: {e}"),
            format!(
                "check {} and {} (TLS on a plain port, or the reverse?)",
                mb.key("port"),
                mb.key("tls")
            ),
        )),
        Err(_) => Err(mb.fail(
            format!("no greeting within {COMMAND_TIMEOUT:?}"),
            format!(
                "check {}: a TLS port waits for a handshake (\"implicit\")",
                mb.key("tls")
            ),
        )),
    }
}

/// The XOAUTH2 SASL initial response.
pub fn xoauth2_response(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

pub(super) struct XOAuth2 {
    pub(super) response: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Vec<u8>;

    /// The first challenge (empty) gets the credentials; a second one is the server's error
    /// report, answered empty so that it ends the exchange with `NO`.
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.response
            .take()
            .map(String::into_bytes)
            .unwrap_or_default()
    }
}

/// The access token, read afresh: a file's content, or what a command prints.
#[cfg(test)]
pub(super) async fn read_token(source: &TokenSource) -> Result<String, String> {
    let token = read_token_text(source).await?;
    Ok(token_and_expiry(&token)?.0)
}

/// What the token source gives, as is.
async fn read_token_text(source: &TokenSource) -> Result<String, String> {
    let token = match source {
        TokenSource::File(p) => read_small_file(p.clone())
            .await
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        TokenSource::Command(cmd) => {
            let cmd = cmd.clone();
            let run = tokio::task::spawn_blocking(move || {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .stdin(std::process::Stdio::null())
                    .output()
            });
            let out = match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
                Ok(Ok(Ok(out))) => out,
                Ok(Ok(Err(e))) => return Err(format!("cannot run the command: {e}")),
                Ok(Err(e)) => return Err(format!("the command's task failed: {e}")),
                Err(_) => {
                    return Err(format!(
                        "the command did not finish within {COMMAND_TIMEOUT:?}"
                    ));
                }
            };
            if !out.status.success() {
                return Err(format!(
                    "the command failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            String::from_utf8(out.stdout)
                .map_err(|_| "the command printed no UTF-8 text".to_string())?
        }
    };
    Ok(token)
}

/// A token source's output: the bare token, or an OAuth2 token response (RFC 6749 §5.1,
/// JSON with `access_token` and optionally `expires_in`, seconds). Returns the token and
/// how long it is still valid, when the source says.
pub(super) fn token_and_expiry(text: &str) -> Result<(String, Option<u64>), String> {
    let text = text.trim();
    let (token, expires_in) = if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("the token source printed JSON that cannot be read: {e}"))?;
        let token = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .ok_or("the token source's JSON has no access_token")?
            .trim()
            .to_string();
        (token, v.get("expires_in").and_then(|e| e.as_u64()))
    } else {
        (text.to_string(), None)
    };
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    Ok((token, expires_in))
}

/// Reads a small file off the runtime's thread.
pub(super) async fn read_small_file(p: std::path::PathBuf) -> io::Result<String> {
    match tokio::task::spawn_blocking(move || std::fs::read_to_string(p)).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(e)),
    }
}

/// A TCP connection, with or without TLS.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn a_token_response_gives_the_token_and_its_expiry() {
        assert_eq!(
            token_and_expiry("  abc.def\n").unwrap(),
            ("abc.def".to_string(), None)
        );
        assert_eq!(
            token_and_expiry(r#"{"access_token":"ya29.x","token_type":"Bearer","expires_in":299}"#)
                .unwrap(),
            ("ya29.x".to_string(), Some(299))
        );
        assert!(token_and_expiry(r#"{"token_type":"Bearer"}"#).is_err());
        assert!(token_and_expiry(r#"{"access_token":" "}"#).is_err());
    }
}
