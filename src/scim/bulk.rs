//! `/Bulk` (RFC 7644 §3.7): many operations in one request, each its own transaction, with
//! `bulkId` references between them and `failOnErrors`.
//!
//! Operations run in request order, except that one referring to a `bulkId` not yet created
//! waits until it is (§3.7.1 lets the client order them freely). References that can never be
//! resolved (unknown, failed or circular) fail their operation with `invalidValue`. More than
//! [`BULK_MAX_OPERATIONS`] operations, or a body over `maxPayloadSize`, is a 413.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::discovery::BULK_MAX_OPERATIONS;
use super::query::RawQuery;
use super::{IfMatch, Scim, ScimBody, ScimClient, ScimError, ScimReply};
use crate::scim_proto::resource::parse_etag;
use crate::state::AppState;

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

const BULK_ID_PREFIX: &str = "bulkId:";

struct Operation {
    method: String,
    path: String,
    bulk_id: Option<String>,
    data: Option<Value>,
    version: Option<String>,
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn parse(body: &Value) -> Result<(Vec<Operation>, Option<usize>), ScimError> {
    let object = body.as_object().ok_or_else(|| {
        ScimError::bad_request("invalidSyntax", "a BulkRequest must be a JSON object")
    })?;
    if let Some(schemas) = field(object, "schemas") {
        let ok = schemas.as_array().is_some_and(|s| {
            s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA))
            })
        });
        if !ok {
            return Err(ScimError::bad_request(
                "invalidSyntax",
                format!("a BulkRequest's schemas must list {BULK_REQUEST_SCHEMA}"),
            ));
        }
    }
    let fail_on_errors = match field(object, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n >= 1)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .map(Some)
            .ok_or_else(|| {
                ScimError::bad_request("invalidValue", "failOnErrors must be a positive integer")
            })?,
        Some(_) => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "failOnErrors must be a positive integer",
            ));
        }
    };
    let operations = field(object, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ScimError::bad_request("invalidSyntax", "a BulkRequest needs an Operations array")
        })?;
    if operations.len() > BULK_MAX_OPERATIONS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!(
                "{} operations exceed maxOperations ({BULK_MAX_OPERATIONS})",
                operations.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(operations.len());
    for (i, op) in operations.iter().enumerate() {
        let n = i + 1;
        let op = op.as_object().ok_or_else(|| {
            ScimError::bad_request("invalidSyntax", format!("operation {n} is not an object"))
        })?;
        let text = |name: &str| field(op, name).and_then(Value::as_str).map(str::to_owned);
        let method = text("method").ok_or_else(|| {
            ScimError::bad_request("invalidSyntax", format!("operation {n} has no method"))
        })?;
        let path = text("path").ok_or_else(|| {
            ScimError::bad_request("invalidSyntax", format!("operation {n} has no path"))
        })?;
        let bulk_id = text("bulkId");
        if method.eq_ignore_ascii_case("POST") && bulk_id.is_none() {
            return Err(ScimError::bad_request(
                "invalidSyntax",
                format!("operation {n} is a POST without a bulkId (RFC 7644 §3.7)"),
            ));
        }
        out.push(Operation {
            method: method.to_ascii_uppercase(),
            path,
            bulk_id,
            data: field(op, "data").cloned(),
            version: text("version"),
        });
    }
    let ids: Vec<&String> = out.iter().filter_map(|o| o.bulk_id.as_ref()).collect();
    let unique: HashSet<&&String> = ids.iter().collect();
    if unique.len() != ids.len() {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "bulkIds must be unique",
        ));
    }
    Ok((out, fail_on_errors))
}

/// The `bulkId`s a value refers to (`"bulkId:…"` strings anywhere in it).
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_ID_PREFIX) {
                out.push(id.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        Value::Object(members) => members.values().for_each(|v| references(v, out)),
        _ => {}
    }
}

fn substitute(value: &mut Value, created: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_ID_PREFIX).and_then(|b| created.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, created)),
        Value::Object(members) => members.values_mut().for_each(|v| substitute(v, created)),
        _ => {}
    }
}

fn operation_refs(op: &Operation) -> Vec<String> {
    let mut refs = Vec::new();
    for segment in op.path.split('/') {
        if let Some(id) = segment.strip_prefix(BULK_ID_PREFIX) {
            refs.push(id.to_owned());
        }
    }
    if let Some(data) = &op.data {
        references(data, &mut refs);
    }
    refs.sort();
    refs.dedup();
    refs
}

