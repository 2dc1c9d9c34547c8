//! Agents' files reach customers (issue 13, item 1): the eXo procedure, where a fix is sent as
//! an attachment of the agent's reply by mail, delivered through the outbox byte for byte
//! (after a restart too: the outbox row holds the whole message); inline images keep their
//! Content-ID; a file over the limits is left out and the agent told; and the same from the
//! command line with `ticket REF reply TEXT --attach FILE`.

use crate::common;

use common::{Env, env_registry};
use mail_parser::{MessageParser, MimeHeaders};
use std::sync::Arc;
use ticketgate::app::App;
use ticketgate::pipeline::Outcome;

const REGISTRY: &str = r#"
agents = ["mike@support.example.test"]

[plans.exo]
profile = "exo"

[[customers]]
id = "exo-cust"
plan = "exo"
allowed_senders = ["@exo.example"]
keys = [{ key = "EXOC-0000-0000-0001" }]
"#;

/// A patch with bytes that survive only an exact transfer: CRLF and LF line ends, a
/// trailing space, non-ASCII, a NUL and no final newline.
fn patch() -> Vec<u8> {
    let mut p =
        b"--- a/export.c\r\n+++ b/export.c\n@@ -1 +1 @@\n-old \n+new \xc3\xa9\x00\xff".to_vec();
    p.extend((0u8..=255).cycle().take(700));
    p
}

fn b64(data: &[u8]) -> String {
    let s = ticketgate::notify::outlook::base64(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The agent's reply from a mail client: text, an inline image (multipart/related, with a
/// Content-ID) and `files` attached.
fn agent_reply(reference: &str, text: &str, files: &[(&str, &[u8])]) -> String {
    let mut m = format!(
        "From: Mike Chen <mike@support.example.test>\r\nTo: support@support.example.test\r\n\
         Subject: Re: [{reference}] Export fails\r\nDate: Fri, 20 Nov 2026 17:00:00 -0600\r\n\
         Message-ID: <agent.{}@support.example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"MIX\"\r\n\r\n\
         --MIX\r\nContent-Type: multipart/related; boundary=\"REL\"\r\n\r\n\
         --REL\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
         --REL\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\
         Content-ID: <shot1@mike.example>\r\nContent-Disposition: inline; filename=\"screenshot.png\"\r\n\r\n{}\r\n\
         --REL--\r\n",
        text.len(),
        b64(b"\x89PNG\r\n\x1a\nfake image bytes"),
    );
    for (name, data) in files {
        m.push_str(&format!(
            "--MIX\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\r\n{}\r\n",
            b64(data)
        ));
    }
    m.push_str("--MIX--\r\n");
    m
}

fn request(e: &mut Env) {
    let out = e.ingest(
        &common::mail(
            "Jane Doe <jane@exo.example>",
            "Export fails",
            "EXOC-0000-0000-0001\nThe export fails with error 500.",
        )
        .build(),
    );
    assert!(matches!(out, Outcome::Created { .. }), "{out:?}");
}

fn deliver(e: &Env) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(e.app.deliver()).unwrap();
}

/// The delivered `.eml` of an outbox row.
fn delivered(e: &Env, id: i64, kind: &str) -> Vec<u8> {
    std::fs::read(e.path("outbox").join(format!("{id:08}-{kind}.eml"))).unwrap()
}

/// (file name, Content-ID, bytes) of each attachment of a delivered mail.
fn files_of(raw: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let m = MessageParser::default().parse(raw).unwrap();
    m.attachments()
        .map(|a| {
            // The transferred bytes, decoded here: a parser would convert a text part's
            // charset, and a customer's client saves the file as transferred.
            let body = &raw[a.raw_body_offset() as usize..a.raw_end_offset() as usize];
            let b64: String = String::from_utf8_lossy(body)
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            assert_eq!(
                a.content_transfer_encoding(),
                Some("base64"),
                "files go base64"
            );
            (
                a.attachment_name().unwrap_or_default().to_string(),
                a.content_id().map(str::to_string),
                ticketgate::notify::outlook::unbase64(&b64).unwrap(),
            )
        })
        .collect()
}

#[test]
fn exo_an_agents_patch_reaches_the_customer_byte_for_byte_even_after_a_restart() {
    let mut e = env_registry(REGISTRY, "");
    request(&mut e);
    let patch = patch();
    let out = e.ingest(&agent_reply(
        "TKT-000001",
        "Hello Jane,\nplease apply the attached patch.",
        &[("fix-export.patch", &patch)],
    ));
    assert!(matches!(out, Outcome::Appended { .. }), "{out:?}");

    // The outbox row holds the whole message: a new process delivers it with the file.
    let cfg = (*e.app.cfg).clone();
    e.app = App::open(cfg, Arc::new(e.clock.clone())).unwrap();
    deliver(&e);
    let reply = e.sent("agent_reply");
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].recipient, "jane@exo.example");
    assert_eq!(reply[0].state, "sent");
    let raw = delivered(&e, reply[0].id, "agent_reply");
    let files = files_of(&raw);
    let file = files
        .iter()
        .find(|f| f.0 == "fix-export.patch")
        .unwrap_or_else(|| panic!("no patch in {}", String::from_utf8_lossy(&raw)));
    assert_eq!(file.2, patch, "the patch arrives byte for byte");
    let image = files.iter().find(|f| f.0 == "screenshot.png").unwrap();
    assert_eq!(
        image.1.as_deref(),
        Some("shot1@mike.example"),
        "Content-ID kept"
    );
    assert_eq!(image.2, b"\x89PNG\r\n\x1a\nfake image bytes");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("multipart/related"), "{text}");
    assert!(text.contains("please apply the attached patch"), "{text}");
    // Nothing was left out, so the agent is told nothing.
    assert!(e.sent("attachments_omitted").is_empty());
    // The files are kept on the agent's article.
    let articles = e.articles(1);
    let agent = articles.iter().find(|a| a.kind == "agent").unwrap();
    let names: Vec<_> = agent
        .attachments
        .iter()
        .map(|a| a.filename.as_str())
        .collect();
    assert_eq!(names, ["screenshot.png", "fix-export.patch"]);
}

