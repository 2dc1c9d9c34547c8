//! LMTP delivery (RFC 2033) with a raw TCP client: pipelined commands, one reply per
//! recipient after the commit, `550` for strangers at RCPT, `451` while the store is down,
//! `552` over the size limit, and deliveries from many connections committed together.
//! `postfix.rs` delivers through a real Postfix.

use crate::common::{self, Env, mail};
use std::sync::Arc;
use std::time::Duration;
use ticketgate::app::App;
use ticketgate::ingest::lmtp::{self, Served};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const LMTP: &str = "[loops]\nown_addresses = [\"eu-support@support.example.test\"]\n\
                        [inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n";

pub struct Server {
    pub address: String,
    stop: CancellationToken,
    task: JoinHandle<Served>,
}

impl Server {
    pub async fn start(app: App) -> Server {
        let bound = lmtp::bind(app.cfg.inbound.lmtp.as_ref().expect("[inbound.lmtp]"))
            .await
            .unwrap();
        let address = bound.address.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(lmtp::serve(
            bound,
            app,
            stop.clone(),
            Arc::new(Notify::new()),
        ));
        Server {
            address,
            stop,
            task,
        }
    }

    pub async fn stop(self) -> Served {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the listener stops")
            .unwrap()
    }
}

pub struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(address: &str) -> Client {
        let (r, w) = TcpStream::connect(address).await.unwrap().into_split();
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.reply().await;
        assert!(greeting[0].starts_with("220 "), "{greeting:?}");
        c
    }

    pub async fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).await.unwrap();
    }

    /// One reply (all its lines), without line endings.
    pub async fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            let n = tokio::time::timeout(Duration::from_secs(60), self.r.read_line(&mut l))
                .await
                .expect("a reply within 60 s")
                .unwrap();
            assert!(n > 0, "connection closed; replies so far: {lines:?}");
            let l = l.trim_end().to_string();
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l);
            if last {
                return lines;
            }
        }
    }

    /// The first line of the next reply.
    pub async fn line(&mut self) -> String {
        self.reply().await.remove(0)
    }

    /// A whole transaction, pipelined; the replies after DATA (one per accepted recipient).
    pub async fn deliver(&mut self, rcpts: &[&str], mail: &str) -> Vec<String> {
        let mut cmds = "MAIL FROM:<jane@acme.example>\r\n".to_string();
        for r in rcpts {
            cmds.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        cmds.push_str("DATA\r\n");
        self.send(&cmds).await;
        assert!(self.line().await.starts_with("250 2.1.0"));
        let mut accepted = 0;
        for _ in rcpts {
            if self.line().await.starts_with("250 ") {
                accepted += 1;
            }
        }
        assert!(self.line().await.starts_with("354 "));
        self.send(&dot_stuffed(mail)).await;
        let mut out = Vec::new();
        for _ in 0..accepted {
            out.push(self.line().await);
        }
        out
    }
}

pub fn dot_stuffed(mail: &str) -> String {
    let mut s = String::new();
    for l in mail.split_inclusive("\r\n") {
        if l.starts_with('.') {
            s.push('.');
        }
        s.push_str(l);
    }
    if !s.ends_with("\r\n") {
        s.push_str("\r\n");
    }
    s.push_str(".\r\n");
    s
}

fn ticket_mail(subject: &str) -> String {
    mail(
        "Jane <jane@acme.example>",
        subject,
        "Support-Key: ACME-0000-0000-0001\n.leading dot stays\nIt fails.",
    )
    .build()
}

/// Makes the store refuse writes until the guard is dropped: on SQLite another connection
/// holds the write lock (the writer gives up after its busy timeout); on PostgreSQL the
/// database refuses connections and the store's are cut.
pub enum Outage {
    Sqlite(rusqlite::Connection),
    Postgres { admin: String, name: String },
}

impl Outage {
    pub fn begin(env: &Env) -> Outage {
        Outage::begin_at(env.db.as_ref(), &env.path("tg.db"))
    }

