//! The team model's storage, one capability per module: the org tree (`orgs`), users and
//! their memberships (`members`), products with their environments and permission groups
//! (`products`), and grants with the facts the evaluator reads (`access`). What several of them,
//! invitations and SCIM share is here: orgs and users as rows, the tree, memberships, grants and
//! the Owner rule.

// The column macros come before the `mod` lines: a `macro_rules!` is in scope only in what
// follows it, the submodules included.

/// The columns of an `orgs` row, in [`OrgRow`]'s order.
macro_rules! org_columns {
    () => {
        "id, tenant_id, parent_id, name, created_at, updated_at, version"
    };
}

/// The columns of a `users u` row, in [`UserRow`]'s order.
macro_rules! user_columns {
    () => {
        "u.id, u.tenant_id, u.user_name, u.email, u.external_id, u.display_name, u.active, \
         u.source, u.created_at, u.updated_at, u.version"
    };
}

mod access;
mod mappings;
mod members;
mod orgs;
mod products;
mod snapshots;

pub use access::{AccessStore, GrantedGroup, ProductAccess, ProductMember, UserProductAccess};
pub use mappings::{MappingStore, StoredMappings};
pub use members::{
    MemberQuery, MemberStore, OrgMember, OwnerRule, ScimHeld, TenantUser, UserMembership, UserQuery,
};
pub use orgs::OrgStore;
pub use products::{NewEnvironment, ProductStore};
pub use snapshots::AuthzStore;

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::StoreError;
use super::db::{Conn, SqlBuilder, TenantResource, WriteTx, push_list, sql};
use crate::domain::audit::AuditRecord;
use crate::domain::org::{self, Org, OrgRole};
use crate::domain::user::User;
use crate::domain::{Source, normalize, now};

fn source(raw: &str) -> Result<Source, StoreError> {
    Source::parse(raw).ok_or_else(|| StoreError::Other(format!("unknown source {raw}")))
}

