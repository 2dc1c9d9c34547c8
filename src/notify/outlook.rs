//! Outlook's conversation headers: `Thread-Topic` (the subject without `Re:` and tags) and
//! `Thread-Index` (MS-OXOMSG `PidTagConversationIndex`, base64): a 22-byte header block — the
//! 6 high-order bytes of a FILETIME (big-endian) and a 16-byte GUID — followed by one 5-byte
//! child block per later message. Outlook groups mail whose index starts with the same header
//! block into one conversation, whatever the subject or the Message-IDs became on the way.
//! Pure: the times come from the caller.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// 100-ns intervals between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// A time as a Windows FILETIME (100-ns intervals since 1601-01-01 UTC).
pub fn filetime(at: DateTime<Utc>) -> u64 {
    let t = at.timestamp() * 10_000_000
        + i64::from(at.timestamp_subsec_nanos() / 100)
        + FILETIME_UNIX_EPOCH;
    u64::try_from(t).unwrap_or(0)
}

/// The GUID of a ticket's conversation: stable for the ticket (its id and our Message-ID
/// domain), different between installations.
pub fn ticket_guid(domain: &str, ticket_id: i64) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"ticketgate conversation\0");
    h.update(domain.as_bytes());
    h.update(b"\0");
    h.update(ticket_id.to_be_bytes());
    let d = h.finalize();
    let mut g = [0u8; 16];
    g.copy_from_slice(&d[..16]);
    // An RFC 4122 version-4 layout, as Outlook's own GUIDs have.
    g[6] = (g[6] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    g
}

/// The 22-byte header block of a conversation started at `started`.
pub fn header_block(started: DateTime<Utc>, guid: [u8; 16]) -> [u8; 22] {
    let mut b = [0u8; 22];
    b[..6].copy_from_slice(&filetime(started).to_be_bytes()[..6]);
    b[6..].copy_from_slice(&guid);
    b
}

/// A 5-byte child block for a message sent at `at` in a conversation whose header block
/// holds the time `header_time` (its 6 bytes, the low 2 bytes zero): 1 bit code, 31 bits of
/// the time difference (bits 18–48 of it, or 23–53 with code 1 when the difference is over
/// about 1.7 years), 4 random bits, 4 bits of sequence count.
pub fn child_block(header_time: u64, at: DateTime<Utc>, random: u8) -> [u8; 5] {
    let delta = filetime(at).saturating_sub(header_time);
    // Under 2^49 × 100 ns (about 1.7 years) bits 18–48 hold it whole.
    let word: u32 = if delta < 1 << 49 {
        ((delta >> 18) & 0x7FFF_FFFF) as u32
    } else {
        0x8000_0000 | ((delta >> 23) & 0x7FFF_FFFF) as u32
    };
    let mut b = [0u8; 5];
    b[..4].copy_from_slice(&word.to_be_bytes());
    b[4] = random << 4; // sequence count 0
    b
}

/// The `Thread-Index` of a ticket's mail sent at `now`: the header block alone for the
/// mail that starts the conversation (sent at the ticket's creation), the header block and
/// one child block for every later one. When the mail answers one whose `Thread-Index`
/// (`parent`) belongs to this conversation (an Outlook reply to our mail keeps our header
/// block and appends its own child block), the answer appends one child block to it, as
/// Outlook does, so the conversation shows as a tree.
pub fn thread_index(
    domain: &str,
    ticket_id: i64,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    parent: Option<&str>,
) -> String {
    let header = header_block(created, ticket_guid(domain, ticket_id));
    let chain = parent.and_then(unbase64).filter(|p| {
        p.len() > header.len()
            && (p.len() - header.len()).is_multiple_of(5)
            && p.len() <= header.len() + 5 * MAX_CHILDREN
            && p[..header.len()] == header
    });
    let mut bytes = match chain {
        Some(p) => p,
        None if now <= created => return base64(&header),
        None => header.to_vec(),
    };
    let mut t = [0u8; 8];
    t[..6].copy_from_slice(&header[..6]);
    let mut r = [0u8; 1];
    // Without an entropy source the random nibble is simply 0.
    let _ = getrandom::fill(&mut r);
    bytes.extend_from_slice(&child_block(u64::from_be_bytes(t), now, r[0] & 0x0f));
    base64(&bytes)
}

