//! The pipeline end to end on a real SQLite database: routing rules, loop rules, idempotency,
//! quarantine, outbound mail. Each test names the behaviour it checks.

use crate::common;

use common::{env, env_with, mail};
use ticketgate::pipeline::{Outcome, RawMail};

fn created(o: &Outcome) -> String {
    match o {
        Outcome::Created { ticket } => ticket.clone(),
        other => panic!("expected a new ticket, got {other:?}"),
    }
}

fn quarantined(o: &Outcome) -> String {
    match o {
        Outcome::Quarantined { code, .. } => code.clone(),
        other => panic!("expected quarantine, got {other:?}"),
    }
}

#[test]
fn new_request_with_a_valid_key_opens_a_ticket_and_acknowledges_it() {
    let mut e = env();
    let m = mail(
        "Jane Doe <jane@acme.example>",
        "Sev2: export fails",
        "Support-Key: ACME-0000-0000-0001\nIt fails.",
    )
    .id("req1@acme.example");
    let t = created(&e.ingest(&m.build()));
    assert_eq!(t, "TKT-000001");

    let tickets = e.app.store().unwrap().tickets(10).unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].status, "new");
    assert_eq!(tickets[0].severity, 2);
    assert_eq!(tickets[0].customer, "acme");
    assert_eq!(tickets[0].requester, "jane@acme.example");

    let out = e.outbox();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, "acknowledgement");
    assert_eq!(out[0].recipient, "jane@acme.example");
    assert_eq!(out[0].state, "pending");
    assert_eq!(out[0].ticket_id, Some(1));
    assert!(
        out[0].subject.starts_with("[TKT-000001]"),
        "{}",
        out[0].subject
    );
    let body = e.body(&out[0]);
    assert!(body.contains("TKT-000001"));
    assert!(body.contains("In-Reply-To: <req1@acme.example>"), "{body}");
    assert!(body.contains("Auto-Submitted: auto-replied"));
    assert!(!body.contains("call us"), "standard plan has no phone line");
}

#[test]
fn severity_defaults_to_the_plan_when_not_stated() {
    let mut e = env();
    created(
        &e.ingest(
            &mail(
                "a@acme.example",
                "Question",
                "Support-Key: ACME-0000-0000-0001\nhow do I?",
            )
            .build(),
        ),
    );
    assert_eq!(e.app.store().unwrap().tickets(1).unwrap()[0].severity, 3);
}

#[test]
fn phone_number_is_offered_for_severity_1_and_2_only_on_a_plan_with_a_phone_line() {
    let mut e = env();
    created(&e.ingest(&mail("bob@globex.example", "[P1] all down", "GLBX-0000-0000-0002").build()));
    created(
        &e.ingest(
            &mail(
                "bob@globex.example",
                "[P3] small thing",
                "GLBX-0000-0000-0002",
            )
            .build(),
        ),
    );
    let acks: Vec<_> = e
        .outbox()
        .into_iter()
        .filter(|o| o.kind == "acknowledgement")
        .collect();
    let (b1, b3) = (e.body(&acks[0]), e.body(&acks[1]));
    assert!(b1.contains("+1 214 555 0142"), "{b1}");
    assert!(!b3.contains("+1 214 555 0142"), "{b3}");
}

#[test]
fn a_french_plan_is_answered_in_french() {
    let mut e = env();
    created(
        &e.ingest(
            &mail(
                "amelie@initech.example",
                "Problème",
                "Clé de support : INIT-0000-0000-0003\nSévérité : Bloquant",
            )
            .build(),
        ),
    );
    let out = e.outbox();
    let body = e.body(&out[0]);
    assert!(
        body.contains("r=C3=A9f=C3=A9rence") || body.contains("référence"),
        "{body}"
    );
    assert!(
        body.contains("+33 1 86 95 00 00"),
        "severity 1 on a plan with phone: {body}"
    );
}

