//! Microsoft Entra ID's provisioning sequence and quirks, as Entra sends them.
//!
//! Sources (Microsoft Learn, from `MicrosoftDocs/entra-docs`, `docs/identity/app-provisioning/`):
//! - "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID"
//!   (`use-scim-to-provision-users-and-groups.md`): the "User Operations" and "Group
//!   Operations" request/response pairs, the requirements table and the Test Connection probe.
//!   Its JSON examples are used as they are, with trailing commas removed.
//! - "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra user
//!   provisioning service" (`application-provisioning-config-problem-scim-compatibility.md`):
//!   the requests sent without and with the `aadOptscim062020` flag.
//! - "How provisioning works" (`how-provisioning-works.md`): soft delete (`active=false`) versus
//!   hard delete (DELETE), and memberships kept while a user is inactive.
//!
//! A few quirks come from issue threads rather than Microsoft's pages; their tests say so.
//! Concurrent single-member PATCHes are tested in `scim_concurrency`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::http::{Reply, unlimited};
use crate::common::{Backend, TestApp};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ADSCIM_GROUP: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

const TUTORIAL_USER_NAME: &str = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee";
const TUTORIAL_EMAIL: &str = "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com";
const TUTORIAL_EXTERNAL_ID: &str = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";

async fn entra_app(backend: Backend) -> TestApp {
    TestApp::with_config(backend, unlimited()).await
}

/// Tutorial, "Create User" request, as sent: `meta.resourceType`, an empty `roles`, and the
/// enterprise URN in `schemas` with no extension object.
fn tutorial_user() -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": TUTORIAL_EXTERNAL_ID,
        "userName": TUTORIAL_USER_NAME,
        "active": true,
        "emails": [{
            "primary": true,
            "type": "work",
            "value": TUTORIAL_EMAIL,
        }],
        "meta": { "resourceType": "User" },
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName",
        },
        "roles": [],
    })
}

/// A user shaped like the tutorial's, with its own userName and work e-mail.
fn user_named(user_name: &str, work_email: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": Uuid::now_v7().to_string(),
        "userName": user_name,
        "active": true,
        "emails": [{ "primary": true, "type": "work", "value": work_email }],
        "name": { "familyName": "familyName", "givenName": "givenName" },
    })
}

fn patch_op(operations: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": operations })
}

/// Percent-encodes a query parameter value (everything but RFC 3986 unreserved characters).
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn filtered(endpoint: &str, filter: &str) -> String {
    format!("{endpoint}?filter={}", encode(filter))
}

async fn create(app: &TestApp, endpoint: &str, body: Value) -> Value {
    let created = app.scim(Method::POST, endpoint, Some(body)).await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "setup: {}",
        created.text
    );
    created.body
}

async fn create_user(app: &TestApp, body: Value) -> String {
    create(app, "/Users", body).await["id"]
        .as_str()
        .expect("setup: user id")
        .to_owned()
}

async fn create_group(app: &TestApp, display_name: &str) -> String {
    create(
        app,
        "/Groups",
        json!({
            "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
            "externalId": Uuid::now_v7().to_string(),
            "displayName": display_name,
            "meta": { "resourceType": "Group" },
        }),
    )
    .await["id"]
        .as_str()
        .expect("setup: group id")
        .to_owned()
}

async fn patch(app: &TestApp, path: &str, operations: Value) -> Reply {
    app.scim(Method::PATCH, path, Some(patch_op(operations)))
        .await
}

/// Tutorial, "Update Group [Add Members]": `Add` on `members` with `"$ref": null`.
async fn add_members(app: &TestApp, group_id: &str, user_ids: &[&str]) {
    let value: Vec<Value> = user_ids
        .iter()
        .map(|id| json!({ "$ref": null, "value": id }))
        .collect();
    let reply = patch(
        app,
        &format!("/Groups/{group_id}"),
        json!([{ "op": "Add", "path": "members", "value": value }]),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "setup: {}",
        reply.text
    );
}

/// The member ids of a group, as a GET renders them.
async fn member_ids(app: &TestApp, group_id: &str) -> Vec<String> {
    let group = app
        .scim(Method::GET, &format!("/Groups/{group_id}"), None)
        .await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.text);
    let mut ids: Vec<String> = group.body["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members is not an array in {}", group.text))
        .iter()
        .map(|m| m["value"].as_str().expect("member value").to_owned())
        .collect();
    ids.sort();
    ids
}

