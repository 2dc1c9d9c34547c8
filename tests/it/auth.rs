//! Sender authenticity, end to end on a real database: DKIM-signed mail (test keys in
//! `tests/fixtures/dkim/`, public keys put in the resolver's cache: no DNS), trusted
//! `Authentication-Results`, forged agent mail (the attacks of issue 11's "Why"), customers
//! under `prefer` and `require`, reply tokens, and outbound DKIM on every kind of mail.

use crate::common::{self, Env, env_inbound, mail};
use ticketgate::auth::sign::Signer;
use ticketgate::auth::{AuthMethod, AuthResult, Authenticator, TrustSettings};
use ticketgate::pipeline::Outcome;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dkim");

const REGISTRY: &str = r#"
agents = ["mike@support.example.test"]

[plans.standard]
agent_team = "agents@support.example.test"

[plans.strict]
authentication = "require"
agent_team = "agents@support.example.test"

[[customers]]
id = "acme"
name = "ACME"
plan = "standard"
allowed_senders = ["@acme.example"]
keys = [{ key = "ACME-0000-0000-0001" }]

[[customers]]
id = "vault"
name = "Vault"
plan = "strict"
keys = [{ key = "VALT-0000-0000-0009" }]
"#;

const REPLY_KEY: &str = "test-reply-key-0123456789abcdef";

fn key(name: &str) -> std::path::PathBuf {
    std::path::Path::new(FIXTURES).join(name)
}

fn record(name: &str) -> String {
    std::fs::read_to_string(key(name))
        .unwrap()
        .trim()
        .to_string()
}

/// An app that trusts no source, trusts `mx.support.example.test`'s verdicts, has a reply
/// key, and knows the public keys: `rsa._domainkey.acme.example`,
/// `ed._domainkey.support.example.test`.
fn env() -> Env {
    let e = env_inbound(
        REGISTRY,
        &format!(
            "trusted_authserv_ids = [\"mx.support.example.test\"]\nreply_key = \"{REPLY_KEY}\"\n"
        ),
        "",
    );
    let a = e.app.pipeline.authenticator();
    a.add_txt("rsa._domainkey.acme.example", &record("rsa.txt"))
        .unwrap();
    a.add_txt("ed._domainkey.support.example.test", &record("ed25519.txt"))
        .unwrap();
    e
}

fn sign(raw: &str, domain: &str, selector: &str, pem: &str) -> Vec<u8> {
    Signer::load(domain, selector, &key(pem))
        .unwrap()
        .sign(raw.as_bytes())
        .unwrap()
}

/// Mail as it arrives from the Internet (read from the Maildir: not a trusted source).
fn arrive(e: &mut Env, raw: &[u8]) -> Outcome {
    e.ingest_from("maildir:new/1.x", raw)
}

fn customer_request(e: &mut Env) {
    let raw = mail(
        "Jane <jane@acme.example>",
        "Export fails",
        "ACME-0000-0000-0001",
    )
    .build();
    let out = arrive(e, raw.as_bytes());
    assert!(matches!(out, Outcome::Created { .. }), "{out:?}");
}

fn agent_mail(subject: &str, body: &str) -> String {
    mail("Mike Chen <mike@support.example.test>", subject, body).build()
}

fn signed_agent(subject: &str, body: &str) -> Vec<u8> {
    sign(
        &agent_mail(subject, body),
        "support.example.test",
        "ed",
        "ed25519.pem",
    )
}

fn code(o: &Outcome) -> &str {
    match o {
        Outcome::Quarantined { code, .. } => code,
        _ => "",
    }
}

fn kinds(e: &mut Env) -> Vec<(String, String)> {
    e.outbox()
        .into_iter()
        .map(|r| (r.kind.to_string(), r.recipient))
        .collect()
}

fn verdicts(e: &mut Env, ticket: i64) -> Vec<Option<ticketgate::auth::Verdict>> {
    e.app
        .store()
        .unwrap()
        .ticket_with_articles(ticket)
        .unwrap()
        .unwrap()
        .1
        .into_iter()
        .map(|a| a.authentication)
        .collect()
}