#[test]
fn a_reply_to_our_acknowledgement_lands_on_the_ticket_and_headers_win_over_the_subject() {
    let mut e = env();
    created(&e.ingest(&mail("jane@acme.example", "first", "ACME-0000-0000-0001").build()));
    created(&e.ingest(&mail("jane@acme.example", "second", "ACME-0000-0000-0001").build()));
    let ack1 = e
        .outbox()
        .into_iter()
        .find(|o| o.ticket_id == Some(1))
        .unwrap();
    // Threaded to ticket 1's acknowledgement, but the subject names ticket 2.
    let reply = mail(
        "jane@acme.example",
        "Re: [TKT-000002] first",
        "more details",
    )
    .header(&format!("In-Reply-To: <{}>", ack1.message_id))
    .build();
    assert_eq!(
        e.ingest(&reply),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
    let articles = e.articles(1);
    assert_eq!(articles.len(), 2);
    assert_eq!(articles[1].body, "more details");
}

#[test]
fn a_subject_tag_or_a_reference_in_the_text_finds_the_ticket() {
    let mut e = env();
    created(&e.ingest(&mail("jane@acme.example", "first", "ACME-0000-0000-0001").build()));
    assert_eq!(
        e.ingest(&mail("jane@acme.example", "Re: [TKT-000001] first", "tag").build()),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
    assert_eq!(
        e.ingest(
            &mail(
                "jane@acme.example",
                "about my ticket",
                "This is about TKT-000001, thanks"
            )
            .build()
        ),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
}

#[test]
fn a_colleague_from_an_allowed_domain_may_add_to_a_ticket_but_a_stranger_may_not() {
    let mut e = env();
    created(&e.ingest(&mail("jane@acme.example", "first", "ACME-0000-0000-0001").build()));
    assert_eq!(
        e.ingest(&mail("mark@acme.example", "Re: [TKT-000001] first", "me too").build()),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
    let before = e.outbox().len();
    let code = quarantined(
        &e.ingest(&mail("eve@evil.example", "Re: [TKT-000001] first", "let me in").build()),
    );
    assert_eq!(code, "not_allowed_on_ticket");
    assert_eq!(e.outbox().len(), before, "nothing is sent to a stranger");
    let articles = e.articles(1);
    assert!(articles.iter().all(|a| a.author != "eve@evil.example"));
}

#[test]
fn on_a_customer_without_a_sender_list_only_the_requester_may_follow_up() {
    let mut e = env();
    created(&e.ingest(&mail("bob@globex.example", "first", "GLBX-0000-0000-0002").build()));
    let code = quarantined(
        &e.ingest(&mail("someone@else.example", "Re: [TKT-000001] first", "hi").build()),
    );
    assert_eq!(code, "not_allowed_on_ticket");
}

#[test]
fn missing_unknown_revoked_and_expired_keys_are_rejected_with_the_precise_reason() {
    let mut e = env();
    let cases = [
        ("no key here", "no_key", "does not contain a support key"),
        (
            "Support-Key: ZZZZ-9999-9999-9999",
            "unknown_key",
            "ZZZZ-9999-9999-9999",
        ),
        (
            "Support-Key: UMBR-0000-0000-0004",
            "revoked_key",
            "has been revoked",
        ),
        (
            "Support-Key: UMBR-0000-0000-0005",
            "expired_key",
            "has expired",
        ),
    ];
    for (i, (body, code, says)) in cases.iter().enumerate() {
        let from = format!("user{i}@somewhere.example");
        assert_eq!(
            quarantined(&e.ingest(&mail(&from, "help", body).build())),
            *code
        );
        let reply = e
            .outbox()
            .into_iter()
            .find(|o| o.recipient == from)
            .expect("a rejection reply");
        assert_eq!(reply.kind, "rejection");
        assert_eq!(reply.ticket_id, None);
        let text = e.body(&reply).replace("=\r\n", "");
        assert!(text.contains(says), "{code}: {text}");
        assert!(text.contains("welcome mail"), "how to find the key: {text}");
    }
    assert!(e.app.store().unwrap().tickets(10).unwrap().is_empty());
    let q = e.app.store().unwrap().quarantine(10).unwrap();
    assert_eq!(
        q.iter().map(|r| r.reason_code.as_str()).collect::<Vec<_>>(),
        ["no_key", "unknown_key", "revoked_key", "expired_key"]
    );
}

#[test]
fn a_valid_key_from_an_address_the_customer_does_not_allow_opens_nothing() {
    let mut e = env();
    assert_eq!(
        quarantined(&e.ingest(&mail("x@gmail.example", "help", "ACME-0000-0000-0001").build())),
        "sender_not_allowed"
    );
    assert!(e.app.store().unwrap().tickets(10).unwrap().is_empty());
    assert_eq!(e.outbox()[0].kind, "rejection");
}

#[test]
fn automatic_list_and_bounce_mail_never_gets_an_automatic_reply() {
    let mut e = env();
    let headers = [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated",
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: list",
        "List-Id: <ops.lists.example>",
        "List-Unsubscribe: <mailto:leave@lists.example>",
        "X-Auto-Response-Suppress: OOF",
        "X-Auto-Response-Suppress: All",
        "Return-Path: <>",
    ];
    for (i, h) in headers.iter().enumerate() {
        let m = mail(
            &format!("robot{i}@somewhere.example"),
            "Automatic reply",
            "I am away",
        )
        .header(h)
        .build();
        quarantined(&e.ingest(&m));
    }
    quarantined(&e.ingest(&mail("MAILER-DAEMON@mx.example", "Undelivered", "bounce").build()));
    quarantined(&e.ingest(&mail("postmaster@mx.example", "Undelivered", "bounce").build()));
    assert!(e.outbox().is_empty(), "{:?}", e.outbox());
}

#[test]
fn an_automatic_mail_with_a_valid_key_opens_a_ticket_without_acknowledgement() {
    let mut e = env();
    let m = mail("monitor@acme.example", "disk full", "ACME-0000-0000-0001")
        .header("Auto-Submitted: auto-generated")
        .build();
    created(&e.ingest(&m));
    assert!(e.outbox().is_empty());
}

#[test]
fn mail_from_our_own_address_is_never_processed() {
    let mut e = env_with("[loops]\nown_addresses = [\"helpdesk@support.example.test\"]\n");
    for from in [
        "support@support.example.test",
        "Helpdesk@Support.example.test",
    ] {
        assert_eq!(
            quarantined(&e.ingest(&mail(from, "x", "ACME-0000-0000-0001").build())),
            "own_mail"
        );
    }
    assert!(e.outbox().is_empty());
    assert!(e.app.store().unwrap().tickets(10).unwrap().is_empty());
}

#[test]
fn automatic_replies_per_recipient_are_capped_and_the_cap_window_moves_with_time() {
    let mut e = env_with("[loops]\nauto_reply_limit = 3\nauto_reply_window = \"1h\"\n");
    for _ in 0..5 {
        quarantined(&e.ingest(&mail("loop@robot.example", "hi", "no key").build()));
    }
    let states: Vec<_> = e.outbox().into_iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        ["pending", "pending", "pending", "suppressed", "suppressed"]
    );
    let suppressed = e
        .outbox()
        .into_iter()
        .find(|o| o.state == "suppressed")
        .unwrap();
    assert!(suppressed.last_error.unwrap().contains("auto_reply_limit"));
    e.clock.advance(chrono::Duration::minutes(61));
    quarantined(&e.ingest(&mail("loop@robot.example", "hi", "no key").build()));
    assert_eq!(e.outbox().last().unwrap().state, "pending");
}

#[test]
fn the_same_mail_twice_changes_nothing_the_second_time() {
    let mut e = env();
    let m = mail("jane@acme.example", "x", "ACME-0000-0000-0001")
        .id("same@acme.example")
        .build();
    created(&e.ingest(&m));
    assert_eq!(e.ingest(&m), Outcome::Duplicate);
    // Same Message-ID, different bytes (re-delivered with another Received header).
    assert_eq!(
        e.ingest(&format!("Received: from relay2\r\n{m}")),
        Outcome::Duplicate
    );
    // No Message-ID: the content decides.
    let n = mail("jane@acme.example", "y", "ACME-0000-0000-0001")
        .no_id()
        .build();
    created(&e.ingest(&n));
    assert_eq!(e.ingest(&n), Outcome::Duplicate);
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 2);
    assert_eq!(e.outbox().len(), 2);
}

#[test]
fn raw_bytes_of_every_inbound_mail_are_kept() {
    let mut e = env();
    let m = mail("nokey@x.example", "x", "no key").build();
    quarantined(&e.ingest(&m));
    let q = e.app.store().unwrap().quarantine(1).unwrap();
    assert_eq!(
        e.app
            .store()
            .unwrap()
            .inbound_raw(q[0].id)
            .unwrap()
            .unwrap(),
        m.as_bytes()
    );
}

#[test]
fn garbage_is_quarantined_and_does_not_stop_the_rest_of_the_batch() {
    let e = env();
    let good = mail("jane@acme.example", "x", "ACME-0000-0000-0001").build();
    let batch = vec![
        ticketgate::pipeline::RawMail {
            source: "a".into(),
            bytes: vec![0xff, 0x00, 0x13, 0x37],
        },
        ticketgate::pipeline::RawMail {
            source: "b".into(),
            bytes: good.into_bytes(),
        },
    ];
    let (report, outcomes) = e
        .app
        .pipeline
        .process(&mut *e.app.store().unwrap(), &batch)
        .unwrap();
    assert_eq!(report.created, 1);
    assert_eq!(report.quarantined, 1);
    // Binary noise is not a mail: quarantined with its own reason, kept for replay.
    assert_eq!(quarantined(&outcomes[0]), "not_a_mail");
    assert!(
        matches!(&outcomes[1], Outcome::Created { .. }),
        "{outcomes:?}"
    );
}

#[test]
fn text_that_is_not_a_mail_is_quarantined_as_such_not_as_a_mail_without_sender() {
    let mut e = env();
    for bytes in [
        &b"Hello,\nplease open a ticket. Support-Key: ACME-0000-0000-0001\n"[..],
        b"Support-Key: ACME-0000-0000-0001\nour server is down\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
    ] {
        let out = e.ingest(&String::from_utf8_lossy(bytes));
        assert_eq!(quarantined(&out), "not_a_mail", "{bytes:?}");
    }
    assert!(e.outbox().is_empty(), "nobody to answer");
    // A mail with headers but no From is still a mail without a sender.
    let no_from = "To: support@support.example.test\r\nSubject: hi\r\n\r\nACME-0000-0000-0001\r\n";
    assert_eq!(quarantined(&e.ingest(no_from)), "no_sender");
}

#[test]
fn a_mail_with_broken_mime_and_a_key_in_its_text_opens_a_ticket() {
    let mut e = env();
    // Declared multipart, but the boundary never comes: no part is readable as text.
    let raw = "From: jane@acme.example\r\nSubject: scheduler down\r\nMessage-ID: <bm1@acme.example>\r\n\
               MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"never\"\r\n\r\n\
               Support-Key: ACME-0000-0000-0001\r\nThe scheduler stopped.\r\n";
    let out = e.ingest(raw);
    assert_eq!(created(&out), "TKT-000001", "{out:?}");
}

#[test]
fn a_long_subject_is_stored_whole() {
    let mut e = env();
    let subject = format!(
        "Export fails {}",
        "with a very long explanation ".repeat(20)
    );
    let subject = subject.trim_end();
    created(&e.ingest(&mail("jane@acme.example", subject, "ACME-0000-0000-0001").build()));
    assert_eq!(
        e.app.store().unwrap().tickets(10).unwrap()[0].subject,
        subject
    );
    // In quarantine too.
    let q = mail("jane@acme.example", subject, "no key here").build();
    assert_eq!(quarantined(&e.ingest(&q)), "no_key");
    assert_eq!(
        e.app.store().unwrap().quarantine(10).unwrap()[0].subject,
        subject
    );
}

#[test]
fn oversized_mail_is_quarantined_with_a_reply_saying_so() {
    let mut e = env_with("");
    let big_limit = e.app.cfg.inbound.max_message_bytes;
    let body = format!("ACME-0000-0000-0001\n{}", "x".repeat(big_limit + 10));
    let code = quarantined(&e.ingest(&mail("jane@acme.example", "huge", &body).build()));
    assert_eq!(code, "too_large");
    let reply = &e.outbox()[0];
    assert_eq!(reply.kind, "rejection");
    assert!(e.body(reply).replace("=\r\n", "").contains("larger than"));
}

/// IMAP hands over only the header of a mail over the limit, with its declared size. The
/// quarantine shows that size, and a replay (after, say, a registry fix) keeps it too large:
/// it must not open a ticket from the header alone.
#[test]
fn a_header_only_oversized_mail_stays_too_large_when_replayed() {
    let e = env();
    let declared = e.app.cfg.inbound.max_message_bytes + 1000;
    let whole = mail(
        "jane@acme.example",
        "ACME-0000-0000-0001 export logs",
        "Support-Key: ACME-0000-0000-0001\nthe logs are attached",
    )
    .build();
    let header_len = whole.find("\r\n\r\n").unwrap() + 4;
    let batch = [ticketgate::pipeline::RawMail {
        source: "imap:support/7".into(),
        bytes: whole.as_bytes()[..header_len].to_vec(),
    }];
    let (_, outcomes) = e
        .app
        .pipeline
        .process_declared(
            &mut *e.app.store().unwrap(),
            &batch,
            &[Some(declared)],
            &mut |_| Ok(()),
        )
        .unwrap();
    assert_eq!(quarantined(&outcomes[0]), "too_large");
    let q = e.app.store().unwrap().quarantine(10).unwrap();
    assert_eq!(
        q[0].size, declared as i64,
        "quarantine list shows the mail's size, not its header's"
    );

    let replayed = e
        .app
        .pipeline
        .replay(&mut *e.app.store().unwrap(), q[0].id)
        .unwrap();
    assert_eq!(quarantined(&replayed), "too_large", "{replayed:?}");
    assert!(
        e.app.store().unwrap().tickets(10).unwrap().is_empty(),
        "no ticket from a header"
    );
    let q = e.app.store().unwrap().quarantine(10).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].size, declared as i64, "the replayed row keeps it too");
}

