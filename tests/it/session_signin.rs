//! Signing in without an identity provider: the e-mail link (through the real SMTP sink), the
//! org's `require_sso`, and the operator's break-glass `rolegate console login-link`.

use std::process::Command;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{COOKIE, LOCATION};
use axum::http::{Method, Request, StatusCode};
use rolegate::config::ServeArgs;
use rolegate::domain::session::hash_secret;
use serde_json::json;

use crate::common::http::Reply;
use crate::common::smtp::{ReceivedMail, SmtpSink};
use crate::common::{Backend, TestApp};
use crate::session::{session_cookie, session_of};

pub const PUBLIC_URL: &str = "https://rolegate.acme.example/";
pub const ORIGIN: &str = "https://rolegate.acme.example";
pub const COOKIE_NAME: &str = "__Host-rolegate_session";

pub async fn app_with_sink(backend: Backend) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start();
    let mut config = ServeArgs::for_tests();
    config.smtp_url = Some(sink.url().parse().expect("sink URL"));
    config.public_url = Some(PUBLIC_URL.parse().expect("url"));
    (TestApp::with_config(backend, config).await, sink)
}

pub async fn ask_for_link(app: &TestApp, email: &str, as_json: bool) -> Reply {
    let (content_type, body) = if as_json {
        ("application/json", json!({ "email": email }).to_string())
    } else {
        (
            "application/x-www-form-urlencoded",
            format!("email={}", email.replace('@', "%40")),
        )
    };
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri("/auth/email")
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request"),
    )
    .await
}

/// The sign-in link in a received mail, as a path on our router.
pub fn link_in(mail: &ReceivedMail) -> String {
    let start = mail
        .body
        .find(PUBLIC_URL)
        .unwrap_or_else(|| panic!("no link in {}", mail.body));
    let link: String = mail.body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    format!("/{}", link.trim_start_matches(PUBLIC_URL))
}

/// Follows the link's confirm form: a POST from this service's own page.
pub async fn confirm(app: &TestApp, path: &str) -> Reply {
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("origin", ORIGIN)
            .body(Body::empty())
            .expect("request"),
    )
    .await
}

fn get(path: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("request")
}

/// Signs `email` in through the e-mail link; returns the session id.
pub async fn signed_in_by_mail(app: &TestApp, sink: &SmtpSink, email: &str) -> String {
    let before = sink.received().len();
    assert_eq!(
        ask_for_link(app, email, true).await.status,
        StatusCode::ACCEPTED
    );
    let mails = sink
        .wait_for_messages(before + 1, Duration::from_secs(10))
        .await;
    let mail = mails.last().expect("a mail");
    assert_eq!(mail.rcpt_tos, vec![email.to_owned()]);
    let reply = confirm(app, &link_in(mail)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    session_cookie(&reply.headers, COOKIE_NAME).expect("session cookie")
}

/// A page of the sign-in flow: in the console's frame (its stylesheet, a way back) and with its
/// headers, saying `text`.
fn assert_visitor_page(reply: &Reply, text: &str) {
    assert!(reply.text.contains(text), "{text} missing: {}", reply.text);
    assert!(
        reply.text.contains("/console/assets/console."),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("<main id=\"main\""), "{}", reply.text);
    let csp = reply
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "CSP: {csp:?}");
    assert_eq!(reply.headers["referrer-policy"], "same-origin");
    assert_eq!(reply.headers["cache-control"], "no-store");
}

async fn an_emailed_link_signs_in_once_and_only_by_its_form(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let known = ask_for_link(&app, "Owner@Acme.test", false).await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_visitor_page(&known, "a sign-in link is on its way");
    let unknown = ask_for_link(&app, "nobody@acme.test", false).await;
    assert_eq!(
        (unknown.status, unknown.text.clone()),
        (known.status, known.text.clone()),
        "the same answer whether or not the address exists"
    );
    let mails = sink.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, vec!["owner@acme.test".to_owned()]);
    let path = link_in(&mails[0]);
    assert!(path.starts_with("/auth/link/"), "{path}");

    // A mail scanner following the link signs nobody in and burns nothing.
    for _ in 0..2 {
        let page = app.send(get(&path)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("<form method=\"post\""), "{}", page.text);
        assert_visitor_page(&page, "Sign in to rolegate");
        assert!(session_cookie(&page.headers, COOKIE_NAME).is_none());
    }
    // A POST from another site is refused (and burns nothing either).
    let cross = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(&path)
                .header("origin", "https://evil.example")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let signed_in = confirm(&app, &path).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    assert_eq!(signed_in.headers[LOCATION], "/console/");
    let secret = session_cookie(&signed_in.headers, COOKIE_NAME).expect("cookie");
    let session = session_of(&app, &secret).await.expect("live");
    assert_eq!(session.method, "email_link");
    // Single use.
    let used = confirm(&app, &path).await;
    assert_eq!(used.status, StatusCode::GONE);
    assert_visitor_page(&used, "used already or has expired");
    assert_eq!(app.send(get(&path)).await.status, StatusCode::GONE);
    assert_eq!(
        app.send(get("/auth/link/made-up")).await.status,
        StatusCode::GONE
    );
    // The outbox keeps that it went, not the link.
    let audit = app
        .ok(Method::GET, "/audit?action=session.start", None)
        .await;
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1), "{audit}");
    let outbox = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/outbox?status=all", app.org_id),
            None,
        )
        .await;
    assert!(!outbox.to_string().contains(&path), "{outbox}");
}

