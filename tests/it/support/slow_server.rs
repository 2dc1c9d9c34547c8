//! Small servers on loopback that answer slowly on purpose, for the probe tests: HTTP, SMTP,
//! IMAP and POP3, each speaking just enough of its protocol for a probe (greeting, EHLO,
//! LOGIN, USER/PASS, a GET). The delay before the greeting (HTTP: before the status line)
//! and whether the server answers at all are switchable while it runs. The listener runs on
//! the test's runtime and stops when the server is dropped.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Smtp,
    Imap,
    Pop3,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Http,
        Protocol::Smtp,
        Protocol::Imap,
        Protocol::Pop3,
    ];

    /// The `kind` of a `[[probes]]` table.
    pub fn kind(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
}

/// The probe account the IMAP and POP3 servers accept.
pub const USER: &str = "probe@eu.example";
pub const PASSWORD: &str = "pr\"obe\\pw";

struct Knobs {
    delay_ms: AtomicU64,
    /// Closes every connection at once without a word.
    down: AtomicBool,
    connections: AtomicUsize,
    logins: AtomicUsize,
}

pub struct SlowServer {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    knobs: Arc<Knobs>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowServer {
    /// Listens on a free loopback port, answering at once.
    pub async fn start(protocol: Protocol) -> SlowServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let knobs = Arc::new(Knobs {
            delay_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            logins: AtomicUsize::new(0),
        });
        let k = knobs.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let k = k.clone();
                tokio::spawn(async move {
                    k.connections.fetch_add(1, Ordering::SeqCst);
                    if k.down.load(Ordering::SeqCst) {
                        return; // dropped: the connection closes
                    }
                    let delay = Duration::from_millis(k.delay_ms.load(Ordering::SeqCst));
                    let _ = serve(protocol, stream, delay, &k).await;
                });
            }
        });
        SlowServer {
            protocol,
            addr,
            knobs,
            task,
        }
    }

    /// The wait before each greeting from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.knobs
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Whether connections are closed at once, unanswered.
    pub fn set_down(&self, down: bool) {
        self.knobs.down.store(down, Ordering::SeqCst);
    }

    pub fn connections(&self) -> usize {
        self.knobs.connections.load(Ordering::SeqCst)
    }

    /// Successful IMAP or POP3 logins with the probe account.
    pub fn logins(&self) -> usize {
        self.knobs.logins.load(Ordering::SeqCst)
    }

    /// The `target` of a `[[probes]]` table for this server.
    pub fn target(&self) -> String {
        match self.protocol {
            Protocol::Http => format!("http://{}/health", self.addr),
            _ => self.addr.to_string(),
        }
    }
}

async fn serve(
    protocol: Protocol,
    stream: TcpStream,
    delay: Duration,
    k: &Knobs,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    macro_rules! read_line {
        () => {{
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            line.trim_end().to_string()
        }};
    }
    if protocol != Protocol::Http {
        tokio::time::sleep(delay).await;
    }
    match protocol {
        Protocol::Http => {
            let request = read_line!();
            while !read_line!().is_empty() {}
            tokio::time::sleep(delay).await;
            let status = if request.starts_with("GET /health ") {
                "200 OK"
            } else {
                "404 Not Found"
            };
            w.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    .as_bytes(),
            )
            .await?;
        }
        Protocol::Smtp => {
            w.write_all(b"220-slow.test ESMTP\r\n220 slow.test ready\r\n")
                .await?;
            loop {
                let l = read_line!();
                let verb = l.get(..4).unwrap_or("").to_ascii_uppercase();
                match verb.as_str() {
                    "EHLO" => {
                        w.write_all(b"250-slow.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                            .await?
                    }
                    "QUIT" => {
                        w.write_all(b"221 bye\r\n").await?;
                        return Ok(());
                    }
                    _ => w.write_all(b"502 not here\r\n").await?,
                }
            }
        }
        Protocol::Imap => {
            w.write_all(b"* OK [CAPABILITY IMAP4rev1] slow.test ready\r\n")
                .await?;
            loop {
                let l = read_line!();
                let (tag, rest) = l.split_once(' ').unwrap_or((&l, ""));
                let upper = rest.to_ascii_uppercase();
                if upper.starts_with("LOGIN ") {
                    let expected = format!(
                        "LOGIN \"{}\" \"{}\"",
                        USER,
                        PASSWORD.replace('\\', "\\\\").replace('"', "\\\"")
                    );
                    if rest == expected {
                        k.logins.fetch_add(1, Ordering::SeqCst);
                        w.write_all(
                            format!("* CAPABILITY IMAP4rev1\r\n{tag} OK logged in\r\n").as_bytes(),
                        )
                        .await?;
                    } else {
                        w.write_all(format!("{tag} NO [AUTHENTICATIONFAILED] no\r\n").as_bytes())
                            .await?;
                    }
                } else if upper.starts_with("LOGOUT") {
                    w.write_all(format!("* BYE\r\n{tag} OK bye\r\n").as_bytes())
                        .await?;
                    return Ok(());
                } else {
                    w.write_all(format!("{tag} BAD unknown\r\n").as_bytes())
                        .await?;
                }
            }
        }
        Protocol::Pop3 => {
            w.write_all(b"+OK slow.test POP3 ready\r\n").await?;
            let mut user_ok = false;
            loop {
                let l = read_line!();
                if let Some(u) = l.strip_prefix("USER ") {
                    user_ok = u == USER;
                    w.write_all(b"+OK\r\n").await?;
                } else if let Some(p) = l.strip_prefix("PASS ") {
                    if user_ok && p == PASSWORD {
                        k.logins.fetch_add(1, Ordering::SeqCst);
                        w.write_all(b"+OK logged in\r\n").await?;
                    } else {
                        w.write_all(b"-ERR [AUTH] no\r\n").await?;
                    }
                } else if l == "QUIT" {
                    w.write_all(b"+OK bye\r\n").await?;
                    return Ok(());
                } else {
                    w.write_all(b"-ERR unknown\r\n").await?;
                }
            }
        }
    }
    w.shutdown().await
}
