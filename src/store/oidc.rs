//! OIDC: connections (with their sealed secrets and claimed domains), login transactions, the
//! sign-in itself (identity, user, group claims in one audited transaction), and replayed
//! back-channel logout tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::db::{Conn, Ctx, IdRow, SqlBuilder, WriteTx, push_list, sql};
use super::team::tenant_tree;
use super::{SqlStore, StoreError};
use crate::domain::audit::AuditRecord;
use crate::domain::oidc::{ClientAuth, Connection, Provisioning};
use crate::domain::provisioning::{LinkCandidate, oidc_email_link};
use crate::domain::secret::Sealed;
use crate::domain::{Source, normalize, now};

/// A secret to store sealed: the row id is the sealing's associated data, so the caller picks
/// it before sealing.
#[derive(Debug, Clone)]
pub struct NewSealed {
    pub id: Uuid,
    pub sealed: Sealed,
}

#[derive(Debug, Clone)]
pub struct NewConnection {
    pub org_id: Uuid,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub client_secret: Option<NewSealed>,
    pub signing_key: Option<NewSealed>,
    pub public_jwk: Option<Value>,
    pub groups_claim: String,
    pub scopes: Vec<String>,
    pub provisioning: Provisioning,
    pub require_mfa: bool,
    pub domains: Vec<String>,
    pub allowed_tenants: Vec<String>,
    pub metadata: Value,
}

/// A change to a connection: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConnectionUpdate {
    pub client_id: Option<String>,
    pub client_auth: Option<ClientAuth>,
    /// A new secret (rotation: Entra secrets expire).
    pub client_secret: Option<NewSealed>,
    pub signing_key: Option<(NewSealed, Value)>,
    pub groups_claim: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub provisioning: Option<Provisioning>,
    pub require_mfa: Option<bool>,
    pub domains: Option<Vec<String>>,
    pub allowed_tenants: Option<Vec<String>>,
    pub metadata: Option<Value>,
}

/// What the login and callback need of a connection: it, the provider's metadata as last
/// fetched, and its sealed secrets (with the ids they are bound to).
#[derive(Debug, Clone)]
pub struct ClientMaterial {
    pub connection: Connection,
    pub metadata: Value,
    pub client_secret: Option<(Uuid, Sealed)>,
    pub signing_key: Option<(Uuid, Sealed)>,
}

/// A login in flight, as the callback finds it.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub tenant_id: Uuid,
    pub connection_id: Uuid,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub expires_at: DateTime<Utc>,
}

/// A sealed secret of any tenant, for a key rotation.
#[derive(Debug, Clone)]
pub struct StoredSealed {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub sealed: Sealed,
}

/// What a verified ID token asserts, and the connection it came through.
#[derive(Debug, Clone)]
pub struct OidcSignIn {
    pub connection_id: Uuid,
    pub org_id: Uuid,
    pub provisioning: Provisioning,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// The group claim's values; `None`: Entra's overage (the login proceeds without OIDC
    /// groups and the audit event says so).
    pub groups: Option<Vec<String>>,
}

/// How the identity found its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkedBy {
    /// (issuer, sub), linked at an earlier login.
    Identity,
    /// A verified e-mail, at this first login (hybrid, scim_only).
    Email,
    /// A new user (jit, hybrid).
    Created,
}

/// Why a sign-in is refused by policy; each has a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRefusal {
    /// `scim_only`: SCIM has not provisioned this person.
    NotProvisioned,
    /// The user is deactivated.
    Inactive,
    /// The e-mail names an existing person, and the provider does not vouch for it.
    EmailNotVerified,
    /// The person the e-mail names belongs elsewhere (the link rule).
    NotLinkable,
}

