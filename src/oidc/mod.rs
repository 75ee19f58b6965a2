//! Single sign-on through OpenID Connect, the browser's side: home-realm discovery, the login
//! redirect (code flow with PKCE S256, `state`, `nonce`), the callback (every check of OIDC Core
//! §3.1.3.7 and RFC 9207, then the sign-in), and back-channel logout.
//!
//! Refusals are pages, not JSON: a person's browser lands here. 400 for protocol errors, 403
//! for policy, each with a stable code.

mod page;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::audit::Actor;
use crate::domain::oidc::{self as rules, Expected, Groups, LOGIN_TTL_SECS};
use crate::error::ApiError;
use crate::idp::ClientCredentials;
use crate::state::AppState;
use crate::store::{ClientMaterial, OidcSignIn, PendingLogin, SignInOutcome};

pub use page::Refusal;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/oidc/discover", get(discover))
        .route("/auth/oidc/{connection_id}/login", get(login))
        .route("/auth/oidc/{connection_id}/callback", get(callback))
        .route("/auth/oidc/backchannel-logout", post(backchannel_logout))
}

/// The cookie that ties a login to the browser that began it: without it, someone could send
/// a victim the callback link of a login they began themselves and sign the victim in as
/// themselves (login CSRF).
fn binding_cookie(state: &AppState) -> (&'static str, &'static str) {
    if state.config.public_url().scheme() == "https" {
        ("__Host-rolegate_oidc", "; Secure")
    } else {
        ("rolegate_oidc", "")
    }
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn random_token() -> Result<String, Refusal> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Refusal::internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

fn redirect_uri(state: &AppState, id: Uuid) -> String {
    crate::idp::connections::redirect_uri(&state.config.public_url(), id)
}

#[derive(Deserialize)]
struct DiscoverParams {
    email: String,
}

/// Home-realm discovery: which connection an e-mail's domain signs in through. Routing only:
/// it says nothing about whether the address exists.
async fn discover(
    State(state): State<AppState>,
    Query(params): Query<DiscoverParams>,
) -> Result<Response, ApiError> {
    let connection = home_realm(&state, &params.email)
        .await?
        .ok_or(ApiError::NotFound)?;
    let hint: String =
        url::form_urlencoded::byte_serialize(params.email.trim().as_bytes()).collect();
    Ok(axum::Json(json!({
        "connection_id": connection.id,
        "org_id": connection.org_id,
        "login_url": format!("/auth/oidc/{}/login?login_hint={hint}", connection.id),
    }))
    .into_response())
}

/// The connection an e-mail's domain signs in through, if any (also the console's SSO
/// form). An input that is no e-mail address is a 422 naming `email`.
pub async fn home_realm(
    state: &AppState,
    email: &str,
) -> Result<Option<crate::domain::oidc::Connection>, ApiError> {
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .and_then(|d| rules::normalize_domain(d).ok())
        .ok_or_else(|| ApiError::invalid("email", "expected an e-mail address"))?;
    Ok(state.store.oidc_connection_for_domain(&domain).await?)
}

/// The path that starts an SSO login through `connection_id`, back to `return_to` after.
pub fn login_path(connection_id: Uuid, return_to: &str, login_hint: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("return_to", return_to);
    if let Some(hint) = login_hint {
        query.append_pair("login_hint", hint.trim());
    }
    format!("/auth/oidc/{connection_id}/login?{}", query.finish())
}

#[derive(Deserialize)]
struct LoginParams {
    return_to: Option<String>,
    login_hint: Option<String>,
}

async fn connection(state: &AppState, raw: &str) -> Result<ClientMaterial, Refusal> {
    let id = Uuid::parse_str(raw).map_err(|_| Refusal::unknown_connection())?;
    state
        .store
        .find_oidc_connection(id)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => Refusal::unknown_connection(),
            other => Refusal::internal(other.to_string()),
        })
}

/// Where the browser goes once an OIDC session has ended here: the provider's end-session
/// endpoint, when it has one, so the provider's own session ends too (RP-initiated logout).
/// `None` for other sessions, for providers without the endpoint, and when the connection is
/// gone. Read before the session ends: ending it drops the ID token it kept.
pub async fn end_session_redirect(
    state: &AppState,
    session: &crate::domain::session::Session,
    secret_hash: &[u8; 32],
) -> Option<String> {
    let connection_id = session.oidc_connection_id?;
    let material = match state.store.find_oidc_connection(connection_id).await {
        Ok(material) => material,
        Err(error) => {
            tracing::info!(%error, connection = %connection_id, "no RP-initiated logout");
            return None;
        }
    };
    let endpoint = material
        .metadata
        .get("end_session_endpoint")
        .and_then(Value::as_str)?;
    let hint = match state
        .store
        .id_token_hint(session.tenant_id, session.id)
        .await
    {
        Ok(Some(sealed)) => state
            .keyring
            .open(secret_hash, &sealed)
            .ok()
            .and_then(|plain| String::from_utf8(plain).ok()),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "the session's ID token could not be read");
            None
        }
    };
    rules::end_session_url(
        endpoint,
        &material.connection.client_id,
        hint.as_deref(),
        &crate::idp::connections::post_logout_redirect_uri(&state.config.public_url()),
    )
}

