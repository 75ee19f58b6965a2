//! Permission questions over HTTP (issue 11): `POST /api/v1/authz/check`, one question or a
//! batch, and `GET /api/v1/authz/explain`, asked by admin and service tokens within their
//! org's subtree — through the real router, on both backends.

use axum::http::{Method, StatusCode};
use rolegate::domain::token::TokenKind;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

fn env_id(product: &Value, name: &str) -> String {
    id(product["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no environment {name}")))
}

async fn check(app: &TestApp, token: &str, body: Value) -> Reply {
    app.call(Method::POST, "/api/v1/authz/check", Some(token), Some(body))
        .await
}

/// A check that must be answered; returns `{"allowed", "reason"}`.
async fn decided(app: &TestApp, token: &str, body: Value) -> Value {
    let reply = check(app, token, body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.text);
    reply.body
}

fn decision(allowed: bool, reason: &str) -> Value {
    json!({ "allowed": allowed, "reason": reason })
}

/// A 422 naming `field`.
fn refused_naming(reply: &Reply, field: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field}: {}",
        reply.text
    );
    assert_eq!(reply.body["error"]["code"], "validation_failed");
    assert!(
        reply.body["error"]["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["field"] == field)),
        "no field error for {field}: {}",
        reply.text
    );
}

async fn explain(app: &TestApp, token: &str, query: &str) -> Reply {
    app.get(&format!("/api/v1/authz/explain?{query}"), token)
        .await
}

async fn owner_id(app: &TestApp) -> String {
    app.store
        .find_user_by_email(app.org_id, "owner@acme.test")
        .await
        .expect("lookup")
        .expect("owner")
        .id
        .to_string()
}

async fn join(app: &TestApp, org: &str, user: &str, role: Value) {
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/members/{user}"),
        Some(json!({ "role": role })),
    )
    .await;
}

async fn grant(app: &TestApp, product: &str, user: &str, role: &str, groups: &[String]) {
    app.ok(
        Method::PUT,
        &format!("/products/{product}/members/{user}"),
        Some(json!({ "permission_groups": groups, "role": role })),
    )
    .await;
}

/// A user SCIM provisions into the root org (a member there, source `scim`).
async fn scim_user(app: &TestApp, email: &str) -> String {
    let reply = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email,
                "emails": [{ "value": email, "primary": true }],
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    id(&reply.body)
}

/// The root org's product "Checkout" (Development; Production, restricted) with an editor, and
/// the answers each standing gets, each with its reason.
async fn check_answers_each_standing_with_its_reason(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let pid = id(&product);
    let (dev_env, prod_env) = (
        env_id(&product, "Development"),
        env_id(&product, "Production"),
    );
    let dev = app.user("dev@acme.test").await;
    join(&app, &root, &dev, json!("member")).await;
    grant(&app, &pid, &dev, "editor", &[]).await;
    let token = app.admin_token.clone();
    let ask = |user: &str, action: &str, env: &str| json!({ "user_id": user, "product_id": pid, "action": action, "environment_id": env });

    // Seed 002's Editor in a restricted environment: edits, does not launch.
    assert_eq!(
        decided(&app, &token, ask(&dev, "flag_edit", &prod_env)).await,
        decision(true, "granted")
    );
    assert_eq!(
        decided(&app, &token, ask(&dev, "flag_launch", &prod_env)).await,
        decision(false, "insufficient")
    );
    assert_eq!(
        decided(&app, &token, ask(&dev, "flag_launch", &dev_env)).await,
        decision(true, "granted")
    );
    assert_eq!(
        decided(
            &app,
            &token,
            json!({ "user_id": dev, "product_id": pid, "capability": "manage_resources" })
        )
        .await,
        decision(true, "granted")
    );
    assert_eq!(
        decided(
            &app,
            &token,
            json!({ "user_id": dev, "product_id": pid, "action": "collaborators" })
        )
        .await,
        decision(false, "insufficient"),
        "an environment-independent action needs no environment"
    );
    let owner = owner_id(&app).await;
    assert_eq!(
        decided(&app, &token, ask(&owner, "flag_launch", &prod_env)).await,
        decision(true, "owner")
    );

    // Deactivated by SCIM: nothing, whatever was granted.
    let ada = scim_user(&app, "ada@acme.test").await;
    grant(&app, &pid, &ada, "editor", &[]).await;
    assert_eq!(
        decided(&app, &token, ask(&ada, "flag_edit", &prod_env)).await,
        decision(true, "granted")
    );
    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Users/{ada}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }],
            })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        decided(&app, &token, ask(&ada, "flag_edit", &prod_env)).await,
        decision(false, "inactive")
    );

    // A member of a sub-org only is not a member of the product's (root) org.
    let sub = app.sub_org(&root, "Payments").await;
    let bea = app.user("bea@acme.test").await;
    join(&app, &sub, &bea, json!("owner")).await;
    assert_eq!(
        decided(&app, &token, ask(&bea, "view", &dev_env)).await,
        decision(false, "not_member")
    );

    // Org level: module roles and org settings, in the token's org or the one named.
    assert_eq!(
        decided(
            &app,
            &token,
            json!({ "user_id": dev, "capability": "manage_org_settings" })
        )
        .await,
        decision(false, "insufficient")
    );
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{dev}/modules"),
        Some(json!({ "settings": "write" })),
    )
    .await;
    assert_eq!(
        decided(
            &app,
            &token,
            json!({ "user_id": dev, "action": "org_settings" })
        )
        .await,
        decision(true, "granted")
    );
    assert_eq!(
        decided(
            &app,
            &token,
            json!({ "user_id": bea, "org_id": sub, "capability": "manage_org_settings" })
        )
        .await,
        decision(true, "owner")
    );
    assert_eq!(
        decided(
            &app,
            &token,
            json!({ "user_id": bea, "capability": "manage_org_settings" })
        )
        .await,
        decision(false, "not_member"),
        "without org_id: the token's (root) org, where Bea is no member"
    );
}

