//! The PATCH engine (RFC 7644 §3.5.2), pure: parse a PatchOp request, then apply its operations
//! to a resource's JSON representation as the server renders it — core attributes at the top
//! level under their canonical names, extension attributes under their schema URN key, plus
//! `id`, `schemas` and `meta`.
//!
//! What the engine owns: the operations' semantics, mutability (RFC 7643 §2.2) and the quirks of
//! the two identity providers we serve. What it leaves to the normalizer that re-validates the
//! result exactly as for a PUT: types (Entra's `"False"` stays a string here), dropping empty,
//! read-only and unknown values, the bare-string `manager`, required attributes.
//!
//! `apply` is all-or-nothing (RFC 7644 §3.5.2: "the service provider … SHALL NOT apply any of
//! the operations" when one fails): it works on a copy and assigns it only when every operation
//! succeeded.
//!
//! Identity-provider behaviour handled here, with its source:
//! - Okta (developer.okta.com, "SCIM 2.0 protocol reference"): path-less replaces such as
//!   `{"op":"replace","value":{"active":false}}`, and on Groups
//!   `{"op":"replace","value":{"id":"<same id>","displayName":"…"}}`, which echo the unchanged
//!   `id`; `add`/`remove` on `members` and `members[value eq "…"]`.
//! - Entra ID (Microsoft Learn, "Known issues and resolutions with SCIM 2.0 protocol compliance
//!   of the Microsoft Entra user provisioning service", and its SCIM endpoint tutorial):
//!   capitalised `"Add"`/`"Replace"`/`"Remove"`; removal of listed members with
//!   `{"op":"Remove","path":"members","value":[{"value":"…"}]}`; path-less values keyed by
//!   dotted or URN-qualified paths (`name.givenName`, `urn:…:enterprise:2.0:User:department`);
//!   `manager` as a bare id or as an array of one `[{"$ref":null,"value":"…"}]`; and a filtered
//!   add or replace (`emails[type eq "work"].value`) that expects the missing element created.
//!
//! Group membership can be huge, so the Group handler first splits member changes off with
//! [`split_group_member_ops`] and applies them in the store without loading every member.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use serde_json::{Map, Value};

use super::eval;
use super::filter::{self, CompareOp, PatchPath, ResolvedFilter, ResolvedValue};
use super::resource::{ValueKey, hash_value};
use super::schema::{
    self, AttrType, AttributeDef, GROUP_SCHEMA, Mutability, ResourceSchema, ResourceType, Schemas,
};

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Most operations accepted in one request. The body size limit already bounds the work; this
/// keeps a pathological request of tiny operations from multiplying it.
pub const MAX_OPERATIONS: usize = 1000;

/// Most bytes of JSON one operation may copy beyond its own value. A value written into every
/// element (`emails.display`) or every element a filter selects (`emails[type eq
/// "work"].display`) is copied once per element: unbounded, a 2 MB value written into a user's
/// thousands of e-mail addresses would ask for gigabytes. Identity providers write short values
/// into a few elements; with [`MAX_OPERATIONS`] operations a request copies at most 16 MiB.
pub const MAX_COPIED_BYTES: usize = 16 * 1024;

// RFC 7644 §3.12, Table 9.
const INVALID_SYNTAX: &str = "invalidSyntax";
const INVALID_VALUE: &str = "invalidValue";
const INVALID_PATH: &str = "invalidPath";
const NO_TARGET: &str = "noTarget";
const MUTABILITY: &str = "mutability";

/// Longest piece of client input quoted back in an error detail, in characters.
const QUOTE_MAX: usize = 120;

static NULL: Value = Value::Null;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Remove => "remove",
        }
    }

    /// RFC 7644 §3.5.2 spells them in lower case; Entra ID sends "Add", "Replace", "Remove".
    fn parse(word: &str) -> Option<Op> {
        [Op::Add, Op::Replace, Op::Remove]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation of a PatchOp request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: Op,
    pub path: Option<PatchPath>,
    /// Present for every add and replace that came through [`parse_request`].
    pub value: Option<Value>,
}

/// Why a PATCH request cannot be applied. Always an HTTP 400 with this `scimType`
/// (RFC 7644 §3.12); `detail` is safe to show the client and names the operation (1-based)
/// and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    pub scim_type: &'static str,
    pub detail: String,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.scim_type)
    }
}

impl std::error::Error for PatchError {}

/// A failure inside one operation, before it is placed in the request.
#[derive(Debug)]
struct Fault {
    scim_type: &'static str,
    message: String,
}

impl Fault {
    fn new(scim_type: &'static str, message: impl Into<String>) -> Self {
        Fault {
            scim_type,
            message: message.into(),
        }
    }

    /// Narrows the message to the part of the operation it concerns.
    fn within(self, what: &str) -> Self {
        Fault {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }

    fn at(self, index: usize, op: Option<Op>, path: Option<&str>) -> PatchError {
        let operation = match (op, path) {
            (Some(op), Some(path)) => format!("operation {index} ({op} {})", quote(path)),
            (Some(op), None) => format!("operation {index} ({op} without a path)"),
            (None, _) => format!("operation {index}"),
        };
        PatchError {
            scim_type: self.scim_type,
            detail: format!("{operation}: {}", self.message),
        }
    }
}

fn request_error(scim_type: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError {
        scim_type,
        detail: detail.into(),
    }
}

/// Client input fit to be echoed: bounded, without control characters.
fn quote(input: &str) -> String {
    let mut out: String = input
        .chars()
        .take(QUOTE_MAX)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if input.chars().nth(QUOTE_MAX).is_some() {
        out.push('…');
    }
    out
}

/// An object member by exact name, else case-insensitively (RFC 7643 §2.1).
fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

// ---------------------------------------------------------------------------------------------
// Parsing the request (RFC 7644 §3.5.2).

/// Reads a PatchOp request body. Member names (`Operations`, `op`, `path`, `value`) and op
/// names match case-insensitively; a missing `schemas` is tolerated, a wrong one is not.
pub fn parse_request(body: &Value) -> Result<Vec<PatchOperation>, PatchError> {
    let object = body.as_object().ok_or_else(|| {
        request_error(INVALID_SYNTAX, "a PATCH request body must be a JSON object")
    })?;
    if let Some(schemas) = get_ci(object, "schemas") {
        let declares_patch_op = schemas.as_array().is_some_and(|urns| {
            urns.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            })
        });
        if !declares_patch_op {
            return Err(request_error(
                INVALID_SYNTAX,
                format!("\"schemas\" must be an array containing \"{PATCH_OP_SCHEMA}\""),
            ));
        }
    }
    let operations = get_ci(object, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            request_error(
                INVALID_SYNTAX,
                "a PATCH request needs \"Operations\": an array of operations (RFC 7644 §3.5.2)",
            )
        })?;
    if operations.is_empty() {
        return Err(request_error(
            INVALID_SYNTAX,
            "\"Operations\" is empty; a PATCH request needs at least one operation",
        ));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(request_error(
            INVALID_VALUE,
            format!(
                "a PATCH request may carry at most {MAX_OPERATIONS} operations, this one has {}",
                operations.len()
            ),
        ));
    }
    operations
        .iter()
        .enumerate()
        .map(|(i, raw)| parse_operation(i + 1, raw))
        .collect()
}

fn parse_operation(index: usize, raw: &Value) -> Result<PatchOperation, PatchError> {
    let object = raw.as_object().ok_or_else(|| {
        Fault::new(INVALID_SYNTAX, "an operation must be a JSON object").at(index, None, None)
    })?;
    let op_member = get_ci(object, "op");
    let Some(op) = op_member.and_then(Value::as_str).and_then(Op::parse) else {
        let message = match op_member {
            None => "\"op\" is missing; expected add, replace or remove".to_string(),
            Some(Value::String(word)) => format!(
                "unknown op \"{}\"; expected add, replace or remove",
                quote(word)
            ),
            Some(_) => "\"op\" must be a string: add, replace or remove".to_string(),
        };
        return Err(Fault::new(INVALID_SYNTAX, message).at(index, None, None));
    };
    let path = match get_ci(object, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(filter::parse_path(text).map_err(|e| {
            Fault::new(INVALID_PATH, e.to_string()).at(index, Some(op), Some(text))
        })?),
        Some(_) => {
            return Err(Fault::new(INVALID_PATH, "\"path\" must be a string").at(
                index,
                Some(op),
                None,
            ));
        }
    };
    let value = get_ci(object, "value").cloned();
    if value.is_none() && op != Op::Remove {
        let shown = path.as_ref().map(ToString::to_string);
        return Err(Fault::new(
            INVALID_VALUE,
            format!("\"value\" is required for {op} (RFC 7644 §3.5.2.1, §3.5.2.3)"),
        )
        .at(index, Some(op), shown.as_deref()));
    }
    Ok(PatchOperation { op, path, value })
}

// ---------------------------------------------------------------------------------------------
// Applying operations.

/// Applies `ops` in order to `resource` (RFC 7644 §3.5.2). On error `resource` is left exactly
/// as it was: the operations run on a copy that replaces it only when all of them succeed.
///
/// Operations under a schema URN the resource type does not have are skipped: an identity
/// provider configured with custom extensions must not be refused everything else.
pub fn apply(
    schemas: &Schemas,
    resource_type: ResourceType,
    resource: &mut Value,
    ops: &[PatchOperation],
) -> Result<(), PatchError> {
    let mut working = resource.clone();
    for (i, operation) in ops.iter().enumerate() {
        apply_operation(schemas, resource_type, &mut working, operation).map_err(|fault| {
            let shown = operation.path.as_ref().map(ToString::to_string);
            fault.at(i + 1, Some(operation.op), shown.as_deref())
        })?;
    }
    *resource = working;
    Ok(())
}

fn apply_operation(
    schemas: &Schemas,
    rt: ResourceType,
    resource: &mut Value,
    operation: &PatchOperation,
) -> Result<(), Fault> {
    let value = operation.value.as_ref();
    let required = || {
        value.ok_or_else(|| {
            Fault::new(
                INVALID_VALUE,
                format!("\"value\" is required for {}", operation.op),
            )
        })
    };
    match (&operation.path, operation.op) {
        (None, Op::Remove) => Err(Fault::new(
            NO_TARGET,
            "remove needs a \"path\" naming what to remove (RFC 7644 §3.5.2.2)",
        )),
        (None, op) => apply_attributes(schemas, rt, resource, op, required()?, None),
        (Some(path), Op::Remove) => apply_at(schemas, rt, resource, Op::Remove, path, value),
        (Some(path), op) => apply_at(schemas, rt, resource, op, path, Some(required()?)),
    }
}

/// The resource type's schema called `urn`, core first (URNs are case-insensitive, RFC 8141).
fn schema_of(schemas: &Schemas, rt: ResourceType, urn: &str) -> Option<&'static ResourceSchema> {
    std::iter::once(rt.schema())
        .chain(schemas.extensions(rt).iter().copied())
        .find(|s| s.id.eq_ignore_ascii_case(urn))
}

