//! The differential test of filters: random filters over random users, where what the store's
//! SQL selects must equal what the pure reference evaluator (`scim_proto::eval`) selects from the same
//! users as the server renders them — on SQLite and on PostgreSQL.
//!
//! Users carry non-ASCII names in both cases (É/é, ß, İ/ı, Ω/ω), `%`, `_` and `\` in values,
//! absent and present attributes, several e-mails. Filters combine every operator, `and`/`or`/
//! `not`, value paths, the Entra ID form `emails[type eq "work"].value eq "x"`, URN-prefixed and
//! oddly-cased attribute names. Inputs come from proptest strategies sampled with a fixed seed,
//! so a failure reproduces; its message prints the filter and the users the two sides disagree on.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rolegate::scim_proto::eval;
use rolegate::scim_proto::filter::{parse_filter, resolve};
use rolegate::scim_proto::schema::ResourceType;
use rolegate::scim_proto::schema::Schemas;
use serde_json::{Value, json};

use crate::common::http::unlimited;
use crate::common::{Backend, TestApp};

const USERS: usize = 40;
const FILTERS: usize = 400;
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Letters whose case folding differs between ASCII-only and Unicode lower-casing, LIKE
/// wildcards and the escape character, and a few plain ones so substrings match often.
const ALPHABET: &[char] = &[
    'a', 'A', 'b', 'é', 'É', 'ß', 'İ', 'ı', 'Ω', 'ω', '%', '_', '\\', '.', '-', 'x', 'X',
];

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..=max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn non_empty_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 1..=max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn email_type() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["work", "Work", "home", "other", "WORK"]).prop_map(str::to_owned)
}

fn email() -> impl Strategy<Value = Value> {
    (
        non_empty_text(4),
        email_type(),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(local, kind, primary)| {
            let mut e = json!({ "value": format!("{local}@ex.org"), "type": kind });
            if let Some(p) = primary {
                e["primary"] = json!(p);
            }
            e
        })
}

/// A User body; `index` keeps userNames unique.
fn user(index: usize) -> impl Strategy<Value = Value> {
    (
        text(5),
        prop::option::of(non_empty_text(4)),
        prop::option::of(non_empty_text(4)),
        prop::option::of(non_empty_text(3)),
        prop::option::of(non_empty_text(3)),
        prop::option::of(any::<bool>()),
        prop::collection::vec(email(), 0..=3),
        prop::option::of(non_empty_text(3)),
        prop::option::of(non_empty_text(3)),
        prop::option::of(non_empty_text(3)),
    )
        .prop_map(
            move |(
                name,
                display,
                given,
                family,
                title,
                active,
                emails,
                external,
                department,
                manager,
            )| {
                let mut u = json!({ "userName": format!("u{index}{name}") });
                if let Some(v) = display {
                    u["displayName"] = json!(v);
                }
                if given.is_some() || family.is_some() {
                    u["name"] = json!({ "givenName": given, "familyName": family });
                }
                if let Some(v) = title {
                    u["title"] = json!(v);
                }
                if let Some(v) = active {
                    u["active"] = json!(v);
                }
                // At most one primary e-mail (RFC 7643 §2.4).
                let mut emails = emails;
                let mut seen_primary = false;
                for e in &mut emails {
                    if e["primary"] == json!(true) {
                        if seen_primary {
                            e["primary"] = json!(false);
                        }
                        seen_primary = true;
                    }
                }
                if !emails.is_empty() {
                    u["emails"] = json!(emails);
                }
                if let Some(v) = external {
                    u["externalId"] = json!(format!("{v}{index}"));
                }
                if department.is_some() || manager.is_some() {
                    let mut ext = json!({});
                    if let Some(d) = department {
                        ext["department"] = json!(d);
                    }
                    if let Some(m) = manager {
                        ext["manager"] = json!({ "value": m });
                    }
                    u[ENTERPRISE] = ext;
                }
                u
            },
        )
}

/// String attributes, as a client may spell them.
fn string_attribute() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "userName",
        "USERNAME",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "displayName",
        "title",
        "nickName",
        "name.givenName",
        "Name.FamilyName",
        "externalId",
        "emails",
        "emails.value",
        "emails.type",
        "emails.display",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "manager",
        "meta.resourceType",
        "schemas",
        "id",
        "meta.version",
    ])
}

fn string_op() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Co",
    ])
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// An operand: random text, or a piece of a real value (so that matches happen), maybe with
/// its case changed.
fn operand(samples: Vec<String>) -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(samples);
    prop_oneof![
        2 => text(3),
        3 => (pieces, 0..4usize, 0..3usize, 0..3usize).prop_map(|(s, case, from, trim)| {
            let chars: Vec<char> = s.chars().collect();
            let from = from.min(chars.len());
            let to = chars.len().saturating_sub(trim).max(from);
            let piece: String = chars[from..to].iter().collect();
            match case {
                0 => piece.to_uppercase(),
                1 => piece.to_lowercase(),
                _ => piece,
            }
        }),
    ]
}

