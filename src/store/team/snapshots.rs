//! What the resolver (`domain::resolve`) reads: everything that decides some users'
//! permissions, and a product as resolution needs it — each in a fixed number of statements,
//! however many groups, rules and grants there are, and read in one snapshot.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::products::{load_environments_of, load_groups_of};
use super::{role_column, source, tenant_tree};
use crate::domain::mapping::{DefaultGrants, Grant, GroupSource, IdpGroup, Rule, RuleSource};
use crate::domain::permission::{Module, ModuleLevel, Role};
use crate::domain::resolve::{
    self, EnvironmentFact, Membership, PermissionGroupFact, ProductSnapshot, StoredGrant,
    TenantFacts, UserSnapshot,
};
use crate::store::db::{AsConn, SqlBuilder, push_list, sql};
use crate::store::{SqlStore, StoreError};

/// More ids than this in one `IN (…)` list are read in several statements.
const ID_CHUNK: usize = 500;

#[async_trait]
pub trait AuthzStore {
    /// Everything that decides each user's permissions in the tenant, read in one snapshot.
    /// Ids of no user of the tenant are left out.
    async fn user_snapshots(
        &self,
        tenant_id: Uuid,
        user_ids: &[Uuid],
    ) -> Result<Vec<UserSnapshot>, StoreError>;
    /// What the tenant's users' snapshots share (the org tree, rules, defaults).
    async fn tenant_facts(&self, tenant_id: Uuid) -> Result<TenantFacts, StoreError>;
    /// The users' snapshots completed with `tenant` instead of reading it again: for a cache
    /// that keeps the tenant's part, which only a whole-tenant invalidation changes.
    async fn user_snapshots_with(
        &self,
        tenant_id: Uuid,
        user_ids: &[Uuid],
        tenant: &TenantFacts,
    ) -> Result<Vec<UserSnapshot>, StoreError>;
    /// Products with their environments and permission groups, in id order; ids of no
    /// product of the tenant are left out.
    async fn product_snapshots(
        &self,
        tenant_id: Uuid,
        product_ids: &[Uuid],
    ) -> Result<Vec<ProductSnapshot>, StoreError>;
}

#[derive(FromRow)]
struct ProductRow {
    id: Uuid,
    org_id: Uuid,
}

#[derive(FromRow)]
struct ActiveRow {
    id: Uuid,
    active: bool,
    scim_org_id: Option<Uuid>,
}

#[derive(FromRow)]
struct MembershipRow {
    org_id: Uuid,
    user_id: Uuid,
    role: Option<String>,
    source: String,
}

#[derive(FromRow)]
struct GrantRow {
    org_id: Uuid,
    subject_id: Uuid,
    kind: String,
    product_id: Option<Uuid>,
    target: String,
    level: Option<String>,
    source: String,
}

#[derive(FromRow)]
struct ClaimRow {
    user_id: Uuid,
    org_id: Uuid,
    connection_id: Uuid,
    value: String,
}

#[derive(FromRow)]
struct GroupRow {
    user_id: Uuid,
    org_id: Uuid,
    display_name: String,
    external_id: Option<String>,
}

#[derive(FromRow)]
pub(super) struct RuleRow {
    pub(super) id: Uuid,
    pub(super) org_id: Uuid,
    pub(super) name: String,
    pub(super) idp_group: String,
    pub(super) source: String,
    pub(super) priority: i32,
    pub(super) enabled: bool,
    pub(super) grants: Json<Vec<Grant>>,
}

impl RuleRow {
    pub(super) fn into_rule(self) -> Result<Rule, StoreError> {
        Ok(Rule {
            id: self.id,
            org_id: self.org_id,
            source: RuleSource::parse(&self.source)
                .map_err(|e| StoreError::Other(format!("mapping rule {}: source: {e}", self.id)))?,
            name: self.name,
            idp_group: self.idp_group,
            priority: self.priority,
            enabled: self.enabled,
            grants: self.grants.0,
        })
    }
}

#[derive(FromRow)]
pub(super) struct DefaultRow {
    pub(super) org_id: Uuid,
    pub(super) default_grants: Option<Json<Vec<Grant>>>,
}

/// The tenant's rules, by org and name.
pub(super) async fn load_rules(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
) -> Result<Vec<Rule>, StoreError> {
    sql(
        "SELECT id, org_id, name, idp_group, source, priority, enabled, grants \
         FROM mapping_rules WHERE tenant_id = $1 ORDER BY org_id, name_norm",
    )
    .bind(tenant_id)
    .fetch_all::<RuleRow>(conn.conn())
    .await?
    .into_iter()
    .map(RuleRow::into_rule)
    .collect()
}