/// A path-less add or replace (RFC 7644 §3.5.2.1, §3.5.2.3): every member of the value object
/// is applied as if its name were the path. `scope` is the schema whose URN keyed the object
/// being read (`{"urn:…:enterprise:2.0:User": {"department": …}}`).
fn apply_attributes(
    schemas: &Schemas,
    rt: ResourceType,
    resource: &mut Value,
    op: Op,
    value: &Value,
    scope: Option<&'static ResourceSchema>,
) -> Result<(), Fault> {
    let Value::Object(attributes) = value else {
        return Err(Fault::new(
            INVALID_VALUE,
            "without a path, \"value\" must be an object of the attributes to set \
             (RFC 7644 §3.5.2.1)",
        ));
    };
    let in_core = scope.is_none_or(|s| s.id == rt.schema().id);
    for (key, member) in attributes {
        let within = |fault: Fault| fault.within(&format!("attribute \"{}\"", quote(key)));
        // An extension's object may carry its own `schemas` (scim2-tester sends one): it names
        // the schema the object already is under, and is no attribute of it.
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if in_core {
            // Server-maintained (RFC 7643 §3); Okta echoes them back in path-less replaces.
            if key.eq_ignore_ascii_case("schemas") || key.eq_ignore_ascii_case("meta") {
                continue;
            }
            if key.eq_ignore_ascii_case("id") {
                let current = resource.as_object().and_then(|r| get_ci(r, "id"));
                if current == Some(member) {
                    continue;
                }
                return Err(within(Fault::new(
                    MUTABILITY,
                    "id is assigned by the service provider and cannot be changed \
                     (RFC 7643 §3.1)",
                )));
            }
        }
        if scope.is_none()
            && let Some(schema) = schema_of(schemas, rt, key)
        {
            apply_attributes(schemas, rt, resource, op, member, Some(schema)).map_err(within)?;
            continue;
        }
        let mut path =
            filter::parse_path(key).map_err(|e| within(Fault::new(INVALID_PATH, e.to_string())))?;
        if let Some(schema) = scope
            && path.attr.schema.is_none()
        {
            path.attr.schema = Some(schema.id.to_string());
        }
        apply_at(schemas, rt, resource, op, &path, Some(member)).map_err(within)?;
    }
    Ok(())
}

fn apply_at(
    schemas: &Schemas,
    rt: ResourceType,
    resource: &mut Value,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), Fault> {
    if let Some(urn) = &path.attr.schema {
        // The path parser reads `urn:…:enterprise:2.0:User` as attribute `User` of schema
        // `urn:…:enterprise:2.0`; as a whole it names the extension itself.
        if path.filter.is_none() && path.attr.sub.is_none() {
            let whole = format!("{urn}:{}", path.attr.name);
            if let Some(schema) = schema_of(schemas, rt, &whole) {
                return apply_to_schema(schemas, rt, resource, op, schema, value);
            }
        }
        if schema_of(schemas, rt, urn).is_none() {
            tracing::debug!(
                schema = %quote(urn),
                resource_type = rt.name(),
                "PATCH operation under a schema this resource type does not have: ignored"
            );
            return Ok(());
        }
    }
    let resolved =
        filter::resolve_path(schemas, path, rt).map_err(|e| Fault::new(INVALID_PATH, e.message))?;
    let target = Target::from_resolved(resolved);
    check_mutability(op, &target)?;
    let value = value.unwrap_or(&NULL);
    match op {
        Op::Add => add(resource, &target, value),
        Op::Replace => replace(resource, &target, value),
        Op::Remove => remove(resource, &target, value),
    }
}

/// An operation whose path is a schema URN: its value holds that schema's attributes.
fn apply_to_schema(
    schemas: &Schemas,
    rt: ResourceType,
    resource: &mut Value,
    op: Op,
    schema: &'static ResourceSchema,
    value: Option<&Value>,
) -> Result<(), Fault> {
    if op != Op::Remove {
        return apply_attributes(
            schemas,
            rt,
            resource,
            op,
            value.unwrap_or(&NULL),
            Some(schema),
        );
    }
    if schema.id == rt.schema().id {
        return Err(Fault::new(
            INVALID_PATH,
            "the core schema cannot be removed; remove its attributes one by one",
        ));
    }
    let root = object_mut(resource)?;
    canonicalize_key(root, schema.id);
    root.remove(schema.id);
    undeclare_schema(root, schema.id);
    Ok(())
}

/// Where an operation points, resolved against the schemas.
struct Target {
    attr: &'static AttributeDef,
    /// The URN key holding the attribute when it belongs to an extension.
    extension: Option<&'static str>,
    filter: Option<ResolvedFilter>,
    /// `givenName` of `name.givenName`, or the sub-attribute after a value filter
    /// (`emails[type eq "work"].value`); the grammar allows one or the other, not both.
    sub: Option<&'static AttributeDef>,
}

impl Target {
    fn from_resolved(resolved: filter::ResolvedPath) -> Self {
        Target {
            attr: resolved.attr.attr,
            extension: resolved.attr.extension.then_some(resolved.attr.schema),
            filter: resolved.filter,
            sub: resolved.attr.sub.or(resolved.sub),
        }
    }

    fn name(&self) -> String {
        match self.sub {
            Some(sub) => format!("{}.{}", self.attr.name, sub.name),
            None => self.attr.name.to_string(),
        }
    }
}

/// RFC 7644 §3.5.2: "a client MUST NOT modify an attribute that has mutability "readOnly" or
/// "immutable". However, a client MAY "add" a value to an "immutable" attribute if the
/// attribute had no previous value." An add onto an immutable value is checked where it lands.
fn check_mutability(op: Op, target: &Target) -> Result<(), Fault> {
    let defs = || std::iter::once(target.attr).chain(target.sub);
    if defs().any(|d| d.mutability == Mutability::ReadOnly) {
        return Err(Fault::new(
            MUTABILITY,
            format!(
                "\"{}\" is readOnly: the service provider maintains it (RFC 7643 §2.2)",
                target.name()
            ),
        ));
    }
    if op != Op::Add && defs().any(|d| d.mutability == Mutability::Immutable) {
        return Err(Fault::new(
            MUTABILITY,
            format!(
                "\"{}\" is immutable: it may be added where it has no value, never replaced or \
                 removed (RFC 7643 §2.2)",
                target.name()
            ),
        ));
    }
    Ok(())
}

// ---- add (RFC 7644 §3.5.2.1) and replace (§3.5.2.3) ---------------------------------------------

fn add(resource: &mut Value, target: &Target, value: &Value) -> Result<(), Fault> {
    if let Some(filter) = &target.filter {
        return set_where(resource, target, filter, value);
    }
    match (target.attr.multi_valued, target.sub) {
        // "If the target location specifies a multi-valued attribute, a new value is added to
        // the attribute" — one already there is not added twice.
        (true, None) => {
            let incoming = incoming_elements(target.attr, value);
            if incoming.is_empty() {
                return Ok(());
            }
            let mut elements = Elements::new(target.attr, into_elements(take(resource, target)));
            let mut touched = Vec::new();
            for element in incoming.into_iter().filter(carries_a_value) {
                if !elements.holds(&element) {
                    touched.push(elements.push(element));
                }
            }
            let mut list = elements.into_list();
            settle_primary(target.attr, &mut list, &touched);
            put_elements(resource, target, list)
        }
        (true, Some(sub)) => set_on_every(resource, target, sub, value),
        (false, Some(sub)) => set_sub_of_single(resource, target, sub, value),
        (false, None) if target.attr.kind == AttrType::Complex => {
            set_complex(resource, target, value)
        }
        (false, None) => set_simple(resource, target, value),
    }
}

fn replace(resource: &mut Value, target: &Target, value: &Value) -> Result<(), Fault> {
    if let Some(filter) = &target.filter {
        return set_where(resource, target, filter, value);
    }
    match (target.attr.multi_valued, target.sub) {
        // "If the target location is a multi-valued attribute and no filter is specified, the
        // attribute and all values are replaced."
        (true, None) => {
            let mut elements = Elements::new(target.attr, Vec::new());
            for element in incoming_elements(target.attr, value)
                .into_iter()
                .filter(carries_a_value)
            {
                if !elements.holds(&element) {
                    elements.push(element);
                }
            }
            let mut list = elements.into_list();
            take(resource, target);
            let touched: Vec<usize> = (0..list.len()).collect();
            settle_primary(target.attr, &mut list, &touched);
            put_elements(resource, target, list)
        }
        (true, Some(sub)) => set_on_every(resource, target, sub, value),
        (false, Some(sub)) => set_sub_of_single(resource, target, sub, value),
        // "…which replaces any existing values or adds where an attribute did not previously
        // exist. Sub-attributes that are not specified in the value parameter are left
        // unchanged."
        (false, None) if target.attr.kind == AttrType::Complex => {
            set_complex(resource, target, value)
        }
        (false, None) => set_simple(resource, target, value),
    }
}

/// A single complex attribute (`name`, `manager`): an object's sub-attributes are merged in;
/// anything else is set as given, for the normalizer to read (a bare id as the manager).
fn set_complex(resource: &mut Value, target: &Target, value: &Value) -> Result<(), Fault> {
    match single_value(&target.name(), value)? {
        Value::Object(given) => {
            let given = canonical_members(target.attr, given);
            let mut current = match take(resource, target) {
                Some(Value::Object(current)) => current,
                _ => Map::new(),
            };
            merge(&mut current, target.attr, given)?;
            put(resource, target, Value::Object(current))
        }
        other => put(resource, target, other),
    }
}

fn set_simple(resource: &mut Value, target: &Target, value: &Value) -> Result<(), Fault> {
    let value = single_value(&target.name(), value)?;
    let current = take(resource, target);
    if target.attr.mutability == Mutability::Immutable
        && current
            .as_ref()
            .is_some_and(|c| !c.is_null() && *c != value)
    {
        return Err(already_set(&target.name()));
    }
    put(resource, target, value)
}

/// `name.givenName`, `urn:…:User:manager.value`: the parent object is created when absent.
fn set_sub_of_single(
    resource: &mut Value,
    target: &Target,
    sub: &'static AttributeDef,
    value: &Value,
) -> Result<(), Fault> {
    let value = single_value(&target.name(), value)?;
    let mut current = match take(resource, target) {
        Some(Value::Object(current)) => current,
        _ => Map::new(),
    };
    set_field(&mut current, target.attr, sub.name, Some(sub), value)?;
    put(resource, target, Value::Object(current))
}

/// `emails.type` without a filter designates that sub-attribute in every element.
fn set_on_every(
    resource: &mut Value,
    target: &Target,
    sub: &'static AttributeDef,
    value: &Value,
) -> Result<(), Fault> {
    let write = Write::Sub(sub, single_value(&target.name(), value)?);
    let mut list = into_elements(take(resource, target));
    write.check_copies(list.len(), target)?;
    for element in &mut list {
        write.apply(target.attr, element)?;
    }
    let touched: Vec<usize> = (0..list.len()).collect();
    settle_primary(target.attr, &mut list, &touched);
    put_elements(resource, target, list)
}

/// What a filtered add or replace writes into each selected element.
enum Write {
    Sub(&'static AttributeDef, Value),
    Merge(Map<String, Value>),
}

impl Write {
    fn apply(&self, attr: &'static AttributeDef, element: &mut Value) -> Result<(), Fault> {
        with_object(attr, element, |object| match self {
            Write::Sub(sub, value) => set_field(object, attr, sub.name, Some(sub), value.clone()),
            Write::Merge(given) => merge(object, attr, given.clone()),
        })
    }

