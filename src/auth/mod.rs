//! Who really sent a mail: the authentication verdict for its `From` domain.
//!
//! A verdict comes from, in this order:
//! 1. a trusted source the configuration names (`inbound.trusted_sources`, e.g. `ingest` when
//!    a local MTA pipes only its own authenticated submissions);
//! 2. a DKIM signature verified with mail-auth whose `d=` is the `From` domain, or aligned
//!    with it under the domain's DMARC record (relaxed alignment). SPF cannot be checked after
//!    an IMAP fetch, so DMARC passes through aligned DKIM only. A signature with a body
//!    length (`l=`) never counts: text could be appended after the signed part;
//! 3. the topmost `Authentication-Results` header whose authserv-id the configuration trusts
//!    (`inbound.trusted_authserv_ids`, RFC 8601); headers from any other server are ignored,
//!    wherever they stand.
//!
//! DNS: the key and DMARC records live in a cache ([`DnsCache`]). [`Authenticator::prefetch`]
//! (async, network) fills it before a batch's write transaction; [`Authenticator::verdict`]
//! (synchronous, no I/O: a name missing from the cache counts as having no record) runs on
//! the parsing thread. Tests pre-fill the cache ([`Authenticator::add_txt`]).

pub mod results;
pub mod sign;
pub mod token;
pub mod unwatch;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcResult, DnsError, MessageAuthenticator,
    Parameters, RecordSet, ResolverCache, SpfOutput, Txt,
};
use serde::Serialize;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The outcome for the `From` domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthResult {
    /// The `From` domain is proven.
    Pass,
    /// Evidence was there (a signature, a trusted server's verdict) and it did not prove it.
    Fail,
    /// Nothing to judge by (no signature, no trusted verdict).
    #[default]
    None,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<AuthResult> {
        Some(match s {
            "pass" => AuthResult::Pass,
            "fail" => AuthResult::Fail,
            "none" => AuthResult::None,
            _ => return None,
        })
    }
}

/// What the verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Dkim,
    AuthenticationResults,
    TrustedSource,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Dkim => "dkim",
            AuthMethod::AuthenticationResults => "authentication_results",
            AuthMethod::TrustedSource => "trusted_source",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        Some(match s {
            "dkim" => AuthMethod::Dkim,
            "authentication_results" => AuthMethod::AuthenticationResults,
            "trusted_source" => AuthMethod::TrustedSource,
            _ => return None,
        })
    }
}

/// The verdict stored on the inbound row and shown by `tickets show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Verdict {
    pub result: AuthResult,
    /// Set when the result is `pass`, and for a trusted server's `fail`.
    pub method: Option<AuthMethod>,
    /// What an operator reads: which signature, which server, why not.
    pub detail: String,
}

impl Verdict {
    /// The stored columns (`auth_result`, `auth_method`, `auth_detail`) as a verdict: `None`
    /// when there is none; an error naming the value this version does not know.
    pub fn from_stored(
        result: Option<String>,
        method: Option<String>,
        detail: Option<String>,
    ) -> Result<Option<Verdict>, String> {
        let Some(result) = result else {
            return Ok(None);
        };
        let result = AuthResult::parse(&result)
            .ok_or_else(|| format!("unknown stored authentication result `{result}`"))?;
        let method = match method {
            None => None,
            Some(m) => Some(
                AuthMethod::parse(&m)
                    .ok_or_else(|| format!("unknown stored authentication method `{m}`"))?,
            ),
        };
        Ok(Some(Verdict {
            result,
            method,
            detail: detail.unwrap_or_default(),
        }))
    }

    pub fn passed(&self) -> bool {
        self.result == AuthResult::Pass
    }

    fn pass(method: AuthMethod, detail: String) -> Verdict {
        Verdict {
            result: AuthResult::Pass,
            method: Some(method),
            detail,
        }
    }
}

/// How long a looked-up record is kept at least (the prefetch and the verification of one
/// batch must see the same records) and at most.
const MIN_TTL: Duration = Duration::from_secs(120);
const MAX_TTL: Duration = Duration::from_secs(6 * 3600);
const MAX_ENTRIES: usize = 50_000;

/// A DNS cache for mail-auth, shared by the prefetch and the verification.
pub struct DnsCache<V> {
    map: Mutex<HashMap<Box<str>, (V, Instant)>>,
}

