//! The reference evaluator: decides whether a SCIM resource, as its JSON representation (core
//! attributes at the top level, extension attributes under their schema URN key), matches a
//! resolved filter. Tests use it as the oracle for the SQL translation, so it favours being
//! obviously right over being fast.
//!
//! Semantics (RFC 7644 §3.4.2.2):
//! - String comparisons honour the attribute's `caseExact`; a case-insensitive comparison
//!   lower-cases both sides with `str::to_lowercase` (full Unicode: "ÉLODIE" eq "élodie").
//!   `co`/`sw`/`ew` are substring tests; `gt`/`ge`/`lt`/`le` compare strings lexicographically
//!   (by code point, after lower-casing if case-insensitive), date-times chronologically and
//!   numbers numerically. Booleans only support `eq`/`ne`; anything else is no match.
//! - A comparison on a multi-valued attribute matches if **any** value matches. That includes
//!   `ne`: `emails ne "a@x"` matches a user with some e-mail other than a@x, and matches no user
//!   without e-mails (no value, so no value differs). This is the RFC's "any" rule applied
//!   literally, and it is what `EXISTS (… WHERE value <> $1)` and `column <> $1` (NULL never
//!   matches) compute in SQL. To ask "no e-mail equals a@x", write `not (emails eq "a@x")`.
//!   The same holds for absent single-valued attributes: `title ne "x"` does not match a user
//!   without a title, `not (title eq "x")` does.
//! - `pr` matches a value that is present and not null, not "", not [] and not {} (nor an
//!   object or array holding only such values). `eq null` is the negation of `pr`, `ne null`
//!   is `pr`.
//! - A value path matches if one element satisfies the whole inner filter; separate terms
//!   (`emails.type eq "work" and emails.value co "x"`) may be satisfied by different elements.
//! - JSON member names are matched case-insensitively, like attribute names (RFC 7643 §2.1).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::filter::{CompareOp, ResolvedAttr, ResolvedFilter, ResolvedValue};
use super::schema::{AttrType, AttributeDef};

/// Whether `resource` matches `filter`.
pub fn matches(filter: &ResolvedFilter, resource: &Value) -> bool {
    eval(filter, Scope::Resource(resource))
}

/// Whether one element matches a value path's inner filter: an object of a multi-valued
/// complex attribute (one e-mail, one member) or the object of a single-valued complex one.
/// `filter` is the inner filter as [`resolve_path`](super::filter::resolve_path) resolves it:
/// every term names the value path's attribute as `attr` and one of its sub-attributes as
/// `sub`. The PATCH engine uses it to pick the elements `emails[type eq "work"]` designates
/// (RFC 7644 §3.5.2).
pub fn matches_element(filter: &ResolvedFilter, element: &Value) -> bool {
    eval(filter, Scope::Element(element))
}

/// What a term's attribute is looked up in: the whole resource, or one element of a value
/// path's multi-valued attribute.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource(&'a Value),
    Element(&'a Value),
}

fn eval(filter: &ResolvedFilter, scope: Scope<'_>) -> bool {
    match filter {
        ResolvedFilter::And(a, b) => eval(a, scope) && eval(b, scope),
        ResolvedFilter::Or(a, b) => eval(a, scope) || eval(b, scope),
        ResolvedFilter::Not(inner) => !eval(inner, scope),
        ResolvedFilter::Present(attr) => values(attr, scope).into_iter().any(is_present),
        ResolvedFilter::Compare { attr, op, value } => match value {
            ResolvedValue::Null => {
                let present = values(attr, scope).into_iter().any(is_present);
                match op {
                    CompareOp::Eq => !present,
                    CompareOp::Ne => present,
                    _ => false,
                }
            }
            _ => values(attr, scope)
                .into_iter()
                .any(|actual| compare(attr.target(), *op, actual, value)),
        },
        ResolvedFilter::ValuePath { attr, filter } => match scope {
            Scope::Resource(resource) => items(top_level(attr, resource))
                .into_iter()
                .any(|element| eval(filter, Scope::Element(element))),
            // Value paths do not nest (`resolve` rejects it).
            Scope::Element(_) => false,
        },
    }
}

