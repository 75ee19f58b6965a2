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
use crate::authz::EffectivePermissions;
use crate::domain::org::OrgRole;
use crate::domain::permission::{Module, ModuleLevel};
use crate::domain::provisioning::{ScimRelease, inactive_user_note};
use crate::domain::resolve::Standing;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::{MemberQuery, OrgMember, OwnerRule, ScimHeld};

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
    /// What the admin should know about a change that went through; omitted when nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Warning>,
}

/// Something an admin should know about a change that went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(super) struct Warning {
    /// Stable and machine-readable. `user_inactive`: the user is deactivated (SCIM
    /// `active=false`), so what was granted is stored but every permission evaluates to
    /// `none` until they are active again.
    code: String,
    /// For people: says who deactivated the user (the SCIM token's name) and what brings the
    /// grant into effect.
    message: String,
}

/// A grant to an inactive user is kept, but answers all `none` — without a word it looks like
/// the grant failed. Says so, naming the SCIM token that can re-activate them.
pub(super) async fn inactive_warnings(
    state: &AppState,
    tenant_id: Uuid,
    user_id: Uuid,
    active: bool,
) -> Result<Vec<Warning>, ApiError> {
    if active {
        return Ok(Vec::new());
    }
    let hold = state.store.scim_managed_by(tenant_id, user_id).await?;
    Ok(vec![Warning {
        code: "user_inactive".into(),
        message: inactive_user_note(hold.as_ref()),
    }])
}

