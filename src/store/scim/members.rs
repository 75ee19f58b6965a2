//! Changes to a SCIM Group's members, applied in order in one transaction: members resolved
//! in the token's org, nested groups kept free of cycles, and each change recorded and
//! invalidated.

use std::collections::HashSet;

use serde_json::{Value, json};
use sqlx::FromRow;
use uuid::Uuid;

use super::ID_CHUNK;
use super::groups::{MemberRef, MembershipChange};
use crate::domain::group::MemberKind;
use crate::domain::now;
use crate::domain::provisioning::ScimScope;
use crate::store::StoreError;
use crate::store::db::{IdRow, OrgLock, SqlBuilder, WriteTx, lock_org, push_list, sql};

/// Member ids named in one audit record; the counts are always there.
const AUDITED_IDS: usize = 100;

#[derive(FromRow)]
struct MemberRecord {
    member_id: Uuid,
    member_kind: String,
}

fn sample(ids: &[Uuid]) -> &[Uuid] {
    &ids[..ids.len().min(AUDITED_IDS)]
}

/// What a series of membership changes did.
#[derive(Default)]
pub(super) struct ChangeSummary {
    added: Vec<Uuid>,
    removed: Vec<Uuid>,
    added_count: u64,
    removed_count: u64,
}

impl ChangeSummary {
    pub(super) fn any(&self) -> bool {
        self.added_count > 0 || self.removed_count > 0
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "added": self.added_count,
            "removed": self.removed_count,
            "added_ids": sample(&self.added),
            "removed_ids": sample(&self.removed),
        })
    }
}

/// Resolves each member to a user or group of the scope's org. Unknown ids (or ids of another
/// org) are reported all at once, by id.
async fn resolve_members(
    tx: &mut WriteTx,
    scope: ScimScope,
    members: &[MemberRef],
) -> Result<Vec<(Uuid, MemberKind)>, StoreError> {
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let users = ids_in(tx, "users", "scim_org_id", scope, &ids).await?;
    let groups = ids_in(tx, "groups", "org_id", scope, &ids).await?;
    let mut resolved = Vec::with_capacity(members.len());
    let mut unknown = Vec::new();
    for m in members {
        let kind = match m.kind {
            Some(MemberKind::User) if users.contains(&m.id) => Some(MemberKind::User),
            Some(MemberKind::Group) if groups.contains(&m.id) => Some(MemberKind::Group),
            Some(_) => None,
            None if users.contains(&m.id) => Some(MemberKind::User),
            None if groups.contains(&m.id) => Some(MemberKind::Group),
            None => None,
        };
        match kind {
            Some(kind) => resolved.push((m.id, kind)),
            None => unknown.push(m.id),
        }
    }
    if !unknown.is_empty() {
        return Err(StoreError::UnknownIds(unknown));
    }
    Ok(resolved)
}

async fn ids_in(
    tx: &mut WriteTx,
    table: &'static str,
    org_column: &'static str,
    scope: ScimScope,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(ID_CHUNK) {
        let mut b = SqlBuilder::new("SELECT id FROM ");
        b.push(table)
            .push(" WHERE tenant_id = ")
            .push_bind(scope.tenant_id)
            .push(" AND ")
            .push(org_column)
            .push(" = ")
            .push_bind(scope.org_id)
            .push(" AND id IN (");
        push_list(&mut b, chunk);
        b.push(")");
        found.extend(
            b.build()
                .fetch_all::<IdRow>(tx.conn())
                .await?
                .into_iter()
                .map(|r| r.id),
        );
    }
    Ok(found)
}

/// Refuses a nested group that would make `group_id` its own member, directly or not.
async fn refuse_cycles(
    tx: &mut WriteTx,
    scope: ScimScope,
    group_id: Uuid,
    nested: &[Uuid],
) -> Result<(), StoreError> {
    if nested.is_empty() {
        return Ok(());
    }
    // Locking the target group is not enough: `A gets member B` and `B gets member A` lock
    // different rows, and each would check before the other commits. Nesting changes of one
    // org (groups nest only within their org) therefore go one at a time, and each checks
    // what the previous one committed.
    lock_org(tx, OrgLock::GroupNesting, scope.org_id).await?;
    for candidate in nested {
        if *candidate == group_id {
            return Err(StoreError::Rule(format!(
                "group {group_id} cannot be a member of itself"
            )));
        }
        // Does `candidate` already contain `group_id`, at any depth?
        let found = sql(
            "WITH RECURSIVE down(id) AS (SELECT member_id FROM group_members WHERE group_id = $1 \
             AND tenant_id = $3 AND member_kind = 'group' UNION SELECT gm.member_id \
             FROM down CROSS JOIN group_members gm WHERE gm.group_id = down.id \
             AND gm.tenant_id = $3 AND gm.member_kind = 'group') \
             SELECT id FROM down WHERE id = $2",
        )
        .bind(*candidate)
        .bind(group_id)
        .bind(scope.tenant_id)
        .fetch_optional::<IdRow>(tx.conn())
        .await?;
        if found.is_some() {
            return Err(StoreError::Rule(format!(
                "adding group {candidate} to group {group_id} would make a cycle"
            )));
        }
    }
    Ok(())
}