#[test]
fn a_forged_agent_close_changes_nothing_and_alerts_the_team_once() {
    let mut e = env();
    customer_request(&mut e);
    let before = kinds(&mut e);
    // The attack of issue 11: From an agent, DKIM/SPF/DMARC all failing, `#close` on top.
    let forged = agent_mail("Re: [TKT-000001] x", "#close duplicate\n\nClosing this.");
    let out = arrive(&mut e, forged.as_bytes());
    assert_eq!(code(&out), "unauthenticated_agent", "{out:?}");
    assert_eq!(e.ticket(1).status, "new", "the ticket was not closed");
    let after = kinds(&mut e);
    let new: Vec<_> = after[before.len()..].to_vec();
    assert_eq!(
        new,
        vec![(
            "sender_alert".to_string(),
            "agents@support.example.test".to_string()
        )],
        "no closure notice to the customer, one alert to the agent team"
    );
    let alert = e.outbox().pop().unwrap();
    let body = e.body(&alert);
    assert!(body.contains("mike@support.example.test"), "{body}");
    assert!(body.contains("TKT-000001"), "{body}");

    // The same forgery again, with a plain answer: not relayed, and no second alert within
    // the hour.
    let forged = agent_mail(
        "Re: [TKT-000001] x",
        "Please log in at http://evil.example/reset to fix it.",
    );
    let out = arrive(&mut e, forged.as_bytes());
    assert_eq!(code(&out), "unauthenticated_agent");
    assert_eq!(kinds(&mut e), after, "nothing relayed, no second alert");

    // An hour later the next forgery alerts again.
    e.clock.advance(chrono::Duration::minutes(61));
    let out = arrive(
        &mut e,
        agent_mail("Re: [TKT-000001] x", "#close duplicate").as_bytes(),
    );
    assert_eq!(code(&out), "unauthenticated_agent");
    assert_eq!(kinds(&mut e).len(), after.len() + 1);
    assert_eq!(e.ticket(1).status, "new");
}

#[test]
fn a_forged_plain_agent_reply_is_not_relayed() {
    let mut e = env();
    customer_request(&mut e);
    let before = e.outbox().len();
    let forged = agent_mail(
        "Re: [TKT-000001] x",
        "Your account is locked: log in at http://evil.example/ to unlock it.",
    );
    let out = arrive(&mut e, forged.as_bytes());
    assert_eq!(code(&out), "unauthenticated_agent");
    let rows = e.outbox();
    assert!(
        rows[before..]
            .iter()
            .all(|r| r.recipient != "jane@acme.example"),
        "nothing went to the customer: {:?}",
        kinds(&mut e)
    );
    assert_eq!(verdicts(&mut e, 1).len(), 1, "no article added");
}

