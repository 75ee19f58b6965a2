//! SCIM resources between the wire and the store: what a create, replace or PATCH result is
//! turned into before it is written (`UserInput`, `GroupInput`), how a stored resource is
//! rendered (`render_user`, `render_group`), and `attributes`/`excludedAttributes` (RFC 7644
//! §3.4.2.5). Pure: no I/O.
//!
//! What is stored is canonical, so that filters translated to SQL and the reference evaluator
//! see the same document:
//! - attribute names take the schema's spelling (`GIVENNAME` → `givenName`, RFC 7643 §2.1);
//! - null, `""`, `[]` and `{}` are dropped: an absent value and an empty one are the same thing
//!   to SCIM (`pr` is false for both) and Entra ID sends `""` to clear an attribute;
//! - a boolean sent as a string (`"False"`, Entra ID) becomes a boolean, a number sent for a
//!   string attribute becomes its decimal string;
//! - a bare string for a complex attribute with a `value` (Entra ID's `"manager": "id"`) becomes
//!   `{"value": …}`, and a one-element array for a single-valued attribute its element;
//! - a single value for a multi-valued attribute becomes a one-element array;
//! - readOnly attributes (`id`, `meta`, `groups`, `members.display`, …) and the password are not
//!   kept; attributes the schemas do not define are ignored (logged at debug), never a 400.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::filter;
use super::schema::{
    self, AttrType, AttributeDef, GROUP_SCHEMA, Mutability, ResourceSchema, ResourceType, Returned,
    Schemas, USER_SCHEMA,
};
use crate::domain::group::GroupMember;
use crate::domain::group::MemberKind;
use crate::domain::provisioning::{ScimGroup, ScimUser, ScimUserGroup, ScimUserWrite};

pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A resource that cannot be written as sent: a 400 with this `scimType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub scim_type: &'static str,
    pub detail: String,
}

impl Invalid {
    pub fn value(detail: impl Into<String>) -> Self {
        Invalid {
            scim_type: "invalidValue",
            detail: detail.into(),
        }
    }

    pub fn syntax(detail: impl Into<String>) -> Self {
        Invalid {
            scim_type: "invalidSyntax",
            detail: detail.into(),
        }
    }
}

/// Longest userName, displayName or externalId accepted, in characters.
pub const MAX_NAME_CHARS: usize = 1024;

/// A client's value quoted in an error detail: its JSON text, cut to a length fit to echo (the
/// detail is also kept in the provisioning error log).
fn quoted(value: &Value) -> String {
    const MAX: usize = 120;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        None => text,
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A string-valued top-level attribute of the input: absent, null and `""` are `None`.
fn optional_string(object: &Map<String, Value>, name: &str) -> Result<Option<String>, Invalid> {
    match member(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            if s.chars().count() > MAX_NAME_CHARS {
                return Err(Invalid::value(format!(
                    "\"{name}\" is longer than {MAX_NAME_CHARS} characters"
                )));
            }
            Ok(Some(s.clone()))
        }
        // IdPs sometimes send numeric ids.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Invalid::value(format!("\"{name}\" must be a string"))),
    }
}

fn required_string(object: &Map<String, Value>, name: &str) -> Result<String, Invalid> {
    optional_string(object, name)?
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| Invalid::value(format!("\"{name}\" is required")))
}

fn boolean(value: &Value, path: &str) -> Result<Option<bool>, Invalid> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Value::String(s) if s.is_empty() => Ok(None),
        _ => Err(Invalid::value(format!("\"{path}\" must be true or false"))),
    }
}

/// Whether a client may write this attribute (readOnly ones are ignored on input, RFC 7643
/// §2.2; writeOnly ones such as the password are accepted and never stored).
fn stored(def: &AttributeDef) -> bool {
    !matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly)
}

/// One scalar value, canonical for its type, or `None` when it is empty.
fn canonical_scalar(
    def: &AttributeDef,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Invalid> {
    let wrong = |expected: &str| Invalid::value(format!("\"{path}\" must be {expected}"));
    Ok(match def.kind {
        AttrType::String => match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(Value::String(s.clone())),
            Value::Number(n) => Some(Value::String(n.to_string())),
            Value::Bool(b) => Some(Value::String(b.to_string())),
            _ => return Err(wrong("a string")),
        },
        // Kept as sent, but checked: one stored value that breaks the published schema would
        // make every list that contains it unreadable to a strict client.
        AttrType::Reference => match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => {
                let uri_like = def
                    .reference_types
                    .iter()
                    .any(|t| matches!(*t, "external" | "uri"));
                if uri_like && !s.starts_with('/') && url::Url::parse(s).is_err() {
                    return Err(wrong("an absolute URL or a path starting with /"));
                }
                Some(Value::String(s.clone()))
            }
            _ => return Err(wrong("a string")),
        },
        AttrType::Binary => match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|_| wrong("base64"))?;
                Some(Value::String(s.clone()))
            }
            _ => return Err(wrong("a base64 string")),
        },
        AttrType::Boolean => boolean(value, path)?.map(Value::Bool),
        AttrType::Integer => match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(value.clone()),
            Value::String(s) => Some(json!(
                s.trim().parse::<i64>().map_err(|_| wrong("an integer"))?
            )),
            _ => return Err(wrong("an integer")),
        },
        AttrType::Decimal => match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::Number(_) => Some(value.clone()),
            Value::String(s) => Some(json!(
                s.trim().parse::<f64>().map_err(|_| wrong("a number"))?
            )),
            _ => return Err(wrong("a number")),
        },
        AttrType::DateTime => match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => {
                DateTime::parse_from_rfc3339(s).map_err(|_| wrong("an RFC 3339 date-time"))?;
                Some(value.clone())
            }
            _ => return Err(wrong("an RFC 3339 date-time")),
        },
        AttrType::Complex => return Err(wrong("an object")),
    })
}

/// One value of `def` (an element, for a multi-valued attribute), canonical, or `None` when it
/// is empty.
fn canonical_single(
    def: &AttributeDef,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Invalid> {
    if def.kind != AttrType::Complex {
        return canonical_scalar(def, value, path);
    }
    match value {
        Value::Null => Ok(None),
        Value::Object(members) => {
            let mut out = Map::new();
            for (key, v) in members {
                match def.sub_attribute(key) {
                    Some(sub) if stored(sub) => {
                        let sub_path = format!("{path}.{}", sub.name);
                        if let Some(v) = canonical_scalar(sub, v, &sub_path)? {
                            out.insert(sub.name.to_owned(), v);
                        }
                    }
                    Some(_) => {}
                    None => {
                        tracing::debug!(attribute = %path, sub = %key, "ignoring unknown sub-attribute")
                    }
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        // Entra ID sends `"manager": "<id>"` for the enterprise manager.
        scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
            match def.sub_attribute("value") {
                Some(value_def) => {
                    Ok(
                        canonical_scalar(value_def, scalar, &format!("{path}.value"))?
                            .map(|v| json!({ "value": v })),
                    )
                }
                None => Err(Invalid::value(format!("\"{path}\" must be an object"))),
            }
        }
        Value::Array(_) => Err(Invalid::value(format!("\"{path}\" must be an object"))),
    }
}

/// A value of `def`, canonical, or `None` when it is empty.
fn canonical_value(
    def: &AttributeDef,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Invalid> {
    if def.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let mut out: Vec<Value> = Vec::with_capacity(items.len());
        // Hashed: a body may carry tens of thousands of values, and comparing each with every
        // earlier one made a 2 MB body cost seconds.
        let mut seen: HashSet<ValueKey> = HashSet::with_capacity(items.len());
        for item in items {
            if let Some(v) = canonical_single(def, item, path)?
                && seen.insert(ValueKey(v.clone()))
            {
                out.push(v);
            }
        }
        // RFC 7643 §2.4: "The primary attribute value 'true' MUST appear no more than once."
        let primaries = out
            .iter()
            .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
            .count();
        if primaries > 1 {
            return Err(Invalid::value(format!(
                "\"{path}\" has {primaries} values marked primary; at most one may be"
            )));
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    match value {
        Value::Array(items) => match items.as_slice() {
            [] => Ok(None),
            // Entra ID sends `"manager": [{"value": "…"}]` on the single-valued manager.
            [one] => canonical_single(def, one, path),
            _ => Err(Invalid::value(format!(
                "\"{path}\" is single-valued; got {} values",
                items.len()
            ))),
        },
        other => canonical_single(def, other, path),
    }
}

/// A JSON value as a hash key, equal exactly when the values are (`Value`'s own `Eq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueKey(pub Value);

