//! TLS client configuration shared by the IMAP and SMTP clients: rustls with the ring
//! provider, trusting the CAs of a PEM file when one is configured, otherwise the system's
//! roots.

use std::path::Path;
use std::sync::Arc;

/// The certificate authorities to trust: those of `ca_file`, or the system's roots.
pub fn ca_certificates(
    ca_file: Option<&Path>,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{} holds no PEM certificate", path.display()));
            }
            Ok(certs)
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(
                    "no system CA certificates found (install the ca-certificates package)".into(),
                );
            }
            Ok(found.certs)
        }
    }
}

/// The rustls client configuration: the CAs of `ca_file`, or the system's roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = ca_certificates(ca_file)?;
    match ca_file {
        Some(path) => {
            for c in certs {
                roots.add(c).map_err(|e| {
                    format!("a certificate in {} is not usable: {e}", path.display())
                })?;
            }
        }
        None => {
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(
                    "no usable system CA certificates (install the ca-certificates package)".into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
