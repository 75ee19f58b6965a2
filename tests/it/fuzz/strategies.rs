//! Generators for the fuzz properties in `props.rs`, shared by the test binary
//! (`tests/it/fuzz/mod.rs`) and the 100k-case bench (`benches/fuzz.rs`, which includes these
//! files with `#[path]`).
//!
//! Two kinds, mixed in every input:
//! - **structure-aware**: filter text from the grammar of RFC 7644 §3.4.2.2 and PATCH paths from
//!   §3.5.2 (attribute paths with URNs and sub-attributes, value paths, Entra's
//!   `emails[type eq "work"].value eq "x"` form, every operator in any case, and/or/not,
//!   grouping, strings with escapes and non-ASCII, numbers, booleans, null, date-times, spacing
//!   variants), filter ASTs, and resources and PATCH requests typed from the attribute schemas;
//! - **mutation** of the bodies Okta and Entra really send (`corpus.rs`): structurally (drop or
//!   duplicate keys, swap the case of keys and ops, change types, nest values, grow strings and
//!   arrays within the body limit, odd Unicode) and textually (character edits of filters and
//!   paths, byte edits of the JSON text, parsed afterwards as the server would).
//!
//! Sizes stay within what the service accepts over HTTP (2 MiB bodies, 4096-character
//! filters) and small enough for thousands of cases in a debug build.

use std::fmt::Debug;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::Union;
use rolegate::domain::group::{GroupMember, MemberKind};
use rolegate::domain::provisioning::{ScimGroup, ScimUser, ScimUserWrite};
use rolegate::scim_proto::filter::{AttrPath, CompValue, CompareOp, Filter, MAX_LEN, PatchPath};
use rolegate::scim_proto::resource::{self, GroupInput};
use rolegate::scim_proto::schema::Schemas;
use rolegate::scim_proto::schema::{
    self, AttrType, AttributeDef, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, ResourceType, USER_SCHEMA,
};
use serde_json::{Map, Number, Value, json};
use uuid::Uuid;

use super::corpus;

pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BASE: &str = "https://rolegate.test/scim/v2";

/// The schemas the generators draw attribute names from: the built-in ones (a test service
/// runs with no configured extensions).
static BUILT_IN: std::sync::LazyLock<Schemas> = std::sync::LazyLock::new(Schemas::default);

/// Longest string a mutation grows a value to, in repetitions of one character.
const HUGE: usize = 16 * 1024;
/// Most elements a mutation grows an array or object to.
const MANY: usize = 300;
/// Deepest nesting one mutation adds (serde_json refuses text nested deeper than 128, so
/// values from the wire never exceed it; the textual properties check that bound).
const NEST: u8 = 100;

// ---------------------------------------------------------------------------------------------
// Case and words.

/// `word` with the ASCII case of letter i swapped when bit i (mod 64) of `bits` is set.
pub fn recase(word: &str, bits: u64) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if (bits >> (i % 64)) & 1 == 1 {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect()
}

/// A word as written, shouted, or in mixed case (names, keywords and ops are case-insensitive).
pub fn spelled(word: String) -> BoxedStrategy<String> {
    let upper = word.to_ascii_uppercase();
    let mixed = word.clone();
    prop_oneof![
        5 => Just(word),
        1 => Just(upper),
        2 => any::<u64>().prop_map(move |bits| recase(&mixed, bits)),
    ]
    .boxed()
}

/// One of `words`, spelled as [`spelled`] spells it.
fn spelled_one_of(words: impl Into<Vec<&'static str>>) -> BoxedStrategy<String> {
    (select(words.into()), 0u8..8, any::<u64>())
        .prop_map(|(word, how, bits)| match how {
            0..=4 => word.to_string(),
            5 => word.to_ascii_uppercase(),
            _ => recase(word, bits),
        })
        .boxed()
}

/// Builds one strategy per item and picks among them (cheaper per case than `prop_flat_map`,
/// which builds a new strategy for every value).
fn one_of<I: IntoIterator, T: Debug + 'static>(
    items: I,
    arm: impl Fn(I::Item) -> BoxedStrategy<T>,
) -> BoxedStrategy<T> {
    Union::new(items.into_iter().map(arm)).boxed()
}

/// Every attribute of a resource type with the URN it lives under: core and common attributes
/// (`None`: written without a prefix, resolved to the core schema) and extension attributes.
fn attributes_of(rt: ResourceType) -> Vec<(Option<&'static str>, &'static AttributeDef)> {
    let core = rt
        .schema()
        .attributes
        .iter()
        .chain(schema::COMMON_ATTRIBUTES.iter())
        .map(|d| (None, d));
    let extensions = BUILT_IN
        .extensions(rt)
        .iter()
        .flat_map(|e| e.attributes.iter().map(move |d| (Some(e.id), d)));
    core.chain(extensions).collect()
}

/// Every attribute and sub-attribute name the schemas know.
fn known_names() -> Vec<&'static str> {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(all_names).clone()
}

fn all_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = [ResourceType::User, ResourceType::Group]
        .into_iter()
        .flat_map(attributes_of)
        .flat_map(|(_, d)| std::iter::once(d.name).chain(d.sub_attributes.iter().map(|s| s.name)))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

const URNS: &[&str] = &[USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA];

const ODD_TEXT: &[&str] = &[
    "",
    " ",
    "\t\n",
    "True",
    "FALSE",
    "null",
    "0",
    "-1",
    "1e3",
    "2011-05-13T04:42:34Z",
    "not a date",
    USER_SCHEMA,
    "urn:scim:schemas:core:1.0",
    "https://example.com/scim/v2/Users/1",
    "/Users/1",
    "AAAA",
    "====",
    "\u{202E}gnp.exe",
    "e\u{301}",
    "\u{200B}",
    "\u{FEFF}bom",
    "😀",
    "\u{0}",
    "\u{1b}[31m",
    "İstanbul",
    "straße",
    "ǅ",
    "\u{212A}elvin",
    "ﬀ",
    "\u{10FFFF}",
    "\u{FFFD}",
    "a\"b\\c",
    "%_",
    "members[value eq \"x\"]",
    "0190f0f0-0000-7000-8000-0000000000a1",
];

/// Short text: plain, odd (Unicode edge cases, control characters, look-alikes of other
/// types), arbitrary Unicode, and now and then a huge run.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[a-zA-Z0-9@._ -]{0,16}",
        3 => select(ODD_TEXT).prop_map(str::to_string),
        2 => any::<String>(),
        1 => huge_text(),
    ]
    .boxed()
}