async fn require_sso_turns_email_sign_in_off_for_members(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let sub = app.sub_org(&app.org_id.to_string(), "Payments").await;
    let member = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{sub}/members/{member}"),
        Some(json!({ "role": "member" })),
    )
    .await;
    // A link asked for before the setting changes does not work after.
    assert_eq!(
        ask_for_link(&app, "dev@acme.test", true).await.status,
        StatusCode::ACCEPTED
    );
    let mails = sink.wait_for_messages(1, Duration::from_secs(10)).await;
    let early = link_in(&mails[0]);
    let settings = app
        .ok(
            Method::PUT,
            &format!("/orgs/{}/settings", app.org_id),
            Some(json!({ "require_sso": true })),
        )
        .await;
    assert_eq!(settings, json!({ "require_sso": true }));
    assert_eq!(
        app.ok(Method::GET, &format!("/orgs/{sub}/settings"), None)
            .await,
        json!({ "require_sso": false }),
        "the sub-org's own setting is unchanged; the root's covers it"
    );
    assert_eq!(confirm(&app, &early).await.status, StatusCode::FORBIDDEN);
    let asked = ask_for_link(&app, "dev@acme.test", true).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "the same answer");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.received().len(), 1, "no second mail");
}

async fn the_login_link_is_for_owners_and_survives_require_sso(backend: Backend) {
    let (app, _sink) = app_with_sink(backend).await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/settings", app.org_id),
        Some(json!({ "require_sso": true })),
    )
    .await;
    let member = app.user("dev@acme.test").await;
    app.ok(
        Method::PUT,
        &format!("/orgs/{}/members/{member}", app.org_id),
        Some(json!({ "role": "member" })),
    )
    .await;
    let run = |email: &str| {
        Command::new(env!("CARGO_BIN_EXE_rolegate"))
            .args([
                "console",
                "login-link",
                "--org",
                &app.org_id.to_string(),
                "--email",
                email,
            ])
            .env("ROLEGATE_DATABASE_URL", app.database_url())
            .env("ROLEGATE_PUBLIC_URL", PUBLIC_URL)
            .output()
            .expect("binary runs")
    };
    let refused = run("dev@acme.test");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Owner"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = run("owner@acme.test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let url = printed["url"].as_str().expect("url");
    assert!(printed["expires_at"].is_string());
    let path = format!("/{}", url.trim_start_matches(PUBLIC_URL));
    let page = app.send(get(&path)).await;
    assert_eq!(page.status, StatusCode::OK);
    let signed_in = confirm(&app, &path).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    let secret = session_cookie(&signed_in.headers, COOKIE_NAME).expect("cookie");
    let session = session_of(&app, &secret).await.expect("live");
    assert_eq!(session.method, "login_link");
    assert_eq!(confirm(&app, &path).await.status, StatusCode::GONE);

    // Logging out: refused without the CSRF token, done with it.
    let logout = |token: Option<String>| {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/auth/logout")
            .header("origin", ORIGIN)
            .header(COOKIE, format!("{COOKIE_NAME}={secret}"));
        if let Some(t) = token {
            builder = builder.header("x-csrf-token", t);
        }
        builder.body(Body::empty()).expect("request")
    };
    assert_eq!(app.send(logout(None)).await.status, StatusCode::FORBIDDEN);
    assert!(session_of(&app, &secret).await.is_ok());
    let token = rolegate::domain::session::csrf_token(&secret);
    let out = app.send(logout(Some(token))).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.headers[LOCATION], "/auth/signed-out");
    assert!(session_of(&app, &secret).await.is_err());
}

crate::on_both_backends!(
    an_emailed_link_signs_in_once_and_only_by_its_form,
    require_sso_turns_email_sign_in_off_for_members,
    the_login_link_is_for_owners_and_survives_require_sso,
    scim_deactivation_ends_the_session_on_every_instance,
);

/// SCIM deactivation through one instance ends the session on every instance: the next check
/// on the other refuses it (PostgreSQL: through `LISTEN`; SQLite: the invalidations poll).
async fn scim_deactivation_ends_the_session_on_every_instance(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let created = app
        .scim(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ann@acme.test",
                "emails": [{ "value": "ann@acme.test", "primary": true }],
                "active": true
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let secret = signed_in_by_mail(&app, &sink, "ann@acme.test").await;
    let hash = hash_secret(&secret);
    let other = app.second_instance().await;
    assert!(
        other.state.sessions.check(&hash).await.is_ok(),
        "cached on B"
    );
    assert!(app.state.sessions.check(&hash).await.is_ok(), "cached on A");
    let started = std::time::Instant::now();
    let patched = app
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }]
            })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert!(
        app.state.sessions.check(&hash).await.is_err(),
        "refused on A before the write returned"
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
    println!(
        "session refused on the second instance {:?} after SCIM deactivation ({backend:?})",
        started.elapsed()
    );
    let ended = app
        .store
        .list_sessions(app.org_id, id.parse().expect("uuid"))
        .await;
    assert_eq!(ended.expect("list").len(), 0, "ended in the database too");
}
