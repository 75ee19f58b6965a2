//! The team model's storage: org tree, memberships, products, environments, permission
//! groups, grants, and the facts the evaluator needs. Inherent methods of `SqlStore`; the
//! `Store` impl forwards to them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::db::{AsConn, Conn, Ctx, SqlBuilder, WriteTx, sql};
use super::queries::{OrgRow, SqlStore, UserRow, org_in_tenant, push_list};
use super::{
    ENVIRONMENT_NAME_TAKEN, MemberQuery, NewEnvironment, OrgMember, OwnerRule,
    PERMISSION_GROUP_NAME_TAKEN, ProductAccess, StoreError,
};
use crate::authz::{ProductFacts, UserFacts};
use crate::domain::audit::AuditRecord;
use crate::domain::org::{self, Org, OrgRole};
use crate::domain::permission::{
    AccessRule, Capability, EnvAccess, Module, ModuleLevel, PermissionSet, Role, effective_modules,
    module_permissions, product_presets,
};
use crate::domain::product::{
    Environment, PermissionGroup, Product, ProductDetail, role_group_id, role_groups,
};
use crate::domain::user::User;
use crate::domain::{Source, normalize, now};

#[derive(FromRow)]
struct TreeRow {
    id: Uuid,
    parent_id: Option<Uuid>,
}

#[derive(FromRow)]
struct MembershipRoleRow {
    org_id: Uuid,
    user_id: Uuid,
    role: Option<String>,
}