impl Hash for ValueKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_value(&self.0, state);
    }
}

/// Hashes a JSON value consistently with `Value`'s `Eq`: objects by their (ordered) members,
/// numbers by kind and value, with `-0.0` and `0.0` (equal as `f64`) hashed alike.
pub(crate) fn hash_value<H: Hasher>(value: &Value, state: &mut H) {
    match value {
        Value::Null => state.write_u8(0),
        Value::Bool(b) => {
            state.write_u8(1);
            b.hash(state);
        }
        Value::Number(n) => {
            state.write_u8(2);
            if let Some(u) = n.as_u64() {
                state.write_u8(0);
                u.hash(state);
            } else if let Some(i) = n.as_i64() {
                state.write_u8(1);
                i.hash(state);
            } else {
                state.write_u8(2);
                let f = n.as_f64().unwrap_or_default();
                (if f == 0.0 { 0.0f64 } else { f }).to_bits().hash(state);
            }
        }
        Value::String(s) => {
            state.write_u8(3);
            s.hash(state);
        }
        Value::Array(items) => {
            state.write_u8(4);
            state.write_usize(items.len());
            for item in items {
                hash_value(item, state);
            }
        }
        Value::Object(members) => {
            state.write_u8(5);
            state.write_usize(members.len());
            for (k, v) in members {
                k.hash(state);
                hash_value(v, state);
            }
        }
    }
}

/// The attributes of `input` that go into the stored document: every writable attribute of the
/// core schema except those named in `columns` (kept in columns of their own), and every
/// writable attribute of the resource type's extensions, under the extension's URN.
fn document(
    schemas: &Schemas,
    resource_type: ResourceType,
    input: &Map<String, Value>,
    columns: &[&str],
) -> Result<Map<String, Value>, Invalid> {
    let core = resource_type.schema();
    let mut out = Map::new();
    for (key, value) in input {
        if let Some(extension) = schemas
            .extensions(resource_type)
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(key))
        {
            if let Some(doc) = extension_document(extension, value)? {
                out.insert(extension.id.to_owned(), Value::Object(doc));
            }
            continue;
        }
        let Some(def) = core.attribute(key) else {
            if !schema::COMMON_ATTRIBUTES
                .iter()
                .any(|a| a.name.eq_ignore_ascii_case(key))
            {
                // Unknown extension schemas (Entra's ADSCIM Group schema, custom URNs) included.
                tracing::debug!(attribute = %key, "ignoring an attribute no schema defines");
            }
            continue;
        };
        if !stored(def) || columns.iter().any(|c| c.eq_ignore_ascii_case(def.name)) {
            continue;
        }
        if let Some(v) = canonical_value(def, value, def.name)? {
            out.insert(def.name.to_owned(), v);
        }
    }
    Ok(out)
}

