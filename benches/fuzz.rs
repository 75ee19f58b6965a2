//! The fuzz properties of the test binary (`tests/it/fuzz/`), 100,000 cases each, in a release
//! build: the long run that CI cannot afford. Same generators and properties, included from the
//! test sources; prints per property the cases run, the time taken, the slowest single case
//! and any failure with the minimal input proptest shrank it to (also saved as a seed under
//! `tests/it/fuzz/regressions/`, which the test binary replays on every run).
//!
//!     cargo bench --bench fuzz                       # every property, 100,000 cases each
//!     FUZZ_CASES=5000 cargo bench --bench fuzz patch # properties whose name contains "patch"
//!
//! Exits 1 when a property fails.

#[path = "../tests/it/fuzz/corpus.rs"]
mod corpus;
#[path = "../tests/it/fuzz/props.rs"]
mod props;
#[path = "../tests/it/fuzz/strategies.rs"]
mod strategies;

use std::time::Instant;

const CASES: u32 = 100_000;

fn main() {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    // `cargo bench` passes `--bench`; any other argument selects properties by name.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // Panics are the failures looked for: proptest catches and reports them, once shrunk.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut failed = 0;
    println!(
        "{:<42} {:>8} {:>10} {:>10} {:>12}  result",
        "property", "cases", "calls", "time", "slowest"
    );
    for (name, property) in props::ALL {
        if !wanted.is_empty() && !wanted.iter().any(|w| name.contains(w.as_str())) {
            continue;
        }
        let outcome = property(cases);
        println!(
            "{:<42} {:>8} {:>10} {:>9.1}s {:>10.1}ms  {}",
            name,
            outcome.cases,
            outcome.calls,
            outcome.elapsed.as_secs_f64(),
            outcome.slowest.as_secs_f64() * 1000.0,
            if outcome.failure.is_some() {
                "FAILED"
            } else {
                "ok"
            }
        );
        if let Some(failure) = outcome.failure {
            failed += 1;
            println!("  {}", failure.replace('\n', "\n  "));
        }
    }
    println!(
        "{} failed; total {:.0} s",
        failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
