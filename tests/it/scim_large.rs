//! SCIM at scale, over the real router on both backends: request bodies as large as the body
//! limit allows, full of member values, are answered correctly (the time they take is measured
//! in `benches/scim.rs`, not asserted here); group members are streamed in chunks and pages of
//! groups end at the member budget. Chunk and budget are set small here, so a few dozen
//! members stand for millions.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use rolegate::config::ServeArgs;
use rolegate::domain::audit::Actor;
use rolegate::domain::provisioning::ScimScope;
use rolegate::scim_proto::resource::{Projection, render_group};
use rolegate::scim_proto::schema::ResourceType;
use rolegate::scim_proto::schema::Schemas;
use rolegate::store::Ctx;
use serde_json::{Value, json};
use tower::ServiceExt;
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
                let input = rolegate::scim_proto::resource::user_input(
                    &Schemas::default(),
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

/// Members read per query, and members per page, in the streaming tests.
const CHUNK: u32 = 7;
const BUDGET: u64 = 10;

async fn small_chunks(backend: Backend) -> TestApp {
    let mut config: ServeArgs = unlimited();
    config.scim_member_chunk = CHUNK;
    config.scim_member_budget = BUDGET;
    TestApp::with_config(backend, config).await
}

/// Creates a group of these users; returns its id.
async fn group_of(app: &TestApp, name: &str, users: &[Uuid]) -> String {
    let members: Vec<Value> = users.iter().map(|u| json!({ "value": u })).collect();
    let reply = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({ "schemas": [GROUP], "displayName": name, "members": members })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:.300}", reply.text);
    reply.body["id"].as_str().expect("id").to_owned()
}

fn sorted(ids: &[Uuid]) -> Vec<String> {
    let mut ids: Vec<Uuid> = ids.to_vec();
    ids.sort();
    ids.iter().map(ToString::to_string).collect()
}

fn search_body(extra: Value) -> Value {
    let mut body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"] });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

async fn a_group_larger_than_a_chunk_comes_back_whole_in_member_order(backend: Backend) {
    let app = small_chunks(backend).await;
    let users = seed_users(&app, 40).await;
    let expected = sorted(&users);
    let id = group_of(&app, "Big", &users).await;

    // The create's own answer streams its members too.
    let created = app.scim(Method::GET, &format!("/Groups/{id}"), None).await;
    assert_eq!(created.headers["content-type"], "application/scim+json");
    assert_eq!(member_values(&created.body), expected, "GET /Groups/{{id}}");
    for m in created.body["members"].as_array().expect("members") {
        assert_eq!(m["type"], "User");
        assert!(m["$ref"].as_str().is_some_and(|r| {
            r.ends_with(&format!("/Users/{}", m["value"].as_str().unwrap_or("")))
        }));
    }
    let listed = app.scim(Method::GET, "/Groups", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:.300}", listed.text);
    assert_eq!(
        member_values(&listed.body["Resources"][0]),
        expected,
        "GET /Groups"
    );
    let searched = app
        .scim(
            Method::POST,
            "/Groups/.search",
            Some(search_body(json!({}))),
        )
        .await;
    assert_eq!(
        member_values(&searched.body["Resources"][0]),
        expected,
        "POST /Groups/.search"
    );
    let everything = app
        .scim(
            Method::POST,
            "/.search",
            Some(search_body(json!({ "filter": "displayName eq \"Big\"" }))),
        )
        .await;
    assert_eq!(
        everything.status,
        StatusCode::OK,
        "{:.300}",
        everything.text
    );
    assert_eq!(
        everything.body["totalResults"], 1,
        "{:.300}",
        everything.text
    );
    assert_eq!(
        member_values(&everything.body["Resources"][0]),
        expected,
        "POST /.search"
    );

    // Selected sub-attributes are written for every member, in every chunk.
    let values = app
        .scim(
            Method::GET,
            &format!("/Groups/{id}?attributes=members.value"),
            None,
        )
        .await;
    let members = values.body["members"].as_array().expect("members");
    assert_eq!(members.len(), users.len());
    assert!(
        members
            .iter()
            .all(|m| m.as_object().is_some_and(|o| o.len() == 1))
    );
    // A PATCH that asks for attributes answers with the whole list as well.
    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{id}?attributes=members"),
            Some(json!({ "schemas": [PATCH_OP], "Operations": [
                { "op": "remove", "path": "members[type eq \"User\"]" }
            ] })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:.300}", patched.text);
    assert_eq!(
        patched.body["members"],
        json!([]),
        "a filtered remove reads every chunk"
    );
}

/// Pages through `path` (a GET list, or a search body) with `startIndex` + `itemsPerPage`;
/// returns the ids seen and the pages' `itemsPerPage`.
async fn page_through(app: &TestApp, search: Option<&str>, count: u64) -> (Vec<String>, Vec<u64>) {
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut start = 1;
    let mut total = None;
    loop {
        let reply = match search {
            None => {
                app.scim(
                    Method::GET,
                    &format!("/Groups?startIndex={start}&count={count}"),
                    None,
                )
                .await
            }
            Some(path) => {
                app.scim(
                    Method::POST,
                    path,
                    Some(search_body(json!({ "startIndex": start, "count": count }))),
                )
                .await
            }
        };
        assert_eq!(reply.status, StatusCode::OK, "{:.300}", reply.text);
        let t = reply.body["totalResults"].as_u64().expect("totalResults");
        assert_eq!(*total.get_or_insert(t), t, "totalResults stays what it is");
        let items = reply.body["itemsPerPage"].as_u64().expect("itemsPerPage");
        let resources = reply.body["Resources"].as_array().expect("Resources");
        assert_eq!(resources.len() as u64, items);
        assert_eq!(reply.body["startIndex"], start);
        seen.extend(
            resources
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_owned()),
        );
        if start + items > t {
            return (seen, sizes);
        }
        assert!(items > 0, "a page short of the end is never empty");
        sizes.push(items);
        start += items;
    }
}