/// Questions that cannot be answered are refused naming what is wrong; unknown ids are 404.
async fn check_refuses_questions_it_cannot_answer(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let pid = id(&product);
    let other = app
        .ok(
            Method::POST,
            &format!("/orgs/{root}/products"),
            Some(json!({ "name": "Search" })),
        )
        .await;
    let owner = owner_id(&app).await;
    let token = app.admin_token.clone();
    let prod_env = env_id(&product, "Production");

    let no_env = check(
        &app,
        &token,
        json!({ "user_id": owner, "product_id": pid, "action": "flag_launch" }),
    )
    .await;
    refused_naming(&no_env, "environment_id");
    assert!(no_env.text.contains("flag_launch"), "{}", no_env.text);
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "product_id": pid, "action": "view",
                    "environment_id": env_id(&other, "Production") }),
        )
        .await,
        "environment_id",
    );
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "product_id": pid, "capability": "view_sdk_key",
                    "environment_id": Uuid::now_v7() }),
        )
        .await,
        "environment_id",
    );
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "action": "view", "environment_id": prod_env }),
        )
        .await,
        "environment_id",
    );
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "action": "flag_edit" }),
        )
        .await,
        "product_id",
    );
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "product_id": pid, "action": "collaborators",
                    "capability": "manage_members" }),
        )
        .await,
        "capability",
    );
    refused_naming(
        &check(&app, &token, json!({ "user_id": owner, "product_id": pid })).await,
        "action",
    );
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "product_id": pid, "action": "fly" }),
        )
        .await,
        "action",
    );
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "product_id": pid, "org_id": root,
                    "capability": "manage_members" }),
        )
        .await,
        "org_id",
    );
    refused_naming(&check(&app, &token, json!({})).await, "user_id");
    refused_naming(
        &check(
            &app,
            &token,
            json!({ "user_id": owner, "action": "collaborators", "colour": 1 }),
        )
        .await,
        "colour",
    );
    refused_naming(&check(&app, &token, json!({ "checks": 7 })).await, "checks");
    refused_naming(&check(&app, &token, json!([])).await, "body");

    for body in [
        json!({ "user_id": Uuid::now_v7(), "product_id": pid, "capability": "manage_members" }),
        json!({ "user_id": owner, "product_id": Uuid::now_v7(), "capability": "manage_members" }),
        json!({ "user_id": owner, "org_id": Uuid::now_v7(), "capability": "manage_members" }),
    ] {
        let reply = check(&app, &token, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["code"], "not_found");
    }
}

