//! The `Store` implementation, written once for both backends.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sqlx::FromRow;
use sqlx::types::Json;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::db::{Conn, Ctx, Db, Pool, SqlBuilder, WriteTx, sql};
use super::{
    AcceptOutcome, AuditQuery, Backend, Invalidation, InvitationTarget, InviteOutcome, MemberQuery,
    MemberRef, MembershipChange, NewEnvironment, NewInvitation, NewToken, OrgMember, OutboxMail,
    OwnerRule, PoolStats, ProductAccess, ScimGroupWrite, ScimListQuery, ScimPage, Store,
    StoreError, TokenMatch,
};
use crate::domain::audit::{AuditEvent, AuditRecord};
use crate::domain::group::GroupMember;
use crate::domain::provisioning::{
    ScimGroup, ScimRelease, ScimScope, ScimUser, ScimUserGroup, ScimUserWrite,
};
use std::collections::BTreeMap;

use crate::authz::{ProductFacts, UserFacts};
use crate::domain::invitation::Invitation;
use crate::domain::org::{Org, OrgRole};
use crate::domain::permission::{Module, ModuleLevel, PermissionSet};
use crate::domain::product::{Environment, PermissionGroup, Product, ProductDetail};
use crate::domain::provisioning::{KEPT_PER_TOKEN, ScimRequestError};
use crate::domain::token::{Token, TokenKind};
use crate::domain::user::User;
use crate::domain::{Source, normalize, now};

pub(crate) struct SqlStore {
    pub(super) db: Db,
    max_connections: u32,
}

impl SqlStore {
    pub(crate) fn new(pool: Pool, max_connections: u32) -> Self {
        SqlStore {
            db: Db::new(pool),
            max_connections,
        }
    }
}

fn source(raw: &str) -> Result<Source, StoreError> {
    Source::parse(raw).ok_or_else(|| StoreError::Other(format!("unknown source {raw}")))
}

#[derive(FromRow)]
pub(super) struct OrgRow {
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

#[macro_export]
#[doc(hidden)]
macro_rules! user_columns {
    () => {
        "u.id, u.tenant_id, u.user_name, u.email, u.external_id, u.display_name, u.active, \
         u.source, u.created_at, u.updated_at, u.version"
    };
}

#[derive(FromRow)]
pub(super) struct UserRow {
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

#[derive(FromRow)]
pub(super) struct IdRow {
    pub(super) id: Uuid,
}

#[derive(FromRow)]
struct EpochRow {
    epoch: Option<i64>,
}

macro_rules! token_columns {
    () => {
        "id, tenant_id, org_id, kind, name, secret_hash, secret_hint, created_at, expires_at, \
         last_used_at, revoked_at, created_by_token_id"
    };
}

#[derive(FromRow)]
struct TokenRow {
    id: Uuid,
    tenant_id: Uuid,
    org_id: Uuid,
    kind: String,
    name: String,
    secret_hash: Vec<u8>,
    secret_hint: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_by_token_id: Option<Uuid>,
}

impl TokenRow {
    fn into_match(self) -> Result<TokenMatch, StoreError> {
        let kind = TokenKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Other(format!("unknown token kind {}", self.kind)))?;
        Ok(TokenMatch {
            token: Token {
                id: self.id,
                tenant_id: self.tenant_id,
                org_id: self.org_id,
                kind,
                name: self.name,
                hint: self.secret_hint,
                created_at: self.created_at,
                expires_at: self.expires_at,
                last_used_at: self.last_used_at,
                revoked_at: self.revoked_at,
                created_by_token_id: self.created_by_token_id,
            },
            secret_hash: self.secret_hash,
        })
    }

    fn into_token(self) -> Result<Token, StoreError> {
        Ok(self.into_match()?.token)
    }
}

#[derive(FromRow)]
struct AuditRow {
    id: Uuid,
    tenant_id: Uuid,
    org_id: Option<Uuid>,
    product_id: Option<Uuid>,
    actor_kind: String,
    actor_id: Option<String>,
    actor_name: Option<String>,
    action: String,
    target_kind: String,
    target_id: Option<String>,
    before: Option<Json<Value>>,
    after: Option<Json<Value>>,
    warning: Option<String>,
    request_id: Option<String>,
    client_addr: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            id: r.id,
            tenant_id: r.tenant_id,
            org_id: r.org_id,
            product_id: r.product_id,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            action: r.action,
            target_kind: r.target_kind,
            target_id: r.target_id,
            before: r.before.map(|j| j.0),
            after: r.after.map(|j| j.0),
            warning: r.warning,
            request_id: r.request_id,
            client_addr: r.client_addr,
            created_at: r.created_at,
        }
    }
}