fn huge_text() -> BoxedStrategy<String> {
    (
        select(&["a", "é", "😀", " ", "\\", "\"", "\u{0}"][..]),
        1_000..=HUGE,
    )
        .prop_map(|(s, n)| s.repeat(n))
        .boxed()
}

/// An RFC 3339 date-time, or something that looks like one but is not.
fn date_text() -> BoxedStrategy<String> {
    let valid = (
        1900u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        option::of("\\.[0-9]{1,9}"),
        select(&["Z", "z", "+02:00", "-05:30", "+00:00"][..]),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, tz)| {
            format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{}{tz}",
                frac.unwrap_or_default()
            )
        });
    prop_oneof![
        4 => valid,
        1 => select(&[
            "2011-13-01T00:00:00Z",
            "2011-05-13",
            "2011-05-13 04:42:34Z",
            "2011-05-13T04:42:34",
            "2011-02-30T00:00:00Z",
            "2011-05-13T24:00:00Z",
            "9999-12-31T23:59:60Z",
            "+002011-05-13T04:42:34Z",
            "yesterday",
        ][..])
        .prop_map(str::to_string),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// JSON values.

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => select(&["0", "-0", "1e308", "-1e-308", "12.50", "1E+2", "18446744073709551615"][..])
            .prop_map(|t| serde_json::from_str(t).unwrap_or(Value::Null)),
    ]
    .boxed()
}

pub fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        2 => any::<bool>().prop_map(Value::Bool),
        2 => number(),
        5 => text().prop_map(Value::String),
    ]
    .boxed()
}

/// An object key: an attribute name in any case, a URN, or any text.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => spelled_one_of(known_names()),
        1 => spelled_one_of(URNS),
        2 => text(),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
pub fn json() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Values typed from the schemas, mostly well-typed, sometimes not.

/// A value for attribute `def`: an array for a multi-valued one (now and then a long one, or a
/// lone element), one value (now and then an array of one, Entra's `manager`) otherwise.
pub fn typed(def: &'static AttributeDef) -> BoxedStrategy<Value> {
    if def.multi_valued {
        prop_oneof![
            12 => vec(typed_single(def), 0..4).prop_map(Value::Array),
            1 => vec(typed_single(def), 20..60).prop_map(Value::Array),
            4 => typed_single(def),
        ]
        .boxed()
    } else {
        prop_oneof![
            8 => typed_single(def),
            1 => typed_single(def).prop_map(|v| Value::Array(vec![v])),
            1 => Just(Value::Array(Vec::new())),
        ]
        .boxed()
    }
}

/// One value (one element, for a multi-valued attribute) of `def`.
pub fn typed_single(def: &'static AttributeDef) -> BoxedStrategy<Value> {
    let well_typed: BoxedStrategy<Value> = match def.kind {
        AttrType::String if !def.canonical_values.is_empty() => prop_oneof![
            2 => spelled_one_of(def.canonical_values),
            1 => text(),
        ]
        .prop_map(Value::String)
        .boxed(),
        AttrType::String => text().prop_map(Value::String).boxed(),
        AttrType::Boolean => prop_oneof![
            3 => any::<bool>().prop_map(Value::Bool),
            1 => spelled_one_of(["true", "false"]).prop_map(Value::String),
            1 => Just(Value::String(String::new())),
        ]
        .boxed(),
        AttrType::Integer | AttrType::Decimal => prop_oneof![
            3 => number(),
            1 => "-?[0-9]{1,25}(\\.[0-9]{1,4})?".prop_map(Value::String),
            1 => select(&["NaN", "inf", "-infinity", "1e999", " 7 "][..])
                .prop_map(|s| Value::String(s.to_string())),
        ]
        .boxed(),
        AttrType::DateTime => date_text().prop_map(Value::String).boxed(),
        AttrType::Binary => prop_oneof![
            3 => "([A-Za-z0-9+/]{4}){0,6}([A-Za-z0-9+/]{2}==)?",
            1 => text(),
        ]
        .prop_map(Value::String)
        .boxed(),
        AttrType::Reference => prop_oneof![
            2 => Just("https://example.com/scim/v2/Users/1".to_string()),
            2 => "/(Users|Groups)/[a-z0-9-]{1,12}",
            2 => select(corpus::MEMBER_IDS).prop_map(str::to_string),
            1 => text(),
        ]
        .prop_map(Value::String)
        .boxed(),
        AttrType::Complex => {
            let member = one_of(def.sub_attributes, |s| {
                (spelled(s.name.to_string()), typed_single(s)).boxed()
            });
            let object = vec(member, 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect()));
            let bare = match def.sub_attribute("value") {
                Some(value) => typed_single(value),
                None => scalar(),
            };
            prop_oneof![6 => object, 1 => bare].boxed()
        }
    };
    prop_oneof![12 => well_typed, 1 => json()].boxed()
}

// ---------------------------------------------------------------------------------------------
// Resource bodies.

fn schemas_member(rt: ResourceType) -> BoxedStrategy<Option<Value>> {
    let core = rt.schema().id;
    let with_extensions: Vec<&'static str> = std::iter::once(core)
        .chain(BUILT_IN.extensions(rt).iter().map(|e| e.id))
        .collect();
    prop_oneof![
        4 => Just(Some(json!([core]))),
        2 => Just(Some(json!(with_extensions))),
        1 => Just(None),
        1 => Just(Some(json!(["urn:scim:schemas:core:1.0"]))),
        1 => json().prop_map(Some),
    ]
    .boxed()
}

/// A resource body built attribute by attribute from the schemas: the required name (mostly
/// fine), a handful of attributes, now and then an extension object.
fn structured_body(rt: ResourceType) -> BoxedStrategy<Value> {
    let (required, good) = match rt {
        ResourceType::User => ("userName", "[a-z][a-z0-9._-]{0,15}@example\\.(com|org)"),
        ResourceType::Group => ("displayName", "[A-Z][a-zA-Z0-9 _-]{0,20}"),
    };
    let name = prop_oneof![
        8 => good.prop_map(Value::String),
        1 => text().prop_map(Value::String),
        1 => json(),
    ];
    let entry = one_of(attributes_of(rt), |(urn, d)| {
        (Just(urn), spelled(d.name.to_string()), typed(d)).boxed()
    });
    let entries = vec(entry, 0..6);
    (
        schemas_member(rt),
        option::weighted(0.95, (spelled(required.to_string()), name)),
        entries,
    )
        .prop_map(|(schemas, name, entries)| {
            let mut object = Map::new();
            if let Some(schemas) = schemas {
                object.insert("schemas".into(), schemas);
            }
            if let Some((key, value)) = name {
                object.insert(key, value);
            }
            for (urn, key, value) in entries {
                match urn {
                    None => {
                        object.insert(key, value);
                    }
                    Some(urn) => {
                        let extension = object
                            .entry(urn.to_string())
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(extension) = extension {
                            extension.insert(key, value);
                        }
                    }
                }
            }
            Value::Object(object)
        })
        .boxed()
}