    /// What each element the write is applied to grows by, at most: its members as JSON.
    fn size(&self) -> usize {
        match self {
            Write::Sub(sub, value) => sub.name.len() + json_len(value),
            Write::Merge(given) => given.iter().map(|(k, v)| k.len() + json_len(v)).sum(),
        }
    }

    /// Refuses to write into `elements` elements when the copies beyond the first (which is
    /// the operation's own value) would exceed [`MAX_COPIED_BYTES`].
    fn check_copies(&self, elements: usize, target: &Target) -> Result<(), Fault> {
        let copied = elements.saturating_sub(1).saturating_mul(self.size());
        if copied <= MAX_COPIED_BYTES {
            return Ok(());
        }
        Err(Fault::new(
            INVALID_VALUE,
            format!(
                "writing this value into {elements} values of \"{}\" would copy {copied} bytes; \
                 one operation may copy at most {MAX_COPIED_BYTES} (write a shorter value or \
                 select fewer values)",
                target.name()
            ),
        ))
    }
}

/// The length of `value` as JSON text, counted without building the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A `Value` always serializes; were it not to, count it as too large to copy.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// A filtered add or replace: every element the filter selects gets the write. RFC 7644
/// §3.5.2.1/§3.5.2.3 answer `noTarget` when none matches; Entra ID instead expects the element
/// the filter describes to be created (`emails[type eq "work"].value` on a user without a work
/// e-mail), which is only well defined when the filter is a conjunction of `eq` comparisons.
fn set_where(
    resource: &mut Value,
    target: &Target,
    filter: &ResolvedFilter,
    value: &Value,
) -> Result<(), Fault> {
    let write = match target.sub {
        Some(sub) => Write::Sub(sub, single_value(&target.name(), value)?),
        None => match single_value(target.attr.name, value)? {
            Value::Object(given) => Write::Merge(canonical_members(target.attr, given)),
            _ => {
                return Err(Fault::new(
                    INVALID_VALUE,
                    format!(
                        "a value filter selects elements of \"{}\"; give an object of their \
                         sub-attributes",
                        target.attr.name
                    ),
                ));
            }
        },
    };
    let single = !target.attr.multi_valued;
    let mut list = if single {
        take(resource, target).into_iter().collect()
    } else {
        into_elements(take(resource, target))
    };
    // Selected first, so that a write into too many elements is refused before it is made.
    let mut touched: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, element)| eval::matches_element(filter, element))
        .map(|(i, _)| i)
        .collect();
    write.check_copies(touched.len(), target)?;
    for (i, element) in list.iter_mut().enumerate() {
        if touched.binary_search(&i).is_ok() {
            write.apply(target.attr, element)?;
        }
    }
    if touched.is_empty() {
        let seed = if single {
            None
        } else {
            element_from_filter(filter)
        };
        let Some(seed) = seed else {
            return Err(Fault::new(
                NO_TARGET,
                format!(
                    "no value of \"{}\" matches the filter (RFC 7644 §3.5.2)",
                    target.attr.name
                ),
            ));
        };
        let mut element = Value::Object(seed);
        write.apply(target.attr, &mut element)?;
        list.push(element);
        touched.push(list.len() - 1);
    }
    settle_primary(target.attr, &mut list, &touched);
    if single {
        match list.pop() {
            Some(value) => put(resource, target, value),
            None => Ok(()),
        }
    } else {
        put_elements(resource, target, list)
    }
}

/// The element a conjunction of `eq` comparisons describes (`type eq "work" and primary eq
/// true` → `{"type":"work","primary":true}`); `None` for any other filter, or one that
/// contradicts itself.
fn element_from_filter(filter: &ResolvedFilter) -> Option<Map<String, Value>> {
    fn seed(filter: &ResolvedFilter, element: &mut Map<String, Value>) -> bool {
        match filter {
            ResolvedFilter::And(a, b) => seed(a, element) && seed(b, element),
            ResolvedFilter::Compare {
                attr,
                op: CompareOp::Eq,
                value,
            } => {
                let (Some(sub), Some(literal)) = (attr.sub, literal(value)) else {
                    return false;
                };
                match element.get(sub.name) {
                    Some(existing) => *existing == literal,
                    None => {
                        element.insert(sub.name.to_string(), literal);
                        true
                    }
                }
            }
            _ => false,
        }
    }
    let mut element = Map::new();
    seed(filter, &mut element).then_some(element)
}

/// A comparison operand as the JSON value it compares equal to; `eq null` describes absence.
fn literal(value: &ResolvedValue) -> Option<Value> {
    match value {
        ResolvedValue::Null => None,
        ResolvedValue::Bool(b) => Some(Value::Bool(*b)),
        ResolvedValue::Number { text, .. } => serde_json::from_str::<serde_json::Number>(text)
            .ok()
            .map(Value::Number),
        ResolvedValue::Str(s) => Some(Value::String(s.clone())),
        ResolvedValue::DateTime { text, .. } => Some(Value::String(text.clone())),
    }
}

// ---- remove (RFC 7644 §3.5.2.2) -------------------------------------------------------------

fn remove(resource: &mut Value, target: &Target, value: &Value) -> Result<(), Fault> {
    if let Some(filter) = &target.filter {
        return remove_where(resource, target, filter);
    }
    match (target.attr.multi_valued, target.sub) {
        // Entra ID: `{"op":"Remove","path":"members","value":[{"value":"…"}]}` removes the
        // listed values only.
        (true, None) if !value.is_null() => {
            let listed = Listed::new(target.attr, incoming_elements(target.attr, value));
            let mut list = into_elements(take(resource, target));
            list.retain(|element| !listed.names(element));
            put_elements(resource, target, list)
        }
        // "If the target location is a single-value attribute, the attribute and its associated
        // value is removed"; for a multi-valued one "all values … SHALL be removed".
        (_, None) => {
            take(resource, target);
            Ok(())
        }
        (true, Some(sub)) => {
            let mut list = into_elements(take(resource, target));
            for element in &mut list {
                if let Value::Object(object) = element {
                    remove_key(object, sub.name);
                }
            }
            list.retain(|element| !is_empty_object(element));
            put_elements(resource, target, list)
        }
        (false, Some(sub)) => match take(resource, target) {
            Some(Value::Object(mut object)) => {
                remove_key(&mut object, sub.name);
                if object.is_empty() {
                    Ok(())
                } else {
                    put(resource, target, Value::Object(object))
                }
            }
            // Not an object, so it has no sub-attribute to remove.
            Some(other) => put(resource, target, other),
            None => Ok(()),
        },
    }
}

/// Removes the selected elements, or their sub-attribute. Selecting nothing is not an error:
/// what was to be removed is absent.
fn remove_where(
    resource: &mut Value,
    target: &Target,
    filter: &ResolvedFilter,
) -> Result<(), Fault> {
    let strip = |element: &mut Value| {
        if let (Some(sub), Value::Object(object)) = (target.sub, element) {
            remove_key(object, sub.name);
        }
    };
    if !target.attr.multi_valued {
        return match take(resource, target) {
            Some(mut value) if eval::matches_element(filter, &value) => {
                if target.sub.is_none() {
                    return Ok(());
                }
                strip(&mut value);
                if is_empty_object(&value) {
                    Ok(())
                } else {
                    put(resource, target, value)
                }
            }
            Some(value) => put(resource, target, value),
            None => Ok(()),
        };
    }
    let mut list = into_elements(take(resource, target));
    match target.sub {
        None => list.retain(|element| !eval::matches_element(filter, element)),
        Some(_) => {
            for element in &mut list {
                if eval::matches_element(filter, element) {
                    strip(element);
                }
            }
            list.retain(|element| !is_empty_object(element));
        }
    }
    put_elements(resource, target, list)
}

/// Whether a value listed in a remove names `element`: both have a `value` sub-attribute and
/// they are equal (by its `caseExact`), or, when the listed one has no `value`, they are equal.
/// The rule as one comparison; [`Listed`] applies it by lookup and is tested against it.
#[cfg(test)]
fn names_element(attr: &AttributeDef, given: &Value, element: &Value) -> bool {
    if attr.kind != AttrType::Complex {
        return match (given.as_str(), element.as_str()) {
            (Some(g), Some(e)) => same_str(g, e, attr.case_exact),
            _ => given == element,
        };
    }
    match (value_of(given), attr.sub_attribute("value")) {
        (Some(wanted), Some(def)) => match value_of(element) {
            Some(have) => match (wanted.as_str(), have.as_str()) {
                (Some(w), Some(h)) => same_str(w, h, def.case_exact),
                _ => wanted == have,
            },
            None => false,
        },
        _ => given == element,
    }
}

fn same_str(a: &str, b: &str, case_exact: bool) -> bool {
    if case_exact {
        a == b
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

/// The form of a string under which [`same_str`] is plain equality.
fn folded(s: &str, case_exact: bool) -> String {
    if case_exact {
        s.to_owned()
    } else {
        s.to_lowercase()
    }
}

/// The values a remove lists, indexed so that whether they name an element ([`names_element`])
/// is a lookup, not a comparison with each of them: a 2 MB PATCH lists ~90,000 values, and
/// comparing every element with every listed value was quadratic.
struct Listed<'a> {
    attr: &'a AttributeDef,
    /// `attr.kind` is not complex: the listed strings, folded by `attr.caseExact`. Complex:
    /// the listed `value`s that are strings, folded by the `value` sub-attribute's caseExact.
    strings: HashSet<String>,
    /// The listed `value`s that are not strings (complex attributes with a `value`).
    values: HashSet<ValueKey>,
    /// Listed values compared whole: the rest.
    wholes: HashSet<ValueKey>,
}

impl<'a> Listed<'a> {
    fn new(attr: &'a AttributeDef, given: Vec<Value>) -> Self {
        let mut listed = Listed {
            attr,
            strings: HashSet::new(),
            values: HashSet::new(),
            wholes: HashSet::new(),
        };
        let value_def = attr.sub_attribute("value");
        for g in given {
            if attr.kind != AttrType::Complex {
                match g {
                    Value::String(s) => {
                        listed.strings.insert(folded(&s, attr.case_exact));
                    }
                    other => {
                        listed.wholes.insert(ValueKey(other));
                    }
                }
                continue;
            }
            match (value_of(&g), value_def) {
                (Some(Value::String(s)), Some(def)) => {
                    listed.strings.insert(folded(s, def.case_exact));
                }
                (Some(wanted), Some(_)) => {
                    listed.values.insert(ValueKey(wanted.clone()));
                }
                _ => {
                    listed.wholes.insert(ValueKey(g));
                }
            }
        }
        listed
    }

    /// Whether some listed value names `element`, exactly as [`names_element`] decides.
    fn names(&self, element: &Value) -> bool {
        if self.attr.kind != AttrType::Complex {
            return match element {
                Value::String(e) => self.strings.contains(&folded(e, self.attr.case_exact)),
                other => self.wholes.contains(&ValueKey(other.clone())),
            };
        }
        match (value_of(element), self.attr.sub_attribute("value")) {
            (Some(Value::String(h)), Some(def)) => {
                self.strings.contains(&folded(h, def.case_exact))
            }
            (Some(have), Some(_)) => self.values.contains(&ValueKey(have.clone())),
            _ => self.wholes.contains(&ValueKey(element.clone())),
        }
    }
}

/// An object's `value` member (any case), when it has one that is not null.
fn value_of(v: &Value) -> Option<&Value> {
    v.as_object()
        .and_then(|o| get_ci(o, "value"))
        .filter(|v| !v.is_null())
}

/// Whether an element given for a multi-valued attribute carries anything. An object whose
/// members are all null (or that has none) is no value at all (RFC 7643 §2.5: null and
/// unassigned are the same state; the normalizer drops it), so adding it adds nothing.
fn carries_a_value(element: &Value) -> bool {
    element
        .as_object()
        .is_none_or(|o| o.values().any(|v| !v.is_null()))
}

/// Questions a multi-valued attribute's elements answer by scanning before an index is built:
/// a PATCH that adds one value to a long list should not pay for indexing the list.
const SCANS_BEFORE_INDEX: usize = 8;

/// A multi-valued attribute's elements, growing as values are added, that say whether one of
/// them already holds a new element ([`already_holds`]). After a few scans an index answers, so
/// a PATCH carrying tens of thousands of values costs linear time, not quadratic (a 2 MB body
/// took seconds).
struct Elements<'a> {
    attr: &'a AttributeDef,
    list: Vec<Value>,
    scans: usize,
    index: Option<ElementIndex>,
}

