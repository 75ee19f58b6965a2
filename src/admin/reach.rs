//! What an admin route requires of its caller, said once, in the handler's signature.
//!
//! A handler that acts on something its path names takes `InReach<T>`: the extractor
//! authenticates the admin token, reads the id from the path parameter `T` is named by
//! ([`Scoped::PARAM`]), loads it and checks the caller against the org it belongs to, all before
//! the handler runs. The handler gets the object only through that check, so it cannot forget
//! it. An org or product a request names in its body or query (a new org's parent, a token's
//! org, a product to invite to) goes through the same check, by [`AdminAuth::require`].

use std::collections::BTreeMap;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::extract::ApiPath;
use super::{AdminAuth, Caller, SignedInUser};
use crate::auth::Principal;
use crate::domain::invitation::Invitation;
use crate::domain::org::{self, Org};
use crate::domain::outbox::OutboxEntry;
use crate::domain::product::{Product, ProductDetail};
use crate::domain::token::Token;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TenantUser;

/// What a caller must have on an org to act on it or on what belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The org is within the admin token's reach: the token's own org or one below it.
    Reach,
    // Next: a session user's permission on the org, e.g. `Permission(Capability)`, checked
    // against the user's effective role there — the one place `AdminAuth::meets` then grows.
}

/// A route's requirement as a type, so that the signature says it: `InReach<Org>` needs
/// [`Reach`]; a route that needs more will name another requirement as `InReach<Org, R>`.
pub trait Requirement: Send + Sync + 'static {
    const NEED: Need;
}

/// The default requirement: the org within the caller's reach.
pub struct Reach;

impl Requirement for Reach {
    const NEED: Need = Need::Reach;
}

/// Something the admin API names by id that belongs to one org of a tenant.
pub trait Scoped: Sized + Send {
    /// The path parameter that carries its id.
    const PARAM: &'static str;

    /// `id` in the tenant. An id of another tenant, or of nothing, is not found.
    fn load(
        state: &AppState,
        tenant_id: Uuid,
        id: Uuid,
    ) -> impl Future<Output = Result<Self, ApiError>> + Send;

    /// The org it belongs to: the one the requirement is checked on.
    fn org_id(&self) -> Uuid;

    /// Every org the requirement may be met on; meeting it on one is enough. Most things
    /// belong to one org; a person belongs to each org they are a member of.
    fn org_ids(&self) -> Vec<Uuid> {
        vec![self.org_id()]
    }

    /// The product it is or belongs to, where a signed-in user's right is the product's
    /// (`manage_members` on it) rather than the org's.
    fn product_id(&self) -> Option<Uuid> {
        None
    }
}

/// What a route requires of a signed-in user, beyond the org being in their reach (the orgs
/// they are a member of and those below). Tokens are unaffected: an admin token may do
/// everything within its reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNeed {
    /// Reads of the team model: a member of the org.
    Member,
    /// Inviting members and changing members and their access: `manage_members` on the
    /// product (or, on an org, the `members: write` module role), or Owner.
    ManageMembers,
    /// Org settings: seed 002's Administrator (`manage_org_settings`) or Owner.
    OrgSettings,
    /// The audit log: `manage_members`, the `audit_log: read` module role, or Owner.
    AuditLog,
    /// Mappings, connections, tokens, org structure: Owner.
    Owner,
}

