//! Products with their environments and permission groups: the stored groups (presets and
//! custom ones) and the built-in roles, whose ids derive from the product.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::insert_grant;
use crate::domain::audit::AuditRecord;
use crate::domain::org::Org;
use crate::domain::permission::{
    AccessRule, Capability, EnvAccess, PermissionSet, Role, product_presets,
};
use crate::domain::product::{
    Environment, PermissionGroup, Product, ProductDetail, role_group_id, role_groups,
};
use crate::domain::{Source, normalize, now};
use crate::store::db::{
    AsConn, Ctx, IdRow, SqlBuilder, TenantResource, WriteTx, load_in_tenant,
    load_in_tenant_for_update, push_list, sql,
};
use crate::store::{ENVIRONMENT_NAME_TAKEN, PERMISSION_GROUP_NAME_TAKEN, SqlStore, StoreError};

/// The columns of a `products` row, in [`ProductRow`]'s order.
macro_rules! product_columns {
    () => {
        "id, tenant_id, org_id, name, created_at, updated_at, version"
    };
}

/// The columns of an `environments` row, in [`EnvironmentRow`]'s order.
macro_rules! environment_columns {
    () => {
        "id, product_id, name, restricted, created_at, updated_at"
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvironment {
    pub name: String,
    pub restricted: bool,
}

#[async_trait]
pub trait ProductStore {
    /// Creates a product with its environments and the seed presets.
    async fn create_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
        environments: &[NewEnvironment],
    ) -> Result<ProductDetail, StoreError>;
    async fn get_product(
        &self,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<ProductDetail, StoreError>;
    async fn list_products(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Product>, StoreError>;
    async fn rename_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        name: &str,
    ) -> Result<Product, StoreError>;
    async fn delete_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<(), StoreError>;

    async fn create_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        env: &NewEnvironment,
    ) -> Result<Environment, StoreError>;
    async fn update_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
        name: Option<&str>,
        restricted: Option<bool>,
    ) -> Result<Environment, StoreError>;
    /// Deletes an environment and every access setting that named it.
    async fn delete_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<(), StoreError>;
    async fn environment_product(
        &self,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<Product, StoreError>;

    /// Creates (`existing: None`) or replaces a permission group of a product.
    async fn save_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        existing: Option<Uuid>,
        name: &str,
        permissions: &PermissionSet,
    ) -> Result<PermissionGroup, StoreError>;
    /// Deletes a group; refused while grants use it unless they move to `reassign_to` in the
    /// same transaction. Returns how many grants moved.
    async fn delete_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        group_id: Uuid,
        reassign_to: Option<Uuid>,
    ) -> Result<u64, StoreError>;
    /// The product of a stored permission group, or of a built-in role's id.
    async fn permission_group_product(
        &self,
        tenant_id: Uuid,
        group_id: Uuid,
    ) -> Result<Product, StoreError>;
}

