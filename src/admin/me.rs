//! The signed-in user: who they are, their role in each org they reach and their effective
//! permissions. A token is no person: `/me` refuses tokens (403), as it refuses SCIM tokens.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AdminAuth;
use super::doc::AuthErrors;
use super::extract::ApiQuery;
use crate::authz::EffectivePermissions;
use crate::domain::resolve::Standing;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(me))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MeParams {
    /// Only this org (and its products).
    org: Option<Uuid>,
    /// Only this product.
    product: Option<Uuid>,
    /// `1`: each permission with the grants behind it.
    explain: Option<u8>,
}

/// The signed-in user.
///
/// Who they are, their role in each org they reach and their effective permissions on each
/// product there. Tokens (admin and service) are refused (403): `/me` is a person's.
#[utoipa::path(
    get,
    path = "/me",
    tag = "meta",
    security(("bearer" = [])),
    params(MeParams),
    responses(
        (status = 200, description = "The signed-in user with their orgs and permissions.", body = Object),
        AuthErrors,
        (status = 403, description = "A token, not a signed-in user.", body = ErrorBody)
    )
)]
async fn me(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiQuery(params): ApiQuery<MeParams>,
) -> Result<Response, ApiError> {
    let user = admin.signed_in_user()?.clone();
    let (tenant, user_id) = (user.session.tenant_id, user.session.user_id);
    let person = state.store.get_user(tenant, user_id).await?.user;
    let reached = admin.reached_orgs(&state).await?;
    let all = state.store.list_orgs(tenant).await?;
    let explain = params.explain == Some(1);
    let mut orgs = Vec::new();
    let mut permissions = Vec::new();
    for org in all.iter().filter(|o| reached.contains(o.id)) {
        if params.org.is_some_and(|wanted| wanted != org.id) {
            continue;
        }
        let at_org = state.resolver.org(tenant, user_id, org.id).await?;
        let role = match at_org.standing {
            Standing::Owner => "owner",
            Standing::Member => "member",
            Standing::NotMember | Standing::Inactive => continue,
        };
        orgs.push(json!({ "org_id": org.id, "name": org.name, "role": role }));
        for product in state.store.list_products(tenant, org.id).await? {
            if params.product.is_some_and(|wanted| wanted != product.id) {
                continue;
            }
            let Ok(resolved) = state.resolver.product(tenant, user_id, product.id).await else {
                continue;
            };
            let mut entry = json!({
                "product_id": product.id,
                "org_id": org.id,
                "permissions": EffectivePermissions::from(resolved.as_ref()),
            });
            if explain {
                entry["explanation"] = json!(resolved.as_ref());
            }
            permissions.push(entry);
        }
    }
    Ok(axum::Json(json!({
        "kind": "user",
        "user": { "id": person.id, "user_name": person.user_name, "email": person.email },
        "session_id": user.session.id,
        "orgs": orgs,
        "permissions": permissions,
    }))
    .into_response())
}