fn extension_document(
    extension: &'static ResourceSchema,
    value: &Value,
) -> Result<Option<Map<String, Value>>, Invalid> {
    let members = match value {
        Value::Null => return Ok(None),
        Value::Object(members) => members,
        _ => {
            return Err(Invalid::value(format!(
                "\"{}\" must be an object",
                extension.id
            )));
        }
    };
    let mut doc = Map::new();
    for (key, v) in members {
        match extension.attribute(key) {
            Some(def) if stored(def) => {
                if let Some(v) = canonical_value(def, v, &format!("{}:{}", extension.id, def.name))?
                {
                    doc.insert(def.name.to_owned(), v);
                }
            }
            Some(_) => {}
            None => {
                tracing::debug!(schema = extension.id, attribute = %key, "ignoring unknown extension attribute")
            }
        }
    }
    Ok((!doc.is_empty()).then_some(doc))
}

/// A body written for SCIM 1.x (`urn:scim:schemas:core:1.0`, as SCIM 1.1 integrations send) is
/// refused with `invalidVers` rather than half-understood.
fn check_version(object: &Map<String, Value>) -> Result<(), Invalid> {
    let Some(Value::Array(schemas)) = member(object, "schemas") else {
        return Ok(());
    };
    let scim1 = schemas.iter().any(|s| {
        s.as_str()
            .is_some_and(|s| s.to_ascii_lowercase().starts_with("urn:scim:schemas:"))
    });
    if scim1 {
        return Err(Invalid {
            scim_type: "invalidVers",
            detail: "this is a SCIM 2.0 service (RFC 7643/7644); SCIM 1.x schemas are not \
                     supported"
                .into(),
        });
    }
    Ok(())
}

/// A User as a create, replace or PATCH leaves it, ready to store.
pub fn user_input(schemas: &Schemas, input: &Value) -> Result<ScimUserWrite, Invalid> {
    let object = input
        .as_object()
        .ok_or_else(|| Invalid::syntax("a User must be a JSON object"))?;
    check_version(object)?;
    let user_name = required_string(object, "userName")?;
    let external_id = optional_string(object, "externalId")?;
    let attributes = document(schemas, ResourceType::User, object, &["userName"])?;
    // An unassigned `active` stays unassigned in the representation (a PATCH remove of it must
    // not bring back a default), and counts as active for the team model.
    let active = attributes
        .get("active")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let attributes_cmp = comparison_document(schemas, ResourceType::User, &attributes);
    let display_name = display_name(&attributes);
    let email = preferred_email(&attributes);
    Ok(ScimUserWrite {
        user_name,
        external_id,
        active,
        attributes,
        attributes_cmp,
        display_name,
        email,
    })
}

fn display_name(doc: &Map<String, Value>) -> Option<String> {
    if let Some(Value::String(s)) = doc.get("displayName") {
        return Some(s.clone());
    }
    let name = doc.get("name")?;
    if let Some(Value::String(f)) = name.get("formatted") {
        return Some(f.clone());
    }
    let parts: Vec<&str> = ["givenName", "familyName"]
        .iter()
        .filter_map(|k| name.get(*k).and_then(Value::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The e-mail address the team model knows the person by: the primary one, else the work one,
/// else the first.
fn preferred_email(doc: &Map<String, Value>) -> Option<String> {
    let emails = doc.get("emails")?.as_array()?;
    let pick = emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| {
            emails
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) == Some("work"))
        })
        .or_else(|| emails.first())?;
    pick.get("value").and_then(Value::as_str).map(str::to_owned)
}

/// `doc` with every value of a caseExact=false string attribute lower-cased (`str::to_lowercase`,
/// full Unicode, as the reference evaluator compares): filters compare against this copy.
pub fn comparison_document(
    schemas: &Schemas,
    resource_type: ResourceType,
    doc: &Map<String, Value>,
) -> Value {
    let core = resource_type.schema();
    let mut out = Map::new();
    for (key, value) in doc {
        if let Some(extension) = schemas
            .extensions(resource_type)
            .iter()
            .find(|e| e.id == key)
        {
            let folded = match value {
                Value::Object(members) => Value::Object(
                    members
                        .iter()
                        .map(|(k, v)| {
                            let v = extension
                                .attribute(k)
                                .map_or_else(|| v.clone(), |d| fold(d, v));
                            (k.clone(), v)
                        })
                        .collect(),
                ),
                other => other.clone(),
            };
            out.insert(key.clone(), folded);
        } else {
            let folded = core
                .attribute(key)
                .map_or_else(|| value.clone(), |d| fold(d, value));
            out.insert(key.clone(), folded);
        }
    }
    Value::Object(out)
}

fn fold(def: &AttributeDef, value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|i| fold_single(def, i)).collect()),
        other => fold_single(def, other),
    }
}