async fn paging_with_a_small_member_budget_visits_every_group_once(backend: Backend) {
    let app = small_chunks(backend).await;
    let users = seed_users(&app, 12).await;
    let sizes = [3, 4, 5, 12, 0, 2, 9, 1, 1, 11];
    let mut groups = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        groups.push(group_of(&app, &format!("G{i}"), &users[..*n]).await);
    }
    // Pages of at most 10 members: [3, 4] [5] [12] [0, 2] [9, 1] [1] [11].
    let (seen, pages) = page_through(&app, None, 100).await;
    assert_eq!(seen, groups, "every group once, in order");
    assert_eq!(pages, [2, 1, 1, 2, 2, 1], "then [11] ends it");
    let (seen, _) = page_through(&app, Some("/Groups/.search"), 3).await;
    assert_eq!(seen, groups);
    // Every member of every group on the pages, each group whole.
    let reply = app
        .scim(Method::GET, "/Groups?startIndex=3&count=100", None)
        .await;
    assert_eq!(reply.body["itemsPerPage"], 1);
    assert_eq!(
        member_values(&reply.body["Resources"][0]),
        sorted(&users[..5])
    );

    // Root search: Users, then Groups, one list.
    let (seen, _) = page_through(&app, Some("/.search"), 100).await;
    // (The users were created four at a time: their creation order is their ids'.)
    let mut expected = sorted(&users);
    expected.extend(groups.iter().cloned());
    assert_eq!(seen, expected, "every user and group once");

    // Without members a page holds what count asks for.
    let slim = app
        .scim(Method::GET, "/Groups?excludedAttributes=members", None)
        .await;
    assert_eq!(slim.body["itemsPerPage"], sizes.len());
    assert!(
        slim.body["Resources"]
            .as_array()
            .expect("Resources")
            .iter()
            .all(|g| g.get("members").is_none())
    );
    let names = app
        .scim(Method::GET, "/Groups?attributes=displayName", None)
        .await;
    assert_eq!(names.body["itemsPerPage"], sizes.len());
}

async fn a_big_group_read_alone_keeps_its_etag_and_meta(backend: Backend) {
    let app = small_chunks(backend).await;
    let users = seed_users(&app, 30).await;
    let id = group_of(&app, "Big", &users[..20]).await;
    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{id}"),
            Some(json!({ "schemas": [PATCH_OP], "Operations": [
                { "op": "add", "path": "members", "value": [{ "value": users[25] }] }
            ] })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT, "{}", patched.text);
    let etag = patched.headers["etag"].to_str().expect("etag").to_owned();
    assert_eq!(etag, "W/\"2\"");

    let reply = app.scim(Method::GET, &format!("/Groups/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["etag"].to_str().expect("etag"), etag);
    assert_eq!(reply.body["meta"]["version"], etag);
    assert_eq!(reply.body["meta"]["resourceType"], "Group");
    assert!(
        reply.body["meta"]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("/scim/v2/Groups/{id}")))
    );
    assert_eq!(member_values(&reply.body).len(), 21);
    let fresh = app
        .scim_with(
            Method::GET,
            &format!("/Groups/{id}"),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::NOT_MODIFIED);
    assert!(fresh.text.is_empty());
    // Without members the group reads the same, members apart.
    let slim = app
        .scim(
            Method::GET,
            &format!("/Groups/{id}?excludedAttributes=members"),
            None,
        )
        .await;
    assert_eq!(slim.headers["etag"].to_str().expect("etag"), etag);
    let mut without = reply.body.clone();
    without.as_object_mut().expect("object").remove("members");
    assert_eq!(slim.body, without);
}

