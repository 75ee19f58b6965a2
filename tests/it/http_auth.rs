//! Tokens over HTTP: each kind works where it should, is refused (403) where it should not,
//! and bad, revoked or expired tokens get 401.

use std::net::SocketAddr;

use axum::http::{Method, StatusCode};
use rolegate::domain::audit::Actor;
use rolegate::domain::token::{self, TokenKind};
use rolegate::store::{Ctx, NewToken};
use serde_json::json;

use crate::common::http::request;
use crate::common::{Backend, TestApp};

const SPC: &str = "/scim/v2/ServiceProviderConfig";

fn scim_error(reply: &crate::common::http::Reply, status: &str) {
    assert_eq!(reply.headers["content-type"], "application/scim+json");
    assert_eq!(
        reply.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(reply.body["status"], status);
}

async fn scim_token_opens_scim_and_is_forbidden_on_the_admin_api(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ok = app.get(SPC, &app.scim_token).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["content-type"], "application/scim+json");
    assert_eq!(ok.body["patch"]["supported"], true);
    let refused = app
        .get(&format!("/api/v1/orgs/{}", app.org_id), &app.scim_token)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["error"]["code"], "forbidden");
    let unknown = app.get("/scim/v2/NoSuchThing", &app.scim_token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    scim_error(&unknown, "404");
}

async fn admin_token_opens_the_admin_api_and_is_forbidden_on_scim(backend: Backend) {
    let app = TestApp::new(backend).await;
    let org = app
        .get(&format!("/api/v1/orgs/{}", app.org_id), &app.admin_token)
        .await;
    assert_eq!(org.status, StatusCode::OK);
    assert_eq!(org.body["id"], app.org_id.to_string());
    let members = app
        .get(
            &format!("/api/v1/orgs/{}/members", app.org_id),
            &app.admin_token,
        )
        .await;
    assert_eq!(members.body["members"][0]["effective"]["role"], "owner");
    let refused = app.get(SPC, &app.admin_token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    scim_error(&refused, "403");
}

async fn bad_revoked_and_expired_tokens_get_401_with_bearer_challenge(backend: Backend) {
    let app = TestApp::new(backend).await;
    let expired = {
        let minted = token::mint(TokenKind::Scim, [42; token::SECRET_BYTES]);
        let new = NewToken::from_minted(
            app.org_id,
            TokenKind::Scim,
            "old".into(),
            &minted,
            Some(rolegate::domain::now() - chrono::Duration::seconds(1)),
        );
        app.store
            .create_token(&Ctx::new(Actor::Cli), app.org_id, new)
            .await
            .expect("token");
        minted.secret
    };
    let revoked = app.token(app.org_id, TokenKind::Scim).await;
    let id = app
        .store
        .token_by_hash(&token::hash_secret(&revoked))
        .await
        .expect("lookup")
        .expect("found")
        .token
        .id;
    assert_eq!(
        app.get(SPC, &revoked).await.status,
        StatusCode::OK,
        "works before revocation"
    );
    app.store
        .revoke_token(&Ctx::new(Actor::Cli), app.org_id, id)
        .await
        .expect("revoke");
    let tampered = format!("{}x", app.scim_token);
    for (token, detail) in [
        (Some("rg_scim_not-a-real-token"), "invalid token"),
        (Some(tampered.as_str()), "invalid token"),
        (Some("something-else"), "invalid token"),
        (Some(revoked.as_str()), "token revoked"),
        (Some(expired.as_str()), "token expired"),
        (None, "missing bearer token"),
    ] {
        let scim = app.call(Method::GET, SPC, token, None).await;
        assert_eq!(scim.status, StatusCode::UNAUTHORIZED, "{detail}");
        assert_eq!(scim.headers["www-authenticate"], "Bearer");
        scim_error(&scim, "401");
        assert_eq!(scim.body["detail"], detail);
        let admin = app
            .call(
                Method::GET,
                &format!("/api/v1/orgs/{}", app.org_id),
                token,
                None,
            )
            .await;
        assert_eq!(admin.status, StatusCode::UNAUTHORIZED);
        assert_eq!(admin.headers["www-authenticate"], "Bearer");
        assert_eq!(admin.body["error"]["code"], "unauthorized");
    }
}

async fn admin_api_manages_tokens_and_shows_secrets_once(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "scim", "name": "Okta", "expires_in_days": 90 })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["token_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("rg_scim_"));
    assert!(created.body["expires_at"].is_string());
    assert_eq!(app.get(SPC, &secret).await.status, StatusCode::OK);
    let list = app.get("/api/v1/tokens", &app.admin_token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["tokens"].as_array().expect("tokens").len(), 3);
    assert!(
        !list.text.contains(&secret[8..]),
        "secrets are never listed"
    );
    let id = created.body["id"].as_str().expect("id");
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    assert_eq!(app.get(SPC, &secret).await.status, StatusCode::UNAUTHORIZED);
    let audit = app
        .get("/api/v1/audit?action=token.revoke", &app.admin_token)
        .await;
    assert_eq!(audit.body["events"][0]["actor_kind"], "admin_token");
    assert!(audit.body["events"][0]["request_id"].is_string());
}

