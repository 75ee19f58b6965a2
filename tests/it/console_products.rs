//! The console's product pages through the real router: products and environments, the
//! permission group editor (capabilities, the access matrix, built-in roles read-only), and
//! each change checked through the API afterwards; a Viewer sees no forms and their forged
//! POSTs are 403; refusals (409) are shown on the page.

use axum::http::header::LOCATION;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};
use crate::console::{Browser, assert_console_page, console_app, viewer};

fn location(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    reply.headers[LOCATION]
        .to_str()
        .expect("location")
        .to_owned()
}

async fn product_json(app: &TestApp, id: &str) -> Value {
    app.ok(Method::GET, &format!("/products/{id}"), None).await
}

fn env_id(product: &Value, name: &str) -> String {
    product["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["id"].as_str())
        .unwrap_or_else(|| panic!("no environment {name} in {product}"))
        .to_owned()
}

fn group<'a>(product: &'a Value, name: &str) -> Option<&'a Value> {
    product["permission_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == name)
}

async fn an_owner_creates_and_renames_a_product_and_manages_its_environments(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let list_path = format!("/console/orgs/{}/products", app.org_id);
    let list = owner.get(&app, &list_path).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_console_page(&list);
    assert!(list.text.contains("New product"), "{}", list.text);

    let created = owner.post(&app, &list_path, &[("name", "Checkout")]).await;
    let page_path = location(&created);
    let id = page_path
        .strip_prefix("/console/products/")
        .expect("product page")
        .to_owned();
    let product = product_json(&app, &id).await;
    assert_eq!(product["name"], "Checkout");
    assert!(
        product["environments"]
            .as_array()
            .expect("envs")
            .iter()
            .any(|e| e["name"] == "Production" && e["restricted"] == true),
        "{product}"
    );

    let page = owner.get(&app, &page_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    for text in [
        "Development",
        "Production",
        "Restricted",
        "Permission groups",
        "Built-in roles",
        "Project Owner",
        "View SDK key",
        "New environment",
    ] {
        assert!(page.text.contains(text), "{text} missing: {}", page.text);
    }
    assert!(owner.get(&app, &list_path).await.text.contains("Checkout"));

    let renamed = owner
        .post(
            &app,
            &format!("{page_path}/rename"),
            &[("name", "Payments")],
        )
        .await;
    assert_eq!(location(&renamed), page_path);
    assert_eq!(product_json(&app, &id).await["name"], "Payments");

    let added = owner
        .post(
            &app,
            &format!("{page_path}/environments"),
            &[("name", "Staging"), ("restricted", "on")],
        )
        .await;
    assert_eq!(location(&added), page_path);
    let product = product_json(&app, &id).await;
    let staging = env_id(&product, "Staging");
    assert!(
        product["environments"]
            .as_array()
            .expect("envs")
            .iter()
            .any(|e| e["name"] == "Staging" && e["restricted"] == true)
    );

    // Unticked: no longer restricted, and renamed in the same save.
    let updated = owner
        .post(
            &app,
            &format!("/console/environments/{staging}"),
            &[("name", "QA")],
        )
        .await;
    assert_eq!(location(&updated), page_path);
    let product = product_json(&app, &id).await;
    let qa = product["environments"]
        .as_array()
        .expect("envs")
        .iter()
        .find(|e| e["id"] == staging.as_str())
        .expect("qa");
    assert_eq!(qa["name"], "QA");
    assert_eq!(qa["restricted"], false);

    // A duplicate name: the API's 409, shown on the product page.
    let refused = owner
        .post(
            &app,
            &format!("{page_path}/environments"),
            &[("name", "Development")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_console_page(&refused);
    assert!(refused.text.contains("flash refused"), "{}", refused.text);
    assert!(refused.text.contains("New environment"), "the page itself");
}

async fn an_owner_deletes_an_environment_and_a_product_once_its_name_is_typed(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let product = app.product(&app.org_id.to_string()).await;
    let id = product["id"].as_str().expect("id").to_owned();
    let name = product["name"].as_str().expect("name").to_owned();
    let page_path = format!("/console/products/{id}");
    let dev = env_id(&product, "Development");

    let page = owner.get(&app, &page_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    for text in [
        format!("action=\"/console/environments/{dev}/delete\""),
        "aria-label=\"Delete Development\"".to_owned(),
        format!("action=\"{page_path}/delete\""),
        "Delete product".to_owned(),
    ] {
        assert!(page.text.contains(&text), "{text} missing: {}", page.text);
    }

    let deleted = owner
        .post(&app, &format!("/console/environments/{dev}/delete"), &[])
        .await;
    assert_eq!(location(&deleted), page_path);
    let after = product_json(&app, &id).await;
    assert!(
        after["environments"]
            .as_array()
            .expect("envs")
            .iter()
            .all(|e| e["id"] != dev.as_str()),
        "{after}"
    );
    let page = owner.get(&app, &page_path).await;
    assert!(!page.text.contains(&dev), "{}", page.text);

    // Not its name: refused on the page (422), nothing deleted.
    let refused = owner
        .post(
            &app,
            &format!("{page_path}/delete"),
            &[("confirm", "something else")],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_console_page(&refused);
    assert!(refused.text.contains("flash refused"), "{}", refused.text);
    assert!(
        refused.text.contains("type the product"),
        "{}",
        refused.text
    );
    assert_eq!(product_json(&app, &id).await["name"], name.as_str());

    let deleted = owner
        .post(&app, &format!("{page_path}/delete"), &[("confirm", &name)])
        .await;
    let list_path = format!("/console/orgs/{}/products", app.org_id);
    assert_eq!(location(&deleted), list_path);
    let gone = app
        .call(
            Method::GET,
            &format!("/api/v1/products/{id}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
    let list = owner.get(&app, &list_path).await;
    assert!(
        !list.text.contains(&format!("href=\"{page_path}\"")),
        "{}",
        list.text
    );

    let audit = app.ok(Method::GET, "/audit", None).await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["environment.delete", "product.delete"] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
}

/// An Owner of one sub-org deletes nothing of its parent's or its sibling's: their products and
/// environments are out of reach (404), and stay; their own product goes.
async fn deletes_reach_only_the_callers_subtree(backend: Backend) {
    let app = console_app(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let billing = app.sub_org(&root, "Billing").await;
    let carol = app.user("carol@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{payments}/members/{carol}"),
        Some(json!({ "role": "owner" })),
    )
    .await;
    let carol_browser = Browser::signed_in(&app, "carol@acme.test").await;
    let own = app.product(&payments).await;
    for org in [&root, &billing] {
        let product = app.product(org).await;
        let id = product["id"].as_str().expect("id").to_owned();
        let env = env_id(&product, "Development");
        let refused = carol_browser
            .post(
                &app,
                &format!("/console/products/{id}/delete"),
                &[("confirm", "Checkout")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
        let refused = carol_browser
            .post(&app, &format!("/console/environments/{env}/delete"), &[])
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
        assert_eq!(product_json(&app, &id).await, product, "nothing changed");
    }
    let own_id = own["id"].as_str().expect("id");
    let deleted = carol_browser
        .post(
            &app,
            &format!("/console/products/{own_id}/delete"),
            &[("confirm", "Checkout")],
        )
        .await;
    assert_eq!(
        location(&deleted),
        format!("/console/orgs/{payments}/products")
    );
}

async fn the_group_editor_saves_capabilities_and_the_access_matrix(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let product = app.product(&app.org_id.to_string()).await;
    let id = product["id"].as_str().expect("id").to_owned();
    let (dev, prod) = (
        env_id(&product, "Development"),
        env_id(&product, "Production"),
    );

    let created = owner
        .post(
            &app,
            &format!("/console/products/{id}/permission-groups"),
            &[("name", "QA")],
        )
        .await;
    let editor = location(&created);
    let group_id = editor
        .strip_prefix("/console/permission-groups/")
        .expect("editor")
        .to_owned();
    let page = owner.get(&app, &editor).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    for text in [
        "name=\"capability\"",
        "value=\"manage_members\"",
        "New environments (default)",
        "Production (restricted)",
        &format!("name=\"env.{prod}\""),
        "Save group",
        "Delete group",
    ] {
        assert!(page.text.contains(text), "{text} missing: {}", page.text);
    }

    let saved = owner
        .post(
            &app,
            &editor,
            &[
                ("name", "QA team"),
                ("capability", "manage_members"),
                ("capability", "view_sdk_key"),
                ("default_access", "read_only"),
                ("restricted_access", ""),
                (&format!("env.{dev}"), "read_only"),
                (&format!("env.{prod}"), "full"),
            ],
        )
        .await;
    assert_eq!(location(&saved), editor);
    let product = product_json(&app, &id).await;
    let qa = group(&product, "QA team").expect("saved group");
    assert_eq!(
        qa["capabilities"],
        json!(["manage_members", "view_sdk_key"])
    );
    assert_eq!(qa["access"]["default"], "read_only");
    // Development follows the default; only Production differs.
    assert_eq!(qa["access"]["overrides"], json!({ prod.as_str(): "full" }));

    // A built-in role: read-only, its forged save refused by the API's rule (409, shown).
    let viewer_role = group(&product, "Viewer").expect("role")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let role_page = owner
        .get(&app, &format!("/console/permission-groups/{viewer_role}"))
        .await;
    assert_eq!(role_page.status, StatusCode::OK);
    assert!(role_page.text.contains("read-only"));
    assert!(!role_page.text.contains("Save group"), "no save button");
    assert!(role_page.text.contains("disabled"), "inputs disabled");
    let forged = owner
        .post(
            &app,
            &format!("/console/permission-groups/{viewer_role}"),
            &[("name", "Viewer"), ("default_access", "full")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::CONFLICT, "{}", forged.text);
    assert!(forged.text.contains("built-in roles are read-only"));

    // Granted: deleting it without a reassign target is refused on the page.
    let member = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/members/{member}", app.org_id),
        Some(json!({ "role": "member" })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!("/products/{id}/members/{member}"),
        Some(json!({ "permission_groups": [group_id] })),
    )
    .await;
    let refused = owner
        .post(&app, &format!("{editor}/delete"), &[("reassign_to", "")])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("flash refused"));
    let target = product["permission_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["role"].is_null() && g["id"] != group_id.as_str())
        .expect("another group")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deleted = owner
        .post(
            &app,
            &format!("{editor}/delete"),
            &[("reassign_to", &target)],
        )
        .await;
    assert!(location(&deleted).starts_with(&format!("/console/products/{id}")));
    assert!(group(&product_json(&app, &id).await, "QA team").is_none());
}

async fn a_viewer_sees_product_pages_read_only_and_forged_posts_are_refused(backend: Backend) {
    let app = console_app(backend).await;
    let (viewer, _) = viewer(&app).await;
    let product = app
        .ok(Method::GET, &format!("/orgs/{}/products", app.org_id), None)
        .await["products"][0]
        .clone();
    let id = product["id"].as_str().expect("id").to_owned();
    let detail = product_json(&app, &id).await;
    let dev = env_id(&detail, "Development");
    let preset = detail["permission_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["role"].is_null())
        .expect("preset")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let list_path = format!("/console/orgs/{}/products", app.org_id);
    let list = viewer.get(&app, &list_path).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains("Checkout"));
    assert!(!list.text.contains("New product"), "no create form");
    let page = viewer.get(&app, &format!("/console/products/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Development"));
    for action in [
        "/rename\"",
        "/environments\"",
        "action=\"/console/environments/",
        "/permission-groups\"",
        "/delete\"",
    ] {
        assert!(!page.text.contains(action), "{action}: {}", page.text);
    }
    let editor = viewer
        .get(&app, &format!("/console/permission-groups/{preset}"))
        .await;
    assert_eq!(editor.status, StatusCode::OK);
    assert!(!editor.text.contains("Save group"));
    assert!(!editor.text.contains("Delete group"));

    for (path, fields) in [
        (list_path.clone(), vec![("name", "Eve's")]),
        (
            format!("/console/products/{id}/rename"),
            vec![("name", "X")],
        ),
        (
            format!("/console/products/{id}/environments"),
            vec![("name", "Eve")],
        ),
        (format!("/console/environments/{dev}"), vec![("name", "X")]),
        (
            format!("/console/products/{id}/permission-groups"),
            vec![("name", "Eve")],
        ),
        (
            format!("/console/permission-groups/{preset}"),
            vec![("name", "X"), ("default_access", "full")],
        ),
        (
            format!("/console/permission-groups/{preset}/delete"),
            vec![],
        ),
        (format!("/console/environments/{dev}/delete"), vec![]),
        (
            format!("/console/products/{id}/delete"),
            vec![("confirm", "Checkout")],
        ),
    ] {
        let forged = viewer.post(&app, &path, &fields).await;
        assert_eq!(
            forged.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            forged.text
        );
    }
    assert_eq!(product_json(&app, &id).await, detail, "nothing changed");
    let products = app
        .ok(Method::GET, &format!("/orgs/{}/products", app.org_id), None)
        .await;
    assert_eq!(products["products"].as_array().map(Vec::len), Some(1));
}

async fn a_product_post_without_the_csrf_token_is_refused(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let path = format!("/console/orgs/{}/products", app.org_id);
    let refused = owner
        .post_with(
            &app,
            &path,
            &[("name", "Checkout")],
            false,
            Some("https://rolegate.acme.example"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let products = app
        .ok(Method::GET, &format!("/orgs/{}/products", app.org_id), None)
        .await;
    assert_eq!(products["products"], json!([]));
}

async fn the_explain_page_renders_each_permission_with_its_chain(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let (_, viewer_id) = viewer(&app).await;
    let product = app
        .ok(Method::GET, &format!("/orgs/{}/products", app.org_id), None)
        .await["products"][0]
        .clone();
    let id = product["id"].as_str().expect("id");
    let path = format!(
        "/console/orgs/{}/members/{viewer_id}/explain?product={id}",
        app.org_id
    );
    let page = owner.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    for text in [
        "viewer@acme.test",
        "A member of Acme.",
        "role Viewer (Read-only): given by an admin in Acme",
        "View SDK key",
        "Nothing gives it.",
        "Production",
        "Member",
    ] {
        assert!(page.text.contains(text), "{text} missing: {}", page.text);
    }

    // A grant made by an IdP group through a mapping rule says so.
    let web = app
        .ok(
            Method::POST,
            &format!("/orgs/{}/products", app.org_id),
            Some(json!({ "name": "Web" })),
        )
        .await;
    let ada = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada@acme.test",
                "emails": [{ "value": "ada@acme.test", "primary": true }],
            })),
        )
        .await;
    assert_eq!(ada.status, StatusCode::CREATED, "{}", ada.text);
    let ada = ada.body["id"].as_str().expect("id").to_owned();
    let group = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Engineering",
                "members": [{ "value": ada }],
            })),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/mappings", app.org_id),
        Some(json!({
            "version": 1,
            "rules": [{
                "name": "eng",
                "idp_group": "Engineering",
                "enabled": true,
                "grants": [{ "product": "Web", "role": "editor" }],
            }],
        })),
    )
    .await;
    let mapped = owner
        .get(
            &app,
            &format!(
                "/console/orgs/{}/members/{ada}/explain?product={}",
                app.org_id,
                web["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(mapped.status, StatusCode::OK, "{}", mapped.text);
    assert!(
        mapped
            .text
            .contains("role Editor: mapped by rule eng via IdP group Engineering in Acme"),
        "{}",
        mapped.text
    );

    // In a sub-org the member's role there is inherited from Acme.
    let sub = app.sub_org(&app.org_id.to_string(), "Payments").await;
    let dev = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/members/{dev}", app.org_id),
        Some(json!({ "role": "owner" })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{sub}/members/{dev}"),
        Some(json!({ "role": null })),
    )
    .await;
    let org_level = owner
        .get(&app, &format!("/console/orgs/{sub}/members/{dev}/explain"))
        .await;
    assert_eq!(org_level.status, StatusCode::OK, "{}", org_level.text);
    assert!(
        org_level.text.contains("inherited from Acme"),
        "{}",
        org_level.text
    );
    assert!(org_level.text.contains("An effective Owner of Payments"));

    // A product of another org, or a malformed id: not found, as the API answers.
    let other = app.product(&sub).await;
    let elsewhere = owner
        .get(
            &app,
            &format!(
                "/console/orgs/{}/members/{viewer_id}/explain?product={}",
                app.org_id,
                other["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
}

async fn the_audit_page_filters_and_shows_before_and_after(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let product = app.product(&app.org_id.to_string()).await;
    let id = product["id"].as_str().expect("id");
    app.ok(
        Method::PATCH,
        &format!("/products/{id}"),
        Some(json!({ "name": "Payments" })),
    )
    .await;
    let path = format!("/console/orgs/{}/audit", app.org_id);
    let page = owner.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    assert!(page.text.contains("product.create"), "{}", page.text);
    assert!(page.text.contains("product.rename"));
    assert!(page.text.contains("<details>"), "before and after");
    assert!(page.text.contains("&quot;Payments&quot;"), "pretty JSON");

    let only = owner
        .get(&app, &format!("{path}?action=product.create&product={id}"))
        .await;
    assert_eq!(only.status, StatusCode::OK, "{}", only.text);
    assert!(only.text.contains("<code>product.create</code>"));
    assert!(!only.text.contains("<code>product.rename</code>"));
    let none = owner
        .get(&app, &format!("{path}?actor_kind=scim_token"))
        .await;
    assert!(none.text.contains("No events."), "{}", none.text);
    let later = owner.get(&app, &format!("{path}?since=2999-01-01")).await;
    assert!(later.text.contains("No events."));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let until_today = owner
        .get(&app, &format!("{path}?since={today}&until={today}"))
        .await;
    assert!(
        until_today.text.contains("product.create"),
        "until includes the day"
    );

    // An unknown action: the API's 422, shown on the page.
    let refused = owner.get(&app, &format!("{path}?action=nope")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("flash refused"));

    // A Viewer has no audit log right: refused as `GET /api/v1/audit` refuses them.
    let (viewer, _) = viewer(&app).await;
    let denied = viewer.get(&app, &path).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
}

async fn module_roles_are_saved_and_take_effect(backend: Backend) {
    let app = console_app(backend).await;
    let owner = Browser::signed_in(&app, "owner@acme.test").await;
    let (viewer, viewer_id) = viewer(&app).await;
    let path = format!("/console/orgs/{}/members/{viewer_id}/modules", app.org_id);
    let page = owner.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_page(&page);
    assert!(
        page.text.contains("name=\"module.audit_log\""),
        "{}",
        page.text
    );

    let own = viewer.get(&app, &path).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(!own.text.contains("<select"), "read-only for a Viewer");
    let forged = viewer
        .post(&app, &path, &[("module.audit_log", "read")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let audit = format!("/console/orgs/{}/audit", app.org_id);
    assert_eq!(viewer.get(&app, &audit).await.status, StatusCode::FORBIDDEN);

    let saved = owner
        .post(
            &app,
            &path,
            &[
                ("module.audit_log", "read"),
                ("module.feature_flags", "write"),
            ],
        )
        .await;
    assert_eq!(location(&saved), path);
    let page = owner.get(&app, &path).await;
    assert!(
        page.text
            .contains("module role audit_log:read: given by an admin in Acme"),
        "{}",
        page.text
    );
    // The module role is the API's audit log right: the Viewer now reads the log.
    let allowed = viewer.get(&app, &audit).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
}

crate::on_both_backends!(
    deletes_reach_only_the_callers_subtree,
    an_owner_deletes_an_environment_and_a_product_once_its_name_is_typed,
    an_owner_creates_and_renames_a_product_and_manages_its_environments,
    the_group_editor_saves_capabilities_and_the_access_matrix,
    a_viewer_sees_product_pages_read_only_and_forged_posts_are_refused,
    a_product_post_without_the_csrf_token_is_refused,
    the_explain_page_renders_each_permission_with_its_chain,
    the_audit_page_filters_and_shows_before_and_after,
    module_roles_are_saved_and_take_effect,
);
