//! SCIM Users and Groups in the store. A SCIM User is a row of `users` that the token's org
//! provisions (`scim_org_id`), and a member of that org; a SCIM Group is a row of `groups` with
//! that `org_id`. Every query is scoped by tenant *and* org, so one org's token never reads or
//! changes another org's resources: they are simply not found.
//!
//! Writes go through the one write door (audit and invalidation in the same transaction) and
//! are idempotent where SCIM clients retry: a create that finds its userName or externalId taken
//! changes nothing and says which, a change that changes nothing writes nothing.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::db::{Arg, Conn, Ctx, Record, SqlBuilder, WriteTx, sql};
use super::queries::{IdRow, OrgLock, SqlStore, lock_org, org_in_tenant, push_list};
use super::scim_sql::{Dialect, Translator};
use super::team::{check_owner_rule, tenant_tree};
use super::{
    MemberRef, MembershipChange, OwnerRule, ScimGroupWrite, ScimListQuery, ScimPage, StoreError,
};
use crate::domain::audit::AuditRecord;
use crate::domain::group::GroupMember;
use crate::domain::group::MemberKind;
use crate::domain::provisioning::{
    LinkCandidate, LinkRefusal, ScimGroup, ScimRelease, ScimScope, ScimUser, ScimUserGroup,
    ScimUserWrite, link_decision,
};
use crate::domain::{Source, normalize, now};
use crate::scim_proto::schema::ResourceType;

/// Most ids bound in one statement; well under SQLite's parameter limit.
const ID_CHUNK: usize = 500;
/// Member ids named in one audit record; the counts are always there.
const AUDITED_IDS: usize = 100;

