//! SCIM Users and Groups over the real router, on both backends: what a create, read, list,
//! replace, PATCH and delete answer, the errors bad input gets, ETags, attribute selection,
//! nested groups, Bulk, root search, tenancy, and what SCIM does to the team model.

use axum::http::{Method, StatusCode};
use rolegate::domain::Source;
use rolegate::domain::audit::Actor;
use rolegate::domain::token::TokenKind;
use rolegate::store::{Ctx, NewEnvironment, ProductAccess};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::http::{Reply, unlimited};
use crate::common::{Backend, TestApp};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn user_body(user_name: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "externalId": format!("ext-{user_name}"),
        "name": { "givenName": "Ada", "familyName": "Lovelace" },
        "emails": [{ "value": user_name, "type": "work", "primary": true }],
        "active": true,
        "password": "t0p-s3cret-never-stored",
        ENTERPRISE: { "department": "Engines", "employeeNumber": "1815" },
    })
}

fn patch(ops: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": ops })
}

fn id_of(reply: &Reply) -> String {
    reply.body["id"].as_str().expect("id").to_owned()
}

fn assert_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/scim+json");
    assert_eq!(reply.body["schemas"], json!([ERROR]));
    assert_eq!(reply.body["status"], status.to_string());
    match scim_type {
        Some(t) => assert_eq!(reply.body["scimType"], t, "{}", reply.text),
        None => assert!(reply.body.get("scimType").is_none(), "{}", reply.text),
    }
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

async fn create_user(app: &TestApp, user_name: &str) -> String {
    let reply = app
        .scim(Method::POST, "/Users", Some(user_body(user_name)))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    id_of(&reply)
}

async fn create_group(app: &TestApp, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let reply = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({ "schemas": [GROUP], "displayName": name, "members": members })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    id_of(&reply)
}

async fn audit_count(app: &TestApp) -> usize {
    app.get("/api/v1/audit?limit=1000", &app.admin_token)
        .await
        .body["events"]
        .as_array()
        .expect("events")
        .len()
}

