//! Golden parser tests: every `tests/fixtures/mail/NAME.eml`, written the way a real client
//! writes, has `NAME.expected.json` beside it with what the parser must read from it. A
//! mismatch writes `NAME.failed.json` to compare; `BLESS=1 cargo test --test golden` rewrites
//! the expectations (review the diff before committing it).

use serde_json::json;
use std::path::Path;
use ticketgate::config::Config;
use ticketgate::parse::{self, Limits, Patterns};

fn summary(raw: &[u8]) -> serde_json::Value {
    let cfg = Config::embedded_default().unwrap();
    let patterns = Patterns::new(
        cfg.tickets.key_pattern.clone(),
        &cfg.tickets.reference_prefix,
    );
    match parse::parse(
        raw,
        &patterns,
        Limits {
            max_attachment_bytes: 4096,
        },
    ) {
        Err(f) => json!({ "failure": f.reason, "code": f.code }),
        Ok(m) => json!({
            "message_id": m.message_id,
            "has_content_key": m.dedup_key.starts_with("sha256:"),
            "in_reply_to": m.in_reply_to,
            "references": m.references,
            "from": m.from,
            "from_name": m.from_name,
            "subject": m.subject,
            "date": m.date,
            "text": m.text,
            "quoted_starts": m.quoted.lines().next().unwrap_or(""),
            "quoted_lines": m.quoted.lines().count(),
            "attachments": m.attachments.iter().map(|a| json!({
                "filename": a.filename, "content_type": a.content_type, "size": a.size, "kept": a.data.is_some()
            })).collect::<Vec<_>>(),
            "auto": {
                "auto_submitted": m.auto.auto_submitted,
                "precedence": m.auto.precedence,
                "list": m.auto.list,
                "suppress": m.auto.suppress,
                "null_sender": m.auto.null_sender,
            },
            "key_candidates": m.key_candidates,
            "subject_refs": m.subject_refs,
            "body_refs": m.body_refs,
            "severity": m.severity.map(|s| json!({ "level": s.level, "as_written": s.as_written })),
        }),
    }
}

#[test]
fn fixtures_parse_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let bless = std::env::var_os("BLESS").is_some();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures missing in {}", dir.display());
    let mut failed = Vec::new();
    for eml in names {
        let got = summary(&std::fs::read(&eml).unwrap());
        let expected_path = eml.with_extension("expected.json");
        let failed_path = eml.with_extension("failed.json");
        let pretty = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if bless {
            std::fs::write(&expected_path, &pretty).unwrap();
            continue;
        }
        let expected: serde_json::Value = match std::fs::read_to_string(&expected_path) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => serde_json::Value::Null,
        };
        if expected == got {
            let _ = std::fs::remove_file(&failed_path);
        } else {
            std::fs::write(&failed_path, &pretty).unwrap();
            failed.push(eml.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(
        failed.is_empty(),
        "golden mismatch (see *.failed.json): {failed:?}"
    );
}

/// The facts the fixtures were written to carry, asserted directly, so that a bad blessing
/// cannot hide a regression in what matters most.
#[test]
fn fixtures_key_facts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let get = |name: &str| summary(&std::fs::read(dir.join(name)).unwrap());

    let o = get("outlook_new.eml");
    assert_eq!(o["key_candidates"], json!(["ACME-7Q2M-4KX9-0001"]));
    assert_eq!(o["severity"]["level"], 1);

    let g = get("gmail_reply.eml");
    assert_eq!(
        g["in_reply_to"],
        json!(["tg.TKT-000042.abc123@support.example.test"])
    );
    assert_eq!(g["subject_refs"], json!([42]));
    assert!(
        g["quoted_starts"]
            .as_str()
            .unwrap()
            .starts_with("On Sun, 22 Nov 2026")
    );
    assert_eq!(
        g["severity"],
        serde_json::Value::Null,
        "severity in quoted history must not count"
    );

    let a = get("apple_mail_reply.eml");
    assert_eq!(a["severity"], serde_json::Value::Null);
    assert!(a["quoted_lines"].as_u64().unwrap() > 0);

    let t = get("thunderbird_reply.eml");
    assert_eq!(t["from_name"], "Hans Müller");
    assert_eq!(t["references"].as_array().unwrap().len(), 2);

    let r = get("outlook_reply.eml");
    assert_eq!(
        r["severity"],
        serde_json::Value::Null,
        "High is only in the quoted part"
    );
    assert_eq!(r["subject_refs"], json!([61]));

    let f = get("french_iso8859.eml");
    assert_eq!(
        f["subject"],
        "Re: [TKT-000077] Échec de la synchronisation des données"
    );
    assert_eq!(f["from_name"], "Julien Lefèvre");
    assert_eq!(f["severity"]["level"], 1);
    assert_eq!(f["key_candidates"], json!(["INIT-5FJ3-9WQA-0003"]));
    assert!(
        f["quoted_starts"]
            .as_str()
            .unwrap()
            .starts_with("Le 22 nov. 2026")
    );

    let h = get("html_only.eml");
    let text = h["text"].as_str().unwrap();
    assert!(
        text.contains("é") && !text.contains("&eacute;") && !text.contains("<br"),
        "{text}"
    );
    assert_eq!(h["severity"]["level"], 3);

    let at = get("attachment.eml");
    let names: Vec<_> = at["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"invoice-2026.pdf".to_string()), "{names:?}");

    let w = get("windows1252_no_msgid.eml");
    assert_eq!(w["has_content_key"], true);
    assert!(w["text"].as_str().unwrap().contains('€'));

    let b = get("bounce.eml");
    assert_eq!(b["auto"]["null_sender"], true);

    let l = get("mailing_list.eml");
    assert_eq!(l["auto"]["list"], true);
    assert_eq!(l["auto"]["precedence"], "list");

    let m = get("malformed_mime.eml");
    assert!(
        m.get("failure").is_none(),
        "malformed MIME still yields the readable text part"
    );
    assert_eq!(m["key_candidates"], json!(["ACME-7Q2M-4KX9-0001"]));

    // Declared multipart, boundary never there: the text is not readable as a part, but the
    // key written in it is still found (not answered "no support key").
    let bm = get("broken_mime_key.eml");
    assert_eq!(bm["key_candidates"], json!(["ACME-7Q2M-4KX9-0001"]));

    // Text with no header section and binary noise are not mail at all.
    for name in ["not_a_mail_text.eml", "not_a_mail_binary.eml"] {
        assert_eq!(get(name)["code"], "not_a_mail", "{name}");
    }

    // A subject is read whole, however long (folded over three lines here).
    let ls = get("long_subject.eml");
    let subject = ls["subject"].as_str().unwrap();
    assert!(
        subject.len() > 300
            && subject.starts_with("Export of the quarterly")
            && subject.ends_with("see details below"),
        "{subject}"
    );

    // RFC 2231 continuations in ISO-2022-JP, split inside a JIS run: the encoded pieces are
    // joined before the charset is decoded, as Python's email package does
    // (`Message.get_filename()` gives this name).
    let jp = get("iso2022jp_rfc2231_filename.eml");
    assert_eq!(jp["attachments"][0]["filename"], "日本語の報告書.txt");
}
