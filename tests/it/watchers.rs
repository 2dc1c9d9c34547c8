//! Cc'd colleagues follow the ticket (issue 13, item 2) and Outlook keeps a ticket in one
//! conversation even when a provider rewrites Message-IDs (item 5). Each rule on a real
//! store (SQLite, or PostgreSQL with `TICKETGATE_TEST_DATABASE_URL`).

use crate::common;

use chrono::Duration;
use common::{Env, env_registry, mail};
use mail_parser::MessageParser;
use ticketgate::pipeline::Outcome;
use ticketgate::services::tickets::{self, AgentAction};

const REGISTRY: &str = r#"
agents = ["mike@support.example.test"]

[plans.exo]
profile = "exo"
reminders = { interval = "1d", count = 2 }

[[customers]]
id = "acme"
plan = "exo"
allowed_senders = ["@acme.example", "partner@consulting.example"]
keys = [{ key = "ACME-0000-0000-0001" }]

[[customers]]
id = "globex"
plan = "exo"
keys = [{ key = "GLBX-0000-0000-0002" }]
"#;

fn env() -> Env {
    env_registry(REGISTRY, "")
}

fn agent(e: &mut Env, body: &str) -> Outcome {
    e.ingest(
        &mail(
            "Mike Chen <mike@support.example.test>",
            "Re: [TKT-000001] Export fails",
            body,
        )
        .build(),
    )
}

fn watchers(e: &mut Env) -> Vec<String> {
    e.app
        .store()
        .unwrap()
        .ticket_watchers(1)
        .unwrap()
        .into_iter()
        .map(|w| w.address)
        .collect()
}

fn recipients(e: &mut Env, kind: &str) -> Vec<String> {
    let mut r: Vec<String> = e.sent(kind).into_iter().map(|o| o.recipient).collect();
    r.sort();
    r
}

/// Jane's request to ACME's support, with colleagues and others in Cc.
fn acme_request(e: &mut Env, cc: &str) {
    let out = e.ingest(
        &mail(
            "Jane Doe <jane@acme.example>",
            "Export fails",
            "ACME-0000-0000-0001\nError 500.",
        )
        .header(&format!("Cc: {cc}"))
        .build(),
    );
    assert!(matches!(out, Outcome::Created { .. }), "{out:?}");
}

#[test]
fn colleagues_in_cc_become_watchers_and_public_updates_go_to_them_in_cc() {
    let mut e = env();
    acme_request(
        &mut e,
        "Bob <BOB@acme.example>, \"Carol\" <carol@acme.example>, partner@consulting.example, \
         stranger@gmail.example, support@support.example.test, mike@support.example.test, \
         jane@acme.example",
    );
    // The customer's people only: its domain and its allowed sender; never ours, never an
    // agent, never the requester; an outsider is not added.
    assert_eq!(
        watchers(&mut e),
        [
            "bob@acme.example",
            "carol@acme.example",
            "partner@consulting.example"
        ]
    );
    // The acknowledgement is a receipt: the requester alone.
    assert_eq!(recipients(&mut e, "acknowledgement"), ["jane@acme.example"]);

    agent(&mut e, "Hello Jane,\nplease send the logs.");
    let replies = e.sent("agent_reply");
    assert_eq!(
        recipients(&mut e, "agent_reply"),
        [
            "bob@acme.example",
            "carol@acme.example",
            "jane@acme.example",
            "partner@consulting.example"
        ],
        "one outbox row per recipient"
    );
    // The same message to each: To the requester, the watchers in Cc.
    assert!(
        replies
            .iter()
            .all(|r| r.message_id == replies[0].message_id)
    );
    let raw = e.body(&replies[0]);
    let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let to: Vec<_> = m
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address.as_deref())
        .collect();
    let cc: Vec<_> = m
        .cc()
        .unwrap()
        .iter()
        .filter_map(|a| a.address.as_deref())
        .collect();
    assert_eq!(to, ["jane@acme.example"]);
    assert_eq!(
        cc,
        [
            "bob@acme.example",
            "carol@acme.example",
            "partner@consulting.example"
        ]
    );

    // `tickets show --json` lists them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let show = rt.block_on(tickets::show(&e.app, "TKT-000001")).unwrap();
    let json = serde_json::to_value(&show).unwrap();
    let listed: Vec<_> = json["watchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, watchers(&mut e));
    assert_eq!(json["watchers"][0]["added_by"], "cc");
}

