//! `POST /auth/token` (the signed-in browser's session → a short-lived signed session token)
//! and `GET /.well-known/jwks.json` (the public keys that verify it). The token rules are
//! `domain::session_token`'s.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::authz::sessions::SessionRefusal;
use crate::domain::session::{self, Session};
use crate::domain::session_token::{LIFETIME_SECS, SessionClaims, SigningKeys, TokenError};
use crate::state::AppState;

/// The header a cookie-authenticated request echoes the CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/token", post(mint))
        .route("/.well-known/jwks.json", get(jwks))
}

/// Why no token was minted: the caller's fault (401/403) or the operator's (503).
enum Refused {
    NoSession(&'static str),
    Csrf,
    Tokens(TokenError),
    Unavailable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Refused::NoSession(reason) => (StatusCode::UNAUTHORIZED, "unauthenticated", reason),
            Refused::Csrf => (
                StatusCode::FORBIDDEN,
                "csrf",
                "echo the rolegate_csrf cookie in an X-CSRF-Token header",
            ),
            Refused::Tokens(TokenError::NoKey) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "session_tokens_unavailable",
                "session tokens need ROLEGATE_SECRET_KEY: their signing key is derived from it",
            ),
            Refused::Tokens(_) | Refused::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "service unavailable; try again",
            ),
        };
        (
            status,
            [(CACHE_CONTROL, "no-store")],
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}

fn signing_keys(state: &AppState) -> Result<Arc<SigningKeys>, Refused> {
    Ok(state.signing_keys.clone())
}

/// The live session the request's cookie names, with the CSRF token echoed: minting is only
/// for the page's own scripts, never for a form another site posts.
async fn session_of(state: &AppState, headers: &HeaderMap) -> Result<Arc<Session>, Refused> {
    let mode = state.config.cookie_mode();
    let secret = super::presented(headers, mode).ok_or(Refused::NoSession("not signed in"))?;
    let echoed = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refused::Csrf)?;
    if !session::csrf_matches(secret, echoed) {
        return Err(Refused::Csrf);
    }
    match state.sessions.check(&session::hash_secret(secret)).await {
        Ok(found) => Ok(found),
        Err(SessionRefusal::Store(error)) => {
            tracing::warn!(%error, "session check for a session token");
            Err(Refused::Unavailable)
        }
        Err(refusal) => Err(Refused::NoSession(refusal.reason())),
    }
}

async fn mint(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Refused> {
    let keys = signing_keys(&state)?;
    let found = session_of(&state, &headers).await?;
    let issuer = state.config.public_url();
    let claims = SessionClaims::new(
        issuer.as_str().trim_end_matches('/'),
        found.user_id,
        found.id,
        found.tenant_id,
        crate::domain::now().timestamp(),
    );
    let token = keys.mint(&claims).map_err(Refused::Tokens)?;
    Ok((
        [(CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": LIFETIME_SECS,
        })),
    )
        .into_response())
}

async fn jwks(State(state): State<AppState>) -> Result<Response, Refused> {
    let keys = signing_keys(&state)?;
    // Short enough that a rotation's new key is fetched within minutes.
    Ok(([(CACHE_CONTROL, "public, max-age=300")], Json(keys.jwks())).into_response())
}
