//! The IdP and the team model agreeing (issue 10). Removing, through the admin API, a member
//! whom an org's SCIM manages is refused with a 409 naming the token and the ways out;
//! `?force=true` removes them and deactivates them for SCIM, which the IdP reads back, and an
//! explicit re-activation by the IdP brings the membership back. A grant to a deactivated user
//! says why it reads all `none`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Backend, TestApp};

fn uuid_of(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// A SCIM token of `org` named as an admin names the IdP it pasted it into; returns the secret.
async fn scim_token_named(app: &TestApp, org: Uuid, name: &str) -> String {
    let created = app
        .ok(
            Method::POST,
            "/tokens",
            Some(json!({ "kind": "scim", "name": name, "org_id": org })),
        )
        .await;
    created["token_secret"].as_str().expect("secret").to_owned()
}

/// Okta's create (its SPEC test's body shape).
async fn okta_creates(app: &TestApp, okta: &str, user_name: &str) -> Uuid {
    let created = app
        .scim_as(
            okta,
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "externalId": format!("00u-{user_name}"),
                "name": { "givenName": "Ada", "familyName": "Lovelace" },
                "emails": [{ "primary": true, "value": user_name, "type": "work" }],
                "active": true,
            })),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    uuid_of(&created.body["id"])
}

/// Okta's PATCH of `active` (how it deactivates and re-activates).
async fn okta_sets_active(app: &TestApp, okta: &str, user: Uuid, active: bool) -> Value {
    let reply = app
        .scim_as(
            okta,
            Method::PATCH,
            &format!("/Users/{user}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": active } }],
            })),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