#[test]
fn a_dkim_signed_agent_mail_still_works() {
    let mut e = env();
    customer_request(&mut e);
    let out = arrive(
        &mut e,
        &signed_agent(
            "Re: [TKT-000001] x",
            "We are on it: please restart the service.",
        ),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert!(
        kinds(&mut e).contains(&("agent_reply".into(), "jane@acme.example".into())),
        "relayed: {:?}",
        kinds(&mut e)
    );
    let out = arrive(
        &mut e,
        &signed_agent("Re: [TKT-000001] x", "#close duplicate"),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "closed");
    let v = verdicts(&mut e, 1);
    let agent = v.last().unwrap().as_ref().unwrap();
    assert_eq!(agent.result, AuthResult::Pass);
    assert_eq!(agent.method, Some(AuthMethod::Dkim));
}

#[test]
fn verdicts_aligned_pass_wrong_domain_altered_body_and_no_signature() {
    let mut e = env();
    e.app
        .pipeline
        .authenticator()
        .add_txt("rsa._domainkey.evil.example", &record("rsa.txt"))
        .unwrap();
    let raw = |subject: &str| {
        mail(
            "Jane <jane@acme.example>",
            subject,
            "ACME-0000-0000-0001\nIt fails.",
        )
        .build()
    };
    // Aligned: d=acme.example for From jane@acme.example.
    let out = arrive(&mut e, &sign(&raw("one"), "acme.example", "rsa", "rsa.pem"));
    assert!(matches!(out, Outcome::Created { .. }), "{out:?}");
    // Wrong domain: a valid signature, but of evil.example.
    arrive(&mut e, &sign(&raw("two"), "evil.example", "rsa", "rsa.pem"));
    // Body altered after signing.
    let signed = String::from_utf8(sign(&raw("three"), "acme.example", "rsa", "rsa.pem")).unwrap();
    let altered = signed.replace("It fails.", "It works.");
    assert_ne!(signed, altered);
    arrive(&mut e, altered.as_bytes());
    // No signature at all.
    arrive(&mut e, raw("four").as_bytes());

    let got: Vec<_> = (1..=4)
        .map(|t| verdicts(&mut e, t)[0].clone().unwrap())
        .collect();
    assert_eq!(got[0].result, AuthResult::Pass, "{:?}", got[0]);
    assert_eq!(got[0].method, Some(AuthMethod::Dkim));
    assert!(got[0].detail.contains("d=acme.example"), "{:?}", got[0]);
    assert_eq!(got[1].result, AuthResult::Fail, "{:?}", got[1]);
    assert!(got[1].detail.contains("d=evil.example"), "{:?}", got[1]);
    assert_eq!(got[2].result, AuthResult::Fail, "{:?}", got[2]);
    assert_eq!(got[3].result, AuthResult::None, "{:?}", got[3]);

    // `tickets show --json`: each article carries its verdict.
    let show = e
        .app
        .store()
        .unwrap()
        .ticket_with_articles(1)
        .unwrap()
        .unwrap();
    let json = serde_json::to_value(&show.1[0]).unwrap();
    assert_eq!(json["authentication"]["result"], "pass");
    assert_eq!(json["authentication"]["method"], "dkim");
}

#[test]
fn only_the_topmost_trusted_authentication_results_counts() {
    let mut e = env();
    customer_request(&mut e);
    // A server we do not trust writes a pass ABOVE our server's fail: ignored.
    let forged = agent_mail("Re: [TKT-000001] x", "#close duplicate").replacen(
        "From:",
        "Authentication-Results: mx.evil.example; dkim=pass header.d=support.example.test; \
         dmarc=pass header.from=support.example.test\r\n\
         Authentication-Results: mx.support.example.test; dkim=none; spf=fail; \
         dmarc=fail header.from=support.example.test\r\nFrom:",
        1,
    );
    let out = arrive(&mut e, forged.as_bytes());
    assert_eq!(code(&out), "unauthenticated_agent", "{out:?}");
    assert_eq!(e.ticket(1).status, "new");

    // A forged "trusted" header BELOW our server's (written by the sender) is not read
    // either: the topmost trusted one is.
    let forged = agent_mail("Re: [TKT-000001] x", "#close duplicate").replacen(
        "From:",
        "Authentication-Results: mx.support.example.test; dmarc=fail header.from=support.example.test\r\n\
         Received: from evil.example\r\n\
         Authentication-Results: mx.support.example.test; dmarc=pass header.from=support.example.test\r\nFrom:",
        1,
    );
    assert_eq!(
        code(&arrive(&mut e, forged.as_bytes())),
        "unauthenticated_agent"
    );

    // Our server's own pass is believed.
    let genuine = agent_mail(
        "Re: [TKT-000001] x",
        "#close duplicate\n\nThis duplicates another request.",
    )
    .replacen(
        "From:",
        "Authentication-Results: mx.support.example.test 1; dkim=pass (ed25519) \
         header.d=support.example.test; dmarc=pass (p=reject) header.from=support.example.test\r\nFrom:",
        1,
    );
    let out = arrive(&mut e, genuine.as_bytes());
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "closed");
    let v = verdicts(&mut e, 1);
    assert!(
        v.iter()
            .flatten()
            .any(|v| v.method == Some(AuthMethod::AuthenticationResults) && v.passed()),
        "{v:?}"
    );
}

/// The ticket resolved by a signed agent mail, and the reply address its mail named.
fn resolved(e: &mut Env) -> String {
    customer_request(e);
    let out = arrive(
        e,
        &signed_agent("Re: [TKT-000001] x", "#resolve fix\nRestart it."),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "resolved");
    let rows = e.outbox();
    let to_customer = rows
        .iter()
        .rev()
        .find(|r| r.recipient == "jane@acme.example")
        .unwrap()
        .clone();
    let body = e.body(&to_customer);
    let line = body
        .lines()
        .find(|l| l.starts_with("Reply-To:"))
        .unwrap_or_else(|| panic!("no Reply-To in {body}"));
    let start = line.find("support+").unwrap();
    let addr = &line[start..];
    addr[..addr.find('>').unwrap_or(addr.len())].to_string()
}

