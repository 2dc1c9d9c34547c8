//! Unsubscribe tokens: `{SUBSCRIBER_ID}.{SIGNATURE}`, SIGNATURE an HMAC-SHA256 of
//! `unsubscribe:{ID}` under `[announcements] key`, truncated to 128 bits, lower-case hex.
//! The one-click URL is `{http.public_url}/u/TOKEN`. Pure: no store, no clock. A token names
//! a subscriber row; removing the row (or re-subscribing, which makes a new row id) makes
//! old tokens name nothing.

use ring::hmac;

/// The HMAC key (from `[announcements] key`).
pub struct UnsubscribeKey(hmac::Key);

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey(***)")
    }
}

/// Hex characters of a signature.
const SIG_LEN: usize = 32;

impl UnsubscribeKey {
    pub fn new(secret: &[u8]) -> UnsubscribeKey {
        UnsubscribeKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn signature(&self, id: i64) -> String {
        let tag = hmac::sign(&self.0, format!("unsubscribe:{id}").as_bytes());
        tag.as_ref()[..SIG_LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The token for subscriber `id`.
pub fn sign(key: &UnsubscribeKey, id: i64) -> String {
    format!("{id}.{}", key.signature(id))
}

/// The subscriber id a token names, when its signature is ours (compared in constant time).
pub fn verify(key: &UnsubscribeKey, token: &str) -> Option<i64> {
    let (id, sig) = token.trim().split_once('.')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 18 {
        return None;
    }
    let id: i64 = id.parse().ok()?;
    let want = key.signature(id);
    let got = sig.to_ascii_lowercase();
    let same = want.len() == got.len()
        && want
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then_some(id)
}

/// `{public_url}/u/TOKEN` (no doubled slash).
pub fn url(public_url: &str, token: &str) -> String {
    format!("{}/u/{token}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_a_changed_one_does_not() {
        let k = UnsubscribeKey::new(b"secret one");
        let t = sign(&k, 42);
        assert!(t.starts_with("42."));
        assert_eq!(verify(&k, &t), Some(42));
        assert_eq!(verify(&k, &t.to_ascii_uppercase()), Some(42));
        // Another id with the same signature, another key, a cut signature: nothing.
        let sig = t.split_once('.').unwrap().1;
        assert_eq!(verify(&k, &format!("43.{sig}")), None);
        assert_eq!(verify(&UnsubscribeKey::new(b"secret two"), &t), None);
        assert_eq!(verify(&k, &t[..t.len() - 1]), None);
        assert_eq!(verify(&k, "-1.abc"), None);
        assert_eq!(verify(&k, "nonsense"), None);
    }

    #[test]
    fn url_joins_without_a_double_slash() {
        assert_eq!(
            url("https://x.example/", "1.ab"),
            "https://x.example/u/1.ab"
        );
        assert_eq!(url("https://x.example", "1.ab"), "https://x.example/u/1.ab");
    }
}
