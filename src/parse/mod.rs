//! Raw bytes → [`InboundMail`]. This module never panics and never fails: a message that
//! mail-parser cannot read, or that makes it panic, becomes a [`ParseFailure`] with the reason,
//! which the pipeline quarantines.

mod extract;
mod html;
pub mod limits;
mod params;
mod quote;

pub use extract::{Patterns, StatedSeverity};
pub use quote::split_quoted;

/// HTML to text keeping block structure (the bounce reader uses it for HTML notices).
pub fn html_to_text(html: &str) -> String {
    html::to_text(html)
}

use chrono::{DateTime, Utc};
use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// One inbound message, read and reduced to what routing needs. Owned: it outlives the raw
/// buffer's parse.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMail {
    /// `mid:<Message-ID>`, or `sha256:<hex of the raw bytes>` when there is no Message-ID.
    pub dedup_key: String,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Lower-case sender address (`From:`), if there is one that looks like an address.
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// The new text of the message (the text part, or HTML converted to text).
    pub text: String,
    /// Quoted history of earlier messages, separated from `text`.
    pub quoted: String,
    pub attachments: Vec<Attachment>,
    pub auto: AutoSignals,
    /// Support-key candidates in the order they appear (subject, then new text).
    pub key_candidates: Vec<String>,
    /// Ticket numbers named by a subject tag, then by the new text.
    pub subject_refs: Vec<u64>,
    pub body_refs: Vec<u64>,
    pub severity: Option<StatedSeverity>,
    /// `incident`, `hosting_incident`, `query`, `bug` or `task` when the mail states one.
    pub issue_type: Option<&'static str>,
    /// Lower-case addresses in `Cc` (groups flattened), in order, without repeats.
    pub cc: Vec<String>,
    /// Outlook's `Thread-Index` as written (base64), when it looks like one.
    pub thread_index: Option<String>,
    /// The `+detail` parts (lower case) of the recipient addresses (To, Cc, Delivered-To,
    /// X-Original-To, Envelope-To): reply tokens such as `tkt-000123.sig` (see `auth::token`).
    pub plus_tags: Vec<String>,
    /// The recipient addresses (To, Cc, Delivered-To, X-Original-To, Envelope-To), lower
    /// case, at most 16, without repeats: which of our addresses (a list's) it was written to.
    pub recipients: Vec<String>,
    /// Who really sent it: set by the pipeline after parsing (see `auth`); the default
    /// (`none`) until then.
    pub auth: crate::auth::Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub size: usize,
    /// `None` when the attachment was larger than the configured limit and was not kept.
    pub data: Option<Vec<u8>>,
    /// The part's `Content-ID` without brackets (an inline image an HTML body refers to as
    /// `cid:…`); only the characters of a msg-id are kept.
    pub content_id: Option<String>,
    /// `Content-Disposition: inline` with a Content-ID: shown in the body, not as a file.
    pub inline: bool,
}

/// The headers that tell an automatic or list message from a person's (RFC 3834 and practice).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoSignals {
    /// Value of `Auto-Submitted` when present and not `no`.
    pub auto_submitted: Option<String>,
    /// `Precedence: bulk | junk | list`.
    pub precedence: Option<String>,
    /// `List-Id` or `List-Unsubscribe` present.
    pub list: bool,
    /// `X-Auto-Response-Suppress` with `All` or `OOF`.
    pub suppress: bool,
    /// `Return-Path: <>`.
    pub null_sender: bool,
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseFailure {
    pub dedup_key: String,
    /// Stable code for scripts, the quarantine's reason code.
    pub code: &'static str,
    pub reason: String,
}

/// Limits applied while reading.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_attachment_bytes: usize,
}