async fn admin_api_rejects_bad_bodies_and_other_tenants_ids(backend: Backend) {
    let app = TestApp::new(backend).await;
    let malformed = app
        .send(
            axum::http::Request::post("/api/v1/tokens")
                .header("authorization", format!("Bearer {}", app.admin_token))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{\"kind\": "))
                .expect("request"),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.body["error"]["code"], "bad_request");
    let wrong_shape = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "root" })),
        )
        .await;
    assert_eq!(wrong_shape.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_days = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "scim", "expires_in_days": 0 })),
        )
        .await;
    assert_eq!(bad_days.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_days.body["error"]["fields"][0]["field"],
        "expires_in_days"
    );
    let blank_name = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "scim", "name": "  " })),
        )
        .await;
    assert_eq!(blank_name.body["error"]["fields"][0]["field"], "name");

    let (other, _) = app
        .store
        .create_org(&Ctx::new(Actor::Cli), "Other", "o@other.test")
        .await
        .expect("org");
    let other_admin = app.token(other.id, TokenKind::Admin).await;
    let other_tokens = app.store.list_tokens(other.id, None).await.expect("tokens");
    for path in [
        format!("/api/v1/orgs/{}", other.id),
        format!("/api/v1/orgs/{}/members", other.id),
        format!("/api/v1/tokens?org_id={}", other.id),
    ] {
        assert_eq!(
            app.get(&path, &app.admin_token).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let cross = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", other_tokens[0].id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(cross.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(SPC, &app.token(other.id, TokenKind::Scim).await)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/api/v1/orgs/{}", other.id), &other_admin)
            .await
            .status,
        StatusCode::OK,
        "the other tenant's token still works"
    );
    let audit = app.get("/api/v1/audit?limit=1000", &app.admin_token).await;
    assert!(
        !audit.text.contains(&other.id.to_string()),
        "one tenant's audit log never shows another's"
    );
}

async fn repeated_failures_from_one_address_are_rate_limited(backend: Backend) {
    let mut config = rolegate::config::ServeArgs::for_tests();
    config.auth_failures_per_minute = 5;
    let app = TestApp::with_config(backend, config).await;
    let attacker: SocketAddr = "127.0.0.9:40000".parse().expect("addr");
    let neighbour: SocketAddr = "127.0.0.10:40000".parse().expect("addr");
    for _ in 0..5 {
        let r = app
            .send(request(
                Method::GET,
                SPC,
                Some("rg_scim_guess"),
                None,
                Some(attacker),
            ))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let limited = app
        .send(request(
            Method::GET,
            SPC,
            Some("rg_scim_guess"),
            None,
            Some(attacker),
        ))
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse::<u64>()
            .expect("seconds")
            > 0
    );
    scim_error(&limited, "429");
    let still_limited = app
        .send(request(
            Method::GET,
            SPC,
            Some(&app.scim_token),
            None,
            Some(attacker),
        ))
        .await;
    assert_eq!(
        still_limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even a good token waits out the window"
    );
    let other = app
        .send(request(
            Method::GET,
            SPC,
            Some(&app.scim_token),
            None,
            Some(neighbour),
        ))
        .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "other addresses are unaffected"
    );
}

async fn token_use_updates_last_used(backend: Backend) {
    let app = TestApp::new(backend).await;
    let id = app
        .store
        .token_by_hash(&token::hash_secret(&app.scim_token))
        .await
        .expect("lookup")
        .expect("found")
        .token
        .id;
    assert!(
        app.store
            .find_token(id)
            .await
            .expect("token")
            .last_used_at
            .is_none()
    );
    app.get(SPC, &app.scim_token).await;
    let first = app
        .store
        .find_token(id)
        .await
        .expect("token")
        .last_used_at
        .expect("recorded");
    app.get(SPC, &app.scim_token).await;
    assert_eq!(
        app.store.find_token(id).await.expect("token").last_used_at,
        Some(first),
        "not rewritten within the minute"
    );
}

crate::on_both_backends!(
    scim_token_opens_scim_and_is_forbidden_on_the_admin_api,
    admin_token_opens_the_admin_api_and_is_forbidden_on_scim,
    bad_revoked_and_expired_tokens_get_401_with_bearer_challenge,
    admin_api_manages_tokens_and_shows_secrets_once,
    admin_api_rejects_bad_bodies_and_other_tenants_ids,
    repeated_failures_from_one_address_are_rate_limited,
    token_use_updates_last_used,
);
