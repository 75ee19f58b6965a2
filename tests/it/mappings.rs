//! Group mapping through the real router: a SCIM group (nested groups included) turns into
//! product permissions while a rule maps it, and stops doing so the moment the membership, the
//! match or the rule goes; the document's ETag/If-Match, its errors at JSON Pointers, the
//! Owner rule with mapped Owners, the preview and the audit log.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use rolegate::domain::token::TokenKind;
use serde_json::{Value, json};

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

async fn scim_user(app: &TestApp, token: &str, user_name: &str) -> String {
    let reply = app
        .scim_as(
            token,
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": [USER],
                "userName": user_name,
                "emails": [{ "value": user_name, "primary": true }],
            })),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    id_of(&reply.body)
}

/// A SCIM group; `members` are user or group ids.
async fn scim_group(
    app: &TestApp,
    token: &str,
    name: &str,
    external_id: Option<&str>,
    members: &[&str],
) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let mut body = json!({ "schemas": [GROUP], "displayName": name, "members": members });
    if let Some(external) = external_id {
        body["externalId"] = json!(external);
    }
    let reply = app
        .scim_as(token, Method::POST, "/Groups", Some(body), &[])
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    id_of(&reply.body)
}

async fn scim_members(app: &TestApp, group: &str, op: &str, member: &str) {
    let value = if op == "remove" {
        json!({ "op": "remove", "path": format!("members[value eq \"{member}\"]") })
    } else {
        json!({ "op": "add", "path": "members", "value": [{ "value": member }] })
    };
    let reply = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{group}"),
            Some(json!({ "schemas": [PATCH_OP], "Operations": [value] })),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);
}

/// A product with a plain environment `dev` and a restricted one `prod`.
async fn product(app: &TestApp, org: &str, name: &str) -> (String, String, String) {
    let product = app
        .ok(
            Method::POST,
            &format!("/orgs/{org}/products"),
            Some(json!({
                "name": name,
                "environments": [{ "name": "dev" }, { "name": "prod", "restricted": true }],
            })),
        )
        .await;
    let env = |name: &str| {
        product["environments"]
            .as_array()
            .expect("environments")
            .iter()
            .find(|e| e["name"] == name)
            .map(id_of)
            .expect("environment")
    };
    (id_of(&product), env("dev"), env("prod"))
}

/// `(capabilities, [access in dev, access in prod])` of `user` on `product`, read through the
/// permissions route of `org`.
async fn access(
    app: &TestApp,
    org: &str,
    user: &str,
    product: &(String, String, String),
) -> (Vec<String>, [String; 2]) {
    let p = app
        .ok(
            Method::GET,
            &format!(
                "/orgs/{org}/members/{user}/permissions?product={}",
                product.0
            ),
            None,
        )
        .await;
    let capabilities = p["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .map(|c| c.as_str().expect("capability").to_owned())
        .collect();
    let env = |id: &str| p["environments"][id].as_str().expect("access").to_owned();
    (capabilities, [env(&product.1), env(&product.2)])
}

fn editor() -> (Vec<String>, [String; 2]) {
    (
        vec!["manage_resources".to_owned()],
        ["full".to_owned(), "edit".to_owned()],
    )
}

fn nothing() -> (Vec<String>, [String; 2]) {
    (Vec::new(), ["none".to_owned(), "none".to_owned()])
}

/// A raw request to the admin API with the app's admin token: a body sent as it is, headers.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"))
        .header("authorization", format!("Bearer {}", app.admin_token))
        .header("content-type", "application/json");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    app.send(builder.body(Body::from(body.to_owned())).expect("request"))
        .await
}

async fn put(app: &TestApp, org: &str, document: &Value, if_match: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
    send(
        app,
        Method::PUT,
        &format!("/orgs/{org}/mappings"),
        &document.to_string(),
        &headers,
    )
    .await
}

