//! `[[probes]]`: read key by key, so that every error names `probes[N].key`.
//!
//! ```toml
//! [[probes]]
//! name = "eu-imap"
//! platform = "eu"
//! service = "IMAP"
//! kind = "imap"                  # http, smtp, imap, pop3
//! target = "imap.eu.example.com:993"
//! tls = "implicit"               # none (default), implicit or starttls; http: from the URL
//! username = "probe@eu.example.com"
//! password_env = "PROBE_PASSWORD"
//! interval = "60s"               # between checks
//! timeout = "60s"                # above `slow`, so a slow answer is measured, not cut off
//! slow = "30s"                   # an answer slower than this counts as down
//! window = "15m"                 # every sample of the last 15 min slow or failed → outage
//! recover = "5m"                 # healthy for 5 min → restored
//! action = "draft"               # declare (announced at once) or draft (an operator confirms)
//! ```

use crate::config::{ConfigError, Keys, Secret, duration, err};
use std::path::PathBuf;
use std::time::Duration;

/// What a probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// A GET of the target URL; any status below 500 is an answer.
    Http,
    /// The 220 greeting, then EHLO.
    Smtp,
    /// The `* OK` greeting, then LOGIN when an account is given.
    Imap,
    /// The `+OK` greeting, then USER/PASS when an account is given.
    Pop3,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Smtp => "smtp",
            ProbeKind::Imap => "imap",
            ProbeKind::Pop3 => "pop3",
        }
    }
}

/// What happens when the decision says the service is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeAction {
    /// The outage is declared and announced to the platform's incident lists at once.
    Declare,
    /// The outage is recorded as a draft: nothing is sent until an operator confirms it.
    Draft,
}

/// How a probe uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeTls {
    None,
    /// From the first byte (993, 995, 465; `https://`).
    Implicit,
    /// After the greeting: SMTP `STARTTLS`, IMAP `STARTTLS`, POP3 `STLS`.
    StartTls,
}

/// The probe account for IMAP and POP3 logins.
#[derive(Debug, Clone)]
pub struct ProbeAccount {
    pub username: String,
    pub password: Secret,
}

/// Where a probe connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub host: String,
    pub port: u16,
    /// HTTP only: the path and query of the GET (`/` when the URL has none).
    pub path: String,
}

/// One `[[probes]]` table.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Unique; the `probe` label of the metrics and the key on `/readyz`.
    pub name: String,
    pub platform: String,
    /// The service name an outage names (`IMAP`, `Webmail`…).
    pub service: String,
    pub kind: ProbeKind,
    pub target: ProbeTarget,
    /// HTTP: implicit for an `https://` URL.
    pub tls: ProbeTls,
    /// PEM file of the certificate authorities to trust; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    pub account: Option<ProbeAccount>,
    pub interval: Duration,
    pub timeout: Duration,
    pub slow: Duration,
    pub window: Duration,
    pub recover: Duration,
    pub action: ProbeAction,
    /// The impact text of an outage this probe declares.
    pub impact: String,
}

const KEYS: &[&str] = &[
    "name",
    "platform",
    "service",
    "kind",
    "target",
    "tls",
    "ca_file",
    "username",
    "password_env",
    "password_file",
    "interval",
    "timeout",
    "slow",
    "window",
    "recover",
    "action",
    "impact",
];

/// A duration key, more than 0.
fn duration_key(k: &Keys<'_>, key: &str, default: &str) -> Result<Duration, ConfigError> {
    let text = k.string(key)?;
    let d = duration(&k.key(key), text.as_deref().unwrap_or(default))?;
    if d.is_zero() {
        return Err(err(&k.key(key), "must be more than 0"));
    }
    Ok(d)
}

