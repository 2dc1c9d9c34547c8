//! Service probes against local servers that answer slowly on purpose (HTTP, SMTP, IMAP,
//! POP3 on loopback, `support::slow_server`) and against the real Dovecot (IMAP over TLS with
//! the probe account), with a compressed time scale: real delays of a few hundred
//! milliseconds against `slow = "300ms"`, and the test's clock moved one `interval` (60 s)
//! per round, so a 5-minute window passes in four rounds. The outages go through the
//! announcement store (SQLite, or PostgreSQL when `TICKETGATE_TEST_DATABASE_URL` is set).

use crate::common::{self, Env};
use crate::support::dovecot::{self, Dovecot};
use crate::support::slow_server::{self, Protocol, SlowServer};
use chrono::Duration as Minutes;
use std::path::Path;
use std::time::Duration;
use ticketgate::app::App;
use ticketgate::probes::act::Declared;
use ticketgate::probes::task::Acted;
use ticketgate::probes::{Decision, Phase, Runner, Verdict};
use ticketgate::store::{
    AnnouncementKind, AnnouncementQuery, AnnouncementRow, AnnouncementState, NewSubscriber,
    SubscriberState, UpdateKind,
};

/// Slower than `slow` below, with room for a loaded machine on both sides.
const SLOW: Duration = Duration::from_millis(700);

/// One `[[probes]]` table for `server`: 60 s interval, 5 min window, 2 min recover, 300 ms
/// slow, 5 s timeout; the probe account for IMAP and POP3.
fn probe_table(name: &str, kind: &str, target: &str, action: &str, account: &str) -> String {
    format!(
        "[[probes]]\nname = \"{name}\"\nplatform = \"eu\"\nservice = \"{kind}-service\"\n\
         kind = \"{kind}\"\ntarget = \"{target}\"\ninterval = \"60s\"\ntimeout = \"5s\"\n\
         slow = \"300ms\"\nwindow = \"5m\"\nrecover = \"2m\"\naction = \"{action}\"\n{account}"
    )
}

/// The account keys for IMAP and POP3 (the password in a file of `dir`).
fn account(protocol: Protocol, dir: &Path) -> String {
    match protocol {
        Protocol::Imap | Protocol::Pop3 => {
            let file = dir.join("probe-password");
            std::fs::write(&file, format!("{}\n", slow_server::PASSWORD)).unwrap();
            format!(
                "username = \"{}\"\npassword_file = \"{}\"\n",
                slow_server::USER,
                file.display()
            )
        }
        _ => String::new(),
    }
}

struct Probed {
    e: Env,
    server: SlowServer,
    _secrets: tempfile::TempDir,
}

async fn probed(protocol: Protocol, action: &str) -> Probed {
    let server = SlowServer::start(protocol).await;
    let secrets = tempfile::tempdir().unwrap();
    let table = probe_table(
        "p1",
        protocol.kind(),
        &server.target(),
        action,
        &account(protocol, secrets.path()),
    );
    let e = common::env_with(&table);
    Probed {
        e,
        server,
        _secrets: secrets,
    }
}

impl Probed {
    fn runner(&self) -> Runner {
        Runner::new(self.e.app.clone(), self.e.app.cfg.probes[0].clone()).unwrap()
    }
}

/// One round, then the clock moves one interval on.
async fn step(p: &Probed, r: &mut Runner) -> ticketgate::probes::task::Round {
    let round = r.round().await;
    p.e.clock.advance(Minutes::seconds(60));
    assert_eq!(round.action_error, None, "{round:?}");
    round
}

