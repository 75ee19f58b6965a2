//! ID tokens no real provider would send, minted here with jsonwebtoken and served by a small
//! test issuer (discovery, JWKS, token endpoint): each is refused with its code and no session.
//! The happy path and the provider-driven failures run against the real provider
//! (`oidc_login`).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{Method, StatusCode, header};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::Backend;
use crate::common::http::request;
use crate::common::oidc::{CLIENT_ID, set_cookies};
use crate::oidc::add_connection;
use crate::oidc_login::{PUBLIC_URL, assert_refused, assert_signed_in};
use crate::on_both_backends;

on_both_backends!(
    minted_tokens_with_a_bad_signature_alg_or_key_are_refused,
    minted_tokens_with_wrong_claims_are_refused,
    an_entra_multi_tenant_issuer_lets_in_only_allowed_tenants,
    logout_tokens_are_checked_per_back_channel_logout,
    private_key_jwt_signs_the_token_request_with_the_key_rolegate_keeps,
);

const ENTRA_TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A test issuer: its discovery names `issuer` (its own URL unless told otherwise), its JWKS
/// has one ES256 key, and its token endpoint answers with whatever `next` holds.
struct Issuer {
    base: String,
    issuer: String,
    key: Vec<u8>,
    kid: String,
    next: Arc<Mutex<String>>,
    /// The public key a `private_key_jwt` client registered: the token endpoint then wants a
    /// client assertion it verifies.
    client_key: Arc<Mutex<Option<Value>>>,
    _server: tokio::task::JoinHandle<()>,
}

/// RFC 7523 §3: a client assertion signed by the registered key, for this token endpoint.
fn assertion_ok(form: &str, key: &Value, token_endpoint: &str) -> bool {
    let Some(assertion) = url::form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == "client_assertion")
        .map(|(_, v)| v.into_owned())
    else {
        return false;
    };
    let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(key.clone()) else {
        return false;
    };
    let Ok(decoding) = jsonwebtoken::DecodingKey::from_jwk(&jwk) else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
    validation.set_audience(&[token_endpoint]);
    validation.set_issuer(&[CLIENT_ID]);
    jsonwebtoken::decode::<Value>(&assertion, &decoding, &validation).is_ok()
}

impl Issuer {
    async fn start(issuer_override: Option<&str>) -> Issuer {
        let (key, jwk) = rolegate::idp::generate_signing_key().expect("key");
        let kid = jwk["kid"].as_str().expect("kid").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let issuer = issuer_override.map_or_else(|| base.clone(), str::to_owned);
        let next = Arc::new(Mutex::new(String::new()));
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        });
        let jwks = json!({ "keys": [jwk] });
        let served = next.clone();
        let client_key: Arc<Mutex<Option<Value>>> = Arc::default();
        let registered = client_key.clone();
        let token_endpoint = format!("{base}/token");
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let d = discovery.clone();
                    async move { axum::Json(d) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let k = jwks.clone();
                    async move { axum::Json(k) }
                }),
            )
            .route(
                "/token",
                post(move |form: String| {
                    let token = served.lock().expect("lock").clone();
                    let key = registered.lock().expect("lock").clone();
                    let refused = key.is_some_and(|k| !assertion_ok(&form, &k, &token_endpoint));
                    async move {
                        if refused {
                            return (
                                StatusCode::UNAUTHORIZED,
                                axum::Json(json!({"error": "invalid_client"})),
                            );
                        }
                        (
                            StatusCode::OK,
                            axum::Json(json!({
                                "id_token": token, "access_token": "at-1", "token_type": "Bearer",
                            })),
                        )
                    }
                }),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Issuer {
            base,
            issuer,
            key,
            kid,
            next,
            client_key,
            _server: server,
        }
    }

    /// Good claims for `nonce`, as this issuer would sign them.
    fn claims(&self, nonce: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "sub": "minted-1", "aud": CLIENT_ID, "nonce": nonce,
            "iat": now, "exp": now + 300, "email": "minted@acme.test", "email_verified": true,
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.key)).expect("sign")
    }
}

/// A token for a login's nonce, and claims for one.
type MintToken = Box<dyn Fn(&Issuer, &str) -> String>;
type MintClaims = Box<dyn Fn(&Issuer, &str) -> Value>;

struct Minted {
    app: crate::common::TestApp,
    issuer: Issuer,
    id: String,
}

async fn minted(backend: Backend, issuer_override: Option<&str>, connection: Value) -> Minted {
    let mut config = rolegate::config::ServeArgs::for_tests();
    config.public_url = Some(url::Url::parse(PUBLIC_URL).expect("url"));
    let app = crate::common::TestApp::with_config(backend, config).await;
    let issuer = Issuer::start(issuer_override).await;
    let mut body = json!({"provisioning": "jit"});
    if let (Some(b), Some(extra)) = (body.as_object_mut(), connection.as_object()) {
        b.extend(extra.clone());
    }
    let created = add_connection(&app, &app.org_id.to_string(), &issuer.base, body).await;
    let id = created["id"].as_str().expect("id").to_owned();
    Minted { app, issuer, id }
}