/// A batch is answered item by item, in order: a bad item gets its own error, the others
/// their decision. More than 1,000 questions are refused whole.
async fn batch_answers_each_question_in_order(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let pid = id(&product);
    let other = app
        .ok(
            Method::POST,
            &format!("/orgs/{root}/products"),
            Some(json!({ "name": "Search" })),
        )
        .await;
    let prod_env = env_id(&product, "Production");
    let dev = app.user("dev@acme.test").await;
    join(&app, &root, &dev, json!("member")).await;
    grant(&app, &pid, &dev, "editor", &[]).await;
    let owner = owner_id(&app).await;
    let ask = |user: &str, action: &str| json!({ "user_id": user, "product_id": pid, "action": action, "environment_id": prod_env });
    let reply = decided(
        &app,
        &app.admin_token,
        json!({ "checks": [
            ask(&dev, "flag_edit"),
            ask(&Uuid::now_v7().to_string(), "flag_edit"),
            { "user_id": dev, "product_id": pid },
            { "user_id": dev, "product_id": pid, "action": "view",
              "environment_id": env_id(&other, "Production") },
            ask(&dev, "flag_launch"),
            { "user_id": owner, "product_id": Uuid::now_v7(), "capability": "view_sdk_key" },
            ask(&owner, "flag_launch"),
        ]}),
    )
    .await;
    let results = reply["results"].as_array().expect("results");
    assert_eq!(results.len(), 7, "{reply}");
    assert_eq!(results[0], decision(true, "granted"));
    assert_eq!(results[1]["error"]["code"], "not_found", "{reply}");
    assert_eq!(results[2]["error"]["code"], "validation_failed", "{reply}");
    assert_eq!(
        results[2]["error"]["fields"][0]["field"],
        "checks[2].action"
    );
    assert_eq!(
        results[3]["error"]["fields"][0]["field"], "checks[3].environment_id",
        "{reply}"
    );
    assert_eq!(results[4], decision(false, "insufficient"));
    assert_eq!(results[5]["error"]["code"], "not_found", "{reply}");
    assert_eq!(results[6], decision(true, "owner"));

    let many: Vec<Value> = (0..1000).map(|_| ask(&dev, "flag_edit")).collect();
    let full = decided(&app, &app.admin_token, json!({ "checks": many })).await;
    let results = full["results"].as_array().expect("results");
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| *r == decision(true, "granted")));
    let too_many: Vec<Value> = (0..1001).map(|_| ask(&dev, "flag_edit")).collect();
    let refused = check(&app, &app.admin_token, json!({ "checks": too_many })).await;
    refused_naming(&refused, "checks");
    assert!(refused.text.contains("1000"), "{}", refused.text);
    let empty = decided(&app, &app.admin_token, json!({ "checks": [] })).await;
    assert_eq!(empty, json!({ "results": [] }));
}