#[test]
fn under_prefer_an_unauthenticated_acceptance_needs_a_reply_token() {
    let mut e = env();
    let reply_to = resolved(&mut e);
    assert!(
        reply_to.starts_with("support+TKT-000001.") && reply_to.ends_with("@support.example.test"),
        "{reply_to}"
    );
    // The attack of issue 11: a forged customer From with "ok to close", to support@.
    let forged = mail(
        "Jane <jane@acme.example>",
        "Re: [TKT-000001] x",
        "ok to close",
    )
    .build();
    let out = arrive(&mut e, forged.as_bytes());
    assert!(
        matches!(out, Outcome::Appended { .. }),
        "kept as an article: {out:?}"
    );
    assert_eq!(e.ticket(1).status, "resolved", "not closed without a token");
    // A wrong signature on the reply address proves nothing.
    let bad = mail("Jane <jane@acme.example>", "Re: x", "ok to close")
        .header("Cc: support+TKT-000001.0000000000000000@support.example.test")
        .build()
        .replace(
            "To: support@support.example.test",
            "To: someone@acme.example",
        );
    arrive(&mut e, bad.as_bytes());
    assert_eq!(e.ticket(1).status, "resolved");
    // Sent to the reply address of our mail (no subject tag, no threading headers: the
    // address alone finds the ticket), it closes the ticket.
    let answer = mail(
        "Jane <jane@acme.example>",
        "Re: your request",
        "ok to close",
    )
    .build()
    .replace(
        "To: support@support.example.test",
        &format!("To: Support <{reply_to}>"),
    );
    let out = arrive(&mut e, answer.as_bytes());
    assert_eq!(
        out,
        Outcome::Appended {
            ticket: "TKT-000001".into()
        }
    );
    assert_eq!(e.ticket(1).status, "closed");
}

#[test]
fn under_require_unauthenticated_mail_is_quarantined_with_a_reply() {
    let mut e = env();
    e.app
        .pipeline
        .authenticator()
        .add_txt("rsa._domainkey.vault.example", &record("rsa.txt"))
        .unwrap();
    let raw = mail(
        "Ann <ann@vault.example>",
        "Disk full",
        "VALT-0000-0000-0009",
    )
    .build();
    let out = arrive(&mut e, raw.as_bytes());
    assert_eq!(code(&out), "unauthenticated_sender", "{out:?}");
    let rejection = e.outbox().pop().unwrap();
    assert_eq!(rejection.kind.to_string(), "rejection");
    assert_eq!(rejection.recipient, "ann@vault.example");
    let body = e.body(&rejection);
    assert!(body.contains("DKIM"), "{body}");
    // Signed by its domain, the same request opens a ticket.
    let raw = mail(
        "Ann <ann@vault.example>",
        "Disk full again",
        "VALT-0000-0000-0009",
    )
    .build();
    let out = arrive(&mut e, &sign(&raw, "vault.example", "rsa", "rsa.pem"));
    assert!(matches!(out, Outcome::Created { .. }), "{out:?}");
    // An unsigned follow-up on it is quarantined too.
    let follow = mail("Ann <ann@vault.example>", "Re: [TKT-000001] x", "more").build();
    assert_eq!(
        code(&arrive(&mut e, follow.as_bytes())),
        "unauthenticated_sender"
    );
}

#[test]
fn a_trusted_source_authenticates_its_mail() {
    let mut e = env_inbound(REGISTRY, "trusted_sources = [\"maildir\"]\n", "");
    customer_request(&mut e);
    let out = arrive(
        &mut e,
        agent_mail("Re: [TKT-000001] x", "#close duplicate").as_bytes(),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "closed");
    // Mail from another source is not.
    let out = e.ingest_from(
        "stdin",
        agent_mail("Re: [TKT-000001] y", "#note x").as_bytes(),
    );
    assert_eq!(code(&out), "unauthenticated_agent");
}

