//! Composing one announcement mail to one subscriber (issue 10): From the list's address,
//! `List-Id` (RFC 2919), `List-Unsubscribe` with the one-click URL and a `mailto:`, and
//! `List-Unsubscribe-Post` when there is a one-click URL (RFC 8058), `Auto-Submitted:
//! auto-generated`, `Precedence: bulk`, threaded on the subscriber's first notice of the
//! outage or maintenance. Plain text, quoted-printable, DKIM-signed like the rest.

use super::{Composed, NotifyError, new_message_id};
use crate::config::OutboundConfig;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::{Address, Message};

/// One subscriber's copy of an announcement mail.
pub struct ListMail<'a> {
    /// Goes into a new Message-ID (the announcement's reference).
    pub tag: &'a str,
    /// This mail's own Message-ID (no `<>`), when it is fixed in advance (a first notice,
    /// which later mails refer to); otherwise a new one.
    pub message_id: Option<&'a str>,
    pub to: &'a str,
    /// The list's address (`From`) and display name.
    pub list_address: &'a str,
    pub list_display: &'a str,
    /// `<NAME.DOMAIN>`
    pub list_id: &'a str,
    /// The one-click page (`https://…/u/TOKEN`), when configured.
    pub unsubscribe_url: Option<&'a str>,
    /// `mailto:` target of `List-Unsubscribe` (the list's address, subject `unsubscribe LIST`).
    pub unsubscribe_mailto: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// The first notice this mail belongs with (`In-Reply-To` and `References`).
    pub thread: Option<&'a str>,
}

/// The Message-ID of subscriber `subscriber`'s first notice in the thread whose root is
/// `root` (`tg.OUT-000001.RAND@domain` → `tg.OUT-000001.RAND.s42@domain`): fixed, so every
/// later mail to that subscriber can refer to it without storing one id per subscriber.
pub fn first_notice_id(root: &str, subscriber: i64) -> String {
    match root.rsplit_once('@') {
        Some((local, domain)) => format!("{local}.s{subscriber}@{domain}"),
        None => format!("{root}.s{subscriber}"),
    }
}

/// A new thread root for an announcement (stored as its `thread_message_id`).
pub fn thread_root(tag: &str, cfg: &OutboundConfig) -> String {
    new_message_id(tag, &cfg.message_id_domain)
}

pub fn compose_list(
    cfg: &OutboundConfig,
    now: DateTime<Utc>,
    m: &ListMail<'_>,
) -> Result<Composed, NotifyError> {
    let to_addr: Address =
        m.to.parse()
            .map_err(|_| NotifyError::BadRecipient(m.to.to_string()))?;
    let list_addr: Address = m
        .list_address
        .parse()
        .map_err(|_| NotifyError::Build(format!("list address `{}`", m.list_address)))?;
    // Bounces come back to our envelope sender, as for any other mail.
    let envelope =
        lettre::address::Envelope::new(Some(cfg.from.email.clone()), vec![to_addr.clone()])
            .map_err(|e| NotifyError::Build(e.to_string()))?;
    let message_id = match m.message_id {
        Some(id) => id.to_string(),
        None => new_message_id(m.tag, &cfg.message_id_domain),
    };
    let mut b = Message::builder()
        .from(Mailbox::new(
            Some(crate::parse::one_line(m.list_display)),
            list_addr,
        ))
        .to(Mailbox::new(None, to_addr))
        .subject(crate::parse::one_line(m.subject))
        .date(now.into())
        .message_id(Some(format!("<{message_id}>")))
        .envelope(envelope);
    if let Some(root) = m.thread {
        b = b.in_reply_to(format!("<{root}>"));
        b = b.references(format!("<{root}>"));
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .header(lettre::message::header::ContentTransferEncoding::QuotedPrintable)
        .body(m.body.to_string());
    let mut msg = b
        .singlepart(text)
        .map_err(|e| NotifyError::Build(e.to_string()))?;
    let safe = |v: &str| {
        v.bytes()
            .all(|c| c.is_ascii_graphic() && !b"<>,\"\\".contains(&c))
    };
    let h = msg.headers_mut();
    let mut raw = |name: &'static str, value: String| {
        h.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str(name),
            value,
        ));
    };
    if safe(m.list_id.trim_start_matches('<').trim_end_matches('>')) {
        raw("List-Id", m.list_id.to_string());
    }
    let mut unsub = Vec::new();
    let one_click = m.unsubscribe_url.filter(|u| safe(u));
    if let Some(u) = one_click {
        unsub.push(format!("<{u}>"));
    }
    if safe(m.unsubscribe_mailto) {
        unsub.push(format!("<{}>", m.unsubscribe_mailto));
    }
    if !unsub.is_empty() {
        raw("List-Unsubscribe", unsub.join(", "));
    }
    if one_click.is_some() {
        raw(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        );
    }
    raw("Auto-Submitted", "auto-generated".to_string());
    raw("Precedence", "bulk".to_string());
    raw("X-Auto-Response-Suppress", "All".to_string());
    let bytes = msg.formatted();
    let bytes = match &cfg.dkim {
        Some(signer) => signer.sign(&bytes).map_err(NotifyError::Build)?,
        None => bytes,
    };
    Ok(Composed { message_id, bytes })
}

