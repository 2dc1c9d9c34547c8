//! What routing needs from a message's words: support-key candidates, ticket references and
//! the severity the customer stated (SPEC §3).

use regex::Regex;
use std::sync::OnceLock;

/// The severity a customer wrote, mapped to 1–4, with the words as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatedSeverity {
    pub level: u8,
    pub as_written: String,
}

/// The patterns, each compiled when first used (a `ticketgate ingest` process compiles only
/// those its one mail needs) and then kept.
#[derive(Debug, Clone)]
pub struct Patterns {
    key: Regex,
    /// The ticket reference prefix, escaped for a pattern.
    prefix: String,
    subject_tag: OnceLock<Regex>,
    body_ref: OnceLock<Regex>,
    labelled: OnceLock<Regex>,
    code: OnceLock<Regex>,
    subject_word: OnceLock<Regex>,
    issue_type: OnceLock<Regex>,
}

/// The value after a label, at most this many characters.
const LABEL_VALUE_CHARS: usize = 60;
/// The issue type after its label, at most this many characters.
const ISSUE_TYPE_CHARS: usize = 40;

/// `cell`'s regex, compiled from `pattern` on first use. The patterns are constants or built
/// from an escaped prefix: always valid.
fn compiled(cell: &OnceLock<Regex>, pattern: impl FnOnce() -> String) -> &Regex {
    cell.get_or_init(|| Regex::new(&pattern()).expect("valid"))
}

/// The first `n` characters of `s`.
fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// SPEC §3 vocabulary, folded to lower case without accents.
const WORDS: [(&str, u8); 26] = [
    ("critical", 1),
    ("blocker", 1),
    ("catastrophic", 1),
    ("bloquant", 1),
    ("critique", 1),
    ("high", 2),
    ("major", 2),
    ("urgent", 2),
    ("majeur", 2),
    ("medium", 3),
    ("minor", 3),
    ("serious", 3),
    ("routine", 3),
    ("mineur", 3),
    ("normal", 3),
    ("moyen", 3),
    ("low", 4),
    ("none", 4),
    ("info", 4),
    ("trivial", 4),
    ("general", 4),
    ("aucune", 4),
    ("faible", 4),
    ("urgente", 2),
    ("majeure", 2),
    ("mineure", 3),
];

fn word_level(w: &str) -> Option<u8> {
    let w = fold(w);
    WORDS.iter().find(|(k, _)| *k == w).map(|(_, l)| *l)
}