fn fold_single(def: &AttributeDef, value: &Value) -> Value {
    match value {
        Value::Object(members) if def.kind == AttrType::Complex => Value::Object(
            members
                .iter()
                .map(|(k, v)| {
                    let v = def
                        .sub_attribute(k)
                        .map_or_else(|| v.clone(), |s| fold_scalar(s, v));
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => fold_scalar(def, other),
    }
}

fn fold_scalar(def: &AttributeDef, value: &Value) -> Value {
    match value {
        // One spelling per instant (UTC, nine fraction digits), so that comparing the text
        // compares the times.
        Value::String(s) if def.kind == AttrType::DateTime => DateTime::parse_from_rfc3339(s)
            .map_or_else(
                |_| value.clone(),
                |t| Value::String(comparable_time(t.with_timezone(&Utc))),
            ),
        Value::String(s)
            if !def.case_exact
                && matches!(
                    def.kind,
                    AttrType::String | AttrType::Reference | AttrType::Binary
                ) =>
        {
            Value::String(s.to_lowercase())
        }
        other => other.clone(),
    }
}

/// The text form of an instant that sorts as the instant does.
pub fn comparable_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// A member named by a create, replace or PATCH, before the store checks it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInput {
    /// The member's id as sent (reported verbatim when it names nothing).
    pub value: String,
    /// From `type` ("User"/"Group", any case), when sent.
    pub kind: Option<MemberKind>,
}

/// A Group as a create, replace or PATCH leaves it (members apart: `members` is `None` when the
/// input had no `members` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Option<Vec<MemberInput>>,
}

pub fn group_input(input: &Value) -> Result<GroupInput, Invalid> {
    let object = input
        .as_object()
        .ok_or_else(|| Invalid::syntax("a Group must be a JSON object"))?;
    check_version(object)?;
    let display_name = required_string(object, "displayName")?;
    let external_id = optional_string(object, "externalId")?;
    let members = match member(object, "members") {
        None => None,
        Some(Value::Null) => Some(Vec::new()),
        Some(v) => Some(member_inputs(v)?),
    };
    Ok(GroupInput {
        display_name,
        external_id,
        members,
    })
}

/// Members as sent in `members` (an array of `{"value", "type"?, "$ref"?, "display"?}`, or one
/// such object).
pub fn member_inputs(value: &Value) -> Result<Vec<MemberInput>, Invalid> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out: Vec<MemberInput> = Vec::with_capacity(items.len());
    // Hashed: a 2 MB body holds some 90,000 members, and comparing each with every earlier one
    // held a worker for seconds (quadratic).
    let mut seen: HashSet<String> = HashSet::with_capacity(items.len());
    for item in items {
        let object = item
            .as_object()
            .ok_or_else(|| Invalid::value("each member must be an object with a \"value\""))?;
        let value = match member(object, "value") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                return Err(Invalid::value(
                    "each member needs a \"value\": the member's id",
                ));
            }
        };
        let kind = match member(object, "type") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.eq_ignore_ascii_case("user") => Some(MemberKind::User),
            Some(Value::String(t)) if t.eq_ignore_ascii_case("group") => Some(MemberKind::Group),
            Some(other) => {
                return Err(Invalid::value(format!(
                    "member type {} is neither \"User\" nor \"Group\"",
                    quoted(other)
                )));
            }
        };
        if seen.insert(value.clone()) {
            out.push(MemberInput { value, kind });
        }
    }
    Ok(out)
}

/// `ROLEGATE_PUBLIC_URL` + `/scim/v2`, without a trailing slash: the base of `meta.location`.
pub fn scim_base(public_url: &url::Url) -> String {
    format!("{}/scim/v2", public_url.as_str().trim_end_matches('/'))
}

pub fn location(base: &str, resource_type: ResourceType, id: uuid::Uuid) -> String {
    format!("{base}{}/{id}", resource_type.endpoint())
}

/// The weak entity tag of a version (RFC 7644 §3.14): `meta.version` and the `ETag` header.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version an `If-Match`/`If-None-Match` value names, if it names one of ours (`W/"3"`,
/// `"3"`); `*` is handled by the caller.
pub fn parse_etag(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    raw.trim_matches('"').parse().ok()
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn meta(
    resource_type: ResourceType,
    base: &str,
    id: uuid::Uuid,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    version: i64,
) -> Value {
    json!({
        "resourceType": resource_type.name(),
        "created": timestamp(created),
        "lastModified": timestamp(updated),
        "location": location(base, resource_type, id),
        "version": etag(version),
    })
}

/// A User's representation. `groups` is rendered when loaded (`Some`) and not empty.
pub fn render_user(
    schemas: &Schemas,
    user: &ScimUser,
    groups: Option<&[ScimUserGroup]>,
    base: &str,
) -> Value {
    let mut out = user.attributes.clone();
    let mut listed = vec![Value::from(USER_SCHEMA)];
    for extension in schemas.extensions(ResourceType::User) {
        if out.contains_key(extension.id) {
            listed.push(Value::from(extension.id));
        }
    }
    out.insert("schemas".into(), Value::Array(listed));
    out.insert("id".into(), json!(user.id));
    if let Some(external_id) = &user.external_id {
        out.insert("externalId".into(), json!(external_id));
    }
    out.insert("userName".into(), json!(user.user_name));
    if let Some(groups) = groups.filter(|g| !g.is_empty()) {
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "value": g.group_id,
                    "$ref": location(base, ResourceType::Group, g.group_id),
                    "display": g.display,
                    "type": if g.direct { "direct" } else { "indirect" },
                })
            })
            .collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    out.insert(
        "meta".into(),
        meta(
            ResourceType::User,
            base,
            user.id,
            user.created_at,
            user.updated_at,
            user.version,
        ),
    );
    Value::Object(out)
}

