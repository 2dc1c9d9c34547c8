//! Typed settings, validated once at start. Every error names the key that is wrong and what
//! to do about it; secrets are read from the environment or a file and never printed.

use regex::Regex;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, always tied to the key it is about.
#[derive(Debug, thiserror::Error)]
#[error("configuration error at `{key}`: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

pub(crate) fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// A secret value: shows as `***` in every `Debug` or log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `database.url`: the whole URL for opening the store (through `Deref` to `str`, or
/// [`DatabaseUrl::expose`]), shown with its password masked (`postgres://user:***@host/db`)
/// by `Display` and `Debug`, so that printing it never leaks the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for opening the store only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact_url(&self.0), f)
    }
}

impl PartialEq<str> for DatabaseUrl {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A database URL with its password masked: the password of the user information
/// (everything up to the last `@`, since a password may hold `/`, `?` or `@`) and a
/// `password=` parameter become `***`. Masking too much is safe; too little is not.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string(); // sqlite:PATH: no credentials
    };
    let (head, rest) = url.split_at(start);
    let mut out = head.to_string();
    let rest = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None => {
                    out.push_str(userinfo);
                    out.push('@');
                }
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, param) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match param.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        out.push_str(k);
                        out.push_str("=***");
                    }
                    _ => out.push_str(param),
                }
            }
        }
        None => out.push_str(rest),
    }
    out
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the settings came from: a file, or the embedded default.
    pub source: ConfigSource,
    /// Shows masked; `&*cfg.database_url` or `.expose()` is the URL to open.
    pub database_url: DatabaseUrl,
    pub inbound: InboundConfig,
    pub outbound: OutboundConfig,
    pub tickets: TicketsConfig,
    pub loops: LoopConfig,
    pub registry_path: PathBuf,
    pub templates_dir: Option<PathBuf>,
    pub log: LogConfig,
    pub daemon: DaemonConfig,
    pub http: HttpConfig,
    pub announcements: AnnouncementsConfig,
    /// `[[probes]]`: service probes that declare outages ([`crate::probes`]).
    pub probes: Vec<crate::probes::ProbeConfig>,
}

/// `[announcements]` (issue 10).
#[derive(Debug, Clone)]
pub struct AnnouncementsConfig {
    /// `announcements.key`: HMAC key of the one-click unsubscribe tokens (`/u/TOKEN`); the
    /// key itself, `env:NAME` or `file:PATH`, at least 16 bytes. `None` (the embedded
    /// default): announcement mail carries only the `mailto:` unsubscribe, no one-click URL
    /// (a warning at start); so does mail when `http.public_url` is not set.
    pub key: Option<Secret>,
    /// `announcements.update_interval`: between two outage updates unless the outage says
    /// otherwise (default 1h).
    pub update_interval: Duration,
    /// `announcements.pending_expiry`: a subscription not confirmed by then lapses
    /// (default 3d).
    pub pending_expiry: Duration,
    /// `announcements.reminder_before`: a maintenance's subscribers are reminded this long
    /// before its start (default 24h; `0` sends no reminder). Stored with each maintenance
    /// when it is scheduled.
    pub reminder_before: Duration,
}

impl Default for AnnouncementsConfig {
    fn default() -> Self {
        AnnouncementsConfig {
            key: None,
            update_interval: Duration::from_secs(3600),
            pending_expiry: Duration::from_secs(3 * 86_400),
            reminder_before: Duration::from_secs(86_400),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    EmbeddedDefault,
}

#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub maildir: PathBuf,
    pub poll_interval: Duration,
    pub batch_size: usize,
    pub max_message_bytes: usize,
    pub max_attachment_bytes: usize,
    /// IMAP mailboxes read besides the Maildir (`[[inbound.imap]]`), in file order.
    pub imap: Vec<ImapConfig>,
    /// HMAC key of the reply tokens (`support+TKT-000123.SIG@domain`); `None`: no tokens
    /// (a warning at start), so an unauthenticated customer mail never changes a status.
    pub reply_key: Option<Secret>,
    /// authserv-ids (lower case) whose `Authentication-Results` are believed (RFC 8601).
    pub trusted_authserv_ids: Vec<String>,
    /// Sources whose mail counts as authenticated: `ingest`, `maildir`, `imap:NAME`.
    pub trusted_sources: Vec<String>,
    /// Bound on the DKIM key and DMARC lookups of one batch (before its transaction).
    pub dns_timeout: Duration,
    /// The LMTP listener (`[inbound.lmtp]`), when configured.
    pub lmtp: Option<LmtpConfig>,
    /// `[inbound.limits]`: what a mail may be before it is quarantined unread.
    pub limits: InboundLimits,
}

/// Where the LMTP listener listens (`inbound.lmtp.listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpListen {
    /// `unix:PATH`: a Unix socket (a stale socket file is replaced).
    Unix(PathBuf),
    /// `HOST:PORT`: TCP (port 0: any free port, logged at start).
    Tcp(std::net::SocketAddr),
}

/// `[inbound.lmtp]`: LMTP delivery from an MTA (RFC 2033).
#[derive(Debug, Clone)]
pub struct LmtpConfig {
    pub listen: LmtpListen,
    /// Permissions of the Unix socket (`inbound.lmtp.socket_mode`, octal).
    pub socket_mode: u32,
    /// Sessions at once; more are answered `421` and closed.
    pub max_connections: usize,
}

/// `[inbound.limits]`: a mail over one of them is quarantined with the limit's name as the
/// reason (`limit_exceeded`), never parsed further. The defaults are far above real mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// Header fields in the top-level header section.
    pub max_header_count: usize,
    /// Bytes of the top-level header section.
    pub max_header_bytes: usize,
    /// Nesting of multipart and message/rfc822 parts.
    pub max_mime_depth: usize,
    /// MIME parts in the whole message.
    pub max_parts: usize,
    /// Bytes of one line.
    pub max_line_bytes: usize,
    /// Bytes of the whole mail (`inbound.max_message_size` is the size that gets a
    /// rejection reply; this one is checked with the others, before parsing).
    pub max_total_bytes: usize,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            max_header_count: 1000,
            max_header_bytes: 1024 * 1024,
            max_mime_depth: 50,
            max_parts: 1000,
            max_line_bytes: 1024 * 1024,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How the IMAP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain text, then `STARTTLS` before login (port 143).
    StartTls,
    /// Plain text throughout: only when written explicitly, for a server on this host.
    None,
}

/// Where an XOAUTH2 access token comes from; read afresh at every login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A file whose content (trailing newlines removed) is the token.
    File(PathBuf),
    /// A shell command (`sh -c`) that prints the token.
    Command(String),
}

#[derive(Debug, Clone)]
pub enum ImapAuth {
    /// `LOGIN` with a password read at start.
    Password(Secret),
    /// `AUTHENTICATE XOAUTH2` with a bearer token.
    XOAuth2(TokenSource),
}

/// What happens to a mail in the server's folder once its effects are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAction {
    /// Moved to `move_to`.
    Move,
    /// Marked `\Seen` and left in place.
    Flag,
    /// Deleted (`\Deleted` and expunged).
    Delete,
}

/// One `[[inbound.imap]]` mailbox.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Unique; in log lines and as the store's mailbox key.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: ImapTls,
    /// PEM file of the certificate authorities to trust; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub auth: ImapAuth,
    pub folder: String,
    pub after: AfterAction,
    pub move_to: String,
    /// Use IDLE when the server offers it.
    pub idle: bool,
    /// Between passes when not idling.
    pub poll_interval: Duration,
    /// IDLE is ended and started again after this long (servers drop it after 30 minutes).
    pub idle_renew: Duration,
    /// How long the store lease on this mailbox lasts without renewal: the time another
    /// instance waits before taking over from one that died. Renewed every third of it.
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// `From:` of every mail we send, e.g. `Support <support@example.test>`.
    pub from: lettre::message::Mailbox,
    pub message_id_domain: String,
    pub transport: TransportConfig,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub concurrency: usize,
    /// How long a message claimed for delivery stays with the sender that claimed it; after
    /// that (the sender died) another sender, or this one after a restart, takes it over.
    pub claim_timeout: Duration,
    /// `outbound.max_attachment_size`: the largest file relayed from an agent to a customer;
    /// a larger one is left out and the agent told.
    pub max_attachment_bytes: usize,
    /// `outbound.max_total_attachment_size`: all files of one relayed mail together; the
    /// ones that no longer fit are left out and the agent told.
    pub max_total_attachment_bytes: usize,
    /// `[outbound.dkim]`: every outbound mail is signed with this key when set.
    pub dkim: Option<std::sync::Arc<crate::auth::sign::Signer>>,
    /// `outbound.bounce_key`: the HMAC key of the signed envelope sender (VERP,
    /// `bounces+OUTBOXID.SIGNATURE@domain`). `None`: no VERP; bounces are still recognised,
    /// and act only when they quote the Message-ID of a message we sent.
    pub bounce_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// Each message written as an `.eml` file in this folder.
    File {
        dir: PathBuf,
    },
    Smtp(SmtpConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same machine or network.
    None,
    StartTls,
    Implicit,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub helo_name: Option<String>,
    /// Envelope sender (bounce address); the `From:` address when unset.
    pub envelope_from: Option<String>,
    /// PEM file of the certificate authorities to trust; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TicketsConfig {
    pub reference_prefix: String,
    pub key_pattern: Regex,
    pub default_language: String,
    /// Told to senders whose key is missing or wrong: where they find theirs.
    pub key_help: String,
    pub acknowledge_followups: bool,
}

