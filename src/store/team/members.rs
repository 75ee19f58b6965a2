//! Users and their memberships of orgs: who is a member where, with which role, under the
//! Owner rule.

use crate::domain::session::EndReason;
use crate::store::db::CountRow;
use crate::store::sessions::end_sessions_in;
use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use super::{
    UserRow, chain, check_owner_rule, memberships_in, owned_orgs, role_column, source, tenant_tree,
};
use crate::domain::audit::AuditRecord;
use crate::domain::org::{self, EffectiveRole, Org, OrgRole};
use crate::domain::user::User;
use crate::domain::{Source, normalize, now};
use crate::store::db::{
    Ctx, IdRow, SqlBuilder, load_in_tenant, load_in_tenant_for_update, push_list, sql,
};
use crate::store::scim::{deactivate_for_forced_removal, scim_hold};
use crate::store::{SqlStore, StoreError};

/// What happens when a membership change would leave an org without an active Owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRule {
    /// Refuse the change (admin API).
    Enforce,
    /// Let it through with an audit warning and a metric (SCIM and login: offboarding wins).
    Warn,
}

/// What removing a membership does when the org's SCIM holds the person (their IdP manages
/// them there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimHeld {
    /// Refuse (`Rule`, `scim_managed`, naming the token): removed here only, the person would
    /// stay `active` in the IdP's view, and its next PATCHes would not bring the membership
    /// back — the two would disagree without anyone being told.
    Refuse,
    /// Remove, and deactivate the person for SCIM (`active: false`, out of the org's SCIM
    /// groups), so the IdP reads the removal back (admin API, `?force=true`).
    Deactivate,
}

/// Member search: substring of e-mail or userName (case-insensitive, Unicode-aware), keyset
/// paging by user id.
#[derive(Debug, Clone, Default)]
pub struct MemberQuery {
    pub search: Option<String>,
    pub after: Option<Uuid>,
    /// Only this user (to read one member back).
    pub user_id: Option<Uuid>,
    pub limit: u32,
}

/// A member of an org as the admin screens show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrgMember {
    pub user: User,
    /// The role in this org after inheritance, and where it comes from.
    pub effective: EffectiveRole,
    /// The role set on this org's own membership row (`None`: inherit or not direct).
    pub membership_role: Option<OrgRole>,
}

/// The tenant's users: a search (as [`MemberQuery`]'s), keyset paging by user id, and whose
/// people.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub search: Option<String>,
    pub after: Option<Uuid>,
    pub limit: u32,
    /// Only people with a membership of one of these orgs, or whom a SCIM token of one of them
    /// holds; `None`: everyone of the tenant.
    pub orgs: Option<Vec<Uuid>>,
}

/// A person of the tenant and where they belong: the org whose SCIM token holds them, and
/// their memberships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUser {
    pub user: User,
    /// The org whose SCIM token provisions the person; `None`: nobody's.
    pub scim_org_id: Option<Uuid>,
    /// Their own membership rows (not the orgs below them they inherit), by org id.
    pub memberships: Vec<UserMembership>,
}

/// One membership of a person, as the admin screens show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserMembership {
    pub org_id: Uuid,
    pub org_name: String,
    /// The role set on this membership (`None`: inherit from the parent org).
    pub role: Option<OrgRole>,
    /// The role in this org after inheritance, and where it comes from.
    pub effective: EffectiveRole,
    /// What made the membership: an admin, an invitation, SCIM, a login.
    pub source: Source,
}

#[async_trait]
pub trait MemberStore {
    /// The tenant's user with this e-mail (as e-mail or userName, case-insensitively),
    /// created from `source` if there is none: one person, one user.
    async fn ensure_user(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        email: &str,
        source: Source,
    ) -> Result<User, StoreError>;
    async fn find_user_by_email(
        &self,
        tenant_id: Uuid,
        email: &str,
    ) -> Result<Option<User>, StoreError>;

    /// A user of the tenant with their SCIM holder and memberships; `NotFound` for an id of
    /// nothing or of another tenant.
    async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<TenantUser, StoreError>;
    /// The tenant's users, by id.
    async fn list_users(&self, tenant_id: Uuid, query: &UserQuery)
    -> Result<Vec<User>, StoreError>;