/// A Group's representation. `members` is rendered when loaded (`Some`), even if empty.
pub fn render_group(group: &ScimGroup, members: Option<&[GroupMember]>, base: &str) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([GROUP_SCHEMA]));
    out.insert("id".into(), json!(group.id));
    if let Some(external_id) = &group.external_id {
        out.insert("externalId".into(), json!(external_id));
    }
    out.insert("displayName".into(), json!(group.display_name));
    if let Some(members) = members {
        let members: Vec<Value> = members.iter().map(|m| render_member(m, base)).collect();
        out.insert("members".into(), Value::Array(members));
    }
    out.insert(
        "meta".into(),
        meta(
            ResourceType::Group,
            base,
            group.id,
            group.created_at,
            group.updated_at,
            group.version,
        ),
    );
    Value::Object(out)
}

/// A member as `value`, `$ref` and `type`. `display` is not rendered: it is the client's to send
/// (RFC 7643 §4.2), and a server-made one would not round-trip what the client wrote.
pub fn render_member(m: &GroupMember, base: &str) -> Value {
    let rt = match m.kind {
        MemberKind::User => ResourceType::User,
        MemberKind::Group => ResourceType::Group,
    };
    json!({
        "value": m.id,
        "$ref": location(base, rt, m.id),
        "type": rt.name(),
    })
}

pub fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// One entry of `attributes`/`excludedAttributes`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    /// The extension URN for an extension attribute (or a whole extension), `None` for core.
    container: Option<&'static str>,
    /// `None`: the whole extension.
    attr: Option<&'static str>,
    sub: Option<&'static str>,
}

/// `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    resource_type: ResourceType,
    /// URNs of the resource type's extensions under the service's schemas.
    extensions: Vec<&'static str>,
    attributes: Vec<Selector>,
    excluded: Vec<Selector>,
}

impl Projection {
    /// Parses the two comma-separated lists. Names are resolved like filter attributes
    /// (case-insensitive, optional URN prefix); names no schema defines select nothing.
    pub fn parse(
        schemas: &Schemas,
        resource_type: ResourceType,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, Invalid> {
        Ok(Projection {
            resource_type,
            extensions: schemas
                .extensions(resource_type)
                .iter()
                .map(|e| e.id)
                .collect(),
            attributes: selectors(schemas, resource_type, attributes)?,
            excluded: selectors(schemas, resource_type, excluded)?,
        })
    }

    /// Whether the core attribute `name` (e.g. `members`, `groups`) is returned at all, so the
    /// store can skip loading it.
    pub fn returns(&self, name: &str) -> bool {
        let names = |s: &Selector| s.container.is_none() && s.attr == Some(name);
        if !self.attributes.is_empty() {
            return self.attributes.iter().any(names);
        }
        !self.excluded.iter().any(|s| names(s) && s.sub.is_none())
    }

    /// Whether the stored document (everything but the columns) is needed at all.
    pub fn needs_document(&self, column_attributes: &[&str]) -> bool {
        if self.attributes.is_empty() {
            return true;
        }
        self.attributes
            .iter()
            .any(|s| s.container.is_some() || !column_attributes.iter().any(|c| Some(*c) == s.attr))
    }

    /// Shapes a representation of the resource type the projection was parsed for.
    pub fn apply(&self, resource: &mut Value) {
        let resource_type = self.resource_type;
        let Value::Object(object) = resource else {
            return;
        };
        if !self.attributes.is_empty() {
            let keep_all: Vec<String> = object.keys().cloned().collect();
            for key in keep_all {
                if always_returned(resource_type, &key) {
                    continue;
                }
                let is_extension = self
                    .extensions
                    .iter()
                    .any(|urn| urn.eq_ignore_ascii_case(&key));
                let wanted: Vec<&Selector> = self
                    .attributes
                    .iter()
                    .filter(|s| {
                        if is_extension {
                            s.container.is_some_and(|c| c.eq_ignore_ascii_case(&key))
                        } else {
                            s.container.is_none() && s.attr.is_some_and(|a| a == key)
                        }
                    })
                    .collect();
                if wanted.is_empty() {
                    object.remove(&key);
                    continue;
                }
                if is_extension {
                    if wanted.iter().any(|s| s.attr.is_none()) {
                        continue;
                    }
                    if let Some(Value::Object(ext)) = object.get_mut(&key) {
                        let names: Vec<String> = ext.keys().cloned().collect();
                        for name in names {
                            let subs: Vec<&Selector> = wanted
                                .iter()
                                .copied()
                                .filter(|s| s.attr == Some(name.as_str()))
                                .collect();
                            if subs.is_empty() {
                                ext.remove(&name);
                            } else if let Some(v) = ext.get_mut(&name) {
                                keep_subs(v, &subs);
                            }
                        }
                        if ext.is_empty() {
                            object.remove(&key);
                        }
                    }
                } else if let Some(v) = object.get_mut(&key) {
                    keep_subs(v, &wanted);
                }
            }
        }
        for s in &self.excluded {
            match (s.container, s.attr) {
                (Some(urn), None) => {
                    object.remove(urn);
                }
                (Some(urn), Some(attr)) => {
                    if let Some(Value::Object(ext)) = object.get_mut(urn) {
                        remove_selected(ext, attr, s.sub);
                        if ext.is_empty() {
                            object.remove(urn);
                        }
                    }
                }
                (None, Some(attr)) if !always_returned(resource_type, attr) => {
                    remove_selected(object, attr, s.sub);
                }
                _ => {}
            }
        }
        // `schemas` lists the extensions the representation still carries.
        let present: Vec<Value> = std::iter::once(resource_type.schema().id)
            .chain(
                self.extensions
                    .iter()
                    .copied()
                    .filter(|urn| object.contains_key(*urn)),
            )
            .map(Value::from)
            .collect();
        object.insert("schemas".into(), Value::Array(present));
    }
}

/// RFC 7643 §7 `returned: always`: id and schemas (and nothing of ours is `always` otherwise).
fn always_returned(resource_type: ResourceType, key: &str) -> bool {
    schema::COMMON_ATTRIBUTES
        .iter()
        .chain(resource_type.schema().attributes.iter())
        .any(|a| a.returned == Returned::Always && a.name == key)
}

/// Keeps, within a selected attribute's value, only the selected sub-attributes (all of them if
/// one selector names the whole attribute).
fn keep_subs(value: &mut Value, selectors: &[&Selector]) {
    if selectors.iter().any(|s| s.sub.is_none()) {
        return;
    }
    let subs: Vec<&str> = selectors.iter().filter_map(|s| s.sub).collect();
    let retain = |v: &mut Value| {
        if let Value::Object(o) = v {
            o.retain(|k, _| subs.iter().any(|s| s == k));
        }
    };
    match value {
        Value::Array(items) => {
            items.iter_mut().for_each(retain);
            items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
        }
        other => retain(other),
    }
}

fn remove_selected(object: &mut Map<String, Value>, attr: &str, sub: Option<&str>) {
    let Some(sub) = sub else {
        object.remove(attr);
        return;
    };
    let Some(value) = object.get_mut(attr) else {
        return;
    };
    match value {
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    o.remove(sub);
                }
            }
            items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
        }
        Value::Object(o) => {
            o.remove(sub);
        }
        _ => {}
    }
    if value.as_object().is_some_and(Map::is_empty) || value.as_array().is_some_and(Vec::is_empty) {
        object.remove(attr);
    }
}