/// A User body: built from the schemas, a real Okta/Entra body mutated, or any JSON.
pub fn user_body() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => structured_body(ResourceType::User),
        4 => mutated(select(corpus::users())),
        1 => json(),
    ]
    .boxed()
}

/// A Group body, likewise.
pub fn group_body() -> BoxedStrategy<Value> {
    let members = vec(
        prop_oneof![
            4 => (select(corpus::MEMBER_IDS), option::of(spelled_one_of(["User", "Group"])))
                .prop_map(|(id, kind)| match kind {
                    Some(kind) => json!({ "value": id, "type": kind }),
                    None => json!({ "value": id }),
                }),
            1 => typed_single(member_def()),
        ],
        0..6,
    )
    .prop_map(Value::Array);
    let with_members = (structured_body(ResourceType::Group), members).prop_map(|(mut g, m)| {
        if let Value::Object(o) = &mut g {
            o.insert("members".into(), m);
        }
        g
    });
    prop_oneof![
        2 => structured_body(ResourceType::Group),
        2 => with_members,
        4 => mutated(select(corpus::groups())),
        1 => json(),
    ]
    .boxed()
}

fn member_def() -> &'static AttributeDef {
    schema::GROUP
        .attribute("members")
        .expect("the Group schema has members")
}

// ---------------------------------------------------------------------------------------------
// Resources as the PATCH handlers see them: stored, then rendered.

fn stored_at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("a valid timestamp")
}

/// A validated User as `GET /Users/{id}` renders it (the PATCH handler's starting point).
pub fn render_user_write(w: &ScimUserWrite) -> Value {
    let user = ScimUser {
        id: Uuid::from_u128(0x0190_f0f0_0000_7000_8000_0000_0000_0001),
        user_name: w.user_name.clone(),
        external_id: w.external_id.clone(),
        active: w.active,
        attributes: w.attributes.clone(),
        created_at: stored_at(),
        updated_at: stored_at(),
        version: 3,
    };
    resource::render_user(&Schemas::default(), &user, None, BASE)
}

/// A validated Group as the PATCH handler renders it for attribute operations: no members.
pub fn render_group_input(g: &GroupInput) -> Value {
    let group = ScimGroup {
        id: Uuid::from_u128(0x0190_f0f0_0000_7000_8000_0000_0000_0002),
        display_name: g.display_name.clone(),
        external_id: g.external_id.clone(),
        created_at: stored_at(),
        updated_at: stored_at(),
        version: 7,
    };
    resource::render_group(&group, None, BASE)
}

/// A member as the Group handler renders it for a `RemoveMatching` filter.
pub fn rendered_member(id: &str) -> Value {
    let member = GroupMember {
        id: Uuid::parse_str(id).unwrap_or_default(),
        kind: MemberKind::User,
    };
    resource::render_member(&member, BASE)
}

/// A stored User, rendered: a generated or real body that validates (the first real one when
/// it does not), and now and then something no handler would pass, to show the engine copes.
pub fn user_doc() -> BoxedStrategy<Value> {
    let fallback = corpus::users().swap_remove(0);
    let rendered = prop_oneof![
        3 => structured_body(ResourceType::User),
        2 => select(corpus::users()),
        1 => mutated(select(corpus::users())),
    ]
    .prop_map(move |body| {
        let w = resource::user_input(&Schemas::default(), &body)
            .or_else(|_| resource::user_input(&Schemas::default(), &fallback))
            .expect("the first corpus user is valid");
        render_user_write(&w)
    });
    prop_oneof![10 => rendered, 2 => many_values_user(), 1 => json()].boxed()
}

/// Multi-valued complex attributes of `rt` (core and extensions), e-mails first.
fn multi_valued(rt: ResourceType) -> Vec<&'static AttributeDef> {
    let mut defs: Vec<&'static AttributeDef> = attributes_of(rt)
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d.multi_valued && d.kind == AttrType::Complex && stored(d))
        .collect();
    defs.sort_by_key(|d| d.name != "emails");
    defs
}

fn stored(def: &AttributeDef) -> bool {
    !matches!(
        def.mutability,
        schema::Mutability::ReadOnly | schema::Mutability::WriteOnly
    )
}

/// A multi-valued attribute, e-mails half of the time (the one every IdP sends).
fn some_multi_valued<T: Debug + 'static>(
    rt: ResourceType,
    arm: impl Fn(&'static AttributeDef) -> BoxedStrategy<T>,
) -> BoxedStrategy<T> {
    let defs = multi_valued(rt);
    let first = arm(defs[0]);
    prop_oneof![1 => first, 1 => one_of(defs, arm)].boxed()
}

/// A well-formed element of a multi-valued complex attribute: its `value` and a few other
/// string sub-attributes, no `primary` (several primaries are refused).
fn plain_element(def: &'static AttributeDef) -> BoxedStrategy<Value> {
    let strings: Vec<&'static str> = def
        .sub_attributes
        .iter()
        .filter(|s| s.kind == AttrType::String && stored(s))
        .map(|s| s.name)
        .collect();
    (
        "[a-z0-9]{1,8}@[a-z]{1,6}\\.(com|org)",
        vec((select(strings), "[a-zA-Z0-9 ]{0,12}"), 0..3),
    )
        .prop_map(|(value, others)| {
            let mut element: Map<String, Value> = others
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::String(v)))
                .collect();
            element.insert("value".into(), Value::String(value));
            Value::Object(element)
        })
        .boxed()
}

/// A real user with many values of one multi-valued attribute (users with dozens of e-mail
/// addresses, roles or entitlements exist; nothing bounds them but the body size).
fn many_values_user() -> BoxedStrategy<Value> {
    (
        select(corpus::users()),
        some_multi_valued(ResourceType::User, |d| {
            (Just(d), vec(plain_element(d), 20..100)).boxed()
        }),
    )
        .prop_map(|(mut body, (def, values))| {
            body[def.name] = Value::Array(values);
            let w = resource::user_input(&Schemas::default(), &body)
                .or_else(|_| resource::user_input(&Schemas::default(), &corpus::users()[0]))
                .expect("the first corpus user is valid");
            render_user_write(&w)
        })
        .boxed()
}

