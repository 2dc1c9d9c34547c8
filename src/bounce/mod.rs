//! Bounces: recognising a delivery status notification (RFC 3464 `multipart/report;
//! report-type=delivery-status`, or the plain-text shapes real MTAs write: qmail, Exim,
//! Sendmail, Postfix, Exchange, Gmail…), reading which recipients failed with the status
//! code and the reason, and classifying each failure as hard (the address is dead: unknown
//! user, unknown domain, moved, a domain that accepts no mail) or soft (anything that may
//! pass later: a full mailbox, a block, a timeout, a policy). `verp.rs` writes and checks
//! the signed envelope sender (`bounces+OUTBOXID.SIGNATURE@domain`) that ties a bounce to
//! the message it is about. Pure: no store, no clock.
//!
//! The hard/soft split follows Sisimai's (`hard_bounce`): only reasons that say the address
//! itself cannot receive mail are hard. A rejection for spam, policy or reputation is soft:
//! the address is alive, the message was refused.

pub mod handle;
pub mod verp;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// Hard: the address is dead. Soft: it may work later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Hard,
    Soft,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Hard => "hard",
            Verdict::Soft => "soft",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "hard" => Some(Verdict::Hard),
            "soft" => Some(Verdict::Soft),
            _ => None,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the mail was recognised as a bounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `multipart/report; report-type=delivery-status` with a `message/delivery-status` part.
    Dsn,
    /// A plain-text notice from an MTA (qmail, Exim, Exchange…).
    Text,
}

/// One recipient the bounce says failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedRecipient {
    /// Lower-case address, as the bounce states it (not trusted for anything but display).
    pub address: String,
    /// The enhanced status code (`5.1.1`), when the bounce gives one.
    pub status: Option<String>,
    /// The diagnostic, on one line, at most 250 bytes.
    pub diagnostic: String,
    /// What the failure means: `user_unknown`, `host_unknown`, `mailbox_full`, `blocked`…
    pub reason: &'static str,
    pub verdict: Verdict,
}

/// A bounce, read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounce {
    pub shape: Shape,
    pub recipients: Vec<FailedRecipient>,
    /// The Message-ID of the message that bounced, when the bounce quotes it.
    pub original_message_id: Option<String>,
}

impl Bounce {
    /// Hard when any recipient failed hard.
    pub fn verdict(&self) -> Verdict {
        if self.recipients.iter().any(|r| r.verdict == Verdict::Hard) {
            Verdict::Hard
        } else {
            Verdict::Soft
        }
    }

    /// The first hard failure, else the first failure.
    pub fn worst(&self) -> Option<&FailedRecipient> {
        self.recipients
            .iter()
            .find(|r| r.verdict == Verdict::Hard)
            .or_else(|| self.recipients.first())
    }
}

/// The kinds of bounce counted in the store's `bounce_counts` (`WriteTx::count_bounce`, in
/// the bounce's transaction) and exported as `ticketgate_bounces_total{kind}`.
pub const COUNTED: [&str; 4] = ["hard", "soft", "forged", "unverified"];
/// A suppression is counted there too, as this prefix and the bounce kind that caused it
/// (`suppressed_hard`), exported as `ticketgate_suppressions_total{kind}`.
pub const SUPPRESSED_PREFIX: &str = "suppressed_";

/// At most this much of a bounce is read (a bounce quoting a huge message is still read).
const MAX_SCAN: usize = 256 * 1024;
/// At most this many failed recipients are kept from one bounce.
const MAX_RECIPIENTS: usize = 50;

/// Subjects MTAs give their notices (lower case, matched as substrings).
const SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "delivery notification",
    "delivery problem",
    "mail delivery failed",
    "failure notice",
    "returned mail",
    "return mail",
    "mail system error",
    "could not send message",
    "non remis",
    "nondeliverable",
    "non-deliverable",
    "non delivery",
    "non-delivery",
    "not delivered",
    "delivery report",
    "warning: could not",
    "message not delivered",
    "mail could not be delivered",
    "unable to deliver",
    "permanent error",
    "rejected",
    "unzustellbar",
    "delivery final failure",
    "failed delivery",
    "delayed mail",
    "delivery delayed",
    "mail status",
    "error sending",
    "mail failure",
    "message you sent",
    "bounce",
    "system undeliverable",
    "returned to sender",
];

