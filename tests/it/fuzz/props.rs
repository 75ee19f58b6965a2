//! The fuzz properties: for any input, the SCIM filter parser, the PATCH path parser, the PATCH
//! engine and the resource validator return a value or a typed error — they never panic (a
//! panic fails the case), never loop (the runner's watchdog), never grow their output beyond a
//! linear function of their input, and every error maps to a 400 SCIM error whose `scimType`
//! RFC 7644 §3.12 defines, with a bounded, printable detail. Where the design promises more,
//! the property checks that too:
//! - a filter or path that parses prints back to text that parses to the same AST;
//! - a PATCH that fails leaves the resource exactly as it was (RFC 7644 §3.5.2, all or
//!   nothing);
//! - validating what the validator produced, as the server renders it, changes nothing (what is
//!   stored is canonical);
//! - `replace` without a value filter and `remove`, applied twice, change no more than once.
//!
//! Not claimed, because it does not hold by design: that a PATCH that applies yields a document
//! the validator accepts. The engine leaves types to the validator (`patch.rs`), which then
//! refuses `"active": "yes"` with `invalidValue` — checked here as a clean error.
//!
//! Each property is a function of the number of cases, run by the test binary with a few
//! thousand and by `benches/fuzz.rs` with 100,000. Failures are saved (as proptest seeds) under
//! `tests/it/fuzz/regressions/` and replayed first on every later run.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, TestCaseResult, TestError, TestRunner,
};
use rolegate::scim::ScimError;
use rolegate::scim_proto::eval;
use rolegate::scim_proto::filter::{
    self, Filter, FilterError, MAX_LEN, MAX_TERMS, parse_filter, parse_path,
};
use rolegate::scim_proto::patch::{self, MAX_COPIED_BYTES, MAX_OPERATIONS, MemberChange};
use rolegate::scim_proto::resource::{self, GroupInput, MAX_NAME_CHARS};
use rolegate::scim_proto::schema::ResourceType;
use rolegate::scim_proto::schema::Schemas;
use serde_json::Value;

use super::{corpus, strategies};

/// RFC 7644 §3.12, Table 9.
const SCIM_TYPES: &[&str] = &[
    "invalidFilter",
    "tooMany",
    "uniqueness",
    "mutability",
    "invalidSyntax",
    "invalidPath",
    "noTarget",
    "invalidValue",
    "invalidVers",
    "sensitive",
];
/// What a PATCH request can be refused with.
const PATCH_TYPES: &[&str] = &[
    "invalidSyntax",
    "invalidValue",
    "invalidPath",
    "noTarget",
    "mutability",
];
/// What a resource body (POST, PUT, or a PATCH result) can be refused with.
const BODY_TYPES: &[&str] = &["invalidSyntax", "invalidValue", "invalidVers"];
/// Longest error detail: client input is quoted back at most a filter's length, twice.
const DETAIL_MAX: usize = 2 * MAX_LEN + 1024;
/// serde_json's nesting limit, which every body passes before our code sees it.
const JSON_DEPTH: usize = 128;

/// What one property run found.
pub struct Outcome {
    /// Cases run: all of them, or up to the first failing one.
    pub cases: u32,
    /// Calls of the property, shrinking included.
    pub calls: u64,
    pub elapsed: Duration,
    /// The slowest single case.
    pub slowest: Duration,
    /// The failure with the minimal failing input proptest shrank it to.
    pub failure: Option<String>,
}

pub type Property = fn(u32) -> Outcome;

/// Every property, by name (the test names in `mod.rs`).
pub const ALL: &[(&str, Property)] = &[
    ("filter_text_parses_or_fails_cleanly", filter_text),
    ("filter_ast_prints_and_parses_back", filter_ast),
    ("patch_path_parses_or_fails_cleanly", patch_path_text),
    ("patch_path_ast_prints_and_parses_back", patch_path_ast),
    ("user_body_validates_or_fails_cleanly", user_body),
    ("group_body_validates_or_fails_cleanly", group_body),
    ("user_patch_applies_or_fails_cleanly", user_patch),
    ("group_patch_applies_or_fails_cleanly", group_patch),
    ("replace_or_remove_twice_equals_once", idempotent),
    ("mutated_body_bytes_are_handled_cleanly", body_bytes),
];

