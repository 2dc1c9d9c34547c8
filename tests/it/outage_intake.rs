//! Incident-aware intake and the status page (issue 10), on a real store (SQLite, or
//! PostgreSQL with `TICKETGATE_TEST_DATABASE_URL`): the OX story's ticket part with moved
//! time, and the status page, its Atom feed and the announcements API over real HTTP.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::{Env, mail};
use ticketgate::pipeline::Outcome;
use ticketgate::services::announce::{self, OutageDeclaration};
use ticketgate::services::tickets;

const REGISTRY: &str = r#"
[plans.eu]
language = "en"
platform = "eu"
agent_team = "agents@support.example.test"

[plans.us]
language = "en"
platform = "us"
agent_team = "agents@support.example.test"

[[customers]]
id = "ox-eu"
name = "OX EU"
plan = "eu"
keys = [{ key = "OXEU-0000-0000-0001" }]

[[customers]]
id = "ox-us"
name = "OX US"
plan = "us"
keys = [{ key = "OXUS-0000-0000-0002" }]

[lists.eu-incidents]
type = "incident"
platform = "eu"
address = "eu-incidents@lists.support.example.test"

[lists.us-incidents]
type = "incident"
platform = "us"
address = "us-incidents@lists.support.example.test"
"#;

const PUBLIC: &str = "http://status.example.test";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn env() -> Env {
    let e = common::env_registry(
        REGISTRY,
        &format!("[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC}\"\n"),
    );
    e.clock.set(at("2026-12-03T10:00:00Z"));
    e
}

fn declare_eu_outage(e: &Env) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(announce::declare_outage(
        &e.app,
        OutageDeclaration {
            platform: "eu".into(),
            services: vec!["IMAP,Webmail".into()],
            impact: "Mail cannot be read over IMAP or in the webmail.".into(),
            restoration_eta: Some(at("2026-12-03T13:00:00Z")),
            update_interval: None,
            draft: false,
            source: "operator".into(),
        },
    ))
    .unwrap()
    .reference
}

fn request(e: &mut Env, from: &str, key: &str) -> String {
    match e.ingest(
        &mail(
            from,
            "Cannot read my mail",
            &format!("{key}\nIMAP login hangs."),
        )
        .build(),
    ) {
        Outcome::Created { ticket } => ticket,
        other => panic!("{other:?}"),
    }
}

fn show(e: &Env, reference: &str) -> serde_json::Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    serde_json::to_value(rt.block_on(tickets::show(&e.app, reference)).unwrap()).unwrap()
}

/// The mail of `kind` to `to`, decoded.
fn text_to(e: &mut Env, kind: &str, to: &str) -> Vec<String> {
    e.sent(kind)
        .into_iter()
        .filter(|o| o.recipient == to)
        .collect::<Vec<_>>()
        .iter()
        .map(|o| e.text(o))
        .collect()
}

