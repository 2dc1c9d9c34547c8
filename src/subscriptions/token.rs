//! Confirmation tokens of subscription requests (double opt-in) and of removals that need
//! the address's own confirmation (by mail, or a one-click unsubscribe of a shared
//! distribution address).
//!
//! A token is `c42-SIG` (confirm subscriber 42's subscription) or `r42-SIG` (confirm its
//! removal), SIG being HMAC-SHA256 of `ticketgate-subscription:PURPOSE:ID:LIST:ADDRESS`,
//! truncated to 128 bits, lower-case hex. Binding the list and address means a token cannot
//! confirm a later row that happens to get the same id. The same token works in a link
//! (`PUBLIC_URL/s/TOKEN`) and in the subject of a reply (`[c42-SIG]`). Pure.

use ring::hmac;

/// What a token confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A pending subscription becomes confirmed.
    Subscribe,
    /// The subscriber is removed.
    Remove,
}

impl Purpose {
    fn letter(self) -> char {
        match self {
            Purpose::Subscribe => 'c',
            Purpose::Remove => 'r',
        }
    }
}

/// A token read from a link or a subject, its signature not yet checked (that needs the
/// subscriber's list and address, from the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub purpose: Purpose,
    pub subscriber: i64,
    sig: String,
}

/// Hex characters of a signature.
const SIG_LEN: usize = 32;

pub struct ConfirmKey(hmac::Key);

impl std::fmt::Debug for ConfirmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfirmKey(***)")
    }
}

impl ConfirmKey {
    pub fn new(secret: &[u8]) -> ConfirmKey {
        ConfirmKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn sig(&self, purpose: Purpose, id: i64, list: &str, address: &str) -> String {
        let msg = format!(
            "ticketgate-subscription:{}:{id}:{}:{}",
            purpose.letter(),
            list.to_ascii_lowercase(),
            address.to_ascii_lowercase()
        );
        let tag = hmac::sign(&self.0, msg.as_bytes());
        tag.as_ref()[..SIG_LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The token for subscriber `id` of `list` at `address`.
    pub fn sign(&self, purpose: Purpose, id: i64, list: &str, address: &str) -> String {
        format!(
            "{}{id}-{}",
            purpose.letter(),
            self.sig(purpose, id, list, address)
        )
    }

    /// Whether `claimed` was signed for this subscriber (constant time).
    pub fn verify(&self, claimed: &Claimed, list: &str, address: &str) -> bool {
        let want = self.sig(claimed.purpose, claimed.subscriber, list, address);
        want.len() == claimed.sig.len()
            && want
                .bytes()
                .zip(claimed.sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Reads a token's shape: `c|r`, a positive id, `-`, 32 hex digits.
pub fn read(token: &str) -> Option<Claimed> {
    let mut chars = token.chars();
    let purpose = match chars.next()? {
        'c' | 'C' => Purpose::Subscribe,
        'r' | 'R' => Purpose::Remove,
        _ => return None,
    };
    let (id, sig) = chars.as_str().split_once('-')?;
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if sig.len() != SIG_LEN || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Claimed {
        purpose,
        subscriber: id.parse().ok().filter(|&n: &i64| n > 0)?,
        sig: sig.to_ascii_lowercase(),
    })
}

/// The first token written in a subject between brackets (`Re: … [c42-SIG]`).
pub fn in_subject(subject: &str) -> Option<Claimed> {
    subject
        .split('[')
        .skip(1)
        .filter_map(|part| part.split_once(']').map(|(t, _)| t.trim()))
        .find_map(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ConfirmKey {
        ConfirmKey::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_verifies_for_its_subscriber_only() {
        let k = key();
        let t = k.sign(Purpose::Subscribe, 42, "eu-incidents", "ops@acme.example");
        assert!(t.starts_with("c42-") && t.len() == 4 + SIG_LEN, "{t}");
        let c = read(&t).unwrap();
        assert_eq!((c.purpose, c.subscriber), (Purpose::Subscribe, 42));
        assert!(k.verify(&c, "eu-incidents", "OPS@acme.example"));
        assert!(!k.verify(&c, "us-incidents", "ops@acme.example"));
        assert!(!k.verify(&c, "eu-incidents", "other@acme.example"));
        assert!(!ConfirmKey::new(b"another key").verify(&c, "eu-incidents", "ops@acme.example"));
    }

    #[test]
    fn the_purpose_is_signed() {
        let k = key();
        let t = k.sign(Purpose::Subscribe, 7, "l", "a@b.example");
        let forged = format!("r{}", &t[1..]);
        let c = read(&forged).unwrap();
        assert_eq!(c.purpose, Purpose::Remove);
        assert!(!k.verify(&c, "l", "a@b.example"));
    }

    #[test]
    fn malformed_tokens_are_not_read() {
        for t in [
            "",
            "c",
            "c42",
            "c42-",
            "x42-0123456789abcdef0123456789abcdef",
            "c-0123456789abcdef0123456789abcdef",
            "c0-0123456789abcdef0123456789abcdef",
            "c42-0123456789abcdef0123456789abcde",
            "c42-0123456789abcdef0123456789abcdeg",
            "c4a-0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(read(t), None, "{t:?}");
        }
    }

    #[test]
    fn a_reply_subject_carries_the_token() {
        let k = key();
        let t = k.sign(Purpose::Remove, 9, "l", "a@b.example");
        let subject = format!("Re: AW: Confirm: unsubscribe a@b.example from l [{t}]");
        let c = in_subject(&subject).unwrap();
        assert!(k.verify(&c, "l", "a@b.example"));
        assert_eq!(in_subject("Re: [TKT-000042] export fails"), None);
    }
}