async fn member_ids(app: &TestApp, group: &str) -> Vec<String> {
    let reply = app
        .scim(Method::GET, &format!("/Groups/{group}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mut ids: Vec<String> = reply.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("value").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn a_create_answers_201_with_location_etag_and_the_whole_resource(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let reply = app
        .scim_with(
            Method::POST,
            "/Users",
            Some(user_body("ada@acme.test")),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/scim+json");
    let body = &reply.body;
    let id = id_of(&reply);
    assert_eq!(
        reply.headers["location"].to_str().expect("ascii"),
        body["meta"]["location"].as_str().expect("location")
    );
    assert!(
        body["meta"]["location"]
            .as_str()
            .expect("location")
            .ends_with(&format!("/scim/v2/Users/{id}"))
    );
    assert_eq!(
        reply.headers["etag"].to_str().expect("ascii"),
        body["meta"]["version"].as_str().expect("version")
    );
    assert_eq!(body["meta"]["resourceType"], "User");
    assert!(body["meta"]["created"].is_string() && body["meta"]["lastModified"].is_string());
    assert_eq!(
        body["schemas"],
        json!([USER, ENTERPRISE]),
        "core schema first"
    );
    assert_eq!(body["userName"], "ada@acme.test");
    assert_eq!(body["externalId"], "ext-ada@acme.test");
    assert_eq!(body["name"]["familyName"], "Lovelace");
    assert_eq!(body[ENTERPRISE]["department"], "Engines");
    assert_eq!(body["active"], true);
    assert!(body.get("password").is_none(), "password is never returned");
    // Nor stored, anywhere.
    let stored = match app.backend() {
        Backend::Sqlite => {
            "UPDATE users SET version = version WHERE attributes LIKE '%t0p-s3cret%' OR attributes_cmp LIKE '%t0p-s3cret%'"
        }
        Backend::Postgres => {
            "UPDATE users SET version = version WHERE attributes::text LIKE '%t0p-s3cret%' OR attributes_cmp::text LIKE '%t0p-s3cret%'"
        }
    };
    assert_eq!(app.raw_execute(stored).await.expect("sql"), 0);

    let got = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.body, reply.body,
        "a read returns what the create returned"
    );
}

async fn a_retried_create_is_409_uniqueness_and_changes_nothing(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    create_user(&app, "ada@acme.test").await;
    let before = audit_count(&app).await;
    let again = app
        .scim(Method::POST, "/Users", Some(user_body("ada@acme.test")))
        .await;
    assert_scim_error(&again, 409, Some("uniqueness"));
    assert!(
        again.body["detail"]
            .as_str()
            .expect("detail")
            .contains("userName")
    );
    // userName is caseExact=false: another case is the same name.
    let upper = app
        .scim(Method::POST, "/Users", Some(user_body("ADA@ACME.TEST")))
        .await;
    assert_scim_error(&upper, 409, Some("uniqueness"));
    // externalId is unique per org too, case-insensitively.
    let mut same_external = user_body("bob@acme.test");
    same_external["externalId"] = json!("EXT-ADA@ACME.TEST");
    let dup = app.scim(Method::POST, "/Users", Some(same_external)).await;
    assert_scim_error(&dup, 409, Some("uniqueness"));
    assert!(
        dup.body["detail"]
            .as_str()
            .expect("detail")
            .contains("externalId")
    );
    assert_eq!(
        audit_count(&app).await,
        before,
        "a refused create records nothing"
    );
    let list = app
        .scim(Method::GET, "/Users?filter=userName%20sw%20%22%22", None)
        .await;
    assert_eq!(list.body["totalResults"], 1);
}

async fn bad_input_gets_a_scim_error_with_the_right_status_and_type(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let raw = |body: &'static str, content_type: &'static str| {
        let app = &app;
        async move {
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/scim/v2/Users")
                .header("authorization", format!("Bearer {}", app.scim_token))
                .header("content-type", content_type)
                .body(axum::body::Body::from(body))
                .expect("request");
            app.send(req).await
        }
    };
    assert_scim_error(
        &raw("{not json", "application/scim+json").await,
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(&raw("{}", "text/plain").await, 415, None);
    assert_scim_error(
        &raw(
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}"#,
            "application/json",
        )
        .await,
        400,
        Some("invalidValue"),
    );
    let scim1 = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({ "schemas": ["urn:scim:schemas:core:1.0"], "userName": "old@acme.test" })),
        )
        .await;
    assert_scim_error(&scim1, 400, Some("invalidVers"));
    let bad_bool = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({ "userName": "x@acme.test", "active": "perhaps" })),
        )
        .await;
    assert_scim_error(&bad_bool, 400, Some("invalidValue"));
    for filter in [
        "userName%20eq",
        "nope%20eq%20%22x%22",
        "userName%20xx%20%22x%22",
        "password%20eq%20%22x%22",
    ] {
        let r = app
            .scim(Method::GET, &format!("/Users?filter={filter}"), None)
            .await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }
    let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
    let r = app
        .scim(
            Method::GET,
            &format!("/Users?filter={}", urlencode(&deep)),
            None,
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let id = create_user(&app, "ada@acme.test").await;
    let cases = [
        (
            json!({ "Operations": [{ "op": "jump", "path": "title", "value": "x" }] }),
            "invalidSyntax",
        ),
        (patch(json!([{ "op": "remove" }])), "noTarget"),
        (
            patch(json!([{ "op": "replace", "path": "meta.created", "value": "x" }])),
            "mutability",
        ),
        (
            patch(json!([{ "op": "replace", "path": "id", "value": "x" }])),
            "mutability",
        ),
        (
            patch(json!([{ "op": "add", "path": "emails[type eq", "value": "x" }])),
            "invalidPath",
        ),
        (
            patch(json!([{ "op": "add", "path": "nope", "value": "x" }])),
            "invalidPath",
        ),
        (
            patch(
                json!([{ "op": "replace", "path": "emails[type pr and value co \"nobody\"]", "value": { "display": "x" } }]),
            ),
            "noTarget",
        ),
        (
            patch(json!([{ "op": "replace", "path": "userName", "value": "" }])),
            "invalidValue",
        ),
    ];
    for (body, scim_type) in cases {
        let r = app
            .scim(Method::PATCH, &format!("/Users/{id}"), Some(body.clone()))
            .await;
        assert_scim_error(&r, 400, Some(scim_type));
    }
    // None of that changed the user.
    let user = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(user.body["meta"]["version"], "W/\"1\"");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn etags_make_writes_conditional(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let id = create_user(&app, "ada@acme.test").await;
    let path = format!("/Users/{id}");
    let current = app.scim(Method::GET, &path, None).await;
    let etag = current.headers["etag"].to_str().expect("etag").to_owned();
    assert_eq!(etag, "W/\"1\"");
    let fresh = app
        .scim_with(Method::GET, &path, None, &[("If-None-Match", &etag)])
        .await;
    assert_eq!(fresh.status, StatusCode::NOT_MODIFIED);
    let stale = app
        .scim_with(
            Method::PATCH,
            &path,
            Some(patch(
                json!([{ "op": "replace", "path": "title", "value": "Countess" }]),
            )),
            &[("If-Match", "W/\"7\"")],
        )
        .await;
    assert_scim_error(&stale, 412, None);
    let ok = app
        .scim_with(
            Method::PATCH,
            &path,
            Some(patch(
                json!([{ "op": "replace", "path": "title", "value": "Countess" }]),
            )),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.headers["etag"], "W/\"2\"");
    // The old tag is stale now, for PUT and DELETE too.
    let put = app
        .scim_with(
            Method::PUT,
            &path,
            Some(user_body("ada@acme.test")),
            &[("If-Match", &etag)],
        )
        .await;
    assert_scim_error(&put, 412, None);
    let delete = app
        .scim_with(Method::DELETE, &path, None, &[("If-Match", &etag)])
        .await;
    assert_scim_error(&delete, 412, None);
    // A PATCH that changes nothing keeps the version (a retried request is idempotent).
    let again = app
        .scim(
            Method::PATCH,
            &path,
            Some(patch(
                json!([{ "op": "replace", "path": "title", "value": "Countess" }]),
            )),
        )
        .await;
    assert_eq!(again.headers["etag"], "W/\"2\"");
}

async fn put_replaces_ignoring_read_only_and_clearing_what_is_omitted(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let id = create_user(&app, "ada@acme.test").await;
    let path = format!("/Users/{id}");
    let mut body = app.scim(Method::GET, &path, None).await.body;
    body["id"] = json!("someone-else");
    body["meta"] = json!({ "created": "1999-01-01T00:00:00Z" });
    body["groups"] = json!([{ "value": "x" }]);
    body["displayName"] = json!("Countess of Lovelace");
    body.as_object_mut().expect("object").remove(ENTERPRISE);
    let put = app.scim(Method::PUT, &path, Some(body)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["id"], id, "id is readOnly: ignored");
    assert_ne!(put.body["meta"]["created"], "1999-01-01T00:00:00Z");
    assert!(put.body.get("groups").is_none());
    assert_eq!(put.body["displayName"], "Countess of Lovelace");
    assert!(put.body.get(ENTERPRISE).is_none(), "omitted: cleared");
    assert_eq!(put.body["schemas"], json!([USER]));
}

async fn lists_page_sort_and_select_attributes(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    for name in ["carol", "alice", "Bob", "dave", "erin"] {
        create_user(&app, &format!("{name}@acme.test")).await;
    }
    let page = app
        .scim(
            Method::GET,
            "/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=2&attributes=userName",
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(
        page.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(page.body["totalResults"], 5);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 2);
    let names: Vec<&str> = page.body["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["userName"].as_str().expect("userName"))
        .collect();
    // Case-insensitive order: erin, dave | carol, Bob | alice.
    assert_eq!(names, ["dave@acme.test", "carol@acme.test"]);
    let first = &page.body["Resources"][0];
    assert!(first["id"].is_string(), "id is always returned");
    assert!(first.get("name").is_none() && first.get("meta").is_none());
    let none = app.scim(Method::GET, "/Users?count=0", None).await;
    assert_eq!(none.body["totalResults"], 5);
    assert_eq!(none.body["Resources"], json!([]));
    let excluded = app
        .scim(
            Method::GET,
            "/Users?excludedAttributes=emails,name.familyName",
            None,
        )
        .await;
    let r = &excluded.body["Resources"][0];
    assert!(r.get("emails").is_none());
    assert_eq!(r["name"], json!({ "givenName": "Ada" }));
    // Default order is creation order, stable across pages.
    let mut seen = Vec::new();
    for start in 1..=5 {
        let one = app
            .scim(
                Method::GET,
                &format!("/Users?startIndex={start}&count=1"),
                None,
            )
            .await;
        seen.push(one.body["Resources"][0]["userName"].clone());
    }
    assert_eq!(
        seen,
        ["carol", "alice", "Bob", "dave", "erin"]
            .iter()
            .map(|n| json!(format!("{n}@acme.test")))
            .collect::<Vec<_>>()
    );
    let search = app
        .scim(
            Method::POST,
            "/Users/.search",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName sw \"B\" or userName eq \"ERIN@acme.test\"",
                "sortBy": "userName",
                "attributes": ["userName"],
            })),
        )
        .await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.text);
    assert_eq!(search.body["totalResults"], 2);
    assert_eq!(search.body["Resources"][0]["userName"], "Bob@acme.test");
}

