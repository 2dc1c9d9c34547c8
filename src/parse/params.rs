//! RFC 2231 parameter continuations (`filename*0*=ISO-2022-JP''…; filename*1*=…`), decoded
//! the way Python's `email` package does (`Message.get_filename()`): the pieces are joined in
//! order (the encoded ones percent-decoded to bytes) and only then is the whole decoded from
//! the charset named in front. mail-parser decodes each piece on its own, which breaks
//! stateful charsets such as ISO-2022-JP whose escape sequences span pieces.

use mail_parser::decoders::charsets::map::charset_decoder;

/// The value of parameter `name` in a raw header value (`attachment; filename*0*=…`) when it
/// is written as RFC 2231 continuations (`name*0`, `name*1*`, …); `None` otherwise, and the
/// caller keeps the MIME parser's reading.
pub fn continued_param(raw_value: &[u8], name: &str) -> Option<String> {
    let mut pieces: Vec<(u32, bool, Vec<u8>)> = Vec::new();
    for (key, value) in params(raw_value) {
        let Some(rest) = key
            .get(..name.len())
            .filter(|k| k.eq_ignore_ascii_case(name))
            .and_then(|_| key[name.len()..].strip_prefix('*'))
        else {
            continue;
        };
        let (number, encoded) = match rest.strip_suffix('*') {
            Some(n) => (n, true),
            None => (rest, false),
        };
        let Ok(number) = number.parse::<u32>() else {
            continue; // `name*` alone: no continuation, mail-parser reads it well
        };
        pieces.push((number, encoded, value));
    }
    if pieces.is_empty() {
        return None;
    }
    pieces.sort_by_key(|p| p.0);
    let extended = pieces.iter().any(|p| p.1);
    let mut joined = Vec::new();
    for (_, encoded, value) in &pieces {
        if *encoded {
            joined.extend(percent_decode(value));
        } else {
            joined.extend_from_slice(value);
        }
    }
    if !extended {
        return Some(String::from_utf8_lossy(&joined).into_owned());
    }
    // `charset'language'text`, split on the whole joined value as Python does.
    let mut parts = joined.splitn(3, |b| *b == b'\'');
    let (Some(charset), Some(_language), Some(text)) = (parts.next(), parts.next(), parts.next())
    else {
        return Some(String::from_utf8_lossy(&joined).into_owned());
    };
    let decoded = match charset_decoder(charset) {
        Some(decode) => decode(text),
        None => String::from_utf8_lossy(text).into_owned(),
    };
    Some(decoded)
}

/// The `key=value` parameters of a header value, after the first `;`, with folding removed
/// and quoted strings unquoted. Values stay bytes: they may be in any charset.
fn params(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let raw: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    let mut out = Vec::new();
    let mut i = match raw.iter().position(|b| *b == b';') {
        Some(p) => p + 1,
        None => return out,
    };
    while i < raw.len() {
        while i < raw.len() && (raw[i].is_ascii_whitespace() || raw[i] == b';') {
            i += 1;
        }
        let start = i;
        while i < raw.len() && raw[i] != b'=' && raw[i] != b';' {
            i += 1;
        }
        let key = String::from_utf8_lossy(&raw[start..i]).trim().to_string();
        if i >= raw.len() || raw[i] == b';' {
            continue; // a parameter without a value
        }
        i += 1; // '='
        while i < raw.len() && (raw[i] == b' ' || raw[i] == b'\t') {
            i += 1;
        }
        let mut value = Vec::new();
        if raw.get(i) == Some(&b'"') {
            i += 1;
            while i < raw.len() && raw[i] != b'"' {
                if raw[i] == b'\\' && i + 1 < raw.len() {
                    i += 1;
                }
                value.push(raw[i]);
                i += 1;
            }
            i += 1; // closing quote
            while i < raw.len() && raw[i] != b';' {
                i += 1;
            }
        } else {
            while i < raw.len() && raw[i] != b';' {
                value.push(raw[i]);
                i += 1;
            }
            while value.last().is_some_and(|b| b.is_ascii_whitespace()) {
                value.pop();
            }
        }
        if !key.is_empty() {
            out.push((key, value));
        }
    }
    out
}

/// `%XX` escapes to bytes; anything else as it is (as Python's `unquote` does).
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_2022_jp_continuations_are_joined_before_decoding() {
        // "日本語の報告書.txt", cut inside the JIS run (Python: get_filename() gives it whole).
        let raw = b" attachment;\r\n filename*0*=ISO-2022-JP''%1B%24BF;\r\n filename*1*=%7CK%5C8l%24NJs9p%3Dq%1B%28B.txt";
        assert_eq!(
            continued_param(raw, "filename").as_deref(),
            Some("日本語の報告書.txt")
        );
    }

    #[test]
    fn mixed_plain_and_encoded_pieces_and_order() {
        let raw =
            b"attachment; filename*1=\"-report.pdf\"; filename*0*=utf-8''Rapport%20%C3%A9t%C3%A9";
        assert_eq!(
            continued_param(raw, "filename").as_deref(),
            Some("Rapport été-report.pdf")
        );
        let plain = b"application/pdf; name*0=\"long\"; name*1=\" name.pdf\"";
        assert_eq!(
            continued_param(plain, "name").as_deref(),
            Some("long name.pdf")
        );
    }

    #[test]
    fn no_continuation_is_left_to_the_mime_parser() {
        assert_eq!(
            continued_param(b"attachment; filename=\"a.pdf\"", "filename"),
            None
        );
        assert_eq!(
            continued_param(b"attachment; filename*=utf-8''a%20b.pdf", "filename"),
            None
        );
        assert_eq!(continued_param(b"attachment", "filename"), None);
        assert_eq!(
            continued_param(b"attachment; name*0=x", "filename"),
            None,
            "another parameter"
        );
    }
}