/// Reads one raw message. Never panics.
pub fn parse(raw: &[u8], patterns: &Patterns, limits: Limits) -> Result<InboundMail, ParseFailure> {
    match catch_unwind(AssertUnwindSafe(|| parse_inner(raw, patterns, limits))) {
        Ok(r) => r,
        Err(_) => Err(ParseFailure {
            dedup_key: content_key(raw),
            code: "unparseable",
            reason: "the MIME parser failed on this message (internal panic caught); it is kept for replay".into(),
        }),
    }
}

/// The de-duplication key of a message with no usable Message-ID.
pub fn content_key(raw: &[u8]) -> String {
    let digest = Sha256::digest(raw);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest {
        let _ = write!(s, "{b:02x}"); // writing to a String cannot fail
    }
    s
}

fn parse_inner(
    raw: &[u8],
    patterns: &Patterns,
    limits: Limits,
) -> Result<InboundMail, ParseFailure> {
    let not_a_mail = |why: &str| ParseFailure {
        dedup_key: content_key(raw),
        code: "not_a_mail",
        reason: format!("not a mail message: {why}"),
    };
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Err(not_a_mail("no header section could be read"));
    };
    if msg.headers().is_empty() {
        return Err(not_a_mail("no header fields"));
    }
    // Text or binary data whose first lines happen to read as header fields (`Note: …`) is
    // not a mail: a mail has at least one of the fields every mail client writes.
    if !msg
        .headers()
        .iter()
        .any(|h| MAIL_FIELDS.iter().any(|f| h.name().eq_ignore_ascii_case(f)))
    {
        return Err(not_a_mail(
            "none of the header fields of a mail (From, To, Subject, Date, Message-ID…)",
        ));
    }

    let message_id = msg
        .message_id()
        .map(clean_id)
        .filter(|id| !id.is_empty() && id.len() <= 998);
    let dedup_key = match &message_id {
        Some(id) => format!("mid:{id}"),
        None => content_key(raw),
    };
    let (from, from_name) = match msg.from().and_then(|a| a.first()) {
        Some(addr) => (
            addr.address
                .as_deref()
                .map(|a| a.trim().to_ascii_lowercase())
                .filter(|a| {
                    a.contains('@') && !a.contains(|c: char| c.is_whitespace() || c.is_control())
                }),
            addr.name.as_deref().map(one_line).filter(|n| !n.is_empty()),
        ),
        None => (None, None),
    };
    // Stored whole: only what is shown (and our own headers) is shortened.
    let subject = fold_line(msg.subject().unwrap_or(""));
    let date = msg
        .date()
        .and_then(|d| DateTime::parse_from_rfc3339(&d.to_rfc3339()).ok())
        .map(|d| d.with_timezone(&Utc));

    // HTML alone is converted by our own converter, which keeps block structure as lines.
    let body = match msg.text_part(0) {
        Some(part) if part.is_text_html() => {
            html::to_text(part.text_contents().unwrap_or_default())
        }
        Some(part) => {
            let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
            let ct = part.content_type();
            let flowed = ct
                .and_then(|c| c.attribute("format"))
                .is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
            if flowed {
                let delsp = ct
                    .and_then(|c| c.attribute("delsp"))
                    .is_some_and(|d| d.eq_ignore_ascii_case("yes"));
                unflow(&text, delsp)
            } else {
                text
            }
        }
        None => String::new(),
    };
    // NUL is kept out of stored text (PostgreSQL refuses it; nobody writes it on purpose).
    let body = body.replace("\r\n", "\n").replace('\0', "\u{FFFD}");
    let (text, quoted) = split_quoted(&body);

    let attachments = msg
        .attachments()
        .map(|part| {
            let contents = part.contents();
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase()
                .replace(|c: char| c.is_control(), "");
            Attachment {
                filename: continued_filename(raw, part)
                    .or_else(|| part.attachment_name().map(one_line))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "attachment".into()),
                content_type,
                size: contents.len(),
                data: (contents.len() <= limits.max_attachment_bytes).then(|| contents.to_vec()),
                content_id: part.content_id().map(clean_id).filter(|id| {
                    !id.is_empty()
                        && id.len() <= 250
                        && id
                            .chars()
                            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\'))
                }),
                inline: part
                    .content_disposition()
                    .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline")),
            }
        })
        .collect();

    let auto = AutoSignals {
        auto_submitted: msg
            .header_raw("Auto-Submitted")
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && !v.starts_with("no")),
        precedence: msg
            .header_raw("Precedence")
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| matches!(v.as_str(), "bulk" | "junk" | "list")),
        list: msg.header_raw("List-Id").is_some() || msg.header_raw("List-Unsubscribe").is_some(),
        suppress: msg.header_raw("X-Auto-Response-Suppress").is_some_and(|v| {
            v.split(',')
                .any(|t| matches!(t.trim().to_ascii_lowercase().as_str(), "all" | "oof"))
        }),
        null_sender: msg.header_raw("Return-Path").is_some_and(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .is_empty()
        }),
    };

    let mut key_candidates = patterns.key_candidates(&subject, &text);
    if key_candidates.is_empty() && text.trim().is_empty() {
        // No text could be read from the MIME structure (a multipart whose boundary never
        // comes, a text part whose encoding is broken): a key written in the raw body still
        // counts, rather than telling the sender they gave none.
        key_candidates = patterns.key_candidates("", &raw_body_text(raw));
    }
    let subject_refs = patterns.subject_refs(&subject);
    let body_refs = patterns.body_refs(&text);
    let severity = patterns.severity(&subject, &text);
    let issue_type = patterns.issue_type(&text);

    Ok(InboundMail {
        dedup_key,
        message_id,
        in_reply_to: id_list(msg.in_reply_to()),
        references: id_list(msg.references()),
        from,
        from_name,
        subject,
        date,
        text,
        quoted,
        attachments,
        auto,
        key_candidates,
        subject_refs,
        body_refs,
        severity,
        issue_type,
        cc: cc_addresses(&msg),
        thread_index: msg
            .header_raw("Thread-Index")
            .map(|v| v.split_whitespace().collect::<String>())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 512
                    && v.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
            }),
        plus_tags: plus_tags(&msg),
        recipients: recipients(&msg),
        auth: crate::auth::Verdict::default(),
    })
}