async fn deactivation_keeps_the_user_readable_and_takes_its_access_until_reactivated(
    backend: Backend,
) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let id = create_user(&app, "dev@acme.test").await;
    let user_id = Uuid::parse_str(&id).expect("uuid");
    let product = app
        .store
        .create_product(
            &Ctx::new(Actor::Cli),
            app.org_id,
            app.org_id,
            "Checkout",
            &[NewEnvironment {
                name: "Production".into(),
                restricted: true,
            }],
        )
        .await
        .expect("product");
    let developer = product
        .permission_groups
        .iter()
        .find(|g| g.name == "Developer")
        .expect("preset")
        .id;
    app.store
        .set_product_access(
            &Ctx::new(Actor::Cli),
            app.org_id,
            product.product.id,
            user_id,
            &ProductAccess {
                permission_groups: vec![developer],
                role: None,
                source: Source::Manual,
            },
        )
        .await
        .expect("access");
    let env = product.environments[0].id.to_string();
    let permissions = || async {
        app.get(
            &format!(
                "/api/v1/orgs/{}/members/{id}/permissions?product={}",
                app.org_id, product.product.id
            ),
            &app.admin_token,
        )
        .await
        .body
    };
    assert_eq!(permissions().await["environments"][&env], "read_only");

    // Okta's deactivation: a path-less replace.
    let off = app
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{ "op": "replace", "value": { "active": false } }]),
            )),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_eq!(off.body["active"], false);
    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "a deactivated user stays readable"
    );
    assert_eq!(read.body["active"], false);
    let listed = app
        .scim(Method::GET, "/Users?filter=active%20eq%20false", None)
        .await;
    assert_eq!(listed.body["totalResults"], 1);
    assert_eq!(permissions().await["environments"][&env], "none");

    let on = app
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{ "op": "replace", "path": "active", "value": "True" }]),
            )),
        )
        .await;
    assert_eq!(on.body["active"], true);
    assert_eq!(
        permissions().await["environments"][&env],
        "read_only",
        "reactivation restores the grants"
    );
    let actions: Vec<Value> = app
        .get("/api/v1/audit?actor_kind=scim_token", &app.admin_token)
        .await
        .body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [
            "scim.user.reactivate",
            "scim.user.deactivate",
            "scim.user.create"
        ]
    );
}