/// The values a term compares: every value of the attribute (or of its sub-attribute across
/// all elements), nulls left out.
fn values<'a>(attr: &ResolvedAttr, scope: Scope<'a>) -> Vec<&'a Value> {
    let found: Vec<&'a Value> = match scope {
        Scope::Resource(resource) => {
            let top = items(top_level(attr, resource));
            match attr.sub {
                None => top,
                Some(sub) => top
                    .into_iter()
                    .flat_map(|element| items(member(element, sub.name)))
                    .collect(),
            }
        }
        Scope::Element(element) => match attr.sub {
            Some(sub) => items(member(element, sub.name)),
            None => Vec::new(),
        },
    };
    found.into_iter().filter(|v| !v.is_null()).collect()
}

/// The attribute's JSON value in the resource: at the top level, or under the extension URN.
fn top_level<'a>(attr: &ResolvedAttr, resource: &'a Value) -> Option<&'a Value> {
    let container = if attr.extension {
        member(resource, attr.schema)?
    } else {
        resource
    };
    member(container, attr.attr.name)
}

/// An object member, by exact name first, then case-insensitively.
fn member<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let object = object.as_object()?;
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A multi-valued attribute's elements, a single value as one element, nothing as none.
fn items(value: Option<&Value>) -> Vec<&Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(elements)) => elements.iter().collect(),
        Some(v) => vec![v],
    }
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// One stored value against the operand, by the attribute's type. A stored value of the
/// wrong JSON type never matches.
fn compare(def: &AttributeDef, op: CompareOp, actual: &Value, operand: &ResolvedValue) -> bool {
    match (def.kind, operand) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, ResolvedValue::Str(want)) => {
            actual
                .as_str()
                .is_some_and(|have| compare_str(op, have, want, def.case_exact))
        }
        (AttrType::Boolean, ResolvedValue::Bool(want)) => match (op, actual.as_bool()) {
            (CompareOp::Eq, Some(have)) => have == *want,
            (CompareOp::Ne, Some(have)) => have != *want,
            _ => false,
        },
        (AttrType::Integer | AttrType::Decimal, ResolvedValue::Number { value: want, .. }) => {
            actual
                .as_f64()
                .and_then(|have| have.partial_cmp(want))
                .is_some_and(|ord| compare_ord(op, ord))
        }
        (AttrType::DateTime, ResolvedValue::DateTime { value: want, .. }) => actual
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|have| have.with_timezone(&Utc).cmp(want))
            .is_some_and(|ord| compare_ord(op, ord)),
        _ => false,
    }
}

/// One string against another with a filter operator, as SCIM compares strings (also used by
/// the SQL translation for values it knows in advance, such as schema URNs).
pub fn compare_str(op: CompareOp, have: &str, want: &str, case_exact: bool) -> bool {
    let (have, want) = if case_exact {
        (have.to_string(), want.to_string())
    } else {
        (have.to_lowercase(), want.to_lowercase())
    };
    match op {
        CompareOp::Eq => have == want,
        CompareOp::Ne => have != want,
        CompareOp::Co => have.contains(&want),
        CompareOp::Sw => have.starts_with(&want),
        CompareOp::Ew => have.ends_with(&want),
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
            compare_ord(op, have.cmp(&want))
        }
    }
}

