//! Outbound mail: templates (built into the binary, overridable from a folder) rendered with
//! minijinja, then composed into a complete RFC 5322 message with lettre: threading headers,
//! our Message-ID, `Auto-Submitted` on automatic mail. Only this module writes mail headers,
//! and every value a sender controls reaches them through lettre's encoder.

use crate::config::OutboundConfig;
use crate::parse::Attachment;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use minijinja::Environment;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod list_mail;
mod maintenance_mail;
mod notice;
pub mod outlook;

pub use crate::lang::{LANGUAGES, Lang};
pub use list_mail::{ListMail, compose_list, first_notice_id, thread_root, unsubscribe_mailto};
pub use maintenance_mail::MaintenanceOverdue;
pub use notice::*;

#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    #[error("template {name}: {detail}")]
    Template { name: String, detail: String },
    #[error("cannot send to `{0}`: not a mail address")]
    BadRecipient(String),
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// The templates: two per kind and language (subject and body). Each kind's pair is read
/// and compiled when first needed (a `ticketgate ingest` process compiles only what its one
/// mail sends), or all at once by [`Templates::load`] (the daemon: a broken override stops
/// the start).
pub struct Templates {
    dir: Option<PathBuf>,
    /// One slot per (language, kind), in `Lang::ALL` × `Kind::ALL` order.
    compiled: Vec<OnceLock<Result<Compiled, NotifyError>>>,
}

/// One kind in one language: its subject and body compiled, and where they came from.
struct Compiled {
    env: Environment<'static>,
    /// The override file's path, or `LANG/KIND.txt (built in)`, for errors.
    origin: String,
}

fn template_name(lang: Lang, kind: Kind, part: &str) -> String {
    format!("{}/{}.txt:{part}", lang.code(), kind.name())
}

impl Templates {
    /// Built-in templates, each replaced by `DIR/LANG/KIND.txt` where that file exists.
    /// Every template is compiled here, so a syntax error in an override stops the start;
    /// [`Templates::check`] goes further.
    pub fn load(dir: Option<&Path>) -> Result<Templates, NotifyError> {
        let t = Templates::lazy(dir);
        for &lang in Lang::ALL {
            for &kind in Kind::ALL {
                t.compiled(lang, kind)?;
            }
        }
        Ok(t)
    }