fn run<S: Strategy>(
    name: &'static str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Outcome {
    let regressions = format!(
        "{}/tests/it/fuzz/regressions/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(Box::leak(
            regressions.into_boxed_str(),
        )))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let calls = Cell::new(0u64);
    let first_failure = Cell::new(None);
    let slowest = Cell::new(Duration::ZERO);
    let started = Instant::now();
    let result = runner.run(&strategy, |input| {
        calls.set(calls.get() + 1);
        let at = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(|| test(input)));
        slowest.set(slowest.get().max(at.elapsed()));
        if !matches!(result, Ok(Ok(()))) && first_failure.get().is_none() {
            first_failure.set(Some(calls.get()));
        }
        // A panic goes on to proptest, which reports it as the failure it is.
        result.unwrap_or_else(|panic| panic::resume_unwind(panic))
    });
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, input)) => Some(format!(
            "{reason}\nminimal failing input: {}",
            shortened(format!("{input:#?}"))
        )),
        Err(TestError::Abort(reason)) => Some(format!("aborted: {reason}")),
    };
    Outcome {
        cases: first_failure
            .get()
            .map_or(cases, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        calls: calls.get(),
        elapsed: started.elapsed(),
        slowest: slowest.get(),
        failure,
    }
}

/// A failing input as printed, cut to a readable length (the saved seed reproduces it whole).
fn shortened(text: String) -> String {
    const MAX: usize = 4000;
    match text.char_indices().nth(MAX) {
        None => text,
        Some((cut, _)) => format!(
            "{}… ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the properties.

/// A 400 with a `scimType` of Table 9 that suits the operation, and a detail a client can be
/// shown: present, bounded, no control characters.
fn scim_error(error: ScimError, allowed: &[&str]) -> Result<(), TestCaseError> {
    prop_assert_eq!(error.status, StatusCode::BAD_REQUEST, "{:?}", error);
    let scim_type = error.scim_type.unwrap_or_default();
    prop_assert!(
        SCIM_TYPES.contains(&scim_type) && allowed.contains(&scim_type),
        "scimType {:?} is not one of {:?}: {}",
        error.scim_type,
        allowed,
        error.detail
    );
    prop_assert!(!error.detail.trim().is_empty(), "an empty detail");
    let length = error.detail.chars().count();
    prop_assert!(
        length <= DETAIL_MAX,
        "a detail of {} characters: {}…",
        length,
        shortened(error.detail.chars().take(200).collect())
    );
    prop_assert!(
        !error.detail.chars().any(char::is_control),
        "control characters in the detail: {:?}",
        error.detail
    );
    Ok(())
}

/// A filter or path error: its position lies within the input, and it maps to a clean SCIM
/// error (`invalidFilter` for a filter, `invalidPath` for a PATCH path, as the handlers do).
fn filter_error(error: &FilterError, input: &str, scim_type: &'static str) -> TestCaseResult {
    if let Some(position) = error.position {
        prop_assert!(
            position <= input.chars().count(),
            "position {} beyond the input",
            position
        );
    }
    scim_error(
        ScimError::bad_request(scim_type, error.to_string()),
        &[scim_type],
    )
}

fn terms(f: &Filter) -> usize {
    match f {
        Filter::Compare(..) | Filter::Present(_) => 1,
        Filter::And(a, b) | Filter::Or(a, b) => terms(a) + terms(b),
        Filter::Not(a) => terms(a),
        Filter::ValuePath { filter, .. } => terms(filter),
    }
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The output of a PATCH is its input plus what its operations carry, never a multiple of it:
/// a bare element becomes `{"value": …}`, the extension URN is declared once, and a value
/// written into several elements (`emails.display`, `emails[type eq "work"].display`) adds
/// at most `MAX_COPIED_BYTES` per operation.
fn growth_is_bounded(
    before: &Value,
    after: &Value,
    body: &Value,
    operations: usize,
) -> TestCaseResult {
    let (before, after, body) = (size(before), size(after), size(body));
    let bound = before + 16 * body + 4096 + operations * MAX_COPIED_BYTES;
    prop_assert!(
        after <= bound,
        "{} bytes became {} through a {}-byte request",
        before,
        after,
        body
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Filters and paths.

fn filter_text(cases: u32) -> Outcome {
    run(
        "filter_text_parses_or_fails_cleanly",
        cases,
        strategies::filter_input(),
        |input| {
            let ast = match parse_filter(&input) {
                Err(e) => return filter_error(&e, &input, "invalidFilter"),
                Ok(ast) => ast,
            };
            prop_assert!(input.chars().count() <= MAX_LEN);
            prop_assert!(terms(&ast) <= MAX_TERMS);
            let printed = ast.to_string();
            prop_assert_eq!(
                parse_filter(&printed),
                Ok(ast.clone()),
                "printed as {}",
                printed
            );
            for rt in [ResourceType::User, ResourceType::Group] {
                if let Err(e) = filter::resolve(&Schemas::default(), &ast, rt) {
                    prop_assert_eq!(e.position, None);
                    filter_error(&e, &input, "invalidFilter")?;
                }
            }
            Ok(())
        },
    )
}

fn filter_ast(cases: u32) -> Outcome {
    run(
        "filter_ast_prints_and_parses_back",
        cases,
        strategies::filter_ast(),
        |ast| {
            let printed = ast.to_string();
            let parsed = parse_filter(&printed);
            if printed.chars().count() > MAX_LEN {
                prop_assert!(parsed.is_err(), "{} characters accepted", printed.len());
                return Ok(());
            }
            prop_assert_eq!(parsed, Ok(ast.clone()), "printed as {}", printed);
            for rt in [ResourceType::User, ResourceType::Group] {
                if let Err(e) = filter::resolve(&Schemas::default(), &ast, rt) {
                    filter_error(&e, &printed, "invalidFilter")?;
                }
            }
            Ok(())
        },
    )
}

fn patch_path_text(cases: u32) -> Outcome {
    run(
        "patch_path_parses_or_fails_cleanly",
        cases,
        strategies::patch_path_input(),
        |input| {
            let path = match parse_path(&input) {
                Err(e) => return filter_error(&e, &input, "invalidPath"),
                Ok(path) => path,
            };
            let printed = path.to_string();
            prop_assert_eq!(
                parse_path(&printed),
                Ok(path.clone()),
                "printed as {}",
                printed
            );
            for rt in [ResourceType::User, ResourceType::Group] {
                if let Err(e) = filter::resolve_path(&Schemas::default(), &path, rt) {
                    filter_error(&e, &input, "invalidPath")?;
                }
            }
            Ok(())
        },
    )
}

fn patch_path_ast(cases: u32) -> Outcome {
    run(
        "patch_path_ast_prints_and_parses_back",
        cases,
        strategies::patch_path_ast(),
        |path| {
            let printed = path.to_string();
            let parsed = parse_path(&printed);
            if printed.chars().count() > MAX_LEN {
                prop_assert!(parsed.is_err(), "{} characters accepted", printed.len());
                return Ok(());
            }
            prop_assert_eq!(parsed, Ok(path), "printed as {}", printed);
            Ok(())
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The resource validator.

fn user_body(cases: u32) -> Outcome {
    run(
        "user_body_validates_or_fails_cleanly",
        cases,
        strategies::user_body(),
        |body| {
            let w = match resource::user_input(&Schemas::default(), &body) {
                Err(e) => return scim_error(e.into(), BODY_TYPES),
                Ok(w) => w,
            };
            prop_assert!(!w.user_name.is_empty() && w.user_name.trim() == w.user_name);
            prop_assert!(w.user_name.chars().count() <= MAX_NAME_CHARS);
            prop_assert!(!w.attributes.contains_key("password"), "a stored password");
            let stored = Value::Object(w.attributes.clone());
            prop_assert!(
                size(&stored) <= 16 * size(&body) + 1024,
                "{} bytes stored from {}",
                size(&stored),
                size(&body)
            );
            let again =
                resource::user_input(&Schemas::default(), &strategies::render_user_write(&w));
            prop_assert_eq!(again, Ok(w), "validating the stored user changes it");
            Ok(())
        },
    )
}

fn group_body(cases: u32) -> Outcome {
    run(
        "group_body_validates_or_fails_cleanly",
        cases,
        strategies::group_body(),
        |body| {
            let g = match resource::group_input(&body) {
                Err(e) => return scim_error(e.into(), BODY_TYPES),
                Ok(g) => g,
            };
            prop_assert!(!g.display_name.is_empty() && g.display_name.trim() == g.display_name);
            prop_assert!(g.display_name.chars().count() <= MAX_NAME_CHARS);
            let members = g.members.as_deref().unwrap_or_default();
            for (i, m) in members.iter().enumerate() {
                prop_assert!(!m.value.is_empty() && m.value.trim() == m.value);
                prop_assert!(
                    members[..i].iter().all(|earlier| earlier.value != m.value),
                    "member {} listed twice",
                    m.value
                );
            }
            let again = resource::group_input(&strategies::render_group_input(&g));
            let expected = GroupInput {
                members: None,
                ..g.clone()
            };
            prop_assert_eq!(
                again,
                Ok(expected),
                "validating the stored group changes it"
            );
            Ok(())
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The PATCH engine.

/// Parses a PatchOp body; `Err` carries the outcome of checking the error.
fn operations(body: &Value) -> Result<Vec<patch::PatchOperation>, TestCaseResult> {
    match patch::parse_request(body) {
        Err(e) => Err(scim_error(e.into(), PATCH_TYPES)),
        Ok(ops) => {
            if ops.is_empty() || ops.len() > MAX_OPERATIONS {
                return Err(Err(TestCaseError::fail(format!(
                    "{} operations accepted",
                    ops.len()
                ))));
            }
            Ok(ops)
        }
    }
}

/// Applies `ops` as the handlers do: all or nothing, then the validator.
fn apply_and_validate(
    rt: ResourceType,
    doc: &Value,
    body: &Value,
    ops: &[patch::PatchOperation],
) -> TestCaseResult {
    let mut patched = doc.clone();
    if let Err(e) = patch::apply(&Schemas::default(), rt, &mut patched, ops) {
        prop_assert_eq!(&patched, doc, "a failed PATCH changed the resource");
        return scim_error(e.into(), PATCH_TYPES);
    }
    growth_is_bounded(doc, &patched, body, ops.len())?;
    let validated = match rt {
        ResourceType::User => resource::user_input(&Schemas::default(), &patched).map(|_| ()),
        ResourceType::Group => resource::group_input(&patched).map(|_| ()),
    };
    match validated {
        Ok(()) => Ok(()),
        Err(e) => scim_error(e.into(), BODY_TYPES),
    }
}

fn user_patch(cases: u32) -> Outcome {
    run(
        "user_patch_applies_or_fails_cleanly",
        cases,
        strategies::user_patch_case(),
        |(doc, body)| match operations(&body) {
            Err(checked) => checked,
            Ok(ops) => apply_and_validate(ResourceType::User, &doc, &body, &ops),
        },
    )
}

fn group_patch(cases: u32) -> Outcome {
    let members: Vec<Value> = corpus::MEMBER_IDS
        .iter()
        .map(|id| strategies::rendered_member(id))
        .collect();
    run(
        "group_patch_applies_or_fails_cleanly",
        cases,
        (
            strategies::group_doc(),
            strategies::patch_body(ResourceType::Group),
        ),
        move |(doc, body)| {
            let ops = match operations(&body) {
                Err(checked) => return checked,
                Ok(ops) => ops,
            };
            let (others, changes) = match patch::split_group_member_ops(&Schemas::default(), ops) {
                Err(e) => return scim_error(e.into(), PATCH_TYPES),
                Ok(split) => split,
            };
            for change in &changes {
                match change {
                    MemberChange::Add(values) | MemberChange::Replace(values) => {
                        if let Err(e) = resource::member_inputs(&Value::Array(values.clone())) {
                            scim_error(e.into(), BODY_TYPES)?;
                        }
                    }
                    MemberChange::RemoveMatching(filter) => {
                        for member in &members {
                            eval::matches_element(filter, member);
                        }
                    }
                    MemberChange::Remove(_) | MemberChange::RemoveAll => {}
                }
            }
            apply_and_validate(ResourceType::Group, &doc, &body, &others)
        },
    )
}

fn idempotent(cases: u32) -> Outcome {
    run(
        "replace_or_remove_twice_equals_once",
        cases,
        (strategies::user_doc(), strategies::idempotent_user_patch()),
        |(doc, body)| {
            let Ok(ops) = patch::parse_request(&body) else {
                return Ok(());
            };
            let mut once = doc;
            if patch::apply(&Schemas::default(), ResourceType::User, &mut once, &ops).is_err() {
                return Ok(());
            }
            let mut twice = once.clone();
            let again = patch::apply(&Schemas::default(), ResourceType::User, &mut twice, &ops);
            prop_assert!(
                again.is_ok(),
                "applied once, refused the second time: {:?}",
                again
            );
            prop_assert_eq!(twice, once, "the second application changed the resource");
            Ok(())
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Bytes, as the JSON extractor gets them.

fn body_bytes(cases: u32) -> Outcome {
    let user = strategies::render_user_write(
        &resource::user_input(&Schemas::default(), &corpus::users()[2])
            .expect("the Entra tutorial user is valid"),
    );
    let group = strategies::render_group_input(
        &resource::group_input(&corpus::groups()[2]).expect("the Entra tutorial group is valid"),
    );
    run(
        "mutated_body_bytes_are_handled_cleanly",
        cases,
        strategies::body_bytes(),
        move |bytes| {
            // What the JSON extractor refuses is a 400 invalidSyntax before any of our code.
            let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
                return Ok(());
            };
            prop_assert!(
                depth(&body) <= JSON_DEPTH,
                "nesting {} parsed",
                depth(&body)
            );
            if let Err(e) = resource::user_input(&Schemas::default(), &body) {
                scim_error(e.into(), BODY_TYPES)?;
            }
            if let Err(e) = resource::group_input(&body) {
                scim_error(e.into(), BODY_TYPES)?;
            }
            let ops = match operations(&body) {
                Err(checked) => return checked,
                Ok(ops) => ops,
            };
            apply_and_validate(ResourceType::User, &user, &body, &ops)?;
            match patch::split_group_member_ops(&Schemas::default(), ops) {
                Err(e) => scim_error(e.into(), PATCH_TYPES),
                Ok((others, _)) => apply_and_validate(ResourceType::Group, &group, &body, &others),
            }
        },
    )
}