/// Subject prefixes of a forwarded mail (English, French, German, Dutch, Spanish…).
const FORWARDED: &[&str] = &["fwd:", "fw:", "tr:", "wg:", "doorst:", "rv:", "i:"];

/// What MTAs' notices say, and people's mail seldom does.
const MTA_PHRASES: &[&str] = &[
    "this is the mail system",
    "mail delivery software",
    "delivery to the following recipient",
    "following address",
    "following recipient",
    "permanent error",
    "permanent failure",
    "qmail-send",
    "transcript of session",
    "could not be delivered",
    "couldn't be delivered",
    "wasn't delivered",
    "was not delivered",
    "delivery has failed",
    "delivery failed",
    "unable to deliver",
    "undeliverable",
    "message could not",
    "error delivering",
    "did not reach",
    "smtp error",
    "remote host said",
    "returned mail",
    "delivery status notification",
];

/// Reads `raw` as a bounce. `None` when it is not one: no delivery-status report, and
/// neither its sender (null, MAILER-DAEMON, postmaster) nor its subject looks like an MTA's
/// notice, or no failed recipient or failure text can be found. Never panics.
pub fn analyze(raw: &[u8]) -> Option<Bounce> {
    std::panic::catch_unwind(|| analyze_inner(raw))
        .ok()
        .flatten()
}

