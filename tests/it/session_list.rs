//! A user's own sessions (`/me/sessions`: listed, one ended) and an administrator ending a
//! member's sessions (`/orgs/{org}/members/{user}/sessions`): reach, the user's right, CSRF,
//! audit, and the end seen by every instance.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::COOKIE;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use rolegate::domain::session::hash_secret;
use rolegate::session::{self, NewSession, SignInMethod};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Backend, TestApp};
use crate::session::session_cookie;
use crate::session_caller::as_user;
use crate::session_signin::{COOKIE_NAME, app_with_sink};

/// Signs `user` in (as a sign-in page does, with a user agent); returns the session's secret.
pub(crate) async fn signed_in(app: &TestApp, user: &str) -> String {
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", "Firefox/140".parse().expect("header"));
    let started = session::start(
        &app.state,
        &headers,
        NewSession {
            user_id: user.parse().expect("uuid"),
            method: SignInMethod::EmailLink,
            id_token: None,
        },
    )
    .await
    .expect("session")
    .redirect_to("/console/");
    session_cookie(started.headers(), COOKIE_NAME).expect("session cookie")
}

async fn member(app: &TestApp, org: &str, email: &str, role: &str) -> String {
    let user = app.user(email).await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{org}/members/{user}"),
        Some(json!({ "role": role })),
    )
    .await;
    user
}

fn ids(list: &Value) -> Vec<&str> {
    list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect()
}

async fn a_user_lists_their_sessions_and_ends_one_of_their_own_only(backend: Backend) {
    let (app, _sink) = app_with_sink(backend).await;
    let org = app.org_id.to_string();
    let dev = member(&app, &org, "dev@acme.test", "member").await;
    let other = member(&app, &org, "other@acme.test", "member").await;
    let laptop = signed_in(&app, &dev).await;
    let phone = signed_in(&app, &dev).await;
    let others = signed_in(&app, &other).await;

    let listed = as_user(
        &app,
        &laptop,
        Method::GET,
        "/me/sessions",
        None,
        false,
        false,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let sessions = listed.body["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{}", listed.text);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "exactly one is the current one");
    for s in sessions {
        assert_eq!(s["method"], "email_link");
        assert_eq!(s["user_agent"], "Firefox/140");
        for field in [
            "created_at",
            "last_seen_at",
            "idle_expires_at",
            "expires_at",
        ] {
            assert!(s[field].is_string(), "{field} in {s}");
        }
    }
    let current_id = current[0]["id"].as_str().expect("id").to_owned();
    let phone_id = ids(&listed.body)
        .into_iter()
        .find(|id| *id != current_id)
        .expect("the other session")
        .to_owned();

    // Another user's session id names nothing; without the CSRF proof nothing happens.
    let others_list = as_user(
        &app,
        &others,
        Method::GET,
        "/me/sessions",
        None,
        false,
        false,
    )
    .await;
    let others_id = ids(&others_list.body)[0].to_owned();
    let foreign = as_user(
        &app,
        &laptop,
        Method::DELETE,
        &format!("/me/sessions/{others_id}"),
        None,
        true,
        true,
    )
    .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    assert!(
        foreign.body["error"]["code"].is_string(),
        "{}",
        foreign.text
    );
    let no_csrf = as_user(
        &app,
        &laptop,
        Method::DELETE,
        &format!("/me/sessions/{phone_id}"),
        None,
        true,
        false,
    )
    .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN, "{}", no_csrf.text);
    assert!(app.state.sessions.check(&hash_secret(&phone)).await.is_ok());

    let ended = as_user(
        &app,
        &laptop,
        Method::DELETE,
        &format!("/me/sessions/{phone_id}"),
        None,
        true,
        true,
    )
    .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.text);
    assert_eq!(ended.body["end_reason"], "ended_by_user");
    assert!(
        app.state
            .sessions
            .check(&hash_secret(&phone))
            .await
            .is_err(),
        "the ended session is refused"
    );
    let phone_call = as_user(
        &app,
        &phone,
        Method::GET,
        "/me/sessions",
        None,
        false,
        false,
    )
    .await;
    assert_eq!(phone_call.status, StatusCode::UNAUTHORIZED);
    let left = as_user(
        &app,
        &laptop,
        Method::GET,
        "/me/sessions",
        None,
        false,
        false,
    )
    .await;
    assert_eq!(ids(&left.body), vec![current_id.as_str()]);
    assert!(
        app.state
            .sessions
            .check(&hash_secret(&others))
            .await
            .is_ok()
    );
    let audit = app.ok(Method::GET, "/audit?action=session.end", None).await;
    let event = &audit["events"][0];
    assert_eq!(event["actor_kind"], "user", "{audit}");
    assert_eq!(event["after"]["end_reason"], "ended_by_user", "{audit}");

    // Tokens have no sessions.
    for (method, path) in [
        (Method::GET, "/me/sessions".to_owned()),
        (Method::DELETE, format!("/me/sessions/{current_id}")),
    ] {
        let refused = app.admin(method, &path, None).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.text
        );
        assert_eq!(refused.body["error"]["code"], "forbidden");
    }
}

