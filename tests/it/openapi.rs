//! The OpenAPI document at `/api/v1/openapi.json`: served without a token, well formed, and
//! the same set of operations as the router serves — checked both ways, by a literal list of
//! the admin API's routes and by sending each documented operation through the real router.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::http::{Reply, request};
use crate::common::{Backend, TestApp};

/// Every operation of the admin API, read off `src/admin`. A route added without
/// `#[utoipa::path]` + `routes!` is missing from the document, and fails here.
const OPERATIONS: [(&str, &str); 60] = [
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/me/sessions"),
    ("DELETE", "/api/v1/me/sessions/{session_id}"),
    ("GET", "/api/v1/orgs"),
    ("POST", "/api/v1/orgs"),
    ("GET", "/api/v1/orgs/{org_id}"),
    ("PATCH", "/api/v1/orgs/{org_id}"),
    ("DELETE", "/api/v1/orgs/{org_id}"),
    ("GET", "/api/v1/orgs/{org_id}/settings"),
    ("PUT", "/api/v1/orgs/{org_id}/settings"),
    ("GET", "/api/v1/orgs/{org_id}/members"),
    ("PUT", "/api/v1/orgs/{org_id}/members/{user_id}"),
    ("DELETE", "/api/v1/orgs/{org_id}/members/{user_id}"),
    ("PUT", "/api/v1/orgs/{org_id}/members/{user_id}/modules"),
    ("DELETE", "/api/v1/orgs/{org_id}/members/{user_id}/sessions"),
    ("GET", "/api/v1/orgs/{org_id}/members/{user_id}/permissions"),
    ("POST", "/api/v1/users/{user_id}/scim-release"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/{user_id}"),
    ("GET", "/api/v1/products/{product_id}/members"),
    ("GET", "/api/v1/orgs/{org_id}/idp-groups"),
    (
        "GET",
        "/api/v1/orgs/{org_id}/idp-groups/{idp_group_id}/members",
    ),
    ("GET", "/api/v1/orgs/{org_id}/mappings"),
    ("PUT", "/api/v1/orgs/{org_id}/mappings"),
    ("POST", "/api/v1/orgs/{org_id}/mappings/preview"),
    ("GET", "/api/v1/orgs/{org_id}/oidc-connections"),
    ("POST", "/api/v1/orgs/{org_id}/oidc-connections"),
    ("GET", "/api/v1/oidc-connections/{connection_id}"),
    ("PATCH", "/api/v1/oidc-connections/{connection_id}"),
    ("DELETE", "/api/v1/oidc-connections/{connection_id}"),
    ("GET", "/api/v1/orgs/{org_id}/products"),
    ("POST", "/api/v1/orgs/{org_id}/products"),
    ("GET", "/api/v1/products/{product_id}"),
    ("PATCH", "/api/v1/products/{product_id}"),
    ("DELETE", "/api/v1/products/{product_id}"),
    ("POST", "/api/v1/products/{product_id}/environments"),
    ("PATCH", "/api/v1/environments/{environment_id}"),
    ("DELETE", "/api/v1/environments/{environment_id}"),
    ("GET", "/api/v1/products/{product_id}/permission-groups"),
    ("POST", "/api/v1/products/{product_id}/permission-groups"),
    ("PUT", "/api/v1/permission-groups/{group_id}"),
    ("DELETE", "/api/v1/permission-groups/{group_id}"),
    ("PUT", "/api/v1/products/{product_id}/members/{user_id}"),
    ("GET", "/api/v1/products/{product_id}/audit"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("GET", "/api/v1/tokens/{token_id}/errors"),
    ("GET", "/api/v1/orgs/{org_id}/invitations"),
    ("POST", "/api/v1/orgs/{org_id}/invitations"),
    ("DELETE", "/api/v1/invitations/{invitation_id}"),
    ("POST", "/api/v1/invitations/{invitation_id}/resend"),
    ("GET", "/api/v1/orgs/{org_id}/outbox"),
    ("POST", "/api/v1/outbox/{mail_id}/retry"),
    ("GET", "/api/v1/invitations/accept"),
    ("POST", "/api/v1/invitations/accept"),
    ("GET", "/api/v1/audit"),
    ("POST", "/api/v1/authz/check"),
    ("GET", "/api/v1/authz/explain"),
];

/// Operations open to anyone: the invitee has a link, not a token; the document is documentation.
const PUBLIC: [(&str, &str); 3] = [
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/invitations/accept"),
    ("POST", "/api/v1/invitations/accept"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let reply = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/json",
        "content type"
    );
    reply.body
}

/// `(METHOD, path)` → the operation object, for every operation in the document.
fn operations(doc: &Value) -> Vec<((String, String), &Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for (key, op) in item.as_object().expect("path item") {
            if METHODS.contains(&key.as_str()) {
                out.push(((key.to_uppercase(), path.clone()), op));
            }
        }
    }
    out
}

/// Every `$ref` anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A concrete URI for a templated path: fresh random ids for the parameters.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                Uuid::now_v7().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn body_for(method: &str) -> Option<Value> {
    matches!(method, "POST" | "PUT" | "PATCH").then(|| json!({}))
}