async fn put_ok(app: &TestApp, org: &str, document: &Value) -> Reply {
    let reply = put(app, org, document, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply
}

async fn get(app: &TestApp, org: &str) -> Reply {
    let reply = app
        .admin(Method::GET, &format!("/orgs/{org}/mappings"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply
}

fn etag(reply: &Reply) -> &str {
    reply.headers[header::ETAG].to_str().expect("etag")
}

/// The `fields` of a 422, as `(field, message)`.
fn fields(reply: &Reply) -> Vec<(String, String)> {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"]["code"], "validation_failed");
    reply.body["error"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f["field"].as_str().expect("field").to_owned(),
                f["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect()
}

fn eng_rule(idp_group: &str, enabled: bool) -> Value {
    json!({
        "version": 1,
        "rules": [{
            "name": "eng",
            "idp_group": idp_group,
            "enabled": enabled,
            "grants": [
                { "product": "Web", "role": "editor" },
                { "product": "PayWeb", "role": "editor" },
            ],
        }],
    })
}

/// The whole path, end to end: SCIM pushes ada into Platform, nested in Engineering; a rule
/// maps Engineering to Editor on Web; ada's permissions follow the membership, the match and
/// the rule on the next read, and a sub-org's own group of the same name never matches.
async fn a_mapped_scim_group_grants_while_it_matches_and_not_a_moment_longer(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let web = product(&app, &root, "Web").await;
    let payments = app.sub_org(&root, "Payments").await;
    let pay_web = product(&app, &payments, "PayWeb").await;

    let ada = scim_user(&app, &app.scim_token, "ada@acme.test").await;
    let platform = scim_group(&app, &app.scim_token, "Platform", None, &[&ada]).await;
    scim_group(
        &app,
        &app.scim_token,
        "Engineering",
        Some("okta-eng-00g1"),
        &[&platform],
    )
    .await;
    // The sub-org's IdP pushes its own "Engineering", with bob in it.
    let payments_scim = app
        .token(payments.parse().expect("uuid"), TokenKind::Scim)
        .await;
    let bob = scim_user(&app, &payments_scim, "bob@acme.test").await;
    scim_group(&app, &payments_scim, "Engineering", None, &[&bob]).await;

    assert_eq!(access(&app, &root, &ada, &web).await, nothing(), "unmapped");

    let first = put_ok(&app, &root, &eng_rule("Engineering", true)).await;
    assert_eq!(etag(&first), "\"1\"");
    assert_eq!(
        access(&app, &root, &ada, &web).await,
        editor(),
        "through Platform, nested in Engineering"
    );
    assert_eq!(
        access(&app, &payments, &ada, &pay_web).await,
        editor(),
        "the root's rule grants on a sub-org's product"
    );
    assert_eq!(
        access(&app, &payments, &bob, &pay_web).await,
        nothing(),
        "a sub-org's group named Engineering never matches the root's rule"
    );

    scim_members(&app, &platform, "remove", &ada).await;
    assert_eq!(
        access(&app, &root, &ada, &web).await,
        nothing(),
        "out of Platform: gone on the next read"
    );
    scim_members(&app, &platform, "add", &ada).await;
    assert_eq!(access(&app, &root, &ada, &web).await, editor(), "back in");

    // Matched by externalId (case-insensitively) as well as by displayName.
    put_ok(&app, &root, &eng_rule("OKTA-ENG-00G1", true)).await;
    assert_eq!(
        access(&app, &root, &ada, &web).await,
        editor(),
        "externalId"
    );
    put_ok(&app, &root, &eng_rule("Engineers", true)).await;
    assert_eq!(
        access(&app, &root, &ada, &web).await,
        nothing(),
        "a name no group has"
    );
    put_ok(&app, &root, &eng_rule("okta-eng-00g1", false)).await;
    assert_eq!(access(&app, &root, &ada, &web).await, nothing(), "disabled");
    put_ok(&app, &root, &eng_rule("okta-eng-00g1", true)).await;
    assert_eq!(access(&app, &root, &ada, &web).await, editor(), "enabled");
    assert_eq!(access(&app, &payments, &bob, &pay_web).await, nothing());

    // The sub-org's own rule, with its own token, does match its own group.
    let payments_admin = app
        .token(payments.parse().expect("uuid"), TokenKind::Admin)
        .await;
    let own = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{payments}/mappings"),
            Some(&payments_admin),
            Some(json!({
                "version": 1,
                "rules": [{ "name": "eng", "idp_group": "Engineering", "source": "scim",
                            "grants": [{ "product": "PayWeb", "role": "viewer" }] }],
            })),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(
        access(&app, &payments, &bob, &pay_web).await,
        (Vec::new(), ["read_only".to_owned(), "read_only".to_owned()]),
    );
    // … and the root's mappings are out of its reach.
    let parent = app
        .get(&format!("/api/v1/orgs/{root}/mappings"), &payments_admin)
        .await;
    assert_eq!(parent.status, StatusCode::NOT_FOUND, "{}", parent.text);
}

/// A stale If-Match, a malformed one and an invalid document are refused, and the stored
/// document is untouched each time.
async fn stale_or_invalid_writes_are_refused_with_every_error_and_nothing_applied(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    product(&app, &root, "Web").await;
    let payments = app.sub_org(&root, "Payments").await;
    product(&app, &payments, "PayWeb").await;
    let never = get(&app, &root).await;
    assert_eq!(etag(&never), "\"0\"", "never written");
    assert_eq!(
        never.body,
        json!({ "version": 1, "default": null, "rules": [] })
    );

    let v1 = put(&app, &root, &eng_rule("Engineering", true), Some("\"0\"")).await;
    assert_eq!(v1.status, StatusCode::OK, "{}", v1.text);
    assert_eq!(etag(&v1), "\"1\"");
    let stale = put(&app, &root, &eng_rule("Other", true), Some("\"0\"")).await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        stale.text
    );
    assert_eq!(stale.body["error"]["code"], "precondition_failed");
    for malformed in ["1", "W/\"1\"", "\"one\"", "\"\""] {
        let reply = put(&app, &root, &eng_rule("Other", true), Some(malformed)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{malformed}: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["code"], "bad_request");
    }
    let current = get(&app, &root).await;
    assert_eq!(etag(&current), "\"1\"");
    assert_eq!(
        current.text, v1.text,
        "the PUT's answer is what GET returns"
    );

    // Every error, each at its pointer.
    let invalid = json!({
        "version": 2,
        "default": { "grants": [{ "org_role": "overlord" }] },
        "rules": [
            { "name": "eng", "idp_group": "Engineering",
              "grants": [{ "product": "Web", "role": "editor" }, { "product": "Mobile", "role": "editor" }] },
            { "name": "ENG", "idp_group": "", "source": "ldap",
              "grants": [{ "product": "Web", "role": "god" }, { "org_role": "owner", "role": "viewer" }] },
        ],
    });
    let reply = put(&app, &root, &invalid, Some("\"1\"")).await;
    let mut pointers: Vec<String> = fields(&reply).into_iter().map(|(f, _)| f).collect();
    pointers.sort();
    assert_eq!(
        pointers,
        [
            "/default/grants/0/org_role",
            "/rules/0/grants/1/product",
            "/rules/1/grants/0/role",
            "/rules/1/grants/1",
            "/rules/1/idp_group",
            "/rules/1/name",
            "/rules/1/source",
            "/version",
        ],
        "{}",
        reply.text
    );
    // A shape error names its field too, and an unknown one is an error.
    let reply = put(
        &app,
        &root,
        &json!({ "version": 1, "rules": [{ "name": "x", "idp_group": "X", "grants": [], "colour": "red" }] }),
        None,
    )
    .await;
    assert_eq!(fields(&reply)[0].0, "/rules/0/colour", "{}", reply.text);
    let reply = put(&app, &root, &json!({ "rules": [] }), None).await;
    assert_eq!(
        fields(&reply),
        [("/version".to_owned(), "required".to_owned())]
    );
    // Not JSON at all: a bad request, in the one error shape.
    let reply = send(
        &app,
        Method::PUT,
        &format!("/orgs/{root}/mappings"),
        "version: 1",
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], "bad_request");

    let after = get(&app, &root).await;
    assert_eq!(
        (etag(&after), &after.text),
        ("\"1\"", &v1.text),
        "nothing applied"
    );
}

/// A mapped Owner counts for the Owner rule: once the root Owner is an explicit `member` of a
/// sub-org, removing the rule that makes carol its Owner would leave it with none — refused,
/// naming the org; the preview of that document says so too.
async fn removing_the_rule_behind_the_only_owner_is_refused_and_previewed(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let carol = scim_user(&app, &app.scim_token, "carol@acme.test").await;
    scim_group(&app, &app.scim_token, "Payments Owners", None, &[&carol]).await;
    let owners = json!({
        "version": 1,
        "rules": [{ "name": "payments-owners", "idp_group": "Payments Owners",
                    "grants": [{ "org": "Payments", "org_role": "owner" }] }],
    });
    put_ok(&app, &root, &owners).await;
    let boss = app
        .ok(
            Method::GET,
            &format!("/orgs/{root}/members?search=owner@acme.test"),
            None,
        )
        .await["members"][0]["user"]["id"]
        .as_str()
        .expect("the root Owner")
        .to_owned();
    // Allowed only because carol, a mapped Owner, remains.
    app.ok(
        Method::PUT,
        &format!("/orgs/{payments}/members/{boss}"),
        Some(json!({ "role": "member" })),
    )
    .await;

    let without = json!({ "version": 1, "rules": [] });
    let preview = app
        .ok(
            Method::POST,
            &format!("/orgs/{root}/mappings/preview"),
            Some(without.clone()),
        )
        .await;
    let violations = preview["owner_rule_violations"]
        .as_array()
        .expect("violations");
    assert_eq!(violations.len(), 1, "{preview}");
    assert_eq!(violations[0]["org_id"], payments.as_str());
    assert_eq!(
        (&violations[0]["before"], &violations[0]["after"]),
        (&json!(1), &json!(0))
    );

    let refused = put(&app, &root, &without, None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let message = refused.body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("owner_rule")
            && message.contains("Payments")
            && message.contains(&payments),
        "{message}"
    );
    assert_eq!(etag(&get(&app, &root).await), "\"1\"", "nothing applied");

    // With another Owner there, the same document goes through.
    app.ok(
        Method::PUT,
        &format!("/orgs/{payments}/members/{boss}"),
        Some(json!({ "role": "owner" })),
    )
    .await;
    let preview = app
        .ok(
            Method::POST,
            &format!("/orgs/{root}/mappings/preview"),
            Some(without.clone()),
        )
        .await;
    assert_eq!(preview["owner_rule_violations"], json!([]), "{preview}");
    put_ok(&app, &root, &without).await;
}

/// The preview pages the affected users with `next`, counts all of them, and applies nothing.
async fn the_preview_pages_users_and_applies_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let web = product(&app, &root, "Web").await;
    let mut users = Vec::new();
    for name in ["u1", "u2", "u3"] {
        users.push(scim_user(&app, &app.scim_token, &format!("{name}@acme.test")).await);
    }
    let members: Vec<&str> = users.iter().map(String::as_str).collect();
    scim_group(&app, &app.scim_token, "Engineering", None, &members).await;
    users.sort();
    let newest = app.ok(Method::GET, "/audit?limit=1", None).await["events"][0].clone();

    let path = format!("/orgs/{root}/mappings/preview");
    let document = eng_rule("Engineering", true);
    let mut document = document;
    document["rules"][0]["grants"] = json!([{ "product": "Web", "role": "editor" }]);
    let first = app
        .ok(
            Method::POST,
            &format!("{path}?limit=2"),
            Some(document.clone()),
        )
        .await;
    assert_eq!(first["summary"]["users_affected"], 3, "{first}");
    let page: Vec<&str> = first["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["user_id"].as_str().expect("id"))
        .collect();
    assert_eq!(page, [users[0].as_str(), users[1].as_str()]);
    let change = &first["users"][0]["products"][0];
    assert_eq!(change["product_id"], web.0.as_str());
    assert_eq!(change["gained"], json!(["manage_resources"]));
    let next = first["next"].as_str().expect("next");
    assert_eq!(next, users[1]);
    let second = app
        .ok(
            Method::POST,
            &format!("{path}?limit=2&after={next}"),
            Some(document.clone()),
        )
        .await;
    assert_eq!(second["users"].as_array().expect("users").len(), 1);
    assert_eq!(second["users"][0]["user_id"], users[2].as_str());
    assert_eq!(second["next"], Value::Null);

    let invalid = app
        .admin(
            Method::POST,
            &path,
            Some(json!({ "version": 1, "default": { "grants": [{ "product": "Nope", "role": "viewer" }] } })),
        )
        .await;
    assert_eq!(
        fields(&invalid)[0].0,
        "/default/grants/0/product",
        "{}",
        invalid.text
    );
    let limit = app
        .admin(Method::POST, &format!("{path}?limit=0"), Some(document))
        .await;
    assert_eq!(fields(&limit)[0].0, "limit");

    assert_eq!(etag(&get(&app, &root).await), "\"0\"", "nothing applied");
    assert_eq!(access(&app, &root, &users[0], &web).await, nothing());
    assert_eq!(
        app.ok(Method::GET, "/audit?limit=1", None).await["events"][0],
        newest,
        "nothing audited"
    );
}

/// GET → PUT of the same bytes → GET answers the same bytes, every grant form and the default
/// included; each replace is audited with the document before and after.
async fn a_document_round_trips_byte_for_byte_and_each_replace_is_audited(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    product(&app, &root, "Web").await;
    let payments = app.sub_org(&root, "Payments").await;
    product(&app, &payments, "PayWeb").await;
    let document = json!({
        "version": 1,
        "default": { "grants": [{ "product": "web", "role": "viewer" }] },
        "rules": [
            { "name": "zeta", "idp_group": "Zeta", "source": "scim", "priority": 5, "enabled": false,
              "grants": [{ "org": "payments", "module_roles": { "feature_flags": "write", "billing": "read" } }] },
            { "name": "Alpha", "idp_group": "Alpha", "priority": -1,
              "grants": [{ "org_role": "member" },
                         { "org": payments, "org_role": "owner" },
                         { "product": "PayWeb", "permission_group": "developer" },
                         { "product": "Web", "role": "publisher" }] },
        ],
    });
    let written = put_ok(&app, &root, &document).await;
    let first = get(&app, &root).await;
    assert_eq!(first.text, written.text);
    assert_eq!(first.body["rules"][0]["name"], "Alpha", "ordered by name");
    assert_eq!(
        first.body["rules"][0]["grants"][1]["org"], "Payments",
        "by its unique name"
    );
    let again = send(
        &app,
        Method::PUT,
        &format!("/orgs/{root}/mappings"),
        &first.text,
        &[("if-match", etag(&first))],
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    let second = get(&app, &root).await;
    assert_eq!(second.text, first.text, "byte-identical");
    assert_eq!(etag(&second), "\"2\"");

    let events = app
        .ok(Method::GET, "/audit?action=mapping.replace", None)
        .await;
    let events = events["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    let (newest, oldest) = (&events[0], &events[1]);
    assert_eq!(newest["org_id"], root.as_str());
    assert_eq!(newest["actor_kind"], "admin_token", "{newest}");
    assert_eq!(oldest["before"]["version"], 0);
    assert_eq!(oldest["before"]["rules"], json!([]));
    assert_eq!(oldest["after"]["version"], 1);
    assert_eq!(oldest["after"]["rules"].as_array().map(Vec::len), Some(2));
    assert_eq!(newest["before"]["rules"], oldest["after"]["rules"]);
    assert_eq!(newest["after"]["version"], 2);
}

crate::on_both_backends!(
    a_mapped_scim_group_grants_while_it_matches_and_not_a_moment_longer,
    stale_or_invalid_writes_are_refused_with_every_error_and_nothing_applied,
    removing_the_rule_behind_the_only_owner_is_refused_and_previewed,
    the_preview_pages_users_and_applies_nothing,
    a_document_round_trips_byte_for_byte_and_each_replace_is_audited,
);
