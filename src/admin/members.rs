use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::{AuthErrors, BadBodyOrParams, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::page::{Page, PageSize};
use super::reach::{HeldUser, InReach, OrgInReach};
use crate::authz::{self, EffectivePermissions};
use crate::domain::org::OrgRole;
use crate::domain::permission::{Module, ModuleLevel};
use crate::domain::provisioning::ScimRelease;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::{MemberQuery, OrgMember, OwnerRule, StoreError};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_members))
        .routes(routes!(set_member, remove_member))
        .routes(routes!(set_modules))
        .routes(routes!(permissions))
        .routes(routes!(scim_release))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Substring of the e-mail or user name, case-insensitive.
    search: Option<String>,
    /// The `next` of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct MemberPage {
    members: Vec<OrgMember>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<Uuid>,
}

/// The org's members, direct and inherited, by user id.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/members",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ListParams),
    responses(
        (status = 200, description = "A page of members, ordered by user id.", body = MemberPage),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn list_members(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<ApiJson<MemberPage>, ApiError> {
    let page = Page::new(PageSize::LIST, p.after, p.limit)?;
    let query = MemberQuery {
        search: p.search,
        after: page.cursor,
        user_id: None,
        limit: page.limit,
    };
    let members = state
        .store
        .list_members(admin.tenant_id(), item.id, &query)
        .await?;
    let next = page.next(&members, |m| m.user.id);
    Ok(ApiJson(MemberPage { members, next }))
}

/// A member's new effective permissions on every product of the org, returned by each change.
#[derive(Serialize, ToSchema)]
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
    let permissions = match state
        .store
        .member_facts_in_org(tenant, user_id, org_id)
        .await
    {
        Ok(all) => all
            .iter()
            .map(|(user, product)| authz::evaluate(user, product))
            .collect(),
        Err(StoreError::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetMember {
    /// `owner`, `member`, or `null` to inherit the role from the parent org.
    role: Option<OrgRole>,
}

/// Adds an existing user of the tenant to the org, or changes their role there.
#[utoipa::path(
    put,
    path = "/orgs/{org_id}/members/{user_id}",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = SetMember,
    responses(
        (status = 200, description = "The membership and the member's effective permissions on the org's products.", body = MemberChange),
        (status = 404, description = "No such org within reach, or no such user in the tenant.", body = ErrorBody),
        (status = 409, description = "The change would leave an org without an active Owner.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn set_member(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiPath((_, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<SetMember>,
) -> Result<ApiJson<MemberChange>, ApiError> {
    state
        .store
        .set_membership(
            &admin.ctx,
            admin.tenant_id(),
            item.id,
            user_id,
            body.role,
            OwnerRule::Enforce,
        )
        .await?;
    Ok(ApiJson(
        member_change(&state, &admin, item.id, user_id).await?,
    ))
}

/// Removes the user's membership of the org, and the access granted in it.
#[utoipa::path(
    delete,
    path = "/orgs/{org_id}/members/{user_id}",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such org within reach, or the user has no membership in it.", body = ErrorBody),
        (status = 409, description = "The change would leave an org without an active Owner.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn remove_member(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiPath((_, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .remove_membership(
            &admin.ctx,
            admin.tenant_id(),
            item.id,
            user_id,
            OwnerRule::Enforce,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets module roles: levels by module name, e.g. `{"feature_flags": "write", "billing": "none"}`.
///
/// Modules not named keep their level; `none` removes the module role (inherit).
#[utoipa::path(
    put,
    path = "/orgs/{org_id}/members/{user_id}/modules",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = BTreeMap<Module, ModuleLevel>,
    responses(
        (status = 200, description = "The membership and the member's effective permissions on the org's products.", body = MemberChange),
        (status = 404, description = "No such org within reach, or the user is not a member of it.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn set_modules(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiPath((_, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(levels): ApiJson<BTreeMap<Module, ModuleLevel>>,
) -> Result<ApiJson<MemberChange>, ApiError> {
    state
        .store
        .set_module_roles(&admin.ctx, admin.tenant_id(), item.id, user_id, &levels)
        .await?;
    Ok(ApiJson(
        member_change(&state, &admin, item.id, user_id).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PermissionParams {
    /// A product of this org.
    product: Uuid,
}

/// A member's effective permissions on one product of the org.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/members/{user_id}/permissions",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path), PermissionParams),
    responses(
        (status = 200, description = "The effective permissions.", body = EffectivePermissions),
        (status = 404, description = "No such org within reach, no such product in it, or the user is not a member.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn permissions(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiPath((_, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(p): ApiQuery<PermissionParams>,
) -> Result<ApiJson<EffectivePermissions>, ApiError> {
    let product = admin.product(&state, p.product).await?;
    if product.product.org_id != item.id {
        return Err(ApiError::NotFound);
    }
    let (user, facts) = state
        .store
        .member_facts(admin.tenant_id(), user_id, p.product)
        .await?;
    Ok(ApiJson(authz::evaluate(&user, &facts)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScimReleaseRequest {
    /// An org within reach to make the person a member of (inheriting their role), so that a
    /// SCIM token of it, or of an org above it, can link them. Default: none.
    to_org_id: Option<Uuid>,
}

/// Hands a person provisioned by one org's SCIM token over to another org's SCIM.
///
/// An IdP that moves a user between apps gets `409` until then. The hold and the old IdP's externalId go; the person leaves the releasing org's SCIM groups
/// and the membership its SCIM made (with the access granted in that org); memberships given by
/// an admin or an invitation stay. The caller must reach the releasing org and `to_org_id`.
/// Audited as `scim.user.release`.
#[utoipa::path(
    post,
    path = "/users/{user_id}/scim-release",
    tag = "members",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    request_body(content = ScimReleaseRequest, description = "`{}` releases without naming a new org."),
    responses(
        (status = 200, description = "What the release did.", body = ScimRelease),
        (status = 404, description = "No such user in the tenant, or its SCIM org or `to_org_id` out of reach.", body = ErrorBody),
        (status = 409, description = "No SCIM token holds the person (`not_held`), another release got there first, or the release would leave an org without an active Owner.", body = ErrorBody),
        AuthErrors, BadBodyOrParams, ServerErrors
    )
)]
async fn scim_release(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<HeldUser>,
    ApiJson(body): ApiJson<ScimReleaseRequest>,
) -> Result<ApiJson<ScimRelease>, ApiError> {
    let Some(holder) = item.scim_org_id else {
        return Err(ApiError::Conflict(
            "not_held: no SCIM token provisions this user; there is nothing to release".into(),
        ));
    };
    if let Some(to) = body.to_org_id {
        admin.org(&state, to).await?;
    }
    Ok(ApiJson(
        state
            .store
            .scim_release_user(
                &admin.ctx,
                admin.tenant_id(),
                item.id,
                holder,
                body.to_org_id,
            )
            .await?,
    ))
}
