//! Issue 10: distribution lists, subscribers, announcements (outages). Every test runs on
//! SQLite, or on PostgreSQL when `TICKETGATE_TEST_DATABASE_URL` is set.

use crate::common::*;
use chrono::Duration;
use ticketgate::clock::Clock;
use ticketgate::services::{announce, lists};
use ticketgate::store::{
    AnnouncementKind, AnnouncementQuery, AnnouncementState, NewSubscriber, SubscriberState,
    UpdateKind,
};

/// The OX setup: EU and US platforms, an incident list on each, a release list on EU.
pub const ANNOUNCE_REGISTRY: &str = r#"
[plans.eu]
language = "en"
platform = "eu"

[plans.us]
language = "en"
platform = "us"

[[customers]]
id = "acme"
plan = "eu"
keys = [{ key = "ACME-0000-0000-0001" }]

[[customers]]
id = "globex"
plan = "us"
keys = [{ key = "GLBX-0000-0000-0002" }]

[[customers]]
id = "initech"
plan = "us"
platform = "eu"
keys = [{ key = "INIT-0000-0000-0003" }]

[lists.eu-incidents]
type = "incident"
platform = "eu"
address = "eu-incidents@lists.example.test"

[lists.us-incidents]
type = "incident"
platform = "us"
address = "us-incidents@lists.example.test"

