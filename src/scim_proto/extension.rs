//! Operator-configured schema extensions (`ROLEGATE_SCIM_SCHEMA_EXTENSIONS`): a JSON file
//! listing extension schemas in the RFC 7643 §7 representation, each for Users or Groups.
//! Their attributes are then served under `/Schemas`, accepted, stored, returned, filtered and
//! PATCHed like the enterprise extension's; attributes of schemas nobody configured stay
//! ignored.
//!
//! ```json
//! [{ "resourceType": "User",
//!    "schema": { "id": "urn:example:params:scim:schemas:extension:acme:2.0:User",
//!                "name": "AcmeUser", "description": "Acme's attributes",
//!                "attributes": [{ "name": "badge", "type": "string" },
//!                               { "name": "clearance", "type": "integer" }] } }]
//! ```
//!
//! Definitions live for the whole process (they are leaked into `&'static`, once, at start-up),
//! which is what lets them sit beside the built-in schemas in every resolved filter and path.

use serde_json::{Map, Value};

use super::schema::{
    AttrType, AttributeDef, Mutability, ResourceSchema, ResourceType, Returned, Uniqueness,
};

/// Why the configuration cannot be used; the message names the schema and attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SCIM schema extensions: {0}")]
pub struct ExtensionError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, ExtensionError> {
    Err(ExtensionError(message.into()))
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Parses the configuration file's content.
pub fn parse(text: &str) -> Result<Vec<(ResourceType, &'static ResourceSchema)>, ExtensionError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ExtensionError(format!("not valid JSON: {e}")))?;
    let Value::Array(entries) = value else {
        return fail("the file must hold a JSON array of {\"resourceType\", \"schema\"} objects");
    };
    entries.iter().map(parse_entry).collect()
}

fn parse_entry(entry: &Value) -> Result<(ResourceType, &'static ResourceSchema), ExtensionError> {
    let Some(object) = entry.as_object() else {
        return fail("each entry must be an object");
    };
    let resource_type = match object.get("resourceType").and_then(Value::as_str) {
        None | Some("User") => ResourceType::User,
        Some("Group") => ResourceType::Group,
        Some(other) => {
            return fail(format!(
                "resourceType \"{other}\" is neither User nor Group"
            ));
        }
    };
    let Some(schema) = object.get("schema").and_then(Value::as_object) else {
        return fail("each entry needs a \"schema\" object");
    };
    Ok((resource_type, parse_schema(schema)?))
}

fn text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    context: &str,
) -> Result<Option<&'a str>, ExtensionError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => fail(format!("{context}: \"{key}\" must be a string")),
    }
}

fn flag(object: &Map<String, Value>, key: &str, context: &str) -> Result<bool, ExtensionError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => fail(format!("{context}: \"{key}\" must be true or false")),
    }
}

fn strings(
    object: &Map<String, Value>,
    key: &str,
    context: &str,
) -> Result<&'static [&'static str], ExtensionError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) => out.push(leak(s)),
                    None => return fail(format!("{context}: \"{key}\" must list strings")),
                }
            }
            Ok(Box::leak(out.into_boxed_slice()))
        }
        Some(_) => fail(format!("{context}: \"{key}\" must be an array")),
    }
}

fn parse_schema(object: &Map<String, Value>) -> Result<&'static ResourceSchema, ExtensionError> {
    let Some(id) = text(object, "id", "schema")? else {
        return fail("a schema needs an \"id\" (its URN)");
    };
    let valid_urn = id.len() > 4
        && id[..4].eq_ignore_ascii_case("urn:")
        && !id.ends_with(':')
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '[' && c != ']');
    if !valid_urn {
        return fail(format!(
            "schema id \"{id}\" must be a URN such as urn:example:…:2.0:User"
        ));
    }
    let context = format!("schema {id}");
    let name = text(object, "name", &context)?.unwrap_or(id);
    let description = text(object, "description", &context)?.unwrap_or("");
    let Some(Value::Array(attributes)) = object.get("attributes") else {
        return fail(format!("{context}: \"attributes\" must be an array"));
    };
    if attributes.is_empty() {
        return fail(format!("{context}: no attributes"));
    }
    let attributes = parse_attributes(attributes, &context, false)?;
    Ok(Box::leak(Box::new(ResourceSchema {
        id: leak(id),
        name: leak(name),
        description: leak(description),
        attributes,
    })))
}

fn parse_attributes(
    items: &[Value],
    context: &str,
    nested: bool,
) -> Result<&'static [AttributeDef], ExtensionError> {
    let mut out: Vec<AttributeDef> = Vec::with_capacity(items.len());
    for item in items {
        let Some(object) = item.as_object() else {
            return fail(format!("{context}: each attribute must be an object"));
        };
        let def = parse_attribute(object, context, nested)?;
        if out.iter().any(|d| d.name.eq_ignore_ascii_case(def.name)) {
            return fail(format!(
                "{context}: attribute \"{}\" is defined twice",
                def.name
            ));
        }
        out.push(def);
    }
    Ok(Box::leak(out.into_boxed_slice()))
}