impl<V: Clone> DnsCache<V> {
    fn new() -> Self {
        DnsCache {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lookup<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    fn store(&self, key: Box<str>, value: V, until: Instant) {
        let now = Instant::now();
        let until = until.clamp(now + MIN_TTL, now + MAX_TTL);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (value, until));
    }
}

/// The cache as the network prefetch sees it: a miss goes to DNS.
struct Online<'a, V>(&'a DnsCache<V>);
/// The cache as the verification sees it: never a miss, so never any I/O (a name not fetched
/// has no record).
struct Offline<'a, V>(&'a DnsCache<V>);

impl<V: Clone> ResolverCache<Box<str>, V> for Online<'_, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lookup(name)
    }
    fn remove<Q>(&self, _: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, key: Box<str>, value: V, valid_until: Instant) {
        self.0.store(key, value, valid_until);
    }
}

impl ResolverCache<Box<str>, Txt> for Offline<'_, Txt> {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(
            self.0
                .lookup(name)
                .unwrap_or(Txt::Error(mail_auth::Error::Dns(
                    DnsError::InvalidRecordType,
                ))),
        )
    }
    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
}

impl ResolverCache<Box<str>, RecordSet<Ipv4Addr>> for Offline<'_, RecordSet<Ipv4Addr>> {
    fn get<Q>(&self, name: &Q) -> Option<RecordSet<Ipv4Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Only DMARC's policy choice asks whether a domain exists; alignment does not.
        Some(self.0.lookup(name).unwrap_or_else(|| RecordSet {
            rrset: Arc::from(Vec::new()),
            dnssec_status: mail_auth::DnssecStatus::Indeterminate,
        }))
    }
    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<Ipv4Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: RecordSet<Ipv4Addr>, _: Instant) {}
}

/// What the configuration says to trust.
#[derive(Debug, Clone, Default)]
pub struct TrustSettings {
    /// authserv-ids (lower case) whose `Authentication-Results` are believed.
    pub authserv_ids: Vec<String>,
    /// Sources whose mail is authenticated by the path it came on: `ingest`, `maildir`,
    /// `imap:NAME`.
    pub sources: Vec<String>,
    /// Upper bound on the DNS work of one batch's prefetch.
    pub dns_timeout: Duration,
}

pub struct Authenticator {
    trust: TrustSettings,
    resolver: OnceLock<Option<MessageAuthenticator>>,
    txt: DnsCache<Txt>,
    ipv4: DnsCache<RecordSet<Ipv4Addr>>,
}

impl Authenticator {
    pub fn new(trust: TrustSettings) -> Authenticator {
        Authenticator {
            trust,
            resolver: OnceLock::new(),
            txt: DnsCache::new(),
            ipv4: DnsCache::new(),
        }
    }

