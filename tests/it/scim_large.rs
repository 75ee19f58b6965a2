//! SCIM at scale, over the real router on both backends: request bodies as large as the body
//! limit allows, full of member values, are answered correctly (the time they take is measured
//! in `benches/scim.rs`, not asserted here).

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use rolegate::domain::audit::Actor;
use rolegate::domain::provisioning::ScimScope;
use rolegate::store::Ctx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::http::{Reply, unlimited};
use crate::common::{Backend, TestApp};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The body limit of `ServeArgs::for_tests()`.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Creates `n` SCIM users of the app's org through the store (four at a time), in order.
async fn scope(app: &TestApp) -> ScimScope {
    let org = app.store.find_org(app.org_id).await.expect("org");
    ScimScope {
        tenant_id: org.tenant_id,
        org_id: org.id,
    }
}

async fn seed_users(app: &TestApp, n: usize) -> Vec<Uuid> {
    let scope = scope(app).await;
    let mut tasks = tokio::task::JoinSet::new();
    const WRITERS: usize = 4;
    for w in 0..WRITERS {
        let store = app.store.clone();
        tasks.spawn(async move {
            let ctx = Ctx::new(Actor::Cli);
            let mut mine = Vec::new();
            for i in (w..n).step_by(WRITERS) {
                let input = rolegate::scim::resource::user_input(
                    &json!({ "userName": format!("bulk{i:06}@acme.test") }),
                )
                .expect("valid user");
                let user = store
                    .scim_create_user(&ctx, scope, &input)
                    .await
                    .expect("create user");
                mine.push((i, user.id));
            }
            mine
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("seeding task"));
    }
    all.sort();
    all.into_iter().map(|(_, id)| id).collect()
}

/// `{"value": …}` for each value, as many as fit in a body of at most `BODY_LIMIT` bytes once
/// wrapped by `wrap` (whose own size is measured with an empty list).
fn fill(wrap: impl Fn(Vec<Value>) -> Value, values: impl Iterator<Item = String>) -> Value {
    let mut size = wrap(Vec::new()).to_string().len();
    let mut members = Vec::new();
    for v in values {
        let member = json!({ "value": v });
        let extra = member.to_string().len() + usize::from(!members.is_empty());
        if size + extra > BODY_LIMIT {
            break;
        }
        size += extra;
        members.push(member);
    }
    let body = wrap(members);
    assert!(body.to_string().len() <= BODY_LIMIT);
    body
}

fn new_group(name: &str) -> impl Fn(Vec<Value>) -> Value {
    let name = name.to_owned();
    move |members| json!({ "schemas": [GROUP], "displayName": name, "members": members })
}

fn add_members(members: Vec<Value>) -> Value {
    json!({
        "schemas": [PATCH_OP],
        "Operations": [{ "op": "add", "path": "members", "value": members }],
    })
}

fn count_members(body: &Value) -> usize {
    body["Operations"][0]["value"]
        .as_array()
        .or_else(|| body["members"].as_array())
        .map_or(0, Vec::len)
}

fn first_member(body: &Value) -> String {
    let members = body["Operations"][0]["value"]
        .as_array()
        .or_else(|| body["members"].as_array())
        .expect("members");
    members[0]["value"].as_str().expect("value").to_owned()
}

/// The documented answer to members that name nobody: `400 invalidValue` naming the first of
/// them, with a detail of bounded size however many there were.
fn assert_names_nobody(reply: &Reply, first: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:.300}", reply.text);
    assert_eq!(reply.body["scimType"], "invalidValue");
    let detail = reply.body["detail"].as_str().expect("detail");
    assert!(detail.contains(first), "{detail:.300}");
    assert!(detail.len() < 2_000, "a detail of {} bytes", detail.len());
}

async fn member_set(app: &TestApp, group: &str) -> Vec<String> {
    let reply = app
        .scim(Method::GET, &format!("/Groups/{group}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:.300}", reply.text);
    member_values(&reply.body)
}

/// The member ids of a group representation, in the order given.
fn member_values(group: &Value) -> Vec<String> {
    group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["value"].as_str().expect("value").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn a_full_body_of_members_that_name_nobody_is_400_naming_the_first(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    // Short distinct values (some 90,000 fit), and ids we could have issued (some 40,000):
    // the first are refused before the store is asked, the second by the store.
    let short = (0..).map(|i: u64| format!("m{i:x}"));
    let body = fill(new_group("Nobody"), short.clone());
    assert!(count_members(&body) > 80_000, "{}", count_members(&body));
    let reply = app.scim(Method::POST, "/Groups", Some(body.clone())).await;
    assert_names_nobody(&reply, &first_member(&body));

    let ids = std::iter::repeat_with(|| Uuid::new_v4().to_string());
    let body = fill(new_group("Nobody"), ids);
    assert!(count_members(&body) > 35_000, "{}", count_members(&body));
    let reply = app.scim(Method::POST, "/Groups", Some(body.clone())).await;
    assert_names_nobody(&reply, &first_member(&body));
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.ends_with("more")),
        "{:.300}",
        reply.text
    );

    // Nothing was created; the same through PATCH on an existing group changes nothing.
    let created = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({ "schemas": [GROUP], "displayName": "Existing" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let listed = app.scim(Method::GET, "/Groups", None).await;
    assert_eq!(listed.body["totalResults"], 1, "{:.300}", listed.text);
    for body in [
        fill(add_members, short),
        fill(
            add_members,
            std::iter::repeat_with(|| Uuid::new_v4().to_string()),
        ),
    ] {
        let reply = app
            .scim(Method::PATCH, &format!("/Groups/{id}"), Some(body.clone()))
            .await;
        assert_names_nobody(&reply, &first_member(&body));
    }
    assert!(member_set(&app, &id).await.is_empty());
}

async fn a_full_body_of_real_members_with_duplicates_stores_each_once(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let users = seed_users(&app, 2_000).await;
    let distinct: BTreeSet<String> = users.iter().map(ToString::to_string).collect();
    // Each user named some twenty times, in varying order.
    let cycle = |stride: usize| {
        let users = users.clone();
        (0..).map(move |i: usize| users[(i * stride) % users.len()].to_string())
    };
    let body = fill(new_group("Everyone"), cycle(7));
    assert!(count_members(&body) > 35_000, "{}", count_members(&body));
    let reply = app.scim(Method::POST, "/Groups", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:.300}", reply.text);
    let returned: Vec<String> = member_values(&reply.body);
    assert_eq!(returned.len(), distinct.len(), "each member once");
    assert_eq!(returned.iter().cloned().collect::<BTreeSet<_>>(), distinct);
    let id = reply.body["id"].as_str().expect("id").to_owned();
    let stored = member_set(&app, &id).await;
    assert_eq!(stored.len(), distinct.len());
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), distinct);

    // The same shape through PATCH add, onto a group holding a few of them already.
    let created = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": [GROUP],
                "displayName": "Patched",
                "members": [{ "value": users[0] }, { "value": users[1] }],
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let body = fill(add_members, cycle(13));
    assert!(count_members(&body) > 35_000, "{}", count_members(&body));
    let reply = app
        .scim(Method::PATCH, &format!("/Groups/{id}"), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:.300}", reply.text);
    let stored = member_set(&app, &id).await;
    assert_eq!(stored.len(), distinct.len(), "each member once");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), distinct);
}

crate::on_both_backends!(
    a_full_body_of_members_that_name_nobody_is_400_naming_the_first,
    a_full_body_of_real_members_with_duplicates_stores_each_once,
);
