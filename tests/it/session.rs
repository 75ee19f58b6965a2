//! Sessions: the cookie (name and flags by the public URL), rotation at sign-in, idle and
//! absolute expiry, ending by OpenID back-channel logout — through `session::start` and the
//! cached check every request makes.

use std::time::Duration;

use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use rolegate::authz::sessions::SessionRefusal;
use rolegate::config::ServeArgs;
use rolegate::domain::session::{SessionRejection, hash_secret};
use rolegate::session::{self, NewSession, SignInMethod};
use uuid::Uuid;

use crate::common::{Backend, TestApp};

/// The session id in a sign-in response's cookies, under `name`.
pub fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let rest = v.strip_prefix(name)?.strip_prefix('=')?;
        Some(rest.split(';').next()?.to_owned())
    })
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

async fn owner(app: &TestApp) -> Uuid {
    app.user("owner@acme.test").await.parse().expect("uuid")
}

async fn sign_in(app: &TestApp, headers: &HeaderMap, user: Uuid) -> axum::response::Response {
    session::start(
        &app.state,
        headers,
        NewSession {
            user_id: user,
            method: SignInMethod::EmailLink,
            id_token: None,
        },
    )
    .await
    .expect("session")
    .redirect_to("/console/")
}

/// The live session a cookie's secret names, checked the way every request checks it.
pub async fn session_of(
    app: &TestApp,
    secret: &str,
) -> Result<std::sync::Arc<rolegate::domain::session::Session>, SessionRefusal> {
    app.state.sessions.check(&hash_secret(secret)).await
}

async fn check(app: &TestApp, secret: &str) -> Result<Uuid, SessionRefusal> {
    session_of(app, secret).await.map(|s| s.user_id)
}

async fn cookie_flags_follow_the_public_url(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.public_url = Some("https://rolegate.acme.example/".parse().expect("url"));
    let app = TestApp::with_config(backend, config).await;
    let user = owner(&app).await;
    let response = sign_in(&app, &HeaderMap::new(), user).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/console/");
    let cookies = set_cookies(response.headers());
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-rolegate_session="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    for flag in ["; Secure", "; HttpOnly", "; SameSite=Lax", "; Path=/"] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    assert!(!session.contains("Domain"), "{session}");
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("rolegate_csrf="))
        .expect("csrf cookie");
    assert!(
        !csrf.contains("HttpOnly") && csrf.contains("; Secure"),
        "{csrf}"
    );
    let secret = session_cookie(response.headers(), "__Host-rolegate_session").expect("id");
    assert_eq!(check(&app, &secret).await.expect("live"), user);

    // The one-command start: plain http on loopback.
    let plain = TestApp::new(backend).await;
    let user = owner(&plain).await;
    let response = sign_in(&plain, &HeaderMap::new(), user).await;
    let cookies = set_cookies(response.headers());
    let session = cookies
        .iter()
        .find(|c| c.starts_with("rolegate_session="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(!session.contains("Secure"), "{session}");
    assert!(session.contains("; HttpOnly") && session.contains("; SameSite=Lax"));
    assert!(!cookies.iter().any(|c| c.starts_with("__Host-")));
}

async fn sign_in_rotates_the_session_the_browser_carried(backend: Backend) {
    let app = TestApp::new(backend).await;
    let user = owner(&app).await;
    let first = sign_in(&app, &HeaderMap::new(), user).await;
    let old = session_cookie(first.headers(), "rolegate_session").expect("id");
    assert!(check(&app, &old).await.is_ok());
    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        HeaderValue::from_str(&format!("other=1; rolegate_session={old}")).expect("header"),
    );
    let second = sign_in(&app, &headers, user).await;
    let new = session_cookie(second.headers(), "rolegate_session").expect("id");
    assert_ne!(old, new, "a sign-in never keeps the id it was given");
    assert!(
        matches!(
            check(&app, &old).await,
            Err(SessionRefusal::Rejected(SessionRejection::Ended))
        ),
        "the carried session ended"
    );
    assert_eq!(check(&app, &new).await.expect("live"), user);
    let live = app
        .store
        .list_sessions(app.org_id, user)
        .await
        .expect("list");
    assert_eq!(live.len(), 1);
    assert!(matches!(
        check(&app, "made-up").await,
        Err(SessionRefusal::Unknown)
    ));
}

