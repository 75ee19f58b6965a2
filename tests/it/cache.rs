//! The cached resolver across instances: two instances of the service on one database, each
//! with its own cache and listener. A write through one reaches the other's answers as soon as
//! PostgreSQL delivers the notification (on SQLite, where the other "instance" is what the
//! command line is, when the poll of the invalidations table reads it); a cut listener drops
//! the cache; after a bounded storm of writes and reads on both, every cached answer equals a
//! fresh resolve.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use rolegate::authz::EffectivePermissions;
use rolegate::domain::audit::Actor;
use rolegate::domain::mapping_document::{self, MappingDocument};
use rolegate::domain::resolve::resolve_product;
use rolegate::store::Ctx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::db::postgres_enabled;
use crate::common::http::Instance;
use crate::common::{Backend, TestApp};

/// How long an answer may take to follow a write on another instance, at most, here.
const DELIVERY: Duration = Duration::from_secs(10);

struct Fixture {
    org: Uuid,
    product: Uuid,
    env: Uuid,
}

async fn fixture(app: &TestApp) -> Fixture {
    let product = app.product(&app.org_id.to_string()).await;
    Fixture {
        org: app.org_id,
        product: product["id"].as_str().expect("id").parse().expect("uuid"),
        env: product["environments"][0]["id"]
            .as_str()
            .expect("env")
            .parse()
            .expect("uuid"),
    }
}

async fn member(app: &TestApp, f: &Fixture, email: &str) -> Uuid {
    let user = app.user(email).await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/members/{user}", f.org),
        Some(json!({ "role": null })),
    )
    .await;
    user.parse().expect("uuid")
}

async fn access_on(app: &TestApp, instance: &Instance, f: &Fixture, user: Uuid) -> Value {
    let reply = app
        .call_on(
            instance,
            Method::GET,
            &format!(
                "/orgs/{}/members/{user}/permissions?product={}",
                f.org, f.product
            ),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["environments"][f.env.to_string()].clone()
}

/// Polls `instance` until the user's access in the fixture's environment is `want`.
async fn until_access(app: &TestApp, instance: &Instance, f: &Fixture, user: Uuid, want: &str) {
    let started = Instant::now();
    loop {
        if access_on(app, instance, f, user).await == want {
            eprintln!("followed in {:?}", started.elapsed());
            return;
        }
        assert!(
            started.elapsed() < DELIVERY,
            "the other instance still answers a stale access (want {want})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn set_role(app: &TestApp, f: &Fixture, user: Uuid, role: Option<&str>) {
    app.ok(
        Method::PUT,
        &format!("/products/{}/members/{user}", f.product),
        Some(json!({ "permission_groups": [], "role": role })),
    )
    .await;
}

async fn two_instances() -> Option<(TestApp, Instance)> {
    if !postgres_enabled() {
        return None;
    }
    let app = TestApp::new(Backend::Postgres).await;
    let other = app.second_instance().await;
    Some((app, other))
}

/// On SQLite the other "instance" is what the command line is: another process writing to the
/// same file.
async fn a_grant_through_one_instance_reaches_the_others_cached_answer(backend: Backend) {
    let app = TestApp::new(backend).await;
    let b = app.second_instance().await;
    let f = fixture(&app).await;
    let ada = member(&app, &f, "ada@acme.test").await;
    // B answers, and keeps the answer.
    assert_eq!(access_on(&app, &b, &f, ada).await, "none");
    assert_eq!(access_on(&app, &b, &f, ada).await, "none");
    set_role(&app, &f, ada, Some("editor")).await;
    until_access(&app, &b, &f, ada, "full").await;
    set_role(&app, &f, ada, None).await;
    until_access(&app, &b, &f, ada, "none").await;
}

/// A SCIM-provisioned user (a member of the token's org).
async fn scim_user(app: &TestApp, user_name: &str) -> Uuid {
    let created = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid")
}

/// A SCIM group created with these members (users or groups); its id.
async fn scim_group(app: &TestApp, name: &str, members: &[String]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let group = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": name,
                "members": members,
            })),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    group.body["id"].as_str().expect("id").to_owned()
}

async fn patch_group(app: &TestApp, group_id: &str, operation: Value) {
    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{group_id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [operation],
            })),
        )
        .await;
    assert!(patched.status.is_success(), "{}", patched.text);
}

/// Replaces the root org's mappings with one rule: IdP group `idp_group` → editor on the
/// fixture's product (full access to its first environment).
async fn map_group_to_editor(app: &TestApp, f: &Fixture, idp_group: &str) {
    let document: MappingDocument = serde_json::from_value(json!({
        "version": 1,
        "rules": [{ "name": "editors", "idp_group": idp_group,
                    "grants": [{ "product": f.product.to_string(), "role": "editor" }] }]
    }))
    .expect("document");
    let catalog = app
        .store
        .mapping_catalog(app.org_id, app.org_id)
        .await
        .expect("catalog");
    let mappings = mapping_document::validate(&document, &catalog).expect("valid");
    app.store
        .replace_mappings(
            &Ctx::new(Actor::Cli),
            app.org_id,
            app.org_id,
            &mappings,
            None,
        )
        .await
        .expect("mappings");
}

