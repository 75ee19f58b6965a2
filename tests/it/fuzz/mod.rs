//! Fuzzing of the pure SCIM cores — filter parser, PATCH path parser and engine, resource
//! validator — with proptest: the properties are in `props.rs`, the generators in `strategies.rs`,
//! the real Okta and Entra bodies they mutate in `corpus.rs`. Here each property runs a few
//! thousand cases (seconds in a debug build); `cargo bench --bench fuzz` runs 100,000 each.

mod corpus;
mod props;
mod strategies;

use std::sync::mpsc;
use std::time::Duration;

/// Cases per property in the test binary.
const CASES: u32 = 2_000;
/// A property that has not finished by then is stuck in a case: a loop, not slowness (each
/// takes seconds). Only a hang can reach it, so it asserts termination, not speed.
const HANG: Duration = Duration::from_secs(300);

fn check(name: &str) {
    let (_, property) = *props::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no property {name}"));
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(property(CASES));
    });
    let outcome = finished
        .recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{name} did not finish: a case does not terminate"));
    eprintln!(
        "{name}: {} cases, {} calls with shrinking, {:.1?}, slowest case {:.1?}",
        outcome.cases, outcome.calls, outcome.elapsed, outcome.slowest
    );
    if let Some(failure) = outcome.failure {
        panic!("{name} failed: {failure}");
    }
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

fuzz_tests!(
    filter_text_parses_or_fails_cleanly,
    filter_ast_prints_and_parses_back,
    patch_path_parses_or_fails_cleanly,
    patch_path_ast_prints_and_parses_back,
    user_body_validates_or_fails_cleanly,
    group_body_validates_or_fails_cleanly,
    user_patch_applies_or_fails_cleanly,
    group_patch_applies_or_fails_cleanly,
    replace_or_remove_twice_equals_once,
    mutated_body_bytes_are_handled_cleanly,
);