fn selectors(
    schemas: &Schemas,
    resource_type: ResourceType,
    list: Option<&str>,
) -> Result<Vec<Selector>, Invalid> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(extension) = schemas
            .extensions(resource_type)
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(item))
        {
            out.push(Selector {
                container: Some(extension.id),
                attr: None,
                sub: None,
            });
            continue;
        }
        let path = filter::parse_path(item)
            .map_err(|e| Invalid::value(format!("attribute \"{item}\": {e}")))?;
        if path.filter.is_some() {
            return Err(Invalid::value(format!(
                "attribute \"{item}\": a filter is not allowed here"
            )));
        }
        match schemas.resolve_attribute(
            resource_type,
            path.attr.schema.as_deref(),
            &path.attr.name,
            path.attr.sub.as_deref(),
        ) {
            Ok(r) => out.push(Selector {
                container: r.extension.then_some(r.schema),
                attr: Some(r.attr.name),
                sub: r.sub.map(|s| s.name),
            }),
            Err(error) => tracing::debug!(%error, "attributes/excludedAttributes names nothing"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_proto::schema::ENTERPRISE_USER_SCHEMA;
    use crate::scim_proto::schema::Schemas;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn stored(input: Value) -> ScimUser {
        let w = user_input(&Schemas::default(), &input).expect("valid user");
        let at = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("time");
        ScimUser {
            id: Uuid::from_u128(7),
            user_name: w.user_name,
            external_id: w.external_id,
            active: w.active,
            attributes: w.attributes,
            created_at: at,
            updated_at: at,
            version: 3,
        }
    }

    #[test]
    fn input_is_canonicalised_names_empties_and_string_booleans() {
        let w = user_input(
            &Schemas::default(),
            &json!({
                "schemas": [USER_SCHEMA],
                "USERNAME": "  Ada@Example.com ",
                "Active": "False",
                "name": { "GIVENNAME": "Ada", "familyName": "", "middleName": null },
                "title": "",
                "emails": { "value": "ada@example.com", "type": "work", "primary": "true" },
                "phoneNumbers": [],
                "password": "placeholder",
                "groups": [{ "value": "x" }],
                "id": "ignored",
                "meta": { "resourceType": "User" },
                "nonsense": 1,
            }),
        )
        .expect("valid");
        assert_eq!(w.user_name, "Ada@Example.com");
        assert!(!w.active);
        assert_eq!(
            Value::Object(w.attributes.clone()),
            json!({
                "active": false,
                "name": { "givenName": "Ada" },
                "emails": [{ "value": "ada@example.com", "type": "work", "primary": true }],
            })
        );
        assert_eq!(w.email.as_deref(), Some("ada@example.com"));
        assert_eq!(w.display_name.as_deref(), Some("Ada"));
    }

    #[test]
    fn scim_1_bodies_are_refused_as_invalid_vers() {
        let e = user_input(
            &Schemas::default(),
            &json!({ "schemas": ["urn:scim:schemas:core:1.0"], "userName": "a" }),
        )
        .expect_err("SCIM 1.1");
        assert_eq!(e.scim_type, "invalidVers");
        let e =
            group_input(&json!({ "schemas": ["urn:scim:schemas:core:1.0"], "displayName": "g" }))
                .expect_err("SCIM 1.1");
        assert_eq!(e.scim_type, "invalidVers");
    }

    #[test]
    fn password_is_never_kept() {
        let w = user_input(
            &Schemas::default(),
            &json!({ "userName": "a", "password": "hunter2" }),
        )
        .expect("valid");
        assert!(
            !serde_json::to_string(&w.attributes)
                .expect("json")
                .contains("hunter2")
        );
    }

    #[test]
    fn entra_manager_as_bare_string_or_array_becomes_an_object() {
        for manager in [json!("m-1"), json!([{ "$ref": null, "value": "m-1" }])] {
            let w = user_input(
                &Schemas::default(),
                &json!({
                    "userName": "a",
                    ENTERPRISE_USER_SCHEMA: { "manager": manager, "department": 42 },
                }),
            )
            .expect("valid");
            assert_eq!(
                w.attributes[ENTERPRISE_USER_SCHEMA],
                json!({ "manager": { "value": "m-1" }, "department": "42" })
            );
        }
    }

    #[test]
    fn unknown_extension_schemas_are_ignored_not_refused() {
        let w = user_input(
            &Schemas::default(),
            &json!({
                "userName": "a",
                "urn:example:custom:2.0:User": { "badge": "7" },
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User": {},
            }),
        )
        .expect("valid");
        assert!(w.attributes.is_empty());
    }

    #[test]
    fn bad_values_are_invalid_value_naming_the_attribute() {
        for (input, needle) in [
            (json!({ "userName": "" }), "userName"),
            (json!({ "displayName": "x" }), "userName"),
            (json!({ "userName": "a", "active": "maybe" }), "active"),
            (json!({ "userName": "a", "name": "Ada" }), "name"),
            (json!({ "userName": "a", "title": ["a", "b"] }), "title"),
            (
                json!({ "userName": "a", "emails": [{ "primary": "yes" }] }),
                "emails.primary",
            ),
            (
                json!({ "userName": "a", "profileUrl": "not a url" }),
                "profileUrl",
            ),
            (
                json!({ "userName": "a", "x509Certificates": [{ "value": "***" }] }),
                "x509Certificates.value",
            ),
            (
                json!({ "userName": "a", "emails": [{ "value": "a@x", "primary": true }, { "value": "b@x", "primary": true }] }),
                "emails",
            ),
        ] {
            let e = user_input(&Schemas::default(), &input).expect_err("invalid");
            assert_eq!(e.scim_type, "invalidValue");
            assert!(e.detail.contains(needle), "{} lacks {needle}", e.detail);
        }
        assert_eq!(
            user_input(&Schemas::default(), &json!([]))
                .expect_err("array")
                .scim_type,
            "invalidSyntax"
        );
    }

    #[test]
    fn comparison_document_folds_only_case_insensitive_values() {
        let w = user_input(
            &Schemas::default(),
            &json!({
                "userName": "a",
                "displayName": "ÉLODIE",
                "emails": [{ "value": "E@X.ORG", "type": "Work" }],
                "x509Certificates": [{ "value": "TUlJQmFTRTY0" }],
            }),
        )
        .expect("valid");
        assert_eq!(
            w.attributes_cmp,
            json!({
                "displayName": "élodie",
                "emails": [{ "value": "e@x.org", "type": "work" }],
                "x509Certificates": [{ "value": "TUlJQmFTRTY0" }],
            })
        );
    }

    #[test]
    fn rendered_user_carries_meta_schemas_and_groups() {
        let user = stored(json!({
            "userName": "ada",
            "externalId": "ext-1",
            ENTERPRISE_USER_SCHEMA: { "department": "R&D" },
        }));
        let groups = [ScimUserGroup {
            group_id: Uuid::from_u128(9),
            display: "Eng".into(),
            direct: false,
        }];
        let out = render_user(
            &Schemas::default(),
            &user,
            Some(&groups),
            "https://h/scim/v2",
        );
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        assert_eq!(
            out["meta"]["location"],
            format!("https://h/scim/v2/Users/{}", user.id)
        );
        assert_eq!(out["meta"]["version"], "W/\"3\"");
        assert_eq!(out["meta"]["created"], "2026-01-02T03:04:05Z");
        assert_eq!(out["groups"][0]["type"], "indirect");
        assert!(out.get("active").is_none(), "unassigned stays unassigned");
        assert_eq!(out["externalId"], "ext-1");
    }

    #[test]
    fn projection_keeps_always_returned_and_selected_sub_attributes() {
        let user = stored(json!({
            "userName": "ada",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [{ "value": "a@x.org", "type": "work" }],
            ENTERPRISE_USER_SCHEMA: { "department": "R&D", "costCenter": "7" },
        }));
        let mut out = render_user(&Schemas::default(), &user, None, "b");
        Projection::parse(&Schemas::default(), ResourceType::User,
            Some("USERNAME, name.givenName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            None,
        )
        .expect("parse")
        .apply(&mut out);
        assert_eq!(
            out,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "id": user.id,
                "userName": "ada",
                "name": { "givenName": "Ada" },
                ENTERPRISE_USER_SCHEMA: { "department": "R&D" },
            })
        );
        let mut out = render_user(&Schemas::default(), &user, None, "b");
        Projection::parse(&Schemas::default(), ResourceType::User, None, Some("emails,id,name.familyName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"))
            .expect("parse")
            .apply(&mut out);
        assert!(out.get("emails").is_none());
        assert_eq!(out["id"], json!(user.id), "id is always returned");
        assert_eq!(out["name"], json!({ "givenName": "Ada" }));
        assert_eq!(out["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn projection_tells_the_store_what_to_skip() {
        let p = Projection::parse(
            &Schemas::default(),
            ResourceType::Group,
            None,
            Some("members"),
        )
        .expect("parse");
        assert!(!p.returns("members"));
        let p = Projection::parse(
            &Schemas::default(),
            ResourceType::Group,
            Some("displayName"),
            None,
        )
        .expect("parse");
        assert!(!p.returns("members"));
        let p =
            Projection::parse(&Schemas::default(), ResourceType::Group, None, None).expect("parse");
        assert!(p.returns("members"));
        let p = Projection::parse(
            &Schemas::default(),
            ResourceType::User,
            Some("userName,externalId"),
            None,
        )
        .expect("parse");
        assert!(!p.needs_document(&["userName", "id", "externalId", "meta"]));
        let p = Projection::parse(
            &Schemas::default(),
            ResourceType::User,
            Some("userName,active"),
            None,
        )
        .expect("parse");
        assert!(
            p.needs_document(&["userName", "id", "externalId", "meta"]),
            "active lives in the document"
        );
    }

    #[test]
    fn group_input_requires_a_display_name_and_reads_members() {
        let g = group_input(&json!({
            "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "displayName": "Eng",
            "members": [{ "value": "u1", "type": "user" }, { "value": "u1" }, { "value": "g1", "type": "Group", "$ref": null }],
        }))
        .expect("valid");
        assert_eq!(g.display_name, "Eng");
        let members = g.members.expect("members");
        assert_eq!(members.len(), 2, "duplicates collapse");
        assert_eq!(members[1].kind, Some(MemberKind::Group));
        assert_eq!(
            group_input(&json!({ "displayName": " " }))
                .expect_err("e")
                .scim_type,
            "invalidValue"
        );
        assert!(member_inputs(&json!([{ "display": "x" }])).is_err());
    }

    /// Found by fuzzing (tests/it/fuzz): a member `type` that is not a string was echoed whole
    /// into the error detail (and the provisioning error log), megabytes for a large value.
    #[test]
    fn a_bad_member_type_is_quoted_in_a_bounded_detail() {
        let e = member_inputs(&json!([{ "value": "u1", "type": ["x".repeat(100_000)] }]))
            .expect_err("an array is no member type");
        assert_eq!(e.scim_type, "invalidValue");
        assert!(
            e.detail.chars().count() < 200,
            "{} characters",
            e.detail.len()
        );
        assert!(e.detail.starts_with("member type [\"xxx"), "{}", e.detail);
        let e = member_inputs(&json!([{ "value": "u1", "type": 7 }])).expect_err("a number");
        assert_eq!(e.detail, "member type 7 is neither \"User\" nor \"Group\"");
    }

    #[test]
    fn value_keys_are_equal_and_hash_alike_exactly_when_the_values_are() {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let state = RandomState::new();
        let key = |v: Value| (state.hash_one(ValueKey(v.clone())), ValueKey(v));
        let same = [
            (json!(0.0), json!(-0.0)),
            (
                json!({ "a": 1, "b": [true, null] }),
                json!({ "b": [true, null], "a": 1 }),
            ),
        ];
        for (a, b) in same {
            assert_eq!(key(a), key(b));
        }
        for (a, b) in [
            (json!(1), json!(1.0)),
            (json!(-1), json!(18446744073709551615u64)),
            (json!("1"), json!(1)),
            (json!([1, 2]), json!([2, 1])),
        ] {
            assert_ne!(ValueKey(a), ValueKey(b));
        }
    }

    #[test]
    fn tens_of_thousands_of_values_keep_each_distinct_one_once_in_order() {
        let emails: Vec<Value> = (0..40_000)
            .map(|i| json!({ "value": format!("u{}@x.org", i % 25_000) }))
            .collect();
        let w = user_input(
            &Schemas::default(),
            &json!({ "userName": "a", "emails": emails }),
        )
        .expect("valid");
        let kept = w.attributes["emails"].as_array().expect("emails");
        assert_eq!(kept.len(), 25_000);
        assert_eq!(kept[24_999]["value"], "u24999@x.org");
        let members: Vec<Value> = (0..60_000)
            .map(|i| json!({ "value": format!("m{}", i % 50_000), "type": if i < 50_000 { "User" } else { "Group" } }))
            .collect();
        let m = member_inputs(&Value::Array(members)).expect("valid");
        assert_eq!(m.len(), 50_000);
        assert!(
            m.iter().all(|m| m.kind == Some(MemberKind::User)),
            "the first kept"
        );
    }

    #[test]
    fn etags_round_trip() {
        assert_eq!(parse_etag(&etag(12)), Some(12));
        assert_eq!(parse_etag("\"12\""), Some(12));
        assert_eq!(parse_etag("W/\"x\""), None);
    }
}