/// Small groups (within one chunk, and across chunks), under several projections: the bytes
/// sent are today's renderer's, serialised.
async fn streamed_groups_equal_what_the_renderer_makes_of_them(backend: Backend) {
    let app = small_chunks(backend).await;
    let users = seed_users(&app, 16).await;
    let scope = scope(&app).await;
    let mut ids = Vec::new();
    for (i, n) in [0usize, 1, 6, 7, 8, 16].iter().enumerate() {
        ids.push(group_of(&app, &format!("Group \"{i}\" ✓"), &users[..*n]).await);
    }
    let nested = group_of(&app, "Nested", &[]).await;
    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{nested}"),
            Some(json!({ "schemas": [PATCH_OP], "Operations": [
                { "op": "add", "path": "members", "value": [{ "value": ids[2], "type": "Group" }, { "value": users[0] }] }
            ] })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT, "{}", patched.text);
    ids.push(nested);
    let base = rolegate::scim_proto::resource::scim_base(&app.state.config.public_url());
    for (attributes, excluded) in [
        (None, None),
        (Some("members.value"), None),
        (None, Some("members.type")),
        (Some("displayName,members.$ref"), None),
        (Some("members"), Some("members.value")),
        (None, Some("members")),
    ] {
        let projection = Projection::parse(
            &Schemas::default(),
            ResourceType::Group,
            attributes,
            excluded,
        )
        .expect("projection");
        let mut query = Vec::new();
        if let Some(a) = attributes {
            query.push(format!("attributes={a}"));
        }
        if let Some(e) = excluded {
            query.push(format!("excludedAttributes={e}"));
        }
        let query = query.join("&");
        let mut expected_page = Vec::new();
        for id in &ids {
            let uuid = Uuid::parse_str(id).expect("uuid");
            let group = app.store.scim_get_group(scope, uuid).await.expect("group");
            let members: Vec<_> = app
                .store
                .scim_group_members(scope, &[uuid])
                .await
                .expect("members")
                .into_iter()
                .map(|(_, m)| m)
                .collect();
            let mut expected = render_group(&group, Some(&members), &base);
            projection.apply(&mut expected);
            let reply = app
                .scim(Method::GET, &format!("/Groups/{id}?{query}"), None)
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:.300}", reply.text);
            assert_eq!(reply.body, expected, "{id}?{query}");
            assert_eq!(
                reply.text,
                expected.to_string(),
                "{id}?{query}: the same bytes"
            );
            expected_page.push(expected);
        }
        let reply = app
            .scim(Method::GET, &format!("/Groups?count=100&{query}"), None)
            .await;
        let resources = reply.body["Resources"].as_array().expect("Resources");
        // The budget may end the page early; what is there is the renderer's.
        assert!(!resources.is_empty());
        assert_eq!(resources[..], expected_page[..resources.len()], "?{query}");
    }
}

/// Once the head of a reply is sent, a failed read can no longer be a SCIM error: the body
/// ends in an error (the client sees it cut short), never a complete-looking list.
async fn a_read_that_fails_mid_stream_cuts_the_body_short(backend: Backend) {
    let app = small_chunks(backend).await;
    let users = seed_users(&app, 20).await;
    let id = group_of(&app, "Big", &users).await;
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/scim/v2/Groups/{id}"))
        .header("authorization", format!("Bearer {}", app.scim_token))
        .body(Body::empty())
        .expect("request");
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .expect("a first piece")
        .expect("read")
        .into_data()
        .expect("data");
    let text = String::from_utf8_lossy(&first).into_owned();
    assert!(text.contains("\"members\":["), "{text}");
    // The members table goes away between two chunks.
    app.raw_execute("DROP TABLE group_members")
        .await
        .expect("drop");
    let mut rest = Vec::new();
    let outcome = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Ok(frame)) => rest.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Some(Err(e)) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the body ended as if complete: {text}{}",
        String::from_utf8_lossy(&rest)
    );
    let all = [first.to_vec(), rest].concat();
    assert!(
        serde_json::from_slice::<Value>(&all).is_err(),
        "what came is not a whole document"
    );
    // The next request answers with a SCIM error, as any failed read does.
    let reply = app.scim(Method::GET, &format!("/Groups/{id}"), None).await;
    assert!(reply.status.is_server_error(), "{}", reply.text);
    assert_eq!(
        reply.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
}

crate::on_both_backends!(
    a_full_body_of_members_that_name_nobody_is_400_naming_the_first,
    a_full_body_of_real_members_with_duplicates_stores_each_once,
    a_group_larger_than_a_chunk_comes_back_whole_in_member_order,
    paging_with_a_small_member_budget_visits_every_group_once,
    a_big_group_read_alone_keeps_its_etag_and_meta,
    streamed_groups_equal_what_the_renderer_makes_of_them,
    a_read_that_fails_mid_stream_cuts_the_body_short,
);