/// The sessions of a member end through instance A; B refuses them too, by its cached check
/// and over HTTP.
async fn an_admin_ends_a_members_sessions_on_every_instance(backend: Backend) {
    let (app, _sink) = app_with_sink(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let search = app.sub_org(&root, "Search").await;
    let dev = member(&app, &payments, "dev@acme.test", "member").await;
    let lead = member(&app, &payments, "lead@acme.test", "owner").await;
    let rival = member(&app, &search, "rival@acme.test", "owner").await;
    let dev_member = signed_in(&app, &dev).await;
    let path = format!("/orgs/{payments}/members/{dev}/sessions");

    // A sibling org's Owner, by its own org's path or this one's: not found.
    let rival_session = signed_in(&app, &rival).await;
    for p in [&path, &format!("/orgs/{search}/members/{dev}/sessions")] {
        let refused = as_user(&app, &rival_session, Method::DELETE, p, None, true, true).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{p}: {}",
            refused.text
        );
    }
    // A member may not sign a colleague out.
    let colleague = member(&app, &payments, "peer@acme.test", "member").await;
    let colleague = signed_in(&app, &colleague).await;
    let refused = as_user(&app, &colleague, Method::DELETE, &path, None, true, true).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    // A sibling org's admin token: not found either.
    let sibling_token = app
        .token(
            search.parse().expect("uuid"),
            rolegate::domain::token::TokenKind::Admin,
        )
        .await;
    let refused = app
        .call(
            Method::DELETE,
            &format!("/api/v1{path}"),
            Some(&sibling_token),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);

    let hash = hash_secret(&dev_member);
    let other = app.second_instance().await;
    assert!(
        other.state.sessions.check(&hash).await.is_ok(),
        "cached on B"
    );

    // The org's Owner ends them (cookie-authenticated, with the CSRF proof).
    let owner = signed_in(&app, &lead).await;
    let started = std::time::Instant::now();
    let done = as_user(&app, &owner, Method::DELETE, &path, None, true, true).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.body["ended"], 1);
    assert!(
        app.state.sessions.check(&hash).await.is_err(),
        "refused on A"
    );
    loop {
        if other.state.sessions.check(&hash).await.is_err() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B still accepts the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And over HTTP on B (its own cookie name: B serves the loopback `http://` start).
    let on_b = tower::ServiceExt::oneshot(
        other.router.clone(),
        Request::builder()
            .uri("/api/v1/me/sessions")
            .header(COOKIE, format!("rolegate_session={dev_member}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .expect("response");
    assert_eq!(on_b.status(), StatusCode::UNAUTHORIZED);
    let audit = app.ok(Method::GET, "/audit?action=session.end", None).await;
    let event = &audit["events"][0];
    assert_eq!(event["target_id"], dev.as_str(), "{audit}");
    assert_eq!(event["after"]["reason"], "ended_by_admin", "{audit}");
    assert_eq!(event["actor_kind"], "user", "{audit}");

    // The root token reaches every member; a person who is no member of the org is not found.
    let again = signed_in(&app, &dev).await;
    let by_token = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(by_token.body["ended"], 1, "{}", by_token.text);
    assert!(
        app.state
            .sessions
            .check(&hash_secret(&again))
            .await
            .is_err()
    );
    let stranger: Uuid = app.user("stranger@acme.test").await.parse().expect("uuid");
    let none = app
        .admin(
            Method::DELETE,
            &format!("/orgs/{payments}/members/{stranger}/sessions"),
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.text);
}

/// An admin token a signed-in Owner mints records them and lives as long as asked — while they
/// stay an Owner of its org. A role change or a removal revokes it in the same write (audited
/// with the reason); the operator's token, and the SCIM and service tokens the Owner minted,
/// belong to the org and survive.
async fn admin_tokens_a_user_minted_go_when_they_stop_being_an_owner(backend: Backend) {
    let (app, _sink) = app_with_sink(backend).await;
    let root = app.org_id.to_string();
    let payments = app.sub_org(&root, "Payments").await;
    let lead = member(&app, &payments, "lead@acme.test", "owner").await;
    let second = member(&app, &payments, "second@acme.test", "owner").await;
    let operators = app
        .token(
            payments.parse().expect("uuid"),
            rolegate::domain::token::TokenKind::Admin,
        )
        .await;
    let mint = |secret: String, kind: &'static str| {
        let app = &app;
        let payments = payments.clone();
        async move {
            let reply = as_user(
                app,
                &secret,
                Method::POST,
                "/tokens",
                Some(json!({ "kind": kind, "org_id": payments, "expires_in_days": 365 })),
                true,
                true,
            )
            .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            reply.body
        }
    };
    let lead_session = signed_in(&app, &lead).await;
    let minted = mint(lead_session.clone(), "admin").await;
    let service = mint(lead_session.clone(), "service").await;
    let scim = mint(lead_session.clone(), "scim").await;
    assert_eq!(minted["created_by_user_id"], lead.as_str());
    let expires: chrono::DateTime<chrono::Utc> = minted["expires_at"]
        .as_str()
        .expect("expiry")
        .parse()
        .expect("time");
    assert!(
        expires > chrono::Utc::now() + chrono::Duration::days(364),
        "the requested expiry, not the session's: {expires}"
    );
    let secret = minted["token_secret"].as_str().expect("secret").to_owned();
    let org_path = format!("/api/v1/orgs/{payments}");
    assert_eq!(app.get(&org_path, &secret).await.status, StatusCode::OK);

    // The lead becomes a plain member: their admin token goes in the same write.
    app.ok(
        Method::PUT,
        &format!("/orgs/{payments}/members/{lead}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    let refused = app.get(&org_path, &secret).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert_eq!(app.get(&org_path, &operators).await.status, StatusCode::OK);
    let listed = app
        .ok(Method::GET, &format!("/tokens?org_id={payments}"), None)
        .await;
    let revoked = |id: &Value| {
        listed["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .find(|t| t["id"] == *id)
            .map(|t| !t["revoked_at"].is_null())
            .expect("listed")
    };
    assert!(revoked(&minted["id"]));
    assert!(!revoked(&service["id"]), "service tokens belong to the org");
    assert!(!revoked(&scim["id"]), "SCIM tokens belong to the org");
    let audit = app
        .ok(Method::GET, "/audit?action=token.revoke", None)
        .await;
    let event = &audit["events"][0];
    assert_eq!(event["target_id"], minted["id"], "{audit}");
    assert!(
        event["after"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("creator_not_owner")),
        "{audit}"
    );
    assert_eq!(event["actor_kind"], "admin_token", "{audit}");

    // Removal from the org does the same.
    let second_session = signed_in(&app, &second).await;
    let minted = mint(second_session, "admin").await;
    let secret = minted["token_secret"].as_str().expect("secret").to_owned();
    assert_eq!(app.get(&org_path, &secret).await.status, StatusCode::OK);
    let removed = app
        .admin(
            Method::DELETE,
            &format!("/orgs/{payments}/members/{second}"),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert_eq!(
        app.get(&org_path, &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get(&org_path, &operators).await.status, StatusCode::OK);
}

/// A mapping that made a person an Owner goes: the admin token they minted as that Owner goes
/// with it; SCIM deactivation of another Owner does the same to theirs.
async fn a_mapped_owners_token_goes_with_the_mapping_and_with_deactivation(backend: Backend) {
    let (app, _sink) = app_with_sink(backend).await;
    let root = app.org_id.to_string();
    let create = |email: &'static str| {
        let app = &app;
        async move {
            let created = app
                .scim(
                    Method::POST,
                    "/Users",
                    Some(json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": email,
                        "emails": [{ "value": email, "primary": true }],
                    })),
                )
                .await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
            created.body["id"].as_str().expect("id").to_owned()
        }
    };
    let mapped = create("mapped@acme.test").await;
    let owner = create("boss@acme.test").await;
    let group = app
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "admins",
                "members": [{ "value": mapped }],
            })),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{mapped}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{root}/members/{owner}"),
        Some(json!({ "role": "owner" })),
    )
    .await;
    let mapping = |rules: Value| json!({ "version": 1, "rules": rules });
    let put = app
        .admin(
            Method::PUT,
            &format!("/orgs/{root}/mappings"),
            Some(mapping(json!([{ "name": "admins", "idp_group": "admins",
                "grants": [{ "org": root, "org_role": "owner" }] }]))),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.text);
    let mint = |user: String| {
        let app = &app;
        let root = root.clone();
        async move {
            let session = signed_in(app, &user).await;
            let reply = as_user(
                app,
                &session,
                Method::POST,
                "/tokens",
                Some(json!({ "kind": "admin", "org_id": root })),
                true,
                true,
            )
            .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            reply.body["token_secret"]
                .as_str()
                .expect("secret")
                .to_owned()
        }
    };
    let by_mapping = mint(mapped.clone()).await;
    let by_owner = mint(owner.clone()).await;
    let org_path = format!("/api/v1/orgs/{root}");
    assert_eq!(app.get(&org_path, &by_mapping).await.status, StatusCode::OK);

    let put = app
        .admin(
            Method::PUT,
            &format!("/orgs/{root}/mappings"),
            Some(mapping(json!([]))),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.text);
    assert_eq!(
        app.get(&org_path, &by_mapping).await.status,
        StatusCode::UNAUTHORIZED,
        "the mapped Owner's token went with the mapping"
    );
    assert_eq!(app.get(&org_path, &by_owner).await.status, StatusCode::OK);

    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Users/{owner}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }]
            })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        app.get(&org_path, &by_owner).await.status,
        StatusCode::UNAUTHORIZED,
        "deactivated: their token went"
    );
    assert_eq!(
        app.get(&org_path, &app.admin_token).await.status,
        StatusCode::OK
    );
}

crate::on_both_backends!(
    a_user_lists_their_sessions_and_ends_one_of_their_own_only,
    an_admin_ends_a_members_sessions_on_every_instance,
    admin_tokens_a_user_minted_go_when_they_stop_being_an_owner,
    a_mapped_owners_token_goes_with_the_mapping_and_with_deactivation,
);
