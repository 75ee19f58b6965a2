//! SCIM Groups: a row of `groups` with the token's org, whose members (users and groups of
//! that org) are read packed by the database and changed in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use super::filter_sql::Dialect;
use super::members::apply_member_changes;
use super::{
    ID_CHUNK, Listing, ScimListQuery, ScimPage, check_version, forget_everywhere, lock_clause,
    name_conflict,
};
use crate::domain::audit::AuditRecord;
use crate::domain::group::{GroupMember, MemberKind};
use crate::domain::provisioning::{ScimGroup, ScimScope};
use crate::domain::{Source, normalize, now};
use crate::scim_proto::schema::ResourceType;
use crate::store::db::{Conn, CountRow, Ctx, SqlBuilder, push_list, sql};
use crate::store::{SqlStore, StoreError};

/// A SCIM Group's own attributes (its members change through [`MembershipChange`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
}

/// A member to add: its id and, when the client said, its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRef {
    pub id: Uuid,
    pub kind: Option<MemberKind>,
}

/// One change to a group's members, applied in order in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Adds members; present ones are skipped.
    Add(Vec<MemberRef>),
    /// Removes members; absent ones are skipped.
    Remove(Vec<Uuid>),
    RemoveAll,
    /// Makes the members exactly these.
    Replace(Vec<MemberRef>),
}

/// A member of a SCIM Group with what names it, for the admin API's read-only view: a user's
/// userName and e-mail, or a nested group's displayName.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NamedGroupMember {
    pub id: Uuid,
    pub kind: MemberKind,
    /// A user's userName; `null` for a group.
    pub user_name: Option<String>,
    /// A user's e-mail address, if known.
    pub email: Option<String>,
    /// A user's display name, if stored; a nested group's displayName.
    pub display_name: Option<String>,
    /// Whether a user is active; `null` for a group.
    pub active: Option<bool>,
}