impl Minted {
    /// A login whose token endpoint answers `token(nonce)`: the callback's reply.
    async fn sign_in_with(
        &self,
        token: impl Fn(&Issuer, &str) -> String,
    ) -> crate::common::http::Reply {
        let login = self
            .app
            .call(
                Method::GET,
                &format!("/auth/oidc/{}/login", self.id),
                None,
                None,
            )
            .await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
        let location =
            url::Url::parse(login.headers[header::LOCATION].to_str().expect("loc")).expect("url");
        let param = |name: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .expect(name)
        };
        *self.issuer.next.lock().expect("lock") = token(&self.issuer, &param("nonce"));
        let mut req = request(
            Method::GET,
            &format!(
                "/auth/oidc/{}/callback?code=c-1&state={}",
                self.id,
                param("state")
            ),
            None,
            None,
            None,
        );
        req.headers_mut().insert(
            header::COOKIE,
            set_cookies(&login.headers)[0].parse().expect("cookie"),
        );
        self.app.send(req).await
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

async fn minted_tokens_with_a_bad_signature_alg_or_key_are_refused(backend: Backend) {
    let m = minted(backend, None, json!({})).await;
    // The issuer's own good token signs in: the refusals below are the token's fault.
    assert_signed_in(
        &m.sign_in_with(|i, nonce| i.sign(&i.claims(nonce))).await,
        "/console/",
    );
    let cases: Vec<(&str, MintToken)> = vec![
        (
            "id_token_bad_signature",
            Box::new(|i, nonce| {
                // Another key, under the issuer's kid.
                let (other, _) = rolegate::idp::generate_signing_key().expect("key");
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some(i.kid.clone());
                jsonwebtoken::encode(&header, &i.claims(nonce), &EncodingKey::from_ec_der(&other))
                    .expect("sign")
            }),
        ),
        (
            "id_token_alg_not_allowed",
            Box::new(|i, nonce| {
                let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
                let body = URL_SAFE_NO_PAD.encode(i.claims(nonce).to_string());
                format!("{header}.{body}.")
            }),
        ),
        (
            "id_token_alg_not_allowed",
            Box::new(|i, nonce| {
                // HS256 keyed with the public key's bytes: the classic key-confusion token.
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(i.kid.clone());
                jsonwebtoken::encode(
                    &header,
                    &i.claims(nonce),
                    &EncodingKey::from_secret(i.kid.as_bytes()),
                )
                .expect("sign")
            }),
        ),
        (
            "id_token_unknown_kid",
            Box::new(|i, nonce| {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some("not-a-key-of-this-issuer".into());
                jsonwebtoken::encode(&header, &i.claims(nonce), &EncodingKey::from_ec_der(&i.key))
                    .expect("sign")
            }),
        ),
        ("id_token_malformed", Box::new(|_, _| "not.a-jwt".into())),
    ];
    for (code, token) in cases {
        let reply = m.sign_in_with(token).await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, code);
    }
}

async fn minted_tokens_with_wrong_claims_are_refused(backend: Backend) {
    let m = minted(backend, None, json!({})).await;
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, MintClaims)> = vec![
        (
            "id_token_audience_mismatch",
            Box::new(|i, n| with(i.claims(n), "aud", json!("someone-else"))),
        ),
        (
            "id_token_azp_mismatch",
            Box::new(|i, n| with(i.claims(n), "aud", json!([CLIENT_ID, "other"]))),
        ),
        (
            "id_token_issuer_mismatch",
            Box::new(|i, n| with(i.claims(n), "iss", json!("https://evil.example"))),
        ),
        (
            "id_token_expired",
            Box::new(move |i, n| with(i.claims(n), "exp", json!(now - 3600))),
        ),
        (
            "id_token_issued_in_future",
            Box::new(move |i, n| with(i.claims(n), "iat", json!(now + 3600))),
        ),
        (
            "id_token_nonce_mismatch",
            Box::new(|i, _| i.claims("another-logins-nonce")),
        ),
        (
            "id_token_at_hash_mismatch",
            Box::new(|i, n| with(i.claims(n), "at_hash", json!("AAAAAAAAAAAAAAAAAAAAAA"))),
        ),
    ];
    for (code, claims) in cases {
        let reply = m.sign_in_with(|i, n| i.sign(&claims(i, n))).await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, code);
    }
    let users = m.app.ok(Method::GET, "/users?search=minted", None).await;
    assert_eq!(users["users"], json!([]), "nobody was signed in");
}

