//! `Authentication-Results` (RFC 8601): the receiving server's own verdict. Only the topmost
//! header whose authserv-id the configuration trusts is read; a header from any other server
//! is ignored, wherever it stands (a sender can write any header it likes below the ones our
//! server adds, and a server we do not trust can write any verdict above them).

/// One parsed `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    pub authserv_id: String,
    pub results: Vec<ResInfo>,
}

/// `method=result` with its properties (`header.d=example.com`…), all lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResInfo {
    pub method: String,
    pub result: String,
    pub props: Vec<(String, String)>,
}

impl ResInfo {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The topmost header from a trusted authserv-id, in header order (top first).
pub fn topmost_trusted(headers: &[(&[u8], &[u8])], trusted: &[String]) -> Option<AuthResults> {
    if trusted.is_empty() {
        return None;
    }
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"Authentication-Results"))
        .filter_map(|(_, value)| parse(&String::from_utf8_lossy(value)))
        .find(|ar| {
            trusted
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&ar.authserv_id))
        })
}

impl AuthResults {
    /// `Ok(detail)` when this server's verdict authenticates `from_domain`: `dmarc=pass` for
    /// it, or `dkim=pass` with `header.d` (or `header.i`) in exactly that domain.
    pub fn verdict_for(&self, from_domain: &str) -> Result<String, String> {
        let id = &self.authserv_id;
        for r in &self.results {
            if r.method == "dmarc"
                && r.result == "pass"
                && r.prop("header.from").is_none_or(|d| d == from_domain)
            {
                return Ok(format!("{id}: dmarc=pass header.from={from_domain}"));
            }
        }
        for r in &self.results {
            if r.method == "dkim" && r.result == "pass" {
                let d = r.prop("header.d").map(str::to_string).or_else(|| {
                    r.prop("header.i")
                        .map(|i| i.rsplit_once('@').map_or(i, |(_, d)| d).to_string())
                });
                if d.as_deref() == Some(from_domain) {
                    return Ok(format!("{id}: dkim=pass header.d={from_domain}"));
                }
            }
        }
        let said: Vec<String> = self
            .results
            .iter()
            .filter(|r| matches!(r.method.as_str(), "dkim" | "dmarc" | "spf"))
            .map(|r| format!("{}={}", r.method, r.result))
            .collect();
        Err(format!(
            "{id} says {}: not a pass for {from_domain}",
            if said.is_empty() {
                "nothing about DKIM or DMARC".to_string()
            } else {
                said.join(" ")
            }
        ))
    }
}

/// Parses one header value; `None` when it has no authserv-id.
pub fn parse(value: &str) -> Option<AuthResults> {
    let clean = strip_comments(value);
    let mut parts = split_outside_quotes(&clean, ';').into_iter();
    let head = parts.next()?;
    // authserv-id [ CFWS authres-version ]
    let authserv_id = head
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .to_ascii_lowercase();
    if authserv_id.is_empty() {
        return None;
    }
    let mut results = Vec::new();
    for part in parts {
        let mut tokens = part.split_whitespace();
        let Some(first) = tokens.next() else { continue };
        let Some((method, result)) = first.split_once('=') else {
            continue; // "none", or noise
        };
        let method = method
            .split('/')
            .next()
            .unwrap_or(method)
            .to_ascii_lowercase();
        let props = tokens
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.trim_matches('"').to_ascii_lowercase(),
                )
            })
            .collect();
        results.push(ResInfo {
            method,
            result: result.trim_matches('"').to_ascii_lowercase(),
            props,
        });
    }
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// Removes RFC 5322 comments (nested parentheses, `\` escapes), leaving quoted strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                out.push(' ');
            }
            _ if depth == 0 => out.push(if c == '\r' || c == '\n' { ' ' } else { c }),
            _ => {}
        }
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_with_comments_and_versions() {
        let ar = parse(
            "mx.example.net 1; dkim=pass (2048-bit key; unprotected) header.d=Example.COM \
             header.s=sel; spf=fail smtp.mailfrom=x.test;\r\n dmarc=pass (p=reject dis=none) header.from=example.com",
        )
        .unwrap();
        assert_eq!(ar.authserv_id, "mx.example.net");
        assert_eq!(ar.results.len(), 3);
        assert_eq!(ar.results[0].prop("header.d"), Some("example.com"));
        assert!(ar.verdict_for("example.com").is_ok());
        assert!(ar.verdict_for("other.example").is_err());
    }

    #[test]
    fn only_the_topmost_trusted_header_counts() {
        let trusted = vec!["mx.ours.test".to_string()];
        let headers: Vec<(&[u8], &[u8])> = vec![
            (
                b"Authentication-Results",
                b" mx.evil.test; dmarc=pass header.from=a.test",
            ),
            (
                b"Authentication-Results",
                b" mx.ours.test; dmarc=fail header.from=a.test",
            ),
            (
                b"Authentication-Results",
                b" mx.ours.test; dmarc=pass header.from=a.test",
            ),
        ];
        let ar = topmost_trusted(&headers, &trusted).unwrap();
        assert!(ar.verdict_for("a.test").is_err());
        assert!(topmost_trusted(&headers, &[]).is_none());
    }

    #[test]
    fn dkim_pass_counts_for_its_own_domain_only() {
        let ar = parse("mx; dkim=pass header.i=@sub.a.test").unwrap();
        assert!(ar.verdict_for("sub.a.test").is_ok());
        assert!(ar.verdict_for("a.test").is_err());
        assert!(parse("  ; dkim=pass").is_none());
    }
}