fn error_result(op: &Operation, e: &ScimError) -> Value {
    let mut response = json!({
        "schemas": [super::ERROR_SCHEMA],
        "status": e.status.as_u16().to_string(),
        "detail": e.detail,
    });
    if let Some(t) = e.scim_type {
        response["scimType"] = json!(t);
    }
    let mut out = json!({
        "method": op.method,
        "status": e.status.as_u16().to_string(),
        "response": response,
    });
    if let Some(b) = &op.bulk_id {
        out["bulkId"] = json!(b);
    }
    out
}

/// Records a failed operation's `bulkId`: every operation that refers to it can no longer run.
fn mark_failed(
    bulk_id: &Option<String>,
    failed: &mut HashSet<String>,
    dependents: &HashMap<&str, Vec<usize>>,
    doomed: &mut [bool],
) {
    if let Some(b) = bulk_id {
        failed.insert(b.clone());
        for &d in dependents.get(b.as_str()).map_or(&[][..], Vec::as_slice) {
            doomed[d] = true;
        }
    }
}

impl Scim<'_> {
    /// Runs one operation as its own request would.
    async fn run(&self, op: &Operation) -> Result<ScimReply, ScimError> {
        let mut path = op.path.clone();
        let data = op.data.clone().unwrap_or(Value::Null);
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let no_query = RawQuery::default();
        let if_match = match &op.version {
            None => IfMatch::Absent,
            Some(v) if v.trim() == "*" => IfMatch::Any,
            Some(v) => IfMatch::Version(parse_etag(v)),
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let unsupported = || {
            ScimError::bad_request(
                "invalidValue",
                format!(
                    "{} {} is not a supported bulk operation",
                    op.method, op.path
                ),
            )
        };
        match (op.method.as_str(), segments.as_slice()) {
            ("POST", ["Users"]) => self.create_user(&data, &no_query).await,
            ("POST", ["Groups"]) => self.create_group(&data, &no_query).await,
            ("PUT", ["Users", id]) => self.replace_user(id, &data, if_match, &no_query).await,
            ("PUT", ["Groups", id]) => self.replace_group(id, &data, if_match, &no_query).await,
            ("PATCH", ["Users", id]) => self.patch_user(id, &data, if_match, &no_query).await,
            ("PATCH", ["Groups", id]) => self.patch_group(id, &data, if_match, &no_query).await,
            ("DELETE", ["Users", id]) => self.delete_user(id, if_match).await,
            ("DELETE", ["Groups", id]) => self.delete_group(id, if_match).await,
            _ => Err(unsupported()),
        }
    }
}

