//! Who may do what: a member's grants on products and module levels in orgs, and the facts
//! the evaluator reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use super::products::{ProductStore, load_environments_of, load_groups, load_groups_of};
use super::{chain, insert_grant, memberships_in, tenant_tree};
use crate::authz::{ProductFacts, UserFacts};
use crate::domain::Source;
use crate::domain::audit::AuditRecord;
use crate::domain::org::{self, Org, OrgRole};
use crate::domain::permission::{
    Module, ModuleLevel, PermissionSet, Role, effective_modules, module_permissions,
};
use crate::domain::product::{Environment, Product};
use crate::domain::user::User;
use crate::store::db::{Conn, Ctx, Db, SqlBuilder, WriteTx, load_in_tenant, push_list, sql};
use crate::store::{SqlStore, StoreError};

/// A member's grants on one product from one source; setting them replaces that source's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductAccess {
    pub permission_groups: Vec<Uuid>,
    pub role: Option<Role>,
    pub source: Source,
}

#[async_trait]
pub trait AccessStore {
    /// Replaces a member's grants on a product from `access.source`.
    async fn set_product_access(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        access: &ProductAccess,
    ) -> Result<(), StoreError>;
    /// Sets a member's module levels in an org (`none`: inherit).
    async fn set_module_roles(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        levels: &BTreeMap<Module, ModuleLevel>,
    ) -> Result<(), StoreError>;
    /// What the evaluator needs for a member on a product; `NotFound` for a non-member.
    async fn member_facts(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        product_id: Uuid,
    ) -> Result<(UserFacts, ProductFacts), StoreError>;
    /// The same for every product of an org, in a fixed number of queries.
    async fn member_facts_in_org(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<(UserFacts, ProductFacts)>, StoreError>;
}

#[derive(FromRow)]
struct GrantRow {
    org_id: Uuid,
    kind: String,
    product_id: Option<Uuid>,
    target: String,
    level: Option<String>,
}

/// All grants of a user on one product, or in orgs of a chain.
async fn user_grants(
    conn: Conn<'_>,
    tenant_id: Uuid,
    user_id: Uuid,
    chain: &[Uuid],
) -> Result<Vec<GrantRow>, StoreError> {
    let mut b = SqlBuilder::new(
        "SELECT org_id, kind, product_id, target, level FROM grants WHERE tenant_id = ",
    );
    b.push_bind(tenant_id)
        .push(" AND subject_kind = 'user' AND subject_id = ")
        .push_bind(user_id);
    b.push(" AND org_id IN (");
    push_list(&mut b, chain);
    b.push(") ORDER BY id");
    b.build().fetch_all::<GrantRow>(conn).await
}

/// The user must be a member (direct or inherited) of the org.
async fn require_member(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let tree = tenant_tree(tx.conn(), tenant_id).await?;
    let chain = chain(&tree, org_id);
    if memberships_in(tx.conn(), tenant_id, &[user_id], &chain)
        .await?
        .is_empty()
    {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// What the evaluator needs for one member on several products of one org, loaded with a
/// fixed number of queries however many products there are. `NotFound` for a non-member.
async fn facts_for(
    db: &Db,
    tenant_id: Uuid,
    user_id: Uuid,
    org_id: Uuid,
    products: &[Product],
) -> Result<Vec<(UserFacts, ProductFacts)>, StoreError> {
    let mut h = db.read().await?;
    let user = load_in_tenant::<User>(h.conn(), tenant_id, user_id).await?;
    let tree = tenant_tree(h.conn(), tenant_id).await?;
    let chain = chain(&tree, org_id);
    let memberships = memberships_in(h.conn(), tenant_id, &[user_id], &chain).await?;
    let role_in = |o: Uuid| {
        memberships
            .iter()
            .find(|(mo, _, _)| *mo == o)
            .map(|(_, _, r)| *r)
    };
    let Some(effective) = org::effective_role(&chain, role_in) else {
        return Err(StoreError::NotFound);
    };
    let grants = user_grants(h.conn(), tenant_id, user_id, &chain).await?;
    let ids: Vec<Uuid> = products.iter().map(|p| p.id).collect();
    let groups = load_groups_of(&mut h, tenant_id, &ids).await?;
    let environments = load_environments_of(&mut h, tenant_id, &ids).await?;
    // Module roles are org-level: the same sets on every product of the org.
    let module_grants: Vec<_> = grants
        .iter()
        .filter(|g| g.kind == "module_role")
        .filter_map(|g| {
            Some((
                g.org_id,
                Module::parse(&g.target)?,
                g.level.as_deref().and_then(ModuleLevel::parse)?,
            ))
        })
        .collect();
    let module_sets: Vec<PermissionSet> = effective_modules(&chain, &module_grants)
        .into_iter()
        .map(|(m, l)| module_permissions(m, l))
        .collect();
    Ok(products
        .iter()
        .map(|product| {
            let mut sets = module_sets.clone();
            for g in grants.iter().filter(|g| g.product_id == Some(product.id)) {
                match g.kind.as_str() {
                    "permission_group" => {
                        if let Some(group) = groups
                            .iter()
                            .find(|pg| pg.product_id == product.id && pg.id.to_string() == g.target)
                        {
                            sets.push(group.permissions.clone());
                        }
                    }
                    "role" => sets.extend(Role::parse(&g.target).map(Role::permissions)),
                    _ => {}
                }
            }
            let facts = UserFacts {
                active: user.active,
                org_owner: effective.role == OrgRole::Owner,
                sets,
            };
            let envs = environments
                .iter()
                .filter(|e| e.product_id == product.id)
                .map(Environment::as_ref)
                .collect();
            (
                facts,
                ProductFacts {
                    id: product.id,
                    environments: envs,
                },
            )
        })
        .collect())
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn set_product_access(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        access: &ProductAccess,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let product = load_in_tenant::<Product>(tx.conn(), tenant_id, product_id).await?;
        require_member(&mut tx, tenant_id, product.org_id, user_id).await?;
        let groups = load_groups(&mut tx, tenant_id, product_id).await?;
        let unknown: Vec<Uuid> = access
            .permission_groups
            .iter()
            .copied()
            .filter(|id| !groups.iter().any(|g| g.id == *id))
            .collect();
        if !unknown.is_empty() {
            return Err(StoreError::UnknownIds(unknown));
        }
        let before = user_grants(tx.conn(), tenant_id, user_id, &[product.org_id]).await?;
        let before: Vec<String> = before
            .into_iter()
            .filter(|g| g.product_id == Some(product_id))
            .map(|g| format!("{}:{}", g.kind, g.target))
            .collect();
        sql("DELETE FROM grants WHERE tenant_id = $1 AND subject_kind = 'user' AND subject_id = $2 AND product_id = $3 \
             AND source = $4 AND kind IN ('permission_group', 'role')")
        .bind(tenant_id)
        .bind(user_id)
        .bind(product_id)
        .bind(access.source.as_str())
        .execute(tx.conn())
        .await?;
        for g in &access.permission_groups {
            insert_grant(
                &mut tx,
                tenant_id,
                product.org_id,
                user_id,
                "permission_group",
                Some(product_id),
                &g.to_string(),
                None,
                access.source,
            )
            .await?;
        }
        if let Some(role) = access.role {
            insert_grant(
                &mut tx,
                tenant_id,
                product.org_id,
                user_id,
                "role",
                Some(product_id),
                role.as_str(),
                None,
                access.source,
            )
            .await?;
        }
        tx.audit(AuditRecord::new("member.set_product_access", "user", user_id)
            .org(product.org_id)
            .before(json!({ "grants": before }))
            .after(json!({ "permission_groups": access.permission_groups, "role": access.role, "source": access.source })).product(product_id));
        tx.invalidate_user(user_id);
        tx.commit().await?;
        Ok(())
    }

    async fn set_module_roles(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        levels: &BTreeMap<Module, ModuleLevel>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, org_id).await?;
        require_member(&mut tx, tenant_id, org_id, user_id).await?;
        for (module, level) in levels {
            let target = module.as_str();
            sql("DELETE FROM grants WHERE tenant_id = $1 AND subject_kind = 'user' AND subject_id = $2 AND org_id = $3 \
                 AND kind = 'module_role' AND target = $4 AND source = 'manual'")
            .bind(tenant_id)
            .bind(user_id)
            .bind(org_id)
            .bind(target)
            .execute(tx.conn())
            .await?;
            // `none` means inherit: no row.
            if *level != ModuleLevel::None {
                insert_grant(
                    &mut tx,
                    tenant_id,
                    org_id,
                    user_id,
                    "module_role",
                    None,
                    target,
                    Some(level.as_str()),
                    Source::Manual,
                )
                .await?;
            }
        }
        tx.audit(
            AuditRecord::new("member.set_module_roles", "user", user_id)
                .org(org_id)
                .after(levels),
        );
        tx.invalidate_user(user_id);
        tx.commit().await?;
        Ok(())
    }

    async fn member_facts(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        product_id: Uuid,
    ) -> Result<(UserFacts, ProductFacts), StoreError> {
        let product = {
            let mut h = self.db.read().await?;
            load_in_tenant::<Product>(h.conn(), tenant_id, product_id).await?
        };
        let org_id = product.org_id;
        facts_for(&self.db, tenant_id, user_id, org_id, &[product])
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }

    async fn member_facts_in_org(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<(UserFacts, ProductFacts)>, StoreError> {
        let products = self.list_products(tenant_id, org_id).await?;
        facts_for(&self.db, tenant_id, user_id, org_id, &products).await
    }
}
