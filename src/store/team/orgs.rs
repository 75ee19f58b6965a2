//! The org tree: root orgs (each a tenant) with their first Owner, sub-orgs, renames and the
//! deletion of empty sub-orgs.

use async_trait::async_trait;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use super::{OrgRow, ensure_user};
use crate::domain::audit::AuditRecord;
use crate::domain::org::{Org, OrgRole};
use crate::domain::user::User;
use crate::domain::{Source, now};
use crate::store::db::{CountRow, Ctx, WriteTx, load_in_tenant, sql};
use crate::store::{SqlStore, StoreError};

#[async_trait]
pub trait OrgStore {
    /// Creates a root org (a new tenant) with its first Owner.
    async fn create_org(
        &self,
        ctx: &Ctx,
        name: &str,
        owner_email: &str,
    ) -> Result<(Org, User), StoreError>;
    async fn get_org(&self, tenant_id: Uuid, org_id: Uuid) -> Result<Org, StoreError>;
    /// Finds an org by id in any tenant: for the operator's command line only.
    async fn find_org(&self, org_id: Uuid) -> Result<Org, StoreError>;
    /// Every root org (tenant) of the database, oldest first: for the operator, who stands
    /// above the tenants.
    async fn list_root_orgs(&self) -> Result<Vec<Org>, StoreError>;
    /// Makes the user with this e-mail (created if need be) an Owner of the org. Break-glass.
    async fn add_owner(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        email: &str,
    ) -> Result<User, StoreError>;
    async fn create_sub_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        parent_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError>;
    async fn rename_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError>;
    async fn list_orgs(&self, tenant_id: Uuid) -> Result<Vec<Org>, StoreError>;
    /// Deletes an empty sub-org (no sub-orgs, products or members).
    async fn delete_org(&self, ctx: &Ctx, tenant_id: Uuid, org_id: Uuid) -> Result<(), StoreError>;
}