/// An operation that writes one (now and then large) value into every element of a
/// multi-valued attribute, or every element a filter selects: `emails.display`,
/// `emails[type eq "work"].display`, `emails[value pr]`.
fn fan_out(rt: ResourceType) -> BoxedStrategy<Value> {
    let value = prop_oneof![2 => text(), 1 => huge_text()].prop_map(Value::String);
    (
        spelled_one_of(["add", "replace"]),
        some_multi_valued(rt, |d| {
            let subs: Vec<&'static AttributeDef> =
                d.sub_attributes.iter().filter(|s| stored(s)).collect();
            (Just(d), select(subs)).boxed()
        }),
        0u8..3,
        value,
    )
        .prop_map(|(op, (def, sub), form, value)| {
            let (name, sub) = (def.name, sub.name);
            let (path, value) = match form {
                0 => (format!("{name}.{sub}"), value),
                1 => (format!("{name}[value pr].{sub}"), value),
                _ => (format!("{name}[value pr]"), json!({ sub: value })),
            };
            json!({ "op": op, "path": path, "value": value })
        })
        .boxed()
}

/// A stored Group, rendered without members.
pub fn group_doc() -> BoxedStrategy<Value> {
    let fallback = corpus::groups().swap_remove(0);
    let rendered = prop_oneof![
        2 => structured_body(ResourceType::Group),
        2 => select(corpus::groups()),
    ]
    .prop_map(move |body| {
        let g = resource::group_input(&body)
            .or_else(|_| resource::group_input(&fallback))
            .expect("the first corpus group is valid");
        render_group_input(&g)
    });
    prop_oneof![12 => rendered, 1 => json()].boxed()
}

// ---------------------------------------------------------------------------------------------
// PATCH requests.

/// A value filter on the sub-attributes of `def` (`type eq "work"`, `primary eq true and …`).
fn value_filter_on(def: &'static AttributeDef) -> BoxedStrategy<String> {
    let term = one_of(def.sub_attributes, |s| {
        (
            spelled(s.name.to_string()),
            prop_oneof![6 => Just("eq".to_string()), 1 => spelled_one_of(OPS)],
            typed_single(s).prop_map(|v| literal_text(&v)),
        )
            .prop_map(|(s, op, v)| format!("{s} {op} {v}"))
            .boxed()
    });
    prop_oneof![
        4 => term.clone(),
        2 => (term.clone(), term).prop_map(|(a, b)| format!("{a} and {b}")),
        1 => filter_text(),
    ]
    .boxed()
}

/// A JSON value as a filter comparison value (objects and arrays have none: a string then).
fn literal_text(v: &Value) -> String {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => v.to_string(),
        other => serde_json::to_string(&other.to_string()).unwrap_or_default(),
    }
}

/// A PATCH path the schemas define, with a value shaped for it: `title`, `name.givenName`,
/// `emails.type`, `emails[type eq "work"]`, `emails[type eq "work"].value`, URN-prefixed
/// extension paths, a whole extension by its URN. Mostly well-typed.
pub fn targeted(rt: ResourceType) -> BoxedStrategy<(String, Value)> {
    targeted_with(rt, true)
}

/// `targeted`, without value filters and whole extensions when `filtered` is false.
fn targeted_with(rt: ResourceType, filtered: bool) -> BoxedStrategy<(String, Value)> {
    let mut arms: Vec<BoxedStrategy<(String, Value)>> = Vec::new();
    for (urn, def) in attributes_of(rt) {
        let prefix = prop_oneof![
            3 => Just(String::new()),
            1 => Just(format!("{}:", urn.unwrap_or(rt.schema().id))),
        ]
        .boxed();
        let name = spelled(def.name.to_string());
        arms.push(
            (prefix.clone(), name.clone(), typed(def))
                .prop_map(|(p, n, v)| (format!("{p}{n}"), v))
                .boxed(),
        );
        if def.kind != AttrType::Complex {
            continue;
        }
        let sub = one_of(def.sub_attributes, |s| {
            (spelled(s.name.to_string()), typed_single(s)).boxed()
        });
        arms.push(
            (prefix.clone(), name.clone(), sub.clone())
                .prop_map(|(p, n, (s, v))| (format!("{p}{n}.{s}"), v))
                .boxed(),
        );
        if def.multi_valued && filtered {
            arms.push(
                (
                    prefix.clone(),
                    name.clone(),
                    value_filter_on(def),
                    typed_single(def),
                )
                    .prop_map(|(p, n, f, v)| (format!("{p}{n}[{f}]"), v))
                    .boxed(),
            );
            arms.push(
                (prefix, name, value_filter_on(def), sub)
                    .prop_map(|(p, n, f, (s, v))| (format!("{p}{n}[{f}].{s}"), v))
                    .boxed(),
            );
        }
    }
    for extension in BUILT_IN.extensions(rt).iter().filter(|_| filtered) {
        let entry = one_of(extension.attributes, |d| {
            (spelled(d.name.to_string()), typed(d)).boxed()
        });
        let entries = vec(entry, 0..4);
        arms.push(
            (spelled(extension.id.to_string()), entries)
                .prop_map(|(urn, kv)| (urn, Value::Object(kv.into_iter().collect())))
                .boxed(),
        );
    }
    Union::new(arms).boxed()
}

/// A path-less add/replace value: keys are paths (dotted, URN-qualified, a whole extension),
/// now and then the `id`, `meta` or `schemas` Okta echoes back.
fn pathless_value(rt: ResourceType) -> BoxedStrategy<Value> {
    let echo = prop_oneof![
        Just((
            "id".to_string(),
            json!("0190f0f0-0000-7000-8000-000000000001")
        )),
        Just(("id".to_string(), json!("someone-else"))),
        Just(("meta".to_string(), json!({ "resourceType": rt.name() }))),
        Just(("schemas".to_string(), json!([rt.schema().id]))),
    ];
    vec(
        prop_oneof![8 => targeted(rt), 1 => echo, 1 => (key(), json())],
        0..5,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().collect()))
    .boxed()
}

