//! Who has access to a product (the seed screens' "product members" view): the members of the
//! product's org, each with what was granted to them on the product and their effective
//! permissions there, from the same evaluator as a member's `/permissions`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::doc::{AuthErrors, BadParams, ServerErrors};
use super::extract::{ApiJson, ApiQuery};
use super::page::{Page, PageSize};
use super::reach::{InReach, ProductInReach};
use crate::authz::EffectivePermissions;
use crate::domain::org::EffectiveRole;
use crate::domain::user::User;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::{GrantedGroup, MemberQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list_product_members))
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

/// A member of the product's org and their access to the product.
#[derive(Serialize, ToSchema)]
struct ProductMemberEntry {
    user: User,
    /// Their role in the product's org after inheritance (an Owner has everything).
    effective: EffectiveRole,
    /// Whether they may do anything on the product: a capability, or more than `none` in an
    /// environment. Members without any access are listed too, with `false`, so that each
    /// page is a page of the org's members and `next` stays exact.
    has_access: bool,
    /// The permission groups and built-in roles granted to them on the product (module roles,
    /// given per org, are not grants on it; they show in `permissions`).
    grants: Vec<GrantedGroup>,
    /// Their effective permissions on the product: capabilities, and per environment (by id,
    /// with its name in `environment_names`) their access.
    permissions: EffectivePermissions,
}

#[derive(Serialize, ToSchema)]
struct ProductMemberPage {
    product_id: Uuid,
    members: Vec<ProductMemberEntry>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<Uuid>,
}

/// Who has access to the product: its org's members with their effective access to it.
///
/// The members of the product's org, direct and inherited, by user id (as
/// `/orgs/{org_id}/members` pages them), each with the groups and roles granted on the
/// product, their effective permissions per environment and product-level capabilities, and
/// `has_access` (`false` for a member who may do nothing on it).
#[utoipa::path(
    get,
    path = "/products/{product_id}/members",
    tag = "members",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path), ListParams),
    responses(
        (status = 200, description = "A page of members, ordered by user id.", body = ProductMemberPage),
        (status = 404, description = "No such product within reach.", body = ErrorBody),
        AuthErrors, BadParams, ServerErrors,
        (status = 422, description = "A parameter not of its form (`fields` names it), or: `limit` out of range.", body = ErrorBody)
    )
)]
async fn list_product_members(
    State(state): State<AppState>,
    InReach { admin, item, .. }: ProductInReach,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<ApiJson<ProductMemberPage>, ApiError> {
    let page = Page::new(PageSize::LIST, p.after, p.limit)?;
    let query = MemberQuery {
        search: p.search,
        after: page.cursor,
        user_id: None,
        limit: page.limit,
    };
    let product_id = item.product.id;
    let members = state
        .store
        .product_members(admin.tenant_id(), product_id, &query)
        .await?;
    let next = page.next(&members, |m| m.member.user.id);
    let ids: Vec<Uuid> = members.iter().map(|m| m.member.user.id).collect();
    let resolved = state
        .resolver
        .products(admin.tenant_id(), &ids, &[product_id])
        .await?
        .into_iter()
        .map(|r| (r.user_id, r))
        .collect::<std::collections::HashMap<_, _>>();
    let members = members
        .into_iter()
        // A person deleted between the two reads has no answer: left out of the page.
        .filter_map(|m| {
            let permissions = resolved
                .get(&m.member.user.id)
                .map(|r| EffectivePermissions::from(r.as_ref()))?;
            Some(ProductMemberEntry {
                has_access: permissions.any_access(),
                user: m.member.user,
                effective: m.member.effective,
                grants: m.grants,
                permissions,
            })
        })
        .collect();
    Ok(ApiJson(ProductMemberPage {
        product_id,
        members,
        next,
    }))
}