#[derive(FromRow)]
struct UserRecord {
    id: Uuid,
    user_name: String,
    external_id: Option<String>,
    active: bool,
    attributes: Option<Json<Value>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl From<UserRecord> for ScimUser {
    fn from(r: UserRecord) -> Self {
        let attributes = match r.attributes {
            Some(Json(Value::Object(map))) => map,
            _ => serde_json::Map::new(),
        };
        ScimUser {
            id: r.id,
            user_name: r.user_name,
            external_id: r.external_id,
            active: r.active,
            attributes,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

macro_rules! scim_user_columns {
    () => {
        "u.id, u.user_name, u.external_id, u.active, u.created_at, u.updated_at, u.version"
    };
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

#[derive(FromRow)]
struct CountRow {
    n: i64,
}

/// Where a resource type's rows are, for [`SqlStore::scim_page`].
struct Listing {
    resource_type: ResourceType,
    select: &'static str,
    /// `FROM … WHERE <alias>.tenant_id = `, completed with the tenant.
    from: &'static str,
    /// `AND <alias>.<org column> = `, completed with the org.
    in_org: &'static str,
}

#[derive(FromRow)]
struct MemberRecord {
    member_id: Uuid,
    member_kind: String,
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
struct GroupCountRow {
    group_id: Uuid,
    n: i64,
}

#[derive(FromRow)]
struct UserGroupRecord {
    user_id: Uuid,
    group_id: Uuid,
    direct: i64,
    display_name: String,
}

#[derive(FromRow)]
struct OrgIdRow {
    org_id: Uuid,
}

/// Names the uniqueness rule a database refusal broke, for the SCIM `uniqueness` error.
fn name_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { constraint } => {
            let named = if constraint.contains("external_id") {
                "externalId"
            } else if constraint.contains("display_name") {
                "displayName"
            } else if constraint.contains("user_name") {
                "userName"
            } else {
                return StoreError::Conflict { constraint };
            };
            StoreError::Conflict {
                constraint: named.to_owned(),
            }
        }
        other => other,
    }
}

fn conflict(attribute: &str) -> StoreError {
    StoreError::Conflict {
        constraint: attribute.to_owned(),
    }
}

fn lock_clause(dialect: Dialect) -> &'static str {
    match dialect {
        // SQLite writers are already one at a time (the in-process queue and BEGIN IMMEDIATE).
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

/// What the audit log keeps of a User: everything but the (never stored) password.
fn user_audit(user: &ScimUserWrite) -> Value {
    json!({
        "userName": user.user_name,
        "externalId": user.external_id,
        "active": user.active,
        "attributes": user.attributes,
    })
}

fn stored_user_audit(user: &ScimUser) -> Value {
    json!({
        "userName": user.user_name,
        "externalId": user.external_id,
        "active": user.active,
        "attributes": user.attributes,
    })
}

fn sample(ids: &[Uuid]) -> &[Uuid] {
    &ids[..ids.len().min(AUDITED_IDS)]
}

async fn user_in_scope(
    conn: Conn<'_>,
    dialect: Dialect,
    scope: ScimScope,
    id: Uuid,
    with_document: bool,
    lock: bool,
) -> Result<ScimUser, StoreError> {
    let mut b = SqlBuilder::new(concat!("SELECT ", scim_user_columns!()));
    b.push(if with_document {
        ", u.attributes"
    } else {
        ", NULL AS attributes"
    });
    b.push(" FROM users u WHERE u.id = ")
        .push_bind(id)
        .push(" AND u.tenant_id = ")
        .push_bind(scope.tenant_id)
        .push(" AND u.scim_org_id = ")
        .push_bind(scope.org_id);
    if lock {
        b.push(lock_clause(dialect));
    }
    b.build()
        .fetch_one::<UserRecord>(conn)
        .await
        .map(ScimUser::from)
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

fn check_version(expected: Option<i64>, actual: i64) -> Result<(), StoreError> {
    match expected {
        Some(v) if v != actual => Err(StoreError::Precondition),
        _ => Ok(()),
    }
}

/// Orgs where the user is an Owner: deactivating or deleting them is checked against the Owner
/// rule there (and warned about, never refused: offboarding wins).
async fn owned_orgs(
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

/// The User a write leaves, without reading it back.
fn stored_user(
    id: Uuid,
    user: &ScimUserWrite,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
) -> ScimUser {
    ScimUser {
        id,
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        active: user.active,
        attributes: user.attributes.clone(),
        created_at,
        updated_at,
        version,
    }
}

/// Writes a User's columns; returns how many rows it changed. `only_unprovisioned`: only if
/// no org's SCIM provisions the user yet (linking an invited member).
async fn write_user_columns(
    tx: &mut WriteTx,
    scope: ScimScope,
    id: Uuid,
    user: &ScimUserWrite,
    at: DateTime<Utc>,
    only_unprovisioned: bool,
) -> Result<u64, StoreError> {
    sql(if only_unprovisioned {
        "UPDATE users SET user_name = $1, user_name_norm = $2, email = $3, email_norm = $4, \
         external_id = $5, external_id_norm = $6, display_name = $7, active = $8, attributes = $9, \
         attributes_cmp = $10, scim_org_id = $11, updated_at = $12, version = version + 1 \
         WHERE id = $13 AND tenant_id = $14 AND scim_org_id IS NULL"
    } else {
        "UPDATE users SET user_name = $1, user_name_norm = $2, email = $3, email_norm = $4, \
         external_id = $5, external_id_norm = $6, display_name = $7, active = $8, attributes = $9, \
         attributes_cmp = $10, scim_org_id = $11, updated_at = $12, version = version + 1 \
         WHERE id = $13 AND tenant_id = $14"
    })
    .bind(user.user_name.as_str())
    .bind(normalize(&user.user_name))
    .bind(user.email.clone())
    .bind(user.email.as_deref().map(normalize))
    .bind(user.external_id.clone())
    .bind(user.external_id.as_deref().map(normalize))
    .bind(user.display_name.clone())
    .bind(user.active)
    .bind(Value::Object(user.attributes.clone()))
    .bind(user.attributes_cmp.clone())
    .bind(scope.org_id)
    .bind(at)
    .bind(id)
    .bind(scope.tenant_id)
    .execute(tx.conn())
    .await
    .map_err(name_conflict)
}

/// Before a User or Group is deleted: it leaves every group that lists it (whose versions,
/// and so ETags, move), and the grants it held go. Returns how many grants went.
async fn forget_everywhere(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    kind: MemberKind,
    id: Uuid,
) -> Result<u64, StoreError> {
    sql(
        "UPDATE groups SET version = version + 1, updated_at = $1 WHERE tenant_id = $2 AND id IN \
         (SELECT group_id FROM group_members WHERE tenant_id = $2 AND member_id = $3)",
    )
    .bind(now())
    .bind(tenant_id)
    .bind(id)
    .execute(tx.conn())
    .await?;
    sql("DELETE FROM group_members WHERE tenant_id = $1 AND member_id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(tx.conn())
        .await?;
    sql("DELETE FROM grants WHERE tenant_id = $1 AND subject_kind = $2 AND subject_id = $3")
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(id)
        .execute(tx.conn())
        .await
}

/// Whether [`insert_user`] first makes sure the tenant has nobody with its userName or e-mail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Guard {
    NewPerson,
    None,
}

/// Inserts a SCIM User with its membership of the scope's org (one that inherits its role, so
/// it never overrides an Owner role held above it); returns how many users it inserted. On
/// PostgreSQL both rows go in one statement: every statement is a round trip, and every create
/// pays them.
async fn insert_user(
    tx: &mut WriteTx,
    dialect: Dialect,
    scope: ScimScope,
    id: Uuid,
    user: &ScimUserWrite,
    at: DateTime<Utc>,
    guard: Guard,
) -> Result<u64, StoreError> {
    let user_name_norm = normalize(&user.user_name);
    let mut b = SqlBuilder::new(match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => "WITH created AS (",
    });
    b.push(
        "INSERT INTO users (id, tenant_id, user_name, user_name_norm, email, email_norm, \
         external_id, external_id_norm, display_name, active, source, attributes, attributes_cmp, \
         scim_org_id, created_at, updated_at, version) SELECT ",
    );
    let values: [Arg; 16] = [
        id.into(),
        scope.tenant_id.into(),
        user.user_name.as_str().into(),
        user_name_norm.as_str().into(),
        user.email.clone().into(),
        user.email.as_deref().map(normalize).into(),
        user.external_id.clone().into(),
        user.external_id.as_deref().map(normalize).into(),
        user.display_name.clone().into(),
        user.active.into(),
        Source::Scim.as_str().into(),
        Value::Object(user.attributes.clone()).into(),
        user.attributes_cmp.clone().into(),
        scope.org_id.into(),
        at.into(),
        at.into(),
    ];
    for value in values {
        b.push_bind(value).push(", ");
    }
    b.push("1");
    if guard == Guard::NewPerson {
        let mut candidates = vec![user_name_norm.clone()];
        if let Some(email) = &user.email {
            candidates.push(normalize(email));
        }
        for (i, column) in [" AND user_name_norm IN (", " AND email_norm IN ("]
            .into_iter()
            .enumerate()
        {
            b.push(if i == 0 { " WHERE" } else { " AND" })
                .push(" NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = ")
                .push_bind(scope.tenant_id)
                .push(column);
            for (j, c) in candidates.iter().enumerate() {
                if j > 0 {
                    b.push(", ");
                }
                b.push_bind(c.clone());
            }
            b.push("))");
        }
    }
    if dialect == Dialect::Postgres {
        b.push(
            " RETURNING id, tenant_id, scim_org_id, created_at) INSERT INTO memberships \
             (tenant_id, org_id, user_id, role, source, created_at, updated_at) \
             SELECT tenant_id, scim_org_id, id, NULL, 'scim', created_at, created_at FROM created",
        );
    }
    let inserted = b.build().execute(tx.conn()).await.map_err(name_conflict)?;
    if dialect == Dialect::Sqlite && inserted > 0 {
        insert_membership(tx, scope, id, at).await?;
    }
    Ok(inserted)
}

/// A membership of the scope's org that inherits its role (never overriding an Owner role held
/// above it); an existing membership is kept as it is.
async fn insert_membership(
    tx: &mut WriteTx,
    scope: ScimScope,
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sql("INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6) ON CONFLICT (org_id, user_id) DO NOTHING")
    .bind(scope.tenant_id)
    .bind(scope.org_id)
    .bind(user_id)
    .bind(Source::Scim.as_str())
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Users of the tenant that are the same person as a new SCIM User: the same userName, or an
/// e-mail equal to its userName or e-mail. Two lookups joined by UNION, so each uses its own
/// index (an OR of the two made SQLite scan the tenant).
async fn same_person(
    conn: Conn<'_>,
    scope: ScimScope,
    user_name_norm: &str,
    email: Option<&str>,
) -> Result<Vec<SamePerson>, StoreError> {
    let mut candidates = vec![user_name_norm.to_owned()];
    if let Some(email) = email {
        candidates.push(normalize(email));
    }
    let mut b = SqlBuilder::new("");
    for (i, column) in [" AND user_name_norm IN (", " AND email_norm IN ("]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            b.push(" UNION ");
        }
        b.push(
            "SELECT id, user_name_norm, created_at, version FROM users \
             WHERE tenant_id = ",
        )
        .push_bind(scope.tenant_id)
        .push(column);
        for (j, c) in candidates.iter().enumerate() {
            if j > 0 {
                b.push(", ");
            }
            b.push_bind(c.clone());
        }
        b.push(")");
    }
    let mut found = b.build().fetch_all::<SamePerson>(conn).await?;
    found.sort_by_key(|e| e.id);
    Ok(found)
}

#[derive(FromRow)]
struct SamePerson {
    id: Uuid,
    user_name_norm: String,
    created_at: DateTime<Utc>,
    version: i64,
}

/// A person a SCIM create names, with what the link rule needs and what the reply needs.
struct StoredCandidate {
    link: LinkCandidate,
    created_at: DateTime<Utc>,
    version: i64,
}

#[derive(FromRow)]
struct HeldRow {
    id: Uuid,
    scim_org_id: Option<Uuid>,
}

#[derive(FromRow)]
struct UserOrgRow {
    user_id: Uuid,
    org_id: Uuid,
}

/// Everyone of the tenant that the new User's userName or e-mail names, with who holds them
/// and every org they reach (memberships and grants). On PostgreSQL their rows are locked
/// first and re-read: adding a membership takes a key-share lock on the user row (the foreign
/// key), so a membership added concurrently either committed before these reads or waits for
/// this transaction — the rule never judges a person on a stale picture.
async fn link_candidates(
    tx: &mut WriteTx,
    dialect: Dialect,
    scope: ScimScope,
    user_name_norm: &str,
    user: &ScimUserWrite,
) -> Result<Vec<StoredCandidate>, StoreError> {
    let found = same_person(tx.conn(), scope, user_name_norm, user.email.as_deref()).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = found.iter().map(|f| f.id).collect();
    let mut held = SqlBuilder::new("SELECT id, scim_org_id FROM users WHERE tenant_id = ");
    held.push_bind(scope.tenant_id).push(" AND id IN (");
    push_list(&mut held, &ids);
    held.push(") ORDER BY id").push(lock_clause(dialect));
    let held = held.build().fetch_all::<HeldRow>(tx.conn()).await?;
    let mut reach = SqlBuilder::new("SELECT user_id, org_id FROM memberships WHERE tenant_id = ");
    reach.push_bind(scope.tenant_id).push(" AND user_id IN (");
    push_list(&mut reach, &ids);
    reach
        .push(") UNION SELECT subject_id AS user_id, org_id FROM grants WHERE tenant_id = ")
        .push_bind(scope.tenant_id)
        .push(" AND subject_kind = 'user' AND subject_id IN (");
    push_list(&mut reach, &ids);
    reach.push(")");
    let reach = reach.build().fetch_all::<UserOrgRow>(tx.conn()).await?;
    Ok(found
        .into_iter()
        .filter_map(|f| {
            // Deleted between the two reads: nobody to link.
            let held_by = held.iter().find(|h| h.id == f.id)?.scim_org_id;
            Some(StoredCandidate {
                link: LinkCandidate {
                    user_id: f.id,
                    held_by,
                    orgs: reach
                        .iter()
                        .filter(|r| r.user_id == f.id)
                        .map(|r| r.org_id)
                        .collect(),
                    same_user_name: f.user_name_norm == user_name_norm,
                },
                created_at: f.created_at,
                version: f.version,
            })
        })
        .collect())
}

#[derive(FromRow)]
struct HolderRow {
    tenant_id: Uuid,
    scim_org_id: Option<Uuid>,
}

#[derive(FromRow)]
struct ExternalIdRow {
    external_id: Option<String>,
}

/// The SCIM answer to a refused link: the token's own resources are named, anyone else's
/// whereabouts are not.
fn link_refused(refusal: LinkRefusal) -> StoreError {
    conflict(match refusal {
        LinkRefusal::UserNameTaken => "userName",
        LinkRefusal::NotLinkable => "person",
    })
}

/// Warns (audit + metric) for every org left without an active Owner by this user's change.
async fn owner_rule_after(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    orgs: &[Uuid],
) -> Result<(), StoreError> {
    for org in orgs {
        check_owner_rule(tx, tenant_id, *org, OwnerRule::Warn).await?;
    }
    Ok(())
}

impl SqlStore {
    pub(super) fn dialect(&self) -> Dialect {
        match self.db.pool {
            super::db::Pool::Sqlite(_) => Dialect::Sqlite,
            super::db::Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(super) async fn scim_create_user_impl(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError> {
        // One person, one user: an invited or hand-added member with this userName or e-mail
        // who is not yet any org's SCIM resource becomes this one. The common case — nobody
        // in the tenant is this person yet — is one statement that inserts only if so; only
        // when it inserts nothing are the others looked at. A userName or externalId taken
        // meanwhile is the unique indexes' to refuse (`name_conflict` says which).
        let user_name_norm = normalize(&user.user_name);
        let dialect = self.dialect();
        let mut tx = self.db.begin_write(ctx, scope.tenant_id).await?;
        let at = now();
        let id = Uuid::now_v7();
        let (id, created_at, version) =
            if insert_user(&mut tx, dialect, scope, id, user, at, Guard::NewPerson).await? > 0 {
                tx.audit(
                    AuditRecord::new("scim.user.create", "user", id)
                        .org(scope.org_id)
                        .after(user_audit(user)),
                );
                (id, at, 1)
            } else {
                let candidates =
                    link_candidates(&mut tx, dialect, scope, &user_name_norm, user).await?;
                let tree = tenant_tree(tx.conn(), scope.tenant_id).await?;
                let rule_input: Vec<LinkCandidate> =
                    candidates.iter().map(|c| c.link.clone()).collect();
                match link_decision(&tree, scope.org_id, &rule_input).map_err(link_refused)? {
                    Some(person) => {
                        let linked = candidates
                            .iter()
                            .find(|c| c.link.user_id == person)
                            .ok_or(StoreError::NotFound)?;
                        let (created_at, version) = (linked.created_at, linked.version);
                        if write_user_columns(&mut tx, scope, person, user, at, true).await? == 0 {
                            return Err(conflict("person"));
                        }
                        insert_membership(&mut tx, scope, person, at).await?;
                        tx.audit(
                            AuditRecord::new("scim.user.link", "user", person)
                                .org(scope.org_id)
                                .after(user_audit(user)),
                        );
                        (person, created_at, version + 1)
                    }
                    // Named nobody after all (removed meanwhile): a new person; the unique
                    // indexes refuse a userName taken meanwhile.
                    None => {
                        insert_user(&mut tx, dialect, scope, id, user, at, Guard::None).await?;
                        tx.audit(
                            AuditRecord::new("scim.user.create", "user", id)
                                .org(scope.org_id)
                                .after(user_audit(user)),
                        );
                        (id, at, 1)
                    }
                }
            };
        if !user.active {
            let orgs = owned_orgs(&mut tx, scope.tenant_id, id).await?;
            owner_rule_after(&mut tx, scope.tenant_id, &orgs).await?;
        }
        tx.invalidate_user(id);
        tx.commit().await?;
        Ok(stored_user(id, user, created_at, at, version))
    }

    pub(super) async fn scim_get_user_impl(
        &self,
        scope: ScimScope,
        id: Uuid,
        with_document: bool,
    ) -> Result<ScimUser, StoreError> {
        let mut h = self.db.read().await?;
        user_in_scope(h.conn(), self.dialect(), scope, id, with_document, false).await
    }

    pub(super) async fn scim_list_users_impl(
        &self,
        scope: ScimScope,
        q: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimUser>, StoreError> {
        let listing = Listing {
            resource_type: ResourceType::User,
            select: if q.with_document {
                concat!("SELECT ", scim_user_columns!(), ", u.attributes")
            } else {
                concat!("SELECT ", scim_user_columns!(), ", NULL AS attributes")
            },
            from: " FROM users u WHERE u.tenant_id = ",
            in_org: " AND u.scim_org_id = ",
        };
        let (total, rows) = self.scim_page::<UserRecord>(&listing, scope, q).await?;
        Ok(ScimPage {
            total,
            items: rows.into_iter().map(ScimUser::from).collect(),
        })
    }

    /// One page of a resource type's rows in the scope, and how many match in all.
    async fn scim_page<R: Record>(
        &self,
        listing: &Listing,
        scope: ScimScope,
        q: &ScimListQuery<'_>,
    ) -> Result<(u64, Vec<R>), StoreError> {
        let dialect = self.dialect();
        let where_clause = |b: &mut SqlBuilder| -> Result<(), StoreError> {
            b.push(listing.from)
                .push_bind(scope.tenant_id)
                .push(listing.in_org)
                .push_bind(scope.org_id);
            if let Some(filter) = q.filter {
                b.push(" AND ");
                Translator::new(b, dialect, q.schemas, listing.resource_type)
                    .filter(filter)
                    .map_err(|u| StoreError::InvalidQuery(u.0))?;
            }
            Ok(())
        };
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS n");
        where_clause(&mut count)?;
        let mut page = SqlBuilder::new(listing.select);
        where_clause(&mut page)?;
        Translator::new(&mut page, dialect, q.schemas, listing.resource_type)
            .order_by(q.sort)
            .map_err(|u| StoreError::InvalidQuery(u.0))?;
        page.push(" LIMIT ")
            .push_bind(i64::try_from(q.count).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
        let mut h = self.db.read().await?;
        let rows = if q.count == 0 {
            Vec::new()
        } else {
            page.build().fetch_all::<R>(h.conn()).await?
        };
        let len = rows.len() as u64;
        // A short page that starts inside the results ends them: it already says how many
        // there are (Okta's and Entra's lookups by userName or externalId are all like that).
        let total = if q.count > 0 && len < q.count && (len > 0 || q.offset == 0) {
            q.offset + len
        } else {
            u64::try_from(count.build().fetch_one::<CountRow>(h.conn()).await?.n).unwrap_or(0)
        };
        Ok((total, rows))
    }

    pub(super) async fn scim_replace_user_impl(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError> {
        let dialect = self.dialect();
        let mut tx = self.db.begin_write(ctx, scope.tenant_id).await?;
        let before = user_in_scope(tx.conn(), dialect, scope, id, true, true).await?;
        check_version(expected_version, before.version)?;
        let unchanged = before.user_name == user.user_name
            && before.external_id == user.external_id
            && before.active == user.active
            && before.attributes == user.attributes;
        if unchanged {
            // A retried PUT or a PATCH that changes nothing writes nothing (and keeps its ETag).
            return Ok(before);
        }
        let at = now();
        write_user_columns(&mut tx, scope, id, user, at, false).await?;
        let action = match (before.active, user.active) {
            (true, false) => "scim.user.deactivate",
            (false, true) => "scim.user.reactivate",
            _ => "scim.user.replace",
        };
        tx.audit(
            AuditRecord::new(action, "user", id)
                .org(scope.org_id)
                .before(stored_user_audit(&before))
                .after(user_audit(user)),
        );
        if before.active && !user.active {
            let orgs = owned_orgs(&mut tx, scope.tenant_id, id).await?;
            owner_rule_after(&mut tx, scope.tenant_id, &orgs).await?;
        }
        tx.invalidate_user(id);
        tx.commit().await?;
        Ok(stored_user(
            id,
            user,
            before.created_at,
            at,
            before.version + 1,
        ))
    }

    pub(super) async fn scim_delete_user_impl(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let mut tx = self.db.begin_write(ctx, scope.tenant_id).await?;
        let before = user_in_scope(tx.conn(), dialect, scope, id, true, true).await?;
        check_version(expected_version, before.version)?;
        let orgs = owned_orgs(&mut tx, scope.tenant_id, id).await?;
        let grants = forget_everywhere(&mut tx, scope.tenant_id, MemberKind::User, id).await?;
        // Memberships and identities go with the row (ON DELETE CASCADE).
        sql("DELETE FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(scope.tenant_id)
            .execute(tx.conn())
            .await?;
        tx.audit(
            AuditRecord::new("scim.user.delete", "user", id)
                .org(scope.org_id)
                .before(json!({ "user": stored_user_audit(&before), "grants": grants })),
        );
        owner_rule_after(&mut tx, scope.tenant_id, &orgs).await?;
        tx.invalidate_user(id);
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn scim_holder_impl(
        &self,
        user_id: Uuid,
    ) -> Result<(Uuid, Option<Uuid>), StoreError> {
        let mut h = self.db.read().await?;
        let row = sql("SELECT tenant_id, scim_org_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one::<HolderRow>(h.conn())
            .await?;
        Ok((row.tenant_id, row.scim_org_id))
    }

    pub(super) async fn scim_release_user_impl(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        user_id: Uuid,
        from: Uuid,
        to: Option<Uuid>,
    ) -> Result<ScimRelease, StoreError> {
        let dialect = self.dialect();
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let mut held = SqlBuilder::new("SELECT id, scim_org_id FROM users WHERE id = ");
        held.push_bind(user_id)
            .push(" AND tenant_id = ")
            .push_bind(tenant_id)
            .push(lock_clause(dialect));
        let held = held.build().fetch_one::<HeldRow>(tx.conn()).await?;
        match held.scim_org_id {
            None => {
                return Err(StoreError::Rule(
                    "not_held: no SCIM token provisions this user; there is nothing to release"
                        .into(),
                ));
            }
            // Another release (or a link) got there first: the caller checked its reach over
            // `from`, not over whoever holds the person now.
            Some(holder) if holder != from => return Err(StoreError::Precondition),
            Some(_) => {}
        }
        if let Some(to) = to {
            org_in_tenant(tx.conn(), tenant_id, to).await?;
        }
        let at = now();
        // The releasing org's SCIM groups must not list someone its token can no longer see.
        let groups_left = sql(
            "UPDATE groups SET version = version + 1, updated_at = $1 WHERE tenant_id = $2 \
             AND org_id = $3 AND id IN (SELECT group_id FROM group_members WHERE tenant_id = $2 \
             AND member_kind = 'user' AND member_id = $4)",
        )
        .bind(at)
        .bind(tenant_id)
        .bind(from)
        .bind(user_id)
        .execute(tx.conn())
        .await?;
        sql(
            "DELETE FROM group_members WHERE tenant_id = $1 AND member_kind = 'user' \
             AND member_id = $2 AND group_id IN (SELECT id FROM groups WHERE tenant_id = $1 \
             AND org_id = $3)",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(from)
        .execute(tx.conn())
        .await?;
        // Only the membership SCIM made (inheriting, source scim); one an admin gave a role or
        // an invitation made stays.
        let membership_removed = sql(
            "DELETE FROM memberships WHERE tenant_id = $1 AND org_id = $2 AND user_id = $3 \
             AND source = 'scim' AND role IS NULL",
        )
        .bind(tenant_id)
        .bind(from)
        .bind(user_id)
        .execute(tx.conn())
        .await?
            > 0;
        if membership_removed {
            sql("DELETE FROM grants WHERE tenant_id = $1 AND org_id = $2 \
                 AND subject_kind = 'user' AND subject_id = $3")
            .bind(tenant_id)
            .bind(from)
            .bind(user_id)
            .execute(tx.conn())
            .await?;
        }
        let before = sql("SELECT external_id FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(user_id)
            .bind(tenant_id)
            .fetch_one::<ExternalIdRow>(tx.conn())
            .await?;
        sql(
            "UPDATE users SET scim_org_id = NULL, external_id = NULL, external_id_norm = NULL, \
             updated_at = $1, version = version + 1 WHERE id = $2 AND tenant_id = $3",
        )
        .bind(at)
        .bind(user_id)
        .bind(tenant_id)
        .execute(tx.conn())
        .await?;
        if let Some(to) = to {
            sql(
                "INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, \
                 updated_at) VALUES ($1, $2, $3, NULL, $4, $5, $5) \
                 ON CONFLICT (org_id, user_id) DO NOTHING",
            )
            .bind(tenant_id)
            .bind(to)
            .bind(user_id)
            .bind(Source::Manual.as_str())
            .bind(at)
            .execute(tx.conn())
            .await?;
        }
        let release = ScimRelease {
            user_id,
            released_from_org_id: from,
            to_org_id: to,
            membership_removed,
            groups_left,
        };
        tx.audit(
            AuditRecord::new("scim.user.release", "user", user_id)
                .org(from)
                .before(json!({ "scim_org_id": from, "externalId": before.external_id }))
                .after(&release),
        );
        if membership_removed {
            check_owner_rule(&mut tx, tenant_id, from, OwnerRule::Enforce).await?;
        }
        tx.invalidate_user(user_id);
        tx.commit().await?;
        Ok(release)
    }

    /// The groups (of the scope's org) each user belongs to, directly or through nested groups,
    /// for a whole page of users in one query.
    pub(super) async fn scim_user_groups_impl(
        &self,
        scope: ScimScope,
        user_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, ScimUserGroup)>, StoreError> {
        let mut out = Vec::new();
        let mut h = self.db.read().await?;
        for chunk in user_ids.chunks(ID_CHUNK) {
            let mut b = SqlBuilder::new(
                "WITH RECURSIVE up(user_id, group_id, direct) AS (\
                 SELECT member_id, group_id, CAST(1 AS BIGINT) FROM group_members \
                 WHERE tenant_id = ",
            );
            b.push_bind(scope.tenant_id)
                .push(" AND member_kind = 'user' AND member_id IN (");
            push_list(&mut b, chunk);
            b.push(
                ") UNION SELECT up.user_id, gm.group_id, CAST(0 AS BIGINT) FROM group_members gm \
                 JOIN up ON gm.member_id = up.group_id AND gm.member_kind = 'group' \
                 WHERE gm.tenant_id = ",
            );
            b.push_bind(scope.tenant_id).push(
                ") SELECT up.user_id, up.group_id, MAX(up.direct) AS direct, g.display_name \
                 FROM up JOIN groups g ON g.id = up.group_id WHERE g.tenant_id = ",
            );
            b.push_bind(scope.tenant_id).push(" AND g.org_id = ");
            b.push_bind(scope.org_id).push(
                " GROUP BY up.user_id, up.group_id, g.display_name ORDER BY up.user_id, up.group_id",
            );
            let rows = b.build().fetch_all::<UserGroupRecord>(h.conn()).await?;
            out.extend(rows.into_iter().map(|r| {
                (
                    r.user_id,
                    ScimUserGroup {
                        group_id: r.group_id,
                        display: r.display_name,
                        direct: r.direct == 1,
                    },
                )
            }));
        }
        Ok(out)
    }

    pub(super) async fn scim_create_group_impl(
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

    pub(super) async fn scim_get_group_impl(
        &self,
        scope: ScimScope,
        id: Uuid,
    ) -> Result<ScimGroup, StoreError> {
        let mut h = self.db.read().await?;
        group_in_scope(h.conn(), self.dialect(), scope, id, false).await
    }

    pub(super) async fn scim_list_groups_impl(
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
    pub(super) async fn scim_group_members_impl(
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

    pub(super) async fn scim_group_member_counts_impl(
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

    pub(super) async fn scim_group_members_after_impl(
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

    pub(super) async fn scim_update_group_impl(
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

    pub(super) async fn scim_delete_group_impl(
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

/// What a series of membership changes did.
#[derive(Default)]
struct ChangeSummary {
    added: Vec<Uuid>,
    removed: Vec<Uuid>,
    added_count: u64,
    removed_count: u64,
}

impl ChangeSummary {
    fn any(&self) -> bool {
        self.added_count > 0 || self.removed_count > 0
    }

    fn to_json(&self) -> Value {
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
             FROM group_members gm JOIN down ON gm.group_id = down.id \
             WHERE gm.tenant_id = $3 AND gm.member_kind = 'group') \
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

async fn apply_member_changes(
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
