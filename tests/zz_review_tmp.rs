mod common;
use common::env;
use ticketgate::pipeline::RawMail;

fn run(raw: &[u8]) -> String {
    let mut e = env();
    let r = e.app.ingest(RawMail {
        source: "t".into(),
        bytes: raw.to_vec(),
    });
    format!("{r:?}")
}

#[test]
fn zz_nul_cases() {
    let body_qp = b"From: Jane <jane@acme.example>\r\nTo: support@example.test\r\nSubject: Sev2: x\r\nMessage-ID: <q1@acme.example>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nSupport-Key: ACME-0000-0000-0001\r\nIt=00fails.\r\n";
    println!("BODY_QP_NUL: {}", run(body_qp));
    let mid = b"From: Jane <jane@acme.example>\r\nTo: support@example.test\r\nSubject: Sev2: x\r\nMessage-ID: <q\x002@acme.example>\r\n\r\nSupport-Key: ACME-0000-0000-0001\r\nIt fails.\r\n";
    println!("MID_NUL: {}", run(mid));
    let from = b"From: Jane <ja\x00ne@acme.example>\r\nTo: support@example.test\r\nSubject: Sev2: x\r\nMessage-ID: <q3@acme.example>\r\n\r\nSupport-Key: ACME-0000-0000-0001\r\nIt fails.\r\n";
    println!("FROM_NUL: {}", run(from));
    let from2 = b"From: =?utf-8?q?Ja=00ne?= <jane@acme.example>\r\nTo: support@example.test\r\nSubject: Sev2: x\r\nMessage-ID: <q4@acme.example>\r\n\r\nSupport-Key: ACME-0000-0000-0001\r\nIt fails.\r\n";
    println!("FROMNAME_NUL: {}", run(from2));
    let ref_nul = b"From: Jane <jane@acme.example>\r\nTo: support@example.test\r\nSubject: Re: x\r\nMessage-ID: <q5@acme.example>\r\nIn-Reply-To: <a\x00b@x>\r\nReferences: <a\x00b@x>\r\n\r\nSupport-Key: ACME-0000-0000-0001\r\nIt fails.\r\n";
    println!("INREPLYTO_NUL: {}", run(ref_nul));
}
