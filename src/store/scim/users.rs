//! SCIM Users: a row of `users` that the token's org provisions (`scim_org_id`), linked to the
//! tenant's existing person where the link rule allows (one person, one user), and released
//! from a token's hold on purpose.

use crate::domain::session::EndReason;
use crate::store::sessions::end_sessions_in;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::filter_sql::Dialect;
use super::{
    ID_CHUNK, Listing, ScimListQuery, ScimPage, check_version, forget_everywhere, lock_clause,
    name_conflict,
};
use crate::domain::audit::AuditRecord;
use crate::domain::group::MemberKind;
use crate::domain::org::Org;
use crate::domain::provisioning::{
    LinkCandidate, LinkRefusal, ScimHold, ScimRelease, ScimScope, ScimUser, ScimUserGroup,
    ScimUserWrite, link_decision,
};
use crate::domain::{Source, normalize, now};
use crate::scim_proto::schema::ResourceType;
use crate::store::db::{
    Arg, AsConn, Conn, Ctx, SqlBuilder, WriteTx, load_in_tenant, push_list, sql,
};
use crate::store::team::{OwnerRule, check_owner_rule, owned_orgs, tenant_tree};
use crate::store::{SqlStore, StoreError};

#[async_trait]
pub trait ScimUserStore {
    /// Creates a SCIM User in the scope's org, or makes the tenant's not-yet-provisioned user
    /// with that userName or e-mail this SCIM User (one person, one user). A taken userName or
    /// externalId is `Conflict` naming the attribute, and changes nothing. The answer's version
    /// is 1 exactly when this call made a new person (a linked one was at 1 or more already).
    async fn scim_create_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError>;
    async fn scim_get_user(
        &self,
        scope: ScimScope,
        id: Uuid,
        with_document: bool,
    ) -> Result<ScimUser, StoreError>;
    async fn scim_list_users(
        &self,
        scope: ScimScope,
        query: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimUser>, StoreError>;
    /// Replaces a User (`Precondition` when `expected_version` is not the stored one). A
    /// replace that changes nothing writes nothing.
    async fn scim_replace_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError>;
    /// Deletes a User for good, with its memberships, group memberships and grants.
    async fn scim_delete_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError>;
    /// The tenant of a user, and the org whose SCIM token holds them (if any). Looks in every
    /// tenant: the admin API checks the tenant itself, the command line has none.
    async fn scim_holder(&self, user_id: Uuid) -> Result<(Uuid, Option<Uuid>), StoreError>;
    /// Hands a person held by `from`'s SCIM over, on purpose: the hold and its externalId go,
    /// the person leaves `from`'s SCIM groups and the membership that SCIM made (with the
    /// grants given in `from`), and becomes a member of `to` (inheriting) when it is named.
    /// `Precondition` when `from` no longer holds the person; `Rule` when nobody does.
    async fn scim_release_user(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        user_id: Uuid,
        from: Uuid,
        to: Option<Uuid>,
    ) -> Result<ScimRelease, StoreError>;
    /// Who provisions the tenant's user, as an admin is told: the holding org and the SCIM
    /// tokens to name. `None` when no org's SCIM holds them; `NotFound` for no such user.
    async fn scim_managed_by(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<ScimHold>, StoreError>;
    /// `(user id, group)` for every group of the scope's org each user is in, directly or not.
    async fn scim_user_groups(
        &self,
        scope: ScimScope,
        user_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, ScimUserGroup)>, StoreError>;
}

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
struct UserGroupRecord {
    user_id: Uuid,
    group_id: Uuid,
    direct: i64,
    display_name: String,
}

fn conflict(attribute: &str) -> StoreError {
    StoreError::Conflict {
        constraint: attribute.to_owned(),
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
    let mut b = SqlBuilder::new(match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => "WITH created AS (",
    });
    push_user_insert(&mut b, scope, id, user, at, guard);
    if dialect == Dialect::Postgres {
        b.push(" RETURNING id, tenant_id, scim_org_id, created_at) ")
            .push(MEMBERSHIP_OF_CREATED);
    }
    let inserted = b.build().execute(tx.conn()).await.map_err(name_conflict)?;
    if dialect == Dialect::Sqlite && inserted > 0 {
        insert_membership(tx, scope, id, at).await?;
    }
    Ok(inserted)
}

/// The membership of a user inserted by the `WITH created AS (… RETURNING id, tenant_id,
/// scim_org_id, created_at)` before it.
const MEMBERSHIP_OF_CREATED: &str = "INSERT INTO memberships (tenant_id, org_id, user_id, role, \
    source, created_at, updated_at) \
    SELECT tenant_id, scim_org_id, id, NULL, 'scim', created_at, created_at FROM created";

/// PostgreSQL's common create — nobody in the tenant is this person yet — as one statement with
/// its membership, audit event and invalidation ([`Db::write_new_rows`]); `false` if the tenant
/// has someone by this userName or e-mail after all (nothing was written).
async fn create_new_person(
    store: &SqlStore,
    ctx: &Ctx,
    scope: ScimScope,
    id: Uuid,
    user: &ScimUserWrite,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut b = SqlBuilder::new("WITH created AS (");
    push_user_insert(&mut b, scope, id, user, at, Guard::NewPerson);
    b.push(" RETURNING id, tenant_id, scim_org_id, created_at), membership AS (")
        .push(MEMBERSHIP_OF_CREATED)
        .push(" RETURNING user_id), changed AS (SELECT user_id FROM membership)");
    let written = store
        .db
        .write_new_rows(
            ctx,
            scope.tenant_id,
            b,
            vec![creation_audit(scope, id, user)],
            &[id],
        )
        .await
        .map_err(name_conflict)?;
    Ok(written.is_some())
}

/// The audit record of a SCIM create that made a new person.
fn creation_audit(scope: ScimScope, id: Uuid, user: &ScimUserWrite) -> AuditRecord {
    AuditRecord::new("scim.user.create", "user", id)
        .org(scope.org_id)
        .after(user_audit(user))
}

/// The `INSERT … SELECT` of a SCIM User (no membership, no `RETURNING`); with
/// [`Guard::NewPerson`] it inserts only if nobody in the tenant has its userName or e-mail as
/// either.
fn push_user_insert(
    b: &mut SqlBuilder,
    scope: ScimScope,
    id: Uuid,
    user: &ScimUserWrite,
    at: DateTime<Utc>,
    guard: Guard,
) {
    let user_name_norm = normalize(&user.user_name);
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
        let mut candidates = vec![user_name_norm];
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
}

/// A membership of the scope's org that inherits its role (never overriding an Owner role held
/// above it); an existing membership is kept as it is.
async fn insert_membership(
    tx: &mut WriteTx,
    scope: ScimScope,
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    sql("INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, updated_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6) ON CONFLICT (org_id, user_id) DO NOTHING")
    .bind(scope.tenant_id)
    .bind(scope.org_id)
    .bind(user_id)
    .bind(Source::Scim.as_str())
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await
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

#[async_trait]
impl ScimUserStore for SqlStore {
    async fn scim_create_user(
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
        let at = now();
        let id = Uuid::now_v7();
        // On PostgreSQL that statement is the whole write (`create_new_person`), unless the
        // user arrives deactivated: that create also checks the Owner rule and sessions.
        let one_statement = dialect == Dialect::Postgres && user.active;
        if one_statement && create_new_person(self, ctx, scope, id, user, at).await? {
            return Ok(stored_user(id, user, at, at, 1));
        }
        let mut tx = self.db.begin_write(ctx, scope.tenant_id).await?;
        let (id, created_at, version) = if !one_statement
            && insert_user(&mut tx, dialect, scope, id, user, at, Guard::NewPerson).await? > 0
        {
            tx.audit(creation_audit(scope, id, user));
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
                    tx.audit(creation_audit(scope, id, user));
                    (id, at, 1)
                }
            }
        };
        if !user.active {
            let orgs = owned_orgs(&mut tx, scope.tenant_id, id).await?;
            owner_rule_after(&mut tx, scope.tenant_id, &orgs).await?;
            end_sessions_in(&mut tx, scope.tenant_id, id, EndReason::UserDeactivated).await?;
        }
        if version == 1 {
            tx.invalidate_new_user(id);
        } else {
            tx.invalidate_user(id);
        }
        tx.commit().await?;
        Ok(stored_user(id, user, created_at, at, version))
    }

    async fn scim_get_user(
        &self,
        scope: ScimScope,
        id: Uuid,
        with_document: bool,
    ) -> Result<ScimUser, StoreError> {
        let mut h = self.db.read().await?;
        user_in_scope(h.conn(), self.dialect(), scope, id, with_document, false).await
    }

    async fn scim_list_users(
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

    async fn scim_replace_user(
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
        let mut after = user_audit(user);
        if !before.active && user.active {
            // An explicit re-activation is the IdP saying the person belongs here: it brings
            // back the membership its SCIM makes, should an admin have removed it (with
            // `?force=true`, which deactivated them). Grants given in the org stay gone. A
            // membership that is there is kept as it is.
            let restored = insert_membership(&mut tx, scope, id, at).await? > 0;
            after["membership_restored"] = json!(restored);
        }
        tx.audit(
            AuditRecord::new(action, "user", id)
                .org(scope.org_id)
                .before(stored_user_audit(&before))
                .after(after),
        );
        if before.active && !user.active {
            let orgs = owned_orgs(&mut tx, scope.tenant_id, id).await?;
            owner_rule_after(&mut tx, scope.tenant_id, &orgs).await?;
            // Deactivated users have no sessions: ended here, in the same transaction, and the
            // invalidation naming the user reaches every instance's session check.
            end_sessions_in(&mut tx, scope.tenant_id, id, EndReason::UserDeactivated).await?;
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

    async fn scim_delete_user(
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
        // Ended (and audited) before the row takes them with it (ON DELETE CASCADE).
        end_sessions_in(&mut tx, scope.tenant_id, id, EndReason::UserDeleted).await?;
        crate::store::team::revoke_tokens_of_deleted(&mut tx, scope.tenant_id, id).await?;
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

    async fn scim_holder(&self, user_id: Uuid) -> Result<(Uuid, Option<Uuid>), StoreError> {
        let mut h = self.db.read().await?;
        let row = sql("SELECT tenant_id, scim_org_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one::<HolderRow>(h.conn())
            .await?;
        Ok((row.tenant_id, row.scim_org_id))
    }

    async fn scim_release_user(
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
            load_in_tenant::<Org>(tx.conn(), tenant_id, to).await?;
        }
        let at = now();
        // The releasing org's SCIM groups must not list someone its token can no longer see.
        let groups_left = leave_org_groups(&mut tx, tenant_id, from, user_id, at).await?;
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

    async fn scim_managed_by(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<ScimHold>, StoreError> {
        let mut h = self.db.read().await?;
        scim_hold(&mut h, tenant_id, user_id).await
    }

    /// The groups (of the scope's org) each user belongs to, directly or through nested groups,
    /// for a whole page of users in one query.
    async fn scim_user_groups(
        &self,
        scope: ScimScope,
        user_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, ScimUserGroup)>, StoreError> {
        let mut out = Vec::new();
        let mut h = self.db.read().await?;
        for chunk in user_ids.chunks(ID_CHUNK) {
            // `up CROSS JOIN group_members`, not `group_members JOIN up`: SQLite (3.51) ran the
            // recursive step with `group_members` outside, reading every membership row of the
            // tenant on each lookup (1 ms per 10,000 rows, 7 ms in the bench); `CROSS JOIN`
            // keeps its order on SQLite, so each step is an index search by member. PostgreSQL
            // plans it as the inner join it is.
            let mut b = SqlBuilder::new(
                "WITH RECURSIVE up(user_id, group_id, direct) AS (\
                 SELECT member_id, group_id, CAST(1 AS BIGINT) FROM group_members \
                 WHERE tenant_id = ",
            );
            b.push_bind(scope.tenant_id)
                .push(" AND member_kind = 'user' AND member_id IN (");
            push_list(&mut b, chunk);
            b.push(
                ") UNION SELECT up.user_id, gm.group_id, CAST(0 AS BIGINT) \
                 FROM up CROSS JOIN group_members gm \
                 WHERE gm.member_id = up.group_id AND gm.member_kind = 'group' AND gm.tenant_id = ",
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
}

/// The person leaves `org_id`'s SCIM groups (whose versions, and so ETags, move); returns how
/// many they left.
async fn leave_org_groups(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    org_id: Uuid,
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let left = sql(
        "UPDATE groups SET version = version + 1, updated_at = $1 WHERE tenant_id = $2 \
         AND org_id = $3 AND id IN (SELECT group_id FROM group_members WHERE tenant_id = $2 \
         AND member_kind = 'user' AND member_id = $4)",
    )
    .bind(at)
    .bind(tenant_id)
    .bind(org_id)
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
    .bind(org_id)
    .execute(tx.conn())
    .await?;
    Ok(left)
}

#[derive(FromRow)]
struct HoldRow {
    org_id: Uuid,
    org_name: String,
}

#[derive(FromRow)]
struct LiveTokenRow {
    id: Uuid,
    name: String,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct ActorRow {
    actor_id: Option<String>,
}

/// Who provisions the user (see [`ScimHold`]); `None` when nobody's SCIM does.
pub(in crate::store) async fn scim_hold(
    conn: &mut impl AsConn,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Option<ScimHold>, StoreError> {
    let holder = sql(
        "SELECT o.id AS org_id, o.name AS org_name FROM users u JOIN orgs o \
         ON o.id = u.scim_org_id AND o.tenant_id = u.tenant_id \
         WHERE u.id = $1 AND u.tenant_id = $2",
    )
    .bind(user_id)
    .bind(tenant_id)
    .fetch_optional::<HoldRow>(conn.conn())
    .await?;
    let Some(holder) = holder else {
        // No such user, or nobody holds them: which one is the caller's to tell apart.
        load_in_tenant::<crate::domain::user::User>(conn.conn(), tenant_id, user_id).await?;
        return Ok(None);
    };
    let at = now();
    let live: Vec<LiveTokenRow> = sql(
        "SELECT id, name, expires_at FROM api_tokens WHERE tenant_id = $1 AND org_id = $2 \
         AND kind = 'scim' AND revoked_at IS NULL ORDER BY id",
    )
    .bind(tenant_id)
    .bind(holder.org_id)
    .fetch_all::<LiveTokenRow>(conn.conn())
    .await?
    .into_iter()
    .filter(|t| t.expires_at.is_none_or(|e| e > at))
    .collect();
    // Several live tokens (a rotation in progress, or two IdPs on one org): the one that last
    // wrote the person is the IdP the admin has to go to. The audit log is the only record of
    // it; read only here, on an admin's error or warning path, never on SCIM's.
    let mut tokens: Vec<String> = live.iter().map(|t| t.name.clone()).collect();
    if live.len() > 1 {
        let last = sql(
            "SELECT actor_id FROM audit_events WHERE tenant_id = $1 AND target_kind = 'user' \
             AND target_id = $2 AND actor_kind = 'scim_token' ORDER BY id DESC LIMIT 1",
        )
        .bind(tenant_id)
        .bind(user_id.to_string())
        .fetch_optional::<ActorRow>(conn.conn())
        .await?
        .and_then(|r| r.actor_id)
        .and_then(|id| Uuid::parse_str(&id).ok());
        if let Some(writer) = live.iter().find(|t| Some(t.id) == last) {
            tokens = vec![writer.name.clone()];
        }
    }
    Ok(Some(ScimHold {
        org_id: holder.org_id,
        org_name: holder.org_name,
        tokens,
    }))
}

#[derive(FromRow)]
struct DocumentRow {
    active: bool,
    attributes: Json<Value>,
    attributes_cmp: Json<Value>,
}

/// What deactivating a person for SCIM, on an admin's forced removal, did.
pub(in crate::store) struct ForcedDeactivation {
    /// Whether they were active until now (an IdP may have deactivated them already).
    pub deactivated: bool,
    pub groups_left: u64,
}

/// The SCIM side of an admin removing, with `force`, the membership of a person `org_id`'s SCIM
/// holds: the person leaves that org's SCIM groups and becomes `active: false` in their SCIM
/// document, which is what the IdP reads back, so the IdP's next GET sees the removal instead
/// of a person it believes is still provisioned. The hold stays: the IdP still manages them.
pub(in crate::store) async fn deactivate_for_forced_removal(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<ForcedDeactivation, StoreError> {
    let at = now();
    let groups_left = leave_org_groups(tx, tenant_id, org_id, user_id, at).await?;
    let doc = sql(
        "SELECT active, attributes, attributes_cmp FROM users WHERE id = $1 AND tenant_id = $2",
    )
    .bind(user_id)
    .bind(tenant_id)
    .fetch_one::<DocumentRow>(tx.conn())
    .await?;
    let deactivated = doc.active;
    if deactivated {
        // `active` is a boolean: the comparison document (case-folded strings) holds it as
        // the stored document does, so both are set alike, with no schema needed.
        let (mut attributes, mut attributes_cmp) = (doc.attributes.0, doc.attributes_cmp.0);
        for document in [&mut attributes, &mut attributes_cmp] {
            if let Value::Object(map) = document {
                map.insert("active".into(), Value::Bool(false));
            }
        }
        sql(
            "UPDATE users SET active = $1, attributes = $2, attributes_cmp = $3, updated_at = $4, \
             version = version + 1 WHERE id = $5 AND tenant_id = $6",
        )
        .bind(false)
        .bind(attributes)
        .bind(attributes_cmp)
        .bind(at)
        .bind(user_id)
        .bind(tenant_id)
        .execute(tx.conn())
        .await?;
    } else if groups_left > 0 {
        // The User's `groups` changed: its version (ETag) moves with it.
        sql(
            "UPDATE users SET updated_at = $1, version = version + 1 WHERE id = $2 \
             AND tenant_id = $3",
        )
        .bind(at)
        .bind(user_id)
        .bind(tenant_id)
        .execute(tx.conn())
        .await?;
    }
    Ok(ForcedDeactivation {
        deactivated,
        groups_left,
    })
}
