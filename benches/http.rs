//! Web benchmark: `cargo bench --bench http [-- TICKETS]` (default 1,000,000).
//!
//! Issue requirement, with TICKETS tickets: the customer's ticket page and the API's ticket
//! show p99 < 5 ms, a 50-item list page p99 < 10 ms, `/metrics` < 20 ms.
//!
//! On a fresh SQLite database (WAL, `synchronous = FULL`) in a temporary folder:
//! 1. writes TICKETS tickets directly in write transactions of 50,000 (`insert_ticket`),
//!    each with two articles (the customer's request and an agent's answer) for one ticket
//!    in 100, a page token for each of those, a timer for every ticket (armed in the
//!    future, as open tickets have), and one sent outbound mail per ticket in 10 plus a few
//!    hundred pending, failed and dead ones;
//! 2. serves the real router (`ticketgate::http::router`) on a loopback port, on the
//!    daemon's multi-thread runtime, and times REQUESTS requests of each kind, one after
//!    another, each over a fresh connection (connect + request + whole response), from
//!    varied 127.x source addresses (the ticket page's per-address rate limit stays out of
//!    the way), and prints p50, p99 and max in ms, one figure a line: `name value`.
//!
//! Every response is checked (status 200 and content), so a figure cannot come from an
//! error page.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ticketgate::app::App;
use ticketgate::clock::SystemClock;
use ticketgate::config::{Config, ConfigSource};
use ticketgate::store::{NewArticle, NewOutbound, OutboxState, SlaState, TicketRow, token_hash};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUESTS: usize = 2_000;
const CHUNK: usize = 50_000;

const REGISTRY: &str = r#"
[plans.standard]
language = "en"
default_severity = 3
response_targets = { 1 = "1h", 2 = "4h", 3 = "1d", 4 = "3d" }

[[customers]]
id = "acme"
name = "ACME"
plan = "standard"
allowed_senders = ["@acme.example"]
keys = [{ key = "ACME-0000-0000-0001" }]

[[customers]]
id = "globex"
name = "Globex"
plan = "standard"
keys = [{ key = "GLBX-0000-0000-0002" }]
"#;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn open_app(dir: &Path) -> App {
    std::fs::write(dir.join("customers.toml"), REGISTRY).unwrap();
    let text = "[database]\nurl = \"sqlite:tg.db\"\n[inbound]\nmaildir = \"inbox\"\n\
                [registry]\npath = \"customers.toml\"\n[outbound]\ndir = \"outbox\"\n\
                [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://support.example.test\"\n";
    let cfg =
        Config::from_toml(text, dir, ConfigSource::File(dir.join("ticketgate.toml"))).unwrap();
    App::open(cfg, Arc::new(SystemClock)).unwrap()
}

fn ticket(i: usize, now: DateTime<Utc>) -> TicketRow {
    let (customer, key) = if i.is_multiple_of(2) {
        ("acme", "ACME-0000-0000-0001")
    } else {
        ("globex", "GLBX-0000-0000-0002")
    };
    TicketRow {
        id: 0,
        customer: customer.into(),
        support_key: key.into(),
        plan: "standard".into(),
        language: "en".into(),
        profile: ticketgate::workflow::Profile::Exo,
        issue_type: "incident".into(),
        status: if i.is_multiple_of(3) {
            ticketgate::workflow::Status::Closed
        } else {
            ticketgate::workflow::Status::Open
        },
        severity: 1 + (i % 4) as u8,
        stated_severity: None,
        subject: format!("Export fails with error 500 (#{i})"),
        requester: format!("user{i}@acme.example"),
        requester_name: Some(format!("User {i}")),
        reason: None,
        parent_id: None,
        missing_info: Vec::new(),
        followup_base_at: None,
        followup_stage: 0,
        survey_score: None,
        sla: SlaState::default(),
        created_at: now,
        updated_at: now,
    }
}