/// Every route's requirement of a signed-in user, said once: `(method, route)` as the router
/// matched it. A route not listed needs [`UserNeed::Member`] to read and
/// [`UserNeed::Owner`] to change anything — so a new route is closed until it is listed.
const USER_NEEDS: &[(&str, &str, UserNeed)] = &[
    (
        "PUT",
        "/api/v1/orgs/{org_id}/members/{user_id}",
        UserNeed::ManageMembers,
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org_id}/members/{user_id}",
        UserNeed::ManageMembers,
    ),
    (
        "PUT",
        "/api/v1/orgs/{org_id}/members/{user_id}/modules",
        UserNeed::ManageMembers,
    ),
    (
        "PUT",
        "/api/v1/products/{product_id}/members/{user_id}",
        UserNeed::ManageMembers,
    ),
    (
        "POST",
        "/api/v1/orgs/{org_id}/invitations",
        UserNeed::ManageMembers,
    ),
    (
        "POST",
        "/api/v1/invitations/{invitation_id}/resend",
        UserNeed::ManageMembers,
    ),
    (
        "DELETE",
        "/api/v1/invitations/{invitation_id}",
        UserNeed::ManageMembers,
    ),
    (
        "GET",
        "/api/v1/orgs/{org_id}/invitations",
        UserNeed::ManageMembers,
    ),
    (
        "DELETE",
        "/api/v1/orgs/{org_id}/members/{user_id}/sessions",
        UserNeed::ManageMembers,
    ),
    // The user's own sessions: anyone signed in (the handler keeps to their own).
    (
        "DELETE",
        "/api/v1/me/sessions/{session_id}",
        UserNeed::Member,
    ),
    ("PATCH", "/api/v1/orgs/{org_id}", UserNeed::OrgSettings),
    (
        "PUT",
        "/api/v1/orgs/{org_id}/settings",
        UserNeed::OrgSettings,
    ),
    ("GET", "/api/v1/audit", UserNeed::AuditLog),
    (
        "GET",
        "/api/v1/products/{product_id}/audit",
        UserNeed::AuditLog,
    ),
    // SCIM request errors name the filters an IdP sent (e-mail addresses among them).
    ("GET", "/api/v1/tokens/{token_id}/errors", UserNeed::Owner),
    (
        "GET",
        "/api/v1/orgs/{org_id}/oidc-connections",
        UserNeed::Owner,
    ),
    (
        "GET",
        "/api/v1/oidc-connections/{connection_id}",
        UserNeed::Owner,
    ),
    ("GET", "/api/v1/orgs/{org_id}/mappings", UserNeed::Owner),
    ("GET", "/api/v1/tokens", UserNeed::Owner),
    (
        "GET",
        "/api/v1/orgs/{org_id}/outbox",
        UserNeed::ManageMembers,
    ),
];

/// The `(method, route)` pairs [`USER_NEEDS`] lists, so a test can check each names a route
/// that exists (a mistyped read entry would fail open, to [`UserNeed::Member`]).
#[cfg(test)]
pub(super) fn listed_user_needs() -> impl Iterator<Item = (&'static str, &'static str)> {
    USER_NEEDS.iter().map(|(m, r, _)| (*m, *r))
}

/// What `method` on the matched `route` requires of a signed-in user. `HEAD` is answered by
/// the `GET` handler, so it needs what `GET` needs.
pub fn user_need(method: &axum::http::Method, route: &str) -> UserNeed {
    let method = if *method == axum::http::Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    USER_NEEDS
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map_or(
            if method == "GET" {
                UserNeed::Member
            } else {
                UserNeed::Owner
            },
            |(_, _, need)| *need,
        )
}

/// `T`, named by the route's path, which the caller may act on under `R`; rejected with 404 —
/// as if the id named nothing — when it may not.
pub struct InReach<T, R = Reach> {
    pub admin: AdminAuth,
    pub item: T,
    requirement: PhantomData<R>,
}

/// The org of `{org_id}`.
pub type OrgInReach = InReach<Org>;
/// The product of `{product_id}`, with its environments and permission groups.
pub type ProductInReach = InReach<ProductDetail>;

impl<T: Scoped, R: Requirement> FromRequestParts<AppState> for InReach<T, R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let admin = AdminAuth::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        // Every path parameter of the admin API is an id. All are parsed, as a handler's own
        // `ApiPath` would: a malformed one is the same 422 naming it.
        let ApiPath(ids) = ApiPath::<BTreeMap<String, Uuid>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(&id) = ids.get(T::PARAM) else {
            return Err(ApiError::Internal(format!(
                "route without the path parameter `{}`",
                T::PARAM
            ))
            .into_response());
        };
        let item = admin
            .require::<T>(state, id, R::NEED)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(InReach {
            admin,
            item,
            requirement: PhantomData,
        })
    }
}

impl AdminAuth {
    /// What `id` names, if this caller meets `need` on its org. Anything else — an unknown id,
    /// one of another tenant, one out of reach — is "not found", never "forbidden": ids reveal
    /// nothing.
    pub async fn require<T: Scoped>(
        &self,
        state: &AppState,
        id: Uuid,
        need: Need,
    ) -> Result<T, ApiError> {
        let item = T::load(state, self.tenant_id(), id).await?;
        self.meets(state, &item.org_ids(), need).await?;
        if let Caller::User(user) = &self.caller {
            user_may(state, user, &item.org_ids(), item.product_id()).await?;
        }
        Ok(item)
    }