/// The addresses of the `Cc` field, lower-case, each once; what does not look like an
/// address is left out.
fn cc_addresses(msg: &mail_parser::Message<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(cc) = msg.cc() {
        for a in cc.iter() {
            let Some(addr) = a.address.as_deref() else {
                continue;
            };
            let addr = addr.trim().to_ascii_lowercase();
            if addr.contains('@')
                && !addr.contains(|c: char| c.is_whitespace() || c.is_control())
                && !out.contains(&addr)
            {
                out.push(addr);
            }
        }
    }
    out
}

/// The `+detail` of every recipient address, at most 16, without repeats.
fn plus_tags(msg: &mail_parser::Message<'_>) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    each_recipient(msg, |address: &str| {
        if let Some(t) = crate::auth::token::plus_detail(address)
            && t.len() <= 128
            && !t.contains(|c: char| c.is_control() || c.is_whitespace())
            && !tags.contains(&t)
            && tags.len() < 16
        {
            tags.push(t);
        }
    });
    tags
}

/// Every recipient address, lower case, at most 16, without repeats.
fn recipients(msg: &mail_parser::Message<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    each_recipient(msg, |address: &str| {
        let a = address.to_ascii_lowercase();
        if a.contains('@')
            && a.len() <= 254
            && !a.contains(|c: char| c.is_control() || c.is_whitespace())
            && !out.contains(&a)
            && out.len() < 16
        {
            out.push(a);
        }
    });
    out
}