async fn idle_and_absolute_timeouts_end_sessions(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.session_idle_timeout = 1;
    config.session_max_age = 3;
    let app = TestApp::with_config(backend, config).await;
    let user = owner(&app).await;
    // Idle: unused for over a second.
    let idle = sign_in(&app, &HeaderMap::new(), user).await;
    let idle = session_cookie(idle.headers(), "rolegate_session").expect("id");
    // Absolute: used every 400 ms, still ended after three seconds.
    let busy = sign_in(&app, &HeaderMap::new(), user).await;
    let busy = session_cookie(busy.headers(), "rolegate_session").expect("id");
    let started = std::time::Instant::now();
    let mut idle_seen = false;
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let elapsed = started.elapsed();
        if !idle_seen && elapsed > Duration::from_millis(1100) {
            assert!(
                matches!(
                    check(&app, &idle).await,
                    Err(SessionRefusal::Rejected(SessionRejection::IdleExpired))
                ),
                "unused for over the idle timeout"
            );
            idle_seen = true;
        }
        match check(&app, &busy).await {
            Ok(_) => assert!(
                elapsed < Duration::from_millis(3100),
                "alive at {elapsed:?}"
            ),
            Err(SessionRefusal::Rejected(SessionRejection::Expired)) => {
                assert!(elapsed >= Duration::from_secs(3), "ended at {elapsed:?}");
                break;
            }
            Err(other) => panic!("{other:?} at {elapsed:?}"),
        }
    }
    assert!(idle_seen);
}

async fn back_channel_logout_ends_matching_oidc_sessions(backend: Backend) {
    let app = TestApp::new(backend).await;
    let user = owner(&app).await;
    let (connection, other_connection) = (Uuid::now_v7(), Uuid::now_v7());
    let oidc = |through: Uuid, sub: &str, sid: &str| SignInMethod::Oidc {
        connection_id: through,
        issuer: "https://idp.example".into(),
        subject: sub.into(),
        sid: Some(sid.into()),
    };
    let mut secrets = Vec::new();
    for method in [
        oidc(connection, "alice", "s1"),
        oidc(connection, "alice", "s2"),
        oidc(connection, "bob", "s3"),
        // The same person of the same provider, signed in through another connection (another
        // org's, or another tenant's): a logout addressed to the first is not for it.
        oidc(other_connection, "alice", "s4"),
    ] {
        let started = session::start(
            &app.state,
            &HeaderMap::new(),
            NewSession {
                user_id: user,
                method,
                id_token: None,
            },
        )
        .await
        .expect("session");
        let response = started.redirect_to("/");
        secrets.push(session_cookie(response.headers(), "rolegate_session").expect("id"));
    }
    let end = |issuer: &'static str, sub: Option<&'static str>, sid: Option<&'static str>| {
        session::end_by_oidc(&app.state, connection, issuer, sub, sid)
    };
    assert_eq!(
        end("https://idp.example", None, Some("s1"))
            .await
            .expect("end"),
        1
    );
    assert!(check(&app, &secrets[0]).await.is_err());
    assert!(check(&app, &secrets[1]).await.is_ok());
    assert_eq!(
        end("https://other.example", Some("alice"), None)
            .await
            .expect("end"),
        0
    );
    assert_eq!(
        end("https://idp.example", Some("alice"), None)
            .await
            .expect("end"),
        1
    );
    assert!(check(&app, &secrets[1]).await.is_err());
    assert!(check(&app, &secrets[2]).await.is_ok(), "bob's stays");
    assert!(
        check(&app, &secrets[3]).await.is_ok(),
        "the session of another connection stays"
    );
}

crate::on_both_backends!(
    cookie_flags_follow_the_public_url,
    sign_in_rotates_the_session_the_browser_carried,
    idle_and_absolute_timeouts_end_sessions,
    back_channel_logout_ends_matching_oidc_sessions,
);