async fn is_member(app: &TestApp, org: Uuid, user: Uuid) -> bool {
    let page = app
        .ok(Method::GET, &format!("/orgs/{org}/members"), None)
        .await;
    page["members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["user"]["id"] == json!(user))
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let page = app
        .ok(Method::GET, &format!("/audit?action={action}"), None)
        .await;
    page["events"].as_array().expect("events").clone()
}

async fn scim_get(app: &TestApp, okta: &str, path: &str) -> Value {
    let reply = app.scim_as(okta, Method::GET, path, None, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

async fn force_removal_round_trip_is_seen_through_scim(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app.org_id;
    // The app already has a live SCIM token ("test") of this org that never wrote the person:
    // the refusal must name the one that did.
    let okta = scim_token_named(&app, org, "Okta").await;
    let ada = okta_creates(&app, &okta, "ada@acme.test").await;
    let group = app
        .scim_as(
            &okta,
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Engineering",
                "members": [{ "value": ada }],
            })),
            &[],
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    let group = uuid_of(&group.body["id"]);
    let remove = format!("/orgs/{org}/members/{ada}");

    // Refused, in the one error shape, naming the token and every way out.
    let refused = app.admin(Method::DELETE, &remove, None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(
        refused.body["error"]["code"], "conflict",
        "{}",
        refused.text
    );
    let message = refused.body["error"]["message"].as_str().expect("message");
    for part in [
        "managed by SCIM token 'Okta'; remove the user in the IdP, or release them from SCIM first",
        &format!("/api/v1/users/{ada}/scim-release"),
        "?force=true",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
    assert!(!message.contains("'test'"), "{message}");
    // Nothing changed: still a member, still active and in the group for the IdP.
    assert!(is_member(&app, org, ada).await);
    let seen = scim_get(&app, &okta, &format!("/Users/{ada}")).await;
    assert_eq!(seen["active"], true, "{seen}");
    let version_before = seen["meta"]["version"].clone();
    let members = scim_get(&app, &okta, &format!("/Groups/{group}")).await;
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1));
    assert!(audit(&app, "membership.remove").await.is_empty());

    // A malformed or unknown query parameter is a 4xx in the JSON error shape, and removes
    // nothing.
    for (bad, field) in [("force=maybe", "force"), ("forse=true", "forse")] {
        let reply = app
            .admin(Method::DELETE, &format!("{remove}?{bad}"), None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            reply.text
        );
        assert_eq!(
            reply.body["error"]["code"], "validation_failed",
            "{}",
            reply.text
        );
        assert_eq!(
            reply.body["error"]["fields"][0]["field"], field,
            "{}",
            reply.text
        );
    }
    assert!(is_member(&app, org, ada).await);

    // Forced: removed, audited, and the IdP's next GET sees the person deactivated.
    let forced = app
        .admin(Method::DELETE, &format!("{remove}?force=true"), None)
        .await;
    assert_eq!(forced.status, StatusCode::NO_CONTENT, "{}", forced.text);
    assert!(!is_member(&app, org, ada).await);
    let events = audit(&app, "membership.remove").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor_kind"], "admin_token");
    assert_eq!(events[0]["target_id"], json!(ada));
    assert_eq!(events[0]["after"]["forced"], true, "{}", events[0]);
    assert_eq!(events[0]["after"]["scim"]["deactivated"], true);
    assert_eq!(events[0]["after"]["scim"]["groups_left"], 1);

    let seen = scim_get(&app, &okta, &format!("/Users/{ada}")).await;
    assert_eq!(seen["active"], false, "{seen}");
    assert_ne!(seen["meta"]["version"], version_before, "the ETag moves");
    // Okta and Entra look people up by filter; the deactivation answers filters too.
    let found = scim_get(
        &app,
        &okta,
        "/Users?filter=userName%20eq%20%22ada@acme.test%22%20and%20active%20eq%20false",
    )
    .await;
    assert_eq!(found["totalResults"], 1, "{found}");
    let members = scim_get(&app, &okta, &format!("/Groups/{group}")).await;
    assert!(
        members["members"].as_array().is_none_or(Vec::is_empty),
        "{members}"
    );

    // The IdP still assigns them and re-activates: that is explicit, and wins.
    let back = okta_sets_active(&app, &okta, ada, true).await;
    assert_eq!(back["active"], true, "{back}");
    assert!(
        is_member(&app, org, ada).await,
        "re-activation restores the membership"
    );
    let reactivated = audit(&app, "scim.user.reactivate").await;
    assert_eq!(reactivated.len(), 1, "{reactivated:?}");
    assert_eq!(reactivated[0]["after"]["membership_restored"], true);
    // And the refusal holds again for the restored membership.
    let again = app.admin(Method::DELETE, &remove, None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
}

async fn members_no_scim_of_the_org_manages_are_removed_without_force(backend: Backend) {
    let app = TestApp::new(backend).await;
    let root = app.org_id;
    let sub = uuid_of(&json!(app.sub_org(&root.to_string(), "Payments").await));

    // An admin-added member: removed as before.
    let bob = uuid_of(&json!(app.user("bob@acme.test").await));
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{bob}"),
        Some(json!({ "role": null })),
    )
    .await;
    let removed = app
        .admin(Method::DELETE, &format!("/orgs/{root}/members/{bob}"), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert!(!is_member(&app, root, bob).await);

    // A person the root's SCIM manages, whom an admin also added to a sub-org: the sub-org's
    // membership is the admin's, not the IdP's. `force` on it is harmless: nothing is
    // deactivated.
    let okta = scim_token_named(&app, root, "Okta").await;
    let ada = okta_creates(&app, &okta, "ada@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{sub}/members/{ada}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    let removed = app
        .admin(
            Method::DELETE,
            &format!("/orgs/{sub}/members/{ada}?force=true"),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let seen = scim_get(&app, &okta, &format!("/Users/{ada}")).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert!(is_member(&app, root, ada).await);
    let events = audit(&app, "membership.remove").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events.iter().all(|e| e["after"].get("forced").is_none()),
        "{events:?}"
    );
}

async fn granting_access_to_a_scim_deactivated_user_warns(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app.org_id;
    let okta = scim_token_named(&app, org, "Okta").await;
    let ada = okta_creates(&app, &okta, "ada@acme.test").await;
    let grace = okta_creates(&app, &okta, "grace@acme.test").await;
    okta_sets_active(&app, &okta, ada, false).await;
    let product = app.product(&org.to_string()).await;
    let product = uuid_of(&product["id"]);
    let grant = json!({ "permission_groups": [], "role": "editor" });

    let inactive = app
        .ok(
            Method::PUT,
            &format!("/products/{product}/members/{ada}"),
            Some(grant.clone()),
        )
        .await;
    assert_eq!(inactive["product_id"], json!(product), "{inactive}");
    let envs = inactive["environments"].as_object().expect("environments");
    assert!(
        !envs.is_empty() && envs.values().all(|a| a == "none"),
        "{inactive}"
    );
    let warnings = inactive["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{inactive}");
    assert_eq!(warnings[0]["code"], "user_inactive");
    let message = warnings[0]["message"].as_str().expect("message");
    assert!(
        message.contains("deactivated by SCIM token 'Okta' (active=false)"),
        "{message}"
    );

    // The org-membership routes that return effective permissions warn alike.
    let modules = app
        .ok(
            Method::PUT,
            &format!("/orgs/{org}/members/{ada}/modules"),
            Some(json!({ "feature_flags": "write" })),
        )
        .await;
    assert_eq!(modules["warnings"][0]["code"], "user_inactive", "{modules}");

    // An active user: no warning at all.
    let active = app
        .ok(
            Method::PUT,
            &format!("/products/{product}/members/{grace}"),
            Some(grant),
        )
        .await;
    assert!(active.get("warnings").is_none(), "{active}");
    assert!(
        active["environments"]
            .as_object()
            .expect("environments")
            .values()
            .any(|a| a != "none"),
        "{active}"
    );
    let modules = app
        .ok(
            Method::PUT,
            &format!("/orgs/{org}/members/{grace}/modules"),
            Some(json!({ "feature_flags": "write" })),
        )
        .await;
    assert!(modules.get("warnings").is_none(), "{modules}");
}

/// Entra's sync after a forced removal: it looks the user up by userName, sees `active: false`
/// where its mapping says true, and sends its capitalised `Replace` with the string `"True"`.
/// The membership comes back as with Okta.
async fn entra_resync_after_a_forced_removal_restores_the_membership(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app.org_id;
    let entra = scim_token_named(&app, org, "Entra ID").await;
    let lin = okta_creates(&app, &entra, "lin@acme.test").await;
    let refused = app
        .admin(Method::DELETE, &format!("/orgs/{org}/members/{lin}"), None)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.text.contains("managed by SCIM token 'Entra ID'"),
        "{}",
        refused.text
    );
    let forced = app
        .admin(
            Method::DELETE,
            &format!("/orgs/{org}/members/{lin}?force=true"),
            None,
        )
        .await;
    assert_eq!(forced.status, StatusCode::NO_CONTENT, "{}", forced.text);

    let found = scim_get(
        &app,
        &entra,
        "/Users?filter=userName%20eq%20%22lin@acme.test%22",
    )
    .await;
    assert_eq!(found["Resources"][0]["active"], false, "{found}");
    let reply = app
        .scim_as(
            &entra,
            Method::PATCH,
            &format!("/Users/{lin}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "Replace", "path": "active", "value": "True" }],
            })),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["active"], true, "{}", reply.text);
    assert!(is_member(&app, org, lin).await);
}