    /// The same templates, each read and compiled when first rendered: an error in an
    /// override shows when that kind is first sent.
    pub fn lazy(dir: Option<&Path>) -> Templates {
        Templates {
            dir: dir.map(Path::to_path_buf),
            compiled: (0..Lang::ALL.len() * Kind::ALL.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    fn compiled(&self, lang: Lang, kind: Kind) -> Result<&Compiled, NotifyError> {
        let l = Lang::ALL.iter().position(|&x| x == lang).unwrap_or(0);
        let k = Kind::ALL.iter().position(|&x| x == kind).unwrap_or(0);
        self.compiled[l * Kind::ALL.len() + k]
            .get_or_init(|| self.compile(lang, kind))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn compile(&self, lang: Lang, kind: Kind) -> Result<Compiled, NotifyError> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .map_err(|e| NotifyError::Template {
                    name: "(syntax)".into(),
                    detail: e.to_string(),
                })?,
        );
        // A variable the context lacks is an error, never blank text.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let file = format!("{}/{}.txt", lang.code(), kind.name());
        let (origin, source) = match self.dir.as_ref().map(|d| d.join(&file)) {
            Some(p) if p.exists() => (
                p.display().to_string(),
                std::fs::read_to_string(&p).map_err(|e| NotifyError::Template {
                    name: p.display().to_string(),
                    detail: e.to_string(),
                })?,
            ),
            _ => (format!("{file} (built in)"), kind.builtin(lang).to_string()),
        };
        // "Subject: …", a blank line, the body: two templates, so that nothing a block
        // tag does to white space can move text between the subject and the body.
        let split = source
            .strip_prefix("Subject:")
            .and_then(|rest| rest.split_once("\n\n"));
        let Some((subject, body)) = split else {
            return Err(NotifyError::Template {
                name: origin,
                detail: "must start with a `Subject:` line, then a blank line, then the body"
                    .into(),
            });
        };
        for (part, text) in [
            ("subject", subject.trim().to_string()),
            ("body", body.to_string()),
        ] {
            env.add_template_owned(template_name(lang, kind, part), text)
                .map_err(|e| NotifyError::Template {
                    name: origin.clone(),
                    detail: e.to_string(),
                })?;
        }
        Ok(Compiled { env, origin })
    }

    /// Checks every template against its kind's context, naming the file of the first one
    /// that fails: each variable it reads (in any branch) must be a field of the context,
    /// and it must render each of [`Kind::samples`].
    pub fn check(&self) -> Result<(), NotifyError> {
        for &lang in Lang::ALL {
            for &kind in Kind::ALL {
                let c = self.compiled(lang, kind)?;
                // Built-in functions (`range`, `namespace`…) are read like variables.
                let globals: BTreeSet<&str> = c.env.globals().map(|(name, _)| name).collect();
                let samples = kind.samples(lang);
                let fields: BTreeSet<String> = samples
                    .iter()
                    .flat_map(|n| {
                        let v = minijinja::Value::from(minijinja::value::Serde(n));
                        v.try_iter()
                            .into_iter()
                            .flatten()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                for part in ["subject", "body"] {
                    let t = c
                        .env
                        .get_template(&template_name(lang, kind, part))
                        .map_err(|e| NotifyError::Template {
                            name: c.origin.clone(),
                            detail: e.to_string(),
                        })?;
                    let mut unknown: Vec<String> = t
                        .undeclared_variables(false)
                        .into_iter()
                        .filter(|v| !fields.contains(v) && !globals.contains(v.as_str()))
                        .collect();
                    unknown.sort();
                    if !unknown.is_empty() {
                        return Err(NotifyError::Template {
                            name: c.origin.clone(),
                            detail: format!(
                                "the {part} reads {}, which the {kind} context does not have; it has: {}",
                                unknown
                                    .iter()
                                    .map(|v| format!("`{v}`"))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                fields.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        });
                    }
                }
                for n in &samples {
                    self.render(n, lang.code())?;
                }
            }
        }
        Ok(())
    }

    /// Renders `notice` in `lang` (falling back to English) to `(subject, body)`.
    pub fn render(&self, notice: &Notice, lang: &str) -> Result<(String, String), NotifyError> {
        let lang = Lang::or_english(lang);
        let kind = notice.kind();
        let c = self.compiled(lang, kind)?;
        let ctx = minijinja::Value::from(minijinja::value::Serde(notice));
        let render = |part: &str| {
            c.env
                .get_template(&template_name(lang, kind, part))
                .and_then(|t| t.render(&ctx))
                .map_err(|e| NotifyError::Template {
                    name: c.origin.clone(),
                    detail: e.to_string(),
                })
        };
        let subject = crate::parse::one_line(&render("subject")?);
        let body = render("body")?;
        Ok((subject, body.trim_end().to_string() + "\n"))
    }
}

/// How a message is marked for RFC 3834.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Automatic {
    /// A direct answer to a person's mail: `Auto-Submitted: auto-replied`.
    Replied,
    /// Generated by us (copies to agents, timers): `Auto-Submitted: auto-generated`.
    Generated,
    /// Written by a person (an agent's answer relayed): no `Auto-Submitted`.
    Human,
}

/// One message to compose.
pub struct Outgoing<'a> {
    /// Goes into our Message-ID, e.g. the ticket reference or the kind.
    pub tag: &'a str,
    pub to: &'a str,
    pub to_name: Option<&'a str>,
    /// Display name shown before our address, e.g. "Jane Doe via Support".
    pub from_name: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub automatic: Automatic,
    pub attachments: &'a [Attachment],
    /// The per-ticket reply address (`support+TKT-000123.SIG@domain`, see `auth::token`)
    /// put in `Reply-To` instead of our plain address.
    pub reply_to: Option<&'a str>,
    /// Shown in `Cc` (a ticket's watchers); each is its own outbox row, so the envelope of
    /// this message is `to` alone.
    pub cc: &'a [String],
    /// Outlook's conversation headers: `Thread-Topic` and `Thread-Index` ([`outlook`]).
    pub thread: Option<Thread<'a>>,
    /// The Message-ID to use (a watcher's own copy of a message already composed for the
    /// requester); `None`: a new one ([`new_message_id`]).
    pub message_id: Option<&'a str>,
}

/// The Outlook conversation a ticket's mail belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    pub topic: &'a str,
    /// Base64, as [`outlook::thread_index`] writes it.
    pub index: &'a str,
}

/// A composed message: its Message-ID (without brackets) and its bytes.
pub struct Composed {
    pub message_id: String,
    pub bytes: Vec<u8>,
}

/// A new Message-ID on our domain: `tg.TAG.RANDOM@domain`.
pub fn new_message_id(tag: &str, domain: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut r = [0u8; 10];
    // getrandom fails only on a system without an entropy source; then a process id and a
    // counter still keep ids unique within this process.
    if getrandom::fill(&mut r).is_err() {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r[..8].copy_from_slice(&n.to_le_bytes());
        r[8..].copy_from_slice(&(std::process::id() as u16).to_le_bytes());
    }
    let mut s = String::with_capacity(tag.len() + domain.len() + 24);
    s.push_str("tg.");
    for c in tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
    {
        s.push(c);
    }
    s.push('.');
    for b in r {
        let _ = write!(s, "{b:02x}"); // writing to a String cannot fail
    }
    s.push('@');
    s.push_str(domain);
    s
}

pub fn compose(
    cfg: &OutboundConfig,
    now: DateTime<Utc>,
    out: &Outgoing<'_>,
) -> Result<Composed, NotifyError> {
    let to_addr: Address = out
        .to
        .parse()
        .map_err(|_| NotifyError::BadRecipient(out.to.to_string()))?;
    // Our own envelope, so that lettre does not derive one by re-parsing the headers.
    let envelope =
        lettre::address::Envelope::new(Some(cfg.from.email.clone()), vec![to_addr.clone()])
            .map_err(|e| NotifyError::Build(e.to_string()))?;
    let to = Mailbox::new(out.to_name.map(crate::parse::one_line), to_addr);
    let from = match out.from_name {
        Some(n) => Mailbox::new(Some(crate::parse::one_line(n)), cfg.from.email.clone()),
        None => cfg.from.clone(),
    };
    let message_id = match out.message_id {
        Some(id) => id.to_string(),
        None => new_message_id(out.tag, &cfg.message_id_domain),
    };
    let reply_to = match out.reply_to.map(str::parse::<Address>) {
        Some(Ok(a)) => Mailbox::new(cfg.from.name.clone(), a),
        _ => cfg.from.clone(),
    };
    let mut b = Message::builder()
        .from(from)
        .reply_to(reply_to)
        .to(to)
        .subject(crate::parse::one_line(out.subject))
        .date(now.into())
        .message_id(Some(format!("<{message_id}>")))
        .envelope(envelope);
    for c in out.cc {
        // Watchers' addresses were checked when they were added; one that lettre cannot
        // write is left out of the header (its own row fails on its own).
        if let Ok(a) = c.parse::<Address>() {
            b = b.cc(Mailbox::new(None, a));
        }
    }
    if let Some(parent) = out.in_reply_to {
        b = b.in_reply_to(format!("<{parent}>"));
    }
    if !out.references.is_empty() {
        let refs: Vec<String> = out.references.iter().map(|r| format!("<{r}>")).collect();
        b = b.references(refs.join(" "));
    }
    // Quoted-printable always: readable in any client's "show source", safe for any text.
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .header(lettre::message::header::ContentTransferEncoding::QuotedPrintable)
        .body(out.body.to_string());
    let content_type = |a: &Attachment| {
        ContentType::parse(&a.content_type).unwrap_or_else(|_| {
            ContentType::parse("application/octet-stream").expect("valid literal")
        })
    };
    // Inline images keep their Content-ID (`cid:` references) in a multipart/related
    // beside the text; other files are attachments of a multipart/mixed around it.
    let (inline, files): (Vec<&Attachment>, Vec<&Attachment>) = out
        .attachments
        .iter()
        .filter(|a| a.data.is_some())
        .partition(|a| a.inline && a.content_id.is_some());
    let part = |a: &Attachment| {
        // Base64 always: a file's bytes (line ends included) arrive exactly as sent, text
        // or not.
        let data = lettre::message::Body::new_with_encoding(
            a.data.clone().unwrap_or_default(),
            lettre::message::header::ContentTransferEncoding::Base64,
        )
        .unwrap_or_else(lettre::message::Body::new);
        let name = crate::parse::one_line(&a.filename);
        match (&a.content_id, a.inline) {
            (Some(id), true) => {
                LettreAttachment::new_inline_with_name(id.clone(), name).body(data, content_type(a))
            }
            _ => LettreAttachment::new(name).body(data, content_type(a)),
        }
    };
    let body = if inline.is_empty() {
        None
    } else {
        let mut related = MultiPart::related().singlepart(text.clone());
        for a in &inline {
            related = related.singlepart(part(a));
        }
        Some(related)
    };
    let mut msg = match (body, files.is_empty()) {
        (None, true) => b.singlepart(text),
        (Some(related), true) => b.multipart(related),
        (body, false) => {
            let mut mp = match body {
                Some(related) => MultiPart::mixed().multipart(related),
                None => MultiPart::mixed().singlepart(text),
            };
            for a in &files {
                mp = mp.singlepart(part(a));
            }
            b.multipart(mp)
        }
    }
    .map_err(|e| NotifyError::Build(e.to_string()))?;
    let auto = match out.automatic {
        Automatic::Replied => Some("auto-replied"),
        Automatic::Generated => Some("auto-generated"),
        Automatic::Human => None,
    };
    if let Some(t) = out.thread {
        let h = msg.headers_mut();
        h.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Thread-Topic"),
            crate::parse::one_line(t.topic),
        ));
        // Base64 only: nothing to encode.
        if t.index
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
        {
            h.insert_raw(HeaderValue::new(
                HeaderName::new_from_ascii_str("Thread-Index"),
                t.index.to_string(),
            ));
        }
    }
    if let Some(auto) = auto {
        let h = msg.headers_mut();
        h.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            auto.into(),
        ));
        h.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".into(),
        ));
    }
    let bytes = msg.formatted();
    // Outbound DKIM: signed as written, so the outbox holds the signed bytes.
    let bytes = match &cfg.dkim {
        Some(signer) => signer.sign(&bytes).map_err(NotifyError::Build)?,
        None => bytes,
    };
    Ok(Composed { message_id, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn ack() -> Notice {
        Kind::Acknowledgement.samples(Lang::En).remove(0)
    }

    /// Every kind in every language, each from its typed context (every sample of it), with
    /// strict undefined handling: a template reading a variable its context lacks fails here.
    #[test]
    fn every_kind_renders_in_every_language_from_its_typed_context() {
        let t = Templates::load(None).unwrap();
        // The kinds come from the enum; the template folders must hold exactly those.
        assert_eq!(Kind::ALL.len(), 34);
        for lang in Lang::ALL {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .join(lang.code());
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let mut names: Vec<String> = Kind::ALL
                .iter()
                .map(|k| format!("{}.txt", k.name()))
                .collect();
            names.sort();
            assert_eq!(files, names, "templates/{}", lang.code());
        }
        let mut rendered = 0;
        for &lang in Lang::ALL {
            for &kind in Kind::ALL {
                let samples = kind.samples(lang);
                assert!(!samples.is_empty(), "{kind}: no sample");
                for n in &samples {
                    assert_eq!(n.kind(), kind);
                    let (subject, body) = t
                        .render(n, lang.code())
                        .unwrap_or_else(|e| panic!("{}/{kind}: {e}", lang.code()));
                    assert!(!subject.is_empty(), "{}/{kind} subject", lang.code());
                    assert!(body.len() > 20, "{}/{kind} body", lang.code());
                    assert!(
                        !body.contains("none") && !subject.contains("none"),
                        "{}/{kind} prints a missing value: {subject}\n{body}",
                        lang.code()
                    );
                }
                rendered += 1;
            }
        }
        assert_eq!(rendered, Kind::ALL.len() * Lang::ALL.len());
        assert_eq!(rendered, 68);
        // And the static check: no template reads a variable outside its context in any
        // branch.
        t.check().unwrap();
        let (s, b) = t.render(&ack(), "fr").unwrap();
        assert!(s.contains("[TKT-000042]"), "{s}");
        assert!(b.contains("+1 214 555 0142"), "{b}");
    }

    #[test]
    fn a_variable_the_context_lacks_is_an_error_not_blank_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fr")).unwrap();
        let path = dir.path().join("fr/escalation_customer.txt");
        // The B6 template: `target_fr` was never set, and rendered as blank.
        std::fs::write(
            &path,
            "Subject: {{ reference }}\n\nDélai : {{ target_fr or target }}\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let n = Kind::EscalationCustomer.samples(Lang::Fr).remove(0);
        let err = t.render(&n, "fr").unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("undefined"), "{err}");
        // The check names the file and the variable, even in a branch no sample takes.
        let err = t.check().unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("`target_fr`"),
            "{err}"
        );
        std::fs::write(
            &path,
            "Subject: {{ reference }}\n\n{% if severity > 9 %}{{ nope }}{% endif %}ok\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert!(t.render(&n, "fr").is_ok());
        let err = t.check().unwrap_err().to_string();
        assert!(err.contains("`nope`"), "{err}");
    }

    /// `lazy` reads and compiles a kind only when it is first rendered: a broken override of
    /// another kind does not stop it (`load`, the daemon's, refuses it at once).
    #[test]
    fn lazy_templates_compile_a_kind_when_first_rendered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(dir.path().join("en/rejection.txt"), "no subject line").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
        let t = Templates::lazy(Some(dir.path()));
        assert!(t.compiled.iter().all(|c| c.get().is_none()));
        let (s, _) = t.render(&ack(), "en").unwrap();
        assert!(s.contains("TKT-000042"), "{s}");
        assert_eq!(t.compiled.iter().filter(|c| c.get().is_some()).count(), 1);
        let n = Kind::Rejection.samples(Lang::En).remove(0);
        let err = t.render(&n, "en").unwrap_err().to_string();
        assert!(err.contains("en/rejection.txt"), "{err}");
    }

    #[test]
    fn an_override_folder_replaces_one_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/acknowledgement.txt"),
            "Subject: Got it {{ reference }}\n\nCustom body text here.\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let (s, b) = t.render(&ack(), "en").unwrap();
        assert_eq!(s, "Got it TKT-000042");
        assert_eq!(b, "Custom body text here.\n");
        t.check().unwrap();
        // Built-in functions are not variables the context must have.
        std::fs::write(
            dir.path().join("en/acknowledgement.txt"),
            "Subject: {{ reference }}\n\n{% for i in range(2) %}{{ i }}{% endfor %} ok\n",
        )
        .unwrap();
        Templates::load(Some(dir.path())).unwrap().check().unwrap();
        std::fs::write(dir.path().join("en/rejection.txt"), "no subject line").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("en/rejection.txt"), "{err}");
    }

    #[test]
    fn composed_mail_is_threaded_marked_and_injection_free() {
        let cfg = Config::embedded_default().unwrap().outbound;
        let refs = vec!["a@x.example".to_string(), "b@x.example".to_string()];
        let c = compose(
            &cfg,
            DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            &Outgoing {
                tag: "TKT-000007",
                to: "jane@acme.example",
                to_name: Some("Jane\r\nBcc: evil@x.example"),
                from_name: None,
                subject: "[TKT-000007] hi\r\nBcc: evil@x.example",
                body: "hello",
                in_reply_to: Some("b@x.example"),
                references: &refs,
                automatic: Automatic::Replied,
                attachments: &[],
                cc: &[],
                thread: None,
                reply_to: None,
                message_id: None,
            },
        )
        .unwrap();
        let text = String::from_utf8(c.bytes).unwrap();
        assert!(
            c.message_id.starts_with("tg.TKT-000007.")
                && c.message_id.ends_with("@support.example.test")
        );
        assert!(
            text.contains(&format!("Message-ID: <{}>", c.message_id)),
            "{text}"
        );
        assert!(text.contains("In-Reply-To: <b@x.example>"), "{text}");
        assert!(
            text.contains("References: <a@x.example> <b@x.example>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert!(text.contains("X-Auto-Response-Suppress: All"), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("Bcc:")),
            "header injected: {text}"
        );
    }
}