/// Every kind of outbound mail, rendered from its samples and composed with `[outbound.dkim]`,
/// verifies with mail-auth against the published test key; the signature covers the listed
/// headers the message has.
#[test]
fn outbound_dkim_signs_every_kind() {
    for (pem, txt) in [("rsa.pem", "rsa.txt"), ("ed25519.pem", "ed25519.txt")] {
        let e = common::env_with(&format!(
            "[outbound.dkim]\nselector = \"tg\"\ndomain = \"support.example.test\"\nkey_file = \"{}\"\n",
            key(pem).display()
        ));
        let cfg = &e.app.cfg;
        let templates = ticketgate::notify::Templates::load(None).unwrap();
        let checker = Authenticator::new(TrustSettings::default());
        checker
            .add_txt("tg._domainkey.support.example.test", &record(txt))
            .unwrap();
        let refs = vec!["a@client.example".to_string()];
        let cc = vec!["bob@acme.example".to_string()];
        let mut n = 0;
        for kind in ticketgate::notify::Kind::ALL {
            for notice in kind.samples(ticketgate::lang::Lang::En) {
                let (subject, body) = templates.render(&notice, "en").unwrap();
                let c = ticketgate::notify::compose(
                    &cfg.outbound,
                    common::start(),
                    &ticketgate::notify::Outgoing {
                        tag: "TKT-000042",
                        to: "jane@acme.example",
                        to_name: Some("Jane"),
                        from_name: None,
                        subject: &subject,
                        body: &body,
                        in_reply_to: Some("a@client.example"),
                        references: &refs,
                        automatic: ticketgate::notify::Automatic::Replied,
                        attachments: &[],
                        reply_to: Some("support+TKT-000042.0123456789abcdef@support.example.test"),
                        cc: &cc,
                        thread: Some(ticketgate::notify::Thread {
                            topic: "Export fails",
                            index: "AQHZ",
                        }),
                        message_id: None,
                    },
                )
                .unwrap();
                let v = checker.verdict(&c.bytes, "smtp", Some("support@support.example.test"));
                assert!(v.passed(), "{kind} ({pem}): {v:?}");
                assert_eq!(v.method, Some(AuthMethod::Dkim));
                let text = String::from_utf8_lossy(&c.bytes).to_ascii_lowercase();
                let sig = text.split("\r\n\r\n").next().unwrap().replace("\r\n", "");
                let h = sig
                    .split("h=")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .replace([' ', '\t'], "");
                for name in [
                    "from",
                    "to",
                    "subject",
                    "date",
                    "message-id",
                    "in-reply-to",
                    "references",
                    "reply-to",
                ] {
                    assert!(
                        h.split(':').any(|x| x == name),
                        "{kind}: {name} not in h={h}"
                    );
                }
                // Altered after signing, it no longer verifies.
                let mut bad = c.bytes.clone();
                bad.extend_from_slice(b"tampered\r\n");
                assert!(
                    !checker
                        .verdict(&bad, "smtp", Some("support@support.example.test"))
                        .passed()
                );
                n += 1;
            }
        }
        assert!(n >= ticketgate::notify::Kind::ALL.len());
    }
}

/// Mail the pipeline writes (acknowledgement, agent copy, rejection) is signed in the outbox.
#[test]
fn outbox_rows_are_signed() {
    let mut e = env_inbound(
        REGISTRY,
        "",
        &format!(
            "[outbound.dkim]\nselector = \"tg\"\ndomain = \"support.example.test\"\nkey_file = \"{}\"\n",
            key("ed25519.pem").display()
        ),
    );
    customer_request(&mut e);
    arrive(
        &mut e,
        mail("x@nowhere.example", "hi", "no key").build().as_bytes(),
    );
    let checker = Authenticator::new(TrustSettings::default());
    checker
        .add_txt("tg._domainkey.support.example.test", &record("ed25519.txt"))
        .unwrap();
    let rows = e.outbox();
    assert!(rows.len() >= 3, "{rows:?}");
    for r in &rows {
        let body = e.body(r);
        assert!(body.starts_with("DKIM-Signature:"), "{body}");
        let v = checker.verdict(
            body.as_bytes(),
            "smtp",
            Some("support@support.example.test"),
        );
        assert!(v.passed(), "{}: {v:?}", r.kind);
    }
}

