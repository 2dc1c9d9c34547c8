//! Outbound DKIM (`[outbound.dkim]`): every composed message is signed with mail-auth before it
//! is written to the outbox, with an RSA (2048 bits or more) or Ed25519 key read at start.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;

/// The headers signed when present (mail-auth signs only those a message has). Both
/// List-Unsubscribe headers must be signed for RFC 8058 one-click unsubscription.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
];

enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// A loaded signing key with its domain and selector.
pub struct Signer {
    key: Key,
    pub domain: String,
    pub selector: String,
    /// `rsa-sha256` or `ed25519-sha256`, for the log.
    pub algorithm: &'static str,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Signer {{ domain: {}, selector: {}, algorithm: {} }}",
            self.domain, self.selector, self.algorithm
        )
    }
}

impl Signer {
    /// Reads a PEM private key (PKCS#1 RSA, or PKCS#8 RSA or Ed25519). The error says what
    /// is wrong with the file, never its content.
    pub fn load(domain: &str, selector: &str, key_file: &Path) -> Result<Signer, String> {
        let pem = std::fs::read(key_file)
            .map_err(|e| format!("cannot read {}: {e}", key_file.display()))?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
            format!(
                "{} holds no PEM private key (write an RSA 2048 or Ed25519 key, e.g. `openssl genpkey -algorithm ed25519`)",
                key_file.display()
            )
        })?;
        let (key, algorithm) = match &der {
            PrivateKeyDer::Pkcs8(p8) => {
                match Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der()) {
                    Ok(k) => (
                        Key::Ed25519(Self::template(DkimSigner::from_key(k), domain, selector)),
                        "ed25519-sha256",
                    ),
                    Err(_) => (
                        Key::Rsa(Self::rsa(&der, domain, selector, key_file)?),
                        "rsa-sha256",
                    ),
                }
            }
            _ => (
                Key::Rsa(Self::rsa(&der, domain, selector, key_file)?),
                "rsa-sha256",
            ),
        };
        Ok(Signer {
            key,
            domain: domain.to_string(),
            selector: selector.to_string(),
            algorithm,
        })
    }

    fn rsa(
        der: &PrivateKeyDer<'_>,
        domain: &str,
        selector: &str,
        key_file: &Path,
    ) -> Result<DkimSigner<RsaKey<Sha256>, Done>, String> {
        let k = RsaKey::<Sha256>::from_key_der(der.clone_key()).map_err(|e| {
            format!(
                "{} is not a usable RSA or Ed25519 key ({e}); RSA keys need 2048 bits or more",
                key_file.display()
            )
        })?;
        if k.public_key().len() < 256 {
            return Err(format!(
                "{}: RSA keys need 2048 bits or more",
                key_file.display()
            ));
        }
        Ok(Self::template(DkimSigner::from_key(k), domain, selector))
    }

    fn template<T: mail_auth::common::crypto::SigningKey>(
        s: DkimSigner<T, mail_auth::dkim::NeedDomain>,
        domain: &str,
        selector: &str,
    ) -> DkimSigner<T, Done> {
        s.domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
    }

    /// The message with a `DKIM-Signature` header in front.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let sig = match &self.key {
            Key::Rsa(s) => s.sign(message),
            Key::Ed25519(s) => s.sign(message),
        }
        .map_err(|e| format!("DKIM signing failed: {e}"))?;
        let mut out = sig.to_header().into_bytes();
        out.extend_from_slice(message);
        Ok(out)
    }
}
