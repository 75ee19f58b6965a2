//! API tokens: minted for an org, found by their secret's hash before the tenant is known,
//! revoked for good.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::db::{Conn, Ctx, SqlBuilder, TenantResource, WriteTx, load_in_tenant, push_list, sql};
use super::{SqlStore, StoreError};
use crate::domain::audit::AuditRecord;
use crate::domain::now;
use crate::domain::org::Org;
use crate::domain::token::{Token, TokenKind};

#[derive(Debug, Clone)]
pub struct NewToken {
    pub org_id: Uuid,
    pub kind: TokenKind,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub secret_hint: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The token whose caller minted this one (through the admin API); `None` for the operator.
    pub created_by_token_id: Option<Uuid>,
    /// The signed-in user who minted this one (through the admin API).
    pub created_by_user_id: Option<Uuid>,
}

impl NewToken {
    /// The row for a freshly minted secret (whose hash and hint it keeps, never the secret).
    pub fn from_minted(
        org_id: Uuid,
        kind: TokenKind,
        name: String,
        minted: &crate::domain::token::MintedSecret,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        NewToken {
            org_id,
            kind,
            name,
            secret_hash: minted.hash,
            secret_hint: minted.hint.clone(),
            expires_at,
            created_by_token_id: None,
            created_by_user_id: None,
        }
    }

    /// Records the token whose caller minted this one.
    pub fn minted_by(mut self, token_id: Option<Uuid>) -> Self {
        self.created_by_token_id = token_id;
        self
    }

    /// Records the signed-in user who minted this one.
    pub fn minted_by_user(mut self, user_id: Option<Uuid>) -> Self {
        self.created_by_user_id = user_id;
        self
    }
}

/// A token found by its secret's hash, with the stored hash for the final constant-time check.
#[derive(Debug, Clone)]
pub struct TokenMatch {
    pub token: Token,
    pub secret_hash: Vec<u8>,
}

#[async_trait]
pub trait TokenStore {
    async fn create_token(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        token: NewToken,
    ) -> Result<Token, StoreError>;
    async fn list_tokens(
        &self,
        tenant_id: Uuid,
        org_id: Option<Uuid>,
    ) -> Result<Vec<Token>, StoreError>;
    /// Finds a token by id in any tenant: for the operator's command line only.
    async fn find_token(&self, token_id: Uuid) -> Result<Token, StoreError>;
    /// Revokes a token; revoking a revoked token returns it unchanged (idempotent).
    async fn revoke_token(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        token_id: Uuid,
    ) -> Result<Token, StoreError>;
    async fn token_by_hash(&self, secret_hash: &[u8; 32])
    -> Result<Option<TokenMatch>, StoreError>;
    /// Records use of a token. Not audited: it is bookkeeping, not a change anyone made.
    async fn touch_token(&self, token_id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;
}

macro_rules! token_columns {
    () => {
        "id, tenant_id, org_id, kind, name, secret_hash, secret_hint, created_at, expires_at, \
         last_used_at, revoked_at, created_by_token_id, created_by_user_id"
    };
}

#[derive(FromRow)]
pub(crate) struct TokenRow {
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
    created_by_user_id: Option<Uuid>,
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
                created_by_user_id: self.created_by_user_id,
            },
            secret_hash: self.secret_hash,
        })
    }

    fn into_token(self) -> Result<Token, StoreError> {
        Ok(self.into_match()?.token)
    }
}

impl TenantResource for Token {
    type Row = TokenRow;
    const FROM: &'static str = "api_tokens";
    const COLUMNS: &'static str = token_columns!();
    fn from_row(row: TokenRow) -> Result<Self, StoreError> {
        row.into_token()
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        new: NewToken,
    ) -> Result<Token, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        load_in_tenant::<Org>(tx.conn(), tenant_id, new.org_id).await?;
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
            created_by_user_id: new.created_by_user_id,
        };
        sql(
            "INSERT INTO api_tokens (id, tenant_id, org_id, kind, name, secret_hash, secret_hint, \
             created_at, expires_at, created_by_token_id, created_by_user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(token.created_by_user_id)
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
        let token: Token = load_in_tenant(tx.conn(), tenant_id, token_id).await?;
        if token.revoked_at.is_some() {
            // Already revoked: a retried request changes nothing and records nothing.
            return Ok(token);
        }
        let revoked = revoke_in(&mut tx, &token, None).await?;
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
}

/// Revokes a live token inside a write already open, audited (`token.revoke`, with `reason`
/// in its `after` when the revocation is the service's, not a caller's request).
pub(crate) async fn revoke_in(
    tx: &mut WriteTx,
    token: &Token,
    reason: Option<&str>,
) -> Result<Token, StoreError> {
    let at = now();
    sql("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3")
        .bind(at)
        .bind(token.id)
        .bind(token.tenant_id)
        .execute(tx.conn())
        .await?;
    let revoked = Token {
        revoked_at: Some(at),
        ..token.clone()
    };
    let mut after = serde_json::to_value(&revoked).map_err(|e| StoreError::Other(e.to_string()))?;
    if let (Some(reason), Some(fields)) = (reason, after.as_object_mut()) {
        fields.insert("reason".into(), reason.into());
    }
    tx.audit(
        AuditRecord::new("token.revoke", "token", token.id)
            .org(token.org_id)
            .before(token)
            .after(after),
    );
    // Tokens are cached per tenant (`Resolver::token_by_hash`): the whole tenant's entry goes.
    tx.invalidate_tenant();
    Ok(revoked)
}

/// The live admin tokens of the tenant that signed-in users minted — of `creators` only, when
/// given.
pub(crate) async fn user_minted_admin_tokens(
    conn: Conn<'_>,
    tenant_id: Uuid,
    creators: Option<&[Uuid]>,
) -> Result<Vec<Token>, StoreError> {
    let mut b = SqlBuilder::new(concat!(
        "SELECT ",
        token_columns!(),
        " FROM api_tokens WHERE kind = 'admin' AND revoked_at IS NULL \
         AND created_by_user_id IS NOT NULL AND tenant_id = "
    ));
    b.push_bind(tenant_id)
        .push(" AND (expires_at IS NULL OR expires_at > ")
        .push_bind(now())
        .push(")");
    if let Some(creators) = creators {
        if creators.is_empty() {
            return Ok(Vec::new());
        }
        b.push(" AND created_by_user_id IN (");
        push_list(&mut b, creators);
        b.push(")");
    }
    b.push(" ORDER BY id");
    b.build()
        .fetch_all::<TokenRow>(conn)
        .await?
        .into_iter()
        .map(TokenRow::into_token)
        .collect()
}