pub(super) async fn org_in_tenant(
    conn: Conn<'_>,
    tenant_id: Uuid,
    org_id: Uuid,
) -> Result<Org, StoreError> {
    sql(
        "SELECT id, tenant_id, parent_id, name, created_at, updated_at, version FROM orgs \
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(org_id)
    .bind(tenant_id)
    .fetch_one::<OrgRow>(conn)
    .await
    .map(Org::from)
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
        crate::user_columns!(),
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

/// Sets the user's role in the org, inserting the membership if needed.
async fn set_membership_role(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    org_id: Uuid,
    user_id: Uuid,
    role: OrgRole,
) -> Result<Option<String>, StoreError> {
    #[derive(FromRow)]
    struct RoleRow {
        role: Option<String>,
    }
    let before =
        sql("SELECT role FROM memberships WHERE tenant_id = $1 AND org_id = $2 AND user_id = $3")
            .bind(tenant_id)
            .bind(org_id)
            .bind(user_id)
            .fetch_optional::<RoleRow>(tx.conn())
            .await?;
    let at = now();
    sql("INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at")
    .bind(tenant_id)
    .bind(org_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(Source::Manual.as_str())
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await?;
    tx.invalidate_user(user_id);
    Ok(before.and_then(|r| r.role))
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        match self.db.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn pool_stats(&self) -> PoolStats {
        let (open, idle) = match &self.db.pool {
            Pool::Sqlite(p) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        };
        PoolStats {
            max: self.max_connections,
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.db.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        sql("SELECT 1").execute(h.conn()).await.map(|_| ())
    }

    async fn close(&self) {
        match &self.db.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    async fn latest_epoch(&self) -> Result<i64, StoreError> {
        let mut h = self.db.read().await?;
        let row = sql("SELECT MAX(epoch) AS epoch FROM invalidations")
            .fetch_one::<EpochRow>(h.conn())
            .await?;
        Ok(row.epoch.unwrap_or(0))
    }

    async fn create_org(
        &self,
        ctx: &Ctx,
        name: &str,
        owner_email: &str,
    ) -> Result<(Org, User), StoreError> {
        let id = Uuid::now_v7();
        let at = now();
        let org = Org {
            id,
            tenant_id: id,
            parent_id: None,
            name: name.to_owned(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        let mut tx = self.db.begin_write(ctx, id).await?;
        sql(
            "INSERT INTO orgs (id, tenant_id, parent_id, name, created_at, updated_at) \
             VALUES ($1, $2, NULL, $3, $4, $5)",
        )
        .bind(id)
        .bind(id)
        .bind(name)
        .bind(at)
        .bind(at)
        .execute(tx.conn())
        .await?;
        tx.audit(
            AuditRecord::new("org.create", "org", id)
                .org(id)
                .after(&org),
        );
        let owner = ensure_user(&mut tx, id, owner_email, Source::Manual).await?;
        set_membership_role(&mut tx, id, id, owner.id, OrgRole::Owner).await?;
        tx.audit(
            AuditRecord::new("membership.set_role", "user", owner.id)
                .org(id)
                .after(json!({ "role": "owner" })),
        );
        tx.commit().await?;
        Ok((org, owner))
    }

    async fn get_org(&self, tenant_id: Uuid, org_id: Uuid) -> Result<Org, StoreError> {
        let mut h = self.db.read().await?;
        org_in_tenant(h.conn(), tenant_id, org_id).await
    }

    async fn find_org(&self, org_id: Uuid) -> Result<Org, StoreError> {
        let mut h = self.db.read().await?;
        sql("SELECT id, tenant_id, parent_id, name, created_at, updated_at, version FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_one::<OrgRow>(h.conn())
            .await
            .map(Org::from)
    }

    async fn add_owner(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        email: &str,
    ) -> Result<User, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        org_in_tenant(tx.conn(), tenant_id, org_id).await?;
        let user = ensure_user(&mut tx, tenant_id, email, Source::Manual).await?;
        let before =
            set_membership_role(&mut tx, tenant_id, org_id, user.id, OrgRole::Owner).await?;
        tx.audit(
            AuditRecord::new("membership.set_role", "user", user.id)
                .org(org_id)
                .before(json!({ "role": before }))
                .after(json!({ "role": "owner" })),
        );
        tx.commit().await?;
        Ok(user)
    }

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
        let user = ensure_user(&mut tx, tenant_id, email, source).await?;
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
        user_by_email(h.conn(), tenant_id, email).await
    }

    async fn create_token(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        new: NewToken,
    ) -> Result<Token, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        org_in_tenant(tx.conn(), tenant_id, new.org_id).await?;
        let token = Token {
            id: Uuid::now_v7(),
            tenant_id,
            org_id: new.org_id,
            kind: new.kind,
            name: new.name,
            hint: new.secret_hint,
            created_at: now(),
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
            created_by_token_id: new.created_by_token_id,
        };
        sql(
            "INSERT INTO api_tokens (id, tenant_id, org_id, kind, name, secret_hash, secret_hint, \
             created_at, expires_at, created_by_token_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(token.id)
        .bind(tenant_id)
        .bind(token.org_id)
        .bind(token.kind.as_str())
        .bind(token.name.as_str())
        .bind(new.secret_hash.as_slice())
        .bind(token.hint.as_str())
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.created_by_token_id)
        .execute(tx.conn())
        .await?;
        tx.audit(
            AuditRecord::new("token.create", "token", token.id)
                .org(token.org_id)
                .after(&token),
        );
        tx.commit().await?;
        Ok(token)
    }

    async fn list_tokens(
        &self,
        tenant_id: Uuid,
        org_id: Option<Uuid>,
    ) -> Result<Vec<Token>, StoreError> {
        let mut h = self.db.read().await?;
        let mut b = SqlBuilder::new(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE tenant_id = "
        ));
        b.push_bind(tenant_id);
        if let Some(org_id) = org_id {
            b.push(" AND org_id = ").push_bind(org_id);
        }
        b.push(" ORDER BY id");
        b.build()
            .fetch_all::<TokenRow>(h.conn())
            .await?
            .into_iter()
            .map(TokenRow::into_token)
            .collect()
    }

    async fn find_token(&self, token_id: Uuid) -> Result<Token, StoreError> {
        let mut h = self.db.read().await?;
        sql(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE id = $1"
        ))
        .bind(token_id)
        .fetch_one::<TokenRow>(h.conn())
        .await?
        .into_token()
    }

    async fn revoke_token(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        token_id: Uuid,
    ) -> Result<Token, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let token = sql(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE id = $1 AND tenant_id = $2"
        ))
        .bind(token_id)
        .bind(tenant_id)
        .fetch_one::<TokenRow>(tx.conn())
        .await?
        .into_token()?;
        if token.revoked_at.is_some() {
            // Already revoked: a retried request changes nothing and records nothing.
            return Ok(token);
        }
        let at = now();
        sql("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(at)
            .bind(token_id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        let revoked = Token {
            revoked_at: Some(at),
            ..token.clone()
        };
        tx.audit(
            AuditRecord::new("token.revoke", "token", token_id)
                .org(token.org_id)
                .before(&token)
                .after(&revoked),
        );
        tx.commit().await?;
        Ok(revoked)
    }

    async fn token_by_hash(
        &self,
        secret_hash: &[u8; 32],
    ) -> Result<Option<TokenMatch>, StoreError> {
        let mut h = self.db.read().await?;
        sql(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE secret_hash = $1"
        ))
        .bind(secret_hash.as_slice())
        .fetch_optional::<TokenRow>(h.conn())
        .await?
        .map(TokenRow::into_match)
        .transpose()
    }

    async fn touch_token(&self, token_id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        // The condition keeps several instances from each writing the same minute.
        sql("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)")
        .bind(at)
        .bind(token_id)
        .bind(at - Duration::seconds(60))
        .execute(h.conn())
        .await?;
        Ok(())
    }

    async fn create_sub_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        parent_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError> {
        self.create_sub_org_impl(ctx, tenant_id, parent_id, name)
            .await
    }

    async fn rename_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError> {
        self.rename_org_impl(ctx, tenant_id, org_id, name).await
    }

    async fn list_orgs(&self, tenant_id: Uuid) -> Result<Vec<Org>, StoreError> {
        self.list_orgs_impl(tenant_id).await
    }

    async fn delete_org(&self, ctx: &Ctx, tenant_id: Uuid, org_id: Uuid) -> Result<(), StoreError> {
        self.delete_org_impl(ctx, tenant_id, org_id).await
    }

    async fn list_members(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
        query: &MemberQuery,
    ) -> Result<Vec<OrgMember>, StoreError> {
        self.list_members_impl(tenant_id, org_id, query).await
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
        self.set_membership_impl(ctx, tenant_id, org_id, user_id, role, rule)
            .await
    }

    async fn remove_membership(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        rule: OwnerRule,
    ) -> Result<(), StoreError> {
        self.remove_membership_impl(ctx, tenant_id, org_id, user_id, rule)
            .await
    }

    async fn create_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
        environments: &[NewEnvironment],
    ) -> Result<ProductDetail, StoreError> {
        self.create_product_impl(ctx, tenant_id, org_id, name, environments)
            .await
    }

    async fn get_product(
        &self,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<ProductDetail, StoreError> {
        self.get_product_impl(tenant_id, product_id).await
    }

    async fn list_products(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Product>, StoreError> {
        self.list_products_impl(tenant_id, org_id).await
    }

    async fn rename_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        name: &str,
    ) -> Result<Product, StoreError> {
        self.rename_product_impl(ctx, tenant_id, product_id, name)
            .await
    }

    async fn delete_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<(), StoreError> {
        self.delete_product_impl(ctx, tenant_id, product_id).await
    }

    async fn create_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        env: &NewEnvironment,
    ) -> Result<Environment, StoreError> {
        self.create_environment_impl(ctx, tenant_id, product_id, env)
            .await
    }

    async fn update_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
        name: Option<&str>,
        restricted: Option<bool>,
    ) -> Result<Environment, StoreError> {
        self.update_environment_impl(ctx, tenant_id, env_id, name, restricted)
            .await
    }

    async fn delete_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<(), StoreError> {
        self.delete_environment_impl(ctx, tenant_id, env_id).await
    }

    async fn environment_product(
        &self,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<Product, StoreError> {
        Ok(self.environment(tenant_id, env_id).await?.1)
    }

    async fn save_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        existing: Option<Uuid>,
        name: &str,
        permissions: &PermissionSet,
    ) -> Result<PermissionGroup, StoreError> {
        self.save_permission_group_impl(ctx, tenant_id, product_id, existing, name, permissions)
            .await
    }

    async fn delete_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        group_id: Uuid,
        reassign_to: Option<Uuid>,
    ) -> Result<u64, StoreError> {
        self.delete_permission_group_impl(ctx, tenant_id, group_id, reassign_to)
            .await
    }

    async fn permission_group_product(
        &self,
        tenant_id: Uuid,
        group_id: Uuid,
    ) -> Result<Product, StoreError> {
        self.permission_group_product_impl(tenant_id, group_id)
            .await
    }

    async fn set_product_access(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        access: &ProductAccess,
    ) -> Result<(), StoreError> {
        self.set_product_access_impl(ctx, tenant_id, product_id, user_id, access)
            .await
    }

    async fn set_module_roles(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        levels: &BTreeMap<Module, ModuleLevel>,
    ) -> Result<(), StoreError> {
        self.set_module_roles_impl(ctx, tenant_id, org_id, user_id, levels)
            .await
    }

    async fn member_facts(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        product_id: Uuid,
    ) -> Result<(UserFacts, ProductFacts), StoreError> {
        self.member_facts_impl(tenant_id, user_id, product_id).await
    }

    async fn member_facts_in_org(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<(UserFacts, ProductFacts)>, StoreError> {
        self.member_facts_in_org_impl(tenant_id, user_id, org_id)
            .await
    }

    async fn invite(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        target: &InvitationTarget,
        entries: &[NewInvitation],
        hourly_cap: Option<u32>,
    ) -> Result<Vec<(String, InviteOutcome)>, StoreError> {
        self.invite_impl(ctx, tenant_id, target, entries, hourly_cap)
            .await
    }

    async fn list_invitations(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.list_invitations_impl(tenant_id, org_id).await
    }

    async fn get_invitation(&self, tenant_id: Uuid, id: Uuid) -> Result<Invitation, StoreError> {
        self.get_invitation_impl(tenant_id, id).await
    }

    async fn reissue_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
        token_hash: &[u8; 32],
        expires_at: DateTime<Utc>,
        hourly_cap: Option<u32>,
    ) -> Result<Invitation, StoreError> {
        self.reissue_invitation_impl(ctx, tenant_id, id, token_hash, expires_at, hourly_cap)
            .await
    }

    async fn revoke_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Invitation, StoreError> {
        self.revoke_invitation_impl(ctx, tenant_id, id).await
    }

    async fn invitation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Invitation>, StoreError> {
        self.invitation_by_token_impl(token_hash).await
    }

    async fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        request_id: Option<String>,
        client_addr: Option<String>,
    ) -> Result<AcceptOutcome, StoreError> {
        self.accept_invitation_impl(token_hash, request_id, client_addr)
            .await
    }

    async fn record_mail(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        mail: &OutboxMail,
    ) -> Result<(), StoreError> {
        self.record_mail_impl(ctx, tenant_id, mail).await
    }

    async fn record_scim_error(
        &self,
        tenant_id: Uuid,
        error: &ScimRequestError,
    ) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        sql("INSERT INTO scim_request_errors (id, tenant_id, token_id, method, target, status, scim_type, detail, \
             request_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(error.id)
        .bind(tenant_id)
        .bind(error.token_id)
        .bind(error.method.as_str())
        .bind(error.target.as_str())
        .bind(i64::from(error.status))
        .bind(error.scim_type.clone())
        .bind(error.detail.as_str())
        .bind(error.request_id.clone())
        .bind(error.created_at)
        .execute(h.conn())
        .await?;
        // Ids are time-ordered: everything below the newest N goes.
        sql(
            "DELETE FROM scim_request_errors WHERE tenant_id = $1 AND token_id = $2 AND id NOT IN \
             (SELECT id FROM scim_request_errors WHERE tenant_id = $1 AND token_id = $2 \
             ORDER BY id DESC LIMIT $3)",
        )
        .bind(tenant_id)
        .bind(error.token_id)
        .bind(KEPT_PER_TOKEN)
        .execute(h.conn())
        .await?;
        Ok(())
    }

    async fn list_scim_errors(
        &self,
        tenant_id: Uuid,
        token_id: Uuid,
        limit: u32,
    ) -> Result<Vec<ScimRequestError>, StoreError> {
        #[derive(FromRow)]
        struct Row {
            id: Uuid,
            token_id: Uuid,
            method: String,
            target: String,
            status: i64,
            scim_type: Option<String>,
            detail: String,
            request_id: Option<String>,
            created_at: DateTime<Utc>,
        }
        let mut h = self.db.read().await?;
        let rows = sql("SELECT id, token_id, method, target, status, scim_type, detail, request_id, created_at \
                        FROM scim_request_errors WHERE tenant_id = $1 AND token_id = $2 ORDER BY id DESC LIMIT $3")
        .bind(tenant_id)
        .bind(token_id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all::<Row>(h.conn())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ScimRequestError {
                id: r.id,
                token_id: r.token_id,
                method: r.method,
                target: r.target,
                status: u16::try_from(r.status).unwrap_or(500),
                scim_type: r.scim_type,
                detail: r.detail,
                request_id: r.request_id,
                created_at: r.created_at,
            })
            .collect())
    }

    async fn scim_create_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError> {
        self.scim_create_user_impl(ctx, scope, user).await
    }

    async fn scim_get_user(
        &self,
        scope: ScimScope,
        id: Uuid,
        with_document: bool,
    ) -> Result<ScimUser, StoreError> {
        self.scim_get_user_impl(scope, id, with_document).await
    }

    async fn scim_list_users(
        &self,
        scope: ScimScope,
        query: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimUser>, StoreError> {
        self.scim_list_users_impl(scope, query).await
    }

    async fn scim_replace_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError> {
        self.scim_replace_user_impl(ctx, scope, id, expected_version, user)
            .await
    }

    async fn scim_delete_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        self.scim_delete_user_impl(ctx, scope, id, expected_version)
            .await
    }

    async fn scim_holder(&self, user_id: Uuid) -> Result<(Uuid, Option<Uuid>), StoreError> {
        self.scim_holder_impl(user_id).await
    }

    async fn scim_release_user(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        user_id: Uuid,
        from: Uuid,
        to: Option<Uuid>,
    ) -> Result<ScimRelease, StoreError> {
        self.scim_release_user_impl(ctx, tenant_id, user_id, from, to)
            .await
    }

    async fn scim_user_groups(
        &self,
        scope: ScimScope,
        user_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, ScimUserGroup)>, StoreError> {
        self.scim_user_groups_impl(scope, user_ids).await
    }

    async fn scim_create_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        group: &ScimGroupWrite,
        members: &[MemberRef],
    ) -> Result<ScimGroup, StoreError> {
        self.scim_create_group_impl(ctx, scope, group, members)
            .await
    }

    async fn scim_get_group(&self, scope: ScimScope, id: Uuid) -> Result<ScimGroup, StoreError> {
        self.scim_get_group_impl(scope, id).await
    }

    async fn scim_list_groups(
        &self,
        scope: ScimScope,
        query: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimGroup>, StoreError> {
        self.scim_list_groups_impl(scope, query).await
    }

    async fn scim_group_members(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, GroupMember)>, StoreError> {
        self.scim_group_members_impl(scope, group_ids).await
    }

    async fn scim_group_member_counts(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.scim_group_member_counts_impl(scope, group_ids).await
    }

    async fn scim_group_members_after(
        &self,
        scope: ScimScope,
        group_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<GroupMember>, StoreError> {
        self.scim_group_members_after_impl(scope, group_id, after, limit)
            .await
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
        self.scim_update_group_impl(ctx, scope, id, expected_version, attributes, changes)
            .await
    }

    async fn scim_delete_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError> {
        self.scim_delete_group_impl(ctx, scope, id, expected_version)
            .await
    }

    async fn list_audit(
        &self,
        tenant_id: Uuid,
        q: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut h = self.db.read().await?;
        let mut b = SqlBuilder::new(
            "SELECT id, tenant_id, org_id, product_id, actor_kind, actor_id, actor_name, action, \
             target_kind, target_id, before, after, warning, request_id, client_addr, \
             created_at FROM audit_events WHERE tenant_id = ",
        );
        b.push_bind(tenant_id);
        if let Some(v) = q.org_id {
            b.push(" AND org_id = ").push_bind(v);
        }
        if let Some(v) = q.product_id {
            b.push(" AND product_id = ").push_bind(v);
        }
        if let Some(v) = &q.actor_kind {
            b.push(" AND actor_kind = ").push_bind(v.as_str());
        }
        if let Some(v) = &q.actor_id {
            b.push(" AND actor_id = ").push_bind(v.as_str());
        }
        if let Some(v) = &q.action {
            b.push(" AND action = ").push_bind(v.as_str());
        }
        if let Some(v) = q.since {
            b.push(" AND created_at >= ").push_bind(v);
        }
        if let Some(v) = q.until {
            b.push(" AND created_at < ").push_bind(v);
        }
        if let Some(v) = q.before_id {
            b.push(" AND id < ").push_bind(v);
        }
        b.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, 1000)));
        Ok(b.build()
            .fetch_all::<AuditRow>(h.conn())
            .await?
            .into_iter()
            .map(AuditEvent::from)
            .collect())
    }
}