/// Sets the user's role in the org, inserting the membership if needed.
async fn set_membership_role(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    org_id: Uuid,
    user_id: Uuid,
    role: OrgRole,
) -> Result<Option<String>, StoreError> {
    #[derive(FromRow)]
    struct RoleRow {
        role: Option<String>,
    }
    let before =
        sql("SELECT role FROM memberships WHERE tenant_id = $1 AND org_id = $2 AND user_id = $3")
            .bind(tenant_id)
            .bind(org_id)
            .bind(user_id)
            .fetch_optional::<RoleRow>(tx.conn())
            .await?;
    let at = now();
    sql("INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at")
    .bind(tenant_id)
    .bind(org_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(Source::Manual.as_str())
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await?;
    tx.invalidate_user(user_id);
    Ok(before.and_then(|r| r.role))
}

#[async_trait]
impl OrgStore for SqlStore {
    async fn create_org(
        &self,
        ctx: &Ctx,
        name: &str,
        owner_email: &str,
    ) -> Result<(Org, User), StoreError> {
        let id = Uuid::now_v7();
        let at = now();
        let org = Org {
            id,
            tenant_id: id,
            parent_id: None,
            name: name.to_owned(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let mut tx = self.db.begin_write(ctx, id).await?;
        sql(
            "INSERT INTO orgs (id, tenant_id, parent_id, name, created_at, updated_at) \
             VALUES ($1, $2, NULL, $3, $4, $5)",
        )
        .bind(id)
        .bind(id)
        .bind(name)
        .bind(at)
        .bind(at)
        .execute(tx.conn())
        .await?;
        tx.audit(
            AuditRecord::new("org.create", "org", id)
                .org(id)
                .after(&org),
        );
        let owner = ensure_user(&mut tx, id, owner_email, Source::Manual).await?;
        set_membership_role(&mut tx, id, id, owner.id, OrgRole::Owner).await?;
        tx.audit(
            AuditRecord::new("membership.set_role", "user", owner.id)
                .org(id)
                .after(json!({ "role": "owner" })),
        );
        tx.commit().await?;
        Ok((org, owner))
    }

    async fn get_org(&self, tenant_id: Uuid, org_id: Uuid) -> Result<Org, StoreError> {
        let mut h = self.db.read().await?;
        load_in_tenant::<Org>(h.conn(), tenant_id, org_id).await
    }

    async fn find_org(&self, org_id: Uuid) -> Result<Org, StoreError> {
        let mut h = self.db.read().await?;
        sql(concat!(
            "SELECT ",
            org_columns!(),
            " FROM orgs WHERE id = $1"
        ))
        .bind(org_id)
        .fetch_one::<OrgRow>(h.conn())
        .await
        .map(Org::from)
    }

    async fn list_root_orgs(&self) -> Result<Vec<Org>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql(concat!(
            "SELECT ",
            org_columns!(),
            " FROM orgs WHERE parent_id IS NULL AND id = tenant_id ORDER BY created_at, id"
        ))
        .fetch_all::<OrgRow>(h.conn())
        .await?
        .into_iter()
        .map(Org::from)
        .collect())
    }

    async fn add_owner(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        email: &str,
    ) -> Result<User, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, org_id).await?;
        let user = ensure_user(&mut tx, tenant_id, email, Source::Manual).await?;
        let before =
            set_membership_role(&mut tx, tenant_id, org_id, user.id, OrgRole::Owner).await?;
        tx.audit(
            AuditRecord::new("membership.set_role", "user", user.id)
                .org(org_id)
                .before(json!({ "role": before }))
                .after(json!({ "role": "owner" })),
        );
        tx.commit().await?;
        Ok(user)
    }

    async fn create_sub_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        parent_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, parent_id).await?;
        let at = now();
        let org = Org {
            id: Uuid::now_v7(),
            tenant_id,
            parent_id: Some(parent_id),
            name: name.to_owned(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        sql("INSERT INTO orgs (id, tenant_id, parent_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(org.id)
            .bind(tenant_id)
            .bind(parent_id)
            .bind(name)
            .bind(at)
            .bind(at)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("org.create", "org", org.id)
                .org(org.id)
                .after(&org),
        );
        tx.commit().await?;
        Ok(org)
    }

    async fn rename_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = load_in_tenant::<Org>(tx.conn(), tenant_id, org_id).await?;
        let at = now();
        sql("UPDATE orgs SET name = $1, updated_at = $2, version = version + 1 WHERE id = $3 AND tenant_id = $4")
            .bind(name)
            .bind(at)
            .bind(org_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        let after = Org {
            name: name.to_owned(),
            updated_at: at,
            version: before.version + 1,
            ..before.clone()
        };
        tx.audit(
            AuditRecord::new("org.rename", "org", org_id)
                .org(org_id)
                .before(json!({"name": before.name}))
                .after(json!({"name": name})),
        );
        tx.commit().await?;
        Ok(after)
    }

    async fn list_orgs(&self, tenant_id: Uuid) -> Result<Vec<Org>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql(concat!(
            "SELECT ",
            org_columns!(),
            " FROM orgs WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant_id)
        .fetch_all::<OrgRow>(h.conn())
        .await?
        .into_iter()
        .map(Org::from)
        .collect())
    }

    async fn delete_org(&self, ctx: &Ctx, tenant_id: Uuid, org_id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let org = load_in_tenant::<Org>(tx.conn(), tenant_id, org_id).await?;
        if org.is_root() {
            return Err(StoreError::Rule(
                "a root organization cannot be deleted through the API".into(),
            ));
        }
        for (count, what) in [
            (
                sql("SELECT COUNT(*) AS n FROM orgs WHERE tenant_id = $1 AND parent_id = $2"),
                "sub-organizations",
            ),
            (
                sql("SELECT COUNT(*) AS n FROM products WHERE tenant_id = $1 AND org_id = $2"),
                "products",
            ),
            (
                sql("SELECT COUNT(*) AS n FROM memberships WHERE tenant_id = $1 AND org_id = $2"),
                "members",
            ),
        ] {
            let CountRow { n } = count
                .bind(tenant_id)
                .bind(org_id)
                .fetch_one::<CountRow>(tx.conn())
                .await?;
            if n > 0 {
                return Err(StoreError::Rule(format!(
                    "only an empty sub-organization can be deleted: it has {what}"
                )));
            }
        }
        sql("DELETE FROM grants WHERE tenant_id = $1 AND org_id = $2")
            .bind(tenant_id)
            .bind(org_id)
            .execute(tx.conn())
            .await?;
        sql("DELETE FROM orgs WHERE id = $1 AND tenant_id = $2")
            .bind(org_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("org.delete", "org", org_id)
                .org(org_id)
                .before(&org),
        );
        tx.commit().await?;
        Ok(())
    }
}