    /// The outage of the PostgreSQL database `db`, or else of the SQLite file `sqlite`.
    pub fn begin_at(db: Option<&common::TestDatabase>, sqlite: &std::path::Path) -> Outage {
        match db {
            None => {
                let c = rusqlite::Connection::open(sqlite).unwrap();
                c.execute_batch("BEGIN EXCLUSIVE").unwrap();
                Outage::Sqlite(c)
            }
            Some(db) => {
                let admin = std::env::var(common::DATABASE_URL_VAR).unwrap();
                common::admin(
                    &admin,
                    &format!(
                        "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
                         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
                        db.name
                    ),
                );
                Outage::Postgres {
                    admin,
                    name: db.name.clone(),
                }
            }
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        match self {
            Outage::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            Outage::Postgres { admin, name } => common::admin(
                admin,
                &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
            ),
        }
    }
}

/// Pipelined LHLO and transaction: the extensions are advertised, a stranger gets 550 at
/// RCPT, and each of the two accepted recipients gets its own 250 once the ticket and its
/// acknowledgement are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_transaction_one_reply_per_recipient_after_the_commit() {
    let mut env = common::env_with(LMTP);
    let server = Server::start(env.app.clone()).await;
    let mut c = Client::connect(&server.address).await;
    // Everything up to DATA in one write.
    c.send(
        "LHLO mta.example\r\nMAIL FROM:<jane@acme.example> SIZE=500 BODY=8BITMIME\r\n\
         RCPT TO:<support@support.example.test>\r\nRCPT TO:<stranger@elsewhere.example>\r\n\
         RCPT TO:<EU-Support@support.example.test>\r\nDATA\r\n",
    )
    .await;
    let lhlo = c.reply().await;
    for ext in [
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SIZE 26214400",
    ] {
        assert!(lhlo.iter().any(|l| l[4..] == *ext), "{ext} not in {lhlo:?}");
    }
    assert!(c.line().await.starts_with("250 2.1.0"));
    assert!(c.line().await.starts_with("250 2.1.5"));
    let stranger = c.line().await;
    assert!(stranger.starts_with("550 5.1.1 "), "{stranger}");
    assert!(c.line().await.starts_with("250 2.1.5"));
    assert!(c.line().await.starts_with("354 "));
    c.send(&dot_stuffed(&ticket_mail("Export broken"))).await;
    let first = c.line().await;
    let second = c.line().await;
    assert!(
        first.starts_with("250 2.0.0 <support@support.example.test>"),
        "{first}"
    );
    assert!(
        second.starts_with("250 2.0.0 <EU-Support@support.example.test>"),
        "{second}"
    );
    assert!(first.contains("created TKT-"), "{first}");
    // Committed before the replies: the ticket (once, for both recipients) and its
    // acknowledgement are there.
    assert_eq!(env.sent("acknowledgement").len(), 1);
    let t = env.ticket(1);
    assert_eq!(t.subject, "Export broken");
    let articles = env.articles(1);
    assert!(
        articles[0].body.contains("\n.leading dot stays"),
        "dot-stuffing undone: {:?}",
        articles[0].body
    );
    // The session goes on: RSET, NOOP, a DATA without recipients, QUIT.
    c.send("RSET\r\nNOOP\r\nMAIL FROM:<>\r\nDATA\r\nQUIT\r\n")
        .await;
    assert!(c.line().await.starts_with("250 2.0.0"));
    assert!(c.line().await.starts_with("250 2.0.0"));
    assert!(c.line().await.starts_with("250 2.1.0"));
    assert!(c.line().await.starts_with("503 5.5.1"));
    assert!(c.line().await.starts_with("221 2.0.0"));
    let served = server.stop().await;
    assert_eq!(served.inbound.created, 1);
}