fn op_name() -> BoxedStrategy<Value> {
    prop_oneof![
        12 => spelled_one_of(["add", "replace", "remove"]).prop_map(Value::String),
        1 => select(&["move", "copy", "test", "", "delete"][..]).prop_map(|s| json!(s)),
        1 => scalar(),
    ]
    .boxed()
}

/// One operation of a PatchOp request.
pub fn operation(rt: ResourceType) -> BoxedStrategy<Value> {
    let member_list = vec(
        select(corpus::MEMBER_IDS).prop_map(|id| json!({ "value": id })),
        0..3,
    )
    .prop_map(Value::Array);
    prop_oneof![
        8 => (op_name(), targeted(rt))
            .prop_map(|(op, (path, value))| json!({ "op": op, "path": path, "value": value })),
        3 => (op_name(), pathless_value(rt)).prop_map(|(op, value)| json!({ "op": op, "value": value })),
        2 => (spelled("remove".to_string()), targeted(rt))
            .prop_map(|(op, (path, _))| json!({ "op": op, "path": path })),
        2 => (op_name(), spelled("members".to_string()), member_list)
            .prop_map(|(op, path, value)| json!({ "op": op, "path": path, "value": value })),
        1 => (op_name(), patch_path_input(), json())
            .prop_map(|(op, path, value)| json!({ "op": op, "path": path, "value": value })),
        1 => fan_out(rt),
        1 => json(),
    ]
    .boxed()
}

/// A PatchOp request body: built from operations, a real one mutated, or any JSON.
pub fn patch_body(rt: ResourceType) -> BoxedStrategy<Value> {
    let real = match rt {
        ResourceType::User => corpus::user_patches(),
        ResourceType::Group => corpus::group_patches(),
    };
    let built = (
        prop_oneof![
            6 => Just(Some(json!([PATCH_OP]))),
            1 => Just(None),
            1 => json().prop_map(Some),
        ],
        spelled("Operations".to_string()),
        vec(operation(rt), 1..5),
    )
        .prop_map(|(schemas, key, ops)| {
            let mut body = Map::new();
            if let Some(schemas) = schemas {
                body.insert("schemas".into(), schemas);
            }
            body.insert(key, Value::Array(ops));
            Value::Object(body)
        });
    prop_oneof![
        5 => built,
        2 => select(real.clone()),
        4 => mutated(select(real)),
        1 => json(),
    ]
    .boxed()
}

/// A stored User and a PATCH request for it; one case in ten writes into many values of a
/// user that has many (the combination independent choices rarely make).
pub fn user_patch_case() -> BoxedStrategy<(Value, Value)> {
    let fan_out_request = vec(fan_out(ResourceType::User), 1..3)
        .prop_map(|ops| json!({ "schemas": [PATCH_OP], "Operations": ops }));
    prop_oneof![
        9 => (user_doc(), patch_body(ResourceType::User)),
        1 => (many_values_user(), fan_out_request),
    ]
    .boxed()
}

/// A request of one operation whose repetition changes nothing (RFC 7644 §3.5.2 `replace`
/// sets, `remove` takes away): `replace` on an attribute or sub-attribute path without a value
/// filter, or `remove` on any path the schemas define. (A filtered `replace` is not idempotent
/// by design: it may change what its filter selects, and Entra's create-if-missing then adds.)
pub fn idempotent_user_patch() -> BoxedStrategy<Value> {
    let replace = (
        spelled("replace".to_string()),
        targeted_with(ResourceType::User, false),
    )
        .prop_map(|(op, (path, value))| json!({ "op": op, "path": path, "value": value }));
    let remove = (spelled("remove".to_string()), targeted(ResourceType::User)).prop_map(
        |(op, (path, value))| {
            // Entra's remove lists what to remove; a remove without a value takes it all.
            if value.is_array() {
                json!({ "op": op, "path": path, "value": value })
            } else {
                json!({ "op": op, "path": path })
            }
        },
    );
    prop_oneof![replace, remove]
        .prop_map(|op| json!({ "schemas": [PATCH_OP], "Operations": [op] }))
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Filter and path text, from the grammar.

pub const OPS: &[&str] = &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];

fn ws() -> BoxedStrategy<String> {
    prop_oneof![
        24 => Just(" "),
        2 => Just("  "),
        1 => Just("\t"),
        1 => Just("\n "),
        1 => Just(""),
    ]
    .prop_map(str::to_string)
    .boxed()
}

fn urn_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => spelled_one_of(URNS),
        2 => "(urn|URN)(:[a-zA-Z0-9][a-zA-Z0-9.-]{0,6}){1,5}",
        1 => select(&["urn", "urn:", "x:y", "urn::a", "urn:a$:b", "urn:a..b:c", "urn:.:x"][..])
            .prop_map(str::to_string),
    ]
    .boxed()
}

fn name_text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => spelled_one_of(known_names()),
        2 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
        1 => select(&["$ref", "not", "and", "or", "pr", "eq", "true", "null", "1abc", "é", "_x", "-"][..])
            .prop_map(str::to_string),
    ]
    .boxed()
}

fn attr_path_text() -> BoxedStrategy<String> {
    (
        option::weighted(0.15, urn_text()),
        name_text(),
        option::weighted(0.3, name_text()),
    )
        .prop_map(|(urn, name, sub)| {
            let mut out = urn.map(|u| format!("{u}:")).unwrap_or_default();
            out.push_str(&name);
            if let Some(sub) = sub {
                out.push('.');
                out.push_str(&sub);
            }
            out
        })
        .boxed()
}

fn string_literal() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 @.()\\[\\]%_-]{1,4}",
        2 => select(&[
            "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u00e9", "\\u00C9",
            "\\ud83d\\ude00", "\\u0000",
        ][..])
        .prop_map(str::to_string),
        1 => select(&["é", "😀", "\u{202E}", "İ", "ß", "\u{FEFF}"][..]).prop_map(str::to_string),
    ];
    prop_oneof![
        3 => text().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        2 => vec(piece, 0..8).prop_map(|parts| format!("\"{}\"", parts.concat())),
    ]
    .boxed()
}

fn value_text() -> BoxedStrategy<String> {
    prop_oneof![
        5 => string_literal(),
        2 => "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?",
        2 => spelled_one_of(["true", "false", "null"]),
        2 => date_text().prop_map(|d| format!("\"{d}\"")),
        1 => select(&[
            "yes", "nil", "'x'", "\"unterminated", "truex", "1.", ".5", "01", "-", "1e", "1e999",
            "-1e999", "0x10", "\"\\x\"", "\"\\ud800\"", "\"\\u12\"", "\"a\u{1}b\"", "\"\\\"",
        ][..])
        .prop_map(str::to_string),
    ]
    .boxed()
}