#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Lower-case addresses that are ours: mail from them is never answered or ticketed.
    pub own_addresses: Vec<String>,
    pub auto_reply_limit: u32,
    pub auto_reply_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[daemon]`: how the long-running process behaves.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// At SIGTERM/SIGINT: how long the tasks get to finish their commits and sends.
    pub shutdown_timeout: Duration,
}

/// `[http]`: the web server inside the daemon (health, metrics, API, ticket pages, ops).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `http.listen`: address to bind; `None` when set empty (no web server).
    pub listen: Option<std::net::SocketAddr>,
    /// `http.public_url`: the address customers reach, without a trailing `/`; `None`: no
    /// links to the ticket page in mail.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

// ---- the file's shape --------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    inbound: RawInbound,
    #[serde(default)]
    outbound: RawOutbound,
    #[serde(default)]
    tickets: RawTickets,
    #[serde(default)]
    loops: RawLoops,
    #[serde(default)]
    registry: RawRegistry,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    announcements: RawAnnouncements,
    /// Read key by key in [`crate::probes::config`], so that every error names `probes[N].key`.
    #[serde(default)]
    probes: Vec<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnnouncements {
    key: Option<String>,
    update_interval: Option<String>,
    pending_expiry: Option<String>,
    reminder_before: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    shutdown_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    maildir: Option<String>,
    poll_interval: Option<String>,
    batch_size: Option<usize>,
    max_message_size: Option<String>,
    max_attachment_size: Option<String>,
    /// Read key by key in [`imap_config`], so that every error names `inbound.imap[N].key`.
    imap: Option<Vec<toml::Table>>,
    reply_key: Option<String>,
    reply_key_env: Option<String>,
    reply_key_file: Option<String>,
    trusted_authserv_ids: Option<Vec<String>>,
    trusted_sources: Option<Vec<String>>,
    dns_timeout: Option<String>,
    lmtp: Option<RawLmtp>,
    #[serde(default)]
    limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLmtp {
    listen: Option<String>,
    socket_mode: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_header_count: Option<usize>,
    max_header_size: Option<String>,
    max_mime_depth: Option<usize>,
    max_parts: Option<usize>,
    max_line_length: Option<String>,
    max_total_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    from: Option<String>,
    message_id_domain: Option<String>,
    transport: Option<String>,
    dir: Option<String>,
    max_attempts: Option<u32>,
    retry_base: Option<String>,
    retry_max: Option<String>,
    concurrency: Option<usize>,
    claim_timeout: Option<String>,
    bounce_key: Option<String>,
    #[serde(default)]
    smtp: Option<RawSmtp>,
    max_attachment_size: Option<String>,
    max_total_attachment_size: Option<String>,
    #[serde(default)]
    dkim: Option<RawDkim>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    selector: Option<String>,
    domain: Option<String>,
    key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    helo_name: Option<String>,
    envelope_from: Option<String>,
    timeout: Option<String>,
    ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTickets {
    reference_prefix: Option<String>,
    key_pattern: Option<String>,
    default_language: Option<String>,
    key_help: Option<String>,
    acknowledge_followups: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoops {
    own_addresses: Option<Vec<String>>,
    auto_reply_limit: Option<u32>,
    auto_reply_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

/// `[inbound.limits]`, each checked for a sane value.
fn inbound_limits(raw: RawLimits) -> Result<InboundLimits, ConfigError> {
    let d = InboundLimits::default();
    let count = |key: &str, v: Option<usize>, default: usize| match v {
        Some(0) => Err(err(key, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let bytes = |key: &str, v: Option<&str>, default: usize| match v {
        Some(v) => match size(key, v)? {
            0 => Err(err(key, "must be more than 0 bytes")),
            n => Ok(n),
        },
        None => Ok(default),
    };
    Ok(InboundLimits {
        max_header_count: count(
            "inbound.limits.max_header_count",
            raw.max_header_count,
            d.max_header_count,
        )?,
        max_header_bytes: bytes(
            "inbound.limits.max_header_size",
            raw.max_header_size.as_deref(),
            d.max_header_bytes,
        )?,
        max_mime_depth: count(
            "inbound.limits.max_mime_depth",
            raw.max_mime_depth,
            d.max_mime_depth,
        )?,
        max_parts: count("inbound.limits.max_parts", raw.max_parts, d.max_parts)?,
        max_line_bytes: bytes(
            "inbound.limits.max_line_length",
            raw.max_line_length.as_deref(),
            d.max_line_bytes,
        )?,
        max_total_bytes: bytes(
            "inbound.limits.max_total_size",
            raw.max_total_size.as_deref(),
            d.max_total_bytes,
        )?,
    })
}

/// `outbound.bounce_key`: the key itself, `env:NAME` (an environment variable) or
/// `file:PATH` (a file, trailing newlines removed); at least 16 bytes.
fn bounce_key(
    raw: Option<&str>,
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    secret_key("outbound.bounce_key", raw, path, env)
}

/// A key setting named `KEY`: the key itself, `env:NAME` or `file:PATH` (trailing newlines
/// removed); at least 16 bytes. Errors name the setting, never show the key.
fn secret_key(
    setting: &str,
    raw: Option<&str>,
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let key = if let Some(var) = raw.strip_prefix("env:") {
        env(var).ok_or_else(|| {
            err(
                setting,
                format!("names the environment variable {var}, which is not set"),
            )
        })?
    } else if let Some(file) = raw.strip_prefix("file:") {
        let p = path(file);
        std::fs::read_to_string(&p)
            .map_err(|e| err(setting, format!("cannot read {}: {e}", p.display())))?
            .trim_end_matches(['\r', '\n'])
            .to_string()
    } else {
        raw.to_string()
    };
    if key.len() < 16 {
        // The key is never shown, not even in part.
        return Err(err(
            setting,
            "is shorter than 16 bytes: use a long random value, e.g. `openssl rand -hex 32`",
        ));
    }
    Ok(Some(Secret(key)))
}

/// The default key pattern: four groups of four letters or digits, e.g. `ACME-7Q2M-4KX9-0001`.
/// Word boundaries are ASCII (`(?-u:\b)`): they keep the regex on its fast engine.
pub const DEFAULT_KEY_PATTERN: &str =
    r"(?i)(?-u:\b)([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})(?-u:\b)";

impl Config {
    /// Loads `path`, or `./ticketgate.toml` when present, or the embedded default.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Self::from_file(p),
            None => {
                let local = Path::new("ticketgate.toml");
                if local.exists() {
                    Self::from_file(local)
                } else {
                    Self::embedded_default()
                }
            }
        }
    }

    /// SQLite in `var/`, a Maildir inbox in `var/inbox`, `.eml` files in `var/outbox`,
    /// customers in `customers.toml`, all relative to the working directory.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Self::build(
            RawConfig::default(),
            Path::new("."),
            ConfigSource::EmbeddedDefault,
            &|name| std::env::var(name).ok(),
        )
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(
                "--config",
                format!("cannot read {}: {e}; check the path", path.display()),
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base, ConfigSource::File(path.to_path_buf()))
    }

    /// Parses settings from TOML text; relative paths are taken from `base`.
    pub fn from_toml(text: &str, base: &Path, source: ConfigSource) -> Result<Config, ConfigError> {
        Self::from_toml_with_env(text, base, source, &|name| std::env::var(name).ok())
    }

    pub fn from_toml_with_env(
        text: &str,
        base: &Path,
        source: ConfigSource,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
        Self::build(raw, base, source, env)
    }

    fn build(
        raw: RawConfig,
        base: &Path,
        source: ConfigSource,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() || base == Path::new(".") {
                p
            } else {
                base.join(p)
            }
        };

        let database_url = raw
            .database
            .url
            .unwrap_or_else(|| "sqlite:var/ticketgate.db".to_string());
        let database_url = match database_url.split_once(':') {
            Some(("sqlite", rest)) => {
                let file = rest.trim_start_matches("//");
                if file.is_empty() {
                    return Err(err(
                        "database.url",
                        "names no file: write e.g. sqlite:var/ticketgate.db",
                    ));
                }
                format!("sqlite:{}", path(file).display())
            }
            Some(("postgres" | "postgresql", _)) => {
                if let Err(e) = crate::store::PgStore::check_url(&database_url) {
                    // The parser's words, never the URL itself (it may hold a password).
                    let e = e.replace(database_url.as_str(), "(the URL)");
                    return Err(err(
                        "database.url",
                        format!(
                            "is not a PostgreSQL URL ({e}): write e.g. postgres://USER:PASSWORD@HOST:5432/DATABASE, with sslmode=verify-full&sslrootcert=/path/to/ca.pem for verified TLS"
                        ),
                    ));
                }
                database_url
            }
            // Only the scheme is shown: the rest may hold a password.
            scheme => {
                let what = match scheme {
                    Some((scheme, _)) => format!("the scheme `{scheme}:` is not supported"),
                    None => "it has no scheme".to_string(),
                };
                return Err(err(
                    "database.url",
                    format!(
                        "is not a database URL ({what}): write sqlite:PATH or postgres://USER:PASSWORD@HOST/DATABASE"
                    ),
                ));
            }
        };
        let database_url = DatabaseUrl(database_url);

        let inbound = InboundConfig {
            maildir: path(raw.inbound.maildir.as_deref().unwrap_or("var/inbox")),
            poll_interval: duration(
                "inbound.poll_interval",
                raw.inbound.poll_interval.as_deref().unwrap_or("1s"),
            )?,
            batch_size: match raw.inbound.batch_size.unwrap_or(1024) {
                0 => return Err(err("inbound.batch_size", "must be at least 1")),
                n => n,
            },
            max_message_bytes: size(
                "inbound.max_message_size",
                raw.inbound.max_message_size.as_deref().unwrap_or("25MB"),
            )?,
            max_attachment_bytes: size(
                "inbound.max_attachment_size",
                raw.inbound.max_attachment_size.as_deref().unwrap_or("10MB"),
            )?,
            imap: {
                let tables = raw.inbound.imap.unwrap_or_default();
                let mut boxes: Vec<ImapConfig> = Vec::with_capacity(tables.len());
                for (i, t) in tables.iter().enumerate() {
                    let b = imap_config(i, t, &path, env)?;
                    if boxes.iter().any(|o| o.name == b.name) {
                        return Err(err(
                            &format!("inbound.imap[{i}].name"),
                            format!(
                                "`{}` is already the name of another mailbox: names must be unique",
                                b.name
                            ),
                        ));
                    }
                    boxes.push(b);
                }
                boxes
            },
            reply_key: {
                let (key, given) = match (
                    raw.inbound.reply_key,
                    raw.inbound.reply_key_env,
                    raw.inbound.reply_key_file,
                ) {
                    (None, None, None) => (None, "inbound.reply_key"),
                    (Some(k), None, None) => (Some(k), "inbound.reply_key"),
                    (None, Some(var), None) => (
                        Some(env(&var).ok_or_else(|| {
                            err(
                                "inbound.reply_key_env",
                                format!("names the environment variable {var}, which is not set"),
                            )
                        })?),
                        "inbound.reply_key_env",
                    ),
                    (None, None, Some(file)) => {
                        let p = path(&file);
                        let text = std::fs::read_to_string(&p).map_err(|e| {
                            err(
                                "inbound.reply_key_file",
                                format!("cannot read {}: {e}", p.display()),
                            )
                        })?;
                        (Some(text), "inbound.reply_key_file")
                    }
                    _ => {
                        return Err(err(
                            "inbound.reply_key",
                            "is given more than once (reply_key, reply_key_env, reply_key_file): keep one",
                        ));
                    }
                };
                match key {
                    Some(k) if k.trim().len() < 16 => {
                        return Err(err(
                            given,
                            "is shorter than 16 characters: use a long random text, e.g. `openssl rand -hex 32`",
                        ));
                    }
                    Some(k) => Some(Secret(k.trim().to_string())),
                    None => None,
                }
            },
            trusted_authserv_ids: raw
                .inbound
                .trusted_authserv_ids
                .unwrap_or_default()
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .collect(),
            trusted_sources: Vec::new(),
            dns_timeout: duration(
                "inbound.dns_timeout",
                raw.inbound.dns_timeout.as_deref().unwrap_or("3s"),
            )?,
            lmtp: match raw.inbound.lmtp {
                Some(l) => Some(lmtp_config(l, &path)?),
                None => None,
            },
            limits: inbound_limits(raw.inbound.limits.unwrap_or_default())?,
        };
        let mut inbound = inbound;
        for (i, t) in raw
            .inbound
            .trusted_sources
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let known = t == "ingest"
                || t == "maildir"
                || t == "lmtp"
                || t.strip_prefix("imap:")
                    .is_some_and(|n| inbound.imap.iter().any(|b| b.name == n));
            if !known {
                return Err(err(
                    &format!("inbound.trusted_sources[{i}]"),
                    format!(
                        "`{t}` is not a source: use \"ingest\", \"maildir\", \"lmtp\" or \"imap:NAME\" with the name of an [[inbound.imap]] mailbox"
                    ),
                ));
            }
            inbound.trusted_sources.push(t.clone());
        }
        if let Some((i, _)) = inbound
            .trusted_authserv_ids
            .iter()
            .enumerate()
            .find(|(_, id)| id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == ';'))
        {
            return Err(err(
                &format!("inbound.trusted_authserv_ids[{i}]"),
                "is not an authserv-id: write the name your receiving server puts first in its Authentication-Results, e.g. \"mx.example.com\"",
            ));
        }

        let from_text = raw
            .outbound
            .from
            .unwrap_or_else(|| "Support <support@support.example.test>".to_string());
        let from: lettre::message::Mailbox = from_text.parse().map_err(|e| {
            err(
                "outbound.from",
                format!("`{from_text}` is not an address ({e}); write e.g. \"Support <support@example.com>\""),
            )
        })?;
        let message_id_domain = raw
            .outbound
            .message_id_domain
            .unwrap_or_else(|| from.email.domain().to_string());
        if message_id_domain.is_empty()
            || !message_id_domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(err(
                "outbound.message_id_domain",
                "must be a plain domain name such as support.example.com",
            ));
        }
        let transport = match raw.outbound.transport.as_deref().unwrap_or("file") {
            "file" => {
                if raw.outbound.smtp.is_some() {
                    return Err(err(
                        "outbound.smtp",
                        "is set but outbound.transport is \"file\": set transport = \"smtp\" or remove the [outbound.smtp] table",
                    ));
                }
                TransportConfig::File {
                    dir: path(raw.outbound.dir.as_deref().unwrap_or("var/outbox")),
                }
            }
            "smtp" => {
                let smtp = raw.outbound.smtp.ok_or_else(|| {
                    err("outbound.smtp", "transport is \"smtp\" but there is no [outbound.smtp] table with at least `host`")
                })?;
                TransportConfig::Smtp(smtp_config(smtp, &path, env)?)
            }
            other => {
                return Err(err(
                    "outbound.transport",
                    format!("`{other}` is not a transport: use \"file\" or \"smtp\""),
                ));
            }
        };
        let outbound = OutboundConfig {
            from,
            message_id_domain,
            transport,
            max_attempts: match raw.outbound.max_attempts.unwrap_or(8) {
                0 => return Err(err("outbound.max_attempts", "must be at least 1")),
                n => n,
            },
            retry_base: duration(
                "outbound.retry_base",
                raw.outbound.retry_base.as_deref().unwrap_or("30s"),
            )?,
            retry_max: duration(
                "outbound.retry_max",
                raw.outbound.retry_max.as_deref().unwrap_or("1h"),
            )?,
            concurrency: match raw.outbound.concurrency.unwrap_or(8) {
                0 => return Err(err("outbound.concurrency", "must be at least 1")),
                n => n,
            },
            claim_timeout: match duration(
                "outbound.claim_timeout",
                raw.outbound.claim_timeout.as_deref().unwrap_or("5m"),
            )? {
                d if d < Duration::from_secs(1) => {
                    return Err(err(
                        "outbound.claim_timeout",
                        "must be at least 1s (and longer than one delivery attempt takes)",
                    ));
                }
                d => d,
            },
            max_attachment_bytes: size(
                "outbound.max_attachment_size",
                raw.outbound
                    .max_attachment_size
                    .as_deref()
                    .unwrap_or("10MB"),
            )?,
            max_total_attachment_bytes: size(
                "outbound.max_total_attachment_size",
                raw.outbound
                    .max_total_attachment_size
                    .as_deref()
                    .unwrap_or("20MB"),
            )?,
            dkim: match raw.outbound.dkim {
                None => None,
                Some(d) => Some(std::sync::Arc::new(dkim_signer(d, &path)?)),
            },
            bounce_key: bounce_key(raw.outbound.bounce_key.as_deref(), &path, env)?,
        };
        if let TransportConfig::Smtp(smtp) = &outbound.transport {
            // A claim must outlive any attempt made under it, or a stalled attempt's message
            // could be claimed and sent again by another sender.
            let attempt = smtp.timeout.saturating_mul(8);
            if outbound.claim_timeout <= attempt {
                return Err(err(
                    "outbound.claim_timeout",
                    format!(
                        "must be longer than one delivery attempt can take, 8 × \
                         outbound.smtp.timeout = {}s: raise it (default 5m) or lower the timeout",
                        attempt.as_secs()
                    ),
                ));
            }
        }

        let prefix = raw
            .tickets
            .reference_prefix
            .unwrap_or_else(|| "TKT".to_string());
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(err(
                "tickets.reference_prefix",
                "must be 1 to 16 ASCII letters or digits, e.g. TKT",
            ));
        }
        let pattern = raw
            .tickets
            .key_pattern
            .unwrap_or_else(|| DEFAULT_KEY_PATTERN.to_string());
        let key_pattern = Regex::new(&pattern).map_err(|e| {
            err(
                "tickets.key_pattern",
                format!("is not a valid regular expression: {e}"),
            )
        })?;
        if key_pattern.captures_len() < 2 {
            return Err(err(
                "tickets.key_pattern",
                "needs one capture group around the key itself, e.g. Support-Key: ([A-Z0-9-]+)",
            ));
        }
        let default_language = raw
            .tickets
            .default_language
            .unwrap_or_else(|| "en".to_string());
        if !crate::lang::LANGUAGES.contains(&default_language.as_str()) {
            return Err(err(
                "tickets.default_language",
                format!(
                    "`{default_language}` has no templates: use one of {:?}",
                    crate::lang::LANGUAGES
                ),
            ));
        }
        let tickets = TicketsConfig {
            reference_prefix: prefix.to_ascii_uppercase(),
            key_pattern,
            default_language,
            key_help: raw.tickets.key_help.unwrap_or_else(|| {
                "Your support key is in the welcome mail of your support subscription; \
                 your company's support contact can also give it to you."
                    .to_string()
            }),
            acknowledge_followups: raw.tickets.acknowledge_followups.unwrap_or(false),
        };

        let mut own: Vec<String> = raw
            .loops
            .own_addresses
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        for (i, a) in own.iter().enumerate() {
            if !a.contains('@') {
                return Err(err(
                    &format!("loops.own_addresses[{i}]"),
                    format!("`{a}` is not a mail address"),
                ));
            }
        }
        let from_addr = outbound.from.email.to_string().to_ascii_lowercase();
        if !own.contains(&from_addr) {
            own.push(from_addr);
        }
        let loops = LoopConfig {
            own_addresses: own,
            auto_reply_limit: raw.loops.auto_reply_limit.unwrap_or(10),
            auto_reply_window: duration(
                "loops.auto_reply_window",
                raw.loops.auto_reply_window.as_deref().unwrap_or("3h"),
            )?,
        };

        let log = LogConfig {
            format: match raw.log.format.as_deref().unwrap_or("text") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(err(
                        "log.format",
                        format!("`{other}` is not a log format: use \"text\" or \"json\""),
                    ));
                }
            },
            level: {
                let level = raw.log.level.unwrap_or_else(|| "info".to_string());
                tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| {
                    err("log.level", format!("`{level}` is not a level or filter ({e}); use e.g. info or ticketgate=debug"))
                })?;
                level
            },
        };

        Ok(Config {
            source,
            database_url,
            inbound,
            outbound,
            tickets,
            loops,
            registry_path: path(raw.registry.path.as_deref().unwrap_or("customers.toml")),
            templates_dir: raw.templates.dir.as_deref().map(path),
            log,
            daemon: DaemonConfig {
                shutdown_timeout: {
                    let t = duration(
                        "daemon.shutdown_timeout",
                        raw.daemon.shutdown_timeout.as_deref().unwrap_or("30s"),
                    )?;
                    if t.is_zero() {
                        return Err(err("daemon.shutdown_timeout", "must be more than 0"));
                    }
                    t
                },
            },
            http: http_config(raw.http)?,
            announcements: announcements_config(raw.announcements, &path, env)?,
            probes: crate::probes::config::probes(&raw.probes, &path, env)?,
        })
    }
}

fn announcements_config(
    raw: RawAnnouncements,
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AnnouncementsConfig, ConfigError> {
    let d = AnnouncementsConfig::default();
    let positive = |key: &str, text: Option<&str>, default: Duration| match text {
        None => Ok(default),
        Some(t) => {
            let v = duration(key, t)?;
            if v.is_zero() {
                Err(err(key, "must be more than 0"))
            } else {
                Ok(v)
            }
        }
    };
    Ok(AnnouncementsConfig {
        key: secret_key("announcements.key", raw.key.as_deref(), path, env)?,
        update_interval: positive(
            "announcements.update_interval",
            raw.update_interval.as_deref(),
            d.update_interval,
        )?,
        pending_expiry: positive(
            "announcements.pending_expiry",
            raw.pending_expiry.as_deref(),
            d.pending_expiry,
        )?,
        reminder_before: match raw.reminder_before.as_deref().map(str::trim) {
            None => d.reminder_before,
            Some("0") => Duration::ZERO,
            Some(t) => duration("announcements.reminder_before", t)?,
        },
    })
}

fn http_config(raw: RawHttp) -> Result<HttpConfig, ConfigError> {
    let listen = match raw.listen.as_deref().map(str::trim) {
        None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8025))),
        Some("") => None,
        Some(a) => Some(a.parse().map_err(|e| {
            err(
                "http.listen",
                format!(
                    "`{a}` is not an address and port ({e}): write e.g. 127.0.0.1:8025, or \"\" to run no web server"
                ),
            )
        })?),
    };
    let public_url = match raw.public_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) => {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() > "https://".len()
                && !u.contains(char::is_whitespace);
            if !ok {
                return Err(err(
                    "http.public_url",
                    format!("`{u}` is not an http(s) URL: write e.g. https://support.example.com"),
                ));
            }
            Some(u.trim_end_matches('/').to_string())
        }
    };
    Ok(HttpConfig { listen, public_url })
}

fn smtp_config(
    raw: RawSmtp,
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SmtpConfig, ConfigError> {
    let host = raw.host.filter(|h| !h.trim().is_empty()).ok_or_else(|| {
        err(
            "outbound.smtp.host",
            "is required when transport = \"smtp\"",
        )
    })?;
    let tls = match raw.tls.as_deref().unwrap_or("starttls") {
        "none" => SmtpTls::None,
        "starttls" => SmtpTls::StartTls,
        "tls" | "implicit" => SmtpTls::Implicit,
        other => {
            return Err(err(
                "outbound.smtp.tls",
                format!(
                    "`{other}` is not a mode: use \"starttls\", \"tls\" (implicit, port 465) or \"none\" (local relay only)"
                ),
            ));
        }
    };
    let port = raw.port.unwrap_or(match tls {
        SmtpTls::Implicit => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::None => 25,
    });
    let password = match (raw.password_env, raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(err(
                "outbound.smtp.password_env",
                "and password_file are both set: keep one",
            ));
        }
        (Some(var), None) => Some(Secret(env(&var).ok_or_else(|| {
            err(
                "outbound.smtp.password_env",
                format!("names the environment variable {var}, which is not set"),
            )
        })?)),
        (None, Some(file)) => {
            let p = path(&file);
            let text = std::fs::read_to_string(&p).map_err(|e| {
                err(
                    "outbound.smtp.password_file",
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            Some(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        (None, None) => None,
    };
    if password.is_some() && raw.username.is_none() {
        return Err(err(
            "outbound.smtp.username",
            "is required when a password is given",
        ));
    }
    Ok(SmtpConfig {
        host,
        port,
        tls,
        username: raw.username,
        password,
        helo_name: raw.helo_name,
        envelope_from: raw.envelope_from,
        ca_file: match raw.ca_file {
            Some(_) if tls == SmtpTls::None => {
                return Err(err(
                    "outbound.smtp.ca_file",
                    "is set but tls = \"none\": remove it or use tls = \"starttls\" or \"tls\"",
                ));
            }
            Some(f) => {
                let p = path(&f);
                if !p.is_file() {
                    return Err(err(
                        "outbound.smtp.ca_file",
                        format!("{} is not a readable file", p.display()),
                    ));
                }
                Some(p)
            }
            None => None,
        },
        timeout: match duration(
            "outbound.smtp.timeout",
            raw.timeout.as_deref().unwrap_or("30s"),
        )? {
            d if d.is_zero() => {
                return Err(err(
                    "outbound.smtp.timeout",
                    "must be more than 0: it limits connecting and each SMTP command",
                ));
            }
            d => d,
        },
    })
}

/// The keys an `[[inbound.imap]]` table may have.
const IMAP_KEYS: &[&str] = &[
    "name",
    "host",
    "port",
    "tls",
    "ca_file",
    "username",
    "auth",
    "password_env",
    "password_file",
    "token_file",
    "token_command",
    "folder",
    "after",
    "move_to",
    "idle",
    "poll_interval",
    "idle_renew",
    "lease",
];

/// Typed access to one table of an array (`[[inbound.imap]]`, `[[probes]]`); errors name
/// `TABLE[N].key`.
pub(crate) struct Keys<'a> {
    pub(crate) t: &'a toml::Table,
    /// `inbound.imap`, `probes`.
    pub(crate) table: &'static str,
    pub(crate) i: usize,
}

impl<'a> Keys<'a> {
    /// Table `i` of the array `table`, refused when it holds a key not in `known`.
    pub(crate) fn open(
        t: &'a toml::Table,
        table: &'static str,
        i: usize,
        known: &[&str],
    ) -> Result<Keys<'a>, ConfigError> {
        let k = Keys { t, table, i };
        if let Some(unknown) = t.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(err(
                &k.key(unknown),
                format!("unknown key; a [[{table}]] table takes {known:?}"),
            ));
        }
        Ok(k)
    }

    pub(crate) fn key(&self, k: &str) -> String {
        format!("{}[{}].{k}", self.table, self.i)
    }

    /// A password from `password_env` (the name of an environment variable) or
    /// `password_file` (its first line), exactly one of them; `None` when neither is set.
    pub(crate) fn password(
        &self,
        path: &dyn Fn(&str) -> PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        match (self.string("password_env")?, self.string("password_file")?) {
            (Some(_), Some(_)) => Err(err(
                &self.key("password_env"),
                "and password_file are both set: keep one",
            )),
            (Some(var), None) => env(&var).map(|v| Some(Secret(v))).ok_or_else(|| {
                err(
                    &self.key("password_env"),
                    format!("names the environment variable {var}, which is not set"),
                )
            }),
            (None, Some(file)) => {
                let p = path(&file);
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    err(
                        &self.key("password_file"),
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?;
                Ok(Some(Secret(
                    text.trim_end_matches(['\r', '\n']).to_string(),
                )))
            }
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn string(&self, k: &str) -> Result<Option<String>, ConfigError> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(err(
                &self.key(k),
                format!("must be a string (in quotes), not a {}", v.type_str()),
            )),
        }
    }

    /// `ca_file`: a PEM file of CA certificates, resolved with `path`; `without_tls` is the
    /// error when it is set on a connection that uses no TLS.
    pub(crate) fn ca_file(
        &self,
        path: &dyn Fn(&str) -> PathBuf,
        uses_tls: bool,
        without_tls: &str,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(ca) = self.string("ca_file")?.map(|p| path(&p)) else {
            return Ok(None);
        };
        if !uses_tls {
            return Err(err(&self.key("ca_file"), without_tls));
        }
        if !ca.is_file() {
            return Err(err(
                &self.key("ca_file"),
                format!(
                    "{} is not a readable file: give a PEM file of CA certificates",
                    ca.display()
                ),
            ));
        }
        Ok(Some(ca))
    }

    /// A string that must be present and not blank.
    pub(crate) fn required(&self, k: &str, example: &str) -> Result<String, ConfigError> {
        match self.string(k)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(err(&self.key(k), format!("is empty: write e.g. {example}"))),
            None => Err(err(
                &self.key(k),
                format!("is required: write e.g. {example}"),
            )),
        }
    }

    fn bool(&self, k: &str) -> Result<Option<bool>, ConfigError> {
        match self.t.get(k) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(err(
                &self.key(k),
                format!("must be true or false, not a {}", v.type_str()),
            )),
        }
    }
}

fn imap_config(
    i: usize,
    t: &toml::Table,
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ImapConfig, ConfigError> {
    let k = Keys::open(t, "inbound.imap", i, IMAP_KEYS)?;
    let name = k.required("name", "name = \"support\"")?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(err(
            &k.key("name"),
            format!("`{name}` may hold only ASCII letters, digits and - _ . @"),
        ));
    }
    let host = k.required("host", "host = \"imap.example.com\"")?;
    let tls = match k.string("tls")?.as_deref() {
        Some("implicit") => ImapTls::Implicit,
        Some("starttls") => ImapTls::StartTls,
        Some("none") => ImapTls::None,
        Some(other) => {
            return Err(err(
                &k.key("tls"),
                format!(
                    "`{other}` is not a mode: use \"implicit\" (port 993), \"starttls\" (port 143) or \"none\" (plain text, a server on this host only)"
                ),
            ));
        }
        None => {
            return Err(err(
                &k.key("tls"),
                "is required: write tls = \"implicit\" (port 993) or \"starttls\" (port 143); \"none\" sends the password in plain text",
            ));
        }
    };
    let port = match t.get("port") {
        None => match tls {
            ImapTls::Implicit => 993,
            ImapTls::StartTls | ImapTls::None => 143,
        },
        Some(toml::Value::Integer(n)) => match u16::try_from(*n) {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(err(
                    &k.key("port"),
                    format!("{n} is not a port (1 to 65535)"),
                ));
            }
        },
        Some(v) => {
            return Err(err(
                &k.key("port"),
                format!("must be a number such as 993, not a {}", v.type_str()),
            ));
        }
    };
    let ca_file = k.ca_file(
        path,
        tls != ImapTls::None,
        "is set but tls = \"none\": remove it or use tls = \"implicit\" or \"starttls\"",
    )?;
    let username = k.required("username", "username = \"support@example.com\"")?;
    let password_env = k.string("password_env")?;
    let password_file = k.string("password_file")?;
    let token_file = k.string("token_file")?;
    let token_command = k.string("token_command")?;
    let auth = match k.string("auth")?.as_deref().unwrap_or("password") {
        "password" => {
            if token_file.is_some() || token_command.is_some() {
                let key = if token_file.is_some() {
                    "token_file"
                } else {
                    "token_command"
                };
                return Err(err(
                    &k.key(key),
                    "is for auth = \"xoauth2\"; with auth = \"password\" set password_env or password_file",
                ));
            }
            let secret = k.password(path, env)?.ok_or_else(|| {
                err(
                    &k.key("password_env"),
                    "is required with auth = \"password\" (or password_file): the password never goes in this file",
                )
            })?;
            ImapAuth::Password(secret)
        }
        "xoauth2" => {
            if password_env.is_some() || password_file.is_some() {
                let key = if password_env.is_some() {
                    "password_env"
                } else {
                    "password_file"
                };
                return Err(err(
                    &k.key(key),
                    "is for auth = \"password\"; with auth = \"xoauth2\" set token_file or token_command",
                ));
            }
            match (token_file, token_command) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        &k.key("token_file"),
                        "and token_command are both set: keep one",
                    ));
                }
                (Some(f), None) => ImapAuth::XOAuth2(TokenSource::File(path(&f))),
                (None, Some(c)) if !c.trim().is_empty() => {
                    ImapAuth::XOAuth2(TokenSource::Command(c))
                }
                (None, Some(_)) => return Err(err(&k.key("token_command"), "is empty")),
                (None, None) => {
                    return Err(err(
                        &k.key("token_file"),
                        "is required with auth = \"xoauth2\" (or token_command): where the access token is read at each login",
                    ));
                }
            }
        }
        other => {
            return Err(err(
                &k.key("auth"),
                format!("`{other}` is not a method: use \"password\" or \"xoauth2\""),
            ));
        }
    };
    let folder = k.string("folder")?.unwrap_or_else(|| "INBOX".to_string());
    if folder.trim().is_empty() {
        return Err(err(
            &k.key("folder"),
            "is empty: write e.g. folder = \"INBOX\"",
        ));
    }
    let after = match k.string("after")?.as_deref().unwrap_or("move") {
        "move" => AfterAction::Move,
        "flag" => AfterAction::Flag,
        "delete" => AfterAction::Delete,
        other => {
            return Err(err(
                &k.key("after"),
                format!("`{other}` is not an action: use \"move\", \"flag\" or \"delete\""),
            ));
        }
    };
    let move_to_set = t.contains_key("move_to");
    let move_to = k
        .string("move_to")?
        .unwrap_or_else(|| "Processed".to_string());
    if move_to.trim().is_empty() {
        return Err(err(
            &k.key("move_to"),
            "is empty: write e.g. move_to = \"Processed\"",
        ));
    }
    if after == AfterAction::Move && move_to == folder {
        return Err(err(
            &k.key("move_to"),
            format!("is the folder read (`{folder}`): processed mail must go elsewhere"),
        ));
    }
    if move_to_set && after != AfterAction::Move {
        return Err(err(
            &k.key("move_to"),
            "is set but after is not \"move\": remove it or set after = \"move\"",
        ));
    }
    let poll_interval = duration(
        &k.key("poll_interval"),
        k.string("poll_interval")?.as_deref().unwrap_or("60s"),
    )?;
    if poll_interval.is_zero() {
        return Err(err(&k.key("poll_interval"), "must be more than 0"));
    }
    let idle_renew = duration(
        &k.key("idle_renew"),
        k.string("idle_renew")?.as_deref().unwrap_or("25m"),
    )?;
    if idle_renew >= Duration::from_secs(29 * 60) || idle_renew < Duration::from_secs(1) {
        return Err(err(
            &k.key("idle_renew"),
            "must be between 1s and 29m (servers may end an IDLE after 30 minutes); the default is 25m",
        ));
    }
    let lease = duration(
        &k.key("lease"),
        k.string("lease")?.as_deref().unwrap_or("30s"),
    )?;
    if lease < Duration::from_secs(2) || lease > Duration::from_secs(600) {
        return Err(err(
            &k.key("lease"),
            "must be between 2s and 10m: it is how long another instance waits to take this mailbox over when the one reading it dies; the default is 30s",
        ));
    }
    Ok(ImapConfig {
        name,
        host,
        port,
        tls,
        ca_file,
        username,
        auth,
        folder,
        after,
        move_to,
        idle: k.bool("idle")?.unwrap_or(true),
        poll_interval,
        idle_renew,
        lease,
    })
}

/// Turns a toml error into one that names the key.
fn toml_error(e: &toml::de::Error, text: &str) -> ConfigError {
    let msg = e.message().to_string();
    // serde's unknown-field message: "unknown field `x`, expected one of ..."
    let key = msg
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(|k| k.to_string())
        .unwrap_or_else(|| "(file)".to_string());
    let at = e
        .span()
        .map(|s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (line {line}, column {col})")
        })
        .unwrap_or_default();
    err(&key, format!("{msg}{at}"))
}

/// `[outbound.dkim]`: the key is read and checked now, so a bad key stops the start.
fn dkim_signer(
    d: RawDkim,
    path: &dyn Fn(&str) -> PathBuf,
) -> Result<crate::auth::sign::Signer, ConfigError> {
    let selector = d.selector.filter(|s| !s.is_empty()).ok_or_else(|| {
        err(
            "outbound.dkim.selector",
            "is missing: the DNS label of the key, e.g. \"tg2026\" for tg2026._domainkey.DOMAIN",
        )
    })?;
    if !selector
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(err(
            "outbound.dkim.selector",
            "must be letters, digits, `-`, `_` or `.`",
        ));
    }
    let domain = d.domain.filter(|s| !s.is_empty()).ok_or_else(|| {
        err(
            "outbound.dkim.domain",
            "is missing: the signing domain (d=), normally the domain of outbound.from",
        )
    })?;
    if !domain
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(err(
            "outbound.dkim.domain",
            "must be a plain domain name such as example.com",
        ));
    }
    let file = d.key_file.ok_or_else(|| {
        err(
            "outbound.dkim.key_file",
            "is missing: a PEM private key (RSA 2048 or Ed25519)",
        )
    })?;
    crate::auth::sign::Signer::load(&domain.to_ascii_lowercase(), &selector, &path(&file))
        .map_err(|problem| err("outbound.dkim.key_file", problem))
}

/// `[inbound.lmtp]`, checked key by key.
fn lmtp_config(raw: RawLmtp, path: &dyn Fn(&str) -> PathBuf) -> Result<LmtpConfig, ConfigError> {
    let listen = match raw.listen.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(err(
                "inbound.lmtp.listen",
                "is required in [inbound.lmtp]: write \"unix:/run/ticketgate/lmtp.sock\" or \"127.0.0.1:2424\"",
            ));
        }
        Some(text) => match text.strip_prefix("unix:") {
            Some("") => return Err(err("inbound.lmtp.listen", "`unix:` needs a socket path")),
            Some(p) => LmtpListen::Unix(path(p)),
            None => LmtpListen::Tcp(text.parse().map_err(|_| {
                err(
                    "inbound.lmtp.listen",
                    format!(
                        "`{text}` is neither unix:PATH nor an IP address with a port (e.g. 127.0.0.1:2424)"
                    ),
                )
            })?),
        },
    };
    let socket_mode = match raw.socket_mode.as_deref() {
        None => 0o660,
        Some(m) => match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
            Ok(v) if v <= 0o777 => v,
            _ => {
                return Err(err(
                    "inbound.lmtp.socket_mode",
                    format!("`{m}` is not an octal file mode such as \"0660\""),
                ));
            }
        },
    };
    let max_connections = match raw.max_connections.unwrap_or(64) {
        0 => return Err(err("inbound.lmtp.max_connections", "must be at least 1")),
        n => n,
    };
    Ok(LmtpConfig {
        listen,
        socket_mode,
        max_connections,
    })
}

/// Parses `500ms`, `30s`, `5m`, `3h`, `2d`.
pub fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let too_long = || {
        err(
            key,
            format!("`{text}` is too long: write at most 36500d (100 years)"),
        )
    };
    let n: u64 = num.parse().map_err(|e: std::num::ParseIntError| {
        if *e.kind() == std::num::IntErrorKind::PosOverflow {
            return too_long();
        }
        err(
            key,
            format!("`{text}` is not a duration: write e.g. 30s, 5m, 3h, 2d"),
        )
    })?;
    let (factor, per_second) = match unit.trim() {
        "ms" => (1, false),
        "s" | "" => (1, true),
        "m" | "min" => (60, true),
        "h" => (3600, true),
        "d" => (86400, true),
        _ => {
            return Err(err(
                key,
                format!("`{text}` has an unknown unit: use ms, s, m, h or d"),
            ));
        }
    };
    let d = n.checked_mul(factor).map(|v| {
        if per_second {
            Duration::from_secs(v)
        } else {
            Duration::from_millis(v)
        }
    });
    match d {
        Some(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(too_long()),
    }
}

/// The longest duration setting: every one must stay usable as a deadline
/// (`Instant + d` and chrono's arithmetic overflow far beyond it).
const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// Parses `512KB`, `25MB`, `1GB` or a byte count.
pub fn size(key: &str, text: &str) -> Result<usize, ConfigError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let too_large = || {
        err(
            key,
            format!(
                "`{text}` is too large: write at most {}GB",
                usize::MAX / (1024 * 1024 * 1024)
            ),
        )
    };
    let n: usize = num.parse().map_err(|e: std::num::ParseIntError| {
        if *e.kind() == std::num::IntErrorKind::PosOverflow {
            return too_large();
        }
        err(
            key,
            format!("`{text}` is not a size: write e.g. 512KB or 25MB"),
        )
    })?;
    let mul = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" => 1024,
        "MB" | "M" => 1024 * 1024,
        "GB" | "G" => 1024 * 1024 * 1024,
        _ => {
            return Err(err(
                key,
                format!("`{text}` has an unknown unit: use B, KB, MB or GB"),
            ));
        }
    };
    n.checked_mul(mul).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(
            text,
            Path::new("/etc/tg"),
            ConfigSource::EmbeddedDefault,
            &|v| (v == "SMTP_PW").then(|| "hunter2".to_string()),
        )
    }

    #[test]
    fn embedded_default_uses_var_folders() {
        let c = Config::embedded_default().unwrap();
        assert_eq!(c.database_url, "sqlite:var/ticketgate.db");
        assert_eq!(c.inbound.maildir, PathBuf::from("var/inbox"));
        assert!(
            matches!(c.outbound.transport, TransportConfig::File { ref dir } if dir == Path::new("var/outbox"))
        );
        assert_eq!(c.registry_path, PathBuf::from("customers.toml"));
        assert_eq!(c.loops.auto_reply_limit, 10);
        assert_eq!(c.loops.auto_reply_window, Duration::from_secs(3 * 3600));
        assert!(
            c.loops
                .own_addresses
                .contains(&"support@support.example.test".to_string())
        );
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let c = parse("[inbound]\nmaildir = \"mail/in\"\n[database]\nurl = \"sqlite:db/tg.db\"")
            .unwrap();
        assert_eq!(c.inbound.maildir, PathBuf::from("/etc/tg/mail/in"));
        assert_eq!(c.database_url, "sqlite:/etc/tg/db/tg.db");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("[inbound]\nmail_dir = \"x\"").unwrap_err();
        assert_eq!(e.key, "mail_dir");
        assert!(e.problem.contains("unknown field"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "[inbound]\npoll_interval = \"soon\"",
                "inbound.poll_interval",
            ),
            (
                "[inbound]\nmax_message_size = \"25XB\"",
                "inbound.max_message_size",
            ),
            ("[outbound]\nfrom = \"not an address\"", "outbound.from"),
            ("[outbound]\ntransport = \"pigeon\"", "outbound.transport"),
            ("[outbound]\ntransport = \"smtp\"", "outbound.smtp"),
            (
                "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"mx\"\ntls = \"maybe\"",
                "outbound.smtp.tls",
            ),
            (
                "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"mx\"\nusername = \"u\"\npassword_env = \"NOPE\"",
                "outbound.smtp.password_env",
            ),
            (
                "[tickets]\nkey_pattern = \"(unclosed\"",
                "tickets.key_pattern",
            ),
            ("[tickets]\nkey_pattern = \"[A-Z]+\"", "tickets.key_pattern"),
            (
                "[tickets]\nreference_prefix = \"T K\"",
                "tickets.reference_prefix",
            ),
            (
                "[tickets]\ndefault_language = \"de\"",
                "tickets.default_language",
            ),
            (
                "[loops]\nown_addresses = [\"nobody\"]",
                "loops.own_addresses[0]",
            ),
            ("[database]\nurl = \"mysql://x\"", "database.url"),
            ("[log]\nformat = \"xml\"", "log.format"),
        ];
        for (text, key) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn smtp_password_comes_from_env_and_is_never_printed() {
        let c = parse(
            "[outbound]\ntransport = \"smtp\"\n[outbound.smtp]\nhost = \"mx.example\"\nusername = \"tg\"\npassword_env = \"SMTP_PW\"",
        )
        .unwrap();
        let TransportConfig::Smtp(s) = &c.outbound.transport else {
            panic!("smtp expected")
        };
        assert_eq!(s.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(s.port, 587);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "secret leaked: {shown}");
    }

    #[test]
    fn the_database_password_is_never_printed() {
        let c = parse("[database]\nurl = \"postgres://tg:pa55-w0rd@db.example:5432/tickets\"\n")
            .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("pa55-w0rd"), "password leaked: {shown}");
        assert_eq!(
            format!("{}", c.database_url),
            "postgres://tg:***@db.example:5432/tickets"
        );
        // The store still gets the whole URL.
        assert_eq!(
            &*c.database_url,
            "postgres://tg:pa55-w0rd@db.example:5432/tickets"
        );
        // Unknown scheme: the error names the key and never echoes the URL's secret.
        let e =
            parse("[database]\nurl = \"mysql://tg:pa55-w0rd@db.example/tickets\"\n").unwrap_err();
        assert_eq!(e.key, "database.url");
        assert!(!e.to_string().contains("pa55-w0rd"), "password leaked: {e}");
        let e = parse("[database]\nurl = \"tg:pa55-w0rd@db.example/tickets\"\n").unwrap_err();
        assert!(!e.to_string().contains("pa55-w0rd"), "password leaked: {e}");
    }

    #[test]
    fn database_urls_are_redacted_for_display() {
        for (url, shown) in [
            (
                "postgres://tg:pw@db.example/tickets",
                "postgres://tg:***@db.example/tickets",
            ),
            (
                "postgresql://tg:p%40ss:w@d@db.example:5433/t?sslmode=require",
                "postgresql://tg:***@db.example:5433/t?sslmode=require",
            ),
            (
                "postgres://tg@db.example/t?password=pw&sslmode=require",
                "postgres://tg@db.example/t?password=***&sslmode=require",
            ),
            (
                "postgres://db.example/t?sslmode=require&password=pw",
                "postgres://db.example/t?sslmode=require&password=***",
            ),
            ("postgres://tg@db.example/t", "postgres://tg@db.example/t"),
            ("sqlite:var/ticketgate.db", "sqlite:var/ticketgate.db"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    const IMAP_MIN: &str = "[[inbound.imap]]\nname = \"support\"\nhost = \"imap.example.com\"\ntls = \"implicit\"\nusername = \"support@example.com\"\npassword_env = \"IMAP_PW\"\n";

    fn parse_imap(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(
            text,
            Path::new("/etc/tg"),
            ConfigSource::EmbeddedDefault,
            &|v| (v == "IMAP_PW").then(|| "s3cret".to_string()),
        )
    }

    #[test]
    fn imap_mailbox_defaults() {
        let c = parse_imap(IMAP_MIN).unwrap();
        let [b] = c.inbound.imap.as_slice() else {
            panic!("one mailbox expected: {:?}", c.inbound.imap)
        };
        assert_eq!(b.name, "support");
        assert_eq!((b.port, b.tls), (993, ImapTls::Implicit));
        assert_eq!(b.folder, "INBOX");
        assert_eq!(
            (b.after, b.move_to.as_str()),
            (AfterAction::Move, "Processed")
        );
        assert!(b.idle);
        assert_eq!(b.poll_interval, Duration::from_secs(60));
        assert_eq!(b.idle_renew, Duration::from_secs(25 * 60));
        assert_eq!(b.ca_file, None);
        assert!(matches!(&b.auth, ImapAuth::Password(p) if p.expose() == "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"), "secret leaked");
        // No [[inbound.imap]]: no mailbox.
        assert!(parse("").unwrap().inbound.imap.is_empty());
    }

    #[test]
    fn imap_ports_follow_tls_and_xoauth2_reads_its_token_later() {
        let c = parse_imap(
            "[[inbound.imap]]\nname = \"a\"\nhost = \"h\"\ntls = \"starttls\"\nusername = \"u\"\nauth = \"xoauth2\"\ntoken_file = \"tok\"\nafter = \"flag\"\nidle = false\npoll_interval = \"5s\"\n\
             [[inbound.imap]]\nname = \"b\"\nhost = \"h\"\ntls = \"none\"\nusername = \"u\"\nauth = \"xoauth2\"\ntoken_command = \"get-token b\"\nport = 1143\nafter = \"delete\"\nfolder = \"Support\"\n",
        )
        .unwrap();
        let a = &c.inbound.imap[0];
        assert_eq!(
            (a.port, a.tls, a.after, a.idle),
            (143, ImapTls::StartTls, AfterAction::Flag, false)
        );
        assert_eq!(a.poll_interval, Duration::from_secs(5));
        assert!(
            matches!(&a.auth, ImapAuth::XOAuth2(TokenSource::File(p)) if p == Path::new("/etc/tg/tok"))
        );
        let b = &c.inbound.imap[1];
        assert_eq!(
            (b.port, b.tls, b.after),
            (1143, ImapTls::None, AfterAction::Delete)
        );
        assert_eq!(b.folder, "Support");
        assert!(
            matches!(&b.auth, ImapAuth::XOAuth2(TokenSource::Command(c)) if c == "get-token b")
        );
    }

    #[test]
    fn imap_errors_name_their_key() {
        let with = |extra: &str| format!("{IMAP_MIN}{extra}");
        let without = |key: &str| {
            IMAP_MIN
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} =")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let cases = [
            (without("tls"), "inbound.imap[0].tls"),
            (without("host"), "inbound.imap[0].host"),
            (without("name"), "inbound.imap[0].name"),
            (without("username"), "inbound.imap[0].username"),
            (without("password_env"), "inbound.imap[0].password_env"),
            (with("tls2 = 1"), "inbound.imap[0].tls2"),
            (with("port = 70000"), "inbound.imap[0].port"),
            (with("port = \"993\""), "inbound.imap[0].port"),
            (with("after = \"archive\""), "inbound.imap[0].after"),
            (with("auth = \"kerberos\""), "inbound.imap[0].auth"),
            (with("auth = \"xoauth2\""), "inbound.imap[0].password_env"),
            (with("idle = \"yes\""), "inbound.imap[0].idle"),
            (with("idle_renew = \"29m\""), "inbound.imap[0].idle_renew"),
            (with("idle_renew = \"soon\""), "inbound.imap[0].idle_renew"),
            (
                with("poll_interval = \"0s\""),
                "inbound.imap[0].poll_interval",
            ),
            (with("move_to = \"INBOX\""), "inbound.imap[0].move_to"),
            (
                with("after = \"flag\"\nmove_to = \"Done\""),
                "inbound.imap[0].move_to",
            ),
            (
                with("ca_file = \"/nonexistent/ca.pem\""),
                "inbound.imap[0].ca_file",
            ),
            (
                // A readable file, but no TLS to use it with.
                IMAP_MIN.replace("\"implicit\"", "\"none\"")
                    + &format!("ca_file = \"{}/Cargo.toml\"\n", env!("CARGO_MANIFEST_DIR")),
                "inbound.imap[0].ca_file",
            ),
            (
                with("password_file = \"/nonexistent/pw\""),
                "inbound.imap[0].password_env",
            ),
            (with("token_file = \"tok\""), "inbound.imap[0].token_file"),
            (
                IMAP_MIN.replace("IMAP_PW", "UNSET"),
                "inbound.imap[0].password_env",
            ),
            (format!("{IMAP_MIN}{IMAP_MIN}"), "inbound.imap[1].name"),
            (
                IMAP_MIN.replace("\"support\"", "\"sup port\""),
                "inbound.imap[0].name",
            ),
        ];
        for (text, key) in &cases {
            let e = parse_imap(text).expect_err(text);
            assert_eq!(e.key, *key, "{text}: {e}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration("k", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("k", "2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(size("k", "25MB").unwrap(), 25 * 1024 * 1024);
        assert!(size("k", "-1").is_err());
    }

    #[test]
    fn overflowing_durations_and_sizes_are_errors_naming_the_key() {
        let e = size("inbound.max_message_size", "20000000000GB").unwrap_err();
        assert_eq!(e.key, "inbound.max_message_size");
        assert!(e.problem.contains("too large"), "{e}");
        let e = duration("inbound.poll_interval", "99999999999999999d").unwrap_err();
        assert_eq!(e.key, "inbound.poll_interval");
        assert!(e.problem.contains("too long"), "{e}");
        // Through the whole configuration, too.
        let e = parse("[inbound]\nmax_message_size = \"20000000000GB\"\n").unwrap_err();
        assert_eq!(e.key, "inbound.max_message_size");
        let e = parse("[inbound]\npoll_interval = \"99999999999999999d\"\n").unwrap_err();
        assert_eq!(e.key, "inbound.poll_interval");
        // A duration must stay usable as a deadline (`Instant + d` panics on overflow): at
        // most 100 years, which no setting needs.
        assert_eq!(
            duration("k", "36500d").unwrap(),
            Duration::from_secs(36_500 * 86_400)
        );
        assert!(duration("k", &format!("{}s", u64::MAX)).is_err());
        assert!(duration("k", &format!("{}ms", u64::MAX)).is_err());
        let e = duration("k", "99999999999999999999999s").unwrap_err();
        assert!(e.problem.contains("too long"), "{e}");
        let e = size("k", "99999999999999999999999").unwrap_err();
        assert!(e.problem.contains("too large"), "{e}");
        // The largest size that fits still parses.
        assert_eq!(size("k", &format!("{}", usize::MAX)).unwrap(), usize::MAX);
    }
}

#[cfg(test)]
mod announcements_tests {
    use super::*;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(
            extra,
            Path::new("/srv/tg"),
            ConfigSource::File(PathBuf::from("/srv/tg/t.toml")),
            &|_| None,
        )
    }

    #[test]
    fn announcement_settings_are_checked_and_name_their_key() {
        let c = load("").unwrap();
        assert!(c.announcements.key.is_none());
        assert_eq!(
            c.announcements.pending_expiry,
            Duration::from_secs(3 * 86_400)
        );
        let e = load("[announcements]\nkey = \"tinykey9\"\n").unwrap_err();
        assert_eq!(e.key, "announcements.key");
        assert!(
            !e.to_string().contains("tinykey9"),
            "the key is never shown: {e}"
        );
        let e = load("[announcements]\nkey = \"env:NOPE\"\n").unwrap_err();
        assert_eq!(e.key, "announcements.key");
        let e = load("[announcements]\nupdate_interval = \"0s\"\n").unwrap_err();
        assert_eq!(e.key, "announcements.update_interval");
        let c = load("[announcements]\nkey = \"0123456789abcdef\"\nupdate_interval = \"30m\"\n")
            .unwrap();
        assert_eq!(c.announcements.update_interval, Duration::from_secs(1800));
        assert_eq!(format!("{:?}", c.announcements.key), "Some(***)");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The documented example must stay a valid configuration that sets every key.
    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ticketgate.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::from_toml_with_env(
            &text,
            Path::new("/srv/tg"),
            ConfigSource::File(path),
            &|v| match v {
                "TICKETGATE_SMTP_PASSWORD" => Some("pw".to_string()),
                "TICKETGATE_BOUNCE_KEY" => Some("a-bounce-key-of-32-bytes-for-test".to_string()),
                "TICKETGATE_ANNOUNCE_KEY" => Some("an-announce-key-of-32-bytes-test".to_string()),
                _ => None,
            },
        )
        .unwrap();
        assert!(c.announcements.key.is_some());
        assert_eq!(c.announcements.update_interval, Duration::from_secs(3600));
        assert!(
            matches!(c.outbound.transport, TransportConfig::Smtp(ref s) if s.host == "smtp.example.com")
        );
        assert!(c.outbound.bounce_key.is_some());
        assert_eq!(c.inbound.limits, InboundLimits::default());
        assert_eq!(
            c.loops.own_addresses.len(),
            2,
            "from is among own_addresses already"
        );
        assert_eq!(c.templates_dir, Some(PathBuf::from("/srv/tg/templates")));
        assert!(
            c.inbound.imap.is_empty(),
            "the IMAP example is commented out"
        );
    }

    /// The commented-out `[[inbound.imap]]` example, uncommented, is valid and sets every key.
    #[test]
    fn the_imap_example_is_valid_once_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ticketgate.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let block: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "# [[inbound.imap]]")
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect();
        assert!(block.len() > 10, "IMAP example block not found");
        let ca = tempfile::NamedTempFile::new().unwrap();
        let block = block.join("\n").replace(
            "/etc/ticketgate/imap-ca.pem",
            &ca.path().display().to_string(),
        );
        for key in IMAP_KEYS {
            assert!(
                block.contains(&format!("\n{key} =")) || block.contains(&format!("# {key} =")),
                "{key} is not documented in the IMAP example"
            );
        }
        let c = Config::from_toml_with_env(
            &format!("{block}\n"),
            Path::new("/srv/tg"),
            ConfigSource::File(path),
            &|v| (v == "TICKETGATE_IMAP_PASSWORD").then(|| "pw".to_string()),
        )
        .unwrap();
        let b = &c.inbound.imap[0];
        assert_eq!(
            (b.name.as_str(), b.port, b.tls),
            ("support", 993, ImapTls::Implicit)
        );
        assert_eq!(b.ca_file.as_deref(), Some(ca.path()));
    }

    #[test]
    fn lmtp_listener() {
        let c = tests::parse("[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        let l = c.inbound.lmtp.unwrap();
        assert_eq!(l.listen, LmtpListen::Tcp("127.0.0.1:0".parse().unwrap()));
        assert_eq!((l.socket_mode, l.max_connections), (0o660, 64));
        let c = tests::parse(
            "[inbound.lmtp]\nlisten = \"unix:run/lmtp.sock\"\nsocket_mode = \"0666\"\n",
        )
        .unwrap();
        let l = c.inbound.lmtp.unwrap();
        assert!(matches!(&l.listen, LmtpListen::Unix(p) if p.ends_with("run/lmtp.sock")));
        assert_eq!(l.socket_mode, 0o666);
        assert!(tests::parse("").unwrap().inbound.lmtp.is_none());
        for (text, key) in [
            ("[inbound.lmtp]\n", "inbound.lmtp.listen"),
            (
                "[inbound.lmtp]\nlisten = \"localhost\"\n",
                "inbound.lmtp.listen",
            ),
            (
                "[inbound.lmtp]\nlisten = \"unix:\"\n",
                "inbound.lmtp.listen",
            ),
            (
                "[inbound.lmtp]\nlisten = \"127.0.0.1:24\"\nsocket_mode = \"rw\"\n",
                "inbound.lmtp.socket_mode",
            ),
            (
                "[inbound.lmtp]\nlisten = \"127.0.0.1:24\"\nmax_connections = 0\n",
                "inbound.lmtp.max_connections",
            ),
        ] {
            assert_eq!(tests::parse(text).unwrap_err().key, key, "{text}");
        }
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/tg"), ConfigSource::EmbeddedDefault)
    }

    #[test]
    fn http_listen_defaults_can_be_disabled_and_errors_name_the_key() {
        let c = parse("").unwrap();
        assert_eq!(c.http.listen, Some("127.0.0.1:8025".parse().unwrap()));
        assert_eq!(c.http.public_url, None);
        let c = parse("[http]\nlisten = \"\"\npublic_url = \"https://s.example.com/\"\n").unwrap();
        assert_eq!(c.http.listen, None);
        assert_eq!(c.http.public_url.as_deref(), Some("https://s.example.com"));
        let e = parse("[http]\nlisten = \"localhost\"\n").unwrap_err();
        assert_eq!(e.key, "http.listen");
        let e = parse("[http]\npublic_url = \"support.example.com\"\n").unwrap_err();
        assert_eq!(e.key, "http.public_url");
    }
}