/// What an org-wide lock serialises (the class half of a two-key advisory lock, so our keys
/// never meet sqlx's single-key migration lock).
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
pub(super) enum OrgLock {
    /// Counting and sending invitation e-mails against the hourly cap.
    InvitationSends = 0x7267_0001,
    /// Adding nested groups, so two concurrent additions cannot each miss the other's cycle.
    GroupNesting = 0x7267_0002,
}

/// Takes an org-wide lock for one kind of change, held until the transaction ends. PostgreSQL:
/// a transaction-scoped advisory lock, so it holds across instances. SQLite: nothing to do, its
/// writers already go one at a time (the in-process queue and `BEGIN IMMEDIATE`).
pub(super) async fn lock_org(
    tx: &mut WriteTx,
    lock: OrgLock,
    org_id: Uuid,
) -> Result<(), StoreError> {
    let conn = tx.conn();
    if let Conn::Postgres(_) = conn {
        // Two orgs folding to the same key only wait for each other: harmless.
        let (hi, lo) = org_id.as_u64_pair();
        let folded = (hi ^ lo) as u32 ^ ((hi ^ lo) >> 32) as u32;
        sql("SELECT pg_advisory_xact_lock($1::int4, $2::int4)")
            .bind(i64::from(lock as i32))
            .bind(i64::from(folded as i32))
            .execute(conn)
            .await?;
    }
    Ok(())
}

pub(super) fn push_list(b: &mut SqlBuilder, ids: &[Uuid]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.push_bind(*id);
    }
}