#[test]
fn a_follow_up_adds_its_cc_and_a_watchers_reply_counts_like_the_requesters() {
    let mut e = env();
    // Globex lists no allowed senders: the requester's domain is the customer's.
    e.ingest(
        &mail(
            "jane@globex.example",
            "Export fails",
            "GLBX-0000-0000-0002\nError 500.",
        )
        .build(),
    );
    // Without being a watcher, a colleague's reply is refused (no allowed senders).
    let out = e.ingest(
        &mail(
            "bob@globex.example",
            "Re: [TKT-000001] Export fails",
            "Same here.",
        )
        .build(),
    );
    assert!(
        matches!(out, Outcome::Quarantined { ref code, .. } if code == "not_allowed_on_ticket"),
        "{out:?}"
    );
    // Jane's follow-up Cc's Bob (and someone elsewhere): Bob becomes a watcher.
    e.ingest(
        &mail(
            "jane@globex.example",
            "Re: [TKT-000001] Export fails",
            "Adding Bob.",
        )
        .header("Cc: bob@globex.example, eve@elsewhere.example")
        .build(),
    );
    assert_eq!(watchers(&mut e), ["bob@globex.example"]);
    agent(&mut e, "#status suspended\nPlease send the logs.");
    assert_eq!(e.ticket(1).status, "waiting_on_customer");
    // Bob answers: it counts like Jane's answer, the ticket goes back to support.
    let out = e.ingest(
        &mail(
            "bob@globex.example",
            "Re: [TKT-000001] Export fails",
            "Logs attached.",
        )
        .build(),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "in_progress");
    // A colleague who is not a watcher is still refused.
    let out = e.ingest(
        &mail(
            "dave@globex.example",
            "Re: [TKT-000001] Export fails",
            "Me too.",
        )
        .build(),
    );
    assert!(matches!(out, Outcome::Quarantined { .. }), "{out:?}");
}

#[test]
fn agents_add_and_remove_watchers_by_mail_and_from_the_command_line() {
    let mut e = env();
    acme_request(&mut e, "bob@acme.example");
    // An agent may add anyone but our own addresses and agents.
    let out = agent(&mut e, "#cc add Partner <ops@partner.example>");
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(
        watchers(&mut e),
        ["bob@acme.example", "ops@partner.example"]
    );
    for bad in [
        "#cc add support@support.example.test",
        "#cc add mike@support.example.test",
        "#cc remove nobody@acme.example",
        "#cc add not-an-address",
    ] {
        let out = agent(&mut e, &format!("{bad}\nText."));
        assert!(
            matches!(out, Outcome::Quarantined { ref code, .. } if code == "agent_command_error"),
            "{bad}: {out:?}"
        );
    }
    assert_eq!(e.sent("command_error").len(), 4);
    assert_eq!(
        watchers(&mut e),
        ["bob@acme.example", "ops@partner.example"]
    );
    agent(&mut e, "#cc remove bob@acme.example");
    assert_eq!(watchers(&mut e), ["ops@partner.example"]);

    // The command line: `ticket REF watchers add|remove|list`.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(tickets::act(
        &e.app,
        "TKT-000001",
        "cli",
        &AgentAction::CcAdd("carol@acme.example".into()),
    ))
    .unwrap();
    rt.block_on(tickets::act(
        &e.app,
        "TKT-000001",
        "cli",
        &AgentAction::CcRemove("ops@partner.example".into()),
    ))
    .unwrap();
    let list = rt
        .block_on(tickets::watchers(&e.app, "TKT-000001"))
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].address, "carol@acme.example");
    assert_eq!(list[0].added_by, "cli");
    let err = rt
        .block_on(tickets::act(
            &e.app,
            "TKT-000001",
            "cli",
            &AgentAction::CcAdd("mike@support.example.test".into()),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("agent"), "{err}");
}

