//! An org's group mapping: its rules and its default for unmapped members, replaced as one
//! document (issue 11). Mapped permissions are computed from these by the resolver, never
//! copied into `grants`.

use async_trait::async_trait;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use super::snapshots::{
    DefaultRow, RuleRow, load_product_snapshots, load_user_snapshots, owner_candidates, unowned,
};
use super::tenant_tree;
use crate::domain::audit::AuditRecord;
use crate::domain::mapping::{Grant, Rule};
use crate::domain::mapping_document::{self, Catalog, Mappings, RuleSpec};
use crate::domain::org::{self, Org};
use crate::domain::preview::{self, Preview};
use crate::domain::{normalize, now};
use crate::store::db::{
    AsConn, IdRow, OrgLock, SqlBuilder, load_in_tenant, lock_org, push_list, sql,
};
use crate::store::{SqlStore, StoreError};

/// An org's mappings and the version an `If-Match` names (0: never written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMappings {
    pub org_id: Uuid,
    pub version: i64,
    pub mappings: Mappings,
}

#[async_trait]
pub trait MappingStore {
    /// The org's rules (by name) and default.
    async fn get_mappings(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<StoredMappings, StoreError>;
    /// What a mapping document of the org may name: the org's subtree, its products and
    /// their permission groups.
    async fn mapping_catalog(&self, tenant_id: Uuid, org_id: Uuid) -> Result<Catalog, StoreError>;
    /// Replaces the org's rules and default, in one transaction, audited with before and
    /// after. With `if_version`, only if the stored version is still that one
    /// (`Precondition` otherwise). Refused (`Rule`) if it would leave an org of the subtree
    /// without an active Owner that had one — a mapped Owner counts.
    async fn replace_mappings(
        &self,
        ctx: &crate::store::Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        mappings: &Mappings,
        if_version: Option<i64>,
    ) -> Result<StoredMappings, StoreError>;
    /// What replacing the org's mappings with `mappings` would change — one page of the
    /// affected users (ids after `after`, at most `limit`) — applying nothing.
    async fn preview_mappings(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
        mappings: &Mappings,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Preview, StoreError>;
}

/// Everyone whose permissions the org's mappings could change: members of the org, of the
/// orgs above it (who are members of it by inheritance) and of the orgs below it; everyone in
/// a group of the subtree; and everyone who may own an org (for the Owner counts).
async fn affected_candidates(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    org_id: Uuid,
    tree: &[(Uuid, Option<Uuid>)],
) -> Result<Vec<Uuid>, StoreError> {
    #[derive(FromRow)]
    struct UserIdRow {
        user_id: Uuid,
    }
    let subtree = org::subtree(tree, &[org_id]);
    let mut orgs = org::chain_to_root(org_id, |o| {
        tree.iter().find(|(id, _)| *id == o).map(|(_, p)| *p)
    });
    orgs.extend(subtree.iter().copied());
    let mut b = SqlBuilder::new("SELECT DISTINCT user_id FROM memberships WHERE tenant_id = ");
    b.push_bind(tenant_id).push(" AND org_id IN (");
    push_list(&mut b, &orgs);
    b.push(")");
    let mut ids: Vec<Uuid> = b
        .build()
        .fetch_all::<UserIdRow>(conn.conn())
        .await?
        .into_iter()
        .map(|r| r.user_id)
        .collect();
    ids.extend(owner_candidates(conn, tenant_id, &subtree).await?);
    ids.sort();
    ids.dedup();
    Ok(ids)
}

#[derive(FromRow)]
struct VersionRow {
    version: i64,
}

#[derive(FromRow)]
struct NamedRow {
    id: Uuid,
    owner_id: Uuid,
    name: String,
}

async fn read_mappings(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    org_id: Uuid,
) -> Result<StoredMappings, StoreError> {
    let mut rules = sql(
        "SELECT id, org_id, name, idp_group, source, priority, enabled, grants \
         FROM mapping_rules WHERE tenant_id = $1 AND org_id = $2",
    )
    .bind(tenant_id)
    .bind(org_id)
    .fetch_all::<RuleRow>(conn.conn())
    .await?
    .into_iter()
    .map(|row| row.into_rule().map(spec_of))
    .collect::<Result<Vec<_>, _>>()?;
    // By name, in this process: a database collation may order names otherwise than the
    // export does, and one backend otherwise than the other.
    rules.sort_by(mapping_document::by_name);
    let set =
        sql("SELECT org_id, default_grants FROM mapping_sets WHERE tenant_id = $1 AND org_id = $2")
            .bind(tenant_id)
            .bind(org_id)
            .fetch_optional::<DefaultRow>(conn.conn())
            .await?;
    let version = sql("SELECT version FROM mapping_sets WHERE tenant_id = $1 AND org_id = $2")
        .bind(tenant_id)
        .bind(org_id)
        .fetch_optional::<VersionRow>(conn.conn())
        .await?
        .map_or(0, |r| r.version);
    Ok(StoredMappings {
        org_id,
        version,
        mappings: Mappings {
            default: set.and_then(|s| s.default_grants).map(|g| g.0),
            rules,
        },
    })
}

fn spec_of(rule: Rule) -> RuleSpec {
    RuleSpec {
        name: rule.name,
        idp_group: rule.idp_group,
        source: rule.source,
        priority: rule.priority,
        enabled: rule.enabled,
        grants: rule.grants,
    }
}

async fn read_catalog(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    org_id: Uuid,
) -> Result<Catalog, StoreError> {
    load_in_tenant::<Org>(conn.conn(), tenant_id, org_id).await?;
    let tree = tenant_tree(conn.conn(), tenant_id).await?;
    let subtree = org::subtree(&tree, &[org_id]);
    let mut b = SqlBuilder::new("SELECT id, id AS owner_id, name FROM orgs WHERE tenant_id = ");
    b.push_bind(tenant_id).push(" AND id IN (");
    push_list(&mut b, &subtree);
    b.push(") ORDER BY id");
    let orgs = b.build().fetch_all::<NamedRow>(conn.conn()).await?;
    let mut b =
        SqlBuilder::new("SELECT id, org_id AS owner_id, name FROM products WHERE tenant_id = ");
    b.push_bind(tenant_id).push(" AND org_id IN (");
    push_list(&mut b, &subtree);
    b.push(") ORDER BY id");
    let products = b.build().fetch_all::<NamedRow>(conn.conn()).await?;
    let product_ids: Vec<Uuid> = products.iter().map(|p| p.id).collect();
    let groups = if product_ids.is_empty() {
        Vec::new()
    } else {
        let mut b = SqlBuilder::new(
            "SELECT id, product_id AS owner_id, name FROM permission_groups WHERE tenant_id = ",
        );
        b.push_bind(tenant_id).push(" AND product_id IN (");
        push_list(&mut b, &product_ids);
        b.push(") ORDER BY id");
        b.build().fetch_all::<NamedRow>(conn.conn()).await?
    };
    let oidc_connections =
        sql("SELECT id FROM oidc_connections WHERE tenant_id = $1 AND org_id = $2 ORDER BY id")
            .bind(tenant_id)
            .bind(org_id)
            .fetch_all::<IdRow>(conn.conn())
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
    Ok(Catalog {
        org_id,
        orgs: orgs.into_iter().map(|o| (o.id, o.name)).collect(),
        products: products
            .into_iter()
            .map(|p| (p.id, p.owner_id, p.name))
            .collect(),
        permission_groups: groups
            .into_iter()
            .map(|g| (g.id, g.owner_id, g.name))
            .collect(),
        oidc_connections,
    })
}

fn maps_an_owner(rules: &[RuleSpec]) -> bool {
    rules
        .iter()
        .any(|r| r.enabled && r.grants.iter().any(Grant::is_owner))
}

#[async_trait]
impl MappingStore for SqlStore {
    async fn preview_mappings(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
        mappings: &Mappings,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Preview, StoreError> {
        let mut read = self.db.read_snapshot().await?;
        let catalog = read_catalog(&mut read, tenant_id, org_id).await?;
        let tree = tenant_tree(read.conn(), tenant_id).await?;
        let candidates = affected_candidates(&mut read, tenant_id, org_id, &tree).await?;
        let users = load_user_snapshots(&mut read, tenant_id, &candidates).await?;
        let product_ids: Vec<Uuid> = catalog.products.iter().map(|(id, _, _)| *id).collect();
        let products = load_product_snapshots(&mut read, tenant_id, &product_ids).await?;
        Ok(preview::preview(
            &users,
            org_id,
            mappings,
            &catalog.orgs,
            &products,
            after,
            usize::try_from(limit).unwrap_or(usize::MAX),
        ))
    }

    async fn get_mappings(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<StoredMappings, StoreError> {
        let mut read = self.db.read_snapshot().await?;
        load_in_tenant::<Org>(read.conn(), tenant_id, org_id).await?;
        read_mappings(&mut read, tenant_id, org_id).await
    }

    async fn mapping_catalog(&self, tenant_id: Uuid, org_id: Uuid) -> Result<Catalog, StoreError> {
        let mut read = self.db.read_snapshot().await?;
        read_catalog(&mut read, tenant_id, org_id).await
    }

    async fn replace_mappings(
        &self,
        ctx: &crate::store::Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        mappings: &Mappings,
        if_version: Option<i64>,
    ) -> Result<StoredMappings, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, org_id).await?;
        lock_org(&mut tx, OrgLock::Mappings, org_id).await?;
        let before = read_mappings(&mut tx, tenant_id, org_id).await?;
        if if_version.is_some_and(|v| v != before.version) {
            return Err(StoreError::Precondition);
        }

        // The Owner rule, judged on the same users before and after: only an org this change
        // leaves without an Owner is refused (one that had none already is not this change's).
        let tree = tenant_tree(tx.conn(), tenant_id).await?;
        let subtree = org::subtree(&tree, &[org_id]);
        let mut extra = Vec::new();
        if maps_an_owner(&mappings.rules) {
            extra.push(org_id);
        }
        let candidates = owner_candidates(&mut tx, tenant_id, &extra).await?;
        let users = load_user_snapshots(&mut tx, tenant_id, &candidates).await?;
        let unowned_before = unowned(&users, &subtree);
        let changed = preview::with_mappings(&users, org_id, mappings);
        let orphaned: Vec<Uuid> = unowned(&changed, &subtree)
            .into_iter()
            .filter(|o| !unowned_before.contains(o))
            .collect();
        if !orphaned.is_empty() {
            let catalog = read_catalog(&mut tx, tenant_id, org_id).await?;
            let names: Vec<String> = orphaned
                .iter()
                .map(|id| {
                    let name = catalog.orgs.iter().find(|(o, _)| o == id).map(|(_, n)| n);
                    match name {
                        Some(name) => format!("{name:?} ({id})"),
                        None => id.to_string(),
                    }
                })
                .collect();
            return Err(StoreError::Rule(format!(
                "owner_rule: these mappings would leave {} without an active Owner; every \
                 organization keeps at least one",
                names.join(", ")
            )));
        }

        sql("DELETE FROM mapping_rules WHERE tenant_id = $1 AND org_id = $2")
            .bind(tenant_id)
            .bind(org_id)
            .execute(tx.conn())
            .await?;
        let at = now();
        let new_rules: Vec<Rule> = mappings
            .rules
            .iter()
            .map(|r| r.to_rule(org_id, Uuid::now_v7()))
            .collect();
        for rule in &new_rules {
            sql(
                "INSERT INTO mapping_rules (id, tenant_id, org_id, name, name_norm, idp_group, \
                 source, priority, enabled, grants, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            )
            .bind(rule.id)
            .bind(tenant_id)
            .bind(org_id)
            .bind(rule.name.as_str())
            .bind(normalize(&rule.name))
            .bind(rule.idp_group.as_str())
            .bind(rule.source.to_string())
            .bind(i64::from(rule.priority))
            .bind(rule.enabled)
            .bind(json!(rule.grants))
            .bind(at)
            .execute(tx.conn())
            .await?;
        }
        let version = before.version + 1;
        sql(
            "INSERT INTO mapping_sets (org_id, tenant_id, default_grants, version, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET \
             default_grants = excluded.default_grants, version = excluded.version, \
             updated_at = excluded.updated_at",
        )
        .bind(org_id)
        .bind(tenant_id)
        .bind(mappings.default.as_ref().map(|g| json!(g)))
        .bind(version)
        .bind(at)
        .execute(tx.conn())
        .await?;
        let mut after = StoredMappings {
            org_id,
            version,
            mappings: mappings.clone(),
        };
        // As a read gives them back, so that the audit's before and after line up.
        after.mappings.rules.sort_by(mapping_document::by_name);
        tx.audit(
            AuditRecord::new("mapping.replace", "org", org_id)
                .org(org_id)
                .before(mapping_json(&before))
                .after(mapping_json(&after)),
        );
        // Who the rules match is known only at resolve time: every answer of the tenant may
        // change (the write door invalidates the whole tenant unless told otherwise).
        tx.commit().await?;
        Ok(after)
    }
}

/// The audit log's view of an org's mappings: the stored form, references by id.
fn mapping_json(stored: &StoredMappings) -> serde_json::Value {
    json!({
        "version": stored.version,
        "default": stored.mappings.default,
        "rules": stored.mappings.rules.iter().map(|r| json!({
            "name": r.name,
            "idp_group": r.idp_group,
            "source": r.source.to_string(),
            "priority": r.priority,
            "enabled": r.enabled,
            "grants": r.grants,
        })).collect::<Vec<_>>(),
    })
}