#[test]
fn attachments_are_stored_and_those_over_the_limit_are_recorded_but_not_kept() {
    let mut e = env();
    let small = "aGVsbG8gd29ybGQ="; // "hello world"
    let big = "QUFB".repeat(1000); // 3000 bytes > 2KB limit
    let raw = format!(
        "From: bob@globex.example\r\nSubject: logs\r\nMessage-ID: <att@globex.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nGLBX-0000-0000-0002 see logs\r\n\
         --B\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"small.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{small}\r\n\
         --B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{big}\r\n--B--\r\n"
    );
    created(&e.ingest(&raw));
    let articles = e.articles(1);
    let a = &articles[0].attachments;
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].filename.as_str(), a[0].size, a[0].kept),
        ("small.txt", 11, true)
    );
    assert_eq!(
        (a[1].filename.as_str(), a[1].size, a[1].kept),
        ("big.bin", 3000, false)
    );
    // The agent team's copy carries the attachment that was kept.
    let copy = e
        .outbox()
        .into_iter()
        .find(|o| o.kind == "agent_notification")
        .expect("agent copy");
    assert_eq!(copy.recipient, "agents@support.example.test");
    let body = e.body(&copy);
    assert!(body.contains("filename=\"small.txt\""), "{body}");
    assert!(!body.contains("big.bin"));
}