async fn a_deleted_user_is_404_for_every_operation(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let id = create_user(&app, "gone@acme.test").await;
    let group = create_group(&app, "Everyone", &[&id]).await;
    let path = format!("/Users/{id}");
    let delete = app.scim(Method::DELETE, &path, None).await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    assert!(delete.text.is_empty());
    assert_scim_error(&app.scim(Method::GET, &path, None).await, 404, None);
    assert_scim_error(
        &app.scim(Method::PUT, &path, Some(user_body("gone@acme.test")))
            .await,
        404,
        None,
    );
    assert_scim_error(
        &app.scim(
            Method::PATCH,
            &path,
            Some(patch(
                json!([{ "op": "replace", "path": "title", "value": "x" }]),
            )),
        )
        .await,
        404,
        None,
    );
    assert_scim_error(&app.scim(Method::DELETE, &path, None).await, 404, None);
    assert!(member_ids(&app, &group).await.is_empty(), "left its groups");
    // Its userName is free again.
    create_user(&app, "gone@acme.test").await;
}

async fn one_org_never_sees_or_touches_another_orgs_resources(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let ada = create_user(&app, "ada@acme.test").await;
    let group = create_group(&app, "Engineers", &[&ada]).await;
    let (other, _) = app
        .store
        .create_org(&Ctx::new(Actor::Cli), "Globex", "owner@globex.test")
        .await
        .expect("org");
    let theirs = app.token(other.id, TokenKind::Scim).await;
    for path in [format!("/Users/{ada}"), format!("/Groups/{group}")] {
        for method in [Method::GET, Method::DELETE] {
            let r = app.scim_as(&theirs, method, &path, None, &[]).await;
            assert_scim_error(&r, 404, None);
        }
        let r = app
            .scim_as(
                &theirs,
                Method::PATCH,
                &path,
                Some(patch(json!([{ "op": "remove", "path": "externalId" }]))),
                &[],
            )
            .await;
        assert_scim_error(&r, 404, None);
    }
    let put = app
        .scim_as(
            &theirs,
            Method::PUT,
            &format!("/Users/{ada}"),
            Some(user_body("x@globex.test")),
            &[],
        )
        .await;
    assert_scim_error(&put, 404, None);
    for list in ["/Users", "/Groups"] {
        let r = app.scim_as(&theirs, Method::GET, list, None, &[]).await;
        assert_eq!(r.body["totalResults"], 0, "{list}");
    }
    let search = app
        .scim_as(
            &theirs,
            Method::POST,
            "/.search",
            Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"] })),
            &[],
        )
        .await;
    assert_eq!(search.body["totalResults"], 0);
    // Their group cannot take our user as a member: it does not exist for them.
    let their_group = app
        .scim_as(
            &theirs,
            Method::POST,
            "/Groups",
            Some(json!({ "displayName": "Engineers", "members": [{ "value": ada }] })),
            &[],
        )
        .await;
    assert_scim_error(&their_group, 400, Some("invalidValue"));
    assert!(their_group.text.contains(&ada), "names the member");
    // The same displayName is fine in another org.
    let same_name = app
        .scim_as(
            &theirs,
            Method::POST,
            "/Groups",
            Some(json!({ "displayName": "Engineers" })),
            &[],
        )
        .await;
    assert_eq!(same_name.status, StatusCode::CREATED);
    // Nothing of ours changed.
    assert_eq!(member_ids(&app, &group).await, vec![ada]);
}

