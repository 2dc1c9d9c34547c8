//! The web server of the real daemon (`ticketgate run`, `[http] listen` on port 0): health
//! and readiness, metrics, the API's tokens and scopes, problem+json errors, the customer's
//! ticket page, the ops pages, and the same pages rendered by headless Chromium.

use crate::common;
use crate::support::dovecot;

use common::mail;
use dovecot::{Dovecot, PASSWORD, USER};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PUBLIC: &str = "http://support.example.test";

/// A running daemon in a temporary directory, killed when dropped.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    db: String,
    _db_guard: Option<common::TestDatabase>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `ticketgate run` with a Maildir inbox, `.eml` outbox, the test registry,
    /// `extra` appended to the configuration, and the web server on a free port.
    fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let (db, guard) = common::database_url(dir.path());
        std::fs::write(dir.path().join("customers.toml"), common::REGISTRY).unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path().join("inbox").join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("ticketgate.toml"),
            format!(
                "[database]\nurl = \"{db}\"\n[inbound]\nmaildir = \"inbox\"\npoll_interval = \"100ms\"\ntrusted_sources = [\"maildir\"]\n\
                 [registry]\npath = \"customers.toml\"\n[outbound]\ntransport = \"file\"\ndir = \"outbox\"\n\
                 [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC}/\"\n{extra}"
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .current_dir(dir.path())
            .args(["--config", "ticketgate.toml", "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
            .spawn()
            .expect("starting the daemon");
        let mut d = Daemon {
            child,
            dir,
            addr: "127.0.0.1:1".parse().unwrap(),
            db,
            _db_guard: guard,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = d.log();
            if let Some(rest) = log.split("http listening addr=").nth(1) {
                let a: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                d.addr = a.parse().unwrap();
                break;
            }
            assert!(Instant::now() < deadline, "no listening line: {log}");
            assert!(
                d.child.try_wait().unwrap().is_none(),
                "the daemon exited: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Drops a mail into the inbox.
    fn deliver(&self, raw: &str) {
        let name = format!("{}.{}", std::process::id(), common_unique());
        let tmp = self.path("inbox/tmp").join(&name);
        std::fs::write(&tmp, raw).unwrap();
        std::fs::rename(&tmp, self.path("inbox/new").join(&name)).unwrap();
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .current_dir(self.dir.path())
            .arg("--config")
            .arg("ticketgate.toml")
            .args(args)
            .output()
            .unwrap()
    }

    fn token(&self, name: &str, scope: &str) -> String {
        let out = self.cli(&["api-token", "create", name, "--scope", scope]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn store(&self) -> Box<dyn ticketgate::store::Store> {
        ticketgate::store::open(&self.db).unwrap()
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, None)
    }

    fn api(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> Response {
        let auth = format!("Bearer {token}");
        let mut h = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        request(self.addr, method, path, &h, body)
    }

    /// Waits until `check` holds.
    fn until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(Instant::now() < deadline, "{what}: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ticket(&self, id: i64) -> Option<ticketgate::store::TicketRow> {
        self.store()
            .ticket_with_articles(id)
            .unwrap()
            .map(|(t, _)| t)
    }

    /// The customer page's URL from the acknowledgement of ticket `id`.
    fn page_token(&self, id: i64) -> String {
        let reference = format!("TKT-{id:06}");
        let mut token = None;
        self.until("an acknowledgement with a link", || {
            let rows = self.store().outbox(10_000).unwrap();
            let Some(row) = rows
                .iter()
                .find(|o| o.kind == "acknowledgement" && o.ticket_id == Some(id))
            else {
                return false;
            };
            let body = self.store().outbox_body(row.id).unwrap().unwrap();
            let text = decoded_text(&body);
            assert!(text.contains(&reference), "{text}");
            token = text
                .split(&format!("{PUBLIC}/t/"))
                .nth(1)
                .map(|r| r.chars().take_while(char::is_ascii_hexdigit).collect());
            true
        });
        let t: String = token.expect("a ticket link in the acknowledgement");
        assert_eq!(t.len(), 32, "128 bits as hex");
        t
    }
}

fn common_unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The text of a stored message, through a real parser (quoted-printable undone).
fn decoded_text(raw: &[u8]) -> String {
    let m = mail_parser::MessageParser::default().parse(raw).unwrap();
    m.body_text(0).unwrap_or_default().into_owned()
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: String,
    pub(crate) body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection.
/// One HTTP/1.1 request over a fresh connection (also used by `subscriptions`).
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    }
}

fn form(addr: SocketAddr, path: &str, body: &str, cookie: Option<&str>) -> Response {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        h.push(("Cookie", c));
    }
    request(addr, "POST", path, &h, Some(body))
}

/// A new request from ACME, with its key.
fn request_mail(subject: &str) -> String {
    mail(
        "Jane Doe <jane@acme.example>",
        subject,
        "Our key: ACME-0000-0000-0001\nThe export fails with error 500.",
    )
    .build()
}

/// Metrics by name and labels, as text lines (`name{labels} value`).
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn health_ready_and_healthcheck_answer_and_the_listen_address_is_logged() {
    let d = Daemon::start("");
    let h = d.get("/healthz", &[]);
    assert_eq!(h.status, 200, "{}", h.body);
    let r = d.get("/readyz", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["status"], "ready");
    assert_eq!(j["store"]["up"], true);
    assert_eq!(j["outbox"]["dead"], 0);
    assert_eq!(j["timers"]["overdue"], 0);
    let out = d.cli(&["healthcheck", "--addr", &d.addr.to_string()]);
    assert!(out.status.success(), "{out:?}");
    // Limits: a body over 64 KB is refused (413), so is a header section over 16 KB (431).
    let big = "x".repeat(70 * 1024);
    let r = form(d.addr, "/ops/login", &format!("token={big}"), None);
    assert_eq!(r.status, 413, "{}", r.body);
    let long = "y".repeat(17 * 1024);
    let r = d.get("/healthz", &[("X-Filler", &long)]);
    assert_eq!(r.status, 431, "{}", r.body);
    // The log has one line per request, with status and duration.
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("path=/readyz") && l.contains("status=200") && l.contains("ms=")),
        "{}",
        d.log()
    );
}

#[test]
fn a_mailbox_whose_server_stops_turns_readiness_to_503_and_back() {
    let mut dovecot = Dovecot::start();
    let d = Daemon::start(&format!(
        "{}password_file = \"{}\"\nlease = \"1m\"\n",
        dovecot.mailbox_config("support", USER, ""),
        dovecot.password_file(PASSWORD).display()
    ));
    let ready = |want: u16| {
        let r = d.get("/readyz", &[]);
        r.status == want
    };
    // Ready as soon as the mailbox is connected; its first pass may still be running.
    d.until("ready with the mailbox's first pass done", || {
        let r = d.get("/readyz", &[]);
        r.status == 200 && r.json()["mailboxes"][0]["last_sync"].is_string()
    });
    let j = d.get("/readyz", &[]).json();
    let mb = &j["mailboxes"][0];
    assert_eq!(mb["name"], "support");
    assert_eq!(mb["connected"], true);
    assert!(mb["uid_validity"].as_u64().unwrap() > 0, "{j}");
    assert!(mb["last_sync"].is_string(), "{j}");
    assert!(
        matches!(mb["state"].as_str(), Some("idle" | "polling")),
        "{j}"
    );
    dovecot.stop();
    d.until("readiness 503 once the server is gone", || ready(503));
    let j = d.get("/readyz", &[]).json();
    assert_eq!(j["status"], "not_ready");
    assert_eq!(j["mailboxes"][0]["connected"], false);
    assert!(j["mailboxes"][0]["last_error"].is_string(), "{j}");
    let out = d.cli(&["healthcheck", "--addr", &d.addr.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let m = d.get("/metrics", &[]).body;
    assert_eq!(
        metric(&m, "ticketgate_mailbox_connected{mailbox=\"support\"}"),
        Some(0.0),
        "{m}"
    );
    dovecot.restart();
    d.until("ready again after the server is back", || ready(200));
    let m = d.get("/metrics", &[]).body;
    assert_eq!(
        metric(&m, "ticketgate_mailbox_connected{mailbox=\"support\"}"),
        Some(1.0),
        "{m}"
    );
}

#[test]
fn metrics_are_all_present_and_move_after_mail() {
    let d = Daemon::start("");
    let before = d.get("/metrics", &[]);
    assert_eq!(before.status, 200);
    for name in [
        "ticketgate_inbound_mails",
        "ticketgate_ingest_seconds",
        "ticketgate_outbox_messages",
        "ticketgate_outbox_oldest_pending_seconds",
        "ticketgate_delivery_attempts",
        "ticketgate_sla_breaches",
        "ticketgate_timers_overdue",
        "ticketgate_build",
    ] {
        assert!(
            before.body.contains(&format!("# TYPE {name} ")),
            "{name} missing: {}",
            before.body
        );
    }
    assert!(
        before
            .body
            .contains("ticketgate_build_info{version=\"0.1.0\"} 1"),
        "{}",
        before.body
    );
    let created = |t: &str| metric(t, "ticketgate_inbound_mails_total{outcome=\"created\"}");
    let sent = |t: &str| metric(t, "ticketgate_delivery_attempts_total{result=\"sent\"}");
    assert_eq!(created(&before.body).unwrap_or(0.0), 0.0);
    d.deliver(&request_mail("Export fails"));
    d.deliver(&mail("Nobody <x@nowhere.example>", "Hello", "no key here").build());
    d.until("the mail counted and its acknowledgement sent", || {
        let t = d.get("/metrics", &[]).body;
        created(&t) == Some(1.0) && sent(&t).unwrap_or(0.0) >= 1.0
    });
    let after = d.get("/metrics", &[]).body;
    assert_eq!(
        metric(
            &after,
            "ticketgate_inbound_mails_total{outcome=\"quarantined\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert!(
        metric(&after, "ticketgate_ingest_seconds_count").unwrap() >= 2.0,
        "{after}"
    );
    assert_eq!(
        metric(&after, "ticketgate_outbox_messages{state=\"pending\"}"),
        Some(0.0),
        "{after}"
    );
}

#[test]
fn api_scopes_revocation_problem_json_and_no_internal_note_in_public_paths() {
    let d = Daemon::start("");
    d.deliver(&request_mail("Export fails"));
    let token = d.page_token(1);
    let read = d.token("reader", "read");
    let agent = d.token("agent1", "agent");
    let admin = d.token("boss", "admin");

    // No token, an unknown one: 401 problem+json.
    let r = request(d.addr, "GET", "/api/v1/tickets", &[], None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(r.json()["status"], 401);
    assert_eq!(d.api("GET", "/api/v1/tickets", "tg_nope", None).status, 401);

    // Read lists and shows, and cannot act.
    let list = d.api(
        "GET",
        "/api/v1/tickets?status=new&customer=acme",
        &read,
        None,
    );
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["items"][0]["reference"], "TKT-000001");
    let empty = d.api("GET", "/api/v1/tickets?customer=globex", &read, None);
    assert_eq!(empty.json()["items"].as_array().unwrap().len(), 0);
    let note = r#"{"action":"note","text":"INTERNAL-ONLY-7731"}"#;
    let refused = d.api(
        "POST",
        "/api/v1/tickets/TKT-000001/actions",
        &read,
        Some(note),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        refused.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    // The agent acts; a bad action is 422, an unknown ticket 404, a bad reference 422.
    let done = d.api(
        "POST",
        "/api/v1/tickets/TKT-000001/actions",
        &agent,
        Some(note),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let bad = d.api(
        "POST",
        "/api/v1/tickets/TKT-000001/actions",
        &agent,
        Some(r#"{"action":"status","value":"nonsense"}"#),
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(
        bad.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(
        d.api("GET", "/api/v1/tickets/TKT-000099", &read, None)
            .status,
        404
    );
    assert_eq!(
        d.api("GET", "/api/v1/tickets/nonsense", &read, None).status,
        422
    );

    // The note: visible to the agent, not to read, not on the customer's page.
    let as_agent = d.api("GET", "/api/v1/tickets/TKT-000001", &agent, None);
    assert!(
        as_agent.body.contains("INTERNAL-ONLY-7731"),
        "{}",
        as_agent.body
    );
    let as_read = d.api("GET", "/api/v1/tickets/TKT-000001", &read, None);
    assert_eq!(as_read.status, 200);
    assert!(
        !as_read.body.contains("INTERNAL-ONLY-7731"),
        "{}",
        as_read.body
    );
    let page = d.get(&format!("/t/{token}"), &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("TKT-000001"));
    assert!(!page.body.contains("INTERNAL-ONLY-7731"), "{}", page.body);

    // Outbox and quarantine: read lists, only admin retries or replays.
    let ob = d.api("GET", "/api/v1/outbox?kind=acknowledgement", &read, None);
    assert_eq!(ob.status, 200, "{}", ob.body);
    assert_eq!(ob.json()["items"][0]["kind"], "acknowledgement");
    let id = ob.json()["items"][0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/outbox/{id}/retry");
    assert_eq!(d.api("POST", &path, &agent, None).status, 403);
    // Sent mail cannot be retried: 422, nothing changed.
    assert_eq!(d.api("POST", &path, &admin, None).status, 422);
    assert_eq!(d.api("GET", "/api/v1/quarantine", &read, None).status, 200);
    assert_eq!(
        d.api("POST", "/api/v1/quarantine/1/replay", &read, None)
            .status,
        403
    );
    let sla = d.api("GET", "/api/v1/tickets/TKT-000001/sla", &read, None);
    assert_eq!(sla.status, 200, "{}", sla.body);
    assert_eq!(sla.json()["reference"], "TKT-000001");

    // A revoked token is refused at once.
    let out = d.cli(&["api-token", "revoke", "reader"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.api("GET", "/api/v1/tickets", &read, None).status, 401);
    let listed = d.cli(&["api-token", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let reader = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "reader")
        .unwrap();
    assert!(reader["revoked_at"].is_string());
    // Only hashes are stored: the token itself appears nowhere in the list or the log.
    assert!(!listed.to_string().contains(&read[3..]));
    assert!(!d.log().contains(&agent[3..]), "a token in the log");
    assert!(!d.log().contains(&token), "a page token in the log");

    // The document lists every route.
    let doc = d.get("/api/v1/openapi.json", &[]).json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/tickets/{reference}/actions"]["post"].is_object());
}

#[test]
fn tickets_list_pages_by_cursor() {
    let d = Daemon::start("");
    for i in 0..5 {
        d.deliver(&request_mail(&format!("Request {i}")));
    }
    d.until("five tickets", || d.ticket(5).is_some());
    let read = d.token("reader", "read");
    let mut seen = Vec::new();
    let mut path = "/api/v1/tickets?limit=2".to_string();
    loop {
        let page = d.api("GET", &path, &read, None).json();
        for t in page["items"].as_array().unwrap() {
            seen.push(t["reference"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/tickets?limit=2&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = (1..=5).rev().map(|i| format!("TKT-{i:06}")).collect();
    assert_eq!(seen, want);
}

/// The customer's page: unknown tokens get the same 404; GET changes nothing; accepting on
/// the page does exactly what accepting by mail does.
#[test]
fn the_ticket_page_accept_does_what_an_accepting_mail_does() {
    let d = Daemon::start("");
    d.deliver(&request_mail("First problem"));
    d.deliver(&request_mail("Second problem"));
    d.until("two tickets", || d.ticket(2).is_some());
    let (t1, t2) = (d.page_token(1), d.page_token(2));
    assert_ne!(t1, t2);

    let unknown = d.get("/t/00000000000000000000000000000000", &[]);
    let garbage = d.get("/t/zz", &[]);
    assert_eq!(unknown.status, 404);
    assert_eq!(garbage.status, 404);
    assert_eq!(
        unknown.body, garbage.body,
        "the same page for any unknown token"
    );

    let agent = d.token("agent1", "agent");
    for r in ["TKT-000001", "TKT-000002"] {
        let done = d.api(
            "POST",
            &format!("/api/v1/tickets/{r}/actions"),
            &agent,
            Some(r#"{"action":"resolve","reason":"workaround","text":"Restart the export service."}"#),
        );
        assert_eq!(done.status, 200, "{}", done.body);
    }
    let page = d.get(&format!("/t/{t1}"), &[]);
    assert!(page.body.contains("RESOLVED"), "{}", page.body);
    assert!(page.body.contains("Restart the export service."));
    // GETs (as a mail scanner does) change nothing.
    for _ in 0..3 {
        d.get(&format!("/t/{t1}"), &[]);
    }
    assert_eq!(
        d.ticket(1).unwrap().status,
        ticketgate::workflow::Status::Resolved
    );
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // A forged form (no or a wrong CSRF token) changes nothing.
    let forged = form(d.addr, &format!("/t/{t1}/accept"), "csrf=00", None);
    assert_eq!(forged.status, 403);
    let accepted = form(
        d.addr,
        &format!("/t/{t1}/accept"),
        &format!("csrf={csrf}"),
        None,
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    // Ticket 2 accepted by mail, as the customer would.
    d.deliver(
        &mail(
            "Jane Doe <jane@acme.example>",
            "Re: [TKT-000002] Second problem",
            "I accept the solution.",
        )
        .build(),
    );
    d.until("both closed", || {
        d.ticket(1).unwrap().status == ticketgate::workflow::Status::Closed
            && d.ticket(2).unwrap().status == ticketgate::workflow::Status::Closed
    });
    let (a, b) = (d.ticket(1).unwrap(), d.ticket(2).unwrap());
    assert_eq!(a.reason, b.reason, "the same closing reason");
    assert_eq!(a.survey_score, b.survey_score);
    let kinds = |id: i64| {
        let mut k: Vec<String> = d
            .store()
            .outbox(10_000)
            .unwrap()
            .into_iter()
            .filter(|o| o.ticket_id == Some(id))
            .map(|o| o.kind)
            .collect();
        k.sort();
        k
    };
    d.until("the same mail sent for both", || kinds(1) == kinds(2));
    assert!(kinds(1).contains(&"closure".to_string()), "{:?}", kinds(1));
    let page = d.get(&format!("/t/{t1}"), &[]);
    assert!(page.body.contains("CLOSED"), "{}", page.body);
    assert!(!page.body.contains("id=\"accept\""), "no form once closed");
}

#[test]
fn the_ticket_page_is_rate_limited_per_address() {
    let d = Daemon::start("");
    let statuses: Vec<u16> = (0..40)
        .map(|_| d.get("/t/00000000000000000000000000000000", &[]).status)
        .collect();
    assert!(statuses.contains(&404));
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[test]
fn ops_pages_need_a_login_and_show_the_outbound_log() {
    let d = Daemon::start("");
    d.deliver(&request_mail("Export fails"));
    d.page_token(1);
    let read = d.token("reader", "read");
    let r = d.get("/ops/outbox", &[]);
    assert_eq!(r.status, 303, "{}", r.headers);
    assert_eq!(r.header("location").as_deref(), Some("/ops/login"));
    let bad = form(d.addr, "/ops/login", "token=tg_wrong", None);
    assert_eq!(bad.status, 401);
    let ok = form(d.addr, "/ops/login", &format!("token={read}"), None);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("url=/ops/outbox"), "{}", ok.body);
    let cookie = ok.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = d.get("/ops/outbox?kind=acknowledgement", &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("jane@acme.example"), "{}", page.body);
    let id = page
        .body
        .split("href=\"/ops/outbox/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let msg = d.get(&format!("/ops/outbox/{id}"), &[("Cookie", &cookie)]);
    assert_eq!(msg.status, 200);
    assert!(msg.body.contains("Message-ID"), "{}", msg.body);
    assert!(msg.body.contains("id=\"attempts\">1<"), "{}", msg.body);
    let none = d.get("/ops/outbox?kind=closure", &[("Cookie", &cookie)]);
    assert!(!none.body.contains("jane@acme.example"));
    // Replay needs admin.
    let q = d.get("/ops/quarantine", &[("Cookie", &cookie)]);
    assert_eq!(q.status, 200);
    assert!(!q.body.contains("Replay"));
    let t = d.get("/ops/tickets", &[("Cookie", &cookie)]);
    assert!(t.body.contains("TKT-000001"));
}

// ---- headless Chromium -----------------------------------------------------------------

/// Debian's chromium, headless, with a fresh profile: `--dump-dom` or `--screenshot`.
fn chromium(args: &[&str], url: &str, profile: &Path) -> std::process::Output {
    let bin = ["chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("chromium is not installed: scripts/test installs it (apt-get install chromium)");
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn chromium_renders_the_ticket_page_and_its_accept_form_closes_the_ticket() {
    let d = Daemon::start("");
    d.deliver(&request_mail("Export <b>fails</b> & more"));
    let token = d.page_token(1);
    let agent = d.token("agent1", "agent");
    let done = d.api(
        "POST",
        "/api/v1/tickets/TKT-000001/actions",
        &agent,
        Some(r#"{"action":"resolve","reason":"workaround","text":"Restart it."}"#),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let url = format!("http://{}/t/{token}", d.addr);
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(&["--dump-dom"], &url, profile.path());
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("TKT-000001"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("id=\"status\">RESOLVED<"), "{dom}");
    // The subject is text, escaped, not markup.
    assert!(
        dom.contains("Export &lt;b&gt;fails&lt;/b&gt; &amp; more"),
        "{dom}"
    );
    assert!(dom.contains("id=\"accept\""), "{dom}");
    let shot = profile.path().join("ticket.png");
    let second = tempfile::tempdir().unwrap();
    let out = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,900",
        ],
        &url,
        second.path(),
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The accept form as the browser shows it, posted with its CSRF token.
    let action = dom
        .split("<form")
        .find(|f| f.contains("id=\"accept\""))
        .unwrap();
    let path = action
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let csrf = action
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = form(d.addr, path, &format!("csrf={csrf}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    d.until("closed by the page's accept", || {
        d.ticket(1).unwrap().status == ticketgate::workflow::Status::Closed
    });
    assert_eq!(
        d.ticket(1).unwrap().reason.as_deref(),
        Some("solution accepted")
    );
    let out = chromium(&["--dump-dom"], &url, tempfile::tempdir().unwrap().path());
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("id=\"status\">CLOSED<"), "{dom}");
}

/// A local page that posts the ops login form at once (the test's stand-in for typing the
/// token); Chromium then follows the login page to the outbound log with its cookie.
fn login_harness(dir: &Path, addr: SocketAddr, token: &str) -> String {
    login_harness_to(dir, addr, token, "/ops/outbox")
}

/// A local page that logs in with `token` and goes on to `next`.
fn login_harness_to(dir: &Path, addr: SocketAddr, token: &str, next: &str) -> String {
    let page = dir.join("login.html");
    std::fs::write(
        &page,
        format!(
            "<!doctype html><form id=\"f\" method=\"post\" action=\"http://{addr}/ops/login\">\
             <input name=\"token\" value=\"{token}\"><input name=\"next\" value=\"{next}\"></form>\
             <script>document.getElementById('f').submit()</script>"
        ),
    )
    .unwrap();
    format!("file://{}", page.display())
}

#[test]
fn chromium_renders_the_outbound_log_after_logging_in() {
    let d = Daemon::start("");
    d.deliver(&request_mail("Export fails"));
    d.page_token(1);
    let read = d.token("reader", "read");
    let work = tempfile::tempdir().unwrap();
    let url = login_harness(work.path(), d.addr, &read);
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(
        &["--virtual-time-budget=5000", "--dump-dom"],
        &url,
        profile.path(),
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("<h1>Outbound mail</h1>"), "{dom}");
    assert!(dom.contains("acknowledgement"), "{dom}");
    assert!(dom.contains("jane@acme.example"), "{dom}");
    let shot = work.path().join("outbox.png");
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(
        &[
            "--virtual-time-budget=5000",
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
        ],
        &url,
        profile.path(),
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A wrong token leads to the login page, not the log.
    let url = login_harness(work.path(), d.addr, "tg_wrong");
    let out = chromium(
        &["--virtual-time-budget=5000", "--dump-dom"],
        &url,
        tempfile::tempdir().unwrap().path(),
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("id=\"error\""), "{dom}");
    assert!(!dom.contains("jane@acme.example"), "{dom}");
}

// ---- the listings and counts behind the pages, on the store (SQLite or PostgreSQL) -------

#[tokio::test(flavor = "multi_thread")]
async fn outbox_and_ticket_filters_and_the_readiness_counts() {
    use ticketgate::services::web::{self as svc, OutboxFilter, TicketFilter};
    let mut e = common::env();
    e.ingest(&request_mail("First"));
    e.clock.advance(chrono::Duration::hours(1));
    e.ingest(
        &mail(
            "Bob <bob@globex.example>",
            "Outage",
            "Key GLBX-0000-0000-0002\nSeverity 1: everything is down.",
        )
        .build(),
    );
    e.ingest(&mail("Nobody <x@nowhere.example>", "Hello", "no key").build());
    let app = &e.app;
    let all = svc::outbox(app, &OutboxFilter::default()).await.unwrap();
    assert!(all.items.len() >= 3, "{:?}", all.items);
    assert!(
        all.items.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    let f = |kind: Option<&str>, recipient: Option<&str>, ticket: Option<&str>| OutboxFilter {
        kind: kind.map(str::to_string),
        recipient: recipient.map(str::to_string),
        ticket: ticket.map(str::to_string),
        ..OutboxFilter::default()
    };
    let acks = svc::outbox(app, &f(Some("acknowledgement"), None, None))
        .await
        .unwrap();
    assert_eq!(acks.items.len(), 2);
    let jane = svc::outbox(app, &f(None, Some("jane@acme.example"), None))
        .await
        .unwrap();
    assert!(jane.items.iter().all(|o| o.to == "jane@acme.example"));
    assert!(!jane.items.is_empty());
    let t2 = svc::outbox(app, &f(None, None, Some("TKT-000002")))
        .await
        .unwrap();
    assert!(!t2.items.is_empty());
    assert!(
        t2.items
            .iter()
            .all(|o| o.ticket.as_deref() == Some("TKT-000002"))
    );
    // Time range: from the second mail's hour on, only its mail.
    let from = (common::start() + chrono::Duration::minutes(30)).to_rfc3339();
    let later = svc::outbox(
        app,
        &OutboxFilter {
            from: Some(from.clone()),
            ..OutboxFilter::default()
        },
    )
    .await
    .unwrap();
    assert!(
        later
            .items
            .iter()
            .all(|o| o.ticket.as_deref() != Some("TKT-000001"))
    );
    assert!(!later.items.is_empty());
    let pending = svc::outbox(
        app,
        &OutboxFilter {
            state: Some("pending".into()),
            ..OutboxFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        pending.items.len(),
        all.items.len(),
        "nothing delivered yet"
    );
    let bad = svc::outbox(
        app,
        &OutboxFilter {
            state: Some("lost".into()),
            ..OutboxFilter::default()
        },
    )
    .await;
    assert!(matches!(
        bad,
        Err(ticketgate::services::ServiceError::Invalid(_))
    ));

    let tf = |customer: Option<&str>, severity: Option<u8>| TicketFilter {
        customer: customer.map(str::to_string),
        severity,
        ..TicketFilter::default()
    };
    let globex = svc::tickets(app, &tf(Some("globex"), None)).await.unwrap();
    assert_eq!(globex.items.len(), 1);
    assert_eq!(globex.items[0].reference, "TKT-000002");
    let since = svc::tickets(
        app,
        &TicketFilter {
            updated_since: Some(from),
            ..TicketFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(since.items.len(), 1);

    // The counts /readyz and /metrics read.
    let stats = svc::stats(app).await.unwrap();
    let pending_n: i64 = stats
        .outbox
        .iter()
        .filter(|(s, _)| *s == ticketgate::store::OutboxState::Pending)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(pending_n as usize, all.items.len());
    assert_eq!(stats.oldest_pending, Some(common::start()));
    assert_eq!(stats.timers_overdue, 0);
    {
        let mut s = e.app.store().unwrap();
        let mut tx = s.write().unwrap();
        tx.set_timer(1, "followup", common::start() + chrono::Duration::days(2))
            .unwrap();
        tx.commit().unwrap();
    }
    let before = svc::stats(&e.app).await.unwrap().timers_overdue;
    e.clock.advance(chrono::Duration::days(3));
    let stats = svc::stats(&e.app).await.unwrap();
    assert_eq!(
        stats.timers_overdue,
        before + 1,
        "overdue once its time passed"
    );
}

// ---- KPI reports on the web: the API (JSON, CSV, errors) and the /ops/ page ---------------

#[test]
fn the_report_api_answers_json_and_csv_and_refuses_a_future_period() {
    let d = Daemon::start("");
    d.deliver(&request_mail("Export fails"));
    d.deliver(&request_mail("Import fails too"));
    d.until("two tickets", || d.ticket(2).is_some());
    let read = d.token("reader", "read");
    let r = d.api("GET", "/api/v1/reports/acme", &read, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["customer"], "acme");
    assert_eq!(j["tickets"], 2, "{j}");
    let csv = d.api("GET", "/api/v1/reports/acme?format=csv", &read, None);
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")),
        "{}",
        csv.headers
    );
    assert!(
        csv.body.starts_with("section,key,metric,value"),
        "{}",
        csv.body
    );
    // The API's figures are the CLI's.
    let today = ticketgate::clock::Clock::now(&ticketgate::clock::SystemClock).date_naive();
    let from = today - chrono::Days::new(29);
    let cli = d.cli(&[
        "report",
        "acme",
        "--from",
        &from.to_string(),
        "--to",
        &today.to_string(),
        "--csv",
    ]);
    assert!(cli.status.success(), "{cli:?}");
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), csv.body.trim());
    // A period in the future: problem+json, nothing else.
    let future = today + chrono::Days::new(10);
    let bad = d.api(
        "GET",
        &format!("/api/v1/reports/acme?from={today}&to={future}"),
        &read,
        None,
    );
    assert!((400..500).contains(&bad.status), "{}", bad.status);
    assert!(
        bad.header("content-type")
            .is_some_and(|t| t.starts_with("application/problem+json")),
        "{}",
        bad.headers
    );
    assert_eq!(
        d.api("GET", "/api/v1/reports/nobody", &read, None).status,
        404
    );
    assert_eq!(
        d.api("GET", "/api/v1/reports/acme?format=pdf", &read, None)
            .status,
        400
    );
    // No token, no report.
    assert_eq!(d.get("/api/v1/reports/acme", &[]).status, 401);
}

#[test]
fn chromium_renders_a_report_page_with_its_chart() {
    let d = Daemon::start("");
    d.deliver(&request_mail("Export fails"));
    d.deliver(&request_mail("Import fails too"));
    d.until("two tickets", || d.ticket(2).is_some());
    let read = d.token("reader", "read");
    let work = tempfile::tempdir().unwrap();
    let url = login_harness_to(work.path(), d.addr, &read, "/ops/reports?customer=acme");
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(
        &["--virtual-time-budget=5000", "--dump-dom"],
        &url,
        profile.path(),
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("<h1>KPI report</h1>"), "{dom}\n{}", d.log());
    assert!(dom.contains("id=\"tickets\">2</strong>"), "{dom}");
    assert!(dom.contains("id=\"severity-chart\""), "{dom}");
    assert!(dom.matches("class=\"bar\"").count() >= 1, "{dom}");
    let shot = work.path().join("report.png");
    let out = chromium(
        &[
            "--virtual-time-budget=5000",
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
        ],
        &url,
        tempfile::tempdir().unwrap().path(),
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/api/v1/lists` (issue 10): admin scope only; list, subscribe, list subscribers,
/// unsubscribe; and the CLI's `outage declare` prints the outage id.
#[test]
fn the_lists_api_needs_admin_and_subscribes_and_unsubscribes() {
    let d = Daemon::start("");
    // The registry is re-read when it changes: give it lists and platforms.
    std::fs::write(d.path("customers.toml"), crate::announce::ANNOUNCE_REGISTRY).unwrap();
    let read = d.token("reader", "read");
    let admin = d.token("boss", "admin");
    assert_eq!(d.api("GET", "/api/v1/lists", &read, None).status, 403);
    let lists = d.api("GET", "/api/v1/lists", &admin, None);
    assert_eq!(lists.status, 200, "{}", lists.body);
    let names: Vec<String> = lists
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["eu-incidents", "eu-releases", "us-incidents"]);
    let r = d.api(
        "POST",
        "/api/v1/lists/eu-incidents/subscribers",
        &admin,
        Some(r#"{"address": "Ops@acme.example", "customer": "acme"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "confirmed");
    // A customer of another platform: 422 problem+json naming it.
    let r = d.api(
        "POST",
        "/api/v1/lists/eu-incidents/subscribers",
        &admin,
        Some(r#"{"address": "noc@globex.example", "customer": "globex"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.json()["detail"].as_str().unwrap().contains("platform"));
    let subs = d.api(
        "GET",
        "/api/v1/lists/eu-incidents/subscribers",
        &admin,
        None,
    );
    assert_eq!(subs.json().as_array().unwrap().len(), 1);
    assert_eq!(subs.json()[0]["address"], "ops@acme.example");
    let out = d.cli(&[
        "outage",
        "declare",
        "--platform",
        "eu",
        "--services",
        "IMAP,Webmail",
        "--impact",
        "Mail cannot be read",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OUT-000001");
    let r = d.api(
        "DELETE",
        "/api/v1/lists/eu-incidents/subscribers/ops@acme.example",
        &admin,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.api(
        "DELETE",
        "/api/v1/lists/eu-incidents/subscribers/ops@acme.example",
        &admin,
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        d.api("GET", "/api/v1/lists/nope/subscribers", &admin, None)
            .status,
        404
    );
}
