//! Session tokens: `POST /auth/token` turns a signed-in browser's session into a short-lived
//! signed token that another service verifies with `/.well-known/jwks.json` alone; the session
//! ending stops new tokens at once.

use axum::body::Body;
use axum::http::header::COOKIE;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rolegate::domain::audit::Actor;
use rolegate::domain::session::{EndReason, csrf_token};
use rolegate::session::{self, NewSession, SignInMethod};
use rolegate::store::Ctx;
use serde_json::Value;
use uuid::Uuid;

use crate::common::{Backend, TestApp};
use crate::session::session_cookie;

crate::on_both_backends!(a_session_becomes_a_token_that_verifies_offline_until_the_session_ends);

fn mint_request(cookie: Option<&str>, csrf: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::POST).uri("/auth/token");
    if let Some(c) = cookie {
        builder = builder.header(COOKIE, format!("rolegate_session={c}"));
    }
    if let Some(t) = csrf {
        builder = builder.header("x-csrf-token", t);
    }
    builder.body(Body::empty()).expect("request")
}

async fn a_session_becomes_a_token_that_verifies_offline_until_the_session_ends(backend: Backend) {
    let app = TestApp::new(backend).await;
    let user: Uuid = app.user("owner@acme.test").await.parse().expect("uuid");
    let started = session::start(
        &app.state,
        &HeaderMap::new(),
        NewSession {
            user_id: user,
            method: SignInMethod::EmailLink,
            id_token: None,
        },
    )
    .await
    .expect("session");
    let session_id = started.session().id;
    let tenant = started.session().tenant_id;
    let response = started.redirect_to("/console/");
    let secret = session_cookie(response.headers(), "rolegate_session").expect("cookie");
    let csrf = csrf_token(&secret);

    // Without the CSRF echo, or with another session's, nothing is minted.
    let refused = app.send(mint_request(Some(&secret), None)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let refused = app
        .send(mint_request(Some(&secret), Some(&csrf_token("another"))))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let refused = app.send(mint_request(None, Some(&csrf))).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);

    let minted = app.send(mint_request(Some(&secret), Some(&csrf))).await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text);
    assert_eq!(minted.body["token_type"], "Bearer");
    assert!(minted.body["expires_in"].as_i64().expect("expires_in") <= 300);
    let token = minted.body["access_token"].as_str().expect("token");

    // What a service of the product does: fetch the JWKS, verify with it alone.
    let jwks = app
        .send(
            Request::builder()
                .uri("/.well-known/jwks.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(jwks.status, StatusCode::OK, "{}", jwks.text);
    let set: JwkSet = serde_json::from_value(jwks.body.clone()).expect("a JWK set");
    let kid = jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid");
    let jwk = set.find(&kid).expect("the signing key is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["rolegate"]);
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("verifies")
    .claims;
    assert_eq!(claims["sub"], user.to_string());
    assert_eq!(claims["sid"], session_id.to_string());
    assert_eq!(claims["tid"], tenant.to_string());
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert!((1..=300).contains(&lifetime), "{lifetime}");
    for permission_claim in ["permissions", "roles", "groups", "scope"] {
        assert!(claims.get(permission_claim).is_none(), "{claims}");
    }

    // The token is also a caller of the admin API: the signed-in user, no cookie needed.
    let me = app.call(Method::GET, "/api/v1/me", Some(token), None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["user"]["id"], user.to_string(), "{}", me.text);
    // Another signature: its first character changed (never a no-op, unlike the last one's
    // padding bits).
    let (signed, signature) = token.rsplit_once('.').expect("a JWS");
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{first}{}", &signature[1..]);
    let refused = app
        .call(Method::GET, "/api/v1/me", Some(&forged), None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);

    // The session ends: no new token, and the one minted before names a dead session.
    app.state
        .store
        .end_session(
            &Ctx::new(Actor::Cli),
            tenant,
            session_id,
            None,
            EndReason::EndedByAdmin,
        )
        .await
        .expect("ended");
    let after = app.send(mint_request(Some(&secret), Some(&csrf))).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.text);
    let me = app.call(Method::GET, "/api/v1/me", Some(token), None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.text);
}