#[async_trait]
pub trait ScimGroupStore {
    async fn scim_create_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        group: &ScimGroupWrite,
        members: &[MemberRef],
    ) -> Result<ScimGroup, StoreError>;
    async fn scim_get_group(&self, scope: ScimScope, id: Uuid) -> Result<ScimGroup, StoreError>;
    async fn scim_list_groups(
        &self,
        scope: ScimScope,
        query: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimGroup>, StoreError>;
    /// `(group id, member)` for a page of groups, in one query.
    async fn scim_group_members(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, GroupMember)>, StoreError>;
    /// How many members each group has, for a page of groups in one query (groups without
    /// members are left out).
    async fn scim_group_member_counts(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, u64)>, StoreError>;
    /// Up to `limit` members of a group in member id order, those after `after`: a keyset
    /// cursor on the primary key, so a large group is read in short queries, each on a
    /// connection of its own.
    async fn scim_group_members_after(
        &self,
        scope: ScimScope,
        group_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<GroupMember>, StoreError>;
    /// Up to `limit` of the scope's groups after `after`, in id order: a keyset page for the
    /// admin API, which reads what an org's IdP pushed without SCIM's offset paging.
    async fn scim_groups_after(
        &self,
        scope: ScimScope,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ScimGroup>, StoreError>;
    /// Up to `limit` members of the scope's group `group_id` after `after`, in member id
    /// order, each named (see [`NamedGroupMember`]); none for a group outside the scope.
    async fn scim_named_group_members(
        &self,
        scope: ScimScope,
        group_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<NamedGroupMember>, StoreError>;
    /// Changes a Group's attributes and members in one transaction. Unknown members are
    /// `UnknownIds`, a nested group that would make a cycle is `Rule`.
    async fn scim_update_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
        attributes: Option<&ScimGroupWrite>,
        changes: &[MembershipChange],
    ) -> Result<ScimGroup, StoreError>;
    async fn scim_delete_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError>;
}

#[derive(FromRow)]
struct GroupRecord {
    id: Uuid,
    display_name: String,
    external_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl From<GroupRecord> for ScimGroup {
    fn from(r: GroupRecord) -> Self {
        ScimGroup {
            id: r.id,
            display_name: r.display_name,
            external_id: r.external_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

macro_rules! scim_group_columns {
    () => {
        "g.id, g.display_name, g.external_id, g.created_at, g.updated_at, g.version"
    };
}

/// `(SELECT id FROM groups WHERE tenant_id = … AND id IN (…))`: these groups, if they are the
/// tenant's. Member reads check the tenant through the group rather than on each member row:
/// `group_members` has an index on (tenant_id, member_id) too, and a planner without fresh
/// statistics (just after a bulk load) used it to walk every member of the tenant, then sorted
/// (30 ms a chunk of a 100,000-member group, against 6 ms on the primary key).
fn tenant_groups(b: &mut SqlBuilder, scope: ScimScope, ids: &[Uuid]) {
    b.push("(SELECT id FROM groups WHERE tenant_id = ")
        .push_bind(scope.tenant_id)
        .push(" AND id IN (");
    push_list(b, ids);
    b.push("))");
}

/// Members concatenated by the database (see [`packed_members`]).
#[derive(FromRow)]
struct PackedRow {
    packed: Option<String>,
}

#[derive(FromRow)]
struct PackedGroupRow {
    group_id: Uuid,
    packed: Option<String>,
}

/// Members as one value: per member the 32 hex digits of its id and the first letter of its
/// kind. sqlx hands SQLite rows over one at a time from its worker thread (some 3 µs a row:
/// most of the time a 10,000-member group took to read), so reads of many members concatenate
/// them in the database and [`unpack_members`] splits them. In no particular order: an ordered
/// aggregate sorts again what the index already ordered (half the gain), so the ids are sorted
/// once unpacked.
fn packed_members(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "group_concat(hex(member_id) || substr(member_kind, 1, 1), '')",
        Dialect::Postgres => {
            "string_agg(replace(member_id::text, '-', '') || left(member_kind, 1), '')"
        }
    }
}

/// Length of one member in [`packed_members`].
const PACKED_MEMBER: usize = 33;

/// The members of [`packed_members`], in member id order (the order of the primary key, and
/// of `Uuid`: both compare the 16 bytes).
fn unpack_members(packed: &str) -> Result<Vec<GroupMember>, StoreError> {
    let malformed = || StoreError::Other("malformed packed group members".into());
    if !packed.len().is_multiple_of(PACKED_MEMBER) {
        return Err(malformed());
    }
    let mut members = packed
        .as_bytes()
        .chunks_exact(PACKED_MEMBER)
        .map(|m| {
            let id = Uuid::try_parse_ascii(&m[..32]).map_err(|_| malformed())?;
            let kind = match m[32] {
                b'u' => MemberKind::User,
                b'g' => MemberKind::Group,
                _ => return Err(malformed()),
            };
            Ok(GroupMember { id, kind })
        })
        .collect::<Result<Vec<_>, _>>()?;
    members.sort_unstable_by_key(|m| m.id);
    Ok(members)
}

#[derive(FromRow)]
struct NamedMemberRow {
    member_id: Uuid,
    member_kind: String,
    user_name: Option<String>,
    email: Option<String>,
    display_name: Option<String>,
    active: Option<bool>,
}

#[derive(FromRow)]
struct GroupCountRow {
    group_id: Uuid,
    n: i64,
}

async fn group_in_scope(
    conn: Conn<'_>,
    dialect: Dialect,
    scope: ScimScope,
    id: Uuid,
    lock: bool,
) -> Result<ScimGroup, StoreError> {
    let mut b = SqlBuilder::new(concat!(
        "SELECT ",
        scim_group_columns!(),
        " FROM groups g WHERE g.id = "
    ));
    b.push_bind(id)
        .push(" AND g.tenant_id = ")
        .push_bind(scope.tenant_id)
        .push(" AND g.org_id = ")
        .push_bind(scope.org_id);
    if lock {
        b.push(lock_clause(dialect));
    }
    b.build()
        .fetch_one::<GroupRecord>(conn)
        .await
        .map(ScimGroup::from)
}

#[async_trait]
impl ScimGroupStore for SqlStore {
    async fn scim_create_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        group: &ScimGroupWrite,
        members: &[MemberRef],
    ) -> Result<ScimGroup, StoreError> {
        let mut tx = self.db.begin_write(ctx, scope.tenant_id).await?;
        // A taken displayName or externalId is the unique indexes' to refuse.
        let id = Uuid::now_v7();
        let at = now();
        sql(
            "INSERT INTO groups (id, tenant_id, display_name, display_name_norm, external_id, \
             external_id_norm, source, org_id, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1)",
        )
        .bind(id)
        .bind(scope.tenant_id)
        .bind(group.display_name.as_str())
        .bind(normalize(&group.display_name))
        .bind(group.external_id.clone())
        .bind(group.external_id.as_deref().map(normalize))
        .bind(Source::Scim.as_str())
        .bind(scope.org_id)
        .bind(at)
        .bind(at)
        .execute(tx.conn())
        .await
        .map_err(name_conflict)?;
        // The resolver keeps the tenant's groups with its shared facts (the org tree, the
        // rules): a new group changes them, as a rename or a deletion does.
        tx.invalidate_tenant();
        let summary = apply_member_changes(
            &mut tx,
            scope,
            id,
            &[MembershipChange::Add(members.to_vec())],
        )
        .await?;
        tx.audit(
            AuditRecord::new("scim.group.create", "group", id)
                .org(scope.org_id)
                .after(json!({
                    "displayName": group.display_name,
                    "externalId": group.external_id,
                    "members": summary.to_json(),
                })),
        );
        tx.commit().await?;
        Ok(ScimGroup {
            id,
            display_name: group.display_name.clone(),
            external_id: group.external_id.clone(),
            created_at: at,
            updated_at: at,
            version: 1,
        })
    }

    async fn scim_get_group(&self, scope: ScimScope, id: Uuid) -> Result<ScimGroup, StoreError> {
        let mut h = self.db.read().await?;
        group_in_scope(h.conn(), self.dialect(), scope, id, false).await
    }

    async fn scim_list_groups(
        &self,
        scope: ScimScope,
        q: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimGroup>, StoreError> {
        let listing = Listing {
            resource_type: ResourceType::Group,
            select: concat!("SELECT ", scim_group_columns!()),
            from: " FROM groups g WHERE g.tenant_id = ",
            in_org: " AND g.org_id = ",
        };
        let (total, rows) = self.scim_page::<GroupRecord>(&listing, scope, q).await?;
        Ok(ScimPage {
            total,
            items: rows.into_iter().map(ScimGroup::from).collect(),
        })
    }

    /// The members of a page of groups in one query (never one per group), in member id order.
    async fn scim_group_members(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, GroupMember)>, StoreError> {
        let mut out = Vec::new();
        let mut h = self.db.read().await?;
        for chunk in group_ids.chunks(ID_CHUNK) {
            // The tenant is checked on the groups (see `tenant_groups`).
            let mut b = SqlBuilder::new("SELECT group_id, ");
            b.push(packed_members(self.dialect()))
                .push(" AS packed FROM group_members WHERE group_id IN ");
            tenant_groups(&mut b, scope, chunk);
            b.push(" GROUP BY group_id ORDER BY group_id");
            for r in b.build().fetch_all::<PackedGroupRow>(h.conn()).await? {
                let group_id = r.group_id;
                out.extend(
                    unpack_members(r.packed.as_deref().unwrap_or_default())?
                        .into_iter()
                        .map(|m| (group_id, m)),
                );
            }
        }
        Ok(out)
    }

    async fn scim_group_member_counts(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let mut out = Vec::with_capacity(group_ids.len());
        let mut h = self.db.read().await?;
        for chunk in group_ids.chunks(ID_CHUNK) {
            // The tenant is checked on the groups (see `tenant_groups`), so the count reads the
            // primary key index alone, never the rows.
            let mut b = SqlBuilder::new(
                "SELECT group_id, COUNT(*) AS n FROM group_members WHERE group_id IN ",
            );
            tenant_groups(&mut b, scope, chunk);
            b.push(" GROUP BY group_id");
            for r in b.build().fetch_all::<GroupCountRow>(h.conn()).await? {
                out.push((r.group_id, u64::try_from(r.n).unwrap_or(0)));
            }
        }
        Ok(out)
    }

    async fn scim_group_members_after(
        &self,
        scope: ScimScope,
        group_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<GroupMember>, StoreError> {
        // The tenant is checked on the group (see `tenant_groups`): the members come in
        // primary key order, `member_id > after` a range of it, whatever the statistics.
        let mut b = SqlBuilder::new("SELECT ");
        b.push(packed_members(self.dialect())).push(
            " AS packed FROM (SELECT member_id, member_kind FROM group_members \
                 WHERE group_id IN ",
        );
        tenant_groups(&mut b, scope, &[group_id]);
        if let Some(after) = after {
            b.push(" AND member_id > ").push_bind(after);
        }
        b.push(" ORDER BY member_id LIMIT ")
            .push_bind(i64::from(limit))
            .push(") AS chunk");
        // A read handle of its own, returned when this chunk is read: a streamed response
        // never holds a connection while its client reads.
        let mut h = self.db.read().await?;
        let row = b.build().fetch_one::<PackedRow>(h.conn()).await?;
        unpack_members(row.packed.as_deref().unwrap_or_default())
    }

    async fn scim_groups_after(
        &self,
        scope: ScimScope,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ScimGroup>, StoreError> {
        let mut b = SqlBuilder::new(concat!(
            "SELECT ",
            scim_group_columns!(),
            " FROM groups g WHERE g.tenant_id = "
        ));
        b.push_bind(scope.tenant_id)
            .push(" AND g.org_id = ")
            .push_bind(scope.org_id);
        if let Some(after) = after {
            b.push(" AND g.id > ").push_bind(after);
        }
        b.push(" ORDER BY g.id LIMIT ").push_bind(i64::from(limit));
        let mut h = self.db.read().await?;
        Ok(b.build()
            .fetch_all::<GroupRecord>(h.conn())
            .await?
            .into_iter()
            .map(ScimGroup::from)
            .collect())
    }

    async fn scim_named_group_members(
        &self,
        scope: ScimScope,
        group_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<NamedGroupMember>, StoreError> {
        // The group is looked up in the scope in the same statement, so a group of another
        // org lists nothing even if a caller skipped the check before. Pages are short (at
        // most the admin API's 1000) and run on the primary key (group_id, member_id).
        let mut b = SqlBuilder::new(
            "SELECT gm.member_id, gm.member_kind, u.user_name, u.email, \
             COALESCE(u.display_name, g.display_name) AS display_name, u.active \
             FROM group_members gm \
             LEFT JOIN users u ON u.id = gm.member_id AND u.tenant_id = gm.tenant_id \
             AND gm.member_kind = 'user' \
             LEFT JOIN groups g ON g.id = gm.member_id AND g.tenant_id = gm.tenant_id \
             AND gm.member_kind = 'group' \
             WHERE gm.tenant_id = ",
        );
        b.push_bind(scope.tenant_id)
            .push(" AND gm.group_id = (SELECT s.id FROM groups s WHERE s.tenant_id = ")
            .push_bind(scope.tenant_id)
            .push(" AND s.org_id = ")
            .push_bind(scope.org_id)
            .push(" AND s.id = ")
            .push_bind(group_id)
            .push(")");
        if let Some(after) = after {
            b.push(" AND gm.member_id > ").push_bind(after);
        }
        b.push(" ORDER BY gm.member_id LIMIT ")
            .push_bind(i64::from(limit));
        let mut h = self.db.read().await?;
        b.build()
            .fetch_all::<NamedMemberRow>(h.conn())
            .await?
            .into_iter()
            .map(|r| {
                let kind = MemberKind::parse(&r.member_kind).ok_or_else(|| {
                    StoreError::Other(format!("unknown member kind {}", r.member_kind))
                })?;
                Ok(NamedGroupMember {
                    id: r.member_id,
                    kind,
                    user_name: r.user_name,
                    email: r.email,
                    display_name: r.display_name,
                    active: r.active,
                })
            })
            .collect()
    }

    async fn scim_update_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
        attributes: Option<&ScimGroupWrite>,
        changes: &[MembershipChange],
    ) -> Result<ScimGroup, StoreError> {
        let dialect = self.dialect();
        let mut tx = self.db.begin_write(ctx, scope.tenant_id).await?;
        // Locked first: concurrent membership changes of one group queue here instead of racing.
        let before = group_in_scope(tx.conn(), dialect, scope, id, true).await?;
        check_version(expected_version, before.version)?;
        let mut changed = false;
        let mut record = json!({});
        if let Some(group) = attributes
            && (group.display_name != before.display_name
                || group.external_id != before.external_id)
        {
            sql(
                "UPDATE groups SET display_name = $1, display_name_norm = $2, external_id = $3, \
                 external_id_norm = $4 WHERE id = $5 AND tenant_id = $6",
            )
            .bind(group.display_name.as_str())
            .bind(normalize(&group.display_name))
            .bind(group.external_id.clone())
            .bind(group.external_id.as_deref().map(normalize))
            .bind(id)
            .bind(scope.tenant_id)
            .execute(tx.conn())
            .await
            .map_err(name_conflict)?;
            record["displayName"] = json!(group.display_name);
            record["externalId"] = json!(group.external_id);
            changed = true;
            // Mapping rules match groups by name: every member's mapped access may change,
            // members of groups nested in it included.
            tx.invalidate_tenant();
        }
        if !changes.is_empty() {
            let summary = apply_member_changes(&mut tx, scope, id, changes).await?;
            if summary.any() {
                record["members"] = summary.to_json();
                changed = true;
            }
        }
        if !changed {
            // Nothing to write: a retried PATCH (an add of present members, a remove of absent
            // ones) keeps the version and records nothing.
            return Ok(before);
        }
        let at = now();
        sql("UPDATE groups SET version = version + 1, updated_at = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(at)
            .bind(id)
            .bind(scope.tenant_id)
            .execute(tx.conn())
            .await?;
        let (display_name, external_id) = match attributes {
            Some(g) => (g.display_name.clone(), g.external_id.clone()),
            None => (before.display_name.clone(), before.external_id.clone()),
        };
        tx.audit(
            AuditRecord::new("scim.group.update", "group", id)
                .org(scope.org_id)
                .before(
                    json!({ "displayName": before.display_name, "externalId": before.external_id }),
                )
                .after(record),
        );
        tx.commit().await?;
        Ok(ScimGroup {
            display_name,
            external_id,
            updated_at: at,
            version: before.version + 1,
            ..before
        })
    }

    async fn scim_delete_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let mut tx = self.db.begin_write(ctx, scope.tenant_id).await?;
        let before = group_in_scope(tx.conn(), dialect, scope, id, true).await?;
        check_version(expected_version, before.version)?;
        let members =
            sql("SELECT COUNT(*) AS n FROM group_members WHERE group_id = $1 AND tenant_id = $2")
                .bind(id)
                .bind(scope.tenant_id)
                .fetch_one::<CountRow>(tx.conn())
                .await?
                .n;
        forget_everywhere(&mut tx, scope.tenant_id, MemberKind::Group, id).await?;
        // Its own member rows go with it (ON DELETE CASCADE).
        sql("DELETE FROM groups WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(scope.tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("scim.group.delete", "group", id)
                .org(scope.org_id)
                .before(json!({
                    "displayName": before.display_name,
                    "externalId": before.external_id,
                    "members": members,
                })),
        );
        // Whoever the group's members were, their group-derived access may change.
        tx.invalidate_tenant();
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_members_unpack_in_id_order_and_malformed_ones_are_errors() {
        let a = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let b = Uuid::from_u128(7);
        let packed = format!("{}u{}g", a.simple().to_string().to_uppercase(), b.simple());
        assert_eq!(
            unpack_members(&packed).expect("valid"),
            [
                GroupMember {
                    id: b,
                    kind: MemberKind::Group
                },
                GroupMember {
                    id: a,
                    kind: MemberKind::User
                },
            ],
            "in id order, whatever order they came in"
        );
        assert!(unpack_members("").expect("none").is_empty());
        assert!(unpack_members(&packed[1..]).is_err());
        assert!(unpack_members(&packed.replace('g', "x")).is_err());
    }
}
