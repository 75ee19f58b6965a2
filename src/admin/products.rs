use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::{AuthErrors, BadBodyOrParams, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::members::{Warning, inactive_warnings};
use super::reach::{InReach, OrgInReach, ProductEnvironment, ProductGroup, ProductInReach};
use crate::authz::EffectivePermissions;
use crate::domain::Source;
use crate::domain::audit::AuditEvent;
use crate::domain::permission::{AccessRule, Capability, EnvAccess, PermissionSet, Role};
use crate::domain::product::{self, Environment, PermissionGroup, Product, ProductDetail};
use crate::domain::resolve::Standing;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::state::AppState;
use crate::store::{AuditQuery, NewEnvironment, ProductAccess};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, rename_product, delete_product))
        .routes(routes!(create_environment))
        .routes(routes!(update_environment, delete_environment))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(update_group, delete_group))
        .routes(routes!(set_product_access))
        .routes(routes!(product_audit))
}

/// A product, environment or permission group name as the API takes it (422 otherwise).
pub(crate) fn name(field: &str, raw: &str) -> Result<String, ApiError> {
    product::NAME
        .validate(raw)
        .map_err(|m| ApiError::invalid(field, m))
}

/// A new product's environments when none are given: Development, and Production (restricted).
pub(crate) fn default_environments() -> Vec<NewEnvironment> {
    vec![
        NewEnvironment {
            name: "Development".into(),
            restricted: false,
        },
        NewEnvironment {
            name: "Production".into(),
            restricted: true,
        },
    ]
}

#[derive(Serialize, ToSchema)]
struct ProductList {
    products: Vec<Product>,
}