fn analyze_inner(raw: &[u8]) -> Option<Bounce> {
    let raw = &raw[..raw.len().min(MAX_SCAN)];
    let msg = MessageParser::default().parse(raw)?;
    let ct = msg.content_type();
    let is_report = ct.is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart")
            && c.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    let report_type = ct
        .and_then(|c| c.attribute("report-type"))
        .map(|s| s.to_ascii_lowercase());
    // A feedback report (ARF) or a disposition notification is not a bounce.
    if is_report
        && report_type
            .as_deref()
            .is_some_and(|t| t != "delivery-status")
    {
        return None;
    }
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    let local = from.split('@').next().unwrap_or("");
    let null_sender = msg.header_raw("Return-Path").is_some_and(|v| {
        v.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .is_empty()
    });
    let daemon_sender = null_sender
        || from.is_empty()
        || [
            "mailer-daemon",
            "postmaster",
            "post_master",
            "mail-daemon",
            "maildaemon",
            "mailerdaemon",
        ]
        .iter()
        .any(|d| local.contains(d))
        || local.starts_with("bounce")
        || local == "root"
        || local.starts_with("mail-")
        || local.contains("mailer");
    let subject = msg.subject().unwrap_or("").to_ascii_lowercase();
    let bounce_subject = SUBJECTS.iter().any(|s| subject.contains(s));
    let auto_reply = msg
        .header_raw("Auto-Submitted")
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("auto-replied"))
        || subject.starts_with("auto:")
        || subject.contains("out of office")
        || subject.contains("out of the office")
        || subject.contains("autoreply")
        || subject.contains("auto-reply")
        || subject.contains("automatic reply")
        || subject.contains("vacation")
        || msg.header_raw("X-Autoreply").is_some()
        || msg.header_raw("X-Autorespond").is_some();
    let arf = msg.header_raw("Feedback-Type").is_some();
    if arf {
        return None;
    }

    // The delivery-status part(s), the human-readable text, the quoted original's headers.
    let mut status_blocks: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut original_message_id: Option<String> = None;
    // Each arm reads its kind of part whole; a guard would hand it to the next arm.
    #[allow(clippy::collapsible_match)]
    for part in msg.parts.iter() {
        let (ctype, sub) = part
            .content_type()
            .map(|c| {
                (
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            })
            .unwrap_or_else(|| ("text".into(), "plain".into()));
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(m) => {
                if original_message_id.is_none() {
                    original_message_id = m.message_id().map(clean_id);
                }
            }
            _ if ctype == "message"
                && (sub == "delivery-status" || sub == "global-delivery-status") =>
            {
                status_blocks.push(String::from_utf8_lossy(part.contents()).into_owned());
            }
            _ if (ctype == "text" && sub == "rfc822-headers")
                || (ctype == "message" && sub.contains("headers")) =>
            {
                if original_message_id.is_none() {
                    let h = String::from_utf8_lossy(part.contents());
                    original_message_id = header_in(&h, "message-id").map(|v| clean_id(&v));
                }
            }
            PartType::Text(t) if ctype == "text" || ctype.is_empty() => {
                if text.len() < MAX_SCAN {
                    text.push_str(t);
                    text.push('\n');
                }
            }
            PartType::Html(h) => {
                if text.len() < MAX_SCAN {
                    text.push_str(&crate::parse::html_to_text(h));
                    text.push('\n');
                }
            }
            _ => {}
        }
    }
    if text.trim().is_empty() || (status_blocks.is_empty() && is_report) {
        // No readable part (a boundary that never comes, a broken structure): the raw body.
        let body = raw_body(raw);
        if status_blocks.is_empty()
            && let Some(p) = body
                .find("Final-Recipient:")
                .or_else(|| body.find("Original-Recipient:"))
        {
            // The delivery-status fields are there, just not in a part of their own.
            let start = body[..p].rfind("\n\n").map_or(0, |s| s + 2);
            status_blocks.push(body[start..].to_string());
            text.push_str(&body[..start]);
        } else if text.trim().is_empty() {
            text.push_str(&body);
        }
    }
    if status_blocks.is_empty()
        && text.contains("notificationType")
        && let Some(b) = ses_notification(&text)
    {
        return Some(b);
    }
    let text = cut_original(&text.replace("\r\n", "\n"));
    if original_message_id.is_none() {
        // Quoted inline: the first Message-ID line after the notice.
        original_message_id = quoted_message_id(raw);
    }

    let has_dsn = !status_blocks.is_empty();
    if !has_dsn {
        if auto_reply && !bounce_subject {
            return None;
        }
        if !(daemon_sender || bounce_subject) {
            return None;
        }
        // A person's mail about a delivery problem is not a notice: without an MTA's sender,
        // the notice must read like one (or say it is automatic).
        let automatic = msg.header_raw("Auto-Submitted").is_some()
            || msg.header_raw("X-Failed-Recipients").is_some();
        let lower = text.to_ascii_lowercase();
        if !daemon_sender && !automatic && !MTA_PHRASES.iter().any(|p| lower.contains(p)) {
            return None;
        }
        // A person forwarding a notice to us ("Fwd: Undeliverable: …") asks for help: that
        // is a request, not a bounce.
        if !daemon_sender && !automatic && FORWARDED.iter().any(|p| subject.starts_with(p)) {
            return None;
        }
    }

    // Sisimai's rule, and the SMTP's: an "unknown user" is the address's fault only when it
    // answered the recipient (RCPT TO); after the content (DATA) it is a filter's verdict.
    let rcpt = RCPT.is_match(&text) || status_blocks.iter().any(|b| RCPT.is_match(b));
    let after_data = Session {
        data: AFTER_DATA.is_match(&text) || status_blocks.iter().any(|b| AFTER_DATA.is_match(b)),
        rcpt,
    };
    let mut recipients = Vec::new();
    for block in &status_blocks {
        recipients.extend(dsn_recipients(block, &text, after_data));
    }
    let shape = if recipients.is_empty() {
        Shape::Text
    } else {
        Shape::Dsn
    };
    if recipients.is_empty() {
        recipients = text_recipients(&text, &subject, &from, &msg, after_data);
        if recipients.is_empty() {
            // A status block that names no recipient, or a notice whose address cannot be
            // found: still a bounce when the text says it failed.
            let (reason, verdict) = classify_after(None, &format!("{subject}\n{text}"), after_data);
            if !has_dsn && reason == "undefined" {
                return None;
            }
            recipients.push(FailedRecipient {
                address: String::new(),
                status: find_status(&text),
                diagnostic: crate::parse::one_line(&text),
                reason,
                verdict,
            });
        }
    }
    recipients.truncate(MAX_RECIPIENTS);
    Some(Bounce {
        shape,
        recipients,
        original_message_id,
    })
}

