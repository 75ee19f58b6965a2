//! The tenant's people, read-only: a user by id with where they belong and what they were
//! granted, and the users list. A caller sees a person through the orgs it reaches: one who is
//! a member of one of them, or whom a SCIM token of one of them holds. Everything else about
//! the person (memberships and grants in orgs out of reach) stays unsaid.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::{AuthErrors, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiQuery};
use super::page::{Page, PageSize};
use super::reach::{self, InReach};
use crate::domain::user::User;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::{TenantUser, UserMembership, UserProductAccess, UserQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_users))
        .routes(routes!(get_user))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Substring of the e-mail or user name, case-insensitive.
    search: Option<String>,
    /// Only the people of this org and the orgs below it (a member of one, or held by one's
    /// SCIM token). An org within reach.
    org_id: Option<Uuid>,
    /// The `next` of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct UserPage {
    users: Vec<User>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<Uuid>,
}

/// The tenant's users within reach, by id.
///
/// A token of the root org sees every user of the tenant; a sub-org's token the people with a
/// membership in its org or an org below it, or held by a SCIM token of one.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of users, ordered by id.", body = UserPage),
        (status = 404, description = "`org_id` is not an org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn list_users(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<ApiJson<UserPage>, ApiError> {
    let page = Page::new(PageSize::LIST, p.after, p.limit)?;
    let orgs = match p.org_id {
        Some(org_id) => {
            admin.org(&state, org_id).await?;
            let tree = state.store.list_orgs(admin.tenant_id()).await?;
            Some(reach::subtree(org_id, &tree))
        }
        None => admin.reached_orgs(&state).await?.orgs(),
    };
    let query = UserQuery {
        search: p.search,
        after: page.cursor,
        limit: page.limit,
        orgs,
    };
    let users = state.store.list_users(admin.tenant_id(), &query).await?;
    let next = page.next(&users, |u| u.id);
    Ok(ApiJson(UserPage { users, next }))
}

/// A person as the caller may see them: only memberships and grants in orgs within reach.
#[derive(Serialize, ToSchema)]
struct UserDetail {
    user: User,
    /// Whether a SCIM token provisions the person (an IdP manages them).
    scim_held: bool,
    /// The org whose SCIM token provisions them, when that org is within reach; null when
    /// nobody's, or when the holder is out of reach (`scim_held` still says so).
    scim_org_id: Option<Uuid>,
    /// Their own memberships of orgs within reach, by org id; the orgs below each are
    /// inherited.
    memberships: Vec<UserMembership>,
    /// The permission groups and built-in roles granted to them on products of orgs within
    /// reach, by product id.
    product_access: Vec<UserProductAccess>,
}

/// A user of the tenant by id, with their memberships and product access within reach.
#[utoipa::path(
    get,
    path = "/users/{user_id}",
    tag = "users",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The user.", body = UserDetail),
        (status = 404, description = "No such user in the tenant, or none who is a member of (or held by) an org within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors
    )
)]
async fn get_user(
    State(state): State<AppState>,
    InReach { admin, item, .. }: InReach<TenantUser>,
) -> Result<ApiJson<UserDetail>, ApiError> {
    let reached = admin.reached_orgs(&state).await?;
    let product_access = state
        .store
        .user_product_access(admin.tenant_id(), item.user.id)
        .await?
        .into_iter()
        .filter(|p| reached.contains(p.org_id))
        .collect();
    Ok(ApiJson(UserDetail {
        scim_held: item.scim_org_id.is_some(),
        scim_org_id: item.scim_org_id.filter(|o| reached.contains(*o)),
        memberships: item
            .memberships
            .into_iter()
            .filter(|m| reached.contains(m.org_id))
            .collect(),
        product_access,
        user: item.user,
    }))
}