/// Lower case without the French accents, so `Sévérité` matches `severite`.
fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' => 'e',
            'à' | 'â' | 'À' => 'a',
            'î' | 'ï' => 'i',
            'ô' => 'o',
            'û' | 'ù' => 'u',
            'ç' => 'c',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl Patterns {
    /// `key` must have one capture group around the key; `prefix` is the ticket reference
    /// prefix (`TKT` → `[TKT-000123]`).
    pub fn new(key: Regex, prefix: &str) -> Patterns {
        Patterns {
            key,
            prefix: regex::escape(prefix),
            subject_tag: OnceLock::new(),
            body_ref: OnceLock::new(),
            labelled: OnceLock::new(),
            code: OnceLock::new(),
            subject_word: OnceLock::new(),
            issue_type: OnceLock::new(),
        }
    }

    fn subject_tag(&self) -> &Regex {
        compiled(&self.subject_tag, || {
            format!(r"(?i)\[\s*{}-([0-9]{{1,12}})\s*\]", self.prefix)
        })
    }

    fn body_ref(&self) -> &Regex {
        compiled(&self.body_ref, || {
            format!(r"(?i)(?-u:\b){}-([0-9]{{1,12}})(?-u:\b)", self.prefix)
        })
    }

    // The four patterns below run on the text with ASCII letters lowered (same byte
    // offsets, so what they capture is sliced from the original) instead of with `(?i)`:
    // case-insensitive alternations of words multiply the literals the regex engine
    // extracts, and compiling them cost more than a `ticketgate ingest` process does
    // besides (about 10 M instructions of 15 M).

    /// A labelled line's value: the rest of the line (cut to [`LABEL_VALUE_CHARS`] by the
    /// caller; a bounded `.{1,60}` compiles to a sixty-fold automaton).
    fn labelled(&self) -> &Regex {
        compiled(&self.labelled, || {
            r"(?m)^[\s*>•-]*(?:severity|s[éÉe]v[éÉe]rit[éÉe]|priority|priorit[éÉe]|urgency|urgence|impact|criticality|criticit[éÉe])\s*:\s*(.+)".into()
        })
    }

    fn code(&self) -> &Regex {
        compiled(&self.code, || {
            r"(?-u:\b)(?:s[éÉe]v(?:[éÉe]rit[éÉe]|erity)?\s*[-_ ]?\s*([1-4])|([spl])([1-4]))(?-u:\b)"
                .into()
        })
    }

    fn subject_word(&self) -> &Regex {
        compiled(&self.subject_word, || {
            r"(?:^|[\[(])\s*([a-zéèêÉÈÊ]+)\s*(?:[\])]|\s*[:!\-–]|$)".into()
        })
    }

    /// The issue type's line: the rest of it (cut to [`ISSUE_TYPE_CHARS`] by the caller).
    fn issue_type_re(&self) -> &Regex {
        compiled(&self.issue_type, || {
            r"(?m)^[\s*>•-]*(?:issue type|request type|ticket type|type de demande|type d'incident|type)\s*:\s*([^\n]+)".into()
        })
    }

    /// Key-shaped strings in the subject, then the new text, upper-cased, without repeats.
    pub fn key_candidates(&self, subject: &str, text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for hay in [subject, text] {
            for c in self.key.captures_iter(hay) {
                if let Some(m) = c.get(1) {
                    let k = m.as_str().trim().to_ascii_uppercase();
                    if !out.contains(&k) {
                        out.push(k);
                    }
                }
            }
        }
        out
    }

    pub fn subject_refs(&self, subject: &str) -> Vec<u64> {
        numbers(self.subject_tag(), subject)
    }

    pub fn body_refs(&self, text: &str) -> Vec<u64> {
        numbers(self.body_ref(), text)
    }

    /// The severity the customer stated, by these rules (first match wins):
    /// 1. a labelled line (`Severity: High`, `Sévérité : Majeur`, `Priority: P1`) in the subject
    ///    or the new text;
    /// 2. a code in the subject (`Sev1`, `Severity 2`, `S1`, `P3`, `L4`), or a vocabulary word
    ///    that starts the subject or stands in brackets (`CRITICAL - …`, `[Urgent]`);
    /// 3. an explicit `Severity N` / `Sev N` in the new text.
    ///
    /// Bare words in running text ("high CPU") do not count: they are too often not meant.
    pub fn severity(&self, subject: &str, text: &str) -> Option<StatedSeverity> {
        for hay in [subject, text] {
            if let Some(c) = self.labelled().captures(&hay.to_ascii_lowercase()) {
                let value =
                    first_chars(c.get(1).map_or("", |m| &hay[m.range()]), LABEL_VALUE_CHARS).trim();
                if let Some(level) = self.level_in_value(value) {
                    return Some(StatedSeverity {
                        level,
                        as_written: value.to_string(),
                    });
                }
            }
        }
        if let Some(s) = self.code_in(subject) {
            return Some(s);
        }
        for c in self
            .subject_word()
            .captures_iter(&subject.to_ascii_lowercase())
        {
            if let Some(m) = c.get(1)
                && let Some(level) = word_level(&subject[m.range()])
            {
                return Some(StatedSeverity {
                    level,
                    as_written: subject[m.range()].to_string(),
                });
            }
        }
        // A shouted vocabulary word anywhere in the subject: "Export URGENT".
        for w in subject.split(|c: char| !c.is_alphabetic()) {
            if w.len() >= 4
                && w.chars().all(|c| c.is_uppercase())
                && let Some(level) = word_level(w)
            {
                return Some(StatedSeverity {
                    level,
                    as_written: w.to_string(),
                });
            }
        }
        self.code_in(text)
            .filter(|s| fold(&s.as_written).starts_with("sev"))
    }

    /// The issue type (WSO2) from a labelled line (`Type: query`), as one of `incident`,
    /// `hosting_incident`, `query`, `bug`, `task`; `None` when not stated (an incident).
    pub fn issue_type(&self, text: &str) -> Option<&'static str> {
        let low = text.to_ascii_lowercase();
        let value = fold(
            first_chars(
                self.issue_type_re().captures(&low)?.get(1)?.as_str(),
                ISSUE_TYPE_CHARS,
            )
            .trim(),
        );
        let v = value.as_str();
        Some(if v.starts_with("hosting") {
            "hosting_incident"
        } else if v.starts_with("incident") {
            "incident"
        } else if [
            "query",
            "question",
            "how",
            "information",
            "demande d'information",
        ]
        .iter()
        .any(|w| v.starts_with(w))
        {
            "query"
        } else if ["bug", "defect", "anomalie"]
            .iter()
            .any(|w| v.starts_with(w))
        {
            "bug"
        } else if ["task", "tache", "service request", "request"]
            .iter()
            .any(|w| v.starts_with(w))
        {
            "task"
        } else {
            return None;
        })
    }

    fn code_in(&self, hay: &str) -> Option<StatedSeverity> {
        let low = hay.to_ascii_lowercase();
        let c = self.code().captures(&low)?;
        let digit = c.get(1).or_else(|| c.get(3))?;
        Some(StatedSeverity {
            level: digit.as_str().parse().ok()?,
            as_written: hay[c.get(0)?.range()].to_string(),
        })
    }

    fn level_in_value(&self, value: &str) -> Option<u8> {
        if let Some(s) = self.code_in(value) {
            return Some(s.level);
        }
        let first = value.trim_start_matches(|c: char| !c.is_alphanumeric());
        if let Some(d) = first.chars().next().and_then(|c| c.to_digit(10))
            && (1..=4).contains(&d)
        {
            return Some(d as u8);
        }
        value
            .split(|c: char| !c.is_alphanumeric())
            .find_map(word_level)
    }
}

