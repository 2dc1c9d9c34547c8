//! `[inbound.limits]`: real mail never reaches them (every golden fixture, sample and
//! bounce of the corpus passes the defaults); a mail over one is quarantined with the
//! limit's key in the reason and nothing is sent.

use crate::common;

use common::{env_with, mail};
use std::path::Path;
use ticketgate::config::{Config, ConfigSource, InboundLimits};
use ticketgate::parse::limits;
use ticketgate::pipeline::Outcome;

#[test]
fn every_golden_fixture_sample_and_bounce_is_within_the_default_limits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in [
        "tests/fixtures/mail",
        "tests/fixtures/bounces",
        "samples/mail",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                let raw = std::fs::read(&path).unwrap();
                if let Err(f) = limits::check(&raw, &InboundLimits::default()) {
                    panic!("{}: {}", path.display(), f.reason);
                }
                n += 1;
            }
        }
    }
    assert!(n > 600, "{n} files");
}

#[test]
fn a_mail_over_a_limit_is_quarantined_with_the_limit_named_and_not_answered() {
    let mut e = env_with("[inbound.limits]\nmax_parts = 2\n");
    let m = mail(
        "jane@acme.example",
        "three parts",
        "Support-Key: ACME-0000-0000-0001",
    )
    .build()
    .replace(
        "Content-Type: text/plain; charset=utf-8\r\n\r\n",
        "Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n\
         --p\r\nContent-Type: text/plain\r\n\r\nSupport-Key: ACME-0000-0000-0001\r\n--p\r\nContent-Type: text/plain\r\n\r\nb\r\n\
         --p\r\nContent-Type: text/plain\r\n\r\nc\r\n--p--\r\n",
    );
    match e.ingest(&m) {
        Outcome::Quarantined { code, reason } => {
            assert_eq!(code, "limit_exceeded");
            assert!(reason.contains("inbound.limits.max_parts"), "{reason}");
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    assert!(e.outbox().is_empty());
    // The same mail with the default limits opens a ticket.
    let mut e = env_with("");
    assert!(matches!(e.ingest(&m), Outcome::Created { .. }));
}

#[test]
fn a_limit_of_zero_is_a_configuration_error_naming_the_key() {
    let err = Config::from_toml(
        "[inbound.limits]\nmax_mime_depth = 0\n",
        Path::new("."),
        ConfigSource::EmbeddedDefault,
    )
    .unwrap_err();
    assert_eq!(err.key, "inbound.limits.max_mime_depth");
    let err = Config::from_toml(
        "[outbound]\nbounce_key = \"k3y\"\n",
        Path::new("."),
        ConfigSource::EmbeddedDefault,
    )
    .unwrap_err();
    assert_eq!(err.key, "outbound.bounce_key");
    assert!(!err.to_string().contains("k3y"), "the key is never shown");
}