#[test]
fn a_watcher_who_sends_unwatch_stops_receiving_the_ticket() {
    let mut e = env();
    acme_request(&mut e, "bob@acme.example, carol@acme.example");
    let out = e.ingest(
        &mail(
            "bob@acme.example",
            "Re: [TKT-000001] Export fails",
            "#unwatch\n\nThanks.",
        )
        .build(),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(watchers(&mut e), ["carol@acme.example"]);
    assert_eq!(
        e.ticket(1).status,
        "new",
        "an #unwatch changes nothing else"
    );
    agent(&mut e, "An answer.");
    assert_eq!(
        recipients(&mut e, "agent_reply"),
        ["carol@acme.example", "jane@acme.example"]
    );
    // Cc'd again by Jane, Bob stays out: he asked to.
    e.ingest(
        &mail(
            "jane@acme.example",
            "Re: [TKT-000001] Export fails",
            "More.",
        )
        .header("Cc: bob@acme.example")
        .build(),
    );
    assert_eq!(watchers(&mut e), ["carol@acme.example"]);
    // The requester cannot unwatch her own ticket: her mail is a follow-up like any other.
    e.ingest(
        &mail(
            "jane@acme.example",
            "Re: [TKT-000001] Export fails",
            "#unwatch",
        )
        .build(),
    );
    assert_eq!(e.ticket(1).requester, "jane@acme.example");
    // An agent can bring Bob back.
    agent(&mut e, "#cc add bob@acme.example");
    assert_eq!(watchers(&mut e), ["bob@acme.example", "carol@acme.example"]);
}

#[test]
fn a_watchers_out_of_office_changes_nothing_and_is_not_answered() {
    let mut e = env();
    // Globex lists no allowed senders: Bob's mail is accepted only as a watcher's.
    e.ingest(
        &mail(
            "jane@globex.example",
            "Export fails",
            "GLBX-0000-0000-0002\nError 500.",
        )
        .header("Cc: bob@globex.example")
        .build(),
    );
    agent(&mut e, "#status suspended\nPlease send the logs.");
    let before = e.outbox().len();
    let out = e.ingest(
        &mail(
            "bob@globex.example",
            "Re: [TKT-000001] Export fails",
            "I am away until Monday.",
        )
        .header("Auto-Submitted: auto-replied")
        .build(),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "waiting_on_customer", "no effect");
    assert_eq!(e.outbox().len(), before, "nothing sent");
    let err = agent(&mut e, "#cc add jane@globex.example");
    assert!(
        matches!(err, Outcome::Quarantined { ref reason, .. } if reason.contains("requester")),
        "{err:?}"
    );
}

#[test]
fn a_ticket_opened_from_a_closed_one_keeps_its_watchers() {
    let mut e = env();
    acme_request(&mut e, "bob@acme.example");
    agent(&mut e, "#close duplicate");
    let out = e.ingest(
        &mail(
            "jane@acme.example",
            "Re: [TKT-000001] Export fails",
            "It is back.",
        )
        .build(),
    );
    assert!(
        matches!(out, Outcome::Created { ref ticket } if ticket == "TKT-000002"),
        "{out:?}"
    );
    let w = e.app.store().unwrap().ticket_watchers(2).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].address, "bob@acme.example");
}

