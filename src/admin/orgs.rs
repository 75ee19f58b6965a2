use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AdminAuth;
use crate::domain::org::{self, Org};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs", get(list_orgs).post(create_org))
        .route(
            "/orgs/{org_id}",
            get(get_org).patch(rename_org).delete(delete_org),
        )
}

#[derive(Serialize)]
struct OrgList {
    orgs: Vec<Org>,
}

/// The orgs this caller reaches, as a flat list with parent ids (the tree, root first).
async fn list_orgs(
    State(state): State<AppState>,
    admin: AdminAuth,
) -> Result<ApiJson<OrgList>, ApiError> {
    let all = state.store.list_orgs(admin.tenant_id()).await?;
    let reach = admin.principal.org_id();
    let orgs = all
        .iter()
        .filter(|o| {
            org::chain_to_root(o.id, |id| {
                all.iter().find(|x| x.id == id).map(|x| x.parent_id)
            })
            .contains(&reach)
        })
        .cloned()
        .collect();
    Ok(ApiJson(OrgList { orgs }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    parent_id: Uuid,
}

async fn create_org(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiJson(body): ApiJson<NewOrg>,
) -> Result<(StatusCode, ApiJson<Org>), ApiError> {
    let name = org::validate_name(&body.name).map_err(|m| ApiError::invalid("name", m))?;
    admin.org(&state, body.parent_id).await?;
    let created = state
        .store
        .create_sub_org(&admin.ctx, admin.tenant_id(), body.parent_id, &name)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

async fn get_org(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
) -> Result<ApiJson<Org>, ApiError> {
    Ok(ApiJson(admin.org(&state, org_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename_org(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
    ApiJson(body): ApiJson<Rename>,
) -> Result<ApiJson<Org>, ApiError> {
    let name = org::validate_name(&body.name).map_err(|m| ApiError::invalid("name", m))?;
    admin.org(&state, org_id).await?;
    Ok(ApiJson(
        state
            .store
            .rename_org(&admin.ctx, admin.tenant_id(), org_id, &name)
            .await?,
    ))
}

async fn delete_org(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    admin.org(&state, org_id).await?;
    state
        .store
        .delete_org(&admin.ctx, admin.tenant_id(), org_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
