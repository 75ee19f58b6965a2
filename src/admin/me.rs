//! Who is calling: the caller's own identity, read from its credential alone. What a client
//! checks its token with — and, doing no other work, the authenticated route the authz bench
//! measures permission checks against.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminAuth;
use super::doc::AuthErrors;
use super::extract::ApiJson;
use crate::domain::token::Token;
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(me))
}

#[derive(Serialize, ToSchema)]
struct Me {
    /// What authenticated the request: `admin_token` (signed-in users come with SSO).
    kind: &'static str,
    /// The token, without its secret: its org, expiry and when it was last used.
    token: Token,
}

/// The caller.
#[utoipa::path(
    get,
    path = "/me",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's identity.", body = Me),
        AuthErrors
    )
)]
async fn me(admin: AdminAuth) -> ApiJson<Me> {
    ApiJson(Me {
        kind: "admin_token",
        token: admin.principal.token,
    })
}
