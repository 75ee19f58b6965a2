//! The signed-in user as an `/api/v1` caller: reach (their membership subtree, 404 beyond),
//! each route's requirement asked of the cached resolver (403 when within reach but not
//! allowed), CSRF protection of cookie-authenticated writes, and `/me`.

use axum::body::Body;
use axum::http::header::COOKIE;
use axum::http::{Method, Request, StatusCode};
use rolegate::domain::session::csrf_token;
use serde_json::{Value, json};

use crate::common::http::Reply;
use crate::common::{Backend, TestApp};
use crate::session_signin::{COOKIE_NAME, ORIGIN, app_with_sink, signed_in_by_mail};
use rolegate::domain::token::TokenKind;

/// A cookie-authenticated call; `origin` and `csrf` say which protections it carries.
pub(crate) async fn as_user(
    app: &TestApp,
    secret: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    origin: bool,
    csrf: bool,
) -> Reply {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"))
        .header(COOKIE, format!("{COOKIE_NAME}={secret}"));
    if origin {
        builder = builder.header("origin", ORIGIN);
    }
    if csrf {
        builder = builder.header("x-csrf-token", csrf_token(secret));
    }
    let request = match body {
        Some(b) => builder
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request");
    app.send(request).await
}

async fn a_member_is_refused_member_changes_an_owner_is_not(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let org = app.org_id.to_string();
    let member = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/members/{member}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    let target = app.user("new@acme.test").await;
    let change = |role: &str| json!({ "role": role });
    let path = format!("/orgs/{org}/members/{target}");

    let dev = signed_in_by_mail(&app, &sink, "dev@acme.test").await;
    let read = as_user(
        &app,
        &dev,
        Method::GET,
        &format!("/orgs/{org}/members"),
        None,
        false,
        false,
    )
    .await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "members read the team: {}",
        read.text
    );
    let refused = as_user(
        &app,
        &dev,
        Method::PUT,
        &path,
        Some(change("member")),
        true,
        true,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(
        refused.body["error"]["code"].is_string(),
        "one error shape: {}",
        refused.text
    );

    let owner = signed_in_by_mail(&app, &sink, "owner@acme.test").await;
    let no_origin = as_user(
        &app,
        &owner,
        Method::PUT,
        &path,
        Some(change("member")),
        false,
        true,
    )
    .await;
    assert_eq!(
        no_origin.status,
        StatusCode::FORBIDDEN,
        "no Origin: {}",
        no_origin.text
    );
    let no_token = as_user(
        &app,
        &owner,
        Method::PUT,
        &path,
        Some(change("member")),
        true,
        false,
    )
    .await;
    assert_eq!(
        no_token.status,
        StatusCode::FORBIDDEN,
        "no CSRF token: {}",
        no_token.text
    );
    let done = as_user(
        &app,
        &owner,
        Method::PUT,
        &path,
        Some(change("member")),
        true,
        true,
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // The change is audited as the user.
    let audit = app
        .ok(Method::GET, "/audit?action=membership.set_role", None)
        .await;
    let actors: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["actor_kind"].as_str())
        .collect();
    assert!(actors.contains(&"user"), "{audit}");
    // Tokens work as before; `/me` is a person's, not a token's.
    assert_eq!(
        app.admin(Method::GET, &format!("/orgs/{org}"), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.admin(Method::GET, "/me", None).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn a_user_reaches_only_their_membership_subtree(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let root = app.org_id.to_string();
    let mine = app.sub_org(&root, "Payments").await;
    let below = app.sub_org(&mine, "Payments EU").await;
    let sibling = app.sub_org(&root, "Search").await;
    let user = app.user("lead@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{mine}/members/{user}"),
        Some(json!({ "role": "owner" })),
    )
    .await;
    let product = app.product(&mine).await;
    let secret = signed_in_by_mail(&app, &sink, "lead@acme.test").await;
    for (org, status) in [
        (&mine, StatusCode::OK),
        (&below, StatusCode::OK),
        (&sibling, StatusCode::NOT_FOUND),
        (&root, StatusCode::NOT_FOUND),
    ] {
        let reply = as_user(
            &app,
            &secret,
            Method::GET,
            &format!("/orgs/{org}"),
            None,
            false,
            false,
        )
        .await;
        assert_eq!(reply.status, status, "GET /orgs/{org}: {}", reply.text);
        let write = as_user(
            &app,
            &secret,
            Method::PUT,
            &format!("/orgs/{org}/settings"),
            Some(json!({ "require_sso": false })),
            true,
            true,
        )
        .await;
        assert_eq!(
            write.status, status,
            "PUT settings of {org}: {}",
            write.text
        );
    }
    let listed = as_user(&app, &secret, Method::GET, "/orgs", None, false, false).await;
    let ids: Vec<&str> = listed.body["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&mine.as_str()) && ids.contains(&below.as_str()));

    let me = as_user(&app, &secret, Method::GET, "/me", None, false, false).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["user"]["email"], "lead@acme.test");
    let roles: Vec<(&str, &str)> = me.body["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .map(|o| {
            (
                o["org_id"].as_str().expect("id"),
                o["role"].as_str().expect("role"),
            )
        })
        .collect();
    assert!(roles.contains(&(mine.as_str(), "owner")), "{roles:?}");
    let product_id = product["id"].as_str().expect("id");
    let filtered = as_user(
        &app,
        &secret,
        Method::GET,
        &format!("/me?product={product_id}&explain=1"),
        None,
        false,
        false,
    )
    .await;
    let permissions = filtered.body["permissions"]
        .as_array()
        .expect("permissions");
    assert_eq!(permissions.len(), 1, "{}", filtered.text);
    assert_eq!(permissions[0]["permissions"]["org_owner"], true);
    assert!(
        permissions[0]["explanation"].is_object(),
        "{}",
        filtered.text
    );
}

crate::on_both_backends!(
    a_member_is_refused_member_changes_an_owner_is_not,
    a_user_reaches_only_their_membership_subtree,
    managing_members_is_not_ownership_and_a_person_is_reached_whole,
);

/// The user id of `email`, as the root's admin token finds it.
async fn user_id(app: &TestApp, email: &str) -> String {
    let found = app
        .ok(Method::GET, &format!("/users?search={email}"), None)
        .await;
    found["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == json!(email) || u["user_name"] == json!(email))
        .and_then(|u| u["id"].as_str())
        .unwrap_or_else(|| panic!("{email} in {found}"))
        .to_owned()
}

/// `manage_members` is not the right to give (or take) the Owner role; a sub-org's caller — a
/// manager signed in, or its admin token — cannot enlist, re-role or sign out a person who
/// also belongs above it (the root's Owner); and the reads kept for Owners or auditors stay
/// closed to a plain member, `HEAD` included.
async fn managing_members_is_not_ownership_and_a_person_is_reached_whole(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let root = app.org_id.to_string();
    let sub = app.sub_org(&root, "Europe").await;
    let manager = app.user("lead@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{sub}/members/{manager}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{sub}/members/{manager}/modules"),
        Some(json!({ "members": "write" })),
    )
    .await;
    let lead = signed_in_by_mail(&app, &sink, "lead@acme.test").await;
    let put = |path: String, role: &str| {
        let body = json!({ "role": role });
        let lead = lead.clone();
        let app = &app;
        async move { as_user(app, &lead, Method::PUT, &path, Some(body), true, true).await }
    };

    // Managing members lets the lead add and re-role people of the sub-org…
    let colleague = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{sub}/members/{colleague}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    let fine = put(format!("/orgs/{sub}/members/{colleague}"), "member").await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text);
    // …but not make anyone an Owner, themselves least of all.
    let to_owner = put(format!("/orgs/{sub}/members/{manager}"), "owner").await;
    assert_eq!(to_owner.status, StatusCode::FORBIDDEN, "{}", to_owner.text);
    let members = app
        .ok(Method::GET, &format!("/orgs/{sub}/members"), None)
        .await;
    let lead_row = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user"]["email"] == json!("lead@acme.test"))
        .expect("the lead");
    assert_eq!(lead_row["membership_role"], json!("member"), "{members}");

    // The root's Owner is out of the sub-org's reach, whether or not a member of it.
    let root_owner = user_id(&app, "owner@acme.test").await;
    let enlist = put(format!("/orgs/{sub}/members/{root_owner}"), "member").await;
    assert_eq!(enlist.status, StatusCode::NOT_FOUND, "{}", enlist.text);
    let sub_token = app
        .token(sub.parse().expect("uuid"), TokenKind::Admin)
        .await;
    let by_token = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{sub}/members/{root_owner}"),
            Some(&sub_token),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(by_token.status, StatusCode::NOT_FOUND, "{}", by_token.text);
    // The root adds its Owner to the sub-org; the sub-org still cannot sign them out.
    app.ok(
        Method::PUT,
        &format!("/orgs/{sub}/members/{root_owner}"),
        Some(json!({ "role": null })),
    )
    .await;
    let owner_session = signed_in_by_mail(&app, &sink, "owner@acme.test").await;
    let sessions = format!("/orgs/{sub}/members/{root_owner}/sessions");
    let sign_out = as_user(&app, &lead, Method::DELETE, &sessions, None, true, true).await;
    assert_eq!(sign_out.status, StatusCode::NOT_FOUND, "{}", sign_out.text);
    let by_token = app
        .call(
            Method::DELETE,
            &format!("/api/v1{sessions}"),
            Some(&sub_token),
            None,
        )
        .await;
    assert_eq!(by_token.status, StatusCode::NOT_FOUND, "{}", by_token.text);
    let me = as_user(&app, &owner_session, Method::GET, "/me", None, false, false).await;
    assert_eq!(me.status, StatusCode::OK, "still signed in: {}", me.text);
    let re_role = put(format!("/orgs/{sub}/members/{root_owner}"), "member").await;
    assert_eq!(re_role.status, StatusCode::NOT_FOUND, "{}", re_role.text);

    // A plain member reads the team, not the audit logs, connections or token errors.
    let dev = signed_in_by_mail(&app, &sink, "dev@acme.test").await;
    let product = app.product(&sub).await;
    let product = product["id"].as_str().expect("id");
    for (method, path) in [
        (Method::GET, format!("/products/{product}/audit")),
        (Method::HEAD, "/audit".to_owned()),
        (Method::GET, format!("/orgs/{sub}/oidc-connections")),
    ] {
        let refused = as_user(&app, &dev, method.clone(), &path, None, false, false).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let team = as_user(
        &app,
        &dev,
        Method::GET,
        &format!("/orgs/{sub}/members"),
        None,
        false,
        false,
    )
    .await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.text);
}