/// With several live SCIM tokens on the org, the one named is the one that wrote the person.
async fn the_refusal_names_the_token_that_wrote_the_person(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app.org_id;
    let _okta = scim_token_named(&app, org, "Okta").await;
    // Written by the app's "test" token: that is the one named, not Okta.
    let created = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "lin@acme.test",
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let lin = uuid_of(&created.body["id"]);
    let refused = app
        .admin(Method::DELETE, &format!("/orgs/{org}/members/{lin}"), None)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let message = refused.body["error"]["message"].as_str().expect("message");
    assert!(message.contains("SCIM token 'test'"), "{message}");
    assert!(!message.contains("Okta"), "{message}");
}

crate::on_both_backends!(
    force_removal_round_trip_is_seen_through_scim,
    members_no_scim_of_the_org_manages_are_removed_without_force,
    granting_access_to_a_scim_deactivated_user_warns,
    the_refusal_names_the_token_that_wrote_the_person,
    entra_resync_after_a_forced_removal_restores_the_membership,
);

/// The OpenAPI document says all of it: the `force` parameter and the 409 on the removal, and
/// `warnings` on the responses of the routes that grant.
#[tokio::test]
async fn the_document_describes_force_and_warnings() {
    let app = TestApp::new(Backend::Sqlite).await;
    let reply = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.body;
    let remove = &doc["paths"]["/api/v1/orgs/{org_id}/members/{user_id}"]["delete"];
    let force = remove["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "force")
        .unwrap_or_else(|| panic!("no force parameter: {remove}"));
    assert_eq!(force["in"], "query");
    assert_eq!(force["schema"]["type"], "boolean");
    let conflict = remove["responses"]["409"]["description"]
        .as_str()
        .expect("409");
    assert!(conflict.contains("scim_managed"), "{conflict}");
    let description = remove["description"].as_str().expect("description");
    for part in [
        "force=true",
        "active: false",
        "re-activation",
        "membership.remove",
    ] {
        assert!(
            description.contains(part),
            "{part:?} missing from {description}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let access = &schemas["AccessChange"]["allOf"];
    assert_eq!(
        access[0]["$ref"],
        "#/components/schemas/EffectivePermissions"
    );
    assert_eq!(
        access[1]["properties"]["warnings"]["items"]["$ref"],
        "#/components/schemas/Warning"
    );
    assert_eq!(
        schemas["MemberChange"]["properties"]["warnings"]["items"]["$ref"],
        "#/components/schemas/Warning"
    );
    assert!(
        schemas["Warning"]["properties"]["code"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("user_inactive"))
    );
}