/// Writes the data set; returns the page tokens (ticket id, token).
fn seed(app: &App, tickets: usize) -> Vec<(i64, String)> {
    let now = app.clock.now();
    let later = now + chrono::Duration::days(30);
    let mut tokens = Vec::new();
    let mut store = app.store().unwrap();
    let body = vec![b'x'; 2000];
    let mut i = 0;
    while i < tickets {
        let mut tx = store.write().unwrap();
        for _ in 0..CHUNK.min(tickets - i) {
            let id = tx.insert_ticket(&ticket(i, now)).unwrap();
            tx.set_timer(id, "followup", later).unwrap();
            if i.is_multiple_of(100) {
                for (kind, author, text) in [
                    (
                        "customer",
                        "user@acme.example",
                        "The export fails with error 500.",
                    ),
                    (
                        "agent",
                        "agent@support.example.test",
                        "Please restart the export service.",
                    ),
                ] {
                    tx.insert_article(&NewArticle {
                        ticket_id: id,
                        inbound_id: None,
                        kind,
                        author,
                        body: text,
                        quoted: "",
                        now,
                    })
                    .unwrap();
                }
                let token = format!("{:032x}", (id as u128) * 0x9e37_79b9_7f4a_7c15_u128 + 7);
                tx.set_ticket_token(id, &token_hash(&token)).unwrap();
                tokens.push((id, token));
            }
            if i.is_multiple_of(10) {
                let state = match i % 1000 {
                    0 => OutboxState::Pending,
                    10 => OutboxState::Failed,
                    20 => OutboxState::Dead,
                    _ => OutboxState::Sent,
                };
                tx.enqueue(&NewOutbound {
                    ticket_id: Some(id),
                    inbound_id: None,
                    kind: "acknowledgement",
                    recipient: "user@acme.example",
                    subject: "[TKT] Export fails",
                    message_id: &format!("tg.{id}@support.example.test"),
                    automatic: true,
                    body: &body,
                    // Written as they would stand later (enqueue stores the state it is given).
                    state,
                    note: None,
                    now,
                })
                .unwrap();
            }
            i += 1;
        }
        tx.commit().unwrap();
    }
    tokens
}

async fn get(addr: SocketAddr, n: usize, path: &str, auth: Option<&str>) -> (u16, String) {
    // Source addresses 127.0.x.y: the ticket page limits requests per client address.
    let src = SocketAddr::from(([127, 0, (n / 200 % 250) as u8, (n % 200 + 2) as u8], 0));
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(src).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| times[((times.len() as f64 * q).ceil() as usize).min(times.len()) - 1];
    println!("{name}_p50_ms {:.2}", ms(p(0.50)));
    println!("{name}_p99_ms {:.2}", ms(p(0.99)));
    println!("{name}_max_ms {:.2}", ms(*times.last().unwrap()));
}

fn main() {
    let tickets: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path());
    let start = Instant::now();
    let tokens = seed(&app, tickets);
    println!("tickets {tickets}");
    println!("seed_s {:.1}", start.elapsed().as_secs_f64());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let token =
            ticketgate::services::web::create_token(&app, "bench", ticketgate::store::Scope::Agent)
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = ticketgate::http::router(app.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        // Warm-up: the first requests open the pool's connections.
        for n in 0..50 {
            get(addr, n, "/healthz", None).await;
        }

        let mut times = Vec::new();
        for n in 0..REQUESTS {
            let (id, tok) = &tokens[rng.below(tokens.len() as u64) as usize];
            let t = Instant::now();
            let (status, body) = get(addr, n, &format!("/t/{tok}"), None).await;
            times.push(t.elapsed());
            assert_eq!(status, 200, "{body}");
            assert!(body.contains(&format!("TKT-{id:06}")) && body.contains("restart"));
        }
        report("ticket_page", times);

        let mut times = Vec::new();
        for n in 0..REQUESTS {
            let id = 1 + rng.below(tickets as u64);
            let t = Instant::now();
            let (status, body) = get(
                addr,
                n,
                &format!("/api/v1/tickets/TKT-{id:06}"),
                Some(&token),
            )
            .await;
            times.push(t.elapsed());
            assert_eq!(status, 200, "{body}");
            assert!(body.contains(&format!("\"TKT-{id:06}\"")));
        }
        report("api_ticket_show", times);

        for (name, query) in [
            ("api_list50", "limit=50"),
            ("api_list50_status", "limit=50&status=open"),
            ("api_list50_customer", "limit=50&customer=globex"),
        ] {
            let mut times = Vec::new();
            for n in 0..REQUESTS / 4 {
                // A random page: a cursor anywhere in the range.
                let cursor = 200 + rng.below(tickets.saturating_sub(200).max(1) as u64);
                let t = Instant::now();
                let (status, body) = get(
                    addr,
                    n,
                    &format!("/api/v1/tickets?{query}&cursor={cursor}"),
                    Some(&token),
                )
                .await;
                times.push(t.elapsed());
                assert_eq!(status, 200, "{body}");
                assert!(body.matches("\"reference\"").count() >= 40, "{body}");
            }
            report(name, times);
        }

        let mut times = Vec::new();
        for n in 0..REQUESTS / 10 {
            let t = Instant::now();
            let (status, body) = get(addr, n, "/metrics", None).await;
            times.push(t.elapsed());
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("ticketgate_outbox_messages{state=\"pending\"}"));
        }
        report("metrics", times);
    });
}