/// The tenant's defaults for unmapped members, by org.
pub(super) async fn load_defaults(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
) -> Result<Vec<DefaultGrants>, StoreError> {
    Ok(
        sql("SELECT org_id, default_grants FROM mapping_sets WHERE tenant_id = $1 ORDER BY org_id")
            .bind(tenant_id)
            .fetch_all::<DefaultRow>(conn.conn())
            .await?
            .into_iter()
            .filter_map(|r| {
                r.default_grants.map(|g| DefaultGrants {
                    org_id: r.org_id,
                    grants: g.0,
                })
            })
            .collect(),
    )
}

/// A stored grant in the resolver's terms; `None` for a row this build cannot read (an
/// unknown role or module: it gives nothing rather than failing every answer).
fn stored_grant(row: &GrantRow) -> Option<Grant> {
    match row.kind.as_str() {
        "role" => Some(Grant::ProductRole {
            product_id: row.product_id?,
            role: Role::parse(&row.target)?,
        }),
        "permission_group" => Some(Grant::PermissionGroup {
            product_id: row.product_id?,
            group_id: Uuid::parse_str(&row.target).ok()?,
        }),
        "module_role" => Some(Grant::ModuleRoles {
            org_id: row.org_id,
            levels: BTreeMap::from([(
                Module::parse(&row.target)?,
                ModuleLevel::parse(row.level.as_deref()?)?,
            )]),
        }),
        _ => None,
    }
}

/// The snapshots of `user_ids`, on `conn` (a snapshot read, or a write transaction that needs
/// them for the Owner rule).
pub(super) async fn load_user_snapshots(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    user_ids: &[Uuid],
) -> Result<Vec<UserSnapshot>, StoreError> {
    let tenant = load_tenant_facts(conn, tenant_id).await?;
    load_user_parts(conn, tenant_id, user_ids, &tenant).await
}

/// What the tenant's users' snapshots share.
pub(super) async fn load_tenant_facts(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
) -> Result<TenantFacts, StoreError> {
    Ok(TenantFacts {
        orgs: tenant_tree(conn.conn(), tenant_id).await?,
        rules: load_rules(conn, tenant_id).await?,
        defaults: load_defaults(conn, tenant_id).await?,
    })
}