#[derive(FromRow)]
pub(crate) struct ProductRow {
    id: Uuid,
    tenant_id: Uuid,
    org_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            id: r.id,
            tenant_id: r.tenant_id,
            org_id: r.org_id,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct EnvironmentRow {
    id: Uuid,
    product_id: Uuid,
    name: String,
    restricted: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<EnvironmentRow> for Environment {
    fn from(r: EnvironmentRow) -> Self {
        Environment {
            id: r.id,
            product_id: r.product_id,
            name: r.name,
            restricted: r.restricted,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(FromRow)]
struct PermissionGroupRow {
    id: Uuid,
    product_id: Uuid,
    name: String,
    capabilities: Json<Vec<Capability>>,
    default_access: String,
    restricted_access: Option<String>,
    preset: bool,
}

#[derive(FromRow)]
struct AccessRow {
    permission_group_id: Uuid,
    environment_id: Uuid,
    access: String,
}

impl TenantResource for Product {
    type Row = ProductRow;
    const FROM: &'static str = "products";
    const COLUMNS: &'static str = product_columns!();
    fn from_row(row: ProductRow) -> Result<Self, StoreError> {
        Ok(row.into())
    }
}

impl TenantResource for Environment {
    type Row = EnvironmentRow;
    const FROM: &'static str = "environments";
    const COLUMNS: &'static str = environment_columns!();
    fn from_row(row: EnvironmentRow) -> Result<Self, StoreError> {
        Ok(row.into())
    }
}

/// The product a stored permission group belongs to.
#[derive(FromRow)]
pub(crate) struct GroupProduct {
    product_id: Uuid,
}

impl TenantResource for GroupProduct {
    type Row = GroupProduct;
    const FROM: &'static str = "permission_groups";
    const COLUMNS: &'static str = "product_id";
    fn from_row(row: GroupProduct) -> Result<Self, StoreError> {
        Ok(row)
    }
}

fn access(raw: &str) -> Result<EnvAccess, StoreError> {
    EnvAccess::parse(raw).ok_or_else(|| StoreError::Other(format!("unknown access {raw}")))
}

/// Maps a uniqueness violation to a conflict naming which name is taken (a key of
/// `conflict_message`); other errors pass.
fn name_taken(what: &'static str) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Conflict { .. } => StoreError::Conflict {
            constraint: what.to_owned(),
        },
        other => other,
    }
}

pub(super) async fn load_groups(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    product_id: Uuid,
) -> Result<Vec<PermissionGroup>, StoreError> {
    load_groups_of(conn, tenant_id, &[product_id]).await
}

/// The stored groups of several products, in two queries whatever their number.
pub(super) async fn load_groups_of(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    product_ids: &[Uuid],
) -> Result<Vec<PermissionGroup>, StoreError> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new(
        "SELECT id, product_id, name, capabilities, default_access, restricted_access, preset \
         FROM permission_groups WHERE tenant_id = ",
    );
    b.push_bind(tenant_id).push(" AND product_id IN (");
    push_list(&mut b, product_ids);
    b.push(") ORDER BY id");
    let rows = b
        .build()
        .fetch_all::<PermissionGroupRow>(conn.conn())
        .await?;
    let mut b = SqlBuilder::new(
        "SELECT a.permission_group_id, a.environment_id, a.access FROM permission_group_access a \
         JOIN permission_groups g ON g.id = a.permission_group_id AND g.tenant_id = a.tenant_id \
         WHERE a.tenant_id = ",
    );
    b.push_bind(tenant_id).push(" AND g.product_id IN (");
    push_list(&mut b, product_ids);
    b.push(")");
    let overrides = b.build().fetch_all::<AccessRow>(conn.conn()).await?;
    groups_from_rows(rows, overrides)
}

pub(super) async fn load_environments_of(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    product_ids: &[Uuid],
) -> Result<Vec<Environment>, StoreError> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new(concat!(
        "SELECT ",
        environment_columns!(),
        " FROM environments WHERE tenant_id = "
    ));
    b.push_bind(tenant_id).push(" AND product_id IN (");
    push_list(&mut b, product_ids);
    b.push(") ORDER BY id");
    Ok(b.build()
        .fetch_all::<EnvironmentRow>(conn.conn())
        .await?
        .into_iter()
        .map(Environment::from)
        .collect())
}

fn groups_from_rows(
    rows: Vec<PermissionGroupRow>,
    overrides: Vec<AccessRow>,
) -> Result<Vec<PermissionGroup>, StoreError> {
    let mut by_group: HashMap<Uuid, BTreeMap<Uuid, EnvAccess>> = HashMap::new();
    for o in overrides {
        by_group
            .entry(o.permission_group_id)
            .or_default()
            .insert(o.environment_id, access(&o.access)?);
    }
    rows.into_iter()
        .map(|r| {
            Ok(PermissionGroup {
                id: r.id,
                product_id: r.product_id,
                name: r.name,
                preset: r.preset,
                role: None,
                read_only: false,
                permissions: PermissionSet {
                    capabilities: r.capabilities.0.into_iter().collect(),
                    access: AccessRule {
                        default: access(&r.default_access)?,
                        restricted: r.restricted_access.as_deref().map(access).transpose()?,
                        overrides: by_group.remove(&r.id).unwrap_or_default(),
                    },
                },
            })
        })
        .collect()
}