#[test]
fn the_automatic_reply_cap_applies_to_each_recipient() {
    let mut e = env_registry(
        REGISTRY,
        "[loops]\nauto_reply_limit = 1\nauto_reply_window = \"7d\"\n",
    );
    acme_request(&mut e, "bob@acme.example");
    // Jane has had her acknowledgement (automatic); Bob nothing.
    agent(&mut e, "#status suspended\nPlease send the logs.");
    e.clock.advance(Duration::days(1));
    e.tick();
    let reminders = e.sent("reminder");
    let state = |who: &str| {
        reminders
            .iter()
            .find(|r| r.recipient == who)
            .map(|r| r.state)
            .unwrap()
    };
    assert_eq!(state("jane@acme.example"), "suppressed", "over Jane's cap");
    assert_eq!(state("bob@acme.example"), "pending", "Bob's own count");
    // Bob's next reminder reaches his cap in turn.
    e.clock.advance(Duration::days(1));
    e.tick();
    let second: Vec<_> = e
        .sent("reminder")
        .into_iter()
        .filter(|r| r.recipient == "bob@acme.example")
        .collect();
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].state, "suppressed");
}

#[test]
fn ticket_mail_carries_outlooks_conversation_headers() {
    let mut e = env();
    acme_request(&mut e, "bob@acme.example");
    e.clock.advance(Duration::hours(2));
    agent(&mut e, "An answer.");
    let header = |e: &mut Env, kind: &str| {
        let row = e.sent(kind).remove(0);
        let raw = e.body(&row);
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let get = |h: &str| m.header_raw(h).map(|v| v.trim().to_string());
        (get("Thread-Topic"), get("Thread-Index"))
    };
    let (topic, first) = header(&mut e, "acknowledgement");
    assert_eq!(topic.as_deref(), Some("Export fails"));
    let first = ticketgate::notify::outlook::unbase64(&first.unwrap()).unwrap();
    assert_eq!(first.len(), 22, "the conversation's header block");
    let (topic, later) = header(&mut e, "agent_reply");
    assert_eq!(topic.as_deref(), Some("Export fails"));
    let later = ticketgate::notify::outlook::unbase64(&later.unwrap()).unwrap();
    assert_eq!(later.len(), 27, "the header block and one child block");
    assert_eq!(later[..22], first[..], "the same conversation");
    // Another ticket is another conversation.
    e.ingest(
        &mail(
            "jane@acme.example",
            "Import fails",
            "ACME-0000-0000-0001\nAnother one.",
        )
        .build(),
    );
    let acks = e.sent("acknowledgement");
    let raw = e.body(&acks[1]);
    let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let other = ticketgate::notify::outlook::unbase64(m.header_raw("Thread-Index").unwrap().trim())
        .unwrap();
    assert_ne!(other[6..22], first[6..22], "another GUID");
}