/// Amazon SES's bounce notification (JSON, through SNS): `"notificationType":"Bounce"`,
/// `"bounceType":"Permanent"|"Transient"`, and per recipient `emailAddress`, `status`,
/// `diagnosticCode`.
fn ses_notification(text: &str) -> Option<Bounce> {
    // Sendmail breaks lines over 990 characters with "!" and a continuation line.
    let text = text.replace("\r\n", "\n").replace("!\n ", "");
    let start = text.find('{')?;
    let v: serde_json::Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()?
        .ok()?;
    // SNS wraps the notification as a string in `Message`.
    let v = match v.get("Message").and_then(|m| m.as_str()) {
        Some(inner) => serde_json::from_str(inner).ok()?,
        None => v,
    };
    if v.get("notificationType")?.as_str()? != "Bounce" {
        return None;
    }
    let bounce = v.get("bounce")?;
    let permanent = bounce.get("bounceType").and_then(|t| t.as_str()) == Some("Permanent");
    let mut recipients = Vec::new();
    for r in bounce
        .get("bouncedRecipients")?
        .as_array()?
        .iter()
        .take(MAX_RECIPIENTS)
    {
        let address = clean_address(r.get("emailAddress").and_then(|a| a.as_str()).unwrap_or(""));
        let diagnostic = r
            .get("diagnosticCode")
            .and_then(|d| d.as_str())
            .unwrap_or("")
            .to_string();
        let status = r
            .get("status")
            .and_then(|s| s.as_str())
            .and_then(find_status);
        let (reason, mut verdict) = classify(status.as_deref(), &diagnostic);
        if !permanent {
            verdict = Verdict::Soft;
        }
        recipients.push(FailedRecipient {
            address,
            status,
            diagnostic: crate::parse::one_line(&diagnostic),
            reason,
            verdict,
        });
    }
    (!recipients.is_empty()).then_some(Bounce {
        shape: Shape::Text,
        recipients,
        original_message_id: None,
    })
}

/// The body section of a raw mail as text (CRLF as LF).
fn raw_body(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    match s.split_once("\n\n") {
        Some((_, body)) => body.to_string(),
        None => String::new(),
    }
}

/// The per-recipient blocks of a `message/delivery-status` body.
fn dsn_recipients(block: &str, text: &str, after_data: Session) -> Vec<FailedRecipient> {
    let block = block.replace("\r\n", "\n");
    let mut out = Vec::new();
    // Per-recipient groups are separated by blank lines, the first is per-message
    // (Reporting-MTA…); some MTAs write no blank line, so a recipient field seen again
    // starts a new group too.
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for group in block.split("\n\n") {
        groups.push(Vec::new());
        for (n, v) in unfold(group) {
            let current = groups.last_mut().expect("one group at least");
            if (n.eq_ignore_ascii_case("Final-Recipient")
                || n.eq_ignore_ascii_case("Original-Recipient"))
                && current.iter().any(|(m, _)| m.eq_ignore_ascii_case(&n))
            {
                groups.push(vec![(n, v)]);
            } else {
                current.push((n, v));
            }
        }
    }
    for fields in groups {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let Some(rcpt) = get("Final-Recipient").or_else(|| get("Original-Recipient")) else {
            continue;
        };
        let address = rcpt
            .split_once(';')
            .map_or(rcpt, |(_, a)| a)
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .to_ascii_lowercase();
        let action = get("Action").unwrap_or("").trim().to_ascii_lowercase();
        if matches!(
            action.as_str(),
            "delivered" | "relayed" | "expanded" | "delivered (to mailbox)"
        ) {
            continue;
        }
        let diag = get("Diagnostic-Code")
            .map(|d| d.split_once(';').map_or(d, |(_, t)| t).trim().to_string())
            .unwrap_or_default();
        // A generic status (`5.0.0`) gives way to the remote server's own code.
        let status = get("Status")
            .and_then(find_status)
            .filter(|s| !s.starts_with('2'))
            .filter(|s| !s.ends_with(".0.0"))
            .or_else(|| find_status(&diag))
            .or_else(|| {
                diag.is_empty()
                    .then(|| find_status(&around(text, &address.to_ascii_lowercase())))
                    .flatten()
            })
            .or_else(|| get("Status").and_then(find_status))
            .filter(|s| !s.starts_with('2'));
        // The diagnostic decides; without one, the human-readable text around the address.
        let context = if diag.trim().is_empty() {
            around(text, &address)
        } else {
            diag.clone()
        };
        let (mut reason, mut verdict) = classify_after(status.as_deref(), &context, after_data);
        if action == "delayed" {
            reason = "delayed";
            verdict = Verdict::Soft;
        }
        out.push(FailedRecipient {
            address: clean_address(&address),
            status,
            diagnostic: crate::parse::one_line(if diag.is_empty() { &context } else { &diag }),
            reason,
            verdict,
        });
    }
    out
}