fn compare_ord(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_proto::filter::{parse_filter, resolve};
    use crate::scim_proto::schema::Schemas;
    use crate::scim_proto::schema::{ENTERPRISE_USER_SCHEMA, ResourceType};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE_USER_SCHEMA
            ],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Okta-00u1AbC",
            "userName": "Elodie.Martin@example.com",
            "name": { "givenName": "Élodie", "familyName": "Martin", "middleName": "" },
            "displayName": "élodie martin",
            "title": "",
            "active": true,
            "emails": [
                { "value": "elodie@example.com", "type": "work", "primary": true },
                { "value": "e.martin@home.example.org", "type": "home" }
            ],
            "phoneNumbers": [],
            "meta": {
                "resourceType": "User",
                "created": "2011-05-13T04:42:34Z",
                "lastModified": "2020-01-01T12:00:00+02:00"
            },
            ENTERPRISE_USER_SCHEMA: {
                "employeeNumber": "701984",
                "department": "R&D",
                "manager": { "value": "26118915", "displayName": "John Smith" }
            }
        })
    }

    fn group() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "e9e30dba",
            "displayName": "Tour Guides",
            "members": [
                { "value": "2819c223", "type": "User", "display": "Babs" },
                { "value": "902c246b", "type": "User" },
                { "value": "6c5bb468", "type": "Group" }
            ]
        })
    }

    fn check(rt: ResourceType, resource: &Value, filter: &str) -> bool {
        let parsed = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let resolved =
            resolve(&Schemas::default(), &parsed, rt).unwrap_or_else(|e| panic!("{filter}: {e}"));
        matches(&resolved, resource)
    }

    fn u(filter: &str) -> bool {
        check(ResourceType::User, &user(), filter)
    }

    fn assert_user(cases: &[(&str, bool)]) {
        for (filter, expected) in cases {
            assert_eq!(u(filter), *expected, "{filter}");
        }
    }

    #[test]
    fn user_name_is_case_insensitive_so_an_upper_cased_filter_matches() {
        assert_user(&[
            (r#"userName eq "Elodie.Martin@example.com""#, true),
            (r#"userName eq "ELODIE.MARTIN@EXAMPLE.COM""#, true),
            (r#"userName eq "elodie.martin@example.com""#, true),
            (r#"userName eq "elodie""#, false),
            (r#"userName ne "ELODIE.MARTIN@EXAMPLE.COM""#, false),
        ]);
    }

    #[test]
    fn id_and_external_id_are_case_exact() {
        assert_user(&[
            (r#"externalId eq "Okta-00u1AbC""#, true),
            (r#"externalId eq "okta-00u1abc""#, false),
            (r#"externalId eq "OKTA-00U1ABC""#, false),
            (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
            (r#"externalId sw "okta""#, false),
            (r#"externalId sw "Okta""#, true),
        ]);
    }

    #[test]
    fn case_insensitive_comparison_lower_cases_non_ascii_letters() {
        assert_user(&[
            (r#"name.givenName eq "ÉLODIE""#, true),
            (r#"name.givenName eq "élodie""#, true),
            (r#"displayName eq "ÉLODIE MARTIN""#, true),
            (r#"displayName sw "ÉLO""#, true),
            (r#"name.givenName eq "ELODIE""#, false),
        ]);
    }

    #[test]
    fn substring_operators_and_lexicographic_ordering_on_strings() {
        assert_user(&[
            (r#"userName co "MARTIN@""#, true),
            (r#"userName sw "elodie.""#, true),
            (r#"userName ew ".COM""#, true),
            (r#"userName co "nobody""#, false),
            (r#"userName sw "martin""#, false),
            (r#"userName co """#, true),
            (r#"name.familyName gt "LAMBERT""#, true),
            (r#"name.familyName ge "martin""#, true),
            (r#"name.familyName gt "martin""#, false),
            (r#"name.familyName lt "N""#, true),
            (r#"name.familyName le "MARTIN""#, true),
            (r#"name.familyName lt "MARTIN""#, false),
        ]);
    }

    #[test]
    fn like_wildcards_in_values_match_only_themselves() {
        assert_user(&[
            (r#"userName co "%""#, false),
            (r#"userName co "_""#, false),
            (r#"userName sw "Elodie_Martin""#, false),
            (r#"userName eq "%""#, false),
            (r#"userName ew "_.com""#, false),
        ]);
        let odd = json!({ "userName": "100%_a\\b" });
        assert!(check(ResourceType::User, &odd, r#"userName co "%_a\\b""#));
        assert!(!check(ResourceType::User, &odd, r#"userName co "%xa""#));
    }

    #[test]
    fn multi_valued_attributes_match_when_any_value_matches() {
        assert_user(&[
            (r#"emails co "example.org""#, true),
            (r#"emails.value co "example.org""#, true),
            (r#"emails eq "ELODIE@EXAMPLE.COM""#, true),
            (r#"emails.type eq "home""#, true),
            (r#"emails.type eq "other""#, false),
            (r#"emails ew ".net""#, false),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user""#,
                true,
            ),
        ]);
    }

    #[test]
    fn ne_on_a_multi_valued_attribute_matches_if_any_value_differs() {
        assert_user(&[
            // One e-mail differs, so `ne` matches although another e-mail is equal.
            (r#"emails ne "elodie@example.com""#, true),
            // "No e-mail equals" is spelled with not.
            (r#"not (emails eq "elodie@example.com")"#, false),
            (r#"not (emails eq "x@example.com")"#, true),
            // No value at all: nothing differs, so `ne` does not match; `not eq` does.
            (r#"phoneNumbers ne "123""#, false),
            (r#"not (phoneNumbers eq "123")"#, true),
            (r#"nickName ne "x""#, false),
            (r#"not (nickName eq "x")"#, true),
        ]);
        let one = json!({ "emails": [{ "value": "a@x.org" }] });
        assert!(!check(ResourceType::User, &one, r#"emails ne "A@X.ORG""#));
    }

    #[test]
    fn value_paths_need_one_element_that_satisfies_the_whole_inner_filter() {
        assert_user(&[
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (r#"emails[type eq "WORK" and primary eq true]"#, true),
            // type work and example.org exist, but on different elements.
            (
                r#"emails[type eq "work" and value co "example.org"]"#,
                false,
            ),
            // …while separate terms may be satisfied by different elements.
            (
                r#"emails.type eq "work" and emails.value co "example.org""#,
                true,
            ),
            (r#"emails[type eq "home" or value eq "nobody"]"#, true),
            (r#"emails[not (type eq "work")]"#, true),
            (r#"emails[primary eq false]"#, false),
            (r#"emails[primary pr]"#, true),
            (r#"phoneNumbers[type pr]"#, false),
            (r#"name[givenName eq "élodie"]"#, true),
        ]);
    }

    #[test]
    fn entra_value_path_with_trailing_comparison_matches_like_its_rfc_form() {
        assert_user(&[
            (
                r#"emails[type eq "work"].value eq "ELODIE@example.com""#,
                true,
            ),
            (
                r#"emails[type eq "work"].value eq "e.martin@home.example.org""#,
                false,
            ),
            (
                r#"emails[type eq "home"].value eq "e.martin@home.example.org""#,
                true,
            ),
        ]);
    }

    #[test]
    fn present_ignores_null_empty_strings_empty_arrays_and_empty_objects() {
        assert_user(&[
            ("userName pr", true),
            ("title pr", false),
            ("nickName pr", false),
            ("phoneNumbers pr", false),
            ("emails pr", true),
            ("name pr", true),
            ("name.middleName pr", false),
            ("name.givenName pr", true),
            ("active pr", true),
            ("title eq null", true),
            ("title ne null", false),
            ("userName eq null", false),
            ("userName ne null", true),
        ]);
        let hollow = json!({
            "userName": "x",
            "name": { "givenName": "", "familyName": null },
            "emails": [{ "value": "" }, {}],
            "title": null,
            "active": false
        });
        for (filter, expected) in [
            ("name pr", false),
            ("emails pr", false),
            ("emails.value pr", false),
            ("title pr", false),
            ("active pr", true),
        ] {
            assert_eq!(
                check(ResourceType::User, &hollow, filter),
                expected,
                "{filter}"
            );
        }
    }

    #[test]
    fn date_times_compare_chronologically_across_offsets() {
        assert_user(&[
            (r#"meta.created eq "2011-05-13T04:42:34Z""#, true),
            (r#"meta.created eq "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.created gt "2011-05-13T04:42:33Z""#, true),
            (r#"meta.created gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.created ge "2011-05-13T04:42:34Z""#, true),
            (r#"meta.created lt "2011-05-13T04:42:35.5Z""#, true),
            // 12:00+02:00 is 10:00Z, which is before 11:00Z although "12" > "11".
            (r#"meta.lastModified lt "2020-01-01T11:00:00Z""#, true),
            (r#"meta.lastModified le "2020-01-01T10:00:00Z""#, true),
            (r#"meta.lastModified gt "2020-01-01T10:00:00Z""#, false),
        ]);
        let garbage = json!({ "meta": { "created": "yesterday" } });
        assert!(!check(
            ResourceType::User,
            &garbage,
            r#"meta.created lt "2030-01-01T00:00:00Z""#
        ));
    }

    #[test]
    fn booleans_compare_with_eq_and_ne_and_entra_string_booleans() {
        assert_user(&[
            ("active eq true", true),
            ("active eq false", false),
            ("active ne false", true),
            (r#"active eq "True""#, true),
            (r#"active eq "False""#, false),
        ]);
        let stored_as_string = json!({ "active": "true" });
        assert!(!check(
            ResourceType::User,
            &stored_as_string,
            "active eq true"
        ));
    }

    #[test]
    fn ordering_on_a_boolean_is_no_match_even_when_built_by_hand() {
        let ResolvedFilter::Compare { attr, .. } = resolve(
            &Schemas::default(),
            &parse_filter("active eq true").expect("parses"),
            ResourceType::User,
        )
        .expect("resolves") else {
            panic!()
        };
        for op in [
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Co,
        ] {
            let f = ResolvedFilter::Compare {
                attr: attr.clone(),
                op,
                value: ResolvedValue::Bool(false),
            };
            assert!(!matches(&f, &user()), "{op:?}");
        }
    }

    #[test]
    fn extension_attributes_are_read_under_their_urn_with_or_without_the_prefix() {
        assert_user(&[
            (r#"employeeNumber eq "701984""#, true),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
                true,
            ),
            (r#"manager eq "26118915""#, true),
            (r#"manager.displayName co "smith""#, true),
            (r#"department eq "r&d""#, true),
            (r#"costCenter pr"#, false),
        ]);
        // A core attribute of the same name at the top level is not an extension attribute.
        let misplaced = json!({ "employeeNumber": "701984" });
        assert!(!check(
            ResourceType::User,
            &misplaced,
            r#"employeeNumber eq "701984""#
        ));
    }

    #[test]
    fn logical_operators_combine_as_parsed() {
        assert_user(&[
            (r#"userName sw "elodie" and active eq true"#, true),
            (r#"userName sw "elodie" and active eq false"#, false),
            (r#"userName sw "nobody" or active eq true"#, true),
            (r#"not (userName sw "elodie")"#, false),
            (r#"not (not (userName sw "elodie"))"#, true),
            (r#"title pr or userName sw "e" and active eq false"#, false),
            (r#"(title pr or userName sw "e") and active eq true"#, true),
        ]);
    }

    #[test]
    fn group_members_match_by_value_path_and_by_sub_attribute() {
        let g = group();
        for (filter, expected) in [
            (r#"displayName eq "tour guides""#, true),
            (r#"members[value eq "2819c223"]"#, true),
            (r#"members[value eq "2819C223"]"#, true), // members.value is caseExact false
            (r#"members[value eq "2819c223" and type eq "Group"]"#, false),
            (r#"members[type eq "group"]"#, true),
            (r#"members.value eq "6c5bb468""#, true),
            (r#"members eq "902c246b""#, true),
            (r#"members[display pr]"#, true),
            (r#"members[value eq "nobody"]"#, false),
            (r#"id eq "E9E30DBA""#, false),
        ] {
            assert_eq!(check(ResourceType::Group, &g, filter), expected, "{filter}");
        }
        let empty = json!({ "displayName": "Empty", "members": [] });
        assert!(!check(ResourceType::Group, &empty, "members pr"));
        assert!(check(ResourceType::Group, &empty, "not (members pr)"));
    }

    #[test]
    fn json_member_names_are_matched_case_insensitively() {
        let odd = json!({
            "UserName": "bjensen",
            "EMAILS": [{ "Value": "b@x.org", "TYPE": "work" }],
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER": { "Department": "Ops" }
        });
        assert!(check(ResourceType::User, &odd, r#"userName eq "BJENSEN""#));
        assert!(check(
            ResourceType::User,
            &odd,
            r#"emails[type eq "work"].value eq "b@x.org""#
        ));
        assert!(check(ResourceType::User, &odd, r#"department eq "ops""#));
    }

    #[test]
    fn matches_element_evaluates_a_patch_value_filter_against_one_element_only() {
        let path =
            crate::scim_proto::filter::parse_path(r#"emails[type eq "WORK" and primary eq true]"#)
                .expect("parses");
        let resolved =
            crate::scim_proto::filter::resolve_path(&Schemas::default(), &path, ResourceType::User)
                .expect("resolves");
        let filter = resolved.filter.expect("value filter");
        let work = json!({ "value": "a@x.org", "Type": "work", "primary": true });
        let home = json!({ "value": "b@x.org", "type": "home", "primary": true });
        let not_primary = json!({ "value": "c@x.org", "type": "work" });
        assert!(matches_element(&filter, &work));
        assert!(!matches_element(&filter, &home));
        assert!(!matches_element(&filter, &not_primary));
        // The whole resource is not an element: its top-level members are not sub-attributes.
        assert!(!matches_element(&filter, &user()));
        assert!(!matches_element(&filter, &json!("a@x.org")));
    }

    #[test]
    fn values_of_the_wrong_json_type_never_match() {
        let odd = json!({ "userName": 42, "emails": "not-an-array@x.org", "active": 1 });
        assert!(!check(ResourceType::User, &odd, r#"userName eq "42""#));
        assert!(!check(ResourceType::User, &odd, "active eq true"));
        // A lone object or string where an array is expected is treated as one element.
        assert!(check(ResourceType::User, &odd, r#"emails pr"#));
    }
}