#[test]
fn a_reply_to_a_message_id_a_provider_rewrote_lands_on_its_ticket_by_its_tag() {
    let mut e = env_registry(REGISTRY, "[tickets]\nacknowledge_followups = true\n");
    acme_request(&mut e, "bob@acme.example");
    // Jane's Outlook keeps our conversation: our acknowledgement's index and a child block.
    let ack = e.sent("acknowledgement").remove(0);
    let raw = e.body(&ack);
    let ours = MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap()
        .header_raw("Thread-Index")
        .unwrap()
        .trim()
        .to_string();
    let mut hers = ticketgate::notify::outlook::unbase64(&ours).unwrap();
    hers.extend_from_slice(&[0x00, 0x00, 0x12, 0x34, 0x51]);
    let hers = ticketgate::notify::outlook::base64(&hers);
    // Exchange Online sent our acknowledgement on with its own Message-ID; Jane's Outlook
    // answers that one, and keeps our tag in the subject.
    let rewritten =
        "DM6PR11MB4657A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6E7F8@DM6PR11MB4657.namprd11.prod.outlook.com";
    let out = e.ingest(
        &mail(
            "jane@acme.example",
            "RE: [TKT-000001] Export fails",
            "Here are the logs.",
        )
        .header(&format!("In-Reply-To: <{rewritten}>"))
        .header(&format!("References: <{rewritten}>"))
        .header("Thread-Topic: Export fails")
        .header(&format!("Thread-Index: {hers}"))
        .id("reply.rewritten@acme.example")
        .build(),
    );
    assert!(
        matches!(out, Outcome::Appended { ref ticket } if ticket == "TKT-000001"),
        "{out:?}"
    );
    // Our answer to her mail appends one child block to her index.
    let receipt = e.sent("followup_received").remove(0);
    let raw = e.body(&receipt);
    let index = MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap()
        .header_raw("Thread-Index")
        .unwrap()
        .trim()
        .to_string();
    let index = ticketgate::notify::outlook::unbase64(&index).unwrap();
    let hers = ticketgate::notify::outlook::unbase64(&hers).unwrap();
    assert_eq!(index.len(), 32);
    assert_eq!(index[..27], hers[..]);
    let mut s = e.app.store().unwrap();
    assert_eq!(
        s.inbound_threading("reply.rewritten@acme.example")
            .unwrap()
            .as_deref(),
        Some("tag"),
        "recorded as threaded by its tag"
    );
    drop(s);
    // A reply that names our own Message-ID is threaded by its headers.
    let ours = e.sent("acknowledgement")[0].message_id.clone();
    e.ingest(
        &mail("jane@acme.example", "Re: something else", "More.")
            .header(&format!("In-Reply-To: <{ours}>"))
            .id("reply.headers@acme.example")
            .build(),
    );
    assert_eq!(
        e.app
            .store()
            .unwrap()
            .inbound_threading("reply.headers@acme.example")
            .unwrap()
            .as_deref(),
        Some("headers")
    );
}

/// Through a real SMTP server: the agent's answer with its file goes to the requester and to
/// the watcher, each in its own SMTP transaction (envelope) with the same message.
#[tokio::test]
async fn each_recipient_gets_the_same_message_in_its_own_smtp_transaction() {
    use crate::support::smtp_sink::SmtpSink;
    let sink = SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("customers.toml"), REGISTRY).unwrap();
    let (db_url, _db) = common::database_url(dir.path());
    let text = format!(
        "[database]\nurl = \"{db_url}\"\n[inbound]\nmaildir = \"inbox\"\ntrusted_sources = [\"ingest\"]\n\
         [registry]\npath = \"customers.toml\"\n\
         [outbound]\ntransport = \"smtp\"\n\
         [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"10s\"\n",
        sink.port
    );
    let cfg = ticketgate::config::Config::from_toml(
        &text,
        dir.path(),
        ticketgate::config::ConfigSource::File(dir.path().join("t.toml")),
    )
    .unwrap();
    let clock = ticketgate::clock::ManualClock::new(common::start());
    let app = ticketgate::app::App::open(cfg, std::sync::Arc::new(clock)).unwrap();
    let ingest = |raw: String| {
        app.ingest(ticketgate::pipeline::RawMail {
            source: "stdin".into(),
            bytes: raw.into_bytes(),
        })
        .unwrap()
    };
    ingest(
        mail(
            "jane@acme.example",
            "Export fails",
            "ACME-0000-0000-0001\nError 500.",
        )
        .header("Cc: bob@acme.example")
        .build(),
    );
    let out = ingest(
        mail(
            "mike@support.example.test",
            "Re: [TKT-000001] Export fails",
            "Please apply the fix.",
        )
        .build(),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    let r = app.deliver().await.unwrap();
    assert_eq!(
        r.sent, 3,
        "the acknowledgement, and the answer to Jane and to Bob"
    );
    let got = sink.wait_for(3);
    let answers: Vec<&String> = got.iter().filter(|m| m.contains("Please apply")).collect();
    assert_eq!(answers.len(), 2);
    let mut rcpts: Vec<&str> = answers
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("X-Rcpt-Args: "))
                .unwrap()
        })
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["<bob@acme.example>", "<jane@acme.example>"]);
    let id = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Message-ID:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(id(answers[0]), id(answers[1]), "the same message");
    assert!(answers.iter().all(|m| m.contains("Cc: bob@acme.example")));
}