async fn a_scim_change_to_a_mapped_group_reaches_the_other_instance(backend: Backend) {
    let app = TestApp::new(backend).await;
    let b = app.second_instance().await;
    let f = fixture(&app).await;
    let grace = scim_user(&app, "grace@acme.test").await;
    let group_id = scim_group(&app, "Engineering", &[grace.to_string()]).await;
    assert_eq!(
        access_on(&app, &b, &f, grace).await,
        "none",
        "B caches none"
    );
    map_group_to_editor(&app, &f, "engineering").await;
    until_access(&app, &b, &f, grace, "full").await;
    patch_group(
        &app,
        &group_id,
        json!({ "op": "remove", "path": format!("members[value eq \"{grace}\"]") }),
    )
    .await;
    until_access(&app, &b, &f, grace, "none").await;
}

/// The resolver keeps the tenant's SCIM groups with its shared facts, and a cache miss reads
/// only a user's direct memberships: a group created after another instance read those facts
/// must still count there, directly or through nesting.
async fn a_group_created_after_the_other_instance_cached_the_tenant_counts(backend: Backend) {
    let app = TestApp::new(backend).await;
    let b = app.second_instance().await;
    let f = fixture(&app).await;
    let grace = scim_user(&app, "grace@acme.test").await;
    map_group_to_editor(&app, &f, "Platform").await;
    // B reads the tenant's facts (no group yet) and keeps them.
    until_access(&app, &b, &f, grace, "none").await;
    // Nested: grace is in "Backend", which joins "Platform" afterwards.
    let platform = scim_group(&app, "Platform", &[]).await;
    let backend_group = scim_group(&app, "Backend", &[grace.to_string()]).await;
    until_access(&app, &b, &f, grace, "none").await;
    patch_group(
        &app,
        &platform,
        json!({ "op": "add", "path": "members", "value": [{ "value": backend_group }] }),
    )
    .await;
    until_access(&app, &b, &f, grace, "full").await;
    // Directly: the rule moves to a group that does not exist yet, and B's answer shows it
    // read the tenant again; then the group is created with grace in it in one request, as
    // Entra may — a write that names grace, and must still refresh what B keeps of the tenant.
    map_group_to_editor(&app, &f, "Ops").await;
    until_access(&app, &b, &f, grace, "none").await;
    scim_group(&app, "Ops", &[grace.to_string()]).await;
    until_access(&app, &b, &f, grace, "full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_listener_reconnects_and_drops_the_cache() {
    let Some((app, b)) = two_instances().await else {
        return;
    };
    let f = fixture(&app).await;
    let ada = member(&app, &f, "ada@acme.test").await;
    assert_eq!(access_on(&app, &b, &f, ada).await, "none");
    let pid = b.state.resolver.listener_pid().expect("B listens");
    app.raw_execute(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .expect("terminate B's listener");
    // Possibly while B has no listener: the notification may never reach it.
    set_role(&app, &f, ada, Some("editor")).await;
    until_access(&app, &b, &f, ada, "full").await;
    let started = Instant::now();
    while b.state.resolver.listener_pid() == Some(pid) || !b.state.resolver.listening() {
        assert!(started.elapsed() < DELIVERY, "B did not listen again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Listening again, B follows the next write too.
    set_role(&app, &f, ada, Some("viewer")).await;
    until_access(&app, &b, &f, ada, "read_only").await;
}

async fn a_token_revoked_through_one_instance_is_refused_by_the_other(backend: Backend) {
    let app = TestApp::new(backend).await;
    let b = app.second_instance().await;
    let minted = app
        .ok(
            Method::POST,
            "/tokens",
            Some(json!({ "kind": "admin", "org_id": app.org_id })),
        )
        .await;
    let secret = minted["token_secret"].as_str().expect("secret").to_owned();
    let id = minted["id"].as_str().expect("id").to_owned();
    // Twice: the second answer comes from B's token cache.
    for _ in 0..2 {
        let before = app.call_on(&b, Method::GET, "/orgs", Some(&secret)).await;
        assert_eq!(before.status, StatusCode::OK);
    }
    app.ok(Method::DELETE, &format!("/tokens/{id}"), None).await;
    // Refused on A at once: its cache heard the commit before the DELETE returned.
    let on_a = app
        .call(Method::GET, "/api/v1/orgs", Some(&secret), None)
        .await;
    assert_eq!(on_a.status, StatusCode::UNAUTHORIZED, "{}", on_a.text);
    // On B as soon as the invalidation is delivered.
    let started = Instant::now();
    loop {
        let after = app.call_on(&b, Method::GET, "/orgs", Some(&secret)).await;
        if after.status == StatusCode::UNAUTHORIZED {
            assert!(after.text.contains("revoked"), "{}", after.text);
            eprintln!("refused in {:?}", started.elapsed());
            return;
        }
        assert_eq!(after.status, StatusCode::OK, "{}", after.text);
        assert!(
            started.elapsed() < DELIVERY,
            "the other instance still takes the revoked token"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A bounded storm: 40 role changes, each through one instance or the other, each followed by
/// reads of every user on both. Once it quiesces, every answer either instance gives from its
/// cache equals a resolve from a fresh snapshot.
async fn after_a_storm_of_writes_and_reads_no_cached_answer_is_stale(backend: Backend) {
    let app = TestApp::new(backend).await;
    let b = app.second_instance().await;
    let a = app.second_instance().await;
    let f = fixture(&app).await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(member(&app, &f, &format!("user{i}@acme.test")).await);
    }
    let roles = [None, Some("viewer"), Some("editor"), Some("publisher")];
    for round in 0..40usize {
        let user = users[round % users.len()];
        let role = roles[(round * 7 + round / 3) % roles.len()];
        let through = if round % 2 == 0 { &a } else { &b };
        let reply = app
            .call_on(
                through,
                Method::GET,
                &format!(
                    "/orgs/{}/members/{user}/permissions?product={}",
                    f.org, f.product
                ),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        // The write goes through the instance's own router.
        let request = crate::common::http::request(
            Method::PUT,
            &format!("/api/v1/products/{}/members/{user}", f.product),
            Some(&app.admin_token),
            Some(json!({ "permission_groups": [], "role": role })),
            None,
        );
        let written = tower::ServiceExt::oneshot(through.router.clone(), request)
            .await
            .expect("infallible");
        assert_eq!(written.status(), StatusCode::OK);
        for reader in [&a, &b] {
            for u in &users {
                access_on(&app, reader, &f, *u).await;
            }
        }
    }
    let fresh = |user: Uuid| {
        let store = app.store.clone();
        let product = f.product;
        let tenant = app.org_id;
        async move {
            let snapshot = store
                .user_snapshots(tenant, &[user])
                .await
                .expect("snapshot")
                .pop()
                .expect("user");
            let product = store
                .product_snapshots(tenant, &[product])
                .await
                .expect("product")
                .pop()
                .expect("product");
            EffectivePermissions::from(&resolve_product(&snapshot, &product))
        }
    };
    let started = Instant::now();
    'settle: loop {
        let mut stale = Vec::new();
        for (name, instance) in [("a", &a), ("b", &b)] {
            for user in &users {
                let cached = instance
                    .state
                    .resolver
                    .product(app.org_id, *user, f.product)
                    .await
                    .expect("answer");
                if EffectivePermissions::from(cached.as_ref()) != fresh(*user).await {
                    stale.push(format!("{name}: {user}"));
                }
            }
        }
        if stale.is_empty() {
            break 'settle;
        }
        assert!(
            started.elapsed() < DELIVERY,
            "stale cached answers after the storm: {stale:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A write whose notification never went out (its writer died between commit and send, as a
/// raw statement here does) is caught up by the listeners' read-back of the invalidation rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_whose_notification_was_lost_is_caught_up() {
    let Some((app, b)) = two_instances().await else {
        return;
    };
    let f = fixture(&app).await;
    let ada = member(&app, &f, "ada@acme.test").await;
    set_role(&app, &f, ada, Some("editor")).await;
    until_access(&app, &b, &f, ada, "full").await;
    app.raw_execute(&format!(
        "WITH deactivated AS (UPDATE users SET active = false WHERE id = '{ada}') \
         INSERT INTO invalidations (tenant_id, user_id, created_at) VALUES ('{}', '{ada}', now())",
        app.org_id
    ))
    .await
    .expect("a write without its notification");
    until_access(&app, &b, &f, ada, "none").await;
}

/// Old invalidation records go; the newest stays, so epochs keep growing.
async fn old_invalidation_records_are_pruned(backend: Backend) {
    let app = TestApp::new(backend).await;
    let f = fixture(&app).await;
    let ada = member(&app, &f, "ada@acme.test").await;
    set_role(&app, &f, ada, Some("viewer")).await;
    let latest = app.store.latest_epoch().await.expect("epoch");
    let old = match backend {
        Backend::Sqlite => "'2000-01-01T00:00:00Z'",
        Backend::Postgres => "'2000-01-01T00:00:00Z'::timestamptz",
    };
    app.raw_execute(&format!("UPDATE invalidations SET created_at = {old}"))
        .await
        .expect("age the records");
    let pruned = app
        .store
        .prune_invalidations(Duration::from_secs(24 * 3600))
        .await
        .expect("prune");
    assert!(pruned >= 2, "pruned {pruned}");
    assert_eq!(app.store.latest_epoch().await.expect("epoch"), latest);
    assert_eq!(
        app.store
            .prune_invalidations(Duration::from_secs(24 * 3600))
            .await
            .expect("prune"),
        0,
        "the newest record stays"
    );
}

crate::on_both_backends!(
    a_grant_through_one_instance_reaches_the_others_cached_answer,
    a_scim_change_to_a_mapped_group_reaches_the_other_instance,
    a_group_created_after_the_other_instance_cached_the_tenant_counts,
    after_a_storm_of_writes_and_reads_no_cached_answer_is_stale,
    a_token_revoked_through_one_instance_is_refused_by_the_other,
    old_invalidation_records_are_pruned,
);