fn op_text() -> BoxedStrategy<String> {
    prop_oneof![
        9 => spelled_one_of(OPS),
        1 => select(&["eqq", "=", "==", "like", "in", "p r", "prr"][..]).prop_map(str::to_string),
    ]
    .boxed()
}

fn attr_exp_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (attr_path_text(), ws(), op_text(), ws(), value_text())
            .prop_map(|(p, a, o, b, v)| format!("{p}{a}{o}{b}{v}")),
        1 => (attr_path_text(), ws(), spelled("pr".to_string()))
            .prop_map(|(p, a, pr)| format!("{p}{a}{pr}")),
    ]
    .boxed()
}

/// Filter text from the grammar, mostly valid, with every construct: and/or (any case), `not`
/// with and without a space, grouping, value paths, Entra's `a[f].b op v`, spacing variants;
/// plus inputs at and beyond the limits (nesting, number of terms, length) and the real ones.
pub fn filter_text() -> BoxedStrategy<String> {
    let tree = attr_exp_text().prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            3 => (inner.clone(), ws(), spelled("and".to_string()), ws(), inner.clone())
                .prop_map(|(a, x, k, y, b)| format!("{a}{x}{k}{y}{b}")),
            3 => (inner.clone(), ws(), spelled("or".to_string()), ws(), inner.clone())
                .prop_map(|(a, x, k, y, b)| format!("{a}{x}{k}{y}{b}")),
            2 => (spelled("not".to_string()), prop_oneof![Just(""), Just(" ")], inner.clone())
                .prop_map(|(n, s, f)| format!("{n}{s}({f})")),
            2 => (ws(), inner.clone(), ws()).prop_map(|(a, f, b)| format!("({a}{f}{b})")),
            2 => (attr_path_text(), inner.clone()).prop_map(|(p, f)| format!("{p}[{f}]")),
            1 => (attr_path_text(), inner, name_text(), op_text(), value_text())
                .prop_map(|(p, f, s, o, v)| format!("{p}[{f}].{s} {o} {v}")),
        ]
    });
    let deep = (attr_exp_text(), 1usize..40, 0u8..3).prop_map(|(t, n, kind)| match kind {
        0 => format!("{}{t}{}", "(".repeat(n), ")".repeat(n)),
        1 => format!("{}{t}{}", "not (".repeat(n), ")".repeat(n)),
        _ => format!("{}{t}{}", "emails[".repeat(n), "]".repeat(n)),
    });
    let many = (attr_exp_text(), 50usize..80, any::<bool>())
        .prop_map(|(t, n, or)| vec![t; n].join(if or { " or " } else { " and " }));
    let long = (MAX_LEN - 20..MAX_LEN + 20)
        .prop_map(|n| format!("userName eq \"{}\"", "a".repeat(n.saturating_sub(14))));
    prop_oneof![
        12 => tree,
        1 => deep,
        1 => many,
        1 => long,
        2 => select(corpus::FILTERS).prop_map(str::to_string),
    ]
    .boxed()
}

/// Filter text as generated, or with a few character edits.
pub fn filter_input() -> BoxedStrategy<String> {
    prop_oneof![
        3 => filter_text(),
        2 => (filter_text(), vec(char_edit(), 1..4)).prop_map(|(t, e)| apply_char_edits(&t, &e)),
    ]
    .boxed()
}

/// PATCH path text: the grammar's (`attrPath`, `valuePath ["." subAttr]`), the schemas' and the
/// real ones, sometimes edited.
pub fn patch_path_input() -> BoxedStrategy<String> {
    let grammar = prop_oneof![
        3 => attr_path_text(),
        3 => (attr_path_text(), filter_text(), option::of(name_text())).prop_map(|(p, f, s)| {
            match s {
                Some(s) => format!("{p}[{f}].{s}"),
                None => format!("{p}[{f}]"),
            }
        }),
        3 => targeted(ResourceType::User).prop_map(|(p, _)| p),
        1 => targeted(ResourceType::Group).prop_map(|(p, _)| p),
        1 => select(corpus::PATHS).prop_map(str::to_string),
    ];
    prop_oneof![
        4 => grammar.clone(),
        1 => (grammar, vec(char_edit(), 1..3)).prop_map(|(t, e)| apply_char_edits(&t, &e)),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Filter ASTs (for the print/parse round trip).

fn ast_name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => spelled_one_of(known_names()),
        3 => "\\$?[a-zA-Z][a-zA-Z0-9_-]{0,8}",
        1 => select(&["not", "and", "or", "pr", "eq", "true", "null"][..]).prop_map(str::to_string),
    ]
    .boxed()
}

fn ast_urn() -> BoxedStrategy<String> {
    prop_oneof![
        2 => spelled_one_of(URNS),
        1 => "(urn|URN)(:[a-zA-Z0-9][a-zA-Z0-9-]{0,4}(\\.[a-zA-Z0-9]{1,3})?){1,4}",
    ]
    .boxed()
}

fn ast_path(with_sub: bool) -> BoxedStrategy<AttrPath> {
    let sub = if with_sub {
        option::weighted(0.3, ast_name()).boxed()
    } else {
        Just(None).boxed()
    };
    (option::weighted(0.2, ast_urn()), ast_name(), sub)
        .prop_map(|(schema, name, sub)| AttrPath { schema, name, sub })
        .boxed()
}

fn ast_value() -> BoxedStrategy<CompValue> {
    prop_oneof![
        1 => Just(CompValue::Null),
        1 => any::<bool>().prop_map(CompValue::Bool),
        2 => "-?(0|[1-9][0-9]{0,12})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?".prop_map(|text| {
            let value = text.parse().unwrap_or_default();
            CompValue::Number { text, value }
        }),
        2 => date_text().prop_map(CompValue::Str),
        4 => prop_oneof![
            3 => "[a-zA-Z0-9 @.()\\[\\]%_\"\\\\-]{0,12}",
            2 => select(ODD_TEXT).prop_map(str::to_string),
            2 => "\\PC{0,12}",
            1 => any::<String>(),
        ]
        .prop_map(CompValue::Str),
    ]
    .boxed()
}

fn ast_term() -> BoxedStrategy<Filter> {
    let op = select(CompareOp::ALL.to_vec());
    prop_oneof![
        4 => (ast_path(true), op, ast_value()).prop_map(|(a, o, v)| Filter::Compare(a, o, v)),
        1 => ast_path(true).prop_map(Filter::Present),
    ]
    .boxed()
}