    /// Acting on a person as a whole — adding them to an org, changing their role, ending their
    /// sessions — needs every org they belong to within reach, not just one: otherwise a
    /// sub-org's admin could sign out, or re-role, an Owner of the root who is also a member
    /// of the sub-org (or add the root's Owner to it first). Out of reach: not found.
    pub async fn require_whole_person(
        &self,
        state: &AppState,
        person: &TenantUser,
    ) -> Result<(), ApiError> {
        let reached = self.reached_orgs(state).await?;
        if person.org_ids().iter().all(|o| reached.contains(*o)) {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        }
    }

    /// Giving or taking the Owner role needs Owner (an admin token of the org is one): the
    /// right to manage members is not the right to make oneself, or anyone, an Owner.
    pub async fn require_owner_of(&self, state: &AppState, org_id: Uuid) -> Result<(), ApiError> {
        let Caller::User(user) = &self.caller else {
            return Ok(());
        };
        let at_org = state
            .resolver
            .org(user.session.tenant_id, user.session.user_id, org_id)
            .await?;
        if at_org.standing == crate::domain::resolve::Standing::Owner {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "only an Owner of the organization may give or take the Owner role",
            ))
        }
    }

    /// The org `org_id` of a body or query, if within reach.
    pub async fn org(&self, state: &AppState, org_id: Uuid) -> Result<Org, ApiError> {
        self.require(state, org_id, Need::Reach).await
    }

    /// The product `product_id` of a body or query, if its org is within reach.
    pub async fn product(
        &self,
        state: &AppState,
        product_id: Uuid,
    ) -> Result<ProductDetail, ApiError> {
        self.require(state, product_id, Need::Reach).await
    }

    /// Whether this caller meets `need` on one of `org_ids`, orgs of its tenant. A token of
    /// the root org reaches the whole tenant; a sub-org's token its own org and the orgs below
    /// it.
    async fn meets(&self, state: &AppState, org_ids: &[Uuid], need: Need) -> Result<(), ApiError> {
        let token = match &self.caller {
            Caller::Token(principal) => &principal.token,
            Caller::User(user) => {
                let reached = user_reach(state, user).await?;
                return if org_ids.iter().any(|o| reached.contains(*o)) {
                    Ok(())
                } else {
                    Err(ApiError::NotFound)
                };
            }
        };
        match need {
            Need::Reach => {
                if token.org_id == token.tenant_id || org_ids.contains(&token.org_id) {
                    return Ok(());
                }
                let tree = state.store.list_orgs(self.tenant_id()).await?;
                if org_ids.iter().any(|o| reaches(token.org_id, &tree, *o)) {
                    Ok(())
                } else {
                    Err(ApiError::NotFound)
                }
            }
        }
    }

    /// The orgs this caller reaches, for a list that shows only what is within reach.
    pub async fn reached_orgs(&self, state: &AppState) -> Result<ReachedOrgs, ApiError> {
        match &self.caller {
            Caller::Token(principal) => reached_by(state, principal).await,
            Caller::User(user) => user_reach(state, user).await,
        }
    }
}

/// A signed-in user's reach: the orgs they are a direct member of and every org below them.
async fn user_reach(state: &AppState, user: &SignedInUser) -> Result<ReachedOrgs, ApiError> {
    let tenant = user.session.tenant_id;
    if user.member_of.contains(&tenant) {
        return Ok(ReachedOrgs::Tenant);
    }
    let tree = state.store.list_orgs(tenant).await?;
    let mut orgs: Vec<Uuid> = user
        .member_of
        .iter()
        .flat_map(|top| subtree(*top, &tree))
        .collect();
    orgs.sort_unstable();
    orgs.dedup();
    Ok(ReachedOrgs::Subtree(orgs))
}

