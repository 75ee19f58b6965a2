//! Tokens over HTTP: each kind works where it should, is refused (403) where it should not,
//! and bad, revoked or expired tokens get 401.

use std::net::SocketAddr;

use axum::http::{Method, StatusCode};
use rolegate::domain::audit::Actor;
use rolegate::domain::token::{self, TokenKind};
use rolegate::store::{Ctx, InvitationTarget, NewInvitation, NewToken};
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

/// `GET /me` is the signed-in user's: every kind of token is refused (403, in the error
/// shape), no token is 401.
async fn me_refuses_tokens(backend: Backend) {
    let app = TestApp::new(backend).await;
    let service = app.token(app.org_id, TokenKind::Service).await;
    for token in [&app.admin_token, &app.scim_token, &service] {
        let refused = app.get("/api/v1/me", token).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert_eq!(refused.body["error"]["code"], "forbidden");
    }
    let nobody = app.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    assert_eq!(nobody.body["error"]["code"], "unauthorized");
}

/// A service token asks permission questions and nothing else: 403 with a message saying what
/// it may call, on the admin API (in its error shape) and on SCIM (in SCIM's).
async fn service_token_asks_permission_questions_and_is_forbidden_elsewhere(backend: Backend) {
    let app = TestApp::new(backend).await;
    let created = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "service", "name": "flag backend" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["kind"], "service");
    let service = created.body["token_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(service.starts_with("rg_service_"), "{service}");
    assert!(
        created.body["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("rg_service_")),
        "{}",
        created.text
    );
    let owner = app
        .store
        .find_user_by_email(app.org_id, "owner@acme.test")
        .await
        .expect("lookup")
        .expect("owner");
    let explained = app
        .get(
            &format!("/api/v1/authz/explain?user_id={}", owner.id),
            &service,
        )
        .await;
    assert_eq!(explained.status, StatusCode::OK, "{}", explained.text);
    assert_eq!(explained.body["org_role"]["role"], "owner");
    let checked = app
        .call(
            Method::POST,
            "/api/v1/authz/check",
            Some(&service),
            Some(json!({ "user_id": owner.id, "capability": "manage_org_settings" })),
        )
        .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.text);
    assert_eq!(checked.body, json!({ "allowed": true, "reason": "owner" }));

    for (method, path, body) in [
        (Method::GET, "/api/v1/orgs".to_owned(), None),
        (Method::GET, format!("/api/v1/orgs/{}", app.org_id), None),
        (Method::GET, "/api/v1/tokens".to_owned(), None),
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            Some(json!({ "kind": "admin" })),
        ),
        (Method::GET, format!("/api/v1/users/{}", owner.id), None),
    ] {
        let refused = app.call(method.clone(), &path, Some(&service), body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(refused.body["error"]["code"], "forbidden");
        let message = refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("service token") && message.contains("/api/v1/authz/check"),
            "{method} {path}: {message}"
        );
    }
    for path in [SPC, "/scim/v2/Users"] {
        let refused = app.get(path, &service).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        scim_error(&refused, "403");
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("service token")),
            "{}",
            refused.text
        );
    }
    // The other kinds are refused on the permission questions as on the rest: SCIM's no
    // further than before, the admin token's not at all.
    let scim = app
        .get(
            &format!("/api/v1/authz/explain?user_id={}", owner.id),
            &app.scim_token,
        )
        .await;
    assert_eq!(scim.status, StatusCode::FORBIDDEN);
    assert_eq!(
        scim.body["error"]["message"], "this token is not an admin token",
        "{}",
        scim.text
    );
    let admin = app
        .get(
            &format!("/api/v1/authz/explain?user_id={}", owner.id),
            &app.admin_token,
        )
        .await;
    assert_eq!(admin.status, StatusCode::OK);
    // Nothing the service token did was a change.
    let audit = app.get("/api/v1/audit?limit=1", &app.admin_token).await;
    assert_eq!(audit.body["events"][0]["action"], "token.create");
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
    let good = app
        .send(request(
            Method::GET,
            SPC,
            Some(&app.scim_token),
            None,
            Some(attacker),
        ))
        .await;
    assert_eq!(
        good.status,
        StatusCode::OK,
        "only bad credentials are slowed: a good token passes"
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

/// Behind a reverse proxy every client shares one address: bad tokens from it must not lock out
/// the IdP's and the admins' valid ones (issue 8, reproduced with 40 bad tokens).
async fn valid_tokens_pass_from_an_address_locked_out_by_bad_ones(backend: Backend) {
    let app = TestApp::new(backend).await; // 20 failures a minute per address
    let shared: SocketAddr = "192.0.2.1:443".parse().expect("addr");
    let from = |method: Method, path: &str, token: Option<&str>, body| {
        request(method, path, token, body, Some(shared))
    };
    let org_path = format!("/api/v1/orgs/{}", app.org_id);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let (path, guess) = if i % 2 == 0 {
            (SPC, format!("rg_scim_guess{i}"))
        } else {
            (org_path.as_str(), format!("rg_admin_guess{i}"))
        };
        statuses.push(
            app.send(from(Method::GET, path, Some(&guess), None))
                .await
                .status,
        );
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[20..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    let scim = app
        .send(from(Method::GET, SPC, Some(&app.scim_token), None))
        .await;
    assert_eq!(scim.status, StatusCode::OK, "{}", scim.text);
    let created = app
        .send(from(
            Method::POST,
            "/scim/v2/Users",
            Some(&app.scim_token),
            Some(json!({ "userName": "ada@acme.test" })),
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let admin = app
        .send(from(Method::GET, &org_path, Some(&app.admin_token), None))
        .await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);

    // Bad credentials from that address stay slowed: a new guess (looked up, and wrong), a
    // repeated one, none at all.
    for token in [Some("rg_scim_another-guess"), Some("rg_scim_guess0"), None] {
        let refused = app.send(from(Method::GET, SPC, token, None)).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{token:?}");
        assert!(
            refused.headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse::<u64>()
                .expect("seconds")
                > 0
        );
        scim_error(&refused, "429");
    }
    let admin_refused = app
        .send(from(Method::GET, &org_path, Some("rg_admin_guess1"), None))
        .await;
    assert_eq!(admin_refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(admin_refused.body["error"]["code"], "too_many_requests");

    // Invitation links count the same way: a bad one is refused, a real one works.
    let tenant = app.store.find_org(app.org_id).await.expect("org").tenant_id;
    let (link_secret, link_hash) = rolegate::domain::invitation::mint_secret([9; 32]);
    app.store
        .invite(
            &Ctx::new(Actor::Cli),
            tenant,
            &InvitationTarget {
                org_id: app.org_id,
                product_id: None,
                permission_group_id: None,
                role: None,
                expires_at: rolegate::domain::now() + chrono::Duration::days(1),
            },
            &[NewInvitation {
                email: "invitee@example.com".into(),
                token_hash: link_hash,
            }],
            None,
        )
        .await
        .expect("invite");
    let accept = |secret: &str| {
        from(
            Method::POST,
            &format!("/api/v1/invitations/accept?token={secret}"),
            None,
            None,
        )
    };
    assert_eq!(
        app.send(accept("rg_inv_guess")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let accepted = app.send(accept(&link_secret)).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);

    // A secret that already failed from the address is refused without asking the database;
    // any other is looked up (here: the store is gone, so it cannot be answered 429).
    app.store.close().await;
    let repeated = app
        .send(from(Method::GET, SPC, Some("rg_scim_guess0"), None))
        .await;
    assert_eq!(repeated.status, StatusCode::TOO_MANY_REQUESTS);
    let looked_up = app
        .send(from(Method::GET, SPC, Some("rg_scim_never-tried"), None))
        .await;
    assert!(looked_up.status.is_server_error(), "{}", looked_up.status);
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
    service_token_asks_permission_questions_and_is_forbidden_elsewhere,
    admin_api_manages_tokens_and_shows_secrets_once,
    admin_api_rejects_bad_bodies_and_other_tenants_ids,
    repeated_failures_from_one_address_are_rate_limited,
    valid_tokens_pass_from_an_address_locked_out_by_bad_ones,
    token_use_updates_last_used,
    me_refuses_tokens,
);