/// What [`Elements`] looks candidates up in. Every lookup narrows to a superset of the elements
/// that hold the new one (or decides exactly), so answers equal a scan's.
struct ElementIndex {
    hasher: RandomState,
    /// Elements that are not objects, by the hash of the value.
    scalars: HashMap<u64, Vec<usize>>,
    /// Where `value` is immutable: the objects' string `value`s, folded by its caseExact.
    identities: HashSet<String>,
    /// Objects, by the hash of each (member name, non-null value) they carry.
    pairs: HashMap<u64, Vec<usize>>,
}

impl ElementIndex {
    fn hash_of(&self, value: &Value) -> u64 {
        let mut h = self.hasher.build_hasher();
        hash_value(value, &mut h);
        h.finish()
    }

    fn pair_hash(&self, name: &str, value: &Value) -> u64 {
        let mut h = self.hasher.build_hasher();
        name.hash(&mut h);
        hash_value(value, &mut h);
        h.finish()
    }
}

impl<'a> Elements<'a> {
    fn new(attr: &'a AttributeDef, list: Vec<Value>) -> Self {
        Elements {
            attr,
            list,
            scans: 0,
            index: None,
        }
    }

    /// The immutable `value` sub-attribute that is an element's identity ([`already_holds`]).
    fn identity_def(&self) -> Option<&'static AttributeDef> {
        self.attr
            .sub_attribute("value")
            .filter(|d| d.mutability == Mutability::Immutable)
    }

    /// An object's identity: its string `value`, folded, where `value` is immutable.
    fn identity(&self, object: &Map<String, Value>) -> Option<String> {
        let def = self.identity_def()?;
        match get_ci(object, def.name) {
            Some(Value::String(s)) => Some(folded(s, def.case_exact)),
            _ => None,
        }
    }

    fn index_element(&self, index: &mut ElementIndex, i: usize) {
        match &self.list[i] {
            Value::Object(object) => {
                if let Some(id) = self.identity(object) {
                    index.identities.insert(id);
                }
                for (name, value) in object.iter().filter(|(_, v)| !v.is_null()) {
                    let h = index.pair_hash(name, value);
                    index.pairs.entry(h).or_default().push(i);
                }
            }
            other => {
                let h = index.hash_of(other);
                index.scalars.entry(h).or_default().push(i);
            }
        }
    }

    fn holds(&mut self, new: &Value) -> bool {
        if self.index.is_none() {
            if self.scans < SCANS_BEFORE_INDEX {
                self.scans += 1;
                return self
                    .list
                    .iter()
                    .any(|existing| already_holds(self.attr, existing, new));
            }
            let mut index = ElementIndex {
                hasher: RandomState::new(),
                scalars: HashMap::new(),
                identities: HashSet::new(),
                pairs: HashMap::new(),
            };
            for i in 0..self.list.len() {
                self.index_element(&mut index, i);
            }
            self.index = Some(index);
        }
        let Some(index) = &self.index else {
            return false;
        };
        let confirm = |candidates: &[usize]| {
            candidates
                .iter()
                .any(|&i| already_holds(self.attr, &self.list[i], new))
        };
        let Value::Object(want) = new else {
            // Only an equal value holds a non-object (objects never do).
            return index
                .scalars
                .get(&index.hash_of(new))
                .is_some_and(|c| confirm(c));
        };
        if self
            .identity(want)
            .is_some_and(|id| index.identities.contains(&id))
        {
            // An object with the same identity holds it (see `already_holds`).
            return true;
        }
        // Else only an object that carries each of the new element's non-null members can: the
        // rarest of them names the candidates.
        let rarest = want
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(name, value)| {
                index
                    .pairs
                    .get(&index.pair_hash(name, value))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|c| c.len());
        match rarest {
            Some(candidates) => confirm(candidates),
            // Nothing non-null to look up (callers pass only elements that carry a value).
            None => self
                .list
                .iter()
                .any(|existing| already_holds(self.attr, existing, new)),
        }
    }

    /// Appends an element; returns its position.
    fn push(&mut self, element: Value) -> usize {
        self.list.push(element);
        let i = self.list.len() - 1;
        if let Some(mut index) = self.index.take() {
            self.index_element(&mut index, i);
            self.index = Some(index);
        }
        i
    }

    fn into_list(self) -> Vec<Value> {
        self.list
    }
}

// ---- values and the resource ----------------------------------------------------------------

fn object_mut(resource: &mut Value) -> Result<&mut Map<String, Value>, Fault> {
    resource
        .as_object_mut()
        .ok_or_else(|| Fault::new(INVALID_VALUE, "the resource is not a JSON object"))
}

/// Renames a member spelled in another case to `name` (names are case-insensitive, RFC 7643
/// §2.1), so what follows can address it by its canonical name.
fn canonicalize_key(object: &mut Map<String, Value>, name: &str) {
    if object.contains_key(name) {
        return;
    }
    let variant = object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned();
    if let Some(variant) = variant
        && let Some(value) = object.remove(&variant)
    {
        object.insert(name.to_string(), value);
    }
}

fn remove_key(object: &mut Map<String, Value>, name: &str) {
    canonicalize_key(object, name);
    object.remove(name);
}

/// Takes the target attribute out of the resource (to be put back changed, or not at all).
fn take(resource: &mut Value, target: &Target) -> Option<Value> {
    let root = resource.as_object_mut()?;
    let container = match target.extension {
        None => root,
        Some(urn) => {
            canonicalize_key(root, urn);
            root.get_mut(urn)?.as_object_mut()?
        }
    };
    canonicalize_key(container, target.attr.name);
    container.remove(target.attr.name)
}

/// Sets the target attribute, creating its extension's container when the resource has none.
fn put(resource: &mut Value, target: &Target, value: Value) -> Result<(), Fault> {
    let root = object_mut(resource)?;
    let Some(urn) = target.extension else {
        root.insert(target.attr.name.to_string(), value);
        return Ok(());
    };
    declare_schema(root, urn);
    canonicalize_key(root, urn);
    let container = root.entry(urn).or_insert_with(|| Value::Object(Map::new()));
    if !container.is_object() {
        *container = Value::Object(Map::new());
    }
    if let Value::Object(container) = container {
        container.insert(target.attr.name.to_string(), value);
    }
    Ok(())
}

/// A multi-valued attribute goes back only when it has values: RFC 7643 §2.5 makes an empty
/// one the same as an unassigned one.
fn put_elements(resource: &mut Value, target: &Target, list: Vec<Value>) -> Result<(), Fault> {
    if list.is_empty() {
        Ok(())
    } else {
        put(resource, target, Value::Array(list))
    }
}

/// RFC 7643 §3: `schemas` lists the extensions a resource carries, so the first attribute
/// written under an extension declares it (when the resource lists its schemas at all).
fn declare_schema(root: &mut Map<String, Value>, urn: &str) {
    canonicalize_key(root, "schemas");
    if let Some(Value::Array(schemas)) = root.get_mut("schemas")
        && !schemas
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
    {
        schemas.push(Value::String(urn.to_string()));
    }
}

fn undeclare_schema(root: &mut Map<String, Value>, urn: &str) {
    canonicalize_key(root, "schemas");
    if let Some(Value::Array(schemas)) = root.get_mut("schemas") {
        schemas.retain(|s| !s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)));
    }
}

/// A multi-valued attribute's elements: none when absent or null, a lone value as one.
fn into_elements(value: Option<Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(elements)) => elements,
        Some(other) => vec![other],
    }
}

/// The elements a client gives for a multi-valued attribute (an array, or one value alone),
/// in the form they are compared and stored in.
fn incoming_elements(attr: &AttributeDef, value: &Value) -> Vec<Value> {
    into_elements(Some(value.clone()))
        .into_iter()
        .map(|element| canonical_element(attr, element))
        .collect()
}

/// An element with its member names spelled as the schema spells them. A bare value of a
/// complex attribute stands for `{"value": …}`, as the normalizer reads it, so that it
/// compares equal to the element it will become.
fn canonical_element(attr: &AttributeDef, element: Value) -> Value {
    if attr.kind != AttrType::Complex {
        return element;
    }
    match element {
        Value::Object(object) => Value::Object(canonical_members(attr, object)),
        scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_))
            if attr.sub_attribute("value").is_some() =>
        {
            let mut object = Map::new();
            object.insert("value".to_string(), scalar);
            Value::Object(object)
        }
        other => other,
    }
}

/// Member names matched to the sub-attributes case-insensitively; unknown ones are kept for
/// the normalizer to judge.
fn canonical_members(attr: &AttributeDef, object: Map<String, Value>) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| match attr.sub_attribute(&key) {
            Some(sub) => (sub.name.to_string(), value),
            None => (key, value),
        })
        .collect()
}

/// Whether an existing element already says everything a new one does: adding `{"value":
/// "a@x"}` next to `{"value": "a@x", "type": "work"}` adds nothing. Where `value` is immutable
/// (Group `members`) it is the element's identity, so the same `value` is the same element
/// whatever else either one carries (a `display` echoed by the client, a server-set `type`).
fn already_holds(attr: &AttributeDef, existing: &Value, new: &Value) -> bool {
    let (Value::Object(have), Value::Object(want)) = (existing, new) else {
        return existing == new;
    };
    if let Some(value) = attr.sub_attribute("value")
        && value.mutability == Mutability::Immutable
        && let (Some(Value::String(h)), Some(Value::String(w))) =
            (get_ci(have, value.name), get_ci(want, value.name))
    {
        return same_str(h, w, value.case_exact);
    }
    want.iter()
        .all(|(key, value)| have.get(key).unwrap_or(&NULL) == value)
}

fn is_empty_object(value: &Value) -> bool {
    value.as_object().is_some_and(Map::is_empty)
}