/// `Name: value` fields with their continuation lines joined.
fn unfold(group: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in group.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9._%+'=/-]{1,64}@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}")
        .expect("valid regex")
});
static AFTER_DATA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(end of data|after data|in reply to data|>>> data\s*\n\s*<<< [45]|smtp command\s*\n\s*data)")
        .expect("valid regex")
});
static RCPT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)rcpt").expect("valid regex"));
static STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)([245])\.(\d{1,3})\.(\d{1,3})(?-u:\b)").expect("valid regex")
});

fn find_status(s: &str) -> Option<String> {
    STATUS.captures(s).map(|c| {
        format!(
            "{}.{}.{}",
            &c[1],
            c[2].trim_start_matches('0').parse::<u32>().unwrap_or(0),
            c[3].trim_start_matches('0').parse::<u32>().unwrap_or(0)
        )
    })
}

fn clean_address(a: &str) -> String {
    a.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .take(254)
        .collect::<String>()
        .to_ascii_lowercase()
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .take(998)
        .collect()
}

/// The value of header `name` in a block of header lines.
fn header_in(h: &str, name: &str) -> Option<String> {
    unfold(&h.replace("\r\n", "\n"))
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn quoted_message_id(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    let body = s.split_once("\n\n").or_else(|| s.split_once("\r\n\r\n"))?.1;
    body.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| clean_id(v))
        })
        .filter(|v| !v.is_empty())
}

