//! Reach, route by route: a sub-org's admin token calls every operation of the served OpenAPI
//! document with the ids of its parent org's objects, then of its sibling org's, and gets 404
//! every time — as if the ids named nothing — and nothing changes. The walk names each route
//! once in `CALLS` and fails on a documented route it does not call, so a new route must say
//! how it is called here.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use rolegate::domain::token::TokenKind;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp};

const BASE: &str = "/api/v1";

/// What a call may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 404: the foreign id names nothing for this caller.
    NotFound,
    /// 2xx with the caller's own things only: none of the foreign org's ids in the body.
    OwnOnly,
    /// 403: the route is a signed-in user's own (`/me`, their sessions); a token is nobody.
    UsersOnly,
    /// 422: a foreign id in a mapping document of the caller's own org is no reference to
    /// anything there (the document names what it maps by id or name, within the org's
    /// subtree), reported at its pointer like any unknown name.
    Unknown,
}

/// One call of the walk, below `/api/v1`. `{name}` is filled with the foreign org's object of
/// that name, `{own.name}` with the caller's own org's, in the path, the query and the body.
struct Call {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    answer: Answer,
}

const fn call(method: &'static str, path: &'static str, body: Option<&'static str>) -> Call {
    Call {
        method,
        path,
        body,
        answer: Answer::NotFound,
    }
}

const PRODUCT_ACCESS: &str = r#"{"permission_groups": [], "role": "editor"}"#;
const GROUP: &str = r#"{"name": "Taken", "default_access": "full"}"#;
const RENAME: &str = r#"{"name": "Taken"}"#;
const MAPPINGS: &str = r#"{"version": 1, "rules": []}"#;
const CONNECTION: &str =
    r#"{"issuer": "https://idp.invalid", "client_id": "x", "client_secret": "y"}"#;
const CONNECTION_CHANGE: &str = r#"{"client_id": "taken-over"}"#;
const FOREIGN_MAPPING: &str = r#"{"version": 1, "rules": [{"name": "x", "idp_group": "X",
    "grants": [{"product": "{product_id}", "role": "administrator"},
               {"org": "{org_id}", "org_role": "owner"}]}]}"#;

