//! The admin REST API under `/api/v1`, authenticated by an admin token, and its OpenAPI
//! document.

pub(crate) mod audit;
mod authz;
mod doc;
mod extract;
mod idp_groups;
pub(crate) mod invitations;
pub(crate) mod mappings;
mod me;
pub(crate) mod members;
pub(crate) mod oidc_connections;
pub(crate) mod orgs;
mod outbox;
mod page;
mod product_members;
pub(crate) mod products;
pub(crate) mod reach;
mod sessions;
pub(crate) mod tokens;
mod users;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use axum::{Extension, Json, Router};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{self, Principal};
use crate::domain::audit::Actor;
use crate::domain::token::TokenKind;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Ctx;

/// Where the admin API is mounted. The document's paths include it.
pub const BASE_PATH: &str = "/api/v1";

/// The admin API at `/api/v1`, with its OpenAPI document at `/api/v1/openapi.json`. Both come
/// from one list: each `routes!` entry routes handlers and adds their `#[utoipa::path]`
/// descriptions, so the document cannot drift from what is served.
pub fn router() -> Router<AppState> {
    let (router, document) = routes_and_document();
    router.layer(Extension(Arc::new(document)))
}

fn routes_and_document() -> (Router<AppState>, OpenApi) {
    let api = OpenApiRouter::default()
        .routes(routes!(openapi_json))
        .merge(orgs::router())
        .merge(members::router())
        .merge(products::router())
        .merge(tokens::router())
        .merge(invitations::router())
        .merge(outbox::router())
        .merge(audit::router())
        .merge(users::router())
        .merge(product_members::router())
        .merge(idp_groups::router())
        .merge(authz::router())
        .merge(mappings::router())
        .merge(me::router())
        .merge(sessions::router())
        .merge(oidc_connections::router());
    OpenApiRouter::with_openapi(doc::document())
        .nest(BASE_PATH, api)
        .split_for_parts()
}

#[cfg(test)]
mod tests {
    /// A requirement listed for a route that does not exist protects nothing — and a mistyped
    /// read would fail open, to "any member": each entry must name a documented operation.
    #[test]
    fn every_listed_user_need_names_an_operation() {
        let (_, document) = super::routes_and_document();
        for (method, route) in super::reach::listed_user_needs() {
            let item = document
                .paths
                .paths
                .get(route)
                .unwrap_or_else(|| panic!("{route} is not a route"));
            let operation = match method {
                "GET" => &item.get,
                "PUT" => &item.put,
                "POST" => &item.post,
                "PATCH" => &item.patch,
                "DELETE" => &item.delete,
                other => panic!("{other} {route}: not a method the API uses"),
            };
            assert!(operation.is_some(), "{method} {route} is not an operation");
        }
    }
}

/// This document: the admin API in OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object)
    )
)]
async fn openapi_json(Extension(document): Extension<Arc<OpenApi>>) -> Response {
    Json(document.as_ref()).into_response()
}

/// `Cache-Control: no-store` on a response that carries a secret (a token) or is the one place
/// a secret was just minted (an invitation link): no cache between us and the caller may keep
/// a copy.
pub(crate) struct NoStore;

impl IntoResponseParts for NoStore {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(res)
    }
}

/// Why a token is refused what only a signed-in user has.
pub(crate) const USERS_ONLY: &str = "for signed-in users only: a token is not a person";

/// Who calls the admin API: an admin token, or a signed-in user (the session cookie).
#[derive(Debug, Clone)]
pub enum Caller {
    Token(Principal),
    User(SignedInUser),
}

/// A signed-in user calling the admin API, and what the route asks of them.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub session: Arc<crate::domain::session::Session>,
    /// The orgs the user is a direct member of: their reach is these and the orgs below.
    pub member_of: Vec<Uuid>,
    /// What this route requires of a user (see [`reach::user_need`]).
    pub need: reach::UserNeed,
}

/// An admin caller, and the write context its changes are audited under.
pub struct AdminAuth {
    pub caller: Caller,
    pub ctx: Ctx,
}

impl AdminAuth {
    pub fn tenant_id(&self) -> Uuid {
        match &self.caller {
            Caller::Token(p) => p.tenant_id(),
            Caller::User(u) => u.session.tenant_id,
        }
    }

    /// The org a request that names none is about: the token's, or the user's highest
    /// membership (the tenant's root when they are a member there).
    pub fn home_org(&self) -> Uuid {
        match &self.caller {
            Caller::Token(p) => p.org_id(),
            Caller::User(u) => {
                let tenant = u.session.tenant_id;
                if u.member_of.contains(&tenant) {
                    tenant
                } else {
                    u.member_of.first().copied().unwrap_or(tenant)
                }
            }
        }
    }

