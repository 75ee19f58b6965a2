//! What identity providers really do at once: Entra ID sends many single-member PATCHes to one
//! group concurrently, and two syncs may PATCH one user at the same moment. Every request must
//! succeed and no change may be lost, on SQLite and on PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::common::http::unlimited;
use crate::common::{Backend, TestApp};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Requests in flight at once: enough to make the store queue and race, bounded so the test
/// stays a test.
const IN_FLIGHT: usize = 64;

fn request(token: &str, method: Method, path: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(format!("/scim/v2{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// Sends every request concurrently (at most [`IN_FLIGHT`] at a time); returns the statuses.
async fn send_all(app: &TestApp, requests: Vec<Request<Body>>) -> Vec<StatusCode> {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for req in requests {
        let router = app.router.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            router.oneshot(req).await.expect("infallible").status()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.expect("task"));
    }
    statuses
}

async fn create_users(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let reply = app
            .scim(
                Method::POST,
                "/Users",
                Some(json!({ "userName": format!("user{i}@acme.test") })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        ids.push(reply.body["id"].as_str().expect("id").to_owned());
    }
    ids
}

async fn members(app: &TestApp, group: &str) -> BTreeSet<String> {
    let reply = app
        .scim(Method::GET, &format!("/Groups/{group}"), None)
        .await;
    reply.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("value").to_owned())
        .collect()
}

/// 400 concurrent single-member PATCHes — removes of the first 100 members in both the RFC
/// and Entra ID forms, adds of 100 new ones, each of them twice (a retried request), and
/// renames — all answer 2xx and leave exactly the expected members.
async fn hundreds_of_concurrent_member_patches_lose_nothing(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let users = create_users(&app, 200).await;
    let (leaving, joining) = users.split_at(100);
    let initial: Vec<Value> = leaving.iter().map(|id| json!({ "value": id })).collect();
    let created = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({ "displayName": "Everyone", "members": initial })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let group = created.body["id"].as_str().expect("id").to_owned();
    let path = format!("/Groups/{group}");
    let token = app.scim_token.clone();

    let mut requests = Vec::new();
    for round in 0..2 {
        for (i, id) in leaving.iter().enumerate() {
            let body = if i % 2 == 0 {
                json!({ "schemas": [PATCH_OP], "Operations": [
                    { "op": "remove", "path": format!("members[value eq \"{id}\"]") }
                ] })
            } else {
                // Entra ID's form: Remove on `members` with the member in the value.
                json!({ "schemas": [PATCH_OP], "Operations": [
                    { "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": id }] }
                ] })
            };
            requests.push(request(&token, Method::PATCH, &path, body));
        }
        for id in joining {
            requests.push(request(
                &token,
                Method::PATCH,
                &path,
                json!({ "schemas": [PATCH_OP], "Operations": [
                    { "op": "Add", "path": "members", "value": [{ "$ref": null, "value": id }] }
                ] }),
            ));
        }
        requests.push(request(
            &token,
            Method::PATCH,
            &path,
            json!({ "schemas": [PATCH_OP], "Operations": [
                { "op": "replace", "path": "displayName", "value": format!("Everyone {round}") }
            ] }),
        ));
    }
    let statuses = send_all(&app, requests).await;
    assert_eq!(statuses.len(), 402);
    let failed: Vec<&StatusCode> = statuses.iter().filter(|s| !s.is_success()).collect();
    assert!(failed.is_empty(), "every response 2xx, got {failed:?}");

    let expected: BTreeSet<String> = joining.iter().cloned().collect();
    assert_eq!(
        members(&app, &group).await,
        expected,
        "the final member set is exact"
    );
    let renamed = app.scim(Method::GET, &path, None).await;
    let name = renamed.body["displayName"].as_str().expect("name");
    assert!(name == "Everyone 0" || name == "Everyone 1", "{name}");
    // Every user's groups agree with the group's members.
    let joined = app
        .scim(Method::GET, &format!("/Users/{}", joining[0]), None)
        .await;
    assert_eq!(joined.body["groups"][0]["value"], group);
    let left = app
        .scim(Method::GET, &format!("/Users/{}", leaving[0]), None)
        .await;
    assert!(left.body.get("groups").is_none());
}

/// Concurrent PATCHes of one user each add another e-mail: the compare-and-swap write re-applies
/// a PATCH that lost the race, so all of them land.
async fn concurrent_patches_of_one_user_all_land(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let user = create_users(&app, 1).await.remove(0);
    let path = format!("/Users/{user}");
    let requests: Vec<Request<Body>> = (0..20)
        .map(|i| {
            request(
                &app.scim_token,
                Method::PATCH,
                &path,
                json!({ "schemas": [PATCH_OP], "Operations": [
                    { "op": "add", "path": "emails", "value": [{ "value": format!("alias{i}@acme.test"), "type": "other" }] }
                ] }),
            )
        })
        .collect();
    let statuses = send_all(&app, requests).await;
    assert!(statuses.iter().all(StatusCode::is_success), "{statuses:?}");
    let got = app.scim(Method::GET, &path, None).await;
    let emails: BTreeSet<&str> = got.body["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .map(|e| e["value"].as_str().expect("value"))
        .collect();
    assert_eq!(emails.len(), 20, "{emails:?}");
    assert_eq!(got.body["meta"]["version"], "W/\"21\"");
}

/// The same create sent many times at once (an IdP retrying on a timeout): exactly one 201, the
/// rest 409 `uniqueness`, one user.
async fn concurrent_identical_creates_make_one_user(backend: Backend) {
    let app = TestApp::with_config(backend, unlimited()).await;
    let requests: Vec<Request<Body>> = (0..16)
        .map(|_| {
            request(
                &app.scim_token,
                Method::POST,
                "/Users",
                json!({ "userName": "once@acme.test", "externalId": "okta-1" }),
            )
        })
        .collect();
    let statuses = send_all(&app, requests).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 15), "{statuses:?}");
    let list = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22once@acme.test%22",
            None,
        )
        .await;
    assert_eq!(list.body["totalResults"], 1);
}

crate::on_both_backends!(
    hundreds_of_concurrent_member_patches_lose_nothing,
    concurrent_patches_of_one_user_all_land,
    concurrent_identical_creates_make_one_user,
);
