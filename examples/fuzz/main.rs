//! The long fuzz run: `cargo run --release --example fuzz -- [EXECUTIONS] [SEED]`
//! (default 10,000,000 executions, seed 1). Prints executions per second as it goes and the
//! peak RSS at the end; on a violated property, writes the input to `fuzz-failure-N.eml`
//! and exits 1. See `core.rs` for what is checked.

mod core;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Panics raised (and caught: by `parse::parse`'s guard around mail-parser, or by the
/// harness), counted instead of printed.
static PANICS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = core::seeds(root);
    assert!(
        !seeds.is_empty(),
        "no seed mails found under {}",
        root.display()
    );
    std::panic::set_hook(Box::new(|info| {
        if PANICS.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("first caught panic: {info}");
        }
    }));
    let harness = core::Harness::new();
    let mut rng = core::Rng::new(seed);
    let started = Instant::now();
    let mut last = Instant::now();
    let mut failures = 0u64;
    for n in 1..=total {
        let input = core::mutate(&mut rng, &seeds);
        if let Err(why) = harness.run(&input) {
            failures += 1;
            let name = format!("fuzz-failure-{n}.eml");
            let _ = std::fs::write(&name, &input);
            eprintln!("execution {n}: {why} (input in {name})");
            if failures >= 10 {
                break;
            }
        }
        if last.elapsed().as_secs() >= 60 {
            last = Instant::now();
            let s = started.elapsed().as_secs_f64();
            eprintln!(
                "{n} executions in {s:.0} s: {:.0}/s, {} caught panics, peak RSS {} KiB",
                n as f64 / s,
                PANICS.load(Ordering::Relaxed),
                core::peak_rss_kib().unwrap_or(0)
            );
        }
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "{total} executions in {s:.1} s ({:.0}/s), {failures} failures, {} panics caught \
         inside the parser's guard, {} seeds, peak RSS {} KiB",
        total as f64 / s,
        PANICS.load(Ordering::Relaxed),
        seeds.len(),
        core::peak_rss_kib().unwrap_or(0)
    );
    if failures > 0 {
        std::process::exit(1);
    }
}