/// RFC 7643 §2.1: `ATTRNAME = ALPHA *(nameChar)`, plus `$ref` for sub-attributes.
fn valid_name(name: &str, nested: bool) -> bool {
    if nested && name == "$ref" {
        return true;
    }
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_attribute(
    object: &Map<String, Value>,
    context: &str,
    nested: bool,
) -> Result<AttributeDef, ExtensionError> {
    let Some(name) = text(object, "name", context)? else {
        return fail(format!("{context}: an attribute needs a \"name\""));
    };
    if !valid_name(name, nested) {
        return fail(format!(
            "{context}: \"{name}\" is not a valid attribute name"
        ));
    }
    let here = format!("{context}, attribute {name}");
    let kind = match text(object, "type", &here)?.unwrap_or("string") {
        "string" => AttrType::String,
        "boolean" => AttrType::Boolean,
        "decimal" => AttrType::Decimal,
        "integer" => AttrType::Integer,
        "dateTime" => AttrType::DateTime,
        "binary" => AttrType::Binary,
        "reference" => AttrType::Reference,
        "complex" => AttrType::Complex,
        other => return fail(format!("{here}: unknown type \"{other}\"")),
    };
    let mutability = match text(object, "mutability", &here)?.unwrap_or("readWrite") {
        "readWrite" => Mutability::ReadWrite,
        "readOnly" => Mutability::ReadOnly,
        "immutable" => Mutability::Immutable,
        "writeOnly" => Mutability::WriteOnly,
        other => return fail(format!("{here}: unknown mutability \"{other}\"")),
    };
    let returned = match text(object, "returned", &here)?.unwrap_or("default") {
        "default" => Returned::Default,
        "always" => Returned::Always,
        "never" => Returned::Never,
        "request" => Returned::Request,
        other => return fail(format!("{here}: unknown returned \"{other}\"")),
    };
    let uniqueness = match text(object, "uniqueness", &here)?.unwrap_or("none") {
        "none" => Uniqueness::None,
        "server" => Uniqueness::Server,
        "global" => Uniqueness::Global,
        other => return fail(format!("{here}: unknown uniqueness \"{other}\"")),
    };
    let sub_attributes = match (kind, object.get("subAttributes")) {
        (AttrType::Complex, _) if nested => {
            return fail(format!(
                "{here}: sub-attributes cannot be complex (RFC 7643 §2.3.8)"
            ));
        }
        (AttrType::Complex, Some(Value::Array(items))) if !items.is_empty() => {
            parse_attributes(items, &here, true)?
        }
        (AttrType::Complex, _) => {
            return fail(format!("{here}: a complex attribute needs subAttributes"));
        }
        (_, None | Some(Value::Null)) => &[],
        (_, Some(_)) => {
            return fail(format!(
                "{here}: only complex attributes have subAttributes"
            ));
        }
    };
    let reference_types = strings(object, "referenceTypes", &here)?;
    Ok(AttributeDef {
        name: leak(name),
        kind,
        description: leak(text(object, "description", &here)?.unwrap_or("")),
        multi_valued: flag(object, "multiValued", &here)?,
        required: flag(object, "required", &here)?,
        case_exact: flag(object, "caseExact", &here)?,
        mutability,
        returned,
        uniqueness,
        canonical_values: strings(object, "canonicalValues", &here)?,
        reference_types: if kind == AttrType::Reference && reference_types.is_empty() {
            &["external"]
        } else {
            reference_types
        },
        sub_attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_configured_extension_parses_into_schema_definitions() {
        let parsed = parse(
            &json!([{
                "resourceType": "User",
                "schema": {
                    "id": "urn:example:acme:2.0:User",
                    "name": "AcmeUser",
                    "attributes": [
                        { "name": "badge", "type": "string", "caseExact": true },
                        { "name": "clearance", "type": "integer" },
                        { "name": "sites", "type": "complex", "multiValued": true,
                          "subAttributes": [{ "name": "value", "type": "string" }, { "name": "primary", "type": "boolean" }] }
                    ]
                }
            }])
            .to_string(),
        )
        .expect("valid");
        let (rt, schema) = parsed[0];
        assert_eq!(rt, ResourceType::User);
        assert_eq!(schema.id, "urn:example:acme:2.0:User");
        assert!(schema.attribute("BADGE").expect("badge").case_exact);
        assert_eq!(
            schema.attribute("clearance").expect("c").kind,
            AttrType::Integer
        );
        let sites = schema.attribute("sites").expect("sites");
        assert!(sites.multi_valued && sites.sub_attribute("primary").is_some());
        // It renders as an RFC 7643 §7 schema.
        assert_eq!(schema.to_scim_json()["attributes"][0]["caseExact"], true);
    }

    #[test]
    fn bad_configurations_are_refused_with_a_message_naming_the_problem() {
        for (config, needle) in [
            (json!({}), "array"),
            (
                json!([{ "schema": { "id": "acme", "attributes": [{ "name": "a" }] } }]),
                "URN",
            ),
            (
                json!([{ "schema": { "id": "urn:a:b", "attributes": [] } }]),
                "no attributes",
            ),
            (
                json!([{ "schema": { "id": "urn:a:b", "attributes": [{ "name": "9x" }] } }]),
                "9x",
            ),
            (
                json!([{ "schema": { "id": "urn:a:b", "attributes": [{ "name": "a" }, { "name": "A" }] } }]),
                "twice",
            ),
            (
                json!([{ "schema": { "id": "urn:a:b", "attributes": [{ "name": "a", "type": "text" }] } }]),
                "text",
            ),
            (
                json!([{ "schema": { "id": "urn:a:b", "attributes": [{ "name": "a", "type": "complex" }] } }]),
                "subAttributes",
            ),
            (
                json!([{ "resourceType": "Device", "schema": {} }]),
                "Device",
            ),
        ] {
            let error = parse(&config.to_string()).expect_err("invalid").to_string();
            assert!(error.contains(needle), "{error} lacks {needle}");
        }
    }
}
