//! Reply tokens: outbound ticket mail carries a per-ticket reply address
//! `support+TKT-000123.SIGNATURE@domain`, where SIGNATURE is an HMAC-SHA256 of the reference
//! under `inbound.reply_key`, truncated to 64 bits, in lower-case hex. A mail sent to that
//! address proves its sender read our mail about that ticket: enough to let an
//! unauthenticated customer mail change the ticket's status.

use ring::hmac;

/// The HMAC key (from `inbound.reply_key`).
pub struct ReplyKey(hmac::Key);

impl std::fmt::Debug for ReplyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyKey(***)")
    }
}

/// Hex characters of a signature.
const SIG_LEN: usize = 16;

impl ReplyKey {
    pub fn new(secret: &[u8]) -> ReplyKey {
        ReplyKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The signature of a reference (`TKT-000123`, compared in upper case).
    pub fn sign(&self, reference: &str) -> String {
        let tag = hmac::sign(&self.0, reference.to_ascii_uppercase().as_bytes());
        tag.as_ref()[..SIG_LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `sig` is the signature of `reference` (constant time).
    pub fn verify(&self, reference: &str, sig: &str) -> bool {
        let want = self.sign(reference);
        let got = sig.to_ascii_lowercase();
        want.len() == got.len()
            && want
                .bytes()
                .zip(got.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// `support+TKT-000123.SIG@domain` for the support address `support@domain`.
    pub fn address(&self, support: &str, reference: &str) -> String {
        let (local, domain) = support.rsplit_once('@').unwrap_or((support, ""));
        let local = local.split('+').next().unwrap_or(local);
        format!("{local}+{reference}.{}@{domain}", self.sign(reference))
    }
}

/// The `+detail` of an address (`support+TKT-000123.ab12@x` → `TKT-000123.ab12`), lower case.
pub fn plus_detail(address: &str) -> Option<String> {
    let (local, _) = address.rsplit_once('@')?;
    let (_, detail) = local.split_once('+')?;
    (!detail.is_empty()).then(|| detail.to_ascii_lowercase())
}

/// A reply tag split into the ticket it names and its signature, if any:
/// `tkt-000123.ab12` → `(123, Some("ab12"))`, `tkt-000123` → `(123, None)`.
pub fn split_tag<'a>(prefix: &str, tag: &'a str) -> Option<(i64, Option<&'a str>)> {
    let (reference, sig) = match tag.split_once('.') {
        Some((r, s)) => (r, Some(s)),
        None => (tag, None),
    };
    let id = crate::ticket_ref::parse(prefix, reference)?;
    Some((id, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_sign_and_verify() {
        let k = ReplyKey::new(b"0123456789abcdef0123456789abcdef");
        let a = k.address("support@help.example", "TKT-000123");
        assert!(a.starts_with("support+TKT-000123."), "{a}");
        assert!(a.ends_with("@help.example"));
        let tag = plus_detail(&a).unwrap();
        let (id, sig) = split_tag("TKT", &tag).unwrap();
        assert_eq!(id, 123);
        let sig = sig.unwrap();
        assert_eq!(sig.len(), 16);
        assert!(k.verify("tkt-000123", sig));
        assert!(!k.verify("TKT-000124", sig));
        assert!(!k.verify("TKT-000123", "0000000000000000"));
        assert!(!ReplyKey::new(b"another key, same length......!!").verify("TKT-000123", sig));
        assert_eq!(split_tag("TKT", "tkt-000007"), Some((7, None)));
        assert_eq!(plus_detail("support@x"), None);
    }
}