/// With the store down the MTA is told 451 for each recipient (it keeps the mail), nothing
/// is stored; delivered again after recovery it creates the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_answers_451_and_the_retry_is_committed() {
    let mut env = common::env_with(LMTP);
    let server = Server::start(env.app.clone()).await;
    let mut c = Client::connect(&server.address).await;
    c.send("LHLO mta.example\r\n").await;
    c.reply().await;
    let m = ticket_mail("During the outage");
    let outage = Outage::begin(&env);
    let replies = c
        .deliver(
            &[
                "support@support.example.test",
                "eu-support@support.example.test",
            ],
            &m,
        )
        .await;
    assert_eq!(replies.len(), 2);
    for r in &replies {
        assert!(r.starts_with("451 4.3.0 "), "{replies:?}");
    }
    drop(outage);
    assert!(
        env.outbox().is_empty(),
        "nothing committed during the outage"
    );
    let replies = c.deliver(&["support@support.example.test"], &m).await;
    assert!(replies[0].starts_with("250 2.0.0 "), "{replies:?}");
    assert_eq!(env.ticket(1).subject, "During the outage");
    assert_eq!(env.sent("acknowledgement").len(), 1);
    let served = server.stop().await;
    assert_eq!(served.deferred, 1);
    assert_eq!(served.inbound.created, 1);
}

/// A declared SIZE over the limit is refused at MAIL; data over the limit is read to its end
/// and refused with 552 per recipient, and the session carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_mail_is_refused_with_552() {
    let mut env = common::env_with(LMTP);
    let mut app = env.app.clone();
    let mut cfg = (*app.cfg).clone();
    cfg.inbound.max_message_bytes = 2000;
    app.cfg = Arc::new(cfg);
    let server = Server::start(app).await;
    let mut c = Client::connect(&server.address).await;
    c.send("LHLO mta.example\r\nMAIL FROM:<jane@acme.example> SIZE=5000\r\n")
        .await;
    assert!(c.reply().await.iter().any(|l| l == "250 SIZE 2000"));
    assert!(c.line().await.starts_with("552 5.3.4"));
    let big = mail(
        "jane@acme.example",
        "big",
        &"ACME-0000-0000-0001 filler line\n".repeat(200),
    )
    .build();
    let replies = c
        .deliver(
            &[
                "support@support.example.test",
                "eu-support@support.example.test",
            ],
            &big,
        )
        .await;
    assert_eq!(replies.len(), 2);
    assert!(
        replies.iter().all(|r| r.starts_with("552 5.3.4 ")),
        "{replies:?}"
    );
    // A command line over the limit is refused, the session goes on.
    c.send(&format!("NOOP {}\r\nNOOP\r\n", "x".repeat(10_000)))
        .await;
    assert!(c.line().await.starts_with("500 5.5.2"));
    assert!(c.line().await.starts_with("250 "));
    let small = ticket_mail("small");
    let replies = c.deliver(&["support@support.example.test"], &small).await;
    assert!(replies[0].starts_with("250 2.0.0"), "{replies:?}");
    assert!(env.outbox().len() == 1, "only the small mail got through");
    server.stop().await;
}

/// Mail arriving on many connections while the writer is busy is committed in one
/// transaction: eight deliveries, at most two commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_are_committed_together() {
    let mut env = common::env_with(LMTP);
    let server = Server::start(env.app.clone()).await;
    // Hold the writer until all eight mails are waiting.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let blocker = {
        let db = env.app.db.clone();
        tokio::spawn(async move {
            db.write(move |_| {
                let _ = held.recv();
                Ok(())
            })
            .await
        })
    };
    let mut clients = Vec::new();
    for i in 0..8 {
        let address = server.address.clone();
        clients.push(tokio::spawn(async move {
            let mut c = Client::connect(&address).await;
            c.send("LHLO mta.example\r\n").await;
            c.reply().await;
            c.deliver(
                &["support@support.example.test"],
                &ticket_mail(&format!("concurrent {i}")),
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    release.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    for c in clients {
        let replies = c.await.unwrap();
        assert!(replies[0].starts_with("250 2.0.0"), "{replies:?}");
    }
    let served = server.stop().await;
    assert_eq!(served.inbound.created, 8);
    assert!(
        served.batches <= 2,
        "8 mails in {} commits: not grouped",
        served.batches
    );
    assert_eq!(env.sent("acknowledgement").len(), 8);
}