async fn groups_keep_members_and_patch_answers_204_unless_attributes_are_asked(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let a = create_user(&app, "a@acme.test").await;
    let b = create_user(&app, "b@acme.test").await;
    let c = create_user(&app, "c@acme.test").await;
    let group = create_group(&app, "Engineers", &[&a]).await;
    let path = format!("/Groups/{group}");
    let got = app.scim(Method::GET, &path, None).await;
    assert_eq!(got.body["members"][0]["value"], a);
    assert_eq!(got.body["members"][0]["type"], "User");
    assert!(
        got.body["members"][0]["$ref"]
            .as_str()
            .expect("$ref")
            .ends_with(&format!("/Users/{a}"))
    );
    let lean = app
        .scim(
            Method::GET,
            &format!("{path}?excludedAttributes=members"),
            None,
        )
        .await;
    assert!(lean.body.get("members").is_none());
    let added = app
        .scim(
            Method::PATCH,
            &path,
            Some(patch(json!([
                { "op": "add", "path": "members", "value": [{ "value": b }, { "value": c }, { "value": a }] }
            ]))),
        )
        .await;
    assert_eq!(added.status, StatusCode::NO_CONTENT, "{}", added.text);
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort();
    assert_eq!(member_ids(&app, &group).await, want);
    let removed = app
        .scim(
            Method::PATCH,
            &format!("{path}?attributes=displayName"),
            Some(patch(json!([
                { "op": "remove", "path": format!("members[value eq \"{b}\"]") },
                { "op": "replace", "path": "displayName", "value": "Engineering" }
            ]))),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert_eq!(removed.body["displayName"], "Engineering");
    assert!(removed.body.get("members").is_none());
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(member_ids(&app, &group).await, want);
    // A member that does not exist: 400 naming it, and nothing of the request applied.
    let missing = Uuid::now_v7().to_string();
    let bad = app
        .scim(
            Method::PATCH,
            &path,
            Some(patch(json!([
                { "op": "replace", "path": "displayName", "value": "Renamed" },
                { "op": "add", "path": "members", "value": [{ "value": missing }] }
            ]))),
        )
        .await;
    assert_scim_error(&bad, 400, Some("invalidValue"));
    assert!(bad.text.contains(&missing));
    let not_an_id = app
        .scim(
            Method::PATCH,
            &path,
            Some(patch(json!([{ "op": "add", "path": "members", "value": [{ "value": "fake-member-id" }] }]))),
        )
        .await;
    assert_scim_error(&not_an_id, 400, Some("invalidValue"));
    assert!(not_an_id.text.contains("fake-member-id"));
    let after = app.scim(Method::GET, &path, None).await;
    assert_eq!(after.body["displayName"], "Engineering");
    // displayName is unique per org, case-insensitively.
    let dup = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({ "displayName": "ENGINEERING" })),
        )
        .await;
    assert_scim_error(&dup, 409, Some("uniqueness"));
    // Replace all, then remove all.
    let replaced = app
        .scim(
            Method::PATCH,
            &path,
            Some(patch(
                json!([{ "op": "replace", "path": "members", "value": [{ "value": b }] }]),
            )),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::NO_CONTENT);
    assert_eq!(member_ids(&app, &group).await, vec![b.clone()]);
    let emptied = app
        .scim(
            Method::PATCH,
            &path,
            Some(patch(json!([{ "op": "remove", "path": "members" }]))),
        )
        .await;
    assert_eq!(emptied.status, StatusCode::NO_CONTENT);
    assert!(member_ids(&app, &group).await.is_empty());
    // Deleted: gone for every operation.
    assert_eq!(
        app.scim(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_scim_error(&app.scim(Method::GET, &path, None).await, 404, None);
    assert_scim_error(
        &app.scim(
            Method::PATCH,
            &path,
            Some(patch(json!([{ "op": "remove", "path": "members" }]))),
        )
        .await,
        404,
        None,
    );
}

async fn nested_groups_are_stored_users_see_them_and_cycles_are_refused(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let ada = create_user(&app, "ada@acme.test").await;
    let team = create_group(&app, "Team", &[&ada]).await;
    let department = create_group(&app, "Department", &[&team]).await;
    let company = create_group(&app, "Company", &[&department]).await;
    let got = app
        .scim(Method::GET, &format!("/Groups/{department}"), None)
        .await;
    assert_eq!(got.body["members"][0]["type"], "Group");
    let user = app.scim(Method::GET, &format!("/Users/{ada}"), None).await;
    let mut groups: Vec<(String, String)> = user.body["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["display"].as_str().expect("display").to_owned(),
                g["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("Company".to_owned(), "indirect".to_owned()),
            ("Department".to_owned(), "indirect".to_owned()),
            ("Team".to_owned(), "direct".to_owned()),
        ]
    );
    for (group, member) in [(&team, &company), (&team, &team), (&department, &company)] {
        let cycle = app
            .scim(
                Method::PATCH,
                &format!("/Groups/{group}"),
                Some(patch(json!([{ "op": "add", "path": "members", "value": [{ "value": member, "type": "Group" }] }]))),
            )
            .await;
        assert_scim_error(&cycle, 400, Some("invalidValue"));
    }
    // groups on a User is readOnly.
    let write = app
        .scim(
            Method::PATCH,
            &format!("/Users/{ada}"),
            Some(patch(
                json!([{ "op": "add", "path": "groups", "value": [{ "value": company }] }]),
            )),
        )
        .await;
    assert_scim_error(&write, 400, Some("mutability"));
}

async fn bulk_runs_operations_with_bulk_id_references_and_limits(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let reply = app
        .scim(
            Method::POST,
            "/Bulk",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
                    // A forward reference: the group names a user created later in the request.
                    { "method": "POST", "path": "/Groups", "bulkId": "g", "data": {
                        "displayName": "Bulk", "members": [{ "type": "User", "value": "bulkId:u" }] } },
                    { "method": "POST", "path": "/Users", "bulkId": "u", "data": user_body("bulk@acme.test") },
                    { "method": "PATCH", "path": "/Users/bulkId:u", "data": patch(json!([{ "op": "replace", "path": "title", "value": "Bulky" }])) },
                    { "method": "POST", "path": "/Users", "bulkId": "dup", "data": user_body("bulk@acme.test") },
                    { "method": "DELETE", "path": "/Groups/bulkId:nobody" },
                ]
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    let ops = reply.body["Operations"].as_array().expect("ops");
    let status: Vec<&str> = ops
        .iter()
        .map(|o| o["status"].as_str().expect("status"))
        .collect();
    assert_eq!(status, ["201", "201", "200", "409", "400"]);
    assert_eq!(ops[3]["response"]["scimType"], "uniqueness");
    let group = ops[0]["location"].as_str().expect("location");
    let group_id = group.rsplit('/').next().expect("id");
    let user = ops[1]["location"].as_str().expect("location");
    let user_id = user.rsplit('/').next().expect("id");
    assert_eq!(member_ids(&app, group_id).await, [user_id.to_owned()]);
    let got = app
        .scim(Method::GET, &format!("/Users/{user_id}"), None)
        .await;
    assert_eq!(got.body["title"], "Bulky");

    // failOnErrors: processing stops after that many errors.
    let stopped = app
        .scim(
            Method::POST,
            "/Bulk",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "failOnErrors": 1,
                "Operations": [
                    { "method": "POST", "path": "/Users", "bulkId": "a", "data": user_body("bulk@acme.test") },
                    { "method": "POST", "path": "/Users", "bulkId": "b", "data": user_body("never@acme.test") },
                ]
            })),
        )
        .await;
    assert_eq!(stopped.body["Operations"].as_array().expect("ops").len(), 1);
    let never = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22never@acme.test%22",
            None,
        )
        .await;
    assert_eq!(never.body["totalResults"], 0);

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({ "method": "DELETE", "path": format!("/Users/{i}") }))
        .collect();
    let big = app
        .scim(
            Method::POST,
            "/Bulk",
            Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": too_many })),
        )
        .await;
    assert_scim_error(&big, 413, None);
    let config = app.scim(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(config.body["bulk"]["maxOperations"], 1000);
    assert_eq!(config.body["bulk"]["supported"], true);
}

