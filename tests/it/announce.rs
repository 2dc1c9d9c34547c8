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
