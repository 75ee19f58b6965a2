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

crate::on_both_backends!(
    a_user_lists_their_sessions_and_ends_one_of_their_own_only,
    an_admin_ends_a_members_sessions_on_every_instance,
);