fn assert_scim_json(reply: &Reply) {
    assert_eq!(
        reply.headers["content-type"], "application/scim+json",
        "tutorial: \"The header for all the responses should be of content-Type: application/scim+json\""
    );
}

fn assert_not_found(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "{what}: {}",
        reply.text
    );
    assert_eq!(reply.body["schemas"], json!([ERROR_SCHEMA]), "{what}");
    assert_eq!(reply.body["status"], "404", "{what}");
}

/// The ids of a ListResponse's resources.
fn listed_ids(reply: &Reply) -> Vec<&str> {
    reply.body["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("Resources is not an array in {}", reply.text))
        .iter()
        .map(|r| r["id"].as_str().expect("resource id"))
        .collect()
}

fn work_emails(user: &Value) -> Vec<&Value> {
    user["emails"]
        .as_array()
        .map(|emails| emails.iter().filter(|e| e["type"] == "work").collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Users: the tutorial's "User Operations", in order.

/// Tutorial, "Create User": 201 with the resource, `meta.resourceType` and `roles: []` in the
/// request tolerated, the enterprise URN listed without an extension object accepted.
async fn create_user_with_the_tutorial_body_is_201_with_the_resource(backend: Backend) {
    let app = entra_app(backend).await;

    let reply = app
        .scim(Method::POST, "/Users", Some(tutorial_user()))
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_scim_json(&reply);
    let id = reply.body["id"].as_str().expect("id");
    assert!(!id.is_empty());
    assert!(
        reply.headers["location"]
            .to_str()
            .expect("ascii")
            .ends_with(&format!("/Users/{id}")),
        "RFC 7644 §3.3: Location of the new resource"
    );
    assert!(
        reply.body["schemas"]
            .as_array()
            .expect("schemas")
            .contains(&json!(USER_SCHEMA))
    );
    assert_eq!(reply.body["externalId"], TUTORIAL_EXTERNAL_ID);
    assert_eq!(reply.body["userName"], TUTORIAL_USER_NAME);
    assert_eq!(
        reply.body["name"],
        json!({
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName",
        })
    );
    assert_eq!(reply.body["active"], true);
    assert_eq!(
        reply.body["emails"],
        json!([{ "value": TUTORIAL_EMAIL, "type": "work", "primary": true }])
    );
    assert_eq!(reply.body["meta"]["resourceType"], "User");
    assert!(reply.body["meta"]["created"].is_string());
    assert!(reply.body["meta"]["lastModified"].is_string());
}

/// Tutorial, "Get User": the created user by id, as created.
async fn get_user_by_id_returns_the_created_user(backend: Backend) {
    let app = entra_app(backend).await;
    let created = create(&app, "/Users", tutorial_user()).await;
    let id = created["id"].as_str().expect("id");

    let reply = app.scim(Method::GET, &format!("/Users/{id}"), None).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_scim_json(&reply);
    assert_eq!(reply.body["id"], id);
    assert_eq!(reply.body["externalId"], TUTORIAL_EXTERNAL_ID);
    assert_eq!(reply.body["userName"], TUTORIAL_USER_NAME);
    assert_eq!(reply.body["name"], created["name"]);
    assert_eq!(reply.body["active"], true);
    assert_eq!(reply.body["emails"], created["emails"]);
    assert_eq!(reply.body["meta"]["resourceType"], "User");
}

/// Tutorial, "Get User", user not found: 404 with `status: "404"` (a string) in a SCIM Error.
async fn get_unknown_user_is_404_scim_error_with_string_status(backend: Backend) {
    let app = entra_app(backend).await;
    create_user(&app, tutorial_user()).await;

    let reply = app
        .scim(Method::GET, &format!("/Users/{}", Uuid::now_v7()), None)
        .await;

    assert_not_found(&reply, "unknown user");
    assert_scim_json(&reply);
}

/// Tutorial, "Get User by query": `userName eq` returns a ListResponse holding the user.
async fn get_user_by_user_name_query_lists_only_that_user(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;
    create_user(
        &app,
        user_named("someone.else@testuser.com", "se@testuser.com"),
    )
    .await;

    let reply = app
        .scim(
            Method::GET,
            &filtered("/Users", &format!("userName eq \"{TUTORIAL_USER_NAME}\"")),
            None,
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_scim_json(&reply);
    assert_eq!(reply.body["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(reply.body["totalResults"], 1);
    assert_eq!(reply.body["startIndex"], 1);
    assert_eq!(reply.body["itemsPerPage"], 1);
    assert_eq!(listed_ids(&reply), [id.as_str()]);
    assert_eq!(reply.body["Resources"][0]["userName"], TUTORIAL_USER_NAME);
    assert_eq!(
        reply.body["Resources"][0]["emails"][0]["value"],
        TUTORIAL_EMAIL
    );
}

/// Tutorial, "Get User by query - Zero results": 200 and an empty ListResponse, `Resources: []`.
async fn zero_result_query_is_200_with_an_empty_list_response(backend: Backend) {
    let app = entra_app(backend).await;
    create_user(&app, tutorial_user()).await;

    let reply = app
        .scim(
            Method::GET,
            &filtered("/Users", "userName eq \"non-existent user\""),
            None,
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(reply.body["totalResults"], 0);
    assert_eq!(reply.body["Resources"], json!([]));
    assert_eq!(reply.body["startIndex"], 1);
}

/// Tutorial, "Integrate your SCIM endpoint": "Test Connection queries the SCIM endpoint for a
/// user that doesn't exist, using a random GUID as the matching property … The expected correct
/// response is HTTP 200 OK with an empty SCIM ListResponse message."
async fn test_connection_probe_with_a_random_guid_external_id_is_200_empty(backend: Backend) {
    let app = entra_app(backend).await;
    create_user(&app, tutorial_user()).await;

    let reply = app
        .scim(
            Method::GET,
            &filtered("/Users", &format!("externalId eq \"{}\"", Uuid::now_v7())),
            None,
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(reply.body["totalResults"], 0);
    assert_eq!(reply.body["Resources"], json!([]));
}

/// Tutorial, "Update User [Multi-valued properties]": `Replace` on `emails[type eq "work"].value`
/// changes that address in place (its `primary` kept), `Replace` on `name.familyName` only the
/// family name; 200 with the resource, and a later GET agrees.
async fn update_multi_valued_replaces_the_work_email_and_the_family_name(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;

    let reply = patch(
        &app,
        &format!("/Users/{id}"),
        json!([
            {
                "op": "Replace",
                "path": "emails[type eq \"work\"].value",
                "value": "updatedEmail@microsoft.com",
            },
            { "op": "Replace", "path": "name.familyName", "value": "updatedFamilyName" },
        ]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_scim_json(&reply);
    let expected_emails =
        json!([{ "value": "updatedEmail@microsoft.com", "type": "work", "primary": true }]);
    assert_eq!(reply.body["emails"], expected_emails);
    assert_eq!(reply.body["name"]["familyName"], "updatedFamilyName");
    assert_eq!(reply.body["name"]["givenName"], "givenName");
    assert_eq!(reply.body["userName"], TUTORIAL_USER_NAME);
    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.body["emails"], expected_emails);
    assert_eq!(read.body["name"]["familyName"], "updatedFamilyName");
}

/// Tutorial, "Update User [Single-valued properties]": `Replace` on `userName`; the user is then
/// found by the new name only.
async fn update_single_valued_replaces_the_user_name(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;
    let new_name = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com";

    let reply = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{ "op": "Replace", "path": "userName", "value": new_name }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["userName"], new_name);
    assert_eq!(reply.body["emails"][0]["value"], TUTORIAL_EMAIL);
    let by_new = app
        .scim(
            Method::GET,
            &filtered("/Users", &format!("userName eq \"{new_name}\"")),
            None,
        )
        .await;
    assert_eq!(listed_ids(&by_new), [id.as_str()]);
    let by_old = app
        .scim(
            Method::GET,
            &filtered("/Users", &format!("userName eq \"{TUTORIAL_USER_NAME}\"")),
            None,
        )
        .await;
    assert_eq!(by_old.body["totalResults"], 0, "{}", by_old.text);
}

/// Compliance page, "Disable user" without the flag: capitalised `Replace` and the string
/// `"False"`. The user is deactivated (`active` the boolean false), not removed.
async fn soft_delete_with_the_string_false_deactivates_the_user(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;

    let reply = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{ "op": "Replace", "path": "active", "value": "False" }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["active"], false, "{}", reply.text);
    assert_eq!(reply.body["id"], id.as_str());
}

/// Compliance page, "Disable user" with `aadOptscim062020` (and the tutorial's "Disable User",
/// `Operations` before `schemas`): lower-case `replace` and the boolean `false`.
async fn soft_delete_with_the_flag_form_boolean_false_deactivates_the_user(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;

    // Written with `Operations` first, as the tutorial's example is (key order is not meaning).
    let body = json!({
        "Operations": [{ "op": "replace", "path": "active", "value": false }],
        "schemas": [PATCH_OP],
    });

    let reply = app
        .scim(Method::PATCH, &format!("/Users/{id}"), Some(body))
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["active"], false, "{}", reply.text);
    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.body["active"], false, "{}", read.text);
}

/// Tutorial requirements: "The user object should be returned in a request whether or not the
/// user is active. The only time the user shouldn't be returned is when it's hard deleted".
async fn soft_deleted_user_is_still_readable_filterable_and_listed_with_active_false(
    backend: Backend,
) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;
    let disabled = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{ "op": "Replace", "path": "active", "value": "False" }]),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK, "setup: {}", disabled.text);

    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body["active"], false);

    let by_name = app
        .scim(
            Method::GET,
            &filtered("/Users", &format!("userName eq \"{TUTORIAL_USER_NAME}\"")),
            None,
        )
        .await;
    assert_eq!(listed_ids(&by_name), [id.as_str()]);
    assert_eq!(by_name.body["Resources"][0]["active"], false);

    let all = app.scim(Method::GET, "/Users", None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert!(listed_ids(&all).contains(&id.as_str()), "{}", all.text);
}

/// Tutorial requirements, "restoring the user `active=true`"; how-provisioning-works: Entra
/// "doesn't automatically restore the dynamic membership group", so "The target application
/// should maintain the dynamic membership group for the user in inactive state."
async fn restore_with_active_true_reactivates_the_user_and_keeps_its_groups(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "Engineering").await;
    add_members(&app, &group, &[&id]).await;
    let disabled = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{ "op": "Replace", "path": "active", "value": "False" }]),
    )
    .await;
    assert_eq!(disabled.body["active"], false, "setup: {}", disabled.text);
    assert_eq!(
        member_ids(&app, &group).await,
        [id.as_str()],
        "while inactive"
    );

    let restored = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{ "op": "replace", "path": "active", "value": true }]),
    )
    .await;

    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    assert_eq!(restored.body["active"], true);
    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.body["active"], true);
    assert_eq!(member_ids(&app, &group).await, [id.as_str()]);
}

