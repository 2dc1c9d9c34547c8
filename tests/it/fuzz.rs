//! A short run of the fuzz harness (`examples/fuzz`, whose long run is 10 million
//! executions): 20,000 mutated mails through limits → parse → bounce reading → route →
//! render → compose, with no panic, no header line from decoded input, and a bounded peak
//! RSS.

#[path = "../../examples/fuzz/core.rs"]
#[allow(dead_code)]
mod core;

#[test]
fn twenty_thousand_mutated_mails_break_nothing() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = core::seeds(root);
    assert!(seeds.len() > 600, "{} seeds", seeds.len());
    let harness = core::Harness::new();
    let mut rng = core::Rng::new(20_261_202);
    let mut failures = Vec::new();
    for n in 0..20_000 {
        let input = core::mutate(&mut rng, &seeds);
        assert!(input.len() <= core::MAX_INPUT);
        if let Err(why) = harness.run(&input) {
            failures.push(format!("execution {n}: {why}"));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    if let Some(kib) = core::peak_rss_kib() {
        // The whole test binary's peak; the harness's own inputs are capped at 1 MB.
        assert!(kib < 2 * 1024 * 1024, "peak RSS {kib} KiB");
    }
}

/// The header check itself catches what it is meant to.
#[test]
fn the_header_check_catches_injected_lines() {
    assert!(core::check_headers(b"From: a@b\r\nSubject: x\r\n\r\nbody").is_ok());
    assert!(core::check_headers(b"From: a@b\r\nSubject: x\nBcc: e@v\r\n\r\nbody").is_err());
    assert!(core::check_headers(b"From: a@b\r\nX-Fuzz-Injected: 1\r\n\r\n").is_err());
    assert!(core::check_headers(b"From: a@b\r\nSubject: a\0b\r\n\r\n").is_err());
    assert!(core::check_headers(b"From: a@b\r\nSubject: a\rb\r\n\r\n").is_err());
}