/// The users' own parts (active flag, memberships, grants, groups), completed with `tenant`.
async fn load_user_parts(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    user_ids: &[Uuid],
    tenant: &TenantFacts,
) -> Result<Vec<UserSnapshot>, StoreError> {
    let mut out = Vec::new();
    for chunk in user_ids.chunks(ID_CHUNK) {
        let mut b = SqlBuilder::new("SELECT id, active, scim_org_id FROM users WHERE tenant_id = ");
        b.push_bind(tenant_id).push(" AND id IN (");
        push_list(&mut b, chunk);
        b.push(") ORDER BY id");
        let users = b.build().fetch_all::<ActiveRow>(conn.conn()).await?;

        let mut b = SqlBuilder::new(
            "SELECT org_id, user_id, role, source FROM memberships WHERE tenant_id = ",
        );
        b.push_bind(tenant_id).push(" AND user_id IN (");
        push_list(&mut b, chunk);
        b.push(") ORDER BY org_id");
        let memberships = b.build().fetch_all::<MembershipRow>(conn.conn()).await?;

        let mut b = SqlBuilder::new(
            "SELECT org_id, subject_id, kind, product_id, target, level, source FROM grants \
             WHERE tenant_id = ",
        );
        b.push_bind(tenant_id)
            .push(" AND subject_kind = 'user' AND subject_id IN (");
        push_list(&mut b, chunk);
        b.push(") ORDER BY id");
        let grants = b.build().fetch_all::<GrantRow>(conn.conn()).await?;

        // The SCIM groups each user is in, directly or through nested groups, with the org
        // whose SCIM token pushed them (a group's scope is its org).
        let mut b = SqlBuilder::new(
            "WITH RECURSIVE up(user_id, group_id) AS (\
             SELECT member_id, group_id FROM group_members WHERE tenant_id = ",
        );
        b.push_bind(tenant_id)
            .push(" AND member_kind = 'user' AND member_id IN (");
        push_list(&mut b, chunk);
        // `CROSS JOIN` keeps SQLite's join order: see `scim_user_groups`.
        b.push(
            ") UNION SELECT up.user_id, gm.group_id FROM up CROSS JOIN group_members gm \
             WHERE gm.member_id = up.group_id AND gm.member_kind = 'group' AND gm.tenant_id = ",
        );
        b.push_bind(tenant_id).push(
            ") SELECT DISTINCT up.user_id, g.org_id, g.display_name, g.external_id \
             FROM up JOIN groups g ON g.id = up.group_id WHERE g.tenant_id = ",
        );
        b.push_bind(tenant_id).push(
            " AND g.source = 'scim' AND g.org_id IS NOT NULL ORDER BY up.user_id, g.display_name",
        );
        let groups = b.build().fetch_all::<GroupRow>(conn.conn()).await?;

        // The group claims of each user's last login through each OIDC connection, seen by
        // the rules of the connection's org.
        let mut b = SqlBuilder::new(
            "SELECT gc.user_id, c.org_id, gc.connection_id, gc.value FROM oidc_group_claims gc \
             JOIN oidc_connections c ON c.id = gc.connection_id WHERE gc.tenant_id = ",
        );
        b.push_bind(tenant_id).push(" AND gc.user_id IN (");
        push_list(&mut b, chunk);
        b.push(") ORDER BY gc.user_id, gc.value");
        let claims = b.build().fetch_all::<ClaimRow>(conn.conn()).await?;

        for user in users {
            let mut snapshot = UserSnapshot {
                user_id: user.id,
                active: user.active,
                scim_org_id: user.scim_org_id,
                orgs: tenant.orgs.clone(),
                rules: tenant.rules.clone(),
                defaults: tenant.defaults.clone(),
                ..UserSnapshot::default()
            };
            for m in memberships.iter().filter(|m| m.user_id == user.id) {
                snapshot.memberships.push(Membership {
                    org_id: m.org_id,
                    role: role_column(m.role.clone()),
                    source: source(&m.source)?,
                });
            }
            for g in grants.iter().filter(|g| g.subject_id == user.id) {
                if let Some(grant) = stored_grant(g) {
                    snapshot.grants.push(StoredGrant {
                        org_id: g.org_id,
                        source: source(&g.source)?,
                        grant,
                    });
                }
            }
            snapshot.groups = groups
                .iter()
                .filter(|g| g.user_id == user.id)
                .map(|g| IdpGroup {
                    org_id: g.org_id,
                    source: GroupSource::Scim,
                    name: g.display_name.clone(),
                    external_id: g.external_id.clone(),
                })
                .chain(
                    claims
                        .iter()
                        .filter(|c| c.user_id == user.id)
                        .map(|c| IdpGroup {
                            org_id: c.org_id,
                            source: GroupSource::Oidc(c.connection_id),
                            name: c.value.clone(),
                            external_id: None,
                        }),
                )
                .collect();
            out.push(snapshot);
        }
    }
    Ok(out)
}

