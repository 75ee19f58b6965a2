//! Who may do what: a member's grants on products and module levels in orgs, and the facts
//! the evaluator reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use super::members::{MemberQuery, MemberStore, OrgMember};
use super::products::{load_groups, load_groups_of};
use super::{chain, insert_grant, memberships_in, source, tenant_tree};
use crate::domain::Source;
use crate::domain::audit::AuditRecord;
use crate::domain::org::Org;
use crate::domain::permission::{Module, ModuleLevel, Role};
use crate::domain::product::{PermissionGroup, Product, role_group_id};
use crate::store::db::{Conn, Ctx, SqlBuilder, WriteTx, load_in_tenant, push_list, sql};
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
    /// A page of the members of a product's org (as [`MemberStore::list_members`] pages them),
    /// each with what was granted to them on the product: a fixed number of queries for a
    /// page, however many members it holds.
    async fn product_members(
        &self,
        tenant_id: Uuid,
        product_id: Uuid,
        query: &MemberQuery,
    ) -> Result<Vec<ProductMember>, StoreError>;
    /// A person's grants of permission groups and roles, by product (in product id order).
    async fn user_product_access(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<UserProductAccess>, StoreError>;
}

#[derive(FromRow)]
struct GrantRow {
    subject_id: Uuid,
    kind: String,
    product_id: Option<Uuid>,
    target: String,
    source: String,
}

/// A user's grant, its source read.
struct Grant {
    subject_id: Uuid,
    kind: String,
    product_id: Option<Uuid>,
    target: String,
    source: Source,
}

/// All grants of some users in some orgs (a chain, or one org), in the order they were given.
async fn grants_of(
    conn: Conn<'_>,
    tenant_id: Uuid,
    user_ids: &[Uuid],
    orgs: &[Uuid],
) -> Result<Vec<Grant>, StoreError> {
    if user_ids.is_empty() || orgs.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new(
        "SELECT subject_id, kind, product_id, target, source FROM grants \
         WHERE tenant_id = ",
    );
    b.push_bind(tenant_id)
        .push(" AND subject_kind = 'user' AND subject_id IN (");
    push_list(&mut b, user_ids);
    b.push(") AND org_id IN (");
    push_list(&mut b, orgs);
    b.push(") ORDER BY id");
    b.build()
        .fetch_all::<GrantRow>(conn)
        .await?
        .into_iter()
        .map(|r| {
            Ok(Grant {
                source: source(&r.source)?,
                subject_id: r.subject_id,
                kind: r.kind,
                product_id: r.product_id,
                target: r.target,
            })
        })
        .collect()
}

/// A grant of access to a product as the admin screens show it: the permission group or
/// built-in role given, and what gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GrantedGroup {
    /// The permission group; for a built-in role, the role's id on the product (as the
    /// product's permission groups list it).
    pub permission_group_id: Uuid,
    pub name: String,
    /// The built-in role, when the grant is one.
    pub role: Option<Role>,
    pub source: Source,
}

/// A person's grants on one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserProductAccess {
    pub product_id: Uuid,
    pub product_name: String,
    /// The product's org, where the grants were given.
    pub org_id: Uuid,
    pub grants: Vec<GrantedGroup>,
}

/// A member of a product's org, with what was granted to them on it.
#[derive(Debug, Clone)]
pub struct ProductMember {
    pub member: OrgMember,
    pub grants: Vec<GrantedGroup>,
}

/// What a `permission_group` or `role` grant on a product names.
/// `None` for other kinds, and for a group no longer there (its grants go with it; only a
/// grant read while its group is being deleted can miss it).
fn granted(
    product_id: Uuid,
    kind: &str,
    target: &str,
    source: Source,
    groups: &[PermissionGroup],
) -> Option<GrantedGroup> {
    match kind {
        "permission_group" => {
            let group = groups
                .iter()
                .find(|pg| pg.product_id == product_id && pg.id.to_string() == target)?;
            Some(GrantedGroup {
                permission_group_id: group.id,
                name: group.name.clone(),
                role: None,
                source,
            })
        }
        "role" => {
            let role = Role::parse(target)?;
            Some(GrantedGroup {
                permission_group_id: role_group_id(product_id, role),
                name: role.display_name().to_owned(),
                role: Some(role),
                source,
            })
        }
        _ => None,
    }
}

/// The groups and roles of `grants` (one member's) on `product_id`.
fn granted_on<'a>(
    product_id: Uuid,
    grants: impl Iterator<Item = &'a Grant>,
    groups: &[PermissionGroup],
) -> Vec<GrantedGroup> {
    grants
        .filter(|g| g.product_id == Some(product_id))
        .filter_map(|g| granted(product_id, &g.kind, &g.target, g.source, groups))
        .collect()
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

#[derive(FromRow)]
struct ProductGrantRow {
    product_id: Uuid,
    product_name: String,
    org_id: Uuid,
    kind: String,
    target: String,
    source: String,
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
        let before = grants_of(tx.conn(), tenant_id, &[user_id], &[product.org_id]).await?;
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

    async fn product_members(
        &self,
        tenant_id: Uuid,
        product_id: Uuid,
        query: &MemberQuery,
    ) -> Result<Vec<ProductMember>, StoreError> {
        let product = {
            let mut h = self.db.read().await?;
            load_in_tenant::<Product>(h.conn(), tenant_id, product_id).await?
        };
        let members = self.list_members(tenant_id, product.org_id, query).await?;
        let mut h = self.db.read().await?;
        let tree = tenant_tree(h.conn(), tenant_id).await?;
        let chain = chain(&tree, product.org_id);
        let ids: Vec<Uuid> = members.iter().map(|m| m.user.id).collect();
        let grants = grants_of(h.conn(), tenant_id, &ids, &chain).await?;
        let groups = load_groups_of(&mut h, tenant_id, &[product_id]).await?;
        Ok(members
            .into_iter()
            .map(|member| ProductMember {
                grants: granted_on(
                    product_id,
                    grants.iter().filter(|g| g.subject_id == member.user.id),
                    &groups,
                ),
                member,
            })
            .collect())
    }

    async fn user_product_access(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<UserProductAccess>, StoreError> {
        let mut h = self.db.read().await?;
        let rows = sql(
            "SELECT g.product_id, p.name AS product_name, p.org_id, g.kind, g.target, g.source \
             FROM grants g JOIN products p ON p.id = g.product_id AND p.tenant_id = g.tenant_id \
             WHERE g.tenant_id = $1 AND g.subject_kind = 'user' AND g.subject_id = $2 \
             AND g.kind IN ('permission_group', 'role') ORDER BY g.product_id, g.id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all::<ProductGrantRow>(h.conn())
        .await?;
        let mut ids: Vec<Uuid> = rows.iter().map(|r| r.product_id).collect();
        ids.dedup();
        let groups = load_groups_of(&mut h, tenant_id, &ids).await?;
        let mut out: Vec<UserProductAccess> = Vec::new();
        for r in rows {
            let Some(view) = granted(
                r.product_id,
                &r.kind,
                &r.target,
                source(&r.source)?,
                &groups,
            ) else {
                continue;
            };
            match out.last_mut() {
                Some(last) if last.product_id == r.product_id => last.grants.push(view),
                _ => out.push(UserProductAccess {
                    product_id: r.product_id,
                    product_name: r.product_name,
                    org_id: r.org_id,
                    grants: vec![view],
                }),
            }
        }
        Ok(out)
    }
}