#[test]
fn an_attachment_over_the_limit_is_left_out_and_the_agent_told() {
    // Inbound keeps files up to 2KB (common.rs); outbound relays files up to 1KB.
    let mut e = env_registry(
        REGISTRY,
        "[outbound]\nmax_attachment_size = \"1KB\"\nmax_total_attachment_size = \"4KB\"\n",
    );
    request(&mut e);
    let small = b"small fix\n".to_vec();
    let big = vec![b'x'; 1500];
    let huge = vec![b'y'; 3000];
    e.ingest(&agent_reply(
        "TKT-000001",
        "Two files for you.",
        &[
            ("heap.txt", &big),
            ("fix-export.patch", &small),
            ("core.dump", &huge),
        ],
    ));
    deliver(&e);
    let reply = e.sent("agent_reply");
    assert_eq!(reply.len(), 1);
    let files = files_of(&delivered(&e, reply[0].id, "agent_reply"));
    let names: Vec<_> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        ["screenshot.png", "fix-export.patch"],
        "heap.txt left out"
    );

    let told = e.sent("attachments_omitted");
    assert_eq!(told.len(), 1, "the agent is told");
    assert_eq!(told[0].recipient, "mike@support.example.test");
    let text = e.text(&told[0]);
    assert!(
        text.contains("heap.txt (1.5 KB): over outbound.max_attachment_size (1.0 KB)"),
        "{text}"
    );
    // Over inbound.max_attachment_size (2KB here) it was not even kept when received.
    assert!(
        text.contains(
            "core.dump (2.9 KB): not kept when received: over inbound.max_attachment_size (2.0 KB)"
        ),
        "{text}"
    );
    // And the ticket says so, for whoever reads it.
    let articles = e.articles(1);
    assert!(
        articles
            .iter()
            .any(|a| a.kind == "note" && a.author == "system" && a.body.contains("heap.txt")),
        "{articles:?}"
    );
}

#[test]
fn files_with_a_command_and_no_text_are_relayed_and_kept() {
    let mut e = env_registry(REGISTRY, "");
    request(&mut e);
    let patch = patch();
    e.ingest(&agent_reply(
        "TKT-000001",
        "#resolve patch",
        &[("fix-export.patch", &patch)],
    ));
    assert_eq!(e.ticket(1).status, "resolved");
    deliver(&e);
    let resolution = e.sent("resolution");
    let files = files_of(&delivered(&e, resolution[0].id, "resolution"));
    assert!(
        files
            .iter()
            .any(|f| f.0 == "fix-export.patch" && f.2 == patch)
    );
    let articles = e.articles(1);
    let agent = articles.iter().find(|a| a.kind == "agent").unwrap();
    assert!(
        agent
            .attachments
            .iter()
            .any(|a| a.filename == "fix-export.patch")
    );
}

