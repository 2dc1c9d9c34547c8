//! The daemon's web server (`ticketgate::http`) run in the test's process on a free
//! loopback port, over the test's own `App` (its store and moved clock), and a plain
//! HTTP/1.1 client for it. The server stops when the [`WebServer`] is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use ticketgate::app::App;
use tokio_util::sync::CancellationToken;

pub struct WebServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Serves `app`'s routes; its configuration must set `http.listen` (port 0).
pub fn serve(app: &App) -> WebServer {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(ticketgate::http::bind(app))
        .expect("http.listen is set and free");
    let addr = server.local_addr().unwrap();
    let stop = CancellationToken::new();
    runtime.spawn(server.serve(stop.clone()));
    WebServer {
        addr,
        stop,
        runtime: Some(runtime),
    }
}

/// An answer: status, header section, body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl WebServer {
    /// One request on its own connection (`Connection: close`) with `headers`; a POST sends
    /// `form` as `application/x-www-form-urlencoded`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        form: Option<&str>,
    ) -> Reply {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = form.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            req += &format!("{k}: {v}\r\n");
        }
        if method == "POST" {
            req += &format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        req += "\r\n";
        req += body;
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        Reply {
            status: head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    pub fn post(&self, path: &str, form: &str) -> Reply {
        self.request("POST", path, &[], Some(form))
    }
}
