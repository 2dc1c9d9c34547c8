//! Separates the new text of a reply from the quoted history below it, for the reply styles of
//! Gmail, Outlook, Apple Mail, Thunderbird and their French forms. Nothing is dropped: what is
//! not new text is returned as the quoted part, and the raw message is kept anyway.

/// Returns `(new_text, quoted_history)`, both trimmed of surrounding blank lines.
pub fn split_quoted(body: &str) -> (String, String) {
    let lines: Vec<&str> = body.lines().collect();
    let cut = find_cut(&lines).unwrap_or(lines.len());
    let new = lines[..cut].join("\n");
    let quoted = lines[cut..].join("\n");
    (new.trim().to_string(), quoted.trim().to_string())
}

/// `line` starts with `prefix` (ASCII), ignoring ASCII case.
fn starts_ci(line: &str, prefix: &str) -> bool {
    line.len() >= prefix.len()
        && line.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn find_cut(lines: &[&str]) -> Option<usize> {
    // Index of the first line of the trailing block of "> " and blank lines, if any.
    let quoted_tail = lines
        .iter()
        .rposition(|l| !(l.trim().is_empty() || l.trim_start().starts_with('>')))
        .map_or(0, |i| i + 1);
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        // "On Sun, 22 Nov 2026 at 10:02, Support <support@…> wrote:" (may wrap onto 2 lines)
        if starts_ci(line, "on ") && ends_within(lines, i, 3, "wrote:") {
            return Some(i);
        }
        // "Le 22 nov. 2026 à 10:02, Support a écrit :"
        if starts_ci(line, "le ")
            && (ends_within(lines, i, 3, "a écrit :") || ends_within(lines, i, 3, "a écrit:"))
        {
            return Some(i);
        }
        if line.starts_with("-----") || line.starts_with("--------") {
            let l = line.to_lowercase();
            if l.starts_with("-----original message-----")
                || l.starts_with("-------- original message --------")
                || l.starts_with("-----message d'origine-----")
                || l.starts_with("-------- message d'origine --------")
                || l.starts_with("-------- forwarded message --------")
            {
                return Some(i);
            }
        }
        // Outlook: a line of underscores, then From:/De : headers.
        if line.len() >= 10 && line.bytes().all(|c| c == b'_') && header_block_follows(lines, i + 1)
        {
            return Some(i);
        }
        if header_block_starts(lines, i) {
            return Some(i);
        }
        // A block of "> " lines that runs to the end (no interleaved answers below it).
        if line.starts_with('>') && i >= quoted_tail {
            return Some(i);
        }
    }
    None
}

fn ends_within(lines: &[&str], start: usize, span: usize, suffix: &str) -> bool {
    let end = (start + span).min(lines.len());
    lines[start..end].iter().any(|l| {
        let t = l.trim_end();
        t.len() >= suffix.len()
            && t.is_char_boundary(t.len() - suffix.len())
            && t[t.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    })
}

fn is_field(line: &str, names: &[&str]) -> bool {
    let l = line.trim_start_matches(['*', ' ']);
    names
        .iter()
        .any(|n| l.len() >= n.len() && l.as_bytes()[..n.len()].eq_ignore_ascii_case(n.as_bytes()))
}

/// `From: …` followed within a few lines by `Sent:`/`Date:` (or `De :` and `Envoyé :`).
fn header_block_starts(lines: &[&str], i: usize) -> bool {
    if !is_field(lines[i], &["from:", "de :", "de:"]) {
        return false;
    }
    lines[i + 1..lines.len().min(i + 5)]
        .iter()
        .any(|l| is_field(l, &["sent:", "date:", "envoyé :", "envoyé:", "to:", "à :"]))
}

fn header_block_follows(lines: &[&str], from: usize) -> bool {
    lines[from.min(lines.len())..lines.len().min(from + 3)]
        .iter()
        .enumerate()
        .any(|(k, l)| !l.trim().is_empty() && header_block_starts(lines, from + k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_style() {
        let (n, q) = split_quoted(
            "Here are the logs.\n\nJane\n\nOn Sun, 22 Nov 2026 at 10:02, Support <\nsupport@x.example> wrote:\n> Thanks for your mail\n> Ticket TKT-000001\n",
        );
        assert_eq!(n, "Here are the logs.\n\nJane");
        assert!(q.starts_with("On Sun") && q.ends_with("TKT-000001"));
    }

    #[test]
    fn outlook_style() {
        let (n, q) = split_quoted(
            "Still failing.\n\n________________________________\nFrom: Support <support@x.example>\nSent: Sunday, November 22, 2026 10:02 AM\nTo: Bob\nSubject: [TKT-000002]\n\nold text",
        );
        assert_eq!(n, "Still failing.");
        assert!(q.contains("old text"));
        let (n, _) = split_quoted("Yes.\n\nFrom: Support\nSent: today\nold");
        assert_eq!(n, "Yes.");
    }

    #[test]
    fn french_style() {
        let (n, q) = split_quoted("Merci.\n\nLe 22 nov. 2026 à 10:02, Support a écrit :\n> ancien");
        assert_eq!(n, "Merci.");
        assert_eq!(q, "Le 22 nov. 2026 à 10:02, Support a écrit :\n> ancien");
    }

    #[test]
    fn interleaved_answers_stay_new_text() {
        let body = "> question one?\nanswer one\n> question two?\nanswer two";
        let (n, q) = split_quoted(body);
        assert_eq!(n, body);
        assert_eq!(q, "");
    }

    #[test]
    fn plain_message_has_no_quote() {
        assert_eq!(
            split_quoted("hello\nworld\n"),
            ("hello\nworld".into(), String::new())
        );
    }
}
