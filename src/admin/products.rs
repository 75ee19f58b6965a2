use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AdminAuth;
use crate::authz::{self, EffectivePermissions};
use crate::domain::Source;
use crate::domain::audit::AuditEvent;
use crate::domain::permission::{AccessRule, Capability, EnvAccess, PermissionSet, Role};
use crate::domain::product::{self, Environment, PermissionGroup, Product, ProductDetail};
use crate::error::{ApiError, ApiJson, FieldError};
use crate::state::AppState;
use crate::store::{AuditQuery, NewEnvironment, ProductAccess};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/orgs/{org_id}/products",
            get(list_products).post(create_product),
        )
        .route(
            "/products/{product_id}",
            get(get_product)
                .patch(rename_product)
                .delete(delete_product),
        )
        .route(
            "/products/{product_id}/environments",
            post(create_environment),
        )
        .route(
            "/environments/{environment_id}",
            patch(update_environment).delete(delete_environment),
        )
        .route(
            "/products/{product_id}/permission-groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/permission-groups/{group_id}",
            put(update_group).delete(delete_group),
        )
        .route(
            "/products/{product_id}/members/{user_id}",
            put(set_product_access),
        )
        .route("/products/{product_id}/audit", get(product_audit))
}

fn name(field: &str, raw: &str) -> Result<String, ApiError> {
    product::validate_name(raw).map_err(|m| ApiError::invalid(field, m))
}

#[derive(Serialize)]
struct ProductList {
    products: Vec<Product>,
}