/// The explanation names each path: a manual grant with the environment it lost in, an Owner
/// inherited from the root, and environment names.
async fn explain_names_the_paths_behind_each_permission(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let sub = app.sub_org(&root, "Payments").await;
    let product = app.product(&sub).await;
    let pid = id(&product);
    let prod_env = env_id(&product, "Production");
    let dev_env = env_id(&product, "Development");
    let readers = app
        .ok(
            Method::POST,
            &format!("/products/{pid}/permission-groups"),
            Some(json!({ "name": "Readers", "default_access": "read_only" })),
        )
        .await;
    let dev = app.user("dev@acme.test").await;
    join(&app, &sub, &dev, json!("member")).await;
    grant(&app, &pid, &dev, "editor", &[id(&readers)]).await;

    let reply = explain(
        &app,
        &app.admin_token,
        &format!("user_id={dev}&product_id={pid}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let e = &reply.body;
    assert_eq!(e["user_id"], dev);
    assert_eq!(e["product_id"], pid);
    assert_eq!(e["org_id"], sub);
    assert_eq!(e["standing"], "member");
    assert_eq!(e["org_role"]["role"], "member");
    assert_eq!(e["org_role"]["granted_by"][0]["kind"], "manual");
    assert_eq!(
        e["capabilities"]["manage_resources"],
        json!([{ "kind": "manual", "org_id": sub, "role": "editor" }])
    );
    let production = &e["environments"][&prod_env];
    assert_eq!(production["name"], "Production");
    assert_eq!(production["access"], "edit");
    assert_eq!(
        production["granted_by"],
        json!([{ "kind": "manual", "org_id": sub, "role": "editor", "access": "edit" }])
    );
    assert_eq!(
        production["lost"],
        json!([{ "kind": "manual", "org_id": sub, "permission_group": "Readers", "access": "read_only" }])
    );
    assert_eq!(e["environments"][&dev_env]["name"], "Development");
    assert_eq!(e["environments"][&dev_env]["access"], "full");
    assert_eq!(e["effective"]["environments"][&prod_env], "edit");
    assert_eq!(e["effective"]["org_owner"], false);

    // The root's Owner owns the sub-org by inheritance, and so everything on its product.
    let owner = owner_id(&app).await;
    let reply = explain(
        &app,
        &app.admin_token,
        &format!("user_id={owner}&product_id={pid}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let e = &reply.body;
    assert_eq!(e["standing"], "owner");
    assert_eq!(e["org_role"]["role"], "owner");
    assert_eq!(
        e["org_role"]["granted_by"],
        json!([{ "kind": "inherited", "org_id": root, "role": "owner" }])
    );
    assert_eq!(
        e["capabilities"]["manage_members"],
        json!([{ "kind": "owner", "org_id": root, "role": "owner" }])
    );
    assert_eq!(e["environments"][&prod_env]["access"], "full");
    assert_eq!(
        e["environments"][&prod_env]["granted_by"][0]["kind"],
        "owner"
    );
    assert_eq!(e["effective"]["org_owner"], true);

    // Org level: no product, no environments; the org asked about or the token's.
    let reply = explain(
        &app,
        &app.admin_token,
        &format!("user_id={dev}&org_id={sub}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["product_id"], Value::Null);
    assert_eq!(reply.body["org_role"]["role"], "member");
    assert_eq!(reply.body["environments"], json!({}));
    // Within reach but not a member of the root: nothing, and no org role.
    let reply = explain(&app, &app.admin_token, &format!("user_id={dev}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["org_role"], Value::Null);
    assert_eq!(reply.body["standing"], "not_member");
    assert_eq!(reply.body["capabilities"], json!({}));

    for query in [
        format!("user_id={}", Uuid::now_v7()),
        format!("user_id={dev}&product_id={}", Uuid::now_v7()),
        format!("user_id={dev}&org_id={}", Uuid::now_v7()),
    ] {
        let reply = explain(&app, &app.admin_token, &query).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{query}: {}",
            reply.text
        );
    }
    refused_naming(
        &explain(
            &app,
            &app.admin_token,
            &format!("user_id={dev}&product_id={pid}&org_id={sub}"),
        )
        .await,
        "org_id",
    );
    refused_naming(&explain(&app, &app.admin_token, "").await, "user_id");
    refused_naming(
        &explain(
            &app,
            &app.admin_token,
            &format!("user_id={dev}&product_id=nope"),
        )
        .await,
        "product_id",
    );
}

/// A sub-org's service token asks about its subtree only: a user or product of its parent is
/// not found, in a single question, an explanation or a batch item.
async fn a_sub_org_service_token_reaches_its_subtree_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let sub = app.sub_org(&root, "Payments").await;
    let service = app
        .token(sub.parse().expect("uuid"), TokenKind::Service)
        .await;
    let own_product = app.product(&sub).await;
    let own_pid = id(&own_product);
    let parent_product = app.product(&root).await;
    let parent_pid = id(&parent_product);
    let dev = app.user("dev@acme.test").await;
    join(&app, &sub, &dev, json!("member")).await;
    grant(&app, &own_pid, &dev, "viewer", &[]).await;
    // Parent-only: a member of the root org and nowhere below.
    let boss = app.user("boss@acme.test").await;
    join(&app, &root, &boss, json!("member")).await;
    let prod_env = env_id(&own_product, "Production");
    let view = |user: &str| json!({ "user_id": user, "product_id": own_pid, "action": "view", "environment_id": prod_env });

    assert_eq!(
        decided(&app, &service, view(&dev)).await,
        decision(true, "granted")
    );
    let reply = explain(
        &app,
        &service,
        &format!("user_id={dev}&product_id={own_pid}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = explain(&app, &service, &format!("user_id={dev}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["org_id"], sub, "default: the token's org");

    for (what, reply) in [
        (
            "check a parent-only user",
            check(&app, &service, view(&boss)).await,
        ),
        (
            "explain a parent-only user",
            explain(&app, &service, &format!("user_id={boss}")).await,
        ),
        (
            "explain a parent-only user on the own product",
            explain(
                &app,
                &service,
                &format!("user_id={boss}&product_id={own_pid}"),
            )
            .await,
        ),
        (
            "check the parent's product",
            check(
                &app,
                &service,
                json!({ "user_id": dev, "product_id": parent_pid, "capability": "view_sdk_key" }),
            )
            .await,
        ),
        (
            "check in the parent org",
            check(
                &app,
                &service,
                json!({ "user_id": dev, "org_id": root, "capability": "manage_org_settings" }),
            )
            .await,
        ),
    ] {
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{what}: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["code"], "not_found", "{what}");
    }
    let batch = decided(
        &app,
        &service,
        json!({ "checks": [view(&boss), view(&dev)] }),
    )
    .await;
    assert_eq!(batch["results"][0]["error"]["code"], "not_found", "{batch}");
    assert_eq!(batch["results"][1], decision(true, "granted"));

    // The root's service token reaches them all: Boss is a Member of the sub-org by
    // inheritance, given nothing on its product.
    let root_service = app.token(app.org_id, TokenKind::Service).await;
    assert_eq!(
        decided(&app, &root_service, view(&boss)).await,
        decision(false, "insufficient")
    );
}

crate::on_both_backends!(
    check_answers_each_standing_with_its_reason,
    check_refuses_questions_it_cannot_answer,
    batch_answers_each_question_in_order,
    explain_names_the_paths_behind_each_permission,
    a_sub_org_service_token_reaches_its_subtree_only,
);
