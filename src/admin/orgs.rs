use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::{AuthErrors, BadBody, BadBodyOrParams, BadParams, ServerErrors};
use super::extract::ApiJson;
use super::reach::{InReach, OrgInReach};
use crate::domain::org::{self, Org};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, rename_org, delete_org))
        .routes(routes!(get_settings, put_settings))
}

/// An org's settings.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OrgSettings {
    /// E-mail sign-in is off for members of this org and the orgs below it: they sign in
    /// through the org's identity provider (Owners keep `rolegate console login-link`).
    require_sso: bool,
}

/// The org's settings.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/settings",
    tag = "orgs",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The settings.", body = OrgSettings),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn get_settings(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
) -> Result<ApiJson<OrgSettings>, ApiError> {
    let require_sso = state.store.require_sso(admin.tenant_id(), item.id).await?;
    Ok(ApiJson(OrgSettings { require_sso }))
}

/// Replaces the org's settings.
#[utoipa::path(
    put,
    path = "/orgs/{org_id}/settings",
    tag = "orgs",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    request_body = OrgSettings,
    responses(
        (status = 200, description = "The settings.", body = OrgSettings),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn put_settings(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiJson(body): ApiJson<OrgSettings>,
) -> Result<ApiJson<OrgSettings>, ApiError> {
    let require_sso = state
        .store
        .set_require_sso(&admin.ctx, admin.tenant_id(), item.id, body.require_sso)
        .await?;
    Ok(ApiJson(OrgSettings { require_sso }))
}

#[derive(Serialize, ToSchema)]
struct OrgList {
    orgs: Vec<Org>,
}

/// The orgs this caller reaches, as a flat list with parent ids (the tree, root first).
#[utoipa::path(
    get,
    path = "/orgs",
    tag = "orgs",
    security(("bearer" = [])),
    responses((status = 200, description = "The orgs within reach.", body = OrgList), AuthErrors, ServerErrors)
)]
async fn list_orgs(
    State(state): State<AppState>,
    admin: AdminAuth,
) -> Result<ApiJson<OrgList>, ApiError> {
    let all = state.store.list_orgs(admin.tenant_id()).await?;
    let reach = admin.reached_orgs(&state).await?;
    let orgs = all.into_iter().filter(|o| reach.contains(o.id)).collect();
    Ok(ApiJson(OrgList { orgs }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    /// 1 to 200 characters, trimmed.
    name: String,
    /// An org this caller reaches.
    parent_id: Uuid,
}

/// Creates a sub-org.
#[utoipa::path(
    post,
    path = "/orgs",
    tag = "orgs",
    security(("bearer" = [])),
    request_body = NewOrg,
    responses(
        (status = 201, description = "The new org.", body = Org),
        (status = 404, description = "No such parent org within reach.", body = ErrorBody),
        AuthErrors, BadBody, ServerErrors
    )
)]
async fn create_org(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiJson(body): ApiJson<NewOrg>,
) -> Result<(StatusCode, ApiJson<Org>), ApiError> {
    let created = create_sub_org(&state, &admin, body.parent_id, &body.name).await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Creates a sub-org of `parent_id` (which the caller must reach): the API's and the console's.
pub(crate) async fn create_sub_org(
    state: &AppState,
    admin: &AdminAuth,
    parent_id: Uuid,
    name: &str,
) -> Result<Org, ApiError> {
    let name = org::NAME
        .validate(name)
        .map_err(|m| ApiError::invalid("name", m))?;
    admin.org(state, parent_id).await?;
    Ok(state
        .store
        .create_sub_org(&admin.ctx, admin.tenant_id(), parent_id, &name)
        .await?)
}

/// One org.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}",
    tag = "orgs",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The org.", body = Org),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn get_org(InReach { item: org, .. }: OrgInReach) -> ApiJson<Org> {
    ApiJson(org)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenameOrg {
    /// 1 to 200 characters, trimmed.
    name: String,
}

/// Renames an org.
#[utoipa::path(
    patch,
    path = "/orgs/{org_id}",
    tag = "orgs",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    request_body = RenameOrg,
    responses(
        (status = 200, description = "The renamed org.", body = Org),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn rename_org(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiJson(body): ApiJson<RenameOrg>,
) -> Result<ApiJson<Org>, ApiError> {
    Ok(ApiJson(rename(&state, &admin, item.id, &body.name).await?))
}

/// Renames an org the caller has been checked on: the API's and the console's.
pub(crate) async fn rename(
    state: &AppState,
    admin: &AdminAuth,
    org_id: Uuid,
    name: &str,
) -> Result<Org, ApiError> {
    let name = org::NAME
        .validate(name)
        .map_err(|m| ApiError::invalid("name", m))?;
    Ok(state
        .store
        .rename_org(&admin.ctx, admin.tenant_id(), org_id, &name)
        .await?)
}

/// Deletes an empty sub-org: no sub-orgs, products or members.
#[utoipa::path(
    delete,
    path = "/orgs/{org_id}",
    tag = "orgs",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        (status = 409, description = "A root org, or one with sub-orgs, products or members.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn delete_org(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_org(&admin.ctx, admin.tenant_id(), item.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
