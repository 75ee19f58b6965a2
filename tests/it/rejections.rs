//! Every rejection of the admin API in the one error shape, route by route: the walk reads the
//! served OpenAPI document and, for every operation, sends a malformed id in each path
//! parameter, a value of the wrong form in each typed query parameter, each required query
//! parameter left out, a body missing its required fields and a body that is not JSON. Each
//! answer is `{"error": {"code", "message"}}` naming the parameter or field as the client
//! spelled it. A new route is walked without being listed; a new path parameter must be made
//! by `reach::objects`, or the walk stops on it.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};
use crate::reach::{Objects, objects};

const BASE: &str = "/api/v1";
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The rejection's field errors, after checking the shape every admin error has.
fn fields(reply: &Reply, what: &str) -> Vec<(String, String)> {
    let error = &reply.body["error"];
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "{what}: not the error shape: {} {}",
        reply.status,
        reply.text
    );
    error["fields"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|f| {
                    (
                        f["field"].as_str().unwrap_or_default().to_owned(),
                        f["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A 422 naming `field`; returns its message.
fn names_field(reply: &Reply, field: &str, what: &str) -> String {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {}",
        reply.text
    );
    assert_eq!(reply.body["error"]["code"], "validation_failed", "{what}");
    let fields = fields(reply, what);
    fields
        .iter()
        .find(|(name, _)| name == field)
        .map(|(_, message)| message.clone())
        .unwrap_or_else(|| panic!("{what}: no field error for `{field}`: {}", reply.text))
}

/// `path` with each `{param}` filled from `ids`, except `bad`, which gets `acme`.
fn fill_path(path: &str, ids: &Objects, bad: Option<&str>) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if Some(name) == bad => "acme".to_owned(),
                Some(name) => ids
                    .0
                    .get(name)
                    .unwrap_or_else(|| {
                        panic!("no object for the path parameter {{{name}}} in {path}")
                    })
                    .clone(),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A value `schema` rejects, when a string can be of the wrong form for it.
fn wrong_form(schema: &Value) -> Option<&'static str> {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(all) => all.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match schema["format"].as_str() {
        Some("uuid") => return Some("nope"),
        Some("date-time") => return Some("2026-12-02"),
        _ => {}
    }
    if schema["enum"].is_array() {
        Some("zzz")
    } else if types.contains(&"integer") {
        Some("ten")
    } else if types.contains(&"boolean") {
        Some("maybe")
    } else {
        None
    }
}

/// The fields the operation's JSON body requires, when its schema is an object that says —
/// or, for a body of several forms (`oneOf`), the fields some form requires: `{}` is none of
/// them, and the answer must name what one of them lacks.
fn required_body_fields(doc: &Value, op: &Value) -> Option<Vec<String>> {
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    let mut required = Vec::new();
    collect_required(doc, schema, &mut required);
    (!required.is_empty()).then_some(required)
}

fn collect_required(doc: &Value, schema: &Value, out: &mut Vec<String>) {
    let schema = match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    };
    if let Some(forms) = schema["oneOf"].as_array() {
        for form in forms {
            collect_required(doc, form, out);
        }
    }
    out.extend(
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned)),
    );
}

async fn send_raw(app: &TestApp, method: &Method, uri: &str, body: &'static str) -> Reply {
    let request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header("authorization", format!("Bearer {}", app.admin_token))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    app.send(request).await
}