/// The watchers' unwatch link (issue 13: "a reply with `#unwatch`, or a link"): each
/// watcher's copy ends with a link of its own, the requester's has none; a GET of it shows a
/// page and changes nothing; its POST removes that watcher alone, over real HTTP.
#[test]
fn a_watcher_leaves_by_the_link_in_their_copy_and_a_get_changes_nothing() {
    let mut e = common::env_inbound(
        REGISTRY,
        "trusted_sources = [\"ingest\"]\nreply_key = \"0123456789abcdef0123456789abcdef\"\n",
        "[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://support.example.test\"\n",
    );
    acme_request(&mut e, "bob@acme.example, carol@acme.example");
    agent(&mut e, "Hello Jane,\nplease send the logs.");
    let replies = e.sent("agent_reply");
    let link_of = |e: &mut Env, who: &str| -> Option<String> {
        let row = replies.iter().find(|r| r.recipient == who).unwrap();
        let text = e.text(row);
        text.split("http://support.example.test/w/")
            .nth(1)
            .map(|rest| rest.split_whitespace().next().unwrap().to_string())
    };
    assert_eq!(link_of(&mut e, "jane@acme.example"), None, "the requester");
    let bob = link_of(&mut e, "bob@acme.example").expect("Bob's copy has a link");
    let carol = link_of(&mut e, "carol@acme.example").expect("Carol's copy has a link");
    assert_ne!(bob, carol, "a link per watcher");
    // Still one message: the same Message-ID, Bob in Cc of his own copy.
    assert!(
        replies
            .iter()
            .all(|r| r.message_id == replies[0].message_id)
    );
    let bob_row = replies
        .iter()
        .find(|r| r.recipient == "bob@acme.example")
        .unwrap();
    assert!(e.body(bob_row).contains("Cc: "), "the copy keeps its Cc");

    let web = crate::support::web_server::serve(&e.app);
    let page = web.get(&format!("/w/{bob}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("bob@acme.example"), "{}", page.body);
    assert!(page.body.contains("TKT-000001"), "{}", page.body);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    assert!(!page.body.contains("<script"), "no JavaScript");
    assert!(
        page.head
            .to_ascii_lowercase()
            .contains("cache-control: no-store")
    );
    // A GET (a link scanner, twice) changes nothing.
    web.get(&format!("/w/{bob}"));
    assert_eq!(watchers(&mut e), ["bob@acme.example", "carol@acme.example"]);
    // A token altered by one digit, or another ticket's, is nobody's.
    let mut forged = bob.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    for bad in [
        forged.as_str(),
        "1.nothex",
        "2.0123456789abcdef0123456789abcdef",
    ] {
        let r = web.post(&format!("/w/{bad}"), "");
        assert_eq!(r.status, 404, "{bad}: {}", r.body);
    }
    assert_eq!(watchers(&mut e), ["bob@acme.example", "carol@acme.example"]);

    // The button's POST: Bob is no longer a watcher, Carol still is.
    let done = web.post(&format!("/w/{bob}"), "");
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("id=\"done\""), "{}", done.body);
    assert_eq!(watchers(&mut e), ["carol@acme.example"]);
    // The link is spent: its page says so, with a 404.
    assert_eq!(web.get(&format!("/w/{bob}")).status, 404);
    drop(web);

    // The same effect as #unwatch: no more mail, and a later Cc does not bring him back.
    agent(&mut e, "Another answer.");
    let last: Vec<String> = e
        .sent("agent_reply")
        .into_iter()
        .skip(replies.len())
        .map(|o| o.recipient)
        .collect();
    assert!(!last.contains(&"bob@acme.example".to_string()), "{last:?}");
    e.ingest(
        &mail(
            "jane@acme.example",
            "Re: [TKT-000001] Export fails",
            "More.",
        )
        .header("Cc: bob@acme.example")
        .build(),
    );
    assert_eq!(watchers(&mut e), ["carol@acme.example"]);
}