#[derive(FromRow)]
pub(crate) struct OrgRow {
    id: Uuid,
    tenant_id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl From<OrgRow> for Org {
    fn from(r: OrgRow) -> Self {
        Org {
            id: r.id,
            tenant_id: r.tenant_id,
            parent_id: r.parent_id,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

impl TenantResource for Org {
    type Row = OrgRow;
    const FROM: &'static str = "orgs";
    const COLUMNS: &'static str = org_columns!();
    fn from_row(row: OrgRow) -> Result<Self, StoreError> {
        Ok(row.into())
    }
}

#[derive(FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    tenant_id: Uuid,
    user_name: String,
    email: Option<String>,
    external_id: Option<String>,
    display_name: Option<String>,
    active: bool,
    source: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: r.id,
            tenant_id: r.tenant_id,
            user_name: r.user_name,
            email: r.email,
            external_id: r.external_id,
            display_name: r.display_name,
            active: r.active,
            source: source(&r.source)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
    }
}

impl TenantResource for User {
    type Row = UserRow;
    const FROM: &'static str = "users u";
    const COLUMNS: &'static str = user_columns!();
    fn from_row(row: UserRow) -> Result<Self, StoreError> {
        row.try_into()
    }
}

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

pub(in crate::store) async fn tenant_tree(
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

#[derive(FromRow)]
struct OrgIdRow {
    org_id: Uuid,
}

/// Orgs where the user is an Owner by their own membership: deactivating, deleting or
/// force-removing them is checked against the Owner rule there (by SCIM warned about, never
/// refused: offboarding wins; by an admin refused).
pub(super) async fn owned_orgs(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sql(
        "SELECT org_id FROM memberships WHERE tenant_id = $1 AND user_id = $2 AND role = 'owner'",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all::<OrgIdRow>(tx.conn())
    .await?
    .into_iter()
    .map(|r| r.org_id)
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
    // Everyone who may own something, resolved as every permission answer is: inherited
    // ownership counts, a nearer membership overrides it, a mapped Owner counts, an inactive
    // user does not.
    let tree = tenant_tree(tx.conn(), tenant_id).await?;
    let candidates = snapshots::owner_candidates(tx, tenant_id, &[]).await?;
    let users = snapshots::load_user_snapshots(tx, tenant_id, &candidates).await?;
    let orphaned = snapshots::unowned(&users, &org::subtree(&tree, &[org_id]));
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

async fn user_by_email(
    conn: Conn<'_>,
    tenant_id: Uuid,
    email: &str,
) -> Result<Option<User>, StoreError> {
    let norm = normalize(email);
    // A person is one user whether the e-mail arrived as userName or as the e-mail attribute.
    sql(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.tenant_id = $1 AND (u.email_norm = $2 OR u.user_name_norm = $2) \
         ORDER BY u.id LIMIT 1"
    ))
    .bind(tenant_id)
    .bind(norm)
    .fetch_optional::<UserRow>(conn)
    .await?
    .map(User::try_from)
    .transpose()
}

/// The user with this e-mail, created (from `source`) if the tenant has none.
pub(super) async fn ensure_user(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    email: &str,
    source: Source,
) -> Result<User, StoreError> {
    if let Some(user) = user_by_email(tx.conn(), tenant_id, email).await? {
        return Ok(user);
    }
    let at = now();
    let user = User {
        id: Uuid::now_v7(),
        tenant_id,
        user_name: email.to_owned(),
        email: Some(email.to_owned()),
        external_id: None,
        display_name: None,
        active: true,
        source,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    sql(
        "INSERT INTO users (id, tenant_id, user_name, user_name_norm, email, email_norm, active, \
         source, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(user.id)
    .bind(tenant_id)
    .bind(email)
    .bind(normalize(email))
    .bind(email)
    .bind(normalize(email))
    .bind(true)
    .bind(source.as_str())
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await?;
    tx.audit(AuditRecord::new("user.create", "user", user.id).after(&user));
    Ok(user)
}

/// Why a user-minted admin token is revoked when its creator stops being an Owner of its org.
const CREATOR_NOT_OWNER: &str =
    "creator_not_owner: the user who minted it is no longer an active Owner of its org";
/// Why a user-minted admin token is revoked when its creator is deleted.
const CREATOR_DELETED: &str = "creator_deleted: the user who minted it was deleted";

/// Revokes, inside the write, each admin token a signed-in user minted whose creator this
/// change may have affected and who is no longer an effective, active Owner of the token's org
/// — the same evaluation as the Owner rule's, on what the transaction sees. SCIM and service
/// tokens belong to the org and are never revoked here; nor are the operator's or a token's.
pub(crate) async fn revoke_unentitled_tokens(tx: &mut WriteTx) -> Result<(), StoreError> {
    let tenant_id = tx.tenant_id();
    let affected = tx.affected_existing_users();
    if affected.as_ref().is_some_and(Vec::is_empty) {
        return Ok(());
    }
    let tokens =
        super::tokens::user_minted_admin_tokens(tx.conn(), tenant_id, affected.as_deref()).await?;
    if tokens.is_empty() {
        return Ok(());
    }
    let mut creators: Vec<Uuid> = tokens.iter().filter_map(|t| t.created_by_user_id).collect();
    creators.sort_unstable();
    creators.dedup();
    let users = snapshots::load_user_snapshots(tx, tenant_id, &creators).await?;
    for token in tokens {
        let entitled = users
            .iter()
            .find(|u| Some(u.user_id) == token.created_by_user_id)
            .is_some_and(|u| crate::domain::resolve::is_owner(u, token.org_id));
        if !entitled {
            super::tokens::revoke_in(tx, &token, Some(CREATOR_NOT_OWNER)).await?;
        }
    }
    Ok(())
}

/// Revokes the admin tokens `user_id` minted, before their row goes (which would forget who
/// minted them).
pub(crate) async fn revoke_tokens_of_deleted(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let tokens =
        super::tokens::user_minted_admin_tokens(tx.conn(), tenant_id, Some(&[user_id])).await?;
    for token in tokens {
        super::tokens::revoke_in(tx, &token, Some(CREATOR_DELETED)).await?;
    }
    Ok(())
}
