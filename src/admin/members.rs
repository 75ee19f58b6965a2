use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AdminAuth;
use crate::authz::{self, EffectivePermissions};
use crate::domain::org::OrgRole;
use crate::domain::permission::{Module, ModuleLevel};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;
use crate::store::{MemberQuery, OrgMember, OwnerRule, StoreError};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org_id}/members", get(list_members))
        .route(
            "/orgs/{org_id}/members/{user_id}",
            put(set_member).delete(remove_member),
        )
        .route("/orgs/{org_id}/members/{user_id}/modules", put(set_modules))
        .route(
            "/orgs/{org_id}/members/{user_id}/permissions",
            get(permissions),
        )
}

#[derive(Deserialize)]
struct ListParams {
    search: Option<String>,
    after: Option<Uuid>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct MemberPage {
    members: Vec<OrgMember>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<Uuid>,
}

async fn list_members(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
    Query(p): Query<ListParams>,
) -> Result<ApiJson<MemberPage>, ApiError> {
    admin.org(&state, org_id).await?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let query = MemberQuery {
        search: p.search,
        after: p.after,
        user_id: None,
        limit,
    };
    let members = state
        .store
        .list_members(admin.tenant_id(), org_id, &query)
        .await?;
    let next = (members.len() == limit as usize)
        .then(|| members.last().map(|m| m.user.id))
        .flatten();
    Ok(ApiJson(MemberPage { members, next }))
}

/// A member's new effective permissions on every product of the org, returned by each change.
#[derive(Serialize)]
struct MemberChange {
    member: Option<OrgMember>,
    permissions: Vec<EffectivePermissions>,
}

async fn member_change(
    state: &AppState,
    admin: &AdminAuth,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<MemberChange, ApiError> {
    let tenant = admin.tenant_id();
    let products = state.store.list_products(tenant, org_id).await?;
    let mut permissions = Vec::new();
    for product in products {
        match state.store.member_facts(tenant, user_id, product.id).await {
            Ok((user, facts)) => permissions.push(authz::evaluate(&user, &facts)),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let query = MemberQuery {
        user_id: Some(user_id),
        limit: 1,
        ..Default::default()
    };
    let member = state
        .store
        .list_members(tenant, org_id, &query)
        .await?
        .into_iter()
        .next();
    Ok(MemberChange {
        member,
        permissions,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetMember {
    /// `owner`, `member`, or `null` to inherit the role from the parent org.
    role: Option<OrgRole>,
}

/// Adds an existing user of the tenant to the org, or changes their role there.
async fn set_member(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path((org_id, user_id)): Path<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<SetMember>,
) -> Result<ApiJson<MemberChange>, ApiError> {
    admin.org(&state, org_id).await?;
    state
        .store
        .set_membership(
            &admin.ctx,
            admin.tenant_id(),
            org_id,
            user_id,
            body.role,
            OwnerRule::Enforce,
        )
        .await?;
    Ok(ApiJson(
        member_change(&state, &admin, org_id, user_id).await?,
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path((org_id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    admin.org(&state, org_id).await?;
    state
        .store
        .remove_membership(
            &admin.ctx,
            admin.tenant_id(),
            org_id,
            user_id,
            OwnerRule::Enforce,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Module levels by module name, e.g. `{"feature_flags": "write", "billing": "none"}`.
async fn set_modules(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path((org_id, user_id)): Path<(Uuid, Uuid)>,
    ApiJson(levels): ApiJson<BTreeMap<Module, ModuleLevel>>,
) -> Result<ApiJson<MemberChange>, ApiError> {
    admin.org(&state, org_id).await?;
    state
        .store
        .set_module_roles(&admin.ctx, admin.tenant_id(), org_id, user_id, &levels)
        .await?;
    Ok(ApiJson(
        member_change(&state, &admin, org_id, user_id).await?,
    ))
}

#[derive(Deserialize)]
struct PermissionParams {
    product: Uuid,
}

async fn permissions(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path((org_id, user_id)): Path<(Uuid, Uuid)>,
    Query(p): Query<PermissionParams>,
) -> Result<ApiJson<EffectivePermissions>, ApiError> {
    admin.org(&state, org_id).await?;
    let product = admin.product(&state, p.product).await?;
    if product.product.org_id != org_id {
        return Err(ApiError::NotFound);
    }
    let (user, facts) = state
        .store
        .member_facts(admin.tenant_id(), user_id, p.product)
        .await?;
    Ok(ApiJson(authz::evaluate(&user, &facts)))
}