/// Every documented operation, called with foreign ids wherever it takes one — in the path, or
/// in the query or body where that is where the org or product is named — and a few calls that
/// name the caller's own org in the path and a foreign object in the body or query.
const CALLS: &[Call] = &[
    Call {
        answer: Answer::OwnOnly,
        ..call("GET", "/openapi.json", None)
    },
    Call {
        answer: Answer::UsersOnly,
        ..call("GET", "/me", None)
    },
    Call {
        answer: Answer::UsersOnly,
        ..call("GET", "/me/sessions", None)
    },
    Call {
        answer: Answer::UsersOnly,
        ..call("DELETE", "/me/sessions/{session_id}", None)
    },
    Call {
        answer: Answer::OwnOnly,
        ..call("GET", "/orgs", None)
    },
    call(
        "POST",
        "/orgs",
        Some(r#"{"name": "Mine now", "parent_id": "{org_id}"}"#),
    ),
    call("GET", "/orgs/{org_id}", None),
    call("PATCH", "/orgs/{org_id}", Some(RENAME)),
    call("DELETE", "/orgs/{org_id}", None),
    call("GET", "/orgs/{org_id}/settings", None),
    call(
        "PUT",
        "/orgs/{org_id}/settings",
        Some(r#"{"require_sso": true}"#),
    ),
    call("GET", "/orgs/{org_id}/members", None),
    call("DELETE", "/orgs/{org_id}/members/{user_id}/sessions", None),
    // A foreign person is no member of the caller's own org.
    call(
        "DELETE",
        "/orgs/{own.org_id}/members/{user_id}/sessions",
        None,
    ),
    call(
        "PUT",
        "/orgs/{org_id}/members/{user_id}",
        Some(r#"{"role": "owner"}"#),
    ),
    call("DELETE", "/orgs/{org_id}/members/{user_id}", None),
    call(
        "PUT",
        "/orgs/{org_id}/members/{user_id}/modules",
        Some(r#"{"billing": "write"}"#),
    ),
    call(
        "GET",
        "/orgs/{org_id}/members/{user_id}/permissions?product={product_id}",
        None,
    ),
    call(
        "GET",
        "/orgs/{own.org_id}/members/{own.user_id}/permissions?product={product_id}",
        None,
    ),
    call("POST", "/users/{user_id}/scim-release", Some("{}")),
    Call {
        answer: Answer::OwnOnly,
        ..call("GET", "/users", None)
    },
    call("GET", "/users?org_id={org_id}", None),
    call("GET", "/users/{user_id}", None),
    call("GET", "/products/{product_id}/members", None),
    call("GET", "/orgs/{org_id}/idp-groups", None),
    call(
        "GET",
        "/orgs/{org_id}/idp-groups/{idp_group_id}/members",
        None,
    ),
    // The caller's own org with a group another org's IdP pushed: not one of its groups.
    call(
        "GET",
        "/orgs/{own.org_id}/idp-groups/{idp_group_id}/members",
        None,
    ),
    call(
        "POST",
        "/users/{own.user_id}/scim-release",
        Some(r#"{"to_org_id": "{org_id}"}"#),
    ),
    call("GET", "/orgs/{org_id}/mappings", None),
    call("PUT", "/orgs/{org_id}/mappings", Some(MAPPINGS)),
    call("POST", "/orgs/{org_id}/mappings/preview", Some(MAPPINGS)),
    Call {
        answer: Answer::Unknown,
        ..call("PUT", "/orgs/{own.org_id}/mappings", Some(FOREIGN_MAPPING))
    },
    Call {
        answer: Answer::Unknown,
        ..call(
            "POST",
            "/orgs/{own.org_id}/mappings/preview",
            Some(FOREIGN_MAPPING),
        )
    },
    call("GET", "/orgs/{org_id}/oidc-connections", None),
    call("POST", "/orgs/{org_id}/oidc-connections", Some(CONNECTION)),
    call("GET", "/oidc-connections/{connection_id}", None),
    call(
        "PATCH",
        "/oidc-connections/{connection_id}",
        Some(CONNECTION_CHANGE),
    ),
    call("DELETE", "/oidc-connections/{connection_id}", None),
    call("GET", "/orgs/{org_id}/products", None),
    call("POST", "/orgs/{org_id}/products", Some(RENAME)),
    call("GET", "/products/{product_id}", None),
    call("PATCH", "/products/{product_id}", Some(RENAME)),
    call("DELETE", "/products/{product_id}", None),
    call("POST", "/products/{product_id}/environments", Some(RENAME)),
    call("PATCH", "/environments/{environment_id}", Some(RENAME)),
    call("DELETE", "/environments/{environment_id}", None),
    call("GET", "/products/{product_id}/permission-groups", None),
    call(
        "POST",
        "/products/{product_id}/permission-groups",
        Some(GROUP),
    ),
    call("PUT", "/permission-groups/{group_id}", Some(GROUP)),
    call("DELETE", "/permission-groups/{group_id}", None),
    call(
        "PUT",
        "/products/{product_id}/members/{user_id}",
        Some(PRODUCT_ACCESS),
    ),
    call(
        "PUT",
        "/products/{product_id}/members/{own.user_id}",
        Some(PRODUCT_ACCESS),
    ),
    call("GET", "/products/{product_id}/audit", None),
    Call {
        answer: Answer::OwnOnly,
        ..call("GET", "/tokens", None)
    },
    call("GET", "/tokens?org_id={org_id}", None),
    call(
        "POST",
        "/tokens",
        Some(r#"{"kind": "admin", "org_id": "{org_id}"}"#),
    ),
    call("DELETE", "/tokens/{token_id}", None),
    call("GET", "/tokens/{token_id}/errors", None),
    call("GET", "/orgs/{org_id}/invitations", None),
    call(
        "POST",
        "/orgs/{org_id}/invitations",
        Some(r#"{"emails": "new@evil.test"}"#),
    ),
    call(
        "POST",
        "/orgs/{own.org_id}/invitations",
        Some(r#"{"emails": "new@evil.test", "product_id": "{product_id}"}"#),
    ),
    call("DELETE", "/invitations/{invitation_id}", None),
    call("POST", "/invitations/{invitation_id}/resend", None),
    call("GET", "/orgs/{org_id}/outbox", None),
    call("GET", "/orgs/{org_id}/outbox?status=all", None),
    call("POST", "/outbox/{mail_id}/retry", None),
    // The invitee's side takes a link, not a token: a caller without one finds nothing.
    call("GET", "/invitations/accept", None),
    call("POST", "/invitations/accept", None),
    Call {
        answer: Answer::OwnOnly,
        ..call("GET", "/audit", None)
    },
    call("GET", "/audit?org_id={org_id}", None),
    // Permission questions: a foreign user on the caller's own product, the caller's own user
    // on a foreign product or in a foreign org — each as if the id named nothing.
    call(
        "POST",
        "/authz/check",
        Some(
            r#"{"user_id": "{user_id}", "product_id": "{own.product_id}", "action": "view", "environment_id": "{own.environment_id}"}"#,
        ),
    ),
    call(
        "POST",
        "/authz/check",
        Some(
            r#"{"user_id": "{own.user_id}", "product_id": "{product_id}", "capability": "manage_members"}"#,
        ),
    ),
    call(
        "POST",
        "/authz/check",
        Some(
            r#"{"user_id": "{own.user_id}", "org_id": "{org_id}", "capability": "manage_org_settings"}"#,
        ),
    ),
    call("GET", "/authz/explain?user_id={user_id}", None),
    call(
        "GET",
        "/authz/explain?user_id={user_id}&product_id={product_id}",
        None,
    ),
    call(
        "GET",
        "/authz/explain?user_id={own.user_id}&product_id={product_id}",
        None,
    ),
    call(
        "GET",
        "/authz/explain?user_id={own.user_id}&org_id={org_id}",
        None,
    ),
];

/// An org's objects, each by the path parameter that names it.
pub(crate) struct Objects(pub(crate) BTreeMap<&'static str, String>);

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

/// One of each thing an admin path names, in `org`: a SCIM token and the person it provisions
/// (held by it and a member of `org`) with a SCIM group it pushed, a product with its
/// environments, a custom permission group, a pending invitation. Made with the root org's token, which reaches them all.
pub(crate) async fn objects(app: &TestApp, org: &str, tag: &str) -> Objects {
    let scim = app
        .ok(
            Method::POST,
            "/tokens",
            Some(json!({ "kind": "scim", "org_id": org })),
        )
        .await;
    let secret = scim["token_secret"].as_str().expect("secret");
    let email = format!("{tag}@acme.test");
    let user = app
        .scim_as(
            secret,
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email,
                "emails": [{ "value": email, "primary": true }],
            })),
            &[],
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
    let idp_group = app
        .scim_as(
            secret,
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": format!("{tag} engineers"),
                "members": [{ "value": id_of(&user.body) }],
            })),
            &[],
        )
        .await;
    assert_eq!(idp_group.status, StatusCode::CREATED, "{}", idp_group.text);
    let product = app
        .ok(
            Method::POST,
            &format!("/orgs/{org}/products"),
            Some(json!({ "name": format!("{tag} product") })),
        )
        .await;
    let product_id = id_of(&product);
    let group = app
        .ok(
            Method::POST,
            &format!("/products/{product_id}/permission-groups"),
            Some(json!({ "name": format!("{tag} group"), "default_access": "read_only" })),
        )
        .await;
    // An OIDC connection: its provider serves discovery while it is added, then may go.
    let connection_id = {
        let provider = crate::oidc::provider();
        id_of(&crate::oidc::add_connection(app, org, &provider.issuer, json!({})).await)
    };
    // The person signed in: a session to name.
    let session_id = rolegate::session::start(
        &app.state,
        &axum::http::HeaderMap::new(),
        rolegate::session::NewSession {
            user_id: id_of(&user.body).parse().expect("uuid"),
            method: rolegate::session::SignInMethod::EmailLink,
            id_token: None,
        },
    )
    .await
    .expect("session")
    .session()
    .id
    .to_string();
    let invited = app
        .ok(
            Method::POST,
            &format!("/orgs/{org}/invitations"),
            Some(json!({ "emails": format!("{tag}.invitee@acme.test") })),
        )
        .await;
    Objects(BTreeMap::from([
        ("org_id", org.to_owned()),
        ("user_id", id_of(&user.body)),
        ("product_id", product_id),
        ("environment_id", id_of(&product["environments"][0])),
        ("group_id", id_of(&group)),
        ("token_id", id_of(&scim)),
        ("invitation_id", id_of(&invited["results"][0]["invitation"])),
        // The invitation's mail in the outbox.
        (
            "mail_id",
            invited["results"][0]["mail_id"]
                .as_str()
                .expect("the invitation's mail")
                .to_owned(),
        ),
        ("idp_group_id", id_of(&idp_group.body)),
        ("connection_id", connection_id),
        ("session_id", session_id),
    ]))
}

/// `template` with `{own.name}` filled from `own` and `{name}` from `foreign`.
fn fill(template: &str, own: &Objects, foreign: &Objects) -> String {
    let mut out = template.to_owned();
    for (prefix, objects) in [("own.", own), ("", foreign)] {
        for (name, id) in &objects.0 {
            out = out.replace(&format!("{{{prefix}{name}}}"), id);
        }
    }
    assert!(!out.contains("_id}"), "unfilled placeholder in {out}");
    out
}

/// The documented operation a call exercises: `{own.x}` is the document's `{x}`; no query.
fn operation(c: &Call) -> (String, String) {
    let path = c.path.split('?').next().unwrap_or_default();
    (
        c.method.to_owned(),
        format!("{BASE}{}", path.replace("{own.", "{")),
    )
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// The newest audit event of the tenant: every change writes one (the store's write door
/// refuses a change without), so a call that changed anything moves it.
async fn newest_event(app: &TestApp) -> Value {
    app.ok(Method::GET, "/audit?limit=1", None).await["events"][0].clone()
}

/// Everything the root token sees of the tenant that a call could change, as one value:
/// orgs, members, products with their environments and groups, tokens (but when each was last
/// used: authenticating is not a change), invitations, the outbox, and the audit log.
async fn snapshot(app: &TestApp) -> Value {
    let orgs = app.ok(Method::GET, "/orgs", None).await;
    let mut seen = BTreeMap::new();
    for org in orgs["orgs"].as_array().expect("orgs") {
        let org = id_of(org);
        let products = app
            .ok(Method::GET, &format!("/orgs/{org}/products"), None)
            .await;
        let mut details = Vec::new();
        for product in products["products"].as_array().expect("products") {
            details.push(
                app.ok(Method::GET, &format!("/products/{}", id_of(product)), None)
                    .await,
            );
        }
        let mut tokens = app
            .ok(Method::GET, &format!("/tokens?org_id={org}"), None)
            .await;
        for token in tokens["tokens"].as_array_mut().expect("tokens") {
            token["last_used_at"] = Value::Null;
        }
        let members = app
            .ok(
                Method::GET,
                &format!("/orgs/{org}/members?limit=1000"),
                None,
            )
            .await;
        let invitations = app
            .ok(Method::GET, &format!("/orgs/{org}/invitations"), None)
            .await;
        let outbox = app
            .ok(Method::GET, &format!("/orgs/{org}/outbox?status=all"), None)
            .await;
        let connections = app
            .ok(Method::GET, &format!("/orgs/{org}/oidc-connections"), None)
            .await;
        seen.insert(
            org,
            json!({ "products": details, "tokens": tokens, "members": members, "invitations": invitations, "outbox": outbox, "connections": connections }),
        );
    }
    let audit = app.ok(Method::GET, "/audit?limit=1000", None).await;
    json!({ "orgs": orgs, "each": seen, "audit": audit })
}

/// What makes a 404 of a read mean "out of reach": the caller's token reads the same route with
/// its own org's ids, and the root token, which reaches the whole tenant, reads the foreign ids.
async fn controls(app: &TestApp, caller: &str, c: &Call, foreign_path: &str, own: &Objects) {
    let own_path = fill(c.path, own, own);
    let mine = app.get(&format!("{BASE}{own_path}"), caller).await;
    assert!(
        mine.status.is_success(),
        "GET {own_path} with the caller's own ids: {} {}",
        mine.status,
        mine.text
    );
    if !c.path.contains("{own.") {
        let root = app.admin(Method::GET, foreign_path, None).await;
        assert!(
            root.status.is_success(),
            "GET {foreign_path} with the root token: {} {}",
            root.status,
            root.text
        );
    }
}

/// A sub-org's admin token against every route, with the ids of its parent's objects and then
/// its sibling's: 404 everywhere (the caller's own lists show none of them), nothing changed.
async fn a_sub_org_token_reaches_nothing_of_its_parent_or_sibling_on_any_route(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let own_org = app.sub_org(&root, "Payments").await;
    let sibling_org = app.sub_org(&root, "Growth").await;
    let caller = app
        .token(own_org.parse().expect("uuid"), TokenKind::Admin)
        .await;
    let own = objects(&app, &own_org, "own").await;
    let foreign = [
        ("parent", objects(&app, &root, "parent").await),
        ("sibling", objects(&app, &sibling_org, "sibling").await),
    ];

    let doc = app.get(&format!("{BASE}/openapi.json"), &caller).await.body;
    let called: BTreeSet<_> = CALLS.iter().map(operation).collect();
    let missing: Vec<_> = documented(&doc).difference(&called).cloned().collect();
    assert!(
        missing.is_empty(),
        "documented routes the walk does not call (add them to CALLS): {missing:?}"
    );
    let stale: Vec<_> = called.difference(&documented(&doc)).cloned().collect();
    assert!(
        stale.is_empty(),
        "CALLS names undocumented routes: {stale:?}"
    );

    for (whose, objects) in &foreign {
        let before = snapshot(&app).await;
        for c in CALLS {
            let path = fill(c.path, &own, objects);
            let method = Method::from_bytes(c.method.as_bytes()).expect("method");
            let body = c.body.map(|b| {
                serde_json::from_str::<Value>(&fill(b, &own, objects)).expect("body template")
            });
            let newest = newest_event(&app).await;
            let reply = app
                .call(
                    method.clone(),
                    &format!("{BASE}{path}"),
                    Some(&caller),
                    body,
                )
                .await;
            let what = format!("{} {path} with the {whose}'s ids", c.method);
            match c.answer {
                Answer::NotFound => assert_eq!(
                    reply.status,
                    StatusCode::NOT_FOUND,
                    "{what}: {}",
                    reply.text
                ),
                Answer::Unknown => {
                    assert_eq!(
                        reply.status,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "{what}: {}",
                        reply.text
                    );
                    let fields: Vec<&str> = reply.body["error"]["fields"]
                        .as_array()
                        .map(|all| all.iter().filter_map(|f| f["field"].as_str()).collect())
                        .unwrap_or_default();
                    assert_eq!(
                        fields,
                        ["/rules/0/grants/0/product", "/rules/0/grants/1/org"],
                        "{what}: {}",
                        reply.text
                    );
                }
                Answer::UsersOnly => {
                    assert_eq!(
                        reply.status,
                        StatusCode::FORBIDDEN,
                        "{what}: {}",
                        reply.text
                    );
                    assert_eq!(reply.body["error"]["code"], "forbidden", "{what}");
                }
                Answer::OwnOnly => {
                    assert!(reply.status.is_success(), "{what}: {}", reply.status);
                    // The root org's id is the tenant's, which every record carries
                    // (`tenant_id`); the caller's org also names it as its `parent_id`.
                    for id in objects.0.values().filter(|id| **id != root) {
                        assert!(!reply.text.contains(id.as_str()), "{what} shows {id}");
                    }
                }
            }
            assert_eq!(newest_event(&app).await, newest, "{what} changed something");
            if method == Method::GET && c.answer == Answer::NotFound && c.path.contains("_id}") {
                controls(&app, &caller, c, &path, &own).await;
            }
        }
        assert_eq!(
            snapshot(&app).await,
            before,
            "the walk with the {whose}'s ids changed something"
        );
    }
}

crate::on_both_backends!(a_sub_org_token_reaches_nothing_of_its_parent_or_sibling_on_any_route);