/// A single-valued target's value. An array of one stands for its element (Entra ID sends the
/// enterprise `manager` as `[{"$ref": null, "value": "…"}]`), an empty array for no value.
fn single_value(name: &str, value: &Value) -> Result<Value, Fault> {
    match value {
        Value::Array(items) => match items.as_slice() {
            [] => Ok(Value::Null),
            [one] => Ok(one.clone()),
            _ => Err(Fault::new(
                INVALID_VALUE,
                format!(
                    "\"{name}\" is single-valued; give one value, not {}",
                    items.len()
                ),
            )),
        },
        other => Ok(other.clone()),
    }
}

/// Runs `write` on an element as an object; a bare value is first read as `{"value": …}`.
fn with_object(
    attr: &AttributeDef,
    element: &mut Value,
    write: impl FnOnce(&mut Map<String, Value>) -> Result<(), Fault>,
) -> Result<(), Fault> {
    if !element.is_object() {
        let bare = std::mem::take(element);
        *element = match canonical_element(attr, bare) {
            object @ Value::Object(_) => object,
            _ => Value::Object(Map::new()),
        };
    }
    match element {
        Value::Object(object) => write(object),
        _ => Ok(()),
    }
}

fn merge(
    object: &mut Map<String, Value>,
    attr: &AttributeDef,
    given: Map<String, Value>,
) -> Result<(), Fault> {
    for (key, value) in given {
        let sub = attr.sub_attribute(&key);
        let name = sub.map_or(key.as_str(), |s| s.name);
        set_field(object, attr, name, sub, value)?;
    }
    Ok(())
}

/// Sets one member of a complex value. An immutable sub-attribute may receive a value it
/// lacks, or the one it has, never a different one (RFC 7644 §3.5.2).
fn set_field(
    object: &mut Map<String, Value>,
    attr: &AttributeDef,
    name: &str,
    sub: Option<&AttributeDef>,
    value: Value,
) -> Result<(), Fault> {
    canonicalize_key(object, name);
    if sub.is_some_and(|s| s.mutability == Mutability::Immutable)
        && object
            .get(name)
            .is_some_and(|current| !current.is_null() && *current != value)
    {
        return Err(already_set(&format!("{}.{name}", attr.name)));
    }
    object.insert(name.to_string(), value);
    Ok(())
}

fn already_set(name: &str) -> Fault {
    Fault::new(
        MUTABILITY,
        format!("\"{name}\" is immutable and already has a different value (RFC 7643 §2.2)"),
    )
}

