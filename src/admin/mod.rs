//! The admin REST API under `/api/v1`, authenticated by an admin token, and its OpenAPI
//! document.

mod audit;
mod authz;
mod doc;
mod extract;
mod idp_groups;
mod invitations;
mod mappings;
mod me;
mod members;
mod oidc_connections;
mod orgs;
mod outbox;
mod page;
mod product_members;
mod products;
mod reach;
mod tokens;
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
        .merge(oidc_connections::router());
    let (router, document) = OpenApiRouter::with_openapi(doc::document())
        .nest(BASE_PATH, api)
        .split_for_parts();
    router.layer(Extension(Arc::new(document)))
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

/// An admin caller: the token, and the write context its changes are audited under.
pub struct AdminAuth {
    pub principal: Principal,
    pub ctx: Ctx,
}

impl AdminAuth {
    pub fn tenant_id(&self) -> Uuid {
        self.principal.tenant_id()
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = auth::authenticate(state, parts, &[TokenKind::Admin]).await?;
        let actor = Actor::AdminToken {
            id: principal.token.id,
            name: principal.token.name.clone(),
        };
        Ok(AdminAuth {
            principal,
            ctx: crate::request::audit_ctx(&parts.extensions, actor),
        })
    }
}