/// `mailto:LIST_ADDRESS?subject=unsubscribe%20LIST` (the list name is letters, digits and
/// `-_.`, so it needs no other escaping).
pub fn unsubscribe_mailto(list_address: &str, list_name: &str) -> String {
    format!("mailto:{list_address}?subject=unsubscribe%20{list_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_notice_id_is_fixed_per_subscriber() {
        assert_eq!(
            first_notice_id("tg.OUT-000001.ab12@support.example", 42),
            "tg.OUT-000001.ab12.s42@support.example"
        );
    }

    #[test]
    fn list_headers_are_written_and_one_click_needs_a_url() {
        let cfg = crate::config::Config::embedded_default().unwrap().outbound;
        let mail = |url: Option<&'static str>| ListMail {
            tag: "OUT-000001",
            message_id: None,
            to: "ops@acme.example",
            list_address: "eu-incidents@lists.example.test",
            list_display: "eu-incidents",
            list_id: "<eu-incidents.lists.example.test>",
            unsubscribe_url: url,
            unsubscribe_mailto: "mailto:eu-incidents@lists.example.test?subject=unsubscribe%20eu-incidents",
            subject: "[OUT-000001] Outage",
            body: "text\n",
            thread: Some("tg.OUT-000001.ab.s1@x.example"),
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = compose_list(&cfg, now, &mail(Some("https://s.example/u/1.ab"))).unwrap();
        // Unfolded, as a reader of the header sees it.
        let t = String::from_utf8(c.bytes).unwrap().replace("\r\n ", " ");
        assert!(
            t.contains("List-Id: <eu-incidents.lists.example.test>"),
            "{t}"
        );
        assert!(t.contains("List-Unsubscribe: <https://s.example/u/1.ab>, <mailto:eu-incidents@lists.example.test?subject=unsubscribe%20eu-incidents>"), "{t}");
        assert!(
            t.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{t}"
        );
        assert!(
            t.contains("In-Reply-To: <tg.OUT-000001.ab.s1@x.example>"),
            "{t}"
        );
        assert!(t.contains("Precedence: bulk"), "{t}");
        assert!(t.contains("Auto-Submitted: auto-generated"), "{t}");
        let c = compose_list(&cfg, now, &mail(None)).unwrap();
        let t = String::from_utf8(c.bytes).unwrap();
        assert!(t.contains("List-Unsubscribe: <mailto:"), "{t}");
        assert!(!t.contains("List-Unsubscribe-Post"), "{t}");
    }
}