pub(super) async fn apply_member_changes(
    tx: &mut WriteTx,
    scope: ScimScope,
    group_id: Uuid,
    changes: &[MembershipChange],
) -> Result<ChangeSummary, StoreError> {
    let mut summary = ChangeSummary::default();
    let mut nested_changed = false;
    for change in changes {
        match change {
            MembershipChange::Add(members) => {
                add_members(
                    tx,
                    scope,
                    group_id,
                    members,
                    &mut summary,
                    &mut nested_changed,
                )
                .await?;
            }
            MembershipChange::Replace(members) => {
                // As a difference, so a replace with the current members changes nothing.
                let wanted: HashSet<Uuid> = members.iter().map(|m| m.id).collect();
                let present = sql(
                    "SELECT member_id, member_kind FROM group_members WHERE tenant_id = $1 AND group_id = $2",
                )
                .bind(scope.tenant_id)
                .bind(group_id)
                .fetch_all::<MemberRecord>(tx.conn())
                .await?;
                let have: HashSet<Uuid> = present.iter().map(|r| r.member_id).collect();
                let gone: Vec<Uuid> = present
                    .iter()
                    .filter(|r| !wanted.contains(&r.member_id))
                    .map(|r| r.member_id)
                    .collect();
                let new: Vec<MemberRef> = members
                    .iter()
                    .filter(|m| !have.contains(&m.id))
                    .cloned()
                    .collect();
                // Checked before anything is removed: an unknown id refuses the whole change.
                resolve_members(tx, scope, &new).await?;
                remove_ids(
                    tx,
                    scope.tenant_id,
                    group_id,
                    &gone,
                    &mut summary,
                    &mut nested_changed,
                )
                .await?;
                add_members(tx, scope, group_id, &new, &mut summary, &mut nested_changed).await?;
            }
            MembershipChange::RemoveAll => {
                remove_all(tx, scope, group_id, &mut summary, &mut nested_changed).await?;
            }
            MembershipChange::Remove(ids) => {
                remove_ids(
                    tx,
                    scope.tenant_id,
                    group_id,
                    ids,
                    &mut summary,
                    &mut nested_changed,
                )
                .await?;
            }
        }
    }
    if nested_changed {
        tx.invalidate_tenant();
    }
    Ok(summary)
}

async fn remove_ids(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    group_id: Uuid,
    ids: &[Uuid],
    summary: &mut ChangeSummary,
    nested_changed: &mut bool,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(ID_CHUNK) {
        // Which of them are members (and of which kind), for the invalidation.
        let mut b =
            SqlBuilder::new("SELECT member_id, member_kind FROM group_members WHERE group_id = ");
        b.push_bind(group_id)
            .push(" AND tenant_id = ")
            .push_bind(tenant_id)
            .push(" AND member_id IN (");
        push_list(&mut b, chunk);
        b.push(")");
        let present = b.build().fetch_all::<MemberRecord>(tx.conn()).await?;
        if present.is_empty() {
            continue;
        }
        let mut b = SqlBuilder::new("DELETE FROM group_members WHERE group_id = ");
        b.push_bind(group_id)
            .push(" AND tenant_id = ")
            .push_bind(tenant_id)
            .push(" AND member_id IN (");
        push_list(&mut b, chunk);
        b.push(")");
        summary.removed_count += b.build().execute(tx.conn()).await?;
        for r in present {
            note_member(tx, &r, nested_changed);
            summary.removed.push(r.member_id);
        }
    }
    Ok(())
}

fn note_member(tx: &mut WriteTx, r: &MemberRecord, nested_changed: &mut bool) {
    if r.member_kind == "group" {
        *nested_changed = true;
    } else {
        tx.invalidate_user(r.member_id);
    }
}

async fn remove_all(
    tx: &mut WriteTx,
    scope: ScimScope,
    group_id: Uuid,
    summary: &mut ChangeSummary,
    nested_changed: &mut bool,
) -> Result<(), StoreError> {
    let present = sql(
        "SELECT member_id, member_kind FROM group_members WHERE tenant_id = $1 AND group_id = $2",
    )
    .bind(scope.tenant_id)
    .bind(group_id)
    .fetch_all::<MemberRecord>(tx.conn())
    .await?;
    if present.is_empty() {
        return Ok(());
    }
    summary.removed_count +=
        sql("DELETE FROM group_members WHERE group_id = $1 AND tenant_id = $2")
            .bind(group_id)
            .bind(scope.tenant_id)
            .execute(tx.conn())
            .await?;
    for r in present {
        note_member(tx, &r, nested_changed);
        summary.removed.push(r.member_id);
    }
    Ok(())
}

async fn add_members(
    tx: &mut WriteTx,
    scope: ScimScope,
    group_id: Uuid,
    members: &[MemberRef],
    summary: &mut ChangeSummary,
    nested_changed: &mut bool,
) -> Result<(), StoreError> {
    if members.is_empty() {
        return Ok(());
    }
    let resolved = resolve_members(tx, scope, members).await?;
    let nested: Vec<Uuid> = resolved
        .iter()
        .filter(|(_, k)| *k == MemberKind::Group)
        .map(|(id, _)| *id)
        .collect();
    refuse_cycles(tx, scope, group_id, &nested).await?;
    let at = now();
    for chunk in resolved.chunks(ID_CHUNK / 5) {
        let mut b = SqlBuilder::new(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_kind, created_at) VALUES ",
        );
        for (i, (id, kind)) in chunk.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push("(")
                .push_bind(scope.tenant_id)
                .push(", ")
                .push_bind(group_id)
                .push(", ")
                .push_bind(*id)
                .push(", ")
                .push_bind(kind.as_str())
                .push(", ")
                .push_bind(at)
                .push(")");
        }
        // Present members are skipped, so concurrent and retried adds neither fail nor double.
        b.push(" ON CONFLICT (group_id, member_id) DO NOTHING");
        let added = b.build().execute(tx.conn()).await?;
        summary.added_count += added;
        if added > 0 {
            for (id, kind) in chunk {
                summary.added.push(*id);
                if *kind == MemberKind::Group {
                    *nested_changed = true;
                } else {
                    tx.invalidate_user(*id);
                }
            }
        }
    }
    Ok(())
}