/// RFC 7644 §3.5.2: "a PATCH operation that sets a value's "primary" sub-attribute to "true"
/// SHALL cause the server to automatically set "primary" to "false" for any other values in
/// the array." `touched` are the elements this operation wrote; the last primary one wins.
fn settle_primary(attr: &AttributeDef, list: &mut [Value], touched: &[usize]) {
    let Some(primary) = attr.sub_attribute("primary") else {
        return;
    };
    let is_primary = |element: &Value| {
        element
            .as_object()
            .and_then(|o| get_ci(o, primary.name))
            // Entra ID sends booleans as strings; the normalizer converts them later.
            .is_some_and(|v| {
                *v == Value::Bool(true)
                    || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
            })
    };
    let Some(&chosen) = touched
        .iter()
        .rev()
        .find(|&&i| list.get(i).is_some_and(is_primary))
    else {
        return;
    };
    for (i, element) in list.iter_mut().enumerate() {
        if i != chosen
            && is_primary(element)
            && let Value::Object(object) = element
        {
            canonicalize_key(object, primary.name);
            object.insert(primary.name.to_string(), Value::Bool(false));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Group membership, split off so a large group is never loaded to change one member.

/// A change to a Group's members, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Add these members: elements as given, names canonical, a bare id read as
    /// `{"value": id}`. Members already present are to be skipped, not duplicated.
    Add(Vec<Value>),
    /// Make these exactly the members (same element form as `Add`); empty removes all.
    Replace(Vec<Value>),
    /// Remove the members with these ids. `members.value` is not caseExact in our schema, so
    /// compare ids case-insensitively (or as parsed UUIDs).
    Remove(Vec<String>),
    RemoveAll,
    /// Remove the members matching this value filter: evaluate it with
    /// [`eval::matches_element`] against each member as `{"value", "type", "display", "$ref"}`.
    RemoveMatching(ResolvedFilter),
}

/// Partitions Group operations into the operations on other attributes (to [`apply`] to the
/// group rendered without its members) and the member changes, both in request order.
///
/// Errors name the operation's position in `ops`; the operations returned are renumbered from
/// 1 when later passed to [`apply`].
pub fn split_group_member_ops(
    schemas: &Schemas,
    ops: Vec<PatchOperation>,
) -> Result<(Vec<PatchOperation>, Vec<MemberChange>), PatchError> {
    let mut others = Vec::new();
    let mut changes = Vec::new();
    for (i, operation) in ops.into_iter().enumerate() {
        let op = operation.op;
        let shown = operation.path.as_ref().map(ToString::to_string);
        split_operation(schemas, operation, &mut others, &mut changes)
            .map_err(|fault| fault.at(i + 1, Some(op), shown.as_deref()))?;
    }
    Ok((others, changes))
}

fn split_operation(
    schemas: &Schemas,
    operation: PatchOperation,
    others: &mut Vec<PatchOperation>,
    changes: &mut Vec<MemberChange>,
) -> Result<(), Fault> {
    match &operation.path {
        Some(path) if is_members_path(path) => {
            changes.push(member_change(
                schemas,
                operation.op,
                path,
                operation.value.as_ref(),
            )?);
        }
        Some(_) => others.push(operation),
        None => match (&operation.value, operation.op) {
            (Some(Value::Object(attributes)), Op::Add | Op::Replace) => {
                let (rest, found) = take_member_keys(schemas, attributes.clone(), operation.op)?;
                if found.is_empty() {
                    others.push(operation);
                    return Ok(());
                }
                changes.extend(found);
                if !rest.is_empty() {
                    others.push(PatchOperation {
                        op: operation.op,
                        path: None,
                        value: Some(Value::Object(rest)),
                    });
                }
            }
            _ => others.push(operation),
        },
    }
    Ok(())
}

/// The members keys of a path-less value (`members`, any case, optionally URN-qualified or
/// under the core Group URN key) become member changes; the rest stays.
fn take_member_keys(
    schemas: &Schemas,
    attributes: Map<String, Value>,
    op: Op,
) -> Result<(Map<String, Value>, Vec<MemberChange>), Fault> {
    let mut rest = Map::new();
    let mut found = Vec::new();
    for (key, value) in attributes {
        if key.eq_ignore_ascii_case(GROUP_SCHEMA)
            && let Value::Object(inner) = value
        {
            let (inner_rest, inner_found) = take_member_keys(schemas, inner, op)?;
            found.extend(inner_found);
            if !inner_rest.is_empty() {
                rest.insert(key, Value::Object(inner_rest));
            }
            continue;
        }
        match filter::parse_path(&key) {
            Ok(path) if is_members_path(&path) => found.push(
                member_change(schemas, op, &path, Some(&value))
                    .map_err(|f| f.within(&format!("attribute \"{}\"", quote(&key))))?,
            ),
            _ => {
                rest.insert(key, value);
            }
        }
    }
    Ok((rest, found))
}

fn is_members_path(path: &PatchPath) -> bool {
    path.attr.name.eq_ignore_ascii_case("members")
        && path
            .attr
            .schema
            .as_deref()
            .is_none_or(|urn| urn.eq_ignore_ascii_case(GROUP_SCHEMA))
}

fn member_change(
    schemas: &Schemas,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<MemberChange, Fault> {
    // RFC 7643 §4.2 / our schema: members.value, $ref and type are immutable, display readOnly.
    if path.attr.sub.is_some() || path.sub.is_some() {
        return Err(Fault::new(
            MUTABILITY,
            "members' sub-attributes are immutable or readOnly; add or remove whole members \
             instead (RFC 7643 §2.2)",
        ));
    }
    let required = || {
        value.ok_or_else(|| Fault::new(INVALID_VALUE, format!("\"value\" is required for {op}")))
    };
    match (&path.filter, op) {
        (None, Op::Add) => Ok(MemberChange::Add(member_elements(required()?))),
        (None, Op::Replace) => Ok(MemberChange::Replace(member_elements(required()?))),
        (None, Op::Remove) => match value.filter(|v| !v.is_null()) {
            None => Ok(MemberChange::RemoveAll),
            Some(listed) => member_ids(listed).map(MemberChange::Remove),
        },
        (Some(_), Op::Remove) => {
            let resolved = filter::resolve_path(schemas, path, ResourceType::Group)
                .map_err(|e| Fault::new(INVALID_PATH, e.message))?;
            let Some(filter) = resolved.filter else {
                return Err(Fault::new(INVALID_PATH, "the member filter is missing"));
            };
            let mut ids = Vec::new();
            Ok(if ids_of_value_eq_chain(&filter, &mut ids) {
                MemberChange::Remove(ids)
            } else {
                MemberChange::RemoveMatching(filter)
            })
        }
        (Some(_), Op::Add) => Err(Fault::new(
            INVALID_PATH,
            "a member filter selects existing members, so it cannot be added to; add to \
             \"members\" without a filter",
        )),
        (Some(_), Op::Replace) => Err(Fault::new(
            MUTABILITY,
            "members' sub-attributes are immutable; remove the member and add the new one \
             (RFC 7643 §2.2)",
        )),
    }
}

fn member_elements(value: &Value) -> Vec<Value> {
    match schema::GROUP.attribute("members") {
        Some(members) => incoming_elements(members, value),
        None => into_elements(Some(value.clone())),
    }
}

fn member_ids(listed: &Value) -> Result<Vec<String>, Fault> {
    member_elements(listed)
        .iter()
        .map(|member| {
            member
                .get("value")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    Fault::new(
                        INVALID_VALUE,
                        "each member to remove needs a string \"value\": the member's id",
                    )
                })
        })
        .collect()
}

/// `value eq "a"`, or `value eq "a" or value eq "b" …`: a plain list of ids.
fn ids_of_value_eq_chain(filter: &ResolvedFilter, ids: &mut Vec<String>) -> bool {
    match filter {
        ResolvedFilter::Or(a, b) => ids_of_value_eq_chain(a, ids) && ids_of_value_eq_chain(b, ids),
        ResolvedFilter::Compare {
            attr,
            op: CompareOp::Eq,
            value: ResolvedValue::Str(id),
        } if attr.sub.is_some_and(|s| s.name == "value") => {
            ids.push(id.clone());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_proto::schema::Schemas;
    use crate::scim_proto::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    const USER_ID: &str = "2819c223-7f76-453a-919d-413861904646";
    const GROUP_ID: &str = "e9e30dba-f08f-4109-8486-d5c6a331660a";

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA],
            "id": USER_ID,
            "externalId": "bjensen",
            "userName": "bjensen@example.com",
            "name": { "givenName": "Barbara", "familyName": "Jensen" },
            "displayName": "Babs Jensen",
            "active": true,
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "addresses": [
                { "type": "work", "streetAddress": "100 Universal City Plaza",
                  "locality": "Hollywood", "region": "CA", "country": "USA" }
            ],
            "groups": [{ "value": GROUP_ID, "display": "Tour Guides" }],
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z"
            }
        })
    }

    fn enterprise_user() -> Value {
        let mut u = user();
        u["schemas"] = json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]);
        u[ENTERPRISE_USER_SCHEMA] = json!({
            "department": "Tour Operations",
            "manager": { "value": "26118915", "displayName": "John Smith" }
        });
        u
    }

    fn group() -> Value {
        json!({
            "schemas": [GROUP_SCHEMA],
            "id": GROUP_ID,
            "displayName": "Tour Guides",
            "members": [
                { "value": USER_ID, "type": "User", "display": "Babs Jensen" },
                { "value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User" }
            ],
            "meta": { "resourceType": "Group" }
        })
    }

    fn request(operations: Value) -> Value {
        json!({ "schemas": [PATCH_OP_SCHEMA], "Operations": operations })
    }

    fn patch(rt: ResourceType, resource: &Value, operations: Value) -> Result<Value, PatchError> {
        let ops = parse_request(&request(operations))?;
        let mut out = resource.clone();
        apply(&Schemas::default(), rt, &mut out, &ops)?;
        Ok(out)
    }

    fn patched(rt: ResourceType, resource: &Value, operations: Value) -> Value {
        patch(rt, resource, operations).unwrap_or_else(|e| panic!("{e}"))
    }

    fn rejected(rt: ResourceType, resource: &Value, operations: Value) -> PatchError {
        match patch(rt, resource, operations) {
            Ok(out) => panic!("expected an error, got {out:#}"),
            Err(e) => e,
        }
    }

    fn split(operations: Value) -> (Vec<PatchOperation>, Vec<MemberChange>) {
        let ops = parse_request(&request(operations)).unwrap_or_else(|e| panic!("{e}"));
        split_group_member_ops(&Schemas::default(), ops).unwrap_or_else(|e| panic!("{e}"))
    }

    fn split_error(operations: Value) -> PatchError {
        let ops = parse_request(&request(operations)).unwrap_or_else(|e| panic!("{e}"));
        match split_group_member_ops(&Schemas::default(), ops) {
            Ok(out) => panic!("expected an error, got {out:?}"),
            Err(e) => e,
        }
    }

    fn member_ids_of(resource: &Value) -> Vec<&str> {
        resource["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|e| e["value"].as_str()).collect())
            .unwrap_or_default()
    }

    // ---- RFC 7644 §3.5.2 examples ----------------------------------------------------------

    #[test]
    fn rfc7644_add_member_appends_it_to_the_group() {
        let out = patched(
            ResourceType::Group,
            &group(),
            json!([{
                "op": "add",
                "path": "members",
                "value": [{
                    "display": "Jim Smith",
                    "$ref": "https://example.com/v2/Users/08e1d05d",
                    "value": "08e1d05d"
                }]
            }]),
        );
        assert_eq!(
            member_ids_of(&out),
            [USER_ID, "902c246b-6245-4190-8e05-00816be7344a", "08e1d05d"]
        );
        assert_eq!(out["displayName"], "Tour Guides");
    }

    #[test]
    fn rfc7644_add_emails_appends_new_values_and_skips_ones_already_held() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{
                "op": "add",
                "path": "emails",
                "value": [
                    { "value": "babs@jensen.org", "type": "home" },
                    { "Value": "babs@example.org", "TYPE": "other" }
                ]
            }]),
        );
        assert_eq!(
            out["emails"],
            json!([
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" },
                { "value": "babs@example.org", "type": "other" }
            ])
        );
    }

    #[test]
    fn adding_a_member_already_in_the_group_does_not_duplicate_it() {
        let out = patched(
            ResourceType::Group,
            &group(),
            json!([{ "op": "add", "path": "members", "value": [
                { "value": USER_ID.to_uppercase(), "display": "Babs" },
                { "value": "08e1d05d" },
                { "value": "08e1d05d", "display": "James Smith" }
            ]}]),
        );
        assert_eq!(
            member_ids_of(&out),
            [USER_ID, "902c246b-6245-4190-8e05-00816be7344a", "08e1d05d"]
        );
        assert_eq!(out["members"][0], group()["members"][0]);
    }

    #[test]
    fn rfc7644_replace_members_replaces_the_whole_list() {
        let out = patched(
            ResourceType::Group,
            &group(),
            json!([{
                "op": "replace",
                "path": "members",
                "value": [
                    { "display": "Babs Jensen", "value": USER_ID },
                    { "display": "James Smith", "value": "08e1d05d" }
                ]
            }]),
        );
        assert_eq!(member_ids_of(&out), [USER_ID, "08e1d05d"]);
    }

    #[test]
    fn rfc7644_replace_work_address_via_value_path_changes_only_that_address() {
        let mut u = user();
        u["addresses"]
            .as_array_mut()
            .expect("addresses")
            .push(json!({ "type": "home", "locality": "Burbank" }));
        let out = patched(
            ResourceType::User,
            &u,
            json!([{
                "op": "replace",
                "path": "addresses[type eq \"work\"]",
                "value": {
                    "type": "work",
                    "streetAddress": "911 Universal City Plaza",
                    "locality": "Hollywood",
                    "region": "CA",
                    "postalCode": "91608",
                    "country": "US",
                    "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
                    "primary": true
                }
            }]),
        );
        let addresses = out["addresses"].as_array().expect("addresses");
        assert_eq!(addresses.len(), 2);
        assert_eq!(addresses[0]["streetAddress"], "911 Universal City Plaza");
        assert_eq!(addresses[0]["postalCode"], "91608");
        assert_eq!(addresses[0]["primary"], true);
        assert_eq!(
            addresses[1],
            json!({ "type": "home", "locality": "Burbank" })
        );
    }

    #[test]
    fn rfc7644_remove_members_without_a_value_removes_them_all() {
        let out = patched(
            ResourceType::Group,
            &group(),
            json!([{ "op": "remove", "path": "members" }]),
        );
        assert!(out.get("members").is_none());
        assert_eq!(out["displayName"], "Tour Guides");
    }

    #[test]
    fn rfc7644_remove_single_member_by_value_filter_keeps_the_others() {
        let out = patched(
            ResourceType::Group,
            &group(),
            json!([{ "op": "remove", "path": format!("members[value eq \"{USER_ID}\"]") }]),
        );
        assert_eq!(
            member_ids_of(&out),
            ["902c246b-6245-4190-8e05-00816be7344a"]
        );
    }

    #[test]
    fn rfc7644_remove_then_add_in_one_request_apply_in_order() {
        let out = patched(
            ResourceType::Group,
            &group(),
            json!([
                { "op": "remove", "path": "members" },
                { "op": "add", "path": "members", "value": [
                    { "display": "James Smith", "value": "08e1d05d" },
                    { "display": "Babs Jensen", "value": USER_ID }
                ]}
            ]),
        );
        assert_eq!(member_ids_of(&out), ["08e1d05d", USER_ID]);
        assert_eq!(
            out["members"][1],
            json!({ "display": "Babs Jensen", "value": USER_ID })
        );
    }

    #[test]
    fn remove_of_the_last_matching_element_drops_the_attribute() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "remove", "path": "addresses[type eq \"work\"]" }]),
        );
        assert!(out.get("addresses").is_none());
    }

    // ---- Okta --------------------------------------------------------------------------------

    #[test]
    fn okta_pathless_replace_deactivates_the_user() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "replace", "value": { "active": false } }]),
        );
        let mut expected = user();
        expected["active"] = json!(false);
        assert_eq!(out, expected);
    }

    #[test]
    fn okta_pathless_group_rename_ignores_the_unchanged_id_it_echoes() {
        let out = patched(
            ResourceType::Group,
            &group(),
            json!([{ "op": "replace", "value": { "id": GROUP_ID, "displayName": "Guides" } }]),
        );
        assert_eq!(out["displayName"], "Guides");
        assert_eq!(out["id"], GROUP_ID);
    }

    #[test]
    fn a_pathless_replace_that_changes_the_id_is_a_mutability_error() {
        let e = rejected(
            ResourceType::Group,
            &group(),
            json!([{ "op": "replace", "value": { "id": "other", "displayName": "Guides" } }]),
        );
        assert_eq!(e.scim_type, "mutability");
        assert!(
            e.detail.contains("operation 1") && e.detail.contains("\"id\""),
            "{e}"
        );
    }

    #[test]
    fn okta_add_members_by_path_becomes_a_member_add() {
        let operations = json!([{
            "op": "add",
            "path": "members",
            "value": [{ "value": "08e1d05d", "display": "James Smith" }]
        }]);
        let (others, changes) = split(operations.clone());
        assert!(others.is_empty());
        assert_eq!(
            changes,
            [MemberChange::Add(vec![
                json!({ "value": "08e1d05d", "display": "James Smith" })
            ])]
        );
        let out = patched(ResourceType::Group, &group(), operations);
        assert_eq!(member_ids_of(&out).len(), 3);
    }

    #[test]
    fn okta_replace_members_with_an_empty_list_removes_every_member() {
        let operations = json!([{ "op": "replace", "path": "members", "value": [] }]);
        let (_, changes) = split(operations.clone());
        assert_eq!(changes, [MemberChange::Replace(vec![])]);
        let out = patched(ResourceType::Group, &group(), operations);
        assert!(out.get("members").is_none());
    }

    // ---- Entra ID ----------------------------------------------------------------------------

    #[test]
    fn entra_capitalised_ops_and_member_names_are_accepted() {
        let ops = parse_request(&json!({
            "schemas": ["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],
            "operations": [
                { "op": "Add", "path": "title", "value": "Tour Guide" },
                { "Op": "Replace", "Path": "displayName", "Value": "Babs" },
                { "OP": "REMOVE", "PATH": "nickName" }
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<Op> = ops.iter().map(|o| o.op).collect();
        assert_eq!(kinds, [Op::Add, Op::Replace, Op::Remove]);
        assert_eq!(ops[1].value, Some(json!("Babs")));
        let mut u = user();
        u["nickName"] = json!("Babs");
        apply(&Schemas::default(), ResourceType::User, &mut u, &ops)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u["title"], "Tour Guide");
        assert_eq!(u["displayName"], "Babs");
        assert!(u.get("nickName").is_none());
    }

    #[test]
    fn entra_string_boolean_is_set_as_given_for_the_normalizer_to_coerce() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "Replace", "path": "active", "value": "False" }]),
        );
        assert_eq!(out["active"], "False");
    }

    #[test]
    fn entra_remove_members_with_a_value_list_removes_only_those() {
        let operations = json!([{
            "op": "Remove",
            "path": "members",
            "value": [{ "value": USER_ID.to_uppercase() }, { "value": "nobody" }]
        }]);
        let (others, changes) = split(operations.clone());
        assert!(others.is_empty());
        assert_eq!(
            changes,
            [MemberChange::Remove(vec![
                USER_ID.to_uppercase(),
                "nobody".into()
            ])]
        );
        // Applied directly, the ids compare as members.value does: case-insensitively.
        let out = patched(ResourceType::Group, &group(), operations);
        assert_eq!(
            member_ids_of(&out),
            ["902c246b-6245-4190-8e05-00816be7344a"]
        );
    }

    #[test]
    fn remove_with_one_listed_object_instead_of_an_array_removes_that_email() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "remove", "path": "emails", "value": { "value": "BABS@jensen.org" } }]),
        );
        assert_eq!(
            out["emails"],
            json!([{ "value": "bjensen@example.com", "type": "work", "primary": true }])
        );
    }

    #[test]
    fn entra_pathless_replace_with_dotted_and_urn_qualified_keys() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{
                "op": "Replace",
                "value": {
                    "name.givenName": "Babs",
                    "urn:ietf:params:scim:schemas:core:2.0:User:userName": "babs@example.com",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Tours",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "26118915"
                }
            }]),
        );
        assert_eq!(
            out["name"],
            json!({ "givenName": "Babs", "familyName": "Jensen" })
        );
        assert_eq!(out["userName"], "babs@example.com");
        assert_eq!(
            out[ENTERPRISE_USER_SCHEMA],
            json!({ "department": "Tours", "manager": "26118915" })
        );
        // The extension was absent, so the resource now declares it.
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn an_extension_path_whose_value_carries_its_own_schemas_is_accepted() {
        for op in ["add", "replace"] {
            let out = patched(
                ResourceType::User,
                &user(),
                json!([{
                    "op": op,
                    "path": ENTERPRISE_USER_SCHEMA,
                    "value": { "schemas": [ENTERPRISE_USER_SCHEMA], "costCenter": "7" }
                }]),
            );
            assert_eq!(out[ENTERPRISE_USER_SCHEMA]["costCenter"], "7", "{op}");
            assert!(out[ENTERPRISE_USER_SCHEMA].get("schemas").is_none(), "{op}");
        }
    }

    #[test]
    fn pathless_add_with_a_whole_extension_object_adds_each_of_its_attributes() {
        let out = patched(
            ResourceType::User,
            &enterprise_user(),
            json!([{
                "op": "add",
                "value": {
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                        "employeeNumber": "701984",
                        "Manager": { "value": "999" }
                    },
                    "schemas": ["ignored"],
                    "meta": { "created": "ignored" }
                }
            }]),
        );
        assert_eq!(
            out[ENTERPRISE_USER_SCHEMA],
            json!({
                "department": "Tour Operations",
                "employeeNumber": "701984",
                "manager": { "value": "999", "displayName": "John Smith" }
            })
        );
        assert_eq!(out["meta"], user()["meta"]);
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn add_with_an_extension_urn_as_path_adds_the_attributes_of_its_value() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{
                "op": "add",
                "path": ENTERPRISE_USER_SCHEMA,
                "value": { "costCenter": "4130" }
            }]),
        );
        assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({ "costCenter": "4130" }));
        let removed = patched(
            ResourceType::User,
            &out,
            json!([{ "op": "remove", "path": ENTERPRISE_USER_SCHEMA }]),
        );
        assert!(removed.get(ENTERPRISE_USER_SCHEMA).is_none());
        assert_eq!(removed["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn entra_filtered_replace_creates_the_missing_work_email() {
        let mut u = user();
        u["emails"] = json!([{ "value": "babs@jensen.org", "type": "home" }]);
        let out = patched(
            ResourceType::User,
            &u,
            json!([{
                "op": "Replace",
                "path": "emails[type eq \"work\"].value",
                "value": "bjensen@example.com"
            }]),
        );
        assert_eq!(
            out["emails"],
            json!([
                { "value": "babs@jensen.org", "type": "home" },
                { "type": "work", "value": "bjensen@example.com" }
            ])
        );
    }

    #[test]
    fn filtered_replace_sets_the_sub_attribute_of_every_matching_element() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{
                "op": "replace",
                "path": "emails[type eq \"WORK\"].value",
                "value": "barbara@example.com"
            }]),
        );
        assert_eq!(out["emails"][0]["value"], "barbara@example.com");
        assert_eq!(out["emails"][1]["value"], "babs@jensen.org");
        assert_eq!(out["emails"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn entra_add_manager_as_an_array_of_one_takes_its_element() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{
                "op": "Add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": [{ "$ref": null, "value": "26118915" }]
            }]),
        );
        assert_eq!(
            out[ENTERPRISE_USER_SCHEMA]["manager"],
            json!({ "$ref": null, "value": "26118915" })
        );
    }

    #[test]
    fn a_single_valued_attribute_refuses_several_values() {
        let e = rejected(
            ResourceType::User,
            &user(),
            json!([{
                "op": "replace",
                "path": "manager",
                "value": [{ "value": "a" }, { "value": "b" }]
            }]),
        );
        assert_eq!(e.scim_type, "invalidValue");
    }

    #[test]
    fn empty_string_is_set_as_given_so_the_normalizer_clears_it() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([
                { "op": "Replace", "path": "displayName", "value": "" },
                { "op": "Replace", "path": "name.familyName", "value": "" }
            ]),
        );
        assert_eq!(out["displayName"], "");
        assert_eq!(out["name"]["familyName"], "");
    }

    #[test]
    fn unknown_extension_paths_and_keys_are_ignored() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([
                { "op": "add", "path": "urn:example:custom:2.0:User:badge", "value": "42" },
                { "op": "remove", "path": "urn:example:custom:2.0:User:badge" },
                { "op": "replace", "value": {
                    "urn:example:custom:2.0:User:badge": "42",
                    "urn:example:custom:2.0:User": { "badge": "42" },
                    "title": "Guide"
                }}
            ]),
        );
        let mut expected = user();
        expected["title"] = json!("Guide");
        assert_eq!(out, expected);
        // The enterprise extension is not a Group schema.
        let g = patched(
            ResourceType::Group,
            &group(),
            json!([{
                "op": "add",
                "path": format!("{ENTERPRISE_USER_SCHEMA}:department"),
                "value": "x"
            }]),
        );
        assert_eq!(g, group());
    }

    // ---- other semantics ---------------------------------------------------------------------

    #[test]
    fn adding_a_primary_email_demotes_the_previous_primary() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{
                "op": "add",
                "path": "emails",
                "value": { "value": "new@example.com", "type": "work", "primary": true }
            }]),
        );
        let primaries: Vec<&Value> = out["emails"]
            .as_array()
            .expect("emails")
            .iter()
            .filter(|e| e["primary"] == true)
            .collect();
        assert_eq!(primaries.len(), 1);
        assert_eq!(primaries[0]["value"], "new@example.com");
        assert_eq!(out["emails"][0]["primary"], false);
    }

    #[test]
    fn replace_of_a_single_complex_attribute_keeps_unspecified_sub_attributes() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "replace", "path": "name", "value": { "GIVENNAME": "Babs" } }]),
        );
        assert_eq!(
            out["name"],
            json!({ "givenName": "Babs", "familyName": "Jensen" })
        );
    }

    #[test]
    fn sub_attribute_paths_without_a_filter_reach_every_element() {
        let replaced = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "replace", "path": "emails.type", "value": "other" }]),
        );
        assert!(
            replaced["emails"]
                .as_array()
                .expect("emails")
                .iter()
                .all(|e| e["type"] == "other")
        );
        let removed = patched(
            ResourceType::User,
            &user(),
            json!([
                { "op": "remove", "path": "emails.type" },
                { "op": "remove", "path": "name.givenName" }
            ]),
        );
        assert_eq!(
            removed["emails"],
            json!([
                { "value": "bjensen@example.com", "primary": true },
                { "value": "babs@jensen.org" }
            ])
        );
        assert_eq!(removed["name"], json!({ "familyName": "Jensen" }));
    }

    #[test]
    fn filtered_remove_with_a_sub_attribute_removes_it_from_matching_elements_only() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "remove", "path": "emails[type eq \"work\"].primary" }]),
        );
        assert_eq!(
            out["emails"],
            json!([
                { "value": "bjensen@example.com", "type": "work" },
                { "value": "babs@jensen.org", "type": "home" }
            ])
        );
    }

    #[test]
    fn filtered_remove_matching_nothing_changes_nothing() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "remove", "path": "emails[type eq \"other\"]" }]),
        );
        assert_eq!(out, user());
    }

    /// Found by fuzzing (tests/it/fuzz): a value written into every element, or every element
    /// a filter selects, was copied once per element without bound — a 10 kB display name
    /// into 100 addresses made a megabyte, a 2 MB one into thousands of addresses gigabytes.
    #[test]
    fn a_value_copied_into_many_elements_is_refused_beyond_the_copy_limit() {
        let mut many = user();
        many["emails"] = Value::Array(
            (0..100)
                .map(|i| json!({ "value": format!("u{i}@example.com"), "type": "work" }))
                .collect(),
        );
        let long = "x".repeat(10_000);
        for path in [
            "emails.display",
            "emails[type eq \"work\"].display",
            "emails[value pr]",
        ] {
            let value = if path.ends_with(']') {
                json!({ "display": long })
            } else {
                json!(long)
            };
            for op in ["add", "replace"] {
                let e = rejected(
                    ResourceType::User,
                    &many,
                    json!([{ "op": op, "path": path, "value": value }]),
                );
                assert_eq!(e.scim_type, INVALID_VALUE, "{op} {path}: {e}");
                assert!(e.detail.contains("at most 16384"), "{e}");
            }
        }
        // A short value may go into every element; a long one into one element.
        let out = patched(
            ResourceType::User,
            &many,
            json!([{ "op": "replace", "path": "emails.display", "value": "Work" }]),
        );
        assert_eq!(out["emails"][99]["display"], "Work");
        let out = patched(
            ResourceType::User,
            &many,
            json!([{ "op": "replace", "path": "emails[value eq \"u7@example.com\"].display", "value": long }]),
        );
        assert_eq!(out["emails"][7]["display"], json!(long));
    }

    #[test]
    fn setting_a_sub_attribute_creates_the_extension_and_its_parent() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{
                "op": "add",
                "path": format!("{ENTERPRISE_USER_SCHEMA}:manager.value"),
                "value": "42"
            }]),
        );
        assert_eq!(
            out[ENTERPRISE_USER_SCHEMA],
            json!({ "manager": { "value": "42" } })
        );
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn password_is_write_only_so_it_may_be_replaced() {
        let out = patched(
            ResourceType::User,
            &user(),
            json!([{ "op": "replace", "value": { "password": "t1meMa$heen" } }]),
        );
        assert_eq!(out["password"], "t1meMa$heen");
    }

    #[test]
    fn immutable_member_sub_attributes_can_be_added_when_absent_but_not_changed() {
        let mut g = group();
        g["members"][1] = json!({ "value": "902c246b-6245-4190-8e05-00816be7344a" });
        let added = patched(
            ResourceType::Group,
            &g,
            json!([{
                "op": "add",
                "path": "members[value eq \"902c246b-6245-4190-8e05-00816be7344a\"].type",
                "value": "User"
            }]),
        );
        assert_eq!(added["members"][1]["type"], "User");
        let e = rejected(
            ResourceType::Group,
            &group(),
            json!([{ "op": "add", "path": "members.type", "value": "Group" }]),
        );
        assert_eq!(e.scim_type, "mutability");
        for path in ["members.value", "members[value eq \"x\"].type"] {
            let e = rejected(
                ResourceType::Group,
                &group(),
                json!([{ "op": "replace", "path": path, "value": "y" }]),
            );
            assert_eq!(e.scim_type, "mutability", "{path}");
        }
    }

    // ---- split_group_member_ops --------------------------------------------------------------

    #[test]
    fn split_turns_a_value_eq_chain_into_ids_and_other_filters_into_a_resolved_filter() {
        let (_, changes) = split(json!([
            { "op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]" },
            {
                "op": "remove",
                "path": "urn:ietf:params:scim:schemas:core:2.0:Group:MEMBERS[value eq \"c\"]"
            },
            { "op": "remove", "path": "members[type eq \"Group\"]" },
            { "op": "remove", "path": "Members" }
        ]));
        assert_eq!(changes.len(), 4);
        assert_eq!(
            changes[0],
            MemberChange::Remove(vec!["a".into(), "b".into()])
        );
        assert_eq!(changes[1], MemberChange::Remove(vec!["c".into()]));
        let MemberChange::RemoveMatching(filter) = &changes[2] else {
            panic!("{:?}", changes[2]);
        };
        assert!(eval::matches_element(
            filter,
            &json!({ "value": "g1", "type": "Group" })
        ));
        assert!(!eval::matches_element(
            filter,
            &json!({ "value": "u1", "type": "User" })
        ));
        assert_eq!(changes[3], MemberChange::RemoveAll);
    }

    #[test]
    fn split_takes_members_out_of_a_pathless_value_and_keeps_the_rest_in_order() {
        let (others, changes) = split(json!([
            { "op": "replace", "value": { "displayName": "Guides", "MEMBERS": ["u1"] } },
            { "op": "add", "value": { "members": [{ "value": "u2" }] } },
            { "op": "replace", "path": "displayName", "value": "Tour Guides" }
        ]));
        assert_eq!(
            changes,
            [
                MemberChange::Replace(vec![json!({ "value": "u1" })]),
                MemberChange::Add(vec![json!({ "value": "u2" })])
            ]
        );
        assert_eq!(others.len(), 2);
        assert_eq!(others[0].value, Some(json!({ "displayName": "Guides" })));
        assert_eq!(
            others[1].path.as_ref().map(|p| p.attr.name.as_str()),
            Some("displayName")
        );
    }

    #[test]
    fn split_refuses_member_sub_attribute_paths_and_filtered_add_or_replace() {
        for (operation, scim_type) in [
            (
                json!({ "op": "replace", "path": "members.value", "value": "x" }),
                "mutability",
            ),
            (
                json!({ "op": "remove", "path": "members[value eq \"x\"].display" }),
                "mutability",
            ),
            (
                json!({ "op": "add", "path": "members[value eq \"x\"]", "value": "x" }),
                "invalidPath",
            ),
            (
                json!({ "op": "replace", "path": "members[value eq \"x\"]", "value": "y" }),
                "mutability",
            ),
            (
                json!({ "op": "remove", "path": "members", "value": [{ "display": "no id" }] }),
                "invalidValue",
            ),
            (
                json!({ "op": "remove", "path": "members[nope eq \"x\"]" }),
                "invalidPath",
            ),
        ] {
            let e = split_error(
                json!([{ "op": "add", "path": "displayName", "value": "ok" }, operation]),
            );
            assert_eq!(e.scim_type, scim_type, "{operation}: {e}");
            assert!(e.detail.starts_with("operation 2 "), "{e}");
        }
    }

    // ---- errors ------------------------------------------------------------------------------

    #[test]
    fn unknown_op_is_invalid_syntax_naming_the_operation() {
        let e = parse_request(&request(json!([
            { "op": "add", "path": "title", "value": "x" },
            { "op": "move", "path": "title" }
        ])))
        .expect_err("move is not an op");
        assert_eq!(e.scim_type, "invalidSyntax");
        assert!(
            e.detail.contains("operation 2") && e.detail.contains("move"),
            "{e}"
        );
    }

    #[test]
    fn malformed_request_bodies_are_invalid_syntax() {
        for body in [
            json!({ "schemas": [PATCH_OP_SCHEMA] }),
            json!({ "schemas": [PATCH_OP_SCHEMA], "Operations": [] }),
            json!({ "schemas": [PATCH_OP_SCHEMA], "Operations": { "op": "add" } }),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{ "op": "remove", "path": "title" }]
            }),
            json!({ "schemas": PATCH_OP_SCHEMA, "Operations": [{ "op": "remove" }] }),
            json!([{ "op": "remove", "path": "title" }]),
            json!({ "Operations": ["remove title"] }),
            json!({ "Operations": [{ "path": "title" }] }),
        ] {
            let e = parse_request(&body).expect_err("malformed");
            assert_eq!(e.scim_type, "invalidSyntax", "{body}");
        }
        let tolerated = json!({ "Operations": [{ "op": "remove", "path": "title" }] });
        assert_eq!(parse_request(&tolerated).map(|o| o.len()), Ok(1));
    }

    #[test]
    fn too_many_operations_is_invalid_value() {
        let many: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({ "op": "remove", "path": "title" }))
            .collect();
        let e = parse_request(&request(Value::Array(many))).expect_err("too many");
        assert_eq!(e.scim_type, "invalidValue");
    }

    #[test]
    fn add_or_replace_without_a_value_is_invalid_value() {
        for op in ["add", "replace"] {
            let e = parse_request(&request(json!([{ "op": op, "path": "title" }])))
                .expect_err("no value");
            assert_eq!(e.scim_type, "invalidValue", "{op}");
            assert!(e.detail.contains("title"), "{e}");
        }
    }

    #[test]
    fn remove_without_a_path_is_no_target() {
        let e = rejected(ResourceType::User, &user(), json!([{ "op": "remove" }]));
        assert_eq!(e.scim_type, "noTarget");
    }

    #[test]
    fn changing_read_only_attributes_is_a_mutability_error() {
        for (op, path) in [
            ("replace", "meta.created"),
            ("replace", "groups"),
            ("add", "groups"),
            ("remove", "groups[value eq \"x\"]"),
            ("replace", "id"),
            (
                "replace",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName",
            ),
        ] {
            let e = rejected(
                ResourceType::User,
                &user(),
                json!([{ "op": op, "path": path, "value": "x" }]),
            );
            assert_eq!(e.scim_type, "mutability", "{op} {path}");
            assert!(e.detail.contains("operation 1"), "{e}");
        }
        let e = rejected(
            ResourceType::User,
            &user(),
            json!([{ "op": "add", "value": { "groups": [{ "value": "g" }] } }]),
        );
        assert_eq!(e.scim_type, "mutability");
        let e = rejected(
            ResourceType::Group,
            &group(),
            json!([{ "op": "replace", "path": "members.display", "value": "x" }]),
        );
        assert_eq!(e.scim_type, "mutability");
    }

    #[test]
    fn bad_path_syntax_is_invalid_path() {
        let e = parse_request(&request(
            json!([{ "op": "replace", "path": "emails[type eq", "value": "x" }]),
        ))
        .expect_err("bad path");
        assert_eq!(e.scim_type, "invalidPath");
        assert!(e.detail.contains("emails[type eq"), "{e}");
        let e = rejected(
            ResourceType::User,
            &user(),
            json!([{ "op": "replace", "value": { "name..givenName": "x" } }]),
        );
        assert_eq!(e.scim_type, "invalidPath");
    }

    #[test]
    fn unknown_attributes_of_known_schemas_are_invalid_path() {
        for path in [
            "nope",
            "name.nope",
            "emails[nope eq \"x\"]",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope",
            "urn:ietf:params:scim:schemas:core:2.0:User:members",
        ] {
            let e = rejected(
                ResourceType::User,
                &user(),
                json!([{ "op": "replace", "path": path, "value": "x" }]),
            );
            assert_eq!(e.scim_type, "invalidPath", "{path}");
        }
    }

    #[test]
    fn replace_with_a_filter_that_matches_nothing_and_describes_no_element_is_no_target() {
        for path in [
            "emails[value co \"nobody\"].type",
            "emails[type eq \"other\" or type eq \"home2\"]",
        ] {
            let e = rejected(
                ResourceType::User,
                &user(),
                json!([{ "op": "replace", "path": path, "value": { "type": "work" } }]),
            );
            assert_eq!(e.scim_type, "noTarget", "{path}");
        }
    }

    #[test]
    fn a_request_whose_second_operation_fails_leaves_the_resource_unchanged() {
        let ops = parse_request(&request(json!([
            { "op": "replace", "path": "displayName", "value": "Changed" },
            { "op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z" }
        ])))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut u = user();
        let e = apply(&Schemas::default(), ResourceType::User, &mut u, &ops)
            .expect_err("meta is readOnly");
        assert!(
            e.detail.starts_with("operation 2 (replace meta.created)"),
            "{e}"
        );
        assert_eq!(u, user());
    }

    /// The hashed lookups answer exactly as the comparisons they replace.
    mod lookups {
        use super::*;
        use crate::scim_proto::schema::{Returned, USER, Uniqueness};
        use proptest::prelude::*;

        static TAGS: AttributeDef = AttributeDef {
            name: "tags",
            kind: AttrType::String,
            description: "",
            multi_valued: true,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
        };

        fn attributes() -> [&'static AttributeDef; 3] {
            [
                USER.attribute("emails").expect("emails"),
                schema::GROUP.attribute("members").expect("members"),
                &TAGS,
            ]
        }

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                prop::sample::select(vec!["a@x", "A@X", "b@x", "work", "Work", ""])
                    .prop_map(Value::from),
                prop::sample::select(vec![0.0, -0.0, 1.0]).prop_map(Value::from),
                prop::sample::select(vec![0i64, 1, -1]).prop_map(Value::from),
            ]
        }

        fn element() -> impl Strategy<Value = Value> {
            let key = prop::sample::select(vec!["value", "VALUE", "type", "display", "primary"]);
            prop_oneof![
                1 => scalar(),
                4 => prop::collection::btree_map(key, scalar(), 0..4).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn listed_values_name_what_names_element_names(
                given in prop::collection::vec(element(), 0..6),
                list in prop::collection::vec(element(), 0..12),
            ) {
                for attr in attributes() {
                    let listed = Listed::new(attr, given.clone());
                    for element in &list {
                        let expected = given.iter().any(|g| names_element(attr, g, element));
                        prop_assert_eq!(listed.names(element), expected, "{} {}", attr.name, element);
                    }
                }
            }

            #[test]
            fn indexed_elements_hold_what_a_scan_finds(
                existing in prop::collection::vec(element(), 0..12),
                incoming in prop::collection::vec(element(), 0..24),
            ) {
                for attr in attributes() {
                    let mut elements = Elements::new(attr, existing.clone());
                    let mut reference = existing.clone();
                    for new in incoming.iter().filter(|e| carries_a_value(e)) {
                        let expected = reference.iter().any(|e| already_holds(attr, e, new));
                        prop_assert_eq!(elements.holds(new), expected, "{} {}", attr.name, new);
                        if !expected {
                            elements.push(new.clone());
                            reference.push(new.clone());
                        }
                    }
                    prop_assert_eq!(elements.into_list(), reference);
                }
            }
        }

        #[test]
        fn adding_tens_of_thousands_of_values_keeps_each_distinct_one_once() {
            let value: Vec<Value> = (0..30_000)
                .map(|i| json!({ "value": format!("u{}@x.org", i % 20_000), "type": "work" }))
                .collect();
            let mut u = json!({ "schemas": [USER_SCHEMA], "userName": "a" });
            let ops = parse_request(&request(json!([
                { "op": "add", "path": "emails", "value": value }
            ])))
            .expect("valid");
            apply(&Schemas::default(), ResourceType::User, &mut u, &ops).expect("applies");
            assert_eq!(u["emails"].as_array().map(Vec::len), Some(20_000));
        }
    }
}