/// Slow for the window → declared; healthy for `recover` → restored.
async fn slow_for_the_window_then_recovered(protocol: Protocol) {
    let p = probed(protocol, "declare").await;
    let mut r = p.runner();
    // Healthy first: nothing.
    let round = step(&p, &mut r).await;
    assert_eq!(round.sample.verdict, Verdict::Healthy, "{round:?}");
    p.server.set_delay(SLOW);
    let mut decisions = Vec::new();
    for _ in 0..5 {
        let round = step(&p, &mut r).await;
        assert_eq!(round.sample.verdict, Verdict::Slow, "{round:?}");
        assert!(
            round.outcome.took >= SLOW,
            "measured, not cut off: {round:?}"
        );
        decisions.push(round.decision);
    }
    // The healthy sample leaves the 5-minute window at the fifth slow round.
    assert_eq!(
        decisions,
        [
            Decision::Nothing,
            Decision::Nothing,
            Decision::Nothing,
            Decision::Nothing,
            Decision::Declare
        ]
    );
    assert_eq!(r.phase(), Phase::Down);
    // Still slow: declared once.
    let round = step(&p, &mut r).await;
    assert_eq!(round.decision, Decision::Nothing);
    p.server.set_delay(Duration::ZERO);
    let first = step(&p, &mut r).await;
    assert_eq!(
        first.decision,
        Decision::Nothing,
        "one healthy minute of two"
    );
    let second = step(&p, &mut r).await;
    assert_eq!(second.decision, Decision::Restore, "{second:?}");
    assert!(
        matches!(second.acted, Some(Acted::Restored(Some(_)))),
        "{second:?}"
    );
    assert_eq!(r.phase(), Phase::Up);
    if matches!(protocol, Protocol::Imap | Protocol::Pop3) {
        assert_eq!(
            p.server.logins(),
            9,
            "the probe account logged in at every check"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_slow_for_the_window_declares_and_recovery_restores() {
    slow_for_the_window_then_recovered(Protocol::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_slow_for_the_window_declares_and_recovery_restores() {
    slow_for_the_window_then_recovered(Protocol::Smtp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_slow_for_the_window_declares_and_recovery_restores() {
    slow_for_the_window_then_recovered(Protocol::Imap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_slow_for_the_window_declares_and_recovery_restores() {
    slow_for_the_window_then_recovered(Protocol::Pop3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_slow_sample_declares_nothing() {
    let p = probed(Protocol::Smtp, "declare").await;
    let mut r = p.runner();
    for i in 0..8 {
        p.server
            .set_delay(if i == 3 { SLOW } else { Duration::ZERO });
        let round = step(&p, &mut r).await;
        let expected = if i == 3 {
            Verdict::Slow
        } else {
            Verdict::Healthy
        };
        assert_eq!(round.sample.verdict, expected, "round {i}: {round:?}");
        assert_eq!(round.decision, Decision::Nothing, "round {i}");
    }
    assert_eq!(r.phase(), Phase::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_at_once_counts_as_failed_and_declares() {
    let p = probed(Protocol::Imap, "declare").await;
    let mut r = p.runner();
    p.server.set_down(true);
    let mut declared_at = None;
    for i in 0..5 {
        let round = step(&p, &mut r).await;
        assert_eq!(round.sample.verdict, Verdict::Failed, "{round:?}");
        assert!(round.outcome.result.is_err());
        if round.decision == Decision::Declare {
            declared_at.get_or_insert(i);
        }
    }
    // Four failed checks a minute apart cover 4 of the 5 minutes (80 %).
    assert_eq!(declared_at, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_probe_password_is_a_failed_check_that_does_not_leak_it() {
    let server = SlowServer::start(Protocol::Pop3).await;
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("pw");
    std::fs::write(&file, "not-the-password\n").unwrap();
    let e = common::env_with(&probe_table(
        "p1",
        "pop3",
        &server.target(),
        "declare",
        &format!(
            "username = \"{}\"\npassword_file = \"{}\"\n",
            slow_server::USER,
            file.display()
        ),
    ));
    let mut r = Runner::new(e.app.clone(), e.app.cfg.probes[0].clone()).unwrap();
    let round = r.round().await;
    assert_eq!(round.sample.verdict, Verdict::Failed);
    let error = round.outcome.result.unwrap_err();
    assert!(error.contains("login refused"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
    assert_eq!(server.logins(), 0);
}

/// The real Dovecot: IMAP over TLS from the first byte and with STARTTLS, its test CA, the
/// probe account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_over_tls_with_a_probe_account_against_dovecot() {
    let dc = tokio::task::spawn_blocking(Dovecot::start).await.unwrap();
    let with = |port: u16, tls: &str, password: &str, ca: &Path| {
        format!(
            "[[probes]]\nname = \"dovecot\"\nplatform = \"eu\"\nservice = \"IMAP\"\nkind = \"imap\"\n\
             target = \"127.0.0.1:{port}\"\ntls = \"{tls}\"\nca_file = \"{}\"\nusername = \"{}\"\n\
             password_file = \"{}\"\ntimeout = \"10s\"\nslow = \"5s\"\n",
            ca.display(),
            dovecot::USER,
            dc.password_file(password).display()
        )
    };
    let table = |password: &str, ca: &Path| with(dc.imaps_port, "implicit", password, ca);
    let e = common::env_with(&with(
        dc.imap_port,
        "starttls",
        dovecot::PASSWORD,
        &dc.ca_file(),
    ));
    let mut r = Runner::new(e.app.clone(), e.app.cfg.probes[0].clone()).unwrap();
    let round = r.round().await;
    assert_eq!(round.outcome.result, Ok(()), "STARTTLS: {round:?}");
    let e = common::env_with(&table(dovecot::PASSWORD, &dc.ca_file()));
    let mut r = Runner::new(e.app.clone(), e.app.cfg.probes[0].clone()).unwrap();
    let round = r.round().await;
    assert_eq!(round.outcome.result, Ok(()), "{round:?}");
    assert_eq!(round.sample.verdict, Verdict::Healthy);

    let e = common::env_with(&table("wrong", &dc.ca_file()));
    let mut r = Runner::new(e.app.clone(), e.app.cfg.probes[0].clone()).unwrap();
    let error = r.round().await.outcome.result.unwrap_err();
    assert!(error.contains("IMAP login refused"), "{error}");

    let e = common::env_with(&table(dovecot::PASSWORD, &dc.other_ca_file()));
    let mut r = Runner::new(e.app.clone(), e.app.cfg.probes[0].clone()).unwrap();
    let error = r.round().await.outcome.result.unwrap_err();
    assert!(error.contains("TLS handshake"), "{error}");
}

/// The daemon task publishes each check: the metrics and `/readyz` (informational: a down
/// probe leaves ticketgate ready), and stops on the cancellation token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_publishes_metrics_and_readiness_and_stops_on_cancel() {
    let up = SlowServer::start(Protocol::Http).await;
    let down = SlowServer::start(Protocol::Smtp).await;
    down.set_down(true);
    let fast = |t: String| {
        t.replace("interval = \"60s\"", "interval = \"100ms\"")
            .replace("window = \"5m\"", "window = \"1s\"")
            .replace("recover = \"2m\"", "recover = \"200ms\"")
    };
    let e = common::env_with(&format!(
        "{}{}[http]\nlisten = \"127.0.0.1:0\"\n",
        fast(probe_table("web", "http", &up.target(), "draft", "")),
        fast(probe_table("mx", "smtp", &down.target(), "draft", "")),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ticketgate::probes::run(e.app.clone(), stop.clone()));
    let server = ticketgate::http::bind(&e.app).await.expect("[http] listen");
    let addr = server.local_addr().unwrap();
    let web_stop = stop.clone();
    let web = tokio::spawn(async move { server.serve(web_stop).await });
    // A few rounds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while up.connections() < 3 || down.connections() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the probes did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = get(addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let json: serde_json::Value =
        serde_json::from_str(ready.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["status"], "ready");
    let probes = json["probes"].as_array().unwrap();
    let web_probe = probes.iter().find(|p| p["name"] == "web").unwrap();
    assert_eq!(web_probe["last_verdict"], "healthy", "{web_probe}");
    let mx = probes.iter().find(|p| p["name"] == "mx").unwrap();
    assert_eq!(mx["last_verdict"], "failed", "{mx}");
    assert!(
        mx["last_error"].as_str().unwrap().contains("closed"),
        "{mx}"
    );
    let metrics = get(addr, "/metrics").await;
    assert!(
        metrics.contains("ticketgate_probe_up{probe=\"web\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ticketgate_probe_up{probe=\"mx\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ticketgate_probe_duration_seconds{probe=\"web\"}"),
        "{metrics}"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the probe task stops on cancel")
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), web).await;
    let seen = (up.connections(), down.connections());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (up.connections(), down.connections()),
        seen,
        "no check after the stop"
    );
}

/// A GET over plain HTTP/1.1; the whole answer.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

// ---- with the announcement store: outages and their mail ---------------------------------

/// The announcement tests' registry: EU and US platforms with an incident list each.
use crate::announce::ANNOUNCE_REGISTRY as REGISTRY;

/// Two EU subscribers (one confirmed, one pending) and one US subscriber.
fn subscribe(e: &Env) {
    let now = e.app.clock.now();
    let mut store = e.app.store().unwrap();
    let mut tx = store.write().unwrap();
    for (list, address, customer, state) in [
        (
            "eu-incidents",
            "ops@acme.example",
            "acme",
            SubscriberState::Confirmed,
        ),
        (
            "eu-incidents",
            "later@acme.example",
            "acme",
            SubscriberState::Pending,
        ),
        (
            "us-incidents",
            "ops@globex.example",
            "globex",
            SubscriberState::Confirmed,
        ),
    ] {
        tx.announce()
            .upsert_subscriber(&NewSubscriber {
                list,
                address,
                customer,
                state,
                shared: false,
                added_by: "operator",
                now,
                expires_at: None,
            })
            .unwrap();
    }
    tx.commit().unwrap();
}

/// The outages of platform `eu`, every state, oldest first.
fn outages(e: &Env) -> Vec<AnnouncementRow> {
    let mut store = e.app.store().unwrap();
    let mut all = store
        .announce()
        .announcements(&AnnouncementQuery {
            platform: Some("eu".into()),
            kinds: vec![AnnouncementKind::Outage],
            states: vec![],
            since: None,
            before_id: None,
            limit: 0,
        })
        .unwrap();
    all.sort_by_key(|a| a.id);
    all
}

/// The recipients of the outbox, in order.
fn recipients(e: &mut Env) -> Vec<String> {
    e.outbox().into_iter().map(|r| r.recipient).collect()
}

/// The mails an outage recorded (kind and recipient count), oldest first.
fn updates(e: &Env, id: i64) -> Vec<(UpdateKind, i64)> {
    let mut store = e.app.store().unwrap();
    store
        .announce()
        .announcement_updates(id)
        .unwrap()
        .into_iter()
        .map(|u| (u.kind, u.recipients))
        .collect()
}

/// Every outbox row went to the EU incident list's confirmed subscriber (not the US one,
/// not the pending one), and there are as many as the outage's updates counted.
fn only_confirmed_eu(e: &mut Env, id: i64) -> usize {
    let counted: i64 = updates(e, id).iter().map(|(_, n)| n).sum();
    let to = recipients(e);
    assert!(to.iter().all(|r| r == "ops@acme.example"), "{to:?}");
    assert_eq!(to.len() as i64, counted, "{to:?}");
    to.len()
}

async fn announced(protocol: Protocol, action: &str) -> Probed {
    let server = SlowServer::start(protocol).await;
    let secrets = tempfile::tempdir().unwrap();
    let table = probe_table(
        "p1",
        protocol.kind(),
        &server.target(),
        action,
        &account(protocol, secrets.path()),
    );
    let e = common::env_registry(REGISTRY, &table);
    subscribe(&e);
    Probed {
        e,
        server,
        _secrets: secrets,
    }
}

/// Slow for the window: the outage is declared once (its notice to the EU incident list's
/// confirmed subscriber only); healthy for `recover`: restored, with its notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_outage_is_announced_once_and_restored() {
    let mut p = announced(Protocol::Imap, "declare").await;
    let mut r = p.runner();
    p.server.set_delay(SLOW);
    for _ in 0..3 {
        assert_eq!(step(&p, &mut r).await.decision, Decision::Nothing);
    }
    assert!(
        outages(&p.e).is_empty(),
        "three slow minutes of five: nothing"
    );
    let round = step(&p, &mut r).await;
    let Some(Acted::Declared(Declared::New(o))) = &round.acted else {
        panic!("{round:?}")
    };
    let all = outages(&p.e);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].reference(), o.reference);
    assert_eq!(all[0].state, AnnouncementState::Open);
    assert_eq!(all[0].source, "probe:p1");
    assert_eq!(all[0].services, ["imap-service"]);
    assert_eq!(all[0].lists, ["eu-incidents"]);
    let id = all[0].id;
    assert_eq!(updates(&p.e, id).len(), 1);
    assert_eq!(updates(&p.e, id)[0].0, UpdateKind::Declared);
    let notices = only_confirmed_eu(&mut p.e, id);
    assert_eq!(notices, 1, "the notice, to the one confirmed EU subscriber");
    // Still slow for longer than the window: no second outage, no second notice.
    for _ in 0..6 {
        step(&p, &mut r).await;
    }
    assert_eq!(outages(&p.e).len(), 1);
    assert_eq!(updates(&p.e, id).len(), 1, "declared once");
    assert_eq!(only_confirmed_eu(&mut p.e, id), notices);
    p.server.set_delay(Duration::ZERO);
    step(&p, &mut r).await;
    let round = step(&p, &mut r).await;
    assert!(
        matches!(round.acted, Some(Acted::Restored(Some(_)))),
        "{round:?}"
    );
    let all = outages(&p.e);
    assert_eq!(all[0].state, AnnouncementState::Restored);
    assert!(all[0].closed_at.is_some());
    let kinds: Vec<UpdateKind> = updates(&p.e, id).into_iter().map(|u| u.0).collect();
    assert_eq!(kinds, [UpdateKind::Declared, UpdateKind::Restored]);
    let mut store = p.e.app.store().unwrap();
    let restored = store
        .announce()
        .announcement_updates(id)
        .unwrap()
        .pop()
        .unwrap();
    assert!(
        restored.text.contains("answers normally again"),
        "{restored:?}"
    );
    drop(store);
    assert_eq!(
        only_confirmed_eu(&mut p.e, id),
        2,
        "the notice and the restoration"
    );
    let last = p.e.outbox().pop().unwrap();
    let text = p.e.text(&last);
    assert!(text.contains("answers normally again"), "{text}");
}

/// `action = "draft"`: a draft, no mail; when the service recovers before anyone confirmed
/// it, the draft is dismissed, still without mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drafted_outage_sends_nothing_and_is_dismissed_on_recovery() {
    let mut p = announced(Protocol::Http, "draft").await;
    let mut r = p.runner();
    p.server.set_delay(SLOW);
    let mut rounds = Vec::new();
    for _ in 0..4 {
        rounds.push(step(&p, &mut r).await);
    }
    assert!(matches!(
        rounds[3].acted,
        Some(Acted::Declared(Declared::New(_)))
    ));
    let all = outages(&p.e);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, AnnouncementState::Draft);
    assert!(updates(&p.e, all[0].id).is_empty(), "a draft sends nothing");
    assert!(recipients(&mut p.e).is_empty());
    assert_eq!(
        p.e.app.telemetry.probes.get("p1").unwrap().outage,
        Some(all[0].reference())
    );
    p.server.set_delay(Duration::ZERO);
    step(&p, &mut r).await;
    let round = step(&p, &mut r).await;
    assert!(
        matches!(round.acted, Some(Acted::Restored(Some(_)))),
        "{round:?}"
    );
    let all = outages(&p.e);
    assert_eq!(all[0].state, AnnouncementState::Dismissed);
    assert!(all[0].closed_at.is_some());
    assert!(updates(&p.e, all[0].id).is_empty());
    assert!(recipients(&mut p.e).is_empty());
}

/// Two instances on one database probe the same service and both decide "down": one
/// outage, one notice; a restarted instance finds it and restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_declare_one_outage_and_a_restart_picks_it_up() {
    let mut p = announced(Protocol::Smtp, "declare").await;
    let other = App::open(
        (*p.e.app.cfg).clone(),
        std::sync::Arc::new(p.e.clock.clone()),
    )
    .unwrap();
    let mut a = p.runner();
    let mut b = Runner::new(other.clone(), other.cfg.probes[0].clone()).unwrap();
    p.server.set_delay(SLOW);
    let mut acted = Vec::new();
    for _ in 0..4 {
        let (ra, rb) = tokio::join!(a.round(), b.round());
        p.e.clock.advance(Minutes::seconds(60));
        acted.extend([ra.acted, rb.acted].into_iter().flatten());
    }
    let news = acted
        .iter()
        .filter(|x| matches!(x, Acted::Declared(Declared::New(_))))
        .count();
    let existing = acted
        .iter()
        .filter(|x| matches!(x, Acted::Declared(Declared::Existing(_))))
        .count();
    assert_eq!((news, existing), (1, 1), "{acted:?}");
    let all = outages(&p.e);
    assert_eq!(all.len(), 1);
    assert_eq!(updates(&p.e, all[0].id).len(), 1, "declared once");
    assert_eq!(only_confirmed_eu(&mut p.e, all[0].id), 1, "one notice");
    // A restarted instance starts "down" from the store, and restores it once healthy.
    let mut c = Runner::new(other.clone(), other.cfg.probes[0].clone()).unwrap();
    p.server.set_delay(Duration::ZERO);
    let first = c.round().await;
    assert_eq!(c.phase(), Phase::Down, "{first:?}");
    p.e.clock.advance(Minutes::seconds(60));
    // Two healthy checks a minute apart cover the 2-minute recover window.
    let second = c.round().await;
    assert!(
        matches!(second.acted, Some(Acted::Restored(Some(_)))),
        "{second:?}"
    );
    assert_eq!(outages(&p.e)[0].state, AnnouncementState::Restored);
}

/// `ticketgate run` spawns the probes' task and stops it at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_the_probes_until_shutdown() {
    let server = SlowServer::start(Protocol::Smtp).await;
    let table = probe_table("mx", "smtp", &server.target(), "draft", "")
        .replace("interval = \"60s\"", "interval = \"100ms\"")
        .replace("window = \"5m\"", "window = \"1s\"")
        .replace("recover = \"2m\"", "recover = \"200ms\"");
    let e = common::env_with(&table);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = e.app.run(false, async {
        let _ = stop_rx.await;
    });
    tokio::pin!(run);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.connections() < 3 {
        tokio::select! {
            r = &mut run => panic!("the daemon stopped on its own: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "no probe ran");
    }
    assert!(e.app.telemetry.probes.get("mx").is_some());
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
    let seen = server.connections();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.connections(), seen, "no check after shutdown");
}