/// Starts a login: 303 to the provider's authorization endpoint.
async fn login(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Query<LoginParams>,
) -> Result<Response, Refusal> {
    let material = connection(&state, &raw).await?;
    let c = &material.connection;
    let return_to = rules::safe_return_to(params.return_to.as_deref())
        .map_err(|m| Refusal::bad_request("bad_return_to", m))?;
    let authorize = material
        .metadata
        .get("authorization_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::internal("no authorization_endpoint"))?;
    let mut url = url::Url::parse(authorize).map_err(|e| Refusal::internal(e.to_string()))?;
    let (login_state, nonce, verifier) = (random_token()?, random_token()?, random_token()?);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    state
        .store
        .begin_oidc_login(
            &hash(&login_state),
            &PendingLogin {
                tenant_id: c.tenant_id,
                connection_id: c.id,
                nonce: nonce.clone(),
                pkce_verifier: verifier,
                return_to,
                expires_at: crate::domain::now() + chrono::Duration::seconds(LOGIN_TTL_SECS),
            },
        )
        .await
        .map_err(|e| Refusal::internal(e.to_string()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &c.client_id)
            .append_pair("redirect_uri", &redirect_uri(&state, c.id))
            .append_pair("scope", &c.scopes.join(" "))
            .append_pair("state", &login_state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = params
            .login_hint
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty() && h.len() <= 256)
        {
            q.append_pair("login_hint", hint);
        }
    }
    let (name, secure) = binding_cookie(&state);
    let cookie = format!(
        "{name}={}; Path=/; Max-Age={LOGIN_TTL_SECS}; HttpOnly; SameSite=Lax{secure}",
        URL_SAFE_NO_PAD.encode(hash(&login_state))
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(url.as_str()).map_err(|e| Refusal::internal(e.to_string()))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// The provider's answer: the login completes, or a page says why not.
async fn callback(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Query<CallbackParams>,
    parts: axum::http::request::Parts,
) -> Result<Response, Refusal> {
    let request_headers = &parts.headers;
    let login_state = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Refusal::bad_request("missing_state", "the provider's answer has no state")
        })?;
    let state_hash = hash(login_state);
    // Taken first, whatever follows: a state is good for one answer only.
    let pending = state
        .store
        .take_oidc_login(&state_hash)
        .await
        .map_err(|e| Refusal::internal(e.to_string()))?
        .ok_or_else(|| {
            Refusal::bad_request(
                "state_unknown",
                "this sign-in link was used already or never issued; start again",
            )
        })?;
    let material = connection(&state, &raw).await?;
    if pending.connection_id != material.connection.id {
        return Err(Refusal::bad_request(
            "state_unknown",
            "this sign-in was started for another connection; start again",
        ));
    }
    if pending.expires_at < crate::domain::now() {
        return Err(Refusal::bad_request(
            "login_expired",
            "the sign-in took longer than 10 minutes; start again",
        ));
    }
    let (cookie_name, _) = binding_cookie(&state);
    let bound = URL_SAFE_NO_PAD.encode(state_hash);
    if cookie_value(request_headers, cookie_name) != Some(bound.as_str()) {
        return Err(Refusal::bad_request(
            "state_not_this_browser",
            "this sign-in was started in another browser; start again here",
        ));
    }
    if let Some(error) = params.error.as_deref() {
        // RFC 6749 §4.1.2.1: the code is from a fixed list; the description may echo input.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(Refusal::bad_request(
            "provider_error",
            format!("the provider refused the sign-in: {code}"),
        ));
    }
    let metadata = &material.metadata;
    let connection = &material.connection;
    // RFC 9207 §2.4: when the provider says it sends `iss`, it must be there and be its
    // issuer — an answer from another provider (mix-up) is refused.
    let advertised = metadata
        .get("authorization_response_iss_parameter_supported")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let expected_iss = metadata
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or(&connection.issuer);
    match params.iss.as_deref() {
        Some(iss)
            if iss != expected_iss && !expected_iss.contains(rules::ENTRA_TENANT_PLACEHOLDER) =>
        {
            return Err(Refusal::bad_request(
                "iss_mismatch",
                "the answer names another issuer than this connection's provider",
            ));
        }
        None if advertised => {
            return Err(Refusal::bad_request(
                "iss_missing",
                "the provider promises an iss parameter and sent none",
            ));
        }
        _ => {}
    }
    let code = params
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Refusal::bad_request("missing_code", "the provider's answer has no code"))?;
    let tokens = exchange(&state, &material, code, &pending.pkce_verifier).await?;
    let (claims, alg) = state
        .idp
        .verify_signature(metadata, &tokens.id_token)
        .await
        .map_err(|e| Refusal::bad_request(e.code(), e.to_string()))?;
    let expected = Expected {
        issuer: &connection.issuer,
        allowed_tenants: &connection.allowed_tenants,
        client_id: &connection.client_id,
        nonce: &pending.nonce,
        now: crate::domain::now(),
        access_token: tokens.access_token.as_deref(),
        alg: &alg,
        require_mfa: connection.require_mfa,
        groups_claim: &connection.groups_claim,
    };
    let mut verified = rules::check_id_token(&claims, &expected).map_err(|r| {
        if r.is_policy() {
            Refusal::forbidden(r.code(), r.message())
        } else {
            Refusal::bad_request(r.code(), r.message())
        }
    })?;
    if let Some(access_token) = tokens.access_token.as_deref() {
        match state.idp.userinfo(metadata, access_token).await {
            Ok(Some(info)) => {
                if !rules::merge_userinfo(&mut verified, &info, &connection.groups_claim) {
                    tracing::warn!(connection = %connection.id, "userinfo sub differs from the ID token's: ignored");
                }
            }
            Ok(None) => {}
            // The ID token is enough to sign in; userinfo only fills gaps.
            Err(error) => tracing::warn!(connection = %connection.id, %error, "userinfo failed"),
        }
    }
    let groups = match &verified.groups {
        Groups::Values(v) => Some(v.clone()),
        Groups::Absent => Some(Vec::new()),
        Groups::Overage => None,
    };
    let ctx = crate::request::audit_ctx(
        &parts.extensions,
        Actor::OidcLogin {
            connection_id: connection.id,
            subject: verified.subject.clone(),
        },
    );
    let outcome = state
        .store
        .oidc_sign_in(
            &ctx,
            connection.tenant_id,
            &OidcSignIn {
                connection_id: connection.id,
                org_id: connection.org_id,
                provisioning: connection.provisioning,
                issuer: verified.issuer.clone(),
                subject: verified.subject.clone(),
                email: verified.email.clone(),
                email_verified: verified.email_verified,
                name: verified.name.clone(),
                groups,
            },
        )
        .await
        .map_err(|e| Refusal::internal(e.to_string()))?;
    let user_id = match outcome {
        SignInOutcome::SignedIn { user_id, .. } => user_id,
        SignInOutcome::Refused(refusal) => {
            return Err(Refusal::forbidden(
                refusal.code(),
                page::sign_in_refusal(refusal),
            ));
        }
    };
    let started = crate::session::start_from(
        &state,
        request_headers,
        Some(crate::request::client_addr(&parts.extensions)),
        crate::session::NewSession {
            user_id,
            method: crate::session::SignInMethod::Oidc {
                connection_id: connection.id,
                issuer: verified.issuer.clone(),
                subject: verified.subject.clone(),
                sid: verified.sid.clone(),
            },
            id_token: Some(tokens.id_token.clone()),
        },
    )
    .await
    .map_err(|e| match e {
        crate::session::SessionError::Inactive => Refusal::forbidden(
            "user_inactive",
            page::sign_in_refusal(crate::store::SignInRefusal::Inactive),
        ),
        other => Refusal::internal(other.to_string()),
    })?;
    let mut response = started.redirect_to(&pending.return_to);
    // The login is over: the browser binding goes.
    let (name, secure) = binding_cookie(&state);
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if matches!(verified.groups, Groups::Overage) {
        tracing::info!(user = %user_id, connection = %connection.id, "signed in without OIDC groups (overage)");
    }
    Ok(response)
}