async fn every_rejection_names_what_was_wrong_in_the_error_shape(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ids = objects(&app, &app.org_id.to_string(), "walk").await;
    let doc = app
        .call(Method::GET, &format!("{BASE}/openapi.json"), None, None)
        .await
        .body;
    let mut walked = (0, 0, 0, 0);
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method_name, op) in item.as_object().expect("path item") {
            if !METHODS.contains(&method_name.as_str()) {
                continue;
            }
            let method = Method::from_bytes(method_name.to_uppercase().as_bytes()).expect("m");
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let takes_body = op["requestBody"].is_object();
            let body = takes_body.then(|| json!({}));
            // Required query parameters, filled with a well-formed value, so that only the
            // parameter under test is wrong.
            let good_query: Vec<(String, String)> = params
                .iter()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or_default().to_owned();
                    let value = ids.0.get(name.as_str()).cloned().unwrap_or_else(|| {
                        ids.0
                            .get(format!("{name}_id").as_str())
                            .cloned()
                            .unwrap_or_else(|| "x".to_owned())
                    });
                    (name, value)
                })
                .collect();
            let query_with = |skip: Option<&str>, extra: Option<(&str, &str)>| {
                let mut pairs: Vec<String> = good_query
                    .iter()
                    .filter(|(n, _)| Some(n.as_str()) != skip)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                if let Some((n, v)) = extra {
                    pairs.push(format!("{n}={v}"));
                }
                if pairs.is_empty() {
                    String::new()
                } else {
                    format!("?{}", pairs.join("&"))
                }
            };

            for param in params.iter().filter(|p| p["in"] == "path") {
                let name = param["name"].as_str().expect("name");
                let uri = format!(
                    "{}{}",
                    fill_path(path, &ids, Some(name)),
                    query_with(None, None)
                );
                let what = format!("{method} {uri} (bad path id `{name}`)");
                let reply = app
                    .call(method.clone(), &uri, Some(&app.admin_token), body.clone())
                    .await;
                let message = names_field(&reply, name, &what);
                assert!(
                    message.contains("UUID") && message.contains("acme"),
                    "{what}: {message}"
                );
                walked.0 += 1;
            }

            let real_path = fill_path(path, &ids, None);
            for param in params.iter().filter(|p| p["in"] == "query") {
                let name = param["name"].as_str().expect("name");
                if let Some(bad) = wrong_form(&param["schema"]) {
                    let uri = format!("{real_path}{}", query_with(Some(name), Some((name, bad))));
                    let what = format!("{method} {uri} (`{name}` of the wrong form)");
                    let reply = app
                        .call(method.clone(), &uri, Some(&app.admin_token), body.clone())
                        .await;
                    let message = names_field(&reply, name, &what);
                    if param["schema"]["format"] == "date-time" {
                        assert!(message.contains("RFC 3339"), "{what}: {message}");
                    }
                    if param["schema"]["format"] == "uuid" {
                        assert!(message.contains("UUID"), "{what}: {message}");
                    }
                    walked.1 += 1;
                }
                if param["required"] == true {
                    let uri = format!("{real_path}{}", query_with(Some(name), None));
                    let what = format!("{method} {uri} (`{name}` left out)");
                    let reply = app
                        .call(method.clone(), &uri, Some(&app.admin_token), body.clone())
                        .await;
                    // The invitee's link is its credential: without it, the link finds nothing.
                    if reply.status == StatusCode::NOT_FOUND {
                        fields(&reply, &what);
                    } else {
                        assert_eq!(names_field(&reply, name, &what), "required", "{what}");
                    }
                }
            }

            if takes_body {
                let uri = format!("{real_path}{}", query_with(None, None));
                if let Some(required) = required_body_fields(&doc, op) {
                    let what = format!("{method} {uri} with `{{}}`");
                    let reply = app
                        .call(
                            method.clone(),
                            &uri,
                            Some(&app.admin_token),
                            Some(json!({})),
                        )
                        .await;
                    let named = fields(&reply, &what);
                    assert_eq!(
                        reply.status,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "{what}: {}",
                        reply.text
                    );
                    // A mapping document names its fields by JSON Pointer (`/version`).
                    assert!(
                        named.iter().any(|(f, m)| {
                            let f = f.strip_prefix('/').unwrap_or(f);
                            required.iter().any(|r| r == f) && m == "required"
                        }),
                        "{what}: expected one of {required:?} named as required: {}",
                        reply.text
                    );
                    walked.2 += 1;
                }
                let what = format!("{method} {uri} with a body that is not JSON");
                let reply = send_raw(&app, &method, &uri, "{not json").await;
                if reply.status != StatusCode::NOT_FOUND {
                    assert_eq!(
                        reply.status,
                        StatusCode::BAD_REQUEST,
                        "{what}: {}",
                        reply.text
                    );
                    assert_eq!(reply.body["error"]["code"], "bad_request", "{what}");
                }
                fields(&reply, &what);
                walked.3 += 1;
            }
        }
    }
    // The walk reached every kind of input (the counts grow with the API, never to zero).
    let (path_ids, queries, bodies, not_json) = walked;
    assert!(
        path_ids >= 30 && queries >= 10 && bodies >= 5 && not_json >= 10,
        "walked {walked:?}"
    );
}

/// The messages the issue that asked for them quoted, end to end.
async fn the_rejections_admins_met_say_what_to_send(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app.org_id;
    let reply = app
        .admin(Method::GET, "/audit?since=2026-12-02", None)
        .await;
    let message = names_field(&reply, "since", "audit?since=2026-12-02");
    assert!(
        message.contains("RFC 3339") && message.contains("2026-12-02T09:30:00Z"),
        "{message}"
    );
    let reply = app.admin(Method::GET, "/orgs/acme", None).await;
    assert_eq!(
        names_field(&reply, "org_id", "/orgs/acme"),
        "expected an id (UUID), got \"acme\""
    );
    let user = app.user("perm@acme.test").await;
    let reply = app
        .admin(
            Method::GET,
            &format!("/orgs/{org}/members/{user}/permissions"),
            None,
        )
        .await;
    assert_eq!(names_field(&reply, "product", "permissions"), "required");
    let reply = app
        .admin(Method::POST, "/orgs", Some(json!({ "name": "Payments" })))
        .await;
    assert_eq!(names_field(&reply, "parent_id", "no parent_id"), "required");
    let reply = app
        .admin(
            Method::POST,
            "/orgs",
            Some(json!({ "name": "Payments", "parent_id": 7 })),
        )
        .await;
    let message = names_field(&reply, "parent_id", "parent_id: 7");
    assert!(message.contains("UUID"), "{message}");
}

crate::on_both_backends!(
    every_rejection_names_what_was_wrong_in_the_error_shape,
    the_rejections_admins_met_say_what_to_send,
);