/// The org's products.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/products",
    tag = "products",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The products.", body = ProductList),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn list_products(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
) -> Result<ApiJson<ProductList>, ApiError> {
    Ok(ApiJson(ProductList {
        products: state
            .store
            .list_products(admin.tenant_id(), item.id)
            .await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EnvironmentBody {
    /// 1 to 100 characters, trimmed; unique in the product.
    name: String,
    /// Default: false.
    #[serde(default)]
    restricted: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProduct {
    /// 1 to 100 characters, trimmed.
    name: String,
    /// Default: Development, and Production (restricted).
    environments: Option<Vec<EnvironmentBody>>,
}

/// Creates a product with its environments and the preset permission groups.
#[utoipa::path(
    post,
    path = "/orgs/{org_id}/products",
    tag = "products",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path)),
    request_body = NewProduct,
    responses(
        (status = 201, description = "The new product with its environments and groups.", body = ProductDetail),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        (status = 409, description = "Two environments with the same name.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn create_product(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<(StatusCode, ApiJson<ProductDetail>), ApiError> {
    let product_name = name("name", &body.name)?;
    let envs = match body.environments {
        Some(list) => {
            let mut envs = Vec::new();
            let mut errors = Vec::new();
            for (i, e) in list.iter().enumerate() {
                match product::NAME.validate(&e.name) {
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
        None => default_environments(),
    };
    let detail = state
        .store
        .create_product(&admin.ctx, admin.tenant_id(), item.id, &product_name, &envs)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(detail)))
}

/// A product with its environments, permission groups and built-in roles.
#[utoipa::path(
    get,
    path = "/products/{product_id}",
    tag = "products",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The product.", body = ProductDetail),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn get_product(InReach { item: product, .. }: ProductInReach) -> ApiJson<ProductDetail> {
    ApiJson(product)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenameProduct {
    /// 1 to 100 characters, trimmed.
    name: String,
}

/// Renames a product.
#[utoipa::path(
    patch,
    path = "/products/{product_id}",
    tag = "products",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path)),
    request_body = RenameProduct,
    responses(
        (status = 200, description = "The renamed product.", body = Product),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn rename_product(
    State(state): State<AppState>,
    InReach { admin, item, .. }: ProductInReach,
    ApiJson(body): ApiJson<RenameProduct>,
) -> Result<ApiJson<Product>, ApiError> {
    let new_name = name("name", &body.name)?;
    Ok(ApiJson(
        state
            .store
            .rename_product(&admin.ctx, admin.tenant_id(), item.product.id, &new_name)
            .await?,
    ))
}

/// Deletes a product, its environments, groups and every grant on it.
#[utoipa::path(
    delete,
    path = "/products/{product_id}",
    tag = "products",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn delete_product(
    State(state): State<AppState>,
    InReach { admin, item, .. }: ProductInReach,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_product(&admin.ctx, admin.tenant_id(), item.product.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds an environment to a product.
#[utoipa::path(
    post,
    path = "/products/{product_id}/environments",
    tag = "environments",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path)),
    request_body = EnvironmentBody,
    responses(
        (status = 201, description = "The new environment.", body = Environment),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        (status = 409, description = "The product has an environment of that name.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn create_environment(
    State(state): State<AppState>,
    InReach { admin, item, .. }: ProductInReach,
    ApiJson(body): ApiJson<EnvironmentBody>,
) -> Result<(StatusCode, ApiJson<Environment>), ApiError> {
    let env = NewEnvironment {
        name: name("name", &body.name)?,
        restricted: body.restricted,
    };
    let created = state
        .store
        .create_environment(&admin.ctx, admin.tenant_id(), item.product.id, &env)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// The fields to change; absent ones stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EnvironmentPatch {
    /// 1 to 100 characters, trimmed; unique in the product.
    name: Option<String>,
    restricted: Option<bool>,
}

/// Renames an environment or changes whether it is restricted.
#[utoipa::path(
    patch,
    path = "/environments/{environment_id}",
    tag = "environments",
    security(("bearer" = [])),
    params(("environment_id" = Uuid, Path)),
    request_body = EnvironmentPatch,
    responses(
        (status = 200, description = "The updated environment.", body = Environment),
        (status = 404, description = "No such environment within reach.", body = ErrorBody),
        (status = 409, description = "The product has another environment of that name.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn update_environment(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<ProductEnvironment>,
    ApiJson(body): ApiJson<EnvironmentPatch>,
) -> Result<ApiJson<Environment>, ApiError> {
    let new_name = body.name.as_deref().map(|n| name("name", n)).transpose()?;
    let env = state
        .store
        .update_environment(
            &admin.ctx,
            admin.tenant_id(),
            item.id,
            new_name.as_deref(),
            body.restricted,
        )
        .await?;
    Ok(ApiJson(env))
}

/// Deletes an environment; permission groups' overrides for it go with it.
#[utoipa::path(
    delete,
    path = "/environments/{environment_id}",
    tag = "environments",
    security(("bearer" = [])),
    params(("environment_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such environment within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn delete_environment(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<ProductEnvironment>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_environment(&admin.ctx, admin.tenant_id(), item.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct GroupList {
    permission_groups: Vec<PermissionGroup>,
}

/// The product's permission groups, built-in roles included.
#[utoipa::path(
    get,
    path = "/products/{product_id}/permission-groups",
    tag = "permission-groups",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The groups and built-in roles.", body = GroupList),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn list_groups(InReach { item: product, .. }: ProductInReach) -> ApiJson<GroupList> {
    ApiJson(GroupList {
        permission_groups: product.permission_groups,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    /// 1 to 100 characters, trimmed; unique in the product.
    pub name: String,
    #[serde(default)]
    pub capabilities: BTreeSet<Capability>,
    pub default_access: EnvAccess,
    /// Access in restricted environments; default: `default_access`.
    pub restricted_access: Option<EnvAccess>,
    /// Per-environment overrides: environment id → access.
    #[serde(default)]
    pub environments: BTreeMap<Uuid, EnvAccess>,
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

/// Creates a custom permission group.
#[utoipa::path(
    post,
    path = "/products/{product_id}/permission-groups",
    tag = "permission-groups",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path)),
    request_body = GroupBody,
    responses(
        (status = 201, description = "The new group.", body = PermissionGroup),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        (status = 409, description = "The product has a group of that name.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn create_group(
    State(state): State<AppState>,
    InReach { admin, item, .. }: ProductInReach,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<(StatusCode, ApiJson<PermissionGroup>), ApiError> {
    let group = save_group(&state, &admin, item.product.id, None, body).await?;
    Ok((StatusCode::CREATED, ApiJson(group)))
}

/// Built-in roles have stable ids but are read-only: one of a product within reach is refused
/// (409), after the reach check, so that one out of reach stays 404 like an unknown id.
fn refuse_role_group(group: &ProductGroup) -> Result<(), ApiError> {
    if product::role_groups(group.product.id)
        .iter()
        .any(|g| g.id == group.id)
    {
        return Err(ApiError::Conflict("built-in roles are read-only".into()));
    }
    Ok(())
}

/// Creates a permission group of `product_id` (`group`: `None`) or replaces one's name and
/// permissions: the API's and the console's one way to save a group. A built-in role is
/// refused (409) after the body is checked (422), as the API always answered.
pub(crate) async fn save_group(
    state: &AppState,
    admin: &AdminAuth,
    product_id: Uuid,
    group: Option<&ProductGroup>,
    body: GroupBody,
) -> Result<PermissionGroup, ApiError> {
    let (group_name, set) = body.into_parts()?;
    if let Some(group) = group {
        refuse_role_group(group)?;
    }
    state
        .store
        .save_permission_group(
            &admin.ctx,
            admin.tenant_id(),
            product_id,
            group.map(|g| g.id),
            &group_name,
            &set,
        )
        .await
        .map_err(unknown_environments)
}

/// Replaces a permission group's name and permissions.
#[utoipa::path(
    put,
    path = "/permission-groups/{group_id}",
    tag = "permission-groups",
    security(("bearer" = [])),
    params(("group_id" = Uuid, Path)),
    request_body = GroupBody,
    responses(
        (status = 200, description = "The updated group.", body = PermissionGroup),
        (status = 404, description = "No such group within reach.", body = ErrorBody),
        (status = 409, description = "A built-in role (read-only), or the product has another group of that name.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn update_group(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<ProductGroup>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<ApiJson<PermissionGroup>, ApiError> {
    let group = save_group(&state, &admin, item.product.id, Some(&item), body).await?;
    Ok(ApiJson(group))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteParams {
    /// Another group of the same product, to move the deleted group's grants to; required
    /// while the group is granted.
    reassign_to: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
struct DeletedGroup {
    /// Grants moved to `reassign_to`.
    reassigned_grants: u64,
}

/// Deletes a permission group (not a built-in role), moving its grants to `reassign_to`.
#[utoipa::path(
    delete,
    path = "/permission-groups/{group_id}",
    tag = "permission-groups",
    security(("bearer" = [])),
    params(("group_id" = Uuid, Path), DeleteParams),
    responses(
        (status = 200, description = "Deleted.", body = DeletedGroup),
        (status = 404, description = "No such group within reach.", body = ErrorBody),
        (status = 409, description = "A built-in role (read-only), or the group is granted and no `reassign_to` was given.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `reassign_to` is not another group of the same product.", body = ErrorBody)
    )
)]
async fn delete_group(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<ProductGroup>,
    ApiQuery(p): ApiQuery<DeleteParams>,
) -> Result<ApiJson<DeletedGroup>, ApiError> {
    let moved = delete_permission_group(&state, &admin, &item, p.reassign_to).await?;
    Ok(ApiJson(DeletedGroup {
        reassigned_grants: moved,
    }))
}

/// Deletes a permission group (not a built-in role), moving its grants to `reassign_to`: the
/// API's and the console's one way to. The number of grants moved.
pub(crate) async fn delete_permission_group(
    state: &AppState,
    admin: &AdminAuth,
    group: &ProductGroup,
    reassign_to: Option<Uuid>,
) -> Result<u64, ApiError> {
    refuse_role_group(group)?;
    // A built-in role is a product role, not a group members can be moved into: say so rather
    // than "not a group of this product", which it is.
    if let Some(target) = reassign_to
        && Role::ALL
            .iter()
            .any(|&role| crate::domain::product::role_group_id(group.product.id, role) == target)
    {
        return Err(ApiError::invalid(
            "reassign_to",
            "a built-in role cannot be a reassign target: choose a permission group of the \
             product, or set the members' role first",
        ));
    }
    state
        .store
        .delete_permission_group(&admin.ctx, admin.tenant_id(), group.id, reassign_to)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::UnknownIds(_) => ApiError::invalid(
                "reassign_to",
                "must be another permission group of the same product",
            ),
            other => other.into(),
        })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    /// Permission group ids of the product; a built-in role's id sets the product role.
    #[serde(default)]
    permission_groups: Vec<Uuid>,
    role: Option<Role>,
}

/// A member's effective permissions on a product after a change, and what the admin should
/// know about it.
#[derive(Serialize, ToSchema)]
struct AccessChange {
    #[serde(flatten)]
    permissions: EffectivePermissions,
    /// Omitted when nothing: `user_inactive` when the user is deactivated (SCIM
    /// `active=false`), which is why every environment reads `none`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

/// Replaces the member's manually given groups and role on the product.
///
/// The grant is stored even when the user is inactive (deactivated by SCIM): it takes effect
/// when they are active again, and until then the answer reads all `none` with a
/// `user_inactive` warning naming the SCIM token.
#[utoipa::path(
    put,
    path = "/products/{product_id}/members/{user_id}",
    tag = "members",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = AccessBody,
    responses(
        (status = 200, description = "The member's new effective permissions on the product; `warnings` when the user is inactive.", body = AccessChange),
        (status = 404, description = "No such product within reach, or the user is not a member of its org.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn set_product_access(
    State(state): State<AppState>,
    InReach { admin, item, .. }: ProductInReach,
    ApiPath((_, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<AccessBody>,
) -> Result<ApiJson<AccessChange>, ApiError> {
    let product_id = item.product.id;
    set_access(
        &state,
        &admin,
        product_id,
        user_id,
        body.permission_groups,
        body.role,
    )
    .await?;
    let resolved = state
        .resolver
        .product(admin.tenant_id(), user_id, product_id)
        .await?;
    let active = resolved.standing != Standing::Inactive;
    let warnings = inactive_warnings(&state, admin.tenant_id(), user_id, active).await?;
    Ok(ApiJson(AccessChange {
        permissions: EffectivePermissions::from(resolved.as_ref()),
        warnings,
    }))
}

/// Replaces the member's manually given groups and role on a product the caller has been
/// checked on (a built-in role's id among `permission_groups` sets the role): the API's and
/// the console's.
pub(crate) async fn set_access(
    state: &AppState,
    admin: &AdminAuth,
    product_id: Uuid,
    user_id: Uuid,
    permission_groups: Vec<Uuid>,
    role: Option<Role>,
) -> Result<(), ApiError> {
    let roles = product::role_groups(product_id);
    let mut role = role;
    let mut groups = Vec::new();
    for id in permission_groups {
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
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// e.g. `admin_token`, `scim_token`, `user`, `invitee`, `cli`, `system`.
    actor_kind: Option<String>,
    actor_id: Option<String>,
    /// e.g. `product.create`.
    action: Option<String>,
    /// Events at or after this time.
    since: Option<DateTime<Utc>>,
    /// Events before this time.
    until: Option<DateTime<Utc>>,
    /// The `next` of the previous page.
    before: Option<Uuid>,
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct ProductAuditPage {
    events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next: Option<Uuid>,
}

/// The product's audit log, newest first.
///
/// An admin token reads it; user sessions (later) need `manage_members` on the product or to
/// be an org Owner.
#[utoipa::path(
    get,
    path = "/products/{product_id}/audit",
    tag = "audit",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path), AuditParams),
    responses(
        (status = 200, description = "A page of the product's events, newest first.", body = ProductAuditPage),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn product_audit(
    State(state): State<AppState>,
    InReach { admin, item, .. }: ProductInReach,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<ApiJson<ProductAuditPage>, ApiError> {
    let query = AuditQuery {
        product_id: Some(item.product.id),
        actor_kind: p.actor_kind,
        actor_id: p.actor_id,
        action: p.action,
        since: p.since,
        until: p.until,
        ..AuditQuery::default()
    };
    let (events, next) =
        super::audit::read(&state, admin.tenant_id(), query, p.before, p.limit).await?;
    Ok(ApiJson(ProductAuditPage { events, next }))
}