/// The notice's own text: the quoted copy of the original message cut off.
fn cut_original(text: &str) -> String {
    const MARKERS: &[&str] = &[
        "below this line is a copy of the message",
        "this is a copy of the message",
        "original message follows",
        "----- original message -----",
        "-----original message-----",
        "------ original message ------",
        "the header of the original message",
        "--- the message header",
        "original message headers",
        "----- transcript of session follows",
        "unsent message below",
        "your message reads",
        "content-type: message/rfc822",
        "------ this is a copy of your message",
        "message header follows",
        "the headers of your original message",
    ];
    let lower = text.to_ascii_lowercase();
    let mut end = text.len();
    for m in MARKERS {
        if *m == "----- transcript of session follows" {
            continue; // the transcript is part of the notice
        }
        if let Some(p) = lower.find(m) {
            end = end.min(p);
        }
    }
    // A copied header section: `Received:` or `Return-Path:` at the start of a line.
    for m in ["\nreceived: ", "\nreturn-path: "] {
        if let Some(p) = lower.find(m) {
            end = end.min(p);
        }
    }
    text[..floor_char(text, end)].to_string()
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The lines of `text` from the first that names `address` on, up to a blank line (at most
/// 8 lines); the whole text when the address is not in it.
fn around(text: &str, address: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let Some(p) = (!address.is_empty()).then(|| lower.find(address)).flatten() else {
        return text.to_string();
    };
    let start = lower[..p].rfind('\n').map_or(0, |s| s + 1);
    let mut out = String::new();
    let mut lines = 0;
    for (i, line) in text[start..].lines().enumerate() {
        let t = line.trim();
        if i > 0 && t.is_empty() {
            // Blank lines right after the address line: the reason may follow them.
            if lines > 1 || i > 2 {
                break;
            }
            continue;
        }
        // The next recipient's line starts a block of its own.
        if i > 0
            && ADDRESS
                .find(t)
                .is_some_and(|m| m.start() <= 2 && !m.as_str().eq_ignore_ascii_case(address))
        {
            break;
        }
        if lines >= 8 {
            break;
        }
        out.push_str(line);
        out.push('\n');
        lines += 1;
    }
    out
}

/// Failed recipients named in a plain-text notice: addresses in the notice other than the
/// bounce's own sender and receiver, each with the lines around it.
fn text_recipients(
    text: &str,
    subject: &str,
    from: &str,
    msg: &mail_parser::Message<'_>,
    after_data: Session,
) -> Vec<FailedRecipient> {
    let to: Vec<String> = msg
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address.as_deref())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for m in ADDRESS.find_iter(text) {
        let a = m
            .as_str()
            .trim_matches(['.', '\'', '/', '='])
            .to_ascii_lowercase();
        let local = a.split('@').next().unwrap_or("");
        if a == from
            || to.contains(&a)
            || seen.contains(&a)
            || ["mailer-daemon", "postmaster", "mail-daemon"]
                .iter()
                .any(|d| local.contains(d))
        {
            continue;
        }
        seen.push(a.clone());
        let context = around(text, &a);
        let (mut reason, mut verdict) =
            classify_after(find_status(&context).as_deref(), &context, after_data);
        if reason == "undefined" {
            // The address's lines say nothing: the notice's text as a whole decides.
            let whole = format!("{subject}\n{text}");
            (reason, verdict) = classify_after(find_status(text).as_deref(), &whole, after_data);
        }
        out.push(FailedRecipient {
            address: clean_address(&a),
            status: find_status(&context),
            diagnostic: crate::parse::one_line(&context),
            reason,
            verdict,
        });
        if out.len() >= MAX_RECIPIENTS {
            break;
        }
    }
    // The addresses the notice names for other reasons (a sender quoted in a diagnostic)
    // are only kept when one of them failed: a notice of one failed address mostly names it
    // first.
    out
}

/// Reasons, most specific first: (reason, hard?, lower-case phrases).
const REASONS: &[(&str, bool, &[&str])] = &[
    (
        "mailbox_full",
        false,
        &[
            "mailbox full",
            "mailbox is full",
            "mailbox has exceeded",
            "mailbox size limit",
            "over quota",
            "overquota",
            "quota exceeded",
            "exceeded storage",
            "exceeds quota",
            "quota exceed",
            "quota full",
            "mailbox is over",
            "insufficient system storage",
            "disk quota",
            "mail box full",
            "maildir over",
            "user is over",
            "too much mail",
            "mailfolder is full",
            "is over quota",
            "full mailbox",
            "exceeded the storage",
            "exceeded its storage",
            "mailbox exceeds",
            "not enough storage",
            "quota violation",
            "would exceed",
            "out of storage",
            "storage full",
        ],
    ),
    (
        "suspended",
        false,
        &[
            "account disabled",
            "account has been disabled",
            "account is disabled",
            "has been suspended",
            "account suspended",
            "is suspended",
            "is inactive",
            "inactive account",
            "account inactive",
            "account has been deactivated",
            "deactivated",
            "temporarily disabled",
            "mailbox disabled",
            "mailbox is disabled",
            "not active",
            "account expired",
            "account is locked",
            "is frozen",
            "has been locked",
            "is not active",
            "account closed",
            "mailbox is inactive",
            "mailbox unavailable or access denied",
            "disabled for",
        ],
    ),
    (
        "message_too_big",
        false,
        &[
            "message too large",
            "message is too large",
            "message size exceeds",
            "too big",
            "exceeds size limit",
            "exceeds the maximum size",
            "size limit",
            "message length exceeds",
        ],
    ),
    (
        "host_unknown",
        true,
        &[
            "host or domain name not found",
            "domain name not found",
            "host not found",
            "host unknown",
            "unknown host",
            "no such domain",
            "domain not found",
            "domain does not exist",
            "unrouteable address",
            "unroutable address",
            "unrouteable mail domain",
            "no mx",
            "mx record",
            "dns error",
            "domain lookup failed",
            "unknown domain",
            "nonexistent domain",
            "non-existent domain",
            "illegal host/domain",
            "no route to domain",
            "invalid domain",
            "domain is not",
            "domain isn't",
            "not our customer",
            "host name lookup failure",
            "could not be resolved",
            "address is not found in the domain",
            "unknown mail domain",
            "domain unknown",
            "all relevant mx records point to non-existent hosts",
            "no valid hosts",
            "bad destination system",
            "no such host",
        ],
    ),
    (
        "not_accept",
        true,
        &[
            "does not accept mail",
            "doesn't accept mail",
            "accepts no mail",
            "null mx",
            "no smtp service",
            "host does not accept mail",
            "does not accept any mail",
        ],
    ),
    (
        "has_moved",
        true,
        &[
            "has moved",
            "address has changed",
            "no longer at",
            "user has moved",
        ],
    ),
    (
        "user_unknown",
        true,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such mailbox",
            "no such recipient",
            "no such account",
            "user not found",
            "recipient not found",
            "recipient unknown",
            "unknown recipient",
            "invalid recipient",
            "recipient invalid",
            "invalid mailbox",
            "mailbox not found",
            "mailbox unavailable",
            "mailbox does not exist",
            "mailbox doesn't exist",
            "does not exist",
            "doesn't exist",
            "the account or domain may not exist",
            "couldn't be found",
            "doesn't have a",
            "could not be found",
            "check if address is correct",
            "and other recipients in the same domain",
            "invalid final delivery userid",
            "does not have an account",
            "not a valid mailbox",
            "no mailbox here",
            "unknown local part",
            "unknown address",
            "address unknown",
            "address not found",
            "address does not exist",
            "addressee unknown",
            "bad address",
            "invalid address",
            "not our user",
            "no such person",
            "no longer valid",
            "is not a valid",
            "unknown or illegal alias",
            "account does not exist",
            "account not found",
            "no account",
            "user doesn't exist",
            "no user",
            "name not recognized",
            "not listed",
            "invalid mail address",
            "unknown mailbox",
            "mailbox is unavailable",
            "user invalid",
            "no mail-box",
            "no mailbox",
            "not found",
            "undeliverable address",
            "this user doesn't",
            "mailbox not available",
            "unknown in",
            "no recipients",
            "invalid address",
            "recipient does not exist",
        ],
    ),
    (
        "spam",
        false,
        &[
            "spam",
            "blacklist",
            "black list",
            "blocklist",
            "block list",
            "blocked",
            "dnsbl",
            "rbl",
            "spamhaus",
            "reputation",
            "junk mail",
            "content rejected",
            "virus",
            "malware",
            "phish",
            "listed at",
            "listed in",
            "not accepted due to",
            "poor reputation",
            "suspicious",
            "refused by policy",
            "denied by policy",
            "policy rejection",
            "ptr record",
            "reverse dns",
            "reverse lookup",
            "rdns",
            "spf",
            "dmarc",
            "dkim",
            "please use the smtp server",
            "authentication required",
            "relay access denied",
            "relaying denied",
            "relay not permitted",
            "not permitted to relay",
            "unable to relay",
            "relay denied",
            "we do not relay",
            "starttls",
            "tls required",
            "too many",
            "rate limit",
            "try again later",
            "temporarily deferred",
            "greylist",
            "connection refused",
            "connection timed out",
            "timed out",
            "network is unreachable",
            "no route to host",
            "lost connection",
            "retry time",
            "retry timeout",
            "delivery time expired",
            "message expired",
            "could not be delivered within",
            "has been delayed",
            "has not yet been delivered",
            "queue too long",
            "too long in queue",
            "mail loop",
            "loop detected",
            "too many hops",
            "syntax error",
            "sender address rejected",
            "sender rejected",
            "sender domain",
            "domain of sender",
            "sender verify failed",
            "rejected by recipient domain's filter",
            "not authorized to send",
            "not allowed to send",
            "only accepts mail from",
            "does not accept mail from",
            "rejected your message",
            "refused to accept",
            "mail from your",
            "your ip",
            "client host",
            "security policy",
            "message rejected",
            "message refused",
            "filtered",
            "routing loop",
            "insecure",
            "certificate",
            "vacation",
            "out of office",
        ],
    ),
];