#[test]
fn dkim_key_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |file: &str| {
        ticketgate::config::Config::from_toml(
            &format!(
                "[outbound.dkim]\nselector = \"tg\"\ndomain = \"support.example.test\"\nkey_file = \"{file}\"\n"
            ),
            dir.path(),
            ticketgate::config::ConfigSource::EmbeddedDefault,
        )
    };
    for bad in [
        key("rsa1024.pem").display().to_string(),
        key("rsa.txt").display().to_string(),
        "/nonexistent/key.pem".to_string(),
    ] {
        let err = cfg(&bad).unwrap_err();
        assert_eq!(err.key, "outbound.dkim.key_file", "{bad}: {err:?}");
    }
    assert!(cfg(&key("ed25519.pem").display().to_string()).is_ok());
    let err = ticketgate::config::Config::from_toml(
        "[inbound]\nreply_key = \"short\"\n",
        dir.path(),
        ticketgate::config::ConfigSource::EmbeddedDefault,
    )
    .unwrap_err();
    assert_eq!(err.key, "inbound.reply_key");
    let err = ticketgate::config::Config::from_toml(
        "[inbound]\nreply_key_file = \"/nonexistent/reply-key\"\n",
        dir.path(),
        ticketgate::config::ConfigSource::EmbeddedDefault,
    )
    .unwrap_err();
    assert_eq!(err.key, "inbound.reply_key_file");
}

/// A signature of the parent domain counts for a subdomain's From when the DMARC record
/// aligns them (relaxed), and not without that record.
#[test]
fn relaxed_alignment_through_the_dmarc_record() {
    let raw = mail("Jane <jane@eu.acme.example>", "hi", "text").build();
    let signed = sign(&raw, "acme.example", "rsa", "rsa.pem");
    let a = Authenticator::new(TrustSettings::default());
    a.add_txt("rsa._domainkey.acme.example", &record("rsa.txt"))
        .unwrap();
    let v = a.verdict(&signed, "maildir:new/1", Some("jane@eu.acme.example"));
    assert_eq!(
        v.result,
        AuthResult::Fail,
        "no DMARC record: exact domain only: {v:?}"
    );
    a.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject; adkim=r")
        .unwrap();
    let v = a.verdict(&signed, "maildir:new/1", Some("jane@eu.acme.example"));
    assert!(v.passed(), "{v:?}");
    assert!(v.detail.contains("DMARC"), "{v:?}");
    let strict = Authenticator::new(TrustSettings::default());
    strict
        .add_txt("rsa._domainkey.acme.example", &record("rsa.txt"))
        .unwrap();
    strict
        .add_txt("_dmarc.acme.example", "v=DMARC1; p=reject; adkim=s")
        .unwrap();
    let v = strict.verdict(&signed, "maildir:new/1", Some("jane@eu.acme.example"));
    assert!(!v.passed(), "strict alignment: {v:?}");
    // A key nobody fetched: the verification still completes at once (no I/O), as a fail.
    let empty = Authenticator::new(TrustSettings::default());
    let v = empty.verdict(&signed, "maildir:new/1", Some("jane@eu.acme.example"));
    assert_eq!(v.result, AuthResult::Fail, "{v:?}");
    assert!(v.detail.starts_with("dkim="), "{v:?}");
}

/// The cost of a verdict on the parsing thread (printed; run with `--ignored --nocapture`):
/// the figures of ADR 0005.
#[test]
#[ignore]
fn verdict_cost() {
    let a = Authenticator::new(TrustSettings {
        authserv_ids: vec!["mx.support.example.test".into()],
        ..TrustSettings::default()
    });
    a.add_txt("rsa._domainkey.acme.example", &record("rsa.txt"))
        .unwrap();
    a.add_txt("ed._domainkey.acme.example", &record("ed25519.txt"))
        .unwrap();
    let body =
        "ACME-0000-0000-0001\n".to_string() + &"Some text of a support request.\n".repeat(60);
    let raw = mail("Jane <jane@acme.example>", "Export fails", &body).build();
    let cases = [
        ("unsigned", raw.as_bytes().to_vec()),
        ("rsa-2048", sign(&raw, "acme.example", "rsa", "rsa.pem")),
        ("ed25519", sign(&raw, "acme.example", "ed", "ed25519.pem")),
    ];
    for (name, bytes) in cases {
        let n = 2000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(a.verdict(&bytes, "maildir:new/1", Some("jane@acme.example")));
        }
        let per = t.elapsed() / n;
        println!("{name}: {} bytes, {per:?} per verdict", bytes.len());
    }
}