async fn root_search_lists_users_and_groups(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let ada = create_user(&app, "ada@acme.test").await;
    let group = create_group(&app, "Engineers", &[&ada]).await;
    let all = app
        .scim(
            Method::POST,
            "/.search",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "attributes": ["externalId"],
            })),
        )
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.body["totalResults"], 2);
    let ids: Vec<&Value> = all.body["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, [&json!(ada), &json!(group)]);
    assert_eq!(all.body["Resources"][0]["externalId"], "ext-ada@acme.test");
    assert!(all.body["Resources"][0].get("userName").is_none());
    // A filter on an attribute only Groups have selects only Groups.
    let groups_only = app
        .scim(
            Method::POST,
            "/.search",
            Some(json!({ "filter": "displayName eq \"engineers\"" })),
        )
        .await;
    assert_eq!(groups_only.status, StatusCode::OK, "{}", groups_only.text);
    assert_eq!(groups_only.body["totalResults"], 1);
    assert_eq!(groups_only.body["Resources"][0]["id"], group);
}

async fn a_scim_user_and_an_invited_member_with_the_same_email_are_one_person(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let invited = app
        .store
        .ensure_user(
            &Ctx::new(Actor::Cli),
            app.org_id,
            "Grace@Acme.test",
            Source::Invite,
        )
        .await
        .expect("user");
    // A member of the token's org, as accepting the invitation makes them: only such a person
    // is linked (see takeover.rs for everyone else).
    app.store
        .set_membership(
            &Ctx::new(Actor::Cli),
            app.org_id,
            app.org_id,
            invited.id,
            None,
            rolegate::store::OwnerRule::Enforce,
        )
        .await
        .expect("membership");
    let created = app
        .scim(Method::POST, "/Users", Some(user_body("grace@acme.test")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.body["id"],
        invited.id.to_string(),
        "linked, not duplicated"
    );
    let members = app
        .get(
            &format!("/api/v1/orgs/{}/members?search=grace", app.org_id),
            &app.admin_token,
        )
        .await;
    assert_eq!(
        members.body["members"].as_array().expect("members").len(),
        1
    );
}

async fn deactivating_the_last_owner_goes_through_with_an_audit_warning(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    // The org's only Owner, now provisioned by the IdP (linked by e-mail).
    let owner = app
        .scim(Method::POST, "/Users", Some(user_body("owner@acme.test")))
        .await;
    assert_eq!(owner.status, StatusCode::CREATED, "{}", owner.text);
    let id = id_of(&owner);
    let off = app
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{ "op": "Replace", "path": "active", "value": "False" }]),
            )),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "offboarding wins: {}", off.text);
    let warnings = app
        .get(
            "/api/v1/audit?action=org.owner_rule_broken",
            &app.admin_token,
        )
        .await;
    let events = warnings.body["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor_kind"], "scim_token");
    assert!(events[0]["warning"].as_str().is_some_and(|w| !w.is_empty()));
}