pub(super) async fn bulk(
    State(state): State<AppState>,
    client: ScimClient,
    _headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<ScimReply, ScimError> {
    let parsed = parse(&body);
    // One rate-limit token per operation, so a Bulk of 1,000 costs what 1,000 requests do; a
    // Bulk the budget cannot cover is refused whole (429) before any operation runs, never cut
    // short halfway. A request that is no valid Bulk costs one, like any request.
    let cost = parsed.as_ref().map_or(1, |(ops, _)| ops.len().max(1));
    client.charge(&state, cost)?;
    let (operations, fail_on_errors) = parsed?;
    let scim = Scim::new(&state, &client);
    let in_request: HashSet<String> = operations
        .iter()
        .filter_map(|o| o.bulk_id.clone())
        .collect();
    // Each operation's references are found once, and what an operation waits on is counted
    // down as operations succeed or fail: re-reading every waiting operation's data in every
    // round made a request of long data and long reference chains quadratic.
    let refs: Vec<Vec<String>> = operations.iter().map(operation_refs).collect();
    let mut dependents: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op_refs) in refs.iter().enumerate() {
        for r in op_refs {
            dependents.entry(r.as_str()).or_default().push(i);
        }
    }
    // References not yet created, and whether one can never be (unknown, or its operation
    // failed).
    let mut unmet: Vec<usize> = refs.iter().map(Vec::len).collect();
    let mut doomed: Vec<bool> = refs
        .iter()
        .map(|op_refs| op_refs.iter().any(|r| !in_request.contains(r)))
        .collect();
    let mut created: HashMap<String, String> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut results: Vec<Option<Value>> = vec![None; operations.len()];
    let mut pending: Vec<usize> = (0..operations.len()).collect();
    let mut errors = 0usize;
    'rounds: while !pending.is_empty() {
        let mut waiting = Vec::new();
        let mut progressed = false;
        for i in pending {
            if fail_on_errors.is_some_and(|limit| errors >= limit) {
                // §3.7.3: after failOnErrors errors, the rest is not attempted.
                break 'rounds;
            }
            let op = &operations[i];
            let unresolvable = doomed[i]
                .then(|| {
                    refs[i]
                        .iter()
                        .find(|r| !in_request.contains(*r) || failed.contains(*r))
                })
                .flatten();
            if let Some(r) = unresolvable {
                let e = ScimError::bad_request(
                    "invalidValue",
                    format!("bulkId \"{r}\" names no operation of this request that succeeded"),
                );
                results[i] = Some(error_result(op, &e));
                mark_failed(&op.bulk_id, &mut failed, &dependents, &mut doomed);
                errors += 1;
                progressed = true;
                continue;
            }
            if unmet[i] > 0 {
                waiting.push(i);
                continue;
            }
            progressed = true;
            let mut resolved = Operation {
                method: op.method.clone(),
                path: op.path.clone(),
                bulk_id: op.bulk_id.clone(),
                data: op.data.clone(),
                version: op.version.clone(),
            };
            resolved.path = op
                .path
                .split('/')
                .map(|segment| {
                    segment
                        .strip_prefix(BULK_ID_PREFIX)
                        .and_then(|b| created.get(b))
                        .map_or_else(|| segment.to_owned(), Clone::clone)
                })
                .collect::<Vec<_>>()
                .join("/");
            if let Some(data) = &mut resolved.data {
                substitute(data, &created);
            }
            match scim.run(&resolved).await {
                Ok(reply) => {
                    let location = reply.location.clone().or_else(|| {
                        reply
                            .body
                            .as_ref()
                            .and_then(|b| b["meta"]["location"].as_str().map(str::to_owned))
                    });
                    if let (Some(b), Some(id)) = (
                        &op.bulk_id,
                        reply.body.as_ref().and_then(|b| b["id"].as_str()),
                    ) && created.insert(b.clone(), id.to_owned()).is_none()
                    {
                        for &d in dependents.get(b.as_str()).map_or(&[][..], Vec::as_slice) {
                            unmet[d] -= 1;
                        }
                    }
                    let mut out = json!({
                        "method": op.method,
                        "status": reply.status.as_u16().to_string(),
                    });
                    if let Some(b) = &op.bulk_id {
                        out["bulkId"] = json!(b);
                    }
                    if let Some(l) = location {
                        out["location"] = json!(l);
                    } else if op.method != "DELETE" {
                        out["location"] = json!(format!("{}{}", scim.base, resolved.path));
                    }
                    if let Some(v) = reply.etag {
                        out["version"] = json!(v);
                    }
                    results[i] = Some(out);
                }
                Err(e) => {
                    results[i] = Some(error_result(&resolved, &e));
                    mark_failed(&op.bulk_id, &mut failed, &dependents, &mut doomed);
                    errors += 1;
                }
            }
        }
        if !progressed {
            // Everything left waits on something that waits on it: a cycle.
            for i in waiting {
                let e = ScimError::bad_request(
                    "invalidValue",
                    "circular bulkId references cannot be resolved",
                );
                results[i] = Some(error_result(&operations[i], &e));
            }
            break;
        }
        pending = waiting;
    }
    Ok(ScimReply::ok(json!({
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_in_paths_and_data() {
        let (ops, fail) = parse(&json!({
            "schemas": [BULK_REQUEST_SCHEMA],
            "failOnErrors": 1,
            "Operations": [
                { "method": "post", "path": "/Users", "bulkId": "u1", "data": { "userName": "a" } },
                { "method": "POST", "path": "/Groups", "bulkId": "g1",
                  "data": { "displayName": "G", "members": [{ "value": "bulkId:u1" }] } },
                { "method": "PATCH", "path": "/Groups/bulkId:g1", "data": {} },
            ]
        }))
        .expect("valid");
        assert_eq!(fail, Some(1));
        assert_eq!(ops[0].method, "POST");
        assert!(operation_refs(&ops[0]).is_empty());
        assert_eq!(operation_refs(&ops[1]), ["u1"]);
        assert_eq!(operation_refs(&ops[2]), ["g1"]);
    }

    #[test]
    fn malformed_requests_are_refused_whole() {
        for body in [
            json!([]),
            json!({ "Operations": "x" }),
            json!({ "Operations": [{ "method": "POST", "path": "/Users" }] }),
            json!({ "Operations": [
                { "method": "POST", "path": "/Users", "bulkId": "a" },
                { "method": "POST", "path": "/Users", "bulkId": "a" }
            ] }),
            json!({ "failOnErrors": 0, "Operations": [] }),
        ] {
            assert!(parse(&body).is_err(), "{body}");
        }
        let too_many: Vec<Value> = (0..=BULK_MAX_OPERATIONS)
            .map(|_| json!({ "method": "DELETE", "path": "/Users/x" }))
            .collect();
        let e = parse(&json!({ "Operations": too_many }))
            .err()
            .expect("413");
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