fn ast_combine(leaf: BoxedStrategy<Filter>, depth: u32) -> BoxedStrategy<Filter> {
    leaf.prop_recursive(depth, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
    .boxed()
}

/// Filter ASTs within the parser's limits: at most 16 leaves of at most 4 terms each (64, the
/// term limit), nesting well under 16, no value path inside another.
pub fn filter_ast() -> BoxedStrategy<Filter> {
    let value_path =
        (ast_path(false), ast_combine(ast_term(), 2)).prop_map(|(attr, inner)| Filter::ValuePath {
            attr,
            filter: Box::new(inner),
        });
    ast_combine(prop_oneof![3 => ast_term(), 1 => value_path].boxed(), 4)
}

/// PATCH path ASTs: an attribute path, or a value path with an optional sub-attribute.
pub fn patch_path_ast() -> BoxedStrategy<PatchPath> {
    prop_oneof![
        ast_path(true).prop_map(|attr| PatchPath {
            attr,
            filter: None,
            sub: None
        }),
        (
            ast_path(false),
            ast_combine(ast_term(), 3),
            option::of(ast_name())
        )
            .prop_map(|(attr, filter, sub)| PatchPath {
                attr,
                filter: Some(filter),
                sub
            }),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Structural mutation of JSON values.

#[derive(Debug, Clone)]
pub enum Mutation {
    /// Remove a member or element (a scalar becomes null).
    Drop(Index),
    /// Add a member again under its name in another case (`userName` and `USERNAME`).
    DuplicateKeyInOtherCase(Index, u64),
    /// Swap the case of every member name.
    RecaseKeys(u64),
    /// Swap the case of a string (`replace` → `rEpLaCe`, `"False"`).
    RecaseString(u64),
    /// The same content as another JSON type (a string as a number, a boolean as a string …).
    Retype,
    /// Wrapped in arrays or `{"value": …}` objects this many times.
    Nest(u8, bool),
    /// A string repeated to about this many characters, an array or object grown to this many
    /// elements.
    Grow(usize),
    /// Odd Unicode put before or after a string, or added as a member name.
    Unicode(&'static str, bool),
    Replace(Value),
    Insert(String, Value),
}

#[derive(Debug, Clone)]
pub struct Mutate {
    at: Index,
    what: Mutation,
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::Drop),
        2 => (any::<Index>(), any::<u64>()).prop_map(|(i, b)| Mutation::DuplicateKeyInOtherCase(i, b)),
        2 => any::<u64>().prop_map(Mutation::RecaseKeys),
        2 => any::<u64>().prop_map(Mutation::RecaseString),
        3 => Just(Mutation::Retype),
        2 => (prop_oneof![4 => 1u8..4, 1 => 4u8..=NEST], any::<bool>())
            .prop_map(|(d, a)| Mutation::Nest(d, a)),
        1 => prop_oneof![3 => 2usize..50, 1 => 50usize..=MANY, 1 => 1_000usize..=HUGE]
            .prop_map(Mutation::Grow),
        2 => (select(ODD_TEXT), any::<bool>()).prop_map(|(s, f)| Mutation::Unicode(s, f)),
        3 => json().prop_map(Mutation::Replace),
        2 => (key(), json()).prop_map(|(k, v)| Mutation::Insert(k, v)),
    ]
    .boxed()
}

/// `base` with one to four structural mutations, each at a node picked among all of its nodes.
pub fn mutated(base: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    let mutate = (any::<Index>(), mutation()).prop_map(|(at, what)| Mutate { at, what });
    (base, vec(mutate, 1..5))
        .prop_map(|(mut value, mutations)| {
            for m in &mutations {
                apply_mutation(&mut value, m);
            }
            value
        })
        .boxed()
}

#[derive(Clone)]
enum Seg {
    Key(String),
    At(usize),
}

fn collect_paths(value: &Value, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(path.clone());
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                path.push(Seg::Key(k.clone()));
                collect_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::At(i));
                collect_paths(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |node, seg| match seg {
        Seg::Key(k) => node.as_object_mut()?.get_mut(k),
        Seg::At(i) => node.as_array_mut()?.get_mut(*i),
    })
}

fn apply_mutation(root: &mut Value, m: &Mutate) {
    let mut paths = Vec::new();
    collect_paths(root, &mut Vec::new(), &mut paths);
    let path = &paths[m.at.index(paths.len())];
    let Some(node) = node_mut(root, path) else {
        return;
    };
    match &m.what {
        Mutation::Drop(i) => match node {
            Value::Object(o) if !o.is_empty() => {
                let key = o.keys().nth(i.index(o.len())).cloned().unwrap_or_default();
                o.remove(&key);
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(i.index(a.len()));
            }
            other => *other = Value::Null,
        },
        Mutation::DuplicateKeyInOtherCase(i, bits) => {
            if let Value::Object(o) = node
                && !o.is_empty()
                && let Some((key, value)) = o.iter().nth(i.index(o.len()))
            {
                let mut other = recase(key, *bits);
                if other == *key {
                    other = key.to_ascii_uppercase();
                }
                let value = value.clone();
                o.insert(other, value);
            }
        }
        Mutation::RecaseKeys(bits) => {
            if let Value::Object(o) = node {
                let old = std::mem::take(o);
                *o = old
                    .into_iter()
                    .map(|(k, v)| (recase(&k, *bits), v))
                    .collect();
            }
        }
        Mutation::RecaseString(bits) => {
            if let Value::String(s) = node {
                *s = recase(s, *bits);
            }
        }
        Mutation::Retype => {
            let retyped = match std::mem::take(node) {
                Value::Null => json!(""),
                Value::Bool(b) => json!(if b { "True" } else { "False" }),
                Value::Number(n) => Value::String(n.to_string()),
                Value::String(s) => serde_json::from_str::<Number>(&s)
                    .map(Value::Number)
                    .unwrap_or(Value::Bool(!s.is_empty())),
                Value::Array(mut a) => {
                    let first = if a.is_empty() {
                        Value::Null
                    } else {
                        a.swap_remove(0)
                    };
                    json!({ "value": first })
                }
                Value::Object(o) => Value::Array(o.into_iter().map(|(_, v)| v).collect()),
            };
            *node = retyped;
        }
        Mutation::Nest(depth, in_array) => {
            for _ in 0..*depth {
                let inner = std::mem::take(node);
                *node = if *in_array {
                    Value::Array(vec![inner])
                } else {
                    json!({ "value": inner })
                };
            }
        }
        Mutation::Grow(n) => match node {
            Value::String(s) => {
                let unit = if s.is_empty() {
                    "x".to_string()
                } else {
                    s.clone()
                };
                let times = (n / unit.chars().count().max(1)).clamp(1, HUGE);
                *s = unit.repeat(times);
            }
            Value::Array(a) => {
                let n = (*n).min(MANY);
                let seed = if a.is_empty() {
                    vec![Value::Null]
                } else {
                    a.clone()
                };
                *a = seed.iter().cycle().take(n).cloned().collect();
            }
            Value::Object(o) => {
                for i in 0..(*n).min(MANY) {
                    o.insert(format!("k{i}"), Value::from(i));
                }
            }
            _ => {}
        },
        Mutation::Unicode(odd, front) => match node {
            Value::String(s) => {
                *s = if *front {
                    format!("{odd}{s}")
                } else {
                    format!("{s}{odd}")
                };
            }
            Value::Object(o) => {
                o.insert((*odd).to_string(), Value::from(*front));
            }
            _ => {}
        },
        Mutation::Replace(v) => *node = v.clone(),
        Mutation::Insert(k, v) => match node {
            Value::Object(o) => {
                o.insert(k.clone(), v.clone());
            }
            Value::Array(a) => a.push(v.clone()),
            _ => {}
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Textual mutation.

#[derive(Debug, Clone)]
pub enum CharEdit {
    Delete(Index, u8),
    Insert(Index, char),
    Duplicate(Index, u8),
    Replace(Index, char),
    Truncate(Index),
}

fn edit_char() -> BoxedStrategy<char> {
    prop_oneof![
        3 => select(&[
            '(', ')', '[', ']', '"', '\\', ' ', '.', ':', '$', '-', '_', 'a', '0', '\t', '\n',
            '\u{0}', 'é', '😀', 'e', '+',
        ][..]),
        1 => any::<char>(),
    ]
    .boxed()
}

fn char_edit() -> BoxedStrategy<CharEdit> {
    prop_oneof![
        (any::<Index>(), 1u8..8).prop_map(|(i, n)| CharEdit::Delete(i, n)),
        (any::<Index>(), edit_char()).prop_map(|(i, c)| CharEdit::Insert(i, c)),
        (any::<Index>(), 1u8..16).prop_map(|(i, n)| CharEdit::Duplicate(i, n)),
        (any::<Index>(), edit_char()).prop_map(|(i, c)| CharEdit::Replace(i, c)),
        any::<Index>().prop_map(CharEdit::Truncate),
    ]
    .boxed()
}

fn apply_char_edits(text: &str, edits: &[CharEdit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len();
        // An index into 0..=len (an insertion point), or none for an empty text.
        let at = |i: &Index| i.index(len + 1);
        match edit {
            CharEdit::Delete(i, n) => {
                let from = at(i).min(len);
                let to = (from + usize::from(*n)).min(len);
                chars.drain(from..to);
            }
            CharEdit::Insert(i, c) => chars.insert(at(i), *c),
            CharEdit::Duplicate(i, n) => {
                let from = at(i).min(len);
                let to = (from + usize::from(*n)).min(len);
                let copy: Vec<char> = chars[from..to].to_vec();
                chars.splice(to..to, copy);
            }
            CharEdit::Replace(i, c) => {
                if len > 0 {
                    chars[i.index(len)] = *c;
                }
            }
            CharEdit::Truncate(i) => chars.truncate(at(i)),
        }
    }
    chars.into_iter().collect()
}

#[derive(Debug, Clone)]
pub enum ByteEdit {
    Flip(Index, u8),
    Delete(Index, u8),
    Insert(Index, u8),
    Duplicate(Index, u8),
    Truncate(Index),
}

fn edit_byte() -> BoxedStrategy<u8> {
    prop_oneof![
        3 => select(b"{}[]\":,\\ 0aeE-.+nultrfs".to_vec()),
        1 => any::<u8>(),
    ]
    .boxed()
}

fn byte_edit() -> BoxedStrategy<ByteEdit> {
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        2 => (any::<Index>(), 1u8..8).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        2 => (any::<Index>(), edit_byte()).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        1 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| ByteEdit::Duplicate(i, n)),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
    ]
    .boxed()
}

fn apply_byte_edits(text: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut bytes = text.to_vec();
    for edit in edits {
        let len = bytes.len();
        let at = |i: &Index| i.index(len + 1);
        match edit {
            ByteEdit::Flip(i, bit) => {
                if len > 0 {
                    bytes[i.index(len)] ^= 1 << bit;
                }
            }
            ByteEdit::Delete(i, n) => {
                let from = at(i).min(len);
                let to = (from + usize::from(*n)).min(len);
                bytes.drain(from..to);
            }
            ByteEdit::Insert(i, b) => bytes.insert(at(i), *b),
            ByteEdit::Duplicate(i, n) => {
                let from = at(i).min(len);
                let to = (from + usize::from(*n)).min(len);
                let copy = bytes[from..to].to_vec();
                bytes.splice(to..to, copy);
            }
            ByteEdit::Truncate(i) => bytes.truncate(at(i)),
        }
    }
    bytes
}

/// Request body bytes: a real body (or a generated one) serialized and byte-edited, or text
/// nested deeper than the JSON parser accepts.
pub fn body_bytes() -> BoxedStrategy<Vec<u8>> {
    let real = select(corpus::all_texts()).prop_map(|t| t.as_bytes().to_vec());
    let generated = prop_oneof![
        user_body(),
        group_body(),
        patch_body(ResourceType::User),
        patch_body(ResourceType::Group),
    ]
    .prop_map(|v| serde_json::to_vec(&v).unwrap_or_default());
    let deep = (100usize..300, any::<bool>()).prop_map(|(n, arrays)| {
        if arrays {
            format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes()
        } else {
            format!(
                "{{\"userName\":\"x\",\"name\":{}1{}}}",
                "{\"a\":".repeat(n),
                "}".repeat(n)
            )
            .into_bytes()
        }
    });
    prop_oneof![
        6 => (real, vec(byte_edit(), 1..6)).prop_map(|(t, e)| apply_byte_edits(&t, &e)),
        3 => (generated, vec(byte_edit(), 1..4)).prop_map(|(t, e)| apply_byte_edits(&t, &e)),
        1 => deep,
    ]
    .boxed()
}