/// Calls `add` with each address of the recipient fields, trimmed of `<>`.
fn each_recipient(msg: &mail_parser::Message<'_>, mut add: impl FnMut(&str)) {
    const FIELDS: &[&str] = &["To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"];
    let mut add = |address: &str| {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        if !address.is_empty() {
            add(address);
        }
    };
    for h in msg.headers() {
        if !FIELDS.iter().any(|f| h.name().eq_ignore_ascii_case(f)) {
            continue;
        }
        match h.value() {
            HeaderValue::Address(a) => {
                for addr in a.iter() {
                    if let Some(x) = addr.address.as_deref() {
                        add(x);
                    }
                }
            }
            HeaderValue::Text(t) => t.split([',', ' ', ';']).for_each(&mut add),
            _ => {}
        }
    }
}

/// Header fields at least one of which every mail has; data with none of them is not a mail.
const MAIL_FIELDS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Received",
    "Return-Path",
    "Delivered-To",
    "MIME-Version",
    "Content-Type",
];

/// The body section of a raw mail (after the first empty line) as text, for a best-effort
/// look when the MIME structure could not be read. At most 1 MB is looked at.
fn raw_body_text(raw: &[u8]) -> String {
    let start = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(raw.len());
    let body = &raw[start..raw.len().min(start.saturating_add(1024 * 1024))];
    String::from_utf8_lossy(body).replace("\r\n", "\n")
}

/// An attachment name written as RFC 2231 continuations (`filename*0*=…; filename*1*=…`),
/// decoded whole (see [`params::continued_param`]); `None` when it is not written so.
fn continued_filename(raw: &[u8], part: &mail_parser::MessagePart<'_>) -> Option<String> {
    for (field, param) in [
        ("Content-Disposition", "filename"),
        ("Content-Type", "name"),
    ] {
        let Some(h) = part
            .headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(field))
        else {
            continue;
        };
        let Some(value) = raw.get(h.offset_start() as usize..h.offset_end() as usize) else {
            continue;
        };
        if let Some(name) = params::continued_param(value, param) {
            return Some(one_line(name.trim()));
        }
    }
    None
}

/// Joins the soft line breaks of `format=flowed` text (RFC 3676): a line that ends in a space
/// continues on the next one. Quoted lines keep their `>` depth; the signature separator
/// `-- ` stays a line of its own.
pub fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open = false; // the previous line was soft-broken
    for raw in text.replace("\r\n", "\n").split('\n') {
        let depth = raw.chars().take_while(|c| *c == '>').count();
        let mut line = &raw[depth..];
        if let Some(stripped) = line.strip_prefix(' ') {
            line = stripped; // space-stuffing
        }
        if !open {
            out.extend(std::iter::repeat_n('>', depth));
            if depth > 0 {
                out.push(' ');
            }
        }
        let soft = line.ends_with(' ') && line != "-- ";
        if soft {
            out.push_str(if delsp { &line[..line.len() - 1] } else { line });
        } else {
            out.push_str(line);
            out.push('\n');
        }
        open = soft;
    }
    out.trim_end_matches('\n').to_string()
}

