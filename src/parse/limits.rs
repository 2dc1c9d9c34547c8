//! `[inbound.limits]`: a cheap scan of the raw bytes before the MIME parser sees them. A mail
//! over one limit is quarantined (`limit_exceeded`) with the limit's key and the figure in
//! the reason, and never parsed: so no crafted structure (ten thousand parts, nesting a
//! thousand deep, a header of a million fields) reaches the parser or the store's rows.

use super::{ParseFailure, content_key};
use crate::config::InboundLimits;

/// `Err` names the first limit `raw` is over.
pub fn check(raw: &[u8], l: &InboundLimits) -> Result<(), ParseFailure> {
    scan(raw, l).map_err(|reason| ParseFailure {
        dedup_key: content_key(raw),
        code: "limit_exceeded",
        reason,
    })
}

fn scan(raw: &[u8], l: &InboundLimits) -> Result<(), String> {
    if raw.len() > l.max_total_bytes {
        return Err(format!(
            "the mail is {} bytes, over inbound.limits.max_total_size ({} bytes)",
            raw.len(),
            l.max_total_bytes
        ));
    }
    // The top-level header section: fields (a line not starting with white space) and bytes.
    let mut fields = 0usize;
    let mut header_bytes = 0usize;
    let mut in_header = true;
    // Multipart boundaries open at this point, innermost last; parts seen.
    let mut open: Vec<Vec<u8>> = Vec::new();
    let mut parts = 0usize;
    let mut depth = 0usize;
    // A Content-Type field being read (with its continuation lines).
    let mut ctype: Option<Vec<u8>> = None;
    let mut start = 0usize;
    while start < raw.len() {
        let end = raw[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |p| start + p + 1);
        let line = &raw[start..end];
        start = end;
        let len = line.len();
        if len > l.max_line_bytes {
            return Err(format!(
                "a line of {len} bytes is over inbound.limits.max_line_length ({} bytes)",
                l.max_line_bytes
            ));
        }
        let text = trim_eol(line);
        let continuation = text.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if in_header {
            header_bytes += len;
            if text.is_empty() {
                in_header = false;
            } else if !continuation {
                fields += 1;
            }
            if fields > l.max_header_count {
                return Err(format!(
                    "more than {} header fields, over inbound.limits.max_header_count",
                    l.max_header_count
                ));
            }
            if header_bytes > l.max_header_bytes {
                return Err(format!(
                    "a header section over {} bytes, over inbound.limits.max_header_size",
                    l.max_header_bytes
                ));
            }
        }
        // Content-Type fields (top level and in parts), with continuation lines.
        if let Some(ct) = &mut ctype {
            if continuation && ct.len() < 4096 {
                ct.extend_from_slice(text);
                continue;
            }
            let done = ctype.take().unwrap_or_default();
            if let Some(b) = boundary(&done) {
                open.push(b);
                depth = depth.max(open.len());
                if depth > l.max_mime_depth {
                    return Err(format!(
                        "multipart nested more than {} deep, over inbound.limits.max_mime_depth",
                        l.max_mime_depth
                    ));
                }
            }
        }
        if text.len() > 13 && text[..13].eq_ignore_ascii_case(b"content-type:") {
            ctype = Some(text[13..].to_vec());
            continue;
        }
        if let Some(rest) = text.strip_prefix(b"--")
            && !open.is_empty()
        {
            let rest = trim_ws_end(rest);
            if let Some(i) = open.iter().rposition(|b| {
                rest.strip_prefix(b.as_slice())
                    .is_some_and(|r| r.is_empty() || r == b"--")
            }) {
                if rest.ends_with(b"--") && rest.len() == open[i].len() + 2 {
                    open.truncate(i); // closing delimiter
                } else {
                    open.truncate(i + 1);
                    parts += 1;
                    if parts > l.max_parts {
                        return Err(format!(
                            "more than {} MIME parts, over inbound.limits.max_parts",
                            l.max_parts
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ws_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    &s[..end]
}

/// The boundary of a multipart Content-Type value, `None` for any other type.
fn boundary(value: &[u8]) -> Option<Vec<u8>> {
    let v = String::from_utf8_lossy(value);
    let lower = v.to_ascii_lowercase();
    if !lower.trim_start().starts_with("multipart/") {
        return None;
    }
    let p = lower.find("boundary=")?;
    let rest = &v[p + 9..];
    let b = if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next().unwrap_or("")
    } else {
        rest.split(|c: char| c == ';' || c.is_whitespace())
            .next()
            .unwrap_or("")
    };
    (!b.is_empty()).then(|| b.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> InboundLimits {
        InboundLimits {
            max_header_count: 5,
            max_header_bytes: 400,
            max_mime_depth: 3,
            max_parts: 4,
            max_line_bytes: 100,
            max_total_bytes: 2000,
        }
    }

    fn reason(raw: &str) -> Option<String> {
        check(raw.as_bytes(), &small()).err().map(|f| {
            assert_eq!(f.code, "limit_exceeded");
            f.reason
        })
    }

    fn nested(depth: usize) -> String {
        let mut s = String::from("From: a@b.example\r\n");
        for i in 0..depth {
            s.push_str(&format!(
                "Content-Type: multipart/mixed;\r\n boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        s.push_str("Content-Type: text/plain\r\n\r\nhi\r\n");
        for i in (0..depth).rev() {
            s.push_str(&format!("--b{i}--\r\n"));
        }
        s
    }

    #[test]
    fn each_limit_is_named_in_the_reason() {
        assert_eq!(reason(&nested(3)), None);
        assert!(reason(&nested(4)).unwrap().contains("max_mime_depth"));
        let many = (0..6).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();
        assert!(
            reason(&format!("{many}\r\nbody\r\n"))
                .unwrap()
                .contains("max_header_count")
        );
        let long = format!("From: a@b.example\r\n\r\n{}\r\n", "x".repeat(101));
        assert!(reason(&long).unwrap().contains("max_line_length"));
        let folded = format!(
            "From: a@b.example\r\nSubject: x\r\n{}\r\n\r\nbody\r\n",
            " y\r\n".repeat(120)
        );
        assert!(reason(&folded).unwrap().contains("max_header_size"));
        let big = format!("From: a@b.example\r\n\r\n{}", "line\r\n".repeat(400));
        assert!(reason(&big).unwrap().contains("max_total_size"));
        let mut parts =
            String::from("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n");
        for _ in 0..5 {
            parts.push_str("--p\r\nContent-Type: text/plain\r\n\r\nx\r\n");
        }
        parts.push_str("--p--\r\n");
        assert!(reason(&parts).unwrap().contains("max_parts"));
    }

    #[test]
    fn siblings_do_not_count_as_depth() {
        let mut s =
            String::from("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n");
        for i in 0..3 {
            s.push_str(&format!(
                "--o\r\nContent-Type: multipart/alternative; boundary=i{i}\r\n\r\n--i{i}\r\nContent-Type: text/plain\r\n\r\nx\r\n--i{i}--\r\n"
            ));
        }
        s.push_str("--o--\r\n");
        let l = InboundLimits {
            max_mime_depth: 2,
            ..InboundLimits::default()
        };
        assert!(check(s.as_bytes(), &l).is_ok());
    }
}