async fn an_entra_multi_tenant_issuer_lets_in_only_allowed_tenants(backend: Backend) {
    let m = minted(
        backend,
        Some(ENTRA_TEMPLATE),
        json!({"allowed_tenants": [TENANT]}),
    )
    .await;
    let tenant_issuer = |t: &str| format!("https://login.microsoftonline.com/{t}/v2.0");
    let reply = m
        .sign_in_with(|i, n| i.sign(&with(i.claims(n), "iss", json!(tenant_issuer(TENANT)))))
        .await;
    assert_signed_in(&reply, "/console/");
    let reply = m
        .sign_in_with(|i, n| {
            i.sign(&with(
                i.claims(n),
                "iss",
                json!(tenant_issuer("00000000-0000-0000-0000-000000000001")),
            ))
        })
        .await;
    assert_refused(&reply, StatusCode::FORBIDDEN, "tenant_not_allowed");
}

async fn logout_tokens_are_checked_per_back_channel_logout(backend: Backend) {
    let m = minted(backend, None, json!({})).await;
    let event = "http://schemas.openid.net/event/backchannel-logout";
    let good = |i: &Issuer| {
        json!({
            "iss": i.issuer, "aud": CLIENT_ID, "iat": chrono::Utc::now().timestamp(),
            "jti": uuid::Uuid::new_v4().to_string(), "sub": "minted-1",
            "events": { event: {} },
        })
    };
    let sign = |i: &Issuer, claims: &Value, typ: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(i.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&i.key)).expect("sign")
    };
    let post = |token: String| {
        let app = &m.app;
        async move {
            let mut req = request(
                Method::POST,
                "/auth/oidc/backchannel-logout",
                None,
                None,
                None,
            );
            *req.body_mut() = axum::body::Body::from(format!("logout_token={token}"));
            req.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded".parse().expect("type"),
            );
            app.send(req).await
        }
    };
    let token = sign(&m.issuer, &good(&m.issuer), "logout+jwt");
    let reply = post(token.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["ended"], json!(0));
    let replayed = post(token).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert!(replayed.text.contains("jti"), "{}", replayed.text);

    let i = &m.issuer;
    let without = |key: &str| {
        let mut c = good(i);
        c.as_object_mut().expect("object").remove(key);
        c
    };
    let mut no_subject = without("sub");
    no_subject.as_object_mut().expect("object").remove("sid");
    for (token, says) in [
        (
            sign(i, &with(good(i), "nonce", json!("n")), "logout+jwt"),
            "nonce",
        ),
        (sign(i, &without("events"), "logout+jwt"), "event"),
        (
            sign(
                i,
                &with(good(i), "events", json!({"other": {}})),
                "logout+jwt",
            ),
            "event",
        ),
        (sign(i, &no_subject, "logout+jwt"), "neither sub nor sid"),
        (sign(i, &good(i), "JWT"), "typ"),
        (
            sign(
                i,
                &with(good(i), "aud", json!("someone-else")),
                "logout+jwt",
            ),
            "audience",
        ),
        (
            sign(i, &with(good(i), "iat", json!(0)), "logout+jwt"),
            "iat",
        ),
        ("not-a-jwt".to_owned(), "not a JWT"),
    ] {
        let reply = post(token).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{says}: {}",
            reply.text
        );
        assert!(reply.text.contains(says), "{says}: {}", reply.text);
    }
}

async fn private_key_jwt_signs_the_token_request_with_the_key_rolegate_keeps(backend: Backend) {
    let m = minted(backend, None, json!({"client_auth": "private_key_jwt"})).await;
    let connection = m
        .app
        .ok(Method::GET, &format!("/oidc-connections/{}", m.id), None)
        .await;
    assert_eq!(connection["has_client_secret"], json!(false));
    let public = connection["public_jwk"].clone();
    assert_eq!(public["kty"], json!("EC"));
    assert!(public.get("d").is_none(), "only the public part is shown");
    // Registered at the provider: the token request's assertion verifies, the login completes.
    *m.issuer.client_key.lock().expect("lock") = Some(public);
    assert_signed_in(
        &m.sign_in_with(|i, n| i.sign(&i.claims(n))).await,
        "/console/",
    );
    // Another key registered: the provider refuses the client.
    let (_, other) = rolegate::idp::generate_signing_key().expect("key");
    *m.issuer.client_key.lock().expect("lock") = Some(other);
    let reply = m.sign_in_with(|i, n| i.sign(&i.claims(n))).await;
    assert_refused(&reply, StatusCode::BAD_REQUEST, "token_exchange_failed");
    assert!(reply.text.contains("invalid_client"), "{}", reply.text);
}