/// The reason and verdict of a failure, from its enhanced status code and its text.
///
/// The text decides first (a 5.1.1 sent for a spam block is a block); then the status:
/// 5.1.1 (bad mailbox), 5.1.2 (bad domain), 5.1.6 (moved), 5.1.10 (null MX) are hard, every
/// other code and every 4.x.x soft.
pub fn classify(status: Option<&str>, text: &str) -> (&'static str, Verdict) {
    classify_after(
        status,
        text,
        Session {
            data: false,
            rcpt: true,
        },
    )
}

/// What the notice says about the SMTP session that failed.
#[derive(Debug, Clone, Copy)]
struct Session {
    /// The failure answered the message's content (end of DATA).
    data: bool,
    /// The notice names the RCPT command.
    rcpt: bool,
}

/// [`classify`], `after_data` when the failure came in answer to the message's content (the
/// end of DATA): an "unknown user" then is a filter's refusal, the mailbox existed at RCPT.
fn classify_after(
    status: Option<&str>,
    text: &str,
    after_data: Session,
) -> (&'static str, Verdict) {
    // Addresses say nothing about the reason (`userunknown@…`, `does-not-exist@…`).
    let lower = ADDRESS.replace_all(text, "<address>").to_ascii_lowercase();
    let temporary = status.is_some_and(|s| s.starts_with('4'));
    if ["does not accept mail", "no smtp service", "null mx"]
        .iter()
        .any(|p| lower.contains(p))
        && !temporary
    {
        return ("not_accept", Verdict::Hard);
    }
    // Codes whose class outweighs any text: the sender, the mailbox's state, a policy.
    if let Some(s) = status
        && (s.starts_with("5.7.") || s == "5.2.2" || s == "5.2.3" || s == "5.1.7" || s == "5.1.8")
    {
        let reason = match s {
            "5.2.2" => "mailbox_full",
            "5.2.1" => "suspended",
            "5.2.3" => "message_too_big",
            "5.1.7" | "5.1.8" => "sender_rejected",
            _ => "blocked",
        };
        return (reason, Verdict::Soft);
    }
    // Exchange Online's "Recipient address rejected: Access denied": no such mailbox.
    if status == Some("5.4.1") && lower.contains("recipient address rejected") {
        return ("user_unknown", Verdict::Hard);
    }
    if STRONG_SOFT.iter().any(|p| lower.contains(p)) {
        for (reason, hard, phrases) in REASONS {
            if !*hard && phrases.iter().any(|p| lower.contains(p)) {
                return (reason, Verdict::Soft);
            }
        }
        return ("blocked", Verdict::Soft);
    }
    // A code that says the mailbox or the domain is bad decides.
    match status {
        Some("5.1.1") | Some("5.1.0") => return ("user_unknown", Verdict::Hard),
        Some("5.1.2") => return ("host_unknown", Verdict::Hard),
        Some("5.1.6") => return ("has_moved", Verdict::Hard),
        Some("5.1.10") => return ("not_accept", Verdict::Hard),
        _ => {}
    }
    let by_status = match status {
        Some("5.1.0") | Some("5.1.3") => Some(("user_unknown", Verdict::Hard)),
        Some("5.1.2") => Some(("host_unknown", Verdict::Hard)),
        Some("5.1.6") => Some(("has_moved", Verdict::Hard)),
        Some("5.1.10") => Some(("not_accept", Verdict::Hard)),
        Some("5.2.2") | Some("4.2.2") => Some(("mailbox_full", Verdict::Soft)),
        Some("5.2.1") | Some("4.2.1") => Some(("suspended", Verdict::Soft)),
        Some("5.3.4") => Some(("message_too_big", Verdict::Soft)),
        Some("5.4.4") => Some(("host_unknown", Verdict::Hard)),
        Some(s) if s.starts_with("5.7.") || s.starts_with("4.7.") => {
            Some(("blocked", Verdict::Soft))
        }
        Some(s) if s.starts_with("4.4.") => Some(("expired", Verdict::Soft)),
        _ => None,
    };
    for (reason, hard, phrases) in REASONS {
        if phrases.iter().any(|p| lower.contains(p)) {
            let verdict = if *hard && !temporary {
                Verdict::Hard
            } else {
                Verdict::Soft
            };
            // A code that states the mailbox is bad outweighs a generic word ("filter",
            // "content") in its text.
            if !*hard
                && let Some((r, Verdict::Hard)) = by_status
                && !STRONG_SOFT.iter().any(|p| lower.contains(p))
            {
                return (r, Verdict::Hard);
            }
            // An unknown user after the content, or with no sign the recipient was refused
            // at RCPT: a filter's refusal (Sisimai's `filtered`), unless the MTA's words
            // only ever mean a missing mailbox.
            if *reason == "user_unknown"
                && status != Some("5.1.1")
                && !STRONG_HARD.iter().any(|p| lower.contains(p))
                && (after_data.data
                    || (!after_data.rcpt && !lower.contains("<address>>: user unknown")))
            {
                return ("filtered", Verdict::Soft);
            }
            return (reason, verdict);
        }
    }
    match by_status {
        Some(("user_unknown", Verdict::Hard))
            if (after_data.data || !after_data.rcpt) && status != Some("5.1.1") =>
        {
            ("filtered", Verdict::Soft)
        }
        Some(b) => b,
        None => ("undefined", Verdict::Soft),
    }
}

/// Phrases of MTAs that only ever write them for a mailbox that does not exist, whatever
/// the SMTP command (Exchange, IMail).
const STRONG_HARD: &[&str] = &[
    "recipient name is not recognized",
    "invalid final delivery userid",
    "unknown user:",
    "address couldn't be found",
    "not listed in domino directory",
    "invalid recipient",
    "and other recipients in the same domain",
    "doesn't have a",
];

/// Soft reasons a status code of a dead mailbox does not outweigh.
const STRONG_SOFT: &[&str] = &[
    "after mail from",
    "access denied",
    "try again later",
    "host not found, try again",
    "sender rejected",
    "too many",
    "refused due to",
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "spam",
    "blocked",
    "blacklist",
    "disabled",
    "suspended",
];

#[cfg(test)]
mod tests;