/// A Message-ID without its angle brackets and without control characters (a NUL byte, which
/// PostgreSQL refuses in text, must not make a mail unstorable).
fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<String> = match v {
        HeaderValue::Text(t) => vec![clean_id(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    };
    ids.into_iter()
        .filter(|i| !i.is_empty() && i.len() <= 998)
        .collect()
}

/// One line of text: control characters (CR, LF, tabs…) become spaces, runs of white space
/// fold, and the result is at most 250 bytes. Anything a sender writes passes through this
/// before it can reach a header of ours.
pub fn one_line(s: &str) -> String {
    fold(s, 250)
}

/// [`one_line`] without the length limit: what is stored (a subject) is kept whole.
pub fn fold_line(s: &str) -> String {
    fold(s, usize::MAX)
}

fn fold(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max.saturating_add(4)));
    let mut space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        if out.len() >= max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns() -> Patterns {
        Patterns::new(
            regex::Regex::new(crate::config::DEFAULT_KEY_PATTERN).unwrap(),
            "TKT",
        )
    }

    const LIMITS: Limits = Limits {
        max_attachment_bytes: 1024,
    };

    #[test]
    fn garbage_is_a_clear_failure_not_a_panic() {
        for raw in [
            &b""[..],
            b"\x00\x01\x02",
            b"\r\n\r\n",
            &[0xff; 64],
            b"Hello,\nplease help.\n",
            b"Note: call me\nSupport-Key: ACME-0000-0000-0001\n",
        ] {
            let f = parse(raw, &patterns(), LIMITS).expect_err(&format!("{raw:?}"));
            assert!(f.dedup_key.starts_with("sha256:"));
            assert_eq!(f.code, "not_a_mail", "{raw:?}");
            assert!(f.reason.starts_with("not a mail message"), "{}", f.reason);
        }
    }

    #[test]
    fn subjects_are_read_whole() {
        let long = "word ".repeat(200);
        let raw = format!("From: a@b.example\r\nSubject: {long}\r\n\r\nhi\r\n");
        let m = parse(raw.as_bytes(), &patterns(), LIMITS).unwrap();
        assert_eq!(m.subject, long.trim_end());
    }

    #[test]
    fn deeply_nested_multipart_still_yields_the_headers() {
        let mut raw = String::from("From: a@b.example\r\nSubject: nest\r\nMessage-ID: <n@b>\r\n");
        for i in 0..300 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
        let m = parse(raw.as_bytes(), &patterns(), LIMITS).expect("headers are readable");
        assert_eq!(m.from.as_deref(), Some("a@b.example"));
        assert_eq!(m.dedup_key, "mid:n@b");
    }

    #[test]
    fn flowed_text_is_joined() {
        assert_eq!(
            unflow(
                "The report emails are \naccepted by the relay.\n\n> quoted and \n> joined\n-- \nsig",
                false
            ),
            "The report emails are accepted by the relay.\n\n> quoted and joined\n-- \nsig"
        );
        assert_eq!(unflow("abc \ndef", true), "abcdef");
    }

    #[test]
    fn header_injection_is_folded_away() {
        assert_eq!(
            one_line("Hello\r\nBcc: victim@x.example"),
            "Hello Bcc: victim@x.example"
        );
        assert_eq!(one_line("  a\t\tb  "), "a b");
        assert_eq!(one_line(&"x".repeat(1000)).len(), 250);
    }

    #[test]
    fn auto_signals_are_read() {
        let raw = b"From: MAILER-DAEMON@mx.example\r\nReturn-Path: <>\r\nAuto-Submitted: auto-replied\r\nPrecedence: bulk\r\nList-Id: <l.example>\r\nX-Auto-Response-Suppress: DR, OOF\r\nSubject: x\r\n\r\nbody\r\n";
        let m = parse(raw, &patterns(), LIMITS).unwrap();
        assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-replied"));
        assert_eq!(m.auto.precedence.as_deref(), Some("bulk"));
        assert!(m.auto.list && m.auto.suppress && m.auto.null_sender);
        let human = parse(
            b"From: a@b.example\r\nAuto-Submitted: no\r\nSubject: x\r\n\r\nhi\r\n",
            &patterns(),
            LIMITS,
        )
        .unwrap();
        assert_eq!(human.auto, AutoSignals::default());
    }

    #[test]
    fn no_message_id_falls_back_to_content_hash() {
        let raw = b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n";
        let m = parse(raw, &patterns(), LIMITS).unwrap();
        assert_eq!(m.dedup_key, content_key(raw));
        let m2 = parse(
            b"From: a@b.example\r\nMessage-ID: <abc@b.example>\r\n\r\nhi\r\n",
            &patterns(),
            LIMITS,
        )
        .unwrap();
        assert_eq!(m2.dedup_key, "mid:abc@b.example");
    }
}