async fn member_change(
    state: &AppState,
    admin: &AdminAuth,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<MemberChange, ApiError> {
    let tenant = admin.tenant_id();
    let product_ids: Vec<Uuid> = state
        .store
        .list_products(tenant, org_id)
        .await?
        .iter()
        .map(|p| p.id)
        .collect();
    // Someone who is no longer a member has no permissions here to show.
    let permissions = state
        .resolver
        .products(tenant, &[user_id], &product_ids)
        .await?
        .iter()
        .filter(|r| r.standing != Standing::NotMember)
        .map(|r| EffectivePermissions::from(r.as_ref()))
        .collect();
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
    let active = member.as_ref().is_none_or(|m| m.user.active);
    let warnings = inactive_warnings(state, tenant, user_id, active).await?;
    Ok(MemberChange {
        member,
        permissions,
        warnings,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetMember {
    /// `owner`, `member`, or `null` to inherit the role from the parent org.
    role: Option<OrgRole>,
}

/// Adds an existing user of the tenant to the org, or changes their role there.
///
/// The user must belong only to orgs within the caller's reach (a sub-org cannot enlist, or re-role, a
/// member of an org above or beside it); giving or taking `owner` needs an Owner.
#[utoipa::path(
    put,
    path = "/orgs/{org_id}/members/{user_id}",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = SetMember,
    responses(
        (status = 200, description = "The membership and the member's effective permissions on the org's products; `warnings` when the user is inactive.", body = MemberChange),
        (status = 403, description = "A signed-in user who is not an Owner of the org giving or taking the Owner role.", body = ErrorBody),
        (status = 404, description = "No such org within reach, or no such user in the tenant, or a user who belongs to an org out of the caller's reach.", body = ErrorBody),
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
    let person = state.store.get_user(admin.tenant_id(), user_id).await?;
    admin.require_whole_person(&state, &person).await?;
    let owner_now = person
        .memberships
        .iter()
        .any(|m| m.org_id == item.id && m.role == Some(OrgRole::Owner));
    if owner_now || body.role == Some(OrgRole::Owner) {
        admin.require_owner_of(&state, item.id).await?;
    }
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RemoveParams {
    /// `true`: remove a person the org's SCIM manages anyway, and deactivate them for SCIM
    /// (see above). Default `false`; harmless on a membership no SCIM manages.
    #[serde(default)]
    force: bool,
}

/// Removes the user's membership of the org, and the access granted in it.
///
/// A person the org's SCIM provisions is their IdP's to remove: removed here alone they would
/// stay `active` in the IdP's view and its next PATCHes would not bring the membership back, so
/// this answers `409` (`scim_managed`), naming the SCIM token. The ways out: remove the user in
/// the IdP; release them from SCIM first (`POST /users/{user_id}/scim-release`); or pass
/// `force=true`. Forced, the membership goes (with the access granted in the org) and, in the
/// same transaction, the person is deactivated for SCIM: `active: false` in their SCIM User
/// (the person's, so inactive everywhere in the tenant: one person, one user) and out of the
/// org's SCIM groups, so the IdP's next `GET /scim/v2/Users/{id}` sees the removal. Audited as
/// `membership.remove` with `"forced": true`. Refused with `409` (`owner_rule`) if an org they
/// own would be left without an active Owner.
///
/// If the IdP then sets `active: true` again (an Okta or Entra re-sync that still assigns
/// them), that is an explicit re-activation and wins, as any SCIM re-activation does: the
/// person is active again and the membership comes back (inheriting its role; the access
/// granted in the org does not), audited as `scim.user.reactivate` with
/// `"membership_restored": true`. To keep them out, unassign them in the IdP.
///
/// A membership of a person no SCIM of this org provisions (given by an admin or an
/// invitation) is removed as always; `force` changes nothing for it.
#[utoipa::path(
    delete,
    path = "/orgs/{org_id}/members/{user_id}",
    tag = "members",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path), RemoveParams),
    responses(
        (status = 204, description = "Removed (and, forced, deactivated for SCIM)."),
        (status = 404, description = "No such org within reach, or the user has no membership in it.", body = ErrorBody),
        (status = 409, description = "`scim_managed`: the org's SCIM token manages the person (the message names it and the ways out; `force=true` overrides); or `owner_rule`: the change would leave an org without an active Owner.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A query parameter other than `force`, or `force` not `true`/`false`; `fields` names it.", body = ErrorBody)
    )
)]
async fn remove_member(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiPath((_, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(params): ApiQuery<RemoveParams>,
) -> Result<StatusCode, ApiError> {
    let person = state.store.get_user(admin.tenant_id(), user_id).await?;
    if params.force {
        // Forced, the person is deactivated everywhere in the tenant: a whole-person act.
        admin.require_whole_person(&state, &person).await?;
    }
    if person
        .memberships
        .iter()
        .any(|m| m.org_id == item.id && m.role == Some(OrgRole::Owner))
    {
        admin.require_owner_of(&state, item.id).await?;
    }
    let held = if params.force {
        ScimHeld::Deactivate
    } else {
        ScimHeld::Refuse
    };
    state
        .store
        .remove_membership(
            &admin.ctx,
            admin.tenant_id(),
            item.id,
            user_id,
            OwnerRule::Enforce,
            held,
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
        (status = 200, description = "The membership and the member's effective permissions on the org's products; `warnings` when the user is inactive.", body = MemberChange),
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
    let resolved = member_on_product(&state, &admin, item.id, user_id, p.product).await?;
    Ok(ApiJson(EffectivePermissions::from(resolved.as_ref())))
}

/// A member's permissions on `product_id`, a product of `org_id` (else not found), with the
/// paths behind each: what `/permissions` answers in short and the console's explain page
/// shows in full.
pub(crate) async fn member_on_product(
    state: &AppState,
    admin: &AdminAuth,
    org_id: Uuid,
    user_id: Uuid,
    product_id: Uuid,
) -> Result<std::sync::Arc<crate::domain::resolve::Resolved>, ApiError> {
    let product = admin.product(state, product_id).await?;
    if product.product.org_id != org_id {
        return Err(ApiError::NotFound);
    }
    Ok(state
        .resolver
        .product(admin.tenant_id(), user_id, product_id)
        .await?)
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
