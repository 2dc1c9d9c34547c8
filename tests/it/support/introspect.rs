//! An OAuth 2.0 token-introspection endpoint (RFC 7662) for Dovecot's `oauth2` passdb: a
//! small HTTP/1.1 server on a free loopback port that answers `POST /introspect` (the token
//! in the form body, Dovecot's `introspection_mode = post`) from a table of tokens the test
//! sets. A known, active token gets `{"active":true,"username":…}`; anything else gets
//! `{"active":false}`, which Dovecot turns into a failed login. Stopped when dropped.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    /// token → the user it belongs to.
    tokens: Mutex<HashMap<String, String>>,
    /// Requests answered, and how many of them said `active: false`.
    requests: AtomicUsize,
    rejected: AtomicUsize,
    stop: AtomicBool,
}

pub struct Introspection {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Introspection {
    pub fn start() -> Introspection {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let _ = answer(c, &s);
                }
            }
        });
        Introspection {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// The URL for Dovecot's `introspection_url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }

    /// `token` is valid for `user` from now on.
    pub fn grant(&self, token: &str, user: &str) {
        self.shared
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_string(), user.to_string());
    }

    /// `token` is no longer valid (revoked, or expired at the provider).
    pub fn revoke(&self, token: &str) {
        self.shared.tokens.lock().unwrap().remove(token);
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn rejected(&self) -> usize {
        self.shared.rejected.load(Ordering::SeqCst)
    }
}

impl Drop for Introspection {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request and answers it; the connection is closed after.
fn answer(conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    r.read_line(&mut request_line)?;
    let (mut length, mut bearer) = (0usize, None);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse().unwrap_or(0);
        } else if k.eq_ignore_ascii_case("authorization") {
            bearer = v.strip_prefix("Bearer ").map(str::to_string);
        }
    }
    let mut body = vec![0; length.min(64 * 1024)];
    r.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body);
    // `token=…` in the form (post mode), else the bearer header (auth mode).
    let token = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(percent_decode)
        .or(bearer)
        .unwrap_or_default();
    s.requests.fetch_add(1, Ordering::SeqCst);
    let user = s.tokens.lock().unwrap().get(&token).cloned();
    let json = match user {
        Some(u) => serde_json::json!({ "active": true, "username": u, "scope": "imap" }),
        None => {
            s.rejected.fetch_add(1, Ordering::SeqCst);
            serde_json::json!({ "active": false })
        }
    }
    .to_string();
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{json}",
        json.len()
    )?;
    w.flush()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