async fn write_group_access(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    product_id: Uuid,
    group_id: Uuid,
    overrides: &BTreeMap<Uuid, EnvAccess>,
) -> Result<(), StoreError> {
    sql("DELETE FROM permission_group_access WHERE tenant_id = $1 AND permission_group_id = $2")
        .bind(tenant_id)
        .bind(group_id)
        .execute(tx.conn())
        .await?;
    if overrides.is_empty() {
        return Ok(());
    }
    let envs: Vec<Uuid> = overrides.keys().copied().collect();
    let mut b = SqlBuilder::new("SELECT id FROM environments WHERE tenant_id = ");
    b.push_bind(tenant_id)
        .push(" AND product_id = ")
        .push_bind(product_id)
        .push(" AND id IN (");
    push_list(&mut b, &envs);
    b.push(")");
    let found: BTreeSet<Uuid> = b
        .build()
        .fetch_all::<IdRow>(tx.conn())
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let unknown: Vec<Uuid> = envs
        .iter()
        .copied()
        .filter(|e| !found.contains(e))
        .collect();
    if !unknown.is_empty() {
        return Err(StoreError::UnknownIds(unknown));
    }
    for (env, a) in overrides {
        sql("INSERT INTO permission_group_access (tenant_id, permission_group_id, environment_id, access) \
             VALUES ($1, $2, $3, $4)")
        .bind(tenant_id)
        .bind(group_id)
        .bind(*env)
        .bind(a.as_str())
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

async fn insert_group(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    product_id: Uuid,
    name: &str,
    set: &PermissionSet,
    preset: bool,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let at = now();
    let caps: Vec<Capability> = set.capabilities.iter().copied().collect();
    sql("INSERT INTO permission_groups (id, tenant_id, product_id, name, name_norm, capabilities, default_access, \
         restricted_access, preset, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
    .bind(id)
    .bind(tenant_id)
    .bind(product_id)
    .bind(name)
    .bind(normalize(name))
    .bind(json!(caps))
    .bind(set.access.default.as_str())
    .bind(set.access.restricted.map(EnvAccess::as_str))
    .bind(preset)
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await
    .map_err(name_taken(PERMISSION_GROUP_NAME_TAKEN))?;
    write_group_access(tx, tenant_id, product_id, id, &set.access.overrides).await?;
    Ok(id)
}

async fn insert_environment(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    product_id: Uuid,
    env: &NewEnvironment,
) -> Result<Environment, StoreError> {
    let at = now();
    let created = Environment {
        id: Uuid::now_v7(),
        product_id,
        name: env.name.clone(),
        restricted: env.restricted,
        created_at: at,
        updated_at: at,
    };
    sql("INSERT INTO environments (id, tenant_id, product_id, name, name_norm, restricted, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
    .bind(created.id)
    .bind(tenant_id)
    .bind(product_id)
    .bind(created.name.as_str())
    .bind(normalize(&created.name))
    .bind(created.restricted)
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await
    .map_err(name_taken(ENVIRONMENT_NAME_TAKEN))?;
    Ok(created)
}

#[async_trait]
impl ProductStore for SqlStore {
    async fn create_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
        environments: &[NewEnvironment],
    ) -> Result<ProductDetail, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, org_id).await?;
        let at = now();
        let product = Product {
            id: Uuid::now_v7(),
            tenant_id,
            org_id,
            name: name.to_owned(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        sql("INSERT INTO products (id, tenant_id, org_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(product.id)
            .bind(tenant_id)
            .bind(org_id)
            .bind(name)
            .bind(at)
            .bind(at)
            .execute(tx.conn())
            .await?;
        let mut envs = Vec::new();
        for env in environments {
            envs.push(insert_environment(&mut tx, tenant_id, product.id, env).await?);
        }
        for (preset_name, set) in product_presets() {
            insert_group(&mut tx, tenant_id, product.id, preset_name, &set, true).await?;
        }
        let mut groups = load_groups(&mut tx, tenant_id, product.id).await?;
        groups.extend(role_groups(product.id));
        let detail = ProductDetail {
            product,
            environments: envs,
            permission_groups: groups,
        };
        tx.audit(
            AuditRecord::new("product.create", "product", detail.product.id)
                .org(org_id)
                .after(&detail)
                .product(detail.product.id),
        );
        tx.commit().await?;
        Ok(detail)
    }

    async fn get_product(
        &self,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<ProductDetail, StoreError> {
        let mut h = self.db.read().await?;
        let product = load_in_tenant::<Product>(h.conn(), tenant_id, product_id).await?;
        let environments = load_environments_of(&mut h, tenant_id, &[product_id]).await?;
        let mut permission_groups = load_groups(&mut h, tenant_id, product_id).await?;
        permission_groups.extend(role_groups(product_id));
        Ok(ProductDetail {
            product,
            environments,
            permission_groups,
        })
    }

    async fn list_products(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Product>, StoreError> {
        let mut h = self.db.read().await?;
        load_in_tenant::<Org>(h.conn(), tenant_id, org_id).await?;
        Ok(sql(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products WHERE tenant_id = $1 AND org_id = $2 ORDER BY id"
        ))
        .bind(tenant_id)
        .bind(org_id)
        .fetch_all::<ProductRow>(h.conn())
        .await?
        .into_iter()
        .map(Product::from)
        .collect())
    }

    async fn rename_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        name: &str,
    ) -> Result<Product, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = load_in_tenant::<Product>(tx.conn(), tenant_id, product_id).await?;
        let at = now();
        sql(
            "UPDATE products SET name = $1, updated_at = $2, version = version + 1 \
             WHERE id = $3 AND tenant_id = $4",
        )
        .bind(name)
        .bind(at)
        .bind(product_id)
        .bind(tenant_id)
        .execute(tx.conn())
        .await?;
        tx.audit(
            AuditRecord::new("product.rename", "product", product_id)
                .org(before.org_id)
                .before(json!({ "name": before.name }))
                .after(json!({ "name": name }))
                .product(product_id),
        );
        tx.commit().await?;
        Ok(Product {
            name: name.to_owned(),
            updated_at: at,
            version: before.version + 1,
            ..before
        })
    }

    async fn delete_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = load_in_tenant::<Product>(tx.conn(), tenant_id, product_id).await?;
        sql("DELETE FROM grants WHERE tenant_id = $1 AND product_id = $2")
            .bind(tenant_id)
            .bind(product_id)
            .execute(tx.conn())
            .await?;
        sql("DELETE FROM products WHERE id = $1 AND tenant_id = $2")
            .bind(product_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("product.delete", "product", product_id)
                .org(before.org_id)
                .before(&before)
                .product(product_id),
        );
        tx.invalidate_tenant();
        tx.commit().await?;
        Ok(())
    }

    async fn create_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        env: &NewEnvironment,
    ) -> Result<Environment, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let product = load_in_tenant::<Product>(tx.conn(), tenant_id, product_id).await?;
        let created = insert_environment(&mut tx, tenant_id, product_id, env).await?;
        tx.audit(
            AuditRecord::new("environment.create", "environment", created.id)
                .org(product.org_id)
                .after(&created)
                .product(product_id),
        );
        tx.invalidate_tenant();
        tx.commit().await?;
        Ok(created)
    }

    async fn update_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
        name: Option<&str>,
        restricted: Option<bool>,
    ) -> Result<Environment, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        // Read in the transaction, locked: the fields this change leaves alone are written back
        // as they are now, not as they were before a concurrent change committed.
        let before = load_in_tenant_for_update::<Environment>(&mut tx, tenant_id, env_id).await?;
        let product = load_in_tenant::<Product>(tx.conn(), tenant_id, before.product_id).await?;
        let at = now();
        let after = Environment {
            name: name.map_or_else(|| before.name.clone(), str::to_owned),
            restricted: restricted.unwrap_or(before.restricted),
            updated_at: at,
            ..before.clone()
        };
        sql("UPDATE environments SET name = $1, name_norm = $2, restricted = $3, updated_at = $4 WHERE id = $5 AND tenant_id = $6")
            .bind(after.name.as_str())
            .bind(normalize(&after.name))
            .bind(after.restricted)
            .bind(at)
            .bind(env_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await
            .map_err(name_taken(ENVIRONMENT_NAME_TAKEN))?;
        tx.audit(
            AuditRecord::new("environment.update", "environment", env_id)
                .org(product.org_id)
                .before(&before)
                .after(&after)
                .product(product.id),
        );
        tx.invalidate_tenant();
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = load_in_tenant_for_update::<Environment>(&mut tx, tenant_id, env_id).await?;
        let product = load_in_tenant::<Product>(tx.conn(), tenant_id, before.product_id).await?;
        // Overrides naming the environment go with it (ON DELETE CASCADE).
        let n = sql("DELETE FROM environments WHERE id = $1 AND tenant_id = $2")
            .bind(env_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.audit(
            AuditRecord::new("environment.delete", "environment", env_id)
                .org(product.org_id)
                .before(&before)
                .product(product.id),
        );
        tx.invalidate_tenant();
        tx.commit().await?;
        Ok(())
    }

    async fn environment_product(
        &self,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<Product, StoreError> {
        let mut h = self.db.read().await?;
        let env: Environment = load_in_tenant(h.conn(), tenant_id, env_id).await?;
        load_in_tenant(h.conn(), tenant_id, env.product_id).await
    }

    async fn save_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        existing: Option<Uuid>,
        name: &str,
        set: &PermissionSet,
    ) -> Result<PermissionGroup, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let product = load_in_tenant::<Product>(tx.conn(), tenant_id, product_id).await?;
        let groups = load_groups(&mut tx, tenant_id, product_id).await?;
        let id = match existing {
            None => insert_group(&mut tx, tenant_id, product_id, name, set, false).await?,
            Some(id) => {
                let before = groups
                    .iter()
                    .find(|g| g.id == id)
                    .ok_or(StoreError::NotFound)?;
                let caps: Vec<Capability> = set.capabilities.iter().copied().collect();
                sql("UPDATE permission_groups SET name = $1, name_norm = $2, capabilities = $3, default_access = $4, \
                     restricted_access = $5, updated_at = $6, version = version + 1 WHERE id = $7 AND tenant_id = $8")
                .bind(name)
                .bind(normalize(name))
                .bind(json!(caps))
                .bind(set.access.default.as_str())
                .bind(set.access.restricted.map(EnvAccess::as_str))
                .bind(now())
                .bind(id)
                .bind(tenant_id)
                .execute(tx.conn())
                .await
                .map_err(name_taken(PERMISSION_GROUP_NAME_TAKEN))?;
                write_group_access(&mut tx, tenant_id, product_id, id, &set.access.overrides)
                    .await?;
                tx.audit(
                    AuditRecord::new("permission_group.update", "permission_group", id)
                        .org(product.org_id)
                        .product(product_id)
                        .before(before),
                );
                id
            }
        };
        let saved = load_groups(&mut tx, tenant_id, product_id)
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or(StoreError::NotFound)?;
        if existing.is_none() {
            tx.audit(
                AuditRecord::new("permission_group.create", "permission_group", id)
                    .org(product.org_id)
                    .after(&saved)
                    .product(product_id),
            );
        } else {
            tx.invalidate_tenant();
        }
        tx.commit().await?;
        Ok(saved)
    }

    async fn delete_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        group_id: Uuid,
        reassign_to: Option<Uuid>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let GroupProduct { product_id } = load_in_tenant(tx.conn(), tenant_id, group_id).await?;
        let product = load_in_tenant::<Product>(tx.conn(), tenant_id, product_id).await?;
        #[derive(FromRow)]
        struct Holder {
            subject_id: Uuid,
            org_id: Uuid,
            source: String,
        }
        let target = group_id.to_string();
        let holders = sql("SELECT subject_id, org_id, source FROM grants WHERE tenant_id = $1 AND kind = 'permission_group' AND target = $2")
            .bind(tenant_id)
            .bind(target.as_str())
            .fetch_all::<Holder>(tx.conn())
            .await?;
        if !holders.is_empty() {
            let Some(new_group) = reassign_to else {
                return Err(StoreError::Rule(format!(
                    "permission group in use by {} grant(s): reassign its members (reassign_to) to delete it",
                    holders.len()
                )));
            };
            let groups = load_groups(&mut tx, tenant_id, product_id).await?;
            if new_group == group_id || !groups.iter().any(|g| g.id == new_group) {
                return Err(StoreError::UnknownIds(vec![new_group]));
            }
            for h in &holders {
                let source = Source::parse(&h.source).unwrap_or(Source::Manual);
                insert_grant(
                    &mut tx,
                    tenant_id,
                    h.org_id,
                    h.subject_id,
                    "permission_group",
                    Some(product_id),
                    &new_group.to_string(),
                    None,
                    source,
                )
                .await?;
                tx.invalidate_user(h.subject_id);
            }
            sql("DELETE FROM grants WHERE tenant_id = $1 AND kind = 'permission_group' AND target = $2")
                .bind(tenant_id)
                .bind(target.as_str())
                .execute(tx.conn())
                .await?;
        }
        sql("DELETE FROM permission_groups WHERE id = $1 AND tenant_id = $2")
            .bind(group_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("permission_group.delete", "permission_group", group_id)
                .org(product.org_id)
                .after(json!({ "reassigned_to": reassign_to, "grants_moved": holders.len() }))
                .product(product_id),
        );
        tx.commit().await?;
        Ok(holders.len() as u64)
    }

    async fn permission_group_product(
        &self,
        tenant_id: Uuid,
        group_id: Uuid,
    ) -> Result<Product, StoreError> {
        let mut h = self.db.read().await?;
        if group_id.get_version_num() == 5 {
            // A built-in role's id is derived from its product (never stored, never version 7
            // like a stored group): one query for the tenant's product ids, and the derivation
            // run forwards. Any other id is a stored group or nothing.
            let products = sql("SELECT id FROM products WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all::<IdRow>(h.conn())
                .await?;
            let product_id = products
                .into_iter()
                .map(|p| p.id)
                .find(|&p| {
                    Role::ALL
                        .into_iter()
                        .any(|r| role_group_id(p, r) == group_id)
                })
                .ok_or(StoreError::NotFound)?;
            return load_in_tenant::<Product>(h.conn(), tenant_id, product_id).await;
        }
        let GroupProduct { product_id } = load_in_tenant(h.conn(), tenant_id, group_id).await?;
        load_in_tenant::<Product>(h.conn(), tenant_id, product_id).await
    }
}