async fn every_write_is_audited_with_the_scim_token_as_actor(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let id = create_user(&app, "ada@acme.test").await;
    let group = create_group(&app, "G", &[]).await;
    app.scim(
        Method::PATCH,
        &format!("/Groups/{group}"),
        Some(patch(
            json!([{ "op": "add", "path": "members", "value": [{ "value": id }] }]),
        )),
    )
    .await;
    app.scim(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    let events = app
        .get("/api/v1/audit?actor_kind=scim_token", &app.admin_token)
        .await
        .body["events"]
        .clone();
    let events = events.as_array().expect("events");
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().expect("a"))
        .collect();
    assert_eq!(
        actions,
        [
            "scim.user.delete",
            "scim.group.update",
            "scim.group.create",
            "scim.user.create"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["actor_name"] == "test" && e["request_id"].is_string())
    );
    assert!(!events.iter().any(|e| e.to_string().contains("t0p-s3cret")));
}

async fn failed_requests_are_counted_by_scim_type_and_logged_for_the_admin(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    create_user(&app, "ada@acme.test").await;
    app.scim(Method::POST, "/Users", Some(user_body("ada@acme.test")))
        .await;
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics.contains(
            r#"rolegate_scim_requests_total{operation="POST /Users",status="409",scim_type="uniqueness"}"#
        ),
        "{metrics}"
    );
    let token_id = app.scim_token_id().await;
    let log = app
        .get(
            &format!("/api/v1/tokens/{token_id}/errors"),
            &app.admin_token,
        )
        .await;
    assert_eq!(log.body["errors"][0]["status"], 409);
    assert_eq!(log.body["errors"][0]["scim_type"], "uniqueness");
}

