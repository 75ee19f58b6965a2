//! What the resolver (`domain::resolve`) reads: everything that decides some users'
//! permissions, and a product as resolution needs it — each in a fixed number of statements,
//! however many groups, rules and grants there are, and read in one snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::products::{load_environments_of, load_groups_of};
use super::{role_column, source, tenant_tree};
use crate::domain::mapping::{
    DefaultGrants, Grant, GroupSource, IdpGroup, Rule, RuleSource, ScimGroupTree,
};
use crate::domain::permission::{Module, ModuleLevel, Role};
use crate::domain::resolve::{
    self, EnvironmentFact, Membership, PermissionGroupFact, ProductSnapshot, StoredGrant,
    TenantFacts, UserSnapshot,
};
use crate::store::db::{AsConn, Sql, SqlBuilder, push_list, sql};
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

/// One row of a user's own part, as [`load_user_parts`] reads them all in one statement: `part`
/// says which of the user row, a membership, a stored grant, a SCIM group or an OIDC group
/// claim it is, and only that part's columns are set.
#[derive(FromRow)]
struct PartRow {
    part: i32,
    user_id: Uuid,
    org_id: Option<Uuid>,
    active: Option<bool>,
    role: Option<String>,
    source: Option<String>,
    kind: Option<String>,
    product_id: Option<Uuid>,
    target: Option<String>,
    level: Option<String>,
    group_name: Option<String>,
    connection_id: Option<Uuid>,
    /// A SCIM group the user is a direct member of.
    group_id: Option<Uuid>,
    /// Orders a user's memberships (by org) and grants (by id).
    sort_id: Option<Uuid>,
}

impl PartRow {
    /// The order each part had when read on its own: by part, user, then org (memberships),
    /// id (grants) or value (claims). Sorted here rather than by the statement: one sort less
    /// for the database, and the same order on both backends.
    fn order(&self) -> (i32, Uuid, Option<Uuid>, Option<&str>) {
        (
            self.part,
            self.user_id,
            self.sort_id,
            self.group_name.as_deref(),
        )
    }
}