    /// Members of an org: direct ones and those inherited from its ancestors.
    async fn list_members(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
        query: &MemberQuery,
    ) -> Result<Vec<OrgMember>, StoreError>;
    /// Adds a user of the tenant to an org, or changes their role there (`None`: inherit).
    async fn set_membership(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        role: Option<OrgRole>,
        rule: OwnerRule,
    ) -> Result<(), StoreError>;
    /// Removes a direct membership, with the grants given in that org. A person the org's
    /// SCIM holds is refused or deactivated for SCIM, as `held` says.
    async fn remove_membership(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        rule: OwnerRule,
        held: ScimHeld,
    ) -> Result<(), StoreError>;
}

#[derive(sqlx::FromRow)]
struct ScimOrgRow {
    scim_org_id: Option<Uuid>,
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

/// `AND (u.email_norm LIKE … OR u.user_name_norm LIKE …)` for a search that is not blank.
fn push_search(b: &mut SqlBuilder, search: Option<&str>) {
    if let Some(search) = search.filter(|s| !s.trim().is_empty()) {
        let pattern = contains_pattern(search);
        b.push(" AND (u.email_norm LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\'");
        b.push(" OR u.user_name_norm LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

#[derive(FromRow)]
struct TenantUserRow {
    #[sqlx(flatten)]
    user: UserRow,
    scim_org_id: Option<Uuid>,
}

#[derive(FromRow)]
struct UserMembershipRow {
    org_id: Uuid,
    org_name: String,
    role: Option<String>,
    source: String,
}

#[async_trait]
impl MemberStore for SqlStore {
    async fn ensure_user(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        email: &str,
        source: Source,
    ) -> Result<User, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        // A tenant's id is its root org's id.
        sql("SELECT id FROM orgs WHERE id = $1 AND tenant_id = $1 AND parent_id IS NULL")
            .bind(tenant_id)
            .fetch_one::<IdRow>(tx.conn())
            .await?;
        let user = super::ensure_user(&mut tx, tenant_id, email, source).await?;
        if tx.has_audit() {
            tx.commit().await?;
        }
        Ok(user)
    }

    async fn find_user_by_email(
        &self,
        tenant_id: Uuid,
        email: &str,
    ) -> Result<Option<User>, StoreError> {
        let mut h = self.db.read().await?;
        super::user_by_email(h.conn(), tenant_id, email).await
    }

    async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<TenantUser, StoreError> {
        let mut h = self.db.read().await?;
        let row = sql(concat!(
            "SELECT ",
            user_columns!(),
            ", u.scim_org_id FROM users u WHERE u.tenant_id = $1 AND u.id = $2"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .fetch_one::<TenantUserRow>(h.conn())
        .await?;
        let rows = sql(
            "SELECT m.org_id, o.name AS org_name, m.role, m.source FROM memberships m \
             JOIN orgs o ON o.id = m.org_id AND o.tenant_id = m.tenant_id \
             WHERE m.tenant_id = $1 AND m.user_id = $2 ORDER BY m.org_id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all::<UserMembershipRow>(h.conn())
        .await?;
        let tree = tenant_tree(h.conn(), tenant_id).await?;
        let role_in = |o: Uuid| {
            rows.iter()
                .find(|r| r.org_id == o)
                .map(|r| role_column(r.role.clone()))
        };
        let memberships = rows
            .iter()
            .map(|r| {
                // A membership row makes its org's role resolvable (its own, or inherited).
                let effective = org::effective_role(&chain(&tree, r.org_id), role_in)
                    .ok_or_else(|| StoreError::Other("membership without a role".into()))?;
                Ok(UserMembership {
                    org_id: r.org_id,
                    org_name: r.org_name.clone(),
                    role: role_column(r.role.clone()),
                    effective,
                    source: source(&r.source)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(TenantUser {
            user: row.user.try_into()?,
            scim_org_id: row.scim_org_id,
            memberships,
        })
    }

    async fn list_users(&self, tenant_id: Uuid, q: &UserQuery) -> Result<Vec<User>, StoreError> {
        let mut b = SqlBuilder::new(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.tenant_id = "
        ));
        b.push_bind(tenant_id);
        if let Some(orgs) = &q.orgs {
            if orgs.is_empty() {
                return Ok(Vec::new());
            }
            // Held by one of the orgs' SCIM tokens, or a member of one of them.
            b.push(" AND (u.scim_org_id IN (");
            push_list(&mut b, orgs);
            b.push(") OR u.id IN (SELECT m.user_id FROM memberships m WHERE m.tenant_id = ")
                .push_bind(tenant_id)
                .push(" AND m.org_id IN (");
            push_list(&mut b, orgs);
            b.push(")))");
        }
        push_search(&mut b, q.search.as_deref());
        if let Some(after) = q.after {
            b.push(" AND u.id > ").push_bind(after);
        }
        b.push(" ORDER BY u.id LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, 1000)));
        let mut h = self.db.read().await?;
        b.build()
            .fetch_all::<UserRow>(h.conn())
            .await?
            .into_iter()
            .map(User::try_from)
            .collect()
    }

    async fn list_members(
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
            user_columns!(),
            " FROM users u JOIN memberships m ON m.user_id = u.id AND m.tenant_id = u.tenant_id \
             WHERE m.tenant_id = "
        ));
        b.push_bind(tenant_id).push(" AND m.org_id IN (");
        push_list(&mut b, &chain);
        b.push(")");
        push_search(&mut b, q.search.as_deref());
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

    async fn set_membership(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        role: Option<OrgRole>,
        rule: OwnerRule,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, org_id).await?;
        load_in_tenant::<User>(tx.conn(), tenant_id, user_id).await?;
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

    async fn remove_membership(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        rule: OwnerRule,
        held: ScimHeld,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let before = memberships_in(tx.conn(), tenant_id, &[user_id], &[org_id]).await?;
        if before.is_empty() {
            return Err(StoreError::NotFound);
        }
        // Locked (PostgreSQL) before the hold is read: a SCIM write of the person waits, so the
        // decision and the deactivation below see the document SCIM last wrote.
        load_in_tenant_for_update::<User>(&mut tx, tenant_id, user_id).await?;
        let holder = sql("SELECT scim_org_id FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(user_id)
            .bind(tenant_id)
            .fetch_one::<ScimOrgRow>(tx.conn())
            .await?
            .scim_org_id;
        // Only the org whose SCIM holds the person is the IdP's business: a membership an admin
        // gave in another org is theirs to take back. Whether the row itself was made by SCIM
        // or by an invitation SCIM later linked does not matter: the IdP manages both.
        let forced = if holder == Some(org_id) {
            match held {
                ScimHeld::Refuse => {
                    let hold = scim_hold(&mut tx, tenant_id, user_id)
                        .await?
                        .ok_or_else(|| StoreError::Other("hold vanished under a lock".into()))?;
                    return Err(StoreError::Rule(hold.removal_refused(user_id)));
                }
                ScimHeld::Deactivate => {
                    Some(deactivate_for_forced_removal(&mut tx, tenant_id, org_id, user_id).await?)
                }
            }
        } else {
            None
        };
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
        let mut record = AuditRecord::new("membership.remove", "user", user_id)
            .org(org_id)
            .before(json!({ "role": before[0].2, "grants": removed }));
        if let Some(f) = &forced {
            record = record.after(json!({
                "forced": true,
                "scim": {
                    "held_by_org_id": org_id,
                    "deactivated": f.deactivated,
                    "groups_left": f.groups_left,
                },
            }));
        }
        tx.audit(record);
        tx.invalidate_user(user_id);
        // A person an admin removed from every org of the tenant (or deactivated, forced) keeps
        // no session; one still a member elsewhere keeps theirs, with the access that is left.
        let remaining =
            sql("SELECT COUNT(*) AS n FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .fetch_one::<CountRow>(tx.conn())
                .await?
                .n;
        if remaining == 0 || forced.as_ref().is_some_and(|f| f.deactivated) {
            end_sessions_in(&mut tx, tenant_id, user_id, EndReason::MembershipRemoved).await?;
        }
        check_owner_rule(&mut tx, tenant_id, org_id, rule).await?;
        if forced.as_ref().is_some_and(|f| f.deactivated) {
            // An inactive Owner counts for no org: every org they own must keep another.
            for owned in owned_orgs(&mut tx, tenant_id, user_id).await? {
                check_owner_rule(&mut tx, tenant_id, owned, rule).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
