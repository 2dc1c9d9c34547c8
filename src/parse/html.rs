//! HTML → plain text for messages that have no text part. Block elements become line breaks
//! and list items keep their bullets, so line-oriented rules (labelled fields such as
//! `Severity: Minor`) work on HTML-only mail too. Never panics; tolerant of broken markup.

/// Converts an HTML body to readable text.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            push_text(&mut out, &rest[..lt]);
        }
        let after = &rest[lt + 1..];
        // Comments end at "-->", everything else at the next '>'.
        let (tag, next) = if let Some(c) = after.strip_prefix("!--") {
            match c.find("-->") {
                Some(e) => ("!--", &c[e + 3..]),
                None => ("!--", ""),
            }
        } else {
            match after.find('>') {
                Some(e) => (&after[..e], &after[e + 1..]),
                None => (after, ""),
            }
        };
        rest = next;
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        if let Some(end) = skip_until {
            if closing && name == end {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "style" | "script" | "head" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "style" => "style",
                    "script" => "script",
                    "head" => "head",
                    _ => "title",
                })
            }
            "br" => out.push('\n'),
            "li" if !closing => {
                newline(&mut out);
                out.push_str("- ");
            }
            "p" | "div" | "tr" | "table" | "ul" | "ol" | "h1" | "h2" | "h3" | "h4" | "h5"
            | "h6" | "blockquote" | "pre" | "hr" | "li" | "section" | "article" | "header"
            | "footer" => newline(&mut out),
            "td" | "th" if closing => out.push(' '),
            _ => {}
        }
    }
    if skip_until.is_none() {
        push_text(&mut out, rest);
    }
    // Tidy: trim each line, at most one blank line in a row.
    let mut tidy = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let line = line.trim();
        if line.is_empty() {
            blank += 1;
            if blank > 1 || tidy.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        tidy.push_str(line);
        tidy.push('\n');
    }
    tidy.trim_end().to_string()
}

fn newline(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Appends text with white space folded (as a browser does) and entities decoded.
fn push_text(out: &mut String, text: &str) {
    let mut rest = text;
    while !rest.is_empty() {
        let (chunk, tail) = match rest.find('&') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        fold_space(out, chunk);
        rest = tail;
        if rest.is_empty() {
            break;
        }
        let end = rest[1..].find(';').map(|i| i + 1).filter(|&i| i <= 10);
        match end.and_then(|e| entity(&rest[1..e]).map(|c| (c, e))) {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
}

fn fold_space(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(n);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "agrave" => 'à',
        "acirc" => 'â',
        "ccedil" => 'ç',
        "ocirc" => 'ô',
        "ucirc" => 'û',
        "ugrave" => 'ù',
        "icirc" => 'î',
        "iuml" => 'ï',
        "Eacute" => 'É',
        "euro" => '€',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "rsquo" => '’',
        "lsquo" => '‘',
        "rdquo" => '”',
        "ldquo" => '“',
        "laquo" => '«',
        "raquo" => '»',
        "copy" => '©',
        "reg" => '®',
        "middot" => '·',
        "bull" => '•',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn blocks_lists_and_entities() {
        let html = "<html><head><style>p{color:red}</style><title>t</title></head><body>\
            <p>Bonjour,</p><p>R&eacute;ception &amp; exp&eacute;dition&nbsp;:</p>\
            <ul><li>Support key: K</li><li>Severity: Minor</li></ul>Line<br>two &#8217;x&#x2019; &bogus; a & b\
            <!-- hidden <p> --></body></html>";
        assert_eq!(
            to_text(html),
            "Bonjour,\nRéception & expédition :\n- Support key: K\n- Severity: Minor\nLine\ntwo ’x’ &bogus; a & b"
        );
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for s in [
            "<",
            "<p",
            "&",
            "&#99999999999;",
            "<!--",
            "<style>never closed",
            "é<é>é",
        ] {
            let _ = to_text(s);
        }
        assert_eq!(to_text("a<b"), "a");
    }
}
