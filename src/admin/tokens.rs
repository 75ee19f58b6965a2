use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::doc::{AuthErrors, BadBody, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiQuery};
use super::page::PageSize;
use super::reach::InReach;
use super::{AdminAuth, Caller, NoStore};
use crate::auth::{IssueError, Minter, TokenRequest, issue_token};
use crate::domain::provisioning::ScimRequestError;
use crate::domain::token::{Token, TokenKind};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(token_errors))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Default: the caller's own org.
    org_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
struct TokenList {
    tokens: Vec<Token>,
}

/// The tokens of one org, revoked and expired ones included.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "The tokens (never their secrets).", body = TokenList),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn list_tokens(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<TokenList>, ApiError> {
    let org_id = params.org_id.unwrap_or(admin.home_org());
    let tokens = list(&state, &admin, org_id).await?;
    Ok(ApiJson(TokenList { tokens }))
}

/// The tokens of `org_id`, if it is within the caller's reach: `GET /tokens` and the console.
pub(crate) async fn list(
    state: &AppState,
    admin: &AdminAuth,
    org_id: Uuid,
) -> Result<Vec<Token>, ApiError> {
    admin.org(state, org_id).await?;
    Ok(state
        .store
        .list_tokens(admin.tenant_id(), Some(org_id))
        .await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    pub(crate) kind: TokenKind,
    /// 1 to 100 characters, trimmed; a default is chosen when absent.
    pub(crate) name: Option<String>,
    /// Default: the caller's own org.
    pub(crate) org_id: Option<Uuid>,
    /// 1 to 3650; default: never expires. Never later than the calling token's own expiry:
    /// a token minted by an expiring token expires with it at the latest.
    #[schema(minimum = 1, maximum = 3650)]
    pub(crate) expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct CreatedToken {
    #[serde(flatten)]
    token: Token,
    /// The secret: returned here once and never again.
    token_secret: String,
}

/// Issues a token for an org within reach; the response carries its secret, once.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "The new token, with its secret.", body = CreatedToken),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadBody, ServerErrors
    )
)]
async fn create_token(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, NoStore, ApiJson<CreatedToken>), ApiError> {
    let (token, secret) = create(&state, &admin, body).await?;
    Ok((
        StatusCode::CREATED,
        NoStore,
        ApiJson(CreatedToken {
            token,
            token_secret: secret,
        }),
    ))
}

/// Issues the token `body` describes, for an org within the caller's reach; returns it with
/// its secret (to be shown once): `POST /tokens` and the console.
pub(crate) async fn create(
    state: &AppState,
    admin: &AdminAuth,
    body: CreateToken,
) -> Result<(Token, String), ApiError> {
    let org_id = body.org_id.unwrap_or(admin.home_org());
    admin.org(state, org_id).await?;
    if let Some(days) = body.expires_in_days
        && !(1..=3650).contains(&days)
    {
        return Err(ApiError::invalid(
            "expires_in_days",
            "must be between 1 and 3650",
        ));
    }
    issue_token(
        state.store.as_ref(),
        &admin.ctx,
        admin.tenant_id(),
        TokenRequest {
            org_id,
            kind: body.kind,
            name: body.name.as_deref(),
            expires_in_days: body.expires_in_days,
        },
        match &admin.caller {
            Caller::Token(principal) => Minter::Token(&principal.token),
            Caller::User(user) => Minter::User(user.session.user_id),
        },
    )
    .await
    .map_err(|e| match e {
        IssueError::InvalidName(msg) => ApiError::invalid("name", msg),
        IssueError::Store(e) => e.into(),
    })
}

/// Revokes a token at once; revoking it again changes nothing.
#[utoipa::path(
    delete,
    path = "/tokens/{token_id}",
    tag = "tokens",
    security(("bearer" = [])),
    params(("token_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The revoked token.", body = Token),
        (status = 404, description = "No such token within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn revoke_token(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<Token>,
) -> Result<ApiJson<Token>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .revoke_token(&admin.ctx, admin.tenant_id(), item.id)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ErrorParams {
    /// At most this many entries (1–100, default 100).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct TokenErrors {
    /// Newest first; the last 100 failed requests of the token are kept.
    errors: Vec<ScimRequestError>,
}

/// The SCIM token's last failed requests, with their SCIM error: why the IdP shows an error.
#[utoipa::path(
    get,
    path = "/tokens/{token_id}/errors",
    tag = "tokens",
    security(("bearer" = [])),
    params(("token_id" = Uuid, Path), ErrorParams),
    responses(
        (status = 200, description = "Failed requests, newest first.", body = TokenErrors),
        (status = 404, description = "No such token within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn token_errors(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<Token>,
    ApiQuery(p): ApiQuery<ErrorParams>,
) -> Result<ApiJson<TokenErrors>, ApiError> {
    let limit = PageSize::TOKEN_ERRORS.limit(p.limit)?;
    let errors = state
        .store
        .list_scim_errors(admin.tenant_id(), item.id, limit)
        .await?;
    Ok(ApiJson(TokenErrors { errors }))
}
