//! Unwatch links (issue 13): every copy of a ticket's public update that goes to a watcher
//! ends with `PUBLIC_URL/w/TOKEN`, where TOKEN is `TICKETID.SIGNATURE` and SIGNATURE is an
//! HMAC-SHA256 of the ticket id and the watcher's address, truncated to 128 bits, in
//! lower-case hex. The link names no address: the server finds the watcher by signing each
//! of the ticket's current watchers (0–3 in practice) and comparing in constant time. Nothing
//! is stored per link, so every mail can carry one without a write.
//!
//! The key is the reply tokens' (`inbound.reply_key`, [`super::token`]), under its own label
//! (`unwatch\0`), so neither kind of token can stand for the other; without a reply key
//! there are no unwatch links (watchers can still reply `#unwatch`).

use ring::hmac;

/// The HMAC key (from `inbound.reply_key`).
pub struct UnwatchKey(hmac::Key);

impl std::fmt::Debug for UnwatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnwatchKey(***)")
    }
}

/// Hex characters of a signature (128 bits).
const SIG_LEN: usize = 32;

impl UnwatchKey {
    pub fn new(secret: &[u8]) -> UnwatchKey {
        UnwatchKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn sign(&self, ticket_id: i64, address: &str) -> String {
        let msg = format!("unwatch\0{ticket_id}\0{}", address.to_ascii_lowercase());
        let tag = hmac::sign(&self.0, msg.as_bytes());
        tag.as_ref()[..SIG_LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The token of `address` watching `ticket_id`.
    pub fn token(&self, ticket_id: i64, address: &str) -> String {
        format!("{ticket_id}.{}", self.sign(ticket_id, address))
    }

    /// Which of `addresses` (the ticket's current watchers) `token` belongs to, if any.
    /// Every address is compared, in constant time, whichever matches.
    pub fn find<'a>(
        &self,
        ticket_id: i64,
        token: &str,
        addresses: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'a str> {
        let (_, sig) = token.split_once('.')?;
        let sig = sig.to_ascii_lowercase();
        let mut found = None;
        for a in addresses {
            let want = self.sign(ticket_id, a);
            if crate::store::constant_time_eq(want.as_bytes(), sig.as_bytes()) {
                found = Some(a);
            }
        }
        found
    }
}

/// The ticket id a token names (`123.sig` → 123); `None` for anything not shaped like a
/// token, before any lookup.
pub fn ticket_of(token: &str) -> Option<i64> {
    let (id, sig) = token.split_once('.')?;
    if sig.len() != SIG_LEN || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    id.parse::<i64>().ok().filter(|&i| i > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_one_watcher_of_one_ticket_under_one_key() {
        let k = UnwatchKey::new(b"0123456789abcdef0123456789abcdef");
        let t = k.token(7, "Bob@acme.example");
        assert_eq!(ticket_of(&t), Some(7));
        let watchers = ["carol@acme.example", "bob@acme.example"];
        assert_eq!(k.find(7, &t, watchers), Some("bob@acme.example"));
        assert_eq!(k.find(8, &t, watchers), None, "another ticket");
        assert_eq!(k.find(7, &t, ["carol@acme.example"]), None, "not watching");
        let other = UnwatchKey::new(b"another key, same length......!!");
        assert_eq!(other.find(7, &t, watchers), None, "another key");
        // The reply token of the same key does not pass for an unwatch token.
        let reply = crate::auth::token::ReplyKey::new(b"0123456789abcdef0123456789abcdef")
            .sign("TKT-000007");
        assert_eq!(k.find(7, &format!("7.{reply}"), watchers), None);
        for bad in [
            "",
            "7",
            "7.",
            "x.0123",
            "-1.00000000000000000000000000000000",
        ] {
            assert_eq!(ticket_of(bad), None, "{bad}");
        }
    }
}