#[test]
fn a_ticket_opened_during_an_outage_of_its_platform_is_linked_told_and_notified_of_the_restoration()
{
    let mut e = env();
    let outage = declare_eu_outage(&e);
    assert_eq!(outage, "OUT-000001");

    // 10:20: an EU customer and a US customer write in.
    e.clock.set(at("2026-12-03T10:20:00Z"));
    let eu = request(&mut e, "Eve <eve@ox-eu.example>", "OXEU-0000-0000-0001");
    let us = request(&mut e, "Uma <uma@ox-us.example>", "OXUS-0000-0000-0002");

    // The EU ticket is linked (tickets show, JSON), the US one is not.
    let j = show(&e, &eu);
    assert_eq!(j["outages"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["outages"][0]["reference"], "OUT-000001");
    assert_eq!(j["outages"][0]["state"], "open");
    assert_eq!(j["outages"][0]["services"][1], "Webmail");
    assert_eq!(show(&e, &us)["outages"].as_array().unwrap().len(), 0);

    // Its acknowledgement says the outage is known, since when, its last update and the
    // status page; the US customer's says nothing of it.
    let ack = text_to(&mut e, "acknowledgement", "eve@ox-eu.example").remove(0);
    for want in [
        "OUT-000001 (IMAP, Webmail)",
        "since Thu 03 Dec 2026 10:00",
        "Mail cannot be read over IMAP or in the webmail.",
        "Expected restoration: Thu 03 Dec 2026 13:00",
        &format!("Status page: {PUBLIC}/status"),
        "we will tell you when it is restored",
    ] {
        assert!(ack.contains(want), "missing {want:?} in:\n{ack}");
    }
    let ack_us = text_to(&mut e, "acknowledgement", "uma@ox-us.example").remove(0);
    assert!(!ack_us.contains("OUT-"), "{ack_us}");
    // The agents' copy of the EU ticket names the outage.
    let copies = text_to(&mut e, "agent_notification", "agents@support.example.test");
    assert_eq!(copies.len(), 2);
    assert!(
        copies[0].contains("Linked to outage OUT-000001 (IMAP, Webmail"),
        "{}",
        copies[0]
    );
    assert!(!copies[1].contains("OUT-"), "{}", copies[1]);

    // 10:40 the operator's update, mailed by the 11:00 tick; a ticket at 11:20 is told it.
    e.clock.set(at("2026-12-03T10:40:00Z"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(announce::update_outage(
        &e.app,
        "OUT-000001",
        "The storage cluster is being restarted.",
        None,
    ))
    .unwrap();
    e.clock.set(at("2026-12-03T11:00:00Z"));
    e.tick();
    e.clock.set(at("2026-12-03T11:20:00Z"));
    let second = request(&mut e, "Ed <ed@ox-eu.example>", "OXEU-0000-0000-0001");
    let ack = text_to(&mut e, "acknowledgement", "ed@ox-eu.example").remove(0);
    assert!(
        ack.contains(
            "Last update (Thu 03 Dec 2026 11:00 UTC): The storage cluster is being restarted."
        ),
        "{ack}"
    );
    assert_eq!(show(&e, &second)["outages"][0]["reference"], "OUT-000001");

    // 12:30: restored. The linked ticket's requester gets the notice with the duration, in
    // the restoration's transaction; the US one gets nothing.
    e.clock.set(at("2026-12-03T12:30:00Z"));
    rt.block_on(announce::restore_outage(
        &e.app,
        "OUT-000001",
        Some("The storage cluster is back."),
    ))
    .unwrap();
    let restored = text_to(&mut e, "ticket_outage_restored", "eve@ox-eu.example");
    assert_eq!(restored.len(), 1);
    for want in [
        "[TKT-000001] Cannot read my mail - outage OUT-000001 restored",
        "after\n2 h 30 min",
        "The storage cluster is back.",
    ] {
        assert!(
            restored[0].contains(want),
            "missing {want:?} in:\n{}",
            restored[0]
        );
    }
    assert_eq!(
        text_to(&mut e, "ticket_outage_restored", "ed@ox-eu.example").len(),
        1
    );
    assert!(text_to(&mut e, "ticket_outage_restored", "uma@ox-us.example").is_empty());
    assert_eq!(show(&e, &eu)["outages"][0]["state"], "restored");

    // A ticket opened after the restoration is not linked.
    e.clock.advance(Duration::minutes(5));
    let later = e.ingest(
        &mail(
            "Eve <eve@ox-eu.example>",
            "Another question",
            "OXEU-0000-0000-0001\nUnrelated.",
        )
        .build(),
    );
    let Outcome::Created { ticket } = later else {
        panic!("{later:?}")
    };
    assert_eq!(show(&e, &ticket)["outages"].as_array().unwrap().len(), 0);
}

/// The status page, its feed and the API show the open outage with its updates, and after
/// the restoration the page lists it in the last 90 days; a draft is never public.
#[test]
fn the_status_page_feed_and_api_show_the_outage_over_http() {
    let mut e = env();
    declare_eu_outage(&e);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A probe's draft on the US platform waits for an operator: not on the page.
    rt.block_on(announce::declare_outage(
        &e.app,
        OutageDeclaration {
            platform: "us".into(),
            services: vec!["SMTP".into()],
            impact: "Probe: SMTP slow <b>not confirmed</b>".into(),
            restoration_eta: None,
            update_interval: None,
            draft: true,
            source: "probe:smtp-us".into(),
        },
    ))
    .unwrap();
    e.clock.set(at("2026-12-03T10:30:00Z"));
    let web = crate::support::web_server::serve(&e.app);

    let page = web.get("/status");
    assert_eq!(page.status, 200, "{}", page.body);
    let eu = page
        .body
        .split("id=\"platform-eu\"")
        .nth(1)
        .expect("an EU section");
    let (eu, us) = eu.split_once("id=\"platform-us\"").expect("a US section");
    assert!(eu.contains("OUT-000001 · Outage: IMAP, Webmail"), "{eu}");
    assert!(eu.contains("Mail cannot be read over IMAP or in the webmail."));
    assert!(
        eu.contains("2026-12-03 13:00 UTC"),
        "the expected restoration: {eu}"
    );
    assert!(eu.contains("declared"), "its first notice is listed: {eu}");
    assert!(us.contains("No known outage."), "{us}");
    assert!(!page.body.contains("OUT-000002") && !page.body.contains("not confirmed"));
    assert!(!page.body.contains("<script"), "no JavaScript");

    // The Atom feed parses as XML and has the outage as an entry.
    let feed = web.get("/status/feed.atom");
    assert_eq!(feed.status, 200);
    assert!(feed.head.contains("application/atom+xml"), "{}", feed.head);
    let doc =
        roxmltree::Document::parse(&feed.body).unwrap_or_else(|e| panic!("{e}\n{}", feed.body));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "feed");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2005/Atom")
    );
    let entries: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("entry"))
        .collect();
    assert_eq!(entries.len(), 1, "the draft is not in the feed");
    let child = |n: roxmltree::Node, name: &str| {
        n.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        child(entries[0], "id"),
        "urn:ticketgate:announcement:OUT-000001"
    );
    assert!(child(entries[0], "title").contains("IMAP, Webmail · open"));
    assert_eq!(child(entries[0], "updated"), "2026-12-03T10:00:00Z");
    assert!(child(entries[0], "content").contains("Mail cannot be read"));

    // The API: a token with read scope; drafts are there for operators.
    let token = rt
        .block_on(ticketgate::services::web::create_token(
            &e.app,
            "status-test",
            ticketgate::store::Scope::Read,
        ))
        .unwrap();
    let auth = format!("Bearer {token}");
    let unauth = web.get("/api/v1/announcements");
    assert_eq!(unauth.status, 401);
    let r = web.request(
        "GET",
        "/api/v1/announcements?platform=eu&kind=outage",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(j["items"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["items"][0]["reference"], "OUT-000001");
    assert_eq!(j["items"][0]["state"], "open");
    assert_eq!(j["items"][0]["updates"][0]["kind"], "declared");
    let bad = web.request(
        "GET",
        "/api/v1/announcements?kind=outrage",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("outage, maintenance"), "{}", bad.body);
    let doc = web.get("/api/v1/openapi.json");
    assert!(doc.body.contains("/api/v1/announcements"));

    // Restored at 12:30: off the open list, in the last 90 days.
    e.clock.set(at("2026-12-03T12:30:00Z"));
    rt.block_on(announce::restore_outage(&e.app, "OUT-000001", None))
        .unwrap();
    let page = web.get("/status");
    let eu = page.body.split("id=\"platform-eu\"").nth(1).unwrap();
    assert!(eu.contains("No known outage."), "{eu}");
    assert!(
        eu.contains("Last 90 days") && eu.contains("OUT-000001"),
        "{eu}"
    );
    assert!(eu.contains("restored"), "{eu}");
    drop(web);
    let _ = &mut e;
}
