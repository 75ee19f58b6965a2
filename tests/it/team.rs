//! The team model through the admin API: org tree and inheritance, the Owner rule, products,
//! environments, permission groups, member access and effective permissions — on both backends.

use axum::http::{Method, StatusCode};
use rolegate::domain::audit::Actor;
use rolegate::domain::token::TokenKind;
use rolegate::store::Ctx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn member<'a>(list: &'a Value, user: &str) -> &'a Value {
    list["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user"]["id"] == user)
        .expect("member listed")
}

async fn roles_inherit_through_a_three_level_tree(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let team = app.sub_org(&root, "Payments").await;
    let squad = app.sub_org(&team, "Checkout squad").await;
    let tree = app.ok(Method::GET, "/orgs", None).await;
    assert_eq!(tree["orgs"].as_array().expect("orgs").len(), 3);

    let owner = app
        .store
        .find_user_by_email(app.org_id, "owner@acme.test")
        .await
        .expect("lookup")
        .expect("owner")
        .id
        .to_string();
    // The root Owner is an inherited Owner two levels down.
    let squad_members = app
        .ok(Method::GET, &format!("/orgs/{squad}/members"), None)
        .await;
    let inherited = member(&squad_members, &owner);
    assert_eq!(
        inherited["effective"],
        json!({ "role": "owner", "from_org": root, "direct": false })
    );

    // Added directly to the squad only: a direct Member there, nowhere above.
    let dev = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{squad}/members/{dev}"),
        Some(json!({ "role": null })),
    )
    .await;
    let squad_members = app
        .ok(Method::GET, &format!("/orgs/{squad}/members"), None)
        .await;
    assert_eq!(
        member(&squad_members, &dev)["effective"],
        json!({ "role": "member", "from_org": squad, "direct": true })
    );
    let team_members = app
        .ok(Method::GET, &format!("/orgs/{team}/members"), None)
        .await;
    assert!(
        team_members["members"]
            .as_array()
            .expect("list")
            .iter()
            .all(|m| m["user"]["id"] != dev.as_str())
    );

    // A team Owner is an inherited Owner of the squad; "none" (null) in the squad inherits it.
    let lead = app.user("lead@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{team}/members/{lead}"),
        Some(json!({ "role": "owner" })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{squad}/members/{lead}"),
        Some(json!({ "role": null })),
    )
    .await;
    let squad_members = app
        .ok(Method::GET, &format!("/orgs/{squad}/members"), None)
        .await;
    assert_eq!(
        member(&squad_members, &lead)["effective"],
        json!({ "role": "owner", "from_org": team, "direct": true })
    );
    // An explicit role in the squad beats the inherited one.
    app.ok(
        Method::PUT,
        &format!("/orgs/{squad}/members/{lead}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    let squad_members = app
        .ok(Method::GET, &format!("/orgs/{squad}/members"), None)
        .await;
    assert_eq!(member(&squad_members, &lead)["effective"]["role"], "member");

    // Only empty sub-orgs can be deleted.
    let refused = app
        .admin(Method::DELETE, &format!("/orgs/{team}"), None)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let leaf = app.sub_org(&squad, "Empty").await;
    assert_eq!(
        app.admin(Method::DELETE, &format!("/orgs/{leaf}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.admin(Method::GET, &format!("/orgs/{leaf}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let renamed = app
        .ok(
            Method::PATCH,
            &format!("/orgs/{team}"),
            Some(json!({ "name": "Payments EU" })),
        )
        .await;
    assert_eq!(renamed["name"], "Payments EU");
}

async fn the_last_owner_cannot_be_removed_on_any_admin_path(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let owner = app
        .store
        .find_user_by_email(app.org_id, "owner@acme.test")
        .await
        .expect("lookup")
        .expect("owner")
        .id
        .to_string();
    let assert_rule = |reply: Reply, what: &str| {
        assert_eq!(reply.status, StatusCode::CONFLICT, "{what}: {}", reply.text);
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("owner_rule"),
            "{what}: names the rule"
        );
    };
    assert_rule(
        app.admin(
            Method::PUT,
            &format!("/orgs/{root}/members/{owner}"),
            Some(json!({ "role": "member" })),
        )
        .await,
        "demote",
    );
    assert_rule(
        app.admin(
            Method::PUT,
            &format!("/orgs/{root}/members/{owner}"),
            Some(json!({ "role": null })),
        )
        .await,
        "inherit at root",
    );
    assert_rule(
        app.admin(
            Method::DELETE,
            &format!("/orgs/{root}/members/{owner}"),
            None,
        )
        .await,
        "remove",
    );
    // A sub-org whose only (inherited) Owner is overridden to Member would be left ownerless.
    let team = app.sub_org(&root, "Payments").await;
    assert_rule(
        app.admin(
            Method::PUT,
            &format!("/orgs/{team}/members/{owner}"),
            Some(json!({ "role": "member" })),
        )
        .await,
        "override in sub-org",
    );
    // Nothing changed, and with a second Owner the first may step down.
    let members = app
        .ok(Method::GET, &format!("/orgs/{root}/members"), None)
        .await;
    assert_eq!(member(&members, &owner)["effective"]["role"], "owner");
    let second = app.user("second@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{second}"),
        Some(json!({ "role": "owner" })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{owner}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    assert_eq!(
        app.admin(
            Method::DELETE,
            &format!("/orgs/{root}/members/{owner}"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}

async fn products_carry_environments_presets_and_read_only_roles(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let pid = id(&product);
    let envs = product["environments"].as_array().expect("envs");
    assert_eq!(
        envs.iter()
            .map(|e| (
                e["name"].as_str().expect("name"),
                e["restricted"].as_bool().expect("bool")
            ))
            .collect::<Vec<_>>(),
        [("Development", false), ("Production", true)]
    );
    let groups = product["permission_groups"].as_array().expect("groups");
    let names: Vec<_> = groups
        .iter()
        .map(|g| g["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "Product Administrator",
            "Product Manager",
            "Developer",
            "Viewer",
            "Editor",
            "Publisher",
            "Project Owner",
            "Administrator"
        ]
    );
    let developer = groups
        .iter()
        .find(|g| g["name"] == "Developer")
        .expect("preset");
    assert_eq!(
        (
            developer["preset"].as_bool(),
            developer["read_only"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(developer["access"]["restricted"], "read_only");
    let editor = groups.iter().find(|g| g["name"] == "Editor").expect("role");
    let refused = app
        .admin(
            Method::PUT,
            &format!("/permission-groups/{}", id(editor)),
            Some(json!({ "name": "Editor", "default_access": "full" })),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::CONFLICT,
        "built-in roles are read-only"
    );
    let listed = app
        .ok(
            Method::GET,
            &format!("/products/{pid}/permission-groups"),
            None,
        )
        .await;
    assert_eq!(
        listed["permission_groups"]
            .as_array()
            .expect("groups")
            .len(),
        8
    );

    // Environments: create, rename, restrict, delete.
    let staging = app
        .ok(
            Method::POST,
            &format!("/products/{pid}/environments"),
            Some(json!({ "name": "Staging" })),
        )
        .await;
    let dup = app
        .admin(
            Method::POST,
            &format!("/products/{pid}/environments"),
            Some(json!({ "name": "staging" })),
        )
        .await;
    assert_eq!(
        dup.status,
        StatusCode::CONFLICT,
        "names are unique per product, case-insensitively"
    );
    let sid = id(&staging);
    let changed = app
        .ok(
            Method::PATCH,
            &format!("/environments/{sid}"),
            Some(json!({ "name": "Pre-prod", "restricted": true })),
        )
        .await;
    assert_eq!(
        (changed["name"].as_str(), changed["restricted"].as_bool()),
        (Some("Pre-prod"), Some(true))
    );
    let renamed = app
        .ok(
            Method::PATCH,
            &format!("/products/{pid}"),
            Some(json!({ "name": "Checkout v2" })),
        )
        .await;
    assert_eq!(renamed["name"], "Checkout v2");

    // A group with an override naming the environment; deleting the environment takes it along.
    let group = app
        .ok(
            Method::POST,
            &format!("/products/{pid}/permission-groups"),
            Some(json!({
                "name": "QA", "capabilities": ["view_sdk_key"], "default_access": "read_only",
                "environments": { sid.clone(): "full" },
            })),
        )
        .await;
    assert_eq!(group["access"]["overrides"][&sid], "full");
    assert_eq!(
        app.admin(Method::DELETE, &format!("/environments/{sid}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let after = app.ok(Method::GET, &format!("/products/{pid}"), None).await;
    let qa = after["permission_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "QA")
        .expect("qa");
    assert_eq!(qa["access"]["overrides"], json!({}));
    let bad_env = app.admin(Method::POST, &format!("/products/{pid}/permission-groups"), Some(json!({
        "name": "Ghost", "default_access": "none", "environments": { Uuid::now_v7().to_string(): "full" },
    }))).await;
    assert_eq!(bad_env.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_env.body["error"]["fields"][0]["field"], "environments");

    let audit = app
        .ok(
            Method::GET,
            &format!("/products/{pid}/audit?limit=100"),
            None,
        )
        .await;
    let actions: Vec<_> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().expect("a").to_owned())
        .collect();
    for expected in [
        "product.create",
        "environment.create",
        "environment.update",
        "product.rename",
        "permission_group.create",
        "environment.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "product audit lacks {expected}: {actions:?}"
        );
    }
    assert_eq!(
        app.admin(Method::DELETE, &format!("/products/{pid}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.admin(Method::GET, &format!("/products/{pid}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn member_access_gives_the_union_and_every_change_returns_it(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let pid = id(&product);
    let env = |name: &str| {
        id(product["environments"]
            .as_array()
            .expect("envs")
            .iter()
            .find(|e| e["name"] == name)
            .expect("env"))
    };
    let (dev_env, prod_env) = (env("Development"), env("Production"));
    let group = |name: &str| {
        id(product["permission_groups"]
            .as_array()
            .expect("g")
            .iter()
            .find(|g| g["name"] == name)
            .expect("group"))
    };
    let dev = app.user("dev@acme.test").await;

    // Not a member of the org yet: no access can be set.
    let outsider = app
        .admin(
            Method::PUT,
            &format!("/products/{pid}/members/{dev}"),
            Some(json!({ "permission_groups": [group("Developer")] })),
        )
        .await;
    assert_eq!(outsider.status, StatusCode::NOT_FOUND);
    let joined = app
        .ok(
            Method::PUT,
            &format!("/orgs/{root}/members/{dev}"),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(
        joined["permissions"][0]["environments"][&prod_env], "none",
        "a new member has no product access"
    );

    let eff = app
        .ok(
            Method::PUT,
            &format!("/products/{pid}/members/{dev}"),
            Some(json!({ "permission_groups": [group("Developer")] })),
        )
        .await;
    assert_eq!(eff["environments"][&dev_env], "full");
    assert_eq!(eff["environments"][&prod_env], "read_only");
    assert_eq!(eff["capabilities"], json!(["manage_resources"]));
    // Developer + the Editor role: the union, highest access per environment.
    let eff = app
        .ok(
            Method::PUT,
            &format!("/products/{pid}/members/{dev}"),
            Some(json!({ "permission_groups": [group("Developer"), group("Editor")] })),
        )
        .await;
    assert_eq!(eff["environments"][&prod_env], "edit");
    // Module roles at org level add to it.
    let changed = app
        .ok(
            Method::PUT,
            &format!("/orgs/{root}/members/{dev}/modules"),
            Some(json!({ "sdk_keys": "read", "feature_flags": "write" })),
        )
        .await;
    let eff = &changed["permissions"][0];
    assert_eq!(eff["environments"][&prod_env], "full");
    assert!(
        eff["capabilities"]
            .as_array()
            .expect("caps")
            .contains(&json!("view_sdk_key"))
    );
    let read = app
        .ok(
            Method::GET,
            &format!("/orgs/{root}/members/{dev}/permissions?product={pid}"),
            None,
        )
        .await;
    assert_eq!(
        &read, eff,
        "the permissions endpoint agrees with the change's answer"
    );
    // An unknown group is named.
    let ghost = Uuid::now_v7();
    let bad = app
        .admin(
            Method::PUT,
            &format!("/products/{pid}/members/{dev}"),
            Some(json!({ "permission_groups": [ghost] })),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains(&ghost.to_string()));

    // Deleting a group in use is refused, unless its members move in the same request.
    let qa = app
        .ok(
            Method::POST,
            &format!("/products/{pid}/permission-groups"),
            Some(json!({ "name": "QA", "default_access": "read_only" })),
        )
        .await;
    app.ok(
        Method::PUT,
        &format!("/products/{pid}/members/{dev}"),
        Some(json!({ "permission_groups": [id(&qa)] })),
    )
    .await;
    let in_use = app
        .admin(
            Method::DELETE,
            &format!("/permission-groups/{}", id(&qa)),
            None,
        )
        .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.text);
    let editor_role = rolegate::domain::product::role_group_id(
        pid.to_string().parse().expect("product id"),
        rolegate::domain::permission::Role::Editor,
    );
    let into_role = app
        .admin(
            Method::DELETE,
            &format!("/permission-groups/{}?reassign_to={editor_role}", id(&qa)),
            None,
        )
        .await;
    assert_eq!(into_role.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        into_role
            .text
            .contains("a built-in role cannot be a reassign target"),
        "{}",
        into_role.text
    );
    let moved = app
        .ok(
            Method::DELETE,
            &format!(
                "/permission-groups/{}?reassign_to={}",
                id(&qa),
                group("Product Manager")
            ),
            None,
        )
        .await;
    assert_eq!(moved["reassigned_grants"], 1);
    let eff = app
        .ok(
            Method::GET,
            &format!("/orgs/{root}/members/{dev}/permissions?product={pid}"),
            None,
        )
        .await;
    assert_eq!(
        eff["environments"][&prod_env], "full",
        "now a Product Manager (plus the module roles)"
    );

    // Removing the member takes their grants in that org along.
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{dev}/modules"),
        Some(json!({ "sdk_keys": "none", "feature_flags": "none" })),
    )
    .await;
    assert_eq!(
        app.admin(Method::DELETE, &format!("/orgs/{root}/members/{dev}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.admin(
            Method::GET,
            &format!("/orgs/{root}/members/{dev}/permissions?product={pid}"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // The owner has everything.
    let owner = app
        .store
        .find_user_by_email(app.org_id, "owner@acme.test")
        .await
        .expect("lookup")
        .expect("owner")
        .id;
    let eff = app
        .ok(
            Method::GET,
            &format!("/orgs/{root}/members/{owner}/permissions?product={pid}"),
            None,
        )
        .await;
    assert_eq!(
        (
            eff["org_owner"].as_bool(),
            eff["environments"][&prod_env].as_str()
        ),
        (Some(true), Some("full"))
    );
}

async fn member_search_is_unicode_case_insensitive_and_pages(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    for email in [
        "Élodie@Exämple.test",
        "elodie@plain.test",
        "per_cent%@acme.test",
        "bob@acme.test",
        "carol@acme.test",
    ] {
        let u = app.user(email).await;
        app.ok(
            Method::PUT,
            &format!("/orgs/{root}/members/{u}"),
            Some(json!({ "role": "member" })),
        )
        .await;
    }
    let search = |q: &str| {
        let q = q.to_owned();
        let app = &app;
        let root = root.clone();
        async move {
            let page = app
                .ok(
                    Method::GET,
                    &format!("/orgs/{root}/members?search={q}"),
                    None,
                )
                .await;
            let mut emails: Vec<String> = page["members"]
                .as_array()
                .expect("m")
                .iter()
                .map(|m| m["user"]["email"].as_str().expect("e").to_owned())
                .collect();
            emails.sort();
            emails
        }
    };
    assert_eq!(
        search("%C3%89LODIE%40EX%C3%84").await,
        ["Élodie@Exämple.test"],
        "non-ASCII letters fold"
    );
    assert_eq!(search("elodie").await, ["elodie@plain.test"], "é is not e");
    assert_eq!(
        search("_cent%25").await,
        ["per_cent%@acme.test"],
        "% and _ are literal"
    );
    assert_eq!(search("%25").await, ["per_cent%@acme.test"]);
    // Paging visits everyone once (5 members + the owner).
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .ok(
                Method::GET,
                &format!("/orgs/{root}/members?limit=2{after}"),
                None,
            )
            .await;
        seen.extend(
            page["members"]
                .as_array()
                .expect("m")
                .iter()
                .map(|m| m["user"]["id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (6, 6));
}

async fn bad_input_gets_400_or_422_naming_fields(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let blank = app
        .admin(
            Method::POST,
            "/orgs",
            Some(json!({ "name": " ", "parent_id": root })),
        )
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(blank.body["error"]["fields"][0]["field"], "name");
    let envs = app
        .admin(
            Method::POST,
            &format!("/orgs/{root}/products"),
            Some(json!({ "name": "P", "environments": [{ "name": "ok" }, { "name": "" }] })),
        )
        .await;
    assert_eq!(
        envs.body["error"]["fields"][0]["field"],
        "environments[1].name"
    );
    let wrong_type = app
        .admin(
            Method::POST,
            &format!("/orgs/{root}/products"),
            Some(json!({ "name": 42 })),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_access = app
        .admin(
            Method::PUT,
            &format!("/orgs/{root}/members/{}/modules", Uuid::now_v7()),
            Some(json!({ "feature_flags": "admin" })),
        )
        .await;
    assert_eq!(bad_access.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown_user = app
        .admin(
            Method::PUT,
            &format!("/orgs/{root}/members/{}", Uuid::now_v7()),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(unknown_user.status, StatusCode::NOT_FOUND);
    // A misspelt audit action is not "nothing happened": it is refused with the valid names,
    // on the tenant's log and a product's alike.
    let product = app.product(&root).await;
    for path in [
        "/audit?action=org.craete".to_owned(),
        format!(
            "/products/{}/audit?action=org.craete",
            product["id"].as_str().expect("id")
        ),
    ] {
        let typo = app.admin(Method::GET, &path, None).await;
        assert_eq!(
            typo.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            typo.text
        );
        assert_eq!(typo.body["error"]["fields"][0]["field"], "action");
        let message = typo.body["error"]["fields"][0]["message"]
            .as_str()
            .expect("message");
        assert!(
            message.contains("org.create") && message.contains("scim.user.release"),
            "{message}"
        );
    }
    assert_eq!(
        app.admin(Method::GET, "/audit?action=org.create", None)
            .await
            .status,
        StatusCode::OK
    );
}

/// Two tenants side by side: neither can read or change anything of the other's, and the
/// answer is always 404.
async fn two_orgs_are_isolated(backend: Backend) {
    let app = TestApp::new(backend).await;
    let a_root = app.org_id.to_string();
    let a_team = app.sub_org(&a_root, "A team").await;
    let a_product = app.product(&a_root).await;
    let a_pid = id(&a_product);
    let a_env = id(&a_product["environments"][0]);
    let a_group = id(&a_product["permission_groups"][0]);
    let a_user = app.user("someone@a.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{a_root}/members/{a_user}"),
        Some(json!({ "role": "member" })),
    )
    .await;

    let (b, b_owner) = app
        .store
        .create_org(&Ctx::new(Actor::Cli), "B", "owner@b.test")
        .await
        .expect("org b");
    let b_token = app.token(b.id, TokenKind::Admin).await;
    let b_call = |method: Method, path: String, body: Option<Value>| {
        let app = &app;
        let token = b_token.clone();
        async move {
            app.call(method, &format!("/api/v1{path}"), Some(&token), body)
                .await
        }
    };
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/orgs/{a_root}"), None),
        (Method::GET, format!("/orgs/{a_team}"), None),
        (
            Method::PATCH,
            format!("/orgs/{a_team}"),
            Some(json!({ "name": "pwned" })),
        ),
        (Method::DELETE, format!("/orgs/{a_team}"), None),
        (
            Method::POST,
            "/orgs".into(),
            Some(json!({ "name": "x", "parent_id": a_root })),
        ),
        (Method::GET, format!("/orgs/{a_root}/members"), None),
        (
            Method::PUT,
            format!("/orgs/{a_root}/members/{a_user}"),
            Some(json!({ "role": "owner" })),
        ),
        (
            Method::PUT,
            format!("/orgs/{}/members/{a_user}", b.id),
            Some(json!({ "role": "owner" })),
        ),
        (
            Method::DELETE,
            format!("/orgs/{a_root}/members/{a_user}"),
            None,
        ),
        (
            Method::PUT,
            format!("/orgs/{a_root}/members/{a_user}/modules"),
            Some(json!({ "billing": "write" })),
        ),
        (
            Method::GET,
            format!("/orgs/{a_root}/members/{a_user}/permissions?product={a_pid}"),
            None,
        ),
        (Method::GET, format!("/orgs/{a_root}/products"), None),
        (
            Method::POST,
            format!("/orgs/{a_root}/products"),
            Some(json!({ "name": "x" })),
        ),
        (Method::GET, format!("/products/{a_pid}"), None),
        (
            Method::PATCH,
            format!("/products/{a_pid}"),
            Some(json!({ "name": "x" })),
        ),
        (Method::DELETE, format!("/products/{a_pid}"), None),
        (
            Method::POST,
            format!("/products/{a_pid}/environments"),
            Some(json!({ "name": "x" })),
        ),
        (
            Method::PATCH,
            format!("/environments/{a_env}"),
            Some(json!({ "restricted": false })),
        ),
        (Method::DELETE, format!("/environments/{a_env}"), None),
        (
            Method::GET,
            format!("/products/{a_pid}/permission-groups"),
            None,
        ),
        (
            Method::POST,
            format!("/products/{a_pid}/permission-groups"),
            Some(json!({ "name": "x", "default_access": "full" })),
        ),
        (
            Method::PUT,
            format!("/permission-groups/{a_group}"),
            Some(json!({ "name": "x", "default_access": "full" })),
        ),
        (
            Method::DELETE,
            format!("/permission-groups/{a_group}"),
            None,
        ),
        (
            Method::PUT,
            format!("/products/{a_pid}/members/{a_user}"),
            Some(json!({ "role": "administrator" })),
        ),
        (Method::GET, format!("/products/{a_pid}/audit"), None),
        (Method::GET, format!("/audit?org_id={a_root}"), None),
    ];
    for (method, path, body) in attempts {
        let reply = b_call(method.clone(), path.clone(), body).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "B reached A: {method} {path} → {} {}",
            reply.text,
            reply.status
        );
    }
    // B's own view holds none of A's data.
    let b_orgs = b_call(Method::GET, "/orgs".into(), None).await;
    assert_eq!(b_orgs.body["orgs"].as_array().expect("orgs").len(), 1);
    let b_members = b_call(Method::GET, format!("/orgs/{}/members", b.id), None).await;
    assert_eq!(b_members.body["members"].as_array().expect("m").len(), 1);
    assert_eq!(
        b_members.body["members"][0]["user"]["id"],
        b_owner.id.to_string()
    );
    let b_audit = b_call(Method::GET, "/audit?limit=1000".into(), None).await;
    assert!(!b_audit.text.contains(&a_root) && !b_audit.text.contains(&a_pid));
    // And A's data is intact.
    let product = app
        .ok(Method::GET, &format!("/products/{a_pid}"), None)
        .await;
    assert_eq!(product["name"], "Checkout");
    assert_eq!(product["environments"].as_array().expect("envs").len(), 2);
    let team = app.ok(Method::GET, &format!("/orgs/{a_team}"), None).await;
    assert_eq!(team["name"], "A team");
}

/// A sub-org's admin token reaches its org and the orgs below, not its parent or siblings.
async fn a_sub_org_token_reaches_its_subtree_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let team = app.sub_org(&root, "Team").await;
    let squad = app.sub_org(&team, "Squad").await;
    let sibling = app.sub_org(&root, "Sibling").await;
    let token = app
        .token(team.parse().expect("uuid"), TokenKind::Admin)
        .await;
    let get = |org: String| {
        let app = &app;
        let token = token.clone();
        async move {
            app.call(
                Method::GET,
                &format!("/api/v1/orgs/{org}"),
                Some(&token),
                None,
            )
            .await
            .status
        }
    };
    assert_eq!(get(team.clone()).await, StatusCode::OK);
    assert_eq!(get(squad.clone()).await, StatusCode::OK);
    assert_eq!(get(root).await, StatusCode::NOT_FOUND);
    assert_eq!(get(sibling).await, StatusCode::NOT_FOUND);
    let listed = app
        .call(Method::GET, "/api/v1/orgs", Some(&token), None)
        .await;
    assert_eq!(listed.body["orgs"].as_array().expect("orgs").len(), 2);
}

/// A member change answers with the member's permissions on every product of the org, each
/// computed for its own environments and grants.
async fn member_changes_answer_for_every_product_of_the_org(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let first = app.product(&root).await;
    let second = app
        .ok(Method::POST, &format!("/orgs/{root}/products"), Some(json!({ "name": "Search", "environments": [{ "name": "Live", "restricted": true }] })))
        .await;
    let dev = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{dev}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    let viewer = app
        .ok(
            Method::PUT,
            &format!("/products/{}/members/{dev}", id(&second)),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(viewer["capabilities"], json!([]));
    let changed = app
        .ok(
            Method::PUT,
            &format!("/orgs/{root}/members/{dev}/modules"),
            Some(json!({ "sdk_keys": "read" })),
        )
        .await;
    let perms = changed["permissions"].as_array().expect("per product");
    assert_eq!(perms.len(), 2);
    let of = |product: &Value| {
        perms
            .iter()
            .find(|p| p["product_id"] == product["id"])
            .expect("listed")
            .clone()
    };
    let live = id(&second["environments"][0]);
    assert_eq!(
        of(&second)["environments"][&live],
        "read_only",
        "the Viewer role on its own product"
    );
    assert_eq!(
        of(&second)["environments"].as_object().expect("envs").len(),
        1
    );
    assert_eq!(
        of(&first)["environments"].as_object().expect("envs").len(),
        2
    );
    assert!(
        of(&first)["environments"]
            .as_object()
            .expect("envs")
            .values()
            .all(|a| a == "none"),
        "no grant on the first product"
    );
    for p in perms {
        assert_eq!(
            p["capabilities"],
            json!(["view_sdk_key"]),
            "module roles apply to every product"
        );
    }
}

crate::on_both_backends!(
    member_changes_answer_for_every_product_of_the_org,
    roles_inherit_through_a_three_level_tree,
    the_last_owner_cannot_be_removed_on_any_admin_path,
    products_carry_environments_presets_and_read_only_roles,
    member_access_gives_the_union_and_every_change_returns_it,
    member_search_is_unicode_case_insensitive_and_pages,
    bad_input_gets_400_or_422_naming_fields,
    two_orgs_are_isolated,
    a_sub_org_token_reaches_its_subtree_only,
);