#[test]
fn every_customer_update_is_copied_to_the_agent_team_threaded_to_the_ticket() {
    let mut e = env();
    created(&e.ingest(&mail("bob@globex.example", "down", "GLBX-0000-0000-0002").build()));
    e.ingest(&mail("bob@globex.example", "Re: [TKT-000001] down", "still down").build());
    let copies: Vec<_> = e
        .outbox()
        .into_iter()
        .filter(|o| o.kind == "agent_notification")
        .collect();
    assert_eq!(copies.len(), 2);
    assert!(copies.iter().all(|c| c.subject.contains("[TKT-000001]")));
    // An agent's reply to the copy threads back to the ticket.
    let reply = mail("bob@globex.example", "no tag", "via thread")
        .header(&format!("In-Reply-To: <{}>", copies[1].message_id))
        .build();
    assert_eq!(
        e.ingest(&reply),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
}

#[test]
fn nothing_a_sender_writes_can_inject_headers_into_our_mail() {
    let mut e = env();
    let m = mail(
        "\"Eve\r\n Bcc: victim@x.example\" <eve@acme.example>",
        "=?utf-8?q?hi=0D=0ABcc:_victim@x.example?=",
        "ACME-0000-0000-0001",
    )
    .build();
    created(&e.ingest(&m));
    let ack = e.outbox().remove(0);
    let body = e.body(&ack);
    let headers = body.split("\r\n\r\n").next().unwrap();
    assert!(
        !headers
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{headers}"
    );
    assert_eq!(headers.lines().filter(|l| l.starts_with("To:")).count(), 1);
}

#[test]
fn registry_edits_take_effect_without_a_restart() {
    let mut e = env();
    let m = mail("new@newco.example", "hi", "NEWC-0000-0000-0009").build();
    assert_eq!(quarantined(&e.ingest(&m)), "unknown_key");
    let path = e.path("customers.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[customers]]\nid = \"newco\"\nplan = \"standard\"\nkeys = [{ key = \"NEWC-0000-0000-0009\" }]\n");
    std::fs::write(&path, text).unwrap();
    let m2 = mail("new@newco.example", "hi again", "NEWC-0000-0000-0009").build();
    created(&e.ingest(&m2));
}

#[test]
fn a_mail_whose_processing_fails_is_quarantined_alone_and_the_rest_of_the_batch_commits() {
    let mut e = env_with("[templates]\ndir = \"tpl\"\n");
    // A broken French acknowledgement: every French new ticket fails to render.
    std::fs::create_dir_all(e.path("tpl/fr")).unwrap();
    std::fs::write(
        e.path("tpl/fr/acknowledgement.txt"),
        "Subject: x\n\n{{ no_such_function() }}\n",
    )
    .unwrap();
    let cfg = (*e.app.cfg).clone();
    e.app = ticketgate::app::App::open(cfg, std::sync::Arc::new(e.clock.clone())).unwrap();
    let batch: Vec<_> = [
        mail("jane@acme.example", "one", "ACME-0000-0000-0001").build(),
        mail("amelie@initech.example", "deux", "INIT-0000-0000-0003").build(),
        mail("jane@acme.example", "three", "ACME-0000-0000-0001").build(),
    ]
    .into_iter()
    .map(|m| ticketgate::pipeline::RawMail {
        source: "t".into(),
        bytes: m.into_bytes(),
    })
    .collect();
    let (report, outcomes) = e
        .app
        .pipeline
        .process(&mut *e.app.store().unwrap(), &batch)
        .unwrap();
    assert_eq!((report.created, report.quarantined), (2, 1), "{outcomes:?}");
    assert!(
        matches!(&outcomes[1], Outcome::Quarantined { code, reason } if code == "internal_error" && reason.contains("fr/acknowledgement")),
        "{outcomes:?}"
    );
    // Nothing of the failed mail is left half-done; its raw bytes are kept for replay.
    let tickets = e.app.store().unwrap().tickets(10).unwrap();
    assert_eq!(
        tickets
            .iter()
            .map(|t| t.customer.as_str())
            .collect::<Vec<_>>(),
        ["acme", "acme"]
    );
    let q = e.app.store().unwrap().quarantine(10).unwrap();
    assert_eq!(
        e.app
            .store()
            .unwrap()
            .inbound_raw(q[0].id)
            .unwrap()
            .unwrap(),
        batch[1].bytes
    );
    assert_eq!(e.outbox().len(), 2);
}

#[test]
fn a_quarantined_mail_can_be_replayed_once_its_cause_is_fixed() {
    let mut e = env();
    let m = mail("new@newco.example", "hello", "NEWC-0000-0000-0009").build();
    assert_eq!(quarantined(&e.ingest(&m)), "unknown_key");
    let id = e.app.store().unwrap().quarantine(1).unwrap()[0].id;
    // Still unknown: the replay quarantines it again, nothing else changes.
    assert!(matches!(
        e.app
            .pipeline
            .replay(&mut *e.app.store().unwrap(), id)
            .unwrap(),
        Outcome::Quarantined { .. }
    ));
    let path = e.path("customers.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[customers]]\nid = \"newco\"\nplan = \"standard\"\nkeys = [{ key = \"NEWC-0000-0000-0009\" }]\n");
    std::fs::write(&path, text).unwrap();
    let again = e
        .app
        .store()
        .unwrap()
        .quarantine(10)
        .unwrap()
        .last()
        .unwrap()
        .id;
    assert_eq!(
        e.app
            .pipeline
            .replay(&mut *e.app.store().unwrap(), again)
            .unwrap(),
        Outcome::Created {
            ticket: "TKT-000001".into()
        }
    );
    assert!(
        e.app.store().unwrap().quarantine(10).unwrap().is_empty(),
        "out of quarantine"
    );
    assert!(
        e.app
            .pipeline
            .replay(&mut *e.app.store().unwrap(), again)
            .is_err(),
        "replays once"
    );
    // The original bytes are what was processed, and the mail is still a duplicate if re-delivered.
    assert_eq!(e.ingest(&m), Outcome::Duplicate);
}

#[test]
fn a_ticket_number_pasted_from_another_customer_does_not_block_a_new_request() {
    let mut e = env();
    created(&e.ingest(&mail("jane@acme.example", "first", "ACME-0000-0000-0001").build()));
    let m = mail(
        "bob@globex.example",
        "new problem",
        "GLBX-0000-0000-0002\nSimilar to what ACME saw in TKT-000001.",
    )
    .build();
    assert_eq!(created(&e.ingest(&m)), "TKT-000002");
    let articles = e.articles(1);
    assert_eq!(
        articles.len(),
        1,
        "nothing was added to the other customer's ticket"
    );
}

#[test]
fn a_reply_to_the_customers_own_first_mail_lands_on_its_ticket() {
    let mut e = env();
    created(
        &e.ingest(
            &mail("jane@acme.example", "first", "ACME-0000-0000-0001")
                .id("orig@acme.example")
                .build(),
        ),
    );
    // A colleague answers Jane's original mail (reply-all): no tag, no key.
    let m = mail("mark@acme.example", "Re: first", "Also seen here.")
        .header("In-Reply-To: <orig@acme.example>")
        .build();
    assert_eq!(
        e.ingest(&m),
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
}

#[test]
fn nul_bytes_in_headers_and_body_do_not_make_a_mail_unstorable() {
    // PostgreSQL refuses NUL in text: it is kept out of what is stored as text, so the same
    // mail opens a ticket on both backends, and a batch with it commits.
    let mut e = env();
    let raw = "From: Jane <jane@acme.example>\r\nTo: support@support.example.test\r\n\
               Subject: NUL\u{0} inside\r\nMessage-ID: <nul\u{0}id@client.example>\r\n\
               In-Reply-To: <earlier\u{0}@client.example>\r\nMIME-Version: 1.0\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\r\n\
               Support key: ACME-0000-0000-0001\r\nThe log has a \u{0} in it.\r\n";
    let ticket = created(&e.ingest(raw));
    let id: i64 = ticket.trim_start_matches("TKT-").parse().unwrap();
    let (t, articles) = e
        .app
        .store()
        .unwrap()
        .ticket_with_articles(id)
        .unwrap()
        .unwrap();
    assert_eq!(t.subject, "NUL inside");
    assert!(articles[0].body.contains("has a \u{FFFD} in it"));
    // Re-delivered: recognised by its (cleaned) Message-ID.
    assert_eq!(e.ingest(raw), Outcome::Duplicate);
}

/// The services the CLI (and the HTTP API) call return typed errors whose kind says what
/// went wrong: a malformed reference is invalid, an unknown one not found, a refused agent
/// action or retry lists every reason and changes nothing.
#[tokio::test]
async fn services_return_errors_of_the_right_kind() {
    use ticketgate::services::{self, ErrorKind, ServiceError, tickets::AgentAction};
    let mut e = env();
    let Outcome::Created { ticket } = e.ingest(
        &mail(
            "jane@acme.example",
            "Login fails",
            "Key ACME-0000-0000-0001",
        )
        .id("svc-1@acme.example")
        .build(),
    ) else {
        panic!("a ticket")
    };
    let app = &e.app;
    fn kind<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> ErrorKind {
        r.unwrap_err().kind()
    }
    assert_eq!(
        kind(services::tickets::show(app, "nonsense").await),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(services::tickets::show(app, "TKT-999999").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        services::tickets::show(app, &ticket)
            .await
            .unwrap()
            .ticket
            .reference,
        ticket
    );

    let bad = AgentAction::Status("no-such-status".into());
    match services::tickets::act(app, &ticket, "mike@support.example.test", &bad).await {
        Err(ServiceError::Rejected(why)) => assert!(!why.is_empty()),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let before = services::tickets::show(app, &ticket).await.unwrap().ticket;
    assert_eq!(before.status, "new", "nothing was applied");
    let done = services::tickets::act(
        app,
        &ticket,
        "mike@support.example.test",
        &AgentAction::Severity("2".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        (done.reference.as_str(), done.severity),
        (ticket.as_str(), 2)
    );

    // The acknowledgement is pending: it cannot be retried, and nothing is changed.
    let pending = services::outbox::list(app, Some(ticketgate::store::OutboxState::Pending), 10)
        .await
        .unwrap();
    assert!(!pending.is_empty());
    match services::outbox::retry(app, &[pending[0].id, 999_999]).await {
        Err(ServiceError::Rejected(why)) => assert_eq!(why.len(), 2, "{why:?}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        kind(services::quarantine::replay(app, 999_999).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(services::timers::instant(app, Some("tomorrow"))),
        ErrorKind::Invalid
    );
}

/// B11: a status this version does not know, found in the database, is an error naming the
/// row — never read as `open` in one place and `new` in another.
#[test]
fn an_unknown_stored_status_is_an_error_naming_the_row() {
    let mut e = env();
    let Outcome::Created { .. } = e.ingest(
        &mail(
            "jane@acme.example",
            "Export fails",
            "Key ACME-0000-0000-0001",
        )
        .id("b11@acme.example")
        .build(),
    ) else {
        panic!("a ticket")
    };
    let url = e.app.cfg.database_url.expose().to_string();
    let corrupt = |sql: &str| match url.strip_prefix("sqlite:") {
        Some(path) => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute(sql, [])
                .unwrap();
        }
        None => common::admin(&url, sql),
    };
    corrupt("UPDATE tickets SET status = 'escalated_to_mars'");
    let err = e.app.store().unwrap().tickets(10).unwrap_err().to_string();
    assert!(
        err.contains("ticket #1") && err.contains("escalated_to_mars"),
        "{err}"
    );
    // The same for an outbox state.
    corrupt("UPDATE outbox SET state = 'lost_in_transit'");
    let err = e.app.store().unwrap().outbox(10).unwrap_err().to_string();
    assert!(
        err.contains("outbox #1") && err.contains("lost_in_transit"),
        "{err}"
    );
}

fn raw(m: String) -> RawMail {
    RawMail {
        source: "stdin".into(),
        bytes: m.into_bytes(),
    }
}

/// Batches handed over as a stream (`Pipeline::next_batch`): on PostgreSQL each one is
/// parsed and applied while the one before commits in the background (ADR 0019). It must
/// still see everything that one wrote: its tickets (a follow-up by `In-Reply-To` and by
/// subject tag), its dedup keys (the same mail again) and its automatic mail (the cap);
/// ticket numbers follow the mail; no batch needs doing again.
#[test]
fn a_batch_prepared_while_the_one_before_commits_sees_its_tickets_duplicates_and_capped_mail() {
    let mut e = env_with("[loops]\nauto_reply_limit = 3\nauto_reply_window = \"1h\"\n");
    let request = mail("jane@acme.example", "Disk full", "ACME-0000-0000-0001")
        .id("req1@acme.example")
        .build();
    let robot = || raw(mail("loop@robot.example", "hi", "no key").build());
    let b1 = vec![raw(request.clone()), robot(), robot()];
    let b2 = vec![
        raw(mail("jane@acme.example", "Re: Disk full", "Still full.")
            .id("f1@acme.example")
            .header("In-Reply-To: <req1@acme.example>")
            .build()),
        raw(request.clone()),
        robot(),
        robot(),
        raw(mail("jane@acme.example", "Printer", "ACME-0000-0000-0001").build()),
    ];
    let b3 = vec![
        raw(mail(
            "jane@acme.example",
            "Re: [TKT-000001] Disk full",
            "Now empty.",
        )
        .build()),
        raw(mail("jane@acme.example", "Scanner", "ACME-0000-0000-0001").build()),
    ];
    let p = e.app.pipeline.clone();
    let mut store = e.app.store().unwrap();
    let (p1, none) = p.next_batch(&mut *store, b1, None);
    assert!(none.is_none());
    let (p2, r1) = p.next_batch(&mut *store, b2, Some(p1));
    let (p3, r2) = p.next_batch(&mut *store, b3, Some(p2));
    let r3 = p.finish_batch(&mut *store, p3).unwrap();
    drop(store);
    let (r1, o1) = r1.unwrap().unwrap();
    let (r2, o2) = r2.unwrap().unwrap();
    assert_eq!((r1.created, r1.quarantined), (1, 2));
    assert_eq!(created(&o1[0]), "TKT-000001");
    let t1 = || Outcome::Appended {
        ticket: "TKT-000001".into(),
    };
    assert_eq!(o2[0], t1());
    assert_eq!(o2[1], Outcome::Duplicate);
    assert_eq!(created(&o2[4]), "TKT-000002");
    assert_eq!((r2.appended, r2.duplicates, r2.quarantined), (1, 1, 2));
    assert_eq!(r3.0.appended, 1);
    assert_eq!(r3.1[0], t1());
    assert_eq!(created(&r3.1[1]), "TKT-000003");
    assert_eq!(p.batches_done_again(), 0, "no batch was done again");

    let articles = e.articles(1);
    let bodies: Vec<&str> = articles.iter().map(|a| a.body.trim()).collect();
    assert_eq!(bodies[1..], ["Still full.", "Now empty."]);
    // The cap (3 an hour) counted the first batch's answers while it was committing.
    let robot_states: Vec<String> = e
        .outbox()
        .into_iter()
        .filter(|o| o.recipient == "loop@robot.example")
        .map(|o| o.state.to_string())
        .collect();
    assert_eq!(
        robot_states,
        ["pending", "pending", "pending", "suppressed"]
    );
}

/// Ticket 1 with severity 1, written by a transaction that holds the writers' lock until
/// it is committed.
fn agent_change(s: &mut dyn ticketgate::store::Store) -> Box<dyn ticketgate::store::WriteTx + '_> {
    let mut tx = s.write().unwrap();
    let mut t = tx.ticket(1).unwrap().unwrap();
    t.severity = 1;
    tx.save_ticket(&t).unwrap();
    tx
}

/// A batch whose background commit fails (another writer changed a ticket it changes while
/// it waited for the writers' lock) is done again at its finish, and the batch prepared on
/// its effects is done again after it, in order: nothing is lost, nothing written twice.
#[test]
fn when_a_background_commit_conflicts_it_and_the_batch_after_it_are_done_again_in_order() {
    let mut e = env();
    created(
        &e.ingest(
            &mail("jane@acme.example", "Disk full", "ACME-0000-0000-0001")
                .id("req1@acme.example")
                .build(),
        ),
    );
    let follow_up = |id: &str, body: &str| {
        raw(mail("jane@acme.example", "Re: Disk full", body)
            .id(id)
            .header("In-Reply-To: <req1@acme.example>")
            .build())
    };
    let b1 = vec![follow_up("f1@acme.example", "One.")];
    let b2 = vec![
        follow_up("f2@acme.example", "Two."),
        raw(mail("jane@acme.example", "Printer", "ACME-0000-0000-0001").build()),
    ];
    let p = e.app.pipeline.clone();
    let mut store = e.app.store().unwrap();
    let mut other = e.app.store().unwrap();
    // Another writer holds the writers' lock and changes ticket 1 meanwhile (on SQLite,
    // where a batch commits before `next_batch` returns, it does so first).
    let pg = common::on_postgres();
    let p1 = if pg {
        let tx = agent_change(&mut *other);
        let (p1, _) = p.next_batch(&mut *store, b1, None);
        tx.commit().unwrap();
        p1
    } else {
        agent_change(&mut *other).commit().unwrap();
        p.next_batch(&mut *store, b1, None).0
    };
    let (p2, r1) = p.next_batch(&mut *store, b2, Some(p1));
    let (r1, o1) = r1.unwrap().unwrap();
    let (r2, o2) = p.finish_batch(&mut *store, p2).unwrap();
    drop((store, other));
    let t1 = Outcome::Appended {
        ticket: "TKT-000001".into(),
    };
    assert_eq!((r1.appended, o1), (1, vec![t1.clone()]));
    assert_eq!(o2[0], t1);
    // A new number (on PostgreSQL the one the first attempt took is left unused: a gap).
    assert_ne!(created(&o2[1]), "TKT-000001");
    assert_eq!(r2.created, 1);
    if pg {
        assert_eq!(
            p.batches_done_again(),
            2,
            "the conflict and the batch after it"
        );
        assert_eq!(
            p.batches_done_mail_by_mail(),
            0,
            "both done again whole, without one savepoint per mail under the lock"
        );
    }
    // The other writer's change is kept, and each follow-up is on the ticket once, in order.
    let (t, articles) = e
        .app
        .store()
        .unwrap()
        .ticket_with_articles(1)
        .unwrap()
        .unwrap();
    assert_eq!(t.severity, 1);
    let bodies: Vec<&str> = articles.iter().map(|a| a.body.trim()).collect();
    assert_eq!(bodies[1..], ["One.", "Two."]);
}
