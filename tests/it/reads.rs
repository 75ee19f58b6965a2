//! The reads admins reach for, over the real router on both backends: a user by id with where
//! they belong, the users list (search, paging, reach), who has access to a product (effective
//! access per environment, with names), and the groups an org's IdP pushed.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use rolegate::domain::token::TokenKind;
use serde_json::{Value, json};

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

fn not_found(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "{what}: {}",
        reply.text
    );
    assert_eq!(
        reply.body["error"]["code"], "not_found",
        "{what}: {}",
        reply.text
    );
}

/// A SCIM User pushed with `secret`, returning its id.
async fn scim_user(app: &TestApp, secret: &str, user_name: &str, email: &str) -> String {
    let reply = app
        .scim_as(
            secret,
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": [USER],
                "userName": user_name,
                "displayName": format!("{user_name} (IdP)"),
                "emails": [{ "value": email, "primary": true }],
            })),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    id(&reply.body)
}

/// A SCIM Group pushed with `secret`, returning its id.
async fn scim_group(
    app: &TestApp,
    secret: &str,
    name: &str,
    external_id: Option<&str>,
    members: &[&str],
) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let mut body = json!({ "schemas": [GROUP], "displayName": name, "members": members });
    if let Some(e) = external_id {
        body["externalId"] = json!(e);
    }
    let reply = app
        .scim_as(secret, Method::POST, "/Groups", Some(body), &[])
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    id(&reply.body)
}

/// A SCIM token of `org`, minted through the admin API; returns its secret.
async fn scim_token(app: &TestApp, org: &str) -> String {
    app.ok(
        Method::POST,
        "/tokens",
        Some(json!({ "kind": "scim", "org_id": org })),
    )
    .await["token_secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

async fn join(app: &TestApp, org: &str, user: &str, role: Value) {
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/members/{user}"),
        Some(json!({ "role": role })),
    )
    .await;
}

fn group_id(product: &Value, name: &str) -> String {
    id(product["permission_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group {name}")))
}

fn env_id(product: &Value, name: &str) -> String {
    id(product["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no environment {name}")))
}

/// Every item of a list read page by page (`limit` each) through `next`, and how many pages.
async fn all_pages(
    app: &TestApp,
    token: &str,
    path: &str,
    items: &str,
    key: impl Fn(&Value) -> String,
    limit: u32,
) -> (Vec<String>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &after {
            Some(a) => format!("/api/v1{path}{sep}limit={limit}&after={a}"),
            None => format!("/api/v1{path}{sep}limit={limit}"),
        };
        let reply = app.get(&url, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.text);
        let page = reply.body[items].as_array().expect("items").clone();
        assert!(
            page.len() <= limit as usize,
            "{url}: a page longer than its limit"
        );
        pages += 1;
        seen.extend(page.iter().map(&key));
        match reply.body["next"].as_str() {
            Some(next) => {
                assert_eq!(
                    page.len(),
                    limit as usize,
                    "{url}: a short page with a next"
                );
                assert_eq!(
                    Some(next.to_owned()),
                    page.last().map(&key),
                    "next is the last key"
                );
                after = Some(next.to_owned());
            }
            None => break,
        }
        assert!(pages < 100, "{path}: paging does not end");
    }
    (seen, pages)
}