#[derive(FromRow)]
struct ProductRow {
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
struct EnvironmentRow {
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

#[derive(FromRow)]
struct GrantRow {
    org_id: Uuid,
    kind: String,
    product_id: Option<Uuid>,
    target: String,
    level: Option<String>,
}

#[derive(FromRow)]
struct CountRow {
    n: i64,
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

/// LIKE pattern for a substring search; `%`, `_` and `\` in the needle are literal.
fn contains_pattern(needle: &str) -> String {
    let mut p = String::from("%");
    for c in normalize(needle).chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

pub(super) async fn tenant_tree(
    conn: Conn<'_>,
    tenant_id: Uuid,
) -> Result<Vec<(Uuid, Option<Uuid>)>, StoreError> {
    Ok(sql("SELECT id, parent_id FROM orgs WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all::<TreeRow>(conn)
        .await?
        .into_iter()
        .map(|r| (r.id, r.parent_id))
        .collect())
}

fn chain(tree: &[(Uuid, Option<Uuid>)], org_id: Uuid) -> Vec<Uuid> {
    org::chain_to_root(org_id, |o| {
        tree.iter().find(|(id, _)| *id == o).map(|(_, p)| *p)
    })
}

fn role_column(role: Option<String>) -> Option<OrgRole> {
    role.as_deref().and_then(OrgRole::parse)
}

async fn user_in_tenant(
    conn: Conn<'_>,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<User, StoreError> {
    sql(concat!(
        "SELECT ",
        crate::user_columns!(),
        " FROM users u WHERE u.id = $1 AND u.tenant_id = $2"
    ))
    .bind(user_id)
    .bind(tenant_id)
    .fetch_one::<UserRow>(conn)
    .await?
    .try_into()
}

async fn product_in_tenant(
    conn: Conn<'_>,
    tenant_id: Uuid,
    product_id: Uuid,
) -> Result<Product, StoreError> {
    sql(
        "SELECT id, tenant_id, org_id, name, created_at, updated_at, version FROM products \
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(product_id)
    .bind(tenant_id)
    .fetch_one::<ProductRow>(conn)
    .await
    .map(Product::from)
}

/// The user's memberships along `chain` (org → role).
async fn memberships_in(
    conn: Conn<'_>,
    tenant_id: Uuid,
    user_ids: &[Uuid],
    chain: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, Option<OrgRole>)>, StoreError> {
    if user_ids.is_empty() || chain.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new("SELECT org_id, user_id, role FROM memberships WHERE tenant_id = ");
    b.push_bind(tenant_id).push(" AND user_id IN (");
    push_list(&mut b, user_ids);
    b.push(") AND org_id IN (");
    push_list(&mut b, chain);
    b.push(")");
    Ok(b.build()
        .fetch_all::<MembershipRoleRow>(conn)
        .await?
        .into_iter()
        .map(|r| (r.org_id, r.user_id, role_column(r.role)))
        .collect())
}

/// Applies the Owner rule after a membership change in `org_id`: refused (`Enforce`) or let
/// through with an audit warning and a metric (`Warn`, for IdP-driven offboarding).
pub(super) async fn check_owner_rule(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    org_id: Uuid,
    rule: OwnerRule,
) -> Result<(), StoreError> {
    let tree = tenant_tree(tx.conn(), tenant_id).await?;
    let rows = sql(
        "SELECT m.org_id, m.user_id, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
         AND u.tenant_id = m.tenant_id WHERE m.tenant_id = $1 AND u.active = $2 AND m.user_id IN \
         (SELECT user_id FROM memberships WHERE tenant_id = $1 AND role = 'owner')",
    )
    .bind(tenant_id)
    .bind(true)
    .fetch_all::<MembershipRoleRow>(tx.conn())
    .await?;
    let memberships: Vec<_> = rows
        .into_iter()
        .map(|r| (r.org_id, r.user_id, role_column(r.role)))
        .collect();
    let orphaned = org::orgs_without_owner(&tree, &memberships, &[org_id]);
    if orphaned.is_empty() {
        return Ok(());
    }
    match rule {
        OwnerRule::Enforce => Err(StoreError::Rule(
            "owner_rule: every organization keeps at least one active Owner".into(),
        )),
        OwnerRule::Warn => {
            metrics::counter!("rolegate_owner_rule_warnings_total").increment(1);
            let mut record = AuditRecord::new("org.owner_rule_broken", "org", org_id).org(org_id);
            record.warning = Some(format!(
                "organizations left without an active Owner: {orphaned:?}"
            ));
            tx.audit(record);
            Ok(())
        }
    }
}

fn grant_key(kind: &str, org_id: Uuid, product_id: Option<Uuid>, target: &str) -> String {
    format!(
        "{kind}:{org_id}:{}:{target}",
        product_id.map(|p| p.to_string()).unwrap_or_default()
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_grant(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    org_id: Uuid,
    user_id: Uuid,
    kind: &'static str,
    product_id: Option<Uuid>,
    target: &str,
    level: Option<&str>,
    source: Source,
) -> Result<(), StoreError> {
    sql("INSERT INTO grants (id, tenant_id, org_id, subject_kind, subject_id, kind, product_id, target, \
         level, source, grant_key, created_at) VALUES ($1, $2, $3, 'user', $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, subject_kind, subject_id, grant_key, source) DO UPDATE SET level = excluded.level")
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(org_id)
    .bind(user_id)
    .bind(kind)
    .bind(product_id)
    .bind(target)
    .bind(level)
    .bind(source.as_str())
    .bind(grant_key(kind, org_id, product_id, target))
    .bind(now())
    .execute(tx.conn())
    .await?;
    Ok(())
}

async fn load_groups(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    product_id: Uuid,
) -> Result<Vec<PermissionGroup>, StoreError> {
    load_groups_of(conn, tenant_id, &[product_id]).await
}

/// The stored groups of several products, in two queries whatever their number.
async fn load_groups_of(
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

async fn load_environments_of(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    product_ids: &[Uuid],
) -> Result<Vec<Environment>, StoreError> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new(
        "SELECT id, product_id, name, restricted, created_at, updated_at FROM environments \
         WHERE tenant_id = ",
    );
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
        .fetch_all::<super::queries::IdRow>(tx.conn())
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

/// An environment of the tenant, read in a write transaction and locked until it ends
/// (PostgreSQL `FOR UPDATE`; SQLite writers already hold the database one at a time).
async fn environment_for_update(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    env_id: Uuid,
) -> Result<Environment, StoreError> {
    let conn = tx.conn();
    let statement = match conn {
        Conn::Postgres(_) => sql(
            "SELECT id, product_id, name, restricted, created_at, updated_at FROM environments \
             WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        ),
        Conn::Sqlite(_) => sql(
            "SELECT id, product_id, name, restricted, created_at, updated_at FROM environments \
             WHERE id = $1 AND tenant_id = $2",
        ),
    };
    statement
        .bind(env_id)
        .bind(tenant_id)
        .fetch_one::<EnvironmentRow>(conn)
        .await
        .map(Environment::from)
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

impl SqlStore {
    pub(super) async fn create_sub_org_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        parent_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        org_in_tenant(tx.conn(), tenant_id, parent_id).await?;
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

    pub(super) async fn rename_org_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = org_in_tenant(tx.conn(), tenant_id, org_id).await?;
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

    pub(super) async fn list_orgs_impl(&self, tenant_id: Uuid) -> Result<Vec<Org>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql("SELECT id, tenant_id, parent_id, name, created_at, updated_at, version FROM orgs WHERE tenant_id = $1 ORDER BY id")
            .bind(tenant_id)
            .fetch_all::<OrgRow>(h.conn())
            .await?
            .into_iter()
            .map(Org::from)
            .collect())
    }

    pub(super) async fn delete_org_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let org = org_in_tenant(tx.conn(), tenant_id, org_id).await?;
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

    pub(super) async fn list_members_impl(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
        q: &MemberQuery,
    ) -> Result<Vec<OrgMember>, StoreError> {
        let mut h = self.db.read().await?;
        let tree = tenant_tree(h.conn(), tenant_id).await?;
        if !tree.iter().any(|(id, _)| *id == org_id) {
            return Err(StoreError::NotFound);
        }
        let chain = chain(&tree, org_id);
        let mut b = SqlBuilder::new(concat!(
            "SELECT DISTINCT ",
            crate::user_columns!(),
            " FROM users u JOIN memberships m ON m.user_id = u.id AND m.tenant_id = u.tenant_id \
             WHERE m.tenant_id = "
        ));
        b.push_bind(tenant_id).push(" AND m.org_id IN (");
        push_list(&mut b, &chain);
        b.push(")");
        if let Some(search) = q.search.as_deref().filter(|s| !s.trim().is_empty()) {
            let pattern = contains_pattern(search);
            b.push(" AND (u.email_norm LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
            b.push(" OR u.user_name_norm LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(user_id) = q.user_id {
            b.push(" AND u.id = ").push_bind(user_id);
        }
        if let Some(after) = q.after {
            b.push(" AND u.id > ").push_bind(after);
        }
        b.push(" ORDER BY u.id LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, 1000)));
        let users: Vec<User> = b
            .build()
            .fetch_all::<UserRow>(h.conn())
            .await?
            .into_iter()
            .map(User::try_from)
            .collect::<Result<_, _>>()?;
        let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
        let rows = memberships_in(h.conn(), tenant_id, &ids, &chain).await?;
        users
            .into_iter()
            .map(|user| {
                let role_in = |o: Uuid| {
                    rows.iter()
                        .find(|(mo, mu, _)| *mo == o && *mu == user.id)
                        .map(|(_, _, r)| *r)
                };
                let effective = org::effective_role(&chain, role_in)
                    .ok_or_else(|| StoreError::Other("member without membership".into()))?;
                let membership_role = role_in(org_id).flatten();
                Ok(OrgMember {
                    user,
                    effective,
                    membership_role,
                })
            })
            .collect()
    }

    pub(super) async fn set_membership_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        role: Option<OrgRole>,
        rule: OwnerRule,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        org_in_tenant(tx.conn(), tenant_id, org_id).await?;
        user_in_tenant(tx.conn(), tenant_id, user_id).await?;
        let before = memberships_in(tx.conn(), tenant_id, &[user_id], &[org_id]).await?;
        let at = now();
        sql("INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at")
        .bind(tenant_id)
        .bind(org_id)
        .bind(user_id)
        .bind(role.map(OrgRole::as_str))
        .bind(Source::Manual.as_str())
        .bind(at)
        .bind(at)
        .execute(tx.conn())
        .await?;
        tx.audit(
            AuditRecord::new("membership.set_role", "user", user_id)
                .org(org_id)
                .before(json!({ "member": !before.is_empty(), "role": before.first().and_then(|b| b.2) }))
                .after(json!({ "member": true, "role": role })),
        );
        tx.invalidate_user(user_id);
        check_owner_rule(&mut tx, tenant_id, org_id, rule).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn remove_membership_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        rule: OwnerRule,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = memberships_in(tx.conn(), tenant_id, &[user_id], &[org_id]).await?;
        if before.is_empty() {
            return Err(StoreError::NotFound);
        }
        sql("DELETE FROM memberships WHERE tenant_id = $1 AND org_id = $2 AND user_id = $3")
            .bind(tenant_id)
            .bind(org_id)
            .bind(user_id)
            .execute(tx.conn())
            .await?;
        // Access granted in this org goes with the membership.
        let removed = sql("DELETE FROM grants WHERE tenant_id = $1 AND subject_kind = 'user' AND subject_id = $2 AND org_id = $3")
            .bind(tenant_id)
            .bind(user_id)
            .bind(org_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("membership.remove", "user", user_id)
                .org(org_id)
                .before(json!({ "role": before[0].2, "grants": removed })),
        );
        tx.invalidate_user(user_id);
        check_owner_rule(&mut tx, tenant_id, org_id, rule).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn create_product_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
        environments: &[NewEnvironment],
    ) -> Result<ProductDetail, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        org_in_tenant(tx.conn(), tenant_id, org_id).await?;
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

    pub(super) async fn get_product_impl(
        &self,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<ProductDetail, StoreError> {
        let mut h = self.db.read().await?;
        let product = product_in_tenant(h.conn(), tenant_id, product_id).await?;
        let environments = sql(
            "SELECT id, product_id, name, restricted, created_at, updated_at FROM environments \
             WHERE tenant_id = $1 AND product_id = $2 ORDER BY id",
        )
        .bind(tenant_id)
        .bind(product_id)
        .fetch_all::<EnvironmentRow>(h.conn())
        .await?
        .into_iter()
        .map(Environment::from)
        .collect();
        let mut permission_groups = load_groups(&mut h, tenant_id, product_id).await?;
        permission_groups.extend(role_groups(product_id));
        Ok(ProductDetail {
            product,
            environments,
            permission_groups,
        })
    }

    pub(super) async fn list_products_impl(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Product>, StoreError> {
        let mut h = self.db.read().await?;
        org_in_tenant(h.conn(), tenant_id, org_id).await?;
        Ok(sql(
            "SELECT id, tenant_id, org_id, name, created_at, updated_at, version FROM products \
                WHERE tenant_id = $1 AND org_id = $2 ORDER BY id",
        )
        .bind(tenant_id)
        .bind(org_id)
        .fetch_all::<ProductRow>(h.conn())
        .await?
        .into_iter()
        .map(Product::from)
        .collect())
    }

    pub(super) async fn rename_product_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        name: &str,
    ) -> Result<Product, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = product_in_tenant(tx.conn(), tenant_id, product_id).await?;
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

    pub(super) async fn delete_product_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = product_in_tenant(tx.conn(), tenant_id, product_id).await?;
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

    pub(super) async fn create_environment_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        env: &NewEnvironment,
    ) -> Result<Environment, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let product = product_in_tenant(tx.conn(), tenant_id, product_id).await?;
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

    pub(super) async fn environment(
        &self,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<(Environment, Product), StoreError> {
        let mut h = self.db.read().await?;
        let env: Environment = sql(
            "SELECT id, product_id, name, restricted, created_at, updated_at FROM environments \
                                    WHERE id = $1 AND tenant_id = $2",
        )
        .bind(env_id)
        .bind(tenant_id)
        .fetch_one::<EnvironmentRow>(h.conn())
        .await?
        .into();
        let product = product_in_tenant(h.conn(), tenant_id, env.product_id).await?;
        Ok((env, product))
    }

    pub(super) async fn update_environment_impl(
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
        let before = environment_for_update(&mut tx, tenant_id, env_id).await?;
        let product = product_in_tenant(tx.conn(), tenant_id, before.product_id).await?;
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

    pub(super) async fn delete_environment_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = environment_for_update(&mut tx, tenant_id, env_id).await?;
        let product = product_in_tenant(tx.conn(), tenant_id, before.product_id).await?;
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

    pub(super) async fn save_permission_group_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        existing: Option<Uuid>,
        name: &str,
        set: &PermissionSet,
    ) -> Result<PermissionGroup, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let product = product_in_tenant(tx.conn(), tenant_id, product_id).await?;
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

    pub(super) async fn delete_permission_group_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        group_id: Uuid,
        reassign_to: Option<Uuid>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        #[derive(FromRow)]
        struct Owner {
            product_id: Uuid,
        }
        let Owner { product_id } =
            sql("SELECT product_id FROM permission_groups WHERE id = $1 AND tenant_id = $2")
                .bind(group_id)
                .bind(tenant_id)
                .fetch_one::<Owner>(tx.conn())
                .await?;
        let product = product_in_tenant(tx.conn(), tenant_id, product_id).await?;
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

    pub(super) async fn set_product_access_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        access: &ProductAccess,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let product = product_in_tenant(tx.conn(), tenant_id, product_id).await?;
        self.require_member(&mut tx, tenant_id, product.org_id, user_id)
            .await?;
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

    pub(super) async fn set_module_roles_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        levels: &BTreeMap<Module, ModuleLevel>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        org_in_tenant(tx.conn(), tenant_id, org_id).await?;
        self.require_member(&mut tx, tenant_id, org_id, user_id)
            .await?;
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

    pub(super) async fn permission_group_product_impl(
        &self,
        tenant_id: Uuid,
        group_id: Uuid,
    ) -> Result<Product, StoreError> {
        #[derive(FromRow)]
        struct Owner {
            product_id: Uuid,
        }
        let mut h = self.db.read().await?;
        if group_id.get_version_num() == 5 {
            // A built-in role's id is derived from its product (never stored, never version 7
            // like a stored group): one query for the tenant's product ids, and the derivation
            // run forwards. Any other id is a stored group or nothing.
            let products = sql("SELECT id FROM products WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all::<super::queries::IdRow>(h.conn())
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
            return product_in_tenant(h.conn(), tenant_id, product_id).await;
        }
        let Owner { product_id } =
            sql("SELECT product_id FROM permission_groups WHERE id = $1 AND tenant_id = $2")
                .bind(group_id)
                .bind(tenant_id)
                .fetch_one::<Owner>(h.conn())
                .await?;
        product_in_tenant(h.conn(), tenant_id, product_id).await
    }

    /// The user must be a member (direct or inherited) of the org.
    async fn require_member(
        &self,
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

    pub(super) async fn member_facts_impl(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        product_id: Uuid,
    ) -> Result<(UserFacts, ProductFacts), StoreError> {
        let product = {
            let mut h = self.db.read().await?;
            product_in_tenant(h.conn(), tenant_id, product_id).await?
        };
        let org_id = product.org_id;
        self.facts_for(tenant_id, user_id, org_id, &[product])
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }

    pub(super) async fn member_facts_in_org_impl(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<(UserFacts, ProductFacts)>, StoreError> {
        let products = self.list_products_impl(tenant_id, org_id).await?;
        self.facts_for(tenant_id, user_id, org_id, &products).await
    }

    /// What the evaluator needs for one member on several products of one org, loaded with a
    /// fixed number of queries however many products there are. `NotFound` for a non-member.
    async fn facts_for(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        org_id: Uuid,
        products: &[Product],
    ) -> Result<Vec<(UserFacts, ProductFacts)>, StoreError> {
        let mut h = self.db.read().await?;
        let user = user_in_tenant(h.conn(), tenant_id, user_id).await?;
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
                            if let Some(group) = groups.iter().find(|pg| {
                                pg.product_id == product.id && pg.id.to_string() == g.target
                            }) {
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
}
