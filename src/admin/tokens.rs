use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AdminAuth;
use crate::auth::{IssueError, issue_token};
use crate::domain::token::{Token, TokenKind};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{token_id}", delete(revoke_token))
}

#[derive(Deserialize)]
struct ListParams {
    org_id: Option<Uuid>,
}

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<Token>,
}

async fn list_tokens(
    State(state): State<AppState>,
    admin: AdminAuth,
    Query(params): Query<ListParams>,
) -> Result<ApiJson<TokenList>, ApiError> {
    let org_id = params.org_id.unwrap_or(admin.principal.org_id());
    admin.org(&state, org_id).await?;
    let tokens = state
        .store
        .list_tokens(admin.tenant_id(), Some(org_id))
        .await?;
    Ok(ApiJson(TokenList { tokens }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    kind: TokenKind,
    name: Option<String>,
    org_id: Option<Uuid>,
    expires_in_days: Option<u32>,
}

#[derive(Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    token: Token,
    /// The secret: returned here once and never again.
    token_secret: String,
}

async fn create_token(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, ApiJson<CreatedToken>), ApiError> {
    let org_id = body.org_id.unwrap_or(admin.principal.org_id());
    admin.org(&state, org_id).await?;
    if let Some(days) = body.expires_in_days
        && !(1..=3650).contains(&days)
    {
        return Err(ApiError::invalid(
            "expires_in_days",
            "must be between 1 and 3650",
        ));
    }
    let (token, secret) = issue_token(
        state.store.as_ref(),
        &admin.ctx,
        admin.tenant_id(),
        org_id,
        body.kind,
        body.name.as_deref(),
        body.expires_in_days,
    )
    .await
    .map_err(|e| match e {
        IssueError::InvalidName(msg) => ApiError::invalid("name", msg),
        IssueError::Store(e) => e.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedToken {
            token,
            token_secret: secret,
        }),
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(token_id): Path<Uuid>,
) -> Result<ApiJson<Token>, ApiError> {
    let target = state.store.find_token(token_id).await?;
    if target.tenant_id != admin.tenant_id() {
        return Err(ApiError::NotFound);
    }
    admin.org(&state, target.org_id).await?;
    Ok(ApiJson(
        state
            .store
            .revoke_token(&admin.ctx, admin.tenant_id(), token_id)
            .await?,
    ))
}
