use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Serialize;
use uuid::Uuid;

use super::AdminAuth;
use crate::domain::org::Org;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;
use crate::store::Membership;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org_id}", get(get_org))
        .route("/orgs/{org_id}/members", get(list_members))
}

async fn get_org(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
) -> Result<ApiJson<Org>, ApiError> {
    Ok(ApiJson(admin.org(&state, org_id).await?))
}

#[derive(Serialize)]
struct Members {
    members: Vec<Membership>,
}

async fn list_members(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
) -> Result<ApiJson<Members>, ApiError> {
    admin.org(&state, org_id).await?;
    let members = state
        .store
        .list_memberships(admin.tenant_id(), org_id)
        .await?;
    Ok(ApiJson(Members { members }))
}