/// Tutorial, "Delete User": 204, and the user is gone for every method (how-provisioning-works:
/// a hard delete is `DELETE /Users/{id}`), no longer found by a filter, and no longer a member.
async fn hard_delete_is_204_then_get_patch_put_delete_are_404(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "Engineering").await;
    add_members(&app, &group, &[&id]).await;
    let path = format!("/Users/{id}");

    let deleted = app.scim(Method::DELETE, &path, None).await;

    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(deleted.text.is_empty(), "204 has no body: {}", deleted.text);
    assert_not_found(&app.scim(Method::GET, &path, None).await, "GET");
    assert_not_found(
        &patch(
            &app,
            &path,
            json!([{ "op": "Replace", "path": "active", "value": "True" }]),
        )
        .await,
        "PATCH",
    );
    assert_not_found(
        &app.scim(Method::PUT, &path, Some(tutorial_user())).await,
        "PUT",
    );
    assert_not_found(&app.scim(Method::DELETE, &path, None).await, "DELETE");
    let by_name = app
        .scim(
            Method::GET,
            &filtered("/Users", &format!("userName eq \"{TUTORIAL_USER_NAME}\"")),
            None,
        )
        .await;
    assert_eq!(by_name.body["totalResults"], 0, "{}", by_name.text);
    assert!(member_ids(&app, &group).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Groups: the tutorial's "Group Operations", in order.

/// Tutorial, "Create Group": the Microsoft ADSCIM URN in `schemas` is tolerated (compliance
/// page: "Group creation requests contain an invalid schema URI"), and "Groups are created with
/// an empty members list": 201 with `members: []`, `schemas` only the core Group URN.
async fn group_create_with_the_adscim_schema_urn_is_201_with_empty_members(backend: Backend) {
    let app = entra_app(backend).await;

    let reply = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": { "resourceType": "Group" },
            })),
        )
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_scim_json(&reply);
    assert!(reply.body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(reply.body["schemas"], json!([GROUP_SCHEMA]));
    assert_eq!(
        reply.body["externalId"],
        "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    );
    assert_eq!(reply.body["displayName"], "displayName");
    assert_eq!(reply.body["members"], json!([]));
    assert_eq!(reply.body["meta"]["resourceType"], "Group");
}

/// Tutorial, "Get Group" with `excludedAttributes=members`: no `members` key at all, although
/// the group has a member.
async fn get_group_with_excluded_members_has_no_members_key(backend: Backend) {
    let app = entra_app(backend).await;
    let user = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "displayName").await;
    add_members(&app, &group, &[&user]).await;

    let reply = app
        .scim(
            Method::GET,
            &format!("/Groups/{group}?excludedAttributes=members"),
            None,
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["id"], group.as_str());
    assert_eq!(reply.body["displayName"], "displayName");
    assert!(reply.body.get("members").is_none(), "{}", reply.text);
    assert_eq!(reply.body["schemas"], json!([GROUP_SCHEMA]));
}

