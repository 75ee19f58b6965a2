//! The groups an org's IdP pushed through its SCIM tokens, read-only: the admin's view of what
//! provisioning sent, without SCIM's paging or a SCIM token. A group belongs to the org whose
//! tokens manage it, so a group of another org — above, beside or below — is not found here.

use std::collections::HashMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::doc::{AuthErrors, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::page::{Page, PageSize};
use super::reach::{InReach, OrgInReach};
use crate::domain::provisioning::{ScimGroup, ScimScope};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::NamedGroupMember;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_idp_groups))
        .routes(routes!(list_idp_group_members))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// The `next` of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A group as the IdP pushed it.
#[derive(Serialize, ToSchema)]
struct IdpGroup {
    id: Uuid,
    /// The SCIM `displayName`.
    display_name: String,
    /// The SCIM `externalId`: the IdP's own id of the group, if it sent one.
    external_id: Option<String>,
    /// Direct members: users and nested groups.
    member_count: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl IdpGroup {
    fn new(group: ScimGroup, member_count: u64) -> IdpGroup {
        IdpGroup {
            id: group.id,
            display_name: group.display_name,
            external_id: group.external_id,
            member_count,
            created_at: group.created_at,
            updated_at: group.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct IdpGroupPage {
    groups: Vec<IdpGroup>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<Uuid>,
}

/// The groups the org received from its IdP (SCIM), by id.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/idp-groups",
    tag = "idp-groups",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), PageParams),
    responses(
        (status = 200, description = "A page of the org's SCIM groups, ordered by id.", body = IdpGroupPage),
        (status = 404, description = "No such org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn list_idp_groups(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<ApiJson<IdpGroupPage>, ApiError> {
    let page = Page::new(PageSize::LIST, p.after, p.limit)?;
    let scope = ScimScope {
        tenant_id: admin.tenant_id(),
        org_id: item.id,
    };
    let groups = state
        .store
        .scim_groups_after(scope, page.cursor, page.limit)
        .await?;
    let next = page.next(&groups, |g| g.id);
    let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
    // One query for the page's counts; a group without members is not in it.
    let counts: HashMap<Uuid, u64> = state
        .store
        .scim_group_member_counts(scope, &ids)
        .await?
        .into_iter()
        .collect();
    let groups = groups
        .into_iter()
        .map(|g| {
            let n = counts.get(&g.id).copied().unwrap_or(0);
            IdpGroup::new(g, n)
        })
        .collect();
    Ok(ApiJson(IdpGroupPage { groups, next }))
}

#[derive(Serialize, ToSchema)]
struct IdpGroupMemberPage {
    group: IdpGroup,
    /// Users (with their userName and e-mail) and nested groups (with their displayName).
    members: Vec<NamedGroupMember>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<Uuid>,
}

/// The members of a group the org received from its IdP, by member id.
#[utoipa::path(
    get,
    path = "/orgs/{org_id}/idp-groups/{idp_group_id}/members",
    tag = "idp-groups",
    security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("idp_group_id" = Uuid, Path), PageParams),
    responses(
        (status = 200, description = "The group and a page of its members, ordered by id.", body = IdpGroupMemberPage),
        (status = 404, description = "No such org within reach, or no such group of it.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn list_idp_group_members(
    State(state): State<AppState>,
    InReach { admin, item, .. }: OrgInReach,
    ApiPath((_, group_id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<ApiJson<IdpGroupMemberPage>, ApiError> {
    let page = Page::new(PageSize::LIST, p.after, p.limit)?;
    let scope = ScimScope {
        tenant_id: admin.tenant_id(),
        org_id: item.id,
    };
    // A group of another org is not in this org's scope: not found, like an unknown id.
    let group = state.store.scim_get_group(scope, group_id).await?;
    let count = state
        .store
        .scim_group_member_counts(scope, &[group_id])
        .await?
        .first()
        .map_or(0, |(_, n)| *n);
    let members = state
        .store
        .scim_named_group_members(scope, group_id, page.cursor, page.limit)
        .await?;
    let next = page.next(&members, |m| m.id);
    Ok(ApiJson(IdpGroupMemberPage {
        group: IdpGroup::new(group, count),
        members,
        next,
    }))
}