/// Whether the signed-in user meets the route's [`UserNeed`] on one of `org_ids` (or on
/// `product`), asked of the cached resolver. Within reach but not allowed: 403.
async fn user_may(
    state: &AppState,
    user: &SignedInUser,
    org_ids: &[Uuid],
    product: Option<Uuid>,
) -> Result<(), ApiError> {
    use crate::domain::permission::Capability;
    use crate::domain::resolve::Standing;
    if user.need == UserNeed::Member {
        return Ok(());
    }
    let (tenant, user_id) = (user.session.tenant_id, user.session.user_id);
    for org in org_ids {
        let at_org = state.resolver.org(tenant, user_id, *org).await?;
        if at_org.standing == Standing::Owner {
            return Ok(());
        }
        let allowed = match user.need {
            UserNeed::Member => true,
            UserNeed::Owner => false,
            UserNeed::ManageMembers => {
                at_org.has(Capability::ManageMembers)
                    || at_org
                        .modules
                        .get(&crate::domain::permission::Module::Members)
                        .is_some_and(|m| m.level == crate::domain::permission::ModuleLevel::Write)
            }
            UserNeed::AuditLog => {
                at_org.has(Capability::ManageMembers)
                    || at_org
                        .modules
                        .get(&crate::domain::permission::Module::AuditLog)
                        .is_some_and(|m| m.level != crate::domain::permission::ModuleLevel::None)
            }
            UserNeed::OrgSettings => at_org.has(Capability::ManageOrgSettings),
        };
        if allowed {
            return Ok(());
        }
    }
    if let Some(product) = product
        && matches!(
            user.need,
            UserNeed::ManageMembers | UserNeed::OrgSettings | UserNeed::AuditLog
        )
    {
        let on_product = state.resolver.product(tenant, user_id, product).await;
        let capability = if user.need == UserNeed::OrgSettings {
            Capability::ManageOrgSettings
        } else {
            Capability::ManageMembers
        };
        if on_product.is_ok_and(|r| r.has(capability)) {
            return Ok(());
        }
    }
    Err(ApiError::Forbidden(
        "your role does not allow this here (ask an Owner of the organization)",
    ))
}

/// The orgs the token behind `principal` reaches — an admin token's, or a service token's,
/// whose reach is the same: its org's subtree.
pub(super) async fn reached_by(
    state: &AppState,
    principal: &Principal,
) -> Result<ReachedOrgs, ApiError> {
    let token = &principal.token;
    if token.org_id == token.tenant_id {
        return Ok(ReachedOrgs::Tenant);
    }
    let tree = state.store.list_orgs(principal.tenant_id()).await?;
    Ok(ReachedOrgs::Subtree(subtree(token.org_id, &tree)))
}

/// The orgs through which a person of `tenant_id` is reached: those they are a member of, and
/// the one whose SCIM token holds them. A person with neither is counted as the tenant's (its
/// root org's, whose id is the tenant's), so only a caller who reaches the whole tenant finds
/// them.
pub(super) fn person_orgs(
    memberships: impl IntoIterator<Item = Uuid>,
    scim_org_id: Option<Uuid>,
    tenant_id: Uuid,
) -> Vec<Uuid> {
    let mut orgs: Vec<Uuid> = memberships.into_iter().collect();
    orgs.extend(scim_org_id);
    if orgs.is_empty() {
        orgs.push(tenant_id);
    }
    orgs
}

/// The orgs a caller reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReachedOrgs {
    /// Every org of the tenant: a token of its root org.
    Tenant,
    /// A sub-org's token: its org and the orgs below it.
    Subtree(Vec<Uuid>),
}

impl ReachedOrgs {
    pub fn contains(&self, org_id: Uuid) -> bool {
        match self {
            ReachedOrgs::Tenant => true,
            ReachedOrgs::Subtree(orgs) => orgs.contains(&org_id),
        }
    }

    /// The orgs, for a query to keep to; `None`: no need, every org of the tenant is in reach.
    pub fn orgs(self) -> Option<Vec<Uuid>> {
        match self {
            ReachedOrgs::Tenant => None,
            ReachedOrgs::Subtree(orgs) => Some(orgs),
        }
    }
}

/// `top` and the orgs below it, given the tenant's orgs.
pub(super) fn subtree(top: Uuid, tree: &[Org]) -> Vec<Uuid> {
    tree.iter()
        .filter(|o| reaches(top, tree, o.id))
        .map(|o| o.id)
        .collect()
}

/// Whether a token of `token_org` reaches `org_id`, given the tenant's orgs: its own org and
/// the orgs below it do.
pub(super) fn reaches(token_org: Uuid, tree: &[Org], org_id: Uuid) -> bool {
    org::chain_to_root(org_id, |o| {
        tree.iter().find(|t| t.id == o).map(|t| t.parent_id)
    })
    .contains(&token_org)
}