async fn a_user_by_id_shows_memberships_scim_holder_and_product_access(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let product = app
        .ok(
            Method::POST,
            &format!("/orgs/{payments}/products"),
            Some(json!({ "name": "Checkout" })),
        )
        .await;
    let pid = id(&product);

    let ada = app.user("ada@acme.test").await;
    join(&app, &root, &ada, json!("member")).await;
    join(&app, &payments, &ada, Value::Null).await;
    app.ok(
        Method::PUT,
        &format!("/products/{pid}/members/{ada}"),
        Some(json!({ "permission_groups": [group_id(&product, "Developer")], "role": "viewer" })),
    )
    .await;

    let got = app.ok(Method::GET, &format!("/users/{ada}"), None).await;
    assert_eq!(got["user"]["id"], ada.as_str());
    assert_eq!(got["user"]["email"], "ada@acme.test");
    assert_eq!(got["user"]["active"], true);
    assert_eq!(got["scim_held"], false);
    assert_eq!(got["scim_org_id"], Value::Null);
    let memberships = got["memberships"].as_array().expect("memberships");
    assert_eq!(memberships.len(), 2, "{got}");
    let of = |org: &str| {
        memberships
            .iter()
            .find(|m| m["org_id"] == org)
            .unwrap_or_else(|| panic!("no membership of {org}: {got}"))
    };
    assert_eq!(of(&root)["org_name"], "Acme");
    assert_eq!(of(&root)["role"], "member");
    assert_eq!(of(&root)["source"], "manual");
    assert_eq!(of(&payments)["org_name"], "Payments");
    assert_eq!(of(&payments)["role"], Value::Null, "inherits");
    assert_eq!(of(&payments)["effective"]["role"], "member");
    assert_eq!(of(&payments)["effective"]["from_org"], root.as_str());

    let access = got["product_access"].as_array().expect("product access");
    assert_eq!(access.len(), 1, "{got}");
    assert_eq!(access[0]["product_id"], pid.as_str());
    assert_eq!(access[0]["product_name"], "Checkout");
    assert_eq!(access[0]["org_id"], payments.as_str());
    let grants: BTreeSet<(String, String)> = access[0]["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .map(|g| {
            assert_eq!(g["source"], "manual");
            (
                g["name"].as_str().expect("name").to_owned(),
                g["role"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        grants,
        BTreeSet::from([
            ("Developer".to_owned(), "null".to_owned()),
            ("Viewer".to_owned(), "\"viewer\"".to_owned()),
        ])
    );

    // A person the IdP pushed: held by the root org's SCIM token, with its display name.
    let grace = scim_user(&app, &app.scim_token, "grace", "grace@navy.test").await;
    let got = app.ok(Method::GET, &format!("/users/{grace}"), None).await;
    assert_eq!(got["scim_held"], true);
    assert_eq!(got["scim_org_id"], root.as_str());
    assert_eq!(got["user"]["user_name"], "grace");
    assert_eq!(got["user"]["email"], "grace@navy.test");
    assert_eq!(got["user"]["display_name"], "grace (IdP)");
    assert_eq!(got["memberships"][0]["source"], "scim");
    assert_eq!(got["product_access"], json!([]));

    // Nothing behind an unknown id; a person of nowhere is the whole tenant's to see.
    not_found(
        &app.admin(
            Method::GET,
            &format!("/users/{}", uuid::Uuid::now_v7()),
            None,
        )
        .await,
        "an unknown user",
    );
    let loner = app.user("loner@acme.test").await;
    let got = app.ok(Method::GET, &format!("/users/{loner}"), None).await;
    assert_eq!(got["memberships"], json!([]));
}

async fn the_users_list_searches_case_insensitively_and_pages_with_next(backend: Backend) {
    let app = TestApp::new(backend).await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(app.user(&format!("Pager{i}@Acme.test")).await);
    }
    let hopper = scim_user(&app, &app.scim_token, "Grace.Hopper", "gh@navy.test").await;

    let found = app.ok(Method::GET, "/users?search=pAGER", None).await;
    let mut expected = made.clone();
    expected.sort();
    assert_eq!(ids(&found["users"]), expected, "by id, matching the e-mail");
    assert_eq!(found["next"], Value::Null);
    for (search, what) in [("hOPPER", "the user name"), ("NAVY", "the e-mail")] {
        let found = app
            .ok(Method::GET, &format!("/users?search={search}"), None)
            .await;
        assert_eq!(ids(&found["users"]), vec![hopper.clone()], "by {what}");
    }
    // `_` is literal, not LIKE's any-character.
    let none = app.ok(Method::GET, "/users?search=pager_", None).await;
    assert_eq!(none["users"], json!([]));

    let (paged, pages) = all_pages(
        &app,
        &app.admin_token,
        "/users?search=pager",
        "users",
        id,
        2,
    )
    .await;
    assert_eq!(paged, expected, "each user once, in id order");
    assert_eq!(pages, 3);

    // Everyone of the tenant, for the root org's token: the Owner, the pagers, the IdP's.
    let all = app.ok(Method::GET, "/users", None).await;
    assert_eq!(all["users"].as_array().expect("users").len(), 7);

    let bad = app.admin(Method::GET, "/users?limit=0", None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert_eq!(
        bad.body["error"]["fields"][0]["field"], "limit",
        "{}",
        bad.text
    );
}

async fn a_sub_org_token_sees_only_the_people_of_its_subtree(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let squad = app.sub_org(&payments, "Squad").await;
    let growth = app.sub_org(&root, "Growth").await;
    let caller = app
        .token(payments.parse().expect("uuid"), TokenKind::Admin)
        .await;

    let parent_only = app.user("parent@acme.test").await;
    join(&app, &root, &parent_only, json!("member")).await;
    let sibling = app.user("sibling@acme.test").await;
    join(&app, &growth, &sibling, json!("member")).await;
    let payer = app.user("payer@acme.test").await;
    join(&app, &payments, &payer, json!("member")).await;
    let squaddie = app.user("squaddie@acme.test").await;
    join(&app, &squad, &squaddie, json!("member")).await;
    let both = app.user("both@acme.test").await;
    join(&app, &root, &both, json!("member")).await;
    join(&app, &payments, &both, json!("member")).await;
    let held = scim_user(
        &app,
        &scim_token(&app, &payments).await,
        "held",
        "held@acme.test",
    )
    .await;

    // `both` has access to a product of the root org and one of Payments.
    for org in [&root, &payments] {
        let product = app.product(org).await;
        app.ok(
            Method::PUT,
            &format!("/products/{}/members/{both}", id(&product)),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    }

    let list = |path: String| {
        let app = &app;
        let caller = caller.clone();
        async move {
            let reply = app.get(&format!("/api/v1{path}"), &caller).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
            ids(&reply.body["users"])
                .into_iter()
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        list("/users".into()).await,
        BTreeSet::from([payer.clone(), squaddie.clone(), both.clone(), held.clone()]),
        "members of Payments and below, and whom its SCIM holds; nobody above or beside"
    );
    assert_eq!(
        list(format!("/users?org_id={squad}")).await,
        BTreeSet::from([squaddie.clone()])
    );
    for org in [&root, &growth] {
        not_found(
            &app.get(&format!("/api/v1/users?org_id={org}"), &caller)
                .await,
            "an org out of reach as a filter",
        );
    }
    // The root token filters by the same subtree.
    let rooted = app
        .ok(Method::GET, &format!("/users?org_id={payments}"), None)
        .await;
    assert_eq!(
        ids(&rooted["users"]).into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([payer.clone(), squaddie.clone(), both.clone(), held.clone()])
    );

    for (user, what) in [
        (&parent_only, "a parent-only user"),
        (&sibling, "a sibling's user"),
    ] {
        not_found(
            &app.get(&format!("/api/v1/users/{user}"), &caller).await,
            what,
        );
        // The same id the root token reads: out of reach, not unknown.
        app.ok(Method::GET, &format!("/users/{user}"), None).await;
    }
    for user in [&payer, &squaddie, &held] {
        let reply = app.get(&format!("/api/v1/users/{user}"), &caller).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    // Seen from Payments, `both` is a member of Payments with access to its product only.
    let seen = app
        .get(&format!("/api/v1/users/{both}"), &caller)
        .await
        .body;
    let orgs: Vec<&str> = seen["memberships"]
        .as_array()
        .expect("memberships")
        .iter()
        .map(|m| m["org_id"].as_str().expect("org"))
        .collect();
    assert_eq!(orgs, vec![payments.as_str()], "{seen}");
    let access = seen["product_access"].as_array().expect("access");
    assert_eq!(access.len(), 1, "{seen}");
    assert_eq!(access[0]["org_id"], payments.as_str());
    let whole = app.ok(Method::GET, &format!("/users/{both}"), None).await;
    assert_eq!(whole["memberships"].as_array().expect("m").len(), 2);
    assert_eq!(whole["product_access"].as_array().expect("a").len(), 2);
    let held_seen = app
        .get(&format!("/api/v1/users/{held}"), &caller)
        .await
        .body;
    assert_eq!(held_seen["scim_org_id"], payments.as_str());
}

async fn product_members_show_effective_access_per_named_environment(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let pid = id(&product);
    let (dev_env, prod_env) = (
        env_id(&product, "Development"),
        env_id(&product, "Production"),
    );
    assert_eq!(
        product["environments"]
            .as_array()
            .expect("envs")
            .iter()
            .find(|e| e["name"] == "Production")
            .expect("production")["restricted"],
        true
    );

    let developer = app.user("developer@acme.test").await;
    let editor = app.user("editor@acme.test").await;
    let idle = app.user("idle@acme.test").await;
    for user in [&developer, &editor, &idle] {
        join(&app, &root, user, json!("member")).await;
    }
    app.ok(
        Method::PUT,
        &format!("/products/{pid}/members/{developer}"),
        Some(json!({ "permission_groups": [group_id(&product, "Developer")] })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!("/products/{pid}/members/{editor}"),
        Some(json!({ "role": "editor" })),
    )
    .await;
    let owner = app
        .store
        .find_user_by_email(app.org_id, "owner@acme.test")
        .await
        .expect("lookup")
        .expect("owner")
        .id
        .to_string();

    let page = app
        .ok(Method::GET, &format!("/products/{pid}/members"), None)
        .await;
    assert_eq!(page["product_id"], pid.as_str());
    let members = page["members"].as_array().expect("members");
    assert_eq!(members.len(), 4, "{page}");
    let of = |user: &str| {
        members
            .iter()
            .find(|m| m["user"]["id"] == user)
            .unwrap_or_else(|| panic!("{user} not listed: {page}"))
    };
    for m in members {
        assert_eq!(
            m["permissions"]["environment_names"],
            json!({ &dev_env: "Development", &prod_env: "Production" }),
            "every member's environments are named"
        );
    }

    // A permission group: full in the normal environment, read-only in the restricted one.
    let d = of(&developer);
    assert_eq!(d["has_access"], true);
    assert_eq!(d["permissions"]["environments"][&dev_env], "full");
    assert_eq!(d["permissions"]["environments"][&prod_env], "read_only");
    assert_eq!(
        d["permissions"]["capabilities"],
        json!(["manage_resources"])
    );
    assert_eq!(d["grants"][0]["name"], "Developer");
    assert_eq!(d["grants"][0]["role"], Value::Null);
    assert_eq!(
        d["grants"][0]["permission_group_id"],
        group_id(&product, "Developer").as_str()
    );

    // A built-in role: full in the normal one, edit (not launch) in the restricted one.
    let e = of(&editor);
    assert_eq!(e["permissions"]["environments"][&dev_env], "full");
    assert_eq!(e["permissions"]["environments"][&prod_env], "edit");
    assert_eq!(e["grants"][0]["role"], "editor");
    assert_eq!(
        e["grants"][0]["permission_group_id"],
        group_id(&product, "Editor").as_str(),
        "the role's id as the product lists it"
    );

    // A member with nothing is listed, flagged.
    let i = of(&idle);
    assert_eq!(i["has_access"], false);
    assert_eq!(i["grants"], json!([]));
    assert_eq!(i["permissions"]["environments"][&prod_env], "none");
    assert_eq!(i["permissions"]["capabilities"], json!([]));

    // The org's Owner has everything without a grant.
    let o = of(&owner);
    assert_eq!(o["effective"]["role"], "owner");
    assert_eq!(o["has_access"], true);
    assert_eq!(o["permissions"]["environments"][&prod_env], "full");

    // The same evaluator as a member's own permissions route, to the field.
    for user in [&developer, &editor, &idle, &owner] {
        let own = app
            .ok(
                Method::GET,
                &format!("/orgs/{root}/members/{user}/permissions?product={pid}"),
                None,
            )
            .await;
        assert_eq!(own, of(user)["permissions"], "{user}");
    }

    // Paged by user id through `next`.
    let (paged, pages) = all_pages(
        &app,
        &app.admin_token,
        &format!("/products/{pid}/members"),
        "members",
        |m| m["user"]["id"].as_str().expect("id").to_owned(),
        3,
    )
    .await;
    let mut expected = vec![developer, editor, idle, owner];
    expected.sort();
    assert_eq!(paged, expected);
    assert_eq!(pages, 2);
}

async fn effective_permissions_name_each_environment_and_follow_a_rename(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let product = app.product(&root).await;
    let pid = id(&product);
    let prod_env = env_id(&product, "Production");
    let dev = app.user("dev@acme.test").await;
    join(&app, &root, &dev, json!("member")).await;
    let set = app
        .ok(
            Method::PUT,
            &format!("/products/{pid}/members/{dev}"),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(set["environment_names"][&prod_env], "Production");
    assert_eq!(set["environments"][&prod_env], "read_only");

    app.ok(
        Method::PATCH,
        &format!("/environments/{prod_env}"),
        Some(json!({ "name": "Live" })),
    )
    .await;
    let read = |path: String| {
        let app = &app;
        async move { app.ok(Method::GET, &path, None).await }
    };
    let eff = read(format!(
        "/orgs/{root}/members/{dev}/permissions?product={pid}"
    ))
    .await;
    assert_eq!(eff["environment_names"][&prod_env], "Live");
    // A member change answers with the same names for every product of the org.
    let changed = app
        .ok(
            Method::PUT,
            &format!("/orgs/{root}/members/{dev}"),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(
        changed["permissions"][0]["environment_names"][&prod_env],
        "Live"
    );
}

async fn idp_groups_show_what_scim_pushed_and_another_orgs_group_is_not_found(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id.to_string();
    let ada = scim_user(&app, &app.scim_token, "ada", "ada@acme.test").await;
    let bob = scim_user(&app, &app.scim_token, "bob", "bob@acme.test").await;
    let engineering = scim_group(
        &app,
        &app.scim_token,
        "Engineering",
        Some("okta-00g1"),
        &[&ada, &bob],
    )
    .await;
    let empty = scim_group(&app, &app.scim_token, "Nobody yet", None, &[]).await;
    let everyone = scim_group(&app, &app.scim_token, "Everyone", None, &[&engineering]).await;

    let list = app
        .ok(Method::GET, &format!("/orgs/{root}/idp-groups"), None)
        .await;
    let mut expected = vec![engineering.clone(), empty.clone(), everyone.clone()];
    expected.sort();
    assert_eq!(ids(&list["groups"]), expected, "by id");
    let group = |id: &str| {
        list["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["id"] == id)
            .cloned()
            .expect("listed")
    };
    assert_eq!(group(&engineering)["display_name"], "Engineering");
    assert_eq!(group(&engineering)["external_id"], "okta-00g1");
    assert_eq!(group(&engineering)["member_count"], 2);
    assert_eq!(group(&empty)["member_count"], 0);
    assert_eq!(group(&empty)["external_id"], Value::Null);
    assert_eq!(group(&everyone)["member_count"], 1);
    let (paged, _) = all_pages(
        &app,
        &app.admin_token,
        &format!("/orgs/{root}/idp-groups"),
        "groups",
        id,
        1,
    )
    .await;
    assert_eq!(paged, expected);

    let members = app
        .ok(
            Method::GET,
            &format!("/orgs/{root}/idp-groups/{engineering}/members"),
            None,
        )
        .await;
    assert_eq!(members["group"]["id"], engineering.as_str());
    assert_eq!(members["group"]["member_count"], 2);
    let mut users: Vec<(String, String, String)> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            assert_eq!(m["kind"], "user");
            (
                id(m),
                m["user_name"].as_str().expect("user name").to_owned(),
                m["email"].as_str().expect("email").to_owned(),
            )
        })
        .collect();
    users.sort();
    let mut expected_users = vec![
        (ada.clone(), "ada".to_owned(), "ada@acme.test".to_owned()),
        (bob.clone(), "bob".to_owned(), "bob@acme.test".to_owned()),
    ];
    expected_users.sort();
    assert_eq!(users, expected_users);
    let (paged, pages) = all_pages(
        &app,
        &app.admin_token,
        &format!("/orgs/{root}/idp-groups/{engineering}/members"),
        "members",
        id,
        1,
    )
    .await;
    assert_eq!(
        paged,
        expected_users
            .iter()
            .map(|u| u.0.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(pages, 3, "two full pages, then an empty last one");
    let nested = app
        .ok(
            Method::GET,
            &format!("/orgs/{root}/idp-groups/{everyone}/members"),
            None,
        )
        .await;
    assert_eq!(nested["members"][0]["kind"], "group");
    assert_eq!(nested["members"][0]["display_name"], "Engineering");
    assert_eq!(nested["members"][0]["user_name"], Value::Null);

    // Growth's IdP pushes a group: Growth's, and nobody else's — not its parent's, nor its
    // sibling's.
    let payments = app.sub_org(&root, "Payments").await;
    let growth = app.sub_org(&root, "Growth").await;
    let growth_scim = scim_token(&app, &growth).await;
    let gina = scim_user(&app, &growth_scim, "gina", "gina@acme.test").await;
    let growth_group = scim_group(&app, &growth_scim, "Growth hackers", None, &[&gina]).await;
    let theirs = app
        .ok(
            Method::GET,
            &format!("/orgs/{growth}/idp-groups/{growth_group}/members"),
            None,
        )
        .await;
    assert_eq!(ids(&theirs["members"]), vec![gina]);
    let root_list = app
        .ok(Method::GET, &format!("/orgs/{root}/idp-groups"), None)
        .await;
    assert!(!ids(&root_list["groups"]).contains(&growth_group));
    not_found(
        &app.admin(
            Method::GET,
            &format!("/orgs/{root}/idp-groups/{growth_group}/members"),
            None,
        )
        .await,
        "a sub-org's group under its parent",
    );
    let payments_admin = app
        .token(payments.parse().expect("uuid"), TokenKind::Admin)
        .await;
    for path in [
        format!("/api/v1/orgs/{payments}/idp-groups/{growth_group}/members"),
        format!("/api/v1/orgs/{growth}/idp-groups/{growth_group}/members"),
        format!("/api/v1/orgs/{growth}/idp-groups"),
        format!("/api/v1/orgs/{payments}/idp-groups/{engineering}/members"),
    ] {
        not_found(&app.get(&path, &payments_admin).await, &path);
    }
    let own = app
        .get(
            &format!("/api/v1/orgs/{payments}/idp-groups"),
            &payments_admin,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body["groups"], json!([]));
}

crate::on_both_backends!(
    a_user_by_id_shows_memberships_scim_holder_and_product_access,
    the_users_list_searches_case_insensitively_and_pages_with_next,
    a_sub_org_token_sees_only_the_people_of_its_subtree,
    product_members_show_effective_access_per_named_environment,
    effective_permissions_name_each_environment_and_follow_a_rename,
    idp_groups_show_what_scim_pushed_and_another_orgs_group_is_not_found,
);
