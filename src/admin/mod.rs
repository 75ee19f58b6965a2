//! The admin REST API under `/api/v1`, authenticated by an admin token.

mod audit;
mod invitations;
mod members;
mod orgs;
mod products;
mod tokens;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::auth::{self, Principal};
use crate::domain::audit::Actor;
use crate::domain::org::Org;
use crate::domain::token::TokenKind;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Ctx;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(orgs::router())
        .merge(members::router())
        .merge(products::router())
        .merge(tokens::router())
        .merge(invitations::router())
        .merge(audit::router())
}

/// An admin caller: the token, and the write context its changes are audited under.
pub struct AdminAuth {
    pub principal: Principal,
    pub ctx: Ctx,
}

impl AdminAuth {
    pub fn tenant_id(&self) -> Uuid {
        self.principal.tenant_id()
    }

    /// The org `org_id`, if this caller may act on it. A token of the root org reaches the
    /// whole tenant; a sub-org's token reaches its own org and the orgs below it. Anything else, including ids of
    /// other tenants, is "not found", never "forbidden": ids reveal nothing.
    pub async fn org(&self, state: &AppState, org_id: Uuid) -> Result<Org, ApiError> {
        let org = state.store.get_org(self.tenant_id(), org_id).await?;
        let token = &self.principal.token;
        if token.org_id == token.tenant_id || token.org_id == org_id {
            return Ok(org);
        }
        let tree = state.store.list_orgs(self.tenant_id()).await?;
        let chain = crate::domain::org::chain_to_root(org_id, |o| {
            tree.iter().find(|t| t.id == o).map(|t| t.parent_id)
        });
        if chain.contains(&token.org_id) {
            Ok(org)
        } else {
            Err(ApiError::NotFound)
        }
    }

    /// The product `product_id`, if this caller reaches its org.
    pub async fn product(
        &self,
        state: &AppState,
        product_id: Uuid,
    ) -> Result<crate::domain::product::ProductDetail, ApiError> {
        let detail = state
            .store
            .get_product(self.tenant_id(), product_id)
            .await?;
        self.org(state, detail.product.org_id).await?;
        Ok(detail)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = auth::authenticate(state, parts, TokenKind::Admin).await?;
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let actor = Actor::AdminToken {
            id: principal.token.id,
            name: principal.token.name.clone(),
        };
        Ok(AdminAuth {
            principal,
            ctx: Ctx::new(actor).with_request_id(request_id),
        })
    }
}