impl Scoped for Org {
    const PARAM: &'static str = "org_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        Ok(state.store.get_org(tenant_id, id).await?)
    }

    fn org_id(&self) -> Uuid {
        self.id
    }
}

impl Scoped for ProductDetail {
    const PARAM: &'static str = "product_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        Ok(state.store.get_product(tenant_id, id).await?)
    }

    fn org_id(&self) -> Uuid {
        self.product.org_id
    }

    fn product_id(&self) -> Option<Uuid> {
        Some(self.product.id)
    }
}

/// An environment, by id, with the product it belongs to.
pub struct ProductEnvironment {
    pub id: Uuid,
    pub product: Product,
}

impl Scoped for ProductEnvironment {
    const PARAM: &'static str = "environment_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        let product = state.store.environment_product(tenant_id, id).await?;
        Ok(ProductEnvironment { id, product })
    }

    fn org_id(&self) -> Uuid {
        self.product.org_id
    }
}

/// A permission group (a stored one, or a built-in role's id), with its product.
pub struct ProductGroup {
    pub id: Uuid,
    pub product: Product,
}

impl Scoped for ProductGroup {
    const PARAM: &'static str = "group_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        let product = state.store.permission_group_product(tenant_id, id).await?;
        Ok(ProductGroup { id, product })
    }

    fn org_id(&self) -> Uuid {
        self.product.org_id
    }
}

impl Scoped for Token {
    const PARAM: &'static str = "token_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        // Tokens are looked up by id alone (authentication finds them so): the tenant is
        // checked here.
        let token = state.store.find_token(id).await?;
        if token.tenant_id != tenant_id {
            return Err(ApiError::NotFound);
        }
        Ok(token)
    }

    fn org_id(&self) -> Uuid {
        self.org_id
    }
}

impl Scoped for Invitation {
    const PARAM: &'static str = "invitation_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        Ok(state.store.get_invitation(tenant_id, id).await?)
    }

    fn org_id(&self) -> Uuid {
        self.org_id
    }
}

/// A mail of the outbox belongs to the org it was sent for.
impl Scoped for OutboxEntry {
    const PARAM: &'static str = "mail_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        Ok(state.store.get_mail(tenant_id, id).await?)
    }

    fn org_id(&self) -> Uuid {
        self.org_id
    }
}

/// A person of the tenant, reached through any org they are a member of or whose SCIM token
/// holds them.
impl Scoped for TenantUser {
    const PARAM: &'static str = "user_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        Ok(state.store.get_user(tenant_id, id).await?)
    }

    /// The org that holds the person, else the tenant's root org (as for [`HeldUser`]).
    fn org_id(&self) -> Uuid {
        self.scim_org_id.unwrap_or(self.user.tenant_id)
    }

    /// Their memberships' orgs and their SCIM holder. A person with neither is counted as the
    /// tenant's, so only a caller who reaches the whole tenant finds them (as an unheld
    /// [`HeldUser`]).
    fn org_ids(&self) -> Vec<Uuid> {
        person_orgs(
            self.memberships.iter().map(|m| m.org_id),
            self.scim_org_id,
            self.user.tenant_id,
        )
    }
}

/// A person SCIM provisioning holds, with the org whose SCIM token holds them: releasing them
/// is that org's business.
pub struct HeldUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The org whose SCIM token provisions the person; `None`: nobody's.
    pub scim_org_id: Option<Uuid>,
}

impl Scoped for HeldUser {
    const PARAM: &'static str = "user_id";

    async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Self, ApiError> {
        let (tenant, holder) = state.store.scim_holder(id).await?;
        if tenant != tenant_id {
            return Err(ApiError::NotFound);
        }
        Ok(HeldUser {
            id,
            tenant_id,
            scim_org_id: holder,
        })
    }

    /// A held person is reached through the org that holds them. One nobody holds is counted
    /// as the tenant's (its root org's): only a caller who reaches the whole tenant learns
    /// that such a person exists and is not held; anyone else gets the 404 any unknown id
    /// gets.
    fn org_id(&self) -> Uuid {
        self.scim_org_id.unwrap_or(self.tenant_id)
    }
}
