//! VERP with a signature: the envelope sender of outbound message `ID` is
//! `LOCAL+ID.SIGNATURE@DOMAIN`, where `LOCAL@DOMAIN` is the configured envelope sender
//! (`outbound.smtp.envelope_from`, else `outbound.from`) and `SIGNATURE` is the first 8
//! bytes of HMAC-SHA256(`outbound.bounce_key`, "verp:" ID), in lower-case hex. A bounce
//! comes back to that address, naming the message it is about; one whose signature does
//! not match was not caused by us (forged, or guessed) and changes nothing.

use sha2::{Digest, Sha256};

/// Hex digits of the signature (8 bytes: 2^64 guesses per outbox id).
const SIG_HEX: usize = 16;

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

fn signature(key: &[u8], id: i64) -> String {
    let mac = hmac_sha256(key, format!("verp:{id}").as_bytes());
    let mut s = String::with_capacity(SIG_HEX);
    for b in &mac[..SIG_HEX / 2] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The envelope sender of outbox row `id`, from the base address `local@domain`.
pub fn address(base: &str, key: &[u8], id: i64) -> String {
    let (local, domain) = base.rsplit_once('@').unwrap_or((base, ""));
    format!("{local}+{id}.{}@{domain}", signature(key, id))
}

/// What an address says about VERP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Ours, signed: the bounce is about outbox row `id`.
    Valid(i64),
    /// Shaped like ours (`LOCAL+…@DOMAIN` of our base) but the signature does not match.
    Forged,
}

/// Reads `addr` against the base address; `None` when it is not a VERP address of ours.
/// Without a key (`outbound.bounce_key` unset) every tagged address counts as forged: we
/// never sent one.
pub fn check(addr: &str, base: &str, key: Option<&[u8]>) -> Option<Tag> {
    let addr = addr
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase();
    let (local, domain) = addr.rsplit_once('@')?;
    let (base_local, base_domain) = base.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(base_domain) {
        return None;
    }
    let tag = local
        .strip_prefix(&base_local.to_ascii_lowercase())?
        .strip_prefix('+')?;
    // Only `DIGITS.HEX` is shaped like ours: other `+details` (a ticket's reply address
    // `support+tkt-000123.sig`, a user's own tag) are not VERP addresses at all.
    let (id, sig) = tag.split_once('.')?;
    if id.is_empty()
        || !id.bytes().all(|b| b.is_ascii_digit())
        || sig.is_empty()
        || !sig.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let Some(key) = key else {
        return Some(Tag::Forged);
    };
    let Ok(id) = id.parse::<i64>() else {
        return Some(Tag::Forged);
    };
    // Constant-time comparison: a timing difference must not reveal the signature.
    let want = signature(key, id);
    let same = want.len() == sig.len()
        && want
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    Some(if same && id > 0 {
        Tag::Valid(id)
    } else {
        Tag::Forged
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn reply_addresses_and_other_tags_are_not_verp() {
        let key = b"0123456789abcdef0123456789abcdef";
        let base = "support@support.example.test";
        for other in [
            "support+tkt-000001.42a8324ec3b071d9@support.example.test",
            "support+newsletter@support.example.test",
            "support+12.xyz@support.example.test",
        ] {
            assert_eq!(check(other, base, Some(key)), None, "{other}");
            assert_eq!(check(other, base, None), None, "{other}");
        }
        assert_eq!(
            check("support+12.00ff@support.example.test", base, None),
            Some(Tag::Forged)
        );
    }

    #[test]
    fn signed_addresses_verify_and_forgeries_do_not() {
        let key = b"0123456789abcdef0123456789abcdef";
        let a = address("bounces@example.com", key, 42);
        assert!(a.starts_with("bounces+42."), "{a}");
        assert!(a.ends_with("@example.com"));
        assert_eq!(
            check(&a, "bounces@example.com", Some(key)),
            Some(Tag::Valid(42))
        );
        assert_eq!(
            check(&a.to_uppercase(), "bounces@example.com", Some(key)),
            Some(Tag::Valid(42))
        );
        // Another id with this signature, another key, a guessed signature: forged.
        let other = a.replace("+42.", "+43.");
        assert_eq!(
            check(&other, "bounces@example.com", Some(key)),
            Some(Tag::Forged)
        );
        assert_eq!(
            check(&a, "bounces@example.com", Some(b"another key")),
            Some(Tag::Forged)
        );
        assert_eq!(
            check(
                "bounces+42.0000000000000000@example.com",
                "bounces@example.com",
                Some(key)
            ),
            Some(Tag::Forged)
        );
        assert_eq!(check(&a, "bounces@example.com", None), Some(Tag::Forged));
        // Not ours at all.
        assert_eq!(
            check("jane@example.com", "bounces@example.com", Some(key)),
            None
        );
        assert_eq!(check(&a, "bounces@other.example", Some(key)), None);
    }
}
