//! Subscriptions by mail and the subscriber's pages (issue 10): subscribe by mail confirmed
//! by a reply or by its link (GET changes nothing, POST confirms), a wrong platform refused,
//! a pending request lapsing after 3 days (moved time, the tick), unsubscribe by mail, the
//! one-click unsubscribe (POST removes, GET changes nothing), a shared distribution address
//! confirming its removal, and the loop rules (an auto-reply to a confirmation gets nothing).
//! The pages are real HTTP requests to the daemon's web server (`http::bind` + `serve`) over
//! loopback, on the test's app, so the moved clock and the store are the test's.

use crate::common::{self, Env, mail};
use crate::web::{Response, request as http};
use std::net::SocketAddr;
use std::time::Duration;
use ticketgate::pipeline::Outcome;
use ticketgate::subscriptions::apply::Effect;

const PUBLIC: &str = "http://support.example.test";

/// The test registry with two platforms and their incident lists; ACME is on `eu`.
fn registry() -> String {
    common::REGISTRY.replace(
        "allowed_senders = [\"@acme.example\"]\n",
        "allowed_senders = [\"@acme.example\"]\nplatform = \"eu\"\n",
    ) + r#"
[lists.eu-incidents]
type = "incident"
platform = "eu"
address = "eu-incidents@lists.support.example.test"
language = "en"

[lists.us-incidents]
type = "incident"
platform = "us"
address = "us-incidents@lists.support.example.test"
language = "en"
"#
}

const KEY: &str = "subscriptions-test-key-0123456789abcdef";

fn env() -> Env {
    common::env_registry(
        &registry(),
        &format!(
            "[announcements]\nkey = \"{KEY}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC}\"\n"
        ),
    )
}

/// The subscriber of `list` at `address`: (state, shared), or `None`.
fn subscriber(e: &Env, list: &str, address: &str) -> Option<(String, bool)> {
    let mut s = e.app.store().unwrap();
    s.announce()
        .subscribers(list)
        .unwrap()
        .into_iter()
        .find(|r| r.address == address)
        .map(|r| (r.state.as_str().to_string(), r.shared))
}

fn subscribe_mail(from: &str, subject: &str) -> String {
    mail(from, subject, "Our key: ACME-0000-0000-0001").build()
}

/// The subject of the only confirmation mail to `to` (there must be exactly one).
fn confirmation(e: &mut Env, to: &str) -> (String, String) {
    let rows: Vec<_> = e
        .sent("subscription_confirm")
        .into_iter()
        .filter(|r| r.recipient == to)
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let text = e.text(&rows[0]);
    (rows[0].subject.clone(), text)
}

/// The token in a confirmation's subject (`… [c42-SIG]`).
fn token_of(subject: &str) -> String {
    subject
        .rsplit_once('[')
        .and_then(|(_, t)| t.split_once(']'))
        .map(|(t, _)| t.to_string())
        .unwrap_or_else(|| panic!("no token in {subject:?}"))
}