async fn discovery_describes_what_is_built(backend: Backend) {
    let app = TestApp::new(backend).await;
    let config = app.scim(Method::GET, "/ServiceProviderConfig", None).await;
    for feature in ["patch", "bulk", "filter", "sort", "etag"] {
        assert_eq!(config.body[feature]["supported"], true, "{feature}");
    }
    assert_eq!(config.body["changePassword"]["supported"], false);
    let types = app.scim(Method::GET, "/ResourceTypes", None).await;
    assert_eq!(types.body["totalResults"], 2);
    assert_eq!(
        types.body["Resources"][0]["schemaExtensions"][0]["required"],
        false
    );
    let user_type = app.scim(Method::GET, "/ResourceTypes/User", None).await;
    assert_eq!(user_type.body["endpoint"], "/Users");
    let schemas = app.scim(Method::GET, "/Schemas", None).await;
    let ids: Vec<&Value> = schemas.body["Resources"]
        .as_array()
        .expect("schemas")
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&json!(USER), &json!(GROUP), &json!(ENTERPRISE)]);
    let one = app
        .scim(Method::GET, &format!("/Schemas/{ENTERPRISE}"), None)
        .await;
    assert_eq!(one.body["name"], "EnterpriseUser");
    assert!(
        one.body["meta"]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with(ENTERPRISE))
    );
    assert_scim_error(
        &app.scim(Method::GET, "/Schemas/urn:nope", None).await,
        404,
        None,
    );
    for path in ["/Schemas", "/ResourceTypes", "/ServiceProviderConfig"] {
        assert_scim_error(&app.scim(Method::DELETE, path, None).await, 405, None);
    }
}

crate::on_both_backends!(
    a_create_answers_201_with_location_etag_and_the_whole_resource,
    a_retried_create_is_409_uniqueness_and_changes_nothing,
    bad_input_gets_a_scim_error_with_the_right_status_and_type,
    etags_make_writes_conditional,
    put_replaces_ignoring_read_only_and_clearing_what_is_omitted,
    lists_page_sort_and_select_attributes,
    deactivation_keeps_the_user_readable_and_takes_its_access_until_reactivated,
    a_deleted_user_is_404_for_every_operation,
    one_org_never_sees_or_touches_another_orgs_resources,
    groups_keep_members_and_patch_answers_204_unless_attributes_are_asked,
    nested_groups_are_stored_users_see_them_and_cycles_are_refused,
    bulk_runs_operations_with_bulk_id_references_and_limits,
    root_search_lists_users_and_groups,
    a_scim_user_and_an_invited_member_with_the_same_email_are_one_person,
    deactivating_the_last_owner_goes_through_with_an_audit_warning,
    every_write_is_audited_with_the_scim_token_as_actor,
    failed_requests_are_counted_by_scim_type_and_logged_for_the_admin,
    discovery_describes_what_is_built,
);