[lists.eu-releases]
type = "release"
platform = "eu"
address = "eu-releases@lists.example.test"
language = "fr"
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn subscribers_are_kept_per_list_with_their_state_and_pending_ones_expire() {
    let e = env_registry(ANNOUNCE_REGISTRY, "");
    let now = e.clock.now();
    let mut store = e.app.store().unwrap();
    let mut tx = store.write().unwrap();
    let a = tx.announce();
    let pending = a
        .upsert_subscriber(&NewSubscriber {
            list: "eu-incidents",
            address: "Ops@Acme.Example",
            customer: "acme",
            state: SubscriberState::Pending,
            shared: false,
            added_by: "mail",
            now,
            expires_at: Some(now + Duration::days(3)),
        })
        .unwrap();
    assert_eq!(pending.address, "ops@acme.example");
    assert_eq!(pending.state, SubscriberState::Pending);
    assert_eq!(pending.expires_at, Some(now + Duration::days(3)));
    let shared = a
        .upsert_subscriber(&NewSubscriber {
            list: "eu-incidents",
            address: "all-it@acme.example",
            customer: "acme",
            state: SubscriberState::Confirmed,
            shared: true,
            added_by: "operator",
            now,
            expires_at: None,
        })
        .unwrap();
    assert!(shared.shared);
    assert_eq!(shared.confirmed_at, Some(now));
    // A pending request for a confirmed address leaves it confirmed.
    let again = a
        .upsert_subscriber(&NewSubscriber {
            list: "eu-incidents",
            address: "ALL-IT@acme.example",
            customer: "acme",
            state: SubscriberState::Pending,
            shared: true,
            added_by: "mail",
            now,
            expires_at: Some(now + Duration::days(3)),
        })
        .unwrap();
    assert_eq!(again.id, shared.id);
    assert_eq!(again.state, SubscriberState::Confirmed);
    assert_eq!(again.expires_at, None);
    // Only confirmed subscribers of the lists asked for.
    let confirmed = a
        .confirmed_subscribers(&["eu-incidents".into(), "us-incidents".into()])
        .unwrap();
    assert_eq!(
        confirmed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![shared.id]
    );
    // Nothing expires before its time; then the pending one does, the confirmed one stays.
    assert_eq!(a.expire_pending(now + Duration::hours(71)).unwrap(), 0);
    assert_eq!(a.expire_pending(now + Duration::days(3)).unwrap(), 1);
    assert!(a.subscriber(pending.id).unwrap().is_none());
    assert!(a.subscriber(shared.id).unwrap().is_some());
    // Confirming by id works once, on a pending row only.
    let p2 = a
        .upsert_subscriber(&NewSubscriber {
            list: "eu-incidents",
            address: "noc@acme.example",
            customer: "acme",
            state: SubscriberState::Pending,
            shared: false,
            added_by: "mail",
            now,
            expires_at: Some(now + Duration::days(3)),
        })
        .unwrap();
    assert!(a.confirm_subscriber(p2.id, now).unwrap());
    assert!(!a.confirm_subscriber(p2.id, now).unwrap());
    assert_eq!(
        a.subscriber_by_address("eu-incidents", "NOC@acme.example")
            .unwrap()
            .unwrap()
            .state,
        SubscriberState::Confirmed
    );
    assert!(a.remove_subscriber(p2.id).unwrap());
    assert!(!a.remove_subscriber(p2.id).unwrap());
    tx.commit().unwrap();
    // Read outside the transaction, through the store.
    let subs = store.announce().subscribers("eu-incidents").unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(
        store
            .announce()
            .subscriptions_of("all-it@acme.example")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn operator_subscribes_only_customers_of_the_lists_platform() {
    let e = env_registry(ANNOUNCE_REGISTRY, "");
    let rt = rt();
    let s = rt
        .block_on(lists::subscribe(
            &e.app,
            "eu-incidents",
            "Ops@acme.example",
            "acme",
            false,
        ))
        .unwrap();
    assert_eq!(s.state, SubscriberState::Confirmed);
    // initech's own platform (eu) overrides its plan's (us).
    rt.block_on(lists::subscribe(
        &e.app,
        "eu-incidents",
        "it@initech.example",
        "initech",
        false,
    ))
    .unwrap();
    let err = rt
        .block_on(lists::subscribe(
            &e.app,
            "eu-incidents",
            "noc@globex.example",
            "globex",
            false,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("platform `us`"), "{err}");
    assert!(
        rt.block_on(lists::subscribe(
            &e.app,
            "nope",
            "a@b.example",
            "acme",
            false
        ))
        .is_err()
    );
    let all = rt.block_on(lists::lists(&e.app)).unwrap();
    let eu = all.iter().find(|l| l.name == "eu-incidents").unwrap();
    assert_eq!((eu.confirmed, eu.pending), (2, 0));
    rt.block_on(lists::unsubscribe(
        &e.app,
        "eu-incidents",
        "OPS@acme.example",
    ))
    .unwrap();
    assert_eq!(
        rt.block_on(lists::subscribers(&e.app, "eu-incidents"))
            .unwrap()
            .len(),
        1
    );
    assert!(
        rt.block_on(lists::unsubscribe(
            &e.app,
            "eu-incidents",
            "ops@acme.example"
        ))
        .is_err()
    );
}

#[test]
fn an_outage_is_declared_updated_fired_and_restored_in_the_store() {
    let e = env_registry(ANNOUNCE_REGISTRY, "");
    let rt = rt();
    let t0 = e.clock.now();
    let d = rt
        .block_on(announce::declare_outage(
            &e.app,
            announce::OutageDeclaration {
                platform: "EU".into(),
                services: vec!["IMAP,Webmail".into()],
                impact: "Mail cannot be read".into(),
                restoration_eta: None,
                update_interval: None,
                draft: false,
                source: "operator".into(),
            },
        ))
        .unwrap();
    assert_eq!(d.reference, "OUT-000001");
    assert_eq!(d.state, AnnouncementState::Open);
    let v = rt
        .block_on(announce::announcement(&e.app, "OUT-000001"))
        .unwrap();
    assert_eq!(v.announcement.lists, vec!["eu-incidents".to_string()]);
    assert_eq!(v.announcement.services, vec!["IMAP", "Webmail"]);
    assert_eq!(v.announcement.next_due_at, Some(t0 + Duration::hours(1)));
    assert_eq!(v.updates.len(), 1);
    assert_eq!(v.updates[0].kind, UpdateKind::Declared);
    let open = rt.block_on(announce::open_outages(&e.app, "eu")).unwrap();
    assert_eq!(open.len(), 1);
    assert!(
        rt.block_on(announce::open_outages(&e.app, "us"))
            .unwrap()
            .is_empty()
    );
    // The operator's text waits for the next update.
    rt.block_on(announce::update_outage(
        &e.app,
        "OUT-000001",
        "IMAP is back, Webmail still down",
        None,
    ))
    .unwrap();
    // The timer is due an hour later, and only then.
    {
        let mut s = e.app.store().unwrap();
        assert!(
            s.announce()
                .due_announcements(t0 + Duration::minutes(59), 10)
                .unwrap()
                .is_empty()
        );
        let due = s
            .announce()
            .due_announcements(t0 + Duration::hours(1), 10)
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            s.announce().next_announcement_due().unwrap(),
            Some(t0 + Duration::hours(1))
        );
    }
    let r = rt
        .block_on(announce::restore_outage(
            &e.app,
            "OUT-000001",
            Some("All fixed"),
        ))
        .unwrap();
    assert_eq!(r.state, AnnouncementState::Restored);
    let v = rt
        .block_on(announce::announcement(&e.app, "OUT-000001"))
        .unwrap();
    assert_eq!(v.announcement.next_due_at, None);
    assert_eq!(v.updates.last().unwrap().kind, UpdateKind::Restored);
    // Restoring twice is a conflict; a maintenance reference is not an outage's.
    let err = rt
        .block_on(announce::restore_outage(&e.app, "OUT-000001", None))
        .unwrap_err();
    assert_eq!(err.kind(), ticketgate::services::ErrorKind::Conflict);
    assert!(
        rt.block_on(announce::restore_outage(&e.app, "MNT-000001", None))
            .is_err()
    );
    // The status page's query.
    let all = rt
        .block_on(announce::announcements(
            &e.app,
            AnnouncementQuery {
                platform: Some("eu".into()),
                kinds: vec![AnnouncementKind::Outage],
                states: vec![AnnouncementState::Restored],
                since: Some(t0),
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(all.len(), 1);
    // Several kinds and several states at once (the status page's "open or restored"): every
    // parameter of the IN lists is bound in order.
    let several = rt
        .block_on(announce::announcements(
            &e.app,
            AnnouncementQuery {
                platform: Some("eu".into()),
                kinds: vec![AnnouncementKind::Outage, AnnouncementKind::Maintenance],
                states: vec![
                    AnnouncementState::Open,
                    AnnouncementState::Draft,
                    AnnouncementState::Restored,
                ],
                since: Some(t0),
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(several.len(), 1);
    assert!(
        rt.block_on(announce::announcements(
            &e.app,
            AnnouncementQuery {
                platform: Some("us".into()),
                ..Default::default()
            },
        ))
        .unwrap()
        .is_empty()
    );
}

#[test]
fn a_drafted_outage_sends_nothing_until_an_operator_confirms_it() {
    let e = env_registry(ANNOUNCE_REGISTRY, "");
    let rt = rt();
    let d = rt
        .block_on(announce::declare_outage(
            &e.app,
            announce::OutageDeclaration {
                platform: "eu".into(),
                services: vec!["IMAP".into()],
                impact: "Slow logins".into(),
                restoration_eta: None,
                update_interval: Some(Duration::minutes(30)),
                draft: true,
                source: "probe:imap-eu".into(),
            },
        ))
        .unwrap();
    assert_eq!(d.state, AnnouncementState::Draft);
    let v = rt
        .block_on(announce::announcement(&e.app, &d.reference))
        .unwrap();
    assert!(v.updates.is_empty());
    assert_eq!(v.announcement.next_due_at, None);
    assert!(
        rt.block_on(announce::open_outages(&e.app, "eu"))
            .unwrap()
            .is_empty()
    );
    let c = rt
        .block_on(announce::confirm_draft(&e.app, &d.reference))
        .unwrap();
    assert_eq!(c.state, AnnouncementState::Open);
    let v = rt
        .block_on(announce::announcement(&e.app, &d.reference))
        .unwrap();
    assert_eq!(v.updates.len(), 1);
    assert_eq!(v.announcement.update_interval_secs, Some(1800));
    assert!(
        rt.block_on(announce::confirm_draft(&e.app, &d.reference))
            .is_err()
    );
}

#[test]
fn declaring_on_an_unknown_platform_is_refused_with_every_reason() {
    let e = env_registry(ANNOUNCE_REGISTRY, "");
    let err = rt()
        .block_on(announce::declare_outage(
            &e.app,
            announce::OutageDeclaration {
                platform: "mars".into(),
                services: vec![],
                impact: " ".into(),
                restoration_eta: None,
                update_interval: None,
                draft: false,
                source: "operator".into(),
            },
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("platform `mars`"), "{text}");
    assert!(text.contains("--services"), "{text}");
    assert!(text.contains("--impact"), "{text}");
}

const ANNOUNCE_CONFIG: &str = "[http]\npublic_url = \"https://support.example.test\"\n\
     [announcements]\nkey = \"announce-key-0123456789abcdef\"\n";

/// `Name: value` of the first such header of raw mail, unfolded.
fn header(raw: &str, name: &str) -> Option<String> {
    let unfolded = raw.replace("\r\n ", " ").replace("\r\n\t", " ");
    let head = unfolded.split("\r\n\r\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn at(hm: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&format!("2026-12-03T{hm}:00Z"))
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// The OX story (SPEC §8) with moved time: declared 10:00, updates at 11:00 (operator's
/// text) and 12:00 (none), restored 12:30; only the EU incident list's confirmed
/// subscribers get mail, one copy each, threaded on their first notice.
#[test]
fn the_ox_outage_story_reaches_only_confirmed_eu_subscribers_threaded_hour_by_hour() {
    let mut e = env_registry(ANNOUNCE_REGISTRY, ANNOUNCE_CONFIG);
    let rt = rt();
    e.clock.set(at("09:00"));
    for (list, address, customer, shared) in [
        ("eu-incidents", "ops@acme.example", "acme", false),
        ("eu-incidents", "all-it@acme.example", "acme", true),
        ("us-incidents", "noc@globex.example", "globex", false),
    ] {
        rt.block_on(lists::subscribe(&e.app, list, address, customer, shared))
            .unwrap();
    }
    // A pending request (not confirmed) and a suppressed address get nothing.
    {
        let now = e.clock.now();
        let mut s = e.app.store().unwrap();
        let mut tx = s.write().unwrap();
        tx.announce()
            .upsert_subscriber(&NewSubscriber {
                list: "eu-incidents",
                address: "pending@acme.example",
                customer: "acme",
                state: SubscriberState::Pending,
                shared: false,
                added_by: "mail",
                now,
                expires_at: Some(now + Duration::days(3)),
            })
            .unwrap();
        tx.announce()
            .upsert_subscriber(&NewSubscriber {
                list: "eu-incidents",
                address: "bounced@acme.example",
                customer: "acme",
                state: SubscriberState::Confirmed,
                shared: false,
                added_by: "operator",
                now,
                expires_at: None,
            })
            .unwrap();
        tx.insert_suppression(&ticketgate::store::Suppression {
            address: "bounced@acme.example".into(),
            kind: ticketgate::bounce::Verdict::Hard,
            reason: "5.1.1 user unknown".into(),
            status: Some("5.1.1".into()),
            outbox_id: None,
            ticket_id: None,
            created_at: now,
        })
        .unwrap();
        tx.commit().unwrap();
    }

    // 10:00: declared.
    e.clock.set(at("10:00"));
    let d = rt
        .block_on(announce::declare_outage(
            &e.app,
            announce::OutageDeclaration {
                platform: "eu".into(),
                services: vec!["IMAP".into(), "Webmail".into()],
                impact: "Mail cannot be read or sent".into(),
                restoration_eta: Some(at("13:00")),
                update_interval: None,
                draft: false,
                source: "operator".into(),
            },
        ))
        .unwrap();
    assert_eq!(d.reference, "OUT-000001");
    assert_eq!(d.recipients, 2);
    let first = e.sent("outage_declared");
    let mut to: Vec<&str> = first.iter().map(|o| o.recipient.as_str()).collect();
    to.sort();
    assert_eq!(to, vec!["all-it@acme.example", "ops@acme.example"]);
    let ops_first = first
        .iter()
        .find(|o| o.recipient == "ops@acme.example")
        .unwrap()
        .clone();
    let raw = e.body(&ops_first);
    let ops = rt
        .block_on(lists::subscribers(&e.app, "eu-incidents"))
        .unwrap()
        .into_iter()
        .find(|s| s.address == "ops@acme.example")
        .unwrap();
    assert!(
        header(&raw, "From")
            .unwrap()
            .ends_with("<eu-incidents@lists.example.test>")
    );
    assert_eq!(
        header(&raw, "List-Id").unwrap(),
        "<eu-incidents.lists.example.test>"
    );
    let key = ticketgate::announce::token::UnsubscribeKey::new(b"announce-key-0123456789abcdef");
    let token = ticketgate::announce::token::sign(&key, ops.id);
    assert_eq!(
        header(&raw, "List-Unsubscribe").unwrap(),
        format!(
            "<https://support.example.test/u/{token}>, \
             <mailto:eu-incidents@lists.example.test?subject=unsubscribe%20eu-incidents>"
        )
    );
    assert_eq!(
        header(&raw, "List-Unsubscribe-Post").unwrap(),
        "List-Unsubscribe=One-Click"
    );
    assert_eq!(header(&raw, "Auto-Submitted").unwrap(), "auto-generated");
    assert_eq!(header(&raw, "Precedence").unwrap(), "bulk");
    assert_eq!(header(&raw, "To").unwrap(), "ops@acme.example");
    assert!(header(&raw, "Cc").is_none() && header(&raw, "Bcc").is_none());
    assert!(header(&raw, "In-Reply-To").is_none());
    let text = e.text(&ops_first);
    assert!(text.contains("Mail cannot be read or sent"), "{text}");
    assert!(text.contains("13:00"), "{text}");
    let first_id = format!("<{}>", ops_first.message_id);

    // 10:40: the operator's text, sent with the 11:00 update; nothing before.
    e.clock.set(at("10:40"));
    rt.block_on(announce::update_outage(
        &e.app,
        "OUT-000001",
        "The storage cluster is being restarted.",
        None,
    ))
    .unwrap();
    e.clock.set(at("10:59"));
    e.tick();
    assert!(e.sent("outage_update").is_empty());
    e.clock.set(at("11:00"));
    let fired = e.tick();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let upd = e.sent("outage_update");
    assert_eq!(upd.len(), 2);
    let ops_upd = upd
        .iter()
        .find(|o| o.recipient == "ops@acme.example")
        .unwrap()
        .clone();
    let raw = e.body(&ops_upd);
    assert_eq!(header(&raw, "In-Reply-To").unwrap(), first_id);
    assert_eq!(header(&raw, "References").unwrap(), first_id);
    let text = e.text(&ops_upd);
    assert!(
        text.contains("The storage cluster is being restarted."),
        "{text}"
    );
    // The same instant again fires nothing (once per due time).
    assert!(e.tick().is_empty());

    // 12:00: no new text: "still ongoing", for how long, the last estimate.
    e.clock.set(at("12:00"));
    e.tick();
    let upd = e.sent("outage_update");
    assert_eq!(upd.len(), 4);
    let ops_second = upd
        .iter()
        .rfind(|o| o.recipient == "ops@acme.example")
        .unwrap()
        .clone();
    let text = e.text(&ops_second);
    assert!(text.contains("still ongoing"), "{text}");
    assert!(text.contains("2 hours"), "{text}");
    assert!(text.contains("13:00"), "{text}");
    assert!(!text.contains("storage cluster"), "{text}");
    assert_eq!(
        header(&e.body(&ops_second), "In-Reply-To").unwrap(),
        first_id
    );

    // 12:30: restored, with its duration; no timer left.
    e.clock.set(at("12:30"));
    let r = rt
        .block_on(announce::restore_outage(
            &e.app,
            "OUT-000001",
            Some("Root cause: a failed disk."),
        ))
        .unwrap();
    assert_eq!(r.recipients, 2);
    let done = e.sent("outage_restored");
    let ops_done = done
        .iter()
        .find(|o| o.recipient == "ops@acme.example")
        .unwrap()
        .clone();
    let text = e.text(&ops_done);
    assert!(text.contains("2 hours 30 minutes"), "{text}");
    assert!(text.contains("Root cause: a failed disk."), "{text}");
    assert_eq!(header(&e.body(&ops_done), "In-Reply-To").unwrap(), first_id);
    e.clock.set(at("14:00"));
    assert!(e.tick().is_empty());
    // Nobody else ever got any of it.
    for o in e.outbox() {
        assert!(
            o.recipient == "ops@acme.example" || o.recipient == "all-it@acme.example",
            "{} got {}",
            o.recipient,
            o.kind
        );
    }
    let v = rt
        .block_on(announce::announcement(&e.app, "OUT-000001"))
        .unwrap();
    let kinds: Vec<(UpdateKind, i64)> = v.updates.iter().map(|u| (u.kind, u.recipients)).collect();
    assert_eq!(
        kinds,
        vec![
            (UpdateKind::Declared, 2),
            (UpdateKind::Update, 2),
            (UpdateKind::Ongoing, 2),
            (UpdateKind::Restored, 2)
        ]
    );
}

#[test]
fn a_release_goes_to_the_platforms_release_list_in_its_language() {
    let mut e = env_registry(ANNOUNCE_REGISTRY, ANNOUNCE_CONFIG);
    let rt = rt();
    rt.block_on(lists::subscribe(
        &e.app,
        "eu-releases",
        "dev@acme.example",
        "acme",
        false,
    ))
    .unwrap();
    rt.block_on(lists::subscribe(
        &e.app,
        "eu-incidents",
        "ops@acme.example",
        "acme",
        false,
    ))
    .unwrap();
    let r = rt
        .block_on(announce::announce_release(
            &e.app,
            "eu",
            "8.2.0",
            "Recherche plus rapide.\n",
        ))
        .unwrap();
    assert_eq!(r.reference, "REL-000001");
    assert_eq!(r.recipients, 1);
    let rows = e.sent("release_announcement");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].recipient, "dev@acme.example");
    let text = e.text(&rows[0]);
    // eu-releases is a French list.
    assert!(text.contains("La version 8.2.0 est disponible"), "{text}");
    assert!(text.contains("Recherche plus rapide."), "{text}");
    assert_eq!(
        header(&e.body(&rows[0]), "List-Id").unwrap(),
        "<eu-releases.lists.example.test>"
    );
    // US has no release list and no informational one: refused, naming the platform.
    let err = rt
        .block_on(announce::announce_release(&e.app, "us", "8.2.0", "x"))
        .unwrap_err();
    assert!(err.to_string().contains("platform `us`"), "{err}");
    // An informational announcement to one list.
    let i = rt
        .block_on(announce::announce_information(
            &e.app,
            "eu-incidents",
            "New status page",
            "See https://status.example.test\n",
        ))
        .unwrap();
    assert_eq!((i.reference.as_str(), i.recipients), ("INF-000002", 1));
    assert_eq!(
        e.sent("information_announcement")[0].recipient,
        "ops@acme.example"
    );
}

/// The enqueue transaction of one outage notice to 10,000 confirmed subscribers (run by
/// hand: `cargo test --release --test it announce::fanout_ -- --ignored --nocapture`).
#[test]
#[ignore]
fn fanout_to_ten_thousand_subscribers_in_one_transaction() {
    const N: usize = 10_000;
    let mut e = env_registry(ANNOUNCE_REGISTRY, ANNOUNCE_CONFIG);
    let now = e.clock.now();
    {
        let mut s = e.app.store().unwrap();
        let mut tx = s.write().unwrap();
        for i in 0..N {
            tx.announce()
                .upsert_subscriber(&NewSubscriber {
                    list: "eu-incidents",
                    address: &format!("sub{i:05}@acme.example"),
                    customer: "acme",
                    state: SubscriberState::Confirmed,
                    shared: false,
                    added_by: "operator",
                    now,
                    expires_at: None,
                })
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let started = std::time::Instant::now();
    let d = rt()
        .block_on(announce::declare_outage(
            &e.app,
            announce::OutageDeclaration {
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
    let took = started.elapsed();
    assert_eq!(d.recipients, N);
    assert_eq!(e.sent("outage_declared").len(), N);
    println!(
        "fan-out of one notice to {N} subscribers ({}): {:.2} s, {:.0} mails/s",
        if on_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );
}

/// Two instances on one database tick at the same instant: each outage update is sent once.
#[test]
fn two_instances_ticking_at_once_send_each_outage_update_once() {
    let mut e = env_registry(ANNOUNCE_REGISTRY, ANNOUNCE_CONFIG);
    let rt = rt();
    e.clock.set(at("10:00"));
    rt.block_on(lists::subscribe(
        &e.app,
        "eu-incidents",
        "ops@acme.example",
        "acme",
        false,
    ))
    .unwrap();
    rt.block_on(announce::declare_outage(
        &e.app,
        announce::OutageDeclaration {
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
    let when = at("11:00");
    let fired = e.tick_from_two_instances(when);
    assert_eq!(fired.iter().sum::<usize>(), 1, "{fired:?}");
    assert_eq!(e.sent("outage_update").len(), 1);
    let v = rt
        .block_on(announce::announcement(&e.app, "OUT-000001"))
        .unwrap();
    assert_eq!(v.announcement.next_due_at, Some(at("12:00")));
}