/// The users who may own some org: everyone with an Owner membership, and everyone in a group
/// (nested included) or with an OIDC group claim of an org whose stored rules map an Owner, or
/// of one of `also_orgs` (whose rules are about to).
pub(super) async fn owner_candidates(
    tx: &mut impl AsConn,
    tenant_id: Uuid,
    also_orgs: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    let mut owner_rule_orgs: Vec<Uuid> = load_rules(tx, tenant_id)
        .await?
        .into_iter()
        .filter(|r| r.enabled && r.grants.iter().any(Grant::is_owner))
        .map(|r| r.org_id)
        .chain(also_orgs.iter().copied())
        .collect();
    owner_rule_orgs.sort();
    owner_rule_orgs.dedup();
    #[derive(FromRow)]
    struct UserIdRow {
        user_id: Uuid,
    }
    let mut ids: Vec<Uuid> =
        sql("SELECT DISTINCT user_id FROM memberships WHERE tenant_id = $1 AND role = 'owner'")
            .bind(tenant_id)
            .fetch_all::<UserIdRow>(tx.conn())
            .await?
            .into_iter()
            .map(|r| r.user_id)
            .collect();
    if !owner_rule_orgs.is_empty() {
        let mut b = SqlBuilder::new(
            "WITH RECURSIVE down(member_id, member_kind) AS (\
             SELECT gm.member_id, gm.member_kind FROM group_members gm \
             JOIN groups g ON g.id = gm.group_id AND g.tenant_id = gm.tenant_id \
             WHERE gm.tenant_id = ",
        );
        b.push_bind(tenant_id).push(" AND g.org_id IN (");
        push_list(&mut b, &owner_rule_orgs);
        b.push(
            ") UNION SELECT gm.member_id, gm.member_kind FROM down CROSS JOIN group_members gm \
             WHERE gm.group_id = down.member_id AND down.member_kind = 'group' AND gm.tenant_id = ",
        );
        b.push_bind(tenant_id)
            .push(") SELECT DISTINCT member_id AS user_id FROM down WHERE member_kind = 'user'");
        ids.extend(
            b.build()
                .fetch_all::<UserIdRow>(tx.conn())
                .await?
                .into_iter()
                .map(|r| r.user_id),
        );
        // And whoever holds a group claim of one of those orgs' OIDC connections.
        let mut b = SqlBuilder::new(
            "SELECT DISTINCT gc.user_id FROM oidc_group_claims gc \
             JOIN oidc_connections c ON c.id = gc.connection_id AND c.tenant_id = gc.tenant_id \
             WHERE gc.tenant_id = ",
        );
        b.push_bind(tenant_id).push(" AND c.org_id IN (");
        push_list(&mut b, &owner_rule_orgs);
        b.push(")");
        ids.extend(
            b.build()
                .fetch_all::<UserIdRow>(tx.conn())
                .await?
                .into_iter()
                .map(|r| r.user_id),
        );
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Orgs of `orgs` that no active user of `users` owns.
pub(super) fn unowned(users: &[UserSnapshot], orgs: &[Uuid]) -> Vec<Uuid> {
    orgs.iter()
        .copied()
        .filter(|o| !users.iter().any(|u| resolve::is_owner(u, *o)))
        .collect()
}

/// Products with their environments and permission groups, in id order.
pub(super) async fn load_product_snapshots(
    read: &mut impl AsConn,
    tenant_id: Uuid,
    product_ids: &[Uuid],
) -> Result<Vec<ProductSnapshot>, StoreError> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new("SELECT id, org_id FROM products WHERE tenant_id = ");
    b.push_bind(tenant_id).push(" AND id IN (");
    push_list(&mut b, product_ids);
    b.push(") ORDER BY id");
    let products = b.build().fetch_all::<ProductRow>(read.conn()).await?;
    let ids: Vec<Uuid> = products.iter().map(|p| p.id).collect();
    let environments = load_environments_of(read, tenant_id, &ids).await?;
    let groups = load_groups_of(read, tenant_id, &ids).await?;
    Ok(products
        .into_iter()
        .map(|p| ProductSnapshot {
            id: p.id,
            org_id: p.org_id,
            environments: environments
                .iter()
                .filter(|e| e.product_id == p.id)
                .map(|e| EnvironmentFact {
                    id: e.id,
                    name: e.name.clone(),
                    restricted: e.restricted,
                })
                .collect(),
            permission_groups: groups
                .iter()
                .filter(|g| g.product_id == p.id)
                .map(|g| PermissionGroupFact {
                    id: g.id,
                    name: g.name.clone(),
                    permissions: g.permissions.clone(),
                })
                .collect(),
        })
        .collect())
}

#[async_trait]
impl AuthzStore for SqlStore {
    async fn user_snapshots(
        &self,
        tenant_id: Uuid,
        user_ids: &[Uuid],
    ) -> Result<Vec<UserSnapshot>, StoreError> {
        let mut read = self.db.read_snapshot().await?;
        load_user_snapshots(&mut read, tenant_id, user_ids).await
    }

    async fn tenant_facts(&self, tenant_id: Uuid) -> Result<TenantFacts, StoreError> {
        let mut read = self.db.read_snapshot().await?;
        load_tenant_facts(&mut read, tenant_id).await
    }

    async fn user_snapshots_with(
        &self,
        tenant_id: Uuid,
        user_ids: &[Uuid],
        tenant: &TenantFacts,
    ) -> Result<Vec<UserSnapshot>, StoreError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = self.db.read_snapshot().await?;
        load_user_parts(&mut read, tenant_id, user_ids, tenant).await
    }

    async fn product_snapshots(
        &self,
        tenant_id: Uuid,
        product_ids: &[Uuid],
    ) -> Result<Vec<ProductSnapshot>, StoreError> {
        let mut read = self.db.read_snapshot().await?;
        load_product_snapshots(&mut read, tenant_id, product_ids).await
    }
}