/// Tutorial, "Get Group by displayName": `excludedAttributes=members&filter=displayName eq …`
/// lists only that group, without members.
async fn get_group_by_display_name_query_with_excluded_members(backend: Backend) {
    let app = entra_app(backend).await;
    let user = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "displayName").await;
    create_group(&app, "otherDisplayName").await;
    add_members(&app, &group, &[&user]).await;

    let reply = app
        .scim(
            Method::GET,
            &format!(
                "/Groups?excludedAttributes=members&filter={}",
                encode("displayName eq \"displayName\"")
            ),
            None,
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(reply.body["totalResults"], 1);
    assert_eq!(reply.body["startIndex"], 1);
    assert_eq!(listed_ids(&reply), [group.as_str()]);
    let listed = &reply.body["Resources"][0];
    assert_eq!(listed["displayName"], "displayName");
    assert!(listed.get("members").is_none(), "{}", reply.text);
}

/// Tutorial, "Update Group [Non-member attributes]": `Replace displayName` is 204 No Content
/// ("Update to the group PATCH request should yield an HTTP 204 No Content"), and renames it.
async fn update_group_display_name_is_204_and_renames_it(backend: Backend) {
    let app = entra_app(backend).await;
    let group = create_group(&app, "displayName").await;
    let new_name = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName";

    let reply = patch(
        &app,
        &format!("/Groups/{group}"),
        json!([{ "op": "Replace", "path": "displayName", "value": new_name }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty(), "{}", reply.text);
    let read = app
        .scim(Method::GET, &format!("/Groups/{group}"), None)
        .await;
    assert_eq!(read.body["displayName"], new_name);
}

/// Tutorial, "Update Group [Add Members]": `Add` on `members` with `"$ref": null` is 204, and
/// the member is visible on a GET as `{value, $ref, type}`.
async fn add_members_with_a_null_ref_is_204_and_the_member_is_listed(backend: Backend) {
    let app = entra_app(backend).await;
    let user = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "displayName").await;

    let reply = patch(
        &app,
        &format!("/Groups/{group}"),
        json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": user }] }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty(), "{}", reply.text);
    let read = app
        .scim(Method::GET, &format!("/Groups/{group}"), None)
        .await;
    let members = read.body["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{}", read.text);
    assert_eq!(members[0]["value"], user.as_str());
    assert_eq!(members[0]["type"], "User");
    assert!(
        members[0]["$ref"]
            .as_str()
            .is_some_and(|r| r.ends_with(&format!("/Users/{user}"))),
        "{}",
        read.text
    );
}

/// Tutorial, "Update Group [Remove Members]": the non-RFC `Remove` with path `members` and a
/// value list is 204 and removes the member (compliance page: the form sent without the flag).
async fn remove_members_with_a_value_list_is_204_and_removes_the_member(backend: Backend) {
    let app = entra_app(backend).await;
    let user = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "displayName").await;
    add_members(&app, &group, &[&user]).await;

    let reply = patch(
        &app,
        &format!("/Groups/{group}"),
        json!([{ "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": user }] }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(member_ids(&app, &group).await.is_empty());
}

/// The value-list `Remove` removes only the members it lists, not the whole attribute (as a
/// path-only `remove members` would, RFC 7644 §3.5.2.2): add 3, remove 2, 1 is left.
async fn remove_members_with_a_value_list_removes_only_those_listed(backend: Backend) {
    let app = entra_app(backend).await;
    let a = create_user(&app, user_named("a@testuser.com", "a@testuser.com")).await;
    let b = create_user(&app, user_named("b@testuser.com", "b@testuser.com")).await;
    let c = create_user(&app, user_named("c@testuser.com", "c@testuser.com")).await;
    let group = create_group(&app, "displayName").await;
    add_members(&app, &group, &[&a, &b, &c]).await;

    let reply = patch(
        &app,
        &format!("/Groups/{group}"),
        json!([{
            "op": "Remove",
            "path": "members",
            "value": [{ "$ref": null, "value": a }, { "$ref": null, "value": c }],
        }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_eq!(member_ids(&app, &group).await, [b.as_str()]);
}

/// Compliance page, "Remove a group member" with `aadOptscim062020`: the RFC form
/// `remove members[value eq "id"]` with no value removes that member only.
async fn remove_member_with_the_rfc_value_filter_path_removes_only_it(backend: Backend) {
    let app = entra_app(backend).await;
    let a = create_user(&app, user_named("a@testuser.com", "a@testuser.com")).await;
    let b = create_user(&app, user_named("b@testuser.com", "b@testuser.com")).await;
    let group = create_group(&app, "displayName").await;
    add_members(&app, &group, &[&a, &b]).await;

    let reply = patch(
        &app,
        &format!("/Groups/{group}"),
        json!([{ "op": "remove", "path": format!("members[value eq \"{a}\"]") }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_eq!(member_ids(&app, &group).await, [b.as_str()]);
}

/// Tutorial, "Delete Group": 204, then the group is 404; its member user stays.
async fn delete_group_is_204_then_404_and_its_members_stay(backend: Backend) {
    let app = entra_app(backend).await;
    let user = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "displayName").await;
    add_members(&app, &group, &[&user]).await;
    let path = format!("/Groups/{group}");

    let deleted = app.scim(Method::DELETE, &path, None).await;

    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(deleted.text.is_empty(), "{}", deleted.text);
    assert_not_found(&app.scim(Method::GET, &path, None).await, "GET group");
    assert_not_found(
        &app.scim(Method::DELETE, &path, None).await,
        "DELETE group again",
    );
    let member = app.scim(Method::GET, &format!("/Users/{user}"), None).await;
    assert_eq!(member.status, StatusCode::OK, "{}", member.text);
}

// ---------------------------------------------------------------------------------------------
// Quirks.

/// Compliance page, "Replace multiple attributes" with `aadOptscim062020`: one path-less
/// `replace` whose keys are paths — dotted (`name.givenName`) and URN-qualified
/// (`urn:…:enterprise:2.0:User:department`) — each set as if it were the operation's path.
/// The manager comes as a bare id (the tutorial's schema example, `"manager": "123456"`) and is
/// stored as `{"value": …}`, its schema's complex form.
async fn pathless_replace_with_dotted_and_urn_keys_sets_each_attribute(backend: Backend) {
    let app = entra_app(backend).await;
    let manager = create_user(&app, user_named("boss@testuser.com", "boss@testuser.com")).await;
    let id = create_user(&app, tutorial_user()).await;

    let reply = patch(
        &app,
        &format!("/Users/{id}"),
        json!([
            {
                "op": "replace",
                "path": "emails[type eq \"work\"].value",
                "value": "TestMhvaes@test.microsoft.com",
            },
            {
                "op": "replace",
                "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    format!("{ENTERPRISE}:employeeNumber"): "Aklq",
                    format!("{ENTERPRISE}:department"): "Sales",
                    format!("{ENTERPRISE}:manager"): manager,
                },
            },
        ]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    for user in [&reply.body, &read.body] {
        assert_eq!(user["displayName"], "Bjfe", "{user}");
        assert_eq!(user["name"]["givenName"], "Kkom", "{user}");
        assert_eq!(user["name"]["familyName"], "Unua", "{user}");
        assert_eq!(user["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
        assert_eq!(
            user[ENTERPRISE],
            json!({
                "employeeNumber": "Aklq",
                "department": "Sales",
                "manager": { "value": manager },
            }),
            "{user}"
        );
        assert!(
            user["schemas"]
                .as_array()
                .expect("schemas")
                .contains(&json!(ENTERPRISE))
        );
        assert!(user.get("name.givenName").is_none(), "a key is a path");
    }
}

/// [community] Entra and the SCIM Validator send `Add` on `emails[type eq "work"].value` to a
/// user with no work e-mail and expect it created, not RFC 7644's `noTarget` (sourcegraph PR
/// #49200, Captain-P-Goldfish/SCIM-SDK #416). The other addresses stay.
async fn add_on_a_filtered_work_email_creates_it_when_missing(backend: Backend) {
    let app = entra_app(backend).await;
    let mut body = user_named("home.only@testuser.com", "unused@testuser.com");
    body["emails"] = json!([{ "type": "home", "value": "home@example.org" }]);
    let id = create_user(&app, body).await;

    let reply = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{
            "op": "Add",
            "path": "emails[type eq \"work\"].value",
            "value": "work@example.org",
        }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        work_emails(&reply.body),
        [&json!({ "type": "work", "value": "work@example.org" })],
        "{}",
        reply.text
    );
    let emails = reply.body["emails"].as_array().expect("emails");
    assert!(
        emails.contains(&json!({ "type": "home", "value": "home@example.org" })),
        "{}",
        reply.text
    );
    assert_eq!(emails.len(), 2, "{}", reply.text);
}

/// An empty string clears the attribute it targets: afterwards the attribute is absent, and
/// nothing else is touched. An assumption, not Microsoft-documented for outbound provisioning
/// (known issues: "Null attribute can't be provisioned" — Entra skips nulls), but a clear that
/// must not store `""`.
async fn empty_string_clears_the_targeted_attribute(backend: Backend) {
    let app = entra_app(backend).await;
    let mut body = tutorial_user();
    body["title"] = json!("Engineer");
    body[ENTERPRISE] = json!({ "department": "R&D", "employeeNumber": "42" });
    let id = create_user(&app, body).await;

    let reply = patch(
        &app,
        &format!("/Users/{id}"),
        json!([
            { "op": "Replace", "path": "title", "value": "" },
            { "op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "" },
            { "op": "Replace", "value": { "name.givenName": "" } },
        ]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    for user in [&reply.body, &read.body] {
        assert!(user.get("title").is_none(), "{user}");
        assert!(
            user.get(ENTERPRISE)
                .and_then(|e| e.get("department"))
                .is_none(),
            "{user}"
        );
        assert!(user["name"].get("givenName").is_none(), "{user}");
        assert_eq!(user[ENTERPRISE]["employeeNumber"], "42", "{user}");
        assert_eq!(user["name"]["familyName"], "familyName", "{user}");
    }
}

/// Tutorial, "Build a SCIM endpoint", Example 5 (update manager): `Add` on the bare path
/// `manager` with `[{"$ref": …, "value": "<id>"}]` sets the enterprise manager.
async fn add_manager_as_a_ref_value_array_sets_the_enterprise_manager(backend: Backend) {
    let app = entra_app(backend).await;
    let manager = create_user(&app, user_named("boss@testuser.com", "boss@testuser.com")).await;
    let id = create_user(&app, tutorial_user()).await;

    let reply = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{ "op": "Add", "path": "manager", "value": [{ "$ref": null, "value": manager }] }]),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let read = app.scim(Method::GET, &format!("/Users/{id}"), None).await;
    for user in [&reply.body, &read.body] {
        assert_eq!(
            user[ENTERPRISE]["manager"],
            json!({ "value": manager }),
            "{user}"
        );
    }
}

/// Tutorial, "/Users": uniqueness attributes must be filterable, e.g.
/// `emails[type eq "work"].value eq "user@contoso.com"` (Entra's non-RFC form). E-mail values
/// are case-insensitive; the address must be a *work* one; another address finds nobody.
async fn filter_on_the_work_email_value_finds_the_user_case_insensitively(backend: Backend) {
    let app = entra_app(backend).await;
    let ada = create_user(
        &app,
        user_named("ada@testuser.com", "Ada.Lovelace@Contoso.com"),
    )
    .await;
    let mut grace = user_named("grace@testuser.com", "grace.work@contoso.com");
    grace["emails"] = json!([
        { "type": "work", "value": "grace.work@contoso.com" },
        { "type": "home", "value": "grace@contoso.com" },
    ]);
    create_user(&app, grace).await;
    let query = |address: &str| {
        filtered(
            "/Users",
            &format!("emails[type eq \"work\"].value eq \"{address}\""),
        )
    };

    let found = app
        .scim(Method::GET, &query("ada.lovelace@contoso.com"), None)
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(listed_ids(&found), [ada.as_str()]);

    let other = app
        .scim(Method::GET, &query("someone.else@contoso.com"), None)
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    assert_eq!(other.body["totalResults"], 0, "{}", other.text);

    let home_address = app
        .scim(Method::GET, &query("grace@contoso.com"), None)
        .await;
    assert_eq!(home_address.status, StatusCode::OK, "{}", home_address.text);
    assert_eq!(
        home_address.body["totalResults"], 0,
        "a home address is not a work one: {}",
        home_address.text
    );
}

/// Tutorial, "Retrieving resources": "Microsoft Entra-only uses the following operators: `eq`,
/// `and`". `userName eq "a" and active eq true` holds only while both do.
async fn filter_with_and_requires_both_conditions(backend: Backend) {
    let app = entra_app(backend).await;
    let id = create_user(&app, tutorial_user()).await;
    create_user(&app, user_named("other@testuser.com", "other@testuser.com")).await;
    let query = |active: bool| {
        filtered(
            "/Users",
            &format!("userName eq \"{TUTORIAL_USER_NAME}\" and active eq {active}"),
        )
    };

    let active = app.scim(Method::GET, &query(true), None).await;
    assert_eq!(active.status, StatusCode::OK, "{}", active.text);
    assert_eq!(listed_ids(&active), [id.as_str()]);
    let inactive = app.scim(Method::GET, &query(false), None).await;
    assert_eq!(inactive.body["totalResults"], 0, "{}", inactive.text);

    let disabled = patch(
        &app,
        &format!("/Users/{id}"),
        json!([{ "op": "Replace", "path": "active", "value": "False" }]),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);

    let active = app.scim(Method::GET, &query(true), None).await;
    assert_eq!(active.body["totalResults"], 0, "{}", active.text);
    let inactive = app.scim(Method::GET, &query(false), None).await;
    assert_eq!(listed_ids(&inactive), [id.as_str()]);
}

/// Tutorial, "/Groups": a group PATCH answers 204 ("Returning a body with a list of all the
/// members isn't advisable"); a request that asks for attributes (RFC 7644 §3.5.2: "the client
/// MAY request the return of the entire resource" with `attributes`) gets 200 with them.
async fn group_patch_is_204_and_200_with_the_resource_when_attributes_are_asked(backend: Backend) {
    let app = entra_app(backend).await;
    let user = create_user(&app, tutorial_user()).await;
    let group = create_group(&app, "displayName").await;

    let plain = patch(
        &app,
        &format!("/Groups/{group}"),
        json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": user }] }]),
    )
    .await;
    assert_eq!(plain.status, StatusCode::NO_CONTENT, "{}", plain.text);
    assert!(plain.text.is_empty(), "{}", plain.text);

    let asked = patch(
        &app,
        &format!("/Groups/{group}?attributes=displayName"),
        json!([{ "op": "Replace", "path": "displayName", "value": "renamed" }]),
    )
    .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.text);
    assert_scim_json(&asked);
    assert_eq!(asked.body["id"], group.as_str());
    assert_eq!(asked.body["displayName"], "renamed");
    assert!(
        asked.body.get("members").is_none(),
        "only what was asked: {}",
        asked.text
    );
}

crate::on_both_backends!(
    create_user_with_the_tutorial_body_is_201_with_the_resource,
    get_user_by_id_returns_the_created_user,
    get_unknown_user_is_404_scim_error_with_string_status,
    get_user_by_user_name_query_lists_only_that_user,
    zero_result_query_is_200_with_an_empty_list_response,
    test_connection_probe_with_a_random_guid_external_id_is_200_empty,
    update_multi_valued_replaces_the_work_email_and_the_family_name,
    update_single_valued_replaces_the_user_name,
    soft_delete_with_the_string_false_deactivates_the_user,
    soft_delete_with_the_flag_form_boolean_false_deactivates_the_user,
    soft_deleted_user_is_still_readable_filterable_and_listed_with_active_false,
    restore_with_active_true_reactivates_the_user_and_keeps_its_groups,
    hard_delete_is_204_then_get_patch_put_delete_are_404,
    group_create_with_the_adscim_schema_urn_is_201_with_empty_members,
    get_group_with_excluded_members_has_no_members_key,
    get_group_by_display_name_query_with_excluded_members,
    update_group_display_name_is_204_and_renames_it,
    add_members_with_a_null_ref_is_204_and_the_member_is_listed,
    remove_members_with_a_value_list_is_204_and_removes_the_member,
    remove_members_with_a_value_list_removes_only_those_listed,
    remove_member_with_the_rfc_value_filter_path_removes_only_it,
    delete_group_is_204_then_404_and_its_members_stay,
    pathless_replace_with_dotted_and_urn_keys_sets_each_attribute,
    add_on_a_filtered_work_email_creates_it_when_missing,
    empty_string_clears_the_targeted_attribute,
    add_manager_as_a_ref_value_array_sets_the_enterprise_manager,
    filter_on_the_work_email_value_finds_the_user_case_insensitively,
    filter_with_and_requires_both_conditions,
    group_patch_is_204_and_200_with_the_resource_when_attributes_are_asked,
);