/// Whether the router matched the request to a route and method: axum answers an unmatched
/// path with its fallback (404, empty body; our handlers' 404s carry an error body) and an
/// unrouted method on a matched path with 405.
/// Whether a route answered, rather than the router's fallbacks (an unknown path: `not_found`
/// with the "no such route" message; an unrouted method: 405).
fn routed(reply: &Reply) -> bool {
    let fallback = reply.status == StatusCode::NOT_FOUND
        && reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no such route"));
    !fallback && reply.status != StatusCode::METHOD_NOT_ALLOWED
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_served_without_a_token_and_well_formed() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = document(&app).await;

    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi: {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "rolegate admin API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let ops = operations(&doc);
    assert!(!ops.is_empty());
    for ((method, path), op) in &ops {
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} has no 2xx response"
        );
        // OpenAPI 3.1 requires a description on every response.
        for (status, response) in responses {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description"
            );
        }
        let tag = op["tags"][0].as_str().unwrap_or_default();
        assert!(!tag.is_empty(), "{method} {path} has no tag");
        assert!(
            op["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty() && !s.contains('\n')),
            "{method} {path}: summary {}",
            op["summary"]
        );
        // Every template parameter is declared as a path parameter, and nothing else is.
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path" && p["required"] == true)
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(templated, declared, "{method} {path} path parameters");
    }

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(
        all.contains(&"#/components/schemas/ErrorBody"),
        "no error body referenced"
    );
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(
            pointer.starts_with("/components/"),
            "$ref outside components: {r}"
        );
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routed_operation_is_documented_and_every_documented_one_is_routed() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = document(&app).await;

    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(key, _)| key).collect();
    let listed: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(listed.len(), OPERATIONS.len(), "duplicates in OPERATIONS");
    assert_eq!(
        documented.difference(&listed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not in OPERATIONS"
    );
    assert_eq!(
        listed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in OPERATIONS but not documented"
    );

    // The check below can fail: an unknown path and an unrouted method are told apart.
    let unknown = app
        .call(
            Method::GET,
            "/api/v1/no-such-thing",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert!(!routed(&unknown), "{} {}", unknown.status, unknown.text);
    let wrong_method = app
        .call(
            Method::PATCH,
            "/api/v1/tokens",
            Some(&app.admin_token),
            None,
        )
        .await;
    assert!(!routed(&wrong_method), "{}", wrong_method.status);

    // No method beyond the documented ones is routed on a documented path (one `routes!`
    // with handlers of different paths would route every method on every one of them).
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if documented.contains(&(method.to_owned(), path.clone())) {
                continue;
            }
            let m = Method::from_bytes(method.as_bytes()).expect("method");
            let reply = app
                .call(m, &concrete(path), Some(&app.admin_token), body_for(method))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is routed but not documented"
            );
        }
    }

    for (method, path) in &documented {
        let uri = concrete(path);
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let reply = app
            .call(m, &uri, Some(&app.admin_token), body_for(method))
            .await;
        assert!(
            routed(&reply),
            "{method} {uri} (documented as {path}) is not routed: {} {:?}",
            reply.status,
            reply.text
        );
        assert!(
            !reply.status.is_server_error(),
            "{method} {uri}: {} {}",
            reply.status,
            reply.text
        );
    }
}

/// The document's security requirements say what the router does: without a token, a bearer
/// operation answers 401 and a public one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_security_matches_what_the_router_requires() {
    let app = TestApp::new(Backend::Sqlite).await;
    let doc = document(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );

    let public: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    for (i, ((method, path), op)) in operations(&doc).into_iter().enumerate() {
        let is_public = public.contains(&(method.clone(), path.clone()));
        if is_public {
            assert!(
                op.get("security").is_none(),
                "{method} {path} needs a token"
            );
        } else {
            assert_eq!(op["security"], json!([{ "bearer": [] }]), "{method} {path}");
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: 401 undocumented"
            );
        }
        // A client address of its own per request, so the failed attempts stay under the
        // rate limit.
        let octet = u8::try_from(i + 1).expect("fewer than 255 operations");
        let from = SocketAddr::from(([127, 0, 1, octet], 40_000));
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let reply = app
            .send(request(
                m,
                &concrete(&path),
                None,
                body_for(&method),
                Some(from),
            ))
            .await;
        if is_public {
            assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        } else {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
}