const PART_USER: i32 = 0;
const PART_MEMBERSHIP: i32 = 1;
const PART_GRANT: i32 = 2;
const PART_GROUP: i32 = 3;
const PART_CLAIM: i32 = 4;

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
fn stored_grant(row: &PartRow) -> Option<Grant> {
    let target = row.target.as_deref()?;
    match row.kind.as_deref()? {
        "role" => Some(Grant::ProductRole {
            product_id: row.product_id?,
            role: Role::parse(target)?,
        }),
        "permission_group" => Some(Grant::PermissionGroup {
            product_id: row.product_id?,
            group_id: Uuid::parse_str(target).ok()?,
        }),
        "module_role" => Some(Grant::ModuleRoles {
            org_id: row.org_id?,
            levels: BTreeMap::from([(
                Module::parse(target)?,
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
    let tenant = load_tenant_facts(conn, tenant_id, GroupsOf::Users(user_ids)).await?;
    load_user_parts(conn, tenant_id, user_ids, &tenant).await
}

/// Which of the tenant's SCIM groups [`load_tenant_facts`] reads.
pub(super) enum GroupsOf<'u> {
    /// Every one: for the cache, which completes any user's groups from them.
    Tenant,
    /// Those these users are in, directly or through nesting: for a write's check of a few
    /// users, which should not read a tenant's thousands of groups.
    Users(&'u [Uuid]),
}

/// What the tenant's users' snapshots share.
pub(super) async fn load_tenant_facts(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    groups_of: GroupsOf<'_>,
) -> Result<TenantFacts, StoreError> {
    Ok(TenantFacts {
        orgs: Arc::new(tenant_tree(conn.conn(), tenant_id).await?),
        rules: Arc::new(load_rules(conn, tenant_id).await?),
        defaults: Arc::new(load_defaults(conn, tenant_id).await?),
        groups: Arc::new(load_group_tree(conn, tenant_id, groups_of).await?),
    })
}

/// A row of [`load_group_tree`]: a group (`parent_id` NULL), or a nesting (group `id` is a
/// member of group `parent_id`; the other columns NULL).
#[derive(FromRow)]
struct GroupTreeRow {
    id: Uuid,
    parent_id: Option<Uuid>,
    org_id: Option<Uuid>,
    display_name: Option<String>,
    external_id: Option<String>,
}

/// The tenant's SCIM groups that belong to an org — every one, or those some users reach —
/// with the nestings among them (through groups of no org too).
async fn load_group_tree(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    groups_of: GroupsOf<'_>,
) -> Result<ScimGroupTree, StoreError> {
    // A group's scope is the org whose SCIM token pushed it.
    const GROUP_COLUMNS: &str = "g.id, CAST(NULL AS UUID) AS parent_id, g.org_id, \
        g.display_name, g.external_id";
    const GROUP_FILTER: &str = " AND g.source = 'scim' AND g.org_id IS NOT NULL";
    let statements = match groups_of {
        GroupsOf::Tenant => {
            let mut b = SqlBuilder::new("SELECT ");
            b.push(GROUP_COLUMNS)
                .push(" FROM groups g WHERE g.tenant_id = ")
                .push_bind(tenant_id)
                .push(GROUP_FILTER)
                .push(
                    " UNION ALL SELECT member_id, group_id, NULL, NULL, NULL FROM group_members \
                     WHERE member_kind = 'group' AND tenant_id = ",
                )
                .push_bind(tenant_id);
            vec![b.build()]
        }
        GroupsOf::Users(users) => users
            .chunks(ID_CHUNK)
            .map(|chunk| {
                // `CROSS JOIN` keeps SQLite's join order: see `scim_user_groups`.
                let mut b = SqlBuilder::new(
                    "WITH RECURSIVE reached(id) AS (SELECT group_id FROM group_members \
                     WHERE tenant_id = ",
                );
                b.push_bind(tenant_id)
                    .push(" AND member_kind = 'user' AND member_id IN (");
                push_list(&mut b, chunk);
                b.push(
                    ") UNION SELECT gm.group_id FROM reached CROSS JOIN group_members gm \
                     WHERE gm.member_id = reached.id AND gm.member_kind = 'group' \
                     AND gm.tenant_id = ",
                )
                .push_bind(tenant_id)
                .push(") SELECT ")
                .push(GROUP_COLUMNS)
                .push(
                    " FROM reached CROSS JOIN groups g WHERE g.id = reached.id AND g.tenant_id = ",
                )
                .push_bind(tenant_id)
                .push(GROUP_FILTER)
                .push(
                    " UNION ALL SELECT gm.member_id, gm.group_id, NULL, NULL, NULL \
                     FROM reached CROSS JOIN group_members gm WHERE gm.member_id = reached.id \
                     AND gm.member_kind = 'group' AND gm.tenant_id = ",
                )
                .push_bind(tenant_id);
                b.build()
            })
            .collect(),
    };
    let mut tree = ScimGroupTree::default();
    for statement in statements {
        for row in statement.fetch_all::<GroupTreeRow>(conn.conn()).await? {
            match row.parent_id {
                Some(parent) => tree.add_nesting(row.id, parent),
                None => tree.add_group(
                    row.id,
                    required(row.org_id, "group org")?,
                    required(row.display_name, "group name")?,
                    row.external_id,
                ),
            }
        }
    }
    Ok(tree)
}

/// The users' own parts (active flag, memberships, grants, direct SCIM groups, group
/// claims), completed with `tenant`: its groups' names and nesting turn the direct
/// memberships into every group the user is in.
///
/// Up to [`ID_CHUNK`] users are read in one statement — the five parts as one `UNION ALL` —
/// so a cache miss is one round trip, and one statement sees one snapshot on both backends
/// without a transaction around it. More users take one statement per chunk; each user's
/// parts are still read together. Each part is a lookup in one table by an index (but the
/// claims' join to their connection): PostgreSQL plans the statement at every run, and the
/// join and recursion the groups took before cost it more to plan than to run.
async fn load_user_parts(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    user_ids: &[Uuid],
    tenant: &TenantFacts,
) -> Result<Vec<UserSnapshot>, StoreError> {
    let mut out = Vec::new();
    for chunk in user_ids.chunks(ID_CHUNK) {
        let mut rows = user_parts_statement(tenant_id, chunk)
            .fetch_all::<PartRow>(conn.conn())
            .await?;
        rows.sort_by(|a, b| a.order().cmp(&b.order()));
        let mut rows = rows.into_iter().peekable();
        let first_of_chunk = out.len();
        // The user rows first, in id order.
        while let Some(user) = rows.next_if(|r| r.part == PART_USER) {
            out.push(UserSnapshot {
                user_id: user.user_id,
                active: required(user.active, "active")?,
                scim_org_id: user.org_id,
                orgs: tenant.orgs.clone(),
                rules: tenant.rules.clone(),
                defaults: tenant.defaults.clone(),
                ..UserSnapshot::default()
            });
        }
        let snapshots = &mut out[first_of_chunk..];
        let mut direct_groups: Vec<Vec<Uuid>> = vec![Vec::new(); snapshots.len()];
        for row in rows {
            let Ok(at) = snapshots.binary_search_by_key(&row.user_id, |s| s.user_id) else {
                continue;
            };
            let snapshot = &mut snapshots[at];
            match row.part {
                PART_MEMBERSHIP => snapshot.memberships.push(Membership {
                    org_id: required(row.org_id, "membership org")?,
                    role: role_column(row.role),
                    source: source(&required(row.source, "membership source")?)?,
                }),
                PART_GRANT => {
                    if let Some(grant) = stored_grant(&row) {
                        snapshot.grants.push(StoredGrant {
                            org_id: required(row.org_id, "grant org")?,
                            source: source(&required(row.source, "grant source")?)?,
                            grant,
                        });
                    }
                }
                PART_GROUP => direct_groups[at].push(required(row.group_id, "group id")?),
                PART_CLAIM => snapshot.groups.push(IdpGroup {
                    org_id: required(row.org_id, "claim org")?,
                    source: GroupSource::Oidc(required(row.connection_id, "claim connection")?),
                    name: required(row.group_name, "claim value")?,
                    external_id: None,
                }),
                other => return Err(StoreError::Other(format!("unknown snapshot part {other}"))),
            }
        }
        // The SCIM groups, nested ones included, before the claims.
        for (snapshot, direct) in snapshots.iter_mut().zip(direct_groups) {
            if !direct.is_empty() {
                let mut groups = tenant.groups.groups_of(&direct);
                groups.append(&mut snapshot.groups);
                snapshot.groups = groups;
            }
        }
    }
    Ok(out)
}

/// A column its part always sets (NOT NULL in its table).
fn required<T>(value: Option<T>, what: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Other(format!("user snapshot: {what} missing")))
}

/// The statement behind [`load_user_parts`] for one chunk of users. Each part fills its own
/// columns and leaves the others NULL (`CAST(NULL AS …)` types them the same on both
/// backends).
fn user_parts_statement(tenant_id: Uuid, users: &[Uuid]) -> Sql {
    let mut b = SqlBuilder::new(
        "SELECT 0 AS part, id AS user_id, scim_org_id AS org_id, active, \
         CAST(NULL AS TEXT) AS role, CAST(NULL AS TEXT) AS source, CAST(NULL AS TEXT) AS kind, \
         CAST(NULL AS UUID) AS product_id, CAST(NULL AS TEXT) AS target, \
         CAST(NULL AS TEXT) AS level, CAST(NULL AS TEXT) AS group_name, \
         CAST(NULL AS UUID) AS connection_id, CAST(NULL AS UUID) AS group_id, \
         CAST(NULL AS UUID) AS sort_id \
         FROM users WHERE tenant_id = ",
    );
    b.push_bind(tenant_id).push(" AND id IN (");
    push_list(&mut b, users);
    b.push(
        ") UNION ALL SELECT 1, user_id, org_id, NULL, role, source, NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL, org_id FROM memberships WHERE tenant_id = ",
    );
    b.push_bind(tenant_id).push(" AND user_id IN (");
    push_list(&mut b, users);
    b.push(
        ") UNION ALL SELECT 2, subject_id, org_id, NULL, NULL, source, kind, product_id, target, \
         level, NULL, NULL, NULL, id FROM grants WHERE tenant_id = ",
    );
    b.push_bind(tenant_id)
        .push(" AND subject_kind = 'user' AND subject_id IN (");
    push_list(&mut b, users);
    // Direct memberships only: the tenant's facts hold the groups and their nesting.
    b.push(
        ") UNION ALL SELECT 3, member_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, group_id, NULL FROM group_members WHERE tenant_id = ",
    );
    b.push_bind(tenant_id)
        .push(" AND member_kind = 'user' AND member_id IN (");
    push_list(&mut b, users);
    b.push(
        ") UNION ALL SELECT 4, gc.user_id, c.org_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         gc.value, gc.connection_id, NULL, NULL FROM oidc_group_claims gc \
         JOIN oidc_connections c ON c.id = gc.connection_id WHERE gc.tenant_id = ",
    );
    // The group claims of each user's last login through each OIDC connection, seen by the
    // rules of the connection's org.
    b.push_bind(tenant_id).push(" AND gc.user_id IN (");
    push_list(&mut b, users);
    b.push(")");
    b.build()
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
        load_tenant_facts(&mut read, tenant_id, GroupsOf::Tenant).await
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
        // No transaction: each user's parts come from one statement, which sees one snapshot.
        let mut read = self.db.read().await?;
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
