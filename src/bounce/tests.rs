use super::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bounces")
}

/// Sisimai's verdict per file: hard when any of its recipients is a hard bounce.
fn expected() -> BTreeMap<String, bool> {
    let tsv = std::fs::read_to_string(corpus().join("expected.tsv")).expect("expected.tsv");
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let hard = cols.get(5) == Some(&"true");
        *out.entry(cols[0].to_string()).or_default() |= hard;
    }
    out
}

/// Our verdict: hard when a bounce with a hard failure; soft for a soft bounce or for mail
/// that is not a bounce (Sisimai's `feedback`, `vacation`… are not hard either).
fn ours(raw: &[u8]) -> bool {
    analyze(raw).is_some_and(|b| b.verdict() == Verdict::Hard)
}

#[test]
fn hard_soft_verdicts_agree_with_sisimai_on_95_percent_of_the_corpus() {
    let expected = expected();
    assert!(expected.len() > 500, "{} files", expected.len());
    let mut differ = Vec::new();
    for (file, hard) in &expected {
        let raw = std::fs::read(corpus().join(file)).expect(file);
        let got = ours(&raw);
        if got != *hard {
            differ.push(format!(
                "{file}: sisimai {} ours {} ({:?})",
                if *hard { "hard" } else { "soft" },
                if got { "hard" } else { "soft" },
                analyze(&raw).map(|b| b
                    .recipients
                    .iter()
                    .map(|r| format!("{} {:?} {}", r.address, r.status, r.reason))
                    .collect::<Vec<_>>())
            ));
        }
    }
    let agree = expected.len() - differ.len();
    let pct = agree as f64 * 100.0 / expected.len() as f64;
    eprintln!(
        "agreement: {agree}/{} = {pct:.2}%\n{}",
        expected.len(),
        differ.join("\n")
    );
    assert!(pct >= 95.0, "agreement {pct:.2}% is under 95%");
}

#[test]
fn every_corpus_file_with_a_hard_bounce_is_recognised_as_a_bounce() {
    let mut missed = Vec::new();
    for (file, hard) in expected() {
        let raw = std::fs::read(corpus().join(&file)).expect(&file);
        if hard && analyze(&raw).is_none() {
            missed.push(file);
        }
    }
    assert!(missed.len() <= 3, "not recognised: {missed:?}");
}

#[test]
fn person_mail_is_not_a_bounce() {
    for f in ["is-not-bounce-01.eml", "is-not-bounce-02.eml"] {
        let raw = std::fs::read(corpus().join(f)).unwrap();
        assert_eq!(analyze(&raw), None, "{f}");
    }
    let raw = b"From: jane@customer.example\r\nTo: support@example.com\r\nSubject: our mail is undeliverable since Monday\r\n\r\nHello, mail to bob@customer.example does not exist anymore? Please help.\r\n";
    assert_eq!(analyze(raw), None);
    // A customer forwarding a notice to us asks for help.
    let fwd = b"From: jane@customer.example\r\nTo: support@example.com\r\nSubject: Fwd: Undelivered Mail Returned to Sender\r\n\r\nWhy does this fail?\r\n\r\n---------- Forwarded message ---------\r\nFrom: MAILER-DAEMON@mx.customer.example\r\n\r\nThis is the mail system at host mx.customer.example.\r\n<bob@partner.example>: host mx.partner.example said: 550 5.1.1 User unknown\r\n";
    assert_eq!(analyze(fwd), None);
}

#[test]
fn an_rfc3464_report_is_read_per_recipient() {
    let raw = b"From: MAILER-DAEMON@mx.example\r\nTo: bounces+7.abc@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nI could not deliver.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; <Gone@Customer.example>\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@customer.example>: Recipient address\r\n rejected: User unknown in local recipient table\r\n\r\nFinal-Recipient: rfc822; full@customer.example\r\nAction: failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\r\nFinal-Recipient: rfc822; ok@customer.example\r\nAction: delivered\r\nStatus: 2.0.0\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <tg.TKT-000001.x@example.com>\r\nSubject: hi\r\n--B--\r\n";
    let b = analyze(raw).expect("a bounce");
    assert_eq!(b.shape, Shape::Dsn);
    assert_eq!(b.recipients.len(), 2, "{b:?}");
    assert_eq!(b.recipients[0].address, "gone@customer.example");
    assert_eq!(b.recipients[0].status.as_deref(), Some("5.1.1"));
    assert_eq!(b.recipients[0].reason, "user_unknown");
    assert_eq!(b.recipients[0].verdict, Verdict::Hard);
    assert!(
        b.recipients[0]
            .diagnostic
            .contains("User unknown in local recipient table")
    );
    assert_eq!(b.recipients[1].reason, "mailbox_full");
    assert_eq!(b.recipients[1].verdict, Verdict::Soft);
    assert_eq!(b.verdict(), Verdict::Hard);
    assert_eq!(
        b.original_message_id.as_deref(),
        Some("tg.TKT-000001.x@example.com")
    );
}

#[test]
fn a_qmail_notice_is_read() {
    let raw = std::fs::read(corpus().join("lhost-qmail-01.eml")).unwrap();
    let b = analyze(&raw).expect("a bounce");
    assert_eq!(b.shape, Shape::Text);
    assert_eq!(b.recipients[0].address, "kijitora@example.ne.jp");
    assert_eq!(b.recipients[0].verdict, Verdict::Hard);
}

#[test]
fn garbage_never_panics() {
    for raw in [&b""[..], b"\0\0\0", b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: \xff\r\n--x"] {
        let _ = analyze(raw);
    }
}