    /// The signed-in user behind the request; a token is refused (403): what is asked is the
    /// person's own (`/me`, their sessions), and a token is nobody.
    pub fn signed_in_user(&self) -> Result<&SignedInUser, ApiError> {
        match &self.caller {
            Caller::User(user) => Ok(user),
            Caller::Token(_) => Err(ApiError::Forbidden(USERS_ONLY)),
        }
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A bearer token decides when there is one — one of ours (`rg_…`) or a session token
        // (a JWT); otherwise the session cookie.
        let mode = state.config.cookie_mode();
        match auth::bearer(parts) {
            None => {
                if let Some(secret) = crate::session::presented(&parts.headers, mode) {
                    return signed_in(parts, state, secret.to_owned()).await;
                }
            }
            Some(bearer) if crate::domain::session_token::looks_like_one(bearer) => {
                let bearer = bearer.to_owned();
                return by_session_token(parts, state, &bearer).await;
            }
            Some(_) => {}
        }
        let principal = auth::authenticate(state, parts, &[TokenKind::Admin]).await?;
        let actor = Actor::AdminToken {
            id: principal.token.id,
            name: principal.token.name.clone(),
        };
        Ok(AdminAuth {
            caller: Caller::Token(principal),
            ctx: crate::request::audit_ctx(&parts.extensions, actor),
        })
    }
}

fn session_refused(refusal: crate::authz::sessions::SessionRefusal) -> ApiError {
    match refusal {
        crate::authz::sessions::SessionRefusal::Store(e) => ApiError::from(e),
        other => ApiError::Unauthorized(other.reason()),
    }
}

/// The signed-in user behind a session cookie: the session checked (a cache read), and — for
/// anything but a read — the request shown not to come from another site.
async fn signed_in(parts: &Parts, state: &AppState, secret: String) -> Result<AdminAuth, ApiError> {
    let hash = crate::domain::session::hash_secret(&secret);
    let session = state.sessions.check(&hash).await.map_err(session_refused)?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        crate::session::check_csrf(state, &parts.headers, &secret, None)
            .map_err(|refusal| ApiError::Forbidden(refusal.message()))?;
    }
    as_user(parts, state, session).await
}

/// The signed-in user behind a session token (`POST /auth/token`): its signature, issuer and
/// lifetime checked, then the session it names — still live, still this user's — like a
/// cookie's. No CSRF check: a bearer header is never sent by a browser on its own.
async fn by_session_token(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<AdminAuth, ApiError> {
    let keys = &state.signing_keys;
    let issuer = state.config.public_url();
    let claims = keys
        .verify(token, issuer.as_str().trim_end_matches('/'))
        .map_err(|_| ApiError::Unauthorized("invalid session token"))?;
    let session = state
        .sessions
        .check_id(claims.tid, claims.sid)
        .await
        .map_err(session_refused)?;
    if session.user_id != claims.sub {
        return Err(ApiError::Unauthorized("invalid session token"));
    }
    as_user(parts, state, session).await
}

/// The caller a live session makes, with what this route asks of a user.
async fn as_user(
    parts: &Parts,
    state: &AppState,
    session: Arc<crate::domain::session::Session>,
) -> Result<AdminAuth, ApiError> {
    let matched = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    user_caller(state, &parts.extensions, session, &parts.method, &matched).await
}

/// The signed-in user of a live session as an admin caller held to what the API's `method`
/// on `route` (as `USER_NEEDS` names routes, e.g. `/api/v1/orgs/{org_id}/invitations`)
/// requires of a user. The console acts through this, so a page allows exactly what the same
/// API call would.
pub(crate) async fn user_caller(
    state: &AppState,
    extensions: &axum::http::Extensions,
    session: Arc<crate::domain::session::Session>,
    method: &axum::http::Method,
    route: &str,
) -> Result<AdminAuth, ApiError> {
    let user = state
        .store
        .get_user(session.tenant_id, session.user_id)
        .await?;
    let need = reach::user_need(method, route);
    let actor = Actor::User {
        id: user.user.id,
        email: user
            .user
            .email
            .clone()
            .unwrap_or(user.user.user_name.clone()),
    };
    Ok(AdminAuth {
        caller: Caller::User(SignedInUser {
            session,
            member_of: user.memberships.iter().map(|m| m.org_id).collect(),
            need,
        }),
        ctx: crate::request::audit_ctx(extensions, actor),
    })
}