/// Every `[[probes]]` table, checked; names unique.
pub fn probes(
    tables: &[toml::Table],
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ProbeConfig>, ConfigError> {
    let mut out: Vec<ProbeConfig> = Vec::with_capacity(tables.len());
    for (i, t) in tables.iter().enumerate() {
        let p = probe(i, t, path, env)?;
        if out.iter().any(|o| o.name == p.name) {
            return Err(err(
                &format!("probes[{i}].name"),
                format!("`{}` is already the name of another probe", p.name),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

fn probe(
    i: usize,
    t: &toml::Table,
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProbeConfig, ConfigError> {
    let k = Keys::open(t, "probes", i, KEYS)?;
    let name = k.required("name", "name = \"eu-imap\"")?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(
            &k.key("name"),
            format!("`{name}` may hold only ASCII letters, digits and - _ ."),
        ));
    }
    // Platforms are lower-case, as the registry's.
    let platform = k
        .required("platform", "platform = \"eu\"")?
        .trim()
        .to_ascii_lowercase();
    let service = k
        .required("service", "service = \"IMAP\"")?
        .trim()
        .to_string();
    if service.contains(',') {
        return Err(err(
            &k.key("service"),
            format!("`{service}` names one service: no commas"),
        ));
    }
    let kind = match k.required("kind", "kind = \"imap\"")?.trim() {
        "http" => ProbeKind::Http,
        "smtp" => ProbeKind::Smtp,
        "imap" => ProbeKind::Imap,
        "pop3" => ProbeKind::Pop3,
        other => {
            return Err(err(
                &k.key("kind"),
                format!(
                    "`{other}` is not a probe kind: use \"http\", \"smtp\", \"imap\" or \"pop3\""
                ),
            ));
        }
    };
    let target_text = k.required(
        "target",
        match kind {
            ProbeKind::Http => "target = \"https://webmail.example.com/\"",
            _ => "target = \"imap.example.com:993\"",
        },
    )?;
    let target_text = target_text.trim();
    let (target, tls) = match kind {
        ProbeKind::Http => {
            if k.string("tls")?.is_some() {
                return Err(err(
                    &k.key("tls"),
                    "is not used by kind = \"http\": write an https:// target for TLS",
                ));
            }
            let (target, tls) =
                http_target(target_text).map_err(|problem| err(&k.key("target"), problem))?;
            let tls = if tls {
                ProbeTls::Implicit
            } else {
                ProbeTls::None
            };
            (target, tls)
        }
        _ => {
            let tls = match k.string("tls")?.as_deref().unwrap_or("none") {
                "none" => ProbeTls::None,
                "implicit" => ProbeTls::Implicit,
                "starttls" => ProbeTls::StartTls,
                other => {
                    return Err(err(
                        &k.key("tls"),
                        format!(
                            "`{other}` is not a mode: use \"implicit\" (TLS from the first byte, e.g. port 993, 995, 465), \"starttls\" (after the greeting, e.g. 143, 110, 587) or \"none\""
                        ),
                    ));
                }
            };
            let target =
                host_port(target_text).map_err(|problem| err(&k.key("target"), problem))?;
            (target, tls)
        }
    };
    let ca_file = k.ca_file(
        path,
        tls != ProbeTls::None,
        "is set but the probe does not use TLS: remove it, or use tls = \"implicit\" (an https:// target for http)",
    )?;
    let account = account(&k, kind, path, env)?;
    let interval = duration_key(&k, "interval", "60s")?;
    let timeout = duration_key(&k, "timeout", "60s")?;
    let slow = duration_key(&k, "slow", "30s")?;
    let window = duration_key(&k, "window", "15m")?;
    let recover = duration_key(&k, "recover", "5m")?;
    if timeout <= slow {
        return Err(err(
            &k.key("timeout"),
            format!(
                "({timeout:?}) must be above slow ({slow:?}): a slow answer is measured, not cut off"
            ),
        ));
    }
    if window < interval * 2 {
        return Err(err(
            &k.key("window"),
            format!(
                "({window:?}) must hold at least two checks: at least twice interval ({interval:?})"
            ),
        ));
    }
    if recover < interval {
        return Err(err(
            &k.key("recover"),
            format!("({recover:?}) must hold at least one check: at least interval ({interval:?})"),
        ));
    }
    let action = match k.string("action")?.as_deref().unwrap_or("draft") {
        "declare" => ProbeAction::Declare,
        "draft" => ProbeAction::Draft,
        other => {
            return Err(err(
                &k.key("action"),
                format!(
                    "`{other}` is not an action: use \"declare\" (announced at once) or \"draft\" (an operator confirms)"
                ),
            ));
        }
    };
    let impact = match k.string("impact")? {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => {
            return Err(err(
                &k.key("impact"),
                "is empty: remove it or write the text",
            ));
        }
        None => format!("{service} answers slowly or not at all (detected by a probe)."),
    };
    Ok(ProbeConfig {
        name,
        platform,
        service,
        kind,
        target,
        tls,
        ca_file,
        account,
        interval,
        timeout,
        slow,
        window,
        recover,
        action,
        impact,
    })
}

fn account(
    k: &Keys<'_>,
    kind: ProbeKind,
    path: &dyn Fn(&str) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ProbeAccount>, ConfigError> {
    let password = k.password(path, env)?;
    let Some(username) = k.string("username")? else {
        if password.is_some() {
            return Err(err(
                &k.key("password_env"),
                "(or password_file) is set without username: give the probe account's username",
            ));
        }
        return Ok(None);
    };
    if !matches!(kind, ProbeKind::Imap | ProbeKind::Pop3) {
        return Err(err(
            &k.key("username"),
            "a probe account logs in over IMAP or POP3 only: remove it for this kind",
        ));
    }
    if username.trim().is_empty() || username.contains(['\r', '\n', ' ', '"']) {
        return Err(err(
            &k.key("username"),
            "must be a non-empty user name without spaces, quotes or line breaks",
        ));
    }
    let password = password.ok_or_else(|| {
        err(
            &k.key("password_env"),
            "is required with username (or password_file): the password never goes in this file",
        )
    })?;
    if password.expose().contains(['\r', '\n']) {
        return Err(err(
            &k.key("password_env"),
            "the password holds a line break, which IMAP and POP3 cannot send",
        ));
    }
    Ok(Some(ProbeAccount { username, password }))
}

/// `host:port` (a bracketed IPv6 address is allowed: `[::1]:143`).
fn host_port(text: &str) -> Result<ProbeTarget, String> {
    let bad = || format!("`{text}` is not host:port: write e.g. imap.example.com:993");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(['/', ' ']) {
        return Err(bad());
    }
    Ok(ProbeTarget {
        host: host.to_string(),
        port,
        path: String::new(),
    })
}

/// `http://host[:port][/path]` or `https://…`; returns the target and whether it is TLS.
fn http_target(text: &str) -> Result<(ProbeTarget, bool), String> {
    let bad = |why: &str| format!("`{text}` {why}: write e.g. https://webmail.example.com/");
    let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = text.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(bad("holds credentials, which a probe never sends"));
    }
    let path = path.split('#').next().unwrap_or("/");
    if path.contains([' ', '\r', '\n']) {
        return Err(bad("holds spaces or line breaks in its path"));
    }
    let default = if tls { 443 } else { 80 };
    let target = if authority.ends_with(']') || !authority.contains(':') {
        ProbeTarget {
            host: authority
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: default,
            path: String::new(),
        }
    } else {
        host_port(authority).map_err(|_| bad("has no valid host or port"))?
    };
    if target.host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok((
        ProbeTarget {
            path: path.to_string(),
            ..target
        },
        tls,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Vec<ProbeConfig>, ConfigError> {
        #[derive(serde::Deserialize)]
        struct F {
            probes: Vec<toml::Table>,
        }
        let f: F = toml::from_str(text).unwrap();
        let env = |k: &str| (k == "PROBE_PW").then(|| "s3cret".to_string());
        probes(&f.probes, &|p| Path::new("/nonexistent").join(p), &env)
    }

    const BASE: &str = "[[probes]]\nname = \"eu-imap\"\nplatform = \"eu\"\nservice = \"IMAP\"\n";

    #[test]
    fn defaults_are_the_issues_figures() {
        let p = parse(&format!("{BASE}kind = \"imap\"\ntarget = \"imap.example.com:993\"\ntls = \"implicit\"\nusername = \"probe\"\npassword_env = \"PROBE_PW\"\n"))
            .unwrap()
            .remove(0);
        assert_eq!(p.kind, ProbeKind::Imap);
        assert_eq!(p.target.host, "imap.example.com");
        assert_eq!(p.target.port, 993);
        assert_eq!(p.tls, ProbeTls::Implicit);
        assert_eq!(p.interval, Duration::from_secs(60));
        assert_eq!(p.timeout, Duration::from_secs(60));
        assert_eq!(p.slow, Duration::from_secs(30));
        assert_eq!(p.window, Duration::from_secs(900));
        assert_eq!(p.recover, Duration::from_secs(300));
        assert_eq!(p.action, ProbeAction::Draft);
        let account = p.account.unwrap();
        assert_eq!(account.password.expose(), "s3cret");
        assert_eq!(format!("{:?}", account.password), "***");
    }

    #[test]
    fn http_targets_carry_scheme_port_and_path() {
        let p = parse(&format!(
            "{BASE}kind = \"http\"\ntarget = \"https://[::1]:8443/health?x=1\"\naction = \"declare\"\n"
        ))
        .unwrap()
        .remove(0);
        assert_eq!(p.tls, ProbeTls::Implicit);
        assert_eq!(
            p.target,
            ProbeTarget {
                host: "::1".into(),
                port: 8443,
                path: "/health?x=1".into()
            }
        );
        assert_eq!(p.action, ProbeAction::Declare);
        let p = parse(&format!(
            "{BASE}kind = \"http\"\ntarget = \"http://web.example\"\n"
        ))
        .unwrap()
        .remove(0);
        assert_eq!(p.tls, ProbeTls::None);
        assert_eq!((p.target.port, p.target.path.as_str()), (80, "/"));
    }

    #[test]
    fn errors_name_the_key() {
        let key = |extra: &str| parse(&format!("{BASE}{extra}")).unwrap_err().key;
        assert_eq!(key("kind = \"ftp\"\ntarget = \"a:1\"\n"), "probes[0].kind");
        assert_eq!(
            key("kind = \"smtp\"\ntarget = \"nohost\"\n"),
            "probes[0].target"
        );
        assert_eq!(
            key("kind = \"smtp\"\ntarget = \"a:25\"\ntimeout = \"30s\"\n"),
            "probes[0].timeout"
        );
        assert_eq!(
            key(
                "kind = \"smtp\"\ntarget = \"a:25\"\nusername = \"u\"\npassword_env = \"PROBE_PW\"\n"
            ),
            "probes[0].username"
        );
        assert_eq!(
            key("kind = \"pop3\"\ntarget = \"a:110\"\nusername = \"u\"\npassword_env = \"NOPE\"\n"),
            "probes[0].password_env"
        );
        assert_eq!(
            key("kind = \"smtp\"\ntarget = \"a:25\"\nwindow = \"1m\"\n"),
            "probes[0].window"
        );
        assert_eq!(
            key("kind = \"smtp\"\ntarget = \"a:25\"\naction = \"mail\"\n"),
            "probes[0].action"
        );
        assert_eq!(
            key("kind = \"smtp\"\ntarget = \"a:25\"\ncolour = 1\n"),
            "probes[0].colour"
        );
        assert_eq!(
            key("kind = \"http\"\ntarget = \"ftp://a/\"\n"),
            "probes[0].target"
        );
        let twice = format!(
            "{BASE}kind = \"smtp\"\ntarget = \"a:25\"\n{BASE}kind = \"smtp\"\ntarget = \"a:25\"\n"
        );
        assert_eq!(parse(&twice).unwrap_err().key, "probes[1].name");
    }
}