fn leaf(samples: Vec<String>, times: Vec<String>) -> impl Strategy<Value = String> {
    let string_term = (string_attribute(), string_op(), operand(samples.clone()))
        .prop_map(|(a, op, v)| format!("{a} {op} {}", quoted(&v)));
    let present = prop::sample::select(vec![
        "title",
        "nickName",
        "emails",
        "emails.primary",
        "name",
        "name.givenName",
        "externalId",
        "manager",
        "department",
        "active",
        "meta",
        "userName",
        "displayName",
    ])
    .prop_map(|a| format!("{a} pr"));
    let boolean = (
        prop::sample::select(vec!["active", "emails.primary"]),
        prop::sample::select(vec!["eq", "ne"]),
        prop::sample::select(vec!["true", "false", "\"True\"", "\"false\""]),
    )
        .prop_map(|(a, op, v)| format!("{a} {op} {v}"));
    let null = (
        prop::sample::select(vec![
            "title",
            "externalId",
            "emails",
            "active",
            "name.familyName",
        ]),
        prop::sample::select(vec!["eq", "ne"]),
    )
        .prop_map(|(a, op)| format!("{a} {op} null"));
    let time = (
        prop::sample::select(vec!["meta.created", "meta.lastModified"]),
        prop::sample::select(vec!["eq", "ne", "gt", "ge", "lt", "le"]),
        prop::sample::select(times),
    )
        .prop_map(|(a, op, t)| format!("{a} {op} {}", quoted(&t)));
    let value_path = (
        prop::sample::select(vec!["type", "value", "display"]),
        string_op(),
        operand(samples.clone()),
        prop::sample::select(vec!["and", "or"]),
        email_type(),
    )
        .prop_map(|(sub, op, v, join, kind)| {
            format!(
                "emails[{sub} {op} {} {join} type eq {}]",
                quoted(&v),
                quoted(&kind)
            )
        });
    let entra = (email_type(), operand(samples))
        .prop_map(|(kind, v)| format!("emails[type eq {}].value eq {}", quoted(&kind), quoted(&v)));
    let name_path = prop::sample::select(vec![
        "name[givenName pr]",
        "name[givenName pr and familyName pr]",
        "emails[primary eq true]",
        "emails[not (type eq \"work\")]",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        5 => string_term,
        1 => present,
        1 => boolean,
        1 => null,
        1 => time,
        2 => value_path,
        1 => entra,
        1 => name_path,
    ]
}

fn filter(samples: Vec<String>, times: Vec<String>) -> impl Strategy<Value = String> {
    leaf(samples, times).prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

/// Every string value of the users, to cut operands from.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(members) => members.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn sample<T: std::fmt::Debug>(runner: &mut TestRunner, strategy: &impl Strategy<Value = T>) -> T {
    strategy
        .new_tree(runner)
        .expect("strategy generates")
        .current()
}

async fn sql_and_the_reference_evaluator_select_the_same_users(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let seed = std::env::var("SCIM_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x5c1a_f117);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    for i in 0..USERS {
        let body = sample(&mut runner, &user(i));
        let reply = app.scim(Method::POST, "/Users", Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{body}: {}", reply.text);
    }
    let all = app.scim(Method::GET, "/Users?count=1000", None).await;
    let users: Vec<Value> = all.body["Resources"].as_array().expect("users").clone();
    assert_eq!(users.len(), USERS);
    let mut samples = Vec::new();
    users.iter().for_each(|u| strings(u, &mut samples));
    let times: Vec<String> = users
        .iter()
        .flat_map(|u| {
            [
                u["meta"]["created"].as_str().map(str::to_owned),
                u["meta"]["lastModified"].as_str().map(str::to_owned),
            ]
        })
        .flatten()
        .chain([
            "2000-01-01T00:00:00Z".to_owned(),
            "2999-12-31T23:59:59+02:00".to_owned(),
        ])
        .collect();
    let strategy = filter(samples, times);

    let mut matched_some = 0;
    for case in 0..FILTERS {
        let text = sample(&mut runner, &strategy);
        let parsed = parse_filter(&text).unwrap_or_else(|e| panic!("case {case}: {text}: {e}"));
        let resolved = resolve(&Schemas::default(), &parsed, ResourceType::User)
            .unwrap_or_else(|e| panic!("case {case}: {text}: {e}"));
        let expected: BTreeSet<String> = users
            .iter()
            .filter(|u| eval::matches(&resolved, u))
            .map(|u| u["id"].as_str().expect("id").to_owned())
            .collect();
        let query: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let reply = app
            .scim(
                Method::GET,
                &format!("/Users?count=1000&filter={query}"),
                None,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "case {case}: {text}: {}",
            reply.text
        );
        let got: BTreeSet<String> = reply.body["Resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(reply.body["totalResults"], got.len(), "case {case}: {text}");
        if got != expected {
            let differing: Vec<&Value> = users
                .iter()
                .filter(|u| {
                    let id = u["id"].as_str().unwrap_or_default().to_owned();
                    got.contains(&id) != expected.contains(&id)
                })
                .collect();
            panic!(
                "case {case} (seed {seed}): filter {text}\nSQL selected {} users, the evaluator {}; \
                 they disagree on:\n{}",
                got.len(),
                expected.len(),
                serde_json::to_string_pretty(&differing).unwrap_or_default()
            );
        }
        if !expected.is_empty() && expected.len() < USERS {
            matched_some += 1;
        }
    }
    // A differential test whose filters all match nothing (or everything) proves little.
    assert!(
        matched_some > FILTERS / 5,
        "only {matched_some} of {FILTERS} filters selected some but not all users"
    );
}

crate::on_both_backends!(sql_and_the_reference_evaluator_select_the_same_users);