/// The daemon's and `ingest`'s path: DNS is looked up (here: found in the pre-filled cache)
/// before the batch's transaction, and the verdict is the same.
#[test]
fn signed_mail_through_the_intake_path_and_its_prefetch() {
    let mut e = env();
    customer_request(&mut e);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(ticketgate::services::intake::ingest(
            &e.app,
            ticketgate::pipeline::RawMail {
                source: "maildir:new/2.x".into(),
                bytes: signed_agent("Re: [TKT-000001] x", "#close duplicate\n\nDone."),
            },
        ))
        .unwrap();
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "closed");
}

/// What a real SMTP server receives still verifies: the acknowledgement and the agent copy of
/// a new request, sent through Postfix's smtp-sink, checked with mail-auth against the key.
#[tokio::test]
async fn signed_mail_verifies_as_received_over_smtp() {
    let sink = crate::support::smtp_sink::SmtpSink::start(&[]);
    let mut e = env_inbound(
        REGISTRY,
        "",
        &format!(
            "[outbound]\ntransport = \"smtp\"\n\
             [outbound.dkim]\nselector = \"tg\"\ndomain = \"support.example.test\"\nkey_file = \"{}\"\n\
             [outbound.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"10s\"\n",
            key("rsa.pem").display(),
            sink.port
        ),
    );
    customer_request(&mut e);
    e.app.deliver().await.unwrap();
    let got = sink.wait_for(2);
    let checker = Authenticator::new(TrustSettings::default());
    checker
        .add_txt("tg._domainkey.support.example.test", &record("rsa.txt"))
        .unwrap();
    for m in &got {
        // smtp-sink stores lines with LF and its own X- fields on top (not signed).
        let wire = m.replace("\r\n", "\n").replace('\n', "\r\n");
        let v = checker.verdict(
            wire.as_bytes(),
            "smtp",
            Some("support@support.example.test"),
        );
        assert!(v.passed(), "{v:?}\n{m}");
    }
}

/// Under `prefer` an unauthenticated reply still counts as the customer's answer (work
/// resumes), but a survey score needs the reply token like an acceptance.
#[test]
fn under_prefer_an_unauthenticated_reply_resumes_but_cannot_rate() {
    let mut e = env();
    customer_request(&mut e);
    let out = arrive(
        &mut e,
        &signed_agent("Re: [TKT-000001] x", "#status suspended\nWhich version?"),
    );
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
    assert_eq!(e.ticket(1).status, "waiting_on_customer");
    let reply = mail(
        "Jane <jane@acme.example>",
        "Re: [TKT-000001] x",
        "Version 4.2.",
    )
    .build();
    arrive(&mut e, reply.as_bytes());
    assert_eq!(
        e.ticket(1).status,
        "in_progress",
        "an answer resumes the work"
    );

    let reply_to = {
        let out = arrive(
            &mut e,
            &signed_agent("Re: [TKT-000001] x", "#close fixed\nDone."),
        );
        assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");
        let row = e
            .outbox()
            .into_iter()
            .rev()
            .find(|r| r.recipient == "jane@acme.example")
            .unwrap();
        let body = e.body(&row);
        let line = body
            .lines()
            .find(|l| l.starts_with("Reply-To:"))
            .unwrap()
            .to_string();
        let start = line.find("support+").unwrap();
        line[start..line.rfind('>').unwrap()].to_string()
    };
    assert_eq!(e.ticket(1).status, "closed");
    let score = mail("Jane <jane@acme.example>", "Re: [TKT-000001] x", "1").build();
    arrive(&mut e, score.as_bytes());
    assert_eq!(
        e.ticket(1).survey_score,
        None,
        "a forged score is not recorded"
    );
    let score = mail("Jane <jane@acme.example>", "Re: closed", "5")
        .build()
        .replace(
            "To: support@support.example.test",
            &format!("To: {reply_to}"),
        );
    arrive(&mut e, score.as_bytes());
    assert_eq!(e.ticket(1).survey_score, Some(5));
}