async fn list_products(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
) -> Result<ApiJson<ProductList>, ApiError> {
    admin.org(&state, org_id).await?;
    Ok(ApiJson(ProductList {
        products: state.store.list_products(admin.tenant_id(), org_id).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentBody {
    name: String,
    #[serde(default)]
    restricted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProduct {
    name: String,
    /// Default: Development, and Production (restricted).
    environments: Option<Vec<EnvironmentBody>>,
}

async fn create_product(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(org_id): Path<Uuid>,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<(StatusCode, ApiJson<ProductDetail>), ApiError> {
    let product_name = name("name", &body.name)?;
    let envs = match body.environments {
        Some(list) => {
            let mut envs = Vec::new();
            let mut errors = Vec::new();
            for (i, e) in list.iter().enumerate() {
                match product::validate_name(&e.name) {
                    Ok(n) => envs.push(NewEnvironment {
                        name: n,
                        restricted: e.restricted,
                    }),
                    Err(m) => errors.push(FieldError::new(format!("environments[{i}].name"), m)),
                }
            }
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
            envs
        }
        None => vec![
            NewEnvironment {
                name: "Development".into(),
                restricted: false,
            },
            NewEnvironment {
                name: "Production".into(),
                restricted: true,
            },
        ],
    };
    admin.org(&state, org_id).await?;
    let detail = state
        .store
        .create_product(&admin.ctx, admin.tenant_id(), org_id, &product_name, &envs)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(detail)))
}

async fn get_product(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(product_id): Path<Uuid>,
) -> Result<ApiJson<ProductDetail>, ApiError> {
    Ok(ApiJson(admin.product(&state, product_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename_product(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(product_id): Path<Uuid>,
    ApiJson(body): ApiJson<Rename>,
) -> Result<ApiJson<Product>, ApiError> {
    let new_name = name("name", &body.name)?;
    admin.product(&state, product_id).await?;
    Ok(ApiJson(
        state
            .store
            .rename_product(&admin.ctx, admin.tenant_id(), product_id, &new_name)
            .await?,
    ))
}

async fn delete_product(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(product_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    admin.product(&state, product_id).await?;
    state
        .store
        .delete_product(&admin.ctx, admin.tenant_id(), product_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_environment(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(product_id): Path<Uuid>,
    ApiJson(body): ApiJson<EnvironmentBody>,
) -> Result<(StatusCode, ApiJson<Environment>), ApiError> {
    let env = NewEnvironment {
        name: name("name", &body.name)?,
        restricted: body.restricted,
    };
    admin.product(&state, product_id).await?;
    let created = state
        .store
        .create_environment(&admin.ctx, admin.tenant_id(), product_id, &env)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentPatch {
    name: Option<String>,
    restricted: Option<bool>,
}

async fn update_environment(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(environment_id): Path<Uuid>,
    ApiJson(body): ApiJson<EnvironmentPatch>,
) -> Result<ApiJson<Environment>, ApiError> {
    let new_name = body.name.as_deref().map(|n| name("name", n)).transpose()?;
    let product = state
        .store
        .environment_product(admin.tenant_id(), environment_id)
        .await?;
    admin.org(&state, product.org_id).await?;
    let env = state
        .store
        .update_environment(
            &admin.ctx,
            admin.tenant_id(),
            environment_id,
            new_name.as_deref(),
            body.restricted,
        )
        .await?;
    Ok(ApiJson(env))
}

async fn delete_environment(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(environment_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let product = state
        .store
        .environment_product(admin.tenant_id(), environment_id)
        .await?;
    admin.org(&state, product.org_id).await?;
    state
        .store
        .delete_environment(&admin.ctx, admin.tenant_id(), environment_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct GroupList {
    permission_groups: Vec<PermissionGroup>,
}

async fn list_groups(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(product_id): Path<Uuid>,
) -> Result<ApiJson<GroupList>, ApiError> {
    let detail = admin.product(&state, product_id).await?;
    Ok(ApiJson(GroupList {
        permission_groups: detail.permission_groups,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: String,
    #[serde(default)]
    capabilities: BTreeSet<Capability>,
    default_access: EnvAccess,
    /// Access in restricted environments; default: `default_access`.
    restricted_access: Option<EnvAccess>,
    /// Per-environment overrides: environment id → access.
    #[serde(default)]
    environments: BTreeMap<Uuid, EnvAccess>,
}

impl GroupBody {
    fn into_parts(self) -> Result<(String, PermissionSet), ApiError> {
        let group_name = name("name", &self.name)?;
        let access = AccessRule {
            default: self.default_access,
            restricted: self.restricted_access,
            overrides: self.environments,
        };
        Ok((
            group_name,
            PermissionSet {
                capabilities: self.capabilities,
                access,
            },
        ))
    }
}

fn unknown_environments(err: crate::store::StoreError) -> ApiError {
    match err {
        crate::store::StoreError::UnknownIds(ids) => ApiError::Validation(
            ids.into_iter()
                .map(|id| {
                    FieldError::new(
                        "environments",
                        format!("no environment {id} in this product"),
                    )
                })
                .collect(),
        ),
        other => other.into(),
    }
}

async fn create_group(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(product_id): Path<Uuid>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<(StatusCode, ApiJson<PermissionGroup>), ApiError> {
    let (group_name, set) = body.into_parts()?;
    admin.product(&state, product_id).await?;
    let group = state
        .store
        .save_permission_group(
            &admin.ctx,
            admin.tenant_id(),
            product_id,
            None,
            &group_name,
            &set,
        )
        .await
        .map_err(unknown_environments)?;
    Ok((StatusCode::CREATED, ApiJson(group)))
}

/// Built-in roles have stable ids but are read-only.
fn refuse_role_group(product_id: Uuid, group_id: Uuid) -> Result<(), ApiError> {
    if product::role_groups(product_id)
        .iter()
        .any(|g| g.id == group_id)
    {
        return Err(ApiError::Conflict("built-in roles are read-only".into()));
    }
    Ok(())
}

async fn update_group(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(group_id): Path<Uuid>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<ApiJson<PermissionGroup>, ApiError> {
    let (group_name, set) = body.into_parts()?;
    let product = group_product(&state, &admin, group_id).await?;
    let group = state
        .store
        .save_permission_group(
            &admin.ctx,
            admin.tenant_id(),
            product.id,
            Some(group_id),
            &group_name,
            &set,
        )
        .await
        .map_err(unknown_environments)?;
    Ok(ApiJson(group))
}

/// The product a group id belongs to: a stored group, or a built-in role (refused as read-only).
async fn group_product(
    state: &AppState,
    admin: &AdminAuth,
    group_id: Uuid,
) -> Result<Product, ApiError> {
    match state
        .store
        .permission_group_product(admin.tenant_id(), group_id)
        .await
    {
        Ok(product) => {
            admin.org(state, product.org_id).await?;
            Ok(product)
        }
        Err(crate::store::StoreError::NotFound) => {
            // A role id is derived from its product: look for it among the caller's products.
            for org in state.store.list_orgs(admin.tenant_id()).await? {
                for product in state.store.list_products(admin.tenant_id(), org.id).await? {
                    refuse_role_group(product.id, group_id)?;
                }
            }
            Err(ApiError::NotFound)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct DeleteParams {
    reassign_to: Option<Uuid>,
}

#[derive(Serialize)]
struct Deleted {
    reassigned_grants: u64,
}

async fn delete_group(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(group_id): Path<Uuid>,
    Query(p): Query<DeleteParams>,
) -> Result<ApiJson<Deleted>, ApiError> {
    group_product(&state, &admin, group_id).await?;
    let moved = state
        .store
        .delete_permission_group(&admin.ctx, admin.tenant_id(), group_id, p.reassign_to)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::UnknownIds(_) => ApiError::invalid(
                "reassign_to",
                "must be another permission group of the same product",
            ),
            other => other.into(),
        })?;
    Ok(ApiJson(Deleted {
        reassigned_grants: moved,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    /// Permission group ids of the product; a built-in role's id sets the product role.
    #[serde(default)]
    permission_groups: Vec<Uuid>,
    role: Option<Role>,
}

/// Replaces the member's manually given groups and role on the product.
async fn set_product_access(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path((product_id, user_id)): Path<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<AccessBody>,
) -> Result<ApiJson<EffectivePermissions>, ApiError> {
    admin.product(&state, product_id).await?;
    let roles = product::role_groups(product_id);
    let mut role = body.role;
    let mut groups = Vec::new();
    for id in body.permission_groups {
        match roles.iter().find(|g| g.id == id).and_then(|g| g.role) {
            Some(r) if role.is_none_or(|current| current == r) => role = Some(r),
            Some(_) => {
                return Err(ApiError::invalid(
                    "permission_groups",
                    "at most one product role",
                ));
            }
            None => groups.push(id),
        }
    }
    let access = ProductAccess {
        permission_groups: groups,
        role,
        source: Source::Manual,
    };
    state
        .store
        .set_product_access(&admin.ctx, admin.tenant_id(), product_id, user_id, &access)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::UnknownIds(ids) => ApiError::Validation(
                ids.into_iter()
                    .map(|id| {
                        FieldError::new(
                            "permission_groups",
                            format!("no permission group {id} in this product"),
                        )
                    })
                    .collect(),
            ),
            other => other.into(),
        })?;
    let (user, facts) = state
        .store
        .member_facts(admin.tenant_id(), user_id, product_id)
        .await?;
    Ok(ApiJson(authz::evaluate(&user, &facts)))
}

#[derive(Deserialize)]
struct AuditParams {
    actor_kind: Option<String>,
    actor_id: Option<String>,
    action: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<Uuid>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct AuditPage {
    events: Vec<AuditEvent>,
    next: Option<Uuid>,
}

/// The product's audit log. An admin token reads it; user sessions (later) need
/// `manage_members` on the product or to be an org Owner.
async fn product_audit(
    State(state): State<AppState>,
    admin: AdminAuth,
    Path(product_id): Path<Uuid>,
    Query(p): Query<AuditParams>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    admin.product(&state, product_id).await?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let query = AuditQuery {
        org_id: None,
        product_id: Some(product_id),
        actor_kind: p.actor_kind,
        actor_id: p.actor_id,
        action: p.action,
        since: p.since,
        until: p.until,
        before_id: p.before,
        limit,
    };
    let events = state.store.list_audit(admin.tenant_id(), &query).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(ApiJson(AuditPage { events, next }))
}