    /// The system's resolver (`/etc/resolv.conf`), made on first use; `None` when it cannot
    /// be made (then only cached records are known).
    fn resolver(&self) -> Option<&MessageAuthenticator> {
        self.resolver
            .get_or_init(|| {
                use mail_auth::hickory_resolver::system_conf::read_system_conf;
                let made = read_system_conf().map_err(|e| e.to_string()).and_then(
                    |(config, mut opts)| {
                        opts.timeout = self.trust.dns_timeout;
                        opts.attempts = 1;
                        MessageAuthenticator::new(config, opts).map_err(|e| e.to_string())
                    },
                );
                match made {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(error = %e, "no DNS resolver for DKIM: only cached keys are known, signed mail will not verify");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Adds a TXT record to the cache (a DKIM key at `SELECTOR._domainkey.DOMAIN`, a DMARC
    /// record at `_dmarc.DOMAIN`), as if DNS had answered: for tests and offline set-ups.
    pub fn add_txt(&self, name: &str, record: &str) -> Result<(), String> {
        let mut key = name.trim_end_matches('.').to_ascii_lowercase();
        key.push('.');
        let txt = if key.starts_with("_dmarc.") {
            Txt::from(Dmarc::parse(record.as_bytes()).map_err(|e| e.to_string())?)
        } else {
            Txt::from(DomainKey::parse(record.as_bytes()).map_err(|e| e.to_string())?)
        };
        self.txt.store(
            key.into_boxed_str(),
            txt,
            Instant::now() + Duration::from_secs(24 * 3600),
        );
        Ok(())
    }

    /// Whether `source` (a [`crate::pipeline::RawMail`]'s) is a trusted path.
    pub fn trusted_source(&self, source: &str) -> Option<&str> {
        let source = source_of(source);
        self.trust
            .sources
            .iter()
            .map(String::as_str)
            .find(|t| match *t {
                "ingest" => source == "stdin" || source.starts_with("file:"),
                "maildir" => source.starts_with("maildir:"),
                "lmtp" => source.starts_with("lmtp:"),
                t => t
                    .strip_prefix("imap:")
                    .and_then(|name| source.strip_prefix("imap:")?.strip_prefix(name))
                    .is_some_and(|rest| rest.starts_with('/')),
            })
    }

    /// Looks up (network) the DKIM keys and DMARC records the mails' verification will need,
    /// so that [`Authenticator::verdict`] finds them in the cache. Bounded by the configured
    /// DNS timeout; what is not found by then counts as absent.
    pub async fn prefetch(&self, mails: &[&[u8]]) {
        // Only signed mail needs DNS (header fields only: cheap).
        let signed: Vec<AuthenticatedMessage<'_>> = mails
            .iter()
            .filter_map(|raw| parse_message(raw))
            .filter(|m| !m.dkim_headers.is_empty())
            .collect();
        if signed.is_empty() {
            return;
        }
        let Some(resolver) = self.resolver() else {
            return;
        };
        let work = signed.iter().map(|msg| {
            use futures_util::FutureExt;
            // A panic in the verifier must not take the mailbox task down: that mail just
            // stays unfetched (and so unsigned).
            AssertUnwindSafe(self.prefetch_one(resolver, msg)).catch_unwind()
        });
        let all = futures_util::future::join_all(work);
        let limit = self
            .trust
            .dns_timeout
            .saturating_mul(2)
            .max(Duration::from_millis(100));
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                timeout_ms = limit.as_millis() as u64,
                "DKIM key lookups did not all finish in time: those mails count as unsigned"
            );
        }
    }

    async fn prefetch_one(&self, resolver: &MessageAuthenticator, msg: &AuthenticatedMessage<'_>) {
        {
            let txt = Online(&self.txt);
            let out = resolver
                .verify_dkim(Parameters::new(msg).with_txt_cache(&txt))
                .await;
            let from_domain = msg
                .from
                .first()
                .and_then(|f| f.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase());
            if let Some(from_domain) = from_domain
                && needs_dmarc(&out, &from_domain)
            {
                let ipv4 = Online(&self.ipv4);
                let spf = SpfOutput::new(String::new());
                let _ = resolver
                    .verify_dmarc(
                        Parameters::new(DmarcParameters::new(msg, &out, "", &spf))
                            .with_txt_cache(&txt)
                            .with_ipv4_cache(&ipv4),
                    )
                    .await;
            }
        }
    }

    /// The verdict for one mail: no I/O (records come from the cache), never panics.
    /// `from`: the `From` address routing uses (lower case).
    pub fn verdict(&self, raw: &[u8], source: &str, from: Option<&str>) -> Verdict {
        // The customer's ticket page writes its answer as the requester's mail; holding the
        // page's unguessable link is the proof, as a reply token is for mail.
        if source_of(source) == TICKET_PAGE_SOURCE {
            return Verdict::pass(
                AuthMethod::TrustedSource,
                "an answer on the ticket's page (its secret link is the proof)".into(),
            );
        }
        if let Some(t) = self.trusted_source(source) {
            return Verdict::pass(
                AuthMethod::TrustedSource,
                format!("delivered through the trusted source `{t}`"),
            );
        }
        match catch_unwind(AssertUnwindSafe(|| self.verdict_inner(raw, from))) {
            Ok(v) => v,
            Err(_) => Verdict {
                result: AuthResult::Fail,
                method: None,
                detail: "the authentication check failed on this mail".into(),
            },
        }
    }

    fn verdict_inner(&self, raw: &[u8], from: Option<&str>) -> Verdict {
        let Some(from) = from else {
            return Verdict {
                detail: "no From address".into(),
                ..Verdict::default()
            };
        };
        let from_domain = from
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        // Fast path for most mail: nothing to judge by, so no need to read the header again.
        let (signed, results) = header_fields(raw);
        if !signed && (self.trust.authserv_ids.is_empty() || !results) {
            return Verdict {
                detail: "no DKIM signature".into(),
                ..Verdict::default()
            };
        }
        let Some(msg) = parse_message(raw) else {
            return Verdict {
                detail: "no header section to check".into(),
                ..Verdict::default()
            };
        };
        // One author only: several From addresses are never authenticated (RFC 5322 allows
        // one From field; which one routing reads is not for a signer to choose).
        if msg.from.len() > 1 {
            return Verdict {
                result: AuthResult::Fail,
                method: None,
                detail: "several From addresses".into(),
            };
        }

        let mut notes: Vec<String> = Vec::new();
        let mut evidence = false;
        if !msg.dkim_headers.is_empty() || msg.has_dkim_errors {
            evidence = true;
            match self.check_dkim(&msg, &from_domain) {
                Ok(detail) => return Verdict::pass(AuthMethod::Dkim, detail),
                Err(why) => notes.push(why),
            }
        } else {
            notes.push("no DKIM signature".into());
        }

        match results::topmost_trusted(&msg.headers, &self.trust.authserv_ids) {
            Some(ar) => match ar.verdict_for(&from_domain) {
                Ok(detail) => return Verdict::pass(AuthMethod::AuthenticationResults, detail),
                Err(why) => {
                    return Verdict {
                        result: AuthResult::Fail,
                        method: Some(AuthMethod::AuthenticationResults),
                        detail: format!("{}; {why}", notes.join("; ")),
                    };
                }
            },
            None if !self.trust.authserv_ids.is_empty() => {
                notes.push("no Authentication-Results from a trusted server".into())
            }
            None => {}
        }
        Verdict {
            result: if evidence {
                AuthResult::Fail
            } else {
                AuthResult::None
            },
            method: None,
            detail: notes.join("; "),
        }
    }

    /// `Ok(detail)` when a signature authenticates `from_domain`, `Err(why not)` otherwise.
    fn check_dkim(
        &self,
        msg: &AuthenticatedMessage<'_>,
        from_domain: &str,
    ) -> Result<String, String> {
        let Some(resolver) = self.offline_resolver() else {
            return Err("DKIM cannot be checked (no resolver)".into());
        };
        let txt = Offline(&self.txt);
        let out = now(resolver.verify_dkim(Parameters::new(msg).with_txt_cache(&txt)))
            .ok_or("DKIM check did not complete")?;
        let mut seen: Vec<String> = Vec::new();
        for o in &out {
            let Some(sig) = o.signature() else {
                seen.push(format!("dkim={}", short(o.result())));
                continue;
            };
            let d = sig.d.to_ascii_lowercase();
            seen.push(format!("dkim={} d={d} s={}", short(o.result()), sig.s));
            if *o.result() == DkimResult::Pass && sig.l == 0 && d == from_domain {
                return Ok(format!("dkim=pass d={d} s={} (the From domain)", sig.s));
            }
        }
        if needs_dmarc(&out, from_domain) {
            let ipv4 = Offline(&self.ipv4);
            let spf = SpfOutput::new(String::new());
            let dmarc = now(resolver.verify_dmarc(
                Parameters::new(DmarcParameters::new(msg, &out, "", &spf))
                    .with_txt_cache(&txt)
                    .with_ipv4_cache(&ipv4),
            ));
            if let Some(dmarc) = dmarc
                && *dmarc.dkim_result() == DmarcResult::Pass
            {
                let d = out
                    .iter()
                    .filter(|o| *o.result() == DkimResult::Pass)
                    .filter_map(|o| o.signature())
                    .map(|s| s.d.to_ascii_lowercase())
                    .next()
                    .unwrap_or_default();
                return Ok(format!(
                    "dkim=pass d={d}, aligned with {from_domain} by its DMARC record"
                ));
            }
        }
        Err(format!(
            "{}: no valid signature of {from_domain}",
            seen.join(", ")
        ))
    }

    /// A resolver for the cache-only path: the real one when it can be made (it is never
    /// asked anything there), else one with no name servers.
    fn offline_resolver(&self) -> Option<&MessageAuthenticator> {
        static EMPTY: OnceLock<Option<MessageAuthenticator>> = OnceLock::new();
        self.resolver().or_else(|| {
            EMPTY
                .get_or_init(|| {
                    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
                    MessageAuthenticator::new(ResolverConfig::default(), ResolverOpts::default())
                        .ok()
                })
                .as_ref()
        })
    }
}

/// Whether DMARC's relaxed alignment could make a passing signature count: one passed whose
/// `d=` is a parent or a child of the From domain (an exact match needs no DMARC record).
fn needs_dmarc(out: &[DkimOutput<'_>], from_domain: &str) -> bool {
    out.iter()
        .filter(|o| *o.result() == DkimResult::Pass)
        .filter_map(|o| o.signature())
        .filter(|s| s.l == 0)
        .any(|s| {
            let d = s.d.to_ascii_lowercase();
            d != from_domain
                && (from_domain.ends_with(&format!(".{d}"))
                    || d.ends_with(&format!(".{from_domain}")))
        })
}

fn short(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

/// Whether the header section has a `DKIM-Signature` field, and an `Authentication-Results`
/// field (a line scan: no parsing).
fn header_fields(raw: &[u8]) -> (bool, bool) {
    let starts = |line: &[u8], name: &[u8]| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()] == b':'
    };
    let (mut dkim, mut results) = (false, false);
    for line in raw.split(|b| *b == b'\n') {
        if line.is_empty() || line == b"\r" {
            break; // end of the header section
        }
        dkim |= starts(line, b"dkim-signature");
        results |= starts(line, b"authentication-results");
    }
    (dkim, results)
}

fn parse_message(raw: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    catch_unwind(AssertUnwindSafe(|| AuthenticatedMessage::parse(raw)))
        .ok()
        .flatten()
}

/// Polls a future that does no I/O (every DNS answer comes from the offline cache) to its end.
fn now<F: std::future::Future>(f: F) -> Option<F::Output> {
    use futures_util::FutureExt;
    f.now_or_never()
}

/// The original source of a replayed mail (`replay of #12 (stdin)` → `stdin`).
/// The source of the answers given on the customer's ticket page (`/t/TOKEN`).
pub const TICKET_PAGE_SOURCE: &str = "web:ticket-page";

fn source_of(source: &str) -> &str {
    let mut s = source;
    while let Some(rest) = s.strip_prefix("replay of #") {
        match rest.split_once(" (") {
            Some((_, inner)) => s = inner.strip_suffix(')').unwrap_or(inner),
            None => break,
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(sources: &[&str]) -> Authenticator {
        Authenticator::new(TrustSettings {
            authserv_ids: vec!["mx.support.example.test".into()],
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dns_timeout: Duration::from_secs(1),
        })
    }

    #[test]
    fn trusted_sources_match_their_paths_only() {
        let a = auth(&["ingest", "imap:agents"]);
        assert!(a.trusted_source("stdin").is_some());
        assert!(a.trusted_source("file:/tmp/x.eml").is_some());
        assert!(a.trusted_source("imap:agents/1/2").is_some());
        assert!(a.trusted_source("replay of #3 (stdin)").is_some());
        assert!(a.trusted_source("imap:agentsx/1/2").is_none());
        assert!(a.trusted_source("maildir:new/1").is_none());
        assert!(auth(&[]).trusted_source("stdin").is_none());
    }

    #[test]
    fn unsigned_mail_without_trusted_results_is_none() {
        let a = auth(&[]);
        let v = a.verdict(
            b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n",
            "maildir:new/1",
            Some("a@b.example"),
        );
        assert_eq!(v.result, AuthResult::None, "{v:?}");
    }

    #[test]
    fn two_from_addresses_never_pass() {
        let a = auth(&["maildir"]);
        let v = a.verdict(
            b"DKIM-Signature: v=1; a=rsa-sha256; d=b.example; s=x; h=from; bh=x; b=x\r\n\
              From: a@b.example, c@d.example\r\n\r\nhi\r\n",
            "imap:x/1/1",
            Some("a@b.example"),
        );
        assert_eq!(v.result, AuthResult::Fail);
        assert!(v.detail.contains("several From"), "{v:?}");
    }

    #[test]
    fn the_header_scan_stops_at_the_body() {
        assert_eq!(
            header_fields(b"From: a@b\r\nDkim-Signature: x\r\n\r\nbody"),
            (true, false)
        );
        assert_eq!(
            header_fields(b"From: a@b\n\nDKIM-Signature: x\nAuthentication-Results: y\n"),
            (false, false)
        );
        assert_eq!(
            header_fields(b"Authentication-Results: mx; dkim=pass\r\n\r\n"),
            (false, true)
        );
    }
}