fn numbers(re: &Regex, hay: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for c in re.captures_iter(hay) {
        if let Some(n) = c.get(1).and_then(|m| m.as_str().parse().ok())
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Patterns {
        Patterns::new(
            Regex::new(crate::config::DEFAULT_KEY_PATTERN).unwrap(),
            "TKT",
        )
    }

    fn sev(subject: &str, text: &str) -> Option<u8> {
        p().severity(subject, text).map(|s| s.level)
    }

    /// Nothing is compiled until used; the bounded label values (now cut in code, not by
    /// the pattern) still stop at 60 and 40 characters.
    #[test]
    fn patterns_compile_on_first_use_and_cut_values_as_before() {
        let p = p();
        assert!(p.labelled.get().is_none() && p.subject_tag.get().is_none());
        assert_eq!(p.subject_refs("Re: [TKT-000042] x"), vec![42]);
        assert!(p.subject_tag.get().is_some() && p.labelled.get().is_none());
        let long = format!("Severity: {} high", "a".repeat(58));
        assert_eq!(
            p.severity("", &long),
            None,
            "`high` is past the 60th character"
        );
        let short = format!("Severity: {} high", "a".repeat(50));
        assert_eq!(p.severity("", &short).map(|s| s.level), Some(2));
        assert_eq!(
            p.severity("", &short).unwrap().as_written,
            format!("{} high", "a".repeat(50))
        );
        // Lowered ASCII instead of `(?i)`: any case still matches, the text kept as written.
        let s = p.severity("", "SÉVÉRITÉ : MAJEUR").unwrap();
        assert_eq!((s.level, s.as_written.as_str()), (2, "MAJEUR"));
        let s = p.severity("SEV-1: down", "").unwrap();
        assert_eq!((s.level, s.as_written.as_str()), (1, "SEV-1"));
        let s = p.severity("[URGENT] Export", "").unwrap();
        assert_eq!((s.level, s.as_written.as_str()), (2, "URGENT"));
        assert_eq!(p.issue_type("ISSUE TYPE: Bug"), Some("bug"));
        assert_eq!(p.issue_type("Type: query"), Some("query"));
        let far = format!("Type: {}query", " x".repeat(20));
        assert_eq!(p.issue_type(&far), None, "past the 40th character");
    }

    #[test]
    fn spec_vocabulary_maps_to_levels() {
        let cases = [
            ("Severity 1", 1),
            ("Sev1", 1),
            ("S1", 1),
            ("P1", 1),
            ("L1", 1),
            ("Critical", 1),
            ("Blocker", 1),
            ("Catastrophic", 1),
            ("Bloquant", 1),
            ("Critique", 1),
            ("Severity 2", 2),
            ("P2", 2),
            ("L2", 2),
            ("High", 2),
            ("Major", 2),
            ("Urgent", 2),
            ("Majeur", 2),
            ("Severity 3", 3),
            ("P3", 3),
            ("L3", 3),
            ("Medium", 3),
            ("Minor", 3),
            ("Serious", 3),
            ("Routine", 3),
            ("Mineur", 3),
            ("Severity 4", 4),
            ("P4", 4),
            ("L4", 4),
            ("Low", 4),
            ("None", 4),
            ("Info", 4),
            ("Trivial", 4),
            ("General", 4),
            ("Aucune", 4),
        ];
        for (word, level) in cases {
            assert_eq!(
                sev("", &format!("Severity: {word}")),
                Some(level),
                "labelled {word}"
            );
            assert_eq!(
                sev(&format!("[{word}] export fails"), ""),
                Some(level),
                "subject {word}"
            );
        }
    }

    #[test]
    fn french_labels_and_accents() {
        assert_eq!(sev("", "Bonjour,\nSévérité : Majeur\nMerci"), Some(2));
        assert_eq!(sev("", "Priorité : critique"), Some(1));
    }

    #[test]
    fn subject_forms() {
        assert_eq!(sev("CRITICAL - production platform down", ""), Some(1));
        assert_eq!(sev("Sev2: Export job fails", ""), Some(2));
        assert_eq!(sev("Errors in nightly import [P3]", ""), Some(3));
        assert_eq!(sev("Export URGENT please", ""), Some(2));
    }

    #[test]
    fn running_text_does_not_set_severity() {
        assert_eq!(
            sev(
                "Question about high CPU",
                "We see high load and a minor glitch."
            ),
            None
        );
        assert_eq!(
            sev("Dashboard", "See section S1 of the manual and page P2."),
            None
        );
        assert_eq!(sev("", "This is a severity 2 problem for us."), Some(2));
    }

    #[test]
    fn issue_types() {
        let p = p();
        assert_eq!(p.issue_type("Type: Query\nhow do I export?"), Some("query"));
        assert_eq!(
            p.issue_type("Issue type: Hosting incident"),
            Some("hosting_incident")
        );
        assert_eq!(p.issue_type("Type de demande : Tâche"), Some("task"));
        assert_eq!(p.issue_type("- Type: bug"), Some("bug"));
        assert_eq!(p.issue_type("no type here"), None);
    }

    #[test]
    fn keys_and_refs() {
        let p = p();
        assert_eq!(
            p.key_candidates(
                "[acme-7q2m-4kx9-0001] help",
                "Support-Key: ACME-7Q2M-4KX9-0001\nalso GLBX-2R8D-77QP-0002"
            ),
            vec!["ACME-7Q2M-4KX9-0001", "GLBX-2R8D-77QP-0002"]
        );
        assert_eq!(p.subject_refs("Re: [TKT-000123] x [ tkt-7 ]"), vec![123, 7]);
        assert_eq!(p.body_refs("about TKT-000042, thanks"), vec![42]);
        assert!(p.subject_refs("TKT-000123 without brackets").is_empty());
    }
}