/// Child blocks kept from a parent's index: beyond this the chain is started afresh (a
/// header field stays short, and a forged index cannot grow it without bound).
const MAX_CHILDREN: usize = 60;

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes what [`base64`] wrote; `None` for anything else.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let t = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in t.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A subject as Outlook's `Thread-Topic`: without reply and forward prefixes (`Re:`, `Fwd:`,
/// `AW:`, `TR:`…) and bracketed tags (`[TKT-000042]`), repeatedly, from the start.
pub fn thread_topic(subject: &str) -> String {
    const PREFIXES: &[&str] = &[
        "re", "fw", "fwd", "aw", "wg", "tr", "rif", "sv", "vs", "antw", "réf", "ref",
    ];
    let mut s = subject.trim();
    loop {
        let before = s;
        if let Some(rest) = s.strip_prefix('[')
            && let Some(end) = rest.find(']')
        {
            s = rest[end + 1..].trim_start();
        }
        if let Some((head, rest)) = s.split_once(':') {
            let h = head.trim().to_lowercase();
            if PREFIXES.contains(&h.as_str()) {
                s = rest.trim_start();
            }
        }
        if s == before {
            break;
        }
    }
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_header_block_is_a_filetime_and_a_stable_guid() {
        // 2026-11-20T22:30:00Z as a FILETIME: seconds since 1601 × 10^7.
        let t = at("2026-11-20T22:30:00Z");
        assert_eq!(filetime(t), (1_795_213_800 + 11_644_473_600) * 10_000_000);
        let h = header_block(t, ticket_guid("support.example.test", 42));
        assert_eq!(&h[..6], &filetime(t).to_be_bytes()[..6]);
        assert_eq!(h[0], 0x01, "FILETIMEs of this century start with 0x01");
        assert_eq!(
            ticket_guid("support.example.test", 42),
            ticket_guid("support.example.test", 42)
        );
        assert_ne!(
            ticket_guid("support.example.test", 42),
            ticket_guid("support.example.test", 43)
        );
        let first = thread_index("support.example.test", 42, t, t, None);
        assert_eq!(unbase64(&first).unwrap().len(), 22);
        let later = thread_index(
            "support.example.test",
            42,
            t,
            at("2026-11-21T09:00:00Z"),
            None,
        );
        let later_bytes = unbase64(&later).unwrap();
        assert_eq!(later_bytes.len(), 27, "header block and one child block");
        assert_eq!(&later_bytes[..22], &unbase64(&first).unwrap()[..]);
        // An answer to a mail of this conversation appends to its index...
        let answer = thread_index(
            "support.example.test",
            42,
            t,
            at("2026-11-22T09:00:00Z"),
            Some(&later),
        );
        let answer = unbase64(&answer).unwrap();
        assert_eq!(answer.len(), 32);
        assert_eq!(&answer[..27], &later_bytes[..]);
        // ... but not to another conversation's, or to something that is not an index.
        let other = thread_index("support.example.test", 43, t, t, None);
        for parent in [other.as_str(), "not base64!", "AAAA"] {
            let fresh = thread_index(
                "support.example.test",
                42,
                t,
                at("2026-11-22T09:00:00Z"),
                Some(parent),
            );
            assert_eq!(unbase64(&fresh).unwrap().len(), 27, "{parent}");
        }
    }

    #[test]
    fn base64_as_rfc_4648_writes_it() {
        for (raw, b64) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), b64);
            assert_eq!(unbase64(b64).unwrap(), raw.as_bytes());
        }
    }

    #[test]
    fn a_child_block_holds_the_time_since_the_header() {
        let t = at("2026-11-20T22:30:00Z");
        let h = header_block(t, [0; 16]);
        let mut base = [0u8; 8];
        base[..6].copy_from_slice(&h[..6]);
        let base = u64::from_be_bytes(base);
        let later = t + chrono::Duration::hours(10);
        let c = child_block(base, later, 0xA);
        let word = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        assert_eq!(word >> 31, 0, "under 1.7 years: code 0");
        assert_eq!(u64::from(word), (filetime(later) - base) >> 18);
        assert_eq!(c[4], 0xA0);
        let far = child_block(base, t + chrono::Duration::days(800), 0);
        assert_eq!(far[0] >> 7, 1, "over 1.7 years: code 1");
    }

    #[test]
    fn the_topic_drops_prefixes_and_tags() {
        assert_eq!(
            thread_topic("Re: [TKT-000042] Export fails"),
            "Export fails"
        );
        assert_eq!(
            thread_topic("[TKT-000042] RE: AW: Fwd: Export fails"),
            "Export fails"
        );
        assert_eq!(
            thread_topic("Export fails: error 500"),
            "Export fails: error 500"
        );
        assert_eq!(thread_topic("TR : Plantage"), "Plantage");
    }
}