/// The token request, authenticated as the connection says.
async fn exchange(
    state: &AppState,
    material: &ClientMaterial,
    code: &str,
    verifier: &str,
) -> Result<crate::idp::Tokens, Refusal> {
    let c = &material.connection;
    let open = |sealed: &Option<(Uuid, crate::domain::secret::Sealed)>| {
        let (id, sealed) = sealed
            .as_ref()
            .ok_or_else(|| Refusal::internal("the connection has no stored credential"))?;
        state
            .keyring
            .open(id.as_bytes(), sealed)
            .map_err(|e| Refusal::internal(e.to_string()))
    };
    let secret_text;
    let key_bytes;
    let kid;
    let credentials = match c.client_auth {
        rules::ClientAuth::ClientSecretBasic | rules::ClientAuth::ClientSecretPost => {
            secret_text = String::from_utf8(open(&material.client_secret)?)
                .map_err(|e| Refusal::internal(e.to_string()))?;
            if c.client_auth == rules::ClientAuth::ClientSecretBasic {
                ClientCredentials::Basic {
                    client_id: &c.client_id,
                    secret: &secret_text,
                }
            } else {
                ClientCredentials::Post {
                    client_id: &c.client_id,
                    secret: &secret_text,
                }
            }
        }
        rules::ClientAuth::PrivateKeyJwt => {
            key_bytes = open(&material.signing_key)?;
            kid = c
                .public_jwk
                .as_ref()
                .and_then(|j| j.get("kid"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            ClientCredentials::PrivateKeyJwt {
                client_id: &c.client_id,
                pkcs8: &key_bytes,
                kid: &kid,
            }
        }
    };
    state
        .idp
        .exchange_code(
            &material.metadata,
            &credentials,
            code,
            &redirect_uri(state, c.id),
            verifier,
        )
        .await
        .map_err(|e| {
            Refusal::bad_request(
                "token_exchange_failed",
                format!("the provider did not exchange the code: {e}"),
            )
        })
}

#[derive(Deserialize)]
struct LogoutForm {
    logout_token: Option<String>,
}

/// OpenID Connect Back-Channel Logout 1.0 §2.8: 200 when the token is good (sessions ended,
/// or none to end), 400 with an error otherwise. Answered in JSON (§2.8 names the OAuth error
/// form), never cached.
async fn backchannel_logout(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let form: LogoutForm =
        serde_urlencoded::from_bytes(&body).unwrap_or(LogoutForm { logout_token: None });
    let answer = match form.logout_token.as_deref() {
        None => Err(("invalid_request", "no logout_token".to_owned())),
        Some(token) => end_sessions(&state, token).await,
    };
    let (status, body) = match answer {
        Ok(ended) => (StatusCode::OK, json!({ "ended": ended })),
        Err((code, message)) => (
            StatusCode::BAD_REQUEST,
            json!({ "error": code, "error_description": message }),
        ),
    };
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

async fn end_sessions(state: &AppState, token: &str) -> Result<u64, (&'static str, String)> {
    let invalid = |m: &str| ("invalid_request", m.to_owned());
    // §2.6: the token's issuer picks the connection(s) whose keys may have signed it.
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .map_err(|_| invalid("the logout_token is not a JWT"))?
        .claims;
    let issuer = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the logout_token has no iss"))?;
    let audiences: Vec<&str> = match unverified.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let header = crate::idp::jwt_header(token).map_err(|e| invalid(&e.to_string()))?;
    if let Some(typ) = header.get("typ").and_then(Value::as_str)
        && !typ.eq_ignore_ascii_case("logout+jwt")
    {
        return Err(invalid("the logout_token's typ is not logout+jwt"));
    }
    let connections = state
        .store
        .oidc_connections_for_issuer(issuer)
        .await
        .map_err(|e| ("temporarily_unavailable", e.to_string()))?;
    let material = connections
        .into_iter()
        .find(|m| {
            rules::connection_issues(&m.connection, issuer)
                && audiences.contains(&m.connection.client_id.as_str())
        })
        .ok_or_else(|| invalid("no connection of this issuer and audience"))?;
    let (claims, _) = state
        .idp
        .verify_signature(&material.metadata, token)
        .await
        .map_err(|e| invalid(&e.to_string()))?;
    let now = crate::domain::now().timestamp();
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("the logout_token has no iat"))?;
    if iat > now + rules::LEEWAY_SECS || iat < now - 600 {
        return Err(invalid("the logout_token's iat is too far from now"));
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp + rules::LEEWAY_SECS < now
    {
        return Err(invalid("the logout_token has expired"));
    }
    if claims.get("nonce").is_some() {
        return Err(invalid("a logout_token must not have a nonce"));
    }
    if claims
        .get("events")
        .and_then(|e| e.get(BACKCHANNEL_EVENT))
        .is_none_or(|e| !e.is_object())
    {
        return Err(invalid("the logout_token has no back-channel logout event"));
    }
    let subject = claims.get("sub").and_then(Value::as_str);
    let sid = claims.get("sid").and_then(Value::as_str);
    if subject.is_none() && sid.is_none() {
        return Err(invalid("the logout_token has neither sub nor sid"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the logout_token has no jti"))?;
    let keep_until = chrono::DateTime::from_timestamp(now + 600 + rules::LEEWAY_SECS, 0)
        .unwrap_or_else(crate::domain::now);
    let fresh = state
        .store
        .oidc_logout_jti_fresh(issuer, jti, keep_until)
        .await
        .map_err(|e| ("temporarily_unavailable", e.to_string()))?;
    if !fresh {
        return Err(invalid("this logout_token was used already (jti replayed)"));
    }
    crate::session::end_by_oidc(state, material.connection.id, issuer, subject, sid)
        .await
        .map_err(|e| ("temporarily_unavailable", e.to_string()))
}