#[test]
fn files_past_the_total_are_left_out() {
    let mut e = env_registry(
        REGISTRY,
        "[outbound]\nmax_attachment_size = \"1KB\"\nmax_total_attachment_size = \"1KB\"\n",
    );
    request(&mut e);
    // The inline image (26 bytes) and the first file fit; the second one does not.
    e.ingest(&agent_reply(
        "TKT-000001",
        "Logs.",
        &[("a.log", &[b'a'; 900]), ("b.log", &[b'b'; 200])],
    ));
    deliver(&e);
    let reply = e.sent("agent_reply");
    let names: Vec<_> = files_of(&delivered(&e, reply[0].id, "agent_reply"))
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(names, ["screenshot.png", "a.log"]);
    let told = e.sent("attachments_omitted");
    let told = e.text(&told[0]);
    assert!(
        told.contains("b.log (200 B): with the files before it, over outbound.max_total_attachment_size (1.0 KB)"),
        "{told}"
    );
}

#[test]
fn the_command_line_attaches_files_to_a_reply() {
    let mut e = env_registry(REGISTRY, "[outbound]\nmax_attachment_size = \"1KB\"\n");
    request(&mut e);
    let patch = patch();
    std::fs::write(e.path("fix-export.patch"), &patch[..700]).unwrap();
    std::fs::write(e.path("big.bin"), vec![0u8; 3000]).unwrap();
    let files = ticketgate::services::tickets::read_attachments(&[
        e.path("fix-export.patch"),
        e.path("big.bin"),
    ])
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let done = rt
        .block_on(ticketgate::services::tickets::act_with(
            &e.app,
            "TKT-000001",
            "cli",
            &ticketgate::services::tickets::AgentAction::Reply(
                "please apply the attached patch".into(),
            ),
            files,
        ))
        .unwrap();
    assert_eq!(done.omitted.len(), 1, "{:?}", done.omitted);
    assert!(
        done.omitted[0].starts_with("big.bin (2.9 KB)"),
        "{:?}",
        done.omitted
    );
    rt.block_on(e.app.deliver()).unwrap();
    let reply = e.sent("agent_reply");
    let files = files_of(&delivered(&e, reply[0].id, "agent_reply"));
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "fix-export.patch");
    assert_eq!(files[0].2, &patch[..700]);
}

/// The command line as an agent types it: `ticket REF reply TEXT --attach FILE…`,
/// `ticket REF watchers add|remove|list`, and `tickets show --json` listing the watchers.
#[test]
fn the_ticketgate_command_replies_with_files_and_manages_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("customers.toml"), REGISTRY).unwrap();
    let (url, _db) = common::database_url(d);
    std::fs::write(
        d.join("ticketgate.toml"),
        format!(
            "[database]\nurl = \"{url}\"\n[outbound]\ndir = \"outbox\"\nmax_attachment_size = \"1KB\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("m.eml"),
        common::mail(
            "jane@exo.example",
            "Export fails",
            "EXOC-0000-0000-0001\nError 500.",
        )
        .header("Cc: bob@exo.example")
        .build(),
    )
    .unwrap();
    let tg = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .args(args)
            .current_dir(d)
            .env_remove("RUST_LOG")
            .env_remove("TICKETGATE_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    tg(&["ingest", "m.eml"]);
    let patch = patch();
    std::fs::write(d.join("fix-export.patch"), &patch[..600]).unwrap();
    std::fs::write(d.join("big.log"), vec![b'x'; 2000]).unwrap();
    let out = tg(&[
        "ticket",
        "TKT-000001",
        "reply",
        "please apply the attached patch",
        "--attach",
        "fix-export.patch",
        "big.log",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not sent to the customer: big.log (2.0 KB)"),
        "{err}"
    );
    tg(&[
        "ticket",
        "TKT-000001",
        "watchers",
        "add",
        "carol@exo.example",
    ]);
    tg(&[
        "ticket",
        "TKT-000001",
        "watchers",
        "remove",
        "bob@exo.example",
    ]);
    let list: serde_json::Value =
        serde_json::from_slice(&tg(&["ticket", "TKT-000001", "watchers", "list", "--json"]).stdout)
            .unwrap();
    assert_eq!(list[0]["address"], "carol@exo.example");
    assert_eq!(list.as_array().unwrap().len(), 1);
    let show: serde_json::Value =
        serde_json::from_slice(&tg(&["tickets", "show", "TKT-000001", "--json"]).stdout).unwrap();
    assert_eq!(show["watchers"], list);
    // The customer's mail, delivered by the command with the patch and Bob (then a
    // watcher) in Cc.
    let reply = std::fs::read_dir(d.join("outbox"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-agent_reply.eml"))
        .map(|p| std::fs::read(p).unwrap())
        .find(|raw| String::from_utf8_lossy(raw).contains("fix-export.patch"))
        .expect("the agent's reply was delivered");
    let files = files_of(&reply);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].2, &patch[..600]);
}