/// The daemon's web server on the test's app, stopped when dropped.
struct Web {
    addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(e: &Env) -> Web {
    let app = e.app.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = ticketgate::http::bind(&app).await.expect("http.listen");
            tx.send(server.local_addr().unwrap()).unwrap();
            server.serve(s).await;
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Web {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// A request without headers of its own; a body is sent as a form.
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Response {
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let headers: &[(&str, &str)] = if body.is_some() { &form } else { &[] };
    http(addr, method, path, headers, body)
}

fn effect(o: &Outcome) -> Effect {
    match o {
        Outcome::Subscription { effect, .. } => *effect,
        other => panic!("not a subscription outcome: {other:?}"),
    }
}

#[test]
fn subscribe_by_mail_is_confirmed_by_a_reply() {
    let mut e = env();
    let o = e.ingest(&subscribe_mail(
        "Jane Doe <jane@acme.example>",
        "subscribe eu-incidents",
    ));
    assert_eq!(effect(&o), Effect::Pending);
    assert_eq!(
        subscriber(&e, "eu-incidents", "jane@acme.example"),
        Some(("pending".into(), false))
    );
    let (subject, text) = confirmation(&mut e, "jane@acme.example");
    assert!(text.contains(&format!("{PUBLIC}/s/")), "{text}");
    // Nothing but the confirmation: no ticket, no acknowledgement.
    assert_eq!(e.outbox().len(), 1);

    let reply = mail(
        "Jane Doe <jane@acme.example>",
        &format!("Re: {subject}"),
        "yes",
    )
    .build();
    assert_eq!(effect(&e.ingest(&reply)), Effect::Confirmed);
    assert_eq!(
        subscriber(&e, "eu-incidents", "jane@acme.example"),
        Some(("confirmed".into(), false))
    );
    assert_eq!(e.outbox().len(), 1, "a confirmation reply is not answered");
    // Asked again once confirmed: nothing new is sent.
    let again = subscribe_mail("jane@acme.example", "subscribe eu-incidents");
    assert_eq!(effect(&e.ingest(&again)), Effect::AlreadySubscribed);
    assert_eq!(e.outbox().len(), 1);
}

#[test]
fn subscribe_by_link_get_changes_nothing_and_post_confirms() {
    let mut e = env();
    // Written to the list's own address: the list may be left out; another address is
    // subscribed (a distribution address of the customer's).
    let raw = mail(
        "Jane Doe <jane@acme.example>",
        "subscribe ops@acme.example",
        "Our key: ACME-0000-0000-0001",
    )
    .build()
    .replace(
        "To: support@support.example.test",
        "To: eu-incidents@lists.support.example.test",
    );
    assert_eq!(effect(&e.ingest(&raw)), Effect::Pending);
    let (subject, text) = confirmation(&mut e, "ops@acme.example");
    assert!(text.contains("requested by jane@acme.example"), "{text}");
    let token = token_of(&subject);
    assert!(text.contains(&format!("{PUBLIC}/s/{token}")), "{text}");

    let web = serve(&e);
    let path = format!("/s/{token}");
    let page = request(web.addr, "GET", &path, None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    assert!(page.body.contains("ops@acme.example"));
    // A GET (twice: a link scanner) changes nothing.
    request(web.addr, "GET", &path, None);
    assert_eq!(
        subscriber(&e, "eu-incidents", "ops@acme.example"),
        Some(("pending".into(), true))
    );
    let done = request(web.addr, "POST", &path, None);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("The subscription is confirmed"),
        "{}",
        done.body
    );
    assert_eq!(
        subscriber(&e, "eu-incidents", "ops@acme.example"),
        Some(("confirmed".into(), true))
    );
    // A forged token: the same 404 page, nothing changed.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("/s/{}{last}", &token[..token.len() - 1]);
    let r = request(web.addr, "POST", &forged, None);
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn a_list_of_another_platform_is_refused_with_a_reply() {
    let mut e = env();
    let o = e.ingest(&subscribe_mail(
        "jane@acme.example",
        "subscribe us-incidents",
    ));
    assert!(
        matches!(&o, Outcome::Quarantined { code, .. } if code == "subscription_wrong_platform"),
        "{o:?}"
    );
    assert_eq!(subscriber(&e, "us-incidents", "jane@acme.example"), None);
    let refused = e.sent("subscription_refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].recipient, "jane@acme.example");
    assert!(e.text(&refused[0]).contains("another platform"));
    assert!(e.sent("subscription_confirm").is_empty());

    // An unknown list and a missing key are refused too, each saying why.
    let o = e.ingest(&subscribe_mail("jane@acme.example", "subscribe nowhere"));
    assert!(matches!(&o, Outcome::Quarantined { code, .. } if code == "subscription_unknown_list"));
    let o = e.ingest(&mail("jane@acme.example", "subscribe eu-incidents", "no key").build());
    assert!(matches!(&o, Outcome::Quarantined { code, .. } if code == "subscription_no_key"));
    assert_eq!(e.sent("subscription_refused").len(), 3);
    assert_eq!(subscriber(&e, "eu-incidents", "jane@acme.example"), None);
}

#[test]
fn a_pending_subscription_lapses_after_three_days() {
    let mut e = env();
    e.ingest(&subscribe_mail(
        "jane@acme.example",
        "subscribe eu-incidents",
    ));
    let (subject, _) = confirmation(&mut e, "jane@acme.example");
    e.clock
        .advance(chrono::Duration::days(3) - chrono::Duration::minutes(1));
    e.tick();
    assert_eq!(
        subscriber(&e, "eu-incidents", "jane@acme.example"),
        Some(("pending".into(), false)),
        "still waiting a minute before its 3 days"
    );
    e.clock.advance(chrono::Duration::minutes(2));
    e.tick();
    assert_eq!(subscriber(&e, "eu-incidents", "jane@acme.example"), None);
    // Its token now names nothing: a late reply confirms nothing.
    let reply = mail("jane@acme.example", &format!("Re: {subject}"), "yes").build();
    let o = e.ingest(&reply);
    assert!(
        matches!(&o, Outcome::Quarantined { code, .. } if code == "subscription_unknown_token"),
        "{o:?}"
    );
    assert_eq!(subscriber(&e, "eu-incidents", "jane@acme.example"), None);
}

#[test]
fn unsubscribe_by_mail_needs_no_key_and_the_address_confirms() {
    let mut e = env();
    add(&e, "eu-incidents", "jane@acme.example", false);
    let o = e.ingest(&mail("jane@acme.example", "unsubscribe eu-incidents", "bye").build());
    assert_eq!(effect(&o), Effect::RemovalPending);
    assert!(subscriber(&e, "eu-incidents", "jane@acme.example").is_some());
    let (subject, _) = confirmation(&mut e, "jane@acme.example");
    assert!(token_of(&subject).starts_with('r'));
    let reply = mail("jane@acme.example", &format!("Re: {subject}"), "yes").build();
    assert_eq!(effect(&e.ingest(&reply)), Effect::Removed);
    assert_eq!(subscriber(&e, "eu-incidents", "jane@acme.example"), None);
    // An address that is not subscribed: nothing sent (no mail tells who is subscribed).
    let before = e.outbox().len();
    let o = e.ingest(
        &mail(
            "mallory@evil.example",
            "unsubscribe eu-incidents boss@acme.example",
            "",
        )
        .build(),
    );
    assert_eq!(effect(&o), Effect::NotSubscribed);
    assert_eq!(e.outbox().len(), before);
}

#[test]
fn one_click_post_unsubscribes_and_get_changes_nothing() {
    let e = env();
    let id = add(&e, "eu-incidents", "jane@acme.example", false);
    let token = unsubscribe_token(id);
    let web = serve(&e);
    let path = format!("/u/{token}");
    let page = request(web.addr, "GET", &path, None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
        "{}",
        page.body
    );
    request(web.addr, "GET", &path, None);
    assert!(
        subscriber(&e, "eu-incidents", "jane@acme.example").is_some(),
        "a GET removes nobody"
    );
    // A POST without the RFC 8058 body is not a one-click unsubscribe.
    assert_eq!(request(web.addr, "POST", &path, Some("x=1")).status, 400);
    assert!(subscriber(&e, "eu-incidents", "jane@acme.example").is_some());
    let r = request(web.addr, "POST", &path, Some("List-Unsubscribe=One-Click"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("unsubscribed"), "{}", r.body);
    assert_eq!(subscriber(&e, "eu-incidents", "jane@acme.example"), None);
    // The same link again: nothing to remove.
    let again = request(web.addr, "POST", &path, Some("List-Unsubscribe=One-Click"));
    assert_eq!(again.status, 404);
}

#[test]
fn a_shared_address_confirms_its_one_click_unsubscribe() {
    let mut e = env();
    let id = add(&e, "eu-incidents", "ops@acme.example", true);
    let token = unsubscribe_token(id);
    let web = serve(&e);
    let r = request(
        web.addr,
        "POST",
        &format!("/u/{token}"),
        Some("List-Unsubscribe=One-Click"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("A confirmation was sent"), "{}", r.body);
    assert_eq!(
        subscriber(&e, "eu-incidents", "ops@acme.example"),
        Some(("confirmed".into(), true)),
        "one member cannot unsubscribe everyone"
    );
    let (subject, text) = confirmation(&mut e, "ops@acme.example");
    let confirm = token_of(&subject);
    assert!(text.contains(&format!("{PUBLIC}/s/{confirm}")));
    let done = request(web.addr, "POST", &format!("/s/{confirm}"), None);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(subscriber(&e, "eu-incidents", "ops@acme.example"), None);
}

#[test]
fn an_auto_reply_to_a_confirmation_gets_nothing_and_confirms_nothing() {
    let mut e = env();
    e.ingest(&subscribe_mail(
        "jane@acme.example",
        "subscribe eu-incidents",
    ));
    let (subject, _) = confirmation(&mut e, "jane@acme.example");
    let before = e.outbox().len();
    let ooo = mail(
        "jane@acme.example",
        &format!("Automatic reply: {subject}"),
        "I am out of the office until Monday.",
    )
    .header("Auto-Submitted: auto-replied")
    .build();
    let o = e.ingest(&ooo);
    assert!(
        matches!(&o, Outcome::Quarantined { code, .. } if code == "subscription_automatic_mail"),
        "{o:?}"
    );
    assert_eq!(e.outbox().len(), before, "nothing is sent to an auto-reply");
    assert_eq!(
        subscriber(&e, "eu-incidents", "jane@acme.example"),
        Some(("pending".into(), false)),
        "an auto-reply confirms nothing"
    );
    // An automatic mail asking to subscribe gets nothing either.
    let auto = mail(
        "jane@acme.example",
        "subscribe eu-incidents",
        "ACME-0000-0000-0001",
    )
    .header("Precedence: bulk")
    .build();
    e.ingest(&auto);
    assert_eq!(e.outbox().len(), before);
}

/// A confirmed subscriber of ACME, added as the operator does (the service); its id.
fn add(e: &Env, list: &str, address: &str, shared: bool) -> i64 {
    block_on(ticketgate::services::lists::subscribe(
        &e.app, list, address, "acme", shared,
    ))
    .unwrap()
    .id
}

/// The one-click token of subscriber `id`, as an announcement's `List-Unsubscribe` has it.
fn unsubscribe_token(id: i64) -> String {
    let key = ticketgate::announce::token::UnsubscribeKey::new(KEY.as_bytes());
    ticketgate::announce::token::sign(&key, id)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn api(addr: SocketAddr, method: &str, path: &str, token: &str, body: Option<&str>) -> Response {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    http(addr, method, path, &headers, body)
}

#[test]
fn the_lists_api_is_for_admins_and_subscribes_confirmed() {
    let e = env();
    let admin = block_on(ticketgate::services::web::create_token(
        &e.app,
        "ops",
        ticketgate::store::Scope::Admin,
    ))
    .unwrap();
    let reader = block_on(ticketgate::services::web::create_token(
        &e.app,
        "dash",
        ticketgate::store::Scope::Read,
    ))
    .unwrap();
    let web = serve(&e);
    assert_eq!(
        api(web.addr, "GET", "/api/v1/lists", &reader, None).status,
        403
    );
    let body = r#"{"address": "Ops@Acme.Example", "customer": "acme", "shared": true}"#;
    let r = api(
        web.addr,
        "POST",
        "/api/v1/lists/eu-incidents/subscribers",
        &admin,
        Some(body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        subscriber(&e, "eu-incidents", "ops@acme.example"),
        Some(("confirmed".into(), true))
    );
    // Not for a list of another platform than the customer's.
    let r = api(
        web.addr,
        "POST",
        "/api/v1/lists/us-incidents/subscribers",
        &admin,
        Some(body),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = api(web.addr, "GET", "/api/v1/lists", &admin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let lists: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let eu = lists
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "eu-incidents")
        .unwrap();
    assert_eq!(eu["confirmed"], 1);
    let r = api(
        web.addr,
        "GET",
        "/api/v1/lists/eu-incidents/subscribers",
        &admin,
        None,
    );
    let subs: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(subs[0]["address"], "ops@acme.example");
    let r = api(
        web.addr,
        "DELETE",
        "/api/v1/lists/eu-incidents/subscribers/ops@acme.example",
        &admin,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(subscriber(&e, "eu-incidents", "ops@acme.example"), None);
}

/// The whole way: an outage notice's `List-Unsubscribe` URL (the fan-out's) is the page this
/// module serves, and its one-click POST removes exactly that subscriber; the `mailto:` of the
/// same header (`unsubscribe LIST` to the list's address) is a command this module reads.
#[test]
fn an_announcements_list_unsubscribe_header_leads_to_the_one_click_page() {
    let mut e = env();
    add(&e, "eu-incidents", "jane@acme.example", false);
    add(&e, "eu-incidents", "joe@acme.example", false);
    block_on(ticketgate::services::announce::declare_outage(
        &e.app,
        ticketgate::services::announce::OutageDeclaration {
            platform: "eu".into(),
            services: vec!["IMAP".into()],
            impact: "Mail cannot be read".into(),
            restoration_eta: None,
            update_interval: None,
            draft: false,
            source: "operator".into(),
        },
    ))
    .unwrap();
    let notice = e
        .sent("outage_declared")
        .into_iter()
        .find(|r| r.recipient == "jane@acme.example")
        .expect("jane's notice");
    let raw = e.body(&notice).replace("\r\n ", " ");
    let header = raw
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe:"))
        .unwrap_or_else(|| panic!("no List-Unsubscribe in {raw}"));
    let url = header
        .split(['<', '>'])
        .find(|p| p.starts_with(PUBLIC))
        .unwrap_or_else(|| panic!("no one-click URL in {header}"));
    let path = &url[PUBLIC.len()..];
    assert!(path.starts_with("/u/"), "{path}");
    let web = serve(&e);
    let r = request(web.addr, "POST", path, Some("List-Unsubscribe=One-Click"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(subscriber(&e, "eu-incidents", "jane@acme.example"), None);
    assert!(subscriber(&e, "eu-incidents", "joe@acme.example").is_some());

    let mailto = header
        .split(['<', '>'])
        .find(|p| p.starts_with("mailto:"))
        .unwrap_or_else(|| panic!("no mailto in {header}"));
    let (to, query) = mailto["mailto:".len()..].split_once('?').unwrap();
    let subject = query.strip_prefix("subject=").unwrap().replace("%20", " ");
    let raw = mail("joe@acme.example", &subject, "")
        .build()
        .replace("To: support@support.example.test", &format!("To: {to}"));
    assert_eq!(effect(&e.ingest(&raw)), Effect::RemovalPending);
    confirmation(&mut e, "joe@acme.example");
}