impl SignInRefusal {
    pub fn code(self) -> &'static str {
        match self {
            SignInRefusal::NotProvisioned => "not_provisioned",
            SignInRefusal::Inactive => "user_inactive",
            SignInRefusal::EmailNotVerified => "email_not_verified",
            SignInRefusal::NotLinkable => "account_not_linkable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInOutcome {
    SignedIn { user_id: Uuid, linked_by: LinkedBy },
    Refused(SignInRefusal),
}

#[async_trait]
pub trait OidcStore {
    async fn create_oidc_connection(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        new: NewConnection,
    ) -> Result<Connection, StoreError>;
    /// The connections of these orgs (`None`: of the whole tenant).
    async fn list_oidc_connections(
        &self,
        tenant_id: Uuid,
        org_ids: Option<&[Uuid]>,
    ) -> Result<Vec<Connection>, StoreError>;
    async fn get_oidc_connection(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Connection, StoreError>;
    /// A connection by id in any tenant: the login routes and the operator's commands.
    async fn find_oidc_connection(&self, id: Uuid) -> Result<ClientMaterial, StoreError>;
    async fn update_oidc_connection(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
        update: ConnectionUpdate,
    ) -> Result<Connection, StoreError>;
    /// Removes a connection; refused (`Rule`, naming them) while mapping rules use it.
    async fn delete_oidc_connection(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Connection, StoreError>;
    /// Every connection whose provider is `issuer` (back-channel logout finds its keys so).
    async fn oidc_connections_for_issuer(
        &self,
        issuer: &str,
    ) -> Result<Vec<ClientMaterial>, StoreError>;
    /// The connection an e-mail domain is routed to (home-realm discovery).
    async fn oidc_connection_for_domain(
        &self,
        domain: &str,
    ) -> Result<Option<Connection>, StoreError>;

    /// Every key id that seals something, with how many secrets it seals.
    async fn sealed_key_ids(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Sealed secrets not sealed under `key_id`.
    async fn sealed_not_under(&self, key_id: &str) -> Result<Vec<StoredSealed>, StoreError>;
    /// Replaces sealed secrets of one tenant with the same secrets sealed anew (rotation).
    async fn reseal(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        resealed: Vec<(Uuid, Sealed)>,
    ) -> Result<(), StoreError>;

    /// Records a login in flight under the hash of its `state`. Bookkeeping, not audited; old
    /// ones are removed as new ones come.
    async fn begin_oidc_login(
        &self,
        state_hash: &[u8; 32],
        login: &PendingLogin,
    ) -> Result<(), StoreError>;
    /// Takes a login in flight: found once, then gone (a replayed `state` finds nothing).
    async fn take_oidc_login(
        &self,
        state_hash: &[u8; 32],
    ) -> Result<Option<PendingLogin>, StoreError>;
    /// Links or creates the user, replaces the connection's group claims, and audits, in one
    /// transaction; a policy refusal is audited too.
    async fn oidc_sign_in(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        sign_in: &OidcSignIn,
    ) -> Result<SignInOutcome, StoreError>;
    /// Records a back-channel logout token's `jti`; false when it was seen already (a replay).
    async fn oidc_logout_jti_fresh(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

macro_rules! connection_columns {
    () => {
        "id, tenant_id, org_id, issuer, client_id, client_auth, client_secret_id, \
         signing_key_id, signing_public_jwk, groups_claim, scopes, provisioning, require_mfa, \
         allowed_tenants, metadata, created_at, updated_at"
    };
}

#[derive(FromRow)]
struct ConnectionRow {
    id: Uuid,
    tenant_id: Uuid,
    org_id: Uuid,
    issuer: String,
    client_id: String,
    client_auth: String,
    client_secret_id: Option<Uuid>,
    signing_key_id: Option<Uuid>,
    signing_public_jwk: Option<String>,
    groups_claim: String,
    scopes: String,
    provisioning: String,
    require_mfa: bool,
    allowed_tenants: Json<Vec<String>>,
    metadata: Json<Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct DomainRow {
    domain: String,
    connection_id: Uuid,
}

#[derive(FromRow)]
struct SealedRow {
    id: Uuid,
    tenant_id: Uuid,
    key_id: String,
    sealed: Vec<u8>,
}

impl SealedRow {
    fn into_stored(self) -> StoredSealed {
        StoredSealed {
            id: self.id,
            tenant_id: self.tenant_id,
            sealed: Sealed {
                key_id: self.key_id,
                bytes: self.sealed,
            },
        }
    }
}

impl ConnectionRow {
    fn into_connection(self, domains: &[DomainRow]) -> Result<(Connection, Value), StoreError> {
        let bad = |what: &str, v: &str| StoreError::Other(format!("stored {what} {v:?}"));
        let connection = Connection {
            id: self.id,
            tenant_id: self.tenant_id,
            org_id: self.org_id,
            issuer: self.issuer,
            client_id: self.client_id,
            client_auth: ClientAuth::parse(&self.client_auth)
                .ok_or_else(|| bad("client_auth", &self.client_auth))?,
            has_client_secret: self.client_secret_id.is_some(),
            public_jwk: self
                .signing_public_jwk
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
            groups_claim: self.groups_claim,
            scopes: self.scopes.split(' ').map(str::to_owned).collect(),
            provisioning: Provisioning::parse(&self.provisioning)
                .ok_or_else(|| bad("provisioning", &self.provisioning))?,
            require_mfa: self.require_mfa,
            domains: domains
                .iter()
                .filter(|d| d.connection_id == self.id)
                .map(|d| d.domain.clone())
                .collect(),
            allowed_tenants: self.allowed_tenants.0,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        Ok((connection, self.metadata.0))
    }
}

async fn domains_of(conn: Conn<'_>, ids: &[Uuid]) -> Result<Vec<DomainRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b =
        SqlBuilder::new("SELECT domain, connection_id FROM oidc_domains WHERE connection_id IN (");
    push_list(&mut b, ids);
    b.push(") ORDER BY domain");
    b.build().fetch_all::<DomainRow>(conn).await
}

async fn load_connection(
    tx: &mut impl super::db::AsConn,
    tenant_id: Option<Uuid>,
    id: Uuid,
) -> Result<(ConnectionRow, Vec<DomainRow>), StoreError> {
    let mut b = SqlBuilder::new(concat!(
        "SELECT ",
        connection_columns!(),
        " FROM oidc_connections WHERE id = "
    ));
    b.push_bind(id);
    if let Some(tenant_id) = tenant_id {
        b.push(" AND tenant_id = ").push_bind(tenant_id);
    }
    let row = b.build().fetch_one::<ConnectionRow>(tx.conn()).await?;
    let domains = domains_of(tx.conn(), &[id]).await?;
    Ok((row, domains))
}

async fn insert_sealed(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    secret: &NewSealed,
) -> Result<(), StoreError> {
    sql(
        "INSERT INTO sealed_secrets (id, tenant_id, key_id, sealed, updated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(secret.id)
    .bind(tenant_id)
    .bind(secret.sealed.key_id.as_str())
    .bind(secret.sealed.bytes.as_slice())
    .bind(now())
    .execute(tx.conn())
    .await?;
    Ok(())
}

async fn delete_sealed(tx: &mut WriteTx, id: Option<Uuid>) -> Result<(), StoreError> {
    if let Some(id) = id {
        sql("DELETE FROM sealed_secrets WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

/// Claims `domains` for the connection; a domain any connection already has is a conflict
/// naming it (a domain routes to one tenant only).
async fn claim_domains(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    connection_id: Uuid,
    domains: &[String],
) -> Result<(), StoreError> {
    sql("DELETE FROM oidc_domains WHERE connection_id = $1")
        .bind(connection_id)
        .execute(tx.conn())
        .await?;
    for domain in domains {
        let inserted = sql(
            "INSERT INTO oidc_domains (domain, tenant_id, connection_id) \
                            VALUES ($1, $2, $3) ON CONFLICT (domain) DO NOTHING",
        )
        .bind(domain.as_str())
        .bind(tenant_id)
        .bind(connection_id)
        .execute(tx.conn())
        .await?;
        if inserted == 0 {
            return Err(StoreError::Rule(format!(
                "domain_taken: the domain {domain} is already claimed by another connection"
            )));
        }
    }
    Ok(())
}

#[derive(FromRow)]
struct RuleNameRow {
    name: String,
}

#[derive(FromRow)]
struct LoginRow {
    tenant_id: Uuid,
    connection_id: Uuid,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    expires_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct IdentityRow {
    user_id: Uuid,
    active: bool,
    scim_org_id: Option<Uuid>,
}

#[derive(FromRow)]
struct PersonRow {
    id: Uuid,
    active: bool,
    scim_org_id: Option<Uuid>,
}

#[derive(FromRow)]
struct UserOrgRow {
    user_id: Uuid,
    org_id: Uuid,
}

#[derive(FromRow)]
struct KeyCountRow {
    key_id: String,
    n: i64,
}

fn connection_audit(c: &Connection) -> Value {
    // The connection as shown: never a secret.
    json!(c)
}

/// Finds who an identity is, or who it may become; the refusal otherwise.
async fn resolve_person(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    s: &OidcSignIn,
) -> Result<Result<(Uuid, LinkedBy), SignInRefusal>, StoreError> {
    let postgres = matches!(tx.conn(), Conn::Postgres(_));
    let found = sql(
        "SELECT i.user_id, u.active, u.scim_org_id FROM identities i \
         JOIN users u ON u.id = i.user_id AND u.tenant_id = $1 \
         WHERE i.tenant_id = $1 AND i.issuer = $2 AND i.subject = $3",
    )
    .bind(tenant_id)
    .bind(s.issuer.as_str())
    .bind(s.subject.as_str())
    .fetch_optional::<IdentityRow>(tx.conn())
    .await?;
    let tree = tenant_tree(tx.conn(), tenant_id).await?;
    let in_subtree = |org: Uuid| {
        crate::domain::org::chain_to_root(org, |o| {
            tree.iter().find(|(id, _)| *id == o).map(|(_, p)| *p)
        })
        .contains(&s.org_id)
    };
    if let Some(identity) = found {
        if !identity.active {
            return Ok(Err(SignInRefusal::Inactive));
        }
        if s.provisioning == Provisioning::ScimOnly && !identity.scim_org_id.is_some_and(in_subtree)
        {
            return Ok(Err(SignInRefusal::NotProvisioned));
        }
        sql(
            "UPDATE identities SET last_login_at = $1 WHERE tenant_id = $2 AND issuer = $3 \
             AND subject = $4",
        )
        .bind(now())
        .bind(tenant_id)
        .bind(s.issuer.as_str())
        .bind(s.subject.as_str())
        .execute(tx.conn())
        .await?;
        return Ok(Ok((identity.user_id, LinkedBy::Identity)));
    }
    let email_norm = s.email.as_deref().map(normalize);
    let people = match &email_norm {
        None => Vec::new(),
        Some(email) => {
            let mut b =
                SqlBuilder::new("SELECT id, active, scim_org_id FROM users WHERE tenant_id = ");
            b.push_bind(tenant_id)
                .push(" AND email_norm = ")
                .push_bind(email.clone())
                .push(" UNION SELECT id, active, scim_org_id FROM users WHERE tenant_id = ")
                .push_bind(tenant_id)
                .push(" AND user_name_norm = ")
                .push_bind(email.clone());
            let mut people = b.build().fetch_all::<PersonRow>(tx.conn()).await?;
            people.sort_by_key(|p| p.id);
            people.dedup_by_key(|p| p.id);
            people
        }
    };
    if people.is_empty() {
        if s.provisioning == Provisioning::ScimOnly {
            return Ok(Err(SignInRefusal::NotProvisioned));
        }
        let user_id = create_user(tx, tenant_id, s).await?;
        link_identity(tx, tenant_id, user_id, s).await?;
        return Ok(Ok((user_id, LinkedBy::Created)));
    }
    if !s.email_verified {
        return Ok(Err(SignInRefusal::EmailNotVerified));
    }
    if s.provisioning == Provisioning::Jit {
        // JIT creates people; taking over an existing one by e-mail is hybrid's business.
        return Ok(Err(SignInRefusal::NotLinkable));
    }
    let ids: Vec<Uuid> = people.iter().map(|p| p.id).collect();
    if postgres {
        // Lock the people, so a membership added meanwhile is seen or waits (as SCIM does).
        let mut b = SqlBuilder::new("SELECT id FROM users WHERE tenant_id = ");
        b.push_bind(tenant_id).push(" AND id IN (");
        push_list(&mut b, &ids);
        b.push(") FOR UPDATE");
        b.build().fetch_all::<IdRow>(tx.conn()).await?;
    }
    let mut reach = SqlBuilder::new("SELECT user_id, org_id FROM memberships WHERE tenant_id = ");
    reach.push_bind(tenant_id).push(" AND user_id IN (");
    push_list(&mut reach, &ids);
    reach
        .push(") UNION SELECT subject_id AS user_id, org_id FROM grants WHERE tenant_id = ")
        .push_bind(tenant_id)
        .push(" AND subject_kind = 'user' AND subject_id IN (");
    push_list(&mut reach, &ids);
    reach.push(")");
    let reach = reach.build().fetch_all::<UserOrgRow>(tx.conn()).await?;
    let candidates: Vec<LinkCandidate> = people
        .iter()
        .map(|p| LinkCandidate {
            user_id: p.id,
            held_by: p.scim_org_id,
            orgs: reach
                .iter()
                .filter(|r| r.user_id == p.id)
                .map(|r| r.org_id)
                .collect(),
            same_user_name: false,
        })
        .collect();
    let scim_only = s.provisioning == Provisioning::ScimOnly;
    match oidc_email_link(&tree, s.org_id, &candidates, scim_only) {
        Ok(Some(user_id)) => {
            if !people.iter().any(|p| p.id == user_id && p.active) {
                return Ok(Err(SignInRefusal::Inactive));
            }
            link_identity(tx, tenant_id, user_id, s).await?;
            Ok(Ok((user_id, LinkedBy::Email)))
        }
        Ok(None) | Err(_) if scim_only => Ok(Err(SignInRefusal::NotProvisioned)),
        Ok(None) | Err(_) => Ok(Err(SignInRefusal::NotLinkable)),
    }
}

async fn create_user(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    s: &OidcSignIn,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let at = now();
    // Without an e-mail the person is named by their identity, unique in the tenant.
    let user_name = s
        .email
        .clone()
        .unwrap_or_else(|| format!("{}@{}", s.subject, s.connection_id));
    sql(
        "INSERT INTO users (id, tenant_id, user_name, user_name_norm, email, email_norm, \
         display_name, active, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(user_name.as_str())
    .bind(normalize(&user_name))
    .bind(s.email.clone())
    .bind(s.email.as_deref().map(normalize))
    .bind(s.name.clone())
    .bind(true)
    .bind(Source::Oidc.as_str())
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await?;
    sql(
        "INSERT INTO memberships (tenant_id, org_id, user_id, role, source, created_at, \
         updated_at) VALUES ($1, $2, $3, 'member', $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(s.org_id)
    .bind(id)
    .bind(Source::Oidc.as_str())
    .bind(at)
    .bind(at)
    .execute(tx.conn())
    .await?;
    tx.audit(
        AuditRecord::new("user.create", "user", id)
            .org(s.org_id)
            .after(json!({
                "user_name": user_name, "email": s.email, "source": "oidc",
                "connection_id": s.connection_id,
            })),
    );
    Ok(id)
}

async fn link_identity(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    user_id: Uuid,
    s: &OidcSignIn,
) -> Result<(), StoreError> {
    let at = now();
    sql(
        "INSERT INTO identities (id, tenant_id, user_id, issuer, subject, created_at, \
         last_login_at, connection_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(user_id)
    .bind(s.issuer.as_str())
    .bind(s.subject.as_str())
    .bind(at)
    .bind(at)
    .bind(s.connection_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn create_oidc_connection(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        new: NewConnection,
    ) -> Result<Connection, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        super::db::load_in_tenant::<crate::domain::org::Org>(tx.conn(), tenant_id, new.org_id)
            .await?;
        let id = Uuid::now_v7();
        let at = now();
        for secret in new.client_secret.iter().chain(new.signing_key.iter()) {
            insert_sealed(&mut tx, tenant_id, secret).await?;
        }
        sql(
            "INSERT INTO oidc_connections (id, tenant_id, org_id, issuer, client_id, \
             client_auth, client_secret_id, signing_key_id, signing_public_jwk, groups_claim, \
             scopes, provisioning, require_mfa, allowed_tenants, metadata, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(new.org_id)
        .bind(new.issuer.as_str())
        .bind(new.client_id.as_str())
        .bind(new.client_auth.as_str())
        .bind(new.client_secret.as_ref().map(|s| s.id))
        .bind(new.signing_key.as_ref().map(|s| s.id))
        .bind(new.public_jwk.as_ref().map(Value::to_string))
        .bind(new.groups_claim.as_str())
        .bind(new.scopes.join(" "))
        .bind(new.provisioning.as_str())
        .bind(new.require_mfa)
        .bind(json!(new.allowed_tenants))
        .bind(new.metadata.clone())
        .bind(at)
        .bind(at)
        .execute(tx.conn())
        .await?;
        claim_domains(&mut tx, tenant_id, id, &new.domains).await?;
        let (row, domains) = load_connection(&mut tx, Some(tenant_id), id).await?;
        let (connection, _) = row.into_connection(&domains)?;
        tx.audit(
            AuditRecord::new("oidc.connection.create", "oidc_connection", id)
                .org(connection.org_id)
                .after(connection_audit(&connection)),
        );
        tx.commit().await?;
        Ok(connection)
    }

    async fn list_oidc_connections(
        &self,
        tenant_id: Uuid,
        org_ids: Option<&[Uuid]>,
    ) -> Result<Vec<Connection>, StoreError> {
        let mut h = self.db.read().await?;
        let mut b = SqlBuilder::new(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM oidc_connections WHERE tenant_id = "
        ));
        b.push_bind(tenant_id);
        if let Some(orgs) = org_ids {
            if orgs.is_empty() {
                return Ok(Vec::new());
            }
            b.push(" AND org_id IN (");
            push_list(&mut b, orgs);
            b.push(")");
        }
        b.push(" ORDER BY id");
        let rows = b.build().fetch_all::<ConnectionRow>(h.conn()).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let domains = domains_of(h.conn(), &ids).await?;
        rows.into_iter()
            .map(|r| r.into_connection(&domains).map(|(c, _)| c))
            .collect()
    }

    async fn get_oidc_connection(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Connection, StoreError> {
        let mut h = self.db.read().await?;
        let (row, domains) = load_connection(&mut h, Some(tenant_id), id).await?;
        Ok(row.into_connection(&domains)?.0)
    }

    async fn find_oidc_connection(&self, id: Uuid) -> Result<ClientMaterial, StoreError> {
        let mut h = self.db.read().await?;
        let (row, domains) = load_connection(&mut h, None, id).await?;
        let ids: Vec<Uuid> = row
            .client_secret_id
            .iter()
            .chain(row.signing_key_id.iter())
            .copied()
            .collect();
        let sealed = if ids.is_empty() {
            Vec::new()
        } else {
            let mut b = SqlBuilder::new(
                "SELECT id, tenant_id, key_id, sealed FROM sealed_secrets WHERE id IN (",
            );
            push_list(&mut b, &ids);
            b.push(")");
            b.build().fetch_all::<SealedRow>(h.conn()).await?
        };
        let pick = |id: Option<Uuid>| {
            id.and_then(|id| {
                sealed.iter().find(|s| s.id == id).map(|s| {
                    (
                        id,
                        Sealed {
                            key_id: s.key_id.clone(),
                            bytes: s.sealed.clone(),
                        },
                    )
                })
            })
        };
        let (client_secret, signing_key) = (pick(row.client_secret_id), pick(row.signing_key_id));
        let (connection, metadata) = row.into_connection(&domains)?;
        Ok(ClientMaterial {
            connection,
            metadata,
            client_secret,
            signing_key,
        })
    }

    async fn update_oidc_connection(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
        u: ConnectionUpdate,
    ) -> Result<Connection, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let (row, domains) = load_connection(&mut tx, Some(tenant_id), id).await?;
        let (old_secret, old_key) = (row.client_secret_id, row.signing_key_id);
        let (before, _) = row.into_connection(&domains)?;
        let mut b = SqlBuilder::new("UPDATE oidc_connections SET updated_at = ");
        b.push_bind(now());
        if let Some(v) = &u.client_id {
            b.push(", client_id = ").push_bind(v.clone());
        }
        if let Some(v) = u.client_auth {
            b.push(", client_auth = ").push_bind(v.as_str());
        }
        if let Some(secret) = &u.client_secret {
            insert_sealed(&mut tx, tenant_id, secret).await?;
            b.push(", client_secret_id = ").push_bind(secret.id);
        }
        if let Some((key, jwk)) = &u.signing_key {
            insert_sealed(&mut tx, tenant_id, key).await?;
            b.push(", signing_key_id = ")
                .push_bind(key.id)
                .push(", signing_public_jwk = ")
                .push_bind(jwk.to_string());
        }
        if let Some(v) = &u.groups_claim {
            b.push(", groups_claim = ").push_bind(v.clone());
        }
        if let Some(v) = &u.scopes {
            b.push(", scopes = ").push_bind(v.join(" "));
        }
        if let Some(v) = u.provisioning {
            b.push(", provisioning = ").push_bind(v.as_str());
        }
        if let Some(v) = u.require_mfa {
            b.push(", require_mfa = ").push_bind(v);
        }
        if let Some(v) = &u.allowed_tenants {
            b.push(", allowed_tenants = ").push_bind(json!(v));
        }
        if let Some(v) = &u.metadata {
            b.push(", metadata = ").push_bind(v.clone());
        }
        b.push(" WHERE id = ")
            .push_bind(id)
            .push(" AND tenant_id = ")
            .push_bind(tenant_id);
        b.build().execute(tx.conn()).await?;
        if u.client_secret.is_some() {
            delete_sealed(&mut tx, old_secret).await?;
        }
        if u.signing_key.is_some() {
            delete_sealed(&mut tx, old_key).await?;
        }
        if let Some(domains) = &u.domains {
            claim_domains(&mut tx, tenant_id, id, domains).await?;
        }
        let (row, domains) = load_connection(&mut tx, Some(tenant_id), id).await?;
        let (after, _) = row.into_connection(&domains)?;
        let mut record = AuditRecord::new("oidc.connection.update", "oidc_connection", id)
            .org(after.org_id)
            .before(connection_audit(&before))
            .after(connection_audit(&after));
        if u.client_secret.is_some()
            && let Some(after) = record.after.as_mut()
        {
            after["client_secret_rotated"] = json!(true);
        }
        tx.audit(record);
        tx.invalidate_tenant();
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_oidc_connection(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Connection, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let (row, domains) = load_connection(&mut tx, Some(tenant_id), id).await?;
        let secrets = [row.client_secret_id, row.signing_key_id];
        let (connection, _) = row.into_connection(&domains)?;
        let rules = sql(
            "SELECT name FROM mapping_rules WHERE tenant_id = $1 AND source = $2 ORDER BY name",
        )
        .bind(tenant_id)
        .bind(format!("oidc:{id}"))
        .fetch_all::<RuleNameRow>(tx.conn())
        .await?;
        if !rules.is_empty() {
            let names: Vec<String> = rules.into_iter().map(|r| r.name).collect();
            return Err(StoreError::Rule(format!(
                "connection_in_use: mapping rules use this connection: {}; change their source \
                 first",
                names.join(", ")
            )));
        }
        sql("DELETE FROM oidc_connections WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        for secret in secrets {
            delete_sealed(&mut tx, secret).await?;
        }
        tx.audit(
            AuditRecord::new("oidc.connection.delete", "oidc_connection", id)
                .org(connection.org_id)
                .before(connection_audit(&connection)),
        );
        // Its group claims went with it (ON DELETE CASCADE): every user's answer may change.
        tx.invalidate_tenant();
        tx.commit().await?;
        Ok(connection)
    }

    async fn oidc_connections_for_issuer(
        &self,
        issuer: &str,
    ) -> Result<Vec<ClientMaterial>, StoreError> {
        let ids = {
            let mut h = self.db.read().await?;
            // Entra multi-tenant connections store the issuer as a template; the caller keeps
            // those whose template and allowed tenants take this issuer.
            sql("SELECT id FROM oidc_connections WHERE issuer = $1 OR issuer LIKE $2 ORDER BY id")
                .bind(issuer)
                .bind(format!(
                    "%{}%",
                    crate::domain::oidc::ENTRA_TENANT_PLACEHOLDER
                ))
                .fetch_all::<IdRow>(h.conn())
                .await?
        };
        let mut found = Vec::with_capacity(ids.len());
        for row in ids {
            found.push(self.find_oidc_connection(row.id).await?);
        }
        Ok(found)
    }

    async fn oidc_connection_for_domain(
        &self,
        domain: &str,
    ) -> Result<Option<Connection>, StoreError> {
        let mut h = self.db.read().await?;
        let Some(found) = sql("SELECT connection_id AS id FROM oidc_domains WHERE domain = $1")
            .bind(domain)
            .fetch_optional::<IdRow>(h.conn())
            .await?
        else {
            return Ok(None);
        };
        let (row, domains) = load_connection(&mut h, None, found.id).await?;
        Ok(Some(row.into_connection(&domains)?.0))
    }

    async fn sealed_key_ids(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(
            sql("SELECT key_id, COUNT(*) AS n FROM sealed_secrets GROUP BY key_id ORDER BY key_id")
                .fetch_all::<KeyCountRow>(h.conn())
                .await?
                .into_iter()
                .map(|r| (r.key_id, r.n))
                .collect(),
        )
    }

    async fn sealed_not_under(&self, key_id: &str) -> Result<Vec<StoredSealed>, StoreError> {
        let mut h = self.db.read().await?;
        Ok(sql(
            "SELECT id, tenant_id, key_id, sealed FROM sealed_secrets WHERE key_id <> $1 \
             ORDER BY tenant_id, id",
        )
        .bind(key_id)
        .fetch_all::<SealedRow>(h.conn())
        .await?
        .into_iter()
        .map(SealedRow::into_stored)
        .collect())
    }

    async fn reseal(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        resealed: Vec<(Uuid, Sealed)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let mut from = std::collections::BTreeSet::new();
        let mut to = std::collections::BTreeSet::new();
        for (id, sealed) in &resealed {
            let old = sql("SELECT id, tenant_id, key_id, sealed FROM sealed_secrets \
                           WHERE id = $1 AND tenant_id = $2")
            .bind(*id)
            .bind(tenant_id)
            .fetch_one::<SealedRow>(tx.conn())
            .await?;
            from.insert(old.key_id);
            to.insert(sealed.key_id.clone());
            sql(
                "UPDATE sealed_secrets SET key_id = $1, sealed = $2, updated_at = $3 \
                 WHERE id = $4 AND tenant_id = $5",
            )
            .bind(sealed.key_id.as_str())
            .bind(sealed.bytes.as_slice())
            .bind(now())
            .bind(*id)
            .bind(tenant_id)
            .execute(tx.conn())
            .await?;
        }
        tx.audit(
            AuditRecord::new("secret.rotate", "tenant", tenant_id)
                .before(json!({ "key_ids": from }))
                .after(json!({ "key_ids": to, "secrets": resealed.len() })),
        );
        tx.commit().await?;
        Ok(())
    }

    async fn begin_oidc_login(
        &self,
        state_hash: &[u8; 32],
        login: &PendingLogin,
    ) -> Result<(), StoreError> {
        let mut h = self.db.read().await?;
        let at = now();
        sql("DELETE FROM oidc_logins WHERE expires_at < $1")
            .bind(at)
            .execute(h.conn())
            .await?;
        sql(
            "INSERT INTO oidc_logins (state_hash, tenant_id, connection_id, nonce, \
             pkce_verifier, return_to, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(state_hash.as_slice())
        .bind(login.tenant_id)
        .bind(login.connection_id)
        .bind(login.nonce.as_str())
        .bind(login.pkce_verifier.as_str())
        .bind(login.return_to.as_str())
        .bind(at)
        .bind(login.expires_at)
        .execute(h.conn())
        .await?;
        Ok(())
    }

    async fn take_oidc_login(
        &self,
        state_hash: &[u8; 32],
    ) -> Result<Option<PendingLogin>, StoreError> {
        let mut h = self.db.read().await?;
        // One statement: two callbacks with one `state` cannot both find it.
        Ok(sql(
            "DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING tenant_id, connection_id, \
             nonce, pkce_verifier, return_to, expires_at",
        )
        .bind(state_hash.as_slice())
        .fetch_optional::<LoginRow>(h.conn())
        .await?
        .map(|r| PendingLogin {
            tenant_id: r.tenant_id,
            connection_id: r.connection_id,
            nonce: r.nonce,
            pkce_verifier: r.pkce_verifier,
            return_to: r.return_to,
            expires_at: r.expires_at,
        }))
    }

    async fn oidc_sign_in(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        s: &OidcSignIn,
    ) -> Result<SignInOutcome, StoreError> {
        let mut tx = self.db.begin_write(ctx, tenant_id).await?;
        let identity = json!({
            "connection_id": s.connection_id, "issuer": s.issuer, "subject": s.subject,
            "email": s.email, "email_verified": s.email_verified,
        });
        let (user_id, linked_by) = match resolve_person(&mut tx, tenant_id, s).await? {
            Ok(found) => found,
            Err(refusal) => {
                let mut after = identity;
                after["refused"] = json!(refusal.code());
                tx.audit(
                    AuditRecord::new("oidc.login.refused", "oidc_connection", s.connection_id)
                        .org(s.org_id)
                        .after(after),
                );
                tx.commit().await?;
                return Ok(SignInOutcome::Refused(refusal));
            }
        };
        sql("DELETE FROM oidc_group_claims WHERE user_id = $1 AND connection_id = $2")
            .bind(user_id)
            .bind(s.connection_id)
            .execute(tx.conn())
            .await?;
        for value in s.groups.iter().flatten() {
            sql(
                "INSERT INTO oidc_group_claims (tenant_id, user_id, connection_id, value) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(s.connection_id)
            .bind(value.as_str())
            .execute(tx.conn())
            .await?;
        }
        let mut after = identity;
        after["linked_by"] = json!(linked_by);
        after["groups"] = json!(s.groups);
        let mut record = AuditRecord::new("oidc.login", "user", user_id)
            .org(s.org_id)
            .after(after);
        if s.groups.is_none() {
            record.warning = Some(
                "group_overage: the provider sent too many groups to carry in the token \
                 (Entra overage); signed in without OIDC groups"
                    .into(),
            );
        }
        tx.audit(record);
        tx.invalidate_user(user_id);
        tx.commit().await?;
        Ok(SignInOutcome::SignedIn { user_id, linked_by })
    }

    async fn oidc_logout_jti_fresh(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut h = self.db.read().await?;
        sql("DELETE FROM oidc_logout_jtis WHERE expires_at < $1")
            .bind(now())
            .execute(h.conn())
            .await?;
        let inserted = sql("INSERT INTO oidc_logout_jtis (issuer, jti, expires_at) \
                            VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(issuer)
        .bind(jti)
        .bind(expires_at)
        .execute(h.conn())
        .await?;
        Ok(inserted > 0)
    }
}
